//! Inbound: a verified webhook body becomes durable log records.
//!
//! The body's signature has been checked by the caller. Parsable bodies
//! become one record per event (deduplicated by `webhookEventId`); a body
//! that cannot be parsed is kept whole as one dead-letter record, because
//! LINE will not send it again once it got its 200.

use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;
use prost::Message as _;
use sha2::{Digest as _, Sha256};

use crate::{
    line::wire::events::{self, ParsedBody},
    media::{Job, Media, WithoutContent},
    profiles::Profiles,
    proto::v1 as pb,
    store::{AppendOutcome, EventRecord, NewEvent, Store, StoreError},
    time::{millis, timestamp},
};

/// What one webhook request led to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ingested {
    /// Sequences of newly stored events, in body order.
    pub stored: Vec<u64>,
    /// Events already stored by an earlier delivery.
    pub duplicates: usize,
    /// The sequence of the dead letter, when the body could not be parsed.
    pub dead_letter: Option<u64>,
    /// Stored events per LINE type, for metrics and logs.
    pub types: HashMap<String, usize>,
}

/// Turns verified webhook bodies into log records.
#[derive(Clone)]
pub struct Inbound {
    store: Arc<dyn Store>,
    media: Media,
    profiles: Profiles,
}

impl Inbound {
    pub fn new(store: Arc<dyn Store>, media: Media, profiles: Profiles) -> Self {
        Self {
            store,
            media,
            profiles,
        }
    }

    /// Stores what `body` carries for `channel_id`; returns once it is
    /// durable.
    pub async fn ingest(
        &self,
        channel_id: &str,
        body: Bytes,
        content_type: Option<&str>,
        receive_time_ms: i64,
    ) -> Result<Ingested, StoreError> {
        match events::parse_body(&body) {
            Ok(parsed) => self.store_events(channel_id, parsed, receive_time_ms).await,
            Err(why) => {
                tracing::warn!(
                    channel = %channel_id,
                    bytes = body.len(),
                    error = %why,
                    "signed webhook body cannot be parsed; kept as a dead letter"
                );
                // LINE redelivers the same bytes when it got no 2xx: keyed by
                // the body's digest, a dead letter is kept once too.
                let digest = format!("dead-letter:{}", hex::encode(Sha256::digest(&body)));
                let record = dead_letter(channel_id, body, &why.0, content_type, receive_time_ms);
                let outcome = self
                    .store
                    .append(vec![NewEvent {
                        record,
                        webhook_event_id: Some(digest),
                        occurred_ms: None,
                    }])
                    .await?;
                Ok(match outcome.first() {
                    Some(AppendOutcome::Stored { sequence }) => Ingested {
                        dead_letter: Some(*sequence),
                        ..Ingested::default()
                    },
                    _ => Ingested {
                        duplicates: 1,
                        ..Ingested::default()
                    },
                })
            }
        }
    }

    async fn store_events(
        &self,
        channel_id: &str,
        parsed: ParsedBody,
        receive_time_ms: i64,
    ) -> Result<Ingested, StoreError> {
        if parsed.events.is_empty() {
            // LINE's "Verify" request, or a body with nothing in it.
            return Ok(Ingested::default());
        }
        let receive_time = timestamp(receive_time_ms);
        let destination = parsed.destination;
        // The webhook request's span is current here.
        let traceparent = crate::telemetry::traceparent(&tracing::Span::current());
        let mut type_names = Vec::with_capacity(parsed.events.len());
        let mut media_jobs = Vec::with_capacity(parsed.events.len());
        // Who wrote, for the profile lookups (only kept when they are on).
        let lookups = self.profiles.enabled();
        let mut senders = Vec::with_capacity(if lookups { parsed.events.len() } else { 0 });
        let batch: Vec<NewEvent> = parsed
            .events
            .into_iter()
            .map(|parsed| {
                let mut event = parsed.event;
                event.channel_id = channel_id.to_owned();
                event.destination.clone_from(&destination);
                event.receive_time = Some(receive_time);
                event.traceparent.clone_from(&traceparent);
                // A standby event's token belongs to the module holding chat
                // control; Send must never use it.
                let replyable = event.mode() != pb::EventMode::Standby;
                let reply_token = if replyable {
                    event.reply_token.clone()
                } else {
                    String::new()
                };
                let webhook_event_id = Some(event.webhook_event_id.clone());
                let occurred_ms = event.timestamp.as_ref().map(millis);
                type_names.push(event.type_name.clone());
                media_jobs.push(media_job(channel_id, &event));
                if lookups {
                    senders.push((event.r#type(), event.source.clone()));
                }
                NewEvent {
                    record: EventRecord {
                        sequence: 0,
                        channel_id: channel_id.to_owned(),
                        type_name: event.type_name.clone(),
                        conversation_id: parsed.conversation_id,
                        receive_time_ms,
                        dead_letter: false,
                        payload: Bytes::from(event.encode_to_vec()),
                        reply_token,
                    },
                    webhook_event_id,
                    occurred_ms,
                }
            })
            .collect();
        let outcomes = self.store.append(batch).await?;
        let mut ingested = Ingested::default();
        let mut senders = senders.into_iter();
        for ((outcome, type_name), job) in outcomes.into_iter().zip(type_names).zip(media_jobs) {
            let sender = senders.next();
            match outcome {
                AppendOutcome::Stored { sequence } => {
                    ingested.stored.push(sequence);
                    if let Some((event_type, source)) = sender {
                        self.profiles
                            .saw(channel_id, event_type, source.as_ref(), sequence);
                    }
                    *ingested.types.entry(type_name).or_default() += 1;
                    // Only once the event is durable, and only once.
                    match job {
                        Some(MediaWork::Fetch(job)) => self.media.enqueue(job),
                        Some(MediaWork::Without {
                            message_id,
                            content,
                        }) => self
                            .media
                            .note_without_content(channel_id, &message_id, content),
                        None => {}
                    }
                }
                AppendOutcome::Duplicate { .. } => ingested.duplicates += 1,
            }
        }
        Ok(ingested)
    }
}

/// What a message event means for media.
enum MediaWork {
    /// LINE-hosted image, video, audio and file messages: fetch it.
    Fetch(Job),
    /// Nothing to fetch from LINE (remembered for GetMessageContent).
    Without {
        message_id: String,
        content: WithoutContent,
    },
}

fn media_job(channel_id: &str, event: &pb::Event) -> Option<MediaWork> {
    use pb::message_content::Content;
    let Some(pb::event::Payload::Message(message)) = &event.payload else {
        return None;
    };
    let content = message.message.as_ref()?;
    let without = |content| {
        Some(MediaWork::Without {
            message_id: message.message.as_ref()?.id.clone(),
            content,
        })
    };
    match content.content_status() {
        pb::ContentStatus::Pending => {}
        pb::ContentStatus::External => return without(WithoutContent::External),
        _ => return without(WithoutContent::NoMedia),
    }
    let (preview, file_name) = match &content.content {
        Some(Content::Image(_)) | Some(Content::Video(_)) => (true, String::new()),
        Some(Content::Audio(_)) => (false, String::new()),
        Some(Content::File(file)) => (false, file.file_name.clone()),
        _ => return without(WithoutContent::NoMedia),
    };
    Some(MediaWork::Fetch(Job {
        channel_id: channel_id.to_owned(),
        message_id: content.id.clone(),
        preview,
        file_name,
    }))
}

fn dead_letter(
    channel_id: &str,
    body: Bytes,
    error: &str,
    content_type: Option<&str>,
    receive_time_ms: i64,
) -> EventRecord {
    let event = pb::Event {
        channel_id: channel_id.to_owned(),
        r#type: pb::EventType::DeadLetter as i32,
        timestamp: Some(timestamp(receive_time_ms)),
        receive_time: Some(timestamp(receive_time_ms)),
        payload: Some(pb::event::Payload::DeadLetter(pb::DeadLetter {
            body: body.to_vec(),
            error: error.to_owned(),
            content_type: content_type.unwrap_or_default().to_owned(),
        })),
        ..pb::Event::default()
    };
    EventRecord {
        sequence: 0,
        channel_id: channel_id.to_owned(),
        type_name: String::new(),
        conversation_id: String::new(),
        receive_time_ms,
        dead_letter: true,
        payload: Bytes::from(event.encode_to_vec()),
        reply_token: String::new(),
    }
}
