//! The LED's handle and view: what other parts hold to ask for identify or a `led test`
//! step, and to read what the LED shows (for `/status`, `/metrics` and tests).

use super::pattern::Colour;
use super::sim::SimLed;
use super::{DeviceState, Error};
use serde::Serialize;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Pattern changes kept in [`LedView::history`]; older ones are dropped.
pub const HISTORY: usize = 32;
/// The longest identify or test request accepted.
pub const MAX_REQUEST: Duration = Duration::from_secs(3600);

/// One pattern change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shown {
    /// The state shown.
    pub state: DeviceState,
    /// Its pattern's name.
    pub pattern: &'static str,
    /// Milliseconds since the LED was set up.
    pub at_ms: u64,
}

/// What the LED shows and why; `/status` reads it, tests wait on it.
#[derive(Debug, Clone, Serialize)]
pub struct LedView {
    /// `sysfs`, `gpio` or `sim`.
    pub backend: &'static str,
    /// Why this backend (the fallback chain for `auto`).
    pub reason: String,
    /// The state shown.
    pub state: DeviceState,
    /// The pattern's name.
    pub pattern: &'static str,
    /// The pattern's timings.
    pub timings: String,
    /// Its colour on an RGB LED.
    pub colour: Colour,
    /// A `bbedge led test` step overrides the device state.
    pub testing: bool,
    /// Hardware that should have worked and did not (`[LED_…] message` with the fix);
    /// the LED then runs simulated. `None` when all is as configured.
    pub degraded: Option<String>,
    /// Recent pattern changes, oldest first (at most [`HISTORY`]).
    pub history: VecDeque<Shown>,
}

#[derive(Debug)]
pub(super) enum Request {
    /// Set the `identify` fact for this long.
    Identify(Duration),
    /// Show this state's pattern for this long, whatever the device state (`led test`).
    Show(DeviceState, Duration),
}

/// Talks to the LED task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LedHandle {
    /// Requests to the LED task (sender side; the task receives). Bounded by
    /// `[status_led] mailbox`; when full, requests fail with `LED_BUSY` at once.
    pub(super) tx: mpsc::Sender<Request>,
    pub(super) view: watch::Receiver<LedView>,
    pub(super) sim: SimLed,
}

impl LedHandle {
    /// Blinks `identify` for `duration`, then returns to the current state. A new request
    /// replaces the running one's deadline.
    pub fn identify(&self, duration: Duration) -> Result<(), Error> {
        self.send(Request::Identify(check(duration)?))
    }

    /// Shows `state`'s pattern for `duration` regardless of the device state.
    pub fn show(&self, state: DeviceState, duration: Duration) -> Result<(), Error> {
        self.send(Request::Show(state, check(duration)?))
    }

    fn send(&self, r: Request) -> Result<(), Error> {
        self.tx.try_send(r).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::Busy,
            mpsc::error::TrySendError::Closed(_) => Error::Stopped,
        })
    }

    /// What the LED shows now.
    pub fn view(&self) -> LedView {
        self.view.borrow().clone()
    }

    /// Wakes on every pattern change.
    pub fn watch(&self) -> watch::Receiver<LedView> {
        self.view.clone()
    }

    /// The simulated LED (the record of edges when the backend is `sim`).
    pub fn sim(&self) -> &SimLed {
        &self.sim
    }

    /// The `/status` section.
    pub fn status_json(&self) -> serde_json::Value {
        let view = self.view();
        let mut v = serde_json::to_value(&view).unwrap_or_default();
        if view.backend == "sim" {
            let edges = self.sim.edges();
            let recent = &edges[edges.len().saturating_sub(16)..];
            v["sim"] = serde_json::json!({ "on": self.sim.is_on(), "recent_edges": recent });
        }
        v
    }
}

fn check(d: Duration) -> Result<Duration, Error> {
    if d.is_zero() || d > MAX_REQUEST {
        return Err(Error::BadRequest(format!(
            "seconds must be 1 to {}",
            MAX_REQUEST.as_secs()
        )));
    }
    Ok(d)
}
