//! Outbound messages: validates the gRPC `Message`s of a send and converts
//! them into LINE Message objects (messaging-api.yml `Message` and its
//! subtypes) as `serde_json::Value`s, camelCase keys, only set fields.
//!
//! Every violation is collected (not just the first) and named by its proto
//! path as the caller wrote it, e.g. `messages[0].text.text`,
//! `messages[1].quick_reply.items[3].action_json` or
//! `messages[0].text_v2.substitution["user1"].mentionee.user_id`. A
//! `textV2` text is read only up to its first stray brace: what follows it
//! cannot be told apart.
//!
//! Lengths count UTF-16 code units, as LINE does ("Character counting in a
//! text", LINE Developers). LINE counts a text as it will be shown: a LINE
//! emoji as its alternative text, a mention as `@` and a display name. Those
//! are LINE's to know, so each is counted at its least (see [`MAX_TEXT`])
//! and only texts LINE must refuse are refused. Media URLs must be HTTPS, at
//! most 2000 characters and already percent-encoded (printable ASCII); they
//! are sent exactly as given. JSON fields (Flex contents, templates,
//! imagemap actions and video, quick reply actions, raw messages) are
//! checked for syntax, nesting depth and their `type`; LINE checks the rest
//! and its 400 reaches the caller.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

use crate::proto::v1 as pb;
use pb::message::Kind;

/// One refused field: `field` is the proto path as the caller wrote it, e.g.
/// "messages[0].text.text", "messages[2].image.original_content_url",
/// "messages[1].flex.contents_json", "messages[0].quick_reply.items[3].action_json".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

/// Messages per request (all send endpoints: `minItems: 1`, `maxItems: 5`).
const MAX_MESSAGES: usize = 5;
/// `text.text` and `textV2.text`, in UTF-16 code units ("Max character
/// limit: 5000", LINE Messaging API reference, text message and text message
/// (v2)). LINE counts the text as shown ("Character counting in a text",
/// LINE Developers): a `text`'s emoji `$` as the emoji's alternative text,
/// which LINE does not disclose; in a `textV2`, by the same rule, a
/// placeholder as what replaces it. We count each at its least, so that the
/// count is never above LINE's: a `$` or emoji placeholder as one unit
/// ([`EMOJI_MIN_UNITS`]), a mention placeholder as `@` and one character
/// ([`MENTION_MIN_UNITS`]), and `{{` or `}}` as the one brace shown. Texts
/// that exceed 5000 only with LINE's names and alternative texts get LINE's
/// 400, which reaches the caller.
const MAX_TEXT: usize = 5000;
/// LINE emojis per text message.
const MAX_EMOJIS: usize = 20;
/// The least an emoji shows: one character of alternative text (LINE's are
/// like `(hello)`, webhook.yml `Emoji.length`; LINE does not publish them).
const EMOJI_MIN_UNITS: usize = 1;
/// The least a mention shows: `@` and one character of a name (webhook.yml
/// `Mentionee.length`: "For a mention @example, 8 is the length").
const MENTION_MIN_UNITS: usize = 2;
/// Entries of `textV2.substitution` ("Max number of objects: 100").
const MAX_SUBSTITUTIONS: usize = 100;
/// Characters of a `textV2` substitution key, each `0-9a-zA-Z_`.
const MAX_SUBSTITUTION_KEY: usize = 20;
/// Mention placeholders per `textV2` ("Up to 20 mentions can be substituted
/// in a single message"): each placeholder is a substitution, so a key used
/// twice counts twice. Counting entries instead would make LINE's 100-entry
/// limit unreachable.
const MAX_TEXT_V2_MENTIONS: usize = 20;
/// Emoji placeholders per `textV2` ("Up to 20 emoji can be substituted in a
/// single message"), counted like mentions.
const MAX_TEXT_V2_EMOJIS: usize = 20;
/// Media, icon and imagemap base URLs.
const MAX_URL: usize = 2000;
/// `video.trackingId`.
const MAX_TRACKING_ID: usize = 100;
/// Symbols allowed in `video.trackingId` besides ASCII letters and digits.
const TRACKING_ID_SYMBOLS: &str = "-.=,+*()%$&;:@{}!?<>[]";
/// `location.title` and `location.address`.
const MAX_LOCATION_TEXT: usize = 100;
/// `altText` of flex, template and imagemap messages.
const MAX_ALT_TEXT: usize = 1500;
/// Serialized size of a Flex bubble, in bytes (LINE: 30 KB).
const MAX_FLEX_BUBBLE_BYTES: usize = 30 * 1024;
/// Serialized size of a Flex carousel, in bytes (LINE: 50 KB).
const MAX_FLEX_CAROUSEL_BYTES: usize = 50 * 1024;
/// The only imagemap base width LINE accepts.
const IMAGEMAP_WIDTH: i32 = 1040;
/// Imagemap actions per message.
const MAX_IMAGEMAP_ACTIONS: usize = 50;
/// Imagemap action types (messaging-api.yml `ImagemapAction` discriminator).
const IMAGEMAP_ACTION_TYPES: &[&str] = &["uri", "message", "clipboard"];
/// Quick reply buttons per message.
const MAX_QUICK_REPLY_ITEMS: usize = 13;
/// Action types allowed in a quick reply button.
const QUICK_REPLY_ACTION_TYPES: &[&str] = &[
    "postback",
    "message",
    "uri",
    "datetimepicker",
    "camera",
    "cameraRoll",
    "location",
    "clipboard",
];
/// Template types (messaging-api.yml `Template` discriminator).
const TEMPLATE_TYPES: &[&str] = &["buttons", "confirm", "carousel", "image_carousel"];
/// `sender.name`.
const MAX_SENDER_NAME: usize = 20;
/// Deepest nesting of arrays/objects accepted in a JSON field.
const MAX_JSON_DEPTH: usize = 64;

/// Validates 1–5 messages and converts them into LINE message JSON objects
/// (serde_json::Value) exactly as LINE's API wants them (camelCase keys, only
/// set fields). `path` is the field name of the list ("messages"). Collects
/// ALL violations (not just the first). Never panics on any input.
pub fn to_line_messages(
    path: &str,
    messages: &[pb::Message],
) -> Result<Vec<Value>, Vec<FieldError>> {
    let mut errors = Errors::default();
    if messages.is_empty() || messages.len() > MAX_MESSAGES {
        errors.push(
            path,
            format!(
                "must hold 1-{MAX_MESSAGES} messages, got {}",
                messages.len()
            ),
        );
    }
    let mut out = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        if let Some(value) = convert_message(&mut errors, &format!("{path}[{i}]"), message) {
            out.push(value);
        }
    }
    if errors.0.is_empty() {
        Ok(out)
    } else {
        Err(errors.0)
    }
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: &str, reason: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_owned(),
            reason: reason.into(),
        });
    }
}

/// One message; `None` when it has errors (they are in `errors`).
fn convert_message(errors: &mut Errors, path: &str, message: &pb::Message) -> Option<Value> {
    let before = errors.0.len();
    let quick_reply = message
        .quick_reply
        .as_ref()
        .and_then(|qr| convert_quick_reply(errors, &format!("{path}.quick_reply"), qr));
    let sender = message
        .sender
        .as_ref()
        .and_then(|s| convert_sender(errors, &format!("{path}.sender"), s));

    let body = match &message.kind {
        None => {
            errors.push(
                &format!("{path}.kind"),
                "no message set: exactly one of text, text_v2, sticker, image, video, \
                 audio, location, flex, template, imagemap, raw or file is required",
            );
            None
        }
        Some(Kind::Text(m)) => convert_text(errors, &format!("{path}.text"), m),
        Some(Kind::TextV2(m)) => convert_text_v2(errors, &format!("{path}.text_v2"), m),
        Some(Kind::Sticker(m)) => convert_sticker(errors, &format!("{path}.sticker"), m),
        Some(Kind::Image(m)) => convert_image(errors, &format!("{path}.image"), m),
        Some(Kind::Video(m)) => convert_video(errors, &format!("{path}.video"), m),
        Some(Kind::Audio(m)) => convert_audio(errors, &format!("{path}.audio"), m),
        Some(Kind::Location(m)) => convert_location(errors, &format!("{path}.location"), m),
        Some(Kind::Flex(m)) => convert_flex(errors, &format!("{path}.flex"), m),
        Some(Kind::Template(m)) => convert_template(errors, &format!("{path}.template"), m),
        Some(Kind::Imagemap(m)) => convert_imagemap(errors, &format!("{path}.imagemap"), m),
        Some(Kind::Raw(m)) => convert_raw(errors, path, m, quick_reply.is_some(), sender.is_some()),
        // Uploads are named by the send RPCs' media resolution, which
        // turns a file message into the Flex bubble it is sent as.
        Some(Kind::File(_)) => {
            errors.push(&format!("{path}.file.media_id"), UNRESOLVED);
            None
        }
    };

    let mut body = body?;
    if errors.0.len() != before {
        return None;
    }
    if let Some(quick_reply) = quick_reply {
        body.insert("quickReply".to_owned(), quick_reply);
    }
    if let Some(sender) = sender {
        body.insert("sender".to_owned(), sender);
    }
    Some(Value::Object(body))
}

/// What a `media_id` left in a message says: only the send RPCs, which
/// know the uploads, replace them with URLs.
const UNRESOLVED: &str = "media ids are resolved by the send RPCs; this conversion takes URLs only";

/// Refuses a `media_id` left in a message.
fn check_resolved(errors: &mut Errors, field: &str, media_id: &str) {
    if !media_id.is_empty() {
        errors.push(field, UNRESOLVED);
    }
}

/// A LINE message object with its `type`.
fn typed(kind: &str) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("type".to_owned(), Value::from(kind));
    map
}

/// Adds `key` when `value` is non-empty (proto3 empty string = unset).
fn insert_nonempty(map: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        map.insert(key.to_owned(), Value::from(value));
    }
}

fn convert_text(
    errors: &mut Errors,
    path: &str,
    m: &pb::TextMessage,
) -> Option<Map<String, Value>> {
    let units: Vec<u16> = m.text.encode_utf16().collect();
    // Each `$` counts one unit here, the least its emoji's alternative text
    // can be (see MAX_TEXT).
    check_length(errors, &format!("{path}.text"), &m.text, 1, MAX_TEXT);

    if m.emojis.len() > MAX_EMOJIS {
        errors.push(
            &format!("{path}.emojis"),
            format!(
                "at most {MAX_EMOJIS} emojis allowed, got {}",
                m.emojis.len()
            ),
        );
    }
    let mut emojis = Vec::with_capacity(m.emojis.len());
    let mut seen = Vec::with_capacity(m.emojis.len());
    for (j, emoji) in m.emojis.iter().enumerate() {
        let epath = format!("{path}.emojis[{j}]");
        let points_at_dollar = usize::try_from(emoji.index)
            .ok()
            .and_then(|index| units.get(index))
            .is_some_and(|&unit| unit == u16::from(b'$'));
        if !points_at_dollar {
            errors.push(
                &format!("{epath}.index"),
                format!(
                    "must be the UTF-16 position of a `$` in the text, got {}",
                    emoji.index
                ),
            );
        } else if seen.contains(&emoji.index) {
            errors.push(
                &format!("{epath}.index"),
                format!("another emoji already uses position {}", emoji.index),
            );
        } else {
            seen.push(emoji.index);
        }
        if emoji.product_id.is_empty() {
            errors.push(&format!("{epath}.product_id"), "required");
        }
        if emoji.emoji_id.is_empty() {
            errors.push(&format!("{epath}.emoji_id"), "required");
        }
        emojis.push(json!({
            "index": emoji.index,
            "productId": emoji.product_id,
            "emojiId": emoji.emoji_id,
        }));
    }

    let mut map = typed("text");
    map.insert("text".to_owned(), Value::from(m.text.as_str()));
    if !emojis.is_empty() {
        map.insert("emojis".to_owned(), Value::Array(emojis));
    }
    insert_nonempty(&mut map, "quoteToken", &m.quote_token);
    Some(map)
}

fn convert_text_v2(
    errors: &mut Errors,
    path: &str,
    m: &pb::TextV2Message,
) -> Option<Map<String, Value>> {
    let text_field = format!("{path}.text");
    let substitution_field = format!("{path}.substitution");

    let placeholders = if m.text.is_empty() {
        errors.push(&text_field, "required");
        None
    } else {
        match Placeholders::parse(&m.text) {
            Ok(placeholders) => Some(placeholders),
            Err(reason) => {
                errors.push(&text_field, reason);
                None
            }
        }
    };
    if let Some(placeholders) = &placeholders {
        check_shown_text(errors, &text_field, placeholders, &m.substitution);
    }

    if m.substitution.len() > MAX_SUBSTITUTIONS {
        errors.push(
            &substitution_field,
            format!(
                "at most {MAX_SUBSTITUTIONS} substitutions allowed, got {}",
                m.substitution.len()
            ),
        );
    }
    // Sorted, so that errors come in one order whatever the map's.
    let mut entries: Vec<_> = m.substitution.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut substitution = Map::new();
    for (key, sub) in entries {
        let field = substitution_path(&substitution_field, key);
        if let Err(reason) = check_substitution_key(key) {
            errors.push(&field, reason);
        }
        if let Some(value) = convert_substitution(errors, &field, sub) {
            substitution.insert(key.clone(), value);
        }
    }
    if let Some(placeholders) = &placeholders {
        check_every_key_given(errors, path, placeholders, &m.substitution);
    }

    let mut map = typed("textV2");
    map.insert("text".to_owned(), Value::from(m.text.as_str()));
    if !substitution.is_empty() {
        map.insert("substitution".to_owned(), Value::Object(substitution));
    }
    insert_nonempty(&mut map, "quoteToken", &m.quote_token);
    Some(map)
}

/// One `textV2` substitution as LINE's mention or emoji object; `None` when
/// it has errors.
fn convert_substitution(
    errors: &mut Errors,
    field: &str,
    sub: &pb::TextV2Substitution,
) -> Option<Value> {
    use pb::text_v2_mentionee::Target;
    use pb::text_v2_substitution::Kind as Sub;
    match &sub.kind {
        None => {
            errors.push(
                field,
                "no substitution set: exactly one of mentionee or emoji is required",
            );
            None
        }
        Some(Sub::Mentionee(mentionee)) => {
            let field = format!("{field}.mentionee");
            let target = match &mentionee.target {
                None => {
                    errors.push(
                        &field,
                        "no one named: exactly one of user_id or all is required",
                    );
                    return None;
                }
                Some(Target::UserId(id)) if id.is_empty() => {
                    errors.push(&format!("{field}.user_id"), "required");
                    return None;
                }
                Some(Target::UserId(id)) => json!({ "type": "user", "userId": id }),
                Some(Target::All(pb::TextV2MentionAll {})) => json!({ "type": "all" }),
            };
            Some(json!({ "type": "mention", "mentionee": target }))
        }
        Some(Sub::Emoji(emoji)) => {
            let before = errors.0.len();
            if emoji.product_id.is_empty() {
                errors.push(&format!("{field}.emoji.product_id"), "required");
            }
            if emoji.emoji_id.is_empty() {
                errors.push(&format!("{field}.emoji.emoji_id"), "required");
            }
            (errors.0.len() == before).then(|| {
                json!({
                    "type": "emoji",
                    "productId": emoji.product_id,
                    "emojiId": emoji.emoji_id,
                })
            })
        }
    }
}

/// `{field}["key"]`, the key quoted as Rust quotes it. A key far over the
/// limit (refused anyway) is cut, so that an error never repeats megabytes
/// of the request.
fn substitution_path(field: &str, key: &str) -> String {
    const SHOWN: usize = 2 * MAX_SUBSTITUTION_KEY;
    if key.chars().count() <= SHOWN {
        return format!("{field}[{key:?}]");
    }
    let shown: String = key.chars().take(SHOWN).chain(['…']).collect();
    format!("{field}[{shown:?}]")
}

/// A `textV2` key: 1-20 characters of `0-9a-zA-Z_` ("Characters that can be
/// used for object keys are half-width alphanumeric characters (0-9a-zA-Z)
/// and underscore (_)", LINE Messaging API reference).
fn check_substitution_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_SUBSTITUTION_KEY || !key.bytes().all(is_key_byte) {
        return Err(format!(
            "key must be 1-{MAX_SUBSTITUTION_KEY} characters of 0-9a-zA-Z_, got {} \
             characters",
            key.chars().count()
        ));
    }
    Ok(())
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The text as LINE will show it is within LINE's limits: its length,
/// counted as [`MAX_TEXT`] says, and its mentions and emojis.
fn check_shown_text(
    errors: &mut Errors,
    field: &str,
    placeholders: &Placeholders<'_>,
    substitution: &HashMap<String, pb::TextV2Substitution>,
) {
    use pb::text_v2_substitution::Kind as Sub;
    let mut units = placeholders.literal_units;
    let (mut mentions, mut emojis) = (0usize, 0usize);
    for &(key, _) in &placeholders.keys {
        match substitution.get(key).and_then(|sub| sub.kind.as_ref()) {
            Some(Sub::Mentionee(_)) => {
                mentions += 1;
                units += MENTION_MIN_UNITS;
            }
            Some(Sub::Emoji(_)) => {
                emojis += 1;
                units += EMOJI_MIN_UNITS;
            }
            // Missing or without a kind (reported on the entry): whatever
            // it becomes shows at least one character.
            None => units += 1,
        }
    }
    if units > MAX_TEXT {
        errors.push(
            field,
            format!(
                "must be at most {MAX_TEXT} characters (UTF-16 code units) as LINE counts \
                 them, got at least {units} (each mention counted as {MENTION_MIN_UNITS}, \
                 each emoji as {EMOJI_MIN_UNITS}, `{{{{` and `}}}}` as 1)"
            ),
        );
    }
    if mentions > MAX_TEXT_V2_MENTIONS {
        errors.push(
            field,
            format!("at most {MAX_TEXT_V2_MENTIONS} mention placeholders allowed, got {mentions}"),
        );
    }
    if emojis > MAX_TEXT_V2_EMOJIS {
        errors.push(
            field,
            format!("at most {MAX_TEXT_V2_EMOJIS} emoji placeholders allowed, got {emojis}"),
        );
    }
}

/// Every key of the text has its substitution (LINE: "The substitution
/// content of the string enclosed in { and } must be specified").
fn check_every_key_given(
    errors: &mut Errors,
    path: &str,
    placeholders: &Placeholders<'_>,
    substitution: &HashMap<String, pb::TextV2Substitution>,
) {
    let mut seen = HashSet::new();
    let mut missing = Vec::new();
    for &(key, at) in &placeholders.keys {
        if !substitution.contains_key(key) && seen.insert(key) {
            missing.push((key, at));
        }
        // More keys than a substitution may hold can never all be given:
        // one error, rather than one per key of a text that may be
        // megabytes long.
        if missing.len() > MAX_SUBSTITUTIONS {
            errors.push(
                &format!("{path}.text"),
                format!(
                    "has more than {MAX_SUBSTITUTIONS} keys without a substitution, and a \
                     substitution holds at most {MAX_SUBSTITUTIONS}"
                ),
            );
            return;
        }
    }
    for (key, at) in missing {
        errors.push(
            &substitution_path(&format!("{path}.substitution"), key),
            format!("required: the text has {{{key}}} at position {at} (UTF-16 code units)"),
        );
    }
}

/// The placeholders of a `textV2` text, and the UTF-16 units of the rest as
/// shown (`{{` and `}}` are one brace each).
struct Placeholders<'a> {
    literal_units: usize,
    /// Each `{key}` in order: the key and the UTF-16 position of its `{`.
    keys: Vec<(&'a str, usize)>,
}

impl<'a> Placeholders<'a> {
    /// Reads `{key}`, `{{` and `}}` left to right (LINE: "`{` and `}` must be
    /// used in pairs"); the first brace that is none of them is the error.
    fn parse(text: &'a str) -> Result<Self, String> {
        let mut literal_units = 0;
        let mut keys = Vec::new();
        // UTF-16 position of the character being read, for the caller.
        let mut at = 0;
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.next_if(|&(_, next)| next == '{').is_some() => {
                    literal_units += 1;
                    at += 2;
                }
                '}' if chars.next_if(|&(_, next)| next == '}').is_some() => {
                    literal_units += 1;
                    at += 2;
                }
                '{' => {
                    let start = i + 1;
                    let mut end = start;
                    while let Some((j, _)) =
                        chars.next_if(|&(_, next)| u8::try_from(next).is_ok_and(is_key_byte))
                    {
                        end = j + 1;
                    }
                    let key = &text[start..end];
                    if chars.next_if(|&(_, next)| next == '}').is_none() {
                        return Err(format!(
                            "the `{{` at position {at} starts no placeholder: a placeholder is \
                             {{key}} with a key of 1-{MAX_SUBSTITUTION_KEY} characters of \
                             0-9a-zA-Z_; write `{{{{` for a literal `{{`"
                        ));
                    }
                    if key.is_empty() || key.len() > MAX_SUBSTITUTION_KEY {
                        return Err(format!(
                            "the placeholder {{{key}}} at position {at} must have a key of \
                             1-{MAX_SUBSTITUTION_KEY} characters, got {}",
                            key.len()
                        ));
                    }
                    keys.push((key, at));
                    // The key is ASCII: one UTF-16 unit per byte.
                    at += key.len() + 2;
                }
                '}' => {
                    return Err(format!(
                        "the `}}` at position {at} closes no placeholder; write `}}}}` for a \
                         literal `}}`"
                    ));
                }
                c => {
                    literal_units += c.len_utf16();
                    at += c.len_utf16();
                }
            }
        }
        Ok(Self {
            literal_units,
            keys,
        })
    }
}

/// The fields of every mention in `messages` (`{path}[i].text_v2
/// .substitution["key"].mentionee`), for sends LINE takes no mentions in.
pub fn mention_fields(path: &str, messages: &[pb::Message]) -> Vec<String> {
    use pb::text_v2_substitution::Kind as Sub;
    let mut fields = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let Some(Kind::TextV2(m)) = &message.kind else {
            continue;
        };
        let mut keys: Vec<_> = m
            .substitution
            .iter()
            .filter(|(_, sub)| matches!(sub.kind, Some(Sub::Mentionee(_))))
            .map(|(key, _)| key)
            .collect();
        keys.sort_unstable();
        let substitution = format!("{path}[{i}].text_v2.substitution");
        for key in keys {
            fields.push(format!(
                "{}.mentionee",
                substitution_path(&substitution, key)
            ));
        }
    }
    fields
}

fn convert_sticker(
    errors: &mut Errors,
    path: &str,
    m: &pb::StickerMessage,
) -> Option<Map<String, Value>> {
    if m.package_id.is_empty() {
        errors.push(&format!("{path}.package_id"), "required");
    }
    if m.sticker_id.is_empty() {
        errors.push(&format!("{path}.sticker_id"), "required");
    }
    let mut map = typed("sticker");
    map.insert("packageId".to_owned(), Value::from(m.package_id.as_str()));
    map.insert("stickerId".to_owned(), Value::from(m.sticker_id.as_str()));
    insert_nonempty(&mut map, "quoteToken", &m.quote_token);
    Some(map)
}

fn convert_image(
    errors: &mut Errors,
    path: &str,
    m: &pb::ImageMessage,
) -> Option<Map<String, Value>> {
    check_resolved(errors, &format!("{path}.media_id"), &m.media_id);
    check_url(
        errors,
        &format!("{path}.original_content_url"),
        &m.original_content_url,
    );
    check_url(
        errors,
        &format!("{path}.preview_image_url"),
        &m.preview_image_url,
    );
    let mut map = typed("image");
    map.insert(
        "originalContentUrl".to_owned(),
        Value::from(m.original_content_url.as_str()),
    );
    map.insert(
        "previewImageUrl".to_owned(),
        Value::from(m.preview_image_url.as_str()),
    );
    Some(map)
}

fn convert_video(
    errors: &mut Errors,
    path: &str,
    m: &pb::VideoMessage,
) -> Option<Map<String, Value>> {
    check_resolved(errors, &format!("{path}.media_id"), &m.media_id);
    check_resolved(
        errors,
        &format!("{path}.preview_media_id"),
        &m.preview_media_id,
    );
    check_url(
        errors,
        &format!("{path}.original_content_url"),
        &m.original_content_url,
    );
    check_url(
        errors,
        &format!("{path}.preview_image_url"),
        &m.preview_image_url,
    );
    if !m.tracking_id.is_empty() {
        let field = format!("{path}.tracking_id");
        let n = utf16_len(&m.tracking_id);
        if n > MAX_TRACKING_ID {
            errors.push(
                &field,
                format!("must be at most {MAX_TRACKING_ID} characters, got {n}"),
            );
        }
        if let Some(bad) = m
            .tracking_id
            .chars()
            .find(|&c| !c.is_ascii_alphanumeric() && !TRACKING_ID_SYMBOLS.contains(c))
        {
            errors.push(
                &field,
                format!(
                    "character {bad:?} not allowed: only ASCII letters, digits and \
                     {TRACKING_ID_SYMBOLS}"
                ),
            );
        }
    }
    let mut map = typed("video");
    map.insert(
        "originalContentUrl".to_owned(),
        Value::from(m.original_content_url.as_str()),
    );
    map.insert(
        "previewImageUrl".to_owned(),
        Value::from(m.preview_image_url.as_str()),
    );
    insert_nonempty(&mut map, "trackingId", &m.tracking_id);
    Some(map)
}

fn convert_audio(
    errors: &mut Errors,
    path: &str,
    m: &pb::AudioMessage,
) -> Option<Map<String, Value>> {
    check_resolved(errors, &format!("{path}.media_id"), &m.media_id);
    check_url(
        errors,
        &format!("{path}.original_content_url"),
        &m.original_content_url,
    );
    if m.duration_ms <= 0 {
        errors.push(
            &format!("{path}.duration_ms"),
            format!(
                "must be > 0 (length in milliseconds), got {}",
                m.duration_ms
            ),
        );
    }
    let mut map = typed("audio");
    map.insert(
        "originalContentUrl".to_owned(),
        Value::from(m.original_content_url.as_str()),
    );
    map.insert("duration".to_owned(), Value::from(m.duration_ms));
    Some(map)
}

fn convert_location(
    errors: &mut Errors,
    path: &str,
    m: &pb::LocationMessage,
) -> Option<Map<String, Value>> {
    check_length(
        errors,
        &format!("{path}.title"),
        &m.title,
        1,
        MAX_LOCATION_TEXT,
    );
    check_length(
        errors,
        &format!("{path}.address"),
        &m.address,
        1,
        MAX_LOCATION_TEXT,
    );
    let latitude = check_coordinate(errors, &format!("{path}.latitude"), m.latitude, 90.0);
    let longitude = check_coordinate(errors, &format!("{path}.longitude"), m.longitude, 180.0);
    let mut map = typed("location");
    map.insert("title".to_owned(), Value::from(m.title.as_str()));
    map.insert("address".to_owned(), Value::from(m.address.as_str()));
    map.insert("latitude".to_owned(), latitude?);
    map.insert("longitude".to_owned(), longitude?);
    Some(map)
}

/// A finite number within ±`limit`, as a JSON number.
fn check_coordinate(errors: &mut Errors, field: &str, value: f64, limit: f64) -> Option<Value> {
    if !value.is_finite() || !(-limit..=limit).contains(&value) {
        errors.push(
            field,
            format!("must be a finite number from -{limit} to {limit}, got {value}"),
        );
        return None;
    }
    serde_json::Number::from_f64(value).map(Value::Number)
}

fn convert_flex(
    errors: &mut Errors,
    path: &str,
    m: &pb::FlexMessage,
) -> Option<Map<String, Value>> {
    check_length(
        errors,
        &format!("{path}.alt_text"),
        &m.alt_text,
        1,
        MAX_ALT_TEXT,
    );
    let field = format!("{path}.contents_json");
    let contents = parse_object(errors, &field, &m.contents_json)?;
    let max = match contents.get("type").and_then(Value::as_str) {
        Some("bubble") => MAX_FLEX_BUBBLE_BYTES,
        Some("carousel") => MAX_FLEX_CAROUSEL_BYTES,
        _ => {
            errors.push(
                &field,
                format!(
                    "must be a Flex container: `type` \"bubble\" or \"carousel\", got {}",
                    describe_type(contents.get("type"))
                ),
            );
            return None;
        }
    };
    let size = serialized_len(&contents);
    if size > max {
        errors.push(
            &field,
            format!(
                "a Flex {} may be at most {} KB ({max} bytes) of JSON, got {size} bytes",
                contents
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                max / 1024
            ),
        );
    }
    let mut map = typed("flex");
    map.insert("altText".to_owned(), Value::from(m.alt_text.as_str()));
    map.insert("contents".to_owned(), Value::Object(contents));
    Some(map)
}

fn convert_template(
    errors: &mut Errors,
    path: &str,
    m: &pb::TemplateMessage,
) -> Option<Map<String, Value>> {
    check_length(
        errors,
        &format!("{path}.alt_text"),
        &m.alt_text,
        1,
        MAX_ALT_TEXT,
    );
    let field = format!("{path}.template_json");
    let template = parse_object(errors, &field, &m.template_json)?;
    check_type_among(errors, &field, &template, TEMPLATE_TYPES, "template");
    let mut map = typed("template");
    map.insert("altText".to_owned(), Value::from(m.alt_text.as_str()));
    map.insert("template".to_owned(), Value::Object(template));
    Some(map)
}

fn convert_imagemap(
    errors: &mut Errors,
    path: &str,
    m: &pb::ImagemapMessage,
) -> Option<Map<String, Value>> {
    check_url(errors, &format!("{path}.base_url"), &m.base_url);
    check_length(
        errors,
        &format!("{path}.alt_text"),
        &m.alt_text,
        1,
        MAX_ALT_TEXT,
    );
    if m.base_width != 0 && m.base_width != IMAGEMAP_WIDTH {
        errors.push(
            &format!("{path}.base_width"),
            format!(
                "must be {IMAGEMAP_WIDTH} (or 0, meaning {IMAGEMAP_WIDTH}), got {}",
                m.base_width
            ),
        );
    }
    if m.base_height <= 0 {
        errors.push(
            &format!("{path}.base_height"),
            format!("must be > 0, got {}", m.base_height),
        );
    }

    let actions_field = format!("{path}.actions_json");
    let actions = match parse_json(errors, &actions_field, &m.actions_json) {
        Some(Value::Array(actions)) => {
            if actions.is_empty() || actions.len() > MAX_IMAGEMAP_ACTIONS {
                errors.push(
                    &actions_field,
                    format!(
                        "must be a JSON array of 1-{MAX_IMAGEMAP_ACTIONS} actions, got {}",
                        actions.len()
                    ),
                );
            }
            for (k, action) in actions.iter().enumerate() {
                let ok = action
                    .get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| IMAGEMAP_ACTION_TYPES.contains(&t));
                if !ok {
                    errors.push(
                        &actions_field,
                        format!(
                            "action [{k}] must be a JSON object whose `type` is one of {}, got {}",
                            IMAGEMAP_ACTION_TYPES.join(", "),
                            describe_type(action.get("type"))
                        ),
                    );
                }
            }
            Some(actions)
        }
        Some(other) => {
            errors.push(
                &actions_field,
                format!("must be a JSON array, got {}", json_kind(&other)),
            );
            None
        }
        None => None,
    };

    let video = if m.video_json.is_empty() {
        None
    } else {
        Some(parse_object(
            errors,
            &format!("{path}.video_json"),
            &m.video_json,
        )?)
    };

    let mut map = typed("imagemap");
    map.insert("baseUrl".to_owned(), Value::from(m.base_url.as_str()));
    map.insert("altText".to_owned(), Value::from(m.alt_text.as_str()));
    map.insert(
        "baseSize".to_owned(),
        json!({ "width": IMAGEMAP_WIDTH, "height": m.base_height }),
    );
    map.insert("actions".to_owned(), Value::Array(actions?));
    if let Some(video) = video {
        map.insert("video".to_owned(), Value::Object(video));
    }
    Some(map)
}

/// A raw LINE message: only syntax and a string `type` are checked. Errors
/// name `{path}.raw.json`; a quick reply or sender that would overwrite keys
/// of the JSON is refused on `{path}.quick_reply` / `{path}.sender`.
fn convert_raw(
    errors: &mut Errors,
    path: &str,
    m: &pb::RawMessage,
    adds_quick_reply: bool,
    adds_sender: bool,
) -> Option<Map<String, Value>> {
    let field = format!("{path}.raw.json");
    let object = parse_object(errors, &field, &m.json)?;
    match object.get("type") {
        Some(Value::String(t)) if !t.is_empty() => {}
        _ => errors.push(
            &field,
            format!(
                "must be a LINE message object with a non-empty string `type`, got {}",
                describe_type(object.get("type"))
            ),
        ),
    }
    if adds_quick_reply && object.contains_key("quickReply") {
        errors.push(
            &format!("{path}.quick_reply"),
            "must not be set when the raw JSON already has `quickReply`",
        );
    }
    if adds_sender && object.contains_key("sender") {
        errors.push(
            &format!("{path}.sender"),
            "must not be set when the raw JSON already has `sender`",
        );
    }
    Some(object)
}

/// `None` when there is nothing to send (no items) or on errors.
fn convert_quick_reply(errors: &mut Errors, path: &str, qr: &pb::QuickReply) -> Option<Value> {
    if qr.items.len() > MAX_QUICK_REPLY_ITEMS {
        errors.push(
            &format!("{path}.items"),
            format!(
                "at most {MAX_QUICK_REPLY_ITEMS} quick reply items allowed, got {}",
                qr.items.len()
            ),
        );
    }
    let mut items = Vec::with_capacity(qr.items.len());
    for (j, item) in qr.items.iter().enumerate() {
        let ipath = format!("{path}.items[{j}]");
        if !item.image_url.is_empty() {
            check_url(errors, &format!("{ipath}.image_url"), &item.image_url);
        }
        let field = format!("{ipath}.action_json");
        let Some(action) = parse_object(errors, &field, &item.action_json) else {
            continue;
        };
        check_type_among(errors, &field, &action, QUICK_REPLY_ACTION_TYPES, "action");
        let mut out = typed("action");
        insert_nonempty(&mut out, "imageUrl", &item.image_url);
        out.insert("action".to_owned(), Value::Object(action));
        items.push(Value::Object(out));
    }
    // An empty `items` is the same as no quick reply (see the module docs of
    // the proto: "Unset = none"); LINE gets no `quickReply` key.
    if items.is_empty() {
        return None;
    }
    Some(json!({ "items": items }))
}

/// `None` when both fields are empty (the account's own name and icon).
fn convert_sender(errors: &mut Errors, path: &str, s: &pb::Sender) -> Option<Value> {
    let mut map = Map::new();
    if !s.name.is_empty() {
        check_length(errors, &format!("{path}.name"), &s.name, 1, MAX_SENDER_NAME);
        map.insert("name".to_owned(), Value::from(s.name.as_str()));
    }
    if !s.icon_url.is_empty() {
        check_url(errors, &format!("{path}.icon_url"), &s.icon_url);
        map.insert("iconUrl".to_owned(), Value::from(s.icon_url.as_str()));
    }
    if map.is_empty() {
        None
    } else {
        Some(Value::Object(map))
    }
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// `min..=max` UTF-16 code units; empty with `min > 0` is "required".
fn check_length(errors: &mut Errors, field: &str, value: &str, min: usize, max: usize) {
    if value.is_empty() && min > 0 {
        errors.push(field, "required");
        return;
    }
    let n = utf16_len(value);
    if n < min || n > max {
        errors.push(
            field,
            format!("must be {min}-{max} characters (UTF-16 code units), got {n}"),
        );
    }
}

/// A required HTTPS URL: at most 2000 characters of printable ASCII (already
/// percent-encoded), parsable, scheme `https`, with a host.
fn check_url(errors: &mut Errors, field: &str, value: &str) {
    if value.is_empty() {
        errors.push(field, "required");
        return;
    }
    let n = utf16_len(value);
    if n > MAX_URL {
        errors.push(
            field,
            format!("URL must be at most {MAX_URL} characters, got {n}"),
        );
        return;
    }
    if let Some(bad) = value.chars().find(|c| !c.is_ascii_graphic()) {
        errors.push(
            field,
            format!("URL must be percent-encoded printable ASCII without spaces; found {bad:?}"),
        );
        return;
    }
    match url::Url::parse(value) {
        Err(e) => errors.push(field, format!("not a valid URL: {e}")),
        Ok(url) if url.scheme() != "https" => errors.push(
            field,
            format!("URL must use https, got scheme {:?}", url.scheme()),
        ),
        Ok(url) if url.host_str().is_none_or(str::is_empty) => {
            errors.push(field, "URL must have a host")
        }
        Ok(_) => {}
    }
}

/// Parses a required JSON field, refusing nesting deeper than
/// [`MAX_JSON_DEPTH`] before serde_json sees it.
fn parse_json(errors: &mut Errors, field: &str, text: &str) -> Option<Value> {
    if text.trim().is_empty() {
        errors.push(field, "required");
        return None;
    }
    if nesting_exceeds(text, MAX_JSON_DEPTH) {
        errors.push(
            field,
            format!("JSON is nested deeper than {MAX_JSON_DEPTH} levels of arrays/objects"),
        );
        return None;
    }
    match serde_json::from_str(text) {
        Ok(value) => Some(value),
        Err(e) => {
            errors.push(field, format!("invalid JSON: {e}"));
            None
        }
    }
}

/// Parses a required JSON field that must be an object.
fn parse_object(errors: &mut Errors, field: &str, text: &str) -> Option<Map<String, Value>> {
    match parse_json(errors, field, text)? {
        Value::Object(map) => Some(map),
        other => {
            errors.push(
                field,
                format!("must be a JSON object, got {}", json_kind(&other)),
            );
            None
        }
    }
}

/// Requires `object.type` to be one of `allowed`.
fn check_type_among(
    errors: &mut Errors,
    field: &str,
    object: &Map<String, Value>,
    allowed: &[&str],
    what: &str,
) {
    let ok = object
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| allowed.contains(&t));
    if !ok {
        errors.push(
            field,
            format!(
                "{what} `type` must be one of {}, got {}",
                allowed.join(", "),
                describe_type(object.get("type"))
            ),
        );
    }
}

/// Whether arrays/objects nest deeper than `max` anywhere in `text`
/// (brackets inside strings do not count). Exact for valid JSON.
fn nesting_exceeds(text: &str, max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for byte in text.bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// How a `type` property looks, for error reasons.
fn describe_type(type_field: Option<&Value>) -> String {
    match type_field {
        None => "no `type`".to_owned(),
        Some(Value::String(t)) => format!("{t:?}"),
        Some(other) => format!("a `type` that is {}", json_kind(other)),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Size of `object` as sent (compact JSON), in bytes.
fn serialized_len(object: &Map<String, Value>) -> usize {
    serde_json::to_vec(object).map_or(usize::MAX, |bytes| bytes.len())
}

#[cfg(test)]
mod tests;
