//! ChannelAdmin's webhook work at LINE: RegisterWebhook (set, test, read
//! back) and GetChannel's drift check, against the scripted stand-in for
//! LINE.

mod support;

use std::path::Path;

use line_adapter::proto::v1 as pb;
use serde_json::{Value, json};
use support::{
    TOKEN, TestApp, create_channel, create_channel_with_token, fake_line::FakeLine, test_settings,
};
use tonic::{Code, Request};
use tonic_types::StatusExt as _;

const ENDPOINT: &str = "/v2/bot/channel/webhook/endpoint";
const TEST: &str = "/v2/bot/channel/webhook/test";
const BASE: &str = "https://line.example.com";

/// The service with LINE at `line` and `public_base_url` as configured.
async fn start(dir: &Path, line: &FakeLine, public_base_url: Option<&str>) -> TestApp {
    TestApp::start_with(test_settings(dir, |layer| {
        layer.line_api_base = Some(line.url());
        layer.line_data_api_base = Some(line.url());
        layer.public_base_url = public_base_url.map(str::to_owned);
    }))
    .await
}

fn json_body(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("a JSON body")
}

/// `message` as a proxy terminating https for `hooks.example.org` sends it.
fn proxied<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    let metadata = request.metadata_mut();
    metadata.insert("x-forwarded-proto", "https".parse().unwrap());
    metadata.insert("x-forwarded-host", "hooks.example.org".parse().unwrap());
    request
}

fn register(channel_id: &str) -> pb::RegisterWebhookRequest {
    pb::RegisterWebhookRequest {
        channel_id: channel_id.into(),
    }
}

#[tokio::test]
async fn register_webhook_sets_tests_and_reads_back_the_endpoint() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &line, Some(BASE)).await;
    let channel = create_channel_with_token(&app).await;
    let url = format!("{BASE}/webhook/line/{}", channel.id);
    // PUT and GET share a path; the fake answers them in arrival order.
    line.script(ENDPOINT, 200, &[], "{}");
    line.script(
        TEST,
        200,
        &[],
        r#"{"success":true,"timestamp":"2020-09-30T05:38:20.031Z","statusCode":200,"reason":"OK","detail":"200"}"#,
    );
    line.script(
        ENDPOINT,
        200,
        &[],
        &json!({"endpoint": url, "active": true}).to_string(),
    );

    let response = app
        .admin()
        .await
        .register_webhook(register(&channel.id))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(response.webhook_url, url);
    assert_eq!(
        response.webhook_url, channel.webhook_url,
        "as GetChannel shows it"
    );
    assert!(response.active);
    let test = response.test.unwrap();
    assert!(test.success);
    assert_eq!(test.status_code, 200);
    assert_eq!(test.reason, "OK");
    assert_eq!(test.detail, "200");
    let time = test.timestamp.unwrap();
    assert_eq!((time.seconds, time.nanos), (1_601_444_300, 31_000_000));

    let requests = line.requests();
    let calls: Vec<_> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        [("PUT", ENDPOINT), ("POST", TEST), ("GET", ENDPOINT)]
    );
    assert_eq!(json_body(&requests[0].body), json!({ "endpoint": url }));
    assert_eq!(json_body(&requests[1].body), json!({ "endpoint": url }));
    assert!(requests[2].body.is_empty());
    for request in &requests[..2] {
        assert_eq!(request.headers["content-type"], "application/json");
    }
    assert!(
        requests
            .iter()
            .all(|r| r.headers["authorization"] == format!("Bearer {TOKEN}"))
    );
}

#[tokio::test]
async fn a_failed_line_test_is_a_normal_answer() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &line, Some(BASE)).await;
    let channel = create_channel_with_token(&app).await;
    line.script(ENDPOINT, 200, &[], "{}");
    line.script(
        TEST,
        200,
        &[],
        r#"{"success":false,"timestamp":"2024-02-29T12:00:00Z","statusCode":500,"reason":"ERROR_STATUS_CODE","detail":"500 Internal Server Error"}"#,
    );
    line.script(
        ENDPOINT,
        200,
        &[],
        &json!({"endpoint": channel.webhook_url, "active": false}).to_string(),
    );

    let response = app
        .admin()
        .await
        .register_webhook(register(&channel.id))
        .await
        .expect("a failed test is an answer, not an error")
        .into_inner();

    assert!(!response.active);
    let test = response.test.unwrap();
    assert!(!test.success);
    assert_eq!(test.status_code, 500);
    assert_eq!(test.reason, "ERROR_STATUS_CODE");
    assert_eq!(test.detail, "500 Internal Server Error");
    assert_eq!(test.timestamp.unwrap().seconds, 1_709_208_000);
    assert_eq!(line.requests().len(), 3);
}

#[tokio::test]
async fn line_refusing_the_endpoint_is_an_error_with_lines_message() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &line, Some(BASE)).await;
    let channel = create_channel_with_token(&app).await;
    line.script(
        ENDPOINT,
        400,
        &[("x-line-request-id", "req-4711")],
        r#"{"message":"The request body has 1 error(s)","details":[{"message":"must be a valid URL","property":"endpoint"}]}"#,
    );

    let status = app
        .admin()
        .await
        .register_webhook(register(&channel.id))
        .await
        .unwrap_err();

    assert_eq!(status.code(), Code::InvalidArgument);
    for part in [
        "RegisterWebhook",
        "LINE answered 400",
        "The request body has 1 error(s)",
        "endpoint: must be a valid URL",
        "req-4711",
    ] {
        assert!(
            status.message().contains(part),
            "{part}: {}",
            status.message()
        );
    }
    let details = status.get_error_details();
    let info = details.error_info().expect("an ErrorInfo");
    assert_eq!(info.metadata["line_status"], "400");
    let requests = line.requests();
    assert_eq!(requests.len(), 1, "nothing is tested after LINE refused");
    assert_eq!(requests[0].method, "PUT");
}

#[tokio::test]
async fn a_webhook_url_that_is_not_https_is_refused_before_calling_line() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &line, Some("http://line.example.com")).await;
    let channel = create_channel_with_token(&app).await;

    let status = app
        .admin()
        .await
        .register_webhook(register(&channel.id))
        .await
        .unwrap_err();

    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("LINE_ADAPTER_PUBLIC_BASE_URL")
            && status.message().contains("https")
            && status.message().contains(&format!(
                "http://line.example.com/webhook/line/{}",
                channel.id
            )),
        "{}",
        status.message()
    );
    let details = status.get_error_details();
    let failure = details
        .precondition_failure()
        .expect("a PreconditionFailure");
    assert_eq!(
        failure.violations[0].subject,
        "LINE_ADAPTER_PUBLIC_BASE_URL"
    );
    assert!(line.requests().is_empty(), "nothing reached LINE");
}

/// Without a configured base the URL comes from the request, exactly as
/// GetWebhookUrl derives it: plain http is refused, https through a proxy
/// is registered.
#[tokio::test]
async fn without_a_configured_base_the_request_decides_as_in_get_webhook_url() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &line, None).await;
    let channel = create_channel_with_token(&app).await;
    let mut admin = app.admin().await;

    let plain = admin
        .register_webhook(register(&channel.id))
        .await
        .unwrap_err();
    assert_eq!(plain.code(), Code::FailedPrecondition);
    assert!(
        plain.message().contains("x-forwarded-proto"),
        "{}",
        plain.message()
    );
    assert!(line.requests().is_empty());

    let expected = admin
        .get_webhook_url(proxied(pb::GetWebhookUrlRequest {
            channel_id: channel.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(expected.base_url_source, "request");
    line.script(ENDPOINT, 200, &[], "{}");
    line.script(
        TEST,
        200,
        &[],
        r#"{"success":true,"timestamp":"2024-02-29T12:00:00Z","statusCode":200,"reason":"OK","detail":"200"}"#,
    );
    line.script(
        ENDPOINT,
        200,
        &[],
        &json!({"endpoint": expected.webhook_url, "active": true}).to_string(),
    );
    let registered = admin
        .register_webhook(proxied(register(&channel.id)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        registered.webhook_url,
        format!("https://hooks.example.org/webhook/line/{}", channel.id)
    );
    assert_eq!(registered.webhook_url, expected.webhook_url);
    assert_eq!(
        json_body(&line.requests()[0].body),
        json!({ "endpoint": expected.webhook_url })
    );
}

#[tokio::test]
async fn register_webhook_needs_a_known_channel_with_a_token() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &line, Some(BASE)).await;
    let tokenless = create_channel(&app, "2000000001").await;
    let mut admin = app.admin().await;
    // No pasted token, and LINE refuses to issue one for its credentials.
    line.script(
        "/v2/oauth/accessToken",
        400,
        &[],
        r#"{"error":"invalid_client","error_description":"invalid client_secret"}"#,
    );

    let missing = admin
        .register_webhook(register("ch_01jd0000000000000000000000"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let malformed = admin.register_webhook(register("nope")).await.unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
    assert!(malformed.message().contains("channel_id"));
    let no_token = admin
        .register_webhook(register(&tokenless.id))
        .await
        .unwrap_err();
    assert_eq!(no_token.code(), Code::FailedPrecondition);
    assert!(
        no_token
            .message()
            .contains("refused to issue a channel access token"),
        "{}",
        no_token.message()
    );
    let paths: Vec<_> = line.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/v2/oauth/accessToken"],
        "nothing else without a token"
    );
}

fn get_channel(channel_id: &str, check_webhook: bool) -> pb::GetChannelRequest {
    pb::GetChannelRequest {
        channel_id: channel_id.into(),
        check_webhook,
    }
}

#[tokio::test]
async fn get_channel_compares_lines_endpoint_with_ours_when_asked() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &line, Some(BASE)).await;
    let channel = create_channel_with_token(&app).await;
    let url = format!("{BASE}/webhook/line/{}", channel.id);
    let mut admin = app.admin().await;

    // Not asked: no check, no LINE call.
    let plain = admin
        .get_channel(get_channel(&channel.id, false))
        .await
        .unwrap()
        .into_inner();
    assert!(plain.webhook_check.is_none());
    assert!(line.requests().is_empty());

    // Matching, but for a trailing slash.
    line.script(
        ENDPOINT,
        200,
        &[],
        &json!({"endpoint": format!("{url}/"), "active": true}).to_string(),
    );
    let matching = admin
        .get_channel(get_channel(&channel.id, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(matching.channel.unwrap().id, channel.id);
    let check = matching.webhook_check.unwrap();
    assert_eq!(check.line_endpoint, format!("{url}/"));
    assert_eq!(check.expected_url, url);
    assert!(check.matches);
    assert!(check.active);
    assert_eq!(check.error, "");

    // Someone pointed LINE elsewhere in the console.
    line.script(
        ENDPOINT,
        200,
        &[],
        r#"{"endpoint":"https://old.example.com/callback","active":false}"#,
    );
    let drifted = admin
        .get_channel(get_channel(&channel.id, true))
        .await
        .unwrap()
        .into_inner()
        .webhook_check
        .unwrap();
    assert_eq!(drifted.line_endpoint, "https://old.example.com/callback");
    assert_eq!(drifted.expected_url, url);
    assert!(!drifted.matches);
    assert!(!drifted.active);
    assert_eq!(drifted.error, "");

    let requests = line.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.method == "GET"
        && r.path == ENDPOINT
        && r.headers["authorization"] == format!("Bearer {TOKEN}")));
}

#[tokio::test]
async fn get_channel_reports_a_webhook_check_it_could_not_make() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &line, Some(BASE)).await;
    let channel = create_channel_with_token(&app).await;
    let tokenless = create_channel(&app, "2000000001").await;
    let mut admin = app.admin().await;

    // LINE drops the connection, also on the one retry.
    line.script(ENDPOINT, 0, &[], "");
    line.script(ENDPOINT, 0, &[], "");
    let unreachable = admin
        .get_channel(get_channel(&channel.id, true))
        .await
        .expect("the channel is still returned")
        .into_inner();
    assert_eq!(unreachable.channel.unwrap().id, channel.id);
    let check = unreachable.webhook_check.unwrap();
    assert!(check.error.contains("GetChannel"), "{}", check.error);
    assert!(check.error.contains("LINE"), "{}", check.error);
    assert_eq!(
        check.expected_url,
        format!("{BASE}/webhook/line/{}", channel.id)
    );
    assert_eq!(check.line_endpoint, "");
    assert!(!check.matches && !check.active);
    assert_eq!(line.requests().len(), 2);

    // LINE answers with an error.
    line.script(
        ENDPOINT,
        401,
        &[],
        r#"{"message":"Authentication failed. Confirm that the access token in the authorization header is valid."}"#,
    );
    let refused = admin
        .get_channel(get_channel(&channel.id, true))
        .await
        .unwrap()
        .into_inner()
        .webhook_check
        .unwrap();
    assert!(
        refused.error.contains("401") && refused.error.contains("Authentication failed"),
        "{}",
        refused.error
    );
    assert!(!refused.matches);

    // No token to ask LINE with.
    // No pasted token, and LINE refuses to issue one for its credentials.
    line.script(
        "/v2/oauth/accessToken",
        400,
        &[],
        r#"{"error":"invalid_client","error_description":"invalid client_secret"}"#,
    );
    let no_token = admin
        .get_channel(get_channel(&tokenless.id, true))
        .await
        .unwrap()
        .into_inner()
        .webhook_check
        .unwrap();
    assert!(
        no_token
            .error
            .contains("refused to issue a channel access token"),
        "{}",
        no_token.error
    );
    assert_eq!(
        no_token.expected_url,
        format!("{BASE}/webhook/line/{}", tokenless.id)
    );
    let paths: Vec<_> = line.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths.len(), 4, "{paths:?}");
    assert_eq!(paths[3], "/v2/oauth/accessToken", "no call without a token");
}
