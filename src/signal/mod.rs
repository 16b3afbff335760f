//! The device's single status state ([`state`]) and the status LED that shows it.
//!
//! [`StatusHub`] holds the facts every part reports (store fault, pairing, upstream
//! link, agent recording, shutdown) in a `watch` channel; the LED task, `/status` and
//! systemd's STATUS= line all read the one [`DeviceState`] resolved from them.

pub mod identify;
pub mod state;

pub use state::{DeviceState, Facts, Link, StatusHub};
