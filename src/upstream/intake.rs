//! Agent frames for central (`RoomSide::to_central` → here): events and manifests go
//! to the outbox on flash whatever the link state; preview frames and stray acks go to
//! the live connection or are dropped. A status does not come here: the room publishes
//! it on the relay's `agent_status` watch, which wakes the link to send a merged status.
//!
//! Frames come typed and checked from the room client (parsed once there), and go up
//! as the agent sent them: central does no validation and bbedge promises to send only
//! schema-valid frames, which the room already enforced.

use super::core::UrgentKind;
use super::outbox::{Kind, Outbox};
use super::stats::{inc, Stats};
use crate::error::ErrorCode;
use crate::protocol::wire::Payload;
use crate::protocol::{now_ms, Frame, Inbound};
use crate::signal::StatusHub;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// Live frames handed to the connection (preview, agent acks). When full, new ones are
/// dropped, counted and logged: they are worthless late. Room for a burst of ICE
/// candidates (a WebRTC offer gathers dozens at once; the link paces them for central).
pub const LIVE_CAPACITY: usize = 256;

/// What the intake needs.
pub struct Intake {
    /// The outbox.
    pub outbox: Outbox,
    /// Counters.
    pub stats: Arc<Stats>,
    /// The status hub (`storage_fault` while the disk is full).
    pub hub: StatusHub,
    /// Live frames for the connection; its receiver is the session's.
    pub live: mpsc::Sender<(UrgentKind, Inbound)>,
    /// Set by the link while central has acknowledged it.
    pub online: Arc<AtomicBool>,
    /// Wakes the link when the outbox grew.
    pub outbox_grew: Arc<Notify>,
}

/// What becomes of one agent frame.
#[derive(Debug, PartialEq)]
pub enum Route {
    /// Into the outbox.
    Store(Kind, Inbound),
    /// To the live connection.
    Live(UrgentKind, Inbound),
    /// The agent's status: nothing to do here. The room publishes it on the relay's
    /// `agent_status` watch, which wakes the link to send a merged status, and does not
    /// send it here (it would only wake this task and take a place an event needs).
    Status,
    /// Refused, with why.
    Refuse(&'static str),
}

/// Decides where a frame goes. Frames arrive checked (the room client parsed them
/// once), so their text goes up as the agent sent it; the one reshape is an `event`
/// without `payload`, which gets `{}` (central reads event payloads unguarded).
pub fn route(frame: Inbound) -> Route {
    match frame.frame() {
        Frame::Event(e) if e.payload.is_none() => {
            let mut e = e.clone();
            e.payload = Some(Payload::new());
            Route::Store(Kind::Event, Inbound::new(Frame::Event(e)))
        }
        Frame::Event(_) => Route::Store(Kind::Event, frame),
        Frame::SessionManifest(_) => Route::Store(Kind::Manifest, frame),
        Frame::Status(_) => Route::Status,
        Frame::PreviewOffer(_) | Frame::PreviewIceCandidate(_) | Frame::PreviewStopped(_) => {
            Route::Live(UrgentKind::Preview, frame)
        }
        Frame::Ack(_) => Route::Live(UrgentKind::Ack, frame),
        _ => Route::Refuse("type not relayed upstream"),
    }
}

/// Runs until cancelled or the room side is gone.
pub async fn run(mut from_agent: mpsc::Receiver<Inbound>, me: Intake, token: CancellationToken) {
    loop {
        let frame = tokio::select! {
            () = token.cancelled() => return,
            f = from_agent.recv() => match f { Some(f) => f, None => return },
        };
        match route(frame) {
            Route::Store(kind, v) => match me.outbox.accept(kind, v.to_string(), now_ms()).await {
                // storage_fault follows the store's health (any failed write, or a
                // refusal of the outbox), not only this one frame.
                Ok(_) => {
                    let online = me.online.load(Ordering::SeqCst);
                    let faulty = me.outbox.storage_faulty();
                    me.hub.update(|f| {
                        f.storage_fault = faulty;
                        // Not connected and a frame waits: buffering, whatever restarts
                        // happened (the link's `publish` keeps it so at its next step).
                        if !online && f.link == crate::signal::Link::Connecting {
                            f.link = crate::signal::Link::Offline;
                        }
                    });
                    me.outbox_grew.notify_one();
                }
                Err(e) => {
                    inc(&me.stats.refused);
                    me.hub.update(|f| f.storage_fault = true);
                    // Counted (`dropped.store_full`); the store logs the failure once
                    // and then once per interval with a count, not once per frame.
                    tracing::debug!(operation = "upstream.outbox", code = e.code(), error = %e, "frame refused");
                }
            },
            Route::Live(kind, v) => {
                let online = me.online.load(Ordering::SeqCst);
                if !online || me.live.try_send((kind, v)).is_err() {
                    inc(&me.stats.preview_dropped);
                    let n = me.stats.preview_dropped.load(Ordering::Relaxed);
                    if online && (n == 1 || n % 100 == 0) {
                        tracing::warn!(
                            operation = "upstream.live",
                            dropped_total = n,
                            capacity = LIVE_CAPACITY,
                            "live frame (preview, ack) dropped: the live queue is full"
                        );
                    } else {
                        tracing::debug!(
                            operation = "upstream.live",
                            "live frame dropped while offline or busy"
                        );
                    }
                }
            }
            Route::Status => {}
            Route::Refuse(why) => {
                inc(&me.stats.refused);
                tracing::warn!(
                    operation = "upstream.intake",
                    reason = why,
                    "agent frame not relayed"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_frames_are_routed_by_type_and_sent_as_received() {
        let env = r#""id":"f1","timestamp":"2026-06-20T19:00:30Z""#;
        let table: [(String, &str); 7] = [
            (
                format!(r#"{{"type":"event",{env},"event":"session.started","payload":{{ }}}}"#),
                "store",
            ),
            (
                format!(
                    r#"{{"type":"session.manifest",{env},"payload":{{"session_id":"r","capture":{{"device":"d"}}}}}}"#
                ),
                "store",
            ),
            (
                format!(r#"{{"type":"status",{env},"payload":{{"state":"recording"}}}}"#),
                "status",
            ),
            (
                format!(r#"{{"type":"preview.offer",{env},"payload":{{"sdp":"x"}}}}"#),
                "live",
            ),
            (format!(r#"{{"type":"preview.stopped",{env}}}"#), "live"),
            (
                format!(r#"{{"type":"ack",{env},"commandId":"c","success":true}}"#),
                "live",
            ),
            (format!(r#"{{"type":"heartbeat",{env}}}"#), "refuse"),
        ];
        for (text, want) in table {
            let frame = Inbound::parse(text.as_str()).unwrap();
            let got = match route(frame) {
                Route::Store(_, f) | Route::Live(_, f) => {
                    // Byte for byte: no re-serialising on the way up.
                    assert_eq!(f.text().as_str(), text);
                    if text.contains("\"event\"") || text.contains("manifest") {
                        "store"
                    } else {
                        "live"
                    }
                }
                Route::Status => "status",
                Route::Refuse(_) => "refuse",
            };
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn an_event_without_payload_gets_an_empty_one() {
        let text = r#"{"type":"event","id":"e1","timestamp":"2026-06-20T19:00:30Z","event":"x"}"#;
        let Route::Store(Kind::Event, f) = route(Inbound::parse(text).unwrap()) else {
            panic!("not stored");
        };
        let v = f.to_value();
        assert_eq!(v["payload"], serde_json::json!({}));
        assert_eq!(v["id"], "e1");
    }
}
