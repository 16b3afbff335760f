//! Every way a pairing attempt can end badly, each with one sentence a person can act
//! on, a stable code, an exit code for `bbedge pair`, and whether retrying can help.
//!
//! Sentences never contain the enrollment code or the token: they are built only from
//! the host, HTTP status, field names and server messages that carry no values.

use super::input::InputError;
use crate::error::ErrorCode;
use std::time::Duration;

/// `bbedge pair` exit codes (also in `bbedge pair --help` and docs/PAIRING.md).
pub mod exit {
    /// Paired; credentials and key stored.
    pub const PAIRED: i32 = 0;
    /// A command-line or boot-file value is invalid (UUID, code format, URL, name).
    pub const INVALID_INPUT: i32 = 64;
    /// The key or credentials file could not be read or written.
    pub const FILES: i32 = 73;
    /// Refused locally: cleartext to a non-loopback host, or a bad `extra_ca_file`.
    pub const CONFIG: i32 = 78;
    /// 400: central rejected a field of the request.
    pub const REQUEST_REJECTED: i32 = 80;
    /// 400: central rejected the public key.
    pub const KEY_REJECTED: i32 = 81;
    /// 422: the code is unknown, expired, used, or for another device. Final.
    pub const CODE_REFUSED: i32 = 82;
    /// 429: too many attempts; wait for Retry-After.
    pub const RATE_LIMITED: i32 = 83;
    /// 5xx: central failed.
    pub const SERVER_ERROR: i32 = 84;
    /// Any other answer (404: module not mounted, 3xx, an unreadable 201).
    pub const UNEXPECTED: i32 = 85;
    /// The TLS handshake failed (certificate not trusted, wrong name, expired).
    pub const TLS: i32 = 86;
    /// The host name did not resolve.
    pub const DNS: i32 = 87;
    /// The connection was refused.
    pub const REFUSED: i32 = 88;
    /// No answer in `[pairing] request_timeout`.
    pub const TIMEOUT: i32 = 89;
    /// The connection broke another way (reset, closed before an answer).
    pub const NETWORK: i32 = 90;
    /// Central registered the code but has the device `suspended`, `revoked` or
    /// `decommissioned`: it refuses the box until an operator sets it `active`. The
    /// credentials are kept (they work once the device is active again).
    pub const DEVICE_NOT_ACCEPTED: i32 = 91;
}

/// Whether another attempt with the same input can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// No: a person must change something (a fresh code, a fixed file).
    Never,
    /// Yes, but not before this long (429 Retry-After).
    After(Duration),
    /// Yes, with backoff (5xx, network, TLS: the clock may not be set yet at boot).
    Backoff,
}

/// A failed pairing attempt.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    /// Bad input; nothing was sent.
    #[error(transparent)]
    Input(#[from] InputError),
    /// `[upstream] extra_ca_file` cannot be used.
    #[error("The extra CA file {path} cannot be used ({reason}); fix or clear [upstream] extra_ca_file.")]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The key or credentials file could not be handled.
    #[error("{0}")]
    Files(#[source] super::Error),
    /// Central registered the box but the credentials could not be saved.
    #[error("Central accepted the code but the credentials could not be saved ({0}); free space or fix permissions, then ask the operator for a fresh code.")]
    SaveAfterRegister(#[source] super::Error),
    /// 400 "Validation failed".
    #[error("The server rejected the request ({details}); check the device UUID and name, then try again.")]
    RequestRejected {
        /// Field names and messages, never values.
        details: String,
    },
    /// 400 about `publicKey`.
    #[error("The server rejected the device's public key; run `bbedge unpair` to make a new key, then pair again with a fresh code.")]
    KeyRejected,
    /// 422 "Invalid enrollment credentials".
    #[error("The server refused the enrollment code: it is unknown, expired (codes last 15 minutes), already used, or was issued for another device UUID; ask the operator for a fresh code.")]
    CodeRefused,
    /// 429 with Retry-After.
    #[error("Too many pairing attempts: the server asks to wait {} seconds; try again after {retry_at}.", retry_after.as_secs())]
    RateLimited {
        /// Retry-After.
        retry_after: Duration,
        /// The wall-clock time it ends, for people.
        retry_at: String,
    },
    /// 5xx.
    #[error("The server failed to register the device (HTTP {status}); try again in a few minutes, and tell the CivicPress operator if it keeps failing.")]
    ServerError {
        /// The status.
        status: u16,
    },
    /// Anything else.
    #[error("The server gave an unexpected answer ({what}); check the server URL (it must be the CivicPress base URL with the broadcast-box module enabled).")]
    Unexpected {
        /// What was wrong (a status, a missing field).
        what: String,
    },
    /// TLS handshake failure.
    #[error("Could not establish a trusted TLS connection to {host}: {reason}; check the server URL and the box's clock, or set [upstream] extra_ca_file for a private CA.")]
    Tls {
        /// The host.
        host: String,
        /// The certificate problem.
        reason: String,
    },
    /// DNS failure.
    #[error("Could not resolve the host name {host}; check the server URL and the box's network and DNS settings.")]
    Dns {
        /// The host.
        host: String,
    },
    /// Connection refused.
    #[error("The connection to {host} was refused; check the server URL and port, and that CivicPress is running.")]
    Refused {
        /// The host.
        host: String,
    },
    /// Timeout.
    #[error("The server {host} did not answer within {secs} s; check the network and try again.")]
    Timeout {
        /// The host.
        host: String,
        /// The timeout.
        secs: u64,
    },
    /// Other network failure.
    #[error("The connection to {host} failed before the server answered ({reason}); check the network and try again.")]
    Network {
        /// The host.
        host: String,
        /// What broke.
        reason: String,
    },
}

impl ErrorCode for PairError {
    fn code(&self) -> &'static str {
        match self {
            PairError::Input(InputError::Insecure { .. }) => "PAIR_INSECURE_URL",
            PairError::Input(_) => "PAIR_INVALID_INPUT",
            PairError::CaFile { .. } => "PAIR_CA_FILE_INVALID",
            PairError::Files(e) => e.code(),
            PairError::SaveAfterRegister(_) => "PAIR_SAVE_FAILED",
            PairError::RequestRejected { .. } => "PAIR_REQUEST_REJECTED",
            PairError::KeyRejected => "PAIR_KEY_REJECTED",
            PairError::CodeRefused => "PAIR_CODE_REFUSED",
            PairError::RateLimited { .. } => "RATE_LIMIT_EXCEEDED",
            PairError::ServerError { .. } => "PAIR_SERVER_ERROR",
            PairError::Unexpected { .. } => "PAIR_UNEXPECTED_ANSWER",
            PairError::Tls { .. } => "PAIR_TLS_FAILED",
            PairError::Dns { .. } => "PAIR_DNS_FAILED",
            PairError::Refused { .. } => "PAIR_CONNECTION_REFUSED",
            PairError::Timeout { .. } => "PAIR_TIMEOUT",
            PairError::Network { .. } => "PAIR_NETWORK_FAILED",
        }
    }
}

impl PairError {
    /// The `bbedge pair` exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            PairError::Input(InputError::Insecure { .. }) | PairError::CaFile { .. } => {
                exit::CONFIG
            }
            PairError::Input(_) => exit::INVALID_INPUT,
            PairError::Files(_) | PairError::SaveAfterRegister(_) => exit::FILES,
            PairError::RequestRejected { .. } => exit::REQUEST_REJECTED,
            PairError::KeyRejected => exit::KEY_REJECTED,
            PairError::CodeRefused => exit::CODE_REFUSED,
            PairError::RateLimited { .. } => exit::RATE_LIMITED,
            PairError::ServerError { .. } => exit::SERVER_ERROR,
            PairError::Unexpected { .. } => exit::UNEXPECTED,
            PairError::Tls { .. } => exit::TLS,
            PairError::Dns { .. } => exit::DNS,
            PairError::Refused { .. } => exit::REFUSED,
            PairError::Timeout { .. } => exit::TIMEOUT,
            PairError::Network { .. } => exit::NETWORK,
        }
    }

    /// Whether the same attempt may succeed later.
    pub fn retry(&self) -> Retry {
        match self {
            PairError::RateLimited { retry_after, .. } => Retry::After(*retry_after),
            PairError::ServerError { .. }
            | PairError::Tls { .. }
            | PairError::Dns { .. }
            | PairError::Refused { .. }
            | PairError::Timeout { .. }
            | PairError::Network { .. } => Retry::Backoff,
            // A full disk may clear; the key is written before anything is sent.
            PairError::Files(_) => Retry::Backoff,
            PairError::Input(_)
            | PairError::CaFile { .. }
            | PairError::SaveAfterRegister(_)
            | PairError::RequestRejected { .. }
            | PairError::KeyRejected
            | PairError::CodeRefused
            | PairError::Unexpected { .. } => Retry::Never,
        }
    }

    /// Whether central answered in a way that spends the code (or proves it useless):
    /// boot-file pairing then removes the code from the file.
    pub fn code_is_spent(&self) -> bool {
        matches!(
            self,
            PairError::CodeRefused
                | PairError::SaveAfterRegister(_)
                | PairError::RequestRejected { .. }
                | PairError::KeyRejected
        )
    }
}

/// The `after_help` of `bbedge pair`: the exit-code table.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
   0  paired: credentials and key stored, the daemon told
  64  an option is missing or unknown, or a value is invalid (device UUID, code
      format, URL, name); nothing was sent
  74  paired, but this could not be written (stdout closed); the pairing stands
  73  the key or credentials file could not be read or written
  78  refused locally: http:// to a non-loopback host, or a bad [upstream] extra_ca_file
  80  the server rejected a field of the request (400)
  81  the server rejected the public key (400)
  82  the server refused the code (422): ask the operator for a fresh code
  83  too many attempts (429): wait as long as the message says
  84  the server failed (5xx): try again later
  85  unexpected answer (404, redirect, unreadable reply): check the server URL
  86  TLS failure: certificate not trusted, wrong name, expired, or clock wrong
  87  the host name did not resolve (DNS)
  88  the connection was refused
  89  the server did not answer in time
  90  the connection broke before an answer
  91  central accepted the code but has the device suspended, revoked or decommissioned:
      an operator must set it active (or enroll a new device); credentials are kept";
