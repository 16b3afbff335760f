//! Central `command` → local agent → `ack` → central (contract §d.2, §d.3).
//!
//! Each command gets the agent's ack or bbedge's own, always before central's deadline:
//! the agent gets the deadline minus [`margin`], and if it is absent or silent bbedge
//! acks `success:false` with `AGENT_NOT_CONNECTED` / `AGENT_TIMEOUT` itself. bbedge
//! answers `get_status` and `identify` without the agent.

use super::frames;
use crate::protocol::{deadlines, Frame, Inbound};
use crate::relay::{AgentReply, ToAgent};
use crate::signal::LedHandle;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Central's ack deadline for an action (§d.3), from [`deadlines`].
pub fn server_deadline(action: &str) -> Duration {
    deadlines::central(action)
}

/// Time kept back from central's deadline, from [`deadlines`].
pub fn margin(action: &str) -> Duration {
    deadlines::margin(action)
}

/// How much longer than the agent's deadline the relay waits for the room's verdict:
/// the room's timer decides between the agent's ack and `TIMEOUT`, so exactly one of
/// them is ever sent (a late ack goes nowhere upstream, §d.3).
pub const ROOM_VERDICT_SLACK: Duration = Duration::from_millis(250);

/// Commands handled concurrently; beyond it central gets `ERR_DEVICE_BUSY` at once.
pub const MAX_IN_FLIGHT: usize = 16;

/// The relay's half of the seam plus what bbedge answers from.
#[derive(Clone)]
pub struct Relay {
    /// Commands to the local room (bounded; full or closed means "no agent").
    pub to_agent: mpsc::Sender<ToAgent>,
    /// The agent's last status.
    pub agent_status: watch::Receiver<Option<Inbound>>,
    /// The status LED, for central's `identify`.
    pub led: LedHandle,
    /// Observers' preview frames to the local room: their own bounded queue, never the
    /// command path.
    pub preview_to_agent: mpsc::Sender<Inbound>,
    /// Preview frames dropped because that queue was full or the room gone.
    pub preview_drops: Arc<AtomicU64>,
}

/// What happened to one command.
#[derive(Debug)]
pub struct Outcome {
    /// The ack frame to send.
    pub ack: Inbound,
    /// `success:false` from bbedge itself: its code.
    pub own_error: Option<&'static str>,
}

impl Relay {
    /// Runs one command to its ack. `edge` is bbedge's own status for `get_status`.
    pub async fn run(&self, id: &str, action: &str, frame: Inbound, edge: Value) -> Outcome {
        match action {
            "get_status" => {
                let agent = self
                    .agent_status
                    .borrow()
                    .as_ref()
                    .and_then(frames::status_payload)
                    .cloned();
                let ack = frames::ack(id, Ok(json!({ "edge": edge, "agent": agent })));
                return Outcome {
                    ack,
                    own_error: None,
                };
            }
            "identify" => {
                let payload = match frame.frame() {
                    Frame::Command(c) => c.payload.as_ref(),
                    _ => None,
                };
                let secs = payload
                    .and_then(|p| p.get("seconds"))
                    .and_then(Value::as_u64)
                    .unwrap_or(10)
                    .clamp(1, 300);
                let ack = match self.led.identify(Duration::from_secs(secs)) {
                    Ok(()) => frames::ack(id, Ok(json!({ "identify_seconds": secs }))),
                    // The LED's mailbox is full or it stopped: say so rather than pretend.
                    Err(e) => frames::ack(id, Err(("ERR_DEVICE_BUSY", e.to_string().as_str()))),
                };
                return Outcome {
                    ack,
                    own_error: None,
                };
            }
            _ => {}
        }
        let deadline = deadlines::agent(action);
        let (reply, rx) = oneshot::channel();
        let req = ToAgent {
            frame,
            command_id: id.to_owned(),
            deadline,
            reply,
        };
        let reply = if self.to_agent.try_send(req).is_err() {
            AgentReply::NotConnected
        } else {
            // The room's timer fires at `deadline` and answers `Timeout`; waiting a
            // little longer here leaves that verdict to the room alone.
            match tokio::time::timeout(deadline + ROOM_VERDICT_SLACK, rx).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => AgentReply::NotConnected,
                Err(_) => AgentReply::Timeout,
            }
        };
        match reply {
            AgentReply::Ack(a) => Outcome {
                ack: frames::agent_ack(id, a),
                own_error: None,
            },
            AgentReply::NotConnected => Outcome {
                ack: frames::ack(
                    id,
                    Err(("AGENT_NOT_CONNECTED", "capture agent not connected")),
                ),
                own_error: Some("AGENT_NOT_CONNECTED"),
            },
            AgentReply::Timeout => Outcome {
                ack: timeout_ack(id),
                own_error: Some(deadlines::AGENT_TIMEOUT),
            },
        }
    }

    /// Forwards an observer's `preview.answer`/`preview.ice_candidate` to the agent on
    /// the preview queue. Nobody waits for a reply; a full or closed queue drops it
    /// (returns `false`; counted in `preview_drops`, the first and every 100th logged).
    pub fn forward_preview(&self, frame: Inbound) -> bool {
        match self.preview_to_agent.try_send(frame) {
            Ok(()) => true,
            Err(e) => {
                let n = self.preview_drops.fetch_add(1, Ordering::Relaxed) + 1;
                if n == 1 || n % 100 == 0 {
                    let why = match e {
                        mpsc::error::TrySendError::Full(_) => "queue full",
                        mpsc::error::TrySendError::Closed(_) => "no local room",
                    };
                    tracing::warn!(
                        operation = "upstream.preview",
                        dropped_total = n,
                        reason = why,
                        capacity = crate::relay::PREVIEW_CAPACITY,
                        "observer preview frame for the agent dropped"
                    );
                }
                false
            }
        }
    }
}

/// bbedge's own ack when the agent did not answer in time: `errorCode` `TIMEOUT` and a
/// message with "timeout", so central answers its operator 504 "device did not respond"
/// (§d.3); bbedge's own code stays in `errorDetails` (central drops it) and the logs.
pub fn timeout_ack(id: &str) -> Inbound {
    let mut details = serde_json::Map::new();
    details.insert("bbedgeCode".into(), json!(deadlines::AGENT_TIMEOUT));
    frames::ack_with(
        id,
        Err((deadlines::TIMEOUT_CODE, deadlines::TIMEOUT_MESSAGE)),
        Some(details),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_ack_is_what_central_turns_into_504() {
        let ack = timeout_ack("c1").to_value();
        assert_eq!(ack["success"], false);
        assert_eq!(ack["errorCode"], "TIMEOUT");
        assert!(ack["error"].as_str().unwrap().contains("timeout"));
        assert_eq!(ack["errorDetails"]["bbedgeCode"], "AGENT_TIMEOUT");
        assert_eq!(ack["commandId"], "c1");
    }
}
