//! How the operator commands (`tail`, `deliveries`) reach the service:
//! an address with or without a scheme, an API key as a bearer token, and
//! connection failures named by their cause.

use tonic::{Request, metadata::MetadataValue, transport::Channel};

use crate::tail::TailError;

/// `host:port` means plaintext `http://host:port`; a URL stays as it is.
pub(crate) fn endpoint_url(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    }
}

/// A transport error with every cause (tonic's own says only "transport
/// error"), naming an unresolvable host as such.
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut source = err.source();
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    let all = parts.join(": ");
    let lower = all.to_ascii_lowercase();
    if lower.contains("dns error") || lower.contains("failed to lookup address") {
        format!("the host name does not resolve ({all})")
    } else if lower.contains("connection refused") {
        format!("nothing listens there: the connection was refused ({all})")
    } else if all.is_empty() {
        err.to_string()
    } else {
        all
    }
}

/// A connected channel to `addr`.
pub(crate) async fn channel(addr: &str) -> Result<Channel, TailError> {
    let url = endpoint_url(addr);
    Channel::from_shared(url.clone())
        .map_err(|_| {
            TailError::Usage(format!(
                "--addr {addr}: expected host:port or http(s)://host:port"
            ))
        })?
        .connect()
        .await
        .map_err(|source| TailError::Connect {
            addr: url,
            reason: causes(&source),
        })
}

/// `message` with `authorization: Bearer <key>` when there is a key.
pub(crate) fn authorized<T>(message: T, api_key: Option<&str>) -> Result<Request<T>, TailError> {
    let mut request = Request::new(message);
    if let Some(key) = api_key {
        let value: MetadataValue<_> = format!("Bearer {key}")
            .parse()
            .map_err(|_| TailError::Usage("the API key is not a valid header value".into()))?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}
