//! sled on flash, behind one small type the other capabilities use.
//!
//! - Trees: [`Tree::Snapshots`] (room state), [`Tree::Outbox`] (device → central frames),
//!   [`Tree::Schedule`] (cached sessions), [`Tree::Tokens`] (hashes of local tokens),
//!   [`Tree::Meta`] (schema version, the local device UUID).
//! - Values are postcard-encoded ([`codec`]).
//! - sled's periodic flush is off: writers call [`Store::flush`] at their commit points,
//!   which bounds flash wear and makes "acknowledged" mean "on flash".
//! - A database that cannot be opened because it is corrupt is moved aside to
//!   `<path>.quarantine-<unix time>` and a fresh one is started ([`open`]): the daemon
//!   must come up. The daemon first verifies it in a child process
//!   ([`check`], `bbedge store check`), because sled can panic on a damaged file and a
//!   panic cannot be caught under `panic = "abort"`.
//! - What the box cannot lose (token hashes, revocations, the local device UUID) lives
//!   in the token file beside the database ([`keep`]), not in sled.
//! - Every write reports to [`health`]: a failure sets `storage_fault`; [`maintain`]
//!   logs failures once per interval and reopens a database sled left poisoned.
//! - Everything is private: the directory 0700, files 0600 ([`crate::fsutil`]).
//!
//! Credentials never live here: pairing keeps them in their own 0600 files.

pub mod check;
pub mod codec;
mod error;
pub mod health;
pub mod keep;
pub mod maintain;
pub mod open;

pub use check::Checker;
pub use error::Error;
pub use open::{open, open_checked, Opened};

use health::{Health, Part};
use keep::Keep;
use serde::{de::DeserializeOwned, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The schema version this build writes. Bump it with a migration when a value's
/// encoding changes.
pub const SCHEMA_VERSION: u32 = 1;

/// The named trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tree {
    /// Room snapshots, keyed by room id.
    Snapshots,
    /// The upstream outbox, keyed by a big-endian sequence number.
    Outbox,
    /// Cached schedule items, keyed by session record id.
    Schedule,
    /// SHA-256 hashes of local room tokens.
    Tokens,
    /// Schema version and small facts.
    Meta,
}

impl Tree {
    /// The sled tree name.
    pub fn name(self) -> &'static str {
        match self {
            Tree::Snapshots => "snapshots",
            Tree::Outbox => "outbox",
            Tree::Schedule => "schedule",
            Tree::Tokens => "tokens",
            Tree::Meta => "meta",
        }
    }
}

/// The opened database. Cheap to clone; every clone shares one sled instance, which
/// [`maintain`] may replace by a reopened one.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: RwLock<Option<sled::Db>>,
    path: PathBuf,
    cache_bytes: u64,
    checker: Option<Checker>,
    health: Health,
    keep: Keep,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Store {
    fn new(
        db: sled::Db,
        path: &Path,
        cache_bytes: u64,
        checker: Option<Checker>,
        keep: Keep,
    ) -> Self {
        Store {
            inner: Arc::new(Inner {
                db: RwLock::new(Some(db)),
                path: path.to_owned(),
                cache_bytes,
                checker,
                health: Health::default(),
                keep,
            }),
        }
    }

    /// The current sled instance; [`Error::Reopening`] while [`maintain`] replaces it.
    fn db(&self) -> Result<sled::Db, Error> {
        let guard = self
            .inner
            .db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.clone().ok_or(Error::Reopening)
    }

    /// Maps a sled result and reports a failure to [`health`]. For callers that write
    /// through a [`sled::Tree`] themselves (the outbox).
    pub fn written<T>(&self, op: &'static str, r: Result<T, sled::Error>) -> Result<T, Error> {
        r.map_err(|e| self.failed(op, Error::from_sled(e)))
    }

    fn failed(&self, op: &'static str, e: Error) -> Error {
        if !matches!(e, Error::Decode(_) | Error::Encode(_)) {
            self.inner.health.failed(Part::Db, op, &e);
        }
        e
    }

    /// The sled tree behind a name, for batches and range scans. Fetch it per use, do
    /// not keep it: a kept tree pins a database [`maintain`] must be able to reopen.
    pub fn tree(&self, tree: Tree) -> Result<sled::Tree, Error> {
        let db = self.db().map_err(|e| self.failed("store.tree", e))?;
        let r = db.open_tree(tree.name());
        self.written("store.tree", r)
    }

    /// Encodes and writes one value (not yet flushed).
    pub fn put<T: Serialize>(&self, tree: Tree, key: &[u8], value: &T) -> Result<(), Error> {
        let bytes = codec::encode(value)?;
        let r = self.tree(tree)?.insert(key, bytes);
        self.written("store.put", r)?;
        Ok(())
    }

    /// Applies a batch to one tree (not yet flushed).
    pub fn apply_batch(&self, tree: Tree, batch: sled::Batch) -> Result<(), Error> {
        let r = self.tree(tree)?.apply_batch(batch);
        self.written("store.batch", r)
    }

    /// Reads and decodes one value. A value that does not decode is an error the caller
    /// may skip (a corrupt snapshot must not stop the daemon).
    pub fn get<T: DeserializeOwned>(&self, tree: Tree, key: &[u8]) -> Result<Option<T>, Error> {
        let r = self.tree(tree)?.get(key);
        match self.written("store.get", r)? {
            Some(bytes) => codec::decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Removes one key (not yet flushed).
    pub fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), Error> {
        let r = self.tree(tree)?.remove(key);
        self.written("store.remove", r)?;
        Ok(())
    }

    /// Writes everything so far to flash. Call it at commit points, not per write. A
    /// flush that works clears a database storage fault.
    pub async fn flush(&self) -> Result<usize, Error> {
        let db = self.db().map_err(|e| self.failed("store.flush", e))?;
        let r = db.flush_async().await;
        let n = self.written("store.flush", r)?;
        self.inner.health.committed(Part::Db);
        Ok(n)
    }

    /// Bytes the database takes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db()
            .ok()
            .and_then(|db| db.size_on_disk().ok())
            .unwrap_or(0)
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A monotonically increasing id from sled (survives restarts).
    pub fn next_id(&self) -> Result<u64, Error> {
        let db = self.db().map_err(|e| self.failed("store.next_id", e))?;
        let r = db.generate_id();
        self.written("store.next_id", r)
    }

    /// The token file (what a quarantine must not take).
    pub fn keep(&self) -> &Keep {
        &self.inner.keep
    }

    /// Writes the token file if it changed; a failure sets `storage_fault` and
    /// [`maintain`] tries again.
    pub fn commit_keep(&self) -> Result<(), Error> {
        match self.inner.keep.persist() {
            Ok(_) => {
                self.inner.health.committed(Part::Keep);
                Ok(())
            }
            Err(io) => {
                let e = Error::from_io(io);
                self.inner.health.failed(Part::Keep, "store.keep", &e);
                Err(e)
            }
        }
    }

    /// Whether storage works, and how often it failed.
    pub fn health(&self) -> &Health {
        &self.inner.health
    }
}
