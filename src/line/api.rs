//! Every Messaging API endpoint line-adapter calls, typed. LINE's paths
//! are spelled here and nowhere else; a new endpoint is a method here, a
//! handler in `grpc`, and its proto. Ids are percent-encoded into paths
//! here, so a caller's id can never become another path.

use http::Method;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::secret::Secret;

use super::{
    channel::{CallError, Called, ChannelClient, Retry, TokenSource},
    client::{Content, Request, Response},
    error::Error,
    pace::Endpoint,
};

mod audiences;
pub use audiences::{
    Audience, AudienceJob, AudienceQuery, MAX_DESCRIPTION_CHARS, MAX_FILE_IDS, MAX_PAGE_SIZE,
    Upload,
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
    Narrowcast,
}

impl Route {
    /// LINE's name of the route, as in its paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Reply => "reply",
            Route::Push => "push",
            Route::Multicast => "multicast",
            Route::Broadcast => "broadcast",
            Route::Narrowcast => "narrowcast",
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

/// LINE `NarrowcastProgressResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NarrowcastProgress {
    /// `waiting`, `sending`, `succeeded` or `failed`.
    pub phase: String,
    #[serde(default)]
    pub success_count: Option<i64>,
    #[serde(default)]
    pub failure_count: Option<i64>,
    #[serde(default)]
    pub target_count: Option<i64>,
    #[serde(default)]
    pub failed_description: Option<String>,
    #[serde(default)]
    pub error_code: Option<i64>,
    /// ISO 8601, UTC.
    #[serde(default)]
    pub accepted_time: Option<String>,
    /// ISO 8601, UTC; once succeeded or failed.
    #[serde(default)]
    pub completed_time: Option<String>,
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

    /// `GET /v2/bot/message/progress/narrowcast?requestId=`: where LINE
    /// stands with the narrowcast it accepted as `request_id`.
    pub async fn narrowcast_progress(
        &self,
        request_id: &str,
    ) -> Result<NarrowcastProgress, T::Error> {
        self.get_json(with_query(
            format!("{MESSAGE}/progress/narrowcast"),
            &[("requestId", Some(request_id))],
        ))
        .await
    }

    /// `POST /v2/bot/user/{userId}/linkToken`: a token for account linking.
    /// Retried like a read: a second token only replaces the first, unused.
    pub async fn issue_link_token(&self, user_id: &str) -> Result<Secret, T::Error> {
        #[derive(Deserialize)]
        struct Issued {
            #[serde(rename = "linkToken")]
            link_token: String,
        }
        let path = format!("{USER}/{}/linkToken", segment(user_id));
        let response = self
            .idempotent(Request::new(Method::POST, path, Body::Empty))
            .await?;
        parse::<Issued, _>(&response).map(|issued| Secret::new(issued.link_token))
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

// === Official Account: rich menus, chats, followers, insight ===
//
// `OfficialAccount` (grpc/official_account) reaches these. Rich menus and
// statistics are LINE's state, read and changed here and kept nowhere
// else. Creations and uploads are sent once (`Retry::Never`): a second
// try after a lost answer would make a second menu, or fail on an image
// that is in fact there.

use super::client::Body;

const RICH_MENU: &str = "/v2/bot/richmenu";
const RICH_MENU_ALIAS: &str = "/v2/bot/richmenu/alias";
const USER: &str = "/v2/bot/user";
const DEFAULT_RICH_MENU: &str = "/v2/bot/user/all/richmenu";
const FOLLOWER_IDS: &str = "/v2/bot/followers/ids";
const INSIGHT: &str = "/v2/bot/insight";
const AGGREGATION: &str = "/v2/bot/message/aggregation";

/// LINE `RichMenuSize` (and the size of `RichMenuBounds`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct RichMenuSize {
    #[serde(default)]
    pub width: i64,
    #[serde(default)]
    pub height: i64,
}

/// LINE `RichMenuBounds`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct RichMenuBounds {
    #[serde(default)]
    pub x: i64,
    #[serde(default)]
    pub y: i64,
    #[serde(default)]
    pub width: i64,
    #[serde(default)]
    pub height: i64,
}

/// LINE `RichMenuArea`; the action stays LINE's JSON (its types grow).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RichMenuArea {
    #[serde(default)]
    pub bounds: RichMenuBounds,
    #[serde(default)]
    pub action: Value,
}

/// LINE `RichMenuResponse`, and the JSON it was read from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RichMenu {
    pub rich_menu_id: String,
    #[serde(default)]
    pub size: RichMenuSize,
    #[serde(default)]
    pub selected: bool,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub chat_bar_text: String,
    #[serde(default)]
    pub areas: Vec<RichMenuArea>,
    /// The menu exactly as LINE sent it.
    #[serde(skip)]
    pub json: Value,
}

impl RichMenu {
    fn from_json(json: Value) -> std::result::Result<Self, serde_json::Error> {
        let mut menu: RichMenu = serde_json::from_value(json.clone())?;
        menu.json = json;
        Ok(menu)
    }
}

/// LINE `RichMenuAliasResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RichMenuAlias {
    pub rich_menu_alias_id: String,
    pub rich_menu_id: String,
}

/// LINE `RichMenuBatchProgressResponse`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RichMenuBatchProgress {
    pub phase: String,
    /// ISO 8601, UTC.
    #[serde(default)]
    pub accepted_time: String,
    /// ISO 8601, UTC; once succeeded or failed.
    #[serde(default)]
    pub completed_time: Option<String>,
}

/// One page of user ids: LINE `MembersIdsResponse` and
/// `GetFollowersResponse` (the same shape under two names).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UserIdPage {
    #[serde(default, alias = "memberIds", alias = "userIds")]
    pub ids: Vec<String>,
    /// LINE's continuation token; absent on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// LINE `GetNumberOfFollowersResponse`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowerStats {
    pub status: String,
    #[serde(default)]
    pub followers: Option<i64>,
    #[serde(default)]
    pub targeted_reaches: Option<i64>,
    #[serde(default)]
    pub blocks: Option<i64>,
}

/// One tile of LINE `GetFriendsDemographicsResponse` (`GenderTile`,
/// `AgeTile`, ...): each names its value differently.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DemographicTile {
    #[serde(
        default,
        alias = "gender",
        alias = "age",
        alias = "area",
        alias = "appType",
        alias = "subscriptionPeriod"
    )]
    pub value: String,
    #[serde(default)]
    pub percentage: f64,
}

/// LINE `GetFriendsDemographicsResponse`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Demographics {
    #[serde(default)]
    pub available: bool,
    #[serde(default)]
    pub genders: Vec<DemographicTile>,
    #[serde(default)]
    pub ages: Vec<DemographicTile>,
    #[serde(default)]
    pub areas: Vec<DemographicTile>,
    #[serde(default)]
    pub app_types: Vec<DemographicTile>,
    #[serde(default)]
    pub subscription_periods: Vec<DemographicTile>,
}

/// LINE `GetNumberOfMessageDeliveriesResponse`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStats {
    pub status: String,
    pub broadcast: Option<i64>,
    pub targeting: Option<i64>,
    pub auto_response: Option<i64>,
    pub welcome_response: Option<i64>,
    pub chat: Option<i64>,
    pub api_broadcast: Option<i64>,
    pub api_push: Option<i64>,
    pub api_multicast: Option<i64>,
    pub api_narrowcast: Option<i64>,
    pub api_reply: Option<i64>,
}

/// LINE `GetMessageEventResponseOverview` and
/// `GetStatisticsPerUnitResponseOverview` (a subset); LINE's `null` is
/// `None`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InteractionOverview {
    #[serde(default)]
    pub request_id: String,
    /// Unix seconds.
    pub timestamp: Option<i64>,
    pub delivered: Option<i64>,
    pub unique_impression: Option<i64>,
    pub unique_click: Option<i64>,
    pub unique_media_played: Option<i64>,
    #[serde(rename = "uniqueMediaPlayed100Percent")]
    pub unique_media_played_100_percent: Option<i64>,
}

/// LINE `GetMessageEventResponseMessage` /
/// `GetStatisticsPerUnitResponseMessage`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BubbleStats {
    #[serde(default)]
    pub seq: i64,
    pub impression: Option<i64>,
    pub unique_impression: Option<i64>,
    pub media_played: Option<i64>,
    #[serde(rename = "mediaPlayed25Percent")]
    pub media_played_25_percent: Option<i64>,
    #[serde(rename = "mediaPlayed50Percent")]
    pub media_played_50_percent: Option<i64>,
    #[serde(rename = "mediaPlayed75Percent")]
    pub media_played_75_percent: Option<i64>,
    #[serde(rename = "mediaPlayed100Percent")]
    pub media_played_100_percent: Option<i64>,
    pub unique_media_played: Option<i64>,
    #[serde(rename = "uniqueMediaPlayed25Percent")]
    pub unique_media_played_25_percent: Option<i64>,
    #[serde(rename = "uniqueMediaPlayed50Percent")]
    pub unique_media_played_50_percent: Option<i64>,
    #[serde(rename = "uniqueMediaPlayed75Percent")]
    pub unique_media_played_75_percent: Option<i64>,
    #[serde(rename = "uniqueMediaPlayed100Percent")]
    pub unique_media_played_100_percent: Option<i64>,
}

/// LINE `GetMessageEventResponseClick` /
/// `GetStatisticsPerUnitResponseClick`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClickStats {
    #[serde(default)]
    pub seq: i64,
    #[serde(default)]
    pub url: String,
    pub click: Option<i64>,
    pub unique_click: Option<i64>,
    pub unique_click_of_request: Option<i64>,
}

/// LINE `GetMessageEventResponse` and `GetStatisticsPerUnitResponse`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InteractionStats {
    #[serde(default)]
    pub overview: Option<InteractionOverview>,
    #[serde(default)]
    pub messages: Vec<BubbleStats>,
    #[serde(default)]
    pub clicks: Vec<ClickStats>,
}

/// LINE `GetAggregationUnitNameListResponse`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AggregationUnits {
    #[serde(default)]
    pub custom_aggregation_units: Vec<String>,
    #[serde(default)]
    pub next: Option<String>,
}

/// One day's or one period's numbers of LINE's rich menu insight
/// (`GetRichMenuInsightSummaryResponseMetrics`,
/// `GetRichMenuInsightDailyResponseDailyMetrics`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RichMenuMetric {
    /// yyyyMMdd, in daily answers only.
    #[serde(default)]
    pub date: String,
    #[serde(default)]
    pub count: i64,
    #[serde(default)]
    pub unique_users: i64,
}

/// A summary's one metric, or a daily answer's list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RichMenuMetrics {
    Total(RichMenuMetric),
    Daily(Vec<RichMenuMetric>),
}

impl RichMenuMetrics {
    pub fn into_vec(self) -> Vec<RichMenuMetric> {
        match self {
            Self::Total(metric) => vec![metric],
            Self::Daily(metrics) => metrics,
        }
    }
}

/// LINE's `impression` and each of its `clicks`.
#[derive(Debug, Clone, Deserialize)]
pub struct RichMenuInsightPart {
    #[serde(default)]
    pub bounds: RichMenuBounds,
    pub metrics: RichMenuMetrics,
}

/// LINE `GetRichMenuInsightSummaryResponse` /
/// `GetRichMenuInsightDailyResponse`: only `richMenuId` below LINE's
/// privacy threshold.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RichMenuInsight {
    pub rich_menu_id: String,
    #[serde(default)]
    pub metrics_from: Option<String>,
    #[serde(default)]
    pub metrics_to: Option<String>,
    #[serde(default)]
    pub impression: Option<RichMenuInsightPart>,
    #[serde(default)]
    pub clicks: Vec<RichMenuInsightPart>,
}

/// One batch operation (LINE `RichMenuBatchOperation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RichMenuBatchOperation {
    Link { from: String, to: String },
    Unlink { from: String },
    UnlinkAll,
}

impl RichMenuBatchOperation {
    fn json(&self) -> Value {
        match self {
            Self::Link { from, to } => json!({ "type": "link", "from": from, "to": to }),
            Self::Unlink { from } => json!({ "type": "unlink", "from": from }),
            Self::UnlinkAll => json!({ "type": "unlinkAll" }),
        }
    }
}

/// LINE `RichMenuBatchRequest`.
pub fn rich_menu_batch_body(
    operations: &[RichMenuBatchOperation],
    resume_request_key: Option<&str>,
) -> Value {
    let mut body = json!({
        "operations": operations.iter().map(RichMenuBatchOperation::json).collect::<Vec<_>>(),
    });
    if let Some(key) = resume_request_key {
        body["resumeRequestKey"] = json!(key);
    }
    body
}

/// `path` with the query parameters that have a value, each encoded.
fn with_query(path: String, query: &[(&str, Option<&str>)]) -> String {
    let query: Vec<String> = query
        .iter()
        .filter_map(|(name, value)| value.map(|v| format!("{name}={}", segment(v))))
        .collect();
    if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

fn chat_path(chat: Chat<'_>) -> String {
    match chat {
        Chat::Group(id) => format!("{GROUP}/{}", segment(id)),
        Chat::Room(id) => format!("{ROOM}/{}", segment(id)),
    }
}

impl<T: TokenSource> ChannelClient<T> {
    async fn once(&self, request: Request) -> Result<Response, T::Error> {
        self.call(&request, Retry::Never).await.result
    }

    async fn idempotent(&self, request: Request) -> Result<Response, T::Error> {
        self.call(&request, Retry::Idempotent).await.result
    }

    /// `POST /v2/bot/richmenu/validate`: LINE's verdict on a menu (a 400
    /// with details when it refuses).
    pub async fn validate_rich_menu(&self, menu: &Value) -> Result<(), T::Error> {
        self.post_idempotent(&format!("{RICH_MENU}/validate"), menu.clone())
            .await
            .map(drop)
    }

    /// `POST /v2/bot/richmenu`: the new menu's id.
    pub async fn create_rich_menu(&self, menu: &Value) -> Result<String, T::Error> {
        #[derive(Deserialize)]
        struct Created {
            #[serde(rename = "richMenuId")]
            rich_menu_id: String,
        }
        let response = self.once(Request::post(RICH_MENU, menu.clone())).await?;
        parse::<Created, _>(&response).map(|created| created.rich_menu_id)
    }

    /// `GET /v2/bot/richmenu/{richMenuId}`.
    pub async fn rich_menu(&self, rich_menu_id: &str) -> Result<RichMenu, T::Error> {
        let json: Value = self
            .get_json(format!("{RICH_MENU}/{}", segment(rich_menu_id)))
            .await?;
        read_rich_menu(json)
    }

    /// `GET /v2/bot/richmenu/list`.
    pub async fn rich_menus(&self) -> Result<Vec<RichMenu>, T::Error> {
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            richmenus: Vec<Value>,
        }
        let list: List = self.get_json(format!("{RICH_MENU}/list")).await?;
        list.richmenus.into_iter().map(read_rich_menu).collect()
    }

    /// `DELETE /v2/bot/richmenu/{richMenuId}`.
    pub async fn delete_rich_menu(&self, rich_menu_id: &str) -> Result<(), T::Error> {
        self.idempotent(Request::delete(format!(
            "{RICH_MENU}/{}",
            segment(rich_menu_id)
        )))
        .await
        .map(drop)
    }

    /// `POST /v2/bot/richmenu/{richMenuId}/content` on the data host.
    pub async fn set_rich_menu_image(
        &self,
        rich_menu_id: &str,
        content_type: &str,
        image: bytes::Bytes,
    ) -> Result<(), T::Error> {
        let request = Request::new(
            http::Method::POST,
            format!("{RICH_MENU}/{}/content", segment(rich_menu_id)),
            Body::Bytes {
                content_type: content_type.to_owned(),
                bytes: image,
            },
        )
        .on_data_host();
        self.once(request).await.map(drop)
    }

    /// `GET /v2/bot/richmenu/{richMenuId}/content` on the data host,
    /// streamed.
    pub async fn rich_menu_image(&self, rich_menu_id: &str) -> Result<Content, T::Error> {
        let path = format!("{RICH_MENU}/{}/content", segment(rich_menu_id));
        self.open(&Request::get(path).on_data_host()).await
    }

    /// `POST /v2/bot/user/all/richmenu/{richMenuId}`.
    pub async fn set_default_rich_menu(&self, rich_menu_id: &str) -> Result<(), T::Error> {
        let path = format!("{DEFAULT_RICH_MENU}/{}", segment(rich_menu_id));
        self.idempotent(Request::new(http::Method::POST, path, Body::Empty))
            .await
            .map(drop)
    }

    /// `GET /v2/bot/user/all/richmenu`.
    pub async fn default_rich_menu(&self) -> Result<String, T::Error> {
        self.get_json::<RichMenuIdAnswer>(DEFAULT_RICH_MENU.to_owned())
            .await
            .map(|answer| answer.rich_menu_id)
    }

    /// `DELETE /v2/bot/user/all/richmenu`.
    pub async fn clear_default_rich_menu(&self) -> Result<(), T::Error> {
        self.idempotent(Request::delete(DEFAULT_RICH_MENU))
            .await
            .map(drop)
    }

    /// `POST /v2/bot/user/{userId}/richmenu/{richMenuId}`.
    pub async fn link_rich_menu(&self, user_id: &str, rich_menu_id: &str) -> Result<(), T::Error> {
        let path = format!(
            "{USER}/{}/richmenu/{}",
            segment(user_id),
            segment(rich_menu_id)
        );
        self.idempotent(Request::new(http::Method::POST, path, Body::Empty))
            .await
            .map(drop)
    }

    /// `POST /v2/bot/richmenu/bulk/link`: accepted (202), carried out in
    /// LINE's background.
    pub async fn link_rich_menu_to_users(
        &self,
        rich_menu_id: &str,
        user_ids: &[String],
    ) -> Result<(), T::Error> {
        let body = json!({ "richMenuId": rich_menu_id, "userIds": user_ids });
        self.post_idempotent(&format!("{RICH_MENU}/bulk/link"), body)
            .await
            .map(drop)
    }

    /// `DELETE /v2/bot/user/{userId}/richmenu`.
    pub async fn unlink_rich_menu(&self, user_id: &str) -> Result<(), T::Error> {
        self.idempotent(Request::delete(format!(
            "{USER}/{}/richmenu",
            segment(user_id)
        )))
        .await
        .map(drop)
    }

    /// `POST /v2/bot/richmenu/bulk/unlink` (202, as the bulk link).
    pub async fn unlink_rich_menu_from_users(&self, user_ids: &[String]) -> Result<(), T::Error> {
        self.post_idempotent(
            &format!("{RICH_MENU}/bulk/unlink"),
            json!({ "userIds": user_ids }),
        )
        .await
        .map(drop)
    }

    /// `GET /v2/bot/user/{userId}/richmenu`.
    pub async fn user_rich_menu(&self, user_id: &str) -> Result<String, T::Error> {
        self.get_json::<RichMenuIdAnswer>(format!("{USER}/{}/richmenu", segment(user_id)))
            .await
            .map(|answer| answer.rich_menu_id)
    }

    /// `POST /v2/bot/richmenu/alias`.
    pub async fn create_rich_menu_alias(
        &self,
        alias_id: &str,
        rich_menu_id: &str,
    ) -> Result<(), T::Error> {
        let body = json!({ "richMenuAliasId": alias_id, "richMenuId": rich_menu_id });
        self.once(Request::post(RICH_MENU_ALIAS, body))
            .await
            .map(drop)
    }

    /// `POST /v2/bot/richmenu/alias/{richMenuAliasId}`.
    pub async fn update_rich_menu_alias(
        &self,
        alias_id: &str,
        rich_menu_id: &str,
    ) -> Result<(), T::Error> {
        self.post_idempotent(
            &format!("{RICH_MENU_ALIAS}/{}", segment(alias_id)),
            json!({ "richMenuId": rich_menu_id }),
        )
        .await
        .map(drop)
    }

    /// `DELETE /v2/bot/richmenu/alias/{richMenuAliasId}`.
    pub async fn delete_rich_menu_alias(&self, alias_id: &str) -> Result<(), T::Error> {
        self.idempotent(Request::delete(format!(
            "{RICH_MENU_ALIAS}/{}",
            segment(alias_id)
        )))
        .await
        .map(drop)
    }

    /// `GET /v2/bot/richmenu/alias/{richMenuAliasId}`.
    pub async fn rich_menu_alias(&self, alias_id: &str) -> Result<RichMenuAlias, T::Error> {
        self.get_json(format!("{RICH_MENU_ALIAS}/{}", segment(alias_id)))
            .await
    }

    /// `GET /v2/bot/richmenu/alias/list`.
    pub async fn rich_menu_aliases(&self) -> Result<Vec<RichMenuAlias>, T::Error> {
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            aliases: Vec<RichMenuAlias>,
        }
        self.get_json::<List>(format!("{RICH_MENU_ALIAS}/list"))
            .await
            .map(|list| list.aliases)
    }

    /// `POST /v2/bot/richmenu/validate/batch`.
    pub async fn validate_rich_menu_batch(&self, body: &Value) -> Result<(), T::Error> {
        self.post_idempotent(&format!("{RICH_MENU}/validate/batch"), body.clone())
            .await
            .map(drop)
    }

    /// `POST /v2/bot/richmenu/batch` (202): the request id that its
    /// progress is asked by.
    pub async fn rich_menu_batch(&self, body: &Value) -> Result<String, T::Error> {
        let response = self
            .once(Request::post(format!("{RICH_MENU}/batch"), body.clone()))
            .await?;
        response.request_id.clone().ok_or_else(|| {
            CallError::Line(Error::InvalidJson {
                http_status: response.status.as_u16(),
                request_id: String::new(),
                reason: "no x-line-request-id, which the batch's progress is asked by".into(),
            })
        })
    }

    /// `GET /v2/bot/richmenu/progress/batch?requestId=`.
    pub async fn rich_menu_batch_progress(
        &self,
        request_id: &str,
    ) -> Result<RichMenuBatchProgress, T::Error> {
        self.get_json(with_query(
            format!("{RICH_MENU}/progress/batch"),
            &[("requestId", Some(request_id))],
        ))
        .await
    }

    /// `GET /v2/bot/{group|room}/{id}/members/ids[?start=]`.
    pub async fn chat_member_ids(
        &self,
        chat: Chat<'_>,
        start: Option<&str>,
    ) -> Result<UserIdPage, T::Error> {
        self.get_json(with_query(
            format!("{}/members/ids", chat_path(chat)),
            &[("start", start)],
        ))
        .await
    }

    /// `GET /v2/bot/{group|room}/{id}/members/count`.
    pub async fn chat_member_count(&self, chat: Chat<'_>) -> Result<i64, T::Error> {
        #[derive(Deserialize)]
        struct Count {
            count: i64,
        }
        self.get_json::<Count>(format!("{}/members/count", chat_path(chat)))
            .await
            .map(|count| count.count)
    }

    /// `POST /v2/bot/{group|room}/{id}/leave`.
    pub async fn leave_chat(&self, chat: Chat<'_>) -> Result<(), T::Error> {
        let path = format!("{}/leave", chat_path(chat));
        self.once(Request::new(http::Method::POST, path, Body::Empty))
            .await
            .map(drop)
    }

    /// `GET /v2/bot/followers/ids[?limit=&start=]`.
    pub async fn follower_ids(
        &self,
        limit: Option<i32>,
        start: Option<&str>,
    ) -> Result<UserIdPage, T::Error> {
        let limit = limit.map(|l| l.to_string());
        self.get_json(with_query(
            FOLLOWER_IDS.to_owned(),
            &[("limit", limit.as_deref()), ("start", start)],
        ))
        .await
    }

    /// `GET /v2/bot/insight/followers?date=` (yyyyMMdd, UTC+9).
    pub async fn follower_stats(&self, date: &str) -> Result<FollowerStats, T::Error> {
        self.get_json(with_query(
            format!("{INSIGHT}/followers"),
            &[("date", Some(date))],
        ))
        .await
    }

    /// `GET /v2/bot/insight/demographic`.
    pub async fn friends_demographics(&self) -> Result<Demographics, T::Error> {
        self.get_json(format!("{INSIGHT}/demographic")).await
    }

    /// `GET /v2/bot/insight/message/delivery?date=` (yyyyMMdd, UTC+9).
    pub async fn delivery_stats(&self, date: &str) -> Result<DeliveryStats, T::Error> {
        self.get_json(with_query(
            format!("{INSIGHT}/message/delivery"),
            &[("date", Some(date))],
        ))
        .await
    }

    /// `GET /v2/bot/insight/message/event?requestId=`.
    pub async fn message_event_stats(
        &self,
        request_id: &str,
    ) -> Result<InteractionStats, T::Error> {
        self.get_json(with_query(
            format!("{INSIGHT}/message/event"),
            &[("requestId", Some(request_id))],
        ))
        .await
    }

    /// `GET /v2/bot/insight/message/event/aggregation?customAggregationUnit=&from=&to=`.
    pub async fn unit_stats(
        &self,
        unit: &str,
        from: &str,
        to: &str,
    ) -> Result<InteractionStats, T::Error> {
        self.get_json(with_query(
            format!("{INSIGHT}/message/event/aggregation"),
            &[
                ("customAggregationUnit", Some(unit)),
                ("from", Some(from)),
                ("to", Some(to)),
            ],
        ))
        .await
    }

    /// `GET /v2/bot/insight/richmenu/{richMenuId}/{summary|daily}?from=&to=`.
    pub async fn rich_menu_insight(
        &self,
        rich_menu_id: &str,
        from: &str,
        to: &str,
        daily: bool,
    ) -> Result<RichMenuInsight, T::Error> {
        let kind = if daily { "daily" } else { "summary" };
        self.get_json(with_query(
            format!("{INSIGHT}/richmenu/{}/{kind}", segment(rich_menu_id)),
            &[("from", Some(from)), ("to", Some(to))],
        ))
        .await
    }

    /// `GET /v2/bot/message/aggregation/info`: units used this month.
    pub async fn aggregation_unit_usage(&self) -> Result<i64, T::Error> {
        #[derive(Deserialize)]
        struct Usage {
            #[serde(rename = "numOfCustomAggregationUnits")]
            used: i64,
        }
        self.get_json::<Usage>(format!("{AGGREGATION}/info"))
            .await
            .map(|usage| usage.used)
    }

    /// `GET /v2/bot/message/aggregation/list[?limit=&start=]`.
    pub async fn aggregation_units(
        &self,
        limit: Option<i32>,
        start: Option<&str>,
    ) -> Result<AggregationUnits, T::Error> {
        let limit = limit.map(|l| l.to_string());
        self.get_json(with_query(
            format!("{AGGREGATION}/list"),
            &[("limit", limit.as_deref()), ("start", start)],
        ))
        .await
    }
}

/// LINE `RichMenuIdResponse`.
#[derive(Deserialize)]
struct RichMenuIdAnswer {
    #[serde(rename = "richMenuId")]
    rich_menu_id: String,
}

fn read_rich_menu<E>(json: Value) -> Result<RichMenu, E> {
    RichMenu::from_json(json).map_err(|err| {
        CallError::Line(Error::InvalidJson {
            http_status: 200,
            request_id: String::new(),
            reason: format!("a rich menu: {err}"),
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
