//! The device signing key as the link meets it at send time (contract §d.8). A device
//! that registered a key must send signed manifests: central drops any other form
//! without a word, so a manifest that cannot be signed is never sent unsigned. It stays
//! in the outbox (stepped over, so events behind it still flow) until the key is back;
//! this module keeps what `/status`, the metrics and the log say about that, changing
//! only when the key's state changes, not at every manifest that waits.

use ed25519_dalek::SigningKey;
use std::borrow::Cow;
use std::path::Path;
use std::sync::Mutex;

/// The reason shown while the key file is usable again but manifests stepped over on
/// the current connection wait for the next one (so none overtakes another).
pub const READABLE_AGAIN: &str =
    "the key file is readable again; waiting manifests are sent in order on the next connection";

/// Why the key could not be used, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong (names the file, never its content).
    pub error: String,
    /// When a manifest first waited for it, RFC 3339.
    pub since: String,
}

/// The key's state as of the last manifest that needed it, for `/status`, `/metrics`
/// and the log line per change. Written by the link, never read by it: the hold
/// (which connection a manifest was stepped over on) is [`super::state::Link`]'s.
#[derive(Debug, Default)]
pub struct KeyState {
    problem: Mutex<Option<Problem>>,
}

/// What changed, for the one log line a change deserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Same state as before: log nothing.
    None,
    /// The key just became unusable.
    Lost,
    /// Still unusable, for a different reason.
    Reason,
    /// The key is usable again after being unusable.
    Back,
}

impl KeyState {
    /// Records that a manifest waits because of `error`.
    pub fn unavailable(&self, error: &str) -> Change {
        let Ok(mut p) = self.problem.lock() else {
            return Change::None;
        };
        match p.as_mut() {
            Some(old) => {
                if old.error == error {
                    return Change::None;
                }
                old.error = error.to_owned();
                Change::Reason
            }
            None => {
                *p = Some(Problem {
                    error: error.to_owned(),
                    since: crate::protocol::now_rfc3339(),
                });
                Change::Lost
            }
        }
    }

    /// Records that the key signed a manifest.
    pub fn available(&self) -> Change {
        match self.problem.lock().map(|mut p| p.take()) {
            Ok(Some(_)) => Change::Back,
            _ => Change::None,
        }
    }

    /// The current problem, if any.
    pub fn problem(&self) -> Option<Problem> {
        self.problem.lock().ok().and_then(|p| p.clone())
    }
}

/// The key to sign one manifest with: `Ok(None)` when the device registered no key
/// (the unsigned form is then the right one), the connection's key when it has one,
/// else the file read now (so a key restored, or rewritten by re-pairing, is used
/// without waiting for it to be loaded at a connect). `Err` says why it is unusable.
pub fn key_for_send<'a>(
    registered: bool,
    connection_key: Option<&'a SigningKey>,
    path: &Path,
) -> Result<Option<Cow<'a, SigningKey>>, String> {
    if !registered {
        return Ok(None);
    }
    match connection_key {
        Some(k) => Ok(Some(Cow::Borrowed(k))),
        None => super::manifest::load_key(path).map(|k| Some(Cow::Owned(k))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_of_state_are_reported() {
        let s = KeyState::default();
        assert_eq!(s.available(), Change::None, "fine from the start");
        assert_eq!(s.unavailable("cannot read k"), Change::Lost);
        let since = s.problem().unwrap().since;
        // Which connection waited is the link's: state::tests::the_signing_hold_….
        assert_eq!(
            s.unavailable("cannot read k"),
            Change::None,
            "same state, no line"
        );
        assert_eq!(s.unavailable("k is not a key"), Change::Reason);
        let p = s.problem().unwrap();
        assert_eq!(p.error, "k is not a key", "the latest reason is shown");
        assert_eq!(p.since, since, "since the first failure");
        assert_eq!(s.available(), Change::Back);
        assert_eq!(s.available(), Change::None);
        assert_eq!(s.problem(), None);
    }

    #[test]
    fn an_unregistered_key_is_never_read_and_a_broken_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device-key.pem");
        assert!(key_for_send(false, None, &path).unwrap().is_none());
        let err = key_for_send(true, None, &path).unwrap_err();
        assert!(err.contains("device-key.pem"), "{err}");
        std::fs::write(&path, "SECRET-CONTENT").unwrap();
        let err = key_for_send(true, None, &path).unwrap_err();
        assert!(err.contains("not a PKCS#8"), "{err}");
        assert!(
            !err.contains("SECRET"),
            "the file's content is never quoted: {err}"
        );
    }
}
