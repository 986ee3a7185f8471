//! Channel records: create, read, list, update, delete, and the bot LINE
//! knows them as (GetBotInfo).

use tonic::{Request, Response, Status};

use super::*;

pub(super) async fn create_channel(
    admin: &AdminService,
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

    let record = admin
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
        channel: Some(admin.view(&record).await),
    }))
}

pub(super) async fn get_channel(
    admin: &AdminService,
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
    let services = admin.core.services()?;
    let record = services.channels.get(&id).await?;
    let webhook_check = if check_webhook {
        let authority = extensions.get::<RequestAuthority>();
        Some(super::webhook::check(&admin.core, services, &record, &metadata, authority).await)
    } else {
        None
    };
    Ok(Response::new(pb::GetChannelResponse {
        channel: Some(admin.view(&record).await),
        webhook_check,
    }))
}

pub(super) async fn list_channels(
    admin: &AdminService,
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
    let after = violations.check("page_token", PAGE_TOKENS.decode(&page_token));
    violations.into_result()?;
    let (Some(page_size), Some(after)) = (page_size, after) else {
        return Err(unrecorded_violation());
    };

    let page_size = page_size as usize;
    // One extra tells whether another page exists.
    let mut records = admin
        .core
        .channels()?
        .list(after.as_deref(), page_size + 1)
        .await?;
    let next_page_token = if records.len() > page_size {
        records.truncate(page_size);
        records
            .last()
            .map(|last| PAGE_TOKENS.encode(&last.id))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(Response::new(pb::ListChannelsResponse {
        channels: {
            let mut channels = Vec::with_capacity(records.len());
            for record in &records {
                channels.push(admin.view(record).await);
            }
            channels
        },
        next_page_token,
    }))
}

pub(super) async fn update_channel(
    admin: &AdminService,
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
                let secret =
                    violations.check("channel_secret", validate::channel_secret(&channel_secret));
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

    // Pointed at another LINE channel: the tokens of the one it leaves are
    // revoked now, with the credentials they were issued under (after the
    // change nothing could revoke them).
    if let Some(new_line_id) = &changes.line_channel_id {
        let services = admin.core.services()?;
        let current = services.channels.get(&id).await?;
        if current.line_channel_id != *new_line_id {
            services.tokens.revoke_before_move(&current).await;
        }
    }
    let record = admin.core.channels()?.update(&id, changes).await?;
    tracing::info!(channel = %record.id, fields = ?paths, "channel updated");
    Ok(Response::new(pb::UpdateChannelResponse {
        channel: Some(admin.view(&record).await),
    }))
}

pub(super) async fn delete_channel(
    admin: &AdminService,
    request: Request<pb::DeleteChannelRequest>,
) -> Result<Response<pb::DeleteChannelResponse>, Status> {
    let pb::DeleteChannelRequest { channel_id: id } = request.into_inner();
    let id = channel_id(&id)?;
    let services = admin.core.services()?;
    // Revoked first, with the credentials they were issued under; the
    // channel is deleted whatever LINE says, and the answer tells.
    let current = services.channels.get(&id).await?;
    let outcomes = services.tokens.revoke_all(&current).await;
    let record = services.channels.delete(&id).await?;
    services.tokens.forget(&id);
    let revoked = outcomes.iter().filter(|(_, why)| why.is_none()).count();
    let not_revoked: Vec<pb::TokenNotRevoked> = outcomes
        .into_iter()
        .filter_map(|(fingerprint, why)| {
            why.map(|reason| pb::TokenNotRevoked {
                token_fingerprint: fingerprint,
                reason,
            })
        })
        .collect();
    tracing::info!(channel = %record.id, revoked, not_revoked = not_revoked.len(), "channel deleted");
    Ok(Response::new(pb::DeleteChannelResponse {
        channel: Some(admin.view(&record).await),
        tokens_revoked: revoked as i32,
        tokens_not_revoked: not_revoked,
    }))
}

pub(super) async fn get_bot_info(
    admin: &AdminService,
    request: Request<pb::GetBotInfoRequest>,
) -> Result<Response<pb::GetBotInfoResponse>, Status> {
    let pb::GetBotInfoRequest { channel_id: id } = request.into_inner();
    let id = channel_id(&id)?;
    let services = admin.core.services()?;
    let record = services.channels.get(&id).await?;
    let info = services.tokens.line(&record).bot_info().await?;
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
