//! The HTTP server under every LINE stand-in: a handler served over HTTP/1
//! and HTTP/2 on an ephemeral loopback port, one task per connection.

use std::{future::Future, net::SocketAddr};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::{net::TcpListener, task::JoinHandle};

/// What a handler gives: an answer, or `None` to drop the connection
/// without one, as a reset or a crash of LINE would.
pub type Answer = Option<Response<Full<Bytes>>>;

/// Serves `handler` until the returned task is aborted (or the test ends).
pub async fn serve<F, Fut>(handler: F) -> (SocketAddr, JoinHandle<()>)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let answer = handler(request);
                    async move {
                        answer
                            .await
                            .ok_or_else(|| std::io::Error::other("connection dropped unanswered"))
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, task)
}
