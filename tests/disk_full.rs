//! A full disk: the data dir on a small tmpfs the test mounts (as root on
//! Linux; skipped with a printed reason elsewhere), filled under webhook
//! load. Nothing unstored is answered 200, readiness goes false at once,
//! the logs stay short, and freeing space resumes everything without a
//! restart.

mod support;

use std::{
    collections::HashSet,
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use support::{SECRET, TestApp, create_channel, from_earliest, next_events, post_webhook};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const MIB: u64 = 1024 * 1024;
/// Size of the mounted volume.
const VOLUME_MIB: u64 = 32;

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (with the reason printed) where mounting is not permitted.
    fn mount(size_mib: u64) -> Option<Self> {
        if !cfg!(target_os = "linux") {
            eprintln!("skipped: mounting a tmpfs needs Linux");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::piped())
            .output();
        match status {
            Ok(output) if output.status.success() => Some(Self { dir }),
            Ok(output) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs (needs root): {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                None
            }
            Err(err) => {
                eprintln!("skipped: cannot run mount: {err}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn free_bytes(path: &Path) -> u64 {
    let stat = rustix::fs::statvfs(path).unwrap();
    stat.f_bavail * stat.f_frsize
}

/// Log lines at WARN and above, captured from the service in this test's
/// (current-thread) runtime.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    (captured, guard)
}

/// Fills `dir` with a file written in `chunk`s every `pause` until less
/// than `leave` bytes are free (0: to ENOSPC) or `stop` is set; returns
/// the file.
fn fill(dir: &Path, chunk: usize, pause: Duration, leave: u64, stop: Arc<AtomicBool>) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0x5a_u8; chunk];
    while !stop.load(Ordering::SeqCst) && free_bytes(dir) >= leave.max(1) {
        if file
            .write_all(&block)
            .and_then(|()| file.sync_data())
            .is_err()
        {
            break;
        }
        std::thread::sleep(pause);
    }
    path
}

async fn readyz(client: &reqwest::Client, app: &TestApp) -> u16 {
    client
        .get(format!("{}/readyz", app.http_base))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// gRPC health of Messaging (readiness); the server's overall status ("")
/// is liveness.
async fn grpc_health(app: &TestApp) -> ServingStatus {
    grpc_health_of(app, "weiyu.line.v1.Messaging").await
}

async fn grpc_health_of(app: &TestApp, service: &str) -> ServingStatus {
    HealthClient::new(app.channel().await)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status()
}

/// Webhooks answered so far: (id, status).
type Answers = Arc<Mutex<Vec<(String, u16)>>>;

/// Posts one-event webhooks with fresh ids from `workers` tasks until
/// `stop` is set.
fn webhook_load(
    app: &TestApp,
    channel_id: &str,
    workers: usize,
    stop: Arc<AtomicBool>,
    answers: Answers,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..workers)
        .map(|worker| {
            let stop = stop.clone();
            let answers = answers.clone();
            let base = app.http_base.clone();
            let channel_id = channel_id.to_owned();
            let url = format!("{base}/webhook/line/{channel_id}");
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for n in 0u64.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let prefix = format!("w{worker}x{n}");
                    let body = support::text_body(&prefix, 1, "U0123456789abcdef0123456789abcdef");
                    let status = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header(
                            "x-line-signature",
                            line_adapter::signature::sign(SECRET, &body),
                        )
                        .body(body)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    answers
                        .lock()
                        .unwrap()
                        .push((format!("{prefix}-0"), status));
                    if status != 200 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect()
}

/// Every id answered 200 is in the log exactly once, and the log is
/// gap-free from 1.
async fn assert_log_holds(app: &TestApp, answers: &[(String, u16)]) {
    let acknowledged: HashSet<&str> = answers
        .iter()
        .filter(|(_, status)| *status == 200)
        .map(|(id, _)| id.as_str())
        .collect();
    let head = app_head(app).await;
    let mut stream = support::subscribe(app, from_earliest()).await;
    let events = next_events(&mut stream, head as usize, Duration::from_secs(20)).await;
    let mut seen = HashSet::new();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.sequence, i as u64 + 1, "gap-free from 1");
        assert!(
            seen.insert(event.webhook_event_id.clone()),
            "{} stored twice",
            event.webhook_event_id
        );
    }
    for id in &acknowledged {
        assert!(
            seen.contains(*id),
            "{id} was answered 200 but is not stored"
        );
    }
}

async fn app_head(app: &TestApp) -> u64 {
    support::metric(app, "line_adapter_event_log_head_sequence")
        .await
        .unwrap() as u64
}

/// A push is refused with UNAVAILABLE before anything is accepted.
async fn assert_push_refused(app: &TestApp, channel_id: &str) {
    let refused = app
        .messaging()
        .await
        .push(support::text_push(
            channel_id,
            "U0123456789abcdef0123456789abcdef",
            "hi",
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
}

fn settings(data_dir: &Path, min_free_bytes: u64) -> line_adapter::settings::Settings {
    support::test_settings(data_dir, |layer| {
        layer.store = Some("sled".into());
        layer.store_min_free_bytes = Some(min_free_bytes);
        layer.store_min_free_percent = Some(0);
    })
}

#[tokio::test]
async fn a_volume_filled_under_load_refuses_then_resumes_by_itself() {
    let Some(volume) = Tmpfs::mount(VOLUME_MIB) else {
        return;
    };
    let (logs, _guard) = capture_logs();
    let data_dir = volume.path().join("data");
    let app = TestApp::start_with(settings(&data_dir, 4 * MIB)).await;
    let channel = create_channel(&app, "1234567890").await;
    let client = reqwest::Client::new();
    let warn_lines_before = logs.lines().len();

    let stop_load = Arc::new(AtomicBool::new(false));
    let answers: Answers = Arc::default();
    let load = webhook_load(&app, &channel.id, 4, stop_load.clone(), answers.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Fill the volume at about 6 MiB/s, to 1 MiB free (a quarter of the
    // watermark). Not to the last byte: this test is about the watermark
    // (the next one fills to ENOSPC).
    let stop_fill = Arc::new(AtomicBool::new(false));
    let filler = std::thread::spawn({
        let dir = volume.path().to_owned();
        let stop = stop_fill.clone();
        move || fill(&dir, 64 * 1024, Duration::from_millis(10), MIB, stop)
    });
    // Readiness goes false within 1 s of the space falling below the
    // watermark.
    let mut below_since = None;
    let not_ready_after = loop {
        let free = free_bytes(volume.path());
        if free < 4 * MIB && below_since.is_none() {
            below_since = Some(Instant::now());
        }
        if readyz(&client, &app).await == 503 {
            break below_since.map(|at| at.elapsed());
        }
        assert!(
            below_since.is_none_or(|at| at.elapsed() < Duration::from_secs(1)),
            "still ready 1 s after the free space fell below the watermark"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    eprintln!("not ready {not_ready_after:?} after the free space fell below the watermark");
    let filler = tokio::task::spawn_blocking(move || filler.join().unwrap())
        .await
        .unwrap();
    assert!(
        free_bytes(volume.path()) < MIB,
        "the volume is full to its last MiB"
    );
    assert_eq!(grpc_health(&app).await, ServingStatus::NotServing);

    // Full for 2 s under load: nothing answered 200.
    let full_from = answers.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let while_full: Vec<u16> = answers.lock().unwrap()[full_from..]
        .iter()
        .map(|(_, status)| *status)
        .collect();
    assert!(!while_full.is_empty(), "webhooks kept arriving");
    assert!(
        while_full.iter().all(|s| *s == 503),
        "while full every webhook is refused with 503: {:?}",
        while_full.iter().collect::<HashSet<_>>()
    );

    // Free the space: within 5 s webhooks are stored again, no restart.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let resumed_after = loop {
        assert!(
            freed.elapsed() < Duration::from_secs(5),
            "webhooks are not 200 again within 5 s"
        );
        let last = answers.lock().unwrap().last().cloned();
        if last.is_some_and(|(_, status)| status == 200) {
            break freed.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!("webhooks 200 again {resumed_after:?} after space was freed");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_load.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }
    stop_fill.store(true, Ordering::SeqCst);
    assert_eq!(readyz(&client, &app).await, 200);
    assert_eq!(grpc_health(&app).await, ServingStatus::Serving);

    let answers = answers.lock().unwrap().clone();
    let ok = answers.iter().filter(|(_, s)| *s == 200).count();
    let refused = answers.iter().filter(|(_, s)| *s == 503).count();
    eprintln!(
        "{} webhooks: {ok} stored (200), {refused} refused (503)",
        answers.len()
    );
    assert!(
        answers.iter().all(|(_, s)| *s == 200 || *s == 503),
        "only 200 and 503"
    );
    assert_log_holds(&app, &answers).await;

    let lines = logs.lines()[warn_lines_before..].to_vec();
    eprintln!("{} WARN/ERROR lines during the fill", lines.len());
    assert!(
        lines.len() <= 5,
        "a handful of log lines at most, got {}: {lines:#?}",
        lines.len()
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_watermark_above_the_free_space_refuses_before_enospc() {
    let Some(volume) = Tmpfs::mount(VOLUME_MIB) else {
        return;
    };
    let (logs, _guard) = capture_logs();
    let data_dir = volume.path().join("data");
    // Free space on the volume now, minus what sled takes: the watermark
    // sits a few MiB below it, and filling stops well above ENOSPC.
    let app = TestApp::start_with(settings(&data_dir, 8 * MIB)).await;
    let channel = create_channel(&app, "1234567890").await;
    let client = reqwest::Client::new();
    let body = support::text_body("before", 1, "U0123456789abcdef0123456789abcdef");
    assert_eq!(
        post_webhook(&client, &app, &channel.id, SECRET, &body)
            .await
            .status(),
        200
    );
    let warn_lines_before = logs.lines().len();

    // Leave 6 MiB free: below the watermark, far from full.
    let free = free_bytes(volume.path());
    let ballast = volume.path().join("ballast");
    std::fs::write(&ballast, vec![0_u8; (free - 6 * MIB) as usize]).unwrap();
    let started = Instant::now();
    while readyz(&client, &app).await != 503 {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "not ready within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("not ready {:?} after the ballast", started.elapsed());
    assert_eq!(grpc_health(&app).await, ServingStatus::NotServing);
    assert_eq!(
        grpc_health_of(&app, "").await,
        ServingStatus::Serving,
        "still alive: a restart frees nothing"
    );
    assert_eq!(
        client
            .get(format!("{}/healthz", app.http_base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let body = support::text_body("low", 1, "U0123456789abcdef0123456789abcdef");
    let response = post_webhook(&client, &app, &channel.id, SECRET, &body).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    assert_push_refused(&app, &channel.id).await;
    assert_eq!(
        support::metric(&app, "line_adapter_store_low_space").await,
        Some(1.0)
    );
    assert_eq!(
        support::metric(
            &app,
            "line_adapter_store_low_space_refused_total{what=\"webhook\"}"
        )
        .await,
        Some(1.0)
    );
    assert!(free_bytes(volume.path()) > 5 * MIB, "never near ENOSPC");

    std::fs::remove_file(&ballast).unwrap();
    let freed = Instant::now();
    loop {
        let response = post_webhook(&client, &app, &channel.id, SECRET, &body).await;
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 503);
        assert!(
            freed.elapsed() < Duration::from_secs(5),
            "not 200 within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("200 again {:?} after freeing", freed.elapsed());
    assert_eq!(readyz(&client, &app).await, 200);
    assert_eq!(
        support::metric(&app, "line_adapter_store_low_space").await,
        Some(0.0)
    );
    assert_log_holds(&app, &[("before-0".into(), 200), ("low-0".into(), 200)]).await;
    let lines = logs.lines()[warn_lines_before..].to_vec();
    assert_eq!(lines.len(), 1, "one WARN line: {lines:#?}");
    assert!(lines[0].contains("below the watermark"), "{lines:?}");
    app.stop().await.unwrap();
}

/// The watermark off, so that writes meet ENOSPC: the store is reopened
/// in place once space is freed, with no restart.
#[tokio::test]
async fn a_write_that_meets_enospc_is_logged_as_counts_and_recovered_in_process() {
    let Some(volume) = Tmpfs::mount(VOLUME_MIB) else {
        return;
    };
    let (logs, _guard) = capture_logs();
    let data_dir = volume.path().join("data");
    // The watermark off: the webhooks meet ENOSPC themselves.
    let app = TestApp::start_with(settings(&data_dir, 0)).await;
    let channel = create_channel(&app, "1234567890").await;
    // A live stream from before the fill: it outlives the reopen.
    let mut live = support::subscribe(&app, from_earliest()).await;
    let warn_lines_before = logs.lines().len();
    let stop_load = Arc::new(AtomicBool::new(false));
    let answers: Answers = Arc::default();
    let load = webhook_load(&app, &channel.id, 4, stop_load.clone(), answers.clone());
    let filler = {
        let dir = volume.path().to_owned();
        tokio::task::spawn_blocking(move || {
            fill(&dir, 1024 * 1024, Duration::ZERO, 0, Arc::default())
        })
        .await
        .unwrap()
    };
    // Not ready within 1 s of the first failed webhook.
    let client = reqwest::Client::new();
    let first_failure = loop {
        if answers.lock().unwrap().iter().any(|(_, s)| *s != 200) {
            break Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    while readyz(&client, &app).await != 503 {
        assert!(
            first_failure.elapsed() < Duration::from_secs(1),
            "still ready 1 s after a webhook could not be stored"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "not ready {:?} after the first failed webhook",
        first_failure.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_load.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }
    let answers = answers.lock().unwrap().clone();
    assert!(
        answers.iter().all(|(_, s)| *s == 200 || *s == 503),
        "only 200 and 503: {:?}",
        answers.iter().map(|(_, s)| *s).collect::<HashSet<_>>()
    );
    let failed = answers.iter().filter(|(_, s)| *s != 200).count();
    assert!(failed > 100, "the full disk failed webhooks: {failed}");
    let lines = logs.lines()[warn_lines_before..].to_vec();
    let store_failed = lines
        .iter()
        .filter(|l| l.contains("storing webhook events failed"))
        .count();
    eprintln!(
        "{failed} webhooks failed; {store_failed} 'storing webhook events failed' lines, {} WARN/ERROR lines in all",
        lines.len()
    );
    assert!(
        (1..=2).contains(&store_failed),
        "the first failure in full, then counts: {lines:#?}"
    );
    assert!(lines.len() <= 8, "a handful of lines: {lines:#?}");
    // Full, writes failing for more than LIVENESS_AFTER would allow for a
    // failing disk: still alive, since a restart frees no space.
    assert_eq!(
        client
            .get(format!("{}/healthz", app.http_base))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "a full disk is not a reason to restart"
    );
    assert_push_refused(&app, &channel.id).await;
    assert_eq!(
        support::metric(&app, "line_adapter_store_full").await,
        Some(1.0)
    );
    assert_eq!(
        support::metric(&app, "line_adapter_store_writes_failing").await,
        Some(1.0)
    );

    // Freed: the store is reopened in place and takes writes within 5 s.
    std::fs::remove_file(filler).unwrap();
    let freed = Instant::now();
    let mut after = Vec::new();
    loop {
        assert!(
            freed.elapsed() < Duration::from_secs(5),
            "webhooks are not 200 again within 5 s of freeing"
        );
        let id = format!("after{}", after.len());
        let body = support::text_body(&id, 1, "U0123456789abcdef0123456789abcdef");
        let status = post_webhook(&client, &app, &channel.id, SECRET, &body)
            .await
            .status()
            .as_u16();
        after.push((format!("{id}-0"), status));
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "refused, not failed, while recovering");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("200 again {:?} after freeing", freed.elapsed());
    let started = Instant::now();
    while readyz(&client, &app).await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "ready again once webhooks are stored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // gRPC health follows readiness at its next look (every 250 ms).
    while grpc_health(&app).await != ServingStatus::Serving {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "gRPC health follows /readyz"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(grpc_health_of(&app, "").await, ServingStatus::Serving);
    assert!(
        support::metric(&app, "line_adapter_store_reopens_total")
            .await
            .is_some_and(|n| n >= 1.0),
        "recovered by reopening the store"
    );
    assert_eq!(
        support::metric(&app, "line_adapter_store_full").await,
        Some(0.0)
    );
    let all: Vec<_> = answers.iter().cloned().chain(after).collect();
    assert_log_holds(&app, &all).await;
    let head = app_head(&app).await;
    let streamed = next_events(&mut live, head as usize, Duration::from_secs(20)).await;
    assert_eq!(
        streamed.last().map(|e| e.webhook_event_id.as_str()),
        all.last().map(|(id, _)| id.as_str()),
        "the stream opened before the fill goes on after the reopen"
    );
    let lines = logs.lines()[warn_lines_before..].to_vec();
    assert!(
        lines.len() <= 12,
        "a handful of lines, the recovery included: {lines:#?}"
    );
    app.stop().await.unwrap();
}

/// Media waits for room above the watermark instead of taking the store's
/// space: with 1.5 MiB free above it, a 2 MiB video is not written (the
/// log keeps its space, webhooks stay 200); freed, it is fetched and kept.
#[tokio::test]
async fn media_waits_for_room_and_never_takes_the_stores_space() {
    let Some(volume) = Tmpfs::mount(VOLUME_MIB) else {
        return;
    };
    let line = support::fake_line::FakeLine::start().await;
    let video = vec![0x42_u8; 2 * MIB as usize];
    // Asked again once there is room: one answer per request.
    for _ in 0..3 {
        line.script(
            "/v2/bot/message/2001/content",
            200,
            &[("content-type", "video/mp4")],
            std::str::from_utf8(&video).unwrap(),
        );
    }
    let data_dir = volume.path().join("data");
    let watermark = 8 * MIB;
    let app = TestApp::start_with(support::test_settings(&data_dir, |layer| {
        layer.store = Some("sled".into());
        layer.store_min_free_bytes = Some(watermark);
        layer.store_min_free_percent = Some(0);
        layer.line_api_base = Some(line.url());
        layer.line_data_api_base = Some(line.url());
    }))
    .await;
    let channel = support::create_channel_with_token(&app).await;
    let client = reqwest::Client::new();

    // Leave 1.5 MiB above the watermark: ready, but no room for the video.
    let ballast = volume.path().join("ballast");
    let free = free_bytes(volume.path());
    std::fs::write(
        &ballast,
        vec![0_u8; (free - watermark - 3 * MIB / 2) as usize],
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(readyz(&client, &app).await, 200, "above the watermark");
    let event = serde_json::json!({
        "type": "message", "mode": "active", "timestamp": 1_700_000_000_000_i64,
        "source": {"type": "user", "userId": "U1"}, "webhookEventId": "ev-2001",
        "deliveryContext": {"isRedelivery": false}, "replyToken": "r-2001",
        "message": {"id": "2001", "type": "video", "contentProvider": {"type": "line"}}
    });
    let body =
        serde_json::to_vec(&serde_json::json!({"destination": "U0", "events": [event]})).unwrap();
    let response = post_webhook(&client, &app, &channel.id, SECRET, &body).await;
    assert_eq!(response.status(), 200);

    // Two seconds on: not written, the store's space intact, webhooks go on.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let media_file = data_dir.join("media").join(&channel.id).join("2001");
    assert!(!media_file.exists(), "no room: the video is not written");
    assert!(
        free_bytes(volume.path()) >= watermark,
        "media took none of the store's space"
    );
    let partials = std::fs::read_dir(data_dir.join("media").join(&channel.id))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "part"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(partials, 0, "no partial file left behind");
    let body = support::text_body("meanwhile", 1, "U0123456789abcdef0123456789abcdef");
    assert_eq!(
        post_webhook(&client, &app, &channel.id, SECRET, &body)
            .await
            .status(),
        200,
        "media waiting never blocks webhooks"
    );

    // Freed: the video is fetched and kept.
    std::fs::remove_file(&ballast).unwrap();
    let freed = Instant::now();
    while std::fs::metadata(&media_file).map(|m| m.len()).unwrap_or(0) != video.len() as u64 {
        assert!(
            freed.elapsed() < Duration::from_secs(20),
            "the video is not stored within 20 s of freeing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("media stored {:?} after freeing", freed.elapsed());
    app.stop().await.unwrap();
}
