//! The one LINE error: what a call to LINE came to when it did not succeed,
//! from "the name does not resolve" to "LINE answered 400 with these
//! details". Every caller classifies with it; `grpc::status` alone turns it
//! into a gRPC status.

use std::{fmt, time::Duration};

use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::client::Response;

/// LINE's error body, as documented in messaging-api.yml `ErrorResponse`,
/// with the response's status and headers that go with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub http_status: u16,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub details: Vec<ApiErrorDetail>,
    #[serde(default)]
    pub request_id: String,
    /// Seconds LINE asked us to wait (429).
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorDetail {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub property: String,
}

/// LINE's phrase for a reply token it will not take (used, expired,
/// unknown); its texts are not guaranteed, but this one is the only sign.
const INVALID_REPLY_TOKEN: &str = "invalid reply token";
/// LINE's 429 for requests past the rate limit ("The API rate limit has
/// been exceeded. Try again later."): the only sign that a 429 is about the
/// pace, not the monthly quota or one user's many messages.
const RATE_LIMIT_EXCEEDED: &str = "rate limit has been exceeded";

impl ApiError {
    /// LINE's answer to requests past an endpoint's rate limit, which
    /// slows that endpoint's calls of the channel (`line::pace`).
    pub fn exceeds_rate_limit(&self) -> bool {
        self.http_status == 429
            && self
                .message
                .to_ascii_lowercase()
                .contains(RATE_LIMIT_EXCEEDED)
    }

    /// LINE's answer to a reply whose token is used, expired or unknown.
    pub fn refuses_reply_token(&self) -> bool {
        self.http_status == 400
            && self
                .message
                .to_ascii_lowercase()
                .contains(INVALID_REPLY_TOKEN)
    }
}

impl fmt::Display for ApiError {
    /// `LINE answered 400: message (property: detail) [x-line-request-id …]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LINE answered {}: {}", self.http_status, self.message)?;
        if !self.details.is_empty() {
            let details: Vec<String> = self
                .details
                .iter()
                .map(|d| format!("{}: {}", d.property, d.message))
                .collect();
            write!(f, " ({})", details.join("; "))?;
        }
        if !self.request_id.is_empty() {
            write!(f, " [x-line-request-id {}]", self.request_id)?;
        }
        Ok(())
    }
}

/// Why a request produced no HTTP response. The kinds before `Timeout`
/// happen before anything is sent: nothing reached LINE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkKind {
    /// LINE's host name does not resolve.
    NameResolution,
    /// The host (or the proxy) refused the connection.
    Refused,
    /// No connection within the connect timeout.
    ConnectTimeout,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// Any other failure to connect.
    Connect,
    /// Sent (maybe), but no answer in time: LINE may have acted on it.
    Timeout,
    /// The connection broke mid-way: LINE may have acted on it.
    Broken,
}

/// A request that got no HTTP answer: the kind, what the transport said
/// (never a URL's query or a header), and the proxy it went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkError {
    pub kind: NetworkKind,
    /// The transport's own words, for the log and the operator.
    pub detail: String,
    /// `host:port` of the proxy the request went through, if any.
    pub proxy: Option<String>,
    /// How long we waited (for `Timeout`).
    pub waited: Option<Duration>,
}

impl NetworkError {
    pub fn new(kind: NetworkKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            proxy: None,
            waited: None,
        }
    }

    /// Whether the request may have reached LINE (and been acted on).
    pub fn may_have_reached_line(&self) -> bool {
        matches!(self.kind, NetworkKind::Timeout | NetworkKind::Broken)
    }
}

impl fmt::Display for NetworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let via = match &self.proxy {
            Some(proxy) => format!(" through the proxy {proxy}"),
            None => String::new(),
        };
        match (self.kind, &self.proxy) {
            (NetworkKind::NameResolution, None) => write!(
                f,
                "cannot connect to LINE: the host name does not resolve ({}); check DNS, or set line_proxy if this network reaches the internet through a proxy",
                self.detail
            ),
            (NetworkKind::NameResolution, Some(_)) => write!(
                f,
                "cannot connect to LINE{via}: the proxy's host name does not resolve ({}); check line_proxy",
                self.detail
            ),
            (NetworkKind::Refused, None) => write!(
                f,
                "cannot connect to LINE: the connection was refused ({}); check line_api_base_url and line_data_base_url, or set line_proxy",
                self.detail
            ),
            (NetworkKind::Refused, Some(_)) => write!(
                f,
                "cannot connect to LINE{via}: the proxy refused the connection ({}); check line_proxy",
                self.detail
            ),
            (NetworkKind::ConnectTimeout, _) => write!(
                f,
                "cannot connect to LINE{via}: no connection within the connect timeout ({}); a firewall may drop the traffic, or a proxy is needed (line_proxy)",
                self.detail
            ),
            (NetworkKind::Tls, _) => write!(
                f,
                "cannot connect to LINE{via}: the TLS handshake failed ({}); a proxy that intercepts TLS needs its CA in the system's trust store",
                self.detail
            ),
            (NetworkKind::Connect, _) => {
                write!(f, "cannot connect to LINE{via}: {}", self.detail)
            }
            (NetworkKind::Timeout, _) => match self.waited {
                Some(waited) => write!(
                    f,
                    "LINE did not answer within {} ms{via} (line_request_timeout_ms)",
                    waited.as_millis()
                ),
                None => write!(f, "LINE did not answer in time{via}: {}", self.detail),
            },
            (NetworkKind::Broken, _) => {
                write!(f, "the connection to LINE{via} failed: {}", self.detail)
            }
        }
    }
}

impl std::error::Error for NetworkError {}

/// A call to LINE that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// LINE answered with an error status (other than the cases below).
    #[error("{0}")]
    Api(ApiError),
    /// 429 because of the request rate: retry after the pause.
    #[error("{error} (rate limit)")]
    RateLimited {
        retry_after: Option<Duration>,
        error: ApiError,
    },
    /// 429 "You have reached your monthly limit.": retrying cannot help.
    #[error("{0} (the monthly message quota is used up)")]
    MonthlyLimit(ApiError),
    /// 409 with `x-line-accepted-request-id`: an earlier request with this
    /// retry key was accepted, so the message went out exactly once. A
    /// success for a send.
    #[error(
        "LINE had already accepted this request (x-line-accepted-request-id {accepted_request_id})"
    )]
    AlreadyAccepted {
        accepted_request_id: String,
        /// `x-line-request-id` of the 409 itself.
        request_id: String,
        /// The 409's body: LINE repeats the accepted request's
        /// `sentMessages` in it.
        body: bytes::Bytes,
    },
    /// No HTTP answer.
    #[error("{0}")]
    Network(NetworkError),
    /// LINE answered, but with a body this version cannot read.
    #[error("LINE answered {http_status} with a body this version cannot read ({reason}){}", request_suffix(.request_id))]
    InvalidJson {
        http_status: u16,
        request_id: String,
        reason: String,
    },
    /// 202 for content: LINE is still preparing it (large video, audio).
    #[error("LINE is still preparing the content; retry in a few seconds{}", request_suffix(.request_id))]
    NotReady { request_id: String },
    /// Not sent: the channel's pace for this endpoint (LINE's rate limit,
    /// a `Retry-After` LINE gave, `line_rate_limits`) puts the request
    /// later than a call may wait (`line::pace`). Nothing reached LINE.
    #[error("not sent yet: {endpoint} is paced to LINE's rate limit for this channel (line_rate_limits), and the next request may go in {} ms", .retry_after.as_millis())]
    Paced {
        /// The endpoint label, e.g. `/v2/bot/message/push`.
        endpoint: String,
        /// When to try again (at least).
        retry_after: Duration,
    },
}

fn request_suffix(id: &str) -> String {
    if id.is_empty() {
        String::new()
    } else {
        format!(" [x-line-request-id {id}]")
    }
}

/// How long to wait before asking again for content LINE still prepares.
pub const NOT_READY_RETRY: Duration = Duration::from_secs(2);

impl Error {
    /// Whether the same request may succeed later: LINE failed (5xx), the
    /// rate limit, no answer, content not ready yet. Whether it is *safe*
    /// to repeat is the caller's question (see
    /// [`NetworkError::may_have_reached_line`]).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api(error) => error.http_status >= 500,
            Self::RateLimited { .. }
            | Self::Network(_)
            | Self::NotReady { .. }
            | Self::Paced { .. } => true,
            Self::MonthlyLimit(_) | Self::AlreadyAccepted { .. } | Self::InvalidJson { .. } => {
                false
            }
        }
    }

    /// LINE's error answer, when there was one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(error) | Self::RateLimited { error, .. } | Self::MonthlyLimit(error) => {
                Some(error)
            }
            _ => None,
        }
    }

    /// The error for a response that is not a success; `None` for 2xx
    /// (202 included: for most endpoints it means "accepted").
    pub fn from_response(response: &Response) -> Option<Self> {
        let status = response.status;
        if status.is_success() {
            return None;
        }
        if status == StatusCode::CONFLICT
            && let Some(accepted) = &response.accepted_request_id
        {
            return Some(Self::AlreadyAccepted {
                accepted_request_id: accepted.clone(),
                request_id: response.request_id.clone().unwrap_or_default(),
                body: response.body.clone(),
            });
        }
        let error = api_error(response);
        if status == StatusCode::TOO_MANY_REQUESTS {
            // LINE's texts are not guaranteed, but this one is the only way
            // to tell the quota apart from the rate limit.
            if error.message.to_ascii_lowercase().contains(MONTHLY_LIMIT) {
                return Some(Self::MonthlyLimit(error));
            }
            return Some(Self::RateLimited {
                retry_after: response.retry_after,
                error,
            });
        }
        Some(Self::Api(error))
    }
}

const MONTHLY_LIMIT: &str = "monthly limit";

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Vec<ApiErrorDetail>,
}

fn api_error(response: &Response) -> ApiError {
    let body: Option<ErrorBody> = serde_json::from_slice(&response.body).ok();
    let (message, details) = match body {
        Some(body) => (body.message, body.details),
        // Not LINE's JSON (a proxy's page?): keep a short, printable excerpt.
        None => (
            String::from_utf8_lossy(&response.body[..response.body.len().min(200)]).into_owned(),
            Vec::new(),
        ),
    };
    ApiError {
        http_status: response.status.as_u16(),
        message,
        details,
        request_id: response.request_id.clone().unwrap_or_default(),
        retry_after_secs: response.retry_after.map(|d| d.as_secs()),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn response(status: u16, body: &str, accepted: Option<&str>, retry: Option<u64>) -> Response {
        Response {
            status: StatusCode::from_u16(status).unwrap(),
            request_id: Some("req-1".into()),
            accepted_request_id: accepted.map(str::to_owned),
            retry_after: retry.map(Duration::from_secs),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn responses_are_classified_as_line_documents_them() {
        assert_eq!(Error::from_response(&response(200, "{}", None, None)), None);
        assert_eq!(
            Error::from_response(&response(
                409,
                r#"{"message":"The retry key is already accepted"}"#,
                Some("acc-1"),
                None
            )),
            Some(Error::AlreadyAccepted {
                accepted_request_id: "acc-1".into(),
                request_id: "req-1".into(),
                body: Bytes::from_static(br#"{"message":"The retry key is already accepted"}"#),
            })
        );
        let Some(Error::RateLimited { retry_after, error }) = Error::from_response(&response(
            429,
            r#"{"message":"The API rate limit has been exceeded. Try again later."}"#,
            None,
            Some(3),
        )) else {
            panic!("rate limit");
        };
        assert_eq!(retry_after, Some(Duration::from_secs(3)));
        assert_eq!(error.retry_after_secs, Some(3));
        assert!(error.exceeds_rate_limit(), "this 429 slows the endpoint");
        let monthly = Error::from_response(&response(
            429,
            r#"{"message":"You have reached your monthly limit."}"#,
            None,
            None,
        ))
        .unwrap();
        assert!(matches!(monthly, Error::MonthlyLimit(_)));
        assert!(!monthly.is_retryable());
        assert!(!monthly.api().unwrap().exceeds_rate_limit());
        // Other 429s (too many messages to one user) are retried but slow
        // nothing down.
        let Some(Error::RateLimited { error, .. }) = Error::from_response(&response(
            429,
            r#"{"message":"Too many messages to this user"}"#,
            None,
            None,
        )) else {
            panic!("another 429");
        };
        assert!(!error.exceeds_rate_limit());
        let server = Error::from_response(&response(503, "", None, None)).unwrap();
        assert!(server.is_retryable());
        let Some(Error::Api(error)) = Error::from_response(&response(
            400,
            r#"{"message":"The request body has 1 error(s)","details":[{"message":"May not be empty","property":"messages[0].text"}]}"#,
            None,
            None,
        )) else {
            panic!("rejected");
        };
        assert_eq!(error.http_status, 400);
        assert_eq!(error.details[0].property, "messages[0].text");
        assert_eq!(error.request_id, "req-1");
        assert_eq!(
            error.to_string(),
            "LINE answered 400: The request body has 1 error(s) (messages[0].text: May not be empty) [x-line-request-id req-1]"
        );
        assert!(!Error::Api(error).is_retryable());
        // A 409 without the header is not proof of acceptance.
        assert!(matches!(
            Error::from_response(&response(409, "{}", None, None)),
            Some(Error::Api(_))
        ));
    }

    #[test]
    fn network_errors_name_their_cause_and_what_to_try() {
        let dns = NetworkError::new(NetworkKind::NameResolution, "dns error");
        assert!(dns.to_string().contains("does not resolve"), "{dns}");
        assert!(dns.to_string().contains("line_proxy"), "{dns}");
        assert!(!dns.may_have_reached_line());
        let mut refused = NetworkError::new(NetworkKind::Refused, "Connection refused");
        refused.proxy = Some("proxy.example:3128".into());
        assert!(
            refused
                .to_string()
                .contains("through the proxy proxy.example:3128"),
            "{refused}"
        );
        let timeout = NetworkError {
            waited: Some(Duration::from_millis(1500)),
            ..NetworkError::new(NetworkKind::Timeout, "operation timed out")
        };
        assert!(timeout.to_string().contains("1500 ms"), "{timeout}");
        assert!(timeout.may_have_reached_line());
    }
}
