//! `bbedge run`: load the config (exit 64 if bad), set up logging, bind, serve until a
//! signal, stop within the grace period, exit 0.

use super::output;
use crate::app::{App, Paths};
use crate::cli::{Cli, LogFormatArg};
use crate::config::{Config, Loader, LogFormat};
use crate::error::{exit, ErrorCode};
use crate::signal::fault::{self, Left};
use crate::signal::sim::SimLed;
use crate::telemetry::{self, LogSettings};
use tokio_util::sync::CancellationToken;

/// Runs the daemon; returns the exit code.
pub fn daemon(cli: &Cli) -> i32 {
    let loader = Loader::from_process(cli.config.clone());
    let loaded = match loader.load() {
        Ok(l) => l,
        Err(e) => {
            let left = leave_fault(loader.salvage().as_ref());
            return stopped("invalid configuration", e.code(), &e, exit::USAGE, &left);
        }
    };
    let led_config = loaded.config.clone();
    let format = match cli.log_format {
        Some(LogFormatArg::Auto) => LogFormat::Auto,
        Some(LogFormatArg::Text) => LogFormat::Text,
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Journald) => LogFormat::Journald,
        None => loaded.config.logging.format,
    };
    let output = telemetry::init(&LogSettings {
        level: loaded.config.logging.level.clone(),
        format,
        verbose: cli.verbose,
    });
    // The worker count is always set here, so tokio never reads TOKIO_WORKER_THREADS:
    // it panics on a value that is not a positive number or not UTF-8.
    let workers = match loaded.config.daemon.worker_threads {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        n => usize::try_from(n).unwrap_or(1),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .thread_name("bbedge")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return super::fail("cannot start the async runtime", "RUNTIME", &e, exit::OS),
    };
    runtime.block_on(async move {
        tracing::info!(
            operation = "startup",
            version = crate::version::VERSION,
            git = crate::version::GIT_HASH,
            target = crate::version::TARGET,
            worker_threads = workers,
            log_output = ?output,
            config_layers = ?loaded.layers.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "bbedge starting"
        );
        let checker = crate::store::Checker::current_exe(&loaded.config.store);
        let bound = match checker {
            Ok(c) => App::bind_checked(loaded, c).await,
            Err(e) => {
                tracing::warn!(operation = "store.check", error = %e, "cannot find the bbedge executable; opening the database without the child check");
                App::bind(loaded).await
            }
        };
        let app = match bound {
            Ok(app) => app,
            Err(e) => {
                tracing::error!(operation = "startup", code = e.code(), error = %e, "cannot start");
                let code = e.exit_code();
                if !GIVES_UP.contains(&code) {
                    return super::fail("cannot start", e.code(), &e, code);
                }
                let left = leave_fault(Some(&led_config));
                tracing::error!(
                    operation = "startup",
                    code = e.code(),
                    exit_code = code,
                    led = %left,
                    "stopped for good: restarting cannot fix this; fix the configuration and start bbedge again"
                );
                return stopped("cannot start", e.code(), &e, code, &left);
            }
        };
        let root = CancellationToken::new();
        if let Err(e) = crate::shutdown::watch(root.clone()) {
            return super::fail("cannot install signal handlers", "SIGNALS", &e, exit::OS);
        }
        match app.run(root).await {
            Ok(()) => exit::OK,
            Err(e) => {
                tracing::error!(operation = "shutdown", code = e.code(), error = %e, "final flush failed");
                super::fail("final flush failed", e.code(), &e, exit::FAILURE)
            }
        }
    })
}

/// Exit codes the unit does not restart on (`RestartPreventExitStatus=`): only a person
/// can fix what they report. tests/systemd.rs keeps the unit equal to this.
pub const GIVES_UP: [i32; 2] = [exit::USAGE, exit::CONFIG];

/// Leaves the stopped pattern on the LED `config` names (the salvaged one when the
/// configuration is broken), so a person at the box sees why it is not running.
fn leave_fault(config: Option<&Config>) -> Left {
    match config {
        Some(c) => {
            let paths = Paths::resolve(c);
            fault::leave(&c.status_led, Some(&paths.state_dir), &SimLed::new())
        }
        None => Left::Nothing("no LED settings could be read".into()),
    }
}

/// The one line on stderr (the journal under systemd) when the daemon gives up: what
/// is wrong, that it will not be restarted, and what the LED shows.
fn stopped(
    what: &str,
    code: &str,
    err: &(dyn std::error::Error + 'static),
    exit_code: i32,
    left: &Left,
) -> i32 {
    output::err(format_args!(
        "bbedge: {what} [{code}]: {}; stopped with exit {exit_code}, which systemd does not restart: fix it and start bbedge again; {left}",
        crate::error::chain(err)
    ));
    exit_code
}
