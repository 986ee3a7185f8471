//! Plain record types that cross the storage boundary. They serialize as
//! JSON (readable with any tool, tolerant of fields added later).

use serde::{Deserialize, Serialize};

/// How a channel obtains its access token (mirrors the proto's TokenMode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenMode {
    LongLived,
    ShortLivedV2,
    V21Jwt,
    StatelessV3,
}

/// A secret encrypted with the master key, with the fingerprint of its
/// plaintext (safe to show) kept beside it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    /// `Cipher::encrypt` output, base64 in storage.
    #[serde(with = "base64_bytes")]
    pub ciphertext: Vec<u8>,
    /// `Secret::fingerprint` of the plaintext.
    pub fingerprint: String,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedSecret(sha256:{})", self.fingerprint)
    }
}

/// A replaced channel secret that still verifies webhooks until `valid_until_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSecret {
    pub secret: SealedSecret,
    /// Unix time in milliseconds after which the old secret is refused.
    pub valid_until_ms: i64,
}

/// A registered LINE channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRecord {
    /// Our id, `ch_` + lowercase ULID.
    pub id: String,
    /// Incremented on every change, for optimistic concurrency.
    pub version: u64,
    pub display_name: String,
    pub line_channel_id: String,
    pub channel_secret: SealedSecret,
    #[serde(default)]
    pub previous_channel_secret: Option<PreviousSecret>,
    pub token_mode: TokenMode,
    #[serde(default)]
    pub access_token: Option<SealedSecret>,
    #[serde(default)]
    pub kid: Option<String>,
    /// Unix time in milliseconds.
    pub create_time_ms: i64,
    /// Unix time in milliseconds.
    pub update_time_ms: i64,
}

mod base64_bytes {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(D::Error::custom)
    }
}
