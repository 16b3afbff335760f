//! Agent frames for central (`RoomSide::to_central` → here): events and manifests go
//! to the outbox on flash whatever the link state; preview frames and stray acks go to
//! the live connection or are dropped; a status wakes the link to send a merged status.
//!
//! Frames are normalised to schema-valid envelopes first (id and timestamp filled in,
//! unknown top-level keys dropped, `payload` always present) because central does no
//! validation and bbedge promises to send only schema-valid frames.

use super::core::UrgentKind;
use super::outbox::{Kind, Outbox};
use super::stats::{inc, Stats};
use crate::error::ErrorCode;
use crate::protocol::{new_id, now_ms, now_rfc3339};
use crate::signal::StatusHub;
use serde_json::{json, Map, Value};
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
    pub live: mpsc::Sender<(UrgentKind, Value)>,
    /// Set by the link while central has acknowledged it.
    pub online: Arc<AtomicBool>,
    /// Wakes the link when the outbox grew.
    pub outbox_grew: Arc<Notify>,
}

/// Builds a clean envelope of `ty` from an agent frame, keeping `keep` keys.
fn envelope(ty: &str, f: &Map<String, Value>, keep: &[&str]) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("type".into(), json!(ty));
    let id = f
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    out.insert("id".into(), json!(id.map_or_else(new_id, str::to_owned)));
    let ts = f.get("timestamp").and_then(Value::as_str).filter(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
    });
    out.insert(
        "timestamp".into(),
        json!(ts.map_or_else(now_rfc3339, str::to_owned)),
    );
    for k in keep {
        if let Some(v) = f.get(*k) {
            out.insert((*k).into(), v.clone());
        }
    }
    out
}

/// What becomes of one agent frame.
#[derive(Debug, PartialEq)]
pub enum Route {
    /// Into the outbox.
    Store(Kind, Value),
    /// To the live connection.
    Live(UrgentKind, Value),
    /// The agent's status: nothing to do here. The room publishes it on the relay's
    /// `agent_status` watch, which wakes the link to send a merged status.
    Status,
    /// Refused, with why.
    Refuse(&'static str),
}

/// Decides where a frame goes and normalises it.
pub fn route(frame: Value) -> Route {
    let Value::Object(f) = frame else {
        return Route::Refuse("not an object");
    };
    let ty = f
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let payload_obj = f.get("payload").is_some_and(Value::is_object);
    match ty.as_str() {
        "event" => {
            if f.get("event")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Route::Refuse("event without a name");
            }
            let mut e = envelope("event", &f, &["event"]);
            e.insert(
                "payload".into(),
                if payload_obj {
                    f["payload"].clone()
                } else {
                    json!({})
                },
            );
            Route::Store(Kind::Event, Value::Object(e))
        }
        "session.manifest" => {
            let p = f.get("payload");
            let ok = p
                .and_then(|p| p.get("session_id"))
                .and_then(Value::as_str)
                .is_some()
                && p.and_then(|p| p.get("capture"))
                    .is_some_and(Value::is_object);
            if !ok {
                return Route::Refuse("manifest without session_id or capture");
            }
            Route::Store(
                Kind::Manifest,
                Value::Object(envelope(&ty, &f, &["payload"])),
            )
        }
        "status" if payload_obj => Route::Status,
        "preview.offer" | "preview.ice_candidate" | "preview.stopped" => {
            if !payload_obj && ty != "preview.stopped" {
                return Route::Refuse("preview frame without payload");
            }
            Route::Live(
                UrgentKind::Preview,
                Value::Object(envelope(&ty, &f, &["payload"])),
            )
        }
        "ack" => match f.get("commandId").and_then(Value::as_str) {
            Some(id) => Route::Live(
                UrgentKind::Ack,
                super::frames::normalise_agent_ack(id, Value::Object(f.clone())),
            ),
            None => Route::Refuse("ack without commandId"),
        },
        _ => Route::Refuse("type not relayed upstream"),
    }
}

/// Runs until cancelled or the room side is gone.
pub async fn run(mut from_agent: mpsc::Receiver<Value>, me: Intake, token: CancellationToken) {
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
    fn agent_frames_are_routed_by_type_and_normalised() {
        let table: [(Value, &str); 8] = [
            (
                json!({"type":"event","event":"session.started","extra":1}),
                "store",
            ),
            (json!({"type":"event"}), "refuse"),
            (
                json!({"type":"session.manifest","payload":{"session_id":"r","capture":{"device":"d"}}}),
                "store",
            ),
            (
                json!({"type":"session.manifest","payload":{"session_id":"r"}}),
                "refuse",
            ),
            (
                json!({"type":"status","payload":{"state":"recording"}}),
                "status",
            ),
            (
                json!({"type":"preview.offer","payload":{"sdp":"x"}}),
                "live",
            ),
            (json!({"type":"ack","commandId":"c","success":true}), "live"),
            (json!({"type":"heartbeat"}), "refuse"),
        ];
        for (frame, want) in table {
            let got = match route(frame.clone()) {
                Route::Store(_, v) => {
                    assert!(
                        v.get("extra").is_none()
                            && v["id"].is_string()
                            && v["timestamp"].is_string(),
                        "{v}"
                    );
                    "store"
                }
                Route::Live(..) => "live",
                Route::Status => "status",
                Route::Refuse(_) => "refuse",
            };
            assert_eq!(got, want, "{frame}");
        }
    }
}
