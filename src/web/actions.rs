//! What the page can do, through the code the CLI runs: `bbedge pair` (same checks,
//! same sentences, same codes), `bbedge led identify`, `bbedge token add|list|revoke`.
//! Every action is logged with the actor (the session's admin token id) and its
//! outcome; never an enrollment code or a token.

use super::Web;
use crate::commands::token as ops;
use crate::control::ControlError;
use crate::error::ErrorCode;
use crate::pairing::register::{self, Inputs, Settings};
use crate::pairing::status::LastError;
use crate::secret::Secret;
use hyper::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

/// A refused or failed action: the HTTP status, a stable code, the sentence to show.
#[derive(Debug)]
pub struct Failure {
    /// 400 for bad input, 409 when refused, 502 when central failed, 500 otherwise.
    pub status: StatusCode,
    /// The stable code (`PAIR_CODE_REFUSED`, `TOKEN_NOT_FOUND`, …).
    pub code: String,
    /// The sentence.
    pub message: String,
}

impl Failure {
    fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    fn control(e: ControlError) -> Self {
        let (status, code) = match &e {
            ControlError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BAD_REQUEST".to_owned()),
            ControlError::Failed { code, .. } if code == "TOKEN_NOT_FOUND" => {
                (StatusCode::NOT_FOUND, code.clone())
            }
            ControlError::Failed { code, .. } => (StatusCode::INTERNAL_SERVER_ERROR, code.clone()),
            other => (StatusCode::INTERNAL_SERVER_ERROR, other.code().to_owned()),
        };
        Self::new(status, code, e.to_string())
    }
}

fn text<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Pairs with `{server, device_uuid, code, name?}` as `bbedge pair` does, then has the
/// daemon pick up the credentials (as `pairing.reload` does for the CLI).
pub async fn pair(web: &Web, actor: &str, body: &Value) -> Result<Value, Failure> {
    let inputs = Inputs {
        server: text(body, "server").unwrap_or_default().to_owned(),
        device_uuid: text(body, "device_uuid").unwrap_or_default().to_owned(),
        code: Secret::new(text(body, "code").unwrap_or_default()),
        name: text(body, "name").map(str::to_owned),
        realtime_url: None,
        room_location: None,
    };
    let settings = Settings::new(&web.config, &web.paths);
    let result = async {
        let req = inputs.check(&web.config.device, settings.allow_insecure)?;
        register::pair(&req, &settings).await
    }
    .await;
    let creds = match result {
        Ok(c) => c,
        Err(e) => {
            let f = Failure::new(pair_status(&e), e.code(), e.to_string());
            web.report.set_error(LastError {
                code: f.code.clone(),
                message: f.message.clone(),
                at: crate::protocol::now_rfc3339(),
                source: "web",
            });
            tracing::warn!(operation = "web.pair", actor, outcome = "failed", code = %f.code, "pairing from the web page failed");
            return Err(f);
        }
    };
    if let Err(e) = crate::app::reload_credentials(&web.credentials, &web.hub) {
        tracing::error!(operation = "web.pair", actor, code = e.code(), error = %e, "paired, but the daemon cannot re-read the credentials; restart it");
    }
    if let Some(status) = creds.not_accepted() {
        let code = crate::commands::pair::NOT_ACCEPTED;
        let message = format!(
            "Central accepted the code but has device {} as '{status}', so it refuses the box's connections until an operator sets it active (or enrolls a new device); the credentials are kept for when it is active again.",
            creds.device_id
        );
        web.report.set_error(LastError {
            code: code.to_owned(),
            message: message.clone(),
            at: crate::protocol::now_rfc3339(),
            source: "web",
        });
        tracing::warn!(operation = "web.pair", actor, outcome = "not_accepted", device_id = %creds.device_id, "paired from the web page, but central does not accept the device");
        return Err(Failure::new(StatusCode::CONFLICT, code, message));
    }
    tracing::info!(operation = "web.pair", actor, outcome = "paired", device_id = %creds.device_id, server = %creds.server, "paired from the web page");
    Ok(json!({
        "message": format!(
            "Paired with {} as \"{}\" (device {}); the token expires at {}.",
            creds.server, creds.name, creds.device_id, creds.expires_at
        ),
        "device_id": creds.device_id,
        "expires_at": creds.expires_at,
    }))
}

fn pair_status(e: &crate::pairing::PairError) -> StatusCode {
    use crate::pairing::failure::exit;
    match e.exit_code() {
        exit::INVALID_INPUT => StatusCode::BAD_REQUEST,
        exit::REQUEST_REJECTED | exit::KEY_REJECTED | exit::CODE_REFUSED => StatusCode::CONFLICT,
        exit::RATE_LIMITED => StatusCode::TOO_MANY_REQUESTS,
        exit::FILES | exit::CONFIG => StatusCode::INTERNAL_SERVER_ERROR,
        // Central answered badly or could not be reached (DNS, TLS, timeout, …).
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// Blinks `identify` for `{seconds}` (default 10).
pub fn identify(web: &Web, actor: &str, body: &Value) -> Result<Value, Failure> {
    let seconds = match body.get("seconds") {
        None | Some(Value::Null) => 10,
        Some(v) => v.as_u64().ok_or_else(|| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "seconds must be a whole number",
            )
        })?,
    };
    match web.led.identify(Duration::from_secs(seconds)) {
        Ok(()) => {
            tracing::info!(
                operation = "web.identify",
                actor,
                seconds,
                outcome = "ok",
                "identify from the web page"
            );
            Ok(json!({"message": format!("The LED blinks `identify` for {seconds} s.")}))
        }
        Err(e) => {
            tracing::warn!(
                operation = "web.identify",
                actor,
                seconds,
                outcome = "failed",
                code = e.code(),
                "identify from the web page refused"
            );
            let status = if e.code() == "LED_BUSY" {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::BAD_REQUEST
            };
            Err(Failure::new(status, e.code(), e.to_string()))
        }
    }
}

/// Every token record (never a token).
pub fn list_tokens(web: &Web) -> Result<Value, Failure> {
    ops::list(&web.store).map_err(Failure::control)
}

/// Issues a token `{role, label?}`: the answer carries it once, for the admin who asked
/// (the one place the page shows a token); only its hash is kept.
pub async fn add_token(web: &Web, actor: &str, body: &Value) -> Result<Value, Failure> {
    let args = json!({"role": body.get("role"), "label": text(body, "label")});
    match ops::add(&web.store, args).await {
        Ok(v) => {
            let id = v["record"]["id"].as_str().unwrap_or_default();
            tracing::info!(
                operation = "web.token.add",
                actor,
                token_id = id,
                role = v["record"]["role"].as_str().unwrap_or_default(),
                outcome = "ok",
                "token issued from the web page"
            );
            Ok(v)
        }
        Err(e) => {
            let f = Failure::control(e);
            tracing::warn!(operation = "web.token.add", actor, outcome = "failed", code = %f.code, "token not issued");
            Err(f)
        }
    }
}

/// Revokes token `{id}`: its room connections close at once, its page sessions end.
pub async fn revoke_token(web: &Web, actor: &str, body: &Value) -> Result<Value, Failure> {
    let id = text(body, "id").unwrap_or_default().to_owned();
    let result = ops::revoke(&web.store, web.rooms.as_deref(), json!({"id": id})).await;
    match result {
        Ok(v) => {
            let ended = web.sessions.remove_token(&id);
            tracing::info!(operation = "web.token.revoke", actor, token_id = %id, sessions_ended = ended, outcome = "ok", "token revoked from the web page");
            Ok(v)
        }
        Err(e) => {
            let f = Failure::control(e);
            tracing::warn!(operation = "web.token.revoke", actor, token_id = %id, outcome = "failed", code = %f.code, "token not revoked");
            Err(f)
        }
    }
}
