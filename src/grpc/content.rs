//! `Messaging.GetMessageContent`: a message's media as a stream of chunks,
//! from the kept copy when there is one, else straight from LINE.

use std::pin::Pin;

use tokio::{io::AsyncReadExt as _, sync::mpsc};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use super::status::{invalid_field, store_status};
use crate::{
    channels::validate,
    line::client::ByteStream,
    media::{MediaState, WithoutContent, valid_message_id},
    proto::v1 as pb,
    services::Services,
};

pub type ContentStream =
    Pin<Box<dyn Stream<Item = Result<pb::GetMessageContentResponse, Status>> + Send + 'static>>;

/// Largest chunk sent, as the contract promises.
const CHUNK: usize = 64 * 1024;

pub async fn get_message_content(
    services: &Services,
    request: pb::GetMessageContentRequest,
) -> Result<ContentStream, Status> {
    let pb::GetMessageContentRequest {
        channel_id,
        message_id,
        preview,
    } = request;
    let channel_id =
        validate::channel_id(&channel_id).map_err(|reason| invalid_field("channel_id", reason))?;
    if !valid_message_id(&message_id) {
        return Err(invalid_field(
            "message_id",
            "must be a LINE message id (1-64 letters and digits)",
        ));
    }
    let channel = services.channels.get(&channel_id).await?;
    // On NATS another replica may have fetched it.
    let meta = services.media.meta_anywhere(&channel_id, &message_id).await;
    let (tx, rx) = mpsc::channel(8);

    if let Some(meta) = &meta {
        if meta.state == MediaState::Stored
            && let Some(stored) = services
                .media
                .open_stored(&channel_id, &message_id, preview)
                .await
        {
            let size = Some(stored.size);
            let content_type = if preview {
                meta.preview_content_type.clone()
            } else {
                meta.content_type.clone()
            };
            let metadata = pb::MessageContentMetadata {
                content_type,
                size_bytes: size.map(|s| s as i64),
                from_store: true,
                file_name: meta.file_name.clone(),
            };
            tokio::spawn(stream_stored(stored.reader, metadata, tx));
            return Ok(Box::pin(ReceiverStream::new(rx)));
        }
        if meta.state == MediaState::Gone {
            return Err(Status::not_found(format!(
                "the content of message {message_id} is gone: {}",
                meta.error
            )));
        }
    }

    // Known to have nothing at LINE: say so without asking.
    match services.media.without_content(&channel_id, &message_id) {
        Some(WithoutContent::External) => {
            return Err(no_content(
                &message_id,
                "its content provider is EXTERNAL: fetch ContentProvider.original_content_url yourself",
            ));
        }
        Some(WithoutContent::NoMedia) => {
            return Err(no_content(
                &message_id,
                "its message type has no media (text, sticker, location)",
            ));
        }
        None => {}
    }

    // Not kept (yet): ask LINE now.
    let content = services
        .tokens
        .line(&channel)
        .message_content(&message_id, preview)
        .await?;
    let metadata = pb::MessageContentMetadata {
        content_type: content
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".to_owned()),
        size_bytes: content.content_length.map(|s| s as i64),
        from_store: false,
        file_name: meta.map(|m| m.file_name).unwrap_or_default(),
    };
    tokio::spawn(stream_response(content.body, metadata, tx));
    Ok(Box::pin(ReceiverStream::new(rx)))
}

/// FAILED_PRECONDITION for a message LINE holds no content of.
fn no_content(message_id: &str, why: &str) -> Status {
    let mut details = ErrorDetails::new();
    details.add_precondition_failure_violation("MESSAGE_CONTENT", "message_id", why);
    Status::with_error_details(
        Code::FailedPrecondition,
        format!("message {message_id} has no content at LINE: {why}"),
        details,
    )
}

type Sender = mpsc::Sender<Result<pb::GetMessageContentResponse, Status>>;

fn metadata_part(metadata: pb::MessageContentMetadata) -> pb::GetMessageContentResponse {
    pb::GetMessageContentResponse {
        part: Some(pb::get_message_content_response::Part::Metadata(metadata)),
    }
}

fn chunk_part(bytes: &[u8]) -> pb::GetMessageContentResponse {
    pb::GetMessageContentResponse {
        part: Some(pb::get_message_content_response::Part::Chunk(
            bytes.to_vec(),
        )),
    }
}

/// A failed send means the client went away: stop reading.
async fn stream_stored(
    mut file: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    metadata: pb::MessageContentMetadata,
    tx: Sender,
) {
    if tx.send(Ok(metadata_part(metadata))).await.is_err() {
        return;
    }
    let mut buffer = vec![0u8; CHUNK];
    loop {
        match file.read(&mut buffer).await {
            Ok(0) => return,
            Ok(read) => {
                if tx.send(Ok(chunk_part(&buffer[..read]))).await.is_err() {
                    return;
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "reading kept media failed");
                let _ = tx
                    .send(Err(store_status(crate::store::StoreError::Backend(
                        err.to_string(),
                    ))))
                    .await;
                return;
            }
        }
    }
}

async fn stream_response(mut body: ByteStream, metadata: pb::MessageContentMetadata, tx: Sender) {
    if tx.send(Ok(metadata_part(metadata))).await.is_err() {
        return;
    }
    loop {
        match body.next().await {
            Some(Ok(bytes)) => {
                for piece in bytes.chunks(CHUNK) {
                    if tx.send(Ok(chunk_part(piece))).await.is_err() {
                        return;
                    }
                }
            }
            None => return,
            Some(Err(err)) => {
                let _ = tx
                    .send(Err(Status::unavailable(format!(
                        "{err}; discard the partial content and call again"
                    ))))
                    .await;
                return;
            }
        }
    }
}
