//! The link's protocol core, free of I/O: what to send next, when to ping, which outbox
//! entries a pong confirms, which acks have expired. The I/O loop ([`super::session`])
//! asks it and does what it says; tests drive it with plain `Instant`s.
//!
//! Delivery rule for outbox frames: an entry is sent, then counts as delivered only
//! when a WebSocket ping sent *after* it is answered. Central processes frames in
//! order of arrival on one TCP stream, so a pong proves everything written before the
//! ping reached it. Until then the entry stays on flash and a reconnect sends it again
//! (at-least-once, same `id`).

use super::budget::Budget;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Frames kept in memory for the live connection (acks, status, preview, the connect
/// event). Beyond it the oldest is dropped and counted: these are worthless late.
pub const URGENT_CAPACITY: usize = 256;

/// After an outbox frame is written, ping within this long so it is confirmed (and
/// leaves the outbox) without waiting a whole `ping_interval`.
pub const CONFIRM_WITHIN: Duration = Duration::from_secs(1);

/// What kind of in-memory frame this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrgentKind {
    /// A command's ack; dropped at its deadline.
    Ack,
    /// bbedge's merged status; only the latest is kept.
    Status,
    /// A `preview.*` frame.
    Preview,
    /// A per-connection event (`device.connected`).
    Event,
}

/// A frame for the live connection only.
#[derive(Debug, Clone, PartialEq)]
pub struct Urgent {
    /// The kind.
    pub kind: UrgentKind,
    /// JSON text.
    pub frame: String,
    /// Dropped (and counted) if not sent by then.
    pub expires: Option<Instant>,
}

/// A ping in flight and the outbox entries it will confirm.
#[derive(Debug, Clone)]
struct PingOut {
    seq: u64,
    sent: Instant,
    confirms: Vec<u64>,
}

/// Counters the core keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Acks whose command deadline passed before they could be sent.
    pub ack_expired: u64,
    /// In-memory frames dropped because [`URGENT_CAPACITY`] was reached.
    pub urgent_overflow: u64,
}

/// Per-connection state.
#[derive(Debug)]
pub struct Core {
    /// The rate budget every frame takes a slot from.
    pub budget: Budget,
    urgent: VecDeque<Urgent>,
    /// Last outbox sequence written on this connection (replay starts from the oldest).
    cursor: Option<u64>,
    /// Outbox entries written since the last ping.
    unconfirmed: Vec<u64>,
    ping: Option<PingOut>,
    ping_seq: u64,
    next_ping: Instant,
    confirm_by: Option<Instant>,
    next_status: Instant,
    ping_interval: Duration,
    pong_timeout: Duration,
    status_interval: Duration,
    /// Drop counters.
    pub dropped: Dropped,
}

impl Core {
    /// State for a connection acknowledged at `now`.
    pub fn new(
        now: Instant,
        budget: Budget,
        ping_interval: Duration,
        pong_timeout: Duration,
        status_interval: Duration,
    ) -> Self {
        Self {
            budget,
            urgent: VecDeque::new(),
            cursor: None,
            unconfirmed: Vec::new(),
            ping: None,
            ping_seq: 0,
            next_ping: now + ping_interval,
            confirm_by: None,
            next_status: now + status_interval,
            ping_interval,
            pong_timeout,
            status_interval,
            dropped: Dropped::default(),
        }
    }

    /// Queues a live frame. A new status replaces a queued one.
    pub fn push(&mut self, u: Urgent) {
        if u.kind == UrgentKind::Status {
            self.urgent.retain(|q| q.kind != UrgentKind::Status);
        }
        if self.urgent.len() >= URGENT_CAPACITY {
            self.urgent.pop_front();
            self.dropped.urgent_overflow += 1;
        }
        self.urgent.push_back(u);
    }

    /// The next live frame to send, dropping expired ones.
    pub fn pop_urgent(&mut self, now: Instant) -> Option<Urgent> {
        while let Some(u) = self.urgent.pop_front() {
            match u.expires {
                Some(t) if t <= now => {
                    if u.kind == UrgentKind::Ack {
                        self.dropped.ack_expired += 1;
                    }
                }
                _ => return Some(u),
            }
        }
        None
    }

    /// Whether live frames wait.
    pub fn has_urgent(&self) -> bool {
        !self.urgent.is_empty()
    }

    /// Where replay stands.
    pub fn cursor(&self) -> Option<u64> {
        self.cursor
    }

    /// An outbox entry was written to the socket at `now`.
    pub fn sent_outbox(&mut self, seq: u64, now: Instant) {
        self.cursor = Some(seq);
        self.unconfirmed.push(seq);
        if self.confirm_by.is_none() {
            self.confirm_by = Some(now + CONFIRM_WITHIN);
        }
    }

    /// Steps over an outbox entry that is not sent on this connection.
    pub fn skip(&mut self, seq: u64) {
        self.cursor = Some(seq);
    }

    /// A ping to send now, if one is due and none is in flight: its payload sequence.
    pub fn ping_due(&mut self, now: Instant) -> Option<u64> {
        if self.ping.is_some() {
            return None;
        }
        let due = now >= self.next_ping || self.confirm_by.is_some_and(|t| now >= t);
        if !due {
            return None;
        }
        self.ping_seq += 1;
        self.ping = Some(PingOut {
            seq: self.ping_seq,
            sent: now,
            confirms: std::mem::take(&mut self.unconfirmed),
        });
        self.next_ping = now + self.ping_interval;
        self.confirm_by = None;
        Some(self.ping_seq)
    }

    /// A pong arrived: returns the outbox entries it confirms (empty if it does not
    /// answer the ping in flight).
    pub fn on_pong(&mut self, seq: u64) -> Vec<u64> {
        match self.ping.take() {
            Some(p) if p.seq == seq => {
                if !self.unconfirmed.is_empty() && self.confirm_by.is_none() {
                    self.confirm_by = Some(p.sent + CONFIRM_WITHIN);
                }
                p.confirms
            }
            other => {
                self.ping = other;
                Vec::new()
            }
        }
    }

    /// No pong within `pong_timeout`: the link is dead or half-open.
    pub fn dead(&self, now: Instant) -> bool {
        self.ping
            .as_ref()
            .is_some_and(|p| now.saturating_duration_since(p.sent) >= self.pong_timeout)
    }

    /// Whether a status frame is due at `now`; if so the next one is scheduled.
    pub fn status_due(&mut self, now: Instant) -> bool {
        if now >= self.next_status {
            self.next_status = now + self.status_interval;
            true
        } else {
            false
        }
    }

    /// When the loop must wake next if nothing arrives. `pending` says whether frames
    /// wait for a budget slot.
    pub fn next_wake(&self, now: Instant, pending: bool) -> Instant {
        let mut t = self.next_status.min(self.next_ping);
        if let Some(c) = self.confirm_by {
            t = t.min(c);
        }
        if let Some(p) = &self.ping {
            t = t.min(p.sent + self.pong_timeout);
        }
        if pending {
            t = t.min(self.budget.ready_at(now));
        }
        t.max(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core(now: Instant) -> Core {
        Core::new(
            now,
            Budget::new(8, Duration::from_secs(1)),
            Duration::from_secs(20),
            Duration::from_secs(30),
            Duration::from_secs(20),
        )
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_entry_is_confirmed_only_by_a_ping_sent_after_it() {
        let t0 = Instant::now();
        let mut c = core(t0);
        c.sent_outbox(1, t0);
        assert_eq!(c.ping_due(t0 + ms(500)), None, "not due yet");
        let p = c.ping_due(t0 + CONFIRM_WITHIN).expect("confirm ping");
        c.sent_outbox(2, t0 + ms(1100)); // written after the ping
        assert_eq!(
            c.on_pong(p + 99),
            Vec::<u64>::new(),
            "a stray pong confirms nothing"
        );
        assert_eq!(c.on_pong(p), vec![1]);
        let p2 = c.ping_due(t0 + ms(2100)).expect("second confirm ping");
        assert_eq!(c.on_pong(p2), vec![2]);
    }

    #[test]
    fn no_pong_within_the_timeout_means_dead() {
        let t0 = Instant::now();
        let mut c = core(t0);
        let table = [
            (19_000, false),
            (20_000, false),
            (49_999, false),
            (50_000, true),
        ];
        let mut pinged = false;
        for (at, dead) in table {
            let now = t0 + ms(at);
            if !pinged && c.ping_due(now).is_some() {
                pinged = true;
            }
            assert_eq!(c.dead(now), dead, "at {at} ms");
        }
    }

    #[test]
    fn acks_expire_statuses_coalesce_and_the_queue_is_bounded() {
        let t0 = Instant::now();
        let mut c = core(t0);
        let u = |kind, frame: &str, expires| Urgent {
            kind,
            frame: frame.into(),
            expires,
        };
        c.push(u(UrgentKind::Ack, "late", Some(t0 + ms(10))));
        c.push(u(UrgentKind::Status, "s1", None));
        c.push(u(UrgentKind::Ack, "ok", Some(t0 + ms(5000))));
        c.push(u(UrgentKind::Status, "s2", None));
        let order: Vec<String> = std::iter::from_fn(|| c.pop_urgent(t0 + ms(100)))
            .map(|u| u.frame)
            .collect();
        assert_eq!(order, ["ok", "s2"]);
        assert_eq!(c.dropped.ack_expired, 1);
        for i in 0..URGENT_CAPACITY + 5 {
            c.push(u(UrgentKind::Preview, &i.to_string(), None));
        }
        assert_eq!(c.dropped.urgent_overflow, 5);
        assert_eq!(c.pop_urgent(t0).map(|u| u.frame), Some("5".into()));
    }

    #[test]
    fn status_is_due_every_interval_and_wake_covers_every_timer() {
        let t0 = Instant::now();
        let mut c = core(t0);
        assert!(!c.status_due(t0 + ms(19_999)));
        assert!(c.status_due(t0 + ms(20_000)));
        assert!(!c.status_due(t0 + ms(20_001)));
        c.sent_outbox(7, t0);
        assert_eq!(c.next_wake(t0, false), t0 + CONFIRM_WITHIN);
    }
}
