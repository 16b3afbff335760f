//! The device's single status state ([`state`]) and the status LED that shows it.
//!
//! [`StatusHub`] holds the facts every part reports (store fault, pairing, upstream
//! link, agent recording, shutdown) in a `watch` channel; the LED task, `/status` and
//! systemd's STATUS= line all read the one [`DeviceState`] resolved from them.
//!
//! - [`pattern`]: the pure pattern engine (state → rhythm and colour).
//! - [`led`]: the LED task; [`LedHandle`] asks it for identify or a `led test` step and
//!   reads what it shows (`/status`, `/metrics`).
//! - [`fault`]: the pattern left on the LED when the daemon stops for good.
//! - [`backend`]: the one hardware seam, implemented by [`sysfs`], [`gpio`] and [`sim`],
//!   and the `auto` choice between them.

pub mod agent;
pub mod backend;
pub mod control;
mod error;
pub mod fault;
pub mod gpio;
mod handle;
pub mod led;
pub mod metrics;
pub mod pattern;
pub mod sim;
pub mod state;
pub mod sysfs;
#[cfg(test)]
mod tests;

pub use error::{Error, UDEV_RULE};
pub use handle::{LedHandle, LedView, Shown, HISTORY, MAX_REQUEST};
pub use led::{build, LedTask, SHUTDOWN_SHOW};
pub use state::{DeviceState, Facts, Link, StatusHub};
