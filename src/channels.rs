//! Registered LINE channels: the rules for their fields, their ids, and how
//! their secrets are sealed before they reach the store.
//!
//! The gRPC layer validates and converts requests with [`validate`], then
//! calls [`Channels`]; nothing here knows about gRPC.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::{
    secret::{Cipher, CipherError, Secret},
    store::{
        ChannelRecord, KeyPairRecord, PreviousSecret, SealedSecret, Store, StoreError, TokenMode,
    },
    time::Clock,
};

/// Prefix of our channel ids.
pub const CHANNEL_ID_PREFIX: &str = "ch_";
/// How often an update is retried when another update won the race.
const UPDATE_ATTEMPTS: usize = 8;

/// Field rules shared by create and update. Each returns the normalized
/// value or the reason it is refused (the caller names the field).
pub mod validate {
    use super::CHANNEL_ID_PREFIX;

    pub const DISPLAY_NAME_MAX_CHARS: usize = 100;
    pub const LINE_CHANNEL_ID_MAX_DIGITS: usize = 20;
    pub const CHANNEL_SECRET_HEX_LEN: usize = 32;
    pub const ACCESS_TOKEN_MAX_LEN: usize = 1000;
    /// Length of a lowercase ULID.
    const ULID_LEN: usize = 26;

    /// 1–100 characters (Unicode scalar values) after trimming, no control
    /// characters.
    pub fn display_name(value: &str) -> Result<String, String> {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err("must not be empty".into());
        }
        let chars = trimmed.chars().count();
        if chars > DISPLAY_NAME_MAX_CHARS {
            return Err(format!(
                "must be at most {DISPLAY_NAME_MAX_CHARS} characters (got {chars})"
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(trimmed.to_owned())
    }

    pub fn line_channel_id(value: &str) -> Result<String, String> {
        let value = value.trim();
        if value.is_empty() {
            return Err("must not be empty".into());
        }
        if !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must contain digits only (LINE's channel ids are 10 digits)".into());
        }
        if value.len() > LINE_CHANNEL_ID_MAX_DIGITS {
            return Err(format!(
                "must be at most {LINE_CHANNEL_ID_MAX_DIGITS} digits (LINE channel ids are 10)"
            ));
        }
        Ok(value.to_owned())
    }

    /// The reason never quotes the value: it is a secret. The result is
    /// lowercase, as the console shows it: LINE signs webhooks with the
    /// secret string itself as the HMAC key, so `AB..` would never verify.
    pub fn channel_secret(value: &str) -> Result<String, String> {
        let value = value.trim();
        if value.is_empty() {
            return Err("must not be empty".into());
        }
        if value.len() != CHANNEL_SECRET_HEX_LEN || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "must be exactly {CHANNEL_SECRET_HEX_LEN} hexadecimal characters, as shown in the LINE Developers Console"
            ));
        }
        Ok(value.to_ascii_lowercase())
    }

    /// The reason never quotes the value: it is a secret.
    pub fn access_token(value: &str) -> Result<String, String> {
        let value = value.trim();
        if value.is_empty() {
            return Err("must not be empty".into());
        }
        if value.len() > ACCESS_TOKEN_MAX_LEN {
            return Err(format!("must be at most {ACCESS_TOKEN_MAX_LEN} characters"));
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be printable ASCII without spaces".into());
        }
        Ok(value.to_owned())
    }

    pub const KID_MAX_CHARS: usize = 128;

    /// The kid LINE's console shows: 1–128 printable ASCII characters.
    pub fn kid(value: &str) -> Result<String, String> {
        let value = value.trim();
        if value.is_empty() {
            return Err("must not be empty".into());
        }
        if value.len() > KID_MAX_CHARS {
            return Err(format!("must be at most {KID_MAX_CHARS} characters"));
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "must be printable ASCII without spaces, as the LINE Developers Console shows it"
                    .into(),
            );
        }
        Ok(value.to_owned())
    }

    pub fn channel_id(value: &str) -> Result<String, String> {
        let value = value.trim();
        if value.is_empty() {
            return Err("must not be empty".into());
        }
        match value.strip_prefix(CHANNEL_ID_PREFIX) {
            Some(rest)
                if rest.len() == ULID_LEN
                    && rest
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()) =>
            {
                Ok(value.to_owned())
            }
            _ => Err(format!(
                "is not a channel id (`{CHANNEL_ID_PREFIX}` followed by 26 lowercase letters and digits)"
            )),
        }
    }
}

/// What can go wrong with a channel operation, classified for the edge.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("channel {0} not found")]
    NotFound(String),
    #[error("LINE channel id {line_channel_id} is already registered as channel {existing_id}")]
    LineChannelIdTaken {
        line_channel_id: String,
        existing_id: String,
    },
    /// The request is valid but the channel's state does not allow it.
    #[error("{field}: {reason}")]
    Precondition { field: &'static str, reason: String },
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Cipher(#[from] CipherError),
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for ChannelError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound { id } => ChannelError::NotFound(id),
            StoreError::LineChannelIdTaken {
                line_channel_id,
                existing_id,
            } => ChannelError::LineChannelIdTaken {
                line_channel_id,
                existing_id,
            },
            other => ChannelError::Store(other),
        }
    }
}

/// A channel to register, already validated.
#[derive(Debug)]
pub struct NewChannel {
    pub display_name: String,
    pub line_channel_id: String,
    pub channel_secret: Secret,
    pub access_token: Option<Secret>,
    pub token_mode: Option<TokenMode>,
}

/// Changes to a channel, already validated; `None` = leave as is.
#[derive(Debug, Default)]
pub struct ChannelChanges {
    pub display_name: Option<String>,
    pub line_channel_id: Option<String>,
    /// The new secret and how long the replaced one keeps verifying webhooks.
    pub channel_secret: Option<(Secret, Duration)>,
    /// `Some(None)` removes the stored token.
    pub access_token: Option<Option<Secret>>,
    /// `Some(None)` = back to the default for the channel's credentials.
    pub token_mode: Option<Option<TokenMode>>,
}

/// Channel operations over the store.
#[derive(Clone)]
pub struct Channels {
    store: Arc<dyn Store>,
    cipher: Cipher,
    /// Dates creations, updates and secrets' grace periods (and ids).
    clock: Clock,
    ids: Arc<Mutex<ulid::Generator>>,
    opened: Arc<Mutex<HashMap<Vec<u8>, Secret>>>,
}

/// How many opened webhook secrets are kept; past it the memory starts over.
const OPENED_SECRETS_KEPT: usize = 1024;

impl Channels {
    pub fn new(store: Arc<dyn Store>, cipher: Cipher, clock: Clock) -> Self {
        Self {
            store,
            cipher,
            clock,
            ids: Arc::new(Mutex::new(ulid::Generator::new())),
            opened: Arc::default(),
        }
    }

    /// A new id: `ch_` + lowercase ULID. ULIDs sort by creation time, so
    /// listing in id order lists in creation order; the monotonic generator
    /// keeps that true within one millisecond.
    fn new_id(&self) -> String {
        let mut ids = self
            .ids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let ulid = ids
            .generate_from_datetime(self.clock.now())
            .unwrap_or_else(|overflow| overflow.commit_overflow_random());
        format!(
            "{CHANNEL_ID_PREFIX}{}",
            ulid.to_string().to_ascii_lowercase()
        )
    }

    fn seal(&self, channel_id: &str, field: &str, secret: &Secret) -> SealedSecret {
        SealedSecret {
            ciphertext: self
                .cipher
                .encrypt_secret(&seal_context(channel_id, field), secret),
            fingerprint: secret.fingerprint(),
        }
    }

    /// The channel secret in plaintext, for webhook verification.
    pub fn open_secret(&self, record: &ChannelRecord) -> Result<Secret, ChannelError> {
        Ok(self.cipher.decrypt_secret(
            &seal_context(&record.id, "channel_secret"),
            &record.channel_secret.ciphertext,
        )?)
    }

    /// The stored channel access token, if any.
    pub fn access_token(&self, record: &ChannelRecord) -> Result<Option<Secret>, ChannelError> {
        record
            .access_token
            .as_ref()
            .map(|sealed| {
                self.cipher.decrypt_secret(
                    &seal_context(&record.id, "access_token"),
                    &sealed.ciphertext,
                )
            })
            .transpose()
            .map_err(ChannelError::from)
    }

    /// Seals a token LINE issued for this channel.
    pub fn seal_issued_token(&self, channel_id: &str, token: &Secret) -> SealedSecret {
        self.seal(channel_id, "issued_token", token)
    }

    pub fn open_issued_token(
        &self,
        channel_id: &str,
        sealed: &SealedSecret,
    ) -> Result<Secret, ChannelError> {
        Ok(self.cipher.decrypt_secret(
            &seal_context(channel_id, "issued_token"),
            &sealed.ciphertext,
        )?)
    }

    /// The secrets that verify this channel's webhooks now: the current one
    /// and, during its grace period, the one it replaced.
    pub fn webhook_secrets(
        &self,
        record: &ChannelRecord,
        now_ms: i64,
    ) -> Result<Vec<Secret>, ChannelError> {
        let mut secrets = vec![self.open_remembered(
            &record.id,
            "channel_secret",
            &record.channel_secret.ciphertext,
        )?];
        if let Some(previous) = &record.previous_channel_secret
            && previous.valid_until_ms > now_ms
        {
            secrets.push(self.open_remembered(
                &record.id,
                "previous_channel_secret",
                &previous.secret.ciphertext,
            )?);
        }
        Ok(secrets)
    }

    /// Opens a sealed secret of a webhook's channel, once per sealed value:
    /// every webhook checks its signature, and opening the secret each time
    /// cost about 2 % of ingest's CPU. Sealed bytes stand for one value for
    /// good (each seal has its own nonce, and its context is part of the
    /// key), so a remembered one never goes stale: a rotated secret is
    /// simply no longer asked for.
    fn open_remembered(
        &self,
        channel_id: &str,
        field: &str,
        ciphertext: &[u8],
    ) -> Result<Secret, ChannelError> {
        let context = seal_context(channel_id, field);
        let mut key = Vec::with_capacity(context.len() + 1 + ciphertext.len());
        key.extend_from_slice(context.as_bytes());
        key.push(0);
        key.extend_from_slice(ciphertext);
        if let Some(secret) = self.opened.lock().expect("opened secrets").get(&key) {
            return Ok(secret.clone());
        }
        let secret = self.cipher.decrypt_secret(&context, ciphertext)?;
        let mut opened = self.opened.lock().expect("opened secrets");
        if opened.len() >= OPENED_SECRETS_KEPT {
            opened.clear();
        }
        opened.insert(key, secret.clone());
        Ok(secret)
    }

    pub async fn create(&self, new: NewChannel) -> Result<ChannelRecord, ChannelError> {
        let token_mode = resolve_token_mode(new.token_mode, new.access_token.is_some(), None)?;
        let id = self.new_id();
        let now = self.clock.now_ms();
        let record = ChannelRecord {
            channel_secret: self.seal(&id, "channel_secret", &new.channel_secret),
            access_token: new
                .access_token
                .as_ref()
                .map(|token| self.seal(&id, "access_token", token)),
            id,
            version: 1,
            display_name: new.display_name,
            line_channel_id: new.line_channel_id,
            previous_channel_secret: None,
            token_mode,
            key_pair: None,
            pending_key_pair: None,
            previous_key_pair: None,
            create_time_ms: now,
            update_time_ms: now,
        };
        self.store.insert_channel(&record).await?;
        Ok(record)
    }

    pub async fn get(&self, id: &str) -> Result<ChannelRecord, ChannelError> {
        self.store
            .get_channel(id)
            .await?
            .ok_or_else(|| ChannelError::NotFound(id.to_owned()))
    }

    /// [`Channels::get`] as this process last saw the channel, which may
    /// trail another replica's write by moments (see
    /// [`Store::peek_channel`]): for the webhook path.
    pub async fn peek(&self, id: &str) -> Result<ChannelRecord, ChannelError> {
        self.store
            .peek_channel(id)
            .await?
            .ok_or_else(|| ChannelError::NotFound(id.to_owned()))
    }

    pub async fn list(
        &self,
        after_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ChannelRecord>, ChannelError> {
        Ok(self.store.list_channels(after_id, limit).await?)
    }

    /// Applies `changes` with optimistic concurrency: read, change, write if
    /// nobody changed it meanwhile, else try again.
    pub async fn update(
        &self,
        id: &str,
        changes: ChannelChanges,
    ) -> Result<ChannelRecord, ChannelError> {
        self.modify(id, |current| self.apply(current, &changes))
            .await
    }

    /// Generates a v2.1 assertion signing key pair. With no registered kid
    /// it becomes the channel's key pair at once; while a kid is in use it
    /// waits as the pending pair until SetKid registers its kid.
    pub async fn generate_key_pair(
        &self,
        id: &str,
    ) -> Result<(ChannelRecord, KeyPairRecord), ChannelError> {
        // RSA generation takes tens of milliseconds: off the async workers.
        let generated = tokio::task::spawn_blocking(crate::line::assertion::generate)
            .await
            .map_err(|err| ChannelError::Internal(format!("key generation stopped: {err}")))?
            .map_err(|err| ChannelError::Internal(err.to_string()))?;
        let pair = KeyPairRecord {
            private_key: self.seal(id, "signing_key", &generated.private_key),
            public_jwk: generated.public_jwk,
            thumbprint: generated.thumbprint,
            kid: None,
            create_time_ms: self.clock.now_ms(),
        };
        let record = self
            .modify(id, |current| {
                let mut next = current.clone();
                if current.kid().is_some() {
                    next.pending_key_pair = Some(pair.clone());
                } else {
                    next.key_pair = Some(pair.clone());
                    next.pending_key_pair = None;
                }
                Ok(next)
            })
            .await?;
        Ok((record, pair))
    }

    /// Registers the kid LINE's console gave the newest public key: the
    /// pending pair (if any) becomes the pair in use.
    pub async fn set_kid(&self, id: &str, kid: &str) -> Result<ChannelRecord, ChannelError> {
        self.modify(id, |current| {
            let mut next = current.clone();
            let mut pair = match (&current.pending_key_pair, &current.key_pair) {
                (Some(pending), _) => pending.clone(),
                (None, Some(active)) => active.clone(),
                (None, None) => {
                    return Err(ChannelError::Precondition {
                        field: "kid",
                        reason: "no key pair: call GenerateKeyPair and register its public key in the LINE Developers Console first".into(),
                    });
                }
            };
            // The working pair stays at hand until the new one has issued
            // a token (see `forget_previous_key_pair`). One already kept
            // stays: the pair in use has issued nothing since it came in,
            // so it is not known to work.
            let replaced = current.key_pair.clone().filter(|active| {
                active.kid.is_some()
                    && (current.pending_key_pair.is_some() || active.kid.as_deref() != Some(kid))
            });
            if current.previous_key_pair.is_none() {
                next.previous_key_pair = replaced;
            }
            pair.kid = Some(kid.to_owned());
            next.key_pair = Some(pair);
            next.pending_key_pair = None;
            Ok(next)
        })
        .await
    }

    /// Drops the pair SetKid replaced, once the pair under `kid` has
    /// issued a token; does nothing if another SetKid came in between.
    pub async fn forget_previous_key_pair(&self, id: &str, kid: &str) -> Result<(), ChannelError> {
        self.modify(id, |current| {
            let mut next = current.clone();
            if current.kid() == Some(kid) {
                next.previous_key_pair = None;
            }
            Ok(next)
        })
        .await
        .map(|_| ())
    }

    /// Seals every secret of the channel again under the current master
    /// key (master-key rotation). Returns how many were moved; a secret
    /// neither key opens is an error and nothing of the channel changes.
    pub async fn reseal(&self, id: &str) -> Result<usize, ChannelError> {
        let moved = std::sync::atomic::AtomicUsize::new(0);
        self.modify(id, |current| {
            let mut next = current.clone();
            let mut count = 0;
            let mut fields: Vec<(&str, &mut SealedSecret)> =
                vec![("channel_secret", &mut next.channel_secret)];
            if let Some(previous) = &mut next.previous_channel_secret {
                fields.push(("previous_channel_secret", &mut previous.secret));
            }
            if let Some(token) = &mut next.access_token {
                fields.push(("access_token", token));
            }
            if let Some(pair) = &mut next.key_pair {
                fields.push(("signing_key", &mut pair.private_key));
            }
            if let Some(pair) = &mut next.pending_key_pair {
                fields.push(("signing_key", &mut pair.private_key));
            }
            if let Some(pair) = &mut next.previous_key_pair {
                fields.push(("signing_key", &mut pair.private_key));
            }
            for (field, sealed) in fields {
                if let Some(ciphertext) = self
                    .cipher
                    .reseal(&seal_context(id, field), &sealed.ciphertext)?
                {
                    sealed.ciphertext = ciphertext;
                    count += 1;
                }
            }
            moved.store(count, std::sync::atomic::Ordering::Relaxed);
            Ok(next)
        })
        .await?;
        Ok(moved.into_inner())
    }

    /// Seals an issued token again under the current master key; `None`
    /// when it is sealed under it already.
    pub fn reseal_issued_token(
        &self,
        channel_id: &str,
        sealed: &SealedSecret,
    ) -> Result<Option<SealedSecret>, ChannelError> {
        Ok(self
            .cipher
            .reseal(
                &seal_context(channel_id, "issued_token"),
                &sealed.ciphertext,
            )?
            .map(|ciphertext| SealedSecret {
                ciphertext,
                fingerprint: sealed.fingerprint.clone(),
            }))
    }

    /// The private key of a key pair of this channel.
    pub fn open_private_key(
        &self,
        record: &ChannelRecord,
        pair: &KeyPairRecord,
    ) -> Result<Secret, ChannelError> {
        Ok(self.cipher.decrypt_secret(
            &seal_context(&record.id, "signing_key"),
            &pair.private_key.ciphertext,
        )?)
    }

    /// Read, change, write if nobody changed the record meanwhile, else try
    /// again. `change` returning the record unchanged writes nothing.
    async fn modify(
        &self,
        id: &str,
        change: impl Fn(&ChannelRecord) -> Result<ChannelRecord, ChannelError>,
    ) -> Result<ChannelRecord, ChannelError> {
        let mut last_conflict = None;
        for attempt in 0..UPDATE_ATTEMPTS {
            if attempt > 0 {
                // Let the competing writer finish before reading again.
                tokio::time::sleep(Duration::from_millis(1 << attempt.min(5))).await;
            }
            let current = self.get(id).await?;
            let mut next = change(&current)?;
            if next == current {
                return Ok(current);
            }
            next.version = current.version + 1;
            next.update_time_ms = self.clock.now_ms();
            match self.store.replace_channel(current.version, &next).await {
                Ok(()) => return Ok(next),
                Err(conflict @ StoreError::Conflict { .. }) => last_conflict = Some(conflict),
                Err(err) => return Err(err.into()),
            }
        }
        Err(ChannelError::Store(
            last_conflict.expect("the loop ran and every attempt conflicted"),
        ))
    }

    fn apply(
        &self,
        current: &ChannelRecord,
        changes: &ChannelChanges,
    ) -> Result<ChannelRecord, ChannelError> {
        let mut next = current.clone();
        if let Some(name) = &changes.display_name {
            next.display_name = name.clone();
        }
        if let Some(line_id) = &changes.line_channel_id {
            next.line_channel_id = line_id.clone();
        }
        let now = self.clock.now_ms();
        if let Some((secret, grace)) = &changes.channel_secret
            && !self.holds(
                &current.id,
                "channel_secret",
                Some(&current.channel_secret),
                secret,
            )
        {
            next.previous_channel_secret = (!grace.is_zero()).then(|| PreviousSecret {
                secret: reseal(
                    &self.cipher,
                    &next.id,
                    "channel_secret",
                    "previous_channel_secret",
                    &current.channel_secret,
                ),
                valid_until_ms: now.saturating_add(grace.as_millis() as i64),
            });
            next.channel_secret = self.seal(&next.id, "channel_secret", secret);
        }
        if let Some(token) = &changes.access_token {
            let unchanged = match token {
                Some(new) => self.holds(
                    &current.id,
                    "access_token",
                    current.access_token.as_ref(),
                    new,
                ),
                None => current.access_token.is_none(),
            };
            if !unchanged {
                next.access_token = token
                    .as_ref()
                    .map(|token| self.seal(&next.id, "access_token", token));
            }
        }
        let requested_mode = match &changes.token_mode {
            Some(mode) => *mode,
            None => Some(current.token_mode),
        };
        next.token_mode =
            resolve_token_mode(requested_mode, next.access_token.is_some(), next.kid())?;
        Ok(next)
    }

    /// Whether `sealed` holds exactly `secret` (compared in constant time).
    /// A value that cannot be decrypted holds nothing, so it gets replaced.
    fn holds(
        &self,
        channel_id: &str,
        field: &str,
        sealed: Option<&SealedSecret>,
        secret: &Secret,
    ) -> bool {
        use subtle::ConstantTimeEq as _;
        let Some(sealed) = sealed else {
            return false;
        };
        match self
            .cipher
            .decrypt(&seal_context(channel_id, field), &sealed.ciphertext)
        {
            Ok(stored) => bool::from(stored[..].ct_eq(secret.expose().as_bytes())),
            Err(_) => false,
        }
    }

    pub async fn delete(&self, id: &str) -> Result<ChannelRecord, ChannelError> {
        self.store
            .delete_channel(id)
            .await?
            .ok_or_else(|| ChannelError::NotFound(id.to_owned()))
    }
}

/// Moves a sealed secret to another field of the same record (its context
/// changes, so it is decrypted and sealed again).
fn reseal(
    cipher: &Cipher,
    channel_id: &str,
    from: &str,
    to: &str,
    sealed: &SealedSecret,
) -> SealedSecret {
    match cipher.decrypt_secret(&seal_context(channel_id, from), &sealed.ciphertext) {
        Ok(secret) => SealedSecret {
            ciphertext: cipher.encrypt_secret(&seal_context(channel_id, to), &secret),
            fingerprint: sealed.fingerprint.clone(),
        },
        // An old secret we cannot read would not verify anything: keep the
        // bytes so nothing is silently lost, they simply never match.
        Err(_) => sealed.clone(),
    }
}

/// Associated data binding a ciphertext to its record and field.
fn seal_context(channel_id: &str, field: &str) -> String {
    format!("channel/{channel_id}/{field}")
}

/// Checks a token mode against what the channel has; `None` picks the
/// default (long-lived with a token, else short-lived v2).
fn resolve_token_mode(
    requested: Option<TokenMode>,
    has_token: bool,
    kid: Option<&str>,
) -> Result<TokenMode, ChannelError> {
    match requested {
        None if has_token => Ok(TokenMode::LongLived),
        None => Ok(TokenMode::ShortLivedV2),
        Some(TokenMode::LongLived) if !has_token => Err(ChannelError::Precondition {
            field: "token_mode",
            reason: "TOKEN_MODE_LONG_LIVED needs channel_access_token".into(),
        }),
        Some(TokenMode::V21Jwt) if kid.is_none() => Err(ChannelError::Precondition {
            field: "token_mode",
            reason: "TOKEN_MODE_V2_1_JWT needs a key pair and kid: call GenerateKeyPair, register the public key in the LINE Developers Console, then SetKid".into(),
        }),
        Some(mode) => Ok(mode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{secret::MasterKey, store::SledStore};

    const SECRET_A: &str = "0123456789abcdef0123456789abcdef";
    const SECRET_B: &str = "fedcba9876543210fedcba9876543210";

    fn channels(dir: &std::path::Path) -> Channels {
        let store = SledStore::open(dir).unwrap();
        Channels::new(
            Arc::new(store),
            Cipher::new(&MasterKey::generate()),
            Clock::system(),
        )
    }

    async fn register(channels: &Channels, line_id: &str) -> ChannelRecord {
        channels
            .create(NewChannel {
                display_name: "Shop".into(),
                line_channel_id: line_id.into(),
                channel_secret: Secret::new(SECRET_A),
                access_token: None,
                token_mode: None,
            })
            .await
            .unwrap()
    }

    fn rotate(secret: &str, grace: Duration) -> ChannelChanges {
        ChannelChanges {
            channel_secret: Some((Secret::new(secret), grace)),
            ..ChannelChanges::default()
        }
    }

    #[tokio::test]
    async fn a_rotated_secret_stays_valid_for_its_grace_period_only() {
        let dir = tempfile::tempdir().unwrap();
        let channels = channels(dir.path());
        let created = register(&channels, "1").await;

        let before = channels.clock.now_ms();
        let rotated = channels
            .update(&created.id, rotate(SECRET_B, Duration::from_secs(600)))
            .await
            .unwrap();
        assert_eq!(rotated.version, created.version + 1);
        assert_eq!(channels.open_secret(&rotated).unwrap().expose(), SECRET_B);
        let previous = rotated
            .previous_channel_secret
            .clone()
            .expect("old secret kept");
        assert_eq!(
            previous.secret.fingerprint,
            created.channel_secret.fingerprint
        );
        assert!(previous.valid_until_ms >= before + 600_000);
        let old = channels
            .cipher
            .decrypt_secret(
                &seal_context(&created.id, "previous_channel_secret"),
                &previous.secret.ciphertext,
            )
            .unwrap();
        assert_eq!(old.expose(), SECRET_A);

        // The same secret again changes nothing, not even the version.
        let same = channels
            .update(&created.id, rotate(SECRET_B, Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(same, rotated);

        // Without grace the old secret stops at once.
        let abrupt = channels
            .update(&created.id, rotate(SECRET_A, Duration::ZERO))
            .await
            .unwrap();
        assert!(abrupt.previous_channel_secret.is_none());
        assert_eq!(channels.open_secret(&abrupt).unwrap().expose(), SECRET_A);
    }

    #[tokio::test]
    async fn concurrent_updates_of_different_fields_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let channels = channels(dir.path());
        let created = register(&channels, "2").await;
        let mut tasks = Vec::new();
        for i in 0..4 {
            let channels = channels.clone();
            let id = created.id.clone();
            tasks.push(tokio::spawn(async move {
                let changes = if i % 2 == 0 {
                    ChannelChanges {
                        display_name: Some(format!("Name {i}")),
                        ..ChannelChanges::default()
                    }
                } else {
                    ChannelChanges {
                        access_token: Some(Some(Secret::new(format!("token-{i}")))),
                        ..ChannelChanges::default()
                    }
                };
                channels.update(&id, changes).await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let last = channels.get(&created.id).await.unwrap();
        assert_eq!(
            last.version,
            created.version + 4,
            "every update was applied once"
        );
        assert!(last.display_name.starts_with("Name "));
        assert!(last.access_token.is_some());
    }

    #[tokio::test]
    async fn uppercase_secrets_are_stored_as_the_console_shows_them() {
        let dir = tempfile::tempdir().unwrap();
        let channels = channels(dir.path());
        let upper = validate::channel_secret(&SECRET_A.to_ascii_uppercase()).unwrap();
        let created = channels
            .create(NewChannel {
                display_name: "Shop".into(),
                line_channel_id: "3".into(),
                channel_secret: Secret::new(upper),
                access_token: None,
                token_mode: None,
            })
            .await
            .unwrap();
        assert_eq!(channels.open_secret(&created).unwrap().expose(), SECRET_A);
    }

    #[test]
    fn field_rules() {
        assert_eq!(validate::display_name("  Shop  ").unwrap(), "Shop");
        assert!(validate::display_name(" ").is_err());
        assert!(validate::display_name(&"x".repeat(101)).is_err());
        assert!(validate::display_name(&"字".repeat(100)).is_ok());
        assert!(validate::line_channel_id("1234567890").is_ok());
        assert!(validate::line_channel_id("12345abc").is_err());
        assert!(validate::line_channel_id("").is_err());
        assert!(validate::channel_secret(&"a".repeat(32)).is_ok());
        assert!(validate::channel_secret(&"g".repeat(32)).is_err());
        assert!(validate::channel_secret(&"a".repeat(31)).is_err());
        let secret_error = validate::channel_secret("notasecret").unwrap_err();
        assert!(!secret_error.contains("notasecret"));
        assert!(validate::access_token("abc def").is_err());
        assert!(validate::channel_id("ch_01jd0000000000000000000000").is_ok());
        assert!(validate::channel_id("ch_01JD0000000000000000000000").is_err());
        assert!(validate::channel_id("1234567890").is_err());
    }
}
