//! Sending within LINE's rate limits, over the wire: every request of a
//! channel to an endpoint waits for a permit of that channel and endpoint
//! (`line_rate_limits`), and LINE's rate-limit 429 holds the endpoint back
//! for its Retry-After. The stand-in records when each request arrived;
//! what is asserted is how many arrived in any one second, never how long
//! the service took.

mod support;

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use line_adapter::proto::v1::{self as pb, event::Payload};
use support::{
    TestApp, create_channel_with_token, fake_line::FakeLine, fake_line::Recorded, from_earliest,
    subscribe, test_settings, text_push,
};
use tokio::task::JoinSet;
use tonic::Code;
use tonic_types::StatusExt as _;

const PUSH: &str = "/v2/bot/message/push";
const BROADCAST: &str = "/v2/bot/message/broadcast";
const RATE_LIMITED: &str =
    r#"{"message":"The API rate limit has been exceeded. Try again later."}"#;

/// Pushes queued at once. 5,000 at this rate would take over 16 minutes;
/// 300 take a minute and still keep 64 sends (the outbox's in-flight
/// bound per channel) waiting for permits throughout.
const PUSHES: usize = 300;
/// The push rate configured, per second; a full bucket holds a tenth of a
/// second's worth (1), so no second may see more than 6. The service, the
/// stand-in and the test share 2 cores, and requests stall now and then
/// between their permit and the stand-in (60-90 ms seen, every ~10 s);
/// at 200 ms between permits, a request held up by less than that cannot
/// push a second past the bound.
const RATE: usize = 5;
const BURST: usize = 1;
/// Long enough for the last of the 64 waiting sends to get its permit
/// (12.8 s at 5/s) without being refused one (see `line::pace`).
const REQUEST_TIMEOUT_MS: u64 = 20_000;

async fn start(line: &FakeLine, dir: &std::path::Path, rates: &str) -> TestApp {
    TestApp::start_with(test_settings(dir, |layer| {
        layer.line_api_base = Some(line.url());
        layer.line_data_api_base = Some(line.url());
        layer.line_rate_limits = Some(rates.into());
        layer.line_request_timeout_ms = Some(REQUEST_TIMEOUT_MS);
    }))
    .await
}

/// The most requests among `requests` that arrived within one second of
/// each other.
fn most_in_one_second(requests: &[&Recorded]) -> usize {
    let mut arrivals: Vec<Instant> = requests.iter().map(|r| r.received).collect();
    arrivals.sort();
    let mut most = 0;
    let mut end = 0;
    for (start, first) in arrivals.iter().enumerate() {
        while end < arrivals.len() && arrivals[end] < *first + Duration::from_secs(1) {
            end += 1;
        }
        most = most.max(end - start);
    }
    most
}

fn retry_key(request: &Recorded) -> String {
    request.headers["x-line-retry-key"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// The final states of `count` sends on `stream`, and when the last of
/// them had been accepted (its queued record seen).
async fn finals(
    stream: &mut tonic::Streaming<pb::SubscribeResponse>,
    count: usize,
) -> (Vec<pb::Delivery>, Instant) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let mut finals = Vec::new();
    let mut accepted = 0;
    let mut all_accepted = None;
    while finals.len() < count || all_accepted.is_none() {
        let message = tokio::time::timeout_at(deadline, stream.message())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} sends ended", finals.len()))
            .expect("the stream stays healthy")
            .expect("the stream stays open");
        let Some(pb::subscribe_response::Kind::Event(event)) = message.kind else {
            continue;
        };
        let Some(Payload::Outbound(outbound)) = event.payload else {
            continue;
        };
        let delivery = outbound.delivery.expect("a record carries its delivery");
        if delivery.state() == pb::DeliveryState::Queued {
            accepted += 1;
            if accepted == count {
                all_accepted = Some(Instant::now());
            }
        } else {
            finals.push(delivery);
        }
    }
    (finals, all_accepted.expect("every send was accepted"))
}

fn outbound_of(channel_id: &str) -> pb::SubscribeRequest {
    pb::SubscribeRequest {
        channel_ids: vec![channel_id.into()],
        event_types: vec![pb::EventType::Outbound as i32],
        ..from_earliest()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_queued_at_once_go_out_at_the_configured_rate_each_once() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(&line, dir.path(), &format!("push={RATE}/s")).await;
    let channel = create_channel_with_token(&app).await;
    let mut stream = subscribe(&app, outbound_of(&channel.id)).await;

    // All at once, from one connection (HTTP/2 takes them side by side).
    let messaging = app.messaging().await;
    let mut calls = JoinSet::new();
    for n in 0..PUSHES {
        let mut messaging = messaging.clone();
        let request = text_push(&channel.id, &format!("U{n:04}"), &format!("paced {n}"));
        calls.spawn(async move { messaging.push(request).await });
    }
    let (finals, all_accepted) = finals(&mut stream, PUSHES).await;
    let mut accepted = HashSet::new();
    while let Some(call) = calls.join_next().await {
        let delivery = call.unwrap().expect("the push is accepted");
        accepted.insert(delivery.into_inner().delivery.unwrap().id);
    }
    assert_eq!(accepted.len(), PUSHES);
    for delivery in &finals {
        assert_eq!(
            delivery.state(),
            pb::DeliveryState::Delivered,
            "{delivery:?}"
        );
        assert_eq!(delivery.attempts, 1, "{delivery:?}");
    }
    let delivered: HashSet<&str> = finals.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(delivered.len(), PUSHES, "each send ended once");
    assert!(delivered.iter().all(|id| accepted.contains(*id)));

    // LINE saw each push once, and never more than the rate plus the
    // burst in any second. Counted from when the last push was accepted:
    // while 300 calls arrive at once, the service (a debug build, on the
    // test's 2 cores) is too busy to send promptly what it has permits
    // for, and requests held up after their permits arrive bunched; the
    // bucket bounds when requests leave, not how late the host runs them.
    let requests = line.requests();
    let pushes: Vec<&Recorded> = requests.iter().filter(|r| r.path == PUSH).collect();
    assert_eq!(pushes.len(), PUSHES);
    let keys: HashSet<String> = pushes.iter().map(|r| retry_key(r)).collect();
    let expected: HashSet<String> = finals.iter().map(|d| d.retry_key.clone()).collect();
    assert_eq!(keys, expected, "one request per send, with its retry key");
    let paced: Vec<&Recorded> = pushes
        .iter()
        .copied()
        .filter(|r| r.received >= all_accepted)
        .collect();
    assert!(
        paced.len() >= PUSHES / 2,
        "most pushes still waited when the last was accepted: {} of {PUSHES}",
        paced.len()
    );
    let most = most_in_one_second(&paced);
    assert!(
        most <= RATE + BURST,
        "{most} pushes reached LINE within one second (rate {RATE}/s, burst {BURST})"
    );
    eprintln!(
        "{PUSHES} pushes at {RATE}/s: at most {most} in any one second of the {} sent after the last was accepted ({} with the ones before)",
        paced.len(),
        most_in_one_second(&pushes)
    );

    // Every request waited for its permit, and none was refused one.
    let permits = support::metric(
        &app,
        &format!(r#"line_adapter_line_api_permit_wait_seconds_count{{endpoint="{PUSH}"}}"#),
    )
    .await;
    assert_eq!(permits, Some(PUSHES as f64));
    let refused = support::metric(
        &app,
        &format!(r#"line_adapter_line_api_permits_refused_total{{endpoint="{PUSH}"}}"#),
    )
    .await;
    assert_eq!(refused, None);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_rate_limit_429_holds_that_endpoint_of_that_channel_back_for_retry_after() {
    const HOLD: Duration = Duration::from_secs(3);
    let line = FakeLine::start().await;
    line.script(PUSH, 429, &[("retry-after", "3")], RATE_LIMITED);
    let profile = "/v2/bot/profile/U0002";
    line.script(profile, 200, &[], r#"{"displayName":"B","userId":"U0002"}"#);
    let dir = tempfile::tempdir().unwrap();
    let app = start(&line, dir.path(), "").await;
    let shop = create_channel_with_token(&app).await;
    let other = app
        .admin()
        .await
        .create_channel(pb::CreateChannelRequest {
            display_name: "Other".into(),
            line_channel_id: "2345678901".into(),
            channel_secret: support::OTHER_SECRET.into(),
            channel_access_token: "other-token".into(),
            token_mode: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    let mut messaging = app.messaging().await;

    let first = tokio::spawn({
        let mut messaging = messaging.clone();
        let request = text_push(&shop.id, "U0001", "first");
        async move { messaging.push(request).await }
    });
    // Until the service has heard the 429 (and held the endpoint).
    let slowed =
        format!(r#"line_adapter_line_api_rate_limit_slowdowns_total{{endpoint="{PUSH}"}}"#);
    let waited = Instant::now();
    while support::metric(&app, &slowed).await != Some(1.0) {
        assert!(waited.elapsed() < Duration::from_secs(20), "no 429 seen");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = tokio::spawn({
        let mut messaging = messaging.clone();
        let request = text_push(&shop.id, "U0003", "second");
        async move { messaging.push(request).await }
    });
    // Another channel's pushes and this channel's lookups are not held.
    let elsewhere = messaging
        .push(text_push(&other.id, "U0004", "elsewhere"))
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(elsewhere.state(), pb::DeliveryState::Delivered);
    messaging
        .get_profile(pb::GetProfileRequest {
            channel_id: shop.id.clone(),
            user_id: "U0002".into(),
        })
        .await
        .expect("lookups are paced apart from pushes");
    for push in [first, second] {
        let delivery = push.await.unwrap().unwrap().into_inner().delivery.unwrap();
        assert_eq!(
            delivery.state(),
            pb::DeliveryState::Delivered,
            "{delivery:?}"
        );
    }

    let requests = line.requests();
    let to = |request: &Recorded| -> String {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        body["to"].as_str().unwrap_or_default().to_owned()
    };
    let refused = requests
        .iter()
        .find(|r| r.path == PUSH)
        .expect("the first push");
    assert_eq!(to(refused), "U0001");
    let held: Vec<&Recorded> = requests
        .iter()
        .filter(|r| r.path == PUSH && r.received > refused.received && to(r) != "U0004")
        .collect();
    assert_eq!(held.len(), 2, "the first push again, and the second");
    for request in &held {
        assert!(
            request.received >= refused.received + HOLD,
            "a push of the channel reached LINE {:?} after the 429 that asked for {HOLD:?}",
            request.received - refused.received
        );
    }
    assert_eq!(
        retry_key(held.iter().find(|r| to(r) == "U0001").unwrap()),
        retry_key(refused)
    );
    let first_held = held.iter().map(|r| r.received).min().unwrap();
    for (what, path, to_user) in [
        ("another channel's push", PUSH, "U0004"),
        ("the lookup", profile, ""),
    ] {
        let request = requests
            .iter()
            .find(|r| r.path == path && (to_user.is_empty() || to(r) == to_user))
            .unwrap_or_else(|| panic!("{what} reached LINE"));
        assert!(
            request.received < first_held,
            "{what} waited for the channel's pushes"
        );
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_permit_too_far_off_is_refused_at_once_and_the_outbox_waits_it_out() {
    // LINE's own limit: 60 broadcasts an hour, one at a time.
    let line = FakeLine::start().await;
    let profile = "/v2/bot/profile/U0001";
    line.script(profile, 429, &[("retry-after", "40")], RATE_LIMITED);
    let dir = tempfile::tempdir().unwrap();
    let app = start(&line, dir.path(), "").await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;
    let broadcast = |text: &str| pb::BroadcastRequest {
        channel_id: channel.id.clone(),
        messages: vec![support::text_message(text)],
        ..Default::default()
    };
    let first = messaging
        .broadcast(broadcast("first"))
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(first.state(), pb::DeliveryState::Delivered);
    // The next one may go in a minute: not sent, queued with the reason
    // and its next attempt then (the RPC answers after its own wait).
    let second = messaging
        .broadcast(broadcast("second"))
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(second.state(), pb::DeliveryState::Queued, "{second:?}");
    let error = second.error.as_ref().expect("why it waits");
    assert_eq!(error.http_status, 0, "LINE gave no answer: none was asked");
    assert!(
        error.message.contains("paced to LINE's rate limit")
            && error.message.contains("line_rate_limits"),
        "{error:?}"
    );
    let next = second.next_attempt_time.expect("when it is tried again");
    let created = second.create_time.unwrap();
    assert!(
        next.seconds - created.seconds >= 40,
        "the next attempt waits for the permit: {next:?} after {created:?}"
    );
    let broadcasts = line
        .requests()
        .iter()
        .filter(|r| r.path == BROADCAST)
        .count();
    assert_eq!(broadcasts, 1);

    // A lookup held by a Retry-After longer than a call waits: refused at
    // once with that delay, as LINE's 429 is, and nothing sent.
    let lookup = || pb::GetProfileRequest {
        channel_id: channel.id.clone(),
        user_id: "U0001".into(),
    };
    let err = messaging.get_profile(lookup()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "LINE's 429: {err:?}");
    let err = messaging.get_profile(lookup()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("paced"), "{}", err.message());
    let retry = err
        .get_details_retry_info()
        .expect("RetryInfo")
        .retry_delay
        .unwrap();
    assert!(retry > Duration::from_secs(30), "{retry:?}");
    let lookups = line.requests().iter().filter(|r| r.path == profile).count();
    assert_eq!(lookups, 1, "the held lookup was not sent");
    app.stop().await.unwrap();
}
