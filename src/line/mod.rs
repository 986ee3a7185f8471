//! Everything that speaks LINE, with no storage and no gRPC: the HTTP
//! transport ([`client`]), the one LINE error ([`error`]), the
//! channel-scoped client that holds the token and retry rules
//! ([`channel`]), the pace of each channel's calls within LINE's rate
//! limits ([`pace`]), every endpoint we call ([`api`]), the token
//! endpoints ([`oauth`]), the v2.1 assertion keys ([`assertion`]) and
//! LINE's JSON both ways ([`wire`]).

pub mod api;
pub mod assertion;
pub mod channel;
pub mod client;
pub mod error;
pub mod oauth;
pub mod pace;
pub mod wire;

pub use channel::{CallError, ChannelClient, TokenSource};
pub use client::LineClient;
pub use error::{ApiError, ApiErrorDetail, Error, NetworkError};
