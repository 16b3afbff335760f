//! Private files and directories, whoever starts the process and whatever its umask.
//!
//! - [`write`] / [`write_mode`]: the one atomic writer: a temp file created with the
//!   final mode in the same directory, fsynced, renamed over the target, then the
//!   directory fsynced, so a power cut leaves either the old file or the new one, never
//!   a torn or world-readable one. Credentials, the signing key, the room TLS key and
//!   the token file all go through it.
//! - [`private_dir`]: creates a directory 0700 (and tightens an existing one).
//! - [`tighten_tree`]: makes a directory tree 0700/0600 (sled creates its files with
//!   the process umask; the state of an older bbedge may be 0755/0644).
//! - [`private_umask`]: umask 077 for the daemon and the commands that write state.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `bytes` to `path` atomically with mode 0600.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_mode(path, bytes, 0o600)
}

/// Writes `bytes` to `path` atomically with `mode` (the umask cannot widen or narrow it).
pub fn write_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        private_dir(dir)?;
    }
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
            .mode(mode)
            .open(&tmp)?;
        // The umask may have taken bits `mode` asks for; a stale temp file may have more.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
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

/// Creates `dir` (and missing parents) 0700; an existing `dir` is set to 0700 too.
/// Parents that already exist are left alone (they may be shared, like /var/lib).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    set_mode(dir, 0o700)
}

/// Sets `path`'s mode unless it already has it (a read-only file system or a file of
/// another user is only an error when a change is needed).
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() || meta.permissions().mode() & 0o7777 == mode {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Makes `dir` and everything under it private: directories 0700, files 0600. Symlinks
/// are not followed. Returns how many entries changed mode.
pub fn tighten_tree(dir: &Path) -> std::io::Result<usize> {
    let mut changed = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        if fs::symlink_metadata(&d)?.permissions().mode() & 0o7777 != 0o700 {
            changed += 1;
        }
        set_mode(&d, 0o700)?;
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                let p = entry.path();
                if entry.metadata()?.permissions().mode() & 0o7777 != 0o600 {
                    changed += 1;
                }
                set_mode(&p, 0o600)?;
            }
        }
    }
    Ok(changed)
}

/// Sets the process umask to 077, so files and directories made by libraries (sled's
/// segment files, its `conf`, snapshots) are private whoever starts the process.
pub fn private_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
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
    fn modes_are_exact_and_trees_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        super::private_dir(&state.join("db")).unwrap();
        let cert = state.join("cert.pem");
        super::write_mode(&cert, b"public", 0o644).unwrap();
        super::write(&state.join("key"), b"secret").unwrap();
        std::fs::create_dir(state.join("db/blobs")).unwrap();
        // What sled leaves under umask 0 (the real umask is tested with the binary).
        std::fs::write(state.join("db/conf"), b"x").unwrap();
        let open = std::fs::Permissions::from_mode(0o666);
        std::fs::set_permissions(state.join("db/conf"), open).unwrap();
        let open = std::fs::Permissions::from_mode(0o777);
        std::fs::set_permissions(state.join("db/blobs"), open).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join("db")), 0o700);
        assert_eq!(mode(&cert), 0o644);
        assert_eq!(mode(&state.join("key")), 0o600);
        assert_eq!(mode(&state.join("db/conf")), 0o666);
        assert_eq!(super::tighten_tree(&state).unwrap(), 3, "cert, conf, blobs");
        assert_eq!(mode(&state.join("db/conf")), 0o600);
        assert_eq!(mode(&state.join("db/blobs")), 0o700);
        assert_eq!(mode(&cert), 0o600);
        assert_eq!(super::tighten_tree(&state).unwrap(), 0);
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
