//! Browsing: listen for `_civicpress-box._tcp` for a while and list the boxes heard.

use super::txt::{self, Seen, SERVICE_TYPE};
use super::Error;
use mdns_sd::ServiceEvent;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// How much longer a browse waits when a box was heard without its TXT records.
const TXT_GRACE: Duration = Duration::from_millis(1500);

/// One box heard on the LAN.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Found {
    /// What its TXT records and instance name say.
    #[serde(flatten)]
    pub seen: Seen,
    /// Its addresses (IPv4 first).
    pub addresses: Vec<IpAddr>,
    /// The room port.
    pub port: u16,
    /// The host name of its address records.
    pub host: String,
}

/// Browses for `window` and returns every box still advertised at its end, by name.
/// Blocking (mdns-sd runs its own thread); a peer's malformed records are skipped.
pub fn browse(window: Duration) -> Result<Vec<Found>, Error> {
    watch(window, |_| ControlFlow::Continue(()))
}

/// What [`watch`] reports as it happens.
#[derive(Debug)]
pub enum Heard<'a> {
    /// A box was resolved, or its records changed (e.g. a new state in TXT).
    Resolved(&'a Found),
    /// A box said goodbye (or its records expired): its full instance name.
    Removed(&'a str),
}

/// Like [`browse`], calling `heard` with each change in order, until `window` ends or
/// `heard` breaks; returns the boxes still advertised then.
pub fn watch(
    window: Duration,
    mut heard: impl FnMut(Heard<'_>) -> ControlFlow<()>,
) -> Result<Vec<Found>, Error> {
    let daemon = super::responder()?;
    let events = daemon
        .browse(SERVICE_TYPE)
        .map_err(|e| Error::Browse(e.to_string()))?;
    let mut deadline = Instant::now() + window;
    let mut extended = false;
    let mut found: BTreeMap<String, Found> = BTreeMap::new();
    loop {
        let mut left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() && !extended && found.values().any(|f| f.seen.txt.is_empty()) {
            // mdns-sd reports an instance once its SRV and address records are in, which
            // can be a packet before its TXT records: give those a moment more.
            extended = true;
            deadline += TXT_GRACE;
            left = TXT_GRACE;
        }
        if left.is_zero() {
            break;
        }
        match events.recv_timeout(left) {
            Ok(ServiceEvent::ServiceResolved(r)) => {
                let props: BTreeMap<String, String> = r
                    .get_properties()
                    .iter()
                    .map(|p| (p.key().to_owned(), p.val_str().to_owned()))
                    .collect();
                let addresses: BTreeSet<IpAddr> = r
                    .get_addresses()
                    .iter()
                    .map(mdns_sd::ScopedIp::to_ip_addr)
                    .collect();
                let mut addresses: Vec<IpAddr> = addresses.into_iter().collect();
                addresses.sort_by_key(std::net::IpAddr::is_ipv6);
                let box_ = Found {
                    seen: txt::read(r.get_fullname(), props),
                    addresses,
                    port: r.get_port(),
                    host: r.get_hostname().to_owned(),
                };
                let flow = heard(Heard::Resolved(&box_));
                found.insert(r.get_fullname().to_owned(), box_);
                if flow.is_break() {
                    break;
                }
            }
            Ok(ServiceEvent::ServiceRemoved(_, fullname)) => {
                found.remove(&fullname);
                if heard(Heard::Removed(&fullname)).is_break() {
                    break;
                }
            }
            Ok(_) => {}
            Err(mdns_sd::RecvTimeoutError::Timeout) => break,
            Err(mdns_sd::RecvTimeoutError::Disconnected) => {
                return Err(Error::Browse("the mDNS responder stopped".to_owned()))
            }
        }
    }
    let _ = daemon.stop_browse(SERVICE_TYPE);
    if let Ok(done) = daemon.shutdown() {
        let _ = done.recv_timeout(Duration::from_secs(1));
    }
    Ok(found.into_values().collect())
}
