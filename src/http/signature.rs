//! `x-line-signature`: Base64(HMAC-SHA256(key = channel secret as UTF-8,
//! data = the raw request body)). Checked on the exact bytes received,
//! before anything parses them; the comparison is constant-time
//! (`Mac::verify_slice`).

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Whether `signature` (the header value) signs `body` under `secret`.
pub fn verify(secret: &Secret, body: &[u8], signature: &[u8]) -> bool {
    let Ok(expected) = BASE64.decode(signature) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The signature LINE would send for `body`: for tests, benchmarks and the
/// operator's own checks.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use proptest::prelude::*;

    use super::*;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/line-fixtures/signature")
    }

    /// LINE's own SDK test vectors, byte for byte.
    #[test]
    fn line_sdk_vectors_verify() {
        let text = std::fs::read_to_string(fixtures().join("signature_vectors.json")).unwrap();
        let vectors: serde_json::Value = serde_json::from_str(&text).unwrap();
        let vectors = vectors["vectors"].as_array().unwrap();
        assert_eq!(vectors.len(), 4);
        for vector in vectors {
            let secret = Secret::new(vector["secret"].as_str().unwrap());
            let body = match vector["body"].as_str() {
                Some(body) => body.as_bytes().to_vec(),
                None => {
                    std::fs::read(fixtures().join(vector["body_file"].as_str().unwrap())).unwrap()
                }
            };
            let signature = vector["signature"].as_str().unwrap();
            assert!(
                verify(&secret, &body, signature.as_bytes()),
                "{}",
                vector["source"]
            );
            assert_eq!(sign(secret.expose(), &body), signature);
            let mut tampered = body.clone();
            tampered.push(b' ');
            assert!(!verify(&secret, &tampered, signature.as_bytes()));
            assert!(!verify(&Secret::new("other"), &body, signature.as_bytes()));
        }
    }

    #[test]
    fn malformed_signatures_fail() {
        let secret = Secret::new("s");
        for signature in ["", "not base64!", "AAAA", " "] {
            assert!(!verify(&secret, b"{}", signature.as_bytes()));
        }
    }

    proptest! {
        #[test]
        fn only_the_exact_body_and_secret_verify(
            secret in "[0-9a-f]{32}",
            other in "[0-9a-f]{32}",
            body in proptest::collection::vec(any::<u8>(), 0..512),
            flip in any::<usize>(),
        ) {
            let signature = sign(&secret, &body);
            prop_assert!(verify(&Secret::new(secret.clone()), &body, signature.as_bytes()));
            if other != secret {
                prop_assert!(!verify(&Secret::new(other), &body, signature.as_bytes()));
            }
            if !body.is_empty() {
                let mut changed = body.clone();
                let at = flip % changed.len();
                changed[at] ^= 0x01;
                prop_assert!(!verify(&Secret::new(secret), &changed, signature.as_bytes()));
            }
        }

        #[test]
        fn arbitrary_headers_never_panic(header in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = verify(&Secret::new("secret"), b"{}", &header);
        }
    }
}
