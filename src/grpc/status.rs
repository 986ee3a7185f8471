//! The one place where errors become gRPC statuses. Matches are exhaustive
//! (no `_` arm over an error type) so that a new variant does not compile
//! until it is classified. Internal causes are logged here and replaced by
//! a safe message.
//!
//! LINE's answers map by one table, [`LINE_STATUS_CODES`], for every RPC:
//! a lookup, an admin call and a failed send that got the same answer from
//! LINE get the same code.

use std::{collections::HashMap, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::{
    channels::ChannelError,
    line::{self, ApiError, CallError, NetworkError, error::NOT_READY_RETRY},
    store::{DeliveryRecord, SendKind, StoreError},
    tokens::TokenError,
    uploads::UploadError,
};

/// LINE's HTTP status → gRPC code, for every call. 401 is what is left
/// after one renewal of the token; 429 is told apart (rate limit, monthly
/// quota) by [`line::Error`] but maps to one code.
pub const LINE_STATUS_CODES: &[(u16, Code)] = &[
    (400, Code::InvalidArgument),
    (401, Code::FailedPrecondition),
    (403, Code::PermissionDenied),
    (404, Code::NotFound),
    // "Gone": the content or resource no longer exists, as for 404.
    (410, Code::NotFound),
    (429, Code::ResourceExhausted),
];

/// The code for a LINE error answer with `http_status`: the table above,
/// UNAVAILABLE for 5xx (LINE failed; nothing was done), FAILED_PRECONDITION
/// for any other 4xx (409 included: the request conflicts with LINE's state).
pub fn line_http_code(http_status: u16) -> Code {
    if let Some((_, code)) = LINE_STATUS_CODES.iter().find(|(s, _)| *s == http_status) {
        return *code;
    }
    if (500..=599).contains(&http_status) {
        Code::Unavailable
    } else {
        Code::FailedPrecondition
    }
}

/// ErrorInfo `domain` of every status this service returns.
const DOMAIN: &str = "line.weiyu.com";

/// LINE's error answer as details: its status and request id in an
/// ErrorInfo, its details as BadRequest violations, `Retry-After` as
/// RetryInfo.
fn api_details(error: &ApiError, reason: &str, extra: &[(&str, String)]) -> ErrorDetails {
    let mut details = ErrorDetails::new();
    let mut metadata = HashMap::new();
    metadata.insert("line_status".to_owned(), error.http_status.to_string());
    metadata.insert("line_request_id".to_owned(), error.request_id.clone());
    for (key, value) in extra {
        metadata.insert((*key).to_owned(), value.clone());
    }
    for detail in &error.details {
        details.add_bad_request_violation(detail.property.clone(), detail.message.clone());
    }
    if let Some(secs) = error.retry_after_secs {
        details.set_retry_info(Some(Duration::from_secs(secs)));
    }
    details.set_error_info(reason, DOMAIN, metadata);
    details
}

/// The hint a 401 gets: what the operator does about a refused token.
const REFUSED_TOKEN_HINT: &str = " (the channel access token was refused: store a valid long-lived token, or check the channel's credentials for issued tokens)";

fn api_status(code: Code, error: &ApiError) -> Status {
    let hint = if error.http_status == 401 {
        REFUSED_TOKEN_HINT
    } else {
        ""
    };
    Status::with_error_details(
        code,
        format!("{error}{hint}"),
        api_details(error, "LINE_API_ERROR", &[]),
    )
}

fn network_status(err: &NetworkError) -> Status {
    let mut details = ErrorDetails::new();
    let mut metadata = HashMap::new();
    metadata.insert("kind".to_owned(), format!("{:?}", err.kind));
    details.set_error_info("LINE_UNREACHABLE", DOMAIN, metadata);
    tracing::debug!(error = %err, "LINE could not be reached");
    Status::with_error_details(Code::Unavailable, err.to_string(), details)
}

impl From<line::Error> for Status {
    fn from(err: line::Error) -> Self {
        match &err {
            line::Error::Api(error) => api_status(line_http_code(error.http_status), error),
            line::Error::RateLimited { error, .. } => api_status(Code::ResourceExhausted, error),
            line::Error::MonthlyLimit(error) => {
                let mut details = api_details(error, "LINE_MONTHLY_LIMIT", &[]);
                details.add_quota_failure_violation(
                    "line_monthly_message_quota",
                    "the channel's messages for this month are used up (see GetQuota)",
                );
                Status::with_error_details(Code::ResourceExhausted, err.to_string(), details)
            }
            line::Error::AlreadyAccepted { .. } => Status::already_exists(err.to_string()),
            line::Error::Network(network) => network_status(network),
            line::Error::InvalidJson { .. } => {
                tracing::warn!(error = %err, "LINE's answer cannot be read");
                Status::unavailable(err.to_string())
            }
            line::Error::NotReady { .. } => {
                let mut details = ErrorDetails::new();
                details.set_retry_info(Some(NOT_READY_RETRY));
                Status::with_error_details(Code::Unavailable, err.to_string(), details)
            }
            // Held back to stay within LINE's rate limit: the same code as
            // LINE's own 429, with when to ask again.
            line::Error::Paced {
                endpoint,
                retry_after,
            } => {
                let mut details = ErrorDetails::new();
                let mut metadata = HashMap::new();
                metadata.insert("endpoint".to_owned(), endpoint.clone());
                details.set_error_info("LINE_RATE_PACED", DOMAIN, metadata);
                details.set_retry_info(Some(*retry_after));
                Status::with_error_details(Code::ResourceExhausted, err.to_string(), details)
            }
        }
    }
}

impl From<CallError<TokenError>> for Status {
    fn from(err: CallError<TokenError>) -> Self {
        match err {
            CallError::Token(err) => err.into(),
            CallError::Unauthorized { error, renewal } => {
                let code = match &renewal {
                    TokenError::Unavailable(_) => Code::Unavailable,
                    TokenError::Precondition(_)
                    | TokenError::Rejected(_)
                    | TokenError::Channel(_) => Code::FailedPrecondition,
                };
                Status::with_error_details(
                    code,
                    format!("{error}; {renewal}"),
                    api_details(&error, "LINE_API_ERROR", &[]),
                )
            }
            CallError::Line(err) => err.into(),
        }
    }
}

/// The same status with `rpc: ` before its message (details kept), for the
/// RPCs that call LINE directly: an operator reading a log line of LINE's
/// words learns which call met them.
pub fn in_rpc(rpc: &'static str) -> impl Fn(Status) -> Status {
    move |status| {
        if status.message().starts_with(&format!("{rpc}: ")) {
            return status;
        }
        Status::with_details(
            status.code(),
            format!("{rpc}: {}", status.message()),
            status.details().to_vec().into(),
        )
    }
}

/// For LINE's endpoints it offers to verified and premium accounts only
/// (follower ids, chat member ids): its 403 there says what the account is,
/// not what the caller may do, so it is FAILED_PRECONDITION with LINE's
/// message. Any other error as by the one table.
pub fn verified_accounts_only(err: CallError<TokenError>) -> Status {
    match &err {
        CallError::Line(line::Error::Api(error)) if error.http_status == 403 => {
            let mut details = api_details(error, "LINE_API_ERROR", &[]);
            details.add_precondition_failure_violation(
                "LINE_ACCOUNT_TYPE",
                "channel_id",
                "LINE offers this to verified and premium Official Accounts only",
            );
            Status::with_error_details(
                Code::FailedPrecondition,
                format!(
                    "{error} (LINE offers this to verified and premium Official Accounts only)"
                ),
                details,
            )
        }
        _ => err.into(),
    }
}

/// LINE's name (in `details[].message`) of an audience it does not have.
const AUDIENCE_NOT_FOUND: &str = "AUDIENCE_GROUP_NOT_FOUND";

/// For the audience RPCs: LINE answers an unknown audience id with a 400
/// whose detail says `AUDIENCE_GROUP_NOT_FOUND` (manage-audience.yml,
/// getAudienceData); that is NOT_FOUND, with LINE's answer kept. Any other
/// error as by the one table.
pub fn audience_status(err: CallError<TokenError>) -> Status {
    match &err {
        CallError::Line(line::Error::Api(error))
            if error.http_status == 400
                && error
                    .details
                    .iter()
                    .any(|d| d.message == AUDIENCE_NOT_FOUND) =>
        {
            Status::with_error_details(
                Code::NotFound,
                error.to_string(),
                api_details(error, "LINE_API_ERROR", &[]),
            )
        }
        _ => err.into(),
    }
}

/// The status of a PublishRichMenu step that failed: its own code, message
/// and details (LINE's, when LINE refused), with the step, the menu and
/// what was undone added to its ErrorInfo and message.
pub fn publish_step_failed(
    status: Status,
    step: &str,
    rich_menu_id: &str,
    rollback: &str,
) -> Status {
    let mut details = status.get_error_details();
    let (reason, domain, mut metadata) = match details.error_info() {
        Some(info) => (
            info.reason.clone(),
            info.domain.clone(),
            info.metadata.clone(),
        ),
        None => (
            "RICH_MENU_PUBLISH_FAILED".to_owned(),
            DOMAIN.to_owned(),
            HashMap::new(),
        ),
    };
    metadata.insert("publish_step".to_owned(), step.to_owned());
    metadata.insert("rich_menu_id".to_owned(), rich_menu_id.to_owned());
    metadata.insert("rollback".to_owned(), rollback.to_owned());
    details.set_error_info(reason, domain, metadata);
    Status::with_error_details(
        status.code(),
        format!("step {step} failed ({rollback}): {}", status.message()),
        details,
    )
}

/// A send that ended without delivering, as the caller sees it: the code
/// its LINE answer maps to by the one table, DEADLINE_EXCEEDED when the
/// outcome is unknown. `None` for queued, sending and delivered sends.
pub fn delivery_status(record: &DeliveryRecord) -> Option<Status> {
    use crate::store::DeliveryState;
    let code = match record.state {
        DeliveryState::Queued
        | DeliveryState::Sending
        | DeliveryState::Accepted
        | DeliveryState::Delivered => return None,
        DeliveryState::Unknown => Code::DeadlineExceeded,
        DeliveryState::Failed => match &record.error {
            // A reply token LINE refused, with no push allowed: the
            // request was fine, the chat's state is not.
            Some(error)
                if record.kind == SendKind::Reply
                    && ApiError::from(error.clone()).refuses_reply_token() =>
            {
                Code::FailedPrecondition
            }
            Some(error) => line_http_code(error.http_status),
            // A narrowcast LINE accepted and then reported failed: its
            // error code 1 is LINE's own failure; the others (too few
            // recipients, a conflict, a partial delivery refused) are the
            // request's against the account's state.
            None if record.kind == SendKind::Narrowcast && record.narrowcast.is_some() => {
                match record.narrowcast.as_ref().and_then(|n| n.error_code) {
                    Some(1) => Code::Unavailable,
                    _ => Code::FailedPrecondition,
                }
            }
            None if record.attempts == 0 => Code::FailedPrecondition,
            None => Code::Unavailable,
        },
    };
    Some(failed_delivery(code, record))
}

fn failed_delivery(code: Code, record: &DeliveryRecord) -> Status {
    let state = match record.state {
        crate::store::DeliveryState::Unknown if record.kind == SendKind::Narrowcast => {
            "has an unknown outcome (LINE accepted the narrowcast; what it sent cannot be learnt)"
        }
        crate::store::DeliveryState::Unknown => {
            "has an unknown outcome (the reply may or may not have been sent; it is not retried)"
        }
        _ => "failed",
    };
    match &record.error {
        Some(error) => {
            let error = ApiError::from(error.clone());
            let details = api_details(
                &error,
                "LINE_DELIVERY",
                &[("delivery_id", record.id.clone())],
            );
            Status::with_error_details(
                code,
                format!("delivery {} {state}: {error}", record.id),
                details,
            )
        }
        None => {
            let mut details = ErrorDetails::new();
            let mut metadata = HashMap::new();
            metadata.insert("delivery_id".to_owned(), record.id.clone());
            details.set_error_info("LINE_DELIVERY", DOMAIN, metadata);
            Status::with_error_details(
                code,
                format!(
                    "delivery {} {state}: {}",
                    record.id,
                    record.failure.as_deref().unwrap_or("no answer from LINE")
                ),
                details,
            )
        }
    }
}

/// Collects field violations of one request, so a caller learns about all
/// of them at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<(String, String)>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many violations were recorded so far.
    pub fn count(&self) -> usize {
        self.0.len()
    }

    pub fn add(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push((field.into(), reason.into()));
    }

    /// Runs a field rule; records its refusal and returns the value if it passed.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(reason) => {
                self.add(field, reason);
                None
            }
        }
    }

    /// `Ok(())` when nothing was violated, else INVALID_ARGUMENT whose
    /// message names every field and whose details carry a BadRequest.
    pub fn into_result(self) -> Result<(), Status> {
        if self.0.is_empty() {
            return Ok(());
        }
        let message = self
            .0
            .iter()
            .map(|(field, reason)| format!("{field}: {reason}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut details = ErrorDetails::new();
        for (field, reason) in &self.0 {
            details.add_bad_request_violation(field.clone(), reason.clone());
        }
        Err(Status::with_error_details(
            Code::InvalidArgument,
            format!("invalid request: {message}"),
            details,
        ))
    }
}

/// INVALID_ARGUMENT for a single field.
pub fn invalid_field(field: &str, reason: impl Into<String>) -> Status {
    let mut violations = Violations::new();
    violations.add(field, reason);
    violations
        .into_result()
        .expect_err("a violation was just added")
}

pub fn store_status(err: StoreError) -> Status {
    match err {
        StoreError::NotFound { id } => Status::not_found(format!("{id} not found")),
        StoreError::LineChannelIdTaken {
            line_channel_id,
            existing_id,
        } => Status::already_exists(format!(
            "LINE channel id {line_channel_id} is already registered as channel {existing_id}"
        )),
        StoreError::Conflict { id, .. } => Status::aborted(format!(
            "{id} was changed by another request at the same time; retry"
        )),
        StoreError::AckBackwards { consumer, acked } => Status::invalid_argument(format!(
            "sequence: consumer {consumer} has already acknowledged up to {acked}; acks never move backwards"
        )),
        StoreError::AckBeyondHead { sequence, head } => Status::invalid_argument(format!(
            "sequence: {sequence} is beyond the head of the log ({head})"
        )),
        // Logged by the store probe, once per interval: not per call.
        StoreError::Full(_) => Status::unavailable(
            "the store is full (the disk, or JetStream's limits): nothing was changed; retry later or on another replica",
        ),
        StoreError::Reopening => Status::unavailable(
            "the store is being reopened after a failed write: nothing was changed; retry shortly",
        ),
        err @ (StoreError::IdTaken { .. }
        | StoreError::Locked { .. }
        | StoreError::Corrupt { .. }
        | StoreError::Damaged { .. }
        | StoreError::Backend(_)) => {
            tracing::error!(error = %err, "storage failure");
            Status::internal("storage failure; nothing was changed")
        }
    }
}

/// An upload stopped after `received` bytes: the data dir has no room for
/// more above the store's low-space watermark.
pub fn no_room_for_upload(received: u64) -> Status {
    Status::unavailable(format!(
        "the data dir has no room for this upload above the store's watermark (store_min_free_bytes) after {received} bytes: nothing was stored; retry later or on another replica"
    ))
}

impl From<ChannelError> for Status {
    fn from(err: ChannelError) -> Self {
        match err {
            ChannelError::NotFound(id) => Status::not_found(format!("channel {id} not found")),
            ChannelError::LineChannelIdTaken {
                line_channel_id,
                existing_id,
            } => Status::already_exists(format!(
                "line_channel_id: LINE channel id {line_channel_id} is already registered as channel {existing_id}"
            )),
            ChannelError::Precondition { field, reason } => {
                let mut details = ErrorDetails::new();
                details.add_precondition_failure_violation("CHANNEL_STATE", field, reason.clone());
                Status::with_error_details(
                    Code::FailedPrecondition,
                    format!("{field}: {reason}"),
                    details,
                )
            }
            ChannelError::Store(err) => store_status(err),
            ChannelError::Internal(reason) => {
                tracing::error!(error = %reason, "channel operation failed");
                Status::internal(reason)
            }
            ChannelError::Cipher(err) => {
                tracing::error!(error = %err, "cannot decrypt a stored secret");
                Status::internal(
                    "a stored secret cannot be decrypted with the configured master key",
                )
            }
        }
    }
}

/// SetKid's check of a kid with LINE: LINE refusing the assertion names
/// `kid`; the rest as any token failure.
pub fn kid_status(err: TokenError) -> Status {
    match err {
        TokenError::Rejected(reason) => invalid_field(
            "kid",
            format!(
                "LINE did not accept an assertion signed with this channel's key pair under this kid ({reason}): give the kid the LINE Developers Console shows for the public key GenerateKeyPair made; nothing was changed"
            ),
        ),
        other => other.into(),
    }
}

impl From<TokenError> for Status {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::Precondition(reason) => {
                let mut details = ErrorDetails::new();
                details.add_precondition_failure_violation(
                    "CHANNEL_TOKEN",
                    "token_mode",
                    reason.clone(),
                );
                Status::with_error_details(Code::FailedPrecondition, reason, details)
            }
            err @ TokenError::Unavailable(_) => Status::unavailable(err.to_string()),
            err @ TokenError::Rejected(_) => Status::failed_precondition(err.to_string()),
            TokenError::Channel(err) => err.into(),
        }
    }
}

impl From<UploadError> for Status {
    fn from(err: UploadError) -> Self {
        match err {
            UploadError::NoPublicBaseUrl => {
                let mut details = ErrorDetails::new();
                details.add_precondition_failure_violation(
                    "SETTING",
                    "public_base_url",
                    "must be an https URL that LINE reaches this service's HTTP listener at",
                );
                Status::with_error_details(Code::FailedPrecondition, err.to_string(), details)
            }
            UploadError::Invalid { field, reason } => invalid_field(field, reason),
            UploadError::Io(source) => {
                tracing::error!(error = %source, "storing an upload failed");
                Status::internal("storing the upload failed; nothing was stored")
            }
            UploadError::Shared(source) => store_status(source),
        }
    }
}
