//! One registration with central (contract §a.3): key first, then
//! `POST {server}/api/v1/broadcast-box/devices`, then the credentials file.
//!
//! The CLI and boot-file pairing both call [`pair`]; neither retries here.

use super::failure::PairError;
use super::input::{self, DeviceUuid, EnrollmentCode, ServerUrl};
use super::{credentials, http, key, Credentials};
use crate::secret::Secret;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Largest answer read from central; a 201 is about 1 KiB.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What the person (or the boot file) gave, not yet checked.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// `--server`.
    pub server: String,
    /// `--device-uuid`.
    pub device_uuid: String,
    /// `--code` (never logged).
    pub code: Secret,
    /// `--name`; default `[device] name`.
    pub name: Option<String>,
    /// `--realtime-url`; default derived from the server.
    pub realtime_url: Option<String>,
    /// Default `[device] room_location`; empty means none.
    pub room_location: Option<String>,
}

/// A checked registration.
#[derive(Debug, Clone)]
pub struct Request {
    /// The API base.
    pub server: ServerUrl,
    /// The realtime base stored for the upstream link.
    pub realtime_url: String,
    /// The device UUID.
    pub device_uuid: DeviceUuid,
    /// The code, hyphenated.
    pub code: EnrollmentCode,
    /// The name sent.
    pub name: String,
    /// The room location sent, if any.
    pub room_location: Option<String>,
}

impl Inputs {
    /// Checks every value; nothing touches the network or the disk.
    pub fn check(
        &self,
        device: &crate::config::Device,
        allow_insecure: bool,
    ) -> Result<Request, PairError> {
        let device_uuid = DeviceUuid::parse(&self.device_uuid)?;
        let code = EnrollmentCode::parse(self.code.expose())?;
        let server = ServerUrl::parse(&self.server, allow_insecure)?;
        let realtime_url = match self
            .realtime_url
            .as_deref()
            .filter(|s| !s.trim().is_empty())
        {
            Some(r) => input::realtime_url(r, allow_insecure)?,
            None => server.default_realtime(),
        };
        let name = input::name(self.name.as_deref().unwrap_or(&device.name))?;
        let room_location = self
            .room_location
            .clone()
            .unwrap_or_else(|| device.room_location.clone());
        let room_location = Some(room_location.trim().to_owned()).filter(|s| !s.is_empty());
        Ok(Request {
            server,
            realtime_url,
            device_uuid,
            code,
            name,
            room_location,
        })
    }
}

/// Files and transport settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Credentials file (0600).
    pub credentials: PathBuf,
    /// Signing key file (0600).
    pub key: PathBuf,
    /// `[upstream] extra_ca_file`.
    pub extra_ca_file: String,
    /// `[upstream] allow_insecure`.
    pub allow_insecure: bool,
    /// `[pairing] request_timeout`.
    pub timeout: Duration,
}

impl Settings {
    /// From the config and resolved paths.
    pub fn new(config: &crate::config::Config, paths: &crate::app::Paths) -> Self {
        Self {
            credentials: paths.credentials.clone(),
            key: paths.key.clone(),
            extra_ca_file: config.upstream.extra_ca_file.clone(),
            allow_insecure: config.upstream.allow_insecure,
            timeout: Duration::from_secs(config.pairing.request_timeout),
        }
    }
}

/// Registers and stores the credentials. The key is on disk before the request leaves.
pub async fn pair(req: &Request, settings: &Settings) -> Result<Credentials, PairError> {
    let client = http::client(
        &settings.extra_ca_file,
        settings.timeout,
        req.server.is_loopback(),
    )?;
    let (signing, origin) = key::load_or_create(&settings.key).map_err(PairError::Files)?;
    let host = req.server.host();
    tracing::info!(operation = "pairing.register", server = %req.server.base(), device_uuid = req.device_uuid.as_str(), key = ?origin, "registering with central");
    let mut body = json!({
        "deviceUuid": req.device_uuid.as_str(),
        "enrollmentCode": req.code.expose(),
        "name": req.name,
        "publicKey": key::public_key_pem(&signing),
    });
    if let Some(loc) = &req.room_location {
        body["roomLocation"] = json!(loc);
    }
    let mut resp = client
        .post(req.server.devices_endpoint())
        .json(&body)
        .send()
        .await
        .map_err(|e| http::classify(&e, &host, settings.timeout))?;
    drop(body);
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut raw = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| http::classify(&e, &host, settings.timeout))?
    {
        if raw.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(PairError::Unexpected {
                what: format!("an answer over {MAX_ANSWER_BYTES} bytes"),
            });
        }
        raw.extend_from_slice(&chunk);
    }
    let answer: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    match status {
        201 => {}
        400 => return Err(rejected(&answer)),
        422 => return Err(PairError::CodeRefused),
        429 => return Err(rate_limited(retry_after)),
        500..=599 => return Err(PairError::ServerError { status }),
        300..=399 => {
            return Err(PairError::Unexpected {
                what: format!("HTTP {status}, a redirect; use the final address as --server"),
            })
        }
        404 => {
            return Err(PairError::Unexpected {
                what: "HTTP 404: no registration endpoint at this address".into(),
            })
        }
        other => {
            return Err(PairError::Unexpected {
                what: format!("HTTP {other}"),
            })
        }
    }
    let creds = credentials_from(&answer, req)?;
    credentials::save(&settings.credentials, &creds).map_err(PairError::SaveAfterRegister)?;
    tracing::info!(operation = "pairing.register", server = %creds.server, device_uuid = %creds.device_uuid, device_id = %creds.device_id, expires_at = %creds.expires_at, "paired with central");
    Ok(creds)
}

/// A 400: the key, or express-validator details (field names and messages only: the
/// details also carry each offending `value`, which may be the code).
fn rejected(answer: &Value) -> PairError {
    let message = answer
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("");
    if message.contains("publicKey") {
        return PairError::KeyRejected;
    }
    let fields: Vec<String> = answer
        .pointer("/error/details")
        .and_then(Value::as_array)
        .map(|d| {
            d.iter()
                .take(6)
                .map(|item| {
                    let field = item
                        .get("path")
                        .or_else(|| item.get("param"))
                        .and_then(Value::as_str)
                        .unwrap_or("?");
                    let msg = item.get("msg").and_then(Value::as_str).unwrap_or("invalid");
                    format!("{}: {}", printable(field), printable(msg))
                })
                .collect()
        })
        .unwrap_or_default();
    PairError::RequestRejected {
        details: if fields.is_empty() {
            "HTTP 400".into()
        } else {
            fields.join(", ")
        },
    }
}

fn rate_limited(retry_after: Option<u64>) -> PairError {
    // Without a usable header, wait out central's whole 15-minute window (§a.6).
    let secs = retry_after.unwrap_or(900).clamp(1, 86_400);
    let at = OffsetDateTime::now_utc() + time::Duration::seconds(secs as i64);
    let fmt = time::macros::format_description!("[hour]:[minute]:[second] UTC");
    PairError::RateLimited {
        retry_after: Duration::from_secs(secs),
        retry_at: at
            .format(&fmt)
            .unwrap_or_else(|_| format!("{secs} seconds")),
    }
}

fn credentials_from(answer: &Value, req: &Request) -> Result<Credentials, PairError> {
    let missing = |what: &str| PairError::Unexpected {
        what: format!("a 201 without {what}"),
    };
    let text = |p: &str| {
        answer
            .pointer(p)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let device_id = text("/device/id").ok_or_else(|| missing("device.id"))?;
    if let Some(u) = text("/device/deviceUuid") {
        if u != req.device_uuid.as_str() {
            return Err(PairError::Unexpected {
                what: "a 201 for another device UUID".into(),
            });
        }
    }
    let token = text("/credentials/token").ok_or_else(|| missing("credentials.token"))?;
    let expires_at = text("/credentials/expiresAt")
        .filter(|s| OffsetDateTime::parse(s, &Rfc3339).is_ok())
        .ok_or_else(|| missing("a valid credentials.expiresAt"))?;
    Ok(Credentials {
        server: req.server.base(),
        realtime_url: req.realtime_url.clone(),
        device_id: printable(device_id),
        device_uuid: req.device_uuid.as_str().to_owned(),
        token: Secret::new(token),
        expires_at: expires_at.to_owned(),
        paired_at: crate::protocol::now_rfc3339(),
        name: req.name.clone(),
        key_registered: true,
        device_status: text("/device/status").map(printable),
    })
}

/// Server text shown to people: no control characters, bounded.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_details_name_fields_and_never_values() {
        let answer = json!({"success": false, "error": {"message": "Validation failed", "details": [
            {"type": "field", "value": "ABCD-EFGH-JK23", "msg": "Invalid value", "path": "enrollmentCode", "location": "body"},
            {"type": "field", "msg": "Invalid value", "path": "name", "location": "body"}
        ]}});
        let err = rejected(&answer);
        let text = err.to_string();
        assert!(
            text.contains("enrollmentCode: Invalid value, name: Invalid value"),
            "{text}"
        );
        assert!(!text.contains("ABCD"), "{text}");
        let key = json!({"success": false, "error": {"message": "publicKey must be a PEM (SPKI) Ed25519 public key"}});
        assert!(matches!(rejected(&key), PairError::KeyRejected));
    }

    #[test]
    fn rate_limits_without_a_header_wait_the_whole_window() {
        let PairError::RateLimited { retry_after, .. } = rate_limited(None) else {
            panic!()
        };
        assert_eq!(retry_after, Duration::from_secs(900));
        let PairError::RateLimited { retry_after, .. } = rate_limited(Some(0)) else {
            panic!()
        };
        assert_eq!(retry_after, Duration::from_secs(1));
    }
}
