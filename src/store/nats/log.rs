//! The event log on a JetStream stream.
//!
//! One message per event on the subject `<prefix>.events`; the stream's
//! sequence is the event's sequence (gap-free: retention only removes from
//! the front, and nothing else deletes). The payload is the
//! [`EventRecord`] (prost) without its sequence.
//!
//! Deduplication has two layers, because JetStream's own (`Nats-Msg-Id`)
//! only covers its duplicate window and keeps the ids in the server's
//! memory:
//! - the `dedupe` bucket maps (channel, webhookEventId) to the sequence and
//!   remembers it for the whole dedupe window (the bucket's max age);
//! - the message id covers the moment between a publish and its bucket
//!   entry: two replicas taking the same redelivery at once, or a crash
//!   between the two writes (the webhook was not answered, LINE sends it
//!   again, and the stream answers with the first sequence).
//!
//! The lookup in the bucket is only needed for an event that may have been
//! stored before the stream's duplicate window: an event LINE made moments
//! before it arrived ([`FRESH`]) cannot have an older copy, so the publish
//! alone deduplicates it. That is nearly every event, and it saves one
//! round to NATS out of three.
//!
//! Each replica follows the stream with one ordered consumer (the tail):
//! it moves the replica's head, feeds the reply-token index and the live
//! Subscribe streams, so every replica sees every event in one order.

use std::{
    collections::{HashMap, hash_map::Entry},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_nats::jetstream::{
    self,
    consumer::{DeliverPolicy, pull},
    kv,
};
use futures_util::StreamExt as _;
use prost::Message as _;
use sha2::{Digest as _, Sha256};
use tokio::sync::broadcast;

use super::super::{
    AppendOutcome, CommitMetrics, EventRecord, LogBounds, NewEvent, PruneReport, Result,
    StoreError,
    reply_tokens::{REPLY_TOKEN_LIFETIME, ReplyTokens},
};
use super::backend;

/// Records the live tail holds for slow receivers before they lag.
const TAIL_CAPACITY: usize = 16 * 1024;
/// How long one read of the stream waits for its messages.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How recent LINE's `timestamp` of an event must be, against its receive
/// time, for the publish alone to deduplicate it; a little in the future
/// is allowed for clocks running apart.
const FRESH: Duration = Duration::from_secs(2 * 60);
const AHEAD: Duration = Duration::from_secs(60);
/// The shortest duplicate window of the stream for which [`FRESH`] events
/// skip the lookup. Any earlier copy of such an event was published after
/// LINE made it, so at most `FRESH` plus clock skew and delays before this
/// one: 10 minutes leave 8 for those.
const WINDOW_FOR_FRESH: Duration = Duration::from_secs(10 * 60);

/// Whether the dedupe bucket must be asked about `new` before its publish,
/// given the stream's duplicate window.
fn needs_lookup(new: &NewEvent, duplicate_window: Duration) -> bool {
    let Some(occurred_ms) = new.occurred_ms else {
        return true;
    };
    if duplicate_window < WINDOW_FOR_FRESH {
        return true;
    }
    let age_ms = new.record.receive_time_ms.saturating_sub(occurred_ms);
    let fresh = -(AHEAD.as_millis() as i64)..=FRESH.as_millis() as i64;
    !fresh.contains(&age_ms)
}

#[derive(Debug, Default)]
struct Bounds {
    head: AtomicU64,
    oldest: AtomicU64,
}

/// Handle to the log; cheap to clone.
#[derive(Clone)]
pub struct NatsLog {
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
    subject: String,
    dedupe: kv::Store,
    bounds: Arc<Bounds>,
    tail: broadcast::Sender<Arc<EventRecord>>,
    reply_tokens: Arc<ReplyTokens>,
    /// The stream's: how long JetStream remembers a message id.
    duplicate_window: Duration,
    /// Per append: records stored, and the time until JetStream and the
    /// dedupe bucket acknowledged them.
    commits: CommitMetrics,
}

/// The dedupe key of an event: a digest, because bucket keys allow only a
/// few characters and LINE's ids are not ours to restrict.
fn dedupe_key(channel_id: &str, webhook_event_id: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(channel_id.as_bytes());
    hash.update([0]);
    hash.update(webhook_event_id.as_bytes());
    hex::encode(&hash.finalize()[..20])
}

fn decode(sequence: u64, payload: &[u8]) -> Result<EventRecord> {
    let mut record = EventRecord::decode(payload).map_err(|e| StoreError::Corrupt {
        key: format!("events/{sequence}"),
        reason: e.to_string(),
    })?;
    record.sequence = sequence;
    Ok(record)
}

impl NatsLog {
    /// Binds to the stream (created by the caller), reads the 20 minutes
    /// before `now` for reply tokens and starts the tail.
    pub async fn open(
        js: jetstream::Context,
        stream: jetstream::stream::Stream,
        subject: String,
        dedupe: kv::Store,
        now: std::time::SystemTime,
    ) -> Result<Self> {
        let info = stream.get_info().await.map_err(backend)?;
        let head = info.state.last_sequence;
        let bounds = Arc::new(Bounds {
            head: AtomicU64::new(head),
            oldest: AtomicU64::new(info.state.first_sequence.max(1)),
        });
        let (tail, _) = broadcast::channel(TAIL_CAPACITY);
        let log = Self {
            js,
            stream,
            subject,
            dedupe,
            bounds,
            tail,
            reply_tokens: Arc::new(ReplyTokens::default()),
            duplicate_window: info.config.duplicate_window,
            commits: CommitMetrics::default(),
        };
        log.start_tail(head + 1).await?;
        // In the background: a restart must not wait for a long read, and
        // until it ends a reply just finds fewer recent tokens to choose
        // from (it falls back as when a token is missing).
        let loader = log.clone();
        let since = time::OffsetDateTime::from(now) - REPLY_TOKEN_LIFETIME;
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            match loader.load_reply_tokens(head, since).await {
                Ok(()) => tracing::debug!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "reply tokens of the last 20 minutes loaded"
                ),
                Err(err) => tracing::warn!(error = %err, "loading recent reply tokens failed"),
            }
        });
        Ok(log)
    }

    /// Indexes the reply tokens of the events up to `head` received
    /// `since` then.
    async fn load_reply_tokens(&self, head: u64, since: time::OffsetDateTime) -> Result<()> {
        if head == 0 {
            return Ok(());
        }
        let consumer = self
            .stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: self.subject.clone(),
                deliver_policy: DeliverPolicy::ByStartTime { start_time: since },
                ..Default::default()
            })
            .await
            .map_err(backend)?;
        // Nothing in the last 20 minutes: nothing to wait for.
        if consumer.cached_info().num_pending == 0 {
            return Ok(());
        }
        let mut messages = consumer.messages().await.map_err(backend)?;
        loop {
            let next = tokio::time::timeout(READ_TIMEOUT, messages.next()).await;
            let Ok(Some(message)) = next else {
                return Err(StoreError::Backend(
                    "reading the recent events for reply tokens timed out".into(),
                ));
            };
            let message = message.map_err(backend)?;
            let sequence = message.info().map_err(backend)?.stream_sequence;
            if sequence > head {
                return Ok(());
            }
            self.reply_tokens.add(&decode(sequence, &message.payload)?);
            if sequence == head {
                return Ok(());
            }
        }
    }

    /// Follows the stream from `from` for the life of the process.
    async fn start_tail(&self, from: u64) -> Result<()> {
        let consumer = self
            .stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: self.subject.clone(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: from,
                },
                ..Default::default()
            })
            .await
            .map_err(backend)?;
        let mut messages = consumer.messages().await.map_err(backend)?;
        let bounds = self.bounds.clone();
        let tail = self.tail.clone();
        let reply_tokens = self.reply_tokens.clone();
        // Ends when the connection is closed for good (the store closed).
        tokio::spawn(async move {
            // An ordered consumer recreated before it delivered anything
            // starts over from the stream's first message: what this tail
            // passed already is dropped here.
            let mut last = from - 1;
            while let Some(message) = messages.next().await {
                let message = match message {
                    Ok(message) => message,
                    Err(err) => {
                        // The ordered consumer recreates itself after
                        // gaps and reconnects; anything it reports here
                        // is logged and it goes on.
                        tracing::warn!(error = %err, "following the event stream");
                        continue;
                    }
                };
                let Ok(info) = message.info() else { continue };
                let sequence = info.stream_sequence;
                if sequence <= last {
                    continue;
                }
                last = sequence;
                match decode(sequence, &message.payload) {
                    Ok(record) => {
                        bounds.head.fetch_max(sequence, Ordering::AcqRel);
                        reply_tokens.add(&record);
                        let _ = tail.send(Arc::new(record));
                    }
                    Err(err) => tracing::error!(error = %err, "a stored event cannot be decoded"),
                }
            }
        });
        Ok(())
    }

    pub async fn append(&self, batch: Vec<NewEvent>) -> Result<Vec<AppendOutcome>> {
        use futures_util::future::try_join_all;
        let started = std::time::Instant::now();
        let keys: Vec<Option<String>> = batch
            .iter()
            .map(|new| {
                let id = new.webhook_event_id.as_deref()?;
                Some(dedupe_key(&new.record.channel_id, id))
            })
            .collect();
        // A repeat inside the batch gets the first one's outcome.
        let mut first_of: HashMap<&str, usize> = HashMap::new();
        let mut repeat_of = vec![None; batch.len()];
        for (i, key) in keys.iter().enumerate() {
            if let Some(key) = key {
                match first_of.entry(key) {
                    Entry::Occupied(first) => repeat_of[i] = Some(*first.get()),
                    Entry::Vacant(slot) => {
                        slot.insert(i);
                    }
                }
            }
        }
        let mut outcomes: Vec<Option<AppendOutcome>> = vec![None; batch.len()];

        // 1. Events the dedupe bucket remembers, of those old enough to be.
        let lookups = keys.iter().enumerate().filter_map(|(i, key)| {
            let key = key
                .as_deref()
                .filter(|_| repeat_of[i].is_none())
                .filter(|_| needs_lookup(&batch[i], self.duplicate_window))?;
            Some(async move {
                let value = self.dedupe.get(key).await.map_err(backend)?;
                Ok::<_, StoreError>((i, value.as_deref().and_then(read_u64)))
            })
        });
        for (i, known) in try_join_all(lookups).await? {
            if let Some(sequence) = known {
                outcomes[i] = Some(AppendOutcome::Duplicate { sequence });
            }
        }

        // 2. Publish the rest in order; the acks come back pipelined.
        let mut acks = Vec::new();
        for (i, new) in batch.iter().enumerate() {
            if outcomes[i].is_some() || repeat_of[i].is_some() {
                continue;
            }
            let mut headers = async_nats::HeaderMap::new();
            if let Some(key) = &keys[i] {
                headers.insert(async_nats::header::NATS_MESSAGE_ID, key.as_str());
            }
            let mut record = new.record.clone();
            record.sequence = 0;
            let ack = self
                .js
                .publish_with_headers(self.subject.clone(), headers, record.encode_to_vec().into())
                .await
                .map_err(backend)?;
            acks.push((i, ack));
        }
        let mut fresh = Vec::new();
        let mut remember = Vec::new();
        for (i, ack) in acks {
            let ack = ack.await.map_err(backend)?;
            let sequence = ack.sequence;
            // A duplicate the stream caught is remembered too: its first
            // copy may never have reached the bucket (a crash, a failed
            // write), and the stream forgets ids after minutes.
            remember.push((i, sequence));
            outcomes[i] = Some(if ack.duplicate {
                AppendOutcome::Duplicate { sequence }
            } else {
                fresh.push((i, sequence));
                AppendOutcome::Stored { sequence }
            });
        }

        // 3. Remember them for the whole dedupe window, before the caller
        // answers LINE.
        let puts = remember.iter().filter_map(|&(i, sequence)| {
            let key = keys[i].as_deref()?;
            let mut value = [0u8; 16];
            value[..8].copy_from_slice(&sequence.to_be_bytes());
            let received = batch[i].record.receive_time_ms.max(0) as u64;
            value[8..].copy_from_slice(&received.to_be_bytes());
            Some(async move {
                self.dedupe
                    .put(key, bytes::Bytes::copy_from_slice(&value))
                    .await
                    .map_err(backend)
            })
        });
        try_join_all(puts).await?;
        if let Some(&(_, last)) = fresh.last() {
            self.bounds.head.fetch_max(last, Ordering::AcqRel);
            self.commits.records.observe(fresh.len() as f64);
            self.commits
                .seconds
                .observe(started.elapsed().as_secs_f64());
        }

        for i in 0..batch.len() {
            if let Some(first) = repeat_of[i] {
                let sequence = match outcomes[first] {
                    Some(AppendOutcome::Stored { sequence })
                    | Some(AppendOutcome::Duplicate { sequence }) => sequence,
                    None => continue,
                };
                outcomes[i] = Some(AppendOutcome::Duplicate { sequence });
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.ok_or_else(|| StoreError::Backend("an event got no outcome".into())))
            .collect()
    }

    pub async fn read(&self, after: u64, limit: usize) -> Result<Vec<EventRecord>> {
        let head = self.head().await?;
        if after >= head || limit == 0 {
            return Ok(Vec::new());
        }
        let consumer = self
            .stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: self.subject.clone(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                },
                ..Default::default()
            })
            .await
            .map_err(backend)?;
        let mut messages = consumer.messages().await.map_err(backend)?;
        let mut records = Vec::new();
        while records.len() < limit {
            let next = tokio::time::timeout(READ_TIMEOUT, messages.next()).await;
            let Ok(Some(message)) = next else {
                return Err(StoreError::Backend(
                    "reading the event stream timed out".into(),
                ));
            };
            let message = message.map_err(backend)?;
            let sequence = message.info().map_err(backend)?.stream_sequence;
            if sequence > head {
                break;
            }
            // See the tail: a recreated consumer may start over.
            if sequence <= records.last().map_or(after, |r: &EventRecord| r.sequence) {
                continue;
            }
            records.push(decode(sequence, &message.payload)?);
            if sequence == head {
                break;
            }
        }
        Ok(records)
    }

    /// The head as this replica knows it, or the stream's when events
    /// appended elsewhere have not reached this replica's tail yet.
    async fn head(&self) -> Result<u64> {
        let info = self.stream.get_info().await.map_err(backend)?;
        Ok(self
            .bounds
            .head
            .fetch_max(info.state.last_sequence, Ordering::AcqRel)
            .max(info.state.last_sequence))
    }

    /// The head, asking the server when `sequence` is beyond what this
    /// replica has seen.
    pub async fn head_at_least(&self, sequence: u64) -> Result<u64> {
        let known = self.bounds.head.load(Ordering::Acquire);
        if sequence <= known {
            return Ok(known);
        }
        self.head().await
    }

    /// The stream's first sequence, as JetStream says now.
    pub async fn oldest_retained(&self) -> Result<u64> {
        let info = self.stream.get_info().await.map_err(backend)?;
        let oldest = info.state.first_sequence.max(1);
        self.bounds.oldest.fetch_max(oldest, Ordering::AcqRel);
        Ok(oldest)
    }

    pub fn bounds(&self) -> LogBounds {
        let oldest = self.bounds.oldest.load(Ordering::Acquire);
        let head = self.bounds.head.load(Ordering::Acquire);
        LogBounds { oldest, head }
    }

    pub fn tail(&self) -> broadcast::Receiver<Arc<EventRecord>> {
        self.tail.subscribe()
    }

    pub fn commit_metrics(&self) -> CommitMetrics {
        self.commits.clone()
    }

    pub fn reply_tokens(&self) -> &ReplyTokens {
        &self.reply_tokens
    }

    /// The stream and the dedupe bucket expire by themselves (their max
    /// age); this refreshes the bounds and forgets old reply tokens.
    pub async fn prune(&self, reply_tokens_before_ms: i64) -> Result<PruneReport> {
        let info = self.stream.get_info().await.map_err(backend)?;
        let oldest = info.state.first_sequence.max(1);
        let before = self.bounds.oldest.swap(oldest, Ordering::AcqRel);
        self.bounds
            .head
            .fetch_max(info.state.last_sequence, Ordering::AcqRel);
        Ok(PruneReport {
            events: oldest.saturating_sub(before),
            dedupe_entries: 0,
            reply_tokens: self.reply_tokens.expire(reply_tokens_before_ms),
        })
    }
}

fn read_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(occurred_ms: Option<i64>, receive_time_ms: i64) -> NewEvent {
        NewEvent {
            record: EventRecord {
                receive_time_ms,
                ..EventRecord::default()
            },
            webhook_event_id: Some("id".into()),
            occurred_ms,
        }
    }

    #[test]
    fn only_events_made_moments_before_they_arrived_skip_the_lookup() {
        let window = Duration::from_secs(10 * 60);
        let received: i64 = 1_700_000_000_000;
        let fresh = FRESH.as_millis() as i64;
        let ahead = AHEAD.as_millis() as i64;
        for (age, lookup) in [
            (0, false),
            (fresh, false),
            (fresh + 1, true),
            (-ahead, false),
            (-ahead - 1, true),
            (7 * 24 * 60 * 60 * 1000, true),
            (i64::MIN, true),
        ] {
            let new = event(Some(received.saturating_sub(age)), received);
            assert_eq!(needs_lookup(&new, window), lookup, "age {age} ms");
        }
        // Records without LINE's time, and streams with a shorter window
        // than the rule relies on, always ask.
        assert!(needs_lookup(&event(None, received), window));
        let short = WINDOW_FOR_FRESH - Duration::from_millis(1);
        assert!(needs_lookup(&event(Some(received), received), short));
        assert!(!needs_lookup(
            &event(Some(received), received),
            WINDOW_FOR_FRESH
        ));
    }
}
