//! Presence towards one client, coalesced: who joined and who left since the client
//! was last written to, kept apart from its bounded send queue
//! ([`Outbox`](super::outbox::Outbox)) so that a burst of joins and leaves can never
//! make a reading client a slow consumer (1013).
//!
//! Each client holds the *net* change to what it has been told: a `presence.joined`
//! not yet written is cancelled by that participant's `presence.left` (the client never
//! hears of it), and a reconnect (`previous`) folds into what the client knew. So the
//! pending changes are at most the participants present now plus those the client was
//! told of that have gone: bounded by the room, however long the burst.
//!
//! Each change remembers where the client's stream of frames was when it happened
//! ([`Outbox::mark`](super::outbox::Outbox::mark): its own frames queued so far and the
//! room's last broadcast); the writer writes it after those frames and before the next
//! one, so presence keeps its place among the frames (a coalesced change takes the place
//! of the latest change it folds in).

use super::frames;
use super::outbox::Mark;
use futures_util::task::AtomicWaker;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// A participant that joined, as every other client is to hear of it.
#[derive(Debug)]
pub struct Joined {
    /// Its client id.
    pub id: String,
    /// `{id, role, label}`.
    pub who: Value,
    /// The room id, `<type>:<id>`.
    pub room: String,
    /// The connection it replaces (a reconnect within the grace period), if any.
    pub replaces: Option<Arc<Left>>,
    /// `presence.joined`, with `previous` when it replaces one.
    pub frame: Utf8Bytes,
}

/// A participant that left.
#[derive(Debug)]
pub struct Left {
    /// Its client id.
    pub id: String,
    /// `presence.left`.
    pub frame: Utf8Bytes,
}

impl Joined {
    /// `who` joined room `room`, replacing `replaces`.
    pub fn new(room: &str, id: &str, who: Value, replaces: Option<Arc<Left>>) -> Arc<Self> {
        let frame = frames::presence(
            room,
            "presence.joined",
            &who,
            replaces.as_ref().map(|r| r.id.as_str()),
        );
        Arc::new(Joined {
            id: id.to_owned(),
            who,
            room: room.to_owned(),
            replaces,
            frame,
        })
    }
}

impl Left {
    /// `who` (client `id`) left room `room`.
    pub fn new(room: &str, id: &str, who: &Value) -> Arc<Self> {
        Arc::new(Left {
            id: id.to_owned(),
            frame: frames::presence(room, "presence.left", who, None),
        })
    }
}

enum Change {
    /// Not yet told. `replaces`: the connection this client knows that it replaces
    /// (may differ from the event's when that one was never told either).
    Joined {
        seq: u64,
        after: Mark,
        replaces: Option<Arc<Left>>,
        frame: Utf8Bytes,
    },
    /// Told it joined; not yet told it left.
    Left {
        seq: u64,
        after: Mark,
        ev: Arc<Left>,
    },
}

impl Change {
    fn seq(&self) -> u64 {
        match self {
            Change::Joined { seq, .. } | Change::Left { seq, .. } => *seq,
        }
    }

    fn after(&self) -> Mark {
        match self {
            Change::Joined { after, .. } | Change::Left { after, .. } => *after,
        }
    }
}

#[derive(Default)]
struct Net {
    seq: u64,
    changes: HashMap<String, Change>,
}

/// One client's pending presence. Filled by the room (never waiting), drained by the
/// client's writer.
#[derive(Default)]
pub struct Presence {
    net: Mutex<Net>,
    /// The client's writer, woken by the first change (no lock: see the outbox's).
    writer: AtomicWaker,
    /// `net.changes.len()`, set under the lock: the writer looks before every frame,
    /// and without a change pending it need not take the lock.
    pending: AtomicUsize,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence")
            .field("pending", &self.pending())
            .finish()
    }
}

impl Presence {
    fn lock(&self) -> std::sync::MutexGuard<'_, Net> {
        // Plain values: usable after a panic elsewhere.
        self.net
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `ev` joined, after the client's frames up to `after`.
    pub fn joined(&self, ev: &Arc<Joined>, after: Mark) {
        let was_empty = {
            let mut n = self.lock();
            let was_empty = n.changes.is_empty();
            n.seq += 1;
            let seq = n.seq;
            let mut replaces = ev.replaces.clone();
            let mut frame = ev.frame.clone();
            if let Some(prev) = &ev.replaces {
                if let Some(Change::Joined {
                    replaces: known, ..
                }) = n.changes.get(&prev.id)
                {
                    // This client never heard of the connection replaced: it replaces
                    // what that one replaced, if anything the client knew.
                    let known = known.clone();
                    if known.as_ref().map(|k| &k.id) != Some(&prev.id) {
                        frame = frames::presence(
                            &ev.room,
                            "presence.joined",
                            &ev.who,
                            known.as_ref().map(|k| k.id.as_str()),
                        );
                    }
                    replaces = known;
                    n.changes.remove(&prev.id);
                }
            }
            n.changes.insert(
                ev.id.clone(),
                Change::Joined {
                    seq,
                    after,
                    replaces,
                    frame,
                },
            );
            self.pending.store(n.changes.len(), Ordering::Release);
            was_empty
        };
        // The writer was told when the first change came; it takes them all.
        if was_empty {
            self.writer.wake();
        }
    }

    /// `ev` left (for good: after the grace period, or at once), after the client's
    /// frames up to `after`.
    pub fn left(&self, ev: &Arc<Left>, after: Mark) {
        let was_empty = {
            let mut n = self.lock();
            let was_empty = n.changes.is_empty();
            n.seq += 1;
            let seq = n.seq;
            match n.changes.remove(&ev.id) {
                // Never told it joined: the client hears nothing of it, but of the
                // connection it replaced, which the client knew, that it is gone.
                Some(Change::Joined { replaces, .. }) => {
                    if let Some(r) = replaces {
                        let left = Change::Left {
                            seq,
                            after,
                            ev: r.clone(),
                        };
                        n.changes.insert(r.id.clone(), left);
                    }
                }
                _ => {
                    n.changes.insert(
                        ev.id.clone(),
                        Change::Left {
                            seq,
                            after,
                            ev: ev.clone(),
                        },
                    );
                }
            }
            self.pending.store(n.changes.len(), Ordering::Release);
            was_empty
        };
        // The writer was told when the first change came; it takes them all.
        if was_empty {
            self.writer.wake();
        }
    }

    /// The pending frames due once the client's frames up to `written` are written, in
    /// the order they happened; they are no longer pending.
    pub fn take(&self, written: Mark) -> Vec<Utf8Bytes> {
        if self.pending.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        let mut n = self.lock();
        if n.changes.is_empty() {
            return Vec::new();
        }
        let due: Vec<String> = n
            .changes
            .iter()
            .filter(|(_, c)| c.after().reached_by(written))
            .map(|(k, _)| k.clone())
            .collect();
        let mut v: Vec<Change> = due.iter().filter_map(|k| n.changes.remove(k)).collect();
        self.pending.store(n.changes.len(), Ordering::Release);
        if n.changes.is_empty() {
            // A burst grew the map; an idle client keeps none of it (a 1,000-client
            // room held ~1.3 KiB per client in emptied maps, measured with heaptrack).
            n.changes = HashMap::new();
        }
        drop(n);
        v.sort_unstable_by_key(Change::seq);
        v.into_iter()
            .map(|c| match c {
                Change::Joined { frame, .. } => frame,
                Change::Left { ev, .. } => ev.frame.clone(),
            })
            .collect()
    }

    /// Drops every pending change (the client is closing: none will be written).
    pub fn clear(&self) {
        let mut n = self.lock();
        n.changes = HashMap::new();
        self.pending.store(0, Ordering::Release);
    }

    /// Changes waiting: one atomic load (set under the lock with every change), no lock.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Wakes `waker` for the first change after none; look again after registering.
    pub fn register(&self, waker: &Waker) {
        self.writer.register(waker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn who(id: &str) -> Value {
        json!({"id": id, "role": "observer", "label": "x"})
    }

    fn events(p: &Presence) -> Vec<(String, String, Option<String>)> {
        p.take(Mark::END)
            .iter()
            .map(|t| {
                let v: Value = serde_json::from_str(t).unwrap();
                (
                    v["event"].as_str().unwrap().to_owned(),
                    v["participant"]["id"].as_str().unwrap().to_owned(),
                    v["previous"].as_str().map(str::to_owned),
                )
            })
            .collect()
    }

    fn ev(e: &str, id: &str, prev: Option<&str>) -> (String, String, Option<String>) {
        (e.to_owned(), id.to_owned(), prev.map(str::to_owned))
    }

    #[test]
    fn a_burst_of_joins_and_leaves_nets_out_and_stays_in_order() {
        let p = Presence::default();
        let left_a = Left::new("r", "a", &who("a"));
        // `a` was told earlier; 1,000 come and go; `b` stays; `a` leaves.
        for i in 0..1000 {
            let id = format!("c{i}");
            p.joined(&Joined::new("r", &id, who(&id), None), Mark::direct(0));
            p.left(&Left::new("r", &id, &who(&id)), Mark::direct(0));
        }
        p.joined(&Joined::new("r", "b", who("b"), None), Mark::direct(0));
        p.left(&left_a, Mark::direct(0));
        assert_eq!(p.pending(), 2);
        assert_eq!(
            events(&p),
            vec![
                ev("presence.joined", "b", None),
                ev("presence.left", "a", None)
            ]
        );
        assert!(p.take(Mark::END).is_empty());
        assert_eq!(p.lock().changes.capacity(), 0, "the drained map is freed");
    }

    #[test]
    fn clearing_drops_what_is_pending_and_frees_the_map() {
        let p = Presence::default();
        for i in 0..100 {
            let id = format!("c{i}");
            p.joined(&Joined::new("r", &id, who(&id), None), Mark::direct(0));
        }
        assert_eq!(p.pending(), 100);
        p.clear();
        assert_eq!(p.pending(), 0);
        assert!(p.take(Mark::END).is_empty());
        assert_eq!(p.lock().changes.capacity(), 0);
    }

    #[test]
    fn a_change_waits_for_the_frames_queued_before_it() {
        let p = Presence::default();
        // Two frames were queued (connection.ack, room_state) when `a` joined, a third
        // when `b` did.
        p.joined(&Joined::new("r", "a", who("a"), None), Mark::direct(2));
        p.joined(&Joined::new("r", "b", who("b"), None), Mark::direct(3));
        assert!(p.take(Mark::direct(1)).is_empty(), "frame 2 first");
        assert_eq!(p.take(Mark::direct(2)).len(), 1);
        assert_eq!(p.pending(), 1);
        assert_eq!(events(&p), vec![ev("presence.joined", "b", None)]);
    }

    #[test]
    fn a_change_waits_for_the_broadcasts_made_before_it_too() {
        let p = Presence::default();
        // `a` joined after the client's first frame and the room's 5th broadcast.
        p.joined(
            &Joined::new("r", "a", who("a"), None),
            Mark { direct: 1, ring: 5 },
        );
        assert!(
            p.take(Mark { direct: 1, ring: 4 }).is_empty(),
            "broadcast 5 first"
        );
        assert!(
            p.take(Mark { direct: 0, ring: 9 }).is_empty(),
            "its own frame first"
        );
        assert_eq!(p.take(Mark { direct: 1, ring: 5 }).len(), 1);
    }

    #[test]
    fn a_reconnect_the_client_never_heard_of_folds_into_what_it_knew() {
        let p = Presence::default();
        // The client knows a1. a1 drops; a2 replaces it, then a3 replaces a2, all before
        // the client reads: it hears only that a3 replaces a1.
        let a1 = Left::new("r", "a1", &who("a1"));
        let a2 = Joined::new("r", "a2", who("a2"), Some(a1));
        p.joined(&a2, Mark::direct(0));
        let a2_left = Left::new("r", "a2", &who("a2"));
        p.joined(
            &Joined::new("r", "a3", who("a3"), Some(a2_left.clone())),
            Mark::direct(0),
        );
        assert_eq!(events(&p), vec![ev("presence.joined", "a3", Some("a1"))]);
        // Now it knows a3. b2 joins, b3 replaces b2, b3 leaves, all unread: nothing.
        p.joined(&Joined::new("r", "b2", who("b2"), None), Mark::direct(0));
        let b2 = Left::new("r", "b2", &who("b2"));
        p.joined(
            &Joined::new("r", "b3", who("b3"), Some(b2)),
            Mark::direct(0),
        );
        p.left(&Left::new("r", "b3", &who("b3")), Mark::direct(0));
        assert_eq!(p.pending(), 0);
        // a4 replaces a3 and leaves before the client reads: a3 left.
        let a3 = Left::new("r", "a3", &who("a3"));
        p.joined(
            &Joined::new("r", "a4", who("a4"), Some(a3)),
            Mark::direct(0),
        );
        p.left(&Left::new("r", "a4", &who("a4")), Mark::direct(0));
        let got = events(&p);
        assert_eq!(got, vec![ev("presence.left", "a3", None)], "{got:?}");
    }
}
