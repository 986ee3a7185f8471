//! What an uploaded file is, from its bytes (never from what the caller
//! declared), and what LINE needs made from it: image previews and
//! conversions (the `image` crate), audio and video durations (the `mp4`
//! crate). Everything here is blocking: callers run it on a blocking
//! thread.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Read as _, Write as _},
    path::Path,
};

use image::{DynamicImage, ImageDecoder as _, ImageFormat, ImageReader, codecs::jpeg::JpegEncoder};
use serde::{Deserialize, Serialize};

/// LINE's limit for an image's original (messaging-api.yml `ImageMessage`:
/// 10 MB), as decimal megabytes so that no reading of "MB" is exceeded.
pub const MAX_IMAGE_BYTES: u64 = 10_000_000;
/// LINE's limit for an image preview (1 MB).
pub const MAX_PREVIEW_BYTES: u64 = 1_000_000;
/// LINE's limit for video and audio (200 MB); also what a file may be.
pub const MAX_MEDIA_BYTES: u64 = 200_000_000;
/// The longest side of a preview, in pixels.
pub const PREVIEW_SIDE: u32 = 1024;
/// The largest side of an image decoded here: bounds the memory a decode
/// takes (10,000² RGBA is 400 MB at most; usual photos are far smaller).
pub const MAX_IMAGE_SIDE: u32 = 10_000;
/// Memory one image decode may allocate.
const MAX_DECODE_ALLOC: u64 = 512 * 1024 * 1024;
/// Bytes read from the start of a file to recognize its type.
const SNIFF_BYTES: usize = 64 * 1024;
/// JPEG qualities tried, best first, until the result fits its limit.
const QUALITIES: [u8; 4] = [85, 75, 60, 45];

/// What an upload can be sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Image,
    Video,
    Audio,
    File,
}

impl Kind {
    /// The kind a declared MIME type asks for.
    pub fn declared(content_type: &str) -> Kind {
        match content_type.split('/').next().unwrap_or_default() {
            "image" => Kind::Image,
            "video" => Kind::Video,
            "audio" => Kind::Audio,
            _ => Kind::File,
        }
    }

    /// The largest upload of this kind, in bytes.
    pub fn max_bytes(self) -> u64 {
        match self {
            Kind::Image => MAX_IMAGE_BYTES,
            Kind::Video | Kind::Audio | Kind::File => MAX_MEDIA_BYTES,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Video => "video",
            Kind::Audio => "audio",
            Kind::File => "file",
        }
    }
}

/// What the bytes turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspected {
    pub kind: Kind,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub duration_ms: u64,
    /// Images: a JPEG to send instead of the upload (WebP, GIF).
    pub needs_conversion: bool,
}

/// Why the bytes are refused, said to the caller (field `start.content_type`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Recognizes `path` and checks it is what `declared_type` says. Images
/// come back decoded too (orientation applied), for their previews.
pub fn inspect(
    path: &Path,
    declared_type: &str,
) -> Result<(Inspected, Option<DynamicImage>), Refused> {
    let declared = Kind::declared(declared_type);
    let detected = sniff(path).map_err(|e| Refused(format!("cannot read the upload: {e}")))?;
    let detected_type = detected.map(|t| t.mime_type()).unwrap_or("");
    let seen = if detected_type.is_empty() {
        "bytes of no type recognized here".to_owned()
    } else {
        detected_type.to_owned()
    };
    match declared {
        Kind::Image => {
            let format = match detected_type {
                "image/png" => ImageFormat::Png,
                "image/jpeg" => ImageFormat::Jpeg,
                "image/webp" => ImageFormat::WebP,
                "image/gif" => ImageFormat::Gif,
                _ => {
                    return Err(Refused(format!(
                        "declared {declared_type} but the bytes are {seen}: images must be PNG, JPEG, WebP or GIF"
                    )));
                }
            };
            let image = decode(path, format)
                .map_err(|e| Refused(format!("the {detected_type} image cannot be read: {e}")))?;
            let inspected = Inspected {
                kind: Kind::Image,
                content_type: detected_type.to_owned(),
                width: image.width(),
                height: image.height(),
                duration_ms: 0,
                needs_conversion: !matches!(format, ImageFormat::Png | ImageFormat::Jpeg),
            };
            Ok((inspected, Some(image)))
        }
        Kind::Video | Kind::Audio => {
            if !is_mp4_family(detected_type) {
                let want = if declared == Kind::Video {
                    "videos must be MP4"
                } else {
                    "audio must be M4A (AAC in an MP4 container); send other formats by URL with duration_ms"
                };
                return Err(Refused(format!(
                    "declared {declared_type} but the bytes are {seen}: {want}"
                )));
            }
            let movie = read_mp4(path)?;
            let inspected = match (declared, movie.has_video, movie.has_audio) {
                (Kind::Video, true, _) => Ok(Inspected {
                    kind: Kind::Video,
                    content_type: "video/mp4".into(),
                    width: 0,
                    height: 0,
                    duration_ms: movie.duration_ms,
                    needs_conversion: false,
                }),
                (Kind::Video, false, _) => Err(Refused(format!(
                    "declared {declared_type} but the MP4 has no video track: upload it as audio/mp4"
                ))),
                (_, false, true) if movie.duration_ms > 0 => Ok(Inspected {
                    kind: Kind::Audio,
                    content_type: "audio/mp4".into(),
                    width: 0,
                    height: 0,
                    duration_ms: movie.duration_ms,
                    needs_conversion: false,
                }),
                (_, false, true) => Err(Refused(
                    "the M4A's duration cannot be read (its container says 0)".into(),
                )),
                (_, true, _) => Err(Refused(format!(
                    "declared {declared_type} but the MP4 has a video track: upload it as video/mp4"
                ))),
                (_, false, false) => Err(Refused(format!(
                    "declared {declared_type} but the MP4 has no AAC audio track"
                ))),
            }?;
            Ok((inspected, None))
        }
        Kind::File => {
            if let Some(other) = detected.map(|t| Kind::declared(t.mime_type()))
                && other != Kind::File
            {
                return Err(Refused(format!(
                    "declared {declared_type} but the bytes are {detected_type}: declare {detected_type} to send it as {} (a file message accepts any upload)",
                    other.name()
                )));
            }
            let inspected = Inspected {
                kind: Kind::File,
                content_type: if detected_type.is_empty() {
                    declared_type.to_owned()
                } else {
                    detected_type.to_owned()
                },
                width: 0,
                height: 0,
                duration_ms: 0,
                needs_conversion: false,
            };
            Ok((inspected, None))
        }
    }
}

/// The type `infer` recognizes from the first bytes, if any.
fn sniff(path: &Path) -> std::io::Result<Option<infer::Type>> {
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    File::open(path)?
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)?;
    Ok(infer::get(&head))
}

/// `infer`'s names for ISO base media files LINE may play (not QuickTime).
fn is_mp4_family(mime: &str) -> bool {
    matches!(
        mime,
        "video/mp4" | "audio/m4a" | "audio/mp4" | "video/x-m4v"
    )
}

struct Movie {
    has_video: bool,
    has_audio: bool,
    duration_ms: u64,
}

/// Reads an MP4's header boxes (the media data is skipped, not read).
fn read_mp4(path: &Path) -> Result<Movie, Refused> {
    let unreadable = |e: String| Refused(format!("the MP4 container cannot be read: {e}"));
    let file = File::open(path).map_err(|e| unreadable(e.to_string()))?;
    let size = file
        .metadata()
        .map_err(|e| unreadable(e.to_string()))?
        .len();
    // The parser panics on some malformed boxes (e.g. a zero timescale in
    // its own helpers, which are not used here): a panic is a refusal.
    let parsed = std::panic::catch_unwind(move || {
        mp4::Mp4Reader::read_header(BufReader::new(file), size).map(|reader| {
            let mut movie = Movie {
                has_video: false,
                has_audio: false,
                duration_ms: scaled_ms(reader.moov.mvhd.duration, reader.moov.mvhd.timescale),
            };
            let mut longest = 0;
            for track in reader.tracks().values() {
                match track.track_type() {
                    Ok(mp4::TrackType::Video) => movie.has_video = true,
                    Ok(mp4::TrackType::Audio) if track.trak.mdia.minf.stbl.stsd.mp4a.is_some() => {
                        movie.has_audio = true
                    }
                    _ => {}
                }
                let mdhd = &track.trak.mdia.mdhd;
                longest = longest.max(scaled_ms(mdhd.duration, mdhd.timescale));
            }
            if movie.duration_ms == 0 {
                movie.duration_ms = longest;
            }
            movie
        })
    });
    match parsed {
        Ok(Ok(movie)) => Ok(movie),
        Ok(Err(e)) => Err(unreadable(e.to_string())),
        Err(_) => Err(unreadable("malformed boxes".into())),
    }
}

/// `units` of `1/timescale` s in milliseconds; 0 for a zero timescale.
fn scaled_ms(units: u64, timescale: u32) -> u64 {
    if timescale == 0 {
        return 0;
    }
    (u128::from(units) * 1000 / u128::from(timescale)).min(u128::from(u64::MAX)) as u64
}

/// Decodes an image with EXIF orientation applied, within the limits.
pub fn decode(path: &Path, format: ImageFormat) -> image::ImageResult<DynamicImage> {
    let mut reader = ImageReader::with_format(BufReader::new(File::open(path)?), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder()?;
    // An unreadable orientation tag is no reason to refuse the picture.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// Writes `image` as a JPEG of at most `max_bytes` whose longest side is at
/// most `max_side` to `target`: the best quality that fits, then smaller
/// sizes. Returns the written size and dimensions.
pub fn write_jpeg(
    image: &DynamicImage,
    max_side: u32,
    max_bytes: u64,
    target: &Path,
) -> std::io::Result<(u64, u32, u32)> {
    let mut side = max_side.min(image.width().max(image.height()));
    loop {
        let scaled = if image.width().max(image.height()) > side {
            image.resize(side, side, image::imageops::FilterType::Triangle)
        } else {
            image.clone()
        };
        let rgb = over_white(&scaled);
        for quality in QUALITIES {
            let mut bytes = Vec::new();
            JpegEncoder::new_with_quality(&mut bytes, quality)
                .encode_image(&rgb)
                .map_err(std::io::Error::other)?;
            if bytes.len() as u64 <= max_bytes {
                let mut file = BufWriter::new(File::create(target)?);
                file.write_all(&bytes)?;
                let file = file.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()?;
                return Ok((bytes.len() as u64, rgb.width(), rgb.height()));
            }
        }
        if side <= 64 {
            return Err(std::io::Error::other(
                "the image does not fit the JPEG size limit even at 64 px",
            ));
        }
        side = side * 3 / 4;
    }
}

/// RGB with any transparency composed over white (JPEG has no alpha; a
/// dropped alpha channel would show what transparent pixels hide, often
/// black).
fn over_white(image: &DynamicImage) -> DynamicImage {
    if !image.color().has_alpha() {
        return DynamicImage::ImageRgb8(image.to_rgb8());
    }
    let rgba = image.to_rgba8();
    let mut rgb = image::RgbImage::new(rgba.width(), rgba.height());
    for (out, pixel) in rgb.pixels_mut().zip(rgba.pixels()) {
        let [r, g, b, a] = pixel.0;
        let a = u16::from(a);
        let blend = |c: u8| ((u16::from(c) * a + 255 * (255 - a)) / 255) as u8;
        *out = image::Rgb([blend(r), blend(g), blend(b)]);
    }
    DynamicImage::ImageRgb8(rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_survive_a_zero_timescale() {
        assert_eq!(scaled_ms(44_100, 44_100), 1000);
        assert_eq!(scaled_ms(5, 0), 0);
        assert_eq!(scaled_ms(u64::MAX, 1), u64::MAX);
    }

    #[test]
    fn declared_types_choose_the_kind() {
        assert_eq!(Kind::declared("image/webp"), Kind::Image);
        assert_eq!(Kind::declared("video/mp4"), Kind::Video);
        assert_eq!(Kind::declared("audio/mp4"), Kind::Audio);
        assert_eq!(Kind::declared("application/pdf"), Kind::File);
        assert_eq!(Kind::Image.max_bytes(), 10_000_000);
    }

    #[test]
    fn transparency_goes_over_white() {
        let mut rgba = image::RgbaImage::new(2, 1);
        rgba.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
        rgba.put_pixel(1, 0, image::Rgba([10, 20, 30, 255]));
        let rgb = over_white(&DynamicImage::ImageRgba8(rgba)).to_rgb8();
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 0).0, [10, 20, 30]);
    }

    #[test]
    fn previews_fit_their_limits() {
        let dir = tempfile::tempdir().unwrap();
        // Noise compresses badly: the quality ladder and the size steps run.
        let mut rng = fastrand::Rng::with_seed(7);
        let noisy = image::RgbImage::from_fn(2000, 1500, |_, _| {
            image::Rgb([rng.u8(..), rng.u8(..), rng.u8(..)])
        });
        let target = dir.path().join("p.jpg");
        let (size, w, h) = write_jpeg(
            &DynamicImage::ImageRgb8(noisy),
            PREVIEW_SIDE,
            200_000,
            &target,
        )
        .unwrap();
        assert!(size <= 200_000, "{size}");
        assert_eq!(std::fs::metadata(&target).unwrap().len(), size);
        assert!(w <= PREVIEW_SIDE && h <= PREVIEW_SIDE && w > h, "{w}x{h}");
    }
}
