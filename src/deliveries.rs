//! `line-adapter deliveries`: Messaging.ListDeliveries as a table for
//! operators, what the outbox holds for a channel: what is stuck, failing
//! or unknown, with the last error.

use std::io::Write;

use crate::{
    connect,
    proto::v1::{self as pb, messaging_client::MessagingClient},
    tail::TailError,
};

/// What to list.
#[derive(Debug, Clone)]
pub struct DeliveriesOptions {
    pub addr: String,
    pub api_key: Option<String>,
    pub channel_id: String,
    /// `queued`, `sending`, `delivered`, `failed`, `unknown`.
    pub states: Vec<String>,
    /// A user, group or room id.
    pub conversation: Option<String>,
    /// Most rows printed.
    pub limit: usize,
}

fn parse_state(name: &str) -> Result<pb::DeliveryState, TailError> {
    match name.to_ascii_lowercase().as_str() {
        "queued" => Ok(pb::DeliveryState::Queued),
        "sending" => Ok(pb::DeliveryState::Sending),
        "delivered" => Ok(pb::DeliveryState::Delivered),
        "failed" => Ok(pb::DeliveryState::Failed),
        "unknown" => Ok(pb::DeliveryState::Unknown),
        "accepted" => Ok(pb::DeliveryState::Accepted),
        _ => Err(TailError::Usage(format!(
            "--state {name}: expected queued, sending, accepted, delivered, failed or unknown"
        ))),
    }
}

/// LINE ids start with U (user), C (group) or R (room).
fn conversation(id: &str) -> pb::Conversation {
    use pb::conversation::Chat;
    let chat = match id.chars().next() {
        Some('C') => Chat::GroupId(id.to_owned()),
        Some('R') => Chat::RoomId(id.to_owned()),
        _ => Chat::UserId(id.to_owned()),
    };
    pb::Conversation { chat: Some(chat) }
}

fn state_name(state: i32) -> &'static str {
    match pb::DeliveryState::try_from(state) {
        Ok(pb::DeliveryState::Queued) => "queued",
        Ok(pb::DeliveryState::Sending) => "sending",
        Ok(pb::DeliveryState::Delivered) => "delivered",
        Ok(pb::DeliveryState::Failed) => "failed",
        Ok(pb::DeliveryState::Unknown) => "unknown",
        Ok(pb::DeliveryState::Accepted) => "accepted",
        _ => "?",
    }
}

fn route_name(route: i32) -> &'static str {
    match pb::Route::try_from(route) {
        Ok(pb::Route::Reply) => "reply",
        Ok(pb::Route::Push) => "push",
        Ok(pb::Route::Multicast) => "multicast",
        Ok(pb::Route::Broadcast) => "broadcast",
        Ok(pb::Route::Narrowcast) => "narrowcast",
        _ => "?",
    }
}

fn chat_of(delivery: &pb::Delivery) -> &str {
    use pb::conversation::Chat;
    match delivery.conversation.as_ref().and_then(|c| c.chat.as_ref()) {
        Some(Chat::UserId(id) | Chat::GroupId(id) | Chat::RoomId(id)) => id,
        None => "-",
    }
}

/// One row: id, state, route, chat, attempts, last change, last error.
pub fn row(delivery: &pb::Delivery) -> String {
    let updated = delivery
        .update_time
        .as_ref()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.seconds).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into());
    let error = match &delivery.error {
        Some(error) if error.http_status > 0 => {
            format!("LINE {}: {}", error.http_status, error.message)
        }
        Some(error) => error.message.clone(),
        None => String::new(),
    };
    format!(
        "{:<30} {:<9} {:<9} {:<35} {:>8} {:<20} {}",
        delivery.id,
        state_name(delivery.state),
        route_name(delivery.route),
        chat_of(delivery),
        delivery.attempts,
        updated,
        error
    )
    .trim_end()
    .to_owned()
}

/// Prints the table to `out`, following pages up to `limit` rows.
pub async fn run(options: DeliveriesOptions, out: &mut impl Write) -> Result<(), TailError> {
    let states = options
        .states
        .iter()
        .map(|name| parse_state(name).map(|s| s as i32))
        .collect::<Result<Vec<_>, _>>()?;
    let mut client = MessagingClient::new(connect::channel(&options.addr).await?);
    writeln!(
        out,
        "{:<30} {:<9} {:<9} {:<35} {:>8} {:<20} LAST ERROR",
        "ID", "STATE", "ROUTE", "CHAT", "ATTEMPTS", "UPDATED"
    )?;
    let mut printed = 0;
    let mut page_token = String::new();
    loop {
        let request = pb::ListDeliveriesRequest {
            channel_id: options.channel_id.clone(),
            states: states.clone(),
            conversation: options.conversation.as_deref().map(conversation),
            page_size: (options.limit - printed).min(1000) as i32,
            page_token,
        };
        let page = client
            .list_deliveries(connect::authorized(request, options.api_key.as_deref())?)
            .await?
            .into_inner();
        for delivery in &page.deliveries {
            writeln!(out, "{}", row(delivery))?;
            printed += 1;
        }
        if page.next_page_token.is_empty() || printed >= options.limit {
            return Ok(());
        }
        page_token = page.next_page_token;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_shows_why_a_delivery_waits() {
        let delivery = pb::Delivery {
            id: "dl_01".into(),
            state: pb::DeliveryState::Queued as i32,
            route: pb::Route::Push as i32,
            conversation: Some(conversation("U1")),
            attempts: 3,
            error: Some(pb::LineError {
                http_status: 0,
                message: "LINE did not answer within 300 ms".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let row = row(&delivery);
        for part in ["dl_01", "queued", "push", "U1", "3", "did not answer"] {
            assert!(row.contains(part), "{part}: {row}");
        }
        assert!(parse_state("FAILED").is_ok());
        assert!(parse_state("lost").is_err());
    }
}
