//! Where settings come from, lowest first: the embedded defaults, the
//! `--config` file, the environment, the flags. Each fills a [`Layer`];
//! nothing is merged. A check asks [`Sources::get`] (through
//! `setting!`) for one setting and gets the value of the highest layer
//! that sets it, with the key and origin its errors must name.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use super::{DEFAULTS, Layer, Origin, SettingsError, env, env_var_name};

/// Every layer of settings, lowest first.
pub(super) struct Sources {
    layers: Vec<(Source, Layer)>,
}

/// Which source a layer was read from.
enum Source {
    Defaults,
    File(PathBuf),
    Env,
    Flags,
}

/// One setting as the highest layer that sets it has it.
pub(super) struct Setting<'a, T> {
    /// The setting's key, as in the file.
    pub(super) key: &'static str,
    /// Where the value came from; the defaults when no layer sets it.
    pub(super) origin: Origin,
    pub(super) value: Option<&'a T>,
}

/// `setting!(sources, http_addr)`: the setting of that `Layer` field, its
/// key spelled by the field's name so the two cannot differ.
macro_rules! setting {
    ($sources:expr, $key:ident) => {
        $sources.get(stringify!($key), |layer| layer.$key.as_ref())
    };
}
pub(super) use setting;

impl Sources {
    /// Reads every layer; an unreadable file or an unknown, non-text or
    /// badly typed variable stops here, before any value is checked.
    pub(super) fn read(
        config_file: Option<&Path>,
        env: impl IntoIterator<Item = (OsString, OsString)>,
        flags: Layer,
    ) -> Result<Self, SettingsError> {
        let defaults: Layer =
            toml::from_str(DEFAULTS).expect("embedded defaults.toml is valid (unit-tested)");
        let mut layers = vec![(Source::Defaults, defaults)];
        if let Some(path) = config_file {
            let text = std::fs::read_to_string(path).map_err(|source| SettingsError::ReadFile {
                path: path.to_owned(),
                source,
            })?;
            layers.push((Source::File(path.to_owned()), parse_file(path, &text)?));
        }
        layers.push((Source::Env, env::layer(env)?));
        layers.push((Source::Flags, flags));
        Ok(Sources { layers })
    }

    /// The setting `key` from the highest layer whose `field` is set.
    pub(super) fn get<T>(
        &self,
        key: &'static str,
        field: fn(&Layer) -> Option<&T>,
    ) -> Setting<'_, T> {
        let found = self
            .layers
            .iter()
            .rev()
            .find_map(|(source, layer)| field(layer).map(|value| (source, value)));
        match found {
            Some((source, value)) => Setting {
                key,
                origin: source.origin(key),
                value: Some(value),
            },
            None => Setting {
                key,
                origin: Origin::Default,
                value: None,
            },
        }
    }
}

impl Source {
    fn origin(&self, key: &str) -> Origin {
        match self {
            Source::Defaults => Origin::Default,
            Source::File(path) => Origin::File(path.clone()),
            Source::Env => Origin::Env(env_var_name(key)),
            Source::Flags => Origin::Flag(format!("--{}", key.replace('_', "-"))),
        }
    }
}

impl<'a, T> Setting<'a, T> {
    /// The error for this setting's value, naming the key and its origin.
    pub(super) fn invalid(&self, reason: impl Into<String>) -> SettingsError {
        SettingsError::Invalid {
            key: self.key,
            origin: self.origin.clone(),
            reason: reason.into(),
        }
    }

    /// The value; unset only if `defaults.toml` lacks a setting it must
    /// hold.
    pub(super) fn required(&self) -> Result<&'a T, SettingsError> {
        self.value.ok_or_else(|| self.invalid("must be set"))
    }
}

/// Parses a settings file. Errors name the key and line but never quote a
/// value, which could be a secret.
fn parse_file(path: &Path, text: &str) -> Result<Layer, SettingsError> {
    let invalid = |message: String| SettingsError::ParseFile {
        path: path.to_owned(),
        message,
    };
    let value: toml::Value = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        match line {
            Some(line) => invalid(format!("line {line}: {}", e.message())),
            None => invalid(e.message().to_owned()),
        }
    })?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        let message = e.inner().message();
        // serde speaks Rust ("invalid value: integer `-1`, expected u64").
        let message = if message.ends_with("expected u64") {
            "must be a whole number, 0 or more".to_owned()
        } else if message.ends_with("expected a boolean") {
            "must be true or false".to_owned()
        } else if message.contains("expected a string") || message.contains("expected a sequence") {
            message.replace("expected a string", "it must be text in quotes")
        } else {
            message.to_owned()
        };
        invalid(format!("`{key}`: {message}"))
    })
}
