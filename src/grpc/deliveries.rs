//! `Messaging.ListDeliveries`: an operator's view of the outbox, a
//! channel's deliveries newest first, filtered by state and chat.

use tonic::Status;

use super::{
    page_token::PageTokens,
    send::conversation,
    status::{Violations, store_status},
};
use crate::{
    channels::validate,
    outbound::delivery_to_proto as to_proto,
    proto::v1 as pb,
    services::Services,
    store::{DeliveryQuery, DeliveryState},
};

const DEFAULT_PAGE_SIZE: i32 = 100;
const MAX_PAGE_SIZE: i32 = 1000;
/// Pages start before the previous page's last (oldest) delivery.
const PAGE_TOKENS: PageTokens = PageTokens {
    prefix: "before:",
    rpc: "ListDeliveries",
    valid: |id| {
        id.starts_with("dl_")
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    },
};

fn state_from_proto(value: i32) -> Result<DeliveryState, String> {
    match pb::DeliveryState::try_from(value) {
        Ok(pb::DeliveryState::Queued) => Ok(DeliveryState::Queued),
        Ok(pb::DeliveryState::Sending) => Ok(DeliveryState::Sending),
        Ok(pb::DeliveryState::Delivered) => Ok(DeliveryState::Delivered),
        Ok(pb::DeliveryState::Failed) => Ok(DeliveryState::Failed),
        Ok(pb::DeliveryState::Unknown) => Ok(DeliveryState::Unknown),
        Ok(pb::DeliveryState::Accepted) => Ok(DeliveryState::Accepted),
        Ok(pb::DeliveryState::Unspecified) => {
            Err("DELIVERY_STATE_UNSPECIFIED is not a state".into())
        }
        Err(_) => Err(format!("{value} is not a DeliveryState value")),
    }
}

pub async fn list_deliveries(
    services: &Services,
    request: pb::ListDeliveriesRequest,
) -> Result<pb::ListDeliveriesResponse, Status> {
    let pb::ListDeliveriesRequest {
        channel_id,
        states,
        conversation: chat,
        page_size,
        page_token,
    } = request;
    let mut violations = Violations::new();
    let channel_id = violations.check("channel_id", validate::channel_id(&channel_id));
    let states: Vec<DeliveryState> = states
        .iter()
        .enumerate()
        .filter_map(|(i, value)| {
            violations.check(&format!("states[{i}]"), state_from_proto(*value))
        })
        .collect();
    let chat = chat
        .as_ref()
        .and_then(|chat| conversation(&mut violations, "conversation", Some(chat)));
    let page_size = match page_size {
        0 => DEFAULT_PAGE_SIZE,
        size if (1..=MAX_PAGE_SIZE).contains(&size) => size,
        size => {
            violations.add(
                "page_size",
                format!("must be 0-{MAX_PAGE_SIZE} (0 = {DEFAULT_PAGE_SIZE}); got {size}"),
            );
            DEFAULT_PAGE_SIZE
        }
    };
    let before_id = violations.check("page_token", PAGE_TOKENS.decode(&page_token));
    violations.into_result()?;
    let channel_id = channel_id.unwrap_or_default();
    // The channel must exist: an unknown one is NOT_FOUND, not an empty list.
    services.channels.get(&channel_id).await?;
    let limit = page_size as usize;
    let query = DeliveryQuery {
        channel_id,
        states,
        conversation: chat,
        before_id: before_id.flatten(),
        // One extra tells whether another page exists.
        limit: limit + 1,
    };
    let mut found = services
        .store
        .list_deliveries(&query)
        .await
        .map_err(store_status)?;
    let next_page_token = if found.len() > limit {
        found.truncate(limit);
        found
            .last()
            .map(|d| PAGE_TOKENS.encode(&d.id))
            .unwrap_or_default()
    } else {
        String::new()
    };
    // What this process is working on now is fresher than the stored copy.
    let mut deliveries = Vec::with_capacity(found.len());
    for stored in found {
        let current = services.outbox.live(&stored.id).unwrap_or(stored);
        deliveries.push(to_proto(&current));
    }
    Ok(pb::ListDeliveriesResponse {
        deliveries,
        next_page_token,
    })
}

#[cfg(test)]
mod tests {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

    use super::*;

    #[test]
    fn page_tokens_round_trip_and_refuse_strangers() {
        let id = "dl_01m8y2kfe0ama2v5zgcpsbgdx2";
        assert_eq!(
            PAGE_TOKENS.decode(&PAGE_TOKENS.encode(id)),
            Ok(Some(id.into()))
        );
        assert_eq!(PAGE_TOKENS.decode(""), Ok(None));
        for bad in [
            "x",
            &URL_SAFE_NO_PAD.encode("before:ch_1"),
            &URL_SAFE_NO_PAD.encode("after:dl_1"),
        ] {
            assert!(PAGE_TOKENS.decode(bad).is_err(), "{bad}");
        }
    }
}
