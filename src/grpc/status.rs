//! The one place where errors become gRPC statuses. Matches are exhaustive
//! so that a new error variant does not compile until it is classified.
//! Internal causes are logged here and replaced by a safe message.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::{channels::ChannelError, store::StoreError, tokens::TokenError};

/// Collects field violations of one request, so a caller learns about all
/// of them at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<(String, String)>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
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
        err @ (StoreError::IdTaken { .. }
        | StoreError::Locked { .. }
        | StoreError::Corrupt { .. }
        | StoreError::Backend(_)) => {
            tracing::error!(error = %err, "storage failure");
            Status::internal("storage failure; nothing was changed")
        }
    }
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
