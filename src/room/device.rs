//! The `device` room type: the capture agent, operators and observers of one device
//! (contract §d.9, §d.10). Agent frames fan out to everyone else and go upstream;
//! operator commands go to the agent and their acks come back by `commandId`, or the
//! operator gets a failure ack (`AGENT_NOT_CONNECTED`, `AGENT_TIMEOUT`).
//!
//! One ack per command: once bbedge answered a command itself (deadline passed, agent
//! gone), the agent's ack for it is dropped (`drops{reason="late_ack"}`), logged, and the
//! agent gets a `control`/`error` frame `ACK_TOO_LATE` naming the `commandId`. Deadlines
//! come from [`crate::protocol::deadlines`], the table the upstream uses too.

use super::frames;
use super::registry::{Ctx, Participant, RoomLogic, RoomType};
use super::stats::reason;
use super::tokens::{Role, TokenRecord};
use crate::protocol::{deadlines, Frame, Inbound, MessageType, RealtimeCode};
use crate::relay::{AgentReply, ToAgent};
use crate::signal::StatusHub;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Commands awaiting an ack in one room; one more is refused with `ERR_DEVICE_BUSY`.
pub const MAX_PENDING_COMMANDS: usize = 32;
/// Longest session id kept in the room state.
pub const MAX_SESSION_ID: usize = 128;
/// Schedule items sent in `room_state`.
pub const MAX_SCHEDULE_ITEMS: usize = 64;
/// Command ids bbedge answered itself that are remembered, so a late agent ack for
/// one of them is recognised and dropped.
pub const MAX_ANSWERED: usize = 64;
/// The `control`/`error` code an agent gets for an ack that came too late.
pub const ACK_TOO_LATE: &str = "ACK_TOO_LATE";

/// What the box's own device room shares with the rest of the daemon.
pub struct Links {
    /// Agent frames towards central, all but `status` (that goes by `agent_status`).
    /// `try_send` only; a full channel is counted (`drops{reason="upstream_full"}`) and
    /// the frame is not sent upstream.
    pub to_central: mpsc::Sender<Inbound>,
    /// The connected agent's last `status` frame, for the upstream link; `None` once no
    /// agent is connected.
    pub agent_status: watch::Sender<Option<Inbound>>,
    /// Gets the `recording` fact from the agent's status.
    pub hub: StatusHub,
    /// The cached schedule (read-only here).
    pub store: crate::store::Store,
}

/// The `device` type.
pub struct DeviceType {
    /// This box's device UUID (it moves to the paired UUID when pairing completes):
    /// tokens without a room, or for a former provisional UUID, are for this room only.
    pub local_id: super::identity::DeviceId,
    /// Shared with the local room only (other device rooms are LAN-only).
    pub links: Arc<Links>,
    /// `realtime.limits.command_timeout` when set (non-zero): one deadline for every
    /// LAN operator command; otherwise central's per-action table.
    pub command_timeout: Option<Duration>,
}

impl RoomType for DeviceType {
    fn name(&self) -> &'static str {
        "device"
    }

    fn authorise(&self, id: &str, token: &TokenRecord) -> Result<(), RealtimeCode> {
        let allowed = match token.room.as_deref() {
            None => self.local_id == id,
            Some(r) if self.local_id.is_former(r) => self.local_id == id,
            Some(r) => r == id,
        };
        if token.revoked || !allowed {
            return Err(RealtimeCode::PermissionDenied);
        }
        Ok(())
    }

    fn permits(&self, role: Role, ty: MessageType) -> bool {
        use MessageType as T;
        match role {
            Role::Agent => matches!(
                ty,
                T::Ack
                    | T::Event
                    | T::Status
                    | T::Heartbeat
                    | T::SessionManifest
                    | T::PreviewOffer
                    | T::PreviewIceCandidate
                    | T::PreviewStopped
                    | T::Error
            ),
            Role::Operator => matches!(ty, T::Command | T::PreviewAnswer | T::PreviewIceCandidate),
            Role::Observer => matches!(ty, T::PreviewAnswer | T::PreviewIceCandidate),
            // Never in a room (tokens::lookup does not know it).
            Role::Admin => false,
        }
    }

    fn create(&self, id: &str) -> Box<dyn RoomLogic> {
        Box::new(DeviceRoom {
            links: self.links.clone(),
            identity: self.local_id.clone(),
            uuid: id.to_owned(),
            schedule_store: self.links.store.clone(),
            command_timeout: self.command_timeout,
            last_status: None,
            active_session: None,
            pending: heapless::Vec::new(),
            answered: VecDeque::new(),
        })
    }
}

enum Origin {
    Operator(String),
    Upstream(oneshot::Sender<AgentReply>),
}

struct Pending {
    command_id: String,
    origin: Origin,
}

/// One device room's state.
struct DeviceRoom {
    /// Used only while this room is the box's own ([`DeviceRoom::local`]).
    links: Arc<Links>,
    /// The box's room identity (it moves when pairing completes).
    identity: super::identity::DeviceId,
    /// This room's device UUID.
    uuid: String,
    schedule_store: crate::store::Store,
    command_timeout: Option<Duration>,
    /// The agent's last `status` frame.
    last_status: Option<Inbound>,
    /// From the agent's status or `session.*` events.
    active_session: Option<heapless::String<MAX_SESSION_ID>>,
    /// Commands sent to the agent, awaiting its ack.
    pending: heapless::Vec<Pending, MAX_PENDING_COMMANDS>,
    /// Commands bbedge answered itself, newest last ([`MAX_ANSWERED`]).
    answered: VecDeque<String>,
}

/// What is kept on flash.
#[derive(Serialize, Deserialize)]
struct Snap {
    last_status: Option<String>,
    active_session: Option<String>,
}

impl DeviceRoom {
    /// The daemon's links while this room is the box's own: a room the box moved away
    /// from (to the paired UUID) no longer touches the `recording` fact, the agent status
    /// or central, even while its last clients are still leaving.
    fn local(&self) -> Option<&Arc<Links>> {
        (self.identity == self.uuid.as_str()).then_some(&self.links)
    }

    fn newest_agent<'a>(ctx: &'a Ctx<'_>) -> Option<&'a Participant> {
        ctx.participants
            .iter()
            .rev()
            .find(|p| p.role == Role::Agent)
    }

    /// Remembers that `command_id` was answered without the agent's ack.
    fn answered_by_bbedge(&mut self, command_id: &str) {
        if command_id.is_empty() {
            return;
        }
        if self.answered.len() >= MAX_ANSWERED {
            self.answered.pop_front();
        }
        self.answered.push_back(command_id.to_owned());
    }

    /// Answers the waiting side. An own answer (`NotConnected`, `Timeout`) is
    /// remembered, so the agent's ack can never follow it.
    fn reply(&mut self, ctx: &Ctx<'_>, origin: Origin, reply: AgentReply, command_id: &str) {
        if !matches!(reply, AgentReply::Ack(_)) {
            self.answered_by_bbedge(command_id);
        }
        match origin {
            Origin::Upstream(tx) => {
                let _ = tx.send(reply);
            }
            Origin::Operator(op) => {
                let ack = match reply {
                    AgentReply::Ack(v) => v,
                    AgentReply::NotConnected => frames::failed_ack(
                        command_id,
                        "AGENT_NOT_CONNECTED",
                        "No agent is connected to this room",
                    ),
                    AgentReply::Timeout => frames::failed_ack(
                        command_id,
                        "AGENT_TIMEOUT",
                        "The agent did not acknowledge in time",
                    ),
                };
                ctx.send_to(&op, ack.text().clone());
            }
        }
    }

    /// Sends a command to the agent and remembers who waits for the ack.
    fn command(
        &mut self,
        ctx: &Ctx<'_>,
        command_id: &str,
        text: Utf8Bytes,
        origin: Origin,
        deadline: Duration,
    ) {
        let Some(agent) = Self::newest_agent(ctx) else {
            return self.reply(ctx, origin, AgentReply::NotConnected, command_id);
        };
        if self.pending.is_full() || self.pending.iter().any(|p| p.command_id == command_id) {
            let busy = frames::failed_ack(
                command_id,
                "ERR_DEVICE_BUSY",
                "Too many commands are waiting for the agent",
            );
            return self.reply(ctx, origin, AgentReply::Ack(busy), command_id);
        }
        if !agent.out.push(text) {
            return self.reply(ctx, origin, AgentReply::NotConnected, command_id);
        }
        // A reused id starts afresh.
        self.answered.retain(|a| a != command_id);
        let _ = self.pending.push(Pending {
            command_id: command_id.to_owned(),
            origin,
        });
        ctx.after(deadline, command_id.to_owned());
    }

    /// An agent ack for a command bbedge already answered: dropped, counted, logged, and
    /// the agent is told which one.
    fn late_ack(&mut self, ctx: &Ctx<'_>, command_id: &str) {
        self.answered_by_bbedge(command_id);
        ctx.stats.dropped(reason::LATE_ACK);
        tracing::warn!(operation = "room.command", room = %ctx.room_id, correlation_id = %command_id, "agent ack after bbedge already answered the command; dropped, not forwarded");
        let message = format!("ack for command {command_id} came after its deadline; bbedge already answered it and did not forward this ack");
        let frame = frames::Control::Error {
            error: frames::ErrorBody {
                code: ACK_TOO_LATE,
                message: &message,
                command_id: Some(command_id),
            },
        };
        ctx.broadcast(&frame.text(), |p| p.role == Role::Agent);
    }

    fn take_pending(&mut self, command_id: &str) -> Option<Pending> {
        let i = self
            .pending
            .iter()
            .position(|p| p.command_id == command_id)?;
        Some(self.pending.swap_remove(i))
    }

    fn agent_frame(&mut self, ctx: &mut Ctx<'_>, from: &Participant, f: &Inbound) {
        let text = f.text();
        let mut routed_to: Option<String> = None;
        let mut upstream = true;
        match f.frame() {
            Frame::Status(s) => {
                self.last_status = Some(f.clone());
                let recording = crate::signal::agent::payload_is_recording(&s.payload);
                self.set_session(if recording {
                    s.payload.get("session_id").and_then(Value::as_str)
                } else {
                    None
                });
                if let Some(l) = self.local() {
                    l.agent_status.send_replace(Some(f.clone()));
                    l.hub.update(|f| f.recording = recording);
                }
                // The watch above is the status's way to central: the intake has
                // nothing to do with it, and a status in `to_central` would only wake
                // its task and take a place an event needs.
                upstream = false;
                ctx.mark_changed();
            }
            Frame::Event(e) => match e.event.as_str() {
                "session.started" => {
                    let id = e.payload.as_ref().and_then(|p| p.get("sessionId"));
                    self.set_session(id.and_then(Value::as_str));
                    ctx.mark_changed();
                }
                "session.stopped" | "session.complete" | "session.failed" => {
                    self.set_session(None);
                    ctx.mark_changed();
                }
                _ => {}
            },
            Frame::Ack(a) => {
                let id = a.command_id.as_str();
                if let Some(p) = self.take_pending(id) {
                    upstream = false;
                    match p.origin {
                        Origin::Operator(op) => {
                            ctx.send_to(&op, text.clone());
                            routed_to = Some(op);
                        }
                        Origin::Upstream(tx) => {
                            if tx.send(AgentReply::Ack(f.clone())).is_err() {
                                // The relay stopped waiting and answered central
                                // itself: this ack is late too.
                                return self.late_ack(ctx, id);
                            }
                        }
                    }
                } else if self.answered.iter().any(|a| a == id) {
                    // Nobody gets it: not central, not the LAN clients, who all had
                    // bbedge's answer for this command already.
                    return self.late_ack(ctx, id);
                }
            }
            _ => {}
        }
        ctx.broadcast(text, |p| {
            p.id != from.id && Some(&p.id) != routed_to.as_ref()
        });
        if upstream {
            if let Some(l) = self.local() {
                // Check room first: no clone for a frame that would be refused.
                if l.to_central.capacity() == 0 || l.to_central.try_send(f.clone()).is_err() {
                    ctx.stats.dropped(reason::UPSTREAM_FULL);
                }
            }
        }
    }

    fn set_session(&mut self, id: Option<&str>) {
        self.active_session = id.and_then(|s| heapless::String::try_from(s).ok());
    }

    fn schedule(&self) -> Vec<Value> {
        // The upstream link's cache, read through its own decoder (each entry also
        // records what bbedge did offline), in start order.
        let mut items = crate::upstream::schedule::sessions(&self.schedule_store);
        items.truncate(MAX_SCHEDULE_ITEMS);
        items
    }
}

impl RoomLogic for DeviceRoom {
    fn on_frame(&mut self, ctx: &mut Ctx<'_>, from: &Participant, f: &Inbound) {
        match (from.role, f.frame()) {
            (Role::Agent, _) => self.agent_frame(ctx, from, f),
            (Role::Operator, Frame::Command(c)) => {
                let deadline = self
                    .command_timeout
                    .unwrap_or_else(|| deadlines::central(&c.action));
                self.command(
                    ctx,
                    &c.id,
                    f.text().clone(),
                    Origin::Operator(from.id.clone()),
                    deadline,
                );
            }
            // preview.answer / preview.ice_candidate: to everyone else (§d.9).
            _ => ctx.broadcast(f.text(), |p| p.id != from.id),
        }
    }

    /// The last agent gone (closed, dropped, slow, revoked): its pending commands fail
    /// with `AGENT_NOT_CONNECTED`, and the room stops claiming it records: the
    /// `recording` fact clears, the active session ends, the upstream's agent status
    /// becomes `None`. The last status stays in `room_state` as `agentStatus`, next to
    /// `agentConnected: false`.
    fn on_leave(&mut self, ctx: &mut Ctx<'_>, who: &Participant) {
        if who.role != Role::Agent || ctx.participants.iter().any(|p| p.role == Role::Agent) {
            return;
        }
        for p in std::mem::take(&mut self.pending) {
            let id = p.command_id.clone();
            self.reply(ctx, p.origin, AgentReply::NotConnected, &id);
        }
        if self.active_session.take().is_some() {
            ctx.mark_changed();
        }
        if let Some(l) = self.local() {
            l.hub.update(|f| f.recording = false);
            l.agent_status.send_replace(None);
        }
        tracing::info!(operation = "room.agent", room = %ctx.room_id, "agent disconnected; recording cleared");
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_>, key: &str) {
        if let Some(p) = self.take_pending(key) {
            self.reply(ctx, p.origin, AgentReply::Timeout, key);
        }
    }

    fn on_upstream(&mut self, ctx: &mut Ctx<'_>, cmd: ToAgent) {
        let text = cmd.frame.text().clone();
        self.command(
            ctx,
            &cmd.command_id,
            text,
            Origin::Upstream(cmd.reply),
            cmd.deadline,
        );
    }

    fn state(&self, participants: &[Participant]) -> Value {
        json!({
            "agentConnected": participants.iter().any(|p| p.role == Role::Agent),
            "agentStatus": self.last_status.as_ref().map(Inbound::to_value),
            "activeSession": self.active_session.as_deref(),
            "schedule": self.schedule(),
        })
    }

    fn snapshot(&self) -> Option<Vec<u8>> {
        let snap = Snap {
            last_status: self.last_status.as_ref().map(|s| s.text().to_string()),
            active_session: self.active_session.as_deref().map(str::to_owned),
        };
        postcard::to_stdvec(&snap).ok()
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
        let snap: Snap = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
        self.last_status = match snap.last_status {
            Some(s) => Some(Inbound::parse(s).map_err(|e| format!("{e:?}"))?),
            None => None,
        };
        // Context for late joiners only. No agent is connected yet, so there is no
        // active session (`snap.active_session` is kept for older snapshots, unused), and
        // nothing goes to the upstream's agent status or the `recording` fact until the
        // agent sends a status.
        Ok(())
    }
}
