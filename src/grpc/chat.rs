//! Chat-UX RPCs of `Messaging`: ShowLoadingAnimation and MarkAsRead, each
//! one idempotent LINE call through `line::api`.

use tonic::Status;

use super::{
    lookup::{channel, channel_id},
    send::line_id,
    status::Violations,
};
use crate::{proto::v1 as pb, services::Services};

/// A mark-as-read token is opaque; this only bounds what we pass on.
const MAX_MARK_AS_READ_TOKEN_LEN: usize = 4096;
const LOADING_STEP: i32 = 5;
const LOADING_MAX: i32 = 60;

pub async fn show_loading_animation(
    services: &Services,
    request: pb::ShowLoadingAnimationRequest,
) -> Result<pb::ShowLoadingAnimationResponse, Status> {
    let pb::ShowLoadingAnimationRequest {
        channel_id: id,
        user_id,
        loading_seconds,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    violations.check("user_id", line_id(&user_id));
    let valid_seconds = loading_seconds == 0
        || ((LOADING_STEP..=LOADING_MAX).contains(&loading_seconds)
            && loading_seconds % LOADING_STEP == 0);
    if !valid_seconds {
        violations.add(
            "loading_seconds",
            format!(
                "must be {LOADING_STEP}-{LOADING_MAX} and a multiple of {LOADING_STEP}, or 0 for LINE's default (20 s); got {loading_seconds}"
            ),
        );
    }
    violations.into_result()?;
    let record = channel(services, id).await?;
    let seconds = (loading_seconds != 0).then_some(loading_seconds);
    services
        .tokens
        .line(&record)
        .show_loading_animation(&user_id, seconds)
        .await?;
    Ok(pb::ShowLoadingAnimationResponse {})
}

pub async fn mark_as_read(
    services: &Services,
    request: pb::MarkAsReadRequest,
) -> Result<pb::MarkAsReadResponse, Status> {
    let pb::MarkAsReadRequest {
        channel_id: id,
        mark_as_read_token,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    if mark_as_read_token.is_empty() {
        violations.add(
            "mark_as_read_token",
            "must not be empty (use MessageContent.mark_as_read_token)",
        );
    } else if mark_as_read_token.len() > MAX_MARK_AS_READ_TOKEN_LEN {
        violations.add(
            "mark_as_read_token",
            format!("must be at most {MAX_MARK_AS_READ_TOKEN_LEN} bytes"),
        );
    }
    violations.into_result()?;
    let record = channel(services, id).await?;
    services
        .tokens
        .line(&record)
        .mark_as_read(&mark_as_read_token)
        .await?;
    Ok(pb::MarkAsReadResponse {})
}
