//! `Messaging.GetMessageContent`: a message's media as a stream of chunks,
//! from the kept copy when there is one, else straight from LINE.

use std::pin::Pin;

use tokio::{io::AsyncReadExt as _, sync::mpsc};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::Status;

use super::status::{invalid_field, store_status};
use crate::{
    channels::validate,
    line::client::NetworkError,
    media::{MediaState, valid_message_id},
    proto::v1 as pb,
    services::Services,
};

pub type ContentStream =
    Pin<Box<dyn Stream<Item = Result<pb::GetMessageContentResponse, Status>> + Send + 'static>>;

/// Largest chunk sent, as the contract promises.
const CHUNK: usize = 64 * 1024;

#[allow(clippy::result_large_err)]
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
    let meta = services.media.meta(&channel_id, &message_id);
    let (tx, rx) = mpsc::channel(8);

    if let Some(meta) = &meta {
        let path = services
            .media
            .stored_path(&channel_id, &message_id, preview);
        if meta.state == MediaState::Stored
            && let Ok(file) = tokio::fs::File::open(&path).await
        {
            let size = file.metadata().await.map(|m| m.len()).ok();
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
            tokio::spawn(stream_file(file, metadata, tx));
            return Ok(Box::pin(ReceiverStream::new(rx)));
        }
        if meta.state == MediaState::Gone {
            return Err(Status::not_found(format!(
                "the content of message {message_id} is gone: {}",
                meta.error
            )));
        }
    }

    // Not kept (yet): ask LINE now.
    let path = format!(
        "/v2/bot/message/{message_id}/content{}",
        if preview { "/preview" } else { "" }
    );
    let fetch = |token: crate::secret::Secret| {
        let path = &path;
        async move {
            services
                .media
                .line()
                .get_data_stream(&token, path)
                .await
                .map_err(|err| match err {
                    NetworkError::Connect(_)
                    | NetworkError::Timeout(_)
                    | NetworkError::Broken(_) => Status::unavailable(err.to_string()),
                })
        }
    };
    let token = services.tokens.get(&channel).await?;
    let mut response = fetch(token.clone()).await?;
    if response.status() == reqwest::StatusCode::UNAUTHORIZED {
        // Refused token: once more with a renewed one.
        let renewed = services.tokens.after_unauthorized(&channel, &token).await?;
        response = fetch(renewed).await?;
    }
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-line-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let refused = |code: fn(String) -> Status, what: &str| {
        code(format!(
            "LINE answered {status} for the content of message {message_id}: {what} [x-line-request-id {request_id}]"
        ))
    };
    match status {
        200 => {}
        202 => {
            return Err(refused(
                Status::unavailable,
                "still preparing the content; retry in a few seconds",
            ));
        }
        404 | 410 => return Err(refused(Status::not_found, "no such content, or it is gone")),
        401 => {
            return Err(refused(
                Status::failed_precondition,
                "the access token was refused",
            ));
        }
        403 => return Err(refused(Status::permission_denied, "not permitted")),
        400 => return Err(refused(Status::invalid_argument, "bad request")),
        _ => return Err(refused(Status::unavailable, "LINE failed")),
    }
    let metadata = pb::MessageContentMetadata {
        content_type: response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned(),
        size_bytes: response.content_length().map(|s| s as i64),
        from_store: false,
        file_name: meta.map(|m| m.file_name).unwrap_or_default(),
    };
    tokio::spawn(stream_response(response, metadata, tx));
    Ok(Box::pin(ReceiverStream::new(rx)))
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
async fn stream_file(mut file: tokio::fs::File, metadata: pb::MessageContentMetadata, tx: Sender) {
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

async fn stream_response(
    mut response: reqwest::Response,
    metadata: pb::MessageContentMetadata,
    tx: Sender,
) {
    if tx.send(Ok(metadata_part(metadata))).await.is_err() {
        return;
    }
    loop {
        match response.chunk().await {
            Ok(Some(bytes)) => {
                for piece in bytes.chunks(CHUNK) {
                    if tx.send(Ok(chunk_part(piece))).await.is_err() {
                        return;
                    }
                }
            }
            Ok(None) => return,
            Err(err) => {
                let err = crate::line::client::network(err);
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
