//! A graceful stop as load balancers and LINE see it: first not ready but
//! still serving (`shutdown_delay_seconds`), then a drain with both
//! listeners open (readiness 503, health NOT_SERVING, webhooks 503 with
//! Retry-After, new calls UNAVAILABLE) while what is in flight finishes.

mod support;

use std::time::{Duration, Instant};

use line_adapter::{proto::v1 as pb, signature::sign};
use support::{SECRET, TestApp, create_channel_with_token, test_settings, text_body, text_push};
use tonic::{Code, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

async fn health_on_a_new_connection(grpc: &str) -> ServingStatus {
    let channel = Channel::from_shared(grpc.to_owned())
        .unwrap()
        .connect()
        .await
        .expect("the gRPC listener still accepts connections");
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .expect("health answers")
        .into_inner()
        .status()
}

async fn post(
    client: &reqwest::Client,
    base: &str,
    channel_id: &str,
    n: usize,
) -> reqwest::Response {
    let body = text_body(&format!("stop-{n}"), 1, "U1");
    client
        .post(format!("{base}/webhook/line/{channel_id}"))
        .header("content-type", "application/json")
        .header("x-line-signature", sign(SECRET, &body))
        .body(body)
        .send()
        .await
        .expect("the HTTP listener still answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_says_not_ready_then_drains_with_both_listeners_open() {
    // A LINE that accepts and never answers: a push stays in flight for
    // the request timeout and holds the drain open.
    let line = support::silent_line().await;
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(test_settings(dir.path(), |layer| {
        layer.line_api_base = Some(line.clone());
        layer.line_data_api_base = Some(line.clone());
        layer.line_request_timeout_ms = Some(3000);
        layer.shutdown_delay_seconds = Some(1);
        layer.shutdown_grace_seconds = Some(8);
    }))
    .await;
    let channel = create_channel_with_token(&app).await;
    let base = app.http_base.clone();
    let grpc = format!("http://{}", app.grpc_addr);
    let client = reqwest::Client::new();
    assert_eq!(post(&client, &base, &channel.id, 0).await.status(), 200);

    let mut messaging = app.messaging().await;
    let pushed_to = channel.id.clone();
    let push = tokio::spawn(async move {
        messaging
            .push(text_push(&pushed_to, "U1", "in flight"))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let asked = Instant::now();
    let stopping = tokio::spawn(app.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Within the delay: not ready, yet everything still serves.
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(
        health_on_a_new_connection(&grpc).await,
        ServingStatus::NotServing
    );
    assert_eq!(
        post(&client, &base, &channel.id, 1).await.status(),
        200,
        "webhooks are still stored during shutdown_delay"
    );

    // The drain: the push is still in flight (LINE has not answered).
    let drain_starts = asked + Duration::from_millis(1300);
    tokio::time::sleep_until(drain_starts.into()).await;
    let refused = post(&client, &base, &channel.id, 2).await;
    assert_eq!(refused.status(), 503, "a webhook while draining");
    assert_eq!(refused.headers()["retry-after"], "5");
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let live = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(live.status(), 200, "alive while draining");
    assert_eq!(
        health_on_a_new_connection(&grpc).await,
        ServingStatus::NotServing
    );
    let channel_id = channel.id.clone();
    let refused = pb::messaging_client::MessagingClient::new(
        Channel::from_shared(grpc.clone())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
    .push(text_push(&channel_id, "U1", "too late"))
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        !stopping.is_finished(),
        "the push in flight holds the drain"
    );

    // The push ends (kept, to be sent after a restart) and the stop with it.
    let delivery = push.await.unwrap().unwrap().into_inner().delivery.unwrap();
    assert_eq!(delivery.state(), pb::DeliveryState::Queued, "{delivery:?}");
    stopping.await.unwrap().unwrap();
}
