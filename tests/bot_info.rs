//! ChannelAdmin's LINE-backed reads: GetBotInfo, GetQuota (the fees page)
//! and GetTokenStatus, against the scripted stand-in for LINE.

mod support;

use line_adapter::proto::v1 as pb;
use support::{TOKEN, create_channel_with_token, fake_line::FakeLine, start_with_line};
use tonic::Code;

#[tokio::test]
async fn bot_info_quota_and_token_status() {
    let line = FakeLine::start().await;
    line.script(
        "/v2/bot/info",
        200,
        &[],
        r#"{"userId":"Ub9952f8c0123456789abcdef01234567","basicId":"@216ru...","displayName":"Example name","pictureUrl":"https://profile.line-scdn.net/abcdefghijklmn","chatMode":"chat","markAsReadMode":"manual"}"#,
    );
    line.script(
        "/v2/bot/message/quota",
        200,
        &[],
        r#"{"type":"limited","value":1000}"#,
    );
    line.script(
        "/v2/bot/message/quota/consumption",
        200,
        &[],
        r#"{"totalUsage":1250}"#,
    );
    line.script("/v2/bot/message/quota", 200, &[], r#"{"type":"none"}"#);
    line.script(
        "/v2/bot/message/quota/consumption",
        200,
        &[],
        r#"{"totalUsage":7}"#,
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

    let limited = admin
        .get_quota(pb::GetQuotaRequest {
            channel_id: channel.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(limited.limited);
    assert_eq!(
        (
            limited.monthly_limit,
            limited.total_usage,
            limited.remaining
        ),
        (1000, 1250, 0),
        "remaining never goes below zero"
    );
    let unlimited = admin
        .get_quota(pb::GetQuotaRequest {
            channel_id: channel.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!unlimited.limited);
    assert_eq!(unlimited.total_usage, 7);

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
    assert_eq!(
        paths,
        [
            "/v2/bot/info",
            "/v2/bot/message/quota",
            "/v2/bot/message/quota/consumption",
            "/v2/bot/message/quota",
            "/v2/bot/message/quota/consumption",
            "/v2/bot/info",
        ]
    );
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
        .get_quota(pb::GetQuotaRequest {
            channel_id: "ch_01jd0000000000000000000000".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}
