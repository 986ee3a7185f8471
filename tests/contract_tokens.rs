//! Contract check of the token endpoints: every token request the service
//! makes (issue and revoke, in each mode), through the real service, against
//! the Prism mock server running LINE's `channel-access-token.yml`. Prism
//! answers a request that breaks the description with 4xx, which fails the
//! rotation and this test; `.ci/run` also fails on any violation it logs.
//!
//! Needs Prism: `.ci/run` starts it and sets `LINE_ADAPTER_PRISM_TOKEN_URL`
//! (`npx @stoplight/prism-cli mock -p 4011 ../shared/line-openapi/channel-access-token.yml`).
//! Without that variable the test says so and checks nothing else.

mod support;

use line_adapter::proto::v1 as pb;
use support::{SECRET, TestApp, test_settings};

#[tokio::test]
async fn token_requests_follow_lines_openapi_description() {
    let Ok(prism) = std::env::var("LINE_ADAPTER_PRISM_TOKEN_URL") else {
        eprintln!(
            "LINE_ADAPTER_PRISM_TOKEN_URL is not set: the token contract check needs Prism (.ci/run starts it)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(test_settings(dir.path(), |layer| {
        layer.line_api_base = Some(prism.clone());
        layer.line_data_api_base = Some(prism.clone());
    }))
    .await;
    let mut admin = app.admin().await;
    let modes = [
        pb::TokenMode::ShortLivedV2,
        pb::TokenMode::StatelessV3,
        pb::TokenMode::V21Jwt,
    ];
    for (n, mode) in modes.into_iter().enumerate() {
        let channel = admin
            .create_channel(pb::CreateChannelRequest {
                display_name: format!("{mode:?}"),
                line_channel_id: format!("165700000{n}"),
                channel_secret: SECRET.into(),
                channel_access_token: String::new(),
                token_mode: pb::TokenMode::ShortLivedV2 as i32,
            })
            .await
            .unwrap()
            .into_inner()
            .channel
            .unwrap();
        if mode == pb::TokenMode::V21Jwt {
            admin
                .generate_key_pair(pb::GenerateKeyPairRequest {
                    channel_id: channel.id.clone(),
                })
                .await
                .unwrap();
            admin
                .set_kid(pb::SetKidRequest {
                    channel_id: channel.id.clone(),
                    kid: "sDTOzw5wIfWxxxxzcmeQA".into(),
                })
                .await
                .unwrap();
        }
        admin
            .update_channel(pb::UpdateChannelRequest {
                channel_id: channel.id.clone(),
                token_mode: mode as i32,
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["token_mode".into()],
                }),
                ..Default::default()
            })
            .await
            .unwrap();
        // Twice: the second issue also revokes the first (v2, v2.1).
        for _ in 0..2 {
            let status = admin
                .rotate_access_token(pb::RotateAccessTokenRequest {
                    channel_id: channel.id.clone(),
                })
                .await
                .unwrap_or_else(|err| panic!("{mode:?}: Prism refused a token request: {err:?}"))
                .into_inner()
                .status
                .unwrap();
            assert!(status.has_token, "{mode:?}");
            assert_eq!(status.mode, mode as i32);
            assert!(status.last_refresh_error.is_empty(), "{mode:?}: {status:?}");
        }
    }
}
