//! Which device the box's own room is: `device:<uuid>` with the UUID from
//! `[device] uuid`, else the paired UUID (the one central knows), else a provisional one
//! made on first start and kept in [`Tree::Meta`] under `local_device_uuid`.
//!
//! The identity can change while the daemon runs: when pairing completes (`bbedge pair`,
//! the boot file) the room moves to the paired UUID at once. Clients of the provisional
//! room are closed with [`MOVED_CLOSE_CODE`] (`ROOM_MOVED`, naming the new room), its
//! snapshot moves with it, and tokens issued for the provisional room (or for no room)
//! are valid in the new one.

use crate::store::{self, Store, Tree};
use std::sync::{Arc, RwLock};

/// Close code for clients of a room that moved to the paired UUID.
pub const MOVED_CLOSE_CODE: u16 = 4010;
/// The `code` in that close's reason and the `control`/`error` frame before it.
pub const MOVED_CODE: &str = "ROOM_MOVED";
/// Where the provisional UUID is kept.
pub const META_KEY: &[u8] = b"local_device_uuid";
/// The same fact's key in the token file's `meta` section.
pub const KEEP_KEY: &str = "local_device_uuid";

#[derive(Debug, Default)]
struct Inner {
    current: String,
    /// Earlier (provisional) UUIDs of this box's room: their tokens stay valid here.
    former: Vec<String>,
}

/// The local room's device UUID, shared by the room type, the upstream command feed and
/// `/status`. Clones share it; comparisons compare the current values.
#[derive(Clone, Default)]
pub struct DeviceId(Arc<RwLock<Inner>>);

impl DeviceId {
    /// An identity at `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Self(Arc::new(RwLock::new(Inner {
            current: id.into(),
            former: Vec::new(),
        })))
    }

    fn read<R>(&self, f: impl FnOnce(&Inner) -> R) -> R {
        f(&self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The current UUID.
    pub fn get(&self) -> String {
        self.read(|i| i.current.clone())
    }

    /// `device:<uuid>`.
    pub fn room_id(&self) -> String {
        format!("device:{}", self.get())
    }

    /// Whether `id` is the current UUID or one this room had before.
    pub fn is_ours(&self, id: &str) -> bool {
        self.read(|i| i.current == id || i.former.iter().any(|f| f == id))
    }

    /// Whether `id` is a UUID this room had before (not the current one).
    pub fn is_former(&self, id: &str) -> bool {
        self.read(|i| i.former.iter().any(|f| f == id))
    }

    /// Moves to `id`; returns the previous UUID if it changed.
    pub fn set(&self, id: &str) -> Option<String> {
        let mut g = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if g.current == id {
            return None;
        }
        let old = std::mem::replace(&mut g.current, id.to_owned());
        g.former.retain(|f| f != id);
        if !g.former.contains(&old) {
            g.former.push(old.clone());
        }
        Some(old)
    }

    /// Records a provisional UUID used before this process started.
    pub fn add_former(&self, id: &str) {
        let mut g = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if g.current != id && !g.former.iter().any(|f| f == id) {
            g.former.push(id.to_owned());
        }
    }
}

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.get())
    }
}

impl std::fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.get())
    }
}

impl PartialEq for DeviceId {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl PartialEq<String> for DeviceId {
    fn eq(&self, other: &String) -> bool {
        self.read(|i| &i.current == other)
    }
}

impl PartialEq<&str> for DeviceId {
    fn eq(&self, other: &&str) -> bool {
        self.read(|i| i.current == *other)
    }
}

/// The UUID the room should have: `[device] uuid`, else the paired one.
pub fn wanted(configured: &str, paired: Option<&str>) -> Option<String> {
    if !configured.is_empty() {
        return Some(configured.to_owned());
    }
    paired.filter(|p| !p.is_empty()).map(str::to_owned)
}

/// The provisional UUID, made on first use and kept in the store's token file with the
/// tokens (`meta.local_device_uuid`), so a quarantined database cannot change the room's
/// URL. An older bbedge kept it in sled: that value is moved over once.
pub async fn provisional(store: &Store) -> Result<String, store::Error> {
    if let Some(id) = existing_provisional(store) {
        if store.keep().get("meta", KEEP_KEY).is_none() {
            store
                .keep()
                .set("meta", KEEP_KEY, serde_json::Value::String(id.clone()));
            store.commit_keep()?;
        }
        return Ok(id);
    }
    let id = uuid::Uuid::new_v4().to_string();
    store
        .keep()
        .set("meta", KEEP_KEY, serde_json::Value::String(id.clone()));
    store.commit_keep()?;
    Ok(id)
}

/// The provisional UUID if one was ever made (no new one is made): the token file's,
/// else an older bbedge's in sled.
pub fn existing_provisional(store: &Store) -> Option<String> {
    if let Some(id) = store.keep().get("meta", KEEP_KEY) {
        if let Some(id) = id.as_str() {
            return Some(id.to_owned());
        }
    }
    store.get::<String>(Tree::Meta, META_KEY).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_uuid_wins_then_the_paired_one() {
        assert_eq!(wanted("cfg", Some("paired")).as_deref(), Some("cfg"));
        assert_eq!(wanted("", Some("paired")).as_deref(), Some("paired"));
        assert_eq!(wanted("", Some("")), None);
        assert_eq!(wanted("", None), None);
    }

    #[test]
    fn moving_keeps_the_former_uuid_for_its_tokens() {
        let id = DeviceId::new("a");
        let shared = id.clone();
        assert_eq!(id.set("b").as_deref(), Some("a"));
        assert_eq!(id.set("b"), None);
        assert_eq!(shared, "b");
        assert_eq!(shared.room_id(), "device:b");
        assert!(shared.is_ours("a") && shared.is_ours("b") && !shared.is_ours("c"));
        assert!(shared.is_former("a") && !shared.is_former("b"));
    }
}
