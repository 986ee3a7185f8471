//! OfficialAccount over the wire: rich menus (with their images, the
//! default, links, aliases, batches and PublishRichMenu undoing itself),
//! chats, followers and insight, against the stand-in for LINE, which
//! keeps rich menus as LINE does so that a test sees what a call left
//! behind; LINE's errors as the one table maps them; the `insight` scope.

mod support;

use std::io::Cursor;

use bytes::Bytes;
use line_adapter::{
    proto::v1::{
        self as pb, official_account_client::OfficialAccountClient, rich_menu_action::Kind,
    },
    secret::Secret,
    settings::ApiKeyList,
};
use serde_json::{Value, json};
use support::{
    TestApp, create_channel_with_token, fake_line::FakeLine, start_with_line, test_settings,
};
use tokio_stream::StreamExt as _;
use tonic::{Code, Request, Status, transport::Channel};
use tonic_types::StatusExt as _;

const USER: &str = "U4af4980629abcdef0123456789abcdef";
const OTHER_USER: &str = "U0123456789abcdef0123456789abcdef";
const GROUP: &str = "Ca56f94637c0123456789abcdef012345";
const ROOM: &str = "Ra8dbf4673c0123456789abcdef012345";

fn encoded(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image::RgbImage::from_pixel(width, height, image::Rgb([6, 199, 85]))
        .write_to(&mut out, format)
        .unwrap();
    out.into_inner()
}

fn png(width: u32, height: u32) -> Vec<u8> {
    encoded(width, height, image::ImageFormat::Png)
}

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    encoded(width, height, image::ImageFormat::Jpeg)
}

fn action(kind: Kind) -> Option<pb::RichMenuAction> {
    Some(pb::RichMenuAction {
        label: String::new(),
        kind: Some(kind),
    })
}

/// A 2500x843 menu of two areas: a postback and a link.
fn menu() -> pb::RichMenu {
    let bounds = |x| {
        Some(pb::RichMenuBounds {
            x,
            y: 0,
            width: 1250,
            height: 843,
        })
    };
    pb::RichMenu {
        size: Some(pb::RichMenuSize {
            width: 2500,
            height: 843,
        }),
        selected: true,
        name: "spring sale".into(),
        chat_bar_text: "Menu".into(),
        areas: vec![
            pb::RichMenuArea {
                bounds: bounds(0),
                action: action(Kind::Postback(pb::RichMenuPostbackAction {
                    data: "action=coupons".into(),
                    display_text: "Coupons".into(),
                    ..Default::default()
                })),
            },
            pb::RichMenuArea {
                bounds: bounds(1250),
                action: action(Kind::Uri(pb::RichMenuUriAction {
                    uri: "https://example.com/shop".into(),
                    alt_uri_desktop: String::new(),
                })),
            },
        ],
        ..Default::default()
    }
}

/// LINE's JSON of [`menu`], as the service sends it.
fn menu_json() -> Value {
    json!({
        "size": {"width": 2500, "height": 843},
        "selected": true,
        "name": "spring sale",
        "chatBarText": "Menu",
        "areas": [
            {"bounds": {"x": 0, "y": 0, "width": 1250, "height": 843},
             "action": {"type": "postback", "data": "action=coupons", "displayText": "Coupons"}},
            {"bounds": {"x": 1250, "y": 0, "width": 1250, "height": 843},
             "action": {"type": "uri", "uri": "https://example.com/shop"}},
        ],
    })
}

struct Setup {
    line: FakeLine,
    app: TestApp,
    channel: String,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await.id;
    Setup {
        line,
        app,
        channel,
        _dir: dir,
    }
}

impl Setup {
    async fn client(&self) -> OfficialAccountClient<Channel> {
        self.app.official_account().await
    }

    /// Requests that reached LINE as `METHOD path?query`.
    fn calls(&self) -> Vec<String> {
        self.line
            .requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    fn body_of(&self, method: &str, path: &str) -> Value {
        let request = self
            .line
            .requests()
            .into_iter()
            .find(|r| r.method == method && r.path == path)
            .unwrap_or_else(|| panic!("no {method} {path} in {:?}", self.calls()));
        serde_json::from_slice(&request.body).unwrap()
    }
}

/// The image upload stream: the target, then the image in `chunks` parts.
fn upload(
    channel: &str,
    rich_menu_id: &str,
    content_type: &str,
    image: &[u8],
    chunks: usize,
) -> Vec<pb::SetRichMenuImageRequest> {
    use pb::set_rich_menu_image_request::Part;
    let mut messages = vec![pb::SetRichMenuImageRequest {
        part: Some(Part::Target(pb::RichMenuImageTarget {
            channel_id: channel.into(),
            rich_menu_id: rich_menu_id.into(),
            content_type: content_type.into(),
        })),
    }];
    let size = image.len().div_ceil(chunks.max(1)).max(1);
    messages.extend(image.chunks(size).map(|chunk| pb::SetRichMenuImageRequest {
        part: Some(Part::Chunk(chunk.to_vec())),
    }));
    messages
}

fn error_metadata(status: &Status, key: &str) -> String {
    status
        .get_error_details()
        .error_info()
        .and_then(|info| info.metadata.get(key).cloned())
        .unwrap_or_default()
}

fn violation_fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// LINE's rate-limit 429, carried as RESOURCE_EXHAUSTED with its
/// Retry-After in RetryInfo.
fn assert_rate_limited(status: &tonic::Status, retry_after_secs: u64) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(
        status
            .get_error_details()
            .retry_info()
            .and_then(|r| r.retry_delay),
        Some(std::time::Duration::from_secs(retry_after_secs))
    );
}

#[tokio::test]
async fn rich_menus_are_lines_state_created_read_linked_and_deleted() {
    let s = setup().await;
    let mut client = s.client().await;
    let channel = s.channel.clone();

    let created = client
        .create_rich_menu(pb::CreateRichMenuRequest {
            channel_id: channel.clone(),
            definition: Some(pb::create_rich_menu_request::Definition::RichMenu(menu())),
        })
        .await
        .unwrap()
        .into_inner();
    let id = created.rich_menu_id;
    assert_eq!(s.line.rich_menu_ids(), std::slice::from_ref(&id));
    assert_eq!(
        s.calls(),
        ["POST /v2/bot/richmenu/validate", "POST /v2/bot/richmenu"],
        "LINE's validator is asked first"
    );
    assert_eq!(s.body_of("POST", "/v2/bot/richmenu/validate"), menu_json());
    assert_eq!(s.body_of("POST", "/v2/bot/richmenu"), menu_json());

    let read = client
        .get_rich_menu(pb::GetRichMenuRequest {
            channel_id: channel.clone(),
            rich_menu_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .rich_menu
        .unwrap();
    assert_eq!(read.rich_menu_id, id);
    assert_eq!(read.areas, menu().areas, "actions come back typed");
    assert_eq!(read.size, menu().size);
    let line_json: Value = serde_json::from_str(&read.line_json).unwrap();
    assert_eq!(line_json["richMenuId"], json!(id));

    // A second menu from LINE's own JSON, with a datetimepicker that has
    // no typed form here.
    let raw = json!({
        "size": {"width": 800, "height": 270}, "selected": false, "name": "night",
        "chatBarText": "Night",
        "areas": [{"bounds": {"x": 0, "y": 0, "width": 800, "height": 270},
                   "action": {"type": "datetimepicker", "data": "d", "mode": "date"}}],
    });
    let night = client
        .create_rich_menu(pb::CreateRichMenuRequest {
            channel_id: channel.clone(),
            definition: Some(pb::create_rich_menu_request::Definition::RichMenuJson(
                raw.to_string(),
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .rich_menu_id;
    let listed = client
        .list_rich_menus(pb::ListRichMenusRequest {
            channel_id: channel.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .rich_menus;
    assert_eq!(listed.len(), 2);
    let picker = &listed[1].areas[0].action.as_ref().unwrap().kind;
    let Some(Kind::Json(picker)) = picker else {
        panic!("a datetimepicker is kept as LINE's JSON: {picker:?}");
    };
    assert_eq!(
        serde_json::from_str::<Value>(picker).unwrap(),
        raw["areas"][0]["action"]
    );

    // The image, in three chunks, then back in a stream.
    let image = png(2500, 843);
    let uploaded = client
        .set_rich_menu_image(tokio_stream::iter(upload(&channel, &id, "", &image, 3)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            uploaded.content_type.as_str(),
            uploaded.width,
            uploaded.height
        ),
        ("image/png", 2500, 843)
    );
    assert_eq!(uploaded.size_bytes, image.len() as i64);
    assert_eq!(
        s.line.rich_menu_image(&id),
        Some(("image/png".into(), Bytes::from(image.clone())))
    );
    let mut parts = client
        .get_rich_menu_image(pb::GetRichMenuImageRequest {
            channel_id: channel.clone(),
            rich_menu_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut downloaded = Vec::new();
    let mut metadata = None;
    while let Some(part) = parts.next().await {
        match part.unwrap().part.unwrap() {
            pb::get_rich_menu_image_response::Part::Metadata(m) => metadata = Some(m),
            pb::get_rich_menu_image_response::Part::Chunk(c) => downloaded.extend(c),
        }
    }
    assert_eq!(metadata.unwrap().content_type, "image/png");
    assert_eq!(downloaded, image);
    let second = png(800, 270);
    client
        .set_rich_menu_image(tokio_stream::iter(upload(
            &channel,
            &night,
            "image/png",
            &second,
            1,
        )))
        .await
        .unwrap();

    // The default.
    client
        .set_default_rich_menu(pb::SetDefaultRichMenuRequest {
            channel_id: channel.clone(),
            rich_menu_id: id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(s.line.default_rich_menu(), Some(id.clone()));
    let default = client
        .get_default_rich_menu(pb::GetDefaultRichMenuRequest {
            channel_id: channel.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(default.rich_menu_id, id);

    // Aliases.
    client
        .create_rich_menu_alias(pb::CreateRichMenuAliasRequest {
            channel_id: channel.clone(),
            rich_menu_alias_id: "spring".into(),
            rich_menu_id: id.clone(),
        })
        .await
        .unwrap();
    client
        .update_rich_menu_alias(pb::UpdateRichMenuAliasRequest {
            channel_id: channel.clone(),
            rich_menu_alias_id: "spring".into(),
            rich_menu_id: night.clone(),
        })
        .await
        .unwrap();
    let aliases = client
        .list_rich_menu_aliases(pb::ListRichMenuAliasesRequest {
            channel_id: channel.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .aliases;
    assert_eq!(
        aliases,
        [pb::RichMenuAlias {
            rich_menu_alias_id: "spring".into(),
            rich_menu_id: night.clone(),
        }]
    );
    client
        .delete_rich_menu_alias(pb::DeleteRichMenuAliasRequest {
            channel_id: channel.clone(),
            rich_menu_alias_id: "spring".into(),
        })
        .await
        .unwrap();
    assert!(s.line.rich_menu_aliases().is_empty());

    // Links: one user at once, several in LINE's background.
    let one = client
        .link_rich_menu(pb::LinkRichMenuRequest {
            channel_id: channel.clone(),
            rich_menu_id: night.clone(),
            user_ids: vec![USER.into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!one.asynchronous);
    s.line.script("/v2/bot/richmenu/bulk/link", 202, &[], "{}");
    let many = client
        .link_rich_menu(pb::LinkRichMenuRequest {
            channel_id: channel.clone(),
            rich_menu_id: night.clone(),
            user_ids: vec![USER.into(), OTHER_USER.into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(many.asynchronous);
    assert_eq!(
        s.body_of("POST", "/v2/bot/richmenu/bulk/link"),
        json!({"richMenuId": night, "userIds": [USER, OTHER_USER]})
    );
    s.line.script(
        &format!("/v2/bot/user/{USER}/richmenu"),
        200,
        &[],
        &json!({ "richMenuId": night }).to_string(),
    );
    let linked = client
        .get_user_rich_menu(pb::GetUserRichMenuRequest {
            channel_id: channel.clone(),
            user_id: USER.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(linked.rich_menu_id, night);
    client
        .unlink_rich_menu(pb::UnlinkRichMenuRequest {
            channel_id: channel.clone(),
            user_ids: vec![USER.into()],
        })
        .await
        .unwrap();
    client
        .unlink_rich_menu(pb::UnlinkRichMenuRequest {
            channel_id: channel.clone(),
            user_ids: vec![USER.into(), OTHER_USER.into()],
        })
        .await
        .unwrap();
    let calls = s.calls();
    for expected in [
        format!("POST /v2/bot/user/{USER}/richmenu/{night}"),
        format!("GET /v2/bot/user/{USER}/richmenu"),
        format!("DELETE /v2/bot/user/{USER}/richmenu"),
        "POST /v2/bot/richmenu/bulk/unlink".to_owned(),
    ] {
        assert!(calls.contains(&expected), "{expected} in {calls:?}");
    }

    // Batches: LINE's validator, then the batch, whose request id follows it.
    s.line.script(
        "/v2/bot/richmenu/batch",
        202,
        &[("x-line-request-id", "batch-req-1")],
        "{}",
    );
    let batch = client
        .start_rich_menu_batch(pb::StartRichMenuBatchRequest {
            channel_id: channel.clone(),
            operations: vec![
                pb::RichMenuBatchOperation {
                    operation: Some(pb::rich_menu_batch_operation::Operation::Link(
                        pb::RichMenuBatchLink {
                            from_rich_menu_id: night.clone(),
                            to_rich_menu_id: id.clone(),
                        },
                    )),
                },
                pb::RichMenuBatchOperation {
                    operation: Some(pb::rich_menu_batch_operation::Operation::UnlinkAll(
                        pb::RichMenuBatchUnlinkAll {},
                    )),
                },
            ],
            resume_request_key: "spring-2026".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.request_id, "batch-req-1");
    let expected_batch = json!({
        "operations": [{"type": "link", "from": night, "to": id}, {"type": "unlinkAll"}],
        "resumeRequestKey": "spring-2026",
    });
    assert_eq!(
        s.body_of("POST", "/v2/bot/richmenu/validate/batch"),
        expected_batch
    );
    assert_eq!(s.body_of("POST", "/v2/bot/richmenu/batch"), expected_batch);
    s.line.script(
        "/v2/bot/richmenu/progress/batch",
        200,
        &[],
        r#"{"phase":"succeeded","acceptedTime":"2026-12-01T10:15:30.121Z","completedTime":"2026-12-01T10:16:00.000Z"}"#,
    );
    let progress = client
        .get_rich_menu_batch_progress(pb::GetRichMenuBatchProgressRequest {
            channel_id: channel.clone(),
            request_id: batch.request_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(progress.phase(), pb::RichMenuBatchPhase::Succeeded);
    assert_eq!(progress.accept_time.unwrap().seconds, 1_796_120_130);
    assert!(progress.complete_time.is_some());
    assert!(
        s.calls()
            .contains(&"GET /v2/bot/richmenu/progress/batch?requestId=batch-req-1".to_owned())
    );

    // Clearing and deleting leave nothing at LINE.
    client
        .clear_default_rich_menu(pb::ClearDefaultRichMenuRequest {
            channel_id: channel.clone(),
        })
        .await
        .unwrap();
    assert_eq!(s.line.default_rich_menu(), None);
    for menu in [&id, &night] {
        client
            .delete_rich_menu(pb::DeleteRichMenuRequest {
                channel_id: channel.clone(),
                rich_menu_id: menu.clone(),
            })
            .await
            .unwrap();
    }
    assert!(s.line.rich_menu_ids().is_empty());
    let gone = client
        .get_rich_menu(pb::GetRichMenuRequest {
            channel_id: channel.clone(),
            rich_menu_id: id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert_eq!(error_metadata(&gone, "line_status"), "404");
    assert!(
        gone.message().starts_with("GetRichMenu: "),
        "{}",
        gone.message()
    );
}

#[tokio::test]
async fn images_are_refused_before_line_sees_them() {
    let s = setup().await;
    let mut client = s.client().await;
    let channel = s.channel.clone();
    let id = s.line.add_rich_menu(menu_json());

    let refused = |status: Status, words: &str| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains(words),
            "{words}: {}",
            status.message()
        );
    };
    // Not an image, too big, or typed wrongly: LINE is not asked at all.
    let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec();
    refused(
        client
            .set_rich_menu_image(tokio_stream::iter(upload(&channel, &id, "", &gif, 1)))
            .await
            .unwrap_err(),
        "JPEG or PNG",
    );
    let mut big = png(2500, 843);
    big.resize(1024 * 1024 + 1, 0);
    refused(
        client
            .set_rich_menu_image(tokio_stream::iter(upload(&channel, &id, "", &big, 4)))
            .await
            .unwrap_err(),
        "1 MB",
    );
    refused(
        client
            .set_rich_menu_image(tokio_stream::iter(upload(
                &channel,
                &id,
                "image/jpeg",
                &png(2500, 843),
                1,
            )))
            .await
            .unwrap_err(),
        "target.content_type",
    );
    let chunk_first = upload(&channel, &id, "", &png(2500, 843), 1)
        .into_iter()
        .skip(1);
    refused(
        client
            .set_rich_menu_image(tokio_stream::iter(chunk_first))
            .await
            .unwrap_err(),
        "first message must be `target`",
    );
    assert!(s.line.requests().is_empty(), "{:?}", s.calls());

    // The wrong size: the menu's size is read from LINE, nothing uploaded.
    refused(
        client
            .set_rich_menu_image(tokio_stream::iter(upload(
                &channel,
                &id,
                "",
                &png(1200, 405),
                1,
            )))
            .await
            .unwrap_err(),
        "is 1200x405 pixels; the rich menu's size is 2500x843",
    );
    assert_eq!(s.calls(), [format!("GET /v2/bot/richmenu/{id}")]);
    assert_eq!(s.line.rich_menu_image(&id), None);

    // A JPEG of the right size goes up as image/jpeg.
    let photo = jpeg(2500, 843);
    let uploaded = client
        .set_rich_menu_image(tokio_stream::iter(upload(&channel, &id, "", &photo, 2)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(uploaded.content_type, "image/jpeg");
    assert_eq!(
        s.line.rich_menu_image(&id),
        Some(("image/jpeg".into(), Bytes::from(photo)))
    );
    // LINE takes one image per menu.
    let again = client
        .set_rich_menu_image(tokio_stream::iter(upload(
            &channel,
            &id,
            "",
            &png(2500, 843),
            1,
        )))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::InvalidArgument);
    assert!(
        again.message().contains("already been uploaded"),
        "{again:?}"
    );
}

fn publish_request(channel: &str, image: Vec<u8>) -> pb::PublishRichMenuRequest {
    pb::PublishRichMenuRequest {
        channel_id: channel.into(),
        definition: Some(pb::publish_rich_menu_request::Definition::RichMenu(menu())),
        image,
        image_content_type: String::new(),
        make_default: true,
        rich_menu_alias_id: "main".into(),
    }
}

#[tokio::test]
async fn publish_rich_menu_does_every_step_in_order() {
    let s = setup().await;
    let mut client = s.client().await;
    let old = s.line.add_rich_menu(menu_json());
    s.line.add_rich_menu_alias("main", &old);
    let new = s.line.next_rich_menu_id();
    let image = png(2500, 843);

    let published = client
        .publish_rich_menu(publish_request(&s.channel, image.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        published,
        pb::PublishRichMenuResponse {
            rich_menu_id: new.clone(),
            is_default: true,
            rich_menu_alias_id: "main".into(),
            previous_alias_rich_menu_id: old.clone(),
        }
    );
    assert_eq!(
        s.calls(),
        [
            "POST /v2/bot/richmenu/validate".to_owned(),
            "POST /v2/bot/richmenu".to_owned(),
            format!("POST /v2/bot/richmenu/{new}/content"),
            "GET /v2/bot/richmenu/alias/main".to_owned(),
            "POST /v2/bot/richmenu/alias/main".to_owned(),
            format!("POST /v2/bot/user/all/richmenu/{new}"),
        ]
    );
    assert_eq!(
        s.line.rich_menu_image(&new),
        Some(("image/png".into(), Bytes::from(image)))
    );
    assert_eq!(s.line.rich_menu_aliases(), [("main".into(), new.clone())]);
    assert_eq!(s.line.default_rich_menu(), Some(new));

    // A new alias is created rather than moved.
    let mut fresh = publish_request(&s.channel, png(2500, 843));
    fresh.rich_menu_alias_id = "summer".into();
    fresh.make_default = false;
    let published = client.publish_rich_menu(fresh).await.unwrap().into_inner();
    assert_eq!(published.previous_alias_rich_menu_id, "");
    assert!(!published.is_default);
    assert!(
        s.line
            .rich_menu_aliases()
            .contains(&("summer".into(), published.rich_menu_id))
    );
}

#[tokio::test]
async fn publish_rich_menu_leaves_no_menu_when_the_upload_fails() {
    let s = setup().await;
    let mut client = s.client().await;

    // The connection drops half-way through the upload.
    let first = s.line.next_rich_menu_id();
    s.line
        .script(&format!("/v2/bot/richmenu/{first}/content"), 0, &[], "");
    let failed = client
        .publish_rich_menu(publish_request(&s.channel, png(2500, 843)))
        .await
        .unwrap_err();
    assert_eq!(failed.code(), Code::Unavailable, "{failed:?}");
    assert_eq!(
        error_metadata(&failed, "publish_step"),
        "PUBLISH_RICH_MENU_STEP_UPLOAD_IMAGE"
    );
    assert_eq!(error_metadata(&failed, "rich_menu_id"), first);
    assert_eq!(error_metadata(&failed, "rollback"), "undone");
    assert!(
        failed.message().starts_with(
            "PublishRichMenu: step PUBLISH_RICH_MENU_STEP_UPLOAD_IMAGE failed (undone)"
        ),
        "{}",
        failed.message()
    );
    assert!(s.line.rich_menu_ids().is_empty(), "no menu stays at LINE");
    let uploads = s.calls().iter().filter(|c| c.ends_with("/content")).count();
    assert_eq!(uploads, 1, "an upload is not repeated");
    assert!(
        s.calls()
            .contains(&format!("DELETE /v2/bot/richmenu/{first}"))
    );
    assert!(s.line.rich_menu_aliases().is_empty());
    assert_eq!(s.line.default_rich_menu(), None);

    // LINE refuses the image: its 400 and details, and again nothing left.
    let second = s.line.next_rich_menu_id();
    s.line.script(
        &format!("/v2/bot/richmenu/{second}/content"),
        400,
        &[],
        r#"{"message":"Invalid image","details":[{"message":"image size is too large","property":"content"}]}"#,
    );
    let refused = client
        .publish_rich_menu(publish_request(&s.channel, png(2500, 843)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violation_fields(&refused), ["content"]);
    assert_eq!(error_metadata(&refused, "line_status"), "400");
    assert_eq!(error_metadata(&refused, "rollback"), "undone");
    assert!(s.line.rich_menu_ids().is_empty());
}

#[tokio::test]
async fn publish_rich_menu_points_the_alias_back_when_the_default_fails() {
    let s = setup().await;
    let mut client = s.client().await;
    let old = s.line.add_rich_menu(menu_json());
    s.line.add_rich_menu_alias("main", &old);
    let new = s.line.next_rich_menu_id();
    // LINE fails twice (the call is retried once).
    let default = format!("/v2/bot/user/all/richmenu/{new}");
    for _ in 0..2 {
        s.line
            .script(&default, 500, &[], r#"{"message":"Internal error"}"#);
    }
    let failed = client
        .publish_rich_menu(publish_request(&s.channel, png(2500, 843)))
        .await
        .unwrap_err();
    assert_eq!(failed.code(), Code::Unavailable);
    assert_eq!(
        error_metadata(&failed, "publish_step"),
        "PUBLISH_RICH_MENU_STEP_SET_DEFAULT"
    );
    assert_eq!(error_metadata(&failed, "rollback"), "undone");
    assert_eq!(
        s.line.rich_menu_ids(),
        std::slice::from_ref(&old),
        "only the old menu"
    );
    assert_eq!(s.line.rich_menu_aliases(), [("main".into(), old)]);

    // Checked here first: an image of another size creates nothing.
    let before = s.line.requests().len();
    let wrong = client
        .publish_rich_menu(publish_request(&s.channel, png(800, 270)))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::InvalidArgument);
    assert_eq!(
        error_metadata(&wrong, "publish_step"),
        "PUBLISH_RICH_MENU_STEP_VALIDATE"
    );
    assert_eq!(error_metadata(&wrong, "rollback"), "nothing to undo");
    assert_eq!(violation_fields(&wrong), ["image"]);
    assert_eq!(s.line.requests().len(), before, "LINE was not asked");
}

#[tokio::test]
async fn lines_errors_map_by_the_one_table() {
    let s = setup().await;
    let mut client = s.client().await;
    let channel = s.channel.clone();

    // 400 with details from LINE's validator: nothing is created.
    s.line.script(
        "/v2/bot/richmenu/validate",
        400,
        &[],
        r#"{"message":"The request body has 1 error(s)","details":[{"message":"must be specified","property":"areas[1].action.uri"}]}"#,
    );
    let invalid = client
        .create_rich_menu(pb::CreateRichMenuRequest {
            channel_id: channel.clone(),
            definition: Some(pb::create_rich_menu_request::Definition::RichMenu(menu())),
        })
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(violation_fields(&invalid), ["areas[1].action.uri"]);
    assert!(
        invalid
            .message()
            .contains("The request body has 1 error(s)")
    );
    assert_eq!(s.calls(), ["POST /v2/bot/richmenu/validate"]);
    assert!(s.line.rich_menu_ids().is_empty());

    // 403: a feature the account may not use.
    s.line.script(
        "/v2/bot/insight/demographic",
        403,
        &[],
        r#"{"message":"Access to this API is not available for your account"}"#,
    );
    let denied = client
        .get_friends_demographics(pb::GetFriendsDemographicsRequest {
            channel_id: channel.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(
        denied
            .message()
            .starts_with("GetFriendsDemographics: LINE answered 403: Access to this API"),
        "{}",
        denied.message()
    );

    // 403 where LINE serves verified and premium accounts only.
    s.line.script(
        "/v2/bot/followers/ids",
        403,
        &[],
        r#"{"message":"Access to this API is not available for your account"}"#,
    );
    let unverified = client
        .get_follower_ids(pb::GetFollowerIdsRequest {
            channel_id: channel.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unverified.code(), Code::FailedPrecondition);
    assert!(
        unverified
            .message()
            .contains("Access to this API is not available for your account"),
        "{}",
        unverified.message()
    );
    assert!(unverified.message().contains("verified and premium"));
    assert!(
        unverified
            .get_error_details()
            .precondition_failure()
            .is_some()
    );

    // 404 for a chat the bot is not in.
    s.line.script(
        &format!("/v2/bot/group/{GROUP}/leave"),
        404,
        &[],
        r#"{"message":"Not found"}"#,
    );
    let missing = client
        .leave_chat(pb::LeaveChatRequest {
            channel_id: channel.clone(),
            chat: Some(pb::leave_chat_request::Chat::GroupId(GROUP.into())),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    // 429 with Retry-After.
    s.line.script(
        "/v2/bot/insight/followers",
        429,
        &[("retry-after", "7")],
        r#"{"message":"The API rate limit has been exceeded. Try again later."}"#,
    );
    let limited = client
        .get_follower_stats(pb::GetFollowerStatsRequest {
            channel_id: channel.clone(),
            date: "20261130".into(),
        })
        .await
        .unwrap_err();
    assert_rate_limited(&limited, 7);

    // An unknown channel, and fields refused before LINE is asked.
    let before = s.line.requests().len();
    let unknown = client
        .list_rich_menus(pb::ListRichMenusRequest {
            channel_id: "ch_01jd0000000000000000000000".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let bad = client
        .link_rich_menu(pb::LinkRichMenuRequest {
            channel_id: channel.clone(),
            rich_menu_id: "..".into(),
            user_ids: vec![USER.into(), USER.into()],
        })
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&bad), ["rich_menu_id", "user_ids[1]"]);
    let bad = client
        .create_rich_menu_alias(pb::CreateRichMenuAliasRequest {
            channel_id: channel.clone(),
            rich_menu_alias_id: "Not An Alias".into(),
            rich_menu_id: "richmenu-1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&bad), ["rich_menu_alias_id"]);
    assert_eq!(s.line.requests().len(), before, "nothing reached LINE");
}

#[tokio::test]
async fn chats_page_count_and_leave() {
    let s = setup().await;
    let mut client = s.client().await;
    let channel = s.channel.clone();
    let ids = format!("/v2/bot/group/{GROUP}/members/ids");
    s.line.script(
        &ids,
        200,
        &[],
        &json!({"memberIds": [USER], "next": "jxEWCEEP+/="}).to_string(),
    );
    s.line.script(
        &ids,
        200,
        &[],
        &json!({"memberIds": [OTHER_USER]}).to_string(),
    );
    let first = client
        .get_chat_member_ids(pb::GetChatMemberIdsRequest {
            channel_id: channel.clone(),
            chat: Some(pb::get_chat_member_ids_request::Chat::GroupId(GROUP.into())),
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.member_ids, [USER]);
    assert_eq!(first.next_page_token, "jxEWCEEP+/=");
    let last = client
        .get_chat_member_ids(pb::GetChatMemberIdsRequest {
            channel_id: channel.clone(),
            chat: Some(pb::get_chat_member_ids_request::Chat::GroupId(GROUP.into())),
            page_token: first.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(last.member_ids, [OTHER_USER]);
    assert_eq!(last.next_page_token, "");
    let calls = s.calls();
    assert_eq!(calls[0], format!("GET {ids}"));
    assert_eq!(calls[1], format!("GET {ids}?start=jxEWCEEP%2B%2F%3D"));

    s.line.script(
        &format!("/v2/bot/room/{ROOM}/members/count"),
        200,
        &[],
        r#"{"count":3}"#,
    );
    let count = client
        .get_chat_member_count(pb::GetChatMemberCountRequest {
            channel_id: channel.clone(),
            chat: Some(pb::get_chat_member_count_request::Chat::RoomId(ROOM.into())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(count.count, 3);
    client
        .leave_chat(pb::LeaveChatRequest {
            channel_id: channel.clone(),
            chat: Some(pb::leave_chat_request::Chat::RoomId(ROOM.into())),
        })
        .await
        .unwrap();
    assert!(
        s.calls()
            .contains(&format!("POST /v2/bot/room/{ROOM}/leave"))
    );
    let none = client
        .leave_chat(pb::LeaveChatRequest {
            channel_id: channel.clone(),
            chat: None,
        })
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&none), ["chat"]);
}

#[tokio::test]
async fn insight_answers_not_ready_as_a_status() {
    let s = setup().await;
    let mut client = s.client().await;
    let channel = s.channel.clone();

    s.line.script(
        "/v2/bot/insight/followers",
        200,
        &[],
        r#"{"status":"ready","followers":7620,"targetedReaches":5848,"blocks":237}"#,
    );
    s.line.script(
        "/v2/bot/insight/followers",
        200,
        &[],
        r#"{"status":"unready"}"#,
    );
    let ready = client
        .get_follower_stats(pb::GetFollowerStatsRequest {
            channel_id: channel.clone(),
            date: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ready.status(), pb::InsightStatus::Ready);
    assert_eq!(
        (ready.followers, ready.targeted_reaches, ready.blocks),
        (Some(7620), Some(5848), Some(237))
    );
    assert_eq!(ready.date.len(), 8, "yesterday in UTC+9: {}", ready.date);
    assert_eq!(
        s.calls()[0],
        format!("GET /v2/bot/insight/followers?date={}", ready.date)
    );
    let unready = client
        .get_follower_stats(pb::GetFollowerStatsRequest {
            channel_id: channel.clone(),
            date: "20261130".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unready.status(), pb::InsightStatus::Unready);
    assert_eq!(unready.followers, None);

    s.line.script(
        "/v2/bot/insight/demographic",
        200,
        &[],
        r#"{"available":true,"genders":[{"gender":"female","percentage":30.6}],"ages":[{"age":"from20to24","percentage":17.3}],"areas":[{"area":"徳島","percentage":2.9}],"appTypes":[{"appType":"ios","percentage":62.4}],"subscriptionPeriods":[{"subscriptionPeriod":"within7days","percentage":0}]}"#,
    );
    let demographics = client
        .get_friends_demographics(pb::GetFriendsDemographicsRequest {
            channel_id: channel.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(demographics.available);
    let share = |value: &str, percentage| pb::DemographicShare {
        value: value.into(),
        percentage,
    };
    assert_eq!(demographics.genders, [share("female", 30.6)]);
    assert_eq!(demographics.ages, [share("from20to24", 17.3)]);
    assert_eq!(demographics.areas, [share("徳島", 2.9)]);
    assert_eq!(demographics.app_types, [share("ios", 62.4)]);
    assert_eq!(
        demographics.subscription_periods,
        [share("within7days", 0.0)]
    );

    s.line.script(
        "/v2/bot/insight/message/delivery",
        200,
        &[],
        r#"{"status":"ready","broadcast":5385,"targeting":522,"apiPush":12}"#,
    );
    let delivered = client
        .get_message_delivery_stats(pb::GetMessageDeliveryStatsRequest {
            channel_id: channel.clone(),
            date: "20261130".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(delivered.status(), pb::InsightStatus::Ready);
    assert_eq!(
        (delivered.broadcast, delivered.api_push, delivered.api_reply),
        (Some(5385), Some(12), None)
    );
    assert!(
        s.calls()
            .contains(&"GET /v2/bot/insight/message/delivery?date=20261130".to_owned())
    );

    // Interaction with one broadcast, named by our delivery id: the
    // outbox's x-line-request-id is asked about.
    let broadcast = s
        .app
        .messaging()
        .await
        .broadcast(pb::BroadcastRequest {
            channel_id: channel.clone(),
            messages: vec![support::text_message("Spring sale")],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert!(!broadcast.line_request_id.is_empty());
    s.line.script(
        "/v2/bot/insight/message/event",
        200,
        &[],
        r#"{"overview":{"requestId":"r","timestamp":1568214000,"delivered":null,"uniqueImpression":null},"messages":[],"clicks":[]}"#,
    );
    let pending = client
        .get_message_event_stats(pb::GetMessageEventStatsRequest {
            channel_id: channel.clone(),
            send: Some(pb::get_message_event_stats_request::Send::DeliveryId(
                broadcast.id.clone(),
            )),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pending.status(), pb::InsightStatus::Unready);
    assert_eq!(pending.line_request_id, broadcast.line_request_id);
    assert_eq!(pending.delivered, None);
    assert!(s.calls().contains(&format!(
        "GET /v2/bot/insight/message/event?requestId={}",
        broadcast.line_request_id
    )));
    s.line.script(
        "/v2/bot/insight/message/event",
        200,
        &[],
        r#"{"overview":{"requestId":"f70dd685","timestamp":1568214000,"delivered":320,"uniqueImpression":82,"uniqueClick":51,"uniqueMediaPlayed":null,"uniqueMediaPlayed100Percent":null},"messages":[{"seq":1,"impression":136,"mediaPlayed":null}],"clicks":[{"seq":1,"url":"https://line.me/","click":41,"uniqueClick":30,"uniqueClickOfRequest":30}]}"#,
    );
    let ready = client
        .get_message_event_stats(pb::GetMessageEventStatsRequest {
            channel_id: channel.clone(),
            send: Some(pb::get_message_event_stats_request::Send::LineRequestId(
                "f70dd685".into(),
            )),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ready.status(), pb::InsightStatus::Ready);
    assert_eq!(ready.delivered, Some(320));
    assert_eq!(ready.delivery_time.unwrap().seconds, 1_568_214_000);
    let overview = ready.overview.unwrap();
    assert_eq!(
        (overview.unique_impression, overview.unique_media_played),
        (Some(82), None)
    );
    assert_eq!(ready.messages[0].impression, Some(136));
    assert_eq!(ready.clicks[0].url, "https://line.me/");
    assert_eq!(ready.clicks[0].unique_click_of_request, Some(30));

    // A delivery of another channel is not this channel's.
    let other = support::create_channel(&s.app, "2234567890").await;
    let foreign = client
        .get_message_event_stats(pb::GetMessageEventStatsRequest {
            channel_id: other.id,
            send: Some(pb::get_message_event_stats_request::Send::DeliveryId(
                broadcast.id,
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);

    // Per unit, over at most 30 days.
    let too_long = client
        .get_unit_stats(pb::GetUnitStatsRequest {
            channel_id: channel.clone(),
            custom_aggregation_unit: "promotion_a".into(),
            from_date: "20261101".into(),
            to_date: "20261202".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&too_long), ["to_date"]);
    s.line.script(
        "/v2/bot/insight/message/event/aggregation",
        200,
        &[],
        r#"{"overview":{"uniqueImpression":40,"uniqueClick":30,"uniqueMediaPlayed":25,"uniqueMediaPlayed100Percent":null},"messages":[{"seq":1,"impression":42,"uniqueImpression":40}],"clicks":[]}"#,
    );
    let unit = client
        .get_unit_stats(pb::GetUnitStatsRequest {
            channel_id: channel.clone(),
            custom_aggregation_unit: "promotion_a".into(),
            from_date: "20261101".into(),
            to_date: "20261201".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unit.overview.unwrap().unique_click, Some(30));
    assert_eq!(unit.messages[0].unique_impression, Some(40));
    assert!(s.calls().contains(
        &"GET /v2/bot/insight/message/event/aggregation?customAggregationUnit=promotion_a&from=20261101&to=20261201"
            .to_owned()
    ));

    // A rich menu's impressions and taps: in total, per day, or withheld.
    let menu_stats = |daily, to: &str| pb::GetRichMenuStatsRequest {
        channel_id: channel.clone(),
        rich_menu_id: "richmenu-0123456789abcdef0123456789abcdef".into(),
        from_date: "20261101".into(),
        to_date: to.into(),
        daily,
    };
    let summary = "/v2/bot/insight/richmenu/richmenu-0123456789abcdef0123456789abcdef/summary";
    s.line.script(
        summary,
        200,
        &[],
        r#"{"richMenuId":"richmenu-0123456789abcdef0123456789abcdef","metricsFrom":"20261101","metricsTo":"20261130","impression":{"metrics":{"count":567,"uniqueUsers":300}},"clicks":[{"bounds":{"x":0,"y":0,"width":1250,"height":843},"metrics":{"count":123,"uniqueUsers":45}}]}"#,
    );
    let total = client
        .get_rich_menu_stats(menu_stats(false, "20261130"))
        .await
        .unwrap()
        .into_inner();
    assert!(total.available);
    assert_eq!(
        total.impressions,
        [pb::RichMenuMetrics {
            date: String::new(),
            count: 567,
            unique_users: 300
        }]
    );
    assert_eq!(total.clicks[0].bounds.unwrap().width, 1250);
    assert_eq!(total.clicks[0].metrics[0].count, 123);
    assert!(
        s.calls()
            .contains(&format!("GET {summary}?from=20261101&to=20261130"))
    );
    s.line.script(
        &summary.replace("/summary", "/daily"),
        200,
        &[],
        r#"{"richMenuId":"richmenu-0123456789abcdef0123456789abcdef","metricsFrom":"20261101","metricsTo":"20261102","impression":{"metrics":[{"date":"20261101","count":300,"uniqueUsers":191},{"date":"20261102","count":267,"uniqueUsers":222}]},"clicks":[]}"#,
    );
    let daily = client
        .get_rich_menu_stats(menu_stats(true, "20261102"))
        .await
        .unwrap()
        .into_inner();
    let days: Vec<_> = daily.impressions.iter().map(|m| m.date.as_str()).collect();
    assert_eq!(days, ["20261101", "20261102"]);
    s.line.script(
        summary,
        200,
        &[],
        r#"{"richMenuId":"richmenu-0123456789abcdef0123456789abcdef"}"#,
    );
    let withheld = client
        .get_rich_menu_stats(menu_stats(false, "20261130"))
        .await
        .unwrap()
        .into_inner();
    assert!(!withheld.available && withheld.impressions.is_empty());
    let too_long = client
        .get_rich_menu_stats(menu_stats(true, "20270301"))
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&too_long), ["to_date"]);
    assert!(
        too_long.message().contains("99 days"),
        "{}",
        too_long.message()
    );

    s.line.script(
        "/v2/bot/message/aggregation/list",
        200,
        &[],
        r#"{"customAggregationUnits":["promotion_a","promotion_b"],"next":"jxEWCEEP"}"#,
    );
    s.line.script(
        "/v2/bot/message/aggregation/info",
        200,
        &[],
        r#"{"numOfCustomAggregationUnits":22}"#,
    );
    let units = client
        .list_aggregation_units(pb::ListAggregationUnitsRequest {
            channel_id: channel.clone(),
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        units.custom_aggregation_units,
        ["promotion_a", "promotion_b"]
    );
    assert_eq!(units.next_page_token, "jxEWCEEP");
    assert_eq!(units.units_used_this_month, 22);
    assert!(
        s.calls()
            .contains(&"GET /v2/bot/message/aggregation/list?limit=2".to_owned())
    );

    s.line.script(
        "/v2/bot/followers/ids",
        200,
        &[],
        &json!({"userIds": [USER, OTHER_USER], "next": "yANU9IA"}).to_string(),
    );
    let followers = client
        .get_follower_ids(pb::GetFollowerIdsRequest {
            channel_id: channel.clone(),
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(followers.user_ids, [USER, OTHER_USER]);
    assert_eq!(followers.next_page_token, "yANU9IA");
    assert!(
        s.calls()
            .contains(&"GET /v2/bot/followers/ids?limit=1000".to_owned())
    );
}

fn with_key<T>(key: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
}

#[tokio::test]
async fn the_insight_scope_reads_statistics_and_manages_nothing() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(test_settings(dir.path(), |layer| {
        layer.line_api_base = Some(line.url());
        layer.line_data_api_base = Some(line.url());
        layer.api_keys = Some(ApiKeyList::List(vec![
            Secret::new("wy-admin-key-000000:admin"),
            Secret::new("wy-analytics-key-111:insight"),
            Secret::new("wy-desk-key-22222222:send+subscribe"),
        ]));
    }))
    .await;
    let channel = app
        .admin()
        .await
        .create_channel(with_key(
            "wy-admin-key-000000",
            pb::CreateChannelRequest {
                display_name: "Shop".into(),
                line_channel_id: "1234567890".into(),
                channel_secret: support::SECRET.into(),
                channel_access_token: support::TOKEN.into(),
                token_mode: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .channel
        .unwrap()
        .id;
    let mut client = app.official_account().await;
    let stats = || pb::GetFollowerStatsRequest {
        channel_id: channel.clone(),
        date: "20261130".into(),
    };
    for key in ["wy-analytics-key-111", "wy-admin-key-000000"] {
        line.script(
            "/v2/bot/insight/followers",
            200,
            &[],
            r#"{"status":"ready"}"#,
        );
        client
            .get_follower_stats(with_key(key, stats()))
            .await
            .unwrap_or_else(|status| panic!("{key}: {status:?}"));
    }
    let desk = client
        .get_follower_stats(with_key("wy-desk-key-22222222", stats()))
        .await
        .unwrap_err();
    assert_eq!(desk.code(), Code::PermissionDenied);
    assert!(desk.message().contains("`insight`"), "{}", desk.message());
    let manage = client
        .list_rich_menus(with_key(
            "wy-analytics-key-111",
            pb::ListRichMenusRequest {
                channel_id: channel.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(manage.code(), Code::PermissionDenied);
    assert!(manage.message().contains("`admin`"), "{}", manage.message());
    let users = client
        .get_follower_ids(with_key(
            "wy-analytics-key-111",
            pb::GetFollowerIdsRequest {
                channel_id: channel.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        users.code(),
        Code::PermissionDenied,
        "follower ids are users, not statistics"
    );
}

#[tokio::test]
async fn audiences_are_created_added_listed_read_and_deleted() {
    let s = setup().await;
    let mut client = s.client().await;
    let channel = s.channel.clone();

    s.line.script(
        "/v2/bot/audienceGroup/upload",
        202,
        &[],
        r#"{"audienceGroupId":1234567890123,"createRoute":"MESSAGING_API","type":"UPLOAD","description":"spring-sale","created":1613698278,"permission":"READ_WRITE","expireTimestamp":1629250278,"isIfaAudience":false}"#,
    );
    let created = client
        .create_audience(pb::CreateAudienceRequest {
            channel_id: channel.clone(),
            description: "spring-sale".into(),
            user_ids: vec![USER.into(), OTHER_USER.into()],
            ifa_audience: false,
            upload_description: "march list".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .audience
        .unwrap();
    assert_eq!(created.audience_group_id, 1234567890123);
    assert_eq!(created.r#type, "UPLOAD");
    assert_eq!(created.status(), pb::AudienceStatus::InProgress);
    assert_eq!(created.permission, "READ_WRITE");
    assert_eq!(created.create_time.unwrap().seconds, 1613698278);
    assert_eq!(created.expire_time.unwrap().seconds, 1629250278);
    assert_eq!(
        s.body_of("POST", "/v2/bot/audienceGroup/upload"),
        json!({
            "description": "spring-sale",
            "isIfaAudience": false,
            "uploadDescription": "march list",
            "audiences": [{"id": USER}, {"id": OTHER_USER}],
        })
    );

    // Up to LINE's 10,000 ids as JSON; more as LINE's text file upload.
    client
        .add_to_audience(pb::AddToAudienceRequest {
            channel_id: channel.clone(),
            audience_group_id: 1234567890123,
            user_ids: vec![USER.into()],
            upload_description: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        s.body_of("PUT", "/v2/bot/audienceGroup/upload"),
        json!({"audienceGroupId": 1234567890123_i64, "audiences": [{"id": USER}]})
    );
    let many: Vec<String> = (0..10_001).map(|i| format!("U{i:032x}")).collect();
    client
        .add_to_audience(pb::AddToAudienceRequest {
            channel_id: channel.clone(),
            audience_group_id: 1234567890123,
            user_ids: many.clone(),
            upload_description: "big list".into(),
        })
        .await
        .unwrap();
    let file = s
        .line
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT" && r.path == "/v2/bot/audienceGroup/upload/byFile")
        .expect("a file upload");
    let content_type = file.headers["content-type"].to_str().unwrap().to_owned();
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .expect("multipart");
    let text = String::from_utf8(file.body.to_vec()).unwrap();
    assert!(text.contains("name=\"audienceGroupId\"\r\n\r\n1234567890123\r\n"));
    assert!(text.contains("name=\"uploadDescription\"\r\n\r\nbig list\r\n"));
    let lines = text
        .split("Content-Type: text/plain\r\n\r\n")
        .nth(1)
        .and_then(|rest| rest.split(&format!("\r\n--{boundary}--")).next())
        .expect("the file part");
    assert_eq!(lines.lines().collect::<Vec<_>>(), many);

    s.line.script(
        "/v2/bot/audienceGroup/list",
        200,
        &[],
        r#"{"audienceGroups":[{"audienceGroupId":1234567890123,"createRoute":"MESSAGING_API","type":"UPLOAD","description":"spring-sale","status":"READY","audienceCount":1887,"created":1608617466,"permission":"READ_WRITE","isIfaAudience":false}],"hasNextPage":true,"totalCount":41,"readWriteAudienceGroupTotalCount":40,"size":40,"page":1}"#,
    );
    let page = client
        .list_audiences(pb::ListAudiencesRequest {
            channel_id: channel.clone(),
            page_size: 40,
            page_token: String::new(),
            description: "spring".into(),
            status: pb::AudienceStatus::Ready as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.audiences.len(), 1);
    assert_eq!(page.audiences[0].status(), pb::AudienceStatus::Ready);
    assert_eq!(page.audiences[0].audience_count, 1887);
    assert_eq!(page.total_count, 41);
    assert_eq!(page.read_write_total_count, 40);
    assert_eq!(page.next_page_token, "2");
    s.line.script(
        "/v2/bot/audienceGroup/list",
        200,
        &[],
        r#"{"audienceGroups":[],"hasNextPage":false,"totalCount":41,"readWriteAudienceGroupTotalCount":40,"size":40,"page":2}"#,
    );
    let last = client
        .list_audiences(pb::ListAudiencesRequest {
            channel_id: channel.clone(),
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(last.next_page_token.is_empty());

    s.line.script(
        "/v2/bot/audienceGroup/1234567890123",
        200,
        &[],
        r#"{"audienceGroup":{"audienceGroupId":1234567890123,"type":"UPLOAD","description":"spring-sale","status":"READY","audienceCount":1887,"created":1608617466,"permission":"READ_WRITE","createRoute":"MESSAGING_API","isIfaAudience":false},"jobs":[{"audienceGroupJobId":12345678,"audienceGroupId":1234567890123,"description":"march list","type":"DIFF_ADD","jobStatus":"FINISHED","audienceCount":2,"created":1608617472}]}"#,
    );
    let read = client
        .get_audience(pb::GetAudienceRequest {
            channel_id: channel.clone(),
            audience_group_id: 1234567890123,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.audience.unwrap().description, "spring-sale");
    assert_eq!(read.jobs.len(), 1);
    assert_eq!(read.jobs[0].job_status, "FINISHED");
    assert_eq!(read.jobs[0].audience_count, 2);

    client
        .delete_audience(pb::DeleteAudienceRequest {
            channel_id: channel.clone(),
            audience_group_id: 1234567890123,
        })
        .await
        .unwrap();

    s.line.script(
        &format!("/v2/bot/user/{USER}/linkToken"),
        200,
        &[],
        r#"{"linkToken":"NMZTNuVrPTqlr2IF8Bnymkb7rXfYv5EY"}"#,
    );
    let link = client
        .issue_link_token(pb::IssueLinkTokenRequest {
            channel_id: channel.clone(),
            user_id: USER.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(link.link_token, "NMZTNuVrPTqlr2IF8Bnymkb7rXfYv5EY");

    let calls: Vec<String> = s
        .calls()
        .into_iter()
        .filter(|c| !c.contains("/v2/oauth"))
        .collect();
    assert_eq!(
        calls,
        [
            "POST /v2/bot/audienceGroup/upload".to_owned(),
            "PUT /v2/bot/audienceGroup/upload".into(),
            "PUT /v2/bot/audienceGroup/upload/byFile".into(),
            "GET /v2/bot/audienceGroup/list?page=1&size=40&description=spring&status=READY".into(),
            "GET /v2/bot/audienceGroup/list?page=2".into(),
            "GET /v2/bot/audienceGroup/1234567890123".into(),
            "DELETE /v2/bot/audienceGroup/1234567890123".into(),
            format!("POST /v2/bot/user/{USER}/linkToken"),
        ]
    );
}

#[tokio::test]
async fn audience_errors_map_by_the_one_table_and_bad_fields_reach_no_line() {
    let s = setup().await;
    let mut client = s.client().await;
    let channel = s.channel.clone();

    // 400 with details: LINE's verdict on the request.
    s.line.script(
        "/v2/bot/audienceGroup/upload",
        400,
        &[],
        r#"{"message":"The request body has 1 error(s)","details":[{"message":"must not be duplicated","property":"audiences[1].id"}]}"#,
    );
    let refused = client
        .create_audience(pb::CreateAudienceRequest {
            channel_id: channel.clone(),
            description: "dupes".into(),
            user_ids: vec![USER.into(), USER.into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violation_fields(&refused), ["audiences[1].id"]);
    assert!(refused.message().starts_with("CreateAudience: "));
    assert_eq!(error_metadata(&refused, "line_status"), "400");

    // LINE's 400 for an unknown audience is NOT_FOUND.
    s.line.script(
        "/v2/bot/audienceGroup/42",
        400,
        &[],
        r#"{"message":"audience group not found","details":[{"message":"AUDIENCE_GROUP_NOT_FOUND"}]}"#,
    );
    let missing = client
        .get_audience(pb::GetAudienceRequest {
            channel_id: channel.clone(),
            audience_group_id: 42,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    assert!(missing.message().contains("audience group not found"));

    // 403: the account may not use audiences.
    s.line.script(
        "/v2/bot/audienceGroup/list",
        403,
        &[],
        r#"{"message":"Access to this API is not available for your account"}"#,
    );
    let denied = client
        .list_audiences(pb::ListAudiencesRequest {
            channel_id: channel.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // 404: LINE does not know the user.
    s.line.script(
        &format!("/v2/bot/user/{OTHER_USER}/linkToken"),
        404,
        &[],
        r#"{"message":"Not found"}"#,
    );
    let unknown = client
        .issue_link_token(pb::IssueLinkTokenRequest {
            channel_id: channel.clone(),
            user_id: OTHER_USER.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(unknown.message().starts_with("IssueLinkToken: "));

    // 429 with Retry-After.
    s.line.script(
        "/v2/bot/audienceGroup/43",
        429,
        &[("retry-after", "9")],
        r#"{"message":"The API rate limit has been exceeded. Try again later."}"#,
    );
    let limited = client
        .delete_audience(pb::DeleteAudienceRequest {
            channel_id: channel.clone(),
            audience_group_id: 43,
        })
        .await
        .unwrap_err();
    assert_rate_limited(&limited, 9);

    // LINE's limits, checked before LINE is asked.
    let before = s.line.requests().len();
    let bad = client
        .create_audience(pb::CreateAudienceRequest {
            channel_id: channel.clone(),
            description: "x".repeat(121),
            user_ids: vec![USER.into(), "U with space".into(), "U\nnewline".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        violation_fields(&bad),
        ["description", "user_ids[1]", "user_ids[2]"]
    );
    let unnamed = client
        .create_audience(pb::CreateAudienceRequest {
            channel_id: channel.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&unnamed), ["description"]);
    let bad = client
        .add_to_audience(pb::AddToAudienceRequest {
            channel_id: channel.clone(),
            audience_group_id: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&bad), ["audience_group_id", "user_ids"]);
    let bad = client
        .list_audiences(pb::ListAudiencesRequest {
            channel_id: channel.clone(),
            page_size: 41,
            page_token: "next".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&bad), ["page_size", "page_token"]);
    let bad = client
        .issue_link_token(pb::IssueLinkTokenRequest {
            channel_id: channel.clone(),
            user_id: "..".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violation_fields(&bad), ["user_id"]);
    assert_eq!(s.line.requests().len(), before, "nothing reached LINE");
}
