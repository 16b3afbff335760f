//! One client's send queue and close signal: bounded in frames and bytes, filled by
//! whoever publishes (never waiting), drained by the client's writer.
//!
//! Once the client joined a room, the room's broadcasts come through the room's ring
//! ([`Fan`]) instead, and the bounds count both: the frames and bytes queued here plus
//! how far the writer lags behind the ring. Each frame queued here is tagged with the
//! ring's sequence number at that moment, and the writer writes the ring's entries up to
//! it first: the client gets frames in the order the room made them.

use super::fan::{Cursor, Fan};
use super::stats::{reason, Stats};
use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Waker;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;

/// How a connection ends: optional last frame (an error frame), then a close frame.
#[derive(Debug, Clone)]
pub struct Farewell {
    /// Sent just before the close frame (central's error frame), if any.
    pub last: Option<Utf8Bytes>,
    /// Close code; `None` sends a close frame without a code (the peer sees 1005).
    pub code: Option<u16>,
    /// Close reason (a JSON string for 4xxx codes, like central).
    pub reason: String,
    /// Why, for logs and the `client:disconnected` event.
    pub why: &'static str,
}

impl Farewell {
    /// The socket refused a write: the peer is gone, so nothing more is said.
    pub fn write_failed() -> Farewell {
        Farewell {
            last: None,
            code: None,
            reason: String::new(),
            why: "write_failed",
        }
    }
}

/// A place in a client's stream of frames: its own frames (queued here) and the ring's
/// entries, each counted so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mark {
    /// Frames of its own queued (or written) so far.
    pub direct: u64,
    /// The ring's last entry (its `seq`) sent (or taken) so far.
    pub ring: u64,
}

impl Mark {
    /// Past everything.
    pub const END: Mark = Mark {
        direct: u64::MAX,
        ring: u64::MAX,
    };

    /// Own frames only (no ring): tests.
    #[cfg(test)]
    pub const fn direct(n: u64) -> Mark {
        Mark { direct: n, ring: 0 }
    }

    /// Whether a writer at `at` has written everything before this mark.
    pub fn reached_by(self, at: Mark) -> bool {
        at.direct >= self.direct && at.ring >= self.ring
    }
}

/// The publisher's handle on a client's queue. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
    stats: Arc<Stats>,
}

/// One allocation per connection for the queue and its close signal. The queue is a
/// `VecDeque` that grows on demand (an idle client holds a few slots, not the first
/// 32-slot block and channel that `tokio::sync::mpsc` allocates up front: ~1.5 KiB per
/// connection, measured with heaptrack).
#[derive(Debug)]
struct Shared {
    /// Frames for the writer, each with the ring's `seq` when it was queued. With the
    /// ring's lag at most `max_frames`; full: the client is closed with 1013 and the
    /// frame dropped.
    queue: Mutex<VecDeque<Tagged>>,
    /// The writer, woken by the first frame into an empty queue and by `close` (two
    /// atomic operations; a `Notify` takes a mutex to wait and another to stop waiting,
    /// and the writer used to wait on three of them per wake-up).
    writer: AtomicWaker,
    max_frames: usize,
    /// Bytes queued; over `max_bytes`: closed with 1013 as above.
    bytes: AtomicUsize,
    max_bytes: usize,
    /// Frames queued so far, ever: where presence falls among them
    /// ([`Presence`](super::presence::Presence)).
    pushed: AtomicU64,
    /// Cancelled when the connection must end; the writer then sends `farewell`.
    closing: CancellationToken,
    /// Set with `closing`, read on the hot path: `CancellationToken::is_cancelled`
    /// takes a mutex, and every delivery asked it twice (perf: 5.9 % of the hub's CPU).
    closed: AtomicBool,
    farewell: Mutex<Option<Farewell>>,
    /// The room's ring, once joined.
    fan: OnceLock<Arc<Fan>>,
    /// The writer's place in it, until the writer takes it.
    cursor: Mutex<Option<Cursor>>,
    /// Where the writer is in the ring (`seq`, `cum`), published once per batch.
    ring_seq: AtomicU64,
    ring_cum: AtomicU64,
    /// Frames the writer took from the queue so far (with `pushed`: how many wait).
    taken: AtomicU64,
}

/// A queued frame: the ring's `seq` when it was queued, and the frame.
pub type Tagged = (u64, Utf8Bytes);

/// Queue capacity (frames) kept once the queue is empty (`try_recv`); more is freed.
#[cfg(test)]
const KEEP_SLOTS: usize = 64;
/// The writer's batch capacity (frames) kept between batches; more is freed. The queue
/// and the batch swap buffers, so this bounds both for an idle connection.
const KEEP_BATCH: usize = 16;

impl Shared {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Tagged>> {
        // Plain values: usable after a panic elsewhere.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The ring's last `seq` (0 before the client joined a room).
    fn ring_now(&self) -> u64 {
        self.fan.get().map_or(0, |f| f.seq())
    }

    fn ring_written(&self, at: (u64, u64)) {
        self.ring_cum.store(at.1, Ordering::Release);
        self.ring_seq.store(at.0, Ordering::Release);
    }

    /// How far the writer lags behind the ring: (entries, bytes).
    fn ring_lag(&self) -> (usize, usize) {
        self.fan.get().map_or((0, 0), |f| {
            let frames = f
                .seq()
                .saturating_sub(self.ring_seq.load(Ordering::Acquire));
            let bytes = f
                .cum()
                .saturating_sub(self.ring_cum.load(Ordering::Acquire));
            (
                usize::try_from(frames).unwrap_or(usize::MAX),
                usize::try_from(bytes).unwrap_or(usize::MAX),
            )
        })
    }
}

/// The writer's half.
#[derive(Debug)]
pub struct Inbox {
    /// Queued frames.
    pub rx: Receiver,
}

/// Takes queued frames, oldest first.
#[derive(Debug)]
pub struct Receiver {
    shared: Arc<Shared>,
    /// Frames taken so far (compared with `pushed`: is anything queued, without the lock).
    taken: u64,
}

/// The queue is empty (for now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Empty;

impl Receiver {
    /// The next frame, waiting for one (tests; the writer takes batches: `take_all`).
    #[cfg(test)]
    pub async fn recv(&mut self) -> Option<Utf8Bytes> {
        use std::task::Poll;
        std::future::poll_fn(|cx| {
            if let Ok(t) = self.try_recv() {
                return Poll::Ready(Some(t));
            }
            self.register(cx.waker());
            // A push after the failed take and before the registration woke nobody.
            self.try_recv()
                .map_or(Poll::Pending, |t| Poll::Ready(Some(t)))
        })
        .await
    }

    /// The next frame if one is queued (tests).
    #[cfg(test)]
    pub fn try_recv(&mut self) -> Result<Utf8Bytes, Empty> {
        let mut q = self.shared.queue();
        let (_, t) = q.pop_front().ok_or(Empty)?;
        self.taken += 1;
        self.shared.taken.store(self.taken, Ordering::Release);
        if q.is_empty() && q.capacity() > KEEP_SLOTS {
            *q = VecDeque::new();
        }
        Ok(t)
    }

    /// Wakes `waker` for the first frame into an empty queue and when the connection
    /// starts closing. Look again after registering: what came before it woke nobody.
    pub fn register(&self, waker: &Waker) {
        self.shared.writer.register(waker);
    }

    /// Whether frames are queued that were not taken yet: two atomic loads, no lock.
    pub fn ready(&self) -> bool {
        self.shared.pushed.load(Ordering::Acquire) > self.taken
    }

    /// Every queued frame, in one lock: the queue is swapped with `batch` (which must
    /// be empty; its capacity is the queue's from now on).
    pub fn take_all(&mut self, batch: &mut VecDeque<Tagged>) {
        debug_assert!(batch.is_empty());
        std::mem::swap(&mut *self.shared.queue(), batch);
        self.taken += batch.len() as u64;
        self.shared.taken.store(self.taken, Ordering::Release);
    }

    /// `len` bytes of a taken frame were written: they no longer count against the
    /// byte bound (the writer says so once per batch, in [`Self::batch_written`]).
    fn written(&self, len: usize) {
        self.shared.bytes.fetch_sub(len, Ordering::AcqRel);
    }

    /// A taken batch was written (`batch` is empty again): its `bytes` no longer count,
    /// and a burst's capacity is freed, so an idle writer keeps at most
    /// [`KEEP_BATCH`] slots (the queue gets this buffer at the next `take_all`).
    pub fn batch_written(&self, batch: &mut VecDeque<Tagged>, bytes: usize) {
        self.written(bytes);
        if batch.capacity() > KEEP_BATCH {
            *batch = VecDeque::new();
        }
    }

    /// The writer's place in the room's ring, once the client joined (taken once).
    pub fn take_cursor(&self) -> Option<Cursor> {
        self.shared
            .cursor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// The writer took the ring's entries up to `at` (`seq`, `cum`): they no longer
    /// count against the bounds.
    pub fn ring_written(&self, at: (u64, u64)) {
        self.shared.ring_written(at);
    }
}

/// A new queue.
pub fn queue(frames: usize, max_bytes: usize, stats: Arc<Stats>) -> (Outbox, Inbox) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(VecDeque::new()),
        writer: AtomicWaker::new(),
        max_frames: frames.max(1),
        bytes: AtomicUsize::new(0),
        max_bytes,
        pushed: AtomicU64::new(0),
        closing: CancellationToken::new(),
        closed: AtomicBool::new(false),
        farewell: Mutex::new(None),
        fan: OnceLock::new(),
        cursor: Mutex::new(None),
        ring_seq: AtomicU64::new(0),
        ring_cum: AtomicU64::new(0),
        taken: AtomicU64::new(0),
    });
    (
        Outbox {
            shared: shared.clone(),
            stats,
        },
        Inbox {
            rx: Receiver { shared, taken: 0 },
        },
    )
}

impl Outbox {
    /// Queues a frame without waiting. A full queue closes the client with 1013
    /// (`SLOW_CONSUMER`); returns whether the frame was queued.
    pub fn push(&self, text: Utf8Bytes) -> bool {
        let s = &*self.shared;
        if s.closed.load(Ordering::Acquire) {
            return false;
        }
        let len = text.len();
        let before = s.bytes.fetch_add(len, Ordering::AcqRel);
        // (queued, the queue was empty): a writer only waits on an empty queue, so only
        // the first frame after it needs to wake it.
        let (lag_frames, lag_bytes) = s.ring_lag();
        let (ok, first) = if before.saturating_add(len).saturating_add(lag_bytes) <= s.max_bytes {
            let mut q = s.queue();
            let room = q.len().saturating_add(lag_frames) < s.max_frames;
            let first = q.is_empty();
            if room {
                q.push_back((s.ring_now(), text));
            }
            (room, first)
        } else {
            (false, false)
        };
        if ok {
            s.pushed.fetch_add(1, Ordering::AcqRel);
            if first {
                s.writer.wake();
            }
            return true;
        }
        s.bytes.fetch_sub(len, Ordering::AcqRel);
        self.slow_consumer();
        false
    }

    /// Closes the client with 1013 (`SLOW_CONSUMER`), counted once.
    pub fn slow_consumer(&self) {
        if self.close(Farewell {
            last: None,
            code: Some(1013),
            reason: "SLOW_CONSUMER".into(),
            why: "slow_consumer",
        }) {
            self.stats.dropped(reason::SLOW_CONSUMER);
        }
    }

    /// This client's identity in the room's ring ([`Fan::send`]'s `skip`): never 0.
    pub fn key(&self) -> usize {
        Arc::as_ptr(&self.shared) as usize
    }

    /// The client joins a room: its writer reads the room's ring from now on. Called
    /// under the room's lock (the ring is sent to only under it).
    pub fn attach(&self, fan: &Arc<Fan>) {
        let s = &*self.shared;
        if s.fan.set(fan.clone()).is_err() {
            return;
        }
        let cursor = fan.subscribe();
        s.ring_written(cursor.at());
        *s.cursor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(cursor);
    }

    /// After a broadcast through the ring: a client whose writer lags past the bounds
    /// (its own queue plus the ring) is closed with 1013, as a full queue is. A writer
    /// stuck on a full socket never reads the ring to find out itself.
    pub fn check_lag(&self) {
        let s = &*self.shared;
        if s.closed.load(Ordering::Acquire) {
            return;
        }
        let (lag_frames, lag_bytes) = s.ring_lag();
        let queued = s
            .pushed
            .load(Ordering::Acquire)
            .saturating_sub(s.taken.load(Ordering::Acquire));
        let frames = usize::try_from(queued).unwrap_or(usize::MAX);
        let bytes = s.bytes.load(Ordering::Acquire);
        if frames.saturating_add(lag_frames) > s.max_frames
            || bytes.saturating_add(lag_bytes) > s.max_bytes
        {
            self.slow_consumer();
        }
    }

    /// Where the client's stream is now: its own frames queued so far, and the ring's
    /// last entry (the writer counts what it wrote the same way).
    pub fn mark(&self) -> Mark {
        Mark {
            direct: self.shared.pushed.load(Ordering::Acquire),
            ring: self.shared.ring_now(),
        }
    }

    /// Asks the connection to end with `farewell`. Only the first request counts;
    /// returns whether this one did.
    pub fn close(&self, farewell: Farewell) -> bool {
        let Ok(mut f) = self.shared.farewell.lock() else {
            return false;
        };
        if f.is_some() {
            return false;
        }
        *f = Some(farewell);
        self.shared.closed.store(true, Ordering::Release);
        self.shared.closing.cancel();
        self.shared.writer.wake();
        true
    }

    /// Whether the connection is closing: one atomic load (what `closing()` says,
    /// without its lock).
    pub fn is_closing(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Cancelled once the connection is closing.
    pub fn closing(&self) -> &CancellationToken {
        &self.shared.closing
    }

    /// The farewell, once set.
    pub fn farewell(&self) -> Option<Farewell> {
        self.shared.farewell.lock().ok().and_then(|f| f.clone())
    }

    /// Bytes that can still be queued before the byte bound is reached.
    pub fn space(&self) -> usize {
        let s = &*self.shared;
        s.max_bytes
            .saturating_sub(s.bytes.load(Ordering::Acquire))
            .saturating_sub(s.ring_lag().1)
    }

    /// Frames and bytes queued now (its own and the ring's it has not taken).
    pub fn depth(&self) -> (usize, usize) {
        let s = &*self.shared;
        let (lag_frames, lag_bytes) = s.ring_lag();
        (
            s.queue().len().saturating_add(lag_frames),
            s.bytes.load(Ordering::Relaxed).saturating_add(lag_bytes),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Utf8Bytes {
        "x".repeat(n).into()
    }

    #[tokio::test]
    async fn the_frame_bound_closes_a_slow_consumer_with_1013_and_keeps_the_order() {
        let stats = Arc::new(Stats::default());
        let (out, mut inbox) = queue(3, 1 << 20, stats.clone());
        for i in 0..3 {
            assert!(out.push(format!("{i}").into()));
        }
        assert_eq!(out.depth(), (3, 3));
        assert!(
            !out.push(frame(1)),
            "the fourth frame is over send_queue_frames"
        );
        let f = out.farewell().expect("closing");
        assert_eq!((f.code, f.why), (Some(1013), "slow_consumer"));
        assert_eq!(stats.drops_of(reason::SLOW_CONSUMER), 1);
        for i in 0..3 {
            let t = inbox.rx.recv().await.expect("queued");
            assert_eq!(t.as_str(), format!("{i}"));
            inbox.rx.written(t.len());
        }
        assert_eq!(inbox.rx.try_recv(), Err(Empty));
        assert_eq!(out.depth(), (0, 0));
    }

    #[test]
    fn a_mark_is_reached_once_both_its_frames_and_the_rings_are_written() {
        let m = Mark { direct: 2, ring: 5 };
        assert!(!m.reached_by(Mark { direct: 2, ring: 4 }));
        assert!(!m.reached_by(Mark { direct: 1, ring: 9 }));
        assert!(m.reached_by(Mark { direct: 2, ring: 5 }));
        assert!(m.reached_by(Mark::END));
    }

    #[tokio::test]
    async fn the_bounds_count_the_rings_lag_and_close_a_laggard_with_1013() {
        use crate::room::fan::{Fan, SKIP};
        let stats = Arc::new(Stats::default());
        let (out, inbox) = queue(3, 100, stats.clone());
        let fan = Arc::new(Fan::new(3));
        out.attach(&fan);
        for _ in 0..2 {
            fan.send(frame(10), [0; SKIP]);
            out.check_lag();
        }
        assert_eq!(
            out.depth(),
            (2, 20),
            "the ring's entries not yet taken count"
        );
        assert_eq!(out.space(), 80);
        assert_eq!(out.mark(), Mark { direct: 0, ring: 2 });
        assert!(out.push(frame(1)), "a third frame fits");
        assert_eq!(out.mark(), Mark { direct: 1, ring: 2 });
        assert!(!out.push(frame(1)), "a fourth does not");
        assert_eq!(
            out.farewell().map(|f| (f.code, f.why)),
            Some((Some(1013), "slow_consumer"))
        );
        assert_eq!(stats.drops_of(reason::SLOW_CONSUMER), 1);

        // The writer took the ring's entries: they no longer count.
        let (out, inbox2) = queue(3, 100, stats.clone());
        out.attach(&fan);
        let mut ring = inbox2.rx.take_cursor().expect("attached");
        for _ in 0..3 {
            fan.send(frame(10), [0; SKIP]);
            out.check_lag();
        }
        while ring.take(u64::MAX).unwrap().is_some() {}
        inbox2.rx.ring_written(ring.at());
        assert_eq!(out.depth(), (0, 0));
        fan.send(frame(10), [0; SKIP]);
        out.check_lag();
        assert!(!out.is_closing(), "one entry behind");
        // A writer stuck on its socket: entries pile up past the bound in bytes.
        let (out, _inbox3) = queue(100, 25, stats.clone());
        out.attach(&fan);
        for _ in 0..2 {
            fan.send(frame(10), [0; SKIP]);
            out.check_lag();
        }
        assert!(!out.is_closing(), "20 bytes behind");
        fan.send(frame(10), [0; SKIP]);
        out.check_lag();
        assert_eq!(
            out.farewell().map(|f| f.code),
            Some(Some(1013)),
            "30 bytes behind"
        );
        assert_eq!(stats.drops_of(reason::SLOW_CONSUMER), 2);
        drop(inbox);
    }

    #[tokio::test]
    async fn the_byte_bound_closes_too() {
        let (out, _inbox) = queue(100, 10, Arc::new(Stats::default()));
        assert!(out.push(frame(6)));
        assert!(!out.push(frame(6)), "12 bytes are over send_queue_bytes");
        assert_eq!(out.farewell().map(|f| f.code), Some(Some(1013)));
        assert_eq!(out.space(), 4);
    }

    #[tokio::test]
    async fn a_waiting_writer_wakes_for_a_push_and_a_drained_burst_frees_its_slots() {
        let (out, mut inbox) = queue(1000, 1 << 20, Arc::new(Stats::default()));
        let waiting = tokio::spawn(async move {
            let t = inbox.rx.recv().await;
            (t, inbox)
        });
        tokio::task::yield_now().await;
        assert!(out.push(frame(1)));
        let (t, mut inbox) = waiting.await.expect("writer");
        assert_eq!(t.map(|t| t.len()), Some(1));
        inbox.rx.written(1);
        for _ in 0..500 {
            assert!(out.push(frame(1)));
        }
        assert!(out.shared.queue().capacity() >= 500);
        // The writer's path: the burst taken in one swap, written, its buffer freed.
        let mut batch = VecDeque::new();
        inbox.rx.take_all(&mut batch);
        assert_eq!(batch.len(), 500);
        batch.clear();
        inbox.rx.batch_written(&mut batch, 500);
        assert_eq!(
            batch.capacity(),
            0,
            "the writer keeps no slots from a burst"
        );
        assert_eq!(out.depth(), (0, 0));
        assert_eq!(
            out.shared.queue().capacity(),
            0,
            "an idle client keeps no slots from a burst"
        );
    }
}
