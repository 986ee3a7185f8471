//! `POST /webhook/line/{channel}`: answered 200 only once its events are
//! durable (LINE treats any 2xx as delivered and will not send it again).
//! Everything before the signature check is refused without storing
//! anything.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use tracing::Instrument as _;

use super::{json, signature};
use crate::{
    channels::{ChannelError, validate},
    log_limit::Throttle,
    metrics::WebhookLabels,
    services::Services,
    store::ChannelRecord,
};

/// How long the body of a webhook may take to arrive: LINE sends it at once,
/// so only a trickling client hits this.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
const SIGNATURE_HEADER: &str = "x-line-signature";

/// One webhook request, traced and counted.
pub(super) async fn handle(
    request: Request<Incoming>,
    channel_id: &str,
    services: &Services,
    body_limit: u64,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    // Each webhook starts its own trace (LINE sends no trace context); its
    // events carry the span's `traceparent`.
    let span = tracing::info_span!(
        crate::telemetry::WEBHOOK_SPAN,
        otel.name = "POST /webhook/line/:channel",
        otel.kind = "server",
        channel = %channel_id,
        http.response.status_code = tracing::field::Empty,
    );
    let (response, channel) = webhook(request, channel_id, services, body_limit)
        .instrument(span.clone())
        .await;
    span.record("http.response.status_code", response.status().as_u16());
    services
        .metrics
        .webhook_requests
        .get_or_create(&WebhookLabels {
            channel,
            status: response.status().as_u16(),
        })
        .inc();
    services
        .metrics
        .webhook_duration
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Handles one webhook; returns the response and the channel label for
/// metrics (`unknown` unless the channel exists).
async fn webhook(
    request: Request<Incoming>,
    channel_id: &str,
    services: &Services,
    body_limit: u64,
) -> (Response<Full<Bytes>>, String) {
    let unknown = || "unknown".to_owned();
    if validate::channel_id(channel_id).is_err() {
        return (
            json(StatusCode::NOT_FOUND, r#"{"error":"unknown channel"}"#),
            unknown(),
        );
    }
    let channel = match services.channels.peek(channel_id).await {
        Ok(channel) => channel,
        Err(ChannelError::NotFound(_)) => {
            return (
                json(StatusCode::NOT_FOUND, r#"{"error":"unknown channel"}"#),
                unknown(),
            );
        }
        Err(err) => {
            static READ_FAILED: Throttle = Throttle::new(crate::log_limit::INTERVAL);
            if let Some(suppressed) = READ_FAILED.admit() {
                tracing::error!(channel = %channel_id, error = %err, suppressed, "cannot read the channel (suppressed: how many more since the last such line)");
            }
            if matches!(&err, ChannelError::Store(store) if store.is_backend_failure()) {
                return (store_unavailable(), unknown());
            }
            return (internal_error(), unknown());
        }
    };
    let label = channel.id.clone();

    // Refuse what is declared too large before reading a byte of it; an
    // undeclared (chunked) body is cut off as soon as it crosses the limit.
    if declared_length(request.headers()).is_some_and(|length| length > body_limit) {
        return (too_large(), label);
    }
    let Some(signature) = request.headers().get(SIGNATURE_HEADER).cloned() else {
        return (
            unauthorized(r#"{"error":"missing x-line-signature"}"#),
            label,
        );
    };
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let limit = usize::try_from(body_limit).unwrap_or(usize::MAX);
    let reading = Limited::new(request.into_body(), limit).collect();
    let Ok(read) = tokio::time::timeout(BODY_READ_TIMEOUT, reading).await else {
        return (
            json(
                StatusCode::REQUEST_TIMEOUT,
                r#"{"error":"body not received in time"}"#,
            ),
            label,
        );
    };
    let body = match read {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => return (too_large(), label),
        Err(err) => {
            tracing::debug!(channel = %label, error = %err, "reading a webhook body failed");
            return (
                json(StatusCode::BAD_REQUEST, r#"{"error":"incomplete body"}"#),
                label,
            );
        }
    };

    let received = services.clock.now_ms();
    let verifies = |channel: &ChannelRecord| {
        services
            .channels
            .webhook_secrets(channel, received)
            .map(|secrets| {
                secrets
                    .iter()
                    .any(|secret| signature::verify(secret, &body, signature.as_bytes()))
            })
    };
    let mut verified = verifies(&channel);
    if matches!(verified, Ok(false)) {
        // The channel as peeked may trail a secret rotated on another
        // replica by moments: read it again before refusing.
        if let Ok(current) = services.channels.get(channel_id).await
            && current != channel
        {
            verified = verifies(&current);
        }
    }
    match verified {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(channel = %label, "webhook signature does not verify");
            return (
                unauthorized(r#"{"error":"invalid x-line-signature"}"#),
                label,
            );
        }
        Err(err) => {
            tracing::error!(channel = %label, error = %err, "cannot open the channel secret");
            return (internal_error(), label);
        }
    }

    match services
        .inbound
        .ingest(&label, body, content_type.as_deref(), received)
        .await
    {
        Ok(ingested) => {
            services.fault.cleared();
            let metrics = &services.metrics;
            for (type_name, count) in &ingested.types {
                metrics.event_ingested(type_name, *count as u64);
            }
            metrics
                .duplicates_dropped
                .inc_by(ingested.duplicates as u64);
            if ingested.dead_letter.is_some() {
                metrics.dead_letters.inc();
            }
            tracing::debug!(
                channel = %label,
                stored = ingested.stored.len(),
                duplicates = ingested.duplicates,
                dead_letter = ?ingested.dead_letter,
                "webhook stored"
            );
            (json(StatusCode::OK, "{}"), label)
        }
        Err(err) => {
            // Not ready at once (a write failed), not live if it lasts.
            services.fault.failed(&err);
            // Not a 2xx: LINE may redeliver, and dedupe keeps that safe.
            // One line per request would flood the logs on a failing
            // disk: the first in full, then one per interval with a count.
            static STORE_FAILED: Throttle = Throttle::new(crate::log_limit::INTERVAL);
            if let Some(suppressed) = STORE_FAILED.admit() {
                tracing::error!(channel = %label, error = %err, suppressed, "storing webhook events failed (suppressed: how many more since the last such line)");
            }
            if err.is_backend_failure() {
                // A full or failing store heals (space freed, store
                // reopened): LINE may send again after a pause.
                (store_unavailable(), label)
            } else {
                (internal_error(), label)
            }
        }
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn unauthorized(body: &'static str) -> Response<Full<Bytes>> {
    json(StatusCode::UNAUTHORIZED, body)
}

fn too_large() -> Response<Full<Bytes>> {
    json(
        StatusCode::PAYLOAD_TOO_LARGE,
        r#"{"error":"body exceeds the configured webhook_body_limit"}"#,
    )
}

fn store_unavailable() -> Response<Full<Bytes>> {
    super::send_again_later(
        r#"{"error":"the store cannot take writes now; nothing was acknowledged, send again later"}"#,
    )
}

fn internal_error() -> Response<Full<Bytes>> {
    json(
        StatusCode::INTERNAL_SERVER_ERROR,
        r#"{"error":"internal error; nothing was acknowledged"}"#,
    )
}
