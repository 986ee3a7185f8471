//! The HTTP listener and its router: LINE's webhook route ([`webhook`]),
//! agents' uploads served to LINE ([`media`]), liveness, readiness and
//! metrics ([`probes`]). A webhook walks forward only: listener →
//! [`signature`] check → `inbound` → store.

mod media;
mod probes;
pub mod signature;
mod webhook;

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{drain::Drain, services::Ready};

/// How long a client may take to send its request headers (slow-loris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const WEBHOOK_PREFIX: &str = "/webhook/line/";

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

    /// Why the service is not alive (`/healthz`'s answer, and the gRPC
    /// server's overall health status, which the chart's startup and
    /// liveness probes ask), or `None`: store writes have been failing for
    /// [`crate::fault::LIVENESS_AFTER`], which only a restart repairs. Low
    /// space is not a reason: a restart frees nothing.
    pub fn not_alive(&self, ready: &Ready) -> Option<&'static str> {
        let services = ready.get()?;
        services
            .fault
            .needs_restart()
            .then_some("not alive: store writes have been failing for 10 s or more, and reopening the store did not help; restart\n")
    }

    /// Why the service is not ready now (`/readyz`'s answer), or `None`
    /// when it is. The one place readiness is decided, for `/readyz` and
    /// gRPC health alike: started and not stopping, the store reachable,
    /// and the data dir above its low-space watermark.
    pub fn not_ready(&self, ready: &Ready) -> Option<&'static str> {
        if !self.is_ready() {
            return Some("not ready: the store is opening or the service is stopping\n");
        }
        let services = ready.get()?;
        if !services.store.healthy() {
            return Some("not ready: the store cannot be reached\n");
        }
        if services.fault.is_full() {
            return Some(
                "not ready: the store has no room (the disk is full, or JetStream's limits are reached); it resumes by itself once there is room\n",
            );
        }
        if services.fault.is_faulted() {
            return Some(
                "not ready: a store write failed; reopening and probing the store until it takes writes again\n",
            );
        }
        if services.space.is_low() {
            return Some(
                "not ready: the data dir's free space is below the watermark (store_min_free_bytes, store_min_free_percent)\n",
            );
        }
        None
    }
}

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub readiness: Readiness,
    pub ready: Ready,
    /// Largest webhook body accepted, in bytes.
    pub body_limit: u64,
    /// A stop's drain: webhooks refused with 503 once it starts, and the
    /// ones in progress counted until they are answered.
    pub drain: Drain,
}

/// How long LINE (or any sender) is asked to wait before redelivering a
/// webhook refused while this process stops or is low on space.
const RETRY_AFTER_SECS: &str = "5";

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
            async move { Ok::<_, Infallible>(dispatch(request, &state).await) }
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

/// Media responses stream from disk; every other route answers one buffer.
async fn dispatch(request: Request<Incoming>, state: &HttpState) -> Response<media::Body> {
    if let Some(token) = request.uri().path().strip_prefix(media::PREFIX) {
        let Some(services) = state.ready.get() else {
            return text(StatusCode::SERVICE_UNAVAILABLE, "the store is opening\n")
                .map(media::full);
        };
        return media::serve(
            request.method(),
            request.headers(),
            token,
            &services.uploads,
            services.clock.now_ms(),
        )
        .await;
    }
    route(request, state).await.map(media::full)
}

async fn route(request: Request<Incoming>, state: &HttpState) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let method = request.method();
    match path {
        "/healthz" => match *method {
            // A store failing every write does not come back by itself: a
            // restart reopens it (sled's recovery decides what is on disk).
            Method::GET | Method::HEAD => match state.readiness.not_alive(&state.ready) {
                Some(why) => text(StatusCode::SERVICE_UNAVAILABLE, why),
                None => text(StatusCode::OK, "ok\n"),
            },
            _ => method_not_allowed("GET, HEAD"),
        },
        "/readyz" => match *method {
            Method::GET | Method::HEAD => probes::readyz(state),
            _ => method_not_allowed("GET, HEAD"),
        },
        "/metrics" => match (*method == Method::GET, state.ready.get()) {
            (false, _) => method_not_allowed("GET"),
            (true, None) => text(StatusCode::SERVICE_UNAVAILABLE, "the store is opening\n"),
            (true, Some(services)) => probes::metrics(services).await,
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
                // Counted before the check, so that a drain starting now
                // either refuses this webhook or waits for it.
                let _in_flight = state.drain.enter();
                if state.drain.is_draining() {
                    // Not stored, so not 2xx: LINE redelivers (to another
                    // replica, or to this one restarted).
                    return send_again_later(r#"{"error":"stopping; send again later"}"#);
                }
                if services.space.is_low() {
                    // Nothing stored, so not 2xx: LINE redelivers once
                    // space is freed (or to another replica).
                    services.space.refused_webhook();
                    return send_again_later(
                        r#"{"error":"the data dir is low on space; send again later"}"#,
                    );
                }
                webhook::handle(request, &channel_id, services, state.body_limit).await
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        },
    }
}

pub(super) fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body)
}

pub(super) fn json(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    respond(status, "application/json", body)
}

/// A webhook refused for now (nothing stored, so LINE redelivers): 503
/// with [`RETRY_AFTER_SECS`].
pub(super) fn send_again_later(body: &'static str) -> Response<Full<Bytes>> {
    let mut response = json(StatusCode::SERVICE_UNAVAILABLE, body);
    response.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    response
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

pub(super) fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    response
}
