//! Local room tokens: issued once, stored only as SHA-256 hashes in [`Tree::Tokens`],
//! listed and revoked by id. Plain functions over [`Store`] so the CLI (daemon stopped)
//! and the daemon's control handlers call the same code.

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
}

impl Role {
    /// `agent`, `operator` or `observer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Operator => "operator",
            Role::Observer => "observer",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "agent" => Some(Role::Agent),
            "operator" => Some(Role::Operator),
            "observer" => Some(Role::Observer),
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
    /// A room id that cannot appear in a room URL.
    #[error("room {0:?} is not a valid room id (1 to 128 of A-Z a-z 0-9 . _ -)")]
    BadRoom(String),
}

impl ErrorCode for TokenError {
    fn code(&self) -> &'static str {
        match self {
            TokenError::Store(e) => e.code(),
            TokenError::NotFound(_) => "TOKEN_NOT_FOUND",
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

/// Issues a token: returns it (show it once) and its record. Only the hash is stored,
/// and the store is flushed before this returns.
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
    store.put(Tree::Tokens, key(&token).as_bytes(), &record)?;
    store.flush().await?;
    Ok((Secret::new(token), record))
}

/// Every token record, oldest first. Records that do not decode are skipped.
pub fn list(store: &Store) -> Result<Vec<TokenRecord>, TokenError> {
    let mut out: Vec<TokenRecord> = store
        .tree(Tree::Tokens)?
        .iter()
        .filter_map(|kv| kv.ok())
        .filter_map(|(_, v)| store::codec::decode(&v).ok())
        .collect();
    out.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    Ok(out)
}

/// Marks a token revoked and flushes. Returns the record.
pub async fn revoke(store: &Store, id: &str) -> Result<TokenRecord, TokenError> {
    let tree = store.tree(Tree::Tokens)?;
    for kv in tree.iter() {
        let (k, v) = kv.map_err(store::Error::from_sled)?;
        let Ok(mut rec) = store::codec::decode::<TokenRecord>(&v) else {
            continue;
        };
        if rec.id == id {
            rec.revoked = true;
            store.put(Tree::Tokens, &k, &rec)?;
            store.flush().await?;
            return Ok(rec);
        }
    }
    Err(TokenError::NotFound(id.to_owned()))
}

/// The record of a presented token, if it is known (revoked or not).
pub fn lookup(store: &Store, token: &Secret) -> Result<Option<TokenRecord>, store::Error> {
    match store.get::<TokenRecord>(Tree::Tokens, key(token.expose()).as_bytes()) {
        Ok(r) => Ok(r),
        Err(store::Error::Decode(_)) => Ok(None),
        Err(e) => Err(e),
    }
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
        let raw: Vec<Vec<u8>> = store
            .tree(Tree::Tokens)
            .unwrap()
            .iter()
            .flat_map(|kv| {
                let (k, v) = kv.unwrap();
                [k.to_vec(), v.to_vec()]
            })
            .collect();
        let needle = tok.expose().as_bytes();
        assert!(raw
            .iter()
            .all(|b| !b.windows(needle.len()).any(|w| w == needle)));
        assert_eq!(lookup(&store, &tok).unwrap(), Some(rec.clone()));
        assert!(revoke(&store, &rec.id).await.unwrap().revoked);
        assert!(lookup(&store, &tok).unwrap().unwrap().revoked);
        assert!(matches!(
            revoke(&store, "tok_nope").await,
            Err(TokenError::NotFound(_))
        ));
    }
}
