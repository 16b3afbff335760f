//! The frames the local room originates. Control and pong frames have central's
//! off-schema shapes (§c.4, §d.11); acks are schema-valid.

use super::registry::Participant;
use crate::protocol::wire::Ack;
use crate::protocol::{now_ms, Frame, Inbound, RealtimeCode};
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Serialises a frame once for every recipient.
pub fn text(v: &impl Serialize) -> Utf8Bytes {
    // Strings, numbers and JSON values only: serialising cannot fail.
    Utf8Bytes::from(serde_json::to_string(v).unwrap_or_default())
}

/// The off-schema `control` frames the room sends, in central's shapes (§c.4, §d.11).
#[derive(Serialize)]
#[serde(tag = "event")]
pub enum Control<'a> {
    /// `{"event":"connection.ack","roomId","clientId"}`.
    #[serde(rename = "connection.ack", rename_all = "camelCase")]
    ConnectionAck {
        /// `<type>:<id>`.
        room_id: &'a str,
        /// The joiner's client id.
        client_id: &'a str,
    },
    /// `{"event":"error","error":{"code","message"[,"commandId"]}}`.
    #[serde(rename = "error")]
    Error {
        /// What went wrong.
        error: ErrorBody<'a>,
    },
    /// `{"event":"session.revoked","reason"}` (d.10), before close 4001.
    #[serde(rename = "session.revoked")]
    SessionRevoked {
        /// Why.
        reason: &'a str,
    },
}

/// A `control`/`error` frame's `error`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody<'a> {
    /// A stable code.
    pub code: &'a str,
    /// For people.
    pub message: &'a str,
    /// The command concerned (`ACK_TOO_LATE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_id: Option<&'a str>,
}

impl Control<'_> {
    /// The frame's text: `{"type":"control",…}`.
    pub fn text(self) -> Utf8Bytes {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(rename = "type")]
            ty: &'static str,
            #[serde(flatten)]
            body: Control<'a>,
        }
        text(&Out {
            ty: "control",
            body: self,
        })
    }
}

/// `client_<ms>_<7 base-36 chars>`, like central's `generateClientId`.
pub fn client_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    let tail: String = (0..7)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("client_{}_{tail}", now_ms())
}

/// `{"type":"control","event":"connection.ack","roomId","clientId"}`.
pub fn connection_ack(room_id: &str, client_id: &str) -> Utf8Bytes {
    Control::ConnectionAck { room_id, client_id }.text()
}

/// `{"type":"control","event":"error","error":{"code","message"}}`.
pub fn error(code: &str, message: &str) -> Utf8Bytes {
    Control::Error {
        error: ErrorBody {
            code,
            message,
            command_id: None,
        },
    }
    .text()
}

/// Central's rate-limit error frame.
pub fn rate_limited(per_second: u32) -> Utf8Bytes {
    error(
        RealtimeCode::UnknownError.as_str(),
        &format!("Rate limit exceeded: {per_second} messages per second"),
    )
}

/// Central's auth-failure frame (the same whatever the cause).
pub fn auth_failed() -> Utf8Bytes {
    error(RealtimeCode::AuthFailed.as_str(), "Authentication failed")
}

/// `{"type":"control","event":"session.revoked","reason"}` (d.10), before close 4001.
pub fn session_revoked() -> Utf8Bytes {
    Control::SessionRevoked {
        reason: "token revoked",
    }
    .text()
}

/// `{"type":"pong","timestamp":<ms>}`.
pub fn pong() -> Utf8Bytes {
    #[derive(Serialize)]
    struct Pong {
        #[serde(rename = "type")]
        ty: &'static str,
        timestamp: i64,
    }
    text(&Pong {
        ty: "pong",
        timestamp: now_ms(),
    })
}

/// Participants listed in `room_state` (agents, operators, then the newest observers);
/// `participantCount` counts them all.
/// Keeps the frame, and the write buffer it leaves behind, small in a crowded room.
pub const ROOM_STATE_PARTICIPANTS: usize = 50;

/// The `room_state` frame a joiner gets right after `connection.ack`, at most `max`
/// bytes (the room passes what its send queue and the socket's write buffer can take).
///
/// A larger frame is trimmed, least useful first, and then carries `"truncated":true`:
/// 1. listed participants from the end (the oldest listed observers first;
///    `participantCount` still counts everyone);
/// 2. items of array members of `state` from the end (the device room: the later
///    schedule items);
/// 3. object members of `state` become `null` (the device room: `agentStatus`).
///
/// Returns the frame and whether it was trimmed; `None` when even the bare frame is
/// larger than `max`.
pub fn room_state(
    room_id: &str,
    participants: &[Participant],
    state: Value,
    max: usize,
) -> Option<(Utf8Bytes, bool)> {
    use super::tokens::Role;
    // Agents first, then operators, then the newest observers.
    let by = |r: Role| participants.iter().rev().filter(move |p| p.role == r);
    let ps: Vec<Value> = by(Role::Agent)
        .chain(by(Role::Operator))
        .chain(by(Role::Observer))
        .take(ROOM_STATE_PARTICIPANTS)
        .map(Participant::describe)
        .collect();
    let mut v = json!({
        "type":"control","event":"room_state","roomId":room_id,
        "participantCount":participants.len(),"participants":ps,"state":state
    });
    let full = v.to_string();
    if full.len() <= max {
        return Some((Utf8Bytes::from(full), false));
    }
    v["truncated"] = json!(true);
    trim_array(&mut v, "/participants", max);
    let keys: Vec<String> = v["state"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    for k in &keys {
        let pointer = format!("/state/{}", k.replace('~', "~0").replace('/', "~1"));
        trim_array(&mut v, &pointer, max);
    }
    for k in &keys {
        if v.to_string().len() <= max {
            break;
        }
        if v["state"][k].is_object() {
            v["state"][k] = Value::Null;
        }
    }
    let text = v.to_string();
    (text.len() <= max).then(|| (Utf8Bytes::from(text), true))
}

/// Pops items off the end of the array at `pointer` until `v` serialises within `max`
/// (or the array is empty). Sizes are summed per item, so the frame is serialised once
/// per round, not once per item.
fn trim_array(v: &mut Value, pointer: &str, max: usize) {
    loop {
        let over = v.to_string().len().saturating_sub(max);
        let Some(items) = v.pointer_mut(pointer).and_then(Value::as_array_mut) else {
            return;
        };
        if over == 0 || items.is_empty() {
            return;
        }
        let mut removed = 0;
        while removed < over {
            match items.pop() {
                // The item and its separating comma.
                Some(item) => removed += item.to_string().len() + 1,
                None => break,
            }
        }
    }
}

/// `presence.joined` / `presence.left` to the others. A quick reconnect of the same
/// token within `grace_period` is a `presence.joined` with `previous`: the client id it
/// replaces (no `presence.left` is sent for that one).
pub fn presence(room_id: &str, event: &str, who: &Value, previous: Option<&str>) -> Utf8Bytes {
    let mut v = json!({"type":"control","event":event,"roomId":room_id,"participant":who});
    if let Some(prev) = previous {
        v["previous"] = json!(prev);
    }
    text(&v)
}

/// A schema-valid failure ack for `command_id` (`AGENT_NOT_CONNECTED`, `AGENT_TIMEOUT`, …).
pub fn failed_ack(command_id: &str, code: &str, message: &str) -> Inbound {
    Inbound::new(Frame::Ack(Ack::new(command_id, Err((code, message)))))
}

/// A 4xxx close reason: `{"code":"<NAME>",…extra}`.
pub fn close_reason(code: RealtimeCode, extra: &[(&str, &str)]) -> String {
    let mut m = serde_json::Map::new();
    m.insert("code".into(), code.as_str().into());
    for (k, v) in extra {
        m.insert((*k).into(), (*v).into());
    }
    Value::Object(m).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::tokens::Role;

    #[test]
    fn room_state_lists_at_most_fifty_with_the_agent_first() {
        let ps = observers(61, "");
        let (text, trimmed) = room_state("device:x", &ps, json!({}), usize::MAX).unwrap();
        assert!(!trimmed);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["participantCount"], 61);
        assert_eq!(
            v["participants"].as_array().unwrap().len(),
            ROOM_STATE_PARTICIPANTS
        );
        assert_eq!(v["participants"][0]["id"], "c0");
        assert_eq!(v["participants"][1]["id"], "c60");
    }

    fn observers(n: usize, label: &str) -> Vec<Participant> {
        let stats = std::sync::Arc::new(crate::room::stats::Stats::default());
        (0..n)
            .map(|i| Participant {
                id: format!("c{i}"),
                role: if i == 0 { Role::Agent } else { Role::Observer },
                label: label.to_owned(),
                token_id: "t".into(),
                out: crate::room::outbox::queue(1, 1024, stats.clone()).0,
                presence: Default::default(),
            })
            .collect()
    }

    #[test]
    fn an_oversize_room_state_is_trimmed_participants_then_arrays_then_objects() {
        let ps = observers(20, &"l".repeat(100));
        let schedule: Vec<Value> = (0..30)
            .map(|i| json!({"id": i, "pad": "s".repeat(100)}))
            .collect();
        let state = json!({"agentStatus": {"pad": "a".repeat(300)}, "schedule": schedule});
        let parse = |t: &Utf8Bytes| serde_json::from_str::<Value>(t).unwrap();

        // Room for everything but some participants.
        let full = room_state("device:x", &ps, state.clone(), usize::MAX)
            .unwrap()
            .0;
        let (t, trimmed) = room_state("device:x", &ps, state.clone(), full.len() - 200).unwrap();
        let v = parse(&t);
        assert!(trimmed && t.len() <= full.len() - 200);
        assert_eq!(v["truncated"], true);
        assert_eq!(v["participantCount"], 20);
        assert!(v["participants"].as_array().unwrap().len() < 20);
        assert_eq!(v["participants"][0]["role"], "agent");
        assert_eq!(v["state"]["schedule"].as_array().unwrap().len(), 30);

        // Then schedule items from the end, the first ones kept.
        let (t, _) = room_state("device:x", &ps, state.clone(), 2000).unwrap();
        let v = parse(&t);
        assert!(t.len() <= 2000);
        assert_eq!(v["participants"], json!([]));
        let kept = v["state"]["schedule"].as_array().unwrap();
        assert!(!kept.is_empty() && kept.len() < 30);
        assert_eq!(kept[0]["id"], 0);
        assert!(v["state"]["agentStatus"].is_object());

        // Then the agent status; a bare frame that still does not fit is refused.
        let (t, _) = room_state("device:x", &ps, state.clone(), 300).unwrap();
        let v = parse(&t);
        assert_eq!(v["state"]["agentStatus"], Value::Null);
        assert_eq!(v["state"]["schedule"], json!([]));
        assert!(room_state("device:x", &ps, state, 100).is_none());
    }
}
