//! ChannelAdmin's LINE-backed reads: GetBotInfo, GetQuota (the fees page,
//! with sent-message counts per route) and GetTokenStatus, against the
//! scripted stand-in for LINE.

mod support;

use line_adapter::proto::v1 as pb;
use support::{TOKEN, create_channel_with_token, fake_line::FakeLine, start_with_line};
use tonic::Code;
use tonic_types::StatusExt as _;

const QUOTA: &str = "/v2/bot/message/quota";
const CONSUMPTION: &str = "/v2/bot/message/quota/consumption";
const ROUTES: [&str; 4] = ["reply", "push", "multicast", "broadcast"];

fn delivery(route: &str) -> String {
    format!("/v2/bot/message/delivery/{route}")
}

/// Scripts one GetQuota's worth of answers: quota `quota_json`, usage
/// `usage`, and for each of reply, push, multicast, broadcast its JSON.
fn script_quota(line: &FakeLine, quota_json: &str, usage: i64, sent: [&str; 4]) {
    line.script(QUOTA, 200, &[], quota_json);
    line.script(
        CONSUMPTION,
        200,
        &[],
        &format!(r#"{{"totalUsage":{usage}}}"#),
    );
    for (route, body) in ROUTES.iter().zip(sent) {
        line.script(&delivery(route), 200, &[], body);
    }
}

fn quota_request(channel_id: &str, date: &str) -> pb::GetQuotaRequest {
    pb::GetQuotaRequest {
        channel_id: channel_id.into(),
        date: date.into(),
    }
}

fn count(status: &str, success: i64) -> Option<pb::SentMessageCount> {
    Some(pb::SentMessageCount {
        status: status.into(),
        success,
    })
}

/// Paths (with query) of `requests`, sorted: GetQuota's calls are
/// concurrent, so their order is not fixed.
fn sorted_paths(requests: &[support::fake_line::Recorded]) -> Vec<String> {
    let mut paths: Vec<_> = requests.iter().map(|r| r.path.clone()).collect();
    paths.sort();
    paths
}

/// GetQuota's six paths for `date`, sorted.
fn quota_paths(date: &str) -> Vec<String> {
    let mut paths: Vec<_> = ROUTES
        .iter()
        .map(|route| format!("{}?date={date}", delivery(route)))
        .chain([QUOTA.to_owned(), CONSUMPTION.to_owned()])
        .collect();
    paths.sort();
    paths
}

/// Yesterday in UTC+9 as yyyyMMdd, from the system clock (civil-from-days
/// after Howard Hinnant, independent of the service's own formatting).
fn yesterday_in_utc9() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let days = (now + 9 * 3600).div_euclid(86_400) - 1;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}")
}

#[tokio::test]
async fn bot_info_and_token_status() {
    let line = FakeLine::start().await;
    line.script(
        "/v2/bot/info",
        200,
        &[],
        r#"{"userId":"Ub9952f8c0123456789abcdef01234567","basicId":"@216ru...","displayName":"Example name","pictureUrl":"https://profile.line-scdn.net/abcdefghijklmn","chatMode":"chat","markAsReadMode":"manual"}"#,
    );
    line.script(
        "/v2/bot/info",
        401,
        &[],
        r#"{"message":"Authentication failed"}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut admin = app.admin().await;

    let info = admin
        .get_bot_info(pb::GetBotInfoRequest {
            channel_id: channel.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.user_id, "Ub9952f8c0123456789abcdef01234567");
    assert_eq!(info.display_name, "Example name");
    assert_eq!(info.chat_mode, "chat");
    assert_eq!(info.mark_as_read_mode, "manual");
    assert!(info.premium_id.is_empty());

    let status = admin
        .get_bot_info(pb::GetBotInfoRequest {
            channel_id: channel.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("Authentication failed"),
        "{}",
        status.message()
    );

    let requests = line.requests();
    let paths: Vec<_> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/v2/bot/info", "/v2/bot/info"]);
    assert!(
        requests
            .iter()
            .all(|r| r.method == "GET" && r.headers["authorization"] == format!("Bearer {TOKEN}"))
    );

    let token = admin
        .get_token_status(pb::GetTokenStatusRequest {
            channel_id: channel.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(token.mode(), pb::TokenMode::LongLived);
    assert!(token.has_token);
    assert_eq!(token.token_fingerprint, channel.access_token_fingerprint);
    assert!(
        !format!("{token:?}").contains(TOKEN),
        "never the token itself"
    );

    let missing = admin
        .get_quota(quota_request("ch_01jd0000000000000000000000", ""))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn quota_reports_sent_messages_per_route_and_reuses_answers_for_a_while() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut admin = app.admin().await;
    script_quota(
        &line,
        r#"{"type":"limited","value":1000}"#,
        1250,
        [
            r#"{"status":"ready","success":10000}"#,
            r#"{"status":"ready","success":3}"#,
            r#"{"status":"unready"}"#,
            r#"{"status":"unavailable_for_privacy"}"#,
        ],
    );

    let leap_day = admin
        .get_quota(quota_request(&channel.id, "20240229"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        leap_day,
        pb::GetQuotaResponse {
            limited: true,
            monthly_limit: 1000,
            total_usage: 1250,
            // Never below zero.
            remaining: 0,
            sent_date: "20240229".into(),
            reply_sent: count("ready", 10000),
            push_sent: count("ready", 3),
            multicast_sent: count("unready", 0),
            broadcast_sent: count("unavailable_for_privacy", 0),
        }
    );
    let requests = line.requests();
    assert_eq!(sorted_paths(&requests), quota_paths("20240229"));
    assert!(
        requests
            .iter()
            .all(|r| r.method == "GET" && r.headers["authorization"] == format!("Bearer {TOKEN}"))
    );

    // Asked again at once: the same answer, and LINE is not asked.
    let again = admin
        .get_quota(quota_request(&channel.id, "20240229"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, leap_day);
    assert_eq!(line.requests().len(), 6, "served from the cache");

    // Another day is another answer.
    script_quota(
        &line,
        r#"{"type":"none"}"#,
        7,
        [
            r#"{"status":"out_of_service"}"#,
            r#"{"status":"ready","success":21}"#,
            r#"{"status":"ready","success":22}"#,
            r#"{"status":"ready","success":23}"#,
        ],
    );
    let old_day = admin
        .get_quota(quota_request(&channel.id, "20180101"))
        .await
        .unwrap()
        .into_inner();
    assert!(!old_day.limited);
    assert_eq!(
        (
            old_day.monthly_limit,
            old_day.total_usage,
            old_day.remaining
        ),
        (0, 7, 0)
    );
    assert_eq!(old_day.sent_date, "20180101");
    assert_eq!(old_day.reply_sent, count("out_of_service", 0));
    assert_eq!(old_day.push_sent, count("ready", 21));
    assert_eq!(old_day.multicast_sent, count("ready", 22));
    assert_eq!(old_day.broadcast_sent, count("ready", 23));
    assert_eq!(sorted_paths(&line.requests()[6..]), quota_paths("20180101"));
}

#[tokio::test]
async fn quota_counts_default_to_yesterday_in_utc9() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let sent = r#"{"status":"ready","success":1}"#;
    script_quota(&line, r#"{"type":"none"}"#, 0, [sent; 4]);

    let before = yesterday_in_utc9();
    let answer = app
        .admin()
        .await
        .get_quota(quota_request(&channel.id, ""))
        .await
        .unwrap()
        .into_inner();
    let after = yesterday_in_utc9();

    // Midnight in UTC+9 may pass during the call.
    assert!(
        answer.sent_date == before || answer.sent_date == after,
        "{} is neither {before} nor {after}",
        answer.sent_date
    );
    assert_eq!(
        sorted_paths(&line.requests()),
        quota_paths(&answer.sent_date)
    );
}

#[tokio::test]
async fn quota_date_must_be_a_yyyymmdd_day() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut admin = app.admin().await;

    for bad in ["2024-02-29", "20230229", "20241301", "2024022", "today"] {
        let status = admin
            .get_quota(quota_request(&channel.id, bad))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}");
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .expect("a BadRequest")
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["date"], "{bad}");
    }
    let both = admin
        .get_quota(quota_request("nope", "2024"))
        .await
        .unwrap_err();
    assert!(
        both.message().contains("channel_id") && both.message().contains("date"),
        "{}",
        both.message()
    );
    assert!(line.requests().is_empty(), "nothing reached LINE");
}

#[tokio::test]
async fn quota_errors_from_line_are_not_reused() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut admin = app.admin().await;
    let sent = r#"{"status":"ready","success":5}"#;
    // The first call fails on the quota; its other calls run concurrently
    // and may be cut short, so every other path gets the same answer twice
    // and whichever is left over serves the second call identically.
    line.script(
        QUOTA,
        403,
        &[],
        r#"{"message":"Access to this API is not available for your account"}"#,
    );
    script_quota(&line, r#"{"type":"limited","value":500}"#, 100, [sent; 4]);
    line.script(CONSUMPTION, 200, &[], r#"{"totalUsage":100}"#);
    for route in ROUTES {
        line.script(&delivery(route), 200, &[], sent);
    }

    let refused = admin
        .get_quota(quota_request(&channel.id, "20240229"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused
            .message()
            .contains("Access to this API is not available"),
        "{}",
        refused.message()
    );
    let answer = admin
        .get_quota(quota_request(&channel.id, "20240229"))
        .await
        .expect("LINE is asked again")
        .into_inner();
    assert_eq!((answer.limited, answer.remaining), (true, 400));
    assert_eq!(answer.reply_sent, count("ready", 5));
    let quota_calls = line.requests().iter().filter(|r| r.path == QUOTA).count();
    assert_eq!(quota_calls, 2);
}
