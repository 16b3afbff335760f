//! The token file: what the box cannot lose (hashes of local tokens, revocations, the
//! local device UUID) kept outside sled, so a corrupt database that is quarantined
//! cannot take it along. A small JSON document beside the database directory
//! (`<db>.keep.json`), loaded into memory at open, written with the one atomic 0600
//! writer ([`crate::fsutil::write`]) at every change. A change is in memory at once
//! (a revocation takes effect even when the disk is full); a write that fails leaves
//! the document dirty and [`super::maintain`] writes it again.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The format version this build writes.
const VERSION: u32 = 1;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Doc {
    version: u32,
    /// Data moved here from the database already (`"tokens"`, `"meta"`).
    #[serde(default)]
    migrated: BTreeSet<String>,
    /// Section → key → value.
    #[serde(default)]
    sections: BTreeMap<String, BTreeMap<String, Value>>,
}

#[derive(Debug, Default)]
struct State {
    doc: Doc,
    dirty: bool,
    /// Set when the file exists but could not be read: it is never written over (that
    /// would replace the tokens it holds by what is in memory).
    unreadable: Option<String>,
}

/// The loaded token file.
#[derive(Debug)]
pub struct Keep {
    path: PathBuf,
    state: Mutex<State>,
}

/// Where the token file of the database at `db` lives: `<db>.keep.json`.
pub fn path_for(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".keep.json");
    PathBuf::from(name)
}

impl Keep {
    /// Loads `path`. A missing file is an empty document; one that does not parse is
    /// moved aside to `<path>.corrupt-<unix time>` and reported (the box keeps running
    /// with an empty one).
    pub fn load(path: PathBuf) -> (Keep, Option<String>) {
        let (doc, problem) = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Doc>(&bytes) {
                Ok(doc) => (doc, None),
                Err(e) => {
                    let aside = super::open::aside_name(&path, "corrupt");
                    let moved = std::fs::rename(&path, &aside);
                    let problem = format!(
                        "the token file {} does not parse ({e}); moved to {} ({})",
                        path.display(),
                        aside.display(),
                        match moved {
                            Ok(()) => "ok".to_owned(),
                            Err(e) => e.to_string(),
                        }
                    );
                    (Doc::default(), Some(problem))
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Doc::default(), None),
            Err(e) => (
                Doc::default(),
                Some(format!(
                    "cannot read the token file {}: {e}",
                    path.display()
                )),
            ),
        };
        let unreadable = match (&problem, path.exists()) {
            (Some(p), true) => Some(p.clone()),
            _ => None,
        };
        let keep = Keep {
            path,
            state: Mutex::new(State {
                doc,
                dirty: false,
                unreadable,
            }),
        };
        (keep, problem)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // A panic while holding the lock cannot leave a half-made change in a map of
        // plain values, so a poisoned lock is used as is.
        let mut guard = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// One value.
    pub fn get(&self, section: &str, key: &str) -> Option<Value> {
        self.with(|s| s.doc.sections.get(section)?.get(key).cloned())
    }

    /// Every entry of a section, by key.
    pub fn entries(&self, section: &str) -> Vec<(String, Value)> {
        self.with(|s| {
            s.doc
                .sections
                .get(section)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()
        })
    }

    /// Sets a value in memory (call [`super::Store::commit_keep`] to write it).
    pub fn set(&self, section: &str, key: &str, value: Value) {
        self.with(|s| {
            s.doc
                .sections
                .entry(section.to_owned())
                .or_default()
                .insert(key.to_owned(), value);
            s.dirty = true;
        });
    }

    /// Removes a value in memory.
    pub fn remove(&self, section: &str, key: &str) -> Option<Value> {
        self.with(|s| {
            let v = s.doc.sections.get_mut(section)?.remove(key);
            s.dirty |= v.is_some();
            v
        })
    }

    /// Whether `what` was moved here from the database already.
    pub fn migrated(&self, what: &str) -> bool {
        self.with(|s| s.doc.migrated.contains(what))
    }

    /// Marks `what` as moved here.
    pub fn mark_migrated(&self, what: &str) {
        self.with(|s| {
            s.dirty |= s.doc.migrated.insert(what.to_owned());
        });
    }

    /// Whether a change is not on flash yet.
    pub fn dirty(&self) -> bool {
        self.with(|s| s.dirty)
    }

    /// Writes the document if it changed. The lock is not held during the write, so a
    /// change made meanwhile stays dirty and is written next time.
    pub fn persist(&self) -> std::io::Result<bool> {
        let bytes = self.with(|s| {
            if let Some(why) = &s.unreadable {
                return Some(Err(std::io::Error::other(format!(
                    "{why}; not writing over it (restart once it reads)"
                ))));
            }
            if !s.dirty {
                return None;
            }
            s.doc.version = VERSION;
            s.dirty = false;
            Some(serde_json::to_vec_pretty(&s.doc).map_err(std::io::Error::other))
        });
        let result = match bytes {
            None => return Ok(false),
            Some(Ok(b)) => crate::fsutil::write(&self.path, &b),
            Some(Err(e)) => Err(e),
        };
        if result.is_err() {
            self.with(|s| s.dirty = true);
        }
        result.map(|()| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn changes_survive_a_reload_in_a_0600_file_and_garbage_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let p = path_for(&dir.path().join("db"));
        assert!(p.ends_with("db.keep.json"));
        let (k, problem) = Keep::load(p.clone());
        assert!(problem.is_none());
        k.set("tokens", "abc", serde_json::json!({"id": "tok_1"}));
        k.mark_migrated("tokens");
        assert!(k.dirty());
        assert!(k.persist().unwrap());
        assert!(!k.dirty() && !k.persist().unwrap());
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (k2, _) = Keep::load(p.clone());
        assert_eq!(k2.get("tokens", "abc").unwrap()["id"], "tok_1");
        assert!(k2.migrated("tokens") && !k2.migrated("meta"));
        std::fs::write(&p, b"{not json").unwrap();
        let (k3, problem) = Keep::load(p.clone());
        assert!(problem.unwrap().contains("does not parse"));
        assert!(k3.entries("tokens").is_empty());
        assert!(!p.exists(), "moved aside");
    }

    #[test]
    fn a_token_file_that_exists_but_cannot_be_read_is_never_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let p = path_for(&dir.path().join("db"));
        std::fs::create_dir(&p).unwrap(); // read(2) on a directory: EISDIR
        let (k, problem) = Keep::load(p.clone());
        assert!(problem.unwrap().contains("cannot read"));
        k.set("tokens", "abc", serde_json::json!({}));
        let err = k.persist().unwrap_err();
        assert!(err.to_string().contains("not writing over it"), "{err}");
        assert!(p.is_dir() && k.dirty());
    }
}
