//! Crash suite: the real binary is killed with SIGKILL every 1–3 s and
//! restarted on the same data dir for ~30 s, while signed webhooks are
//! posted without pause, a durable consumer reads and acknowledges, and
//! pushes are sent. Afterwards:
//! - every webhook answered 200 is in the log exactly once, gap-free;
//! - the consumer resumed after each crash exactly after its last
//!   acknowledged event: no gap, nothing acknowledged twice;
//! - every push the service accepted was delivered, and LINE accepted each
//!   retry key exactly once;
//! - the log and the outbox agree: every send has one queued record and,
//!   once the outbox says it is final, one final record showing that state.

mod support;

use std::{
    collections::HashMap,
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
    SECRET, now_ms,
    retry_key_line::{RetryKeyLine, start_line},
    text_body, text_body_at,
};
use tokio_stream::StreamExt as _;

const BIN: &str = env!("CARGO_BIN_EXE_line-adapter");
const RUN: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(dir: &std::path::Path, grpc: u16, http: u16, line: &str) -> Child {
    Command::new(BIN)
        .args(["serve", "--grpc-addr", &format!("127.0.0.1:{grpc}")])
        .args(["--http-addr", &format!("127.0.0.1:{http}")])
        .arg("--data-dir")
        .arg(dir)
        .envs(support::serve_env(dir))
        .env("LINE_ADAPTER_MASTER_KEY", "c3".repeat(32))
        .env("LINE_ADAPTER_LINE_API_BASE", line)
        .env("LINE_ADAPTER_LINE_DATA_API_BASE", line)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the binary")
}

async fn wait_ready(http: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(response) = reqwest::get(format!("http://127.0.0.1:{http}/readyz")).await
            && response.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not ready within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_every_few_seconds_loses_and_doubles_nothing() {
    let line_state = Arc::new(RetryKeyLine::default());
    let line = start_line(line_state.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let (grpc, http) = (free_port(), free_port());
    let grpc_url = format!("http://127.0.0.1:{grpc}");
    let mut child = spawn(dir.path(), grpc, http, &line);
    wait_ready(http).await;
    let channel =
        support::create_shop(&mut ChannelAdminClient::connect(grpc_url.clone()).await.unwrap())
            .await;

    let stop = Arc::new(AtomicBool::new(false));
    let answered: Arc<Mutex<Vec<String>>> = Arc::default();
    let deliveries: Arc<Mutex<Vec<String>>> = Arc::default();
    // (resumed at, last confirmed ack, last ack sent) for each
    // (re)connection of the consumer, and every sequence it received.
    let resumes: Arc<Mutex<Vec<(u64, u64, u64)>>> = Arc::default();
    let acked: Arc<Mutex<Vec<u64>>> = Arc::default();

    let mut load = Vec::new();
    for poster in 0..4 {
        let (stop, answered, id) = (stop.clone(), answered.clone(), channel.id.clone());
        load.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let prefix = format!("crash-{poster}-{n}");
                // Events made just now and long ago: a fresh one is
                // deduplicated by the publish alone on NATS.
                let body = if n % 2 == 0 {
                    text_body_at(&prefix, 2, "U1", now_ms())
                } else {
                    text_body(&prefix, 2, "U1")
                };
                let sent = client
                    .post(format!("http://127.0.0.1:{http}/webhook/line/{id}"))
                    .header("x-line-signature", sign(SECRET, &body))
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => {
                        let mut answered = answered.lock().unwrap();
                        answered.push(format!("{prefix}-0"));
                        answered.push(format!("{prefix}-1"));
                    }
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }));
    }
    {
        let (stop, deliveries, id, url) = (
            stop.clone(),
            deliveries.clone(),
            channel.id.clone(),
            grpc_url.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut messaging) = MessagingClient::connect(url.clone()).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let pushed = messaging
                        .push(support::text_push(
                            &id,
                            &format!("U{n}"),
                            &format!("crash push {n}"),
                        ))
                        .await;
                    match pushed {
                        // Accepted: stored durably before this answer.
                        Ok(response) => deliveries
                            .lock()
                            .unwrap()
                            .push(response.into_inner().delivery.unwrap().id),
                        Err(_) => break,
                    }
                }
            }
        }));
    }
    {
        let (stop, resumes, acked, url) = (
            stop.clone(),
            resumes.clone(),
            acked.clone(),
            grpc_url.clone(),
        );
        load.push(tokio::spawn(async move {
            // An ack whose answer is lost in a crash may still be durable:
            // the resume then starts after it.
            let (mut confirmed, mut attempted) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut messaging) = MessagingClient::connect(url.clone()).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let Ok(stream) = messaging
                    .subscribe(pb::SubscribeRequest {
                        start: Some(pb::subscribe_request::Start::Consumer("crash".into())),
                        ..Default::default()
                    })
                    .await
                else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let mut stream = stream.into_inner();
                let mut first = true;
                while let Ok(Some(Ok(item))) =
                    tokio::time::timeout(Duration::from_secs(2), stream.next()).await
                {
                    let Some(pb::subscribe_response::Kind::Event(event)) = item.kind else {
                        continue;
                    };
                    if first {
                        resumes
                            .lock()
                            .unwrap()
                            .push((event.sequence, confirmed, attempted));
                        first = false;
                    }
                    acked.lock().unwrap().push(event.sequence);
                    attempted = event.sequence;
                    let ack = messaging
                        .ack(pb::AckRequest {
                            consumer: "crash".into(),
                            sequence: event.sequence,
                        })
                        .await;
                    if ack.is_err() {
                        break;
                    }
                    confirmed = event.sequence;
                }
            }
        }));
    }

    // Kill and restart for RUN.
    let started = Instant::now();
    let mut kills = 0;
    // At least 8 kills, however long a backend takes to restart.
    while started.elapsed() < RUN || kills < 8 {
        let pause = Duration::from_millis(fastrand::u64(1_000..=3_000));
        tokio::time::sleep(pause).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        child = spawn(dir.path(), grpc, http, &line);
        wait_ready(http).await;
    }
    // Let the consumer and the outbox catch up, then stop the load.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }

    // The log: everything answered 200, exactly once, gap-free.
    let mut messaging = MessagingClient::connect(grpc_url.clone()).await.unwrap();
    let mut replay = messaging
        .subscribe(pb::SubscribeRequest {
            start: Some(pb::subscribe_request::Start::Position(
                pb::StartPosition::Earliest as i32,
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut stored: HashMap<String, u32> = HashMap::new();
    let mut last = 0;
    while let Ok(Some(Ok(item))) =
        tokio::time::timeout(Duration::from_millis(1500), replay.next()).await
    {
        if let Some(pb::subscribe_response::Kind::Event(event)) = item.kind {
            assert_eq!(event.sequence, last + 1, "gap-free sequence");
            last = event.sequence;
            // Sends' records are checked against the outbox below.
            if event.r#type() != pb::EventType::Outbound {
                *stored.entry(event.webhook_event_id).or_default() += 1;
            }
        }
    }
    let answered = answered.lock().unwrap().clone();
    assert!(kills >= 8, "killed {kills} times");
    assert!(answered.len() > 100, "webhooks flowed: {}", answered.len());
    for id in &answered {
        assert_eq!(
            stored.get(id),
            Some(&1),
            "{id} answered 200, stored {:?}",
            stored.get(id)
        );
    }
    assert!(stored.values().all(|&n| n == 1), "nothing stored twice");

    // The consumer: each resume right after its last durable ack (the one
    // confirmed, or the one in flight when the service died): never an
    // acknowledged event again, never a gap.
    let resumes = resumes.lock().unwrap().clone();
    assert!(resumes.len() > 1, "the consumer reconnected: {resumes:?}");
    for (resumed_at, confirmed, attempted) in &resumes {
        assert!(
            *resumed_at == confirmed + 1 || *resumed_at == attempted + 1,
            "resumed at {resumed_at} after ack {confirmed} (in flight: {attempted})"
        );
    }
    let acked = acked.lock().unwrap().clone();
    let mut seen = acked.clone();
    seen.dedup();
    assert!(
        seen.windows(2).all(|w| w[1] == w[0] + 1),
        "the consumer saw every event, in order"
    );
    assert_eq!(seen.first(), Some(&1));

    // The sends: every accepted one delivered, each retry key accepted once.
    let deliveries = deliveries.lock().unwrap().clone();
    assert!(deliveries.len() > 20, "pushes flowed: {}", deliveries.len());
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &deliveries {
        loop {
            let delivery = messaging
                .get_delivery(pb::GetDeliveryRequest {
                    delivery_id: id.clone(),
                })
                .await
                .unwrap()
                .into_inner()
                .delivery
                .unwrap();
            if delivery.state() == pb::DeliveryState::Delivered {
                break;
            }
            assert!(
                delivery.state() == pb::DeliveryState::Queued
                    || delivery.state() == pb::DeliveryState::Sending,
                "{id}: {delivery:?}"
            );
            assert!(Instant::now() < deadline, "{id} stuck: {delivery:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let accepted = line_state.accepted.lock().unwrap().clone();
    assert!(accepted.len() >= deliveries.len());
    assert!(accepted.values().all(|&n| n == 1));

    // The log and the outbox agree: each send has one queued record, and
    // one final record once (and only once) the outbox says it is final,
    // showing that state. Sends whose answer a crash cut off count too.
    let deadline = Instant::now() + Duration::from_secs(60);
    let sends = loop {
        let records = outbound_records(&mut messaging).await;
        let mut settled = true;
        for (id, states) in &records {
            let queued = states
                .iter()
                .filter(|s| **s == pb::DeliveryState::Queued)
                .count();
            let finals: Vec<_> = states
                .iter()
                .filter(|s| **s != pb::DeliveryState::Queued)
                .collect();
            assert_eq!(queued, 1, "{id}: one queued record: {states:?}");
            assert_eq!(states[0], pb::DeliveryState::Queued, "{id}: queued first");
            assert!(finals.len() <= 1, "{id}: one final record: {states:?}");
            let outbox = messaging
                .get_delivery(pb::GetDeliveryRequest {
                    delivery_id: id.clone(),
                })
                .await
                .unwrap()
                .into_inner()
                .delivery
                .unwrap()
                .state();
            match finals.first() {
                Some(&&logged) => assert_eq!(logged, outbox, "{id}: the record shows the outbox"),
                // Final in the outbox: its record follows within moments.
                None if outbox == pb::DeliveryState::Delivered => settled = false,
                None => {}
            }
        }
        for id in &deliveries {
            assert!(records.contains_key(id), "{id} accepted but not on the log");
        }
        if settled {
            break records.len();
        }
        assert!(Instant::now() < deadline, "final records missing");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "crash suite: {kills} SIGKILLs in {:.0} s; {} webhooks answered 200 and stored once; {} events acknowledged over {} resumes; {} pushes delivered once; {sends} sends on the log, each with one queued and one final record",
        started.elapsed().as_secs_f64(),
        answered.len(),
        acked.len(),
        resumes.len(),
        deliveries.len()
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The log's outbound records, by delivery id: the states they show, in
/// log order.
async fn outbound_records(
    messaging: &mut MessagingClient<tonic::transport::Channel>,
) -> HashMap<String, Vec<pb::DeliveryState>> {
    let mut replay = messaging
        .subscribe(pb::SubscribeRequest {
            event_types: vec![pb::EventType::Outbound as i32],
            start: Some(pb::subscribe_request::Start::Position(
                pb::StartPosition::Earliest as i32,
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut records: HashMap<String, Vec<pb::DeliveryState>> = HashMap::new();
    while let Ok(Some(Ok(item))) =
        tokio::time::timeout(Duration::from_millis(1500), replay.next()).await
    {
        if let Some(pb::subscribe_response::Kind::Event(event)) = item.kind
            && let Some(pb::event::Payload::Outbound(outbound)) = event.payload
        {
            let delivery = outbound.delivery.unwrap();
            let state = delivery.state();
            records.entry(delivery.id).or_default().push(state);
        }
    }
    records
}
