//! The upstream link: one outbound WebSocket into central's `device:<uuid>` room, kept
//! for years through outages, reboots and power cuts (contract §c, §d, §f, §g).
//!
//! - [`link`]: TLS, the Bearer header, the clean close.
//! - [`session`]: one connection's `select!` loop (send nothing before
//!   `connection.ack`, then `device.connected`, status, replay, keepalive).
//! - [`core`]: the I/O-free state of a connection (ping confirmations, live queue).
//! - [`outbox`]: device → central frames on flash, per-type policy.
//! - [`budget`], [`backoff`]: the rate budget and the reconnect schedule.
//! - [`intake`]: agent frames into the outbox or the live connection.
//! - [`commands`]: central commands to the agent and the ack back, in time.
//! - [`manifest`]: `session.manifest` signed at send time.
//! - [`frames`], [`token`], [`stats`]: frame builders and readers, token `exp`, counters.
//!
//! The reconnect loop ([`Upstream::run`]) lives here.

pub mod backoff;
pub mod budget;
pub mod commands;
pub mod core;
pub mod frames;
pub mod intake;
pub mod link;
pub mod manifest;
pub mod outbox;
pub mod schedule;
pub mod session;
pub mod stats;
pub mod token;

use crate::config::Upstream as Config;
use crate::error::ErrorCode;
use crate::pairing::{CredentialStore, Credentials};
use crate::relay::UpstreamSide;
use crate::signal::{Link as LinkState, StatusHub};
use crate::store::{self, Store};
use rand::SeedableRng;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;

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

/// Rejections in a row (4003/4001) after which the box asks for re-pairing even if the
/// token has not expired by its own clock.
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
    pub frame: Value,
}

/// The service, built in `App::bind`, run in `App::run`.
pub struct Upstream {
    pub(crate) cfg: Config,
    pub(crate) outbox: outbox::Outbox,
    pub(crate) stats: Arc<stats::Stats>,
    pub(crate) creds: CredentialStore,
    pub(crate) key_path: PathBuf,
    pub(crate) hub: StatusHub,
    pub(crate) relay: commands::Relay,
    pub(crate) schedule: schedule::Schedule,
    from_agent: Option<mpsc::Receiver<Value>>,
    /// Set while central has acknowledged the link (read by the intake).
    pub(crate) online: Arc<AtomicBool>,
    /// The intake wakes the connection when the outbox grew.
    pub(crate) outbox_grew: Arc<Notify>,
    /// The agent's status as it came through `to_central`.
    pub(crate) intake_status: watch::Sender<Option<Value>>,
    /// Live frames from the intake (preview, agent acks).
    live_tx: mpsc::Sender<(core::UrgentKind, Value)>,
    pub(crate) live_rx: mpsc::Receiver<(core::UrgentKind, Value)>,
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
        let UpstreamSide {
            to_agent,
            from_agent,
            agent_status,
        } = p.relay;
        Ok(Self {
            schedule: schedule::Schedule::open(p.store, to_agent.clone())?,
            relay: commands::Relay {
                to_agent,
                agent_status,
                hub: p.hub.clone(),
            },
            cfg: p.config,
            outbox,
            stats: Arc::new(stats::Stats::default()),
            creds: p.credentials,
            key_path: p.key_path,
            hub: p.hub,
            from_agent: Some(from_agent),
            online: Arc::new(AtomicBool::new(false)),
            outbox_grew: Arc::new(Notify::new()),
            intake_status: watch::Sender::new(None),
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

    fn set_state(&self, state: &'static str, link: LinkState) {
        self.stats.info(|i| i.state = state);
        self.online.store(state == "online", Ordering::SeqCst);
        self.hub.update(|f| f.link = link);
    }

    /// Runs the reconnect loop until `token` is cancelled.
    pub async fn run(mut self, token: CancellationToken) {
        if let Some(from_agent) = self.from_agent.take() {
            let intake = intake::Intake {
                outbox: self.outbox.clone(),
                stats: self.stats.clone(),
                hub: self.hub.clone(),
                live: self.live_tx.clone(),
                online: self.online.clone(),
                outbox_grew: self.outbox_grew.clone(),
                status: self.intake_status.clone(),
            };
            tokio::spawn(intake::run(from_agent, intake, token.child_token()));
        }
        tokio::spawn(self.schedule.clone().run_autonomy(
            self.online.clone(),
            self.outbox.clone(),
            self.outbox_grew.clone(),
            token.child_token(),
        ));
        let mut rng = match self.jitter_seed {
            Some(s) => rand::rngs::StdRng::seed_from_u64(s),
            None => rand::rngs::StdRng::from_entropy(),
        };
        let mut backoff = backoff::Backoff::new(
            Duration::from_secs(self.cfg.backoff_initial),
            Duration::from_secs(self.cfg.backoff_max),
        );
        let mut creds_rx = self.creds.subscribe();
        let dialer = link::Dialer::new(&self.cfg.extra_ca_file, self.cfg.allow_insecure);
        let mut delay = Duration::ZERO;
        let mut was_online = false;
        loop {
            let current = creds_rx.borrow_and_update().clone();
            let dialer = match (&dialer, current.as_ref()) {
                (Ok(d), Some(c)) if self.cfg.enabled => (d.clone(), c.clone()),
                (Err(e), Some(_)) if self.cfg.enabled => {
                    tracing::error!(operation = "upstream.connect", code = e.code(), error = %e, "upstream link disabled");
                    self.stats
                        .info(|i| i.last_error = Some(e.code().to_owned()));
                    self.set_state("disabled", LinkState::Disabled);
                    if wait_creds(&mut creds_rx, &token).await {
                        return;
                    }
                    continue;
                }
                _ => {
                    self.set_state("disabled", LinkState::Disabled);
                    if wait_creds(&mut creds_rx, &token).await {
                        return;
                    }
                    continue;
                }
            };
            let (dialer, creds) = dialer;
            if !delay.is_zero() {
                tracing::debug!(
                    operation = "upstream.backoff",
                    delay_ms = delay.as_millis() as u64,
                    "waiting before reconnecting"
                );
                self.stats
                    .info(|i| i.retry_at = Some(Instant::now() + delay));
                tokio::select! {
                    _ = token.cancelled() => return,
                    r = creds_rx.changed() => {
                        if r.is_err() { return; }
                        delay = Duration::ZERO;
                        backoff.reset();
                        continue;
                    }
                    _ = tokio::time::sleep(delay) => {}
                }
                self.stats.info(|i| i.retry_at = None);
            }
            let expired = token::expired(
                creds.token.expose(),
                time::OffsetDateTime::now_utc().unix_timestamp(),
            ) == Some(true);
            if expired {
                self.hub.update(|f| f.needs_pairing = true);
            }
            self.set_state(
                "connecting",
                if was_online {
                    LinkState::Offline
                } else {
                    LinkState::Connecting
                },
            );
            let end = self
                .connect_once(&dialer, &creds, &mut creds_rx, &token)
                .await;
            let connected_for = end.connected_for;
            if connected_for.is_some() {
                was_online = true;
            }
            if was_online {
                self.set_state("offline", LinkState::Offline);
            }
            delay = match end.why {
                session::Why::Shutdown => return,
                session::Why::Credentials => {
                    backoff.reset();
                    self.stats.rejections.store(0, Ordering::Relaxed);
                    Duration::ZERO
                }
                session::Why::Rejected { code } => {
                    let n = self.stats.rejections.fetch_add(1, Ordering::Relaxed) + 1;
                    let needs = expired || n >= REJECTIONS_BEFORE_NEEDS_PAIRING;
                    if needs {
                        self.hub.update(|f| f.needs_pairing = true);
                    }
                    tracing::warn!(
                        operation = "upstream.connect",
                        close_code = code,
                        rejections = n,
                        token_expired = expired,
                        needs_pairing = needs,
                        "central rejected the device token"
                    );
                    backoff.next_capped(&mut rng)
                }
                session::Why::ReEnrolled => {
                    self.hub.update(|f| f.needs_pairing = true);
                    self.set_state("needs_pairing", LinkState::Offline);
                    tracing::warn!(
                        operation = "upstream.connect",
                        "central says the device was re-enrolled; re-pair with a fresh code"
                    );
                    if wait_creds(&mut creds_rx, &token).await {
                        return;
                    }
                    Duration::ZERO
                }
                session::Why::Limit => backoff.next_capped(&mut rng),
                session::Why::Lost => {
                    if connected_for
                        .is_some_and(|d| d >= Duration::from_secs(self.cfg.backoff_reset_after))
                    {
                        backoff.reset();
                    }
                    if expired {
                        backoff.next_capped(&mut rng)
                    } else {
                        backoff.next_delay(&mut rng)
                    }
                }
            };
        }
    }

    /// One attempt: dial, wait for the ack, serve, close.
    async fn connect_once(
        &mut self,
        dialer: &link::Dialer,
        creds: &Credentials,
        creds_rx: &mut watch::Receiver<Option<Credentials>>,
        token: &CancellationToken,
    ) -> session::End {
        let url = creds.room_url();
        self.stats.info(|i| i.url = Some(url.clone()));
        stats::inc(&self.stats.attempts);
        let dial = tokio::select! {
            _ = token.cancelled() => return session::End::new(session::Why::Shutdown),
            d = dialer.dial(&url, &creds.token) => d,
        };
        let ws = match dial {
            Ok(ws) => ws,
            Err(e) => {
                self.stats
                    .info(|i| i.last_error = Some(e.code().to_owned()));
                match &e {
                    Error::Certificate { .. } | Error::Insecure { .. } | Error::BadUrl { .. } => {
                        tracing::error!(operation = "upstream.connect", code = e.code(), url = %url, error = %e, "cannot connect to central")
                    }
                    _ => {
                        tracing::info!(operation = "upstream.connect", code = e.code(), url = %url, error = %e, "cannot connect to central")
                    }
                }
                return session::End::new(session::Why::Lost);
            }
        };
        self.serve(ws, creds, creds_rx, token).await
    }
}

/// Waits for new credentials; `true` when shutting down instead.
async fn wait_creds(
    rx: &mut watch::Receiver<Option<Credentials>>,
    token: &CancellationToken,
) -> bool {
    tokio::select! {
        _ = token.cancelled() => true,
        r = rx.changed() => r.is_err(),
    }
}
