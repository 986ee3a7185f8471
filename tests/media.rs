//! Inbound media against the scripted stand-in for LINE's data host:
//! fetched once the event is stored (waiting out 202), kept and served in
//! chunks, gone content reported, unknown content streamed through.

mod support;

use std::time::Duration;

use line_adapter::proto::v1 as pb;
use support::{
    SECRET, TOKEN, TestApp, create_channel_with_token, fake_line::FakeLine, from_earliest,
    next_events, post_webhook, start_with_line, subscribe,
};
use tonic::Code;

fn media_event(id: &str, kind: &str) -> serde_json::Value {
    let mut message = serde_json::json!({"id": id, "type": kind});
    match kind {
        "file" => {
            message["fileName"] = "invoice.pdf".into();
            message["fileSize"] = 1024.into();
        }
        _ => message["contentProvider"] = serde_json::json!({"type": "line"}),
    }
    serde_json::json!({
        "type": "message", "mode": "active", "timestamp": 1_700_000_000_000_i64,
        "source": {"type": "user", "userId": "U1"}, "webhookEventId": format!("ev-{id}"),
        "deliveryContext": {"isRedelivery": false}, "replyToken": format!("r-{id}"),
        "message": message
    })
}

async fn post(app: &TestApp, channel: &pb::Channel, events: Vec<serde_json::Value>) {
    let body =
        serde_json::to_vec(&serde_json::json!({"destination": "U0", "events": events})).unwrap();
    let response = post_webhook(&reqwest::Client::new(), app, &channel.id, SECRET, &body).await;
    assert_eq!(response.status(), 200);
}

/// Reads a whole GetMessageContent stream: metadata, then the bytes.
async fn content(
    app: &TestApp,
    channel: &pb::Channel,
    message_id: &str,
    preview: bool,
) -> Result<(pb::MessageContentMetadata, Vec<u8>, usize), tonic::Status> {
    let mut stream = app
        .messaging()
        .await
        .get_message_content(pb::GetMessageContentRequest {
            channel_id: channel.id.clone(),
            message_id: message_id.into(),
            preview,
        })
        .await?
        .into_inner();
    let mut metadata = None;
    let mut bytes = Vec::new();
    let mut chunks = 0;
    while let Some(part) = stream.message().await? {
        match part.part {
            Some(pb::get_message_content_response::Part::Metadata(m)) => {
                assert!(
                    metadata.is_none() && bytes.is_empty(),
                    "metadata comes first, once"
                );
                metadata = Some(m);
            }
            Some(pb::get_message_content_response::Part::Chunk(chunk)) => {
                assert!(!chunk.is_empty() && chunk.len() <= 64 * 1024);
                bytes.extend_from_slice(&chunk);
                chunks += 1;
            }
            None => panic!("an empty part"),
        }
    }
    Ok((metadata.expect("metadata"), bytes, chunks))
}

/// Polls Subscribe (not GetMessageContent, which would itself ask LINE)
/// until the message's content has `status`.
async fn wait_status(app: &TestApp, id: &str, status: pb::ContentStatus) {
    for _ in 0..300 {
        let mut stream = subscribe(app, from_earliest()).await;
        let checkpoint = loop {
            let message = stream.message().await.unwrap().unwrap();
            match message.kind {
                Some(pb::subscribe_response::Kind::Checkpoint(c)) => break c,
                Some(pb::subscribe_response::Kind::Event(event)) => {
                    if let Some(pb::event::Payload::Message(m)) = event.payload
                        && let Some(content) = m.message
                        && content.id == id
                        && content.content_status() == status
                    {
                        return;
                    }
                }
                None => {}
            }
        };
        let _ = checkpoint;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("media {id} never reached {status:?}");
}

async fn wait_stored(app: &TestApp, channel: &pb::Channel, id: &str) -> pb::MessageContentMetadata {
    wait_status(app, id, pb::ContentStatus::Stored).await;
    let (metadata, _, _) = content(app, channel, id, false).await.unwrap();
    assert!(metadata.from_store);
    metadata
}

#[tokio::test]
async fn media_is_fetched_kept_and_served_in_chunks() {
    let line = FakeLine::start().await;
    let big = "0123456789abcdef".repeat(65_536); // 1 MiB
    line.script("/v2/bot/message/1001/content", 202, &[], "");
    line.script(
        "/v2/bot/message/1001/content",
        200,
        &[("content-type", "video/mp4")],
        &big,
    );
    line.script(
        "/v2/bot/message/1001/content/preview",
        200,
        &[("content-type", "image/jpeg")],
        "preview-bytes",
    );
    line.script(
        "/v2/bot/message/1002/content",
        200,
        &[("content-type", "application/pdf")],
        "%PDF-1.7",
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    post(
        &app,
        &channel,
        vec![media_event("1001", "video"), media_event("1002", "file")],
    )
    .await;

    let metadata = wait_stored(&app, &channel, "1001").await;
    assert_eq!(metadata.content_type, "video/mp4");
    assert_eq!(metadata.size_bytes, Some(big.len() as i64));
    let (_, bytes, chunks) = content(&app, &channel, "1001", false).await.unwrap();
    assert_eq!(bytes, big.as_bytes());
    assert!(
        chunks >= 16,
        "streamed in chunks of at most 64 KiB, got {chunks}"
    );
    let (preview, bytes, _) = content(&app, &channel, "1001", true).await.unwrap();
    assert_eq!(preview.content_type, "image/jpeg");
    assert_eq!(bytes, b"preview-bytes");

    let file = wait_stored(&app, &channel, "1002").await;
    assert_eq!(file.file_name, "invoice.pdf");

    // LINE was asked once per media (plus the 202), with the token.
    let fetches: Vec<_> = line
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v2/bot/message/"))
        .collect();
    assert_eq!(fetches.len(), 4);
    assert!(
        fetches
            .iter()
            .all(|r| r.headers["authorization"] == format!("Bearer {TOKEN}"))
    );

    // Subscribe says the content is kept.
    let mut stream = subscribe(&app, from_earliest()).await;
    for event in next_events(&mut stream, 2, Duration::from_secs(10)).await {
        let Some(pb::event::Payload::Message(message)) = event.payload else {
            panic!("a message event");
        };
        assert_eq!(
            message.message.unwrap().content_status(),
            pb::ContentStatus::Stored
        );
    }
}

#[tokio::test]
async fn gone_content_is_reported_and_unknown_content_streams_from_line() {
    let line = FakeLine::start().await;
    line.script(
        "/v2/bot/message/2001/content",
        410,
        &[],
        r#"{"message":"The content is gone"}"#,
    );
    line.script(
        "/v2/bot/message/9999/content",
        200,
        &[("content-type", "image/png")],
        "png!",
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    post(&app, &channel, vec![media_event("2001", "image")]).await;

    wait_status(&app, "2001", pb::ContentStatus::Gone).await;
    let err = content(&app, &channel, "2001", false).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("gone"), "{}", err.message());

    let (metadata, bytes, _) = content(&app, &channel, "9999", false).await.unwrap();
    assert!(!metadata.from_store);
    assert_eq!(metadata.content_type, "image/png");
    assert_eq!(bytes, b"png!");

    for (id, field) in [("", "message_id"), ("../etc", "message_id")] {
        let err = content(&app, &channel, id, false).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains(field));
    }
}
