//! Attachments benchmark: UploadMedia throughput (a 50 MB file of random
//! bytes, stored as a file upload, in 1 MiB chunks), GET /media/{token}
//! throughput (the same file, whole), and the cost of an image upload with
//! its preview (a 4000 x 3000 photo-like JPEG: decode, EXIF orientation,
//! resize to 1024 px, JPEG encode, all files synced). Prints figures;
//! asserts nothing about timing.
//!
//! Run: `cargo bench --bench attachments` (optional `-- --rounds N`).

use std::{io::Cursor, time::Instant};

use line_adapter::{
    app::{self, Listeners},
    proto::v1::{
        self as pb, channel_admin_client::ChannelAdminClient, messaging_client::MessagingClient,
    },
    settings::{Layer, Settings},
};
use tonic::transport::Channel;

const FILE_BYTES: usize = 50 * 1000 * 1000;
const CHUNK: usize = 1024 * 1024;

async fn upload(
    client: &mut MessagingClient<Channel>,
    channel_id: &str,
    content_type: &str,
    bytes: &[u8],
) -> pb::MediaInfo {
    use pb::upload_media_request::Part;
    let start = pb::UploadMediaRequest {
        part: Some(Part::Start(pb::UploadMediaStart {
            channel_id: channel_id.into(),
            content_type: content_type.into(),
            file_name: "bench".into(),
            size_bytes: Some(bytes.len() as i64),
        })),
    };
    let chunks = bytes.chunks(CHUNK).map(|chunk| pb::UploadMediaRequest {
        part: Some(Part::Chunk(chunk.to_vec())),
    });
    let parts: Vec<_> = std::iter::once(start).chain(chunks).collect();
    client
        .upload_media(tokio_stream::iter(parts))
        .await
        .unwrap()
        .into_inner()
        .media
        .unwrap()
}

fn mb_per_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .skip_while(|a| a != "--rounds")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let layer = Layer {
        grpc_addr: Some("127.0.0.1:0".into()),
        http_addr: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().to_owned()),
        public_base_url: Some("https://line.example.com".into()),
        store_min_free_bytes: Some(0),
        store_min_free_percent: Some(0),
        ..Layer::default()
    };
    let settings = Settings::load(
        None,
        Vec::<(std::ffi::OsString, std::ffi::OsString)>::new(),
        layer,
    )
    .unwrap()
    .settings;
    let listeners = Listeners::bind(&settings).await.unwrap();
    let grpc = format!("http://{}", listeners.grpc.local_addr().unwrap());
    let http = format!("http://{}", listeners.http.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app::run(settings, listeners, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    let mut admin = loop {
        if let Ok(client) = ChannelAdminClient::connect(grpc.clone()).await {
            break client;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let channel = loop {
        match admin
            .create_channel(pb::CreateChannelRequest {
                display_name: "bench".into(),
                line_channel_id: "1234567890".into(),
                channel_secret: "8c1d3e5f7a9b0c2d4e6f8a0b1c3d5e7f".into(),
                channel_access_token: "bench-token".into(),
                token_mode: 0,
            })
            .await
        {
            Ok(response) => break response.into_inner().channel.unwrap(),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };
    let connection = Channel::from_shared(grpc).unwrap().connect().await.unwrap();
    let mut client = MessagingClient::new(connection);
    let http_client = reqwest::Client::new();

    // Uploads and downloads of a 50 MB file (bytes no type detector knows).
    let mut file = vec![0u8; FILE_BYTES];
    fastrand::Rng::with_seed(1).fill(&mut file);
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        let media = upload(&mut client, &channel.id, "application/octet-stream", &file).await;
        up.push(mb_per_s(FILE_BYTES, started.elapsed().as_secs_f64()));
        let path = media
            .content_url
            .strip_prefix("https://line.example.com")
            .unwrap()
            .to_owned();
        let started = Instant::now();
        let body = http_client
            .get(format!("{http}{path}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(body.len(), FILE_BYTES);
        down.push(mb_per_s(FILE_BYTES, started.elapsed().as_secs_f64()));
    }

    // A 12 MP photo-like JPEG (gradients, as a camera's are mostly smooth).
    let photo = image::RgbImage::from_fn(4000, 3000, |x, y| {
        image::Rgb([(x / 16) as u8, (y / 12) as u8, ((x + y) / 28) as u8])
    });
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(photo)
        .write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .unwrap();
    let mut previews = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let media = upload(&mut client, &channel.id, "image/jpeg", &jpeg).await;
        previews.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!((media.width, media.height), (4000, 3000));
    }

    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    println!("attachments benchmark, {rounds} rounds, medians:");
    println!(
        "  UploadMedia, {} MB in 1 MiB chunks: {:.0} MB/s",
        FILE_BYTES / 1_000_000,
        median(&mut up)
    );
    println!(
        "  GET /media/{{token}}, {} MB: {:.0} MB/s",
        FILE_BYTES / 1_000_000,
        median(&mut down)
    );
    println!(
        "  image upload with preview, 4000x3000 JPEG of {:.1} MB: {:.0} ms per image",
        jpeg.len() as f64 / 1e6,
        median(&mut previews)
    );
    let _ = stop.send(());
    server.await.unwrap();
}
