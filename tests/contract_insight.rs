//! Contract check of OfficialAccount's statistics: every request the
//! service sends to LINE's insight endpoints, through the real service,
//! against the Prism mock server running LINE's own OpenAPI description
//! (`insight.yml`). Prism answers a request that breaks the description
//! with 4xx, which fails the call and this test; `.ci/run` also fails on
//! any violation Prism logs.
//!
//! Needs Prism: `.ci/run` starts it and sets `LINE_ADAPTER_PRISM_INSIGHT_URL`
//! (`npx @stoplight/prism-cli mock -p 4012 ../shared/line-openapi/insight.yml`).
//! Without that variable the test says so and checks nothing else.

mod support;

use line_adapter::proto::v1 as pb;
use support::{TestApp, create_shop, test_settings};

#[tokio::test]
async fn every_insight_request_we_send_passes_lines_openapi_description() {
    let Ok(prism) = std::env::var("LINE_ADAPTER_PRISM_INSIGHT_URL") else {
        eprintln!(
            "LINE_ADAPTER_PRISM_INSIGHT_URL is not set: the contract check needs Prism (.ci/run starts it)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(test_settings(dir.path(), |layer| {
        layer.line_api_base = Some(prism.clone());
        layer.line_data_api_base = Some(prism.clone());
    }))
    .await;
    let channel = create_shop(&mut app.admin().await).await.id;
    let mut account = app.official_account().await;

    let followers = account
        .get_follower_stats(pb::GetFollowerStatsRequest {
            channel_id: channel.clone(),
            date: "20261130".into(),
        })
        .await
        .expect("getNumberOfFollowers")
        .into_inner();
    assert_eq!(followers.status(), pb::InsightStatus::Ready);
    assert_eq!(followers.followers, Some(7620), "LINE's example is read");
    account
        .get_follower_stats(pb::GetFollowerStatsRequest {
            channel_id: channel.clone(),
            date: String::new(),
        })
        .await
        .expect("getNumberOfFollowers for yesterday");
    let demographics = account
        .get_friends_demographics(pb::GetFriendsDemographicsRequest {
            channel_id: channel.clone(),
        })
        .await
        .expect("getFriendsDemographics")
        .into_inner();
    assert!(demographics.available);
    assert!(!demographics.subscription_periods.is_empty());
    let delivered = account
        .get_message_delivery_stats(pb::GetMessageDeliveryStatsRequest {
            channel_id: channel.clone(),
            date: "20261130".into(),
        })
        .await
        .expect("getNumberOfMessageDeliveries")
        .into_inner();
    assert_eq!(delivered.broadcast, Some(5385));
    let events = account
        .get_message_event_stats(pb::GetMessageEventStatsRequest {
            channel_id: channel.clone(),
            send: Some(pb::get_message_event_stats_request::Send::LineRequestId(
                "f70dd685-499a-4231-a441-f24b8d4fba21".into(),
            )),
        })
        .await
        .expect("getMessageEvent")
        .into_inner();
    assert_eq!(events.delivered, Some(320));
    assert_eq!(events.clicks.len(), 2);
    let unit = account
        .get_unit_stats(pb::GetUnitStatsRequest {
            channel_id: channel.clone(),
            custom_aggregation_unit: "promotion_a".into(),
            from_date: "20261101".into(),
            to_date: "20261130".into(),
        })
        .await
        .expect("getStatisticsPerUnit")
        .into_inner();
    assert_eq!(unit.overview.and_then(|o| o.unique_impression), Some(40));
    for daily in [false, true] {
        let menu = account
            .get_rich_menu_stats(pb::GetRichMenuStatsRequest {
                channel_id: channel.clone(),
                rich_menu_id: "richmenu-0123456789abcdef0123456789abcdef".into(),
                from_date: "20261113".into(),
                to_date: "20261115".into(),
                daily,
            })
            .await
            .expect("getRichMenuInsightSummary, getRichMenuInsightDaily")
            .into_inner();
        assert!(menu.available, "LINE's first example is read");
        assert_eq!(menu.clicks.len(), 2);
    }
}
