//! Where state lives: `[daemon] state_dir`, else systemd's `$STATE_DIRECTORY`, else
//! `./bbedge-state`; the store, credentials and key default to paths inside it.

use crate::config::Config;
use std::path::PathBuf;

/// Resolved file-system locations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The state directory.
    pub state_dir: PathBuf,
    /// The sled database directory.
    pub store: PathBuf,
    /// The credentials file (0600).
    pub credentials: PathBuf,
    /// The Ed25519 signing key (0600).
    pub key: PathBuf,
}

impl Paths {
    /// Resolves paths from the config and the environment.
    pub fn resolve(config: &Config) -> Self {
        let state_dir = if !config.daemon.state_dir.is_empty() {
            PathBuf::from(&config.daemon.state_dir)
        } else if let Some(dir) = std::env::var_os("STATE_DIRECTORY")
            .and_then(|v| {
                v.to_str()
                    .and_then(|s| s.split(':').next())
                    .map(PathBuf::from)
            })
            .filter(|p| !p.as_os_str().is_empty())
        {
            dir
        } else {
            PathBuf::from("bbedge-state")
        };
        let or_in = |value: &str, name: &str| {
            if value.is_empty() {
                state_dir.join(name)
            } else {
                PathBuf::from(value)
            }
        };
        Self {
            store: or_in(&config.store.path, "db"),
            credentials: or_in(&config.pairing.credentials_file, "credentials.toml"),
            key: or_in(&config.pairing.key_file, "device-key.pem"),
            state_dir,
        }
    }
}
