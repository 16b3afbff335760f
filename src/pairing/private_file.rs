//! Atomic writes of private files: a temp file created 0600 in the same directory,
//! fsynced, renamed over the target, then the directory fsynced, so a power cut leaves
//! either the old file or the new one, never a torn or world-readable one.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `bytes` to `path` atomically with mode 0600.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        adopt_dir_owner(&tmp, dir)?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// When root writes into a directory another user owns (`sudo bbedge pair` into the
/// daemon's state directory), the file goes to that user, so the daemon can read it.
/// Nobody else gains access: the mode stays 0600.
fn adopt_dir_owner(file: &Path, dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let (f, d) = (fs::metadata(file)?, fs::metadata(dir)?);
    if f.uid() == 0 && d.uid() != 0 {
        std::os::unix::fs::chown(file, Some(d.uid()), Some(d.gid()))?;
    }
    Ok(())
}

/// Removes `path` if it exists; returns whether it existed.
pub fn remove(path: &Path) -> std::io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn written_files_are_0600_and_replace_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/credentials.toml");
        super::write(&p, b"one").unwrap();
        super::write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
        assert!(super::remove(&p).unwrap());
        assert!(!super::remove(&p).unwrap());
    }

    #[test]
    fn root_writing_into_another_users_directory_hands_the_file_to_that_user() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        if std::fs::metadata(dir.path()).unwrap().uid() != 0 {
            return; // `sudo bbedge pair` only: as another user there is nothing to hand over.
        }
        std::os::unix::fs::chown(dir.path(), Some(4321), Some(4321)).unwrap();
        let p = dir.path().join("credentials.toml");
        super::write(&p, b"secret").unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid()), (4321, 4321));
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
    }
}
