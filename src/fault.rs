//! Store write failures seen by the service (a full or failing disk that
//! the low-space watermark did not catch): readiness goes false at the
//! first one, a probe write clears it once the store takes writes again,
//! and `/healthz` fails once writes have failed for [`LIVENESS_AFTER`], so
//! a store that cannot recover (sled fails every write after one met a
//! full disk) is restarted rather than kept behind a green liveness probe.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use crate::{store::StoreError, time::Clock};

/// How long writes may keep failing before `/healthz` fails.
pub const LIVENESS_AFTER: Duration = Duration::from_secs(10);

/// Cheap to clone; clones share the state.
#[derive(Debug, Clone)]
pub struct StoreFault {
    /// When writes started failing (Unix ms); 0 while they succeed.
    since: Arc<AtomicI64>,
    clock: Clock,
}

impl StoreFault {
    pub fn new(clock: Clock) -> Self {
        Self {
            since: Arc::new(AtomicI64::new(0)),
            clock,
        }
    }

    /// Notes a failed store call; only backend failures (I/O) count.
    pub fn failed(&self, err: &StoreError) {
        if matches!(err, StoreError::Backend(_)) {
            let now = self.clock.now_ms().max(1);
            let _ = self
                .since
                .compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    /// Notes that a write succeeded: the store works.
    pub fn cleared(&self) -> bool {
        self.since.swap(0, Ordering::SeqCst) != 0
    }

    /// Whether the last write failed (and none succeeded since).
    pub fn is_faulted(&self) -> bool {
        self.since.load(Ordering::SeqCst) != 0
    }

    /// How long writes have been failing, if they are.
    pub fn failing_for(&self) -> Option<Duration> {
        match self.since.load(Ordering::SeqCst) {
            0 => None,
            since => Some(Duration::from_millis(
                self.clock.now_ms().saturating_sub(since).max(0) as u64,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_failures_fault_until_a_write_succeeds() {
        let fault = StoreFault::new(Clock::system());
        fault.failed(&StoreError::NotFound { id: "x".into() });
        assert!(!fault.is_faulted(), "only I/O failures count");
        fault.failed(&StoreError::Backend("No space left on device".into()));
        assert!(fault.is_faulted());
        assert!(fault.failing_for().unwrap() < Duration::from_secs(1));
        assert!(fault.cleared());
        assert!(!fault.is_faulted() && fault.failing_for().is_none());
        assert!(!fault.cleared());
    }
}
