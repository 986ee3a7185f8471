//! Test harness: the real service on ephemeral ports with a temp data dir,
//! typed gRPC clients, the real binary when a test needs a process, and a
//! scriptable stand-in for LINE's API. The in-process service reads the
//! time from tokio's clock ([`line_adapter::Clock::tokio`]), so that
//! [`pass_time`] makes time pass for it without waiting.
//!
//! # Why not `start_paused`
//! A runtime paused for the whole test advances to the next timer whenever
//! it is idle, and it is idle while sled's writer thread syncs a commit:
//! the service's timeouts, the LINE client's and the test's own would then
//! fire early. [`pass_time`] pauses only at the moment it is called, when
//! the test waits for nothing, and resumes before it returns.

#![allow(dead_code)] // each test crate uses a different part of the harness

pub mod fake_line;
pub mod http_stub;
pub mod proxy;
pub mod retry_key_line;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use line_adapter::{
    Clock,
    app::{self, AppError, Listeners},
    proto::v1::{
        self as pb, channel_admin_client::ChannelAdminClient, messaging_client::MessagingClient,
        official_account_client::OfficialAccountClient,
    },
    settings::{Layer, Settings},
    signature::sign,
};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

/// A channel secret in LINE's format, used across tests.
pub const SECRET: &str = "8c1d3e5f7a9b0c2d4e6f8a0b1c3d5e7f";
/// A second valid secret.
pub const OTHER_SECRET: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f";
/// A long-lived token in LINE's style.
pub const TOKEN: &str = "lLtOkEn+AbCdEfGhIjKlMnOpQrStUvWxYz0123456789/ab=";

/// The service running in this test process, exactly as `main` runs it.
pub struct TestApp {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// `http://127.0.0.1:port` of the HTTP listener.
    pub http_base: String,
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), AppError>>>,
}

/// The NATS server the suites run against as well, when set (`.ci/run`
/// starts one and runs them a second time with it).
pub const NATS_URL_VAR: &str = "TEST_NATS_URL";

/// The NATS server of this run, if the suites run on NATS.
pub fn nats_url() -> Option<String> {
    std::env::var(NATS_URL_VAR).ok().filter(|u| !u.is_empty())
}

/// The master key tests use on NATS, where a key file per data dir would
/// not do (every replica needs the same key).
pub const NATS_TEST_MASTER_KEY: &str = "bmF0cy10ZXN0LW1hc3Rlci1rZXktMzItYnl0ZXMhISE=";

/// The stream and bucket prefix of a data dir: a restart on the same data
/// dir finds the same state, and tests never see each other's.
pub fn nats_prefix(data_dir: &Path) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(data_dir.as_os_str().as_encoded_bytes());
    format!("t{}", hex::encode(&digest[..8]))
}

/// Environment for the real binary serving `data_dir` as [`test_settings`]
/// serves it in process: [`TEST_DEFAULTS`] and, when the suites run on
/// NATS, the same NATS state. Set before a test's own variables, so a
/// test's master key or watermark wins.
pub fn serve_env(data_dir: &Path) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = TEST_DEFAULTS
        .iter()
        .map(|&(name, value)| (name, value.to_owned()))
        .collect();
    if let Some(url) = nats_url() {
        env.extend([
            ("LINE_ADAPTER_STORE", "nats".into()),
            ("LINE_ADAPTER_NATS_URL", url),
            ("LINE_ADAPTER_NATS_PREFIX", nats_prefix(data_dir)),
            ("LINE_ADAPTER_MASTER_KEY", NATS_TEST_MASTER_KEY.into()),
        ]);
    }
    env
}

/// What tests change from the embedded defaults, and why:
/// - the free-space watermark off: the defaults (256 MiB, or 1 % of the
///   filesystem) would make a test's readiness depend on how full the
///   machine's disk happens to be (a shared 252 GB CI disk with 2 GB free
///   is "low"); the watermark's own tests (`disk_full.rs`) set it;
/// - no profile lookups: they would add requests to every LINE stand-in a
///   test counts, and records to every log it reads; their own tests
///   (`profiles.rs`) turn them on.
pub const TEST_DEFAULTS: [(&str, &str); 3] = [
    ("LINE_ADAPTER_STORE_MIN_FREE_BYTES", "0"),
    ("LINE_ADAPTER_STORE_MIN_FREE_PERCENT", "0"),
    ("LINE_ADAPTER_LOOKUP_PROFILES", "false"),
];

/// Settings a test would get from the embedded defaults, listening on
/// ephemeral loopback ports with data in `data_dir`; on NATS (when
/// [`NATS_URL_VAR`] is set) with its state there.
pub fn test_settings(data_dir: &Path, tweak: impl FnOnce(&mut Layer)) -> Settings {
    let mut layer = Layer {
        grpc_addr: Some("127.0.0.1:0".into()),
        http_addr: Some("127.0.0.1:0".into()),
        data_dir: Some(data_dir.to_owned()),
        shutdown_grace_seconds: Some(5),
        // As TEST_DEFAULTS, for the in-process service.
        store_min_free_bytes: Some(0),
        store_min_free_percent: Some(0),
        lookup_profiles: Some(false),
        ..Layer::default()
    };
    tweak(&mut layer);
    if let Some(url) = nats_url()
        && layer.store.is_none()
    {
        layer.store = Some("nats".into());
        layer.nats_url = Some(url);
        layer.nats_prefix = Some(nats_prefix(data_dir));
        if layer.master_key.is_none() {
            layer.master_key = Some(line_adapter::secret::Secret::new(NATS_TEST_MASTER_KEY));
        }
    }
    Settings::load(
        None,
        Vec::<(std::ffi::OsString, std::ffi::OsString)>::new(),
        layer,
    )
    .expect("test settings are valid")
    .settings
}

impl TestApp {
    /// Starts the service on `data_dir` and waits until it is ready.
    pub async fn start(data_dir: &Path) -> Self {
        Self::start_with(test_settings(data_dir, |_| {})).await
    }

    pub async fn start_with(settings: Settings) -> Self {
        let app = Self::spawn(settings).await;
        app.wait_ready().await;
        app
    }

    /// Starts the service without waiting for readiness.
    pub async fn spawn(settings: Settings) -> Self {
        let data_dir = settings.data_dir.clone();
        let listeners = Listeners::bind(&settings)
            .await
            .expect("bind loopback ports");
        let grpc_addr = listeners.grpc.local_addr().unwrap();
        let http_addr = listeners.http.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app::run_with_clock(
            settings,
            listeners,
            Clock::tokio(),
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            grpc_addr,
            http_addr,
            http_base: format!("http://{http_addr}"),
            data_dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Polls `/readyz` until it answers 200 (bounded; fails the test if the
    /// service stops or never becomes ready).
    pub async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let mut last = String::from("no answer");
        for _ in 0..500 {
            if self.task.as_ref().is_some_and(|t| t.is_finished()) {
                panic!("the service stopped before becoming ready");
            }
            if let Ok(response) = client
                .get(format!("{}/readyz", self.http_base))
                .send()
                .await
            {
                if response.status() == 200 {
                    return;
                }
                last = format!(
                    "{}: {}",
                    response.status(),
                    response.text().await.unwrap_or_default().trim_end()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the service did not become ready within 5 s; /readyz said {last}");
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc_addr))
            .unwrap()
            .connect()
            .await
            .expect("connect to the gRPC listener")
    }

    pub async fn admin(&self) -> ChannelAdminClient<Channel> {
        ChannelAdminClient::new(self.channel().await)
    }

    pub async fn messaging(&self) -> MessagingClient<Channel> {
        MessagingClient::new(self.channel().await)
    }

    pub async fn official_account(&self) -> OfficialAccountClient<Channel> {
        OfficialAccountClient::new(self.channel().await)
    }

    /// Stops the service gracefully and returns how `run` ended.
    pub async fn stop(mut self) -> Result<(), AppError> {
        self.stop_inner().await
    }

    /// Waits for `run` to end by itself (e.g. a start-up failure).
    pub async fn finished(mut self) -> Result<(), AppError> {
        let task = self.task.take().expect("task present until stopped");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the service stops within 10 s")
            .expect("the service task does not panic")
    }

    async fn stop_inner(&mut self) -> Result<(), AppError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("task present until stopped");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the service stops within 10 s")
            .expect("the service task does not panic")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Collects every file under `dir` (recursively) as bytes, to search the
/// data dir for leaked plaintext.
pub fn all_file_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

/// Where `nats-server` keeps its JetStream files, when the suites run on
/// NATS: the secrets-at-rest checks read the bytes it wrote.
pub const NATS_STORE_DIR_VAR: &str = "TEST_NATS_STORE_DIR";

/// Every file holding a test's stored state, with its bytes: the data dir,
/// and on NATS the server's files of the test's streams and buckets.
pub fn stored_files(data_dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = all_file_bytes(data_dir);
    if nats_url().is_some() {
        let store = std::env::var(NATS_STORE_DIR_VAR).unwrap_or_else(|_| {
            panic!(
                "{NATS_STORE_DIR_VAR} must name nats-server's store dir when {NATS_URL_VAR} is set"
            )
        });
        let prefix = nats_prefix(data_dir);
        files.extend(
            all_file_bytes(Path::new(&store))
                .into_iter()
                .filter(|(path, _)| path.to_string_lossy().contains(&prefix)),
        );
    }
    files
}

/// On NATS, the names in the shared files bucket of the suite's state for
/// `data_dir` (see [`nats_prefix`]) that start with `prefix`; empty
/// without NATS or before the bucket exists.
pub async fn shared_file_names(data_dir: &Path, prefix: &str) -> Vec<String> {
    use futures_util::TryStreamExt as _;
    let Some(url) = nats_url() else {
        return Vec::new();
    };
    let client = async_nats::connect(url).await.expect("NATS is reachable");
    let js = async_nats::jetstream::new(client);
    let Ok(bucket) = js
        .get_object_store(format!("{}_media", nats_prefix(data_dir)))
        .await
    else {
        return Vec::new();
    };
    // A listing waits for ever when a delete rolls up the message it took
    // for the last one (the service prunes meanwhile): list again.
    for _ in 0..20 {
        let listing = async {
            bucket
                .list()
                .await
                .expect("the bucket lists")
                .try_filter(|info| {
                    std::future::ready(!info.deleted && info.name.starts_with(prefix))
                })
                .map_ok(|info| info.name)
                .try_collect::<Vec<String>>()
                .await
                .expect("the bucket lists")
        };
        if let Ok(mut names) = tokio::time::timeout(Duration::from_secs(2), listing).await {
            names.sort();
            return names;
        }
    }
    panic!("listing the bucket stalled 20 times");
}

/// Uploads `bytes` through Messaging.UploadMedia, in 256 KiB chunks.
pub async fn upload_media(
    app: &TestApp,
    channel_id: &str,
    content_type: &str,
    file_name: &str,
    bytes: &[u8],
    size_bytes: Option<i64>,
) -> Result<pb::MediaInfo, tonic::Status> {
    use pb::upload_media_request::Part;
    let mut parts = vec![pb::UploadMediaRequest {
        part: Some(Part::Start(pb::UploadMediaStart {
            channel_id: channel_id.into(),
            content_type: content_type.into(),
            file_name: file_name.into(),
            size_bytes,
        })),
    }];
    for chunk in bytes.chunks(256 * 1024) {
        parts.push(pb::UploadMediaRequest {
            part: Some(Part::Chunk(chunk.to_vec())),
        });
    }
    app.messaging()
        .await
        .upload_media(tokio_stream::iter(parts))
        .await
        .map(|r| r.into_inner().media.expect("the response holds the media"))
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Starts the service with both LINE bases pointed at `line`.
pub async fn start_with_line(dir: &Path, line: &fake_line::FakeLine) -> TestApp {
    TestApp::start_with(test_settings(dir, |layer| {
        layer.line_api_base = Some(line.url());
        layer.line_data_api_base = Some(line.url());
    }))
    .await
}

/// Makes `by` pass at once for the in-process service (whose clock is
/// tokio's) and for the test's own timers, as if the test had slept that
/// long: time is paused, advanced and resumed, and timers due meanwhile
/// (retention, renewals, the service's intervals) fire. Call it with
/// nothing in flight: a request waiting meanwhile would see its timeout
/// pass too. Needs the current-thread runtime (`#[tokio::test]`).
pub async fn pass_time(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

/// Registers a channel with [`SECRET`] and the long-lived [`TOKEN`].
pub async fn create_channel_with_token(app: &TestApp) -> pb::Channel {
    create_shop(&mut app.admin().await).await
}

/// Registers the "Shop" channel with [`SECRET`] and the long-lived
/// [`TOKEN`] through any service's gRPC API (in-process or a binary).
pub async fn create_shop(admin: &mut ChannelAdminClient<Channel>) -> pb::Channel {
    admin
        .create_channel(pb::CreateChannelRequest {
            display_name: "Shop".into(),
            line_channel_id: "1234567890".into(),
            channel_secret: SECRET.into(),
            channel_access_token: TOKEN.into(),
            token_mode: 0,
        })
        .await
        .expect("create the channel")
        .into_inner()
        .channel
        .expect("the response carries the channel")
}

/// Registers a channel with [`SECRET`] and returns it.
pub async fn create_channel(app: &TestApp, line_channel_id: &str) -> pb::Channel {
    app.admin()
        .await
        .create_channel(pb::CreateChannelRequest {
            display_name: format!("Channel {line_channel_id}"),
            line_channel_id: line_channel_id.into(),
            channel_secret: SECRET.into(),
            ..Default::default()
        })
        .await
        .expect("create the channel")
        .into_inner()
        .channel
        .expect("the response carries the channel")
}

/// POSTs `body` to the channel's webhook URL, signed with `secret` as LINE
/// signs it.
pub async fn post_webhook(
    client: &reqwest::Client,
    app: &TestApp,
    channel_id: &str,
    secret: &str,
    body: &[u8],
) -> reqwest::Response {
    client
        .post(format!("{}/webhook/line/{channel_id}", app.http_base))
        .header("content-type", "application/json; charset=utf-8")
        .header("x-line-signature", sign(secret, body))
        .body(body.to_vec())
        .send()
        .await
        .expect("the webhook listener answers")
}

/// LINE's webhook fixtures: (file name, body bytes), sorted by name.
pub fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/line-fixtures/webhooks");
    let mut bodies: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("the fixtures folder beside the repository")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    bodies.sort();
    bodies
}

/// A webhook body with `count` text-message events from one user, made
/// long ago (LINE's `timestamp` in 2023).
pub fn text_body(prefix: &str, count: usize, user: &str) -> Vec<u8> {
    text_body_at(prefix, count, user, 1_700_000_000_000)
}

/// [`text_body`] with events made at `timestamp_ms` (the `i`-th a
/// millisecond later); with [`now_ms`], events as LINE sends them, moments
/// after they happen.
pub fn text_body_at(prefix: &str, count: usize, user: &str, timestamp_ms: i64) -> Vec<u8> {
    let events: Vec<serde_json::Value> = (0..count)
        .map(|i| {
            serde_json::json!({
                "type": "message",
                "mode": "active",
                "timestamp": timestamp_ms + i as i64,
                "source": {"type": "user", "userId": user},
                "webhookEventId": format!("{prefix}-{i}"),
                "deliveryContext": {"isRedelivery": false},
                "replyToken": format!("reply-{prefix}-{i}"),
                "message": {"id": format!("m-{prefix}-{i}"), "type": "text", "text": format!("hello {i}"), "quoteToken": "q"}
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "destination": "U0123456789abcdef0123456789abcdef",
        "events": events,
    }))
    .unwrap()
}

/// The wall clock in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A text message.
pub fn text_message(text: &str) -> pb::Message {
    pb::Message {
        kind: Some(pb::message::Kind::Text(pb::TextMessage {
            text: text.into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// A conversation with one user.
pub fn to_user(id: &str) -> Option<pb::Conversation> {
    Some(pb::Conversation {
        chat: Some(pb::conversation::Chat::UserId(id.into())),
    })
}

/// A push of one text message to a user.
pub fn text_push(channel_id: &str, user_id: &str, text: &str) -> pb::PushRequest {
    pb::PushRequest {
        channel_id: channel_id.into(),
        to: to_user(user_id),
        messages: vec![text_message(text)],
        ..Default::default()
    }
}

/// Opens a Subscribe stream.
pub async fn subscribe(
    app: &TestApp,
    request: pb::SubscribeRequest,
) -> tonic::Streaming<pb::SubscribeResponse> {
    app.messaging()
        .await
        .subscribe(request)
        .await
        .expect("Subscribe starts")
        .into_inner()
}

pub fn from_earliest() -> pb::SubscribeRequest {
    pb::SubscribeRequest {
        start: Some(pb::subscribe_request::Start::Position(
            pb::StartPosition::Earliest as i32,
        )),
        ..Default::default()
    }
}

/// Reads the next `count` events (skipping checkpoints), failing the test if
/// they do not arrive within `wait`.
pub async fn next_events(
    stream: &mut tonic::Streaming<pb::SubscribeResponse>,
    count: usize,
    wait: Duration,
) -> Vec<pb::Event> {
    let mut events = Vec::with_capacity(count);
    let deadline = tokio::time::Instant::now() + wait;
    while events.len() < count {
        let message = tokio::time::timeout_at(deadline, stream.message())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} events arrived", events.len()))
            .expect("the stream stays healthy")
            .expect("the stream stays open");
        if let Some(pb::subscribe_response::Kind::Event(event)) = message.kind {
            events.push(event);
        }
    }
    events
}

/// Asserts that nothing but checkpoints arrives within `wait`.
pub async fn assert_no_event(stream: &mut tonic::Streaming<pb::SubscribeResponse>, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(message) = tokio::time::timeout_at(deadline, stream.message()).await {
        let message = message.expect("healthy").expect("open");
        if let Some(pb::subscribe_response::Kind::Event(event)) = message.kind {
            panic!("unexpected event {}", event.sequence);
        }
    }
}

/// The value of a metric sample line (`name{labels} value`) in `/metrics`.
pub async fn metric(app: &TestApp, sample: &str) -> Option<f64> {
    let text = reqwest::get(format!("{}/metrics", app.http_base))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
}

/// A well-formed signature (Base64 of 32 bytes) that signs nothing.
pub fn fake_signature(n: usize) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([(n % 251) as u8; 32])
}

/// A LINE that accepts connections and never answers: a request to it
/// waits out the client's timeout. Returns its base URL; it stops with the
/// test's runtime.
pub async fn silent_line() -> String {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let url = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    url
}
