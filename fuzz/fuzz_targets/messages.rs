//! Outbound messages as a caller builds them: validation and conversion
//! never panic, and what passes is within LINE's limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use line_adapter::{proto::v1 as pb, wire::messages::to_line_messages};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let kinds = [
        pb::message::Kind::Text(pb::TextMessage {
            text: text.clone(),
            ..Default::default()
        }),
        pb::message::Kind::Flex(pb::FlexMessage {
            alt_text: "alt".into(),
            contents_json: text.clone(),
        }),
        pb::message::Kind::Template(pb::TemplateMessage {
            alt_text: "alt".into(),
            template_json: text.clone(),
        }),
        pb::message::Kind::Image(pb::ImageMessage {
            original_content_url: text.clone(),
            preview_image_url: text,
            ..Default::default()
        }),
    ];
    let count = data.first().map_or(1, |&b| usize::from(b % 7));
    let messages: Vec<pb::Message> = (0..count)
        .map(|i| pb::Message {
            kind: Some(kinds[i % kinds.len()].clone()),
            ..Default::default()
        })
        .collect();
    if let Ok(values) = to_line_messages("messages", &messages) {
        assert!((1..=5).contains(&values.len()));
    }
});
