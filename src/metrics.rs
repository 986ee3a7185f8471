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

use crate::{proto::v1 as pb, webhook::events::event_type_of};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// Our channel id, or `unknown` when the path names no channel.
    pub channel: String,
    pub status: u16,
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
    /// 1 while secrets are being sealed again under a new master key.
    pub master_key_rotation_pending: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("line_adapter");
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
        let master_key_rotation_pending = Gauge::default();
        registry.register(
            "master_key_rotation_pending",
            "1 while stored secrets are being sealed again under a new master key; 0 once the previous key is no longer needed",
            master_key_rotation_pending.clone(),
        );
        Self {
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

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}
