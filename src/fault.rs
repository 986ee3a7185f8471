//! Store write failures seen by the service (a full or failing disk that
//! the low-space watermark did not catch): readiness goes false at the
//! first one; the store is reopened in place and probed until it takes
//! writes again, which clears it. `/healthz` fails once writes have failed
//! for [`LIVENESS_AFTER`] for a reason other than a lack of space, so a
//! store that cannot recover is restarted rather than kept behind a green
//! liveness probe. A full disk or JetStream's limits are the operator's to
//! lift: a restart would not free space, so they keep the service alive
//! and not ready, and it resumes by itself once there is room.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::Duration,
};

use crate::{store::StoreError, time::Clock};

/// How long writes may keep failing before `/healthz` fails.
pub const LIVENESS_AFTER: Duration = Duration::from_secs(10);

/// Cheap to clone; clones share the state.
#[derive(Debug, Clone)]
pub struct StoreFault {
    state: Arc<State>,
    clock: Clock,
}

#[derive(Debug, Default)]
struct State {
    /// When writes started failing (Unix ms); 0 while they succeed.
    since: AtomicI64,
    /// Whether the last failure was for lack of space.
    full: AtomicBool,
}

impl StoreFault {
    pub fn new(clock: Clock) -> Self {
        Self {
            state: Arc::default(),
            clock,
        }
    }

    /// Notes a failed store call; only failures of the backend count.
    pub fn failed(&self, err: &StoreError) {
        if err.is_backend_failure() {
            // A reopen in progress says nothing new about why.
            if !matches!(err, StoreError::Reopening) {
                self.state
                    .full
                    .store(matches!(err, StoreError::Full(_)), Ordering::SeqCst);
            }
            let now = self.clock.now_ms().max(1);
            let _ = self
                .state
                .since
                .compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    /// Notes that a write succeeded: the store works.
    pub fn cleared(&self) -> bool {
        self.state.since.swap(0, Ordering::SeqCst) != 0
    }

    /// Whether the last write failed (and none succeeded since).
    pub fn is_faulted(&self) -> bool {
        self.state.since.load(Ordering::SeqCst) != 0
    }

    /// Whether the last failed write failed for lack of space.
    pub fn is_full(&self) -> bool {
        self.is_faulted() && self.state.full.load(Ordering::SeqCst)
    }

    /// Whether writes have failed for [`LIVENESS_AFTER`] for a reason a
    /// restart may cure (not a lack of space).
    pub fn needs_restart(&self) -> bool {
        !self.state.full.load(Ordering::SeqCst)
            && self.failing_for().is_some_and(|d| d >= LIVENESS_AFTER)
    }

    /// How long writes have been failing, if they are.
    pub fn failing_for(&self) -> Option<Duration> {
        match self.state.since.load(Ordering::SeqCst) {
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

    #[test]
    fn a_full_store_is_not_a_reason_to_restart() {
        let fault = StoreFault::new(Clock::system());
        fault.failed(&StoreError::Full("No space left on device".into()));
        // As if it had been failing for a minute.
        fault
            .state
            .since
            .store(Clock::system().now_ms() - 60_000, Ordering::SeqCst);
        assert!(fault.is_faulted() && !fault.needs_restart());
        fault.failed(&StoreError::Reopening);
        assert!(!fault.needs_restart(), "a reopen keeps the reason");
        fault.failed(&StoreError::Backend("Input/output error".into()));
        assert!(fault.needs_restart());
    }
}
