//! The LED task: follows the [`StatusHub`] (woken by `changed()`, never polling), plays
//! the state's [`Pattern`] on the chosen [`Backend`], times identify requests, and on
//! shutdown shows `shutting_down` briefly before giving the LED back. A steady rhythm
//! (one on time, one off time) is handed to an LED that can blink by itself, and the
//! task sleeps until the next change: an unpaired or offline box does not wake for it.
//!
//! Other parts talk to it through a cloneable [`LedHandle`] over a bounded mailbox.

use super::backend::{self, Backend};
use super::handle::{LedHandle, LedView, Request, Shown, HISTORY};
use super::pattern::{Blink, Pattern};
use super::sim::SimLed;
use super::{DeviceState, StatusHub};
use crate::config::StatusLed;
use crate::error::ErrorCode;
use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a visible LED keeps showing `shutting_down` before it is given back.
pub const SHUTDOWN_SHOW: Duration = Duration::from_secs(1);

/// The LED task before it runs.
pub struct LedTask {
    hub: StatusHub,
    /// Subscribed at build, so a change between build and run is not missed.
    facts: watch::Receiver<super::Facts>,
    /// Requests from [`LedHandle`]s (receiver side).
    rx: mpsc::Receiver<Request>,
    led: Box<dyn Backend>,
    view: watch::Sender<LedView>,
    sim: SimLed,
    created: Instant,
    /// When the pattern now playing started (the shutdown linger counts from it).
    since: Instant,
    shutdown_show: Duration,
    /// The LED blinks the pattern now playing by itself ([`Backend::blink`]).
    handed_off: bool,
}

/// Opens the configured LED (falling back to `sim`, with one warning, if it cannot) and
/// returns the handle and the task to spawn. `state_dir` keeps the sysfs trigger to
/// restore across a crash (see [`super::sysfs::SysfsLed::open`]).
pub fn build(cfg: &StatusLed, hub: StatusHub, state_dir: Option<&Path>) -> (LedHandle, LedTask) {
    let sim = SimLed::new();
    let chosen = backend::choose(cfg, sim.clone(), state_dir);
    if let Some(e) = &chosen.warning {
        tracing::warn!(
            operation = "led.open",
            code = e.code(),
            error = %e,
            backend = chosen.led.kind(),
            "{}",
            if chosen.led.kind() == "sim" {
                "status LED unavailable; showing the state in memory only"
            } else {
                "configured status LED unavailable; using the next one"
            }
        );
    }
    tracing::info!(
        operation = "led.open",
        backend = chosen.led.kind(),
        reason = %chosen.reason,
        "status LED backend chosen"
    );
    let state = hub.state();
    let pattern = Pattern::of(state);
    let (view_tx, view_rx) = watch::channel(LedView {
        backend: chosen.led.kind(),
        reason: chosen.reason,
        state,
        pattern: pattern.name,
        timings: pattern.timings(),
        colour: pattern.colour,
        testing: false,
        degraded: chosen
            .warning
            .as_ref()
            .map(|e| format!("[{}] {e}", e.code())),
        history: VecDeque::with_capacity(HISTORY),
    });
    let (tx, rx) = mpsc::channel(cfg.mailbox.max(1));
    let handle = LedHandle {
        tx,
        view: view_rx,
        sim: sim.clone(),
    };
    let task = LedTask {
        facts: hub.subscribe(),
        hub,
        rx,
        led: chosen.led,
        view: view_tx,
        sim,
        created: Instant::now(),
        since: Instant::now(),
        shutdown_show: SHUTDOWN_SHOW,
        handed_off: false,
    };
    (handle, task)
}

impl LedTask {
    /// How long a visible LED shows `shutting_down` at the end (the CLI wants none).
    pub fn with_shutdown_show(mut self, d: Duration) -> Self {
        self.shutdown_show = d;
        self
    }

    /// Runs until `token` is cancelled, then shows `shutting_down` briefly and restores.
    pub async fn run(mut self, token: CancellationToken) {
        let mut identify_until: Option<Instant> = None;
        let mut test: Option<(DeviceState, Instant)> = None;
        // The state at build first (`booting` in the daemon), then whatever changed since.
        let first = self.view.borrow().state;
        let mut blink = self.start(first, false, None);
        loop {
            let edge = self.next_edge(&blink);
            tokio::select! {
                biased;
                () = token.cancelled() => break,
                () = at(identify_until) => {
                    identify_until = None;
                    self.hub.update(|f| f.identify = false);
                }
                () = at(test.map(|t| t.1)) => test = None,
                r = self.facts.changed() => if r.is_err() { break },
                req = self.rx.recv() => match req {
                    Some(Request::Identify(d)) => {
                        identify_until = Some(Instant::now() + d);
                        self.hub.update(|f| f.identify = true);
                        tracing::info!(operation = "led.identify", seconds = d.as_secs(), "identify requested");
                    }
                    Some(Request::Show(state, d)) => test = Some((state, Instant::now() + d)),
                    None => {}
                },
                () = at(edge) => {
                    blink.advance();
                    self.drive(&blink);
                    continue;
                }
            }
            let (state, testing) = match test {
                Some((s, _)) => (s, true),
                None => (self.hub.state(), false),
            };
            let view = self.view.borrow();
            let same = view.state == state && view.testing == testing;
            drop(view);
            if !same {
                blink = self.start(state, testing, Some(blink));
            }
        }
        self.stop(blink).await;
    }

    /// Starts `state`'s pattern now, unless it is the one already playing.
    fn start(&mut self, state: DeviceState, testing: bool, current: Option<Blink>) -> Blink {
        let pattern = Pattern::of(state);
        let at_ms = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.view.send_modify(|v| {
            v.state = state;
            v.pattern = pattern.name;
            v.timings = pattern.timings();
            v.colour = pattern.colour;
            v.testing = testing;
            if v.history.len() == HISTORY {
                v.history.pop_front();
            }
            v.history.push_back(Shown {
                state,
                pattern: pattern.name,
                at_ms,
            });
        });
        if let Some(b) = current.filter(|b| b.pattern() == pattern) {
            return b; // Another state with the same pattern: keep the rhythm going.
        }
        self.since = Instant::now();
        let blink = Blink::start(pattern, self.since);
        self.play(&blink);
        blink
    }

    /// Starts `blink` at its first step: handed to the LED when it can blink the rhythm
    /// by itself, otherwise driven edge by edge from here.
    fn play(&mut self, blink: &Blink) {
        self.handed_off = false;
        let Some((on_ms, off_ms)) = blink.pattern().steady() else {
            return self.drive(blink);
        };
        self.handed_off = match self.led.blink(blink.output(), on_ms, off_ms) {
            Ok(handed_off) => handed_off,
            Err(e) => {
                self.fail_over(&e);
                self.led
                    .blink(blink.output(), on_ms, off_ms)
                    .unwrap_or(false)
            }
        };
        if !self.handed_off {
            self.drive(blink);
        }
    }

    /// When the task must show the next step; never while the LED blinks by itself.
    fn next_edge(&self, blink: &Blink) -> Option<Instant> {
        if self.handed_off {
            None
        } else {
            blink.next_edge()
        }
    }

    /// Shows the blink's current step; a failing LED becomes the simulated one.
    fn drive(&mut self, blink: &Blink) {
        if let Err(e) = self.led.set(blink.output()) {
            self.fail_over(&e);
            let _ = self.led.set(blink.output());
        }
    }

    /// Replaces a failing LED by the simulated one, and says so.
    fn fail_over(&mut self, e: &super::Error) {
        let from = self.led.kind();
        tracing::warn!(
            operation = "led.set",
            code = e.code(),
            error = %e,
            backend = from,
            "status LED failed; showing the state in memory only"
        );
        self.led = Box::new(self.sim.clone());
        self.view.send_modify(|v| {
            v.backend = "sim";
            v.reason = format!("{from} failed [{}]: {e}", e.code());
            v.degraded = Some(format!("[{}] {e}", e.code()));
        });
    }

    async fn stop(mut self, mut blink: Blink) {
        if self.view.borrow().state != DeviceState::ShuttingDown {
            blink = self.start(DeviceState::ShuttingDown, false, Some(blink));
        }
        if self.led.is_physical() {
            // Counted from when shutting_down began: the other tasks' stopping time counts.
            let until = self.since + self.shutdown_show;
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(until) => break,
                    () = at(self.next_edge(&blink)) => {
                        blink.advance();
                        self.drive(&blink);
                    }
                }
            }
        }
        match self.led.restore() {
            Ok(()) => tracing::debug!(
                operation = "led.restore",
                backend = self.led.kind(),
                "status LED given back"
            ),
            Err(e) => {
                tracing::warn!(operation = "led.restore", code = e.code(), error = %e, "cannot give the status LED back");
            }
        }
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn at(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
