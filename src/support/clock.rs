//! Wall-clock time, injectable.
//!
//! Everything whose behaviour depends on time — token lifetimes and lockouts in the simulator, login
//! back-off, call ages and member-status ages in the exporter — reads it from a [`Clock`], so tests can
//! step a [`ManualClock`] instead of sleeping. Deadlines of individual requests use tokio's timer, which
//! tests control with `tokio::time::pause()`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of unix time, in milliseconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the unix epoch.
    fn now_millis(&self) -> u64;

    /// Seconds since the unix epoch, as a float.
    fn now_secs(&self) -> f64 {
        self.now_millis() as f64 / 1000.0
    }
}

/// The shared handle every component holds.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        // A clock before 1970 is a broken host; reading it as 0 keeps ages at their floor of 0.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// The system clock as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that only moves when told to: for tests and deterministic simulations.
#[derive(Debug)]
pub struct ManualClock {
    millis: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `unix_secs`.
    pub fn new(unix_secs: u64) -> Arc<Self> {
        Arc::new(Self {
            millis: AtomicU64::new(unix_secs * 1000),
        })
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        self.millis
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    /// Moves the clock forward by whole seconds.
    pub fn advance_secs(&self, secs: u64) {
        self.advance(std::time::Duration::from_secs(secs));
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.millis.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_steps() {
        let c = ManualClock::new(1_000);
        assert_eq!(c.now_millis(), 1_000_000);
        c.advance_secs(31 * 60);
        assert_eq!(c.now_secs(), 2_860.0);
    }
}
