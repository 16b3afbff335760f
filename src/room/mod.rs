//! The local device rooms: the box's own realtime server on the chamber LAN, behaving
//! like the central device room (contract §c, §d.9–d.11) so a client written for central
//! works against the box unchanged.
//!
//! - [`server`]: listener, accept loop, connection slots, TLS, handshake timeout.
//! - [`handshake`]: path normalisation and token extraction in the upgrade callback.
//! - [`client`]: one connection: admission and the reader (checks, rate limit);
//!   [`writer`]: the queue, pings, idle timeout, farewell.
//! - [`registry`]: the [`RoomType`](registry::RoomType) extension point; [`device`] is
//!   the registered type.
//! - [`live`], [`rooms`]: live rooms, lifecycle, snapshots. [`outbox`]: bounded per-client
//!   queues; [`presence`]: coalesced presence per client. [`limits`]: connection caps. [`tokens`]: local tokens. [`frames`]: what we
//!   send. [`stats`]: metrics. [`tls`]: optional TLS.

pub mod client;
pub mod device;
pub mod frames;
pub mod handshake;
pub mod limits;
pub mod live;
pub mod outbox;
pub mod presence;
pub mod registry;
pub mod rooms;
pub mod server;
pub mod stats;
pub mod tls;
pub mod tokens;
pub mod writer;

use crate::bus::Bus;
use crate::config::Realtime;
use crate::relay::RoomSide;
use crate::signal::StatusHub;
use crate::store::{self, Store, Tree};
use outbox::Farewell;
use registry::Registry;
use rooms::{Rooms, SnapshotPolicy};
use serde_json::json;
use stats::Stats;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Why the rooms could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listener could not be bound.
    #[error("{0}")]
    Bind(#[source] std::io::Error, SocketAddr),
    /// TLS is on but its certificate cannot be used.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The store failed (device UUID).
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// What every connection shares.
pub struct Service {
    /// `[realtime]`.
    pub cfg: Realtime,
    /// Room types.
    pub registry: Registry,
    /// Live rooms.
    pub rooms: Arc<Rooms>,
    /// Connection caps.
    pub limits: limits::Limits,
    /// Metrics.
    pub stats: Arc<Stats>,
    /// Tokens and snapshots.
    pub store: Store,
    /// Hook events.
    pub bus: Bus,
    /// This box's device UUID; its room is `device:<uuid>`.
    pub device_id: String,
    /// Cancelled when the rooms start shutting down: a client that joins after that is
    /// closed with 1001 at once.
    pub stopping: CancellationToken,
}

/// Bound, not yet running.
pub struct Bound {
    svc: Arc<Service>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    commands: tokio::sync::mpsc::Receiver<crate::relay::ToAgent>,
}

/// The device UUID of the local room: `[device] uuid`, else one made on first start and
/// kept in [`Tree::Meta`] under `local_device_uuid`. (Pairing will later prefer the
/// paired UUID: change it here only.)
pub async fn device_id(configured: &str, store: &Store) -> Result<String, store::Error> {
    if !configured.is_empty() {
        return Ok(configured.to_owned());
    }
    if let Ok(Some(id)) = store.get::<String>(Tree::Meta, b"local_device_uuid") {
        return Ok(id);
    }
    let id = uuid::Uuid::new_v4().to_string();
    store.put(Tree::Meta, b"local_device_uuid", &id)?;
    store.flush().await?;
    Ok(id)
}

/// Binds `[realtime] host:port` and builds the service.
pub async fn bind(
    cfg: &Realtime,
    device_uuid: &str,
    state_dir: &std::path::Path,
    store: Store,
    bus: Bus,
    hub: StatusHub,
    relay: RoomSide,
) -> Result<Bound, StartError> {
    let addr = SocketAddr::new(cfg.host, cfg.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| StartError::Bind(e, addr))?;
    let tls = tls::acceptor(&cfg.tls, state_dir)?;
    if cfg.echo {
        tracing::warn!(operation = "startup", addr = %addr, "realtime.echo is on: /echo answers anyone without a token; for conformance tests only");
    }
    let device_id = device_id(device_uuid, &store).await?;
    let stats = Arc::new(Stats::default());
    let mut registry = Registry::default();
    registry.register(Arc::new(device::DeviceType {
        local_id: device_id.clone(),
        links: Arc::new(device::Links {
            to_central: relay.to_central,
            agent_status: relay.agent_status,
            hub,
            store: store.clone(),
        }),
        command_timeout: Duration::from_secs(cfg.limits.command_timeout),
    }));
    let policy = SnapshotPolicy {
        enabled: cfg.snapshots.enabled,
        interval: Duration::from_secs(cfg.snapshots.interval),
        max_updates: cfg.snapshots.max_updates,
    };
    let rooms = Arc::new(Rooms::new(
        cfg.rooms.max_rooms,
        Duration::from_secs(cfg.rooms.cleanup_timeout),
        live::Settings {
            grace: Duration::from_secs(cfg.rooms.grace_period),
            state_max: cfg.limits.max_frame_bytes,
        },
        policy,
        stats.clone(),
        bus.clone(),
        store.clone(),
    ));
    let usable = rooms.check_snapshots();
    tracing::debug!(operation = "room.restore", usable, "room snapshots checked");
    let svc = Arc::new(Service {
        limits: limits::Limits::new(limits::Caps::from_config(cfg)),
        cfg: cfg.clone(),
        registry,
        rooms,
        stats,
        store,
        bus,
        device_id,
        stopping: CancellationToken::new(),
    });
    Ok(Bound {
        svc,
        listener,
        tls,
        commands: relay.commands,
    })
}

impl Bound {
    /// The bound address (port 0 resolved).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// The shared service (token revocation, tests).
    pub fn service(&self) -> Arc<Service> {
        self.svc.clone()
    }

    /// Registers the metrics and a scrape hook that refreshes queue depths and the
    /// snapshot age.
    pub fn register_metrics(&self, metrics: &mut crate::health::metrics::Metrics) {
        self.svc.stats.register(metrics.registry());
        let svc = self.svc.clone();
        metrics.on_scrape(Box::new(move || {
            let (f, b) = svc.rooms.all().iter().fold((0, 0), |(f, b), r| {
                let (rf, rb) = r.depth();
                (f + rf, b + rb)
            });
            svc.stats.queue_frames.set(f as i64);
            svc.stats.queue_bytes.set(b as i64);
            svc.stats.refresh_age();
        }));
    }

    /// Adds the `rooms` section to `/status`.
    pub fn register_status(&self, board: &crate::health::StatusBoard) {
        let svc = self.svc.clone();
        let addr = self.local_addr();
        let tls = self.tls.is_some();
        board.register("rooms", Box::new(move || svc.status(addr, tls)));
    }

    /// Runs the accept loop, the snapshot timer and the upstream command feed until
    /// `token` is cancelled; then closes every client (1001) and saves final snapshots.
    pub async fn run(self, token: CancellationToken) {
        let Bound {
            svc,
            listener,
            tls,
            commands,
        } = self;
        tracing::info!(operation = "startup", realtime_addr = ?listener.local_addr().ok(), device = %svc.device_id, tls = tls.is_some(), "local rooms listening");
        let accept = server::accept_loop(svc.clone(), listener, tls, token.clone());
        let snaps = snapshot_timer(svc.clone(), token.clone());
        let upstream = upstream_commands(svc.clone(), commands, token.clone());
        tokio::join!(accept, snaps, upstream);
        let saved = svc.rooms.save(&svc.rooms.all(), true).await;
        svc.rooms.stopped.cancel();
        tracing::info!(
            operation = "shutdown",
            snapshots = saved,
            "local rooms stopped"
        );
    }
}

impl Service {
    /// The `rooms` section of `/status`.
    pub fn status(&self, addr: Option<SocketAddr>, tls: bool) -> serde_json::Value {
        let rooms: Vec<_> = self
            .rooms
            .all()
            .iter()
            .map(|r| {
                let [a, o, b] = r.counts();
                json!({"id": r.id, "agents": a, "operators": o, "observers": b})
            })
            .collect();
        let s = &self.stats;
        s.refresh_age();
        let drops: serde_json::Map<String, serde_json::Value> = stats::reason::ALL
            .iter()
            .map(|r| ((*r).to_owned(), json!(s.drops_of(r))))
            .filter(|(_, n)| n != &json!(0))
            .collect();
        json!({
            "address": addr.map(|a| a.to_string()),
            "tls": tls,
            "device_room": format!("device:{}", self.device_id),
            "rooms": rooms,
            "connections": self.limits.in_use(),
            "handshakes": self.limits.handshaking(),
            "frames_in": s.frames_in.get(),
            "frames_out": s.frames_out.get(),
            "rate_limit_hits": s.rate_limit_hits.get(),
            "drops": drops,
            "snapshots": s.snapshots.get(),
            "snapshot_age_seconds": s.snapshot_age.get(),
        })
    }

    /// Revokes token `id` and closes its live connections at once (session.revoked,
    /// close 4001). Returns the record.
    pub async fn revoke(&self, id: &str) -> Result<tokens::TokenRecord, tokens::TokenError> {
        let rec = tokens::revoke(&self.store, id).await?;
        let farewell = Farewell {
            last: Some(frames::session_revoked()),
            code: Some(4001),
            reason: frames::close_reason(crate::protocol::RealtimeCode::SessionRevoked, &[]),
            why: "revoked",
        };
        let closed: usize = self
            .rooms
            .all()
            .iter()
            .map(|r| r.close_token(id, &farewell))
            .sum();
        tracing::info!(operation = "token.revoke", token_id = %id, closed, "token revoked");
        Ok(rec)
    }
}

/// Snapshots due rooms every second, or at once when one reaches `max_updates`.
async fn snapshot_timer(svc: Arc<Service>, token: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
            _ = svc.rooms.snapshot_due.notified() => {}
        }
        svc.rooms.save(&svc.rooms.all(), false).await;
    }
}

/// Hands commands from the upstream link to the local device room's agent.
async fn upstream_commands(
    svc: Arc<Service>,
    mut rx: tokio::sync::mpsc::Receiver<crate::relay::ToAgent>,
    token: CancellationToken,
) {
    let room_id = format!("device:{}", svc.device_id);
    loop {
        let cmd = tokio::select! {
            _ = token.cancelled() => return,
            c = rx.recv() => match c { Some(c) => c, None => return },
        };
        match svc.rooms.get(&room_id) {
            Some(room) => room.upstream(cmd),
            None => {
                let _ = cmd.reply.send(crate::relay::AgentReply::NotConnected);
            }
        }
    }
}
