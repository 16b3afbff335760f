//! The one seam to LED hardware: [`Backend`], implemented by sysfs, GPIO and the
//! simulated LED, and [`choose`], which opens the configured one (or, for `auto`, the
//! first that works) and falls back to the simulated LED rather than failing.

use super::pattern::Output;
use super::{gpio::GpioLed, sim::SimLed, sysfs::SysfsLed, Error};
use crate::config::{LedBackend, StatusLed};
use crate::error::ErrorCode;
use std::path::Path;

/// An LED the LED task drives. Calls are short, non-blocking writes (a sysfs attribute,
/// a GPIO register); they never sleep.
pub trait Backend: Send {
    /// `sysfs`, `gpio` or `sim`.
    fn kind(&self) -> &'static str;
    /// Shows `out`, taking the LED back from a blink handed over by [`Backend::blink`].
    fn set(&mut self, out: Output) -> Result<(), Error>;
    /// Hands over a steady rhythm, from now: `lit` for `on_ms`, dark for `off_ms`,
    /// repeated, played with no process waking (the kernel's `timer` trigger). `false`
    /// when this LED cannot; the LED task then drives every edge itself.
    fn blink(&mut self, lit: Output, on_ms: u32, off_ms: u32) -> Result<bool, Error> {
        let _ = (lit, on_ms, off_ms);
        Ok(false)
    }
    /// Gives the LED back as it was found (sysfs trigger) or dark (GPIO).
    fn restore(&mut self) -> Result<(), Error>;
    /// Whether a person can see it (the shutdown pattern lingers only then).
    fn is_physical(&self) -> bool {
        true
    }
}

/// The opened backend and why it was chosen.
pub struct Chosen {
    /// The backend.
    pub led: Box<dyn Backend>,
    /// Why this one, for the log and `/status`.
    pub reason: String,
    /// A hardware error a person should fix (logged once as a warning).
    pub warning: Option<Error>,
}

/// Opens the LED `cfg` asks for; never fails: anything that cannot be opened becomes
/// the simulated LED `sim`, with the reason recorded.
///
/// `state_dir`, when given, keeps `led-<name>.trigger` so a sysfs trigger survives a crash.
pub fn choose(cfg: &StatusLed, sim: SimLed, state_dir: Option<&Path>) -> Chosen {
    let sysfs_path = cfg.sysfs_root.join(&cfg.sysfs_name);
    let memo = state_dir.map(|d| d.join(format!("led-{}.trigger", cfg.sysfs_name)));
    let memo = memo.as_deref();
    let fallback = |reason: String, warning: Option<Error>| Chosen {
        led: Box::new(sim.clone()),
        reason,
        warning,
    };
    match cfg.backend {
        LedBackend::Sim => fallback("configured: backend = \"sim\"".to_owned(), None),
        LedBackend::Gpio => match GpioLed::open(&cfg.gpio_pins, &cfg.gpio_active_low) {
            Ok(led) => opened(led, format!("configured: gpio pins {:?}", cfg.gpio_pins)),
            Err(e) => fallback(format!("gpio failed [{}]: {e}", e.code()), Some(e)),
        },
        LedBackend::Sysfs => match SysfsLed::open(&sysfs_path, cfg.sysfs_inverted, memo) {
            Ok(led) => opened(led, format!("configured: {}", sysfs_path.display())),
            Err(e) => fallback(format!("sysfs failed [{}]: {e}", e.code()), Some(e)),
        },
        LedBackend::Auto => {
            let mut notes = Vec::new();
            let mut warning = None;
            if cfg.gpio_pins.is_empty() {
                notes.push("no gpio_pins configured".to_owned());
            } else {
                match GpioLed::open(&cfg.gpio_pins, &cfg.gpio_active_low) {
                    Ok(led) => {
                        return opened(led, format!("auto: gpio pins {:?} opened", cfg.gpio_pins))
                    }
                    Err(e) => {
                        notes.push(format!("gpio [{}]: {e}", e.code()));
                        // Pins were configured, so someone expects them: always worth a warning.
                        warning = Some(e);
                    }
                }
            }
            match SysfsLed::open(&sysfs_path, cfg.sysfs_inverted, memo) {
                Ok(led) => {
                    notes.push(format!("{} is writable", sysfs_path.display()));
                    return Chosen {
                        led: Box::new(led),
                        reason: format!("auto: {}", notes.join("; ")),
                        warning,
                    };
                }
                Err(e) => {
                    notes.push(format!("sysfs [{}]: {e}", e.code()));
                    if !e.is_absent() && warning.is_none() {
                        warning = Some(e);
                    }
                }
            }
            fallback(format!("auto: {}", notes.join("; ")), warning)
        }
    }
}

fn opened(led: impl Backend + 'static, reason: String) -> Chosen {
    Chosen {
        led: Box::new(led),
        reason,
        warning: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Loader;

    fn cfg(dir: &std::path::Path, backend: &str, pins: &str) -> StatusLed {
        let env = [
            ("BBEDGE_STATUS_LED__BACKEND", format!("{backend:?}")),
            (
                "BBEDGE_STATUS_LED__SYSFS_ROOT",
                format!("{:?}", dir.display().to_string()),
            ),
            ("BBEDGE_STATUS_LED__GPIO_PINS", pins.to_owned()),
        ];
        let loaded = Loader::builtin()
            .env(env.into_iter().map(|(k, v)| (k.to_owned(), v)))
            .load()
            .expect("config loads");
        loaded.config.status_led
    }

    fn fake_led(root: &std::path::Path) {
        let dir = root.join("ACT");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("trigger"), "none [mmc0] timer heartbeat\n").unwrap();
        std::fs::write(dir.join("brightness"), "0\n").unwrap();
    }

    #[test]
    fn auto_without_pins_or_led_is_sim_without_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let c = choose(&cfg(dir.path(), "auto", "[]"), SimLed::new(), None);
        assert_eq!(c.led.kind(), "sim");
        assert!(c.reason.contains("no gpio_pins configured"), "{}", c.reason);
        assert!(c.reason.contains("LED_NOT_FOUND"), "{}", c.reason);
        assert!(
            c.warning.is_none(),
            "a laptop without an LED is not a fault"
        );
    }

    #[test]
    fn auto_takes_a_writable_sysfs_led_when_gpio_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        fake_led(dir.path());
        // No Raspberry Pi here: rppal answers UnknownModel, so gpio is skipped.
        let c = choose(&cfg(dir.path(), "auto", "[17]"), SimLed::new(), None);
        assert_eq!(c.led.kind(), "sysfs", "{}", c.reason);
        assert!(c.reason.contains("is writable"), "{}", c.reason);
        assert!(c.reason.contains("gpio ["), "{}", c.reason);
        assert!(
            c.warning.is_some(),
            "configured pins that do not open deserve a warning"
        );
    }

    #[test]
    fn an_explicit_backend_that_cannot_open_falls_back_to_sim_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let c = choose(&cfg(dir.path(), "sysfs", "[]"), SimLed::new(), None);
        assert_eq!(c.led.kind(), "sim");
        assert_eq!(
            c.warning.as_ref().map(crate::error::ErrorCode::code),
            Some("LED_NOT_FOUND")
        );
        let c = choose(&cfg(dir.path(), "gpio", "[17]"), SimLed::new(), None);
        assert_eq!(c.led.kind(), "sim");
        assert!(c.warning.is_some(), "{}", c.reason);
    }
}
