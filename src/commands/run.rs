//! `bbedge run`: load the config (exit 64 if bad), set up logging, bind, serve until a
//! signal, stop within the grace period, exit 0.

use crate::app::App;
use crate::cli::{Cli, LogFormatArg};
use crate::config::{Loader, LogFormat};
use crate::error::{exit, ErrorCode};
use crate::telemetry::{self, LogSettings};
use tokio_util::sync::CancellationToken;

/// Runs the daemon; returns the exit code.
pub fn daemon(cli: &Cli) -> i32 {
    let loaded = match Loader::from_process(cli.config.clone()).load() {
        Ok(l) => l,
        Err(e) => return super::fail("invalid configuration", e.code(), &e, exit::USAGE),
    };
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
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
                return super::fail("cannot start", e.code(), &e, e.exit_code());
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
