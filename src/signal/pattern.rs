//! The pattern engine: each [`DeviceState`] as a blink rhythm a person can tell apart on
//! a single-colour LED, plus a colour for an RGB LED. Pure: no I/O, no sleeping; the LED
//! task asks [`Blink`] when the next edge is due.
//!
//! Every rhythm has its own shape (solid, even blinks far apart in rate, a blip, a wink,
//! heartbeat, triple blink, SOS, a burst), so no two differ only slightly in speed.
//! `docs/LED.md` carries [`markdown_table`]; a test keeps the two equal.

use super::DeviceState;
use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;

/// A colour an RGB LED made of three on/off pins can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Colour {
    /// Red only.
    Red,
    /// Green only.
    Green,
    /// Blue only.
    Blue,
    /// Red and green.
    Yellow,
    /// Green and blue.
    Cyan,
    /// Red and blue.
    Magenta,
    /// All three.
    White,
}

impl Colour {
    /// Which of red, green, blue are lit.
    pub fn rgb(self) -> [bool; 3] {
        match self {
            Colour::Red => [true, false, false],
            Colour::Green => [false, true, false],
            Colour::Blue => [false, false, true],
            Colour::Yellow => [true, true, false],
            Colour::Cyan => [false, true, true],
            Colour::Magenta => [true, false, true],
            Colour::White => [true, true, true],
        }
    }

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
            Colour::Cyan => "cyan",
            Colour::Magenta => "magenta",
            Colour::White => "white",
        }
    }
}

/// A blink rhythm and its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pattern {
    /// Short name shown on `/status` and by `bbedge led test`.
    pub name: &'static str,
    /// Milliseconds on, off, on, off, … repeated; empty means solid on.
    pub steps: &'static [u32],
    /// The colour on an RGB LED.
    pub colour: Colour,
}

/// Morse SOS at a 150 ms unit: dot 1, dash 3, gap 1, letter gap 3, word gap 7.
static SOS: [u32; 18] = [
    150, 150, 150, 150, 150, 450, // S
    450, 150, 450, 150, 450, 450, // O
    150, 150, 150, 150, 150, 1050, // S, then the word gap
];

impl Pattern {
    /// The pattern for `state`.
    pub fn of(state: DeviceState) -> Pattern {
        let (name, steps, colour): (&str, &[u32], Colour) = match state {
            DeviceState::Booting => ("medium blink", &[250, 250], Colour::White),
            DeviceState::Unpaired => ("blip", &[100, 1900], Colour::White),
            DeviceState::Pairing => ("fast blink", &[100, 100], Colour::Blue),
            DeviceState::Connecting => ("slow blink", &[1000, 1000], Colour::Cyan),
            DeviceState::Online => ("solid", &[], Colour::Green),
            DeviceState::OfflineBuffering => ("wink", &[1800, 200], Colour::Yellow),
            DeviceState::Recording => ("heartbeat", &[100, 150, 100, 650], Colour::Red),
            DeviceState::NeedsPairing => (
                "triple blink",
                &[200, 200, 200, 200, 200, 1000],
                Colour::Magenta,
            ),
            DeviceState::StorageFault => ("sos", &SOS, Colour::Red),
            DeviceState::ShuttingDown => ("double blink", &[150, 150, 150, 550], Colour::White),
            DeviceState::Identify => (
                "burst",
                &[50, 50, 50, 50, 50, 50, 50, 50, 50, 550],
                Colour::White,
            ),
        };
        Pattern {
            name,
            steps,
            colour,
        }
    }

    /// The on and off times of a two-step rhythm, which an LED can blink by itself
    /// ([`super::backend::Backend::blink`]); `None` for solid and longer rhythms.
    pub fn steady(&self) -> Option<(u32, u32)> {
        match *self.steps {
            [on, off] => Some((on, off)),
            _ => None,
        }
    }

    /// One full cycle; zero for solid.
    pub fn cycle(&self) -> Duration {
        Duration::from_millis(self.steps.iter().map(|&ms| u64::from(ms)).sum())
    }

    /// Whether the LED is lit `elapsed` after the pattern started.
    pub fn is_on_at(&self, elapsed: Duration) -> bool {
        let cycle = self.cycle().as_millis();
        if cycle == 0 {
            return true;
        }
        let mut t = elapsed.as_millis() % cycle;
        for (i, &ms) in self.steps.iter().enumerate() {
            if t < u128::from(ms) {
                return i % 2 == 0;
            }
            t -= u128::from(ms);
        }
        true
    }

    /// The timings as a person reads them: `solid` or `100 on, 1900 off`.
    pub fn timings(&self) -> String {
        if self.steps.is_empty() {
            return "solid on".to_owned();
        }
        let parts: Vec<String> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, ms)| format!("{ms} {}", if i % 2 == 0 { "on" } else { "off" }))
            .collect();
        parts.join(", ")
    }
}

/// What a backend shows at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Output {
    /// Lit or dark.
    pub on: bool,
    /// The colour while lit (RGB LEDs only).
    pub colour: Colour,
}

/// A pattern being played: which step it is in and when that step began.
#[derive(Debug, Clone)]
pub struct Blink {
    pattern: Pattern,
    step: usize,
    step_started: Instant,
}

impl Blink {
    /// Starts `pattern` at its first (lit) step at `now`.
    pub fn start(pattern: Pattern, now: Instant) -> Blink {
        Blink {
            pattern,
            step: 0,
            step_started: now,
        }
    }

    /// The pattern being played.
    pub fn pattern(&self) -> Pattern {
        self.pattern
    }

    /// What the LED shows in the current step.
    pub fn output(&self) -> Output {
        Output {
            on: self.step % 2 == 0,
            colour: self.pattern.colour,
        }
    }

    /// When the current step ends; `None` for solid (nothing ever changes).
    pub fn next_edge(&self) -> Option<Instant> {
        let ms = self.pattern.steps.get(self.step)?;
        Some(self.step_started + Duration::from_millis(u64::from(*ms)))
    }

    /// Moves to the next step, which begins exactly when the current one ends (no drift,
    /// however late the caller wakes).
    pub fn advance(&mut self) {
        if let Some(edge) = self.next_edge() {
            self.step = (self.step + 1) % self.pattern.steps.len();
            self.step_started = edge;
        }
    }
}

/// The state-to-pattern table in Markdown, as it appears in `docs/LED.md`.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| State | Pattern | On/off (ms, repeated) | RGB colour |\n|---|---|---|---|\n",
    );
    for state in DeviceState::ALL {
        let p = Pattern::of(state);
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            state,
            p.name,
            p.timings(),
            p.colour.as_str()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_state_has_its_own_pattern_and_cycles_alternate_on_and_off() {
        let mut names = HashSet::new();
        let mut shapes = HashSet::new();
        for state in DeviceState::ALL {
            let p = Pattern::of(state);
            assert!(names.insert(p.name), "{state}: pattern name reused");
            assert!(shapes.insert(p.steps), "{state}: timings reused");
            assert_eq!(p.steps.len() % 2, 0, "{state}: steps must pair on with off");
            assert!(
                p.steps.iter().all(|&ms| ms >= 50),
                "{state}: a step under 50 ms is a flicker"
            );
        }
    }

    #[test]
    fn is_on_at_follows_the_steps_and_wraps() {
        let p = Pattern::of(DeviceState::Recording); // 100 on, 150 off, 100 on, 650 off
        let at = |ms| p.is_on_at(Duration::from_millis(ms));
        assert!(at(0) && at(99) && !at(100) && !at(249) && at(250) && !at(350));
        assert!(at(1000) && !at(1100), "wraps after 1000 ms");
        assert!(Pattern::of(DeviceState::Online).is_on_at(Duration::from_secs(3600)));
    }

    #[test]
    fn sos_is_three_short_three_long_three_short() {
        let p = Pattern::of(DeviceState::StorageFault);
        let ons: Vec<u32> = p.steps.iter().step_by(2).copied().collect();
        assert_eq!(ons, [150, 150, 150, 450, 450, 450, 150, 150, 150]);
        assert_eq!(p.cycle(), Duration::from_millis(5100));
    }

    #[test]
    fn blink_edges_are_anchored_to_the_start_not_to_wakeups() {
        let t0 = Instant::now();
        let mut b = Blink::start(Pattern::of(DeviceState::Pairing), t0);
        assert!(b.output().on);
        for i in 1..=10u64 {
            assert_eq!(b.next_edge(), Some(t0 + Duration::from_millis(100 * i)));
            b.advance();
            assert_eq!(b.output().on, i % 2 == 0);
        }
        assert_eq!(Pattern::of(DeviceState::Pairing).steady(), Some((100, 100)));
        assert_eq!(Pattern::of(DeviceState::Recording).steady(), None);
        assert_eq!(Pattern::of(DeviceState::Online).steady(), None);
        let mut solid = Blink::start(Pattern::of(DeviceState::Online), t0);
        solid.advance();
        assert_eq!((solid.next_edge(), solid.output().on), (None, true));
    }

    #[test]
    fn docs_led_md_carries_the_engines_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/LED.md");
        let doc = std::fs::read_to_string(&path).expect("docs/LED.md");
        let start = doc.find("<!-- led-table:start").expect("start marker");
        let body = &doc[start..];
        let body = &body[body.find('\n').expect("marker line") + 1..];
        let end = body.find("<!-- led-table:end -->").expect("end marker");
        assert_eq!(
            &body[..end],
            markdown_table(),
            "docs/LED.md drifted from src/signal/pattern.rs: paste markdown_table() between the markers"
        );
    }

    #[test]
    fn markdown_table_has_one_row_per_state() {
        let table = markdown_table();
        assert_eq!(table.lines().count(), 2 + DeviceState::ALL.len());
        assert!(table.contains("| `storage_fault` | sos | 150 on, 150 off,"));
        assert!(table.contains("| `online` | solid | solid on | green |"));
    }
}
