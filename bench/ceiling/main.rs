//! The ceiling of webhook ingest on this machine (issue 21): a bare hyper
//! server that reads the body, checks `x-line-signature` (HMAC-SHA256 under
//! the channel secret, constant-time) and answers 200, keeping nothing and
//! parsing nothing. `bench/run.sh` runs it beside line-adapter and the Node
//! peer; line-adapter's events/s over this one's say how much of the
//! machine's limit the durable path reaches.
//!
//!   CHANNEL_SECRET=... PORT=... cargo run --release --example bare_hyper_ceiling
//!
//! `GET /healthz` answers 200 (for the bench to wait on); `POST` to any path
//! is a webhook: 200 with a signature that matches, 401 otherwise.

use std::net::SocketAddr;

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use bytes::Bytes;
use hmac::{Hmac, KeyInit as _, Mac as _};
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn answer(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

async fn handle(
    secret: &'static [u8],
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    if request.method() == Method::GET {
        return Ok(answer(StatusCode::OK, "ok\n"));
    }
    let signature = request
        .headers()
        .get("x-line-signature")
        .and_then(|v| BASE64.decode(v.as_bytes()).ok());
    let body = request.into_body().collect().await?.to_bytes();
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(&body);
    Ok(match signature {
        Some(signature) if mac.verify_slice(&signature).is_ok() => answer(StatusCode::OK, "{}"),
        _ => answer(StatusCode::UNAUTHORIZED, "bad signature\n"),
    })
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let secret: &'static [u8] = std::env::var("CHANNEL_SECRET")
        .map_err(|_| std::io::Error::other("CHANNEL_SECRET is required"))?
        .into_bytes()
        .leak();
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3001);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("listening on {port}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(secret, request));
            // HTTP/1.1 keep-alive, as LINE and the bench's wrk use it.
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
