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

use crate::secret::Secret;

/// The caller's key fingerprint, put into request extensions for logs.
#[derive(Debug, Clone)]
pub struct CallerKey(pub String);

/// The key check, cheap to clone into each service's interceptor.
#[derive(Clone)]
pub struct ApiKeys {
    digests: Arc<Vec<([u8; 32], String)>>,
}

impl ApiKeys {
    pub fn new(keys: &[Secret]) -> Self {
        let digests = keys
            .iter()
            .map(|key| (digest(key.expose()), key.fingerprint()))
            .collect();
        Self {
            digests: Arc::new(digests),
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Which configured key the metadata presents, by fingerprint.
    fn authenticate(&self, metadata: &MetadataMap) -> Result<Option<String>, Status> {
        if !self.is_enabled() {
            return Ok(None);
        }
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
        for (candidate, fingerprint) in self.digests.iter() {
            if bool::from(candidate.ct_eq(&presented)) {
                found = Some(fingerprint.clone());
            }
        }
        found
            .map(Some)
            .ok_or_else(|| Status::unauthenticated("unknown API key"))
    }

    /// A tonic interceptor.
    #[allow(clippy::result_large_err)] // tonic's interceptor signature
    pub fn intercept(&self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(fingerprint) = self.authenticate(request.metadata())? {
            request.extensions_mut().insert(CallerKey(fingerprint));
        }
        Ok(request)
    }
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(value: &str) -> Request<()> {
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
        request
    }

    #[test]
    fn only_configured_keys_pass() {
        let keys = ApiKeys::new(&[Secret::new("key-one"), Secret::new("key-two")]);
        assert!(keys.intercept(with_auth("Bearer key-two")).is_ok());
        let err = keys.intercept(with_auth("Bearer key-three")).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(!err.message().contains("key-"));
        assert!(keys.intercept(with_auth("key-one")).is_err());
        assert!(keys.intercept(Request::new(())).is_err());
    }

    #[test]
    fn no_keys_means_open() {
        assert!(ApiKeys::new(&[]).intercept(Request::new(())).is_ok());
    }
}
