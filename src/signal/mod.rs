//! The device's single status state ([`state`]) and the status LED that shows it.
//!
//! [`StatusHub`] holds the facts every part reports (store fault, pairing, upstream
//! link, agent recording, shutdown) in a `watch` channel; the LED task, `/status` and
//! systemd's STATUS= line all read the one [`DeviceState`] resolved from them.
//!
//! - [`pattern`]: the pure pattern engine (state → rhythm and colour).
//! - [`led`]: the LED task and its [`LedHandle`] (identify, `led test`, `/status`).
//! - [`backend`]: the one hardware seam, implemented by [`sysfs`], [`gpio`] and [`sim`],
//!   and the `auto` choice between them.

pub mod backend;
pub mod control;
mod error;
pub mod gpio;
pub mod led;
pub mod metrics;
pub mod pattern;
pub mod sim;
pub mod state;
pub mod sysfs;
#[cfg(test)]
mod tests;

pub use error::{Error, UDEV_RULE};
pub use led::{build, LedHandle, LedTask, LedView};
pub use state::{DeviceState, Facts, Link, StatusHub};
