//! Writing to stdout and stderr without panicking.
//!
//! `println!` panics when stdout is gone (`bbedge token list | head -0`: EPIPE, Rust
//! ignores SIGPIPE) or full (ENOSPC); under `panic = "abort"` that is exit 134 after the
//! work was done. The commands print through [`out`] instead, which returns the error,
//! and turn it into exit 74 (`EX_IOERR`) with [`write_failed`]. Messages for people go
//! through [`err`], which drops what cannot be written: there is nowhere left to say it.

use crate::error::exit;
use std::fmt;
use std::io::Write;

/// Writes `text` to stdout at once and flushes it; the error if either fails.
pub fn out(text: impl fmt::Display) -> std::io::Result<()> {
    let text = text.to_string();
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// Writes one line to stderr; a closed or full stderr is ignored.
pub fn err(line: impl fmt::Display) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{line}");
}

/// Says (on stderr, if it can) that `what`'s output could not be written; returns 74.
pub fn write_failed(what: &str, e: &std::io::Error) -> i32 {
    err(format_args!(
        "bbedge {what}: cannot write the output to stdout [OUTPUT_FAILED]: {e}"
    ));
    exit::IOERR
}

/// [`out`], then the exit code: `ok` when written, 74 when not.
pub fn out_or_ioerr(what: &str, text: impl fmt::Display, ok: i32) -> i32 {
    match out(text) {
        Ok(()) => ok,
        Err(e) => write_failed(what, &e),
    }
}
