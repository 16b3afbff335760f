//! The HTTP listener: bound by the composition root, served until cancelled.

use super::routes::{self, Context};
use crate::http_serve::{http1, Capped};
use hyper::service::service_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
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
        let tracker = TaskTracker::new();
        tracing::info!(operation = "health.serve", addr = %self.addr, "health endpoint listening");
        let listener = Capped::new(self.listener, MAX_CONNECTIONS, "health.accept");
        while let Some((permit, stream, peer)) = listener.accept(&shutdown).await {
            let ctx = ctx.clone();
            let shutdown = shutdown.clone();
            tracker.spawn(async move {
                let _permit = permit;
                let svc = service_fn(move |req| {
                    let resp = routes::handle(&ctx, &req);
                    async move { Ok::<_, std::convert::Infallible>(resp) }
                });
                http1(
                    stream,
                    svc,
                    HEADER_TIMEOUT,
                    false,
                    &shutdown,
                    peer,
                    "health.conn",
                )
                .await;
            });
        }
        tracker.close();
        tracker.wait().await;
    }
}
