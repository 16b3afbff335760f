//! What the LED shows once the daemon has stopped for good: exit 64 (bad configuration)
//! or 78 (unusable TLS files), which the unit does not restart
//! (`RestartPreventExitStatus=`). The LED task is gone by then, so the pattern must
//! outlive the process: the sysfs backend hands the LED to the kernel's `timer`
//! trigger, which keeps blinking [`STOPPED`] with no process running. A GPIO LED
//! cannot (rppal gives the pins back on exit) and stays dark; the simulated LED records
//! the pattern for tests. docs/LED.md says how to read it.

use super::sim::SimLed;
use super::sysfs::{current_trigger, offers, start_timer};
use crate::config::{LedBackend, StatusLed};
use std::path::{Path, PathBuf};

/// The kernel trigger that blinks by itself.
pub const TIMER_TRIGGER: &str = "timer";

/// A pattern the kernel's `timer` trigger can blink: one on time, one off time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blink {
    /// Its name in docs/LED.md and in the log.
    pub name: &'static str,
    /// Milliseconds lit.
    pub on_ms: u64,
    /// Milliseconds dark.
    pub off_ms: u64,
}

/// `config_fault`, "stutter": lit, with a short dark gap four times a second. No
/// pattern of the running daemon looks like it (the only mostly-lit one, `wink`, dips
/// once every two seconds).
pub const STOPPED: Blink = Blink {
    name: "config_fault",
    on_ms: 200,
    off_ms: 50,
};

/// Where [`leave`] left the pattern, for the last log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Left {
    /// The kernel blinks this sysfs LED.
    Timer(PathBuf),
    /// The simulated LED recorded it (no hardware).
    Sim,
    /// Nothing shows it, and why.
    Nothing(String),
}

impl std::fmt::Display for Left {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, on, off) = (STOPPED.name, STOPPED.on_ms, STOPPED.off_ms);
        match self {
            Left::Timer(p) => write!(
                f,
                "the LED {} blinks {name} ({on} ms on, {off} ms off, kernel timer trigger)",
                p.display()
            ),
            Left::Sim => write!(f, "the simulated LED records {name}"),
            Left::Nothing(why) => write!(f, "the LED cannot show {name}: {why}"),
        }
    }
}

/// Leaves [`STOPPED`] on the LED `cfg` names, to outlive this process. `state_dir`,
/// when it exists, gets the trigger found in `led-<name>.trigger` (as the LED task
/// keeps it), so the next daemon gives the LED back as it was, not blinking.
pub fn leave(cfg: &StatusLed, state_dir: Option<&Path>, sim: &SimLed) -> Left {
    match cfg.backend {
        LedBackend::Sim => {
            sim.set_timer(STOPPED.on_ms, STOPPED.off_ms);
            Left::Sim
        }
        LedBackend::Gpio => Left::Nothing("a GPIO LED goes dark when the process exits".into()),
        LedBackend::Auto if !cfg.gpio_pins.is_empty() => {
            Left::Nothing("a GPIO LED goes dark when the process exits".into())
        }
        LedBackend::Auto | LedBackend::Sysfs => {
            let dir = cfg.sysfs_root.join(&cfg.sysfs_name);
            let memo = state_dir
                .filter(|d| d.is_dir())
                .map(|d| d.join(format!("led-{}.trigger", cfg.sysfs_name)));
            match timer(&dir, cfg.sysfs_inverted, memo.as_deref()) {
                Ok(()) => Left::Timer(dir),
                Err(why) => Left::Nothing(why),
            }
        }
    }
}

/// Hands `dir` to the kernel's timer trigger with [`STOPPED`]'s times.
fn timer(dir: &Path, inverted: bool, memo: Option<&Path>) -> Result<(), String> {
    let trigger = dir.join("trigger");
    let list = std::fs::read_to_string(&trigger)
        .map_err(|e| format!("cannot read {}: {e}", trigger.display()))?;
    if !offers(&list, TIMER_TRIGGER) {
        return Err(format!(
            "{} offers no `{TIMER_TRIGGER}` trigger (kernel module ledtrig-timer)",
            trigger.display()
        ));
    }
    if let (Some(found), Some(memo)) = (current_trigger(&list), memo) {
        if found != "none" && found != TIMER_TRIGGER {
            let _ = std::fs::write(memo, &found);
        }
    }
    start_timer(dir, inverted, STOPPED.on_ms, STOPPED.off_ms).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Loader;

    fn cfg(root: &Path, backend: &str, inverted: bool) -> StatusLed {
        let env = [
            ("BBEDGE_STATUS_LED__BACKEND", format!("{backend:?}")),
            (
                "BBEDGE_STATUS_LED__SYSFS_ROOT",
                format!("{:?}", root.display().to_string()),
            ),
            ("BBEDGE_STATUS_LED__SYSFS_INVERTED", inverted.to_string()),
        ];
        Loader::builtin()
            .env(env.into_iter().map(|(k, v)| (k.to_owned(), v)))
            .load()
            .expect("config loads")
            .config
            .status_led
    }

    fn fake(root: &Path, triggers: &str) -> PathBuf {
        let dir = root.join("ACT");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("trigger"), triggers).unwrap();
        std::fs::write(dir.join("brightness"), "0\n").unwrap();
        dir
    }

    fn read(p: PathBuf) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn sysfs_hands_the_led_to_the_kernel_timer_and_remembers_the_trigger_found() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = fake(tmp.path(), "none [mmc0] timer heartbeat\n");
        let left = leave(
            &cfg(tmp.path(), "auto", false),
            Some(tmp.path()),
            &SimLed::new(),
        );
        assert_eq!(left, Left::Timer(dir.clone()));
        assert_eq!(read(dir.join("trigger")), "timer");
        assert_eq!(read(dir.join("delay_on")), "200");
        assert_eq!(read(dir.join("delay_off")), "50");
        assert_eq!(read(tmp.path().join("led-ACT.trigger")), "mmc0");
        assert!(left.to_string().contains("config_fault"), "{left}");
    }

    #[test]
    fn the_next_daemon_gives_back_the_remembered_trigger_not_the_timer() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = fake(tmp.path(), "none [mmc0] timer\n");
        leave(
            &cfg(tmp.path(), "sysfs", false),
            Some(tmp.path()),
            &SimLed::new(),
        );
        // What the kernel would show now.
        std::fs::write(dir.join("trigger"), "none mmc0 [timer]\n").unwrap();
        let memo = tmp.path().join("led-ACT.trigger");
        let led = super::super::sysfs::SysfsLed::open(&dir, false, Some(&memo)).unwrap();
        assert_eq!(led.saved_trigger(), "mmc0");
    }

    #[test]
    fn inverted_leds_swap_the_times_and_a_kernel_without_timer_is_said() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = fake(tmp.path(), "[none] timer\n");
        leave(&cfg(tmp.path(), "sysfs", true), None, &SimLed::new());
        assert_eq!(read(dir.join("delay_on")), "50");
        assert_eq!(read(dir.join("delay_off")), "200");
        std::fs::write(dir.join("trigger"), "[none] mmc0\n").unwrap();
        let left = leave(&cfg(tmp.path(), "sysfs", false), None, &SimLed::new());
        assert!(
            matches!(&left, Left::Nothing(why) if why.contains("ledtrig-timer")),
            "{left}"
        );
    }

    #[test]
    fn the_simulated_led_records_the_pattern() {
        let tmp = tempfile::tempdir().unwrap();
        let sim = SimLed::new();
        assert_eq!(sim.timer(), None);
        let left = leave(&cfg(tmp.path(), "sim", false), None, &sim);
        assert_eq!(left, Left::Sim);
        assert_eq!(sim.timer(), Some((200, 50)));
    }
}
