//! `line-adapter tail`: a small client of `Messaging.Subscribe` that prints
//! inbound events as JSON lines, optionally as a durable consumer that
//! acknowledges what it printed. What an operator reaches for before grpcurl.

use std::io::Write;

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use serde_json::json;
use tonic::{Request, metadata::MetadataValue, transport::Channel};

use crate::{
    proto::v1::{self as pb, messaging_client::MessagingClient, subscribe_request::Start},
    webhook::events::event_type_of,
};

/// What to follow and how.
#[derive(Debug, Clone)]
pub struct TailOptions {
    /// gRPC address, e.g. `http://127.0.0.1:50051`.
    pub addr: String,
    /// `earliest`, `latest` or a sequence number to start after.
    pub from: String,
    pub channels: Vec<String>,
    /// LINE type names (`message`, `memberJoined`, …), `unknown` or
    /// `deadLetter`.
    pub types: Vec<String>,
    pub conversations: Vec<String>,
    /// Follow as this durable consumer (starts after its acknowledged
    /// position; `from` is then ignored).
    pub consumer: Option<String>,
    /// Acknowledge each printed event (needs `consumer`).
    pub ack: bool,
    /// Stop after this many events.
    pub max: Option<u64>,
    /// Sent as `authorization: Bearer <key>`.
    pub api_key: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: tonic::transport::Error,
    },
    #[error("{}: {}", .0.code(), .0.message())]
    Rpc(#[from] tonic::Status),
    #[error("writing output failed: {0}")]
    Output(#[from] std::io::Error),
}

/// Maps a type name of the command line to the contract's event type.
pub fn parse_type(name: &str) -> Result<pb::EventType, TailError> {
    match name {
        "deadLetter" | "dead_letter" => Ok(pb::EventType::DeadLetter),
        "unknown" => Ok(pb::EventType::Unknown),
        _ => match event_type_of(name) {
            pb::EventType::Unknown => Err(TailError::Usage(format!(
                "--type {name}: not a LINE event type (e.g. message, follow, memberJoined, unknown, deadLetter)"
            ))),
            known => Ok(known),
        },
    }
}

fn request(options: &TailOptions) -> Result<pb::SubscribeRequest, TailError> {
    let start = match (&options.consumer, options.from.as_str()) {
        (Some(consumer), _) => Start::Consumer(consumer.clone()),
        (None, "earliest") => Start::Position(pb::StartPosition::Earliest as i32),
        (None, "latest") => Start::Position(pb::StartPosition::Latest as i32),
        (None, sequence) => Start::AfterSequence(sequence.parse().map_err(|_| {
            TailError::Usage(format!(
                "--from {sequence}: expected earliest, latest or a sequence number"
            ))
        })?),
    };
    if options.ack && options.consumer.is_none() {
        return Err(TailError::Usage("--ack needs --consumer NAME".into()));
    }
    Ok(pb::SubscribeRequest {
        channel_ids: options.channels.clone(),
        event_types: options
            .types
            .iter()
            .map(|name| parse_type(name).map(|t| t as i32))
            .collect::<Result<_, _>>()?,
        conversation_ids: options.conversations.clone(),
        start: Some(start),
    })
}

fn authorized<T>(message: T, api_key: Option<&str>) -> Result<Request<T>, TailError> {
    let mut request = Request::new(message);
    if let Some(key) = api_key {
        let value: MetadataValue<_> = format!("Bearer {key}")
            .parse()
            .map_err(|_| TailError::Usage("the API key is not a valid header value".into()))?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

/// One JSON line for an event.
pub fn line(event: &pb::Event) -> serde_json::Value {
    let conversation = event.source.as_ref().map(|source| {
        [&source.group_id, &source.room_id, &source.user_id]
            .into_iter()
            .find(|id| !id.is_empty())
            .cloned()
            .unwrap_or_default()
    });
    // Dead letters have no JSON (null). An event's JSON may hold a number no
    // f64 holds (valid JSON, but not a serde `Value`); it is then printed as
    // a string rather than dropped.
    let raw = if event.json.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&event.json)
            .unwrap_or_else(|_| serde_json::Value::String(event.json.clone()))
    };
    let mut line = json!({
        "sequence": event.sequence,
        "channel_id": event.channel_id,
        "type": if event.type_name.is_empty() {
            event.r#type().as_str_name().to_owned()
        } else {
            event.type_name.clone()
        },
        "conversation": conversation.unwrap_or_default(),
        "webhook_event_id": event.webhook_event_id,
        "json": raw,
    });
    if let Some(pb::event::Payload::DeadLetter(dead)) = &event.payload {
        line["dead_letter"] = json!({
            "error": dead.error,
            "content_type": dead.content_type,
            "body_base64": BASE64.encode(&dead.body),
        });
    }
    line
}

/// Follows the stream, printing to `out`, until `max` events, the server
/// ends the stream, or an error.
pub async fn run(options: TailOptions, out: &mut impl Write) -> Result<(), TailError> {
    let subscribe = request(&options)?;
    let channel = Channel::from_shared(options.addr.clone())
        .map_err(|_| TailError::Usage(format!("--addr {}: not a URL", options.addr)))?
        .connect()
        .await
        .map_err(|source| TailError::Connect {
            addr: options.addr.clone(),
            source,
        })?;
    let mut client = MessagingClient::new(channel);
    let api_key = options.api_key.as_deref();
    let mut stream = client
        .subscribe(authorized(subscribe, api_key)?)
        .await?
        .into_inner();
    let mut printed = 0u64;
    let mut acked = 0u64;
    while options.max.is_none_or(|max| printed < max) {
        let Some(message) = stream.message().await? else {
            break;
        };
        // A checkpoint covers records the filters skipped: acking it keeps
        // a filtered consumer from lagging behind them forever.
        let done = match message.kind {
            Some(pb::subscribe_response::Kind::Event(event)) => {
                writeln!(out, "{}", line(&event))?;
                out.flush()?;
                printed += 1;
                event.sequence
            }
            Some(pb::subscribe_response::Kind::Checkpoint(checkpoint)) => checkpoint.sequence,
            None => continue,
        };
        if let (true, Some(consumer)) = (options.ack, &options.consumer)
            && done > acked
        {
            let ack = pb::AckRequest {
                consumer: consumer.clone(),
                sequence: done,
            };
            client.ack(authorized(ack, api_key)?).await?;
            acked = done;
        }
    }
    Ok(())
}
