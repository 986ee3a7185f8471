//! The one LINE → gRPC status table, pinned over the wire for a lookup
//! (GetProfile) and for a send (Push), and the contract promises that
//! table fixed: a refused reply token is FAILED_PRECONDITION, content LINE
//! does not hold is FAILED_PRECONDITION without asking LINE, content LINE
//! still prepares is UNAVAILABLE with RetryInfo, every request made counts
//! as an attempt, and a queued send shows why it waits.

mod support;

use std::time::Duration;

use line_adapter::proto::v1 as pb;
use support::{
    SECRET, TestApp, create_channel_with_token, fake_line::FakeLine, post_webhook, start_with_line,
    test_settings, text_message, text_push, to_user,
};
use tonic::Code;
use tonic_types::StatusExt as _;

const USER: &str = "U4af4980629aaaaaaaaaaaaaaaaaaaaaaaa";
const PROFILE: &str = "/v2/bot/profile/U4af4980629aaaaaaaaaaaaaaaaaaaaaaaa";
const PUSH: &str = "/v2/bot/message/push";

/// (what LINE answers, its body, the code a call gets).
fn table() -> Vec<(u16, &'static str, Code)> {
    vec![
        (
            400,
            r#"{"message":"The request body has 1 error(s)","details":[{"message":"invalid","property":"to"}]}"#,
            Code::InvalidArgument,
        ),
        (
            401,
            r#"{"message":"Authentication failed"}"#,
            Code::FailedPrecondition,
        ),
        (
            403,
            r#"{"message":"Access to this API is not available for your account"}"#,
            Code::PermissionDenied,
        ),
        (404, r#"{"message":"Not found"}"#, Code::NotFound),
        (409, r#"{"message":"Conflict"}"#, Code::FailedPrecondition),
        (410, r#"{"message":"Gone"}"#, Code::NotFound),
        (
            429,
            r#"{"message":"You have reached your monthly limit."}"#,
            Code::ResourceExhausted,
        ),
    ]
}

fn profile(channel: &pb::Channel) -> pb::GetProfileRequest {
    pb::GetProfileRequest {
        channel_id: channel.id.clone(),
        user_id: USER.into(),
    }
}

#[tokio::test]
async fn lookups_map_lines_answers_by_the_one_table() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;

    for (status, body, code) in table() {
        line.script(PROFILE, status, &[], body);
        let err = messaging.get_profile(profile(&channel)).await.unwrap_err();
        assert_eq!(err.code(), code, "LINE {status}: {err:?}");
        assert!(
            err.message().contains(&status.to_string()),
            "{}",
            err.message()
        );
        if status == 400 {
            let violations = err.get_details_bad_request().unwrap().field_violations;
            assert_eq!(violations[0].field, "to");
        }
        if status == 429 {
            assert!(err.get_details_quota_failure().is_some(), "{err:?}");
        }
    }

    // The rate limit: RESOURCE_EXHAUSTED with LINE's Retry-After.
    line.script(
        PROFILE,
        429,
        &[("retry-after", "7")],
        r#"{"message":"The API rate limit has been exceeded. Try again later."}"#,
    );
    let err = messaging.get_profile(profile(&channel)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let retry = err.get_details_retry_info().expect("RetryInfo");
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(7)));

    // 5xx: one retry (an idempotent read), then UNAVAILABLE.
    let before = line.requests().len();
    line.script(PROFILE, 503, &[], "");
    line.script(PROFILE, 503, &[], "");
    let err = messaging.get_profile(profile(&channel)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(line.requests().len() - before, 2, "tried twice");

    // A 401 is retried once with the channel's token as stored, and with
    // no other token it stays FAILED_PRECONDITION naming what to do.
    line.script(PROFILE, 401, &[], r#"{"message":"Authentication failed"}"#);
    let err = messaging.get_profile(profile(&channel)).await.unwrap_err();
    assert!(err.message().contains("UpdateChannel"), "{}", err.message());
}

#[tokio::test]
async fn a_lookup_that_times_out_is_unavailable_naming_the_wait() {
    let url = support::silent_line().await;
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(test_settings(dir.path(), |layer| {
        layer.line_api_base = Some(url.clone());
        layer.line_data_api_base = Some(url.clone());
        layer.line_request_timeout_ms = Some(300);
    }))
    .await;
    let channel = create_channel_with_token(&app).await;
    let err = app
        .messaging()
        .await
        .get_profile(profile(&channel))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("300 ms"), "{}", err.message());

    // A push that times out may have reached LINE: it waits (QUEUED) for
    // another try with its retry key, and shows why.
    let delivery = app
        .messaging()
        .await
        .push(text_push(&channel.id, USER, "hello"))
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    // Answered after its wait, between two tries (QUEUED) or during a
    // later one (SENDING): never final.
    assert!(
        matches!(
            delivery.state(),
            pb::DeliveryState::Queued | pb::DeliveryState::Sending
        ),
        "{delivery:?}"
    );
    assert!(delivery.attempts >= 1, "{delivery:?}");
    let error = delivery.error.expect("a waiting send shows its last error");
    assert_eq!(error.http_status, 0, "no answer from LINE: {error:?}");
    assert!(error.message.contains("did not answer"), "{error:?}");
    // Between tries it waits QUEUED, and GetDelivery shows why.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let got = loop {
        let got = app
            .messaging()
            .await
            .get_delivery(pb::GetDeliveryRequest {
                delivery_id: delivery.id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .delivery
            .unwrap();
        if got.state() == pb::DeliveryState::Queued {
            break got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never QUEUED between tries: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(got.error.is_some(), "GetDelivery shows it too: {got:?}");
}

#[tokio::test]
async fn sends_map_lines_answers_by_the_same_table() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;

    for (status, body, code) in table() {
        line.script(PUSH, status, &[], body);
        let err = messaging
            .push(text_push(&channel.id, USER, &format!("for {status}")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "LINE {status}: {err:?}");
        assert!(
            err.message().contains(&status.to_string()),
            "{}",
            err.message()
        );
    }

    // Rate limit and 5xx: retried with the same retry key, then delivered.
    for (status, headers, body) in [
        (
            429,
            vec![("retry-after", "1")],
            r#"{"message":"The API rate limit has been exceeded. Try again later."}"#,
        ),
        (500, vec![], r#"{"message":"Internal error"}"#),
    ] {
        line.script(PUSH, status, &headers, body);
        line.script(
            PUSH,
            200,
            &[],
            r#"{"sentMessages":[{"id":"1","quoteToken":"q"}]}"#,
        );
        let delivery = messaging
            .push(text_push(&channel.id, USER, &format!("retry {status}")))
            .await
            .unwrap()
            .into_inner()
            .delivery
            .unwrap();
        assert_eq!(
            delivery.state(),
            pb::DeliveryState::Delivered,
            "{delivery:?}"
        );
        assert_eq!(delivery.attempts, 2, "{delivery:?}");
        assert!(delivery.error.is_none(), "{delivery:?}");
        let keys: Vec<_> = line
            .requests()
            .iter()
            .rev()
            .take(2)
            .map(|r| r.headers["x-line-retry-key"].clone())
            .collect();
        assert_eq!(keys[0], keys[1], "one retry key for both attempts");
    }
}

#[tokio::test]
async fn a_request_after_a_renewed_token_counts_as_an_attempt() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    // A channel whose short-lived tokens the service issues itself.
    for token in ["issued-1", "issued-2"] {
        line.script(
            "/v2/oauth/accessToken",
            200,
            &[],
            &format!(r#"{{"access_token":"{token}","expires_in":2592000,"token_type":"Bearer"}}"#),
        );
    }
    let channel = support::create_channel(&app, "1234567890").await;
    line.script(PUSH, 401, &[], r#"{"message":"Authentication failed"}"#);
    line.script(PUSH, 200, &[], r#"{"sentMessages":[]}"#);
    let delivery = app
        .messaging()
        .await
        .push(text_push(&channel.id, USER, "hi"))
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(
        delivery.state(),
        pb::DeliveryState::Delivered,
        "{delivery:?}"
    );
    assert_eq!(delivery.attempts, 2, "both requests to LINE count");
    let pushes: Vec<_> = line
        .requests()
        .into_iter()
        .filter(|r| r.path == PUSH)
        .map(|r| r.headers["authorization"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(pushes, ["Bearer issued-1", "Bearer issued-2"]);
}

#[tokio::test]
async fn a_refused_reply_token_without_a_push_is_a_failed_precondition() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    line.script(
        "/v2/bot/message/reply",
        400,
        &[],
        r#"{"message":"Invalid reply token"}"#,
    );
    let err = app
        .messaging()
        .await
        .reply(pb::ReplyRequest {
            channel_id: channel.id.clone(),
            reply_token: "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA".into(),
            messages: vec![text_message("late")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("Invalid reply token"), "{err:?}");
    let _ = to_user(USER);
}

async fn post(app: &TestApp, channel: &pb::Channel, events: serde_json::Value) {
    let body =
        serde_json::to_vec(&serde_json::json!({"destination": "U0", "events": events})).unwrap();
    let response = post_webhook(&reqwest::Client::new(), app, &channel.id, SECRET, &body).await;
    assert_eq!(response.status(), 200);
}

fn message_event(id: &str, message: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "type": "message", "mode": "active", "timestamp": 1_700_000_000_000_i64,
        "source": {"type": "user", "userId": USER}, "webhookEventId": format!("ev-{id}"),
        "deliveryContext": {"isRedelivery": false}, "replyToken": format!("r-{id}"),
        "message": message
    })
}

async fn content_error(app: &TestApp, channel: &pb::Channel, id: &str) -> tonic::Status {
    let result = app
        .messaging()
        .await
        .get_message_content(pb::GetMessageContentRequest {
            channel_id: channel.id.clone(),
            message_id: id.into(),
            preview: false,
        })
        .await;
    match result {
        Ok(mut stream) => match stream.get_mut().message().await {
            Err(status) => status,
            Ok(part) => panic!("content of {id} was served: {part:?}"),
        },
        Err(status) => status,
    }
}

#[tokio::test]
async fn content_line_does_not_hold_or_still_prepares_is_said_so() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    post(
        &app,
        &channel,
        serde_json::json!([
            message_event(
                "3001",
                serde_json::json!({"id": "3001", "type": "text", "text": "hi"})
            ),
            message_event(
                "3002",
                serde_json::json!({"id": "3002", "type": "image", "contentProvider": {
                    "type": "external",
                    "originalContentUrl": "https://example.com/a.jpg",
                    "previewImageUrl": "https://example.com/a-preview.jpg"
                }})
            ),
        ]),
    )
    .await;
    for (id, why) in [("3001", "no media"), ("3002", "EXTERNAL")] {
        let err = content_error(&app, &channel, id).await;
        assert_eq!(err.code(), Code::FailedPrecondition, "{id}: {err:?}");
        assert!(err.message().contains(why), "{}", err.message());
    }
    let asked: Vec<_> = line
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/content"))
        .collect();
    assert!(asked.is_empty(), "LINE was asked: {asked:?}");

    // A message this service never saw, which LINE still prepares.
    line.script("/v2/bot/message/4001/content", 202, &[], "");
    let err = content_error(&app, &channel, "4001").await;
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.get_details_retry_info().is_some(), "{err:?}");

    // The rate limit on content, as everywhere: with LINE's Retry-After.
    line.script(
        "/v2/bot/message/4002/content",
        429,
        &[("retry-after", "3")],
        r#"{"message":"The API rate limit has been exceeded. Try again later."}"#,
    );
    let err = content_error(&app, &channel, "4002").await;
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let retry = err.get_details_retry_info().expect("RetryInfo");
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(3)));
}

#[tokio::test]
async fn a_webhook_check_without_a_public_base_url_says_so() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    line.script(
        "/v2/bot/channel/webhook/endpoint",
        200,
        &[],
        r#"{"endpoint":"https://example.com/webhook","active":true}"#,
    );
    let got = app
        .admin()
        .await
        .get_channel(pb::GetChannelRequest {
            channel_id: channel.id.clone(),
            check_webhook: true,
        })
        .await
        .unwrap()
        .into_inner();
    let check = got.webhook_check.expect("a webhook check");
    assert_eq!(check.expected_url, "", "{check:?}");
    assert!(!check.matches, "{check:?}");
    assert!(
        check.error.contains("LINE_ADAPTER_PUBLIC_BASE_URL"),
        "{check:?}"
    );
    assert_eq!(check.line_endpoint, "https://example.com/webhook");
}

#[tokio::test]
async fn a_reply_that_met_a_5xx_is_never_pushed_after_its_token_is_refused() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    // The first attempt may have delivered the reply (LINE failed after
    // acting on it); the second finds its token used.
    line.script(
        "/v2/bot/message/reply",
        500,
        &[],
        r#"{"message":"Internal error"}"#,
    );
    line.script(
        "/v2/bot/message/reply",
        400,
        &[],
        r#"{"message":"Invalid reply token"}"#,
    );
    let err = app
        .messaging()
        .await
        .reply(pb::ReplyRequest {
            channel_id: channel.id.clone(),
            reply_token: "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA".into(),
            messages: vec![text_message("once")],
            push_fallback_to: to_user(USER),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "unknown: {err:?}");
    let pushes = line
        .requests()
        .into_iter()
        .filter(|r| r.path == PUSH)
        .count();
    assert_eq!(pushes, 0, "a push could have sent the reply twice");
}
