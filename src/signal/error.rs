//! `signal::Error`: what can go wrong driving the status LED. None of these stops the
//! daemon: opening errors fall back to the simulated LED with one warning, request
//! errors go back to the caller.

use crate::error::ErrorCode;
use std::path::PathBuf;

/// The udev rule shipped in the package, named in permission fixes.
pub const UDEV_RULE: &str = "/etc/udev/rules.d/99-bbedge-led.rules";

/// An LED error. Codes are stable (`LED_PERMISSION_DENIED`, …).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The sysfs LED directory does not exist.
    #[error("no LED at {path}; check status_led.sysfs_name (ACT on a Pi, led0 on older images)")]
    NotFound {
        /// The missing directory.
        path: PathBuf,
    },
    /// A sysfs or GPIO file exists but this user may not write it.
    #[error("permission denied writing {path}; {fix}")]
    PermissionDenied {
        /// The file.
        path: PathBuf,
        /// How to fix it (group, udev rule).
        fix: String,
    },
    /// Another I/O error on a sysfs file.
    #[error("cannot use {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `trigger` did not name a current trigger in `[brackets]`.
    #[error("cannot read the current trigger from {path}: no [bracketed] entry")]
    BadTrigger {
        /// The trigger file.
        path: PathBuf,
    },
    /// rppal does not know this board (not a Raspberry Pi).
    #[error("GPIO is unavailable: this is not a known Raspberry Pi model; clear status_led.gpio_pins or use backend \"sysfs\"")]
    GpioUnknownModel,
    /// Any other rppal error (pin in use, pin not available, I/O).
    #[error("GPIO pin {pin}: {source}")]
    Gpio {
        /// The BCM pin.
        pin: u8,
        /// rppal's error.
        source: rppal::gpio::Error,
    },
    /// The LED task's mailbox is full; try again shortly.
    #[error("the LED is busy (its request queue is full); try again")]
    Busy,
    /// The LED task has stopped (the daemon is shutting down).
    #[error("the LED task has stopped")]
    Stopped,
    /// A request was out of range.
    #[error("{0}")]
    BadRequest(String),
}

impl ErrorCode for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "LED_NOT_FOUND",
            Error::PermissionDenied { .. } => "LED_PERMISSION_DENIED",
            Error::Io { .. } => "LED_IO",
            Error::BadTrigger { .. } => "LED_BAD_TRIGGER",
            Error::GpioUnknownModel => "LED_GPIO_UNKNOWN_MODEL",
            Error::Gpio { .. } => "LED_GPIO",
            Error::Busy => "LED_BUSY",
            Error::Stopped => "LED_STOPPED",
            Error::BadRequest(_) => "LED_BAD_REQUEST",
        }
    }
}

impl Error {
    /// Maps an I/O error on a sysfs file, writing the fix into permission errors.
    pub fn sysfs_io(path: PathBuf, source: std::io::Error) -> Error {
        match source.kind() {
            std::io::ErrorKind::PermissionDenied => Error::PermissionDenied {
                fix: format!(
                    "install {UDEV_RULE} (shipped in systemd/) so group gpio may write the LED's trigger and brightness, \
                     run `udevadm trigger --subsystem-match=leds`, and run bbedge in group gpio (SupplementaryGroups=gpio)"
                ),
                path,
            },
            std::io::ErrorKind::NotFound => Error::NotFound { path },
            _ => Error::Io { path, source },
        }
    }

    /// Maps an rppal error for `pin`.
    pub fn gpio(pin: u8, source: rppal::gpio::Error) -> Error {
        match source {
            rppal::gpio::Error::UnknownModel => Error::GpioUnknownModel,
            rppal::gpio::Error::PermissionDenied(path) => Error::PermissionDenied {
                path: PathBuf::from(path),
                fix: "add the bbedge user to group gpio (SupplementaryGroups=gpio in the unit) \
                      and allow the device (DeviceAllow=/dev/gpiomem rw, /dev/gpiomem0 rw on a Pi 5, char-gpiochip rw)"
                    .to_owned(),
            },
            source => Error::Gpio { pin, source },
        }
    }

    /// Whether the hardware is simply absent (expected on a laptop), as opposed to
    /// present but broken or forbidden (a person should fix it).
    pub fn is_absent(&self) -> bool {
        matches!(self, Error::NotFound { .. } | Error::GpioUnknownModel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_name_the_group_and_the_udev_rule() {
        let e = Error::sysfs_io(
            "/sys/class/leds/ACT/trigger".into(),
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert_eq!(e.code(), "LED_PERMISSION_DENIED");
        let msg = e.to_string();
        assert!(msg.contains("/sys/class/leds/ACT/trigger"), "{msg}");
        assert!(
            msg.contains("group gpio") && msg.contains(UDEV_RULE),
            "{msg}"
        );
        let e = Error::gpio(
            17,
            rppal::gpio::Error::PermissionDenied("/dev/gpiomem".into()),
        );
        assert!(e.to_string().contains("SupplementaryGroups=gpio"), "{e}");
    }

    #[test]
    fn unknown_model_counts_as_absent_hardware() {
        let e = Error::gpio(17, rppal::gpio::Error::UnknownModel);
        assert_eq!(e.code(), "LED_GPIO_UNKNOWN_MODEL");
        assert!(e.is_absent());
        assert!(!Error::gpio(17, rppal::gpio::Error::PinUsed(17)).is_absent());
    }
}
