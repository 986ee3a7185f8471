//! The HTTP listener: LINE's webhook route, liveness (`/healthz`),
//! readiness (`/readyz`) and Prometheus metrics (`/metrics`).
//!
//! A webhook is answered 200 only once its events are durable: LINE treats
//! any 2xx as delivered and will not send it again. Everything before the
//! signature check is refused without storing anything.

pub mod events;
pub mod signature;

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::{
    channels::{ChannelError, validate},
    metrics::WebhookLabels,
    services::{Ready, Services},
    time::now_ms,
};

/// How long a client may take to send its request headers (slow-loris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the body of a webhook may take to arrive: LINE sends it at once,
/// so only a trickling client hits this.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
const WEBHOOK_PREFIX: &str = "/webhook/line/";
const SIGNATURE_HEADER: &str = "x-line-signature";

/// Readiness shared with the rest of the service.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub readiness: Readiness,
    pub ready: Ready,
    /// Largest webhook body accepted, in bytes.
    pub body_limit: u64,
}

/// Serves HTTP on `listener` until `shutdown` is cancelled, then waits for
/// open connections to finish their requests.
pub async fn serve(listener: TcpListener, state: HttpState, shutdown: CancellationToken) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let mut backoff = Duration::from_millis(10);

    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    backoff = Duration::from_millis(10);
                    stream
                }
                Err(err) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %err, "accepting an HTTP connection failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
        };
        // Webhooks are small and latency-bound: do not wait to fill packets.
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let service = service_fn(move |request| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(route(request, &state).await) }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

async fn route(request: Request<Incoming>, state: &HttpState) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let method = request.method();
    match path {
        "/healthz" => match *method {
            Method::GET | Method::HEAD => text(StatusCode::OK, "ok\n"),
            _ => method_not_allowed("GET, HEAD"),
        },
        "/readyz" => match *method {
            Method::GET | Method::HEAD
                if state.readiness.is_ready()
                    && state.ready.get().is_none_or(|s| s.store.healthy()) =>
            {
                text(StatusCode::OK, "ready\n")
            }
            Method::GET | Method::HEAD if state.readiness.is_ready() => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the store cannot be reached\n",
            ),
            Method::GET | Method::HEAD => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the store is opening or the service is stopping\n",
            ),
            _ => method_not_allowed("GET, HEAD"),
        },
        "/metrics" => match (*method == Method::GET, state.ready.get()) {
            (false, _) => method_not_allowed("GET"),
            (true, None) => text(StatusCode::SERVICE_UNAVAILABLE, "the store is opening\n"),
            (true, Some(services)) => metrics(services).await,
        },
        _ => match path.strip_prefix(WEBHOOK_PREFIX) {
            Some(channel_id) if !channel_id.is_empty() && !channel_id.contains('/') => {
                let channel_id = channel_id.to_owned();
                if *method != Method::POST {
                    return method_not_allowed("POST");
                }
                let Some(services) = state.ready.get() else {
                    return text(StatusCode::SERVICE_UNAVAILABLE, "the store is opening\n");
                };
                let started = Instant::now();
                // Each webhook starts its own trace (LINE sends no trace
                // context); its events carry the span's `traceparent`.
                let span = tracing::info_span!(
                    "webhook",
                    otel.name = "POST /webhook/line/:channel",
                    otel.kind = "server",
                    channel = %channel_id,
                    http.response.status_code = tracing::field::Empty,
                );
                let (response, channel) = webhook(request, &channel_id, services, state.body_limit)
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
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        },
    }
}

/// The exposition, with the gauges that are read at scrape time brought up
/// to date first.
async fn metrics(services: &Services) -> Response<Full<Bytes>> {
    let metrics = &services.metrics;
    let bounds = services.store.bounds();
    metrics.subscribers.set(services.fanout.active() as i64);
    metrics.log_head.set(bounds.head as i64);
    metrics.log_oldest.set(bounds.oldest as i64);
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
    let channel = match services.channels.get(channel_id).await {
        Ok(channel) => channel,
        Err(ChannelError::NotFound(_)) => {
            return (
                json(StatusCode::NOT_FOUND, r#"{"error":"unknown channel"}"#),
                unknown(),
            );
        }
        Err(err) => {
            tracing::error!(channel = %channel_id, error = %err, "cannot read the channel");
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

    let received = now_ms();
    let secrets = match services.channels.webhook_secrets(&channel, received) {
        Ok(secrets) => secrets,
        Err(err) => {
            tracing::error!(channel = %label, error = %err, "cannot open the channel secret");
            return (internal_error(), label);
        }
    };
    if !secrets
        .iter()
        .any(|secret| signature::verify(secret, &body, signature.as_bytes()))
    {
        tracing::debug!(channel = %label, "webhook signature does not verify");
        return (
            unauthorized(r#"{"error":"invalid x-line-signature"}"#),
            label,
        );
    }

    match services
        .inbound
        .ingest(&label, body, content_type.as_deref(), received)
        .await
    {
        Ok(ingested) => {
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
            // Not a 2xx: LINE may redeliver, and dedupe keeps that safe.
            tracing::error!(channel = %label, error = %err, "storing webhook events failed");
            (internal_error(), label)
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

fn internal_error() -> Response<Full<Bytes>> {
    json(
        StatusCode::INTERNAL_SERVER_ERROR,
        r#"{"error":"internal error; nothing was acknowledged"}"#,
    )
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body)
}

fn json(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    respond(status, "application/json", body)
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: &'static str,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    response
}
