//! Reaching LINE through a proxy: `line_proxy` for the LINE client only,
//! and the standard `HTTPS_PROXY` when it is not set.

mod support;

use line_adapter::proto::v1 as pb;
use support::{
    TOKEN, TestApp, create_channel_with_token, fake_line::FakeLine, proxy::Proxy, test_settings,
};
use tonic::Code;

const BOT_INFO: &str = r#"{"userId":"Ub9952f8c0123456789abcdef01234567","basicId":"@a","displayName":"Shop","chatMode":"chat","markAsReadMode":"auto"}"#;

#[tokio::test]
async fn line_calls_go_through_the_configured_proxy() {
    let line = FakeLine::start().await;
    line.script("/v2/bot/info", 200, &[], BOT_INFO);
    let proxy = Proxy::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(test_settings(dir.path(), |layer| {
        layer.line_api_base = Some(line.url());
        layer.line_data_api_base = Some(line.url());
        layer.line_proxy = Some(proxy.url());
    }))
    .await;
    let channel = create_channel_with_token(&app).await;
    let info = app
        .admin()
        .await
        .get_bot_info(pb::GetBotInfoRequest {
            channel_id: channel.id.clone(),
        })
        .await
        .expect("answered through the proxy")
        .into_inner();
    assert_eq!(info.display_name, "Shop");
    let seen = proxy.seen();
    assert_eq!(
        seen,
        [("GET".to_owned(), format!("{}/v2/bot/info", line.url()))],
        "the call went through the proxy"
    );
    let received = line.requests();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].headers["authorization"],
        format!("Bearer {TOKEN}")
    );
}

#[tokio::test]
async fn https_to_line_is_tunnelled_with_connect() {
    // LINE's real hosts are https: the client asks the proxy for a tunnel.
    // Nothing speaks TLS behind it here, so the call fails after the
    // CONNECT, which is what this checks.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = upstream.local_addr().unwrap();
    let closer = tokio::spawn(async move {
        while let Ok((stream, _)) = upstream.accept().await {
            drop(stream);
        }
    });
    let proxy = Proxy::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(test_settings(dir.path(), |layer| {
        layer.line_api_base = Some(format!("https://{target}"));
        layer.line_data_api_base = Some(format!("https://{target}"));
        layer.line_proxy = Some(proxy.url());
    }))
    .await;
    let channel = create_channel_with_token(&app).await;
    let status = app
        .admin()
        .await
        .get_bot_info(pb::GetBotInfoRequest {
            channel_id: channel.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let seen = proxy.seen();
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|(method, to)| method == "CONNECT" && *to == target.to_string()),
        "{seen:?}"
    );
    closer.abort();
}
