//! Every Messaging API endpoint line-adapter calls, typed. LINE's paths
//! are spelled here and nowhere else; a new endpoint is a method here, a
//! handler in `grpc`, and its proto. Ids are percent-encoded into paths
//! here, so a caller's id can never become another path.

use http::Method;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::{
    channel::{CallError, Called, ChannelClient, Retry, TokenSource},
    client::{Content, Request, Response},
    error::Error,
    pace::Endpoint,
};

const BOT_INFO: &str = "/v2/bot/info";
const PROFILE: &str = "/v2/bot/profile";
const GROUP: &str = "/v2/bot/group";
const ROOM: &str = "/v2/bot/room";
const LOADING: &str = "/v2/bot/chat/loading/start";
const MARK_AS_READ: &str = "/v2/bot/chat/markAsRead";
const WEBHOOK_ENDPOINT: &str = "/v2/bot/channel/webhook/endpoint";
const WEBHOOK_TEST: &str = "/v2/bot/channel/webhook/test";
const QUOTA: &str = "/v2/bot/message/quota";
const QUOTA_CONSUMPTION: &str = "/v2/bot/message/quota/consumption";
const DELIVERY_COUNT: &str = "/v2/bot/message/delivery";
const MESSAGE: &str = "/v2/bot/message";

/// How a message is sent (`/v2/bot/message/{route}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Reply,
    Push,
    Multicast,
    Broadcast,
}

impl Route {
    /// LINE's name of the route, as in its paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Reply => "reply",
            Route::Push => "push",
            Route::Multicast => "multicast",
            Route::Broadcast => "broadcast",
        }
    }
}

/// A group or a room, for member lookups.
#[derive(Debug, Clone, Copy)]
pub enum Chat<'a> {
    Group(&'a str),
    Room(&'a str),
}

/// LINE `BotInfoResponse`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BotInfo {
    pub user_id: String,
    pub basic_id: String,
    #[serde(default)]
    pub premium_id: String,
    pub display_name: String,
    #[serde(default)]
    pub picture_url: String,
    pub chat_mode: String,
    pub mark_as_read_mode: String,
}

/// LINE `UserProfileResponse`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub display_name: String,
    pub user_id: String,
    #[serde(default)]
    pub picture_url: Option<String>,
    #[serde(default)]
    pub status_message: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
}

/// LINE `GroupSummaryResponse`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupSummary {
    pub group_id: String,
    pub group_name: String,
    #[serde(default)]
    pub picture_url: Option<String>,
}

/// LINE `GroupUserProfileResponse` / `RoomUserProfileResponse`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberProfile {
    pub display_name: String,
    pub user_id: String,
    #[serde(default)]
    pub picture_url: Option<String>,
}

/// LINE `GetWebhookEndpointResponse`.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookEndpoint {
    /// Absent or empty when no endpoint is set.
    #[serde(default)]
    pub endpoint: String,
    pub active: bool,
}

/// LINE `TestWebhookEndpointResponse`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookTest {
    /// Optional in LINE's description; absent means it did not succeed.
    #[serde(default)]
    pub success: bool,
    /// RFC 3339 in LINE's description and examples; its text also speaks
    /// of milliseconds, so the caller reads a number as Unix milliseconds.
    pub timestamp: Value,
    pub status_code: i32,
    pub reason: String,
    pub detail: String,
}

/// LINE `MessageQuotaResponse`.
#[derive(Debug, Clone, Deserialize)]
pub struct Quota {
    pub r#type: String,
    #[serde(default)]
    pub value: i64,
}

/// LINE `QuotaConsumptionResponse`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaConsumption {
    pub total_usage: i64,
}

/// LINE `NumberOfMessagesResponse`.
#[derive(Debug, Clone, Deserialize)]
pub struct SentCount {
    pub status: String,
    /// Present only when `status` is "ready".
    #[serde(default)]
    pub success: i64,
}

/// One message LINE reports as sent (`SentMessage`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SentMessage {
    #[serde(default)]
    pub id: String,
    #[serde(default, rename = "quoteToken")]
    pub quote_token: String,
}

/// A send's answer: `PushMessageResponse`/`ReplyMessageResponse` bodies
/// carry `sentMessages`; multicast and broadcast answer `{}`.
pub fn sent_messages(body: &[u8]) -> Vec<SentMessage> {
    #[derive(Deserialize)]
    struct Sent {
        #[serde(default, rename = "sentMessages")]
        sent_messages: Vec<SentMessage>,
    }
    serde_json::from_slice::<Sent>(body)
        .map(|sent| sent.sent_messages)
        .unwrap_or_default()
}

/// `value` as one URL path segment: everything but unreserved characters
/// is percent-encoded. Callers refuse `.` and `..` (which URL parsers
/// resolve even when encoded) before they get here.
pub fn segment(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Which of LINE's rate limits a request to `path` counts against
/// (`line::pace`).
pub fn paced_as(method: &Method, path: &str) -> Endpoint {
    let path = path.split('?').next().unwrap_or_default();
    let member_profile = |chat: &str| {
        path.strip_prefix(chat)
            .and_then(|rest| rest.strip_prefix('/'))
            .map(|rest| rest.split('/').collect::<Vec<_>>())
            .is_some_and(|rest| rest.len() == 3 && rest[1] == "member")
    };
    if let Some(route) = path.strip_prefix(MESSAGE).and_then(|r| r.strip_prefix('/')) {
        match route {
            "reply" => return Endpoint::Reply,
            "push" => return Endpoint::Push,
            "multicast" => return Endpoint::Multicast,
            "broadcast" => return Endpoint::Broadcast,
            "narrowcast" => return Endpoint::Narrowcast,
            _ => {}
        }
    }
    let profile = path
        .strip_prefix(PROFILE)
        .and_then(|r| r.strip_prefix('/'))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'));
    if profile || member_profile(GROUP) || member_profile(ROOM) {
        Endpoint::Profile
    } else if path == LOADING {
        Endpoint::Loading
    } else if path == WEBHOOK_ENDPOINT && method == Method::PUT {
        Endpoint::WebhookUrl
    } else if path == WEBHOOK_TEST {
        Endpoint::WebhookTest
    } else {
        Endpoint::Other
    }
}

/// A LINE path as a label of bounded cardinality (metrics, span names):
/// ids (user, group, room, message ids: all digits, or 10+ characters with
/// a digit) become `:id`, and so does a rich menu alias (named by callers,
/// digits or not) after `alias/`.
pub fn endpoint_label(path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let mut previous = "";
    path.split('/')
        .map(|segment| {
            let digits = segment.bytes().filter(u8::is_ascii_digit).count();
            let id = (!segment.is_empty() && digits == segment.len())
                || (segment.len() >= 10 && digits > 0)
                || (previous == "alias" && segment != "list");
            previous = segment;
            if id { ":id" } else { segment }
        })
        .collect::<Vec<_>>()
        .join("/")
}

type Result<T, E> = std::result::Result<T, CallError<E>>;

impl<T: TokenSource> ChannelClient<T> {
    async fn get_json<R: DeserializeOwned>(&self, path: String) -> Result<R, T::Error> {
        let response = self
            .call(&Request::get(path), Retry::Idempotent)
            .await
            .result?;
        parse(&response)
    }

    async fn post_idempotent(&self, path: &str, body: Value) -> Result<Response, T::Error> {
        self.call(&Request::post(path, body), Retry::Idempotent)
            .await
            .result
    }

    /// `GET /v2/bot/info`.
    pub async fn bot_info(&self) -> Result<BotInfo, T::Error> {
        self.get_json(BOT_INFO.to_owned()).await
    }

    /// `GET /v2/bot/profile/{userId}`.
    pub async fn profile(&self, user_id: &str) -> Result<Profile, T::Error> {
        self.get_json(format!("{PROFILE}/{}", segment(user_id)))
            .await
    }

    /// `GET /v2/bot/group/{groupId}/summary`.
    pub async fn group_summary(&self, group_id: &str) -> Result<GroupSummary, T::Error> {
        self.get_json(format!("{GROUP}/{}/summary", segment(group_id)))
            .await
    }

    /// `GET /v2/bot/{group|room}/{id}/member/{userId}`.
    pub async fn member_profile(
        &self,
        chat: Chat<'_>,
        user_id: &str,
    ) -> Result<MemberProfile, T::Error> {
        let chat = match chat {
            Chat::Group(id) => format!("{GROUP}/{}", segment(id)),
            Chat::Room(id) => format!("{ROOM}/{}", segment(id)),
        };
        self.get_json(format!("{chat}/member/{}", segment(user_id)))
            .await
    }

    /// `POST /v2/bot/chat/loading/start`; `None` is LINE's default (20 s).
    pub async fn show_loading_animation(
        &self,
        chat_id: &str,
        seconds: Option<i32>,
    ) -> Result<(), T::Error> {
        let mut body = json!({ "chatId": chat_id });
        if let Some(seconds) = seconds {
            body["loadingSeconds"] = json!(seconds);
        }
        self.post_idempotent(LOADING, body).await.map(drop)
    }

    /// `POST /v2/bot/chat/markAsRead`.
    pub async fn mark_as_read(&self, token: &str) -> Result<(), T::Error> {
        self.post_idempotent(MARK_AS_READ, json!({ "markAsReadToken": token }))
            .await
            .map(drop)
    }

    /// `GET /v2/bot/channel/webhook/endpoint`.
    pub async fn webhook_endpoint(&self) -> Result<WebhookEndpoint, T::Error> {
        self.get_json(WEBHOOK_ENDPOINT.to_owned()).await
    }

    /// `PUT /v2/bot/channel/webhook/endpoint`.
    pub async fn set_webhook_endpoint(&self, endpoint: &str) -> Result<(), T::Error> {
        self.call(
            &Request::put(WEBHOOK_ENDPOINT, json!({ "endpoint": endpoint })),
            Retry::Idempotent,
        )
        .await
        .result
        .map(drop)
    }

    /// `POST /v2/bot/channel/webhook/test`: LINE sends a test webhook.
    pub async fn test_webhook(&self, endpoint: &str) -> Result<WebhookTest, T::Error> {
        let response = self
            .post_idempotent(WEBHOOK_TEST, json!({ "endpoint": endpoint }))
            .await?;
        parse(&response)
    }

    /// `GET /v2/bot/message/quota`.
    pub async fn quota(&self) -> Result<Quota, T::Error> {
        self.get_json(QUOTA.to_owned()).await
    }

    /// `GET /v2/bot/message/quota/consumption`.
    pub async fn quota_consumption(&self) -> Result<QuotaConsumption, T::Error> {
        self.get_json(QUOTA_CONSUMPTION.to_owned()).await
    }

    /// `GET /v2/bot/message/delivery/{route}?date=yyyyMMdd` (UTC+9 days).
    pub async fn sent_count(&self, route: Route, date: &str) -> Result<SentCount, T::Error> {
        self.get_json(format!(
            "{DELIVERY_COUNT}/{}?date={}",
            route.as_str(),
            segment(date)
        ))
        .await
    }

    /// `POST /v2/bot/message/{route}` with `body` as is, once: the outbox
    /// retries with its durable state. A 409 with an accepted request id
    /// comes back as [`Error::AlreadyAccepted`].
    pub async fn send(
        &self,
        route: Route,
        body: &Value,
        retry_key: Option<&str>,
    ) -> Called<Response, T::Error> {
        let request = Request::post(format!("{MESSAGE}/{}", route.as_str()), body.clone())
            .with_retry_key(retry_key);
        self.call(&request, Retry::Never).await
    }

    /// `POST /v2/bot/message/validate/{route}` (`route`: reply, push,
    /// multicast, narrowcast or broadcast): LINE's verdict on `messages`
    /// (a JSON array); nothing is sent, so it is retried like a read.
    pub async fn validate_messages(&self, route: &str, messages: Value) -> Result<(), T::Error> {
        let path = format!("{MESSAGE}/validate/{route}");
        self.post_idempotent(&path, json!({ "messages": messages }))
            .await
            .map(drop)
    }

    /// `GET /v2/bot/message/{messageId}/content[/preview]` on the data
    /// host, streamed. 202 (still preparing) is [`Error::NotReady`].
    pub async fn message_content(
        &self,
        message_id: &str,
        preview: bool,
    ) -> Result<Content, T::Error> {
        let path = format!(
            "{MESSAGE}/{}/content{}",
            segment(message_id),
            if preview { "/preview" } else { "" }
        );
        self.open(&Request::get(path).on_data_host()).await
    }
}

/// LINE's JSON answer, or [`Error::InvalidJson`] naming what could not be
/// read.
fn parse<R: DeserializeOwned, E>(response: &Response) -> Result<R, E> {
    serde_json::from_slice(&response.body).map_err(|err| {
        CallError::Line(Error::InvalidJson {
            http_status: response.status.as_u16(),
            request_id: response.request_id.clone().unwrap_or_default(),
            reason: err.to_string(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_safe_path_segments() {
        assert_eq!(segment("U4af4980629abcdef"), "U4af4980629abcdef");
        assert_eq!(segment("a/b?c#d"), "a%2Fb%3Fc%23d");
        assert_eq!(segment("%2e%2e"), "%252e%252e");
        assert_eq!(segment("a..b"), "a..b");
    }

    #[test]
    fn endpoint_labels_mask_ids() {
        assert_eq!(
            endpoint_label(&format!("{PROFILE}/U4af4980629abcdef0123456789abcdef")),
            "/v2/bot/profile/:id"
        );
        assert_eq!(
            endpoint_label(&format!("{MESSAGE}/461230966842064897/content?x=1")),
            "/v2/bot/message/:id/content"
        );
        assert_eq!(
            endpoint_label(&format!(
                "{GROUP}/Ca56f94637c1234567890abcdef012345/member/U1234567890abcdef"
            )),
            "/v2/bot/group/:id/member/:id"
        );
        assert_eq!(endpoint_label("/oauth2/v2.1/token"), "/oauth2/v2.1/token");
        assert_eq!(
            endpoint_label(&format!("{MESSAGE}/push")),
            "/v2/bot/message/push"
        );
        assert_eq!(endpoint_label(MARK_AS_READ), "/v2/bot/chat/markAsRead");
        assert_eq!(
            endpoint_label("/v2/bot/richmenu/alias/richmenu-alias-a"),
            "/v2/bot/richmenu/alias/:id"
        );
        assert_eq!(
            endpoint_label("/v2/bot/richmenu/alias/list"),
            "/v2/bot/richmenu/alias/list"
        );
        assert_eq!(
            endpoint_label("/v2/bot/richmenu/richmenu-88c05ef6921ae53f8b58a25f3a65faf7/content"),
            "/v2/bot/richmenu/:id/content"
        );
    }

    #[test]
    fn requests_are_paced_as_the_endpoint_whose_limit_they_count_against() {
        let paced = |method: Method, path: &str| paced_as(&method, path);
        for (route, endpoint) in [
            ("reply", Endpoint::Reply),
            ("push", Endpoint::Push),
            ("multicast", Endpoint::Multicast),
            ("broadcast", Endpoint::Broadcast),
            ("narrowcast", Endpoint::Narrowcast),
        ] {
            assert_eq!(paced(Method::POST, &format!("{MESSAGE}/{route}")), endpoint);
        }
        assert_eq!(
            paced(Method::GET, &format!("{PROFILE}/U1")),
            Endpoint::Profile
        );
        assert_eq!(
            paced(Method::GET, &format!("{GROUP}/C1/member/U1")),
            Endpoint::Profile
        );
        assert_eq!(
            paced(Method::GET, &format!("{ROOM}/R1/member/U1")),
            Endpoint::Profile
        );
        assert_eq!(
            paced(Method::GET, &format!("{GROUP}/C1/summary")),
            Endpoint::Other
        );
        assert_eq!(paced(Method::POST, LOADING), Endpoint::Loading);
        assert_eq!(paced(Method::PUT, WEBHOOK_ENDPOINT), Endpoint::WebhookUrl);
        assert_eq!(paced(Method::GET, WEBHOOK_ENDPOINT), Endpoint::Other);
        assert_eq!(paced(Method::POST, WEBHOOK_TEST), Endpoint::WebhookTest);
        for other in [
            BOT_INFO.to_owned(),
            MARK_AS_READ.to_owned(),
            QUOTA.to_owned(),
            format!("{DELIVERY_COUNT}/push?date=20261201"),
            format!("{MESSAGE}/461230966842064897/content"),
            format!("{MESSAGE}/validate/push"),
        ] {
            assert_eq!(paced(Method::GET, &other), Endpoint::Other, "{other}");
        }
    }

    #[test]
    fn sent_messages_are_read_from_line_bodies() {
        let sent = sent_messages(
            br#"{"sentMessages":[{"id":"461230966842064897","quoteToken":"IStG5h1Tz7b"}]}"#,
        );
        assert_eq!(sent[0].id, "461230966842064897");
        assert_eq!(sent[0].quote_token, "IStG5h1Tz7b");
        assert!(sent_messages(b"{}").is_empty());
        assert!(sent_messages(b"not json").is_empty());
    }
}
