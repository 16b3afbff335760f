//! Signed-in sessions: a random 256-bit id in an `HttpOnly; SameSite=Strict` cookie,
//! a random CSRF token each, kept in memory only (a restart signs everyone out), at
//! most [`MAX_SESSIONS`] (the least recently used goes), each ending after
//! `[web] session_idle_minutes` without a request.

use rand::RngCore;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Sessions held at once.
pub const MAX_SESSIONS: usize = 16;
/// The cookie's name.
pub const COOKIE: &str = "bbedge_session";

/// One signed-in page.
#[derive(Debug, Clone)]
pub struct Session {
    /// The admin token's id (never the token): the actor in every action's log line.
    pub token_id: String,
    /// Sent back in `X-CSRF-Token` with every POST.
    pub csrf: String,
    last_seen: Instant,
}

/// The sessions. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sessions {
    inner: Arc<Mutex<HashMap<String, Session>>>,
    idle: Duration,
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

impl Sessions {
    /// Sessions that end after `idle` without a request.
    pub fn new(idle: Duration) -> Self {
        Self {
            inner: Arc::default(),
            idle,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a session for `token_id` at `now`; returns its id (the cookie's value).
    pub fn create(&self, token_id: &str, now: Instant) -> String {
        let mut map = self.lock();
        map.retain(|_, s| now.saturating_duration_since(s.last_seen) < self.idle);
        while map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        let id = random_hex();
        map.insert(
            id.clone(),
            Session {
                token_id: token_id.to_owned(),
                csrf: random_hex(),
                last_seen: now,
            },
        );
        id
    }

    /// The live session `id` names, touched at `now`; an idle one is ended.
    pub fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let mut map = self.lock();
        let s = map.get_mut(id)?;
        if now.saturating_duration_since(s.last_seen) >= self.idle {
            map.remove(id);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    /// The admin token id of session `id` if it is live at `now`, without counting as
    /// a request (an open event stream does not keep a session alive by itself).
    pub fn alive(&self, id: &str, now: Instant) -> Option<String> {
        self.lock()
            .get(id)
            .filter(|s| now.saturating_duration_since(s.last_seen) < self.idle)
            .map(|s| s.token_id.clone())
    }

    /// Ends session `id`.
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Ends every session of admin token `token_id` (it was revoked).
    pub fn remove_token(&self, token_id: &str) -> usize {
        let mut map = self.lock();
        let before = map.len();
        map.retain(|_, s| s.token_id != token_id);
        before - map.len()
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Equal strings, compared in time that depends only on their lengths.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_after_the_idle_time_and_a_request_keeps_it() {
        let s = Sessions::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let id = s.create("tok_1", t0);
        assert_eq!(id.len(), 64, "256 random bits, hex");
        assert!(s.get(&id, t0 + Duration::from_secs(59)).is_some());
        assert!(
            s.get(&id, t0 + Duration::from_secs(118)).is_some(),
            "touched at 59"
        );
        assert!(s.get(&id, t0 + Duration::from_secs(178)).is_none());
        assert!(s.get(&id, t0).is_none(), "ended for good");
    }

    #[test]
    fn at_most_max_sessions_the_least_recently_used_goes() {
        let s = Sessions::new(Duration::from_secs(600));
        let t0 = Instant::now();
        let first = s.create("tok_1", t0);
        for i in 1..MAX_SESSIONS as u64 {
            s.create("tok_2", t0 + Duration::from_secs(i));
        }
        assert!(s.get(&first, t0 + Duration::from_secs(100)).is_some());
        s.create("tok_3", t0 + Duration::from_secs(101));
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(
            s.get(&first, t0 + Duration::from_secs(102)).is_some(),
            "used last"
        );
        assert_eq!(
            s.remove_token("tok_2"),
            MAX_SESSIONS - 2,
            "one of them went"
        );
    }

    #[test]
    fn same_compares_whole_strings() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd") && !same("abc", "ab") && !same("", "a"));
    }
}
