//! The reconnect loop: wait for credentials, back off with jitter, dial, serve, and
//! decide the next delay from how the connection ended (contract §c.4, §g.1, §g.2):
//! rejections (4003/4001) and connection caps (4029) jump to the capped backoff, a
//! rejection with an unexpired token is explained by the token probe ([`super::probe`]),
//! and an unclean drop or an attempt given up with its fate unknown arms one voluntary
//! clean reconnect on the next connection. What to do is [`super::state::Link`]'s
//! decision; this loop only does the I/O and shows the result ([`Upstream::publish`]).

use super::probe::Prober;
use super::state::LinkState;
use super::{intake, link, online, session, stats, token, Error, Upstream};
use crate::error::ErrorCode;
use crate::pairing::Credentials;
use crate::protocol::now_ms;
use rand::SeedableRng;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

impl Upstream {
    /// Shows the link's state: the signal fact (`offline` only while frames wait:
    /// the outbox holds some, or the agent records), the online flag the intake and
    /// the schedule read, and the copy `/status` shows. The only writer of all three.
    pub(crate) fn publish(&self) {
        let buffering = self.outbox.depth().frames > 0 || self.hub.facts().recording;
        let state = self.link.state();
        self.online.store(state.is_online(), Ordering::SeqCst);
        self.hub.update(|f| f.link = self.link.fact(buffering));
        let retry_at = match state {
            LinkState::Waiting { until } => {
                Some(Instant::now() + until.saturating_duration_since(online::clock()))
            }
            _ => None,
        };
        let last = self.link.last_error();
        self.stats.info(|i| {
            i.state = state;
            i.retry_at = retry_at;
            i.rejections = self.link.rejections();
            i.needs_pairing_reason = self.link.needs_pairing_reason();
            i.last_error = last.map(|e| e.code.clone());
            i.last_error_attempt = last.map(|e| e.attempt);
            i.last_error_at = last.and_then(|e| rfc3339(e.at_ms));
        });
    }

    /// Runs the reconnect loop until `token` is cancelled. Returns once the intake and
    /// the schedule's task have ended too: they hold the outbox, so whoever stopped the
    /// link may close the store (a test that restarts the box in-process found the
    /// database still locked by them).
    pub async fn run(mut self, token: CancellationToken) {
        let helpers_token = token.child_token();
        let mut helpers = Vec::with_capacity(2);
        if let Some(from_agent) = self.from_agent.take() {
            let intake = intake::Intake {
                outbox: self.outbox.clone(),
                stats: self.stats.clone(),
                hub: self.hub.clone(),
                live: self.live_tx.clone(),
                online: self.online.clone(),
                outbox_grew: self.outbox_grew.clone(),
            };
            helpers.push(tokio::spawn(intake::run(
                from_agent,
                intake,
                helpers_token.clone(),
            )));
        }
        helpers.push(tokio::spawn(self.schedule.clone().run_autonomy(
            self.online.clone(),
            self.outbox.clone(),
            self.outbox_grew.clone(),
            helpers_token.clone(),
        )));
        self.reconnect(&token).await;
        helpers_token.cancel();
        for h in helpers {
            let _ = h.await;
        }
    }

    /// The loop: connect, run the session, back off, until `token` is cancelled.
    async fn reconnect(&mut self, token: &CancellationToken) {
        let mut rng = match self.jitter_seed {
            Some(s) => rand::rngs::StdRng::seed_from_u64(s),
            None => rand::rngs::StdRng::from_entropy(),
        };
        let mut creds_rx = self.creds.subscribe();
        let dialer = link::Dialer::new(&self.cfg.extra_ca_file, self.cfg.allow_insecure);
        let prober = Prober::new(&self.cfg.extra_ca_file, self.cfg.allow_insecure);
        let mut delay = Duration::ZERO;
        loop {
            let current = creds_rx.borrow_and_update().clone();
            let dialer = match (&dialer, current.as_ref()) {
                (Ok(d), Some(c)) if self.cfg.enabled => (d.clone(), c.clone()),
                (Err(e), Some(_)) if self.cfg.enabled => {
                    tracing::error!(operation = "upstream.connect", code = e.code(), error = %e, "upstream link disabled");
                    self.link.failed(e.code(), now_ms());
                    self.link.disabled();
                    self.publish();
                    if wait_creds(&mut creds_rx, token).await {
                        return;
                    }
                    continue;
                }
                _ => {
                    self.link.disabled();
                    self.publish();
                    if wait_creds(&mut creds_rx, token).await {
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
                self.link.wait(online::clock(), delay);
                self.publish();
                tokio::select! {
                    () = token.cancelled() => return,
                    r = creds_rx.changed() => {
                        if r.is_err() { return; }
                        delay = Duration::ZERO;
                        self.link.retry_now();
                        continue;
                    }
                    () = tokio::time::sleep(delay) => {}
                }
            }
            let expired = token::expired(
                creds.token.expose(),
                time::OffsetDateTime::now_utc().unix_timestamp(),
            ) == Some(true);
            if expired {
                self.hub.update(|f| f.needs_pairing = true);
            }
            self.link.attempt(expired);
            stats::inc(&self.stats.attempts);
            self.publish();
            let end = self
                .connect_once(&dialer, &creds, &mut creds_rx, token)
                .await;
            delay = self.link.ended(
                online::clock(),
                end.why,
                end.connected_for,
                expired,
                &mut rng,
            );
            // `true`: shutting down.
            let stop = match end.why {
                session::Why::Shutdown => true,
                session::Why::Rejected { code } => {
                    self.rejected(code, expired, &prober, &creds, token).await
                }
                session::Why::ReEnrolled => {
                    self.hub.update(|f| f.needs_pairing = true);
                    self.publish();
                    tracing::warn!(
                        operation = "upstream.connect",
                        "central says the device was re-enrolled; re-pair with a fresh code"
                    );
                    wait_creds(&mut creds_rx, token).await
                }
                session::Why::Limit => {
                    // §g.2: a cap means too many sockets already; more attempts add to them.
                    stats::inc(&self.stats.limited);
                    tracing::warn!(
                        operation = "upstream.connect",
                        close_code = 4029,
                        delay_ms = delay.as_millis() as u64,
                        "central's connection limit is reached; backing off to the cap"
                    );
                    false
                }
                _ => false,
            };
            if stop {
                return;
            }
            self.publish();
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
        let dial = tokio::select! {
            () = token.cancelled() => return session::End::new(session::Why::Shutdown),
            d = dialer.dial(&url, &creds.token) => d,
        };
        let ws = match dial {
            Ok(ws) => ws,
            Err(e) => {
                self.link.failed(e.code(), now_ms());
                match &e {
                    Error::Certificate { .. } | Error::Insecure { .. } | Error::BadUrl { .. } => {
                        tracing::error!(operation = "upstream.connect", code = e.code(), url = %url, error = %e, "cannot connect to central");
                    }
                    _ => {
                        tracing::info!(operation = "upstream.connect", code = e.code(), url = %url, error = %e, "cannot connect to central");
                    }
                }
                // A timeout gives up with TCP, TLS or the upgrade maybe still in
                // flight: central may yet register it (contract 0.13).
                let why = match e {
                    Error::Timeout => session::Why::Abandoned,
                    _ => session::Why::Lost,
                };
                return session::End::new(why);
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
        () = token.cancelled() => true,
        r = rx.changed() => r.is_err(),
    }
}

/// RFC 3339 for ms since the epoch.
fn rfc3339(ms: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .map(crate::protocol::frame::format_rfc3339)
}
