//! Secrets in memory and at rest.
//!
//! [`Secret`] holds a credential (channel secret, access token, API key) so
//! that it cannot end up in a log line, an error or a response by accident:
//! `Debug` and `Display` print only a fingerprint, there is no `Serialize`,
//! and the value is reached through an explicit [`Secret::expose`]. The bytes
//! are wiped when the value is dropped.
//!
//! [`Cipher`] encrypts secrets before they reach the store, with
//! XChaCha20-Poly1305 under the master key. Each ciphertext is bound to where
//! it belongs (its "context", e.g. `channel/ch_.../secret`) as associated
//! data, so a ciphertext copied to another record does not decrypt.

use std::{
    fmt,
    fs::{self, OpenOptions},
    io::Write as _,
    path::{Path, PathBuf},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, Generate, Key, KeyInit, Payload},
};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Length of a fingerprint in hex digits (the first 4 bytes of SHA-256).
const FINGERPRINT_HEX_LEN: usize = 8;

/// A credential that must never be printed. See the module docs. It has no
/// `PartialEq`: comparing secrets must be constant-time (see `grpc::auth`).
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The secret itself, for the one place that needs it (an HMAC key, an
    /// `Authorization` header, the cipher).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// First 8 hex digits of the SHA-256 of the value: enough to tell two
    /// secrets apart, useless for recovering one.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.0.as_bytes())
    }
}

/// Reads a secret from settings; an error never quotes the value.
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Secret, E> {
                Ok(Secret::new(value))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(sha256:{})", self.fingerprint())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.fingerprint())
    }
}

/// Fingerprint of arbitrary bytes, as shown for secrets.
pub fn fingerprint(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = hex::encode(digest);
    hex.truncate(FINGERPRINT_HEX_LEN);
    hex
}

#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    /// The ciphertext was not produced by this key for this context: wrong
    /// master key, a record copied elsewhere, or corruption.
    #[error("cannot decrypt {context}: wrong master key or damaged data")]
    Decrypt { context: String },
    #[error("encrypted value for {context} is not valid UTF-8")]
    NotUtf8 { context: String },
}

/// Version tag in front of every ciphertext, so the format can change later
/// without guessing.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 24;

/// The at-rest cipher. See the module docs. During a master-key rotation it
/// also holds the previous key: what that key sealed still opens, and
/// [`Cipher::reseal`] moves it to the current key.
#[derive(Clone)]
pub struct Cipher {
    aead: XChaCha20Poly1305,
    previous: Option<XChaCha20Poly1305>,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(XChaCha20-Poly1305)")
    }
}

fn aead(key: &MasterKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new_from_slice(&key.0[..])
        .expect("a master key is always 32 bytes, checked when it is parsed")
}

impl Cipher {
    pub fn new(key: &MasterKey) -> Self {
        Self {
            aead: aead(key),
            previous: None,
        }
    }

    /// A cipher that seals under `key` and still opens what `previous`
    /// sealed.
    pub fn rotating(key: &MasterKey, previous: &MasterKey) -> Self {
        Self {
            aead: aead(key),
            previous: Some(aead(previous)),
        }
    }

    /// Whether a previous key is configured.
    pub fn is_rotating(&self) -> bool {
        self.previous.is_some()
    }

    /// `version || nonce || ciphertext+tag`, with a fresh random nonce (192
    /// bits, so random nonces never collide in practice).
    pub fn encrypt(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce = XNonce::generate();
        let sealed = self
            .aead
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption fails only for messages over 256 GiB");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens what the current key sealed, or the previous one.
    pub fn decrypt(&self, context: &str, data: &[u8]) -> Result<Zeroizing<Vec<u8>>, CipherError> {
        match open(&self.aead, context, data) {
            Ok(plain) => Ok(plain),
            Err(err) => match &self.previous {
                Some(previous) => open(previous, context, data),
                None => Err(err),
            },
        }
    }

    /// `None` when `data` is sealed under the current key; else the same
    /// plaintext sealed under the current key (it was sealed under the
    /// previous one). Fails when neither key opens it.
    pub fn reseal(&self, context: &str, data: &[u8]) -> Result<Option<Vec<u8>>, CipherError> {
        if open(&self.aead, context, data).is_ok() {
            return Ok(None);
        }
        let previous = self.previous.as_ref().ok_or_else(|| CipherError::Decrypt {
            context: context.to_owned(),
        })?;
        let plain = open(previous, context, data)?;
        Ok(Some(self.encrypt(context, &plain)))
    }

    pub fn encrypt_secret(&self, context: &str, secret: &Secret) -> Vec<u8> {
        self.encrypt(context, secret.expose().as_bytes())
    }

    pub fn decrypt_secret(&self, context: &str, data: &[u8]) -> Result<Secret, CipherError> {
        let plain = self.decrypt(context, data)?;
        let text = std::str::from_utf8(&plain).map_err(|_| CipherError::NotUtf8 {
            context: context.to_owned(),
        })?;
        Ok(Secret::new(text))
    }
}

fn open(
    aead: &XChaCha20Poly1305,
    context: &str,
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CipherError> {
    let fail = || CipherError::Decrypt {
        context: context.to_owned(),
    };
    let (&version, rest) = data.split_first().ok_or_else(fail)?;
    if version != FORMAT_V1 || rest.len() < NONCE_LEN {
        return Err(fail());
    }
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let nonce = XNonce::try_from(nonce).map_err(|_| fail())?;
    aead.decrypt(
        &nonce,
        Payload {
            msg: sealed,
            aad: context.as_bytes(),
        },
    )
    .map(Zeroizing::new)
    .map_err(|_| fail())
}

/// The 32-byte key that encrypts every secret at rest.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(sha256:{})", fingerprint(&self.0[..]))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("must be 32 bytes written as 64 hex digits or as base64 (44 characters)")]
    Format,
    #[error("cannot read master key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create master key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("master key file {path} is invalid: {reason}")]
    File { path: PathBuf, reason: String },
}

/// Where a key file's key came from, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterKeySource {
    /// The key file in the data dir, written by an earlier start.
    DataDirFile,
    /// Generated now and written to the data dir.
    Generated,
}

impl MasterKey {
    /// Parses 64 hex digits or standard base64 of 32 bytes.
    pub fn parse(text: &Secret) -> Result<Self, MasterKeyError> {
        let text = text.expose().trim();
        let bytes = Zeroizing::new(if text.len() == 64 {
            hex::decode(text).map_err(|_| MasterKeyError::Format)?
        } else {
            BASE64.decode(text).map_err(|_| MasterKeyError::Format)?
        });
        let key: [u8; 32] = bytes[..].try_into().map_err(|_| MasterKeyError::Format)?;
        Ok(Self(Zeroizing::new(key)))
    }

    pub fn generate() -> Self {
        let key = Key::<XChaCha20Poly1305>::generate();
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&key);
        Self(Zeroizing::new(bytes))
    }

    /// Reads the key file at `path`, or creates it (mode 0600, owner only)
    /// with a new random key when it does not exist.
    pub fn load_or_generate(path: &Path) -> Result<(Self, MasterKeySource), MasterKeyError> {
        match fs::read_to_string(path) {
            Ok(text) => {
                let key = Self::parse(&Secret::new(text)).map_err(|e| MasterKeyError::File {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?;
                Ok((key, MasterKeySource::DataDirFile))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                key.write_new(path)
                    .map_err(|source| MasterKeyError::Write {
                        path: path.to_owned(),
                        source,
                    })?;
                Ok((key, MasterKeySource::Generated))
            }
            Err(source) => Err(MasterKeyError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    fn write_new(&self, path: &Path) -> std::io::Result<()> {
        let mut options = OpenOptions::new();
        // create_new: never overwrite a key another process just wrote.
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(path)?;
        let encoded = Zeroizing::new(BASE64.encode(&self.0[..]));
        file.write_all(encoded.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_show_only_a_fingerprint() {
        let secret = Secret::new("0123456789abcdef0123456789abcdef");
        let shown = format!("{secret:?} {secret}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains(&secret.fingerprint()));
        assert_eq!(secret.fingerprint().len(), 8);
    }

    #[test]
    fn ciphertext_is_bound_to_its_context_and_key() {
        let key = MasterKey::generate();
        let cipher = Cipher::new(&key);
        let sealed = cipher.encrypt("channel/a/secret", b"hello");
        assert!(!sealed.windows(5).any(|w| w == b"hello"));
        assert_eq!(
            &cipher.decrypt("channel/a/secret", &sealed).unwrap()[..],
            b"hello"
        );
        assert!(cipher.decrypt("channel/b/secret", &sealed).is_err());
        let other = Cipher::new(&MasterKey::generate());
        assert!(other.decrypt("channel/a/secret", &sealed).is_err());
        let mut damaged = sealed.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert!(cipher.decrypt("channel/a/secret", &damaged).is_err());
        assert!(cipher.decrypt("channel/a/secret", &[]).is_err());
    }

    #[test]
    fn a_rotating_cipher_opens_both_keys_and_reseals_under_the_new_one() {
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        let sealed_old = Cipher::new(&old).encrypt("ctx", b"secret");
        let rotating = Cipher::rotating(&new, &old);
        assert_eq!(
            &rotating.decrypt("ctx", &sealed_old).unwrap()[..],
            b"secret"
        );
        let resealed = rotating.reseal("ctx", &sealed_old).unwrap().expect("moved");
        assert_eq!(
            &Cipher::new(&new).decrypt("ctx", &resealed).unwrap()[..],
            b"secret"
        );
        assert!(Cipher::new(&old).decrypt("ctx", &resealed).is_err());
        assert_eq!(
            rotating.reseal("ctx", &resealed).unwrap(),
            None,
            "already current"
        );
        let stranger = Cipher::new(&MasterKey::generate()).encrypt("ctx", b"x");
        assert!(rotating.reseal("ctx", &stranger).is_err());
        assert!(
            rotating.reseal("other", &sealed_old).is_err(),
            "context still binds"
        );
    }

    #[test]
    fn master_key_accepts_hex_and_base64_only_of_32_bytes() {
        let hex = "00".repeat(32);
        assert!(MasterKey::parse(&Secret::new(hex)).is_ok());
        let b64 = BASE64.encode([7u8; 32]);
        assert!(MasterKey::parse(&Secret::new(b64)).is_ok());
        assert!(MasterKey::parse(&Secret::new(BASE64.encode([7u8; 31]))).is_err());
        assert!(MasterKey::parse(&Secret::new("zz".repeat(32))).is_err());
        assert!(MasterKey::parse(&Secret::new("")).is_err());
    }

    #[test]
    fn generated_key_file_is_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let (first, source) = MasterKey::load_or_generate(&path).unwrap();
        assert_eq!(source, MasterKeySource::Generated);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (second, source) = MasterKey::load_or_generate(&path).unwrap();
        assert_eq!(source, MasterKeySource::DataDirFile);
        assert_eq!(&first.0[..], &second.0[..]);
    }
}
