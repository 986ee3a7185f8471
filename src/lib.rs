//! line-adapter connects LINE Official Accounts (LINE Messaging API) to the
//! Weiyu customer-service platform.
//!
//! ```text
//!  LINE ──HTTPS webhook──▶ [http :8080] ─verify─▶ inbound ─▶ store ─▶ fanout ─▶ Subscribe ─▶ Weiyu
//!  Weiyu ──gRPC :50051──▶ [grpc: ChannelAdmin, Messaging] ─▶ outbox ─▶ line::api ─▶ LINE
//!  Weiyu ──gRPC :50051──▶ [grpc: OfficialAccount] ─────────────────▶ line::api ─▶ LINE
//! ```
//!
//! # Layout
//! Dependencies point down: `grpc`/`http` → `outbox`, `inbound`, `fanout`,
//! `media`, `tokens`, `channels` → `line`, `store`. `line` knows nothing of
//! storage or gRPC; `store` knows nothing of LINE.
//! - [`app`]: builds the parts (the service and `check` alike), serves both
//!   listeners, drains on shutdown.
//! - [`settings`]: defaults → TOML file → `LINE_ADAPTER_*` env → flags.
//!   Every setting is declared once, in `settings::Layer` (serde reads the
//!   file and the environment into it, clap the flags); `sources` gives a
//!   setting's highest value with its origin, and one module per section
//!   (listeners, keys, line, tokens, store, retention, process) checks it.
//! - [`access`]: API keys and the scopes they grant.
//! - [`grpc`]: tonic server (ChannelAdmin, Messaging, OfficialAccount,
//!   health, reflection), API-key check, and `grpc::status`, the one place
//!   errors become statuses (LINE's answers by one table).
//!   `grpc::official_account` manages the LINE Official Account (rich
//!   menus, chats, followers, insight, audiences, link tokens) straight
//!   through `line::api`, keeping nothing: that state is LINE's.
//!   `grpc::narrowcast` turns Narrowcast's audiences and demographic
//!   filters into LINE's objects for the outbox.
//! - [`http`]: the hyper listener: the webhook route, `/media/{token}`
//!   (agents' uploads, for LINE), `/healthz`, `/readyz`, `/metrics`, and
//!   webhook signatures.
//! - [`line`]: the one door to LINE: transport (`client`, the only user of
//!   reqwest), the LINE error, the channel-scoped client (token, renewal
//!   after a 401, retries), the pace of each channel's calls within LINE's
//!   rate limits (`pace`), every endpoint (`api`), token endpoints
//!   (`oauth`), v2.1 assertion keys, and LINE's JSON both ways (`wire`).
//! - [`inbound`]: verified webhook bodies → durable, deduplicated log records.
//! - [`fanout`]: Subscribe streams: catch-up from the log, then live, never
//!   slowing ingest.
//! - [`outbound`]: the log's records of sends (accepted, final), and a
//!   delivery as gRPC shows it.
//! - [`outbox`]: durable sends with retry keys, retries, leases and crash
//!   resume; an accepted narrowcast's progress at LINE followed until
//!   final (`outbox::narrowcast`).
//! - [`tokens`]: channel access tokens in every mode (obtain, cache, renew,
//!   revoke); a channel's [`line::ChannelClient`] takes them from here.
//! - [`channels`]: registered LINE channels: field rules, ids, sealed secrets.
//! - [`media`]: inbound media fetched from LINE at once and kept on disk
//!   (on NATS, in the shared object store every replica reads).
//! - [`uploads`]: agents' attachments (UploadMedia): type from the bytes,
//!   previews and durations, kept on disk (on NATS, in the shared object
//!   store) and served at `/media/{token}`.
//! - [`profiles`]: who wrote: senders' and groups' profiles looked up in
//!   the background and added to the log.
//! - [`lookup_cache`]: short-lived cache of LINE profile and group lookups.
//! - [`store`]: the storage boundary (trait + plain records), its sled
//!   and NATS JetStream implementations, and the watch that reports every
//!   failed write to [`fault`] and reopens a sled store in place after one.
//! - [`secret`]: the `Secret` type and at-rest encryption under the master key.
//! - [`rekey`]: master-key rotation (every stored secret sealed again under
//!   the new key, in the background).
//! - [`check`]: `line-adapter check`, the operator's first diagnosis.
//! - [`tail`]: `line-adapter tail`, a Subscribe client for operators.
//! - [`deliveries`]: `line-adapter deliveries`, the outbox as a table.
//! - [`connect`]: how those operator commands reach the service.
//! - [`metrics`]: Prometheus metrics for `/metrics`.
//! - [`services`]: the parts that exist once the store is open, shared by
//!   both listeners.
//! - [`proto`]: code generated from `proto/weiyu/line/v1`.
//! - [`drain`]: a graceful stop's drain, shared by both listeners.
//! - [`fault`]: store write failures: not ready at once, not live if they last.
//! - [`log_limit`]: repeated errors logged as counts, not lines.
//! - [`space`]: the data dir's low-space watermark (writes stop below it).
//! - [`time`]: the [`Clock`] every part reads the time from (the system's;
//!   in tests tokio's, which `pause()`/`advance()` move), and Timestamps.
//! - [`shutdown`], [`telemetry`]: stop signal, logging.

// What the binary, the tests, the benches and the fuzz targets use is
// public; everything else is the crate's own, so unused code is reported.
mod access;
pub mod app;
mod channels;
pub mod check;
mod connect;
pub mod deliveries;
mod drain;
mod fanout;
mod fault;
mod grpc;
mod http;
mod inbound;
mod line;
mod log_limit;
mod lookup_cache;
mod media;
mod metrics;
mod outbound;
mod outbox;
mod profiles;
pub mod proto;
mod rekey;
pub mod secret;
mod services;
pub mod settings;
pub mod shutdown;
mod space;
mod store;
pub mod tail;
pub mod telemetry;
mod time;
mod tokens;
mod uploads;

/// LINE's webhook signatures (HMAC-SHA256 of the body): to sign requests in
/// tests and load generators as LINE does.
pub use http::signature;
/// LINE's JSON both ways: webhook bodies into events, messages into LINE's
/// message objects (fuzzed in `fuzz/` and `tests/fuzz.rs`).
pub use line::wire;
/// The service's time: the system's, or tokio's (pausable) in tests.
pub use time::Clock;
