//! The whole conversation on one stream: sends appear on Subscribe as
//! EVENT_TYPE_OUTBOUND records, in one sequence with the inbound events
//! they answer, when accepted (QUEUED) and when final; against the
//! scripted stand-in for LINE, over the wire.

mod support;

use std::time::Duration;

use line_adapter::proto::v1::{self as pb, conversation::Chat, event::Payload};
use support::{
    SECRET, TestApp, assert_no_event, create_channel_with_token, fake_line::FakeLine, next_events,
    post_webhook, start_with_line, subscribe, text_body, text_message, text_push, to_user,
};

const PUSH: &str = "/v2/bot/message/push";
const REPLY: &str = "/v2/bot/message/reply";
const WAIT: Duration = Duration::from_secs(20);

/// A Subscribe stream of one channel from now on, optionally of some types.
async fn live(
    app: &TestApp,
    channel_id: &str,
    types: &[pb::EventType],
) -> tonic::Streaming<pb::SubscribeResponse> {
    subscribe(
        app,
        pb::SubscribeRequest {
            channel_ids: vec![channel_id.into()],
            event_types: types.iter().map(|t| *t as i32).collect(),
            ..Default::default()
        },
    )
    .await
}

fn outbound(event: &pb::Event) -> &pb::OutboundMessage {
    assert_eq!(event.r#type(), pb::EventType::Outbound, "{event:?}");
    assert_eq!(event.type_name, "line-adapter/outbound");
    match &event.payload {
        Some(Payload::Outbound(outbound)) => outbound,
        other => panic!("an outbound record has the outbound payload, not {other:?}"),
    }
}

fn delivery(event: &pb::Event) -> &pb::Delivery {
    outbound(event)
        .delivery
        .as_ref()
        .expect("a record carries its delivery")
}

fn json(event: &pb::Event) -> serde_json::Value {
    serde_json::from_str(&event.json).expect("Event.json of a record is JSON")
}

#[tokio::test]
async fn a_reply_follows_the_message_it_answers_queued_then_delivered() {
    let line = FakeLine::start().await;
    line.script(
        REPLY,
        200,
        &[("x-line-request-id", "req-reply-1")],
        r#"{"sentMessages":[{"id":"5001","quoteToken":"qt-1"}]}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut stream = live(&app, &channel.id, &[]).await;

    let client = reqwest::Client::new();
    let body = text_body("conv", 1, "Ucustomer");
    assert_eq!(
        post_webhook(&client, &app, &channel.id, SECRET, &body)
            .await
            .status(),
        200
    );
    let sent = app
        .messaging()
        .await
        .send(pb::SendRequest {
            channel_id: channel.id.clone(),
            conversation: to_user("Ucustomer"),
            messages: vec![text_message("Thanks, we are on it")],
            idempotency_key: "agent-7-msg-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sent.route(), pb::Route::Reply);
    let sent = sent.delivery.unwrap();

    let events = next_events(&mut stream, 3, WAIT).await;
    let (inbound, queued, done) = (&events[0], &events[1], &events[2]);
    assert_eq!(inbound.r#type(), pb::EventType::Message);
    assert_eq!(queued.sequence, inbound.sequence + 1, "one sequence");
    assert_eq!(done.sequence, queued.sequence + 1);

    for record in [queued, done] {
        assert_eq!(record.channel_id, channel.id);
        let source = record.source.as_ref().expect("the chat of a reply");
        assert_eq!(source.r#type(), pb::SourceType::User);
        assert_eq!(source.user_id, "Ucustomer");
        assert!(record.webhook_event_id.is_empty());
        let out = outbound(record);
        assert_eq!(out.recipient_count, 1);
        assert_eq!(out.messages, vec![text_message("Thanks, we are on it")]);
        let messages: serde_json::Value = serde_json::from_str(&out.messages_json).unwrap();
        assert_eq!(
            messages,
            serde_json::json!([{"type": "text", "text": "Thanks, we are on it"}])
        );
        let shown = delivery(record);
        assert_eq!(shown.id, sent.id);
        assert_eq!(shown.idempotency_key, "agent-7-msg-1");
        assert_eq!(shown.route(), pb::Route::Reply);
        assert_eq!(shown.reply_webhook_event_id, "conv-0");
    }
    assert_eq!(delivery(queued).state(), pb::DeliveryState::Queued);
    assert_eq!(delivery(queued).attempts, 0);
    assert_eq!(delivery(done).state(), pb::DeliveryState::Delivered);
    assert_eq!(delivery(done).attempts, 1);
    assert_eq!(delivery(done).line_request_id, "req-reply-1");
    assert_eq!(delivery(done).sent_messages[0].id, "5001");
    assert_eq!(outbound(done).quota_consumed, 0, "replies are free");
    assert_eq!(json(done)["state"], "delivered");
    assert_eq!(json(done)["deliveryId"], sent.id.as_str());
    assert_eq!(json(done)["messages"][0]["text"], "Thanks, we are on it");
    assert_eq!(json(queued)["state"], "queued");

    // What the final record shows is what GetDelivery shows.
    let fetched = app
        .messaging()
        .await
        .get_delivery(pb::GetDeliveryRequest {
            delivery_id: sent.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(&fetched, delivery(done));

    // An idempotent repeat adds nothing to the log.
    let again = app
        .messaging()
        .await
        .send(pb::SendRequest {
            channel_id: channel.id.clone(),
            conversation: to_user("Ucustomer"),
            messages: vec![text_message("Thanks, we are on it")],
            idempotency_key: "agent-7-msg-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.delivery.unwrap().id, sent.id);
    assert_no_event(&mut stream, Duration::from_millis(300)).await;
    assert_eq!(line.requests().len(), 1, "sent once");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_refused_push_ends_failed_with_lines_message() {
    let line = FakeLine::start().await;
    line.script(
        PUSH,
        400,
        &[("x-line-request-id", "req-bad")],
        r#"{"message":"The request body has 1 error(s)","details":[{"message":"Length must be between 0 and 5000","property":"messages[0].text"}]}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut stream = live(&app, &channel.id, &[pb::EventType::Outbound]).await;

    let status = app
        .messaging()
        .await
        .push(text_push(&channel.id, "U1", "hello"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    let events = next_events(&mut stream, 2, WAIT).await;
    assert_eq!(delivery(&events[0]).state(), pb::DeliveryState::Queued);
    let failed = delivery(&events[1]);
    assert_eq!(failed.state(), pb::DeliveryState::Failed);
    assert_eq!(failed.route(), pb::Route::Push);
    let error = failed
        .error
        .as_ref()
        .expect("LINE's error is on the record");
    assert_eq!(error.http_status, 400);
    assert_eq!(error.message, "The request body has 1 error(s)");
    assert_eq!(error.details[0].property, "messages[0].text");
    assert_eq!(error.request_id, "req-bad");
    assert_eq!(outbound(&events[1]).quota_consumed, 0, "nothing was sent");
    assert_eq!(json(&events[1])["error"]["httpStatus"], 400);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_refused_reply_token_is_recorded_as_a_push_fallback() {
    let line = FakeLine::start().await;
    line.script(REPLY, 400, &[], r#"{"message":"Invalid reply token"}"#);
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut stream = live(&app, &channel.id, &[pb::EventType::Outbound]).await;

    let reply = app
        .messaging()
        .await
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
    assert!(reply.fell_back_to_push);

    let events = next_events(&mut stream, 2, WAIT).await;
    let queued = delivery(&events[0]);
    assert_eq!(queued.route(), pb::Route::Reply, "accepted as a reply");
    assert!(!queued.fell_back_to_push);
    let done = delivery(&events[1]);
    assert_eq!(done.state(), pb::DeliveryState::Delivered);
    assert_eq!(done.route(), pb::Route::Push);
    assert!(done.fell_back_to_push);
    assert_eq!(done.attempts, 2, "the refused reply and the push");
    assert_eq!(outbound(&events[1]).quota_consumed, 1, "a push counts");
    assert_eq!(json(&events[1])["fellBackToPush"], true);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn every_route_is_recorded_and_filters_apply() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut all = live(&app, &channel.id, &[]).await;
    // Only one chat: the group's records, not the multicast's or another
    // chat's.
    let mut group_only = subscribe(
        &app,
        pb::SubscribeRequest {
            conversation_ids: vec!["Cgroup".into()],
            ..Default::default()
        },
    )
    .await;
    // Only inbound messages: records do not reach it.
    let mut messages_only = live(&app, &channel.id, &[pb::EventType::Message]).await;
    let mut messaging = app.messaging().await;

    messaging
        .push(pb::PushRequest {
            channel_id: channel.id.clone(),
            to: Some(pb::Conversation {
                chat: Some(Chat::GroupId("Cgroup".into())),
            }),
            messages: vec![text_message("to the group")],
            ..Default::default()
        })
        .await
        .unwrap();
    messaging
        .multicast(pb::MulticastRequest {
            channel_id: channel.id.clone(),
            to: vec!["U1".into(), "U2".into(), "U3".into()],
            messages: vec![text_message("to three")],
            ..Default::default()
        })
        .await
        .unwrap();
    messaging
        .broadcast(pb::BroadcastRequest {
            channel_id: channel.id.clone(),
            messages: vec![text_message("to all")],
            ..Default::default()
        })
        .await
        .unwrap();

    let events = next_events(&mut all, 6, WAIT).await;
    let finals: Vec<_> = events
        .iter()
        .filter(|e| delivery(e).state() == pb::DeliveryState::Delivered)
        .collect();
    assert_eq!(finals.len(), 3);
    let routes: Vec<_> = finals.iter().map(|e| delivery(e).route()).collect();
    assert_eq!(
        routes,
        [pb::Route::Push, pb::Route::Multicast, pb::Route::Broadcast]
    );
    let counts: Vec<_> = finals
        .iter()
        .map(|e| (outbound(e).recipient_count, outbound(e).quota_consumed))
        .collect();
    assert_eq!(counts, [(1, 1), (3, 3), (0, 0)]);
    assert_eq!(finals[0].source.as_ref().unwrap().group_id, "Cgroup");
    assert!(finals[1].source.is_none(), "a multicast has no one chat");

    let group = next_events(&mut group_only, 2, WAIT).await;
    for event in &group {
        assert_eq!(delivery(event).route(), pb::Route::Push);
    }
    assert_no_event(&mut group_only, Duration::from_millis(300)).await;
    assert_no_event(&mut messages_only, Duration::from_millis(300)).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_send_cut_off_by_a_restart_gets_one_final_record() {
    // LINE asks the first attempt to wait 2 s (429), so the push is
    // queued for a retry; the service stops meanwhile and the next start
    // finishes it.
    let line = FakeLine::start().await;
    line.script(
        PUSH,
        429,
        &[("retry-after", "2")],
        r#"{"message":"The API rate limit has been exceeded. Try again later."}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let settings = support::test_settings(dir.path(), |layer| {
        layer.line_api_base = Some(line.url());
        layer.line_data_api_base = Some(line.url());
    });
    let app = TestApp::start_with(settings.clone()).await;
    let channel = create_channel_with_token(&app).await;
    let mut stream = live(&app, &channel.id, &[pb::EventType::Outbound]).await;
    let mut request = text_push(&channel.id, "U1", "hello");
    request.idempotency_key = "cut-off".into();
    // Answered with the delivery still queued (it waits longer than the
    // RPC does only if LINE is slow; either way its id is what counts).
    let first = tokio::spawn({
        let mut messaging = app.messaging().await;
        async move { messaging.push(request).await }
    });
    let events = next_events(&mut stream, 1, WAIT).await;
    assert_eq!(delivery(&events[0]).state(), pb::DeliveryState::Queued);
    // Wait for the 429, then stop before the retry.
    tokio::time::timeout(WAIT, async {
        while line.requests().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    drop(stream);
    app.stop().await.unwrap();
    let first = first
        .await
        .unwrap()
        .expect("the push was accepted")
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(
        first.state(),
        pb::DeliveryState::Queued,
        "stopped before its retry"
    );

    let app = TestApp::start_with(settings).await;
    let mut stream = subscribe(
        &app,
        pb::SubscribeRequest {
            event_types: vec![pb::EventType::Outbound as i32],
            ..support::from_earliest()
        },
    )
    .await;
    let events = next_events(&mut stream, 2, WAIT).await;
    assert_eq!(delivery(&events[0]).state(), pb::DeliveryState::Queued);
    assert_eq!(delivery(&events[1]).state(), pb::DeliveryState::Delivered);
    assert_eq!(delivery(&events[1]).id, first.id);
    assert_no_event(&mut stream, Duration::from_millis(500)).await;
    let fetched = app
        .messaging()
        .await
        .get_delivery(pb::GetDeliveryRequest {
            delivery_id: first.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(&fetched, delivery(&events[1]));
    app.stop().await.unwrap();
}
