//! Repeated errors logged as counts, not lines: a failing disk or an
//! unreachable LINE must not write one line per request (230,000 in 20 s
//! were seen on a full disk, which can fill the disk holding the logs).
//!
//! A [`Throttle`] lets the first occurrence through in full, then one per
//! interval, which carries how many were left out since the last one (the
//! module is the crate's own, so this is not a doctest; the unit tests
//! below run the same):
//!
//! ```ignore
//! use crate::log_limit::Throttle;
//! static STORE_FAILED: Throttle = Throttle::new(Duration::from_secs(10));
//! if let Some(suppressed) = STORE_FAILED.admit() {
//!     tracing::error!(suppressed, "storing failed");
//! }
//! ```

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// How often one kind of repeated line is written by default.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// One kind of log line, rate-limited. `const`-constructible, for statics.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new(State {
                last: None,
                suppressed: 0,
            }),
        }
    }

    /// `Some(left out since the last line)` when this occurrence is to be
    /// logged, `None` when it is only counted.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                state.suppressed += 1;
                None
            }
            _ => {
                state.last = Some(now);
                Some(std::mem::take(&mut state.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_in_full_then_one_per_interval_with_the_count() {
        let throttle = Throttle::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(throttle.admit_at(start), Some(0));
        for i in 1..1000 {
            assert_eq!(throttle.admit_at(start + Duration::from_millis(i)), None);
        }
        assert_eq!(
            throttle.admit_at(start + Duration::from_secs(10)),
            Some(999)
        );
        assert_eq!(throttle.admit_at(start + Duration::from_secs(11)), None);
        assert_eq!(throttle.admit_at(start + Duration::from_secs(30)), Some(1));
    }
}
