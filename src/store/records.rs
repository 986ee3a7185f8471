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
    /// The v2.1 assertion signing key in use (its `kid` once registered).
    #[serde(default)]
    pub key_pair: Option<KeyPairRecord>,
    /// A newer key pair generated while `key_pair` has a kid: it replaces
    /// `key_pair` when SetKid registers its kid, so tokens keep flowing
    /// during a rotation.
    #[serde(default)]
    pub pending_key_pair: Option<KeyPairRecord>,
    /// The pair (with its kid) that SetKid replaced, kept until the new
    /// pair has issued a token: if LINE refuses the new pair's assertion
    /// meanwhile (its key deleted in the console, say), tokens come from
    /// this one.
    #[serde(default)]
    pub previous_key_pair: Option<KeyPairRecord>,
    /// Unix time in milliseconds.
    pub create_time_ms: i64,
    /// Unix time in milliseconds.
    pub update_time_ms: i64,
}

impl ChannelRecord {
    /// The kid v2.1 assertions are signed under, once registered.
    pub fn kid(&self) -> Option<&str> {
        self.key_pair.as_ref().and_then(|pair| pair.kid.as_deref())
    }
}

/// An RSA key pair for v2.1 JWT assertions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPairRecord {
    /// PKCS#8 DER (base64) of the private key, sealed.
    pub private_key: SealedSecret,
    /// The public key as the JWK given to the LINE console.
    pub public_jwk: String,
    /// RFC 7638 thumbprint of the public key.
    pub thumbprint: String,
    /// The kid LINE's console assigned to the public key; `None` until
    /// SetKid.
    #[serde(default)]
    pub kid: Option<String>,
    pub create_time_ms: i64,
}

/// A channel's issued access tokens: the one in use and replaced ones not
/// yet revoked. Kept apart from the channel record: it changes with every
/// renewal, which is not a change of the channel's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenStateRecord {
    pub channel_id: String,
    /// Incremented on every change, for optimistic concurrency.
    pub version: u64,
    #[serde(default)]
    pub current: Option<IssuedTokenRecord>,
    /// Replaced tokens still to be revoked, oldest first.
    #[serde(default)]
    pub replaced: Vec<IssuedTokenRecord>,
    /// The last failed attempt to obtain a token; cleared by a success.
    #[serde(default)]
    pub last_error: Option<TokenErrorRecord>,
    /// The process obtaining a new token right now, and until when it may
    /// (Unix ms): replicas sharing a store ask LINE once, not once each.
    #[serde(default)]
    pub refresh_owner: String,
    #[serde(default)]
    pub refresh_until_ms: i64,
}

/// A token LINE issued to us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedTokenRecord {
    pub token: SealedSecret,
    pub mode: TokenMode,
    /// The LINE channel it was issued for.
    pub line_channel_id: String,
    /// v2.1: LINE's id of the token (`key_id`).
    #[serde(default)]
    pub key_id: String,
    /// v2.1: the kid of the key that signed the assertion.
    #[serde(default)]
    pub kid: String,
    pub issue_time_ms: i64,
    pub expire_time_ms: i64,
}

/// A failed refresh, for GetTokenStatus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenErrorRecord {
    pub message: String,
    pub time_ms: i64,
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

/// One record of the event log: a LINE event or a dead letter. The store
/// treats `payload` as opaque bytes (the service puts an encoded
/// `weiyu.line.v1.Event` there); the other fields are what readers filter
/// on without decoding it. Encoded with prost for compact, evolvable storage.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EventRecord {
    /// Gap-free, strictly increasing over the whole service; assigned on
    /// append, starting at 1.
    #[prost(uint64, tag = "1")]
    pub sequence: u64,
    /// Our channel id.
    #[prost(string, tag = "2")]
    pub channel_id: String,
    /// LINE's event `type`; empty for a dead letter.
    #[prost(string, tag = "3")]
    pub type_name: String,
    /// The chat (group, else room, else user id); empty when none.
    #[prost(string, tag = "4")]
    pub conversation_id: String,
    /// When the webhook carrying it was received, Unix ms.
    #[prost(int64, tag = "5")]
    pub receive_time_ms: i64,
    /// A signed body that could not be parsed, kept whole.
    #[prost(bool, tag = "6")]
    pub dead_letter: bool,
    /// Opaque to the store.
    #[prost(bytes = "bytes", tag = "7")]
    pub payload: bytes::Bytes,
    /// The reply token the outbound side may use (empty for events without
    /// one, and for standby events, whose token is not ours to use).
    #[prost(string, tag = "8")]
    pub reply_token: String,
}

/// A record to append, before it has a sequence number.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The record; its `sequence` is ignored and assigned by the store.
    pub record: EventRecord,
    /// The deduplication key: LINE's `webhookEventId` (for a dead letter, a
    /// digest of its body). A second append with the same key on the same
    /// channel is a duplicate; `None` never deduplicates.
    pub webhook_event_id: Option<String>,
    /// When LINE says a webhook event occurred (its `timestamp`, ms since
    /// the epoch); `None` for dead letters and the records line-adapter
    /// writes itself. A store whose own duplicate check covers the last
    /// minutes (JetStream's message ids) needs no lookup for an event this
    /// young: no copy of it can be older than that check.
    pub occurred_ms: Option<i64>,
}

/// A reply token of a recent event, for the outbound side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyToken {
    pub sequence: u64,
    pub token: String,
    /// When the event carrying it was received, Unix ms.
    pub receive_time_ms: i64,
}

/// What happened to one appended record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Stored under this new sequence number.
    Stored { sequence: u64 },
    /// The same `webhook_event_id` was stored before, under this sequence.
    Duplicate { sequence: u64 },
}

/// The sequence range the log holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBounds {
    /// Lowest sequence still retained; `head + 1` when the log is empty.
    pub oldest: u64,
    /// Highest sequence ever assigned; 0 before the first append.
    pub head: u64,
}

/// A durable consumer's acknowledged position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerPosition {
    /// Every sequence up to and including this one is acknowledged.
    pub acked: u64,
    /// When the position last moved, Unix ms.
    pub update_time_ms: i64,
}

/// What an ack does to a consumer's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckStep {
    /// Already there: nothing to write.
    Unchanged(ConsumerPosition),
    /// Moves (or creates) the position to this.
    MoveTo(ConsumerPosition),
}

impl ConsumerPosition {
    /// The rule every backend applies to an ack of `sequence` by consumer
    /// `name` at `current`: never backwards, the same position again is
    /// fine. The backend writes a `MoveTo` with its compare-and-set.
    pub fn ack(
        current: Option<&Self>,
        name: &str,
        sequence: u64,
        now_ms: i64,
    ) -> Result<AckStep, super::StoreError> {
        match current {
            Some(position) if sequence < position.acked => Err(super::StoreError::AckBackwards {
                consumer: name.to_owned(),
                acked: position.acked,
            }),
            Some(position) if sequence == position.acked => Ok(AckStep::Unchanged(*position)),
            _ => Ok(AckStep::MoveTo(Self {
                acked: sequence,
                update_time_ms: now_ms,
            })),
        }
    }
}

/// What was removed by one prune.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PruneReport {
    pub events: u64,
    pub dedupe_entries: u64,
    pub reply_tokens: u64,
}

/// What to drop from the log and the dedupe memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Records received before this (Unix ms) are dropped.
    pub events_before_ms: i64,
    /// At most this many records are kept (oldest dropped first); `None` =
    /// no count limit.
    pub max_events: Option<u64>,
    /// Deduplication entries of events received before this are forgotten.
    pub dedupe_before_ms: i64,
    /// Reply tokens received before this are forgotten.
    pub reply_tokens_before_ms: i64,
}

/// What kind of LINE call a delivery makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendKind {
    Reply,
    Push,
    Multicast,
    Broadcast,
    Narrowcast,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Stored, waiting for its (next) attempt.
    Queued,
    /// An attempt is in flight.
    Sending,
    /// LINE accepted it (200, or 409 for an already accepted retry key).
    Delivered,
    /// LINE refused it, or retries ran out.
    Failed,
    /// A reply whose request may or may not have reached LINE: it cannot be
    /// retried safely (replies have no retry key), so it is reported. Also
    /// a narrowcast whose progress LINE stopped reporting.
    Unknown,
    /// A narrowcast LINE accepted and sends in its own background: its
    /// progress is followed until LINE's phase is final. Not final.
    Accepted,
}

impl DeliveryState {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Delivered | Self::Failed | Self::Unknown)
    }
}

/// Which of a delivery's records are on the event log: the one of its
/// acceptance (queued) and the one of its final state. Records are appended
/// after the outbox state they show is durable, and this is advanced after
/// them; a crash in between leaves a record to append (again) on restart,
/// which the log's deduplication makes harmless.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoggedRecords {
    /// Neither yet.
    #[default]
    None,
    /// The queued record.
    Queued,
    /// Both. Deliveries stored before outbound records existed read as this:
    /// nothing is appended for them.
    Final,
}

impl LoggedRecords {
    fn legacy() -> Self {
        Self::Final
    }
}

/// A message LINE reports as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMessageRecord {
    pub id: String,
    #[serde(default)]
    pub quote_token: String,
}

/// LINE's error answer to a send, as stored (the store's own type: it knows
/// nothing of LINE's client). Field names match what earlier versions
/// stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineErrorRecord {
    pub http_status: u16,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub details: Vec<LineErrorDetailRecord>,
    #[serde(default)]
    pub request_id: String,
    /// Seconds LINE asked us to wait (429).
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineErrorDetailRecord {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub property: String,
}

/// One send in the outbox: written before its first attempt, updated after
/// each, kept for `GetDelivery`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// `dl_` + lowercase ULID.
    pub id: String,
    pub channel_id: String,
    pub kind: SendKind,
    /// The chat, for reply and push (`user:`, `group:` or `room:` + id).
    #[serde(default)]
    pub conversation: Option<String>,
    /// The LINE request body, exactly as sent on every attempt.
    pub body: serde_json::Value,
    /// `X-Line-Retry-Key` (empty for replies, which have none).
    #[serde(default)]
    pub retry_key: String,
    pub state: DeliveryState,
    pub attempts: u32,
    #[serde(default)]
    pub next_attempt_ms: Option<i64>,
    #[serde(default)]
    pub line_request_id: String,
    #[serde(default)]
    pub accepted_request_id: String,
    #[serde(default)]
    pub error: Option<LineErrorRecord>,
    /// Why a send failed without an answer from LINE (network, precondition).
    #[serde(default)]
    pub failure: Option<String>,
    #[serde(default)]
    pub sent_messages: Vec<SentMessageRecord>,
    #[serde(default)]
    pub idempotency_key: String,
    /// Digest of the request, to tell a repeated idempotency key with a
    /// different request apart.
    #[serde(default)]
    pub request_digest: String,
    /// For replies chosen by Send: the event whose token was used.
    #[serde(default)]
    pub reply_webhook_event_id: String,
    /// A chat to push to if LINE rejects the reply token.
    #[serde(default)]
    pub push_fallback: Option<String>,
    pub create_time_ms: i64,
    pub update_time_ms: i64,
    /// A reply whose token LINE refused, sent as a push instead.
    #[serde(default)]
    pub fell_back_to_push: bool,
    /// The messages as the caller gave them, for the log's records: opaque
    /// to the store (the outbox's encoding of the typed messages).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub typed_messages: String,
    /// Which of its records are on the event log.
    #[serde(default = "LoggedRecords::legacy")]
    pub logged: LoggedRecords,
    /// A narrowcast's progress at LINE, once LINE accepted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narrowcast: Option<NarrowcastRecord>,
}

/// Where LINE stands with an accepted narrowcast, as last read (LINE's
/// `NarrowcastProgressResponse`, in the store's own type).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NarrowcastRecord {
    /// The request id the progress is asked by.
    pub request_id: String,
    /// LINE's phase (`waiting`, `sending`, `succeeded`, `failed`); empty
    /// before the first read.
    #[serde(default)]
    pub phase: String,
    #[serde(default)]
    pub success_count: Option<i64>,
    #[serde(default)]
    pub failure_count: Option<i64>,
    #[serde(default)]
    pub target_count: Option<i64>,
    #[serde(default)]
    pub error_code: Option<i64>,
    #[serde(default)]
    pub failed_description: Option<String>,
    /// ISO 8601, as LINE wrote it.
    #[serde(default)]
    pub accepted_time: Option<String>,
    /// ISO 8601, as LINE wrote it.
    #[serde(default)]
    pub completed_time: Option<String>,
    /// How many times the progress was read (the pause before the next
    /// read grows with it).
    #[serde(default)]
    pub checks: u32,
    /// When it was last read (Unix ms).
    #[serde(default)]
    pub check_time_ms: Option<i64>,
}

impl DeliveryRecord {
    /// Whether nothing is left to do: final, with its records on the log.
    /// The rest is the work a restart takes up.
    pub fn is_settled(&self) -> bool {
        self.state.is_final() && self.logged == LoggedRecords::Final
    }
}
