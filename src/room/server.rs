//! The listener: bound in `App::bind`, an accept loop that takes a handshake slot (per
//! address and in total, never a joined slot: see [`limits`](super::limits)) before any
//! handshake, then TLS (optional) and the WebSocket upgrade within `handshake_timeout`,
//! each connection in its own tracked task.

use super::client;
use super::gather::Gather;
use super::handshake::{self, Upgrade};
use super::head::{self, Replay, Verdict};
use super::limits::{Handshake, HandshakeCap};
use super::stats::reason;
use super::Service;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// tungstenite's read buffer per connection, touched in full; it grows for a larger
/// frame, up to `max_frame_bytes`. Most connections (observers) send nearly nothing, so
/// this is paid by every idle connection: 512 bytes of the ~12 KiB one costs
/// (docs/PERFORMANCE.md). A sending client pays one more `read` per 512 bytes: a 512-byte
/// status frame takes two, once per frame fanned out to the whole room (at 8 KiB the
/// hub's CPU per delivery did not change measurably; 1 KiB cost 0.5 KiB more per idle
/// connection).
pub const READ_BUFFER: usize = 512;
/// Bytes gathered before a write reaches the socket (a batch is flushed anyway): the
/// [`Gather`] layer's, which frees them once flushed.
pub const WRITE_BUFFER: usize = super::gather::GATHER;

/// The WebSocket limits for `max_frame_bytes`: larger frames or messages end the
/// connection with 1009. tungstenite's own write buffer is off (`write_buffer_size` 0:
/// each frame goes straight to [`Gather`], so tungstenite keeps at most one frame, not
/// the largest batch ever written); it only grows while the socket is not writable, up
/// to `max_write_buffer_size`.
pub fn ws_config(max_frame_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(WRITE_BUFFER + 2 * max_frame_bytes + 1024)
        .max_frame_size(Some(max_frame_bytes))
        .max_message_size(Some(max_frame_bytes))
}

/// Accepts until `token` is cancelled, then closes every client with 1001 and waits
/// for their tasks (the supervisor bounds the wait).
pub async fn accept_loop(
    svc: Arc<Service>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    token: CancellationToken,
) {
    let tasks = TaskTracker::new();
    let mut refused = RefusalLog::default();
    loop {
        let accepted = tokio::select! {
            () = token.cancelled() => break,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(operation = "room.accept", error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match svc.limits.handshake(peer.ip()) {
            Ok(h) => h,
            Err(cap) => {
                svc.stats.dropped(reason::HANDSHAKE_LIMIT);
                refused.hit(&svc, peer.ip(), cap);
                // A reset, not a FIN: a sustained flood leaves no TIME_WAIT behind.
                let _ = tcp.set_zero_linger();
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let task = connection(svc.clone(), tcp, peer, tls.clone(), slot, token.clone());
        // What every connection holds for its task alone (docs/PERFORMANCE.md).
        tracing::trace!(
            operation = "room.accept",
            task_bytes = std::mem::size_of_val(&task),
            "connection task"
        );
        tasks.spawn(task);
    }
    drop(listener);
    svc.stopping.cancel();
    svc.rooms.close_all(&shutting_down());
    tasks.close();
    tasks.wait().await;
}

/// How often the accept loop may log that a handshake cap closed connections.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Says "handshake cap reached" at most once per [`REFUSAL_LOG_INTERVAL`], with how many
/// connections were closed since the last time: a flood must not flood the log.
#[derive(Debug, Default)]
struct RefusalLog {
    last: Option<tokio::time::Instant>,
    since: u64,
}

impl RefusalLog {
    fn hit(&mut self, svc: &Service, ip: IpAddr, cap: HandshakeCap) {
        self.since += 1;
        let now = tokio::time::Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < REFUSAL_LOG_INTERVAL)
        {
            return;
        }
        let c = svc.limits.caps();
        let limit = match cap {
            HandshakeCap::PerIp => c.handshakes_per_ip,
            HandshakeCap::Total => c.max_handshakes,
        };
        tracing::warn!(
            operation = "room.accept",
            peer_ip = %ip,
            cap = cap.key(),
            limit,
            closed = self.since,
            "handshake cap reached; new connections closed unanswered"
        );
        self.last = Some(now);
        self.since = 0;
    }
}

/// The farewell of a client when the box shuts down.
pub fn shutting_down() -> super::outbox::Farewell {
    super::outbox::Farewell {
        last: None,
        code: Some(1001),
        reason: "SHUTTING_DOWN".into(),
        why: "shutdown",
    }
}

async fn connection(
    svc: Arc<Service>,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    slot: Handshake,
    token: CancellationToken,
) {
    let deadline = Duration::from_secs(svc.cfg.limits.handshake_timeout);
    match tls {
        None => upgrade(svc, tcp, peer, slot, deadline, token).await,
        // Boxed: a plain connection's task does not carry room for a TLS session
        // (every connection's task is as large as its largest path).
        Some(acceptor) => Box::pin(over_tls(svc, tcp, peer, acceptor, slot, deadline, token)).await,
    }
}

async fn over_tls(
    svc: Arc<Service>,
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    slot: Handshake,
    deadline: Duration,
    token: CancellationToken,
) {
    let start = tokio::time::Instant::now();
    let tls = tokio::select! {
        () = token.cancelled() => return,
        r = tokio::time::timeout(deadline, acceptor.accept(tcp)) => r,
    };
    match tls {
        Ok(Ok(stream)) => {
            let left = deadline.saturating_sub(start.elapsed());
            upgrade(svc, stream, peer, slot, left, token).await;
        }
        Ok(Err(e)) => {
            svc.stats.dropped(reason::HANDSHAKE);
            tracing::debug!(operation = "room.handshake", peer = %peer, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            svc.stats.dropped(reason::HANDSHAKE);
            tracing::debug!(operation = "room.handshake", peer = %peer, "TLS handshake timed out");
        }
    }
}

async fn upgrade<S>(
    svc: Arc<Service>,
    mut stream: S,
    peer: SocketAddr,
    slot: Handshake,
    deadline: Duration,
    token: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let start = tokio::time::Instant::now();
    // Anything but a WebSocket upgrade is answered in HTTP here (tungstenite would
    // close it without a word); an upgrade goes on to tungstenite, bytes and all.
    let read = tokio::select! {
        () = token.cancelled() => return,
        r = tokio::time::timeout(deadline, head::read(&mut stream)) => r,
    };
    let bytes = match read {
        Ok(Verdict::Upgrade(bytes)) => bytes,
        Ok(Verdict::Refuse(status, why)) => {
            svc.stats.dropped(reason::HANDSHAKE);
            tracing::debug!(operation = "room.handshake", peer = %peer, status, "not a WebSocket upgrade: {why}");
            return;
        }
        Ok(Verdict::Gone) => {
            svc.stats.dropped(reason::HANDSHAKE);
            return;
        }
        Err(_) => {
            svc.stats.dropped(reason::HANDSHAKE);
            tracing::info!(operation = "room.handshake", peer = %peer, timeout_secs = deadline.as_secs(), "handshake timed out; connection dropped");
            return;
        }
    };
    let stream = Replay::new(bytes, Gather::new(stream));
    let deadline = deadline.saturating_sub(start.elapsed());
    let mut up = Upgrade::default();
    let cfg = ws_config(svc.cfg.limits.max_frame_bytes);
    let hs = {
        let cb = handshake::callback(&svc.cfg.path, svc.cfg.echo, &mut up);
        // Boxed: the handshake's state is gone once the connection is served.
        let accept = Box::pin(tokio_tungstenite::accept_hdr_async_with_config(
            stream,
            cb,
            Some(cfg),
        ));
        tokio::select! {
            () = token.cancelled() => return,
            r = tokio::time::timeout(deadline, accept) => r,
        }
    };
    match hs {
        Ok(Ok(ws)) => client::serve(svc, ws, up, peer, slot).await,
        Ok(Err(e)) => {
            svc.stats.dropped(reason::HANDSHAKE);
            tracing::debug!(operation = "room.handshake", peer = %peer, error = %e, "WebSocket handshake refused");
        }
        Err(_) => {
            svc.stats.dropped(reason::HANDSHAKE);
            tracing::info!(operation = "room.handshake", peer = %peer, timeout_secs = deadline.as_secs(), "handshake timed out; connection dropped");
        }
    }
}
