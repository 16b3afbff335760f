//! The simulated LED: no hardware, the level it would show and its recent edges kept in
//! memory for `/status`, `/metrics` and tests. The default on a laptop and in tests.
//! Like a sysfs LED with the kernel's `timer` trigger, it takes a steady rhythm over
//! ([`Backend::blink`]) and plays it with nobody waking: its edges are worked out from
//! the rhythm when they are read, exactly where the kernel's timer would put them.

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
    /// The steady rhythm playing by itself since [`Backend::blink`], if any.
    blinking: Option<Rhythm>,
}

/// A steady rhythm handed over at `from_ms`.
#[derive(Debug, Clone, Copy)]
struct Rhythm {
    from_ms: u64,
    on_ms: u64,
    off_ms: u64,
    colour: Colour,
}

impl Rhythm {
    /// The edges it made until `now_ms` (an edge due at `now_ms` included), the last
    /// [`EDGE_HISTORY`] of them.
    fn edges_until(&self, now_ms: u64) -> impl Iterator<Item = Edge> + '_ {
        let cycle = self.on_ms.saturating_add(self.off_ms).max(1);
        let since = now_ms.saturating_sub(self.from_ms);
        let (cycles, into) = (since / cycle, since % cycle);
        let count = cycles
            .saturating_mul(2)
            .saturating_add(if into >= self.on_ms { 2 } else { 1 });
        (count.saturating_sub(EDGE_HISTORY as u64)..count).map(move |i| Edge {
            at_ms: self
                .from_ms
                .saturating_add((i / 2).saturating_mul(cycle))
                .saturating_add(if i % 2 == 1 { self.on_ms } else { 0 }),
            on: i % 2 == 0,
            colour: self.colour,
        })
    }
}

impl Inner {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn push(&mut self, edge: Edge) {
        if self.edges.len() == EDGE_HISTORY {
            self.edges.pop_front();
        }
        self.edges.push_back(edge);
    }

    /// Ends a handed-over rhythm, keeping the edges it made until now.
    fn take_back(&mut self) {
        if let Some(r) = self.blinking.take() {
            let now_ms = self.now_ms();
            for e in r.edges_until(now_ms) {
                self.push(e);
            }
        }
    }
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
                blinking: None,
            })),
        }
    }

    /// The recent edges (at most [`EDGE_HISTORY`]), oldest first.
    pub fn edges(&self) -> Vec<Edge> {
        let Ok(i) = self.inner.lock() else {
            return Vec::new();
        };
        let mut edges: Vec<Edge> = i.edges.iter().copied().collect();
        if let Some(r) = i.blinking {
            edges.extend(r.edges_until(i.now_ms()));
        }
        let extra = edges.len().saturating_sub(EDGE_HISTORY);
        edges.drain(..extra);
        edges
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
            i.take_back();
            let at_ms = i.now_ms();
            i.push(Edge {
                at_ms,
                on: out.on,
                colour: out.colour,
            });
            i.restored = false;
        }
        Ok(())
    }

    fn blink(&mut self, lit: Output, on_ms: u32, off_ms: u32) -> Result<bool, Error> {
        if let Ok(mut i) = self.inner.lock() {
            i.take_back();
            i.blinking = Some(Rhythm {
                from_ms: i.now_ms(),
                on_ms: on_ms.into(),
                off_ms: off_ms.into(),
                colour: lit.colour,
            });
            i.restored = false;
        }
        Ok(true)
    }

    fn restore(&mut self) -> Result<(), Error> {
        if let Ok(mut i) = self.inner.lock() {
            i.take_back();
            i.restored = true;
        }
        Ok(())
    }

    fn is_physical(&self) -> bool {
        false
    }
}
