//! The HTTP client for LINE's API: configurable bases (tests point them at
//! a stand-in), bearer tokens that never reach logs, `X-Line-Retry-Key`,
//! and the response headers the delivery guarantees depend on.

use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use tracing::Instrument as _;
use url::Url;

use crate::{metrics::LineMetrics, secret::Secret};

/// Default per-request timeout (`line_request_timeout_ms`): LINE answers in
/// well under a second; longer means something is wrong, and a send must be
/// retried (push) or reported (reply).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// LINE's answer, whatever its status.
#[derive(Debug, Clone)]
pub struct LineResponse {
    pub status: StatusCode,
    /// `x-line-request-id`.
    pub request_id: Option<String>,
    /// `x-line-accepted-request-id` (409 on a retry key already accepted).
    pub accepted_request_id: Option<String>,
    /// `Retry-After`, in seconds, when sent.
    pub retry_after: Option<Duration>,
    pub body: Bytes,
}

/// The request did not produce an HTTP response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NetworkError {
    /// No connection was made: nothing reached LINE.
    #[error("cannot connect to LINE: {0}")]
    Connect(String),
    /// Sent (maybe), but no answer in time: LINE may have acted on it.
    #[error("LINE did not answer within {0:?}")]
    Timeout(Duration),
    /// The connection broke mid-way: LINE may have acted on it.
    #[error("the connection to LINE failed: {0}")]
    Broken(String),
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

    /// Sends `request` for `path`, measured.
    async fn send(
        &self,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<LineResponse, NetworkError> {
        let endpoint = crate::metrics::endpoint_label(path);
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
        let result = send(request.headers(headers))
            .instrument(span.clone())
            .await
            .map_err(|err| match err {
                NetworkError::Timeout(_) => NetworkError::Timeout(self.timeout),
                other => other,
            });
        if let Ok(response) = &result {
            span.record("http.response.status_code", response.status.as_u16());
        }
        if let Some(metrics) = &self.metrics {
            let status = result.as_ref().ok().map(|r| r.status.as_u16());
            metrics.observe(path, status, started.elapsed().as_secs_f64());
        }
        result
    }

    /// POSTs JSON to `path` on the API host.
    pub async fn post_json(
        &self,
        token: &Secret,
        path: &str,
        body: &serde_json::Value,
        retry_key: Option<&str>,
    ) -> Result<LineResponse, NetworkError> {
        let mut request = self
            .request(Method::POST, &self.api_base, path, token)
            .json(body);
        if let Some(key) = retry_key {
            request = request.header("X-Line-Retry-Key", key);
        }
        self.send(path, request).await
    }

    /// PUTs JSON to `path` on the API host (LINE's settings, such as the
    /// webhook endpoint: idempotent, so no retry key).
    pub async fn put_json(
        &self,
        token: &Secret,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<LineResponse, NetworkError> {
        self.send(
            path,
            self.request(Method::PUT, &self.api_base, path, token)
                .json(body),
        )
        .await
    }

    /// GETs `base` itself, without a token: any HTTP answer shows the host
    /// is reached (through the proxy, when one is configured).
    pub async fn probe(&self, base: &Url) -> Result<u16, NetworkError> {
        let response = self.http.get(base.as_str()).send().await.map_err(network)?;
        Ok(response.status().as_u16())
    }

    /// GETs `path` on the API host.
    pub async fn get(&self, token: &Secret, path: &str) -> Result<LineResponse, NetworkError> {
        self.send(path, self.request(Method::GET, &self.api_base, path, token))
            .await
    }

    /// POSTs a form to a token endpoint (`/v2/oauth/*`, `/oauth2/*`) on the
    /// API host. These take no bearer token: the form carries the
    /// credentials.
    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<LineResponse, NetworkError> {
        self.send(
            path,
            self.http
                .post(format!("{}{path}", self.api_base))
                .form(form),
        )
        .await
    }

    /// GETs a token endpoint with query parameters, without a bearer token.
    pub async fn get_query(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<LineResponse, NetworkError> {
        self.send(
            path,
            self.http
                .get(format!("{}{path}", self.api_base))
                .query(query),
        )
        .await
    }

    /// GETs `path` on the data host (message content) and returns the
    /// response unread, so that large media can be streamed, not buffered.
    /// No overall timeout: a 200 MB video takes its time; the connection
    /// and the wait for headers are still bounded.
    pub async fn get_data_stream(
        &self,
        token: &Secret,
        path: &str,
    ) -> Result<reqwest::Response, NetworkError> {
        let request = self
            .streaming
            .get(format!("{}{path}", self.data_base))
            .bearer_auth(token.expose());
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(self.timeout, request.send())
            .await
            .map_err(|_| NetworkError::Timeout(self.timeout))
            .and_then(|sent| sent.map_err(network));
        if let Some(metrics) = &self.metrics {
            let status = result.as_ref().ok().map(|r| r.status().as_u16());
            metrics.observe(path, status, started.elapsed().as_secs_f64());
        }
        result
    }

    fn request(
        &self,
        method: Method,
        base: &str,
        path: &str,
        token: &Secret,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{base}{path}"))
            .bearer_auth(token.expose())
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<LineResponse, NetworkError> {
    let response = request.send().await.map_err(network)?;
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
    let body = response.bytes().await.map_err(network)?;
    Ok(LineResponse {
        status,
        request_id,
        accepted_request_id,
        retry_after,
        body,
    })
}

/// Classifies a reqwest failure; the message never carries the URL's
/// query or any header (the token is a header).
pub fn network(err: reqwest::Error) -> NetworkError {
    let err = err.without_url();
    if err.is_connect() {
        NetworkError::Connect(err.to_string())
    } else if err.is_timeout() {
        NetworkError::Timeout(REQUEST_TIMEOUT)
    } else {
        NetworkError::Broken(err.to_string())
    }
}
