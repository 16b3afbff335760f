//! `/status` sections: each service registers a closure that reports its part as JSON.

use serde_json::{Map, Value};
use std::sync::{Arc, RwLock};

/// A service's `/status` section: called on every request, so keep it cheap.
pub type StatusSection = Box<dyn Fn() -> Value + Send + Sync>;

/// The registered sections, in registration order. Cheap to clone.
#[derive(Clone, Default)]
pub struct StatusBoard {
    sections: Arc<RwLock<Vec<(&'static str, StatusSection)>>>,
}

impl std::fmt::Debug for StatusBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatusBoard")
    }
}

impl StatusBoard {
    /// Adds (or replaces) a section named `name`.
    pub fn register(&self, name: &'static str, section: StatusSection) {
        if let Ok(mut s) = self.sections.write() {
            s.retain(|(n, _)| *n != name);
            s.push((name, section));
        }
    }

    /// Every section's current value.
    pub fn collect(&self) -> Map<String, Value> {
        let mut out = Map::new();
        if let Ok(s) = self.sections.read() {
            for (name, section) in s.iter() {
                out.insert((*name).to_owned(), section());
            }
        }
        out
    }
}
