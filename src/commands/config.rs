//! `bbedge config check|default`.

use super::output::out_or_ioerr;
use crate::config::{Loader, DEFAULT_TOML};
use crate::error::{exit, ErrorCode};
use std::path::PathBuf;

/// Prints the built-in configuration.
pub fn print_default() -> i32 {
    out_or_ioerr("config default", DEFAULT_TOML, exit::OK)
}

/// Loads and checks a configuration the way `run` would, and says which layers it read.
pub fn check(file: Option<PathBuf>) -> i32 {
    match Loader::from_process(file).load() {
        Ok(loaded) => {
            let layers: Vec<String> = loaded.layers.iter().map(ToString::to_string).collect();
            out_or_ioerr(
                "config check",
                format_args!("config ok: {}\n", layers.join(" + ")),
                exit::OK,
            )
        }
        Err(e) => super::fail("invalid configuration", e.code(), &e, exit::USAGE),
    }
}
