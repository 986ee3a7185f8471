//! Contract check: one request of every kind the service sends to LINE's
//! API host, through the real service, against the Prism mock server
//! running LINE's own OpenAPI description (`messaging-api.yml`): Messaging,
//! ChannelAdmin and OfficialAccount alike (insight.yml's calls are in
//! `contract_insight.rs`, manage-audience.yml's in `contract_audience.rs`). Prism answers a request that breaks the
//! description with 4xx, which fails the call and this test.
//!
//! Needs Prism: `.ci/run` starts it and sets `LINE_ADAPTER_PRISM_URL`
//! (`npx @stoplight/prism-cli mock -p 4010 ../shared/line-openapi/messaging-api.yml`).
//! Without that variable the test says so and checks nothing else.

mod support;

use line_adapter::proto::v1::{
    self as pb, conversation::Chat, message::Kind, text_v2_mentionee::Target,
    text_v2_substitution::Kind as Sub,
};
use support::{SECRET, TOKEN, TestApp, test_settings};

fn message(kind: Kind) -> pb::Message {
    pb::Message {
        kind: Some(kind),
        ..Default::default()
    }
}

fn mention(target: Target) -> pb::TextV2Substitution {
    pb::TextV2Substitution {
        kind: Some(Sub::Mentionee(pb::TextV2Mentionee {
            target: Some(target),
        })),
    }
}

/// A textV2 with `{key}`s for the given substitutions, as LINE documents it.
fn text_v2(substitution: Vec<(&str, pb::TextV2Substitution)>) -> pb::Message {
    let placeholders: Vec<_> = substitution
        .iter()
        .map(|(k, _)| format!("{{{k}}}"))
        .collect();
    message(Kind::TextV2(pb::TextV2Message {
        text: format!("Welcome, {} {{{{line-adapter}}}}", placeholders.join(" ")),
        substitution: substitution
            .into_iter()
            .map(|(key, sub)| (key.to_owned(), sub))
            .collect(),
        quote_token: "q3Plxr4AgKd".into(),
    }))
}

fn laugh() -> pb::TextV2Substitution {
    pb::TextV2Substitution {
        kind: Some(Sub::Emoji(pb::TextV2Emoji {
            product_id: "5a8555cfe6256cc92ea23c2a".into(),
            emoji_id: "002".into(),
        })),
    }
}

/// Every kind of message the contract offers, each as LINE documents it.
fn every_message() -> Vec<Vec<pb::Message>> {
    let text = message(Kind::Text(pb::TextMessage {
        text: "$ Hello from line-adapter".into(),
        emojis: vec![pb::TextMessageEmoji {
            index: 0,
            product_id: "5ac1bfd5040ab15980c9b435".into(),
            emoji_id: "001".into(),
        }],
        quote_token: "q3Plxr4AgKd".into(),
    }));
    let mut with_extras = text.clone();
    with_extras.quick_reply = Some(pb::QuickReply {
        items: vec![pb::QuickReplyItem {
            image_url: "https://example.com/sushi.png".into(),
            action_json: r#"{"type":"message","label":"Sushi","text":"Sushi"}"#.into(),
        }],
    });
    with_extras.sender = Some(pb::Sender {
        name: "Cony".into(),
        icon_url: "https://example.com/cony.png".into(),
    });
    vec![
        vec![text],
        vec![with_extras],
        // Mentions go to groups only: see the group push below.
        vec![text_v2(vec![("laugh", laugh())])],
        vec![message(Kind::Sticker(pb::StickerMessage {
            package_id: "446".into(),
            sticker_id: "1988".into(),
            quote_token: String::new(),
        }))],
        vec![message(Kind::Image(pb::ImageMessage {
            original_content_url: "https://example.com/original.jpg".into(),
            preview_image_url: "https://example.com/preview.jpg".into(), ..Default::default()
        }))],
        vec![message(Kind::Video(pb::VideoMessage {
            original_content_url: "https://example.com/original.mp4".into(),
            preview_image_url: "https://example.com/preview.jpg".into(),
            tracking_id: "track-id".into(), ..Default::default()
        }))],
        vec![message(Kind::Audio(pb::AudioMessage {
            original_content_url: "https://example.com/original.m4a".into(),
            duration_ms: 60_000, ..Default::default()
        }))],
        vec![message(Kind::Location(pb::LocationMessage {
            title: "my location".into(),
            address: "1-3 Kioicho, Chiyoda-ku, Tokyo".into(),
            latitude: 35.67966,
            longitude: 139.73669,
        }))],
        vec![message(Kind::Flex(pb::FlexMessage {
            alt_text: "this is a flex message".into(),
            contents_json: r#"{"type":"bubble","body":{"type":"box","layout":"vertical","contents":[{"type":"text","text":"hello"}]}}"#.into(),
        }))],
        vec![message(Kind::Template(pb::TemplateMessage {
            alt_text: "this is a confirm template".into(),
            template_json: r#"{"type":"confirm","text":"Are you sure?","actions":[{"type":"message","label":"Yes","text":"yes"},{"type":"message","label":"No","text":"no"}]}"#.into(),
        }))],
        vec![message(Kind::Imagemap(pb::ImagemapMessage {
            base_url: "https://example.com/bot/images/rm001".into(),
            alt_text: "This is an imagemap".into(),
            base_width: 1040,
            base_height: 1040,
            actions_json: r#"[{"type":"uri","linkUri":"https://example.com/","area":{"x":0,"y":586,"width":520,"height":454}}]"#.into(),
            video_json: String::new(),
        }))],
        vec![message(Kind::Raw(pb::RawMessage {
            json: r#"{"type":"text","text":"raw text"}"#.into(),
        }))],
    ]
}

#[tokio::test]
async fn every_request_we_send_passes_lines_openapi_description() {
    let Ok(prism) = std::env::var("LINE_ADAPTER_PRISM_URL") else {
        eprintln!(
            "LINE_ADAPTER_PRISM_URL is not set: the contract check needs Prism (.ci/run starts it)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(test_settings(dir.path(), |layer| {
        layer.line_api_base = Some(prism.clone());
        layer.line_data_api_base = Some(prism.clone());
        // RegisterWebhook sends only https endpoints.
        layer.public_base_url = Some("https://line.example.com".into());
    }))
    .await;
    let channel = app
        .admin()
        .await
        .create_channel(pb::CreateChannelRequest {
            display_name: "Contract".into(),
            line_channel_id: "1234567890".into(),
            channel_secret: SECRET.into(),
            channel_access_token: TOKEN.into(),
            token_mode: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap();
    let mut messaging = app.messaging().await;
    let user = "U4af4980629abcdef0123456789abcdef";
    let to = Some(pb::Conversation {
        chat: Some(Chat::UserId(user.into())),
    });
    let delivered = |delivery: Option<pb::Delivery>, what: &str| {
        let delivery = delivery.unwrap();
        assert_eq!(
            delivery.state(),
            pb::DeliveryState::Delivered,
            "{what}: {:?}",
            delivery.error
        );
    };

    for (i, messages) in every_message().into_iter().enumerate() {
        let response = messaging
            .push(pb::PushRequest {
                channel_id: channel.id.clone(),
                to: to.clone(),
                messages,
                notification_disabled: i % 2 == 0,
                custom_aggregation_units: if i == 0 {
                    vec!["promotion_a".into()]
                } else {
                    vec![]
                },
                idempotency_key: String::new(),
            })
            .await
            .unwrap_or_else(|status| panic!("push #{i}: {status:?}"));
        delivered(response.into_inner().delivery, &format!("push #{i}"));
    }
    // Mentions of a user and of everyone, which LINE takes in groups only.
    let mentions = text_v2(vec![
        ("user1", mention(Target::UserId(user.into()))),
        ("everyone", mention(Target::All(pb::TextV2MentionAll {}))),
        ("laugh", laugh()),
    ]);
    let response = messaging
        .push(pb::PushRequest {
            channel_id: channel.id.clone(),
            to: Some(pb::Conversation {
                chat: Some(Chat::GroupId("Ca56f94637c0123456789abcdef012345".into())),
            }),
            messages: vec![mentions],
            ..Default::default()
        })
        .await
        .unwrap_or_else(|status| panic!("push of mentions: {status:?}"));
    delivered(response.into_inner().delivery, "push of mentions");
    // Uploads named by media_id: the URLs filled in, and a file message's
    // Flex bubble, as LINE's description wants them.
    let mut uploaded = Vec::new();
    for (content_type, name, bytes) in [
        (
            "application/pdf",
            "quote.pdf",
            b"%PDF-1.4\n%%EOF\n".to_vec(),
        ),
        ("image/png", "dot.png", {
            let mut png = Vec::new();
            image::DynamicImage::new_rgb8(4, 3)
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
            png
        }),
    ] {
        use pb::upload_media_request::Part;
        let parts = vec![
            pb::UploadMediaRequest {
                part: Some(Part::Start(pb::UploadMediaStart {
                    channel_id: channel.id.clone(),
                    content_type: content_type.into(),
                    file_name: name.into(),
                    size_bytes: None,
                })),
            },
            pb::UploadMediaRequest {
                part: Some(Part::Chunk(bytes)),
            },
        ];
        let media = messaging
            .upload_media(tokio_stream::iter(parts))
            .await
            .unwrap()
            .into_inner()
            .media
            .unwrap();
        uploaded.push(media.media_id);
    }
    let response = messaging
        .push(pb::PushRequest {
            channel_id: channel.id.clone(),
            to: to.clone(),
            messages: vec![
                message(Kind::File(pb::FileMessage {
                    media_id: uploaded[0].clone(),
                    alt_text: String::new(),
                })),
                message(Kind::Image(pb::ImageMessage {
                    media_id: uploaded[1].clone(),
                    ..Default::default()
                })),
            ],
            ..Default::default()
        })
        .await
        .unwrap_or_else(|status| panic!("push of uploads: {status:?}"));
    delivered(response.into_inner().delivery, "push of uploads");

    let text = every_message().remove(0);
    let reply = messaging
        .reply(pb::ReplyRequest {
            channel_id: channel.id.clone(),
            reply_token: "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA".into(),
            messages: text.clone(),
            notification_disabled: true,
            ..Default::default()
        })
        .await
        .unwrap();
    delivered(reply.into_inner().delivery, "reply");
    let multicast = messaging
        .multicast(pb::MulticastRequest {
            channel_id: channel.id.clone(),
            to: vec![user.into(), "U0123456789abcdef0123456789abcdef".into()],
            messages: text.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    delivered(multicast.into_inner().delivery, "multicast");
    let broadcast = messaging
        .broadcast(pb::BroadcastRequest {
            channel_id: channel.id.clone(),
            messages: text,
            ..Default::default()
        })
        .await
        .unwrap();
    delivered(broadcast.into_inner().delivery, "broadcast");
    // Prism's 202 carries no x-line-request-id, which LINE's progress is
    // asked by: the request passed, but its outcome cannot be followed.
    match messaging
        .narrowcast(narrowcast_request(&channel.id, every_message().remove(0)))
        .await
    {
        Ok(response) => assert_eq!(
            response.into_inner().delivery.unwrap().state(),
            pb::DeliveryState::Accepted
        ),
        Err(status) => assert!(
            status.code() == tonic::Code::DeadlineExceeded
                && status.message().contains("without a request id"),
            "narrowcast: {status:?}"
        ),
    }

    messaging
        .get_profile(pb::GetProfileRequest {
            channel_id: channel.id.clone(),
            user_id: user.into(),
        })
        .await
        .expect("getProfile");
    messaging
        .get_group_summary(pb::GetGroupSummaryRequest {
            channel_id: channel.id.clone(),
            group_id: "Ca56f94637c0123456789abcdef012345".into(),
        })
        .await
        .expect("getGroupSummary");
    messaging
        .show_loading_animation(pb::ShowLoadingAnimationRequest {
            channel_id: channel.id.clone(),
            user_id: user.into(),
            loading_seconds: 20,
        })
        .await
        .expect("showLoadingAnimation");
    let mut admin = app.admin().await;
    admin
        .get_bot_info(pb::GetBotInfoRequest {
            channel_id: channel.id.clone(),
        })
        .await
        .expect("getBotInfo");
    admin
        .get_quota(pb::GetQuotaRequest {
            channel_id: channel.id.clone(),
            date: String::new(),
        })
        .await
        .expect("getMessageQuota, getMessageQuotaConsumption, getNumberOfSent*Messages");
    let dated = admin
        .get_quota(pb::GetQuotaRequest {
            channel_id: channel.id.clone(),
            date: "20240229".into(),
        })
        .await
        .expect("getNumberOfSent*Messages with a date")
        .into_inner();
    assert_eq!(dated.sent_date, "20240229");
    let registered = admin
        .register_webhook(pb::RegisterWebhookRequest {
            channel_id: channel.id.clone(),
        })
        .await
        .expect("setWebhookEndpoint, testWebhookEndpoint, getWebhookEndpoint")
        .into_inner();
    assert!(
        registered.test.is_some_and(|t| t.timestamp.is_some()),
        "LINE's example timestamp is read"
    );
    let checked = admin
        .get_channel(pb::GetChannelRequest {
            channel_id: channel.id.clone(),
            check_webhook: true,
        })
        .await
        .expect("getWebhookEndpoint")
        .into_inner()
        .webhook_check
        .unwrap();
    assert_eq!(checked.error, "", "getWebhookEndpoint");
    messaging
        .mark_as_read(pb::MarkAsReadRequest {
            channel_id: channel.id.clone(),
            mark_as_read_token: "30yhdy232...".into(),
        })
        .await
        .expect("markMessagesAsReadByToken");
    for route in [
        pb::Route::Reply,
        pb::Route::Push,
        pb::Route::Multicast,
        pb::Route::Narrowcast,
        pb::Route::Broadcast,
    ] {
        messaging
            .validate_messages(pb::ValidateMessagesRequest {
                channel_id: channel.id.clone(),
                route: route as i32,
                messages: vec![message(Kind::Text(pb::TextMessage {
                    text: "Is this a valid canned reply?".into(),
                    ..Default::default()
                }))],
            })
            .await
            .unwrap_or_else(|err| panic!("validate {route:?}: {err:?}"));
    }

    official_account_calls(&app, &channel.id).await;
}

/// A PNG of `width` x `height`.
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::RgbImage::new(width, height)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// OfficialAccount's calls to messaging-api.yml: rich menus, their images,
/// the default, links, aliases, batches, chats, followers and aggregation
/// units. Prism answers with LINE's examples (a rich menu of 2500x1686).
async fn official_account_calls(app: &TestApp, channel: &str) {
    use pb::rich_menu_action::Kind;
    let mut account = app.official_account().await;
    let channel = channel.to_owned();
    let user = "U4af4980629abcdef0123456789abcdef";
    let group = "Ca56f94637c0123456789abcdef012345";
    let room = "Ra8dbf4673c0123456789abcdef012345";
    let area = |x, kind| pb::RichMenuArea {
        bounds: Some(pb::RichMenuBounds {
            x,
            y: 0,
            width: 625,
            height: 1686,
        }),
        action: Some(pb::RichMenuAction {
            label: "Tap".into(),
            kind: Some(kind),
        }),
    };
    let menu = pb::RichMenu {
        size: Some(pb::RichMenuSize {
            width: 2500,
            height: 1686,
        }),
        selected: false,
        name: "contract".into(),
        chat_bar_text: "Menu".into(),
        areas: vec![
            area(
                0,
                Kind::Postback(pb::RichMenuPostbackAction {
                    data: "action=buy&itemid=123".into(),
                    display_text: "Buy".into(),
                    input_option: "openKeyboard".into(),
                    fill_in_text: "How many?".into(),
                }),
            ),
            area(
                625,
                Kind::Message(pb::RichMenuMessageAction {
                    text: "hello".into(),
                }),
            ),
            area(
                1250,
                Kind::Uri(pb::RichMenuUriAction {
                    uri: "https://example.com/".into(),
                    alt_uri_desktop: "https://example.com/pc".into(),
                }),
            ),
            area(
                1875,
                Kind::RichMenuSwitch(pb::RichMenuSwitchAction {
                    rich_menu_alias_id: "richmenu-alias-b".into(),
                    data: "richmenu-changed-to-b".into(),
                }),
            ),
        ],
        ..Default::default()
    };
    let created = account
        .create_rich_menu(pb::CreateRichMenuRequest {
            channel_id: channel.clone(),
            definition: Some(pb::create_rich_menu_request::Definition::RichMenu(
                menu.clone(),
            )),
        })
        .await
        .expect("validateRichMenuObject, createRichMenu")
        .into_inner();
    let id = created.rich_menu_id;
    account
        .get_rich_menu(pb::GetRichMenuRequest {
            channel_id: channel.clone(),
            rich_menu_id: id.clone(),
        })
        .await
        .expect("getRichMenu");
    account
        .list_rich_menus(pb::ListRichMenusRequest {
            channel_id: channel.clone(),
        })
        .await
        .expect("getRichMenuList");
    let image = png(2500, 1686);
    let upload = vec![
        pb::SetRichMenuImageRequest {
            part: Some(pb::set_rich_menu_image_request::Part::Target(
                pb::RichMenuImageTarget {
                    channel_id: channel.clone(),
                    rich_menu_id: id.clone(),
                    content_type: "image/png".into(),
                },
            )),
        },
        pb::SetRichMenuImageRequest {
            part: Some(pb::set_rich_menu_image_request::Part::Chunk(image.clone())),
        },
    ];
    account
        .set_rich_menu_image(tokio_stream::iter(upload))
        .await
        .expect("getRichMenu, setRichMenuImage");
    let mut parts = account
        .get_rich_menu_image(pb::GetRichMenuImageRequest {
            channel_id: channel.clone(),
            rich_menu_id: id.clone(),
        })
        .await
        .expect("getRichMenuImage")
        .into_inner();
    while let Some(part) = parts.message().await.expect("getRichMenuImage streams") {
        drop(part);
    }
    account
        .set_default_rich_menu(pb::SetDefaultRichMenuRequest {
            channel_id: channel.clone(),
            rich_menu_id: id.clone(),
        })
        .await
        .expect("setDefaultRichMenu");
    account
        .get_default_rich_menu(pb::GetDefaultRichMenuRequest {
            channel_id: channel.clone(),
        })
        .await
        .expect("getDefaultRichMenuId");
    account
        .clear_default_rich_menu(pb::ClearDefaultRichMenuRequest {
            channel_id: channel.clone(),
        })
        .await
        .expect("cancelDefaultRichMenu");
    for users in [
        vec![user.to_owned()],
        vec![
            user.to_owned(),
            "U0123456789abcdef0123456789abcdef".to_owned(),
        ],
    ] {
        account
            .link_rich_menu(pb::LinkRichMenuRequest {
                channel_id: channel.clone(),
                rich_menu_id: id.clone(),
                user_ids: users.clone(),
            })
            .await
            .expect("linkRichMenuIdToUser, linkRichMenuIdToUsers");
        account
            .unlink_rich_menu(pb::UnlinkRichMenuRequest {
                channel_id: channel.clone(),
                user_ids: users,
            })
            .await
            .expect("unlinkRichMenuIdFromUser, unlinkRichMenuIdFromUsers");
    }
    account
        .get_user_rich_menu(pb::GetUserRichMenuRequest {
            channel_id: channel.clone(),
            user_id: user.into(),
        })
        .await
        .expect("getRichMenuIdOfUser");
    account
        .create_rich_menu_alias(pb::CreateRichMenuAliasRequest {
            channel_id: channel.clone(),
            rich_menu_alias_id: "richmenu-alias-a".into(),
            rich_menu_id: id.clone(),
        })
        .await
        .expect("createRichMenuAlias");
    account
        .update_rich_menu_alias(pb::UpdateRichMenuAliasRequest {
            channel_id: channel.clone(),
            rich_menu_alias_id: "richmenu-alias-a".into(),
            rich_menu_id: id.clone(),
        })
        .await
        .expect("updateRichMenuAlias");
    account
        .list_rich_menu_aliases(pb::ListRichMenuAliasesRequest {
            channel_id: channel.clone(),
        })
        .await
        .expect("getRichMenuAliasList");
    account
        .delete_rich_menu_alias(pb::DeleteRichMenuAliasRequest {
            channel_id: channel.clone(),
            rich_menu_alias_id: "richmenu-alias-a".into(),
        })
        .await
        .expect("deleteRichMenuAlias");
    use pb::rich_menu_batch_operation::Operation;
    let batch = account
        .start_rich_menu_batch(pb::StartRichMenuBatchRequest {
            channel_id: channel.clone(),
            operations: vec![
                pb::RichMenuBatchOperation {
                    operation: Some(Operation::Link(pb::RichMenuBatchLink {
                        from_rich_menu_id: id.clone(),
                        to_rich_menu_id: "richmenu-88c05ef6921ae53f8b58a25f3a65faf7".into(),
                    })),
                },
                pb::RichMenuBatchOperation {
                    operation: Some(Operation::Unlink(pb::RichMenuBatchUnlink {
                        from_rich_menu_id: id.clone(),
                    })),
                },
                pb::RichMenuBatchOperation {
                    operation: Some(Operation::UnlinkAll(pb::RichMenuBatchUnlinkAll {})),
                },
            ],
            resume_request_key: "contract-1".into(),
        })
        .await;
    // Prism sends no x-line-request-id, which LINE always does: the batch
    // was sent (Prism's log says whether it was valid), its id is missing.
    if let Err(status) = &batch {
        assert!(
            status.message().contains("no x-line-request-id"),
            "validateRichMenuBatchRequest, richMenuBatch: {status:?}"
        );
    }
    account
        .get_rich_menu_batch_progress(pb::GetRichMenuBatchProgressRequest {
            channel_id: channel.clone(),
            request_id: "7c2c9a4b-5a3e-4b37-9d1a-0123456789ab".into(),
        })
        .await
        .expect("getRichMenuBatchProgress");
    let published = account
        .publish_rich_menu(pb::PublishRichMenuRequest {
            channel_id: channel.clone(),
            definition: Some(pb::publish_rich_menu_request::Definition::RichMenu(menu)),
            image,
            image_content_type: String::new(),
            make_default: true,
            rich_menu_alias_id: "richmenu-alias-a".into(),
        })
        .await
        .expect("PublishRichMenu's calls")
        .into_inner();
    assert!(published.is_default);
    account
        .delete_rich_menu(pb::DeleteRichMenuRequest {
            channel_id: channel.clone(),
            rich_menu_id: id,
        })
        .await
        .expect("deleteRichMenu");

    use pb::{get_chat_member_count_request as count, get_chat_member_ids_request as ids};
    for (ids_chat, count_chat, leave_chat) in [
        (
            ids::Chat::GroupId(group.into()),
            count::Chat::GroupId(group.into()),
            pb::leave_chat_request::Chat::GroupId(group.into()),
        ),
        (
            ids::Chat::RoomId(room.into()),
            count::Chat::RoomId(room.into()),
            pb::leave_chat_request::Chat::RoomId(room.into()),
        ),
    ] {
        account
            .get_chat_member_ids(pb::GetChatMemberIdsRequest {
                channel_id: channel.clone(),
                chat: Some(ids_chat),
                page_token: "jxEWCEEP".into(),
            })
            .await
            .expect("getGroupMembersIds, getRoomMembersIds");
        account
            .get_chat_member_count(pb::GetChatMemberCountRequest {
                channel_id: channel.clone(),
                chat: Some(count_chat),
            })
            .await
            .expect("getGroupMemberCount, getRoomMemberCount");
        account
            .leave_chat(pb::LeaveChatRequest {
                channel_id: channel.clone(),
                chat: Some(leave_chat),
            })
            .await
            .expect("leaveGroup, leaveRoom");
    }
    account
        .get_follower_ids(pb::GetFollowerIdsRequest {
            channel_id: channel.clone(),
            page_size: 1000,
            page_token: "yANU9IA".into(),
        })
        .await
        .expect("getFollowers");
    account
        .list_aggregation_units(pb::ListAggregationUnitsRequest {
            channel_id: channel.clone(),
            page_size: 50,
            page_token: "jxEWCEEP".into(),
        })
        .await
        .expect("getAggregationUnitNameList, getAggregationUnitUsage");
    let link = account
        .issue_link_token(pb::IssueLinkTokenRequest {
            channel_id: channel.clone(),
            user_id: user.into(),
        })
        .await
        .expect("issueLinkToken")
        .into_inner();
    assert_eq!(link.link_token, "NMZTNuVrPTqlr2IF8Bnymkb7rXfYv5EY");
}

/// A narrowcast with every recipient and filter kind, nested with every
/// operator, and a limit.
fn narrowcast_request(channel: &str, messages: Vec<pb::Message>) -> pb::NarrowcastRequest {
    use pb::{demographic_filter::Filter, narrowcast_recipient::Recipient};
    let recipient = |r| pb::NarrowcastRecipient { recipient: Some(r) };
    let filter = |f| pb::DemographicFilter { filter: Some(f) };
    pb::NarrowcastRequest {
        channel_id: channel.into(),
        messages,
        recipient: Some(recipient(Recipient::AllOf(pb::NarrowcastRecipients {
            recipients: vec![
                recipient(Recipient::AudienceGroupId(5614991017776)),
                recipient(Recipient::AnyOf(pb::NarrowcastRecipients {
                    recipients: vec![
                        recipient(Recipient::RedeliveryRequestId(
                            "5b59509c-c57b-11e9-aa8c-2a2ae2dbcce4".into(),
                        )),
                        recipient(Recipient::Negated(Box::new(recipient(
                            Recipient::AudienceGroupId(4389303728991),
                        )))),
                    ],
                })),
            ],
        }))),
        filter: Some(filter(Filter::AnyOf(pb::DemographicFilters {
            filters: vec![
                filter(Filter::Age(pb::AgeRange {
                    min_age: 20,
                    below_age: 30,
                })),
                filter(Filter::AllOf(pb::DemographicFilters {
                    filters: vec![
                        filter(Filter::Gender(pb::GenderFilter {
                            genders: vec![pb::Gender::Female as i32],
                        })),
                        filter(Filter::AppType(pb::AppTypeFilter {
                            app_types: vec![pb::AppType::Ios as i32, pb::AppType::Android as i32],
                        })),
                        filter(Filter::SubscriptionPeriod(pb::SubscriptionPeriodRange {
                            min_days: 7,
                            below_days: 0,
                        })),
                        filter(Filter::Negated(Box::new(filter(Filter::Area(
                            pb::AreaFilter {
                                areas: vec!["jp_13".into(), "jp_27".into()],
                            },
                        ))))),
                    ],
                })),
            ],
        }))),
        limit: Some(pb::NarrowcastLimit {
            max: 100,
            up_to_remaining_quota: true,
            forbid_partial_delivery: true,
        }),
        notification_disabled: true,
        idempotency_key: String::new(),
    }
}
