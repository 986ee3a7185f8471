use std::{
    path::{Path, PathBuf},
    sync::LazyLock,
};

use proptest::{prelude::*, sample::Index};

use super::*;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/line-fixtures/webhooks")
}

/// Every fixture body as (file name, bytes), sorted by name.
static FIXTURES: LazyLock<Vec<(String, Vec<u8>)>> = LazyLock::new(|| {
    let mut fixtures: Vec<_> = std::fs::read_dir(fixture_dir())
        .expect("fixture directory ../shared/line-fixtures/webhooks")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    fixtures.sort();
    fixtures
});

/// Every event object of every fixture, as parsed JSON.
static FIXTURE_EVENTS: LazyLock<Vec<Value>> = LazyLock::new(|| {
    FIXTURES
        .iter()
        .flat_map(|(_, body)| {
            let body: Value = serde_json::from_slice(body).unwrap();
            body["events"].as_array().unwrap().clone()
        })
        .collect()
});

fn event(file: &str, index: usize) -> ParsedEvent {
    let body = std::fs::read(fixture_dir().join(file)).unwrap();
    parse_body(&body).unwrap().events.swap_remove(index)
}

fn message(parsed: &ParsedEvent) -> &pb::MessageContent {
    match &parsed.event.payload {
        Some(Payload::Message(pb::MessageEvent { message: Some(m) })) => m,
        other => panic!("not a message event: {other:?}"),
    }
}

fn content(parsed: &ParsedEvent) -> &Content {
    message(parsed).content.as_ref().unwrap()
}

fn millis(ms: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: ms / 1000,
        nanos: (ms % 1000) as i32 * 1_000_000,
    })
}

/// The event type each payload case belongs to.
fn type_of_payload(payload: &Payload) -> pb::EventType {
    use pb::EventType as T;
    match payload {
        Payload::Message(_) => T::Message,
        Payload::MessageEdited(_) => T::MessageEdited,
        Payload::Unsend(_) => T::Unsend,
        Payload::Follow(_) => T::Follow,
        Payload::Unfollow(_) => T::Unfollow,
        Payload::Join(_) => T::Join,
        Payload::Leave(_) => T::Leave,
        Payload::MemberJoined(_) => T::MemberJoined,
        Payload::MemberLeft(_) => T::MemberLeft,
        Payload::Postback(_) => T::Postback,
        Payload::VideoPlayComplete(_) => T::VideoPlayComplete,
        Payload::Beacon(_) => T::Beacon,
        Payload::AccountLink(_) => T::AccountLink,
        Payload::Things(_) => T::Things,
        Payload::Membership(_) => T::Membership,
        Payload::Module(_) => T::Module,
        Payload::Activated(_) => T::Activated,
        Payload::Deactivated(_) => T::Deactivated,
        Payload::BotSuspended(_) => T::BotSuspended,
        Payload::BotResumed(_) => T::BotResumed,
        Payload::Delivery(_) => T::Delivery,
        Payload::Unknown(_) => T::Unknown,
        Payload::DeadLetter(_) => T::DeadLetter,
        Payload::Outbound(_) => T::Outbound,
        Payload::Profile(_) => T::Profile,
    }
}

/// The invariants every successfully parsed event keeps.
fn assert_consistent(parsed: &ParsedEvent) {
    let event = &parsed.event;
    assert_eq!(event.r#type(), event_type_of(&event.type_name));
    let payload = event.payload.as_ref().expect("payload is always set");
    assert_eq!(type_of_payload(payload), event.r#type());
    if let Payload::Unknown(unknown) = payload {
        assert_eq!(unknown.type_name, event.type_name);
    }
    assert!(!event.webhook_event_id.is_empty());
    assert_eq!(event.sequence, 0);
    assert!(event.channel_id.is_empty() && event.destination.is_empty());
    assert!(event.receive_time.is_none());
    let source = event.source.clone().unwrap_or_default();
    let expected = [source.group_id, source.room_id, source.user_id]
        .into_iter()
        .find(|id| !id.is_empty())
        .unwrap_or_default();
    assert_eq!(parsed.conversation_id, expected);
}

// ---- 1. every fixture -------------------------------------------------

#[test]
fn every_fixture_parses_and_keeps_each_event_byte_for_byte() {
    // README: 74 bodies, 180 events; none is malformed on purpose.
    assert_eq!(FIXTURES.len(), 74);
    let mut total = 0;
    for (name, body) in FIXTURES.iter() {
        let parsed = parse_body(body).unwrap_or_else(|err| panic!("{name}: {err}"));
        let text = std::str::from_utf8(body).unwrap();
        let raw: Value = serde_json::from_str(text).unwrap();
        let raw_events = raw["events"].as_array().unwrap();
        assert_eq!(parsed.destination, raw["destination"].as_str().unwrap());
        assert_eq!(parsed.events.len(), raw_events.len(), "{name}");
        let mut offset = 0;
        for (parsed, raw_event) in parsed.events.iter().zip(raw_events) {
            let event = &parsed.event;
            let json: Value = serde_json::from_str(&event.json).unwrap();
            assert_eq!(&json, raw_event, "{name}");
            // Exact bytes, in body order.
            let at = text[offset..].find(&event.json).expect("json is a slice") + offset;
            offset = at + event.json.len();
            assert_eq!(event.type_name, raw_event["type"].as_str().unwrap());
            assert_eq!(
                event.webhook_event_id,
                raw_event["webhookEventId"].as_str().unwrap()
            );
            assert_eq!(
                event.is_redelivery,
                raw_event["deliveryContext"]["isRedelivery"] == true
            );
            assert_eq!(
                event.reply_token,
                raw_event["replyToken"].as_str().unwrap_or("")
            );
            assert_eq!(event.source.is_some(), raw_event.get("source").is_some());
            assert!(event.timestamp.is_some(), "{name}");
            assert_ne!(event.mode(), pb::EventMode::Unspecified, "{name}");
            assert_consistent(parsed);
        }
        total += parsed.events.len();
    }
    assert_eq!(total, 180);
}

#[test]
fn every_event_type_is_covered_by_the_fixtures() {
    let seen: std::collections::HashSet<_> = FIXTURE_EVENTS
        .iter()
        .map(|raw| event_type_of(raw["type"].as_str().unwrap()))
        .collect();
    for (name, event_type) in EVENT_TYPES {
        assert!(seen.contains(event_type), "no fixture for {name}");
    }
    assert!(seen.contains(&pb::EventType::Unknown));
}

// ---- 2. targeted fixtures ---------------------------------------------

#[test]
fn text_with_emojis_mention_and_quote_token() {
    let parsed = event("ruby-text-full-group.json", 0);
    let m = message(&parsed);
    assert_eq!(m.id, "444573844083572737");
    assert_eq!(m.type_name, "text");
    assert_eq!(m.quote_token, "q3Plxr4AgKd...");
    let Content::Text(text) = content(&parsed) else {
        panic!()
    };
    assert_eq!(text.text, "@All @example Good Morning!! (love)");
    assert_eq!(
        text.emojis,
        [pb::Emoji {
            index: 29,
            length: 6,
            product_id: "5ac1bfd5040ab15980c9b435".into(),
            emoji_id: "001".into(),
        }]
    );
    let mention = text.mention.as_ref().unwrap();
    assert_eq!(
        mention.mentionees,
        [
            pb::Mentionee {
                index: 0,
                length: 4,
                r#type: pb::MentioneeType::All.into(),
                ..Default::default()
            },
            pb::Mentionee {
                index: 5,
                length: 8,
                r#type: pb::MentioneeType::User.into(),
                user_id: "U49585cd0d5...".into(),
                is_self: false,
            },
        ]
    );
    assert!(text.quoted_message_id.is_empty());
    // Group source with a user: the chat is the group.
    let source = parsed.event.source.as_ref().unwrap();
    assert_eq!(source.r#type(), pb::SourceType::Group);
    assert_eq!(source.user_id, "U4af4980629...");
    assert_eq!(parsed.conversation_id, "Ca56f94637c...");
    assert_eq!(parsed.event.timestamp, millis(1_462_629_479_859));
    assert_eq!(parsed.event.mode(), pb::EventMode::Active);
    assert_eq!(parsed.event.reply_token, "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA");
}

#[test]
fn text_with_mark_as_read_token_and_quoted_message() {
    let parsed = event("derived-text-quoted.json", 0);
    assert_eq!(
        message(&parsed).mark_as_read_token,
        "markAsReadTokenExample"
    );
    let Content::Text(text) = content(&parsed) else {
        panic!()
    };
    assert_eq!(text.text, " Hi ");
    assert_eq!(text.quoted_message_id, "325708");
    assert!(text.mention.is_none() && text.emojis.is_empty());

    // A mention of a user who shares no profile has no userId.
    let parsed = event("java-text-mention.json", 0);
    let Content::Text(text) = content(&parsed) else {
        panic!()
    };
    let mentionees = &text.mention.as_ref().unwrap().mentionees;
    assert_eq!(mentionees[0].user_id, "U12345678901234567890123456780");
    assert_eq!(mentionees[1].r#type(), pb::MentioneeType::All);
    assert!(mentionees[1].user_id.is_empty());
}

#[test]
fn image_external_and_image_set() {
    let parsed = event("java-image.json", 0);
    let Content::Image(image) = content(&parsed) else {
        panic!()
    };
    assert_eq!(
        image.content_provider,
        Some(pb::ContentProvider {
            r#type: pb::ContentProviderType::External.into(),
            original_content_url: "https://example.com/original.jpg".into(),
            preview_image_url: "https://example.com/preview.jpg".into(),
        })
    );
    assert!(image.image_set.is_none());

    let parsed = event("ruby-image-set-two.json", 0);
    let Content::Image(image) = content(&parsed) else {
        panic!()
    };
    let provider = image.content_provider.as_ref().unwrap();
    assert_eq!(provider.r#type(), pb::ContentProviderType::Line);
    assert!(provider.original_content_url.is_empty());
    assert_eq!(
        image.image_set,
        Some(pb::ImageSet {
            id: "E005D41A7288F41B65593ED38FF6E9834B046AB36A37921A56BC236F13A91855".into(),
            index: 1,
            total: 2,
        })
    );
    assert_eq!(message(&parsed).quote_token, "q3Plxr4AgKd...");
}

#[test]
fn video_audio_file_location() {
    let Content::Video(video) = content(&event("ruby-video.json", 0)).clone() else {
        panic!()
    };
    assert_eq!(video.duration_ms, 60_000);
    let provider = video.content_provider.unwrap();
    assert_eq!(provider.r#type(), pb::ContentProviderType::External);
    assert_eq!(
        provider.original_content_url,
        "https://example.com/original.mp4"
    );
    assert_eq!(
        provider.preview_image_url,
        "https://example.com/preview.jpg"
    );

    let Content::Audio(audio) = content(&event("ruby-audio.json", 0)).clone() else {
        panic!()
    };
    assert_eq!(audio.duration_ms, 60_000);
    assert_eq!(
        audio.content_provider.unwrap().r#type(),
        pb::ContentProviderType::Line
    );

    let parsed = event("ruby-file.json", 0);
    assert_eq!(
        content(&parsed),
        &Content::File(pb::FileContent {
            file_name: "file.txt".into(),
            file_size_bytes: 2138,
        })
    );
    assert!(message(&parsed).quote_token.is_empty());

    assert_eq!(
        content(&event("ruby-location.json", 0)),
        &Content::Location(pb::LocationContent {
            title: "my location".into(),
            address: "日本、〒102-8282 東京都千代田区紀尾井町1番3号".into(),
            latitude: 35.67966,
            longitude: 139.73669,
        })
    );
    // php-batch[6]: a location without title.
    let Content::Location(location) = content(&event("php-batch.json", 6)).clone() else {
        panic!()
    };
    assert!(location.title.is_empty());
    assert_eq!(location.latitude, -34.12);
}

#[test]
fn stickers() {
    assert_eq!(
        content(&event("java-sticker-with-text.json", 0)),
        &Content::Sticker(pb::StickerContent {
            package_id: "1".into(),
            sticker_id: "1".into(),
            resource_type: pb::StickerResourceType::Message.into(),
            resource_type_name: "MESSAGE".into(),
            keywords: vec!["bed".into(), "sleep".into(), "bedtime".into()],
            text: "userEnteredText".into(),
            quoted_message_id: String::new(),
        })
    );
    let Content::Sticker(sticker) = content(&event("go-batch.json", 10)).clone() else {
        panic!()
    };
    assert_eq!(
        sticker.resource_type(),
        pb::StickerResourceType::AnimationSound
    );
    let parsed = event("ruby-sticker-animation.json", 0);
    let Content::Sticker(sticker) = content(&parsed) else {
        panic!()
    };
    assert_eq!(sticker.resource_type(), pb::StickerResourceType::Animation);
    assert_eq!(sticker.keywords.len(), 14);
    assert_eq!(message(&parsed).quote_token, "q3Plxr4AgKd...");
}

#[test]
fn group_and_room_sources() {
    // Group without a user id.
    let parsed = event("java-text-group.json", 0);
    let source = parsed.event.source.as_ref().unwrap();
    assert_eq!(source.r#type(), pb::SourceType::Group);
    assert_eq!(source.type_name, "group");
    assert!(source.user_id.is_empty());
    assert_eq!(parsed.conversation_id, "u206d25c2ea6bd87c17655609a1c37cb8");

    let parsed = event("python-v3-batch.json", 15);
    let source = parsed.event.source.as_ref().unwrap();
    assert_eq!(source.r#type(), pb::SourceType::Room);
    assert_eq!(source.room_id, "Ra8dbf4673c4c812cd491258042226c99");
    assert_eq!(parsed.conversation_id, "Ra8dbf4673c4c812cd491258042226c99");

    let parsed = event("java-text-user.json", 0);
    assert_eq!(
        parsed.event.source.as_ref().unwrap().r#type(),
        pb::SourceType::User
    );
    assert_eq!(parsed.conversation_id, "u206d25c2ea6bd87c17655609a1c37cb8");
}

#[test]
fn member_joined_and_left() {
    let parsed = event("ruby-member-joined.json", 0);
    let Some(Payload::MemberJoined(joined)) = &parsed.event.payload else {
        panic!()
    };
    let ids: Vec<_> = joined.members.iter().map(|m| m.user_id.as_str()).collect();
    assert_eq!(ids, ["U4af4980629...", "U91eeaf62d9..."]);
    assert!(
        joined
            .members
            .iter()
            .all(|m| m.r#type() == pb::SourceType::User)
    );
    assert_eq!(parsed.conversation_id, "C4af4980629...");
    assert_eq!(parsed.event.reply_token, "0f3779fba3b349968c5d07db31eabf65");

    let parsed = event("ruby-member-left.json", 0);
    let Some(Payload::MemberLeft(left)) = &parsed.event.payload else {
        panic!()
    };
    assert!(!left.members.is_empty());
    assert!(parsed.event.reply_token.is_empty());
}

#[test]
fn postback_params() {
    let parsed = event("ruby-postback-time-params.json", 0);
    let Some(Payload::Postback(postback)) = &parsed.event.payload else {
        panic!()
    };
    assert_eq!(postback.data, "storeId=12345");
    assert_eq!(postback.params.len(), 1);
    assert_eq!(postback.params["datetime"], "2017-12-25T01:00");

    let parsed = event("ruby-postback-richmenu-params.json", 0);
    let Some(Payload::Postback(postback)) = &parsed.event.payload else {
        panic!()
    };
    assert_eq!(postback.params["newRichMenuAliasId"], "richmenu-alias-b");
    assert_eq!(postback.params["status"], "SUCCESS");
}

#[test]
fn beacon_dm_is_decoded_from_hex() {
    let parsed = event("java-beacon-with-dm.json", 0);
    assert_eq!(
        parsed.event.payload,
        Some(Payload::Beacon(pb::BeaconEvent {
            hwid: "374591320".into(),
            r#type: pb::BeaconEventType::Enter.into(),
            dm: vec![0x12, 0x34, 0x56, 0x78, 0x90, 0xab, 0xcd, 0xef],
            dm_hex: "1234567890abcdef".into(),
        }))
    );
    let Some(Payload::Beacon(beacon)) = event("java-beacon.json", 0).event.payload else {
        panic!()
    };
    assert!(beacon.dm.is_empty() && beacon.dm_hex.is_empty());
}

#[test]
fn account_link() {
    let parsed = event("java-account-link.json", 0);
    assert_eq!(
        parsed.event.payload,
        Some(Payload::AccountLink(pb::AccountLinkEvent {
            result: pb::AccountLinkResult::Ok.into(),
            nonce: "xxxxxxxxxxxxxxx".into(),
        }))
    );
    let failed = FIXTURE_EVENTS
        .iter()
        .find(|raw| raw["link"]["result"] == "failed")
        .unwrap();
    let parsed = parse_event(&failed.to_string()).unwrap();
    let Some(Payload::AccountLink(link)) = parsed.event.payload else {
        panic!()
    };
    assert_eq!(link.result(), pb::AccountLinkResult::Failed);
}

#[test]
fn things_scenario_result() {
    let parsed = event("java-things-scenario-result.json", 0);
    assert_eq!(
        parsed.event.payload,
        Some(Payload::Things(pb::ThingsEvent {
            device_id: "tXXX".into(),
            r#type: pb::ThingsEventType::ScenarioResult.into(),
            type_name: "scenarioResult".into(),
            result: Some(pb::ThingsScenarioResult {
                scenario_id: "XXX".into(),
                revision: 2,
                start_time: millis(1_547_817_845_950),
                end_time: millis(1_547_817_845_952),
                result_code: "success".into(),
                action_results: vec![
                    pb::ThingsActionResult {
                        r#type: "binary".into(),
                        data: vec![0xff],
                    },
                    pb::ThingsActionResult {
                        r#type: "void".into(),
                        data: vec![],
                    },
                    pb::ThingsActionResult {
                        r#type: "unknowType".into(),
                        data: vec![],
                    },
                ],
                ble_notification_payload: vec![0x01],
                error_reason: String::new(),
            }),
        }))
    );
    let Some(Payload::Things(things)) = event("java-things-unknown.json", 0).event.payload else {
        panic!()
    };
    assert_eq!(things.r#type(), pb::ThingsEventType::Unspecified);
    assert_eq!(things.type_name, "unknownLineThingsEvent");
    let Some(Payload::Things(things)) = event("java-things-link.json", 0).event.payload else {
        panic!()
    };
    assert_eq!(things.r#type(), pb::ThingsEventType::Link);
    assert!(things.result.is_none());
}

#[test]
fn membership() {
    let parsed = event("ruby-membership.json", 0);
    assert_eq!(
        parsed.event.payload,
        Some(Payload::Membership(pb::MembershipEvent {
            r#type: pb::MembershipEventType::Joined.into(),
            membership_id: 3189,
        }))
    );
}

#[test]
fn module_attached_and_detached_have_no_source() {
    let parsed = event("ruby-module-attached.json", 0);
    assert_eq!(
        parsed.event.payload,
        Some(Payload::Module(pb::ModuleEvent {
            type_name: "attached".into(),
            kind: Some(ModuleKind::Attached(pb::ModuleAttached {
                bot_id: "U53387d54817...".into(),
                scopes: vec!["message:send".into(), "message:receive".into()],
            })),
        }))
    );
    assert!(parsed.event.source.is_none());
    assert!(parsed.conversation_id.is_empty());
    assert!(parsed.event.reply_token.is_empty());

    let parsed = event("ruby-module-detached.json", 0);
    assert_eq!(
        parsed.event.payload,
        Some(Payload::Module(pb::ModuleEvent {
            type_name: "detached".into(),
            kind: Some(ModuleKind::Detached(pb::ModuleDetached {
                bot_id: "U5fac33f633e72c192759f09afc41fa28".into(),
                reason: "bot_deleted".into(),
            })),
        }))
    );
}

#[test]
fn activated_deactivated_suspended_resumed() {
    let parsed = event("ruby-activated.json", 0);
    assert_eq!(
        parsed.event.payload,
        Some(Payload::Activated(pb::ActivatedEvent {
            chat_control_expire_time: millis(1_653_994_422_933),
        }))
    );
    assert_eq!(parsed.event.timestamp, millis(1_653_990_823_058));
    let kinds = [
        ("ruby-deactivated.json", pb::EventType::Deactivated),
        ("ruby-bot-suspended.json", pb::EventType::BotSuspended),
        ("ruby-bot-resumed.json", pb::EventType::BotResumed),
    ];
    for (file, event_type) in kinds {
        assert_eq!(event(file, 0).event.r#type(), event_type, "{file}");
    }
}

#[test]
fn delivery_unsend_follow_video_play_complete() {
    assert_eq!(
        event("ruby-delivery-pnp.json", 0).event.payload,
        Some(Payload::Delivery(pb::PnpDeliveryEvent {
            data: "68df277462529930889fab80ecffdc0883906320591df93c25efc08300410fc2".into(),
        }))
    );
    let parsed = event("ruby-unsend.json", 0);
    assert_eq!(
        parsed.event.payload,
        Some(Payload::Unsend(pb::UnsendEvent {
            message_id: "325708".into(),
        }))
    );
    assert!(parsed.event.reply_token.is_empty());
    assert_eq!(parsed.conversation_id, "Ca56f94637c...");

    assert_eq!(
        event("ruby-follow-unblocked.json", 0).event.payload,
        Some(Payload::Follow(pb::FollowEvent { is_unblocked: true }))
    );
    assert_eq!(
        event("ruby-follow.json", 0).event.payload,
        Some(Payload::Follow(pb::FollowEvent {
            is_unblocked: false
        }))
    );
    assert_eq!(
        event("ruby-video-play-complete.json", 0).event.payload,
        Some(Payload::VideoPlayComplete(pb::VideoPlayCompleteEvent {
            tracking_id: "track-id".into(),
        }))
    );
}

#[test]
fn message_edited_carries_the_message() {
    let parsed = event("ruby-message-edited.json", 0);
    let Some(Payload::MessageEdited(pb::MessageEditedEvent { message: Some(m) })) =
        &parsed.event.payload
    else {
        panic!()
    };
    assert_eq!(m.id, "444573844083572737");
    let Some(Content::Text(text)) = &m.content else {
        panic!()
    };
    assert_eq!(text.text, "Hello, world! (edited)");
    assert_eq!(parsed.event.r#type(), pb::EventType::MessageEdited);
}

#[test]
fn standby_mode_and_redelivery() {
    // LINE's SDK fixtures keep a replyToken on standby events; it is mapped
    // as sent (Messaging.Send is what refuses standby tokens).
    let parsed = event("go-batch.json", 27);
    assert_eq!(parsed.event.mode(), pb::EventMode::Standby);
    assert_eq!(parsed.event.reply_token, "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA");
    // The usual live shape: standby without a reply token.
    let parsed = parse_event(
        r#"{"type":"message","mode":"standby","webhookEventId":"01H","timestamp":1,
            "source":{"type":"user","userId":"U1"},"message":{"id":"1","type":"text","text":"hi"}}"#,
    )
    .unwrap();
    assert_eq!(parsed.event.mode(), pb::EventMode::Standby);
    assert!(parsed.event.reply_token.is_empty());

    let original = event("java-text-user.json", 0);
    let again = event("redelivery-dup-of-java-text-user.json", 0);
    assert!(!original.event.is_redelivery);
    assert!(again.event.is_redelivery);
    assert_eq!(
        original.event.webhook_event_id,
        again.event.webhook_event_id
    );
    assert_eq!(original.event.reply_token, again.event.reply_token);
    assert!(event("java-webhook-redelivery.json", 0).event.is_redelivery);
    // go-batch: the in-body duplicate.
    let batch = parse_body(&std::fs::read(fixture_dir().join("go-batch.json")).unwrap()).unwrap();
    assert_eq!(
        batch.events[0].event.webhook_event_id,
        batch.events[1].event.webhook_event_id
    );
    assert!(batch.events[1].event.is_redelivery);
}

#[test]
fn unknown_event_types_keep_common_fields() {
    let parsed = event("ruby-unknown-event-type.json", 0);
    assert_eq!(parsed.event.r#type(), pb::EventType::Unknown);
    assert_eq!(parsed.event.type_name, "hoge");
    assert_eq!(
        parsed.event.payload,
        Some(Payload::Unknown(pb::UnknownEvent {
            type_name: "hoge".into(),
        }))
    );
    assert_eq!(parsed.event.timestamp, millis(1_650_591_346_705));
    assert!(parsed.event.json.contains(r#""bar": "baz""#));

    let parsed = event("java-unknown.json", 0);
    assert_eq!(parsed.event.type_name, "greatNewFeature");
    assert_eq!(parsed.conversation_id, "U012345678901234567890123456789ab");
    assert_eq!(parsed.event.reply_token, "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA");

    let parsed = event("node-unknown-great-new-event.json", 0);
    assert_eq!(parsed.event.r#type(), pb::EventType::Unknown);
    assert!(parsed.event.source.is_none());
}

#[test]
fn unknown_message_and_source_types() {
    let parsed = event("ruby-unknown-message-type.json", 0);
    let m = message(&parsed);
    assert_eq!(m.type_name, "hoge");
    assert_eq!(m.quote_token, "q3Plxr4AgKd...");
    assert_eq!(
        m.content,
        Some(Content::Unknown(pb::UnknownContent {
            type_name: "hoge".into(),
        }))
    );

    let parsed = event("java-unknown.json", 1);
    let source = parsed.event.source.as_ref().unwrap();
    assert_eq!(source.r#type(), pb::SourceType::Unspecified);
    assert_eq!(source.type_name, "unknownunknownuknown");
    assert!(parsed.conversation_id.is_empty());
    assert!(
        matches!(content(&parsed), Content::Unknown(u) if u.type_name == "unknownunknownuknown")
    );
}

#[test]
fn event_type_names() {
    assert_eq!(event_type_of("message"), pb::EventType::Message);
    assert_eq!(event_type_of("messageEdited"), pb::EventType::MessageEdited);
    assert_eq!(event_type_of("delivery"), pb::EventType::Delivery);
    assert_eq!(
        event_type_of("videoPlayComplete"),
        pb::EventType::VideoPlayComplete
    );
    for other in ["", "Message", "hoge", "EVENT_TYPE_MESSAGE", "deadLetter"] {
        assert_eq!(event_type_of(other), pb::EventType::Unknown, "{other}");
    }
    assert_eq!(EVENT_TYPES.len(), 21);
}

// ---- 3. errors and leniency --------------------------------------------

fn error(body: &str) -> String {
    parse_body(body.as_bytes()).unwrap_err().0
}

const OK_EVENT: &str = r#"{"type":"follow","webhookEventId":"01A"}"#;

#[test]
fn malformed_bodies_are_refused_with_a_precise_reason() {
    assert!(error("<html>").starts_with("body is not valid JSON: expected value"));
    assert!(error("").starts_with("body is not valid JSON: EOF"));
    assert!(error(r#"{"events":[]} x"#).starts_with("body is not valid JSON: trailing"));
    assert!(
        parse_body(b"{\"events\":[\xff]}")
            .unwrap_err()
            .0
            .starts_with("body is not UTF-8: ")
    );
    assert_eq!(error("[]"), "body must be a JSON object, found array");
    assert_eq!(
        error("\"events\""),
        "body must be a JSON object, found string"
    );
    assert_eq!(
        error(r#"{"destination":"U1"}"#),
        "missing array field `events`"
    );
    assert_eq!(
        error(r#"{"events":{}}"#),
        "`events` must be an array, found object"
    );
    assert_eq!(
        error(r#"{"events":null}"#),
        "`events` must be an array, found null"
    );
    assert_eq!(
        error(r#"{"destination":1,"events":[]}"#),
        "`destination` must be a string, found number"
    );
    assert_eq!(
        error(r#"{"destination":null,"events":[]}"#),
        "`destination` must be a string, found null"
    );
    assert!(error(r#"{"events":[],"events":[]}"#).contains("duplicate field `events`"));
    assert_eq!(
        error(&format!(r#"{{"events":[{OK_EVENT},3]}}"#)),
        "events[1]: must be a JSON object, found number"
    );
    assert_eq!(
        error(r#"{"events":[{"type":"message"}]}"#),
        "events[0]: missing string field `webhookEventId`"
    );
    assert_eq!(
        error(r#"{"events":[{"webhookEventId":"01A"}]}"#),
        "events[0]: missing string field `type`"
    );
    assert_eq!(
        error(r#"{"events":[{"type":"","webhookEventId":"01A"}]}"#),
        "events[0]: string field `type` is empty"
    );
    assert_eq!(
        error(r#"{"events":[{"type":"follow","webhookEventId":""}]}"#),
        "events[0]: string field `webhookEventId` is empty"
    );
    assert_eq!(
        error(r#"{"events":[{"type":7,"webhookEventId":"01A"}]}"#),
        "events[0]: `type` must be a string, found number"
    );
    assert!(
        error(r#"{"events":[{"type":"\udc00","webhookEventId":"01A"}]}"#)
            .starts_with("events[0]: `type`: ")
    );
    // One bad event refuses the whole body.
    assert!(error(&format!(r#"{{"events":[{OK_EVENT},{{}}]}}"#)).starts_with("events[1]: "));

    assert_eq!(
        parse_event("[1]").unwrap_err().0,
        "event: must be a JSON object, found array"
    );
    assert_eq!(
        parse_event(r#"{"type":"x"}"#).unwrap_err().0,
        "event: missing string field `webhookEventId`"
    );
    assert!(
        parse_event("{")
            .unwrap_err()
            .0
            .starts_with("event is not valid JSON: ")
    );
}

#[test]
fn verify_request_and_envelope_leniency() {
    let parsed =
        parse_body(br#"{"destination":"U44c37412fa72a30032cfdc3394853081","events":[]}"#).unwrap();
    assert_eq!(parsed.destination, "U44c37412fa72a30032cfdc3394853081");
    assert!(parsed.events.is_empty());

    let parsed =
        parse_body(format!(r#" {{"events":[ {OK_EVENT} ],"extra":[[{{}}]]}} "#).as_bytes())
            .unwrap();
    assert!(parsed.destination.is_empty());
    assert_eq!(parsed.events[0].event.json, OK_EVENT);
    assert_eq!(
        parse_event(&format!("\n {OK_EVENT}\t")).unwrap().event.json,
        OK_EVENT
    );
}

#[test]
fn known_types_with_missing_or_mistyped_fields_still_parse() {
    let parsed = parse_event(
        r#"{"type":"message","webhookEventId":"01A","timestamp":"yesterday","mode":5,
            "source":"user","replyToken":7,"deliveryContext":{"isRedelivery":"yes"},
            "message":{"type":"text","id":1,"text":42,"emojis":"none",
                       "mention":{"mentionees":[1,{"index":"0","length":99999999999,"type":"everyone"}]}}}"#,
    )
    .unwrap();
    let event = &parsed.event;
    assert_eq!(event.r#type(), pb::EventType::Message);
    assert!(event.timestamp.is_none() && event.source.is_none());
    assert_eq!(event.mode(), pb::EventMode::Unspecified);
    assert!(!event.is_redelivery && event.reply_token.is_empty());
    assert!(parsed.conversation_id.is_empty());
    let Content::Text(text) = content(&parsed) else {
        panic!()
    };
    assert!(text.text.is_empty() && text.emojis.is_empty());
    assert_eq!(
        text.mention.as_ref().unwrap().mentionees,
        [pb::Mentionee::default()]
    );

    // No `message` at all: the payload case is still set.
    let parsed = parse_event(r#"{"type":"message","webhookEventId":"01A"}"#).unwrap();
    assert_eq!(
        parsed.event.payload,
        Some(Payload::Message(pb::MessageEvent { message: None }))
    );
    // A message without a type is an unknown content.
    let parsed =
        parse_event(r#"{"type":"messageEdited","webhookEventId":"01A","message":{}}"#).unwrap();
    let Some(Payload::MessageEdited(edited)) = parsed.event.payload else {
        panic!()
    };
    assert_eq!(
        edited.message.unwrap().content,
        Some(Content::Unknown(pb::UnknownContent::default()))
    );

    // Out-of-range timestamps stay unset; negative ones are fine.
    let parsed = parse_event(
        r#"{"type":"activated","webhookEventId":"01A","timestamp":-1,
            "chatControl":{"expireAt":9223372036854775807}}"#,
    )
    .unwrap();
    assert_eq!(
        parsed.event.timestamp,
        Some(Timestamp {
            seconds: -1,
            nanos: 999_000_000
        })
    );
    assert_eq!(
        parsed.event.payload,
        Some(Payload::Activated(pb::ActivatedEvent::default()))
    );

    // Non-string postback params keep their JSON text; bad hex and base64 decode to nothing.
    let parsed = parse_event(
        r#"{"type":"postback","webhookEventId":"01A","postback":{"data":"d","params":{"n":1,"o":{"a":null},"s":"x"}}}"#,
    )
    .unwrap();
    let Some(Payload::Postback(postback)) = parsed.event.payload else {
        panic!()
    };
    assert_eq!(postback.params["n"], "1");
    assert_eq!(postback.params["o"], r#"{"a":null}"#);
    assert_eq!(postback.params["s"], "x");
    let parsed = parse_event(
        r#"{"type":"beacon","webhookEventId":"01A","beacon":{"dm":"xyz","type":"leave"}}"#,
    )
    .unwrap();
    let Some(Payload::Beacon(beacon)) = parsed.event.payload else {
        panic!()
    };
    assert_eq!((beacon.dm_hex.as_str(), beacon.dm.len()), ("xyz", 0));
    assert_eq!(beacon.r#type(), pb::BeaconEventType::Unspecified);
    let parsed = parse_event(
        r#"{"type":"things","webhookEventId":"01A","things":{"result":{"bleNotificationPayload":"!!","actionResults":[{"data":5}]}}}"#,
    )
    .unwrap();
    let Some(Payload::Things(things)) = parsed.event.payload else {
        panic!()
    };
    let result = things.result.unwrap();
    assert!(result.ble_notification_payload.is_empty());
    assert_eq!(result.action_results, [pb::ThingsActionResult::default()]);

    // Unrecognised module type: no kind, raw name kept.
    let parsed =
        parse_event(r#"{"type":"module","webhookEventId":"01A","module":{"type":"moved"}}"#)
            .unwrap();
    assert_eq!(
        parsed.event.payload,
        Some(Payload::Module(pb::ModuleEvent {
            type_name: "moved".into(),
            kind: None,
        }))
    );
}

#[test]
fn deep_nesting_neither_panics_nor_loses_the_event() {
    let deep = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    // A field nested beyond serde_json's recursion limit loses only its typed mapping.
    let raw = format!(
        r#"{{"type":"message","webhookEventId":"01A","message":{},"replyToken":"r"}}"#,
        deep(100_000)
    );
    let parsed = parse_event(&raw).unwrap();
    assert_eq!(parsed.event.reply_token, "r");
    assert_eq!(
        parsed.event.payload,
        Some(Payload::Message(pb::MessageEvent { message: None }))
    );
    assert_eq!(parsed.event.json.len(), raw.len());
    assert_eq!(
        error(&deep(100_000)),
        "body must be a JSON object, found array"
    );
    assert_eq!(
        error(&format!(r#"{{"events":[{}]}}"#, deep(100_000))),
        "events[0]: must be a JSON object, found array"
    );
    let body = format!(r#"{{"x":{},"events":[{OK_EVENT}]}}"#, deep(100_000));
    assert_eq!(parse_body(body.as_bytes()).unwrap().events.len(), 1);
}

/// Found by the fuzz suite in CI: JSON numbers have no range (RFC 8259),
/// so a body may carry one no f64 holds. The event is kept byte for byte;
/// only the typed field is left unset.
#[test]
fn numbers_beyond_f64_keep_the_event_verbatim() {
    let raw =
        r#"{"type":"follow","webhookEventId":"01A","timestamp":1e530385949997,"mode":"active"}"#;
    assert!(serde_json::from_str::<Value>(raw).is_err());
    let body = format!(r#"{{"destination":"U1","events":[{raw}]}}"#);
    let parsed = parse_body(body.as_bytes()).unwrap();
    let event = &parsed.events[0].event;
    assert_eq!(event.json, raw);
    assert_eq!(event.timestamp, None);
    assert_eq!(event.mode(), pb::EventMode::Active);
    assert_eq!(event.r#type(), pb::EventType::Follow);
}

// ---- 4. properties -------------------------------------------------------

/// Field names LINE uses, so that random objects hit the typed mappers.
const KEYS: &[&str] = &[
    "type",
    "webhookEventId",
    "timestamp",
    "mode",
    "deliveryContext",
    "isRedelivery",
    "source",
    "userId",
    "groupId",
    "roomId",
    "replyToken",
    "message",
    "id",
    "text",
    "emojis",
    "index",
    "length",
    "productId",
    "emojiId",
    "mention",
    "mentionees",
    "isSelf",
    "quotedMessageId",
    "quoteToken",
    "markAsReadToken",
    "contentProvider",
    "originalContentUrl",
    "previewImageUrl",
    "imageSet",
    "total",
    "duration",
    "fileName",
    "fileSize",
    "title",
    "address",
    "latitude",
    "longitude",
    "packageId",
    "stickerId",
    "stickerResourceType",
    "keywords",
    "unsend",
    "messageId",
    "follow",
    "isUnblocked",
    "joined",
    "left",
    "members",
    "postback",
    "data",
    "params",
    "videoPlayComplete",
    "trackingId",
    "beacon",
    "hwid",
    "dm",
    "link",
    "result",
    "nonce",
    "things",
    "deviceId",
    "scenarioId",
    "revision",
    "startTime",
    "endTime",
    "resultCode",
    "actionResults",
    "bleNotificationPayload",
    "errorReason",
    "membership",
    "membershipId",
    "module",
    "botId",
    "scopes",
    "reason",
    "chatControl",
    "expireAt",
    "delivery",
    "events",
    "destination",
];

/// String values LINE uses as discriminators and encodings.
const WORDS: &[&str] = &[
    "message",
    "messageEdited",
    "postback",
    "beacon",
    "things",
    "module",
    "text",
    "image",
    "video",
    "audio",
    "file",
    "location",
    "sticker",
    "user",
    "group",
    "room",
    "active",
    "standby",
    "enter",
    "ok",
    "failed",
    "scenarioResult",
    "joined",
    "attached",
    "detached",
    "line",
    "external",
    "all",
    "STATIC",
    "MESSAGE",
    "AQ==",
    "/w==",
    "12ab",
    "zz",
    "",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Non-finite floats become null.
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        prop::sample::select(WORDS).prop_map(Value::from),
    ];
    leaf.prop_recursive(10, 96, 6, |inner| {
        let key = prop_oneof![
            prop::sample::select(KEYS).prop_map(str::to_owned),
            any::<String>(),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// An event object with random fields, a type that is mostly a LINE
/// type, and a random id (possibly empty).
fn arb_event() -> impl Strategy<Value = (Value, String, String)> {
    let type_name = prop_oneof![
        prop::sample::select(EVENT_TYPES).prop_map(|(name, _)| name.to_owned()),
        any::<String>(),
    ];
    let id = prop_oneof![Just(String::new()), "[0-9A-Z]{26}", any::<String>()];
    (arb_json(), type_name, id).prop_map(|(fields, type_name, id)| {
        let mut event = match fields {
            Value::Object(map) => map,
            other => [("message".to_owned(), other)].into_iter().collect(),
        };
        event.insert("type".into(), type_name.clone().into());
        event.insert("webhookEventId".into(), id.clone().into());
        (Value::Object(event), type_name, id)
    })
}

/// Replaces the value at a path chosen by `steps` with `replacement`,
/// leaving the event's own `type` and `webhookEventId` alone.
fn mutate(value: &mut Value, steps: &[Index], replacement: Value, top: bool) {
    let Some((step, rest)) = steps.split_first() else {
        *value = replacement;
        return;
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            let at = step.index(map.len());
            let (key, child) = map.iter_mut().nth(at).unwrap();
            if !(top && (key == "type" || key == "webhookEventId")) {
                mutate(child, rest, replacement, false);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let at = step.index(items.len());
            mutate(&mut items[at], rest, replacement, false);
        }
        _ => *value = replacement,
    }
}

/// The one-pass read of an event and the field-by-field one, which the
/// first falls back on, agree on every event and on every refusal.
fn assert_both_reads_agree(json: &str) {
    let Ok(raw) = serde_json::from_str::<&RawValue>(json) else {
        return;
    };
    let one_pass = parse_raw_event(raw).map(|p| (p.event, p.conversation_id));
    let by_field = parse_field_by_field(raw).map(|p| (p.event, p.conversation_id));
    if json_kind(raw) == "object" {
        assert_eq!(one_pass, by_field, "{json}");
    }
}

#[test]
fn every_fixture_event_reads_the_same_in_one_pass_and_field_by_field() {
    assert_eq!(FIXTURE_EVENTS.len(), 180);
    for event in FIXTURE_EVENTS.iter() {
        let json = event.to_string();
        let raw: &RawValue = serde_json::from_str(&json).unwrap();
        let one_pass = parse_raw_event(raw).unwrap();
        let by_field = parse_field_by_field(raw).unwrap();
        assert_eq!(one_pass.event, by_field.event, "{json}");
        assert_eq!(one_pass.conversation_id, by_field.conversation_id);
    }
}

#[test]
fn a_refused_event_names_its_field_alike_in_both_reads() {
    for json in [
        r#"{"webhookEventId":"01"}"#,
        r#"{"type":7,"webhookEventId":"01"}"#,
        r#"{"type":"","webhookEventId":"01"}"#,
        r#"{"type":"message","webhookEventId":null}"#,
        r#"{"type":"message","webhookEventId":["01"]}"#,
        r#"{"type":"message","webhookEventId":{"a":1}}"#,
        r#"{"type":"message","webhookEventId":true}"#,
        r#"{"type":"message","webhookEventId":"\ud800"}"#,
        r#"{"type":"message"}"#,
    ] {
        let raw: &RawValue = serde_json::from_str(json).unwrap();
        let one_pass = parse_raw_event(raw).unwrap_err();
        assert_eq!(one_pass, parse_field_by_field(raw).unwrap_err(), "{json}");
    }
}

fn check_body(body: &[u8]) {
    if let Ok(parsed) = parse_body(body) {
        let raw: Value = serde_json::from_slice(body).unwrap();
        let raw_events = raw["events"].as_array().unwrap();
        assert_eq!(parsed.events.len(), raw_events.len());
        for (event, raw_event) in parsed.events.iter().zip(raw_events) {
            assert_eq!(
                &serde_json::from_str::<Value>(&event.event.json).unwrap(),
                raw_event
            );
            assert_consistent(event);
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check_body(&body);
    }

    #[test]
    fn json_like_text_never_panics(body in r#"[\[\]{}":, 0-9a-zA-Z.\\-]{0,200}"#) {
        check_body(body.as_bytes());
        let _ = parse_event(&body);
        assert_both_reads_agree(&body);
    }

    #[test]
    fn arbitrary_json_as_body_never_panics(value in arb_json()) {
        check_body(value.to_string().as_bytes());
        let events = serde_json::json!({ "events": value });
        check_body(events.to_string().as_bytes());
        let events = serde_json::json!({ "events": [value] });
        check_body(events.to_string().as_bytes());
    }

    #[test]
    fn arbitrary_events_parse_iff_type_and_id_are_set(
        (event, type_name, id) in arb_event(),
        pretty in any::<bool>(),
    ) {
        let json = if pretty {
            serde_json::to_string_pretty(&event).unwrap()
        } else {
            event.to_string()
        };
        let body = format!("{{\"destination\": \"U1\",\n \"events\": [ {json} ]}}");
        let result = parse_body(body.as_bytes());
        prop_assert_eq!(result.is_ok(), !type_name.is_empty() && !id.is_empty());
        if let Ok(parsed) = result {
            let parsed = &parsed.events[0];
            prop_assert_eq!(&parsed.event.json, &json);
            prop_assert_eq!(&parsed.event.type_name, &type_name);
            prop_assert_eq!(&parsed.event.webhook_event_id, &id);
            assert_consistent(parsed);
            prop_assert_eq!(parse_event(&json).unwrap().event, parsed.event.clone());
        }
        assert_both_reads_agree(&json);
    }

    #[test]
    fn mistyped_fields_of_real_events_still_parse(
        index in any::<Index>(),
        steps in prop::collection::vec(any::<Index>(), 1..6),
        replacement in arb_json(),
    ) {
        let mut event = FIXTURE_EVENTS[index.index(FIXTURE_EVENTS.len())].clone();
        let type_name = event["type"].clone();
        mutate(&mut event, &steps, replacement, true);
        let json = event.to_string();
        let parsed = parse_event(&json).unwrap();
        prop_assert_eq!(&parsed.event.json, &json);
        prop_assert_eq!(Value::from(parsed.event.type_name.clone()), type_name);
        assert_consistent(&parsed);
        assert_both_reads_agree(&json);
    }
}
