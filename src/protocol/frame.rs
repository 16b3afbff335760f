//! Message types and the envelope fields every frame carries (contract §d.1).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The frame types on the wire: the schema's fifteen plus the off-schema ones central
/// really uses (`control`, `ping`, `pong`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// central → device: do something.
    Command,
    /// device → central: a command's result.
    Ack,
    /// device → central: a named event.
    Event,
    /// device → central: periodic status; the only liveness signal central counts.
    Status,
    /// either way; ignored by central.
    Heartbeat,
    /// central → device: upcoming sessions (never sent by central at the contract's commit).
    SchedulePush,
    /// device → central: binds a recording to a session.
    SessionManifest,
    /// device → observers: WebRTC offer.
    PreviewOffer,
    /// observers → device: WebRTC answer.
    PreviewAnswer,
    /// either way: ICE candidate.
    PreviewIceCandidate,
    /// device → observers: preview ended.
    PreviewStopped,
    /// schema-only connection ack (central sends `control` instead).
    ConnectionAck,
    /// schema-only.
    ReEnrolled,
    /// schema-only.
    AuthFailed,
    /// either way: protocol error.
    Error,
    /// off-schema: `{"type":"control","event":…}`.
    Control,
    /// off-schema: `{"type":"ping"}`.
    Ping,
    /// off-schema: `{"type":"pong","timestamp":<ms>}`.
    Pong,
}

impl MessageType {
    /// Parses the `type` field.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "command" => Self::Command,
            "ack" => Self::Ack,
            "event" => Self::Event,
            "status" => Self::Status,
            "heartbeat" => Self::Heartbeat,
            "schedule.push" => Self::SchedulePush,
            "session.manifest" => Self::SessionManifest,
            "preview.offer" => Self::PreviewOffer,
            "preview.answer" => Self::PreviewAnswer,
            "preview.ice_candidate" => Self::PreviewIceCandidate,
            "preview.stopped" => Self::PreviewStopped,
            "connection.ack" => Self::ConnectionAck,
            "re_enrolled" => Self::ReEnrolled,
            "auth_failed" => Self::AuthFailed,
            "error" => Self::Error,
            "control" => Self::Control,
            "ping" => Self::Ping,
            "pong" => Self::Pong,
            _ => return None,
        })
    }

    /// The `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Command => "command",
            Self::Ack => "ack",
            Self::Event => "event",
            Self::Status => "status",
            Self::Heartbeat => "heartbeat",
            Self::SchedulePush => "schedule.push",
            Self::SessionManifest => "session.manifest",
            Self::PreviewOffer => "preview.offer",
            Self::PreviewAnswer => "preview.answer",
            Self::PreviewIceCandidate => "preview.ice_candidate",
            Self::PreviewStopped => "preview.stopped",
            Self::ConnectionAck => "connection.ack",
            Self::ReEnrolled => "re_enrolled",
            Self::AuthFailed => "auth_failed",
            Self::Error => "error",
            Self::Control => "control",
            Self::Ping => "ping",
            Self::Pong => "pong",
        }
    }

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

/// A fresh message id (UUID v4, as central recommends).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Now as RFC 3339 with millisecond precision and `Z`, like central's timestamps.
pub fn now_rfc3339() -> String {
    format_rfc3339(OffsetDateTime::now_utc())
}

/// Formats a time as `2026-06-20T19:00:00.000Z`.
pub fn format_rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let ms = t.millisecond();
    let t = t.replace_nanosecond(u32::from(ms) * 1_000_000).unwrap_or(t);
    // Rfc3339 prints fractional seconds only as needed; force exactly three digits.
    let base = t
        .replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned());
    format!("{}.{:03}Z", base.trim_end_matches('Z'), ms)
}

/// Now as Unix milliseconds (the `pong` timestamp).
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_millisecond_precision_and_z() {
        let t = time::macros::datetime!(2026-06-20 19:00:00.95 UTC);
        assert_eq!(format_rfc3339(t), "2026-06-20T19:00:00.950Z");
        let t = time::macros::datetime!(2026-06-20 19:00:00 UTC);
        assert_eq!(format_rfc3339(t), "2026-06-20T19:00:00.000Z");
    }

    #[test]
    fn every_type_round_trips() {
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
        assert_eq!(MessageType::parse("stream.configure"), None);
    }
}
