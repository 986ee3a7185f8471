//! `GET` and `HEAD /media/{token}`: agents' uploads served to LINE, which
//! fetches the URLs of image, video and audio messages itself (and LINE's
//! video player asks for byte ranges). Tokens are looked up in the
//! uploads' index; a request never names a path. Unknown and expired
//! tokens answer 404, alike.

use std::io::SeekFrom;

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Empty, Full, StreamBody, combinators::BoxBody};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncSeekExt as _};

use crate::uploads::{Kind, Role, Served, Stored, Uploads};

/// Every response body of the HTTP listener: media streams from disk,
/// everything else is one buffer.
pub type Body = BoxBody<Bytes, std::io::Error>;

pub const PREFIX: &str = "/media/";

/// The longest a cache may keep a response (a year), however long the
/// upload stays.
const MAX_AGE_SECS: i64 = 365 * 24 * 3600;
/// Bytes read from disk per body frame.
const READ_CHUNK: usize = 64 * 1024;

pub fn full(body: Full<Bytes>) -> Body {
    body.map_err(|never| match never {}).boxed()
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(full(Full::new(Bytes::from_static(text.as_bytes()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Answers a request for `token` at `now_ms`.
pub async fn serve(
    method: &Method,
    headers: &HeaderMap,
    token: &str,
    uploads: &Uploads,
    now_ms: i64,
) -> Response<Body> {
    if *method != Method::GET && *method != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let served = match uploads.served(token, now_ms).await {
        Ok(Some(served)) => served,
        Ok(None) => return plain(StatusCode::NOT_FOUND, "not found\n"),
        Err(err) => return unavailable(&err),
    };
    // Pruned between the lookup and now: gone, as for an unknown token.
    let (size, mut file) = match &served.stored {
        Stored::File(path) => {
            let Ok(file) = tokio::fs::File::open(path).await else {
                return plain(StatusCode::NOT_FOUND, "not found\n");
            };
            match file.metadata().await {
                Ok(metadata) => (metadata.len(), Some(file)),
                Err(err) => {
                    tracing::warn!(error = %err, "reading an upload's size failed");
                    return plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file\n");
                }
            }
        }
        Stored::Shared(name) => match uploads.shared_size(name).await {
            Ok(Some(size)) => (size, None),
            Ok(None) => return plain(StatusCode::NOT_FOUND, "not found\n"),
            Err(err) => return unavailable(&err),
        },
    };
    let etag = format!("\"{}\"", served.variant.sha256);
    let mut response = Response::new(empty());
    describe(response.headers_mut(), &served, &etag, now_ms);

    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| matches!(tag.trim(), t if t == etag || t == "*"))
        })
    {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return response;
    }

    // A Range whose If-Range names another version is ignored (RFC 9110
    // §13.1.5): the whole, current file is sent.
    let if_range_holds = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == etag));
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| if_range_holds)
        .and_then(|v| byte_range(v, size));
    let (start, len) = match range {
        None => (0, size),
        Some(Err(Unsatisfiable)) => {
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            set(
                response.headers_mut(),
                header::CONTENT_RANGE,
                &format!("bytes */{size}"),
            );
            set(response.headers_mut(), header::CONTENT_LENGTH, "0");
            return response;
        }
        Some(Ok((first, last))) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            set(
                response.headers_mut(),
                header::CONTENT_RANGE,
                &format!("bytes {first}-{last}/{size}"),
            );
            (first, last - first + 1)
        }
    };
    set(
        response.headers_mut(),
        header::CONTENT_LENGTH,
        &len.to_string(),
    );
    if *method == Method::HEAD || len == 0 {
        return response;
    }
    *response.body_mut() = match (&served.stored, file.take()) {
        (Stored::File(_), Some(mut file)) => {
            if start > 0
                && let Err(err) = file.seek(SeekFrom::Start(start)).await
            {
                tracing::warn!(error = %err, "seeking in an upload failed");
                return plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file\n");
            }
            let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), READ_CHUNK)
                .map_ok(hyper::body::Frame::data);
            StreamBody::new(stream).boxed()
        }
        (Stored::Shared(name), _) => match uploads.open_shared(name, start).await {
            Ok(Some(shared)) => pumped(shared.reader, len),
            Ok(None) => return plain(StatusCode::NOT_FOUND, "not found\n"),
            Err(err) => return unavailable(&err),
        },
        (Stored::File(_), None) => unreachable!("a file upload was opened above"),
    };
    response
}

/// A body read from `reader` by a task of its own: a NATS object reader is
/// not `Sync`, which a response body must be.
fn pumped(reader: Box<dyn AsyncRead + Send + Unpin>, len: u64) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut chunks = tokio_util::io::ReaderStream::with_capacity(reader.take(len), READ_CHUNK);
        while let Some(chunk) = futures_util::StreamExt::next(&mut chunks).await {
            // The client went away: stop reading.
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
    });
    StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(rx).map_ok(hyper::body::Frame::data),
    )
    .boxed()
}

/// 503 when the shared files bucket (NATS) cannot be read: LINE asks
/// again later.
fn unavailable(err: &crate::store::StoreError) -> Response<Body> {
    tracing::warn!(error = %err, "reading an upload from NATS failed");
    let mut response = plain(StatusCode::SERVICE_UNAVAILABLE, "try again later\n");
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// The headers every answer for an existing file carries.
fn describe(headers: &mut HeaderMap, served: &Served, etag: &str, now_ms: i64) {
    set(headers, header::CONTENT_TYPE, &served.variant.content_type);
    set(headers, header::ETAG, etag);
    set(headers, header::ACCEPT_RANGES, "bytes");
    // A token's bytes never change: cacheable until the upload expires.
    let max_age = ((served.expire_time_ms - now_ms) / 1000).clamp(0, MAX_AGE_SECS);
    set(
        headers,
        header::CACHE_CONTROL,
        &format!("public, max-age={max_age}, immutable"),
    );
    // Uploads are the agents' files, not pages of this service: never
    // run as one, whatever their type.
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; sandbox",
    );
    let inline = served.variant.role != Role::Content || served.kind != Kind::File;
    set(
        headers,
        header::CONTENT_DISPOSITION,
        &content_disposition(inline, &served.file_name, served.variant.role),
    );
}

/// `inline` or `attachment` with the file name: ASCII in `filename`, the
/// exact name in `filename*` (RFC 6266, RFC 8187).
fn content_disposition(inline: bool, file_name: &str, role: Role) -> String {
    let name = match role {
        Role::Content => file_name.to_owned(),
        Role::Image | Role::Preview => {
            let stem = file_name
                .rsplit_once('.')
                .map_or(file_name, |(stem, _)| stem);
            let suffix = if role == Role::Preview {
                "-preview"
            } else {
                ""
            };
            format!("{stem}{suffix}.jpg")
        }
    };
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

fn set(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    // Every value here is built from checked parts; one that is not a
    // valid header value is left out rather than sent broken.
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// A range no byte of the file is in (416).
#[derive(Debug, PartialEq, Eq)]
struct Unsatisfiable;

/// The first and last byte of a single `bytes=` range of a `size`-byte
/// file. `None` when the header is to be ignored (another unit, several
/// ranges, bad syntax): the whole file is sent, as RFC 9110 allows.
fn byte_range(value: &str, size: u64) -> Option<Result<(u64, u64), Unsatisfiable>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        if suffix == 0 || size == 0 {
            return Some(Err(Unsatisfiable));
        }
        return Some(Ok((size - suffix.min(size), size - 1)));
    }
    let first: u64 = first.parse().ok()?;
    let last = match last {
        "" => None,
        text => Some(text.parse::<u64>().ok()?),
    };
    if last.is_some_and(|last| last < first) {
        return None;
    }
    if first >= size {
        return Some(Err(Unsatisfiable));
    }
    let last = last.map_or(size - 1, |last| last.min(size - 1));
    Some(Ok((first, last)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(byte_range("bytes=0-99", 1000), Some(Ok((0, 99))));
        assert_eq!(byte_range("bytes=900-", 1000), Some(Ok((900, 999))));
        assert_eq!(byte_range("bytes=-100", 1000), Some(Ok((900, 999))));
        assert_eq!(byte_range("bytes=-5000", 1000), Some(Ok((0, 999))));
        assert_eq!(byte_range("bytes=990-5000", 1000), Some(Ok((990, 999))));
        assert_eq!(byte_range("bytes=1000-", 1000), Some(Err(Unsatisfiable)));
        assert_eq!(byte_range("bytes=-0", 1000), Some(Err(Unsatisfiable)));
        for ignored in [
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=5-1",
            "bytes=a-b",
            "bytes",
        ] {
            assert_eq!(byte_range(ignored, 1000), None, "{ignored}");
        }
    }

    #[test]
    fn file_names_are_quoted_safely() {
        assert_eq!(
            content_disposition(false, "report \"Q3\".pdf", Role::Content),
            "attachment; filename=\"report _Q3_.pdf\"; filename*=UTF-8''report%20%22Q3%22.pdf"
        );
        assert_eq!(
            content_disposition(true, "猫.webp", Role::Preview),
            "inline; filename=\"_-preview.jpg\"; filename*=UTF-8''%E7%8C%AB-preview.jpg"
        );
    }
}
