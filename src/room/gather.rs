//! Write gathering under tungstenite: frames written between two flushes go to the
//! socket in one write (up to [`GATHER`] bytes), and the buffer is freed once flushed,
//! so an idle connection holds no write buffer at all.
//!
//! tungstenite keeps its own write buffer at the largest size it ever reached (frames
//! batched up to `write_buffer_size`); with `write_buffer_size` 0 it hands every frame
//! straight to this layer and keeps at most one frame.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes gathered before they are written without waiting for the flush.
pub const GATHER: usize = 8 * 1024;

/// A stream whose writes are gathered until flushed.
#[derive(Debug)]
pub struct Gather<S> {
    inner: S,
    buf: Vec<u8>,
    /// Written out of `buf` so far.
    pos: usize,
}

impl<S> Gather<S> {
    /// Gathers writes to `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// Bytes of buffer held now (0 once flushed).
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }
}

impl<S: AsyncWrite + Unpin> Gather<S> {
    /// Writes out what is gathered, then frees the buffer.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(rest) = self.buf.get(self.pos..).filter(|r| !r.is_empty()) {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pos += n;
        }
        self.buf = Vec::new();
        self.pos = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Gather<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Gather<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if me.buf.len() + data.len() > GATHER {
            ready!(me.poll_drain(cx))?;
        }
        if data.len() >= GATHER {
            return Pin::new(&mut me.inner).poll_write(cx, data);
        }
        if me.buf.capacity() == 0 {
            me.buf.reserve_exact(GATHER);
        }
        me.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(me.poll_drain(cx))?;
        Pin::new(&mut me.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(me.poll_drain(cx))?;
        Pin::new(&mut me.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_wait_for_the_flush_and_the_buffer_is_freed_after_it() {
        let (a, mut b) = tokio::io::duplex(64 * 1024);
        let mut g = Gather::new(a);
        g.write_all(b"one ").await.unwrap();
        g.write_all(b"two").await.unwrap();
        assert_eq!(g.held(), GATHER, "gathered, not yet written");
        let mut got = [0u8; 7];
        let early = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            b.read_exact(&mut got[..1]),
        )
        .await;
        assert!(early.is_err(), "nothing reaches the peer before the flush");
        g.flush().await.unwrap();
        assert_eq!(g.held(), 0, "an idle connection holds no write buffer");
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"one two");
    }

    #[tokio::test]
    async fn more_than_the_gather_size_is_written_in_order_without_a_flush() {
        let (a, mut b) = tokio::io::duplex(256 * 1024);
        let mut g = Gather::new(a);
        let big: Vec<u8> = (0..3 * GATHER).map(|i| (i % 251) as u8).collect();
        g.write_all(&big[..100]).await.unwrap();
        g.write_all(&big[100..]).await.unwrap();
        // The first 100 bytes went out when the large write came; the large write
        // went straight through.
        let mut got = vec![0u8; big.len()];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(got, big);
        assert_eq!(g.held(), 0);
    }
}
