//! Outbound messages: validates the gRPC `Message`s of a send and converts
//! them into LINE Message objects (messaging-api.yml `Message` and its
//! subtypes) as `serde_json::Value`s, camelCase keys, only set fields.
//!
//! Every violation is collected (not just the first) and named by its proto
//! path as the caller wrote it, e.g. `messages[0].text.text` or
//! `messages[1].quick_reply.items[3].action_json`.
//!
//! Lengths count UTF-16 code units, as LINE does ("Character counting in a
//! text", LINE Developers). Media URLs must be HTTPS, at most 2000 characters
//! and already percent-encoded (printable ASCII); they are sent exactly as
//! given. JSON fields (Flex contents, templates, imagemap actions and video,
//! quick reply actions, raw messages) are checked for syntax, nesting depth
//! and their `type`; LINE checks the rest and its 400 reaches the caller.

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
/// `text.text`, in UTF-16 code units.
const MAX_TEXT: usize = 5000;
/// LINE emojis per text message.
const MAX_EMOJIS: usize = 20;
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
                "no message set: exactly one of text, sticker, image, video, audio, \
                 location, flex, template, imagemap, raw or file is required",
            );
            None
        }
        Some(Kind::Text(m)) => convert_text(errors, &format!("{path}.text"), m),
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
