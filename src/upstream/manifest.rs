//! `session.manifest` at send time (contract §d.8): the signed form when the device
//! registered a key, the schema-valid unsigned form otherwise. Signing happens when the
//! frame leaves, so a manifest queued for hours still passes central's 15-minute
//! freshness check.

use crate::protocol::wire::WithPayload;
use crate::protocol::Frame;
use base64::Engine;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Map, Value};
use std::path::Path;

/// Loads the PKCS#8 PEM signing key written by pairing. Errors never quote the file.
pub fn load_key(path: &Path) -> Result<SigningKey, String> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    SigningKey::from_pkcs8_pem(&pem)
        .map_err(|_| format!("{} is not a PKCS#8 Ed25519 key", path.display()))
}

/// Signs `manifest` (the exact string sent) and returns standard base64.
pub fn sign(key: &SigningKey, manifest: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.sign(manifest.as_bytes()).to_bytes())
}

/// How a stored manifest leaves.
#[derive(Debug, Clone, Copy)]
pub struct Form<'a> {
    /// Sign with this key (the device registered its public half).
    pub key: Option<&'a SigningKey>,
    /// Leave `capture.started_at` / `ended_at` out (`manifest_omit_capture_times`).
    pub omit_capture_times: bool,
    /// `signed_at`, RFC 3339 (central's clock when the skew is known).
    pub signed_at: &'a str,
}

/// Turns a stored (unsigned, agent-built) manifest frame's text into the text to send:
/// the one reshape of a manifest, at send time. Keeps `type`, `id` and `timestamp`;
/// `None` if the text is not a manifest with a `session_id` and a `capture`.
pub fn prepare(stored: &str, form: Form<'_>) -> Option<String> {
    let Ok(Frame::SessionManifest(stored)) = serde_json::from_str::<Frame>(stored) else {
        return None;
    };
    let payload = &stored.payload;
    let session_id = payload.get("session_id")?.as_str()?.to_owned();
    let mut capture: Map<String, Value> = payload.get("capture")?.as_object()?.clone();
    if form.omit_capture_times {
        capture.remove("started_at");
        capture.remove("ended_at");
    }
    let new_payload = match form.key {
        None => json!({ "session_id": session_id, "capture": capture }),
        Some(key) => {
            let manifest = json!({
                "session_id": session_id,
                "capture": capture,
                "signed_at": form.signed_at,
            })
            .to_string();
            let signature = sign(key, &manifest);
            json!({
                "session_id": session_id,
                "manifest": manifest,
                "signature": signature,
                "alg": "ed25519",
            })
        }
    };
    let Value::Object(payload) = new_payload else {
        return None;
    };
    let or = |s: String, new: fn() -> String| if s.is_empty() { new() } else { s };
    let frame = Frame::SessionManifest(WithPayload {
        id: or(stored.id, crate::protocol::new_id),
        timestamp: or(stored.timestamp, crate::protocol::now_rfc3339),
        payload,
    });
    serde_json::to_string(&frame).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier};

    /// RFC 8032 §7.1 TEST 1 (public test material, as in the shared vectors).
    const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

    fn key() -> SigningKey {
        let b: [u8; 32] = hex::decode(SEED).unwrap().try_into().unwrap();
        SigningKey::from_bytes(&b)
    }

    #[test]
    fn signed_form_verifies_over_the_exact_string_and_drops_capture_times() {
        let stored = json!({
            "type": "session.manifest", "id": "m1", "timestamp": "2026-06-20T20:31:00.000Z",
            "payload": {"session_id": "record-1", "capture": {
                "device": "d", "started_at": "2026-06-20T19:00:00.950Z",
                "ended_at": "2026-06-20T20:30:00.950Z", "duration_s": 5400,
                "segments": [{"start": 0, "end": 5400, "visibility": "public"}]}}
        });
        let k = key();
        let f = prepare(
            &stored.to_string(),
            Form {
                key: Some(&k),
                omit_capture_times: true,
                signed_at: "2026-06-20T20:35:00.000Z",
            },
        )
        .unwrap();
        let f: Value = serde_json::from_str(&f).unwrap();
        let p = &f["payload"];
        assert_eq!(p["alg"], "ed25519");
        assert_eq!(f["id"], "m1");
        let manifest = p["manifest"].as_str().unwrap();
        let inner: Value = serde_json::from_str(manifest).unwrap();
        assert_eq!(inner["session_id"], "record-1");
        assert_eq!(inner["signed_at"], "2026-06-20T20:35:00.000Z");
        assert!(inner["capture"].get("started_at").is_none());
        assert_eq!(inner["capture"]["duration_s"], 5400);
        let sig = base64::engine::general_purpose::STANDARD
            .decode(p["signature"].as_str().unwrap())
            .unwrap();
        let sig = Signature::from_slice(&sig).unwrap();
        k.verifying_key().verify(manifest.as_bytes(), &sig).unwrap();

        let unsigned = prepare(
            &stored.to_string(),
            Form {
                key: None,
                omit_capture_times: false,
                signed_at: "x",
            },
        )
        .unwrap();
        let unsigned: Value = serde_json::from_str(&unsigned).unwrap();
        assert_eq!(unsigned["payload"], stored["payload"]);
    }

    #[test]
    fn a_manifest_without_capture_is_refused() {
        let f = json!({"type": "session.manifest", "payload": {"session_id": "r"}});
        assert!(prepare(
            &f.to_string(),
            Form {
                key: None,
                omit_capture_times: true,
                signed_at: ""
            }
        )
        .is_none());
    }
}
