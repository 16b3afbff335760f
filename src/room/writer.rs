//! A connection's writing half: drains the bounded queue into the socket in batches,
//! with the client's pending presence written in its place among the frames (see
//! [`presence`](super::presence)), sends our pings, enforces the idle timeout, and
//! says the farewell (last frame + close) within [`FAREWELL_TIMEOUT`]. Also the
//! `/echo` conformance loop.

use super::outbox::Farewell;
use super::outbox::{Inbox, Outbox};
use super::presence::Presence;
use super::Service;
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

/// How long a farewell (last frame + close) may take before the socket is dropped.
pub const FAREWELL_TIMEOUT: Duration = Duration::from_secs(2);
/// Queued frames written per flush.
const WRITE_BATCH: usize = 32;

/// Drains the queue into the socket, pings, enforces the idle timeout, says farewell.
pub(super) async fn write<Si>(
    svc: &Service,
    out: &Outbox,
    presence: &Presence,
    mut inbox: Inbox,
    mut sink: Si,
    last_seen: &AtomicU64,
    started: Instant,
) where
    Si: futures_util::Sink<Message, Error = WsError> + Unpin,
{
    let l = &svc.cfg.limits;
    let idle = Duration::from_secs(l.idle_timeout).as_millis() as u64;
    let every = Duration::from_secs(l.ping_interval);
    let mut ping = tokio::time::interval_at(Instant::now() + every, every);
    // Frames received from the queue so far: presence due after them may be written.
    let mut received: u64 = 0;
    loop {
        tokio::select! {
            biased;
            _ = out.closing().cancelled() => break,
            m = inbox.rx.recv() => {
                let Some(first) = m else { break };
                let batch = async {
                    let mut next = Some(first);
                    let mut n = 0;
                    while let Some(t) = next.take() {
                        for p in presence.take(received) {
                            sink.feed(Message::Text(p)).await?;
                            svc.stats.frames_out.inc();
                        }
                        received += 1;
                        let len = t.len();
                        sink.feed(Message::Text(t)).await?;
                        inbox.bytes.fetch_sub(len, Ordering::AcqRel);
                        svc.stats.frames_out.inc();
                        n += 1;
                        if n < WRITE_BATCH {
                            next = inbox.rx.try_recv().ok();
                        }
                    }
                    for p in presence.take(received) {
                        sink.feed(Message::Text(p)).await?;
                        svc.stats.frames_out.inc();
                    }
                    sink.flush().await
                };
                let r = tokio::select! {
                    biased;
                    _ = out.closing().cancelled() => break,
                    r = batch => r,
                };
                if r.is_err() {
                    out.close(Farewell { last: None, code: None, reason: String::new(), why: "write_failed" });
                    return;
                }
            }
            _ = presence.changed() => {
                let batch = async {
                    for p in presence.take(received) {
                        sink.feed(Message::Text(p)).await?;
                        svc.stats.frames_out.inc();
                    }
                    sink.flush().await
                };
                let r = tokio::select! {
                    biased;
                    _ = out.closing().cancelled() => break,
                    r = batch => r,
                };
                if r.is_err() {
                    out.close(Farewell { last: None, code: None, reason: String::new(), why: "write_failed" });
                    return;
                }
            }
            _ = ping.tick() => {
                let seen = last_seen.load(Ordering::Relaxed);
                if (started.elapsed().as_millis() as u64).saturating_sub(seen) > idle {
                    svc.stats.dropped(super::stats::reason::IDLE_TIMEOUT);
                    out.close(Farewell { last: None, code: Some(1001), reason: "IDLE_TIMEOUT".into(), why: "idle_timeout" });
                    break;
                }
                let r = tokio::select! {
                    biased;
                    _ = out.closing().cancelled() => break,
                    r = sink.send(Message::Ping(Default::default())) => r,
                };
                if r.is_err() {
                    out.close(Farewell { last: None, code: None, reason: String::new(), why: "write_failed" });
                    return;
                }
            }
        }
    }
    if let Some(f) = out.farewell() {
        let _ =
            tokio::time::timeout(FAREWELL_TIMEOUT, say(&mut sink, f.last, f.code, &f.reason)).await;
    }
}

/// Sends an optional last frame and a close frame (no code: the peer sees 1005).
async fn say<Si>(
    sink: &mut Si,
    last: Option<Utf8Bytes>,
    code: Option<u16>,
    reason: &str,
) -> Result<(), WsError>
where
    Si: futures_util::Sink<Message, Error = WsError> + Unpin,
{
    if let Some(l) = last {
        sink.feed(Message::Text(l)).await?;
    }
    let frame = code.map(|c| CloseFrame {
        code: CloseCode::from(c),
        reason: reason.into(),
    });
    sink.send(Message::Close(frame)).await?;
    sink.close().await
}

/// The conformance endpoint: every text and binary message goes back unchanged; pings,
/// closes and the limits are tungstenite's, configured as for the rooms.
pub(super) async fn echo<S>(svc: &Service, mut ws: WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(Ok(m)) = ws.next().await {
        if m.is_text() || m.is_binary() {
            svc.stats.frames_in.inc();
            if ws.send(m).await.is_err() {
                break;
            }
            svc.stats.frames_out.inc();
        }
    }
}

/// Ends a connection that never joined.
pub(super) async fn farewell<S>(
    ws: &mut WebSocketStream<S>,
    last: Option<Utf8Bytes>,
    code: Option<u16>,
    reason: &str,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(FAREWELL_TIMEOUT, say(ws, last, code, reason)).await;
}
