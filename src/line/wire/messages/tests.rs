use proptest::prelude::*;
use serde_json::json;

use super::*;

fn msg(kind: Kind) -> pb::Message {
    pb::Message {
        quick_reply: None,
        sender: None,
        kind: Some(kind),
    }
}

fn text(s: &str) -> pb::Message {
    msg(Kind::Text(pb::TextMessage {
        text: s.to_owned(),
        ..Default::default()
    }))
}

fn image(original: &str, preview: &str) -> pb::Message {
    msg(Kind::Image(pb::ImageMessage {
        original_content_url: original.to_owned(),
        preview_image_url: preview.to_owned(),
        ..Default::default()
    }))
}

fn raw(json: &str) -> pb::Message {
    msg(Kind::Raw(pb::RawMessage {
        json: json.to_owned(),
    }))
}

fn flex(alt: &str, contents: &str) -> pb::Message {
    msg(Kind::Flex(pb::FlexMessage {
        alt_text: alt.to_owned(),
        contents_json: contents.to_owned(),
    }))
}

fn imagemap() -> pb::ImagemapMessage {
    pb::ImagemapMessage {
        base_url: "https://example.com/bot/images/rm001".to_owned(),
        alt_text: "This is an imagemap".to_owned(),
        base_width: 1040,
        base_height: 1040,
        actions_json: r#"[{"type":"uri","linkUri":"https://example.com/","area":{"x":0,"y":0,"width":520,"height":1040}}]"#.to_owned(),
        video_json: String::new(),
    }
}

fn item(action: &str) -> pb::QuickReplyItem {
    pb::QuickReplyItem {
        image_url: String::new(),
        action_json: action.to_owned(),
    }
}

fn one(message: pb::Message) -> Value {
    let mut out = to_line_messages("messages", &[message]).expect("valid message");
    assert_eq!(out.len(), 1);
    out.remove(0)
}

fn errors_of(messages: &[pb::Message]) -> Vec<FieldError> {
    to_line_messages("messages", messages).expect_err("must be refused")
}

/// The fields of the errors, in order.
fn fields(messages: &[pb::Message]) -> Vec<String> {
    errors_of(messages).into_iter().map(|e| e.field).collect()
}

/// Exactly one error, on `field`; returns its reason.
fn only_error(message: pb::Message, field: &str) -> String {
    let errors = errors_of(&[message]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, field, "{errors:?}");
    errors[0].reason.clone()
}

fn nested(depth: usize) -> String {
    format!(
        r#"{{"type":"x","v":{}{}}}"#,
        "[".repeat(depth - 1),
        "]".repeat(depth - 1)
    )
}

// ---- conversion -------------------------------------------------------

#[test]
fn text_with_emojis_and_quote_token() {
    let m = msg(Kind::Text(pb::TextMessage {
        text: "$ LINE emoji $".to_owned(),
        emojis: vec![
            pb::TextMessageEmoji {
                index: 0,
                product_id: "5ac1bfd5040ab15980c9b435".to_owned(),
                emoji_id: "001".to_owned(),
            },
            pb::TextMessageEmoji {
                index: 13,
                product_id: "5ac1bfd5040ab15980c9b435".to_owned(),
                emoji_id: "002".to_owned(),
            },
        ],
        quote_token: "q3Plxr4AgKd...".to_owned(),
    }));
    assert_eq!(
        one(m),
        json!({
            "type": "text",
            "text": "$ LINE emoji $",
            "emojis": [
                {"index": 0, "productId": "5ac1bfd5040ab15980c9b435", "emojiId": "001"},
                {"index": 13, "productId": "5ac1bfd5040ab15980c9b435", "emojiId": "002"}
            ],
            "quoteToken": "q3Plxr4AgKd..."
        })
    );
}

#[test]
fn plain_text_has_only_type_and_text() {
    assert_eq!(one(text("Hello")), json!({"type": "text", "text": "Hello"}));
}

#[test]
fn sticker() {
    let m = msg(Kind::Sticker(pb::StickerMessage {
        package_id: "446".to_owned(),
        sticker_id: "1988".to_owned(),
        quote_token: "qt".to_owned(),
    }));
    assert_eq!(
        one(m),
        json!({"type": "sticker", "packageId": "446", "stickerId": "1988", "quoteToken": "qt"})
    );
    let m = msg(Kind::Sticker(pb::StickerMessage {
        package_id: "446".to_owned(),
        sticker_id: "1988".to_owned(),
        quote_token: String::new(),
    }));
    assert_eq!(
        one(m),
        json!({"type": "sticker", "packageId": "446", "stickerId": "1988"})
    );
}

#[test]
fn image_message() {
    assert_eq!(
        one(image(
            "https://example.com/original.jpg",
            "https://example.com/preview.jpg?size=s%20m"
        )),
        json!({
            "type": "image",
            "originalContentUrl": "https://example.com/original.jpg",
            "previewImageUrl": "https://example.com/preview.jpg?size=s%20m"
        })
    );
}

#[test]
fn video_message() {
    let m = msg(Kind::Video(pb::VideoMessage {
        original_content_url: "https://example.com/original.mp4".to_owned(),
        preview_image_url: "https://example.com/preview.jpg".to_owned(),
        tracking_id: "track-1234567".to_owned(),
        ..Default::default()
    }));
    assert_eq!(
        one(m),
        json!({
            "type": "video",
            "originalContentUrl": "https://example.com/original.mp4",
            "previewImageUrl": "https://example.com/preview.jpg",
            "trackingId": "track-1234567"
        })
    );
    let m = msg(Kind::Video(pb::VideoMessage {
        original_content_url: "https://example.com/original.mp4".to_owned(),
        preview_image_url: "https://example.com/preview.jpg".to_owned(),
        tracking_id: String::new(),
        ..Default::default()
    }));
    assert_eq!(
        one(m),
        json!({
            "type": "video",
            "originalContentUrl": "https://example.com/original.mp4",
            "previewImageUrl": "https://example.com/preview.jpg"
        })
    );
}

#[test]
fn audio_message() {
    let m = msg(Kind::Audio(pb::AudioMessage {
        original_content_url: "https://example.com/original.m4a".to_owned(),
        duration_ms: 60_000,
        ..Default::default()
    }));
    assert_eq!(
        one(m),
        json!({
            "type": "audio",
            "originalContentUrl": "https://example.com/original.m4a",
            "duration": 60000
        })
    );
}

#[test]
fn location_message() {
    let m = msg(Kind::Location(pb::LocationMessage {
        title: "my location".to_owned(),
        address: "1-3 Kioicho, Chiyoda-ku, Tokyo, 102-8282, Japan".to_owned(),
        latitude: 35.67966,
        longitude: 139.73669,
    }));
    assert_eq!(
        one(m),
        json!({
            "type": "location",
            "title": "my location",
            "address": "1-3 Kioicho, Chiyoda-ku, Tokyo, 102-8282, Japan",
            "latitude": 35.67966,
            "longitude": 139.73669
        })
    );
}

#[test]
fn flex_message() {
    let contents = r#"{
        "type": "bubble",
        "body": {"type": "box", "layout": "vertical",
                 "contents": [{"type": "text", "text": "hello"}]}
    }"#;
    assert_eq!(
        one(flex("This is a Flex Message", contents)),
        json!({
            "type": "flex",
            "altText": "This is a Flex Message",
            "contents": {
                "type": "bubble",
                "body": {"type": "box", "layout": "vertical",
                         "contents": [{"type": "text", "text": "hello"}]}
            }
        })
    );
}

#[test]
fn template_message() {
    let m = msg(Kind::Template(pb::TemplateMessage {
        alt_text: "this is a confirm template".to_owned(),
        template_json: r#"{"type":"confirm","text":"Are you sure?","actions":[
            {"type":"message","label":"Yes","text":"yes"},
            {"type":"message","label":"No","text":"no"}]}"#
            .to_owned(),
    }));
    assert_eq!(
        one(m),
        json!({
            "type": "template",
            "altText": "this is a confirm template",
            "template": {
                "type": "confirm",
                "text": "Are you sure?",
                "actions": [
                    {"type": "message", "label": "Yes", "text": "yes"},
                    {"type": "message", "label": "No", "text": "no"}
                ]
            }
        })
    );
}

#[test]
fn imagemap_message() {
    let mut m = imagemap();
    m.base_width = 0; // 0 means 1040
    m.base_height = 700;
    m.video_json = r#"{"originalContentUrl":"https://example.com/video.mp4",
        "previewImageUrl":"https://example.com/video_preview.jpg",
        "area":{"x":0,"y":0,"width":1040,"height":585},
        "externalLink":{"linkUri":"https://example.com/see_more.html","label":"See More"}}"#
        .to_owned();
    assert_eq!(
        one(msg(Kind::Imagemap(m))),
        json!({
            "type": "imagemap",
            "baseUrl": "https://example.com/bot/images/rm001",
            "altText": "This is an imagemap",
            "baseSize": {"width": 1040, "height": 700},
            "actions": [{
                "type": "uri",
                "linkUri": "https://example.com/",
                "area": {"x": 0, "y": 0, "width": 520, "height": 1040}
            }],
            "video": {
                "originalContentUrl": "https://example.com/video.mp4",
                "previewImageUrl": "https://example.com/video_preview.jpg",
                "area": {"x": 0, "y": 0, "width": 1040, "height": 585},
                "externalLink": {"linkUri": "https://example.com/see_more.html", "label": "See More"}
            }
        })
    );
    // Without video there is no `video` key.
    let out = one(msg(Kind::Imagemap(imagemap())));
    assert!(out.get("video").is_none());
    assert_eq!(out["baseSize"], json!({"width": 1040, "height": 1040}));
}

#[test]
fn raw_message_is_sent_as_is_plus_quick_reply_and_sender() {
    let json_text = r#"{"type":"textV2","text":"Welcome, {user1}!",
        "substitution":{"user1":{"type":"mention","mentionee":{"type":"user","userId":"U1"}}}}"#;
    assert_eq!(
        one(raw(json_text)),
        json!({
            "type": "textV2",
            "text": "Welcome, {user1}!",
            "substitution": {"user1": {"type": "mention",
                                       "mentionee": {"type": "user", "userId": "U1"}}}
        })
    );
    let mut m = raw(r#"{"type":"coupon","couponId":"01JYNW8JMQVFBRB3C3HQTHXGAB"}"#);
    m.quick_reply = Some(pb::QuickReply {
        items: vec![item(r#"{"type":"camera","label":"Camera"}"#)],
    });
    m.sender = Some(pb::Sender {
        name: "Cony".to_owned(),
        icon_url: String::new(),
    });
    assert_eq!(
        one(m),
        json!({
            "type": "coupon",
            "couponId": "01JYNW8JMQVFBRB3C3HQTHXGAB",
            "quickReply": {"items": [
                {"type": "action", "action": {"type": "camera", "label": "Camera"}}
            ]},
            "sender": {"name": "Cony"}
        })
    );
}

#[test]
fn quick_reply_and_sender() {
    let mut m = text("Select your favorite food category or send me your location!");
    m.quick_reply = Some(pb::QuickReply {
        items: vec![
            pb::QuickReplyItem {
                image_url: "https://example.com/sushi.png".to_owned(),
                action_json: r#"{"type":"message","label":"Sushi","text":"Sushi"}"#.to_owned(),
            },
            item(r#"{"type":"location","label":"Send location"}"#),
        ],
    });
    m.sender = Some(pb::Sender {
        name: "Cony".to_owned(),
        icon_url: "https://example.com/original.png".to_owned(),
    });
    assert_eq!(
        one(m),
        json!({
            "type": "text",
            "text": "Select your favorite food category or send me your location!",
            "quickReply": {"items": [
                {"type": "action", "imageUrl": "https://example.com/sushi.png",
                 "action": {"type": "message", "label": "Sushi", "text": "Sushi"}},
                {"type": "action", "action": {"type": "location", "label": "Send location"}}
            ]},
            "sender": {"name": "Cony", "iconUrl": "https://example.com/original.png"}
        })
    );
}

#[test]
fn empty_sender_and_empty_quick_reply_are_omitted() {
    let mut m = text("hi");
    m.sender = Some(pb::Sender::default());
    m.quick_reply = Some(pb::QuickReply::default());
    assert_eq!(one(m), json!({"type": "text", "text": "hi"}));
    let mut m = text("hi");
    m.sender = Some(pb::Sender {
        name: String::new(),
        icon_url: "https://example.com/i.png".to_owned(),
    });
    assert_eq!(
        one(m),
        json!({"type": "text", "text": "hi", "sender": {"iconUrl": "https://example.com/i.png"}})
    );
}

fn user(id: &str) -> pb::TextV2Substitution {
    pb::TextV2Substitution {
        kind: Some(pb::text_v2_substitution::Kind::Mentionee(
            pb::TextV2Mentionee {
                target: Some(pb::text_v2_mentionee::Target::UserId(id.to_owned())),
            },
        )),
    }
}

fn everyone() -> pb::TextV2Substitution {
    pb::TextV2Substitution {
        kind: Some(pb::text_v2_substitution::Kind::Mentionee(
            pb::TextV2Mentionee {
                target: Some(pb::text_v2_mentionee::Target::All(pb::TextV2MentionAll {})),
            },
        )),
    }
}

fn line_emoji(product_id: &str, emoji_id: &str) -> pb::TextV2Substitution {
    pb::TextV2Substitution {
        kind: Some(pb::text_v2_substitution::Kind::Emoji(pb::TextV2Emoji {
            product_id: product_id.to_owned(),
            emoji_id: emoji_id.to_owned(),
        })),
    }
}

fn text_v2(text: &str, substitution: &[(&str, pb::TextV2Substitution)]) -> pb::Message {
    msg(Kind::TextV2(pb::TextV2Message {
        text: text.to_owned(),
        substitution: substitution
            .iter()
            .map(|(key, sub)| ((*key).to_owned(), sub.clone()))
            .collect(),
        quote_token: String::new(),
    }))
}

#[test]
fn text_v2_with_mentions_emoji_and_quote_token() {
    // LINE's own example ("Text message (v2)", Messaging API reference).
    let mut m = text_v2(
        "Welcome, {user1}! {laugh}\n{everyone} There is a newcomer!",
        &[
            ("user1", user("U49585cd0d5")),
            ("laugh", line_emoji("5a8555cfe6256cc92ea23c2a", "002")),
            ("everyone", everyone()),
        ],
    );
    if let Some(Kind::TextV2(v2)) = &mut m.kind {
        v2.quote_token = "q3Plxr4AgKd...".to_owned();
    }
    assert_eq!(
        one(m),
        json!({
            "type": "textV2",
            "text": "Welcome, {user1}! {laugh}\n{everyone} There is a newcomer!",
            "substitution": {
                "user1": {"type": "mention", "mentionee": {"type": "user", "userId": "U49585cd0d5"}},
                "laugh": {"type": "emoji", "productId": "5a8555cfe6256cc92ea23c2a", "emojiId": "002"},
                "everyone": {"type": "mention", "mentionee": {"type": "all"}}
            },
            "quoteToken": "q3Plxr4AgKd..."
        })
    );
}

#[test]
fn text_v2_without_placeholders_has_only_type_and_text() {
    assert_eq!(
        one(text_v2("Hello", &[])),
        json!({"type": "textV2", "text": "Hello"})
    );
    // Escaped braces are sent as written: LINE unescapes them.
    assert_eq!(
        one(text_v2("{{literal}} and }}{{", &[])),
        json!({"type": "textV2", "text": "{{literal}} and }}{{"})
    );
}

#[test]
fn text_v2_entries_no_placeholder_uses_are_sent() {
    assert_eq!(
        one(text_v2("Hi {a}", &[("a", user("U1")), ("b", everyone())])),
        json!({
            "type": "textV2",
            "text": "Hi {a}",
            "substitution": {
                "a": {"type": "mention", "mentionee": {"type": "user", "userId": "U1"}},
                "b": {"type": "mention", "mentionee": {"type": "all"}}
            }
        })
    );
}

#[test]
fn five_messages_keep_their_order() {
    let messages: Vec<_> = (0..5).map(|i| text(&format!("m{i}"))).collect();
    let out = to_line_messages("messages", &messages).unwrap();
    let texts: Vec<_> = out.iter().map(|v| v["text"].clone()).collect();
    assert_eq!(texts, vec!["m0", "m1", "m2", "m3", "m4"]);
}

// ---- refusals ---------------------------------------------------------

#[test]
fn zero_and_six_messages_are_refused() {
    let errors = errors_of(&[]);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "messages");
    let six: Vec<_> = (0..6).map(|_| text("x")).collect();
    assert_eq!(fields(&six), vec!["messages"]);
    // The list name is the caller's.
    let errors = to_line_messages("reply.messages", &[]).unwrap_err();
    assert_eq!(errors[0].field, "reply.messages");
}

#[test]
fn message_without_kind_is_refused() {
    let none = pb::Message::default();
    assert_eq!(fields(&[text("ok"), none]), vec!["messages[1].kind"]);
}

#[test]
fn all_errors_are_reported() {
    let mut bad_sender = text("");
    bad_sender.sender = Some(pb::Sender {
        name: "n".repeat(21),
        icon_url: "http://example.com/i.png".to_owned(),
    });
    let messages: Vec<_> = vec![
        bad_sender,
        pb::Message::default(),
        image("http://example.com/a.jpg", ""),
        text("fine"),
        raw("[]"),
        text("one too many"),
    ];
    assert_eq!(
        fields(&messages),
        vec![
            "messages",
            "messages[0].sender.name",
            "messages[0].sender.icon_url",
            "messages[0].text.text",
            "messages[1].kind",
            "messages[2].image.original_content_url",
            "messages[2].image.preview_image_url",
            "messages[4].raw.json",
        ]
    );
}

#[test]
fn text_length_counts_utf16_units() {
    assert!(to_line_messages("messages", &[text(&"😀".repeat(2500))]).is_ok());
    assert!(to_line_messages("messages", &[text(&"a".repeat(5000))]).is_ok());
    let reason = only_error(text(&"😀".repeat(2501)), "messages[0].text.text");
    assert!(reason.contains("5002"), "{reason}");
    only_error(text(&"a".repeat(5001)), "messages[0].text.text");
    assert_eq!(only_error(text(""), "messages[0].text.text"), "required");
}

fn emoji(index: i32) -> pb::TextMessageEmoji {
    pb::TextMessageEmoji {
        index,
        product_id: "p".to_owned(),
        emoji_id: "e".to_owned(),
    }
}

fn text_with_emojis(s: &str, emojis: Vec<pb::TextMessageEmoji>) -> pb::Message {
    msg(Kind::Text(pb::TextMessage {
        text: s.to_owned(),
        emojis,
        quote_token: String::new(),
    }))
}

#[test]
fn emoji_index_counts_utf16_units() {
    // "😀" is two units, so the `$` is at index 2.
    assert!(to_line_messages("messages", &[text_with_emojis("😀$", vec![emoji(2)])]).is_ok());
    only_error(
        text_with_emojis("😀$", vec![emoji(1)]),
        "messages[0].text.emojis[0].index",
    );
}

#[test]
fn emoji_rules() {
    let m = text_with_emojis(
        "$a$",
        vec![
            emoji(0),
            emoji(1),  // `a`
            emoji(-1), // negative
            emoji(3),  // past the end
            emoji(0),  // duplicate
            pb::TextMessageEmoji {
                index: 2,
                product_id: String::new(),
                emoji_id: String::new(),
            },
        ],
    );
    assert_eq!(
        fields(&[m]),
        vec![
            "messages[0].text.emojis[1].index",
            "messages[0].text.emojis[2].index",
            "messages[0].text.emojis[3].index",
            "messages[0].text.emojis[4].index",
            "messages[0].text.emojis[5].product_id",
            "messages[0].text.emojis[5].emoji_id",
        ]
    );
    let dollars = "$".repeat(21);
    let ok: Vec<_> = (0..20).map(emoji).collect();
    assert!(to_line_messages("messages", &[text_with_emojis(&dollars, ok)]).is_ok());
    let too_many: Vec<_> = (0..21).map(emoji).collect();
    only_error(
        text_with_emojis(&dollars, too_many),
        "messages[0].text.emojis",
    );
}

#[test]
fn text_v2_text_is_required() {
    assert_eq!(
        only_error(text_v2("", &[]), "messages[0].text_v2.text"),
        "required"
    );
}

#[test]
fn text_v2_braces_pair_or_are_escaped() {
    let field = "messages[0].text_v2.text";
    for (bad, position) in [
        ("a } b", 2),
        ("{", 0),
        ("ab {key", 3),
        ("{} empty", 0),
        ("{bad-key}", 0),
        ("{with space}", 0),
        ("{nested{x}}", 0),
        ("{ü}", 0),
        // Positions count UTF-16 units: the emoji is two.
        ("😀}", 2),
        ("{{}", 2),
        ("{k}}", 3),
    ] {
        let reason = only_error(text_v2(bad, &[("key", user("U1"))]), field);
        assert!(
            reason.contains(&format!("position {position}")),
            "{bad}: {reason}"
        );
    }
    // Only the first brace error is reported.
    let errors = errors_of(&[text_v2("} } {", &[])]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].reason.contains("position 0"), "{errors:?}");
    // Keys are 1-20 characters.
    let key_20 = "k".repeat(20);
    let placeholder = format!("{{{key_20}}}");
    assert!(
        to_line_messages(
            "messages",
            &[text_v2(&placeholder, &[(&key_20, user("U1"))])]
        )
        .is_ok()
    );
    let key_21 = "k".repeat(21);
    let reason = only_error(
        text_v2(&format!("{{{key_21}}}"), &[("k", user("U1"))]),
        field,
    );
    assert!(reason.contains("got 21"), "{reason}");
    for good in ["{{", "}}", "{{{a}}}", "}}{a}{{", "{a}{a}", "{A_9}"] {
        let subs = [("a", user("U1")), ("A_9", everyone())];
        assert!(
            to_line_messages("messages", &[text_v2(good, &subs)]).is_ok(),
            "{good}"
        );
    }
}

#[test]
fn text_v2_placeholders_need_a_substitution() {
    let reason = only_error(
        text_v2("Hi {u}, {u} and {v}", &[("v", everyone())]),
        r#"messages[0].text_v2.substitution["u"]"#,
    );
    assert!(reason.contains("position 3"), "{reason}");
    assert_eq!(
        fields(&[text_v2("{b}{a}{b}", &[])]),
        vec![
            r#"messages[0].text_v2.substitution["b"]"#,
            r#"messages[0].text_v2.substitution["a"]"#,
        ]
    );
    // More keys than a substitution can hold: one error on the text.
    let many: String = (0..101).map(|i| format!("{{k{i}}}")).collect();
    only_error(text_v2(&many, &[]), "messages[0].text_v2.text");
}

#[test]
fn text_v2_substitution_keys_and_count() {
    let key_20 = "a_Z0".repeat(5);
    assert!(to_line_messages("messages", &[text_v2("x", &[(&key_20, everyone())])]).is_ok());
    let key_21 = "k".repeat(21);
    for bad in ["bad-key", "", "ü", "with space", key_21.as_str()] {
        let field = format!("messages[0].text_v2.substitution[{bad:?}]");
        let reason = only_error(text_v2("x", &[(bad, everyone())]), &field);
        assert!(reason.contains("0-9a-zA-Z_"), "{reason}");
    }
    // A key far too long is cut in the field name, and not repeated.
    let huge = "k".repeat(100_000);
    let errors = errors_of(&[text_v2("x", &[(&huge, everyone())])]);
    assert_eq!(errors.len(), 1);
    let cut = format!("messages[0].text_v2.substitution[\"{}…\"]", "k".repeat(40));
    assert_eq!(errors[0].field, cut);
    assert!(errors[0].reason.len() < 100, "{}", errors[0].reason);
    let keys: Vec<String> = (0..101).map(|i| format!("k{i}")).collect();
    let subs: Vec<_> = keys.iter().map(|k| (k.as_str(), everyone())).collect();
    assert!(to_line_messages("messages", &[text_v2("x", &subs[..100])]).is_ok());
    only_error(text_v2("x", &subs), "messages[0].text_v2.substitution");
}

#[test]
fn text_v2_substitutions_must_be_complete() {
    let no_kind = pb::TextV2Substitution { kind: None };
    let no_target = pb::TextV2Substitution {
        kind: Some(pb::text_v2_substitution::Kind::Mentionee(
            pb::TextV2Mentionee { target: None },
        )),
    };
    let m = text_v2(
        "{a}{b}{c}{d}",
        &[
            ("d", line_emoji("", "")),
            ("c", user("")),
            ("b", no_target),
            ("a", no_kind),
        ],
    );
    // In key order, each at its field.
    assert_eq!(
        fields(&[m]),
        vec![
            r#"messages[0].text_v2.substitution["a"]"#,
            r#"messages[0].text_v2.substitution["b"].mentionee"#,
            r#"messages[0].text_v2.substitution["c"].mentionee.user_id"#,
            r#"messages[0].text_v2.substitution["d"].emoji.product_id"#,
            r#"messages[0].text_v2.substitution["d"].emoji.emoji_id"#,
        ]
    );
}

#[test]
fn text_v2_mentions_and_emojis_are_at_most_20_each() {
    let field = "messages[0].text_v2.text";
    let subs = [("u", user("U1")), ("e", line_emoji("p", "e"))];
    // A key used twice counts twice.
    let placeholders = |mentions: usize, emojis: usize| {
        format!("{}{}", "{u}".repeat(mentions), "{e}".repeat(emojis))
    };
    assert!(to_line_messages("messages", &[text_v2(&placeholders(20, 20), &subs)]).is_ok());
    let reason = only_error(text_v2(&placeholders(21, 20), &subs), field);
    assert!(reason.contains("mention"), "{reason}");
    let reason = only_error(text_v2(&placeholders(20, 21), &subs), field);
    assert!(reason.contains("emoji"), "{reason}");
    // Entries no placeholder uses are no substitutions.
    let keys: Vec<String> = (0..30).map(|i| format!("u{i}")).collect();
    let unused: Vec<_> = keys.iter().map(|k| (k.as_str(), user("U1"))).collect();
    assert!(to_line_messages("messages", &[text_v2("none used", &unused)]).is_ok());
}

#[test]
fn text_v2_length_counts_placeholders_at_their_least() {
    let field = "messages[0].text_v2.text";
    let ok = |text: &str| {
        let subs = [("u", user("U1")), ("e", line_emoji("p", "e"))];
        to_line_messages("messages", &[text_v2(text, &subs)]).is_ok()
    };
    let a = |n: usize| "a".repeat(n);
    assert!(ok(&a(5000)));
    assert!(!ok(&a(5001)));
    assert!(ok(&"😀".repeat(2500)));
    assert!(!ok(&format!("{}a", "😀".repeat(2500))));
    // `{{` and `}}` show one brace.
    assert!(ok(&"{{".repeat(5000)));
    assert!(ok(&"}}".repeat(5000)));
    assert!(!ok(&format!("{}a", "{{".repeat(5000))));
    // A mention shows `@` and a name: at least 2.
    assert!(ok(&format!("{}{{u}}", a(4998))));
    let reason = only_error(
        text_v2(&format!("{}{{u}}", a(4999)), &[("u", user("U1"))]),
        field,
    );
    assert!(reason.contains("at least 5001"), "{reason}");
    // An emoji shows its alternative text: at least 1.
    assert!(ok(&format!("{}{{e}}", a(4999))));
    assert!(!ok(&format!("{}{{e}}", a(5000))));
}

#[test]
fn mention_fields_name_every_mention() {
    let messages = [
        text("no mentions"),
        text_v2(
            "{z}{e}{a}",
            &[
                ("z", user("U1")),
                ("e", line_emoji("p", "e")),
                ("a", everyone()),
                ("unused", user("U2")),
            ],
        ),
        text_v2("{e}", &[("e", line_emoji("p", "e"))]),
    ];
    assert_eq!(
        mention_fields("messages", &messages),
        vec![
            r#"messages[1].text_v2.substitution["a"].mentionee"#,
            r#"messages[1].text_v2.substitution["unused"].mentionee"#,
            r#"messages[1].text_v2.substitution["z"].mentionee"#,
        ]
    );
}

#[test]
fn sticker_ids_are_required() {
    let m = msg(Kind::Sticker(pb::StickerMessage::default()));
    assert_eq!(
        fields(&[m]),
        vec![
            "messages[0].sticker.package_id",
            "messages[0].sticker.sticker_id"
        ]
    );
}

#[test]
fn url_rules() {
    let good = "https://example.com/a.jpg";
    let field = "messages[0].image.original_content_url";
    for bad in [
        "http://example.com/a.jpg",
        "ftp://example.com/a.jpg",
        "example.com/a.jpg",
        "https://",
        "https://exa mple.com/a.jpg",
        "https://example.com/é.jpg",
        "https://example.com/a.jpg\n",
        "not a url",
    ] {
        let reason = only_error(image(bad, good), field);
        assert!(!reason.is_empty(), "{bad}");
    }
    assert_eq!(only_error(image("", good), field), "required");
    // 2000 characters is the limit.
    let base = "https://example.com/";
    let at_limit = format!("{base}{}", "a".repeat(2000 - base.len()));
    assert_eq!(at_limit.len(), 2000);
    assert!(to_line_messages("messages", &[image(&at_limit, good)]).is_ok());
    let over = format!("{at_limit}a");
    only_error(image(good, &over), "messages[0].image.preview_image_url");
}

fn video(tracking_id: &str) -> pb::Message {
    msg(Kind::Video(pb::VideoMessage {
        original_content_url: "https://example.com/v.mp4".to_owned(),
        preview_image_url: "https://example.com/p.jpg".to_owned(),
        tracking_id: tracking_id.to_owned(),
        ..Default::default()
    }))
}

#[test]
fn video_rules() {
    let all_allowed = format!("aZ09{TRACKING_ID_SYMBOLS}");
    assert!(to_line_messages("messages", &[video(&all_allowed)]).is_ok());
    assert!(to_line_messages("messages", &[video(&"a".repeat(100))]).is_ok());
    only_error(video(&"a".repeat(101)), "messages[0].video.tracking_id");
    for bad in ["with space", "slash/", "quote\"", "ü", "under_score", "#"] {
        only_error(video(bad), "messages[0].video.tracking_id");
    }
    let m = msg(Kind::Video(pb::VideoMessage::default()));
    assert_eq!(
        fields(&[m]),
        vec![
            "messages[0].video.original_content_url",
            "messages[0].video.preview_image_url"
        ]
    );
}

#[test]
fn audio_rules() {
    for duration_ms in [0, -1, i64::MIN] {
        let m = msg(Kind::Audio(pb::AudioMessage {
            original_content_url: "https://example.com/a.m4a".to_owned(),
            duration_ms,
            ..Default::default()
        }));
        only_error(m, "messages[0].audio.duration_ms");
    }
    let m = msg(Kind::Audio(pb::AudioMessage {
        original_content_url: "http://example.com/a.m4a".to_owned(),
        duration_ms: 1,
        ..Default::default()
    }));
    only_error(m, "messages[0].audio.original_content_url");
}

fn location(title: &str, address: &str, latitude: f64, longitude: f64) -> pb::Message {
    msg(Kind::Location(pb::LocationMessage {
        title: title.to_owned(),
        address: address.to_owned(),
        latitude,
        longitude,
    }))
}

#[test]
fn location_rules() {
    for (lat, lon) in [(90.0, 180.0), (-90.0, -180.0), (0.0, 0.0)] {
        assert!(to_line_messages("messages", &[location("t", "a", lat, lon)]).is_ok());
    }
    let title_100 = "😀".repeat(50);
    assert!(to_line_messages("messages", &[location(&title_100, "a", 0.0, 0.0)]).is_ok());
    assert_eq!(
        fields(&[location("", &"a".repeat(101), 90.5, -180.1)]),
        vec![
            "messages[0].location.title",
            "messages[0].location.address",
            "messages[0].location.latitude",
            "messages[0].location.longitude",
        ]
    );
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert_eq!(
            fields(&[location("t", "a", bad, bad)]),
            vec![
                "messages[0].location.latitude",
                "messages[0].location.longitude"
            ]
        );
    }
    only_error(
        location(&"😀".repeat(51), "a", 0.0, 0.0),
        "messages[0].location.title",
    );
}

fn bubble_with_text(len: usize) -> String {
    json!({"type": "bubble", "body": {"type": "box", "layout": "vertical",
           "contents": [{"type": "text", "text": "x".repeat(len)}]}})
    .to_string()
}

#[test]
fn flex_rules() {
    let bubble = r#"{"type":"bubble"}"#;
    let field = "messages[0].flex.contents_json";
    assert_eq!(
        only_error(flex("", bubble), "messages[0].flex.alt_text"),
        "required"
    );
    only_error(flex(&"a".repeat(1501), bubble), "messages[0].flex.alt_text");
    assert!(to_line_messages("messages", &[flex(&"a".repeat(1500), bubble)]).is_ok());
    assert_eq!(only_error(flex("alt", ""), field), "required");
    assert!(only_error(flex("alt", "{"), field).starts_with("invalid JSON"));
    assert!(only_error(flex("alt", "[]"), field).contains("object"));
    assert!(only_error(flex("alt", r#"{"type":"box"}"#), field).contains("bubble"));
    only_error(flex("alt", r#"{"contents":[]}"#), field);
    only_error(flex("alt", r#"{"type":1}"#), field);
    // Both alt text and contents wrong: both reported.
    assert_eq!(
        fields(&[flex("", "nope")]),
        vec!["messages[0].flex.alt_text", field]
    );

    // Size: a bubble up to 30 KB, a carousel up to 50 KB.
    let overhead = bubble_with_text(0).len();
    let at_limit = bubble_with_text(30 * 1024 - overhead);
    assert_eq!(at_limit.len(), 30 * 1024);
    assert!(to_line_messages("messages", &[flex("alt", &at_limit)]).is_ok());
    let over = bubble_with_text(30 * 1024 - overhead + 1);
    assert!(only_error(flex("alt", &over), field).contains("30 KB"));
    let carousel = |bubble: &str| format!(r#"{{"type":"carousel","contents":[{bubble}]}}"#);
    assert!(to_line_messages("messages", &[flex("alt", &carousel(&over))]).is_ok());
    let big = bubble_with_text(50 * 1024);
    assert!(only_error(flex("alt", &carousel(&big)), field).contains("50 KB"));
}

fn template(alt: &str, template_json: &str) -> pb::Message {
    msg(Kind::Template(pb::TemplateMessage {
        alt_text: alt.to_owned(),
        template_json: template_json.to_owned(),
    }))
}

#[test]
fn template_rules() {
    for t in TEMPLATE_TYPES {
        let json_text = format!(r#"{{"type":"{t}"}}"#);
        assert!(to_line_messages("messages", &[template("alt", &json_text)]).is_ok());
    }
    let field = "messages[0].template.template_json";
    only_error(template("alt", r#"{"type":"bubble"}"#), field);
    only_error(template("alt", r#"{"text":"no type"}"#), field);
    only_error(template("alt", r#""buttons""#), field);
    only_error(template("alt", ""), field);
    only_error(
        template(&"a".repeat(1501), r#"{"type":"buttons"}"#),
        "messages[0].template.alt_text",
    );
}

#[test]
fn imagemap_rules() {
    let mut m = imagemap();
    m.base_url = "http://example.com/rm001".to_owned();
    m.alt_text = String::new();
    m.base_width = 700;
    m.base_height = 0;
    m.video_json = "[]".to_owned();
    assert_eq!(
        fields(&[msg(Kind::Imagemap(m))]),
        vec![
            "messages[0].imagemap.base_url",
            "messages[0].imagemap.alt_text",
            "messages[0].imagemap.base_width",
            "messages[0].imagemap.base_height",
            "messages[0].imagemap.video_json",
        ]
    );

    let field = "messages[0].imagemap.actions_json";
    let with_actions = |actions: &str| {
        let mut m = imagemap();
        m.actions_json = actions.to_owned();
        msg(Kind::Imagemap(m))
    };
    only_error(with_actions(""), field);
    only_error(with_actions("[]"), field);
    only_error(with_actions(r#"{"type":"uri"}"#), field);
    only_error(with_actions("[1"), field);
    let action = r#"{"type":"message","text":"hi","area":{"x":0,"y":0,"width":1,"height":1}}"#;
    let fifty = format!("[{}]", vec![action; 50].join(","));
    assert!(to_line_messages("messages", &[with_actions(&fifty)]).is_ok());
    let fifty_one = format!("[{}]", vec![action; 51].join(","));
    only_error(with_actions(&fifty_one), field);
    let reason = only_error(
        with_actions(&format!(r#"[{action},{{"type":"postback"}}]"#)),
        field,
    );
    assert!(reason.contains("[1]"), "{reason}");
    only_error(with_actions(&format!("[{action},3]")), field);
    for t in IMAGEMAP_ACTION_TYPES {
        assert!(
            to_line_messages(
                "messages",
                &[with_actions(&format!(r#"[{{"type":"{t}"}}]"#))]
            )
            .is_ok()
        );
    }
}

#[test]
fn raw_rules() {
    let field = "messages[0].raw.json";
    for bad in [
        "",
        "   ",
        "{",
        "[]",
        "\"text\"",
        "null",
        r#"{"text":"no type"}"#,
        r#"{"type":5}"#,
        r#"{"type":""}"#,
        r#"{"type":"text"} trailing"#,
    ] {
        only_error(raw(bad), field);
    }
    let mut m =
        raw(r#"{"type":"text","text":"x","quickReply":{"items":[]},"sender":{"name":"a"}}"#);
    // Without our own quick reply or sender the JSON's keys are kept.
    assert_eq!(
        one(m.clone()),
        json!({"type":"text","text":"x","quickReply":{"items":[]},"sender":{"name":"a"}})
    );
    m.quick_reply = Some(pb::QuickReply {
        items: vec![item(r#"{"type":"camera","label":"c"}"#)],
    });
    m.sender = Some(pb::Sender {
        name: "b".to_owned(),
        icon_url: String::new(),
    });
    assert_eq!(
        fields(&[m]),
        vec!["messages[0].quick_reply", "messages[0].sender"]
    );
}

#[test]
fn quick_reply_rules() {
    let action = r#"{"type":"message","label":"a","text":"a"}"#;
    let mut m = text("hi");
    m.quick_reply = Some(pb::QuickReply {
        items: vec![item(action); 13],
    });
    assert!(to_line_messages("messages", &[m.clone()]).is_ok());
    m.quick_reply = Some(pb::QuickReply {
        items: vec![item(action); 14],
    });
    assert_eq!(fields(&[m]), vec!["messages[0].quick_reply.items"]);

    for t in QUICK_REPLY_ACTION_TYPES {
        let mut m = text("hi");
        m.quick_reply = Some(pb::QuickReply {
            items: vec![item(&format!(r#"{{"type":"{t}"}}"#))],
        });
        assert!(to_line_messages("messages", &[m]).is_ok(), "{t}");
    }

    let mut m = text("hi");
    m.quick_reply = Some(pb::QuickReply {
        items: vec![
            item(action),
            item(r#"{"type":"richmenuswitch","richMenuAliasId":"a","data":"d"}"#),
            item("{not json"),
            item(""),
            pb::QuickReplyItem {
                image_url: "http://example.com/i.png".to_owned(),
                action_json: action.to_owned(),
            },
            item(r#"["type","message"]"#),
        ],
    });
    assert_eq!(
        fields(&[m]),
        vec![
            "messages[0].quick_reply.items[1].action_json",
            "messages[0].quick_reply.items[2].action_json",
            "messages[0].quick_reply.items[3].action_json",
            "messages[0].quick_reply.items[4].image_url",
            "messages[0].quick_reply.items[5].action_json",
        ]
    );
}

#[test]
fn sender_rules() {
    let sender = |name: &str, icon_url: &str| {
        let mut m = text("hi");
        m.sender = Some(pb::Sender {
            name: name.to_owned(),
            icon_url: icon_url.to_owned(),
        });
        m
    };
    assert!(to_line_messages("messages", &[sender(&"n".repeat(20), "")]).is_ok());
    only_error(sender(&"n".repeat(21), ""), "messages[0].sender.name");
    // 11 emoji are 22 UTF-16 units.
    only_error(sender(&"😀".repeat(11), ""), "messages[0].sender.name");
    only_error(
        sender("", "http://example.com/i.png"),
        "messages[0].sender.icon_url",
    );
    only_error(sender("", "https://"), "messages[0].sender.icon_url");
}

#[test]
fn json_depth_is_limited_to_64() {
    let field = "messages[0].raw.json";
    assert!(to_line_messages("messages", &[raw(&nested(64))]).is_ok());
    let reason = only_error(raw(&nested(65)), field);
    assert!(reason.contains("deeper than 64"), "{reason}");
    // Deeper than serde_json's own limit (128): still our reason.
    let reason = only_error(raw(&nested(100_000)), field);
    assert!(reason.contains("deeper than 64"), "{reason}");
    // Brackets inside strings are not nesting.
    let in_string = format!(
        r#"{{"type":"x","s":"{}\"{}"}}"#,
        "[".repeat(100),
        "{".repeat(100)
    );
    assert!(to_line_messages("messages", &[raw(&in_string)]).is_ok());
    // Every JSON field is limited.
    let deep_bubble = format!(
        r#"{{"type":"bubble","x":{}{}}}"#,
        "[".repeat(64),
        "]".repeat(64)
    );
    let reason = only_error(flex("alt", &deep_bubble), "messages[0].flex.contents_json");
    assert!(reason.contains("deeper than 64"), "{reason}");
}

#[test]
fn field_error_displays_field_and_reason() {
    let e = FieldError {
        field: "messages[0].text.text".to_owned(),
        reason: "required".to_owned(),
    };
    assert_eq!(e.to_string(), "messages[0].text.text: required");
}

// ---- robustness -------------------------------------------------------

/// Strings that are often JSON-like, URL-like or full of `$`, plus
/// arbitrary Unicode.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\[\\]{}\":,$a-z0-9 \\\\.-]{0,64}",
        "https://[a-z.]{0,10}/[ -~é😀]{0,20}",
        prop::sample::select(vec![
            r#"{"type":"bubble"}"#.to_owned(),
            r#"{"type":"carousel","contents":[]}"#.to_owned(),
            r#"{"type":"buttons","text":"t","actions":[]}"#.to_owned(),
            r#"[{"type":"uri","linkUri":"https://a.b/"}]"#.to_owned(),
            r#"{"type":"message","text":"x"}"#.to_owned(),
            r#"{"type":"text","text":"$"}"#.to_owned(),
            "$$$😀$".to_owned(),
        ]),
    ]
}

fn any_kind() -> impl Strategy<Value = Option<Kind>> {
    let t = any_text;
    prop_oneof![
        Just(None),
        (
            t(),
            prop::collection::vec((any::<i32>(), t(), t()), 0..24),
            t()
        )
            .prop_map(
                |(text, emojis, quote_token)| Some(Kind::Text(pb::TextMessage {
                    text,
                    emojis: emojis
                        .into_iter()
                        .map(|(index, product_id, emoji_id)| pb::TextMessageEmoji {
                            index: index.rem_euclid(8),
                            product_id,
                            emoji_id,
                        })
                        .collect(),
                    quote_token,
                }))
            ),
        (t(), t(), t()).prop_map(|(package_id, sticker_id, quote_token)| Some(Kind::Sticker(
            pb::StickerMessage {
                package_id,
                sticker_id,
                quote_token
            }
        ))),
        (t(), t()).prop_map(|(a, b)| Some(Kind::Image(pb::ImageMessage {
            original_content_url: a,
            preview_image_url: b,
            ..Default::default()
        }))),
        (t(), t(), t()).prop_map(|(a, b, c)| Some(Kind::Video(pb::VideoMessage {
            original_content_url: a,
            preview_image_url: b,
            tracking_id: c,
            ..Default::default()
        }))),
        (t(), any::<i64>()).prop_map(|(a, d)| Some(Kind::Audio(pb::AudioMessage {
            original_content_url: a,
            duration_ms: d,
            ..Default::default()
        }))),
        (t(), t(), any::<f64>(), any::<f64>()).prop_map(|(title, address, la, lo)| Some(
            Kind::Location(pb::LocationMessage {
                title,
                address,
                latitude: la,
                longitude: lo
            })
        )),
        (t(), t()).prop_map(|(a, c)| Some(Kind::Flex(pb::FlexMessage {
            alt_text: a,
            contents_json: c
        }))),
        (t(), t()).prop_map(|(a, c)| Some(Kind::Template(pb::TemplateMessage {
            alt_text: a,
            template_json: c
        }))),
        (t(), t(), any::<i32>(), any::<i32>(), t(), t()).prop_map(
            |(base_url, alt_text, base_width, base_height, actions_json, video_json)| Some(
                Kind::Imagemap(pb::ImagemapMessage {
                    base_url,
                    alt_text,
                    base_width,
                    base_height,
                    actions_json,
                    video_json
                })
            )
        ),
        t().prop_map(|json| Some(Kind::Raw(pb::RawMessage { json }))),
        (
            t(),
            prop::collection::vec(
                (prop_oneof!["[a-z_0-9]{1,3}", t()], any_substitution()),
                0..8
            ),
            t()
        )
            .prop_map(|(text, substitution, quote_token)| Some(Kind::TextV2(
                pb::TextV2Message {
                    text,
                    substitution: substitution.into_iter().collect(),
                    quote_token,
                }
            ))),
    ]
}

fn any_substitution() -> impl Strategy<Value = pb::TextV2Substitution> {
    use pb::{text_v2_mentionee::Target, text_v2_substitution::Kind as Sub};
    let kind = prop_oneof![
        Just(None),
        Just(Some(Sub::Mentionee(pb::TextV2Mentionee { target: None }))),
        Just(Some(Sub::Mentionee(pb::TextV2Mentionee {
            target: Some(Target::All(pb::TextV2MentionAll {})),
        }))),
        any_text().prop_map(|id| Some(Sub::Mentionee(pb::TextV2Mentionee {
            target: Some(Target::UserId(id)),
        }))),
        (any_text(), any_text()).prop_map(|(product_id, emoji_id)| Some(Sub::Emoji(
            pb::TextV2Emoji {
                product_id,
                emoji_id
            }
        ))),
    ];
    kind.prop_map(|kind| pb::TextV2Substitution { kind })
}

fn any_message() -> impl Strategy<Value = pb::Message> {
    let quick_reply = prop::option::of(
        prop::collection::vec((any_text(), any_text()), 0..15).prop_map(|items| pb::QuickReply {
            items: items
                .into_iter()
                .map(|(image_url, action_json)| pb::QuickReplyItem {
                    image_url,
                    action_json,
                })
                .collect(),
        }),
    );
    let sender = prop::option::of(
        (any_text(), any_text()).prop_map(|(name, icon_url)| pb::Sender { name, icon_url }),
    );
    (quick_reply, sender, any_kind()).prop_map(|(quick_reply, sender, kind)| pb::Message {
        quick_reply,
        sender,
        kind,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics(messages in prop::collection::vec(any_message(), 0..7)) {
        match to_line_messages("messages", &messages) {
            Ok(out) => {
                prop_assert_eq!(out.len(), messages.len());
                for value in &out {
                    prop_assert!(value.get("type").and_then(Value::as_str).is_some());
                }
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for e in &errors {
                    prop_assert!(e.field.starts_with("messages"));
                    prop_assert!(!e.reason.is_empty());
                }
            }
        }
    }

    #[test]
    fn depth_scan_never_panics(s in any::<String>()) {
        let _ = nesting_exceeds(&s, MAX_JSON_DEPTH);
    }
}
