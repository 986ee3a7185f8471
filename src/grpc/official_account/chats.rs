//! Groups and rooms the bot is in: their members' ids (paged by LINE's
//! `next`), how many members, and leaving. The `leave` webhook LINE sends
//! after LeaveChat flows through `inbound` like any other event.

use tonic::Status;

use super::{Violations, channel_id, chat_of, line_for, rich_menus::unrecorded};
use crate::{
    grpc::status::verified_accounts_only, line::api::Chat, proto::v1 as pb, services::Services,
};

/// LINE's continuation tokens are opaque; this bounds what we pass on.
const MAX_PAGE_TOKEN: usize = 1024;

/// A `next` token of LINE's, as a caller hands it back: printable ASCII.
pub(super) fn page_token(violations: &mut Violations, value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    if value.len() > MAX_PAGE_TOKEN || !value.bytes().all(|b| b.is_ascii_graphic()) {
        violations.add(
            "page_token",
            "must be a next_page_token returned by the previous page",
        );
        return None;
    }
    Some(value.to_owned())
}

fn chat(group: bool, id: &str) -> Chat<'_> {
    if group {
        Chat::Group(id)
    } else {
        Chat::Room(id)
    }
}

pub async fn get_chat_member_ids(
    services: &Services,
    request: pb::GetChatMemberIdsRequest,
) -> Result<pb::GetChatMemberIdsResponse, Status> {
    use pb::get_chat_member_ids_request::Chat as Which;
    let pb::GetChatMemberIdsRequest {
        channel_id: id,
        chat: which,
        page_token: token,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let which = chat_of(
        &mut violations,
        which.as_ref().map(|which| match which {
            Which::GroupId(group) => (true, group.as_str()),
            Which::RoomId(room) => (false, room.as_str()),
        }),
    );
    let token = page_token(&mut violations, &token);
    violations.into_result()?;
    let (group, chat_id) = which.ok_or_else(unrecorded)?;
    let page = line_for(services, id)
        .await?
        .chat_member_ids(chat(group, &chat_id), token.as_deref())
        .await
        .map_err(verified_accounts_only)?;
    Ok(pb::GetChatMemberIdsResponse {
        member_ids: page.ids,
        next_page_token: page.next.unwrap_or_default(),
    })
}

pub async fn get_chat_member_count(
    services: &Services,
    request: pb::GetChatMemberCountRequest,
) -> Result<pb::GetChatMemberCountResponse, Status> {
    use pb::get_chat_member_count_request::Chat as Which;
    let pb::GetChatMemberCountRequest {
        channel_id: id,
        chat: which,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let which = chat_of(
        &mut violations,
        which.as_ref().map(|which| match which {
            Which::GroupId(group) => (true, group.as_str()),
            Which::RoomId(room) => (false, room.as_str()),
        }),
    );
    violations.into_result()?;
    let (group, chat_id) = which.ok_or_else(unrecorded)?;
    let count = line_for(services, id)
        .await?
        .chat_member_count(chat(group, &chat_id))
        .await?;
    Ok(pb::GetChatMemberCountResponse {
        count: i32::try_from(count).unwrap_or(i32::MAX),
    })
}

pub async fn leave_chat(
    services: &Services,
    request: pb::LeaveChatRequest,
) -> Result<pb::LeaveChatResponse, Status> {
    use pb::leave_chat_request::Chat as Which;
    let pb::LeaveChatRequest {
        channel_id: id,
        chat: which,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let which = chat_of(
        &mut violations,
        which.as_ref().map(|which| match which {
            Which::GroupId(group) => (true, group.as_str()),
            Which::RoomId(room) => (false, room.as_str()),
        }),
    );
    violations.into_result()?;
    let (group, chat_id) = which.ok_or_else(unrecorded)?;
    line_for(services, id)
        .await?
        .leave_chat(chat(group, &chat_id))
        .await?;
    Ok(pb::LeaveChatResponse {})
}
