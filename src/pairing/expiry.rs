//! The token lasts 7 days and cannot be refreshed (contract §b.2, §b.4). From
//! `[upstream] token_warn_hours` before expiry the box warns (log at most once an hour,
//! `/status`, metrics); once expired it sets `needs_pairing`, which the LED shows, until
//! a `bbedge pair` with a fresh code stores new credentials.
//!
//! The clock is injected so tests can move time without sleeping.

use super::status::Report;
use super::{CredentialStore, Credentials};
use crate::signal::StatusHub;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// Wall-clock time, injectable.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, UTC.
    fn now(&self) -> OffsetDateTime;
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock tests set by hand.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<OffsetDateTime>>);

impl ManualClock {
    /// A clock showing `t`.
    pub fn new(t: OffsetDateTime) -> Self {
        Self(Arc::new(Mutex::new(t)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: Duration) {
        let mut g = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *g += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The token's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenState {
    /// No credentials.
    Unpaired,
    /// More than the warning window left.
    Valid,
    /// Inside the warning window.
    Expiring,
    /// Past `expiresAt`.
    Expired,
    /// `expires_at` does not parse: treated as expired by nobody, shown to people.
    Unreadable,
}

/// The standing at `now` and the seconds left.
pub fn assess(
    creds: Option<&Credentials>,
    now: OffsetDateTime,
    warn: Duration,
) -> (TokenState, Option<i64>) {
    let Some(c) = creds else {
        return (TokenState::Unpaired, None);
    };
    match c.seconds_left(now) {
        None => (TokenState::Unreadable, None),
        Some(s) if s <= 0 => (TokenState::Expired, Some(s)),
        Some(s) if s as u64 <= warn.as_secs() => (TokenState::Expiring, Some(s)),
        Some(s) => (TokenState::Valid, Some(s)),
    }
}

/// How often the monitor looks at the clock when nothing else wakes it.
pub const CHECK_EVERY: Duration = Duration::from_secs(60);

/// The least time between two warning log lines for the same state.
pub const LOG_EVERY: Duration = Duration::from_secs(3600);

/// Watches the credentials and the clock.
#[derive(Debug, Clone)]
pub struct ExpiryMonitor {
    creds: CredentialStore,
    hub: StatusHub,
    report: Report,
    clock: SharedClock,
    warn: Duration,
    /// The state and time of the last warning logged; reset when credentials change.
    last_log: Arc<Mutex<Option<(TokenState, OffsetDateTime)>>>,
}

impl ExpiryMonitor {
    /// A monitor warning `warn` before expiry.
    pub fn new(
        creds: CredentialStore,
        hub: StatusHub,
        report: Report,
        clock: SharedClock,
        warn: Duration,
    ) -> Self {
        Self {
            creds,
            hub,
            report,
            clock,
            warn,
            last_log: Arc::new(Mutex::new(None)),
        }
    }

    /// Looks once: updates the warning, `needs_pairing`, and logs when due.
    pub fn check_now(&self) -> TokenState {
        let creds = self.creds.current();
        let now = self.clock.now();
        let (state, left) = assess(creds.as_ref(), now, self.warn);
        let expires_at = creds.as_ref().map_or("", |c| c.expires_at.as_str());
        let warning = match state {
            TokenState::Expiring => Some(format!(
                "The CivicPress token expires in {} h ({expires_at}); ask the operator for a fresh enrollment code and run `bbedge pair` before then.",
                left.unwrap_or(0) / 3600
            )),
            TokenState::Expired => Some(format!(
                "The CivicPress token expired at {expires_at}; the box cannot reconnect until it is paired again with a fresh enrollment code."
            )),
            TokenState::Unreadable => Some("The stored token expiry cannot be read; pair again with a fresh enrollment code.".into()),
            TokenState::Valid | TokenState::Unpaired => None,
        };
        self.report.set_warning(warning);
        if state == TokenState::Expired {
            self.hub.update(|f| f.needs_pairing = true);
        }
        if matches!(state, TokenState::Expiring | TokenState::Expired) && self.log_due(state, now) {
            self.report.count_warning_logged();
            if state == TokenState::Expired {
                tracing::error!(
                    operation = "pairing.expiry",
                    expires_at,
                    "token expired; pair again with a fresh code"
                );
            } else {
                tracing::warn!(
                    operation = "pairing.expiry",
                    expires_at,
                    seconds_left = left.unwrap_or(0),
                    "token expires soon; pair again with a fresh code"
                );
            }
        }
        state
    }

    fn log_due(&self, state: TokenState, now: OffsetDateTime) -> bool {
        let mut last = self
            .last_log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = match *last {
            Some((s, at)) => s != state || now - at >= LOG_EVERY,
            None => true,
        };
        if due {
            *last = Some((state, now));
        }
        due
    }

    /// Checks every [`CHECK_EVERY`] while paired, and whenever the credentials change
    /// (an unpaired box has no expiry to watch: it waits for pairing without a timer).
    pub async fn run(self, token: CancellationToken) {
        let mut rx = self.creds.subscribe();
        loop {
            let unpaired = self.check_now() == TokenState::Unpaired;
            tokio::select! {
                () = token.cancelled() => return,
                r = rx.changed() => {
                    if r.is_err() { return }
                    // New credentials: warnings start over; a success clears the error
                    // (not a registration central answered with a refused device).
                    *self.last_log.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                    let accepted = rx
                        .borrow_and_update()
                        .as_ref()
                        .is_some_and(|c| c.not_accepted().is_none());
                    if accepted {
                        self.report.clear_error();
                    }
                }
                () = tokio::time::sleep(CHECK_EVERY), if !unpaired => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn assess_splits_valid_expiring_and_expired_at_the_window_edges() {
        let c = Credentials {
            server: "https://cp".into(),
            realtime_url: "wss://cp/realtime".into(),
            device_id: "d".into(),
            device_uuid: "u".into(),
            token: crate::secret::Secret::new("t"),
            expires_at: "2026-06-27T19:00:00.000Z".into(),
            paired_at: "2026-06-20T19:00:00.000Z".into(),
            name: "n".into(),
            key_registered: true,
            device_status: None,
        };
        let day = Duration::from_secs(86_400);
        let at = |t| assess(Some(&c), t, day).0;
        assert_eq!(at(datetime!(2026-06-26 18:59:59 UTC)), TokenState::Valid);
        assert_eq!(at(datetime!(2026-06-26 19:00:00 UTC)), TokenState::Expiring);
        assert_eq!(at(datetime!(2026-06-27 18:59:59 UTC)), TokenState::Expiring);
        assert_eq!(at(datetime!(2026-06-27 19:00:00 UTC)), TokenState::Expired);
        assert_eq!(
            assess(None, datetime!(2026-06-27 19:00:00 UTC), day).0,
            TokenState::Unpaired
        );
    }
}
