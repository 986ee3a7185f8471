//! Bad input: every RPC fed empty, garbage, oversized and hostile values;
//! the webhook listener fed malformed HTTP, slow headers, huge headers and
//! wrong signatures at a high rate. Each answers a clear status, nothing
//! panics (a panic in any task fails the test), and what is stored stays
//! exactly as it was.

mod support;

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use line_adapter::proto::v1::{self as pb, conversation::Chat};
use support::{
    SECRET, TestApp, create_channel_with_token, fake_line::FakeLine, post_webhook, start_with_line,
    text_body,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_stream::StreamExt as _;
use tonic::Code;

static PANICS: AtomicUsize = AtomicUsize::new(0);

const RPCS: &[&str] = &[
    "weiyu.line.v1.ChannelAdmin/CreateChannel",
    "weiyu.line.v1.ChannelAdmin/GetChannel",
    "weiyu.line.v1.ChannelAdmin/ListChannels",
    "weiyu.line.v1.ChannelAdmin/UpdateChannel",
    "weiyu.line.v1.ChannelAdmin/DeleteChannel",
    "weiyu.line.v1.ChannelAdmin/GetWebhookUrl",
    "weiyu.line.v1.ChannelAdmin/RegisterWebhook",
    "weiyu.line.v1.ChannelAdmin/GenerateKeyPair",
    "weiyu.line.v1.ChannelAdmin/SetKid",
    "weiyu.line.v1.ChannelAdmin/RotateAccessToken",
    "weiyu.line.v1.ChannelAdmin/GetTokenStatus",
    "weiyu.line.v1.ChannelAdmin/GetBotInfo",
    "weiyu.line.v1.ChannelAdmin/GetQuota",
    "weiyu.line.v1.Messaging/Send",
    "weiyu.line.v1.Messaging/Reply",
    "weiyu.line.v1.Messaging/Push",
    "weiyu.line.v1.Messaging/Multicast",
    "weiyu.line.v1.Messaging/Broadcast",
    "weiyu.line.v1.Messaging/Narrowcast",
    "weiyu.line.v1.Messaging/GetDelivery",
    "weiyu.line.v1.Messaging/ListDeliveries",
    "weiyu.line.v1.Messaging/GetMessageContent",
    "weiyu.line.v1.Messaging/UploadMedia",
    "weiyu.line.v1.Messaging/GetProfile",
    "weiyu.line.v1.Messaging/GetGroupSummary",
    "weiyu.line.v1.Messaging/GetGroupMemberProfile",
    "weiyu.line.v1.Messaging/ShowLoadingAnimation",
    "weiyu.line.v1.Messaging/MarkAsRead",
    "weiyu.line.v1.Messaging/ValidateMessages",
    "weiyu.line.v1.Messaging/Subscribe",
    "weiyu.line.v1.Messaging/Ack",
    "weiyu.line.v1.OfficialAccount/CreateRichMenu",
    "weiyu.line.v1.OfficialAccount/GetRichMenu",
    "weiyu.line.v1.OfficialAccount/ListRichMenus",
    "weiyu.line.v1.OfficialAccount/DeleteRichMenu",
    "weiyu.line.v1.OfficialAccount/SetRichMenuImage",
    "weiyu.line.v1.OfficialAccount/GetRichMenuImage",
    "weiyu.line.v1.OfficialAccount/SetDefaultRichMenu",
    "weiyu.line.v1.OfficialAccount/GetDefaultRichMenu",
    "weiyu.line.v1.OfficialAccount/ClearDefaultRichMenu",
    "weiyu.line.v1.OfficialAccount/LinkRichMenu",
    "weiyu.line.v1.OfficialAccount/UnlinkRichMenu",
    "weiyu.line.v1.OfficialAccount/GetUserRichMenu",
    "weiyu.line.v1.OfficialAccount/CreateRichMenuAlias",
    "weiyu.line.v1.OfficialAccount/UpdateRichMenuAlias",
    "weiyu.line.v1.OfficialAccount/DeleteRichMenuAlias",
    "weiyu.line.v1.OfficialAccount/ListRichMenuAliases",
    "weiyu.line.v1.OfficialAccount/StartRichMenuBatch",
    "weiyu.line.v1.OfficialAccount/GetRichMenuBatchProgress",
    "weiyu.line.v1.OfficialAccount/PublishRichMenu",
    "weiyu.line.v1.OfficialAccount/GetChatMemberIds",
    "weiyu.line.v1.OfficialAccount/GetChatMemberCount",
    "weiyu.line.v1.OfficialAccount/LeaveChat",
    "weiyu.line.v1.OfficialAccount/GetFollowerIds",
    "weiyu.line.v1.OfficialAccount/GetFollowerStats",
    "weiyu.line.v1.OfficialAccount/GetFriendsDemographics",
    "weiyu.line.v1.OfficialAccount/GetMessageDeliveryStats",
    "weiyu.line.v1.OfficialAccount/GetMessageEventStats",
    "weiyu.line.v1.OfficialAccount/GetUnitStats",
    "weiyu.line.v1.OfficialAccount/GetRichMenuStats",
    "weiyu.line.v1.OfficialAccount/ListAggregationUnits",
    "weiyu.line.v1.OfficialAccount/CreateAudience",
    "weiyu.line.v1.OfficialAccount/AddToAudience",
    "weiyu.line.v1.OfficialAccount/ListAudiences",
    "weiyu.line.v1.OfficialAccount/GetAudience",
    "weiyu.line.v1.OfficialAccount/DeleteAudience",
    "weiyu.line.v1.OfficialAccount/IssueLinkToken",
];

/// What is stored, as the API shows it: channels, token states and the
/// whole event log.
async fn snapshot(app: &TestApp) -> String {
    let channels = app
        .admin()
        .await
        .list_channels(pb::ListChannelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut text = format!("{channels:?}\n");
    for channel in &channels.channels {
        let status = app
            .admin()
            .await
            .get_token_status(pb::GetTokenStatusRequest {
                channel_id: channel.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        text.push_str(&format!("{status:?}\n"));
    }
    let mut stream = app
        .messaging()
        .await
        .subscribe(support::from_earliest())
        .await
        .unwrap()
        .into_inner();
    while let Ok(Some(Ok(item))) =
        tokio::time::timeout(Duration::from_millis(300), stream.next()).await
    {
        if let Some(pb::subscribe_response::Kind::Event(event)) = item.kind {
            text.push_str(&format!("{} {}\n", event.sequence, event.json));
        }
    }
    text
}

/// One raw gRPC call: `payload` framed as a message, the status from the
/// (trailers-only) response headers.
async fn raw_call(client: &reqwest::Client, app: &TestApp, rpc: &str, payload: &[u8]) -> String {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    framed.extend_from_slice(payload);
    let response = client
        .post(format!("http://{}/{rpc}", app.grpc_addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(framed)
        .send()
        .await
        .unwrap_or_else(|err| panic!("{rpc}: no answer: {err}"));
    response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_else(|| "in trailers".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_clear_answers_and_changes_nothing() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));

    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let client = reqwest::Client::new();
    let body = text_body("before", 3, "U1");
    assert_eq!(
        post_webhook(&client, &app, &channel.id, SECRET, &body)
            .await
            .status(),
        200
    );
    let before = snapshot(&app).await;

    // Every RPC: an empty message, garbage bytes, a wrong wire type, invalid
    // UTF-8 in field 1, a varint that never ends.
    let grpc = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let hostile: &[(&str, Vec<u8>)] = &[
        ("empty", vec![]),
        ("garbage", vec![0xff; 64]),
        ("wrong wire type", vec![0x0d, 1, 2, 3, 4]),
        ("invalid UTF-8", vec![0x0a, 3, 0xc3, 0x28, 0xa0]),
        (
            "endless varint",
            vec![
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
        ),
        ("length past the end", vec![0x0a, 0x7f, b'a']),
    ];
    for rpc in RPCS {
        for (what, payload) in hostile {
            let status = raw_call(&grpc, &app, rpc, payload).await;
            // Subscribe with an empty request starts a stream (status in
            // trailers); everything else is refused with a status.
            // An empty ListChannels or Subscribe is a valid request (the
            // answer's status comes in trailers); every other empty request
            // lacks a required field. Bytes that are not the message are
            // INTERNAL, as gRPC specifies for a request that cannot be
            // parsed, with prost's reason.
            let expected: &[&str] = match *what {
                "empty" if rpc.ends_with("/ListChannels") || rpc.ends_with("/Subscribe") => {
                    &["in trailers"]
                }
                "empty" => &["3", "5"],
                _ => &["3", "13"],
            };
            assert!(
                expected.contains(&status.as_str()),
                "{rpc} with {what}: status {status}, expected one of {expected:?}"
            );
        }
    }

    // Typed but hostile values.
    let mut admin = app.admin().await;
    let huge = "x".repeat(1024 * 1024);
    let refused = admin
        .create_channel(pb::CreateChannelRequest {
            display_name: huge.clone(),
            line_channel_id: "-1".into(),
            channel_secret: "\u{0}".repeat(32),
            channel_access_token: "tok en".into(),
            token_mode: 99,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    for field in [
        "display_name",
        "line_channel_id",
        "channel_secret",
        "channel_access_token",
        "token_mode",
    ] {
        assert!(
            refused.message().contains(field),
            "{field} named: {}",
            refused.message()
        );
    }
    assert!(
        refused.message().len() < 4096,
        "the answer does not echo the input"
    );
    let refused = admin
        .list_channels(pb::ListChannelsRequest {
            page_size: -1,
            page_token: "../../etc/passwd".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let refused = admin
        .update_channel(pb::UpdateChannelRequest {
            channel_id: channel.id.clone(),
            display_name: "\u{202e}evil\u{0007}".into(),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into(), "display_name".into(), "kid".into()],
            }),
            previous_secret_grace: Some(prost_types::Duration {
                seconds: i64::MAX,
                nanos: -1,
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let refused = admin
        .set_kid(pb::SetKidRequest {
            channel_id: channel.id.clone(),
            kid: huge.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);

    let mut messaging = app.messaging().await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let message = |kind| pb::Message {
        kind: Some(kind),
        ..Default::default()
    };
    for kind in [
        pb::message::Kind::Flex(pb::FlexMessage {
            alt_text: "deep".into(),
            contents_json: deep.clone(),
        }),
        pb::message::Kind::Template(pb::TemplateMessage {
            alt_text: "deep".into(),
            template_json: deep.clone(),
        }),
        pb::message::Kind::Text(pb::TextMessage {
            text: huge.clone(),
            ..Default::default()
        }),
        pb::message::Kind::Image(pb::ImageMessage {
            original_content_url: "javascript:alert(1)".into(),
            preview_image_url: "http://insecure.example/x.png".into(),
            ..Default::default()
        }),
    ] {
        let refused = messaging
            .push(pb::PushRequest {
                channel_id: channel.id.clone(),
                to: Some(pb::Conversation {
                    chat: Some(Chat::UserId("U1".into())),
                }),
                messages: vec![message(kind)],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(
            refused.message().contains("messages[0]"),
            "{}",
            refused.message()
        );
    }
    let refused = messaging
        .multicast(pb::MulticastRequest {
            channel_id: channel.id.clone(),
            to: vec!["U1".into(); 501],
            messages: vec![],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let refused = messaging
        .ack(pb::AckRequest {
            consumer: "\u{0}".repeat(10_000),
            sequence: u64::MAX,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let refused = messaging
        .get_message_content(pb::GetMessageContentRequest {
            channel_id: channel.id.clone(),
            message_id: "../../../etc/passwd".into(),
            preview: false,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);

    // The webhook listener: malformed HTTP, huge headers, slow headers.
    let http_addr = app.http_addr;
    let mut raw = tokio::net::TcpStream::connect(http_addr).await.unwrap();
    raw.write_all(b"\x16\x03\x01 not http at all\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    let big = client
        .post(format!("{}/webhook/line/{}", app.http_base, channel.id))
        .header("x-line-signature", "a".repeat(512 * 1024))
        .body("{}")
        .send()
        .await;
    // No answer at all (the connection closed) is a refusal too.
    if let Ok(response) = big {
        assert!(
            response.status().is_client_error(),
            "huge header: {}",
            response.status()
        );
    }
    // Wrong signatures at a high rate: all 401, nothing stored.
    let posts: Vec<_> = (0..400)
        .map(|n| {
            let (client, base, id) = (client.clone(), app.http_base.clone(), channel.id.clone());
            tokio::spawn(async move {
                let body = text_body(&format!("forged-{n}"), 1, "U1");
                client
                    .post(format!("{base}/webhook/line/{id}"))
                    .header("x-line-signature", support::fake_signature(n))
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    for post in posts {
        assert_eq!(post.await.unwrap().unwrap(), 401);
    }

    assert_eq!(snapshot(&app).await, before, "stored data unchanged");
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "no panic anywhere");
    assert!(line.requests().is_empty(), "nothing reached LINE");
}
