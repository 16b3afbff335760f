//! Pairing's part of the daemon, built in `App::bind` and started in `App::run`: the
//! "pairing" `/status` section, the token metrics, the `pairing.report` control op
//! (the CLI reports failed attempts), the expiry monitor and boot-file pairing.

use super::activation::{self, ActivationMonitor};
use super::boot::{BootJob, BootPairing};
use super::expiry::{assess, ExpiryMonitor, SharedClock, TokenState};
use super::register::Settings;
use super::status::{self, BootState, LastError, Report};
use super::CredentialStore;
use crate::app::{Paths, Supervisor};
use crate::config::Config;
use crate::control::{ControlError, Handlers};
use crate::health::metrics::{Metrics, OptionalGauge};
use crate::health::StatusBoard;
use crate::signal::StatusHub;
use prometheus_client::metrics::gauge::Gauge;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// Longest message `pairing.report` keeps.
pub const MAX_REPORT_CHARS: usize = 500;

/// Pairing in the daemon.
#[derive(Debug)]
pub struct Service {
    monitor: ExpiryMonitor,
    boot: Option<BootJob>,
    report: Report,
    creds: CredentialStore,
    clock: SharedClock,
    warn: Duration,
    activation: ActivationMonitor,
    hub: StatusHub,
}

impl Service {
    /// Builds the parts; nothing runs yet.
    pub fn new(
        config: &Config,
        paths: &Paths,
        creds: CredentialStore,
        hub: StatusHub,
        clock: SharedClock,
    ) -> Self {
        let warn = Duration::from_secs(config.upstream.token_warn_hours * 3600);
        let report = Report::default();
        let monitor = ExpiryMonitor::new(
            creds.clone(),
            hub.clone(),
            report.clone(),
            clock.clone(),
            warn,
        );
        let activation = ActivationMonitor {
            creds: creds.clone(),
            hub: hub.clone(),
            state_dir: paths.state_dir.clone(),
            shared: activation::Shared::default(),
        };
        activation.check();
        let status_hub = hub.clone();
        let boot = if config.pairing.boot_file.is_empty() {
            report.set_boot(BootState::new("", "disabled"));
            None
        } else {
            BootPairing {
                path: PathBuf::from(&config.pairing.boot_file),
                state_dir: paths.state_dir.clone(),
                settings: Settings::new(config, paths),
                device: config.device.clone(),
                retry_initial: Duration::from_secs(config.pairing.retry_initial),
                retry_max: Duration::from_secs(config.pairing.retry_max),
                creds: creds.clone(),
                hub,
                report: report.clone(),
            }
            .prepare()
        };
        Self {
            monitor,
            boot,
            report,
            creds,
            clock,
            warn,
            activation,
            hub: status_hub,
        }
    }

    /// What `/status` shows and the expiry monitor writes.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// The expiry monitor (tests call `check_now`).
    pub fn monitor(&self) -> &ExpiryMonitor {
        &self.monitor
    }

    /// Registers the `/status` section, the metrics and the control op.
    pub fn register(&self, board: &StatusBoard, metrics: &mut Metrics, control: &mut Handlers) {
        let view = status::View {
            creds: self.creds.clone(),
            report: self.report.clone(),
            clock: self.clock.clone(),
            warn: self.warn,
            hub: self.hub.clone(),
            activation: self.activation.shared.clone(),
        };
        board.register("pairing", Box::new(move || status::section(&view)));

        let expiring = Gauge::<i64>::default();
        let paired = Gauge::<i64>::default();
        let (creds, clock) = (self.creds.clone(), self.clock.clone());
        let reg = metrics.registry();
        reg.register_collector(Box::new(OptionalGauge::new(
            "token_expiry_timestamp_seconds",
            "When the CivicPress device token expires, Unix seconds (no sample while unpaired or unreadable)",
            Box::new(move || {
                let now = clock.now();
                let (_, left) = assess(creds.current().as_ref(), now, Duration::ZERO);
                left.map(|s| now.unix_timestamp().saturating_add(s))
            }),
        )));
        reg.register(
            "token_expiring",
            "1 from [upstream] token_warn_hours before the token expires, and after",
            expiring.clone(),
        );
        reg.register("paired", "1 when credentials are stored", paired.clone());
        let (creds, clock, warn) = (self.creds.clone(), self.clock.clone(), self.warn);
        metrics.on_scrape(Box::new(move || {
            let current = creds.current();
            let (state, _) = assess(current.as_ref(), clock.now(), warn);
            expiring.set(i64::from(matches!(
                state,
                TokenState::Expiring | TokenState::Expired
            )));
            paired.set(i64::from(current.is_some()));
        }));

        let report = self.report.clone();
        control.register("pairing.report", move |args: Value| {
            let report = report.clone();
            async move {
                let field = |k: &str| {
                    args.get(k)
                        .and_then(Value::as_str)
                        .map(|s| s.chars().take(MAX_REPORT_CHARS).collect::<String>())
                        .ok_or_else(|| ControlError::BadRequest(format!("missing `{k}`")))
                };
                report.set_error(LastError {
                    code: field("code")?,
                    message: field("message")?,
                    at: crate::protocol::now_rfc3339(),
                    source: "cli",
                });
                Ok(json!({"recorded": true}))
            }
        });
    }

    /// Starts the expiry monitor, then boot-file pairing (when a boot file is configured).
    pub fn spawn(self, tasks: &mut Supervisor) {
        let monitor = self.monitor;
        tasks.spawn("pairing.expiry", move |token| monitor.run(token));
        let activation = self.activation;
        tasks.spawn("pairing.activation", move |token| activation.run(token));
        if let Some(boot) = self.boot {
            tasks.spawn("pairing.boot", move |token| boot.run(token));
        }
    }
}
