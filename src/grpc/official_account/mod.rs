//! `weiyu.line.v1.OfficialAccount`: the dispatch table into
//! [`rich_menus`] (menus, the default, links, aliases, batches),
//! [`images`] (a menu's image, up and down, checked before LINE sees it),
//! [`publish`] (create + image + alias + default, undone on failure),
//! [`chats`] (groups and rooms), [`insight`] (followers and LINE's
//! statistics), [`audiences`] (for narrowcasts) and [`linking`] (account
//! link tokens). Every RPC is LINE's state reached through `line::api`;
//! nothing is kept here. Errors name the RPC (`status::in_rpc`).

mod audiences;
mod chats;
mod images;
mod insight;
mod linking;
mod publish;
mod rich_menus;

use tonic::{Request, Response, Status, Streaming};

use super::{
    Core,
    lookup::{channel, channel_id, path_id},
    status::{Violations, in_rpc},
};
use crate::{
    line::ChannelClient,
    proto::v1::{self as pb, official_account_server::OfficialAccount},
    services::Services,
    tokens::ChannelTokens,
};

/// The channel's LINE client, after the request's fields passed: the
/// channel named by `id` (already validated) must exist.
async fn line_for(
    services: &Services,
    id: Option<String>,
) -> Result<ChannelClient<ChannelTokens>, Status> {
    let record = channel(services, id).await?;
    Ok(services.tokens.line(&record))
}

/// Validates `channel_id` alone (RPCs with no other field).
fn only_channel(value: &str) -> Result<Option<String>, Status> {
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, value);
    violations.into_result()?;
    Ok(id)
}

/// One of a `group_id` / `room_id` oneof, checked as a path segment.
fn chat_of(violations: &mut Violations, chat: Option<(bool, &str)>) -> Option<(bool, String)> {
    match chat {
        Some((true, group)) => path_id(violations, "group_id", group).map(|g| (true, g)),
        Some((false, room)) => path_id(violations, "room_id", room).map(|r| (false, r)),
        None => {
            violations.add("chat", "must name a group_id or room_id");
            None
        }
    }
}

#[derive(Clone)]
pub struct OfficialAccountService {
    core: Core,
}

impl OfficialAccountService {
    pub fn new(core: Core) -> Self {
        Self { core }
    }
}

/// A unary RPC: the services (UNAVAILABLE until the store is open), the
/// handler, and the RPC's name on any error.
macro_rules! unary {
    ($self:ident, $request:ident, $rpc:literal, $handler:path) => {{
        let services = $self.core.services()?;
        $handler(services, $request.into_inner())
            .await
            .map(Response::new)
            .map_err(in_rpc($rpc))
    }};
}

#[tonic::async_trait]
impl OfficialAccount for OfficialAccountService {
    async fn create_rich_menu(
        &self,
        request: Request<pb::CreateRichMenuRequest>,
    ) -> Result<Response<pb::CreateRichMenuResponse>, Status> {
        unary!(
            self,
            request,
            "CreateRichMenu",
            rich_menus::create_rich_menu
        )
    }

    async fn get_rich_menu(
        &self,
        request: Request<pb::GetRichMenuRequest>,
    ) -> Result<Response<pb::GetRichMenuResponse>, Status> {
        unary!(self, request, "GetRichMenu", rich_menus::get_rich_menu)
    }

    async fn list_rich_menus(
        &self,
        request: Request<pb::ListRichMenusRequest>,
    ) -> Result<Response<pb::ListRichMenusResponse>, Status> {
        unary!(self, request, "ListRichMenus", rich_menus::list_rich_menus)
    }

    async fn delete_rich_menu(
        &self,
        request: Request<pb::DeleteRichMenuRequest>,
    ) -> Result<Response<pb::DeleteRichMenuResponse>, Status> {
        unary!(
            self,
            request,
            "DeleteRichMenu",
            rich_menus::delete_rich_menu
        )
    }

    async fn set_rich_menu_image(
        &self,
        request: Request<Streaming<pb::SetRichMenuImageRequest>>,
    ) -> Result<Response<pb::SetRichMenuImageResponse>, Status> {
        unary!(
            self,
            request,
            "SetRichMenuImage",
            images::set_rich_menu_image
        )
    }

    type GetRichMenuImageStream = images::ImageStream;

    async fn get_rich_menu_image(
        &self,
        request: Request<pb::GetRichMenuImageRequest>,
    ) -> Result<Response<Self::GetRichMenuImageStream>, Status> {
        unary!(
            self,
            request,
            "GetRichMenuImage",
            images::get_rich_menu_image
        )
    }

    async fn set_default_rich_menu(
        &self,
        request: Request<pb::SetDefaultRichMenuRequest>,
    ) -> Result<Response<pb::SetDefaultRichMenuResponse>, Status> {
        unary!(
            self,
            request,
            "SetDefaultRichMenu",
            rich_menus::set_default_rich_menu
        )
    }

    async fn get_default_rich_menu(
        &self,
        request: Request<pb::GetDefaultRichMenuRequest>,
    ) -> Result<Response<pb::GetDefaultRichMenuResponse>, Status> {
        unary!(
            self,
            request,
            "GetDefaultRichMenu",
            rich_menus::get_default_rich_menu
        )
    }

    async fn clear_default_rich_menu(
        &self,
        request: Request<pb::ClearDefaultRichMenuRequest>,
    ) -> Result<Response<pb::ClearDefaultRichMenuResponse>, Status> {
        unary!(
            self,
            request,
            "ClearDefaultRichMenu",
            rich_menus::clear_default_rich_menu
        )
    }

    async fn link_rich_menu(
        &self,
        request: Request<pb::LinkRichMenuRequest>,
    ) -> Result<Response<pb::LinkRichMenuResponse>, Status> {
        unary!(self, request, "LinkRichMenu", rich_menus::link_rich_menu)
    }

    async fn unlink_rich_menu(
        &self,
        request: Request<pb::UnlinkRichMenuRequest>,
    ) -> Result<Response<pb::UnlinkRichMenuResponse>, Status> {
        unary!(
            self,
            request,
            "UnlinkRichMenu",
            rich_menus::unlink_rich_menu
        )
    }

    async fn get_user_rich_menu(
        &self,
        request: Request<pb::GetUserRichMenuRequest>,
    ) -> Result<Response<pb::GetUserRichMenuResponse>, Status> {
        unary!(
            self,
            request,
            "GetUserRichMenu",
            rich_menus::get_user_rich_menu
        )
    }

    async fn create_rich_menu_alias(
        &self,
        request: Request<pb::CreateRichMenuAliasRequest>,
    ) -> Result<Response<pb::CreateRichMenuAliasResponse>, Status> {
        unary!(
            self,
            request,
            "CreateRichMenuAlias",
            rich_menus::create_rich_menu_alias
        )
    }

    async fn update_rich_menu_alias(
        &self,
        request: Request<pb::UpdateRichMenuAliasRequest>,
    ) -> Result<Response<pb::UpdateRichMenuAliasResponse>, Status> {
        unary!(
            self,
            request,
            "UpdateRichMenuAlias",
            rich_menus::update_rich_menu_alias
        )
    }

    async fn delete_rich_menu_alias(
        &self,
        request: Request<pb::DeleteRichMenuAliasRequest>,
    ) -> Result<Response<pb::DeleteRichMenuAliasResponse>, Status> {
        unary!(
            self,
            request,
            "DeleteRichMenuAlias",
            rich_menus::delete_rich_menu_alias
        )
    }

    async fn list_rich_menu_aliases(
        &self,
        request: Request<pb::ListRichMenuAliasesRequest>,
    ) -> Result<Response<pb::ListRichMenuAliasesResponse>, Status> {
        unary!(
            self,
            request,
            "ListRichMenuAliases",
            rich_menus::list_rich_menu_aliases
        )
    }

    async fn start_rich_menu_batch(
        &self,
        request: Request<pb::StartRichMenuBatchRequest>,
    ) -> Result<Response<pb::StartRichMenuBatchResponse>, Status> {
        unary!(
            self,
            request,
            "StartRichMenuBatch",
            rich_menus::start_rich_menu_batch
        )
    }

    async fn get_rich_menu_batch_progress(
        &self,
        request: Request<pb::GetRichMenuBatchProgressRequest>,
    ) -> Result<Response<pb::GetRichMenuBatchProgressResponse>, Status> {
        unary!(
            self,
            request,
            "GetRichMenuBatchProgress",
            rich_menus::get_rich_menu_batch_progress
        )
    }

    async fn publish_rich_menu(
        &self,
        request: Request<pb::PublishRichMenuRequest>,
    ) -> Result<Response<pb::PublishRichMenuResponse>, Status> {
        unary!(self, request, "PublishRichMenu", publish::publish_rich_menu)
    }

    async fn get_chat_member_ids(
        &self,
        request: Request<pb::GetChatMemberIdsRequest>,
    ) -> Result<Response<pb::GetChatMemberIdsResponse>, Status> {
        unary!(
            self,
            request,
            "GetChatMemberIds",
            chats::get_chat_member_ids
        )
    }

    async fn get_chat_member_count(
        &self,
        request: Request<pb::GetChatMemberCountRequest>,
    ) -> Result<Response<pb::GetChatMemberCountResponse>, Status> {
        unary!(
            self,
            request,
            "GetChatMemberCount",
            chats::get_chat_member_count
        )
    }

    async fn leave_chat(
        &self,
        request: Request<pb::LeaveChatRequest>,
    ) -> Result<Response<pb::LeaveChatResponse>, Status> {
        unary!(self, request, "LeaveChat", chats::leave_chat)
    }

    async fn get_follower_ids(
        &self,
        request: Request<pb::GetFollowerIdsRequest>,
    ) -> Result<Response<pb::GetFollowerIdsResponse>, Status> {
        unary!(self, request, "GetFollowerIds", insight::get_follower_ids)
    }

    async fn get_follower_stats(
        &self,
        request: Request<pb::GetFollowerStatsRequest>,
    ) -> Result<Response<pb::GetFollowerStatsResponse>, Status> {
        unary!(
            self,
            request,
            "GetFollowerStats",
            insight::get_follower_stats
        )
    }

    async fn get_friends_demographics(
        &self,
        request: Request<pb::GetFriendsDemographicsRequest>,
    ) -> Result<Response<pb::GetFriendsDemographicsResponse>, Status> {
        unary!(
            self,
            request,
            "GetFriendsDemographics",
            insight::get_friends_demographics
        )
    }

    async fn get_message_delivery_stats(
        &self,
        request: Request<pb::GetMessageDeliveryStatsRequest>,
    ) -> Result<Response<pb::GetMessageDeliveryStatsResponse>, Status> {
        unary!(
            self,
            request,
            "GetMessageDeliveryStats",
            insight::get_message_delivery_stats
        )
    }

    async fn get_message_event_stats(
        &self,
        request: Request<pb::GetMessageEventStatsRequest>,
    ) -> Result<Response<pb::GetMessageEventStatsResponse>, Status> {
        unary!(
            self,
            request,
            "GetMessageEventStats",
            insight::get_message_event_stats
        )
    }

    async fn get_unit_stats(
        &self,
        request: Request<pb::GetUnitStatsRequest>,
    ) -> Result<Response<pb::GetUnitStatsResponse>, Status> {
        unary!(self, request, "GetUnitStats", insight::get_unit_stats)
    }

    async fn get_rich_menu_stats(
        &self,
        request: Request<pb::GetRichMenuStatsRequest>,
    ) -> Result<Response<pb::GetRichMenuStatsResponse>, Status> {
        unary!(
            self,
            request,
            "GetRichMenuStats",
            insight::get_rich_menu_stats
        )
    }

    async fn list_aggregation_units(
        &self,
        request: Request<pb::ListAggregationUnitsRequest>,
    ) -> Result<Response<pb::ListAggregationUnitsResponse>, Status> {
        unary!(
            self,
            request,
            "ListAggregationUnits",
            insight::list_aggregation_units
        )
    }

    async fn create_audience(
        &self,
        request: Request<pb::CreateAudienceRequest>,
    ) -> Result<Response<pb::CreateAudienceResponse>, Status> {
        unary!(self, request, "CreateAudience", audiences::create_audience)
    }

    async fn add_to_audience(
        &self,
        request: Request<pb::AddToAudienceRequest>,
    ) -> Result<Response<pb::AddToAudienceResponse>, Status> {
        unary!(self, request, "AddToAudience", audiences::add_to_audience)
    }

    async fn list_audiences(
        &self,
        request: Request<pb::ListAudiencesRequest>,
    ) -> Result<Response<pb::ListAudiencesResponse>, Status> {
        unary!(self, request, "ListAudiences", audiences::list_audiences)
    }

    async fn get_audience(
        &self,
        request: Request<pb::GetAudienceRequest>,
    ) -> Result<Response<pb::GetAudienceResponse>, Status> {
        unary!(self, request, "GetAudience", audiences::get_audience)
    }

    async fn delete_audience(
        &self,
        request: Request<pb::DeleteAudienceRequest>,
    ) -> Result<Response<pb::DeleteAudienceResponse>, Status> {
        unary!(self, request, "DeleteAudience", audiences::delete_audience)
    }

    async fn issue_link_token(
        &self,
        request: Request<pb::IssueLinkTokenRequest>,
    ) -> Result<Response<pb::IssueLinkTokenResponse>, Status> {
        unary!(self, request, "IssueLinkToken", linking::issue_link_token)
    }
}
