//! The event log: the source of truth. Two backends share one contract (see ARCHITECTURE.md):
//! per-tenant serializable appends checked against the tenant's head, durability before
//! acknowledgement, idempotent appends, and reads in sequence order of durable events only.

mod embedded;
pub mod jetstream;
mod packed;
pub mod watermark;

pub use embedded::{EmbeddedLog, LogInspection, TenantRead};
pub use jetstream::{JetStreamConfig, JetStreamLog};
pub use watermark::{Mark, Verdict, WATERMARK_FILE, Watermark};

use thiserror::Error;

use crate::domain::{Event, TenantName};

/// Work the embedded backend runs on its writer right after the events are in the log, before
/// the next append: the engine uses it to write its aggregate in log order.
pub type AfterAppend = Box<dyn FnOnce(&[Event]) -> Result<(), String> + Send>;

/// Events of one tenant to append together.
pub struct AppendRequest {
    pub tenant: TenantName,
    /// The tenant's last sequence the caller decided against (0: no events yet).
    pub expected_head: u64,
    /// Events with `sequence` 0; the log assigns sequences and `recorded_at`.
    pub events: Vec<Event>,
    pub after_append: Option<AfterAppend>,
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum AppendError {
    /// Someone appended to the tenant since `expected_head`; catch up and decide again.
    #[error("tenant log moved on: head is {actual_head}")]
    Conflict { actual_head: u64 },
    /// The log cannot take writes now; nothing was acknowledged.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// The append was sent but no answer came: it may or may not have landed.
    #[error("event log did not answer: {0}")]
    Unknown(String),
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum LogError {
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    #[error("event log holds a malformed event at sequence {sequence}: {reason}")]
    Corrupt { sequence: u64, reason: String },
    /// The recovered log ends before what was acknowledged as durable: storage lost events.
    #[error(
        "the event log on disk ends at sequence {recovered}, but events up to sequence {marked} \
         were acknowledged as durable (log.watermark): the database lost acknowledged events. \
         roster will not run on it: restore the data directory from a backup, or see \
         `roster check --help`"
    )]
    Truncated { marked: u64, recovered: u64 },
    /// sled found damaged data where the log is stored.
    #[error(
        "the event log on disk is damaged ({0}). roster will not run on it: restore the data \
         directory from a backup, or see `roster check --help`"
    )]
    Damaged(String),
    /// The log holds another event at the watermark's sequence than the one acknowledged there.
    #[error(
        "the event log on disk holds another event at sequence {sequence} than the one \
         acknowledged there (log.watermark): the database is damaged. roster will not run on it: \
         restore the data directory from a backup, or see `roster check --help`"
    )]
    Diverged { sequence: u64 },
}
