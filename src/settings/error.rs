//! What stops start-up: a bad setting, named with where its value came
//! from, in the user's words and never quoting a secret.

use std::{fmt, path::PathBuf};

/// Where a setting's value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(String),
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("built-in default"),
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// Why the settings were refused; each stops start-up (exit 64).
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid setting `{key}` (from {origin}): {reason}")]
    Invalid {
        key: &'static str,
        origin: Origin,
        reason: String,
    },
    #[error("environment variable {var} is not valid UTF-8")]
    EnvNotText { var: String },
    #[error("environment variable {var} is not a setting of this version{}", nearest.as_ref().map(|n| format!("; did you mean {n}?")).unwrap_or_default())]
    UnknownEnv {
        var: String,
        nearest: Option<String>,
    },
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    ParseFile { path: PathBuf, message: String },
}
