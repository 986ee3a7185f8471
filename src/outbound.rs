//! The outbound records of the event log: what a send looked like when
//! line-adapter accepted it and when it ended, as `EVENT_TYPE_OUTBOUND`
//! events in the same sequence as the inbound ones, so that one Subscribe
//! stream carries a chat in both directions. The outbox decides when a
//! record is due (after the state it shows is durable); this module says
//! what a record holds, and how a delivery looks to gRPC callers.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use prost::Message as _;
use serde_json::json;

use crate::{
    proto::v1 as pb,
    store::{
        DeliveryRecord, DeliveryState, EventRecord, LoggedRecords, NarrowcastRecord, NewEvent,
        SendKind,
    },
    time::timestamp,
};

/// `Event.type_name` of outbound records: not a LINE event type (those are
/// camelCase words), so LINE can never send one that reads as ours.
pub const TYPE_NAME: &str = "line-adapter/outbound";

/// A send's typed messages as [`DeliveryRecord::typed_messages`] keeps them:
/// base64 of an `OutboundMessage` holding only `messages`.
pub fn encode_messages(messages: &[pb::Message]) -> String {
    let list = pb::OutboundMessage {
        messages: messages.to_vec(),
        ..Default::default()
    };
    STANDARD.encode(list.encode_to_vec())
}

fn decode_messages(encoded: &str) -> Vec<pb::Message> {
    STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| pb::OutboundMessage::decode(bytes.as_slice()).ok())
        .map(|list| list.messages)
        .unwrap_or_default()
}

/// Which of a send's two records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Queued,
    Final,
}

/// The records of `delivery` not yet on the log, in order: the queued one
/// unless logged, and the final one once the delivery is final. Each has
/// a deduplication key of its own, so appending it again (after a crash
/// between the append and the outbox noting it) stores nothing twice.
pub fn pending(delivery: &DeliveryRecord, now_ms: i64) -> Vec<NewEvent> {
    let mut due = Vec::new();
    if delivery.logged == LoggedRecords::None {
        due.push(Phase::Queued);
    }
    if delivery.state.is_final() && delivery.logged != LoggedRecords::Final {
        due.push(Phase::Final);
    }
    due.into_iter()
        .map(|phase| record(delivery, phase, now_ms))
        .collect()
}

/// What [`LoggedRecords`] becomes once [`pending`]'s records are appended.
pub fn logged_after_append(delivery: &DeliveryRecord) -> LoggedRecords {
    if delivery.state.is_final() {
        LoggedRecords::Final
    } else {
        LoggedRecords::Queued
    }
}

fn record(delivery: &DeliveryRecord, phase: Phase, now_ms: i64) -> NewEvent {
    let mut shown = delivery_to_proto(delivery);
    let at = match phase {
        Phase::Queued => {
            // As it was when accepted, even when written late (its first
            // append failed, or a crash came between).
            shown.state = pb::DeliveryState::Queued as i32;
            shown.attempts = 0;
            shown.next_attempt_time = None;
            shown.line_request_id.clear();
            shown.accepted_request_id.clear();
            shown.error = None;
            shown.sent_messages.clear();
            shown.update_time = shown.create_time;
            if delivery.fell_back_to_push {
                shown.route = pb::Route::Reply as i32;
                shown.retry_key.clear();
                shown.fell_back_to_push = false;
            }
            delivery.create_time_ms
        }
        Phase::Final => delivery.update_time_ms,
    };
    let recipients = recipient_count(delivery);
    let delivered = phase == Phase::Final && delivery.state == DeliveryState::Delivered;
    let quota_consumed = match delivery.kind {
        SendKind::Push | SendKind::Multicast if delivered => recipients,
        // LINE counts what it sent, once it is done.
        SendKind::Narrowcast if delivered => delivery
            .narrowcast
            .as_ref()
            .and_then(|progress| progress.success_count)
            .map_or(0, |sent| i32::try_from(sent).unwrap_or(i32::MAX)),
        _ => 0,
    };
    let outbound = pb::OutboundMessage {
        delivery: Some(shown),
        messages: decode_messages(&delivery.typed_messages),
        messages_json: delivery
            .body
            .get("messages")
            .map(|messages| messages.to_string())
            .unwrap_or_default(),
        recipient_count: recipients,
        quota_consumed,
    };
    let conversation = delivery.conversation.as_deref();
    let json = record_json(&outbound, delivery);
    let event = pb::Event {
        channel_id: delivery.channel_id.clone(),
        r#type: pb::EventType::Outbound as i32,
        type_name: TYPE_NAME.into(),
        timestamp: Some(timestamp(at)),
        receive_time: Some(timestamp(now_ms)),
        source: conversation.and_then(chat_source),
        json,
        payload: Some(pb::event::Payload::Outbound(outbound)),
        ..Default::default()
    };
    let phase_name = match phase {
        Phase::Queued => "queued",
        Phase::Final => "final",
    };
    let dedupe = format!("{TYPE_NAME}/{}/{phase_name}", delivery.id);
    own_record(&event, conversation, now_ms, Some(dedupe))
}

/// A record line-adapter writes itself (a send's, a profile's) for
/// `event`, in the chat `conversation` (`user:`, `group:` or `room:` + id)
/// if it has one; never with a reply token. `dedupe` as
/// [`NewEvent::webhook_event_id`].
pub fn own_record(
    event: &pb::Event,
    conversation: Option<&str>,
    now_ms: i64,
    dedupe: Option<String>,
) -> NewEvent {
    NewEvent {
        record: EventRecord {
            sequence: 0,
            channel_id: event.channel_id.clone(),
            type_name: event.type_name.clone(),
            conversation_id: conversation
                .map(crate::outbox::conversation_id)
                .unwrap_or_default()
                .to_owned(),
            receive_time_ms: now_ms,
            dead_letter: false,
            payload: event.encode_to_vec().into(),
            reply_token: String::new(),
        },
        webhook_event_id: dedupe,
        occurred_ms: None,
    }
}

/// The record as JSON for `Event.json` (what `line-adapter tail` prints):
/// LINE's spelling where LINE has a name for it, and the messages as they
/// went to LINE.
fn record_json(outbound: &pb::OutboundMessage, delivery: &DeliveryRecord) -> String {
    let shown = outbound.delivery.clone().unwrap_or_default();
    let error = shown.error.as_ref().map(|error| {
        json!({
            "httpStatus": error.http_status,
            "message": error.message,
            "details": error.details.iter().map(|d| json!({
                "message": d.message,
                "property": d.property,
            })).collect::<Vec<_>>(),
            "requestId": error.request_id,
        })
    });
    json!({
        "deliveryId": shown.id,
        "state": crate::outbox::state_label(state_of(shown.state())),
        "route": match shown.route() {
            pb::Route::Reply => "reply",
            pb::Route::Push => "push",
            pb::Route::Multicast => "multicast",
            pb::Route::Broadcast => "broadcast",
            pb::Route::Narrowcast => "narrowcast",
            pb::Route::Unspecified => "",
        },
        "conversation": delivery.conversation,
        "idempotencyKey": shown.idempotency_key,
        "attempts": shown.attempts,
        "lineRequestId": shown.line_request_id,
        "acceptedRequestId": shown.accepted_request_id,
        "error": error,
        "sentMessages": shown.sent_messages.iter().map(|m| json!({
            "id": m.id,
            "quoteToken": m.quote_token,
        })).collect::<Vec<_>>(),
        "fellBackToPush": shown.fell_back_to_push,
        "recipientCount": outbound.recipient_count,
        "quotaConsumed": outbound.quota_consumed,
        "messages": delivery.body.get("messages"),
    })
    .to_string()
}

fn state_of(state: pb::DeliveryState) -> DeliveryState {
    match state {
        pb::DeliveryState::Sending => DeliveryState::Sending,
        pb::DeliveryState::Delivered => DeliveryState::Delivered,
        pb::DeliveryState::Failed => DeliveryState::Failed,
        pb::DeliveryState::Unknown => DeliveryState::Unknown,
        pb::DeliveryState::Accepted => DeliveryState::Accepted,
        pb::DeliveryState::Queued | pb::DeliveryState::Unspecified => DeliveryState::Queued,
    }
}

/// Users a send was addressed to (see `OutboundMessage.recipient_count`).
fn recipient_count(delivery: &DeliveryRecord) -> i32 {
    match delivery.kind {
        SendKind::Reply | SendKind::Push => 1,
        SendKind::Multicast => delivery
            .body
            .get("to")
            .and_then(|to| to.as_array())
            .map_or(0, |to| to.len() as i32),
        // LINE picks the recipients: `Delivery.narrowcast` counts them.
        SendKind::Broadcast | SendKind::Narrowcast => 0,
    }
}

/// The `Source` of a chat stored as `user:`, `group:` or `room:` + id.
pub fn chat_source(conversation: &str) -> Option<pb::Source> {
    let (kind, id) = conversation.split_once(':')?;
    let mut source = pb::Source {
        type_name: kind.to_owned(),
        ..Default::default()
    };
    match kind {
        "user" => {
            source.set_type(pb::SourceType::User);
            source.user_id = id.to_owned();
        }
        "group" => {
            source.set_type(pb::SourceType::Group);
            source.group_id = id.to_owned();
        }
        "room" => {
            source.set_type(pb::SourceType::Room);
            source.room_id = id.to_owned();
        }
        _ => return None,
    }
    Some(source)
}

/// A delivery as GetDelivery, ListDeliveries and the log's records show it.
pub fn delivery_to_proto(record: &DeliveryRecord) -> pb::Delivery {
    use pb::conversation::Chat;
    let conversation = record.conversation.as_deref().and_then(|c| {
        let (kind, id) = c.split_once(':')?;
        let chat = match kind {
            "user" => Chat::UserId(id.to_owned()),
            "group" => Chat::GroupId(id.to_owned()),
            "room" => Chat::RoomId(id.to_owned()),
            _ => return None,
        };
        Some(pb::Conversation { chat: Some(chat) })
    });
    pb::Delivery {
        id: record.id.clone(),
        channel_id: record.channel_id.clone(),
        state: match record.state {
            DeliveryState::Queued => pb::DeliveryState::Queued,
            DeliveryState::Sending => pb::DeliveryState::Sending,
            DeliveryState::Delivered => pb::DeliveryState::Delivered,
            DeliveryState::Failed => pb::DeliveryState::Failed,
            DeliveryState::Unknown => pb::DeliveryState::Unknown,
            DeliveryState::Accepted => pb::DeliveryState::Accepted,
        } as i32,
        route: route(record.kind) as i32,
        conversation,
        reply_webhook_event_id: record.reply_webhook_event_id.clone(),
        retry_key: record.retry_key.clone(),
        attempts: record.attempts as i32,
        // While accepted, the next attempt is the next read of LINE's
        // progress, shown there.
        next_attempt_time: record
            .next_attempt_ms
            .filter(|_| record.state != DeliveryState::Accepted)
            .map(timestamp),
        line_request_id: record.line_request_id.clone(),
        accepted_request_id: record.accepted_request_id.clone(),
        error: record
            .error
            .as_ref()
            .map(|error| pb::LineError {
                http_status: i32::from(error.http_status),
                message: error.message.clone(),
                details: error
                    .details
                    .iter()
                    .map(|d| pb::LineErrorDetail {
                        message: d.message.clone(),
                        property: d.property.clone(),
                    })
                    .collect(),
                request_id: error.request_id.clone(),
                retry_after: error.retry_after_secs.map(|secs| prost_types::Duration {
                    seconds: secs as i64,
                    nanos: 0,
                }),
            })
            // No answer from LINE: the connection's (or the token's) reason,
            // with no HTTP status.
            .or_else(|| {
                record.failure.as_ref().map(|failure| pb::LineError {
                    message: failure.clone(),
                    ..pb::LineError::default()
                })
            }),
        sent_messages: record
            .sent_messages
            .iter()
            .map(|m| pb::SentMessage {
                id: m.id.clone(),
                quote_token: m.quote_token.clone(),
            })
            .collect(),
        create_time: Some(timestamp(record.create_time_ms)),
        update_time: Some(timestamp(record.update_time_ms)),
        idempotency_key: record.idempotency_key.clone(),
        fell_back_to_push: record.fell_back_to_push,
        narrowcast: record
            .narrowcast
            .as_ref()
            .map(|progress| narrowcast_to_proto(record, progress)),
    }
}

/// A narrowcast's progress as [`pb::NarrowcastProgress`] shows it.
fn narrowcast_to_proto(
    record: &DeliveryRecord,
    progress: &NarrowcastRecord,
) -> pb::NarrowcastProgress {
    let time = |iso: &Option<String>| {
        iso.as_deref()
            .and_then(|t| t.parse::<prost_types::Timestamp>().ok())
    };
    pb::NarrowcastProgress {
        phase: match progress.phase.as_str() {
            "waiting" => pb::NarrowcastPhase::Waiting,
            "sending" => pb::NarrowcastPhase::Sending,
            "succeeded" => pb::NarrowcastPhase::Succeeded,
            "failed" => pb::NarrowcastPhase::Failed,
            _ => pb::NarrowcastPhase::Unspecified,
        } as i32,
        request_id: progress.request_id.clone(),
        success_count: progress.success_count,
        failure_count: progress.failure_count,
        target_count: progress.target_count,
        error_code: progress
            .error_code
            .map_or(0, |code| i32::try_from(code).unwrap_or(i32::MAX)),
        failed_description: progress.failed_description.clone().unwrap_or_default(),
        accepted_time: time(&progress.accepted_time),
        completed_time: time(&progress.completed_time),
        check_time: progress.check_time_ms.map(timestamp),
        next_check_time: record
            .next_attempt_ms
            .filter(|_| record.state == DeliveryState::Accepted)
            .map(timestamp),
    }
}

/// A send kind as the proto's route.
pub fn route(kind: SendKind) -> pb::Route {
    match kind {
        SendKind::Reply => pb::Route::Reply,
        SendKind::Push => pb::Route::Push,
        SendKind::Multicast => pb::Route::Multicast,
        SendKind::Broadcast => pb::Route::Broadcast,
        SendKind::Narrowcast => pb::Route::Narrowcast,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(state: DeliveryState, logged: LoggedRecords) -> DeliveryRecord {
        DeliveryRecord {
            id: "dl_1".into(),
            channel_id: "ch_1".into(),
            kind: SendKind::Multicast,
            conversation: None,
            body: serde_json::json!({"to": ["U1", "U2"], "messages": [{"type": "text", "text": "hi"}]}),
            retry_key: "k".into(),
            state,
            attempts: 1,
            next_attempt_ms: None,
            line_request_id: "req".into(),
            accepted_request_id: String::new(),
            error: None,
            failure: None,
            sent_messages: Vec::new(),
            idempotency_key: String::new(),
            request_digest: String::new(),
            reply_webhook_event_id: String::new(),
            push_fallback: None,
            create_time_ms: 1,
            update_time_ms: 2,
            fell_back_to_push: false,
            typed_messages: encode_messages(&[]),
            logged,
            narrowcast: None,
        }
    }

    fn shown(event: &NewEvent) -> (pb::Delivery, i32, String) {
        let event = pb::Event::decode(event.record.payload.clone()).unwrap();
        match event.payload {
            Some(pb::event::Payload::Outbound(out)) => {
                (out.delivery.unwrap(), out.quota_consumed, event.type_name)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pending_records_follow_what_is_logged_and_the_state() {
        use DeliveryState::*;
        use LoggedRecords as L;
        let count = |state, logged| pending(&delivery(state, logged), 5).len();
        assert_eq!(count(Queued, L::None), 1);
        assert_eq!(count(Sending, L::Queued), 0);
        assert_eq!(count(Delivered, L::None), 2);
        assert_eq!(count(Delivered, L::Queued), 1);
        assert_eq!(count(Failed, L::Final), 0);

        let both = pending(&delivery(Delivered, L::None), 5);
        let (queued, queued_quota, name) = shown(&both[0]);
        assert_eq!(name, TYPE_NAME);
        assert_eq!(
            queued.state(),
            pb::DeliveryState::Queued,
            "as when accepted"
        );
        assert_eq!(queued.attempts, 0);
        assert!(queued.line_request_id.is_empty());
        assert_eq!(queued_quota, 0);
        let (done, done_quota, _) = shown(&both[1]);
        assert_eq!(done.state(), pb::DeliveryState::Delivered);
        assert_eq!(done_quota, 2, "one per multicast recipient");
        // Each record has its own key, the same on every append.
        let keys: Vec<_> = both.iter().map(|e| e.webhook_event_id.clone()).collect();
        assert_eq!(
            keys,
            [
                Some(format!("{TYPE_NAME}/dl_1/queued")),
                Some(format!("{TYPE_NAME}/dl_1/final"))
            ]
        );
        assert_eq!(logged_after_append(&delivery(Delivered, L::None)), L::Final);
        assert_eq!(logged_after_append(&delivery(Queued, L::None)), L::Queued);
    }
}
