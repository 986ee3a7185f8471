//! Master-key rotation: a start with a new key and the previous one
//! reseals every stored secret in the background; afterwards the new key
//! alone opens everything, and the old key alone is refused without a byte
//! of the data dir changing.

mod support;

use std::time::Duration;

use line_adapter::{proto::v1 as pb, secret::Secret, settings::Settings};
use support::{
    SECRET, TOKEN, TestApp, fake_line::FakeLine, metric, post_webhook, test_settings, text_body,
};

const PENDING: &str = "line_adapter_master_key_rotation_pending";

fn settings(dir: &std::path::Path, line: &FakeLine, key: &str, previous: Option<&str>) -> Settings {
    test_settings(dir, |layer| {
        layer.line_api_base = Some(line.url());
        layer.line_data_api_base = Some(line.url());
        layer.master_key = Some(Secret::new(key));
        layer.master_key_previous = previous.map(Secret::new);
    })
}

fn bearers(line: &FakeLine, path: &str) -> Vec<String> {
    line.requests()
        .into_iter()
        .filter(|r| r.path == path)
        .map(|r| {
            r.headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

async fn bot_info(app: &TestApp, id: &str) {
    app.admin()
        .await
        .get_bot_info(pb::GetBotInfoRequest {
            channel_id: id.into(),
        })
        .await
        .expect("bot info");
}

const BOT_INFO: &str = r#"{"userId":"Ub9952f8c0123456789abcdef01234567","basicId":"@a","displayName":"Shop","chatMode":"chat","markAsReadMode":"auto"}"#;

#[tokio::test]
async fn rotation_reseals_every_secret_and_the_old_key_is_then_refused() {
    let key_a = "aa".repeat(32);
    let key_b = "bb".repeat(32);
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();

    // Under key A: a long-lived channel, and a v2.1 channel with a key pair,
    // a kid, an issued token and a rotated secret in its grace period.
    let app = TestApp::start_with(settings(dir.path(), &line, &key_a, None)).await;
    assert_eq!(metric(&app, PENDING).await, Some(0.0));
    let mut admin = app.admin().await;
    let pasted = admin
        .create_channel(pb::CreateChannelRequest {
            display_name: "Pasted".into(),
            line_channel_id: "1657000010".into(),
            channel_secret: SECRET.into(),
            channel_access_token: TOKEN.into(),
            token_mode: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    let issued = admin
        .create_channel(pb::CreateChannelRequest {
            display_name: "Issued".into(),
            line_channel_id: "1657000011".into(),
            channel_secret: SECRET.into(),
            channel_access_token: String::new(),
            token_mode: pb::TokenMode::ShortLivedV2 as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    let pair = admin
        .generate_key_pair(pb::GenerateKeyPairRequest {
            channel_id: issued.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    admin
        .set_kid(pb::SetKidRequest {
            channel_id: issued.id.clone(),
            kid: "kid-1".into(),
        })
        .await
        .unwrap();
    admin
        .update_channel(pb::UpdateChannelRequest {
            channel_id: issued.id.clone(),
            token_mode: pb::TokenMode::V21Jwt as i32,
            channel_secret: support::OTHER_SECRET.into(),
            previous_secret_grace: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["token_mode".into(), "channel_secret".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    line.script(
        "/oauth2/v2.1/token",
        200,
        &[],
        r#"{"access_token":"issued-under-a","expires_in":2592000,"token_type":"Bearer","key_id":"k1"}"#,
    );
    line.script("/v2/bot/info", 200, &[], BOT_INFO);
    bot_info(&app, &issued.id).await;
    app.stop().await.unwrap();

    // Key B with A as the previous key: everything keeps working while the
    // secrets move.
    let app = TestApp::start_with(settings(dir.path(), &line, &key_b, Some(&key_a))).await;
    let mut pending = metric(&app, PENDING).await;
    for _ in 0..100 {
        if pending == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        pending = metric(&app, PENDING).await;
    }
    assert_eq!(pending, Some(0.0), "the rotation finishes");
    let body = text_body("during", 1, "U1");
    assert_eq!(
        post_webhook(&client, &app, &pasted.id, SECRET, &body)
            .await
            .status(),
        200
    );
    app.stop().await.unwrap();

    // Key B alone opens everything: the pasted token, the issued token, the
    // private key, the channel secrets (current and previous).
    let app = TestApp::start_with(settings(dir.path(), &line, &key_b, None)).await;
    line.script("/v2/bot/info", 200, &[], BOT_INFO);
    line.script("/v2/bot/info", 200, &[], BOT_INFO);
    bot_info(&app, &pasted.id).await;
    bot_info(&app, &issued.id).await;
    let used = bearers(&line, "/v2/bot/info");
    assert_eq!(
        used[used.len() - 2..],
        [
            format!("Bearer {TOKEN}"),
            "Bearer issued-under-a".to_owned()
        ]
    );
    line.script(
        "/oauth2/v2.1/token",
        200,
        &[],
        r#"{"access_token":"issued-under-b","expires_in":2592000,"token_type":"Bearer","key_id":"k2"}"#,
    );
    app.admin()
        .await
        .rotate_access_token(pb::RotateAccessTokenRequest {
            channel_id: issued.id.clone(),
        })
        .await
        .expect("the private key signs under key B");
    let assertion = line
        .requests()
        .into_iter()
        .filter(|r| r.path == "/oauth2/v2.1/token")
        .last()
        .map(|r| {
            url::form_urlencoded::parse(&r.body)
                .find(|(k, _)| k == "client_assertion")
                .unwrap()
                .1
                .into_owned()
        })
        .unwrap();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(&pair.public_key_jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["https://api.line.me/"]);
    jsonwebtoken::decode::<serde_json::Value>(
        &assertion,
        &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
        &validation,
    )
    .expect("signed with the generated key");
    let revoked: Vec<String> = line
        .requests()
        .into_iter()
        .filter(|r| r.path == "/oauth2/v2.1/revoke")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(revoked.len(), 1);
    assert!(
        revoked[0].contains("issued-under-a"),
        "the replaced token opened under key B"
    );
    for (n, (id, secret)) in [
        (&pasted.id, SECRET),
        (&issued.id, support::OTHER_SECRET),
        (&issued.id, SECRET),
    ]
    .into_iter()
    .enumerate()
    {
        let body = text_body(&format!("after-{n}"), 1, "U2");
        assert_eq!(
            post_webhook(&client, &app, id, secret, &body)
                .await
                .status(),
            200,
            "webhook secrets open under key B"
        );
    }
    app.stop().await.unwrap();

    // Key A alone is refused now, and leaves everything as it was.
    let wrong = TestApp::spawn(settings(dir.path(), &line, &key_a, None)).await;
    let err = wrong.finished().await.unwrap_err();
    assert!(
        err.to_string().contains("master key does not match"),
        "{err}"
    );
    assert!(!err.to_string().contains(&key_a));
    let app = TestApp::start_with(settings(dir.path(), &line, &key_b, None)).await;
    line.script("/v2/bot/info", 200, &[], BOT_INFO);
    bot_info(&app, &pasted.id).await;
    assert_eq!(
        bearers(&line, "/v2/bot/info").last().unwrap(),
        &format!("Bearer {TOKEN}")
    );
    app.stop().await.unwrap();
    for (path, bytes) in support::stored_files(dir.path()) {
        for needle in [SECRET, TOKEN, "issued-under-b", &key_a, &key_b] {
            assert!(
                !support::contains(&bytes, needle.as_bytes()),
                "plaintext secret in {}",
                path.display()
            );
        }
    }
}

#[test]
fn a_previous_key_needs_a_configured_key() {
    let dir = tempfile::tempdir().unwrap();
    let layer = line_adapter::settings::Layer {
        data_dir: Some(dir.path().to_owned()),
        master_key_previous: Some(Secret::new("cc".repeat(32))),
        ..Default::default()
    };
    let err = Settings::load(
        None,
        Vec::<(std::ffi::OsString, std::ffi::OsString)>::new(),
        layer,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("master_key_previous"), "{err}");
    assert!(!err.contains(&"cc".repeat(32)));
}
