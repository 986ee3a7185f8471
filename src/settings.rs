//! Settings, layered: embedded defaults (`defaults.toml`) → the TOML file
//! given with `--config` → `LINE_ADAPTER_*` environment variables → flags.
//!
//! Every layer fills the same [`Layer`] of optional values; the merged layer
//! is validated once into [`Settings`]. A bad value stops start-up with an
//! error naming the setting and where it came from (file, variable or flag).

use std::{
    collections::HashMap,
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use url::Url;

use crate::secret::{MasterKey, Secret};

/// Prefix of every environment variable the service reads.
pub const ENV_PREFIX: &str = "LINE_ADAPTER_";
const DEFAULTS: &str = include_str!("defaults.toml");
const DEFAULT_GRPC_PORT: u16 = 50051;
/// Bounds of `webhook_body_limit`: LINE's requests are at most a few hundred
/// KiB; below 1 KiB even the "Verify" request could not pass.
const BODY_LIMIT_RANGE: std::ops::RangeInclusive<u64> = 1024..=64 * 1024 * 1024;

/// The validated settings the service runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// HTTP listen address (webhooks, health, readiness).
    pub http_addr: SocketAddr,
    /// Folder holding the store and, when generated, the master key file.
    pub data_dir: PathBuf,
    /// Public base URL of the webhook listener, as LINE reaches it.
    pub public_base_url: Option<Url>,
    /// Base of LINE's Messaging API.
    pub line_api_base: Url,
    /// Base of LINE's data API (message content).
    pub line_data_api_base: Url,
    /// API keys gRPC callers must present; empty = no authentication.
    pub api_keys: Vec<Secret>,
    /// Master key for secrets at rest; `None` = use or create the data dir's
    /// key file.
    pub master_key: Option<MasterKey>,
    pub log_format: LogFormat,
    /// Largest webhook body accepted, in bytes.
    pub webhook_body_limit: u64,
    /// How long a graceful stop waits for in-flight work.
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// One layer of settings; `None` = this layer does not set it. Field names
/// are the TOML keys; the environment variable is `LINE_ADAPTER_` followed by
/// the name in upper case.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub grpc_addr: Option<String>,
    pub http_addr: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub public_base_url: Option<String>,
    pub line_api_base: Option<String>,
    pub line_data_api_base: Option<String>,
    pub api_keys: Option<Vec<String>>,
    pub api_keys_file: Option<PathBuf>,
    pub master_key: Option<String>,
    pub log_format: Option<String>,
    pub webhook_body_limit: Option<u64>,
    pub shutdown_grace_seconds: Option<u64>,
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
            line_data_api_base, api_keys, api_keys_file, master_key, log_format,
            webhook_body_limit, shutdown_grace_seconds);
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
        env: impl IntoIterator<Item = (String, String)>,
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
            let file: Layer = toml::from_str(&text).map_err(|e| SettingsError::ParseFile {
                path: path.to_owned(),
                message: e.message().to_owned(),
            })?;
            merged.apply(file, |_| Origin::File(path.to_owned()));
        }

        let env_layer = env_layer(env, &mut warnings)?;
        merged.apply(env_layer, |key| Origin::Env(env_var_name(key)));
        merged.apply(flags, |key| {
            Origin::Flag(format!("--{}", key.replace('_', "-")))
        });

        let settings = validate(&merged, &mut warnings)?;
        Ok(Loaded { settings, warnings })
    }
}

/// `grpc_addr` → `LINE_ADAPTER_GRPC_ADDR`.
pub fn env_var_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

fn env_layer(
    env: impl IntoIterator<Item = (String, String)>,
    warnings: &mut Vec<String>,
) -> Result<Layer, SettingsError> {
    let mut layer = Layer::default();
    for (name, value) in env {
        let Some(key) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let parse_u64 = |value: &str| {
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| SettingsError::Invalid {
                    key: "",
                    origin: Origin::Env(name.clone()),
                    reason: format!("`{value}` is not a whole number"),
                })
        };
        match key.to_ascii_lowercase().as_str() {
            "grpc_addr" => layer.grpc_addr = Some(value),
            "http_addr" => layer.http_addr = Some(value),
            "data_dir" => layer.data_dir = Some(value.into()),
            "public_base_url" => layer.public_base_url = Some(value),
            "line_api_base" => layer.line_api_base = Some(value),
            "line_data_api_base" => layer.line_data_api_base = Some(value),
            "api_keys" => {
                layer.api_keys = Some(value.split(',').map(str::to_owned).collect());
            }
            "api_keys_file" => layer.api_keys_file = Some(value.into()),
            "master_key" => layer.master_key = Some(value),
            "log_format" => layer.log_format = Some(value),
            "webhook_body_limit" => {
                layer.webhook_body_limit =
                    Some(parse_u64(&value).map_err(|e| with_key(e, "webhook_body_limit"))?);
            }
            "shutdown_grace_seconds" => {
                layer.shutdown_grace_seconds =
                    Some(parse_u64(&value).map_err(|e| with_key(e, "shutdown_grace_seconds"))?);
            }
            _ => warnings.push(format!(
                "environment variable {name} is not a setting of this version; ignored"
            )),
        }
    }
    Ok(layer)
}

fn with_key(err: SettingsError, key: &'static str) -> SettingsError {
    match err {
        SettingsError::Invalid { origin, reason, .. } => SettingsError::Invalid {
            key,
            origin,
            reason,
        },
        other => other,
    }
}

fn validate(merged: &Merged, warnings: &mut Vec<String>) -> Result<Settings, SettingsError> {
    let layer = &merged.layer;
    let required = |key: &'static str| merged.invalid(key, "must be set");

    let api_keys = api_keys(merged)?;
    let grpc_addr = match &layer.grpc_addr {
        Some(text) => parse_addr(merged, "grpc_addr", text)?,
        // Without keys nobody but this host may call: see defaults.toml.
        None if api_keys.is_empty() => SocketAddr::from(([127, 0, 0, 1], DEFAULT_GRPC_PORT)),
        None => SocketAddr::from(([0, 0, 0, 0], DEFAULT_GRPC_PORT)),
    };
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

    let master_key = match layer.master_key.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(
            MasterKey::parse(&Secret::new(text))
                .map_err(|e| merged.invalid("master_key", e.to_string()))?,
        ),
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

    Ok(Settings {
        grpc_addr,
        http_addr,
        data_dir,
        public_base_url,
        line_api_base,
        line_data_api_base,
        api_keys,
        master_key,
        log_format,
        webhook_body_limit,
        shutdown_grace: Duration::from_secs(grace),
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

/// An http(s) URL without query or fragment, with no trailing slash, so
/// that paths can be appended to it.
fn parse_base_url(merged: &Merged, key: &'static str, text: &str) -> Result<Url, SettingsError> {
    let url = Url::parse(text.trim())
        .map_err(|e| merged.invalid(key, format!("`{text}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(merged.invalid(key, format!("`{text}` is not an http(s) URL with a host")));
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

fn api_keys(merged: &Merged) -> Result<Vec<Secret>, SettingsError> {
    let layer = &merged.layer;
    let mut keys: Vec<Secret> = Vec::new();
    let mut add = |key: &'static str, raw: &str| -> Result<(), SettingsError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(());
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(merged.invalid(key, "an API key must not contain whitespace"));
        }
        keys.push(Secret::new(raw));
        Ok(())
    };
    for raw in layer.api_keys.iter().flatten() {
        add("api_keys", raw)?;
    }
    if let Some(path) = &layer.api_keys_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            merged.invalid(
                "api_keys_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        for line in text.lines() {
            let line = line.trim();
            if !line.starts_with('#') {
                add("api_keys_file", line)?;
            }
        }
    }
    keys.dedup();
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn embedded_defaults_give_a_runnable_service() {
        let loaded = Settings::load(None, env(&[]), Layer::default()).unwrap();
        let s = loaded.settings;
        assert_eq!(s.grpc_addr, "127.0.0.1:50051".parse().unwrap());
        assert_eq!(s.http_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(s.line_api_base.as_str(), "https://api.line.me/");
        assert_eq!(s.webhook_body_limit, 1024 * 1024);
        assert_eq!(s.log_format, LogFormat::Text);
        assert!(s.api_keys.is_empty() && s.master_key.is_none());
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn api_keys_open_the_grpc_port_to_all_interfaces() {
        let s = Settings::load(
            None,
            env(&[("LINE_ADAPTER_API_KEYS", "k1,,k2")]),
            Layer::default(),
        )
        .unwrap()
        .settings;
        assert_eq!(s.grpc_addr, "0.0.0.0:50051".parse().unwrap());
        assert_eq!(s.api_keys.len(), 2);
    }

    #[test]
    fn flags_beat_env_and_env_beats_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "http_addr = \"127.0.0.1:1\"\ndata_dir = \"/from/file\"\nlog_format = \"json\"\n",
        )
        .unwrap();
        let flags = Layer {
            http_addr: Some("127.0.0.1:3".into()),
            ..Layer::default()
        };
        let s = Settings::load(
            Some(&file),
            env(&[
                ("LINE_ADAPTER_HTTP_ADDR", "127.0.0.1:2"),
                ("LINE_ADAPTER_DATA_DIR", "/from/env"),
            ]),
            flags,
        )
        .unwrap()
        .settings;
        assert_eq!(s.http_addr, "127.0.0.1:3".parse().unwrap());
        assert_eq!(s.data_dir, PathBuf::from("/from/env"));
        assert_eq!(s.log_format, LogFormat::Json);
    }

    #[test]
    fn bad_values_name_the_setting_and_its_origin() {
        let err = Settings::load(
            None,
            env(&[("LINE_ADAPTER_GRPC_ADDR", "nowhere")]),
            Layer::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("grpc_addr") && err.contains("LINE_ADAPTER_GRPC_ADDR"),
            "{err}"
        );

        let err = Settings::load(
            None,
            env(&[("LINE_ADAPTER_WEBHOOK_BODY_LIMIT", "lots")]),
            Layer::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("webhook_body_limit"), "{err}");

        let err = Settings::load(
            None,
            env(&[("LINE_ADAPTER_MASTER_KEY", "short")]),
            Layer::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("master_key") && !err.contains("short"),
            "{err}"
        );

        let flags = Layer {
            public_base_url: Some("ftp://x".into()),
            ..Layer::default()
        };
        let err = Settings::load(None, env(&[]), flags)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("public_base_url") && err.contains("--public-base-url"),
            "{err}"
        );
    }

    #[test]
    fn unknown_file_keys_are_errors_and_unknown_env_vars_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "grpc_adr = \"127.0.0.1:1\"\n").unwrap();
        let err = Settings::load(Some(&file), env(&[]), Layer::default()).unwrap_err();
        assert!(err.to_string().contains("grpc_adr"), "{err}");

        let loaded =
            Settings::load(None, env(&[("LINE_ADAPTER_NOPE", "1")]), Layer::default()).unwrap();
        assert!(loaded.warnings[0].contains("LINE_ADAPTER_NOPE"));
    }

    #[test]
    fn base_urls_lose_their_trailing_slash() {
        let flags = Layer {
            public_base_url: Some("https://line.example.com/".into()),
            ..Layer::default()
        };
        let s = Settings::load(None, env(&[]), flags).unwrap().settings;
        assert_eq!(
            s.public_base_url.unwrap().as_str().trim_end_matches('/'),
            "https://line.example.com"
        );
    }
}
