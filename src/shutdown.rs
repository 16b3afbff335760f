//! OS signals: SIGTERM (systemd stop) and SIGINT (Ctrl-C) both start the graceful path
//! by cancelling the root token; a second signal exits at once.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Exit code for a forced exit on the second signal.
pub const FORCED_EXIT: i32 = 130;

/// Spawns the signal watcher. Returns an error when the handlers cannot be installed.
pub fn watch(root: CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(
            operation = "shutdown",
            signal = name,
            "shutting down; send the signal again to exit at once"
        );
        root.cancel();
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::warn!(
            operation = "shutdown",
            signal = name,
            "second signal: exiting now"
        );
        std::process::exit(FORCED_EXIT);
    });
    Ok(())
}
