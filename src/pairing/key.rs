//! The device's Ed25519 signing key: made on the box (never shipped in the image), kept
//! as PKCS#8 PEM in its own 0600 file, and registered with central as an SPKI PEM
//! public key so central can check signed manifests (contract §a.3, §d.8).
//!
//! Re-pairing keeps an existing valid key. Central replaces the stored public key with
//! whatever a registration sends, so sending the same key is always safe; a fresh key
//! per attempt would leave the box signing with a key central never saw whenever an
//! attempt fails after the new key was written (422, timeout with the answer lost).
//! `bbedge unpair` deletes the key, so the next `pair` rotates it.

use super::{private_file, Error};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::SigningKey;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where the key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A valid key file was already there and is reused.
    Existing,
    /// No key file: a new key was made and written.
    Created,
    /// The file did not hold a valid key: it was moved to `aside` and a new key made.
    ReplacedUnreadable {
        /// Where the unreadable file now is (kept for inspection, never deleted).
        aside: PathBuf,
    },
}

/// Reads the key; `Ok(None)` when the file does not exist. Tightens a too-open mode.
pub fn load(path: &Path) -> Result<Option<SigningKey>, Error> {
    let pem = match std::fs::read_to_string(path) {
        Ok(t) => zeroize::Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    let key = SigningKey::from_pkcs8_pem(&pem).map_err(|_| Error::Corrupt {
        path: path.to_owned(),
        message: "not a PKCS#8 PEM Ed25519 private key".into(),
    })?;
    tighten_mode(path);
    Ok(Some(key))
}

/// Loads the key, or makes and persists a new one (before anything is sent to central).
pub fn load_or_create(path: &Path) -> Result<(SigningKey, Origin), Error> {
    let aside = match load(path) {
        Ok(Some(key)) => return Ok((key, Origin::Existing)),
        Ok(None) => None,
        Err(Error::Corrupt { .. }) => {
            let aside = aside_name(path);
            std::fs::rename(path, &aside).map_err(|source| Error::Write {
                path: path.to_owned(),
                source,
            })?;
            tracing::warn!(operation = "pairing.key", path = %path.display(), aside = %aside.display(), "key file unreadable; moved aside and making a new key");
            Some(aside)
        }
        Err(e) => return Err(e),
    };
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    save(path, &key)?;
    Ok((
        key,
        match aside {
            Some(aside) => Origin::ReplacedUnreadable { aside },
            None => Origin::Created,
        },
    ))
}

/// Writes the key atomically, 0600.
pub fn save(path: &Path, key: &SigningKey) -> Result<(), Error> {
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| Error::Corrupt {
            path: path.to_owned(),
            message: format!("cannot encode the key: {e}"),
        })?;
    private_file::write(path, pem.as_bytes()).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

/// The public key as central wants it: SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
pub fn public_key_pem(key: &SigningKey) -> String {
    // Encoding 32 bytes into a fixed SPKI structure cannot fail.
    key.verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap_or_default()
}

fn aside_name(path: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".unreadable-{secs}"));
    PathBuf::from(name)
}

fn tighten_mode(path: &Path) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if meta.permissions().mode() & 0o077 != 0 {
        let fixed = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        tracing::warn!(operation = "pairing.key", path = %path.display(), fixed = fixed.is_ok(), "key file was readable by others; set to 0600");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::DecodePublicKey;
    use ed25519_dalek::{Signer, Verifier, VerifyingKey};

    #[test]
    fn a_key_is_made_once_then_reused_and_its_public_pem_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("device-key.pem");
        let (k1, o1) = load_or_create(&p).unwrap();
        assert_eq!(o1, Origin::Created);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (k2, o2) = load_or_create(&p).unwrap();
        assert_eq!(o2, Origin::Existing);
        assert_eq!(k1.to_bytes(), k2.to_bytes());
        let pem = public_key_pem(&k2);
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
        let vk = VerifyingKey::from_public_key_pem(&pem).unwrap();
        let sig = k1.sign(b"manifest");
        assert!(vk.verify(b"manifest", &sig).is_ok());
    }

    #[test]
    fn an_unreadable_key_is_moved_aside_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("device-key.pem");
        std::fs::write(&p, "garbage").unwrap();
        let (_, origin) = load_or_create(&p).unwrap();
        let Origin::ReplacedUnreadable { aside } = origin else {
            panic!("{origin:?}")
        };
        assert_eq!(std::fs::read_to_string(aside).unwrap(), "garbage");
        assert!(load(&p).unwrap().is_some());
    }

    #[test]
    fn a_world_readable_key_is_tightened_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("device-key.pem");
        load_or_create(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        load(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
