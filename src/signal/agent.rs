//! The agent's `recording` fact: follows the agent's last `status` frame (the relay's
//! `agent_status` watch) into the [`StatusHub`], so the LED shows "do not unplug".
//!
//! Central maps `capturing` to `recording` too (central-contract, agent `status`), and a
//! `payload.eventData` nesting is accepted the way central accepts it.

use super::StatusHub;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Whether an agent `status` frame says the agent is recording.
pub fn is_recording(frame: &Value) -> bool {
    let payload = &frame["payload"];
    let payload = match payload.get("eventData") {
        Some(inner) if inner.is_object() => inner,
        _ => payload,
    };
    matches!(payload["state"].as_str(), Some("recording" | "capturing"))
}

/// Sets `recording` from every new agent status until `token` is cancelled; no status
/// (no agent connected, or it went away) means not recording.
pub async fn follow(
    mut status: watch::Receiver<Option<Value>>,
    hub: StatusHub,
    token: CancellationToken,
) {
    loop {
        let recording = status
            .borrow_and_update()
            .as_ref()
            .is_some_and(is_recording);
        hub.update(|f| f.recording = recording);
        tokio::select! {
            _ = token.cancelled() => return,
            r = status.changed() => if r.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::DeviceState;
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

    #[tokio::test]
    async fn the_hub_follows_the_agent_status_watch() {
        let hub = StatusHub::new();
        hub.update(|f| f.booting = false);
        let (tx, rx) = watch::channel(None);
        let token = CancellationToken::new();
        let task = tokio::spawn(follow(rx, hub.clone(), token.clone()));
        let mut facts = hub.subscribe();
        tx.send_replace(Some(
            json!({"type": "status", "payload": {"state": "recording"}}),
        ));
        facts.wait_for(|f| f.recording).await.unwrap();
        assert_eq!(hub.state(), DeviceState::Recording);
        tx.send_replace(None);
        facts.wait_for(|f| !f.recording).await.unwrap();
        token.cancel();
        task.await.unwrap();
    }
}
