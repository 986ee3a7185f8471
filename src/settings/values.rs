//! Shapes of values that several sections check the same way: listen
//! addresses, base URLs, files that must exist. Errors never quote a URL,
//! which may carry credentials.

use std::{net::SocketAddr, path::PathBuf};

use url::Url;

use super::{SettingsError, sources::Setting};

/// An `IP:PORT` to listen on.
pub(super) fn socket_addr(setting: &Setting<'_, String>) -> Result<SocketAddr, SettingsError> {
    let text = setting.required()?;
    text.trim().parse().map_err(|_| {
        setting.invalid(format!(
            "`{text}` is not an IP address with a port, e.g. 0.0.0.0:8080"
        ))
    })
}

/// An http(s) URL without query, fragment or credentials. A trailing slash
/// is removed from a path (`https://h/base/` → `https://h/base`); a bare host
/// keeps the `/` the URL standard requires, so appending a path means
/// trimming the end first (see `grpc::admin::webhook_url`).
pub(super) fn base_url(setting: &Setting<'_, String>, text: &str) -> Result<Url, SettingsError> {
    let url = Url::parse(text.trim()).map_err(|e| setting.invalid(url_problem(e)))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(setting.invalid("is not an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(setting.invalid("must not have a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(setting.invalid("must not carry credentials"));
    }
    let trimmed = url.as_str().trim_end_matches('/').to_owned();
    Url::parse(&trimmed).map_err(|e| setting.invalid(e.to_string()))
}

/// Why a text is not a URL, in a user's words.
pub(super) fn url_problem(err: url::ParseError) -> String {
    match err {
        url::ParseError::RelativeUrlWithoutBase => {
            "is not a URL: it needs a scheme, e.g. https://line.example.com".into()
        }
        url::ParseError::EmptyHost => "is not a URL: it has no host".into(),
        url::ParseError::InvalidPort => "is not a URL: its port is not a number 0-65535".into(),
        other => format!("is not a URL ({other})"),
    }
}

/// A file read at start (certificates, credentials), if set: it must be
/// there now, not fail later.
pub(super) fn check_file(setting: &Setting<'_, PathBuf>) -> Result<(), SettingsError> {
    match setting.value {
        Some(path) if !path.is_file() => {
            Err(setting.invalid(format!("{} is not a readable file", path.display())))
        }
        _ => Ok(()),
    }
}
