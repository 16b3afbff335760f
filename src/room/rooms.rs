//! The live rooms: created on first join (restored from their snapshot), destroyed
//! `cleanup_timeout` after the last client leaves, snapshotted to sled in batches.

use super::live::{Room, Settings};
use super::outbox::Farewell;
use super::registry::{Participant, RoomType};
use super::stats::Stats;
use crate::bus::{Bus, HookEvent};
use crate::store::{Store, Tree};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// A room's state on flash, keyed by room id in [`Tree::Snapshots`].
#[derive(Debug, Serialize, Deserialize)]
pub struct Stored {
    /// Room type name.
    pub kind: String,
    /// Unix ms when saved.
    pub saved_at_ms: i64,
    /// The type's own encoding ([`RoomLogic::snapshot`](super::registry::RoomLogic::snapshot)).
    pub data: Vec<u8>,
}

/// Snapshot timing from `[realtime.snapshots]`.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotPolicy {
    /// Write snapshots at all.
    pub enabled: bool,
    /// Seconds between snapshots of a changed room.
    pub interval: Duration,
    /// Changes that trigger a snapshot at once.
    pub max_updates: u32,
}

/// Every live room.
pub struct Rooms {
    map: Mutex<HashMap<String, Arc<Room>>>,
    /// `realtime.rooms.max_rooms`.
    max_rooms: usize,
    /// `realtime.rooms.cleanup_timeout`.
    cleanup_timeout: Duration,
    /// Given to every room.
    settings: Settings,
    /// Snapshot timing.
    pub policy: SnapshotPolicy,
    /// Woken when a room changed for the first time since its snapshot, or needs one
    /// now.
    pub snapshot_due: Arc<Notify>,
    stats: Arc<Stats>,
    bus: Bus,
    store: Store,
    /// Cancelled when the rooms stop: pending cleanups end (and drop the store).
    pub stopped: tokio_util::sync::CancellationToken,
}

impl Rooms {
    /// No rooms yet.
    pub fn new(
        max_rooms: usize,
        cleanup_timeout: Duration,
        settings: Settings,
        policy: SnapshotPolicy,
        stats: Arc<Stats>,
        bus: Bus,
        store: Store,
    ) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            max_rooms,
            cleanup_timeout,
            settings,
            policy,
            snapshot_due: Arc::new(Notify::new()),
            stats,
            bus,
            store,
            stopped: tokio_util::sync::CancellationToken::new(),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Room>>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Joins `p` to room `<kind>:<id>`, creating (and restoring) it if needed. `Err`:
    /// `max_rooms` reached.
    pub fn join(
        &self,
        kind: &Arc<dyn RoomType>,
        id: &str,
        p: Participant,
    ) -> Result<Arc<Room>, usize> {
        let room_id = format!("{}:{id}", kind.name());
        let mut map = self.map();
        let room = match map.get(&room_id) {
            Some(r) => r.clone(),
            None => {
                if map.len() >= self.max_rooms {
                    return Err(self.max_rooms);
                }
                let mut logic = kind.create(id);
                self.restore(&room_id, &mut *logic);
                let room = Room::new(
                    room_id.clone(),
                    kind.clone(),
                    logic,
                    self.stats.clone(),
                    self.snapshot_due.clone(),
                    self.policy.max_updates,
                    self.settings,
                );
                map.insert(room_id.clone(), room.clone());
                self.stats.rooms.set(map.len() as i64);
                tracing::info!(operation = "room.create", room = %room_id, "room created");
                self.bus.publish(HookEvent::RoomCreated { room: room_id });
                room
            }
        };
        // Joined under the map lock, so a cleanup cannot remove the room in between.
        room.join(p);
        Ok(room)
    }

    fn restore(&self, room_id: &str, logic: &mut dyn super::registry::RoomLogic) {
        match self
            .store
            .get::<Stored>(Tree::Snapshots, room_id.as_bytes())
        {
            Ok(None) => {}
            Ok(Some(s)) => match logic.restore(&s.data) {
                Ok(()) => {
                    tracing::info!(operation = "room.restore", room = %room_id, saved_at_ms = s.saved_at_ms, "room restored from its snapshot");
                }
                Err(e) => self.corrupt(room_id, &e),
            },
            Err(e) => self.corrupt(room_id, &e.to_string()),
        }
    }

    fn corrupt(&self, room_id: &str, error: &str) {
        self.stats.snapshots_corrupt.inc();
        tracing::warn!(operation = "room.restore", room = %room_id, error = %error, "corrupt snapshot skipped; the room starts empty");
    }

    /// Checks every stored snapshot decodes (at start); corrupt ones are counted and
    /// logged, never fatal. Returns how many are usable.
    pub fn check_snapshots(&self) -> usize {
        let Ok(tree) = self.store.tree(Tree::Snapshots) else {
            return 0;
        };
        let mut ok = 0;
        for (k, v) in tree.iter().flatten() {
            let id = String::from_utf8_lossy(&k).into_owned();
            match crate::store::codec::decode::<Stored>(&v) {
                Ok(_) => ok += 1,
                Err(e) => self.corrupt(&id, &e.to_string()),
            }
        }
        ok
    }

    /// The live room `room_id`.
    pub fn get(&self, room_id: &str) -> Option<Arc<Room>> {
        self.map().get(room_id).cloned()
    }

    /// Every live room.
    pub fn all(&self) -> Vec<Arc<Room>> {
        self.map().values().cloned().collect()
    }

    /// After the last client left: destroy the room `cleanup_timeout` later unless
    /// someone joined meanwhile. Its snapshot is written first.
    pub fn schedule_cleanup(self: &Arc<Self>, room: &Arc<Room>) {
        let generation = room.lock().generation;
        let rooms = self.clone();
        let room = room.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = rooms.stopped.cancelled() => return,
                () = tokio::time::sleep(rooms.cleanup_timeout) => {}
            }
            let removed = {
                let mut map = rooms.map();
                let g = room.lock();
                let idle = g.generation == generation && g.participants.is_empty();
                drop(g);
                if idle && map.get(&room.id).is_some_and(|r| Arc::ptr_eq(r, &room)) {
                    map.remove(&room.id);
                    rooms.stats.rooms.set(map.len() as i64);
                    true
                } else {
                    false
                }
            };
            if removed {
                rooms.save(std::slice::from_ref(&room), true).await;
                tracing::info!(operation = "room.destroy", room = %room.id, "room destroyed");
                rooms.bus.publish(HookEvent::RoomDestroyed {
                    room: room.id.clone(),
                });
            }
        });
    }

    /// The earliest interval snapshot due among the rooms; `None`: no room changed, or
    /// snapshots are off (then no change is ever taken, and a due time would stay past).
    pub fn next_snapshot(&self) -> Option<tokio::time::Instant> {
        if !self.policy.enabled {
            return None;
        }
        self.all()
            .iter()
            .filter_map(|r| r.snapshot_at(self.policy.interval))
            .min()
    }

    /// Snapshots the due rooms (`force`: every changed room) in one batch with one
    /// flush. Returns how many were written. Store errors are logged, never fatal.
    pub async fn save(&self, rooms: &[Arc<Room>], force: bool) -> usize {
        if !self.policy.enabled {
            return 0;
        }
        let now = crate::protocol::now_ms();
        let mut batch = sled::Batch::default();
        let mut saved = Vec::new();
        for room in rooms {
            let Some(data) = room.take_snapshot(force, self.policy.interval) else {
                continue;
            };
            let stored = Stored {
                kind: room.kind.name().to_owned(),
                saved_at_ms: now,
                data,
            };
            match crate::store::codec::encode(&stored) {
                Ok(bytes) => {
                    saved.push((room.id.clone(), bytes.len()));
                    batch.insert(room.id.as_bytes(), bytes);
                }
                Err(e) => {
                    tracing::warn!(operation = "room.snapshot", room = %room.id, error = %e, "cannot encode snapshot");
                }
            }
        }
        if saved.is_empty() {
            return 0;
        }
        let flushed = match self.store.apply_batch(Tree::Snapshots, batch) {
            Ok(()) => self.store.flush().await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = flushed {
            // The store sets storage_fault and logs once per interval with a count.
            tracing::debug!(operation = "room.snapshot", error = %e, "cannot write snapshots");
            return 0;
        }
        self.stats.last_snapshot_ms.store(now, Ordering::Relaxed);
        for (room, bytes) in &saved {
            self.stats.snapshots.inc();
            tracing::debug!(operation = "room.snapshot", room = %room, bytes, "snapshot saved");
            self.bus.publish(HookEvent::SnapshotSaved {
                room: room.clone(),
                bytes: *bytes,
            });
        }
        saved.len()
    }

    /// Retires the live room `old_id` (a provisional device room once the box is
    /// paired): its clients are closed with `farewell`, it leaves the map, and its state
    /// is stored under `new_id` (or the stored snapshot is moved there when it was not
    /// live). Returns how many clients were closed.
    pub async fn retire(&self, old_id: &str, new_id: &str, farewell: &Farewell) -> usize {
        let room = {
            let mut map = self.map();
            let r = map.remove(old_id);
            self.stats.rooms.set(map.len() as i64);
            r
        };
        let Some(room) = room else {
            move_stored_snapshot(&self.store, old_id, new_id).await;
            return 0;
        };
        let (closed, data) = {
            let g = room.lock();
            for p in &g.participants {
                p.out.close(farewell.clone());
            }
            (g.participants.len(), g.logic.snapshot())
        };
        if self.get(new_id).is_none() && self.policy.enabled {
            if let Some(data) = data {
                let stored = Stored {
                    kind: room.kind.name().to_owned(),
                    saved_at_ms: crate::protocol::now_ms(),
                    data,
                };
                let written = self
                    .store
                    .put(Tree::Snapshots, new_id.as_bytes(), &stored)
                    .and_then(|()| self.store.remove(Tree::Snapshots, old_id.as_bytes()));
                let flushed = match written {
                    Ok(()) => self.store.flush().await.map(|_| ()),
                    Err(e) => Err(e),
                };
                if let Err(e) = flushed {
                    tracing::warn!(operation = "room.snapshot", room = %new_id, error = %e, "cannot carry the room's state over");
                }
            }
        }
        self.bus.publish(HookEvent::RoomDestroyed {
            room: old_id.to_owned(),
        });
        closed
    }

    /// Closes every client of every room.
    pub fn close_all(&self, farewell: &Farewell) {
        for room in self.all() {
            room.close_all(farewell);
        }
    }
}

/// Moves a stored snapshot from `old_id` to `new_id` unless `new_id` has one. Store
/// errors are logged, never fatal.
pub async fn move_stored_snapshot(store: &Store, old_id: &str, new_id: &str) {
    let moved = (|| -> Result<bool, crate::store::Error> {
        let Some(old) = store.get::<Stored>(Tree::Snapshots, old_id.as_bytes())? else {
            return Ok(false);
        };
        if store
            .get::<Stored>(Tree::Snapshots, new_id.as_bytes())?
            .is_none()
        {
            store.put(Tree::Snapshots, new_id.as_bytes(), &old)?;
        }
        store.remove(Tree::Snapshots, old_id.as_bytes())?;
        Ok(true)
    })();
    let moved = match moved {
        Ok(true) => store.flush().await.map(|_| true),
        other => other,
    };
    match moved {
        Ok(true) => {
            tracing::info!(operation = "room.snapshot", from = %old_id, to = %new_id, "room snapshot carried over to the paired UUID");
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(operation = "room.snapshot", room = %new_id, error = %e, "cannot carry the room snapshot over");
        }
    }
}
