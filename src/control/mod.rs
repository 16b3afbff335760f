//! The local control socket: how `bbedge token|pair|led …` reach the running daemon.
//!
//! sled lets only one process open the database, and the daemon owns the LED, so a CLI
//! command that changes daemon state sends one request over `<state_dir>/control.sock`
//! (a Unix socket, mode 0600: file permissions are the access control). The protocol is
//! one JSON line each way: `{"op":"token.revoke","args":{…}}` →
//! `{"ok":true,"result":…}` or `{"ok":false,"code":"…","message":"…"}`.
//! With no daemon listening, [`request`] returns [`ControlError::NotRunning`] and the
//! CLI does the work itself.

mod client;
mod server;

pub use client::request;
pub use server::{Bound, Handler, Handlers};

use crate::error::ErrorCode;
use std::path::{Path, PathBuf};

/// Largest request or response line, in bytes.
pub const MAX_LINE: usize = 64 * 1024;

/// The socket path inside the state directory.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("control.sock")
}

/// Control request failures.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    /// No daemon listens on the socket.
    #[error("the daemon is not running")]
    NotRunning,
    /// The daemon has no handler for this operation.
    #[error("unknown control operation `{0}`")]
    UnknownOp(String),
    /// The request was malformed or too large.
    #[error("bad control request: {0}")]
    BadRequest(String),
    /// The operation ran and failed.
    #[error("{message}")]
    Failed {
        /// Stable code of the underlying error.
        code: String,
        /// What went wrong.
        message: String,
    },
    /// Socket I/O failed.
    #[error("control socket I/O: {0}")]
    Io(String),
}

impl ControlError {
    /// Wraps a boundary error so its code crosses the socket.
    pub fn failed(err: &(dyn std::error::Error + 'static), code: &str) -> Self {
        ControlError::Failed {
            code: code.to_owned(),
            message: crate::error::chain(err),
        }
    }
}

impl ErrorCode for ControlError {
    fn code(&self) -> &'static str {
        match self {
            ControlError::NotRunning => "DAEMON_NOT_RUNNING",
            ControlError::UnknownOp(_) => "CONTROL_UNKNOWN_OP",
            ControlError::BadRequest(_) => "CONTROL_BAD_REQUEST",
            ControlError::Failed { .. } => "CONTROL_FAILED",
            ControlError::Io(_) => "CONTROL_IO",
        }
    }
}
