//! `weiyu.line.v1.ChannelAdmin`: the dispatch table into [`channels`],
//! [`webhook`], [`tokens`] and [`quota`]. Each handler validates, converts
//! (destructuring every field so a new proto field breaks the build there)
//! and calls the domain.

mod channels;
mod quota;
mod tokens;
mod webhook;

use tonic::{Request, Response, Status};

use super::{
    Core, RequestAuthority,
    page_token::PageTokens,
    status::{Violations, in_rpc, invalid_field},
};
use crate::{
    channels::{ChannelChanges, NewChannel, validate},
    proto::v1::{self as pb, channel_admin_server::ChannelAdmin},
    secret::Secret,
    store::{ChannelRecord, TokenMode},
    time::timestamp,
    tokens::TokenStatus,
};

const DEFAULT_PAGE_SIZE: i32 = 100;
const MAX_PAGE_SIZE: i32 = 1000;
/// Longest grace period for a replaced channel secret.
const MAX_SECRET_GRACE_SECS: i64 = 7 * 24 * 3600;
/// Field-mask paths UpdateChannel accepts.
const UPDATE_PATHS: &[&str] = &[
    "display_name",
    "line_channel_id",
    "channel_secret",
    "channel_access_token",
    "token_mode",
];
/// ListChannels' pages start after the previous page's last channel.
const PAGE_TOKENS: PageTokens = PageTokens {
    prefix: "after:",
    rpc: "ListChannels",
    valid: |id| validate::channel_id(id).is_ok(),
};

#[derive(Clone)]
pub struct AdminService {
    core: Core,
}

impl AdminService {
    pub fn new(core: Core) -> Self {
        Self { core }
    }

    fn to_proto(&self, record: &ChannelRecord) -> pb::Channel {
        let ChannelRecord {
            id,
            version: _,
            display_name,
            line_channel_id,
            channel_secret,
            previous_channel_secret: _,
            token_mode,
            access_token,
            key_pair: _,
            pending_key_pair: _,
            previous_key_pair: _,
            create_time_ms,
            update_time_ms,
        } = record;
        pb::Channel {
            id: id.clone(),
            display_name: display_name.clone(),
            line_channel_id: line_channel_id.clone(),
            has_channel_secret: true,
            channel_secret_fingerprint: channel_secret.fingerprint.clone(),
            token_mode: token_mode_to_proto(*token_mode) as i32,
            has_access_token: access_token.is_some(),
            access_token_fingerprint: access_token
                .as_ref()
                .map(|t| t.fingerprint.clone())
                .unwrap_or_default(),
            kid: record.kid().unwrap_or_default().to_owned(),
            webhook_url: self
                .core
                .settings
                .public_base_url
                .as_ref()
                .map(|base| webhook_url(base.as_str(), id))
                .unwrap_or_default(),
            create_time: Some(timestamp(*create_time_ms)),
            update_time: Some(timestamp(*update_time_ms)),
        }
    }
}

impl AdminService {
    /// The channel as shown to callers: for issued token modes, the token
    /// fields describe the token in use (one store read).
    async fn view(&self, record: &ChannelRecord) -> pb::Channel {
        let mut channel = self.to_proto(record);
        if record.token_mode != TokenMode::LongLived
            && let Ok(services) = self.core.services()
        {
            match services.tokens.status(record).await {
                // The issued token in use; else a pasted one kept aside.
                Ok(status) if status.has_token => {
                    channel.has_access_token = true;
                    channel.access_token_fingerprint = status.fingerprint;
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(channel = %record.id, error = %err, "cannot read the token state")
                }
            }
        }
        channel
    }
}

/// LINE's days (yyyyMMdd, UTC+9), which OfficialAccount's statistics take too.
pub(crate) use quota::{sent_date, yesterday_in_utc9};
pub use webhook::webhook_url;

fn token_mode_to_proto(mode: TokenMode) -> pb::TokenMode {
    match mode {
        TokenMode::LongLived => pb::TokenMode::LongLived,
        TokenMode::ShortLivedV2 => pb::TokenMode::ShortLivedV2,
        TokenMode::V21Jwt => pb::TokenMode::V21Jwt,
        TokenMode::StatelessV3 => pb::TokenMode::StatelessV3,
    }
}

fn token_status_to_proto(status: TokenStatus) -> pb::TokenStatus {
    let TokenStatus {
        mode,
        kid,
        has_token,
        fingerprint,
        issue_time_ms,
        expire_time_ms,
        refresh_time_ms,
        last_error,
    } = status;
    pb::TokenStatus {
        mode: mode.map_or(pb::TokenMode::Unspecified, token_mode_to_proto) as i32,
        kid,
        has_token,
        token_fingerprint: fingerprint,
        issue_time: issue_time_ms.map(timestamp),
        expire_time: expire_time_ms.map(timestamp),
        refresh_time: refresh_time_ms.map(timestamp),
        last_refresh_error_time: last_error.as_ref().map(|e| timestamp(e.time_ms)),
        last_refresh_error: last_error.map(|e| e.message).unwrap_or_default(),
    }
}

/// `Ok(None)` for UNSPECIFIED; an unknown number is refused.
fn token_mode_from_proto(value: i32) -> Result<Option<TokenMode>, String> {
    match pb::TokenMode::try_from(value) {
        Ok(pb::TokenMode::Unspecified) => Ok(None),
        Ok(pb::TokenMode::LongLived) => Ok(Some(TokenMode::LongLived)),
        Ok(pb::TokenMode::ShortLivedV2) => Ok(Some(TokenMode::ShortLivedV2)),
        Ok(pb::TokenMode::V21Jwt) => Ok(Some(TokenMode::V21Jwt)),
        Ok(pb::TokenMode::StatelessV3) => Ok(Some(TokenMode::StatelessV3)),
        Err(_) => Err(format!("{value} is not a TokenMode value")),
    }
}

/// A field rule returned nothing without recording why: a bug here, not in
/// the request. Answered as INTERNAL rather than a panic in the handler.
fn unrecorded_violation() -> Status {
    tracing::error!("a request field was refused without a recorded violation");
    Status::internal("request validation failed unexpectedly")
}

fn channel_id(value: &str) -> Result<String, Status> {
    validate::channel_id(value).map_err(|reason| invalid_field("channel_id", reason))
}

#[tonic::async_trait]
impl ChannelAdmin for AdminService {
    async fn create_channel(
        &self,
        request: Request<pb::CreateChannelRequest>,
    ) -> Result<Response<pb::CreateChannelResponse>, Status> {
        channels::create_channel(self, request).await
    }

    async fn get_channel(
        &self,
        request: Request<pb::GetChannelRequest>,
    ) -> Result<Response<pb::GetChannelResponse>, Status> {
        channels::get_channel(self, request).await
    }

    async fn list_channels(
        &self,
        request: Request<pb::ListChannelsRequest>,
    ) -> Result<Response<pb::ListChannelsResponse>, Status> {
        channels::list_channels(self, request).await
    }

    async fn update_channel(
        &self,
        request: Request<pb::UpdateChannelRequest>,
    ) -> Result<Response<pb::UpdateChannelResponse>, Status> {
        channels::update_channel(self, request).await
    }

    async fn delete_channel(
        &self,
        request: Request<pb::DeleteChannelRequest>,
    ) -> Result<Response<pb::DeleteChannelResponse>, Status> {
        channels::delete_channel(self, request).await
    }

    async fn get_bot_info(
        &self,
        request: Request<pb::GetBotInfoRequest>,
    ) -> Result<Response<pb::GetBotInfoResponse>, Status> {
        channels::get_bot_info(self, request)
            .await
            .map_err(in_rpc("GetBotInfo"))
    }

    async fn get_webhook_url(
        &self,
        request: Request<pb::GetWebhookUrlRequest>,
    ) -> Result<Response<pb::GetWebhookUrlResponse>, Status> {
        webhook::get_webhook_url(self, request).await
    }

    async fn register_webhook(
        &self,
        request: Request<pb::RegisterWebhookRequest>,
    ) -> Result<Response<pb::RegisterWebhookResponse>, Status> {
        webhook::register_webhook(self, request)
            .await
            .map_err(in_rpc("RegisterWebhook"))
    }

    async fn generate_key_pair(
        &self,
        request: Request<pb::GenerateKeyPairRequest>,
    ) -> Result<Response<pb::GenerateKeyPairResponse>, Status> {
        tokens::generate_key_pair(self, request).await
    }

    async fn set_kid(
        &self,
        request: Request<pb::SetKidRequest>,
    ) -> Result<Response<pb::SetKidResponse>, Status> {
        tokens::set_kid(self, request).await
    }

    async fn rotate_access_token(
        &self,
        request: Request<pb::RotateAccessTokenRequest>,
    ) -> Result<Response<pb::RotateAccessTokenResponse>, Status> {
        tokens::rotate_access_token(self, request)
            .await
            .map_err(in_rpc("RotateAccessToken"))
    }

    async fn get_token_status(
        &self,
        request: Request<pb::GetTokenStatusRequest>,
    ) -> Result<Response<pb::GetTokenStatusResponse>, Status> {
        tokens::get_token_status(self, request).await
    }

    async fn get_quota(
        &self,
        request: Request<pb::GetQuotaRequest>,
    ) -> Result<Response<pb::GetQuotaResponse>, Status> {
        quota::get_quota(self, request)
            .await
            .map_err(in_rpc("GetQuota"))
    }
}

#[cfg(test)]
mod tests {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

    use super::*;

    #[test]
    fn page_tokens_round_trip_and_refuse_strangers() {
        let id = "ch_01jd0000000000000000000000";
        assert_eq!(
            PAGE_TOKENS
                .decode(&PAGE_TOKENS.encode(id))
                .unwrap()
                .as_deref(),
            Some(id)
        );
        assert_eq!(PAGE_TOKENS.decode("").unwrap(), None);
        assert!(PAGE_TOKENS.decode("garbage!").is_err());
        assert!(
            PAGE_TOKENS
                .decode(&URL_SAFE_NO_PAD.encode("after:nope"))
                .is_err()
        );
    }
}
