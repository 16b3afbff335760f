//! The subcommands' bodies. Each returns a process exit code and prints one clear line
//! on failure.

pub mod config;
pub mod discover;
pub mod led;
pub mod output;
pub mod pair;
pub mod run;
pub mod status;
pub mod store;
pub mod token;

use crate::error::exit;

/// For subcommands this build does not have yet.
pub fn unavailable(name: &str) -> i32 {
    output::err(format_args!("bbedge {name}: not available in this build"));
    exit::UNAVAILABLE
}

/// Prints an error with its code and returns `exit_code`.
pub fn fail(
    what: &str,
    code: &str,
    err: &(dyn std::error::Error + 'static),
    exit_code: i32,
) -> i32 {
    output::err(format_args!(
        "bbedge: {what} [{code}]: {}",
        crate::error::chain(err)
    ));
    exit_code
}
