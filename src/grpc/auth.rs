//! Bearer API keys for gRPC callers.
//!
//! Keys are compared in constant time: both the presented key and every
//! configured key are hashed with SHA-256 and the digests compared with
//! `subtle`, and every configured key is checked, so neither timing nor
//! length tells a caller how close a guess was.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use tonic::{Request, Status, metadata::MetadataMap};

use super::RpcPath;
use crate::access::{ApiKey, Scope, Scopes};

/// A configured key, as checked: its digest, id and scopes.
struct Known {
    digest: [u8; 32],
    id: String,
    scopes: Scopes,
}

/// The key check, cheap to clone into each service's interceptor.
#[derive(Clone)]
pub struct ApiKeys {
    known: Arc<Vec<Known>>,
}

impl ApiKeys {
    pub fn new(keys: &[ApiKey]) -> Self {
        let known = keys
            .iter()
            .map(|key| Known {
                digest: digest(key.key.expose()),
                id: key.key.fingerprint(),
                scopes: key.scopes,
            })
            .collect();
        Self {
            known: Arc::new(known),
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.known.is_empty()
    }

    /// The configured key the metadata presents: its id and scopes.
    fn authenticate(&self, metadata: &MetadataMap) -> Result<(String, Scopes), Status> {
        let header = metadata
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("missing `authorization: Bearer <api key>`"))?;
        let presented = header
            .to_str()
            .ok()
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| Status::unauthenticated("`authorization` must be `Bearer <api key>`"))?;
        let presented = digest(presented);
        let mut found = None;
        // Every key is compared, so timing says nothing about which matched.
        for known in self.known.iter() {
            if bool::from(known.digest.ct_eq(&presented)) {
                found = Some((known.id.clone(), known.scopes));
            }
        }
        found.ok_or_else(|| Status::unauthenticated("unknown API key"))
    }

    /// A tonic interceptor: UNAUTHENTICATED without a known key,
    /// PERMISSION_DENIED when the key's scopes exclude the method.
    pub fn intercept(&self, request: Request<()>) -> Result<Request<()>, Status> {
        if !self.is_enabled() {
            return Ok(request);
        }
        let path = request
            .extensions()
            .get::<RpcPath>()
            .map(|p| p.0.clone())
            .unwrap_or_default();
        let (id, scopes) = self.authenticate(request.metadata())?;
        // A path we cannot classify needs every scope.
        let needed = Scope::for_path(&path).unwrap_or(Scope::Admin);
        if !scopes.allows(needed) {
            tracing::info!(key = %id, rpc = %path, scope = %needed, "call outside the key's scopes refused");
            return Err(Status::permission_denied(format!(
                "this API key (id {id}) lacks the `{needed}` scope that {path} needs"
            )));
        }
        tracing::debug!(key = %id, rpc = %path, "call authorized");
        Ok(request)
    }
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::parse_entry;

    fn call(path: &str, auth: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(value) = auth {
            request
                .metadata_mut()
                .insert("authorization", value.parse().unwrap());
        }
        request.extensions_mut().insert(RpcPath(path.into()));
        request
    }

    const SEND: &str = "/weiyu.line.v1.Messaging/Send";
    const ROTATE: &str = "/weiyu.line.v1.ChannelAdmin/RotateAccessToken";

    #[test]
    fn only_configured_keys_pass() {
        let keys = ApiKeys::new(&[
            parse_entry("key-one").unwrap(),
            parse_entry("key-two").unwrap(),
        ]);
        assert!(keys.intercept(call(SEND, Some("Bearer key-two"))).is_ok());
        let err = keys
            .intercept(call(SEND, Some("Bearer key-three")))
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(!err.message().contains("key-"));
        assert!(keys.intercept(call(SEND, Some("key-one"))).is_err());
        assert!(keys.intercept(call(SEND, None)).is_err());
    }

    #[test]
    fn scopes_limit_what_a_key_calls() {
        let keys = ApiKeys::new(&[
            parse_entry("desk:send+subscribe").unwrap(),
            parse_entry("reader:subscribe").unwrap(),
        ]);
        assert!(keys.intercept(call(SEND, Some("Bearer desk"))).is_ok());
        let denied = keys
            .intercept(call(ROTATE, Some("Bearer desk")))
            .unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(denied.message().contains("admin"));
        assert!(!denied.message().contains("desk"));
        let denied = keys
            .intercept(call(SEND, Some("Bearer reader")))
            .unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(
            keys.intercept(call("/weiyu.line.v1.Messaging/Ack", Some("Bearer reader")))
                .is_ok()
        );
    }

    #[test]
    fn no_keys_means_open() {
        assert!(ApiKeys::new(&[]).intercept(call(SEND, None)).is_ok());
    }
}
