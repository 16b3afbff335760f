//! The frames on the wire, one typed serde enum (contract §d.1): a variant per `type`,
//! each a small struct with exactly the fields bbedge reads. Adding or changing a frame
//! type is one line in [`wire_types!`] below plus its struct.
//!
//! Schema types are closed (`deny_unknown_fields`, the schema's `additionalProperties:
//! false`); the off-schema `control`/`ping`/`pong` are read leniently, as central sends
//! them. Semantic rules serde cannot express (non-empty ids, RFC 3339 timestamps, the
//! schedule and manifest payloads) are [`super::check`]'s.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A JSON object payload (kept as parsed: bbedge reads it, or merges it into its own).
pub type Payload = Map<String, Value>;

macro_rules! wire_types {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal ($body:ty) ),* $(,)?) => {
        /// One frame, typed by its `type`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        pub enum Frame {
            $( $(#[$doc])* #[serde(rename = $name)] $variant($body), )*
        }

        /// A frame's `type` without its fields.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum MessageType {
            $( $(#[$doc])* $variant, )*
        }

        impl MessageType {
            /// Every type, in declaration order.
            pub const ALL: &'static [MessageType] = &[$(MessageType::$variant),*];

            /// The `type` string.
            pub fn as_str(self) -> &'static str {
                match self { $(MessageType::$variant => $name,)* }
            }

            /// Reads a `type` string.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|t| t.as_str() == s)
            }
        }

        impl Frame {
            /// The frame's type.
            pub fn ty(&self) -> MessageType {
                match self { $(Frame::$variant(_) => MessageType::$variant,)* }
            }
        }
    };
}

wire_types! {
    /// central → device: do something.
    Command = "command" (Command),
    /// device → central: a command's result.
    Ack = "ack" (Ack),
    /// device → central: a named event.
    Event = "event" (Event),
    /// device → central: periodic status; the only liveness signal central counts.
    Status = "status" (WithPayload),
    /// either way; ignored by central.
    Heartbeat = "heartbeat" (Envelope),
    /// central → device: upcoming sessions (never sent by central at the contract's commit).
    SchedulePush = "schedule.push" (WithPayload),
    /// device → central: binds a recording to a session.
    SessionManifest = "session.manifest" (WithPayload),
    /// device → observers: WebRTC offer.
    PreviewOffer = "preview.offer" (WithPayload),
    /// observers → device: WebRTC answer.
    PreviewAnswer = "preview.answer" (WithPayload),
    /// either way: ICE candidate.
    PreviewIceCandidate = "preview.ice_candidate" (WithPayload),
    /// device → observers: preview ended.
    PreviewStopped = "preview.stopped" (MaybePayload),
    /// schema-only connection ack (central sends `control` instead).
    ConnectionAck = "connection.ack" (MaybePayload),
    /// schema-only.
    ReEnrolled = "re_enrolled" (MaybePayload),
    /// schema-only.
    AuthFailed = "auth_failed" (MaybePayload),
    /// either way: protocol error.
    Error = "error" (ErrorFrame),
    /// off-schema: `{"type":"control","event":…}`.
    Control = "control" (Control),
    /// off-schema: `{"type":"ping"}`.
    Ping = "ping" (Ping),
    /// off-schema: `{"type":"pong","timestamp":<ms>}`.
    Pong = "pong" (Pong),
}

/// An optional field that, when present, must have its type: `null` is refused as the
/// schema refuses it (serde alone would read it as absent).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

impl MessageType {
    /// `preview.*` frames: live signalling, never queued.
    pub fn is_preview(self) -> bool {
        matches!(
            self,
            Self::PreviewOffer
                | Self::PreviewAnswer
                | Self::PreviewIceCandidate
                | Self::PreviewStopped
        )
    }
}

/// `id` and `timestamp`, which every schema frame carries. Read as empty when absent
/// (central's relayed frames may lack them); [`super::check::validate`] refuses that on
/// the LAN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Non-empty message id.
    #[serde(default)]
    pub id: String,
    /// RFC 3339 with an offset.
    #[serde(default)]
    pub timestamp: String,
}

/// `command`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// Message id, echoed as `ack.commandId`.
    #[serde(default)]
    pub id: String,
    /// RFC 3339.
    #[serde(default)]
    pub timestamp: String,
    /// What to do.
    pub action: String,
    /// Arguments.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub payload: Option<Payload>,
}

/// `ack` (schema-valid: `errorCode` set on failure, §d.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Ack {
    /// Message id.
    #[serde(default)]
    pub id: String,
    /// RFC 3339.
    #[serde(default)]
    pub timestamp: String,
    /// The command's id.
    pub command_id: String,
    /// Outcome.
    pub success: bool,
    /// Result.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub payload: Option<Payload>,
    /// Failure message.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub error: Option<String>,
    /// Failure code.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_code: Option<String>,
    /// Failure class.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_type: Option<String>,
    /// Failure details (central drops them).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_details: Option<Payload>,
}

impl Ack {
    /// A fresh ack for `command_id`: `Ok(payload)` or `Err((errorCode, error))`.
    pub fn new(command_id: &str, result: Result<Option<Payload>, (&str, &str)>) -> Self {
        let (success, payload, err) = match result {
            Ok(p) => (true, p, None),
            Err((code, message)) => (false, None, Some((code, message))),
        };
        Self {
            id: super::new_id(),
            timestamp: super::now_rfc3339(),
            command_id: command_id.to_owned(),
            success,
            payload,
            error: err.map(|(_, m)| m.to_owned()),
            error_code: err.map(|(c, _)| c.to_owned()),
            error_type: None,
            error_details: None,
        }
    }
}

/// `event`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Message id.
    #[serde(default)]
    pub id: String,
    /// RFC 3339.
    #[serde(default)]
    pub timestamp: String,
    /// Its name (`session.started`, `device.connected`, …).
    pub event: String,
    /// Its data.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub payload: Option<Payload>,
}

impl Event {
    /// A fresh event of bbedge's own.
    pub fn new(event: &str, payload: Payload) -> Self {
        Self {
            id: super::new_id(),
            timestamp: super::now_rfc3339(),
            event: event.to_owned(),
            payload: Some(payload),
        }
    }
}

/// A frame whose payload is required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithPayload {
    /// Message id.
    #[serde(default)]
    pub id: String,
    /// RFC 3339.
    #[serde(default)]
    pub timestamp: String,
    /// The payload.
    pub payload: Payload,
}

/// A frame whose payload is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaybePayload {
    /// Message id.
    #[serde(default)]
    pub id: String,
    /// RFC 3339.
    #[serde(default)]
    pub timestamp: String,
    /// The payload.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub payload: Option<Payload>,
}

/// The schema's `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ErrorFrame {
    /// Message id.
    #[serde(default)]
    pub id: String,
    /// RFC 3339.
    #[serde(default)]
    pub timestamp: String,
    /// Message.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub error: Option<String>,
    /// Code.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_code: Option<String>,
    /// Details.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub payload: Option<Payload>,
}

/// Off-schema `control`: only its `type` is checked; fields are read when they have the
/// expected shape.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Control {
    /// `connection.ack`, `error`, `room_state`, `presence.*`, `session.revoked`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Value>,
    /// `connection.ack`: the server-local socket id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<Value>,
    /// `error`: `{code, message}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

impl Control {
    /// `event` when it is a string.
    pub fn event(&self) -> Option<&str> {
        self.event.as_ref().and_then(Value::as_str)
    }

    /// `clientId` when it is a string.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_ref().and_then(Value::as_str)
    }

    /// `error.<field>` when it is a string.
    pub fn error_field(&self, field: &str) -> Option<&str> {
        self.error.as_ref()?.get(field)?.as_str()
    }
}

/// Off-schema `ping`: nothing but its type.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Ping {}

/// Off-schema `pong`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Pong {
    /// The sender's clock, Unix ms (any JSON as received; see [`Pong::ms`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Value>,
}

impl Pong {
    /// `timestamp` as Unix milliseconds, when it is an integer.
    pub fn ms(&self) -> Option<i64> {
        self.timestamp.as_ref().and_then(Value::as_i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_name_round_trips() {
        for s in [
            "command",
            "ack",
            "event",
            "status",
            "heartbeat",
            "schedule.push",
            "session.manifest",
            "preview.offer",
            "preview.answer",
            "preview.ice_candidate",
            "preview.stopped",
            "connection.ack",
            "re_enrolled",
            "auth_failed",
            "error",
            "control",
            "ping",
            "pong",
        ] {
            assert_eq!(MessageType::parse(s).map(MessageType::as_str), Some(s));
        }
        for &t in MessageType::ALL {
            assert_eq!(MessageType::parse(t.as_str()), Some(t));
        }
        assert_eq!(MessageType::ALL.len(), 18);
        assert_eq!(MessageType::parse("stream.configure"), None);
        assert_eq!(MessageType::SchedulePush.as_str(), "schedule.push");
    }
}
