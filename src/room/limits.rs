//! Connection caps, in two stages that do not share slots (docs/ROOMS.md, "Connection
//! limits"):
//! - **handshake** (TCP accepted, TLS and WebSocket handshakes, token check):
//!   `limits.max_handshakes` in total and `rate_limiting.handshakes_per_ip` per address,
//!   taken at accept. Over either the TCP connection is closed unanswered, so a host
//!   that opens sockets and stays silent holds a few handshake slots for at most
//!   `handshake_timeout`, never a joined slot. The last [`TRUSTED_ADDRESSES`] addresses
//!   an agent or operator joined from have [`TRUSTED_HANDSHAKES`] more handshake slots
//!   of their own, so that a flood from many addresses cannot keep a known agent
//!   from coming back either.
//! - **joined** (after the token check): `limits.max_connections` in total, of which
//!   `reserved_for_agents` only agents and `reserved_for_operators` more only agents and
//!   operators may take; `connections_per_ip`; `connections_per_user` per token, like
//!   central. Over any: close 4029.
//!
//! Every count is released by dropping its guard.

use super::tokens::Role;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Addresses remembered as an agent's or operator's (the most recent ones).
pub const TRUSTED_ADDRESSES: usize = 8;
/// Handshake slots beyond `max_handshakes` that only those addresses may take.
pub const TRUSTED_HANDSHAKES: usize = 8;

/// The caps.
#[derive(Debug)]
pub struct Limits {
    handshakes: Arc<Counts<()>>,
    trusted_handshakes: Arc<Counts<()>>,
    trusted: Mutex<VecDeque<IpAddr>>,
    handshakes_per_ip: Arc<Counts<IpAddr>>,
    joined: Arc<Counts<()>>,
    per_ip: Arc<Counts<IpAddr>>,
    per_token: Arc<Counts<String>>,
    caps: Caps,
}

/// The numbers, from `[realtime.limits]` and `[realtime.rate_limiting]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// `limits.max_handshakes`.
    pub max_handshakes: usize,
    /// `rate_limiting.handshakes_per_ip`.
    pub handshakes_per_ip: usize,
    /// `limits.max_connections`: joined connections in total.
    pub max_connections: usize,
    /// `limits.reserved_for_agents`.
    pub reserved_for_agents: usize,
    /// `limits.reserved_for_operators`.
    pub reserved_for_operators: usize,
    /// `rate_limiting.connections_per_ip`: joined connections per address.
    pub max_per_ip: usize,
    /// `rate_limiting.connections_per_user`: joined connections per token.
    pub max_per_token: usize,
}

impl Caps {
    /// The caps of `[realtime]`.
    pub fn from_config(cfg: &crate::config::Realtime) -> Self {
        let (l, rl) = (&cfg.limits, &cfg.rate_limiting);
        Self {
            max_handshakes: l.max_handshakes,
            handshakes_per_ip: rl.handshakes_per_ip,
            max_connections: l.max_connections,
            reserved_for_agents: l.reserved_for_agents,
            reserved_for_operators: l.reserved_for_operators,
            max_per_ip: rl.connections_per_ip,
            max_per_token: rl.connections_per_user,
        }
    }

    /// Joined connections a client of `role` may find open and still join: all of
    /// `max_connections` for an agent, less the agents' reserve for an operator, less
    /// both reserves for an observer.
    pub fn joined_cap(&self, role: Role) -> usize {
        let m = self.max_connections;
        match role {
            Role::Agent => m,
            Role::Operator => m.saturating_sub(self.reserved_for_agents),
            Role::Observer => m
                .saturating_sub(self.reserved_for_agents)
                .saturating_sub(self.reserved_for_operators),
            // Never reaches a room (tokens::lookup does not know it).
            Role::Admin => 0,
        }
    }
}

/// Which handshake cap refused a new TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeCap {
    /// `rate_limiting.handshakes_per_ip`.
    PerIp,
    /// `limits.max_handshakes`.
    Total,
}

impl HandshakeCap {
    /// The config key, for logs.
    pub fn key(self) -> &'static str {
        match self {
            HandshakeCap::PerIp => "realtime.rate_limiting.handshakes_per_ip",
            HandshakeCap::Total => "realtime.limits.max_handshakes",
        }
    }
}

/// A handshake slot (total and per address), held from accept until the client has
/// joined or been told why not.
#[derive(Debug)]
pub struct Handshake {
    _total: Guard<()>,
    _ip: Guard<IpAddr>,
}

/// Live connections per key.
#[derive(Debug)]
pub struct Counts<K: Hash + Eq>(Mutex<HashMap<K, usize>>);

/// Holds one count; dropping it gives the count back.
#[derive(Debug)]
pub struct Guard<K: Hash + Eq + Clone> {
    counts: Arc<Counts<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> Counts<K> {
    fn new() -> Arc<Self> {
        Arc::new(Counts(Mutex::new(HashMap::new())))
    }

    fn take(self: &Arc<Self>, key: &K, max: usize) -> Option<Guard<K>> {
        let mut m = self.0.lock().ok()?;
        let n = m.entry(key.clone()).or_insert(0);
        if *n >= max {
            if *n == 0 {
                m.remove(key);
            }
            return None;
        }
        *n += 1;
        Some(Guard {
            counts: self.clone(),
            key: key.clone(),
        })
    }

    fn get(&self, key: &K) -> usize {
        self.0
            .lock()
            .ok()
            .and_then(|m| m.get(key).copied())
            .unwrap_or(0)
    }
}

impl<K: Hash + Eq + Clone> Drop for Guard<K> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.counts.0.lock() {
            if let Some(n) = m.get_mut(&self.key) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.key);
                }
            }
        }
    }
}

impl Limits {
    /// Caps from the config.
    pub fn new(caps: Caps) -> Self {
        Self {
            handshakes: Counts::new(),
            trusted_handshakes: Counts::new(),
            trusted: Mutex::new(VecDeque::with_capacity(TRUSTED_ADDRESSES)),
            handshakes_per_ip: Counts::new(),
            joined: Counts::new(),
            per_ip: Counts::new(),
            per_token: Counts::new(),
            caps,
        }
    }

    /// The numbers.
    pub fn caps(&self) -> &Caps {
        &self.caps
    }

    /// A handshake slot for a just-accepted TCP connection from `ip`; `Err`: close it
    /// unanswered.
    pub fn handshake(&self, ip: IpAddr) -> Result<Handshake, HandshakeCap> {
        let per_ip = self
            .handshakes_per_ip
            .take(&ip, self.caps.handshakes_per_ip)
            .ok_or(HandshakeCap::PerIp)?;
        let total = match self.handshakes.take(&(), self.caps.max_handshakes) {
            Some(t) => t,
            None if self.is_trusted(&ip) => self
                .trusted_handshakes
                .take(&(), TRUSTED_HANDSHAKES)
                .ok_or(HandshakeCap::Total)?,
            None => return Err(HandshakeCap::Total),
        };
        Ok(Handshake {
            _total: total,
            _ip: per_ip,
        })
    }

    /// Remembers `ip` as an agent's or operator's (see [`TRUSTED_ADDRESSES`]).
    pub fn trust(&self, ip: IpAddr) {
        let mut t = self
            .trusted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        t.retain(|a| *a != ip);
        if t.len() >= TRUSTED_ADDRESSES {
            t.pop_back();
        }
        t.push_front(ip);
    }

    fn is_trusted(&self, ip: &IpAddr) -> bool {
        self.trusted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(ip)
    }

    /// A joined slot for a client of `role`, if fewer than [`Caps::joined_cap`] are
    /// taken.
    pub fn join(&self, role: Role) -> Option<Guard<()>> {
        self.joined.take(&(), self.caps.joined_cap(role))
    }

    /// One more joined connection from `ip`, if under `connections_per_ip`.
    pub fn ip(&self, ip: IpAddr) -> Option<Guard<IpAddr>> {
        self.per_ip.take(&ip, self.caps.max_per_ip)
    }

    /// One more connection with token `id`, if under `connections_per_user`.
    pub fn token(&self, id: &str) -> Option<Guard<String>> {
        self.per_token.take(&id.to_owned(), self.caps.max_per_token)
    }

    /// Joined connections.
    pub fn in_use(&self) -> usize {
        self.joined.get(&())
    }

    /// Connections in the handshake.
    pub fn handshaking(&self) -> usize {
        self.handshakes.get(&()) + self.trusted_handshakes.get(&())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> Caps {
        Caps {
            max_handshakes: 4,
            handshakes_per_ip: 2,
            max_connections: 6,
            reserved_for_agents: 1,
            reserved_for_operators: 2,
            max_per_ip: 100,
            max_per_token: 100,
        }
    }

    #[test]
    fn one_address_holds_at_most_its_handshake_slots_and_the_total_is_separate() {
        let l = Limits::new(caps());
        let (a, b, c) = (
            IpAddr::from([127, 0, 0, 2]),
            IpAddr::from([127, 0, 0, 3]),
            IpAddr::from([127, 0, 0, 4]),
        );
        let a1 = l.handshake(a).unwrap();
        let _a2 = l.handshake(a).unwrap();
        assert_eq!(l.handshake(a).unwrap_err(), HandshakeCap::PerIp);
        let _b = [l.handshake(b).unwrap(), l.handshake(b).unwrap()];
        assert_eq!(l.handshake(c).unwrap_err(), HandshakeCap::Total);
        assert_eq!(l.handshaking(), 4);
        // Handshakes do not take joined slots.
        assert_eq!(l.in_use(), 0);
        drop(a1);
        assert!(l.handshake(c).is_ok());
        assert_eq!(l.handshaking(), 3, "c gave its slot back when dropped");
    }

    #[test]
    fn an_agents_address_keeps_handshake_slots_when_many_addresses_fill_the_rest() {
        let l = Limits::new(caps());
        let agent = IpAddr::from([10, 0, 0, 9]);
        let flood: Vec<_> = (1..=2u8)
            .flat_map(|i| {
                let ip = IpAddr::from([10, 0, 1, i]);
                [l.handshake(ip).unwrap(), l.handshake(ip).unwrap()]
            })
            .collect();
        assert_eq!(l.handshake(agent).unwrap_err(), HandshakeCap::Total);
        l.trust(agent);
        let a = l
            .handshake(agent)
            .expect("a trusted address has slots of its own");
        let _b = l.handshake(agent).unwrap();
        assert_eq!(l.handshake(agent).unwrap_err(), HandshakeCap::PerIp);
        assert_eq!(l.handshaking(), 6);
        // The reserve is for the remembered addresses only, and only the newest ones.
        assert_eq!(
            l.handshake(IpAddr::from([10, 0, 1, 3])).unwrap_err(),
            HandshakeCap::Total
        );
        drop(a);
        for i in 0..TRUSTED_ADDRESSES as u8 {
            l.trust(IpAddr::from([10, 0, 2, i]));
        }
        assert_eq!(l.handshake(agent).unwrap_err(), HandshakeCap::Total);
        drop(flood);
    }

    #[test]
    fn observers_leave_the_reserves_to_operators_and_agents() {
        let l = Limits::new(caps());
        // 6 in total: observers get 3, operators 2 more, agents the last one.
        let obs: Vec<_> = (0..3).map(|_| l.join(Role::Observer).unwrap()).collect();
        assert!(l.join(Role::Observer).is_none());
        let ops: Vec<_> = (0..2).map(|_| l.join(Role::Operator).unwrap()).collect();
        assert!(l.join(Role::Operator).is_none());
        assert!(l.join(Role::Observer).is_none());
        let agent = l.join(Role::Agent).unwrap();
        assert!(l.join(Role::Agent).is_none());
        assert_eq!(l.in_use(), 6);
        drop(agent);
        drop(ops);
        // An operator's freed slot stays out of the observers' reach.
        assert!(l.join(Role::Observer).is_none());
        drop(obs);
        assert_eq!(l.in_use(), 0);
    }
}
