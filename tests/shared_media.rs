//! On NATS every replica serves every attachment and every inbound media
//! file: they live in the JetStream object store `P_media`, not in the
//! data dir of the replica that took them. Two replicas in this process
//! share one NATS prefix; skipped (with the reason) without
//! `TEST_NATS_URL`.

mod support;

use std::{io::Cursor, path::Path};

use line_adapter::proto::v1::{self as pb, message::Kind};
use support::{SECRET, TestApp, create_channel_with_token, fake_line::FakeLine, post_webhook};

const BASE: &str = "https://line.example.com";
const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

/// A replica on `prefix`, with LINE at `line`.
async fn replica(dir: &Path, line: &FakeLine, nats: &str, prefix: &str) -> TestApp {
    TestApp::start_with(support::test_settings(dir, |layer| {
        layer.store = Some("nats".into());
        layer.nats_url = Some(nats.into());
        layer.nats_prefix = Some(prefix.into());
        layer.master_key = Some(line_adapter::secret::Secret::new(
            support::NATS_TEST_MASTER_KEY,
        ));
        layer.line_api_base = Some(line.url());
        layer.line_data_api_base = Some(line.url());
        layer.public_base_url = Some(BASE.into());
    }))
    .await
}

async fn upload(
    app: &TestApp,
    channel_id: &str,
    content_type: &str,
    bytes: &[u8],
) -> pb::MediaInfo {
    support::upload_media(app, channel_id, content_type, "a.bin", bytes, None)
        .await
        .unwrap()
}

/// Sends `method` for a public URL's path to `app`'s HTTP listener.
async fn request(
    app: &TestApp,
    method: reqwest::Method,
    url: &str,
    range: Option<&str>,
) -> reqwest::Response {
    let path = url.strip_prefix(BASE).expect("under the public base");
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", app.http_base));
    if let Some(range) = range {
        request = request.header("range", range);
    }
    request.send().await.unwrap()
}

/// Files left in a data dir folder (recursively), `.tmp` included.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            found.extend(files_under(&entry.path()));
        } else {
            found.push(entry.path().display().to_string());
        }
    }
    found
}

/// Reads GetMessageContent whole: metadata and bytes.
async fn content(
    app: &TestApp,
    channel_id: &str,
    message_id: &str,
    preview: bool,
) -> Result<(pb::MessageContentMetadata, Vec<u8>), tonic::Status> {
    let mut stream = app
        .messaging()
        .await
        .get_message_content(pb::GetMessageContentRequest {
            channel_id: channel_id.into(),
            message_id: message_id.into(),
            preview,
        })
        .await?
        .into_inner();
    let (mut metadata, mut bytes) = (None, Vec::new());
    while let Some(part) = stream.message().await? {
        match part.part.unwrap() {
            pb::get_message_content_response::Part::Metadata(m) => metadata = Some(m),
            pb::get_message_content_response::Part::Chunk(c) => bytes.extend(c),
        }
    }
    Ok((metadata.unwrap(), bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_serves_every_upload_and_inbound_media() {
    let Some(nats) = support::nats_url() else {
        eprintln!("skipped: set TEST_NATS_URL to run the shared media test on NATS");
        return;
    };
    let line = FakeLine::start().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let prefix = support::nats_prefix(dir_a.path());
    let a = replica(dir_a.path(), &line, &nats, &prefix).await;
    let b = replica(dir_b.path(), &line, &nats, &prefix).await;
    let channel = create_channel_with_token(&a).await.id;

    // An upload through A, served by B: bytes, type, ETag, a range, HEAD.
    let pdf = upload(&a, &channel, "application/pdf", PDF).await;
    let whole = request(&b, reqwest::Method::GET, &pdf.content_url, None).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["content-type"], "application/pdf");
    let etag = whole.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(whole.bytes().await.unwrap(), PDF);
    let from_a = request(&a, reqwest::Method::GET, &pdf.content_url, None).await;
    assert_eq!(from_a.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(from_a.bytes().await.unwrap(), PDF);
    let part = request(
        &b,
        reqwest::Method::GET,
        &pdf.content_url,
        Some("bytes=9-20"),
    )
    .await;
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 9-20/{}", PDF.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), &PDF[9..=20]);
    let head = request(&b, reqwest::Method::HEAD, &pdf.content_url, None).await;
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        PDF.len().to_string().as_str()
    );

    // An image through A: B serves its preview too.
    let mut png = Vec::new();
    image::RgbImage::from_pixel(40, 30, image::Rgb([200, 10, 10]))
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let photo = upload(&a, &channel, "image/png", &png).await;
    let preview = request(&b, reqwest::Method::GET, &photo.preview_url, None).await;
    assert_eq!(preview.status(), 200);
    assert_eq!(preview.headers()["content-type"], "image/jpeg");
    let preview = image::load_from_memory(&preview.bytes().await.unwrap()).unwrap();
    assert_eq!((preview.width(), preview.height()), (40, 30));

    // B sends A's upload by its media id: LINE gets A's URL.
    b.messaging()
        .await
        .push(pb::PushRequest {
            channel_id: channel.clone(),
            to: support::to_user("U0123456789abcdef0123456789abcdef"),
            messages: vec![pb::Message {
                kind: Some(Kind::File(pb::FileMessage {
                    media_id: pdf.media_id.clone(),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    let pushed = line
        .requests()
        .into_iter()
        .find(|r| r.path == "/v2/bot/message/push")
        .expect("B pushed");
    assert!(
        support::contains(&pushed.body, pdf.content_url.as_bytes()),
        "the bubble links A's upload"
    );

    // Inbound media fetched by A, served by B from NATS (LINE asked once).
    line.script(
        "/v2/bot/message/5001/content",
        200,
        &[("content-type", "image/jpeg")],
        "the-photo-bytes",
    );
    let body = serde_json::to_vec(&serde_json::json!({"destination": "U0", "events": [{
        "type": "message", "mode": "active", "timestamp": 1_700_000_000_000_i64,
        "source": {"type": "user", "userId": "U1"}, "webhookEventId": "ev-5001",
        "deliveryContext": {"isRedelivery": false}, "replyToken": "r-5001",
        "message": {"id": "5001", "type": "image", "contentProvider": {"type": "line"}}
    }]}))
    .unwrap();
    let answer = post_webhook(&reqwest::Client::new(), &a, &channel, SECRET, &body).await;
    assert_eq!(answer.status(), 200);
    let asked = |path: &str| line.requests().iter().filter(|r| r.path == path).count();
    // Until A has put it into NATS, B asks LINE itself (which has nothing
    // more scripted: an error).
    let mut served = None;
    for _ in 0..200 {
        if asked("/v2/bot/message/5001/content") > 0
            && let Ok((metadata, bytes)) = content(&b, &channel, "5001", false).await
            && metadata.from_store
        {
            served = Some((metadata, bytes));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (metadata, bytes) = served.expect("B serves the media A fetched");
    assert_eq!(metadata.content_type, "image/jpeg");
    assert_eq!(bytes, b"the-photo-bytes");
    // Once stored, LINE is not asked again.
    let before = asked("/v2/bot/message/5001/content");
    let (metadata, bytes) = content(&b, &channel, "5001", false).await.unwrap();
    assert!(metadata.from_store);
    assert_eq!(bytes, b"the-photo-bytes");
    assert_eq!(asked("/v2/bot/message/5001/content"), before);

    // Neither replica keeps the bytes in its data dir.
    for dir in [dir_a.path(), dir_b.path()] {
        let kept: Vec<String> = files_under(&dir.join("uploads"))
            .into_iter()
            .chain(files_under(&dir.join("media")))
            .filter(|f| !f.ends_with(".json"))
            .collect();
        assert_eq!(kept, Vec::<String>::new(), "{}", dir.display());
    }
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}
