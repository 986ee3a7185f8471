//! Master-key rotation. Started with a new `master_key` and the old one as
//! `master_key_previous`, the service opens what either key sealed, seals
//! everything new under the new key, and here moves every stored secret to
//! the new key in the background. The master-key check value moves last,
//! so a start with the new key alone succeeds only once nothing needs the
//! old one.

use std::sync::Arc;

use crate::{
    channels::{ChannelError, Channels},
    metrics::Metrics,
    store::Store,
    tokens::{TokenError, Tokens},
};

/// Channels resealed per page of the walk.
const PAGE: usize = 100;

/// What a rotation moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RekeyReport {
    pub channels: usize,
    pub secrets: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RekeyError {
    #[error("channel {channel}: {source}")]
    Channel {
        channel: String,
        source: ChannelError,
    },
    #[error("channel {channel}: {source}")]
    Tokens { channel: String, source: TokenError },
    #[error("cannot store the master-key check: {0}")]
    Check(crate::store::StoreError),
}

/// Reseals every channel's secrets and issued tokens, then stores
/// `check` (the check value sealed under the new key) under `check_key`.
pub async fn rotate(
    store: Arc<dyn Store>,
    channels: Channels,
    tokens: Tokens,
    check_key: &str,
    check: Vec<u8>,
) -> Result<RekeyReport, RekeyError> {
    let mut report = RekeyReport::default();
    let mut after: Option<String> = None;
    loop {
        let page = channels
            .list(after.as_deref(), PAGE)
            .await
            .map_err(|source| RekeyError::Channel {
                channel: "(listing)".into(),
                source,
            })?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for channel in page {
            let moved = match channels.reseal(&channel.id).await {
                Ok(moved) => moved,
                // Deleted meanwhile: nothing left to move.
                Err(ChannelError::NotFound(_)) => continue,
                Err(source) => {
                    return Err(RekeyError::Channel {
                        channel: channel.id,
                        source,
                    });
                }
            };
            let tokens_moved =
                tokens
                    .reseal(&channel.id)
                    .await
                    .map_err(|source| RekeyError::Tokens {
                        channel: channel.id.clone(),
                        source,
                    })?;
            report.channels += 1;
            report.secrets += moved + tokens_moved;
        }
    }
    store
        .meta_put(check_key, &check)
        .await
        .map_err(RekeyError::Check)?;
    Ok(report)
}

/// Runs [`rotate`] and reports it in the log and in
/// `line_adapter_master_key_rotation_pending`.
pub async fn rotate_and_report(
    store: Arc<dyn Store>,
    channels: Channels,
    tokens: Tokens,
    metrics: Metrics,
    check_key: &'static str,
    check: Vec<u8>,
) {
    match rotate(store, channels, tokens, check_key, check).await {
        Ok(report) => {
            metrics.master_key_rotation_pending.set(0);
            tracing::info!(
                channels = report.channels,
                secrets = report.secrets,
                "every stored secret is sealed under the new master key; LINE_ADAPTER_MASTER_KEY_PREVIOUS can be removed"
            );
        }
        Err(err) => tracing::error!(
            error = %err,
            "master-key rotation stopped; keep LINE_ADAPTER_MASTER_KEY_PREVIOUS set and restart to resume it"
        ),
    }
}
