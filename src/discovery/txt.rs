//! The advertisement's content, I/O-free: service type, instance name, host name and
//! TXT records, and reading them back from what a browser resolved.

use std::collections::BTreeMap;

/// The DNS-SD service type of a CivicPress box's local room (RFC 6763; the service
/// name `civicpress-box` is 14 characters, under the 15 RFC 6335 allows).
pub const SERVICE_TYPE: &str = "_civicpress-box._tcp.local.";

/// Version of the TXT record layout (`txtvers`, RFC 6763 §6.7).
pub const TXT_VERSION: &str = "1";

/// Longest DNS label in bytes (RFC 1035): the instance name is cut to it.
pub const MAX_LABEL: usize = 63;

/// What one box advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// Instance name: `[device] name`.
    pub name: String,
    /// The device UUID of the local room.
    pub uuid: String,
    /// The room's URL path, `<[realtime] path>/devices/<uuid>`.
    pub path: String,
    /// The room is served over TLS (`wss://`).
    pub tls: bool,
    /// The bbedge version.
    pub version: String,
    /// The device state (`online`, `unpaired`, …).
    pub state: String,
}

impl Advert {
    /// The TXT records: `txtvers`, `uuid`, `path`, `tls` (`1`/`0`), `version`, `state`.
    pub fn txt(&self) -> Vec<(&'static str, String)> {
        vec![
            ("txtvers", TXT_VERSION.to_owned()),
            ("uuid", self.uuid.clone()),
            ("path", self.path.clone()),
            ("tls", if self.tls { "1" } else { "0" }.to_owned()),
            ("version", self.version.clone()),
            ("state", self.state.clone()),
        ]
    }

    /// The instance name: `[device] name` cut to one DNS label (63 bytes, at a
    /// character boundary); `bbedge <uuid>` when the name is blank. mdns-sd renames
    /// it (`name (2)`) if another box on the LAN already uses it.
    pub fn instance(&self) -> String {
        let name = self.name.trim();
        if name.is_empty() {
            return format!("bbedge {}", self.uuid);
        }
        let mut end = name.len().min(MAX_LABEL);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name[..end].to_owned()
    }

    /// The host name of the address records: `bbedge-<uuid>.local.`, not the system's
    /// own host name, which avahi-daemon already publishes (two responders claiming
    /// the same host name with different address sets would make one rename itself).
    pub fn host(&self) -> String {
        let id: String = self
            .uuid
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(MAX_LABEL - "bbedge-".len())
            .collect();
        format!("bbedge-{id}.local.")
    }
}

/// The room path advertised for `uuid` under `[realtime] path`.
pub fn room_path(prefix: &str, uuid: &str) -> String {
    format!("{}/devices/{uuid}", prefix.trim_end_matches('/'))
}

/// One box as a browser sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Seen {
    /// The instance name (unescaped).
    pub name: String,
    /// `uuid` from TXT (empty when missing).
    pub uuid: String,
    /// `state` from TXT.
    pub state: String,
    /// `path` from TXT.
    pub path: String,
    /// `tls` from TXT.
    pub tls: bool,
    /// `version` from TXT.
    pub version: String,
    /// Every TXT record as received (other keys included), for `--json`.
    pub txt: BTreeMap<String, String>,
}

/// Reads a resolved instance back: `fullname` is `<instance>.<SERVICE_TYPE>`. Values
/// that are missing or not UTF-8 read as empty; nothing a peer sends can fail this.
pub fn read(fullname: &str, txt: BTreeMap<String, String>) -> Seen {
    let name = fullname
        .strip_suffix(SERVICE_TYPE)
        .and_then(|n| n.strip_suffix('.'))
        .unwrap_or(fullname);
    let get = |k: &str| txt.get(k).cloned().unwrap_or_default();
    Seen {
        name: unescape(name),
        uuid: get("uuid"),
        state: get("state"),
        path: get("path"),
        tls: txt.get("tls").is_some_and(|v| v == "1"),
        version: get("version"),
        txt,
    }
}

/// Undoes DNS label escaping (`\.` and `\\`, RFC 6763 §4.3) in an instance name.
fn unescape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advert(name: &str) -> Advert {
        Advert {
            name: name.to_owned(),
            uuid: "7c9e6679-7425-40de-944b-e07fc1f90ae7".to_owned(),
            path: room_path("/realtime/", "7c9e6679-7425-40de-944b-e07fc1f90ae7"),
            tls: true,
            version: "0.1.0".to_owned(),
            state: "online".to_owned(),
        }
    }

    #[test]
    fn txt_records_carry_uuid_path_tls_version_and_state() {
        let a = advert("Council chamber");
        let txt: BTreeMap<String, String> = a
            .txt()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(
            txt.get("path").map(String::as_str),
            Some("/realtime/devices/7c9e6679-7425-40de-944b-e07fc1f90ae7")
        );
        assert_eq!(txt.get("tls").map(String::as_str), Some("1"));
        assert_eq!(txt.get("txtvers").map(String::as_str), Some("1"));
        let seen = read(&format!("Council chamber.{SERVICE_TYPE}"), txt.clone());
        assert_eq!(seen.name, "Council chamber");
        assert_eq!(seen.uuid, a.uuid);
        assert_eq!(seen.state, "online");
        assert!(seen.tls);
        assert_eq!(seen.txt, txt);
    }

    #[test]
    fn the_instance_name_is_one_dns_label_at_a_character_boundary() {
        let long = "é".repeat(40); // 80 bytes
        let inst = advert(&long).instance();
        assert!(inst.len() <= MAX_LABEL, "{} bytes", inst.len());
        assert_eq!(inst, "é".repeat(31));
        assert_eq!(
            advert("  ").instance(),
            "bbedge 7c9e6679-7425-40de-944b-e07fc1f90ae7"
        );
    }

    #[test]
    fn the_host_name_is_the_boxs_own_not_the_systems() {
        assert_eq!(
            advert("x").host(),
            "bbedge-7c9e6679-7425-40de-944b-e07fc1f90ae7.local."
        );
    }

    #[test]
    fn a_peer_missing_records_or_escaping_dots_reads_without_failing() {
        let seen = read(r"Room 1\.2.other", BTreeMap::new());
        assert_eq!(seen.name, "Room 1.2.other");
        assert_eq!(seen.uuid, "");
        assert!(!seen.tls);
        let seen = read(&format!(r"A\.B.{SERVICE_TYPE}"), BTreeMap::new());
        assert_eq!(seen.name, "A.B");
    }
}
