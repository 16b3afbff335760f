//! The seam between the local device room and the upstream link.
//!
//! ```text
//!   upstream ──ToAgent (command + reply oneshot)──▶ local room ──▶ agent
//!   upstream ◀──agent frames (status/event/ack/manifest/preview)── local room ◀── agent
//! ```
//! Observers' `preview.answer`/`preview.ice_candidate` from central take a path of
//! their own ([`PREVIEW_CAPACITY`]): they are not commands, wait for no ack and never
//! take a pending-command slot.
//!
//! Both directions are bounded channels created by the composition root. Either side
//! may be absent (rooms disabled, box unpaired): then sends fail fast with a defined
//! result instead of waiting. The agent's last `status` is published in a `watch` so the
//! upstream can merge it into its own status and answer `get_status` itself.
//!
//! Frames cross as [`Inbound`]: parsed once where they entered (the room client, the
//! upstream reader), typed for reading, with their original text for relaying.

use crate::protocol::Inbound;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Commands in flight from upstream to the local agent.
pub const TO_AGENT_CAPACITY: usize = 64;
/// Observers' preview frames in flight from central to the local agent. A burst of ICE
/// candidates fits; beyond it new ones are dropped, counted and logged.
pub const PREVIEW_CAPACITY: usize = 256;
/// Agent frames in flight from the local room to the upstream outbox.
pub const TO_CENTRAL_CAPACITY: usize = 1024;

/// A command from central for the local agent.
#[derive(Debug)]
pub struct ToAgent {
    /// The command frame exactly as central sent it (or as bbedge built it).
    pub frame: Inbound,
    /// `command.id`, echoed by the agent as `ack.commandId`.
    pub command_id: String,
    /// How long the agent has to ack before the relay answers `AGENT_TIMEOUT`.
    pub deadline: Duration,
    /// Where the outcome goes.
    pub reply: oneshot::Sender<AgentReply>,
}

/// What became of a command sent to the agent.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentReply {
    /// The agent's ack frame (or bbedge's own for the room, `ERR_DEVICE_BUSY`).
    Ack(Inbound),
    /// No agent is connected (`AGENT_NOT_CONNECTED`).
    NotConnected,
    /// The agent did not ack in time (`AGENT_TIMEOUT`).
    Timeout,
}

/// The upstream's half.
#[derive(Debug)]
pub struct UpstreamSide {
    /// Sends commands to the local room.
    pub to_agent: mpsc::Sender<ToAgent>,
    /// Sends observers' preview frames to the local room (no reply).
    pub preview_to_agent: mpsc::Sender<Inbound>,
    /// Receives agent frames for central.
    pub from_agent: mpsc::Receiver<Inbound>,
    /// The connected agent's last `status` frame; `None` before its first status and
    /// once no agent is connected (the room never claims a departed agent records).
    pub agent_status: watch::Receiver<Option<Inbound>>,
}

/// The local room's half.
#[derive(Debug)]
pub struct RoomSide {
    /// Receives commands from central.
    pub commands: mpsc::Receiver<ToAgent>,
    /// Receives observers' preview frames from central.
    pub previews: mpsc::Receiver<Inbound>,
    /// Sends agent frames towards central, all but `status` (`agent_status` carries
    /// it). `try_send` only: the room never waits; a full channel is counted and the
    /// frame refused.
    pub to_central: mpsc::Sender<Inbound>,
    /// Publishes the connected agent's last `status`; `None` when the last agent leaves.
    pub agent_status: watch::Sender<Option<Inbound>>,
}

/// Creates both halves.
pub fn channel() -> (UpstreamSide, RoomSide) {
    let (to_agent, commands) = mpsc::channel(TO_AGENT_CAPACITY);
    let (to_central, from_agent) = mpsc::channel(TO_CENTRAL_CAPACITY);
    let (preview_to_agent, previews) = mpsc::channel(PREVIEW_CAPACITY);
    let (status_tx, status_rx) = watch::channel(None);
    (
        UpstreamSide {
            to_agent,
            preview_to_agent,
            from_agent,
            agent_status: status_rx,
        },
        RoomSide {
            commands,
            previews,
            to_central,
            agent_status: status_tx,
        },
    )
}

impl UpstreamSide {
    /// Sends a command to the agent and waits for the outcome (ack, not connected or
    /// timeout). Never waits longer than `deadline` plus a channel hop.
    pub async fn command(
        &self,
        frame: Inbound,
        command_id: String,
        deadline: Duration,
    ) -> AgentReply {
        let (reply, rx) = oneshot::channel();
        let req = ToAgent {
            frame,
            command_id,
            deadline,
            reply,
        };
        if self.to_agent.try_send(req).is_err() {
            return AgentReply::NotConnected;
        }
        match tokio::time::timeout(deadline + Duration::from_millis(250), rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => AgentReply::NotConnected,
            Err(_) => AgentReply::Timeout,
        }
    }
}
