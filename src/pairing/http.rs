//! The HTTPS client registration uses, and how its failures become one sentence.
//!
//! rustls with the WebPKI roots plus `[upstream] extra_ca_file`; TLS 1.2 or newer;
//! redirects off (a redirect could carry the code to another host or to cleartext);
//! one overall timeout. Certificate checks cannot be switched off: tests trust their
//! own CA through `extra_ca_file` like a box behind a private CA would.

use super::failure::PairError;
use rustls::CertificateError;
use std::time::Duration;

/// Builds the client. `extra_ca_file` is a PEM bundle; an empty path means none.
/// `loopback` servers are reached directly, never through a configured proxy.
pub fn client(
    extra_ca_file: &str,
    timeout: Duration,
    loopback: bool,
) -> Result<reqwest::Client, PairError> {
    // The one trust builder for pairing, the probe and the link (TLS 1.2+ inside).
    let tls = crate::trust::client_config(extra_ca_file).map_err(|e| match e {
        crate::trust::TrustError::CaFile { path, detail } => PairError::CaFile {
            path,
            reason: detail,
        },
    })?;
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("bbedge/", env!("CARGO_PKG_VERSION")));
    if loopback {
        builder = builder.no_proxy();
    }
    builder.build().map_err(|e| PairError::Network {
        host: "the server".into(),
        reason: format!("cannot build the HTTP client: {e}"),
    })
}

/// Turns a transport failure into the sentence for it.
pub fn classify(err: &reqwest::Error, host: &str, timeout: Duration) -> PairError {
    let host = host.to_owned();
    if let Some(tls) = find_rustls(err) {
        return PairError::Tls {
            host,
            reason: describe_tls(tls),
        };
    }
    if err.is_timeout() {
        return PairError::Timeout {
            host,
            secs: timeout.as_secs(),
        };
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut innermost = String::new();
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return PairError::Refused { host },
                std::io::ErrorKind::TimedOut => {
                    return PairError::Timeout {
                        host,
                        secs: timeout.as_secs(),
                    }
                }
                _ => {}
            }
        }
        // hyper-util's resolver failure says "dns error" (its type is private).
        if e.to_string().starts_with("dns error") {
            return PairError::Dns { host };
        }
        innermost = e.to_string();
        cur = e.source();
    }
    PairError::Network {
        host,
        reason: if innermost.is_empty() {
            "connection failed".into()
        } else {
            innermost
        },
    }
}

/// The rustls error somewhere in the chain. `io::Error::source` skips the error it wraps
/// (and hyper-rustls nests one `io::Error` in another), so `io::Error`s are unwrapped
/// through `get_ref` as well.
fn find_rustls<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        let mut io = e.downcast_ref::<std::io::Error>();
        while let Some(inner) = io.and_then(|i| i.get_ref()) {
            if let Some(t) = inner.downcast_ref::<rustls::Error>() {
                return Some(t);
            }
            io = inner.downcast_ref::<std::io::Error>();
        }
        cur = e.source();
    }
    None
}

fn describe_tls(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "its certificate is not signed by an authority this box trusts".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "its certificate is for a different host name".into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "its certificate has expired, or the box's clock is wrong".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "its certificate is not valid yet; is the box's clock set?".into()
            }
            CertificateError::Revoked => "its certificate was revoked".into(),
            other => format!("its certificate is invalid ({other:?})"),
        },
        rustls::Error::AlertReceived(alert) => {
            format!("the server ended the handshake ({alert:?})")
        }
        other => format!("the handshake failed ({other})"),
    }
}
