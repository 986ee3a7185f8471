//! The process itself: how it logs, and how it stops.

use std::time::Duration;

use super::{
    SettingsError,
    sources::{Sources, setting},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

pub(super) fn log_format(s: &Sources) -> Result<LogFormat, SettingsError> {
    let setting = setting!(s, log_format);
    match setting.required()?.trim() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(setting.invalid(format!("`{other}` is not one of `text`, `json`"))),
    }
}

pub(super) fn shutdown_grace(s: &Sources) -> Result<Duration, SettingsError> {
    let setting = setting!(s, shutdown_grace_seconds);
    let seconds = *setting.required()?;
    if seconds > 3600 {
        return Err(setting.invalid("must be at most 3600"));
    }
    Ok(Duration::from_secs(seconds))
}

/// Time for load balancers (Kubernetes endpoints) to stop sending before
/// the drain begins.
pub(super) fn shutdown_delay(s: &Sources) -> Result<Duration, SettingsError> {
    let setting = setting!(s, shutdown_delay_seconds);
    let seconds = *setting.required()?;
    if seconds > 600 {
        return Err(setting.invalid("must be at most 600"));
    }
    Ok(Duration::from_secs(seconds))
}
