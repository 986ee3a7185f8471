//! What a LINE response means for a send: delivered, retry (when, and with
//! which key), or fail (with LINE's message and details for the caller).

use std::time::Duration;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::client::LineResponse;

/// LINE's error body, as documented in messaging-api.yml `ErrorResponse`.
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

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Vec<ApiErrorDetail>,
}

/// The meaning of one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// 2xx.
    Accepted,
    /// 409 with `x-line-accepted-request-id`: an earlier attempt with this
    /// retry key was accepted, so the message went out exactly once.
    AlreadyAccepted { accepted_request_id: String },
    /// 429 because of the request rate: retry after the pause.
    RateLimited {
        retry_after: Option<Duration>,
        error: ApiError,
    },
    /// 429 "You have reached your monthly limit.": retrying cannot help.
    MonthlyLimit(ApiError),
    /// 5xx: LINE failed; nothing was sent, retry.
    ServerError(ApiError),
    /// Any other status: the request itself is wrong; retrying cannot help.
    Rejected(ApiError),
}

const MONTHLY_LIMIT: &str = "monthly limit";

pub fn classify(response: &LineResponse) -> Classified {
    let status = response.status;
    if status.is_success() {
        return Classified::Accepted;
    }
    if status == StatusCode::CONFLICT
        && let Some(accepted) = &response.accepted_request_id
    {
        return Classified::AlreadyAccepted {
            accepted_request_id: accepted.clone(),
        };
    }
    let body: Option<ErrorBody> = serde_json::from_slice(&response.body).ok();
    let (message, details) = match body {
        Some(body) => (body.message, body.details),
        // Not LINE's JSON (a proxy's page?): keep a short, printable excerpt.
        None => (
            String::from_utf8_lossy(&response.body[..response.body.len().min(200)]).into_owned(),
            Vec::new(),
        ),
    };
    let error = ApiError {
        http_status: status.as_u16(),
        message,
        details,
        request_id: response.request_id.clone().unwrap_or_default(),
        retry_after_secs: response.retry_after.map(|d| d.as_secs()),
    };
    if status == StatusCode::TOO_MANY_REQUESTS {
        // LINE's texts are not guaranteed, but this one is the only way to
        // tell the quota apart from the rate limit.
        if error.message.to_ascii_lowercase().contains(MONTHLY_LIMIT) {
            return Classified::MonthlyLimit(error);
        }
        return Classified::RateLimited {
            retry_after: response.retry_after,
            error,
        };
    }
    if status.is_server_error() {
        return Classified::ServerError(error);
    }
    Classified::Rejected(error)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn response(
        status: u16,
        body: &str,
        accepted: Option<&str>,
        retry: Option<u64>,
    ) -> LineResponse {
        LineResponse {
            status: StatusCode::from_u16(status).unwrap(),
            request_id: Some("req-1".into()),
            accepted_request_id: accepted.map(str::to_owned),
            retry_after: retry.map(Duration::from_secs),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn responses_are_classified_as_line_documents_them() {
        assert_eq!(
            classify(&response(200, "{}", None, None)),
            Classified::Accepted
        );
        assert_eq!(
            classify(&response(
                409,
                r#"{"message":"The retry key is already accepted"}"#,
                Some("acc-1"),
                None
            )),
            Classified::AlreadyAccepted {
                accepted_request_id: "acc-1".into()
            }
        );
        let Classified::RateLimited { retry_after, error } = classify(&response(
            429,
            r#"{"message":"The API rate limit has been exceeded. Try again later."}"#,
            None,
            Some(3),
        )) else {
            panic!("rate limit");
        };
        assert_eq!(retry_after, Some(Duration::from_secs(3)));
        assert_eq!(error.retry_after_secs, Some(3));
        assert!(matches!(
            classify(&response(
                429,
                r#"{"message":"You have reached your monthly limit."}"#,
                None,
                None
            )),
            Classified::MonthlyLimit(_)
        ));
        assert!(matches!(
            classify(&response(503, "", None, None)),
            Classified::ServerError(_)
        ));
        let Classified::Rejected(error) = classify(&response(
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
        // A 409 without the header is not proof of acceptance.
        assert!(matches!(
            classify(&response(409, "{}", None, None)),
            Classified::Rejected(_)
        ));
    }
}
