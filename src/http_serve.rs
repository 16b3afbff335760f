//! What the two HTTP listeners (`/health` and the web page) share: accepting under a cap
//! on connections served at once, and serving one HTTP/1 connection with a header
//! timeout until it ends or shutdown asks it to finish.

use hyper::body::{Body, Incoming};
use hyper::service::HttpService;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// A listener that hands out at most `max` connections at once; more wait in the
/// kernel's accept queue.
#[derive(Debug)]
pub struct Capped {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    /// The `operation` field of its log lines, e.g. `web.accept`.
    accept_op: &'static str,
}

impl Capped {
    /// Caps `listener` at `max` connections served at once.
    pub fn new(listener: TcpListener, max: usize, accept_op: &'static str) -> Self {
        Self {
            listener,
            permits: Arc::new(Semaphore::new(max)),
            accept_op,
        }
    }

    /// The next connection with its slot, or `None` once `shutdown` is cancelled. A
    /// failed accept (e.g. out of file descriptors) is logged and retried after 100 ms.
    pub async fn accept(
        &self,
        shutdown: &CancellationToken,
    ) -> Option<(OwnedSemaphorePermit, TcpStream, SocketAddr)> {
        loop {
            let permit = tokio::select! {
                () = shutdown.cancelled() => return None,
                p = self.permits.clone().acquire_owned() => p.ok()?,
            };
            tokio::select! {
                () = shutdown.cancelled() => return None,
                r = self.listener.accept() => match r {
                    Ok((stream, peer)) => return Some((permit, stream, peer)),
                    Err(e) => {
                        tracing::warn!(operation = self.accept_op, error = %e, "accept failed");
                        drop(permit);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    }
}

/// Serves one HTTP/1 connection until it ends; on `shutdown` it finishes the request in
/// progress and closes. `conn_op` is the `operation` field of its log line.
pub async fn http1<I, S>(
    io: I,
    svc: S,
    header_timeout: Duration,
    keep_alive: bool,
    shutdown: &CancellationToken,
    peer: SocketAddr,
    conn_op: &'static str,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService<Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(keep_alive)
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => if let Err(e) = r {
            tracing::debug!(operation = conn_op, peer = %peer, error = %e, "connection ended with an error");
        },
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.as_mut().await;
        }
    }
}
