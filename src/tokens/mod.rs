//! Channel access tokens: obtained in the channel's token mode, cached (in
//! memory as a [`Secret`], sealed at rest), renewed before they expire, and
//! revoked once replaced.
//!
//! One refresh per channel at a time: callers that find the token due wait
//! on the channel's refresh lock, and the first one through refreshes while
//! the others find the fresh token when they get the lock. A token that is
//! due but not expired keeps being used when a renewal fails, so a LINE
//! outage at renewal time costs nothing until the token really expires.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use subtle::ConstantTimeEq as _;

use crate::{
    channels::{ChannelError, Channels},
    line::{
        ChannelClient, LineClient, TokenSource,
        oauth::{IssuedToken, OAuth, OAuthError},
        pace::Pacer,
    },
    metrics::{ChannelLabels, Metrics},
    secret::Secret,
    store::{
        ChannelRecord, IssuedTokenRecord, KeyPairRecord, Store, StoreError, TokenErrorRecord,
        TokenMode, TokenStateRecord,
    },
    time::Clock,
};

/// Replaced tokens kept for revocation at most; older ones are forgotten
/// (they expire on their own).
const MAX_REPLACED: usize = 64;
/// After a failed renewal of a still valid token, how long callers keep
/// using it before the next attempt.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);
/// How long a claim to refresh a channel's token holds: longer than the
/// token calls (with a revocation) take. Another process waits for it at
/// most this long, then refreshes itself.
const REFRESH_CLAIM: Duration = Duration::from_secs(30);
/// How often a process waiting for another's refresh looks again.
const REFRESH_POLL: Duration = Duration::from_millis(100);

/// How tokens are renewed.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// Renew this long before expiry (at most half a token's lifetime, so
    /// 15-minute stateless tokens are not renewed on every call).
    pub refresh_margin: Duration,
    /// `token_exp` asked for v2.1 tokens (at most 30 days).
    pub v2_1_lifetime: Duration,
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The channel's settings cannot produce a token.
    #[error("{0}")]
    Precondition(String),
    /// LINE or the network failed; trying later may help.
    #[error("cannot obtain a channel access token now: {0}")]
    Unavailable(String),
    /// LINE refused the channel's credentials.
    #[error("LINE refused to issue a channel access token: {0}")]
    Rejected(String),
    #[error(transparent)]
    Channel(#[from] ChannelError),
}

impl From<StoreError> for TokenError {
    fn from(err: StoreError) -> Self {
        Self::Channel(err.into())
    }
}

/// One channel's tokens, as a [`TokenSource`] for its [`ChannelClient`].
pub struct ChannelTokens {
    tokens: Tokens,
    channel: ChannelRecord,
}

impl TokenSource for ChannelTokens {
    type Error = TokenError;

    async fn token(&self) -> Result<Secret, TokenError> {
        self.tokens.get(&self.channel).await
    }

    async fn renew(&self, rejected: &Secret) -> Result<Secret, TokenError> {
        self.tokens
            .after_unauthorized(&self.channel, rejected)
            .await
    }
}

/// What GetTokenStatus shows; never the token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenStatus {
    pub mode: Option<TokenMode>,
    pub kid: String,
    pub has_token: bool,
    pub fingerprint: String,
    pub issue_time_ms: Option<i64>,
    pub expire_time_ms: Option<i64>,
    pub refresh_time_ms: Option<i64>,
    pub last_error: Option<TokenErrorRecord>,
}

/// The token manager; cheap to clone.
#[derive(Clone)]
pub struct Tokens {
    inner: Arc<Inner>,
}

struct Inner {
    channels: Channels,
    store: Arc<dyn Store>,
    oauth: OAuth,
    /// The transport every channel's [`ChannelClient`] uses.
    line: LineClient,
    /// The pace of every channel's calls (one per process).
    pacer: Pacer,
    settings: TokenSettings,
    /// Dates issued tokens, claims and assertions; says when one is due.
    clock: Clock,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    metrics: Metrics,
    /// This process, as the holder of refresh claims.
    owner: String,
}

/// One channel's refresh lock and cached token.
#[derive(Default)]
struct Slot {
    refresh: tokio::sync::Mutex<()>,
    cached: Mutex<Option<Cached>>,
}

#[derive(Clone)]
struct Cached {
    token: Secret,
    mode: TokenMode,
    line_channel_id: String,
    /// Use it until then; renew after.
    use_until_ms: i64,
}

impl Slot {
    fn fresh(&self, channel: &ChannelRecord, now_ms: i64) -> Option<Secret> {
        let cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        cached
            .as_ref()
            .filter(|c| {
                c.mode == channel.token_mode
                    && c.line_channel_id == channel.line_channel_id
                    && now_ms < c.use_until_ms
            })
            .map(|c| c.token.clone())
    }

    fn holds(&self, token: &Secret) -> bool {
        let cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        cached.as_ref().is_some_and(|c| same(&c.token, token))
    }

    fn set(&self, cached: Option<Cached>) {
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = cached;
    }
}

fn same(a: &Secret, b: &Secret) -> bool {
    bool::from(a.expose().as_bytes().ct_eq(b.expose().as_bytes()))
}

/// How a refresh treats the token stored now.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Refresh {
    /// Keep it while it is not due.
    IfDue,
    /// Replace it even if fresh (RotateAccessToken).
    Force,
}

impl Tokens {
    pub fn new(
        channels: Channels,
        store: Arc<dyn Store>,
        line: LineClient,
        pacer: Pacer,
        settings: TokenSettings,
        metrics: Metrics,
        clock: Clock,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                channels,
                store,
                oauth: OAuth::new(line.clone()),
                line,
                pacer,
                settings,
                clock,
                slots: Mutex::new(HashMap::new()),
                metrics,
                owner: uuid::Uuid::new_v4().simple().to_string(),
            }),
        }
    }

    /// The same tokens claiming refreshes as `owner` (the store's instance
    /// id): after a restart its own claim does not hold it up. Call before
    /// any token is asked for.
    pub fn with_owner(mut self, owner: Option<&str>) -> Self {
        if let (Some(owner), Some(inner)) = (owner, Arc::get_mut(&mut self.inner)) {
            inner.owner = owner.to_owned();
        }
        self
    }

    fn slot(&self, channel_id: &str) -> Arc<Slot> {
        self.inner
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(channel_id.to_owned())
            .or_default()
            .clone()
    }

    /// The door to LINE for `channel`'s calls, with its tokens (renewed
    /// once after a 401), paced within LINE's rate limits.
    pub fn line(&self, channel: &ChannelRecord) -> ChannelClient<ChannelTokens> {
        ChannelClient::new(
            self.inner.line.clone(),
            self.inner.pacer.clone(),
            &channel.id,
            ChannelTokens {
                tokens: self.clone(),
                channel: channel.clone(),
            },
        )
    }

    /// The channels whose tokens these are.
    pub fn channels(&self) -> &Channels {
        &self.inner.channels
    }

    fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Forgets a deleted channel's cached token and pace.
    pub fn forget(&self, channel_id: &str) {
        self.inner
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(channel_id);
        self.inner.pacer.forget(channel_id);
        self.inner.metrics.forget_channel(channel_id);
    }

    /// A token to call LINE with for `channel`.
    pub async fn get(&self, channel: &ChannelRecord) -> Result<Secret, TokenError> {
        if channel.token_mode == TokenMode::LongLived {
            return self.long_lived(channel);
        }
        let slot = self.slot(&channel.id);
        if let Some(token) = slot.fresh(channel, self.now_ms()) {
            return Ok(token);
        }
        let _refreshing = slot.refresh.lock().await;
        // Whoever held the lock before may have refreshed it.
        if let Some(token) = slot.fresh(channel, self.now_ms()) {
            return Ok(token);
        }
        self.refresh_locked(channel, &slot, Refresh::IfDue, None)
            .await
    }

    /// LINE answered 401 to `rejected`: a token to retry with once. Another
    /// caller may have replaced it already; otherwise it is dropped (not
    /// revoked: LINE no longer takes it) and a new one obtained.
    pub async fn after_unauthorized(
        &self,
        channel: &ChannelRecord,
        rejected: &Secret,
    ) -> Result<Secret, TokenError> {
        if channel.token_mode == TokenMode::LongLived {
            // The admin may have pasted a new one since the record was read.
            let latest = self.inner.channels.get(&channel.id).await?;
            let token = self.long_lived(&latest)?;
            if same(&token, rejected) {
                return Err(TokenError::Rejected(
                    "LINE rejected the channel's long-lived access token (401): reissue it in the LINE Developers Console and store it with UpdateChannel".into(),
                ));
            }
            return Ok(token);
        }
        let slot = self.slot(&channel.id);
        let _refreshing = slot.refresh.lock().await;
        if !slot.holds(rejected)
            && let Some(token) = slot.fresh(channel, self.now_ms())
        {
            return Ok(token);
        }
        slot.set(None);
        self.refresh_locked(channel, &slot, Refresh::IfDue, Some(rejected))
            .await
    }

    /// Obtains a new token now and revokes the one it replaces.
    pub async fn rotate(&self, channel: &ChannelRecord) -> Result<TokenStatus, TokenError> {
        if channel.token_mode == TokenMode::LongLived {
            return Err(TokenError::Precondition(
                "token_mode: TOKEN_MODE_LONG_LIVED tokens are reissued in the LINE Developers Console only; store the new one with UpdateChannel".into(),
            ));
        }
        let slot = self.slot(&channel.id);
        {
            let _refreshing = slot.refresh.lock().await;
            self.refresh_locked(channel, &slot, Refresh::Force, None)
                .await?;
        }
        self.status(channel).await
    }

    /// Seals the channel's issued tokens again under the current master key
    /// (master-key rotation), under the refresh lock so no renewal races
    /// it. Returns how many were moved.
    pub async fn reseal(&self, channel_id: &str) -> Result<usize, TokenError> {
        let slot = self.slot(channel_id);
        let _refreshing = slot.refresh.lock().await;
        let Some(mut state) = self.inner.store.get_token_state(channel_id).await? else {
            return Ok(0);
        };
        let channels = &self.inner.channels;
        let mut moved = 0;
        for issued in state.current.iter_mut().chain(state.replaced.iter_mut()) {
            if let Some(sealed) = channels.reseal_issued_token(channel_id, &issued.token)? {
                issued.token = sealed;
                moved += 1;
            }
        }
        if moved > 0 {
            let expected = state.version;
            state.version += 1;
            self.inner.store.put_token_state(expected, &state).await?;
        }
        Ok(moved)
    }

    /// The token state of `channel`, for GetTokenStatus.
    pub async fn status(&self, channel: &ChannelRecord) -> Result<TokenStatus, TokenError> {
        let mut status = TokenStatus {
            mode: Some(channel.token_mode),
            ..TokenStatus::default()
        };
        let state = self.inner.store.get_token_state(&channel.id).await?;
        status.last_error = state.as_ref().and_then(|s| s.last_error.clone());
        match channel.token_mode {
            TokenMode::LongLived => {
                if let Some(sealed) = &channel.access_token {
                    status.has_token = true;
                    status.fingerprint = sealed.fingerprint.clone();
                    status.issue_time_ms = Some(channel.update_time_ms);
                }
            }
            mode => {
                status.kid = channel.kid().unwrap_or_default().to_owned();
                if let Some(current) = state
                    .as_ref()
                    .and_then(|s| s.current.as_ref())
                    .filter(|c| usable(c, channel, self.now_ms()))
                {
                    status.has_token = true;
                    status.fingerprint = current.token.fingerprint.clone();
                    status.issue_time_ms = Some(current.issue_time_ms);
                    status.expire_time_ms = Some(current.expire_time_ms);
                    status.refresh_time_ms = Some(self.renew_at(current));
                    if mode == TokenMode::V21Jwt {
                        status.kid = current.kid.clone();
                    }
                }
            }
        }
        Ok(status)
    }

    /// Renews every stored token that is due, so that sends rarely wait for
    /// one. Called periodically; failures are recorded in the token state.
    pub async fn renew_due(&self) {
        let mut after: Option<String> = None;
        loop {
            let page = match self.inner.store.list_channels(after.as_deref(), 100).await {
                Ok(page) => page,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot list channels for token renewal");
                    return;
                }
            };
            let Some(last) = page.last() else { return };
            after = Some(last.id.clone());
            for channel in page {
                if channel.token_mode == TokenMode::LongLived {
                    continue;
                }
                let due = match self.inner.store.get_token_state(&channel.id).await {
                    Ok(Some(TokenStateRecord {
                        current: Some(current),
                        ..
                    })) => self.now_ms() >= self.renew_at(&current),
                    // Never used: nothing to renew.
                    _ => false,
                };
                if due && let Err(err) = self.get(&channel).await {
                    tracing::warn!(channel = %channel.id, error = %err, "token renewal failed");
                }
            }
        }
    }

    fn long_lived(&self, channel: &ChannelRecord) -> Result<Secret, TokenError> {
        self.inner.channels.access_token(channel)?.ok_or_else(|| {
            TokenError::Precondition(format!(
                "channel {} has no channel access token: store a long-lived token (channel_access_token) or choose another token_mode",
                channel.id
            ))
        })
    }

    /// When a token is renewed: `refresh_margin` before expiry, at most
    /// half its lifetime.
    fn renew_at(&self, token: &IssuedTokenRecord) -> i64 {
        let lifetime = (token.expire_time_ms - token.issue_time_ms).max(0);
        let margin = (self.inner.settings.refresh_margin.as_millis() as i64).min(lifetime / 2);
        token.expire_time_ms - margin
    }

    /// Under the channel's refresh lock: the stored token if it will do,
    /// else a new one from LINE (the replaced one revoked).
    async fn refresh_locked(
        &self,
        channel: &ChannelRecord,
        slot: &Slot,
        refresh: Refresh,
        rejected: Option<&Secret>,
    ) -> Result<Secret, TokenError> {
        let channels = &self.inner.channels;
        let now = self.now_ms();
        let state = self
            .inner
            .store
            .get_token_state(&channel.id)
            .await?
            .unwrap_or_else(|| empty_state(&channel.id));
        // The stored token, unless it was rejected or cannot be read.
        let stored = state
            .current
            .as_ref()
            .filter(|c| usable(c, channel, now))
            .and_then(|c| {
                channels
                    .open_issued_token(&channel.id, &c.token)
                    .ok()
                    .map(|token| (c.clone(), token))
            })
            .filter(|(_, token)| !rejected.is_some_and(|r| same(r, token)));
        if refresh == Refresh::IfDue
            && let Some((record, token)) = &stored
            && now < self.renew_at(record)
        {
            self.cache(
                slot,
                channel,
                token,
                self.renew_at(record),
                record.expire_time_ms,
            );
            return Ok(token.clone());
        }

        let claimed = self
            .claim_refresh(channel, slot, refresh, rejected, state)
            .await?;
        let mut state = match claimed {
            Claim::Ours(state) => *state,
            Claim::TheirToken(token) => return Ok(token),
        };
        let now = self.now_ms();
        state.refresh_owner.clear();
        state.refresh_until_ms = 0;
        match self.issue(channel, &mut state).await {
            Ok((issued, kid)) => {
                let token = issued.access_token;
                let record = IssuedTokenRecord {
                    token: channels.seal_issued_token(&channel.id, &token),
                    mode: channel.token_mode,
                    line_channel_id: channel.line_channel_id.clone(),
                    key_id: issued.key_id,
                    kid,
                    issue_time_ms: now,
                    expire_time_ms: now.saturating_add(issued.expires_in.as_millis() as i64),
                };
                let renew_at = self.renew_at(&record);
                let expire_time_ms = record.expire_time_ms;
                if let Some(old) = state.current.replace(record) {
                    // A rejected token is dead already; a stateless one
                    // cannot be revoked; both just go.
                    let dead = rejected.is_some() && stored.is_none();
                    if !dead && revocable(old.mode) && old.expire_time_ms > now {
                        state.replaced.push(old);
                    }
                }
                state.last_error = None;
                self.revoke_replaced(channel, &mut state).await;
                self.save(&mut state).await;
                self.cache(slot, channel, &token, renew_at, expire_time_ms);
                tracing::info!(
                    channel = %channel.id,
                    mode = ?channel.token_mode,
                    fingerprint = %token.fingerprint(),
                    "channel access token issued"
                );
                Ok(token)
            }
            Err(err) => {
                state.last_error = Some(TokenErrorRecord {
                    message: err.to_string(),
                    time_ms: now,
                });
                self.save(&mut state).await;
                match stored {
                    // Due but still valid: keep using it for a while.
                    Some((record, token))
                        if refresh == Refresh::IfDue && now < record.expire_time_ms =>
                    {
                        tracing::warn!(channel = %channel.id, error = %err, "token renewal failed; the current token is still valid");
                        let retry_at = now + RETRY_AFTER_FAILURE.as_millis() as i64;
                        self.cache(
                            slot,
                            channel,
                            &token,
                            retry_at.min(record.expire_time_ms),
                            record.expire_time_ms,
                        );
                        Ok(token)
                    }
                    _ => Err(err),
                }
            }
        }
    }

    /// Takes the right to refresh the channel's token with a
    /// compare-and-set on its state, so that of several processes sharing
    /// the store one asks LINE; the others wait for its token and use it.
    /// After [`REFRESH_CLAIM`] without a result they refresh themselves.
    async fn claim_refresh(
        &self,
        channel: &ChannelRecord,
        slot: &Slot,
        refresh: Refresh,
        rejected: Option<&Secret>,
        mut state: TokenStateRecord,
    ) -> Result<Claim, TokenError> {
        let store = &self.inner.store;
        let owner = &self.inner.owner;
        let started = self.now_ms();
        let give_up = started.saturating_add(REFRESH_CLAIM.as_millis() as i64);
        loop {
            let now = self.now_ms();
            let theirs = state.refresh_until_ms > now && state.refresh_owner != *owner;
            if !theirs || now >= give_up {
                state.refresh_owner = owner.clone();
                state.refresh_until_ms = now.saturating_add(REFRESH_CLAIM.as_millis() as i64);
                let expected = state.version;
                state.version += 1;
                match store.put_token_state(expected, &state).await {
                    Ok(()) => return Ok(Claim::Ours(Box::new(state))),
                    // Someone else wrote first: read what they wrote.
                    Err(StoreError::Conflict { .. }) => {}
                    // The channel is going away, or the store is in
                    // trouble: refresh as a lone process would.
                    Err(_) => {
                        state.version = expected;
                        return Ok(Claim::Ours(Box::new(state)));
                    }
                }
            } else {
                tokio::time::sleep(REFRESH_POLL).await;
            }
            state = store
                .get_token_state(&channel.id)
                .await?
                .unwrap_or_else(|| empty_state(&channel.id));
            // Another process's new token, when it is one this call can use.
            let now = self.now_ms();
            let fresh = state
                .current
                .as_ref()
                .filter(|c| c.issue_time_ms >= started || refresh == Refresh::IfDue)
                .filter(|c| usable(c, channel, now) && now < self.renew_at(c))
                .and_then(|c| {
                    let token = self
                        .inner
                        .channels
                        .open_issued_token(&channel.id, &c.token)
                        .ok()?;
                    Some((c.clone(), token))
                })
                .filter(|(_, token)| !rejected.is_some_and(|r| same(r, token)));
            if let Some((record, token)) = fresh {
                self.cache(
                    slot,
                    channel,
                    &token,
                    self.renew_at(&record),
                    record.expire_time_ms,
                );
                return Ok(Claim::TheirToken(token));
            }
        }
    }

    fn cache(
        &self,
        slot: &Slot,
        channel: &ChannelRecord,
        token: &Secret,
        use_until_ms: i64,
        expire_time_ms: i64,
    ) {
        self.inner
            .metrics
            .token_expiry
            .get_or_create(&ChannelLabels {
                channel: channel.id.clone(),
            })
            .set(expire_time_ms / 1000);
        slot.set(Some(Cached {
            token: token.clone(),
            mode: channel.token_mode,
            line_channel_id: channel.line_channel_id.clone(),
            use_until_ms,
        }));
    }

    /// Writes the token state; a conflict means another writer (a replica)
    /// refreshed at the same time: both tokens are valid, ours is used.
    async fn save(&self, state: &mut TokenStateRecord) {
        let expected = state.version;
        state.version += 1;
        match self.inner.store.put_token_state(expected, state).await {
            Ok(()) => {}
            Err(StoreError::NotFound { .. }) => {}
            Err(err) => {
                state.version = expected;
                tracing::warn!(channel = %state.channel_id, error = %err, "cannot store the token state");
            }
        }
    }

    /// One token from LINE in the channel's mode; for v2.1 at LINE's limit
    /// of 30 tokens, the replaced tokens we issued are revoked and the
    /// request is made once more.
    async fn issue(
        &self,
        channel: &ChannelRecord,
        state: &mut TokenStateRecord,
    ) -> Result<(IssuedToken, String), TokenError> {
        let oauth = &self.inner.oauth;
        let secret = self.inner.channels.open_secret(channel)?;
        let line_id = channel.line_channel_id.as_str();
        // With the kid of the pair that signed (v2.1 only).
        let (result, kid) = match channel.token_mode {
            TokenMode::LongLived => {
                return Err(TokenError::Precondition(
                    "long-lived tokens are not issued by the service".into(),
                ));
            }
            TokenMode::ShortLivedV2 => (
                oauth.issue_short_lived(line_id, &secret).await,
                String::new(),
            ),
            TokenMode::StatelessV3 => {
                (oauth.issue_stateless(line_id, &secret).await, String::new())
            }
            TokenMode::V21Jwt => {
                let assertion = self.assertion(channel)?;
                let issued = match oauth.issue_v2_1(&assertion).await {
                    Err(err) if err.is_token_limit() => {
                        let freed = self.free_v2_1_slots(channel, state).await?;
                        if freed == 0 {
                            return Err(TokenError::Rejected(format!(
                                "{err}; none of the valid v2.1 tokens were issued by this service (revoke some in the LINE Developers Console or with the tool that issued them)"
                            )));
                        }
                        oauth.issue_v2_1(&self.assertion(channel)?).await
                    }
                    other => other,
                };
                self.after_new_pair(channel, issued).await?
            }
        };
        result.map(|issued| (issued, kid)).map_err(oauth_error)
    }

    /// While SetKid's previous pair is kept: a token from the new pair
    /// lets it go; LINE refusing the new pair's assertion (400 or 401,
    /// not the token limit) falls back to it, so tokens keep flowing.
    /// Returns the outcome and the kid of the pair that signed it.
    async fn after_new_pair(
        &self,
        channel: &ChannelRecord,
        issued: Result<IssuedToken, OAuthError>,
    ) -> Result<(Result<IssuedToken, OAuthError>, String), TokenError> {
        let kid = channel.kid().unwrap_or_default().to_owned();
        let Some(previous) = &channel.previous_key_pair else {
            return Ok((issued, kid));
        };
        match &issued {
            Ok(_) => {
                if let Err(err) = self
                    .inner
                    .channels
                    .forget_previous_key_pair(&channel.id, &kid)
                    .await
                {
                    // Kept one renewal longer; the next success tries again.
                    tracing::warn!(channel = %channel.id, error = %err, "cannot drop the previous key pair");
                }
                Ok((issued, kid))
            }
            Err(
                err @ OAuthError::Rejected {
                    status: 400 | 401, ..
                },
            ) if !err.is_token_limit() => {
                tracing::warn!(
                    channel = %channel.id,
                    kid = channel.kid().unwrap_or_default(),
                    previous_kid = previous.kid.as_deref().unwrap_or_default(),
                    error = %err,
                    "LINE refused the assertion of the key pair SetKid registered; the previous pair issues this token"
                );
                let assertion = self.assertion_with(channel, previous)?;
                let previous_kid = previous.kid.clone().unwrap_or_default();
                Ok((self.inner.oauth.issue_v2_1(&assertion).await, previous_kid))
            }
            Err(_) => Ok((issued, kid)),
        }
    }

    /// Asks LINE whether it takes an assertion signed with the key pair
    /// SetKid would give `kid` (the pending one, else the active one):
    /// `GET /oauth2/v2.1/tokens/kid` checks the assertion and issues no
    /// token. SetKid commits a kid only after this, so that a wrong kid is
    /// refused at once, not at the next renewal with the working pair
    /// already replaced.
    pub async fn check_kid(&self, channel: &ChannelRecord, kid: &str) -> Result<(), TokenError> {
        let pair = channel
            .pending_key_pair
            .as_ref()
            .or(channel.key_pair.as_ref())
            .ok_or_else(|| {
                TokenError::Precondition(
                    "no key pair: call GenerateKeyPair and register its public key in the LINE Developers Console first".into(),
                )
            })?;
        let private_key = self.inner.channels.open_private_key(channel, pair)?;
        let assertion = crate::line::assertion::assertion(
            &private_key,
            kid,
            &channel.line_channel_id,
            self.now_ms() / 1000,
            self.inner.settings.v2_1_lifetime.as_secs(),
        )
        .map_err(|err| TokenError::Precondition(err.to_string()))?;
        self.inner
            .oauth
            .valid_v2_1_key_ids(&assertion)
            .await
            .map(|_| ())
            .map_err(oauth_error)
    }

    fn assertion(&self, channel: &ChannelRecord) -> Result<Secret, TokenError> {
        let pair = channel
            .key_pair
            .as_ref()
            .filter(|pair| pair.kid.is_some())
            .ok_or_else(|| {
                TokenError::Precondition(
                    "TOKEN_MODE_V2_1_JWT needs a key pair with a kid: GenerateKeyPair, register the public key in the LINE Developers Console, then SetKid".into(),
                )
            })?;
        self.assertion_with(channel, pair)
    }

    /// An assertion signed with `pair` under its kid.
    fn assertion_with(
        &self,
        channel: &ChannelRecord,
        pair: &KeyPairRecord,
    ) -> Result<Secret, TokenError> {
        let private_key = self.inner.channels.open_private_key(channel, pair)?;
        crate::line::assertion::assertion(
            &private_key,
            pair.kid.as_deref().unwrap_or_default(),
            &channel.line_channel_id,
            self.now_ms() / 1000,
            self.inner.settings.v2_1_lifetime.as_secs(),
        )
        .map_err(|err| TokenError::Precondition(err.to_string()))
    }

    /// At LINE's limit of 30 valid v2.1 tokens: revokes the replaced ones
    /// this service issued that LINE still counts, oldest first. Returns how
    /// many were revoked.
    async fn free_v2_1_slots(
        &self,
        channel: &ChannelRecord,
        state: &mut TokenStateRecord,
    ) -> Result<usize, TokenError> {
        let valid = self
            .inner
            .oauth
            .valid_v2_1_key_ids(&self.assertion(channel)?)
            .await
            .map_err(oauth_error)?;
        let secret = self.inner.channels.open_secret(channel)?;
        let mut freed = 0;
        let mut kept = Vec::new();
        for old in std::mem::take(&mut state.replaced) {
            let counted = old.mode == TokenMode::V21Jwt && valid.contains(&old.key_id);
            if !counted {
                // Not among LINE's valid tokens (expired or revoked): forget.
                if old.mode != TokenMode::V21Jwt {
                    kept.push(old);
                }
                continue;
            }
            match self.revoke(channel, &secret, &old).await {
                Ok(()) => freed += 1,
                Err(_) => kept.push(old),
            }
        }
        state.replaced = kept;
        Ok(freed)
    }

    /// Before a channel is deleted: revokes every unexpired token this
    /// service obtained for it (the current one and replaced ones), so that
    /// none stays valid at LINE for up to 30 days nor counts against
    /// v2.1's limit when the channel is registered again. Returns, per
    /// token, its fingerprint and why it was not revoked (`None`: revoked).
    /// A long-lived token is the operator's and stays; a stateless one
    /// cannot be revoked and expires within 15 minutes.
    pub async fn revoke_all(&self, channel: &ChannelRecord) -> Vec<(String, Option<String>)> {
        let state = match self.inner.store.get_token_state(&channel.id).await {
            Ok(state) => state,
            Err(err) => {
                return vec![(
                    String::new(),
                    Some(format!("the channel's tokens could not be read: {err}")),
                )];
            }
        };
        let mut outcomes = Vec::new();
        if channel.token_mode == TokenMode::LongLived
            && let Some(token) = &channel.access_token
        {
            outcomes.push((
                token.fingerprint.clone(),
                Some("a long-lived token is yours, not issued by line-adapter: revoke it in the LINE Developers Console if nothing else uses it".into()),
            ));
        }
        let Some(state) = state else {
            return outcomes;
        };
        let now = self.now_ms();
        let tokens: Vec<IssuedTokenRecord> = state
            .current
            .into_iter()
            .chain(state.replaced)
            .filter(|token| token.expire_time_ms > now)
            .collect();
        if tokens.is_empty() {
            return outcomes;
        }
        let secret = match self.inner.channels.open_secret(channel) {
            Ok(secret) => secret,
            Err(err) => {
                let why = format!("the channel secret could not be opened: {err}");
                outcomes.extend(
                    tokens
                        .iter()
                        .map(|t| (t.token.fingerprint.clone(), Some(why.clone()))),
                );
                return outcomes;
            }
        };
        for token in tokens {
            let fingerprint = token.token.fingerprint.clone();
            if !revocable(token.mode) {
                outcomes.push((
                    fingerprint,
                    Some(
                        "a stateless token cannot be revoked; it expires within 15 minutes".into(),
                    ),
                ));
                continue;
            }
            match self.revoke(channel, &secret, &token).await {
                Ok(()) => outcomes.push((fingerprint, None)),
                Err(err) => outcomes.push((fingerprint, Some(err.to_string()))),
            }
        }
        outcomes
    }

    /// Before a channel is pointed at another LINE channel: revokes the
    /// tokens obtained for the one it leaves, with that channel's
    /// credentials (v2.1 revocation needs its id and secret; the new ones
    /// cannot), and forgets the revoked ones, so that no later renewal
    /// tries again with the wrong credentials. What LINE would not revoke
    /// stays listed and is tried again, and expires by itself.
    pub async fn revoke_before_move(&self, channel: &ChannelRecord) {
        let outcomes = self.revoke_all(channel).await;
        let revoked: std::collections::HashSet<&str> = outcomes
            .iter()
            .filter(|(_, why)| why.is_none())
            .map(|(fingerprint, _)| fingerprint.as_str())
            .collect();
        for (fingerprint, why) in &outcomes {
            if let Some(why) = why {
                tracing::warn!(channel = %channel.id, fingerprint = %fingerprint, reason = %why, "a token of the LINE channel left behind was not revoked");
            }
        }
        if revoked.is_empty() {
            return;
        }
        tracing::info!(channel = %channel.id, revoked = revoked.len(), "revoked the tokens of the LINE channel left behind");
        if let Ok(Some(mut state)) = self.inner.store.get_token_state(&channel.id).await {
            state.current = state
                .current
                .filter(|token| !revoked.contains(token.token.fingerprint.as_str()));
            state
                .replaced
                .retain(|token| !revoked.contains(token.token.fingerprint.as_str()));
            self.save(&mut state).await;
        }
    }

    /// Revokes replaced tokens; those LINE could not revoke now stay listed
    /// until they expire.
    async fn revoke_replaced(&self, channel: &ChannelRecord, state: &mut TokenStateRecord) {
        if state.replaced.is_empty() {
            return;
        }
        let secret = match self.inner.channels.open_secret(channel) {
            Ok(secret) => secret,
            Err(err) => {
                tracing::warn!(channel = %channel.id, error = %err, "cannot revoke replaced tokens");
                return;
            }
        };
        let now = self.now_ms();
        let mut kept = Vec::new();
        for old in std::mem::take(&mut state.replaced) {
            if old.expire_time_ms <= now {
                continue;
            }
            match self.revoke(channel, &secret, &old).await {
                Ok(()) => tracing::info!(
                    channel = %channel.id,
                    fingerprint = %old.token.fingerprint,
                    "replaced channel access token revoked"
                ),
                Err(err) => {
                    tracing::warn!(channel = %channel.id, fingerprint = %old.token.fingerprint, error = %err, "cannot revoke a replaced token; will try again");
                    kept.push(old);
                }
            }
        }
        let overflow = kept.len().saturating_sub(MAX_REPLACED);
        kept.drain(..overflow);
        state.replaced = kept;
    }

    async fn revoke(
        &self,
        channel: &ChannelRecord,
        secret: &Secret,
        old: &IssuedTokenRecord,
    ) -> Result<(), TokenError> {
        let token = self
            .inner
            .channels
            .open_issued_token(&channel.id, &old.token)?;
        let oauth = &self.inner.oauth;
        match old.mode {
            TokenMode::V21Jwt => {
                oauth
                    .revoke_v2_1(&old.line_channel_id, secret, &token)
                    .await
            }
            TokenMode::ShortLivedV2 => oauth.revoke_short_lived(&token).await,
            TokenMode::LongLived | TokenMode::StatelessV3 => Ok(()),
        }
        .map_err(oauth_error)
    }
}

/// Whether a stored token can serve `channel` now.
fn usable(token: &IssuedTokenRecord, channel: &ChannelRecord, now_ms: i64) -> bool {
    token.mode == channel.token_mode
        && token.line_channel_id == channel.line_channel_id
        && now_ms < token.expire_time_ms
}

fn revocable(mode: TokenMode) -> bool {
    matches!(mode, TokenMode::ShortLivedV2 | TokenMode::V21Jwt)
}

fn oauth_error(err: OAuthError) -> TokenError {
    if err.is_transient() || matches!(err, OAuthError::Malformed(_)) {
        TokenError::Unavailable(err.to_string())
    } else {
        TokenError::Rejected(err.to_string())
    }
}

/// The outcome of [`Tokens::claim_refresh`].
enum Claim {
    /// This process refreshes; the state carries its claim.
    Ours(Box<TokenStateRecord>),
    /// Another process refreshed meanwhile: its token.
    TheirToken(Secret),
}

fn empty_state(channel_id: &str) -> TokenStateRecord {
    TokenStateRecord {
        channel_id: channel_id.to_owned(),
        version: 0,
        current: None,
        replaced: Vec::new(),
        last_error: None,
        refresh_owner: String::new(),
        refresh_until_ms: 0,
    }
}
