//! The event log on sled, with group commit.
//!
//! Layout: one tree, `log`, with prefixed keys, so that every append is one
//! atomic `apply_batch` (a crash never keeps an event without its dedupe
//! entry, or the reverse):
//! - `e` + sequence (8 bytes BE) → [`EventRecord`] (prost)
//! - `d` + channel id + 0 + webhookEventId → sequence (8 BE) + receive ms (8 BE)
//! - `t` + receive ms (8 BE) + dedupe key → empty: expiry index of `d`
//! - `r` + channel id + 0 + conversation id + 0 + sequence (8 BE) →
//!   receive ms (8 BE) + reply token
//! - `q` + receive ms (8 BE) + reply key → empty: expiry index of `r`
//! - `m/head` → the highest sequence ever assigned (8 BE), so numbers are
//!   never reused even when retention has emptied the log.
//!
//! One writer thread owns appends. It takes every request waiting in its
//! queue, applies them as one batch, flushes (fsync) once, answers them all
//! and then publishes the new records: concurrent webhooks share one flush.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use prost::Message as _;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{
    Result, StoreError,
    records::{AppendOutcome, EventRecord, LogBounds, NewEvent, Retention},
};

const EVENT: u8 = b'e';
const DEDUPE: u8 = b'd';
const DEDUPE_EXPIRY: u8 = b't';
const REPLY: u8 = b'r';
const REPLY_EXPIRY: u8 = b'q';
const HEAD_KEY: &[u8] = b"m/head";
/// Most append requests merged into one batch and flush.
const MAX_REQUESTS_PER_BATCH: usize = 4096;
/// Pending append requests before callers wait for the writer.
const QUEUE_DEPTH: usize = 16 * 1024;
/// Records the live tail holds for slow receivers before they lag.
const TAIL_CAPACITY: usize = 16 * 1024;

/// What was removed by one prune.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PruneReport {
    pub events: u64,
    pub dedupe_entries: u64,
    pub reply_tokens: u64,
}

/// Where an append's outcome goes.
type AppendAnswer = oneshot::Sender<Result<Vec<AppendOutcome>>>;

enum Request {
    Append(Vec<NewEvent>, AppendAnswer),
    Prune(Retention, oneshot::Sender<Result<PruneReport>>),
    /// Stop the writer; answered once it has let go of the database.
    Close(oneshot::Sender<()>),
}

/// Shared between the writer and readers.
#[derive(Debug, Default)]
struct Bounds {
    head: AtomicU64,
    oldest: AtomicU64,
}

/// Handle to the log; cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    tree: sled::Tree,
    requests: mpsc::Sender<Request>,
    bounds: Arc<Bounds>,
    tail: broadcast::Sender<Arc<EventRecord>>,
}

fn event_key(sequence: u64) -> [u8; 9] {
    let mut key = [EVENT; 9];
    key[1..].copy_from_slice(&sequence.to_be_bytes());
    key
}

fn dedupe_key(channel_id: &str, webhook_event_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + channel_id.len() + webhook_event_id.len());
    key.push(DEDUPE);
    key.extend_from_slice(channel_id.as_bytes());
    key.push(0);
    key.extend_from_slice(webhook_event_id.as_bytes());
    key
}

fn reply_key(channel_id: &str, conversation_id: &str, sequence: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(11 + channel_id.len() + conversation_id.len());
    key.push(REPLY);
    key.extend_from_slice(channel_id.as_bytes());
    key.push(0);
    key.extend_from_slice(conversation_id.as_bytes());
    key.push(0);
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

/// `prefix` + time + the key it expires.
fn expiry_key(prefix: u8, time_ms: i64, target: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(9 + target.len());
    key.push(prefix);
    key.extend_from_slice(&ms_bytes(time_ms));
    key.extend_from_slice(target);
    key
}

/// Times before 1970 sort first; they never occur in practice.
fn ms_bytes(time_ms: i64) -> [u8; 8] {
    (time_ms.max(0) as u64).to_be_bytes()
}

fn read_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

fn backend(err: sled::Error) -> StoreError {
    StoreError::Backend(err.to_string())
}

fn decode(key: &[u8], value: &[u8]) -> Result<EventRecord> {
    EventRecord::decode(value).map_err(|e| StoreError::Corrupt {
        key: format!("log/e{}", read_u64(&key[1..]).unwrap_or_default()),
        reason: e.to_string(),
    })
}

impl EventLog {
    /// Opens the log in `db` and starts its writer thread.
    pub fn open(db: &sled::Db) -> Result<Self> {
        let tree = db.open_tree("log").map_err(backend)?;
        let stored_head = tree
            .get(HEAD_KEY)
            .map_err(backend)?
            .and_then(|v| read_u64(&v))
            .unwrap_or(0);
        let last_event = tree
            .scan_prefix([EVENT])
            .next_back()
            .transpose()
            .map_err(backend)?
            .and_then(|(key, _)| read_u64(&key[1..]));
        let first_event = tree
            .scan_prefix([EVENT])
            .next()
            .transpose()
            .map_err(backend)?
            .and_then(|(key, _)| read_u64(&key[1..]));
        let head = stored_head.max(last_event.unwrap_or(0));
        let bounds = Arc::new(Bounds {
            head: AtomicU64::new(head),
            oldest: AtomicU64::new(first_event.unwrap_or(head + 1)),
        });
        let (requests, queue) = mpsc::channel(QUEUE_DEPTH);
        let (tail, _) = broadcast::channel(TAIL_CAPACITY);
        let writer = Writer {
            db: db.clone(),
            tree: tree.clone(),
            bounds: bounds.clone(),
            tail: tail.clone(),
        };
        std::thread::Builder::new()
            .name("event-log-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(|e| StoreError::Backend(format!("cannot start the log writer: {e}")))?;
        Ok(Self {
            tree,
            requests,
            bounds,
            tail,
        })
    }

    pub async fn append(&self, batch: Vec<NewEvent>) -> Result<Vec<AppendOutcome>> {
        let (answer, answered) = oneshot::channel();
        self.requests
            .send(Request::Append(batch, answer))
            .await
            .map_err(|_| writer_gone())?;
        answered.await.map_err(|_| writer_gone())?
    }

    pub async fn prune(&self, retention: Retention) -> Result<PruneReport> {
        let (answer, answered) = oneshot::channel();
        self.requests
            .send(Request::Prune(retention, answer))
            .await
            .map_err(|_| writer_gone())?;
        answered.await.map_err(|_| writer_gone())?
    }

    /// Stops the writer thread and waits until it has released the
    /// database, so that the data dir can be opened again at once. Appends
    /// fail afterwards.
    pub async fn close(&self) {
        let (answer, answered) = oneshot::channel();
        if self.requests.send(Request::Close(answer)).await.is_ok() {
            let _ = answered.await;
        }
    }

    pub fn read(&self, after: u64, limit: usize) -> Result<Vec<EventRecord>> {
        let start = event_key(after.saturating_add(1));
        self.tree
            .range(start..=event_key(u64::MAX))
            .take(limit)
            .map(|item| {
                let (key, value) = item.map_err(backend)?;
                decode(&key, &value)
            })
            .collect()
    }

    pub fn bounds(&self) -> LogBounds {
        // Read oldest first: a prune between the two loads can only make
        // `oldest` look older than it is, which readers handle (the range
        // read simply starts later).
        let oldest = self.bounds.oldest.load(Ordering::Acquire);
        let head = self.bounds.head.load(Ordering::Acquire);
        LogBounds { oldest, head }
    }

    pub fn tail(&self) -> broadcast::Receiver<Arc<EventRecord>> {
        self.tail.subscribe()
    }
}

fn writer_gone() -> StoreError {
    StoreError::Backend("the event log writer stopped".into())
}

/// The single owner of appends and pruning.
struct Writer {
    db: sled::Db,
    tree: sled::Tree,
    bounds: Arc<Bounds>,
    tail: broadcast::Sender<Arc<EventRecord>>,
}

impl Writer {
    fn run(self, mut queue: mpsc::Receiver<Request>) {
        let mut closed = None;
        // Ends when every EventLog handle is dropped, or on Close.
        while let Some(first) = queue.blocking_recv() {
            let mut appends = Vec::new();
            let mut prunes = Vec::new();
            let mut take = |request| match request {
                Request::Append(batch, answer) => appends.push((batch, answer)),
                Request::Prune(retention, answer) => prunes.push((retention, answer)),
                Request::Close(answer) => closed = Some(answer),
            };
            take(first);
            for _ in 1..MAX_REQUESTS_PER_BATCH {
                match queue.try_recv() {
                    Ok(request) => take(request),
                    Err(_) => break,
                }
            }
            if !appends.is_empty() {
                self.append(appends);
            }
            for (retention, answer) in prunes {
                let _ = answer.send(self.prune(retention));
            }
            if closed.is_some() {
                break;
            }
        }
        if let Err(err) = self.db.flush() {
            tracing::error!(error = %err, "final flush of the event log failed");
        }
        // Let go of the database before saying so.
        drop(self);
        if let Some(answer) = closed {
            let _ = answer.send(());
        }
    }

    fn append(&self, requests: Vec<(Vec<NewEvent>, AppendAnswer)>) {
        let mut head = self.bounds.head.load(Ordering::Acquire);
        let first_new = head + 1;
        let mut batch = sled::Batch::default();
        // Duplicates inside this batch are not in the tree yet.
        let mut in_batch: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut fresh: Vec<Arc<EventRecord>> = Vec::new();
        let mut answers = Vec::with_capacity(requests.len());
        let mut failed = None;

        for (events, answer) in requests {
            let mut outcomes = Vec::with_capacity(events.len());
            for new in events {
                let dedupe = new
                    .webhook_event_id
                    .as_deref()
                    .map(|id| dedupe_key(&new.record.channel_id, id));
                if let Some(key) = &dedupe {
                    let known = match in_batch.get(key) {
                        Some(&sequence) => Some(sequence),
                        None => match self.tree.get(key) {
                            Ok(value) => value.and_then(|v| read_u64(&v)),
                            Err(err) => {
                                failed = Some(backend(err));
                                None
                            }
                        },
                    };
                    if let Some(sequence) = known {
                        outcomes.push(AppendOutcome::Duplicate { sequence });
                        continue;
                    }
                }
                head += 1;
                let mut record = new.record;
                record.sequence = head;
                let received = record.receive_time_ms;
                batch.insert(&event_key(head)[..], record.encode_to_vec());
                if let Some(key) = dedupe {
                    let mut value = head.to_be_bytes().to_vec();
                    value.extend_from_slice(&ms_bytes(received));
                    batch.insert(expiry_key(DEDUPE_EXPIRY, received, &key), &[][..]);
                    batch.insert(key.clone(), value);
                    in_batch.insert(key, head);
                }
                if let Some(token) = new.reply_token.filter(|t| !t.is_empty()) {
                    let key = reply_key(&record.channel_id, &record.conversation_id, head);
                    let mut value = ms_bytes(received).to_vec();
                    value.extend_from_slice(token.as_bytes());
                    batch.insert(expiry_key(REPLY_EXPIRY, received, &key), &[][..]);
                    batch.insert(key, value);
                }
                outcomes.push(AppendOutcome::Stored { sequence: head });
                fresh.push(Arc::new(record));
            }
            answers.push((answer, outcomes));
        }

        if failed.is_none() && !fresh.is_empty() {
            batch.insert(HEAD_KEY, &head.to_be_bytes()[..]);
            let written = self
                .tree
                .apply_batch(batch)
                .and_then(|()| self.db.flush().map(|_| ()));
            if let Err(err) = written {
                failed = Some(backend(err));
            }
        }
        if let Some(err) = failed {
            tracing::error!(error = %err, "appending to the event log failed");
            // Nothing of this batch is acknowledged; numbers stay unused only
            // if the batch never reached the tree.
            if self.tree.get(event_key(first_new)).ok().flatten().is_some() {
                self.bounds.head.store(head, Ordering::Release);
            }
            for (answer, _) in answers {
                let _ = answer.send(Err(StoreError::Backend(err.to_string())));
            }
            return;
        }

        self.bounds.head.store(head, Ordering::Release);
        for (answer, outcomes) in answers {
            let _ = answer.send(Ok(outcomes));
        }
        // Published only once durable, in sequence order. No receiver is fine.
        for record in fresh {
            let _ = self.tail.send(record);
        }
    }

    fn prune(&self, retention: Retention) -> Result<PruneReport> {
        let mut report = PruneReport::default();
        let head = self.bounds.head.load(Ordering::Acquire);
        let mut oldest = self.bounds.oldest.load(Ordering::Acquire);
        let mut batch = sled::Batch::default();
        for item in self.tree.range(event_key(oldest)..=event_key(u64::MAX)) {
            let (key, value) = item.map_err(backend)?;
            let record = decode(&key, &value)?;
            let kept = head.saturating_sub(record.sequence) + 1;
            let over_count = retention.max_events.is_some_and(|max| kept > max);
            if record.receive_time_ms >= retention.events_before_ms && !over_count {
                break;
            }
            batch.remove(key);
            oldest = record.sequence + 1;
            report.events += 1;
        }
        report.dedupe_entries =
            self.expire(DEDUPE_EXPIRY, retention.dedupe_before_ms, &mut batch)?;
        report.reply_tokens =
            self.expire(REPLY_EXPIRY, retention.reply_tokens_before_ms, &mut batch)?;
        self.tree.apply_batch(batch).map_err(backend)?;
        // Readers must never be told a record exists that is already gone.
        self.bounds.oldest.store(oldest, Ordering::Release);
        Ok(report)
    }

    /// Queues removal of the entries whose expiry key is older than `before_ms`.
    fn expire(&self, prefix: u8, before_ms: i64, batch: &mut sled::Batch) -> Result<u64> {
        let end = expiry_key(prefix, before_ms, &[]);
        let mut removed = 0;
        for item in self.tree.range(vec![prefix]..end) {
            let (key, _) = item.map_err(backend)?;
            batch.remove(&key[9..]);
            batch.remove(key);
            removed += 1;
        }
        Ok(removed)
    }
}
