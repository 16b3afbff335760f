//! Frames bbedge builds itself (status, `device.connected`, acks) and the reading of
//! what central really sends (contract §d.1: `command`, off-schema `control` and
//! `pong`, relayed `preview.*`, anything another socket of this device sent).

use crate::protocol::{new_id, now_rfc3339};
use serde_json::{json, Map, Value};

/// What an inbound text frame is.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// `command` with its id and action.
    Command {
        /// `command.id`.
        id: String,
        /// `command.action`.
        action: String,
        /// The whole frame.
        frame: Value,
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
    /// `schedule.push`.
    SchedulePush(Value),
    /// `preview.answer` / `preview.ice_candidate` from an observer.
    Preview(Value),
    /// Schema-only `auth_failed` (never sent at the contract's commit).
    AuthFailed,
    /// Schema-only `re_enrolled` (never sent at the contract's commit).
    ReEnrolled,
    /// Valid JSON we do not act on (another socket's relayed frame, an unknown type).
    Ignored(String),
    /// Not JSON, not an object, or a known type missing what we need.
    Malformed(&'static str),
}

fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// Reads one inbound text frame. Never fails: anything odd is `Ignored`/`Malformed`.
pub fn classify(text: &str) -> Inbound {
    let v: Value = match serde_json::from_str(text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return Inbound::Malformed("not an object"),
        Err(_) => return Inbound::Malformed("not JSON"),
    };
    let Some(ty) = str_of(&v, "type") else {
        return Inbound::Malformed("no type");
    };
    match ty {
        "command" => match (str_of(&v, "id"), str_of(&v, "action")) {
            (Some(id), Some(action)) if !id.is_empty() && !action.is_empty() => Inbound::Command {
                id: id.to_owned(),
                action: action.to_owned(),
                frame: v.clone(),
            },
            _ => Inbound::Malformed("command without id or action"),
        },
        "control" => match str_of(&v, "event") {
            Some("connection.ack") => Inbound::ConnectionAck {
                client_id: str_of(&v, "clientId").map(str::to_owned),
            },
            Some("error") => {
                let e = v.get("error").cloned().unwrap_or(Value::Null);
                Inbound::ControlError {
                    code: str_of(&e, "code").unwrap_or("UNKNOWN_ERROR").to_owned(),
                    message: str_of(&e, "message").unwrap_or("").to_owned(),
                }
            }
            Some(other) => Inbound::Ignored(format!("control/{other}")),
            None => Inbound::Malformed("control without event"),
        },
        "pong" => Inbound::Pong {
            server_ms: v.get("timestamp").and_then(Value::as_i64),
        },
        "schedule.push" => Inbound::SchedulePush(v),
        "preview.answer" | "preview.ice_candidate" => Inbound::Preview(v),
        "auth_failed" => Inbound::AuthFailed,
        "re_enrolled" => Inbound::ReEnrolled,
        other => Inbound::Ignored(other.to_owned()),
    }
}

/// An ack frame (schema-valid: `errorCode` always set on failure, §d.3).
pub fn ack(command_id: &str, result: Result<Value, (&str, &str)>) -> Value {
    let mut f = json!({
        "type": "ack",
        "id": new_id(),
        "timestamp": now_rfc3339(),
        "commandId": command_id,
    });
    match result {
        Ok(payload) => {
            f["success"] = Value::Bool(true);
            if payload.is_object() {
                f["payload"] = payload;
            }
        }
        Err((code, message)) => {
            f["success"] = Value::Bool(false);
            f["error"] = Value::String(message.to_owned());
            f["errorCode"] = Value::String(code.to_owned());
        }
    }
    f
}

/// Rewrites an agent's ack so it is a full, schema-valid ack for `command_id`.
pub fn normalise_agent_ack(command_id: &str, agent: Value) -> Value {
    let mut f = match agent {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    f.insert("type".into(), json!("ack"));
    f.insert("commandId".into(), json!(command_id));
    if f.get("id")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        f.insert("id".into(), json!(new_id()));
    }
    if !f.get("timestamp").is_some_and(Value::is_string) {
        f.insert("timestamp".into(), json!(now_rfc3339()));
    }
    if !f.get("success").is_some_and(Value::is_boolean) {
        f.insert("success".into(), json!(true));
    }
    let allowed = [
        "type",
        "id",
        "timestamp",
        "commandId",
        "success",
        "payload",
        "error",
        "errorCode",
        "errorType",
        "errorDetails",
    ];
    f.retain(|k, v| {
        allowed.contains(&k.as_str())
            && match k.as_str() {
                "payload" | "errorDetails" => v.is_object(),
                "error" | "errorCode" | "errorType" => v.is_string(),
                _ => true,
            }
    });
    Value::Object(f)
}

/// bbedge's own part of a status: `device_id`, a default `state`, health, and an
/// `edge` object about the box itself.
pub fn status(device_id: &str, agent: Option<&Value>, edge: Value) -> Value {
    let mut p = agent
        .and_then(|s| s.get("payload"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    p.insert("device_id".into(), json!(device_id));
    if !p.get("state").is_some_and(Value::is_string) {
        p.insert("state".into(), json!("idle"));
    }
    if !p.get("health").is_some_and(Value::is_object) {
        p.insert("health".into(), json!({ "network_connected": true }));
    }
    p.insert("edge".into(), edge);
    json!({
        "type": "status",
        "id": new_id(),
        "timestamp": now_rfc3339(),
        "payload": Value::Object(p),
    })
}

/// `event device.connected` (§d.4): version, plus capabilities and sources only when
/// the agent reported them (an empty list would clear central's stored sources).
pub fn device_connected(agent: Option<&Value>) -> Value {
    let mut p = Map::new();
    p.insert("version".into(), json!(crate::version::VERSION));
    if let Some(ap) = agent.and_then(|s| s.get("payload")) {
        for k in ["capabilities", "sources"] {
            if let Some(v) = ap.get(k).filter(|v| v.is_object()) {
                p.insert(k.into(), v.clone());
            }
        }
    }
    json!({
        "type": "event",
        "id": new_id(),
        "timestamp": now_rfc3339(),
        "event": "device.connected",
        "payload": Value::Object(p),
    })
}

/// An event of bbedge's own.
pub fn event(name: &str, payload: Value) -> Value {
    json!({
        "type": "event",
        "id": new_id(),
        "timestamp": now_rfc3339(),
        "event": name,
        "payload": payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_central_really_sends_is_read_and_nothing_panics() {
        let cases: [(&str, &str); 12] = [
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
            let got = match classify(text) {
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
    }

    #[test]
    fn an_agent_ack_is_completed_and_cleaned() {
        let a = normalise_agent_ack(
            "cmd-1",
            json!({"success": false, "error": "busy", "errorCode": 3, "extra": 1}),
        );
        assert_eq!(a["commandId"], "cmd-1");
        assert_eq!(a["success"], false);
        assert!(a.get("extra").is_none() && a.get("errorCode").is_none());
        assert!(a["id"].as_str().is_some_and(|s| !s.is_empty()));
    }
}
