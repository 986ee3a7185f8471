//! A damaged or foreign store at start-up: the real binary exits 65
//! (EX_DATAERR) with a message naming the file and what to do, never a
//! panic, and a foreign file is left as it was.

mod support;

use std::{path::Path, process::Command, time::Duration};

use support::{SECRET, TestApp, create_channel, post_webhook, test_settings};

const BIN: &str = env!("CARGO_BIN_EXE_line-adapter");

/// A data dir with a sled store that holds a channel and events.
async fn written_store(data_dir: &Path) {
    let app = TestApp::start_with(test_settings(data_dir, |layer| {
        layer.store = Some("sled".into());
    }))
    .await;
    let channel = create_channel(&app, "1234567890").await;
    let client = reqwest::Client::new();
    for n in 0..20 {
        let body = support::text_body(&format!("e{n}"), 5, "U0123456789abcdef0123456789abcdef");
        assert_eq!(
            post_webhook(&client, &app, &channel.id, SECRET, &body)
                .await
                .status(),
            200
        );
    }
    app.stop().await.unwrap();
}

/// Runs `serve` on `data_dir` (it must stop by itself) and returns its
/// exit code and stderr.
fn serve(data_dir: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"])
        .env_remove("LINE_ADAPTER_STORE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("serve on a damaged store did not stop by itself");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_refused(data_dir: &Path, case: &str) -> String {
    let (code, stderr) = serve(data_dir);
    let file = data_dir.join("store");
    assert_eq!(
        code,
        Some(65),
        "[{case}] exit 65 (EX_DATAERR); stderr: {stderr}"
    );
    assert!(
        stderr.contains(&file.display().to_string()),
        "[{case}] names the file: {stderr}"
    );
    assert!(
        stderr.contains("Restore the data dir from a backup"),
        "[{case}] says what to do: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "[{case}] no panic: {stderr}");
    eprintln!(
        "[{case}] {}",
        stderr
            .lines()
            .find(|l| l.starts_with("line-adapter:"))
            .unwrap_or("")
    );
    stderr
}

#[tokio::test]
async fn a_truncated_data_file_exits_65_naming_it() {
    for (case, length) in [("cut to 100 bytes", 100), ("cut to 10 bytes", 10)] {
        let dir = tempfile::tempdir().unwrap();
        written_store(dir.path()).await;
        let db = dir.path().join("store/db");
        let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
        file.set_len(length).unwrap();
        drop(file);
        assert_refused(dir.path(), case);
    }
}

#[tokio::test]
async fn a_data_file_from_another_program_exits_65_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    written_store(dir.path()).await;
    let db = dir.path().join("store/db");
    // An SQLite database where sled's file belongs.
    let mut foreign = b"SQLite format 3\0".to_vec();
    foreign.extend((0..64 * 1024).map(|i| (i * 7 % 251) as u8));
    std::fs::write(&db, &foreign).unwrap();
    assert_refused(dir.path(), "an SQLite file");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        foreign,
        "the file is left as it was"
    );

    // A damaged sled settings file.
    let dir = tempfile::tempdir().unwrap();
    written_store(dir.path()).await;
    std::fs::write(dir.path().join("store/conf"), [0xde_u8; 100]).unwrap();
    assert_refused(dir.path(), "a damaged conf");
}

#[tokio::test]
async fn an_intact_store_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    written_store(dir.path()).await;
    let app = TestApp::start_with(test_settings(dir.path(), |layer| {
        layer.store = Some("sled".into());
    }))
    .await;
    assert_eq!(
        support::metric(&app, "line_adapter_event_log_head_sequence").await,
        Some(100.0)
    );
    app.stop().await.unwrap();
}
