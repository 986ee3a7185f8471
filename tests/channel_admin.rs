//! ChannelAdmin over the wire: every RPC of the foundation, every
//! validation error, paging, webhook URLs, restart persistence and secrets
//! that never come back out.

mod support;

use line_adapter::proto::v1::{
    Channel, CreateChannelRequest, DeleteChannelRequest, GetChannelRequest, GetWebhookUrlRequest,
    ListChannelsRequest, TokenMode, UpdateChannelRequest,
};
use line_adapter::secret::Secret;
use prost_types::FieldMask;
use support::{
    OTHER_SECRET, SECRET, TOKEN, TestApp, contains, nats_url, stored_files, test_settings,
};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt as _;

fn create_request(name: &str, line_id: &str) -> CreateChannelRequest {
    CreateChannelRequest {
        display_name: name.into(),
        line_channel_id: line_id.into(),
        channel_secret: SECRET.into(),
        channel_access_token: String::new(),
        token_mode: 0,
    }
}

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

fn update(id: &str) -> UpdateChannelRequest {
    UpdateChannelRequest {
        channel_id: id.into(),
        ..Default::default()
    }
}

/// The fields an INVALID_ARGUMENT status names in its BadRequest details.
fn violated_fields(status: &Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .expect("INVALID_ARGUMENT carries a BadRequest")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

async fn create(app: &TestApp, request: CreateChannelRequest) -> Channel {
    app.admin()
        .await
        .create_channel(request)
        .await
        .expect("create succeeds")
        .into_inner()
        .channel
        .expect("response carries the channel")
}

#[tokio::test]
async fn create_get_list_update_delete() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let mut admin = app.admin().await;

    let created = create(&app, create_request("  Tokyo shop ", "1234567890")).await;
    assert!(
        created.id.starts_with("ch_") && created.id.len() == 29,
        "{}",
        created.id
    );
    assert_eq!(created.display_name, "Tokyo shop");
    assert_eq!(created.line_channel_id, "1234567890");
    assert!(created.has_channel_secret);
    assert_eq!(created.channel_secret_fingerprint.len(), 8);
    assert_eq!(created.token_mode(), TokenMode::ShortLivedV2);
    assert!(!created.has_access_token && created.access_token_fingerprint.is_empty());
    assert_eq!(created.create_time, created.update_time);
    assert!(created.create_time.is_some());

    let got = admin
        .get_channel(GetChannelRequest {
            channel_id: created.id.clone(),
            check_webhook: false,
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    assert_eq!(got, created);

    let listed = admin
        .list_channels(ListChannelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.channels, vec![created.clone()]);
    assert!(listed.next_page_token.is_empty());

    // Timestamps have millisecond resolution: make the update land later.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let updated = admin
        .update_channel(UpdateChannelRequest {
            display_name: "Osaka shop".into(),
            line_channel_id: "999".into(), // not in the mask: must be ignored
            update_mask: mask(&["display_name"]),
            ..update(&created.id)
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    assert_eq!(updated.display_name, "Osaka shop");
    assert_eq!(updated.line_channel_id, "1234567890");
    assert_eq!(
        updated.channel_secret_fingerprint,
        created.channel_secret_fingerprint
    );
    assert_eq!(updated.create_time, created.create_time);
    let millis = |ts: &Option<prost_types::Timestamp>| {
        let ts = ts.as_ref().expect("timestamps are set");
        ts.seconds * 1000 + i64::from(ts.nanos) / 1_000_000
    };
    assert!(millis(&updated.update_time) > millis(&created.update_time));

    let rotated = admin
        .update_channel(UpdateChannelRequest {
            channel_secret: OTHER_SECRET.into(),
            channel_access_token: TOKEN.into(),
            update_mask: mask(&["channel_secret", "channel_access_token"]),
            previous_secret_grace: Some(prost_types::Duration {
                seconds: 600,
                nanos: 0,
            }),
            ..update(&created.id)
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    assert_ne!(
        rotated.channel_secret_fingerprint,
        created.channel_secret_fingerprint
    );
    assert!(rotated.has_access_token);
    // The mode stays what it was; a token alone does not switch it.
    assert_eq!(rotated.token_mode(), TokenMode::ShortLivedV2);

    let long_lived = admin
        .update_channel(UpdateChannelRequest {
            token_mode: TokenMode::LongLived as i32,
            update_mask: mask(&["token_mode"]),
            ..update(&created.id)
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    assert_eq!(long_lived.token_mode(), TokenMode::LongLived);

    let deleted = admin
        .delete_channel(DeleteChannelRequest {
            channel_id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    assert_eq!(deleted, long_lived);
    for status in [
        admin
            .get_channel(GetChannelRequest {
                channel_id: created.id.clone(),
                check_webhook: false,
            })
            .await
            .unwrap_err(),
        admin
            .delete_channel(DeleteChannelRequest {
                channel_id: created.id.clone(),
            })
            .await
            .unwrap_err(),
        admin
            .update_channel(UpdateChannelRequest {
                display_name: "x".into(),
                update_mask: mask(&["display_name"]),
                ..update(&created.id)
            })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert!(status.message().contains(&created.id));
    }
    // The LINE channel id is free again.
    create(&app, create_request("Again", "1234567890")).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn create_names_every_invalid_field_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let mut admin = app.admin().await;

    let cases: Vec<(CreateChannelRequest, Vec<&str>)> = vec![
        (create_request("", "1234567890"), vec!["display_name"]),
        (create_request("   ", "1234567890"), vec!["display_name"]),
        (
            create_request(&"x".repeat(101), "1234567890"),
            vec!["display_name"],
        ),
        (
            create_request("bell\u{7}", "1234567890"),
            vec!["display_name"],
        ),
        (create_request("Shop", ""), vec!["line_channel_id"]),
        (
            create_request("Shop", "12345abcde"),
            vec!["line_channel_id"],
        ),
        (
            create_request("Shop", "-1234567890"),
            vec!["line_channel_id"],
        ),
        (
            create_request("Shop", &"1".repeat(21)),
            vec!["line_channel_id"],
        ),
        (
            CreateChannelRequest {
                channel_secret: String::new(),
                ..create_request("Shop", "1234567890")
            },
            vec!["channel_secret"],
        ),
        (
            CreateChannelRequest {
                channel_secret: "8c1d3e5f7a9b0c2d4e6f8a0b1c3d5e7".into(),
                ..create_request("Shop", "1234567890")
            },
            vec!["channel_secret"],
        ),
        (
            CreateChannelRequest {
                channel_secret: "zz1d3e5f7a9b0c2d4e6f8a0b1c3d5e7f".into(),
                ..create_request("Shop", "1234567890")
            },
            vec!["channel_secret"],
        ),
        (
            CreateChannelRequest {
                channel_access_token: "has space".into(),
                ..create_request("Shop", "1234567890")
            },
            vec!["channel_access_token"],
        ),
        (
            CreateChannelRequest {
                channel_access_token: "t".repeat(1001),
                ..create_request("Shop", "1234567890")
            },
            vec!["channel_access_token"],
        ),
        (
            CreateChannelRequest {
                token_mode: 99,
                ..create_request("Shop", "1234567890")
            },
            vec!["token_mode"],
        ),
        (
            CreateChannelRequest {
                display_name: String::new(),
                line_channel_id: "abc".into(),
                channel_secret: "short".into(),
                channel_access_token: String::new(),
                token_mode: -3,
            },
            vec![
                "display_name",
                "line_channel_id",
                "channel_secret",
                "token_mode",
            ],
        ),
    ];
    for (request, fields) in cases {
        let secret = request.channel_secret.clone();
        let status = admin.create_channel(request).await.unwrap_err();
        assert_eq!(violated_fields(&status), fields, "{status:?}");
        for field in &fields {
            assert!(status.message().contains(field), "{}", status.message());
        }
        if !secret.is_empty() {
            assert!(!status.message().contains(&secret), "a secret was echoed");
        }
    }

    let listed = admin
        .list_channels(ListChannelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.channels.is_empty(),
        "a refused create stored something"
    );
}

#[tokio::test]
async fn conflicts_and_preconditions() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let mut admin = app.admin().await;
    let first = create(&app, create_request("First", "1000000001")).await;
    let second = create(&app, create_request("Second", "1000000002")).await;

    let status = admin
        .create_channel(create_request("Copy", "1000000001"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(status.message().contains("line_channel_id") && status.message().contains(&first.id));

    let status = admin
        .update_channel(UpdateChannelRequest {
            line_channel_id: "1000000001".into(),
            update_mask: mask(&["line_channel_id"]),
            ..update(&second.id)
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);

    // Long-lived mode needs a token; v2.1 needs a kid.
    let status = admin
        .create_channel(CreateChannelRequest {
            token_mode: TokenMode::LongLived as i32,
            ..create_request("No token", "1000000003")
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("token_mode"));
    let status = admin
        .update_channel(UpdateChannelRequest {
            token_mode: TokenMode::V21Jwt as i32,
            update_mask: mask(&["token_mode"]),
            ..update(&second.id)
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("SetKid"));

    // A pasted token picks long-lived mode by default.
    let with_token = create(
        &app,
        CreateChannelRequest {
            channel_access_token: TOKEN.into(),
            ..create_request("Token", "1000000004")
        },
    )
    .await;
    assert_eq!(with_token.token_mode(), TokenMode::LongLived);
    assert!(with_token.has_access_token);
    assert_eq!(with_token.access_token_fingerprint.len(), 8);
    // Removing that token is refused while the mode needs it.
    let status = admin
        .update_channel(UpdateChannelRequest {
            update_mask: mask(&["channel_access_token"]),
            ..update(&with_token.id)
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);

    // Nothing above changed what is stored.
    for (id, line_id) in [(&first.id, "1000000001"), (&second.id, "1000000002")] {
        let channel = admin
            .get_channel(GetChannelRequest {
                channel_id: id.clone(),
                check_webhook: false,
            })
            .await
            .unwrap()
            .into_inner()
            .channel
            .unwrap();
        assert_eq!(channel.line_channel_id, line_id);
        assert_eq!(channel.token_mode(), TokenMode::ShortLivedV2);
    }
}

#[tokio::test]
async fn update_mask_and_ids_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let mut admin = app.admin().await;
    let channel = create(&app, create_request("Shop", "1234567890")).await;

    let cases: Vec<(UpdateChannelRequest, Vec<&str>)> = vec![
        (update(&channel.id), vec!["update_mask"]),
        (
            UpdateChannelRequest {
                update_mask: mask(&["display_name", "nickname"]),
                display_name: "Fine".into(),
                ..update(&channel.id)
            },
            vec!["update_mask"],
        ),
        (
            UpdateChannelRequest {
                update_mask: mask(&["display_name", "display_name"]),
                display_name: "Fine".into(),
                ..update(&channel.id)
            },
            vec!["update_mask"],
        ),
        (
            UpdateChannelRequest {
                update_mask: mask(&["id"]),
                ..update(&channel.id)
            },
            vec!["update_mask"],
        ),
        (
            UpdateChannelRequest {
                update_mask: mask(&["display_name"]),
                ..update(&channel.id)
            },
            vec!["display_name"],
        ),
        (
            UpdateChannelRequest {
                update_mask: mask(&["channel_secret"]),
                channel_secret: "nothex".into(),
                ..update(&channel.id)
            },
            vec!["channel_secret"],
        ),
        (
            UpdateChannelRequest {
                update_mask: mask(&["channel_secret"]),
                channel_secret: OTHER_SECRET.into(),
                previous_secret_grace: Some(prost_types::Duration {
                    seconds: -1,
                    nanos: 0,
                }),
                ..update(&channel.id)
            },
            vec!["previous_secret_grace"],
        ),
        (
            UpdateChannelRequest {
                update_mask: mask(&["display_name"]),
                display_name: "Fine".into(),
                previous_secret_grace: Some(prost_types::Duration {
                    seconds: 60,
                    nanos: 0,
                }),
                ..update(&channel.id)
            },
            vec!["previous_secret_grace"],
        ),
        (
            UpdateChannelRequest {
                update_mask: mask(&["display_name"]),
                display_name: "Fine".into(),
                ..update("1234567890")
            },
            vec!["channel_id"],
        ),
        (
            UpdateChannelRequest {
                update_mask: mask(&["display_name"]),
                display_name: "x".repeat(101),
                ..update(&channel.id)
            },
            vec!["display_name"],
        ),
        (
            UpdateChannelRequest {
                update_mask: mask(&["line_channel_id"]),
                line_channel_id: "12 34".into(),
                ..update(&channel.id)
            },
            vec!["line_channel_id"],
        ),
        (
            UpdateChannelRequest {
                update_mask: mask(&["token_mode"]),
                token_mode: 99,
                ..update(&channel.id)
            },
            vec!["token_mode"],
        ),
        (
            UpdateChannelRequest {
                update_mask: mask(&["channel_access_token"]),
                channel_access_token: "tab\there".into(),
                ..update(&channel.id)
            },
            vec!["channel_access_token"],
        ),
        (
            UpdateChannelRequest {
                update_mask: mask(&["channel_secret"]),
                channel_secret: OTHER_SECRET.into(),
                previous_secret_grace: Some(prost_types::Duration {
                    seconds: 7 * 24 * 3600 + 1,
                    nanos: 0,
                }),
                ..update(&channel.id)
            },
            vec!["previous_secret_grace"],
        ),
        (
            UpdateChannelRequest {
                update_mask: mask(&["display_name", "line_channel_id", "bogus"]),
                display_name: String::new(),
                line_channel_id: "x".into(),
                ..update("")
            },
            vec![
                "channel_id",
                "display_name",
                "line_channel_id",
                "update_mask",
            ],
        ),
    ];
    for (request, fields) in cases {
        let status = admin.update_channel(request).await.unwrap_err();
        assert_eq!(violated_fields(&status), fields, "{status:?}");
    }

    for status in [
        admin
            .get_channel(GetChannelRequest::default())
            .await
            .unwrap_err(),
        admin
            .delete_channel(DeleteChannelRequest {
                channel_id: "../etc/passwd".into(),
            })
            .await
            .unwrap_err(),
        admin
            .get_webhook_url(GetWebhookUrlRequest {
                channel_id: "CH_01JD0000000000000000000000".into(),
            })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(violated_fields(&status), vec!["channel_id"]);
    }

    let unchanged = admin
        .get_channel(GetChannelRequest {
            channel_id: channel.id.clone(),
            check_webhook: false,
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    assert_eq!(unchanged, channel);
}

#[tokio::test]
async fn list_pages_in_creation_order() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let mut admin = app.admin().await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(
            create(
                &app,
                create_request(&format!("Shop {i}"), &format!("100{i}")),
            )
            .await,
        );
    }

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = admin
            .list_channels(ListChannelsRequest {
                page_size: 2,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.channels.len() <= 2);
        seen.extend(page.channels);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);

    for (page_size, page_token, field) in [
        (-1, "", "page_size"),
        (1001, "", "page_size"),
        (10, "not-a-token", "page_token"),
    ] {
        let status = admin
            .list_channels(ListChannelsRequest {
                page_size,
                page_token: page_token.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&status), vec![field]);
    }
    let all = admin
        .list_channels(ListChannelsRequest {
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.channels.len(), 5);
}

#[tokio::test]
async fn webhook_url_from_request_proxy_headers_or_config() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let mut admin = app.admin().await;
    let channel = create(&app, create_request("Shop", "1234567890")).await;
    assert!(channel.webhook_url.is_empty(), "no public base configured");

    let from_request = admin
        .get_webhook_url(GetWebhookUrlRequest {
            channel_id: channel.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        from_request.webhook_url,
        format!(
            "http://127.0.0.1:{}/webhook/line/{}",
            app.http_addr.port(),
            channel.id
        )
    );
    assert_eq!(from_request.base_url_source, "request");

    // The URL really is served by the HTTP listener: an unsigned post is
    // refused there, not 404.
    let client = reqwest::Client::new();
    let posted = client
        .post(&from_request.webhook_url)
        .body(r#"{"destination":"U0","events":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 401);
    let got = client.get(&from_request.webhook_url).send().await.unwrap();
    assert_eq!(got.status(), 405);
    assert_eq!(got.headers()["allow"], "POST");

    let mut request = Request::new(GetWebhookUrlRequest {
        channel_id: channel.id.clone(),
    });
    request
        .metadata_mut()
        .insert("x-forwarded-host", "line.example.com".parse().unwrap());
    request
        .metadata_mut()
        .insert("x-forwarded-proto", "https".parse().unwrap());
    let proxied = admin.get_webhook_url(request).await.unwrap().into_inner();
    assert_eq!(
        proxied.webhook_url,
        format!("https://line.example.com/webhook/line/{}", channel.id)
    );

    let status = admin
        .get_webhook_url(GetWebhookUrlRequest {
            channel_id: "ch_01jd0000000000000000000000".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    app.stop().await.unwrap();

    let configured = TestApp::start_with(test_settings(dir.path(), |layer| {
        layer.public_base_url = Some("https://hooks.example.jp/line-adapter/".into());
    }))
    .await;
    let mut admin = configured.admin().await;
    let url = admin
        .get_webhook_url(GetWebhookUrlRequest {
            channel_id: channel.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let expected = format!(
        "https://hooks.example.jp/line-adapter/webhook/line/{}",
        channel.id
    );
    assert_eq!(url.webhook_url, expected);
    assert_eq!(url.base_url_source, "config");
    let listed = admin
        .list_channels(ListChannelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.channels[0].webhook_url, expected);
}

#[tokio::test]
async fn everything_registered_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let mut admin = app.admin().await;
    let kept = create(&app, create_request("Kept", "2000000001")).await;
    let changed = create(
        &app,
        CreateChannelRequest {
            channel_access_token: TOKEN.into(),
            ..create_request("Changed", "2000000002")
        },
    )
    .await;
    let gone = create(&app, create_request("Gone", "2000000003")).await;
    let changed = admin
        .update_channel(UpdateChannelRequest {
            display_name: "Changed again".into(),
            channel_secret: OTHER_SECRET.into(),
            update_mask: mask(&["display_name", "channel_secret"]),
            ..update(&changed.id)
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    admin
        .delete_channel(DeleteChannelRequest {
            channel_id: gone.id.clone(),
        })
        .await
        .unwrap();
    drop(admin);
    app.stop().await.unwrap();

    let restarted = TestApp::start(dir.path()).await;
    let mut admin = restarted.admin().await;
    let listed = admin
        .list_channels(ListChannelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.channels, vec![kept.clone(), changed.clone()]);
    // The uniqueness index survived too.
    let status = admin
        .create_channel(create_request("Dup", "2000000002"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    create(&restarted, create_request("Reused", "2000000003")).await;
}

#[tokio::test]
async fn secrets_never_leave_and_are_never_stored_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start(dir.path()).await;
    let mut admin = app.admin().await;
    let created = create(
        &app,
        CreateChannelRequest {
            channel_access_token: TOKEN.into(),
            ..create_request("Shop", "1234567890")
        },
    )
    .await;
    let updated = admin
        .update_channel(UpdateChannelRequest {
            channel_secret: OTHER_SECRET.into(),
            update_mask: mask(&["channel_secret"]),
            previous_secret_grace: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
            ..update(&created.id)
        })
        .await
        .unwrap()
        .into_inner();
    let listed = admin
        .list_channels(ListChannelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let shown = format!("{created:?} {updated:?} {listed:?}");
    for secret in [SECRET, OTHER_SECRET, TOKEN] {
        assert!(!shown.contains(secret), "a response contains a secret");
    }
    app.stop().await.unwrap();

    let files = stored_files(dir.path());
    if nats_url().is_none() {
        assert!(files.iter().any(|(path, _)| path.ends_with("master.key")));
    }
    let store_bytes: usize = files.iter().map(|(_, bytes)| bytes.len()).sum();
    assert!(store_bytes > 0);
    for (path, bytes) in &files {
        for secret in [SECRET, OTHER_SECRET, TOKEN] {
            assert!(
                !contains(bytes, secret.as_bytes()),
                "{} holds a plaintext secret",
                path.display()
            );
        }
    }
    // The LINE channel id is not secret and is stored in the clear: the scan
    // above reads the very bytes the store wrote.
    assert!(
        files
            .iter()
            .any(|(_, bytes)| contains(bytes, b"1234567890"))
    );
}

#[tokio::test]
async fn a_different_master_key_is_refused_and_data_stays_intact() {
    let dir = tempfile::tempdir().unwrap();
    let key_a = "11".repeat(32);
    let key_b = "22".repeat(32);
    let app = TestApp::start_with(test_settings(dir.path(), |layer| {
        layer.master_key = Some(Secret::new(&key_a));
    }))
    .await;
    let channel = create(&app, create_request("Shop", "1234567890")).await;
    app.stop().await.unwrap();
    assert!(
        !dir.path().join("master.key").exists(),
        "a configured key is not written"
    );

    let wrong = TestApp::spawn(test_settings(dir.path(), |layer| {
        layer.master_key = Some(Secret::new(&key_b));
    }))
    .await;
    let err = wrong.finished().await.unwrap_err();
    assert!(
        err.to_string().contains("master key does not match"),
        "{err}"
    );
    assert!(!err.to_string().contains(&key_b));

    // Forgetting the key must not leave a new, wrong key file behind.
    let keyless = TestApp::spawn(test_settings(dir.path(), |_| {})).await;
    let err = keyless.finished().await.unwrap_err();
    assert!(err.to_string().contains("LINE_ADAPTER_MASTER_KEY"), "{err}");
    assert!(!dir.path().join("master.key").exists());

    let right = TestApp::start_with(test_settings(dir.path(), |layer| {
        layer.master_key = Some(Secret::new(&key_a));
    }))
    .await;
    let got = right
        .admin()
        .await
        .get_channel(GetChannelRequest {
            channel_id: channel.id.clone(),
            check_webhook: false,
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    assert_eq!(got, channel);
}
