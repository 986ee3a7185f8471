//! Where state is kept: the data dir, the backend (sled in the data dir,
//! or NATS JetStream), sled's cache, and the low-space watermark that
//! stops writes before the disk is full.

use std::path::PathBuf;

use url::Url;

use super::{
    SettingsError,
    sources::{Sources, setting},
    values,
};

/// Which storage backend the service runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// sled in the data dir: one process, one volume.
    Sled,
    /// NATS JetStream: any number of replicas on one NATS.
    Nats(NatsSettings),
}

/// How to reach NATS, and what to name and replicate there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsSettings {
    /// One or more server URLs, comma-separated.
    pub url: String,
    pub creds_file: Option<PathBuf>,
    pub tls_ca_file: Option<PathBuf>,
    /// Prefix of the stream and bucket names.
    pub prefix: String,
    /// JetStream replicas of what the service creates.
    pub replicas: usize,
}

pub(super) fn data_dir(s: &Sources) -> Result<PathBuf, SettingsError> {
    let setting = setting!(s, data_dir);
    let dir = setting.required()?;
    if dir.as_os_str().is_empty() {
        return Err(setting.invalid("must not be empty"));
    }
    Ok(dir.clone())
}

/// sled's page cache, given in MiB.
pub(super) fn store_cache_bytes(s: &Sources) -> Result<u64, SettingsError> {
    let setting = setting!(s, store_cache_mib);
    let mib = *setting.required()?;
    if !(16..=65_536).contains(&mib) {
        return Err(setting.invalid("must be 16–65536"));
    }
    Ok(mib * 1024 * 1024)
}

pub(super) fn store_min_free_bytes(s: &Sources) -> Result<u64, SettingsError> {
    setting!(s, store_min_free_bytes).required().copied()
}

pub(super) fn store_min_free_percent(s: &Sources) -> Result<u64, SettingsError> {
    let setting = setting!(s, store_min_free_percent);
    let percent = *setting.required()?;
    if percent > 50 {
        return Err(setting.invalid("must be 0–50"));
    }
    Ok(percent)
}

pub(super) fn store(s: &Sources) -> Result<StoreBackend, SettingsError> {
    let setting = setting!(s, store);
    match setting.required()?.trim() {
        "sled" => Ok(StoreBackend::Sled),
        "nats" => {
            // Every replica must open the secrets the others sealed: a key
            // file generated in each one's data dir would differ.
            if setting!(s, master_key)
                .value
                .is_none_or(|k| k.expose().trim().is_empty())
            {
                return Err(setting.invalid(
                    "nats needs master_key (LINE_ADAPTER_MASTER_KEY), the same for every replica",
                ));
            }
            Ok(StoreBackend::Nats(nats(s)?))
        }
        other => Err(setting.invalid(format!("`{other}` is not one of `sled`, `nats`"))),
    }
}

/// The NATS settings, checked; only read when `store = "nats"`.
fn nats(s: &Sources) -> Result<NatsSettings, SettingsError> {
    let url_setting = setting!(s, nats_url);
    let url = url_setting.value.map(|u| u.trim()).unwrap_or_default();
    if url.is_empty() {
        return Err(url_setting.invalid("is needed with store = nats (e.g. nats://nats:4222)"));
    }
    for one in url.split(',') {
        let parsed = Url::parse(one.trim()).ok().filter(|u| {
            matches!(u.scheme(), "nats" | "tls" | "ws" | "wss") && u.host_str().is_some()
        });
        if parsed.is_none() {
            // Not quoted: a URL may carry credentials.
            return Err(url_setting.invalid(
                "each comma-separated entry must be a nats://, tls://, ws:// or wss:// URL with a host",
            ));
        }
    }
    let prefix_setting = setting!(s, nats_prefix);
    let prefix = prefix_setting
        .value
        .map_or("line_adapter", |p| p.as_str())
        .trim();
    let valid_prefix = !prefix.is_empty()
        && prefix.len() <= 32
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid_prefix {
        return Err(prefix_setting.invalid(
            "must be 1–32 letters, digits, `_` or `-` (it starts stream and bucket names)",
        ));
    }
    let replicas_setting = setting!(s, nats_replicas);
    let replicas = replicas_setting.value.copied().unwrap_or(1);
    if !(1..=5).contains(&replicas) {
        return Err(replicas_setting.invalid("must be 1–5 (JetStream's limit)"));
    }
    let creds_file = setting!(s, nats_creds_file);
    let tls_ca_file = setting!(s, nats_tls_ca_file);
    values::check_file(&creds_file)?;
    values::check_file(&tls_ca_file)?;
    Ok(NatsSettings {
        url: url.to_owned(),
        creds_file: creds_file.value.cloned(),
        tls_ca_file: tls_ca_file.value.cloned(),
        prefix: prefix.to_owned(),
        replicas: replicas as usize,
    })
}
