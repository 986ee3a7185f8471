//! Prometheus metrics, served as text at `/metrics` on the HTTP listener.
//! Names and units follow Prometheus conventions (`_total`, `_seconds`).

use std::sync::Arc;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::{line::wire::events::event_type_of, proto::v1 as pb};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// Our channel id, or `unknown` when the path names no channel.
    pub channel: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabels {
    pub consumer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    pub channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LineCallLabels {
    /// The path with ids replaced by `:id`, e.g. `/v2/bot/profile/:id`.
    pub endpoint: String,
    /// HTTP status, or `error` when no response came.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: String,
}

/// The LINE client's share of the metrics: calls and their latency, and
/// their pacing (`line::pace`).
#[derive(Clone, Debug)]
pub struct LineMetrics {
    pub calls: Family<LineCallLabels, Counter>,
    pub duration: Family<EndpointLabels, Histogram>,
    /// Time a request waited for its permit.
    pub permit_wait: Family<EndpointLabels, Histogram>,
    /// Calls that made no request: their permit would have come later
    /// than they may wait.
    pub permits_refused: Family<EndpointLabels, Counter>,
    /// LINE's rate-limit 429s, each of which held and slowed a bucket.
    pub slowdowns: Family<EndpointLabels, Counter>,
}

impl LineMetrics {
    /// Counts one call to `path` (query ignored) that ended with `status`
    /// (`None`: no response) after `seconds`.
    pub fn observe(&self, path: &str, status: Option<u16>, seconds: f64) {
        let endpoint = crate::line::api::endpoint_label(path);
        self.calls
            .get_or_create(&LineCallLabels {
                endpoint: endpoint.clone(),
                status: status.map_or_else(|| "error".to_owned(), |s| s.to_string()),
            })
            .inc();
        self.duration
            .get_or_create(&EndpointLabels { endpoint })
            .observe(seconds);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    /// LINE's event type; types this version does not know are `unknown`,
    /// so a sender cannot create unbounded label values.
    pub r#type: String,
}

/// Every metric of the service. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub webhook_requests: Family<WebhookLabels, Counter>,
    pub webhook_duration: Histogram,
    pub events_ingested: Family<TypeLabels, Counter>,
    pub duplicates_dropped: Counter,
    pub dead_letters: Counter,
    pub subscribers: Gauge,
    pub log_head: Gauge,
    pub log_oldest: Gauge,
    /// Agents' uploads kept now, and their bytes (previews included).
    pub outbound_media_uploads: Gauge,
    pub outbound_media_bytes: Gauge,
    /// 1 while secrets are being sealed again under a new master key.
    pub master_key_rotation_pending: Gauge,
    /// Events a durable consumer has not acknowledged yet.
    pub consumer_lag: Family<ConsumerLabels, Gauge>,
    /// Sends in the outbox not final yet, by state (set at each scrape).
    pub outbox_pending: Family<StateLabels, Gauge>,
    /// Sends that reached a final state, by state.
    pub outbox_finished: Family<StateLabels, Counter>,
    /// Attempts after the first one.
    pub outbox_retries: Counter,
    pub line: LineMetrics,
    /// When each channel's issued access token expires, Unix seconds.
    pub token_expiry: Family<ChannelLabels, Gauge>,
    /// Messages left of the monthly quota, as of the last GetQuota.
    pub quota_remaining: Family<ChannelLabels, Gauge>,
    /// 1 while the data dir's free space is below the watermark.
    pub store_low_space: Gauge,
    /// Free bytes of the data dir's filesystem, as last read.
    pub store_free_bytes: Gauge,
    /// Webhooks and sends refused for low space, by `what`.
    pub store_low_space_refused: Family<WhatLabels, Counter>,
    /// 1 while store writes fail (not ready until one succeeds).
    pub store_writes_failing: Gauge,
    /// 1 while they fail for lack of room: a full disk, JetStream's limits.
    pub store_full: Gauge,
    /// Times the store was reopened in place after failed writes.
    pub store_reopens: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WhatLabels {
    /// `webhook` or `send`.
    pub what: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Metrics {
    /// The metrics; `commits` are the store's own histograms, if it keeps
    /// them.
    pub fn new(commits: Option<crate::store::CommitMetrics>) -> Self {
        let mut registry = Registry::with_prefix("line_adapter");
        if let Some(commits) = commits {
            registry.register(
                "event_log_commit_records",
                "Records stored per group commit of the event log",
                commits.records,
            );
            registry.register_with_unit(
                "event_log_commit_duration",
                "Time to make a group commit durable (sled flush plus fdatasync)",
                prometheus_client::registry::Unit::Seconds,
                commits.seconds,
            );
        }
        let consumer_lag = Family::<ConsumerLabels, Gauge>::default();
        registry.register(
            "consumer_lag_events",
            "Events after a durable consumer's acknowledged position",
            consumer_lag.clone(),
        );
        let outbox_pending = Family::<StateLabels, Gauge>::default();
        registry.register(
            "outbox_pending_deliveries",
            "Sends not final yet, by state (queued, sending)",
            outbox_pending.clone(),
        );
        let outbox_finished = Family::<StateLabels, Counter>::default();
        registry.register(
            "outbox_finished_deliveries",
            "Sends that reached a final state (delivered, failed, unknown)",
            outbox_finished.clone(),
        );
        let outbox_retries = Counter::default();
        registry.register(
            "outbox_retries",
            "Attempts of a send after its first one",
            outbox_retries.clone(),
        );
        let line = LineMetrics {
            calls: Family::default(),
            // 1 ms … ~16 s: the client gives up after 10 s.
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 15))
            }),
            // 0.1 ms … ~26 s: a call waits at most line_request_timeout_ms
            // (10 s by default, 60 s at most; longer waits are refused).
            permit_wait: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 19))
            }),
            permits_refused: Family::default(),
            slowdowns: Family::default(),
        };
        registry.register(
            "line_api_requests",
            "Calls to LINE's API by endpoint and HTTP status (`error`: no response)",
            line.calls.clone(),
        );
        registry.register_with_unit(
            "line_api_request_duration",
            "Time until LINE's response headers, by endpoint",
            prometheus_client::registry::Unit::Seconds,
            line.duration.clone(),
        );
        registry.register_with_unit(
            "line_api_permit_wait",
            "Time a request to LINE waited for its permit (line_rate_limits), by endpoint",
            prometheus_client::registry::Unit::Seconds,
            line.permit_wait.clone(),
        );
        registry.register(
            "line_api_permits_refused",
            "Calls to LINE not made because their permit would have come later than line_request_timeout_ms (retried later), by endpoint",
            line.permits_refused.clone(),
        );
        registry.register(
            "line_api_rate_limit_slowdowns",
            "LINE's rate-limit 429s, each holding back (Retry-After) and slowing that endpoint of the channel, by endpoint",
            line.slowdowns.clone(),
        );
        let token_expiry = Family::<ChannelLabels, Gauge>::default();
        registry.register(
            "token_expiry_timestamp_seconds",
            "When each channel's issued access token expires (Unix time)",
            token_expiry.clone(),
        );
        let quota_remaining = Family::<ChannelLabels, Gauge>::default();
        registry.register(
            "quota_remaining_messages",
            "Messages left of a channel's monthly quota, as of its last GetQuota",
            quota_remaining.clone(),
        );
        let webhook_requests = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhook_requests",
            "Webhook requests answered, by channel and HTTP status",
            webhook_requests.clone(),
        );
        // 0.1 ms … ~3 s: LINE gives up after 2 s.
        let webhook_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "webhook_duration_seconds",
            "Time from request to answer of webhook requests, including the durable write",
            webhook_duration.clone(),
        );
        let events_ingested = Family::<TypeLabels, Counter>::default();
        registry.register(
            "events_ingested",
            "Webhook events stored in the event log, by LINE event type",
            events_ingested.clone(),
        );
        let duplicates_dropped = Counter::default();
        registry.register(
            "duplicates_dropped",
            "Webhook events not stored because their webhookEventId was stored before",
            duplicates_dropped.clone(),
        );
        let dead_letters = Counter::default();
        registry.register(
            "dead_letters",
            "Signed webhook bodies that could not be parsed and were kept whole",
            dead_letters.clone(),
        );
        let subscribers = Gauge::default();
        registry.register(
            "subscribers",
            "Subscribe streams open now",
            subscribers.clone(),
        );
        let log_head = Gauge::default();
        registry.register(
            "event_log_head_sequence",
            "Highest sequence number assigned in the event log",
            log_head.clone(),
        );
        let log_oldest = Gauge::default();
        registry.register(
            "event_log_oldest_sequence",
            "Lowest sequence number still retained in the event log",
            log_oldest.clone(),
        );
        let outbound_media_uploads = Gauge::default();
        registry.register(
            "outbound_media_uploads",
            "Agents' uploads (UploadMedia) kept and served now",
            outbound_media_uploads.clone(),
        );
        let outbound_media_bytes = Gauge::default();
        registry.register(
            "outbound_media_bytes",
            "Bytes of agents' uploads kept now, previews and conversions included",
            outbound_media_bytes.clone(),
        );
        let master_key_rotation_pending = Gauge::default();
        registry.register(
            "master_key_rotation_pending",
            "1 while stored secrets are being sealed again under a new master key; 0 once the previous key is no longer needed",
            master_key_rotation_pending.clone(),
        );
        let store_low_space = Gauge::default();
        registry.register(
            "store_low_space",
            "1 while the data dir's free space is below the watermark (store_min_free_bytes, store_min_free_percent): webhooks get 503, sends UNAVAILABLE, not ready",
            store_low_space.clone(),
        );
        let store_free_bytes = Gauge::default();
        registry.register(
            "store_free_bytes",
            "Free bytes of the filesystem holding the data dir, as last read",
            store_free_bytes.clone(),
        );
        let store_low_space_refused = Family::<WhatLabels, Counter>::default();
        registry.register(
            "store_low_space_refused",
            "Webhooks and sends refused because the data dir's free space was below the watermark",
            store_low_space_refused.clone(),
        );
        let store_writes_failing = Gauge::default();
        registry.register(
            "store_writes_failing",
            "1 while store writes fail (a failing or full disk, JetStream out of resources): webhooks get 503, sends UNAVAILABLE, not ready until a write succeeds",
            store_writes_failing.clone(),
        );
        let store_full = Gauge::default();
        registry.register(
            "store_full",
            "1 while store writes fail for lack of room (the disk is full, or JetStream's storage limits are reached); resumes by itself once there is room",
            store_full.clone(),
        );
        let store_reopens = Counter::default();
        registry.register(
            "store_reopens",
            "Times the store was closed and opened again in this process after failed writes",
            store_reopens.clone(),
        );
        Self {
            store_low_space,
            store_free_bytes,
            store_low_space_refused,
            store_writes_failing,
            store_full,
            store_reopens,
            consumer_lag,
            outbox_pending,
            outbox_finished,
            outbox_retries,
            line,
            token_expiry,
            quota_remaining,
            master_key_rotation_pending,
            registry: Arc::new(registry),
            webhook_requests,
            webhook_duration,
            events_ingested,
            duplicates_dropped,
            dead_letters,
            subscribers,
            log_head,
            log_oldest,
            outbound_media_uploads,
            outbound_media_bytes,
        }
    }

    pub fn event_ingested(&self, type_name: &str, count: u64) {
        let label = match event_type_of(type_name) {
            pb::EventType::Unknown => "unknown".to_owned(),
            _ => type_name.to_owned(),
        };
        self.events_ingested
            .get_or_create(&TypeLabels { r#type: label })
            .inc_by(count);
    }

    /// Forgets a deleted channel's series.
    pub fn forget_channel(&self, channel: &str) {
        let labels = ChannelLabels {
            channel: channel.to_owned(),
        };
        self.token_expiry.remove(&labels);
        self.quota_remaining.remove(&labels);
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}
