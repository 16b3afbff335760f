//! `bbedge store check [path]`: opens the database and reads it to the end, printing
//! one JSON line. The daemon runs it as a child before opening the store (see
//! [`crate::store::check`]): a panic in sled ends this short-lived process, not the
//! daemon. Exit 0: sound; 65: corrupt; 75: another process holds it; 77: not
//! writable; 74: another I/O error; 64: bad configuration.

use crate::app::Paths;
use crate::cli::{Cli, StoreCommand};
use crate::config::Loader;
use crate::error::{exit, ErrorCode};
use crate::store::check;

/// Runs a `bbedge store …` subcommand; returns the exit code.
pub fn run(cli: &Cli, cmd: &StoreCommand) -> i32 {
    match cmd {
        StoreCommand::Check { path } => {
            let (path, cache) = match path {
                // The daemon passes the path: no config needed (and none re-read).
                Some(p) => (p.clone(), 1 << 20),
                None => match Loader::from_process(cli.config.clone()).load() {
                    Ok(l) => (Paths::resolve(&l.config).store, l.config.store.cache_bytes),
                    Err(e) => {
                        return super::fail("invalid configuration", e.code(), &e, exit::USAGE)
                    }
                },
            };
            if !path.is_dir() {
                super::output::err(format_args!(
                    "bbedge store check: {} is not a database directory",
                    path.display()
                ));
                return exit::USAGE;
            }
            let result = check::verify(&path, cache);
            let code = match &result {
                Ok(_) => exit::OK,
                Err(e) => check::exit_code(e),
            };
            // A report nobody can read is exit 74, which the daemon takes as "could not
            // check" (start fails and is retried), never as "corrupt".
            super::output::out_or_ioerr(
                "store check",
                format_args!("{}\n", check::report(&path, &result)),
                code,
            )
        }
    }
}
