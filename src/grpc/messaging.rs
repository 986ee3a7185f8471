//! `weiyu.line.v1.Messaging`. Subscribe and Ack stream the inbound event
//! log (see `subscribe.rs`); sends go through the outbox (see `send.rs`);
//! media is served from the kept copy or LINE (see `content.rs`); agents'
//! attachments are uploaded here and named by sends (`attachments.rs`); profile
//! and group lookups (cached, `lookup.rs`), the loading animation and
//! mark-as-read (`chat.rs`) call LINE directly, and their errors name the
//! RPC.

use tonic::{Request, Response, Status};

use super::{Core, status::in_rpc};
use crate::proto::v1::{self as pb, messaging_server::Messaging};

#[derive(Clone)]
pub struct MessagingService {
    core: Core,
}

impl MessagingService {
    pub fn new(core: Core) -> Self {
        Self { core }
    }
}

#[tonic::async_trait]
impl Messaging for MessagingService {
    async fn send(
        &self,
        request: Request<pb::SendRequest>,
    ) -> Result<Response<pb::SendResponse>, Status> {
        let services = self.core.writable()?;
        Ok(Response::new(
            super::send::send(services, request.into_inner()).await?,
        ))
    }

    async fn reply(
        &self,
        request: Request<pb::ReplyRequest>,
    ) -> Result<Response<pb::ReplyResponse>, Status> {
        let services = self.core.writable()?;
        Ok(Response::new(
            super::send::reply(services, request.into_inner()).await?,
        ))
    }

    async fn push(
        &self,
        request: Request<pb::PushRequest>,
    ) -> Result<Response<pb::PushResponse>, Status> {
        let services = self.core.writable()?;
        Ok(Response::new(
            super::send::push(services, request.into_inner()).await?,
        ))
    }

    async fn multicast(
        &self,
        request: Request<pb::MulticastRequest>,
    ) -> Result<Response<pb::MulticastResponse>, Status> {
        let services = self.core.writable()?;
        Ok(Response::new(
            super::send::multicast(services, request.into_inner()).await?,
        ))
    }

    async fn broadcast(
        &self,
        request: Request<pb::BroadcastRequest>,
    ) -> Result<Response<pb::BroadcastResponse>, Status> {
        let services = self.core.writable()?;
        Ok(Response::new(
            super::send::broadcast(services, request.into_inner()).await?,
        ))
    }

    async fn narrowcast(
        &self,
        request: Request<pb::NarrowcastRequest>,
    ) -> Result<Response<pb::NarrowcastResponse>, Status> {
        let services = self.core.writable()?;
        Ok(Response::new(
            super::narrowcast::narrowcast(services, request.into_inner()).await?,
        ))
    }

    async fn get_delivery(
        &self,
        request: Request<pb::GetDeliveryRequest>,
    ) -> Result<Response<pb::GetDeliveryResponse>, Status> {
        let services = self.core.services()?;
        Ok(Response::new(
            super::send::get_delivery(services, request.into_inner()).await?,
        ))
    }

    async fn list_deliveries(
        &self,
        request: Request<pb::ListDeliveriesRequest>,
    ) -> Result<Response<pb::ListDeliveriesResponse>, Status> {
        let services = self.core.services()?;
        Ok(Response::new(
            super::deliveries::list_deliveries(services, request.into_inner()).await?,
        ))
    }

    type GetMessageContentStream = super::content::ContentStream;

    async fn get_message_content(
        &self,
        request: Request<pb::GetMessageContentRequest>,
    ) -> Result<Response<Self::GetMessageContentStream>, Status> {
        let services = self.core.services()?;
        let stream = super::content::get_message_content(services, request.into_inner())
            .await
            .map_err(in_rpc("GetMessageContent"))?;
        Ok(Response::new(stream))
    }

    async fn upload_media(
        &self,
        request: Request<tonic::Streaming<pb::UploadMediaRequest>>,
    ) -> Result<Response<pb::UploadMediaResponse>, Status> {
        let services = self.core.writable()?;
        Ok(Response::new(
            super::attachments::upload_media(services, request.into_inner()).await?,
        ))
    }

    async fn get_profile(
        &self,
        request: Request<pb::GetProfileRequest>,
    ) -> Result<Response<pb::GetProfileResponse>, Status> {
        let services = self.core.services()?;
        Ok(Response::new(
            super::lookup::get_profile(services, request.into_inner())
                .await
                .map_err(in_rpc("GetProfile"))?,
        ))
    }

    async fn get_group_summary(
        &self,
        request: Request<pb::GetGroupSummaryRequest>,
    ) -> Result<Response<pb::GetGroupSummaryResponse>, Status> {
        let services = self.core.services()?;
        Ok(Response::new(
            super::lookup::get_group_summary(services, request.into_inner())
                .await
                .map_err(in_rpc("GetGroupSummary"))?,
        ))
    }

    async fn get_group_member_profile(
        &self,
        request: Request<pb::GetGroupMemberProfileRequest>,
    ) -> Result<Response<pb::GetGroupMemberProfileResponse>, Status> {
        let services = self.core.services()?;
        Ok(Response::new(
            super::lookup::get_group_member_profile(services, request.into_inner())
                .await
                .map_err(in_rpc("GetGroupMemberProfile"))?,
        ))
    }

    async fn show_loading_animation(
        &self,
        request: Request<pb::ShowLoadingAnimationRequest>,
    ) -> Result<Response<pb::ShowLoadingAnimationResponse>, Status> {
        let services = self.core.services()?;
        Ok(Response::new(
            super::chat::show_loading_animation(services, request.into_inner())
                .await
                .map_err(in_rpc("ShowLoadingAnimation"))?,
        ))
    }

    async fn mark_as_read(
        &self,
        request: Request<pb::MarkAsReadRequest>,
    ) -> Result<Response<pb::MarkAsReadResponse>, Status> {
        let services = self.core.services()?;
        Ok(Response::new(
            super::chat::mark_as_read(services, request.into_inner())
                .await
                .map_err(in_rpc("MarkAsRead"))?,
        ))
    }

    async fn validate_messages(
        &self,
        request: Request<pb::ValidateMessagesRequest>,
    ) -> Result<Response<pb::ValidateMessagesResponse>, Status> {
        let services = self.core.services()?;
        Ok(Response::new(
            super::send::validate_messages(services, request.into_inner())
                .await
                .map_err(in_rpc("ValidateMessages"))?,
        ))
    }

    type SubscribeStream = super::subscribe::SubscribeStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let services = self.core.services()?;
        let stream = super::subscribe::subscribe(services, request.into_inner()).await?;
        Ok(Response::new(stream))
    }

    async fn ack(
        &self,
        request: Request<pb::AckRequest>,
    ) -> Result<Response<pb::AckResponse>, Status> {
        let services = self.core.services()?;
        Ok(Response::new(
            super::subscribe::ack(services, request.into_inner()).await?,
        ))
    }
}
