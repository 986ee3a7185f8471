//! Every setting, declared once: [`Layer`].
//!
//! A field's name is its TOML key, its `LINE_ADAPTER_*` variable (upper
//! case) and its flag (`--` and dashes); its doc comment is the flag's
//! `--help` text. Each source of settings fills a `Layer` the same way:
//! serde reads the defaults, the file and the environment into it, clap
//! reads the flags into it. A setting that must not be a flag is marked
//! `#[arg(skip)]` and says why.
//!
//! Adding a setting: a field here, its default in `src/defaults.toml` (or a
//! reason in its doc why it has none), its check in the section module that
//! turns it into a [`Settings`](super::Settings) field, and the README's
//! Settings table.

use std::{path::PathBuf, sync::OnceLock};

use serde::{Deserialize, Deserializer, de};

use crate::secret::Secret;

/// One layer of settings; `None` = this layer does not set it.
#[derive(Debug, Default, Clone, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
#[command(mut_args = super::flags::describe)]
pub struct Layer {
    // === Listeners ===
    /// gRPC listen address [default: 127.0.0.1:50051 without API keys,
    /// 0.0.0.0:50051 with].
    #[arg(long, value_name = "IP:PORT")]
    pub grpc_addr: Option<String>,
    /// PEM certificate chain for TLS on the gRPC listener (with
    /// --grpc-tls-key-file).
    #[arg(long, value_name = "FILE")]
    pub grpc_tls_cert_file: Option<PathBuf>,
    /// PEM private key for TLS on the gRPC listener.
    #[arg(long, value_name = "FILE")]
    pub grpc_tls_key_file: Option<PathBuf>,
    /// Serve gRPC without API keys on an address other hosts can reach.
    /// Only for networks where something else authenticates callers.
    // A switch: present means true, absent leaves the lower layers' value.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub insecure_no_auth: Option<bool>,
    /// HTTP listen address for webhooks and probes.
    #[arg(long, value_name = "IP:PORT")]
    pub http_addr: Option<String>,
    /// Public https base URL LINE reaches the webhook listener at.
    #[arg(long, value_name = "URL")]
    pub public_base_url: Option<String>,
    /// Largest webhook body accepted, in bytes.
    #[arg(long, value_name = "BYTES")]
    pub webhook_body_limit: Option<u64>,

    // === Keys ===
    /// Comma-separated API keys callers must present (`key` or
    /// `key:scope+scope`); in the file also an array. Not a flag: command
    /// lines are visible to other users.
    #[arg(skip)]
    pub api_keys: Option<ApiKeyList>,
    /// File with one API key per line.
    #[arg(long, value_name = "FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// 32-byte key (64 hex or base64) sealing secrets at rest; unset: the
    /// data dir's master.key. Not a flag: command lines are visible.
    #[arg(skip)]
    pub master_key: Option<Secret>,
    /// The master key being replaced, while rotating. Not a flag, as
    /// `master_key`.
    #[arg(skip)]
    pub master_key_previous: Option<Secret>,

    // === LINE ===
    /// Base URL of LINE's Messaging API.
    #[arg(long, value_name = "URL")]
    pub line_api_base: Option<String>,
    /// Base URL of LINE's data API.
    #[arg(long, value_name = "URL")]
    pub line_data_api_base: Option<String>,
    /// HTTP(S) proxy for calls to LINE only [default: HTTPS_PROXY/NO_PROXY].
    #[arg(long, value_name = "URL")]
    pub line_proxy: Option<String>,
    /// Milliseconds one call to LINE may take.
    #[arg(long, value_name = "MS")]
    pub line_request_timeout_ms: Option<u64>,
    /// Rates each channel's calls to LINE are paced at, e.g.
    /// `push=2000/s,broadcast=60/h` [default: LINE's published rates].
    #[arg(long, value_name = "NAME=COUNT/UNIT,...")]
    pub line_rate_limits: Option<String>,
    /// Longest pause between two attempts of a send, ms.
    #[arg(long, value_name = "MS")]
    pub outbox_max_backoff_ms: Option<u64>,
    /// Look up senders' LINE profiles and add them to the log.
    #[arg(long, value_name = "BOOL")]
    pub lookup_profiles: Option<bool>,

    // === Tokens ===
    /// Seconds before expiry issued access tokens are renewed.
    #[arg(long, value_name = "SECONDS")]
    pub token_refresh_margin_seconds: Option<u64>,
    /// Lifetime of channel access tokens v2.1, in seconds, at most 30 days.
    #[arg(long, value_name = "SECONDS")]
    pub token_v2_1_lifetime_seconds: Option<u64>,

    // === Store ===
    /// Data folder.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sled` or `nats`. Not a flag (nor are the `nats_*` settings): a
    /// deployment chooses its store once, in the environment or the file.
    #[arg(skip)]
    pub store: Option<String>,
    /// NATS server URLs, comma-separated (with store = nats).
    #[arg(skip)]
    pub nats_url: Option<String>,
    /// NATS `.creds` file to connect with.
    #[arg(skip)]
    pub nats_creds_file: Option<PathBuf>,
    /// PEM CA bundle to verify the NATS servers with.
    #[arg(skip)]
    pub nats_tls_ca_file: Option<PathBuf>,
    /// Prefix of the streams and buckets created [default: line_adapter].
    #[arg(skip)]
    pub nats_prefix: Option<String>,
    /// JetStream replicas of what is created, 1–5 [default: 1].
    #[arg(skip)]
    pub nats_replicas: Option<u64>,
    /// Store pages kept in memory, MiB.
    #[arg(long, value_name = "MIB")]
    pub store_cache_mib: Option<u64>,
    /// Writes stop below this many free bytes on the data dir's filesystem.
    #[arg(long, value_name = "BYTES")]
    pub store_min_free_bytes: Option<u64>,
    /// Writes stop below this percentage free on the data dir's filesystem,
    /// 0–50.
    #[arg(long, value_name = "PERCENT")]
    pub store_min_free_percent: Option<u64>,

    // === Retention ===
    /// Seconds inbound events stay in the log.
    #[arg(long, value_name = "SECONDS")]
    pub event_retention_seconds: Option<u64>,
    /// Most events kept in the log, 0 = no limit.
    #[arg(long, value_name = "COUNT")]
    pub event_retention_max_events: Option<u64>,
    /// Seconds a webhookEventId is remembered for deduplication.
    #[arg(long, value_name = "SECONDS")]
    pub dedupe_window_seconds: Option<u64>,
    /// Seconds kept media stays.
    #[arg(long, value_name = "SECONDS")]
    pub media_retention_seconds: Option<u64>,
    /// Most bytes of kept media.
    #[arg(long, value_name = "BYTES")]
    pub media_max_bytes: Option<u64>,
    /// Seconds agents' uploads stay served to LINE; shorter means broken
    /// images in old chats.
    #[arg(long, value_name = "SECONDS")]
    pub outbound_media_retention_seconds: Option<u64>,
    /// Most bytes of agents' uploads kept.
    #[arg(long, value_name = "BYTES")]
    pub outbound_media_max_bytes: Option<u64>,

    // === Process ===
    /// `text` or `json`.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Seconds a graceful stop waits for in-flight calls.
    #[arg(long, value_name = "SECONDS")]
    pub shutdown_grace_seconds: Option<u64>,
    /// Seconds a stop waits, not ready but still serving, before it drains.
    #[arg(long, value_name = "SECONDS")]
    pub shutdown_delay_seconds: Option<u64>,
}

/// API keys as a TOML array or one comma-separated string (as in the
/// environment). Errors never quote a key.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "a list of strings or one comma-separated string"
)]
pub enum ApiKeyList {
    List(Vec<Secret>),
    Joined(Secret),
}

impl Layer {
    /// Every setting's key, in declaration order, as serde's derive lists
    /// them: the list is never written out a second time.
    pub(super) fn keys() -> &'static [&'static str] {
        static KEYS: OnceLock<&'static [&'static str]> = OnceLock::new();
        KEYS.get_or_init(|| {
            let mut keys: &'static [&'static str] = &[];
            // Refused by design: FieldNames only records the list.
            let _ = Layer::deserialize(FieldNames(&mut keys));
            keys
        })
    }
}

/// A deserializer that records the field names a struct asks for, and
/// deserializes nothing.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("only the field names are read"))
    }

    fn deserialize_any<V: de::Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only a struct's field names are read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}
