//! The one TLS trust for the box's connections to central: the upstream link's
//! WebSocket ([`crate::upstream::link`]), the token probe ([`crate::upstream::probe`])
//! and pairing's HTTPS ([`crate::pairing::http`]) all use [`client_config`], so a box
//! behind a private CA trusts the same servers for all three.
//!
//! rustls with the ring provider, TLS 1.2 or newer, the WebPKI roots plus the PEM bundle
//! in `[upstream] extra_ca_file`. There is deliberately no switch that turns
//! certificate checks off; tests trust their own CA through `extra_ca_file`.

use crate::error::ErrorCode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;

/// Why the trust cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// `extra_ca_file` is unreadable, holds no certificate, or a bad one.
    #[error("cannot use the extra CA file {path}: {detail}")]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

impl ErrorCode for TrustError {
    fn code(&self) -> &'static str {
        match self {
            TrustError::CaFile { .. } => "TLS_CA_FILE",
        }
    }
}

/// The client configuration: WebPKI roots plus the certificates in `extra_ca_file`
/// (empty: none).
pub fn client_config(extra_ca_file: &str) -> Result<rustls::ClientConfig, TrustError> {
    let fail = |detail: String| TrustError::CaFile {
        path: extra_ca_file.to_owned(),
        detail,
    };
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if !extra_ca_file.is_empty() {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(extra_ca_file)
            .and_then(std::iter::Iterator::collect::<Result<_, _>>)
            .map_err(|e| fail(e.to_string()))?;
        if certs.is_empty() {
            return Err(fail("no certificate in the file".into()));
        }
        for c in certs {
            roots.add(c).map_err(|e| fail(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_hold_a_certificate_and_an_empty_path_means_webpki_only() {
        assert!(client_config("").is_ok());
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = client_config(&missing.display().to_string()).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
        let garbage = dir.path().join("ca.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let err = client_config(&garbage.display().to_string()).unwrap_err();
        assert!(err.to_string().contains("no certificate"), "{err}");
        assert_eq!(err.code(), "TLS_CA_FILE");
    }
}
