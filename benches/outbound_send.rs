//! Outbound benchmark: gRPC Push → durable outbox → HTTP to a fast local
//! stand-in for LINE, with and without 20 % injected 503s (retried with the
//! same retry key). Prints messages/s and the accept latency (RPC call to
//! DELIVERED) percentiles; asserts nothing about timing.
//!
//! Run: `cargo bench --bench outbound_send` (optional `-- --seconds N
//! --clients N`).

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::Full;
use hyper::{Response, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use line_adapter::{
    app::{self, Listeners},
    proto::v1::{
        self as pb, channel_admin_client::ChannelAdminClient, messaging_client::MessagingClient,
    },
    settings::{Layer, Settings},
};
use tokio::sync::Mutex;
use tonic::transport::Channel;

/// A LINE stand-in that answers every push at once, failing `failure`
/// percent of them with 503.
async fn fake_line(failure: u32) -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicU64::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    let fail = fastrand::u32(0..100) < failure;
                    async move {
                        let mut response = Response::new(Full::new(Bytes::from_static(
                            br#"{"sentMessages":[{"id":"1","quoteToken":"q"}]}"#,
                        )));
                        if fail {
                            *response.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, requests)
}

async fn run(seconds: u64, clients: usize, failure: u32) {
    let (line_url, line_requests) = fake_line(failure).await;
    let dir = tempfile::tempdir().unwrap();
    let layer = Layer {
        grpc_addr: Some("127.0.0.1:0".into()),
        http_addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().to_owned()),
        line_api_base: Some(line_url.clone()),
        line_data_api_base: Some(line_url),
        // The service's own throughput, not LINE's 2,000 pushes/s per
        // channel that pacing holds it to (line::pace).
        line_rate_limits: Some("push=1000000/s".into()),
        ..Layer::default()
    };
    let settings = Settings::load(
        None,
        Vec::<(std::ffi::OsString, std::ffi::OsString)>::new(),
        layer,
    )
    .unwrap()
    .settings;
    let listeners = Listeners::bind(&settings).await.unwrap();
    let grpc = format!("http://{}", listeners.grpc.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app::run(settings, listeners, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    let mut admin = loop {
        if let Ok(client) = ChannelAdminClient::connect(grpc.clone()).await {
            break client;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let channel = loop {
        match admin
            .create_channel(pb::CreateChannelRequest {
                display_name: "bench".into(),
                line_channel_id: "1234567890".into(),
                channel_secret: "8c1d3e5f7a9b0c2d4e6f8a0b1c3d5e7f".into(),
                channel_access_token: "bench-token".into(),
                token_mode: 0,
            })
            .await
        {
            Ok(response) => break response.into_inner().channel.unwrap(),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };

    let connection = Channel::from_shared(grpc).unwrap().connect().await.unwrap();
    let latencies = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let sent = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..clients {
        let mut client = MessagingClient::new(connection.clone());
        let channel_id = channel.id.clone();
        let latencies = latencies.clone();
        let sent = sent.clone();
        workers.push(tokio::spawn(async move {
            let mut local = Histogram::<u64>::new(3).unwrap();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let request = pb::PushRequest {
                    channel_id: channel_id.clone(),
                    to: Some(pb::Conversation {
                        chat: Some(pb::conversation::Chat::UserId(format!("U{worker}"))),
                    }),
                    messages: vec![pb::Message {
                        kind: Some(pb::message::Kind::Text(pb::TextMessage {
                            text: format!("message {n}"),
                            ..Default::default()
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                };
                let begun = Instant::now();
                let mut delivery = client
                    .push(request)
                    .await
                    .expect("push accepted")
                    .into_inner()
                    .delivery
                    .unwrap();
                // Push answers after at most 10 s with the delivery as it
                // stands: one still being retried is followed to its end.
                while matches!(
                    delivery.state(),
                    pb::DeliveryState::Queued | pb::DeliveryState::Sending
                ) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    delivery = client
                        .get_delivery(pb::GetDeliveryRequest {
                            delivery_id: delivery.id.clone(),
                        })
                        .await
                        .expect("the delivery is known")
                        .into_inner()
                        .delivery
                        .unwrap();
                }
                assert_eq!(
                    delivery.state(),
                    pb::DeliveryState::Delivered,
                    "{delivery:?}"
                );
                local.record(begun.elapsed().as_micros() as u64).unwrap();
                n += 1;
            }
            sent.fetch_add(n, Ordering::Relaxed);
            latencies.lock().await.add(local).unwrap();
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sent = sent.load(Ordering::Relaxed);
    let histogram = latencies.lock().await;
    let ms = |q| histogram.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "push, {failure:>2} % 503s, {clients} clients: {:>7.0} messages/s delivered   ({} LINE requests for {sent} messages)   accept→delivered p50 {:.2} ms  p99 {:.2} ms",
        sent as f64 / elapsed,
        line_requests.load(Ordering::Relaxed),
        ms(0.5),
        ms(0.99),
    );
    let _ = stop.send(());
    server.await.unwrap();
}

fn main() {
    let mut seconds = 5;
    let mut clients = 64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().and_then(|v| v.parse().ok()).unwrap_or(5),
            "--clients" => clients = args.next().and_then(|v| v.parse().ok()).unwrap_or(64),
            _ => {}
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!("line-adapter outbound benchmark: {seconds} s per run, durable outbox (sled)");
        run(seconds, clients, 0).await;
        run(seconds, clients, 20).await;
    });
}
