//! Lookup and chat-UX RPCs of `Messaging`: GetProfile, GetGroupSummary and
//! GetGroupMemberProfile (served from the short-lived [`LookupCache`]), and
//! ShowLoadingAnimation and MarkAsRead. Each is one idempotent LINE call,
//! made directly (not through the outbox) and tried once more after a 5xx
//! or a failed connection.
//!
//! [`LookupCache`]: crate::lookup_cache::LookupCache

use std::{collections::HashMap, future::Future, time::Duration};

use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use super::{
    send::line_id,
    status::{Violations, invalid_field},
};
use crate::{
    channels::validate,
    line::{ApiError, Classified, LineResponse, classify, client::NetworkError},
    lookup_cache::Cached,
    proto::v1 as pb,
    secret::Secret,
    services::Services,
    store::ChannelRecord,
    time::timestamp,
};

/// Attempts per call: LINE's 5xx and failed connections get one retry.
const ATTEMPTS: u32 = 2;
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// A mark-as-read token is opaque; this only bounds what we pass on.
const MAX_MARK_AS_READ_TOKEN_LEN: usize = 4096;
const LOADING_STEP: i32 = 5;
const LOADING_MAX: i32 = 60;

const PROFILE: &str = "/v2/bot/profile";
const LOADING: &str = "/v2/bot/chat/loading/start";
const MARK_AS_READ: &str = "/v2/bot/chat/markAsRead";

/// A LINE id checked for shape and made safe as one URL path segment:
/// everything but unreserved characters is percent-encoded, and `.`/`..`
/// (which URL parsers resolve even when encoded) are refused.
fn path_id(violations: &mut Violations, field: &str, value: &str) -> Option<String> {
    let value = violations.check(field, line_id(value))?;
    if value.bytes().all(|b| b == b'.') {
        violations.add(field, "must be a LINE id, not a path segment like `.`");
        return None;
    }
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    Some(encoded)
}

fn channel_id(violations: &mut Violations, value: &str) -> Option<String> {
    violations.check("channel_id", validate::channel_id(value))
}

#[allow(clippy::result_large_err)]
async fn channel(services: &Services, id: Option<String>) -> Result<ChannelRecord, Status> {
    // Validation already ran; `None` cannot reach here, but stay total.
    let id = id.ok_or_else(|| invalid_field("channel_id", "must not be empty"))?;
    Ok(services.channels.get(&id).await?)
}

/// Calls LINE with the channel's token, retrying once after a 5xx or a
/// connection that failed (every call here is idempotent), and once with a
/// renewed token after a 401. A timeout is not retried: the caller has
/// already waited the client's timeout.
#[allow(clippy::result_large_err)]
async fn call<F, Fut>(
    services: &Services,
    record: &ChannelRecord,
    rpc: &str,
    mut request: F,
) -> Result<LineResponse, Status>
where
    F: FnMut(Secret) -> Fut,
    Fut: Future<Output = Result<LineResponse, NetworkError>>,
{
    let mut token = services.tokens.get(record).await?;
    let mut renewed = false;
    let mut attempt = 1;
    loop {
        let result = request(token.clone()).await;
        if let Ok(response) = &result
            && response.status == reqwest::StatusCode::UNAUTHORIZED
            && !renewed
        {
            renewed = true;
            match services.tokens.after_unauthorized(record, &token).await {
                Ok(next) => {
                    token = next;
                    continue;
                }
                // No other token (a long-lived one LINE refuses): report
                // LINE's answer.
                Err(err) => tracing::debug!(rpc, error = %err, "no other token to retry with"),
            }
        }
        let retry = match &result {
            Ok(response) => response.status.is_server_error(),
            Err(NetworkError::Connect(_) | NetworkError::Broken(_)) => true,
            Err(NetworkError::Timeout(_)) => false,
        };
        if retry && attempt < ATTEMPTS {
            attempt += 1;
            tokio::time::sleep(RETRY_PAUSE).await;
            continue;
        }
        let response = result.map_err(|err| {
            tracing::debug!(rpc, error = %err, "LINE could not be reached");
            Status::unavailable(match err {
                NetworkError::Timeout(waited) => format!(
                    "{rpc}: LINE did not answer within {} ms",
                    waited.as_millis()
                ),
                err => format!("{rpc}: {err} (after {attempt} attempts)"),
            })
        })?;
        return match classify(&response) {
            Classified::Accepted | Classified::AlreadyAccepted { .. } => Ok(response),
            Classified::RateLimited { error, .. } | Classified::MonthlyLimit(error) => {
                Err(line_status(Code::ResourceExhausted, rpc, &error))
            }
            Classified::ServerError(error) => Err(line_status(Code::Unavailable, rpc, &error)),
            Classified::Rejected(error) => {
                let code = match error.http_status {
                    400 => Code::InvalidArgument,
                    401 => Code::FailedPrecondition,
                    403 => Code::PermissionDenied,
                    404 | 410 => Code::NotFound,
                    _ => Code::FailedPrecondition,
                };
                Err(line_status(code, rpc, &error))
            }
        };
    }
}

/// A status for LINE's error answer: its status, message, details and
/// request id in the message and in an ErrorInfo; its details as
/// BadRequest violations; `Retry-After` as RetryInfo.
fn line_status(code: Code, rpc: &str, error: &ApiError) -> Status {
    let mut details = ErrorDetails::new();
    let mut metadata = HashMap::new();
    metadata.insert("line_status".to_owned(), error.http_status.to_string());
    metadata.insert("line_request_id".to_owned(), error.request_id.clone());
    for detail in &error.details {
        details.add_bad_request_violation(detail.property.clone(), detail.message.clone());
    }
    if let Some(secs) = error.retry_after_secs {
        details.set_retry_info(Some(Duration::from_secs(secs)));
    }
    details.set_error_info("LINE_API_ERROR", "line.weiyu.com", metadata);
    let extra: Vec<String> = error
        .details
        .iter()
        .map(|d| format!("{}: {}", d.property, d.message))
        .collect();
    let hint = if error.http_status == 401 {
        " (the channel access token was refused: store a valid long-lived token, or check the channel's credentials for issued tokens)"
    } else {
        ""
    };
    let message = format!(
        "{rpc}: LINE answered {}: {}{}{hint}{}",
        error.http_status,
        error.message,
        if extra.is_empty() {
            String::new()
        } else {
            format!(" ({})", extra.join("; "))
        },
        if error.request_id.is_empty() {
            String::new()
        } else {
            format!(" [x-line-request-id {}]", error.request_id)
        }
    );
    Status::with_error_details(code, message, details)
}

/// A cached or fresh LINE answer to `GET path`, parsed. Only answers that
/// parse are cached; errors never are.
#[allow(clippy::result_large_err)]
async fn lookup<T: DeserializeOwned>(
    services: &Services,
    record: &ChannelRecord,
    rpc: &str,
    path: &str,
) -> Result<(T, i64), Status> {
    let cache = &services.lookups;
    // A channel pointed at another LINE channel must not see old answers.
    let scope = format!("{}/{}", record.id, record.line_channel_id);
    if let Some(cached) = cache.get(&scope, path)
        && let Ok(value) = serde_json::from_slice(&cached.body)
    {
        return Ok((value, cached.fetch_time_ms));
    }
    let fetch_time_ms = cache.now_ms();
    let line = cache.line();
    let response = call(services, record, rpc, |token| async move {
        line.get(&token, path).await
    })
    .await?;
    let value = parse(rpc, &response)?;
    cache.insert(
        &scope,
        path,
        Cached {
            body: response.body,
            fetch_time_ms,
        },
    );
    Ok((value, fetch_time_ms))
}

/// LINE's JSON answer, or UNAVAILABLE naming what could not be read.
#[allow(clippy::result_large_err)]
fn parse<T: DeserializeOwned>(rpc: &str, response: &LineResponse) -> Result<T, Status> {
    serde_json::from_slice(&response.body).map_err(|err| {
        Status::unavailable(format!(
            "{rpc}: LINE answered {} with a body this version cannot read ({err}){}",
            response.status.as_u16(),
            response
                .request_id
                .as_deref()
                .map(|id| format!(" [x-line-request-id {id}]"))
                .unwrap_or_default()
        ))
    })
}

/// An uncached LINE answer to `GET path`, parsed: for what admins ask
/// rarely and want current (bot info, quota).
#[allow(clippy::result_large_err)]
pub(super) async fn fetch<T: DeserializeOwned>(
    services: &Services,
    record: &ChannelRecord,
    rpc: &str,
    path: &str,
) -> Result<T, Status> {
    let line = services.lookups.line();
    let response = call(services, record, rpc, |token| async move {
        line.get(&token, path).await
    })
    .await?;
    parse(rpc, &response)
}

/// POSTs `body` to `path`; LINE's answer body is not used.
#[allow(clippy::result_large_err)]
async fn post(
    services: &Services,
    record: &ChannelRecord,
    rpc: &str,
    path: &str,
    body: &Value,
) -> Result<(), Status> {
    let line = services.lookups.line();
    call(services, record, rpc, |token| async move {
        line.post_json(&token, path, body, None).await
    })
    .await?;
    Ok(())
}

/// LINE `UserProfileResponse`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    display_name: String,
    user_id: String,
    #[serde(default)]
    picture_url: Option<String>,
    #[serde(default)]
    status_message: Option<String>,
    #[serde(default)]
    language: Option<String>,
}

/// LINE `GroupSummaryResponse`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupSummary {
    group_id: String,
    group_name: String,
    #[serde(default)]
    picture_url: Option<String>,
}

/// LINE `GroupUserProfileResponse` / `RoomUserProfileResponse`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemberProfile {
    display_name: String,
    user_id: String,
    #[serde(default)]
    picture_url: Option<String>,
}

#[allow(clippy::result_large_err)]
pub async fn get_profile(
    services: &Services,
    request: pb::GetProfileRequest,
) -> Result<pb::GetProfileResponse, Status> {
    let pb::GetProfileRequest {
        channel_id: id,
        user_id,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let user = path_id(&mut violations, "user_id", &user_id);
    violations.into_result()?;
    let record = channel(services, id).await?;
    let path = format!("{PROFILE}/{}", user.unwrap_or_default());
    let (profile, fetched): (Profile, _) = lookup(services, &record, "GetProfile", &path).await?;
    Ok(pb::GetProfileResponse {
        display_name: profile.display_name,
        user_id: profile.user_id,
        picture_url: profile.picture_url.unwrap_or_default(),
        status_message: profile.status_message.unwrap_or_default(),
        language: profile.language.unwrap_or_default(),
        fetch_time: Some(timestamp(fetched)),
    })
}

#[allow(clippy::result_large_err)]
pub async fn get_group_summary(
    services: &Services,
    request: pb::GetGroupSummaryRequest,
) -> Result<pb::GetGroupSummaryResponse, Status> {
    let pb::GetGroupSummaryRequest {
        channel_id: id,
        group_id,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let group = path_id(&mut violations, "group_id", &group_id);
    violations.into_result()?;
    let record = channel(services, id).await?;
    let path = format!("/v2/bot/group/{}/summary", group.unwrap_or_default());
    let (summary, fetched): (GroupSummary, _) =
        lookup(services, &record, "GetGroupSummary", &path).await?;
    Ok(pb::GetGroupSummaryResponse {
        group_id: summary.group_id,
        group_name: summary.group_name,
        picture_url: summary.picture_url.unwrap_or_default(),
        fetch_time: Some(timestamp(fetched)),
    })
}

#[allow(clippy::result_large_err)]
pub async fn get_group_member_profile(
    services: &Services,
    request: pb::GetGroupMemberProfileRequest,
) -> Result<pb::GetGroupMemberProfileResponse, Status> {
    use pb::get_group_member_profile_request::Chat;
    let pb::GetGroupMemberProfileRequest {
        channel_id: id,
        chat,
        user_id,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let chat = match &chat {
        Some(Chat::GroupId(group)) => {
            path_id(&mut violations, "group_id", group).map(|g| format!("group/{g}"))
        }
        Some(Chat::RoomId(room)) => {
            path_id(&mut violations, "room_id", room).map(|r| format!("room/{r}"))
        }
        None => {
            violations.add("chat", "must name a group_id or room_id");
            None
        }
    };
    let user = path_id(&mut violations, "user_id", &user_id);
    violations.into_result()?;
    let record = channel(services, id).await?;
    let path = format!(
        "/v2/bot/{}/member/{}",
        chat.unwrap_or_default(),
        user.unwrap_or_default()
    );
    let (member, fetched): (MemberProfile, _) =
        lookup(services, &record, "GetGroupMemberProfile", &path).await?;
    Ok(pb::GetGroupMemberProfileResponse {
        display_name: member.display_name,
        user_id: member.user_id,
        picture_url: member.picture_url.unwrap_or_default(),
        fetch_time: Some(timestamp(fetched)),
    })
}

#[allow(clippy::result_large_err)]
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
    let mut body = json!({ "chatId": user_id });
    if loading_seconds != 0 {
        body["loadingSeconds"] = json!(loading_seconds);
    }
    post(services, &record, "ShowLoadingAnimation", LOADING, &body).await?;
    Ok(pb::ShowLoadingAnimationResponse {})
}

#[allow(clippy::result_large_err)]
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
    let body = json!({ "markAsReadToken": mark_as_read_token });
    post(services, &record, "MarkAsRead", MARK_AS_READ, &body).await?;
    Ok(pb::MarkAsReadResponse {})
}

// === Admin calls: webhook registration, sent-message counts ===

/// What an admin call sends to LINE.
#[derive(Clone, Copy)]
pub(super) enum AdminRequest<'a> {
    Get,
    /// A JSON body to PUT (settings such as the webhook endpoint).
    Put(&'a Value),
    /// A JSON body to POST.
    Post(&'a Value),
}

/// One LINE call for a ChannelAdmin RPC with the channel's token, retried
/// and mapped to a status as [`call`] does. LINE's answer is returned
/// unread: some (PUT) answer with an empty body.
#[allow(clippy::result_large_err)]
pub(super) async fn admin_call(
    services: &Services,
    record: &ChannelRecord,
    rpc: &str,
    path: &str,
    request: AdminRequest<'_>,
) -> Result<LineResponse, Status> {
    let line = services.lookups.line();
    call(services, record, rpc, |token| async move {
        match request {
            AdminRequest::Get => line.get(&token, path).await,
            AdminRequest::Put(body) => line.put_json(&token, path, body).await,
            AdminRequest::Post(body) => line.post_json(&token, path, body, None).await,
        }
    })
    .await
}

/// LINE's JSON answer to an admin call, or UNAVAILABLE as [`parse`] words it.
#[allow(clippy::result_large_err)]
pub(super) fn admin_parse<T: DeserializeOwned>(
    rpc: &str,
    response: &LineResponse,
) -> Result<T, Status> {
    parse(rpc, response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(value: &str) -> Result<String, Vec<String>> {
        let mut violations = Violations::new();
        match path_id(&mut violations, "user_id", value) {
            Some(id) => Ok(id),
            None => Err(vec![
                violations.into_result().unwrap_err().message().to_owned(),
            ]),
        }
    }

    #[test]
    fn lookup_ids_become_safe_path_segments() {
        assert_eq!(encoded("U4af4980629abcdef").unwrap(), "U4af4980629abcdef");
        assert_eq!(encoded("a/b?c#d").unwrap(), "a%2Fb%3Fc%23d");
        assert_eq!(encoded("%2e%2e").unwrap(), "%252e%252e");
        assert_eq!(encoded("a..b").unwrap(), "a..b");
        for bad in ["", ".", "..", "a b", "é"] {
            assert!(encoded(bad).is_err(), "{bad:?}");
        }
    }
}
