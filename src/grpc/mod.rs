//! The gRPC server: ChannelAdmin, Messaging and OfficialAccount behind the
//! API-key check, plus standard health and reflection (v1 and v1alpha, so
//! grpcurl 1.8 and newer both work without proto files).

pub mod admin;
pub mod attachments;
pub mod auth;
pub mod chat;
pub mod content;
pub mod deliveries;
pub mod lookup;
pub mod messaging;
pub mod narrowcast;
pub mod official_account;
mod page_token;

pub mod send;
pub mod status;
pub mod subscribe;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{
    Status,
    metadata::MetadataMap,
    service::interceptor::InterceptedService,
    transport::{Server, server::TcpIncoming},
};

use crate::{
    channels::Channels,
    drain::{Drain, InFlightLayer},
    proto::{
        self,
        v1::{
            channel_admin_server::ChannelAdminServer, messaging_server::MessagingServer,
            official_account_server::OfficialAccountServer,
        },
    },
    services::{Ready, Services},
    settings::Settings,
};

/// What every RPC handler shares.
#[derive(Clone)]
pub struct Core {
    pub settings: Arc<Settings>,
    /// Set once the store is open; until then RPCs answer UNAVAILABLE.
    ready: Ready,
    /// Port of the HTTP (webhook) listener, for webhook URLs derived from a
    /// request.
    pub http_port: u16,
}

impl Core {
    pub fn new(settings: Arc<Settings>, ready: Ready, http_port: u16) -> Self {
        Self {
            settings,
            ready,
            http_port,
        }
    }

    pub fn services(&self) -> Result<&Services, Status> {
        self.ready
            .get()
            .ok_or_else(|| Status::unavailable("the store is still opening; retry shortly"))
    }

    /// The services, for a call that writes what the caller sends (Send,
    /// Reply, Push, Multicast, Broadcast): refused with UNAVAILABLE while
    /// the data dir is below its low-space watermark or store writes fail,
    /// before anything is accepted into the outbox.
    pub fn writable(&self) -> Result<&Services, Status> {
        let services = self.services()?;
        if services.space.is_low() {
            services.space.refused_send();
            return Err(Status::unavailable(
                "the data dir is low on space (store_min_free_bytes): nothing was accepted; retry later or on another replica",
            ));
        }
        if services.fault.is_faulted() {
            return Err(Status::unavailable(
                "the store does not take writes now (it is full, or being reopened after a failed write): nothing was accepted; retry later or on another replica",
            ));
        }
        Ok(services)
    }

    pub fn channels(&self) -> Result<&Channels, Status> {
        self.services().map(|services| &services.channels)
    }

    /// `scheme://host:port` of the webhook listener as the caller reaches
    /// this host: `x-forwarded-proto`/`x-forwarded-host` when a proxy set
    /// them, else the host of the gRPC request's authority with the HTTP
    /// listener's port.
    pub fn base_url_from_request(
        &self,
        metadata: &MetadataMap,
        authority: Option<&RequestAuthority>,
    ) -> Option<String> {
        let header = |name: &str| {
            metadata
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let scheme = match header("x-forwarded-proto") {
            Some("https") => "https",
            _ => "http",
        };
        if let Some(host) = header("x-forwarded-host") {
            let authority: http::uri::Authority = host.parse().ok()?;
            return Some(format!("{scheme}://{authority}"));
        }
        let authority: http::uri::Authority = authority?.0.parse().ok()?;
        Some(format!(
            "{scheme}://{}:{}",
            authority.host(),
            self.http_port
        ))
    }
}

/// The `:authority` of an incoming gRPC request, copied into request
/// extensions by a layer because tonic does not expose the URI.
#[derive(Debug, Clone)]
pub struct RequestAuthority(pub String);

/// The gRPC method path (`/package.Service/Method`), for the scope check.
#[derive(Debug, Clone)]
pub struct RpcPath(pub String);

fn capture_authority(
    mut request: http::Request<tonic::body::Body>,
) -> http::Request<tonic::body::Body> {
    let path = RpcPath(request.uri().path().to_owned());
    request.extensions_mut().insert(path);
    let authority = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            request
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        });
    if let Some(authority) = authority {
        request.extensions_mut().insert(RequestAuthority(authority));
    }
    request
}

/// The server span of one call: a child of the caller's `traceparent`
/// when it sent one. Health checks and reflection get no span (probes every
/// few seconds would drown the traces).
fn request_span(request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    if !path.starts_with("/weiyu.line.v1.") {
        return tracing::Span::none();
    }
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""));
    let span = tracing::info_span!(
        "grpc",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
    );
    crate::telemetry::continue_trace(&span, request.headers());
    span
}

/// Reflection over our contract, health, and google.rpc error details (so
/// grpcurl can print the BadRequest that names a field). Both reflection
/// protocols are registered in each, so `grpcurl list` shows both whichever
/// one it speaks.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        // Registered explicitly above, for both versions.
        .include_reflection_service(false)
}

/// Largest request or response message: LINE's own bodies stop at 2 MB,
/// content streams in 64 KiB chunks.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Most calls in flight on one connection (Subscribe streams included).
const MAX_CONCURRENT_STREAMS: u32 = 1024;
/// Longest a unary call may take.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
/// gRPC's own default: a busy peer gets time to answer a ping.
const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Serves gRPC on `listener` until `shutdown` is cancelled, then lets
/// in-flight calls finish.
pub async fn serve(
    core: Core,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    listener: TcpListener,
    tls: Option<tonic::transport::ServerTlsConfig>,
    drain: Drain,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let keys = auth::ApiKeys::new(&core.settings.api_keys);
    // Once a stop drains, new calls are refused (health and reflection
    // still answer, so probes see NOT_SERVING rather than a closed port).
    let admitted = {
        let drain = drain.clone();
        move |keys: &auth::ApiKeys, request| {
            if drain.is_draining() {
                return Err(Status::unavailable(
                    "the server is stopping: retry on another replica or once it restarted",
                ));
            }
            keys.intercept(request)
        }
    };
    let admin_admitted = admitted.clone();
    let account_admitted = admitted.clone();
    let reflection_v1 = reflection()
        .build_v1()
        .expect("the embedded descriptor sets are valid (built by build.rs and tonic)");
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .expect("the embedded descriptor sets are valid (built by build.rs and tonic)");

    let admin_keys = keys.clone();
    let admin = ChannelAdminServer::new(admin::AdminService::new(core.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let admin = InterceptedService::new(admin, move |req| admin_admitted(&admin_keys, req));
    let messaging = MessagingServer::new(messaging::MessagingService::new(core.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let account_keys = keys.clone();
    let account =
        OfficialAccountServer::new(official_account::OfficialAccountService::new(core.clone()))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let account = InterceptedService::new(account, move |req| account_admitted(&account_keys, req));
    let messaging = InterceptedService::new(messaging, move |req| admitted(&keys, req));

    let mut server = Server::builder();
    if let Some(tls) = tls {
        // A bad certificate or key fails here, before anything is served.
        server = server.tls_config(tls)?;
    }
    server
        .trace_fn(request_span)
        // A unary call never needs longer (sends wait at most 10 s for
        // LINE); streams are not cut, their handler returns at once.
        .timeout(REQUEST_TIMEOUT)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        // Dead peers (a pod gone without a FIN) are noticed and their
        // streams released.
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .layer(tower::util::MapRequestLayer::new(capture_authority))
        .layer(InFlightLayer(drain))
        // Health and reflection stay open: probes and `grpcurl list` need
        // no key.
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(admin)
        .add_service(messaging)
        .add_service(account)
        .serve_with_incoming_shutdown(
            // Streams carry small messages that must leave at once, not wait
            // for Nagle to fill a packet.
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown.cancelled_owned(),
        )
        .await
}
