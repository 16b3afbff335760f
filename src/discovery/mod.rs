//! Discovery on the chamber LAN: the box advertises its room over mDNS/DNS-SD, and
//! `bbedge discover` lists the boxes it hears.
//!
//! - [`txt`]: what the advertisement says (service type, instance name, TXT records) and
//!   how a browser reads it back; I/O-free.
//! - [`advertise`]: the `discovery` task: registers the service when the rooms are
//!   bound and re-announces the TXT records whenever the device state changes.
//! - [`browse`]: listens for a few seconds and returns the boxes heard.
//!
//! Built on `mdns-sd` (a maintained pure-Rust responder and browser with its own
//! thread, no async runtime). It binds `0.0.0.0:5353` with `SO_REUSEADDR` (and
//! `SO_REUSEPORT`), as `avahi-daemon` does, so both share the port: Linux delivers
//! every multicast datagram to each socket. docs/DISCOVERY.md has the details.

pub mod advertise;
pub mod browse;
pub mod txt;

pub use advertise::Advertiser;
pub use browse::{browse, watch, Found, Heard};
pub use txt::{Advert, SERVICE_TYPE};

use crate::error::ErrorCode;

/// mdns-sd's responder with the loopback interfaces left out: nothing on the LAN
/// reaches them, and a responder that hears its own probe through `lo` takes it for
/// another box's and renames itself (`name (2)`).
fn responder() -> Result<mdns_sd::ServiceDaemon, Error> {
    let daemon = mdns_sd::ServiceDaemon::new().map_err(|e| Error::Daemon(e.to_string()))?;
    daemon
        .disable_interface(vec![
            mdns_sd::IfKind::LoopbackV4,
            mdns_sd::IfKind::LoopbackV6,
        ])
        .map_err(|e| Error::Daemon(e.to_string()))?;
    Ok(daemon)
}

/// Why discovery could not advertise or browse.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The mDNS responder could not be started (its thread, its poller).
    #[error("cannot start the mDNS responder: {0}")]
    Daemon(String),
    /// The service could not be registered or updated.
    #[error("cannot advertise {name:?} over mDNS: {reason}")]
    Register {
        /// The instance name.
        name: String,
        /// What mdns-sd said.
        reason: String,
    },
    /// Browsing could not be started.
    #[error("cannot browse for {SERVICE_TYPE}: {0}")]
    Browse(String),
}

impl ErrorCode for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Daemon(_) => "MDNS_START",
            Error::Register { .. } => "MDNS_REGISTER",
            Error::Browse(_) => "MDNS_BROWSE",
        }
    }
}
