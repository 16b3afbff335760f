//! Local room tokens: issued once, stored only as SHA-256 hashes, listed and revoked
//! by id. Plain functions over [`Store`] so the CLI (daemon stopped) and the daemon's
//! control handlers call the same code.
//!
//! The hashes live in the store's token file ([`crate::store::keep`], section
//! `tokens`), not in sled: a corrupt database that is quarantined must not lock the
//! agent out. Tokens an older bbedge kept in [`Tree::Tokens`] are moved there on first
//! use (and removed from sled, so a revocation cannot come back from it).

use crate::error::ErrorCode;
use crate::secret::Secret;
use crate::store::{self, Store, Tree};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a token lets its holder do in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The box's capture process: receives commands, sends ack/status/event/manifest/preview.
    Agent,
    /// May send `command` frames and everything an observer may.
    Operator,
    /// Read-only: may send only `preview.answer`, `preview.ice_candidate` and `ping`.
    Observer,
    /// Signs in to the box's web page (`[web]`, docs/WEB.md); admits to no room:
    /// [`lookup`] does not know it, so a room refuses it like an unknown token.
    Admin,
}

impl Role {
    /// `agent`, `operator` or `observer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Operator => "operator",
            Role::Observer => "observer",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "agent" => Some(Role::Agent),
            "operator" => Some(Role::Operator),
            "observer" => Some(Role::Observer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A stored token (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public id, `tok_<8 hex>`, for `list` and `revoke`.
    pub id: String,
    /// The role it grants.
    pub role: Role,
    /// The one room id it is limited to; `None`: this box's own device room.
    pub room: Option<String>,
    /// A label to recognise it by.
    pub label: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Revoked tokens are kept (so `list` shows them) but refused.
    pub revoked: bool,
}

/// Token administration errors.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// No token has this id.
    #[error("no token has the id {0:?}; see `bbedge token list`")]
    NotFound(String),
    /// Revoked in memory (refused from now on, live connections closed) but the token
    /// file could not be written; the daemon writes it once storage works again.
    #[error("token {id} is revoked in memory but not yet on flash: {source}")]
    RevokedNotOnFlash {
        /// The token id.
        id: String,
        /// Why the write failed.
        source: store::Error,
    },
    /// A room id that cannot appear in a room URL.
    #[error("room {0:?} is not a valid room id (1 to 128 of A-Z a-z 0-9 . _ -)")]
    BadRoom(String),
}

impl ErrorCode for TokenError {
    fn code(&self) -> &'static str {
        match self {
            TokenError::Store(e) => e.code(),
            TokenError::NotFound(_) => "TOKEN_NOT_FOUND",
            TokenError::RevokedNotOnFlash { source, .. } => source.code(),
            TokenError::BadRoom(_) => "TOKEN_BAD_ROOM",
        }
    }
}

/// The key a token is stored under: its SHA-256, hex.
fn key(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `id` may be a room id (the last segment of a room URL).
pub fn valid_room_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The token file's section.
const SECTION: &str = "tokens";

/// Moves tokens an older bbedge kept in sled into the token file, once (the daemon
/// calls it at start; every function here calls it too). A database that cannot be
/// read now is tried again next time.
pub fn migrate(store: &Store) {
    let keep = store.keep();
    if keep.migrated(SECTION) {
        return;
    }
    let Ok(tree) = store.tree(Tree::Tokens) else {
        return;
    };
    let mut moved = Vec::new();
    for kv in &tree {
        let Ok((k, v)) = kv else { return };
        let (Ok(hash), Ok(rec)) = (
            std::str::from_utf8(&k),
            store::codec::decode::<TokenRecord>(&v),
        ) else {
            continue;
        };
        if keep.get(SECTION, hash).is_none() {
            if let Ok(value) = serde_json::to_value(&rec) {
                keep.set(SECTION, hash, value);
            }
        }
        moved.push(k);
    }
    keep.mark_migrated(SECTION);
    if store.commit_keep().is_err() {
        return; // in memory; maintain writes it, and sled keeps its copy until then
    }
    for k in &moved {
        let _ = tree.remove(k);
    }
    tracing::info!(operation = "token.migrate", tokens = moved.len(), path = %keep.path().display(), "local tokens moved from the database to the token file");
}

fn decode(v: serde_json::Value) -> Option<TokenRecord> {
    serde_json::from_value(v).ok()
}

/// Issues a token: returns it (show it once) and its record. Only the hash is stored,
/// and it is on flash before this returns (a token that could not be written is not
/// issued).
pub async fn add(
    store: &Store,
    role: Role,
    room: Option<String>,
    label: Option<String>,
) -> Result<(Secret, TokenRecord), TokenError> {
    if let Some(r) = &room {
        if !valid_room_id(r) {
            return Err(TokenError::BadRoom(r.clone()));
        }
    }
    migrate(store);
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = format!("bbt_{}", hex::encode(raw));
    let mut idb = [0u8; 4];
    rand::rngs::OsRng.fill_bytes(&mut idb);
    let record = TokenRecord {
        id: format!("tok_{}", hex::encode(idb)),
        role,
        room,
        label: label.unwrap_or_default(),
        created_at: crate::protocol::now_rfc3339(),
        revoked: false,
    };
    let value = serde_json::to_value(&record).map_err(|e| store::Error::Encode(e.to_string()))?;
    let k = key(&token);
    store.keep().set(SECTION, &k, value);
    if let Err(e) = store.commit_keep() {
        store.keep().remove(SECTION, &k);
        return Err(e.into());
    }
    Ok((Secret::new(token), record))
}

/// Every token record, oldest first. Records that do not decode are skipped.
pub fn list(store: &Store) -> Result<Vec<TokenRecord>, TokenError> {
    migrate(store);
    let mut out: Vec<TokenRecord> = store
        .keep()
        .entries(SECTION)
        .into_iter()
        .filter_map(|(_, v)| decode(v))
        .collect();
    out.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    Ok(out)
}

/// Marks a token revoked: refused from this moment (in memory), then written to the
/// token file. Returns the record; [`TokenError::RevokedNotOnFlash`] when the write
/// failed (the revocation holds in this process meanwhile).
pub async fn revoke(store: &Store, id: &str) -> Result<TokenRecord, TokenError> {
    migrate(store);
    let keep = store.keep();
    let found = keep
        .entries(SECTION)
        .into_iter()
        .find_map(|(k, v)| decode(v).filter(|r| r.id == id).map(|r| (k, r)));
    let Some((k, mut rec)) = found else {
        return Err(TokenError::NotFound(id.to_owned()));
    };
    rec.revoked = true;
    let value = serde_json::to_value(&rec).map_err(|e| store::Error::Encode(e.to_string()))?;
    keep.set(SECTION, &k, value);
    match store.commit_keep() {
        Ok(()) => Ok(rec),
        Err(source) => Err(TokenError::RevokedNotOnFlash {
            id: id.to_owned(),
            source,
        }),
    }
}

/// The record of a presented room token, if it is known (revoked or not). An `admin`
/// token is not a room token: it is unknown here, so every room refuses it with the
/// usual authentication failure.
pub fn lookup(store: &Store, token: &Secret) -> Result<Option<TokenRecord>, store::Error> {
    Ok(lookup_any(store, token).filter(|r| r.role != Role::Admin))
}

/// The record of a presented `admin` token (revoked or not), for the web page's
/// sign-in; room tokens are unknown here, so they never admit to the page.
pub fn lookup_admin(store: &Store, token: &Secret) -> Result<Option<TokenRecord>, store::Error> {
    Ok(lookup_any(store, token).filter(|r| r.role == Role::Admin))
}

fn lookup_any(store: &Store, token: &Secret) -> Option<TokenRecord> {
    migrate(store);
    store
        .keep()
        .get(SECTION, &key(token.expose()))
        .and_then(decode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_hash_is_stored_and_revoke_keeps_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = store::open(&dir.path().join("db"), 1 << 20).unwrap().store;
        let (tok, rec) = add(&store, Role::Operator, None, Some("desk".into()))
            .await
            .unwrap();
        let file = std::fs::read(store.keep().path()).unwrap();
        let needle = tok.expose().as_bytes();
        assert!(!file.windows(needle.len()).any(|w| w == needle));
        assert!(file.windows(rec.id.len()).any(|w| w == rec.id.as_bytes()));
        assert_eq!(lookup(&store, &tok).unwrap(), Some(rec.clone()));
        assert!(revoke(&store, &rec.id).await.unwrap().revoked);
        assert!(lookup(&store, &tok).unwrap().unwrap().revoked);
        assert!(matches!(
            revoke(&store, "tok_nope").await,
            Err(TokenError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn admin_tokens_are_unknown_to_rooms_and_room_tokens_to_the_page() {
        let dir = tempfile::tempdir().unwrap();
        let store = store::open(&dir.path().join("db"), 1 << 20).unwrap().store;
        let (admin, rec) = add(&store, Role::Admin, None, None).await.unwrap();
        let (op, _) = add(&store, Role::Operator, None, None).await.unwrap();
        assert_eq!(lookup(&store, &admin).unwrap(), None);
        assert_eq!(lookup_admin(&store, &admin).unwrap(), Some(rec));
        assert_eq!(lookup_admin(&store, &op).unwrap(), None);
        assert!(lookup(&store, &op).unwrap().is_some());
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::Admin.as_str(), "admin");
    }

    #[tokio::test]
    async fn tokens_an_older_bbedge_kept_in_sled_move_to_the_token_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let token = Secret::new("bbt_old".to_owned());
        let old = TokenRecord {
            id: "tok_0ld0ld00".into(),
            role: Role::Agent,
            room: None,
            label: "from sled".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            revoked: false,
        };
        {
            let store = store::open(&db, 1 << 20).unwrap().store;
            store
                .put(Tree::Tokens, key(token.expose()).as_bytes(), &old)
                .unwrap();
            store.flush().await.unwrap();
        }
        let store = store::open(&db, 1 << 20).unwrap().store;
        assert_eq!(lookup(&store, &token).unwrap(), Some(old.clone()));
        assert!(store.keep().migrated(SECTION));
        assert_eq!(
            store.tree(Tree::Tokens).unwrap().len(),
            0,
            "sled copy removed"
        );
        revoke(&store, &old.id).await.unwrap();
        store.flush().await.unwrap();
        drop(store);
        // Quarantine-proof: with the database gone, the token file still knows it.
        std::fs::remove_dir_all(&db).unwrap();
        let store = store::open(&db, 1 << 20).unwrap().store;
        assert!(lookup(&store, &token).unwrap().unwrap().revoked);
        assert_eq!(list(&store).unwrap().len(), 1);
    }
}
