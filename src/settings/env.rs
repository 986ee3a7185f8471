//! The `LINE_ADAPTER_*` environment as a [`Layer`], read by the same serde
//! derive as the files: [`EnvValue`] is a deserializer for one variable's
//! text that gives each field the type it asks for (a whole number, a
//! boolean, a string), refusing a bad value in the user's words.
//!
//! Not every variable with our prefix is a setting: `tail`'s
//! `LINE_ADAPTER_API_KEY` is a client's, and Kubernetes adds service links
//! for Services named like the release. Any other unknown name stops
//! start-up, naming the nearest setting, as an unknown file key does.

use std::{collections::BTreeMap, ffi::OsString, fmt};

use serde::de::{self, IntoDeserializer, value::MapDeserializer};

use super::{ENV_PREFIX, Layer, Origin, SettingsError, env_var_name};

/// Reads our variables from `env` into a layer.
pub(super) fn layer(
    env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Layer, SettingsError> {
    // key → (variable as written, value); a later duplicate wins, as in a
    // shell.
    let mut vars: BTreeMap<&'static str, (String, String)> = BTreeMap::new();
    for (name, value) in env {
        // Variables of other programs may hold anything; only ours must be text.
        let Some(name) = name.to_str().filter(|n| n.starts_with(ENV_PREFIX)) else {
            continue;
        };
        let name = name.to_owned();
        let Ok(value) = value.into_string() else {
            return Err(SettingsError::EnvNotText { var: name });
        };
        let key = name[ENV_PREFIX.len()..].to_ascii_lowercase();
        if let Some(&key) = Layer::keys().iter().find(|k| **k == key) {
            vars.insert(key, (name, value));
        } else if key == "api_key" || is_service_link(&key) {
            // `tail`'s API key: a client's variable, not the server's.
        } else {
            return Err(SettingsError::UnknownEnv {
                nearest: nearest_setting(&key).map(env_var_name),
                var: name,
            });
        }
    }
    let entries = vars.iter().map(|(key, (_, value))| (*key, EnvValue(value)));
    serde_path_to_error::deserialize(MapDeserializer::new(entries)).map_err(|err| {
        // The path's first segment is the field, hence the variable.
        let path = err.path().to_string();
        let field = path.split(['.', '[']).next().unwrap_or_default();
        let (key, var) = vars
            .iter()
            .find(|(key, _)| **key == field)
            .map(|(key, (var, _))| (*key, var.clone()))
            .unwrap_or(("", path.clone()));
        SettingsError::Invalid {
            key,
            origin: Origin::Env(var),
            reason: err.into_inner().0,
        }
    })
}

/// One variable's text, deserialized as whatever type its field has.
struct EnvValue<'a>(&'a str);

/// Why a variable's value was refused, already in the user's words.
#[derive(Debug)]
struct EnvValueError(String);

impl fmt::Display for EnvValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EnvValueError {}

impl de::Error for EnvValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        EnvValueError(msg.to_string())
    }
}

impl<'de> IntoDeserializer<'de, EnvValueError> for EnvValue<'_> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> de::Deserializer<'de> for EnvValue<'_> {
    type Error = EnvValueError;

    /// Text: strings, paths, secrets, and API keys (one comma-separated
    /// string; the file may give an array).
    fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_str(self.0)
    }

    /// A variable that is set is a value; unset ones are not in the map.
    fn deserialize_option<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_u64<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0.trim().parse::<u64>() {
            Ok(number) => visitor.visit_u64(number),
            Err(_) => Err(EnvValueError(format!("`{}` is not a whole number", self.0))),
        }
    }

    /// The spellings shells and charts use; empty is false, so
    /// `LINE_ADAPTER_X=` turns a switch off.
    fn deserialize_bool<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0.trim() {
            "1" | "true" | "yes" => visitor.visit_bool(true),
            "0" | "false" | "no" | "" => visitor.visit_bool(false),
            _ => Err(EnvValueError(format!("`{}` is not true or false", self.0))),
        }
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// Whether a variable's name (after our prefix) is one of the variables
/// Kubernetes gives every pod for each Service of its namespace:
/// `{SVC}_SERVICE_HOST`, `{SVC}_SERVICE_PORT[_{NAME}]`, `{SVC}_PORT` and
/// `{SVC}_PORT_{N}_{PROTO}[_PROTO|_PORT|_ADDR]`. A release named
/// `line-adapter` has Services whose names start like our prefix.
fn is_service_link(key: &str) -> bool {
    let key = key.to_ascii_uppercase();
    if key.contains("_SERVICE_HOST") || key.contains("_SERVICE_PORT") || key.ends_with("_PORT") {
        return true;
    }
    // `…_PORT_50051_TCP…`
    key.split("_PORT_").skip(1).any(|rest| {
        let mut parts = rest.split('_');
        let number = parts
            .next()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        number
            && parts
                .next()
                .is_some_and(|proto| matches!(proto, "TCP" | "UDP" | "SCTP"))
    })
}

/// The setting a misspelled key most likely meant, if any is close.
fn nearest_setting(key: &str) -> Option<&'static str> {
    let key = key.to_ascii_lowercase();
    Layer::keys()
        .iter()
        .map(|candidate| (strsim::jaro_winkler(&key, candidate), *candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}
