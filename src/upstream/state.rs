//! The link as one state machine, free of I/O (issue 10 item 7).
//!
//! Everything that decides what the link does next lives here: the [`LinkState`], the
//! attempt and connection numbers (the generation commands' acks are matched
//! against), the rejections in a row and the `needs_pairing` reason (§c.4, §b.6), the
//! reconnect backoff (§g.2), the one clean reconnect after an unclean drop or after an
//! attempt given up with its fate unknown (§g.1, contract 0.13), the signing hold
//! (§d.8) and the last error with the attempt it belongs to. The I/O loop
//! ([`super::reconnect`], [`super::session`]) tells it what happened and does what it
//! says; [`super::stats`] only shows a copy. Tests drive it with plain `Instant`s.

use super::backoff::Backoff;
use super::probe::Outcome;
use super::rejection::needs_pairing_reason;
use super::session::Why;
use crate::signal::Link as Fact;
use rand::Rng;
use std::time::{Duration, Instant};

/// Where the link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkState {
    /// No credentials, `[upstream] enabled = false`, or a configuration that cannot
    /// connect (an unusable `extra_ca_file`).
    #[default]
    Disabled,
    /// Backing off until `until` before the next attempt.
    Waiting {
        /// When the next attempt starts.
        until: Instant,
    },
    /// Attempt `attempt` is dialling or waiting for `connection.ack`.
    Connecting {
        /// The attempt's number (1, 2, …, per process).
        attempt: u64,
    },
    /// Central acknowledged connection `generation`.
    Online {
        /// The connection's number (1, 2, …): acks of commands from an earlier one
        /// are not sent on it.
        generation: u64,
        /// When central acknowledged it.
        since: Instant,
        /// When it closes cleanly on purpose to reconnect once (§g.1).
        clean_at: Option<Instant>,
    },
    /// Central said `re_enrolled`: nothing to do until new credentials arrive.
    NeedsPairing,
}

impl LinkState {
    /// The `/status` name. `buffering`: frames wait for central (outbox not empty, or
    /// the agent recording), which is what `offline` means, whatever restarts happened.
    pub fn name(&self, buffering: bool) -> &'static str {
        match self {
            LinkState::Disabled => "disabled",
            LinkState::Online { .. } => "online",
            LinkState::NeedsPairing => "needs_pairing",
            LinkState::Waiting { .. } | LinkState::Connecting { .. } if buffering => "offline",
            LinkState::Waiting { .. } | LinkState::Connecting { .. } => "connecting",
        }
    }

    /// Whether central has acknowledged the link.
    pub fn is_online(&self) -> bool {
        matches!(self, LinkState::Online { .. })
    }
}

/// The last error and the attempt it belongs to. Cleared when central acknowledges a
/// connection, so an old `CONNECT_FAILED` never sits next to `online`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    /// `CONNECT_FAILED`, `CLOSE_4003`, `PONG_TIMEOUT`, ….
    pub code: String,
    /// The attempt it happened on.
    pub attempt: u64,
    /// When, ms since the epoch.
    pub at_ms: i64,
}

/// The link's timers, from `[upstream]`.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// `clean_reconnect_after` (zero: never).
    pub clean_after: Duration,
    /// `stale_attempt_reconnect_after` (zero: never).
    pub stale_after: Duration,
    /// `backoff_reset_after`.
    pub backoff_reset_after: Duration,
}

/// Why an acknowledged connection will close cleanly on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanReason {
    /// The previous acknowledged link died without a close frame (§g.1).
    UncleanDrop,
    /// An attempt was given up with its fate unknown: central may register it late
    /// and forget the device when it closes (contract 0.13).
    StaleAttempt,
}

impl CleanReason {
    /// The log's `reason` field.
    pub fn label(self) -> &'static str {
        match self {
            CleanReason::UncleanDrop => "unclean_drop",
            CleanReason::StaleAttempt => "stale_attempt",
        }
    }
}

/// What an acknowledgement starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    /// The connection's number.
    pub generation: u64,
    /// When to close cleanly and reconnect once, and why.
    pub clean: Option<(Instant, CleanReason)>,
}

/// The link.
#[derive(Debug, Clone)]
pub struct Link {
    state: LinkState,
    timing: Timing,
    backoff: Backoff,
    attempts: u64,
    generation: u64,
    rejections: u64,
    unexplained: u64,
    needs_pairing_reason: Option<&'static str>,
    last_error: Option<LastError>,
    unclean_drop: bool,
    stale_attempt: bool,
    signing_hold: Option<u64>,
}

impl Link {
    /// A link that has not tried yet.
    pub fn new(timing: Timing, backoff: Backoff) -> Self {
        Self {
            state: LinkState::Disabled,
            timing,
            backoff,
            attempts: 0,
            generation: 0,
            rejections: 0,
            unexplained: 0,
            needs_pairing_reason: None,
            last_error: None,
            unclean_drop: false,
            stale_attempt: false,
            signing_hold: None,
        }
    }

    /// Where the link is.
    pub fn state(&self) -> LinkState {
        self.state
    }

    /// Attempts so far.
    pub fn attempts(&self) -> u64 {
        self.attempts
    }

    /// The current (or last) acknowledged connection's number; 0 before the first.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Rejections (4003/4001, `auth_failed`) since the last acknowledged connection.
    pub fn rejections(&self) -> u64 {
        self.rejections
    }

    /// Why the link asked for pairing, until the next acknowledged connection.
    pub fn needs_pairing_reason(&self) -> Option<&'static str> {
        self.needs_pairing_reason
    }

    /// The last error since the last acknowledged connection.
    pub fn last_error(&self) -> Option<&LastError> {
        self.last_error.as_ref()
    }

    /// The signal fact: `online` only while acknowledged; otherwise `offline`
    /// (buffering) while frames wait, `connecting` when nothing does.
    pub fn fact(&self, buffering: bool) -> Fact {
        match self.state {
            LinkState::Online { .. } => Fact::Online,
            LinkState::Disabled => Fact::Disabled,
            _ if buffering => Fact::Offline,
            _ => Fact::Connecting,
        }
    }

    /// No usable credentials or configuration.
    pub fn disabled(&mut self) {
        self.state = LinkState::Disabled;
    }

    /// Backing off for `delay` from `now`.
    pub fn wait(&mut self, now: Instant, delay: Duration) {
        self.state = LinkState::Waiting { until: now + delay };
    }

    /// New credentials arrived while backing off: try again now.
    pub fn retry_now(&mut self) {
        self.backoff.reset();
    }

    /// An attempt starts; `token_expired` by the box's clock. Returns its number.
    pub fn attempt(&mut self, token_expired: bool) -> u64 {
        self.attempts += 1;
        if token_expired {
            self.needs_pairing_reason = Some("token_expired");
        }
        self.state = LinkState::Connecting {
            attempt: self.attempts,
        };
        self.attempts
    }

    /// Something failed on the current attempt (or connection).
    pub fn failed(&mut self, code: impl Into<String>, now_ms: i64) {
        self.last_error = Some(LastError {
            code: code.into(),
            attempt: self.attempts,
            at_ms: now_ms,
        });
    }

    /// Central acknowledged the current attempt at `now`.
    pub fn acked(&mut self, now: Instant) -> Acked {
        self.generation += 1;
        self.rejections = 0;
        self.unexplained = 0;
        self.needs_pairing_reason = None;
        self.last_error = None;
        let t = self.timing;
        let after = |on: bool, d: Duration, r| (on && !d.is_zero()).then_some((now + d, r));
        let drop = after(self.unclean_drop, t.clean_after, CleanReason::UncleanDrop);
        let stale = after(self.stale_attempt, t.stale_after, CleanReason::StaleAttempt);
        // Both armed: the earlier wins; one clean reconnect settles both.
        let clean = match (drop, stale) {
            (Some(a), Some(b)) => Some(if b.0 <= a.0 { b } else { a }),
            (a, b) => a.or(b),
        };
        self.unclean_drop = false;
        self.stale_attempt = false;
        self.state = LinkState::Online {
            generation: self.generation,
            since: now,
            clean_at: clean.map(|c| c.0),
        };
        Acked {
            generation: self.generation,
            clean,
        }
    }

    /// The attempt or connection ended at `now`: returns the delay before the next
    /// attempt, which the link waits out ([`LinkState::Waiting`]). `connected_for`: how
    /// long it was acknowledged (`None`: never).
    pub fn ended(
        &mut self,
        now: Instant,
        why: Why,
        connected_for: Option<Duration>,
        token_expired: bool,
        rng: &mut impl Rng,
    ) -> Duration {
        if connected_for.is_some() {
            // Once per unclean drop: whatever ended this link decides anew.
            self.unclean_drop = why == Why::Dropped;
        }
        let delay = self.delay_after(why, connected_for, token_expired, rng);
        if why != Why::ReEnrolled {
            self.wait(now, delay);
        }
        delay
    }

    fn delay_after(
        &mut self,
        why: Why,
        connected_for: Option<Duration>,
        token_expired: bool,
        rng: &mut impl Rng,
    ) -> Duration {
        match why {
            Why::Shutdown | Why::Voluntary => Duration::ZERO,
            Why::Credentials => {
                self.backoff.reset();
                self.rejections = 0;
                self.unexplained = 0;
                self.needs_pairing_reason = None;
                Duration::ZERO
            }
            Why::ReEnrolled => {
                self.needs_pairing_reason = Some("re_enrolled");
                self.state = LinkState::NeedsPairing;
                Duration::ZERO
            }
            // §c.4, §g.2: a rejection or a connection cap jumps to the capped backoff.
            Why::Rejected { .. } | Why::Limit => self.backoff.next_capped(rng),
            Why::Lost | Why::Dropped | Why::Abandoned => {
                if why == Why::Abandoned {
                    self.stale_attempt = true;
                }
                if connected_for.is_some_and(|d| d >= self.timing.backoff_reset_after) {
                    self.backoff.reset();
                }
                if token_expired {
                    self.backoff.next_capped(rng)
                } else {
                    self.backoff.next_delay(rng)
                }
            }
        }
    }

    /// A rejection, with the token probe's outcome (`None`: not probed, the token had
    /// expired, or the probe was skipped). `frame`: central sent `auth_failed`. Returns
    /// the rejections in a row and the `needs_pairing` reason it decides, if any.
    pub fn rejected(
        &mut self,
        token_expired: bool,
        frame: bool,
        outcome: Option<&Outcome>,
    ) -> (u64, Option<&'static str>) {
        self.rejections += 1;
        match outcome {
            Some(Outcome::TokenOk) => self.unexplained = 0,
            Some(Outcome::Unknown { .. }) | None => self.unexplained += 1,
            Some(_) => {}
        }
        let reason = needs_pairing_reason(token_expired, frame, outcome, self.unexplained);
        if reason.is_some() {
            self.needs_pairing_reason = reason;
        }
        (self.rejections, reason)
    }

    /// A manifest could not be signed on the current connection and was stepped over.
    pub fn hold_signing(&mut self) {
        self.signing_hold = Some(self.generation);
    }

    /// Whether a manifest was stepped over on the current connection: a later one sent
    /// on it would overtake it, so it waits too.
    pub fn signing_held(&self) -> bool {
        self.signing_hold == Some(self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn link() -> Link {
        Link::new(
            Timing {
                clean_after: s(300),
                stale_after: s(20),
                backoff_reset_after: s(60),
            },
            Backoff::new(s(1), s(60)),
        )
    }

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    /// One event of the table.
    #[derive(Debug, Clone, Copy)]
    enum Ev {
        Attempt,
        Fail(&'static str),
        Ack,
        End(Why, Option<u64>),
    }

    /// After the event: (state name with nothing buffered, with frames buffered,
    /// last error, clean reconnect after the ack).
    type Want = (
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<(u64, CleanReason)>,
    );

    fn run(events: &[(Ev, Want)]) {
        let t0 = Instant::now();
        let mut l = link();
        let mut r = rng();
        let mut clean = None;
        for (i, (ev, want)) in events.iter().enumerate() {
            let now = t0 + s(i as u64 * 100);
            match *ev {
                Ev::Attempt => {
                    l.attempt(false);
                }
                Ev::Fail(code) => l.failed(code, 0),
                Ev::Ack => clean = l.acked(now).clean.map(|(at, why)| (at - now, why)),
                Ev::End(why, up) => {
                    l.ended(now, why, up.map(s), false, &mut r);
                }
            }
            let got = (
                l.state().name(false),
                l.state().name(true),
                l.last_error().map(|e| e.code.as_str()),
                clean.map(|(d, w): (Duration, CleanReason)| (d.as_secs(), w)),
            );
            assert_eq!(got, *want, "event {i}: {ev:?}");
        }
    }

    #[test]
    fn a_restarted_box_buffers_whenever_frames_wait_and_an_ack_clears_the_last_error() {
        // Item 3: per process there is no "was online"; only the queue decides, and the
        // CONNECT_FAILED of an earlier attempt does not survive the acknowledgement.
        run(&[
            (Ev::Attempt, ("connecting", "offline", None, None)),
            (
                Ev::Fail("CONNECT_FAILED"),
                ("connecting", "offline", Some("CONNECT_FAILED"), None),
            ),
            (
                Ev::End(Why::Lost, None),
                ("connecting", "offline", Some("CONNECT_FAILED"), None),
            ),
            (
                Ev::Attempt,
                ("connecting", "offline", Some("CONNECT_FAILED"), None),
            ),
            (Ev::Ack, ("online", "online", None, None)),
            (
                Ev::Fail("CLOSE_1001"),
                ("online", "online", Some("CLOSE_1001"), None),
            ),
            (
                Ev::End(Why::Lost, Some(5)),
                ("connecting", "offline", Some("CLOSE_1001"), None),
            ),
        ]);
    }

    #[test]
    fn an_attempt_given_up_brings_one_clean_reconnect_soon_after_the_next_ack() {
        // Item 4: the fate of a timed-out attempt is unknown (contract 0.13), so the
        // next acknowledged link reconnects cleanly once, stale_after (20 s) after its
        // ack; an unclean drop alone waits clean_after (300 s); both: the earlier.
        use CleanReason::*;
        run(&[
            (Ev::Attempt, ("connecting", "offline", None, None)),
            (
                Ev::Fail("CONNECT_TIMEOUT"),
                ("connecting", "offline", Some("CONNECT_TIMEOUT"), None),
            ),
            (
                Ev::End(Why::Abandoned, None),
                ("connecting", "offline", Some("CONNECT_TIMEOUT"), None),
            ),
            (
                Ev::Attempt,
                ("connecting", "offline", Some("CONNECT_TIMEOUT"), None),
            ),
            (
                Ev::Ack,
                ("online", "online", None, Some((20, StaleAttempt))),
            ),
            (
                Ev::End(Why::Voluntary, Some(20)),
                ("connecting", "offline", None, Some((20, StaleAttempt))),
            ),
            (
                Ev::Attempt,
                ("connecting", "offline", None, Some((20, StaleAttempt))),
            ),
            (Ev::Ack, ("online", "online", None, None)),
            (
                Ev::End(Why::Dropped, Some(1000)),
                ("connecting", "offline", None, None),
            ),
            (Ev::Attempt, ("connecting", "offline", None, None)),
            (
                Ev::Ack,
                ("online", "online", None, Some((300, UncleanDrop))),
            ),
            (
                Ev::End(Why::Dropped, Some(1000)),
                ("connecting", "offline", None, Some((300, UncleanDrop))),
            ),
            (
                Ev::Attempt,
                ("connecting", "offline", None, Some((300, UncleanDrop))),
            ),
            (
                Ev::End(Why::Abandoned, None),
                ("connecting", "offline", None, Some((300, UncleanDrop))),
            ),
            (
                Ev::Attempt,
                ("connecting", "offline", None, Some((300, UncleanDrop))),
            ),
            (
                Ev::Ack,
                ("online", "online", None, Some((20, StaleAttempt))),
            ),
            (
                Ev::End(Why::Lost, Some(1000)),
                ("connecting", "offline", None, Some((20, StaleAttempt))),
            ),
            (
                Ev::Attempt,
                ("connecting", "offline", None, Some((20, StaleAttempt))),
            ),
            (Ev::Ack, ("online", "online", None, None)),
        ]);
    }

    #[test]
    fn an_unclean_drop_brings_one_clean_reconnect_after_the_next_ack() {
        let t0 = Instant::now();
        let mut l = link();
        l.attempt(false);
        assert_eq!(l.acked(t0).clean, None, "the first connection");
        // How the connection ended, whether a failed attempt came between, and the
        // clean reconnect the next acknowledgement arms.
        let table = [
            (Why::Dropped, false, Some(s(300))),
            (Why::Dropped, true, Some(s(300))),
            (Why::Lost, false, None),
            (Why::Voluntary, false, None),
            (Why::Shutdown, false, None),
        ];
        for (why, failed_between, want) in table {
            l.ended(t0, why, Some(s(10)), false, &mut rng());
            if failed_between {
                l.attempt(false);
                l.ended(t0, Why::Lost, None, false, &mut rng());
            }
            l.attempt(false);
            let got = l.acked(t0).clean.map(|(at, r)| {
                assert_eq!(r, CleanReason::UncleanDrop);
                at - t0
            });
            assert_eq!(got, want, "after {why:?}");
        }
    }

    #[test]
    fn the_signal_fact_follows_the_queue_not_the_history() {
        let t0 = Instant::now();
        let mut l = link();
        assert_eq!(l.fact(true), Fact::Disabled, "not paired or disabled");
        l.attempt(false);
        assert_eq!(l.fact(false), Fact::Connecting);
        assert_eq!(l.fact(true), Fact::Offline);
        l.acked(t0);
        assert_eq!(l.fact(true), Fact::Online);
        l.ended(t0, Why::Lost, Some(s(1)), false, &mut rng());
        assert_eq!(l.fact(false), Fact::Connecting, "was online, nothing waits");
        l.ended(t0, Why::ReEnrolled, None, false, &mut rng());
        assert_eq!(l.state(), LinkState::NeedsPairing);
        assert_eq!(l.needs_pairing_reason(), Some("re_enrolled"));
    }

    #[test]
    fn rejections_count_until_an_ack_and_decide_needs_pairing() {
        let t0 = Instant::now();
        let mut l = link();
        let unknown = Outcome::Unknown {
            detail: "HTTP_404".into(),
        };
        let table = [
            (Some(&unknown), (1, None)),
            (Some(&Outcome::TokenOk), (2, None)),
            (Some(&unknown), (3, None)),
            (Some(&unknown), (4, None)),
            (None, (5, Some("repeated_rejections"))),
        ];
        for (outcome, want) in table {
            l.attempt(false);
            assert_eq!(l.rejected(false, false, outcome), want, "{outcome:?}");
            let d = l.ended(t0, Why::Rejected { code: 4003 }, None, false, &mut rng());
            assert!(d >= s(30), "capped backoff: {d:?}");
        }
        assert_eq!(l.needs_pairing_reason(), Some("repeated_rejections"));
        l.attempt(false);
        assert_eq!(l.acked(t0).generation, 1);
        assert_eq!((l.rejections(), l.needs_pairing_reason()), (0, None));
        l.attempt(true);
        assert_eq!(l.needs_pairing_reason(), Some("token_expired"));
        assert_eq!(
            l.rejected(true, false, None),
            (1, Some("token_expired")),
            "an expired token decides at once"
        );
        l.ended(t0, Why::Credentials, None, true, &mut rng());
        assert_eq!((l.rejections(), l.needs_pairing_reason()), (0, None));
    }

    #[test]
    fn the_signing_hold_lasts_for_the_connection_it_was_taken_on() {
        let t0 = Instant::now();
        let mut l = link();
        l.attempt(false);
        l.acked(t0);
        assert!(!l.signing_held());
        l.hold_signing();
        assert!(
            l.signing_held(),
            "a later manifest on connection 1 waits too"
        );
        l.ended(t0, Why::Lost, Some(s(1)), false, &mut rng());
        l.attempt(false);
        l.acked(t0);
        assert!(!l.signing_held(), "connection 2 sends all, in order");
        l.hold_signing();
        assert!(l.signing_held(), "the latest connection counts");
    }
}
