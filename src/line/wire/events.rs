//! LINE webhook bodies → typed `weiyu.line.v1.Event` messages.
//!
//! A body is refused only when it lacks what the service needs to store and
//! deduplicate its events: an object with an `events` array whose elements are
//! objects with a non-empty string `type` and `webhookEventId`. Everything
//! inside an event is mapped leniently (missing or oddly shaped fields leave
//! their typed field at the default) because `Event.json`, the exact bytes LINE
//! sent, stays the source of truth.

use std::collections::BTreeMap;

use base64::prelude::{BASE64_STANDARD, Engine as _};
use prost_types::Timestamp;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, value::RawValue};

use crate::proto::v1 as pb;
use pb::{event::Payload, message_content::Content, module_event::Kind as ModuleKind};

/// One event of a webhook body, parsed.
#[derive(Debug, Clone)]
pub struct ParsedEvent {
    /// Every field that comes from LINE is set: type, type_name,
    /// webhook_event_id, timestamp, mode, is_redelivery, source, reply_token,
    /// json (the exact raw bytes of this event object as text), payload. NOT
    /// set (left default; the caller fills them when storing): sequence,
    /// channel_id, destination, receive_time.
    pub event: pb::Event,
    /// The chat the event belongs to: source.groupId if present, else
    /// source.roomId, else source.userId; empty when there is no source. Used
    /// for Subscribe filters and for reply-token bookkeeping.
    pub conversation_id: String,
}

/// A whole webhook body, parsed.
#[derive(Debug, Clone)]
pub struct ParsedBody {
    /// LINE's `destination` (bot user id); empty if absent.
    pub destination: String,
    pub events: Vec<ParsedEvent>,
}

/// Why a body cannot be parsed; the text becomes `DeadLetter.error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unparseable(pub String);

/// Parses a webhook body (the raw bytes whose signature was already verified).
///
/// Fails when the body is not UTF-8 JSON, is not an object, repeats the key
/// `destination` or `events` (which one would count is ambiguous), has a
/// non-string `destination`, has no `events` array, or when an element of
/// `events` is not an object with a non-empty string `type` and
/// `webhookEventId`. The error names the offending part, e.g.
/// "events[2]: missing string field `webhookEventId`". Never panics.
pub fn parse_body(body: &[u8]) -> Result<ParsedBody, Unparseable> {
    let text = std::str::from_utf8(body)
        .map_err(|err| Unparseable(format!("body is not UTF-8: {err}")))?;
    // One pass for a well-formed body; only a refused one is read again, to
    // say precisely what is wrong with it.
    // (serde would also take a JSON array as the struct, field by position.)
    let object = text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{');
    let envelope: Envelope = match serde_json::from_str(text) {
        Ok(envelope) if object => envelope,
        _ => return Err(envelope_error(text)),
    };

    let destination = match envelope.destination {
        None => String::new(),
        Some(raw) => string_of(raw, "destination").map_err(Unparseable)?,
    };
    let events_raw = envelope
        .events
        .ok_or_else(|| Unparseable("missing array field `events`".into()))?;
    if json_kind(events_raw) != "array" {
        return Err(Unparseable(format!(
            "`events` must be an array, found {}",
            json_kind(events_raw)
        )));
    }
    let elements: Vec<&RawValue> = serde_json::from_str(events_raw.get())
        .map_err(|err| Unparseable(format!("`events`: {err}")))?;
    let events = elements
        .into_iter()
        .enumerate()
        .map(|(index, raw)| {
            parse_raw_event(raw).map_err(|why| Unparseable(format!("events[{index}]: {why}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(ParsedBody {
        destination,
        events,
    })
}

/// Parses one event object given as its raw JSON text (same rules as
/// [`parse_body`]). `json` is `raw` without surrounding whitespace.
pub fn parse_event(raw: &str) -> Result<ParsedEvent, Unparseable> {
    let raw: &RawValue = serde_json::from_str(raw)
        .map_err(|err| Unparseable(format!("event is not valid JSON: {err}")))?;
    parse_raw_event(raw).map_err(|why| Unparseable(format!("event: {why}")))
}

/// The Subscribe/EventType for a LINE type string ("message" →
/// EVENT_TYPE_MESSAGE, ...; anything else → EVENT_TYPE_UNKNOWN).
pub fn event_type_of(type_name: &str) -> pb::EventType {
    lookup(type_name, EVENT_TYPES).unwrap_or(pb::EventType::Unknown)
}

/// The LINE type string of an event type ("deadLetter" for dead letters,
/// "unknown" for types this version does not know), the spelling
/// `tail --type` takes and prints.
pub fn type_name_of(event_type: pb::EventType) -> &'static str {
    match event_type {
        pb::EventType::DeadLetter => "deadLetter",
        other => EVENT_TYPES
            .iter()
            .find(|(_, known)| *known == other)
            .map_or("unknown", |(name, _)| *name),
    }
}

/// Why `text` is not an envelope, for a body the one-pass read refused.
fn envelope_error(text: &str) -> Unparseable {
    let top: &RawValue = match serde_json::from_str(text) {
        Ok(top) => top,
        Err(err) => return Unparseable(format!("body is not valid JSON: {err}")),
    };
    if json_kind(top) != "object" {
        return Unparseable(format!(
            "body must be a JSON object, found {}",
            json_kind(top)
        ));
    }
    // Valid syntax, an object: a repeated key.
    match serde_json::from_str::<Envelope>(top.get()) {
        Err(err) => Unparseable(format!("body: {err}")),
        Ok(_) => Unparseable("body cannot be read as an envelope".into()),
    }
}

/// The envelope, with both fields kept raw: `events` so that each event's
/// bytes can be stored exactly, `destination` so that a wrong type can be
/// reported precisely.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    destination: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    events: Option<&'a RawValue>,
}

/// `Some` even for JSON `null`: an explicit `null` is a wrong type, not a
/// missing field.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// The JSON type of a raw value, for error messages.
fn json_kind(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        Some(_) => "number",
        None => "nothing",
    }
}

fn string_of(raw: &RawValue, name: &str) -> Result<String, String> {
    if json_kind(raw) != "string" {
        return Err(format!(
            "`{name}` must be a string, found {}",
            json_kind(raw)
        ));
    }
    // A string can still be undecodable, e.g. a lone UTF-16 surrogate escape.
    serde_json::from_str(raw.get()).map_err(|err| format!("`{name}`: {err}"))
}

/// The fields an event cannot be stored without: a non-empty string.
fn required_string(fields: &BTreeMap<String, &RawValue>, name: &str) -> Result<String, String> {
    let raw = fields
        .get(name)
        .ok_or_else(|| format!("missing string field `{name}`"))?;
    let value = string_of(raw, name)?;
    if value.is_empty() {
        return Err(format!("string field `{name}` is empty"));
    }
    Ok(value)
}

fn parse_raw_event(raw: &RawValue) -> Result<ParsedEvent, String> {
    if json_kind(raw) != "object" {
        return Err(format!("must be a JSON object, found {}", json_kind(raw)));
    }
    // One pass into a `Value` for nearly every event. An event that pass
    // refuses (nested beyond serde_json's recursion limit, an undecodable
    // string) is read field by field instead, which keeps what can be kept;
    // so is one lacking its `type` or id, which that read words the error of.
    if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(raw.get())
        && let Some(type_name) = non_empty_string(&fields, "type")
        && let Some(webhook_event_id) = non_empty_string(&fields, "webhookEventId")
    {
        return Ok(map_event(
            type_name,
            webhook_event_id,
            &Value::Object(fields),
            raw.get(),
        ));
    }
    parse_field_by_field(raw)
}

fn non_empty_string(fields: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    fields
        .get(name)
        .and_then(Value::as_str)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

/// The event read one field at a time, each into its own `Value`.
fn parse_field_by_field(raw: &RawValue) -> Result<ParsedEvent, String> {
    let fields: BTreeMap<String, &RawValue> =
        serde_json::from_str(raw.get()).map_err(|err| err.to_string())?;
    let type_name = required_string(&fields, "type")?;
    let webhook_event_id = required_string(&fields, "webhookEventId")?;
    Ok(map_event(
        type_name,
        webhook_event_id,
        &typed_view(&fields),
        raw.get(),
    ))
}

/// The event as a `Value` for the typed mapping. Each field is decoded on its
/// own so that one nested beyond serde_json's recursion limit only loses its
/// typed mapping instead of failing the event.
fn typed_view(fields: &BTreeMap<String, &RawValue>) -> Value {
    Value::Object(
        fields
            .iter()
            .filter_map(|(name, raw)| {
                let value = serde_json::from_str(raw.get()).ok()?;
                Some((name.clone(), value))
            })
            .collect(),
    )
}

fn map_event(type_name: String, webhook_event_id: String, v: &Value, json: &str) -> ParsedEvent {
    let event_type = event_type_of(&type_name);
    let source = object(&v["source"]).map(source);
    let conversation_id = source.as_ref().map(conversation_id).unwrap_or_default();
    let event = pb::Event {
        webhook_event_id,
        r#type: event_type.into(),
        payload: Some(payload(event_type, &type_name, v)),
        type_name,
        timestamp: timestamp(&v["timestamp"]),
        mode: named(&v["mode"], MODES),
        is_redelivery: boolean(&v["deliveryContext"]["isRedelivery"]),
        source,
        reply_token: string(&v["replyToken"]),
        json: json.to_owned(),
        ..Default::default()
    };
    ParsedEvent {
        event,
        conversation_id,
    }
}

/// The payload case always matches `event_type`, which `event_type_of`
/// limits to modeled types and UNKNOWN.
fn payload(event_type: pb::EventType, type_name: &str, v: &Value) -> Payload {
    use pb::EventType as T;
    match event_type {
        T::Message => Payload::Message(pb::MessageEvent {
            message: object(&v["message"]).map(message_content),
        }),
        T::MessageEdited => Payload::MessageEdited(pb::MessageEditedEvent {
            message: object(&v["message"]).map(message_content),
        }),
        T::Unsend => Payload::Unsend(pb::UnsendEvent {
            message_id: string(&v["unsend"]["messageId"]),
        }),
        T::Follow => Payload::Follow(pb::FollowEvent {
            is_unblocked: boolean(&v["follow"]["isUnblocked"]),
        }),
        T::Unfollow => Payload::Unfollow(pb::UnfollowEvent {}),
        T::Join => Payload::Join(pb::JoinEvent {}),
        T::Leave => Payload::Leave(pb::LeaveEvent {}),
        T::MemberJoined => Payload::MemberJoined(pb::MemberJoinedEvent {
            members: members(&v["joined"]),
        }),
        T::MemberLeft => Payload::MemberLeft(pb::MemberLeftEvent {
            members: members(&v["left"]),
        }),
        T::Postback => Payload::Postback(postback(&v["postback"])),
        T::VideoPlayComplete => Payload::VideoPlayComplete(pb::VideoPlayCompleteEvent {
            tracking_id: string(&v["videoPlayComplete"]["trackingId"]),
        }),
        T::Beacon => Payload::Beacon(beacon(&v["beacon"])),
        T::AccountLink => Payload::AccountLink(pb::AccountLinkEvent {
            result: named(&v["link"]["result"], ACCOUNT_LINK_RESULTS),
            nonce: string(&v["link"]["nonce"]),
        }),
        T::Things => Payload::Things(things(&v["things"])),
        T::Membership => Payload::Membership(pb::MembershipEvent {
            r#type: named(&v["membership"]["type"], MEMBERSHIP_TYPES),
            membership_id: int64(&v["membership"]["membershipId"]),
        }),
        T::Module => Payload::Module(module(&v["module"])),
        T::Activated => Payload::Activated(pb::ActivatedEvent {
            chat_control_expire_time: timestamp(&v["chatControl"]["expireAt"]),
        }),
        T::Deactivated => Payload::Deactivated(pb::DeactivatedEvent {}),
        T::BotSuspended => Payload::BotSuspended(pb::BotSuspendedEvent {}),
        T::BotResumed => Payload::BotResumed(pb::BotResumedEvent {}),
        T::Delivery => Payload::Delivery(pb::PnpDeliveryEvent {
            data: string(&v["delivery"]["data"]),
        }),
        // line-adapter's own records never come of a LINE type string.
        T::Unknown | T::Unspecified | T::DeadLetter | T::Outbound | T::Profile => {
            Payload::Unknown(pb::UnknownEvent {
                type_name: type_name.to_owned(),
            })
        }
    }
}

fn source(v: &Value) -> pb::Source {
    pb::Source {
        r#type: named(&v["type"], SOURCE_TYPES),
        type_name: string(&v["type"]),
        user_id: string(&v["userId"]),
        group_id: string(&v["groupId"]),
        room_id: string(&v["roomId"]),
    }
}

fn conversation_id(source: &pb::Source) -> String {
    [&source.group_id, &source.room_id, &source.user_id]
        .into_iter()
        .find(|id| !id.is_empty())
        .cloned()
        .unwrap_or_default()
}

/// `joined` / `left` of memberJoined / memberLeft.
fn members(v: &Value) -> Vec<pb::Source> {
    objects(&v["members"]).map(source).collect()
}

fn message_content(v: &Value) -> pb::MessageContent {
    let type_name = string(&v["type"]);
    let content = match type_name.as_str() {
        "text" => Content::Text(text(v)),
        "image" => Content::Image(pb::ImageContent {
            content_provider: content_provider(v),
            image_set: object(&v["imageSet"]).map(|set| pb::ImageSet {
                id: string(&set["id"]),
                index: int32(&set["index"]),
                total: int32(&set["total"]),
            }),
        }),
        "video" => Content::Video(pb::VideoContent {
            duration_ms: int64(&v["duration"]),
            content_provider: content_provider(v),
        }),
        "audio" => Content::Audio(pb::AudioContent {
            duration_ms: int64(&v["duration"]),
            content_provider: content_provider(v),
        }),
        "file" => Content::File(pb::FileContent {
            file_name: string(&v["fileName"]),
            file_size_bytes: int64(&v["fileSize"]),
        }),
        "location" => Content::Location(pb::LocationContent {
            title: string(&v["title"]),
            address: string(&v["address"]),
            latitude: float(&v["latitude"]),
            longitude: float(&v["longitude"]),
        }),
        "sticker" => Content::Sticker(sticker(v)),
        _ => Content::Unknown(pb::UnknownContent {
            type_name: type_name.clone(),
        }),
    };
    let content_status = content_status(&content);
    pb::MessageContent {
        id: string(&v["id"]),
        type_name,
        quote_token: string(&v["quoteToken"]),
        mark_as_read_token: string(&v["markAsReadToken"]),
        content_status: content_status as i32,
        content: Some(content),
    }
}

/// Media hosted by LINE is fetched as soon as the event is stored
/// (`PENDING` until then); external media is never fetched.
fn content_status(content: &Content) -> pb::ContentStatus {
    let provider = match content {
        Content::Image(image) => image.content_provider.as_ref(),
        Content::Video(video) => video.content_provider.as_ref(),
        Content::Audio(audio) => audio.content_provider.as_ref(),
        Content::File(_) => return pb::ContentStatus::Pending,
        _ => return pb::ContentStatus::Unspecified,
    };
    match provider.map(|p| p.r#type()) {
        Some(pb::ContentProviderType::External) => pb::ContentStatus::External,
        _ => pb::ContentStatus::Pending,
    }
}

fn text(v: &Value) -> pb::TextContent {
    pb::TextContent {
        text: string(&v["text"]),
        emojis: objects(&v["emojis"])
            .map(|emoji| pb::Emoji {
                index: int32(&emoji["index"]),
                length: int32(&emoji["length"]),
                product_id: string(&emoji["productId"]),
                emoji_id: string(&emoji["emojiId"]),
            })
            .collect(),
        mention: object(&v["mention"]).map(|mention| pb::Mention {
            mentionees: objects(&mention["mentionees"])
                .map(|mentionee| pb::Mentionee {
                    index: int32(&mentionee["index"]),
                    length: int32(&mentionee["length"]),
                    r#type: named(&mentionee["type"], MENTIONEE_TYPES),
                    user_id: string(&mentionee["userId"]),
                    is_self: boolean(&mentionee["isSelf"]),
                })
                .collect(),
        }),
        quoted_message_id: string(&v["quotedMessageId"]),
    }
}

fn sticker(v: &Value) -> pb::StickerContent {
    pb::StickerContent {
        package_id: string(&v["packageId"]),
        sticker_id: string(&v["stickerId"]),
        resource_type: named(&v["stickerResourceType"], STICKER_RESOURCE_TYPES),
        resource_type_name: string(&v["stickerResourceType"]),
        keywords: strings(&v["keywords"]),
        text: string(&v["text"]),
        quoted_message_id: string(&v["quotedMessageId"]),
    }
}

/// `contentProvider` of an image, video or audio message.
fn content_provider(message: &Value) -> Option<pb::ContentProvider> {
    object(&message["contentProvider"]).map(|provider| pb::ContentProvider {
        r#type: named(&provider["type"], CONTENT_PROVIDER_TYPES),
        original_content_url: string(&provider["originalContentUrl"]),
        preview_image_url: string(&provider["previewImageUrl"]),
    })
}

fn postback(v: &Value) -> pb::PostbackEvent {
    // LINE documents string values only; anything else keeps its JSON text so
    // that nothing is silently dropped.
    let params = v["params"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| {
            let value = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            (name.clone(), value)
        })
        .collect();
    pb::PostbackEvent {
        data: string(&v["data"]),
        params,
    }
}

fn beacon(v: &Value) -> pb::BeaconEvent {
    let dm_hex = string(&v["dm"]);
    pb::BeaconEvent {
        hwid: string(&v["hwid"]),
        r#type: named(&v["type"], BEACON_TYPES),
        dm: hex::decode(&dm_hex).unwrap_or_default(),
        dm_hex,
    }
}

fn things(v: &Value) -> pb::ThingsEvent {
    pb::ThingsEvent {
        device_id: string(&v["deviceId"]),
        r#type: named(&v["type"], THINGS_TYPES),
        type_name: string(&v["type"]),
        result: object(&v["result"]).map(|result| pb::ThingsScenarioResult {
            scenario_id: string(&result["scenarioId"]),
            revision: int64(&result["revision"]),
            start_time: timestamp(&result["startTime"]),
            end_time: timestamp(&result["endTime"]),
            result_code: string(&result["resultCode"]),
            action_results: objects(&result["actionResults"])
                .map(|action| pb::ThingsActionResult {
                    r#type: string(&action["type"]),
                    data: base64(&action["data"]),
                })
                .collect(),
            ble_notification_payload: base64(&result["bleNotificationPayload"]),
            error_reason: string(&result["errorReason"]),
        }),
    }
}

fn module(v: &Value) -> pb::ModuleEvent {
    let type_name = string(&v["type"]);
    let kind = match type_name.as_str() {
        "attached" => Some(ModuleKind::Attached(pb::ModuleAttached {
            bot_id: string(&v["botId"]),
            scopes: strings(&v["scopes"]),
        })),
        "detached" => Some(ModuleKind::Detached(pb::ModuleDetached {
            bot_id: string(&v["botId"]),
            reason: string(&v["reason"]),
        })),
        _ => None,
    };
    pb::ModuleEvent { type_name, kind }
}

// Lenient accessors. `Value`'s `[]` yields `Null` for a missing key or a
// non-object, so chains like `v["a"]["b"]` never panic; each accessor turns
// anything of the wrong shape into the proto default.

fn string(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn boolean(v: &Value) -> bool {
    v.as_bool().unwrap_or_default()
}

fn int64(v: &Value) -> i64 {
    v.as_i64().unwrap_or_default()
}

fn int32(v: &Value) -> i32 {
    v.as_i64()
        .and_then(|n| i32::try_from(n).ok())
        .unwrap_or_default()
}

fn float(v: &Value) -> f64 {
    v.as_f64().unwrap_or_default()
}

fn object(v: &Value) -> Option<&Value> {
    v.is_object().then_some(v)
}

/// The object elements of an array; other elements carry nothing to map.
fn objects(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|item| item.is_object())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

fn base64(v: &Value) -> Vec<u8> {
    BASE64_STANDARD
        .decode(v.as_str().unwrap_or_default())
        .unwrap_or_default()
}

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range
/// `google.protobuf.Timestamp` allows (other languages reject values outside).
const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// LINE's milliseconds since the Unix epoch; unset when not an integer or out
/// of `Timestamp`'s range.
fn timestamp(v: &Value) -> Option<Timestamp> {
    let millis = v.as_i64()?;
    let seconds = millis.div_euclid(1000);
    let nanos = i32::try_from(millis.rem_euclid(1000)).ok()? * 1_000_000;
    (MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS)
        .contains(&seconds)
        .then_some(Timestamp { seconds, nanos })
}

/// A LINE enum string as the proto enum's number; 0 (UNSPECIFIED) when the
/// value is missing or unknown.
fn named<E: Copy + Default + Into<i32>>(v: &Value, table: &[(&str, E)]) -> i32 {
    lookup(v.as_str().unwrap_or_default(), table)
        .unwrap_or_default()
        .into()
}

fn lookup<E: Copy>(name: &str, table: &[(&str, E)]) -> Option<E> {
    table
        .iter()
        .find(|(known, _)| *known == name)
        .map(|&(_, value)| value)
}

const EVENT_TYPES: &[(&str, pb::EventType)] = {
    use pb::EventType as T;
    &[
        ("message", T::Message),
        ("messageEdited", T::MessageEdited),
        ("unsend", T::Unsend),
        ("follow", T::Follow),
        ("unfollow", T::Unfollow),
        ("join", T::Join),
        ("leave", T::Leave),
        ("memberJoined", T::MemberJoined),
        ("memberLeft", T::MemberLeft),
        ("postback", T::Postback),
        ("videoPlayComplete", T::VideoPlayComplete),
        ("beacon", T::Beacon),
        ("accountLink", T::AccountLink),
        ("things", T::Things),
        ("membership", T::Membership),
        ("module", T::Module),
        ("activated", T::Activated),
        ("deactivated", T::Deactivated),
        ("botSuspended", T::BotSuspended),
        ("botResumed", T::BotResumed),
        ("delivery", T::Delivery),
    ]
};

const MODES: &[(&str, pb::EventMode)] = &[
    ("active", pb::EventMode::Active),
    ("standby", pb::EventMode::Standby),
];

const SOURCE_TYPES: &[(&str, pb::SourceType)] = &[
    ("user", pb::SourceType::User),
    ("group", pb::SourceType::Group),
    ("room", pb::SourceType::Room),
];

const MENTIONEE_TYPES: &[(&str, pb::MentioneeType)] = &[
    ("user", pb::MentioneeType::User),
    ("all", pb::MentioneeType::All),
];

const CONTENT_PROVIDER_TYPES: &[(&str, pb::ContentProviderType)] = &[
    ("line", pb::ContentProviderType::Line),
    ("external", pb::ContentProviderType::External),
];

const STICKER_RESOURCE_TYPES: &[(&str, pb::StickerResourceType)] = {
    use pb::StickerResourceType as S;
    &[
        ("STATIC", S::Static),
        ("ANIMATION", S::Animation),
        ("SOUND", S::Sound),
        ("ANIMATION_SOUND", S::AnimationSound),
        ("POPUP", S::Popup),
        ("POPUP_SOUND", S::PopupSound),
        ("CUSTOM", S::Custom),
        ("MESSAGE", S::Message),
        ("NAME_TEXT", S::NameText),
        ("PER_STICKER_TEXT", S::PerStickerText),
    ]
};

const BEACON_TYPES: &[(&str, pb::BeaconEventType)] = &[
    ("enter", pb::BeaconEventType::Enter),
    ("banner", pb::BeaconEventType::Banner),
    ("stay", pb::BeaconEventType::Stay),
];

const ACCOUNT_LINK_RESULTS: &[(&str, pb::AccountLinkResult)] = &[
    ("ok", pb::AccountLinkResult::Ok),
    ("failed", pb::AccountLinkResult::Failed),
];

const THINGS_TYPES: &[(&str, pb::ThingsEventType)] = &[
    ("link", pb::ThingsEventType::Link),
    ("unlink", pb::ThingsEventType::Unlink),
    ("scenarioResult", pb::ThingsEventType::ScenarioResult),
];

const MEMBERSHIP_TYPES: &[(&str, pb::MembershipEventType)] = &[
    ("joined", pb::MembershipEventType::Joined),
    ("left", pb::MembershipEventType::Left),
    ("renewed", pb::MembershipEventType::Renewed),
];

#[cfg(test)]
mod tests;
