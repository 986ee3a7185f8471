//! How settings look as flags of `serve` and `check`: clap derives them
//! from [`Layer`]; this adds what the derive cannot know.
//!
//! Each flag's help ends with its built-in default, read from
//! `defaults.toml` so it is written down once, and its variable. Numbers
//! are refused in the user's words ("`-1` is not a whole number"), where
//! clap would say "invalid digit found in string" or take `-1` for a flag.

use std::{any::TypeId, sync::OnceLock};

use clap::{Arg, builder::StyledStr};

use super::{DEFAULTS, Layer, env_var_name};

/// Adds the default and the variable to a setting's flag help, and makes
/// its numbers whole numbers in the user's words. `Layer`'s derive calls it
/// for every argument of the command; others (`--config`) pass unchanged.
pub(super) fn describe(arg: Arg) -> Arg {
    let key = arg.get_id().as_str();
    if !Layer::keys().contains(&key) {
        return arg;
    }
    let mut notes = String::new();
    if let Some(default) = default_text(key) {
        notes.push_str(&format!(" [default: {default}]"));
    }
    notes.push_str(&format!(" [env: {}]", env_var_name(key)));
    let with_notes = |help: &StyledStr| format!("{help}{notes}");
    let help = arg.get_help().map(with_notes);
    let long_help = arg.get_long_help().map(with_notes);
    let mut arg = arg;
    if let Some(help) = help {
        arg = arg.help(help);
    }
    if let Some(long_help) = long_help {
        arg = arg.long_help(long_help);
    }
    if arg.get_value_parser().type_id() == TypeId::of::<u64>() {
        arg = arg.value_parser(whole_number).allow_hyphen_values(true);
    }
    arg
}

/// A flag's whole number, refused in the user's words (clap would say
/// "invalid digit found in string", or take `-1` for another flag).
pub fn whole_number(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .map_err(|_| format!("`{text}` is not a whole number (0 or more)"))
}

/// A setting's built-in default as `--help` shows it; `None` when it has
/// none, or an empty one (its doc says what unset means).
fn default_text(key: &str) -> Option<String> {
    static DEFAULTS_TABLE: OnceLock<toml::Table> = OnceLock::new();
    let table = DEFAULTS_TABLE.get_or_init(|| {
        toml::from_str(DEFAULTS).expect("embedded defaults.toml is valid (unit-tested)")
    });
    match table.get(key)? {
        toml::Value::String(text) if text.is_empty() => None,
        toml::Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}
