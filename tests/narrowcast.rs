//! Messaging.Narrowcast over the wire against the stand-in for LINE: the
//! request LINE documents (recipient, filter, limit, retry key), LINE's
//! progress followed to `succeeded` and to `failed`, LINE's errors, a
//! restart before LINE answered (same retry key, 409 followed) and while
//! following (taken up again), and the send's records on the event log.

mod support;

use std::time::Duration;

use line_adapter::proto::v1::{
    self as pb, demographic_filter::Filter, messaging_client::MessagingClient,
    narrowcast_recipient::Recipient,
};
use serde_json::json;
use support::{
    TestApp, create_channel_with_token, fake_line::FakeLine, from_earliest, next_events, subscribe,
    test_settings, text_message,
};
use tonic::{Code, transport::Channel};
use tonic_types::StatusExt as _;

const NARROWCAST: &str = "/v2/bot/message/narrowcast";
const PROGRESS: &str = "/v2/bot/message/progress/narrowcast";

/// The service against `line`, reading progress every 100 ms at most.
async fn start(dir: &std::path::Path, line: &FakeLine) -> TestApp {
    TestApp::start_with(test_settings(dir, |layer| {
        layer.line_api_base = Some(line.url());
        layer.line_data_api_base = Some(line.url());
        layer.outbox_max_backoff_ms = Some(100);
        // LINE allows 60 narrowcasts an hour; these tests send more.
        layer.line_rate_limits = Some("narrowcast=1000/s".into());
    }))
    .await
}

fn audience(id: i64) -> pb::NarrowcastRecipient {
    pb::NarrowcastRecipient {
        recipient: Some(Recipient::AudienceGroupId(id)),
    }
}

fn filter(filter: Filter) -> pb::DemographicFilter {
    pb::DemographicFilter {
        filter: Some(filter),
    }
}

/// To audience 5614991017776 but not 4389303728991, of friends aged 20 to
/// 29 on iOS or not in Tokyo, to at most 100.
fn request(channel: &str) -> pb::NarrowcastRequest {
    pb::NarrowcastRequest {
        channel_id: channel.into(),
        messages: vec![text_message("Spring sale")],
        recipient: Some(pb::NarrowcastRecipient {
            recipient: Some(Recipient::AllOf(pb::NarrowcastRecipients {
                recipients: vec![
                    audience(5614991017776),
                    pb::NarrowcastRecipient {
                        recipient: Some(Recipient::Negated(Box::new(audience(4389303728991)))),
                    },
                ],
            })),
        }),
        filter: Some(filter(Filter::AllOf(pb::DemographicFilters {
            filters: vec![
                filter(Filter::Age(pb::AgeRange {
                    min_age: 20,
                    below_age: 30,
                })),
                filter(Filter::AnyOf(pb::DemographicFilters {
                    filters: vec![
                        filter(Filter::AppType(pb::AppTypeFilter {
                            app_types: vec![pb::AppType::Ios as i32],
                        })),
                        filter(Filter::Negated(Box::new(filter(Filter::Area(
                            pb::AreaFilter {
                                areas: vec!["jp_13".into()],
                            },
                        ))))),
                    ],
                })),
            ],
        }))),
        limit: Some(pb::NarrowcastLimit {
            max: 100,
            ..Default::default()
        }),
        notification_disabled: true,
        idempotency_key: String::new(),
    }
}

fn line_body() -> serde_json::Value {
    json!({
        "messages": [{"type": "text", "text": "Spring sale"}],
        "recipient": {"type": "operator", "and": [
            {"type": "audience", "audienceGroupId": 5614991017776_i64},
            {"type": "operator", "not": {"type": "audience", "audienceGroupId": 4389303728991_i64}},
        ]},
        "filter": {"demographic": {"type": "operator", "and": [
            {"type": "age", "gte": "age_20", "lt": "age_30"},
            {"type": "operator", "or": [
                {"type": "appType", "oneOf": ["ios"]},
                {"type": "operator", "not": {"type": "area", "oneOf": ["jp_13"]}},
            ]},
        ]}},
        "limit": {"max": 100},
        "notificationDisabled": true,
    })
}

fn progress(phase: &str, extra: serde_json::Value) -> String {
    let mut body = json!({"phase": phase, "acceptedTime": "2026-12-03T10:15:30.121Z"});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body.to_string()
}

/// Polls GetDelivery until the delivery is in `state` (bounded).
async fn until_state(
    messaging: &mut MessagingClient<Channel>,
    id: &str,
    state: pb::DeliveryState,
) -> pb::Delivery {
    let mut last = None;
    for _ in 0..300 {
        let delivery = messaging
            .get_delivery(pb::GetDeliveryRequest {
                delivery_id: id.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .delivery
            .unwrap();
        if delivery.state() == state {
            return delivery;
        }
        last = Some(delivery);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the delivery never became {state:?}: {last:?}");
}

fn retry_keys(line: &FakeLine) -> Vec<String> {
    line.requests()
        .iter()
        .filter(|r| r.path == NARROWCAST)
        .map(|r| r.headers["x-line-retry-key"].to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_narrowcast_is_accepted_then_followed_until_line_says_succeeded() {
    let line = FakeLine::start().await;
    line.script(NARROWCAST, 202, &[("x-line-request-id", "nc-req-1")], "{}");
    line.script(PROGRESS, 200, &[], &progress("waiting", json!({})));
    line.script(
        PROGRESS,
        200,
        &[],
        &progress("sending", json!({"targetCount": 1200})),
    );
    line.script(
        PROGRESS,
        200,
        &[],
        &progress(
            "succeeded",
            json!({"successCount": 1180, "failureCount": 20, "targetCount": 1200,
                   "completedTime": "2026-12-03T10:25:30.121Z"}),
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await.id;
    let mut messaging = app.messaging().await;

    let accepted = messaging
        .narrowcast(request(&channel))
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(accepted.route(), pb::Route::Narrowcast);
    assert!(
        matches!(
            accepted.state(),
            pb::DeliveryState::Accepted | pb::DeliveryState::Delivered
        ),
        "{accepted:?}"
    );
    assert_eq!(accepted.line_request_id, "nc-req-1");
    assert_eq!(accepted.narrowcast.as_ref().unwrap().request_id, "nc-req-1");
    assert!(uuid::Uuid::parse_str(&accepted.retry_key).is_ok());

    let sent = line
        .requests()
        .into_iter()
        .find(|r| r.path == NARROWCAST)
        .unwrap();
    assert_eq!(sent.method, "POST");
    assert_eq!(
        sent.headers["x-line-retry-key"],
        accepted.retry_key.as_str()
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&sent.body).unwrap(),
        line_body()
    );

    let done = until_state(&mut messaging, &accepted.id, pb::DeliveryState::Delivered).await;
    let progress = done.narrowcast.unwrap();
    assert_eq!(progress.phase(), pb::NarrowcastPhase::Succeeded);
    assert_eq!(progress.success_count, Some(1180));
    assert_eq!(progress.failure_count, Some(20));
    assert_eq!(progress.target_count, Some(1200));
    assert_eq!(progress.accepted_time.unwrap().seconds, 1_796_292_930);
    assert_eq!(progress.completed_time.unwrap().seconds, 1_796_293_530);
    assert!(progress.check_time.is_some());
    assert!(progress.next_check_time.is_none(), "no more reads");
    assert!(done.error.is_none());
    let reads: Vec<String> = line
        .requests()
        .iter()
        .filter(|r| r.path.starts_with(PROGRESS))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(reads, vec![format!("{PROGRESS}?requestId=nc-req-1"); 3]);
    assert_eq!(retry_keys(&line).len(), 1, "sent once");

    // Its records on the log: accepted as queued, and the final one with
    // LINE's counts, once LINE said succeeded.
    let mut stream = subscribe(
        &app,
        pb::SubscribeRequest {
            event_types: vec![pb::EventType::Outbound as i32],
            ..from_earliest()
        },
    )
    .await;
    let records: Vec<pb::OutboundMessage> = next_events(&mut stream, 2, Duration::from_secs(5))
        .await
        .into_iter()
        .map(|event| match event.payload {
            Some(pb::event::Payload::Outbound(outbound)) => outbound,
            other => panic!("{other:?}"),
        })
        .collect();
    let queued = records[0].delivery.as_ref().unwrap();
    assert_eq!(queued.state(), pb::DeliveryState::Queued);
    assert_eq!(queued.route(), pb::Route::Narrowcast);
    assert_eq!(records[0].messages, [text_message("Spring sale")]);
    let last = records[1].delivery.as_ref().unwrap();
    assert_eq!(last.state(), pb::DeliveryState::Delivered);
    assert_eq!(
        last.narrowcast.as_ref().unwrap().phase(),
        pb::NarrowcastPhase::Succeeded
    );
    assert_eq!(records[1].quota_consumed, 1180, "what LINE sent");
    support::assert_no_event(&mut stream, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_narrowcast_line_reports_failed_is_failed_with_lines_code() {
    let line = FakeLine::start().await;
    line.script(NARROWCAST, 202, &[("x-line-request-id", "nc-req-2")], "{}");
    line.script(
        PROGRESS,
        200,
        &[],
        &progress(
            "failed",
            json!({"errorCode": 2, "failedDescription": "Not enough recipients",
                   "completedTime": "2026-12-03T10:16:00.000Z"}),
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await.id;
    let mut messaging = app.messaging().await;
    let mut sale = request(&channel);
    sale.idempotency_key = "spring-1".into();
    let accepted = messaging
        .narrowcast(sale.clone())
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();

    let failed = until_state(&mut messaging, &accepted.id, pb::DeliveryState::Failed).await;
    let progress = failed.narrowcast.as_ref().unwrap();
    assert_eq!(progress.phase(), pb::NarrowcastPhase::Failed);
    assert_eq!(progress.error_code, 2);
    assert_eq!(progress.failed_description, "Not enough recipients");
    let error = failed.error.unwrap();
    assert!(
        error.message.contains("error code 2") && error.message.contains("Not enough recipients"),
        "{error:?}"
    );

    // The same request again names that narrowcast, and its failure.
    let again = messaging.narrowcast(sale).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    assert!(again.message().contains(&accepted.id));
    assert_eq!(retry_keys(&line).len(), 1, "nothing sent twice");
}

#[tokio::test]
async fn lines_errors_and_bad_fields() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await.id;
    let mut messaging = app.messaging().await;

    // 400 with details: failed, LINE's properties named.
    line.script(
        NARROWCAST,
        400,
        &[],
        r#"{"message":"The request body has 1 error(s)","details":[{"message":"audience not found","property":"recipient.and[0].audienceGroupId"}]}"#,
    );
    let refused = messaging.narrowcast(request(&channel)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields: Vec<String> = refused
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["recipient.and[0].audienceGroupId"]);

    // 403: too small a reach for a filter.
    line.script(
        NARROWCAST,
        403,
        &[],
        r#"{"message":"Access to this API is not available for your account"}"#,
    );
    let denied = messaging.narrowcast(request(&channel)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // 429: the rate limit is waited out with the same retry key.
    line.script(
        NARROWCAST,
        429,
        &[("retry-after", "1")],
        r#"{"message":"The API rate limit has been exceeded. Try again later."}"#,
    );
    line.script(NARROWCAST, 202, &[("x-line-request-id", "nc-req-3")], "{}");
    // 404 from the progress endpoint: LINE no longer knows the request.
    line.script(PROGRESS, 404, &[], r#"{"message":"Not found"}"#);
    let before = retry_keys(&line).len();
    let accepted = messaging
        .narrowcast(request(&channel))
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(accepted.line_request_id, "nc-req-3");
    let keys = retry_keys(&line);
    assert_eq!(keys.len(), before + 2);
    assert_eq!(keys[before], keys[before + 1], "one retry key");
    let unknown = until_state(&mut messaging, &accepted.id, pb::DeliveryState::Unknown).await;
    assert_eq!(unknown.error.unwrap().http_status, 404);

    // Refused before LINE is asked.
    let sent = line.requests().len();
    let check = |request: pb::NarrowcastRequest| {
        let mut messaging = messaging.clone();
        async move {
            let status = messaging.narrowcast(request).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument);
            status
                .get_error_details()
                .bad_request()
                .map(|b| {
                    b.field_violations
                        .iter()
                        .map(|v| v.field.clone())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        }
    };
    let nobody = pb::NarrowcastRequest {
        recipient: None,
        filter: None,
        ..request(&channel)
    };
    assert_eq!(check(nobody).await, ["recipient"]);
    let bad = pb::NarrowcastRequest {
        recipient: Some(pb::NarrowcastRecipient {
            recipient: Some(Recipient::AnyOf(pb::NarrowcastRecipients::default())),
        }),
        filter: Some(filter(Filter::Age(pb::AgeRange {
            min_age: 21,
            below_age: 0,
        }))),
        limit: Some(pb::NarrowcastLimit {
            forbid_partial_delivery: true,
            ..Default::default()
        }),
        ..request(&channel)
    };
    assert_eq!(
        check(bad).await,
        [
            "recipient.any_of.recipients",
            "filter.age.min_age",
            "limit.forbid_partial_delivery"
        ]
    );
    let mut deep = filter(Filter::Gender(pb::GenderFilter {
        genders: vec![pb::Gender::Female as i32],
    }));
    for _ in 0..10 {
        deep = filter(Filter::Negated(Box::new(deep)));
    }
    let deep = pb::NarrowcastRequest {
        filter: Some(deep),
        recipient: None,
        ..request(&channel)
    };
    let fields = check(deep).await;
    assert_eq!(fields.len(), 1);
    assert!(fields[0].ends_with(".negated"), "{fields:?}");
    assert_eq!(line.requests().len(), sent, "nothing reached LINE");
}

#[tokio::test]
async fn a_narrowcast_cut_off_by_a_restart_resumes_with_its_retry_key() {
    let line = FakeLine::start().await;
    // LINE takes the first request, but its answer is lost (the
    // connection drops); LINE is then down until after the restart.
    line.script(NARROWCAST, 0, &[], "");
    for _ in 0..200 {
        line.script(NARROWCAST, 503, &[], "");
    }
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await.id;
    let mut sale = request(&channel);
    sale.idempotency_key = "spring-restart".into();
    let pending = tokio::spawn({
        let mut messaging = app.messaging().await;
        let sale = sale.clone();
        async move { messaging.narrowcast(sale).await }
    });
    for _ in 0..300 {
        if retry_keys(&line).len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.stop().await.unwrap();
    let _ = pending.await;
    assert!(retry_keys(&line).len() >= 2, "cut off mid-send");

    // After the restart LINE answers 409: the first request was accepted.
    let line2 = FakeLine::start().await;
    line2.script(
        NARROWCAST,
        409,
        &[("x-line-accepted-request-id", "nc-first")],
        r#"{"message":"The retry key is already accepted"}"#,
    );
    line2.script(PROGRESS, 200, &[], &progress("sending", json!({})));
    line2.script(
        PROGRESS,
        200,
        &[],
        &progress(
            "succeeded",
            json!({"successCount": 50, "failureCount": 0, "targetCount": 50}),
        ),
    );
    let app = start(dir.path(), &line2).await;
    let mut messaging = app.messaging().await;
    let again = messaging.narrowcast(sale).await.unwrap().into_inner();
    let id = again.delivery.unwrap().id;
    let done = until_state(&mut messaging, &id, pb::DeliveryState::Delivered).await;
    assert_eq!(done.accepted_request_id, "nc-first");
    assert_eq!(done.narrowcast.unwrap().request_id, "nc-first");
    let mut keys = retry_keys(&line);
    keys.extend(retry_keys(&line2));
    keys.dedup();
    assert_eq!(keys, [done.retry_key], "one retry key across the restart");
    assert!(
        line2
            .requests()
            .iter()
            .any(|r| r.path == format!("{PROGRESS}?requestId=nc-first")),
        "the accepted request's progress is read"
    );
}

#[tokio::test]
async fn a_restart_while_following_takes_the_progress_up_again() {
    let line = FakeLine::start().await;
    line.script(NARROWCAST, 202, &[("x-line-request-id", "nc-req-4")], "{}");
    for _ in 0..3 {
        line.script(PROGRESS, 200, &[], &progress("waiting", json!({})));
    }
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await.id;
    let mut messaging = app.messaging().await;
    let accepted = messaging
        .narrowcast(request(&channel))
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(accepted.state(), pb::DeliveryState::Accepted);
    let reads = |line: &FakeLine| {
        line.requests()
            .iter()
            .filter(|r| r.path.starts_with(PROGRESS))
            .count()
    };
    for _ in 0..300 {
        if reads(&line) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.stop().await.unwrap();
    assert!(reads(&line) >= 1);

    // The restarted service asks again without being asked to.
    for _ in 0..3 {
        line.script(PROGRESS, 200, &[], &progress("waiting", json!({})));
    }
    line.script(
        PROGRESS,
        200,
        &[],
        &progress("succeeded", json!({"successCount": 120})),
    );
    let app = start(dir.path(), &line).await;
    let mut messaging = app.messaging().await;
    let done = until_state(&mut messaging, &accepted.id, pb::DeliveryState::Delivered).await;
    assert_eq!(done.narrowcast.unwrap().success_count, Some(120));
    assert_eq!(retry_keys(&line).len(), 1, "sent once");
}
