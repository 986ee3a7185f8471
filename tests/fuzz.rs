//! Fuzzing on stable Rust, bounded for CI: the inputs anyone on the
//! internet (webhooks) or any caller (messages) controls, mutated at random
//! by proptest, must never panic and must keep their invariants. The same
//! functions are libFuzzer targets in `fuzz/` for long runs on nightly (see
//! the README's Development section); `PROPTEST_CASES` raises the count here.

mod support;

use line_adapter::{
    proto::v1 as pb,
    secret::Secret,
    signature::{sign, verify},
    wire::events::parse_body,
    wire::messages::to_line_messages,
};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(2_000),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// LINE's own webhook bodies, the seeds the mutations start from.
fn seeds() -> Vec<Vec<u8>> {
    support::fixtures()
        .into_iter()
        .map(|(_, body)| body)
        .collect()
}

/// A seed body with bytes flipped, cut, or spliced.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds();
    (
        0..seeds.len(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(move |(seed, flips, cut, truncate)| {
            let mut body = seeds[seed].clone();
            for (at, byte) in flips {
                if !body.is_empty() {
                    let at = at.index(body.len());
                    body[at] = byte;
                }
            }
            if truncate && !body.is_empty() {
                body.truncate(cut.index(body.len()));
            }
            body
        })
}

fn check_parse(body: &[u8]) {
    // Never panics; what parses keeps each event's JSON object verbatim, a
    // slice of the body. (Checked as RFC 8259 JSON, not as a serde `Value`:
    // a mutation can make a number no f64 holds, which is still JSON.)
    if let Ok(parsed) = parse_body(body) {
        let mut rest = std::str::from_utf8(body).expect("a parsed body is UTF-8");
        for event in parsed.events {
            let json = &event.event.json;
            // Found after the previous event: slices in body order.
            let at = rest
                .find(json.as_str())
                .expect("event json is a slice of the body");
            rest = &rest[at + json.len()..];
            let raw: Box<serde_json::value::RawValue> =
                serde_json::from_str(json).expect("event json is JSON");
            assert!(raw.get().starts_with('{') && raw.get().ends_with('}'));
            assert!(!event.event.type_name.is_empty());
            assert!(!event.event.webhook_event_id.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_parse_or_are_refused_without_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        check_parse(&body);
    }

    #[test]
    fn mutated_line_bodies_parse_or_are_refused_without_panic(body in mutated()) {
        check_parse(&body);
    }

    #[test]
    fn signatures_verify_exactly_what_was_signed(
        body in prop::collection::vec(any::<u8>(), 0..512),
        secret in "[0-9a-f]{32}",
        other in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let signature = sign(&secret, &body);
        prop_assert!(verify(&Secret::new(secret.clone()), &body, signature.as_bytes()));
        let mut changed = body.clone();
        changed.push(0);
        prop_assert!(!verify(&Secret::new(secret.clone()), &changed, signature.as_bytes()));
        // Arbitrary header bytes never verify (nor panic).
        prop_assert!(!verify(&Secret::new(secret), &body, &other) || other == signature.as_bytes());
    }

    #[test]
    fn messages_are_validated_without_panic(
        text in ".{0,6000}",
        json in prop_oneof![
            ".{0,200}",
            Just("{\"type\":\"bubble\"}".to_owned()),
            (1usize..3000).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth))),
        ],
        url in prop_oneof![".{0,100}", "https://[a-z]{1,20}\\.example/[a-z0-9/]{0,40}"],
        count in 0usize..8,
    ) {
        let kinds = [
            pb::message::Kind::Text(pb::TextMessage { text: text.clone(), ..Default::default() }),
            pb::message::Kind::Flex(pb::FlexMessage { alt_text: text.chars().take(10).collect(), contents_json: json.clone() }),
            pb::message::Kind::Template(pb::TemplateMessage { alt_text: "t".into(), template_json: json.clone() }),
            pb::message::Kind::Image(pb::ImageMessage { original_content_url: url.clone(), preview_image_url: url.clone(), ..Default::default() }),
        ];
        let messages: Vec<pb::Message> = (0..count)
            .map(|i| pb::Message { kind: Some(kinds[i % kinds.len()].clone()), ..Default::default() })
            .collect();
        match to_line_messages("messages", &messages) {
            Ok(values) => {
                prop_assert!((1..=5).contains(&values.len()));
                for value in values {
                    // What is sent is JSON LINE can read, within its limits.
                    let text = serde_json::to_string(&value).unwrap();
                    prop_assert!(text.len() < 3 * 1024 * 1024);
                    if let Some(t) = value.get("text").and_then(|t| t.as_str()) {
                        prop_assert!(t.encode_utf16().count() <= 5000);
                    }
                }
            }
            Err(errors) => prop_assert!(!errors.is_empty()),
        }
    }
}
