//! The store as the service sees it: watched, and reopened in place.
//!
//! Every failed write (a backend failure: I/O, a full disk, JetStream out
//! of resources) is reported to the service's [`StoreFault`], so that
//! readiness goes false at once whichever part of the service met it
//! (webhooks, the outbox, acks, token renewals, the log's own records),
//! not only when a webhook fails. Only writes are watched, and nothing is
//! cleared here: readiness comes back through a successful webhook or the
//! store probe, which write to the log and the store itself.
//!
//! sled fails every write after one met a full disk, until it is opened
//! again. [`Watched::reopen_in_place`] does that without a restart: it takes
//! the backend out (calls meanwhile fail with [`StoreError::Reopening`]),
//! closes it, waits for the calls in flight to let go of it so its files
//! are released, and opens it again, which lets sled's recovery decide
//! what is on disk. Everything acknowledged was flushed before, so it is
//! still there.

use std::{
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use tokio::sync::broadcast;

use super::{
    AppendOutcome, ChannelRecord, CommitMetrics, ConsumerPosition, DeliveryQuery, DeliveryRecord,
    EventRecord, LogBounds, NewEvent, PruneReport, ReplyToken, Result, Retention, Store,
    StoreError, TokenStateRecord,
};
use crate::fault::StoreFault;

/// Opens the backend again, for [`Watched::reopen_in_place`].
pub type Opener = Box<dyn Fn() -> BoxFuture<'static, Result<Arc<dyn Store>>> + Send + Sync>;

/// How long a reopen waits for calls in flight to let go of the old store.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

pub struct Watched {
    /// The backend; `None` while it is being reopened (or failed to open).
    slot: RwLock<Option<Arc<dyn Store>>>,
    fault: StoreFault,
    opener: Option<Opener>,
    /// One reopen at a time.
    reopening: tokio::sync::Mutex<()>,
    /// What `bounds` answers while there is no backend.
    last_bounds: Mutex<LogBounds>,
    /// Fixed for the backend's life, kept to answer without it.
    shared: bool,
    instance_id: Option<String>,
}

impl Watched {
    pub fn new(inner: Arc<dyn Store>, fault: StoreFault) -> Self {
        Self {
            shared: inner.shared(),
            instance_id: inner.instance_id().map(str::to_owned),
            last_bounds: Mutex::new(inner.bounds()),
            slot: RwLock::new(Some(inner)),
            fault,
            opener: None,
            reopening: tokio::sync::Mutex::new(()),
        }
    }

    /// A backend that can be reopened in place after failed writes (sled;
    /// a networked store recovers by itself).
    pub fn with_opener(mut self, opener: Opener) -> Self {
        self.opener = Some(opener);
        self
    }

    fn open(&self) -> Option<Arc<dyn Store>> {
        self.slot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn current(&self) -> Result<Arc<dyn Store>> {
        self.open().ok_or(StoreError::Reopening)
    }

    fn watch<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(err) = &result {
            self.fault.failed(err);
        }
        result
    }

    /// Closes the backend and opens it again; `Ok(false)` when it cannot
    /// be reopened (no opener). On failure the store stays without a
    /// backend, and the next call tries again.
    pub async fn reopen_in_place(&self) -> Result<bool> {
        let Some(opener) = &self.opener else {
            return Ok(false);
        };
        let _one_at_a_time = self.reopening.lock().await;
        let taken = self
            .slot
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(old) = taken {
            *self
                .last_bounds
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = old.bounds();
            // Its flush fails on a full disk; closing still stops its
            // background work.
            let _ = old.close().await;
            let deadline = Instant::now() + RELEASE_WAIT;
            while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let store = self.watch(opener().await)?;
        *self.slot.write().unwrap_or_else(PoisonError::into_inner) = Some(store);
        Ok(true)
    }
}

#[async_trait]
impl Store for Watched {
    async fn insert_channel(&self, channel: &ChannelRecord) -> Result<()> {
        self.watch(self.current()?.insert_channel(channel).await)
    }

    async fn get_channel(&self, id: &str) -> Result<Option<ChannelRecord>> {
        self.current()?.get_channel(id).await
    }

    async fn peek_channel(&self, id: &str) -> Result<Option<ChannelRecord>> {
        self.current()?.peek_channel(id).await
    }

    async fn find_channel_by_line_id(&self, line_channel_id: &str) -> Result<Option<String>> {
        self.current()?
            .find_channel_by_line_id(line_channel_id)
            .await
    }

    async fn list_channels(
        &self,
        after_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ChannelRecord>> {
        self.current()?.list_channels(after_id, limit).await
    }

    async fn replace_channel(&self, expected_version: u64, channel: &ChannelRecord) -> Result<()> {
        self.watch(
            self.current()?
                .replace_channel(expected_version, channel)
                .await,
        )
    }

    async fn delete_channel(&self, id: &str) -> Result<Option<ChannelRecord>> {
        self.watch(self.current()?.delete_channel(id).await)
    }

    async fn get_token_state(&self, channel_id: &str) -> Result<Option<TokenStateRecord>> {
        self.current()?.get_token_state(channel_id).await
    }

    async fn put_token_state(&self, expected_version: u64, state: &TokenStateRecord) -> Result<()> {
        self.watch(
            self.current()?
                .put_token_state(expected_version, state)
                .await,
        )
    }

    async fn meta_get_or_insert(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        self.watch(self.current()?.meta_get_or_insert(key, value).await)
    }

    fn shared(&self) -> bool {
        self.shared
    }

    fn instance_id(&self) -> Option<&str> {
        self.instance_id.as_deref()
    }

    fn healthy(&self) -> bool {
        self.open().is_some_and(|store| store.healthy())
    }

    fn commit_metrics(&self) -> Option<CommitMetrics> {
        self.open()?.commit_metrics()
    }

    async fn consumers(&self) -> Result<Vec<(String, ConsumerPosition)>> {
        self.current()?.consumers().await
    }

    async fn meta_put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.watch(self.current()?.meta_put(key, value).await)
    }

    async fn flush(&self) -> Result<()> {
        self.watch(self.current()?.flush().await)
    }

    async fn close(&self) -> Result<()> {
        self.current()?.close().await
    }

    async fn reopen(&self) -> Result<bool> {
        self.reopen_in_place().await
    }

    fn shared_files(&self) -> Option<super::SharedFiles> {
        self.open().and_then(|store| store.shared_files())
    }

    async fn append(&self, batch: Vec<NewEvent>) -> Result<Vec<AppendOutcome>> {
        self.watch(self.current()?.append(batch).await)
    }

    async fn read_events(&self, after: u64, limit: usize) -> Result<Vec<EventRecord>> {
        self.current()?.read_events(after, limit).await
    }

    fn bounds(&self) -> LogBounds {
        match self.open() {
            Some(store) => store.bounds(),
            None => *self.last_bounds.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    async fn bounds_reaching(&self, sequence: u64) -> Result<LogBounds> {
        self.current()?.bounds_reaching(sequence).await
    }

    async fn oldest_retained(&self) -> Result<u64> {
        self.current()?.oldest_retained().await
    }

    fn tail(&self) -> broadcast::Receiver<Arc<EventRecord>> {
        match self.open() {
            Some(store) => store.tail(),
            // Closed at once: a follower reads the log again shortly.
            None => broadcast::channel(1).1,
        }
    }

    async fn prune(&self, retention: Retention) -> Result<PruneReport> {
        self.watch(self.current()?.prune(retention).await)
    }

    fn recent_reply_tokens(&self, channel_id: &str, conversation_id: &str) -> Vec<ReplyToken> {
        self.open()
            .map(|store| store.recent_reply_tokens(channel_id, conversation_id))
            .unwrap_or_default()
    }

    async fn consumer(&self, name: &str) -> Result<Option<ConsumerPosition>> {
        self.current()?.consumer(name).await
    }

    async fn claim_reply_token(&self, channel_id: &str, token: &str, now_ms: i64) -> Result<bool> {
        self.watch(
            self.current()?
                .claim_reply_token(channel_id, token, now_ms)
                .await,
        )
    }

    async fn insert_delivery(&self, delivery: &DeliveryRecord) -> Result<Option<DeliveryRecord>> {
        self.watch(self.current()?.insert_delivery(delivery).await)
    }

    async fn update_delivery(
        &self,
        previous_update_ms: i64,
        delivery: &DeliveryRecord,
    ) -> Result<()> {
        self.watch(
            self.current()?
                .update_delivery(previous_update_ms, delivery)
                .await,
        )
    }

    async fn update_delivery_lazily(
        &self,
        previous_update_ms: i64,
        delivery: &DeliveryRecord,
    ) -> Result<()> {
        self.watch(
            self.current()?
                .update_delivery_lazily(previous_update_ms, delivery)
                .await,
        )
    }

    async fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>> {
        self.current()?.get_delivery(id).await
    }

    async fn delivery_by_idempotency_key(
        &self,
        channel_id: &str,
        key: &str,
    ) -> Result<Option<DeliveryRecord>> {
        self.current()?
            .delivery_by_idempotency_key(channel_id, key)
            .await
    }

    async fn unfinished_deliveries(&self) -> Result<Vec<DeliveryRecord>> {
        self.current()?.unfinished_deliveries().await
    }

    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<DeliveryRecord>> {
        self.current()?.list_deliveries(query).await
    }

    async fn lease_delivery(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool> {
        self.watch(
            self.current()?
                .lease_delivery(id, owner, now_ms, until_ms)
                .await,
        )
    }

    async fn release_delivery(&self, id: &str, owner: &str) -> Result<()> {
        self.watch(self.current()?.release_delivery(id, owner).await)
    }

    async fn ack(
        &self,
        name: &str,
        sequence: u64,
        now_ms: i64,
    ) -> Result<(ConsumerPosition, bool)> {
        self.watch(self.current()?.ack(name, sequence, now_ms).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SledStore, StoreError};

    #[tokio::test]
    async fn a_failed_write_faults_and_reads_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let sled = Arc::new(SledStore::open(dir.path()).unwrap());
        let fault = StoreFault::new(crate::time::Clock::system());
        let store = Watched::new(sled.clone(), fault.clone());
        store.meta_put("k", b"v").await.unwrap();
        assert!(store.get_delivery("dl_none").await.unwrap().is_none());
        assert!(!fault.is_faulted());
        // Appends fail once the store is closed: the fault is noted.
        sled.close().await.unwrap();
        let err = store.append(Vec::new()).await.unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
        assert!(fault.is_faulted());
    }

    fn event(id: &str) -> NewEvent {
        NewEvent {
            record: EventRecord {
                sequence: 0,
                channel_id: "ch_1".into(),
                type_name: "message".into(),
                conversation_id: "U1".into(),
                receive_time_ms: 1,
                dead_letter: false,
                payload: bytes::Bytes::from_static(b"payload"),
                reply_token: String::new(),
            },
            webhook_event_id: Some(id.into()),
            occurred_ms: None,
        }
    }

    #[tokio::test]
    async fn a_reopen_in_place_keeps_what_was_stored_and_takes_writes_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let open = move || {
            let path = path.clone();
            Box::pin(async move {
                // The old handle's files may take a moment to be released.
                for _ in 0..250 {
                    match SledStore::open(&path) {
                        Err(StoreError::Locked { .. }) => {
                            tokio::time::sleep(Duration::from_millis(20)).await
                        }
                        opened => return opened.map(|s| Arc::new(s) as Arc<dyn Store>),
                    }
                }
                Err(StoreError::Locked {
                    path: "still".into(),
                })
            }) as BoxFuture<'static, Result<Arc<dyn Store>>>
        };
        let store = Watched::new(
            open().await.unwrap(),
            StoreFault::new(crate::time::Clock::system()),
        )
        .with_opener(Box::new(open));
        store.append(vec![event("a")]).await.unwrap();
        let before = store.tail();
        assert!(store.reopen().await.unwrap());
        // The old tail is closed; the store's new one follows new appends.
        let mut before = before;
        // The first append's record may still be on its way to the old
        // tail (it is published after the commit); then the tail ends.
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Err(end) = before.recv().await {
                    break end;
                }
            }
        })
        .await
        .expect("the old tail ends");
        assert!(matches!(end, broadcast::error::RecvError::Closed));
        let mut after = store.tail();
        let outcomes = store.append(vec![event("a"), event("b")]).await.unwrap();
        assert_eq!(
            outcomes,
            vec![
                AppendOutcome::Duplicate { sequence: 1 },
                AppendOutcome::Stored { sequence: 2 }
            ],
            "the dedupe entries and the head survived the reopen"
        );
        assert_eq!(after.recv().await.unwrap().sequence, 2);
        assert_eq!(store.read_events(0, 10).await.unwrap().len(), 2);
        assert_eq!(store.bounds().head, 2);
    }

    #[tokio::test]
    async fn without_an_opener_a_reopen_does_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Watched::new(
            Arc::new(SledStore::open(dir.path()).unwrap()),
            StoreFault::new(crate::time::Clock::system()),
        );
        assert!(!store.reopen().await.unwrap());
        store.meta_put("k", b"v").await.unwrap();
    }
}
