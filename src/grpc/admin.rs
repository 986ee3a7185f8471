//! `weiyu.line.v1.ChannelAdmin`: validate, convert (destructuring every
//! field so a new proto field breaks the build here), call the domain.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use tonic::{Request, Response, Status};

use super::{
    Core, RequestAuthority, quota,
    status::{Violations, invalid_field},
    webhook_admin,
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
const PAGE_TOKEN_PREFIX: &str = "after:";

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

pub fn webhook_url(base: &str, channel_id: &str) -> String {
    format!("{}/webhook/line/{channel_id}", base.trim_end_matches('/'))
}

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

#[allow(clippy::result_large_err)]
fn channel_id(value: &str) -> Result<String, Status> {
    validate::channel_id(value).map_err(|reason| invalid_field("channel_id", reason))
}

fn encode_page_token(last_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{PAGE_TOKEN_PREFIX}{last_id}"))
}

fn decode_page_token(token: &str) -> Result<Option<String>, String> {
    if token.is_empty() {
        return Ok(None);
    }
    let refused = || "is not a page token returned by ListChannels".to_owned();
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| refused())?;
    let text = String::from_utf8(bytes).map_err(|_| refused())?;
    let id = text.strip_prefix(PAGE_TOKEN_PREFIX).ok_or_else(refused)?;
    validate::channel_id(id).map_err(|_| refused())?;
    Ok(Some(id.to_owned()))
}

#[tonic::async_trait]
impl ChannelAdmin for AdminService {
    async fn create_channel(
        &self,
        request: Request<pb::CreateChannelRequest>,
    ) -> Result<Response<pb::CreateChannelResponse>, Status> {
        let pb::CreateChannelRequest {
            display_name,
            line_channel_id,
            channel_secret,
            channel_access_token,
            token_mode,
        } = request.into_inner();
        let mut violations = Violations::new();
        let display_name = violations.check("display_name", validate::display_name(&display_name));
        let line_channel_id = violations.check(
            "line_channel_id",
            validate::line_channel_id(&line_channel_id),
        );
        let channel_secret =
            violations.check("channel_secret", validate::channel_secret(&channel_secret));
        let access_token = if channel_access_token.trim().is_empty() {
            Some(None)
        } else {
            violations
                .check(
                    "channel_access_token",
                    validate::access_token(&channel_access_token),
                )
                .map(Some)
        };
        let token_mode = violations.check("token_mode", token_mode_from_proto(token_mode));
        violations.into_result()?;
        let (
            Some(display_name),
            Some(line_channel_id),
            Some(channel_secret),
            Some(access_token),
            Some(token_mode),
        ) = (
            display_name,
            line_channel_id,
            channel_secret,
            access_token,
            token_mode,
        )
        else {
            return Err(unrecorded_violation());
        };

        let record = self
            .core
            .channels()?
            .create(NewChannel {
                display_name,
                line_channel_id,
                channel_secret: Secret::new(channel_secret),
                access_token: access_token.map(Secret::new),
                token_mode,
            })
            .await?;
        tracing::info!(channel = %record.id, line_channel_id = %record.line_channel_id, "channel registered");
        Ok(Response::new(pb::CreateChannelResponse {
            channel: Some(self.view(&record).await),
        }))
    }

    async fn get_channel(
        &self,
        request: Request<pb::GetChannelRequest>,
    ) -> Result<Response<pb::GetChannelResponse>, Status> {
        let (
            metadata,
            extensions,
            pb::GetChannelRequest {
                channel_id: id,
                check_webhook,
            },
        ) = request.into_parts();
        let id = channel_id(&id)?;
        let services = self.core.services()?;
        let record = services.channels.get(&id).await?;
        let webhook_check = if check_webhook {
            let authority = extensions.get::<RequestAuthority>();
            Some(webhook_admin::check(&self.core, services, &record, &metadata, authority).await)
        } else {
            None
        };
        Ok(Response::new(pb::GetChannelResponse {
            channel: Some(self.view(&record).await),
            webhook_check,
        }))
    }

    async fn list_channels(
        &self,
        request: Request<pb::ListChannelsRequest>,
    ) -> Result<Response<pb::ListChannelsResponse>, Status> {
        let pb::ListChannelsRequest {
            page_size,
            page_token,
        } = request.into_inner();
        let mut violations = Violations::new();
        let page_size = match page_size {
            0 => Some(DEFAULT_PAGE_SIZE),
            1..=MAX_PAGE_SIZE => Some(page_size),
            _ => {
                violations.add(
                    "page_size",
                    format!("must be between 1 and {MAX_PAGE_SIZE} (0 = default {DEFAULT_PAGE_SIZE}), got {page_size}"),
                );
                None
            }
        };
        let after = violations.check("page_token", decode_page_token(&page_token));
        violations.into_result()?;
        let (Some(page_size), Some(after)) = (page_size, after) else {
            return Err(unrecorded_violation());
        };

        let page_size = page_size as usize;
        // One extra tells whether another page exists.
        let mut records = self
            .core
            .channels()?
            .list(after.as_deref(), page_size + 1)
            .await?;
        let next_page_token = if records.len() > page_size {
            records.truncate(page_size);
            records
                .last()
                .map(|last| encode_page_token(&last.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListChannelsResponse {
            channels: {
                let mut channels = Vec::with_capacity(records.len());
                for record in &records {
                    channels.push(self.view(record).await);
                }
                channels
            },
            next_page_token,
        }))
    }

    async fn update_channel(
        &self,
        request: Request<pb::UpdateChannelRequest>,
    ) -> Result<Response<pb::UpdateChannelResponse>, Status> {
        let pb::UpdateChannelRequest {
            channel_id: id,
            display_name,
            line_channel_id,
            channel_secret,
            channel_access_token,
            token_mode,
            update_mask,
            previous_secret_grace,
        } = request.into_inner();
        let mut violations = Violations::new();
        let id = violations.check("channel_id", validate::channel_id(&id));
        let paths = update_mask.map(|mask| mask.paths).unwrap_or_default();
        if paths.is_empty() {
            violations.add(
                "update_mask",
                format!("must name at least one of: {}", UPDATE_PATHS.join(", ")),
            );
        }
        let mut changes = ChannelChanges::default();
        let mut seen = std::collections::HashSet::new();
        for path in &paths {
            if !seen.insert(path.as_str()) {
                violations.add("update_mask", format!("path `{path}` is named twice"));
                continue;
            }
            match path.as_str() {
                "display_name" => {
                    changes.display_name =
                        violations.check("display_name", validate::display_name(&display_name));
                }
                "line_channel_id" => {
                    changes.line_channel_id = violations.check(
                        "line_channel_id",
                        validate::line_channel_id(&line_channel_id),
                    );
                }
                "channel_secret" => {
                    let secret = violations
                        .check("channel_secret", validate::channel_secret(&channel_secret));
                    let grace = match &previous_secret_grace {
                        None => Some(std::time::Duration::ZERO),
                        Some(d) if d.seconds < 0 || d.nanos < 0 => {
                            violations.add("previous_secret_grace", "must not be negative");
                            None
                        }
                        Some(d) if d.seconds > MAX_SECRET_GRACE_SECS => {
                            violations.add(
                                "previous_secret_grace",
                                format!("must be at most {MAX_SECRET_GRACE_SECS} seconds (7 days)"),
                            );
                            None
                        }
                        Some(d) => Some(std::time::Duration::new(
                            d.seconds as u64,
                            d.nanos.clamp(0, 999_999_999) as u32,
                        )),
                    };
                    if let (Some(secret), Some(grace)) = (secret, grace) {
                        changes.channel_secret = Some((Secret::new(secret), grace));
                    }
                }
                "channel_access_token" => {
                    if channel_access_token.trim().is_empty() {
                        changes.access_token = Some(None);
                    } else if let Some(token) = violations.check(
                        "channel_access_token",
                        validate::access_token(&channel_access_token),
                    ) {
                        changes.access_token = Some(Some(Secret::new(token)));
                    }
                }
                "token_mode" => {
                    changes.token_mode =
                        violations.check("token_mode", token_mode_from_proto(token_mode));
                }
                other => violations.add(
                    "update_mask",
                    format!(
                        "unknown path `{other}`; allowed: {}",
                        UPDATE_PATHS.join(", ")
                    ),
                ),
            }
        }
        if previous_secret_grace.is_some() && !seen.contains("channel_secret") {
            violations.add(
                "previous_secret_grace",
                "only applies when update_mask names channel_secret",
            );
        }
        violations.into_result()?;
        let Some(id) = id else {
            return Err(unrecorded_violation());
        };

        let record = self.core.channels()?.update(&id, changes).await?;
        tracing::info!(channel = %record.id, fields = ?paths, "channel updated");
        Ok(Response::new(pb::UpdateChannelResponse {
            channel: Some(self.view(&record).await),
        }))
    }

    async fn delete_channel(
        &self,
        request: Request<pb::DeleteChannelRequest>,
    ) -> Result<Response<pb::DeleteChannelResponse>, Status> {
        let pb::DeleteChannelRequest { channel_id: id } = request.into_inner();
        let id = channel_id(&id)?;
        let services = self.core.services()?;
        let record = services.channels.delete(&id).await?;
        services.tokens.forget(&id);
        tracing::info!(channel = %record.id, "channel deleted");
        Ok(Response::new(pb::DeleteChannelResponse {
            channel: Some(self.view(&record).await),
        }))
    }

    async fn get_webhook_url(
        &self,
        request: Request<pb::GetWebhookUrlRequest>,
    ) -> Result<Response<pb::GetWebhookUrlResponse>, Status> {
        let (metadata, extensions, pb::GetWebhookUrlRequest { channel_id: id }) =
            request.into_parts();
        let id = channel_id(&id)?;
        // The channel must exist: a URL for a channel we do not know would
        // only ever be answered 404.
        self.core.channels()?.get(&id).await?;
        let webhook_admin::WebhookUrl { url, source } = webhook_admin::expected_url(
            &self.core,
            &metadata,
            extensions.get::<RequestAuthority>(),
            &id,
        )?;
        Ok(Response::new(pb::GetWebhookUrlResponse {
            webhook_url: url,
            base_url_source: source.as_str().to_owned(),
        }))
    }

    async fn register_webhook(
        &self,
        request: Request<pb::RegisterWebhookRequest>,
    ) -> Result<Response<pb::RegisterWebhookResponse>, Status> {
        let (metadata, extensions, pb::RegisterWebhookRequest { channel_id: id }) =
            request.into_parts();
        let id = channel_id(&id)?;
        let authority = extensions.get::<RequestAuthority>();
        webhook_admin::register(&self.core, &metadata, authority, &id)
            .await
            .map(Response::new)
    }

    async fn generate_key_pair(
        &self,
        request: Request<pb::GenerateKeyPairRequest>,
    ) -> Result<Response<pb::GenerateKeyPairResponse>, Status> {
        let pb::GenerateKeyPairRequest { channel_id: id } = request.into_inner();
        let id = channel_id(&id)?;
        let (record, pair) = self.core.channels()?.generate_key_pair(&id).await?;
        tracing::info!(
            channel = %record.id,
            thumbprint = %pair.thumbprint,
            pending = record.pending_key_pair.is_some(),
            "key pair generated"
        );
        Ok(Response::new(pb::GenerateKeyPairResponse {
            public_key_jwk: pair.public_jwk,
            thumbprint: pair.thumbprint,
        }))
    }

    async fn set_kid(
        &self,
        request: Request<pb::SetKidRequest>,
    ) -> Result<Response<pb::SetKidResponse>, Status> {
        let pb::SetKidRequest {
            channel_id: id,
            kid,
        } = request.into_inner();
        let mut violations = Violations::default();
        let id = violations.check("channel_id", validate::channel_id(&id));
        let kid = violations.check("kid", validate::kid(&kid));
        violations.into_result()?;
        let (Some(id), Some(kid)) = (id, kid) else {
            return Err(unrecorded_violation());
        };
        let record = self.core.channels()?.set_kid(&id, &kid).await?;
        tracing::info!(channel = %record.id, kid = %kid, "kid set");
        Ok(Response::new(pb::SetKidResponse {
            channel: Some(self.view(&record).await),
        }))
    }

    async fn rotate_access_token(
        &self,
        request: Request<pb::RotateAccessTokenRequest>,
    ) -> Result<Response<pb::RotateAccessTokenResponse>, Status> {
        let pb::RotateAccessTokenRequest { channel_id: id } = request.into_inner();
        let id = channel_id(&id)?;
        let services = self.core.services()?;
        let record = services.channels.get(&id).await?;
        let status = services.tokens.rotate(&record).await?;
        Ok(Response::new(pb::RotateAccessTokenResponse {
            status: Some(token_status_to_proto(status)),
        }))
    }

    async fn get_token_status(
        &self,
        request: Request<pb::GetTokenStatusRequest>,
    ) -> Result<Response<pb::GetTokenStatusResponse>, Status> {
        let pb::GetTokenStatusRequest { channel_id: id } = request.into_inner();
        let id = channel_id(&id)?;
        let services = self.core.services()?;
        let record = services.channels.get(&id).await?;
        let status = services.tokens.status(&record).await?;
        Ok(Response::new(pb::GetTokenStatusResponse {
            status: Some(token_status_to_proto(status)),
        }))
    }

    async fn get_bot_info(
        &self,
        request: Request<pb::GetBotInfoRequest>,
    ) -> Result<Response<pb::GetBotInfoResponse>, Status> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct BotInfo {
            user_id: String,
            basic_id: String,
            #[serde(default)]
            premium_id: String,
            display_name: String,
            #[serde(default)]
            picture_url: String,
            chat_mode: String,
            mark_as_read_mode: String,
        }
        let pb::GetBotInfoRequest { channel_id: id } = request.into_inner();
        let id = channel_id(&id)?;
        let services = self.core.services()?;
        let record = services.channels.get(&id).await?;
        let info: BotInfo =
            super::lookup::fetch(services, &record, "GetBotInfo", "/v2/bot/info").await?;
        Ok(Response::new(pb::GetBotInfoResponse {
            user_id: info.user_id,
            basic_id: info.basic_id,
            premium_id: info.premium_id,
            display_name: info.display_name,
            picture_url: info.picture_url,
            chat_mode: info.chat_mode,
            mark_as_read_mode: info.mark_as_read_mode,
        }))
    }

    async fn get_quota(
        &self,
        request: Request<pb::GetQuotaRequest>,
    ) -> Result<Response<pb::GetQuotaResponse>, Status> {
        quota::get_quota(self.core.services()?, request.into_inner())
            .await
            .map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_refuse_strangers() {
        let id = "ch_01jd0000000000000000000000";
        assert_eq!(
            decode_page_token(&encode_page_token(id))
                .unwrap()
                .as_deref(),
            Some(id)
        );
        assert_eq!(decode_page_token("").unwrap(), None);
        assert!(decode_page_token("garbage!").is_err());
        assert!(decode_page_token(&URL_SAFE_NO_PAD.encode("after:nope")).is_err());
    }
}
