//! The channel's webhook as LINE sees it: the URL this service expects
//! (shared by GetWebhookUrl, RegisterWebhook and GetChannel's drift check,
//! so the three never disagree), setting and testing it at LINE
//! (RegisterWebhook), and comparing it with the endpoint LINE has
//! (GetChannel with `check_webhook`).

use prost_types::Timestamp;

use serde_json::Value;
use tonic::{Code, Status, metadata::MetadataMap};
use tonic_types::{ErrorDetails, StatusExt as _};

use tonic::{Request, Response};

use super::{AdminService, channel_id};
use crate::grpc::status::in_rpc;
use crate::grpc::{Core, RequestAuthority};
use crate::{proto::v1 as pb, services::Services, store::ChannelRecord, time::timestamp};

const NO_PUBLIC_BASE_URL: &str = "no public base URL: set LINE_ADAPTER_PUBLIC_BASE_URL (the https address LINE reaches this service at)";
/// LINE refuses longer endpoints (`SetWebhookEndpointRequest.endpoint`).
const MAX_ENDPOINT_LEN: usize = 500;

/// Where the base of a webhook URL came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseSource {
    /// LINE_ADAPTER_PUBLIC_BASE_URL.
    Config,
    /// The calling request's authority (and forwarding) headers.
    Request,
}

impl BaseSource {
    /// The contract's `base_url_source` value.
    pub fn as_str(self) -> &'static str {
        match self {
            BaseSource::Config => "config",
            BaseSource::Request => "request",
        }
    }
}

/// The webhook URL of one channel and where its base came from.
#[derive(Debug, Clone)]
pub struct WebhookUrl {
    pub url: String,
    pub source: BaseSource,
}

/// `{base}/webhook/line/{channel_id}`.
pub fn webhook_url(base: &str, channel_id: &str) -> String {
    format!("{}/webhook/line/{channel_id}", base.trim_end_matches('/'))
}

/// `{base}/webhook/line/{channel_id}`, the base being
/// LINE_ADAPTER_PUBLIC_BASE_URL when set, else derived from the request's
/// authority; FAILED_PRECONDITION when there is neither.
pub fn expected_url(
    core: &Core,
    metadata: &MetadataMap,
    authority: Option<&RequestAuthority>,
    channel_id: &str,
) -> Result<WebhookUrl, Status> {
    let (base, source) = match &core.settings.public_base_url {
        Some(base) => (base.as_str().to_owned(), BaseSource::Config),
        None => {
            let base = core
                .base_url_from_request(metadata, authority)
                .ok_or_else(|| Status::failed_precondition(NO_PUBLIC_BASE_URL))?;
            (base, BaseSource::Request)
        }
    };
    Ok(WebhookUrl {
        url: webhook_url(&base, channel_id),
        source,
    })
}

/// Sets the channel's webhook endpoint at LINE to this service's URL for
/// it, has LINE test it, and reads back whether webhooks are active.
pub async fn register(
    core: &Core,
    metadata: &MetadataMap,
    authority: Option<&RequestAuthority>,
    channel_id: &str,
) -> Result<pb::RegisterWebhookResponse, Status> {
    let services = core.services()?;
    let record = services.channels.get(channel_id).await?;
    let WebhookUrl { url, source } = expected_url(core, metadata, authority, &record.id)?;
    registrable(&url, source)?;

    let line = services.tokens.line(&record);
    line.set_webhook_endpoint(&url).await?;
    let test = line.test_webhook(&url).await?;
    let endpoint = line.webhook_endpoint().await?;

    let test_time = line_time(&test.timestamp);
    if test_time.is_none() {
        tracing::warn!(channel = %record.id, timestamp = %test.timestamp, "LINE's webhook test timestamp is unreadable");
    }
    if endpoint.endpoint != url {
        // LINE documents up to a minute before a new endpoint applies.
        tracing::info!(channel = %record.id, line_endpoint = %endpoint.endpoint, "LINE still reports the previous webhook endpoint");
    }
    tracing::info!(
        channel = %record.id,
        webhook_url = %url,
        success = test.success,
        reason = %test.reason,
        active = endpoint.active,
        "webhook endpoint registered at LINE"
    );
    Ok(pb::RegisterWebhookResponse {
        webhook_url: url,
        active: endpoint.active,
        test: Some(pb::WebhookTestResult {
            success: test.success,
            timestamp: test_time,
            status_code: test.status_code,
            reason: test.reason,
            detail: test.detail,
        }),
    })
}

/// LINE only calls https endpoints of at most 500 characters; refusing here
/// explains it better than LINE's 400 would, and sends nothing.
fn registrable(url: &str, source: BaseSource) -> Result<(), Status> {
    let https = url::Url::parse(url).is_ok_and(|u| u.scheme() == "https");
    let problem = if !https {
        let from = match source {
            BaseSource::Config => "LINE_ADAPTER_PUBLIC_BASE_URL is not https",
            BaseSource::Request => {
                "LINE_ADAPTER_PUBLIC_BASE_URL is not set and this request did not come through https (x-forwarded-proto)"
            }
        };
        format!(
            "the webhook URL {url} is not https, and LINE only accepts https endpoints ({from}): set LINE_ADAPTER_PUBLIC_BASE_URL to the https address LINE reaches this service at"
        )
    } else if url.chars().count() > MAX_ENDPOINT_LEN {
        format!(
            "the webhook URL is {} characters long, and LINE accepts at most {MAX_ENDPOINT_LEN}: shorten LINE_ADAPTER_PUBLIC_BASE_URL",
            url.chars().count()
        )
    } else {
        return Ok(());
    };
    let mut details = ErrorDetails::new();
    details.add_precondition_failure_violation(
        "WEBHOOK_URL",
        "LINE_ADAPTER_PUBLIC_BASE_URL",
        problem.clone(),
    );
    Err(Status::with_error_details(
        Code::FailedPrecondition,
        format!("RegisterWebhook: {problem}"),
        details,
    ))
}

/// LINE's test time: RFC 3339 text, or Unix milliseconds.
fn line_time(value: &Value) -> Option<Timestamp> {
    match value {
        Value::String(text) => text.parse().ok(),
        Value::Number(number) => number.as_i64().map(timestamp),
        _ => None,
    }
}

/// Compares the endpoint LINE has for the channel with the URL this
/// service expects. Never fails: what could not be learned is reported in
/// `error`, so GetChannel still returns the channel.
pub async fn check(
    core: &Core,
    services: &Services,
    record: &ChannelRecord,
    metadata: &MetadataMap,
    authority: Option<&RequestAuthority>,
) -> pb::WebhookCheck {
    let mut errors = Vec::new();
    // Only a configured base is what LINE must call; a base guessed from
    // this request says nothing about LINE's view (the contract: empty
    // without a public base URL, and `error` says why).
    let expected_url = match expected_url(core, metadata, authority, &record.id) {
        Ok(WebhookUrl {
            url,
            source: BaseSource::Config,
        }) => url,
        Ok(WebhookUrl {
            source: BaseSource::Request,
            ..
        }) => {
            errors.push(NO_PUBLIC_BASE_URL.to_owned());
            String::new()
        }
        Err(status) => {
            errors.push(status.message().to_owned());
            String::new()
        }
    };
    let answer = match services.tokens.line(record).webhook_endpoint().await {
        Ok(answer) => Some(answer),
        Err(err) => {
            errors.push(in_rpc("GetChannel")(Status::from(err)).message().to_owned());
            None
        }
    };
    let (line_endpoint, active) = answer.map(|a| (a.endpoint, a.active)).unwrap_or_default();
    if !errors.is_empty() {
        tracing::info!(channel = %record.id, errors = ?errors, "webhook check incomplete");
    }
    pb::WebhookCheck {
        matches: !expected_url.is_empty()
            && !line_endpoint.is_empty()
            && same_url(&line_endpoint, &expected_url),
        line_endpoint,
        expected_url,
        active,
        error: errors.join("; "),
    }
}

/// Equal, exactly, once one trailing slash is ignored on either side.
fn same_url(a: &str, b: &str) -> bool {
    a.strip_suffix('/').unwrap_or(a) == b.strip_suffix('/').unwrap_or(b)
}

pub(super) async fn get_webhook_url(
    admin: &AdminService,
    request: Request<pb::GetWebhookUrlRequest>,
) -> Result<Response<pb::GetWebhookUrlResponse>, Status> {
    let (metadata, extensions, pb::GetWebhookUrlRequest { channel_id: id }) = request.into_parts();
    let id = channel_id(&id)?;
    // The channel must exist: a URL for a channel we do not know would
    // only ever be answered 404.
    admin.core.channels()?.get(&id).await?;
    let WebhookUrl { url, source } = expected_url(
        &admin.core,
        &metadata,
        extensions.get::<RequestAuthority>(),
        &id,
    )?;
    Ok(Response::new(pb::GetWebhookUrlResponse {
        webhook_url: url,
        base_url_source: source.as_str().to_owned(),
    }))
}

pub(super) async fn register_webhook(
    admin: &AdminService,
    request: Request<pb::RegisterWebhookRequest>,
) -> Result<Response<pb::RegisterWebhookResponse>, Status> {
    let (metadata, extensions, pb::RegisterWebhookRequest { channel_id: id }) =
        request.into_parts();
    let id = channel_id(&id)?;
    let authority = extensions.get::<RequestAuthority>();
    register(&admin.core, &metadata, authority, &id)
        .await
        .map(Response::new)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn urls_match_exactly_but_for_one_trailing_slash() {
        let ours = "https://line.example.com/webhook/line/ch_1";
        assert!(same_url(ours, ours));
        assert!(same_url(&format!("{ours}/"), ours));
        assert!(same_url(ours, &format!("{ours}/")));
        assert!(!same_url(&format!("{ours}//"), ours));
        assert!(!same_url(
            "https://LINE.example.com/webhook/line/ch_1",
            ours
        ));
        assert!(!same_url("http://line.example.com/webhook/line/ch_1", ours));
    }

    #[test]
    fn line_test_times_are_read_as_rfc3339_or_milliseconds() {
        let rfc = line_time(&json!("2020-09-30T05:38:20.031Z")).unwrap();
        assert_eq!((rfc.seconds, rfc.nanos), (1_601_444_300, 31_000_000));
        let offset = line_time(&json!("2020-09-30T14:38:20.031+09:00")).unwrap();
        assert_eq!(offset, rfc);
        assert_eq!(line_time(&json!(1_601_444_300_031_i64)), Some(rfc));
        assert_eq!(line_time(&json!("yesterday")), None);
        assert_eq!(line_time(&Value::Null), None);
    }

    #[test]
    fn only_short_https_urls_are_registrable() {
        assert!(registrable("https://a.example/webhook/line/ch_1", BaseSource::Config).is_ok());
        let http =
            registrable("http://a.example/webhook/line/ch_1", BaseSource::Config).unwrap_err();
        assert_eq!(http.code(), Code::FailedPrecondition);
        assert!(http.message().contains("LINE_ADAPTER_PUBLIC_BASE_URL"));
        let long = format!("https://a.example/{}", "x".repeat(500));
        let too_long = registrable(&long, BaseSource::Config).unwrap_err();
        assert!(
            too_long.message().contains("at most 500"),
            "{}",
            too_long.message()
        );
    }
}
