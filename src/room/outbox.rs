//! One client's send queue and close signal: bounded in frames and bytes, filled by
//! whoever publishes (never waiting), drained by the client's writer.

use super::stats::{reason, Stats};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
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
    /// Frames for the writer. Capacity `send_queue_frames`; full: the client is closed
    /// with 1013 and the frame dropped.
    tx: mpsc::Sender<Utf8Bytes>,
    /// Bytes queued; over `max_bytes`: closed with 1013 as above.
    bytes: Arc<AtomicUsize>,
    /// Frames queued so far, ever: where presence falls among them
    /// ([`Presence`](super::presence::Presence)).
    pushed: Arc<AtomicU64>,
    max_bytes: usize,
    /// Cancelled when the connection must end; the writer then sends `farewell`.
    closing: CancellationToken,
    farewell: Arc<Mutex<Option<Farewell>>>,
    stats: Arc<Stats>,
}

/// The writer's half.
#[derive(Debug)]
pub struct Inbox {
    /// Queued frames.
    pub rx: mpsc::Receiver<Utf8Bytes>,
    /// Shared byte count; the writer subtracts what it wrote.
    pub bytes: Arc<AtomicUsize>,
}

/// A new queue.
pub fn queue(frames: usize, max_bytes: usize, stats: Arc<Stats>) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(frames.max(1));
    let bytes = Arc::new(AtomicUsize::new(0));
    (
        Outbox {
            tx,
            bytes: bytes.clone(),
            pushed: Arc::new(AtomicU64::new(0)),
            max_bytes,
            closing: CancellationToken::new(),
            farewell: Arc::new(Mutex::new(None)),
            stats,
        },
        Inbox { rx, bytes },
    )
}

impl Outbox {
    /// Queues a frame without waiting. A full queue closes the client with 1013
    /// (`SLOW_CONSUMER`); returns whether the frame was queued.
    pub fn push(&self, text: Utf8Bytes) -> bool {
        if self.closing.is_cancelled() {
            return false;
        }
        let len = text.len();
        let before = self.bytes.fetch_add(len, Ordering::AcqRel);
        let ok = before + len <= self.max_bytes && self.tx.try_send(text).is_ok();
        if ok {
            self.pushed.fetch_add(1, Ordering::AcqRel);
        } else {
            self.bytes.fetch_sub(len, Ordering::AcqRel);
            if self.close(Farewell {
                last: None,
                code: Some(1013),
                reason: "SLOW_CONSUMER".into(),
                why: "slow_consumer",
            }) {
                self.stats.dropped(reason::SLOW_CONSUMER);
            }
        }
        ok
    }

    /// Frames queued so far (the writer counts the ones it received the same way).
    pub fn pushed(&self) -> u64 {
        self.pushed.load(Ordering::Acquire)
    }

    /// Asks the connection to end with `farewell`. Only the first request counts;
    /// returns whether this one did.
    pub fn close(&self, farewell: Farewell) -> bool {
        let Ok(mut f) = self.farewell.lock() else {
            return false;
        };
        if f.is_some() {
            return false;
        }
        *f = Some(farewell);
        self.closing.cancel();
        true
    }

    /// Cancelled once the connection is closing.
    pub fn closing(&self) -> &CancellationToken {
        &self.closing
    }

    /// The farewell, once set.
    pub fn farewell(&self) -> Option<Farewell> {
        self.farewell.lock().ok().and_then(|f| f.clone())
    }

    /// Bytes that can still be queued before the byte bound is reached.
    pub fn space(&self) -> usize {
        self.max_bytes
            .saturating_sub(self.bytes.load(Ordering::Acquire))
    }

    /// Frames and bytes queued now.
    pub fn depth(&self) -> (usize, usize) {
        (
            self.tx.max_capacity() - self.tx.capacity(),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}
