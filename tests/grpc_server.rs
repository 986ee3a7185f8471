//! The standard pieces of the gRPC server: health per service, reflection
//! in both protocol versions (with the contract's comments), API keys, and
//! the HTTP probes beside it.

mod support;

use line_adapter::{
    proto::v1::{CreateChannelRequest, ListChannelsRequest},
    secret::Secret,
    settings::ApiKeyList,
};
use prost::Message as _;
use support::{SECRET, TestApp, test_settings};
use tokio_stream::StreamExt as _;
use tonic::{Code, Request};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const CONTRACT_SERVICES: [&str; 3] = [
    "weiyu.line.v1.ChannelAdmin",
    "weiyu.line.v1.Messaging",
    "weiyu.line.v1.OfficialAccount",
];

#[tokio::test]
async fn health_reports_every_service_serving_once_ready() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let mut health = HealthClient::new(app.channel().await);
    for service in [""].into_iter().chain(CONTRACT_SERVICES) {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "weiyu.line.v1.Nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let client = reqwest::Client::new();
    let healthz = client
        .get(format!("{}/healthz", app.http_base))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200);
    let readyz = client
        .get(format!("{}/readyz", app.http_base))
        .send()
        .await
        .unwrap();
    assert_eq!(readyz.status(), 200);
    let missing = client
        .get(format!("{}/nope", app.http_base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let wrong_method = client
        .post(format!("{}/healthz", app.http_base))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
}

#[tokio::test]
async fn health_watch_sees_not_serving_when_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let mut health = HealthClient::new(app.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: CONTRACT_SERVICES[0].into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);
    let stopping = tokio::spawn(app.stop());
    let update = watch
        .next()
        .await
        .expect("the watch reports the change before the stream ends")
        .unwrap();
    assert_eq!(update.status(), ServingStatus::NotServing);
    // The open watch must not hold up the stop: the server ends it.
    let ended = watch.next().await;
    assert!(
        !matches!(ended, Some(Ok(_))),
        "no further status after NOT_SERVING"
    );
    stopping.await.unwrap().unwrap();
}

mod reflection_v1 {
    pub use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
}

mod reflection_v1alpha {
    pub use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
}

#[tokio::test]
async fn reflection_v1_lists_services_and_describes_with_comments() {
    use reflection_v1::*;
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let mut client = ServerReflectionClient::new(app.channel().await);
    let requests = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "weiyu.line.v1.Channel".into(),
            )),
        },
    ];
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();

    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in CONTRACT_SERVICES.iter().copied().chain([
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ]) {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }

    let Some(MessageResponse::FileDescriptorResponse(files)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected file descriptors");
    };
    let admin = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(&bytes[..]).unwrap())
        .find(|file| file.name() == "weiyu/line/v1/admin.proto")
        .expect("admin.proto is served");
    assert_eq!(admin.package(), "weiyu.line.v1");
    assert_eq!(
        admin.options.as_ref().unwrap().java_package(),
        "com.weiyu.line.v1"
    );
    let comments: Vec<&str> = admin
        .source_code_info
        .as_ref()
        .expect("comments are kept for describe")
        .location
        .iter()
        .map(|l| l.leading_comments())
        .collect();
    assert!(
        comments
            .iter()
            .any(|c| c.contains("A LINE channel connected to Weiyu")),
        "Channel's doc comment is served"
    );
}

#[tokio::test]
async fn reflection_v1alpha_answers_grpcurl_1_8() {
    use reflection_v1alpha::*;
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let mut client = ServerReflectionClient::new(app.channel().await);
    let requests = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "weiyu.line.v1.Messaging".into(),
            )),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "google.rpc.BadRequest".into(),
            )),
        },
    ];
    let responses: Vec<_> = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    assert_eq!(responses.len(), 3);
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses[0].as_ref().unwrap().message_response.clone()
    else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in CONTRACT_SERVICES {
        assert!(names.iter().any(|n| n == expected), "{expected} missing");
    }
    for response in &responses[1..] {
        let Some(MessageResponse::FileDescriptorResponse(files)) =
            response.as_ref().unwrap().message_response.clone()
        else {
            panic!("expected file descriptors, got {response:?}");
        };
        assert!(!files.file_descriptor_proto.is_empty());
    }
}

#[tokio::test]
async fn api_keys_guard_the_contract_but_not_probes() {
    let dir = tempfile::tempdir().unwrap();
    let key = "wy-agent-desk-3f9a1c7e5b";
    let app = TestApp::start_with(test_settings(dir.path(), |layer| {
        layer.api_keys = Some(ApiKeyList::List(vec![
            Secret::new(key),
            Secret::new("wy-other-key-0000000000"),
            Secret::new("wy-reader-key-11111111:subscribe"),
        ]));
    }))
    .await;
    let mut admin = app.admin().await;

    let missing = admin
        .list_channels(ListChannelsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);

    let mut wrong = Request::new(ListChannelsRequest::default());
    wrong.metadata_mut().insert(
        "authorization",
        "Bearer wy-agent-desk-3f9a1c7e5c".parse().unwrap(),
    );
    let wrong = admin.list_channels(wrong).await.unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert!(!wrong.message().contains(key));

    let mut create = Request::new(CreateChannelRequest {
        display_name: "Shop".into(),
        line_channel_id: "1234567890".into(),
        channel_secret: SECRET.into(),
        ..Default::default()
    });
    create
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    admin.create_channel(create).await.unwrap();

    let mut messaging = app.messaging().await;
    let status = messaging
        .ack(line_adapter::proto::v1::AckRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::Unauthenticated,
        "Messaging is guarded too"
    );

    // A key scoped to `subscribe` reads the stream but neither administers
    // nor sends.
    let reader = |request| {
        let mut request = Request::new(request);
        request.metadata_mut().insert(
            "authorization",
            "Bearer wy-reader-key-11111111".parse().unwrap(),
        );
        request
    };
    let denied = admin
        .list_channels(reader(ListChannelsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("admin"), "{}", denied.message());
    assert!(!denied.message().contains("wy-reader-key"));
    let mut send = Request::new(line_adapter::proto::v1::SendRequest::default());
    send.metadata_mut().insert(
        "authorization",
        "Bearer wy-reader-key-11111111".parse().unwrap(),
    );
    let denied = messaging.send(send).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let mut ack = Request::new(line_adapter::proto::v1::AckRequest::default());
    ack.metadata_mut().insert(
        "authorization",
        "Bearer wy-reader-key-11111111".parse().unwrap(),
    );
    let passed = messaging.ack(ack).await.unwrap_err();
    assert_eq!(
        passed.code(),
        Code::InvalidArgument,
        "past the key check, the empty request itself is refused: {passed:?}"
    );

    let mut health = HealthClient::new(app.channel().await);
    health
        .check(HealthCheckRequest::default())
        .await
        .expect("health needs no key");
    let mut reflection = reflection_v1::ServerReflectionClient::new(app.channel().await);
    let listed = reflection
        .server_reflection_info(tokio_stream::iter(vec![
            reflection_v1::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(reflection_v1::MessageRequest::ListServices(String::new())),
            },
        ]))
        .await
        .expect("reflection needs no key")
        .into_inner()
        .next()
        .await
        .unwrap();
    assert!(listed.is_ok());
}

#[tokio::test]
async fn oversized_messages_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let mut admin = app.admin().await;
    let huge = admin
        .create_channel(CreateChannelRequest {
            display_name: "x".repeat(5 * 1024 * 1024),
            line_channel_id: "1234567890".into(),
            channel_secret: SECRET.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    // tonic's answer to a message over the limit.
    assert_eq!(huge.code(), Code::OutOfRange, "{huge:?}");
    assert!(huge.message().contains("4194304"), "{}", huge.message());
    let listed = admin
        .list_channels(ListChannelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.channels.is_empty());
}

#[tokio::test]
async fn grpc_serves_tls_when_given_a_certificate() {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = generated.cert.pem();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let data = dir.path().join("data");
    let app = TestApp::start_with(test_settings(&data, |layer| {
        layer.grpc_tls_cert_file = Some(cert.clone());
        layer.grpc_tls_key_file = Some(key.clone());
    }))
    .await;

    let channel = Endpoint::from_shared(format!("https://localhost:{}", app.grpc_addr.port()))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&cert_pem))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .expect("a TLS connection with the service's certificate");
    let mut admin = line_adapter::proto::v1::channel_admin_client::ChannelAdminClient::new(channel);
    admin
        .list_channels(ListChannelsRequest::default())
        .await
        .expect("calls work over TLS");

    // Plaintext is not spoken any more.
    let plain = app
        .admin()
        .await
        .list_channels(ListChannelsRequest::default())
        .await;
    assert!(plain.is_err(), "{plain:?}");
    app.stop().await.unwrap();

    // A key that is not a key stops the start, as a configuration error.
    std::fs::write(&key, "not a key").unwrap();
    let broken = TestApp::spawn(test_settings(&data, |layer| {
        layer.grpc_tls_cert_file = Some(cert.clone());
        layer.grpc_tls_key_file = Some(key.clone());
    }))
    .await;
    let err = broken.finished().await.unwrap_err();
    assert!(err.is_configuration(), "{err}");
    assert!(err.to_string().contains("tls.key"), "{err}");
}
