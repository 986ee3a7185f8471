//! Sending RPCs of `Messaging`: Send (cheapest route), Reply, Push,
//! Multicast, Broadcast and GetDelivery. Requests are validated and turned
//! into LINE request bodies here; the outbox stores and performs them.

use std::time::Duration;

use prost::Message as _;
use serde_json::{Value, json};
use tonic::Status;

use super::status::{Violations, delivery_status, invalid_field, store_status};
use crate::{
    channels::validate,
    line::wire::messages::{mention_fields, to_line_messages},
    outbound::{delivery_to_proto as to_proto, route},
    outbox::{NewDelivery, OutboxError},
    proto::v1 as pb,
    services::Services,
    store::{DeliveryRecord, ReplyToken, SendKind},
};

/// How long a send RPC waits for LINE's answer before returning the
/// delivery as it stands (it keeps going; GetDelivery follows it).
pub(super) const WAIT_FOR_LINE: Duration = Duration::from_secs(10);
/// Reply tokens younger than this are used by Send; LINE honours them for
/// about a minute, and the request itself takes time.
const FRESH_REPLY_TOKEN: Duration = Duration::from_secs(50);
const MAX_ID_LEN: usize = 128;
const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;
const MAX_MULTICAST: usize = 500;

/// Checks a LINE user, group or room id: LINE's ids are opaque, so only
/// their shape is checked.
pub(super) fn line_id(value: &str) -> Result<String, String> {
    if value.is_empty() || value.len() > MAX_ID_LEN {
        return Err(format!("must be 1-{MAX_ID_LEN} characters"));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".into());
    }
    Ok(value.to_owned())
}

/// `user:U…`, `group:C…` or `room:R…`.
pub(super) fn conversation(
    violations: &mut Violations,
    field: &str,
    value: Option<&pb::Conversation>,
) -> Option<String> {
    use pb::conversation::Chat;
    let Some(chat) = value.and_then(|c| c.chat.as_ref()) else {
        violations.add(field, "must name a user_id, group_id or room_id");
        return None;
    };
    let (kind, id, name) = match chat {
        Chat::UserId(id) => ("user", id, "user_id"),
        Chat::GroupId(id) => ("group", id, "group_id"),
        Chat::RoomId(id) => ("room", id, "room_id"),
    };
    violations
        .check(&format!("{field}.{name}"), line_id(id))
        .map(|id| format!("{kind}:{id}"))
}

pub(super) fn idempotency_key(violations: &mut Violations, value: &str) -> String {
    if value.len() > MAX_IDEMPOTENCY_KEY_LEN || !value.bytes().all(|b| b.is_ascii_graphic()) {
        violations.add(
            "idempotency_key",
            format!("must be at most {MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters"),
        );
    }
    value.to_owned()
}

/// The caller's messages as LINE JSON: uploads named by `media_id` (of
/// `channel_id`) become their URLs first (see `attachments.rs`). Fails only
/// when the uploads cannot be looked up (NATS unreachable); what is wrong
/// with the messages goes into `violations`.
pub(super) async fn messages(
    violations: &mut Violations,
    services: &Services,
    channel_id: &str,
    messages: &[pb::Message],
) -> Result<Vec<Value>, Status> {
    // Uploads made through another replica are found in NATS first.
    services
        .uploads
        .load_shared(&super::attachments::media_ids(messages))
        .await
        .map_err(store_status)?;
    let resolved = match super::attachments::resolve(
        &services.uploads,
        channel_id.trim(),
        "messages",
        messages,
        services.clock.now_ms(),
    ) {
        Ok(resolved) => resolved,
        Err(errors) => {
            for error in errors {
                violations.add(error.field, error.reason);
            }
            return Ok(Vec::new());
        }
    };
    Ok(match to_line_messages("messages", &resolved) {
        Ok(converted) => converted,
        Err(errors) => {
            for error in errors {
                violations.add(error.field, error.reason);
            }
            Vec::new()
        }
    })
}

/// Refuses every mention of `messages`, for a send that cannot carry them:
/// LINE takes mentions only in replies and pushes to a group or room
/// ("Mention object", Messaging API reference, text message (v2)). `send`
/// says what this send is instead.
pub(super) fn refuse_mentions(violations: &mut Violations, messages: &[pb::Message], send: &str) {
    for field in mention_fields("messages", messages) {
        violations.add(
            field,
            format!("LINE allows mentions only in replies and pushes to a group or room; {send}"),
        );
    }
}

/// Whether a chat is a user's (1:1), where LINE takes no mentions.
fn is_user(chat: Option<&pb::Conversation>) -> bool {
    matches!(
        chat.and_then(|c| c.chat.as_ref()),
        Some(pb::conversation::Chat::UserId(_))
    )
}

/// LINE's `customAggregationUnits`: at most one name of 1–30 `[A-Za-z0-9_]`.
fn aggregation_units(violations: &mut Violations, units: &[String]) -> Option<Value> {
    if units.is_empty() {
        return None;
    }
    if units.len() > 1 {
        violations.add(
            "custom_aggregation_units",
            "LINE allows one unit name per request",
        );
    }
    for (i, unit) in units.iter().enumerate() {
        if unit.is_empty()
            || unit.len() > 30
            || !unit.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            violations.add(
                format!("custom_aggregation_units[{i}]"),
                "must be 1-30 characters of [A-Za-z0-9_]",
            );
        }
    }
    Some(json!(units))
}

pub(super) async fn existing_channel(services: &Services, id: &str) -> Result<String, Status> {
    let id = validate::channel_id(id).map_err(|reason| invalid_field("channel_id", reason))?;
    services.channels.get(&id).await?;
    Ok(id)
}

/// A send with no chat, reply event or push fallback; callers add those.
pub(super) fn new_delivery(
    channel_id: String,
    kind: SendKind,
    body: Value,
    key: String,
) -> NewDelivery {
    NewDelivery {
        channel_id,
        kind,
        conversation: None,
        body,
        idempotency_key: key,
        reply_webhook_event_id: String::new(),
        push_fallback: None,
        typed_messages: String::new(),
    }
}

/// A push of `messages` to a chat (`user:…`, `group:…` or `room:…`).
fn push_delivery(
    channel_id: String,
    to: String,
    messages: Vec<Value>,
    notification_disabled: bool,
    units: Option<Value>,
    key: String,
) -> NewDelivery {
    let body = push_body(&to, messages, notification_disabled, units);
    NewDelivery {
        conversation: Some(to),
        ..new_delivery(channel_id, SendKind::Push, body, key)
    }
}

pub(super) fn body(
    mut fields: serde_json::Map<String, Value>,
    notification_disabled: bool,
) -> Value {
    if notification_disabled {
        fields.insert("notificationDisabled".into(), Value::Bool(true));
    }
    Value::Object(fields)
}

/// Submits, waits for LINE, and answers as the contract says.
/// `list` is the caller's messages, kept for the send's log records.
async fn submit(
    services: &Services,
    new: NewDelivery,
    list: &[pb::Message],
) -> Result<DeliveryRecord, Status> {
    let record = enqueue(services, new, list).await?;
    let record = services.outbox.wait(record, WAIT_FOR_LINE).await;
    outcome(record)
}

/// Stores the send and starts it (or finds the one its idempotency key
/// names), without waiting.
pub(super) async fn enqueue(
    services: &Services,
    mut new: NewDelivery,
    list: &[pb::Message],
) -> Result<DeliveryRecord, Status> {
    new.typed_messages = crate::outbound::encode_messages(list);
    let (record, _existing) = services.outbox.submit(new).await.map_err(|err| match err {
        OutboxError::IdempotencyMismatch { key } => Status::already_exists(format!(
            "idempotency_key: {key} was used for a different request"
        )),
        OutboxError::Store(err) => store_status(err),
    })?;
    Ok(record)
}

/// A delivery as the caller sees it: OK while it succeeds or is still
/// going; when it ended otherwise, the status `status.rs` gives it.
pub(super) fn outcome(record: DeliveryRecord) -> Result<DeliveryRecord, Status> {
    match delivery_status(&record) {
        None => Ok(record),
        Some(status) => Err(status),
    }
}

fn push_body(
    to: &str,
    messages: Vec<Value>,
    notification_disabled: bool,
    units: Option<Value>,
) -> Value {
    let mut fields = serde_json::Map::new();
    fields.insert("to".into(), json!(crate::outbox::conversation_id(to)));
    fields.insert("messages".into(), Value::Array(messages));
    if let Some(units) = units {
        fields.insert("customAggregationUnits".into(), units);
    }
    body(fields, notification_disabled)
}

fn reply_body(token: &str, messages: Vec<Value>, notification_disabled: bool) -> Value {
    let mut fields = serde_json::Map::new();
    fields.insert("replyToken".into(), json!(token));
    fields.insert("messages".into(), Value::Array(messages));
    body(fields, notification_disabled)
}

pub async fn push(
    services: &Services,
    request: pb::PushRequest,
) -> Result<pb::PushResponse, Status> {
    let pb::PushRequest {
        channel_id,
        to,
        messages: list,
        notification_disabled,
        custom_aggregation_units,
        idempotency_key: key,
    } = request;
    let mut violations = Violations::new();
    let to_user = is_user(to.as_ref());
    let to = conversation(&mut violations, "to", to.as_ref());
    let converted = messages(&mut violations, services, &channel_id, &list).await?;
    if to_user {
        refuse_mentions(
            &mut violations,
            &list,
            "this push goes to a user (to.user_id)",
        );
    }
    let units = aggregation_units(&mut violations, &custom_aggregation_units);
    let key = idempotency_key(&mut violations, &key);
    violations.into_result()?;
    let channel_id = existing_channel(services, &channel_id).await?;
    let to = to.unwrap_or_default();
    let record = submit(
        services,
        push_delivery(channel_id, to, converted, notification_disabled, units, key),
        &list,
    )
    .await?;
    Ok(pb::PushResponse {
        delivery: Some(to_proto(&record)),
    })
}

pub async fn multicast(
    services: &Services,
    request: pb::MulticastRequest,
) -> Result<pb::MulticastResponse, Status> {
    let pb::MulticastRequest {
        channel_id,
        to,
        messages: list,
        notification_disabled,
        custom_aggregation_units,
        idempotency_key: key,
    } = request;
    let mut violations = Violations::new();
    if to.is_empty() || to.len() > MAX_MULTICAST {
        violations.add(
            "to",
            format!("must list 1-{MAX_MULTICAST} user ids, got {}", to.len()),
        );
    }
    for (i, id) in to.iter().enumerate() {
        violations.check(&format!("to[{i}]"), line_id(id));
    }
    let converted = messages(&mut violations, services, &channel_id, &list).await?;
    refuse_mentions(&mut violations, &list, "this is a multicast");
    let units = aggregation_units(&mut violations, &custom_aggregation_units);
    let key = idempotency_key(&mut violations, &key);
    violations.into_result()?;
    let channel_id = existing_channel(services, &channel_id).await?;
    let mut fields = serde_json::Map::new();
    fields.insert("to".into(), json!(to));
    fields.insert("messages".into(), Value::Array(converted));
    if let Some(units) = units {
        fields.insert("customAggregationUnits".into(), units);
    }
    let record = submit(
        services,
        new_delivery(
            channel_id,
            SendKind::Multicast,
            body(fields, notification_disabled),
            key,
        ),
        &list,
    )
    .await?;
    Ok(pb::MulticastResponse {
        delivery: Some(to_proto(&record)),
    })
}

pub async fn broadcast(
    services: &Services,
    request: pb::BroadcastRequest,
) -> Result<pb::BroadcastResponse, Status> {
    let pb::BroadcastRequest {
        channel_id,
        messages: list,
        notification_disabled,
        idempotency_key: key,
    } = request;
    let mut violations = Violations::new();
    let converted = messages(&mut violations, services, &channel_id, &list).await?;
    refuse_mentions(&mut violations, &list, "this is a broadcast");
    let key = idempotency_key(&mut violations, &key);
    violations.into_result()?;
    let channel_id = existing_channel(services, &channel_id).await?;
    let mut fields = serde_json::Map::new();
    fields.insert("messages".into(), Value::Array(converted));
    let record = submit(
        services,
        new_delivery(
            channel_id,
            SendKind::Broadcast,
            body(fields, notification_disabled),
            key,
        ),
        &list,
    )
    .await?;
    Ok(pb::BroadcastResponse {
        delivery: Some(to_proto(&record)),
    })
}

pub async fn reply(
    services: &Services,
    request: pb::ReplyRequest,
) -> Result<pb::ReplyResponse, Status> {
    let pb::ReplyRequest {
        channel_id,
        reply_token,
        messages: list,
        notification_disabled,
        idempotency_key: key,
        push_fallback_to,
    } = request;
    let mut violations = Violations::new();
    violations.check("reply_token", line_id(&reply_token));
    let converted = messages(&mut violations, services, &channel_id, &list).await?;
    // The reply's own chat is unknown here (LINE checks it); its fallback's
    // is not.
    if is_user(push_fallback_to.as_ref()) {
        refuse_mentions(
            &mut violations,
            &list,
            "the push fallback goes to a user (push_fallback_to.user_id)",
        );
    }
    let fallback = push_fallback_to
        .as_ref()
        .and_then(|to| conversation(&mut violations, "push_fallback_to", Some(to)));
    let key = idempotency_key(&mut violations, &key);
    violations.into_result()?;
    let channel_id = existing_channel(services, &channel_id).await?;

    if let Some(record) = known_delivery(services, &channel_id, &key).await? {
        return Ok(pb::ReplyResponse {
            delivery: Some(to_proto(&record)),
        });
    }
    // A token is used at most once, ever.
    let claimed = services
        .store
        .claim_reply_token(&channel_id, &reply_token, services.clock.now_ms())
        .await
        .map_err(store_status)?;
    let new = match (claimed, fallback) {
        (true, fallback) => NewDelivery {
            channel_id,
            kind: SendKind::Reply,
            body: reply_body(&reply_token, converted, notification_disabled),
            conversation: None,
            idempotency_key: key,
            reply_webhook_event_id: String::new(),
            push_fallback: fallback,
            typed_messages: String::new(),
        },
        (false, Some(to)) => {
            push_delivery(channel_id, to, converted, notification_disabled, None, key)
        }
        (false, None) => {
            return Err(Status::failed_precondition(
                "reply_token: this reply token was already used; a token is used at most once (give push_fallback_to to push instead)",
            ));
        }
    };
    let record = submit(services, new, &list).await?;
    Ok(pb::ReplyResponse {
        delivery: Some(to_proto(&record)),
    })
}

/// The delivery an idempotency key already stands for on this channel.
/// Send and Reply answer with it before choosing a route or claiming a
/// token again: the route of the first call is the one that counts.
async fn known_delivery(
    services: &Services,
    channel_id: &str,
    key: &str,
) -> Result<Option<DeliveryRecord>, Status> {
    if key.is_empty() {
        return Ok(None);
    }
    let Some(record) = services
        .store
        .delivery_by_idempotency_key(channel_id, key)
        .await
        .map_err(store_status)?
    else {
        return Ok(None);
    };
    let record = services.outbox.wait(record, WAIT_FOR_LINE).await;
    outcome(record).map(Some)
}

pub async fn validate_messages(
    services: &Services,
    request: pb::ValidateMessagesRequest,
) -> Result<pb::ValidateMessagesResponse, Status> {
    let pb::ValidateMessagesRequest {
        channel_id,
        route,
        messages: list,
    } = request;
    let mut violations = Violations::new();
    let route = match pb::Route::try_from(route) {
        Ok(pb::Route::Reply) => Some("reply"),
        Ok(pb::Route::Push) => Some("push"),
        Ok(pb::Route::Multicast) => Some("multicast"),
        Ok(pb::Route::Narrowcast) => Some("narrowcast"),
        Ok(pb::Route::Broadcast) => Some("broadcast"),
        Ok(pb::Route::Unspecified) | Err(_) => {
            violations.add(
                "route",
                "must be ROUTE_REPLY, ROUTE_PUSH, ROUTE_MULTICAST, ROUTE_NARROWCAST or ROUTE_BROADCAST",
            );
            None
        }
    };
    let converted = messages(&mut violations, services, &channel_id, &list).await?;
    violations.into_result()?;
    let channel_id = existing_channel(services, &channel_id).await?;
    let record = services.channels.get(&channel_id).await?;
    services
        .tokens
        .line(&record)
        .validate_messages(route.unwrap_or_default(), Value::Array(converted))
        .await?;
    Ok(pb::ValidateMessagesResponse {})
}

pub async fn send(
    services: &Services,
    request: pb::SendRequest,
) -> Result<pb::SendResponse, Status> {
    let pb::SendRequest {
        channel_id,
        conversation: chat,
        messages: list,
        notification_disabled,
        allow_push,
        idempotency_key: key,
    } = request;
    let mut violations = Violations::new();
    let to_user = is_user(chat.as_ref());
    let chat = conversation(&mut violations, "conversation", chat.as_ref());
    let converted = messages(&mut violations, services, &channel_id, &list).await?;
    if to_user {
        // A reply or a push, both in the user's 1:1 chat.
        refuse_mentions(
            &mut violations,
            &list,
            "this send goes to a user (conversation.user_id)",
        );
    }
    let key = idempotency_key(&mut violations, &key);
    violations.into_result()?;
    let channel_id = existing_channel(services, &channel_id).await?;
    let chat = chat.unwrap_or_default();
    let allow_push = allow_push.unwrap_or(true);

    if let Some(record) = known_delivery(services, &channel_id, &key).await? {
        return Ok(pb::SendResponse {
            route: route(record.kind) as i32,
            route_reason: "the idempotency key names an earlier send: its delivery is returned"
                .into(),
            delivery: Some(to_proto(&record)),
        });
    }
    let mut chosen = None;
    let now = services.clock.now_ms();
    let conversation_id = crate::outbox::conversation_id(&chat);
    let recent = services
        .store
        .recent_reply_tokens(&channel_id, conversation_id);
    for (token, age) in fresh_tokens(recent, now) {
        if services
            .store
            .claim_reply_token(&channel_id, &token.token, now)
            .await
            .map_err(store_status)?
        {
            chosen = Some((token, age));
            break;
        }
    }
    let (new, reason) = match chosen {
        Some((token, age)) => {
            let webhook_event_id = webhook_event_id(services, token.sequence).await;
            (
                NewDelivery {
                    channel_id,
                    kind: SendKind::Reply,
                    body: reply_body(&token.token, converted, notification_disabled),
                    conversation: Some(chat.clone()),
                    idempotency_key: key,
                    reply_webhook_event_id: webhook_event_id,
                    push_fallback: allow_push.then(|| chat.clone()),
                    typed_messages: String::new(),
                },
                format!(
                    "replied with the unused reply token of event {} received {:.1} s ago: replies are free",
                    token.sequence,
                    age as f64 / 1000.0
                ),
            )
        }
        None if allow_push => (
            push_delivery(
                channel_id,
                chat.clone(),
                converted,
                notification_disabled,
                None,
                key,
            ),
            format!(
                "no unused reply token younger than {} s for this chat: pushed (counts against the monthly quota)",
                FRESH_REPLY_TOKEN.as_secs()
            ),
        ),
        None => {
            return Err(Status::failed_precondition(format!(
                "conversation: no unused reply token younger than {} s for this chat, and allow_push is false; nothing was sent",
                FRESH_REPLY_TOKEN.as_secs()
            )));
        }
    };
    let record = submit(services, new, &list).await?;
    let route = route(record.kind);
    let reason = if route == pb::Route::Push && reason.starts_with("replied") {
        "the reply token was rejected by LINE: pushed instead, as allow_push permits".to_owned()
    } else {
        reason
    };
    Ok(pb::SendResponse {
        delivery: Some(to_proto(&record)),
        route: route as i32,
        route_reason: reason,
    })
}

/// The tokens Send may try, freshest first (it has the most time left),
/// with their age in ms; tokens older than `FRESH_REPLY_TOKEN` are left
/// out, since LINE would likely refuse them by the time the reply arrives.
fn fresh_tokens(recent: Vec<ReplyToken>, now_ms: i64) -> impl Iterator<Item = (ReplyToken, i64)> {
    recent
        .into_iter()
        .rev()
        .map(move |token| {
            let age = now_ms.saturating_sub(token.receive_time_ms);
            (token, age)
        })
        .take_while(|(_, age)| *age <= FRESH_REPLY_TOKEN.as_millis() as i64)
}

async fn webhook_event_id(services: &Services, sequence: u64) -> String {
    let Ok(records) = services
        .store
        .read_events(sequence.saturating_sub(1), 1)
        .await
    else {
        return String::new();
    };
    records
        .first()
        .filter(|record| record.sequence == sequence)
        .and_then(|record| pb::Event::decode(record.payload.clone()).ok())
        .map(|event| event.webhook_event_id)
        .unwrap_or_default()
}

pub async fn get_delivery(
    services: &Services,
    request: pb::GetDeliveryRequest,
) -> Result<pb::GetDeliveryResponse, Status> {
    let pb::GetDeliveryRequest { delivery_id } = request;
    if delivery_id.is_empty() || delivery_id.len() > MAX_ID_LEN {
        return Err(invalid_field("delivery_id", "must be a delivery id (dl_…)"));
    }
    let record = services
        .outbox
        .get(&delivery_id)
        .await
        .map_err(store_status)?
        .ok_or_else(|| Status::not_found(format!("delivery {delivery_id} not found")))?;
    Ok(pb::GetDeliveryResponse {
        delivery: Some(to_proto(&record)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(sequence: u64, receive_time_ms: i64) -> ReplyToken {
        ReplyToken {
            sequence,
            token: format!("t{sequence}"),
            receive_time_ms,
        }
    }

    #[test]
    fn send_tries_fresh_tokens_newest_first_and_never_expired_ones() {
        let now = 1_000_000;
        let recent = vec![
            token(1, now - 120_000), // two minutes: expired
            token(2, now - 51_000),  // past the 50 s margin
            token(3, now - 30_000),
            token(4, now - 1_000),
        ];
        let tried: Vec<_> = fresh_tokens(recent, now)
            .map(|(t, age)| (t.sequence, age))
            .collect();
        assert_eq!(tried, [(4, 1_000), (3, 30_000)]);
        let only_expired = vec![token(1, now - 60_000)];
        assert_eq!(fresh_tokens(only_expired, now).count(), 0);
    }
}
