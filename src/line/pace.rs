//! Pacing of the calls to LINE: every request of a channel waits for a
//! permit from a token bucket of that channel and endpoint, filled at the
//! rate LINE publishes for the endpoint.
//!
//! # Why
//! LINE limits each channel's requests per endpoint (LINE-API.md; LINE
//! Developers "Rate limits"): 2,000/s for reply, push and profile lookups,
//! 200/s for multicast, 100/s for the loading animation, 1,000/min for
//! setting the webhook URL, 60/hour for broadcast, narrowcast and the
//! webhook test. Past a limit LINE answers 429 to everything of that
//! endpoint, and its development guidelines forbid sending past the limits
//! at all. A burst of queued sends (an agent desk's campaign, a restart
//! resuming the outbox) would otherwise go out as fast as the connections
//! allow and meet a wall of 429s. Pacing lives in the channel client, the
//! one door every call of a channel goes through, so the outbox, lookups,
//! media downloads and admin calls are all paced without knowing it. Token
//! endpoints (`oauth`) take no channel client and are not paced: they are
//! called a few times a day.
//!
//! # Buckets
//! A bucket is keyed by our channel id, the [`Endpoint`] (the name a rate
//! is set under) and the request's endpoint label (its path with ids as
//! `:id`), so the endpoints that share a name (`profile`: a user's profile
//! and a group or room member's; `other`) still get a bucket each. It
//! refills at the configured rate (`line_rate_limits`, default LINE's) and
//! holds a tenth of a second's worth of requests (at least one): in any
//! second a bucket lets through at most its rate plus that burst. Several
//! replicas sending for the same channel each pace on their own; give each
//! a share of the rate (`line_rate_limits`) if they send near the limit.
//!
//! # Waiting
//! A call waits for its permit asynchronously, in arrival order (one waiter
//! at a time asks the bucket, so a busy bucket wakes one task per permit and
//! no waiter overtakes another). It waits at most as long as LINE may take
//! to answer (`line_request_timeout_ms`): when its permit would come later
//! (a long queue, a slowed rate, LINE's `Retry-After`) it makes no request
//! and fails at once with [`Error::Paced`](super::Error::Paced) saying when
//! to try again. The outbox waits that out as it waits out a 429's
//! `Retry-After` (holding its lease, cancelled by a stop); a lookup answers
//! RESOURCE_EXHAUSTED with that delay. Dropping a waiting call gives up its
//! place.
//!
//! # When LINE still answers 429
//! A 429 with LINE's rate-limit message ("The API rate limit has been
//! exceeded") means someone else spends the channel's quota too (another
//! system, other replicas) or the account has lower limits. Then the bucket
//! - sends nothing until LINE's `Retry-After` has passed (capped at an
//!   hour), and
//! - halves its rate, with a burst of one and starting empty, down to a
//!   sixteenth of the configured rate. The 429s of requests that were in
//!   flight when the first came count once: one halving per second at most.
//!   Each minute without such a 429 doubles the rate again, up to the
//!   configured one.
//!
//! A 429 "monthly limit" is about the quota, not the pace: it slows nothing
//! (the send fails at once, see the outbox).

use std::{
    collections::HashMap,
    fmt,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, Reference},
    middleware::NoOpMiddleware,
    nanos::Nanos,
    state::{InMemoryState, NotKeyed},
};

use crate::metrics::{EndpointLabels, LineMetrics};

/// Halvings of a bucket's rate at most: a sixteenth of the configured rate.
const MAX_SLOWDOWN: u32 = 4;
/// The 429s that come within this of a halving answer requests sent before
/// it: they do not halve again.
const SLOWDOWN_SPACING: Duration = Duration::from_secs(1);
/// How long a halving lasts without another rate-limit 429.
const RECOVERY: Duration = Duration::from_secs(60);
/// Longest hold a `Retry-After` sets; the outbox gives up a send after an
/// hour anyway.
const MAX_HOLD: Duration = Duration::from_secs(60 * 60);
/// A bucket holds this much time's worth of requests.
const BURST_WINDOW: Duration = Duration::from_millis(100);
/// Largest count of a rate: one request per microsecond.
const MAX_COUNT: u32 = 1_000_000;

// === Endpoint, Rate, RateLimits ===

/// An endpoint of LINE's, or a family of them, with a rate limit of its own;
/// [`Endpoint::name`] is what `line_rate_limits` calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Reply,
    Push,
    Multicast,
    Broadcast,
    Narrowcast,
    /// A user's profile, a group or room member's profile.
    Profile,
    /// The loading animation.
    Loading,
    /// Setting the webhook URL (`PUT`; reading it is `Other`).
    WebhookUrl,
    /// LINE sending a test webhook.
    WebhookTest,
    /// Everything else: bot info, group summaries, mark as read, quota,
    /// delivery counts, message content.
    Other,
}

impl Endpoint {
    pub const ALL: [Endpoint; 10] = [
        Endpoint::Reply,
        Endpoint::Push,
        Endpoint::Multicast,
        Endpoint::Broadcast,
        Endpoint::Narrowcast,
        Endpoint::Profile,
        Endpoint::Loading,
        Endpoint::WebhookUrl,
        Endpoint::WebhookTest,
        Endpoint::Other,
    ];

    /// The name in `line_rate_limits`.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Reply => "reply",
            Endpoint::Push => "push",
            Endpoint::Multicast => "multicast",
            Endpoint::Broadcast => "broadcast",
            Endpoint::Narrowcast => "narrowcast",
            Endpoint::Profile => "profile",
            Endpoint::Loading => "loading",
            Endpoint::WebhookUrl => "webhook_endpoint",
            Endpoint::WebhookTest => "webhook_test",
            Endpoint::Other => "other",
        }
    }

    /// LINE's published rate (LINE-API.md §2, §5, §7); `Other` at 2,000/s,
    /// the rate LINE gives its other read and chat endpoints.
    pub fn line_rate(self) -> Rate {
        match self {
            Endpoint::Reply | Endpoint::Push | Endpoint::Profile | Endpoint::Other => {
                Rate::new(2000, Per::Second)
            }
            Endpoint::Multicast => Rate::new(200, Per::Second),
            Endpoint::Loading => Rate::new(100, Per::Second),
            Endpoint::WebhookUrl => Rate::new(1000, Per::Minute),
            Endpoint::Broadcast | Endpoint::Narrowcast | Endpoint::WebhookTest => {
                Rate::new(60, Per::Hour)
            }
        }
    }

    fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|e| *e == self)
            .expect("ALL lists every endpoint")
    }
}

/// The unit of a rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    Second,
    Minute,
    Hour,
}

impl Per {
    fn duration(self) -> Duration {
        match self {
            Per::Second => Duration::from_secs(1),
            Per::Minute => Duration::from_secs(60),
            Per::Hour => Duration::from_secs(3600),
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Per::Second => "s",
            Per::Minute => "min",
            Per::Hour => "h",
        }
    }
}

/// `count` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    count: u32,
    per: Per,
}

impl Rate {
    /// `count` must be 1 to [`MAX_COUNT`] (what [`RateLimits::parse`]
    /// accepts).
    pub const fn new(count: u32, per: Per) -> Self {
        Self { count, per }
    }

    /// Time between two requests at this rate.
    pub fn interval(self) -> Duration {
        self.per.duration() / self.count.max(1)
    }

    /// Requests a full bucket lets through at once: a tenth of a second's
    /// worth, at least one.
    pub fn burst(self) -> u32 {
        let burst = BURST_WINDOW.as_nanos() / self.interval().as_nanos().max(1);
        burst.clamp(1, u128::from(self.count.max(1))) as u32
    }

    /// The quota after `halvings` of the rate: a slowed bucket lets one
    /// request through at a time.
    fn quota(self, halvings: u32) -> Quota {
        let interval = self
            .interval()
            .saturating_mul(1 << halvings.min(MAX_SLOWDOWN));
        let burst = if halvings == 0 { self.burst() } else { 1 };
        Quota::with_period(interval.max(Duration::from_nanos(1)))
            .expect("the interval is not zero")
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, self.per.unit())
    }
}

/// The rate of every [`Endpoint`]: LINE's, except where `line_rate_limits`
/// says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    rates: [Rate; Endpoint::ALL.len()],
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            rates: Endpoint::ALL.map(Endpoint::line_rate),
        }
    }
}

impl RateLimits {
    /// `push=2000/s,multicast=200/s,broadcast=60/h`: a comma-separated list
    /// of `name=count/unit` (unit `s`, `min` or `h`); endpoints not named
    /// keep LINE's rate, an empty text keeps them all. The error says what
    /// is wrong with which entry (the caller names the setting).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut limits = Self::default();
        let mut given: Vec<Endpoint> = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((name, rate)) = entry.split_once('=') else {
                return Err(format!("`{entry}` is not `name=rate`, e.g. `push=2000/s`"));
            };
            let name = name.trim();
            let Some(endpoint) = Endpoint::ALL.into_iter().find(|e| e.name() == name) else {
                let names: Vec<&str> = Endpoint::ALL.iter().map(|e| e.name()).collect();
                let nearest = names
                    .iter()
                    .map(|n| (strsim::jaro_winkler(name, n), *n))
                    .filter(|(score, _)| *score > 0.8)
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, n)| format!(" (did you mean `{n}`?)"))
                    .unwrap_or_default();
                return Err(format!(
                    "`{name}` is not an endpoint with a rate limit{nearest}; the endpoints are {}",
                    names.join(", ")
                ));
            };
            if given.contains(&endpoint) {
                return Err(format!("`{name}` is given twice"));
            }
            given.push(endpoint);
            limits.rates[endpoint.index()] =
                parse_rate(rate.trim()).map_err(|reason| format!("`{entry}`: {reason}"))?;
        }
        Ok(limits)
    }

    pub fn rate(&self, endpoint: Endpoint) -> Rate {
        self.rates[endpoint.index()]
    }
}

impl fmt::Display for RateLimits {
    /// Every endpoint's rate, in the syntax [`RateLimits::parse`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, endpoint) in Endpoint::ALL.iter().enumerate() {
            let comma = if n == 0 { "" } else { "," };
            write!(f, "{comma}{}={}", endpoint.name(), self.rate(*endpoint))?;
        }
        Ok(())
    }
}

/// `2000/s`, `1000/min`, `60/h`.
fn parse_rate(text: &str) -> Result<Rate, String> {
    const FORM: &str = "a rate is a whole number of requests per `s`, `min` or `h`, e.g. `2000/s`";
    let Some((count, unit)) = text.split_once('/') else {
        return Err(FORM.into());
    };
    let per = match unit.trim() {
        "s" => Per::Second,
        "min" => Per::Minute,
        "h" => Per::Hour,
        _ => return Err(FORM.into()),
    };
    let count: u32 = count.trim().parse().map_err(|_| FORM.to_owned())?;
    if !(1..=MAX_COUNT).contains(&count) {
        return Err(format!("the count must be 1–{MAX_COUNT}"));
    }
    Ok(Rate::new(count, per))
}

// === Pace: one bucket's state ===

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// One bucket's state: the limiter at the rate in force, a hold from
/// LINE's `Retry-After`, and how far LINE's 429s have slowed it. Time comes
/// from `C`, so that tests move it by hand.
struct Pace<C: Clock> {
    /// The configured rate.
    rate: Rate,
    clock: C,
    limiter: Limiter<C>,
    /// Halvings of `rate` in force (0: the configured rate).
    halvings: u32,
    /// No request before then (LINE's `Retry-After`).
    hold_until: Option<C::Instant>,
    /// When one halving is undone, if no rate-limit 429 comes first.
    recover_at: Option<C::Instant>,
    /// The last halving: 429s soon after it count as the same one.
    slowed_at: Option<C::Instant>,
}

impl<C: Clock + Clone> Pace<C> {
    fn new(rate: Rate, clock: C) -> Self {
        Self {
            rate,
            limiter: RateLimiter::direct_with_clock(rate.quota(0), clock.clone()),
            clock,
            halvings: 0,
            hold_until: None,
            recover_at: None,
            slowed_at: None,
        }
    }

    /// Takes a permit (`None`), or says how long until the next one may be
    /// taken.
    fn take(&mut self) -> Option<Duration> {
        let now = self.clock.now();
        self.recover(now);
        if let Some(hold) = self.hold_until {
            if hold > now {
                return Some(hold.duration_since(now).into());
            }
            self.hold_until = None;
        }
        match self.limiter.check() {
            Ok(()) => None,
            Err(not_until) => Some(not_until.wait_time_from(now)),
        }
    }

    /// LINE answered the rate-limit 429: no request until `retry_after`
    /// has passed, and the rate halved unless it just was. Returns whether
    /// it was halved now.
    fn slow_down(&mut self, retry_after: Option<Duration>) -> bool {
        let now = self.clock.now();
        if let Some(wait) = retry_after {
            let until = now + Nanos::from(wait.min(MAX_HOLD));
            self.hold_until = Some(self.hold_until.map_or(until, |hold| hold.max(until)));
        }
        // Still too fast: the halvings in force last a while longer.
        self.recover_at = Some(now + Nanos::from(RECOVERY));
        let recent = self
            .slowed_at
            .is_some_and(|at| Duration::from(now.duration_since(at)) < SLOWDOWN_SPACING);
        if recent || self.halvings >= MAX_SLOWDOWN {
            return false;
        }
        self.slowed_at = Some(now);
        self.halvings += 1;
        self.rebuild();
        true
    }

    /// Undoes one halving per [`RECOVERY`] that passed without a 429.
    fn recover(&mut self, now: C::Instant) {
        let mut changed = false;
        while self.halvings > 0
            && let Some(at) = self.recover_at
            && at <= now
        {
            self.halvings -= 1;
            self.recover_at = (self.halvings > 0).then(|| at + Nanos::from(RECOVERY));
            changed = true;
        }
        if changed {
            self.rebuild();
        }
    }

    /// A limiter at the rate in force now, starting empty: the new rate
    /// applies from now on, with no burst saved up.
    fn rebuild(&mut self) {
        let quota = self.rate.quota(self.halvings);
        self.limiter = RateLimiter::direct_with_clock(quota, self.clock.clone());
        let _ = self.limiter.check_n(quota.burst_size());
    }

    /// The rate in force, as a time between two requests.
    fn interval(&self) -> Duration {
        self.rate.quota(self.halvings).replenish_interval()
    }
}

// === Bucket, Pacer ===

/// A call's permit would come later than the call may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// When to ask again (at least).
    pub retry_after: Duration,
}

/// A bucket's clock: tokio's time, which its waits sleep on. So under
/// `tokio::time::pause()` the time a bucket sees and the sleeps it sends
/// waiters to move together (on std's clock, as governor's
/// `MonotonicClock`, a paused sleep would end at once with no time passed
/// for the bucket, and the waiter give up). Unpaused, tokio's time is
/// std's monotonic clock.
#[derive(Debug, Clone, Copy)]
struct TokioClock {
    start: tokio::time::Instant,
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        tokio::time::Instant::now()
            .saturating_duration_since(self.start)
            .into()
    }
}

/// One channel's bucket for one endpoint.
struct Bucket {
    /// Taken by the one waiter that asks [`Bucket::pace`]; tokio's mutex
    /// queues the others in arrival order.
    turn: tokio::sync::Mutex<()>,
    pace: Mutex<Pace<TokioClock>>,
}

impl Bucket {
    fn new(rate: Rate) -> Self {
        let clock = TokioClock {
            start: tokio::time::Instant::now(),
        };
        Self {
            turn: tokio::sync::Mutex::new(()),
            pace: Mutex::new(Pace::new(rate, clock)),
        }
    }

    /// Waits for a permit, at most `patience`.
    async fn permit(&self, patience: Duration) -> Result<(), Refused> {
        let deadline = tokio::time::Instant::now() + patience;
        let Ok(_turn) = tokio::time::timeout_at(deadline, self.turn.lock()).await else {
            // The queue ahead was longer than the wait allowed: it takes
            // at least as long again to clear.
            return Err(Refused {
                retry_after: patience.max(self.interval()),
            });
        };
        loop {
            let wait = self.pace.lock().unwrap_or_else(|p| p.into_inner()).take();
            let Some(wait) = wait else {
                return Ok(());
            };
            let at = tokio::time::Instant::now() + wait;
            if at > deadline {
                return Err(Refused { retry_after: wait });
            }
            tokio::time::sleep_until(at).await;
        }
    }

    fn slow_down(&self, retry_after: Option<Duration>) -> bool {
        self.pace
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .slow_down(retry_after)
    }

    fn interval(&self) -> Duration {
        self.pace
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .interval()
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct BucketKey {
    channel: String,
    endpoint: Endpoint,
    label: String,
}

/// Every channel's buckets; cheap to clone, one per process.
#[derive(Clone)]
pub struct Pacer {
    inner: Arc<Inner>,
}

struct Inner {
    limits: RateLimits,
    buckets: Mutex<HashMap<BucketKey, Arc<Bucket>>>,
    metrics: Option<LineMetrics>,
}

impl Pacer {
    pub fn new(limits: RateLimits, metrics: Option<LineMetrics>) -> Self {
        Self {
            inner: Arc::new(Inner {
                limits,
                buckets: Mutex::new(HashMap::new()),
                metrics,
            }),
        }
    }

    fn bucket(&self, channel: &str, endpoint: Endpoint, label: &str) -> Arc<Bucket> {
        let key = BucketKey {
            channel: channel.to_owned(),
            endpoint,
            label: label.to_owned(),
        };
        self.inner
            .buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_insert_with(|| Arc::new(Bucket::new(self.inner.limits.rate(endpoint))))
            .clone()
    }

    /// Waits up to `patience` for a permit to call `label` (an endpoint
    /// label, see [`super::api::endpoint_label`]) of `endpoint` for
    /// `channel`.
    pub async fn permit(
        &self,
        channel: &str,
        endpoint: Endpoint,
        label: &str,
        patience: Duration,
    ) -> Result<(), Refused> {
        let bucket = self.bucket(channel, endpoint, label);
        let started = tokio::time::Instant::now();
        let result = bucket.permit(patience).await;
        if let Some(metrics) = &self.inner.metrics {
            let labels = EndpointLabels {
                endpoint: label.to_owned(),
            };
            match result {
                Ok(()) => metrics
                    .permit_wait
                    .get_or_create(&labels)
                    .observe(started.elapsed().as_secs_f64()),
                Err(_) => {
                    metrics.permits_refused.get_or_create(&labels).inc();
                }
            }
        }
        result
    }

    /// LINE answered `label` of `endpoint` for `channel` with its
    /// rate-limit 429: holds the bucket for `retry_after` and slows it.
    pub fn slow_down(
        &self,
        channel: &str,
        endpoint: Endpoint,
        label: &str,
        retry_after: Option<Duration>,
    ) {
        let halved = self.bucket(channel, endpoint, label).slow_down(retry_after);
        if halved {
            tracing::info!(
                channel,
                endpoint = label,
                retry_after_ms = retry_after.map(|d| d.as_millis() as u64),
                "LINE answered 429 (rate limit): calls to this endpoint of the channel are slowed"
            );
        }
        if let Some(metrics) = &self.inner.metrics {
            metrics
                .slowdowns
                .get_or_create(&EndpointLabels {
                    endpoint: label.to_owned(),
                })
                .inc();
        }
    }

    /// Forgets a deleted channel's buckets.
    pub fn forget(&self, channel: &str) {
        self.inner
            .buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|key, _| key.channel != channel);
    }
}

#[cfg(test)]
mod tests;
