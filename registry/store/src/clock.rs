//! The registry's notion of "now", in Unix milliseconds.
//!
//! Expiry (builds, tokens, upload sessions) is decided against this clock rather than the system
//! time directly, so that tests can move time forward and watch a build expire without sleeping
//! (`--test-clock` exposes `POST /api/v1/admin/clock` to the admin; it is off otherwise).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// System time plus an offset that only a test-mode admin request can change.
#[derive(Clone, Default, Debug)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn now_ms(&self) -> i64 {
        system_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    pub fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// The system time, which this clock's test offset does not move: what upload sessions are
    /// stamped and expired by (a test clock moved forward to expire builds must not abandon
    /// uploads in progress), and leases between processes.
    pub fn wall_ms(&self) -> i64 {
        system_ms()
    }

    /// Moves this clock forward by `ms` (never backward: expiry decisions already made stay made).
    pub fn advance(&self, ms: i64) {
        self.offset_ms.fetch_add(ms.max(0), Ordering::Relaxed);
    }
}

fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_only_forward() {
        let clock = Clock::default();
        let before = clock.now_ms();
        clock.advance(10_000);
        clock.advance(-50_000);
        assert!(clock.now_ms() >= before + 10_000);
        assert!(clock.now_ms() < before + 20_000);
    }
}
