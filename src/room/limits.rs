//! Connection caps: `max_connections` (a permit taken before the handshake),
//! `connections_per_ip` and `connections_per_user` (per token, checked after auth like
//! central). Every count is released by dropping its guard.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Handshakes allowed beyond `max_connections` only to tell the client 4029; beyond
/// these the TCP connection is dropped at once.
pub const REFUSAL_SLOTS: usize = 32;

/// Which pool a new connection got a slot in.
#[derive(Debug)]
pub enum Admission {
    /// Under `max_connections`: may join.
    Normal(OwnedSemaphorePermit),
    /// Over it: handshake only to close with 4029.
    Refuse(OwnedSemaphorePermit),
}

/// The caps.
#[derive(Debug)]
pub struct Limits {
    /// `max_connections` permits, one per connection from accept to close.
    total: Arc<Semaphore>,
    /// [`REFUSAL_SLOTS`] permits for connections being refused.
    refusals: Arc<Semaphore>,
    per_ip: Arc<Counts<IpAddr>>,
    per_token: Arc<Counts<String>>,
    /// `realtime.limits.max_connections`.
    pub max_connections: usize,
    /// `realtime.rate_limiting.connections_per_ip`.
    pub max_per_ip: usize,
    /// `realtime.rate_limiting.connections_per_user`.
    pub max_per_token: usize,
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
    fn take(self: &Arc<Self>, key: &K, max: usize) -> Option<Guard<K>> {
        let mut m = self.0.lock().ok()?;
        let n = m.entry(key.clone()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Guard {
            counts: self.clone(),
            key: key.clone(),
        })
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
    pub fn new(max_connections: usize, max_per_ip: usize, max_per_token: usize) -> Self {
        Self {
            total: Arc::new(Semaphore::new(max_connections)),
            refusals: Arc::new(Semaphore::new(REFUSAL_SLOTS)),
            per_ip: Arc::new(Counts(Mutex::new(HashMap::new()))),
            per_token: Arc::new(Counts(Mutex::new(HashMap::new()))),
            max_connections,
            max_per_ip,
            max_per_token,
        }
    }

    /// A slot for a just-accepted TCP connection; `None`: drop it unanswered.
    pub fn admit(&self) -> Option<Admission> {
        if let Ok(p) = self.total.clone().try_acquire_owned() {
            return Some(Admission::Normal(p));
        }
        self.refusals
            .clone()
            .try_acquire_owned()
            .ok()
            .map(Admission::Refuse)
    }

    /// One more connection from `ip`, if under `connections_per_ip`.
    pub fn ip(&self, ip: IpAddr) -> Option<Guard<IpAddr>> {
        self.per_ip.take(&ip, self.max_per_ip)
    }

    /// One more connection with token `id`, if under `connections_per_user`.
    pub fn token(&self, id: &str) -> Option<Guard<String>> {
        self.per_token.take(&id.to_owned(), self.max_per_token)
    }

    /// Connections holding a normal slot.
    pub fn in_use(&self) -> usize {
        self.max_connections - self.total.available_permits()
    }
}
