//! Pairing errors. Messages never contain the token or the enrollment code.

use crate::error::ErrorCode;
use std::path::PathBuf;

/// What went wrong with pairing or its files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A credentials or key file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A credentials or key file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The credentials file exists but is not valid.
    #[error(
        "{path} is not a valid credentials file: {message}; run `bbedge unpair` and pair again"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the token).
        message: String,
    },
}

impl ErrorCode for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Read { .. } => "PAIRING_READ_FAILED",
            Error::Write { .. } => "PAIRING_WRITE_FAILED",
            Error::Corrupt { .. } => "PAIRING_CREDENTIALS_CORRUPT",
        }
    }
}
