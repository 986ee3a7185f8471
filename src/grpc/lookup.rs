//! Lookup RPCs of `Messaging`: GetProfile, GetGroupSummary and
//! GetGroupMemberProfile, served from the short-lived [`LookupCache`].
//! Each is one idempotent LINE call through `line::api`.
//!
//! [`LookupCache`]: crate::lookup_cache::LookupCache

use tonic::Status;

use super::{
    send::line_id,
    status::{Violations, invalid_field},
};
use crate::{
    channels::validate,
    line::api::Chat,
    lookup_cache::{group_key, member_key, profile_key},
    proto::v1 as pb,
    services::Services,
    store::ChannelRecord,
    time::timestamp,
};

/// A LINE id checked for shape and for being usable as one URL path
/// segment: `.` and `..` (which URL parsers resolve even when encoded) are
/// refused; `line::api` encodes the rest.
pub(super) fn path_id(violations: &mut Violations, field: &str, value: &str) -> Option<String> {
    let value = violations.check(field, line_id(value))?;
    if value.bytes().all(|b| b == b'.') {
        violations.add(field, "must be a LINE id, not a path segment like `.`");
        return None;
    }
    Some(value)
}

pub(super) fn channel_id(violations: &mut Violations, value: &str) -> Option<String> {
    violations.check("channel_id", validate::channel_id(value))
}

pub(super) async fn channel(
    services: &Services,
    id: Option<String>,
) -> Result<ChannelRecord, Status> {
    // Validation already ran; `None` cannot reach here, but stay total.
    let id = id.ok_or_else(|| invalid_field("channel_id", "must not be empty"))?;
    Ok(services.channels.get(&id).await?)
}

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
    let user = user.unwrap_or_default();
    let line = services.tokens.line(&record);
    let (profile, fetched) = services
        .lookups
        .get_or_fetch(&record, &profile_key(&user), || line.profile(&user))
        .await?;
    Ok(pb::GetProfileResponse {
        display_name: profile.display_name,
        user_id: profile.user_id,
        picture_url: profile.picture_url.unwrap_or_default(),
        status_message: profile.status_message.unwrap_or_default(),
        language: profile.language.unwrap_or_default(),
        fetch_time: Some(timestamp(fetched)),
    })
}

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
    let group = group.unwrap_or_default();
    let line = services.tokens.line(&record);
    let (summary, fetched) = services
        .lookups
        .get_or_fetch(&record, &group_key(&group), || line.group_summary(&group))
        .await?;
    Ok(pb::GetGroupSummaryResponse {
        group_id: summary.group_id,
        group_name: summary.group_name,
        picture_url: summary.picture_url.unwrap_or_default(),
        fetch_time: Some(timestamp(fetched)),
    })
}

pub async fn get_group_member_profile(
    services: &Services,
    request: pb::GetGroupMemberProfileRequest,
) -> Result<pb::GetGroupMemberProfileResponse, Status> {
    use pb::get_group_member_profile_request::Chat as Member;
    let pb::GetGroupMemberProfileRequest {
        channel_id: id,
        chat,
        user_id,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let chat = match &chat {
        Some(Member::GroupId(group)) => {
            path_id(&mut violations, "group_id", group).map(|g| ("group", g))
        }
        Some(Member::RoomId(room)) => {
            path_id(&mut violations, "room_id", room).map(|r| ("room", r))
        }
        None => {
            violations.add("chat", "must name a group_id or room_id");
            None
        }
    };
    let user = path_id(&mut violations, "user_id", &user_id);
    violations.into_result()?;
    let record = channel(services, id).await?;
    let (kind, chat_id) = chat.unwrap_or_default();
    let user = user.unwrap_or_default();
    let line = services.tokens.line(&record);
    let lookup = member_key(kind, &chat_id, &user);
    let (member, fetched) = services
        .lookups
        .get_or_fetch(&record, &lookup, || async {
            let chat = match kind {
                "room" => Chat::Room(&chat_id),
                _ => Chat::Group(&chat_id),
            };
            line.member_profile(chat, &user).await
        })
        .await?;
    Ok(pb::GetGroupMemberProfileResponse {
        display_name: member.display_name,
        user_id: member.user_id,
        picture_url: member.picture_url.unwrap_or_default(),
        fetch_time: Some(timestamp(fetched)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(value: &str) -> Result<String, String> {
        let mut violations = Violations::new();
        match path_id(&mut violations, "user_id", value) {
            Some(id) => Ok(id),
            None => Err(violations.into_result().unwrap_err().message().to_owned()),
        }
    }

    #[test]
    fn lookup_ids_are_refused_when_they_could_be_a_path() {
        assert_eq!(checked("U4af4980629abcdef").unwrap(), "U4af4980629abcdef");
        assert_eq!(checked("a/b?c#d").unwrap(), "a/b?c#d");
        assert_eq!(checked("a..b").unwrap(), "a..b");
        for bad in ["", ".", "..", "a b", "é"] {
            assert!(checked(bad).is_err(), "{bad:?}");
        }
    }
}
