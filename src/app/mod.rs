//! The composition root: builds every service from the config, binds, runs, and stops
//! them in reverse order.
//!
//! [`App::bind`] opens the store and binds every listener (so a port in use fails before
//! anything starts); [`App::run`] starts the tasks in this order and stops them in
//! reverse when the root token is cancelled:
//!
//! 1. `health`: the HTTP operations surface.
//! 2. `control`: the local control socket for `bbedge token|pair|led` commands.
//! 3. `status`: follows the device state into systemd's STATUS= line and the log.
//! 4. `watchdog`: systemd's watchdog, when `WatchdogSec` is set.
//! 5. `upstream`: the link to central (idle until paired).
//!
//! Then the store is flushed and the process exits 0.

mod paths;
mod supervisor;

pub use paths::Paths;
pub use supervisor::Supervisor;

use crate::bus::Bus;
use crate::config::Loaded;
use crate::control;
use crate::error::{exit, ErrorCode};
use crate::health::{self, metrics::Metrics, Readiness, StatusBoard};
use crate::pairing::CredentialStore;
use crate::relay;
use crate::signal::StatusHub;
use crate::store::{self, Store};
use crate::upstream::{self, Upstream};
use prometheus_client::metrics::gauge::Gauge;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The control socket could not be bound.
    #[error("cannot create the control socket {path}: {source}")]
    Control {
        /// The socket path.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr} for {what}: {source}; {hint}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
        /// How to fix it.
        hint: String,
    },
}

impl ErrorCode for StartError {
    fn code(&self) -> &'static str {
        match self {
            StartError::Store(e) => e.code(),
            StartError::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse => {
                "ADDRESS_IN_USE"
            }
            StartError::Bind { .. } => "BIND_FAILED",
            StartError::Control { source, .. }
                if source.kind() == std::io::ErrorKind::AddrInUse =>
            {
                "ALREADY_RUNNING"
            }
            StartError::Control { .. } => "CONTROL_SOCKET_FAILED",
        }
    }
}

impl StartError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::Store(store::Error::Unwritable { .. }) => exit::NOPERM,
            StartError::Store(_) => exit::OS,
            StartError::Bind { .. } | StartError::Control { .. } => exit::OS,
        }
    }
}

/// Everything built and bound, not yet running.
pub struct App {
    loaded: Loaded,
    paths: Paths,
    store: Store,
    quarantine: Option<store::open::Quarantine>,
    hub: StatusHub,
    bus: Bus,
    readiness: Readiness,
    board: StatusBoard,
    metrics: Metrics,
    health: Option<health::Bound>,
    control_socket: control::Bound,
    control: control::Handlers,
    credentials: CredentialStore,
    started: Instant,
    upstream: Upstream,
    /// The local room's half of the relay seam; the rooms service takes it in `bind`.
    /// Dropped unused in `run`, so central's commands get `AGENT_NOT_CONNECTED`.
    room_side: Option<relay::RoomSide>,
}

impl App {
    /// Opens the store and binds every listener.
    pub async fn bind(loaded: Loaded) -> Result<App, StartError> {
        let started = Instant::now();
        let config = &loaded.config;
        let paths = Paths::resolve(config);
        let hub = StatusHub::new();
        let readiness = Readiness::default();
        readiness.block("startup", "services are starting");

        let opened = store::open(&paths.store, config.store.cache_bytes)?;
        if opened.quarantined.is_some() {
            hub.update(|f| f.storage_fault = true);
        }

        let health = if config.health.enabled {
            let addr = SocketAddr::new(config.health.host, config.health.port);
            Some(
                health::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind {
                        what: "the health endpoint",
                        addr,
                        hint: bind_hint(&source, "[health] port"),
                        source,
                    })?,
            )
        } else {
            None
        };

        let socket = control::socket_path(&paths.state_dir);
        let control_socket =
            control::Bound::bind(&socket).map_err(|source| StartError::Control {
                path: socket.clone(),
                source,
            })?;

        let (credentials, creds_err) = CredentialStore::open(paths.credentials.clone());
        if let Some(e) = creds_err {
            tracing::error!(operation = "pairing.load", code = e.code(), error = %e, "credentials unreadable; running unpaired");
        }
        hub.update(|f| f.paired = credentials.current().is_some());

        // === upstream: the link to central, with its outbox opened here so a store
        // problem fails start-up rather than the first frame.
        let (upstream_side, room_side) = relay::channel();
        let upstream = Upstream::new(upstream::Parts {
            config: config.upstream.clone(),
            store: opened.store.clone(),
            credentials: credentials.clone(),
            key_path: paths.key.clone(),
            hub: hub.clone(),
            relay: upstream_side,
            jitter_seed: None,
        })?;
        // === end upstream

        let mut app = App {
            paths,
            store: opened.store,
            quarantine: opened.quarantined,
            hub,
            bus: Bus::new(),
            readiness,
            board: StatusBoard::default(),
            metrics: Metrics::new(),
            health,
            control_socket,
            control: control::Handlers::default(),
            credentials,
            started,
            loaded,
            upstream,
            room_side: Some(room_side),
        };
        // === upstream: /status section and metrics, registered before health starts.
        app.board
            .register("upstream", app.upstream.status_section());
        app.upstream.register_metrics(&mut app.metrics);
        // === end upstream
        app.register_core_metrics();
        app.register_pairing_reload();
        Ok(app)
    }

    /// The health endpoint's address, if it is enabled.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health.as_ref().map(|h| h.local_addr())
    }

    /// The status hub (tests and the composition root set facts through it).
    pub fn hub(&self) -> &StatusHub {
        &self.hub
    }

    /// The hook-event bus.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// The control operations the daemon answers; services register theirs in `bind`.
    pub fn control(&mut self) -> &mut control::Handlers {
        &mut self.control
    }

    /// Resolved paths.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The credentials the upstream link and `/status` read.
    pub fn credentials(&self) -> &CredentialStore {
        &self.credentials
    }

    /// `pairing.reload`: `bbedge pair|unpair` ask the daemon to re-read the credentials.
    fn register_pairing_reload(&mut self) {
        let creds = self.credentials.clone();
        let hub = self.hub.clone();
        self.control.register("pairing.reload", move |_| {
            let creds = creds.clone();
            let hub = hub.clone();
            async move {
                let now = creds
                    .reload()
                    .map_err(|e| control::ControlError::failed(&e, e.code()))?;
                hub.update(|f| {
                    f.paired = now.is_some();
                    if now.is_some() {
                        f.needs_pairing = false;
                    }
                });
                Ok(serde_json::json!({ "paired": now.is_some() }))
            }
        });
    }

    fn register_core_metrics(&mut self) {
        let rss = Gauge::<i64>::default();
        let store_bytes = Gauge::<i64>::default();
        let uptime = Gauge::<i64>::default();
        let quarantined = Gauge::<i64>::default();
        quarantined.set(self.quarantine.is_some() as i64);
        let reg = self.metrics.registry();
        reg.register(
            "process_resident_memory_bytes",
            "Resident set size",
            rss.clone(),
        );
        reg.register(
            "store_size_bytes",
            "Bytes the sled database takes on disk",
            store_bytes.clone(),
        );
        reg.register(
            "uptime_seconds",
            "Seconds since the daemon started",
            uptime.clone(),
        );
        reg.register(
            "store_quarantined",
            "1 when a corrupt database was moved aside at start",
            quarantined,
        );
        let store = self.store.clone();
        let started = self.started;
        self.metrics.on_scrape(Box::new(move || {
            rss.set(health::sysinfo::rss_bytes().unwrap_or(0) as i64);
            store_bytes.set(store.size_on_disk() as i64);
            uptime.set(started.elapsed().as_secs() as i64);
        }));
    }

    /// Runs until `shutdown` is cancelled, then stops everything in reverse order within
    /// `[daemon] shutdown_grace` and flushes the store.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), store::Error> {
        let App {
            loaded,
            store,
            quarantine,
            hub,
            readiness,
            board,
            metrics,
            health,
            control_socket,
            control,
            started,
            upstream,
            room_side,
            ..
        } = self;
        // No local room took its half of the seam: drop it so commands fail fast.
        drop(room_side);
        let config = loaded.config;
        let grace = Duration::from_secs(config.daemon.shutdown_grace);
        let mut tasks = Supervisor::new(shutdown.clone());

        let health_addr = health.as_ref().map(|h| h.local_addr().to_string());
        if let Some(bound) = health {
            let ctx = health::routes::Context {
                readiness: readiness.clone(),
                board,
                metrics: Arc::new(metrics),
                hub: hub.clone(),
                store: store.clone(),
                quarantine: quarantine
                    .as_ref()
                    .and_then(|q| serde_json::to_value(q).ok()),
                config_summary: serde_json::to_value(&config).unwrap_or_default(),
                started,
            };
            tasks.spawn("health", move |token| bound.serve(ctx, token));
        }
        tasks.spawn("control", move |token| control_socket.serve(control, token));
        let status_hub = hub.clone();
        tasks.spawn("status", move |token| follow_state(status_hub, token));
        if let Some(interval) = crate::systemd::watchdog_interval() {
            tasks.spawn("watchdog", move |token| {
                crate::systemd::watchdog(interval, token)
            });
        }

        // === upstream: started last, stopped first (closes the socket cleanly).
        tasks.spawn("upstream", move |token| upstream.run(token));
        // === end upstream

        hub.update(|f| f.booting = false);
        readiness.clear("startup");
        crate::systemd::ready();
        tracing::info!(
            operation = "startup",
            state = %hub.state(),
            health_addr = health_addr.as_deref().unwrap_or("disabled"),
            "bbedge ready"
        );

        shutdown.cancelled().await;
        hub.update(|f| f.shutting_down = true);
        readiness.block("shutdown", "shutting down");
        crate::systemd::stopping();
        let overran = tasks.stop_all(grace).await;
        let flushed = store.flush().await;
        tracing::info!(
            operation = "shutdown",
            overran = ?overran,
            "bbedge stopped"
        );
        flushed.map(|_| ())
    }
}

/// Logs each state change and mirrors it into systemd's STATUS= line.
async fn follow_state(hub: StatusHub, token: CancellationToken) {
    let mut rx = hub.subscribe();
    let mut last = None;
    loop {
        let state = hub.state();
        if last != Some(state) {
            tracing::info!(operation = "state", state = %state, "device state changed");
            crate::systemd::status(&format!("state: {state}"));
            last = Some(state);
        }
        tokio::select! {
            _ = token.cancelled() => return,
            r = rx.changed() => if r.is_err() { return },
        }
    }
}

fn bind_hint(e: &std::io::Error, key: &str) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            format!("another program uses this port; stop it or choose another {key}")
        }
        std::io::ErrorKind::PermissionDenied => {
            format!("ports below 1024 need privileges; choose a {key} of 1024 or more")
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "this host has no such address; check the host setting".to_owned()
        }
        _ => format!("check {key} and the host setting"),
    }
}
