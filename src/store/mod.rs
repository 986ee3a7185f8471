//! The storage boundary: everything the service keeps, behind one small
//! async trait so that another backend can take sled's place without the
//! rest of the service noticing.
//!
//! Rules of the boundary: records go in and out as the plain types of
//! [`records`]; secrets arrive already encrypted (the store never sees a
//! plaintext credential); every mutating call returns only once its change
//! is durable on disk; no backend type (sled trees, batches, errors) leaks
//! out. Channels live here now; the event log, consumer positions and the
//! outbox join them as the service grows.

mod dedupe_index;
mod group_flush;
pub mod nats;
pub mod records;
pub mod reply_tokens;
pub mod sled_log;
pub mod sled_store;
mod watched;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

pub use nats::{NatsOptions, NatsStore, SharedFiles, SharedReader};
pub use records::{
    AckStep, AppendOutcome, ChannelRecord, ConsumerPosition, DeliveryRecord, DeliveryState,
    EventRecord, IssuedTokenRecord, KeyPairRecord, LineErrorDetailRecord, LineErrorRecord,
    LogBounds, LoggedRecords, NarrowcastRecord, NewEvent, PreviousSecret, PruneReport, ReplyToken,
    Retention, SealedSecret, SendKind, SentMessageRecord, TokenErrorRecord, TokenMode,
    TokenStateRecord,
};
pub use sled_store::SledStore;
pub use watched::Watched;

/// Which deliveries [`Store::list_deliveries`] returns.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub channel_id: String,
    /// Any of these states; empty = every state.
    pub states: Vec<DeliveryState>,
    /// Only this chat (`user:`, `group:` or `room:` + id).
    pub conversation: Option<String>,
    /// Only ids below this one (the last id of the previous page).
    pub before_id: Option<String>,
    pub limit: usize,
}

impl DeliveryQuery {
    /// Whether `delivery` is one the query asks for (the id bound aside).
    pub fn matches(&self, delivery: &DeliveryRecord) -> bool {
        delivery.channel_id == self.channel_id
            && (self.states.is_empty() || self.states.contains(&delivery.state))
            && self
                .conversation
                .as_ref()
                .is_none_or(|chat| delivery.conversation.as_ref() == Some(chat))
    }
}

/// What a store call can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Another channel already uses this LINE channel id.
    #[error("LINE channel id {line_channel_id} is already registered as channel {existing_id}")]
    LineChannelIdTaken {
        line_channel_id: String,
        existing_id: String,
    },
    /// A record with this id exists already (ids are generated, so this is a
    /// bug or an astronomically unlikely collision).
    #[error("record {id} already exists")]
    IdTaken { id: String },
    /// The record is not there.
    #[error("record {id} not found")]
    NotFound { id: String },
    /// The record changed since it was read (optimistic concurrency): read it
    /// again and retry.
    #[error("record {id} changed concurrently (expected version {expected})")]
    Conflict { id: String, expected: u64 },
    /// An ack would move a consumer backwards.
    #[error("consumer {consumer} has already acknowledged up to {acked}")]
    AckBackwards { consumer: String, acked: u64 },
    /// An ack names a sequence that was never assigned.
    #[error("sequence {sequence} is beyond the head of the log ({head})")]
    AckBeyondHead { sequence: u64, head: u64 },
    /// The data dir is held by another running process.
    #[error("data dir {path} is in use by another line-adapter process")]
    Locked { path: String },
    /// A stored record cannot be decoded: the data is damaged or was written
    /// by an incompatible version.
    #[error("stored record {key} is damaged: {reason}")]
    Corrupt { key: String, reason: String },
    /// A store file is damaged, or was not written by line-adapter, and
    /// opening it would lose or overwrite what it holds.
    #[error(
        "the store file {path} is damaged or was not written by line-adapter ({reason}); line-adapter stops without using it. Restore the data dir from a backup, or move the data dir's store/ folder aside to start with an empty store (its channels, events and sends are then gone)"
    )]
    Damaged { path: String, reason: String },
    /// The backend failed (I/O, ...).
    #[error("storage backend failed: {0}")]
    Backend(String),
    /// The backend has no room: the disk is full (ENOSPC, a quota), or
    /// JetStream is out of the storage its limits allow. Nothing was
    /// written; it works again once space is freed.
    #[error("storage is full: {0}")]
    Full(String),
    /// The store is being opened again after failed writes (see
    /// [`Watched::reopen_in_place`]); retry shortly.
    #[error("the store is being reopened after a failed write; retry shortly")]
    Reopening,
}

impl StoreError {
    /// A file-system error as a store error: `Full` when the disk or a
    /// quota has no room left, else `Backend`.
    pub fn from_io(what: &str, err: &std::io::Error) -> Self {
        const ENOSPC: i32 = 28;
        const EDQUOT: i32 = 122;
        let full = err.kind() == std::io::ErrorKind::StorageFull
            || err.kind() == std::io::ErrorKind::QuotaExceeded
            || matches!(err.raw_os_error(), Some(ENOSPC | EDQUOT));
        if full {
            StoreError::Full(format!("{what}: {err}"))
        } else {
            StoreError::Backend(format!("{what}: {err}"))
        }
    }

    /// A failure of the backend itself (counts as a store fault), rather
    /// than an answer about the data.
    pub fn is_backend_failure(&self) -> bool {
        matches!(
            self,
            StoreError::Backend(_) | StoreError::Full(_) | StoreError::Reopening
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A histogram a store keeps about its own work, exposed on `/metrics`.
pub type CommitHistogram = prometheus_client::metrics::histogram::Histogram;

/// What a store measures about its event-log commits.
#[derive(Clone)]
pub struct CommitMetrics {
    /// Records stored per group commit.
    pub records: CommitHistogram,
    /// Seconds per flush to disk.
    pub seconds: CommitHistogram,
}

impl Default for CommitMetrics {
    fn default() -> Self {
        use prometheus_client::metrics::histogram::exponential_buckets;
        Self {
            records: CommitHistogram::new(exponential_buckets(1.0, 2.0, 12)),
            // 50 µs … ~1.6 s.
            seconds: CommitHistogram::new(exponential_buckets(0.00005, 2.0, 16)),
        }
    }
}

/// The storage boundary. See the module docs for its rules.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a new channel. Fails with `LineChannelIdTaken` or `IdTaken`.
    async fn insert_channel(&self, channel: &ChannelRecord) -> Result<()>;

    /// One channel by our id.
    async fn get_channel(&self, id: &str) -> Result<Option<ChannelRecord>>;

    /// One channel by our id, as this process last saw it: it may trail
    /// another replica's write by moments. For the webhook path, which
    /// reads again with [`Store::get_channel`] when a signature does not
    /// verify.
    async fn peek_channel(&self, id: &str) -> Result<Option<ChannelRecord>> {
        self.get_channel(id).await
    }

    /// The id of the channel registered with this LINE channel id.
    async fn find_channel_by_line_id(&self, line_channel_id: &str) -> Result<Option<String>>;

    /// Channels in id order (ids sort by creation time), starting after
    /// `after_id`, at most `limit` of them.
    async fn list_channels(
        &self,
        after_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ChannelRecord>>;

    /// Replaces a channel whose stored `version` is `expected_version` with
    /// `channel` (whose version the caller has advanced). Fails with
    /// `Conflict` when someone else changed it first, `NotFound`, or
    /// `LineChannelIdTaken` when the new LINE id belongs to another channel.
    async fn replace_channel(&self, expected_version: u64, channel: &ChannelRecord) -> Result<()>;

    /// Deletes a channel; returns what was deleted.
    async fn delete_channel(&self, id: &str) -> Result<Option<ChannelRecord>>;

    /// A channel's token state.
    async fn get_token_state(&self, channel_id: &str) -> Result<Option<TokenStateRecord>>;

    /// Stores a channel's token state if the stored one has version
    /// `expected_version` (0: none stored yet), else `Conflict`. The caller
    /// advances `state.version`. Deleting the channel deletes it.
    async fn put_token_state(&self, expected_version: u64, state: &TokenStateRecord) -> Result<()>;

    /// Stores `value` under `key` unless something is there already;
    /// returns the value now stored. Used for service-wide facts such as the
    /// master key check.
    async fn meta_get_or_insert(&self, key: &str, value: &[u8]) -> Result<Vec<u8>>;

    /// Whether several processes may open this store at once (and so
    /// must look for each other's abandoned work).
    fn shared(&self) -> bool {
        false
    }

    /// For a shared store: this process's identity towards the others, the
    /// same after a restart on the same host and data dir, so a restarted
    /// process takes up its own leases and claims at once.
    fn instance_id(&self) -> Option<&str> {
        None
    }

    /// Whether the backend can serve now (a networked one may have lost
    /// its connection); readiness follows it.
    fn healthy(&self) -> bool {
        true
    }

    /// Histograms of the event log's group commits, if the backend keeps
    /// them.
    fn commit_metrics(&self) -> Option<CommitMetrics> {
        None
    }

    /// Every durable consumer and its position.
    async fn consumers(&self) -> Result<Vec<(String, ConsumerPosition)>>;

    /// Replaces the value under `key` (durably).
    async fn meta_put(&self, key: &str, value: &[u8]) -> Result<()>;

    /// Makes everything written so far durable (used at shutdown).
    async fn flush(&self) -> Result<()>;

    /// Flushes and stops background work, releasing the storage so another
    /// process (or a restart in this one) can open it. Writes fail after.
    async fn close(&self) -> Result<()>;

    /// Closes and opens the backend again in this process, after writes
    /// failed; `Ok(false)` where that is not possible or not needed.
    async fn reopen(&self) -> Result<bool> {
        Ok(false)
    }

    /// Files every replica reads (NATS), where media and uploads are kept
    /// instead of the data dir; `None` where the data dir is the only one.
    fn shared_files(&self) -> Option<SharedFiles> {
        None
    }

    // === event log ===

    /// Appends records in order, atomically, and durably: when this returns
    /// `Ok` they survive a crash. A record whose `(channel, webhook_event_id)`
    /// was appended before is not stored again (`Duplicate`). Sequence
    /// numbers are gap-free across all callers. Concurrent calls share one
    /// flush (group commit).
    async fn append(&self, batch: Vec<NewEvent>) -> Result<Vec<AppendOutcome>>;

    /// Records with `sequence > after`, in sequence order, at most `limit`.
    async fn read_events(&self, after: u64, limit: usize) -> Result<Vec<EventRecord>>;

    /// The retained sequence range.
    fn bounds(&self) -> LogBounds;

    /// The range, with the head at least `sequence` if the log holds it:
    /// a shared store's process may not have seen what another process
    /// appended a moment ago, and asks.
    async fn bounds_reaching(&self, _sequence: u64) -> Result<LogBounds> {
        Ok(self.bounds())
    }

    /// The lowest sequence the log still holds, asked of the backend now
    /// (not the cached [`Self::bounds`]): tells records retention removed
    /// from a hole in the sequence. JetStream can leave holes: it assigns
    /// a sequence to a write and then deletes it when the account's limits
    /// are exceeded (that write was refused, never acknowledged).
    async fn oldest_retained(&self) -> Result<u64> {
        Ok(self.bounds().oldest)
    }

    /// Records as they become durable, in sequence order. A receiver that
    /// falls behind gets `RecvError::Lagged` and must read the log instead.
    fn tail(&self) -> broadcast::Receiver<Arc<EventRecord>>;

    /// Drops records, dedupe entries and reply tokens past their retention.
    async fn prune(&self, retention: Retention) -> Result<PruneReport>;

    /// Reply tokens of a chat's events received in the last 20 minutes,
    /// oldest first (standby events' tokens are not recorded).
    fn recent_reply_tokens(&self, channel_id: &str, conversation_id: &str) -> Vec<ReplyToken>;

    // === durable consumers ===

    /// A consumer's acknowledged position; `None` if it never acked.
    async fn consumer(&self, name: &str) -> Result<Option<ConsumerPosition>>;

    /// Marks a reply token as used, durably; `false` if it was used before.
    /// A token is used at most once, ever.
    async fn claim_reply_token(&self, channel_id: &str, token: &str, now_ms: i64) -> Result<bool>;

    // === outbox ===

    /// Stores a new delivery durably. With an idempotency key, returns the
    /// delivery already stored under `(channel, key)` instead, if any.
    async fn insert_delivery(&self, delivery: &DeliveryRecord) -> Result<Option<DeliveryRecord>>;

    /// Replaces a stored delivery durably, if it is still as its writer
    /// last saw it: its stored `update_time_ms` is `previous_update_ms`.
    /// Else `Conflict` (another process moved it on: its lease ran out),
    /// or `NotFound`.
    async fn update_delivery(
        &self,
        previous_update_ms: i64,
        delivery: &DeliveryRecord,
    ) -> Result<()>;

    /// As [`Self::update_delivery`], for a change a crash may lose: it
    /// need not be durable when this returns (it is with the next durable
    /// write). The outbox notes with it that a delivery's records are on
    /// the log; lost, the restart appends them again, deduplicated.
    async fn update_delivery_lazily(
        &self,
        previous_update_ms: i64,
        delivery: &DeliveryRecord,
    ) -> Result<()> {
        self.update_delivery(previous_update_ms, delivery).await
    }

    async fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>>;

    /// The delivery stored under an idempotency key of a channel.
    async fn delivery_by_idempotency_key(
        &self,
        channel_id: &str,
        key: &str,
    ) -> Result<Option<DeliveryRecord>>;

    /// Deliveries not yet settled ([`DeliveryRecord::is_settled`]: queued
    /// or sending, or final with a record still to append to the log),
    /// oldest first: the work a restart resumes.
    async fn unfinished_deliveries(&self) -> Result<Vec<DeliveryRecord>>;

    /// A channel's deliveries matching `query`, newest first (ids are
    /// ULIDs, so id order is time order).
    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<DeliveryRecord>>;

    /// Takes, or renews, the right of process `owner` to attempt delivery
    /// `id` until `until_ms`: `true` when it has it, `false` while another
    /// owner's lease runs. With several processes on one store, this is
    /// what lets only one attempt a send at a time. A backend only one
    /// process can open needs no leases.
    async fn lease_delivery(
        &self,
        _id: &str,
        _owner: &str,
        _now_ms: i64,
        _until_ms: i64,
    ) -> Result<bool> {
        Ok(true)
    }

    /// Gives up `owner`'s lease on delivery `id`, if it holds one.
    async fn release_delivery(&self, _id: &str, _owner: &str) -> Result<()> {
        Ok(())
    }

    /// Moves a consumer's position to `sequence` durably, creating it if
    /// needed (`true` in the result). Fails with `AckBackwards` below its
    /// position and `AckBeyondHead` past the log's head; the same position
    /// again is accepted.
    async fn ack(&self, name: &str, sequence: u64, now_ms: i64)
    -> Result<(ConsumerPosition, bool)>;
}
