//! ChannelAdmin.GetQuota, the "fees" page: the monthly quota, its
//! consumption, and the messages sent on one day per route (reply, push,
//! multicast, broadcast). Six LINE calls made concurrently; the composed
//! answer is kept for [`QUOTA_TTL`] per channel and date in the lookup
//! cache, so a page refreshed in a loop does not spend LINE's rate limit.

use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use tonic::Status;

use tonic::{Request, Response};

use super::AdminService;
use crate::grpc::status::Violations;
use crate::{
    channels::validate,
    line::api::Route,
    lookup_cache::{Cached, LOOKUP_TTL, LookupCache},
    proto::v1 as pb,
    services::Services,
    store::ChannelRecord,
    time::timestamp,
};

const RPC: &str = "GetQuota";
/// How long a GetQuota answer is reused.
pub const QUOTA_TTL: Duration = Duration::from_secs(30);
// Entries live in the lookup cache, which drops them after LOOKUP_TTL;
// QUOTA_TTL is enforced on top, so it must not be the longer one.
const _: () = assert!(QUOTA_TTL.as_millis() <= LOOKUP_TTL.as_millis());
/// LINE dates sent-message counts in UTC+9.
const LINE_UTC_OFFSET_SECS: i64 = 9 * 3600;
const DAY_SECS: i64 = 24 * 3600;

async fn answer(
    services: &Services,
    request: pb::GetQuotaRequest,
) -> Result<pb::GetQuotaResponse, Status> {
    let pb::GetQuotaRequest {
        channel_id: id,
        date,
    } = request;
    let mut violations = Violations::new();
    let id = violations.check("channel_id", validate::channel_id(&id));
    let date = violations.check("date", sent_date(&date));
    violations.into_result()?;
    let (Some(id), Some(date)) = (id, date) else {
        // A rule refused without recording why: a bug here, not in the
        // request (admin.rs answers the same way).
        return Err(Status::internal("request validation failed unexpectedly"));
    };
    let record = services.channels.get(&id).await?;
    let cache = &services.lookups;
    let date = date.unwrap_or_else(|| yesterday_in_utc9(cache.now_ms()));
    let (scope, key) = cache_key(&record, &date);
    if let Some(answer) = cached(cache, &scope, &key) {
        return Ok(answer);
    }

    let fetch_time_ms = cache.now_ms();
    let answer = ask_line(services, &record, &date).await?;
    cache.insert(
        &scope,
        &key,
        Cached {
            body: Bytes::from(answer.encode_to_vec()),
            fetch_time_ms,
        },
    );
    Ok(answer)
}

async fn ask_line(
    services: &Services,
    record: &ChannelRecord,
    date: &str,
) -> Result<pb::GetQuotaResponse, Status> {
    let line = services.tokens.line(record);
    let line = &line;
    let sent = |route: Route| async move {
        let sent = line.sent_count(route, date).await?;
        Ok::<_, Status>(pb::SentMessageCount {
            status: sent.status,
            success: sent.success,
        })
    };
    let (quota, consumption, reply, push, multicast, broadcast) = tokio::try_join!(
        async { Ok::<_, Status>(line.quota().await?) },
        async { Ok::<_, Status>(line.quota_consumption().await?) },
        sent(Route::Reply),
        sent(Route::Push),
        sent(Route::Multicast),
        sent(Route::Broadcast),
    )?;
    let limited = quota.r#type == "limited";
    let labels = crate::metrics::ChannelLabels {
        channel: record.id.clone(),
    };
    if limited {
        services
            .metrics
            .quota_remaining
            .get_or_create(&labels)
            .set((quota.value - consumption.total_usage).max(0));
    } else {
        // No limit: no series, rather than a misleading number.
        services.metrics.quota_remaining.remove(&labels);
    }
    Ok(pb::GetQuotaResponse {
        limited,
        monthly_limit: if limited { quota.value } else { 0 },
        total_usage: consumption.total_usage,
        remaining: if limited {
            (quota.value - consumption.total_usage).max(0)
        } else {
            0
        },
        sent_date: date.to_owned(),
        reply_sent: Some(reply),
        push_sent: Some(push),
        multicast_sent: Some(multicast),
        broadcast_sent: Some(broadcast),
    })
}

/// Cache scope and key. The scope names our channel and its LINE channel
/// (a channel re-pointed at another LINE channel must not see old
/// answers); the key cannot collide with the LINE paths other lookups use.
fn cache_key(record: &ChannelRecord, date: &str) -> (String, String) {
    (
        format!("{}/{}", record.id, record.line_channel_id),
        format!("{RPC}?date={date}"),
    )
}

/// The stored answer if it is younger than [`QUOTA_TTL`].
fn cached(cache: &LookupCache, scope: &str, key: &str) -> Option<pb::GetQuotaResponse> {
    let hit = cache.get(scope, key)?;
    let age_ms = cache.now_ms() - hit.fetch_time_ms;
    if !(0..QUOTA_TTL.as_millis() as i64).contains(&age_ms) {
        return None;
    }
    pb::GetQuotaResponse::decode(hit.body).ok()
}

/// `Ok(None)` for empty (the default day), `Ok(Some(date))` for a
/// `yyyyMMdd` calendar date.
pub(crate) fn sent_date(value: &str) -> Result<Option<String>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() != 8 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "must be a date as yyyyMMdd (UTC+9), e.g. 20250131, or empty for yesterday; got {value:?}"
        ));
    }
    // Eight ASCII digits, so these slices fall on character boundaries.
    let iso = format!("{}-{}-{}", &value[..4], &value[4..6], &value[6..]);
    iso.parse::<prost_types::Timestamp>()
        .map_err(|_| format!("{value} is not a calendar date (yyyyMMdd)"))?;
    Ok(Some(value.to_owned()))
}

/// Yesterday's date in UTC+9 as `yyyyMMdd`: the latest day LINE may have
/// finished counting.
pub(crate) fn yesterday_in_utc9(now_ms: i64) -> String {
    let then = timestamp(now_ms + (LINE_UTC_OFFSET_SECS - DAY_SECS) * 1000);
    // RFC 3339 in UTC: `yyyy-MM-ddTHH:mm:ss...Z`.
    then.to_string()
        .get(..10)
        .map(|day| day.replace('-', ""))
        .unwrap_or_default()
}

pub(super) async fn get_quota(
    admin: &AdminService,
    request: Request<pb::GetQuotaRequest>,
) -> Result<Response<pb::GetQuotaResponse>, Status> {
    answer(admin.core.services()?, request.into_inner())
        .await
        .map(Response::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-03-01T00:00:00Z.
    const MARCH_1_2024_MS: i64 = 1_709_251_200_000;

    #[test]
    fn the_default_day_is_yesterday_in_utc9() {
        let hour = 3_600_000;
        // 2024-03-01 23:59:59.999 in UTC+9: yesterday is Feb 29 (leap year).
        assert_eq!(
            yesterday_in_utc9(MARCH_1_2024_MS + 15 * hour - 1),
            "20240229"
        );
        // Midnight in UTC+9 (15:00 UTC) starts March 2.
        assert_eq!(yesterday_in_utc9(MARCH_1_2024_MS + 15 * hour), "20240301");
        // 08:59 UTC on March 1 is 17:59 the same day in UTC+9.
        assert_eq!(
            yesterday_in_utc9(MARCH_1_2024_MS + 9 * hour - 1),
            "20240229"
        );
        // New year.
        assert_eq!(yesterday_in_utc9(1_704_034_800_000), "20231231");
    }

    #[test]
    fn dates_must_be_yyyymmdd_calendar_days() {
        assert_eq!(sent_date(""), Ok(None));
        assert_eq!(sent_date("20240229"), Ok(Some("20240229".into())));
        for bad in [
            "2024-02-29",
            "20230229",
            "20241301",
            "20240100",
            "2024031",
            "202403011",
            "２０２４０３０１",
            " 20240301",
        ] {
            assert!(sent_date(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn quota_answers_are_reused_for_30_seconds() {
        let now = crate::time::Clock::manual(MARCH_1_2024_MS);
        let cache = LookupCache::with(LOOKUP_TTL, 100, now.clone());
        let answer = pb::GetQuotaResponse {
            total_usage: 7,
            sent_date: "20240229".into(),
            ..Default::default()
        };
        cache.insert(
            "ch_a/1",
            "GetQuota?date=20240229",
            Cached {
                body: Bytes::from(answer.encode_to_vec()),
                fetch_time_ms: cache.now_ms(),
            },
        );
        assert_eq!(
            cached(&cache, "ch_a/1", "GetQuota?date=20240229"),
            Some(answer)
        );
        assert_eq!(cached(&cache, "ch_a/1", "GetQuota?date=20240228"), None);
        assert_eq!(cached(&cache, "ch_a/2", "GetQuota?date=20240229"), None);
        now.shift(29_999);
        assert!(cached(&cache, "ch_a/1", "GetQuota?date=20240229").is_some());
        now.shift(1);
        assert_eq!(
            cached(&cache, "ch_a/1", "GetQuota?date=20240229"),
            None,
            "30 s old is too old, although the lookup cache still holds it"
        );
    }
}
