//! The low-space watermark of the data dir's filesystem.
//!
//! sled fails in the middle of a write once the disk is full, and does not
//! recover in-process. So writes stop before that: below the watermark
//! (`store_min_free_bytes`, or `store_min_free_percent` of the filesystem,
//! whichever is more) webhooks are answered 503 with `Retry-After` and
//! sends UNAVAILABLE, before anything is stored; readiness goes false. The
//! free space is read with `statvfs` every [`CHECK_INTERVAL`] (a syscall of
//! a few microseconds), and everything resumes by itself once it is back
//! above the watermark.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::metrics::Metrics;

/// How often the free space is read.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// Free bytes a reopen of the store after a failed write waits for.
pub const ROOM_TO_REOPEN: u64 = 4 * 1024 * 1024;
/// While low, the WARN line is repeated (with counts) at most this often.
pub const WARN_EVERY: Duration = Duration::from_secs(60);

/// The watermark and the last reading. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct SpaceWatch(Arc<Inner>);

impl std::fmt::Debug for SpaceWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpaceWatch")
            .field("path", &self.0.path)
            .field("low", &self.is_low())
            .finish_non_exhaustive()
    }
}

struct Inner {
    path: PathBuf,
    min_free_bytes: u64,
    min_free_percent: u64,
    low: AtomicBool,
    free_bytes: AtomicU64,
    refused_webhooks: AtomicU64,
    refused_sends: AtomicU64,
    metrics: Metrics,
    /// Woken when the state changes, so readiness follows at once.
    changed: tokio::sync::Notify,
}

/// One `statvfs` reading of the filesystem holding the data dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Bytes an unprivileged writer may still use.
    pub free: u64,
    pub total: u64,
}

/// What one check found, for the caller's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    /// Just went below the watermark.
    Low,
    /// Just came back above it.
    Recovered,
}

impl SpaceWatch {
    pub fn new(
        path: impl Into<PathBuf>,
        min_free_bytes: u64,
        min_free_percent: u64,
        metrics: Metrics,
    ) -> Self {
        Self(Arc::new(Inner {
            path: path.into(),
            min_free_bytes,
            min_free_percent,
            low: AtomicBool::new(false),
            free_bytes: AtomicU64::new(u64::MAX),
            refused_webhooks: AtomicU64::new(0),
            refused_sends: AtomicU64::new(0),
            metrics,
            changed: tokio::sync::Notify::new(),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// Whether the last reading was below the watermark: writes are refused.
    pub fn is_low(&self) -> bool {
        self.0.low.load(Ordering::Relaxed)
    }

    /// Free bytes at the last reading (the metric reads the same field).
    #[cfg(test)]
    pub fn free_bytes(&self) -> u64 {
        self.0.free_bytes.load(Ordering::Relaxed)
    }

    /// Whether `bytes` more can be written to the data dir now (a fresh
    /// reading) and still leave the watermark free. Media fetches and
    /// uploads ask before they write, so that they never take the space
    /// the store needs; a reopen of the store after failed writes asks for
    /// [`ROOM_TO_REOPEN`], since on a disk still full it would only fail.
    /// An unreadable filesystem says yes: the write itself will tell.
    pub fn has_room_for(&self, bytes: u64) -> bool {
        self.read().map_or(true, |reading| {
            reading.free >= self.watermark(reading.total).saturating_add(bytes)
        })
    }

    /// The free bytes below which writes stop, on a filesystem of `total`.
    pub fn watermark(&self, total: u64) -> u64 {
        let percent = u64::try_from(u128::from(total) * u128::from(self.0.min_free_percent) / 100)
            .unwrap_or(u64::MAX);
        self.0.min_free_bytes.max(percent)
    }

    /// Counts a webhook refused for low space.
    pub fn refused_webhook(&self) {
        self.0.refused_webhooks.fetch_add(1, Ordering::Relaxed);
        self.refused_metric("webhook");
    }

    /// Counts a send refused for low space.
    pub fn refused_send(&self) {
        self.0.refused_sends.fetch_add(1, Ordering::Relaxed);
        self.refused_metric("send");
    }

    /// Counts an upload stopped for lack of room (metric only).
    pub fn refused_upload(&self) {
        self.refused_metric("upload");
    }

    fn refused_metric(&self, what: &str) {
        self.0
            .metrics
            .store_low_space_refused
            .get_or_create(&crate::metrics::WhatLabels { what: what.into() })
            .inc();
    }

    /// Refusals counted since the last call (webhooks, sends).
    fn take_refused(&self) -> (u64, u64) {
        (
            self.0.refused_webhooks.swap(0, Ordering::Relaxed),
            self.0.refused_sends.swap(0, Ordering::Relaxed),
        )
    }

    /// Reads the filesystem now.
    pub fn read(&self) -> std::io::Result<Reading> {
        let stat = rustix::fs::statvfs(&self.0.path)?;
        Ok(Reading {
            free: stat.f_bavail.saturating_mul(stat.f_frsize),
            total: stat.f_blocks.saturating_mul(stat.f_frsize),
        })
    }

    /// Applies a reading: below the watermark, writes stop.
    pub fn apply(&self, reading: Reading) -> Change {
        let low = reading.free < self.watermark(reading.total);
        self.0.free_bytes.store(reading.free, Ordering::Relaxed);
        let change = match (self.0.low.swap(low, Ordering::SeqCst), low) {
            (false, true) => Change::Low,
            (true, false) => Change::Recovered,
            _ => Change::None,
        };
        if change != Change::None {
            self.0.changed.notify_one();
        }
        change
    }

    /// Completes at the next change of [`Self::is_low`] (or at once if one
    /// happened since the last call). For one waiter.
    pub async fn changed(&self) {
        self.0.changed.notified().await
    }

    /// Reads the filesystem every [`CHECK_INTERVAL`] until aborted, keeps
    /// the metrics up to date, and logs: one WARN when the space runs low,
    /// repeated at most every [`WARN_EVERY`] with what was refused, one
    /// INFO when it is back.
    pub async fn watch_forever(self) {
        let metrics = self.0.metrics.clone();
        let mut ticks = tokio::time::interval(CHECK_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_warn: Option<Instant> = None;
        let mut read_failed = false;
        let (mut total_webhooks, mut total_sends) = (0u64, 0u64);
        loop {
            ticks.tick().await;
            let watch = self.clone();
            // A hung filesystem must not stall a runtime thread.
            let reading = match tokio::task::spawn_blocking(move || watch.read()).await {
                Ok(reading) => reading,
                Err(_) => continue,
            };
            let reading = match reading {
                Ok(reading) => {
                    if read_failed {
                        read_failed = false;
                        tracing::info!(path = %self.path().display(), "reading the data dir's free space works again");
                    }
                    reading
                }
                Err(err) => {
                    if !read_failed {
                        read_failed = true;
                        tracing::warn!(path = %self.path().display(), error = %err, "cannot read the data dir's free space; the low-space watermark keeps its last state");
                    }
                    continue;
                }
            };
            let change = self.apply(reading);
            metrics.store_free_bytes.set(reading.free as i64);
            metrics.store_low_space.set(i64::from(self.is_low()));
            let watermark = self.watermark(reading.total);
            match change {
                Change::Low => {
                    let _ = self.take_refused();
                    (total_webhooks, total_sends) = (0, 0);
                    last_warn = Some(Instant::now());
                    tracing::warn!(
                        path = %self.path().display(),
                        free_bytes = reading.free,
                        watermark_bytes = watermark,
                        "the data dir's free space is below the watermark (store_min_free_bytes, store_min_free_percent): webhooks are answered 503, sends refused, not ready until space is freed"
                    );
                }
                Change::Recovered => {
                    let (webhooks, sends) = self.take_refused();
                    tracing::info!(
                        path = %self.path().display(),
                        free_bytes = reading.free,
                        watermark_bytes = watermark,
                        refused_webhooks = total_webhooks + webhooks,
                        refused_sends = total_sends + sends,
                        "the data dir's free space is above the watermark again: resuming"
                    );
                    last_warn = None;
                }
                Change::None if self.is_low() => {
                    if last_warn.is_some_and(|at| at.elapsed() >= WARN_EVERY) {
                        let (webhooks, sends) = self.take_refused();
                        total_webhooks += webhooks;
                        total_sends += sends;
                        last_warn = Some(Instant::now());
                        tracing::warn!(
                            path = %self.path().display(),
                            free_bytes = reading.free,
                            watermark_bytes = watermark,
                            refused_webhooks = webhooks,
                            refused_sends = sends,
                            "the data dir's free space is still below the watermark; refused since the last report"
                        );
                    }
                }
                Change::None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_larger_of_bytes_and_percent_is_the_watermark() {
        let watch = SpaceWatch::new("/", 256 << 20, 1, Metrics::default());
        assert_eq!(watch.watermark(10 << 30), 256 << 20);
        assert_eq!(watch.watermark(100 << 30), (100 << 30) / 100);
        assert_eq!(
            SpaceWatch::new("/", 0, 0, Metrics::default()).watermark(1 << 30),
            0
        );
    }

    #[test]
    fn below_the_watermark_is_low_and_above_it_resumes() {
        let watch = SpaceWatch::new("/", 100, 0, Metrics::default());
        assert!(!watch.is_low());
        let reading = |free| Reading { free, total: 1000 };
        assert_eq!(watch.apply(reading(500)), Change::None);
        assert_eq!(watch.apply(reading(99)), Change::Low);
        assert!(watch.is_low());
        assert_eq!(watch.apply(reading(50)), Change::None);
        assert_eq!(watch.apply(reading(100)), Change::Recovered);
        assert!(!watch.is_low());
        assert_eq!(watch.free_bytes(), 100);
    }

    #[test]
    fn reads_a_real_filesystem() {
        let reading = SpaceWatch::new(std::env::temp_dir(), 0, 0, Metrics::default())
            .read()
            .unwrap();
        assert!(reading.total > 0 && reading.free <= reading.total);
    }
}
