//! Contract check of OfficialAccount's audiences: every request the
//! service sends to LINE's audience endpoints, the JSON uploads and the
//! text file upload alike, through the real service, against the Prism
//! mock server running LINE's own OpenAPI description
//! (`manage-audience.yml`) with request validation. Prism answers a request
//! that breaks the description with 4xx, which fails the call and this
//! test; `.ci/run` also fails on any violation Prism logs.
//!
//! Needs Prism: `.ci/run` starts it and sets `LINE_ADAPTER_PRISM_AUDIENCE_URL`
//! (`npx @stoplight/prism-cli mock -p 4013 ../shared/line-openapi/manage-audience.yml`).
//! Without that variable the test says so and checks nothing else.

mod support;

use line_adapter::proto::v1 as pb;
use support::{TestApp, create_shop, test_settings};

#[tokio::test]
async fn every_audience_request_we_send_passes_lines_openapi_description() {
    let Ok(prism) = std::env::var("LINE_ADAPTER_PRISM_AUDIENCE_URL") else {
        eprintln!(
            "LINE_ADAPTER_PRISM_AUDIENCE_URL is not set: the contract check needs Prism (.ci/run starts it)"
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
    let few = vec![
        "U4af4980629abcdef0123456789abcdef".to_owned(),
        "U0123456789abcdef0123456789abcdef".to_owned(),
    ];
    // Past LINE's 10,000 ids per JSON upload: its text file upload.
    let many: Vec<String> = (0..10_001).map(|i| format!("U{i:032x}")).collect();

    for (ids, job) in [(few.clone(), "march list"), (many.clone(), "")] {
        let created = account
            .create_audience(pb::CreateAudienceRequest {
                channel_id: channel.clone(),
                description: "audienceGroupName_01".into(),
                user_ids: ids,
                ifa_audience: false,
                upload_description: job.into(),
            })
            .await
            .expect("createAudienceGroup, createAudienceForUploadingUserIds")
            .into_inner()
            .audience
            .unwrap();
        assert_eq!(created.audience_group_id, 1234567890123, "LINE's example");
    }
    account
        .create_audience(pb::CreateAudienceRequest {
            channel_id: channel.clone(),
            description: "an empty audience of IFAs".into(),
            ifa_audience: true,
            ..Default::default()
        })
        .await
        .expect("createAudienceGroup without ids");
    for (ids, job) in [(few, ""), (many, "april list")] {
        account
            .add_to_audience(pb::AddToAudienceRequest {
                channel_id: channel.clone(),
                audience_group_id: 1234567890123,
                user_ids: ids,
                upload_description: job.into(),
            })
            .await
            .expect("addAudienceToAudienceGroup, addUserIdsToAudience");
    }
    for request in [
        pb::ListAudiencesRequest {
            channel_id: channel.clone(),
            ..Default::default()
        },
        pb::ListAudiencesRequest {
            channel_id: channel.clone(),
            page_size: 40,
            page_token: "2".into(),
            description: "audienceGroupName".into(),
            status: pb::AudienceStatus::Ready as i32,
        },
    ] {
        let page = account
            .list_audiences(request)
            .await
            .expect("getAudienceGroups")
            .into_inner();
        assert!(page.total_count >= 0);
    }
    let read = account
        .get_audience(pb::GetAudienceRequest {
            channel_id: channel.clone(),
            audience_group_id: 1234567890123,
        })
        .await
        .expect("getAudienceData")
        .into_inner();
    assert_eq!(read.audience.unwrap().audience_group_id, 1234567890123);
    account
        .delete_audience(pb::DeleteAudienceRequest {
            channel_id: channel.clone(),
            audience_group_id: 1234567890123,
        })
        .await
        .expect("deleteAudienceGroup");
}
