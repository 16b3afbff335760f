//! The frames the local room originates. Control and pong frames have central's
//! off-schema shapes (§c.4, §d.11); acks are schema-valid.

use super::registry::Participant;
use crate::protocol::{new_id, now_ms, now_rfc3339, RealtimeCode};
use rand::Rng;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Serialises a frame once for every recipient.
pub fn text(v: &Value) -> Utf8Bytes {
    Utf8Bytes::from(v.to_string())
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
    text(&json!({"type":"control","event":"connection.ack","roomId":room_id,"clientId":client_id}))
}

/// `{"type":"control","event":"error","error":{"code","message"}}`.
pub fn error(code: &str, message: &str) -> Utf8Bytes {
    text(&json!({"type":"control","event":"error","error":{"code":code,"message":message}}))
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
    text(&json!({"type":"control","event":"session.revoked","reason":"token revoked"}))
}

/// `{"type":"pong","timestamp":<ms>}`.
pub fn pong() -> Utf8Bytes {
    text(&json!({"type":"pong","timestamp":now_ms()}))
}

/// Participants listed in `room_state` (agents, operators, then the newest observers);
/// `participantCount` counts them all.
/// Keeps the frame, and the write buffer it leaves behind, small in a crowded room.
pub const ROOM_STATE_PARTICIPANTS: usize = 50;

/// The state a joiner gets right after `connection.ack`.
pub fn room_state(room_id: &str, participants: &[Participant], state: Value) -> Utf8Bytes {
    use super::tokens::Role;
    // Agents first, then operators, then the newest observers.
    let by = |r: Role| participants.iter().rev().filter(move |p| p.role == r);
    let ps: Vec<Value> = by(Role::Agent)
        .chain(by(Role::Operator))
        .chain(by(Role::Observer))
        .take(ROOM_STATE_PARTICIPANTS)
        .map(Participant::describe)
        .collect();
    text(&json!({
        "type":"control","event":"room_state","roomId":room_id,
        "participantCount":participants.len(),"participants":ps,"state":state
    }))
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
pub fn failed_ack(command_id: &str, code: &str, message: &str) -> Value {
    json!({
        "type":"ack","id":new_id(),"timestamp":now_rfc3339(),
        "commandId":command_id,"success":false,"error":message,"errorCode":code
    })
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
        let stats = std::sync::Arc::new(crate::room::stats::Stats::default());
        let ps: Vec<Participant> = (0..61)
            .map(|i| Participant {
                id: format!("c{i}"),
                role: if i == 0 { Role::Agent } else { Role::Observer },
                label: String::new(),
                token_id: "t".into(),
                out: crate::room::outbox::queue(1, 1024, stats.clone()).0,
            })
            .collect();
        let v: Value = serde_json::from_str(&room_state("device:x", &ps, json!({}))).unwrap();
        assert_eq!(v["participantCount"], 61);
        assert_eq!(
            v["participants"].as_array().unwrap().len(),
            ROOM_STATE_PARTICIPANTS
        );
        assert_eq!(v["participants"][0]["id"], "c0");
        assert_eq!(v["participants"][1]["id"], "c60");
    }
}
