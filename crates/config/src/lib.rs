//! liege's configuration layer: the uWSGI option registry, ini/command-line/environment
//! loading with uWSGI 2.0 semantics, and the typed structs every process role receives.
//!
//! Stages (see docs/architecture.md): sources (env, argv, ini files) → an ordered list of
//! `(option, value, origin)` entries → expansion (`$()`, `@()`, `%()`) → typed [`Settings`].

pub mod typed;

pub use typed::*;

/// A configuration error: always names the option, the value and where it came from.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Parse a whole command line (argv without the program name) and the process environment.
///
/// STUB: replaced by the real loader (issue 2).
pub fn parse_command_line(
    _args: &[std::ffi::OsString],
    _env: &[(String, String)],
) -> Result<Action, Vec<ConfigError>> {
    Err(vec![ConfigError(
        "configuration loader not implemented yet".into(),
    )])
}
