//! HTTP transport to LINE, and nothing else: configurable bases (tests
//! point them at a stand-in), bearer tokens that never reach logs,
//! `X-Line-Retry-Key`, the response headers the delivery guarantees depend
//! on, and transport failures classified by cause. `reqwest` never leaves
//! this file; content comes back as a [`ByteStream`] of our own.

use std::{pin::Pin, time::Duration};

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use http::{Method, StatusCode};
use tracing::Instrument as _;
use url::Url;

use super::error::{NetworkError, NetworkKind};
use crate::{metrics::LineMetrics, secret::Secret};

/// Default per-request timeout (`line_request_timeout_ms`): LINE answers in
/// well under a second; longer means something is wrong, and a send must be
/// retried (push) or reported (reply).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Error bodies of content requests are read up to this much.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// LINE's answer, whatever its status.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    /// `x-line-request-id`.
    pub request_id: Option<String>,
    /// `x-line-accepted-request-id` (409 on a retry key already accepted).
    pub accepted_request_id: Option<String>,
    /// `Retry-After`, in seconds, when sent.
    pub retry_after: Option<Duration>,
    pub body: Bytes,
}

/// Which of LINE's hosts a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// `api.line.me`: everything but content.
    Api,
    /// `api-data.line.me`: message content, rich menu images, uploads.
    Data,
}

/// What a request carries.
#[derive(Debug, Clone)]
pub enum Body {
    Empty,
    Json(serde_json::Value),
    /// Raw bytes with their content type (images).
    Bytes {
        content_type: String,
        bytes: Bytes,
    },
}

/// One request to LINE, described; the client adds the token.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub host: Host,
    /// Path and query, e.g. `/v2/bot/profile/U…`.
    pub path: String,
    pub body: Body,
    /// `X-Line-Retry-Key`, for sends that have one.
    pub retry_key: Option<String>,
}

impl Request {
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path, Body::Empty)
    }

    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path, Body::Empty)
    }

    pub fn post(path: impl Into<String>, body: serde_json::Value) -> Self {
        Self::new(Method::POST, path, Body::Json(body))
    }

    pub fn put(path: impl Into<String>, body: serde_json::Value) -> Self {
        Self::new(Method::PUT, path, Body::Json(body))
    }

    pub fn new(method: Method, path: impl Into<String>, body: Body) -> Self {
        Self {
            method,
            host: Host::Api,
            path: path.into(),
            body,
            retry_key: None,
        }
    }

    /// The same request to the data host.
    pub fn on_data_host(mut self) -> Self {
        self.host = Host::Data;
        self
    }

    pub fn with_retry_key(mut self, key: Option<&str>) -> Self {
        self.retry_key = key.map(str::to_owned);
        self
    }
}

/// A body read as it arrives.
pub struct ByteStream(Pin<Box<dyn Stream<Item = Result<Bytes, NetworkError>> + Send + Sync>>);

impl ByteStream {
    /// The next piece; `None` at the end.
    pub async fn next(&mut self) -> Option<Result<Bytes, NetworkError>> {
        self.0.next().await
    }
}

impl std::fmt::Debug for ByteStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ByteStream")
    }
}

/// A streamed answer (content): its head, then the body as it arrives.
#[derive(Debug)]
pub struct Content {
    pub status: StatusCode,
    pub request_id: Option<String>,
    /// `Retry-After`, in seconds, when sent (an error answer's).
    pub retry_after: Option<Duration>,
    pub content_type: Option<String>,
    pub content_length: Option<u64>,
    pub body: ByteStream,
}

impl Content {
    /// The whole (error) answer, read up to a bound, as a [`Response`].
    pub async fn into_response(mut self) -> Response {
        let mut body = Vec::new();
        while body.len() < MAX_ERROR_BODY {
            match self.body.next().await {
                Some(Ok(piece)) => body.extend_from_slice(&piece),
                _ => break,
            }
        }
        body.truncate(MAX_ERROR_BODY);
        Response {
            status: self.status,
            request_id: self.request_id,
            accepted_request_id: None,
            retry_after: self.retry_after,
            body: Bytes::from(body),
        }
    }
}

/// The client; cheap to clone.
#[derive(Clone, Debug)]
pub struct LineClient {
    http: reqwest::Client,
    /// Without a whole-request timeout, for media downloads.
    streaming: reqwest::Client,
    api_base: String,
    data_base: String,
    metrics: Option<LineMetrics>,
    timeout: Duration,
    /// `host:port` of the configured proxy, to name it in errors.
    proxy: Option<String>,
}

impl LineClient {
    /// A client for the given bases. Without `proxy` the standard
    /// `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` variables apply (reqwest reads
    /// them); with it, every call to LINE goes through that proxy (still
    /// bypassed for hosts in `NO_PROXY`).
    pub fn new(api_base: &Url, data_base: &Url) -> Self {
        Self::with_proxy(api_base, data_base, None, REQUEST_TIMEOUT).expect("no proxy to refuse")
    }

    /// As [`LineClient::new`], through `proxy` (an http(s) URL, possibly
    /// with credentials), giving up on a request after `timeout`. The error
    /// never quotes the URL.
    pub fn with_proxy(
        api_base: &Url,
        data_base: &Url,
        proxy: Option<&Secret>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let proxy_host = proxy.and_then(|url| {
            let url = Url::parse(url.expose()).ok()?;
            Some(format!(
                "{}:{}",
                url.host_str()?,
                url.port_or_known_default()?
            ))
        });
        let proxy = proxy
            .map(|url| {
                reqwest::Proxy::all(url.expose())
                    .map(|p| p.no_proxy(reqwest::NoProxy::from_env()))
                    .map_err(|_| "the LINE proxy URL is not usable".to_owned())
            })
            .transpose()?;
        let builder = |proxy: Option<reqwest::Proxy>| {
            let builder = reqwest::Client::builder()
                .connect_timeout(timeout.min(Duration::from_secs(5)))
                .user_agent(concat!("line-adapter/", env!("CARGO_PKG_VERSION")));
            match proxy {
                Some(proxy) => builder.proxy(proxy),
                None => builder,
            }
        };
        let http = builder(proxy.clone())
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the LINE client: {}", e.without_url()))?;
        let streaming = builder(proxy)
            .read_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot build the LINE client: {}", e.without_url()))?;
        Ok(Self {
            http,
            streaming,
            api_base: api_base.as_str().trim_end_matches('/').to_owned(),
            data_base: data_base.as_str().trim_end_matches('/').to_owned(),
            metrics: None,
            timeout,
            proxy: proxy_host,
        })
    }

    /// How long a request may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Counts every call and its latency in `metrics`.
    pub fn with_metrics(mut self, metrics: LineMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn url(&self, host: Host, path: &str) -> String {
        let base = match host {
            Host::Api => &self.api_base,
            Host::Data => &self.data_base,
        };
        format!("{base}{path}")
    }

    fn builder(
        &self,
        client: &reqwest::Client,
        token: &Secret,
        request: &Request,
    ) -> reqwest::RequestBuilder {
        let mut builder = client
            .request(
                request.method.clone(),
                self.url(request.host, &request.path),
            )
            .bearer_auth(token.expose());
        builder = match &request.body {
            Body::Empty => builder,
            Body::Json(value) => builder.json(value),
            Body::Bytes {
                content_type,
                bytes,
            } => builder
                .header(http::header::CONTENT_TYPE, content_type)
                .body(bytes.clone()),
        };
        if let Some(key) = &request.retry_key {
            builder = builder.header("X-Line-Retry-Key", key);
        }
        builder
    }

    /// Sends `request` with `token` and reads the whole answer.
    pub async fn send(&self, token: &Secret, request: &Request) -> Result<Response, NetworkError> {
        self.measured(&request.path, self.builder(&self.http, token, request))
            .await
    }

    /// Sends `request` with `token` and returns the answer's head with its
    /// body unread, so that large media can be streamed, not buffered. No
    /// overall timeout: a 200 MB video takes its time; the connection and
    /// the wait for headers are still bounded.
    pub async fn open(&self, token: &Secret, request: &Request) -> Result<Content, NetworkError> {
        let sent = self.builder(&self.streaming, token, request).send();
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(self.timeout, sent)
            .await
            .map_err(|_| self.timed_out())
            .and_then(|sent| sent.map_err(|err| self.network(err)));
        if let Some(metrics) = &self.metrics {
            let status = result.as_ref().ok().map(|r| r.status().as_u16());
            metrics.observe(&request.path, status, started.elapsed().as_secs_f64());
        }
        let response = result?;
        let header = |name: http::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let proxy = self.proxy.clone();
        Ok(Content {
            status: response.status(),
            request_id: header(http::HeaderName::from_static("x-line-request-id")),
            retry_after: header(http::header::RETRY_AFTER)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
            content_type: header(http::header::CONTENT_TYPE),
            content_length: response.content_length(),
            body: ByteStream(Box::pin(response.bytes_stream().map(move |piece| {
                piece.map_err(|err| classify(err, proxy.clone(), None))
            }))),
        })
    }

    /// POSTs a form to a token endpoint (`/v2/oauth/*`, `/oauth2/*`) on the
    /// API host. These take no bearer token: the form carries the
    /// credentials.
    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<Response, NetworkError> {
        self.measured(path, self.http.post(self.url(Host::Api, path)).form(form))
            .await
    }

    /// GETs a token endpoint with query parameters, without a bearer token.
    pub async fn get_query(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Response, NetworkError> {
        self.measured(path, self.http.get(self.url(Host::Api, path)).query(query))
            .await
    }

    /// GETs `base` itself, without a token: any HTTP answer shows the host
    /// is reached (through the proxy, when one is configured).
    pub async fn probe(&self, base: &Url) -> Result<u16, NetworkError> {
        let response = self
            .http
            .get(base.as_str())
            .send()
            .await
            .map_err(|err| self.network(err))?;
        Ok(response.status().as_u16())
    }

    /// Sends `request` for `path`, measured and traced.
    async fn measured(
        &self,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Response, NetworkError> {
        let endpoint = super::api::endpoint_label(path);
        // A child of whatever is current (a gRPC call, a delivery); ids
        // in the path are masked, and no header or body is recorded.
        let span = tracing::info_span!(
            "line",
            otel.name = %format!("LINE {endpoint}"),
            otel.kind = "client",
            url.path = %endpoint,
            http.response.status_code = tracing::field::Empty,
        );
        let mut headers = http::HeaderMap::new();
        crate::telemetry::propagate(&span, &mut headers);
        let started = std::time::Instant::now();
        let result = self
            .read(request.headers(headers))
            .instrument(span.clone())
            .await;
        if let Ok(response) = &result {
            span.record("http.response.status_code", response.status.as_u16());
        }
        if let Some(metrics) = &self.metrics {
            let status = result.as_ref().ok().map(|r| r.status.as_u16());
            metrics.observe(path, status, started.elapsed().as_secs_f64());
        }
        result
    }

    async fn read(&self, request: reqwest::RequestBuilder) -> Result<Response, NetworkError> {
        let response = request.send().await.map_err(|err| self.network(err))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let status = response.status();
        let request_id = header("x-line-request-id");
        let accepted_request_id = header("x-line-accepted-request-id");
        let retry_after = header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.map_err(|err| self.network(err))?;
        Ok(Response {
            status,
            request_id,
            accepted_request_id,
            retry_after,
            body,
        })
    }

    fn network(&self, err: reqwest::Error) -> NetworkError {
        classify(err, self.proxy.clone(), Some(self.timeout))
    }

    fn timed_out(&self) -> NetworkError {
        NetworkError {
            proxy: self.proxy.clone(),
            waited: Some(self.timeout),
            ..NetworkError::new(NetworkKind::Timeout, "no answer in time")
        }
    }
}

/// Classifies a reqwest failure by walking its causes; the message never
/// carries the URL (with its query) or any header (the token is a header).
fn classify(err: reqwest::Error, proxy: Option<String>, timeout: Option<Duration>) -> NetworkError {
    let err = err.without_url();
    let mut causes = Vec::new();
    let mut refused = false;
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            refused = true;
        }
        causes.push(cause.to_string());
        source = cause.source();
    }
    let all = causes.join(": ").to_ascii_lowercase();
    let detail = causes.last().cloned().unwrap_or_else(|| err.to_string());
    let kind = if err.is_connect() {
        if all.contains("dns error") || all.contains("failed to lookup address") {
            NetworkKind::NameResolution
        } else if refused || all.contains("connection refused") {
            NetworkKind::Refused
        } else if err.is_timeout() || all.contains("timed out") {
            NetworkKind::ConnectTimeout
        } else if all.contains("certificate") || all.contains("tls") || all.contains("handshake") {
            NetworkKind::Tls
        } else {
            NetworkKind::Connect
        }
    } else if err.is_timeout() {
        NetworkKind::Timeout
    } else {
        NetworkKind::Broken
    };
    NetworkError {
        kind,
        detail,
        proxy,
        waited: (kind == NetworkKind::Timeout).then_some(timeout).flatten(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failures_to_connect_are_named_by_cause() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let base = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let client = LineClient::new(&base, &base);
        let token = Secret::new("t".to_owned());
        let refused = client
            .send(&token, &Request::get("/anything"))
            .await
            .unwrap_err();
        assert_eq!(refused.kind, NetworkKind::Refused, "{refused:?}");
        assert!(!refused.may_have_reached_line());

        // `.invalid` never resolves (RFC 6761).
        let nowhere = Url::parse("http://line-adapter-test.invalid").unwrap();
        let client = LineClient::new(&nowhere, &nowhere);
        let unresolved = client
            .send(&token, &Request::get("/anything"))
            .await
            .unwrap_err();
        assert_eq!(
            unresolved.kind,
            NetworkKind::NameResolution,
            "{unresolved:?}"
        );
        assert!(unresolved.to_string().contains("does not resolve"));
    }
}
