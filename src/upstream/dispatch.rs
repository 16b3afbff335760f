//! What the online loop does with one inbound frame from central (commands, pongs,
//! control errors, schedule pushes, observers' preview frames) and with manifests at
//! send time. Split from [`super::online`] to keep each file on one screen.

use super::core::{Core, Urgent, UrgentKind};
use super::frames::{self, Inbound};
use super::session::Why;
use super::stats::inc;
use super::{manifest, signing, AckOut, Upstream};
use crate::pairing::Credentials;
use crate::protocol::frame::format_rfc3339;
use crate::protocol::now_ms;
use tokio_tungstenite::tungstenite::Utf8Bytes;

impl Upstream {
    pub(crate) fn take_ack(&self, core: &mut Core, a: AckOut, generation: u64) {
        if a.generation == generation {
            core.push(Urgent {
                kind: UrgentKind::Ack,
                frame: a.frame.to_string(),
                expires: Some(a.expires),
            });
        } else {
            inc(&self.stats.ack_expired);
            tracing::debug!(
                operation = "upstream.command",
                "ack for a previous connection dropped"
            );
        }
    }

    /// Builds a manifest at send time (signed when the key is registered).
    /// `Err(true)`: keep it for a later connection; `Err(false)`: unusable, drop it.
    ///
    /// A device that registered a key never sends the unsigned form (central drops it
    /// silently, §d.8): without a usable key the manifest stays in the outbox and the
    /// loop steps over it, so the frames behind it still flow. The key's state is
    /// logged once per change and shown on `/status` ([`super::signing`]).
    pub(crate) fn manifest_text(
        &mut self,
        stored: &str,
        creds: &Credentials,
        key: Option<&ed25519_dalek::SigningKey>,
        skew_ms: i64,
    ) -> Result<String, bool> {
        let key = match signing::key_for_send(creds.key_registered, key, &self.key_path) {
            Ok(Some(_)) if self.link.signing_held() => {
                // The file is usable again, but manifests waiting for it were stepped
                // over on this connection (replay meets the oldest first): sending this
                // one now would overtake them. The next connection sends all, in order.
                let change = self.stats.signing.unavailable(signing::READABLE_AGAIN);
                if change != signing::Change::None {
                    tracing::info!(
                        operation = "upstream.manifest",
                        "signing key readable again; waiting session manifests go out in order on the next connection"
                    );
                }
                return Err(true);
            }
            Ok(k) => k,
            Err(e) => {
                self.link.hold_signing();
                if self.stats.signing.unavailable(&e) != signing::Change::None {
                    tracing::error!(
                        operation = "upstream.manifest",
                        error = %e,
                        "signing key unavailable; session manifests wait in the outbox until it is back (restore it or re-pair)"
                    );
                }
                return Err(true);
            }
        };
        let signed_at = rfc3339_from_ms(now_ms() + skew_ms);
        let form = manifest::Form {
            key: key.as_deref(),
            omit_capture_times: self.cfg.manifest_omit_capture_times,
            signed_at: &signed_at,
        };
        let text = manifest::prepare(stored, form).ok_or(false)?;
        if key.is_some() && self.stats.signing.available() == signing::Change::Back {
            tracing::info!(
                operation = "upstream.manifest",
                "signing key available again; waiting session manifests are sent signed"
            );
        }
        Ok(text)
    }

    /// Handles one inbound text frame; `Some` ends the connection.
    pub(crate) fn inbound(
        &mut self,
        text: &Utf8Bytes,
        core: &mut Core,
        generation: u64,
        ping_sent_ms: i64,
        skew_ms: &mut Option<i64>,
    ) -> Option<Why> {
        match frames::classify(text) {
            Inbound::Command { id, action, frame } => {
                self.command(core, id, action, frame, generation);
            }
            Inbound::ConnectionAck { .. } => tracing::debug!(
                operation = "upstream.read",
                "repeated connection.ack ignored"
            ),
            Inbound::ControlError { code, message } => {
                tracing::warn!(operation = "upstream.read", code = %code, message = %message, "central reported an error");
                self.link.failed(code, now_ms());
            }
            Inbound::Pong {
                server_ms: Some(server),
            } => {
                let now = now_ms();
                let skew = server - (ping_sent_ms + now) / 2;
                *skew_ms = Some(skew);
                self.stats.info(|i| i.clock_skew_ms = Some(skew));
                if skew.abs() > 60_000 {
                    tracing::warn!(
                        operation = "upstream.clock",
                        skew_ms = skew,
                        "central's clock differs from ours; signing manifests with central's time"
                    );
                }
            }
            Inbound::Pong { server_ms: None } => {}
            Inbound::SchedulePush(p) => self.schedule.cache_push(&p),
            Inbound::Preview(v) => {
                if !self.relay.forward_preview(v) {
                    inc(&self.stats.preview_dropped);
                }
            }
            Inbound::AuthFailed => {
                self.hub.update(|f| f.needs_pairing = true);
                return Some(Why::Rejected { code: 0 });
            }
            Inbound::ReEnrolled => return Some(Why::ReEnrolled),
            Inbound::Ignored(ty) => {
                inc(&self.stats.unknown_in);
                tracing::debug!(operation = "upstream.read", frame_type = %ty, "frame from central ignored");
            }
            Inbound::Malformed(why) => {
                inc(&self.stats.malformed_in);
                tracing::warn!(
                    operation = "upstream.read",
                    reason = why,
                    "malformed frame from central ignored"
                );
            }
        }
        None
    }

    fn command(
        &mut self,
        core: &mut Core,
        id: String,
        action: String,
        frame: crate::protocol::Inbound,
        generation: u64,
    ) {
        let expires = super::online::clock() + crate::protocol::deadlines::central(&action);
        tracing::info!(operation = "upstream.command", correlation_id = %id, action = %action, "command from central");
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            let ack = frames::ack(&id, Err(("ERR_DEVICE_BUSY", "too many commands in flight")));
            core.push(Urgent {
                kind: UrgentKind::Ack,
                frame: ack.to_string(),
                expires: Some(expires),
            });
            return;
        };
        let relay = self.relay.clone();
        let acks = self.acks_tx.clone();
        let stats = self.stats.clone();
        let edge = self.edge();
        tokio::spawn(async move {
            let out = relay.run(&id, &action, frame, edge).await;
            if let Some(code) = out.own_error {
                inc(&stats.agent_failures);
                tracing::warn!(operation = "upstream.command", correlation_id = %id, action = %action, code, "answered for the agent");
            }
            let _ = acks
                .send(AckOut {
                    generation,
                    expires,
                    frame: out.ack,
                })
                .await;
            drop(permit);
        });
    }
}

/// Unix milliseconds as `2026-06-20T19:00:00.000Z`.
fn rfc3339_from_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format_rfc3339(t)
}
