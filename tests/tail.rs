//! `line-adapter tail` against a running service: JSON lines with the
//! fields operators need, filters, and durable consumers that ack.

mod support;

use std::time::Duration;

use support::{SECRET, TestApp, create_channel, post_webhook, text_body};

const BIN: &str = env!("CARGO_BIN_EXE_line-adapter");

async fn tail(app: &TestApp, args: &[&str]) -> (Option<i32>, Vec<serde_json::Value>, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(BIN)
            .arg("tail")
            .arg("--addr")
            .arg(format!("http://{}", app.grpc_addr))
            .args(args)
            .output(),
    )
    .await
    .expect("tail exits within 20 s")
    .unwrap();
    let lines = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is JSON"))
        .collect();
    (
        output.status.code(),
        lines,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_json_lines_and_follows_as_a_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let channel = create_channel(&app, "1234567890").await;
    let client = reqwest::Client::new();
    post_webhook(
        &client,
        &app,
        &channel.id,
        SECRET,
        &text_body("t", 3, "Uabc"),
    )
    .await;

    let (code, lines, stderr) = tail(
        &app,
        &[
            "--from",
            "earliest",
            "--channel",
            &channel.id,
            "--type",
            "message",
            "--max",
            "3",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(lines.len(), 3);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["sequence"], i as u64 + 1);
        assert_eq!(line["channel_id"], channel.id.as_str());
        assert_eq!(line["type"], "message");
        assert_eq!(line["conversation"], "Uabc");
        assert_eq!(line["json"]["message"]["text"], format!("hello {i}"));
    }

    let (code, lines, _) = tail(&app, &["--consumer", "ops", "--ack", "--max", "2"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(lines.len(), 2);
    let (code, lines, _) = tail(&app, &["--consumer", "ops", "--max", "1"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(lines[0]["sequence"], 3, "resumed after the last ack");

    let (code, _, stderr) = tail(&app, &["--type", "nonsense", "--max", "1"]).await;
    assert_eq!(code, Some(64));
    assert!(stderr.contains("--type nonsense"), "{stderr}");
    let (code, _, stderr) = tail(&app, &["--ack", "--max", "1"]).await;
    assert_eq!(code, Some(64));
    assert!(stderr.contains("--consumer"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_sends_as_their_records() {
    let line = support::fake_line::FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = support::start_with_line(dir.path(), &line).await;
    let channel = support::create_channel_with_token(&app).await;
    app.messaging()
        .await
        .push(support::text_push(&channel.id, "Ucustomer", "on our way"))
        .await
        .unwrap();

    let (code, lines, stderr) = tail(
        &app,
        &["--from", "earliest", "--type", "outbound", "--max", "2"],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(lines.len(), 2);
    let states: Vec<_> = lines.iter().map(|l| l["json"]["state"].clone()).collect();
    assert_eq!(states, ["queued", "delivered"]);
    for line in &lines {
        assert_eq!(line["type"], "line-adapter/outbound");
        assert_eq!(line["conversation"], "Ucustomer");
        assert_eq!(line["json"]["route"], "push");
        assert_eq!(line["json"]["messages"][0]["text"], "on our way");
    }
    let (code, _, stderr) = tail(&app, &["--type", "outbund", "--max", "1"]).await;
    assert_eq!(code, Some(64), "a misspelt type is refused: {stderr}");
    assert!(stderr.contains("outbound"), "{stderr}");
    app.stop().await.unwrap();
}
