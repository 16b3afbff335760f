//! The read loop every upgraded connection runs, rooms and `/echo` alike: framing is
//! tungstenite's, and here is what a frame-level event means for the connection.
//!
//! - a client Close: tungstenite has queued the echo of its code (RFC 6455 §5.5.1, 1002
//!   for a code that may not be sent); the writer flushes it at once (no new Close);
//! - invalid UTF-8 in a text message or close reason: close 1007;
//! - RSV bits, reserved opcodes, an unmasked client frame, a bad close payload, a broken
//!   fragmentation: close 1002;
//! - a message over `max_frame_bytes`: close 1009 after a `FRAME_TOO_LARGE` error frame;
//! - once the connection is closing (either side, any reason), messages are read and
//!   dropped until the peer's Close answers ours, within [`FAREWELL_TIMEOUT`].
//!
//! What a text or binary message means is the [`Handler`]'s business.

use super::frames;
use super::outbox::{Farewell, Outbox};
use super::stats::reason;
use super::writer::FAREWELL_TIMEOUT;
use super::Service;
use crate::protocol::RealtimeCode;
use futures_util::StreamExt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// What a connection does with the messages it reads.
pub(super) trait Handler {
    /// A text or binary message. `false`: stop (the handler has closed the outbox).
    fn data(&mut self, msg: Message) -> impl Future<Output = bool>;
}

/// Reads until the peer closes, errs, or the connection is told to close; then waits
/// for the peer's Close (bounded) so that the close handshake completes.
pub(super) async fn read<St, H>(
    svc: &Service,
    stream: &mut St,
    out: &Outbox,
    last_seen: &AtomicU64,
    started: Instant,
    handler: &mut H,
) where
    St: futures_util::Stream<Item = Result<Message, WsError>> + Unpin,
    H: Handler,
{
    loop {
        let msg = tokio::select! {
            biased;
            () = out.closing().cancelled() => break,
            m = stream.next() => m,
        };
        let msg = match msg {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                // tungstenite's stream has ended: nothing more can be read.
                out.close(failed(svc, &e));
                return;
            }
            None => {
                out.close(gone());
                return;
            }
        };
        last_seen.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        if msg.is_text() || msg.is_binary() {
            if !handler.data(msg).await {
                break;
            }
        } else if let Message::Close(frame) = msg {
            // The echo is queued in tungstenite; sending another Close would fail
            // with SendAfterClosing. The writer flushes the echo instead.
            let code = frame.as_ref().map(|f| u16::from(f.code));
            tracing::debug!(operation = "room.close", code, "client closed");
            out.close(Farewell {
                last: None,
                code: None,
                reason: String::new(),
                why: "closed",
            });
            return;
        }
    }
    // We close: the peer answers with its Close; anything before that is dropped.
    // (Boxed, like every step of a connection's end: a rare path that would otherwise
    // take room in every connection's task; see docs/PERFORMANCE.md.)
    let _ = Box::pin(tokio::time::timeout(FAREWELL_TIMEOUT, async {
        while let Some(Ok(m)) = stream.next().await {
            if m.is_close() {
                break;
            }
        }
    }))
    .await;
}

/// The peer went away without a close handshake (or the socket failed): nothing to say.
fn gone() -> Farewell {
    Farewell {
        last: None,
        code: None,
        reason: String::new(),
        why: "gone",
    }
}

/// The close for a read error: the code RFC 6455 asks for.
fn failed(svc: &Service, e: &WsError) -> Farewell {
    let (code, reason, why) = match e {
        WsError::Capacity(_) => {
            svc.stats.dropped(reason::TOO_LARGE);
            let max = svc.cfg.limits.max_frame_bytes;
            return Farewell {
                last: Some(frames::error(
                    RealtimeCode::FrameTooLarge.as_str(),
                    &format!("Frame larger than {max} bytes"),
                )),
                code: Some(1009),
                reason: "FRAME_TOO_LARGE".into(),
                why: "too_large",
            };
        }
        WsError::Utf8(_) => (1007, "INVALID_UTF8", "invalid_utf8"),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => return gone(),
        WsError::Protocol(p) => {
            tracing::debug!(operation = "room.frame", error = %p, "protocol error");
            (1002, "PROTOCOL_ERROR", "protocol_error")
        }
        _ => return gone(),
    };
    tracing::debug!(
        operation = "room.frame",
        code,
        reason = why,
        "closing on a bad frame"
    );
    Farewell {
        last: None,
        code: Some(code),
        reason: reason.into(),
        why,
    }
}

/// The end of every connection: our FIN after the close handshake, then the peer's
/// bytes read and dropped until its FIN (bounded), so that nothing unread turns our
/// close into a reset that could discard the Close frame the peer has not yet read.
pub(super) async fn linger<S>(raw: &mut S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Boxed: the buffer and timer are not carried by every connection's task.
    let _ = Box::pin(tokio::time::timeout(FAREWELL_TIMEOUT, async {
        let _ = raw.shutdown().await;
        let mut buf = [0u8; 512];
        while let Ok(n) = raw.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    }))
    .await;
}
