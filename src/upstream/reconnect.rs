//! The reconnect loop: wait for credentials, back off with jitter, dial, serve, and
//! decide the next delay from how the connection ended (contract §c.4, §g.1, §g.2):
//! rejections (4003/4001) and connection caps (4029) jump to the capped backoff, a
//! rejection with an unexpired token is explained by the token probe ([`super::probe`]),
//! and an unclean drop arms one voluntary clean reconnect on the next connection.

use super::probe::Prober;
use super::{backoff, intake, link, session, stats, token, Error, Upstream};
use crate::error::ErrorCode;
use crate::pairing::Credentials;
use crate::signal::Link as LinkState;
use rand::SeedableRng;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

impl Upstream {
    pub(crate) fn set_state(&self, state: &'static str, link: LinkState) {
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
        let prober = Prober::new(&self.cfg.extra_ca_file, self.cfg.allow_insecure);
        let mut delay = Duration::ZERO;
        let mut was_online = false;
        // Set by an unclean drop of an acknowledged link; the next acknowledged link
        // closes cleanly and reconnects once, `clean_reconnect_after` after its ack.
        let mut clean_pending = false;
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
                self.stats
                    .info(|i| i.needs_pairing_reason = Some("token_expired"));
            }
            self.set_state(
                "connecting",
                if was_online {
                    LinkState::Offline
                } else {
                    LinkState::Connecting
                },
            );
            let clean_after = (clean_pending && self.cfg.clean_reconnect_after > 0)
                .then(|| Duration::from_secs(self.cfg.clean_reconnect_after));
            let end = self
                .connect_once(&dialer, &creds, &mut creds_rx, &token, clean_after)
                .await;
            let connected_for = end.connected_for;
            if connected_for.is_some() {
                was_online = true;
                // Once per unclean drop: whatever ended this link decides anew.
                clean_pending = end.why == session::Why::Dropped;
            }
            if was_online {
                self.set_state("offline", LinkState::Offline);
            }
            delay = match end.why {
                session::Why::Shutdown => return,
                session::Why::Credentials => {
                    backoff.reset();
                    self.stats.rejections.store(0, Ordering::Relaxed);
                    self.stats
                        .unexplained_rejections
                        .store(0, Ordering::Relaxed);
                    self.stats.info(|i| i.needs_pairing_reason = None);
                    Duration::ZERO
                }
                session::Why::Rejected { code } => {
                    if self.rejected(code, expired, &prober, &creds, &token).await {
                        return;
                    }
                    backoff.next_capped(&mut rng)
                }
                session::Why::ReEnrolled => {
                    self.hub.update(|f| f.needs_pairing = true);
                    self.stats
                        .info(|i| i.needs_pairing_reason = Some("re_enrolled"));
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
                session::Why::Limit => {
                    // §g.2: a cap means too many sockets already; more attempts add to them.
                    stats::inc(&self.stats.limited);
                    let d = backoff.next_capped(&mut rng);
                    tracing::warn!(
                        operation = "upstream.connect",
                        close_code = 4029,
                        delay_ms = d.as_millis() as u64,
                        "central's connection limit is reached; backing off to the cap"
                    );
                    d
                }
                // The old socket is closed (handshake done): reconnect at once.
                session::Why::Voluntary => Duration::ZERO,
                session::Why::Lost | session::Why::Dropped => {
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
        clean_after: Option<Duration>,
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
        self.serve(ws, creds, creds_rx, token, clean_after).await
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
