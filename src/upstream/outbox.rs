//! The outbox on sled for device → central frames that must survive an outage, a crash
//! or a power cut: `event` and `session.manifest` (contract §f.4).
//!
//! Policy per frame type (the rest of it lives in [`super::core`]):
//! - `event`, `session.manifest`: kept here until sent and confirmed, in arrival order,
//!   bounded by count, bytes and age; the oldest goes first and is counted.
//! - `status`: never stored; coalesced to the latest in memory (a fresh one is built at
//!   every connect anyway).
//! - `ack`: never stored; central rejects every pending command when the socket that
//!   carried it closes (§d.3), so an ack is only worth anything on that connection
//!   before its deadline.
//! - `preview.*`: never queued.
//!
//! Keys are sled's monotonic ids, big-endian, so iteration order is arrival order.
//! [`Outbox::accept`] flushes before it returns: a frame accepted is on flash. Entries
//! are removed only once confirmed (see `core`): a crash re-sends them with the same id.

use crate::error::ErrorCode;
use crate::store::{self, codec, health::Part, Store, Tree};
use serde::{Deserialize, Serialize};
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What kind of frame an entry holds (stored: do not renumber).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// An `event` frame.
    Event,
    /// A `session.manifest` frame (signed at send time).
    Manifest,
}

/// One stored frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The frame type.
    pub kind: Kind,
    /// When it was accepted, Unix milliseconds.
    pub queued_ms: i64,
    /// The frame as JSON text (postcard cannot hold a `serde_json::Value`).
    pub frame: String,
}

/// The outbox bounds (`[upstream] outbox_*`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most entries.
    pub max_frames: usize,
    /// Most bytes of frame text.
    pub max_bytes: usize,
    /// Oldest entry kept, milliseconds.
    pub max_age_ms: i64,
    /// Free bytes the file system must keep; below it new frames are refused
    /// (`STORE_FULL`) so sled itself never meets ENOSPC halfway through a write.
    pub min_free_bytes: u64,
}

/// Why a frame was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The disk is full (or below the reserve): what is stored stays, new frames wait.
    #[error("the disk is full; the outbox keeps what it has and refuses new frames")]
    Full,
    /// Any other store failure.
    #[error(transparent)]
    Store(store::Error),
}

impl ErrorCode for Refused {
    fn code(&self) -> &'static str {
        match self {
            Refused::Full => "STORE_FULL",
            Refused::Store(e) => e.code(),
        }
    }
}

impl From<store::Error> for Refused {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::Full => Refused::Full,
            e => Refused::Store(e),
        }
    }
}

/// Counts kept in memory, rebuilt from the tree at open.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Depth {
    /// Entries stored.
    pub frames: usize,
    /// Bytes of frame text stored.
    pub bytes: usize,
    /// Of `frames`, how many are `session.manifest` (they wait for the signing key when
    /// it is unavailable, see [`super::signing`]).
    pub manifests: usize,
    /// Dropped because the outbox was over `max_frames` or `max_bytes`.
    pub dropped_overflow: u64,
    /// Dropped because they were older than `max_age`.
    pub dropped_age: u64,
    /// Refused because the disk was full.
    pub refused_full: u64,
}

/// The outbox. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    store: Store,
    limits: Limits,
    dir: PathBuf,
    depth: Arc<Mutex<Depth>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("depth", &self.depth())
            .finish()
    }
}

/// The store error a refusal stands for (for the store's health report).
fn refusal(e: &Refused) -> store::Error {
    match e {
        Refused::Full => store::Error::Full,
        other @ Refused::Store(_) => store::Error::Io(std::io::Error::other(other.to_string())),
    }
}

fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Whether a stored entry holds a `session.manifest` (an entry that does not decode
/// counts as not).
fn is_manifest(v: &[u8]) -> bool {
    codec::decode::<Entry>(v).is_ok_and(|e| e.kind == Kind::Manifest)
}

fn seq_of(k: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = k.len().min(8);
    b[8 - n..].copy_from_slice(&k[..n]);
    u64::from_be_bytes(b)
}

impl Outbox {
    /// The tree, fetched per use: a kept one would pin a database the store must be
    /// able to reopen after a storage failure.
    fn tree(&self) -> Result<sled::Tree, store::Error> {
        self.store.tree(Tree::Outbox)
    }

    /// Opens the tree and counts what a previous run left.
    pub fn open(store: Store, limits: Limits) -> Result<Self, store::Error> {
        let tree = store.tree(Tree::Outbox)?;
        let mut depth = Depth::default();
        for item in &tree {
            let (_, v) = item.map_err(store::Error::from_sled)?;
            depth.frames += 1;
            depth.bytes += v.len();
            depth.manifests += usize::from(is_manifest(&v));
        }
        let dir = store.path().to_owned();
        Ok(Self {
            store,
            limits,
            dir,
            depth: Arc::new(Mutex::new(depth)),
        })
    }

    /// Stores a frame and flushes; returns its sequence number once it is on flash. A
    /// refusal sets the store's `storage_fault` (part `Outbox`); a frame taken clears it.
    pub async fn accept(&self, kind: Kind, frame: String, now_ms: i64) -> Result<u64, Refused> {
        let r = self.try_accept(kind, frame, now_ms).await;
        let health = self.store.health();
        match &r {
            Ok(_) => health.committed(Part::Outbox),
            Err(e) => health.failed(Part::Outbox, "upstream.outbox", &refusal(e)),
        }
        r
    }

    /// Whether storage is faulty now (the store's health, this outbox's refusals included).
    pub fn storage_faulty(&self) -> bool {
        self.store.health().is_faulty()
    }

    async fn try_accept(&self, kind: Kind, frame: String, now_ms: i64) -> Result<u64, Refused> {
        if self
            .free_bytes()
            .is_some_and(|free| free < self.limits.min_free_bytes)
        {
            self.with_depth(|d| d.refused_full += 1);
            return Err(Refused::Full);
        }
        let entry = Entry {
            kind,
            queued_ms: now_ms,
            frame,
        };
        let bytes = codec::encode(&entry)?;
        self.make_room(bytes.len())?;
        let seq = self.store.next_id()?;
        let stored = self
            .tree()
            .and_then(|t| {
                let r = t.insert(key(seq), bytes.as_slice());
                self.store.written("upstream.outbox", r)
            })
            .map_err(Refused::from);
        if let Err(e) = stored {
            if matches!(e, Refused::Full) {
                self.with_depth(|d| d.refused_full += 1);
            }
            return Err(e);
        }
        self.with_depth(|d| {
            d.frames += 1;
            d.bytes += bytes.len();
            d.manifests += usize::from(kind == Kind::Manifest);
        });
        match self.store.flush().await {
            Ok(_) => Ok(seq),
            Err(e) => {
                // Not on flash: take it back so "accepted" keeps its meaning.
                self.remove(&[seq]);
                let e = Refused::from(e);
                if matches!(e, Refused::Full) {
                    self.with_depth(|d| d.refused_full += 1);
                }
                Err(e)
            }
        }
    }

    /// Drops the oldest entries until one of `incoming` bytes fits both bounds.
    fn make_room(&self, incoming: usize) -> Result<(), store::Error> {
        loop {
            let d = self.depth();
            let over =
                d.frames + 1 > self.limits.max_frames || d.bytes + incoming > self.limits.max_bytes;
            if !over || d.frames == 0 {
                return Ok(());
            }
            let popped = self.tree()?.pop_min();
            match self.store.written("upstream.outbox", popped)? {
                Some((_, v)) => {
                    self.with_depth(|d| {
                        d.frames = d.frames.saturating_sub(1);
                        d.bytes = d.bytes.saturating_sub(v.len());
                        d.manifests = d.manifests.saturating_sub(usize::from(is_manifest(&v)));
                        d.dropped_overflow += 1;
                    });
                    tracing::warn!(
                        operation = "upstream.outbox",
                        reason = "overflow",
                        "outbox full; dropped the oldest frame"
                    );
                }
                None => return Ok(()),
            }
        }
    }

    /// The first entry after `cursor` (from the start when `None`), skipping and
    /// dropping entries older than `max_age` or that no longer decode.
    pub fn next_after(&self, cursor: Option<u64>, now_ms: i64) -> Option<(u64, Entry)> {
        let mut from = match cursor {
            Some(c) => Bound::Excluded(key(c)),
            None => Bound::Unbounded,
        };
        loop {
            let (k, v) = self
                .tree()
                .ok()?
                .range::<[u8; 8], _>((from, Bound::Unbounded))
                .next()?
                .ok()?;
            let seq = seq_of(&k);
            match codec::decode::<Entry>(&v) {
                Ok(e) if now_ms - e.queued_ms <= self.limits.max_age_ms => return Some((seq, e)),
                Ok(_) => {
                    self.remove(&[seq]);
                    self.with_depth(|d| d.dropped_age += 1);
                    tracing::warn!(
                        operation = "upstream.outbox",
                        reason = "age",
                        seq,
                        "dropped a frame older than outbox_max_age"
                    );
                }
                Err(e) => {
                    self.remove(&[seq]);
                    tracing::error!(operation = "upstream.outbox", seq, error = %e, "dropped an outbox entry that does not decode");
                }
            }
            from = Bound::Excluded(key(seq));
        }
    }

    /// Removes confirmed entries (flushed later by the caller).
    pub fn remove(&self, seqs: &[u64]) {
        let mut removed = false;
        let Ok(tree) = self.tree() else { return };
        for seq in seqs {
            if let Ok(Some(v)) = tree.remove(key(*seq)) {
                removed = true;
                self.with_depth(|d| {
                    d.frames = d.frames.saturating_sub(1);
                    d.bytes = d.bytes.saturating_sub(v.len());
                    d.manifests = d.manifests.saturating_sub(usize::from(is_manifest(&v)));
                });
            }
        }
        if removed && self.depth().frames == 0 {
            // Once per backlog, not per frame: tells an operator (and tests) that
            // everything queued while offline has reached central.
            tracing::info!(operation = "upstream.outbox", "outbox drained");
        }
    }

    /// Makes removals durable.
    pub async fn flush(&self) {
        if let Err(e) = self.store.flush().await {
            tracing::warn!(operation = "upstream.outbox", code = e.code(), error = %e, "cannot flush the outbox");
        }
    }

    /// Age of the oldest entry in milliseconds, if any.
    pub fn oldest_age_ms(&self, now_ms: i64) -> Option<i64> {
        let (_, v) = self.tree().ok()?.first().ok()??;
        codec::decode::<Entry>(&v)
            .ok()
            .map(|e| now_ms - e.queued_ms)
    }

    /// Current counts.
    pub fn depth(&self) -> Depth {
        self.depth.lock().map(|d| d.clone()).unwrap_or_default()
    }

    fn with_depth(&self, f: impl FnOnce(&mut Depth)) {
        if let Ok(mut d) = self.depth.lock() {
            f(&mut d);
        }
    }

    /// Free bytes on the file system holding the store (`None` if unknown).
    fn free_bytes(&self) -> Option<u64> {
        let s = rustix::fs::statvfs(&self.dir).ok()?;
        Some(s.f_bavail.saturating_mul(s.f_frsize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_frames: 3,
            max_bytes: 1 << 20,
            max_age_ms: 60_000,
            min_free_bytes: 0,
        }
    }

    async fn outbox(l: Limits) -> (tempfile::TempDir, Outbox) {
        let dir = tempfile::tempdir().unwrap();
        let opened = store::open(&dir.path().join("db"), 1 << 20).unwrap();
        (dir, Outbox::open(opened.store, l).unwrap())
    }

    #[tokio::test]
    async fn entries_come_back_in_order_and_the_oldest_overflows_first() {
        let (_d, o) = outbox(limits()).await;
        let mut seqs = Vec::new();
        for i in 0..5 {
            seqs.push(
                o.accept(Kind::Event, format!("{{\"n\":{i}}}"), 0)
                    .await
                    .unwrap(),
            );
        }
        let mut got = Vec::new();
        let mut cur = None;
        while let Some((s, e)) = o.next_after(cur, 0) {
            got.push(e.frame);
            cur = Some(s);
        }
        assert_eq!(got, ["{\"n\":2}", "{\"n\":3}", "{\"n\":4}"]);
        assert_eq!(o.depth().dropped_overflow, 2);
        o.remove(&seqs[2..3]);
        assert_eq!(o.depth().frames, 2);
    }

    #[tokio::test]
    async fn old_entries_are_dropped_and_counted() {
        let (_d, o) = outbox(limits()).await;
        o.accept(Kind::Event, "{}".into(), 0).await.unwrap();
        o.accept(Kind::Manifest, "{}".into(), 50_000).await.unwrap();
        let (_, e) = o.next_after(None, 70_000).unwrap();
        assert_eq!(e.kind, Kind::Manifest);
        assert_eq!(o.depth().dropped_age, 1);
        assert_eq!(o.depth().frames, 1);
        assert_eq!(o.depth().manifests, 1, "the manifest is counted as one");
        o.remove(&[o.next_after(None, 70_000).unwrap().0]);
        assert_eq!(o.depth().manifests, 0);
    }

    #[tokio::test]
    async fn below_the_free_space_reserve_new_frames_are_refused_and_old_ones_kept() {
        let (_d, o) = outbox(Limits {
            min_free_bytes: 0,
            ..limits()
        })
        .await;
        o.accept(Kind::Event, "{\"kept\":1}".into(), 0)
            .await
            .unwrap();
        let full = Outbox {
            limits: Limits {
                min_free_bytes: u64::MAX,
                ..limits()
            },
            ..o.clone()
        };
        let err = full.accept(Kind::Event, "{}".into(), 0).await.unwrap_err();
        assert_eq!(err.code(), "STORE_FULL");
        assert_eq!(full.depth().refused_full, 1);
        assert_eq!(o.next_after(None, 0).unwrap().1.frame, "{\"kept\":1}");
    }
}
