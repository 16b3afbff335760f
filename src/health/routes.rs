//! The four routes. Each answers from shared state; none waits on another task.

use super::{sysinfo, Readiness, StatusBoard};
use crate::health::metrics::Metrics;
use crate::signal::StatusHub;
use crate::store::Store;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// What the routes read.
pub struct Context {
    /// Readiness blockers.
    pub readiness: Readiness,
    /// Per-service `/status` sections.
    pub board: StatusBoard,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// The device state.
    pub hub: StatusHub,
    /// The store, for its size.
    pub store: Store,
    /// Where a corrupt database was moved at start, if it was.
    pub quarantine: Option<Value>,
    /// The config summary (secrets removed).
    pub config_summary: Value,
    /// When the daemon started.
    pub started: Instant,
}

/// Routes one request.
pub fn handle<B>(ctx: &Context, req: &Request<B>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    match req.uri().path() {
        "/health" => text(StatusCode::OK, "ok\n"),
        "/ready" => {
            let reasons = ctx.readiness.reasons();
            if reasons.is_empty() {
                json_response(StatusCode::OK, &json!({"ready": true}))
            } else {
                json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"ready": false, "reasons": reasons}),
                )
            }
        }
        "/status" => json_response(StatusCode::OK, &status(ctx)),
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(ctx.metrics.encode())));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /health, /ready, /status, /metrics\n",
        ),
    }
}

fn status(ctx: &Context) -> Value {
    let facts = ctx.hub.facts();
    let mut body = json!({
        "version": crate::version::VERSION,
        "git": crate::version::GIT_HASH,
        "target": crate::version::TARGET,
        "uptime_seconds": ctx.started.elapsed().as_secs(),
        "state": ctx.hub.state().as_str(),
        "facts": facts,
        "ready": ctx.readiness.is_ready(),
        "not_ready_reasons": ctx.readiness.reasons(),
        "store": {
            "path": ctx.store.path().display().to_string(),
            "size_bytes": ctx.store.size_on_disk(),
            "quarantined": ctx.quarantine,
            "fault": ctx.store.health().is_faulty(),
            "write_failures": ctx.store.health().failures_total(),
            "reopens": ctx.store.health().reopens(),
            "token_file": ctx.store.keep().path().display().to_string(),
        },
        "memory": { "rss_bytes": sysinfo::rss_bytes() },
        "config": ctx.config_summary,
    });
    if let Value::Object(map) = &mut body {
        map.extend(ctx.board.collect());
    }
    body
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json_response(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}
