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
//!   must come up.
//!
//! Credentials never live here: pairing keeps them in their own 0600 files.

pub mod codec;
mod error;
pub mod open;

pub use error::Error;
pub use open::{open, Opened};

use serde::{de::DeserializeOwned, Serialize};
use std::path::{Path, PathBuf};

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

/// The opened database. Cheap to clone; every clone shares one sled instance.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// The sled tree behind a name, for batches and range scans.
    pub fn tree(&self, tree: Tree) -> Result<sled::Tree, Error> {
        self.db.open_tree(tree.name()).map_err(Error::from_sled)
    }

    /// Encodes and writes one value (not yet flushed).
    pub fn put<T: Serialize>(&self, tree: Tree, key: &[u8], value: &T) -> Result<(), Error> {
        let bytes = codec::encode(value)?;
        self.tree(tree)?
            .insert(key, bytes)
            .map_err(Error::from_sled)?;
        Ok(())
    }

    /// Reads and decodes one value. A value that does not decode is an error the caller
    /// may skip (a corrupt snapshot must not stop the daemon).
    pub fn get<T: DeserializeOwned>(&self, tree: Tree, key: &[u8]) -> Result<Option<T>, Error> {
        match self.tree(tree)?.get(key).map_err(Error::from_sled)? {
            Some(bytes) => codec::decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Removes one key (not yet flushed).
    pub fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), Error> {
        self.tree(tree)?.remove(key).map_err(Error::from_sled)?;
        Ok(())
    }

    /// Writes everything so far to flash. Call it at commit points, not per write.
    pub async fn flush(&self) -> Result<usize, Error> {
        self.db.flush_async().await.map_err(Error::from_sled)
    }

    /// Bytes the database takes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A monotonically increasing id from sled (survives restarts).
    pub fn next_id(&self) -> Result<u64, Error> {
        self.db.generate_id().map_err(Error::from_sled)
    }
}
