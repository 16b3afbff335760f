//! A fake CivicPress realtime server for tests: a real WebSocket server on 127.0.0.1
//! port 0 (plain, or TLS with an rcgen certificate) that behaves as
//! `central-contract.md` describes, defects included:
//! - upgrade only under `/realtime` (else HTTP 401); Bearer token only;
//! - bad token → `control`/`error` AUTH_FAILED then close 4003 `{"code":"PERMISSION_DENIED"}`;
//!   no token → the error frame and a close without status;
//! - off-schema `control`/`connection.ack` with a `clientId`; `{"type":"pong","timestamp":ms}`;
//! - 10 counted frames per fixed 1 s window, the 11th → rate-limit error + close 1008;
//! - a tracker that only `status` refreshes, reaped after 90 s (injected clock);
//! - commands to the oldest socket of the device; per-device cap 10 (4029).
//!
//! It validates every frame the device sends against the shared schema, except the
//! documented off-schema ones, which get their own rules (`room.rs`), and records every
//! violation so tests can assert there were none.

pub mod api;
pub mod certs;
pub mod register;
pub mod room;
pub mod stale;

use super::schema::Schema;
use ed25519_dalek::VerifyingKey;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Hang guard for `wait_*`.
pub const WAIT: Duration = Duration::from_secs(30);

/// One frame the device sent.
#[derive(Debug, Clone)]
pub struct Received {
    /// Connection number (1, 2, …).
    pub conn: u64,
    /// When it arrived (real time).
    pub at: Instant,
    /// The frame.
    pub frame: Value,
    /// The frame's text exactly as received.
    pub text: String,
}

/// What a connection task can be told to do.
#[derive(Debug)]
pub enum ToConn {
    /// Send this text.
    Text(String),
    /// Write half a frame and drop the TCP stream.
    CutMidFrame,
    /// Close with this code.
    Close(u16),
    /// Stop reading and writing but keep the TCP stream open (a half-open link: no
    /// pongs, no close).
    Freeze,
}

/// A device the fake knows (as registration would have created it).
#[derive(Debug, Clone)]
pub struct Device {
    /// `device.id`.
    pub id: String,
    /// `deviceUuid`.
    pub uuid: String,
    /// The registered public key, if any.
    pub key: Option<VerifyingKey>,
}

/// Everything the fake remembers.
#[derive(Default)]
pub struct State {
    /// token → device.
    pub tokens: BTreeMap<String, Device>,
    /// TCP connections accepted (attempts).
    pub attempts: u64,
    /// When each attempt arrived.
    pub attempt_times: Vec<Instant>,
    /// Upgrades answered with HTTP 401 (wrong path).
    pub http_401: u64,
    /// Connections acknowledged, in order: (conn, device uuid, ack time).
    pub acked: Vec<(u64, String, Instant)>,
    /// Open connections: conn → (device uuid, sender).
    pub open: BTreeMap<u64, (String, mpsc::Sender<ToConn>)>,
    /// Frames the device sent, in arrival order.
    pub frames: Vec<Received>,
    /// Frames that broke the schema or the off-schema rules.
    pub violations: Vec<String>,
    /// Frames received before `connection.ack` was sent (must stay 0).
    pub before_ack: u64,
    /// Rate-limit closes (1008).
    pub rate_limited: u64,
    /// Close codes the device sent, per connection.
    pub device_closes: Vec<(u64, Option<u16>)>,
    /// The tracker: device uuid → last status (fake clock).
    pub tracker: BTreeMap<String, Instant>,
    /// The fake clock's lead over real time.
    pub clock_ahead: Duration,
    /// Central's wall clock minus real wall clock, ms (clock-skew tests).
    pub wall_skew_ms: i64,
    /// Acks by commandId.
    pub acks: BTreeMap<String, Value>,
    /// Signed manifests whose signature verified.
    pub manifests_verified: u64,
    /// When each attempt arrived on tokio's clock (paused in some tests).
    pub attempt_ticks: Vec<tokio::time::Instant>,
    /// Device statuses set by tests (absent: `active`); see [`FakeCentral::set_device_status`].
    pub device_status: BTreeMap<String, String>,
    /// The uploads route answers 404 (§b.6: the route needs the storage module).
    pub uploads_unmounted: bool,
    /// Requests to the uploads route (the §b.6 probe).
    pub probes: Vec<api::Probe>,
    /// Close codes for the next connections that pass auth (4003, 4029).
    pub refuse_next: std::collections::VecDeque<u16>,
    /// Stalls for the next attempts' upgrades: each is processed that late, as a
    /// stale attempt ([`stale`]); see [`FakeCentral::stall_next`].
    pub stall_next: std::collections::VecDeque<Duration>,
    /// Stale attempts registered late in the tracker (connection numbers).
    pub late_registrations: Vec<u64>,
    /// Stale attempts whose close unregistered the device (connection numbers).
    pub stale_unregistered: Vec<u64>,
    next_conn: u64,
}

impl State {
    /// The fake clock.
    pub fn now(&self) -> Instant {
        Instant::now() + self.clock_ahead
    }
}

/// Shared between the server tasks and the test.
#[derive(Clone)]
pub struct Shared {
    /// The state.
    pub state: Arc<Mutex<State>>,
    /// Bumped on every change.
    pub changed: Arc<watch::Sender<u64>>,
    /// The schema every device frame is checked against.
    pub schema: Arc<Schema>,
}

impl Shared {
    /// Changes the state and wakes waiters.
    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = f(&mut self.state.lock().expect("fake state"));
        self.changed.send_modify(|v| *v += 1);
        r
    }
}

/// The running fake.
pub struct FakeCentral {
    /// Shared state.
    pub shared: Shared,
    addr: SocketAddr,
    tls: Option<Arc<tokio_rustls::TlsAcceptor>>,
    /// The certificate (PEM) when TLS is on.
    pub cert_pem: Option<String>,
    accept: Option<JoinHandle<()>>,
    api_addr: SocketAddr,
    api: JoinHandle<()>,
}

impl FakeCentral {
    /// A plain `ws://` fake.
    pub async fn start() -> FakeCentral {
        Self::start_with(None, None).await
    }

    /// A `wss://` fake with a fresh self-signed certificate for 127.0.0.1.
    pub async fn start_tls() -> FakeCentral {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("rcgen");
        let pem = cert.cert.pem();
        let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
            .expect("key der");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("server cert");
        let acceptor = Arc::new(tokio_rustls::TlsAcceptor::from(Arc::new(config)));
        Self::start_with(Some(acceptor), Some(pem)).await
    }

    async fn start_with(
        tls: Option<Arc<tokio_rustls::TlsAcceptor>>,
        cert_pem: Option<String>,
    ) -> FakeCentral {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake");
        let addr = listener.local_addr().expect("addr");
        let shared = Shared {
            state: Arc::new(Mutex::new(State::default())),
            changed: Arc::new(watch::Sender::new(0)),
            schema: Arc::new(Schema::load()),
        };
        let (api_addr, api) = api::spawn(shared.clone(), tls.clone()).await;
        let mut me = FakeCentral {
            shared,
            addr,
            tls,
            cert_pem,
            accept: None,
            api_addr,
            api,
        };
        me.serve(listener);
        me
    }

    fn serve(&mut self, listener: TcpListener) {
        let shared = self.shared.clone();
        let tls = self.tls.clone();
        self.accept = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (conn, tx, rx, stall) = shared.with(|s| {
                    s.attempts += 1;
                    s.attempt_times.push(Instant::now());
                    s.attempt_ticks.push(tokio::time::Instant::now());
                    s.next_conn += 1;
                    let (tx, rx) = mpsc::channel(64);
                    (s.next_conn, tx, rx, s.stall_next.pop_front())
                });
                let shared = shared.clone();
                if let (Some(stall), None) = (stall, &tls) {
                    conns.spawn(stale::serve(tcp, conn, stall, shared));
                    continue;
                }
                match tls.clone() {
                    Some(acc) => {
                        conns.spawn(async move {
                            if let Ok(stream) = acc.accept(tcp).await {
                                room::serve(stream, conn, tx, rx, shared).await;
                            }
                        });
                    }
                    None => {
                        conns.spawn(room::serve(tcp, conn, tx, rx, shared));
                    }
                }
                // Dropping the JoinSet (when this task is aborted) aborts every connection.
                while conns.try_join_next().is_some() {}
            }
        }));
    }

    /// `ws://127.0.0.1:<port>/realtime` (or `wss://`).
    pub fn realtime_url(&self) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}/realtime", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Accepts `token` for a device.
    pub fn allow(&self, token: &str, device: Device) {
        self.shared
            .with(|s| s.tokens.insert(token.to_owned(), device));
    }

    /// Stops like a crashed server: every socket dropped without a close frame.
    pub async fn stop(&mut self) {
        if let Some(h) = self.accept.take() {
            h.abort();
            let _ = h.await;
        }
        self.shared.with(|s| {
            s.open.clear();
            s.tracker.clear();
        });
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("rebind the same port");
        self.serve(listener);
    }

    /// Central processes the next attempt's upgrade only after `stall` (plain `ws://`
    /// only): a device that gives up sooner leaves a stale attempt that registers late
    /// and unregisters the device when it closes (contract 0.13, §g.1).
    pub fn stall_next(&self, stall: Duration) {
        self.shared.with(|s| s.stall_next.push_back(stall));
    }

    /// Whether central's tracker knows `uuid` (commands reach it, §f.3).
    pub fn knows(&self, uuid: &str) -> bool {
        self.snapshot(|s| s.tracker.contains_key(uuid))
    }

    /// Cuts every open connection in the middle of a frame.
    pub fn cut_all_mid_frame(&self) {
        let open: Vec<_> = self
            .shared
            .with(|s| s.open.values().map(|(_, tx)| tx.clone()).collect());
        for tx in open {
            let _ = tx.try_send(ToConn::CutMidFrame);
        }
    }

    /// Waits until `pred` holds (hang guard [`WAIT`]).
    pub async fn wait<R>(&self, what: &str, pred: impl FnMut(&State) -> Option<R>) -> R {
        self.wait_within(WAIT, what, pred).await
    }

    /// Waits until `pred` holds, with `limit` as the hang guard: for tests under paused
    /// time, where the reconnect backoff (30–60 s at the cap) is longer than [`WAIT`].
    /// On timeout the panic shows what the fake has seen.
    pub async fn wait_within<R>(
        &self,
        limit: Duration,
        what: &str,
        mut pred: impl FnMut(&State) -> Option<R>,
    ) -> R {
        let mut rx = self.shared.changed.subscribe();
        let fut = async {
            loop {
                if let Some(r) = pred(&self.shared.state.lock().expect("state")) {
                    return r;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        if let Ok(r) = tokio::time::timeout(limit, fut).await {
            r
        } else {
            let s = self.shared.state.lock().expect("state");
            panic!(
                "fake central: no {what} within {limit:?}; attempts={} acked={} frames={:?} violations={:?}",
                s.attempts,
                s.acked.len(),
                s.frames.iter().map(|f| f.frame["type"].to_string()).collect::<Vec<_>>(),
                s.violations
            )
        }
    }

    /// Waits for the `n`th acknowledged connection; returns its number.
    pub async fn wait_acked(&self, n: usize) -> u64 {
        self.wait(&format!("{n} acked connections"), |s| {
            s.acked.get(n - 1).map(|a| a.0)
        })
        .await
    }

    /// Waits for the first frame after index `from` that `pred` accepts.
    pub async fn wait_frame(
        &self,
        what: &str,
        from: usize,
        pred: impl Fn(&Value) -> bool,
    ) -> Received {
        self.wait(what, |s| {
            s.frames.iter().skip(from).find(|r| pred(&r.frame)).cloned()
        })
        .await
    }

    /// Sends a command to the oldest open socket of `uuid`, as central does; `Err` when
    /// the tracker does not have the device (nothing is sent, §f.3).
    pub fn send_command(
        &self,
        uuid: &str,
        action: &str,
        payload: Value,
    ) -> Result<String, &'static str> {
        let id = uuid::Uuid::new_v4().to_string();
        let frame = serde_json::json!({
            "type": "command", "id": id, "timestamp": bbedge::protocol::now_rfc3339(),
            "action": action, "payload": payload,
        });
        let tx = self.shared.with(|s| {
            if !s.tracker.contains_key(uuid) {
                return Err("DEVICE_NOT_CONNECTED");
            }
            s.open
                .iter()
                .find(|(_, (u, _))| u == uuid)
                .map(|(_, (_, tx))| tx.clone())
                .ok_or("DEVICE_NOT_CONNECTED")
        })?;
        tx.try_send(ToConn::Text(frame.to_string()))
            .map_err(|_| "SEND_FAILED")?;
        Ok(id)
    }

    /// Sends any text to the oldest open socket of `uuid`.
    pub fn send_raw(&self, uuid: &str, text: &str) {
        let tx = self.shared.with(|s| {
            s.open
                .iter()
                .find(|(_, (u, _))| u == uuid)
                .map(|(_, (_, tx))| tx.clone())
        });
        if let Some(tx) = tx {
            let _ = tx.try_send(ToConn::Text(text.to_owned()));
        }
    }

    /// Freezes every open connection (half-open: no pongs).
    pub fn freeze_all(&self) {
        let open: Vec<_> = self
            .shared
            .with(|s| s.open.values().map(|(_, tx)| tx.clone()).collect());
        for tx in open {
            let _ = tx.try_send(ToConn::Freeze);
        }
    }

    /// Closes every open socket of `uuid` with `code`.
    pub fn close_all(&self, uuid: &str, code: u16) {
        let txs: Vec<_> = self.shared.with(|s| {
            s.open
                .values()
                .filter(|(u, _)| u == uuid)
                .map(|(_, tx)| tx.clone())
                .collect()
        });
        for tx in txs {
            let _ = tx.try_send(ToConn::Close(code));
        }
    }

    /// Waits for the ack of command `id`.
    pub async fn wait_ack(&self, id: &str) -> Value {
        self.wait(&format!("ack {id}"), |s| s.acks.get(id).cloned())
            .await
    }

    /// Moves the fake clock forward and runs the tracker's reaper (90 s without status).
    pub fn advance_and_reap(&self, by: Duration) {
        self.shared.with(|s| {
            s.clock_ahead += by;
            let now = s.now();
            s.tracker
                .retain(|_, last| now.duration_since(*last) <= Duration::from_secs(90));
        });
    }

    /// The frames received from index `from` on that `pred` accepts, in arrival order.
    pub fn frames_where(&self, from: usize, pred: impl Fn(&Value) -> bool) -> Vec<Received> {
        self.snapshot(|s| {
            s.frames
                .iter()
                .skip(from)
                .filter(|r| pred(&r.frame))
                .cloned()
                .collect()
        })
    }

    /// The `id`s of the test agent's `upload.progress` events received from index `from`
    /// on, in arrival order (every copy: delivery is at-least-once).
    pub fn progress_ids(&self, from: usize) -> Vec<Value> {
        self.frames_where(from, |f| f["event"] == "upload.progress")
            .into_iter()
            .map(|r| r.frame["id"].clone())
            .collect()
    }

    /// A snapshot of the state's counters.
    pub fn snapshot<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.shared.state.lock().expect("state"))
    }

    /// Panics if any frame broke the rules.
    pub fn assert_no_violations(&self) {
        self.snapshot(|s| {
            assert!(
                s.violations.is_empty(),
                "schema/contract violations: {:#?}",
                s.violations
            );
            assert_eq!(s.before_ack, 0, "frames before connection.ack");
            assert_eq!(s.rate_limited, 0, "rate-limit closes");
        });
    }
}

impl Drop for FakeCentral {
    fn drop(&mut self) {
        self.api.abort();
        if let Some(h) = self.accept.take() {
            h.abort();
        }
    }
}
