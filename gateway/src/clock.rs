//! The wall clock, read once per request at the edge and passed inward as a domain timestamp.

use std::time::{SystemTime, UNIX_EPOCH};

use roster_engine::domain::Timestamp;

pub fn now() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| i64::try_from(since.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_micros(micros)
}
