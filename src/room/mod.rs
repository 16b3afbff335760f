//! The local device rooms: the box's own realtime server on the chamber LAN, behaving
//! like the central device room (contract §c, §d.9–d.11) so a client written for central
//! works against the box unchanged.
//!
//! - [`server`]: listener, accept loop, connection slots, TLS, handshake timeout;
//!   [`gather`]: one socket write per flushed batch, no write buffer held when idle.
//! - [`handshake`]: path normalisation and token extraction in the upgrade callback.
//! - [`client`]: one connection: admission and the reader (checks, rate limit);
//!   [`writer`]: the queue, pings, idle timeout, farewell.
//! - [`registry`]: the [`RoomType`](registry::RoomType) extension point; [`device`] is
//!   the registered type.
//! - [`identity`]: which device the room is (the paired UUID once paired); `feeds`:
//!   central's commands and preview frames, and the move when pairing completes.
//! - [`live`], [`rooms`]: live rooms, lifecycle, snapshots. [`outbox`]: bounded per-client
//!   queues; [`presence`]: coalesced presence per client. [`limits`]: connection caps. [`tokens`]: local tokens. [`frames`]: what we
//!   send. [`stats`]: metrics. [`tls`]: optional TLS.

pub mod client;
pub mod device;
pub mod fan;
mod feeds;
pub mod frames;
pub mod gather;
pub mod handshake;
pub mod head;
pub mod identity;
pub mod limits;
pub mod live;
pub mod outbox;
pub mod presence;
mod reader;
pub mod registry;
pub mod rooms;
pub mod server;
pub mod stats;
pub mod tls;
pub mod tokens;
mod view;
pub mod writer;

use crate::bus::Bus;
use crate::config::Realtime;
use crate::relay::RoomSide;
use crate::signal::StatusHub;
use crate::store::{self, Store};
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
    /// This box's device UUID; its room is `device:<uuid>` ([`identity`]: the paired
    /// UUID once paired).
    pub device_id: identity::DeviceId,
    /// `[device] uuid` (empty: follow pairing).
    pub configured_uuid: String,
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
    previews: tokio::sync::mpsc::Receiver<crate::protocol::Inbound>,
    credentials: crate::pairing::CredentialStore,
}

/// The device UUID of the local room at start: `[device] uuid`, else the paired UUID,
/// else the provisional one ([`identity`]). A provisional room's snapshot left from an
/// earlier run moves to the paired UUID here.
pub async fn device_id(
    configured: &str,
    paired: Option<&str>,
    store: &Store,
) -> Result<identity::DeviceId, store::Error> {
    match identity::wanted(configured, paired) {
        Some(id) => {
            let me = identity::DeviceId::new(id.clone());
            if let Some(old) = identity::existing_provisional(store).filter(|o| *o != id) {
                me.add_former(&old);
                rooms::move_stored_snapshot(
                    store,
                    &format!("device:{old}"),
                    &format!("device:{id}"),
                )
                .await;
            }
            Ok(me)
        }
        None => Ok(identity::DeviceId::new(identity::provisional(store).await?)),
    }
}

/// Binds `[realtime] host:port` and builds the service.
#[allow(clippy::too_many_arguments)]
pub async fn bind(
    cfg: &Realtime,
    device_uuid: &str,
    credentials: crate::pairing::CredentialStore,
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
    let paired = credentials.current().map(|c| c.device_uuid);
    let device_id = device_id(device_uuid, paired.as_deref(), &store).await?;
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
        command_timeout: Some(cfg.limits.command_timeout)
            .filter(|s| *s > 0)
            .map(Duration::from_secs),
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
            queue_frames: cfg.limits.send_queue_frames,
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
        configured_uuid: device_uuid.to_owned(),
        stopping: CancellationToken::new(),
    });
    Ok(Bound {
        svc,
        listener,
        tls,
        commands: relay.commands,
        previews: relay.previews,
        credentials,
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

    /// Registers the metrics and a scrape hook that refreshes queue depths.
    pub fn register_metrics(&self, metrics: &mut crate::health::metrics::Metrics) {
        self.svc.stats.register(metrics);
        let svc = self.svc.clone();
        metrics.on_scrape(Box::new(move || {
            let (f, b) = svc.rooms.all().iter().fold((0, 0), |(f, b), r| {
                let (rf, rb) = r.depth();
                (f + rf, b + rb)
            });
            svc.stats.queue_frames.set(f as i64);
            svc.stats.queue_bytes.set(b as i64);
        }));
    }

    /// The rooms' TLS acceptor (`[realtime.tls]` on), for the web page to share.
    pub fn tls_acceptor(&self) -> Option<TlsAcceptor> {
        self.tls.clone()
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
            previews,
            credentials,
        } = self;
        tracing::info!(operation = "startup", realtime_addr = ?listener.local_addr().ok(), device = %svc.device_id, tls = tls.is_some(), "local rooms listening");
        let accept = server::accept_loop(svc.clone(), listener, tls, token.clone());
        let snaps = snapshot_timer(svc.clone(), token.clone());
        let upstream = feeds::upstream_commands(svc.clone(), commands, token.clone());
        let preview = feeds::upstream_previews(svc.clone(), previews, token.clone());
        let identity = feeds::follow_pairing(svc.clone(), credentials, token.clone());
        tokio::join!(accept, snaps, upstream, preview, identity);
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
        let drops: serde_json::Map<String, serde_json::Value> = stats::reason::ALL
            .iter()
            .map(|r| ((*r).to_owned(), json!(s.drops_of(r))))
            .filter(|(_, n)| n != &json!(0))
            .collect();
        json!({
            "address": addr.map(|a| a.to_string()),
            "tls": tls,
            "device_room": self.device_id.room_id(),
            "rooms": rooms,
            "connections": self.limits.in_use(),
            "handshakes": self.limits.handshaking(),
            "frames_in": s.frames_in.get(),
            "frames_out": s.frames_out.get(),
            "rate_limit_hits": s.rate_limit_hits.get(),
            "drops": drops,
            "snapshots": s.snapshots.get(),
            "snapshot_age_seconds": s.snapshot_age_seconds(),
        })
    }

    /// Revokes token `id` and closes its live connections at once (session.revoked,
    /// close 4001). Returns the record.
    pub async fn revoke(&self, id: &str) -> Result<tokens::TokenRecord, tokens::TokenError> {
        let result = tokens::revoke(&self.store, id).await;
        // Not on flash yet still means revoked: its connections go now too.
        if let Err(e) = &result {
            if !matches!(e, tokens::TokenError::RevokedNotOnFlash { .. }) {
                return result;
            }
        }
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
        result
    }
}

/// Snapshots each changed room once its interval passed, or at once when it reaches
/// `max_updates`. Sleeps until the earliest such moment, and without a timer while no
/// room changed: an idle box does not wake for it.
async fn snapshot_timer(svc: Arc<Service>, token: CancellationToken) {
    loop {
        let next = svc.rooms.next_snapshot();
        tokio::select! {
            () = token.cancelled() => return,
            () = sleep_until(next) => {}
            () = svc.rooms.snapshot_due.notified() => {}
        }
        svc.rooms.save(&svc.rooms.all(), false).await;
    }
}

/// Until `at`, or forever.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
