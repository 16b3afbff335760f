//! The boot file itself: its keys, reading it without ever quoting its values, removing
//! the code by an atomic rewrite, and the state-dir record of spent codes (SHA-256
//! fingerprints, never the codes).

use super::private_file;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The boot file's keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BootFile {
    /// CivicPress base URL.
    pub server: String,
    /// Device UUID from the operator.
    pub device_uuid: String,
    /// The enrollment code; removed once used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Secret>,
    /// Name sent to central (default `[device] name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Realtime URL when it differs from the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime_url: Option<String>,
    /// Room location sent to central (default `[device] room_location`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_location: Option<String>,
}

/// What reading the boot file found.
#[derive(Debug)]
pub enum Found {
    /// No file.
    Absent,
    /// A file that cannot be used; the reason names keys and lines, never values.
    Invalid(String),
    /// A usable file.
    Ready(BootFile),
}

/// Reads the boot file.
pub fn read(path: &Path) -> Found {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Found::Absent,
        Err(e) => return Found::Invalid(format!("cannot read it: {e}")),
    };
    match toml::from_str::<BootFile>(&text) {
        Ok(f) => Found::Ready(f),
        Err(e) => {
            let line = e
                .span()
                .and_then(|s| text.get(..s.start))
                .map(|before| before.matches('\n').count() + 1);
            // toml quotes values in some messages; keep only the ones about keys.
            let msg = e.message();
            let what = if msg.starts_with("unknown field") || msg.starts_with("missing field") {
                msg.lines().next().unwrap_or("invalid").to_owned()
            } else {
                "not valid TOML with string values".to_owned()
            };
            Found::Invalid(match line {
                Some(l) => format!("line {l}: {what}"),
                None => what,
            })
        }
    }
}

/// Rewrites the file without `code`, with a comment saying why.
pub fn strip_code(path: &Path, file: &BootFile, note: &str) -> std::io::Result<()> {
    let mut kept = file.clone();
    kept.code = None;
    let body = toml::to_string(&kept)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    let text = format!(
        "# bbedge removed the enrollment code on {}: {note}\n{body}",
        crate::protocol::now_rfc3339()
    );
    private_file::write(path, text.as_bytes())
}

/// The state-dir file listing fingerprints of spent boot-file codes.
pub const USED_FILE: &str = "boot-pair.used";
/// Fingerprints kept; older ones are forgotten (their codes expired long ago).
pub const USED_KEEP: usize = 32;

/// The fingerprint kept for a spent code.
pub fn fingerprint(uuid: &str, code: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"bbedge boot-file code\0");
    h.update(uuid.as_bytes());
    h.update(b"\0");
    h.update(code.as_bytes());
    hex::encode(h.finalize())
}

/// Whether this fingerprint was spent before.
pub fn was_used(state_dir: &Path, fp: &str) -> bool {
    std::fs::read_to_string(state_dir.join(USED_FILE))
        .is_ok_and(|t| t.lines().any(|l| l.trim() == fp))
}

/// Records a spent fingerprint, keeping the newest [`USED_KEEP`].
pub fn mark_used(state_dir: &Path, fp: &str) -> std::io::Result<()> {
    let path = state_dir.join(USED_FILE);
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let mut lines: Vec<&str> = old.lines().filter(|l| !l.trim().is_empty()).collect();
    lines.push(fp);
    let start = lines.len().saturating_sub(USED_KEEP);
    let mut out = lines[start..].join("\n");
    out.push('\n');
    private_file::write(&path, out.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "server = \"https://cp.example.org\"\ndevice_uuid = \"8c0f4e2a-6b1d-4f3a-9e57-2d4c8b1a0f63\"\ncode = \"ABCD-EFGH-JK23\"\nname = \"Council chamber\"\n";

    #[test]
    fn parse_errors_name_keys_and_lines_never_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bbedge-pair.toml");
        std::fs::write(&p, format!("{GOOD}devce_name = \"x\"\n")).unwrap();
        let Found::Invalid(why) = read(&p) else {
            panic!()
        };
        assert!(
            why.contains("line 5") && why.contains("unknown field `devce_name`"),
            "{why}"
        );
        std::fs::write(
            &p,
            "server = \"https://cp\"\ndevice_uuid = \"u\"\ncode = ABCD-EFGH-JK23\n",
        )
        .unwrap();
        let Found::Invalid(why) = read(&p) else {
            panic!()
        };
        assert!(why.starts_with("line 3") && !why.contains("ABCD"), "{why}");
        assert!(matches!(read(&dir.path().join("none.toml")), Found::Absent));
    }

    #[test]
    fn stripping_the_code_keeps_the_rest_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bbedge-pair.toml");
        std::fs::write(&p, GOOD).unwrap();
        let Found::Ready(f) = read(&p) else { panic!() };
        strip_code(&p, &f, "paired as device 42").unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            !text.contains("ABCD") && text.contains("paired as device 42"),
            "{text}"
        );
        let Found::Ready(again) = read(&p) else {
            panic!("{text}")
        };
        assert!(again.code.is_none());
        assert_eq!(again.name.as_deref(), Some("Council chamber"));
    }

    #[test]
    fn the_spent_record_keeps_fingerprints_not_codes_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let fp = fingerprint("u", "ABCD-EFGH-JK23");
        assert!(!was_used(dir.path(), &fp));
        mark_used(dir.path(), &fp).unwrap();
        assert!(was_used(dir.path(), &fp));
        for i in 0..USED_KEEP {
            mark_used(dir.path(), &fingerprint("u", &i.to_string())).unwrap();
        }
        assert!(!was_used(dir.path(), &fp), "oldest forgotten");
        let text = std::fs::read_to_string(dir.path().join(USED_FILE)).unwrap();
        assert_eq!(text.lines().count(), USED_KEEP);
        assert!(!text.contains("ABCD"));
    }
}
