//! The acknowledged connection's `select!` loop: `device.connected` and a status first
//! (§d.5, §f.2), then the outbox replay and live traffic through the rate budget, status
//! and WebSocket pings on their timers, and the one voluntary clean reconnect after an
//! unclean drop (§g.1). Never disconnects over an inbound frame it does not understand.

use super::core::{Core, Urgent, UrgentKind};
use super::frames;
use super::outbox::Kind;
use super::session::{close_why, Why, SEND_TIMEOUT, SKEW_WAIT};
use super::state::{Acked, CleanReason};
use super::stats::inc;
use super::{link, manifest, Upstream};
use crate::pairing::Credentials;
use crate::protocol::now_ms;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

impl Upstream {
    pub(crate) fn edge(&self) -> Value {
        let d = self.outbox.depth();
        json!({
            "version": crate::version::VERSION,
            "uptime_s": self.started.elapsed().as_secs(),
            "outbox_frames": d.frames,
            "agent_connected": self.agent_status().is_some(),
        })
    }

    /// The connected agent's last status, as the local room publishes it: `None` with
    /// no agent, and again the moment the agent disconnects, so central is never told
    /// that a departed agent is still recording. (The intake ignores the status frame
    /// itself: one source, nothing that could go stale.)
    pub(crate) fn agent_status(&self) -> Option<crate::protocol::Inbound> {
        self.relay.agent_status.borrow().clone()
    }

    pub(crate) fn status_frame(&self, creds: &Credentials) -> Urgent {
        let f = frames::status(&creds.device_id, self.agent_status().as_ref(), self.edge());
        Urgent {
            kind: UrgentKind::Status,
            frame: f.to_string(),
            expires: None,
        }
    }

    /// The acknowledged connection. Returns why it ended and the close code to send
    /// (`None` when central already closed it or the socket is dead). `started.clean`:
    /// when to close cleanly and reconnect once (§g.1), as the link decided.
    pub(crate) async fn online_loop(
        &mut self,
        ws: &mut link::Ws,
        creds: &Credentials,
        creds_rx: &mut watch::Receiver<Option<Credentials>>,
        token: &CancellationToken,
        started: Acked,
    ) -> (Why, Option<u16>) {
        let now = clock();
        let generation = started.generation;
        let clean_at = started
            .clean
            .map(|(at, _)| tokio::time::Instant::from_std(at));
        let clean_reason = started.clean.map(|(_, r)| r);
        let secs = Duration::from_secs;
        let mut core = Core::new(
            now,
            super::budget::Budget::new(self.cfg.frames_per_second, super::budget::WINDOW),
            secs(self.cfg.ping_interval),
            secs(self.cfg.pong_timeout),
            secs(self.cfg.status_interval),
        );
        let connected = frames::device_connected(self.agent_status().as_ref());
        core.push(Urgent {
            kind: UrgentKind::Event,
            frame: connected.to_string(),
            expires: None,
        });
        core.push(self.status_frame(creds));
        // Loaded once per connection when it can be; when it cannot, `manifest_text` reads
        // the file again per manifest and `signing` logs the change once, not here.
        let key = if creds.key_registered {
            manifest::load_key(&self.key_path).ok()
        } else {
            None
        };
        // A JSON ping once per connection measures central's clock (the pong carries it).
        let ping_sent_ms = now_ms();
        if send(ws, Message::Text(r#"{"type":"ping"}"#.into()))
            .await
            .is_err()
        {
            return (Why::Dropped, None);
        }
        let mut agent_status = self.relay.agent_status.clone();
        let mut waiting = false;
        let mut acks_expired_seen = 0;
        let mut skew: Option<i64> = None;
        let hold_until = now + SKEW_WAIT;
        loop {
            let now = clock();
            if core.dead(now) {
                self.link.failed("PONG_TIMEOUT", now_ms());
                tracing::warn!(
                    operation = "upstream.keepalive",
                    "no pong from central in time; reconnecting"
                );
                return (Why::Dropped, Some(1001));
            }
            if let Some(seq) = core.ping_due(now) {
                if send(ws, Message::Ping(seq.to_be_bytes().to_vec().into()))
                    .await
                    .is_err()
                {
                    return (Why::Dropped, None);
                }
            }
            if core.status_due(now) {
                core.push(self.status_frame(creds));
            }
            // Write-only counters: add what the core dropped since the last turn.
            let expired = core.dropped.ack_expired;
            self.stats
                .ack_expired
                .fetch_add(expired.saturating_sub(acks_expired_seen), Ordering::Relaxed);
            acks_expired_seen = expired;
            let mut head = self.outbox.next_after(core.cursor(), now_ms());
            // A manifest waits (briefly) for central's clock so `signed_at` is fresh by
            // central's reckoning; everything behind it waits too, keeping the order.
            let held = skew.is_none()
                && now < hold_until
                && head.as_ref().is_some_and(|(_, e)| e.kind == Kind::Manifest);
            if held {
                head = None;
            }
            let pending = core.has_urgent() || head.is_some();
            if pending && core.budget.ready_at(now) <= now {
                waiting = false;
                let text = if let Some(u) = core.pop_urgent(now) {
                    Some(u.frame)
                } else if let Some((seq, entry)) = head {
                    let text = match entry.kind {
                        Kind::Event => Ok(entry.frame),
                        Kind::Manifest => {
                            self.manifest_text(&entry.frame, creds, key.as_ref(), skew.unwrap_or(0))
                        }
                    };
                    match text {
                        Ok(t) => {
                            core.sent_outbox(seq, now);
                            Some(t)
                        }
                        Err(keep) => {
                            // Not sendable on this connection: step over it; keep it for
                            // a later one (missing key) or drop it (unusable).
                            core.skip(seq);
                            if !keep {
                                self.outbox.remove(&[seq]);
                            }
                            None
                        }
                    }
                } else {
                    None
                };
                if let Some(text) = text {
                    core.budget.try_take(now);
                    if send(ws, Message::Text(text.into())).await.is_err() {
                        return (Why::Dropped, None);
                    }
                    inc(&self.stats.frames_out);
                }
                continue;
            }
            if pending && !waiting {
                waiting = true;
                inc(&self.stats.budget_waits);
            }
            let mut wake = core.next_wake(now, pending);
            if held {
                wake = wake.min(hold_until);
            }
            let wake = tokio::time::Instant::from_std(wake);
            tokio::select! {
                () = token.cancelled() => return (Why::Shutdown, Some(1001)),
                Ok(()) = creds_rx.changed() => return (Why::Credentials, Some(1000)),
                msg = ws.next() => match msg {
                    None => return (Why::Dropped, None),
                    Some(Err(e)) => {
                        self.link.failed("CONNECTION_LOST", now_ms());
                        tracing::info!(operation = "upstream.read", error = %e, "connection lost");
                        return (Why::Dropped, None);
                    }
                    Some(Ok(Message::Close(f))) => {
                        let (why, code) = close_why(f.as_ref());
                        self.link.failed(format!("CLOSE_{code}"), now_ms());
                        tracing::info!(operation = "upstream.read", close_code = code, "central closed the connection");
                        return (why, Some(1000));
                    }
                    Some(Ok(Message::Pong(p))) => {
                        let seq = <[u8; 8]>::try_from(p.as_ref()).map_or(0, u64::from_be_bytes);
                        let done = core.on_pong(seq);
                        if !done.is_empty() {
                            self.outbox.remove(&done);
                            self.outbox.flush().await;
                        }
                    }
                    Some(Ok(Message::Text(t))) => {
                        inc(&self.stats.frames_in);
                        let errors = self.link.last_error().cloned();
                        if let Some(stop) = self.inbound(&t, &mut core, generation, ping_sent_ms, &mut skew) {
                            return (stop, Some(1000));
                        }
                        // A control error from central shows on /status at once.
                        if self.link.last_error() != errors.as_ref() {
                            self.publish();
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        inc(&self.stats.malformed_in);
                        tracing::debug!(operation = "upstream.read", "binary frame from central ignored");
                    }
                    Some(Ok(_)) => {}
                },
                Some(a) = self.acks_rx.recv() => self.take_ack(&mut core, a, generation),
                Some((kind, v)) = self.live_rx.recv() => {
                    let expires = (kind == UrgentKind::Ack).then(|| clock() + Duration::from_secs(5));
                    core.push(Urgent { kind, frame: v.to_string(), expires });
                }
                Ok(()) = agent_status.changed() => core.push(self.status_frame(creds)),
                () = self.outbox_grew.notified() => {}
                () = tokio::time::sleep_until(clean_at.unwrap_or(wake)), if clean_at.is_some() => {
                    inc(&self.stats.clean_reconnects);
                    log_clean_reconnect(clean_reason);
                    return (Why::Voluntary, Some(1000));
                }
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}

fn log_clean_reconnect(reason: Option<CleanReason>) {
    match reason {
        Some(CleanReason::UncleanDrop) | None => tracing::info!(
            operation = "upstream.reconnect",
            reason = "unclean_drop",
            "clean reconnect after an unclean drop"
        ),
        Some(CleanReason::StaleAttempt) => tracing::info!(
            operation = "upstream.reconnect",
            reason = "stale_attempt",
            "clean reconnect after an attempt given up with its fate unknown"
        ),
    }
}

/// The link's clock: tokio's, so every timer of the link follows paused time in tests;
/// the same as `Instant::now()` in production.
pub(crate) fn clock() -> Instant {
    tokio::time::Instant::now().into_std()
}

async fn send(ws: &mut link::Ws, msg: Message) -> Result<(), ()> {
    match tokio::time::timeout(SEND_TIMEOUT, ws.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::info!(operation = "upstream.write", error = %e, "write failed");
            Err(())
        }
        Err(_) => {
            tracing::warn!(operation = "upstream.write", "write timed out");
            Err(())
        }
    }
}
