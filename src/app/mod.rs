//! The composition root: builds every service from the config, binds, runs, and stops
//! them in reverse order.
//!
//! [`App::bind`] opens the store and binds every listener (so a port in use fails before
//! anything starts); [`App::run`] starts the tasks in this order and stops them in
//! reverse when the root token is cancelled:
//!
//! 0. `led`: the status LED (first, so it shows `booting`; stopped last, so it shows
//!    `shutting_down` while the others stop, then is given back).
//! 1. `health`: the HTTP operations surface.
//! 2. `control`: the local control socket for `bbedge token|pair|led` commands.
//! 2. `store`: reports failed store writes once per interval, brings a failing store
//!    back, and keeps the `storage_fault` fact.
//! 3. `status`: follows the device state into systemd's STATUS= line and the log.
//! 4. `watchdog`: systemd's watchdog, when `WatchdogSec` is set.
//! 5. `rooms`: the local device rooms (stopped first: clients get 1001, snapshots saved).
//! 5. `discovery`: the mDNS advertisement of the rooms, when `[discovery] enabled`.
//! 5. `web`: the box's web page, when `[web] enabled` (docs/WEB.md).
//! 6. `pairing.expiry`: the token's warning window and `needs_pairing`.
//! 7. `pairing.boot`: pairing from the boot-partition file, when there is one.
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
use crate::pairing::{self, CredentialStore};
use crate::signal::{self, LedHandle, LedTask, StatusHub};
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
    /// TLS for the local rooms cannot be set up.
    #[error(transparent)]
    RoomTls(#[from] crate::room::tls::TlsError),
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
            StartError::RoomTls(_) => "REALTIME_TLS",
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
            StartError::RoomTls(e) => e.exit_code(),
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
    // --- local rooms (issue 3) ---
    /// The local device rooms, when `[realtime] enabled`.
    rooms: Option<crate::room::Bound>,
    /// The upstream's half of the relay seam, for the upstream link to take.
    upstream_side: Option<crate::relay::UpstreamSide>,
    // --- end local rooms ---
    pairing: pairing::Service,
    started: Instant,
    led: LedHandle,
    led_task: LedTask,
    /// The link to central, when `[upstream] enabled` (idle until paired).
    upstream: Option<Upstream>,
    /// The web page's listener, when `[web] enabled`.
    web: Option<crate::web::Bound>,
}

impl App {
    /// Opens the store in this process only and binds every listener: for tests and
    /// library use, where the current executable is not `bbedge` and cannot run the
    /// child check. The daemon uses [`App::bind_checked`].
    pub async fn bind(loaded: Loaded) -> Result<App, StartError> {
        Self::bind_with(loaded, None).await
    }

    /// Like [`App::bind`], but the database is first verified by `checker` in a child
    /// process (`bbedge store check`), so a database that makes sled panic is
    /// quarantined instead of ending the daemon.
    pub async fn bind_checked(loaded: Loaded, checker: store::Checker) -> Result<App, StartError> {
        Self::bind_with(loaded, Some(checker)).await
    }

    async fn bind_with(loaded: Loaded, checker: Option<store::Checker>) -> Result<App, StartError> {
        let started = Instant::now();
        let config = &loaded.config;
        let paths = Paths::resolve(config);
        let hub = StatusHub::new();
        let bus = Bus::new();
        let readiness = Readiness::default();
        readiness.block("startup", "services are starting");

        // === storage (issue 11): private state whatever the umask; the store's faults.
        crate::fsutil::private_umask();
        if let Err(e) = crate::fsutil::private_dir(&paths.state_dir) {
            tracing::warn!(operation = "startup", path = %paths.state_dir.display(), error = %e, "cannot make the state directory private (0700)");
        }
        let (path, cache) = (paths.store.clone(), config.store.cache_bytes);
        let opened = tokio::task::spawn_blocking(move || match checker {
            Some(c) => store::open_checked(&path, cache, c),
            None => store::open(&path, cache),
        })
        .await
        .map_err(|e| store::Error::Check(format!("the open task failed: {e}")))??;
        if opened.quarantined.is_some() || opened.store.health().is_faulty() {
            hub.update(|f| f.storage_fault = true);
        }
        // Tokens out of sled's reach from the first start of this version on.
        crate::room::tokens::migrate(&opened.store);
        // === end storage

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

        // --- local rooms (issue 3): bound here so a port in use fails before anything runs.
        let (upstream_side, room_side) = crate::relay::channel();
        let rooms = if config.realtime.enabled {
            let r = &config.realtime;
            let bound = crate::room::bind(
                r,
                &config.device.uuid,
                credentials.clone(),
                &paths.state_dir,
                opened.store.clone(),
                bus.clone(),
                hub.clone(),
                room_side,
            )
            .await
            .map_err(|e| match e {
                crate::room::StartError::Bind(source, addr) => StartError::Bind {
                    what: "the local rooms ([realtime])",
                    addr,
                    hint: bind_hint(&source, "[realtime] port"),
                    source,
                },
                crate::room::StartError::Tls(e) => StartError::RoomTls(e),
                crate::room::StartError::Store(e) => StartError::Store(e),
            })?;
            Some(bound)
        } else {
            None
        };
        // --- end local rooms ---
        // === web page (issue 13): after the rooms, whose self-signed certificate it
        // shares when [realtime.tls] is on.
        let web = if config.web.enabled {
            let addr = SocketAddr::new(config.web.host, config.web.port);
            // The rooms' own acceptor (their certificate, loaded once); built here only
            // when the rooms are off.
            let tls = match &rooms {
                Some(r) => r.tls_acceptor(),
                None => crate::room::tls::acceptor(&config.realtime.tls, &paths.state_dir)?,
            };
            Some(
                crate::web::bind(addr, tls)
                    .await
                    .map_err(|source| StartError::Bind {
                        what: "the web page ([web])",
                        addr,
                        hint: bind_hint(&source, "[web] port"),
                        source,
                    })?,
            )
        } else {
            None
        };
        // === end web page
        // === status LED (issue 5) ===
        // Opened after every listener is bound (a failed bind leaves the LED untouched);
        // `auto` logs its choice here. Never fails: falls back to the simulated LED.
        let (led, led_task) =
            signal::build(&config.status_led, hub.clone(), Some(&paths.state_dir));
        // --- pairing: /status "pairing", token metrics, `pairing.report`, the expiry
        // monitor and boot-file pairing (registered below, spawned in `run`).
        let pairing = pairing::Service::new(
            config,
            &paths,
            credentials.clone(),
            hub.clone(),
            std::sync::Arc::new(pairing::expiry::SystemClock),
        );
        // === upstream: the link to central, with its outbox opened here so a store
        // problem fails start-up rather than the first frame.
        // It takes the upstream half of the relay seam the rooms were given the other
        // half of; with the upstream disabled that half stays for `take_upstream_side`.
        let (upstream, upstream_side) = if config.upstream.enabled {
            let link = Upstream::new(upstream::Parts {
                config: config.upstream.clone(),
                store: opened.store.clone(),
                credentials: credentials.clone(),
                key_path: paths.key.clone(),
                hub: hub.clone(),
                relay: upstream_side,
                led: led.clone(),
                jitter_seed: None,
            })?;
            (Some(link), None)
        } else {
            (None, Some(upstream_side))
        };
        // === end upstream

        let mut app = App {
            rooms,
            upstream_side,
            paths,
            store: opened.store,
            quarantine: opened.quarantined,
            hub,
            bus,
            readiness,
            board: StatusBoard::default(),
            metrics: Metrics::new(),
            health,
            control_socket,
            control: control::Handlers::default(),
            credentials,
            pairing,
            started,
            loaded,
            led,
            led_task,
            upstream,
            web,
        };
        // === upstream: /status section and metrics, registered before health starts.
        if let Some(link) = &app.upstream {
            app.board.register("upstream", link.status_section());
            link.register_metrics(&mut app.metrics);
        }
        // === end upstream
        app.register_core_metrics();
        app.register_pairing_reload();
        // === status LED (issue 5): /status "led" section and bbedge_led_* metrics ===
        let led = app.led.clone();
        app.board
            .register("led", Box::new(move || led.status_json()));
        signal::metrics::register(&mut app.metrics, app.led.clone());
        signal::control::register(&mut app.control, &app.led);
        app.register_token_control();
        app.pairing
            .register(&app.board, &mut app.metrics, &mut app.control);
        Ok(app)
    }

    /// The health endpoint's address, if it is enabled.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health.as_ref().map(health::Bound::local_addr)
    }

    /// The web page's address, if it is enabled.
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.web.as_ref().map(super::web::server::Bound::local_addr)
    }

    /// The local rooms' address, if they are enabled.
    pub fn realtime_addr(&self) -> Option<SocketAddr> {
        self.rooms.as_ref().and_then(crate::room::Bound::local_addr)
    }

    /// The local rooms' shared service (token revocation, tests).
    pub fn rooms(&self) -> Option<std::sync::Arc<crate::room::Service>> {
        self.rooms.as_ref().map(crate::room::Bound::service)
    }

    /// The upstream's half of the relay seam; the upstream link takes it once.
    pub fn take_upstream_side(&mut self) -> Option<crate::relay::UpstreamSide> {
        self.upstream_side.take()
    }

    /// The status hub (tests and the composition root set facts through it).
    pub fn hub(&self) -> &StatusHub {
        &self.hub
    }

    /// The status LED (identify requests, `led test` steps, what it shows).
    pub fn led(&self) -> &LedHandle {
        &self.led
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
                let now = reload_credentials(&creds, &hub)
                    .map_err(|e| control::ControlError::failed(&e, e.code()))?;
                Ok(serde_json::json!({ "paired": now.is_some() }))
            }
        });
    }

    /// `token.add|list|revoke` (issue 3): `bbedge token …` while the daemon runs goes
    /// through here, so revocation also closes the token's live connections.
    fn register_token_control(&mut self) {
        use crate::commands::token as ops;
        let store = self.store.clone();
        self.control.register("token.add", move |args| {
            let store = store.clone();
            async move { ops::add(&store, args).await }
        });
        let store = self.store.clone();
        self.control.register("token.list", move |_| {
            let store = store.clone();
            async move { ops::list(&store) }
        });
        let store = self.store.clone();
        let rooms = self.rooms();
        self.control.register("token.revoke", move |args| {
            let (store, rooms) = (store.clone(), rooms.clone());
            async move { ops::revoke(&store, rooms.as_deref(), args).await }
        });
    }

    fn register_core_metrics(&mut self) {
        let rss = Gauge::<i64>::default();
        let store_bytes = Gauge::<i64>::default();
        let quarantined = Gauge::<i64>::default();
        quarantined.set(i64::from(self.quarantine.is_some()));
        let fault = Gauge::<i64>::default();
        // When the daemon started, as Unix seconds: now minus the time since `started`.
        let start = std::time::SystemTime::now()
            .checked_sub(self.started.elapsed())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        let process = self.metrics.process_registry();
        process.register(
            "process_resident_memory_bytes",
            "Resident set size",
            rss.clone(),
        );
        process.register(
            "process_start_time_seconds",
            "When the daemon started, Unix seconds",
            prometheus_client::metrics::gauge::ConstGauge::new(start),
        );
        let failures_store = self.store.clone();
        let reg = self.metrics.registry();
        reg.register(
            "store_size_bytes",
            "Bytes the sled database takes on disk",
            store_bytes.clone(),
        );
        reg.register(
            "store_quarantined",
            "1 when a corrupt database was moved aside at start",
            quarantined,
        );
        reg.register(
            "store_fault",
            "1 while storage is faulty (a quarantine at start, or failing writes)",
            fault.clone(),
        );
        let failures = health::metrics::CounterRows::new(
            "store_write_failures",
            "Store operations that failed since start",
        );
        failures.add(
            Vec::new(),
            Box::new(move || failures_store.health().failures_total()),
        );
        reg.register_collector(Box::new(failures));
        let store = self.store.clone();
        let quarantined_at_start = self.quarantine.is_some();
        self.metrics.on_scrape(Box::new(move || {
            fault.set(i64::from(
                quarantined_at_start || store.health().is_faulty(),
            ));
            rss.set(health::sysinfo::rss_bytes().unwrap_or(0) as i64);
            store_bytes.set(store.size_on_disk() as i64);
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
            mut metrics,
            health,
            rooms,
            control_socket,
            control,
            pairing,
            started,
            led_task,
            upstream,
            web,
            credentials,
            paths,
            led,
            ..
        } = self;
        let config = loaded.config;
        let grace = Duration::from_secs(config.daemon.shutdown_grace);
        let mut tasks = Supervisor::new(shutdown.clone());
        // === status LED (issue 5): first in, last out ===
        tasks.spawn("led", move |token| led_task.run(token));

        // --- local rooms (issue 3): status and metrics before the health task starts.
        if let Some(r) = &rooms {
            r.register_metrics(&mut metrics);
            r.register_status(&board);
        }
        // --- end local rooms ---
        let health_addr = health.as_ref().map(|h| h.local_addr().to_string());
        // === web page (issue 13): reads the same sections /status shows.
        let web_addr = web.as_ref().map(|w| w.local_addr().to_string());
        if let Some(bound) = web {
            let parts = Arc::new(crate::web::Web {
                config: Arc::new(config.clone()),
                paths,
                store: store.clone(),
                hub: hub.clone(),
                led,
                board: board.clone(),
                credentials,
                report: pairing.report().clone(),
                rooms: rooms.as_ref().map(super::room::Bound::service),
                sessions: crate::web::session::Sessions::new(Duration::from_secs(
                    config.web.session_idle_minutes * 60,
                )),
                started,
                stopping: CancellationToken::new(),
                streams: Arc::new(tokio::sync::Semaphore::new(crate::web::MAX_STREAMS)),
            });
            tasks.spawn("web", move |token| bound.serve(parts, token));
        }
        // === end web page
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
        // === storage (issue 11): failure reports, recovery, and the storage_fault fact.
        let (store_hub, held) = (hub.clone(), quarantine.is_some());
        let interval = Duration::from_secs(config.store.retry_interval);
        let tended = store.clone();
        tasks.spawn("store", move |token| {
            store::maintain::run(
                tended,
                interval,
                move |fault| store_hub.update(|f| f.storage_fault = held || fault),
                token,
            )
        });
        let status_hub = hub.clone();
        tasks.spawn("status", move |token| follow_state(status_hub, token));
        if let Some(interval) = crate::systemd::watchdog_interval() {
            tasks.spawn("watchdog", move |token| {
                crate::systemd::watchdog(interval, token)
            });
        }
        // --- local rooms (issue 3): started last, stopped first.
        let realtime_addr = rooms
            .as_ref()
            .and_then(super::room::Bound::local_addr)
            .map(|a| a.to_string());
        // === discovery (issue 13): built while the rooms' address is known, spawned
        // after them so it stops first (a goodbye before the rooms close).
        let advertiser = rooms.as_ref().and_then(|r| {
            let addr = r.local_addr()?;
            crate::discovery::advertise::from_config(&config, addr, hub.clone(), r.service())
        });
        if let Some(r) = rooms {
            tasks.spawn("rooms", move |token| r.run(token));
        }
        // --- end local rooms ---
        if let Some(a) = advertiser {
            tasks.spawn("discovery", move |token| a.run(token));
        }
        // === end discovery

        // --- pairing: after the control socket, so `bbedge pair` works while it runs.
        pairing.spawn(&mut tasks);

        // === upstream: started last, stopped first (closes the socket cleanly).
        if let Some(link) = upstream {
            tasks.spawn("upstream", move |token| link.run(token));
        }
        // === end upstream

        hub.update(|f| f.booting = false);
        readiness.clear("startup");
        crate::systemd::ready();
        tracing::info!(
            operation = "startup",
            state = %hub.state(),
            health_addr = health_addr.as_deref().unwrap_or("disabled"),
            realtime_addr = realtime_addr.as_deref().unwrap_or("disabled"),
            web_addr = web_addr.as_deref().unwrap_or("disabled"),
            "bbedge ready"
        );
        // Once settled, what only start-up used stops counting as resident
        // (src/memory.rs, docs/PERFORMANCE.md).
        let settling = crate::memory::release_when_settled();
        shutdown.cancelled().await;
        drop(settling);
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

/// Re-reads the credentials after `bbedge pair|unpair` (over `pairing.reload`) or a
/// pairing from the web page, and sets the facts that follow from them.
pub fn reload_credentials(
    creds: &CredentialStore,
    hub: &StatusHub,
) -> Result<Option<pairing::Credentials>, pairing::Error> {
    let before = creds.current();
    let now = creds.reload()?;
    hub.update(|f| {
        f.paired = now.is_some();
        // New credentials (a fresh pair, or unpair) end a "needs pairing"
        // state; the expiry monitor sets it again if they are expired too.
        if now != before {
            f.needs_pairing = false;
        }
    });
    Ok(now)
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
            () = token.cancelled() => return,
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
