//! One client's send queue and close signal: bounded in frames and bytes, filled by
//! whoever publishes (never waiting), drained by the client's writer.

use super::stats::{reason, Stats};
use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    /// Frames for the writer. At most `max_frames`; full: the client is closed with
    /// 1013 and the frame dropped.
    queue: Mutex<VecDeque<Utf8Bytes>>,
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
}

/// Queue capacity (frames) kept once the queue is empty (`try_recv`); more is freed.
#[cfg(test)]
const KEEP_SLOTS: usize = 64;
/// The writer's batch capacity (frames) kept between batches; more is freed. The queue
/// and the batch swap buffers, so this bounds both for an idle connection.
const KEEP_BATCH: usize = 16;

impl Shared {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Utf8Bytes>> {
        // Plain values: usable after a panic elsewhere.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        let t = q.pop_front().ok_or(Empty)?;
        self.taken += 1;
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
    pub fn take_all(&mut self, batch: &mut VecDeque<Utf8Bytes>) {
        debug_assert!(batch.is_empty());
        std::mem::swap(&mut *self.shared.queue(), batch);
        self.taken += batch.len() as u64;
    }

    /// `len` bytes of a taken frame were written: they no longer count against the
    /// byte bound (the writer says so once per batch, in [`Self::batch_written`]).
    fn written(&self, len: usize) {
        self.shared.bytes.fetch_sub(len, Ordering::AcqRel);
    }

    /// A taken batch was written (`batch` is empty again): its `bytes` no longer count,
    /// and a burst's capacity is freed, so an idle writer keeps at most
    /// [`KEEP_BATCH`] slots (the queue gets this buffer at the next `take_all`).
    pub fn batch_written(&self, batch: &mut VecDeque<Utf8Bytes>, bytes: usize) {
        self.written(bytes);
        if batch.capacity() > KEEP_BATCH {
            *batch = VecDeque::new();
        }
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
        let (ok, first) = if before + len <= s.max_bytes {
            let mut q = s.queue();
            let room = q.len() < s.max_frames;
            let first = q.is_empty();
            if room {
                q.push_back(text);
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
        if self.close(Farewell {
            last: None,
            code: Some(1013),
            reason: "SLOW_CONSUMER".into(),
            why: "slow_consumer",
        }) {
            self.stats.dropped(reason::SLOW_CONSUMER);
        }
        false
    }

    /// Frames queued so far (the writer counts the ones it received the same way).
    pub fn pushed(&self) -> u64 {
        self.shared.pushed.load(Ordering::Acquire)
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
        self.shared
            .max_bytes
            .saturating_sub(self.shared.bytes.load(Ordering::Acquire))
    }

    /// Frames and bytes queued now.
    pub fn depth(&self) -> (usize, usize) {
        (
            self.shared.queue().len(),
            self.shared.bytes.load(Ordering::Relaxed),
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
