//! The real `line-adapter` binary as an operator runs it: start-up errors
//! and exit codes, logs that never carry a secret, SIGTERM, and one data
//! dir per process.

mod support;

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use line_adapter::proto::v1::{
    CreateChannelRequest, ListChannelsRequest, UpdateChannelRequest,
    channel_admin_client::ChannelAdminClient,
};
use support::{OTHER_SECRET, SECRET, TOKEN, create_shop};

// Tests that wait on the process synchronously run on a multi-threaded
// runtime: the gRPC client's connection task must keep running meanwhile, or
// it could not answer the server's graceful GOAWAY/PING and the stop would
// wait out the whole grace period.
const BIN: &str = env!("CARGO_BIN_EXE_line-adapter");

/// A running `line-adapter serve` whose output is collected line by line.
struct Process {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Process {
    fn serve(data_dir: &Path, extra_env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(BIN);
        command
            .args([
                "serve",
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--log-format", "json"])
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in support::serve_env(data_dir) {
            command.env(name, value);
        }
        for (name, value) in extra_env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start the binary");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Self { child, lines }
    }

    fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits (bounded) for a JSON log line whose message is `message`.
    fn wait_for(&mut self, message: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let found = self.lines.lock().unwrap().iter().find_map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).ok()?;
                (value["message"] == message).then_some(value)
            });
            if let Some(value) = found {
                return value;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "exited with {status} before `{message}`:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no `{message}` log line:\n{}", self.output());
    }

    fn grpc_url(&mut self) -> String {
        let listening = self.wait_for("listening");
        self.wait_for("ready");
        format!(
            "http://{}",
            listening["grpc"].as_str().expect("grpc address logged")
        )
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait_exit()
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "did not exit:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_carry_secrets_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let master_key = "ab".repeat(32);
    let mut process = Process::serve(dir.path(), &[("LINE_ADAPTER_MASTER_KEY", &master_key)]);
    let url = process.grpc_url();
    let mut admin = ChannelAdminClient::connect(url).await.unwrap();

    let channel = create_shop(&mut admin).await;
    admin
        .update_channel(UpdateChannelRequest {
            channel_id: channel.id.clone(),
            channel_secret: OTHER_SECRET.into(),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["channel_secret".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    // A refused request that carries a secret-like value.
    admin
        .create_channel(CreateChannelRequest {
            display_name: "Shop".into(),
            line_channel_id: "1234567890".into(),
            channel_secret: format!("{SECRET}00"),
            channel_access_token: format!("{TOKEN} x"),
            token_mode: 0,
        })
        .await
        .unwrap_err();
    admin
        .list_channels(ListChannelsRequest::default())
        .await
        .unwrap();
    drop(admin);

    let status = process.terminate();
    assert_eq!(status.code(), Some(0), "{}", process.output());
    let output = process.output();
    assert!(output.contains("SIGTERM received"), "{output}");
    assert!(output.contains("\"stopped\""), "{output}");
    assert!(
        output.contains("channel registered"),
        "the log is not empty: {output}"
    );
    for secret in [SECRET, OTHER_SECRET, TOKEN, &master_key] {
        assert!(
            !output.contains(secret),
            "a secret reached the log:\n{output}"
        );
    }
}

#[test]
fn bad_settings_stop_start_up_with_exit_64_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    /// Flags, environment, and what the error must name.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 10] = [
        (&["--http-addr", "nowhere"], &[], "--http-addr"),
        // A misspelled variable stops start-up as a misspelled file key
        // does, naming the setting it most likely meant.
        (
            &[],
            &[("LINE_ADAPTER_PUBLIC_BASEURL", "https://line.example.com")],
            "did you mean LINE_ADAPTER_PUBLIC_BASE_URL?",
        ),
        // Values in the user's words, not Rust's.
        (
            &["--webhook-body-limit", "-1"],
            &[],
            "`-1` is not a whole number",
        ),
        (
            &["--shutdown-grace-seconds", "soon"],
            &[],
            "`soon` is not a whole number",
        ),
        (
            &["--public-base-url", "line.example.com"],
            &[],
            "needs a scheme, e.g. https://",
        ),
        (
            &[],
            &[("LINE_ADAPTER_LOG_FORMAT", "xml")],
            "LINE_ADAPTER_LOG_FORMAT",
        ),
        (
            &[],
            &[("LINE_ADAPTER_MASTER_KEY", "not-a-key")],
            "LINE_ADAPTER_MASTER_KEY",
        ),
        (
            &["--config", "/nonexistent/line-adapter.toml"],
            &[],
            "/nonexistent/line-adapter.toml",
        ),
        (
            &["--line-rate-limits", "push=fast/s"],
            &[],
            "invalid setting `line_rate_limits` (from flag --line-rate-limits): `push=fast/s`",
        ),
        (
            &[],
            &[("LINE_ADAPTER_LINE_RATE_LIMITS", "pushh=50/s")],
            "did you mean `push`?",
        ),
    ];
    for (args, env, named) in cases {
        let output = Command::new(BIN)
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(64), "{args:?} {env:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{named} not named in: {stderr}");
        assert!(!stderr.contains("not-a-key"), "the key value was echoed");
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "a refused start-up wrote to the data dir"
    );
}

#[test]
fn a_wrong_master_key_is_refused_before_listening_naming_the_key_file() {
    if support::nats_url().is_some() {
        // On NATS there is no master.key file: the key must be configured.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A first start without a key writes master.key into the data dir.
    let mut first = Process::serve(dir.path(), &[]);
    first.grpc_url();
    assert!(first.terminate().success());
    assert!(dir.path().join("master.key").exists());

    let wrong = "00".repeat(32);
    let mut second = Process::serve(dir.path(), &[("LINE_ADAPTER_MASTER_KEY", &wrong)]);
    let status = second.wait_exit();
    let output = second.output();
    assert_eq!(status.code(), Some(64), "{output}");
    assert!(output.contains("master key does not match"), "{output}");
    assert!(
        output.contains("the master.key file in the data dir holds the right key"),
        "{output}"
    );
    assert!(
        !output.contains("\"listening\""),
        "refused after listening: {output}"
    );
    assert!(!output.contains(&wrong), "the key was logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_cannot_open_the_same_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Process::serve(dir.path(), &[]);
    let url = first.grpc_url();

    let mut second = Process::serve(dir.path(), &[]);
    let status = second.wait_exit();
    assert!(!status.success());
    assert!(
        second
            .output()
            .contains("in use by another line-adapter process"),
        "{}",
        second.output()
    );

    // On NATS the key is configured (every replica needs the same one);
    // with sled it was generated into the data dir.
    let key = match support::nats_url() {
        Some(_) => support::NATS_TEST_MASTER_KEY.to_owned(),
        None => std::fs::read_to_string(dir.path().join("master.key")).unwrap(),
    };
    let key = key.trim();
    assert_eq!(key.len(), 44, "a key is base64 of 32 bytes");
    assert!(!first.output().contains(key) && !second.output().contains(key));

    let mut admin = ChannelAdminClient::connect(url).await.unwrap();
    admin
        .create_channel(CreateChannelRequest {
            display_name: "Still works".into(),
            line_channel_id: "1234567890".into(),
            channel_secret: SECRET.into(),
            ..Default::default()
        })
        .await
        .expect("the first process is unaffected");
    assert_eq!(first.terminate().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_cut_off_by_sigkill_completes_once_after_the_restart() {
    use line_adapter::proto::v1::{
        Conversation, Message, PushRequest, TextMessage, conversation::Chat, message::Kind,
        messaging_client::MessagingClient,
    };
    use support::fake_line::FakeLine;

    const PUSH: &str = "/v2/bot/message/push";
    let line = FakeLine::start().await;
    for _ in 0..3 {
        line.script(PUSH, 503, &[], "");
    }
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("LINE_ADAPTER_LINE_API_BASE", line.url()),
        ("LINE_ADAPTER_LINE_DATA_API_BASE", line.url()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let request = |channel_id: &str| PushRequest {
        channel_id: channel_id.into(),
        to: Some(Conversation {
            chat: Some(Chat::UserId("U1".into())),
        }),
        messages: vec![Message {
            kind: Some(Kind::Text(TextMessage {
                text: "survives a crash".into(),
                ..Default::default()
            })),
            ..Default::default()
        }],
        idempotency_key: "crash-1".into(),
        ..Default::default()
    };

    let mut first = Process::serve(dir.path(), &env);
    let url = first.grpc_url();
    let channel = create_shop(&mut ChannelAdminClient::connect(url.clone()).await.unwrap()).await;
    let mut messaging = MessagingClient::connect(url).await.unwrap();
    let cut_off = tokio::spawn({
        let request = request(&channel.id);
        async move { messaging.push(request).await }
    });
    for _ in 0..500 {
        if !line.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !line.requests().is_empty(),
        "the first attempt reached LINE"
    );
    first.child.kill().unwrap(); // SIGKILL: no drain, no flush
    first.wait_exit();
    let _ = cut_off.await;

    let mut second = Process::serve(dir.path(), &env);
    let mut messaging = MessagingClient::connect(second.grpc_url()).await.unwrap();
    let mut delivered = None;
    for _ in 0..200 {
        if let Ok(response) = messaging.push(request(&channel.id)).await {
            let delivery = response.into_inner().delivery.unwrap();
            if delivery.state() == line_adapter::proto::v1::DeliveryState::Delivered {
                delivered = Some(delivery);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = delivered.expect("delivered after the restart");
    let requests = line.requests();
    let keys: std::collections::HashSet<_> = requests
        .iter()
        .map(|r| r.headers["x-line-retry-key"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 1, "one retry key across the crash");
    assert!(keys.contains(&delivered.retry_key));
    assert_eq!(requests.len(), 4, "three 503s, then one accepted request");
    assert_eq!(second.terminate().code(), Some(0));
}

/// Every token flow at debug level: issued tokens, the JWT assertion, the
/// private key and the channel secret never reach the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_flows_leave_no_secret_in_the_log() {
    use line_adapter::proto::v1 as pb;

    let line = support::fake_line::FakeLine::start().await;
    let token_body = |token: &str| {
        format!(
            r#"{{"access_token":"{token}","expires_in":2592000,"token_type":"Bearer","key_id":"key-{token}"}}"#
        )
    };
    line.script(
        "/v2/oauth/accessToken",
        200,
        &[],
        &token_body("issued-v2-token-aaaa"),
    );
    line.script(
        "/v2/bot/info",
        401,
        &[],
        r#"{"message":"Authentication failed"}"#,
    );
    line.script(
        "/v2/oauth/accessToken",
        200,
        &[],
        &token_body("issued-v2-token-bbbb"),
    );
    line.script(
        "/oauth2/v2.1/token",
        200,
        &[],
        &token_body("issued-v21-token-cccc"),
    );
    let dir = tempfile::tempdir().unwrap();
    let master_key = "cd".repeat(32);
    let base = line.url();
    let mut process = Process::serve(
        dir.path(),
        &[
            ("LINE_ADAPTER_MASTER_KEY", &master_key),
            ("LINE_ADAPTER_LINE_API_BASE", &base),
            ("LINE_ADAPTER_LINE_DATA_API_BASE", &base),
        ],
    );
    let mut admin = ChannelAdminClient::connect(process.grpc_url())
        .await
        .unwrap();
    let channel = admin
        .create_channel(CreateChannelRequest {
            display_name: "Shop".into(),
            line_channel_id: "1234567890".into(),
            channel_secret: SECRET.into(),
            channel_access_token: String::new(),
            token_mode: pb::TokenMode::ShortLivedV2 as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    let id = channel.id.clone();
    // 401 → renewed → retried: the fake answers the retry with `{}`.
    let _ = admin
        .get_bot_info(pb::GetBotInfoRequest {
            channel_id: id.clone(),
        })
        .await;
    let pair = admin
        .generate_key_pair(pb::GenerateKeyPairRequest {
            channel_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    admin
        .set_kid(pb::SetKidRequest {
            channel_id: id.clone(),
            kid: "kid-1".into(),
        })
        .await
        .unwrap();
    admin
        .update_channel(UpdateChannelRequest {
            channel_id: id.clone(),
            token_mode: pb::TokenMode::V21Jwt as i32,
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["token_mode".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let rotated = admin
        .rotate_access_token(pb::RotateAccessTokenRequest {
            channel_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let status = admin
        .get_token_status(pb::GetTokenStatusRequest { channel_id: id })
        .await
        .unwrap()
        .into_inner();
    drop(admin);
    let http = process.wait_for("listening")["http"]
        .as_str()
        .unwrap()
        .to_owned();
    let metrics = reqwest::get(format!("http://{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("line_adapter_token_expiry_timestamp_seconds"));
    assert_eq!(process.terminate().code(), Some(0), "{}", process.output());

    let assertion = line
        .requests()
        .into_iter()
        .find(|r| r.path == "/oauth2/v2.1/token")
        .map(|r| {
            url::form_urlencoded::parse(&r.body)
                .find(|(k, _)| k == "client_assertion")
                .unwrap()
                .1
                .into_owned()
        })
        .expect("a v2.1 token was asked for");
    let output = process.output();
    assert!(output.contains("channel access token issued"), "{output}");
    let responses = format!("{pair:?} {rotated:?} {status:?} {metrics}");
    for secret in [
        SECRET,
        &master_key,
        "issued-v2-token-aaaa",
        "issued-v2-token-bbbb",
        "issued-v21-token-cccc",
        &assertion,
        // PKCS#8 DER of an RSA key, base64: what the private key looks like.
        "MIIE",
        "PRIVATE KEY",
    ] {
        assert!(
            !output.contains(secret),
            "{secret} reached the log:\n{output}"
        );
        assert!(
            !responses.contains(secret),
            "{secret} reached a response or /metrics"
        );
    }
}

/// A stop waits for in-flight calls; a second signal does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    use line_adapter::proto::v1 as pb;

    // A LINE that accepts connections and never answers: the push below
    // stays in flight, holding the graceful stop.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut process = Process::serve(
        dir.path(),
        &[
            ("LINE_ADAPTER_LINE_API_BASE", &base),
            ("LINE_ADAPTER_LINE_DATA_API_BASE", &base),
        ],
    );
    let url = process.grpc_url();
    let mut admin = ChannelAdminClient::connect(url.clone()).await.unwrap();
    let channel = create_shop(&mut admin).await;
    let mut messaging = pb::messaging_client::MessagingClient::connect(url)
        .await
        .unwrap();
    let push = tokio::spawn(async move {
        messaging
            .push(pb::PushRequest {
                channel_id: channel.id,
                to: Some(pb::Conversation {
                    chat: Some(pb::conversation::Chat::UserId("U1".into())),
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
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = process.child.id().to_string();
    let kill = || {
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        )
    };
    kill();
    process.wait_for("SIGTERM received, stopping");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        process.child.try_wait().unwrap().is_none(),
        "the first signal waits for the push in flight"
    );
    let second = Instant::now();
    kill();
    let status = process.wait_exit();
    assert_eq!(status.code(), Some(130), "{}", process.output());
    assert!(second.elapsed() < Duration::from_secs(5), "exited at once");
    assert!(process.output().contains("second stop signal: exiting now"));
    push.abort();
    held.abort();
}

/// `line-adapter healthcheck`, the container HEALTHCHECK: 0 while the
/// service is ready, 1 when nothing answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_follows_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let mut process = Process::serve(dir.path(), &[]);
    process.grpc_url();
    let listening = process.wait_for("listening");
    let http = listening["http"]
        .as_str()
        .expect("http address logged")
        .to_owned();
    let check = |url: &str| {
        Command::new(BIN)
            .args(["healthcheck", "--url", url])
            .output()
            .unwrap()
    };
    let ready = check(&format!("http://{http}/readyz"));
    assert!(ready.status.success(), "{ready:?}");
    let port: u16 = http.rsplit(':').next().unwrap().parse().unwrap();
    let from_env = Command::new(BIN)
        .arg("healthcheck")
        .env("LINE_ADAPTER_HTTP_ADDR", format!("0.0.0.0:{port}"))
        .output()
        .unwrap();
    assert!(
        from_env.status.success(),
        "the port comes from LINE_ADAPTER_HTTP_ADDR: {from_env:?}"
    );
    assert_eq!(process.terminate().code(), Some(0));
    let down = check(&format!("http://{http}/readyz"));
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("readyz"));
}

/// Without `line_proxy`, the standard `HTTPS_PROXY` variable is honoured
/// for calls to LINE (deployments that reach api.line.me only through a
/// proxy set it for the whole pod).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_proxy_from_the_environment_is_used_for_line() {
    use line_adapter::proto::v1 as pb;

    let proxy = support::proxy::Proxy::start().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy_url = proxy.url();
    let mut process = Process::serve(
        dir.path(),
        &[
            ("HTTPS_PROXY", &proxy_url),
            ("LINE_ADAPTER_LINE_API_BASE", "https://line-api.invalid"),
        ],
    );
    let mut admin = ChannelAdminClient::connect(process.grpc_url())
        .await
        .unwrap();
    let channel = admin
        .create_channel(CreateChannelRequest {
            display_name: "Shop".into(),
            line_channel_id: "1234567890".into(),
            channel_secret: SECRET.into(),
            channel_access_token: String::new(),
            token_mode: pb::TokenMode::ShortLivedV2 as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    let refused = admin
        .rotate_access_token(pb::RotateAccessTokenRequest {
            channel_id: channel.id,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    drop(admin);
    assert_eq!(process.terminate().code(), Some(0));
    assert_eq!(
        proxy.seen(),
        [("CONNECT".to_owned(), "line-api.invalid:443".to_owned())],
        "the token request asked the proxy for a tunnel to LINE's host"
    );
}

/// `line-adapter check`: settings, store, LINE reachability and every
/// channel's token, offline and while the service runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_each_channel_and_fails_on_any_problem() {
    use line_adapter::proto::v1 as pb;

    let line = support::fake_line::FakeLine::start().await;
    let bot = r#"{"userId":"Ub9952f8c0123456789abcdef01234567","basicId":"@shop","displayName":"Shop","chatMode":"chat","markAsReadMode":"auto"}"#;
    let refused = r#"{"error":"invalid_client","error_description":"invalid client_secret"}"#;
    for _ in 0..2 {
        line.script("/v2/bot/info", 200, &[], bot);
        line.script("/v2/oauth/accessToken", 400, &[], refused);
    }
    let dir = tempfile::tempdir().unwrap();
    let master_key = "ef".repeat(32);
    let base = line.url();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let env = [
        ("LINE_ADAPTER_MASTER_KEY", master_key.as_str()),
        ("LINE_ADAPTER_LINE_API_BASE", base.as_str()),
        ("LINE_ADAPTER_LINE_DATA_API_BASE", base.as_str()),
    ];
    let check = |grpc: &str, env: &[(&str, &str)]| {
        let output = Command::new(BIN)
            .args(["check", "--data-dir", &data_dir, "--grpc-addr", grpc])
            .envs(support::serve_env(dir.path()))
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };

    // On NATS the store is always there to open; with sled a data dir
    // can be empty, and the running service holds its lock.
    let on_nats = support::nats_url().is_some();

    // Before the first start: nothing to check but settings and LINE.
    let (code, report) = check("127.0.0.1:50051", &env);
    assert_eq!(code, Some(0), "{report}");
    assert!(on_nats || report.contains("none yet"), "{report}");
    assert!(report.contains("LINE API"), "{report}");

    let mut process = Process::serve(dir.path(), &env);
    let url = process.grpc_url();
    let mut admin = ChannelAdminClient::connect(url.clone()).await.unwrap();
    let pasted = create_shop(&mut admin).await;
    let issued = admin
        .create_channel(CreateChannelRequest {
            display_name: "Broken".into(),
            line_channel_id: "1234567891".into(),
            channel_secret: SECRET.into(),
            channel_access_token: String::new(),
            token_mode: pb::TokenMode::ShortLivedV2 as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    drop(admin);

    // While the service holds the store: through its gRPC API.
    let grpc = url.trim_start_matches("http://").to_owned();
    let (code, report) = check(&grpc, &env);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        on_nats || report.contains("in use by the running service"),
        "{report}"
    );
    let ok_line = format!("channel {} \"Shop\"", pasted.id);
    let failed_line = format!("channel {} \"Broken\"", issued.id);
    let line_of = |report: &str, start: &str| {
        report
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no `{start}` in {report}"))
            .to_owned()
    };
    assert!(line_of(&report, &ok_line).contains("ok, bot \"Shop\" @shop"));
    assert!(line_of(&report, &failed_line).contains("FAILED"));
    assert!(line_of(&report, &failed_line).contains("invalid client_secret"));
    assert!(report.contains("result: 1 check FAILED"), "{report}");
    assert_eq!(process.terminate().code(), Some(0));

    // Offline: the store opened directly, the same verdicts.
    let (code, report) = check("127.0.0.1:50051", &env);
    assert_eq!(code, Some(1), "{report}");
    assert!(line_of(&report, &ok_line).contains("ok, bot \"Shop\" @shop"));
    assert!(line_of(&report, &failed_line).contains("invalid client_secret"));
    for secret in [SECRET, TOKEN, master_key.as_str()] {
        assert!(!report.contains(secret), "a secret in the report");
    }

    // LINE unreachable: named, and a failure.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (code, report) = check(
        "127.0.0.1:50051",
        &[
            ("LINE_ADAPTER_MASTER_KEY", master_key.as_str()),
            ("LINE_ADAPTER_LINE_API_BASE", nowhere.as_str()),
            ("LINE_ADAPTER_LINE_DATA_API_BASE", base.as_str()),
        ],
    );
    assert_eq!(code, Some(1), "{report}");
    assert!(
        line_of(&report, &format!("LINE API {nowhere}")).contains("FAILED"),
        "{report}"
    );
}

/// Spans collected by an in-process OTLP collector.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<(String, opentelemetry_proto::tonic::trace::v1::Span)>>>,
}

#[async_trait::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService
    for Collector
{
    async fn export(
        &self,
        request: tonic::Request<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
        >,
    ) -> Result<
        tonic::Response<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse,
        >,
        tonic::Status,
    > {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .map(|v| format!("{:?}", v.value))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push((service.clone(), span));
                }
            }
        }
        Ok(tonic::Response::new(Default::default()))
    }
}

/// Traces: the gRPC server span continues the caller's `traceparent`, calls
/// to LINE are its children and carry `traceparent` themselves, and a
/// webhook starts a trace whose `traceparent` travels with its events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_follow_calls_into_line_and_webhooks_into_events() {
    use line_adapter::proto::v1 as pb;
    use opentelemetry_proto::tonic::{
        collector::trace::v1::trace_service_server::TraceServiceServer, trace::v1::span::SpanKind,
    };
    use tokio_stream::StreamExt as _;

    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let line = support::fake_line::FakeLine::start().await;
    line.script(
        "/v2/bot/info",
        200,
        &[],
        r#"{"userId":"Ub9952f8c0123456789abcdef01234567","basicId":"@shop","displayName":"Shop","chatMode":"chat","markAsReadMode":"auto"}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let base = line.url();
    let mut process = Process::serve(
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("LINE_ADAPTER_LINE_API_BASE", base.as_str()),
            ("LINE_ADAPTER_LINE_DATA_API_BASE", base.as_str()),
        ],
    );
    let url = process.grpc_url();
    let http = process.wait_for("listening")["http"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut admin = ChannelAdminClient::connect(url.clone()).await.unwrap();
    let channel = create_shop(&mut admin).await;

    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const CALLER_SPAN: &str = "b7ad6b7169203331";
    let mut call = tonic::Request::new(pb::GetBotInfoRequest {
        channel_id: channel.id.clone(),
    });
    call.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE}-{CALLER_SPAN}-01").parse().unwrap(),
    );
    admin.get_bot_info(call).await.unwrap();

    // A webhook, read back from Subscribe with its traceparent.
    let body = support::text_body("traced", 1, "U1");
    let response = reqwest::Client::new()
        .post(format!("http://{http}/webhook/line/{}", channel.id))
        .header(
            "x-line-signature",
            line_adapter::signature::sign(SECRET, &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut messaging = pb::messaging_client::MessagingClient::connect(url)
        .await
        .unwrap();
    let mut stream = messaging
        .subscribe(pb::SubscribeRequest {
            start: Some(pb::subscribe_request::Start::Position(
                pb::StartPosition::Earliest as i32,
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let event = loop {
        let item = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event")
            .unwrap()
            .unwrap();
        if let Some(pb::subscribe_response::Kind::Event(event)) = item.kind {
            break event;
        }
    };
    let parts: Vec<&str> = event.traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "a W3C traceparent: {:?}", event.traceparent);
    let (webhook_trace, webhook_span) = (parts[1].to_owned(), parts[2].to_owned());
    drop(stream);
    drop(messaging);
    drop(admin);
    // Stopping flushes what is still buffered.
    assert_eq!(process.terminate().code(), Some(0), "{}", process.output());
    server.abort();

    let spans = collector.spans.lock().unwrap().clone();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let find = |name: &str| {
        spans
            .iter()
            .find(|(_, s)| s.name == name)
            .unwrap_or_else(|| {
                panic!(
                    "no `{name}` span in {:?}",
                    spans.iter().map(|(_, s)| &s.name).collect::<Vec<_>>()
                )
            })
            .clone()
    };
    let (service, server_span) = find("weiyu.line.v1.ChannelAdmin/GetBotInfo");
    assert!(service.contains("line-adapter"), "{service}");
    assert_eq!(hex(&server_span.trace_id), TRACE);
    assert_eq!(hex(&server_span.parent_span_id), CALLER_SPAN);
    assert_eq!(server_span.kind, SpanKind::Server as i32);
    let (_, client_span) = find("LINE /v2/bot/info");
    assert_eq!(hex(&client_span.trace_id), TRACE);
    assert_eq!(client_span.parent_span_id, server_span.span_id);
    assert_eq!(client_span.kind, SpanKind::Client as i32);
    let sent = line
        .requests()
        .into_iter()
        .find(|r| r.path == "/v2/bot/info")
        .unwrap();
    assert_eq!(
        sent.headers["traceparent"].to_str().unwrap(),
        format!("00-{TRACE}-{}-01", hex(&client_span.span_id)),
        "LINE saw the client span as parent"
    );
    let (_, webhook) = find("POST /webhook/line/:channel");
    assert_eq!(hex(&webhook.trace_id), webhook_trace);
    assert_eq!(hex(&webhook.span_id), webhook_span);
    assert!(
        webhook.parent_span_id.is_empty(),
        "webhooks start their own trace"
    );
    let everything = format!("{spans:?}");
    for secret in [SECRET, TOKEN] {
        assert!(!everything.contains(secret), "a secret in span data");
    }
}

/// SIGTERM in the middle of a webhook load: the process exits 0, the open
/// Subscribe stream ends with UNAVAILABLE saying where to resume, and after
/// a restart every webhook answered 200 is in the log exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_webhook_load_loses_nothing_answered() {
    use line_adapter::proto::v1 as pb;
    use std::collections::HashMap;
    use tokio_stream::StreamExt as _;

    let dir = tempfile::tempdir().unwrap();
    let master_key = "a1".repeat(32);
    let env = [("LINE_ADAPTER_MASTER_KEY", master_key.as_str())];
    let mut process = Process::serve(dir.path(), &env);
    let url = process.grpc_url();
    let http = process.wait_for("listening")["http"]
        .as_str()
        .unwrap()
        .to_owned();
    let channel = create_shop(&mut ChannelAdminClient::connect(url.clone()).await.unwrap()).await;
    let subscribe = |url: String| async move {
        pb::messaging_client::MessagingClient::connect(url)
            .await
            .unwrap()
            .subscribe(pb::SubscribeRequest {
                start: Some(pb::subscribe_request::Start::Position(
                    pb::StartPosition::Earliest as i32,
                )),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    };
    let mut live = subscribe(url.clone()).await;
    let ended = tokio::spawn(async move {
        loop {
            match live.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return Some(status),
                None => return None,
            }
        }
    });

    // Eight posters, each sending one-event bodies until the door closes.
    let answered: Arc<Mutex<Vec<String>>> = Arc::default();
    let posters: Vec<_> = (0..8)
        .map(|poster| {
            let (http, id, answered) = (http.clone(), channel.id.clone(), answered.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for n in 0.. {
                    let prefix = format!("load-{poster}-{n}");
                    let body = support::text_body(&prefix, 1, "U1");
                    let sent = client
                        .post(format!("http://{http}/webhook/line/{id}"))
                        .header(
                            "x-line-signature",
                            line_adapter::signature::sign(SECRET, &body),
                        )
                        .body(body)
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status() == 200 => {
                            answered.lock().unwrap().push(format!("{prefix}-0"));
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let status = process.terminate();
    assert_eq!(status.code(), Some(0), "{}", process.output());
    for poster in posters {
        poster.await.unwrap();
    }
    let end = ended.await.unwrap().expect("the stream ends with a status");
    assert_eq!(end.code(), tonic::Code::Unavailable, "{end:?}");
    assert!(end.message().contains("resume"), "{}", end.message());
    let answered = answered.lock().unwrap().clone();
    assert!(answered.len() > 20, "load flowed: {}", answered.len());

    // After a restart: every answered webhook exactly once, gap-free.
    let mut process = Process::serve(dir.path(), &env);
    let url = process.grpc_url();
    let mut replay = subscribe(url).await;
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut last_sequence = 0;
    while let Ok(Some(Ok(item))) =
        tokio::time::timeout(Duration::from_millis(1500), replay.next()).await
    {
        if let Some(pb::subscribe_response::Kind::Event(event)) = item.kind {
            assert_eq!(event.sequence, last_sequence + 1, "gap-free");
            last_sequence = event.sequence;
            *seen.entry(event.webhook_event_id).or_default() += 1;
        }
    }
    for id in &answered {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "{id} answered 200 but stored {:?} times",
            seen.get(id)
        );
    }
    assert!(seen.values().all(|&n| n == 1), "nothing stored twice");
    drop(replay);
    assert_eq!(process.terminate().code(), Some(0));
}
