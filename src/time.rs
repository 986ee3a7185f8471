//! Time as the service stores it (Unix milliseconds) and as the contract
//! shows it (protobuf Timestamps), and the [`Clock`] every part reads it
//! from.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the service reads the time. [`Services`](crate::services::Services)
/// holds one, and each part that dates or ages something (tokens, the
/// outbox, retention, reply tokens, caches, uploads...) is handed it; the
/// store's internals are handed the time itself. There is no global.
///
/// # Two sources, and why
/// The times the service keeps are wall-clock times: they are compared
/// across restarts and between replicas sharing a NATS store, sent to LINE
/// (the `iat` and `exp` of v2.1 assertions, which LINE checks against its
/// own clock) and shown to agents. So the service reads the system clock
/// on every call ([`Clock::system`]), as it always did: when NTP steps the
/// host's clock (a VM resumed, a container started before the host had
/// synced), the next reading follows. A clock read once at start and then
/// advanced by a monotonic `Instant` would be monotonic, but would stay
/// off by the step for the life of the process, and a wrong `iat` is a
/// v2.1 channel that cannot get a token.
///
/// Tests want time to pass without waiting for it: a reply token's
/// lifetime, an access token's, a retention period. [`Clock::tokio`]
/// starts at the wall clock (as tokio's clock sees it: see there) and then
/// advances with `tokio::time::Instant`, which `tokio::time::pause()`
/// stops and `tokio::time::advance()` moves.
/// The service's timers (`sleep`, `interval`, `timeout`) run on tokio's
/// clock already, so with this one the times it stores and the timers it
/// waits on move together. Unpaused it keeps pace with the wall clock, so
/// a test may still compare its times with the system's or run the real
/// binary on the same data dir. Read it on the runtime's threads: off them
/// tokio's time is the real one, which an `advance` has left behind.
///
/// Cheap to clone; clones read the same time.
#[derive(Clone, Debug)]
pub struct Clock(Source);

#[derive(Clone, Debug)]
enum Source {
    /// The system's wall clock, read on every call.
    System,
    /// `start_ms` at `start`, then as tokio's clock moves.
    Tokio {
        start_ms: i64,
        start: tokio::time::Instant,
    },
    /// Set by hand, backwards too (unit tests of a clock going back).
    #[cfg(test)]
    Manual(std::sync::Arc<std::sync::atomic::AtomicI64>),
}

impl Clock {
    /// The system's wall clock: the service's.
    pub fn system() -> Self {
        Self(Source::System)
    }

    /// The wall clock as tokio's clock sees it, moving as tokio's clock
    /// moves (for tests: see the type's doc). Tokio's clock is std's plus
    /// what `advance` added and less what `pause` held; the start counts
    /// that too, so that the tokio clocks of one runtime agree: a service
    /// a test restarts after an `advance` finds the time that passed.
    pub fn tokio() -> Self {
        let start = tokio::time::Instant::now();
        let (wall, real) = (system_ms(), std::time::Instant::now());
        let start_std = start.into_std();
        let shift = match start_std.checked_duration_since(real) {
            Some(ahead) => ahead.as_millis() as i64,
            None => -(real.duration_since(start_std).as_millis() as i64),
        };
        Self(Source::Tokio {
            start_ms: wall.saturating_add(shift),
            start,
        })
    }

    /// `start_ms` now, then as tokio's clock moves.
    pub fn tokio_at(start_ms: i64) -> Self {
        Self(Source::Tokio {
            start_ms,
            start: tokio::time::Instant::now(),
        })
    }

    /// `start_ms` until moved with [`Clock::shift`].
    #[cfg(test)]
    pub fn manual(start_ms: i64) -> Self {
        Self(Source::Manual(std::sync::Arc::new(
            std::sync::atomic::AtomicI64::new(start_ms),
        )))
    }

    /// Moves a manual clock by `by_ms` (negative: back); other clocks
    /// cannot be moved by hand.
    #[cfg(test)]
    pub fn shift(&self, by_ms: i64) {
        match &self.0 {
            Source::Manual(now) => {
                now.fetch_add(by_ms, std::sync::atomic::Ordering::SeqCst);
            }
            other => panic!("only a manual clock moves by hand, not {other:?}"),
        }
    }

    /// Now, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            Source::System => system_ms(),
            Source::Tokio { start_ms, start } => {
                let elapsed = tokio::time::Instant::now().saturating_duration_since(*start);
                start_ms.saturating_add(elapsed.as_millis().min(i64::MAX as u128) as i64)
            }
            #[cfg(test)]
            Source::Manual(now) => now.load(std::sync::atomic::Ordering::SeqCst),
        }
    }

    /// Now, as a `SystemTime` (to compare with files' times).
    pub fn now(&self) -> SystemTime {
        let ms = self.now_ms();
        UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
    }
}

/// The system's wall clock in Unix milliseconds; only [`Clock`] reads it.
fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix milliseconds as a protobuf Timestamp.
pub fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A protobuf Timestamp as Unix milliseconds (the inverse of
/// [`timestamp`]; finer parts are dropped).
pub fn millis(ts: &prost_types::Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(ts.nanos.div_euclid(1_000_000)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Clock;

    #[test]
    fn timestamps_split_milliseconds() {
        let ts = super::timestamp(1_700_000_000_123);
        assert_eq!((ts.seconds, ts.nanos), (1_700_000_000, 123_000_000));
        let before_epoch = super::timestamp(-1);
        assert_eq!(
            (before_epoch.seconds, before_epoch.nanos),
            (-1, 999_000_000)
        );
        for ms in [1_700_000_000_123, 0, -1, -1001] {
            assert_eq!(super::millis(&super::timestamp(ms)), ms);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_tokio_clock_moves_with_tokio_time_only() {
        let clock = Clock::tokio_at(1_700_000_000_000);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            clock.now_ms(),
            1_700_000_000_000,
            "paused: real time does not count"
        );
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.now_ms(), 1_700_000_090_000);
        // A sleep under paused time ends at once, the clock having moved.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(clock.clone().now_ms(), 1_700_000_150_000);
        assert_eq!(
            clock.now(),
            std::time::UNIX_EPOCH + Duration::from_millis(1_700_000_150_000)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clocks_made_after_an_advance_count_it() {
        let first = Clock::tokio();
        tokio::time::advance(Duration::from_secs(3600)).await;
        let second = Clock::tokio();
        let gap = (first.now_ms() - second.now_ms()).abs();
        assert!(gap < 1_000, "{gap} ms apart");
        let ahead = second.now_ms() - Clock::system().now_ms();
        assert!((3_599_000..3_601_000).contains(&ahead), "{ahead} ms ahead");
    }

    #[tokio::test]
    async fn an_unpaused_tokio_clock_keeps_pace_with_the_wall_clock() {
        let (system, tokio) = (Clock::system(), Clock::tokio());
        tokio::time::sleep(Duration::from_millis(20)).await;
        let gap = (system.now_ms() - tokio.now_ms()).abs();
        assert!(gap < 1_000, "{gap} ms apart");
    }
}
