//! LINE as far as retry keys go, over real HTTP: the first request with a
//! key is accepted, later ones get 409 with the accepted request id, as
//! LINE answers. It also counts how many requests with one key were in
//! flight at once, to prove that only one process attempts a send at a
//! time.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

#[derive(Default)]
pub struct RetryKeyLine {
    /// Requests that got 200, by retry key.
    pub accepted: Mutex<HashMap<String, u32>>,
    /// How long each answer takes, so that a send can be caught mid-request.
    pub delay: Duration,
    in_flight: Mutex<HashMap<String, u32>>,
    /// Requests received, answered or not, by retry key.
    pub received: Mutex<HashMap<String, u32>>,
    /// The most requests with one retry key that were in flight at once.
    pub max_in_flight_per_key: AtomicU32,
}

impl RetryKeyLine {
    /// Requests being answered right now.
    pub fn in_flight_now(&self) -> u32 {
        self.in_flight.lock().unwrap().values().sum()
    }

    pub fn with_delay(delay: Duration) -> Self {
        Self {
            delay,
            ..Self::default()
        }
    }

    async fn answer(&self, key: String) -> Response<Full<Bytes>> {
        /// Counts a request out when it ends, also when its client goes
        /// away mid-request (a killed process) and hyper drops it.
        struct InFlight<'a>(&'a RetryKeyLine, String);
        impl Drop for InFlight<'_> {
            fn drop(&mut self) {
                if let Some(n) = self.0.in_flight.lock().unwrap().get_mut(&self.1) {
                    *n -= 1;
                }
            }
        }
        *self
            .received
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_default() += 1;
        let _in_flight = {
            let mut in_flight = self.in_flight.lock().unwrap();
            let now = in_flight.entry(key.clone()).or_default();
            *now += 1;
            self.max_in_flight_per_key.fetch_max(*now, Ordering::SeqCst);
            InFlight(self, key.clone())
        };
        tokio::time::sleep(self.delay).await;
        let mut accepted = self.accepted.lock().unwrap();
        let mut response = match accepted.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => {
                let mut r = Response::new(Full::new(Bytes::from_static(
                    br#"{"message":"The retry key is already accepted"}"#,
                )));
                *r.status_mut() = StatusCode::CONFLICT;
                r.headers_mut()
                    .insert("x-line-accepted-request-id", "accepted".parse().unwrap());
                r
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(1);
                Response::new(Full::new(Bytes::from_static(
                    br#"{"sentMessages":[{"id":"1"}]}"#,
                )))
            }
        };
        response
            .headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        response
    }
}

/// Serves `line` on an ephemeral loopback port; returns its base URL.
pub async fn start_line(line: Arc<RetryKeyLine>) -> String {
    let (addr, _) = super::http_stub::serve(move |request: Request<Incoming>| {
        let line = line.clone();
        let key = retry_key(&request);
        async move { Some(line.answer(key).await) }
    })
    .await;
    format!("http://{addr}")
}

/// The request's `X-Line-Retry-Key`, or "" without one.
pub fn retry_key<B>(request: &Request<B>) -> String {
    request
        .headers()
        .get("x-line-retry-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}
