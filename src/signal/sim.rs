//! The simulated LED: no hardware, the level it would show and its recent edges kept in
//! memory for `/status`, `/metrics` and tests. The default on a laptop and in tests.

use super::backend::Backend;
use super::pattern::{Colour, Output};
use super::Error;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// Edges the simulated LED remembers; older ones are dropped (a 10 Hz pattern fills it
/// in a few seconds, which is all a person or a test looks at).
pub const EDGE_HISTORY: usize = 64;

/// One level change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Edge {
    /// Milliseconds since the simulated LED was created.
    pub at_ms: u64,
    /// Lit or dark from then on.
    pub on: bool,
    /// The colour while lit.
    pub colour: Colour,
}

#[derive(Debug)]
struct Inner {
    created: Instant,
    edges: VecDeque<Edge>,
    restored: bool,
    /// A kernel-style timer left blinking (on ms, off ms): see [`super::fault`].
    timer: Option<(u64, u64)>,
}

/// The simulated LED. Cheap to clone; clones share the record.
#[derive(Debug, Clone)]
pub struct SimLed {
    inner: Arc<Mutex<Inner>>,
}

impl Default for SimLed {
    fn default() -> Self {
        Self::new()
    }
}

impl SimLed {
    /// A dark simulated LED whose clock starts now.
    pub fn new() -> SimLed {
        SimLed {
            inner: Arc::new(Mutex::new(Inner {
                created: Instant::now(),
                edges: VecDeque::with_capacity(EDGE_HISTORY),
                restored: false,
                timer: None,
            })),
        }
    }

    /// The recent edges, oldest first.
    pub fn edges(&self) -> Vec<Edge> {
        self.inner
            .lock()
            .map(|i| i.edges.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Whether it is lit now.
    pub fn is_on(&self) -> bool {
        self.edges().last().is_some_and(|e| e.on)
    }

    /// Leaves the LED blinking `on_ms`/`off_ms` by itself, as sysfs's timer trigger does.
    pub fn set_timer(&self, on_ms: u64, off_ms: u64) {
        if let Ok(mut i) = self.inner.lock() {
            i.timer = Some((on_ms, off_ms));
        }
    }

    /// The timer left by [`SimLed::set_timer`], if any.
    pub fn timer(&self) -> Option<(u64, u64)> {
        self.inner.lock().ok().and_then(|i| i.timer)
    }

    /// Whether the LED was given back (the shutdown path ran).
    pub fn restored(&self) -> bool {
        self.inner.lock().is_ok_and(|i| i.restored)
    }
}

impl Backend for SimLed {
    fn kind(&self) -> &'static str {
        "sim"
    }

    fn set(&mut self, out: Output) -> Result<(), Error> {
        if let Ok(mut i) = self.inner.lock() {
            let at_ms = u64::try_from(i.created.elapsed().as_millis()).unwrap_or(u64::MAX);
            if i.edges.len() == EDGE_HISTORY {
                i.edges.pop_front();
            }
            i.edges.push_back(Edge {
                at_ms,
                on: out.on,
                colour: out.colour,
            });
            i.restored = false;
        }
        Ok(())
    }

    fn restore(&mut self) -> Result<(), Error> {
        if let Ok(mut i) = self.inner.lock() {
            i.restored = true;
        }
        Ok(())
    }

    fn is_physical(&self) -> bool {
        false
    }
}
