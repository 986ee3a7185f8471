//! Webhook ingest benchmark: the real server (hyper listener, signature
//! check, parser, sled with fsync'd group commit, Subscribe over gRPC) on
//! loopback, driven by signed webhooks over HTTP/1.1 keep-alive.
//!
//! Run: `cargo bench --bench webhook_ingest` (optional args:
//! `-- --seconds N --connections N --only PHASE`). Prints throughput and latency
//! percentiles; asserts nothing about timing.
//!
//! On NATS JetStream: `-- --nats nats://127.0.0.1:4222 --replicas 3` runs
//! that many replicas (in this process, on one fresh prefix); load is spread
//! over them round robin and the fan-out phase subscribes once on each.
//!
//! Phases:
//! 1. Saturation, bodies of 1 and of 10 events: events/s, requests/s and
//!    p50/p99/p99.9 of the time to the 200 (which includes the durable write).
//! 2. Webhook → Subscribe latency at a paced request rate, with 1 subscriber
//!    and with 1,000: time from sending the request to the event arriving on
//!    a stream.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use hdrhistogram::Histogram;
use line_adapter::{
    app::{self, Listeners},
    proto::v1::{
        self as pb, channel_admin_client::ChannelAdminClient, messaging_client::MessagingClient,
    },
    settings::{Layer, Settings},
    signature::sign,
};
use tokio::sync::Mutex;
use tonic::transport::Channel;

const SECRET: &str = "8c1d3e5f7a9b0c2d4e6f8a0b1c3d5e7f";

struct Args {
    seconds: u64,
    connections: usize,
    /// Run only the phase with this name (ingest1, ingest10, fanout1,
    /// fanout1000).
    only: Option<String>,
    /// Run on NATS JetStream at this URL instead of sled.
    nats: Option<String>,
    /// Replicas to run (NATS only).
    replicas: usize,
}

fn args() -> Args {
    let mut args = Args {
        seconds: 5,
        connections: 64,
        only: None,
        nats: None,
        replicas: 1,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--seconds" => args.seconds = iter.next().and_then(|v| v.parse().ok()).unwrap_or(5),
            "--connections" => {
                args.connections = iter.next().and_then(|v| v.parse().ok()).unwrap_or(64)
            }
            "--only" => args.only = iter.next(),
            "--nats" => args.nats = iter.next(),
            "--replicas" => {
                args.replicas = iter.next().and_then(|v| v.parse().ok()).unwrap_or(1).max(1)
            }
            _ => {} // cargo bench passes --bench
        }
    }
    args
}

/// A signed body of `count` text events; `text` carries the send offset.
/// The events are made now, as LINE's are moments before it sends them.
fn body(id: &str, count: usize, text: &str) -> Bytes {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let events: Vec<serde_json::Value> = (0..count)
        .map(|i| {
            serde_json::json!({
                "type": "message", "mode": "active", "timestamp": now_ms,
                "source": {"type": "user", "userId": "U0123456789abcdef0123456789abcdef"},
                "webhookEventId": format!("{id}-{i}"), "replyToken": format!("r{id}{i}"),
                "deliveryContext": {"isRedelivery": false},
                "message": {"id": format!("{id}{i}"), "type": "text", "text": text,
                            "quoteToken": "q3Plxr4AgKd"}
            })
        })
        .collect();
    Bytes::from(
        serde_json::to_vec(&serde_json::json!({
            "destination": "U0123456789abcdef0123456789abcdef", "events": events
        }))
        .unwrap(),
    )
}

/// The replicas under test (one on sled).
struct Servers {
    /// gRPC base of each replica.
    grpc: Vec<String>,
    /// The channel's webhook URL on each replica.
    webhook_urls: Vec<String>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _dirs: Vec<tempfile::TempDir>,
}

async fn start_servers(args: &Args) -> Servers {
    let prefix = format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut servers = Servers {
        grpc: Vec::new(),
        webhook_urls: Vec::new(),
        stops: Vec::new(),
        tasks: Vec::new(),
        _dirs: Vec::new(),
    };
    let mut https = Vec::new();
    for _ in 0..if args.nats.is_some() {
        args.replicas
    } else {
        1
    } {
        let dir = tempfile::tempdir().unwrap();
        let mut layer = Layer {
            grpc_addr: Some("127.0.0.1:0".into()),
            http_addr: Some("127.0.0.1:0".into()),
            data_dir: Some(dir.path().to_owned()),
            ..Layer::default()
        };
        if let Some(url) = &args.nats {
            layer.store = Some("nats".into());
            layer.nats_url = Some(url.clone());
            layer.nats_prefix = Some(prefix.clone());
            layer.master_key = Some(line_adapter::secret::Secret::new("ab".repeat(32)));
        }
        let settings = Settings::load(
            None,
            Vec::<(std::ffi::OsString, std::ffi::OsString)>::new(),
            layer,
        )
        .unwrap()
        .settings;
        let listeners = Listeners::bind(&settings).await.unwrap();
        servers
            .grpc
            .push(format!("http://{}", listeners.grpc.local_addr().unwrap()));
        let http = listeners.http.local_addr().unwrap();
        https.push(http);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        servers.stops.push(stop);
        servers.tasks.push(tokio::spawn(async move {
            app::run(settings, listeners, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        }));
        servers._dirs.push(dir);
        let client = reqwest::Client::new();
        while client
            .get(format!("http://{http}/readyz"))
            .send()
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let channel = ChannelAdminClient::connect(servers.grpc[0].clone())
        .await
        .unwrap()
        .create_channel(pb::CreateChannelRequest {
            display_name: "bench".into(),
            line_channel_id: "1234567890".into(),
            channel_secret: SECRET.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    servers.webhook_urls = https
        .iter()
        .map(|http| format!("http://{http}/webhook/line/{}", channel.id))
        .collect();
    servers
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .build()
        .unwrap()
}

async fn post(client: &reqwest::Client, url: &str, body: Bytes) {
    let response = client
        .post(url)
        .header("x-line-signature", sign(SECRET, &body))
        .body(body)
        .send()
        .await
        .expect("the server answers");
    assert_eq!(
        response.status(),
        200,
        "every benchmark request is accepted"
    );
}

fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

/// Phase 1: as fast as `connections` clients can go.
async fn saturate(servers: &Servers, args: &Args, per_body: usize, tag: &str) {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let latencies = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let requests = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..args.connections {
        let client = client();
        let url = servers.webhook_urls[worker % servers.webhook_urls.len()].clone();
        let latencies = latencies.clone();
        let requests = requests.clone();
        let tag = tag.to_owned();
        workers.push(tokio::spawn(async move {
            let mut local = Histogram::<u64>::new(3).unwrap();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let body = body(&format!("{tag}-{worker}-{n}"), per_body, "bench");
                let sent = Instant::now();
                post(&client, &url, body).await;
                local.record(sent.elapsed().as_micros() as u64).unwrap();
                n += 1;
            }
            requests.fetch_add(n, Ordering::Relaxed);
            latencies.lock().await.add(local).unwrap();
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let requests = requests.load(Ordering::Relaxed) as f64;
    let histogram = latencies.lock().await;
    println!(
        "ingest  {per_body:>2} event(s)/body, {:>3} connections: {:>8.0} events/s {:>8.0} req/s   200 after p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms",
        args.connections,
        requests * per_body as f64 / elapsed,
        requests / elapsed,
        ms(&histogram, 0.5),
        ms(&histogram, 0.99),
        ms(&histogram, 0.999),
    );
}

/// Phase 2: paced requests of one event; every subscriber measures when
/// each event arrives relative to when its request was sent.
async fn fan_out(servers: &Servers, subscribers: usize, rate: u64, seconds: u64, tag: &str) {
    let origin = Instant::now();
    let latencies = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let expected = rate * seconds;
    let mut readers = Vec::new();
    // Spread streams over several connections (and every replica), as
    // separate services would.
    let channels: Vec<Channel> = {
        let mut channels = Vec::new();
        for i in 0..subscribers.div_ceil(100).max(servers.grpc.len()) {
            channels.push(
                Channel::from_shared(servers.grpc[i % servers.grpc.len()].clone())
                    .unwrap()
                    .connect()
                    .await
                    .unwrap(),
            );
        }
        channels
    };
    for i in 0..subscribers {
        let mut client = MessagingClient::new(channels[i % channels.len()].clone());
        let mut stream = client
            .subscribe(pb::SubscribeRequest::default())
            .await
            .unwrap()
            .into_inner();
        let latencies = latencies.clone();
        readers.push(tokio::spawn(async move {
            let mut local = Histogram::<u64>::new(3).unwrap();
            let mut seen = 0;
            while seen < expected {
                let Ok(Ok(Some(message))) =
                    tokio::time::timeout(Duration::from_secs(30), stream.message()).await
                else {
                    break;
                };
                if let Some(pb::subscribe_response::Kind::Event(event)) = message.kind {
                    let json: serde_json::Value = serde_json::from_str(&event.json).unwrap();
                    let sent: u64 = json["message"]["text"].as_str().unwrap().parse().unwrap();
                    let now = origin.elapsed().as_micros() as u64;
                    local.record(now.saturating_sub(sent)).unwrap();
                    seen += 1;
                }
            }
            latencies.lock().await.add(local).unwrap();
            seen
        }));
    }
    // Let every stream reach the live tail first.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let client = client();
    let acks = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    // Latencies count from when each request was due, not from when it was
    // actually sent, so a stalled sender cannot hide queueing (no
    // coordinated omission).
    let period = Duration::from_secs(1) / rate as u32;
    let first_due = origin.elapsed() + Duration::from_millis(10);
    let sending = Instant::now();
    let mut sends = Vec::with_capacity(expected as usize);
    for n in 0..expected {
        let due = first_due + period * n as u32;
        tokio::time::sleep_until((origin + due).into()).await;
        let client = client.clone();
        let url = servers.webhook_urls[n as usize % servers.webhook_urls.len()].clone();
        let due_us = due.as_micros() as u64;
        let body = body(&format!("{tag}-{n}"), 1, &due_us.to_string());
        let acks = acks.clone();
        sends.push(tokio::spawn(async move {
            post(&client, &url, body).await;
            let took = (origin.elapsed().as_micros() as u64).saturating_sub(due_us);
            acks.lock().await.record(took).unwrap();
        }));
    }
    let achieved = expected as f64 / sending.elapsed().as_secs_f64();
    for send in sends {
        send.await.unwrap();
    }
    let mut delivered = 0;
    for reader in readers {
        delivered += reader.await.unwrap();
    }
    let histogram = latencies.lock().await;
    let acks = acks.lock().await;
    println!(
        "fanout  {subscribers:>4} subscriber(s), {rate:>5} req/s (sent at {achieved:.0}/s): {delivered} deliveries   webhook→Subscribe p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms   (200 after p50 {:.2} ms  p99 {:.2} ms)",
        ms(&histogram, 0.5),
        ms(&histogram, 0.99),
        ms(&histogram, 0.999),
        ms(&acks, 0.5),
        ms(&acks, 0.99),
    );
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let servers = start_servers(&args).await;
        let store = match &args.nats {
            Some(_) => format!(
                "NATS JetStream, {} replica(s) in this process",
                servers.grpc.len()
            ),
            None => "sled with fsync per group commit".into(),
        };
        println!(
            "line-adapter webhook benchmark: {} s per phase, {} cores, {store}",
            args.seconds,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let server = &servers;
        let run = |phase: &str| args.only.as_deref().is_none_or(|only| only == phase);
        if run("ingest1") {
            saturate(server, &args, 1, "one").await;
        }
        if run("ingest10") {
            saturate(server, &args, 10, "ten").await;
        }
        if run("fanout1") {
            // One subscriber per replica.
            fan_out(server, server.grpc.len(), 5_000, args.seconds, "f1").await;
        }
        if run("fanout1000") {
            fan_out(server, 1_000, 20, args.seconds, "f1000").await;
            fan_out(server, 1_000, 100, args.seconds, "g1000").await;
        }
        for stop in servers.stops {
            let _ = stop.send(());
        }
        for task in servers.tasks {
            task.await.unwrap();
        }
    });
}
