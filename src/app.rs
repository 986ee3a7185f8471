//! Assembles and runs the service: binds listeners, loads the master key,
//! serves gRPC and HTTP, opens the store, and drains on shutdown.
//!
//! `main` and the tests call [`run`] the same way, with listeners bound
//! beforehand (tests bind port 0) and any future as the stop trigger.

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;

use crate::{
    channels::Channels,
    drain::Drain,
    fanout::Fanout,
    fault::StoreFault,
    grpc::{self, Core, admin::AdminService, messaging::MessagingService},
    http::{self, HttpState, Readiness},
    inbound::Inbound,
    line::{LineClient, pace::Pacer},
    media::Media,
    metrics::Metrics,
    outbox::Outbox,
    proto::v1::{channel_admin_server::ChannelAdminServer, messaging_server::MessagingServer},
    secret::{Cipher, MasterKey, MasterKeyError, MasterKeySource},
    services::{Ready, Services},
    settings::Settings,
    settings::StoreBackend,
    space::SpaceWatch,
    store::{
        NatsOptions, NatsStore, Retention, SledStore, Store, StoreError, nats,
        reply_tokens::REPLY_TOKEN_LIFETIME,
    },
    time::Clock,
    tokens::{TokenSettings, Tokens},
    uploads::Uploads,
};

/// File in the data dir holding a generated master key.
pub const MASTER_KEY_FILE: &str = "master.key";
/// Folder in the data dir holding the sled store.
pub const STORE_DIR: &str = "store";
/// Folder in the data dir holding kept media.
pub const MEDIA_DIR: &str = "media";
/// Folder in the data dir holding agents' uploads (UploadMedia).
pub const UPLOADS_DIR: &str = "uploads";
/// Media retention runs every this many prune ticks.
const MEDIA_PRUNE_EVERY: u64 = 60;
/// Meta key of a value encrypted with the master key, to detect a wrong key
/// at start-up rather than on the first webhook.
const MASTER_KEY_CHECK: &str = "master_key_check";
const MASTER_KEY_CHECK_CONTEXT: &str = "meta/master_key_check";
/// How often retention runs. Pruning stops at the first record it keeps,
/// so a run with nothing to drop costs next to nothing.
const PRUNE_INTERVAL: Duration = Duration::from_secs(1);
/// Retention runs every second: its failures are logged as counts.
static RETENTION_FAILED: crate::log_limit::Throttle =
    crate::log_limit::Throttle::new(crate::log_limit::INTERVAL);
/// Meta key the readiness follower writes to find out whether a store whose
/// writes failed takes them again.
const STORE_PROBE: &str = "store_probe";
/// Bytes the probe writes: about what one webhook's events take, since a
/// store with a little room left (JetStream near an account's limit) takes
/// a tiny write while it still refuses events.
const STORE_PROBE_BYTES: usize = 4096;
/// While store writes fail, the store is reopened at most this often.
const REOPEN_EVERY: Duration = Duration::from_secs(1);
/// How often issued tokens are checked for renewal.
const TOKEN_RENEW_INTERVAL: Duration = Duration::from_secs(60);

impl AppError {
    /// Whether stored data is damaged or foreign: `main` exits 65
    /// (EX_DATAERR) for these.
    pub fn is_data(&self) -> bool {
        matches!(
            self,
            AppError::Store(StoreError::Damaged { .. } | StoreError::Corrupt { .. })
        )
    }

    /// Whether the operator's configuration (rather than the machine) is at
    /// fault: `main` exits 64 for these, as for a bad setting.
    pub fn is_configuration(&self) -> bool {
        match self {
            AppError::MasterKey(_)
            | AppError::MasterKeyMismatch { .. }
            | AppError::MasterKeyMissing
            | AppError::Tls { .. } => true,
            AppError::Bind { .. }
            | AppError::DataDir { .. }
            | AppError::Store(_)
            | AppError::Serve { .. } => false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("TLS for gRPC: {reason}")]
    Tls { reason: String },
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("master key: {0}")]
    MasterKey(#[from] MasterKeyError),
    #[error(
        "the master key does not match the one this data dir was written with; {}",
        if *data_dir_key_fits {
            "the master.key file in the data dir holds the right key: unset LINE_ADAPTER_MASTER_KEY, or set it to that file's content"
        } else {
            "set LINE_ADAPTER_MASTER_KEY to the original key"
        }
    )]
    MasterKeyMismatch { data_dir_key_fits: bool },
    #[error(
        "the data dir holds a store but no master.key: set LINE_ADAPTER_MASTER_KEY to the key it was written with"
    )]
    MasterKeyMissing,
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("{what} server failed: {reason}")]
    Serve { what: &'static str, reason: String },
}

/// The two listeners, bound before anything else starts so that their
/// addresses are reserved and known.
#[derive(Debug)]
pub struct Listeners {
    pub grpc: TcpListener,
    pub http: TcpListener,
}

impl Listeners {
    pub async fn bind(settings: &Settings) -> Result<Self, AppError> {
        let bind = |what, addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| AppError::Bind { what, addr, source })
        };
        Ok(Self {
            grpc: bind("gRPC", settings.grpc_addr).await?,
            http: bind("HTTP", settings.http_addr).await?,
        })
    }
}

/// Runs the service until `shutdown` completes, then drains within
/// `settings.shutdown_grace`; time is the system's.
pub async fn run(
    settings: Settings,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AppError> {
    run_with_clock(settings, listeners, Clock::system(), shutdown).await
}

/// As [`run`], with the time read from `clock`: tests pass
/// [`Clock::tokio`] to make time pass with `tokio::time::advance`.
pub async fn run_with_clock(
    settings: Settings,
    listeners: Listeners,
    clock: Clock,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AppError> {
    let settings = Arc::new(settings);
    let local = |listener: &TcpListener, what, fallback| {
        listener.local_addr().map_err(|source| AppError::Bind {
            what,
            addr: fallback,
            source,
        })
    };
    let grpc_addr = local(&listeners.grpc, "gRPC", settings.grpc_addr)?;
    let http_addr = local(&listeners.http, "HTTP", settings.http_addr)?;

    std::fs::create_dir_all(&settings.data_dir).map_err(|source| AppError::DataDir {
        path: settings.data_dir.clone(),
        source,
    })?;
    let cipher = cipher(&settings)?;

    if settings.api_keys.is_empty() && grpc_addr.ip().is_loopback() {
        tracing::info!(
            grpc = %grpc_addr,
            "no API keys configured (LINE_ADAPTER_API_KEYS): gRPC listens on loopback only, without authentication"
        );
    } else if settings.api_keys.is_empty() {
        tracing::warn!(
            grpc = %grpc_addr,
            "--insecure-no-auth: gRPC is reachable from other hosts WITHOUT authentication"
        );
    } else {
        tracing::info!(
            keys = settings.api_keys.len(),
            "gRPC callers must present an API key"
        );
    }

    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, ServingStatus::NotServing).await;
    let readiness = Readiness::default();
    let ready = Ready::default();
    let stop = CancellationToken::new();
    let drain = Drain::default();
    let core = Core::new(settings.clone(), ready.clone(), http_addr.port());

    let tls = settings.grpc_tls.as_ref().map(grpc_tls).transpose()?;
    // A sled store opens in milliseconds: open it (and check the master
    // key) before serving anything, so a wrong key is refused before
    // "listening". NATS may take its connect window; the probes answer
    // meanwhile.
    let early = match &settings.store {
        StoreBackend::Sled => Some(open_store(&settings, &cipher, &clock, Duration::ZERO).await?),
        StoreBackend::Nats(_) => None,
    };
    let mut grpc_task: JoinHandle<Result<(), tonic::transport::Error>> = tokio::spawn(grpc::serve(
        core.clone(),
        health_service,
        listeners.grpc,
        tls,
        drain.clone(),
        stop.clone(),
    ));
    let http_state = HttpState {
        readiness: readiness.clone(),
        ready: ready.clone(),
        body_limit: settings.webhook_body_limit,
        drain: drain.clone(),
    };
    let mut http_task = tokio::spawn(http::serve(listeners.http, http_state, stop.clone()));
    tracing::info!(grpc = %grpc_addr, http = %http_addr, "listening");

    let mut shutdown = std::pin::pin!(shutdown);
    let opened = match early {
        Some(opened) => Some(Ok(opened)),
        None => tokio::select! {
            opened = open_store(&settings, &cipher, &clock, nats::CONNECT_WINDOW) => Some(opened),
            _ = &mut shutdown => None,
        },
    };
    let (store, rotation) = match opened {
        Some(Ok(opened)) => opened,
        failed => {
            // Stopped (or failed) before the store opened: nothing to drain.
            stop.cancel();
            let _ = tokio::time::timeout(settings.shutdown_grace, async {
                let _ = tokio::join!(&mut grpc_task, &mut http_task);
            })
            .await;
            return match failed {
                Some(Err(err)) => Err(err),
                _ => Ok(()),
            };
        }
    };
    // Every failed write, whichever part meets it, makes the service not
    // ready at once (see store::watched).
    let fault = StoreFault::new(clock.clone());
    let mut watched = crate::store::Watched::new(store, fault.clone());
    if matches!(settings.store, StoreBackend::Sled) {
        // sled fails every write after one met a full disk, until opened
        // again; NATS recovers by itself.
        let dir = settings.data_dir.join(STORE_DIR);
        let cache_bytes = settings.store_cache_bytes;
        let clock = clock.clone();
        watched = watched.with_opener(Box::new(move || {
            Box::pin(reopen_sled(dir.clone(), cache_bytes, clock.clone()))
        }));
    }
    let store: Arc<dyn Store> = Arc::new(watched);
    let fanout = Fanout::new(store.clone(), clock.clone());
    let channels = Channels::new(store.clone(), cipher.clone(), clock.clone());
    let metrics = Metrics::new(store.commit_metrics());
    let line = line_client(&settings)
        .map_err(|reason| AppError::Serve {
            what: "LINE client",
            reason,
        })?
        .with_metrics(metrics.line.clone());
    if settings.line_proxy.is_some() {
        tracing::info!("calls to LINE go through the configured proxy (line_proxy)");
    }
    let tokens = tokens(
        &settings,
        channels.clone(),
        store.clone(),
        line.clone(),
        metrics.clone(),
        clock.clone(),
    )
    .with_owner(store.instance_id());
    let outbox = Outbox::new(
        store.clone(),
        tokens.clone(),
        metrics.clone(),
        clock.clone(),
    )
    .with_owner(store.instance_id())
    .with_max_backoff(settings.outbox_max_backoff)
    // An attempt, with its saves, fits in the lease twice over.
    .with_lease(2 * settings.line_request_timeout + Duration::from_secs(10));
    // The watermark guards sled's files; on NATS the data dir holds only
    // media, which has its own bound.
    let space = match settings.store {
        StoreBackend::Sled => SpaceWatch::new(
            settings.data_dir.clone(),
            settings.store_min_free_bytes,
            settings.store_min_free_percent,
            metrics.clone(),
        ),
        StoreBackend::Nats(_) => SpaceWatch::new(settings.data_dir.clone(), 0, 0, metrics.clone()),
    };
    if let Ok(reading) = space.read() {
        // Known before the first request, not 250 ms later.
        space.apply(reading);
    }
    let media = Media::new(
        settings.data_dir.join(MEDIA_DIR),
        tokens.clone(),
        clock.clone(),
        Some(space.clone()),
        store.shared_files(),
    );
    let uploads = {
        let dir = settings.data_dir.join(UPLOADS_DIR);
        let settings = settings.clone();
        tokio::task::spawn_blocking(move || {
            Uploads::open(
                dir.clone(),
                settings.public_base_url.as_ref(),
                settings.outbound_media_retention,
                settings.outbound_media_max_bytes,
            )
            .map_err(|source| AppError::DataDir { path: dir, source })
        })
        .await
        .map_err(|err| AppError::Serve {
            what: "uploads",
            reason: err.to_string(),
        })??
        .with_shared(store.shared_files())
    };
    // Kept by this replica before uploads were shared (NATS): moved now.
    uploads.move_into_shared().await;
    let lookups = crate::lookup_cache::LookupCache::new(clock.clone());
    let profiles = crate::profiles::Profiles::new(
        settings.lookup_profiles,
        store.clone(),
        tokens.clone(),
        lookups.clone(),
        clock.clone(),
    );
    let rekeyer = rotation.map(|check| {
        metrics.master_key_rotation_pending.set(1);
        tokio::spawn(crate::rekey::rotate_and_report(
            store.clone(),
            channels.clone(),
            tokens.clone(),
            metrics.clone(),
            MASTER_KEY_CHECK,
            check,
        ))
    });
    ready.set(Services {
        clock: clock.clone(),
        store: store.clone(),
        channels,
        tokens: tokens.clone(),
        inbound: Inbound::new(store.clone(), media.clone(), profiles.clone()),
        fanout: fanout.clone(),
        outbox: outbox.clone(),
        media: media.clone(),
        uploads: uploads.clone(),
        metrics,
        lookups,
        space: space.clone(),
        fault,
    });
    match outbox.resume().await {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "resumed unfinished sends"),
        Err(err) => tracing::error!(error = %err, "cannot resume unfinished sends"),
    }
    // Only where other processes share the store can sends be abandoned
    // while this one runs.
    let adopter = tokio::spawn({
        let outbox = outbox.clone();
        let shared = store.shared();
        async move {
            if shared {
                outbox.adopt_forever().await
            }
        }
    });
    let pruner = tokio::spawn(prune_forever(
        store.clone(),
        media.clone(),
        uploads,
        settings.clone(),
        space.clone(),
        clock,
    ));
    let renewer = tokio::spawn(renew_tokens_forever(tokens));
    let space_watcher = tokio::spawn(space.clone().watch_forever());
    readiness.set(true);
    // gRPC health follows /healthz (the server's overall status) and
    // /readyz (ChannelAdmin's and Messaging's), set once now (so it is
    // SERVING by the time /readyz says ready) and then on every change,
    // until the stop takes over.
    let serving = Serving::now(&readiness, &ready);
    serving.report(&health).await;
    let mut health_follower = tokio::spawn(follow_readiness(
        health.clone(),
        readiness.clone(),
        ready.clone(),
        space.clone(),
        serving,
    ));
    tracing::info!(data_dir = %settings.data_dir.display(), "ready");

    let failure = tokio::select! {
        _ = &mut shutdown => None,
        result = &mut grpc_task => Some(AppError::Serve {
            what: "gRPC",
            reason: match result {
                Ok(Ok(())) => "stopped unexpectedly".into(),
                Ok(Err(err)) => err.to_string(),
                Err(err) => err.to_string(),
            },
        }),
        result = &mut http_task => Some(AppError::Serve {
            what: "HTTP",
            reason: match result {
                Ok(()) => "stopped unexpectedly".into(),
                Err(err) => err.to_string(),
            },
        }),
    };

    // Stop in three steps. Tell the probes first (readiness 503, health
    // NOT_SERVING) and keep serving for `shutdown_delay`, while load
    // balancers catch up. Then drain with both listeners open: new
    // webhooks get 503 (LINE redelivers), new calls UNAVAILABLE, and what
    // is in flight finishes. Then close the listeners.
    health_follower.abort();
    let _ = (&mut health_follower).await;
    readiness.set(false);
    set_health(&health, ServingStatus::NotServing).await;
    if failure.is_none() && !settings.shutdown_delay.is_zero() {
        tracing::info!(delay = ?settings.shutdown_delay, "not ready; serving on until the drain starts (shutdown_delay_seconds)");
        tokio::time::sleep(settings.shutdown_delay).await;
    }
    drain.start();
    tracing::info!(in_flight = drain.in_flight(), "draining");
    pruner.abort();
    space_watcher.abort();
    adopter.abort();
    renewer.abort();
    if let Some(rekeyer) = &rekeyer {
        // Stopped midway, it resumes on the next start.
        rekeyer.abort();
    }
    let drained = tokio::time::timeout(settings.shutdown_grace, async {
        // Subscribe streams never end by themselves: end them (each tells
        // its client where to resume) so the gRPC drain can finish.
        fanout.close().await;
        // At once: a long media download must not delay waiting for the
        // calls in flight, nor they the outbox's stop.
        tokio::join!(
            outbox.close(),
            media.close(),
            profiles.close(),
            drain.idle()
        );
        // Health Watch streams only end when their status is removed; an
        // open one would hold the listener's close for the whole grace.
        clear_health(health).await;
        stop.cancel();
        if !grpc_task.is_finished() {
            let _ = (&mut grpc_task).await;
        }
        if !http_task.is_finished() {
            let _ = (&mut http_task).await;
        }
    })
    .await;
    if drained.is_err() {
        stop.cancel();
        tracing::warn!(
            grace = ?settings.shutdown_grace,
            "in-flight calls did not finish within the grace period; stopping anyway"
        );
        grpc_task.abort();
        http_task.abort();
    }
    let _ = pruner.await;
    let _ = renewer.await;
    if let Some(rekeyer) = rekeyer {
        let _ = rekeyer.await;
    }
    store.close().await?;
    tracing::info!("stopped");
    match failure {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Applies retention every `PRUNE_INTERVAL` (media: every
/// `MEDIA_PRUNE_EVERY` of them, since it walks a folder) until aborted.
/// The transport to LINE as the settings say (bases, proxy, timeout); the
/// service and `line-adapter check` build theirs here.
pub fn line_client(settings: &Settings) -> Result<LineClient, String> {
    LineClient::with_proxy(
        &settings.line_api_base,
        &settings.line_data_api_base,
        settings.line_proxy.as_ref(),
        settings.line_request_timeout,
    )
}

/// Channel access tokens as the settings say, over `line`, with calls
/// paced at `line_rate_limits`.
pub fn tokens(
    settings: &Settings,
    channels: Channels,
    store: Arc<dyn Store>,
    line: LineClient,
    metrics: Metrics,
    clock: Clock,
) -> Tokens {
    // One pacer for the process: every channel client shares its buckets.
    let pacer = Pacer::new(
        settings.line_rate_limits.clone(),
        Some(metrics.line.clone()),
    );
    Tokens::new(
        channels,
        store,
        line,
        pacer,
        TokenSettings {
            refresh_margin: settings.token_refresh_margin,
            v2_1_lifetime: settings.token_v2_1_lifetime,
        },
        metrics,
        clock,
    )
}

async fn prune_forever(
    store: Arc<dyn Store>,
    media: Media,
    uploads: Uploads,
    settings: Arc<Settings>,
    space: SpaceWatch,
    clock: Clock,
) {
    let mut ticks = tokio::time::interval(PRUNE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for tick in 0u64.. {
        ticks.tick().await;
        if tick % MEDIA_PRUNE_EVERY == 0 {
            let before = clock.now() - settings.media_retention;
            let removed = media.prune(before, settings.media_max_bytes).await;
            if removed > 0 {
                tracing::info!(removed, "media retention removed kept media");
            }
        }
        // An in-memory walk that stops at the first upload it keeps: every
        // tick, so an expired URL stops working within a second.
        let removed = uploads.prune(clock.now_ms()).await;
        if removed > 0 {
            tracing::info!(removed, "outbound media retention removed uploads");
        }
        if space.is_low() {
            // Retention writes to the store too (sled frees no disk space
            // by deleting), and a write that meets a full disk leaves sled
            // failing every write after it: wait for space.
            continue;
        }
        let now = clock.now_ms();
        let before = |age: Duration| now.saturating_sub(age.as_millis() as i64);
        let retention = Retention {
            events_before_ms: before(settings.event_retention),
            max_events: settings.event_retention_max_events,
            dedupe_before_ms: before(settings.dedupe_window),
            reply_tokens_before_ms: before(REPLY_TOKEN_LIFETIME),
        };
        match store.prune(retention).await {
            Ok(report) if report.events > 0 => {
                tracing::debug!(events = report.events, "retention dropped old events")
            }
            Ok(_) => {}
            Err(err) => {
                if let Some(suppressed) = RETENTION_FAILED.admit() {
                    tracing::warn!(error = %err, suppressed, "applying retention failed (suppressed: how many more since the last such line)");
                }
            }
        }
    }
}

/// Sets gRPC health from [`Readiness::not_ready`] whenever it changes,
/// looking every [`crate::space::CHECK_INTERVAL`] and at once when the
/// low-space state changes, until aborted.
async fn follow_readiness(
    health: tonic_health::server::HealthReporter,
    readiness: Readiness,
    ready: Ready,
    space: SpaceWatch,
    mut serving: Serving,
) {
    let mut ticks = tokio::time::interval(crate::space::CHECK_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_reopen: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            // A low-space change is told at once.
            () = space.changed() => {}
        }
        if let Some(services) = ready.get()
            && services.fault.is_faulted()
        {
            // A small durable write: once it succeeds the store works
            // again (a flush alone can succeed on a store that fails
            // every write).
            let mut probe = vec![0u8; STORE_PROBE_BYTES];
            probe[..8].copy_from_slice(&services.clock.now_ms().to_be_bytes());
            match services.store.meta_put(STORE_PROBE, &probe).await {
                Ok(()) => {
                    if services.fault.cleared() {
                        tracing::info!("the store takes writes again: ready");
                    }
                }
                Err(err) => {
                    static PROBE_FAILED: crate::log_limit::Throttle =
                        crate::log_limit::Throttle::new(crate::log_limit::INTERVAL);
                    if let Some(suppressed) = PROBE_FAILED.admit() {
                        tracing::error!(error = %err, suppressed, failing_for = ?services.fault.failing_for(), "store writes fail: not ready; reopening the store until it takes writes again (suppressed: how many more such lines since the last)");
                    }
                    // A store that failed a write may fail every later one
                    // until it is opened again (sled does).
                    if services.space.has_room_for(crate::space::ROOM_TO_REOPEN)
                        && last_reopen.is_none_or(|at| at.elapsed() >= REOPEN_EVERY)
                    {
                        last_reopen = Some(tokio::time::Instant::now());
                        match services.store.reopen().await {
                            Ok(true) => {
                                services.metrics.store_reopens.inc();
                            }
                            Ok(false) => {}
                            Err(err) => {
                                static REOPEN_FAILED: crate::log_limit::Throttle =
                                    crate::log_limit::Throttle::new(crate::log_limit::INTERVAL);
                                if let Some(suppressed) = REOPEN_FAILED.admit() {
                                    tracing::error!(error = %err, suppressed, "reopening the store failed; trying again (suppressed: how many more such lines since the last)");
                                }
                            }
                        }
                    }
                }
            }
        }
        if let Some(services) = ready.get() {
            let metrics = &services.metrics;
            metrics
                .store_writes_failing
                .set(i64::from(services.fault.is_faulted()));
            metrics.store_full.set(i64::from(services.fault.is_full()));
        }
        let now = Serving::now(&readiness, &ready);
        if now != serving {
            serving = now;
            serving.report(&health).await;
        }
    }
}

/// What gRPC health says: the server's overall status ("") is liveness,
/// ChannelAdmin's and Messaging's are readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Serving {
    alive: bool,
    ready: bool,
}

impl Serving {
    fn now(readiness: &Readiness, ready: &Ready) -> Self {
        Self {
            alive: readiness.not_alive(ready).is_none(),
            ready: readiness.not_ready(ready).is_none(),
        }
    }

    async fn report(self, reporter: &tonic_health::server::HealthReporter) {
        let status = |serving| {
            if serving {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            }
        };
        reporter.set_service_status("", status(self.alive)).await;
        for name in [
            <ChannelAdminServer<AdminService> as tonic::server::NamedService>::NAME,
            <MessagingServer<MessagingService> as tonic::server::NamedService>::NAME,
            OFFICIAL_ACCOUNT,
        ] {
            reporter.set_service_status(name, status(self.ready)).await;
        }
    }
}

/// Renews issued access tokens before they expire, every
/// `TOKEN_RENEW_INTERVAL`, until aborted.
async fn renew_tokens_forever(tokens: Tokens) {
    let mut ticks = tokio::time::interval(TOKEN_RENEW_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        tokens.renew_due().await;
    }
}

/// `weiyu.line.v1.OfficialAccount`, as health reports it.
const OFFICIAL_ACCOUNT: &str = <crate::proto::v1::official_account_server::OfficialAccountServer<
    grpc::official_account::OfficialAccountService,
> as tonic::server::NamedService>::NAME;

async fn set_health(reporter: &tonic_health::server::HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter
        .set_service_status(
            <ChannelAdminServer<AdminService> as tonic::server::NamedService>::NAME,
            status,
        )
        .await;
    reporter
        .set_service_status(
            <MessagingServer<MessagingService> as tonic::server::NamedService>::NAME,
            status,
        )
        .await;
    reporter.set_service_status(OFFICIAL_ACCOUNT, status).await;
}

async fn clear_health(mut reporter: tonic_health::server::HealthReporter) {
    for name in [
        "",
        <ChannelAdminServer<AdminService> as tonic::server::NamedService>::NAME,
        <MessagingServer<MessagingService> as tonic::server::NamedService>::NAME,
        OFFICIAL_ACCOUNT,
    ] {
        reporter.clear_service_status(name).await;
    }
}

/// The gRPC listener's TLS identity from its PEM files. Read once at start:
/// a renewed certificate takes effect on the next restart.
fn grpc_tls(
    files: &crate::settings::TlsFiles,
) -> Result<tonic::transport::ServerTlsConfig, AppError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|err| AppError::Tls {
            reason: format!("cannot read {}: {err}", path.display()),
        })
    };
    let identity = tonic::transport::Identity::from_pem(read(&files.cert)?, read(&files.key)?);
    let config = tonic::transport::ServerTlsConfig::new().identity(identity);
    // Parsed now, so a bad file stops the start with a clear error.
    tonic::transport::Server::builder()
        .tls_config(config.clone())
        .map_err(|err| AppError::Tls {
            reason: format!("{} / {}: {err}", files.cert.display(), files.key.display()),
        })?;
    tracing::info!(cert = %files.cert.display(), "gRPC serves TLS");
    Ok(config)
}

fn cipher(settings: &Settings) -> Result<Cipher, AppError> {
    let key = master_key(settings)?;
    Ok(match &settings.master_key_previous {
        Some(previous) => Cipher::rotating(&key, previous),
        None => Cipher::new(&key),
    })
}

/// Whether a configured master key was refused while the data dir's
/// `master.key` (left from a start without one) opens the store.
fn data_dir_key_fits(settings: &Settings, stored_check: &[u8]) -> bool {
    let path = settings.data_dir.join(MASTER_KEY_FILE);
    if settings.master_key.is_none() || !path.exists() {
        return false;
    }
    let Ok((key, _)) = MasterKey::load_or_generate(&path) else {
        return false;
    };
    Cipher::new(&key)
        .decrypt(MASTER_KEY_CHECK_CONTEXT, stored_check)
        .is_ok_and(|plain| &plain[..] == MASTER_KEY_CHECK.as_bytes())
}

/// The store opened and checked against the master key as [`run`] does,
/// without serving anything (for `line-adapter check`). `Ok(None)` when the
/// data dir holds no store yet; nothing is created then.
pub async fn open_offline(
    settings: &Settings,
    clock: &Clock,
) -> Result<Option<(Arc<dyn Store>, Cipher)>, AppError> {
    if settings.store == StoreBackend::Sled && !settings.data_dir.join(STORE_DIR).exists() {
        return Ok(None);
    }
    let cipher = cipher(settings)?;
    // A check reports an unreachable NATS at once rather than waiting for it.
    let (store, _) = open_store(settings, &cipher, clock, Duration::ZERO).await?;
    Ok(Some((store, cipher)))
}

fn master_key(settings: &Settings) -> Result<MasterKey, AppError> {
    if let Some(key) = &settings.master_key {
        tracing::info!("using the configured master key (LINE_ADAPTER_MASTER_KEY or config file)");
        return Ok(key.clone());
    }
    let path = settings.data_dir.join(MASTER_KEY_FILE);
    // A store written under a configured key has no key file: generating one
    // now would only leave a wrong key behind.
    if !path.exists() && settings.data_dir.join(STORE_DIR).exists() {
        return Err(AppError::MasterKeyMissing);
    }
    let (key, source) = MasterKey::load_or_generate(&path)?;
    match source {
        MasterKeySource::Generated => tracing::warn!(
            path = %path.display(),
            "no LINE_ADAPTER_MASTER_KEY set: generated a new master key into the data dir (mode 0600); back it up or set LINE_ADAPTER_MASTER_KEY"
        ),
        MasterKeySource::DataDirFile => {
            tracing::info!(path = %path.display(), "using the master key file in the data dir")
        }
    }
    Ok(key)
}

/// Opens the sled store again in this process (see `store::Watched`),
/// waiting a moment for the old handle's files to be released.
async fn reopen_sled(
    dir: PathBuf,
    cache_bytes: u64,
    clock: Clock,
) -> Result<Arc<dyn Store>, StoreError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let path = dir.clone();
        let now_ms = clock.now_ms();
        let opened = tokio::task::spawn_blocking(move || {
            SledStore::open_with_cache(&path, cache_bytes, now_ms)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("reopening the store: {e}")))?;
        match opened {
            Ok(store) => {
                tracing::info!("the store was reopened");
                return Ok(Arc::new(store));
            }
            Err(StoreError::Locked { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Opens the store and checks the master key against it. With a previous
/// key configured and the store still sealed under it, also returns the
/// check value sealed under the new key, for the rotation to store last.
/// `nats_connect_window`: how long to keep trying to reach NATS.
async fn open_store(
    settings: &Settings,
    cipher: &Cipher,
    clock: &Clock,
    nats_connect_window: Duration,
) -> Result<(Arc<dyn Store>, Option<Vec<u8>>), AppError> {
    let store: Arc<dyn Store> = match &settings.store {
        StoreBackend::Sled => {
            let dir = settings.data_dir.join(STORE_DIR);
            let data_file = dir.join("db");
            // A store that held data must still hold the master-key check:
            // sled takes a file cut short for an empty store.
            let existed = std::fs::metadata(&data_file).is_ok_and(|m| m.len() > 0);
            let cache_bytes = settings.store_cache_bytes;
            let now_ms = clock.now_ms();
            let damaged = |reason: String| {
                AppError::Store(StoreError::Damaged {
                    path: data_file.display().to_string(),
                    reason,
                })
            };
            let store = tokio::task::spawn_blocking(move || {
                SledStore::open_with_cache(&dir, cache_bytes, now_ms)
            })
            .await
            .map_err(|e| {
                if e.is_panic() {
                    damaged("sled could not read it".into())
                } else {
                    AppError::Store(StoreError::Backend(e.to_string()))
                }
            })??;
            if existed
                && !store
                    .meta_contains(MASTER_KEY_CHECK)
                    .map_err(AppError::Store)?
            {
                store.close().await?;
                return Err(damaged(
                    "it holds no line-adapter data: it was cut short, or written by another program"
                        .into(),
                ));
            }
            Arc::new(store)
        }
        StoreBackend::Nats(nats) => {
            let options = NatsOptions {
                url: nats.url.clone(),
                creds_file: nats.creds_file.clone(),
                tls_ca_file: nats.tls_ca_file.clone(),
                prefix: nats.prefix.clone(),
                connect_window: nats_connect_window,
                replicas: nats.replicas,
                event_retention: settings.event_retention,
                max_events: settings.event_retention_max_events,
                dedupe_window: settings.dedupe_window,
                data_dir: settings.data_dir.clone(),
                clock: clock.clone(),
            };
            tracing::info!(prefix = %nats.prefix, replicas = nats.replicas, "opening the store on NATS JetStream");
            Arc::new(NatsStore::open(&options).await?)
        }
    };

    let check = cipher.encrypt(MASTER_KEY_CHECK_CONTEXT, MASTER_KEY_CHECK.as_bytes());
    let stored = store.meta_get_or_insert(MASTER_KEY_CHECK, &check).await?;
    match cipher.decrypt(MASTER_KEY_CHECK_CONTEXT, &stored) {
        Ok(plain) if &plain[..] == MASTER_KEY_CHECK.as_bytes() => {}
        _ => {
            // Release the data dir before reporting, so a corrected start
            // can open it at once. Nothing was written.
            store.close().await?;
            return Err(AppError::MasterKeyMismatch {
                data_dir_key_fits: data_dir_key_fits(settings, &stored),
            });
        }
    }
    if !cipher.is_rotating() {
        return Ok((store, None));
    }
    match cipher.reseal(MASTER_KEY_CHECK_CONTEXT, &stored) {
        Ok(Some(resealed)) => {
            tracing::info!(
                "master-key rotation: sealing every stored secret under the new key in the background"
            );
            Ok((store, Some(resealed)))
        }
        _ => {
            tracing::info!(
                "the store is sealed under the current master key already; LINE_ADAPTER_MASTER_KEY_PREVIOUS can be removed"
            );
            Ok((store, None))
        }
    }
}
