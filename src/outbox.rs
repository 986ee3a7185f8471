//! The durable outbox: every send is stored before its first attempt and
//! after each one, retried with the same `X-Line-Retry-Key`, and resumed
//! after a crash, so that a message is never lost and never sent twice.
//!
//! Replies are the exception LINE's API forces: they have no retry key, so
//! a reply whose request may have reached LINE (a timeout, a broken
//! connection) is never retried; it ends `unknown` and is reported.
//!
//! Narrowcasts are the other: LINE accepts them (202) and sends later, so
//! an accepted one stays unfinished while its progress is read
//! (`narrowcast.rs`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::json;
use sha2::{Digest as _, Sha256};
use tokio::sync::{Semaphore, watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

mod narrowcast;

use crate::{
    channels::ChannelError,
    line::{self, ApiError, ApiErrorDetail, CallError, api::Route},
    metrics::{Metrics, StateLabels},
    outbound,
    store::{
        ChannelRecord, DeliveryRecord, DeliveryState, LineErrorDetailRecord, LineErrorRecord,
        LoggedRecords, SendKind, SentMessageRecord, Store, StoreError,
    },
    time::Clock,
    tokens::{TokenError, Tokens},
};

/// Outbox storage failures (a full or failing disk) and retries (LINE
/// unreachable) happen per send and per attempt: logged as counts.
static STORAGE_FAILED: crate::log_limit::Throttle =
    crate::log_limit::Throttle::new(crate::log_limit::INTERVAL);
static RETRYING: crate::log_limit::Throttle =
    crate::log_limit::Throttle::new(crate::log_limit::INTERVAL);

/// Attempts before a send is given up. With the default backoff the retry
/// window (an hour) ends first; a shorter `outbox_max_backoff_ms` makes
/// this the bound.
const MAX_ATTEMPTS: u32 = 40;
/// LINE keeps a retry key for 24 hours; past that a retry could send twice.
/// Stop well before.
const RETRY_WINDOW: Duration = Duration::from_secs(60 * 60);
/// LINE remembers a retry key for 24 hours: a push first attempted longer
/// ago than this (e.g. resumed after a long outage) could be delivered twice,
/// so it is failed instead of resent.
const RETRY_KEY_LIFETIME: Duration = Duration::from_secs(23 * 60 * 60);
/// Replies are retried (when LINE answered and so sent nothing) only while
/// their token can still work.
const REPLY_WINDOW: Duration = Duration::from_secs(50);
const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// Default longest pause between attempts (`outbox_max_backoff_ms`).
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Requests in flight to LINE per channel: one busy channel cannot take all
/// connections from the others.
const PER_CHANNEL_IN_FLIGHT: usize = 64;
/// Default lease on a send (see [`Outbox::with_lease`]): an attempt (at most
/// the LINE request timeout, 10 s by default) and its two saves fit in it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// A send to store and perform.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub channel_id: String,
    pub kind: SendKind,
    /// `user:`, `group:` or `room:` + id, for reply and push.
    pub conversation: Option<String>,
    /// The LINE request body.
    pub body: serde_json::Value,
    pub idempotency_key: String,
    pub reply_webhook_event_id: String,
    /// Push here if LINE rejects the reply token.
    pub push_fallback: Option<String>,
    /// The caller's messages for the log's records
    /// ([`crate::outbound::encode_messages`]).
    pub typed_messages: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("idempotency key {key} was used for a different request")]
    IdempotencyMismatch { key: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The outbox; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    tokens: Tokens,
    metrics: Metrics,
    /// Longest pause between two attempts of a send.
    max_backoff: Duration,
    /// Live state of deliveries being worked on, for callers that wait.
    watchers: Mutex<HashMap<String, watch::Sender<DeliveryRecord>>>,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// Dates sends and their attempts, leases and retry windows (and ids).
    clock: Clock,
    ids: Mutex<ulid::Generator>,
    /// This process, as the holder of delivery leases.
    owner: String,
    /// How long a lease taken before an attempt lasts.
    lease: Duration,
}

/// `user:U…` → the id LINE wants in `to`.
pub fn conversation_id(conversation: &str) -> &str {
    conversation
        .split_once(':')
        .map_or(conversation, |(_, id)| id)
}

impl Outbox {
    pub fn new(store: Arc<dyn Store>, tokens: Tokens, metrics: Metrics, clock: Clock) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                tokens,
                metrics,
                max_backoff: BACKOFF_MAX,
                watchers: Mutex::new(HashMap::new()),
                limits: Mutex::new(HashMap::new()),
                tasks: TaskTracker::new(),
                shutdown: CancellationToken::new(),
                clock,
                ids: Mutex::new(ulid::Generator::new()),
                owner: uuid::Uuid::new_v4().simple().to_string(),
                lease: DEFAULT_LEASE,
            }),
        }
    }

    /// The same outbox taking leases of `lease` on a send before each
    /// attempt, so that of several processes on one store only one attempts
    /// it at a time; one that dies mid-send leaves its sends to the others
    /// once the lease runs out. It must outlast an attempt: the LINE request
    /// timeout plus two saves. Call before any send starts.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.lease = lease;
        }
        self
    }

    /// The same outbox holding leases as `owner` (the store's instance id):
    /// after a restart it takes up its own leases at once. Call before any
    /// send starts.
    pub fn with_owner(mut self, owner: Option<&str>) -> Self {
        if let (Some(owner), Some(inner)) = (owner, Arc::get_mut(&mut self.inner)) {
            inner.owner = owner.to_owned();
        }
        self
    }

    /// How often [`Self::adopt_forever`] looks for sends no one works on.
    pub fn adopt_interval(&self) -> Duration {
        self.inner.lease / 2
    }

    /// The same outbox with at most `max` between two attempts of a send.
    /// Call before any send starts.
    pub fn with_max_backoff(mut self, max: Duration) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.max_backoff = max;
        }
        self
    }

    /// Stores the send and starts it. With an idempotency key already used
    /// for the same request, returns that delivery instead (`true`).
    pub async fn submit(&self, new: NewDelivery) -> Result<(DeliveryRecord, bool), OutboxError> {
        let digest = digest(&new);
        let now = self.inner.clock.now_ms();
        let record = DeliveryRecord {
            id: self.new_id(),
            channel_id: new.channel_id,
            kind: new.kind,
            conversation: new.conversation,
            body: new.body,
            retry_key: match new.kind {
                SendKind::Reply => String::new(),
                _ => uuid::Uuid::new_v4().to_string(),
            },
            state: DeliveryState::Queued,
            attempts: 0,
            next_attempt_ms: None,
            line_request_id: String::new(),
            accepted_request_id: String::new(),
            error: None,
            failure: None,
            sent_messages: Vec::new(),
            idempotency_key: new.idempotency_key,
            request_digest: digest,
            reply_webhook_event_id: new.reply_webhook_event_id,
            push_fallback: new.push_fallback,
            create_time_ms: now,
            update_time_ms: now,
            fell_back_to_push: false,
            typed_messages: new.typed_messages,
            logged: LoggedRecords::None,
            narrowcast: None,
        };
        if let Some(existing) = self.inner.store.insert_delivery(&record).await? {
            if existing.request_digest != record.request_digest {
                return Err(OutboxError::IdempotencyMismatch {
                    key: record.idempotency_key,
                });
            }
            // A repeat: its records are the first send's.
            return Ok((existing, true));
        }
        let mut record = record;
        // On the log before the caller hears of the send. Noted in the
        // record only by its next save: a crash before that appends the
        // queued record again on restart, which deduplication absorbs.
        self.inner.append_records(&mut record).await;
        self.start(record.clone());
        Ok((record, false))
    }

    /// Waits until the delivery is final or `timeout` passes; returns its
    /// state then.
    pub async fn wait(&self, record: DeliveryRecord, timeout: Duration) -> DeliveryRecord {
        self.wait_until(record, timeout, |r| r.state.is_final())
            .await
    }

    /// Waits until LINE took the delivery (a narrowcast: accepted, its
    /// progress still followed) or it is final, or `timeout` passes.
    pub async fn wait_accepted(&self, record: DeliveryRecord, timeout: Duration) -> DeliveryRecord {
        self.wait_until(record, timeout, |r| {
            r.state.is_final() || r.state == DeliveryState::Accepted
        })
        .await
    }

    async fn wait_until(
        &self,
        record: DeliveryRecord,
        timeout: Duration,
        done: impl Fn(&DeliveryRecord) -> bool,
    ) -> DeliveryRecord {
        let receiver = {
            let watchers = self
                .inner
                .watchers
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            watchers.get(&record.id).map(|w| w.subscribe())
        };
        let Some(mut receiver) = receiver else {
            // Not being worked on here: final already, or resumed elsewhere.
            return self.get(&record.id).await.ok().flatten().unwrap_or(record);
        };
        let _ = tokio::time::timeout(timeout, receiver.wait_for(done)).await;
        receiver.borrow().clone()
    }

    /// The delivery as this process works on it now, if it does (no store
    /// read).
    pub fn live(&self, id: &str) -> Option<DeliveryRecord> {
        self.inner
            .watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|live| live.borrow().clone())
    }

    pub async fn get(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
        if let Some(live) = self
            .inner
            .watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            return Ok(Some(live.borrow().clone()));
        }
        self.inner.store.get_delivery(id).await
    }

    /// Resumes what a previous process left unfinished, or another
    /// process stopped working on (its lease ran out): sends this process
    /// works on already, and sends another process holds a lease on, are
    /// left alone. A reply caught mid-request cannot be retried safely and
    /// becomes `unknown`. Returns how many it took up.
    pub async fn resume(&self) -> Result<usize, StoreError> {
        let unfinished = self.inner.store.unfinished_deliveries().await?;
        let mut count = 0;
        for mut record in unfinished {
            if record.state.is_final() {
                // Final, with a record a crash (or a store failure) kept
                // off the log: appended now, once.
                self.inner.settle(&mut record).await;
                continue;
            }
            let local = self
                .inner
                .watchers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(&record.id);
            if local || !self.inner.take_lease(&record.id).await? {
                continue;
            }
            // The list is a snapshot: the send may have moved on (or ended)
            // since, here or elsewhere.
            match self.inner.store.get_delivery(&record.id).await? {
                Some(current) if !current.state.is_final() => record = current,
                _ => {
                    self.inner.release(&record.id).await;
                    continue;
                }
            }
            count += 1;
            if record.kind == SendKind::Reply && record.state == DeliveryState::Sending {
                record.state = DeliveryState::Unknown;
                record.failure = Some("the service stopped while this reply was being sent".into());
                self.inner.store_update(&mut record).await?;
                self.inner.release(&record.id).await;
                continue;
            }
            // Accepted before a crash that kept its queued record off the
            // log: appended before anything else of it.
            self.inner.append_records(&mut record).await;
            self.start(record);
        }
        Ok(count)
    }

    /// Takes up, every [`Self::adopt_interval`], the sends no process works
    /// on (their process died), until the outbox closes.
    pub async fn adopt_forever(&self) {
        let mut ticks = tokio::time::interval(self.adopt_interval());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = self.inner.shutdown.cancelled() => return,
            }
            match self.resume().await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "took up sends another process left"),
                Err(err) => tracing::warn!(error = %err, "looking for abandoned sends failed"),
            }
        }
    }

    /// Stops the workers; unfinished sends stay stored and resume on the
    /// next start.
    pub async fn close(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    fn new_id(&self) -> String {
        let mut ids = self.inner.ids.lock().unwrap_or_else(|p| p.into_inner());
        let ulid = ids
            .generate_from_datetime(self.inner.clock.now())
            .unwrap_or_else(|overflow| overflow.commit_overflow_random());
        format!("dl_{}", ulid.to_string().to_ascii_lowercase())
    }

    fn start(&self, record: DeliveryRecord) {
        let (sender, _) = watch::channel(record.clone());
        {
            let mut watchers = self
                .inner
                .watchers
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            // Already worked on here (a resume racing a submit).
            if watchers.contains_key(&record.id) {
                return;
            }
            watchers.insert(record.id.clone(), sender);
        }
        let inner = self.inner.clone();
        // The delivery's span follows from the call that submitted it.
        let span = tracing::info_span!(
            "delivery",
            otel.name = %format!("deliver {}", state_label_kind(record.kind)),
            delivery = %record.id,
            channel = %record.channel_id,
        );
        self.inner.tasks.spawn(tracing::Instrument::instrument(
            async move {
                let id = record.id.clone();
                inner.work(record).await;
                let watcher = inner
                    .watchers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                if let Some(watcher) = watcher {
                    let state = watcher.borrow().state;
                    if state.is_final() {
                        inner
                            .metrics
                            .outbox_finished
                            .get_or_create(&StateLabels {
                                state: state_label(state).into(),
                            })
                            .inc();
                    }
                }
            },
            span,
        ));
    }

    /// Sends being worked on, by state (queued, sending), for `/metrics`.
    pub fn pending_by_state(&self) -> [(DeliveryState, usize); 2] {
        let watchers = self
            .inner
            .watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut queued = 0;
        let mut sending = 0;
        for watcher in watchers.values() {
            match watcher.borrow().state {
                DeliveryState::Sending => sending += 1,
                // LINE has it; only its progress is read.
                DeliveryState::Accepted => {}
                state if !state.is_final() => queued += 1,
                _ => {}
            }
        }
        [
            (DeliveryState::Queued, queued),
            (DeliveryState::Sending, sending),
        ]
    }
}

/// A send kind as a span name part.
fn state_label_kind(kind: SendKind) -> &'static str {
    match kind {
        SendKind::Reply => "reply",
        SendKind::Push => "push",
        SendKind::Multicast => "multicast",
        SendKind::Broadcast => "broadcast",
        SendKind::Narrowcast => "narrowcast",
    }
}

/// A delivery state as a metric label.
pub fn state_label(state: DeliveryState) -> &'static str {
    match state {
        DeliveryState::Queued => "queued",
        DeliveryState::Sending => "sending",
        DeliveryState::Delivered => "delivered",
        DeliveryState::Failed => "failed",
        DeliveryState::Unknown => "unknown",
        DeliveryState::Accepted => "accepted",
    }
}

/// Why no token could be had for an attempt.
enum TokenProblem {
    /// Trying later may help.
    Transient(String),
    Permanent(String),
}

/// What one attempt came to.
enum Attempt {
    Done,
    RetryAfter(Option<Duration>),
    /// LINE accepted a narrowcast: its progress is followed next.
    Follow,
}

impl Inner {
    /// Takes or renews this process's lease on a send.
    async fn take_lease(&self, id: &str) -> Result<bool, StoreError> {
        self.take_lease_for(id, Duration::ZERO).await
    }

    /// Takes or renews the lease to cover a wait of `wait` first.
    async fn take_lease_for(&self, id: &str, wait: Duration) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        let until = now.saturating_add((wait + self.lease).as_millis() as i64);
        self.store.lease_delivery(id, &self.owner, now, until).await
    }

    /// Waits `pause` holding the lease (so no other process takes the
    /// send up meanwhile); `false` when the service stops or the lease
    /// could not be kept.
    async fn wait_holding(&self, id: &str, pause: Duration) -> bool {
        if !matches!(self.take_lease_for(id, pause).await, Ok(true)) {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => true,
            _ = self.shutdown.cancelled() => {
                self.release(id).await;
                false
            }
        }
    }

    async fn work(&self, mut record: DeliveryRecord) {
        loop {
            if self.shutdown.is_cancelled() {
                // Stored as it is; another process (or the next start)
                // takes it up at once.
                self.release(&record.id).await;
                return;
            }
            // Only the lease holder attempts; and another process may have
            // moved the send on while this one waited.
            match self.take_lease(&record.id).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(delivery = %record.id, "another process is sending it");
                    return;
                }
                Err(err) => {
                    if let Some(suppressed) = STORAGE_FAILED.admit() {
                        tracing::error!(delivery = %record.id, error = %err, suppressed, "outbox storage failed (suppressed: how many more since the last such line)");
                    }
                    return;
                }
            }
            match self.store.get_delivery(&record.id).await {
                // Withdrawn: it lost a race for its idempotency key.
                Ok(None) => {
                    self.release(&record.id).await;
                    return;
                }
                Ok(Some(stored)) if stored.update_time_ms != record.update_time_ms => {
                    record = stored;
                    if record.state.is_final() {
                        self.publish(&record);
                        self.release(&record.id).await;
                        return;
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    if let Some(suppressed) = STORAGE_FAILED.admit() {
                        tracing::error!(delivery = %record.id, error = %err, suppressed, "outbox storage failed (suppressed: how many more since the last such line)");
                    }
                    return;
                }
            }
            // Taken up before its next attempt is due: wait for it.
            if let Some(next) = record.next_attempt_ms
                && next > self.clock.now_ms()
            {
                let pause = Duration::from_millis((next - self.clock.now_ms()).max(0) as u64);
                if !self.wait_holding(&record.id, pause).await {
                    return;
                }
                continue;
            }
            if record.state == DeliveryState::Accepted {
                match self.follow(&mut record).await {
                    narrowcast::Followed::Final => {
                        self.save(&mut record).await;
                        self.release(&record.id).await;
                        return;
                    }
                    narrowcast::Followed::Again(pause) => {
                        record.next_attempt_ms =
                            Some(self.clock.now_ms() + pause.as_millis() as i64);
                        if !self.save(&mut record).await
                            || !self.wait_holding(&record.id, pause).await
                        {
                            return;
                        }
                        continue;
                    }
                }
            }
            // Renewed while the attempt runs: waiting for a slot on a busy
            // channel, a token and the request may together outlast it.
            let id = record.id.clone();
            let renew = async {
                loop {
                    tokio::time::sleep(self.lease / 3).await;
                    if let Err(err) = self.take_lease(&id).await {
                        tracing::warn!(delivery = %id, error = %err, "renewing a send's lease failed");
                    }
                }
            };
            let outcome = tokio::select! {
                outcome = self.attempt(&mut record) => outcome,
                never = renew => never,
            };
            match outcome {
                Ok(Attempt::Done) => {
                    self.release(&record.id).await;
                    return;
                }
                // Saved as accepted; the loop reads its progress when due.
                Ok(Attempt::Follow) => {}
                Ok(Attempt::RetryAfter(pause)) => {
                    let pause = pause.unwrap_or_else(|| backoff(record.attempts, self.max_backoff));
                    let elapsed = self.clock.now_ms().saturating_sub(record.create_time_ms);
                    let window = match record.kind {
                        SendKind::Reply => REPLY_WINDOW,
                        _ => RETRY_WINDOW,
                    };
                    if record.attempts >= MAX_ATTEMPTS
                        || elapsed.saturating_add(pause.as_millis() as i64)
                            > window.as_millis() as i64
                    {
                        record.state = DeliveryState::Failed;
                        if record.failure.is_none() && record.error.is_none() {
                            record.failure = Some("retries ran out".into());
                        }
                        self.save(&mut record).await;
                        self.release(&record.id).await;
                        return;
                    }
                    record.state = DeliveryState::Queued;
                    record.next_attempt_ms = Some(self.clock.now_ms() + pause.as_millis() as i64);
                    if !self.save(&mut record).await || !self.wait_holding(&record.id, pause).await
                    {
                        return;
                    }
                }
                Err(err) => {
                    // The store failed: the state on disk is the last good
                    // one and the send resumes from it after a restart.
                    if let Some(suppressed) = STORAGE_FAILED.admit() {
                        tracing::error!(delivery = %record.id, error = %err, suppressed, "outbox storage failed (suppressed: how many more since the last such line)");
                    }
                    return;
                }
            }
        }
    }

    /// One attempt; the record is saved before the request and after.
    async fn attempt(&self, record: &mut DeliveryRecord) -> Result<Attempt, StoreError> {
        let age = self.clock.now_ms().saturating_sub(record.create_time_ms);
        if record.kind != SendKind::Reply
            && record.attempts > 0
            && age > RETRY_KEY_LIFETIME.as_millis() as i64
        {
            record.state = DeliveryState::Failed;
            record.failure = Some(
                "its retry key is older than LINE keeps it (24 h): not resent, to avoid a duplicate"
                    .into(),
            );
            self.save(record).await;
            return Ok(Attempt::Done);
        }
        let channel = match self.token(&record.channel_id).await {
            Ok(channel) => channel,
            Err(TokenProblem::Transient(reason)) => {
                // LINE's token endpoint failed: nothing was sent, try again.
                // It counts as an attempt, so that the pauses grow and the
                // attempt bound holds while the token endpoint is down.
                record.attempts += 1;
                if record.attempts > 1 {
                    self.metrics.outbox_retries.inc();
                }
                self.waiting(record, None, reason);
                return Ok(Attempt::RetryAfter(None));
            }
            Err(TokenProblem::Permanent(reason)) => {
                record.state = DeliveryState::Failed;
                record.failure = Some(reason);
                self.save(record).await;
                return Ok(Attempt::Done);
            }
        };
        record.state = DeliveryState::Sending;
        record.attempts += 1;
        if record.attempts > 1 {
            self.metrics.outbox_retries.inc();
        }
        record.next_attempt_ms = None;
        // Durable before the request: a crash now must be seen as "maybe
        // sent" for a reply on restart.
        self.store_update(record).await?;

        let limit = self.limit(&record.channel_id);
        let called = {
            let _permit = limit
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let retry_key = (!record.retry_key.is_empty()).then_some(record.retry_key.as_str());
            // A 401 is retried once inside, with a renewed token (the same
            // retry key; a reply's token is still unused).
            self.tokens
                .line(&channel)
                .send(route(record.kind), &record.body, retry_key)
                .await
        };
        // The request after a renewal counts too (a call that could not get
        // its token made none, and counts as this one attempt).
        record.attempts += called.requests.saturating_sub(1);
        let response = match called.result {
            Ok(response) => response,
            Err(CallError::Line(line::Error::AlreadyAccepted {
                accepted_request_id,
                request_id,
                body: _,
            })) if record.kind == SendKind::Narrowcast => {
                // An earlier attempt (before a crash, or with its answer
                // lost) was accepted: that request's progress is followed.
                record.line_request_id = request_id;
                record.accepted_request_id = accepted_request_id.clone();
                return Ok(self.accepted_narrowcast(record, accepted_request_id).await);
            }
            Err(CallError::Line(line::Error::AlreadyAccepted {
                accepted_request_id,
                request_id,
                body,
            })) => {
                record.state = DeliveryState::Delivered;
                record.line_request_id = request_id;
                record.error = None;
                record.failure = None;
                record.accepted_request_id = accepted_request_id;
                record.sent_messages = sent_messages(&body);
                self.save(record).await;
                return Ok(Attempt::Done);
            }
            Err(CallError::Line(line::Error::Network(err))) => {
                if !err.may_have_reached_line() {
                    // Nothing reached LINE: safe to retry, even a reply.
                    self.waiting(record, None, err.to_string());
                    return Ok(Attempt::RetryAfter(None));
                }
                if record.kind == SendKind::Reply {
                    record.state = DeliveryState::Unknown;
                    record.error = None;
                    record.failure = Some(format!("{err}; a reply cannot be retried safely"));
                    self.save(record).await;
                    return Ok(Attempt::Done);
                }
                self.waiting(record, None, err.to_string());
                return Ok(Attempt::RetryAfter(None));
            }
            Err(CallError::Line(line::Error::RateLimited { retry_after, error })) => {
                self.waiting(record, Some(error), String::new());
                return Ok(Attempt::RetryAfter(retry_after));
            }
            Err(CallError::Line(err @ line::Error::Paced { retry_after, .. })) => {
                // Nothing was sent: the channel's pace puts the request
                // later than a call waits. Waited out here, as a
                // Retry-After is: holding the lease, cut short by a stop.
                self.waiting(record, None, err.to_string());
                return Ok(Attempt::RetryAfter(Some(retry_after)));
            }
            Err(CallError::Line(line::Error::Api(error))) if error.http_status >= 500 => {
                self.waiting(record, Some(error), String::new());
                return Ok(Attempt::RetryAfter(None));
            }
            Err(CallError::Line(line::Error::Api(error)))
                if record.kind == SendKind::Reply
                    && error.refuses_reply_token()
                    && record
                        .error
                        .as_ref()
                        .is_some_and(|earlier| earlier.http_status >= 500) =>
            {
                // An earlier attempt got a 5xx, which LINE may have acted
                // on: the token being used now may mean that reply went
                // out. Neither retried nor pushed, so never sent twice.
                record.state = DeliveryState::Unknown;
                record.line_request_id = error.request_id.clone();
                record.error = Some(error.into());
                record.failure = Some(
                    "LINE refused the reply token after an earlier attempt got a 5xx: that attempt may have delivered the reply, so it is neither retried nor pushed".into(),
                );
                self.save(record).await;
                return Ok(Attempt::Done);
            }
            Err(CallError::Line(line::Error::Api(error)))
                if record.kind == SendKind::Reply
                    && error.refuses_reply_token()
                    && record.push_fallback.is_some() =>
            {
                // Nothing was sent; push instead, as the caller allowed.
                record.line_request_id = error.request_id.clone();
                let to = record.push_fallback.take().unwrap_or_default();
                record.kind = SendKind::Push;
                record.fell_back_to_push = true;
                record.conversation = Some(to.clone());
                record.retry_key = uuid::Uuid::new_v4().to_string();
                let mut body = record.body.clone();
                if let Some(object) = body.as_object_mut() {
                    object.remove("replyToken");
                    object.insert("to".into(), json!(conversation_id(&to)));
                }
                record.body = body;
                record.error = Some(error.into());
                return Ok(Attempt::RetryAfter(Some(Duration::ZERO)));
            }
            Err(CallError::Line(line::Error::MonthlyLimit(error) | line::Error::Api(error))) => {
                record.state = DeliveryState::Failed;
                record.line_request_id = error.request_id.clone();
                record.error = Some(error.into());
                self.save(record).await;
                return Ok(Attempt::Done);
            }
            Err(CallError::Line(
                err @ (line::Error::InvalidJson { .. } | line::Error::NotReady { .. }),
            )) => {
                // Neither comes of a send (its body is not read; 202 is a
                // success): should LINE change, wait and ask again.
                self.waiting(record, None, err.to_string());
                return Ok(Attempt::RetryAfter(None));
            }
            Err(CallError::Token(err)) => {
                return Ok(self.token_failed(record, None, err).await);
            }
            Err(CallError::Unauthorized { error, renewal }) => {
                return Ok(self.token_failed(record, Some(error), renewal).await);
            }
        };
        record.line_request_id = response.request_id.clone().unwrap_or_default();
        if record.kind == SendKind::Narrowcast {
            let request_id = record.line_request_id.clone();
            return Ok(self.accepted_narrowcast(record, request_id).await);
        }
        record.state = DeliveryState::Delivered;
        record.error = None;
        record.failure = None;
        record.sent_messages = sent_messages(&response.body);
        self.save(record).await;
        Ok(Attempt::Done)
    }

    /// Records why a send waits for its next attempt: LINE's answer, or the
    /// reason there was none. Either replaces the last one, so GetDelivery
    /// shows the latest.
    fn waiting(&self, record: &mut DeliveryRecord, error: Option<ApiError>, reason: String) {
        match error {
            Some(error) => {
                if let Some(suppressed) = RETRYING.admit() {
                    tracing::info!(delivery = %record.id, attempts = record.attempts, error = %error, suppressed, "send not accepted yet; retrying (suppressed: how many more retries since the last such line)");
                }
                record.line_request_id = error.request_id.clone();
                record.error = Some(error.into());
                record.failure = None;
            }
            None => {
                if let Some(suppressed) = RETRYING.admit() {
                    tracing::info!(delivery = %record.id, attempts = record.attempts, reason = %reason, suppressed, "send not made yet; retrying (suppressed: how many more retries since the last such line)");
                }
                record.error = None;
                record.failure = Some(reason);
            }
        }
    }

    /// No usable token for a send (LINE refused one, `refused`, and none
    /// other could be had): later when the token endpoint failed, else the
    /// send fails.
    async fn token_failed(
        &self,
        record: &mut DeliveryRecord,
        refused: Option<ApiError>,
        err: TokenError,
    ) -> Attempt {
        if let TokenError::Unavailable(_) = err {
            self.waiting(record, None, err.to_string());
            return Attempt::RetryAfter(None);
        }
        record.state = DeliveryState::Failed;
        if let Some(refused) = refused {
            record.line_request_id = refused.request_id.clone();
            record.error = Some(refused.into());
        }
        record.failure = Some(err.to_string());
        self.save(record).await;
        Attempt::Done
    }

    /// The channel, with a token ready for it (so that token problems are
    /// told apart before the send is marked as being sent).
    async fn token(&self, channel_id: &str) -> Result<ChannelRecord, TokenProblem> {
        let channel = match self.tokens.channels().get(channel_id).await {
            Ok(channel) => channel,
            Err(ChannelError::NotFound(_)) => {
                return Err(TokenProblem::Permanent("the channel was deleted".into()));
            }
            Err(err) => {
                return Err(TokenProblem::Transient(format!(
                    "cannot read the channel: {err}"
                )));
            }
        };
        match self.tokens.get(&channel).await {
            Ok(_) => Ok(channel),
            Err(err @ TokenError::Unavailable(_)) => Err(TokenProblem::Transient(err.to_string())),
            Err(err) => Err(TokenProblem::Permanent(err.to_string())),
        }
    }

    fn limit(&self, channel_id: &str) -> Arc<Semaphore> {
        self.limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(channel_id.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(PER_CHANNEL_IN_FLIGHT)))
            .clone()
    }

    /// Saves a new state of a send, unless another process moved it on
    /// since this one read it (its lease ran out): then `Conflict`, and
    /// this process must leave the send alone.
    async fn store_update(&self, record: &mut DeliveryRecord) -> Result<(), StoreError> {
        let previous = record.update_time_ms;
        // Strictly increasing, so that another process can tell it moved.
        record.update_time_ms = self.clock.now_ms().max(previous + 1);
        if let Err(err) = self.store.update_delivery(previous, record).await {
            record.update_time_ms = previous;
            return Err(err);
        }
        // The state is durable: now its record may go on the log (a
        // final record never shows a send the outbox would still retry).
        // Callers waiting on the send hear of it once the record is there.
        self.settle(record).await;
        self.publish(record);
        Ok(())
    }

    /// Appends the delivery's records not on the log yet (see
    /// [`outbound::pending`]); notes in `record` what is there now. A
    /// failure is logged and left for the next save, or a restart.
    async fn append_records(&self, record: &mut DeliveryRecord) -> bool {
        let pending = outbound::pending(record, self.clock.now_ms());
        if pending.is_empty() {
            return true;
        }
        match self.store.append(pending).await {
            Ok(_) => {
                record.logged = outbound::logged_after_append(record);
                true
            }
            Err(err) => {
                if let Some(suppressed) = STORAGE_FAILED.admit() {
                    tracing::error!(delivery = %record.id, error = %err, suppressed, "appending a send's record to the event log failed; appended later (suppressed: how many more outbox storage failures since the last such line)");
                }
                false
            }
        }
    }

    /// For a final delivery: appends its records and notes that they are
    /// on the log, so that no restart appends them again. The note keeps
    /// the update time (nothing a caller or another process acts on
    /// changed) and is not waited for on disk: losing it in a crash only
    /// makes the restart append the records again, which deduplication
    /// absorbs.
    async fn settle(&self, record: &mut DeliveryRecord) {
        if !record.state.is_final() || record.logged == LoggedRecords::Final {
            return;
        }
        if !self.append_records(record).await {
            return;
        }
        match self
            .store
            .update_delivery_lazily(record.update_time_ms, record)
            .await
        {
            Ok(()) => {}
            // Another process moved it on (and settles it), or it is gone.
            Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => {}
            Err(err) => {
                if let Some(suppressed) = STORAGE_FAILED.admit() {
                    tracing::error!(delivery = %record.id, error = %err, suppressed, "noting a send's records as logged failed; a restart appends them again, once (suppressed: how many more outbox storage failures since the last such line)");
                }
            }
        }
    }

    /// Shows a record's state to callers waiting on it.
    fn publish(&self, record: &DeliveryRecord) {
        if let Some(watcher) = self
            .watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&record.id)
        {
            watcher.send_replace(record.clone());
        }
    }

    /// Gives up the lease on a finished send (a failure only leaves it to
    /// expire).
    async fn release(&self, id: &str) {
        if let Err(err) = self.store.release_delivery(id, &self.owner).await {
            tracing::debug!(delivery = %id, error = %err, "releasing a send's lease failed");
        }
    }

    /// Saves a state; `false` when another process took the send over
    /// meanwhile, which ends this process's work on it. A storage failure
    /// is logged and work goes on (the previous durable state stands and a
    /// restart resumes from it).
    async fn save(&self, record: &mut DeliveryRecord) -> bool {
        match self.store_update(record).await {
            Ok(()) => true,
            Err(StoreError::Conflict { .. }) => {
                tracing::info!(delivery = %record.id, "another process took this send over");
                false
            }
            Err(err) => {
                if let Some(suppressed) = STORAGE_FAILED.admit() {
                    tracing::error!(delivery = %record.id, error = %err, suppressed, "saving a delivery failed (suppressed: how many more outbox storage failures since the last such line)");
                }
                true
            }
        }
    }
}

fn route(kind: SendKind) -> Route {
    match kind {
        SendKind::Reply => Route::Reply,
        SendKind::Push => Route::Push,
        SendKind::Multicast => Route::Multicast,
        SendKind::Broadcast => Route::Broadcast,
        SendKind::Narrowcast => Route::Narrowcast,
    }
}

/// Exponential backoff with full jitter.
fn backoff(attempts: u32, max: Duration) -> Duration {
    let ceiling = BACKOFF_BASE.saturating_mul(1 << attempts.min(16)).min(max);
    Duration::from_millis(fastrand::u64(0..=ceiling.as_millis() as u64))
}

fn sent_messages(body: &[u8]) -> Vec<SentMessageRecord> {
    line::api::sent_messages(body)
        .into_iter()
        .map(|m| SentMessageRecord {
            id: m.id,
            quote_token: m.quote_token,
        })
        .collect()
}

impl From<ApiError> for LineErrorRecord {
    fn from(error: ApiError) -> Self {
        Self {
            http_status: error.http_status,
            message: error.message,
            details: error
                .details
                .into_iter()
                .map(|d| LineErrorDetailRecord {
                    message: d.message,
                    property: d.property,
                })
                .collect(),
            request_id: error.request_id,
            retry_after_secs: error.retry_after_secs,
        }
    }
}

impl From<LineErrorRecord> for ApiError {
    fn from(record: LineErrorRecord) -> Self {
        Self {
            http_status: record.http_status,
            message: record.message,
            details: record
                .details
                .into_iter()
                .map(|d| ApiErrorDetail {
                    message: d.message,
                    property: d.property,
                })
                .collect(),
            request_id: record.request_id,
            retry_after_secs: record.retry_after_secs,
        }
    }
}

/// What makes two requests "the same" for an idempotency key.
fn digest(new: &NewDelivery) -> String {
    let mut hasher = Sha256::new();
    hasher.update(new.channel_id.as_bytes());
    hasher.update([0]);
    hasher.update(format!("{:?}", new.kind).as_bytes());
    hasher.update([0]);
    hasher.update(new.conversation.as_deref().unwrap_or_default().as_bytes());
    hasher.update([0]);
    hasher.update(new.body.to_string().as_bytes());
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for attempts in 0..40 {
            assert!(backoff(attempts, BACKOFF_MAX) <= BACKOFF_MAX);
            assert!(backoff(attempts, Duration::from_secs(1)) <= Duration::from_secs(1));
        }
        assert!(backoff(0, BACKOFF_MAX) <= BACKOFF_BASE);
    }
}
