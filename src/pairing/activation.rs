//! The 15-minute activation trap (contract §a.5): central activates a device only on a
//! connection within 15 minutes of its enrollment code being issued. A box first
//! connected later is accepted but stays `enrolled`: central refuses its sessions.
//!
//! Central never tells the device. What the box knows: the registration answer's
//! `device.status` ([`Credentials::device_status`]), when it paired (the code was issued
//! before that), and when the link was first acknowledged with these credentials, kept
//! here in `activation.toml` (0600, beside the credentials; not in them, so writing it
//! never looks like a re-pair to the link). A first connection more than 15 minutes
//! after pairing is certainly too late: the `not_activated` fact makes the state
//! `needs_pairing` instead of `online`, and `/status` asks for a re-issued code.

use super::credentials::{Activation, Credentials};
use super::{private_file, CredentialStore};
use crate::signal::{Link, StatusHub};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// The record's file name in the state directory.
pub const FILE: &str = "activation.toml";

/// When the link was first acknowledged with one set of credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The credentials' device UUID.
    pub device_uuid: String,
    /// The credentials' `paired_at` (a new pairing makes the record stale).
    pub paired_at: String,
    /// RFC 3339.
    pub first_online_at: String,
}

/// The record for `creds`, if there is one (stale or unreadable ones are ignored).
pub fn load(state_dir: &Path, creds: &Credentials) -> Option<Record> {
    let text = std::fs::read_to_string(state_dir.join(FILE)).ok()?;
    let r: Record = toml::from_str(&text).ok()?;
    (r.device_uuid == creds.device_uuid && r.paired_at == creds.paired_at).then_some(r)
}

fn save(state_dir: &Path, r: &Record) -> std::io::Result<()> {
    let text = toml::to_string(r).map_err(std::io::Error::other)?;
    private_file::write(&state_dir.join(FILE), text.as_bytes())
}

/// The current assessment, shared with `/status`.
pub type Shared = Arc<Mutex<Activation>>;

/// Follows the credentials and the link; keeps the `not_activated` fact and [`Shared`].
#[derive(Debug)]
pub struct ActivationMonitor {
    /// The credentials.
    pub creds: CredentialStore,
    /// Reads `link`, writes `not_activated`.
    pub hub: StatusHub,
    /// Where [`FILE`] lives.
    pub state_dir: PathBuf,
    /// For `/status`.
    pub shared: Shared,
}

impl ActivationMonitor {
    /// One evaluation: records the first acknowledged connection and updates the fact.
    pub fn check(&self) -> Activation {
        let Some(creds) = self.creds.current() else {
            self.publish(Activation::Unknown);
            return Activation::Unknown;
        };
        let mut record = load(&self.state_dir, &creds);
        let mut activation = creds.activation(record.as_ref().map(|r| r.first_online_at.as_str()));
        if activation == Activation::Pending && self.hub.facts().link == Link::Online {
            let r = Record {
                device_uuid: creds.device_uuid.clone(),
                paired_at: creds.paired_at.clone(),
                first_online_at: crate::protocol::now_rfc3339(),
            };
            if let Err(e) = save(&self.state_dir, &r) {
                tracing::warn!(operation = "pairing.activation", error = %e, "cannot record the first connection; judged again after a restart");
            }
            record = Some(r);
            activation = creds.activation(record.as_ref().map(|r| r.first_online_at.as_str()));
            match activation {
                Activation::Expired => tracing::error!(
                    operation = "pairing.activation",
                    paired_at = %creds.paired_at,
                    "first connection came more than 15 minutes after pairing: central cannot activate this device and refuses its sessions; ask the operator to re-issue a code and pair again"
                ),
                _ => tracing::info!(
                    operation = "pairing.activation",
                    "first connection within the enrollment code's window"
                ),
            }
        }
        self.publish(activation);
        activation
    }

    fn publish(&self, a: Activation) {
        *self
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = a;
        self.hub
            .update(|f| f.not_activated = a == Activation::Expired);
    }

    /// Runs until cancelled.
    pub async fn run(self, token: CancellationToken) {
        let mut creds = self.creds.subscribe();
        let mut facts = self.hub.subscribe();
        loop {
            self.check();
            tokio::select! {
                () = token.cancelled() => return,
                r = creds.changed() => if r.is_err() { return },
                r = facts.changed() => if r.is_err() { return },
            }
        }
    }
}

/// What a person must do, for `/status` (`None`: nothing).
pub fn action(a: Activation, creds: Option<&Credentials>) -> Option<String> {
    match a {
        Activation::Expired => Some(
            "CivicPress did not activate this box: it first connected more than 15 minutes after its enrollment code was issued, so central keeps it 'enrolled' and refuses its sessions. Ask the operator to re-issue a code for this device (POST /api/v1/broadcast-box/devices/<id>/enroll) and run `bbedge pair` with it while the daemon runs.".into(),
        ),
        Activation::NotAccepted => Some(format!(
            "CivicPress has this device as '{}' and refuses its connections: an operator must set it active (PATCH /api/v1/broadcast-box/devices/<id> with status active), or enroll a new device and pair with that code.",
            creds.and_then(|c| c.device_status.as_deref()).unwrap_or("inactive")
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn creds(status: Option<&str>) -> Credentials {
        Credentials {
            server: "https://cp".into(),
            realtime_url: "wss://cp/realtime".into(),
            device_id: "d".into(),
            device_uuid: "u".into(),
            token: Secret::new("t"),
            expires_at: "2026-06-27T19:00:00.000Z".into(),
            paired_at: "2026-06-20T19:00:00.000Z".into(),
            name: "n".into(),
            key_registered: true,
            device_status: status.map(str::to_owned),
        }
    }

    #[test]
    fn activation_follows_the_registration_status_and_the_first_connection() {
        let rows: [(Option<&str>, Option<&str>, Activation); 8] = [
            (None, None, Activation::Unknown),
            (None, Some("2026-06-20T20:00:00Z"), Activation::Unknown),
            (Some("enrolled"), None, Activation::Pending),
            (
                Some("enrolled"),
                Some("2026-06-20T19:14:00Z"),
                Activation::Active,
            ),
            (
                Some("enrolled"),
                Some("2026-06-20T19:16:00Z"),
                Activation::Expired,
            ),
            (
                Some("active"),
                Some("2026-06-21T19:00:00Z"),
                Activation::Active,
            ),
            (Some("revoked"), None, Activation::NotAccepted),
            (
                Some("suspended"),
                Some("2026-06-20T19:01:00Z"),
                Activation::NotAccepted,
            ),
        ];
        for (status, first, want) in rows {
            assert_eq!(
                creds(status).activation(first),
                want,
                "{status:?} {first:?}"
            );
        }
    }

    #[test]
    fn the_first_connection_is_recorded_once_and_a_new_pairing_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        let mut c = creds(Some("enrolled"));
        super::super::credentials::save(&path, &c).unwrap();
        let (store, _) = CredentialStore::open(path.clone());
        let hub = StatusHub::new();
        let m = ActivationMonitor {
            creds: store.clone(),
            hub: hub.clone(),
            state_dir: dir.path().to_owned(),
            shared: Shared::default(),
        };
        // Not connected yet: pending, no record.
        assert_eq!(m.check(), Activation::Pending);
        assert!(load(dir.path(), &c).is_none());
        // First acknowledged connection now, a week after paired_at: too late.
        hub.update(|f| f.link = Link::Online);
        assert_eq!(m.check(), Activation::Expired);
        assert!(hub.facts().not_activated);
        let first = load(dir.path(), &c).unwrap().first_online_at;
        assert_eq!(m.check(), Activation::Expired);
        assert_eq!(load(dir.path(), &c).unwrap().first_online_at, first);
        // A fresh pairing (new paired_at) makes the record stale.
        c.paired_at = crate::protocol::now_rfc3339();
        super::super::credentials::save(&path, &c).unwrap();
        store.reload().unwrap();
        assert_eq!(m.check(), Activation::Active);
        assert!(!hub.facts().not_activated);
    }
}
