//! Shared test parts: the shared schema and vectors, the in-process `TestBox`, and the
//! real binary started as a child process. Real sockets on 127.0.0.1 port 0, real sled
//! in a temp dir; nothing mocked but GPIO.
#![allow(dead_code)]

pub mod binary;
pub mod fake_central;
pub mod led;
pub mod logs;
pub mod paired;
pub mod raw;
pub mod schema;
pub mod uplink;
pub mod ws;

use bbedge::app::App;
use bbedge::config::{Loaded, Loader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// `d` times `$BBEDGE_TEST_TIME_SCALE` (default 1): time bounds and hang guards stated for
/// a native build, stretched where the suite runs emulated (`.ci/run` sets 10 for the
/// aarch64 suite under qemu-user). Lower bounds are never scaled.
pub fn scaled(d: std::time::Duration) -> std::time::Duration {
    let k = std::env::var("BBEDGE_TEST_TIME_SCALE")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|k| *k >= 1)
        .unwrap_or(1);
    d * k
}

/// `../shared` beside the repository (or `$BBEDGE_SHARED_DIR`).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("BBEDGE_SHARED_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
        PathBuf::from,
    )
}

/// Config overrides for a test box: every listener on 127.0.0.1 port 0, state in `dir`,
/// the simulated LED. `extra` pairs are dotted keys and TOML literals.
pub fn test_config(dir: &Path, extra: &[(&str, &str)]) -> Loaded {
    let mut env: Vec<(String, String)> = vec![
        (
            "daemon.state_dir".into(),
            format!("{:?}", dir.display().to_string()),
        ),
        ("daemon.shutdown_grace".into(), "5".into()),
        ("realtime.host".into(), "\"127.0.0.1\"".into()),
        ("realtime.port".into(), "0".into()),
        ("health.host".into(), "\"127.0.0.1\"".into()),
        ("health.port".into(), "0".into()),
        ("web.host".into(), "\"127.0.0.1\"".into()),
        ("web.port".into(), "0".into()),
        ("status_led.backend".into(), "\"sim\"".into()),
        ("pairing.boot_file".into(), "\"\"".into()),
        // No upstream link in a TestBox: tests drive its half of the relay seam.
        ("upstream.enabled".into(), "false".into()),
    ];
    // An extra pair replaces the default above (the loader sorts env pairs, so a
    // duplicate key would be decided by its value, not by order).
    env.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let env = env.into_iter().map(|(k, v)| (env_name(&k), v));
    Loader::builtin()
        .env(env)
        .load()
        .expect("test config loads")
}

/// `realtime.rate_limiting.messages_per_second` → `BBEDGE_REALTIME__RATE_LIMITING__MESSAGES_PER_SECOND`.
pub fn env_name(key: &str) -> String {
    format!("BBEDGE_{}", key.replace('.', "__").to_ascii_uppercase())
}

/// The real `App`, in-process, on loopback.
pub struct TestBox {
    /// State directory (deleted on drop).
    pub dir: tempfile::TempDir,
    /// The health endpoint.
    pub health: SocketAddr,
    /// The local rooms' listener, when `[realtime] enabled`.
    pub realtime: Option<SocketAddr>,
    /// The web page's listener, when `[web] enabled`.
    pub web: Option<SocketAddr>,
    /// The local rooms' service (tokens, device id, stats), when enabled.
    pub rooms: Option<std::sync::Arc<bbedge::room::Service>>,
    /// The upstream's half of the relay seam (no upstream link runs in tests).
    pub upstream: Option<bbedge::relay::UpstreamSide>,
    /// Cancels the app.
    pub shutdown: CancellationToken,
    /// The device state's facts (tests set them as the services would).
    pub hub: bbedge::signal::StatusHub,
    /// The status LED (sim in tests): identify, what it shows, its edges.
    pub led: bbedge::signal::LedHandle,
    /// The running app.
    pub task: Option<JoinHandle<Result<(), bbedge::store::Error>>>,
}

impl TestBox {
    /// Starts a box with the default test config plus `extra`.
    pub async fn start(extra: &[(&str, &str)]) -> TestBox {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, extra).await
    }

    /// Starts a box whose state lives in `dir` (to restart on the same state).
    pub async fn start_in(dir: tempfile::TempDir, extra: &[(&str, &str)]) -> TestBox {
        let loaded = test_config(dir.path(), extra);
        let mut app = App::bind(loaded).await.expect("app binds");
        let health = app.health_addr().expect("health enabled");
        let hub = app.hub().clone();
        let led = app.led().clone();
        let realtime = app.realtime_addr();
        let web = app.web_addr();
        let rooms = app.rooms();
        let upstream = app.take_upstream_side();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run(shutdown.clone()));
        TestBox {
            dir,
            health,
            realtime,
            web,
            rooms,
            upstream,
            shutdown,
            hub,
            led,
            task: Some(task),
        }
    }

    /// A subscriber to the hook-event bus, from now on.
    pub fn bus_events(&self) -> tokio::sync::broadcast::Receiver<bbedge::bus::HookEvent> {
        self.svc().bus.subscribe()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn health_url(&self) -> String {
        format!("http://{}", self.health)
    }

    /// GETs a health path; returns status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        http_get(&format!("{}{path}", self.health_url())).await
    }

    /// GETs `/status` as JSON.
    pub async fn status(&self) -> serde_json::Value {
        let (code, body) = self.get("/status").await;
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).expect("status is JSON")
    }

    /// Waits (hang guard: 30 s) until the status facts satisfy `pred`; returns them.
    pub async fn wait_facts(
        &self,
        what: &str,
        pred: impl Fn(&bbedge::signal::Facts) -> bool,
    ) -> bbedge::signal::Facts {
        let mut rx = self.hub.subscribe();
        let facts =
            tokio::time::timeout(std::time::Duration::from_secs(30), rx.wait_for(|f| pred(f)))
                .await
                .unwrap_or_else(|_| panic!("facts never became {what}: {:?}", self.hub.facts()))
                .expect("hub alive")
                .clone();
        facts
    }

    /// Stops the box and returns its state dir for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("app task").expect("clean shutdown");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, dir)
    }
}

impl Drop for TestBox {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The next hook event `pick` accepts, skipping the others (hang guard: 10 s per event).
pub async fn next_event<T>(
    events: &mut tokio::sync::broadcast::Receiver<bbedge::bus::HookEvent>,
    pick: impl FnMut(bbedge::bus::HookEvent) -> Option<T>,
) -> T {
    next_picked(events, pick, Some(scaled(ws::FRAME_TIMEOUT))).await
}

/// [`next_event`] without its hang guard, for a test on paused time that sets its own.
pub async fn next_event_unguarded<T>(
    events: &mut tokio::sync::broadcast::Receiver<bbedge::bus::HookEvent>,
    pick: impl FnMut(bbedge::bus::HookEvent) -> Option<T>,
) -> T {
    next_picked(events, pick, None).await
}

/// Keeps paused time moving in `step`s while it lives. Paused time jumps straight to the
/// next timer whenever the runtime idles, also while a frame is still in a loopback
/// socket; a test whose only near timer is its own hang guard would jump past what it
/// waits for. The daemon's periodic timers used to pace such jumps; an idle daemon now
/// has none.
pub fn pacer(step: std::time::Duration) -> tokio_util::sync::DropGuard {
    let stop = tokio_util::sync::CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(step) => {}
            }
        }
    });
    stop.drop_guard()
}

async fn next_picked<T>(
    events: &mut tokio::sync::broadcast::Receiver<bbedge::bus::HookEvent>,
    mut pick: impl FnMut(bbedge::bus::HookEvent) -> Option<T>,
    guard: Option<std::time::Duration>,
) -> T {
    loop {
        let e = match guard {
            Some(g) => tokio::time::timeout(g, events.recv())
                .await
                .expect("event hang guard"),
            None => events.recv().await,
        }
        .expect("bus open, subscriber not lagging");
        if let Some(t) = pick(e) {
            return t;
        }
    }
}

/// A plain GET with reqwest; returns status and body.
pub async fn http_get(url: &str) -> (u16, String) {
    let resp = reqwest::get(url).await.expect("GET succeeds");
    let code = resp.status().as_u16();
    (code, resp.text().await.expect("body"))
}
