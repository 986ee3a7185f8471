//! The NATS JetStream implementation of [`Store`], for several replicas of
//! the service on one NATS (cluster).
//!
//! Layout, every name starting with the configured prefix `P`:
//! - stream `P_events` (subject `P.events`): the event log, see [`log`];
//! - key-value buckets `P_channels` (our id → JSON record), `P_line_ids`
//!   (LINE channel id → our id), `P_tokens` (token state), `P_meta`,
//!   `P_consumers` (durable consumer positions), `P_deliveries` (the
//!   outbox), `P_open_deliveries` (the ids of unfinished ones, so a restart
//!   reads only those), `P_leases` (which replica may attempt a delivery
//!   now), `P_idempotency` (send idempotency keys),
//!   `P_reply_tokens` (used reply tokens) and `P_dedupe` (webhookEventIds,
//!   see [`log`]);
//! - object store `P_media`: inbound media and agents' uploads, so every
//!   replica serves every one (see [`files`]).
//!
//! Everything is created at start-up if missing (creating what exists is a
//! no-op), with the configured replicas. Every change uses the bucket's
//! compare-and-set (create, or update at the revision read) so replicas
//! racing on one record never lose an update: the loser gets `Conflict`
//! (or `IdTaken`, `LineChannelIdTaken`) as with sled. A call returns once
//! JetStream has acknowledged the write, which with replicas > 1 means a
//! quorum of servers has it.
//!
//! Secrets arrive sealed under the master key (the store never sees them
//! in clear), as with every backend.

mod files;
mod log;
mod recent_channels;

use std::{sync::Arc, time::Duration};

use async_nats::{
    ConnectErrorKind,
    jetstream::{self, kv, stream},
};
use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::{sync::broadcast, time::Instant};

use super::{
    AckStep, AppendOutcome, ChannelRecord, ConsumerPosition, DeliveryQuery, DeliveryRecord,
    EventRecord, LogBounds, NewEvent, PruneReport, ReplyToken, Result, Retention, Store,
    StoreError, TokenStateRecord,
};
pub use files::{SharedFiles, SharedReader};
use log::NatsLog;

use crate::time::Clock;

/// How to reach NATS and what to create there.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// One or more server URLs, comma-separated.
    pub url: String,
    /// A `.creds` file (JWT and NKey seed) for the connection.
    pub creds_file: Option<std::path::PathBuf>,
    /// CA bundle to verify the servers' TLS certificates with.
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Prefix of every stream and bucket name.
    pub prefix: String,
    /// How long to keep trying to connect at start-up (zero: one try).
    pub connect_window: Duration,
    /// JetStream replicas of the stream and buckets created.
    pub replicas: usize,
    /// How long events stay in the log.
    pub event_retention: Duration,
    /// Most events kept; `None` = no count limit.
    pub max_events: Option<u64>,
    /// How long a webhookEventId is remembered.
    pub dedupe_window: Duration,
    /// The process's data dir: locked while it runs, and with the host
    /// name its identity towards the other replicas.
    pub data_dir: std::path::PathBuf,
    /// The service's time: which reply tokens are recent, which claims
    /// of a LINE channel id are stale.
    pub clock: Clock,
}

/// How long JetStream itself remembers message ids: covers concurrent
/// redeliveries and a crash between a publish and its dedupe entry.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Used reply tokens are remembered this long; LINE's tokens live for
/// minutes, so a day is plenty.
const USED_REPLY_TOKEN_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// A LINE channel id claimed this long ago by a channel that does not
/// hold it was left by a crash between two writes, and may be taken over.
const STALE_CLAIM: Duration = Duration::from_secs(60);
/// How long an idempotency key's first send may take to be stored before
/// a second send with the key gives up waiting for it.
const IDEMPOTENCY_WAIT: Duration = Duration::from_secs(5);
/// How long a stop waits for the connection to NATS to empty.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request to NATS may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn backend(err: impl std::fmt::Display) -> StoreError {
    let message = format!("NATS: {err}");
    if is_out_of_storage(&message) {
        StoreError::Full(message)
    } else {
        StoreError::Backend(message)
    }
}

/// Whether JetStream refused a write for its storage limits: the server's
/// `max_file_store` ("insufficient resources", code 10023; "insufficient
/// storage resources", 10047), the account's JetStream limits ("resource
/// limits exceeded for account", 10002) or a stream's `max_bytes` with new
/// messages discarded ("maximum bytes exceeded"). async-nats carries
/// these only as the server's text (the codes are not matched: a number
/// in a message could look like one).
fn is_out_of_storage(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "insufficient resources",
        "insufficient storage",
        "maximum bytes exceeded",
        "resource limits exceeded",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// A bucket key for any string: kept as it is when it only has characters
/// keys allow, else hex-encoded behind a marker no plain key can have.
fn kv_key(raw: &str) -> String {
    let plain = !raw.is_empty()
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        raw.to_owned()
    } else {
        format!("x.{}", hex::encode(raw.as_bytes()))
    }
}

/// The original string of a [`kv_key`].
fn from_kv_key(key: &str) -> String {
    match key.strip_prefix("x.") {
        Some(hexed) => hex::decode(hexed)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|_| key.to_owned()),
        None => key.to_owned(),
    }
}

/// A bucket key for a pair, as a digest.
fn pair_key(a: &str, b: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(a.as_bytes());
    hash.update([0]);
    hash.update(b.as_bytes());
    hex::encode(&hash.finalize()[..20])
}

fn json<T: serde::Serialize>(value: &T) -> Bytes {
    serde_json::to_vec(value)
        .expect("records always serialize to JSON")
        .into()
}

fn from_json<T: serde::de::DeserializeOwned>(bucket: &str, key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: format!("{bucket}/{key}"),
        reason: e.to_string(),
    })
}

/// The live value of an entry: deletes leave markers behind.
fn live(entry: Option<kv::Entry>) -> Option<kv::Entry> {
    entry.filter(|e| e.operation == kv::Operation::Put)
}

fn is_already_exists(err: &kv::CreateError) -> bool {
    err.kind() == kv::CreateErrorKind::AlreadyExists
}

fn is_wrong_revision(err: &kv::UpdateError) -> bool {
    err.kind() == kv::UpdateErrorKind::WrongLastRevision
}

/// Compare-and-set: writes `value` under `key` only if the key is still as
/// it was read, `current` (at its revision) or absent. `Ok(false)` when
/// another writer came first.
async fn put_if_unchanged(
    bucket: &kv::Store,
    key: &str,
    current: Option<&kv::Entry>,
    value: Bytes,
) -> Result<bool> {
    match current {
        Some(entry) => match bucket.update(key, value, entry.revision).await {
            Ok(_) => Ok(true),
            Err(err) if is_wrong_revision(&err) => Ok(false),
            Err(err) => Err(backend(err)),
        },
        None => match bucket.create(key, value).await {
            Ok(_) => Ok(true),
            Err(err) if is_already_exists(&err) => Ok(false),
            Err(err) => Err(backend(err)),
        },
    }
}

/// Who may attempt a delivery, until when.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Lease {
    owner: String,
    until_ms: i64,
}

/// Locks `data_dir` for this process and names it: a hash of the host name
/// and the data dir, stable across restarts, unique while the lock holds.
fn lock_instance(data_dir: &std::path::Path) -> Result<(std::fs::File, String)> {
    let locked =
        |e: std::io::Error| StoreError::Backend(format!("cannot lock {}: {e}", data_dir.display()));
    std::fs::create_dir_all(data_dir).map_err(locked)?;
    let file = std::fs::File::create(data_dir.join("instance.lock")).map_err(locked)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(StoreError::Locked {
                path: data_dir.display().to_string(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(locked(e)),
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    let mut hash = Sha256::new();
    hash.update(host.trim().as_bytes());
    hash.update([0]);
    hash.update(dir.as_os_str().as_encoded_bytes());
    Ok((file, hex::encode(&hash.finalize()[..12])))
}

/// The NATS store. Cheap to clone.
#[derive(Clone)]
pub struct NatsStore {
    client: async_nats::Client,
    channels: kv::Store,
    line_ids: kv::Store,
    tokens: kv::Store,
    meta: kv::Store,
    consumers: kv::Store,
    deliveries: kv::Store,
    open_deliveries: kv::Store,
    leases: kv::Store,
    idempotency: kv::Store,
    used_reply_tokens: kv::Store,
    files: SharedFiles,
    log: NatsLog,
    /// The channels the webhook path read lately ([`Store::peek_channel`]).
    recent_channels: Arc<recent_channels::RecentChannels>,
    clock: Clock,
    instance_id: String,
    /// Held while the store is open: one process per data dir.
    _instance_lock: Arc<std::fs::File>,
}

impl std::fmt::Debug for NatsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsStore").finish_non_exhaustive()
    }
}

/// How long `serve` keeps trying to reach NATS at start-up: in a cluster
/// the service may start before NATS does.
pub const CONNECT_WINDOW: Duration = Duration::from_secs(30);

/// Pause between two connection tries.
const CONNECT_RETRY: Duration = Duration::from_secs(1);

/// The first connection, tried again until `window_end` (once if past).
/// Each failure is logged with its reason (an untrusted certificate, a
/// refused connection) and the last one is the error, instead of the
/// client's own background retries, which report only "IO error".
async fn connect_within(
    connect: async_nats::ConnectOptions,
    urls: &[async_nats::ServerAddr],
    window_end: Instant,
    tls_ca_file: Option<&std::path::Path>,
) -> Result<async_nats::Client> {
    let start = Instant::now();
    // The client gives each address 5 s; a little more for name lookups.
    let per_try = Duration::from_secs(5) * u32::try_from(urls.len()).unwrap_or(u32::MAX)
        + Duration::from_secs(5);
    let servers = urls
        .iter()
        .map(|u| format!("{}:{}", u.host(), u.port()))
        .collect::<Vec<_>>()
        .join(", ");
    for attempt in 1.. {
        // A try may start late in the window but not run past its end; the
        // first always gets its full time.
        let until = match attempt {
            1 => Instant::now() + per_try,
            _ => (Instant::now() + per_try).min(window_end),
        };
        let (why, lasting) =
            match tokio::time::timeout_at(until, connect.clone().connect(urls)).await {
                Ok(Ok(client)) => return Ok(client),
                Ok(Err(err)) => {
                    let kind = err.kind();
                    let why = match (kind, tls_ca_file) {
                        (ConnectErrorKind::Tls, Some(ca)) => {
                            format!("{err} (nats_tls_ca_file {})", ca.display())
                        }
                        _ => err.to_string(),
                    };
                    // Refused credentials and a TLS setup that cannot work
                    // (an unreadable CA file) fail the same way again. In
                    // operator mode an account may reach a server late; a
                    // restart tries again then.
                    let lasting = matches!(
                        kind,
                        ConnectErrorKind::Authentication
                            | ConnectErrorKind::AuthorizationViolation
                            | ConnectErrorKind::Tls
                    );
                    (why, lasting)
                }
                Err(_) => ("no answer".to_owned(), false),
            };
        if lasting {
            return Err(StoreError::Backend(format!(
                "NATS: cannot connect to {servers}: {why}"
            )));
        }
        if Instant::now() + CONNECT_RETRY >= window_end {
            let tries = match attempt {
                1 => String::new(),
                n => format!(" ({n} tries in {} s)", (Instant::now() - start).as_secs()),
            };
            return Err(StoreError::Backend(format!(
                "NATS: cannot connect to {servers}{tries}: {why}"
            )));
        }
        tracing::warn!(error = %why, %servers, "NATS not reachable yet; trying again");
        tokio::time::sleep(CONNECT_RETRY).await;
    }
    unreachable!("the attempts are unbounded")
}

/// Waits until JetStream answers, within the same window: the servers of a
/// cluster take clients before their JetStream has elected a leader.
async fn jetstream_ready(client: &async_nats::Client, window_end: Instant) -> Result<()> {
    use async_nats::RequestErrorKind;
    loop {
        let why = match client.request("$JS.API.INFO", Bytes::new()).await {
            Ok(answer) => {
                // Read raw: the client's own account-info type cannot parse
                // NATS 2.9's answer. 10008: "JetStream system temporarily
                // unavailable"; any other answer, good or bad, is final
                // (creating the streams then says what is wrong).
                let code = serde_json::from_slice::<serde_json::Value>(&answer.payload)
                    .ok()
                    .and_then(|v| v["error"]["err_code"].as_u64());
                if code != Some(10008) {
                    return Ok(());
                }
                "JetStream is temporarily unavailable".to_owned()
            }
            Err(err)
                if matches!(
                    err.kind(),
                    RequestErrorKind::NoResponders | RequestErrorKind::TimedOut
                ) =>
            {
                format!("JetStream does not answer ({err})")
            }
            Err(err) => return Err(backend(err)),
        };
        if Instant::now() + CONNECT_RETRY >= window_end {
            return Err(StoreError::Backend(format!("NATS: {why}")));
        }
        tracing::warn!(reason = %why, "NATS JetStream not ready yet; trying again");
        tokio::time::sleep(CONNECT_RETRY).await;
    }
}

/// Authenticates with the credentials of the first server URL that has
/// any (`nats://user:password@host`, or `nats://token@host`): async-nats
/// parses them but does not send them.
fn with_url_credentials(
    connect: async_nats::ConnectOptions,
    urls: &[async_nats::ServerAddr],
) -> async_nats::ConnectOptions {
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8_lossy()
            .into_owned()
    };
    let Some(url) = urls.iter().find(|url| url.has_user_pass()) else {
        return connect;
    };
    let user = decode(url.username().unwrap_or_default());
    match url.password() {
        Some(password) => connect.user_and_password(user, decode(password)),
        None => connect.token(user),
    }
}

impl NatsStore {
    /// Connects, creates what is missing and starts following the log.
    pub async fn open(options: &NatsOptions) -> Result<Self> {
        let (instance_lock, instance_id) = lock_instance(&options.data_dir)?;
        let mut connect = async_nats::ConnectOptions::new()
            .name("line-adapter")
            .request_timeout(Some(REQUEST_TIMEOUT))
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Disconnected => tracing::warn!("NATS disconnected"),
                    async_nats::Event::Connected => tracing::info!("NATS connected"),
                    other => tracing::info!(event = %other, "NATS"),
                }
            });
        if let Some(creds) = &options.creds_file {
            connect = connect.credentials_file(creds).await.map_err(|e| {
                StoreError::Backend(format!("NATS credentials {}: {e}", creds.display()))
            })?;
        }
        if let Some(ca) = &options.tls_ca_file {
            connect = connect.add_root_certificates(ca.clone()).require_tls(true);
        }
        let urls: Vec<async_nats::ServerAddr> = options
            .url
            .split(',')
            .map(|u| u.trim().parse())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| StoreError::Backend(format!("NATS url: {e}")))?;
        connect = with_url_credentials(connect, &urls);
        let window_end = Instant::now() + options.connect_window;
        let client =
            connect_within(connect, &urls, window_end, options.tls_ca_file.as_deref()).await?;
        jetstream_ready(&client, window_end).await?;
        let js = jetstream::new(client.clone());
        let p = &options.prefix;
        let replicas = options.replicas;

        let open = |name: &str, max_age: Duration| {
            let js = js.clone();
            let bucket = format!("{p}_{name}");
            async move {
                // The bucket's stream, as the client's create_key_value
                // makes it. That call first reads the account's info, which
                // the client cannot parse from NATS 2.9 servers (Debian's).
                // Not direct: with replicas, a direct get may be answered by
                // a follower that is behind, and these reads decide.
                let config = stream::Config {
                    name: format!("KV_{bucket}"),
                    subjects: vec![format!("$KV.{bucket}.>")],
                    max_messages_per_subject: 1,
                    max_age,
                    storage: stream::StorageType::File,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: false,
                    num_replicas: replicas,
                    discard: stream::DiscardPolicy::New,
                    ..Default::default()
                };
                // Create it, or bring an existing one in line with the
                // settings (its max age follows dedupe_window_seconds).
                let written = match js.create_stream(config.clone()).await {
                    Ok(_) => Ok(()),
                    Err(_) => js.update_stream(&config).await.map(|_| ()),
                };
                js.get_key_value(&bucket).await.map_err(|e| {
                    let why = match written {
                        Err(write) => write.to_string(),
                        Ok(()) => e.to_string(),
                    };
                    StoreError::Backend(format!("NATS: opening bucket {bucket}: {why}"))
                })
            }
        };
        let forever = Duration::ZERO;
        let channels = open("channels", forever).await?;
        let line_ids = open("line_ids", forever).await?;
        let tokens = open("tokens", forever).await?;
        let meta = open("meta", forever).await?;
        let consumers = open("consumers", forever).await?;
        let deliveries = open("deliveries", forever).await?;
        let open_deliveries = open("open_deliveries", forever).await?;
        // A lease left behind expires by itself; a delivery's retries end
        // within the hour.
        let leases = open("leases", Duration::from_secs(2 * 60 * 60)).await?;
        let idempotency = open("idempotency", forever).await?;
        let used_reply_tokens = open("reply_tokens", USED_REPLY_TOKEN_AGE).await?;
        let dedupe = open("dedupe", options.dedupe_window).await?;
        let files = SharedFiles::open(&js, &format!("{p}_media"), replicas).await?;

        let subject = format!("{p}.events");
        let config = stream::Config {
            name: format!("{p}_events"),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            max_age: options.event_retention,
            max_messages: options
                .max_events
                .map(|m| i64::try_from(m).unwrap_or(i64::MAX))
                .unwrap_or(-1),
            // JetStream refuses a window longer than the stream's max age.
            duplicate_window: DUPLICATE_WINDOW.min(options.event_retention),
            num_replicas: replicas,
            allow_direct: true,
            ..Default::default()
        };
        // Create, or bring the retention of an existing stream in line
        // with the settings.
        let update = async || {
            js.update_stream(&config).await.map_err(|e| {
                StoreError::Backend(format!("NATS: updating stream {}: {e}", config.name))
            })?;
            js.get_stream(&config.name).await.map_err(backend)
        };
        let stream = match js.get_stream(&config.name).await {
            Ok(_) => update().await?,
            Err(_) => match js.create_stream(config.clone()).await {
                Ok(stream) => stream,
                // Replicas starting together: another one created it
                // first (NATS 2.9 then says the subjects overlap).
                Err(create) => match js.get_stream(&config.name).await {
                    Ok(_) => update().await?,
                    Err(_) => {
                        return Err(StoreError::Backend(format!(
                            "NATS: creating stream {}: {create}",
                            config.name
                        )));
                    }
                },
            },
        };
        let log = NatsLog::open(js, stream, subject, dedupe, options.clock.now()).await?;
        let recent_channels = Arc::new(recent_channels::RecentChannels::watch(channels.clone()));
        Ok(Self {
            client,
            channels,
            line_ids,
            tokens,
            meta,
            consumers,
            deliveries,
            open_deliveries,
            leases,
            idempotency,
            used_reply_tokens,
            files,
            log,
            recent_channels,
            clock: options.clock.clone(),
            instance_id,
            _instance_lock: Arc::new(instance_lock),
        })
    }

    /// Whether the connection to NATS is up (for readiness).
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    async fn channel_entry(&self, id: &str) -> Result<Option<(ChannelRecord, u64)>> {
        let key = kv_key(id);
        match live(self.channels.entry(&key).await.map_err(backend)?) {
            Some(entry) => Ok(Some((
                from_json("channels", id, &entry.value)?,
                entry.revision,
            ))),
            None => Ok(None),
        }
    }

    /// Claims a LINE channel id for `id`. A claim left behind by a
    /// channel that no longer holds it (a crash between two writes) is
    /// taken over.
    async fn claim_line_id(&self, line_channel_id: &str, id: &str) -> Result<()> {
        let key = kv_key(line_channel_id);
        loop {
            match self.line_ids.create(&key, Bytes::from(id.to_owned())).await {
                Ok(_) => return Ok(()),
                Err(err) if is_already_exists(&err) => {}
                Err(err) => return Err(backend(err)),
            }
            let Some(entry) = live(self.line_ids.entry(&key).await.map_err(backend)?) else {
                continue; // deleted meanwhile: try again
            };
            let holder = String::from_utf8_lossy(&entry.value).into_owned();
            if holder == id {
                return Ok(());
            }
            let held = self
                .channel_entry(&holder)
                .await?
                .is_some_and(|(c, _)| c.line_channel_id == line_channel_id);
            // A young claim may be another replica's create in progress
            // (claim first, channel second): only an old one is stale.
            let now = time::OffsetDateTime::from(self.clock.now());
            let young = now - entry.created < STALE_CLAIM;
            if held || young {
                return Err(StoreError::LineChannelIdTaken {
                    line_channel_id: line_channel_id.to_owned(),
                    existing_id: holder,
                });
            }
            match self
                .line_ids
                .update(&key, Bytes::from(id.to_owned()), entry.revision)
                .await
            {
                Ok(_) => return Ok(()),
                Err(err) if is_wrong_revision(&err) => continue,
                Err(err) => return Err(backend(err)),
            }
        }
    }

    /// Drops a LINE channel id's claim if `id` holds it.
    async fn release_line_id(&self, line_channel_id: &str, id: &str) -> Result<()> {
        let key = kv_key(line_channel_id);
        if let Some(entry) = live(self.line_ids.entry(&key).await.map_err(backend)?)
            && entry.value.as_ref() == id.as_bytes()
        {
            // Someone else may have taken it over since; then it stays.
            let _ = self
                .line_ids
                .delete_expect_revision(&key, Some(entry.revision))
                .await;
        }
        Ok(())
    }

    /// Stores a delivery and keeps the set of unfinished ones in step. The
    /// order makes a crash between the two writes harmless: an unfinished
    /// delivery is marked open before it is stored, and a finished one is
    /// unmarked only after; a stale mark is dropped when a restart reads it.
    /// With `current` the write is a compare-and-set over that entry:
    /// `Ok(false)` when it was replaced meanwhile (nothing is stored then).
    async fn write_delivery(
        &self,
        delivery: &DeliveryRecord,
        current: Option<&kv::Entry>,
    ) -> Result<bool> {
        let key = kv_key(&delivery.id);
        let finished = delivery.is_settled();
        if !finished {
            self.open_deliveries
                .put(&key, Bytes::new())
                .await
                .map_err(backend)?;
        }
        let written = match current {
            Some(_) => put_if_unchanged(&self.deliveries, &key, current, json(delivery)).await?,
            None => {
                self.deliveries
                    .put(&key, json(delivery))
                    .await
                    .map_err(backend)?;
                true
            }
        };
        if written && finished {
            self.open_deliveries.purge(&key).await.map_err(backend)?;
        }
        Ok(written)
    }

    async fn all_keys(bucket: &kv::Store) -> Result<Vec<String>> {
        use futures_util::TryStreamExt as _;
        match bucket.keys().await {
            Ok(keys) => keys.try_collect().await.map_err(backend),
            Err(err) => Err(backend(err)),
        }
    }
}

#[async_trait]
impl Store for NatsStore {
    fn healthy(&self) -> bool {
        self.connected()
    }

    fn shared(&self) -> bool {
        true
    }

    fn shared_files(&self) -> Option<SharedFiles> {
        Some(self.files.clone())
    }

    fn instance_id(&self) -> Option<&str> {
        Some(&self.instance_id)
    }

    fn commit_metrics(&self) -> Option<super::CommitMetrics> {
        Some(self.log.commit_metrics())
    }

    async fn insert_channel(&self, channel: &ChannelRecord) -> Result<()> {
        if self.channel_entry(&channel.id).await?.is_some() {
            return Err(StoreError::IdTaken {
                id: channel.id.clone(),
            });
        }
        self.claim_line_id(&channel.line_channel_id, &channel.id)
            .await?;
        match self
            .channels
            .create(kv_key(&channel.id), json(channel))
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => {
                self.release_line_id(&channel.line_channel_id, &channel.id)
                    .await?;
                if is_already_exists(&err) {
                    Err(StoreError::IdTaken {
                        id: channel.id.clone(),
                    })
                } else {
                    Err(backend(err))
                }
            }
        }
    }

    async fn get_channel(&self, id: &str) -> Result<Option<ChannelRecord>> {
        Ok(self.channel_entry(id).await?.map(|(c, _)| c))
    }

    async fn peek_channel(&self, id: &str) -> Result<Option<ChannelRecord>> {
        let key = kv_key(id);
        let ticket = match self.recent_channels.get(&key) {
            Ok(record) => return Ok(Some(record)),
            Err(ticket) => ticket,
        };
        let Some((record, revision)) = self.channel_entry(id).await? else {
            return Ok(None);
        };
        if let Some(ticket) = ticket {
            self.recent_channels.keep(ticket, &key, revision, &record);
        }
        Ok(Some(record))
    }

    async fn find_channel_by_line_id(&self, line_channel_id: &str) -> Result<Option<String>> {
        let key = kv_key(line_channel_id);
        let Some(entry) = live(self.line_ids.entry(&key).await.map_err(backend)?) else {
            return Ok(None);
        };
        let id = String::from_utf8_lossy(&entry.value).into_owned();
        // A claim whose channel is gone (or moved to another LINE id) is
        // stale.
        let current = self
            .channel_entry(&id)
            .await?
            .is_some_and(|(c, _)| c.line_channel_id == line_channel_id);
        Ok(current.then_some(id))
    }

    async fn list_channels(
        &self,
        after_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ChannelRecord>> {
        let mut ids: Vec<String> = Self::all_keys(&self.channels)
            .await?
            .iter()
            .map(|k| from_kv_key(k))
            .filter(|id| after_id.is_none_or(|after| id.as_str() > after))
            .collect();
        ids.sort_unstable();
        let mut channels = Vec::new();
        for id in ids {
            if channels.len() == limit {
                break;
            }
            if let Some((channel, _)) = self.channel_entry(&id).await? {
                channels.push(channel);
            }
        }
        Ok(channels)
    }

    async fn replace_channel(&self, expected_version: u64, channel: &ChannelRecord) -> Result<()> {
        let Some((current, revision)) = self.channel_entry(&channel.id).await? else {
            return Err(StoreError::NotFound {
                id: channel.id.clone(),
            });
        };
        let conflict = || StoreError::Conflict {
            id: channel.id.clone(),
            expected: expected_version,
        };
        if current.version != expected_version {
            return Err(conflict());
        }
        let moved = current.line_channel_id != channel.line_channel_id;
        if moved {
            self.claim_line_id(&channel.line_channel_id, &channel.id)
                .await?;
        }
        let updated = self
            .channels
            .update(kv_key(&channel.id), json(channel), revision)
            .await;
        self.recent_channels.forget(&kv_key(&channel.id));
        match updated {
            Ok(_) => {
                if moved {
                    self.release_line_id(&current.line_channel_id, &channel.id)
                        .await?;
                }
                Ok(())
            }
            Err(err) => {
                if moved {
                    self.release_line_id(&channel.line_channel_id, &channel.id)
                        .await?;
                }
                if is_wrong_revision(&err) {
                    Err(conflict())
                } else {
                    Err(backend(err))
                }
            }
        }
    }

    async fn delete_channel(&self, id: &str) -> Result<Option<ChannelRecord>> {
        let Some((record, revision)) = self.channel_entry(id).await? else {
            return Ok(None);
        };
        let key = kv_key(id);
        let deleted = self
            .channels
            .delete_expect_revision(&key, Some(revision))
            .await;
        self.recent_channels.forget(&key);
        match deleted {
            Ok(()) => {}
            // Changed meanwhile (replaced, or deleted by someone else):
            // look again.
            Err(err) if err.kind() == kv::DeleteErrorKind::WrongLastRevision => {
                return Box::pin(self.delete_channel(id)).await;
            }
            Err(err) => return Err(backend(err)),
        }
        self.tokens.delete(&key).await.map_err(backend)?;
        self.release_line_id(&record.line_channel_id, id).await?;
        Ok(Some(record))
    }

    async fn get_token_state(&self, channel_id: &str) -> Result<Option<TokenStateRecord>> {
        match live(
            self.tokens
                .entry(kv_key(channel_id))
                .await
                .map_err(backend)?,
        ) {
            Some(entry) => from_json("tokens", channel_id, &entry.value).map(Some),
            None => Ok(None),
        }
    }

    async fn put_token_state(&self, expected_version: u64, state: &TokenStateRecord) -> Result<()> {
        if self.channel_entry(&state.channel_id).await?.is_none() {
            return Err(StoreError::NotFound {
                id: state.channel_id.clone(),
            });
        }
        let conflict = || StoreError::Conflict {
            id: state.channel_id.clone(),
            expected: expected_version,
        };
        let key = kv_key(&state.channel_id);
        let stored = live(self.tokens.entry(&key).await.map_err(backend)?);
        let stored_version = match &stored {
            Some(entry) => {
                from_json::<TokenStateRecord>("tokens", &state.channel_id, &entry.value)?.version
            }
            None => 0,
        };
        if stored_version != expected_version {
            return Err(conflict());
        }
        if put_if_unchanged(&self.tokens, &key, stored.as_ref(), json(state)).await? {
            Ok(())
        } else {
            Err(conflict())
        }
    }

    async fn meta_get_or_insert(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        let k = kv_key(key);
        loop {
            match self.meta.create(&k, Bytes::copy_from_slice(value)).await {
                Ok(_) => return Ok(value.to_vec()),
                Err(err) if is_already_exists(&err) => {}
                Err(err) => return Err(backend(err)),
            }
            if let Some(stored) = self.meta.get(&k).await.map_err(backend)? {
                return Ok(stored.to_vec());
            }
        }
    }

    async fn consumers(&self) -> Result<Vec<(String, ConsumerPosition)>> {
        let mut all = Vec::new();
        for key in Self::all_keys(&self.consumers).await? {
            let name = from_kv_key(&key);
            if let Some(bytes) = self.consumers.get(&key).await.map_err(backend)? {
                all.push((name.clone(), from_json("consumers", &name, &bytes)?));
            }
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    async fn meta_put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.meta
            .put(kv_key(key), Bytes::copy_from_slice(value))
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        // Every write returned only after JetStream acknowledged it: there
        // is nothing to make durable, only the connection to empty, which
        // waits for a server while none is reachable.
        match tokio::time::timeout(CLOSE_TIMEOUT, self.client.flush()).await {
            Ok(flushed) => flushed.map_err(backend),
            Err(_) => Ok(()),
        }
    }

    async fn close(&self) -> Result<()> {
        // Bounded, so that a stop while NATS is down still ends; nothing
        // acknowledged is lost by not draining.
        match tokio::time::timeout(CLOSE_TIMEOUT, self.client.drain()).await {
            Ok(drained) => drained.map_err(backend),
            Err(_) => {
                tracing::warn!("NATS unreachable at stop: the connection was not drained");
                Ok(())
            }
        }
    }

    async fn append(&self, batch: Vec<NewEvent>) -> Result<Vec<AppendOutcome>> {
        self.log.append(batch).await
    }

    async fn read_events(&self, after: u64, limit: usize) -> Result<Vec<EventRecord>> {
        self.log.read(after, limit).await
    }

    fn bounds(&self) -> LogBounds {
        self.log.bounds()
    }

    async fn bounds_reaching(&self, sequence: u64) -> Result<LogBounds> {
        self.log.head_at_least(sequence).await?;
        Ok(self.log.bounds())
    }

    async fn oldest_retained(&self) -> Result<u64> {
        self.log.oldest_retained().await
    }

    fn tail(&self) -> broadcast::Receiver<Arc<EventRecord>> {
        self.log.tail()
    }

    async fn prune(&self, retention: Retention) -> Result<PruneReport> {
        self.log.prune(retention.reply_tokens_before_ms).await
    }

    fn recent_reply_tokens(&self, channel_id: &str, conversation_id: &str) -> Vec<ReplyToken> {
        self.log.reply_tokens().recent(channel_id, conversation_id)
    }

    async fn consumer(&self, name: &str) -> Result<Option<ConsumerPosition>> {
        match self.consumers.get(kv_key(name)).await.map_err(backend)? {
            Some(bytes) => from_json("consumers", name, &bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn claim_reply_token(&self, channel_id: &str, token: &str, now_ms: i64) -> Result<bool> {
        let key = pair_key(channel_id, token);
        match self
            .used_reply_tokens
            .create(key, Bytes::copy_from_slice(&now_ms.to_be_bytes()))
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if is_already_exists(&err) => Ok(false),
            Err(err) => Err(backend(err)),
        }
    }

    async fn insert_delivery(&self, delivery: &DeliveryRecord) -> Result<Option<DeliveryRecord>> {
        if delivery.idempotency_key.is_empty() {
            self.write_delivery(delivery, None).await?;
            return Ok(None);
        }
        // The delivery is stored before its key points at it, so a key
        // always names a stored delivery. Whoever creates the key first
        // wins; the loser withdraws its own delivery before anything could
        // send it (the caller starts it only after this returns).
        let key = pair_key(&delivery.channel_id, &delivery.idempotency_key);
        self.write_delivery(delivery, None).await?;
        let winner = match self
            .idempotency
            .create(&key, Bytes::from(delivery.id.clone()))
            .await
        {
            Ok(_) => return Ok(None),
            Err(err) if is_already_exists(&err) => {
                let id = self.idempotency.get(&key).await.map_err(backend)?;
                id.map(|id| String::from_utf8_lossy(&id).into_owned())
            }
            Err(err) => Err(backend(err))?,
        };
        let withdraw = async {
            let k = kv_key(&delivery.id);
            self.open_deliveries.purge(&k).await.map_err(backend)?;
            self.deliveries.purge(&k).await.map_err(backend)
        };
        match winner {
            // A timed-out create that landed after all.
            Some(id) if id == delivery.id => Ok(None),
            Some(id) => {
                withdraw.await?;
                // Stored before its key was created: there, or purged by a
                // loser that raced it, which cannot happen to a winner.
                let deadline = std::time::Instant::now() + IDEMPOTENCY_WAIT;
                loop {
                    if let Some(existing) = self.get_delivery(&id).await? {
                        return Ok(Some(existing));
                    }
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Backend(format!(
                            "the idempotency key names delivery {id}, which is not stored"
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            None => {
                withdraw.await?;
                Err(StoreError::Backend(
                    "the idempotency key changed while it was being stored; retry".into(),
                ))
            }
        }
    }

    async fn update_delivery(
        &self,
        previous_update_ms: i64,
        delivery: &DeliveryRecord,
    ) -> Result<()> {
        let key = kv_key(&delivery.id);
        let conflict = || StoreError::Conflict {
            id: delivery.id.clone(),
            expected: previous_update_ms.max(0) as u64,
        };
        let Some(entry) = live(self.deliveries.entry(&key).await.map_err(backend)?) else {
            return Err(StoreError::NotFound {
                id: delivery.id.clone(),
            });
        };
        let stored: DeliveryRecord = from_json("deliveries", &delivery.id, &entry.value)?;
        if stored.update_time_ms != previous_update_ms {
            return Err(conflict());
        }
        if self.write_delivery(delivery, Some(&entry)).await? {
            Ok(())
        } else {
            Err(conflict())
        }
    }

    async fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>> {
        match self.deliveries.get(kv_key(id)).await.map_err(backend)? {
            Some(bytes) => from_json("deliveries", id, &bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn delivery_by_idempotency_key(
        &self,
        channel_id: &str,
        key: &str,
    ) -> Result<Option<DeliveryRecord>> {
        match self
            .idempotency
            .get(pair_key(channel_id, key))
            .await
            .map_err(backend)?
        {
            Some(id) => self.get_delivery(&String::from_utf8_lossy(&id)).await,
            None => Ok(None),
        }
    }

    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<DeliveryRecord>> {
        use futures_util::{StreamExt as _, TryStreamExt as _};
        // Keys are the ids (ULIDs: time order); newest first.
        let mut keys = Self::all_keys(&self.deliveries).await?;
        keys.retain(|key| query.before_id.as_ref().is_none_or(|before| key < before));
        keys.sort_unstable_by(|a, b| b.cmp(a));
        let mut found = Vec::new();
        // Read in batches, so a page over a rare state does not read all.
        for batch in keys.chunks(64) {
            let stored: Vec<(String, Option<Bytes>)> =
                futures_util::stream::iter(batch.iter().cloned())
                    .map(|key: String| async move {
                        let bytes = self.deliveries.get(&key).await.map_err(backend)?;
                        Ok::<_, StoreError>((key, bytes))
                    })
                    .buffered(32)
                    .try_collect()
                    .await?;
            for (key, bytes) in stored {
                let Some(bytes) = bytes else { continue };
                let delivery: DeliveryRecord = from_json("deliveries", &key, &bytes)?;
                if query.matches(&delivery) {
                    found.push(delivery);
                    if found.len() >= query.limit {
                        return Ok(found);
                    }
                }
            }
        }
        Ok(found)
    }

    async fn unfinished_deliveries(&self) -> Result<Vec<DeliveryRecord>> {
        use futures_util::{StreamExt as _, TryStreamExt as _};
        let keys = Self::all_keys(&self.open_deliveries).await?;
        let stored: Vec<(String, Option<Bytes>)> = futures_util::stream::iter(keys)
            .map(|key| async move {
                let bytes = self.deliveries.get(&key).await.map_err(backend)?;
                Ok::<_, StoreError>((key, bytes))
            })
            .buffered(32)
            .try_collect()
            .await?;
        let mut unfinished = Vec::new();
        for (key, bytes) in stored {
            let delivery = match bytes {
                Some(bytes) => Some(from_json::<DeliveryRecord>("deliveries", &key, &bytes)?),
                None => None,
            };
            match delivery {
                Some(delivery) if !delivery.is_settled() => unfinished.push(delivery),
                // Finished: a mark left by a crash between two writes.
                Some(_) => self.open_deliveries.purge(&key).await.map_err(backend)?,
                // Not stored (yet: another replica may be between its two
                // writes right now), so the mark stays.
                None => {}
            }
        }
        // Oldest first: ids are ULIDs.
        unfinished.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(unfinished)
    }

    async fn lease_delivery(
        &self,
        id: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool> {
        let key = kv_key(id);
        let lease = Lease {
            owner: owner.to_owned(),
            until_ms,
        };
        let current = live(self.leases.entry(&key).await.map_err(backend)?);
        if let Some(entry) = &current {
            let held: Lease = from_json("leases", id, &entry.value)?;
            if held.owner != owner && held.until_ms > now_ms {
                return Ok(false);
            }
        }
        // Someone else writing it first: theirs.
        put_if_unchanged(&self.leases, &key, current.as_ref(), json(&lease)).await
    }

    async fn release_delivery(&self, id: &str, owner: &str) -> Result<()> {
        let key = kv_key(id);
        if let Some(entry) = live(self.leases.entry(&key).await.map_err(backend)?) {
            let held: Lease = from_json("leases", id, &entry.value)?;
            if held.owner == owner {
                // Taken over meanwhile: then it stays.
                let _ = self
                    .leases
                    .purge_expect_revision(&key, Some(entry.revision))
                    .await;
            }
        }
        Ok(())
    }

    async fn ack(
        &self,
        name: &str,
        sequence: u64,
        now_ms: i64,
    ) -> Result<(ConsumerPosition, bool)> {
        let head = self.log.head_at_least(sequence).await?;
        if sequence > head {
            return Err(StoreError::AckBeyondHead { sequence, head });
        }
        let key = kv_key(name);
        // Compare-and-set so concurrent acks (from any replica) never move
        // a consumer backwards.
        loop {
            let current = live(self.consumers.entry(&key).await.map_err(backend)?);
            let position = current
                .as_ref()
                .map(|e| from_json::<ConsumerPosition>("consumers", name, &e.value))
                .transpose()?;
            let next = match ConsumerPosition::ack(position.as_ref(), name, sequence, now_ms)? {
                AckStep::Unchanged(position) => return Ok((position, false)),
                AckStep::MoveTo(next) => next,
            };
            if put_if_unchanged(&self.consumers, &key, current.as_ref(), json(&next)).await? {
                return Ok((next, position.is_none()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_never_collide() {
        for raw in ["ch_01abc", "web-hook", "a.b", "with space", "日本", "x.61"] {
            let key = kv_key(raw);
            assert!(
                key.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)),
                "{key}"
            );
            assert_eq!(from_kv_key(&key), raw);
        }
        assert_ne!(kv_key("x.61"), kv_key("a"));
    }
}
