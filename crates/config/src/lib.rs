//! liege's configuration layer: the uWSGI option registry, ini/command-line/environment
//! loading with uWSGI 2.0 semantics, and the typed structs every process role receives.
//!
//! # Stages
//!
//! 1. **Sources** ([`source`]): `UWSGI_*`/`LIEGE_*` environment variables, then the command
//!    line left to right. `--ini FILE[:section]`, positional `*.ini` arguments, and `ini` /
//!    `include` lines are read at once and spliced in place. Each ini line has its magic
//!    variables (`%d`, `%n`, ... — [`magic`]) substituted before it is parsed. The result is one
//!    ordered list of raw `(key, value, origin)` entries.
//!    Config logic (`for`, `if-env`, `if-exists`, ... — [`logic`]) is evaluated as the
//!    file is read.
//! 2. **Classification** ([`build`]): each key is an option of the [`registry`] (by name, alias
//!    or short flag), a placeholder (`set-placeholder`, `set`, or an unknown key that some value
//!    references as `%(key)`), a uWSGI option liege does not implement, or an unknown key.
//! 3. **Expansion** ([`expand`]): `$(ENV)`, then `@(file)`, then `%(name)` over every entry,
//!    after all sources are in (so forward references work). `%(name)` takes the first value
//!    ever given to `name`; unresolved references stay verbatim (an error in strict mode).
//! 4. **Application** ([`build`]): entries are applied in order to [`Settings`]: scalars last
//!    wins, repeatable options accumulate. Values are parsed ([`value`]) and validated; every
//!    error names the option, the value and the origin (file and line, argument or variable).
//! 5. **Rendering** ([`render`]): `--help`, `--check` and `docs/options.md` from the same
//!    registry.
//!
//! The crate does no I/O beyond reading config files, `@(file)` files, the filesystem tests
//! of `if-exists`-style logic, and the environment.
//!
//! # Where liege differs from uWSGI 2.0 (on purpose)
//!
//! - **Strict by default.** An unknown key is an error (uWSGI silently keeps it as a
//!   placeholder) unless some value references it as `%(key)`; a real uWSGI option liege does
//!   not implement is an error saying so. `strict = false` or `--lenient` turns both into
//!   warnings ([`Settings::warnings`]). Unknown `UWSGI_*`/`LIEGE_*` environment variables are
//!   only warnings: the environment is ambient.
//! - **Unresolved `%(name)`** stays verbatim as in uWSGI, but is an error in strict mode
//!   (except in `log-format`, whose own variables are written `%(name)`). Unresolved `$(ENV)`
//!   stays verbatim silently, as in uWSGI. A self-referencing placeholder is an error instead of
//!   an endless loop.
//! - **Malformed numbers are errors** (uWSGI's `atoi` turns them into 0). Sizes accept
//!   `k`/`m`/`g` and durations `ms`/`s`/`m`/`h` suffixes.
//! - **Unknown `%x` magic sequences** are deleted as in uWSGI, with a warning.
//! - `--flag=false` is accepted for boolean flags on the command line (uWSGI rejects a value).
//! - Config sources with a scheme (`http://`, `exec://`, `@(exec://...)`) are refused.
//! - `need-app` defaults to true; `listen` has no default (the master uses somaxconn).
//! - Everything is bounded: include depth 32 and 512 files per parse, regular files (no FIFOs
//!   or devices) of 16 MiB, 100 000 entries per parse and items per `for` loop, declared
//!   options nesting 16 deep, 1 MiB / 10 000 look-ups of placeholder expansion per value.
//!   Beyond those an error is reported where uWSGI would loop or run out of memory.
//! - `if-reload` / `if-not-reload` are not implemented (a reload re-reads the files anew).

pub mod build;
pub mod error;
pub mod expand;
pub mod logic;
pub mod magic;
pub mod preflight;
pub mod registry;
pub mod render;
pub mod source;
pub mod typed;
pub mod value;

pub use error::{ConfigError, Origin};
pub use typed::*;

use std::ffi::OsString;
use std::path::Path;

/// Parse a whole command line (argv without the program name) and the process environment.
///
/// Relative paths (emperor monitors, `%p`) resolve against the current directory.
pub fn parse_command_line(
    args: &[OsString],
    env: &[(String, String)],
) -> Result<Action, Vec<ConfigError>> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    parse_in(args, env, &cwd)
}

/// [`parse_command_line`] with an explicit working directory.
pub fn parse_in(
    args: &[OsString],
    env: &[(String, String)],
    cwd: &Path,
) -> Result<Action, Vec<ConfigError>> {
    parse_in_preloaded(args, env, cwd, None)
}

/// [`parse_in`], with the text of one config file already read (`(path, text)`): the emperor
/// validates exactly the bytes it read from its own descriptor.
pub fn parse_in_preloaded(
    args: &[OsString],
    env: &[(String, String)],
    cwd: &Path,
    preload: Option<(std::path::PathBuf, String)>,
) -> Result<Action, Vec<ConfigError>> {
    let mut loader = source::Loader::new(cwd.to_path_buf());
    if let Some((p, t)) = preload {
        loader.preload(p, t);
    }
    loader.env(env);
    loader.args(args);
    let collected = loader.finish();
    let c = collected.commands.clone();
    let nothing_given = args.is_empty()
        && collected.entries.is_empty()
        && collected.files.is_empty()
        && collected.errors.is_empty()
        && collected.emperor_fd.is_none();
    if c.help {
        return Ok(Action::Help(render::help()));
    }
    if nothing_given {
        return Ok(Action::Usage(render::usage()));
    }
    if c.version {
        return Ok(Action::Version);
    }
    if c.reload.is_some() || c.stop.is_some() || c.status.is_some() {
        if !collected.errors.is_empty() {
            return Err(collected.errors);
        }
        return Ok(match (c.reload, c.stop, c.status) {
            (Some(p), _, _) => Action::Reload(p),
            (_, Some(p), _) => Action::Stop(p),
            (_, _, Some(a)) => Action::Status(a),
            _ => unreachable!("checked above"),
        });
    }
    let outcome = build::build(collected, env, cwd);
    // Errors from stage 1 were moved into `build`, which returns them with its own.
    if !outcome.errors.is_empty() {
        return Err(outcome.errors);
    }
    if c.check {
        // What would certainly fail at start: errors, or warnings when lenient.
        let mut settings = outcome.settings;
        let problems = preflight::check(&outcome.applied, cwd);
        if settings.lenient {
            settings
                .warnings
                .extend(problems.iter().map(|e| e.to_string()));
        } else if !problems.is_empty() {
            return Err(problems);
        }
        return Ok(Action::Check(render::check(
            &settings,
            &outcome.applied,
            &outcome.placeholders,
        )));
    }
    Ok(Action::Run(Box::new(outcome.settings)))
}

/// Parse only ini text (as if it were the file `path`), for tests and tools: the same stages
/// as [`parse_in`] without command line or environment.
pub fn parse_ini_str(text: &str, path: &Path, cwd: &Path) -> Result<Settings, Vec<ConfigError>> {
    parse_ini_str_env(text, path, &[], cwd)
}

/// [`parse_ini_str`] with an environment: `$(NAME)` and `if-env` see `env`, and `UWSGI_*` /
/// `LIEGE_*` variables in it become options placed before the file's, as in [`parse_in`]
/// (the fuzz targets use this).
pub fn parse_ini_str_env(
    text: &str,
    path: &Path,
    env: &[(String, String)],
    cwd: &Path,
) -> Result<Settings, Vec<ConfigError>> {
    let mut loader = source::Loader::new(cwd.to_path_buf());
    loader.env(env);
    let fm = magic::FileMagic::new(path, &path.to_string_lossy(), "", cwd);
    loader.parse_ini(text, path, None, &fm);
    let outcome = build::build(loader.finish(), env, cwd);
    if outcome.errors.is_empty() {
        Ok(outcome.settings)
    } else {
        Err(outcome.errors)
    }
}

#[cfg(test)]
mod tests;
