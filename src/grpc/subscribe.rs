//! `Messaging.Subscribe` and `Messaging.Ack`: request validation, start
//! positions and the conversion of fanout items into the contract's
//! messages. The streaming itself lives in `crate::fanout`.

use std::{collections::HashSet, pin::Pin, sync::Arc};

use prost::Message as _;
use tokio_stream::{Stream, StreamExt as _, wrappers::ReceiverStream};
use tonic::Status;

use super::status::{Violations, store_status};
use crate::{
    channels::validate,
    fanout::{Filter, Item, StreamEnd},
    line::wire::events::event_type_of,
    media::{Media, MediaState},
    proto::v1 as pb,
    services::Services,
    store::{EventRecord, StoreError},
    time::timestamp,
};

pub type SubscribeStream =
    Pin<Box<dyn Stream<Item = Result<pb::SubscribeResponse, Status>> + Send + 'static>>;

const CONSUMER_MAX_LEN: usize = 64;
const CONVERSATION_ID_MAX_LEN: usize = 128;

/// Consumer names: 1–64 of `[A-Za-z0-9._-]`.
pub fn consumer_name(name: &str) -> Result<String, String> {
    if name.is_empty() || name.len() > CONSUMER_MAX_LEN {
        return Err(format!("must be 1-{CONSUMER_MAX_LEN} characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("may contain only letters, digits, `.`, `_` and `-`".into());
    }
    Ok(name.to_owned())
}

pub async fn subscribe(
    services: &Services,
    request: pb::SubscribeRequest,
) -> Result<SubscribeStream, Status> {
    let pb::SubscribeRequest {
        channel_ids,
        event_types,
        conversation_ids,
        start,
    } = request;
    let mut violations = Violations::new();
    for (i, id) in channel_ids.iter().enumerate() {
        violations.check(&format!("channel_ids[{i}]"), validate::channel_id(id));
    }
    let mut types = HashSet::new();
    for (i, value) in event_types.iter().enumerate() {
        match pb::EventType::try_from(*value) {
            Ok(pb::EventType::Unspecified) => violations.add(
                format!("event_types[{i}]"),
                "EVENT_TYPE_UNSPECIFIED is not a type",
            ),
            Ok(event_type) => {
                types.insert(event_type);
            }
            Err(_) => violations.add(
                format!("event_types[{i}]"),
                format!("{value} is not an EventType value"),
            ),
        }
    }
    for (i, id) in conversation_ids.iter().enumerate() {
        if id.is_empty() || id.len() > CONVERSATION_ID_MAX_LEN {
            violations.add(
                format!("conversation_ids[{i}]"),
                format!("must be 1-{CONVERSATION_ID_MAX_LEN} characters"),
            );
        }
    }
    if let Some(pb::subscribe_request::Start::Consumer(name)) = &start {
        violations.check("consumer", consumer_name(name));
    }
    if let Some(pb::subscribe_request::Start::Position(value)) = &start
        && pb::StartPosition::try_from(*value).is_err()
    {
        violations.add("position", format!("{value} is not a StartPosition value"));
    }
    violations.into_result()?;

    let after = start_after(services, start).await?;
    let filter = filter(
        channel_ids.into_iter().collect(),
        types,
        conversation_ids.into_iter().collect(),
    );
    let items = services.fanout.subscribe(after, filter);
    let media = services.media.clone();
    let stream = ReceiverStream::new(items).map(move |item| match item {
        Ok(Item::Record(record)) => to_event(&record, &media).map(|event| pb::SubscribeResponse {
            kind: Some(pb::subscribe_response::Kind::Event(event)),
        }),
        Ok(Item::Checkpoint(checkpoint)) => Ok(pb::SubscribeResponse {
            kind: Some(pb::subscribe_response::Kind::Checkpoint(
                pb::SubscribeCheckpoint {
                    sequence: checkpoint.sequence,
                    head_sequence: checkpoint.head,
                    caught_up: checkpoint.caught_up,
                    time: Some(timestamp(checkpoint.time_ms)),
                },
            )),
        }),
        Err(end) => Err(end_status(end)),
    });
    Ok(Box::pin(stream))
}

/// The sequence a stream starts after, checked against what is retained.
async fn start_after(
    services: &Services,
    start: Option<pb::subscribe_request::Start>,
) -> Result<u64, Status> {
    use pb::subscribe_request::Start;
    let bounds = services.store.bounds();
    let earliest = bounds.oldest.saturating_sub(1);
    let after = match start {
        None => bounds.head,
        Some(Start::Position(value)) => match pb::StartPosition::try_from(value) {
            Ok(pb::StartPosition::Earliest) => earliest,
            _ => bounds.head,
        },
        Some(Start::AfterSequence(after)) => {
            let head = if after > bounds.head {
                // Maybe appended through another replica a moment ago.
                services
                    .store
                    .bounds_reaching(after)
                    .await
                    .map_err(store_status)?
                    .head
            } else {
                bounds.head
            };
            if after > head {
                return Err(Status::out_of_range(format!(
                    "after_sequence {after} is beyond the head of the log ({head})"
                )));
            }
            after
        }
        Some(Start::Consumer(name)) => {
            match services.store.consumer(&name).await.map_err(store_status)? {
                Some(position) => position.acked,
                // Never acked: start at the earliest record, missing nothing.
                None => earliest,
            }
        }
    };
    if after < earliest {
        return Err(Status::out_of_range(format!(
            "records after {after} are no longer retained; the oldest available sequence is {}",
            bounds.oldest
        )));
    }
    Ok(after)
}

/// The event type of a stored record: one of line-adapter's own, else
/// LINE's type.
fn record_type(type_name: &str) -> pb::EventType {
    match type_name {
        crate::outbound::TYPE_NAME => pb::EventType::Outbound,
        crate::profiles::TYPE_NAME => pb::EventType::Profile,
        line => event_type_of(line),
    }
}

fn filter(
    channels: HashSet<String>,
    types: HashSet<pb::EventType>,
    conversations: HashSet<String>,
) -> Filter {
    let dead_letters = types.contains(&pb::EventType::DeadLetter);
    Arc::new(move |record: &EventRecord| {
        if !channels.is_empty() && !channels.contains(&record.channel_id) {
            return false;
        }
        if !conversations.is_empty() && !conversations.contains(&record.conversation_id) {
            return false;
        }
        if record.dead_letter {
            return dead_letters;
        }
        types.is_empty() || types.contains(&record_type(&record.type_name))
    })
}

fn to_event(record: &EventRecord, media: &Media) -> Result<pb::Event, Status> {
    let mut event = pb::Event::decode(record.payload.clone()).map_err(|e| {
        tracing::error!(sequence = record.sequence, error = %e, "a stored event cannot be decoded");
        Status::internal(format!("stored event {} is damaged", record.sequence))
    })?;
    event.sequence = record.sequence;
    // Media is fetched after the event was stored: say where it stands now.
    if let Some(pb::event::Payload::Message(message)) = &mut event.payload
        && let Some(content) = &mut message.message
        && content.content_status() == pb::ContentStatus::Pending
        && let Some(meta) = media.meta(&record.channel_id, &content.id)
    {
        content.set_content_status(match meta.state {
            MediaState::Pending => pb::ContentStatus::Pending,
            MediaState::Stored => pb::ContentStatus::Stored,
            MediaState::Gone => pb::ContentStatus::Gone,
            MediaState::Failed => pb::ContentStatus::Failed,
        });
    }
    Ok(event)
}

fn end_status(end: StreamEnd) -> Status {
    match end {
        StreamEnd::Pruned { .. } => Status::out_of_range(end.to_string()),
        StreamEnd::ShuttingDown { .. } => Status::unavailable(end.to_string()),
        StreamEnd::Store(err) => store_status(err),
    }
}

pub async fn ack(services: &Services, request: pb::AckRequest) -> Result<pb::AckResponse, Status> {
    let pb::AckRequest { consumer, sequence } = request;
    let consumer = consumer_name(&consumer)
        .map_err(|reason| super::status::invalid_field("consumer", reason))?;
    let (position, created) = services
        .store
        .ack(&consumer, sequence, services.clock.now_ms())
        .await
        .map_err(|err| match err {
            err @ (StoreError::AckBackwards { .. } | StoreError::AckBeyondHead { .. }) => {
                super::status::invalid_field("sequence", err.to_string())
            }
            other => store_status(other),
        })?;
    Ok(pb::AckResponse {
        consumer,
        acked_sequence: position.acked,
        created,
        update_time: Some(timestamp(position.update_time_ms)),
    })
}
