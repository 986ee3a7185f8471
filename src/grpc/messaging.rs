//! `weiyu.line.v1.Messaging`. Subscribe and Ack stream the inbound event
//! log (see `subscribe.rs`); sends go through the outbox (see `send.rs`).
//! Lookups and media arrive in later versions; until then those RPCs answer
//! UNIMPLEMENTED with a message saying so, never a fake success.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::{Core, status::not_yet};
use crate::proto::v1::{self as pb, messaging_server::Messaging};

type ServerStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

const LOOKUPS: &str = "calls to LINE's profile and chat APIs";

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
        let services = self.core.services()?;
        Ok(Response::new(
            super::send::send(services, request.into_inner()).await?,
        ))
    }

    async fn reply(
        &self,
        request: Request<pb::ReplyRequest>,
    ) -> Result<Response<pb::ReplyResponse>, Status> {
        let services = self.core.services()?;
        Ok(Response::new(
            super::send::reply(services, request.into_inner()).await?,
        ))
    }

    async fn push(
        &self,
        request: Request<pb::PushRequest>,
    ) -> Result<Response<pb::PushResponse>, Status> {
        let services = self.core.services()?;
        Ok(Response::new(
            super::send::push(services, request.into_inner()).await?,
        ))
    }

    async fn multicast(
        &self,
        request: Request<pb::MulticastRequest>,
    ) -> Result<Response<pb::MulticastResponse>, Status> {
        let services = self.core.services()?;
        Ok(Response::new(
            super::send::multicast(services, request.into_inner()).await?,
        ))
    }

    async fn broadcast(
        &self,
        request: Request<pb::BroadcastRequest>,
    ) -> Result<Response<pb::BroadcastResponse>, Status> {
        let services = self.core.services()?;
        Ok(Response::new(
            super::send::broadcast(services, request.into_inner()).await?,
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

    type GetMessageContentStream = ServerStream<pb::GetMessageContentResponse>;

    async fn get_message_content(
        &self,
        _request: Request<pb::GetMessageContentRequest>,
    ) -> Result<Response<Self::GetMessageContentStream>, Status> {
        Err(not_yet(
            "Messaging.GetMessageContent",
            "fetching and keeping inbound media",
        ))
    }

    async fn get_profile(
        &self,
        _request: Request<pb::GetProfileRequest>,
    ) -> Result<Response<pb::GetProfileResponse>, Status> {
        Err(not_yet("Messaging.GetProfile", LOOKUPS))
    }

    async fn get_group_summary(
        &self,
        _request: Request<pb::GetGroupSummaryRequest>,
    ) -> Result<Response<pb::GetGroupSummaryResponse>, Status> {
        Err(not_yet("Messaging.GetGroupSummary", LOOKUPS))
    }

    async fn get_group_member_profile(
        &self,
        _request: Request<pb::GetGroupMemberProfileRequest>,
    ) -> Result<Response<pb::GetGroupMemberProfileResponse>, Status> {
        Err(not_yet("Messaging.GetGroupMemberProfile", LOOKUPS))
    }

    async fn show_loading_animation(
        &self,
        _request: Request<pb::ShowLoadingAnimationRequest>,
    ) -> Result<Response<pb::ShowLoadingAnimationResponse>, Status> {
        Err(not_yet("Messaging.ShowLoadingAnimation", LOOKUPS))
    }

    async fn mark_as_read(
        &self,
        _request: Request<pb::MarkAsReadRequest>,
    ) -> Result<Response<pb::MarkAsReadResponse>, Status> {
        Err(not_yet("Messaging.MarkAsRead", LOOKUPS))
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
