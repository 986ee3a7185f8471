//! Inbound over the wire: signed webhooks in, Subscribe streams out.
//! LINE's own SDK fixtures, signature failures, limits, dead letters,
//! deduplication across restarts, concurrency, slow subscribers, durable
//! consumers and retention.

mod support;

use std::{collections::HashMap, time::Duration};

use line_adapter::proto::v1::{self as pb, subscribe_request::Start};
use support::{
    OTHER_SECRET, SECRET, TestApp, assert_no_event, create_channel, fixtures, from_earliest,
    metric, next_events, now_ms, post_webhook, subscribe, test_settings, text_body, text_body_at,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn every_line_fixture_round_trips_to_subscribe() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let channel = create_channel(&app, "1234567890").await;
    let client = reqwest::Client::new();

    // What LINE sent: the first copy of every webhookEventId.
    let mut expected: Vec<(String, serde_json::Value, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut total_events = 0;
    for (name, body) in fixtures() {
        let response = post_webhook(&client, &app, &channel.id, SECRET, &body).await;
        assert_eq!(response.status(), 200, "{name}");
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let destination = parsed["destination"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for event in parsed["events"].as_array().unwrap() {
            total_events += 1;
            let id = event["webhookEventId"].as_str().unwrap().to_owned();
            if seen.insert(id.clone()) {
                expected.push((id, event.clone(), destination.clone()));
            }
        }
    }
    assert_eq!(total_events, 180, "LINE's fixtures hold 180 events");
    assert!(
        expected.len() < total_events,
        "the fixtures include a redelivery"
    );

    let mut stream = subscribe(&app, from_earliest()).await;
    let events = next_events(&mut stream, expected.len(), WAIT).await;
    assert_no_event(&mut stream, Duration::from_millis(200)).await;

    for (i, (event, (id, raw, destination))) in events.iter().zip(&expected).enumerate() {
        assert_eq!(event.sequence, i as u64 + 1, "gap-free from 1");
        assert_eq!(&event.webhook_event_id, id);
        assert_eq!(&event.channel_id, &channel.id);
        assert_eq!(&event.destination, destination);
        assert_eq!(event.type_name, raw["type"].as_str().unwrap());
        let json: serde_json::Value = serde_json::from_str(&event.json).unwrap();
        assert_eq!(&json, raw, "the original JSON of {id}");
        assert!(event.receive_time.is_some());
        assert!(event.payload.is_some(), "{id} has a typed payload");
        match &event.payload {
            Some(pb::event::Payload::Unknown(_)) => {
                assert_eq!(event.r#type(), pb::EventType::Unknown)
            }
            Some(pb::event::Payload::Message(message)) => {
                let content = message.message.as_ref().unwrap();
                assert_eq!(content.id, raw["message"]["id"].as_str().unwrap());
                if let Some(token) = raw["message"]["quoteToken"].as_str() {
                    assert_eq!(content.quote_token, token);
                }
                if let Some(token) = raw["message"]["markAsReadToken"].as_str() {
                    assert_eq!(content.mark_as_read_token, token);
                }
            }
            _ => assert_ne!(event.r#type(), pb::EventType::Unknown, "{id}"),
        }
        if let Some(token) = raw["replyToken"].as_str() {
            assert_eq!(event.reply_token, token);
        }
        let mode = match raw["mode"].as_str() {
            Some("standby") => pb::EventMode::Standby,
            Some("active") => pb::EventMode::Active,
            _ => pb::EventMode::Unspecified,
        };
        assert_eq!(event.mode(), mode, "{id}");
        if let Some(group) = raw["source"]["groupId"].as_str() {
            assert_eq!(event.source.as_ref().unwrap().group_id, group);
        }
        if let Some(room) = raw["source"]["roomId"].as_str() {
            assert_eq!(event.source.as_ref().unwrap().room_id, room);
        }
    }
    // Every type LINE's spec names came through typed.
    let types: std::collections::HashSet<_> = events.iter().map(|e| e.r#type()).collect();
    for expected in [
        pb::EventType::Message,
        pb::EventType::MessageEdited,
        pb::EventType::Unsend,
        pb::EventType::Follow,
        pb::EventType::Unfollow,
        pb::EventType::Join,
        pb::EventType::Leave,
        pb::EventType::MemberJoined,
        pb::EventType::MemberLeft,
        pb::EventType::Postback,
        pb::EventType::VideoPlayComplete,
        pb::EventType::Beacon,
        pb::EventType::AccountLink,
        pb::EventType::Things,
        pb::EventType::Membership,
        pb::EventType::Module,
        pb::EventType::Activated,
        pb::EventType::Deactivated,
        pb::EventType::BotSuspended,
        pb::EventType::BotResumed,
        pb::EventType::Delivery,
        pb::EventType::Unknown,
    ] {
        assert!(types.contains(&expected), "{expected:?} missing");
    }
    let duplicates = metric(&app, "line_adapter_duplicates_dropped_total").await;
    assert_eq!(duplicates, Some((total_events - expected.len()) as f64));
}

#[tokio::test]
async fn bad_signatures_are_refused_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let channel = create_channel(&app, "1234567890").await;
    let client = reqwest::Client::new();
    let url = format!("{}/webhook/line/{}", app.http_base, channel.id);
    let body = text_body("sig", 1, "U1");
    let good = line_adapter::signature::sign(SECRET, &body);

    let missing = client.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let wrong_secret = post_webhook(&client, &app, &channel.id, OTHER_SECRET, &body).await;
    assert_eq!(wrong_secret.status(), 401);
    let mut tampered = body.clone();
    let at = tampered.iter().position(|&b| b == b'h').unwrap();
    tampered[at] = b'H';
    let tampered = client
        .post(&url)
        .header("x-line-signature", &good)
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status(), 401);
    // Re-serialised JSON (extra whitespace) is another body.
    let mut spaced = b" ".to_vec();
    spaced.extend_from_slice(&body);
    let spaced = client
        .post(&url)
        .header("x-line-signature", &good)
        .body(spaced)
        .send()
        .await
        .unwrap();
    assert_eq!(spaced.status(), 401);
    let garbage = client
        .post(&url)
        .header("x-line-signature", "not base64 at all")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 401);
    // The header name is matched case-insensitively, as LINE may change it.
    let shouting = client
        .post(&url)
        .header("X-LINE-SIGNATURE", &good)
        .header("content-type", "text/plain")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        shouting.status(),
        200,
        "a valid signature with any content-type is accepted"
    );

    let mut stream = subscribe(&app, from_earliest()).await;
    let events = next_events(&mut stream, 1, WAIT).await;
    assert_eq!(
        events[0].sequence, 1,
        "nothing refused took a sequence number"
    );
    assert_no_event(&mut stream, Duration::from_millis(200)).await;
    assert_eq!(
        metric(
            &app,
            &format!(
                "line_adapter_webhook_requests_total{{channel=\"{}\",status=\"401\"}}",
                channel.id
            )
        )
        .await,
        Some(5.0)
    );
}

#[tokio::test]
async fn unknown_channels_methods_and_oversized_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(test_settings(dir.path(), |layer| {
        layer.webhook_body_limit = Some(2048);
    }))
    .await;
    let channel = create_channel(&app, "1234567890").await;
    let client = reqwest::Client::new();
    let body = text_body("small", 1, "U1");

    for id in ["ch_01jd0000000000000000000000", "nope", "1234567890"] {
        let response = post_webhook(&client, &app, id, SECRET, &body).await;
        assert_eq!(response.status(), 404, "{id}");
    }
    let get = client
        .get(format!("{}/webhook/line/{}", app.http_base, channel.id))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");

    let big = text_body("big", 30, "U1");
    assert!(big.len() > 2048);
    let declared = post_webhook(&client, &app, &channel.id, SECRET, &big).await;
    assert_eq!(declared.status(), 413);

    // Chunked, with no length declared: refused once the limit is crossed,
    // without waiting for the rest.
    let mut socket = tokio::net::TcpStream::connect(app.http_addr).await.unwrap();
    let head = format!(
        "POST /webhook/line/{} HTTP/1.1\r\nhost: x\r\nx-line-signature: {}\r\ntransfer-encoding: chunked\r\n\r\n",
        channel.id,
        line_adapter::signature::sign(SECRET, &big)
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket
        .write_all(format!("{:x}\r\n", 4096).as_bytes())
        .await
        .unwrap();
    socket.write_all(&[b' '; 4096]).await.unwrap();
    socket.write_all(b"\r\n").await.unwrap();
    let mut answer = vec![0u8; 256];
    let read = tokio::time::timeout(WAIT, socket.read(&mut answer))
        .await
        .expect("answered before the body ended")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    let ok = post_webhook(&client, &app, &channel.id, SECRET, &body).await;
    assert_eq!(ok.status(), 200);
    let mut stream = subscribe(&app, from_earliest()).await;
    assert_eq!(next_events(&mut stream, 1, WAIT).await[0].sequence, 1);
}

#[tokio::test]
async fn verify_requests_and_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let channel = create_channel(&app, "1234567890").await;
    let client = reqwest::Client::new();

    let verify = br#"{"destination":"U0123456789abcdef0123456789abcdef","events":[]}"#;
    assert_eq!(
        post_webhook(&client, &app, &channel.id, SECRET, verify)
            .await
            .status(),
        200
    );

    let mut everything = subscribe(
        &app,
        pb::SubscribeRequest {
            event_types: vec![
                pb::EventType::DeadLetter as i32,
                pb::EventType::Message as i32,
            ],
            ..from_earliest()
        },
    )
    .await;
    let mut default = subscribe(&app, from_earliest()).await;

    let broken: [&[u8]; 3] = [
        b"{\"destination\":\"U0\",\"events\":[",
        br#"{"destination":"U0","events":{"type":"message"}}"#,
        br#"{"destination":"U0","events":[{"type":"message","timestamp":1}]}"#,
    ];
    for body in broken {
        let response = post_webhook(&client, &app, &channel.id, SECRET, body).await;
        assert_eq!(response.status(), 200, "LINE must not be asked to resend");
    }
    // LINE redelivering the same broken body: kept once.
    let again = post_webhook(&client, &app, &channel.id, SECRET, broken[0]).await;
    assert_eq!(again.status(), 200);
    post_webhook(
        &client,
        &app,
        &channel.id,
        SECRET,
        &text_body("ok", 1, "U1"),
    )
    .await;

    let events = next_events(&mut everything, 4, WAIT).await;
    for (event, body) in events.iter().zip(broken) {
        assert_eq!(event.r#type(), pb::EventType::DeadLetter);
        let Some(pb::event::Payload::DeadLetter(dead)) = &event.payload else {
            panic!("not a dead letter");
        };
        assert_eq!(dead.body, body, "kept byte for byte");
        assert!(!dead.error.is_empty());
        assert_eq!(event.channel_id, channel.id);
    }
    assert_eq!(events[3].r#type(), pb::EventType::Message);
    let only = next_events(&mut default, 1, WAIT).await;
    assert_eq!(only[0].sequence, 4, "dead letters only when asked for");
    assert_eq!(
        metric(&app, "line_adapter_dead_letters_total").await,
        Some(3.0)
    );
}

#[tokio::test]
async fn duplicates_are_stored_once_also_after_a_restart() {
    duplicates_stored_once_after_a_restart(text_body("dup", 2, "U1")).await;
}

/// Events made moments before they arrive, as nearly all are: on NATS the
/// publish alone deduplicates them, without asking the dedupe bucket.
#[tokio::test]
async fn fresh_duplicates_are_stored_once_also_after_a_restart() {
    duplicates_stored_once_after_a_restart(text_body_at("dup", 2, "U1", now_ms())).await;
}

/// `body` holds the events `dup-0` and `dup-1`.
async fn duplicates_stored_once_after_a_restart(body: Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let channel = create_channel(&app, "1234567890").await;
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let response = post_webhook(&client, &app, &channel.id, SECRET, &body).await;
        assert_eq!(response.status(), 200);
    }
    app.stop().await.unwrap();

    let app = TestApp::start(dir.path()).await;
    let client = reqwest::Client::new();
    // LINE's redelivery: identical but for the flag.
    let redelivered = String::from_utf8(body.clone())
        .unwrap()
        .replace("\"isRedelivery\":false", "\"isRedelivery\":true");
    assert_ne!(redelivered.as_bytes(), &body[..]);
    let response = post_webhook(&client, &app, &channel.id, SECRET, redelivered.as_bytes()).await;
    assert_eq!(response.status(), 200);
    post_webhook(
        &client,
        &app,
        &channel.id,
        SECRET,
        &text_body("new", 1, "U1"),
    )
    .await;

    let mut stream = subscribe(&app, from_earliest()).await;
    let events = next_events(&mut stream, 3, WAIT).await;
    let ids: Vec<_> = events.iter().map(|e| e.webhook_event_id.as_str()).collect();
    assert_eq!(ids, ["dup-0", "dup-1", "new-0"]);
    assert_eq!(
        events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(!events[0].is_redelivery, "the first copy is the one kept");
    assert_no_event(&mut stream, Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_reach_every_stream_exactly_once_in_order() {
    const TASKS: usize = 16;
    const REQUESTS: usize = 25;
    const PER_BODY: usize = 3;
    const HALF: usize = TASKS * REQUESTS * PER_BODY;
    const TOTAL: usize = 2 * HALF;
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let channel = create_channel(&app, "1234567890").await;
    let client = reqwest::Client::new();
    let url = format!("{}/webhook/line/{}", app.http_base, channel.id);
    let post_concurrently = |round: &'static str| {
        let mut posters = Vec::new();
        for task in 0..TASKS {
            let client = client.clone();
            let url = url.clone();
            posters.push(tokio::spawn(async move {
                for request in 0..REQUESTS {
                    let body = text_body(&format!("{round}-t{task}-r{request}"), PER_BODY, "U1");
                    let signature = line_adapter::signature::sign(SECRET, &body);
                    let response = client
                        .post(&url)
                        .header("x-line-signature", signature)
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200);
                }
            }));
        }
        posters
    };

    let mut from_start = subscribe(&app, from_earliest()).await;
    for poster in post_concurrently("first") {
        poster.await.unwrap();
    }
    // Joins with half the events in the log and the other half about to
    // arrive: it must catch up from the log, then follow live.
    let mut mid_load = subscribe(&app, from_earliest()).await;
    let second = post_concurrently("second");
    // Catch-up: the events already in the log, then the checkpoint that
    // says the stream is at the head.
    let mut caught_up = Vec::new();
    let first_checkpoint = loop {
        let message = tokio::time::timeout(WAIT, mid_load.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match message.kind {
            Some(pb::subscribe_response::Kind::Checkpoint(checkpoint)) => break checkpoint,
            Some(pb::subscribe_response::Kind::Event(event)) => caught_up.push(event.sequence),
            None => {}
        }
    };
    assert!(first_checkpoint.caught_up);
    assert!(
        first_checkpoint.sequence >= HALF as u64,
        "{first_checkpoint:?}"
    );
    assert_eq!(
        caught_up,
        (1..=first_checkpoint.sequence).collect::<Vec<_>>(),
        "catch-up is gap-free"
    );
    for poster in second {
        poster.await.unwrap();
    }
    let events = next_events(&mut from_start, TOTAL, WAIT).await;
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.sequence, i as u64 + 1);
    }
    let distinct: std::collections::HashSet<_> =
        events.iter().map(|e| e.webhook_event_id.clone()).collect();
    assert_eq!(distinct.len(), TOTAL);
    assert_no_event(&mut from_start, Duration::from_millis(200)).await;
    let rest = next_events(
        &mut mid_load,
        TOTAL - first_checkpoint.sequence as usize,
        WAIT,
    )
    .await;
    for (i, event) in rest.iter().enumerate() {
        assert_eq!(event.sequence, first_checkpoint.sequence + i as u64 + 1);
    }
    assert_no_event(&mut mid_load, Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_holds_back_nobody_and_loses_nothing() {
    // More than the live tail holds, so the stalled stream must fall back
    // to the log.
    const EVENTS: usize = 20_000;
    const PER_BODY: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let channel = create_channel(&app, "1234567890").await;

    let mut stalled = subscribe(&app, pb::SubscribeRequest::default()).await;
    let mut healthy = subscribe(&app, pb::SubscribeRequest::default()).await;
    let reader = tokio::spawn(async move { next_events(&mut healthy, EVENTS, WAIT * 3).await });

    let client = reqwest::Client::new();
    let mut posters = Vec::new();
    for task in 0..4 {
        let client = client.clone();
        let url = format!("{}/webhook/line/{}", app.http_base, channel.id);
        posters.push(tokio::spawn(async move {
            for request in 0..EVENTS / PER_BODY / 4 {
                let body = text_body(&format!("s{task}-{request}"), PER_BODY, "U1");
                let signature = line_adapter::signature::sign(SECRET, &body);
                let response = client
                    .post(&url)
                    .header("x-line-signature", signature)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
            }
        }));
    }
    for poster in posters {
        poster.await.unwrap();
    }
    let delivered = reader.await.unwrap();
    assert_eq!(delivered.len(), EVENTS, "the healthy stream got everything");

    // Only now read the stalled one: everything, in order, nothing twice.
    let late = next_events(&mut stalled, EVENTS, WAIT * 3).await;
    for (i, event) in late.iter().enumerate() {
        assert_eq!(event.sequence, i as u64 + 1);
    }
    assert_no_event(&mut stalled, Duration::from_millis(200)).await;
}

#[tokio::test]
async fn filters_by_channel_type_and_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let tokyo = create_channel(&app, "1000000001").await;
    let osaka = create_channel(&app, "1000000002").await;
    let client = reqwest::Client::new();

    let mut only_osaka = subscribe(
        &app,
        pb::SubscribeRequest {
            channel_ids: vec![osaka.id.clone()],
            ..from_earliest()
        },
    )
    .await;
    let mut only_user_b = subscribe(
        &app,
        pb::SubscribeRequest {
            conversation_ids: vec!["Ub".into()],
            ..from_earliest()
        },
    )
    .await;
    let mut only_follows = subscribe(
        &app,
        pb::SubscribeRequest {
            event_types: vec![pb::EventType::Follow as i32],
            ..from_earliest()
        },
    )
    .await;

    post_webhook(&client, &app, &tokyo.id, SECRET, &text_body("a", 2, "Ua")).await;
    post_webhook(&client, &app, &osaka.id, SECRET, &text_body("b", 2, "Ub")).await;
    let follow = serde_json::to_vec(&serde_json::json!({
        "destination": "U0",
        "events": [{"type": "follow", "mode": "active", "timestamp": 1, "webhookEventId": "f-1",
                    "source": {"type": "user", "userId": "Uc"}, "replyToken": "r",
                    "deliveryContext": {"isRedelivery": false}, "follow": {"isUnblocked": true}}]
    }))
    .unwrap();
    post_webhook(&client, &app, &tokyo.id, SECRET, &follow).await;

    let osaka_events = next_events(&mut only_osaka, 2, WAIT).await;
    assert!(osaka_events.iter().all(|e| e.channel_id == osaka.id));
    assert_no_event(&mut only_osaka, Duration::from_millis(200)).await;
    let user_b = next_events(&mut only_user_b, 2, WAIT).await;
    assert!(
        user_b
            .iter()
            .all(|e| e.source.as_ref().unwrap().user_id == "Ub")
    );
    assert_no_event(&mut only_user_b, Duration::from_millis(200)).await;
    let follows = next_events(&mut only_follows, 1, WAIT).await;
    let Some(pb::event::Payload::Follow(follow)) = &follows[0].payload else {
        panic!("a follow event");
    };
    assert!(follow.is_unblocked);
    assert_no_event(&mut only_follows, Duration::from_millis(200)).await;

    let mut messaging = app.messaging().await;
    for (request, field) in [
        (
            pb::SubscribeRequest {
                event_types: vec![0],
                ..Default::default()
            },
            "event_types[0]",
        ),
        (
            pb::SubscribeRequest {
                event_types: vec![1, 77],
                ..Default::default()
            },
            "event_types[1]",
        ),
        (
            pb::SubscribeRequest {
                channel_ids: vec!["bogus".into()],
                ..Default::default()
            },
            "channel_ids[0]",
        ),
        (
            pb::SubscribeRequest {
                conversation_ids: vec![String::new()],
                ..Default::default()
            },
            "conversation_ids[0]",
        ),
        (
            pb::SubscribeRequest {
                start: Some(Start::Consumer("no spaces".into())),
                ..Default::default()
            },
            "consumer",
        ),
    ] {
        let status = messaging.subscribe(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains(field), "{}", status.message());
    }
}

#[tokio::test]
async fn durable_consumers_resume_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let channel = create_channel(&app, "1234567890").await;
    let client = reqwest::Client::new();
    post_webhook(&client, &app, &channel.id, SECRET, &text_body("c", 5, "U1")).await;

    let desk = || pb::SubscribeRequest {
        start: Some(Start::Consumer("agent-desk".into())),
        ..Default::default()
    };
    let mut stream = subscribe(&app, desk()).await;
    let events = next_events(&mut stream, 5, WAIT).await;
    assert_eq!(
        events[0].sequence, 1,
        "a new consumer starts at the earliest"
    );
    let mut messaging = app.messaging().await;
    let acked = messaging
        .ack(pb::AckRequest {
            consumer: "agent-desk".into(),
            sequence: 3,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((acked.acked_sequence, acked.created), (3, true));
    let again = messaging
        .ack(pb::AckRequest {
            consumer: "agent-desk".into(),
            sequence: 3,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created, "acking the same position again is fine");
    for (sequence, why) in [(2, "already acknowledged"), (99, "beyond the head")] {
        let status = messaging
            .ack(pb::AckRequest {
                consumer: "agent-desk".into(),
                sequence,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains(why), "{}", status.message());
    }
    let status = messaging
        .ack(pb::AckRequest {
            consumer: String::new(),
            sequence: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    drop(stream);
    drop(messaging);
    app.stop().await.unwrap();

    let app = TestApp::start(dir.path()).await;
    let mut stream = subscribe(&app, desk()).await;
    let resumed = next_events(&mut stream, 2, WAIT).await;
    assert_eq!(
        resumed.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [4, 5]
    );
    let client = reqwest::Client::new();
    post_webhook(&client, &app, &channel.id, SECRET, &text_body("d", 1, "U1")).await;
    assert_eq!(next_events(&mut stream, 1, WAIT).await[0].sequence, 6);
}

#[tokio::test]
async fn positions_outside_the_retained_log_are_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(test_settings(dir.path(), |layer| {
        layer.event_retention_max_events = Some(5);
    }))
    .await;
    let channel = create_channel(&app, "1234567890").await;
    let client = reqwest::Client::new();
    post_webhook(
        &client,
        &app,
        &channel.id,
        SECRET,
        &text_body("r", 10, "U1"),
    )
    .await;
    // Retention runs every second: the next run is due at once.
    support::pass_time(Duration::from_secs(1)).await;

    let status = refused_from_the_start(&app).await;
    assert_eq!(status.code(), Code::OutOfRange);
    assert!(
        status.message().contains("oldest available sequence is 6"),
        "{}",
        status.message()
    );

    let mut earliest = subscribe(&app, from_earliest()).await;
    assert_eq!(next_events(&mut earliest, 1, WAIT).await[0].sequence, 6);
    let beyond = app
        .messaging()
        .await
        .subscribe(pb::SubscribeRequest {
            start: Some(Start::AfterSequence(11)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(beyond.code(), Code::OutOfRange);
}

/// What Subscribe from the start answers once retention has run (within
/// 5 s): its refusal.
async fn refused_from_the_start(app: &TestApp) -> tonic::Status {
    let mut messaging = app.messaging().await;
    for _ in 0..100 {
        match messaging
            .subscribe(pb::SubscribeRequest {
                start: Some(Start::AfterSequence(0)),
                ..Default::default()
            })
            .await
        {
            Err(err) => return err,
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("retention ran within 5 s");
}

#[tokio::test]
async fn events_and_dedupe_entries_older_than_their_retention_are_dropped() {
    if support::nats_url().is_some() {
        // JetStream drops events by its own (real) clock, which a test
        // cannot advance; the NATS store gives the event stream and the
        // dedupe bucket these settings as their max ages.
        eprintln!("skipped on NATS: JetStream applies retention on its own clock");
        return;
    }
    // The defaults: a week for both.
    const WEEK: Duration = Duration::from_secs(7 * 86_400);
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let channel = create_channel(&app, "1234567890").await;
    let body = text_body("w", 3, "U1");
    let client = reqwest::Client::new();
    let sent = post_webhook(&client, &app, &channel.id, SECRET, &body).await;
    assert_eq!(sent.status(), 200);

    // A day short of a week, everything is kept, duplicates included.
    support::pass_time(WEEK - Duration::from_secs(86_400)).await;
    let client = reqwest::Client::new();
    post_webhook(&client, &app, &channel.id, SECRET, &body).await;
    let mut earliest = subscribe(&app, from_earliest()).await;
    let kept = next_events(&mut earliest, 3, WAIT).await;
    assert_eq!(
        kept.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_no_event(&mut earliest, Duration::from_millis(300)).await;
    drop(earliest);

    // Past the week, the next retention run drops them.
    support::pass_time(Duration::from_secs(86_400 + 2)).await;
    let status = refused_from_the_start(&app).await;
    assert_eq!(status.code(), Code::OutOfRange);
    assert!(
        status.message().contains("oldest available sequence is 4"),
        "{}",
        status.message()
    );
    // LINE redelivering the same events now is new to us: their dedupe
    // entries went with the week.
    let client = reqwest::Client::new();
    let sent = post_webhook(&client, &app, &channel.id, SECRET, &body).await;
    assert_eq!(sent.status(), 200);
    let mut earliest = subscribe(&app, from_earliest()).await;
    let again = next_events(&mut earliest, 3, WAIT).await;
    assert_eq!(
        again.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [4, 5, 6]
    );
    assert_eq!(again[0].webhook_event_id, "w-0");
}

#[tokio::test]
async fn streams_end_cleanly_on_disconnect_and_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let gauge = "line_adapter_subscribers ";
    let streams: Vec<_> = {
        let mut streams = Vec::new();
        for _ in 0..3 {
            streams.push(subscribe(&app, pb::SubscribeRequest::default()).await);
        }
        streams
    };
    assert_eq!(metric(&app, gauge).await, Some(3.0));
    drop(streams);
    let mut count = None;
    for _ in 0..100 {
        count = metric(&app, gauge).await;
        if count == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        count,
        Some(0.0),
        "disconnected streams leave no task behind"
    );

    let mut open = subscribe(&app, pb::SubscribeRequest::default()).await;
    // A client that stopped reading, with more queued than any buffer holds:
    // it must not hold up the stop.
    let _stalled = subscribe(&app, pb::SubscribeRequest::default()).await;
    let channel = create_channel(&app, "1234567890").await;
    let client = reqwest::Client::new();
    for round in 0..20 {
        let body = text_body(&format!("s{round}"), 100, "U1");
        assert_eq!(
            post_webhook(&client, &app, &channel.id, SECRET, &body)
                .await
                .status(),
            200
        );
    }
    let stopping = tokio::spawn(app.stop());
    let ended = loop {
        match tokio::time::timeout(WAIT, open.message()).await.unwrap() {
            Ok(Some(_)) => continue, // events and checkpoints
            other => break other,
        }
    };
    let status = ended.expect_err("the server ends the stream with a status");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("resume after sequence"));
    stopping.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_rotated_secret_verifies_during_its_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let channel = create_channel(&app, "1234567890").await;
    let client = reqwest::Client::new();
    let mut admin = app.admin().await;
    let rotate = |grace: i64| pb::UpdateChannelRequest {
        channel_id: channel.id.clone(),
        channel_secret: OTHER_SECRET.into(),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["channel_secret".into()],
        }),
        previous_secret_grace: Some(prost_types::Duration {
            seconds: grace,
            nanos: 0,
        }),
        ..Default::default()
    };
    admin.update_channel(rotate(600)).await.unwrap();
    let old = post_webhook(&client, &app, &channel.id, SECRET, &text_body("o", 1, "U")).await;
    assert_eq!(old.status(), 200, "in flight under the old secret");
    let new = post_webhook(
        &client,
        &app,
        &channel.id,
        OTHER_SECRET,
        &text_body("n", 1, "U"),
    )
    .await;
    assert_eq!(new.status(), 200);

    // Rotating back without grace: the other secret stops at once.
    let mut back = rotate(0);
    back.channel_secret = SECRET.into();
    back.previous_secret_grace = None;
    admin.update_channel(back).await.unwrap();
    let stale = post_webhook(
        &client,
        &app,
        &channel.id,
        OTHER_SECRET,
        &text_body("s", 1, "U"),
    )
    .await;
    assert_eq!(stale.status(), 401);

    let mut stream = subscribe(&app, from_earliest()).await;
    let ids: HashMap<String, u64> = next_events(&mut stream, 2, WAIT)
        .await
        .into_iter()
        .map(|e| (e.webhook_event_id, e.sequence))
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains_key("o-0") && ids.contains_key("n-0"));
}
