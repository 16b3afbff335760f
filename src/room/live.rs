//! One live room: its participants (join order), its logic, and its change count for
//! snapshots. Everything runs under the room's lock and never waits: broadcasts go out
//! through the room's ring ([`Fan`]), frames for one client through its bounded
//! [`Outbox`](super::outbox::Outbox), presence through its coalescing
//! [`Presence`](super::presence::Presence).

use super::fan::Fan;
use super::frames;
use super::outbox::Farewell;
use super::presence;
use super::registry::{timer_for, Ctx, Participant, RoomLogic, RoomType, TimerFn};
use super::stats::Stats;
use super::tokens::Role;
use crate::protocol::Inbound;
use crate::relay::ToAgent;
use serde_json::Value;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::Notify;
// The snapshot clock is tokio's, so tests can run it on paused time.
use tokio::time::Instant;

/// A live room.
pub struct Room {
    /// `<type>:<id>`.
    pub id: String,
    /// Its type.
    pub kind: Arc<dyn RoomType>,
    inner: Mutex<Inner>,
    stats: Arc<Stats>,
    timer: TimerFn,
    /// Woken when a room first changes after a snapshot (the snapshot task then waits
    /// for its interval) and when it reaches `max_updates` changes (saved at once).
    snapshot_due: Arc<Notify>,
    max_updates: u32,
    settings: Settings,
    /// Broadcasts to the room's clients.
    fan: Arc<Fan>,
    me: Weak<Room>,
}

/// Per-room settings from `[realtime]`.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// `realtime.rooms.grace_period`: how long a departed client's `presence.left` waits
    /// for the same token to come back.
    pub grace: Duration,
    /// Largest `room_state` frame (`realtime.limits.max_frame_bytes`: what a client
    /// accepts and the socket's write buffer takes). Within the joiner's free send-queue
    /// bytes too; a larger state is trimmed (see [`frames::room_state`]).
    pub state_max: usize,
    /// `realtime.limits.send_queue_frames`: how far a client may lag behind the room's
    /// broadcasts (the ring holds more).
    pub queue_frames: usize,
}

/// Whether `p` is still to hear of presence: a closing client's writer writes none
/// again, and recording it anyway cost O(n²) memory when n clients closed at once
/// (each of them heard of every other's leave until its own end: 150 MiB of pending
/// presence for 2,000 clients, measured with heaptrack).
fn listening(p: &Participant) -> bool {
    !p.out.is_closing()
}

/// Departures waiting out the grace period; when full, `presence.left` goes out at once.
pub const MAX_DEPARTED: usize = 32;

/// A client that left within the grace period.
pub(super) struct Departed {
    token_id: String,
    client_id: String,
    who: Value,
    seq: u64,
}

pub(super) struct Inner {
    pub participants: Vec<Participant>,
    pub logic: Box<dyn RoomLogic>,
    /// Changes since the last snapshot.
    pub changes: u32,
    /// When the last snapshot was taken (or the room created).
    pub last_snapshot: Instant,
    /// Bumped on every join, so a pending cleanup can tell the room was used again.
    pub generation: u64,
    /// Departures whose `presence.left` is held back.
    pub departed: heapless::Vec<Departed, MAX_DEPARTED>,
    /// Numbers departures.
    pub seq: u64,
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room").field("id", &self.id).finish()
    }
}

impl Room {
    pub(super) fn new(
        id: String,
        kind: Arc<dyn RoomType>,
        logic: Box<dyn RoomLogic>,
        stats: Arc<Stats>,
        snapshot_due: Arc<Notify>,
        max_updates: u32,
        settings: Settings,
    ) -> Arc<Room> {
        Arc::new_cyclic(|weak| Room {
            id,
            kind,
            inner: Mutex::new(Inner {
                participants: Vec::new(),
                logic,
                changes: 0,
                last_snapshot: Instant::now(),
                generation: 0,
                departed: heapless::Vec::new(),
                seq: 0,
            }),
            stats,
            timer: timer_for(weak.clone()),
            snapshot_due,
            max_updates,
            settings,
            fan: Arc::new(Fan::new(settings.queue_frames)),
            me: weak.clone(),
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic under the lock leaves the room usable: its data is plain values.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` with a context, then counts the changes it made.
    fn with<R>(
        &self,
        f: impl FnOnce(&mut Box<dyn RoomLogic>, &mut Ctx<'_>, &[Participant]) -> R,
    ) -> R {
        let mut g = self.lock();
        let inner = &mut *g;
        let mut ctx = Ctx {
            room_id: &self.id,
            fan: &self.fan,
            participants: &inner.participants,
            stats: &self.stats,
            changed: 0,
            timer: &self.timer,
        };
        let r = f(&mut inner.logic, &mut ctx, &inner.participants);
        let changed = ctx.changed;
        let before = inner.changes;
        inner.changes = inner.changes.saturating_add(changed);
        if changed > 0 && (before == 0 || inner.changes >= self.max_updates) {
            self.snapshot_due.notify_one();
        }
        r
    }

    /// Adds `p`: it gets `room_state` (trimmed to fit its queue, or, if even the bare
    /// frame cannot fit, a close with 1009), the others a `presence.joined`.
    pub fn join(&self, p: Participant) {
        let mut g = self.lock();
        g.generation += 1;
        // Its writer reads the broadcasts from here on; `room_state` (queued next) is
        // tagged with the ring's place now, so it comes before them.
        p.out.attach(&self.fan);
        g.participants.push(p.clone());
        let state = g.logic.state(&g.participants);
        let max = self.settings.state_max.min(p.out.space());
        match frames::room_state(&self.id, &g.participants, state, max) {
            Some((text, trimmed)) => {
                if trimmed {
                    self.stats.state_trimmed.inc();
                    tracing::info!(operation = "room.join", room = %self.id, client = %p.id, max_bytes = max, "room_state trimmed to fit the send queue");
                }
                p.out.push(text);
            }
            None => {
                self.stats.dropped(super::stats::reason::TOO_LARGE);
                tracing::warn!(operation = "room.join", room = %self.id, client = %p.id, max_bytes = max, "room_state cannot fit the send queue; client closed");
                p.out.close(Farewell {
                    last: Some(frames::error(
                        crate::protocol::RealtimeCode::FrameTooLarge.as_str(),
                        &format!("Room state larger than {max} bytes"),
                    )),
                    code: Some(1009),
                    reason: "FRAME_TOO_LARGE".into(),
                    why: "too_large",
                });
            }
        }
        let replaces = g
            .departed
            .iter()
            .position(|d| d.token_id == p.token_id)
            .map(|i| g.departed.swap_remove(i))
            .map(|d| presence::Left::new(&self.id, &d.client_id, &d.who));
        let hello = presence::Joined::new(&self.id, &p.id, p.describe(), replaces);
        for other in g
            .participants
            .iter()
            .filter(|o| o.id != p.id && listening(o))
        {
            other.presence.joined(&hello, other.out.mark());
        }
    }

    /// Removes client `id`; the others get `presence.left`, after `grace_period` unless
    /// the same token joins again. Returns how many remain.
    pub fn leave(&self, id: &str) -> usize {
        let (who, seq, held) = {
            let mut g = self.lock();
            let Some(i) = g.participants.iter().position(|p| p.id == id) else {
                return g.participants.len();
            };
            let who = g.participants.remove(i);
            g.seq += 1;
            let seq = g.seq;
            let held = !self.settings.grace.is_zero()
                && g.departed
                    .push(Departed {
                        token_id: who.token_id.clone(),
                        client_id: who.id.clone(),
                        who: who.describe(),
                        seq,
                    })
                    .is_ok();
            (who, seq, held)
        };
        if held {
            let room = self.me.clone();
            let grace = self.settings.grace;
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                if let Some(room) = room.upgrade() {
                    room.left_for_good(seq);
                }
            });
        }
        let bye = (!held).then(|| presence::Left::new(&self.id, &who.id, &who.describe()));
        self.with(|logic, ctx, ps| {
            if let Some(bye) = &bye {
                for p in ps.iter().filter(|p| listening(p)) {
                    p.presence.left(bye, p.out.mark());
                }
            }
            logic.on_leave(ctx, &who);
        });
        self.lock().participants.len()
    }

    /// The grace period of departure `seq` ran out: tell the others.
    fn left_for_good(&self, seq: u64) {
        let g = &mut *self.lock();
        let Some(i) = g.departed.iter().position(|d| d.seq == seq) else {
            return;
        };
        let d = g.departed.swap_remove(i);
        let bye = presence::Left::new(&self.id, &d.client_id, &d.who);
        for p in g.participants.iter().filter(|p| listening(p)) {
            p.presence.left(&bye, p.out.mark());
        }
    }

    /// A checked, permitted frame from client `from`.
    pub fn frame(&self, from: &str, frame: &Inbound) {
        self.with(|logic, ctx, ps| {
            if let Some(p) = ps.iter().find(|p| p.id == from) {
                logic.on_frame(ctx, p, frame);
            }
        });
    }

    /// A timer set by the logic fired.
    pub fn timer(&self, key: &str) {
        self.with(|logic, ctx, _| logic.on_timer(ctx, key));
    }

    /// A command from the upstream link.
    pub fn upstream(&self, cmd: ToAgent) {
        self.with(|logic, ctx, _| logic.on_upstream(ctx, cmd));
    }

    /// Closes every connection of token `token_id`; returns how many.
    pub fn close_token(&self, token_id: &str, farewell: &Farewell) -> usize {
        let g = self.lock();
        g.participants
            .iter()
            .filter(|p| p.token_id == token_id)
            .filter(|p| p.out.close(farewell.clone()))
            .count()
    }

    /// Closes every connection.
    pub fn close_all(&self, farewell: &Farewell) {
        for p in &self.lock().participants {
            p.out.close(farewell.clone());
        }
    }

    /// Participants by role: (agents, operators, observers).
    pub fn counts(&self) -> [usize; 3] {
        let mut c = [0; 3];
        for p in &self.lock().participants {
            c[match p.role {
                Role::Agent => 0,
                Role::Operator => 1,
                // Never in a room (tokens::lookup does not know it).
                Role::Observer | Role::Admin => 2,
            }] += 1;
        }
        c
    }

    /// Frames and bytes queued towards this room's clients.
    pub fn depth(&self) -> (usize, usize) {
        self.lock().participants.iter().fold((0, 0), |(f, b), p| {
            let (pf, pb) = p.out.depth();
            (f + pf, b + pb)
        })
    }

    /// When this room's next snapshot is due by its interval: `None` while nothing
    /// changed since the last one (an idle room needs no timer).
    pub fn snapshot_at(&self, interval: Duration) -> Option<Instant> {
        let g = self.lock();
        (g.changes > 0).then(|| g.last_snapshot + interval)
    }

    /// The snapshot bytes if one is due (`force`: whenever anything changed); resets
    /// the change count.
    pub fn take_snapshot(&self, force: bool, interval: std::time::Duration) -> Option<Vec<u8>> {
        let mut g = self.lock();
        let due = g.changes > 0
            && (force || g.changes >= self.max_updates || g.last_snapshot.elapsed() >= interval);
        if !due {
            return None;
        }
        g.changes = 0;
        g.last_snapshot = Instant::now();
        g.logic.snapshot()
    }
}
