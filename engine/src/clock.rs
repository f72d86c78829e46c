//! The one wall clock: what "now" is for the log's `recorded_at`, the projections' lag and the
//! gateway's requests (token expiry, token use, commands' `occurred_at`). It is injected as a
//! [`SharedClock`], so tests move time forward instead of sleeping; [`SystemClock`] is the only
//! place that reads the system time (clippy's `disallowed-methods` keeps other reads out).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::domain::Timestamp;

/// Where "now" comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// A clock shared by everything one roster process runs.
pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // The one read of the system time.
    fn now(&self) -> Timestamp {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| i64::try_from(since.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp::from_micros(micros)
    }
}

/// The system clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that moves only when told to: tests advance it instead of sleeping.
#[derive(Debug)]
pub struct ManualClock {
    micros: AtomicI64,
}

impl ManualClock {
    /// A clock standing at `at`.
    pub fn at(at: Timestamp) -> Arc<Self> {
        Arc::new(Self {
            micros: AtomicI64::new(at.as_micros()),
        })
    }

    /// A clock standing at the system's time now.
    pub fn starting_now() -> Arc<Self> {
        Self::at(SystemClock.now())
    }

    /// Moves the clock forward by `micros`.
    pub fn advance(&self, micros: i64) {
        self.micros.fetch_add(micros, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.micros.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::at(Timestamp::from_micros(1_000));
        assert_eq!(clock.now(), Timestamp::from_micros(1_000));
        assert_eq!(clock.now(), Timestamp::from_micros(1_000));
        clock.advance(500);
        assert_eq!(clock.now(), Timestamp::from_micros(1_500));
        let shared: SharedClock = clock;
        assert_eq!(shared.now(), Timestamp::from_micros(1_500));
    }

    #[test]
    fn the_system_clock_is_after_2020() {
        assert!(SystemClock.now() > Timestamp::from_micros(1_577_836_800_000_000));
    }
}
