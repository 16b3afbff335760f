//! Schedule cache and offline autonomy (contract §d.7). Central never sends
//! `schedule.push` at the contract's commit, but if it does the sessions are cached in
//! sled (the local room shows them in `room_state` via [`sessions`]). When the link is
//! down at a scheduled start or end, bbedge tells the agent to start or stop itself and
//! queues an event saying what it did, sent once central is back.

use super::outbox::{Kind, Outbox};
use crate::protocol::wire::{Command, Payload};
use crate::protocol::{new_id, now_ms, now_rfc3339, Frame, Inbound};
use crate::relay::{AgentReply, ToAgent};
use crate::store::{self, codec, Store, Tree};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

/// How often the autonomy task looks at the clock.
pub const TICK: Duration = Duration::from_secs(5);
/// Most sessions cached; a push with more keeps the earliest.
pub const MAX_SESSIONS: usize = 256;
/// How long the agent gets to ack an autonomous start or stop.
pub const AGENT_DEADLINE: Duration = Duration::from_secs(5);

/// One cached session (stored; append fields only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cached {
    /// The schedule item as central sent it (JSON text).
    pub item: String,
    /// bbedge started it on its own.
    pub started: bool,
    /// bbedge stopped it on its own (or it is over).
    pub stopped: bool,
}

/// Every cached schedule item, in start order (for the local room's `room_state`).
pub fn sessions(store: &Store) -> Vec<Value> {
    let Ok(tree) = store.tree(Tree::Schedule) else {
        return Vec::new();
    };
    let mut out: Vec<Value> = tree
        .iter()
        .filter_map(std::result::Result::ok)
        .filter_map(|(_, v)| codec::decode::<Cached>(&v).ok())
        .filter_map(|c| serde_json::from_str(&c.item).ok())
        .collect();
    out.sort_by(|a: &Value, b: &Value| {
        a["scheduled_start"]
            .as_str()
            .cmp(&b["scheduled_start"].as_str())
    });
    out
}

/// The cache and the agent seam.
#[derive(Clone)]
pub struct Schedule {
    store: Store,
    to_agent: mpsc::Sender<ToAgent>,
}

fn at(item: &Value, k: &str) -> Option<i64> {
    let s = item.get(k)?.as_str()?;
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

impl Schedule {
    /// Opens the tree.
    pub fn open(store: Store, to_agent: mpsc::Sender<ToAgent>) -> Result<Self, store::Error> {
        store.tree(Tree::Schedule)?;
        Ok(Self { store, to_agent })
    }

    /// Replaces the cache with a `schedule.push`'s sessions (keeps what bbedge already
    /// did for sessions that stay).
    pub fn cache_push(&self, payload: &Payload) {
        let Some(items) = payload.get("sessions").and_then(Value::as_array) else {
            tracing::warn!(
                operation = "upstream.schedule",
                "schedule.push without sessions ignored"
            );
            return;
        };
        let mut keep = std::collections::BTreeSet::new();
        for item in items.iter().take(MAX_SESSIONS) {
            let (Some(id), Some(_)) = (
                item.get("id").and_then(Value::as_str),
                at(item, "scheduled_start"),
            ) else {
                continue;
            };
            keep.insert(id.to_owned());
            let prev: Option<Cached> = self.store.get(Tree::Schedule, id.as_bytes()).ok().flatten();
            let c = Cached {
                item: item.to_string(),
                started: prev.as_ref().is_some_and(|p| p.started),
                stopped: prev.as_ref().is_some_and(|p| p.stopped),
            };
            if let Err(e) = self.store.put(Tree::Schedule, id.as_bytes(), &c) {
                tracing::warn!(operation = "upstream.schedule", error = %e, "cannot cache a scheduled session");
            }
        }
        // Fetched per use: a kept tree would pin a database the store must reopen.
        if let Ok(tree) = self.store.tree(Tree::Schedule) {
            for (k, _) in tree.iter().filter_map(std::result::Result::ok) {
                if !keep.contains(&*String::from_utf8_lossy(&k)) {
                    let _ = tree.remove(k);
                }
            }
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            let _ = store.flush().await;
        });
        tracing::info!(
            operation = "upstream.schedule",
            sessions = keep.len(),
            "schedule cached"
        );
    }

    /// Starts or stops sessions on its own while the link is down.
    pub async fn run_autonomy(
        self,
        online: Arc<AtomicBool>,
        outbox: Outbox,
        grew: Arc<Notify>,
        token: CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(TICK) => {}
            }
            if online.load(Ordering::SeqCst) {
                continue;
            }
            self.tick(now_ms(), &outbox, &grew).await;
        }
    }

    /// One look at the clock (public for tests).
    pub async fn tick(&self, now: i64, outbox: &Outbox, grew: &Notify) {
        // Read first, then act: the tree is not held across the agent's answer.
        let entries: Vec<(sled::IVec, sled::IVec)> = match self.store.tree(Tree::Schedule) {
            Ok(tree) => tree.iter().filter_map(std::result::Result::ok).collect(),
            Err(_) => return,
        };
        for (k, v) in entries {
            let Ok(mut c) = codec::decode::<Cached>(&v) else {
                continue;
            };
            let Ok(item) = serde_json::from_str::<Value>(&c.item) else {
                continue;
            };
            let (Some(start), end) = (at(&item, "scheduled_start"), at(&item, "scheduled_end"))
            else {
                continue;
            };
            let id = String::from_utf8_lossy(&k).into_owned();
            let action = if !c.started && !c.stopped && now >= start && end.is_none_or(|e| now < e)
            {
                c.started = true;
                "start_session"
            } else if c.started && !c.stopped && end.is_some_and(|e| now >= e) {
                c.stopped = true;
                "stop_session"
            } else {
                continue;
            };
            let reply = self.ask_agent(action, &id).await;
            let (success, error) = match reply {
                AgentReply::Ack(a) => match a.frame() {
                    Frame::Ack(a) => (a.success, None),
                    _ => (true, None),
                },
                AgentReply::NotConnected => (false, Some("AGENT_NOT_CONNECTED")),
                AgentReply::Timeout => (false, Some("AGENT_TIMEOUT")),
            };
            tracing::info!(operation = "upstream.schedule", correlation_id = %id, action, success, "acted on the schedule while offline");
            let _ = self.store.put(Tree::Schedule, &k, &c);
            let payload = json!({
                "action": action, "session_id": id, "performed_at": now_rfc3339(),
                "success": success, "errorCode": error,
            });
            let Value::Object(payload) = payload else {
                continue;
            };
            let event = super::frames::event("schedule.autonomous_action", payload);
            if outbox
                .accept(Kind::Event, event.to_string(), now_ms())
                .await
                .is_ok()
            {
                grew.notify_one();
            }
        }
    }

    async fn ask_agent(&self, action: &str, id: &str) -> AgentReply {
        let command_id = new_id();
        let mut payload = Payload::new();
        payload.insert("civicpressSessionId".into(), json!(id));
        payload.insert("autonomous".into(), json!(true));
        let frame = Inbound::new(Frame::Command(Command {
            id: command_id.clone(),
            timestamp: now_rfc3339(),
            action: action.to_owned(),
            payload: Some(payload),
        }));
        let (reply, rx) = oneshot::channel();
        let req = ToAgent {
            frame,
            command_id,
            deadline: AGENT_DEADLINE,
            reply,
        };
        if self.to_agent.try_send(req).is_err() {
            return AgentReply::NotConnected;
        }
        match tokio::time::timeout(AGENT_DEADLINE, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => AgentReply::NotConnected,
            Err(_) => AgentReply::Timeout,
        }
    }
}
