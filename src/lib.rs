//! line-adapter connects LINE Official Accounts (LINE Messaging API) to the
//! Weiyu customer-service platform.
//!
//! ```text
//!  LINE ──HTTPS webhook──▶ [hyper :8080] ─verify─▶ event log ─▶ Subscribe ─▶ Weiyu
//!  Weiyu ──gRPC :50051──▶ [tonic: ChannelAdmin, Messaging] ─▶ outbox ─▶ LINE API
//! ```
//!
//! # Layout
//! Dependencies point down: `grpc`/`webhook` → `channels`, `inbound`,
//! `fanout` → `store`.
//! - [`app`]: builds the parts, serves both listeners, drains on shutdown.
//! - [`access`]: API keys and the scopes they grant.
//! - [`settings`]: defaults → TOML file → `LINE_ADAPTER_*` env → flags.
//! - [`grpc`]: tonic server (ChannelAdmin, Messaging, health, reflection),
//!   API-key check, the error → status mapping.
//! - [`webhook`]: hyper HTTP listener: webhook route, `/healthz`, `/readyz`.
//! - [`check`]: `line-adapter check`, the operator's first diagnosis.
//! - [`channels`]: registered LINE channels: field rules, ids, sealing secrets.
//! - [`inbound`]: verified webhook bodies → durable, deduplicated log records.
//! - [`fanout`]: Subscribe streams: catch-up from the log, then live, never
//!   slowing ingest.
//! - [`store`]: the storage boundary (trait + plain records) and its sled
//!   implementation.
//! - [`secret`]: the `Secret` type and at-rest encryption under the master key.
//! - [`rekey`]: master-key rotation (every stored secret sealed again under
//!   the new key, in the background).
//! - [`proto`]: code generated from `proto/weiyu/line/v1`.
//! - [`line`]: LINE's HTTP API: client, error classification, messages.
//! - [`outbox`]: durable sends with retry keys, retries and crash resume.
//! - [`lookup_cache`]: short-lived cache of LINE profile and group lookups.
//! - [`tokens`]: channel access tokens in every mode (obtain, cache, renew,
//!   revoke) and the v2.1 assertion signing keys.
//! - [`media`]: inbound media fetched from LINE at once and kept on disk.
//! - [`metrics`]: Prometheus metrics for `/metrics`.
//! - [`services`]: the parts that exist once the store is open, shared by
//!   both listeners.
//! - [`tail`]: `line-adapter tail`, a Subscribe client for operators.
//! - [`shutdown`], [`telemetry`], [`time`]: stop signal, logging, clocks.

pub mod access;
pub mod app;
pub mod channels;
pub mod check;
pub mod fanout;
pub mod grpc;
pub mod inbound;
pub mod line;
pub mod lookup_cache;
pub mod media;
pub mod metrics;
pub mod outbox;
pub mod proto;
pub mod rekey;
pub mod secret;
pub mod services;
pub mod settings;
pub mod shutdown;
pub mod store;
pub mod tail;
pub mod telemetry;
pub mod time;
pub mod tokens;
pub mod webhook;
