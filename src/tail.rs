//! `line-adapter tail`: a small client of `Messaging.Subscribe` that prints
//! inbound events as JSON lines, optionally as a durable consumer that
//! acknowledges what it printed. What an operator reaches for before grpcurl.

use std::io::Write;

use crate::{
    connect,
    line::wire::events::{event_type_of, type_name_of},
    proto::v1::{self as pb, messaging_client::MessagingClient, subscribe_request::Start},
};
use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use serde_json::value::RawValue;

/// What to follow and how.
#[derive(Debug, Clone)]
pub struct TailOptions {
    /// gRPC address: `host:port` (plaintext) or `http(s)://host:port`.
    pub addr: String,
    /// `earliest`, `latest` (when `None`) or a sequence number to start
    /// after. Refused with `consumer`, which starts after its last ack.
    pub from: Option<String>,
    pub channels: Vec<String>,
    /// LINE type names (`message`, `memberJoined`, …), `unknown` or
    /// `deadLetter`.
    pub types: Vec<String>,
    pub conversations: Vec<String>,
    /// Follow as this durable consumer (starts after its acknowledged
    /// position, a new one at the earliest event).
    pub consumer: Option<String>,
    /// Acknowledge each printed event (needs `consumer`).
    pub ack: bool,
    /// Stop after this many events.
    pub max: Option<u64>,
    /// Sent as `authorization: Bearer <key>`.
    pub api_key: Option<String>,
}

/// What an operator command (tail, deliveries) can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
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
        // line-adapter's own records, by their short name or as printed.
        "outbound" | crate::outbound::TYPE_NAME => Ok(pb::EventType::Outbound),
        "profile" | crate::profiles::TYPE_NAME => Ok(pb::EventType::Profile),
        _ => match event_type_of(name) {
            pb::EventType::Unknown => Err(TailError::Usage(format!(
                "--type {name}: not an event type (e.g. message, follow, memberJoined, unknown, deadLetter, outbound, profile)"
            ))),
            known => Ok(known),
        },
    }
}

fn request(options: &TailOptions) -> Result<pb::SubscribeRequest, TailError> {
    let start = match (&options.consumer, options.from.as_deref()) {
        (Some(_), Some(from)) => {
            return Err(TailError::Usage(format!(
                "--from {from} cannot be combined with --consumer: a consumer starts after its last ack (a new one at the earliest event); to start elsewhere, ack that sequence first or tail without --consumer"
            )));
        }
        (Some(consumer), None) => Start::Consumer(consumer.clone()),
        (None, Some("earliest")) => Start::Position(pb::StartPosition::Earliest as i32),
        (None, None | Some("latest")) => Start::Position(pb::StartPosition::Latest as i32),
        (None, Some(sequence)) => Start::AfterSequence(sequence.parse().map_err(|_| {
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

/// One printed line: the event's own JSON is embedded verbatim.
#[derive(serde::Serialize)]
struct Line<'a> {
    sequence: u64,
    channel_id: &'a str,
    #[serde(rename = "type")]
    type_name: &'a str,
    conversation: &'a str,
    webhook_event_id: &'a str,
    /// `null` for dead letters. Raw rather than a `Value`: an event may
    /// hold a number no f64 holds, which is still JSON.
    json: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dead_letter: Option<DeadLetterLine<'a>>,
}

#[derive(serde::Serialize)]
struct DeadLetterLine<'a> {
    error: &'a str,
    content_type: &'a str,
    body_base64: String,
}

/// One JSON line for an event.
pub fn line(event: &pb::Event) -> String {
    let conversation = event
        .source
        .as_ref()
        .and_then(|source| {
            [&source.group_id, &source.room_id, &source.user_id]
                .into_iter()
                .find(|id| !id.is_empty())
        })
        .map_or("", String::as_str);
    let type_name = if event.type_name.is_empty() {
        type_name_of(event.r#type())
    } else {
        &event.type_name
    };
    let line = Line {
        sequence: event.sequence,
        channel_id: &event.channel_id,
        type_name,
        conversation,
        webhook_event_id: &event.webhook_event_id,
        json: serde_json::from_str(&event.json).ok(),
        dead_letter: match &event.payload {
            Some(pb::event::Payload::DeadLetter(dead)) => Some(DeadLetterLine {
                error: &dead.error,
                content_type: &dead.content_type,
                body_base64: BASE64.encode(&dead.body),
            }),
            _ => None,
        },
    };
    serde_json::to_string(&line).expect("serializing strings and raw JSON cannot fail")
}

/// Follows the stream, printing to `out`, until `max` events, the server
/// ends the stream, or an error.
pub async fn run(options: TailOptions, out: &mut impl Write) -> Result<(), TailError> {
    let subscribe = request(&options)?;
    let mut client = MessagingClient::new(connect::channel(&options.addr).await?);
    let api_key = options.api_key.as_deref();
    let mut stream = client
        .subscribe(connect::authorized(subscribe, api_key)?)
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
            client.ack(connect::authorized(ack, api_key)?).await?;
            acked = done;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(consumer: Option<&str>, from: Option<&str>) -> TailOptions {
        TailOptions {
            addr: "127.0.0.1:50051".into(),
            from: from.map(str::to_owned),
            channels: Vec::new(),
            types: Vec::new(),
            conversations: Vec::new(),
            consumer: consumer.map(str::to_owned),
            ack: false,
            max: None,
            api_key: None,
        }
    }

    #[test]
    fn from_is_refused_with_a_consumer_and_addresses_need_no_scheme() {
        let refused = request(&options(Some("desk"), Some("earliest"))).unwrap_err();
        assert!(refused.to_string().contains("--consumer"), "{refused}");
        assert!(request(&options(Some("desk"), None)).is_ok());
        assert!(request(&options(None, Some("42"))).is_ok());
        assert_eq!(
            connect::endpoint_url("127.0.0.1:50051"),
            "http://127.0.0.1:50051"
        );
        assert_eq!(
            connect::endpoint_url("https://a.example:443"),
            "https://a.example:443"
        );
    }

    #[test]
    fn types_print_as_tail_takes_them() {
        for name in ["message", "follow", "memberJoined", "deadLetter", "unknown"] {
            assert_eq!(type_name_of(parse_type(name).unwrap()), name);
        }
    }

    #[test]
    fn an_events_json_is_printed_verbatim_even_beyond_f64() {
        let json = r#"{"type":"follow","webhookEventId":"01A","timestamp":1e530385949997}"#;
        let event = pb::Event {
            sequence: 7,
            channel_id: "ch".into(),
            type_name: "follow".into(),
            webhook_event_id: "01A".into(),
            json: json.into(),
            source: Some(pb::Source {
                user_id: "U1".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            line(&event),
            format!(
                r#"{{"sequence":7,"channel_id":"ch","type":"follow","conversation":"U1","webhook_event_id":"01A","json":{json}}}"#
            )
        );
    }

    #[test]
    fn a_dead_letter_has_null_json_and_its_body() {
        let event = pb::Event {
            sequence: 1,
            r#type: pb::EventType::DeadLetter as i32,
            payload: Some(pb::event::Payload::DeadLetter(pb::DeadLetter {
                body: b"{oops".to_vec(),
                error: "body is not valid JSON".into(),
                content_type: "application/json".into(),
            })),
            ..Default::default()
        };
        let printed: serde_json::Value = serde_json::from_str(&line(&event)).unwrap();
        assert_eq!(printed["json"], serde_json::Value::Null);
        assert_eq!(printed["type"], "deadLetter", "the spelling --type takes");
        assert_eq!(
            printed["dead_letter"]["body_base64"],
            BASE64.encode(b"{oops")
        );
        assert_eq!(printed["dead_letter"]["error"], "body is not valid JSON");
    }
}
