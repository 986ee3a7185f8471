//! `/metrics` read with a Prometheus text parser: the series operators
//! alert on exist, carry the documented labels, and move when traffic flows.

mod support;

use std::collections::HashMap;

use line_adapter::proto::v1::{self as pb, conversation::Chat};
use prometheus_parse::{Sample, Scrape, Value};
use support::{
    SECRET, TestApp, create_channel_with_token, fake_line::FakeLine, post_webhook, start_with_line,
    text_body,
};

async fn scrape(app: &TestApp) -> Scrape {
    let text = reqwest::get(format!("{}/metrics", app.http_base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text parses")
}

/// The value of the sample `name` whose labels include all of `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s: &&Sample| s.metric == name)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => f64::NAN,
        })
}

#[tokio::test]
async fn series_move_with_traffic() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let id = channel.id.as_str();
    let before = scrape(&app).await;
    assert_eq!(
        value(&before, "line_adapter_outbox_retries_total", &[]),
        Some(0.0)
    );

    // Inbound: a webhook with one message, stored in one commit.
    let client = reqwest::Client::new();
    let body = text_body("metrics", 2, "U1");
    assert_eq!(
        post_webhook(&client, &app, id, SECRET, &body)
            .await
            .status(),
        200
    );
    let after = scrape(&app).await;
    assert_eq!(
        value(
            &after,
            "line_adapter_webhook_requests_total",
            &[("channel", id), ("status", "200")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &after,
            "line_adapter_events_ingested_total",
            &[("type", "message")]
        ),
        Some(2.0)
    );
    assert!(value(&after, "line_adapter_event_log_commit_records", &[]).unwrap() >= 1.0);
    assert!(
        value(
            &after,
            "line_adapter_event_log_commit_duration_seconds",
            &[]
        )
        .unwrap()
            >= 1.0
    );

    // A durable consumer that acknowledged 1 of 2 events lags by 1.
    let mut messaging = app.messaging().await;
    messaging
        .ack(pb::AckRequest {
            consumer: "desk".into(),
            sequence: 1,
        })
        .await
        .unwrap();
    assert_eq!(
        value(
            &scrape(&app).await,
            "line_adapter_consumer_lag_events",
            &[("consumer", "desk")]
        ),
        Some(1.0)
    );

    // Outbound: a push that LINE fails once, then accepts.
    line.script("/v2/bot/message/push", 503, &[], r#"{"message":"busy"}"#);
    line.script(
        "/v2/bot/message/push",
        200,
        &[],
        r#"{"sentMessages":[{"id":"1"}]}"#,
    );
    let delivery = messaging
        .push(pb::PushRequest {
            channel_id: id.into(),
            to: Some(pb::Conversation {
                chat: Some(Chat::UserId("U1".into())),
            }),
            messages: vec![pb::Message {
                kind: Some(pb::message::Kind::Text(pb::TextMessage {
                    text: "hi".into(),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(delivery.state(), pb::DeliveryState::Delivered);
    // The worker counts the final state just after answering.
    let mut sent = scrape(&app).await;
    for _ in 0..50 {
        if value(
            &sent,
            "line_adapter_outbox_finished_deliveries_total",
            &[("state", "delivered")],
        )
        .is_some()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        sent = scrape(&app).await;
    }
    assert_eq!(
        value(
            &sent,
            "line_adapter_outbox_finished_deliveries_total",
            &[("state", "delivered")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&sent, "line_adapter_outbox_retries_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &sent,
            "line_adapter_outbox_pending_deliveries",
            &[("state", "sending")]
        ),
        Some(0.0)
    );
    let push = "/v2/bot/message/push";
    for status in ["503", "200"] {
        assert_eq!(
            value(
                &sent,
                "line_adapter_line_api_requests_total",
                &[("endpoint", push), ("status", status)]
            ),
            Some(1.0),
            "{status}"
        );
    }
    assert_eq!(
        value(
            &sent,
            "line_adapter_line_api_request_duration_seconds",
            &[("endpoint", push)]
        ),
        Some(2.0)
    );

    // A lookup's path carries a user id; the label does not.
    line.script(
        "/v2/bot/profile/U4af4980629abcdef0123456789abcdef",
        200,
        &[],
        r#"{"displayName":"Brown","userId":"U4af4980629abcdef0123456789abcdef"}"#,
    );
    messaging
        .get_profile(pb::GetProfileRequest {
            channel_id: id.into(),
            user_id: "U4af4980629abcdef0123456789abcdef".into(),
        })
        .await
        .unwrap();
    let looked = scrape(&app).await;
    assert_eq!(
        value(
            &looked,
            "line_adapter_line_api_requests_total",
            &[("endpoint", "/v2/bot/profile/:id"), ("status", "200")]
        ),
        Some(1.0)
    );
    assert!(
        !looked
            .samples
            .iter()
            .any(|s| s.labels.values().any(|v| v.contains("U4af4980629"))),
        "no ids in labels"
    );

    // Quota and token expiry, per channel.
    line.script(
        "/v2/bot/message/quota",
        200,
        &[],
        r#"{"type":"limited","value":1000}"#,
    );
    line.script(
        "/v2/bot/message/quota/consumption",
        200,
        &[],
        r#"{"totalUsage":250}"#,
    );
    for route in ["reply", "push", "multicast", "broadcast"] {
        line.script(
            &format!("/v2/bot/message/delivery/{route}"),
            200,
            &[],
            r#"{"status":"ready","success":3}"#,
        );
    }
    app.admin()
        .await
        .get_quota(pb::GetQuotaRequest {
            channel_id: id.into(),
            date: String::new(),
        })
        .await
        .unwrap();
    let issued = app
        .admin()
        .await
        .create_channel(pb::CreateChannelRequest {
            display_name: "Issued".into(),
            line_channel_id: "1657000099".into(),
            channel_secret: SECRET.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    line.script(
        "/v2/oauth/accessToken",
        200,
        &[],
        r#"{"access_token":"t","expires_in":2592000,"token_type":"Bearer"}"#,
    );
    let rotated = app
        .admin()
        .await
        .rotate_access_token(pb::RotateAccessTokenRequest {
            channel_id: issued.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    let fees = scrape(&app).await;
    assert_eq!(
        value(
            &fees,
            "line_adapter_quota_remaining_messages",
            &[("channel", id)]
        ),
        Some(750.0)
    );
    assert_eq!(
        value(
            &fees,
            "line_adapter_token_expiry_timestamp_seconds",
            &[("channel", issued.id.as_str())]
        ),
        Some(rotated.expire_time.unwrap().seconds as f64)
    );

    // Every family has help text, and the names follow the conventions.
    let docs: HashMap<_, _> = fees.docs.iter().collect();
    for family in [
        "line_adapter_webhook_requests",
        "line_adapter_consumer_lag_events",
        "line_adapter_line_api_request_duration_seconds",
        "line_adapter_token_expiry_timestamp_seconds",
    ] {
        assert!(docs.contains_key(&family.to_owned()), "{family} documented");
    }
}
