//! A short-lived, bounded cache of LINE's answers to lookups (profiles,
//! group summaries, member profiles, and GetQuota's composed answer, which
//! `grpc::quota` reuses for 30 s only), per channel. Only successful answers are stored; an entry lives at most
//! [`LOOKUP_TTL`], and past [`LOOKUP_CAPACITY`] entries the oldest goes.
//!
//! Time comes from the service's [`Clock`], so that expiry can be tested
//! without waiting; it also dates `fetch_time`.

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

use crate::{line::api::segment, store::ChannelRecord, time::Clock};

/// The lookup key of a user's profile (one spelling for every user).
pub fn profile_key(user_id: &str) -> String {
    format!("profile/{}", segment(user_id))
}

/// The lookup key of a group's summary.
pub fn group_key(group_id: &str) -> String {
    format!("group/{}", segment(group_id))
}

/// The lookup key of a member's profile in a group (`kind` "group") or
/// room ("room"); encoded as in LINE's paths, so no two share a key.
pub fn member_key(kind: &str, chat_id: &str, user_id: &str) -> String {
    format!("{kind}/{}/member/{}", segment(chat_id), segment(user_id))
}

/// How long an answer is served from the cache (the contract says "at
/// most 5 minutes").
pub const LOOKUP_TTL: Duration = Duration::from_secs(5 * 60);
/// Entries kept at most; the oldest is dropped to make room.
pub const LOOKUP_CAPACITY: usize = 10_000;

/// A cached answer: LINE's response body and when LINE was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub body: Bytes,
    /// Unix milliseconds, by the cache's clock.
    pub fetch_time_ms: i64,
}

/// The cache; cheap to clone (clones share entries).
#[derive(Clone)]
pub struct LookupCache {
    inner: Arc<Inner>,
}

struct Inner {
    ttl_ms: i64,
    capacity: usize,
    clock: Clock,
    state: Mutex<State>,
}

/// (channel scope, lookup): the scope names our channel and its LINE
/// channel, the lookup what was asked (e.g. `profile/U…`).
type Key = (String, String);

#[derive(Default)]
struct State {
    entries: HashMap<Key, (u64, Cached)>,
    /// Insertion sequence → key, oldest first.
    order: BTreeMap<u64, Key>,
    next: u64,
}

impl State {
    fn remove(&mut self, key: &Key) {
        if let Some((seq, _)) = self.entries.remove(key) {
            self.order.remove(&seq);
        }
    }
}

impl LookupCache {
    /// The production cache: [`LOOKUP_TTL`], [`LOOKUP_CAPACITY`].
    pub fn new(clock: Clock) -> Self {
        Self::with(LOOKUP_TTL, LOOKUP_CAPACITY, clock)
    }

    pub fn with(ttl: Duration, capacity: usize, clock: Clock) -> Self {
        Self {
            inner: Arc::new(Inner {
                ttl_ms: ttl.as_millis().min(i64::MAX as u128) as i64,
                capacity: capacity.max(1),
                clock,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Now, by the cache's clock (Unix milliseconds).
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    fn fresh(&self, cached: &Cached, now: i64) -> bool {
        // A clock that went backwards makes an entry stale rather than
        // immortal.
        cached.fetch_time_ms <= now && now - cached.fetch_time_ms < self.inner.ttl_ms
    }

    /// The answer stored for `lookup` in `scope`, if still fresh.
    pub fn get(&self, scope: &str, lookup: &str) -> Option<Cached> {
        let now = self.now_ms();
        let key = (scope.to_owned(), lookup.to_owned());
        let mut state = self.lock();
        let cached = state.entries.get(&key).map(|(_, cached)| cached.clone())?;
        if self.fresh(&cached, now) {
            return Some(cached);
        }
        state.remove(&key);
        None
    }

    /// Stores a successful answer, replacing an older one for the same key.
    pub fn insert(&self, scope: &str, lookup: &str, cached: Cached) {
        let now = self.now_ms();
        if !self.fresh(&cached, now) {
            return;
        }
        let key = (scope.to_owned(), lookup.to_owned());
        let mut state = self.lock();
        state.remove(&key);
        // Expired entries at the old end go first, then the oldest live
        // ones while the cache is full.
        while let Some((_, oldest)) = state.order.first_key_value() {
            let oldest = oldest.clone();
            let expired = state
                .entries
                .get(&oldest)
                .is_none_or(|(_, c)| !self.fresh(c, now));
            if expired || state.entries.len() >= self.inner.capacity {
                state.remove(&oldest);
            } else {
                break;
            }
        }
        let seq = state.next;
        state.next += 1;
        state.order.insert(seq, key.clone());
        state.entries.insert(key, (seq, cached));
    }

    /// The fresh answer to `lookup` for `channel`, else LINE's, asked with
    /// `ask` and stored if it serializes (errors never are); with when
    /// LINE was asked. Lookup RPCs and the profile records share it.
    pub async fn get_or_fetch<T, E, F, Fut>(
        &self,
        channel: &ChannelRecord,
        lookup: &str,
        ask: F,
    ) -> Result<(T, i64), E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // A channel pointed at another LINE channel must not see old answers.
        let scope = format!("{}/{}", channel.id, channel.line_channel_id);
        if let Some(cached) = self.get(&scope, lookup)
            && let Ok(value) = serde_json::from_slice(&cached.body)
        {
            return Ok((value, cached.fetch_time_ms));
        }
        let fetch_time_ms = self.now_ms();
        let value = ask().await?;
        if let Ok(body) = serde_json::to_vec(&value) {
            self.insert(
                &scope,
                lookup,
                Cached {
                    body: Bytes::from(body),
                    fetch_time_ms,
                },
            );
        }
        Ok((value, fetch_time_ms))
    }

    /// Entries held now (including any not yet found expired).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(capacity: usize) -> (LookupCache, Clock) {
        let now = Clock::manual(1_700_000_000_000);
        let cache = LookupCache::with(Duration::from_secs(300), capacity, now.clone());
        (cache, now)
    }

    fn answer(cache: &LookupCache, body: &'static str) -> Cached {
        Cached {
            body: Bytes::from_static(body.as_bytes()),
            fetch_time_ms: cache.now_ms(),
        }
    }

    #[test]
    fn lookup_entries_live_at_most_the_ttl() {
        let (cache, now) = cache(10);
        cache.insert("ch_a", "profile/U1", answer(&cache, "one"));
        assert_eq!(cache.get("ch_a", "profile/U1").unwrap().body, "one");
        // Scoped per channel.
        assert!(cache.get("ch_b", "profile/U1").is_none());
        now.shift(299_999);
        assert!(cache.get("ch_a", "profile/U1").is_some());
        now.shift(1);
        assert!(cache.get("ch_a", "profile/U1").is_none());
        assert!(cache.is_empty(), "an expired entry is dropped when found");
    }

    #[test]
    fn lookup_entries_from_the_future_or_stale_are_not_served() {
        let (cache, now) = cache(10);
        let stale = Cached {
            body: Bytes::from_static(b"old"),
            fetch_time_ms: cache.now_ms() - 300_000,
        };
        cache.insert("ch_a", "k", stale);
        assert!(cache.is_empty(), "a stale answer is not stored");
        cache.insert("ch_a", "k", answer(&cache, "x"));
        now.shift(-1);
        assert!(cache.get("ch_a", "k").is_none(), "the clock went back");
    }

    #[test]
    fn lookup_cache_is_bounded_and_evicts_the_oldest() {
        let (cache, now) = cache(3);
        for i in 0..3 {
            cache.insert("ch_a", &format!("k{i}"), answer(&cache, "v"));
            now.shift(1);
        }
        // Replacing an entry makes it the newest.
        cache.insert("ch_a", "k0", answer(&cache, "v0"));
        cache.insert("ch_a", "k3", answer(&cache, "v3"));
        assert_eq!(cache.len(), 3);
        assert!(cache.get("ch_a", "k1").is_none(), "the oldest went");
        assert_eq!(cache.get("ch_a", "k0").unwrap().body, "v0");
        assert!(cache.get("ch_a", "k2").is_some());
        assert!(cache.get("ch_a", "k3").is_some());
    }

    #[test]
    fn lookup_cache_drops_expired_entries_before_live_ones() {
        let (cache, now) = cache(3);
        cache.insert("ch_a", "old", answer(&cache, "v"));
        now.shift(200_000);
        cache.insert("ch_a", "mid", answer(&cache, "v"));
        now.shift(200_000);
        cache.insert("ch_a", "new", answer(&cache, "v"));
        assert_eq!(cache.len(), 2, "`old` expired and was dropped");
        assert!(cache.get("ch_a", "mid").is_some());
        assert!(cache.get("ch_a", "new").is_some());
    }
}
