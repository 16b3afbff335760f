//! Readiness as a set of named blockers: each part adds one at build time and clears it
//! once it is ready (the store open, the listeners bound). Ready means none is left.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Shared readiness state. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    blockers: Arc<Mutex<BTreeMap<&'static str, String>>>,
}

impl Readiness {
    /// Marks `what` as not ready, with a reason people can act on.
    pub fn block(&self, what: &'static str, reason: impl Into<String>) {
        if let Ok(mut b) = self.blockers.lock() {
            b.insert(what, reason.into());
        }
    }

    /// Marks `what` as ready.
    pub fn clear(&self, what: &'static str) {
        if let Ok(mut b) = self.blockers.lock() {
            b.remove(what);
        }
    }

    /// The reasons not to be ready; empty when ready.
    pub fn reasons(&self) -> Vec<String> {
        self.blockers.lock().map_or_else(
            |_| vec!["readiness state poisoned".to_owned()],
            |b| b.iter().map(|(k, v)| format!("{k}: {v}")).collect(),
        )
    }

    /// Whether nothing blocks readiness.
    pub fn is_ready(&self) -> bool {
        self.reasons().is_empty()
    }
}
