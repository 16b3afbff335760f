//! Optional TLS on the local listener (`[realtime.tls]`): the configured PEM files, or a
//! self-signed certificate made with rcgen on first start and kept in the state dir
//! (key file 0600, written atomically).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read {what} {path}: {detail}; check realtime.tls.{key}")]
    Pem {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        detail: String,
        /// `cert_path` or `key_path`.
        key: &'static str,
    },
    /// The self-signed certificate could not be made or saved.
    #[error("cannot make the self-signed certificate in {path}: {detail}")]
    SelfSigned {
        /// Where.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// rustls refused the pair.
    #[error("the certificate and key do not make a TLS config: {0}")]
    Config(String),
}

impl TlsError {
    /// The exit code: 78 (`EX_CONFIG`) for files a person must fix, which the unit does
    /// not restart on; 71 (`EX_OSERR`) when the self-signed pair cannot be saved (a full
    /// or read-only state directory may recover).
    pub fn exit_code(&self) -> i32 {
        match self {
            TlsError::Pem { .. } | TlsError::Config(_) => crate::error::exit::CONFIG,
            TlsError::SelfSigned { .. } => crate::error::exit::OS,
        }
    }
}

/// The acceptor for `[realtime.tls]`, or `None` when TLS is off.
pub fn acceptor(
    tls: &crate::config::Tls,
    state_dir: &Path,
) -> Result<Option<TlsAcceptor>, TlsError> {
    if !tls.enabled {
        return Ok(None);
    }
    let (cert, key) = if tls.cert_path.is_empty() && tls.key_path.is_empty() {
        self_signed(state_dir)?
    } else {
        (PathBuf::from(&tls.cert_path), PathBuf::from(&tls.key_path))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .and_then(std::iter::Iterator::collect::<Result<_, _>>)
        .map_err(|e| TlsError::Pem {
            what: "certificate",
            path: cert.clone(),
            detail: e.to_string(),
            key: "cert_path",
        })?;
    let pk = PrivateKeyDer::from_pem_file(&key).map_err(|e| TlsError::Pem {
        what: "private key",
        path: key.clone(),
        detail: e.to_string(),
        key: "key_path",
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, pk))
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

/// `<state_dir>/realtime-tls/{cert,key}.pem`, made once.
fn self_signed(state_dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
    let dir = state_dir.join("realtime-tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    let fail = |detail: String| TlsError::SelfSigned {
        path: dir.clone(),
        detail,
    };
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if !host.is_empty() {
        names.push(format!("{host}.local"));
        names.push(host);
    }
    let made = rcgen::generate_simple_self_signed(names).map_err(|e| fail(e.to_string()))?;
    std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
    write_atomic(&key, made.signing_key.serialize_pem().as_bytes(), 0o600)
        .map_err(|e| fail(e.to_string()))?;
    write_atomic(&cert, made.cert.pem().as_bytes(), 0o644).map_err(|e| fail(e.to_string()))?;
    tracing::info!(operation = "realtime.tls", path = %cert.display(), "self-signed certificate made");
    Ok((cert, key))
}

/// The one atomic writer (temp file with `mode`, fsync, rename, fsync the directory).
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    crate::fsutil::write_mode(path, bytes, mode)
}
