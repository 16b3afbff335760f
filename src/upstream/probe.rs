//! The diagnostic probe after central rejects the device token (contract §b.6, §c.4).
//!
//! The WebSocket gives the same 4003 for a revoked device, a bad token and a database
//! error in central's `onConnect`. The HTTP upload surface says which it was:
//! `GET <server>/api/v1/broadcast-box/uploads?limit=1` with the Bearer token answers
//! `200` for a good token and `401` with `error.code` otherwise. The reconnect loop asks
//! once per rejection (so never faster than the capped backoff), and only while the
//! token's `exp` has not passed. The token goes in the header only and is never logged.

use crate::secret::Secret;
use std::time::Duration;

/// The probe's path under the server's API base.
pub const PATH: &str = "/api/v1/broadcast-box/uploads?limit=1";
/// One probe (connect, TLS, answer) must finish within this.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer body read; central's 401 body is about 100 bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What the probe learnt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `200`: the token is good; the rejection was transient (e.g. a database error
    /// in central's `onConnect`).
    TokenOk,
    /// `401 INVALID_STATUS`: the device is suspended, revoked or decommissioned. A new
    /// pairing does not change the status (§a.3): an operator must reactivate it.
    DeviceInactive,
    /// `401 AUTH_FAILED` or `DEVICE_NOT_FOUND`: the token no longer works.
    TokenInvalid {
        /// Central's `error.code`.
        code: String,
    },
    /// No usable answer: the route is not mounted (404), central is down (5xx), the
    /// network failed, or a 401 with a code that does not describe the token.
    Unknown {
        /// `HTTP_<status>`, `<status> <code>`, `TIMEOUT`, `NETWORK`, `INSECURE`, ….
        detail: String,
    },
}

impl Outcome {
    /// The label on `/status` and the metric.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::TokenOk => "token_ok",
            Outcome::DeviceInactive => "device_inactive",
            Outcome::TokenInvalid { .. } => "token_invalid",
            Outcome::Unknown { .. } => "unknown",
        }
    }

    /// Index into [`super::stats::Stats::probes`], in [`LABELS`] order.
    pub fn index(&self) -> usize {
        match self {
            Outcome::TokenOk => 0,
            Outcome::DeviceInactive => 1,
            Outcome::TokenInvalid { .. } => 2,
            Outcome::Unknown { .. } => 3,
        }
    }

    /// Central's code or what went wrong.
    pub fn detail(&self) -> String {
        match self {
            Outcome::TokenOk => "HTTP_200".into(),
            Outcome::DeviceInactive => "INVALID_STATUS".into(),
            Outcome::TokenInvalid { code } => code.clone(),
            Outcome::Unknown { detail } => detail.clone(),
        }
    }
}

/// Every outcome label, in [`Outcome::index`] order.
pub const LABELS: [&str; 4] = ["token_ok", "device_inactive", "token_invalid", "unknown"];

/// Maps central's answer to an outcome (pure, so the table is unit-tested).
pub fn classify(status: u16, body: &[u8]) -> Outcome {
    if status == 200 {
        return Outcome::TokenOk;
    }
    if status != 401 {
        return Outcome::Unknown {
            detail: format!("HTTP_{status}"),
        };
    }
    let code = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    match code.as_str() {
        "INVALID_STATUS" => Outcome::DeviceInactive,
        "AUTH_FAILED" | "DEVICE_NOT_FOUND" => Outcome::TokenInvalid { code },
        // UNAUTHENTICATED / INVALID_AUTH_SCHEME say the header did not arrive as sent
        // (a proxy?), not what is wrong with the token.
        "" => Outcome::Unknown {
            detail: "HTTP_401".into(),
        },
        other => Outcome::Unknown {
            detail: format!("HTTP_401 {other}"),
        },
    }
}

/// Asks central about the token. Built once per link from the upstream TLS settings.
#[derive(Clone)]
pub struct Prober {
    client: Option<reqwest::Client>,
    loopback_client: Option<reqwest::Client>,
    allow_insecure: bool,
}

impl std::fmt::Debug for Prober {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prober")
            .field("allow_insecure", &self.allow_insecure)
            .finish()
    }
}

impl Prober {
    /// The same trust as pairing and the link: WebPKI roots plus `extra_ca_file`,
    /// TLS 1.2+, no redirects (one could carry the token elsewhere).
    pub fn new(extra_ca_file: &str, allow_insecure: bool) -> Self {
        let build = |loopback| crate::pairing::http::client(extra_ca_file, TIMEOUT, loopback).ok();
        Self {
            client: build(false),
            loopback_client: build(true),
            allow_insecure,
        }
    }

    /// One probe of `server` (the API base from the credentials).
    pub async fn probe(&self, server: &str, token: &Secret) -> Outcome {
        let unknown = |d: &str| Outcome::Unknown { detail: d.into() };
        let url = format!("{}{PATH}", server.trim_end_matches('/'));
        let Ok(parsed) = reqwest::Url::parse(&url) else {
            return unknown("BAD_URL");
        };
        let host = parsed.host_str().unwrap_or("").to_owned();
        let loopback = super::link::is_loopback(&host);
        match parsed.scheme() {
            "https" => {}
            // The token must not cross a network in cleartext (§c.3).
            "http" if loopback || self.allow_insecure => {}
            _ => return unknown("INSECURE"),
        }
        let client = if loopback {
            &self.loopback_client
        } else {
            &self.client
        };
        let Some(client) = client else {
            return unknown("CLIENT");
        };
        let req = client
            .get(parsed)
            .bearer_auth(token.expose())
            .header("Accept", "application/json");
        let answer = async {
            let mut resp = req.send().await?;
            let status = resp.status().as_u16();
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await? {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_BODY_BYTES {
                    body.truncate(MAX_BODY_BYTES);
                    break;
                }
            }
            Ok::<_, reqwest::Error>((status, body))
        };
        match tokio::time::timeout(TIMEOUT, answer).await {
            Err(_) => unknown("TIMEOUT"),
            Ok(Err(e)) if e.is_timeout() => unknown("TIMEOUT"),
            Ok(Err(e)) if e.is_connect() => unknown("CONNECT_FAILED"),
            Ok(Err(_)) => unknown("NETWORK"),
            Ok(Ok((status, body))) => classify(status, &body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_to_outcomes() {
        let e = |code: &str| {
            format!(r#"{{"success":false,"error":{{"code":"{code}","message":"x"}}}}"#)
        };
        let table: [(u16, String, &str, &str); 9] = [
            (
                200,
                r#"{"success":true,"uploads":[]}"#.into(),
                "token_ok",
                "HTTP_200",
            ),
            (
                401,
                e("INVALID_STATUS"),
                "device_inactive",
                "INVALID_STATUS",
            ),
            (401, e("AUTH_FAILED"), "token_invalid", "AUTH_FAILED"),
            (
                401,
                e("DEVICE_NOT_FOUND"),
                "token_invalid",
                "DEVICE_NOT_FOUND",
            ),
            (
                401,
                e("UNAUTHENTICATED"),
                "unknown",
                "HTTP_401 UNAUTHENTICATED",
            ),
            (401, "<html>".into(), "unknown", "HTTP_401"),
            (404, e("AUTH_FAILED"), "unknown", "HTTP_404"),
            (502, String::new(), "unknown", "HTTP_502"),
            (429, String::new(), "unknown", "HTTP_429"),
        ];
        for (status, body, label, detail) in table {
            let o = classify(status, body.as_bytes());
            assert_eq!(
                (o.label(), o.detail().as_str()),
                (label, detail),
                "{status} {body}"
            );
            assert_eq!(LABELS[o.index()], label);
        }
    }

    #[tokio::test]
    async fn cleartext_to_a_remote_server_is_never_probed() {
        let p = Prober::new("", false);
        let o = p.probe("http://cp.example.org", &Secret::new("t")).await;
        assert_eq!(o.detail(), "INSECURE");
    }
}
