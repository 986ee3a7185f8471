//! Outbound over the wire, against the scripted stand-in for LINE: request
//! lines, headers and bodies; retries with one retry key; 409, 429 and
//! monthly limits; Send's route choice; idempotency; resume after restart.

mod support;

use std::time::Duration;

use line_adapter::proto::v1::{self as pb, conversation::Chat};
use support::{
    SECRET, TOKEN, create_channel_with_token, fake_line::FakeLine, post_webhook, start_with_line,
    text_message, text_push, to_user,
};
use tonic::Code;

const PUSH: &str = "/v2/bot/message/push";
const REPLY: &str = "/v2/bot/message/reply";

fn body(request: &support::fake_line::Recorded) -> serde_json::Value {
    serde_json::from_slice(&request.body).unwrap()
}

#[tokio::test]
async fn push_sends_what_line_documents() {
    let line = FakeLine::start().await;
    line.script(
        PUSH,
        200,
        &[],
        r#"{"sentMessages":[{"id":"461230966842064897","quoteToken":"IStG5h1Tz7b"}]}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;

    let mut request = text_push(&channel.id, "U4af4980629", "Hello, world");
    request.notification_disabled = true;
    let delivery = app
        .messaging()
        .await
        .push(request)
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(delivery.state(), pb::DeliveryState::Delivered);
    assert_eq!(delivery.route(), pb::Route::Push);
    assert_eq!(delivery.attempts, 1);
    assert_eq!(delivery.sent_messages[0].id, "461230966842064897");
    assert_eq!(delivery.sent_messages[0].quote_token, "IStG5h1Tz7b");
    assert!(!delivery.line_request_id.is_empty());

    let requests = line.requests();
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, PUSH);
    assert_eq!(sent.headers["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(
        sent.headers["x-line-retry-key"],
        delivery.retry_key.as_str()
    );
    assert!(uuid::Uuid::parse_str(&delivery.retry_key).is_ok());
    assert_eq!(
        body(sent),
        serde_json::json!({
            "to": "U4af4980629",
            "messages": [{"type": "text", "text": "Hello, world"}],
            "notificationDisabled": true
        })
    );

    let fetched = app
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
    assert_eq!(fetched, delivery);
}

#[tokio::test]
async fn retries_reuse_one_retry_key_and_409_means_delivered() {
    let line = FakeLine::start().await;
    line.script(PUSH, 500, &[], r#"{"message":"An error occurred"}"#);
    line.script(PUSH, 503, &[], "");
    line.script(
        PUSH,
        409,
        &[("x-line-accepted-request-id", "acc-42")],
        r#"{"message":"The retry key is already accepted","sentMessages":[{"id":"1"}]}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;

    let delivery = app
        .messaging()
        .await
        .push(text_push(&channel.id, "U1", "hi"))
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(delivery.state(), pb::DeliveryState::Delivered);
    assert_eq!(delivery.attempts, 3);
    assert_eq!(delivery.accepted_request_id, "acc-42");
    let keys: Vec<_> = line
        .requests()
        .iter()
        .map(|r| r.headers["x-line-retry-key"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|k| *k == delivery.retry_key), "{keys:?}");
}

#[tokio::test]
async fn rate_limits_wait_for_retry_after_and_monthly_limits_fail_fast() {
    let line = FakeLine::start().await;
    line.script(
        PUSH,
        429,
        &[("retry-after", "1")],
        r#"{"message":"The API rate limit has been exceeded. Try again later."}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;

    let delivered = messaging
        .push(text_push(&channel.id, "U1", "one"))
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(delivered.state(), pb::DeliveryState::Delivered);
    let requests = line.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests[1].received - requests[0].received >= Duration::from_millis(950),
        "Retry-After: 1 was honoured"
    );

    line.script(
        PUSH,
        429,
        &[],
        r#"{"message":"You have reached your monthly limit."}"#,
    );
    let status = messaging
        .push(text_push(&channel.id, "U1", "two"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("monthly limit"),
        "{}",
        status.message()
    );
    assert_eq!(line.requests().len(), 3, "no retry after the monthly limit");

    line.script(
        PUSH,
        400,
        &[],
        r#"{"message":"The request body has 1 error(s)","details":[{"message":"May not be empty","property":"messages[0].text"}]}"#,
    );
    let status = messaging
        .push(text_push(&channel.id, "U1", "three"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("messages[0].text"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("x-line-request-id"),
        "{}",
        status.message()
    );
    assert_eq!(line.requests().len(), 4);
}

#[tokio::test]
async fn send_replies_with_a_fresh_token_once_then_pushes() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let client = reqwest::Client::new();

    let standby = serde_json::json!({"destination": "U0", "events": [
        {"type": "message", "mode": "standby", "timestamp": 1, "webhookEventId": "sb-1",
         "source": {"type": "user", "userId": "Ustandby"}, "replyToken": "standby-token",
         "deliveryContext": {"isRedelivery": false},
         "message": {"id": "1", "type": "text", "text": "hi", "quoteToken": "q"}},
        {"type": "message", "mode": "active", "timestamp": 2, "webhookEventId": "gr-1",
         "source": {"type": "group", "groupId": "Cgroup", "userId": "Umember"}, "replyToken": "group-token",
         "deliveryContext": {"isRedelivery": false},
         "message": {"id": "2", "type": "text", "text": "hi", "quoteToken": "q"}}
    ]});
    let webhook = serde_json::to_vec(&standby).unwrap();
    assert_eq!(
        post_webhook(&client, &app, &channel.id, SECRET, &webhook)
            .await
            .status(),
        200
    );
    let active = support::text_body("act", 1, "Uactive");
    assert_eq!(
        post_webhook(&client, &app, &channel.id, SECRET, &active)
            .await
            .status(),
        200
    );

    let mut messaging = app.messaging().await;
    let send = |chat: Chat| pb::SendRequest {
        channel_id: channel.id.clone(),
        conversation: Some(pb::Conversation { chat: Some(chat) }),
        messages: vec![text_message("thanks")],
        ..Default::default()
    };

    let first = messaging
        .send(send(Chat::UserId("Uactive".into())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.route(), pb::Route::Reply, "{}", first.route_reason);
    assert!(first.route_reason.contains("free"));
    assert_eq!(
        first.delivery.as_ref().unwrap().reply_webhook_event_id,
        "act-0"
    );
    let second = messaging
        .send(send(Chat::UserId("Uactive".into())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        second.route(),
        pb::Route::Push,
        "the token is used once only"
    );
    let group = messaging
        .send(send(Chat::GroupId("Cgroup".into())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(group.route(), pb::Route::Reply);
    let standby = messaging
        .send(send(Chat::UserId("Ustandby".into())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        standby.route(),
        pb::Route::Push,
        "a standby token is not ours"
    );

    let mut no_push = send(Chat::UserId("Ustandby".into()));
    no_push.allow_push = Some(false);
    let status = messaging.send(no_push).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);

    let requests = line.requests();
    let paths: Vec<_> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, [REPLY, PUSH, REPLY, PUSH]);
    assert_eq!(body(&requests[0])["replyToken"], "reply-act-0");
    assert!(
        requests[0].headers.get("x-line-retry-key").is_none(),
        "replies have no retry key"
    );
    assert_eq!(body(&requests[1])["to"], "Uactive");
    assert_eq!(body(&requests[2])["replyToken"], "group-token");
    assert_eq!(body(&requests[3])["to"], "Ustandby");
}

#[tokio::test]
async fn send_pushes_once_the_chats_reply_token_is_older_than_50_s() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;

    // Uold's token will be 55 s old, Unew's 15 s: LINE's reply tokens
    // live about a minute, and Send uses none older than 50 s.
    let client = reqwest::Client::new();
    let old = support::text_body("old", 1, "Uold");
    let sent = post_webhook(&client, &app, &channel.id, SECRET, &old).await;
    assert_eq!(sent.status(), 200);
    support::pass_time(Duration::from_secs(40)).await;
    let client = reqwest::Client::new();
    let new = support::text_body("new", 1, "Unew");
    let sent = post_webhook(&client, &app, &channel.id, SECRET, &new).await;
    assert_eq!(sent.status(), 200);
    support::pass_time(Duration::from_secs(15)).await;

    let mut messaging = app.messaging().await;
    let send = |user: &str| pb::SendRequest {
        channel_id: channel.id.clone(),
        conversation: to_user(user),
        messages: vec![text_message("thanks")],
        ..Default::default()
    };
    let stale = messaging.send(send("Uold")).await.unwrap().into_inner();
    assert_eq!(stale.route(), pb::Route::Push, "{}", stale.route_reason);
    assert!(
        stale.route_reason.contains("younger than 50 s"),
        "{}",
        stale.route_reason
    );
    let fresh = messaging.send(send("Unew")).await.unwrap().into_inner();
    assert_eq!(fresh.route(), pb::Route::Reply, "{}", fresh.route_reason);
    assert!(
        fresh.route_reason.contains("received 15."),
        "{}",
        fresh.route_reason
    );
    let mut no_push = send("Uold");
    no_push.allow_push = Some(false);
    let status = messaging.send(no_push).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");

    let requests = line.requests();
    let paths: Vec<_> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, [PUSH, REPLY]);
    assert_eq!(body(&requests[0])["to"], "Uold");
    assert_eq!(body(&requests[1])["replyToken"], "reply-new-0");
}

#[tokio::test]
async fn a_rejected_reply_token_falls_back_to_push_when_allowed() {
    let line = FakeLine::start().await;
    line.script(REPLY, 400, &[], r#"{"message":"Invalid reply token"}"#);
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;

    let delivery = messaging
        .reply(pb::ReplyRequest {
            channel_id: channel.id.clone(),
            reply_token: "expired-token".into(),
            messages: vec![text_message("late answer")],
            push_fallback_to: to_user("U9"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(delivery.state(), pb::DeliveryState::Delivered);
    assert_eq!(delivery.route(), pb::Route::Push);
    let requests = line.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(body(&requests[1])["to"], "U9");
    assert!(body(&requests[1]).get("replyToken").is_none());

    let again = messaging
        .reply(pb::ReplyRequest {
            channel_id: channel.id.clone(),
            reply_token: "expired-token".into(),
            messages: vec![text_message("again")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        again.code(),
        Code::FailedPrecondition,
        "a token is used once, ever"
    );
}

#[tokio::test]
async fn idempotency_keys_return_the_same_delivery() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;
    let keyed = |text_: &str| pb::PushRequest {
        idempotency_key: "agent-42-msg-7".into(),
        ..text_push(&channel.id, "U1", text_)
    };
    let first = messaging.push(keyed("hello")).await.unwrap().into_inner();
    let second = messaging.push(keyed("hello")).await.unwrap().into_inner();
    assert_eq!(first.delivery.unwrap().id, second.delivery.unwrap().id);
    assert_eq!(line.requests().len(), 1, "sent once");
    let status = messaging.push(keyed("something else")).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
}

#[tokio::test]
async fn bad_requests_name_the_field_and_send_nothing() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;

    let empty = pb::PushRequest {
        messages: vec![],
        ..text_push(&channel.id, "U1", "x")
    };
    let status = messaging.push(empty).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("messages"),
        "{}",
        status.message()
    );
    let no_target = pb::PushRequest {
        to: None,
        ..text_push(&channel.id, "U1", "x")
    };
    let status = messaging.push(no_target).await.unwrap_err();
    assert!(status.message().contains("to"), "{}", status.message());
    let too_many = pb::MulticastRequest {
        channel_id: channel.id.clone(),
        to: (0..501).map(|i| format!("U{i}")).collect(),
        messages: vec![text_message("x")],
        ..Default::default()
    };
    let status = messaging.multicast(too_many).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let unknown = pb::PushRequest {
        channel_id: "ch_01jd0000000000000000000000".into(),
        ..text_push(&channel.id, "U1", "x")
    };
    assert_eq!(
        messaging.push(unknown).await.unwrap_err().code(),
        Code::NotFound
    );
    assert!(line.requests().is_empty());
}

#[tokio::test]
async fn a_channel_without_a_token_fails_with_a_precondition() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    // No pasted token, and LINE refuses to issue one for its credentials.
    line.script(
        "/v2/oauth/accessToken",
        400,
        &[],
        r#"{"error":"invalid_client","error_description":"invalid client_secret"}"#,
    );
    let app = start_with_line(dir.path(), &line).await;
    let channel = support::create_channel(&app, "1234567890").await;
    let status = app
        .messaging()
        .await
        .push(text_push(&channel.id, "U1", "x"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("access token"),
        "{}",
        status.message()
    );
    let paths: Vec<_> = line.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/v2/oauth/accessToken"], "nothing was pushed");
}

#[tokio::test]
async fn an_unfinished_send_resumes_after_a_restart_with_its_retry_key() {
    let line = FakeLine::start().await;
    for _ in 0..3 {
        line.script(PUSH, 503, &[], "");
    }
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut request = text_push(&channel.id, "U1", "survives");
    request.idempotency_key = "resume-1".into();
    let pending = tokio::spawn({
        let mut messaging = app.messaging().await;
        async move { messaging.push(request).await }
    });
    // Let at least one attempt fail, then stop with the send unfinished.
    for _ in 0..200 {
        if !line.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.stop().await.unwrap();
    let _ = pending.await;
    let attempts_before = line.requests().len();
    assert!(attempts_before >= 1);

    // LINE recovers (the remaining scripted 503s, then 200s); the
    // restarted service finishes the same send.
    let app = start_with_line(dir.path(), &line).await;
    let mut messaging = app.messaging().await;
    let mut delivered = None;
    for _ in 0..200 {
        let again = messaging
            .push(pb::PushRequest {
                idempotency_key: "resume-1".into(),
                ..text_push(&channel.id, "U1", "survives")
            })
            .await;
        if let Ok(response) = again {
            let delivery = response.into_inner().delivery.unwrap();
            if delivery.state() == pb::DeliveryState::Delivered {
                delivered = Some(delivery);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = delivered.expect("delivered after the restart");
    let keys: std::collections::HashSet<_> = line
        .requests()
        .iter()
        .map(|r| r.headers["x-line-retry-key"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 1, "one retry key across the restart");
    assert!(keys.contains(&delivered.retry_key));
}

#[tokio::test]
async fn resets_are_retried_for_pushes_but_make_replies_unknown() {
    let line = FakeLine::start().await;
    line.script(PUSH, 0, &[], "");
    line.script(REPLY, 0, &[], "");
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;

    let pushed = messaging
        .push(text_push(&channel.id, "U1", "after a reset"))
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(pushed.state(), pb::DeliveryState::Delivered);
    assert_eq!(pushed.attempts, 2);
    let keys: Vec<_> = line
        .requests()
        .iter()
        .map(|r| r.headers["x-line-retry-key"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys, [pushed.retry_key.clone(), pushed.retry_key.clone()]);

    // The reply may have reached LINE before the connection broke: it is
    // not sent again, and the caller hears that the outcome is unknown.
    let status = messaging
        .reply(pb::ReplyRequest {
            channel_id: channel.id.clone(),
            reply_token: "token-that-broke".into(),
            messages: vec![text_message("maybe")],
            push_fallback_to: to_user("U1"),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("unknown"), "{}", status.message());
    let replies = line.requests().iter().filter(|r| r.path == REPLY).count();
    assert_eq!(replies, 1, "a reply is never retried blindly");
    assert_eq!(line.requests().len(), 3, "and no fallback push either");
}

#[tokio::test]
async fn validate_messages_asks_line_for_each_route_and_sends_nothing() {
    let line = FakeLine::start().await;
    line.script(
        "/v2/bot/message/validate/narrowcast",
        400,
        &[],
        r#"{"message":"The request body has 1 error(s)","details":[{"message":"Length must be between 0 and 5000","property":"messages[0].text"}]}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;
    let request = |route: pb::Route| pb::ValidateMessagesRequest {
        channel_id: channel.id.clone(),
        route: route as i32,
        messages: vec![text_message("Our shop opens at 10:00")],
    };

    messaging
        .validate_messages(request(pb::Route::Reply))
        .await
        .unwrap();
    let refused = messaging
        .validate_messages(request(pb::Route::Narrowcast))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let details = tonic_types::StatusExt::get_details_bad_request(&refused).unwrap();
    assert_eq!(details.field_violations[0].field, "messages[0].text");
    let unset = messaging
        .validate_messages(request(pb::Route::Unspecified))
        .await
        .unwrap_err();
    assert_eq!(unset.code(), Code::InvalidArgument);
    assert!(unset.message().contains("route"), "{}", unset.message());

    let requests = line.requests();
    let paths: Vec<_> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v2/bot/message/validate/reply",
            "/v2/bot/message/validate/narrowcast"
        ],
        "asked LINE twice, sent nothing"
    );
    assert_eq!(
        body(&requests[0]),
        serde_json::json!({"messages": [{"type": "text", "text": "Our shop opens at 10:00"}]})
    );
}
