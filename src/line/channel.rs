//! A client scoped to one LINE channel: the token, the renewal after a
//! 401, the retry of idempotent calls, and the pace LINE's rate limits set
//! (`line::pace`), written once. Every call to the Messaging API goes
//! through [`ChannelClient::call`] or [`ChannelClient::open`] (via
//! `line::api`), and every request they make waits for its permit first.

use std::{fmt, future::Future, time::Duration};

use http::StatusCode;

use super::{
    api,
    client::{Content, LineClient, Request, Response},
    error::{ApiError, Error, NetworkKind},
    pace::Pacer,
};
use crate::secret::Secret;

/// Pause before the one retry of an idempotent call.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Where a channel's access token comes from (`tokens::Tokens` for a
/// channel). `renew` is asked after LINE refused `rejected` with a 401.
pub trait TokenSource: Send + Sync {
    type Error: fmt::Display + Send;

    fn token(&self) -> impl Future<Output = Result<Secret, Self::Error>> + Send;

    fn renew(&self, rejected: &Secret) -> impl Future<Output = Result<Secret, Self::Error>> + Send;
}

/// Why a call failed: no token could be had, LINE refused the token and no
/// other could be had, or LINE (or the way to it) failed.
#[derive(Debug)]
pub enum CallError<E> {
    Token(E),
    /// LINE answered 401 and renewing the token failed with `renewal`.
    Unauthorized {
        error: ApiError,
        renewal: E,
    },
    Line(Error),
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(err) => err.fmt(f),
            Self::Unauthorized { error, renewal } => write!(f, "{error}; {renewal}"),
            Self::Line(err) => err.fmt(f),
        }
    }
}

impl<E> From<Error> for CallError<E> {
    fn from(err: Error) -> Self {
        Self::Line(err)
    }
}

/// Whether a call may be repeated when LINE failed or the connection did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Reads, settings, and anything LINE does once however often asked:
    /// one more try after a 5xx or a failed connection (not after a
    /// timeout: the caller has waited long enough already).
    Idempotent,
    /// Sends: the outbox decides, with its durable state and retry keys.
    Never,
}

/// A call's result and how many requests it made to LINE (a renewal after
/// a 401 makes two), which the outbox counts as attempts.
#[derive(Debug)]
pub struct Called<T, E> {
    pub result: Result<T, CallError<E>>,
    pub requests: u32,
}

/// One channel's door to LINE.
pub struct ChannelClient<T> {
    http: LineClient,
    tokens: T,
    /// Every channel's buckets, and this channel's id (our id: the key of
    /// its buckets).
    pacer: Pacer,
    channel: String,
}

impl<T: TokenSource> ChannelClient<T> {
    /// The client of our channel `channel`, paced by `pacer`.
    pub fn new(http: LineClient, pacer: Pacer, channel: &str, tokens: T) -> Self {
        Self {
            http,
            tokens,
            pacer,
            channel: channel.to_owned(),
        }
    }

    /// Sends `request` and reads the answer; any non-2xx answer is an
    /// error (202 included only where the caller says so).
    pub async fn call(&self, request: &Request, retry: Retry) -> Called<Response, T::Error> {
        let mut requests = 0;
        let result = self
            .attempts(request, retry, &mut requests, |token| {
                let http = &self.http;
                async move { http.send(&token, request).await }
            })
            .await
            .and_then(|response| match Error::from_response(&response) {
                None => Ok(response),
                Some(err) => Err(CallError::Line(err)),
            });
        self.note_rate_limit(request, &result);
        Called { result, requests }
    }

    /// Sends `request` and returns the answer's body unread when LINE
    /// answered 200. 202 is [`Error::NotReady`] (content being prepared).
    pub async fn open(&self, request: &Request) -> Result<Content, CallError<T::Error>> {
        let mut requests = 0;
        let content = self
            .attempts(request, Retry::Idempotent, &mut requests, |token| {
                let http = &self.http;
                async move { http.open(&token, request).await }
            })
            .await?;
        let result = self.opened(content).await;
        self.note_rate_limit(request, &result);
        result
    }

    /// A streamed answer as [`ChannelClient::open`] returns it.
    async fn opened(&self, content: Content) -> Result<Content, CallError<T::Error>> {
        match content.status {
            StatusCode::OK => Ok(content),
            StatusCode::ACCEPTED => Err(CallError::Line(Error::NotReady {
                request_id: content.request_id.unwrap_or_default(),
            })),
            _ => {
                let response = content.into_response().await;
                Err(CallError::Line(Error::from_response(&response).unwrap_or(
                    Error::InvalidJson {
                        http_status: response.status.as_u16(),
                        request_id: response.request_id.clone().unwrap_or_default(),
                        reason: "an unexpected success status".into(),
                    },
                )))
            }
        }
    }

    /// Slows `request`'s bucket when LINE answered it with its rate-limit
    /// 429 (not the monthly limit, not other 429s).
    fn note_rate_limit<R>(&self, request: &Request, result: &Result<R, CallError<T::Error>>) {
        if let Err(CallError::Line(Error::RateLimited { retry_after, error })) = result
            && error.exceeds_rate_limit()
        {
            self.pacer.slow_down(
                &self.channel,
                api::paced_as(&request.method, &request.path),
                &api::endpoint_label(&request.path),
                *retry_after,
            );
        }
    }

    /// Waits for `request`'s permit, at most as long as LINE may take to
    /// answer, so that a request, permit and answer, takes at most twice
    /// `line_request_timeout_ms`: the outbox renews its lease while an
    /// attempt runs, and a stop waits for no longer than that.
    async fn permit(&self, request: &Request) -> Result<(), Error> {
        let endpoint = api::endpoint_label(&request.path);
        self.pacer
            .permit(
                &self.channel,
                api::paced_as(&request.method, &request.path),
                &endpoint,
                self.http.timeout(),
            )
            .await
            .map_err(|refused| Error::Paced {
                endpoint,
                retry_after: refused.retry_after,
            })
    }

    /// Runs `send` with the channel's token: once more with a renewed
    /// token after a 401, and (for idempotent calls) once more after a 5xx
    /// or a failed connection. Each request waits for its permit first.
    async fn attempts<R, F, Fut>(
        &self,
        request: &Request,
        retry: Retry,
        requests: &mut u32,
        mut send: F,
    ) -> Result<R, CallError<T::Error>>
    where
        R: Answer,
        F: FnMut(Secret) -> Fut,
        Fut: Future<Output = Result<R, super::error::NetworkError>>,
    {
        let mut token = self.tokens.token().await.map_err(CallError::Token)?;
        let mut renewed = false;
        let mut retried = false;
        loop {
            self.permit(request).await?;
            *requests += 1;
            let result = send(token.clone()).await;
            let again = match &result {
                Ok(answer) if answer.status() == StatusCode::UNAUTHORIZED && !renewed => {
                    renewed = true;
                    match self.tokens.renew(&token).await {
                        Ok(next) => {
                            token = next;
                            continue;
                        }
                        Err(renewal) => {
                            let error = answer.api_error();
                            return Err(CallError::Unauthorized { error, renewal });
                        }
                    }
                }
                Ok(answer) => answer.status().is_server_error(),
                // Idempotent, so a broken connection may be tried again;
                // a timeout has made the caller wait long enough already.
                Err(err) => err.kind != NetworkKind::Timeout,
            };
            if again && retry == Retry::Idempotent && !retried {
                retried = true;
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
            return result.map_err(|err| CallError::Line(Error::Network(err)));
        }
    }
}

/// What [`ChannelClient::attempts`] needs of an answer, read or streamed.
trait Answer: Sized {
    fn status(&self) -> StatusCode;
    /// The 401 answer as LINE's error.
    fn api_error(&self) -> ApiError;
}

impl Answer for Response {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn api_error(&self) -> ApiError {
        match Error::from_response(self) {
            Some(Error::Api(error)) => error,
            _ => ApiError {
                http_status: self.status.as_u16(),
                ..ApiError::default()
            },
        }
    }
}

impl Answer for Content {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn api_error(&self) -> ApiError {
        // The body is not read: the status and request id say enough.
        ApiError {
            http_status: self.status.as_u16(),
            message: "the channel access token was refused".into(),
            request_id: self.request_id.clone().unwrap_or_default(),
            ..ApiError::default()
        }
    }
}
