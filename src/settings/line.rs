//! Calls to LINE: where its APIs are, the proxy to reach them through, how
//! long a call may take, the pace of each channel's calls, the backoff of
//! retried sends, and whether senders' profiles are looked up.

use std::time::Duration;

use url::Url;

use super::{
    SettingsError,
    sources::{Sources, setting},
    values,
};
use crate::{line::pace::RateLimits, secret::Secret};

pub(super) fn line_api_base(s: &Sources) -> Result<Url, SettingsError> {
    let setting = setting!(s, line_api_base);
    values::base_url(&setting, setting.required()?)
}

pub(super) fn line_data_api_base(s: &Sources) -> Result<Url, SettingsError> {
    let setting = setting!(s, line_data_api_base);
    values::base_url(&setting, setting.required()?)
}

/// The proxy for calls to LINE, kept a `Secret` (its URL may carry the
/// proxy's credentials); unset or empty: the standard proxy variables.
pub(super) fn line_proxy(s: &Sources) -> Result<Option<Secret>, SettingsError> {
    let setting = setting!(s, line_proxy);
    let text = match setting.value.map(|text| text.trim()) {
        None | Some("") => return Ok(None),
        Some(text) => text,
    };
    // Errors do not quote the URL.
    match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            Ok(Some(Secret::new(text)))
        }
        Ok(_) => Err(setting.invalid("must be an http:// or https:// proxy URL with a host")),
        Err(e) => Err(setting.invalid(values::url_problem(e))),
    }
}

pub(super) fn line_request_timeout(s: &Sources) -> Result<Duration, SettingsError> {
    let setting = setting!(s, line_request_timeout_ms);
    let ms = *setting.required()?;
    if !(100..=60_000).contains(&ms) {
        return Err(setting.invalid("must be 100–60000 (LINE answers in well under a second)"));
    }
    Ok(Duration::from_millis(ms))
}

/// `push=2000/s,broadcast=60/h`: see `line::pace::RateLimits::parse`;
/// endpoints not named keep LINE's published rate.
pub(super) fn line_rate_limits(s: &Sources) -> Result<RateLimits, SettingsError> {
    let setting = setting!(s, line_rate_limits);
    RateLimits::parse(setting.value.map_or("", |text| text.as_str()))
        .map_err(|reason| setting.invalid(reason))
}

pub(super) fn outbox_max_backoff(s: &Sources) -> Result<Duration, SettingsError> {
    let setting = setting!(s, outbox_max_backoff_ms);
    let ms = *setting.required()?;
    if !(100..=600_000).contains(&ms) {
        return Err(setting.invalid("must be 100–600000"));
    }
    Ok(Duration::from_millis(ms))
}

pub(super) fn lookup_profiles(s: &Sources) -> Result<bool, SettingsError> {
    setting!(s, lookup_profiles).required().copied()
}
