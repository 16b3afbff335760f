//! The credentials registration returned (contract §a.3): device id, UUID, token and its
//! expiry, and the URLs to use. Stored as TOML in a 0600 file; the daemon watches them
//! through [`CredentialStore`] so a new `bbedge pair` takes effect without a restart.

use super::{private_file, Error};
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::watch;

/// What pairing stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The CivicPress API base URL (`https://cp.example.org`).
    pub server: String,
    /// The realtime base URL (`wss://cp.example.org/realtime`).
    pub realtime_url: String,
    /// The device database id (`device.id`), used as `capture.device` and `status.device_id`.
    pub device_id: String,
    /// The device UUID: the room key and the WS path segment.
    pub device_uuid: String,
    /// The device token (7 days, not refreshable).
    pub token: Secret,
    /// The token's expiry, RFC 3339 (`credentials.expiresAt`).
    pub expires_at: String,
    /// When the box paired, RFC 3339.
    pub paired_at: String,
    /// The name sent at registration.
    pub name: String,
    /// Whether an Ed25519 public key was registered (then manifests must be signed).
    pub key_registered: bool,
    /// The device's status in central's registration answer (`enrolled`, `active`,
    /// `suspended`, `revoked`, …); absent in credentials from before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_status: Option<String>,
}

/// How long an enrollment code lives (§a.1): central activates a device only on a
/// connection within this long of the code being issued (§a.5).
pub const CODE_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Whether central can have activated the device (§a.5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Unknown (unpaired, or credentials from before bbedge kept the registration's
    /// status).
    #[default]
    Unknown,
    /// Central said `active` at registration, or the first connection came within
    /// [`CODE_WINDOW`] of pairing (the code was issued before pairing, so this is likely
    /// but not certain).
    Active,
    /// Registered `enrolled`, not yet connected: connect within the code's window.
    Pending,
    /// The first connection came more than [`CODE_WINDOW`] after pairing, so after the
    /// code expired: central keeps the device `enrolled` and refuses its sessions.
    Expired,
    /// Central answered `suspended`, `revoked` or `decommissioned`: it refuses the box.
    NotAccepted,
}

impl Credentials {
    /// The device room URL: `<realtime_url>/devices/<uuid>`.
    pub fn room_url(&self) -> String {
        format!(
            "{}/devices/{}",
            self.realtime_url.trim_end_matches('/'),
            self.device_uuid
        )
    }

    /// The token's expiry, if it parses.
    pub fn expires(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(&self.expires_at, &Rfc3339).ok()
    }

    /// Central's registration status if it refuses the device (`suspended`, `revoked`,
    /// `decommissioned`).
    pub fn not_accepted(&self) -> Option<&str> {
        self.device_status
            .as_deref()
            .filter(|s| matches!(*s, "suspended" | "revoked" | "decommissioned"))
    }

    /// Whether central can have activated the device (§a.5), given when the link was
    /// first acknowledged with these credentials (RFC 3339; [`super::activation`]).
    pub fn activation(&self, first_online_at: Option<&str>) -> Activation {
        if self.not_accepted().is_some() {
            return Activation::NotAccepted;
        }
        match self.device_status.as_deref() {
            Some("active") => Activation::Active,
            Some("enrolled") => {
                let parse = |s: &str| OffsetDateTime::parse(s, &Rfc3339).ok();
                let Some(first) = first_online_at else {
                    return Activation::Pending;
                };
                match (parse(&self.paired_at), parse(first)) {
                    (Some(paired), Some(first)) if first - paired > CODE_WINDOW => {
                        Activation::Expired
                    }
                    (Some(_), Some(_)) => Activation::Active,
                    _ => Activation::Unknown,
                }
            }
            _ => Activation::Unknown,
        }
    }

    /// Seconds until expiry at `now` (negative once expired); `None` if unparsable.
    pub fn seconds_left(&self, now: OffsetDateTime) -> Option<i64> {
        self.expires().map(|e| (e - now).whole_seconds())
    }
}

/// Reads credentials; `Ok(None)` when the file does not exist.
pub fn load(path: &Path) -> Result<Option<Credentials>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    toml::from_str(&text).map(Some).map_err(|e| Error::Corrupt {
        path: path.to_owned(),
        // toml's message quotes the offending line; keep only its first line, which
        // names the key, so a token can never reach a log.
        message: e.message().lines().next().unwrap_or("invalid").to_owned(),
    })
}

/// Writes credentials atomically with mode 0600.
pub fn save(path: &Path, creds: &Credentials) -> Result<(), Error> {
    let text = toml::to_string(creds).map_err(|e| Error::Corrupt {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mut out =
        String::from("# bbedge credentials: written by `bbedge pair`. Secret: keep 0600.\n");
    out.push_str(&text);
    private_file::write(path, out.as_bytes()).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

/// The daemon's view of the credentials file, re-read on [`CredentialStore::reload`].
#[derive(Debug, Clone)]
pub struct CredentialStore {
    path: PathBuf,
    tx: watch::Sender<Option<Credentials>>,
}

impl CredentialStore {
    /// Loads the file once. A corrupt file is reported and treated as unpaired.
    pub fn open(path: PathBuf) -> (Self, Option<Error>) {
        let (current, err) = match load(&path) {
            Ok(c) => (c, None),
            Err(e) => (None, Some(e)),
        };
        let (tx, _) = watch::channel(current);
        (Self { path, tx }, err)
    }

    /// Re-reads the file and wakes subscribers if it changed.
    pub fn reload(&self) -> Result<Option<Credentials>, Error> {
        let now = load(&self.path)?;
        self.tx.send_if_modified(|cur| {
            if *cur == now {
                false
            } else {
                *cur = now.clone();
                true
            }
        });
        Ok(now)
    }

    /// The current credentials.
    pub fn current(&self) -> Option<Credentials> {
        self.tx.borrow().clone()
    }

    /// A receiver that wakes when the credentials change.
    pub fn subscribe(&self) -> watch::Receiver<Option<Credentials>> {
        self.tx.subscribe()
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Credentials {
        Credentials {
            server: "https://cp.example.org".into(),
            realtime_url: "wss://cp.example.org/realtime".into(),
            device_id: "5b2e9d71-03c4-4a8f-b6e2-7f1a9c3d4e58".into(),
            device_uuid: "8c0f4e2a-6b1d-4f3a-9e57-2d4c8b1a0f63".into(),
            token: Secret::new("eyJ.secret-token"),
            expires_at: "2026-06-27T19:00:00.000Z".into(),
            paired_at: "2026-06-20T19:00:00.000Z".into(),
            name: "Council chamber".into(),
            key_registered: true,
            device_status: Some("enrolled".into()),
        }
    }

    #[test]
    fn round_trip_and_room_url() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("credentials.toml");
        assert_eq!(load(&p).unwrap(), None);
        save(&p, &sample()).unwrap();
        let back = load(&p).unwrap().unwrap();
        assert_eq!(back, sample());
        assert_eq!(
            back.room_url(),
            "wss://cp.example.org/realtime/devices/8c0f4e2a-6b1d-4f3a-9e57-2d4c8b1a0f63"
        );
        let now = time::macros::datetime!(2026-06-26 19:00:00 UTC);
        assert_eq!(back.seconds_left(now), Some(86_400));
    }

    #[test]
    fn a_corrupt_file_is_reported_without_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("credentials.toml");
        std::fs::write(&p, "token = \"sekrit-value\"\nbogus = [\n").unwrap();
        let err = load(&p).unwrap_err();
        assert!(!err.to_string().contains("sekrit-value"), "{err}");
        let (store, err) = CredentialStore::open(p);
        assert!(err.is_some());
        assert_eq!(store.current(), None);
    }

    #[test]
    fn reload_wakes_subscribers_only_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("credentials.toml");
        let (store, _) = CredentialStore::open(p.clone());
        let mut rx = store.subscribe();
        store.reload().unwrap();
        assert!(!rx.has_changed().unwrap());
        save(&p, &sample()).unwrap();
        store.reload().unwrap();
        assert!(rx.has_changed().unwrap());
        assert_eq!(
            rx.borrow_and_update().as_ref().map(|c| c.name.clone()),
            Some("Council chamber".into())
        );
    }
}
