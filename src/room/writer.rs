//! A connection's writing half: drains the bounded queue into the socket in batches,
//! with the client's pending presence written in its place among the frames (see
//! [`presence`](super::presence)), sends our pings, enforces the idle timeout, and
//! says the farewell (last frame + close) within [`FAREWELL_TIMEOUT`]. Also the
//! `/echo` conformance loop.

use super::fan::{Cursor, Gone};
use super::outbox::Farewell;
use super::outbox::{Inbox, Mark, Outbox, Tagged};
use super::presence::Presence;
use super::reader::{linger, read, Handler};
use super::stats::Stats;
use super::Service;
use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

/// How long a farewell (last frame + close) may take before the socket is dropped.
pub const FAREWELL_TIMEOUT: Duration = Duration::from_secs(2);
/// What the writer does next.
enum Next {
    Close,
    Ping,
    Frames,
    Presence,
}

/// Waits for the writer's next job with no future of its own: the closing flag, the
/// ping timer, the queue and the pending presence are looked at in that order (the
/// timer before the queue: a queue that is never empty cannot starve pings and the
/// idle timeout), and only when none has work is the task registered with the queue's
/// and the presence's wakers (atomic operations, no lock), then looked at once more.
fn poll_next(
    cx: &mut Context<'_>,
    out: &Outbox,
    presence: &Presence,
    inbox: &Inbox,
    ping: Pin<&mut tokio::time::Sleep>,
) -> Poll<Next> {
    if ping.poll(cx).is_ready() {
        return Poll::Ready(Next::Ping);
    }
    let look = || {
        if out.is_closing() {
            Some(Next::Close)
        } else if inbox.rx.ready() {
            Some(Next::Frames)
        } else if presence.pending() > 0 {
            Some(Next::Presence)
        } else {
            None
        }
    };
    if let Some(n) = look() {
        return Poll::Ready(n);
    }
    inbox.rx.register(cx.waker());
    presence.register(cx.waker());
    look().map_or(Poll::Pending, Poll::Ready)
}

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
    // Boxed like an `Interval`'s: its timer entry is pinned.
    let mut ping = Box::pin(tokio::time::sleep(every));
    // The room's broadcasts, once joined.
    let mut cursor = inbox.rx.take_cursor();
    let me = out.key();
    // Where the writer is: own frames taken so far and the ring's last entry taken;
    // presence due by then may be written.
    let mut at = Mark {
        direct: 0,
        ring: cursor.as_ref().map_or(0, |c| c.at().0),
    };
    // The frames being written; swapped with the queue in one lock per batch.
    let mut batch = VecDeque::new();
    loop {
        let next = std::future::poll_fn(|cx| poll_next(cx, out, presence, &inbox, ping.as_mut()));
        let next = tokio::select! {
            biased;
            n = next => n,
            r = ring_ready(&mut cursor) => match r {
                Ok(()) => Next::Frames,
                Err(gone) => {
                    ring_gone(out, &mut cursor, gone);
                    continue;
                }
            },
        };
        let step = match next {
            Next::Close => break,
            Next::Ping => {
                let seen = last_seen.load(Ordering::Relaxed);
                if (started.elapsed().as_millis() as u64).saturating_sub(seen) > idle {
                    svc.stats.dropped(super::stats::reason::IDLE_TIMEOUT);
                    out.close(Farewell {
                        last: None,
                        code: Some(1001),
                        reason: "IDLE_TIMEOUT".into(),
                        why: "idle_timeout",
                    });
                    break;
                }
                // Every `every` from the first, like an `Interval`'s ticks.
                let due = ping.deadline() + every;
                ping.as_mut().reset(due);
                // Boxed: once per ping interval, not worth room in every task.
                Box::pin(unless_closing(
                    out,
                    sink.send(Message::Ping(Default::default())),
                ))
                .await
            }
            Next::Frames => {
                // Woken by the ring alone, the queue is not touched (its lock and
                // counters are shared with the publishers).
                if inbox.rx.ready() {
                    inbox.rx.take_all(&mut batch);
                }
                let mut ring = Ring {
                    cursor: &mut cursor,
                    me,
                    out,
                    presence,
                    stats: &svc.stats,
                };
                // Boxed: its nested feeds are ~0.5 KiB that every idle connection held in
                // its task; allocated only while a batch is written.
                let write = Box::pin(write_batch(
                    &mut sink, &mut batch, &inbox, &mut ring, &mut at,
                ));
                unless_closing(out, write).await
            }
            Next::Presence => {
                let write = async {
                    feed_presence(&mut sink, presence, at, &svc.stats).await?;
                    sink.flush().await
                };
                unless_closing(out, write).await
            }
        };
        match step {
            Step::Written => {}
            Step::Closing => break,
            Step::Failed => {
                out.close(Farewell::write_failed());
                presence.clear();
                return;
            }
        }
    }
    // Closing: no presence is written again (and the room records none from now on).
    presence.clear();
    // Nor the ring: its place would keep the room's entries from being freed (a closed
    // laggard's would pin up to the ring's capacity) for as long as the farewell takes.
    drop(cursor);
    if let Some(f) = out.farewell() {
        // Boxed: the connection's end is not carried by its task while it lives.
        let say = say(&mut sink, f.last, f.code, &f.reason);
        let _ = Box::pin(tokio::time::timeout(FAREWELL_TIMEOUT, say)).await;
    }
}

/// Waits for the room's ring to have an entry (forever before the client joined).
async fn ring_ready(cursor: &mut Option<Cursor>) -> Result<(), Gone> {
    match cursor {
        Some(c) => c.ready().await,
        None => std::future::pending().await,
    }
}

/// The ring has nothing more for this writer: it fell behind past the ring's capacity
/// (closed with 1013, as the room's bound check would have), or the room is gone.
fn ring_gone(out: &Outbox, cursor: &mut Option<Cursor>, gone: Gone) {
    if gone == Gone::Lagged {
        out.slow_consumer();
    }
    *cursor = None;
}

/// Writes a batch taken from the client's queue and the ring's entries, in the order
/// the room made them, with the presence due between them, then flushes.
async fn write_batch<Si>(
    sink: &mut Si,
    batch: &mut VecDeque<Tagged>,
    inbox: &Inbox,
    ring: &mut Ring<'_>,
    at: &mut Mark,
) -> Result<(), WsError>
where
    Si: futures_util::Sink<Message, Error = WsError> + Unpin,
{
    let (mut n, mut bytes): (u64, usize) = (0, 0);
    while let Some((tag, t)) = batch.pop_front() {
        // The broadcasts made before this frame was queued go first.
        n += ring.feed(sink, tag, at).await?;
        feed_presence(sink, ring.presence, *at, ring.stats).await?;
        at.direct += 1;
        bytes += t.len();
        feed_text(sink, t).await?;
        n += 1;
    }
    n += ring.feed(sink, u64::MAX, at).await?;
    // Once per batch: the byte count and the ring's place are shared with the
    // publishers, the counter with every writer.
    if bytes > 0 {
        inbox.rx.batch_written(batch, bytes);
    }
    if let Some(c) = ring.cursor.as_ref() {
        inbox.rx.ring_written(c.at());
    }
    ring.stats.frames_out.inc_by(n);
    feed_presence(sink, ring.presence, *at, ring.stats).await?;
    sink.flush().await
}

/// What writing the ring's entries needs.
struct Ring<'a> {
    cursor: &'a mut Option<Cursor>,
    me: usize,
    out: &'a Outbox,
    presence: &'a Presence,
    stats: &'a Stats,
}

impl Ring<'_> {
    /// Feeds the ring's entries up to `upto` (`seq`) that are for this client, each
    /// after the presence due before it; returns how many. `at.ring` follows.
    async fn feed<Si>(&mut self, sink: &mut Si, upto: u64, at: &mut Mark) -> Result<u64, WsError>
    where
        Si: futures_util::Sink<Message, Error = WsError> + Unpin,
    {
        let mut n = 0;
        while let Some(c) = self.cursor.as_mut() {
            let e = match c.take(upto) {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(gone) => {
                    ring_gone(self.out, self.cursor, gone);
                    break;
                }
            };
            if e.is_for(self.me) {
                feed_presence(sink, self.presence, *at, self.stats).await?;
                feed_text(sink, e.text).await?;
                n += 1;
            }
            at.ring = e.seq;
        }
        Ok(n)
    }
}

/// How one write to the socket ended.
enum Step {
    /// Written (and flushed where the write flushes).
    Written,
    /// The connection started closing first: the farewell follows.
    Closing,
    /// The socket refused it: the connection is gone.
    Failed,
}

/// Runs `write` unless the connection starts closing first.
async fn unless_closing(
    out: &Outbox,
    write: impl std::future::Future<Output = Result<(), WsError>>,
) -> Step {
    if out.is_closing() {
        return Step::Closing;
    }
    // The write first: it nearly always completes at once (into the gather buffer, one
    // socket write), and then the close signal is never registered with.
    tokio::select! {
        biased;
        r = write => if r.is_ok() { Step::Written } else { Step::Failed },
        () = out.closing().cancelled() => Step::Closing,
    }
}

/// Text frames longer than this go out as a fragmented message (RFC 6455 §5.4) of
/// pieces this long: tungstenite's write buffer keeps the capacity of the largest frame
/// it ever held (a `room_state` of 50 participants: ~4 KiB per idle connection), so
/// no frame it holds is longer. Every client library reassembles fragments.
pub const FRAGMENT: usize = 1024;

/// Feeds one text frame, fragmented if it is longer than [`FRAGMENT`].
async fn feed_text<Si>(sink: &mut Si, t: Utf8Bytes) -> Result<(), WsError>
where
    Si: futures_util::Sink<Message, Error = WsError> + Unpin,
{
    if t.len() <= FRAGMENT {
        return sink.feed(Message::Text(t)).await;
    }
    let b = bytes::Bytes::from(t);
    let mut at = 0;
    while at < b.len() {
        let end = (at + FRAGMENT).min(b.len());
        let op = if at == 0 { Data::Text } else { Data::Continue };
        let piece = Frame::message(b.slice(at..end), OpCode::Data(op), end == b.len());
        sink.feed(Message::Frame(piece)).await?;
        at = end;
    }
    Ok(())
}

/// Feeds the client's presence that is due once its frames up to `at` are written.
async fn feed_presence<Si>(
    sink: &mut Si,
    presence: &Presence,
    at: Mark,
    stats: &Stats,
) -> Result<(), WsError>
where
    Si: futures_util::Sink<Message, Error = WsError> + Unpin,
{
    for p in presence.take(at) {
        sink.feed(Message::Text(p)).await?;
        stats.frames_out.inc();
    }
    Ok(())
}

/// Sends an optional last frame and a close frame (no code: the peer sees 1005). If
/// the peer closed first, tungstenite has queued the echo of its Close and refuses
/// anything more (`SendAfterClosing`): then the echo is flushed, and nothing else sent.
async fn say<Si>(
    sink: &mut Si,
    last: Option<Utf8Bytes>,
    code: Option<u16>,
    reason: &str,
) -> Result<(), WsError>
where
    Si: futures_util::Sink<Message, Error = WsError> + Unpin,
{
    let ours = async {
        if let Some(l) = last {
            sink.feed(Message::Text(l)).await?;
        }
        let frame = code.map(|c| CloseFrame {
            code: CloseCode::from(c),
            reason: reason.into(),
        });
        sink.send(Message::Close(frame)).await
    };
    match ours.await {
        Ok(()) | Err(WsError::Protocol(ProtocolError::SendAfterClosing)) => sink.close().await,
        Err(e) => Err(e),
    }
}

/// The conformance endpoint: every text and binary message goes back unchanged,
/// through the rooms' [`reader`](super::reader) (framing, close handshake, close codes)
/// and limits.
pub(super) async fn echo<S>(svc: &Service, ws: WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // The queue is for the close signal only: echoes go through `tx`, one at a time.
    let (out, _inbox) = super::outbox::queue(1, 0, svc.stats.clone());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(1);
    let (mut sink, mut stream) = ws.split();
    let mut echoes = Echoes { svc, out: &out, tx };
    let last_seen = AtomicU64::new(0);
    let reader = read(
        svc,
        &mut stream,
        &out,
        &last_seen,
        Instant::now(),
        &mut echoes,
    );
    let writer = async {
        loop {
            let m = tokio::select! {
                biased;
                () = out.closing().cancelled() => break,
                m = rx.recv() => m,
            };
            let Some(m) = m else { break };
            if sink.send(m).await.is_err() {
                out.close(Farewell::write_failed());
                return;
            }
            svc.stats.frames_out.inc();
        }
        if let Some(f) = out.farewell() {
            let _ =
                tokio::time::timeout(FAREWELL_TIMEOUT, say(&mut sink, f.last, f.code, &f.reason))
                    .await;
        }
    };
    tokio::join!(reader, writer);
    if let Ok(mut ws) = stream.reunite(sink) {
        linger(ws.get_mut()).await;
    }
}

/// `/echo`'s handler: hands each message to the echo writer (waiting for it: the
/// socket's pace is the reader's).
struct Echoes<'a> {
    svc: &'a Service,
    out: &'a Outbox,
    tx: tokio::sync::mpsc::Sender<Message>,
}

impl Handler for Echoes<'_> {
    async fn data(&mut self, msg: Message) -> bool {
        self.svc.stats.frames_in.inc();
        tokio::select! {
            biased;
            () = self.out.closing().cancelled() => false,
            r = self.tx.send(msg) => r.is_ok(),
        }
    }
}

/// Ends a connection that never joined: the close handshake, then the socket.
pub(super) async fn farewell<S>(
    ws: &mut WebSocketStream<S>,
    last: Option<Utf8Bytes>,
    code: Option<u16>,
    reason: &str,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Boxed: a refusal's path takes no room in the task of a connection that joins.
    let _ = Box::pin(tokio::time::timeout(FAREWELL_TIMEOUT, async {
        if say(ws, last, code, reason).await.is_ok() {
            // The peer's Close answers ours.
            while let Some(Ok(m)) = ws.next().await {
                if m.is_close() {
                    break;
                }
            }
        }
    }))
    .await;
    linger(ws.get_mut()).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::fan::{Fan, SKIP};
    use crate::room::presence::Joined;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_batch_keeps_the_rooms_order_of_broadcasts_own_frames_and_presence() {
        let stats = Arc::new(Stats::default());
        let (out, mut inbox) = crate::room::outbox::queue(16, 1 << 20, stats.clone());
        let fan = Arc::new(Fan::new(16));
        out.attach(&fan);
        let presence = Presence::default();
        // What the room did, in this order, before the writer ran.
        fan.send("b1".into(), [0; SKIP]);
        assert!(out.push("d1".into()));
        fan.send("b2, not for it".into(), [out.key(), 0]);
        let who = serde_json::json!({"id": "x", "role": "observer", "label": ""});
        presence.joined(&Joined::new("r", "x", who, None), out.mark());
        fan.send("b3".into(), [0; SKIP]);
        assert!(out.push("d2".into()));
        fan.send("b4".into(), [0; SKIP]);

        let mut cursor = inbox.rx.take_cursor();
        let mut at = Mark::default();
        let mut batch = VecDeque::new();
        inbox.rx.take_all(&mut batch);
        let mut ring = Ring {
            cursor: &mut cursor,
            me: out.key(),
            out: &out,
            presence: &presence,
            stats: &stats,
        };
        let mut sink =
            Vec::new().sink_map_err(|e: std::convert::Infallible| -> WsError { match e {} });
        write_batch(&mut sink, &mut batch, &inbox, &mut ring, &mut at)
            .await
            .unwrap();
        let got: Vec<String> = sink
            .into_inner()
            .into_iter()
            .map(|m| match m {
                Message::Text(t) if t.contains("presence.joined") => "joined x".to_owned(),
                Message::Text(t) => t.to_string(),
                m => panic!("{m:?}"),
            })
            .collect();
        assert_eq!(got, ["b1", "d1", "joined x", "b3", "d2", "b4"]);
        assert_eq!(at, Mark { direct: 2, ring: 4 });
        assert_eq!(out.depth(), (0, 0), "what was written no longer counts");
        assert_eq!(stats.frames_out.get(), 6);
    }
}
