//! The box's own web page (`[web]`, docs/WEB.md): live status with the LED animated as
//! it plays, the upstream link, the agent, the room's participants; and the actions
//! `bbedge pair`, `bbedge led identify` and `bbedge token add|revoke` offer, through
//! the same code. Nothing but a sign-in page without an `admin` token.
//!
//! - [`server`]: the listener (plain HTTP, or the `[realtime.tls]` certificate).
//! - [`routes`]: the routes, the sign-in wall, CSRF and the security headers.
//! - [`session`]: signed-in sessions (bounded, idle expiry, a CSRF token each).
//! - [`snapshot`]: the JSON the page renders, also pushed over [`sse`].
//! - [`actions`]: pairing, identify, token add and revoke.
//! - [`assets`]: the HTML, CSS and JS, built into the binary.

pub mod actions;
mod assets;
mod http;
pub mod routes;
pub mod server;
pub mod session;
pub mod snapshot;
mod sse;

pub use server::{bind, Bound};

use crate::app::Paths;
use crate::config::Config;
use crate::health::StatusBoard;
use crate::pairing::{status::Report, CredentialStore};
use crate::signal::{LedHandle, StatusHub};
use crate::store::Store;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Everything the page reads and acts on; built by the composition root.
pub struct Web {
    /// The whole configuration (pairing settings, device defaults).
    pub config: Arc<Config>,
    /// Resolved paths (credentials, key).
    pub paths: Paths,
    /// Tokens.
    pub store: Store,
    /// The device state's facts.
    pub hub: StatusHub,
    /// The LED: identify, and what it plays.
    pub led: LedHandle,
    /// The `/status` sections (upstream, pairing, rooms).
    pub board: StatusBoard,
    /// The pairing credentials (re-read after a pairing).
    pub credentials: CredentialStore,
    /// Pairing's last error, shown on `/status` too.
    pub report: Report,
    /// The local rooms, when `[realtime] enabled`.
    pub rooms: Option<Arc<crate::room::Service>>,
    /// Signed-in sessions.
    pub sessions: session::Sessions,
    /// When the daemon started.
    pub started: Instant,
    /// Cancelled at shutdown: open event streams end.
    pub stopping: CancellationToken,
    /// Event streams open at once.
    pub streams: Arc<tokio::sync::Semaphore>,
}

/// Event streams (`/events`) open at once; one more is answered 503.
pub const MAX_STREAMS: usize = 8;
