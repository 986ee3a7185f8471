//! Agents' attachments: `Messaging.UploadMedia` (a client stream into
//! [`crate::uploads`]), and the `media_id`s of image, video, audio and
//! file messages, replaced by the uploads' public URLs, preview and
//! duration before a send's messages are validated and converted.

use serde_json::json;
use tonic::{Status, Streaming};

use super::status::invalid_field;
use crate::{
    channels::validate,
    line::wire::messages::FieldError,
    proto::v1 as pb,
    services::Services,
    uploads::{Declared, Kind, MAX_FILE_NAME, Role, Upload, Uploads},
};

/// Longest declared content type (RFC 6838: 127 + `/` + 127).
const MAX_CONTENT_TYPE: usize = 255;
/// `altText` of a file message.
const MAX_ALT_TEXT: usize = 1500;

pub async fn upload_media(
    services: &Services,
    mut stream: Streaming<pb::UploadMediaRequest>,
) -> Result<pb::UploadMediaResponse, Status> {
    use pb::upload_media_request::Part;
    let first = stream.message().await?;
    let Some(pb::UploadMediaRequest {
        part: Some(Part::Start(start)),
    }) = first
    else {
        return Err(invalid_field(
            "start",
            "the first message of the stream must be `start`",
        ));
    };
    let declared = declared(start)?;
    services.channels.get(&declared.channel_id).await?;
    let mut incoming = services.uploads.begin(declared).await?;
    loop {
        match stream.message().await {
            Ok(Some(pb::UploadMediaRequest {
                part: Some(Part::Chunk(chunk)),
            })) => {
                // The store's space comes first: an upload that would eat
                // into the watermark stops (and what it wrote is removed).
                if !services.space.has_room_for(chunk.len() as u64) {
                    services.space.refused_upload();
                    return Err(super::status::no_room_for_upload(incoming.size()));
                }
                incoming.write(&chunk).await?
            }
            Ok(Some(_)) => {
                return Err(invalid_field(
                    "start",
                    "only the first message may be `start`; every later one is a `chunk`",
                ));
            }
            Ok(None) => break,
            Err(status) => {
                return Err(invalid_field(
                    "chunk",
                    format!(
                        "the stream broke off after {} bytes ({}): nothing was stored",
                        incoming.size(),
                        status.message()
                    ),
                ));
            }
        }
    }
    let upload = incoming.finish(services.clock.now_ms()).await?;
    Ok(pb::UploadMediaResponse {
        media: Some(media_info(&services.uploads, &upload)),
    })
}

fn declared(start: pb::UploadMediaStart) -> Result<Declared, Status> {
    let pb::UploadMediaStart {
        channel_id,
        content_type,
        file_name,
        size_bytes,
    } = start;
    let channel_id = validate::channel_id(&channel_id)
        .map_err(|reason| invalid_field("start.channel_id", reason))?;
    let content_type =
        mime_type(&content_type).map_err(|reason| invalid_field("start.content_type", reason))?;
    let file_name =
        file_name_of(&file_name).map_err(|reason| invalid_field("start.file_name", reason))?;
    let size = match size_bytes {
        None => None,
        Some(size) if size > 0 => Some(size as u64),
        Some(size) => {
            return Err(invalid_field(
                "start.size_bytes",
                format!("must be > 0 when set, got {size}"),
            ));
        }
    };
    Ok(Declared {
        channel_id,
        content_type,
        file_name,
        size,
    })
}

/// `type/subtype` in lowercase, parameters dropped.
fn mime_type(value: &str) -> Result<String, String> {
    let essence = value.split(';').next().unwrap_or_default().trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match essence.split_once('/') {
        Some((kind, sub)) if essence.len() <= MAX_CONTENT_TYPE && token(kind) && token(sub) => {
            Ok(essence.to_ascii_lowercase())
        }
        _ if essence.is_empty() => {
            Err("required: the MIME type of the file, e.g. image/png or application/pdf".into())
        }
        _ => Err(format!(
            "{essence:?} is not a MIME type (type/subtype, e.g. image/png)"
        )),
    }
}

fn file_name_of(value: &str) -> Result<String, String> {
    let name = value.trim();
    if name.is_empty() {
        return Ok("file".into());
    }
    if name.chars().count() > MAX_FILE_NAME {
        return Err(format!("must be at most {MAX_FILE_NAME} characters"));
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err("must be a plain name: no `/`, `\\` or control characters".into());
    }
    if name == "." || name == ".." {
        return Err("must be a file name".into());
    }
    Ok(name.to_owned())
}

fn media_info(uploads: &Uploads, upload: &Upload) -> pb::MediaInfo {
    let url = |variant: Option<&crate::uploads::Variant>| {
        variant.map(|v| uploads.url(&v.token)).unwrap_or_default()
    };
    let kind = match upload.kind {
        Kind::Image => pb::MediaKind::Image,
        Kind::Video => pb::MediaKind::Video,
        Kind::Audio => pb::MediaKind::Audio,
        Kind::File => pb::MediaKind::File,
    };
    pb::MediaInfo {
        media_id: upload.media_id.clone(),
        channel_id: upload.channel_id.clone(),
        kind: kind as i32,
        content_type: upload.content_type.clone(),
        size_bytes: upload.size as i64,
        file_name: upload.file_name.clone(),
        width: upload.width as i32,
        height: upload.height as i32,
        duration_ms: upload.duration_ms as i64,
        content_url: url(upload.variant(Role::Content)),
        image_url: url(upload.image_variant()),
        preview_url: url(upload.variant(Role::Preview)),
        sha256: upload.sha256.clone(),
        create_time: Some(timestamp(upload.create_time_ms)),
        expire_time: Some(timestamp(uploads.expire_time_ms(upload.create_time_ms))),
    }
}

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

// === Media ids in messages ===

/// Every `media_id` the messages name.
pub fn media_ids(messages: &[pb::Message]) -> Vec<&str> {
    use pb::message::Kind as K;
    let mut ids = Vec::new();
    for message in messages {
        match &message.kind {
            Some(K::Image(image)) => ids.push(image.media_id.as_str()),
            Some(K::Video(video)) => {
                ids.extend([video.media_id.as_str(), video.preview_media_id.as_str()]);
            }
            Some(K::Audio(audio)) => ids.push(audio.media_id.as_str()),
            Some(K::File(file)) => ids.push(file.media_id.as_str()),
            _ => {}
        }
    }
    ids.retain(|id| !id.is_empty());
    ids
}

/// `messages` with every `media_id` replaced by its upload's URLs (and
/// duration), and every file message by the Flex bubble it is sent as.
/// Messages without media ids pass unchanged; the wire conversion then
/// checks everything as for URLs given by the caller. Uploads expired at
/// `now_ms` are refused.
pub fn resolve(
    uploads: &Uploads,
    channel_id: &str,
    path: &str,
    messages: &[pb::Message],
    now_ms: i64,
) -> Result<Vec<pb::Message>, Vec<FieldError>> {
    use pb::message::Kind as K;
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        let at = |field: &str| format!("{path}[{i}].{field}");
        let mut refuse = |field: String, reason: String| errors.push(FieldError { field, reason });
        let find = |media_id: &str, want| lookup(uploads, channel_id, media_id, want, now_ms);
        let mut message = message.clone();
        match &mut message.kind {
            Some(K::Image(image)) if !image.media_id.is_empty() => {
                let field = at("image.media_id");
                if !image.original_content_url.is_empty() || !image.preview_image_url.is_empty() {
                    refuse(field, "give either media_id or the URLs, not both".into());
                } else {
                    match find(&image.media_id, Some(Kind::Image)) {
                        Ok(upload) => {
                            image.original_content_url =
                                variant_url(uploads, upload.image_variant());
                            image.preview_image_url =
                                variant_url(uploads, upload.variant(Role::Preview));
                            image.media_id.clear();
                        }
                        Err(reason) => refuse(field, reason),
                    }
                }
            }
            Some(K::Video(video)) => {
                if !video.media_id.is_empty() {
                    let field = at("video.media_id");
                    if !video.original_content_url.is_empty() {
                        refuse(
                            field,
                            "give either media_id or original_content_url, not both".into(),
                        );
                    } else {
                        match find(&video.media_id, Some(Kind::Video)) {
                            Ok(upload) => {
                                video.original_content_url =
                                    variant_url(uploads, upload.variant(Role::Content));
                                video.media_id.clear();
                            }
                            Err(reason) => refuse(field, reason),
                        }
                    }
                    if video.preview_media_id.is_empty() && video.preview_image_url.is_empty() {
                        refuse(
                            at("video.preview_media_id"),
                            "required with media_id (an image upload whose preview shows before the video plays), unless preview_image_url is given".into(),
                        );
                    }
                }
                if !video.preview_media_id.is_empty() {
                    let field = at("video.preview_media_id");
                    if !video.preview_image_url.is_empty() {
                        refuse(
                            field,
                            "give either preview_media_id or preview_image_url, not both".into(),
                        );
                    } else {
                        match find(&video.preview_media_id, Some(Kind::Image)) {
                            Ok(upload) => {
                                video.preview_image_url =
                                    variant_url(uploads, upload.variant(Role::Preview));
                                video.preview_media_id.clear();
                            }
                            Err(reason) => refuse(field, reason),
                        }
                    }
                }
            }
            Some(K::Audio(audio)) if !audio.media_id.is_empty() => {
                let field = at("audio.media_id");
                if !audio.original_content_url.is_empty() {
                    refuse(
                        field,
                        "give either media_id or original_content_url, not both".into(),
                    );
                } else {
                    match find(&audio.media_id, Some(Kind::Audio)) {
                        Ok(upload) => {
                            audio.original_content_url =
                                variant_url(uploads, upload.variant(Role::Content));
                            if audio.duration_ms == 0 {
                                audio.duration_ms = upload.duration_ms as i64;
                            }
                            audio.media_id.clear();
                        }
                        Err(reason) => refuse(field, reason),
                    }
                }
            }
            Some(K::File(file)) => {
                if file.alt_text.chars().count() > MAX_ALT_TEXT {
                    refuse(
                        at("file.alt_text"),
                        format!("must be at most {MAX_ALT_TEXT} characters"),
                    );
                }
                if file.media_id.is_empty() {
                    refuse(
                        at("file.media_id"),
                        "required: an upload of this channel (UploadMedia)".into(),
                    );
                } else {
                    match find(&file.media_id, None) {
                        Ok(upload) => {
                            let url = variant_url(uploads, upload.variant(Role::Content));
                            let bubble = file_bubble(&upload, &url, &file.alt_text);
                            message.kind = Some(K::Flex(bubble));
                        }
                        Err(reason) => refuse(at("file.media_id"), reason),
                    }
                }
            }
            _ => {}
        }
        out.push(message);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// An upload of the channel, of `want`'s kind when given, or why not.
fn lookup(
    uploads: &Uploads,
    channel_id: &str,
    media_id: &str,
    want: Option<Kind>,
    now_ms: i64,
) -> Result<std::sync::Arc<Upload>, String> {
    let upload = uploads.get(channel_id, media_id, now_ms)?;
    match want {
        Some(kind) if upload.kind != kind => Err(format!(
            "{media_id} is a {} upload ({}); this message needs a {} upload",
            upload.kind.name(),
            upload.content_type,
            kind.name()
        )),
        _ => Ok(upload),
    }
}

fn variant_url(uploads: &Uploads, variant: Option<&crate::uploads::Variant>) -> String {
    variant.map(|v| uploads.url(&v.token)).unwrap_or_default()
}

/// The Flex bubble a file message is sent as (see `FileMessage`).
fn file_bubble(upload: &Upload, url: &str, alt_text: &str) -> pb::FlexMessage {
    let size = human_size(upload.size);
    let alt_text = if alt_text.is_empty() {
        let text = format!("File: {} ({size})", upload.file_name);
        // LINE's limit; file names are at most 255 characters, so this
        // only guards the arithmetic.
        text.chars().take(MAX_ALT_TEXT).collect()
    } else {
        alt_text.to_owned()
    };
    let contents = json!({
        "type": "bubble",
        "body": {
            "type": "box",
            "layout": "vertical",
            "spacing": "sm",
            "contents": [
                {"type": "text", "text": upload.file_name, "weight": "bold", "wrap": true},
                {"type": "text", "text": format!("{} · {size}", type_label(upload)), "size": "sm", "color": "#888888"},
            ],
        },
        "footer": {
            "type": "box",
            "layout": "vertical",
            "contents": [
                {"type": "button", "style": "primary", "action": {"type": "uri", "label": "Download", "uri": url}},
            ],
        },
    });
    pb::FlexMessage {
        alt_text,
        contents_json: contents.to_string(),
    }
}

/// A short name of the file's type: the extension of its name, else the
/// MIME subtype, in capitals ("PDF", "DOCX").
fn type_label(upload: &Upload) -> String {
    let from_name = upload
        .file_name
        .rsplit_once('.')
        .map(|(_, ext)| ext)
        .filter(|ext| {
            !ext.is_empty() && ext.len() <= 8 && ext.chars().all(|c| c.is_ascii_alphanumeric())
        });
    let label = match from_name {
        Some(ext) => ext.to_owned(),
        None => upload
            .content_type
            .rsplit('/')
            .next()
            .unwrap_or("file")
            .to_owned(),
    };
    label.to_ascii_uppercase()
}

/// Bytes as people read them: "840 B", "12.3 KB", "1.2 MB" (decimal).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_and_names_are_checked() {
        assert_eq!(mime_type("Image/PNG; q=1").unwrap(), "image/png");
        for bad in ["", "png", "image/", "/png", "image/png/x", "a b/c"] {
            assert!(mime_type(bad).is_err(), "{bad}");
        }
        assert_eq!(file_name_of("").unwrap(), "file");
        assert_eq!(file_name_of(" report.pdf ").unwrap(), "report.pdf");
        for bad in ["../x", "a\\b", "a\nb", "..", &"x".repeat(256)] {
            assert!(file_name_of(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(human_size(840), "840 B");
        assert_eq!(human_size(12_345), "12.3 KB");
        assert_eq!(human_size(1_234_567), "1.2 MB");
        assert_eq!(human_size(3_000_000_000), "3.0 GB");
    }
}
