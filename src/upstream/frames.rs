//! Frames bbedge builds itself (status, `device.connected`, acks) and the reading of
//! what central really sends (contract §d.1: `command`, off-schema `control` and
//! `pong`, relayed `preview.*`, anything another socket of this device sent).

use crate::protocol::wire::{Ack, Event, Payload, WithPayload};
use crate::protocol::{self, new_id, now_rfc3339, Frame, MessageType};
use serde_json::{json, Map, Value};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// What an inbound text frame is.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// `command` with its id and action.
    Command {
        /// `command.id`.
        id: String,
        /// `command.action`.
        action: String,
        /// The whole frame, typed and as central sent it.
        frame: protocol::Inbound,
    },
    /// `{"type":"control","event":"connection.ack",…}`.
    ConnectionAck {
        /// The server-local socket id (informational).
        client_id: Option<String>,
    },
    /// `{"type":"control","event":"error","error":{code,message}}`.
    ControlError {
        /// `error.code`.
        code: String,
        /// `error.message`.
        message: String,
    },
    /// `{"type":"pong","timestamp":<ms>}`.
    Pong {
        /// Central's clock, Unix ms.
        server_ms: Option<i64>,
    },
    /// `schedule.push`: its payload.
    SchedulePush(Payload),
    /// `preview.answer` / `preview.ice_candidate` from an observer.
    Preview(protocol::Inbound),
    /// Schema-only `auth_failed` (never sent at the contract's commit).
    AuthFailed,
    /// Schema-only `re_enrolled` (never sent at the contract's commit).
    ReEnrolled,
    /// Valid JSON we do not act on (another socket's relayed frame, an unknown type).
    Ignored(String),
    /// Not JSON, not an object, or a known type missing what we need.
    Malformed(&'static str),
}

/// Reads one inbound text frame, parsing it once into its typed form (central's frames
/// are read as sent, without the LAN's semantic checks). Never fails: anything odd is
/// `Ignored`/`Malformed`.
pub fn classify(text: &Utf8Bytes) -> Inbound {
    let f = match protocol::Inbound::read(text.clone()) {
        Ok(f) => f,
        Err(_) => match loose(text) {
            Ok(f) => f,
            Err(why) => return why,
        },
    };
    match f.frame() {
        Frame::Command(c) if !c.id.is_empty() && !c.action.is_empty() => Inbound::Command {
            id: c.id.clone(),
            action: c.action.clone(),
            frame: f.clone(),
        },
        Frame::Command(_) => Inbound::Malformed("command without id or action"),
        Frame::Control(c) => match c.event() {
            Some("connection.ack") => Inbound::ConnectionAck {
                client_id: c.client_id().map(str::to_owned),
            },
            Some("error") => Inbound::ControlError {
                code: c.error_field("code").unwrap_or("UNKNOWN_ERROR").to_owned(),
                message: c.error_field("message").unwrap_or("").to_owned(),
            },
            Some(other) => Inbound::Ignored(format!("control/{other}")),
            None => Inbound::Malformed("control without event"),
        },
        Frame::Pong(p) => Inbound::Pong { server_ms: p.ms() },
        Frame::SchedulePush(p) => Inbound::SchedulePush(p.payload.clone()),
        Frame::PreviewAnswer(_) | Frame::PreviewIceCandidate(_) => Inbound::Preview(f.clone()),
        Frame::AuthFailed(_) => Inbound::AuthFailed,
        Frame::ReEnrolled(_) => Inbound::ReEnrolled,
        other => Inbound::Ignored(other.ty().as_str().to_owned()),
    }
}

/// A frame its type refused (the slow path). Central validates neither its own
/// commands nor what it relays from observers' browsers, so a command or an observer's
/// preview frame with keys bbedge does not know is still read (its known keys), and
/// relayed as sent; anything else is classified by the `type` it claimed.
fn loose(text: &Utf8Bytes) -> Result<protocol::Inbound, Inbound> {
    let o = match serde_json::from_str(text) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return Err(Inbound::Malformed("not an object")),
        Err(_) => return Err(Inbound::Malformed("not JSON")),
    };
    let ty = o.get("type").and_then(Value::as_str);
    let relayed = matches!(
        ty.and_then(MessageType::parse),
        Some(MessageType::Command | MessageType::PreviewAnswer | MessageType::PreviewIceCandidate)
    );
    if relayed {
        let mut known: Map<String, Value> = o
            .iter()
            .filter(|(k, v)| match k.as_str() {
                "type" | "action" => true,
                "id" | "timestamp" => v.is_string(),
                "payload" => v.is_object(),
                _ => false,
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if ty != Some("command") && !known.contains_key("payload") {
            known.insert("payload".into(), json!({}));
        }
        if let Ok(f) = <Frame as serde::Deserialize>::deserialize(&Value::Object(known)) {
            return Ok(protocol::Inbound::from_parts(f, text.clone()));
        }
    }
    Err(refused(&o))
}

/// Which `type` a refused frame claimed decides what it is.
fn refused(v: &Map<String, Value>) -> Inbound {
    match v
        .get("type")
        .and_then(Value::as_str)
        .map(|t| (t, MessageType::parse(t)))
    {
        None => Inbound::Malformed("no type"),
        Some((_, Some(MessageType::Command))) => Inbound::Malformed("command without id or action"),
        Some((_, Some(MessageType::Control))) => Inbound::Malformed("control without event"),
        Some((_, Some(MessageType::SchedulePush))) => {
            Inbound::Malformed("schedule.push without payload")
        }
        Some((_, Some(MessageType::PreviewAnswer | MessageType::PreviewIceCandidate))) => {
            Inbound::Malformed("preview frame without id, timestamp or payload")
        }
        Some((t, _)) => Inbound::Ignored(t.to_owned()),
    }
}

/// An ack frame (schema-valid: `errorCode` always set on failure, §d.3).
pub fn ack(command_id: &str, result: Result<Value, (&str, &str)>) -> protocol::Inbound {
    ack_with(command_id, result, None)
}

/// [`ack`] with `errorDetails`.
pub fn ack_with(
    command_id: &str,
    result: Result<Value, (&str, &str)>,
    details: Option<Payload>,
) -> protocol::Inbound {
    let result = result.map(|p| match p {
        Value::Object(m) => Some(m),
        _ => None,
    });
    let mut a = Ack::new(command_id, result);
    a.error_details = details;
    protocol::Inbound::new(Frame::Ack(a))
}

/// The agent's ack, for central. It passed the room's checks and was matched to the
/// command by its `commandId`, so its text goes up as the agent sent it; the one reshape
/// (never expected) is a `commandId` that is not `command_id`'s, or a frame that is not
/// an ack, answered as a plain success or failure for `command_id`.
pub fn agent_ack(command_id: &str, agent: protocol::Inbound) -> protocol::Inbound {
    match agent.frame() {
        Frame::Ack(a) if a.command_id == command_id => agent,
        Frame::Ack(a) => {
            let mut a = a.clone();
            a.command_id = command_id.to_owned();
            protocol::Inbound::new(Frame::Ack(a))
        }
        _ => ack(command_id, Ok(json!({}))),
    }
}

/// The `payload` of an agent's `status` frame.
pub fn status_payload(agent: &protocol::Inbound) -> Option<&Payload> {
    match agent.frame() {
        Frame::Status(s) => Some(&s.payload),
        _ => None,
    }
}

/// bbedge's own part of a status: `device_id`, a default `state`, health, and an
/// `edge` object about the box itself (the one reshape of the agent's status).
pub fn status(
    device_id: &str,
    agent: Option<&protocol::Inbound>,
    edge: Value,
) -> protocol::Inbound {
    let mut p = agent.and_then(status_payload).cloned().unwrap_or_default();
    p.insert("device_id".into(), json!(device_id));
    if !p.get("state").is_some_and(Value::is_string) {
        p.insert("state".into(), json!("idle"));
    }
    if !p.get("health").is_some_and(Value::is_object) {
        p.insert("health".into(), json!({ "network_connected": true }));
    }
    p.insert("edge".into(), edge);
    protocol::Inbound::new(Frame::Status(WithPayload {
        id: new_id(),
        timestamp: now_rfc3339(),
        payload: p,
    }))
}

/// `event device.connected` (§d.4): version, plus capabilities and sources only when
/// the agent reported them (an empty list would clear central's stored sources).
pub fn device_connected(agent: Option<&protocol::Inbound>) -> protocol::Inbound {
    let mut p = Map::new();
    p.insert("version".into(), json!(crate::version::VERSION));
    if let Some(ap) = agent.and_then(status_payload) {
        for k in ["capabilities", "sources"] {
            if let Some(v) = ap.get(k).filter(|v| v.is_object()) {
                p.insert(k.into(), v.clone());
            }
        }
    }
    event("device.connected", p)
}

/// An event of bbedge's own.
pub fn event(name: &str, payload: Payload) -> protocol::Inbound {
    protocol::Inbound::new(Frame::Event(Event::new(name, payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_central_really_sends_is_read_and_nothing_panics() {
        let cases: [(&str, &str); 15] = [
            // Central validates neither its commands nor observers' frames: unknown
            // keys are tolerated (and relayed as sent).
            (
                r#"{"type":"command","id":"c","timestamp":"t","action":"x","correlationId":"k"}"#,
                "command",
            ),
            (
                r#"{"type":"preview.answer","from":"user-1","payload":{"sdp":"x"}}"#,
                "preview",
            ),
            (
                r#"{"type":"preview.ice_candidate","to":"agent"}"#,
                "preview",
            ),
            (
                r#"{"type":"control","event":"connection.ack","roomId":"device:x","clientId":"c1"}"#,
                "ack",
            ),
            (
                r#"{"type":"control","event":"error","error":{"code":"AUTH_FAILED","message":"m"}}"#,
                "error",
            ),
            (r#"{"type":"pong","timestamp":1781982000000}"#, "pong"),
            (
                r#"{"type":"command","id":"c","timestamp":"t","action":"get_status"}"#,
                "command",
            ),
            (r#"{"type":"command","id":"","action":"x"}"#, "malformed"),
            (r#"{"type":"status","payload":{}}"#, "ignored"),
            (r#"{"type":"control"}"#, "malformed"),
            (r"null", "malformed"),
            (r"[1,2]", "malformed"),
            ("\u{0}garbage", "malformed"),
            (
                r#"{"type":"preview.answer","payload":{"sdp":"x"}}"#,
                "preview",
            ),
            (r#"{"type":"stream.configure"}"#, "ignored"),
        ];
        for (text, want) in cases {
            let got = match classify(&Utf8Bytes::from(text)) {
                Inbound::ConnectionAck { .. } => "ack",
                Inbound::ControlError { .. } => "error",
                Inbound::Pong { .. } => "pong",
                Inbound::Command { .. } => "command",
                Inbound::Preview(_) => "preview",
                Inbound::Ignored(_) => "ignored",
                Inbound::Malformed(_) => "malformed",
                other => panic!("{other:?}"),
            };
            assert_eq!(got, want, "{text}");
        }
        // Read leniently, relayed exactly as central sent it.
        let text = r#"{"type":"preview.answer","from":"user-1","payload":{"sdp":"x"}}"#;
        let Inbound::Preview(f) = classify(&Utf8Bytes::from(text)) else {
            panic!("not a preview");
        };
        assert_eq!(f.text().as_str(), text);
    }

    #[test]
    fn an_agent_ack_goes_up_as_sent_or_is_rebuilt_for_its_command() {
        let text = r#"{"success":false, "type":"ack","id":"a1","timestamp":"2026-06-20T19:00:30Z","commandId":"cmd-1","error":"busy","errorCode":"E"}"#;
        let agent = protocol::Inbound::parse(text).unwrap();
        // Matched: the agent's bytes, untouched.
        assert_eq!(agent_ack("cmd-1", agent.clone()).text().as_str(), text);
        // Not matched (never expected): rebuilt for the command, still a failure.
        let a = agent_ack("cmd-2", agent).to_value();
        assert_eq!(a["commandId"], "cmd-2");
        assert_eq!(a["success"], false);
        assert_eq!(a["errorCode"], "E");
        // What the old normaliser had to clean can no longer reach it: a non-string
        // errorCode or an extra key is refused at the edge.
        let bad = r#"{"type":"ack","id":"a","timestamp":"2026-06-20T19:00:30Z","commandId":"c","success":false,"errorCode":3}"#;
        assert!(protocol::Inbound::parse(bad).is_err());
        let extra = r#"{"type":"ack","id":"a","timestamp":"2026-06-20T19:00:30Z","commandId":"c","success":true,"extra":1}"#;
        assert!(protocol::Inbound::parse(extra).is_err());
    }
}
