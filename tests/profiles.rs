//! Who wrote: after a user's (or group's) first event the service asks
//! LINE who they are, in the background, and appends the answer as an
//! EVENT_TYPE_PROFILE record after the event. Against the scripted
//! stand-in for LINE, over the wire, with lookups on (tests turn them off
//! elsewhere).

mod support;

use std::time::Duration;

use line_adapter::proto::v1::{self as pb, event::Payload};
use support::{
    SECRET, TestApp, assert_no_event, create_channel_with_token, fake_line::FakeLine, next_events,
    post_webhook, subscribe, test_settings,
};

const WAIT: Duration = Duration::from_secs(20);

async fn start(dir: &std::path::Path, line: &str) -> TestApp {
    TestApp::start_with(test_settings(dir, |layer| {
        layer.line_api_base = Some(line.to_owned());
        layer.line_data_api_base = Some(line.to_owned());
        layer.lookup_profiles = Some(true);
    }))
    .await
}

/// A webhook body with one text message from `user`, in `source`
/// (`{"type":"user",…}` or a group or room source).
fn message(id: &str, source: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "destination": "U0123456789abcdef0123456789abcdef",
        "events": [{
            "type": "message", "mode": "active", "timestamp": 1_700_000_000_000_i64,
            "source": source, "webhookEventId": id,
            "deliveryContext": {"isRedelivery": false}, "replyToken": format!("r-{id}"),
            "message": {"id": format!("m-{id}"), "type": "text", "text": "hi", "quoteToken": "q"}
        }]
    }))
    .unwrap()
}

fn user(id: &str) -> serde_json::Value {
    serde_json::json!({"type": "user", "userId": id})
}

fn profile(event: &pb::Event) -> &pb::ProfileUpdate {
    assert_eq!(event.r#type(), pb::EventType::Profile, "{event:?}");
    assert_eq!(event.type_name, "line-adapter/profile");
    match &event.payload {
        Some(Payload::Profile(profile)) => profile,
        other => panic!("a profile record has the profile payload, not {other:?}"),
    }
}

fn lookups(line: &FakeLine, path: &str) -> usize {
    line.requests().iter().filter(|r| r.path == path).count()
}

#[tokio::test]
async fn a_new_users_first_message_is_followed_by_their_profile_once() {
    let line = FakeLine::start().await;
    line.script(
        "/v2/bot/profile/Unew",
        200,
        &[],
        r#"{"displayName":"Aiko","userId":"Unew","pictureUrl":"https://profile.line-scdn.net/abc","statusMessage":"Hello","language":"ja"}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &line.url()).await;
    let channel = create_channel_with_token(&app).await;
    let mut stream = subscribe(
        &app,
        pb::SubscribeRequest {
            channel_ids: vec![channel.id.clone()],
            ..Default::default()
        },
    )
    .await;
    let client = reqwest::Client::new();
    let first = message("p-1", user("Unew"));
    assert_eq!(
        post_webhook(&client, &app, &channel.id, SECRET, &first)
            .await
            .status(),
        200
    );
    let events = next_events(&mut stream, 2, WAIT).await;
    assert_eq!(events[0].r#type(), pb::EventType::Message);
    let record = &events[1];
    let who = profile(record);
    assert!(record.sequence > events[0].sequence, "after the event");
    assert_eq!(who.trigger_sequence, events[0].sequence);
    assert_eq!(who.subject(), pb::ProfileSubject::User);
    assert_eq!(who.user_id, "Unew");
    assert_eq!(who.display_name, "Aiko");
    assert_eq!(who.picture_url, "https://profile.line-scdn.net/abc");
    assert_eq!(who.status_message, "Hello");
    assert_eq!(who.language, "ja");
    assert!(who.fetch_time.is_some());
    let source = record.source.as_ref().expect("the chat it was seen in");
    assert_eq!(source.user_id, "Unew");
    let json: serde_json::Value = serde_json::from_str(&record.json).unwrap();
    assert_eq!(json["displayName"], "Aiko");

    // The next message the same day asks LINE nothing and adds no record.
    let second = message("p-2", user("Unew"));
    assert_eq!(
        post_webhook(&client, &app, &channel.id, SECRET, &second)
            .await
            .status(),
        200
    );
    let events = next_events(&mut stream, 1, WAIT).await;
    assert_eq!(events[0].webhook_event_id, "p-2");
    assert_no_event(&mut stream, Duration::from_millis(500)).await;
    assert_eq!(lookups(&line, "/v2/bot/profile/Unew"), 1);

    // GetProfile is served from what the lookup cached.
    let answer = app
        .messaging()
        .await
        .get_profile(pb::GetProfileRequest {
            channel_id: channel.id.clone(),
            user_id: "Unew".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.display_name, "Aiko");
    assert_eq!(lookups(&line, "/v2/bot/profile/Unew"), 1);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_group_sender_gets_a_member_profile_and_the_group_its_summary() {
    let line = FakeLine::start().await;
    line.script(
        "/v2/bot/group/Cteam/summary",
        200,
        &[],
        r#"{"groupId":"Cteam","groupName":"Support team","pictureUrl":"https://profile.line-scdn.net/g"}"#,
    );
    line.script(
        "/v2/bot/group/Cteam/member/Ustranger",
        200,
        &[],
        r#"{"displayName":"Ken","userId":"Ustranger","pictureUrl":"https://profile.line-scdn.net/k"}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &line.url()).await;
    let channel = create_channel_with_token(&app).await;
    // Only this group's records.
    let mut stream = subscribe(
        &app,
        pb::SubscribeRequest {
            conversation_ids: vec!["Cteam".into()],
            event_types: vec![pb::EventType::Profile as i32],
            ..Default::default()
        },
    )
    .await;
    let body = message(
        "g-1",
        serde_json::json!({"type": "group", "groupId": "Cteam", "userId": "Ustranger"}),
    );
    let client = reqwest::Client::new();
    assert_eq!(
        post_webhook(&client, &app, &channel.id, SECRET, &body)
            .await
            .status(),
        200
    );
    let mut records = next_events(&mut stream, 2, WAIT).await;
    records.sort_by_key(|r| profile(r).subject);
    let member = profile(&records[0]);
    assert_eq!(member.subject(), pb::ProfileSubject::GroupMember);
    assert_eq!(member.user_id, "Ustranger");
    assert_eq!(member.group_id, "Cteam");
    assert_eq!(member.display_name, "Ken");
    let group = profile(&records[1]);
    assert_eq!(group.subject(), pb::ProfileSubject::Group);
    assert_eq!(group.group_id, "Cteam");
    assert_eq!(group.display_name, "Support team");
    assert_eq!(records[1].source.as_ref().unwrap().group_id, "Cteam");
    assert_eq!(
        lookups(&line, "/v2/bot/profile/Ustranger"),
        0,
        "not a friend: the member profile, not GetProfile"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn refusals_and_failures_lose_no_event_and_failures_are_asked_again() {
    let line = FakeLine::start().await;
    line.script(
        "/v2/bot/profile/Ublocked",
        404,
        &[],
        r#"{"message":"Not found"}"#,
    );
    // LINE's 5xx is retried once at once; both fail.
    line.script("/v2/bot/profile/Uflaky", 500, &[], r#"{"message":"oops"}"#);
    line.script("/v2/bot/profile/Uflaky", 500, &[], r#"{"message":"oops"}"#);
    line.script(
        "/v2/bot/profile/Uflaky",
        200,
        &[],
        r#"{"displayName":"Mai","userId":"Uflaky"}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &line.url()).await;
    let channel = create_channel_with_token(&app).await;
    let mut stream = subscribe(
        &app,
        pb::SubscribeRequest {
            channel_ids: vec![channel.id.clone()],
            ..Default::default()
        },
    )
    .await;
    let client = reqwest::Client::new();
    for (id, who) in [("b-1", "Ublocked"), ("f-1", "Uflaky")] {
        let body = message(id, user(who));
        assert_eq!(
            post_webhook(&client, &app, &channel.id, SECRET, &body)
                .await
                .status(),
            200
        );
    }
    let events = next_events(&mut stream, 2, WAIT).await;
    assert_eq!(events[0].webhook_event_id, "b-1");
    assert_eq!(events[1].webhook_event_id, "f-1");
    // Both lookups made (refused; failed twice): no record for either.
    tokio::time::timeout(WAIT, async {
        while lookups(&line, "/v2/bot/profile/Ublocked") + lookups(&line, "/v2/bot/profile/Uflaky")
            < 3
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("both lookups are made");
    assert_no_event(&mut stream, Duration::from_millis(300)).await;

    // The next events: the refusal is not asked again, the failure is.
    for (id, who) in [("b-2", "Ublocked"), ("f-2", "Uflaky")] {
        let body = message(id, user(who));
        assert_eq!(
            post_webhook(&client, &app, &channel.id, SECRET, &body)
                .await
                .status(),
            200
        );
    }
    let events = next_events(&mut stream, 3, WAIT).await;
    assert_eq!(events[0].webhook_event_id, "b-2");
    assert_eq!(events[1].webhook_event_id, "f-2");
    assert_eq!(profile(&events[2]).display_name, "Mai");
    assert_eq!(profile(&events[2]).trigger_sequence, events[1].sequence);
    assert_eq!(lookups(&line, "/v2/bot/profile/Ublocked"), 1);
    assert_eq!(lookups(&line, "/v2/bot/profile/Uflaky"), 3);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_line_that_never_answers_delays_no_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &support::silent_line().await).await;
    let channel = create_channel_with_token(&app).await;
    let mut stream = subscribe(
        &app,
        pb::SubscribeRequest {
            channel_ids: vec![channel.id.clone()],
            ..Default::default()
        },
    )
    .await;
    let client = reqwest::Client::new();
    // More new users than lookups run at once: every lookup hangs, and
    // every webhook is still answered and every event streamed.
    for i in 0..20 {
        let body = message(&format!("s-{i}"), user(&format!("Usilent{i}")));
        let response = post_webhook(&client, &app, &channel.id, SECRET, &body).await;
        assert_eq!(response.status(), 200);
    }
    let events = next_events(&mut stream, 20, WAIT).await;
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.webhook_event_id, format!("s-{i}"));
    }
    assert_no_event(&mut stream, Duration::from_millis(300)).await;
    app.stop().await.unwrap();
}
