//! Store errors, with the disk-full and permission cases told apart because their fixes
//! differ.

use crate::error::ErrorCode;
use std::path::PathBuf;

/// What went wrong with the database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The state directory cannot be created or written.
    #[error("cannot write the state directory {path}: {source}; give the bbedge user write access (systemd: StateDirectory=bbedge) or set daemon.state_dir")]
    Unwritable {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another process holds the database lock.
    #[error("the database {path} is locked by another process: is another bbedge running with the same state directory?")]
    Locked {
        /// The database directory.
        path: PathBuf,
    },
    /// The disk is full: writes are refused until space is freed.
    #[error("the disk holding the state directory is full")]
    Full,
    /// The database is corrupt (it is quarantined at open time).
    #[error("the database is corrupt: {0}")]
    Corrupt(String),
    /// Any other I/O error.
    #[error("database I/O error: {0}")]
    Io(#[source] std::io::Error),
    /// The database is being reopened after a failure; try again shortly.
    #[error("the database is being reopened after a storage failure")]
    Reopening,
    /// The verification child could not tell whether the database is sound (it could
    /// not be started, or another process holds the database).
    #[error("cannot verify the database: {0}")]
    Check(String),
    /// A value could not be encoded.
    #[error("cannot encode a stored value: {0}")]
    Encode(String),
    /// A stored value does not decode: it is corrupt or from an incompatible version.
    #[error("a stored value does not decode: {0}")]
    Decode(String),
}

impl Error {
    /// Maps sled's error, telling a full disk apart.
    pub fn from_sled(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(io) => Error::from_io(io),
            sled::Error::Corruption { at: Some(at), .. } => Error::Corrupt(format!(
                "sled found a damaged log entry at {at} while reading the database"
            )),
            sled::Error::Corruption { at: None, .. } => Error::Corrupt(
                "sled found a damaged log entry while reading the database (it gives no offset)"
                    .to_owned(),
            ),
            other => Error::Corrupt(format!("sled: {other}")),
        }
    }

    /// Maps an I/O error, telling a full disk (or a file-size limit) apart.
    pub fn from_io(io: std::io::Error) -> Self {
        match io.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG) => Error::Full,
            _ => Error::Io(io),
        }
    }
}

impl ErrorCode for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Unwritable { .. } => "STORE_UNWRITABLE",
            Error::Locked { .. } => "STORE_LOCKED",
            Error::Full => "STORE_FULL",
            Error::Corrupt(_) => "STORE_CORRUPT",
            Error::Io(_) => "STORE_IO",
            Error::Reopening => "STORE_REOPENING",
            Error::Check(_) => "STORE_CHECK",
            Error::Encode(_) => "STORE_ENCODE",
            Error::Decode(_) => "STORE_DECODE",
        }
    }
}
