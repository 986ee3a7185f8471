//! Channel records as this replica last read them, for the webhook path.
//!
//! Every webhook reads its channel, and on NATS that read is a round trip
//! (one of three per request). A watch of the channels bucket tells every
//! replica of every write, so a kept record is dropped as soon as the
//! watch brings a newer revision of it: it trails another replica's write
//! by the watch's delivery, moments. Records are compared by revision, so
//! a read that raced a write is never kept over it. While the watch is
//! not running, nothing is kept. The webhook path reads the bucket again
//! when a signature does not verify, so a secret just rotated elsewhere
//! is never refused for this.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::kv;
use futures_util::StreamExt as _;
use tokio_util::task::AbortOnDropHandle;

use super::super::ChannelRecord;

/// Most records kept; past it the map starts again.
const KEPT: usize = 1024;
/// Pause before watching again after the watch ended.
const REWATCH_AFTER: Duration = Duration::from_secs(1);

/// Shared by the store's clones; the watch stops with the last of them.
pub struct RecentChannels {
    state: Arc<Mutex<State>>,
    _watch: AbortOnDropHandle<()>,
}

#[derive(Default)]
struct State {
    /// Counts the watch's starts and ends: a read taken under one may
    /// only be kept under the same.
    generation: u64,
    watching: bool,
    /// The newest revision the watch brought, by bucket key.
    newest: HashMap<String, u64>,
    /// Kept records and their revisions, by bucket key.
    records: HashMap<String, (u64, ChannelRecord)>,
}

/// A read's ticket: what [`RecentChannels::keep`] checks the read against.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl RecentChannels {
    /// Starts watching `bucket` (the channels bucket).
    pub fn watch(bucket: kv::Store) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let watch = tokio::spawn(follow(bucket, state.clone()));
        Self {
            state,
            _watch: AbortOnDropHandle::new(watch),
        }
    }

    /// The kept record under `key`, or a ticket for reading it (none
    /// while the watch is not running).
    pub fn get(&self, key: &str) -> Result<ChannelRecord, Option<Ticket>> {
        let state = lock(&self.state);
        if !state.watching {
            return Err(None);
        }
        match state.records.get(key) {
            Some((_, record)) => Ok(record.clone()),
            None => Err(Some(Ticket(state.generation))),
        }
    }

    /// Keeps `record`, read at `revision` with `ticket`, unless the watch
    /// restarted or brought a newer revision meanwhile.
    pub fn keep(&self, ticket: Ticket, key: &str, revision: u64, record: &ChannelRecord) {
        let mut state = lock(&self.state);
        let newest = state.newest.get(key).copied().unwrap_or(0);
        if !state.watching || state.generation != ticket.0 || revision < newest {
            return;
        }
        if state.records.len() >= KEPT {
            state.records.clear();
        }
        state
            .records
            .insert(key.to_owned(), (revision, record.clone()));
    }

    /// Drops the record under `key`: this replica just wrote it.
    pub fn forget(&self, key: &str) {
        lock(&self.state).records.remove(key);
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Follows every write to the bucket; runs until aborted.
async fn follow(bucket: kv::Store, state: Arc<Mutex<State>>) {
    loop {
        match bucket.watch_all().await {
            Ok(mut entries) => {
                {
                    let mut state = lock(&state);
                    state.generation += 1;
                    state.watching = true;
                }
                while let Some(entry) = entries.next().await {
                    let Ok(entry) = entry else { break };
                    let mut state = lock(&state);
                    let newest = state.newest.entry(entry.key.clone()).or_default();
                    *newest = (*newest).max(entry.revision);
                    let newest = *newest;
                    if state
                        .records
                        .get(&entry.key)
                        .is_some_and(|(revision, _)| *revision < newest)
                    {
                        state.records.remove(&entry.key);
                    }
                }
                tracing::debug!("the watch of the channels bucket ended; watching again");
            }
            Err(err) => tracing::debug!(error = %err, "cannot watch the channels bucket"),
        }
        {
            let mut state = lock(&state);
            state.generation += 1;
            state.watching = false;
            state.records.clear();
        }
        tokio::time::sleep(REWATCH_AFTER).await;
    }
}
