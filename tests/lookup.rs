//! Lookups and chat UX over the wire, against the scripted stand-in for
//! LINE: GetProfile, GetGroupSummary, GetGroupMemberProfile (cached),
//! ShowLoadingAnimation and MarkAsRead: the exact requests LINE receives,
//! the mapped answers, the cache, LINE's errors and field validation.

mod support;

use std::time::Duration;

use line_adapter::proto::v1::{self as pb, get_group_member_profile_request::Chat};
use support::{
    TOKEN, TestApp, create_channel_with_token, fake_line::FakeLine, start_with_line, test_settings,
};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

const USER: &str = "U4af4980629aaaaaaaaaaaaaaaaaaaaaaaa";
const GROUP: &str = "Ca56f94637caaaaaaaaaaaaaaaaaaaaaaaa";
const ROOM: &str = "Rb56f94637caaaaaaaaaaaaaaaaaaaaaaaa";
const PROFILE: &str = "/v2/bot/profile/U4af4980629aaaaaaaaaaaaaaaaaaaaaaaa";
const LOADING: &str = "/v2/bot/chat/loading/start";
const MARK_AS_READ: &str = "/v2/bot/chat/markAsRead";
const NOT_FOUND_BODY: &str = r#"{"message":"Not found"}"#;

fn profile(channel: &pb::Channel, user_id: &str) -> pb::GetProfileRequest {
    pb::GetProfileRequest {
        channel_id: channel.id.clone(),
        user_id: user_id.into(),
    }
}

fn body(request: &support::fake_line::Recorded) -> serde_json::Value {
    serde_json::from_slice(&request.body).unwrap()
}

/// Asserts the request is a `method path` with the channel's bearer token.
fn assert_request(request: &support::fake_line::Recorded, method: &str, path: &str) {
    assert_eq!(request.method, method);
    assert_eq!(request.path, path);
    assert_eq!(request.headers["authorization"], format!("Bearer {TOKEN}"));
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

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn get_profile_asks_line_once_and_then_answers_from_the_cache() {
    let line = FakeLine::start().await;
    line.script(
        PROFILE,
        200,
        &[],
        r#"{"displayName":"LINE taro","userId":"U4af4980629aaaaaaaaaaaaaaaaaaaaaaaa","language":"en","pictureUrl":"https://obs.line-apps.com/pic","statusMessage":"Hello, LINE!"}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;

    let first = messaging
        .get_profile(profile(&channel, USER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.display_name, "LINE taro");
    assert_eq!(first.user_id, USER);
    assert_eq!(first.picture_url, "https://obs.line-apps.com/pic");
    assert_eq!(first.status_message, "Hello, LINE!");
    assert_eq!(first.language, "en");
    let fetched = first.fetch_time.expect("fetch_time is set");
    assert!((fetched.seconds - now_secs()).abs() <= 5, "{fetched:?}");

    let requests = line.requests();
    assert_eq!(requests.len(), 1);
    assert_request(&requests[0], "GET", PROFILE);
    assert!(requests[0].body.is_empty());

    // Served from the cache: same answer, same fetch_time, no new request
    // (FakeLine would now answer `{}`, which is no profile).
    let second = messaging
        .get_profile(profile(&channel, USER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second, first);
    assert_eq!(line.requests().len(), 1, "the second call was a cache hit");
}

#[tokio::test]
async fn a_cached_profile_is_asked_for_again_after_five_minutes() {
    let line = FakeLine::start().await;
    for name in ["LINE taro", "LINE taro (renamed)"] {
        let body = format!(r#"{{"displayName":"{name}","userId":"{USER}"}}"#);
        line.script(PROFILE, 200, &[], &body);
    }
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;
    let first = messaging
        .get_profile(profile(&channel, USER))
        .await
        .unwrap()
        .into_inner();

    // The contract says "at most 5 minutes".
    support::pass_time(Duration::from_secs(5 * 60 - 1)).await;
    let cached = messaging
        .get_profile(profile(&channel, USER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cached, first);
    assert_eq!(line.requests().len(), 1, "still a cache hit");

    support::pass_time(Duration::from_secs(2)).await;
    let again = messaging
        .get_profile(profile(&channel, USER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(line.requests().len(), 2, "LINE asked again");
    assert_eq!(again.display_name, "LINE taro (renamed)");
    let (before, after) = (first.fetch_time.unwrap(), again.fetch_time.unwrap());
    assert!(
        after.seconds - before.seconds >= 5 * 60,
        "{before:?} {after:?}"
    );
}

#[tokio::test]
async fn profiles_without_optional_fields_answer_empty_strings() {
    let line = FakeLine::start().await;
    line.script(
        PROFILE,
        200,
        &[],
        r#"{"displayName":"Hanako","userId":"U4af4980629aaaaaaaaaaaaaaaaaaaaaaaa"}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let answer = app
        .messaging()
        .await
        .get_profile(profile(&channel, USER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.display_name, "Hanako");
    assert_eq!(answer.picture_url, "");
    assert_eq!(answer.status_message, "");
    assert_eq!(answer.language, "");
}

#[tokio::test]
async fn errors_are_not_cached_and_404_is_not_found_with_lines_message() {
    let line = FakeLine::start().await;
    line.script(PROFILE, 404, &[], NOT_FOUND_BODY);
    line.script(
        PROFILE,
        200,
        &[],
        r#"{"displayName":"LINE taro","userId":"U4af4980629aaaaaaaaaaaaaaaaaaaaaaaa"}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;

    let status = messaging
        .get_profile(profile(&channel, USER))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("404"), "{}", status.message());
    assert!(
        status.message().contains("Not found"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("x-line-request-id"),
        "{}",
        status.message()
    );
    let info = status.get_details_error_info().expect("an ErrorInfo");
    assert_eq!(info.domain, "line.weiyu.com");
    assert_eq!(info.metadata["line_status"], "404");
    assert!(!info.metadata["line_request_id"].is_empty());
    assert_eq!(line.requests().len(), 1, "a 404 is not retried");

    // The 404 was not cached: LINE is asked again, and that answer is.
    let answer = messaging
        .get_profile(profile(&channel, USER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.display_name, "LINE taro");
    assert_eq!(line.requests().len(), 2);
    messaging
        .get_profile(profile(&channel, USER))
        .await
        .unwrap();
    assert_eq!(line.requests().len(), 2);
}

#[tokio::test]
async fn get_group_summary_asks_line_and_maps_the_answer() {
    let line = FakeLine::start().await;
    let path = format!("/v2/bot/group/{GROUP}/summary");
    line.script(
        &path,
        200,
        &[],
        &format!(
            r#"{{"groupId":"{GROUP}","groupName":"Group name","pictureUrl":"https://profile.line-scdn.net/abc"}}"#
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;
    let request = pb::GetGroupSummaryRequest {
        channel_id: channel.id.clone(),
        group_id: GROUP.into(),
    };
    let answer = messaging
        .get_group_summary(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.group_id, GROUP);
    assert_eq!(answer.group_name, "Group name");
    assert_eq!(answer.picture_url, "https://profile.line-scdn.net/abc");
    assert!(answer.fetch_time.is_some());
    let requests = line.requests();
    assert_eq!(requests.len(), 1);
    assert_request(&requests[0], "GET", &path);

    let again = messaging
        .get_group_summary(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, answer);
    assert_eq!(line.requests().len(), 1, "cached");
}

#[tokio::test]
async fn a_403_is_permission_denied() {
    let line = FakeLine::start().await;
    let path = format!("/v2/bot/group/{GROUP}/summary");
    line.script(
        &path,
        403,
        &[],
        r#"{"message":"Access to this API is not available for your account"}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let status = app
        .messaging()
        .await
        .get_group_summary(pb::GetGroupSummaryRequest {
            channel_id: channel.id.clone(),
            group_id: GROUP.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("not available for your account"),
        "{}",
        status.message()
    );
    assert_eq!(line.requests().len(), 1);
}

#[tokio::test]
async fn a_5xx_is_retried_once_then_unavailable() {
    let line = FakeLine::start().await;
    line.script(PROFILE, 500, &[], r#"{"message":"An error occurred"}"#);
    line.script(PROFILE, 500, &[], r#"{"message":"An error occurred"}"#);
    // After one 5xx, the retry succeeds.
    line.script(PROFILE, 503, &[], "");
    line.script(
        PROFILE,
        200,
        &[],
        r#"{"displayName":"LINE taro","userId":"U4af4980629aaaaaaaaaaaaaaaaaaaaaaaa"}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;

    let status = messaging
        .get_profile(profile(&channel, USER))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("500"), "{}", status.message());
    assert_eq!(line.requests().len(), 2, "one retry");

    let answer = messaging
        .get_profile(profile(&channel, USER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.display_name, "LINE taro");
    assert_eq!(line.requests().len(), 4);
}

#[tokio::test]
async fn an_unreachable_line_is_unavailable() {
    // A port that refuses connections: bind, note it, close it.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(test_settings(dir.path(), |layer| {
        layer.line_api_base = Some(format!("http://{closed}"));
        layer.line_data_api_base = Some(format!("http://{closed}"));
    }))
    .await;
    let channel = create_channel_with_token(&app).await;
    let status = app
        .messaging()
        .await
        .mark_as_read(pb::MarkAsReadRequest {
            channel_id: channel.id.clone(),
            mark_as_read_token: "token".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

#[tokio::test]
async fn a_429_is_resource_exhausted_with_retry_info() {
    let line = FakeLine::start().await;
    line.script(
        PROFILE,
        429,
        &[("retry-after", "7")],
        r#"{"message":"The API rate limit has been exceeded. Try again later."}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let status = app
        .messaging()
        .await
        .get_profile(profile(&channel, USER))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let retry = status.get_details_retry_info().expect("a RetryInfo");
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(7)));
    assert_eq!(line.requests().len(), 1, "a 429 is not retried here");
}

#[tokio::test]
async fn group_and_room_member_profiles_use_their_paths() {
    let line = FakeLine::start().await;
    let group_path = format!("/v2/bot/group/{GROUP}/member/{USER}");
    let room_path = format!("/v2/bot/room/{ROOM}/member/{USER}");
    line.script(
        &group_path,
        200,
        &[],
        &format!(
            r#"{{"displayName":"In group","userId":"{USER}","pictureUrl":"https://obs.line-apps.com/g"}}"#
        ),
    );
    line.script(
        &room_path,
        200,
        &[],
        &format!(r#"{{"displayName":"In room","userId":"{USER}"}}"#),
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;
    let request = |chat: Chat| pb::GetGroupMemberProfileRequest {
        channel_id: channel.id.clone(),
        chat: Some(chat),
        user_id: USER.into(),
    };

    let in_group = messaging
        .get_group_member_profile(request(Chat::GroupId(GROUP.into())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(in_group.display_name, "In group");
    assert_eq!(in_group.user_id, USER);
    assert_eq!(in_group.picture_url, "https://obs.line-apps.com/g");
    assert!(in_group.fetch_time.is_some());

    let in_room = messaging
        .get_group_member_profile(request(Chat::RoomId(ROOM.into())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(in_room.display_name, "In room");
    assert_eq!(in_room.picture_url, "");

    let requests = line.requests();
    assert_eq!(requests.len(), 2);
    assert_request(&requests[0], "GET", &group_path);
    assert_request(&requests[1], "GET", &room_path);

    // Both cached, separately.
    let again = messaging
        .get_group_member_profile(request(Chat::RoomId(ROOM.into())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.display_name, "In room");
    assert_eq!(line.requests().len(), 2);
}

#[tokio::test]
async fn a_member_who_is_not_in_the_group_is_not_found() {
    let line = FakeLine::start().await;
    let path = format!("/v2/bot/group/{GROUP}/member/{USER}");
    line.script(&path, 404, &[], NOT_FOUND_BODY);
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let status = app
        .messaging()
        .await
        .get_group_member_profile(pb::GetGroupMemberProfileRequest {
            channel_id: channel.id.clone(),
            chat: Some(Chat::GroupId(GROUP.into())),
            user_id: USER.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(
        status.message().contains("Not found"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn show_loading_animation_posts_what_line_documents() {
    let line = FakeLine::start().await;
    line.script(LOADING, 202, &[], "{}");
    line.script(LOADING, 202, &[], "{}");
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;
    let request = |seconds: i32| pb::ShowLoadingAnimationRequest {
        channel_id: channel.id.clone(),
        user_id: USER.into(),
        loading_seconds: seconds,
    };

    messaging.show_loading_animation(request(15)).await.unwrap();
    // 0 = LINE's default: the field is left out.
    messaging.show_loading_animation(request(0)).await.unwrap();

    let requests = line.requests();
    assert_eq!(requests.len(), 2);
    assert_request(&requests[0], "POST", LOADING);
    assert!(
        requests[0].headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(
        body(&requests[0]),
        serde_json::json!({"chatId": USER, "loadingSeconds": 15})
    );
    assert_eq!(body(&requests[1]), serde_json::json!({"chatId": USER}));
}

#[tokio::test]
async fn loading_seconds_must_be_5_to_60_in_steps_of_5() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;
    for seconds in [-5, 1, 4, 7, 59, 65, 120] {
        let status = messaging
            .show_loading_animation(pb::ShowLoadingAnimationRequest {
                channel_id: channel.id.clone(),
                user_id: USER.into(),
                loading_seconds: seconds,
            })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&status), ["loading_seconds"], "{seconds}");
    }
    let status = messaging
        .show_loading_animation(pb::ShowLoadingAnimationRequest {
            channel_id: channel.id.clone(),
            user_id: String::new(),
            loading_seconds: 5,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["user_id"]);
    assert!(line.requests().is_empty());
}

#[tokio::test]
async fn a_line_400_is_invalid_argument_naming_lines_property() {
    let line = FakeLine::start().await;
    line.script(
        LOADING,
        400,
        &[],
        r#"{"message":"The request body has 1 error(s)","details":[{"message":"Invalid chat ID","property":"chatId"}]}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let status = app
        .messaging()
        .await
        .show_loading_animation(pb::ShowLoadingAnimationRequest {
            channel_id: channel.id.clone(),
            user_id: GROUP.into(),
            loading_seconds: 20,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["chatId"]);
    assert!(
        status.message().contains("Invalid chat ID"),
        "{}",
        status.message()
    );
    assert_eq!(line.requests().len(), 1);
}

#[tokio::test]
async fn mark_as_read_posts_the_token() {
    let line = FakeLine::start().await;
    line.script(MARK_AS_READ, 200, &[], "{}");
    line.script(
        MARK_AS_READ,
        400,
        &[],
        r#"{"message":"Invalid markAsReadToken"}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;
    let request = |token: &str| pb::MarkAsReadRequest {
        channel_id: channel.id.clone(),
        mark_as_read_token: token.into(),
    };

    messaging
        .mark_as_read(request("nz0x74mZT2mRn/+=abc"))
        .await
        .unwrap();
    let requests = line.requests();
    assert_eq!(requests.len(), 1);
    assert_request(&requests[0], "POST", MARK_AS_READ);
    assert_eq!(
        body(&requests[0]),
        serde_json::json!({"markAsReadToken": "nz0x74mZT2mRn/+=abc"})
    );

    let status = messaging
        .mark_as_read(request("from-another-channel"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("Invalid markAsReadToken"),
        "{}",
        status.message()
    );

    let status = messaging.mark_as_read(request("")).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["mark_as_read_token"]);
    assert_eq!(line.requests().len(), 2);
}

#[tokio::test]
async fn bad_fields_are_named_and_nothing_reaches_line() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;

    let status = messaging
        .get_profile(profile(&channel, ""))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["user_id"]);
    for sneaky in ["..", ".", "U 1"] {
        let status = messaging
            .get_profile(profile(&channel, sneaky))
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&status), ["user_id"], "{sneaky:?}");
    }
    let status = messaging
        .get_profile(pb::GetProfileRequest {
            channel_id: "nope".into(),
            user_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["channel_id", "user_id"]);

    let status = messaging
        .get_group_summary(pb::GetGroupSummaryRequest {
            channel_id: channel.id.clone(),
            group_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["group_id"]);

    let member = |chat: Option<Chat>, user: &str| pb::GetGroupMemberProfileRequest {
        channel_id: channel.id.clone(),
        chat,
        user_id: user.into(),
    };
    let status = messaging
        .get_group_member_profile(member(None, USER))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["chat"]);
    let status = messaging
        .get_group_member_profile(member(Some(Chat::GroupId(String::new())), USER))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["group_id"]);
    let status = messaging
        .get_group_member_profile(member(Some(Chat::RoomId(String::new())), ""))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["room_id", "user_id"]);

    assert!(line.requests().is_empty());
}

#[tokio::test]
async fn ids_are_percent_encoded_as_one_path_segment() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    // FakeLine answers `{}` (no profile): what matters is the path.
    let _ = app
        .messaging()
        .await
        .get_profile(profile(&channel, "../../message/push?x=#y"))
        .await;
    let requests = line.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].path,
        "/v2/bot/profile/..%2F..%2Fmessage%2Fpush%3Fx%3D%23y"
    );
}

#[tokio::test]
async fn an_unreadable_answer_is_unavailable_and_not_cached() {
    let line = FakeLine::start().await;
    line.script(PROFILE, 200, &[], "<html>proxy</html>");
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let mut messaging = app.messaging().await;
    let status = messaging
        .get_profile(profile(&channel, USER))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    // Not cached: LINE is asked again (and answers `{}`, still no profile).
    let _ = messaging.get_profile(profile(&channel, USER)).await;
    assert_eq!(line.requests().len(), 2);
}

#[tokio::test]
async fn unknown_channels_and_missing_tokens_are_refused() {
    let line = FakeLine::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let mut messaging = app.messaging().await;

    let status = messaging
        .get_profile(pb::GetProfileRequest {
            channel_id: "ch_01jd0000000000000000000000".into(),
            user_id: USER.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    // No pasted token: the default mode issues one, and LINE refuses the
    // credentials. Nothing is asked of LINE without a token.
    for _ in 0..2 {
        line.script(
            "/v2/oauth/accessToken",
            400,
            &[],
            r#"{"error":"invalid_client","error_description":"invalid client_secret"}"#,
        );
    }
    let tokenless = support::create_channel(&app, "1234567890").await;
    let status = messaging
        .get_profile(profile(&tokenless, USER))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status
            .message()
            .contains("refused to issue a channel access token"),
        "{}",
        status.message()
    );
    let status = messaging
        .mark_as_read(pb::MarkAsReadRequest {
            channel_id: tokenless.id.clone(),
            mark_as_read_token: "t".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let paths: Vec<_> = line.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/v2/oauth/accessToken", "/v2/oauth/accessToken"]);
}

#[tokio::test]
async fn a_401_is_a_failed_precondition() {
    let line = FakeLine::start().await;
    line.script(
        PROFILE,
        401,
        &[],
        r#"{"message":"Authentication failed due to the expired access token"}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let app = start_with_line(dir.path(), &line).await;
    let channel = create_channel_with_token(&app).await;
    let status = app
        .messaging()
        .await
        .get_profile(profile(&channel, USER))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("401"), "{}", status.message());
}
