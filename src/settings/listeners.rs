//! The two listeners: gRPC (its address, TLS, and who may call without an
//! API key) and HTTP (its address, the public URL LINE calls, the largest
//! webhook body).

use std::{net::SocketAddr, path::PathBuf};

use url::Url;

use super::{
    SettingsError,
    sources::{Sources, setting},
    values,
};
use crate::access::ApiKey;

const DEFAULT_GRPC_PORT: u16 = 50051;
/// Bounds of `webhook_body_limit`: LINE's requests are at most a few hundred
/// KiB; below 1 KiB even the "Verify" request could not pass.
const BODY_LIMIT_RANGE: std::ops::RangeInclusive<u64> = 1024..=64 * 1024 * 1024;

/// Where a listener's TLS certificate and key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub(super) fn insecure_no_auth(s: &Sources) -> bool {
    setting!(s, insecure_no_auth)
        .value
        .copied()
        .unwrap_or(false)
}

/// The gRPC address. Without keys nobody but this host may call, unless
/// the operator says something else authenticates callers: see
/// defaults.toml for why it has no entry there.
pub(super) fn grpc_addr(
    s: &Sources,
    api_keys: &[ApiKey],
    insecure_no_auth: bool,
) -> Result<SocketAddr, SettingsError> {
    let setting = setting!(s, grpc_addr);
    let addr = match setting.value {
        Some(_) => values::socket_addr(&setting)?,
        None if api_keys.is_empty() => SocketAddr::from(([127, 0, 0, 1], DEFAULT_GRPC_PORT)),
        None => SocketAddr::from(([0, 0, 0, 0], DEFAULT_GRPC_PORT)),
    };
    if api_keys.is_empty() && !addr.ip().is_loopback() && !insecure_no_auth {
        return Err(setting.invalid(format!(
            "{addr} is reachable from other hosts but no API keys are set: set LINE_ADAPTER_API_KEYS, listen on a loopback address, or pass --insecure-no-auth"
        )));
    }
    Ok(addr)
}

/// TLS on the gRPC listener: both files or neither.
pub(super) fn grpc_tls(s: &Sources) -> Result<Option<TlsFiles>, SettingsError> {
    let cert = setting!(s, grpc_tls_cert_file);
    let key = setting!(s, grpc_tls_key_file);
    match (cert.value, key.value) {
        (None, None) => Ok(None),
        (Some(cert_file), Some(key_file)) => {
            values::check_file(&cert)?;
            values::check_file(&key)?;
            Ok(Some(TlsFiles {
                cert: cert_file.clone(),
                key: key_file.clone(),
            }))
        }
        (Some(_), None) => Err(key.invalid("is needed with grpc_tls_cert_file")),
        (None, Some(_)) => Err(cert.invalid("is needed with grpc_tls_key_file")),
    }
}

pub(super) fn http_addr(s: &Sources) -> Result<SocketAddr, SettingsError> {
    values::socket_addr(&setting!(s, http_addr))
}

/// The base LINE reaches us at; unset or empty: webhook URLs cannot be
/// registered and uploads cannot be sent.
pub(super) fn public_base_url(
    s: &Sources,
    warnings: &mut Vec<String>,
) -> Result<Option<Url>, SettingsError> {
    let setting = setting!(s, public_base_url);
    match setting.value.map(|text| text.trim()) {
        None | Some("") => Ok(None),
        Some(text) => {
            let url = values::base_url(&setting, text)?;
            if url.scheme() != "https" {
                warnings.push(format!(
                    "public_base_url {url} is not https: LINE only calls https webhook URLs"
                ));
            }
            Ok(Some(url))
        }
    }
}

pub(super) fn webhook_body_limit(s: &Sources) -> Result<u64, SettingsError> {
    let setting = setting!(s, webhook_body_limit);
    let limit = *setting.required()?;
    if !BODY_LIMIT_RANGE.contains(&limit) {
        return Err(setting.invalid(format!(
            "{limit} bytes is outside {}–{} bytes",
            BODY_LIMIT_RANGE.start(),
            BODY_LIMIT_RANGE.end()
        )));
    }
    Ok(limit)
}
