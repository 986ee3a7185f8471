//! A stand-in for LINE's API on a loopback port: it records every request
//! and answers with responses a test scripts per path, or `200 {}`.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;

/// Marks a scripted answer that drops the connection (not a real status).
const RESET: u16 = 999;

/// One request LINE's stand-in received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When it arrived.
    pub received: std::time::Instant,
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    scripts: HashMap<String, VecDeque<Scripted>>,
}

/// The fake LINE server. Dropping it stops accepting connections.
pub struct FakeLine {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeLine {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let (addr, task) = super::http_stub::serve(move |request: Request<Incoming>| {
            let state = shared.clone();
            // A scripted status 0 drops the connection without answering.
            async move { answer(&state, request).await }
        })
        .await;
        Self { addr, state, task }
    }

    /// Base URL to configure as a LINE API base.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues an answer for the next request to `path` (without query).
    /// Status 0 drops the connection instead of answering.
    pub fn script(&self, path: &str, status: u16, headers: &[(&str, &str)], body: &str) {
        let status = if status == 0 { RESET } else { status };
        let scripted = Scripted {
            status: StatusCode::from_u16(status).expect("a valid status code"),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_owned(),
        };
        self.state
            .lock()
            .unwrap()
            .scripts
            .entry(path.to_owned())
            .or_default()
            .push_back(scripted);
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }
}

impl Drop for FakeLine {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(state: &Mutex<State>, request: Request<Incoming>) -> Option<Response<Full<Bytes>>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let scripted = {
        let mut state = state.lock().unwrap();
        state.requests.push(Recorded {
            method: parts.method.clone(),
            path: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            headers: parts.headers.clone(),
            body,
            received: std::time::Instant::now(),
        });
        state.scripts.get_mut(&path).and_then(VecDeque::pop_front)
    };
    let scripted = scripted.unwrap_or(Scripted {
        status: StatusCode::OK,
        headers: Vec::new(),
        body: "{}".into(),
    });
    if scripted.status.as_u16() == RESET {
        return None;
    }
    let mut response = Response::new(Full::new(Bytes::from(scripted.body)));
    *response.status_mut() = scripted.status;
    let headers = response.headers_mut();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert("x-line-request-id", uuid_like().parse().unwrap());
    for (name, value) in scripted.headers {
        headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    Some(response)
}

/// A request id in LINE's format (a UUID).
fn uuid_like() -> String {
    uuid::Uuid::new_v4().to_string()
}
