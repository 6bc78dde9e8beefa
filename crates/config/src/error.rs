//! Where a configuration entry came from, and the errors of every stage.
//!
//! Every error prints as one self-contained line naming the option, the value and the origin
//! (file and line, command-line argument, or environment variable).

use std::fmt;
use std::path::PathBuf;

/// Where one `(option, value)` entry came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `UWSGI_*` / `LIEGE_*` environment variable (the variable's name).
    Env(String),
    /// Command-line argument number `index` (1-based, program name excluded), as written.
    CommandLine { index: usize, arg: String },
    /// Line `line` (1-based) of an ini file.
    File { path: PathBuf, line: usize },
    /// Built in by liege (defaults), never shown to users as an error origin.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::CommandLine { index, arg } => {
                write!(f, "command line argument {index} `{arg}`")
            }
            Origin::File { path, line } => write!(f, "{} line {line}", path.display()),
            Origin::Default => write!(f, "default"),
        }
    }
}

/// A configuration error. Each variant names the option, the value and the origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not an option liege or uWSGI knows.
    #[error("{origin}: unknown option `{option}` (value `{value}`){suggestion}")]
    UnknownOption {
        option: String,
        value: String,
        origin: Origin,
        /// Already formatted: empty or ` — did you mean `x`?`.
        suggestion: String,
    },
    /// A real uWSGI option that liege does not provide.
    #[error("{origin}: `{option}` (value `{value}`) is a uWSGI option that liege does not implement{detail}")]
    NotImplemented {
        option: String,
        value: String,
        origin: Origin,
        /// Already formatted: empty or `: why / what to use instead`.
        detail: String,
    },
    /// A liege option whose feature is not implemented yet (registry `implemented == false`).
    #[error("{origin}: option `{option}` (value `{value}`) is recognised but not implemented yet")]
    NotImplementedYet {
        option: String,
        value: String,
        origin: Origin,
    },
    /// The value does not parse or does not validate.
    #[error("{origin}: invalid value `{value}` for option `{option}`: {reason}")]
    InvalidValue {
        option: String,
        value: String,
        origin: Origin,
        reason: String,
    },
    /// A config file (or `@(file)`) could not be read.
    #[error("{origin}: cannot read `{path}` for option `{option}`: {reason}")]
    Read {
        option: String,
        path: String,
        origin: Origin,
        reason: String,
    },
    /// A `%(name)` reference nothing defines (strict mode).
    #[error("{origin}: option `{option}` = `{value}` refers to undefined placeholder `%({name})`")]
    UndefinedPlaceholder {
        option: String,
        value: String,
        name: String,
        origin: Origin,
    },
    /// Anything else about the command line itself (missing value, bad positional argument).
    #[error("{origin}: {message}")]
    CommandLine { origin: Origin, message: String },
    /// A config file that is not an ini file (a broken section header, binary content).
    #[error("{origin}: {message}")]
    IniSyntax { origin: Origin, message: String },
}

impl ConfigError {
    /// Shorthand for [`ConfigError::InvalidValue`].
    pub fn invalid(
        option: &str,
        value: &str,
        origin: &Origin,
        reason: impl Into<String>,
    ) -> ConfigError {
        ConfigError::InvalidValue {
            option: option.to_string(),
            value: value.to_string(),
            origin: origin.clone(),
            reason: reason.into(),
        }
    }
}
