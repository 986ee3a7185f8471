//! Typed `textV2` messages over the wire, against the scripted stand-in for
//! LINE: the exact JSON LINE receives for a mention and an emoji, and
//! refusals (a missing substitution, mentions where LINE takes none) that
//! name the proto field and send nothing.

mod support;

use line_adapter::proto::v1::{
    self as pb, conversation::Chat, message::Kind, text_v2_mentionee::Target,
    text_v2_substitution::Kind as Sub,
};
use support::{create_channel_with_token, fake_line::FakeLine, start_with_line, to_user};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

const PUSH: &str = "/v2/bot/message/push";
const GROUP: &str = "Ca56f94637c0123456789abcdef012345";
const CUSTOMER: &str = "U4af4980629abcdef0123456789abcdef";

fn mention(user_id: &str) -> pb::TextV2Substitution {
    pb::TextV2Substitution {
        kind: Some(Sub::Mentionee(pb::TextV2Mentionee {
            target: Some(Target::UserId(user_id.into())),
        })),
    }
}

fn laugh() -> pb::TextV2Substitution {
    pb::TextV2Substitution {
        kind: Some(Sub::Emoji(pb::TextV2Emoji {
            product_id: "5a8555cfe6256cc92ea23c2a".into(),
            emoji_id: "002".into(),
        })),
    }
}

/// "Welcome, {user1}! {laugh}" mentioning the customer, with an emoji.
fn welcome() -> pb::Message {
    pb::Message {
        kind: Some(Kind::TextV2(pb::TextV2Message {
            text: "Welcome, {user1}! {laugh} Prices are in {{JPY}}.".into(),
            substitution: [
                ("user1".into(), mention(CUSTOMER)),
                ("laugh".into(), laugh()),
            ]
            .into_iter()
            .collect(),
            quote_token: "q3Plxr4AgKd".into(),
        })),
        ..Default::default()
    }
}

fn to_group() -> Option<pb::Conversation> {
    Some(pb::Conversation {
        chat: Some(Chat::GroupId(GROUP.into())),
    })
}

/// The fields an INVALID_ARGUMENT status names in its BadRequest details.
fn violated_fields(status: &Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .expect("INVALID_ARGUMENT carries a BadRequest")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

#[tokio::test]
async fn a_push_to_a_group_sends_the_mention_and_emoji_as_line_documents() {
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

    let delivery = app
        .messaging()
        .await
        .push(pb::PushRequest {
            channel_id: channel.id.clone(),
            to: to_group(),
            messages: vec![welcome()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(delivery.state(), pb::DeliveryState::Delivered);
    assert_eq!(delivery.sent_messages[0].quote_token, "IStG5h1Tz7b");

    let requests = line.requests();
    assert_eq!(requests.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    // Key by key, and nothing more: the text as written (LINE unescapes
    // `{{JPY}}` and replaces the placeholders itself).
    assert_eq!(
        body,
        serde_json::json!({
            "to": GROUP,
            "messages": [{
                "type": "textV2",
                "text": "Welcome, {user1}! {laugh} Prices are in {{JPY}}.",
                "substitution": {
                    "user1": {
                        "type": "mention",
                        "mentionee": {"type": "user", "userId": CUSTOMER}
                    },
                    "laugh": {
                        "type": "emoji",
                        "productId": "5a8555cfe6256cc92ea23c2a",
                        "emojiId": "002"
                    }
                },
                "quoteToken": "q3Plxr4AgKd"
            }]
        })
    );
}

#[tokio::test]
async fn refusals_name_the_field_and_send_nothing() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;
    let user1 = r#"messages[0].text_v2.substitution["user1"]"#;

    // A placeholder without its substitution, and an empty user ID.
    let mut broken = welcome();
    if let Some(Kind::TextV2(m)) = &mut broken.kind {
        m.substitution.remove("laugh");
        m.substitution.insert("user1".into(), mention(""));
    }
    let status = messaging
        .push(pb::PushRequest {
            channel_id: channel.id.clone(),
            to: to_group(),
            messages: vec![broken],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&status),
        vec![
            format!("{user1}.mentionee.user_id"),
            r#"messages[0].text_v2.substitution["laugh"]"#.to_owned(),
        ]
    );

    // Mentions where LINE takes none: a user's 1:1 chat, multicast,
    // broadcast.
    let mentionee = format!("{user1}.mentionee");
    let status = messaging
        .push(pb::PushRequest {
            channel_id: channel.id.clone(),
            to: to_user(CUSTOMER),
            messages: vec![welcome()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec![mentionee.clone()]);
    assert!(status.message().contains("group or room"), "{status:?}");
    let status = messaging
        .send(pb::SendRequest {
            channel_id: channel.id.clone(),
            conversation: to_user(CUSTOMER),
            messages: vec![welcome()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec![mentionee.clone()]);
    let status = messaging
        .reply(pb::ReplyRequest {
            channel_id: channel.id.clone(),
            reply_token: "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA".into(),
            messages: vec![welcome()],
            push_fallback_to: to_user(CUSTOMER),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec![mentionee.clone()]);
    let status = messaging
        .multicast(pb::MulticastRequest {
            channel_id: channel.id.clone(),
            to: vec![CUSTOMER.into()],
            messages: vec![welcome()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec![mentionee.clone()]);
    let status = messaging
        .broadcast(pb::BroadcastRequest {
            channel_id: channel.id.clone(),
            messages: vec![welcome()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec![mentionee]);

    assert!(line.requests().is_empty(), "nothing reached LINE");
}
