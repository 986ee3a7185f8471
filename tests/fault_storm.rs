//! Fault storm: 10,000 pushes against a LINE stand-in that fails a lot, the
//! way LINE and networks fail: 30 % 5xx, 10 % 429 (the rate limit), 10 %
//! hangs past the client's timeout (half of them after accepting the
//! message), 5 % connection resets, and 409 for a retry key it accepted
//! before. Every send must end `delivered`, and LINE must have accepted each
//! retry key exactly once: nothing lost, nothing doubled, nothing stuck.

mod support;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use line_adapter::proto::v1 as pb;
use support::{TestApp, create_channel_with_token, test_settings};

const SENDS: usize = 10_000;
const CLIENTS: usize = 500;
/// The service's LINE timeout in this test; hangs last longer.
const TIMEOUT_MS: u64 = 300;
const HANG: Duration = Duration::from_millis(1_000);

#[derive(Default)]
struct Storm {
    rng: Mutex<Option<fastrand::Rng>>,
    /// Retry key → times LINE accepted it (answered or not).
    accepted: Mutex<HashMap<String, u32>>,
    /// Outcome → count, for the report.
    outcomes: Mutex<HashMap<&'static str, u64>>,
}

enum Outcome {
    Answer(Response<Full<Bytes>>),
    Reset,
}

impl Storm {
    fn count(&self, what: &'static str) {
        *self.outcomes.lock().unwrap().entry(what).or_default() += 1;
    }

    fn accept(&self, key: &str) {
        *self
            .accepted
            .lock()
            .unwrap()
            .entry(key.to_owned())
            .or_default() += 1;
    }

    async fn handle(&self, request: Request<Incoming>) -> Outcome {
        let key = support::retry_key_line::retry_key(&request);
        if self.accepted.lock().unwrap().contains_key(&key) {
            self.count("409 already accepted");
            return Outcome::Answer(answer(
                409,
                &[("x-line-accepted-request-id", &format!("accepted-{key}"))],
                r#"{"message":"The retry key is already accepted","sentMessages":[{"id":"1"}]}"#,
            ));
        }
        let roll = {
            let mut rng = self.rng.lock().unwrap();
            rng.get_or_insert_with(|| fastrand::Rng::with_seed(20261127))
                .u32(0..100)
        };
        match roll {
            0..30 => {
                self.count("5xx");
                let status = [500, 502, 503][roll as usize % 3];
                Outcome::Answer(answer(status, &[], r#"{"message":"Internal error"}"#))
            }
            30..40 => {
                self.count("429");
                // Without Retry-After: with it, each 429 would hold every
                // push of the channel back for a second (line::pace), and
                // at 10 % of all answers nothing would be left to storm.
                Outcome::Answer(answer(
                    429,
                    &[],
                    r#"{"message":"The API rate limit has been exceeded. Try again later."}"#,
                ))
            }
            40..45 => {
                // Accepted, but the answer comes after the client gave up.
                self.count("hang after accepting");
                self.accept(&key);
                tokio::time::sleep(HANG).await;
                Outcome::Answer(answer(200, &[], r#"{"sentMessages":[{"id":"1"}]}"#))
            }
            45..50 => {
                self.count("hang, nothing sent");
                tokio::time::sleep(HANG).await;
                Outcome::Answer(answer(503, &[], r#"{"message":"Internal error"}"#))
            }
            50..55 => {
                self.count("reset");
                Outcome::Reset
            }
            _ => {
                self.count("200");
                self.accept(&key);
                Outcome::Answer(answer(200, &[], r#"{"sentMessages":[{"id":"1"}]}"#))
            }
        }
    }
}

fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    for (name, value) in headers {
        response.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}

async fn start_storm(storm: Arc<Storm>) -> String {
    let (addr, _) = support::http_stub::serve(move |request: Request<Incoming>| {
        let storm = storm.clone();
        async move {
            match storm.handle(request).await {
                Outcome::Answer(response) => Some(response),
                Outcome::Reset => None,
            }
        }
    })
    .await;
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_sends_through_a_fault_storm_are_delivered_once_each() {
    let storm = Arc::new(Storm::default());
    let line = start_storm(storm.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(test_settings(dir.path(), |layer| {
        layer.line_api_base = Some(line.clone());
        layer.line_data_api_base = Some(line.clone());
        layer.line_request_timeout_ms = Some(TIMEOUT_MS);
        layer.outbox_max_backoff_ms = Some(2_000);
        // These 429s are noise, not a limit the storm's pace exceeds: a
        // push rate far above what it reaches keeps the slowdowns they
        // cause (to a sixteenth at most) from pacing the storm.
        layer.line_rate_limits = Some("push=160000/s".into());
    }))
    .await;
    let channel = create_channel_with_token(&app).await;
    let started = Instant::now();

    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let addr = app.grpc_addr;
            let channel_id = channel.id.clone();
            tokio::spawn(async move {
                let mut messaging =
                    pb::messaging_client::MessagingClient::connect(format!("http://{addr}"))
                        .await
                        .unwrap();
                let mut ids = Vec::new();
                for n in 0..SENDS / CLIENTS {
                    let request = pb::PushRequest {
                        // A client that lost an answer asks again with the
                        // same key and gets the same delivery.
                        idempotency_key: format!("storm-{client}-{n}"),
                        ..support::text_push(
                            &channel_id,
                            &format!("U{client:04}{n:04}"),
                            &format!("storm {client} {n}"),
                        )
                    };
                    let mut tries = 0;
                    let delivery = loop {
                        tries += 1;
                        match messaging.push(request.clone()).await {
                            Ok(response) => break response.into_inner().delivery.unwrap(),
                            Err(status) if tries < 5 => {
                                eprintln!("push {client}/{n} try {tries}: {status:?}");
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                            Err(status) => panic!("push {client}/{n} refused: {status:?}"),
                        }
                    };
                    ids.push(delivery.id);
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::with_capacity(SENDS);
    for task in tasks {
        ids.extend(task.await.unwrap());
    }
    assert_eq!(ids.len(), SENDS);

    // Every send reaches `delivered` within a bound: none stuck.
    let mut messaging = app.messaging().await;
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut states: HashMap<i32, usize> = HashMap::new();
    for id in &ids {
        loop {
            let delivery = messaging
                .get_delivery(pb::GetDeliveryRequest {
                    delivery_id: id.clone(),
                })
                .await
                .unwrap()
                .into_inner()
                .delivery
                .unwrap();
            let state = delivery.state();
            if state != pb::DeliveryState::Queued && state != pb::DeliveryState::Sending {
                *states.entry(state as i32).or_default() += 1;
                assert_eq!(
                    state,
                    pb::DeliveryState::Delivered,
                    "{id} ended {state:?}: {delivery:?}"
                );
                break;
            }
            assert!(Instant::now() < deadline, "{id} stuck in {state:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let elapsed = started.elapsed();

    let accepted = storm.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), SENDS, "every retry key accepted");
    assert!(
        accepted.values().all(|&times| times == 1),
        "no retry key accepted twice"
    );
    let outcomes = storm.outcomes.lock().unwrap().clone();
    for storm_kind in [
        "5xx",
        "429",
        "hang after accepting",
        "hang, nothing sent",
        "reset",
        "409 already accepted",
    ] {
        assert!(
            outcomes.get(storm_kind).copied().unwrap_or(0) > 0,
            "the storm included {storm_kind}: {outcomes:?}"
        );
    }
    eprintln!(
        "fault storm: {SENDS} sends delivered once each in {:.1} s; LINE answered {outcomes:?}",
        elapsed.as_secs_f64()
    );
}
