//! Opening the database: bounded cache, no background flushing, and quarantine of a
//! corrupt database so the daemon always comes up.

use super::{Error, Store, Tree, SCHEMA_VERSION};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The result of [`open`]: the store, and where a corrupt database was moved, if it was.
#[derive(Debug)]
pub struct Opened {
    /// The usable store.
    pub store: Store,
    /// Set when the old database was corrupt and moved aside.
    pub quarantined: Option<Quarantine>,
}

/// A database moved aside at start.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Quarantine {
    /// Where it went.
    pub moved_to: PathBuf,
    /// Why.
    pub reason: String,
}

/// Opens (or creates) the database at `path` with a page cache of `cache_bytes`.
pub fn open(path: &Path, cache_bytes: u64) -> Result<Opened, Error> {
    ensure_writable(path)?;
    match try_open(path, cache_bytes) {
        Ok(store) => Ok(Opened {
            store,
            quarantined: None,
        }),
        Err(Error::Corrupt(reason)) | Err(Error::Decode(reason)) => {
            let moved_to = quarantine(path)?;
            tracing::error!(
                operation = "store.open",
                path = %path.display(),
                moved_to = %moved_to.display(),
                %reason,
                "database is corrupt; moved it aside and started a fresh one"
            );
            let store = try_open(path, cache_bytes)?;
            Ok(Opened {
                store,
                quarantined: Some(Quarantine { moved_to, reason }),
            })
        }
        Err(e) => Err(e),
    }
}

fn try_open(path: &Path, cache_bytes: u64) -> Result<Store, Error> {
    let db = sled::Config::new()
        .path(path)
        .cache_capacity(cache_bytes)
        .flush_every_ms(None)
        .mode(sled::Mode::LowSpace)
        .open()
        .map_err(|e| match Error::from_sled(e) {
            Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
                Error::Unwritable {
                    path: path.to_owned(),
                    source: io,
                }
            }
            // sled wraps EWOULDBLOCK from its file lock in a message of its own.
            Error::Io(io)
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("could not acquire lock") =>
            {
                Error::Locked {
                    path: path.to_owned(),
                }
            }
            // sled reports a mangled file as an I/O error of kind InvalidData/UnexpectedEof.
            Error::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                Error::Corrupt(io.to_string())
            }
            other => other,
        })?;
    let store = Store {
        db,
        path: path.to_owned(),
    };
    check_schema(&store)?;
    Ok(store)
}

/// Writes the schema version into a fresh database; refuses one from a newer bbedge.
fn check_schema(store: &Store) -> Result<(), Error> {
    match store.get::<u32>(Tree::Meta, b"schema_version")? {
        None => {
            store.put(Tree::Meta, b"schema_version", &SCHEMA_VERSION)?;
            store.db.flush().map_err(Error::from_sled)?;
            Ok(())
        }
        Some(v) if v <= SCHEMA_VERSION => Ok(()),
        Some(v) => Err(Error::Corrupt(format!(
            "schema version {v} is newer than this bbedge supports ({SCHEMA_VERSION})"
        ))),
    }
}

fn ensure_writable(path: &Path) -> Result<(), Error> {
    let unwritable = |source| Error::Unwritable {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(path).map_err(unwritable)?;
    let probe = path.join(".bbedge-write-probe");
    std::fs::write(&probe, b"").map_err(unwritable)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn quarantine(path: &Path) -> Result<PathBuf, Error> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".quarantine-{secs}"));
    let dest = PathBuf::from(name);
    std::fs::rename(path, &dest).map_err(Error::Io)?;
    std::fs::create_dir_all(path).map_err(Error::Io)?;
    Ok(dest)
}
