//! The upstream link: one outbound WebSocket into central's `device:<uuid>` room, kept
//! for years through outages, reboots and power cuts (contract §c, §d, §f, §g).
//!
//! - [`link`]: TLS, the Bearer header, the clean close.
//! - [`session`]: one connection from upgrade to close (send nothing before
//!   `connection.ack`) and why it ended.
//! - [`online`]: the acknowledged connection's `select!` loop (`device.connected`,
//!   status, replay, keepalive, the clean reconnect after an unclean drop).
//! - [`state`]: the link as one I/O-free state machine ([`state::Link`]): attempts,
//!   generation, rejections, backoff, the clean reconnects, the signing hold.
//! - [`core`]: the I/O-free state of a connection (ping confirmations, live queue).
//! - [`outbox`]: device → central frames on flash, per-type policy.
//! - [`budget`], [`backoff`]: the rate budget and the reconnect schedule.
//! - [`intake`]: agent frames into the outbox or the live connection.
//! - [`commands`]: central commands to the agent and the ack back, in time.
//! - [`manifest`]: `session.manifest` signed at send time.
//! - [`signing`]: the signing key at send time; manifests wait for it, never go unsigned.
//! - [`dispatch`]: one inbound frame; manifests at send time.
//! - [`frames`], [`token`], [`stats`]: frame builders and readers, token `exp`, counters.
//!
//! - [`reconnect`]: the reconnect loop ([`Upstream::run`]).
//! - [`probe`]: the §b.6 token probe that explains a 4003; [`rejection`]: what a
//!   rejection means for `needs_pairing`.

pub mod backoff;
pub mod budget;
pub mod commands;
pub mod core;
pub mod dispatch;
pub mod frames;
pub mod intake;
pub mod link;
pub mod manifest;
pub mod online;
pub mod outbox;
pub mod probe;
pub mod reconnect;
pub mod rejection;
pub mod schedule;
pub mod session;
pub mod signing;
pub mod state;
pub mod stats;
pub mod token;

use crate::config::Upstream as Config;
use crate::error::ErrorCode;
use crate::pairing::CredentialStore;
use crate::relay::UpstreamSide;
use crate::signal::StatusHub;
use crate::store::{self, Store};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, Notify};

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The realtime URL is not `ws://` or `wss://`.
    #[error("the realtime URL {url} is not a ws:// or wss:// URL")]
    BadUrl {
        /// The URL.
        url: String,
    },
    /// `ws://` to a host that is not loopback without `allow_insecure`.
    #[error("refusing cleartext ws:// to {host}: use wss:// or set upstream.allow_insecure for development")]
    Insecure {
        /// The host.
        host: String,
    },
    /// `upstream.extra_ca_file` is unusable.
    #[error("cannot use upstream.extra_ca_file {path}: {detail}")]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// Central's certificate did not verify.
    #[error("TLS certificate of {host} rejected: {detail}; check the realtime URL or add its CA with upstream.extra_ca_file")]
    Certificate {
        /// The host.
        host: String,
        /// rustls' reason.
        detail: String,
    },
    /// Another TLS failure.
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The upgrade was answered with an HTTP status (401 for a wrong path, §c.1).
    #[error("central answered the upgrade with HTTP {0}")]
    Http(u16),
    /// TCP or WebSocket failure.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// Connect, TLS and upgrade took longer than [`link::CONNECT_TIMEOUT`].
    #[error("connecting timed out")]
    Timeout,
}

impl ErrorCode for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::BadUrl { .. } => "UPSTREAM_BAD_URL",
            Error::Insecure { .. } => "UPSTREAM_INSECURE",
            Error::CaFile { .. } => "UPSTREAM_CA_FILE",
            Error::Certificate { .. } => "TLS_CERTIFICATE",
            Error::Tls(_) => "TLS_FAILED",
            Error::Http(_) => "HTTP_REFUSED",
            Error::Connect(_) => "CONNECT_FAILED",
            Error::Timeout => "CONNECT_TIMEOUT",
        }
    }
}

/// Rejections in a row (4003/4001) that the token probe could not explain (route not
/// mounted, central down) after which the box asks for re-pairing even if the token has
/// not expired by its own clock. A probe that names the cause decides at once.
pub const REJECTIONS_BEFORE_NEEDS_PAIRING: u64 = 3;

/// Commands' acks from their tasks to the connection. Bounded by the commands in flight.
pub const ACKS_CAPACITY: usize = commands::MAX_IN_FLIGHT * 2;

/// What the composition root hands over.
pub struct Parts {
    /// `[upstream]`.
    pub config: Config,
    /// The store (outbox and schedule trees).
    pub store: Store,
    /// The credentials, watched for re-pairing.
    pub credentials: CredentialStore,
    /// The Ed25519 key (PKCS#8 PEM) used when `key_registered`.
    pub key_path: PathBuf,
    /// Status facts: `link`, `needs_pairing`, `identify`, `storage_fault`.
    pub hub: StatusHub,
    /// The seam to the local room.
    pub relay: UpstreamSide,
    /// The status LED (central's `identify` blinks it).
    pub led: crate::signal::LedHandle,
    /// Seeds the reconnect jitter (tests pin it; `None` in production).
    pub jitter_seed: Option<u64>,
}

/// A command's ack on its way to the connection it came from.
#[derive(Debug)]
pub struct AckOut {
    /// The connection number the command arrived on.
    pub generation: u64,
    /// Central's deadline for it.
    pub expires: Instant,
    /// The ack frame.
    pub frame: crate::protocol::Inbound,
}

/// The service, built in `App::bind`, run in `App::run`.
pub struct Upstream {
    pub(crate) cfg: Config,
    pub(crate) outbox: outbox::Outbox,
    pub(crate) stats: Arc<stats::Stats>,
    /// The link's state machine; the loop only does I/O and [`Upstream::publish`]es it.
    pub(crate) link: state::Link,
    pub(crate) creds: CredentialStore,
    pub(crate) key_path: PathBuf,
    pub(crate) hub: StatusHub,
    pub(crate) relay: commands::Relay,
    pub(crate) schedule: schedule::Schedule,
    from_agent: Option<mpsc::Receiver<crate::protocol::Inbound>>,
    /// Set while central has acknowledged the link (read by the intake).
    pub(crate) online: Arc<AtomicBool>,
    /// The intake wakes the connection when the outbox grew.
    pub(crate) outbox_grew: Arc<Notify>,
    /// Live frames from the intake (preview, agent acks).
    live_tx: mpsc::Sender<(core::UrgentKind, crate::protocol::Inbound)>,
    pub(crate) live_rx: mpsc::Receiver<(core::UrgentKind, crate::protocol::Inbound)>,
    /// Command tasks → connection.
    pub(crate) acks_tx: mpsc::Sender<AckOut>,
    pub(crate) acks_rx: mpsc::Receiver<AckOut>,
    pub(crate) in_flight: Arc<tokio::sync::Semaphore>,
    pub(crate) started: Instant,
    jitter_seed: Option<u64>,
}

impl Upstream {
    /// Builds the service and opens the outbox.
    pub fn new(p: Parts) -> Result<Self, store::Error> {
        let limits = outbox::Limits {
            max_frames: p.config.outbox_max_frames,
            max_bytes: p.config.outbox_max_bytes,
            max_age_ms: (p.config.outbox_max_age as i64).saturating_mul(1000),
            min_free_bytes: p.config.outbox_min_free_bytes,
        };
        let outbox = outbox::Outbox::open(p.store.clone(), limits)?;
        let (live_tx, live_rx) = mpsc::channel(intake::LIVE_CAPACITY);
        let (acks_tx, acks_rx) = mpsc::channel(ACKS_CAPACITY);
        let secs = std::time::Duration::from_secs;
        let link = state::Link::new(
            state::Timing {
                clean_after: secs(p.config.clean_reconnect_after),
                stale_after: secs(p.config.stale_attempt_reconnect_after),
                backoff_reset_after: secs(p.config.backoff_reset_after),
            },
            backoff::Backoff::new(secs(p.config.backoff_initial), secs(p.config.backoff_max)),
        );
        let UpstreamSide {
            to_agent,
            preview_to_agent,
            from_agent,
            agent_status,
        } = p.relay;
        Ok(Self {
            schedule: schedule::Schedule::open(p.store, to_agent.clone())?,
            relay: commands::Relay {
                to_agent,
                agent_status,
                led: p.led,
                preview_to_agent,
                preview_drops: Arc::default(),
            },
            cfg: p.config,
            outbox,
            stats: Arc::new(stats::Stats::default()),
            link,
            creds: p.credentials,
            key_path: p.key_path,
            hub: p.hub,
            from_agent: Some(from_agent),
            online: Arc::new(AtomicBool::new(false)),
            outbox_grew: Arc::new(Notify::new()),
            live_tx,
            live_rx,
            acks_tx,
            acks_rx,
            in_flight: Arc::new(tokio::sync::Semaphore::new(commands::MAX_IN_FLIGHT)),
            started: Instant::now(),
            jitter_seed: p.jitter_seed,
        })
    }

    /// The `/status` "upstream" section.
    pub fn status_section(&self) -> crate::health::StatusSection {
        let stats = self.stats.clone();
        let outbox = self.outbox.clone();
        Box::new(move || stats.section(&outbox))
    }

    /// Registers the `bbedge_upstream_*` metrics.
    pub fn register_metrics(&self, metrics: &mut crate::health::metrics::Metrics) {
        self.stats.register(metrics, self.outbox.clone());
    }

    /// The counters (tests and tools read them).
    pub fn stats(&self) -> Arc<stats::Stats> {
        self.stats.clone()
    }

    /// The outbox (tests and tools inspect it).
    pub fn outbox(&self) -> &outbox::Outbox {
        &self.outbox
    }
}
