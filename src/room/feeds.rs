//! What reaches the box's own room from elsewhere in the daemon: central's commands
//! and observers' preview frames (each on its own path, see `relay`), and the pairing
//! that moves the room to the paired UUID ([`super::identity`]).

use super::outbox::Farewell;
use super::{frames, identity, stats, tokens, Service};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Hands commands from the upstream link to the local device room's agent.
pub(super) async fn upstream_commands(
    svc: Arc<Service>,
    mut rx: tokio::sync::mpsc::Receiver<crate::relay::ToAgent>,
    token: CancellationToken,
) {
    loop {
        let cmd = tokio::select! {
            () = token.cancelled() => return,
            c = rx.recv() => match c { Some(c) => c, None => return },
        };
        match svc.rooms.get(&svc.device_id.room_id()) {
            Some(room) => room.upstream(cmd),
            None => {
                let _ = cmd.reply.send(crate::relay::AgentReply::NotConnected);
            }
        }
    }
}

/// Hands observers' preview frames from central to the local room's agent: their own
/// path, no pending-command slot and no ack. No agent, or its queue full: dropped,
/// counted (`drops{reason="preview"}`) and logged (the first and every 100th).
pub(super) async fn upstream_previews(
    svc: Arc<Service>,
    mut rx: tokio::sync::mpsc::Receiver<crate::protocol::Inbound>,
    token: CancellationToken,
) {
    let mut dropped: u64 = 0;
    loop {
        let frame = tokio::select! {
            () = token.cancelled() => return,
            f = rx.recv() => match f { Some(f) => f, None => return },
        };
        let delivered = svc.rooms.get(&svc.device_id.room_id()).is_some_and(|room| {
            let g = room.lock();
            g.participants
                .iter()
                .rev()
                .find(|p| p.role == tokens::Role::Agent)
                .is_some_and(|agent| agent.out.push(frame.text().clone()))
        });
        if !delivered {
            dropped += 1;
            svc.stats.dropped(stats::reason::PREVIEW);
            if dropped == 1 || dropped % 100 == 0 {
                tracing::warn!(
                    operation = "room.preview",
                    dropped,
                    "observer preview frame from central dropped: no agent or its queue is full"
                );
            }
        }
    }
}

/// Moves the room to the paired UUID when pairing completes (`[device] uuid` empty):
/// clients of the old room are closed with 4010 `ROOM_MOVED` naming the new room, and
/// its snapshot goes with it. Unpairing keeps the room where it is.
pub(super) async fn follow_pairing(
    svc: Arc<Service>,
    credentials: crate::pairing::CredentialStore,
    token: CancellationToken,
) {
    let mut rx = credentials.subscribe();
    loop {
        let paired = rx
            .borrow_and_update()
            .as_ref()
            .map(|c| c.device_uuid.clone());
        if let Some(new) = identity::wanted(&svc.configured_uuid, paired.as_deref()) {
            if let Some(old) = svc.device_id.set(&new) {
                svc.move_room(&old, &new).await;
            }
        }
        tokio::select! {
            () = token.cancelled() => return,
            r = rx.changed() => if r.is_err() { return },
        }
    }
}

impl Service {
    /// The room moved from `old` to `new`: close the old room's clients, carry its state.
    async fn move_room(&self, old: &str, new: &str) {
        let (old_id, new_id) = (format!("device:{old}"), format!("device:{new}"));
        let farewell = Farewell {
            last: Some(frames::error(
                identity::MOVED_CODE,
                &format!("this box is now paired: its room is {new_id}; reconnect to /realtime/devices/{new}"),
            )),
            code: Some(identity::MOVED_CLOSE_CODE),
            reason: serde_json::json!({"code": identity::MOVED_CODE, "roomId": new_id}).to_string(),
            why: "room_moved",
        };
        let closed = self.rooms.retire(&old_id, &new_id, &farewell).await;
        tracing::info!(operation = "room.identity", from = %old_id, to = %new_id, closed, "device room moved to the paired UUID");
    }
}
