//! The `discovery` task: advertises the local room over mDNS and re-announces its TXT
//! records when the device state (or the room's UUID, at pairing) changes.

use super::txt::{room_path, Advert, SERVICE_TYPE};
use super::Error;
use crate::room::Service as Rooms;
use crate::signal::StatusHub;
use mdns_sd::{DaemonEvent, ServiceDaemon, ServiceInfo};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a goodbye (TTL 0) for the service may take at shutdown.
const GOODBYE: Duration = Duration::from_secs(1);

/// What the advertisement is built from.
pub struct Parts {
    /// `[device] name`.
    pub name: String,
    /// `[realtime] path`.
    pub path_prefix: String,
    /// `[realtime.tls] enabled`.
    pub tls: bool,
    /// The rooms' bound address (port 0 resolved).
    pub addr: SocketAddr,
    /// The device state.
    pub hub: StatusHub,
    /// The local rooms: the room's current UUID.
    pub rooms: Arc<Rooms>,
}

/// The responder, started, not yet advertising.
pub struct Advertiser {
    daemon: ServiceDaemon,
    parts: Parts,
}

impl Advertiser {
    /// Starts mDNS-sd's responder thread. `Ok(None)` when the rooms listen on a
    /// loopback address: nothing on the LAN could reach them.
    pub fn start(parts: Parts) -> Result<Option<Advertiser>, Error> {
        if parts.addr.ip().is_loopback() {
            tracing::info!(operation = "discovery", realtime_addr = %parts.addr, "the rooms listen on loopback only; not advertised on the LAN");
            return Ok(None);
        }
        let daemon = super::responder()?;
        Ok(Some(Advertiser { daemon, parts }))
    }

    fn advert(&self) -> Advert {
        let p = &self.parts;
        let uuid = p.rooms.device_id.get();
        Advert {
            name: p.name.clone(),
            path: room_path(&p.path_prefix, &uuid),
            uuid,
            tls: p.tls,
            version: crate::version::VERSION.to_owned(),
            state: p.hub.state().as_str().to_owned(),
        }
    }

    /// Registers `advert`, or re-announces it when only its TXT records changed
    /// (mdns-sd treats a second `register` of the same name as an update).
    fn announce(&self, advert: &Advert, probe: bool) -> Result<String, Error> {
        let fail = |reason: String| Error::Register {
            name: advert.instance(),
            reason,
        };
        let addr = self.parts.addr.ip();
        let ips: Vec<IpAddr> = if addr.is_unspecified() {
            Vec::new()
        } else {
            vec![addr]
        };
        let mut info = ServiceInfo::new(
            SERVICE_TYPE,
            &advert.instance(),
            &advert.host(),
            ips.as_slice(),
            self.parts.addr.port(),
            advert.txt().as_slice(),
        )
        .map_err(|e| fail(e.to_string()))?;
        // Listening on every address: advertise every interface's, following changes.
        if addr.is_unspecified() {
            info = info.enable_addr_auto();
        }
        // An update of a name already won needs no new probe (RFC 6762 §8.4): it is
        // announced at once instead of going quiet for the ~750 ms of probing.
        info.set_requires_probe(probe);
        let fullname = info.get_fullname().to_owned();
        self.daemon
            .register(info)
            .map_err(|e| fail(e.to_string()))?;
        Ok(fullname)
    }

    /// Advertises until `token` is cancelled, then says goodbye and stops the responder.
    pub async fn run(self, token: CancellationToken) {
        let mut rx = self.parts.hub.subscribe();
        let events = self.daemon.monitor().ok();
        let mut last: Option<Advert> = None;
        let mut registered: Option<String> = None;
        // Registered, not yet announced: mdns-sd probes the name first (~1 s).
        let mut pending: Option<Advert> = None;
        loop {
            let advert = self.advert();
            if last.as_ref() != Some(&advert) {
                let probe = last
                    .as_ref()
                    .is_none_or(|l| l.instance() != advert.instance());
                match self.announce(&advert, probe) {
                    Ok(fullname) => {
                        if let Some(old) = registered.as_ref().filter(|o| **o != fullname) {
                            let _ = self.daemon.unregister(old);
                        }
                        tracing::debug!(operation = "discovery", instance = %fullname, state = %advert.state, "registered; announcing");
                        registered = Some(fullname);
                        pending = Some(advert.clone());
                        last = Some(advert);
                    }
                    Err(e) => {
                        use crate::error::ErrorCode;
                        tracing::warn!(operation = "discovery", code = e.code(), error = %e, "cannot advertise on the LAN");
                        // Retried at the next state change; `last` stays as it was.
                    }
                }
            }
            tokio::select! {
                () = token.cancelled() => break,
                r = rx.changed() => if r.is_err() { break },
                Some(ev) = next_event(events.as_ref()) => {
                    if let DaemonEvent::Announce(instance, _) = &ev {
                        if let Some(a) = pending.take() {
                            tracing::info!(
                                operation = "discovery",
                                instance = %instance,
                                uuid = %a.uuid,
                                state = %a.state,
                                port = self.parts.addr.port(),
                                "advertised on the LAN"
                            );
                        }
                    }
                    log_event(ev);
                }
            }
        }
        if let Some(fullname) = registered {
            if let Ok(done) = self.daemon.unregister(&fullname) {
                let _ = tokio::time::timeout(GOODBYE, done.recv_async()).await;
            }
        }
        if let Ok(done) = self.daemon.shutdown() {
            let _ = tokio::time::timeout(GOODBYE, done.recv_async()).await;
        }
        tracing::info!(operation = "shutdown", "discovery stopped");
    }
}

async fn next_event(events: Option<&mdns_sd::Receiver<DaemonEvent>>) -> Option<DaemonEvent> {
    match events {
        Some(rx) => rx.recv_async().await.ok(),
        None => std::future::pending().await,
    }
}

fn log_event(ev: DaemonEvent) {
    match ev {
        DaemonEvent::NameChange(c) => tracing::warn!(
            operation = "discovery",
            original = %c.original,
            new_name = %c.new_name,
            "another responder on the LAN holds this name; advertised under a new one"
        ),
        DaemonEvent::Error(e) => {
            tracing::warn!(operation = "discovery", error = %e, "mDNS responder error");
        }
        other => tracing::trace!(operation = "discovery", event = ?other, "mDNS event"),
    }
}

/// The advertiser for the daemon's config, or `None` when `[discovery]` is off, the
/// rooms are on loopback, or the responder cannot start (logged: the box works
/// without being found by name).
pub fn from_config(
    config: &crate::config::Config,
    addr: SocketAddr,
    hub: StatusHub,
    rooms: Arc<Rooms>,
) -> Option<Advertiser> {
    if !config.discovery.enabled {
        return None;
    }
    let parts = Parts {
        name: config.device.name.clone(),
        path_prefix: config.realtime.path.clone(),
        tls: config.realtime.tls.enabled,
        addr,
        hub,
        rooms,
    };
    match Advertiser::start(parts) {
        Ok(a) => a,
        Err(e) => {
            use crate::error::ErrorCode;
            tracing::warn!(operation = "discovery", code = e.code(), error = %e, "cannot advertise on the LAN; the box still serves");
            None
        }
    }
}
