//! The routes. Without a session only the sign-in page, its stylesheet and `POST
//! /login` answer; everything else is 401 and shows nothing. Every state-changing
//! request is a POST carrying the session's CSRF token in `X-CSRF-Token` (compared in
//! constant time) and, when the browser sends one, an `Origin` equal to this page's;
//! GETs change nothing.
//!
//! | Route | Session | What |
//! |---|---|---|
//! | `GET /` | – / ✓ | the sign-in page / the page |
//! | `GET /style.css` | – | the stylesheet |
//! | `POST /login` | – | form `token=<admin token>`: sets the session cookie |
//! | `GET /app.js` | ✓ | the page's script |
//! | `GET /api/session` | ✓ | `{csrf, token_id}` |
//! | `GET /api/status` | ✓ | the snapshot ([`super::snapshot`]) |
//! | `GET /events` | ✓ | the snapshot as server-sent events |
//! | `GET /api/tokens` | ✓ | token records |
//! | `POST /api/identify` | ✓ + CSRF | `{seconds}` |
//! | `POST /api/pair` | ✓ + CSRF | `{server, device_uuid, code, name?}` |
//! | `POST /api/tokens` | ✓ + CSRF | `{role, label?}` → `{token, record}` (shown once) |
//! | `POST /api/tokens/revoke` | ✓ + CSRF | `{id}` |
//! | `POST /logout` | ✓ + CSRF | ends the session |

use super::actions::{self, Failure};
use super::http::{self, Body};
use super::session::{self, Session, COOKIE};
use super::{assets, Web};
use crate::room::tokens::{self, Role};
use crate::secret::Secret;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{header, Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// Largest request body read (forms and JSON are small).
pub const MAX_BODY: usize = 16 * 1024;

/// Routes one request; `tls`: served over TLS (the cookie gets `Secure`).
pub async fn handle(web: Arc<Web>, req: Request<Incoming>, tls: bool) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let method = parts.method.clone();
    let session = session_of(&web, &parts.headers);
    match (&method, path.as_str(), session) {
        (&Method::GET, "/style.css", _) => http::respond(
            StatusCode::OK,
            "text/css; charset=utf-8",
            http::full(assets::STYLE),
        ),
        (&Method::GET, "/", None) => http::html(StatusCode::OK, assets::sign_in("")),
        (&Method::POST, "/login", _) => {
            if !same_origin(&parts.headers, tls) {
                return forbidden("CROSS_ORIGIN", "a sign-in from another site is refused");
            }
            match read(body).await {
                Ok(b) => login(&web, &b, tls),
                Err(r) => r,
            }
        }
        (_, _, None) => http::error(
            StatusCode::UNAUTHORIZED,
            "SIGN_IN_REQUIRED",
            "sign in with an admin token first",
        ),
        (&Method::GET, _, Some((id, s))) => get(web, &path, id, s),
        (&Method::POST, _, Some((id, s))) => {
            if !same_origin(&parts.headers, tls) {
                tracing::warn!(operation = "web.csrf", actor = %s.token_id, path = %path, "request refused: Origin is not this page");
                return forbidden("CROSS_ORIGIN", "a request from another site is refused");
            }
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !session::same(sent, &s.csrf) {
                tracing::warn!(operation = "web.csrf", actor = %s.token_id, path = %path, "request refused: CSRF token missing or wrong");
                return forbidden(
                    "CSRF",
                    "the CSRF token is missing or wrong; reload the page",
                );
            }
            let body = match read(body).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            post(&web, &path, &id, &s, &body).await
        }
        _ => http::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "only GET and POST",
        ),
    }
}

fn get(web: Arc<Web>, path: &str, id: String, s: Session) -> Response<Body> {
    match path {
        "/" => http::html(StatusCode::OK, assets::index()),
        "/app.js" => http::respond(
            StatusCode::OK,
            "text/javascript; charset=utf-8",
            http::full(assets::APP_JS),
        ),
        "/api/session" => http::json(
            StatusCode::OK,
            &json!({"csrf": s.csrf, "token_id": s.token_id}),
        ),
        "/api/status" => http::json(StatusCode::OK, &super::snapshot::snapshot(&web)),
        "/api/tokens" => answer(actions::list_tokens(&web)),
        "/events" => match web.streams.clone().try_acquire_owned() {
            Ok(permit) => {
                let body = super::sse::stream(web, id, permit);
                http::respond(StatusCode::OK, "text/event-stream", body)
            }
            Err(_) => http::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "TOO_MANY_STREAMS",
                "too many pages are open on this box; close one",
            ),
        },
        _ => http::error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such page"),
    }
}

async fn post(web: &Web, path: &str, id: &str, s: &Session, body: &Bytes) -> Response<Body> {
    if path == "/logout" {
        web.sessions.remove(id);
        tracing::info!(operation = "web.sign_out", actor = %s.token_id, "signed out");
        return http::see_other("/", Some(clear_cookie()));
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return http::error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "the body must be a JSON object",
        );
    };
    if !v.is_object() {
        return http::error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "the body must be a JSON object",
        );
    }
    let actor = s.token_id.as_str();
    match path {
        "/api/identify" => answer(actions::identify(web, actor, &v)),
        "/api/pair" => answer(actions::pair(web, actor, &v).await),
        "/api/tokens" => answer(actions::add_token(web, actor, &v).await),
        "/api/tokens/revoke" => answer(actions::revoke_token(web, actor, &v).await),
        _ => http::error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such action"),
    }
}

fn answer(r: Result<Value, Failure>) -> Response<Body> {
    match r {
        Ok(v) => http::json(StatusCode::OK, &v),
        Err(f) => http::error(f.status, &f.code, &f.message),
    }
}

fn forbidden(code: &str, message: &str) -> Response<Body> {
    http::error(StatusCode::FORBIDDEN, code, message)
}

/// `POST /login`: an admin token, not revoked, starts a session.
fn login(web: &Web, body: &Bytes, tls: bool) -> Response<Body> {
    let token = url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "token")
        .map_or_else(|| Secret::new(""), |(_, v)| Secret::new(v.trim()));
    let refuse = |message: &str| http::html(StatusCode::UNAUTHORIZED, assets::sign_in(message));
    if token.is_empty() {
        return refuse("Paste an admin token to sign in.");
    }
    match tokens::lookup_admin(&web.store, &token) {
        Ok(Some(rec)) if !rec.revoked => {
            let id = web.sessions.create(&rec.id, Instant::now());
            tracing::info!(operation = "web.sign_in", actor = %rec.id, outcome = "ok", "signed in to the web page");
            let secure = if tls { "; Secure" } else { "" };
            let cookie = format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/{secure}");
            http::see_other("/", Some(cookie))
        }
        Ok(Some(rec)) => {
            tracing::info!(operation = "web.sign_in", actor = %rec.id, outcome = "revoked", "sign-in refused: the admin token is revoked");
            refuse("This admin token was revoked. Make a new one on the box: bbedge token add --role admin")
        }
        Ok(None) => {
            tracing::info!(
                operation = "web.sign_in",
                outcome = "unknown",
                "sign-in refused: not an admin token of this box"
            );
            refuse("That is not an admin token of this box (room tokens do not sign in). Make one on the box: bbedge token add --role admin")
        }
        Err(e) => {
            tracing::error!(operation = "web.sign_in", error = %e, "cannot read tokens");
            http::html(
                StatusCode::SERVICE_UNAVAILABLE,
                assets::sign_in("The box cannot read its tokens right now; try again."),
            )
        }
    }
}

fn clear_cookie() -> String {
    format!("{COOKIE}=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/")
}

/// The live session the cookie names, if its admin token is still good.
fn session_of(web: &Web, headers: &hyper::HeaderMap) -> Option<(String, Session)> {
    let id = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))?
        .to_owned();
    let s = web.sessions.get(&id, Instant::now())?;
    // Revoked since (by the CLI too): the session ends with it.
    if !still_admin(web, &s.token_id) {
        web.sessions.remove(&id);
        return None;
    }
    Some((id, s))
}

/// Whether admin token `token_id` is still known and not revoked.
pub(super) fn still_admin(web: &Web, token_id: &str) -> bool {
    tokens::list(&web.store).is_ok_and(|all| {
        all.iter()
            .any(|r| r.id == token_id && r.role == Role::Admin && !r.revoked)
    })
}

/// No `Origin` (not a browser, or an old one: the CSRF token and the `SameSite`
/// cookie still hold), or one naming this very page.
fn same_origin(headers: &hyper::HeaderMap, tls: bool) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let scheme = if tls { "https" } else { "http" };
    match (origin.to_str(), host) {
        (Ok(o), Some(h)) => o == format!("{scheme}://{h}"),
        _ => false,
    }
}

async fn read(body: Incoming) -> Result<Bytes, Response<Body>> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(http::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BODY_TOO_LARGE",
            "the request body is over 16 KiB",
        )),
        Err(e) => Err(http::error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            &format!("the request body could not be read: {e}"),
        )),
    }
}
