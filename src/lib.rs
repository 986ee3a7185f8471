//! line-adapter connects LINE Official Accounts (LINE Messaging API) to the
//! Weiyu customer-service platform.
//!
//! ```text
//!  LINE ──HTTPS webhook──▶ [hyper :8080] ─verify─▶ event log ─▶ Subscribe ─▶ Weiyu
//!  Weiyu ──gRPC :50051──▶ [tonic: ChannelAdmin, Messaging] ─▶ outbox ─▶ LINE API
//! ```
//!
//! # Layout
//! Dependencies point down: `grpc`/`webhook` → `channels` → `store`.
//! - [`app`]: builds the parts, serves both listeners, drains on shutdown.
//! - [`settings`]: defaults → TOML file → `LINE_ADAPTER_*` env → flags.
//! - [`grpc`]: tonic server (ChannelAdmin, Messaging, health, reflection),
//!   API-key check, the error → status mapping.
//! - [`webhook`]: hyper HTTP listener: webhook route, `/healthz`, `/readyz`.
//! - [`channels`]: registered LINE channels: field rules, ids, sealing secrets.
//! - [`store`]: the storage boundary (trait + plain records) and its sled
//!   implementation.
//! - [`secret`]: the `Secret` type and at-rest encryption under the master key.
//! - [`proto`]: code generated from `proto/weiyu/line/v1`.
//! - [`shutdown`], [`telemetry`]: stop signal, logging.

pub mod app;
pub mod channels;
pub mod grpc;
pub mod proto;
pub mod secret;
pub mod settings;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod webhook;
