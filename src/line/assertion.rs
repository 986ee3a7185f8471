//! Assertion signing keys for channel access tokens v2.1: RSA 2048 key
//! pairs generated here, their public half as the JWK the LINE Developers
//! Console accepts, and the RS256 JWT assertions signed with them.

use aws_lc_rs::{
    encoding::AsDer as _,
    rsa::{KeyPair, KeySize},
    signature::KeyPair as _,
};
use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::secret::Secret;

/// LINE's audience for assertions.
pub const AUDIENCE: &str = "https://api.line.me/";
/// How long an assertion is valid. LINE allows at most 30 minutes; it is
/// used at once, so a short life limits the harm of a leaked one.
pub const ASSERTION_LIFETIME_SECS: i64 = 5 * 60;
/// LINE's upper bound for `token_exp`: 30 days.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 30 * 24 * 3600;

/// A freshly generated key pair.
pub struct GeneratedKeyPair {
    /// PKCS#8 DER of the private key, base64: what is sealed at rest.
    pub private_key: Secret,
    /// The public key as a JWK: `{"kty","alg","use","e","n"}`.
    pub public_jwk: String,
    /// RFC 7638 SHA-256 thumbprint, base64url.
    pub thumbprint: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot generate an RSA key pair")]
    Generate,
    #[error("the stored signing key is damaged")]
    Damaged,
    #[error("cannot sign the assertion: {0}")]
    Sign(String),
}

/// The JWK members, in the order RFC 7638 sorts them for the thumbprint
/// (LINE's console takes any order).
#[derive(Serialize)]
struct PublicJwk<'a> {
    alg: &'a str,
    e: &'a str,
    kty: &'a str,
    n: &'a str,
    #[serde(rename = "use")]
    use_: &'a str,
}

/// The members RFC 7638 hashes for an RSA key, in lexicographic order.
#[derive(Serialize)]
struct ThumbprintInput<'a> {
    e: &'a str,
    kty: &'a str,
    n: &'a str,
}

/// Generates an RSA 2048 key pair (aws-lc's generator, which reads the
/// operating system's randomness).
pub fn generate() -> Result<GeneratedKeyPair, KeyError> {
    let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
    let der = pair.as_der().map_err(|_| KeyError::Generate)?;
    let public = pair.public_key();
    let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
    let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
    let public_jwk = serde_json::to_string(&PublicJwk {
        alg: "RS256",
        e: &e,
        kty: "RSA",
        n: &n,
        use_: "sig",
    })
    .expect("a JWK of strings serializes");
    let canonical = serde_json::to_string(&ThumbprintInput {
        e: &e,
        kty: "RSA",
        n: &n,
    })
    .expect("strings serialize");
    Ok(GeneratedKeyPair {
        private_key: Secret::new(STANDARD.encode(der.as_ref())),
        public_jwk,
        thumbprint: URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())),
    })
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    token_exp: u64,
}

/// A JWT assertion for `line_channel_id`, signed RS256 with the stored
/// private key under `kid`: `token_exp` asks LINE for a token valid that
/// many seconds (at most 30 days).
pub fn assertion(
    private_key: &Secret,
    kid: &str,
    line_channel_id: &str,
    now_secs: i64,
    token_exp_secs: u64,
) -> Result<Secret, KeyError> {
    let der = zeroize::Zeroizing::new(
        STANDARD
            .decode(private_key.expose())
            .map_err(|_| KeyError::Damaged)?,
    );
    let pem = zeroize::Zeroizing::new(pem::encode(&pem::Pem::new("PRIVATE KEY", der.to_vec())));
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| KeyError::Damaged)?;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let claims = Claims {
        iss: line_channel_id,
        sub: line_channel_id,
        aud: AUDIENCE,
        exp: now_secs + ASSERTION_LIFETIME_SECS,
        token_exp: token_exp_secs.min(MAX_TOKEN_LIFETIME_SECS),
    };
    jsonwebtoken::encode(&header, &claims, &key)
        .map(Secret::new)
        .map_err(|err| KeyError::Sign(err.to_string()))
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation, jwk::Jwk};

    use super::*;

    #[test]
    fn the_jwk_is_what_the_console_takes_and_verifies_our_assertions() {
        let pair = generate().unwrap();
        let jwk: serde_json::Value = serde_json::from_str(&pair.public_jwk).unwrap();
        let members: Vec<&str> = jwk
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(members, ["alg", "e", "kty", "n", "use"]);
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["alg"], "RS256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["e"], "AQAB");
        let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
        assert_eq!(n.len() * 8, 2048);
        assert!(!pair.public_jwk.contains("kid"));

        let token = assertion(&pair.private_key, "kid-1", "1234567890", 1_000, 86_400).unwrap();
        let header = jsonwebtoken::decode_header(token.expose()).unwrap();
        assert_eq!(header.kid.as_deref(), Some("kid-1"));
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        let jwk: Jwk = serde_json::from_str(&pair.public_jwk).unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[AUDIENCE]);
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            token.expose(),
            &DecodingKey::from_jwk(&jwk).unwrap(),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(claims["iss"], "1234567890");
        assert_eq!(claims["sub"], "1234567890");
        assert_eq!(claims["exp"], 1_000 + ASSERTION_LIFETIME_SECS);
        assert_eq!(claims["token_exp"], 86_400);

        // Another pair's key does not verify it.
        let other: Jwk = serde_json::from_str(&generate().unwrap().public_jwk).unwrap();
        assert!(
            jsonwebtoken::decode::<serde_json::Value>(
                token.expose(),
                &DecodingKey::from_jwk(&other).unwrap(),
                &validation,
            )
            .is_err()
        );
    }

    #[test]
    fn token_exp_is_capped_at_thirty_days() {
        let pair = generate().unwrap();
        let token = assertion(&pair.private_key, "k", "1", 0, u64::MAX).unwrap();
        let payload = token.expose().split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(claims["token_exp"], MAX_TOKEN_LIFETIME_SECS);
    }
}
