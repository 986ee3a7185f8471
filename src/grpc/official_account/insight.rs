//! Followers and LINE's statistics (insight): follower ids (verified and
//! premium accounts only), follower counts, demographics, messages sent
//! per day, interaction with one send (named by our delivery id or LINE's
//! request id), per-unit interaction, a rich menu's impressions and taps,
//! and the aggregation units in use.
//! LINE's "not ready yet" is an answer here (`InsightStatus`), not an
//! error.

use tonic::Status;

use super::{Violations, channel_id, line_for, only_channel, rich_menus::unrecorded};
use crate::{
    grpc::{
        admin::{sent_date, yesterday_in_utc9},
        lookup::path_id,
        status::{store_status, verified_accounts_only},
    },
    line::api,
    proto::v1::{self as pb, InsightStatus},
    services::Services,
    time::timestamp,
};

use super::chats::page_token;

/// LINE's `limit` of follower ids per page.
const MAX_FOLLOWER_PAGE: i32 = 1000;
/// LINE's `limit` of aggregation unit names per page.
const MAX_UNIT_PAGE: i32 = 100;
/// GetUnitStats spans at most this many days after its first.
const MAX_UNIT_SPAN_DAYS: i64 = 30;
/// GetRichMenuStats spans at most this many days after its first: LINE's
/// limits for a summary and for daily numbers.
const MAX_RICH_MENU_SPAN_DAYS: i64 = 396;
const MAX_RICH_MENU_DAILY_SPAN_DAYS: i64 = 99;
const DAY_SECS: i64 = 24 * 3600;

fn status(line: &str) -> InsightStatus {
    match line {
        "ready" => InsightStatus::Ready,
        "unready" => InsightStatus::Unready,
        "out_of_service" => InsightStatus::OutOfService,
        "unavailable_for_privacy" => InsightStatus::UnavailableForPrivacy,
        _ => InsightStatus::Unspecified,
    }
}

/// A `date` field: a yyyyMMdd calendar day, or empty for yesterday in
/// UTC+9 (the latest day LINE may have counted).
fn day(violations: &mut Violations, services: &Services, value: &str) -> Option<String> {
    violations
        .check("date", sent_date(value))
        .map(|date| date.unwrap_or_else(|| yesterday_in_utc9(services.lookups.now_ms())))
}

/// A required yyyyMMdd day, with its start as Unix seconds.
fn required_day(violations: &mut Violations, field: &str, value: &str) -> Option<(String, i64)> {
    if value.is_empty() {
        violations.add(field, "is required: a date as yyyyMMdd (UTC+9)");
        return None;
    }
    let date = violations.check(field, sent_date(value))??;
    // Eight digits of a calendar day (checked above).
    let iso = format!("{}-{}-{}T00:00:00Z", &date[..4], &date[4..6], &date[6..]);
    let seconds = iso.parse::<prost_types::Timestamp>().ok()?.seconds;
    Some((date, seconds))
}

fn page_size(violations: &mut Violations, value: i32, max: i32) -> Option<i32> {
    if !(0..=max).contains(&value) {
        violations.add("page_size", format!("must be 0-{max}; got {value}"));
    }
    (value > 0).then_some(value)
}

pub async fn get_follower_ids(
    services: &Services,
    request: pb::GetFollowerIdsRequest,
) -> Result<pb::GetFollowerIdsResponse, Status> {
    let pb::GetFollowerIdsRequest {
        channel_id: id,
        page_size: size,
        page_token: token,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let size = page_size(&mut violations, size, MAX_FOLLOWER_PAGE);
    let token = page_token(&mut violations, &token);
    violations.into_result()?;
    let page = line_for(services, id)
        .await?
        .follower_ids(size, token.as_deref())
        .await
        .map_err(verified_accounts_only)?;
    Ok(pb::GetFollowerIdsResponse {
        user_ids: page.ids,
        next_page_token: page.next.unwrap_or_default(),
    })
}

pub async fn get_follower_stats(
    services: &Services,
    request: pb::GetFollowerStatsRequest,
) -> Result<pb::GetFollowerStatsResponse, Status> {
    let pb::GetFollowerStatsRequest {
        channel_id: id,
        date,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let date = day(&mut violations, services, &date);
    violations.into_result()?;
    let date = date.ok_or_else(unrecorded)?;
    let api::FollowerStats {
        status: line_status,
        followers,
        targeted_reaches,
        blocks,
    } = line_for(services, id).await?.follower_stats(&date).await?;
    Ok(pb::GetFollowerStatsResponse {
        status: status(&line_status) as i32,
        date,
        followers,
        targeted_reaches,
        blocks,
    })
}

fn shares(tiles: Vec<api::DemographicTile>) -> Vec<pb::DemographicShare> {
    tiles
        .into_iter()
        .map(
            |api::DemographicTile { value, percentage }| pb::DemographicShare { value, percentage },
        )
        .collect()
}

pub async fn get_friends_demographics(
    services: &Services,
    request: pb::GetFriendsDemographicsRequest,
) -> Result<pb::GetFriendsDemographicsResponse, Status> {
    let pb::GetFriendsDemographicsRequest { channel_id: id } = request;
    let api::Demographics {
        available,
        genders,
        ages,
        areas,
        app_types,
        subscription_periods,
    } = line_for(services, only_channel(&id)?)
        .await?
        .friends_demographics()
        .await?;
    Ok(pb::GetFriendsDemographicsResponse {
        available,
        genders: shares(genders),
        ages: shares(ages),
        areas: shares(areas),
        app_types: shares(app_types),
        subscription_periods: shares(subscription_periods),
    })
}

pub async fn get_message_delivery_stats(
    services: &Services,
    request: pb::GetMessageDeliveryStatsRequest,
) -> Result<pb::GetMessageDeliveryStatsResponse, Status> {
    let pb::GetMessageDeliveryStatsRequest {
        channel_id: id,
        date,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let date = day(&mut violations, services, &date);
    violations.into_result()?;
    let date = date.ok_or_else(unrecorded)?;
    let api::DeliveryStats {
        status: line_status,
        broadcast,
        targeting,
        auto_response,
        welcome_response,
        chat,
        api_broadcast,
        api_push,
        api_multicast,
        api_narrowcast,
        api_reply,
    } = line_for(services, id).await?.delivery_stats(&date).await?;
    Ok(pb::GetMessageDeliveryStatsResponse {
        status: status(&line_status) as i32,
        date,
        broadcast,
        targeting,
        auto_response,
        welcome_response,
        chat,
        api_broadcast,
        api_push,
        api_multicast,
        api_narrowcast,
        api_reply,
    })
}

fn overview(overview: Option<&api::InteractionOverview>) -> pb::MessageInteractionOverview {
    let overview = overview.cloned().unwrap_or_default();
    pb::MessageInteractionOverview {
        unique_impression: overview.unique_impression,
        unique_click: overview.unique_click,
        unique_media_played: overview.unique_media_played,
        unique_media_played_100_percent: overview.unique_media_played_100_percent,
    }
}

fn seq(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn bubbles(messages: Vec<api::BubbleStats>) -> Vec<pb::MessageBubbleStats> {
    messages
        .into_iter()
        .map(|m| pb::MessageBubbleStats {
            seq: seq(m.seq),
            impression: m.impression,
            unique_impression: m.unique_impression,
            media_played: m.media_played,
            media_played_25_percent: m.media_played_25_percent,
            media_played_50_percent: m.media_played_50_percent,
            media_played_75_percent: m.media_played_75_percent,
            media_played_100_percent: m.media_played_100_percent,
            unique_media_played: m.unique_media_played,
            unique_media_played_25_percent: m.unique_media_played_25_percent,
            unique_media_played_50_percent: m.unique_media_played_50_percent,
            unique_media_played_75_percent: m.unique_media_played_75_percent,
            unique_media_played_100_percent: m.unique_media_played_100_percent,
        })
        .collect()
}

fn clicks(clicks: Vec<api::ClickStats>) -> Vec<pb::MessageClickStats> {
    clicks
        .into_iter()
        .map(
            |api::ClickStats {
                 seq: n,
                 url,
                 click,
                 unique_click,
                 unique_click_of_request,
             }| pb::MessageClickStats {
                seq: seq(n),
                url,
                click,
                unique_click,
                unique_click_of_request,
            },
        )
        .collect()
}

/// LINE's request id of one of the channel's deliveries: the accepted
/// request's on a 409 replay, else the send's own.
async fn request_id_of(
    services: &Services,
    channel: &str,
    delivery_id: &str,
) -> Result<String, Status> {
    let not_found =
        || Status::not_found(format!("delivery {delivery_id} not found in this channel"));
    let record = services
        .outbox
        .get(delivery_id)
        .await
        .map_err(store_status)?
        .ok_or_else(not_found)?;
    if record.channel_id != channel {
        return Err(not_found());
    }
    let id = if record.accepted_request_id.is_empty() {
        record.line_request_id
    } else {
        record.accepted_request_id
    };
    if id.is_empty() {
        return Err(Status::failed_precondition(format!(
            "delivery {delivery_id} has no LINE request id: LINE has not accepted it (see GetDelivery)"
        )));
    }
    Ok(id)
}

pub async fn get_message_event_stats(
    services: &Services,
    request: pb::GetMessageEventStatsRequest,
) -> Result<pb::GetMessageEventStatsResponse, Status> {
    use pb::get_message_event_stats_request::Send;
    let pb::GetMessageEventStatsRequest {
        channel_id: id,
        send,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let send = match &send {
        Some(Send::DeliveryId(delivery)) => {
            path_id(&mut violations, "delivery_id", delivery).map(Send::DeliveryId)
        }
        Some(Send::LineRequestId(request)) => {
            path_id(&mut violations, "line_request_id", request).map(Send::LineRequestId)
        }
        None => {
            violations.add("send", "must name a delivery_id or line_request_id");
            None
        }
    };
    violations.into_result()?;
    let (id, send) = (id.ok_or_else(unrecorded)?, send.ok_or_else(unrecorded)?);
    let line = line_for(services, Some(id.clone())).await?;
    let request_id = match send {
        Send::DeliveryId(delivery) => request_id_of(services, &id, &delivery).await?,
        Send::LineRequestId(request) => request,
    };
    let api::InteractionStats {
        overview: stats,
        messages,
        clicks: opened,
    } = line.message_event_stats(&request_id).await?;
    let delivered = stats.as_ref().and_then(|o| o.delivered);
    Ok(pb::GetMessageEventStatsResponse {
        // LINE leaves `delivered` null until every message went out.
        status: if delivered.is_some() {
            InsightStatus::Ready
        } else {
            InsightStatus::Unready
        } as i32,
        line_request_id: request_id,
        delivery_time: stats
            .as_ref()
            .and_then(|o| o.timestamp)
            .map(|seconds| timestamp(seconds.saturating_mul(1000))),
        delivered,
        overview: Some(overview(stats.as_ref())),
        messages: bubbles(messages),
        clicks: clicks(opened),
    })
}

/// LINE's custom aggregation unit names: `[a-zA-Z0-9_]{1,30}`.
fn unit(violations: &mut Violations, value: &str) -> Option<String> {
    let valid = (1..=30).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        violations.add(
            "custom_aggregation_unit",
            "must be 1-30 characters of a-z, A-Z, 0-9 and `_`",
        );
        return None;
    }
    Some(value.to_owned())
}

pub async fn get_unit_stats(
    services: &Services,
    request: pb::GetUnitStatsRequest,
) -> Result<pb::GetUnitStatsResponse, Status> {
    let pb::GetUnitStatsRequest {
        channel_id: id,
        custom_aggregation_unit,
        from_date,
        to_date,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let name = unit(&mut violations, &custom_aggregation_unit);
    let from = required_day(&mut violations, "from_date", &from_date);
    let to = required_day(&mut violations, "to_date", &to_date);
    span(&mut violations, &from, &to, MAX_UNIT_SPAN_DAYS);
    violations.into_result()?;
    let (name, (from, _), (to, _)) = (
        name.ok_or_else(unrecorded)?,
        from.ok_or_else(unrecorded)?,
        to.ok_or_else(unrecorded)?,
    );
    let api::InteractionStats {
        overview: stats,
        messages,
        clicks: opened,
    } = line_for(services, id)
        .await?
        .unit_stats(&name, &from, &to)
        .await?;
    Ok(pb::GetUnitStatsResponse {
        overview: Some(overview(stats.as_ref())),
        messages: bubbles(messages),
        clicks: clicks(opened),
    })
}

/// Records a `to_date` before `from_date` or more than `days` after it.
fn span(
    violations: &mut Violations,
    from: &Option<(String, i64)>,
    to: &Option<(String, i64)>,
    days: i64,
) {
    if let (Some((_, start)), Some((_, end))) = (from, to)
        && !(0..=days * DAY_SECS).contains(&(end - start))
    {
        violations.add(
            "to_date",
            format!("must be from from_date to {days} days after it"),
        );
    }
}

fn rich_menu_metrics(metrics: api::RichMenuMetrics) -> Vec<pb::RichMenuMetrics> {
    metrics
        .into_vec()
        .into_iter()
        .map(
            |api::RichMenuMetric {
                 date,
                 count,
                 unique_users,
             }| pb::RichMenuMetrics {
                date,
                count,
                unique_users,
            },
        )
        .collect()
}

pub async fn get_rich_menu_stats(
    services: &Services,
    request: pb::GetRichMenuStatsRequest,
) -> Result<pb::GetRichMenuStatsResponse, Status> {
    let pb::GetRichMenuStatsRequest {
        channel_id: id,
        rich_menu_id,
        from_date,
        to_date,
        daily,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let menu = path_id(&mut violations, "rich_menu_id", &rich_menu_id);
    let from = required_day(&mut violations, "from_date", &from_date);
    let to = required_day(&mut violations, "to_date", &to_date);
    let days = if daily {
        MAX_RICH_MENU_DAILY_SPAN_DAYS
    } else {
        MAX_RICH_MENU_SPAN_DAYS
    };
    span(&mut violations, &from, &to, days);
    violations.into_result()?;
    let (menu, (from, _), (to, _)) = (
        menu.ok_or_else(unrecorded)?,
        from.ok_or_else(unrecorded)?,
        to.ok_or_else(unrecorded)?,
    );
    let api::RichMenuInsight {
        rich_menu_id,
        metrics_from,
        metrics_to,
        impression,
        clicks: taps,
    } = line_for(services, id)
        .await?
        .rich_menu_insight(&menu, &from, &to, daily)
        .await?;
    let int = |value: i64| i32::try_from(value).unwrap_or(i32::MAX);
    Ok(pb::GetRichMenuStatsResponse {
        rich_menu_id,
        // Below LINE's privacy threshold only the id comes back.
        available: impression.is_some(),
        metrics_from: metrics_from.unwrap_or_default(),
        metrics_to: metrics_to.unwrap_or_default(),
        impressions: impression
            .map(|part| rich_menu_metrics(part.metrics))
            .unwrap_or_default(),
        clicks: taps
            .into_iter()
            .map(
                |api::RichMenuInsightPart { bounds, metrics }| pb::RichMenuAreaStats {
                    bounds: Some(pb::RichMenuBounds {
                        x: int(bounds.x),
                        y: int(bounds.y),
                        width: int(bounds.width),
                        height: int(bounds.height),
                    }),
                    metrics: rich_menu_metrics(metrics),
                },
            )
            .collect(),
    })
}

pub async fn list_aggregation_units(
    services: &Services,
    request: pb::ListAggregationUnitsRequest,
) -> Result<pb::ListAggregationUnitsResponse, Status> {
    let pb::ListAggregationUnitsRequest {
        channel_id: id,
        page_size: size,
        page_token: token,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let size = page_size(&mut violations, size, MAX_UNIT_PAGE);
    let token = page_token(&mut violations, &token);
    violations.into_result()?;
    let line = line_for(services, id).await?;
    let (page, used) = tokio::try_join!(
        async {
            line.aggregation_units(size, token.as_deref())
                .await
                .map_err(Status::from)
        },
        async { line.aggregation_unit_usage().await.map_err(Status::from) },
    )?;
    Ok(pb::ListAggregationUnitsResponse {
        custom_aggregation_units: page.custom_aggregation_units,
        next_page_token: page.next.unwrap_or_default(),
        units_used_this_month: used,
    })
}
