//! Counters and gauges of the local rooms, registered in the shared Prometheus registry
//! (`bbedge_room_*`, and the room's samples of `bbedge_frames_total` and
//! `bbedge_frames_dropped_total`) and summarised in the `rooms` section of `/status`.

use crate::health::metrics::{CounterRows, Direction, Link, Metrics, OptionalGauge};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

type Label = [(&'static str, &'static str); 1];

/// Why a frame or a connection was dropped: the `reason` label of
/// `bbedge_frames_dropped_total{link="room"}` ([`FRAMES`]) or of
/// `bbedge_room_connections_dropped_total` ([`CONNECTIONS`]).
pub mod reason {
    /// A text frame that is not JSON.
    pub const NOT_JSON: &str = "not_json";
    /// A binary frame.
    pub const BINARY: &str = "binary";
    /// A JSON frame with an unknown `type`.
    pub const UNKNOWN_TYPE: &str = "unknown_type";
    /// A frame that fails the structural check.
    pub const INVALID: &str = "invalid";
    /// A frame the sender's role may not send (an observer's command).
    pub const FORBIDDEN: &str = "forbidden";
    /// Over `messages_per_second`.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// A frame over `max_frame_bytes`.
    pub const TOO_LARGE: &str = "too_large";
    /// A client whose send queue filled up.
    pub const SLOW_CONSUMER: &str = "slow_consumer";
    /// The upstream channel was full; the agent frame did not go to central.
    pub const UPSTREAM_FULL: &str = "upstream_full";
    /// A connection over a connection cap (4029).
    pub const CONNECTION_LIMIT: &str = "connection_limit";
    /// A connection refused for its token or room (4003, 4004, no token).
    pub const AUTH: &str = "auth";
    /// A TCP connection closed unanswered at accept: its address already had
    /// `handshakes_per_ip` connections in the handshake, or `max_handshakes` were.
    pub const HANDSHAKE_LIMIT: &str = "handshake_limit";
    /// A handshake that did not finish in `handshake_timeout` or failed.
    pub const HANDSHAKE: &str = "handshake";
    /// A client that answered none of our pings for `idle_timeout` (closed 1001).
    pub const IDLE_TIMEOUT: &str = "idle_timeout";
    /// An agent ack for a command bbedge had already answered itself (`TIMEOUT`, agent
    /// gone): never forwarded, so at most one ack per `commandId` leaves the box.
    pub const LATE_ACK: &str = "late_ack";
    /// An observer's preview frame from central that found no agent or a full queue.
    pub const PREVIEW: &str = "preview";
    /// The reasons that drop one frame (the connection stays).
    pub const FRAMES: [&str; 9] = [
        NOT_JSON,
        BINARY,
        UNKNOWN_TYPE,
        INVALID,
        FORBIDDEN,
        TOO_LARGE,
        UPSTREAM_FULL,
        LATE_ACK,
        PREVIEW,
    ];
    /// The reasons that refuse or close a connection.
    pub const CONNECTIONS: [&str; 7] = [
        RATE_LIMITED,
        SLOW_CONSUMER,
        CONNECTION_LIMIT,
        HANDSHAKE_LIMIT,
        AUTH,
        HANDSHAKE,
        IDLE_TIMEOUT,
    ];
    /// Every reason, for `/status`.
    pub const ALL: [&str; 16] = [
        NOT_JSON,
        BINARY,
        UNKNOWN_TYPE,
        INVALID,
        FORBIDDEN,
        RATE_LIMITED,
        TOO_LARGE,
        SLOW_CONSUMER,
        UPSTREAM_FULL,
        CONNECTION_LIMIT,
        HANDSHAKE_LIMIT,
        AUTH,
        HANDSHAKE,
        IDLE_TIMEOUT,
        LATE_ACK,
        PREVIEW,
    ];
}

/// Every room metric. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Rooms held in memory.
    pub rooms: Gauge,
    /// Joined connections by role.
    pub connections: Family<Label, Gauge>,
    /// Frames received from clients (data frames, not WebSocket pings).
    pub frames_in: Counter,
    /// Frames written to clients.
    pub frames_out: Counter,
    /// Drops by reason (see [`reason`]).
    pub drops: Family<Label, Counter>,
    /// Connections closed for going over `messages_per_second` (`/status` only: on
    /// `/metrics` it is `bbedge_room_connections_dropped_total{reason="rate_limited"}`).
    pub rate_limit_hits: Counter,
    /// `room_state` frames trimmed to fit a joiner's send queue (they carry
    /// `"truncated":true`).
    pub state_trimmed: Counter,
    /// Frames queued towards clients, summed over all clients (set at scrape).
    pub queue_frames: Gauge,
    /// Bytes queued towards clients, summed over all clients (set at scrape).
    pub queue_bytes: Gauge,
    /// Snapshots written since start.
    pub snapshots: Counter,
    /// Snapshots skipped at start or at room creation because they did not decode.
    pub snapshots_corrupt: Counter,
    /// Unix ms of the last snapshot, 0 before the first.
    pub last_snapshot_ms: AtomicI64,
}

impl Stats {
    /// Counts one drop.
    pub fn dropped(&self, reason: &'static str) {
        self.drops.get_or_create(&[("reason", reason)]).inc();
    }

    /// The count of drops for `reason`.
    pub fn drops_of(&self, reason: &'static str) -> u64 {
        self.drops.get_or_create(&[("reason", reason)]).get()
    }

    /// The joined-connection gauge of a role.
    pub fn role(&self, role: &'static str) -> Gauge {
        self.connections.get_or_create(&[("role", role)]).clone()
    }

    /// Seconds since the last snapshot, -1 before the first (for `/status`).
    pub fn snapshot_age_seconds(&self) -> i64 {
        match self.last_snapshot_ms.load(Ordering::Relaxed) {
            0 => -1,
            last => (crate::protocol::now_ms() - last).max(0) / 1000,
        }
    }

    /// Registers the room metrics: `bbedge_room_*`, and the room's samples of
    /// `bbedge_frames_total` and `bbedge_frames_dropped_total` (`link="room"`).
    pub fn register(self: &Arc<Self>, metrics: &mut Metrics) {
        for (direction, counter) in [
            (Direction::In, self.frames_in.clone()),
            (Direction::Out, self.frames_out.clone()),
        ] {
            metrics.frames(Link::Room, direction, Box::new(move || counter.get()));
        }
        for why in reason::FRAMES {
            let me = self.clone();
            metrics.frames_dropped(Link::Room, why, Box::new(move || me.drops_of(why)));
        }
        let closed = CounterRows::new(
            "connections_dropped",
            "Connections refused or closed by bbedge, by reason",
        );
        for why in reason::CONNECTIONS {
            let me = self.clone();
            closed.add(vec![("reason", why)], Box::new(move || me.drops_of(why)));
        }
        let me = self.clone();
        let r = metrics.registry().sub_registry_with_prefix("room");
        r.register("rooms", "Rooms held in memory", self.rooms.clone());
        r.register(
            "connections",
            "Joined connections by role",
            self.connections.clone(),
        );
        r.register_collector(Box::new(closed));
        r.register(
            "state_trimmed",
            "room_state frames trimmed to fit a joiner's send queue",
            self.state_trimmed.clone(),
        );
        r.register(
            "queue_frames",
            "Frames queued towards clients, all clients",
            self.queue_frames.clone(),
        );
        r.register(
            "queue_bytes",
            "Bytes queued towards clients, all clients",
            self.queue_bytes.clone(),
        );
        r.register(
            "snapshots",
            "Room snapshots written",
            self.snapshots.clone(),
        );
        r.register(
            "snapshots_corrupt",
            "Room snapshots skipped because they did not decode",
            self.snapshots_corrupt.clone(),
        );
        r.register_collector(Box::new(OptionalGauge::new(
            "last_snapshot_timestamp_seconds",
            "Unix time of the last room snapshot written (no sample before the first)",
            Box::new(move || {
                let ms = me.last_snapshot_ms.load(Ordering::Relaxed);
                (ms > 0).then_some(ms / 1000)
            }),
        )));
    }
}
