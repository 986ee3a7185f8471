//! LINE's channel access token endpoints (channel-access-token.yml): issue,
//! revoke and list tokens for each token type. Credentials go in forms, and
//! neither they nor the tokens LINE returns ever reach an error message.

use std::time::Duration;

use serde::Deserialize;

use super::{
    client::{LineClient, Response},
    error::NetworkError,
};
use crate::secret::Secret;

const CLIENT_CREDENTIALS: &str = "client_credentials";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// LINE's error text for the v2.1 limit of 30 valid tokens per channel.
const TOO_MANY_TOKENS: &str = "maximum number of access tokens";

/// A token LINE issued.
#[derive(Debug)]
pub struct IssuedToken {
    pub access_token: Secret,
    pub expires_in: Duration,
    /// v2.1 only: the id LINE gives the token (not the signing key's kid).
    pub key_id: String,
}

/// Why a token call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OAuthError {
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// LINE answered with an error; `message` is LINE's `error` and
    /// `error_description` (or `message`).
    #[error("LINE answered {status}: {message}")]
    Rejected { status: u16, message: String },
    /// LINE answered 200 with a body we cannot read.
    #[error("LINE's token response is malformed: {0}")]
    Malformed(String),
}

impl OAuthError {
    /// The v2.1 "maximum number of access tokens has already been issued".
    pub fn is_token_limit(&self) -> bool {
        matches!(self, Self::Rejected { status: 400, message }
            if message.to_ascii_lowercase().contains(TOO_MANY_TOKENS))
    }

    /// Whether trying again later may help (LINE or the network failed).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Network(_) => true,
            Self::Rejected { status, .. } => *status == 429 || *status >= 500,
            Self::Malformed(_) => false,
        }
    }
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    expires_in: u64,
    #[serde(default)]
    key_id: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct KeyIdsBody {
    /// LINE always sends it; none listed means none valid.
    #[serde(default)]
    kids: Vec<String>,
}

/// The token endpoints, over the shared LINE client.
#[derive(Clone, Debug)]
pub struct OAuth {
    line: LineClient,
}

impl OAuth {
    pub fn new(line: LineClient) -> Self {
        Self { line }
    }

    /// Short-lived token (v2): `POST /v2/oauth/accessToken`.
    pub async fn issue_short_lived(
        &self,
        channel_id: &str,
        channel_secret: &Secret,
    ) -> Result<IssuedToken, OAuthError> {
        let form = [
            ("grant_type", CLIENT_CREDENTIALS),
            ("client_id", channel_id),
            ("client_secret", channel_secret.expose()),
        ];
        token(self.line.post_form("/v2/oauth/accessToken", &form).await?)
    }

    /// Token v2.1 by JWT assertion: `POST /oauth2/v2.1/token`.
    pub async fn issue_v2_1(&self, assertion: &Secret) -> Result<IssuedToken, OAuthError> {
        let form = [
            ("grant_type", CLIENT_CREDENTIALS),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion.expose()),
        ];
        token(self.line.post_form("/oauth2/v2.1/token", &form).await?)
    }

    /// Stateless token (v3) by client credentials: `POST /oauth2/v3/token`.
    pub async fn issue_stateless(
        &self,
        channel_id: &str,
        channel_secret: &Secret,
    ) -> Result<IssuedToken, OAuthError> {
        let form = [
            ("grant_type", CLIENT_CREDENTIALS),
            ("client_id", channel_id),
            ("client_secret", channel_secret.expose()),
        ];
        token(self.line.post_form("/oauth2/v3/token", &form).await?)
    }

    /// Revokes a short-lived or long-lived token: `POST /v2/oauth/revoke`.
    pub async fn revoke_short_lived(&self, token: &Secret) -> Result<(), OAuthError> {
        let form = [("access_token", token.expose())];
        empty(self.line.post_form("/v2/oauth/revoke", &form).await?)
    }

    /// Revokes a v2.1 token: `POST /oauth2/v2.1/revoke`.
    pub async fn revoke_v2_1(
        &self,
        channel_id: &str,
        channel_secret: &Secret,
        token: &Secret,
    ) -> Result<(), OAuthError> {
        let form = [
            ("client_id", channel_id),
            ("client_secret", channel_secret.expose()),
            ("access_token", token.expose()),
        ];
        empty(self.line.post_form("/oauth2/v2.1/revoke", &form).await?)
    }

    /// Key ids of the channel's valid v2.1 tokens:
    /// `GET /oauth2/v2.1/tokens/kid`.
    pub async fn valid_v2_1_key_ids(&self, assertion: &Secret) -> Result<Vec<String>, OAuthError> {
        let query = [
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion.expose()),
        ];
        let response = self
            .line
            .get_query("/oauth2/v2.1/tokens/kid", &query)
            .await?;
        check(&response)?;
        serde_json::from_slice::<KeyIdsBody>(&response.body)
            .map(|body| body.kids)
            .map_err(|err| OAuthError::Malformed(err.to_string()))
    }
}

fn check(response: &Response) -> Result<(), OAuthError> {
    if response.status.is_success() {
        return Ok(());
    }
    let message = match serde_json::from_slice::<ErrorBody>(&response.body) {
        Ok(body) if !body.error.is_empty() && !body.error_description.is_empty() => {
            format!("{}: {}", body.error, body.error_description)
        }
        Ok(body) if !body.error.is_empty() => body.error,
        Ok(body) if !body.message.is_empty() => body.message,
        // Not LINE's JSON: a short excerpt, never the whole page.
        _ => String::from_utf8_lossy(&response.body[..response.body.len().min(200)]).into_owned(),
    };
    Err(OAuthError::Rejected {
        status: response.status.as_u16(),
        message,
    })
}

fn token(response: Response) -> Result<IssuedToken, OAuthError> {
    check(&response)?;
    // The error never quotes the body: it holds the token.
    let body: TokenBody = serde_json::from_slice(&response.body).map_err(|err| {
        OAuthError::Malformed(format!(
            "{} at column {}",
            err.classify_name(),
            err.column()
        ))
    })?;
    if body.access_token.is_empty() {
        return Err(OAuthError::Malformed("access_token is empty".into()));
    }
    Ok(IssuedToken {
        access_token: Secret::new(body.access_token),
        expires_in: Duration::from_secs(body.expires_in),
        key_id: body.key_id,
    })
}

fn empty(response: Response) -> Result<(), OAuthError> {
    check(&response)
}

/// serde_json's error category, named without the input.
trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "invalid JSON",
            serde_json::error::Category::Data => "unexpected fields",
            serde_json::error::Category::Eof => "truncated JSON",
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::StatusCode;

    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status: StatusCode::from_u16(status).unwrap(),
            request_id: None,
            accepted_request_id: None,
            retry_after: None,
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn errors_carry_lines_words_and_malformed_tokens_never_leak() {
        let limit = check(&response(
            400,
            r#"{"error":"invalid_request","error_description":"The maximum number of access tokens has already been issued"}"#,
        ))
        .unwrap_err();
        assert!(limit.is_token_limit());
        assert!(!limit.is_transient());
        let not_found = check(&response(
            404,
            r#"{"message":"Cannot find channel key that satisfies the conditions"}"#,
        ))
        .unwrap_err();
        assert_eq!(
            not_found.to_string(),
            "LINE answered 404: Cannot find channel key that satisfies the conditions"
        );
        assert!(check(&response(503, "<html>")).unwrap_err().is_transient());

        let malformed = token(response(
            200,
            r#"{"access_token":"SECRET-TOKEN","expires_in":"x"}"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(!malformed.contains("SECRET-TOKEN"), "{malformed}");
        let issued = token(response(
            200,
            r#"{"access_token":"t","expires_in":2592000,"token_type":"Bearer","key_id":"k1"}"#,
        ))
        .unwrap();
        assert_eq!(issued.expires_in, Duration::from_secs(2_592_000));
        assert_eq!(issued.key_id, "k1");
    }
}
