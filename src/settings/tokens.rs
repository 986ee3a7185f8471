//! Channel access tokens the service issues: when they are renewed and how
//! long v2.1 tokens are asked to live.

use std::time::Duration;

use super::{
    SettingsError,
    sources::{Sources, setting},
};
use crate::line::assertion::MAX_TOKEN_LIFETIME_SECS;

pub(super) fn token_refresh_margin(s: &Sources) -> Result<Duration, SettingsError> {
    let seconds = *setting!(s, token_refresh_margin_seconds).required()?;
    Ok(Duration::from_secs(seconds))
}

/// LINE refuses a `token_exp` over 30 days.
pub(super) fn token_v2_1_lifetime(s: &Sources) -> Result<Duration, SettingsError> {
    let setting = setting!(s, token_v2_1_lifetime_seconds);
    let seconds = *setting.required()?;
    if !(60..=MAX_TOKEN_LIFETIME_SECS).contains(&seconds) {
        return Err(setting.invalid(format!(
            "must be 60–{MAX_TOKEN_LIFETIME_SECS} (LINE allows at most 30 days)"
        )));
    }
    Ok(Duration::from_secs(seconds))
}
