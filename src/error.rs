//! What every error enum in bbedge shares: a stable string code.
//!
//! Each boundary (config, store, realtime, upstream, pairing, signal) has its own
//! `thiserror` enum. Peers and operators see the code; logs get the whole chain.

/// An error with a stable, machine-readable code (`CONFIG_UNKNOWN_KEY`, `AUTH_FAILED`, …).
///
/// Codes never change once released: dashboards, tests and scripts match on them.
pub trait ErrorCode {
    /// The stable code of this error.
    fn code(&self) -> &'static str;
}

/// Exit codes of the `bbedge` binary (sysexits.h where one fits). The table people read
/// is in README.md ("Exit codes"); the unit file does not restart on [`exit::USAGE`] and
/// [`exit::CONFIG`], which only a person can fix.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// Generic failure at run time.
    pub const FAILURE: i32 = 1;
    /// Bad command line, configuration or `BBEDGE_*` variable (`EX_USAGE`).
    pub const USAGE: i32 = 64;
    /// A needed service (the daemon, the server) is unavailable (`EX_UNAVAILABLE`).
    pub const UNAVAILABLE: i32 = 69;
    /// An OS-level error: a port in use, an unwritable state directory (`EX_OSERR`).
    pub const OS: i32 = 71;
    /// The output could not be written (stdout closed or full) (`EX_IOERR`).
    pub const IOERR: i32 = 74;
    /// A temporary failure; trying again later may work (`EX_TEMPFAIL`).
    pub const TEMPFAIL: i32 = 75;
    /// Permission denied (`EX_NOPERM`).
    pub const NOPERM: i32 = 77;
    /// A configured file is unusable: the TLS certificate or key (`EX_CONFIG`).
    pub const CONFIG: i32 = 78;
}

/// Formats an error and each `source()` below it as one line: `a: caused by b: caused by c`.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}
