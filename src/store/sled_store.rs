//! The embedded sled implementation of [`Store`].
//!
//! Layout: tree `channels` maps our channel id to the JSON record; tree
//! `channel_line_ids` maps a LINE channel id to our id (the uniqueness
//! index); tree `meta` holds service-wide facts. Changes that touch a record
//! and its index run in one sled transaction, and every mutating call ends
//! with a flush so it survives a crash once it has returned.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use sled::{
    Transactional as _,
    transaction::{ConflictableTransactionError, TransactionError},
};
use tokio::sync::broadcast;

use super::group_flush::GroupFlush;
use super::{
    AckStep, AppendOutcome, ChannelRecord, ConsumerPosition, DeliveryQuery, DeliveryRecord,
    EventRecord, LogBounds, NewEvent, PruneReport, ReplyToken, Result, Retention, Store,
    StoreError, TokenStateRecord, sled_log::EventLog,
};

const CHANNELS: &str = "channels";
const CONSUMERS: &str = "consumers";
const DELIVERIES: &str = "deliveries";
const IDEMPOTENCY: &str = "idempotency";
const USED_REPLY_TOKENS: &str = "used_reply_tokens";
const CHANNEL_LINE_IDS: &str = "channel_line_ids";
const META: &str = "meta";
const TOKENS: &str = "tokens";

/// sled-backed store. Cheap to clone (sled handles are reference-counted).
#[derive(Clone)]
pub struct SledStore {
    channels: sled::Tree,
    line_ids: sled::Tree,
    meta: sled::Tree,
    consumers: sled::Tree,
    flusher: GroupFlush,
    deliveries: sled::Tree,
    idempotency: sled::Tree,
    used_reply_tokens: sled::Tree,
    tokens: sled::Tree,
    log: EventLog,
    cached: Arc<ChannelCache>,
}

/// Most channel records [`ChannelCache`] keeps.
const CACHED_CHANNELS: usize = 1024;

/// Channel records as read from the tree, so that a webhook's read of its
/// channel costs neither a sled lookup nor a JSON decode (4 % of the
/// server's CPU under ingest). This process is the tree's only writer:
/// every write drops the record's entry once committed, and an entry is
/// filled from the tree with the lock held, so no fill outlives a write.
#[derive(Default)]
struct ChannelCache(Mutex<HashMap<Box<[u8]>, ChannelRecord>>);

impl ChannelCache {
    fn get_or_read(
        &self,
        id: &[u8],
        read: impl FnOnce() -> Result<Option<ChannelRecord>>,
    ) -> Result<Option<ChannelRecord>> {
        let mut cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(record) = cached.get(id) {
            return Ok(Some(record.clone()));
        }
        let Some(record) = read()? else {
            return Ok(None);
        };
        if cached.len() >= CACHED_CHANNELS {
            cached.clear();
        }
        cached.insert(id.into(), record.clone());
        Ok(Some(record))
    }

    /// After a write of the record `id`, committed or not.
    fn forget(&self, id: &[u8]) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

impl SledStore {
    /// Counters of the event log writer.
    #[cfg(test)]
    pub fn log_stats(&self) -> &super::sled_log::LogStats {
        self.log.stats()
    }

    /// Opens (or creates) the store in `dir` with the default page cache.
    /// Blocking: call it from `spawn_blocking` in async code.
    #[cfg(test)]
    pub fn open(dir: &Path) -> Result<Self> {
        let now_ms = crate::time::Clock::system().now_ms();
        Self::open_with_cache(dir, DEFAULT_CACHE_BYTES, now_ms)
    }

    /// Opens the store in `dir` again after a handle to it was dropped.
    /// sled's I/O threads may hold the database for a moment after the
    /// last handle goes, and the file lock goes with them: wait for it.
    #[cfg(test)]
    pub fn open_when_released(dir: &Path) -> Result<Self> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Self::open(dir) {
                Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// Opens (or creates) the store in `dir`, keeping up to `cache_bytes`
    /// of pages in memory; `now_ms` is the time of opening (the reply
    /// tokens of the 20 minutes before it are loaded).
    pub fn open_with_cache(dir: &Path, cache_bytes: u64, now_ms: i64) -> Result<Self> {
        check_data_file(&dir.join("db"))?;
        let config = sled::Config::new().path(dir).cache_capacity(cache_bytes);
        let db = config.open().map_err(|e| match e {
            // sled takes an exclusive file lock; a second process fails here.
            sled::Error::Io(io) if io.to_string().contains("lock") => StoreError::Locked {
                path: dir.display().to_string(),
            },
            sled::Error::Unsupported(reason) => StoreError::Damaged {
                path: dir.join("conf").display().to_string(),
                reason,
            },
            sled::Error::Corruption { at, .. } => StoreError::Damaged {
                path: dir.join("db").display().to_string(),
                reason: format!("sled found damage at {at:?}"),
            },
            other => backend(other),
        })?;
        let channels = db.open_tree(CHANNELS).map_err(backend)?;
        let line_ids = db.open_tree(CHANNEL_LINE_IDS).map_err(backend)?;
        let meta = db.open_tree(META).map_err(backend)?;
        let consumers = db.open_tree(CONSUMERS).map_err(backend)?;
        let deliveries = db.open_tree(DELIVERIES).map_err(backend)?;
        let idempotency = db.open_tree(IDEMPOTENCY).map_err(backend)?;
        let used_reply_tokens = db.open_tree(USED_REPLY_TOKENS).map_err(backend)?;
        let tokens = db.open_tree(TOKENS).map_err(backend)?;
        let log = EventLog::open(&db, &dir.join("db"), now_ms)?;
        let data_file = std::fs::File::open(dir.join("db"))
            .map_err(|e| StoreError::Backend(format!("cannot open sled's data file: {e}")))?;
        let flusher = GroupFlush::new(db.clone(), data_file);
        Ok(Self {
            channels,
            line_ids,
            meta,
            consumers,
            flusher,
            deliveries,
            idempotency,
            used_reply_tokens,
            tokens,
            log,
            cached: Arc::default(),
        })
    }

    /// Whether `key` is in the meta tree, without writing anything.
    pub fn meta_contains(&self, key: &str) -> Result<bool> {
        self.meta.contains_key(key.as_bytes()).map_err(backend)
    }

    /// Replaces a delivery if its stored update time is
    /// `previous_update_ms` (not flushed).
    fn swap_delivery(&self, previous_update_ms: i64, delivery: &DeliveryRecord) -> Result<()> {
        let value = serde_json::to_vec(delivery).expect("a delivery always serializes");
        let key = delivery.id.as_bytes();
        let Some(current) = self.deliveries.get(key).map_err(backend)? else {
            return Err(StoreError::NotFound {
                id: delivery.id.clone(),
            });
        };
        if decode_delivery(&current)?.update_time_ms != previous_update_ms {
            return Err(StoreError::Conflict {
                id: delivery.id.clone(),
                expected: previous_update_ms.max(0) as u64,
            });
        }
        let swapped = self
            .deliveries
            .compare_and_swap(key, Some(current), Some(value))
            .map_err(backend)?;
        if swapped.is_err() {
            return Err(StoreError::Conflict {
                id: delivery.id.clone(),
                expected: previous_update_ms.max(0) as u64,
            });
        }
        Ok(())
    }

    async fn flush_now(&self) -> Result<()> {
        self.flusher.flush().await
    }
}

/// Refuses a data file that is not sled's before sled opens it: sled takes
/// a file it cannot read for an empty store, and overwrites it. sled's
/// file starts with a segment header of 20 bytes whose first 4 are the
/// CRC-32 (inverted, little-endian) of the other 16. An empty or missing
/// file is a new store.
pub fn check_data_file(path: &Path) -> Result<()> {
    use std::io::Read as _;
    const HEADER: usize = 20;
    let damaged = |reason: String| StoreError::Damaged {
        path: path.display().to_string(),
        reason,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(damaged(format!("cannot read it: {err}"))),
    };
    let mut header = Vec::with_capacity(HEADER);
    (&mut file)
        .take(HEADER as u64)
        .read_to_end(&mut header)
        .map_err(|err| damaged(format!("cannot read it: {err}")))?;
    match header.len() {
        0 => Ok(()),
        n if n < HEADER => Err(damaged(format!(
            "it holds {n} bytes, shorter than sled's first header"
        ))),
        _ => {
            let stored =
                u32::from_le_bytes([header[0], header[1], header[2], header[3]]) ^ u32::MAX;
            if header.iter().all(|b| *b == 0) || crc32fast::hash(&header[4..]) == stored {
                Ok(())
            } else {
                Err(damaged(
                    "its first bytes are not a sled segment header".into(),
                ))
            }
        }
    }
}

/// sled's own default is 1 GiB; see `store_cache_mib` in the defaults.
#[cfg(test)]
pub const DEFAULT_CACHE_BYTES: u64 = 128 * 1024 * 1024;

fn backend(err: sled::Error) -> StoreError {
    match &err {
        sled::Error::Io(io) => StoreError::from_io("sled", io),
        _ => StoreError::Backend(err.to_string()),
    }
}

fn encode(record: &ChannelRecord) -> Vec<u8> {
    serde_json::to_vec(record).expect("a ChannelRecord always serializes to JSON")
}

fn decode(key: &[u8], bytes: &[u8]) -> Result<ChannelRecord> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: format!("{CHANNELS}/{}", String::from_utf8_lossy(key)),
        reason: e.to_string(),
    })
}

/// Turns a transaction outcome into our error type.
fn tx_result<T>(result: std::result::Result<T, TransactionError<StoreError>>) -> Result<T> {
    result.map_err(|e| match e {
        TransactionError::Abort(err) => err,
        TransactionError::Storage(err) => backend(err),
    })
}

fn abort<T>(err: StoreError) -> std::result::Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(err))
}

#[async_trait]
impl Store for SledStore {
    async fn insert_channel(&self, channel: &ChannelRecord) -> Result<()> {
        let value = encode(channel);
        let written = tx_result((&self.channels, &self.line_ids).transaction(
            |(channels, line_ids)| {
                if channels.get(channel.id.as_bytes())?.is_some() {
                    return abort(StoreError::IdTaken {
                        id: channel.id.clone(),
                    });
                }
                if let Some(existing) = line_ids.get(channel.line_channel_id.as_bytes())? {
                    return abort(StoreError::LineChannelIdTaken {
                        line_channel_id: channel.line_channel_id.clone(),
                        existing_id: String::from_utf8_lossy(&existing).into_owned(),
                    });
                }
                channels.insert(channel.id.as_bytes(), value.as_slice())?;
                line_ids.insert(channel.line_channel_id.as_bytes(), channel.id.as_bytes())?;
                Ok(())
            },
        ));
        self.cached.forget(channel.id.as_bytes());
        written?;
        self.flush_now().await
    }

    async fn get_channel(&self, id: &str) -> Result<Option<ChannelRecord>> {
        let id = id.as_bytes();
        self.cached
            .get_or_read(id, || match self.channels.get(id).map_err(backend)? {
                Some(bytes) => decode(id, &bytes).map(Some),
                None => Ok(None),
            })
    }

    async fn find_channel_by_line_id(&self, line_channel_id: &str) -> Result<Option<String>> {
        Ok(self
            .line_ids
            .get(line_channel_id.as_bytes())
            .map_err(backend)?
            .map(|id| String::from_utf8_lossy(&id).into_owned()))
    }

    async fn list_channels(
        &self,
        after_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ChannelRecord>> {
        use std::ops::Bound;
        let start = match after_id {
            Some(id) => Bound::Excluded(id.as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        self.channels
            .range::<Vec<u8>, _>((start, Bound::Unbounded))
            .take(limit)
            .map(|item| {
                let (key, value) = item.map_err(backend)?;
                decode(&key, &value)
            })
            .collect()
    }

    async fn replace_channel(&self, expected_version: u64, channel: &ChannelRecord) -> Result<()> {
        let value = encode(channel);
        let written = tx_result((&self.channels, &self.line_ids).transaction(
            |(channels, line_ids)| {
                let Some(current) = channels.get(channel.id.as_bytes())? else {
                    return abort(StoreError::NotFound {
                        id: channel.id.clone(),
                    });
                };
                let current = match decode(channel.id.as_bytes(), &current) {
                    Ok(current) => current,
                    Err(err) => return abort(err),
                };
                if current.version != expected_version {
                    return abort(StoreError::Conflict {
                        id: channel.id.clone(),
                        expected: expected_version,
                    });
                }
                if current.line_channel_id != channel.line_channel_id {
                    if let Some(existing) = line_ids.get(channel.line_channel_id.as_bytes())? {
                        return abort(StoreError::LineChannelIdTaken {
                            line_channel_id: channel.line_channel_id.clone(),
                            existing_id: String::from_utf8_lossy(&existing).into_owned(),
                        });
                    }
                    line_ids.remove(current.line_channel_id.as_bytes())?;
                    line_ids.insert(channel.line_channel_id.as_bytes(), channel.id.as_bytes())?;
                }
                channels.insert(channel.id.as_bytes(), value.as_slice())?;
                Ok(())
            },
        ));
        self.cached.forget(channel.id.as_bytes());
        written?;
        self.flush_now().await
    }

    async fn delete_channel(&self, id: &str) -> Result<Option<ChannelRecord>> {
        let deleted = tx_result((&self.channels, &self.line_ids, &self.tokens).transaction(
            |(channels, line_ids, tokens)| {
                let Some(bytes) = channels.remove(id.as_bytes())? else {
                    return Ok(None);
                };
                tokens.remove(id.as_bytes())?;
                let record = match decode(id.as_bytes(), &bytes) {
                    Ok(record) => record,
                    Err(err) => return abort(err),
                };
                line_ids.remove(record.line_channel_id.as_bytes())?;
                Ok(Some(record))
            },
        ));
        self.cached.forget(id.as_bytes());
        let deleted = deleted?;
        if deleted.is_some() {
            self.flush_now().await?;
        }
        Ok(deleted)
    }

    async fn get_token_state(&self, channel_id: &str) -> Result<Option<TokenStateRecord>> {
        match self.tokens.get(channel_id.as_bytes()).map_err(backend)? {
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|err| StoreError::Corrupt {
                        key: format!("tokens/{channel_id}"),
                        reason: err.to_string(),
                    })
            }
            None => Ok(None),
        }
    }

    async fn put_token_state(&self, expected_version: u64, state: &TokenStateRecord) -> Result<()> {
        let value = serde_json::to_vec(state).expect("a token state serializes");
        tx_result(
            (&self.channels, &self.tokens).transaction(|(channels, tokens)| {
                // A state written for a deleted channel would outlive it.
                if channels.get(state.channel_id.as_bytes())?.is_none() {
                    return abort(StoreError::NotFound {
                        id: state.channel_id.clone(),
                    });
                }
                let stored_version = match tokens.get(state.channel_id.as_bytes())? {
                    Some(bytes) => match serde_json::from_slice::<TokenStateRecord>(&bytes) {
                        Ok(stored) => stored.version,
                        Err(err) => {
                            return abort(StoreError::Corrupt {
                                key: format!("tokens/{}", state.channel_id),
                                reason: err.to_string(),
                            });
                        }
                    },
                    None => 0,
                };
                if stored_version != expected_version {
                    return abort(StoreError::Conflict {
                        id: state.channel_id.clone(),
                        expected: expected_version,
                    });
                }
                tokens.insert(state.channel_id.as_bytes(), value.as_slice())?;
                Ok(())
            }),
        )?;
        self.flush_now().await
    }

    async fn meta_get_or_insert(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        let swapped = self
            .meta
            .compare_and_swap(key.as_bytes(), None as Option<&[u8]>, Some(value))
            .map_err(backend)?;
        match swapped {
            Ok(()) => {
                self.flush_now().await?;
                Ok(value.to_vec())
            }
            Err(cas) => Ok(cas.current.map(|v| v.to_vec()).unwrap_or_default()),
        }
    }

    fn commit_metrics(&self) -> Option<super::CommitMetrics> {
        let stats = self.log.stats();
        Some(super::CommitMetrics {
            records: stats.commit_records.clone(),
            seconds: stats.commit_seconds.clone(),
        })
    }

    async fn consumers(&self) -> Result<Vec<(String, ConsumerPosition)>> {
        self.consumers
            .iter()
            .map(|item| {
                let (key, value) = item.map_err(backend)?;
                let name = String::from_utf8_lossy(&key).into_owned();
                let position = decode_consumer(&name, &value)?;
                Ok((name, position))
            })
            .collect()
    }

    async fn meta_put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.meta.insert(key.as_bytes(), value).map_err(backend)?;
        self.flush_now().await
    }

    async fn flush(&self) -> Result<()> {
        self.flush_now().await
    }

    async fn close(&self) -> Result<()> {
        // The log's writer stops even when the flush fails (a full disk),
        // so that a reopen finds the files released.
        let flushed = self.flush_now().await;
        self.log.close().await;
        flushed
    }

    async fn append(&self, batch: Vec<NewEvent>) -> Result<Vec<AppendOutcome>> {
        self.log.append(batch).await
    }

    async fn read_events(&self, after: u64, limit: usize) -> Result<Vec<EventRecord>> {
        // Reading and decoding a page is blocking work: keep it off the
        // async workers that serve webhooks.
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.read(after, limit))
            .await
            .map_err(|e| StoreError::Backend(format!("reading the event log failed: {e}")))?
    }

    fn bounds(&self) -> LogBounds {
        self.log.bounds()
    }

    fn tail(&self) -> broadcast::Receiver<Arc<EventRecord>> {
        self.log.tail()
    }

    async fn prune(&self, retention: Retention) -> Result<PruneReport> {
        self.log.prune(retention).await
    }

    fn recent_reply_tokens(&self, channel_id: &str, conversation_id: &str) -> Vec<ReplyToken> {
        self.log.recent_reply_tokens(channel_id, conversation_id)
    }

    async fn claim_reply_token(&self, channel_id: &str, token: &str, now_ms: i64) -> Result<bool> {
        let key = [channel_id.as_bytes(), b"\0", token.as_bytes()].concat();
        let claimed = self
            .used_reply_tokens
            .compare_and_swap(key, None as Option<&[u8]>, Some(&now_ms.to_be_bytes()[..]))
            .map_err(backend)?
            .is_ok();
        if claimed {
            self.flush_now().await?;
        }
        Ok(claimed)
    }

    async fn insert_delivery(&self, delivery: &DeliveryRecord) -> Result<Option<DeliveryRecord>> {
        let value = serde_json::to_vec(delivery).expect("a delivery always serializes");
        let index_key = (!delivery.idempotency_key.is_empty()).then(|| {
            [
                delivery.channel_id.as_bytes(),
                b"\0",
                delivery.idempotency_key.as_bytes(),
            ]
            .concat()
        });
        let existing = tx_result((&self.deliveries, &self.idempotency).transaction(
            |(deliveries, idempotency)| {
                if let Some(key) = &index_key {
                    if let Some(id) = idempotency.get(key)? {
                        return Ok(deliveries.get(&id)?);
                    }
                    idempotency.insert(key.as_slice(), delivery.id.as_bytes())?;
                }
                deliveries.insert(delivery.id.as_bytes(), value.as_slice())?;
                Ok(None)
            },
        ))?;
        match existing {
            Some(bytes) => decode_delivery(&bytes).map(Some),
            None => {
                self.flush_now().await?;
                Ok(None)
            }
        }
    }

    async fn update_delivery(
        &self,
        previous_update_ms: i64,
        delivery: &DeliveryRecord,
    ) -> Result<()> {
        self.swap_delivery(previous_update_ms, delivery)?;
        self.flush_now().await
    }

    async fn update_delivery_lazily(
        &self,
        previous_update_ms: i64,
        delivery: &DeliveryRecord,
    ) -> Result<()> {
        self.swap_delivery(previous_update_ms, delivery)
    }

    async fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>> {
        match self.deliveries.get(id.as_bytes()).map_err(backend)? {
            Some(bytes) => decode_delivery(&bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn delivery_by_idempotency_key(
        &self,
        channel_id: &str,
        key: &str,
    ) -> Result<Option<DeliveryRecord>> {
        let index_key = [channel_id.as_bytes(), b"\0", key.as_bytes()].concat();
        match self.idempotency.get(index_key).map_err(backend)? {
            Some(id) => self.get_delivery(&String::from_utf8_lossy(&id)).await,
            None => Ok(None),
        }
    }

    async fn unfinished_deliveries(&self) -> Result<Vec<DeliveryRecord>> {
        let mut unfinished = Vec::new();
        for item in self.deliveries.iter() {
            let (_, bytes) = item.map_err(backend)?;
            let delivery = decode_delivery(&bytes)?;
            if !delivery.is_settled() {
                unfinished.push(delivery);
            }
        }
        Ok(unfinished)
    }

    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<DeliveryRecord>> {
        let entries = match &query.before_id {
            Some(before) => self.deliveries.range(..before.as_bytes().to_vec()),
            None => self.deliveries.range::<Vec<u8>, _>(..),
        };
        let mut found = Vec::new();
        for item in entries.rev() {
            if found.len() >= query.limit {
                break;
            }
            let (_, bytes) = item.map_err(backend)?;
            let delivery = decode_delivery(&bytes)?;
            if query.matches(&delivery) {
                found.push(delivery);
            }
        }
        Ok(found)
    }

    async fn consumer(&self, name: &str) -> Result<Option<ConsumerPosition>> {
        match self.consumers.get(name.as_bytes()).map_err(backend)? {
            Some(bytes) => decode_consumer(name, &bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn ack(
        &self,
        name: &str,
        sequence: u64,
        now_ms: i64,
    ) -> Result<(ConsumerPosition, bool)> {
        let head = self.log.bounds().head;
        if sequence > head {
            return Err(StoreError::AckBeyondHead { sequence, head });
        }
        // Compare-and-swap so concurrent acks of one consumer never move it
        // backwards.
        loop {
            let current = self.consumers.get(name.as_bytes()).map_err(backend)?;
            let position = current
                .as_ref()
                .map(|bytes| decode_consumer(name, bytes))
                .transpose()?;
            let next = match ConsumerPosition::ack(position.as_ref(), name, sequence, now_ms)? {
                AckStep::Unchanged(position) => return Ok((position, false)),
                AckStep::MoveTo(next) => next,
            };
            let encoded = serde_json::to_vec(&next).expect("a position always serializes");
            let swapped = self
                .consumers
                .compare_and_swap(name.as_bytes(), current, Some(encoded))
                .map_err(backend)?;
            if swapped.is_ok() {
                self.flush_now().await?;
                return Ok((next, position.is_none()));
            }
        }
    }
}

fn decode_delivery(bytes: &[u8]) -> Result<DeliveryRecord> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: format!("{DELIVERIES}/…"),
        reason: e.to_string(),
    })
}

fn decode_consumer(name: &str, bytes: &[u8]) -> Result<ConsumerPosition> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: format!("{CONSUMERS}/{name}"),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DeliveryState, SendKind};

    fn delivery(update_time_ms: i64) -> DeliveryRecord {
        DeliveryRecord {
            id: "dl_1".into(),
            channel_id: "ch_1".into(),
            kind: SendKind::Push,
            conversation: None,
            body: serde_json::json!({}),
            retry_key: "k".into(),
            state: DeliveryState::Queued,
            attempts: 0,
            next_attempt_ms: None,
            line_request_id: String::new(),
            accepted_request_id: String::new(),
            error: None,
            failure: None,
            sent_messages: Vec::new(),
            idempotency_key: String::new(),
            request_digest: String::new(),
            reply_webhook_event_id: String::new(),
            push_fallback: None,
            create_time_ms: 1,
            update_time_ms,
            fell_back_to_push: false,
            typed_messages: String::new(),
            logged: crate::store::LoggedRecords::None,
            narrowcast: None,
        }
    }

    #[tokio::test]
    async fn a_delivery_is_replaced_only_as_its_writer_last_saw_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store.insert_delivery(&delivery(1)).await.unwrap();
        // The writer that read it at 1 moves it to 2.
        let mut moved = delivery(2);
        moved.state = DeliveryState::Sending;
        store.update_delivery(1, &moved).await.unwrap();
        // A writer still holding the copy at 1 is refused, and changes
        // nothing.
        let mut stale = delivery(3);
        stale.state = DeliveryState::Delivered;
        let err = store.update_delivery(1, &stale).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
        assert_eq!(store.get_delivery("dl_1").await.unwrap(), Some(moved));
        let err = store
            .update_delivery(
                1,
                &DeliveryRecord {
                    id: "dl_none".into(),
                    ..delivery(2)
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    }

    fn channel(version: u64, display_name: &str) -> ChannelRecord {
        ChannelRecord {
            id: "ch_1".into(),
            version,
            display_name: display_name.into(),
            line_channel_id: "1234567890".into(),
            channel_secret: crate::store::SealedSecret {
                ciphertext: vec![1, 2, 3],
                fingerprint: "f".into(),
            },
            previous_channel_secret: None,
            token_mode: crate::store::TokenMode::LongLived,
            access_token: None,
            key_pair: None,
            pending_key_pair: None,
            previous_key_pair: None,
            create_time_ms: 1,
            update_time_ms: version as i64,
        }
    }

    #[tokio::test]
    async fn a_channel_read_again_is_what_is_stored_now() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store.insert_channel(&channel(1, "Shop")).await.unwrap();
        for _ in 0..2 {
            assert_eq!(
                store.get_channel("ch_1").await.unwrap(),
                Some(channel(1, "Shop"))
            );
        }
        store
            .replace_channel(1, &channel(2, "Shop 2"))
            .await
            .unwrap();
        assert_eq!(
            store.get_channel("ch_1").await.unwrap(),
            Some(channel(2, "Shop 2"))
        );
        // A write refused changes nothing, read or stored.
        let err = store
            .replace_channel(1, &channel(2, "Stale"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
        assert_eq!(
            store.get_channel("ch_1").await.unwrap(),
            Some(channel(2, "Shop 2"))
        );
        store.delete_channel("ch_1").await.unwrap();
        assert_eq!(store.get_channel("ch_1").await.unwrap(), None);
        store.insert_channel(&channel(1, "Again")).await.unwrap();
        assert_eq!(
            store.get_channel("ch_1").await.unwrap(),
            Some(channel(1, "Again"))
        );
    }

    /// Reads racing writes end with what the tree holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn reads_racing_writes_end_on_the_stored_channel() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store.insert_channel(&channel(1, "v1")).await.unwrap();
        let mut tasks = Vec::new();
        for writer in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..25 {
                    loop {
                        let current = store.get_channel("ch_1").await.unwrap().unwrap();
                        let next = channel(current.version + 1, &format!("w{writer}-{n}"));
                        match store.replace_channel(current.version, &next).await {
                            Ok(()) => break,
                            Err(StoreError::Conflict { .. }) => tokio::task::yield_now().await,
                            Err(err) => panic!("{err}"),
                        }
                    }
                }
            }));
        }
        for _ in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut last = 0;
                for _ in 0..200 {
                    let read = store.get_channel("ch_1").await.unwrap().unwrap();
                    assert!(read.version >= last, "{} after {last}", read.version);
                    last = read.version;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let stored = decode(b"ch_1", &store.channels.get(b"ch_1").unwrap().unwrap()).unwrap();
        assert_eq!(stored.version, 101);
        assert_eq!(store.get_channel("ch_1").await.unwrap(), Some(stored));
    }
}
