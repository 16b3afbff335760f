//! Opening and closing the WebSocket to central (contract §c.1–§c.3, §g.1).
//!
//! - TLS: [`crate::trust`], the same trust as pairing and the token probe (rustls with
//!   the ring provider, the WebPKI roots plus `upstream.extra_ca_file`). There is
//!   deliberately no switch that turns certificate checks off.
//! - `ws://` only to a loopback host or with `upstream.allow_insecure`.
//! - The token goes in `Authorization: Bearer`, never in the query string or a
//!   subprotocol (central reads long subprotocols as tokens, §c.2).
//! - Closing sends a close frame and waits briefly for central's answer, so a new
//!   socket never overlaps the old one (§g.1: duplicates make central lose the device).

use super::Error;
use crate::secret::Secret;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// The socket type.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// TCP connect + TLS + upgrade must finish within this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a close waits for central's close frame before dropping the TCP stream.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Largest inbound message (central's own cap is 10 MiB; its frames are small).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Makes connections; built once from the config.
#[derive(Clone)]
pub struct Dialer {
    tls: Arc<rustls::ClientConfig>,
    allow_insecure: bool,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("allow_insecure", &self.allow_insecure)
            .finish()
    }
}

impl Dialer {
    /// Builds the TLS client config ([`crate::trust`]: WebPKI roots + `extra_ca_file`).
    pub fn new(extra_ca_file: &str, allow_insecure: bool) -> Result<Self, Error> {
        let tls = crate::trust::client_config(extra_ca_file).map_err(|e| match e {
            crate::trust::TrustError::CaFile { path, detail } => Error::CaFile { path, detail },
        })?;
        Ok(Self {
            tls: Arc::new(tls),
            allow_insecure,
        })
    }

    /// Opens the socket to `url` with the token as a Bearer header.
    pub async fn dial(&self, url: &str, token: &Secret) -> Result<Ws, Error> {
        let mut req = url.into_client_request().map_err(|_| Error::BadUrl {
            url: url.to_owned(),
        })?;
        let host = req.uri().host().unwrap_or("").to_owned();
        let connector = match req.uri().scheme_str() {
            Some("wss") => Connector::Rustls(self.tls.clone()),
            Some("ws") if self.allow_insecure || is_loopback(&host) => Connector::Plain,
            Some("ws") => return Err(Error::Insecure { host }),
            _ => {
                return Err(Error::BadUrl {
                    url: url.to_owned(),
                })
            }
        };
        let bearer = format!("Bearer {}", token.expose());
        let value = bearer
            .parse()
            .map_err(|_| Error::Connect("the token is not a valid header value".into()))?;
        req.headers_mut().insert("Authorization", value);
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        let connect = tokio_tungstenite::connect_async_tls_with_config(
            req,
            Some(config),
            true,
            Some(connector),
        );
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Err(_) => Err(Error::Timeout),
            Ok(Ok((ws, _))) => Ok(ws),
            Ok(Err(e)) => Err(classify(e, &host)),
        }
    }
}

/// `localhost`, `127.0.0.0/8`, `::1`.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn classify(e: tungstenite::Error, host: &str) -> Error {
    match e {
        tungstenite::Error::Http(resp) => Error::Http(resp.status().as_u16()),
        tungstenite::Error::Io(io) => {
            let tls = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            match tls {
                Some(rustls::Error::InvalidCertificate(c)) => Error::Certificate {
                    host: host.to_owned(),
                    detail: format!("{c:?}"),
                },
                Some(other) => Error::Tls(other.to_string()),
                None => Error::Connect(io.to_string()),
            }
        }
        tungstenite::Error::Tls(t) => Error::Tls(t.to_string()),
        other => Error::Connect(other.to_string()),
    }
}

/// Sends a close frame and waits up to [`CLOSE_WAIT`] for the close handshake to finish
/// (or the peer to go), then drops the socket.
pub async fn close(mut ws: Ws, code: u16, reason: &str) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_owned().into(),
    };
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        if ws.send(Message::Close(Some(frame))).await.is_err() {
            return;
        }
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_count_as_loopback() {
        let table = [
            ("127.0.0.1", true),
            ("127.8.9.1", true),
            ("[::1]", true),
            ("localhost", true),
            ("cp.example.org", false),
            ("10.0.0.1", false),
            ("localhost.evil.org", false),
        ];
        for (h, want) in table {
            assert_eq!(is_loopback(h), want, "{h}");
        }
    }

    #[tokio::test]
    async fn cleartext_to_a_remote_host_is_refused_before_any_connect() {
        let d = Dialer::new("", false).unwrap();
        let err = d
            .dial("ws://cp.example.org/realtime/devices/x", &Secret::new("t"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Insecure { .. }), "{err}");
        let err = d
            .dial("http://cp.example.org/x", &Secret::new("t"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BadUrl { .. }), "{err}");
    }

    #[test]
    fn a_missing_ca_file_is_a_clear_error() {
        let err = Dialer::new("/nonexistent/ca.pem", false).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
