//! Central `command` → local agent → `ack` → central (contract §d.2, §d.3).
//!
//! Each command gets the agent's ack or bbedge's own, always before central's deadline:
//! the agent gets the deadline minus [`margin`], and if it is absent or silent bbedge
//! acks `success:false` with `AGENT_NOT_CONNECTED` / `AGENT_TIMEOUT` itself. bbedge
//! answers `get_status` and `identify` without the agent.

use super::frames;
use crate::relay::{AgentReply, ToAgent};
use crate::signal::LedHandle;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Central's ack deadline for an action (§d.3): 5 s by default (`start_session`
/// included), 15 s for sources, 20 s for preview.
pub fn server_deadline(action: &str) -> Duration {
    match action {
        "sources.set" | "switch_source" => Duration::from_secs(15),
        "preview.start" | "preview.stop" => Duration::from_secs(20),
        _ => Duration::from_secs(5),
    }
}

/// Time kept back from central's deadline for bbedge's own answer, the rate budget
/// (at most one window) and the network.
pub fn margin(action: &str) -> Duration {
    if server_deadline(action) > Duration::from_secs(5) {
        Duration::from_secs(3)
    } else {
        Duration::from_millis(1500)
    }
}

/// Commands handled concurrently; beyond it central gets `ERR_DEVICE_BUSY` at once.
pub const MAX_IN_FLIGHT: usize = 16;

/// The relay's half of the seam plus what bbedge answers from.
#[derive(Clone)]
pub struct Relay {
    /// Commands to the local room (bounded; full or closed means "no agent").
    pub to_agent: mpsc::Sender<ToAgent>,
    /// The agent's last status.
    pub agent_status: watch::Receiver<Option<Value>>,
    /// The status LED, for central's `identify`.
    pub led: LedHandle,
}

/// What happened to one command.
#[derive(Debug)]
pub struct Outcome {
    /// The ack frame to send.
    pub ack: Value,
    /// `success:false` from bbedge itself: its code.
    pub own_error: Option<&'static str>,
}

impl Relay {
    /// Runs one command to its ack. `edge` is bbedge's own status for `get_status`.
    pub async fn run(&self, id: &str, action: &str, frame: Value, edge: Value) -> Outcome {
        match action {
            "get_status" => {
                let agent = self
                    .agent_status
                    .borrow()
                    .as_ref()
                    .and_then(|s| s.get("payload").cloned());
                let ack = frames::ack(id, Ok(json!({ "edge": edge, "agent": agent })));
                return Outcome {
                    ack,
                    own_error: None,
                };
            }
            "identify" => {
                let secs = frame
                    .pointer("/payload/seconds")
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
        let deadline = server_deadline(action).saturating_sub(margin(action));
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
            match tokio::time::timeout(deadline, rx).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => AgentReply::NotConnected,
                Err(_) => AgentReply::Timeout,
            }
        };
        match reply {
            AgentReply::Ack(a) => Outcome {
                ack: frames::normalise_agent_ack(id, a),
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
                ack: frames::ack(
                    id,
                    Err(("AGENT_TIMEOUT", "capture agent did not answer in time")),
                ),
                own_error: Some("AGENT_TIMEOUT"),
            },
        }
    }

    /// Forwards an observer's `preview.answer`/`preview.ice_candidate` to the agent.
    /// Nobody waits for a reply; a full or closed channel drops it (returns `false`).
    pub fn forward_preview(&self, frame: Value) -> bool {
        let id = frame
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let (reply, _) = oneshot::channel();
        self.to_agent
            .try_send(ToAgent {
                frame,
                command_id: id,
                deadline: Duration::ZERO,
                reply,
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_and_margins_per_action() {
        let table = [
            ("start_session", 5, 3500),
            ("stop_session", 5, 3500),
            ("sources.set", 15, 12_000),
            ("switch_source", 15, 12_000),
            ("preview.start", 20, 17_000),
            ("preview.stop", 20, 17_000),
            ("watermark.set", 5, 3500),
        ];
        for (action, server, agent_ms) in table {
            assert_eq!(
                server_deadline(action),
                Duration::from_secs(server),
                "{action}"
            );
            let agent = server_deadline(action) - margin(action);
            assert_eq!(agent, Duration::from_millis(agent_ms), "{action}");
        }
    }
}
