//! The internal hook-event bus: what happened, for whoever cares (LED, metrics, logs,
//! upstream audit events).
//!
//! A `tokio::sync::broadcast` channel of [`HookEvent`] with a fixed capacity
//! ([`CAPACITY`]). Publishing never waits; a subscriber that falls more than
//! `CAPACITY` events behind loses the oldest ones and is told how many (`Lagged`), so
//! state that must not be lost is kept in a `watch` (see [`crate::signal::StatusHub`]),
//! not only on the bus.

use serde::Serialize;
use tokio::sync::broadcast;

/// Events a slow subscriber may fall behind before it loses the oldest.
pub const CAPACITY: usize = 256;

/// Something that happened inside bbedge. The `name()` strings are stable.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum HookEvent {
    /// `realtime:room:created`: a room was created by its first join (or restored).
    RoomCreated {
        /// Room id, `device:<uuid>`.
        room: String,
    },
    /// `realtime:room:destroyed`: an empty room outlived `cleanup_timeout`.
    RoomDestroyed {
        /// Room id.
        room: String,
    },
    /// `realtime:client:connected`: a client joined a room.
    ClientConnected {
        /// Room id.
        room: String,
        /// The client id handed out in `connection.ack`.
        client: String,
        /// `agent`, `operator` or `observer`.
        role: String,
    },
    /// `realtime:client:disconnected`: a client left a room.
    ClientDisconnected {
        /// Room id.
        room: String,
        /// Client id.
        client: String,
        /// Role.
        role: String,
        /// Why (`closed`, `idle_timeout`, `slow_consumer`, `rate_limited`, `revoked`, …).
        reason: String,
    },
    /// `realtime:snapshot:saved`: a room's state is on flash.
    SnapshotSaved {
        /// Room id.
        room: String,
        /// Encoded size.
        bytes: usize,
    },
}

impl HookEvent {
    /// The stable event name, as in the realtime design.
    pub fn name(&self) -> &'static str {
        match self {
            HookEvent::RoomCreated { .. } => "realtime:room:created",
            HookEvent::RoomDestroyed { .. } => "realtime:room:destroyed",
            HookEvent::ClientConnected { .. } => "realtime:client:connected",
            HookEvent::ClientDisconnected { .. } => "realtime:client:disconnected",
            HookEvent::SnapshotSaved { .. } => "realtime:snapshot:saved",
        }
    }
}

/// The bus. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Bus {
    tx: broadcast::Sender<HookEvent>,
}

impl Default for Bus {
    fn default() -> Self {
        Self::new()
    }
}

impl Bus {
    /// A bus with [`CAPACITY`] slots.
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
        }
    }

    /// Publishes an event; never waits. With no subscriber the event is dropped.
    pub fn publish(&self, event: HookEvent) {
        tracing::debug!(operation = "bus.publish", event = event.name(), "{event:?}");
        let _ = self.tx.send(event);
    }

    /// A new subscriber that sees events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<HookEvent> {
        self.tx.subscribe()
    }
}
