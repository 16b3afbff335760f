//! Configuration errors. Each names where the bad value came from, the key, and what
//! is allowed, so one line is enough to fix it.

use crate::error::ErrorCode;
use std::path::PathBuf;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file named on the command line, or a drop-in, could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file is not valid TOML.
    #[error("{origin}: not valid TOML: {message}")]
    Syntax {
        /// Where the text came from.
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key that bbedge does not know (usually a typo).
    #[error("{origin}: unknown key `{key}`: {message}")]
    UnknownKey {
        /// Where the key was set.
        origin: String,
        /// The dotted key path.
        key: String,
        /// What the parser expected instead.
        message: String,
    },
    /// A value of the wrong type.
    #[error("{origin}: `{key}`: {message}")]
    InvalidType {
        /// Where the value was set.
        origin: String,
        /// The dotted key path.
        key: String,
        /// What the parser expected.
        message: String,
    },
    /// A value outside its range, or in conflict with another key.
    #[error("{origin}: `{key}` = {value}: {allowed}")]
    OutOfRange {
        /// Where the value was set.
        origin: String,
        /// The dotted key path.
        key: String,
        /// The value found.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// A `BBEDGE_*` environment variable that is not a config key.
    #[error("environment variable {name}: {message}")]
    Env {
        /// The variable's name (never its value).
        name: String,
        /// What is wrong.
        message: String,
    },
}

impl ErrorCode for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Read { .. } => "CONFIG_READ_FAILED",
            Error::Syntax { .. } => "CONFIG_SYNTAX",
            Error::UnknownKey { .. } => "CONFIG_UNKNOWN_KEY",
            Error::InvalidType { .. } => "CONFIG_INVALID_TYPE",
            Error::OutOfRange { .. } => "CONFIG_OUT_OF_RANGE",
            Error::Env { .. } => "CONFIG_BAD_ENV",
        }
    }
}
