//! Opening the database: bounded cache, no background flushing, private files, and
//! quarantine of a corrupt database so the daemon always comes up.
//!
//! [`open_checked`] (the daemon) first verifies the database in a child process
//! ([`super::check`]): sled 0.34 can panic on a damaged file, and under
//! `panic = "abort"` that would end the daemon on every start. [`open`] opens in this
//! process only: for tests and library use, where exec'ing the current executable
//! would run a test harness instead of `bbedge store check`.

use super::check::{self, Checker, Verdict};
use super::keep::{self, Keep};
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
    /// Set when the token file could not be read or parsed (it was moved aside).
    pub keep_problem: Option<String>,
}

/// A database moved aside at start.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Quarantine {
    /// Where it went.
    pub moved_to: PathBuf,
    /// Why: what failed, in words.
    pub reason: String,
}

/// Opens (or creates) the database at `path` with a page cache of `cache_bytes`, in
/// this process only (see the module docs).
pub fn open(path: &Path, cache_bytes: u64) -> Result<Opened, Error> {
    open_with(path, cache_bytes, None)
}

/// Opens the database after `checker` verified it in a child process; a database the
/// child cannot open cleanly (an error, a panic, a signal, a timeout) is quarantined.
pub fn open_checked(path: &Path, cache_bytes: u64, checker: Checker) -> Result<Opened, Error> {
    open_with(path, cache_bytes, Some(checker))
}

/// For a command of the `bbedge` binary that opens the store itself (`bbedge token`
/// with the daemon stopped): verified by a child like the daemon's start, so a damaged
/// database is quarantined instead of making the command abort.
pub fn from_command(path: &Path, config: &crate::config::Store) -> Result<Opened, Error> {
    let cache_bytes = config.cache_bytes;
    let opened = match Checker::current_exe(config) {
        Ok(c) => open_checked(path, cache_bytes, c),
        Err(_) => open(path, cache_bytes),
    }?;
    if let Some(q) = &opened.quarantined {
        // Commands log nothing: say it where the operator looks.
        crate::commands::output::err(format_args!(
            "bbedge: the database was corrupt ({}); moved it to {} and started a fresh one",
            q.reason,
            q.moved_to.display()
        ));
    }
    Ok(opened)
}

fn open_with(path: &Path, cache_bytes: u64, checker: Option<Checker>) -> Result<Opened, Error> {
    crate::fsutil::private_umask();
    ensure_writable(path)?;
    let (keep, keep_problem) = Keep::load(keep::path_for(path));
    if let Some(p) = &keep_problem {
        tracing::error!(operation = "store.keep", problem = %p, "token file unusable; local tokens must be issued again");
    }
    let (db, quarantined) = open_db(path, cache_bytes, checker.as_ref())?;
    let store = Store::new(db, path, cache_bytes, checker, keep);
    if quarantined.is_some() {
        store.health().quarantined();
    }
    if let Some(p) = &keep_problem {
        let e = Error::Corrupt(p.clone());
        store
            .health()
            .failed(super::health::Part::Keep, "store.keep", &e);
    }
    Ok(Opened {
        store,
        quarantined,
        keep_problem,
    })
}

/// Verifies (with `checker`) and opens the sled database, quarantining a corrupt one.
/// Also used by [`super::maintain`] to reopen a database sled left poisoned.
pub(crate) fn open_db(
    path: &Path,
    cache_bytes: u64,
    checker: Option<&Checker>,
) -> Result<(sled::Db, Option<Quarantine>), Error> {
    let verdict = match checker {
        Some(c) => c.verify(path),
        None => Verdict::Skipped,
    };
    let reason = match verdict {
        Verdict::Corrupt(reason) => Some(reason),
        Verdict::Failed(e) => return Err(e),
        Verdict::Unavailable(why) => {
            tracing::warn!(operation = "store.check", reason = %why, "cannot verify the database in a child process; opening it directly");
            None
        }
        Verdict::Sound | Verdict::Skipped => None,
    };
    let reason = match reason {
        Some(r) => r,
        None => match check::open_sled(path, cache_bytes).and_then(|db| {
            schema(&db)?;
            Ok(db)
        }) {
            Ok(db) => {
                tighten(path);
                return Ok((db, None));
            }
            Err(Error::Corrupt(reason) | Error::Decode(reason)) => reason,
            Err(e) => return Err(e),
        },
    };
    let moved_to = quarantine(path)?;
    tracing::error!(
        operation = "store.open",
        path = %path.display(),
        moved_to = %moved_to.display(),
        %reason,
        "database is corrupt; moved it aside and started a fresh one (local tokens are kept in the token file)"
    );
    let db = check::open_sled(path, cache_bytes)?;
    schema(&db)?;
    tighten(path);
    Ok((db, Some(Quarantine { moved_to, reason })))
}

/// Writes the schema version into a fresh database; refuses one from a newer bbedge.
fn schema(db: &sled::Db) -> Result<(), Error> {
    let meta = db.open_tree(Tree::Meta.name()).map_err(Error::from_sled)?;
    match meta.get(b"schema_version").map_err(Error::from_sled)? {
        None => {
            let v = super::codec::encode(&SCHEMA_VERSION)?;
            meta.insert(b"schema_version", v)
                .map_err(Error::from_sled)?;
            db.flush().map_err(Error::from_sled)?;
            Ok(())
        }
        Some(bytes) => match super::codec::decode::<u32>(&bytes)? {
            v if v <= SCHEMA_VERSION => Ok(()),
            v => Err(Error::Corrupt(format!(
                "schema version {v} is newer than this bbedge supports ({SCHEMA_VERSION})"
            ))),
        },
    }
}

/// Makes the database directory and its files private (an older bbedge, or sled under
/// another umask, left them 0755/0644). Failing to is logged, not fatal.
fn tighten(path: &Path) {
    match crate::fsutil::tighten_tree(path) {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(operation = "store.open", path = %path.display(), changed = n, "made the database files private (0700/0600)");
        }
        Err(e) => {
            tracing::warn!(operation = "store.open", path = %path.display(), error = %e, "cannot make the database files private");
        }
    }
}

fn ensure_writable(path: &Path) -> Result<(), Error> {
    let unwritable = |source| Error::Unwritable {
        path: path.to_owned(),
        source,
    };
    crate::fsutil::private_dir(path).map_err(unwritable)?;
    let probe = path.join(".bbedge-write-probe");
    std::fs::write(&probe, b"").map_err(unwritable)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// `<path>.<what>-<unix time>`, with a counter when that exists already.
pub(crate) fn aside_name(path: &Path, what: &str) -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut n = 0u32;
    loop {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{what}-{secs}"));
        if n > 0 {
            name.push(format!("-{n}"));
        }
        let dest = PathBuf::from(name);
        if !dest.exists() || n > 1000 {
            return dest;
        }
        n += 1;
    }
}

fn quarantine(path: &Path) -> Result<PathBuf, Error> {
    let dest = aside_name(path, "quarantine");
    std::fs::rename(path, &dest).map_err(Error::Io)?;
    crate::fsutil::private_dir(path).map_err(Error::Io)?;
    Ok(dest)
}
