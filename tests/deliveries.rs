//! The operator's view of the outbox over the wire: ListDeliveries newest
//! first, by state and chat, paged; and `line-adapter deliveries`, the same
//! as a table.

mod support;

use line_adapter::proto::v1 as pb;
use support::{create_channel_with_token, fake_line::FakeLine, start_with_line, text_push};
use tonic::Code;

const PUSH: &str = "/v2/bot/message/push";

fn list(channel: &pb::Channel) -> pb::ListDeliveriesRequest {
    pb::ListDeliveriesRequest {
        channel_id: channel.id.clone(),
        ..Default::default()
    }
}

fn ids(response: &pb::ListDeliveriesResponse) -> Vec<String> {
    response.deliveries.iter().map(|d| d.id.clone()).collect()
}

#[tokio::test]
async fn deliveries_are_listed_newest_first_by_state_and_chat() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;

    line.script(
        PUSH,
        400,
        &[],
        r#"{"message":"The request body has 1 error(s)","details":[{"message":"invalid","property":"to"}]}"#,
    );
    let failed = messaging
        .push(text_push(&channel.id, "U1", "a"))
        .await
        .unwrap_err();
    assert_eq!(failed.code(), Code::InvalidArgument);
    let mut sent = Vec::new();
    for (user, text) in [("U2", "b"), ("U1", "c")] {
        let delivery = messaging
            .push(text_push(&channel.id, user, text))
            .await
            .unwrap()
            .into_inner()
            .delivery
            .unwrap();
        sent.push(delivery.id);
    }

    let all = messaging
        .list_deliveries(list(&channel))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.deliveries.len(), 3);
    assert_eq!(
        ids(&all)[..2],
        [sent[1].clone(), sent[0].clone()],
        "newest first"
    );
    assert!(all.next_page_token.is_empty());
    let first = all.deliveries[2].clone();
    assert_eq!(first.state(), pb::DeliveryState::Failed);

    let failed_only = messaging
        .list_deliveries(pb::ListDeliveriesRequest {
            states: vec![pb::DeliveryState::Failed as i32],
            ..list(&channel)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&failed_only), vec![first.id.clone()]);
    let error = failed_only.deliveries[0].error.as_ref().unwrap();
    assert_eq!(error.http_status, 400);

    let to_u1 = messaging
        .list_deliveries(pb::ListDeliveriesRequest {
            conversation: support::to_user("U1"),
            ..list(&channel)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&to_u1), [sent[1].clone(), first.id.clone()]);

    // Pages of two: the token leads on, and the last page has none.
    let page = messaging
        .list_deliveries(pb::ListDeliveriesRequest {
            page_size: 2,
            ..list(&channel)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&page), ids(&all)[..2]);
    assert!(!page.next_page_token.is_empty());
    let rest = messaging
        .list_deliveries(pb::ListDeliveriesRequest {
            page_size: 2,
            page_token: page.next_page_token,
            ..list(&channel)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&rest), vec![first.id.clone()]);
    assert!(rest.next_page_token.is_empty());

    // Bad requests name their fields; an unknown channel is NOT_FOUND.
    let bad = messaging
        .list_deliveries(pb::ListDeliveriesRequest {
            states: vec![99],
            page_size: 1001,
            page_token: "nope".into(),
            ..list(&channel)
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    for field in ["states[0]", "page_size", "page_token"] {
        assert!(bad.message().contains(field), "{field}: {}", bad.message());
    }
    let unknown = messaging
        .list_deliveries(pb::ListDeliveriesRequest {
            channel_id: "ch_01m8y2kfe0ama2v5zgcpsbgdx2".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");

    // The same as a table, from the command line.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_line-adapter"))
        .args(["deliveries", "--addr", &app.grpc_addr.to_string()])
        .args(["--channel", &channel.id, "--state", "failed"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let table = String::from_utf8_lossy(&output.stdout);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 2, "a header and one row: {table}");
    assert!(rows[0].starts_with("ID"), "{table}");
    for part in [first.id.as_str(), "failed", "push", "U1", "LINE 400"] {
        assert!(rows[1].contains(part), "{part}: {table}");
    }
}
