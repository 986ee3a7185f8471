//! Several replicas on one NATS JetStream: the real binary, three
//! processes sharing one state. Runs when the suites run on NATS
//! (`TEST_NATS_URL`, as `.ci/run` does); the NATS restart test starts its
//! own `nats-server`.
//! - webhooks spread over the replicas (with LINE's redeliveries sent to
//!   other replicas than the original) appear exactly once, in one order,
//!   on a Subscribe to any replica;
//! - a replica killed with SIGKILL under load loses nothing it answered,
//!   its durable consumer resumes on another replica right after its last
//!   ack, and its sends (some caught mid-request) are delivered exactly
//!   once, by one replica at a time;
//! - NATS restarted: the service reports not ready, recovers, and loses
//!   nothing acknowledged;
//! - NATS over TLS with a private CA, and in operator mode with a `.creds`
//!   file: connected when trusted, refused with the reason otherwise;
//! - NATS starting after the service: waited for;
//! - JetStream out of the storage its account may use: webhooks 503, not
//!   ready but alive, and back by itself once there is room.

mod support;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use line_adapter::{
    proto::v1::{
        self as pb, channel_admin_client::ChannelAdminClient, messaging_client::MessagingClient,
    },
    signature::sign,
};
use support::{
    NATS_TEST_MASTER_KEY, OTHER_SECRET, SECRET, nats_url, next_events, now_ms,
    retry_key_line::{RetryKeyLine, start_line},
    text_body, text_body_at,
};
use tokio_stream::StreamExt as _;

const BIN: &str = env!("CARGO_BIN_EXE_line-adapter");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `line-adapter serve` on NATS.
struct Replica {
    child: Child,
    grpc: String,
    http: u16,
    _dir: tempfile::TempDir,
}

impl Replica {
    fn spawn(nats: &str, prefix: &str, line: &str) -> Self {
        Self::spawn_with(nats, prefix, line, &[])
    }

    fn spawn_with(nats: &str, prefix: &str, line: &str, env: &[(&str, &Path)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (grpc, http) = (free_port(), free_port());
        let log = std::fs::File::create(dir.path().join("replica.log")).unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--grpc-addr", &format!("127.0.0.1:{grpc}")])
            .args(["--http-addr", &format!("127.0.0.1:{http}")])
            .arg("--data-dir")
            .arg(dir.path())
            .env("LINE_ADAPTER_STORE", "nats")
            .env("LINE_ADAPTER_NATS_URL", nats)
            .env("LINE_ADAPTER_NATS_PREFIX", prefix)
            .env("LINE_ADAPTER_MASTER_KEY", NATS_TEST_MASTER_KEY)
            .env("LINE_ADAPTER_LINE_API_BASE", line)
            .env("LINE_ADAPTER_LINE_DATA_API_BASE", line)
            // A short lease (2 × 1 s + 10 s) so a dead replica's sends are
            // taken up within the test.
            .env("LINE_ADAPTER_LINE_REQUEST_TIMEOUT_MS", "1000")
            .env("RUST_LOG", "warn")
            .envs(support::TEST_DEFAULTS)
            .envs(env.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the binary");
        Self {
            child,
            grpc: format!("http://127.0.0.1:{grpc}"),
            http,
            _dir: dir,
        }
    }

    async fn ready(&self) -> bool {
        matches!(
            reqwest::get(format!("http://127.0.0.1:{}/readyz", self.http)).await,
            Ok(r) if r.status() == 200
        )
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.ready().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "replica on {} did not become ready:\n{}",
            self.http,
            self.log()
        );
    }

    /// Waits for the process to end (never ready meanwhile).
    async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "still running after {limit:?}");
            assert!(!self.ready().await, "must not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("replica.log")).unwrap_or_default()
    }

    fn webhook_url(&self, channel: &str) -> String {
        format!("http://127.0.0.1:{}/webhook/line/{channel}", self.http)
    }

    async fn messaging(&self) -> MessagingClient<tonic::transport::Channel> {
        MessagingClient::connect(self.grpc.clone()).await.unwrap()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port for a test's own `nats-server`. Such a port stays unbound
/// for seconds (before NATS starts, while it restarts), so it is not taken
/// from the ephemeral range, where another test's `free_port` could be
/// handed it meanwhile.
fn nats_port() -> u16 {
    loop {
        let port = fastrand::u16(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn unique_prefix() -> String {
    format!("r{}", uuid::Uuid::new_v4().simple())[..17].to_owned()
}

async fn start_replicas(nats: &str, prefix: &str, line: &str, n: usize) -> Vec<Replica> {
    let replicas: Vec<Replica> = (0..n).map(|_| Replica::spawn(nats, prefix, line)).collect();
    for replica in &replicas {
        replica.wait_ready().await;
    }
    replicas
}

async fn create_channel(replica: &Replica) -> String {
    let mut admin = ChannelAdminClient::connect(replica.grpc.clone())
        .await
        .unwrap();
    support::create_shop(&mut admin).await.id
}

/// Every event from the start, as (sequence, webhookEventId), read until
/// `expected` events arrived or the stream went quiet.
async fn replay(replica: &Replica, expected: usize) -> Vec<(u64, String)> {
    let mut messaging = replica.messaging().await;
    let mut stream = messaging
        .subscribe(support::from_earliest())
        .await
        .unwrap()
        .into_inner();
    collect_events(&mut stream, expected, Duration::from_secs(5)).await
}

/// What makes a record unique: LINE's webhookEventId, or for the record
/// of a send its delivery and state (one queued and one final record each).
fn record_id(event: &pb::Event) -> String {
    match &event.payload {
        Some(pb::event::Payload::Outbound(outbound)) => {
            let delivery = outbound.delivery.as_ref().unwrap();
            format!("outbound/{}/{:?}", delivery.id, delivery.state())
        }
        _ => event.webhook_event_id.clone(),
    }
}

/// Events of a Subscribe stream as (sequence, webhookEventId), until
/// `expected` arrived or none came for `quiet`.
async fn collect_events(
    stream: &mut tonic::Streaming<pb::SubscribeResponse>,
    expected: usize,
    quiet: Duration,
) -> Vec<(u64, String)> {
    let mut events = Vec::new();
    while events.len() < expected {
        match tokio::time::timeout(quiet, stream.next()).await {
            Ok(Some(Ok(item))) => {
                if let Some(pb::subscribe_response::Kind::Event(event)) = item.kind {
                    events.push((event.sequence, record_id(&event)));
                }
            }
            _ => break,
        }
    }
    events
}

async fn post(client: &reqwest::Client, url: &str, body: &[u8]) -> Option<u16> {
    post_signed(client, url, SECRET, body).await
}

async fn post_signed(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    body: &[u8],
) -> Option<u16> {
    client
        .post(url)
        .header("x-line-signature", sign(secret, body))
        .body(body.to_vec())
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// Checks that the log holds each of `answered` exactly once, gap-free
/// from 1, and returns it.
fn assert_once_in_order(events: &[(u64, String)], answered: &[String]) {
    for (i, (sequence, _)) in events.iter().enumerate() {
        assert_eq!(*sequence, i as u64 + 1, "gap-free sequence");
    }
    let mut stored: HashMap<&str, u32> = HashMap::new();
    for (_, id) in events {
        *stored.entry(id).or_default() += 1;
    }
    for id in answered {
        assert_eq!(
            stored.get(id.as_str()),
            Some(&1),
            "{id} answered 200, stored {:?} times",
            stored.get(id.as_str())
        );
    }
    assert!(stored.values().all(|&n| n == 1), "nothing stored twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_spread_over_replicas_appear_once_in_one_order_everywhere() {
    let Some(nats) = nats_url() else {
        eprintln!("skipped: the replica suite runs on NATS (TEST_NATS_URL)");
        return;
    };
    let line = start_line(Arc::new(RetryKeyLine::default())).await;
    let replicas = start_replicas(&nats, &unique_prefix(), &line, 3).await;
    let channel = create_channel(&replicas[0]).await;
    let client = reqwest::Client::new();

    // Live streams on every replica, open before anything is posted: they
    // receive each event through their replica's tail, wherever it came in.
    let mut live = Vec::new();
    for replica in &replicas {
        let mut stream = replica
            .messaging()
            .await
            .subscribe(pb::SubscribeRequest::default())
            .await
            .unwrap()
            .into_inner();
        live.push(tokio::spawn(async move {
            collect_events(&mut stream, 300, Duration::from_secs(10)).await
        }));
    }

    // 150 bodies of 2 events, round robin; each body is sent again to the
    // next replica, as LINE redelivers to whichever pod the Service picks.
    let mut answered = Vec::new();
    let mut sends = Vec::new();
    for n in 0..150 {
        let prefix = format!("spread-{n}");
        // Half made just now: those two copies meet only in JetStream's
        // duplicate check, the others in the dedupe bucket too.
        let body = if n % 2 == 0 {
            text_body_at(&prefix, 2, "U1", now_ms())
        } else {
            text_body(&prefix, 2, "U1")
        };
        for hop in 0..2 {
            let url = replicas[(n + hop) % 3].webhook_url(&channel);
            let (client, body) = (client.clone(), body.clone());
            sends.push(tokio::spawn(
                async move { post(&client, &url, &body).await },
            ));
        }
        answered.push(format!("{prefix}-0"));
        answered.push(format!("{prefix}-1"));
    }
    for send in sends {
        assert_eq!(send.await.unwrap(), Some(200));
    }

    let mut orders = Vec::new();
    for stream in live {
        let events = stream.await.unwrap();
        assert_eq!(
            events.len(),
            answered.len(),
            "every event, live on every replica"
        );
        assert_once_in_order(&events, &answered);
        orders.push(events);
    }
    for replica in &replicas {
        let events = replay(replica, answered.len()).await;
        assert_eq!(
            events.len(),
            answered.len(),
            "every event, on every replica"
        );
        assert_once_in_order(&events, &answered);
        orders.push(events);
    }
    for order in &orders[1..] {
        assert_eq!(
            &orders[0], order,
            "one order, live and replayed, everywhere"
        );
    }
}

/// A replica's webhooks use the channel as it last read it (a watch of
/// the bucket drops it when any replica writes it): a secret rotated on
/// another replica verifies at once, the one it replaced stops, and a
/// deleted channel is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_channel_changed_on_one_replica_is_followed_by_the_others_webhooks() {
    let Some(nats) = nats_url() else {
        eprintln!("skipped: the replica suite runs on NATS (TEST_NATS_URL)");
        return;
    };
    let line = support::silent_line().await;
    let replicas = start_replicas(&nats, &unique_prefix(), &line, 2).await;
    let channel = create_channel(&replicas[0]).await;
    let client = reqwest::Client::new();
    let on_b = replicas[1].webhook_url(&channel);
    let mut n = 0;
    let mut body = || {
        n += 1;
        text_body_at(&format!("follow-{n}"), 1, "U1", now_ms())
    };
    // B reads the channel, and keeps it.
    for _ in 0..3 {
        assert_eq!(post(&client, &on_b, &body()).await, Some(200));
    }

    let mut admin = ChannelAdminClient::connect(replicas[0].grpc.clone())
        .await
        .unwrap();
    admin
        .update_channel(pb::UpdateChannelRequest {
            channel_id: channel.clone(),
            channel_secret: OTHER_SECRET.into(),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["channel_secret".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    // Right after the rotation, before B may have heard of it.
    assert_eq!(
        post_signed(&client, &on_b, OTHER_SECRET, &body()).await,
        Some(200),
        "the new secret verifies on the other replica at once"
    );
    wait_until("the replaced secret stops on B", async || {
        post(&client, &on_b, &body()).await == Some(401)
    })
    .await;
    assert_eq!(
        post_signed(&client, &on_b, OTHER_SECRET, &body()).await,
        Some(200)
    );

    admin
        .delete_channel(pb::DeleteChannelRequest {
            channel_id: channel.clone(),
        })
        .await
        .unwrap();
    wait_until("the deleted channel is refused on B", async || {
        post_signed(&client, &on_b, OTHER_SECRET, &body()).await == Some(404)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_under_load_loses_nothing_and_its_work_moves_on() {
    let Some(nats) = nats_url() else {
        eprintln!("skipped: the replica suite runs on NATS (TEST_NATS_URL)");
        return;
    };
    // Each answer takes 600 ms (within the replicas' 1 s request timeout),
    // so the victim dies with sends mid-request.
    let line_state = Arc::new(RetryKeyLine::with_delay(Duration::from_millis(600)));
    let line = start_line(line_state.clone()).await;
    let mut replicas = start_replicas(&nats, &unique_prefix(), &line, 3).await;
    let channel = create_channel(&replicas[0]).await;
    let urls: Vec<String> = replicas.iter().map(|r| r.webhook_url(&channel)).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let answered: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut load = Vec::new();
    for poster in 0..3 {
        let (stop, answered, urls) = (stop.clone(), answered.clone(), urls.clone());
        load.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let prefix = format!("kill-{poster}-{n}");
                let body = if n % 2 == 0 {
                    text_body_at(&prefix, 2, "U1", now_ms())
                } else {
                    text_body(&prefix, 2, "U1")
                };
                if post(&client, &urls[n % 3], &body).await == Some(200) {
                    let mut answered = answered.lock().unwrap();
                    answered.push(format!("{prefix}-0"));
                    answered.push(format!("{prefix}-1"));
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }

    // Pushes to the replica about to die, each with an idempotency key,
    // sent just before it dies and not waited for: they are at LINE then.
    let push = |n: usize| pb::PushRequest {
        idempotency_key: format!("push-{n}"),
        ..support::text_push(&channel, &format!("U{n}"), &format!("push {n}"))
    };
    let mut victim = replicas[2].messaging().await;
    // A durable consumer on the victim acknowledges what it reads.
    let desk = || pb::SubscribeRequest {
        start: Some(pb::subscribe_request::Start::Consumer("desk".into())),
        ..Default::default()
    };
    let mut stream = victim.subscribe(desk()).await.unwrap().into_inner();
    let mut confirmed = 0;
    while confirmed < 100 {
        let [event] = next_events(&mut stream, 1, Duration::from_secs(10))
            .await
            .try_into()
            .unwrap();
        victim
            .ack(pb::AckRequest {
                consumer: "desk".into(),
                sequence: event.sequence,
            })
            .await
            .unwrap();
        confirmed = event.sequence;
    }

    let mut in_flight = Vec::new();
    for n in 0..40 {
        let (mut client, request) = (victim.clone(), push(n));
        in_flight.push(tokio::spawn(async move { client.push(request).await }));
    }

    // SIGKILL, with sends at LINE and webhooks arriving.
    let deadline = Instant::now() + Duration::from_secs(10);
    while line_state.in_flight_now() == 0 {
        assert!(Instant::now() < deadline, "pushes reached LINE");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    replicas[2].child.kill().unwrap();
    replicas[2].child.wait().unwrap();
    for call in in_flight {
        // Cut off (or, rarely, answered just before the kill).
        let _ = call.await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The consumer resumes on another replica right after its last ack.
    let mut survivor = replicas[0].messaging().await;
    let mut resumed = survivor.subscribe(desk()).await.unwrap().into_inner();
    let first = &next_events(&mut resumed, 1, Duration::from_secs(10)).await[0];
    assert_eq!(
        first.sequence,
        confirmed + 1,
        "resumed right after the last ack"
    );

    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(answered.len() > 100, "webhooks flowed: {}", answered.len());
    let events = replay(&replicas[1], usize::MAX).await;
    assert_once_in_order(&events, &answered);

    // The victim's sends: the same pushes again through a survivor find
    // the deliveries the victim stored (or store them, if it died first).
    // Taken up by the survivors once the victim's leases ran out (12 s),
    // each is delivered, LINE accepts each retry key once, and never are
    // two requests with one key in flight at once.
    let mut pushed = Vec::new();
    for n in 0..40 {
        let response = survivor.push(push(n)).await.unwrap().into_inner();
        pushed.push(response.delivery.unwrap().id);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &pushed {
        loop {
            let delivery = survivor
                .get_delivery(pb::GetDeliveryRequest {
                    delivery_id: id.clone(),
                })
                .await
                .unwrap()
                .into_inner()
                .delivery
                .unwrap();
            if delivery.state == pb::DeliveryState::Delivered as i32 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{id} not delivered: {delivery:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let accepted = line_state.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), pushed.len(), "each send accepted once");
    assert!(accepted.values().all(|&n| n == 1));
    let received = line_state.received.lock().unwrap().clone();
    assert!(
        received.values().any(|&n| n >= 2),
        "some send was cut off mid-request and taken up by a survivor: {received:?}"
    );
    assert_eq!(
        line_state.max_in_flight_per_key.load(Ordering::SeqCst),
        1,
        "one replica at a time per send"
    );
}

/// A `nats-server` of this test's own, to stop and start again. Killed
/// when dropped, also when a test fails midway.
struct OwnNats {
    child: Child,
    port: u16,
    store: Option<tempfile::TempDir>,
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OwnNats {
    fn start(port: u16, store: tempfile::TempDir) -> Self {
        Self::start_with(port, store, &[])
    }

    fn start_with(port: u16, store: tempfile::TempDir, args: &[&std::ffi::OsStr]) -> Self {
        let mut command = Command::new("nats-server");
        command
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store.path())
            .args(args);
        Self::spawn(command, port, store)
    }

    /// With a configuration file (which names the port and store dir).
    fn start_config(port: u16, store: tempfile::TempDir, config: &Path) -> Self {
        let mut command = Command::new("nats-server");
        command.arg("-c").arg(config);
        Self::spawn(command, port, store)
    }

    fn spawn(mut command: Command, port: u16, store: tempfile::TempDir) -> Self {
        let log = store.path().join("nats-server.log");
        let child = command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("nats-server on PATH (.ci/run installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            port,
            store: Some(store),
        }
    }

    /// Stops the server, keeping its store for a restart.
    fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.store.take().expect("the store is kept until stop")
    }
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_restarted_the_service_is_not_ready_then_recovers_losing_nothing() {
    if nats_url().is_none() {
        eprintln!("skipped: the replica suite runs on NATS (TEST_NATS_URL)");
        return;
    }
    let nats = OwnNats::start(nats_port(), tempfile::tempdir().unwrap());
    let url = format!("nats://127.0.0.1:{}", nats.port);
    let line = start_line(Arc::new(RetryKeyLine::default())).await;
    let replicas = start_replicas(&url, "restart", &line, 1).await;
    let replica = &replicas[0];
    let channel = create_channel(replica).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let webhook = replica.webhook_url(&channel);

    let mut answered = Vec::new();
    for n in 0..20 {
        let prefix = format!("before-{n}");
        assert_eq!(
            post(&client, &webhook, &text_body(&prefix, 1, "U1")).await,
            Some(200)
        );
        answered.push(format!("{prefix}-0"));
    }

    let port = nats.port;
    let store = nats.stop();
    wait_until("not ready while NATS is down", async || {
        !replica.ready().await
    })
    .await;
    let refused = post(&client, &webhook, &text_body("while-down", 1, "U1")).await;
    assert_ne!(refused, Some(200), "nothing acknowledged without NATS");

    let nats = OwnNats::start(port, store);
    wait_until("ready again", async || replica.ready().await).await;
    for n in 0..20 {
        let prefix = format!("after-{n}");
        assert_eq!(
            post(&client, &webhook, &text_body(&prefix, 1, "U1")).await,
            Some(200)
        );
        answered.push(format!("{prefix}-0"));
    }
    let events = replay(replica, usize::MAX).await;
    // The refused webhook may or may not be stored (its answer was not a
    // 200, so LINE sends it again); everything answered 200 is, once.
    let events: Vec<(u64, String)> = events
        .into_iter()
        .filter(|(_, id)| id != "while-down-0")
        .collect();
    let answered_ids: Vec<&String> = answered.iter().collect();
    assert_eq!(events.len(), answered.len(), "{events:?}");
    for (_, id) in &events {
        assert!(answered_ids.contains(&id), "{id}");
    }
    let mut seen = std::collections::HashSet::new();
    assert!(
        events.iter().all(|(_, id)| seen.insert(id.clone())),
        "once each"
    );
    drop(replicas);
    let _ = nats.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_is_obtained_once_for_all_replicas() {
    let Some(nats) = nats_url() else {
        eprintln!("skipped: the replica suite runs on NATS (TEST_NATS_URL)");
        return;
    };
    let line = support::fake_line::FakeLine::start().await;
    const BOT: &str = r#"{"userId":"Ub9952f8c0123456789abcdef01234567","basicId":"@shop","displayName":"Shop","chatMode":"chat","markAsReadMode":"auto"}"#;
    for n in 0..3 {
        // Enough for every replica to get its own, were they to ask.
        line.script(
            "/v2/oauth/accessToken",
            200,
            &[],
            &format!(
                r#"{{"access_token":"issued-{n}","expires_in":2592000,"token_type":"Bearer"}}"#
            ),
        );
        line.script("/v2/bot/info", 200, &[], BOT);
    }
    let replicas = start_replicas(&nats, &unique_prefix(), &line.url(), 3).await;
    let mut admin = ChannelAdminClient::connect(replicas[0].grpc.clone())
        .await
        .unwrap();
    let channel = admin
        .create_channel(pb::CreateChannelRequest {
            display_name: "Shop".into(),
            line_channel_id: "1234567890".into(),
            channel_secret: SECRET.into(),
            token_mode: pb::TokenMode::ShortLivedV2 as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();

    // All three need a token at the same moment.
    let mut calls = Vec::new();
    for replica in &replicas {
        let (url, id) = (replica.grpc.clone(), channel.id.clone());
        calls.push(tokio::spawn(async move {
            ChannelAdminClient::connect(url)
                .await
                .unwrap()
                .get_bot_info(pb::GetBotInfoRequest { channel_id: id })
                .await
                .map(|r| r.into_inner().display_name)
        }));
    }
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), "Shop");
    }
    let requests = line.requests();
    let issued = requests
        .iter()
        .filter(|r| r.path == "/v2/oauth/accessToken")
        .count();
    assert_eq!(issued, 1, "one token request for three replicas");
    let bearers: Vec<String> = requests
        .iter()
        .filter(|r| r.path == "/v2/bot/info")
        .map(|r| {
            r.headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(bearers, vec!["Bearer issued-0".to_owned(); 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stop_while_nats_is_down_still_ends_within_the_grace() {
    if nats_url().is_none() {
        eprintln!("skipped: the replica suite runs on NATS (TEST_NATS_URL)");
        return;
    }
    let nats = OwnNats::start(nats_port(), tempfile::tempdir().unwrap());
    let url = format!("nats://127.0.0.1:{}", nats.port);
    let line = start_line(Arc::new(RetryKeyLine::default())).await;
    let mut replicas = start_replicas(&url, "down", &line, 1).await;
    let _ = nats.stop();
    let replica = &mut replicas[0];
    wait_until("not ready while NATS is down", async || {
        !replica.ready().await
    })
    .await;

    let stopped = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &replica.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The default grace is 20 s; nothing acknowledged waits on NATS.
    let exit = loop {
        if let Some(exit) = replica.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "still running 30 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(exit.code(), Some(0));
}

/// The replica works end to end: a new channel's webhooks are answered 200
/// and replayed in order.
async fn assert_serves_webhooks(replica: &Replica, label: &str) {
    let channel = create_channel(replica).await;
    let client = reqwest::Client::new();
    let mut expected = Vec::new();
    for n in 0..3 {
        let prefix = format!("{label}-{n}");
        let body = text_body(&prefix, 1, "U1");
        assert_eq!(
            post(&client, &replica.webhook_url(&channel), &body).await,
            Some(200)
        );
        expected.push(format!("{prefix}-0"));
    }
    let ids: Vec<String> = replay(replica, 3)
        .await
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert_eq!(ids, expected);
}

/// A private CA and a certificate it issued for 127.0.0.1, as PEM files in
/// `dir`: (CA certificate, server certificate, server key).
fn private_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa,
        KeyPair,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Its own name, so that the server certificate is not self-issued.
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "line-adapter test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let files = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&files.0, ca.pem()).unwrap();
    std::fs::write(&files.1, cert.pem()).unwrap();
    std::fs::write(&files.2, key.serialize_pem()).unwrap();
    files
}

/// NATS that requires TLS, with a certificate from a private CA: the
/// service trusting that CA (`nats_tls_ca_file`) works; one that does not
/// refuses the server and does not start.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_over_tls_with_a_private_ca() {
    if nats_url().is_none() {
        eprintln!("skipped: the replica suite runs on NATS (TEST_NATS_URL)");
        return;
    }
    let pki = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_pki(pki.path());
    let nats = OwnNats::start_with(
        nats_port(),
        tempfile::tempdir().unwrap(),
        &[
            "--tls".as_ref(),
            "--tlscert".as_ref(),
            cert.as_os_str(),
            "--tlskey".as_ref(),
            key.as_os_str(),
        ],
    );
    let url = format!("nats://127.0.0.1:{}", nats.port);
    let line = start_line(Arc::new(RetryKeyLine::default())).await;

    let trusting = Replica::spawn_with(
        &url,
        "tls",
        &line,
        &[("LINE_ADAPTER_NATS_TLS_CA_FILE", ca.as_path())],
    );
    trusting.wait_ready().await;
    assert_serves_webhooks(&trusting, "tls").await;

    // The system roots do not include the private CA: start-up tries for
    // its 30 s window, then stops, naming the reason.
    let mut untrusting = Replica::spawn(&url, "tls", &line);
    let status = untrusting.wait_exit(Duration::from_secs(60)).await;
    assert!(!status.success());
    let log = untrusting.log();
    assert!(
        log.contains("NATS: cannot connect") && log.contains("certificate"),
        "{log}"
    );
    drop((trusting, untrusting));
    let _ = nats.stop();
}

/// A NATS JWT (v2) for `subject`, signed by `issuer`.
fn nats_jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
    let header = B64.encode(r#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = serde_json::json!({
        "jti": uuid::Uuid::new_v4().simple().to_string(),
        "iat": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        "iss": issuer.public_key(),
        "sub": subject,
        "name": name,
        "nats": nats,
    });
    let payload = B64.encode(claims.to_string());
    let signature = issuer
        .sign(format!("{header}.{payload}").as_bytes())
        .unwrap();
    format!("{header}.{payload}.{}", B64.encode(signature))
}

/// A `.creds` file: a user's JWT and its NKey seed.
fn creds(user_jwt: &str, user: &nkeys::KeyPair) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
        user.seed().unwrap()
    )
}

/// NATS in operator mode (decentralised JWT auth, as NGS and most managed
/// NATS use): the service connects with a `.creds` file (`nats_creds_file`)
/// and works; with a user the server does not know it is refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_with_a_creds_file() {
    use serde_json::json;
    if nats_url().is_none() {
        eprintln!("skipped: the replica suite runs on NATS (TEST_NATS_URL)");
        return;
    }
    let files = tempfile::tempdir().unwrap();
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let operator_jwt = nats_jwt(
        &operator,
        &operator.public_key(),
        "test-operator",
        json!({"type": "operator", "version": 2}),
    );
    let account_jwt = nats_jwt(
        &operator,
        &account.public_key(),
        "line-adapter",
        json!({
            "limits": {
                "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                "wildcards": true, "conn": -1, "leaf": -1,
                "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
            },
            "type": "account",
            "version": 2,
        }),
    );
    let user_jwt = nats_jwt(
        &account,
        &user.public_key(),
        "line-adapter",
        json!({"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2}),
    );
    // JetStream needs a system account.
    let system = nkeys::KeyPair::new_account();
    let system_jwt = nats_jwt(
        &operator,
        &system.public_key(),
        "SYS",
        json!({"type": "account", "version": 2}),
    );
    let port = nats_port();
    let store = tempfile::tempdir().unwrap();
    let config = files.path().join("nats.conf");
    std::fs::write(
        &config,
        format!(
            "host: 127.0.0.1\nport: {port}\noperator: {operator_jwt}\n\
             system_account: {sys}\nresolver: MEMORY\n\
             resolver_preload: {{ {sys}: {system_jwt}, {}: {account_jwt} }}\n\
             jetstream: {{ store_dir: {:?} }}\n",
            account.public_key(),
            store.path().display().to_string(),
            sys = system.public_key(),
        ),
    )
    .unwrap();
    let good = files.path().join("good.creds");
    std::fs::write(&good, creds(&user_jwt, &user)).unwrap();
    // A user signed by an account the server does not know.
    let stranger = nkeys::KeyPair::new_user();
    let stranger_jwt = nats_jwt(
        &nkeys::KeyPair::new_account(),
        &stranger.public_key(),
        "stranger",
        json!({"pub": {}, "sub": {}, "type": "user", "version": 2}),
    );
    let bad = files.path().join("bad.creds");
    std::fs::write(&bad, creds(&stranger_jwt, &stranger)).unwrap();

    let nats = OwnNats::start_config(port, store, &config);
    let url = format!("nats://127.0.0.1:{port}");
    let line = start_line(Arc::new(RetryKeyLine::default())).await;

    let member = Replica::spawn_with(
        &url,
        "creds",
        &line,
        &[("LINE_ADAPTER_NATS_CREDS_FILE", good.as_path())],
    );
    member.wait_ready().await;
    assert_serves_webhooks(&member, "creds").await;

    let mut refused = Replica::spawn_with(
        &url,
        "creds",
        &line,
        &[("LINE_ADAPTER_NATS_CREDS_FILE", bad.as_path())],
    );
    // Refused credentials are not tried again for the start-up window.
    let status = refused.wait_exit(Duration::from_secs(20)).await;
    assert!(!status.success());
    let log = refused.log();
    assert!(
        log.contains("NATS: cannot connect") && log.contains("authorization"),
        "{log}"
    );
    // Its seed is a secret: never logged.
    assert!(!log.contains(&stranger.seed().unwrap()));
    drop((member, refused));
    let _ = nats.stop();
}

/// In a cluster the service may start before NATS: start-up keeps trying
/// (for 30 s) and then serves as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_starting_after_the_service_is_waited_for() {
    if nats_url().is_none() {
        eprintln!("skipped: the replica suite runs on NATS (TEST_NATS_URL)");
        return;
    }
    let port = nats_port();
    let url = format!("nats://127.0.0.1:{port}");
    let line = start_line(Arc::new(RetryKeyLine::default())).await;
    let mut early = Replica::spawn(&url, "late", &line);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(early.child.try_wait().unwrap().is_none(), "still starting");
    assert!(!early.ready().await);
    let nats = OwnNats::start(port, tempfile::tempdir().unwrap());
    early.wait_ready().await;
    assert!(
        early.log().contains("NATS not reachable yet"),
        "{}",
        early.log()
    );
    assert_serves_webhooks(&early, "late").await;
    drop(early);
    let _ = nats.stop();
}

/// JetStream out of the storage its limits allow (an account's
/// `max_file`, filled by a ballast stream of the test's): webhooks get 503
/// with Retry-After, the replica is not ready but alive, and it resumes by
/// itself once the ballast is deleted, losing nothing it answered 200.
/// Also: credentials in `nats_url` (`nats://user:password@host`) are used.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jetstream_out_of_storage_refuses_webhooks_then_resumes_by_itself() {
    if nats_url().is_none() {
        eprintln!("skipped: the replica suite runs on NATS (TEST_NATS_URL)");
        return;
    }
    let port = nats_port();
    let store = tempfile::tempdir().unwrap();
    let config = store.path().join("nats.conf");
    std::fs::write(
        &config,
        format!(
            "host: 127.0.0.1\nport: {port}\njetstream {{ store_dir: \"{}\" }}\n\
             accounts {{ APP {{ jetstream {{ max_file: 4MB, max_mem: 1MB }}, users: [{{ user: app, password: app }}] }} }}\n",
            store.path().display()
        ),
    )
    .unwrap();
    let nats = OwnNats::start_config(port, store, &config);
    let url = format!("nats://app:app@127.0.0.1:{port}");
    let line = start_line(Arc::new(RetryKeyLine::default())).await;
    let mut replica = Replica::spawn(&url, "full", &line);
    replica.wait_ready().await;
    let channel = create_channel(&replica).await;
    let client = reqwest::Client::new();
    let url_of = replica.webhook_url(&channel);
    let mut answered = Vec::new();
    let post_one = async |id: String| {
        let body = text_body(&id, 1, "U0123456789abcdef0123456789abcdef");
        let response = client
            .post(&url_of)
            .header("content-type", "application/json")
            .header("x-line-signature", sign(SECRET, &body))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        (format!("{id}-0"), status, retry_after)
    };
    let (id, status, _) = post_one("before".into()).await;
    assert_eq!(status, 200);
    answered.push(id);

    // The ballast takes what the account has left: large blocks, then
    // small ones, so that not even a small event fits.
    let nats_client =
        async_nats::ConnectOptions::with_user_and_password("app".into(), "app".into())
            .connect(format!("127.0.0.1:{port}"))
            .await
            .unwrap();
    let js = async_nats::jetstream::new(nats_client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "ballast".into(),
        subjects: vec!["ballast".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut ballast_error = None;
    for size in [64 * 1024, 256] {
        let block = bytes::Bytes::from(vec![0x5a_u8; size]);
        for _ in 0..20_000 {
            let acked = match js.publish("ballast", block.clone()).await {
                Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                Err(err) => Err(err.to_string()),
            };
            if let Err(err) = acked {
                ballast_error = Some(err);
                break;
            }
        }
    }
    let ballast_error = ballast_error.expect("the account's limit stops the ballast");
    eprintln!("the ballast stopped at: {ballast_error}");

    // Full: webhooks are refused with 503 and Retry-After, never 200.
    let (_, status, retry_after) = post_one("full".into()).await;
    assert_eq!(status, 503, "{}", replica.log());
    assert_eq!(retry_after.as_deref(), Some("5"));
    wait_until("not ready while JetStream is full", async || {
        !replica.ready().await
    })
    .await;
    let healthz = reqwest::get(format!("http://127.0.0.1:{}/healthz", replica.http))
        .await
        .unwrap()
        .status();
    assert_eq!(healthz, 200, "alive: a restart frees nothing");
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", replica.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("line_adapter_store_full 1"),
        "store_full is 1:\n{metrics}"
    );

    // Freed: within 5 s webhooks are stored again, with no restart.
    js.delete_stream("ballast").await.unwrap();
    let freed = Instant::now();
    for n in 0.. {
        let (id, status, _) = post_one(format!("after{n}")).await;
        if status == 200 {
            answered.push(id);
            break;
        }
        assert_eq!(status, 503);
        assert!(
            freed.elapsed() < Duration::from_secs(5),
            "not 200 within 5 s of freeing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "200 again {:?} after the ballast was deleted",
        freed.elapsed()
    );
    // LINE redelivers what was refused: stored now, once.
    let (id, status, _) = post_one("full".into()).await;
    assert_eq!(status, 200);
    answered.push(id);
    let started = Instant::now();
    while !replica.ready().await {
        if started.elapsed() > Duration::from_secs(30) {
            let readyz = reqwest::get(format!("http://127.0.0.1:{}/readyz", replica.http))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            panic!("not ready again within 30 s: {readyz}\n{}", replica.log());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let events = replay(&replica, answered.len()).await;
    // In order and once each. Not gap-free here: nats-server 2.9 assigns
    // the refused write a sequence, then deletes it (see
    // Store::oldest_retained); the stream goes on past the hole.
    assert!(
        events.windows(2).all(|w| w[0].0 < w[1].0),
        "in order: {events:?}"
    );
    let ids: Vec<&str> = events.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids, answered, "each answered webhook once, in order");
    assert!(
        replica.child.try_wait().unwrap().is_none(),
        "the same process throughout"
    );
    drop(replica);
    let _ = nats.stop();
}
