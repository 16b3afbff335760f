//! The HTTP listener: bound by the composition root, served until cancelled.

use super::routes::{self, Context};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Health requests served at once; more wait in the kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 16;
/// Time a client has to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// A bound, not yet serving, health listener.
#[derive(Debug)]
pub struct Bound {
    listener: TcpListener,
    addr: SocketAddr,
}

/// Binds the health listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<Bound> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    Ok(Bound { listener, addr })
}

impl Bound {
    /// The bound address (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` is cancelled, then waits for open requests.
    pub async fn serve(self, ctx: Context, shutdown: CancellationToken) {
        let ctx = Arc::new(ctx);
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let tracker = TaskTracker::new();
        tracing::info!(operation = "health.serve", addr = %self.addr, "health endpoint listening");
        loop {
            let permit = tokio::select! {
                () = shutdown.cancelled() => break,
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let (stream, peer) = tokio::select! {
                () = shutdown.cancelled() => break,
                r = self.listener.accept() => match r {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(operation = "health.accept", error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let ctx = ctx.clone();
            let shutdown = shutdown.clone();
            tracker.spawn(async move {
                let _permit = permit;
                let svc = service_fn(move |req| {
                    let resp = routes::handle(&ctx, &req);
                    async move { Ok::<_, std::convert::Infallible>(resp) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), svc);
                tokio::pin!(conn);
                tokio::select! {
                    r = conn.as_mut() => if let Err(e) = r {
                        tracing::debug!(operation = "health.conn", peer = %peer, error = %e, "connection ended with an error");
                    },
                    () = shutdown.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.as_mut().await;
                    }
                }
            });
        }
        tracker.close();
        tracker.wait().await;
    }
}
