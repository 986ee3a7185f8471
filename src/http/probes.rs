//! `/readyz` and `/metrics` (and `/healthz`, answered by the router):
//! what Kubernetes and Prometheus ask.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;

use super::{HttpState, text};
use crate::services::Services;

/// Ready once the store is open and reachable, while the data dir is above
/// its low-space watermark, and until the service stops
/// ([`super::Readiness::not_ready`]).
pub(super) fn readyz(state: &HttpState) -> Response<Full<Bytes>> {
    match state.readiness.not_ready(&state.ready) {
        None => text(StatusCode::OK, "ready\n"),
        Some(why) => text(StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

/// The exposition, with the gauges that are read at scrape time brought up
/// to date first.
pub(super) async fn metrics(services: &Services) -> Response<Full<Bytes>> {
    let metrics = &services.metrics;
    let bounds = services.store.bounds();
    metrics.subscribers.set(services.fanout.active() as i64);
    metrics.log_head.set(bounds.head as i64);
    metrics.log_oldest.set(bounds.oldest as i64);
    let (uploads, bytes) = services.uploads.kept();
    metrics.outbound_media_uploads.set(uploads as i64);
    metrics.outbound_media_bytes.set(bytes as i64);
    match services.store.consumers().await {
        Ok(consumers) => {
            for (consumer, position) in consumers {
                metrics
                    .consumer_lag
                    .get_or_create(&crate::metrics::ConsumerLabels { consumer })
                    .set(bounds.head.saturating_sub(position.acked) as i64);
            }
        }
        Err(err) => tracing::warn!(error = %err, "cannot read consumer positions for metrics"),
    }
    for (state, count) in services.outbox.pending_by_state() {
        metrics
            .outbox_pending
            .get_or_create(&crate::metrics::StateLabels {
                state: crate::outbox::state_label(state).into(),
            })
            .set(count as i64);
    }
    let mut response = Response::new(Full::new(Bytes::from(metrics.render())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    response
}
