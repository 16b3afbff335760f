//! The client-side rate budget (contract §c.6): central closes a connection with 1008 on
//! the 11th counted frame in a one-second window, so every frame bbedge sends upstream,
//! replay included, first takes a slot here.
//!
//! A sliding window rather than a token bucket: at most `per_window` frames in any
//! window of `window` length, whatever central's window alignment is. The window is a
//! little longer than a second so loopback or proxy jitter cannot squeeze two frames
//! sent a second apart into one of central's windows.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The window length used in production: one second plus a jitter guard.
pub const WINDOW: Duration = Duration::from_millis(1050);

/// Send times of the last `per_window` frames.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Frames allowed per window (`upstream.frames_per_second`).
    per_window: usize,
    /// The window length.
    window: Duration,
    /// Send times, oldest first; never longer than `per_window`.
    sent: VecDeque<Instant>,
    /// Times a frame had to wait for a slot.
    waits: u64,
}

impl Budget {
    /// `per_window` frames per `window`.
    pub fn new(per_window: u32, window: Duration) -> Self {
        let per_window = per_window.max(1) as usize;
        Self {
            per_window,
            window,
            sent: VecDeque::with_capacity(per_window),
            waits: 0,
        }
    }

    /// When the next frame may go (`now` if a slot is free).
    pub fn ready_at(&self, now: Instant) -> Instant {
        if self.sent.len() < self.per_window {
            return now;
        }
        self.sent
            .front()
            .map_or(now, |t| (*t + self.window).max(now))
    }

    /// Takes a slot at `now`; `false` (and counts a wait) when none is free.
    pub fn try_take(&mut self, now: Instant) -> bool {
        while let Some(t) = self.sent.front() {
            if now.saturating_duration_since(*t) >= self.window {
                self.sent.pop_front();
            } else {
                break;
            }
        }
        if self.sent.len() >= self.per_window {
            self.waits += 1;
            return false;
        }
        self.sent.push_back(now);
        true
    }

    /// How often a frame had to wait.
    pub fn waits(&self) -> u64 {
        self.waits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_the_budget_in_any_window() {
        let start = Instant::now();
        let mut b = Budget::new(8, Duration::from_secs(1));
        let mut sent = Vec::new();
        // Try every 10 ms for 5 s.
        for i in 0..500u64 {
            let now = start + Duration::from_millis(i * 10);
            if b.try_take(now) {
                sent.push(now);
            }
        }
        assert_eq!(sent.len(), 40, "8/s for 5 s");
        for (i, t) in sent.iter().enumerate() {
            let in_window = sent[i..]
                .iter()
                .take_while(|u| u.duration_since(*t) < Duration::from_secs(1))
                .count();
            assert!(in_window <= 8, "{in_window} frames in a window from {i}");
        }
        assert!(b.waits() > 0);
    }

    #[test]
    fn ready_at_names_when_the_oldest_slot_frees() {
        let t0 = Instant::now();
        let mut b = Budget::new(2, Duration::from_secs(1));
        assert_eq!(b.ready_at(t0), t0);
        assert!(b.try_take(t0));
        assert!(b.try_take(t0 + Duration::from_millis(100)));
        assert!(!b.try_take(t0 + Duration::from_millis(200)));
        assert_eq!(
            b.ready_at(t0 + Duration::from_millis(200)),
            t0 + Duration::from_secs(1)
        );
        assert!(b.try_take(t0 + Duration::from_secs(1)));
    }
}
