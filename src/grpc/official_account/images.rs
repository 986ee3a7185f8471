//! A rich menu's image: SetRichMenuImage (a client stream, checked before
//! LINE sees a byte: JPEG or PNG by its bytes, at most 1 MB, the menu's
//! exact size) and GetRichMenuImage (LINE's image as a stream of chunks).

use std::{io::Cursor, pin::Pin};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Status, Streaming};

use super::{
    Violations, channel_id, line_for, path_id,
    rich_menus::{Size, unrecorded},
};
use crate::{channels::validate, line::client::ByteStream, proto::v1 as pb, services::Services};

/// LINE takes rich menu images of at most 1 MB.
pub(super) const MAX_IMAGE_BYTES: usize = 1024 * 1024;
/// Largest chunk GetRichMenuImage sends.
const CHUNK: usize = 64 * 1024;
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
const JPEG_SIGNATURE: &[u8] = &[0xff, 0xd8, 0xff];

pub type ImageStream =
    Pin<Box<dyn Stream<Item = Result<pb::GetRichMenuImageResponse, Status>> + Send + 'static>>;

/// An image that LINE will take for a menu of its size.
#[derive(Debug, Clone)]
pub(super) struct Image {
    pub content_type: &'static str,
    pub bytes: Bytes,
    pub width: u32,
    pub height: u32,
}

/// Checks `bytes` as a rich menu image: not empty, at most 1 MB, JPEG or
/// PNG by its signature (agreeing with `declared` when that is given), and
/// readable. Its size is compared with the menu's by [`fits`].
pub(super) fn check_image(
    violations: &mut Violations,
    field: &str,
    type_field: &str,
    bytes: Bytes,
    declared: &str,
) -> Option<Image> {
    if bytes.is_empty() {
        violations.add(field, "is required (a JPEG or PNG image)");
        return None;
    }
    if bytes.len() > MAX_IMAGE_BYTES {
        violations.add(
            field,
            format!(
                "must be at most {MAX_IMAGE_BYTES} bytes (1 MB, LINE's limit); got {}",
                bytes.len()
            ),
        );
        return None;
    }
    let (content_type, format) = if bytes.starts_with(PNG_SIGNATURE) {
        ("image/png", image::ImageFormat::Png)
    } else if bytes.starts_with(JPEG_SIGNATURE) {
        ("image/jpeg", image::ImageFormat::Jpeg)
    } else {
        violations.add(field, "must be a JPEG or PNG image");
        return None;
    };
    if !declared.is_empty() && !declared.eq_ignore_ascii_case(content_type) {
        violations.add(
            type_field,
            format!("says {declared:?} but the bytes are {content_type}"),
        );
        return None;
    }
    let reader = image::ImageReader::with_format(Cursor::new(&bytes[..]), format);
    match reader.into_dimensions() {
        Ok((width, height)) => Some(Image {
            content_type,
            bytes,
            width,
            height,
        }),
        Err(err) => {
            violations.add(field, format!("cannot be read as {content_type}: {err}"));
            None
        }
    }
}

/// Whether the image has exactly the menu's size; records why not.
pub(super) fn fits(violations: &mut Violations, field: &str, image: &Image, menu: Size) -> bool {
    if i64::from(image.width) == menu.width && i64::from(image.height) == menu.height {
        return true;
    }
    violations.add(
        field,
        format!(
            "is {}x{} pixels; the rich menu's size is {}x{}, which the image must match",
            image.width, image.height, menu.width, menu.height
        ),
    );
    false
}

/// The stream's first message (the target) and the image, read up to one
/// byte past the limit so that an oversized upload stops early.
async fn read_upload(
    mut stream: Streaming<pb::SetRichMenuImageRequest>,
) -> Result<(pb::RichMenuImageTarget, Bytes), Status> {
    use pb::set_rich_menu_image_request::Part;
    let first = stream.message().await?;
    let Some(pb::SetRichMenuImageRequest {
        part: Some(Part::Target(target)),
    }) = first
    else {
        return Err(super::super::status::invalid_field(
            "target",
            "the first message must be `target` (channel_id, rich_menu_id)",
        ));
    };
    let mut image = BytesMut::new();
    while let Some(message) = stream.message().await? {
        match message.part {
            Some(Part::Chunk(chunk)) => {
                if image.len() + chunk.len() > MAX_IMAGE_BYTES {
                    return Err(super::super::status::invalid_field(
                        "chunk",
                        format!(
                            "the image must be at most {MAX_IMAGE_BYTES} bytes (1 MB, LINE's limit)"
                        ),
                    ));
                }
                image.extend_from_slice(&chunk);
            }
            Some(Part::Target(_)) => {
                return Err(super::super::status::invalid_field(
                    "target",
                    "comes once, as the first message; later messages are chunks",
                ));
            }
            None => {}
        }
    }
    Ok((target, image.freeze()))
}

pub async fn set_rich_menu_image(
    services: &Services,
    stream: Streaming<pb::SetRichMenuImageRequest>,
) -> Result<pb::SetRichMenuImageResponse, Status> {
    let (target, bytes) = read_upload(stream).await?;
    let pb::RichMenuImageTarget {
        channel_id: id,
        rich_menu_id,
        content_type,
    } = target;
    let mut violations = Violations::new();
    let id = violations.check("target.channel_id", validate::channel_id(&id));
    let menu = path_id(&mut violations, "target.rich_menu_id", &rich_menu_id);
    let image = check_image(
        &mut violations,
        "chunk",
        "target.content_type",
        bytes,
        &content_type,
    );
    violations.into_result()?;
    let (menu, image) = (menu.ok_or_else(unrecorded)?, image.ok_or_else(unrecorded)?);
    let line = line_for(services, id).await?;
    // The menu's size is LINE's: ask for it, then compare before uploading.
    let size = line.rich_menu(&menu).await?.size;
    let mut violations = Violations::new();
    fits(
        &mut violations,
        "chunk",
        &image,
        Size {
            width: size.width,
            height: size.height,
        },
    );
    violations.into_result()?;
    let size_bytes = image.bytes.len() as i64;
    line.set_rich_menu_image(&menu, image.content_type, image.bytes.clone())
        .await?;
    Ok(pb::SetRichMenuImageResponse {
        content_type: image.content_type.to_owned(),
        size_bytes,
        width: i32::try_from(image.width).unwrap_or(i32::MAX),
        height: i32::try_from(image.height).unwrap_or(i32::MAX),
    })
}

pub async fn get_rich_menu_image(
    services: &Services,
    request: pb::GetRichMenuImageRequest,
) -> Result<ImageStream, Status> {
    let pb::GetRichMenuImageRequest {
        channel_id: id,
        rich_menu_id,
    } = request;
    let mut violations = Violations::new();
    let id = channel_id(&mut violations, &id);
    let menu = path_id(&mut violations, "rich_menu_id", &rich_menu_id);
    violations.into_result()?;
    let menu = menu.ok_or_else(unrecorded)?;
    let content = line_for(services, id).await?.rich_menu_image(&menu).await?;
    let metadata = pb::RichMenuImageMetadata {
        content_type: content
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".to_owned()),
        size_bytes: content.content_length.map(|size| size as i64),
    };
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(stream_image(content.body, metadata, tx));
    Ok(Box::pin(ReceiverStream::new(rx)))
}

type Sender = mpsc::Sender<Result<pb::GetRichMenuImageResponse, Status>>;

/// Relays LINE's body in chunks; a failed send means the client went away,
/// so reading stops.
async fn stream_image(mut body: ByteStream, metadata: pb::RichMenuImageMetadata, tx: Sender) {
    use pb::get_rich_menu_image_response::Part;
    let part = |part| pb::GetRichMenuImageResponse { part: Some(part) };
    if tx.send(Ok(part(Part::Metadata(metadata)))).await.is_err() {
        return;
    }
    loop {
        match body.next().await {
            Some(Ok(bytes)) => {
                for piece in bytes.chunks(CHUNK) {
                    if tx
                        .send(Ok(part(Part::Chunk(piece.to_vec()))))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            None => return,
            Some(Err(err)) => {
                let _ = tx
                    .send(Err(Status::unavailable(format!(
                        "{err}; discard the partial image and call again"
                    ))))
                    .await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG of `width` x `height`, encoded by the `image` crate.
    pub(crate) fn png(width: u32, height: u32) -> Bytes {
        let mut out = Cursor::new(Vec::new());
        image::RgbImage::new(width, height)
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        Bytes::from(out.into_inner())
    }

    fn checked(bytes: Bytes, declared: &str) -> Result<Image, String> {
        let mut violations = Violations::new();
        match check_image(
            &mut violations,
            "image",
            "image_content_type",
            bytes,
            declared,
        ) {
            Some(image) => Ok(image),
            None => Err(violations.into_result().unwrap_err().message().to_owned()),
        }
    }

    #[test]
    fn images_are_checked_by_their_bytes() {
        let image = checked(png(800, 270), "").unwrap();
        assert_eq!(
            (image.content_type, image.width, image.height),
            ("image/png", 800, 270)
        );
        assert!(checked(png(800, 270), "image/png").is_ok());
        let wrong = checked(png(800, 270), "image/jpeg").unwrap_err();
        assert!(wrong.contains("image_content_type"), "{wrong}");
        assert!(checked(Bytes::new(), "").unwrap_err().contains("required"));
        assert!(
            checked(Bytes::from_static(b"GIF89a...."), "")
                .unwrap_err()
                .contains("JPEG or PNG")
        );
        let truncated = png(800, 270).slice(..12);
        assert!(
            checked(truncated, "")
                .unwrap_err()
                .contains("cannot be read")
        );
        let mut big = png(800, 270).to_vec();
        big.resize(MAX_IMAGE_BYTES + 1, 0);
        assert!(
            checked(Bytes::from(big), "")
                .unwrap_err()
                .contains("at most")
        );
    }

    #[test]
    fn the_image_must_have_the_menus_size() {
        let image = checked(png(800, 270), "").unwrap();
        let mut violations = Violations::new();
        assert!(fits(
            &mut violations,
            "image",
            &image,
            Size {
                width: 800,
                height: 270
            }
        ));
        assert!(!fits(
            &mut violations,
            "image",
            &image,
            Size {
                width: 2500,
                height: 843
            }
        ));
        let message = violations.into_result().unwrap_err().message().to_owned();
        assert!(
            message.contains("800x270") && message.contains("2500x843"),
            "{message}"
        );
    }
}
