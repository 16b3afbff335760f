//! Reading the agent's `recording` fact from its `status` frame. The local room sets
//! the [`crate::signal::StatusHub`] fact where it accepts the frame, so the LED shows
//! "do not unplug".
//!
//! Central maps `capturing` to `recording` too (central-contract, agent `status`), and a
//! `payload.eventData` nesting is accepted the way central accepts it.

use serde_json::{Map, Value};

/// Whether an agent `status` frame says the agent is recording.
pub fn is_recording(frame: &Value) -> bool {
    frame
        .get("payload")
        .and_then(Value::as_object)
        .is_some_and(payload_is_recording)
}

/// The same, from a status frame's (typed) payload.
pub fn payload_is_recording(payload: &Map<String, Value>) -> bool {
    let payload = match payload.get("eventData").and_then(Value::as_object) {
        Some(inner) => inner,
        None => payload,
    };
    matches!(
        payload.get("state").and_then(Value::as_str),
        Some("recording" | "capturing")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn capturing_and_recording_count_and_nested_payloads_are_read() {
        let frame = |p: Value| json!({"type": "status", "payload": p});
        assert!(is_recording(&frame(json!({"state": "recording"}))));
        assert!(is_recording(&frame(json!({"state": "capturing"}))));
        assert!(is_recording(&frame(
            json!({"eventData": {"state": "recording"}})
        )));
        assert!(!is_recording(&frame(json!({"state": "uploading"}))));
        assert!(!is_recording(&frame(json!({"state": 7}))));
        assert!(!is_recording(&json!({"type": "status"})));
    }
}
