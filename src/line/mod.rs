//! Everything that speaks LINE's Messaging API: the HTTP client, its error
//! classification, and outbound message conversion. Knows nothing of
//! storage or gRPC.

pub mod client;
pub mod error;
pub mod messages;
pub mod oauth;

pub use client::{LineClient, LineResponse};
pub use error::{ApiError, Classified, classify};
