//! Response helpers: every answer carries the security headers; API answers are never
//! cached.

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::Value;
use std::convert::Infallible;

/// The body every route answers with (a whole body, or the event stream).
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Headers on every response: no inline script or foreign origin, no framing, no
/// referrer, no MIME sniffing.
const SECURITY: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    // Not `no-referrer`: under it Chromium sends `Origin: null` on the page's own form
    // posts, which the Origin check must refuse. No referrer leaves for another site.
    ("referrer-policy", "same-origin"),
    ("x-content-type-options", "nosniff"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// A response with `status`, `content_type` and `body`, not cached.
pub fn respond(status: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (k, v) in SECURITY {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    r
}

/// A whole body.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed_unsync()
}

/// A JSON answer.
pub fn json(status: StatusCode, v: &Value) -> Response<Body> {
    respond(status, "application/json", full(v.to_string()))
}

/// `{"error": code, "message": message}`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json(
        status,
        &serde_json::json!({"error": code, "message": message}),
    )
}

/// An HTML page.
pub fn html(status: StatusCode, page: String) -> Response<Body> {
    respond(status, "text/html; charset=utf-8", full(page))
}

/// `303 See Other` to `location`, with extra headers.
pub fn see_other(location: &'static str, set_cookie: Option<String>) -> Response<Body> {
    let mut r = respond(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", full(""));
    r.headers_mut()
        .insert(hyper::header::LOCATION, HeaderValue::from_static(location));
    if let Some(c) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(hyper::header::SET_COOKIE, c);
    }
    r
}
