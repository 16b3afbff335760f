//! A room's broadcast ring: a frame for (nearly) everyone is sent once, into one ring
//! every client's writer reads at its own cursor, instead of once into each client's
//! queue ([`Outbox`](super::outbox::Outbox)).
//!
//! Measured side by side (docs/PERFORMANCE.md, "fourth session"): pushing into 100
//! queues woke 100 writers one by one, and with two runtime workers each wake-up let the
//! other worker preempt the reader on its own vCPU to write one frame: two context
//! switches per delivery. tokio's `broadcast`, which the bare loop uses, wakes its
//! waiters without that; so the ring is a tokio `broadcast`.
//!
//! Each entry carries the ring's sequence number (a client's own frames are tagged with
//! it, so the writer keeps the order the room made), a running byte count (the lag
//! bound in bytes) and the clients it is not for (the sender; at most [`SKIP`]).

use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Clients an entry may leave out; a broadcast leaving out more goes client by client.
pub const SKIP: usize = 2;

/// One broadcast.
#[derive(Debug, Clone)]
pub struct Entry {
    /// 1 for the room's first broadcast, then one more each.
    pub seq: u64,
    /// Bytes of every broadcast up to and including this one.
    pub cum: u64,
    /// Keys ([`Outbox::key`](super::outbox::Outbox::key)) of the clients it is not
    /// for; 0: none.
    skip: [usize; SKIP],
    /// The frame.
    pub text: Utf8Bytes,
}

impl Entry {
    /// Whether the client with key `key` is to get it.
    pub fn is_for(&self, key: usize) -> bool {
        !self.skip.contains(&key)
    }
}

/// The ring. Sent to under the room's lock only, so `seq` and the ring agree.
#[derive(Debug)]
pub struct Fan {
    tx: broadcast::Sender<Entry>,
    /// The last entry's `seq` (0: none yet).
    seq: AtomicU64,
    /// The last entry's `cum`.
    cum: AtomicU64,
}

/// Why the ring has nothing more for a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// The reader fell more than the ring's capacity behind (the room's own bound
    /// check normally closes it first).
    Lagged,
    /// The room is gone.
    Closed,
}

impl Fan {
    /// A ring for a room whose clients may lag `max_frames` behind (the ring holds more:
    /// the room's own check, not the ring, decides when a client is too slow).
    pub fn new(max_frames: usize) -> Fan {
        Fan {
            tx: broadcast::channel(max_frames.saturating_add(1).max(2)).0,
            seq: AtomicU64::new(0),
            cum: AtomicU64::new(0),
        }
    }

    /// The last entry's `seq`.
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// The last entry's `cum`.
    pub fn cum(&self) -> u64 {
        self.cum.load(Ordering::Acquire)
    }

    /// Broadcasts `text` to every reader but those with a key in `skip`. The caller
    /// holds the room's lock.
    pub fn send(&self, text: Utf8Bytes, skip: [usize; SKIP]) {
        let seq = self.seq.load(Ordering::Relaxed) + 1;
        let cum = self.cum.load(Ordering::Relaxed) + text.len() as u64;
        self.cum.store(cum, Ordering::Release);
        self.seq.store(seq, Ordering::Release);
        // No reader: nobody to tell.
        let _ = self.tx.send(Entry {
            seq,
            cum,
            skip,
            text,
        });
    }

    /// A reader of every entry sent from now on. The caller holds the room's lock.
    pub fn subscribe(&self) -> Cursor {
        Cursor {
            rx: self.tx.subscribe(),
            peek: None,
            seq: self.seq(),
            cum: self.cum(),
        }
    }
}

/// A writer's place in the ring.
#[derive(Debug)]
pub struct Cursor {
    rx: broadcast::Receiver<Entry>,
    /// An entry read but not yet due (it follows a frame of the client's own).
    peek: Option<Entry>,
    /// The last entry taken (`seq`, `cum`).
    seq: u64,
    cum: u64,
}

impl Cursor {
    /// The last entry taken: its `seq` and `cum` (where the reader is).
    pub fn at(&self) -> (u64, u64) {
        (self.seq, self.cum)
    }

    /// Waits until an entry can be taken; cancel-safe (what it read stays for
    /// [`Self::take`]).
    pub async fn ready(&mut self) -> Result<(), Gone> {
        if self.peek.is_none() {
            let e = self.rx.recv().await.map_err(gone)?;
            self.peek = Some(e);
        }
        Ok(())
    }

    /// The next entry if there is one and its `seq` is at most `upto`.
    pub fn take(&mut self, upto: u64) -> Result<Option<Entry>, Gone> {
        let e = match self.peek.take() {
            Some(e) => e,
            None => match self.rx.try_recv() {
                Ok(e) => e,
                Err(broadcast::error::TryRecvError::Empty) => return Ok(None),
                Err(broadcast::error::TryRecvError::Lagged(_)) => return Err(Gone::Lagged),
                Err(broadcast::error::TryRecvError::Closed) => return Err(Gone::Closed),
            },
        };
        if e.seq > upto {
            self.peek = Some(e);
            return Ok(None);
        }
        self.seq = e.seq;
        self.cum = e.cum;
        Ok(Some(e))
    }
}

fn gone(e: broadcast::error::RecvError) -> Gone {
    match e {
        broadcast::error::RecvError::Lagged(_) => Gone::Lagged,
        broadcast::error::RecvError::Closed => Gone::Closed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reader_takes_entries_in_order_up_to_a_mark_and_keeps_the_rest() {
        let fan = Fan::new(8);
        fan.send("before".into(), [0; SKIP]);
        let mut c = fan.subscribe();
        assert_eq!(c.at(), (1, 6), "it starts where the ring is");
        fan.send("a".into(), [7, 0]);
        fan.send("bb".into(), [0; SKIP]);
        c.ready().await.unwrap();
        let a = c.take(2).unwrap().unwrap();
        assert_eq!((a.seq, a.cum, a.text.as_str()), (2, 7, "a"));
        assert!(!a.is_for(7) && a.is_for(8));
        assert!(c.take(2).unwrap().is_none(), "entry 3 is past the mark");
        assert_eq!(c.at(), (2, 7));
        let b = c.take(u64::MAX).unwrap().unwrap();
        assert_eq!((b.seq, b.cum), (3, 9));
        assert!(c.take(u64::MAX).unwrap().is_none());
    }

    #[tokio::test]
    async fn a_reader_past_the_rings_capacity_is_told() {
        let fan = Fan::new(1);
        let mut c = fan.subscribe();
        for _ in 0..3 {
            fan.send("x".into(), [0; SKIP]);
        }
        assert_eq!(c.take(u64::MAX).unwrap_err(), Gone::Lagged);
    }
}
