//! Keys: the API keys gRPC callers present, and the master key that seals
//! secrets at rest (with the one being replaced, while rotating). None of
//! them is a flag, and no error quotes one.

use super::{
    SettingsError,
    layer::ApiKeyList,
    sources::{Sources, setting},
};
use crate::{
    access::{self, ApiKey},
    secret::{MasterKey, Secret},
};

/// `api_keys` and then the lines of `api_keys_file`; blank entries and `#`
/// comments are skipped.
pub(super) fn api_keys(s: &Sources) -> Result<Vec<ApiKey>, SettingsError> {
    let mut keys = Vec::new();
    let listed = setting!(s, api_keys);
    for (n, secret) in listed.value.iter().flat_map(|list| list.keys()).enumerate() {
        add(&mut keys, secret.expose(), n + 1).map_err(|reason| listed.invalid(reason))?;
    }
    let file = setting!(s, api_keys_file);
    if let Some(path) = file.value {
        let text = std::fs::read_to_string(path)
            .map_err(|e| file.invalid(format!("cannot read {}: {e}", path.display())))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if !line.starts_with('#') {
                add(&mut keys, line, n + 1).map_err(|reason| file.invalid(reason))?;
            }
        }
    }
    Ok(keys)
}

/// Adds entry `n` (`key` or `key:scope+scope`) to `keys`; the reason it is
/// refused never quotes it.
fn add(keys: &mut Vec<ApiKey>, raw: &str, n: usize) -> Result<(), String> {
    if raw.trim().is_empty() {
        return Ok(());
    }
    let key = access::parse_entry(raw).map_err(|reason| format!("entry {n}: {reason}"))?;
    // The same key twice: the later entry's scopes win.
    keys.retain(|k| {
        !bool::from(subtle::ConstantTimeEq::ct_eq(
            k.key.expose().as_bytes(),
            key.key.expose().as_bytes(),
        ))
    });
    keys.push(key);
    Ok(())
}

/// The master key; unset or blank: the data dir's key file is used.
pub(super) fn master_key(s: &Sources) -> Result<Option<MasterKey>, SettingsError> {
    let setting = setting!(s, master_key);
    match setting.value {
        Some(key) if !key.expose().trim().is_empty() => MasterKey::parse(key)
            .map(Some)
            .map_err(|e| setting.invalid(e.to_string())),
        _ => Ok(None),
    }
}

/// The master key being replaced: only with a new one to seal under.
pub(super) fn master_key_previous(s: &Sources) -> Result<Option<MasterKey>, SettingsError> {
    let previous = setting!(s, master_key_previous);
    let Some(key) = previous.value else {
        return Ok(None);
    };
    if setting!(s, master_key).value.is_none() {
        return Err(previous.invalid(
            "needs master_key: set the new key as master_key and the key being replaced as master_key_previous",
        ));
    }
    MasterKey::parse(key)
        .map(Some)
        .map_err(|e| previous.invalid(e.to_string()))
}

impl ApiKeyList {
    /// Every entry, split at commas when given as one string.
    fn keys(&self) -> Vec<Secret> {
        match self {
            ApiKeyList::List(keys) => keys.clone(),
            ApiKeyList::Joined(joined) => joined.expose().split(',').map(Secret::new).collect(),
        }
    }
}
