//! Settings, layered: embedded defaults (`defaults.toml`) → the TOML file
//! given with `--config` → `LINE_ADAPTER_*` environment variables → flags.
//!
//! Every layer fills the same [`Layer`] of optional values; the merged layer
//! is validated once into [`Settings`]. A bad value stops start-up with an
//! error naming the setting and where it came from (file, variable or flag).

use std::{
    collections::HashMap,
    ffi::OsString,
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use url::Url;

use crate::{
    line::pace::RateLimits,
    secret::{MasterKey, Secret},
};

mod env;
mod flags;
mod layer;

pub use flags::whole_number;
pub use layer::{ApiKeyList, Layer};

/// Prefix of every environment variable the service reads.
pub const ENV_PREFIX: &str = "LINE_ADAPTER_";
const DEFAULTS: &str = include_str!("../defaults.toml");

const DEFAULT_GRPC_PORT: u16 = 50051;
/// Bounds of `webhook_body_limit`: LINE's requests are at most a few hundred
/// KiB; below 1 KiB even the "Verify" request could not pass.
const BODY_LIMIT_RANGE: std::ops::RangeInclusive<u64> = 1024..=64 * 1024 * 1024;

/// The validated settings the service runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// The operator chose an unauthenticated gRPC listener reachable from
    /// other hosts.
    pub insecure_no_auth: bool,
    /// HTTP listen address (webhooks, health, readiness).
    pub http_addr: SocketAddr,
    /// Whether senders' profiles are looked up from LINE and added to the
    /// log as profile records.
    pub lookup_profiles: bool,
    /// PEM certificate chain and private key for TLS on the gRPC listener;
    /// `None`: plaintext (behind a mesh or on loopback).
    pub grpc_tls: Option<TlsFiles>,
    /// Folder holding the store and, when generated, the master key file.
    pub data_dir: PathBuf,
    /// Public base URL of the webhook listener, as LINE reaches it.
    pub public_base_url: Option<Url>,
    /// Base of LINE's Messaging API.
    pub line_api_base: Url,
    /// Base of LINE's data API (message content).
    pub line_data_api_base: Url,
    /// HTTP(S) proxy for calls to LINE only; `None`: the standard
    /// `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` variables apply. A `Secret`:
    /// the URL may carry the proxy's credentials.
    pub line_proxy: Option<Secret>,
    /// How long one call to LINE may take before it counts as failed.
    pub line_request_timeout: Duration,
    /// The rate each channel's calls to each endpoint are paced at.
    pub line_rate_limits: RateLimits,
    /// Longest pause between two attempts of a send.
    pub outbox_max_backoff: Duration,
    /// API keys gRPC callers must present, with their scopes; empty = no
    /// authentication.
    pub api_keys: Vec<crate::access::ApiKey>,
    /// Master key for secrets at rest; `None` = use or create the data dir's
    /// key file.
    pub master_key: Option<MasterKey>,
    pub log_format: LogFormat,
    /// Largest webhook body accepted, in bytes.
    pub webhook_body_limit: u64,
    /// How long a graceful stop waits for in-flight work.
    pub shutdown_grace: Duration,
    /// How long a stop waits, not ready but still serving, before it
    /// drains (load balancers and Kubernetes endpoints catch up).
    pub shutdown_delay: Duration,
    /// How long events stay in the log.
    pub event_retention: Duration,
    /// Most events kept in the log; `None` = no count limit.
    pub event_retention_max_events: Option<u64>,
    /// How long a `webhookEventId` is remembered for deduplication.
    pub dedupe_window: Duration,
    /// How long fetched media is kept.
    pub media_retention: Duration,
    /// Most bytes of media kept; the oldest go first.
    pub media_max_bytes: u64,
    /// How long agents' uploads (UploadMedia) stay served to LINE.
    pub outbound_media_retention: Duration,
    /// Most bytes of agents' uploads kept; the oldest go first.
    pub outbound_media_max_bytes: u64,
    /// Bytes of store pages kept in memory (sled's cache).
    pub store_cache_bytes: u64,
    /// Writes stop while the data dir's filesystem has fewer free bytes
    /// than this (or than `store_min_free_percent` of it, if more).
    pub store_min_free_bytes: u64,
    /// Writes stop while less than this percentage of the data dir's
    /// filesystem is free.
    pub store_min_free_percent: u64,
    /// Where state is kept: the embedded sled store, or NATS JetStream.
    pub store: StoreBackend,
    /// Renew issued access tokens this long before they expire.
    pub token_refresh_margin: Duration,
    /// Lifetime asked for channel access tokens v2.1 (`token_exp`).
    pub token_v2_1_lifetime: Duration,
    /// The master key being replaced: secrets it sealed still open, and are
    /// sealed again under `master_key` in the background.
    pub master_key_previous: Option<MasterKey>,
}

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

/// Where a listener's TLS certificate and key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where a setting's value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(String),
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("built-in default"),
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid setting `{key}` (from {origin}): {reason}")]
    Invalid {
        key: &'static str,
        origin: Origin,
        reason: String,
    },
    #[error("environment variable {var} is not valid UTF-8")]
    EnvNotText { var: String },
    #[error("environment variable {var} is not a setting of this version{}", nearest.as_ref().map(|n| format!("; did you mean {n}?")).unwrap_or_default())]
    UnknownEnv {
        var: String,
        nearest: Option<String>,
    },
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    ParseFile { path: PathBuf, message: String },
}

/// Applies each `Some` field of `$src` onto `$dst`, remembering its origin.
macro_rules! merge_fields {
    ($dst:expr, $src:expr, $origins:expr, $origin:expr; $($field:ident),+ $(,)?) => {
        $(
            if let Some(value) = $src.$field {
                $dst.$field = Some(value);
                $origins.insert(stringify!($field), $origin(stringify!($field)));
            }
        )+
    };
}

/// The merged layers plus where each value came from.
#[derive(Debug, Default)]
struct Merged {
    layer: Layer,
    origins: HashMap<&'static str, Origin>,
}

impl Merged {
    fn apply(&mut self, src: Layer, origin: impl Fn(&'static str) -> Origin) {
        merge_fields!(self.layer, src, self.origins, origin;
            grpc_addr, http_addr, data_dir, public_base_url, line_api_base,
            line_data_api_base, line_proxy, line_request_timeout_ms, line_rate_limits,
            outbox_max_backoff_ms,
            grpc_tls_cert_file, grpc_tls_key_file, api_keys,
            api_keys_file, master_key, insecure_no_auth, lookup_profiles,
            log_format, webhook_body_limit, shutdown_grace_seconds, shutdown_delay_seconds,
            event_retention_seconds,
            event_retention_max_events, dedupe_window_seconds, media_retention_seconds,
            media_max_bytes, outbound_media_retention_seconds, outbound_media_max_bytes,
            store_cache_mib, store_min_free_bytes, store_min_free_percent,
            store, nats_url, nats_creds_file,
            nats_tls_ca_file, nats_prefix, nats_replicas, token_refresh_margin_seconds,
            token_v2_1_lifetime_seconds,
            master_key_previous);
    }

    fn origin(&self, key: &'static str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }

    fn invalid(&self, key: &'static str, reason: impl Into<String>) -> SettingsError {
        SettingsError::Invalid {
            key,
            origin: self.origin(key),
            reason: reason.into(),
        }
    }
}

/// The result of loading: settings plus warnings to log once logging runs.
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub warnings: Vec<String>,
}

impl Settings {
    /// Loads settings from every layer. `env` is the process environment
    /// (passed in so tests need not touch the real one); `flags` are the
    /// command-line values with the flag name of each.
    pub fn load(
        config_file: Option<&Path>,
        env: impl IntoIterator<Item = (OsString, OsString)>,
        flags: Layer,
    ) -> Result<Loaded, SettingsError> {
        let mut warnings = Vec::new();
        let mut merged = Merged::default();

        let defaults: Layer =
            toml::from_str(DEFAULTS).expect("embedded defaults.toml is valid (unit-tested)");
        merged.apply(defaults, |_| Origin::Default);

        if let Some(path) = config_file {
            let text = std::fs::read_to_string(path).map_err(|source| SettingsError::ReadFile {
                path: path.to_owned(),
                source,
            })?;
            let file = parse_file(path, &text)?;
            merged.apply(file, |_| Origin::File(path.to_owned()));
        }

        let env_layer = env::layer(env)?;
        merged.apply(env_layer, |key| Origin::Env(env_var_name(key)));
        merged.apply(flags, |key| {
            Origin::Flag(format!("--{}", key.replace('_', "-")))
        });

        let settings = validate(&merged, &mut warnings)?;
        Ok(Loaded { settings, warnings })
    }
}

/// Parses a settings file. Errors name the key and line but never quote a
/// value, which could be a secret.
fn parse_file(path: &Path, text: &str) -> Result<Layer, SettingsError> {
    let invalid = |message: String| SettingsError::ParseFile {
        path: path.to_owned(),
        message,
    };
    let value: toml::Value = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        match line {
            Some(line) => invalid(format!("line {line}: {}", e.message())),
            None => invalid(e.message().to_owned()),
        }
    })?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        let message = e.inner().message();
        // serde speaks Rust ("invalid value: integer `-1`, expected u64").
        let message = if message.ends_with("expected u64") {
            "must be a whole number, 0 or more".to_owned()
        } else if message.ends_with("expected a boolean") {
            "must be true or false".to_owned()
        } else if message.contains("expected a string") || message.contains("expected a sequence") {
            message.replace("expected a string", "it must be text in quotes")
        } else {
            message.to_owned()
        };
        invalid(format!("`{key}`: {message}"))
    })
}

/// `grpc_addr` → `LINE_ADAPTER_GRPC_ADDR`.
pub fn env_var_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

fn validate(merged: &Merged, warnings: &mut Vec<String>) -> Result<Settings, SettingsError> {
    let layer = &merged.layer;
    let required = |key: &'static str| merged.invalid(key, "must be set");

    let api_keys = api_keys(merged)?;
    let insecure_no_auth = layer.insecure_no_auth.unwrap_or(false);
    let lookup_profiles = layer
        .lookup_profiles
        .ok_or_else(|| required("lookup_profiles"))?;
    let grpc_addr = match &layer.grpc_addr {
        Some(text) => parse_addr(merged, "grpc_addr", text)?,
        // Without keys nobody but this host may call: see defaults.toml.
        None if api_keys.is_empty() => SocketAddr::from(([127, 0, 0, 1], DEFAULT_GRPC_PORT)),
        None => SocketAddr::from(([0, 0, 0, 0], DEFAULT_GRPC_PORT)),
    };
    if api_keys.is_empty() && !grpc_addr.ip().is_loopback() && !insecure_no_auth {
        return Err(merged.invalid(
            "grpc_addr",
            format!(
                "{grpc_addr} is reachable from other hosts but no API keys are set: set LINE_ADAPTER_API_KEYS, listen on a loopback address, or pass --insecure-no-auth"
            ),
        ));
    }
    let http_addr = parse_addr(
        merged,
        "http_addr",
        layer
            .http_addr
            .as_deref()
            .ok_or_else(|| required("http_addr"))?,
    )?;
    let data_dir = layer.data_dir.clone().ok_or_else(|| required("data_dir"))?;
    if data_dir.as_os_str().is_empty() {
        return Err(merged.invalid("data_dir", "must not be empty"));
    }

    let public_base_url = match layer.public_base_url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => {
            let url = parse_base_url(merged, "public_base_url", text)?;
            if url.scheme() != "https" {
                warnings.push(format!(
                    "public_base_url {url} is not https: LINE only calls https webhook URLs"
                ));
            }
            Some(url)
        }
    };
    let line_api_base = parse_base_url(
        merged,
        "line_api_base",
        layer
            .line_api_base
            .as_deref()
            .ok_or_else(|| required("line_api_base"))?,
    )?;
    let line_data_api_base = parse_base_url(
        merged,
        "line_data_api_base",
        layer
            .line_data_api_base
            .as_deref()
            .ok_or_else(|| required("line_data_api_base"))?,
    )?;

    let line_request_timeout = layer
        .line_request_timeout_ms
        .ok_or_else(|| required("line_request_timeout_ms"))?;
    if !(100..=60_000).contains(&line_request_timeout) {
        return Err(merged.invalid(
            "line_request_timeout_ms",
            "must be 100–60000 (LINE answers in well under a second)",
        ));
    }
    let line_rate_limits = RateLimits::parse(layer.line_rate_limits.as_deref().unwrap_or_default())
        .map_err(|reason| merged.invalid("line_rate_limits", reason))?;
    let outbox_max_backoff = layer
        .outbox_max_backoff_ms
        .ok_or_else(|| required("outbox_max_backoff_ms"))?;
    if !(100..=600_000).contains(&outbox_max_backoff) {
        return Err(merged.invalid("outbox_max_backoff_ms", "must be 100–600000"));
    }
    let grpc_tls = match (&layer.grpc_tls_cert_file, &layer.grpc_tls_key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            for (setting, path) in [("grpc_tls_cert_file", cert), ("grpc_tls_key_file", key)] {
                if !path.is_file() {
                    return Err(merged.invalid(
                        setting,
                        format!("{} is not a readable file", path.display()),
                    ));
                }
            }
            Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })
        }
        (Some(_), None) => {
            return Err(merged.invalid("grpc_tls_key_file", "is needed with grpc_tls_cert_file"));
        }
        (None, Some(_)) => {
            return Err(merged.invalid("grpc_tls_cert_file", "is needed with grpc_tls_key_file"));
        }
    };
    let line_proxy = match layer.line_proxy.as_deref().map(str::trim) {
        None | Some("") => None,
        // Errors do not quote the URL: it may carry credentials.
        Some(text) => match Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
                Some(Secret::new(text))
            }
            Ok(_) => {
                return Err(merged.invalid(
                    "line_proxy",
                    "must be an http:// or https:// proxy URL with a host",
                ));
            }
            Err(e) => return Err(merged.invalid("line_proxy", url_problem(e))),
        },
    };
    let master_key = match &layer.master_key {
        Some(key) if !key.expose().trim().is_empty() => {
            Some(MasterKey::parse(key).map_err(|e| merged.invalid("master_key", e.to_string()))?)
        }
        _ => None,
    };

    let log_format = match layer.log_format.as_deref().map(str::trim) {
        Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(merged.invalid(
                "log_format",
                format!("`{other}` is not one of `text`, `json`"),
            ));
        }
        None => return Err(required("log_format")),
    };

    let webhook_body_limit = layer
        .webhook_body_limit
        .ok_or_else(|| required("webhook_body_limit"))?;
    if !BODY_LIMIT_RANGE.contains(&webhook_body_limit) {
        return Err(merged.invalid(
            "webhook_body_limit",
            format!(
                "{webhook_body_limit} bytes is outside {}–{} bytes",
                BODY_LIMIT_RANGE.start(),
                BODY_LIMIT_RANGE.end()
            ),
        ));
    }
    let grace = layer
        .shutdown_grace_seconds
        .ok_or_else(|| required("shutdown_grace_seconds"))?;
    if grace > 3600 {
        return Err(merged.invalid("shutdown_grace_seconds", "must be at most 3600"));
    }
    let delay = layer
        .shutdown_delay_seconds
        .ok_or_else(|| required("shutdown_delay_seconds"))?;
    if delay > 600 {
        return Err(merged.invalid("shutdown_delay_seconds", "must be at most 600"));
    }

    let retention = layer
        .event_retention_seconds
        .ok_or_else(|| required("event_retention_seconds"))?;
    if retention < 60 {
        return Err(merged.invalid("event_retention_seconds", "must be at least 60"));
    }
    let dedupe_window = layer
        .dedupe_window_seconds
        .ok_or_else(|| required("dedupe_window_seconds"))?;
    // LINE redelivers for a while after a failure; shorter memories would
    // store a late redelivery twice.
    if dedupe_window < 3600 {
        return Err(merged.invalid("dedupe_window_seconds", "must be at least 3600 (1 hour)"));
    }
    let max_events = match layer.event_retention_max_events {
        None | Some(0) => None,
        Some(max) => Some(max),
    };

    let media_retention = layer
        .media_retention_seconds
        .ok_or_else(|| required("media_retention_seconds"))?;
    let media_max_bytes = layer
        .media_max_bytes
        .ok_or_else(|| required("media_max_bytes"))?;
    let outbound_media_retention = layer
        .outbound_media_retention_seconds
        .ok_or_else(|| required("outbound_media_retention_seconds"))?;
    if outbound_media_retention == 0 {
        return Err(merged.invalid(
            "outbound_media_retention_seconds",
            "must be at least 1 (uploads must stay served until LINE fetches them; 2592000, 30 days, keeps old chats' images)",
        ));
    }
    if outbound_media_retention < 7 * 24 * 3600 {
        warnings.push(format!(
            "outbound_media_retention_seconds is {outbound_media_retention}: LINE's apps load images when a chat is opened, so uploads older than that show as broken images in old chats"
        ));
    }
    let outbound_media_max_bytes = layer
        .outbound_media_max_bytes
        .ok_or_else(|| required("outbound_media_max_bytes"))?;
    if outbound_media_max_bytes == 0 {
        return Err(merged.invalid(
            "outbound_media_max_bytes",
            "must be at least 1 (the most bytes of uploads kept)",
        ));
    }
    let store_cache_mib = layer
        .store_cache_mib
        .ok_or_else(|| required("store_cache_mib"))?;
    if !(16..=65_536).contains(&store_cache_mib) {
        return Err(merged.invalid("store_cache_mib", "must be 16–65536"));
    }
    let store_min_free_bytes = layer
        .store_min_free_bytes
        .ok_or_else(|| required("store_min_free_bytes"))?;
    let store_min_free_percent = layer
        .store_min_free_percent
        .ok_or_else(|| required("store_min_free_percent"))?;
    if store_min_free_percent > 50 {
        return Err(merged.invalid("store_min_free_percent", "must be 0–50"));
    }
    let store = match layer.store.as_deref().map(str::trim) {
        Some("sled") => StoreBackend::Sled,
        Some("nats") => {
            // Every replica must open the secrets the others sealed: a key
            // file generated in each one's data dir would differ.
            if layer
                .master_key
                .as_ref()
                .is_none_or(|k| k.expose().trim().is_empty())
            {
                return Err(merged.invalid(
                    "store",
                    "nats needs master_key (LINE_ADAPTER_MASTER_KEY), the same for every replica",
                ));
            }
            StoreBackend::Nats(nats_settings(layer, merged)?)
        }
        Some(other) => {
            return Err(merged.invalid("store", format!("`{other}` is not one of `sled`, `nats`")));
        }
        None => return Err(required("store")),
    };

    let token_refresh_margin = layer
        .token_refresh_margin_seconds
        .ok_or_else(|| required("token_refresh_margin_seconds"))?;
    let token_v2_1_lifetime = layer
        .token_v2_1_lifetime_seconds
        .ok_or_else(|| required("token_v2_1_lifetime_seconds"))?;
    if !(60..=crate::line::assertion::MAX_TOKEN_LIFETIME_SECS).contains(&token_v2_1_lifetime) {
        return Err(merged.invalid(
            "token_v2_1_lifetime_seconds",
            format!(
                "must be 60–{} (LINE allows at most 30 days)",
                crate::line::assertion::MAX_TOKEN_LIFETIME_SECS
            ),
        ));
    }
    if layer.master_key_previous.is_some() && layer.master_key.is_none() {
        return Err(merged.invalid(
            "master_key_previous",
            "needs master_key: set the new key as master_key and the key being replaced as master_key_previous",
        ));
    }
    let master_key_previous = match &layer.master_key_previous {
        Some(key) => Some(
            MasterKey::parse(key)
                .map_err(|e| merged.invalid("master_key_previous", e.to_string()))?,
        ),
        None => None,
    };

    Ok(Settings {
        token_refresh_margin: Duration::from_secs(token_refresh_margin),
        token_v2_1_lifetime: Duration::from_secs(token_v2_1_lifetime),
        master_key_previous,
        media_retention: Duration::from_secs(media_retention),
        media_max_bytes,
        outbound_media_retention: Duration::from_secs(outbound_media_retention),
        outbound_media_max_bytes,
        store_cache_bytes: store_cache_mib * 1024 * 1024,
        store_min_free_bytes,
        store_min_free_percent,
        store,
        event_retention: Duration::from_secs(retention),
        event_retention_max_events: max_events,
        dedupe_window: Duration::from_secs(dedupe_window),
        grpc_addr,
        insecure_no_auth,
        lookup_profiles,
        http_addr,
        data_dir,
        public_base_url,
        line_api_base,
        line_data_api_base,
        line_proxy,
        line_request_timeout: Duration::from_millis(line_request_timeout),
        line_rate_limits,
        outbox_max_backoff: Duration::from_millis(outbox_max_backoff),
        grpc_tls,
        api_keys,
        master_key,
        log_format,
        webhook_body_limit,
        shutdown_grace: Duration::from_secs(grace),
        shutdown_delay: Duration::from_secs(delay),
    })
}

fn parse_addr(merged: &Merged, key: &'static str, text: &str) -> Result<SocketAddr, SettingsError> {
    text.trim().parse().map_err(|_| {
        merged.invalid(
            key,
            format!("`{text}` is not an IP address with a port, e.g. 0.0.0.0:8080"),
        )
    })
}

/// Why a text is not a URL, in a user's words.
fn url_problem(err: url::ParseError) -> String {
    match err {
        url::ParseError::RelativeUrlWithoutBase => {
            "is not a URL: it needs a scheme, e.g. https://line.example.com".into()
        }
        url::ParseError::EmptyHost => "is not a URL: it has no host".into(),
        url::ParseError::InvalidPort => "is not a URL: its port is not a number 0-65535".into(),
        other => format!("is not a URL ({other})"),
    }
}

/// An http(s) URL without query, fragment or credentials. A trailing slash
/// is removed from a path (`https://h/base/` → `https://h/base`); a bare host
/// keeps the `/` the URL standard requires, so appending a path means
/// trimming the end first (see `grpc::admin::webhook_url`).
fn parse_base_url(merged: &Merged, key: &'static str, text: &str) -> Result<Url, SettingsError> {
    // Errors do not quote the text: a URL may carry credentials.
    let url = Url::parse(text.trim()).map_err(|e| merged.invalid(key, url_problem(e)))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(merged.invalid(key, "is not an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(merged.invalid(key, "must not have a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(merged.invalid(key, "must not carry credentials"));
    }
    let trimmed = url.as_str().trim_end_matches('/').to_owned();
    Url::parse(&trimmed).map_err(|e| merged.invalid(key, e.to_string()))
}

fn api_keys(merged: &Merged) -> Result<Vec<crate::access::ApiKey>, SettingsError> {
    let layer = &merged.layer;
    let mut keys: Vec<crate::access::ApiKey> = Vec::new();
    let mut add = |setting: &'static str, raw: &str, n: usize| -> Result<(), SettingsError> {
        if raw.trim().is_empty() {
            return Ok(());
        }
        let key = crate::access::parse_entry(raw)
            .map_err(|reason| merged.invalid(setting, format!("entry {n}: {reason}")))?;
        // The same key twice: the later entry's scopes win.
        keys.retain(|k: &crate::access::ApiKey| {
            !bool::from(subtle::ConstantTimeEq::ct_eq(
                k.key.expose().as_bytes(),
                key.key.expose().as_bytes(),
            ))
        });
        keys.push(key);
        Ok(())
    };
    for (n, secret) in layer.api_keys.iter().flat_map(ApiKeyList::keys).enumerate() {
        add("api_keys", secret.expose(), n + 1)?;
    }
    if let Some(path) = &layer.api_keys_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            merged.invalid(
                "api_keys_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if !line.starts_with('#') {
                add("api_keys_file", line, n + 1)?;
            }
        }
    }
    Ok(keys)
}

/// The NATS settings, checked; only read when `store = "nats"`.
fn nats_settings(layer: &Layer, merged: &Merged) -> Result<NatsSettings, SettingsError> {
    let url = layer.nats_url.as_deref().map(str::trim).unwrap_or_default();
    if url.is_empty() {
        return Err(merged.invalid(
            "nats_url",
            "is needed with store = nats (e.g. nats://nats:4222)",
        ));
    }
    for one in url.split(',') {
        let one = one.trim();
        let parsed = Url::parse(one).ok().filter(|u| {
            matches!(u.scheme(), "nats" | "tls" | "ws" | "wss") && u.host_str().is_some()
        });
        if parsed.is_none() {
            // Not quoted: a URL may carry credentials.
            return Err(merged.invalid(
                "nats_url",
                "each comma-separated entry must be a nats://, tls://, ws:// or wss:// URL with a host",
            ));
        }
    }
    let prefix = layer
        .nats_prefix
        .as_deref()
        .unwrap_or("line_adapter")
        .trim();
    let valid_prefix = !prefix.is_empty()
        && prefix.len() <= 32
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid_prefix {
        return Err(merged.invalid(
            "nats_prefix",
            "must be 1–32 letters, digits, `_` or `-` (it starts stream and bucket names)",
        ));
    }
    let replicas = layer.nats_replicas.unwrap_or(1);
    if !(1..=5).contains(&replicas) {
        return Err(merged.invalid("nats_replicas", "must be 1–5 (JetStream's limit)"));
    }
    for (setting, path) in [
        ("nats_creds_file", &layer.nats_creds_file),
        ("nats_tls_ca_file", &layer.nats_tls_ca_file),
    ] {
        if let Some(path) = path
            && !path.is_file()
        {
            return Err(merged.invalid(
                setting,
                format!("{} is not a readable file", path.display()),
            ));
        }
    }
    Ok(NatsSettings {
        url: url.to_owned(),
        creds_file: layer.nats_creds_file.clone(),
        tls_ca_file: layer.nats_tls_ca_file.clone(),
        prefix: prefix.to_owned(),
        replicas: replicas as usize,
    })
}

#[cfg(test)]
mod tests;
