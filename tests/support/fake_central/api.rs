//! The fake central's HTTP API listener (its own port, like central's development
//! setup, §0.2), with the one route the link uses: `GET /api/v1/broadcast-box/uploads`
//! as the §b.6 probe sees it. The device middleware answers `401` with `error.code`
//! `UNAUTHENTICATED`, `INVALID_AUTH_SCHEME`, `AUTH_FAILED` (unknown token),
//! `DEVICE_NOT_FOUND` (status `deleted` here) or `INVALID_STATUS` (`suspended`,
//! `revoked`, `decommissioned`), else `200`. [`FakeCentral::unmount_uploads`] makes the
//! route 404, as when central's storage module is not mounted.
//!
//! Also here: the switches tests use to make the device room refuse connections.

use super::{FakeCentral, Shared};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::net::TcpListener;

/// The probe's route.
pub const UPLOADS: &str = "/api/v1/broadcast-box/uploads";

/// One request to the uploads route.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The query string.
    pub query: Option<String>,
    /// The `Authorization` header as sent.
    pub authorization: Option<String>,
    /// When it arrived, on tokio's clock (paused in some tests).
    pub at: tokio::time::Instant,
    /// The status answered.
    pub status: u16,
}

/// Binds the API listener on 127.0.0.1 port 0 and serves it until aborted.
pub async fn spawn(
    shared: Shared,
    tls: Option<Arc<tokio_rustls::TlsAcceptor>>,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind api");
    let addr = listener.local_addr().expect("api addr");
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let shared = shared.clone();
            let tls = tls.clone();
            conns.spawn(async move {
                match tls {
                    Some(acc) => {
                        if let Ok(s) = acc.accept(tcp).await {
                            serve(hyper_util::rt::TokioIo::new(s), shared).await;
                        }
                    }
                    None => serve(hyper_util::rt::TokioIo::new(tcp), shared).await,
                }
            });
            while conns.try_join_next().is_some() {}
        }
    });
    (addr, task)
}

async fn serve<I>(io: I, shared: Shared)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(&req, &shared)) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, svc)
        .await;
}

fn handle(req: &Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    if req.method() != hyper::Method::GET || req.uri().path() != UPLOADS {
        return answer(
            404,
            json!({"success": false, "error": {"message": "Not found"}}),
        );
    }
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (status, body) = shared.with(|s| {
        let fail = |code: &str, message: &str| {
            (
                401,
                json!({"success": false, "error": {"code": code, "message": message}}),
            )
        };
        let r = match authorization.as_deref() {
            _ if s.uploads_unmounted => (
                404,
                json!({"success": false, "error": {"message": "Not found"}}),
            ),
            None => fail("UNAUTHENTICATED", "Authentication required"),
            Some(h) => match h.strip_prefix("Bearer ") {
                None => fail("INVALID_AUTH_SCHEME", "Bearer token required"),
                Some(t) => match s.tokens.get(t) {
                    None => fail("AUTH_FAILED", "Invalid device token"),
                    Some(d) => match s.device_status.get(&d.uuid).map(String::as_str) {
                        Some("deleted") => fail("DEVICE_NOT_FOUND", "Device not found"),
                        Some("suspended" | "revoked" | "decommissioned") => {
                            fail("INVALID_STATUS", "Device is not active")
                        }
                        _ => (200, json!({"success": true, "uploads": [], "total": 0})),
                    },
                },
            },
        };
        s.probes.push(Probe {
            query: req.uri().query().map(str::to_owned),
            authorization: authorization.clone(),
            at: tokio::time::Instant::now(),
            status: r.0,
        });
        r
    });
    answer(status, body)
}

fn answer(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).expect("status");
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

impl FakeCentral {
    /// The API base (`http://127.0.0.1:<port>` or `https://…`), as `--server` would be.
    pub fn api_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.api_addr)
    }

    /// Sets a device's status: `active`, `enrolled`, `suspended`, `revoked`,
    /// `decommissioned`, or `deleted` (no row). The room refuses all but the first two
    /// with 4003 at connect (§b.3: live sockets are not re-checked).
    pub fn set_device_status(&self, uuid: &str, status: &str) {
        self.shared
            .with(|s| s.device_status.insert(uuid.to_owned(), status.to_owned()));
    }

    /// Makes the uploads route answer 404 (central's storage module not mounted).
    pub fn unmount_uploads(&self) {
        self.shared.with(|s| s.uploads_unmounted = true);
    }

    /// Refuses the next `n` connections that pass auth with `code`: 4003 as a
    /// database error in central's `onConnect` does (`UNKNOWN_ERROR` frame, then
    /// 4003), or 4029 as a connection cap does (tracker entry first, §g.2).
    pub fn refuse_next(&self, code: u16, n: usize) {
        self.shared
            .with(|s| s.refuse_next.extend(std::iter::repeat_n(code, n)));
    }

    /// The probes received so far.
    pub fn probes(&self) -> Vec<Probe> {
        self.snapshot(|s| s.probes.clone())
    }
}

impl FakeCentral {
    /// Sends every text to the oldest open socket of `uuid`, in order, waiting for room
    /// in the connection's queue (a burst is never cut short by the fake itself).
    /// Returns how many were queued.
    pub async fn send_burst(&self, uuid: &str, texts: &[String]) -> usize {
        let tx = self.shared.with(|s| {
            s.open
                .iter()
                .find(|(_, (u, _))| u == uuid)
                .map(|(_, (_, tx))| tx.clone())
        });
        let Some(tx) = tx else { return 0 };
        let mut n = 0;
        for t in texts {
            if tx.send(super::ToConn::Text(t.clone())).await.is_err() {
                break;
            }
            n += 1;
        }
        n
    }

    /// An operator's `POST /sessions` for `uuid` as central's `startSession` judges it
    /// (§a.5): a device still `enrolled` (never activated) is refused with 409 "… is
    /// not active"; one that is not connected with 409 too; else `Ok`.
    pub fn operator_start_session(&self, uuid: &str) -> Result<(), (u16, String)> {
        self.snapshot(|s| {
            match s.device_status.get(uuid).map(String::as_str) {
                Some("enrolled") => {
                    return Err((409, format!("Device {uuid} is not active")));
                }
                Some("active") | None => {}
                Some(other) => return Err((409, format!("Device {uuid} is {other}"))),
            }
            if !s.tracker.contains_key(uuid) {
                return Err((409, format!("Device {uuid} is not connected")));
            }
            Ok(())
        })
    }
}
