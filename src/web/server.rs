//! The page's listener: bound by the composition root, served until cancelled. Plain
//! HTTP, or TLS with the `[realtime.tls]` certificate when that is on.

use super::{routes, Web};
use crate::http_serve::{http1, Capped};
use hyper::service::service_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Connections served at once (event streams included); more wait in the accept queue.
pub const MAX_CONNECTIONS: usize = 32;
/// Time a client has for the TLS handshake, and for each request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// A bound, not yet serving, listener.
pub struct Bound {
    listener: TcpListener,
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("web::Bound")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Binds the page's listener; `tls`: the rooms' certificate when `[realtime.tls]` is on.
pub async fn bind(addr: SocketAddr, tls: Option<TlsAcceptor>) -> std::io::Result<Bound> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    Ok(Bound {
        listener,
        addr,
        tls,
    })
}

impl Bound {
    /// The bound address (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it serves TLS.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` is cancelled, then ends the event streams and waits for
    /// open requests.
    pub async fn serve(self, web: Arc<Web>, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        tracing::info!(operation = "web.serve", addr = %self.addr, scheme, "web page listening");
        let listener = Capped::new(self.listener, MAX_CONNECTIONS, "web.accept");
        while let Some((permit, stream, peer)) = listener.accept(&shutdown).await {
            let (web, shutdown, tls) = (web.clone(), shutdown.clone(), self.tls.clone());
            tracker.spawn(async move {
                let _permit = permit;
                match tls {
                    None => connection(stream, false, web, shutdown, peer).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(s)) => connection(s, true, web, shutdown, peer).await,
                            Ok(Err(e)) => {
                                tracing::debug!(operation = "web.tls", peer = %peer, error = %e, "TLS handshake failed");
                            }
                            Err(_) => {
                                tracing::debug!(operation = "web.tls", peer = %peer, "TLS handshake timed out");
                            }
                        }
                    }
                }
            });
        }
        web.stopping.cancel();
        tracker.close();
        tracker.wait().await;
    }
}

async fn connection<I>(
    io: I,
    tls: bool,
    web: Arc<Web>,
    shutdown: CancellationToken,
    peer: SocketAddr,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let web = web.clone();
        async move { Ok::<_, std::convert::Infallible>(routes::handle(web, req, tls).await) }
    });
    http1(io, svc, HEADER_TIMEOUT, true, &shutdown, peer, "web.conn").await;
}
