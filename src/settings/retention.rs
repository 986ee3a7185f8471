//! How long, and how much, is kept: events in the log, the memory of
//! webhook event ids that drops LINE's redeliveries, inbound media, and
//! agents' uploads.

use std::time::Duration;

use super::{
    SettingsError,
    sources::{Sources, setting},
};

pub(super) fn event_retention(s: &Sources) -> Result<Duration, SettingsError> {
    let setting = setting!(s, event_retention_seconds);
    let seconds = *setting.required()?;
    if seconds < 60 {
        return Err(setting.invalid("must be at least 60"));
    }
    Ok(Duration::from_secs(seconds))
}

/// `0` (or unset): no count limit.
pub(super) fn event_retention_max_events(s: &Sources) -> Option<u64> {
    setting!(s, event_retention_max_events)
        .value
        .copied()
        .filter(|max| *max != 0)
}

/// LINE redelivers for a while after a failure; shorter memories would
/// store a late redelivery twice.
pub(super) fn dedupe_window(s: &Sources) -> Result<Duration, SettingsError> {
    let setting = setting!(s, dedupe_window_seconds);
    let seconds = *setting.required()?;
    if seconds < 3600 {
        return Err(setting.invalid("must be at least 3600 (1 hour)"));
    }
    Ok(Duration::from_secs(seconds))
}

pub(super) fn media_retention(s: &Sources) -> Result<Duration, SettingsError> {
    let seconds = *setting!(s, media_retention_seconds).required()?;
    Ok(Duration::from_secs(seconds))
}

pub(super) fn media_max_bytes(s: &Sources) -> Result<u64, SettingsError> {
    setting!(s, media_max_bytes).required().copied()
}

/// Uploads must stay served until LINE's apps load them, which is when a
/// chat is opened: under a week is allowed, with a warning.
pub(super) fn outbound_media_retention(
    s: &Sources,
    warnings: &mut Vec<String>,
) -> Result<Duration, SettingsError> {
    let setting = setting!(s, outbound_media_retention_seconds);
    let seconds = *setting.required()?;
    if seconds == 0 {
        return Err(setting.invalid(
            "must be at least 1 (uploads must stay served until LINE fetches them; 2592000, 30 days, keeps old chats' images)",
        ));
    }
    if seconds < 7 * 24 * 3600 {
        warnings.push(format!(
            "outbound_media_retention_seconds is {seconds}: LINE's apps load images when a chat is opened, so uploads older than that show as broken images in old chats"
        ));
    }
    Ok(Duration::from_secs(seconds))
}

pub(super) fn outbound_media_max_bytes(s: &Sources) -> Result<u64, SettingsError> {
    let setting = setting!(s, outbound_media_max_bytes);
    let bytes = *setting.required()?;
    if bytes == 0 {
        return Err(setting.invalid("must be at least 1 (the most bytes of uploads kept)"));
    }
    Ok(bytes)
}
