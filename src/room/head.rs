//! The request head before the WebSocket handshake: read up to [`MAX_HEAD`] bytes until
//! the blank line, and answer anything that is not a WebSocket upgrade with an HTTP
//! error and a one-line body (tungstenite would close such a socket without a word).
//! A valid upgrade is handed to tungstenite unchanged through [`Replay`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::machine::TryParse;
use tokio_tungstenite::tungstenite::handshake::server::{create_response, Request};
use tokio_tungstenite::tungstenite::{error::ProtocolError, Error as WsError};

/// The largest request head read before answering 431.
pub const MAX_HEAD: usize = 16 * 1024;
const CHUNK: usize = 1024;

/// What the head says.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A WebSocket upgrade: these bytes (the head and anything after it) go to tungstenite.
    Upgrade(Vec<u8>),
    /// Not one: answered with this status and reason (the one-line body).
    Refuse(u16, &'static str),
    /// The peer closed or failed before a complete head: nothing to answer.
    Gone,
}

/// Judges a complete or partial head. `None`: more bytes are needed.
pub fn judge(buf: &[u8]) -> Option<Result<(), (u16, &'static str)>> {
    match Request::try_parse(buf) {
        Ok(None) if buf.len() >= MAX_HEAD => Some(Err((431, "request head too large"))),
        Ok(None) => None,
        Ok(Some((_, req))) => Some(match create_response(&req) {
            Ok(_) => Ok(()),
            Err(WsError::Protocol(
                ProtocolError::MissingConnectionUpgradeHeader
                | ProtocolError::MissingUpgradeWebSocketHeader,
            )) => Err((
                426,
                "this port speaks WebSocket only: send an Upgrade: websocket request",
            )),
            Err(_) => Err((400, "bad WebSocket upgrade request")),
        }),
        Err(WsError::Protocol(ProtocolError::WrongHttpMethod)) => Some(Err((
            400,
            "only GET with Upgrade: websocket is served here",
        ))),
        Err(_) => Some(Err((400, "not an HTTP request"))),
    }
}

/// Reads the head from `stream` and answers a refusal on it.
pub async fn read<S>(stream: &mut S) -> Verdict
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = Vec::with_capacity(CHUNK);
    let verdict = loop {
        let start = buf.len();
        buf.resize(start + CHUNK, 0);
        let n = match stream.read(&mut buf[start..]).await {
            Ok(0) | Err(_) => return Verdict::Gone,
            Ok(n) => n,
        };
        buf.truncate(start + n);
        if let Some(v) = judge(&buf) {
            break v;
        }
    };
    match verdict {
        Ok(()) => Verdict::Upgrade(buf),
        Err((status, why)) => {
            let _ = stream.write_all(response(status, why).as_bytes()).await;
            let _ = stream.shutdown().await;
            Verdict::Refuse(status, why)
        }
    }
}

/// The HTTP answer for a refusal: a one-line plain-text body, and the connection closed.
pub fn response(status: u16, why: &str) -> String {
    let text = match status {
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        _ => "Bad Request",
    };
    let upgrade = if status == 426 {
        "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    } else {
        ""
    };
    format!(
        "HTTP/1.1 {status} {text}\r\n{upgrade}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{why}\n",
        why.len() + 1
    )
}

/// A stream that first yields the bytes already read, then its inner stream's.
#[derive(Debug)]
pub struct Replay<S> {
    head: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Replay<S> {
    /// `head` is read again before `inner`.
    pub fn new(head: Vec<u8>, inner: S) -> Self {
        Self {
            head,
            pos: 0,
            inner,
        }
    }

    /// The inner stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if let Some(rest) = me.head.get(me.pos..).filter(|r| !r.is_empty()) {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(rest.get(..n).unwrap_or_default());
            me.pos += n;
            if me.pos >= me.head.len() {
                // Replayed: the buffer's memory goes back now, not at the close.
                me.head = Vec::new();
                me.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut me.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPGRADE: &str = "GET /realtime/device/x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

    #[test]
    fn upgrades_pass_and_the_rest_is_refused() {
        assert_eq!(judge(UPGRADE.as_bytes()), Some(Ok(())));
        assert_eq!(judge(&UPGRADE.as_bytes()[..40]), None);
        let get = judge(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(matches!(get, Some(Err((426, _)))), "{get:?}");
        let post = judge(b"POST /realtime/device/x HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(matches!(post, Some(Err((400, _)))), "{post:?}");
        let junk = judge(b"\x16\x03\x01\x00\xa5garbage\r\n\r\n");
        assert!(matches!(junk, Some(Err((400, _)))), "{junk:?}");
        let big = vec![b'a'; MAX_HEAD];
        assert!(matches!(judge(&big), Some(Err((400 | 431, _)))));
    }

    #[test]
    fn the_body_is_one_line_and_the_length_is_right() {
        let r = response(426, "speak WebSocket");
        let (head, body) = r.split_once("\r\n\r\n").unwrap_or_default();
        assert_eq!(body, "speak WebSocket\n");
        assert!(head.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(head.contains("Content-Length: 16\r\n"));
    }
}
