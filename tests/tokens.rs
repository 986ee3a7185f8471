//! Channel access tokens in every mode, against the scripted stand-in for
//! LINE: the requests each mode makes (checked field by field, the v2.1 JWT
//! verified with the JWK GenerateKeyPair returned), caching, renewal before
//! expiry, revocation of replaced tokens, LINE's limit of 30 v2.1 tokens,
//! one shared refresh for concurrent callers and the 401 → renew → retry
//! once rule.

mod support;

use std::{collections::HashMap, time::Duration};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::Jwk};
use line_adapter::proto::v1 as pb;
use support::{
    SECRET, TestApp, contains,
    fake_line::{FakeLine, Recorded},
    test_settings,
};
use tonic::Code;

const LINE_CHANNEL_ID: &str = "1657000001";
const BOT_INFO: &str = "/v2/bot/info";
const BOT_INFO_BODY: &str = r#"{"userId":"Ub9952f8c0123456789abcdef01234567","basicId":"@216ru","displayName":"Shop","chatMode":"chat","markAsReadMode":"auto"}"#;

async fn start(line: &FakeLine, dir: &std::path::Path) -> TestApp {
    TestApp::start_with(test_settings(dir, |layer| {
        layer.line_api_base = Some(line.url());
        layer.line_data_api_base = Some(line.url());
        layer.token_v2_1_lifetime_seconds = Some(86_400);
    }))
    .await
}

async fn create(app: &TestApp, mode: pb::TokenMode) -> pb::Channel {
    create_with_token(app, mode, "").await
}

/// A channel with `token` as its access token (empty: none).
async fn create_with_token(app: &TestApp, mode: pb::TokenMode, token: &str) -> pb::Channel {
    app.admin()
        .await
        .create_channel(pb::CreateChannelRequest {
            display_name: "Shop".into(),
            line_channel_id: LINE_CHANNEL_ID.into(),
            channel_secret: SECRET.into(),
            channel_access_token: token.into(),
            token_mode: mode as i32,
        })
        .await
        .expect("create the channel")
        .into_inner()
        .channel
        .unwrap()
}

fn token_body(token: &str, expires_in: u64, key_id: Option<&str>) -> String {
    match key_id {
        Some(key_id) => format!(
            r#"{{"access_token":"{token}","expires_in":{expires_in},"token_type":"Bearer","key_id":"{key_id}"}}"#
        ),
        None => format!(
            r#"{{"access_token":"{token}","expires_in":{expires_in},"token_type":"Bearer"}}"#
        ),
    }
}

fn form(request: &Recorded) -> HashMap<String, String> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

fn query(request: &Recorded) -> HashMap<String, String> {
    let query = request.path.split_once('?').map(|(_, q)| q).unwrap_or("");
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn to(line: &FakeLine, path: &str) -> Vec<Recorded> {
    line.requests()
        .into_iter()
        .filter(|r| r.path.split('?').next() == Some(path))
        .collect()
}

fn bearer(request: &Recorded) -> String {
    request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn bot_info(
    app: &TestApp,
    channel_id: &str,
) -> Result<pb::GetBotInfoResponse, tonic::Status> {
    app.admin()
        .await
        .get_bot_info(pb::GetBotInfoRequest {
            channel_id: channel_id.into(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn status(app: &TestApp, channel_id: &str) -> pb::TokenStatus {
    app.admin()
        .await
        .get_token_status(pb::GetTokenStatusRequest {
            channel_id: channel_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap()
}

async fn rotate(app: &TestApp, channel_id: &str) -> Result<pb::TokenStatus, tonic::Status> {
    app.admin()
        .await
        .rotate_access_token(pb::RotateAccessTokenRequest {
            channel_id: channel_id.into(),
        })
        .await
        .map(|r| r.into_inner().status.unwrap())
}

fn fingerprint(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))[..8].to_owned()
}

/// Checks a v2.1 token request: its form and its JWT assertion, verified
/// with `jwk`. Returns the assertion's claims.
fn verify_assertion(request: &Recorded, jwk: &str, kid: &str) -> serde_json::Value {
    let form = form(request);
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(
        form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert_eq!(form.len(), 3, "no other fields: {form:?}");
    verify_jwt(&form["client_assertion"], jwk, kid)
}

fn verify_jwt(jwt: &str, jwk: &str, kid: &str) -> serde_json::Value {
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), Some(kid));
    let jwk: Jwk = serde_json::from_str(jwk).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["https://api.line.me/"]);
    validation.set_issuer(&[LINE_CHANNEL_ID]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        jwt,
        &DecodingKey::from_jwk(&jwk).unwrap(),
        &validation,
    )
    .expect("the assertion verifies with the JWK GenerateKeyPair returned")
    .claims;
    assert_eq!(claims["sub"], LINE_CHANNEL_ID);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let exp = claims["exp"].as_i64().unwrap();
    assert!(
        exp > now && exp <= now + 30 * 60,
        "exp {exp} is within 30 minutes of {now}"
    );
    assert_eq!(claims["token_exp"], 86_400, "the configured v2.1 lifetime");
    claims
}

async fn generate_key_pair(app: &TestApp, channel_id: &str) -> pb::GenerateKeyPairResponse {
    app.admin()
        .await
        .generate_key_pair(pb::GenerateKeyPairRequest {
            channel_id: channel_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn set_kid(app: &TestApp, channel_id: &str, kid: &str) -> Result<pb::Channel, tonic::Status> {
    app.admin()
        .await
        .set_kid(pb::SetKidRequest {
            channel_id: channel_id.into(),
            kid: kid.into(),
        })
        .await
        .map(|r| r.into_inner().channel.unwrap())
}

async fn use_v2_1(app: &TestApp, channel_id: &str) -> Result<pb::Channel, tonic::Status> {
    app.admin()
        .await
        .update_channel(pb::UpdateChannelRequest {
            channel_id: channel_id.into(),
            token_mode: pb::TokenMode::V21Jwt as i32,
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["token_mode".into()],
            }),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().channel.unwrap())
}

/// A channel on v2.1 with its first key pair, under `kid-1`; its id and
/// the pair.
async fn v2_1_channel(app: &TestApp) -> (String, pb::GenerateKeyPairResponse) {
    let channel = create(app, pb::TokenMode::ShortLivedV2).await;
    let pair = generate_key_pair(app, &channel.id).await;
    set_kid(app, &channel.id, "kid-1").await.unwrap();
    use_v2_1(app, &channel.id).await.unwrap();
    (channel.id, pair)
}

/// LINE's next answer on the v2.1 token endpoint: `token`, valid a day.
fn next_v2_1_token(line: &FakeLine, token: &str, key_id: &str) {
    line.script(
        "/oauth2/v2.1/token",
        200,
        &[],
        &token_body(token, 86_400, Some(key_id)),
    );
}

#[tokio::test]
async fn v2_1_tokens_come_from_assertions_signed_with_the_generated_key() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(&line, dir.path()).await;
    let channel = create(&app, pb::TokenMode::ShortLivedV2).await;
    let id = channel.id.as_str();

    // v2.1 needs a key pair and a kid first.
    let refused = use_v2_1(&app, id).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let refused = set_kid(&app, id, "kid-1").await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "no key pair yet");
    let invalid = set_kid(&app, id, "  ").await.unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert!(invalid.message().contains("kid"), "{}", invalid.message());

    let first = generate_key_pair(&app, id).await;
    let jwk: serde_json::Value = serde_json::from_str(&first.public_key_jwk).unwrap();
    let mut members: Vec<_> = jwk.as_object().unwrap().keys().cloned().collect();
    members.sort();
    assert_eq!(
        members,
        ["alg", "e", "kty", "n", "use"],
        "no kid, no private members"
    );
    assert_eq!(
        (
            jwk["kty"].as_str(),
            jwk["alg"].as_str(),
            jwk["use"].as_str()
        ),
        (Some("RSA"), Some("RS256"), Some("sig"))
    );
    assert!(!first.thumbprint.is_empty());

    let updated = set_kid(&app, id, "kid-1").await.unwrap();
    assert_eq!(updated.kid, "kid-1");
    let updated = use_v2_1(&app, id).await.unwrap();
    assert_eq!(updated.token_mode, pb::TokenMode::V21Jwt as i32);

    next_v2_1_token(&line, "v21-token-a", "key-a");
    line.script(BOT_INFO, 200, &[], BOT_INFO_BODY);
    line.script(BOT_INFO, 200, &[], BOT_INFO_BODY);
    bot_info(&app, id).await.unwrap();
    bot_info(&app, id).await.unwrap();
    let issued = to(&line, "/oauth2/v2.1/token");
    assert_eq!(issued.len(), 1, "the token is cached");
    verify_assertion(&issued[0], &first.public_key_jwk, "kid-1");
    let infos = to(&line, BOT_INFO);
    assert!(infos.iter().all(|r| bearer(r) == "Bearer v21-token-a"));

    let shown = status(&app, id).await;
    assert_eq!(shown.mode, pb::TokenMode::V21Jwt as i32);
    assert_eq!(shown.kid, "kid-1");
    assert!(shown.has_token);
    assert_eq!(shown.token_fingerprint, fingerprint("v21-token-a"));
    let issue = shown.issue_time.unwrap().seconds;
    let expire = shown.expire_time.unwrap().seconds;
    assert!(
        (86_399..=86_401).contains(&(expire - issue)),
        "LINE's expires_in is kept"
    );
    let refresh = shown.refresh_time.unwrap().seconds;
    assert!(refresh < expire && refresh > issue, "renewed before expiry");
    assert!(shown.last_refresh_error.is_empty());

    // Rotation of the key pair without downtime: the new pair waits for its
    // kid; until then the old kid signs.
    let second = generate_key_pair(&app, id).await;
    assert_ne!(second.public_key_jwk, first.public_key_jwk);
    next_v2_1_token(&line, "v21-token-b", "key-b");
    let rotated = rotate(&app, id).await.unwrap();
    assert_eq!(rotated.token_fingerprint, fingerprint("v21-token-b"));
    let issued = to(&line, "/oauth2/v2.1/token");
    verify_assertion(&issued[1], &first.public_key_jwk, "kid-1");
    let revoked = to(&line, "/oauth2/v2.1/revoke");
    assert_eq!(revoked.len(), 1, "the replaced token is revoked");
    let revoke = form(&revoked[0]);
    assert_eq!(revoke["client_id"], LINE_CHANNEL_ID);
    assert_eq!(revoke["client_secret"], SECRET);
    assert_eq!(revoke["access_token"], "v21-token-a");

    let updated = set_kid(&app, id, "kid-2").await.unwrap();
    assert_eq!(updated.kid, "kid-2");
    next_v2_1_token(&line, "v21-token-c", "key-c");
    rotate(&app, id).await.unwrap();
    let issued = to(&line, "/oauth2/v2.1/token");
    verify_assertion(&issued[2], &second.public_key_jwk, "kid-2");

    // Nothing secret in any response, nor in the files on disk.
    let channel_view = format!(
        "{:?}",
        app.admin()
            .await
            .get_channel(pb::GetChannelRequest {
                channel_id: id.into(),
                check_webhook: false,
            })
            .await
            .unwrap()
            .into_inner()
    );
    for secret in [SECRET, "v21-token-a", "v21-token-b", "v21-token-c"] {
        assert!(!channel_view.contains(secret));
    }
    app.stop().await.unwrap();
    for (path, bytes) in support::stored_files(dir.path()) {
        for needle in [SECRET, "v21-token-b", "v21-token-c", "BEGIN PRIVATE KEY"] {
            assert!(
                !contains(&bytes, needle.as_bytes()),
                "{needle} in plaintext in {}",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn short_lived_tokens_are_renewed_before_expiry_and_the_old_one_revoked() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(&line, dir.path()).await;
    let channel = create(&app, pb::TokenMode::ShortLivedV2).await;
    let id = channel.id.as_str();

    // Valid 4 s: renewed after 2 s (half its life, the margin is larger).
    line.script(
        "/v2/oauth/accessToken",
        200,
        &[],
        &token_body("v2-token-a", 4, None),
    );
    line.script(
        "/v2/oauth/accessToken",
        200,
        &[],
        &token_body("v2-token-b", 2_592_000, None),
    );
    for _ in 0..3 {
        line.script(BOT_INFO, 200, &[], BOT_INFO_BODY);
    }
    bot_info(&app, id).await.unwrap();
    bot_info(&app, id).await.unwrap();
    let issued = to(&line, "/v2/oauth/accessToken");
    assert_eq!(issued.len(), 1);
    let fields = form(&issued[0]);
    assert_eq!(fields["grant_type"], "client_credentials");
    assert_eq!(fields["client_id"], LINE_CHANNEL_ID);
    assert_eq!(fields["client_secret"], SECRET);
    assert!(
        bearer(&issued[0]).is_empty(),
        "token endpoints take no bearer"
    );
    assert_eq!(
        issued[0].headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );

    support::pass_time(Duration::from_millis(2_200)).await;
    bot_info(&app, id).await.unwrap();
    assert_eq!(
        to(&line, "/v2/oauth/accessToken").len(),
        2,
        "renewed once due"
    );
    let infos = to(&line, BOT_INFO);
    assert_eq!(bearer(&infos[1]), "Bearer v2-token-a");
    assert_eq!(bearer(&infos[2]), "Bearer v2-token-b");
    let revoked = to(&line, "/v2/oauth/revoke");
    assert_eq!(revoked.len(), 1);
    assert_eq!(form(&revoked[0])["access_token"], "v2-token-a");

    // The token survives a restart: no new request for it.
    app.stop().await.unwrap();
    let app = start(&line, dir.path()).await;
    line.script(BOT_INFO, 200, &[], BOT_INFO_BODY);
    bot_info(&app, id).await.unwrap();
    assert_eq!(to(&line, "/v2/oauth/accessToken").len(), 2);
    assert_eq!(
        bearer(to(&line, BOT_INFO).last().unwrap()),
        "Bearer v2-token-b"
    );
}

#[tokio::test]
async fn a_30_day_token_is_renewed_a_refresh_margin_before_it_expires() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(&line, dir.path()).await;
    let channel = create(&app, pb::TokenMode::ShortLivedV2).await;
    let id = channel.id.as_str();
    const DAY: Duration = Duration::from_secs(86_400);
    const MINUTE: Duration = Duration::from_secs(60);

    // LINE's short-lived tokens live 30 days; the margin is a day.
    for token in ["v2-token-a", "v2-token-b"] {
        line.script(
            "/v2/oauth/accessToken",
            200,
            &[],
            &token_body(token, 30 * DAY.as_secs(), None),
        );
    }
    for _ in 0..3 {
        line.script(BOT_INFO, 200, &[], BOT_INFO_BODY);
    }
    bot_info(&app, id).await.unwrap();
    let issued = status(&app, id).await;
    let (issue, expire, refresh) = (
        issued.issue_time.unwrap().seconds,
        issued.expire_time.unwrap().seconds,
        issued.refresh_time.unwrap().seconds,
    );
    assert_eq!(expire - issue, 30 * DAY.as_secs() as i64);
    assert_eq!(
        expire - refresh,
        DAY.as_secs() as i64,
        "renewed a day early"
    );

    // A minute before it is due, the token is still the one in use.
    support::pass_time(29 * DAY - MINUTE).await;
    bot_info(&app, id).await.unwrap();
    assert_eq!(to(&line, "/v2/oauth/accessToken").len(), 1, "not due yet");
    assert_eq!(
        bearer(to(&line, BOT_INFO).last().unwrap()),
        "Bearer v2-token-a"
    );

    // A minute after, it is renewed (by the renewal task or by this call,
    // once) and the old one revoked.
    support::pass_time(2 * MINUTE).await;
    bot_info(&app, id).await.unwrap();
    assert_eq!(to(&line, "/v2/oauth/accessToken").len(), 2, "renewed once");
    assert_eq!(
        bearer(to(&line, BOT_INFO).last().unwrap()),
        "Bearer v2-token-b"
    );
    let revoked = to(&line, "/v2/oauth/revoke");
    assert_eq!(revoked.len(), 1);
    assert_eq!(form(&revoked[0])["access_token"], "v2-token-a");
    let renewed = status(&app, id).await;
    assert!(renewed.issue_time.unwrap().seconds >= refresh);
}

#[tokio::test]
async fn stateless_tokens_use_v3_and_are_never_revoked() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(&line, dir.path()).await;
    let channel = create(&app, pb::TokenMode::StatelessV3).await;
    line.script(
        "/oauth2/v3/token",
        200,
        &[],
        &token_body("v3-token-a", 899, None),
    );
    line.script(
        "/oauth2/v3/token",
        200,
        &[],
        &token_body("v3-token-b", 899, None),
    );
    line.script(BOT_INFO, 200, &[], BOT_INFO_BODY);
    bot_info(&app, &channel.id).await.unwrap();
    let issued = to(&line, "/oauth2/v3/token");
    assert_eq!(issued.len(), 1);
    let fields = form(&issued[0]);
    assert_eq!(
        (
            fields["grant_type"].as_str(),
            fields["client_id"].as_str(),
            fields["client_secret"].as_str()
        ),
        ("client_credentials", LINE_CHANNEL_ID, SECRET)
    );
    let rotated = rotate(&app, &channel.id).await.unwrap();
    assert_eq!(rotated.token_fingerprint, fingerprint("v3-token-b"));
    assert_eq!(rotated.mode, pb::TokenMode::StatelessV3 as i32);
    let revokes = line
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("revoke"))
        .count();
    assert_eq!(revokes, 0, "stateless tokens cannot be revoked");
}

#[tokio::test]
async fn concurrent_callers_share_one_refresh() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(&line, dir.path()).await;
    let channel = create(&app, pb::TokenMode::ShortLivedV2).await;
    line.script(
        "/v2/oauth/accessToken",
        200,
        &[],
        &token_body("shared-token", 2_592_000, None),
    );
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let id = channel.id.clone();
            let addr = app.grpc_addr;
            tokio::spawn(async move {
                let mut admin =
                    pb::channel_admin_client::ChannelAdminClient::connect(format!("http://{addr}"))
                        .await
                        .unwrap();
                admin
                    .get_bot_info(pb::GetBotInfoRequest { channel_id: id })
                    .await
                    .map(|_| ())
            })
        })
        .collect();
    for call in calls {
        // The fake answers `{}` to unscripted calls: bot info may not parse,
        // but every call must have been made with the one token.
        let _ = call.await.unwrap();
    }
    assert_eq!(
        to(&line, "/v2/oauth/accessToken").len(),
        1,
        "one refresh for 16 callers"
    );
    let infos = to(&line, BOT_INFO);
    assert!(infos.len() >= 16);
    assert!(infos.iter().all(|r| bearer(r) == "Bearer shared-token"));
}

#[tokio::test]
async fn a_401_renews_the_token_and_retries_once() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(&line, dir.path()).await;
    let channel = create(&app, pb::TokenMode::ShortLivedV2).await;
    let id = channel.id.as_str();
    line.script(
        "/v2/oauth/accessToken",
        200,
        &[],
        &token_body("token-1", 2_592_000, None),
    );
    line.script(
        "/v2/oauth/accessToken",
        200,
        &[],
        &token_body("token-2", 2_592_000, None),
    );
    line.script(
        "/v2/oauth/accessToken",
        200,
        &[],
        &token_body("token-3", 2_592_000, None),
    );
    line.script(
        "/v2/oauth/accessToken",
        200,
        &[],
        &token_body("token-4", 2_592_000, None),
    );

    // A lookup: 401, renew, 200.
    line.script(BOT_INFO, 401, &[], r#"{"message":"Authentication failed. Confirm that the access token in the authorization header is valid."}"#);
    line.script(BOT_INFO, 200, &[], BOT_INFO_BODY);
    bot_info(&app, id).await.unwrap();
    let infos = to(&line, BOT_INFO);
    assert_eq!(infos.len(), 2);
    assert_eq!(bearer(&infos[0]), "Bearer token-1");
    assert_eq!(bearer(&infos[1]), "Bearer token-2");
    assert!(
        to(&line, "/v2/oauth/revoke").is_empty(),
        "a rejected token is not revoked"
    );

    // A push through the outbox: 401, renew, the same retry key again.
    line.script(
        "/v2/bot/message/push",
        401,
        &[],
        r#"{"message":"Authentication failed"}"#,
    );
    line.script(
        "/v2/bot/message/push",
        200,
        &[],
        r#"{"sentMessages":[{"id":"1"}]}"#,
    );
    let mut messaging = app.messaging().await;
    let delivery = messaging
        .push(pb::PushRequest {
            channel_id: id.into(),
            to: Some(pb::Conversation {
                chat: Some(pb::conversation::Chat::UserId(
                    "U4af4980629aaaaaaaaaaaaaaaaaaaaaaa".into(),
                )),
            }),
            messages: vec![pb::Message {
                kind: Some(pb::message::Kind::Text(pb::TextMessage {
                    text: "hello".into(),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(delivery.state, pb::DeliveryState::Delivered as i32);
    let pushes = to(&line, "/v2/bot/message/push");
    assert_eq!(pushes.len(), 2);
    assert_eq!(bearer(&pushes[0]), "Bearer token-2");
    assert_eq!(bearer(&pushes[1]), "Bearer token-3");
    assert_eq!(
        pushes[0].headers.get("x-line-retry-key"),
        pushes[1].headers.get("x-line-retry-key")
    );

    // Refused again after renewing: reported, not retried forever.
    line.script(BOT_INFO, 401, &[], r#"{"message":"Authentication failed"}"#);
    line.script(BOT_INFO, 401, &[], r#"{"message":"Authentication failed"}"#);
    let before = to(&line, BOT_INFO).len();
    let refused = bot_info(&app, id).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(to(&line, BOT_INFO).len(), before + 2, "one retry only");
}

#[tokio::test]
async fn at_lines_limit_of_30_v2_1_tokens_the_oldest_we_issued_are_revoked() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(&line, dir.path()).await;
    let (id, pair) = v2_1_channel(&app).await;
    let id = id.as_str();

    next_v2_1_token(&line, "limit-a", "key-a");
    rotate(&app, id).await.unwrap();
    // Replacing a: its revocation fails, so a stays valid at LINE.
    next_v2_1_token(&line, "limit-b", "key-b");
    line.script(
        "/oauth2/v2.1/revoke",
        500,
        &[],
        r#"{"message":"Internal error"}"#,
    );
    rotate(&app, id).await.unwrap();

    // Now LINE says 30 are valid; a is among them and ours.
    line.script(
        "/oauth2/v2.1/token",
        400,
        &[],
        r#"{"error":"invalid_request","error_description":"The maximum number of access tokens has already been issued"}"#,
    );
    let mut kids: Vec<String> = (0..28).map(|i| format!("other-{i}")).collect();
    kids.push("key-a".into());
    kids.push("key-b".into());
    line.script(
        "/oauth2/v2.1/tokens/kid",
        200,
        &[],
        &serde_json::json!({ "kids": kids }).to_string(),
    );
    next_v2_1_token(&line, "limit-c", "key-c");
    let rotated = rotate(&app, id).await.unwrap();
    assert_eq!(rotated.token_fingerprint, fingerprint("limit-c"));

    let listed = to(&line, "/oauth2/v2.1/tokens/kid");
    assert_eq!(
        listed.len(),
        2,
        "SetKid's check, then the listing at the limit"
    );
    let params = query(&listed[1]);
    assert_eq!(
        params["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    verify_jwt(&params["client_assertion"], &pair.public_key_jwk, "kid-1");
    let revoked: Vec<String> = to(&line, "/oauth2/v2.1/revoke")
        .iter()
        .map(|r| form(r)["access_token"].clone())
        .collect();
    // a failed once, then went to make room; b was replaced by c.
    assert_eq!(revoked, ["limit-a", "limit-a", "limit-b"]);

    // When none of the 30 are ours, the error says so.
    line.script(
        "/oauth2/v2.1/token",
        400,
        &[],
        r#"{"error":"invalid_request","error_description":"The maximum number of access tokens has already been issued"}"#,
    );
    line.script(
        "/oauth2/v2.1/tokens/kid",
        200,
        &[],
        r#"{"kids":["other-1"]}"#,
    );
    let refused = rotate(&app, id).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("maximum number"),
        "{}",
        refused.message()
    );
    let shown = status(&app, id).await;
    assert!(shown.last_refresh_error.contains("maximum number"));
    assert!(shown.last_refresh_error_time.is_some());
    assert_eq!(
        shown.token_fingerprint,
        fingerprint("limit-c"),
        "the valid token stays"
    );
}

#[tokio::test]
async fn refused_credentials_are_reported_without_the_secret() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(&line, dir.path()).await;
    let channel = create(&app, pb::TokenMode::ShortLivedV2).await;
    line.script(
        "/v2/oauth/accessToken",
        400,
        &[],
        r#"{"error":"invalid_client","error_description":"invalid client_secret"}"#,
    );
    let refused = bot_info(&app, &channel.id).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("invalid_client"),
        "{}",
        refused.message()
    );
    assert!(!refused.message().contains(SECRET));
    let shown = status(&app, &channel.id).await;
    assert!(!shown.has_token);
    assert!(shown.last_refresh_error.contains("invalid client_secret"));

    // LINE down: UNAVAILABLE, so callers retry.
    line.script("/v2/oauth/accessToken", 503, &[], "");
    let down = bot_info(&app, &channel.id).await.unwrap_err();
    assert_eq!(down.code(), Code::Unavailable);

    // Long-lived tokens are reissued in the console only.
    let long_lived = app
        .admin()
        .await
        .create_channel(pb::CreateChannelRequest {
            display_name: "Other".into(),
            line_channel_id: "1657000002".into(),
            channel_secret: SECRET.into(),
            channel_access_token: "pasted-token".into(),
            token_mode: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    let refused = rotate(&app, &long_lived.id).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn set_kid_asks_line_first_and_keeps_the_working_kid_when_refused() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(&line, dir.path()).await;
    let channel = create(&app, pb::TokenMode::ShortLivedV2).await;
    let id = channel.id.as_str();
    let pair = generate_key_pair(&app, id).await;
    let set = set_kid(&app, id, "kid-good").await.unwrap();
    assert_eq!(set.kid, "kid-good");
    // The check signed an assertion under the new kid with the new key.
    let checks = to(&line, "/oauth2/v2.1/tokens/kid");
    assert_eq!(checks.len(), 1);
    verify_jwt(
        &query(&checks[0])["client_assertion"],
        &pair.public_key_jwk,
        "kid-good",
    );
    assert!(
        to(&line, "/oauth2/v2.1/token").is_empty(),
        "the check issues no token"
    );

    // A kid LINE does not take: refused, naming the field; nothing changes.
    line.script(
        "/oauth2/v2.1/tokens/kid",
        400,
        &[],
        r#"{"error":"invalid_client","error_description":"Invalid signature"}"#,
    );
    let refused = set_kid(&app, id, "kid-typo").await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("kid"), "{}", refused.message());
    let details =
        tonic_types::StatusExt::get_details_bad_request(&refused).expect("a BadRequest detail");
    assert_eq!(details.field_violations[0].field, "kid");
    let kept = app
        .admin()
        .await
        .get_channel(pb::GetChannelRequest {
            channel_id: id.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    assert_eq!(kept.kid, "kid-good", "the working kid stays");

    // LINE unreachable for the check: UNAVAILABLE, nothing changes.
    line.script("/oauth2/v2.1/tokens/kid", 503, &[], r#"{"message":"down"}"#);
    line.script("/oauth2/v2.1/tokens/kid", 503, &[], r#"{"message":"down"}"#);
    let down = set_kid(&app, id, "kid-other").await.unwrap_err();
    assert_eq!(down.code(), Code::Unavailable, "{down:?}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_refused_new_key_pair_falls_back_to_the_previous_until_the_new_one_issues() {
    const REFUSED: &str = r#"{"error":"invalid_client","error_description":"Invalid signature"}"#;
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(&line, dir.path()).await;
    let (id, first) = v2_1_channel(&app).await;
    let id = id.as_str();
    next_v2_1_token(&line, "pair-a", "key-a");
    rotate(&app, id).await.unwrap();

    // A new pair passes SetKid's check, then LINE refuses its assertions
    // (its key deleted in the console, say) before it issued a token:
    // the pair SetKid replaced issues the token instead.
    let second = generate_key_pair(&app, id).await;
    set_kid(&app, id, "kid-2").await.unwrap();
    line.script("/oauth2/v2.1/token", 400, &[], REFUSED);
    next_v2_1_token(&line, "pair-b", "key-b");
    let renewed = rotate(&app, id).await.unwrap();
    assert_eq!(renewed.token_fingerprint, fingerprint("pair-b"));
    assert_eq!(
        renewed.kid, "kid-1",
        "the status names the pair that signed"
    );
    let issued = to(&line, "/oauth2/v2.1/token");
    assert_eq!(issued.len(), 3);
    verify_assertion(&issued[1], &second.public_key_jwk, "kid-2");
    verify_assertion(&issued[2], &first.public_key_jwk, "kid-1");

    // Another rotation before the refused pair ever worked: the pair kept
    // is still the first one, the last known to work.
    let third = generate_key_pair(&app, id).await;
    set_kid(&app, id, "kid-3").await.unwrap();
    line.script("/oauth2/v2.1/token", 400, &[], REFUSED);
    next_v2_1_token(&line, "pair-c", "key-c");
    let renewed = rotate(&app, id).await.unwrap();
    assert_eq!(renewed.token_fingerprint, fingerprint("pair-c"));
    let issued = to(&line, "/oauth2/v2.1/token");
    verify_assertion(&issued[3], &third.public_key_jwk, "kid-3");
    verify_assertion(&issued[4], &first.public_key_jwk, "kid-1");

    // Once the new pair has issued a token the previous one is let go, and
    // a later refusal of the new pair is reported, not covered up.
    next_v2_1_token(&line, "pair-d", "key-d");
    let renewed = rotate(&app, id).await.unwrap();
    assert_eq!(renewed.token_fingerprint, fingerprint("pair-d"));
    assert_eq!(renewed.kid, "kid-3");
    verify_assertion(
        &to(&line, "/oauth2/v2.1/token")[5],
        &third.public_key_jwk,
        "kid-3",
    );
    line.script("/oauth2/v2.1/token", 400, &[], REFUSED);
    rotate(&app, id).await.unwrap_err();
    assert_eq!(
        to(&line, "/oauth2/v2.1/token").len(),
        7,
        "no second try with the pair let go"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn deleting_a_channel_revokes_its_tokens_and_says_what_stayed() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(&line, dir.path()).await;

    // A v2 channel with a token in use, replaced once (b current, a
    // replaced but its revocation failed, so it is still listed).
    let channel = create(&app, pb::TokenMode::ShortLivedV2).await;
    let id = channel.id.as_str();
    line.script(
        "/v2/oauth/accessToken",
        200,
        &[],
        &token_body("del-a", 86_400, None),
    );
    rotate(&app, id).await.unwrap();
    line.script(
        "/v2/oauth/accessToken",
        200,
        &[],
        &token_body("del-b", 86_400, None),
    );
    line.script(
        "/v2/oauth/revoke",
        500,
        &[],
        r#"{"message":"Internal error"}"#,
    );
    rotate(&app, id).await.unwrap();
    let before = to(&line, "/v2/oauth/revoke").len();

    // Deleting: b is revoked, a's revocation fails again and is reported.
    line.script("/v2/oauth/revoke", 200, &[], "");
    line.script(
        "/v2/oauth/revoke",
        500,
        &[],
        r#"{"message":"Internal error"}"#,
    );
    let deleted = app
        .admin()
        .await
        .delete_channel(pb::DeleteChannelRequest {
            channel_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let revoked: Vec<String> = to(&line, "/v2/oauth/revoke")[before..]
        .iter()
        .map(|r| form(r)["access_token"].clone())
        .collect();
    assert_eq!(revoked, ["del-b", "del-a"], "current first, then replaced");
    assert_eq!(deleted.tokens_revoked, 1);
    assert_eq!(deleted.tokens_not_revoked.len(), 1);
    let kept = &deleted.tokens_not_revoked[0];
    assert_eq!(kept.token_fingerprint, fingerprint("del-a"));
    assert!(
        kept.reason.contains("500") || kept.reason.contains("Internal"),
        "{kept:?}"
    );
    assert!(
        !format!("{deleted:?}").contains("del-a"),
        "never the token itself"
    );
    // Gone either way.
    let gone = app
        .admin()
        .await
        .get_channel(pb::GetChannelRequest {
            channel_id: id.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);

    // A long-lived token is the operator's: reported, not revoked.
    let long_lived = create_with_token(
        &app,
        pb::TokenMode::LongLived,
        "operators-own-long-lived-token",
    )
    .await;
    let revokes = to(&line, "/v2/oauth/revoke").len();
    let deleted = app
        .admin()
        .await
        .delete_channel(pb::DeleteChannelRequest {
            channel_id: long_lived.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.tokens_revoked, 0);
    assert_eq!(deleted.tokens_not_revoked.len(), 1);
    assert!(deleted.tokens_not_revoked[0].reason.contains("long-lived"));
    assert_eq!(to(&line, "/v2/oauth/revoke").len(), revokes);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn moving_to_another_line_channel_revokes_with_the_old_credentials() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(&line, dir.path()).await;
    let (id, _) = v2_1_channel(&app).await;
    let id = id.as_str();
    next_v2_1_token(&line, "move-a", "key-a");
    rotate(&app, id).await.unwrap();

    const NEW_SECRET: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    app.admin()
        .await
        .update_channel(pb::UpdateChannelRequest {
            channel_id: id.into(),
            line_channel_id: "2000000002".into(),
            channel_secret: NEW_SECRET.into(),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["line_channel_id".into(), "channel_secret".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let revoked = to(&line, "/oauth2/v2.1/revoke");
    assert_eq!(revoked.len(), 1);
    let fields = form(&revoked[0]);
    assert_eq!(fields["access_token"], "move-a");
    assert_eq!(fields["client_id"], LINE_CHANNEL_ID, "the old channel's id");
    assert_eq!(fields["client_secret"], SECRET, "and its secret");

    // The next token is the new channel's; move-a is not revoked again
    // (with credentials that could not revoke it).
    next_v2_1_token(&line, "move-b", "key-b");
    rotate(&app, id).await.unwrap();
    let again: Vec<String> = to(&line, "/oauth2/v2.1/revoke")
        .iter()
        .map(|r| form(r)["access_token"].clone())
        .collect();
    assert_eq!(again, ["move-a"]);
    app.stop().await.unwrap();
}
