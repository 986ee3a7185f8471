//! The event log on sled, with group commit.
//!
//! Layout: one tree, `log`, with prefixed keys, so that every append is one
//! atomic `apply_batch` (a crash never keeps an event without its dedupe
//! entry, or the reverse):
//! - `c` + first sequence (8 bytes BE) → a chunk of up to
//!   [`RECORDS_PER_CHUNK`] consecutive [`EventRecord`]s (prost, field 1
//!   repeated), written by one group commit
//! - `D` + first sequence (8 bytes BE) → a run of dedupe entries written by
//!   one group commit (see [`super::dedupe_index`]), held in memory too
//! - `d` + channel id + 0 + webhookEventId → sequence (8 BE) + receive ms
//!   (8 BE): one dedupe entry per key, as versions before runs wrote them;
//!   read at start-up and left to expire in place
//! - `m/head` → the highest sequence ever assigned (8 BE), so numbers are
//!   never reused even when retention has emptied the log.
//!
//! sled's cost is per key (each insert links a page fragment, and pages are
//! copied when consolidated), and the writer is the one serial step of
//! ingest. Profiling ingest showed the writer spending about half its time
//! on one key per event and most of the rest on a dedupe key per event:
//! chunks and dedupe runs make both one key per commit. Versions before
//! chunks stored `e` + sequence → one record; such logs are converted on
//! open.
//!
//! Expired dedupe runs are removed from the oldest on, and legacy dedupe
//! entries by a bounded scan that resumes where the previous prune
//! stopped. Recent reply tokens live in memory, rebuilt from the log's
//! tail at start-up (the tokens themselves are durable inside their event
//! records).
//!
//! One writer thread owns appends. It takes every request waiting in its
//! queue, applies them as one batch, flushes (fsync) once, answers them all
//! and then publishes the new records: concurrent webhooks share one flush.

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use crate::log_limit::Throttle;
use prost::Message as _;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{
    Result, StoreError,
    dedupe_index::{self, DedupeIndex, Entry, Fingerprint},
    records::{
        AppendOutcome, EventRecord, LogBounds, NewEvent, PruneReport, ReplyToken, Retention,
    },
    reply_tokens::{REPLY_TOKEN_LIFETIME, ReplyTokens},
};

/// Key prefix of a chunk of events.
const CHUNK: u8 = b'c';
/// Key prefix of a single event, as versions before chunks stored them.
const LEGACY_EVENT: u8 = b'e';
const DEDUPE: u8 = b'd';
const HEAD_KEY: &[u8] = b"m/head";
/// Dedupe entries examined per prune at least; prunes run every second.
/// The budget grows with what was appended since the last prune, so the
/// sweep always outpaces ingest and the dedupe memory stays bounded.
const DEDUPE_SCAN_PER_PRUNE: usize = 10_000;
/// Most events one prune deletes: a prune runs on the writer thread, and
/// webhooks wait behind it (LINE gives us 2 s).
const EVENTS_PRUNED_PER_RUN: u64 = 20_000;
/// Most records in one chunk: large enough that the chunk key costs little
/// per event, small enough that a reader starting mid-chunk decodes little
/// it does not need, and that sled keeps chunks inline in its pages.
pub const RECORDS_PER_CHUNK: usize = 64;
/// Legacy records converted per batch when an old log is opened.
const LEGACY_PER_BATCH: usize = 64 * RECORDS_PER_CHUNK;
/// Most append requests merged into one batch and flush.
const MAX_REQUESTS_PER_BATCH: usize = 4096;
/// Pending append requests before callers wait for the writer.
const QUEUE_DEPTH: usize = 16 * 1024;
/// Records the live tail holds for slow receivers before they lag.
const TAIL_CAPACITY: usize = 16 * 1024;

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
    /// Highest durable sequence: readers never see past it, so nobody
    /// receives an event that a crash could still take away.
    head: AtomicU64,
    oldest: AtomicU64,
}

/// Counters of the writer, for tests and metrics.
#[derive(Debug)]
pub struct LogStats {
    /// Group commits (flush + fdatasync) done.
    pub flushes: AtomicU64,
    /// Records appended.
    pub appended: AtomicU64,
    /// Records stored per group commit.
    pub commit_records: super::CommitHistogram,
    /// Time of sled's flush plus fdatasync per group commit.
    pub commit_seconds: super::CommitHistogram,
}

impl Default for LogStats {
    fn default() -> Self {
        Self {
            flushes: AtomicU64::default(),
            appended: AtomicU64::default(),
            commit_records: super::CommitHistogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 12),
            ),
            // 50 µs … ~1.6 s.
            commit_seconds: super::CommitHistogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.00005, 2.0, 16),
            ),
        }
    }
}

/// Handle to the log; cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    tree: sled::Tree,
    requests: mpsc::Sender<Request>,
    bounds: Arc<Bounds>,
    tail: broadcast::Sender<Arc<EventRecord>>,
    reply_tokens: Arc<ReplyTokens>,
    /// The background load of the reply tokens found at opening.
    token_load: Arc<TokenLoad>,
    stats: Arc<LogStats>,
}

/// The start-up load of recent reply tokens: whether it has ended, and a
/// request to end it early (the log is closing).
#[derive(Default)]
struct TokenLoad {
    done: std::sync::Mutex<bool>,
    ended: std::sync::Condvar,
    stop: AtomicBool,
}

impl TokenLoad {
    fn finish(&self) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.ended.notify_all();
    }

    fn wait(&self) {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            done = self.ended.wait(done).unwrap_or_else(|p| p.into_inner());
        }
    }
}

struct FinishOnDrop<'a>(&'a TokenLoad);

impl Drop for FinishOnDrop<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Indexes the reply tokens of the events up to `head` received `since`
/// then, newest first, until the index is full or `stop` is set.
fn load_reply_tokens(
    tree: &sled::Tree,
    head: u64,
    since: i64,
    reply_tokens: &ReplyTokens,
    stop: &AtomicBool,
) -> Result<()> {
    for item in tree.range(chunk_key(0)..=chunk_key(head)).rev() {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let (key, value) = item.map_err(backend)?;
        let chunk = ReplyTokenChunk::decode(&*value).map_err(|e| corrupt(&key, e))?;
        for record in chunk.records.into_iter().rev() {
            if record.receive_time_ms < since {
                return Ok(());
            }
            if record.reply_token.is_empty() {
                continue;
            }
            let token = ReplyToken {
                sequence: record.sequence,
                token: record.reply_token,
                receive_time_ms: record.receive_time_ms,
            };
            if !reply_tokens.insert(&record.channel_id, &record.conversation_id, token) {
                return Ok(()); // full of newer ones
            }
        }
    }
    Ok(())
}

fn chunk_key(first_sequence: u64) -> [u8; 9] {
    let mut key = [CHUNK; 9];
    key[1..].copy_from_slice(&first_sequence.to_be_bytes());
    key
}

/// A chunk as stored: consecutive records, oldest first.
#[derive(Clone, PartialEq, prost::Message)]
struct EventChunk {
    #[prost(message, repeated, tag = "1")]
    records: Vec<EventRecord>,
}

/// The fields of [`EventRecord`] that start-up needs to rebuild the reply
/// token index; decoding only these skips copying payloads.
#[derive(Clone, PartialEq, prost::Message)]
struct ReplyTokenFields {
    #[prost(uint64, tag = "1")]
    sequence: u64,
    #[prost(string, tag = "2")]
    channel_id: String,
    #[prost(string, tag = "4")]
    conversation_id: String,
    #[prost(int64, tag = "5")]
    receive_time_ms: i64,
    #[prost(string, tag = "8")]
    reply_token: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ReplyTokenChunk {
    #[prost(message, repeated, tag = "1")]
    records: Vec<ReplyTokenFields>,
}

/// Encodes records as an [`EventChunk`] without cloning them.
fn encode_chunk<'a>(records: impl IntoIterator<Item = &'a EventRecord>) -> Vec<u8> {
    let mut buf = Vec::new();
    for record in records {
        prost::encoding::message::encode(1, record, &mut buf);
    }
    buf
}

/// A legacy dedupe entry's key.
#[cfg(test)]
fn dedupe_key(channel_id: &str, webhook_event_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + channel_id.len() + webhook_event_id.len());
    key.push(DEDUPE);
    key.extend_from_slice(channel_id.as_bytes());
    key.push(0);
    key.extend_from_slice(webhook_event_id.as_bytes());
    key
}

/// Times before 1970 sort first; they never occur in practice.
#[cfg(test)]
fn ms_bytes(time_ms: i64) -> [u8; 8] {
    (time_ms.max(0) as u64).to_be_bytes()
}

fn read_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

fn backend(err: sled::Error) -> StoreError {
    match &err {
        sled::Error::Io(io) => StoreError::from_io("sled", io),
        _ => StoreError::Backend(err.to_string()),
    }
}

fn corrupt(key: &[u8], err: prost::DecodeError) -> StoreError {
    StoreError::Corrupt {
        key: format!(
            "log/{}{}",
            char::from(key[0]),
            read_u64(&key[1..]).unwrap_or_default()
        ),
        reason: err.to_string(),
    }
}

fn decode_chunk(key: &[u8], value: &[u8]) -> Result<Vec<EventRecord>> {
    EventChunk::decode(value)
        .map(|chunk| chunk.records)
        .map_err(|e| corrupt(key, e))
}

/// Reads every dedupe entry on disk into memory: what versions before runs
/// stored one per key, then the runs.
fn load_dedupe(tree: &sled::Tree) -> Result<DedupeIndex> {
    let mut runs = Vec::new();
    let mut entries = 0;
    for item in tree.scan_prefix([dedupe_index::RUN]) {
        let (key, value) = item.map_err(backend)?;
        entries += value.len() / dedupe_index::ENTRY_BYTES;
        runs.push((key, value));
    }
    let mut index = DedupeIndex::with_capacity(entries);
    // Legacy entries first: every run is newer, so where an id is in both
    // (stored again after its legacy entry was forgotten), the run's
    // sequence is the one remembered. Runs go in key order, which is
    // sequence order, for the same reason.
    for item in tree.scan_prefix([DEDUPE]) {
        let (key, value) = item.map_err(backend)?;
        if let Some(sequence) = read_u64(&value) {
            index.insert(dedupe_index::fingerprint_bytes(&key[1..]), sequence);
        }
    }
    for (key, value) in runs {
        let run = dedupe_index::decode_run(&value).ok_or_else(|| StoreError::Corrupt {
            key: format!("log/D{}", read_u64(&key[1..]).unwrap_or_default()),
            reason: format!("{} bytes is not a whole number of entries", value.len()),
        })?;
        for entry in run {
            index.insert(entry.fingerprint, entry.sequence);
        }
    }
    Ok(index)
}

/// Rewrites the one-record-per-key layout of earlier versions as chunks,
/// in batches that are each atomic: a crash midway leaves every record in
/// exactly one of the two layouts, and the next open goes on from there.
fn convert_legacy_records(tree: &sled::Tree) -> Result<()> {
    loop {
        let mut records = Vec::with_capacity(LEGACY_PER_BATCH);
        let mut batch = sled::Batch::default();
        for item in tree.scan_prefix([LEGACY_EVENT]).take(LEGACY_PER_BATCH) {
            let (key, value) = item.map_err(backend)?;
            records.push(EventRecord::decode(&*value).map_err(|e| corrupt(&key, e))?);
            batch.remove(key);
        }
        if records.is_empty() {
            return Ok(());
        }
        for chunk in records.chunks(RECORDS_PER_CHUNK) {
            batch.insert(&chunk_key(chunk[0].sequence)[..], encode_chunk(chunk));
        }
        tree.apply_batch(batch).map_err(backend)?;
        tracing::info!(
            records = records.len(),
            "converted event records to the chunked layout"
        );
    }
}

impl EventLog {
    /// Opens the log in `db` and starts its writer thread.
    /// `data_file` is sled's data file (`<dir>/db`), synced after each
    /// flush: sled's own flush uses `sync_file_range`, which neither
    /// persists metadata nor flushes the disk's write cache. `now_ms`
    /// dates the opening: the reply tokens of the events received in the
    /// 20 minutes before it are loaded, in the background.
    pub fn open(db: &sled::Db, data_file: &std::path::Path, now_ms: i64) -> Result<Self> {
        let data_file = std::fs::File::open(data_file).map_err(|e| {
            StoreError::Backend(format!("cannot open {}: {e}", data_file.display()))
        })?;
        let tree = db.open_tree("log").map_err(backend)?;
        convert_legacy_records(&tree)?;
        let stored_head = tree
            .get(HEAD_KEY)
            .map_err(backend)?
            .and_then(|v| read_u64(&v))
            .unwrap_or(0);
        let last_event = match tree.scan_prefix([CHUNK]).next_back() {
            Some(item) => {
                let (key, value) = item.map_err(backend)?;
                decode_chunk(&key, &value)?.last().map(|r| r.sequence)
            }
            None => None,
        };
        let first_event = tree
            .scan_prefix([CHUNK])
            .next()
            .transpose()
            .map_err(backend)?
            .and_then(|(key, _)| read_u64(&key[1..]));
        let head = stored_head.max(last_event.unwrap_or(0));
        let bounds = Arc::new(Bounds {
            head: AtomicU64::new(head),
            oldest: AtomicU64::new(first_event.unwrap_or(head + 1)),
        });
        let dedupe = load_dedupe(&tree)?;
        let reply_tokens = Arc::new(ReplyTokens::default());
        let since = now_ms - REPLY_TOKEN_LIFETIME.as_millis() as i64;
        let token_load = Arc::new(TokenLoad::default());
        {
            // In the background: reading every chunk of the last 20 minutes
            // was most of start-up (about 2 ms per 1,000 events). A reply
            // asked for meanwhile waits for it (`recent_reply_tokens`).
            let (tree, reply_tokens, load) =
                (tree.clone(), reply_tokens.clone(), token_load.clone());
            std::thread::Builder::new()
                .name("reply-token-load".into())
                .spawn(move || {
                    // Ended even if the load panics: replies wait for it.
                    let _finish = FinishOnDrop(&load);
                    let started = std::time::Instant::now();
                    match load_reply_tokens(&tree, head, since, &reply_tokens, &load.stop) {
                        Ok(()) => tracing::debug!(
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "reply tokens of the last 20 minutes loaded"
                        ),
                        Err(err) => {
                            tracing::warn!(error = %err, "loading recent reply tokens failed")
                        }
                    }
                })
                .map_err(|e| {
                    StoreError::Backend(format!("cannot start the reply-token load: {e}"))
                })?;
        }
        let (requests, queue) = mpsc::channel(QUEUE_DEPTH);
        let (tail, _) = broadcast::channel(TAIL_CAPACITY);
        let stats = Arc::new(LogStats::default());
        let writer = Writer {
            db: db.clone(),
            data_file,
            tree: tree.clone(),
            bounds: bounds.clone(),
            tail: tail.clone(),
            reply_tokens: reply_tokens.clone(),
            stats: stats.clone(),
            dedupe: RefCell::new(dedupe),
            dedupe_cursor: RefCell::new(None),
            appended_since_prune: Cell::new(0),
            poisoned: Cell::new(None),
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
            reply_tokens,
            token_load,
            stats,
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

    /// Flushes and stops the writer thread, waiting until it has let go of
    /// its database handle. Appends fail afterwards. (The database closes
    /// when the last handle, e.g. the `SledStore`, is dropped.)
    pub async fn close(&self) {
        // The load holds the database open: end it first.
        self.token_load.stop.store(true, Ordering::Relaxed);
        let load = self.token_load.clone();
        let _ = tokio::task::spawn_blocking(move || load.wait()).await;
        let (answer, answered) = oneshot::channel();
        if self.requests.send(Request::Close(answer)).await.is_ok() {
            let _ = answered.await;
        }
    }

    pub fn read(&self, after: u64, limit: usize) -> Result<Vec<EventRecord>> {
        let head = self.bounds.head.load(Ordering::Acquire);
        let from = after.saturating_add(1);
        if from > head || limit == 0 {
            return Ok(Vec::new());
        }
        // The chunk holding `from` starts at or before it.
        let start = match self.tree.range(chunk_key(0)..=chunk_key(from)).next_back() {
            Some(item) => item.map_err(backend)?.0,
            None => sled::IVec::from(&chunk_key(from)[..]),
        };
        let mut records = Vec::new();
        for item in self
            .tree
            .range(start..=sled::IVec::from(&chunk_key(head)[..]))
        {
            let (key, value) = item.map_err(backend)?;
            for record in decode_chunk(&key, &value)? {
                // Past the head: applied but not yet durable.
                if record.sequence > head {
                    return Ok(records);
                }
                if record.sequence >= from {
                    records.push(record);
                    if records.len() == limit {
                        return Ok(records);
                    }
                }
            }
        }
        Ok(records)
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

    pub fn stats(&self) -> &LogStats {
        &self.stats
    }

    /// Reply tokens of the chat's events of the last 20 minutes, oldest
    /// first.
    /// Right after opening, waits for the tokens found then to be loaded.
    pub fn recent_reply_tokens(&self, channel_id: &str, conversation_id: &str) -> Vec<ReplyToken> {
        self.token_load.wait();
        self.reply_tokens.recent(channel_id, conversation_id)
    }
}

fn writer_gone() -> StoreError {
    StoreError::Backend("the event log writer stopped".into())
}

/// The single owner of appends and pruning.
struct Writer {
    db: sled::Db,
    data_file: std::fs::File,
    tree: sled::Tree,
    bounds: Arc<Bounds>,
    tail: broadcast::Sender<Arc<EventRecord>>,
    reply_tokens: Arc<ReplyTokens>,
    stats: Arc<LogStats>,
    /// Every dedupe entry on disk, legacy or in runs.
    dedupe: RefCell<DedupeIndex>,
    /// Where the next scan of legacy dedupe entries resumes; `None` = from
    /// the start.
    dedupe_cursor: RefCell<Option<Vec<u8>>>,
    appended_since_prune: Cell<u64>,
    /// Set when a write failed after sled had applied it: what is on disk
    /// is then unknown, so nothing more is acknowledged until a restart
    /// lets sled's recovery decide.
    /// Set when a flush failed: what every later append answers, until the
    /// store is reopened.
    poisoned: Cell<Option<StoreError>>,
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
        if let Some(err) = self.poisoned.take() {
            self.poisoned.set(Some(err.clone()));
            for (_, answer) in requests {
                let _ = answer.send(Err(err.clone()));
            }
            return;
        }
        let mut head = self.bounds.head.load(Ordering::Acquire);
        let mut batch = sled::Batch::default();
        let dedupe = self.dedupe.borrow();
        // Duplicates inside this batch are not in the index yet.
        let mut in_batch: HashMap<Fingerprint, u64> = HashMap::new();
        let mut remembered: Vec<Entry> = Vec::new();
        let mut fresh: Vec<Arc<EventRecord>> = Vec::new();
        let mut answers = Vec::with_capacity(requests.len());
        let mut failed = None;

        for (events, answer) in requests {
            let mut outcomes = Vec::with_capacity(events.len());
            for new in events {
                let fingerprint = new
                    .webhook_event_id
                    .as_deref()
                    .map(|id| dedupe_index::fingerprint(&new.record.channel_id, id));
                if let Some(fingerprint) = fingerprint {
                    let known = in_batch
                        .get(&fingerprint)
                        .copied()
                        .or_else(|| dedupe.get(fingerprint));
                    if let Some(sequence) = known {
                        outcomes.push(AppendOutcome::Duplicate { sequence });
                        continue;
                    }
                }
                head += 1;
                let mut record = new.record;
                record.sequence = head;
                if let Some(fingerprint) = fingerprint {
                    remembered.push(Entry {
                        fingerprint,
                        sequence: head,
                        received_ms: record.receive_time_ms,
                    });
                    in_batch.insert(fingerprint, head);
                }
                outcomes.push(AppendOutcome::Stored { sequence: head });
                fresh.push(Arc::new(record));
            }
            answers.push((answer, outcomes));
        }
        drop(dedupe);

        if !fresh.is_empty() {
            for chunk in fresh.chunks(RECORDS_PER_CHUNK) {
                let value = encode_chunk(chunk.iter().map(|r| &**r));
                batch.insert(&chunk_key(chunk[0].sequence)[..], value);
            }
            // In the same atomic batch: an entry is durable with its event.
            for run in remembered.chunks(dedupe_index::ENTRIES_PER_RUN) {
                batch.insert(
                    &dedupe_index::run_key(run[0].sequence)[..],
                    dedupe_index::encode_run(run),
                );
            }
            batch.insert(HEAD_KEY, &head.to_be_bytes()[..]);
            if let Err(err) = self.tree.apply_batch(batch) {
                // Atomic: nothing of the batch was applied.
                failed = Some(backend(err));
            } else if let Err(err) = self.sync() {
                // Applied but maybe not on disk; its dedupe entries would
                // now answer LINE's redelivery with a 200 for data that may
                // be lost. Refuse everything until the store is reopened.
                self.poisoned.set(Some(err.clone()));
                failed = Some(err);
            }
        }
        if let Some(err) = failed {
            // One line per batch would flood the logs on a full disk.
            static APPEND_FAILED: Throttle = Throttle::new(crate::log_limit::INTERVAL);
            if let Some(suppressed) = APPEND_FAILED.admit() {
                tracing::error!(error = %err, suppressed, "appending to the event log failed (suppressed: how many more since the last such line)");
            }
            for (answer, _) in answers {
                let _ = answer.send(Err(err.clone()));
            }
            return;
        }

        self.stats
            .appended
            .fetch_add(fresh.len() as u64, Ordering::Relaxed);
        if !fresh.is_empty() {
            self.stats.commit_records.observe(fresh.len() as f64);
        }
        self.appended_since_prune
            .set(self.appended_since_prune.get() + fresh.len() as u64);
        self.bounds.head.store(head, Ordering::Release);
        let mut dedupe = self.dedupe.borrow_mut();
        for entry in &remembered {
            dedupe.insert(entry.fingerprint, entry.sequence);
        }
        drop(dedupe);
        // Indexed before answering, so a caller that appended can use the
        // tokens at once.
        for record in &fresh {
            self.reply_tokens.add(record);
        }
        for (answer, outcomes) in answers {
            let _ = answer.send(Ok(outcomes));
        }
        // Published only once durable, in sequence order. No receiver is fine.
        for record in fresh {
            let _ = self.tail.send(record);
        }
    }

    /// One group commit: sled's flush, then fdatasync of its data file.
    fn sync(&self) -> Result<()> {
        let started = std::time::Instant::now();
        self.db.flush().map_err(backend)?;
        self.data_file
            .sync_data()
            .map_err(|e| StoreError::from_io("syncing sled's data file", &e))?;
        self.stats
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        self.stats.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn prune(&self, retention: Retention) -> Result<PruneReport> {
        let mut report = PruneReport::default();
        let head = self.bounds.head.load(Ordering::Acquire);
        let mut oldest = self.bounds.oldest.load(Ordering::Acquire);
        let mut batch = sled::Batch::default();
        let expired = |record: &EventRecord| {
            let kept = head.saturating_sub(record.sequence) + 1;
            retention.max_events.is_some_and(|max| kept > max)
                || record.receive_time_ms < retention.events_before_ms
        };
        for item in self.tree.range(chunk_key(0)..=chunk_key(head)) {
            if report.events >= EVENTS_PRUNED_PER_RUN {
                break; // the rest next time
            }
            let (key, value) = item.map_err(backend)?;
            let records = match decode_chunk(&key, &value) {
                Ok(records) => records,
                Err(err) => {
                    // Keep it for an operator to look at; retention of
                    // what follows waits, everything else goes on.
                    tracing::error!(error = %err, "a stored event chunk cannot be decoded");
                    break;
                }
            };
            let gone = records.iter().take_while(|r| expired(r)).count();
            if gone == 0 {
                break;
            }
            batch.remove(key);
            report.events += gone as u64;
            oldest = records[gone - 1].sequence + 1;
            if gone < records.len() {
                // Keep the rest of the chunk, under its new first sequence.
                let rest = &records[gone..];
                batch.insert(&chunk_key(rest[0].sequence)[..], encode_chunk(rest));
                break;
            }
        }
        // Runs and legacy entries each examine up to this many.
        let budget = DEDUPE_SCAN_PER_PRUNE.max(2 * self.appended_since_prune.replace(0) as usize);
        // Forgotten only once their removal is applied: a prune that
        // fails must leave the memory as it is on disk.
        let mut forgotten = Vec::new();
        let before = retention.dedupe_before_ms;
        self.expire_runs(before, budget, &mut batch, &mut forgotten)?;
        self.expire_dedupe(before, budget, &mut batch, &mut forgotten)?;
        self.tree.apply_batch(batch).map_err(backend)?;
        let mut dedupe = self.dedupe.borrow_mut();
        for &(fingerprint, sequence) in &forgotten {
            dedupe.remove(fingerprint, sequence);
        }
        drop(dedupe);
        report.dedupe_entries = forgotten.len() as u64;
        // Readers must never be told a record exists that is already gone.
        self.bounds.oldest.store(oldest, Ordering::Release);
        report.reply_tokens = self.reply_tokens.expire(retention.reply_tokens_before_ms);
        Ok(report)
    }

    /// Finds the dedupe entries received before `before_ms`, from the
    /// oldest run on, adds them to `forgotten` and queues the removal (or
    /// the rewrite, when only part of it expired) of their runs. Runs are
    /// in receive order, so the first run with an entry to keep ends the
    /// walk (an entry stamped ahead, by a clock stepped back, holds up the
    /// ones after it by that step: they are remembered longer, never
    /// less); it stops once `budget` entries were examined.
    fn expire_runs(
        &self,
        before_ms: i64,
        budget: usize,
        batch: &mut sled::Batch,
        forgotten: &mut Vec<(Fingerprint, u64)>,
    ) -> Result<()> {
        let mut examined = 0;
        for item in self.tree.scan_prefix([dedupe_index::RUN]) {
            if examined >= budget {
                break;
            }
            let (key, value) = item.map_err(backend)?;
            let Some(entries) = dedupe_index::decode_run(&value) else {
                // Kept for an operator; what follows expires once it is
                // dealt with, which only remembers more, never less.
                tracing::error!(key = ?key, "a stored dedupe run cannot be decoded");
                break;
            };
            examined += entries.len();
            let (gone, kept): (Vec<Entry>, Vec<Entry>) = entries
                .into_iter()
                .partition(|entry| entry.received_ms < before_ms);
            forgotten.extend(gone.iter().map(|entry| (entry.fingerprint, entry.sequence)));
            let Some(first) = kept.first() else {
                batch.remove(key);
                continue;
            };
            if !gone.is_empty() {
                let rest = dedupe_index::run_key(first.sequence);
                if rest[..] != key[..] {
                    batch.remove(key);
                }
                batch.insert(&rest[..], dedupe_index::encode_run(&kept));
            }
            break;
        }
        Ok(())
    }

    /// Examines the next `budget` legacy dedupe entries, adds those
    /// received before `before_ms` to `forgotten` and queues their removal.
    fn expire_dedupe(
        &self,
        before_ms: i64,
        budget: usize,
        batch: &mut sled::Batch,
        forgotten: &mut Vec<(Fingerprint, u64)>,
    ) -> Result<()> {
        use std::ops::Bound;
        let mut cursor = self.dedupe_cursor.borrow_mut();
        let start = match cursor.take() {
            Some(key) => Bound::Excluded(key),
            None => Bound::Included(vec![DEDUPE]),
        };
        let end = Bound::Excluded(vec![DEDUPE + 1]);
        let mut examined = 0;
        for item in self.tree.range::<Vec<u8>, _>((start, end)) {
            let (key, value) = item.map_err(backend)?;
            let received = value.get(8..16).and_then(read_u64).unwrap_or(0) as i64;
            if received < before_ms {
                // Sequences start at 1: an unreadable one forgets nothing.
                let sequence = read_u64(&value).unwrap_or(0);
                forgotten.push((dedupe_index::fingerprint_bytes(&key[1..]), sequence));
                batch.remove(&key);
            }
            examined += 1;
            if examined == budget {
                *cursor = Some(key.to_vec());
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::{SledStore, Store};

    fn event(channel: &str, id: &str, token: &str, received: i64) -> NewEvent {
        NewEvent {
            record: EventRecord {
                sequence: 0,
                channel_id: channel.into(),
                type_name: "message".into(),
                conversation_id: "U1".into(),
                receive_time_ms: received,
                dead_letter: false,
                payload: bytes::Bytes::from_static(b"payload"),
                reply_token: token.into(),
            },
            webhook_event_id: Some(id.into()),
            occurred_ms: None,
        }
    }

    fn retention(dedupe_before_ms: i64) -> Retention {
        Retention {
            events_before_ms: 0,
            max_events: None,
            dedupe_before_ms,
            reply_tokens_before_ms: 0,
        }
    }

    #[tokio::test]
    async fn duplicates_within_and_across_batches_get_the_first_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let now = crate::time::Clock::system().now_ms();
        let outcomes = store
            .append(vec![
                event("a", "x", "", now),
                event("a", "x", "", now),
                event("b", "x", "", now),
            ])
            .await
            .unwrap();
        assert_eq!(
            outcomes,
            [
                AppendOutcome::Stored { sequence: 1 },
                AppendOutcome::Duplicate { sequence: 1 },
                AppendOutcome::Stored { sequence: 2 },
            ],
            "dedupe is per channel"
        );
        let again = store.append(vec![event("a", "x", "", now)]).await.unwrap();
        assert_eq!(again, [AppendOutcome::Duplicate { sequence: 1 }]);
        assert_eq!(store.bounds(), LogBounds { oldest: 1, head: 2 });
    }

    #[tokio::test]
    async fn dedupe_memory_expires_by_receive_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store
            .append(vec![
                event("a", "old", "", 1_000),
                event("a", "new", "", 5_000),
            ])
            .await
            .unwrap();
        let report = store.prune(retention(2_000)).await.unwrap();
        assert_eq!(report.dedupe_entries, 1);
        // Forgotten: stored again. Remembered: still a duplicate.
        let outcomes = store
            .append(vec![
                event("a", "old", "", 6_000),
                event("a", "new", "", 6_000),
            ])
            .await
            .unwrap();
        assert_eq!(
            outcomes,
            [
                AppendOutcome::Stored { sequence: 3 },
                AppendOutcome::Duplicate { sequence: 2 },
            ]
        );
    }

    #[tokio::test]
    async fn reply_tokens_are_kept_for_their_chat_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let now = crate::time::Clock::system().now_ms();
        {
            let store = SledStore::open(dir.path()).unwrap();
            store
                .append(vec![
                    event("a", "1", "tok-1", now - 25 * 60 * 1000),
                    event("a", "2", "tok-2", now),
                    event("a", "3", "", now),
                ])
                .await
                .unwrap();
            let tokens = store.recent_reply_tokens("a", "U1");
            assert_eq!(tokens.len(), 2);
            assert!(store.recent_reply_tokens("b", "U1").is_empty());
            store.close().await.unwrap();
        }
        let store = SledStore::open_when_released(dir.path()).unwrap();
        let tokens: Vec<_> = store
            .recent_reply_tokens("a", "U1")
            .into_iter()
            .map(|t| (t.sequence, t.token))
            .collect();
        assert_eq!(
            tokens,
            [(2, "tok-2".to_owned())],
            "only the last 20 minutes"
        );
        let report = store
            .prune(Retention {
                reply_tokens_before_ms: now + 1,
                ..retention(0)
            })
            .await
            .unwrap();
        assert_eq!(report.reply_tokens, 1);
        assert!(store.recent_reply_tokens("a", "U1").is_empty());
    }

    #[tokio::test]
    async fn retention_by_count_keeps_numbers_after_the_log_empties() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        let now = crate::time::Clock::system().now_ms();
        let batch = (0..10)
            .map(|i| event("a", &i.to_string(), "", now))
            .collect();
        store.append(batch).await.unwrap();
        let report = store
            .prune(Retention {
                max_events: Some(3),
                ..retention(0)
            })
            .await
            .unwrap();
        assert_eq!(report.events, 7);
        assert_eq!(
            store.bounds(),
            LogBounds {
                oldest: 8,
                head: 10
            }
        );
        store
            .prune(Retention {
                events_before_ms: now + 1,
                ..retention(0)
            })
            .await
            .unwrap();
        assert_eq!(
            store.bounds(),
            LogBounds {
                oldest: 11,
                head: 10
            }
        );
        store.close().await.unwrap();
        drop(store);
        let reopened = SledStore::open_when_released(dir.path()).unwrap();
        assert_eq!(
            reopened.bounds(),
            LogBounds {
                oldest: 11,
                head: 10
            }
        );
        let next = reopened
            .append(vec![event("a", "z", "", now)])
            .await
            .unwrap();
        assert_eq!(
            next,
            [AppendOutcome::Stored { sequence: 11 }],
            "never reused"
        );
    }
}

#[cfg(test)]
mod chunk_tests {
    use prost::Message as _;

    use super::*;
    use crate::store::{SledStore, Store};

    fn record(sequence: u64, received: i64) -> EventRecord {
        EventRecord {
            sequence,
            channel_id: "a".into(),
            conversation_id: "U1".into(),
            receive_time_ms: received,
            reply_token: format!("tok-{sequence}"),
            payload: bytes::Bytes::from(format!("payload {sequence}")),
            ..EventRecord::default()
        }
    }

    #[tokio::test]
    async fn reads_start_and_stop_inside_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let now = crate::time::Clock::system().now_ms();
        // 150 records in one commit: three chunks (64, 64, 22).
        let batch = (0..150)
            .map(|i| NewEvent {
                // The store assigns the sequence; the payload names it.
                record: record(i + 1, now),
                webhook_event_id: Some(format!("w{i}")),
                occurred_ms: None,
            })
            .collect();
        store.append(batch).await.unwrap();
        for (after, limit) in [(0, 1), (0, 150), (63, 2), (64, 64), (100, 1000), (149, 5)] {
            let got: Vec<u64> = store
                .read_events(after, limit)
                .await
                .unwrap()
                .iter()
                .map(|r| r.sequence)
                .collect();
            let want: Vec<u64> = (after + 1..=150).take(limit).collect();
            assert_eq!(got, want, "read({after}, {limit})");
        }
        assert!(store.read_events(150, 10).await.unwrap().is_empty());

        // Count retention cuts the second chunk in half; what is left reads
        // as before and survives a restart.
        let report = store
            .prune(Retention {
                events_before_ms: 0,
                max_events: Some(50),
                dedupe_before_ms: 0,
                reply_tokens_before_ms: 0,
            })
            .await
            .unwrap();
        assert_eq!(report.events, 100);
        assert_eq!(
            store.bounds(),
            LogBounds {
                oldest: 101,
                head: 150
            }
        );
        let first = store.read_events(0, 3).await.unwrap();
        assert_eq!(
            first.iter().map(|r| r.sequence).collect::<Vec<_>>(),
            [101, 102, 103]
        );
        assert_eq!(&first[0].payload[..], b"payload 101");
        store.close().await.unwrap();
        drop(store);
        let store = SledStore::open_when_released(dir.path()).unwrap();
        assert_eq!(
            store.bounds(),
            LogBounds {
                oldest: 101,
                head: 150
            }
        );
        assert_eq!(store.read_events(100, 1000).await.unwrap().len(), 50);
    }

    #[tokio::test]
    async fn a_log_of_single_records_is_converted_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let now = crate::time::Clock::system().now_ms();
        let count = LEGACY_PER_BATCH as u64 + 10;
        {
            // The layout of earlier versions: `e` + sequence → one record.
            let db = sled::Config::new().path(dir.path()).open().unwrap();
            let tree = db.open_tree("log").unwrap();
            for sequence in 1..=count {
                let mut key = vec![LEGACY_EVENT];
                key.extend_from_slice(&sequence.to_be_bytes());
                tree.insert(key, record(sequence, now).encode_to_vec())
                    .unwrap();
            }
            tree.insert(HEAD_KEY, &count.to_be_bytes()[..]).unwrap();
            db.flush().unwrap();
        }
        let store = SledStore::open_when_released(dir.path()).unwrap();
        assert_eq!(
            store.bounds(),
            LogBounds {
                oldest: 1,
                head: count
            }
        );
        let all = store.read_events(0, usize::MAX).await.unwrap();
        assert_eq!(all.len() as u64, count);
        assert!(
            all.iter()
                .zip(1..)
                .all(|(r, s)| r.sequence == s && r == &record(s, now))
        );
        assert_eq!(
            store.recent_reply_tokens("a", "U1").len() as u64,
            count,
            "reply tokens rebuilt from the converted log"
        );
        let next = store
            .append(vec![NewEvent {
                record: record(0, now),
                webhook_event_id: None,
                occurred_ms: None,
            }])
            .await
            .unwrap();
        assert_eq!(
            next,
            [AppendOutcome::Stored {
                sequence: count + 1
            }]
        );
    }
}

#[cfg(test)]
mod group_commit_tests {
    use std::sync::{Arc, atomic::Ordering};

    use crate::store::{EventRecord, NewEvent, SledStore, Store};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_share_flushes_and_get_distinct_sequences() {
        const CALLERS: usize = 200;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        let mut tasks = Vec::new();
        for i in 0..CALLERS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let record = EventRecord {
                    channel_id: "a".into(),
                    receive_time_ms: crate::time::Clock::system().now_ms(),
                    ..EventRecord::default()
                };
                store
                    .append(vec![NewEvent {
                        record,
                        webhook_event_id: Some(i.to_string()),
                        occurred_ms: None,
                    }])
                    .await
                    .unwrap()
            }));
        }
        let mut sequences = Vec::new();
        for task in tasks {
            for outcome in task.await.unwrap() {
                match outcome {
                    crate::store::AppendOutcome::Stored { sequence } => sequences.push(sequence),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        sequences.sort_unstable();
        assert_eq!(sequences, (1..=CALLERS as u64).collect::<Vec<_>>());
        let stats = store.log_stats();
        assert_eq!(stats.appended.load(Ordering::Relaxed), CALLERS as u64);
        let flushes = stats.flushes.load(Ordering::Relaxed);
        assert!(
            flushes < CALLERS as u64,
            "{flushes} flushes for {CALLERS} concurrent appends: no group commit"
        );
    }
}

#[cfg(test)]
mod dedupe_tests {
    //! The dedupe memory against a model of it, across restarts, at every
    //! point of the window and at its edges.
    use std::collections::HashMap;

    use super::*;
    use crate::store::{SledStore, Store};

    fn event(id: &str, received: i64) -> NewEvent {
        NewEvent {
            record: EventRecord {
                sequence: 0,
                channel_id: "a".into(),
                type_name: "message".into(),
                conversation_id: "U1".into(),
                receive_time_ms: received,
                dead_letter: false,
                payload: bytes::Bytes::from_static(b"payload"),
                reply_token: String::new(),
            },
            webhook_event_id: Some(id.into()),
            occurred_ms: None,
        }
    }

    fn forget_before(before_ms: i64) -> Retention {
        Retention {
            events_before_ms: 0,
            max_events: None,
            dedupe_before_ms: before_ms,
            reply_tokens_before_ms: 0,
        }
    }

    /// What the log must answer: id → (sequence, receive time).
    #[derive(Default)]
    struct Model {
        remembered: HashMap<String, (u64, i64)>,
        head: u64,
    }

    impl Model {
        fn append(&mut self, batch: &[(String, i64)]) -> Vec<AppendOutcome> {
            batch
                .iter()
                .map(|(id, received)| match self.remembered.get(id) {
                    Some(&(sequence, _)) => AppendOutcome::Duplicate { sequence },
                    None => {
                        self.head += 1;
                        self.remembered.insert(id.clone(), (self.head, *received));
                        AppendOutcome::Stored {
                            sequence: self.head,
                        }
                    }
                })
                .collect()
        }

        fn forget_before(&mut self, before_ms: i64) -> u64 {
            let before = self.remembered.len();
            self.remembered
                .retain(|_, (_, received)| *received >= before_ms);
            (before - self.remembered.len()) as u64
        }
    }

    async fn append_both(store: &SledStore, model: &mut Model, batch: Vec<(String, i64)>) {
        let expected = model.append(&batch);
        let got = store
            .append(batch.iter().map(|(id, at)| event(id, *at)).collect())
            .await
            .unwrap();
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn redelivery_after_a_restart_is_caught_for_exactly_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SledStore::open(dir.path()).unwrap();
        let mut model = Model::default();
        // One commit of more entries than a run holds, received over 3 s,
        // then a small one: cut points fall inside runs, on their edges
        // and between commits.
        let first: Vec<_> = (0..3000).map(|i| (format!("a{i}"), 1_000 + i)).collect();
        let ids: Vec<String> = first.iter().map(|(id, _)| id.clone()).collect();
        append_both(&store, &mut model, first).await;
        let second: Vec<_> = (0..10).map(|i| (format!("b{i}"), 5_000 + i)).collect();
        append_both(&store, &mut model, second.clone()).await;
        let every: Vec<String> = ids
            .into_iter()
            .chain(second.into_iter().map(|(id, _)| id))
            .collect();

        let cuts = [
            0, 1_000, 1_001, 2_047, 2_048, 3_048, 3_049, 3_500, 3_999, 4_000, 5_005, 5_009, 5_010,
            9_000,
        ];
        for (step, cut) in cuts.into_iter().enumerate() {
            store.close().await.unwrap();
            drop(store);
            store = SledStore::open_when_released(dir.path()).unwrap();
            let report = store.prune(forget_before(cut)).await.unwrap();
            assert_eq!(
                report.dedupe_entries,
                model.forget_before(cut),
                "entries forgotten before {cut}"
            );
            // LINE redelivers everything: what was forgotten is stored
            // again (received now, far inside the window), the rest is
            // a duplicate of its first sequence.
            let now = 1_000_000 + step as i64;
            let redelivery = every.iter().map(|id| (id.clone(), now)).collect();
            append_both(&store, &mut model, redelivery).await;
        }
        store.close().await.unwrap();
        drop(store);
        let store = SledStore::open_when_released(dir.path()).unwrap();
        let redelivery = every.iter().map(|id| (id.clone(), 2_000_000)).collect();
        append_both(&store, &mut model, redelivery).await;
    }

    #[tokio::test]
    async fn an_id_stored_again_after_its_legacy_entry_keeps_the_newer_sequence() {
        let dir = tempfile::tempdir().unwrap();
        {
            // "x" was forgotten in memory, stored again (sequence 5, in a
            // run), and its legacy entry (sequence 1) is still on disk.
            let db = sled::Config::new().path(dir.path()).open().unwrap();
            let tree = db.open_tree("log").unwrap();
            let mut legacy = 1u64.to_be_bytes().to_vec();
            legacy.extend_from_slice(&ms_bytes(1_000));
            tree.insert(dedupe_key("a", "x"), legacy).unwrap();
            let run = dedupe_index::encode_run(&[Entry {
                fingerprint: dedupe_index::fingerprint("a", "x"),
                sequence: 5,
                received_ms: 9_000,
            }]);
            tree.insert(&dedupe_index::run_key(5)[..], run).unwrap();
            tree.insert(HEAD_KEY, &5u64.to_be_bytes()[..]).unwrap();
            db.flush().unwrap();
        }
        let store = SledStore::open_when_released(dir.path()).unwrap();
        let again = store.append(vec![event("x", 10_000)]).await.unwrap();
        assert_eq!(again, [AppendOutcome::Duplicate { sequence: 5 }]);
        // The legacy entry expires; the run's, received later, stays.
        let report = store.prune(forget_before(2_000)).await.unwrap();
        assert_eq!(report.dedupe_entries, 1);
        let again = store.append(vec![event("x", 10_000)]).await.unwrap();
        assert_eq!(again, [AppendOutcome::Duplicate { sequence: 5 }]);
    }

    #[tokio::test]
    async fn entries_of_earlier_versions_are_remembered_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        {
            // Earlier versions: one `d` key per entry, and no runs.
            let db = sled::Config::new().path(dir.path()).open().unwrap();
            let tree = db.open_tree("log").unwrap();
            for (id, sequence, received) in [("old", 1u64, 1_000), ("new", 2, 5_000)] {
                let mut value = sequence.to_be_bytes().to_vec();
                value.extend_from_slice(&ms_bytes(received));
                tree.insert(dedupe_key("a", id), value).unwrap();
            }
            tree.insert(HEAD_KEY, &2u64.to_be_bytes()[..]).unwrap();
            db.flush().unwrap();
        }
        let store = SledStore::open_when_released(dir.path()).unwrap();
        let outcomes = store
            .append(vec![event("old", 6_000), event("new", 6_000)])
            .await
            .unwrap();
        assert_eq!(
            outcomes,
            [
                AppendOutcome::Duplicate { sequence: 1 },
                AppendOutcome::Duplicate { sequence: 2 },
            ]
        );
        let report = store.prune(forget_before(2_000)).await.unwrap();
        assert_eq!(report.dedupe_entries, 1);
        store.close().await.unwrap();
        drop(store);
        let store = SledStore::open_when_released(dir.path()).unwrap();
        let outcomes = store
            .append(vec![event("old", 6_000), event("new", 6_000)])
            .await
            .unwrap();
        assert_eq!(
            outcomes,
            [
                AppendOutcome::Stored { sequence: 3 },
                AppendOutcome::Duplicate { sequence: 2 },
            ]
        );
    }
}
