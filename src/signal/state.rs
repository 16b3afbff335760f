//! One state, resolved from facts by a fixed priority.
//!
//! Priority, highest first (the first that holds wins):
//! `shutting_down` > `identify` > `storage_fault` > `booting` > `recording` >
//! `needs_pairing` > `pairing` > `unpaired` > `offline_buffering` > `connecting` > `online`.
//! A clerk must see "do not unplug" (recording) over a pairing problem, and a storage
//! fault over everything but shutdown and a deliberate identify.

use serde::Serialize;
use tokio::sync::watch;

/// The state of the upstream link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    /// No upstream: not paired, or `[upstream] enabled = false`.
    #[default]
    Disabled,
    /// Paired, not connected (connecting or backing off), and nothing waits for central.
    Connecting,
    /// Connected and acknowledged by central.
    Online,
    /// Paired, not connected, and something waits for central (outbox frames, or the
    /// agent recording), whatever restarts happened: shown as `offline_buffering`.
    Offline,
}

/// The facts the state is resolved from. Each part sets its own fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// Start-up is not finished.
    pub booting: bool,
    /// SIGTERM received.
    pub shutting_down: bool,
    /// The store cannot be written (full disk, I/O errors) or was quarantined.
    pub storage_fault: bool,
    /// Credentials exist.
    pub paired: bool,
    /// A pairing attempt is under way.
    pub pairing: bool,
    /// The token expired or central rejected it repeatedly: a person must re-pair.
    pub needs_pairing: bool,
    /// Central cannot have activated the device: its first connection came after the
    /// enrollment code's 15 minutes (contract §a.5). Shown as `needs_pairing`: a person
    /// must have the code re-issued and pair again. Set by `pairing::activation`.
    pub not_activated: bool,
    /// The upstream link.
    pub link: Link,
    /// The agent's last status says it is recording.
    pub recording: bool,
    /// Someone asked the box to identify itself.
    pub identify: bool,
}

impl Default for Facts {
    fn default() -> Self {
        Self {
            booting: true,
            shutting_down: false,
            storage_fault: false,
            paired: false,
            pairing: false,
            needs_pairing: false,
            not_activated: false,
            link: Link::Disabled,
            recording: false,
            identify: false,
        }
    }
}

/// The one state shown on the LED, `/status` and systemd's STATUS= line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Starting up.
    Booting,
    /// Not paired with CivicPress; local rooms work.
    Unpaired,
    /// Pairing in progress.
    Pairing,
    /// Paired, connecting to central.
    Connecting,
    /// Connected to central.
    Online,
    /// Central unreachable; frames kept on flash.
    OfflineBuffering,
    /// The capture agent is recording.
    Recording,
    /// Token expired or rejected: re-pair with a fresh code.
    NeedsPairing,
    /// The store cannot be written.
    StorageFault,
    /// Stopping.
    ShuttingDown,
    /// Identify blink requested.
    Identify,
}

impl DeviceState {
    /// Every state, for `bbedge led test` and docs.
    pub const ALL: [DeviceState; 11] = [
        DeviceState::Booting,
        DeviceState::Unpaired,
        DeviceState::Pairing,
        DeviceState::Connecting,
        DeviceState::Online,
        DeviceState::OfflineBuffering,
        DeviceState::Recording,
        DeviceState::NeedsPairing,
        DeviceState::StorageFault,
        DeviceState::ShuttingDown,
        DeviceState::Identify,
    ];

    /// The stable name (`offline_buffering`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Booting => "booting",
            DeviceState::Unpaired => "unpaired",
            DeviceState::Pairing => "pairing",
            DeviceState::Connecting => "connecting",
            DeviceState::Online => "online",
            DeviceState::OfflineBuffering => "offline_buffering",
            DeviceState::Recording => "recording",
            DeviceState::NeedsPairing => "needs_pairing",
            DeviceState::StorageFault => "storage_fault",
            DeviceState::ShuttingDown => "shutting_down",
            DeviceState::Identify => "identify",
        }
    }

    /// Resolves the facts by the documented priority.
    pub fn resolve(f: &Facts) -> DeviceState {
        if f.shutting_down {
            DeviceState::ShuttingDown
        } else if f.identify {
            DeviceState::Identify
        } else if f.storage_fault {
            DeviceState::StorageFault
        } else if f.booting {
            DeviceState::Booting
        } else if f.recording {
            DeviceState::Recording
        } else if f.needs_pairing || f.not_activated {
            DeviceState::NeedsPairing
        } else if f.pairing {
            DeviceState::Pairing
        } else if !f.paired {
            DeviceState::Unpaired
        } else {
            match f.link {
                Link::Offline => DeviceState::OfflineBuffering,
                Link::Connecting | Link::Disabled => DeviceState::Connecting,
                Link::Online => DeviceState::Online,
            }
        }
    }
}

impl std::fmt::Display for DeviceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Holds the facts; every change wakes the subscribers (LED task, systemd status).
#[derive(Debug, Clone)]
pub struct StatusHub {
    tx: watch::Sender<Facts>,
}

impl Default for StatusHub {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusHub {
    /// A hub in the `booting` state.
    pub fn new() -> Self {
        Self {
            tx: watch::Sender::new(Facts::default()),
        }
    }

    /// Changes facts; subscribers wake only when the facts really changed.
    pub fn update(&self, f: impl FnOnce(&mut Facts)) {
        self.tx.send_if_modified(|facts| {
            let before = facts.clone();
            f(facts);
            *facts != before
        });
    }

    /// The current facts.
    pub fn facts(&self) -> Facts {
        self.tx.borrow().clone()
    }

    /// The current state.
    pub fn state(&self) -> DeviceState {
        DeviceState::resolve(&self.tx.borrow())
    }

    /// A receiver that wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<Facts> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paired_online() -> Facts {
        Facts {
            booting: false,
            paired: true,
            link: Link::Online,
            ..Facts::default()
        }
    }

    #[test]
    fn priority_table_picks_the_first_fact_that_holds() {
        let base = paired_online();
        assert_eq!(DeviceState::resolve(&base), DeviceState::Online);
        type Row = (fn(&mut Facts), DeviceState);
        let cases: [Row; 10] = [
            (|f| f.link = Link::Offline, DeviceState::OfflineBuffering),
            (|f| f.link = Link::Connecting, DeviceState::Connecting),
            (|f| f.paired = false, DeviceState::Unpaired),
            (|f| f.pairing = true, DeviceState::Pairing),
            (|f| f.needs_pairing = true, DeviceState::NeedsPairing),
            (|f| f.not_activated = true, DeviceState::NeedsPairing),
            (|f| f.recording = true, DeviceState::Recording),
            (|f| f.storage_fault = true, DeviceState::StorageFault),
            (|f| f.identify = true, DeviceState::Identify),
            (|f| f.shutting_down = true, DeviceState::ShuttingDown),
        ];
        // Each row, applied on top of all rows before it, must win over them.
        let mut facts = base;
        for (apply, expected) in cases {
            apply(&mut facts);
            assert_eq!(DeviceState::resolve(&facts), expected, "{facts:?}");
        }
    }

    #[test]
    fn storage_fault_beats_recording_beats_online() {
        let mut f = paired_online();
        f.recording = true;
        assert_eq!(DeviceState::resolve(&f), DeviceState::Recording);
        f.storage_fault = true;
        assert_eq!(DeviceState::resolve(&f), DeviceState::StorageFault);
    }

    #[test]
    fn hub_wakes_subscribers_only_on_real_changes() {
        let hub = StatusHub::new();
        let mut rx = hub.subscribe();
        rx.mark_unchanged();
        hub.update(|f| f.booting = true);
        assert!(!rx.has_changed().unwrap());
        hub.update(|f| f.booting = false);
        assert!(rx.has_changed().unwrap());
        assert_eq!(hub.state(), DeviceState::Unpaired);
    }
}
