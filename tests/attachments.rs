//! Agents' attachments over the wire: UploadMedia, sends naming uploads by
//! `media_id`, and LINE's side: every URL the LINE stand-in received is
//! fetched from our HTTP listener and checked (bytes, type, preview size
//! and dimensions, duration). Test files are made here: images with the
//! `image` crate, MP4 and M4A with the `mp4` crate's writer.

mod support;

use std::{collections::HashMap, io::Cursor, path::Path, time::Duration};

use image::{DynamicImage, GenericImageView as _, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use line_adapter::proto::v1::{self as pb, message::Kind};
use serde_json::Value;
use support::{
    TestApp, create_channel_with_token, fake_line::FakeLine, test_settings, to_user,
    upload_media as upload,
};
use tonic::Code;

const BASE: &str = "https://line.example.com";
const USER: &str = "U0123456789abcdef0123456789abcdef";

async fn start(
    dir: &Path,
    line: &FakeLine,
    tweak: impl FnOnce(&mut line_adapter::settings::Layer),
) -> TestApp {
    TestApp::start_with(test_settings(dir, |layer| {
        layer.line_api_base = Some(line.url());
        layer.line_data_api_base = Some(line.url());
        layer.public_base_url = Some(BASE.into());
        tweak(layer);
    }))
    .await
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

/// A photo-like gradient (so JPEG stays small) with a red top-left corner.
fn photo(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        if x < width / 8 && y < height / 8 {
            Rgb([255, 0, 0])
        } else {
            Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 128])
        }
    })
}

/// `jpeg` with an EXIF block saying "rotate 90° clockwise to show"
/// (Orientation 6), right after the start-of-image marker.
fn with_exif_orientation_6(jpeg: &[u8]) -> Vec<u8> {
    let tiff: &[u8] = &[
        b'M', b'M', 0, 42, 0, 0, 0, 8, // big-endian TIFF, IFD0 at 8
        0, 1, // one entry
        0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, // Orientation, SHORT, 1, value 6
        0, 0, 0, 0, // no next IFD
    ];
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// An MP4 (`video: true`, one H.264 track) or M4A (one AAC track) of
/// `samples` samples of 1/10 s each.
fn mp4_file(video: bool, samples: u32) -> Vec<u8> {
    use mp4::{
        AacConfig, AudioObjectType, AvcConfig, ChannelConfig, FourCC, MediaConfig, Mp4Config,
        Mp4Sample, Mp4Writer, SampleFreqIndex, TrackConfig, TrackType,
    };
    let brand = |s: &str| s.parse::<FourCC>().unwrap();
    let config = Mp4Config {
        major_brand: brand(if video { "isom" } else { "M4A " }),
        minor_version: 512,
        compatible_brands: vec![brand("isom"), brand("mp42")],
        timescale: 1000,
    };
    let mut writer = Mp4Writer::write_start(Cursor::new(Vec::new()), &config).unwrap();
    let (track, timescale) = if video {
        (
            TrackConfig {
                track_type: TrackType::Video,
                timescale: 1000,
                language: "und".into(),
                media_conf: MediaConfig::AvcConfig(AvcConfig {
                    width: 320,
                    height: 240,
                    seq_param_set: vec![0x67, 0x42, 0x00, 0x1e, 0x95, 0xa8, 0x28, 0x0f, 0x64],
                    pic_param_set: vec![0x68, 0xce, 0x38, 0x80],
                }),
            },
            1000,
        )
    } else {
        (
            TrackConfig {
                track_type: TrackType::Audio,
                timescale: 44_100,
                language: "und".into(),
                media_conf: MediaConfig::AacConfig(AacConfig {
                    bitrate: 128_000,
                    profile: AudioObjectType::AacLowComplexity,
                    freq_index: SampleFreqIndex::Freq44100,
                    chan_conf: ChannelConfig::Stereo,
                }),
            },
            44_100,
        )
    };
    writer.add_track(&track).unwrap();
    for i in 0..samples {
        writer
            .write_sample(
                1,
                &Mp4Sample {
                    start_time: u64::from(i * timescale / 10),
                    duration: timescale / 10,
                    rendering_offset: 0,
                    is_sync: true,
                    bytes: bytes::Bytes::from(vec![i as u8; 64]),
                },
            )
            .unwrap();
    }
    writer.write_end().unwrap();
    writer.into_writer().into_inner()
}

const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

/// GETs the path of a public URL from our HTTP listener.
async fn fetch(app: &TestApp, url: &str) -> reqwest::Response {
    let path = url
        .strip_prefix(BASE)
        .unwrap_or_else(|| panic!("{url} is under the public base"));
    assert!(path.starts_with("/media/"), "{url}");
    reqwest::get(format!("{}{path}", app.http_base))
        .await
        .unwrap()
}

async fn fetch_ok(app: &TestApp, url: &str) -> (String, Vec<u8>) {
    let response = fetch(app, url).await;
    assert_eq!(response.status(), 200, "{url}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let length: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = response.bytes().await.unwrap().to_vec();
    assert_eq!(bytes.len(), length, "{url}: Content-Length");
    (content_type, bytes)
}

/// Checks a preview as LINE wants it: JPEG, at most 1 MB, at most 1024 px.
fn check_preview(content_type: &str, bytes: &[u8]) -> DynamicImage {
    assert_eq!(content_type, "image/jpeg");
    assert!(bytes.len() <= 1_000_000, "preview of {} bytes", bytes.len());
    let image = image::load_from_memory_with_format(bytes, ImageFormat::Jpeg).unwrap();
    assert!(
        image.width().max(image.height()) <= 1024,
        "{:?}",
        image.dimensions()
    );
    image
}

/// The messages of every push LINE's stand-in received, in order.
fn pushed_messages(line: &FakeLine) -> Vec<Value> {
    line.requests()
        .into_iter()
        .filter(|r| r.path == "/v2/bot/message/push")
        .flat_map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            body["messages"].as_array().unwrap().clone()
        })
        .collect()
}

fn push(channel_id: &str, messages: Vec<Kind>) -> pb::PushRequest {
    pb::PushRequest {
        channel_id: channel_id.into(),
        to: to_user(USER),
        messages: messages
            .into_iter()
            .map(|kind| pb::Message {
                kind: Some(kind),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn by_media_id(id: &str) -> Kind {
    Kind::Image(pb::ImageMessage {
        media_id: id.into(),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_sent_by_media_id_reach_line_as_urls_it_can_fetch() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &line, |_| {}).await;
    let channel = create_channel_with_token(&app).await.id;

    // PNG with transparency: passes as it is.
    let png_image = DynamicImage::ImageRgba8(RgbaImage::from_fn(300, 200, |x, _| {
        Rgba([0, 0, 255, if x < 150 { 0 } else { 255 }])
    }));
    let png = encode(&png_image, ImageFormat::Png);
    let png_info = upload(
        &app,
        &channel,
        "image/png",
        "dots.png",
        &png,
        Some(png.len() as i64),
    )
    .await
    .unwrap();
    assert_eq!(png_info.kind, pb::MediaKind::Image as i32);
    assert_eq!(
        (
            png_info.content_type.as_str(),
            png_info.width,
            png_info.height
        ),
        ("image/png", 300, 200)
    );
    assert_eq!(png_info.image_url, png_info.content_url);
    assert_eq!(png_info.size_bytes, png.len() as i64);

    // A large JPEG stored sideways with EXIF orientation 6: shown 1800 x 2400.
    let jpeg = with_exif_orientation_6(&encode(
        &DynamicImage::ImageRgb8(photo(2400, 1800)),
        ImageFormat::Jpeg,
    ));
    let jpeg_info = upload(&app, &channel, "image/jpeg", "photo.jpg", &jpeg, None)
        .await
        .unwrap();
    assert_eq!(
        (jpeg_info.width, jpeg_info.height),
        (1800, 2400),
        "orientation applied"
    );
    assert_eq!(jpeg_info.image_url, jpeg_info.content_url);

    // WebP: sent as a JPEG made from it.
    let webp_source = DynamicImage::ImageRgba8(RgbaImage::from_fn(64, 48, |x, y| {
        Rgba([x as u8 * 4, y as u8 * 5, 0, 255])
    }));
    let webp = encode(&webp_source, ImageFormat::WebP);
    let webp_info = upload(&app, &channel, "image/webp", "sticker.webp", &webp, None)
        .await
        .unwrap();
    assert_eq!(webp_info.content_type, "image/webp");
    assert_ne!(webp_info.image_url, webp_info.content_url);

    // M4A of 25 samples of 0.1 s: 2.5 s.
    let m4a = mp4_file(false, 25);
    let m4a_info = upload(&app, &channel, "audio/mp4", "voice.m4a", &m4a, None)
        .await
        .unwrap();
    assert_eq!(m4a_info.kind, pb::MediaKind::Audio as i32);
    assert_eq!(m4a_info.duration_ms, 2500);

    let mp4 = mp4_file(true, 30);
    let mp4_info = upload(&app, &channel, "video/mp4", "clip.mp4", &mp4, None)
        .await
        .unwrap();
    assert_eq!(mp4_info.kind, pb::MediaKind::Video as i32);
    assert_eq!(mp4_info.duration_ms, 3000);

    let pdf_info = upload(
        &app,
        &channel,
        "application/pdf",
        "Quote 2026.pdf",
        PDF,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (pdf_info.kind, pdf_info.content_type.as_str()),
        (pb::MediaKind::File as i32, "application/pdf")
    );
    assert!(pdf_info.image_url.is_empty() && pdf_info.preview_url.is_empty());
    for url in [
        &png_info.content_url,
        &png_info.preview_url,
        &pdf_info.content_url,
    ] {
        let token = url.rsplit('/').next().unwrap();
        assert!(token.len() >= 22, "{token}: at least 128 bits");
        assert!(
            !url.contains(&channel) && !url.contains(&pdf_info.media_id),
            "{url}"
        );
    }

    assert_eq!(
        support::metric(&app, "line_adapter_outbound_media_uploads").await,
        Some(6.0)
    );
    let bytes = support::metric(&app, "line_adapter_outbound_media_bytes")
        .await
        .unwrap();
    let uploaded = (png.len() + jpeg.len() + webp.len() + m4a.len() + mp4.len() + PDF.len()) as f64;
    assert!(
        bytes > uploaded,
        "{bytes} bytes kept, previews included, of {uploaded} uploaded"
    );

    let mut messaging = app.messaging().await;
    let first = messaging
        .push(push(
            &channel,
            vec![
                by_media_id(&png_info.media_id),
                by_media_id(&jpeg_info.media_id),
                by_media_id(&webp_info.media_id),
            ],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first.delivery.unwrap().state,
        pb::DeliveryState::Delivered as i32
    );
    messaging
        .push(push(
            &channel,
            vec![
                Kind::Video(pb::VideoMessage {
                    media_id: mp4_info.media_id.clone(),
                    preview_media_id: png_info.media_id.clone(),
                    ..Default::default()
                }),
                Kind::Audio(pb::AudioMessage {
                    media_id: m4a_info.media_id.clone(),
                    ..Default::default()
                }),
                Kind::File(pb::FileMessage {
                    media_id: pdf_info.media_id.clone(),
                    ..Default::default()
                }),
            ],
        ))
        .await
        .unwrap();

    let sent = pushed_messages(&line);
    assert_eq!(sent.len(), 6, "{sent:#?}");
    let types: Vec<&str> = sent.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["image", "image", "image", "video", "audio", "flex"]);

    // PNG: the upload itself, and a preview with the transparent half white.
    let (kind, bytes) = fetch_ok(&app, sent[0]["originalContentUrl"].as_str().unwrap()).await;
    assert_eq!(
        (kind.as_str(), bytes.as_slice()),
        ("image/png", png.as_slice())
    );
    let (kind, bytes) = fetch_ok(&app, sent[0]["previewImageUrl"].as_str().unwrap()).await;
    let preview = check_preview(&kind, &bytes).to_rgb8();
    assert_eq!(preview.dimensions(), (300, 200));
    assert!(
        preview.get_pixel(10, 100).0.iter().all(|&c| c > 240),
        "transparent over white"
    );
    assert!(
        preview.get_pixel(290, 100).0[2] > 200,
        "opaque blue stays blue"
    );

    // JPEG: the original as uploaded; the preview upright, 768 x 1024, with
    // the red corner (top left as stored) now top right.
    let (kind, bytes) = fetch_ok(&app, sent[1]["originalContentUrl"].as_str().unwrap()).await;
    assert_eq!((kind.as_str(), bytes == jpeg), ("image/jpeg", true));
    let (kind, bytes) = fetch_ok(&app, sent[1]["previewImageUrl"].as_str().unwrap()).await;
    let preview = check_preview(&kind, &bytes).to_rgb8();
    assert_eq!(preview.dimensions(), (768, 1024));
    let [r, g, b] = preview.get_pixel(760, 10).0;
    assert!(r > 200 && g < 60 && b < 60, "top right is red: {r},{g},{b}");
    let [r, _, _] = preview.get_pixel(10, 10).0;
    assert!(r < 100, "top left is not red: {r}");

    // WebP: a JPEG of the same picture, and a preview.
    let (kind, bytes) = fetch_ok(&app, sent[2]["originalContentUrl"].as_str().unwrap()).await;
    assert_eq!(kind, "image/jpeg");
    assert!(bytes.len() <= 10_000_000);
    let converted = image::load_from_memory_with_format(&bytes, ImageFormat::Jpeg).unwrap();
    assert_eq!(converted.dimensions(), (64, 48));
    let (kind, bytes) = fetch_ok(&app, sent[2]["previewImageUrl"].as_str().unwrap()).await;
    check_preview(&kind, &bytes);

    // Video: the MP4 as uploaded, the PNG upload's preview before it.
    let (kind, bytes) = fetch_ok(&app, sent[3]["originalContentUrl"].as_str().unwrap()).await;
    assert_eq!((kind.as_str(), bytes == mp4), ("video/mp4", true));
    assert_eq!(sent[3]["previewImageUrl"], sent[0]["previewImageUrl"]);

    // Audio: the M4A with the duration read from it.
    assert_eq!(sent[4]["duration"], 2500);
    let (kind, bytes) = fetch_ok(&app, sent[4]["originalContentUrl"].as_str().unwrap()).await;
    assert_eq!((kind.as_str(), bytes == m4a), ("audio/mp4", true));

    // PDF: a bubble with its name, size and a link serving the file.
    let bubble = &sent[5]["contents"];
    assert_eq!(
        sent[5]["altText"],
        format!("File: Quote 2026.pdf ({} B)", PDF.len())
    );
    assert_eq!(bubble["body"]["contents"][0]["text"], "Quote 2026.pdf");
    assert_eq!(
        bubble["body"]["contents"][1]["text"],
        format!("PDF · {} B", PDF.len())
    );
    let link = bubble["footer"]["contents"][0]["action"]["uri"]
        .as_str()
        .unwrap();
    let response = fetch(&app, link).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment;") && disposition.contains("Quote%202026.pdf"),
        "{disposition}"
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), PDF);

    // What LINE's video player does: HEAD, ranges, revalidation.
    let client = reqwest::Client::new();
    let video_url = format!(
        "{}{}",
        app.http_base,
        sent[3]["originalContentUrl"]
            .as_str()
            .unwrap()
            .strip_prefix(BASE)
            .unwrap()
    );
    let head = client.head(&video_url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        mp4.len().to_string().as_str()
    );
    assert_eq!(head.headers()["accept-ranges"], "bytes");
    let etag = head.headers()["etag"].to_str().unwrap().to_owned();
    let cache = head.headers()["cache-control"].to_str().unwrap().to_owned();
    assert!(
        cache.starts_with("public, max-age=") && cache.ends_with("immutable"),
        "{cache}"
    );
    assert!(head.bytes().await.unwrap().is_empty());
    let ranged = client
        .get(&video_url)
        .header("range", "bytes=8-23")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(
        ranged.headers()["content-range"],
        format!("bytes 8-23/{}", mp4.len()).as_str()
    );
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), &mp4[8..24]);
    let tail = client
        .get(&video_url)
        .header("range", "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(tail.bytes().await.unwrap().as_ref(), &mp4[mp4.len() - 10..]);
    let beyond = client
        .get(&video_url)
        .header("range", format!("bytes={}-", mp4.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);
    assert_eq!(
        beyond.headers()["content-range"],
        format!("bytes */{}", mp4.len()).as_str()
    );
    let stale_if_range = client
        .get(&video_url)
        .header("range", "bytes=0-9")
        .header("if-range", "\"another-version\"")
        .send()
        .await
        .unwrap();
    assert_eq!(
        stale_if_range.status(),
        200,
        "a stale If-Range gets the whole file"
    );
    let revalidated = client
        .get(&video_url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);

    // Unknown tokens, paths and methods.
    for path in [
        "/media/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "/media/../store",
        "/media/",
        "/media/%2e%2e%2fstore",
    ] {
        let response = client
            .get(format!("{}{path}", app.http_base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    let post = client.post(&video_url).send().await.unwrap();
    assert_eq!(post.status(), 405);
}

/// Every upload kept, after checking that nothing half-written or
/// half-deleted is left in `uploads/.tmp`: the folders under the data dir
/// or, on NATS, the uploads in the shared bucket (and then nothing in the
/// data dir).
async fn stored_uploads(dir: &Path) -> Vec<String> {
    let left = leftovers(dir);
    assert!(left.is_empty(), "nothing is left half-written: {left:?}");
    if support::nats_url().is_none() {
        return upload_dirs(dir);
    }
    assert_eq!(
        upload_dirs(dir),
        Vec::<String>::new(),
        "on NATS, none in the data dir"
    );
    let mut ids: Vec<String> = support::shared_file_names(dir, "uploads/")
        .await
        .into_iter()
        .filter_map(|name| Some(name.strip_prefix("uploads/")?.split('/').next()?.to_owned()))
        .collect();
    ids.dedup();
    ids
}

fn upload_dirs(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.join("uploads")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != ".tmp")
        .collect();
    names.sort();
    names
}

/// What `uploads/.tmp` holds: uploads in progress, folders being deleted.
fn leftovers(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir.join("uploads/.tmp")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A refused upload: what it is, declared type, bytes, declared size,
/// the field named and words of its reason.
type BadUpload = (
    &'static str,
    &'static str,
    Vec<u8>,
    Option<i64>,
    &'static str,
    &'static str,
);

fn violations(status: &tonic::Status) -> HashMap<String, String> {
    use tonic_types::StatusExt as _;
    status
        .get_details_bad_request()
        .map(|b| {
            b.field_violations
                .into_iter()
                .map(|v| (v.field, v.description))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_naming_the_field_and_store_nothing() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &line, |_| {}).await;
    let channel = create_channel_with_token(&app).await.id;
    let png = encode(&DynamicImage::ImageRgb8(photo(40, 30)), ImageFormat::Png);

    let cases: Vec<BadUpload> = vec![
        (
            "wrong type",
            "image/png",
            PDF.to_vec(),
            None,
            "start.content_type",
            "application/pdf",
        ),
        (
            "an image declared as a file",
            "application/pdf",
            png.clone(),
            None,
            "start.content_type",
            "image/png",
        ),
        (
            "mp3 as audio",
            "audio/mpeg",
            b"ID3\x03\x00\x00\x00\x00\x00\x00rest".to_vec(),
            None,
            "start.content_type",
            "M4A",
        ),
        (
            "a video without video",
            "video/mp4",
            mp4_file(false, 5),
            None,
            "start.content_type",
            "no video track",
        ),
        (
            "over the image limit",
            "image/png",
            vec![0u8; 10_000_001],
            None,
            "chunk",
            "10000000 bytes",
        ),
        (
            "declared over the limit",
            "image/jpeg",
            Vec::new(),
            Some(10_000_001),
            "start.size_bytes",
            "10000000 bytes",
        ),
        (
            "truncated",
            "image/png",
            png[..png.len() / 2].to_vec(),
            Some(png.len() as i64),
            "start.size_bytes",
            "ended after",
        ),
        (
            "a cut-off image",
            "image/png",
            png[..png.len() / 2].to_vec(),
            None,
            "start.content_type",
            "cannot be read",
        ),
        (
            "zero bytes",
            "application/pdf",
            Vec::new(),
            None,
            "chunk",
            "no bytes",
        ),
        (
            "not a MIME type",
            "pdf",
            PDF.to_vec(),
            None,
            "start.content_type",
            "not a MIME type",
        ),
        (
            "a path as file name",
            "application/pdf",
            PDF.to_vec(),
            None,
            "start.file_name",
            "plain name",
        ),
    ];
    for (what, content_type, bytes, size, field, says) in cases {
        let name = if field == "start.file_name" {
            "../../x.pdf"
        } else {
            "f"
        };
        let status = upload(&app, &channel, content_type, name, &bytes, size)
            .await
            .expect_err(what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        let violations = violations(&status);
        let reason = violations
            .get(field)
            .unwrap_or_else(|| panic!("{what}: {field} named in {violations:?}"));
        assert!(reason.contains(says), "{what}: {reason}");
    }
    let status = upload(
        &app,
        "ch_00000000000000000000000000",
        "image/png",
        "f",
        &png,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(stored_uploads(dir.path()).await, Vec::<String>::new());

    // A stream that breaks off: the client goes away midway.
    {
        use pb::upload_media_request::Part;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(pb::UploadMediaRequest {
            part: Some(Part::Start(pb::UploadMediaStart {
                channel_id: channel.clone(),
                content_type: "application/pdf".into(),
                ..Default::default()
            })),
        })
        .await
        .unwrap();
        tx.send(pb::UploadMediaRequest {
            part: Some(Part::Chunk(PDF.to_vec())),
        })
        .await
        .unwrap();
        let mut messaging = app.messaging().await;
        let call = tokio::spawn(async move {
            messaging
                .upload_media(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
        });
        // The call is aborted with the stream still open.
        tokio::time::sleep(Duration::from_millis(200)).await;
        call.abort();
        let _ = call.await;
        drop(tx);
    }

    // Messages naming uploads wrongly are refused before anything is sent.
    let pdf = upload(&app, &channel, "application/pdf", "a.pdf", PDF, None)
        .await
        .unwrap();
    let mut messaging = app.messaging().await;
    for (kind, field) in [
        (by_media_id(&pdf.media_id), "messages[0].image.media_id"),
        (
            by_media_id("med_00000000000000000000000000"),
            "messages[0].image.media_id",
        ),
        (by_media_id("../x"), "messages[0].image.media_id"),
        (
            Kind::Image(pb::ImageMessage {
                media_id: pdf.media_id.clone(),
                original_content_url: "https://example.com/a.png".into(),
                ..Default::default()
            }),
            "messages[0].image.media_id",
        ),
        (
            Kind::Video(pb::VideoMessage {
                media_id: pdf.media_id.clone(),
                ..Default::default()
            }),
            "messages[0].video.preview_media_id",
        ),
        (
            Kind::File(pb::FileMessage::default()),
            "messages[0].file.media_id",
        ),
    ] {
        let status = messaging
            .push(push(&channel, vec![kind]))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(
            violations(&status).contains_key(field),
            "{field}: {status:?}"
        );
    }
    assert!(pushed_messages(&line).is_empty());
    // Only the PDF was stored (the aborted stream's bytes are gone too).
    assert_eq!(stored_uploads(dir.path()).await, vec![pdf.media_id.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_need_an_https_public_base_url() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &line, |layer| layer.public_base_url = None).await;
    let channel = create_channel_with_token(&app).await.id;
    let status = upload(&app, &channel, "application/pdf", "a.pdf", PDF, None)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("public_base_url"), "{status:?}");
    assert_eq!(stored_uploads(dir.path()).await, Vec::<String>::new());
}

// On the current-thread runtime: only there can the test move time.
#[tokio::test]
async fn expired_uploads_are_deleted_and_their_urls_answer_404() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &line, |layer| {
        layer.outbound_media_retention_seconds = Some(1);
    })
    .await;
    let channel = create_channel_with_token(&app).await.id;
    let pdf = upload(&app, &channel, "application/pdf", "a.pdf", PDF, None)
        .await
        .unwrap();
    let expire = pdf.expire_time.unwrap();
    let create = pdf.create_time.unwrap();
    assert_eq!(expire.seconds - create.seconds, 1, "create + retention");

    // Past the retention, and retention runs every second: it is due at
    // once. Wait (bounded) for it to finish.
    support::pass_time(Duration::from_secs(2)).await;
    let mut last = 0;
    for _ in 0..100 {
        last = fetch(&app, &pdf.content_url).await.status().as_u16();
        if last == 404
            && leftovers(dir.path()).is_empty()
            && stored_uploads(dir.path()).await.is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last, 404);
    assert_eq!(
        stored_uploads(dir.path()).await,
        Vec::<String>::new(),
        "the files are deleted"
    );
    let status = app
        .messaging()
        .await
        .push(push(
            &channel,
            vec![Kind::File(pb::FileMessage {
                media_id: pdf.media_id.clone(),
                ..Default::default()
            })],
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(violations(&status).contains_key("messages[0].file.media_id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_survive_a_restart() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), &line, |_| {}).await;
    let channel = create_channel_with_token(&app).await.id;
    let pdf = upload(&app, &channel, "application/pdf", "a.pdf", PDF, None)
        .await
        .unwrap();
    app.stop().await.unwrap();
    let app = start(dir.path(), &line, |_| {}).await;
    let (kind, bytes) = fetch_ok(&app, &pdf.content_url).await;
    assert_eq!((kind.as_str(), bytes.as_slice()), ("application/pdf", PDF));
}
