//! `weiyu.line.v1.Messaging`. Inbound streaming, sending and lookups arrive
//! in later versions; until then every RPC answers UNIMPLEMENTED with a
//! message saying so, never a fake success.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::{Core, status::not_yet};
use crate::proto::v1::{self as pb, messaging_server::Messaging};

type ServerStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

const SENDING: &str = "sending messages to LINE";
const LOOKUPS: &str = "calls to LINE's profile and chat APIs";

#[derive(Clone)]
pub struct MessagingService {
    #[allow(dead_code)] // used as the RPCs below are implemented
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
        _request: Request<pb::SendRequest>,
    ) -> Result<Response<pb::SendResponse>, Status> {
        Err(not_yet("Messaging.Send", SENDING))
    }

    async fn reply(
        &self,
        _request: Request<pb::ReplyRequest>,
    ) -> Result<Response<pb::ReplyResponse>, Status> {
        Err(not_yet("Messaging.Reply", SENDING))
    }

    async fn push(
        &self,
        _request: Request<pb::PushRequest>,
    ) -> Result<Response<pb::PushResponse>, Status> {
        Err(not_yet("Messaging.Push", SENDING))
    }

    async fn multicast(
        &self,
        _request: Request<pb::MulticastRequest>,
    ) -> Result<Response<pb::MulticastResponse>, Status> {
        Err(not_yet("Messaging.Multicast", SENDING))
    }

    async fn broadcast(
        &self,
        _request: Request<pb::BroadcastRequest>,
    ) -> Result<Response<pb::BroadcastResponse>, Status> {
        Err(not_yet("Messaging.Broadcast", SENDING))
    }

    async fn get_delivery(
        &self,
        _request: Request<pb::GetDeliveryRequest>,
    ) -> Result<Response<pb::GetDeliveryResponse>, Status> {
        Err(not_yet("Messaging.GetDelivery", SENDING))
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

    type SubscribeStream = ServerStream<pb::SubscribeResponse>;

    async fn subscribe(
        &self,
        _request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Err(not_yet(
            "Messaging.Subscribe",
            "receiving LINE webhooks and streaming their events",
        ))
    }

    async fn ack(
        &self,
        _request: Request<pb::AckRequest>,
    ) -> Result<Response<pb::AckResponse>, Status> {
        Err(not_yet(
            "Messaging.Ack",
            "receiving LINE webhooks and streaming their events",
        ))
    }
}
