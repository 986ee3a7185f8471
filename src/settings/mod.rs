//! Settings, layered: embedded defaults (`src/defaults.toml`) → the TOML
//! file given with `--config` → `LINE_ADAPTER_*` environment variables →
//! flags.
//!
//! - `layer`: [`Layer`], every setting declared once; serde reads the
//!   file and the environment into it, clap the flags.
//! - `sources`: the layers of one start, and the highest value of a
//!   setting with where it came from; `env`: the environment through serde;
//!   `flags`: help and parsing of the flags.
//! - One module per section turns its settings into [`Settings`] fields:
//!   `listeners`, `keys`, `line`, `tokens`, `store`, `retention`,
//!   `process`; `values` holds the shapes they share (addresses, URLs,
//!   files).
//!
//! A bad value stops start-up with an error naming the setting and where
//! it came from (built-in default, file, variable or flag).

use std::{
    ffi::OsString,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use url::Url;

use crate::{
    access::ApiKey,
    line::pace::RateLimits,
    secret::{MasterKey, Secret},
};

mod env;
mod error;
mod flags;
mod keys;
mod layer;
mod line;
mod listeners;
mod process;
mod retention;
mod sources;
mod store;
mod tokens;
mod values;

pub use error::{Origin, SettingsError};
pub use flags::whole_number;
pub use layer::{ApiKeyList, Layer};
pub use listeners::TlsFiles;
pub use process::LogFormat;
pub use store::{NatsSettings, StoreBackend};

use sources::Sources;

/// Prefix of every environment variable the service reads.
pub const ENV_PREFIX: &str = "LINE_ADAPTER_";
/// The lowest layer: every setting that has a default has it here.
const DEFAULTS: &str = include_str!("../defaults.toml");

/// `grpc_addr` → `LINE_ADAPTER_GRPC_ADDR`.
pub fn env_var_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// The validated settings the service runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    // === Listeners ===
    /// gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// PEM certificate chain and private key for TLS on the gRPC listener;
    /// `None`: plaintext (behind a mesh or on loopback).
    pub grpc_tls: Option<TlsFiles>,
    /// The operator chose an unauthenticated gRPC listener reachable from
    /// other hosts.
    pub insecure_no_auth: bool,
    /// HTTP listen address (webhooks, health, readiness).
    pub http_addr: SocketAddr,
    /// Public base URL of the webhook listener, as LINE reaches it.
    pub public_base_url: Option<Url>,
    /// Largest webhook body accepted, in bytes.
    pub webhook_body_limit: u64,

    // === Keys ===
    /// API keys gRPC callers must present, with their scopes; empty = no
    /// authentication.
    pub api_keys: Vec<ApiKey>,
    /// Master key for secrets at rest; `None` = use or create the data dir's
    /// key file.
    pub master_key: Option<MasterKey>,
    /// The master key being replaced: secrets it sealed still open, and are
    /// sealed again under `master_key` in the background.
    pub master_key_previous: Option<MasterKey>,

    // === LINE ===
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
    /// Whether senders' profiles are looked up from LINE and added to the
    /// log as profile records.
    pub lookup_profiles: bool,

    // === Tokens ===
    /// Renew issued access tokens this long before they expire.
    pub token_refresh_margin: Duration,
    /// Lifetime asked for channel access tokens v2.1 (`token_exp`).
    pub token_v2_1_lifetime: Duration,

    // === Store ===
    /// Folder holding the store and, when generated, the master key file.
    pub data_dir: PathBuf,
    /// Where state is kept: the embedded sled store, or NATS JetStream.
    pub store: StoreBackend,
    /// Bytes of store pages kept in memory (sled's cache).
    pub store_cache_bytes: u64,
    /// Writes stop while the data dir's filesystem has fewer free bytes
    /// than this (or than `store_min_free_percent` of it, if more).
    pub store_min_free_bytes: u64,
    /// Writes stop while less than this percentage of the data dir's
    /// filesystem is free.
    pub store_min_free_percent: u64,

    // === Retention ===
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

    // === Process ===
    pub log_format: LogFormat,
    /// How long a graceful stop waits for in-flight work.
    pub shutdown_grace: Duration,
    /// How long a stop waits, not ready but still serving, before it
    /// drains (load balancers and Kubernetes endpoints catch up).
    pub shutdown_delay: Duration,
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
    /// command-line values.
    pub fn load(
        config_file: Option<&Path>,
        env: impl IntoIterator<Item = (OsString, OsString)>,
        flags: Layer,
    ) -> Result<Loaded, SettingsError> {
        let sources = Sources::read(config_file, env, flags)?;
        let mut warnings = Vec::new();
        let settings = Settings::check(&sources, &mut warnings)?;
        Ok(Loaded { settings, warnings })
    }

    /// Each field from its section's check. Fields are checked in the order
    /// written, so with several bad values the first one here is reported.
    fn check(s: &Sources, warnings: &mut Vec<String>) -> Result<Settings, SettingsError> {
        // The gRPC address depends on whether keys are set.
        let api_keys = keys::api_keys(s)?;
        let insecure_no_auth = listeners::insecure_no_auth(s);
        Ok(Settings {
            lookup_profiles: line::lookup_profiles(s)?,
            grpc_addr: listeners::grpc_addr(s, &api_keys, insecure_no_auth)?,
            http_addr: listeners::http_addr(s)?,
            data_dir: store::data_dir(s)?,
            public_base_url: listeners::public_base_url(s, warnings)?,
            line_api_base: line::line_api_base(s)?,
            line_data_api_base: line::line_data_api_base(s)?,
            line_request_timeout: line::line_request_timeout(s)?,
            line_rate_limits: line::line_rate_limits(s)?,
            outbox_max_backoff: line::outbox_max_backoff(s)?,
            grpc_tls: listeners::grpc_tls(s)?,
            line_proxy: line::line_proxy(s)?,
            master_key: keys::master_key(s)?,
            log_format: process::log_format(s)?,
            webhook_body_limit: listeners::webhook_body_limit(s)?,
            shutdown_grace: process::shutdown_grace(s)?,
            shutdown_delay: process::shutdown_delay(s)?,
            event_retention: retention::event_retention(s)?,
            dedupe_window: retention::dedupe_window(s)?,
            event_retention_max_events: retention::event_retention_max_events(s),
            media_retention: retention::media_retention(s)?,
            media_max_bytes: retention::media_max_bytes(s)?,
            outbound_media_retention: retention::outbound_media_retention(s, warnings)?,
            outbound_media_max_bytes: retention::outbound_media_max_bytes(s)?,
            store_cache_bytes: store::store_cache_bytes(s)?,
            store_min_free_bytes: store::store_min_free_bytes(s)?,
            store_min_free_percent: store::store_min_free_percent(s)?,
            store: store::store(s)?,
            token_refresh_margin: tokens::token_refresh_margin(s)?,
            token_v2_1_lifetime: tokens::token_v2_1_lifetime(s)?,
            master_key_previous: keys::master_key_previous(s)?,
            api_keys,
            insecure_no_auth,
        })
    }
}

#[cfg(test)]
mod tests;
