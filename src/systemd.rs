//! systemd integration (`Type=notify`): READY=1, STATUS=, STOPPING=1 and the watchdog.
//!
//! Every call is a no-op when `NOTIFY_SOCKET` is unset (not run by systemd), so the
//! daemon behaves the same on a laptop.

use sd_notify::NotifyState;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Tells systemd the listeners are bound and the daemon serves.
pub fn ready() {
    notify(&[NotifyState::Ready]);
}

/// Sets the one-line status `systemctl status` shows.
pub fn status(line: &str) {
    notify(&[NotifyState::Status(line)]);
}

/// Tells systemd shutdown has begun.
pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!(operation = "systemd.notify", error = %e, "sd_notify failed");
    }
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`), halved, if any.
///
/// Follows libsystemd's `sd_watchdog_enabled`: `WATCHDOG_PID`, when set, must be ours
/// (the variables are inherited by children that must not ping for us).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Pings the watchdog at half of `WatchdogSec` for as long as the runtime keeps
/// scheduling this task. It runs on the same runtime as everything else, so a stuck
/// event loop stops the pings and lets systemd restart the daemon.
pub async fn watchdog(interval: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => notify(&[NotifyState::Watchdog]),
        }
    }
}
