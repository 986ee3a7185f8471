//! A store that reports every failed write (a backend failure: I/O, a full
//! disk, JetStream out of resources) to the service's [`StoreFault`], so
//! that readiness goes false at once whichever part of the service met it
//! (webhooks, the outbox, acks, token renewals, the log's own records),
//! not only when a webhook fails. Only writes are watched, and nothing is
//! cleared here: readiness comes back through a successful webhook or the
//! store probe, which write to the log and the store itself.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{
    AppendOutcome, ChannelRecord, CommitMetrics, ConsumerPosition, DeliveryQuery, DeliveryRecord,
    EventRecord, LogBounds, NewEvent, PruneReport, ReplyToken, Result, Retention, Store,
    TokenStateRecord,
};
use crate::fault::StoreFault;

pub struct Watched {
    inner: Arc<dyn Store>,
    fault: StoreFault,
}

impl Watched {
    pub fn new(inner: Arc<dyn Store>, fault: StoreFault) -> Self {
        Self { inner, fault }
    }

    fn watch<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(err) = &result {
            self.fault.failed(err);
        }
        result
    }
}

#[async_trait]
impl Store for Watched {
    async fn insert_channel(&self, channel: &ChannelRecord) -> Result<()> {
        self.watch(self.inner.insert_channel(channel).await)
    }

    async fn get_channel(&self, id: &str) -> Result<Option<ChannelRecord>> {
        self.inner.get_channel(id).await
    }

    async fn find_channel_by_line_id(&self, line_channel_id: &str) -> Result<Option<String>> {
        self.inner.find_channel_by_line_id(line_channel_id).await
    }

    async fn list_channels(
        &self,
        after_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ChannelRecord>> {
        self.inner.list_channels(after_id, limit).await
    }

    async fn replace_channel(&self, expected_version: u64, channel: &ChannelRecord) -> Result<()> {
        self.watch(self.inner.replace_channel(expected_version, channel).await)
    }

    async fn delete_channel(&self, id: &str) -> Result<Option<ChannelRecord>> {
        self.watch(self.inner.delete_channel(id).await)
    }

    async fn get_token_state(&self, channel_id: &str) -> Result<Option<TokenStateRecord>> {
        self.inner.get_token_state(channel_id).await
    }

    async fn put_token_state(&self, expected_version: u64, state: &TokenStateRecord) -> Result<()> {
        self.watch(self.inner.put_token_state(expected_version, state).await)
    }

    async fn meta_get_or_insert(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        self.watch(self.inner.meta_get_or_insert(key, value).await)
    }

    fn shared(&self) -> bool {
        self.inner.shared()
    }

    fn instance_id(&self) -> Option<&str> {
        self.inner.instance_id()
    }

    fn healthy(&self) -> bool {
        self.inner.healthy()
    }

    fn commit_metrics(&self) -> Option<CommitMetrics> {
        self.inner.commit_metrics()
    }

    async fn consumers(&self) -> Result<Vec<(String, ConsumerPosition)>> {
        self.inner.consumers().await
    }

    async fn meta_put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.watch(self.inner.meta_put(key, value).await)
    }

    async fn flush(&self) -> Result<()> {
        self.watch(self.inner.flush().await)
    }

    async fn close(&self) -> Result<()> {
        self.inner.close().await
    }

    async fn append(&self, batch: Vec<NewEvent>) -> Result<Vec<AppendOutcome>> {
        self.watch(self.inner.append(batch).await)
    }

    async fn read_events(&self, after: u64, limit: usize) -> Result<Vec<EventRecord>> {
        self.inner.read_events(after, limit).await
    }

    fn bounds(&self) -> LogBounds {
        self.inner.bounds()
    }

    async fn bounds_reaching(&self, sequence: u64) -> Result<LogBounds> {
        self.inner.bounds_reaching(sequence).await
    }

    fn tail(&self) -> broadcast::Receiver<Arc<EventRecord>> {
        self.inner.tail()
    }

    async fn prune(&self, retention: Retention) -> Result<PruneReport> {
        self.watch(self.inner.prune(retention).await)
    }

    fn recent_reply_tokens(&self, channel_id: &str, conversation_id: &str) -> Vec<ReplyToken> {
        self.inner.recent_reply_tokens(channel_id, conversation_id)
    }

    async fn consumer(&self, name: &str) -> Result<Option<ConsumerPosition>> {
        self.inner.consumer(name).await
    }

    async fn claim_reply_token(&self, channel_id: &str, token: &str, now_ms: i64) -> Result<bool> {
        self.watch(
            self.inner
                .claim_reply_token(channel_id, token, now_ms)
                .await,
        )
    }

    async fn insert_delivery(&self, delivery: &DeliveryRecord) -> Result<Option<DeliveryRecord>> {
        self.watch(self.inner.insert_delivery(delivery).await)
    }

    async fn update_delivery(
        &self,
        previous_update_ms: i64,
        delivery: &DeliveryRecord,
    ) -> Result<()> {
        self.watch(
            self.inner
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
            self.inner
                .update_delivery_lazily(previous_update_ms, delivery)
                .await,
        )
    }

    async fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>> {
        self.inner.get_delivery(id).await
    }

    async fn delivery_by_idempotency_key(
        &self,
        channel_id: &str,
        key: &str,
    ) -> Result<Option<DeliveryRecord>> {
        self.inner
            .delivery_by_idempotency_key(channel_id, key)
            .await
    }

    async fn unfinished_deliveries(&self) -> Result<Vec<DeliveryRecord>> {
        self.inner.unfinished_deliveries().await
    }

    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<DeliveryRecord>> {
        self.inner.list_deliveries(query).await
    }

    async fn lease_delivery(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool> {
        self.watch(self.inner.lease_delivery(id, owner, now_ms, until_ms).await)
    }

    async fn release_delivery(&self, id: &str, owner: &str) -> Result<()> {
        self.watch(self.inner.release_delivery(id, owner).await)
    }

    async fn ack(
        &self,
        name: &str,
        sequence: u64,
        now_ms: i64,
    ) -> Result<(ConsumerPosition, bool)> {
        self.watch(self.inner.ack(name, sequence, now_ms).await)
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
}
