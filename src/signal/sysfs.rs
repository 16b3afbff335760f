//! The sysfs LED: `<sysfs_root>/<name>/{trigger,brightness}`. Opening takes the LED from
//! the kernel (trigger `none`) and remembers the trigger and brightness it found;
//! [`Backend::restore`] puts both back, so the Pi's ACT LED shows SD activity again.
//! A steady rhythm ([`Backend::blink`]) goes to the kernel's `timer` trigger when the LED
//! offers it, so an idle daemon does not wake for its LED; the next `set` takes it back.

use super::backend::Backend;
use super::pattern::Output;
use super::Error;
use crate::error::ErrorCode;
use std::path::{Path, PathBuf};

/// An LED class device driven through sysfs.
#[derive(Debug)]
pub struct SysfsLed {
    dir: PathBuf,
    /// The brightness written for "on" (`max_brightness`, or 1 when absent).
    max: String,
    /// The LED lights at brightness 0.
    inverted: bool,
    /// The trigger in `[brackets]` at open, restored on shutdown.
    saved_trigger: String,
    /// The brightness at open, restored before the trigger.
    saved_brightness: String,
    /// `restore` ran; otherwise drop restores (an early return must not keep the LED).
    restored: bool,
    /// The LED offers the kernel's `timer` trigger.
    timer_offered: bool,
    /// The kernel's `timer` trigger blinks it now.
    timer_on: bool,
}

/// Why [`SysfsLed`] blinks a steady rhythm itself, once the timer could not be set up.
const TIMER_UNUSABLE: &str = "the LED's timer trigger cannot be set up; bbedge blinks it itself";

impl SysfsLed {
    /// Opens `dir` (e.g. `/sys/class/leds/ACT`): reads the current trigger, sets it to
    /// `none` and checks that `brightness` is writable.
    ///
    /// `memo` (a file in the state directory) remembers the trigger across a crash: a
    /// daemon killed before it could restore leaves `none`, and the next start would
    /// otherwise "restore" `none` for good.
    pub fn open(dir: &Path, inverted: bool, memo: Option<&Path>) -> Result<SysfsLed, Error> {
        if !dir.is_dir() {
            return Err(Error::NotFound {
                path: dir.to_path_buf(),
            });
        }
        let trigger_path = dir.join("trigger");
        let triggers = read(&trigger_path)?;
        let found = current_trigger(&triggers).ok_or_else(|| Error::BadTrigger {
            path: trigger_path.clone(),
        })?;
        let saved_trigger = remember(&found, &triggers, memo);
        let saved_brightness = read(&dir.join("brightness"))?.trim().to_owned();
        let max = match std::fs::read_to_string(dir.join("max_brightness")) {
            Ok(s) if !s.trim().is_empty() => s.trim().to_owned(),
            _ => "1".to_owned(),
        };
        write(&trigger_path, "none")?;
        let led = SysfsLed {
            dir: dir.to_path_buf(),
            max,
            inverted,
            saved_trigger,
            saved_brightness,
            restored: false,
            timer_offered: offers(&triggers, super::fault::TIMER_TRIGGER),
            timer_on: false,
        };
        // Probe brightness now, so an unwritable file is found at start, not mid-blink.
        // On failure, dropping `led` gives the trigger back.
        write(&led.dir.join("brightness"), &led.saved_brightness)?;
        Ok(led)
    }

    /// The trigger that will be restored.
    pub fn saved_trigger(&self) -> &str {
        &self.saved_trigger
    }
}

impl Backend for SysfsLed {
    fn kind(&self) -> &'static str {
        "sysfs"
    }

    fn set(&mut self, out: Output) -> Result<(), Error> {
        if self.timer_on {
            // A brightness written under the timer trigger changes its lit level only.
            write(&self.dir.join("trigger"), "none")?;
            self.timer_on = false;
        }
        let value = if out.on == self.inverted {
            "0"
        } else {
            self.max.as_str()
        };
        write(&self.dir.join("brightness"), value)
    }

    fn blink(&mut self, _lit: Output, on_ms: u32, off_ms: u32) -> Result<bool, Error> {
        if !self.timer_offered {
            return Ok(false);
        }
        self.timer_on = true;
        if let Err(e) = start_timer(&self.dir, self.inverted, on_ms.into(), off_ms.into()) {
            // E.g. delay_on/delay_off, which the kernel creates owned by root when the
            // trigger is set, not writable by the service's user: blink it ourselves
            // from now on, as without the trigger. Only a brightness that cannot be
            // written makes the LED fail.
            tracing::info!(operation = "led.timer", code = e.code(), error = %e, "{TIMER_UNUSABLE}");
            self.timer_offered = false;
            write(&self.dir.join("trigger"), "none")?;
            self.timer_on = false;
            return Ok(false);
        }
        Ok(true)
    }

    fn restore(&mut self) -> Result<(), Error> {
        self.restored = true;
        write(&self.dir.join("brightness"), &self.saved_brightness)?;
        write(&self.dir.join("trigger"), &self.saved_trigger)
    }
}

impl Drop for SysfsLed {
    fn drop(&mut self) {
        if !self.restored {
            let _ = self.restore();
        }
    }
}

/// The trigger to restore: the one found, written to `memo`; or, when `none` was found
/// (left by a crash), the one remembered, if the LED still offers it.
fn remember(found: &str, list: &str, memo: Option<&Path>) -> String {
    let Some(memo) = memo else {
        return found.to_owned();
    };
    // `timer` may be the stopped pattern a daemon left (see `fault`): like `none`, it
    // defers to the trigger remembered, when there is one.
    if found != "none" && found != super::fault::TIMER_TRIGGER {
        if let Err(e) = std::fs::write(memo, found) {
            tracing::debug!(operation = "led.open", path = %memo.display(), error = %e, "cannot remember the LED trigger");
        }
        return found.to_owned();
    }
    std::fs::read_to_string(memo)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty() && t != "none" && offers(list, t))
        .unwrap_or_else(|| found.to_owned())
}

/// Whether a sysfs trigger list such as `none [mmc0] timer` offers `trigger`.
pub fn offers(list: &str, trigger: &str) -> bool {
    list.split_whitespace()
        .any(|t| t.trim_matches(['[', ']']) == trigger)
}

/// Hands `dir` to the kernel's `timer` trigger: lit `on_ms`, dark `off_ms`, repeated.
pub fn start_timer(dir: &Path, inverted: bool, on_ms: u64, off_ms: u64) -> Result<(), Error> {
    // An inverted LED is dark while the kernel says "on".
    let (on, off) = if inverted {
        (off_ms, on_ms)
    } else {
        (on_ms, off_ms)
    };
    write(&dir.join("trigger"), super::fault::TIMER_TRIGGER)?;
    // The kernel creates delay_on/delay_off when the timer trigger is set.
    write(&dir.join("delay_on"), &on.to_string())?;
    write(&dir.join("delay_off"), &off.to_string())
}

/// The entry in `[brackets]` of a sysfs trigger list such as `none [mmc0] timer`.
pub fn current_trigger(list: &str) -> Option<String> {
    list.split_whitespace()
        .find_map(|t| t.strip_prefix('[').and_then(|t| t.strip_suffix(']')))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| Error::sysfs_io(path.to_path_buf(), e))
}

fn write(path: &Path, value: &str) -> Result<(), Error> {
    // sysfs attributes must be written in one write(2); fs::write does that for short values.
    std::fs::write(path, value).map_err(|e| Error::sysfs_io(path.to_path_buf(), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::signal::pattern::Colour;

    fn fake(root: &Path, trigger: &str) -> PathBuf {
        let dir = root.join("leds/ACT");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("trigger"), trigger).unwrap();
        std::fs::write(dir.join("brightness"), "0\n").unwrap();
        std::fs::write(dir.join("max_brightness"), "255\n").unwrap();
        dir
    }

    fn contents(path: PathBuf) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    const ON: Output = Output {
        on: true,
        colour: Colour::Green,
    };
    const OFF: Output = Output {
        on: false,
        colour: Colour::Green,
    };

    #[test]
    fn reads_the_bracketed_trigger() {
        assert_eq!(
            current_trigger("none rc-feedback [mmc0] timer\n").as_deref(),
            Some("mmc0")
        );
        assert_eq!(current_trigger("[none] timer").as_deref(), Some("none"));
        assert_eq!(current_trigger("none timer"), None);
    }

    #[test]
    fn takes_the_led_drives_brightness_and_restores_the_trigger() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = fake(tmp.path(), "none rc-feedback [mmc0] timer heartbeat\n");
        let mut led = SysfsLed::open(&dir, false, None).unwrap();
        assert_eq!(contents(dir.join("trigger")), "none");
        assert_eq!(led.saved_trigger(), "mmc0");
        led.set(ON).unwrap();
        assert_eq!(contents(dir.join("brightness")), "255");
        led.set(OFF).unwrap();
        assert_eq!(contents(dir.join("brightness")), "0");
        led.restore().unwrap();
        assert_eq!(contents(dir.join("trigger")), "mmc0");
    }

    #[test]
    fn dropping_the_led_without_restore_still_gives_the_trigger_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = fake(tmp.path(), "none [heartbeat]\n");
        drop(SysfsLed::open(&dir, false, None).unwrap());
        assert_eq!(contents(dir.join("trigger")), "heartbeat");
    }

    #[test]
    fn a_trigger_left_at_none_by_a_crash_is_restored_from_memory() {
        let tmp = tempfile::tempdir().unwrap();
        let memo = tmp.path().join("led-ACT.trigger");
        let dir = fake(tmp.path(), "none [mmc0] timer\n");
        let led = SysfsLed::open(&dir, false, Some(&memo)).unwrap();
        assert_eq!(contents(memo.clone()), "mmc0");
        std::mem::forget(led); // killed: no restore, trigger stays `none`
        std::fs::write(dir.join("trigger"), "[none] mmc0 timer\n").unwrap();
        let mut led = SysfsLed::open(&dir, false, Some(&memo)).unwrap();
        assert_eq!(led.saved_trigger(), "mmc0");
        led.restore().unwrap();
        assert_eq!(contents(dir.join("trigger")), "mmc0");
        // A remembered trigger the LED no longer offers is not forced on it.
        std::fs::write(dir.join("trigger"), "[none] timer\n").unwrap();
        let led = SysfsLed::open(&dir, false, Some(&memo)).unwrap();
        assert_eq!(led.saved_trigger(), "none");
    }

    #[test]
    fn inverted_polarity_lights_at_zero() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = fake(tmp.path(), "[none] timer\n");
        std::fs::remove_file(dir.join("max_brightness")).unwrap();
        let mut led = SysfsLed::open(&dir, true, None).unwrap();
        led.set(ON).unwrap();
        assert_eq!(contents(dir.join("brightness")), "0");
        led.set(OFF).unwrap();
        assert_eq!(contents(dir.join("brightness")), "1");
    }

    #[test]
    fn an_unwritable_brightness_fails_at_open_and_leaves_the_trigger_as_found() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = fake(tmp.path(), "none [mmc0]\n");
        // A directory cannot be written even by root, unlike a chmod 0444 file.
        std::fs::remove_file(dir.join("brightness")).unwrap();
        std::fs::create_dir(dir.join("brightness")).unwrap();
        let err = SysfsLed::open(&dir, false, None).unwrap_err();
        assert!(
            matches!(err.code(), "LED_IO" | "LED_PERMISSION_DENIED"),
            "{err}"
        );
        assert!(err.to_string().contains("brightness"), "{err}");
        let trigger = contents(dir.join("trigger"));
        assert!(
            trigger.contains("mmc0"),
            "the kernel keeps the LED: {trigger:?}"
        );
    }

    #[test]
    fn a_missing_led_is_not_found() {
        let tmp = tempfile::tempdir().unwrap();
        let err = SysfsLed::open(&tmp.path().join("leds/led0"), false, None).unwrap_err();
        assert_eq!(err.code(), "LED_NOT_FOUND");
        assert!(err.is_absent());
    }
}
