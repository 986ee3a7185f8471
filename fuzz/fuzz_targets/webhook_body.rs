//! A webhook body and a signature header, as anyone on the internet can
//! send them: verification and parsing never panic, and what parses keeps
//! each event's raw JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use line_adapter::{
    secret::Secret,
    signature::verify,
    wire::events::parse_body,
};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (signature, body) = data.split_at(split);
    let _ = verify(
        &Secret::new("8c1d3e5f7a9b0c2d4e6f8a0b1c3d5e7f"),
        body,
        signature,
    );
    if let Ok(parsed) = parse_body(body) {
        // Each event's JSON is a verbatim slice of the body, and JSON by
        // RFC 8259 (a number no f64 holds is still JSON, so not a `Value`).
        let mut rest = std::str::from_utf8(body).unwrap();
        for event in parsed.events {
            let json = event.event.json.as_str();
            // In body order: each found after the previous one.
            let at = rest.find(json).unwrap();
            rest = &rest[at + json.len()..];
            assert!(serde_json::from_str::<&serde_json::value::RawValue>(json).is_ok());
            assert!(json.starts_with('{') && json.ends_with('}'));
        }
    }
});
