//! The registration half of the fake central server (contract §a.1–§a.6, §b.1):
//! `POST /api/v1/broadcast-box/devices` on 127.0.0.1 port 0, plain HTTP or HTTPS with
//! a test CA. It behaves as the contract says, defects included: every attempt counts
//! against the rate limits before validation; codes are bound to a device UUID, single
//! use, valid 15 minutes, trimmed and upper-cased, hyphens significant; every code
//! failure is the same 422. Tokens have central's format (base64url claims, a dot,
//! base64url HMAC-SHA256) and last 7 days.
//!
//! The clock is the system clock plus an offset that tests [`FakeCentral::advance`].
//! Tests can make it answer 500, drop the connection, or never answer.

use super::certs::TestPki;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use bytes::Bytes;
use ed25519_dalek::pkcs8::DecodePublicKey;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The registration path.
pub const PATH: &str = "/api/v1/broadcast-box/devices";
/// Code lifetime (§a.1).
pub const CODE_TTL: Duration = Duration::from_secs(15 * 60);
/// Token lifetime (§b.2).
pub const TOKEN_TTL: Duration = Duration::from_secs(7 * 86_400);
/// Rate-limit window and caps (§a.6).
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Attempts per client IP per window.
pub const PER_IP: u32 = 5;
/// Attempts per exact code string per window.
pub const PER_CODE: u32 = 3;

/// Transport of the fake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// Plain HTTP.
    Plain,
    /// HTTPS with a certificate from the CA that [`FakeCentral::write_ca`] writes.
    Trusted,
    /// HTTPS with a certificate from another CA than the one [`FakeCentral::write_ca`]
    /// writes: a client trusting that file must refuse the server.
    UntrustedIssuer,
}

/// What the next requests get instead of normal processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Normal behaviour.
    None,
    /// This status with central's generic error body.
    Status(u16),
    /// Read the request, then close the connection without an answer.
    Drop,
    /// Read the request and never answer (client timeouts).
    Hang,
    /// 400 "Validation failed" naming every field, with each field's value echoed back
    /// the way express-validator does (the code included).
    Validation,
    /// 400 "publicKey must be a PEM (SPKI) Ed25519 public key".
    RejectKey,
}

/// An operator enrollment (§a.1): what reaches the box out of band.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// The device UUID.
    pub device_uuid: String,
    /// The code, `XXXX-XXXX-XXXX`.
    pub code: String,
}

/// A registered device as central stores it.
#[derive(Debug, Clone)]
pub struct Device {
    /// `device.id`.
    pub id: String,
    /// The UUID.
    pub device_uuid: String,
    /// Name from the first registration.
    pub name: String,
    /// Room location from the first registration.
    pub room_location: Option<String>,
    /// The registered SPKI PEM public key (replaced by each registration that sends one).
    pub public_key: Option<String>,
    /// `enrolled` until a test changes it.
    pub status: String,
}

struct CodeRow {
    code: String,
    device_uuid: String,
    issued: SystemTime,
    used: bool,
}

struct Window {
    start: SystemTime,
    count: u32,
}

struct State {
    offset: Duration,
    codes: Vec<CodeRow>,
    devices: HashMap<String, Device>,
    by_ip: HashMap<IpAddr, Window>,
    by_code: HashMap<String, Window>,
    rate_limits: bool,
    failure: Failure,
    tokens: Vec<String>,
    bodies: Vec<Value>,
    hmac_key: Vec<u8>,
}

impl State {
    fn now(&self) -> SystemTime {
        SystemTime::now() + self.offset
    }
}

/// The running fake. Stops when dropped.
pub struct FakeCentral {
    addr: SocketAddr,
    tls: Tls,
    trusted_ca: Option<String>,
    state: Arc<Mutex<State>>,
    attempts: watch::Receiver<u64>,
    shutdown: CancellationToken,
}

impl Drop for FakeCentral {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl FakeCentral {
    /// Starts on 127.0.0.1 port 0.
    pub async fn start(tls: Tls) -> FakeCentral {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake central");
        let addr = listener.local_addr().expect("addr");
        let names = ["localhost", "127.0.0.1"];
        let (acceptor, trusted_ca) = match tls {
            Tls::Plain => (None, None),
            Tls::Trusted => {
                let pki = TestPki::new("fake central CA", &names);
                (Some(pki.server_config()), Some(pki.ca_pem.clone()))
            }
            Tls::UntrustedIssuer => {
                let served = TestPki::new("some other CA", &names);
                let trusted = TestPki::new("fake central CA", &names);
                (Some(served.server_config()), Some(trusted.ca_pem.clone()))
            }
        };
        let state = Arc::new(Mutex::new(State {
            offset: Duration::ZERO,
            codes: Vec::new(),
            devices: HashMap::new(),
            by_ip: HashMap::new(),
            by_code: HashMap::new(),
            rate_limits: true,
            failure: Failure::None,
            tokens: Vec::new(),
            bodies: Vec::new(),
            hmac_key: rand::random::<[u8; 32]>().to_vec(),
        }));
        let (attempts_tx, attempts) = watch::channel(0u64);
        let shutdown = CancellationToken::new();
        let ctx = Ctx {
            state: state.clone(),
            attempts: Arc::new(attempts_tx),
            shutdown: shutdown.clone(),
        };
        let acceptor = acceptor.map(tokio_rustls::TlsAcceptor::from);
        tokio::spawn(accept_loop(listener, acceptor, ctx));
        FakeCentral {
            addr,
            tls,
            trusted_ca,
            state,
            attempts,
            shutdown,
        }
    }

    /// `http://127.0.0.1:<port>` or `https://localhost:<port>`.
    pub fn url(&self) -> String {
        match self.tls {
            Tls::Plain => format!("http://127.0.0.1:{}", self.addr.port()),
            _ => format!("https://localhost:{}", self.addr.port()),
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Writes the CA a client should trust to `dir/ca.pem` (HTTPS variants only).
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let p = dir.join("central-ca.pem");
        std::fs::write(&p, self.trusted_ca.as_deref().expect("an HTTPS fake")).expect("write CA");
        p
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().expect("fake state"))
    }

    /// §a.1: a new device UUID and a code bound to it.
    pub fn enroll(&self) -> Enrollment {
        let device_uuid = uuid::Uuid::new_v4().to_string();
        let code = self.reissue(&device_uuid);
        Enrollment { device_uuid, code }
    }

    /// §a.2: deletes every code of `device_uuid` and issues a fresh one.
    pub fn reissue(&self, device_uuid: &str) -> String {
        let code = new_code();
        self.with(|s| {
            s.codes.retain(|c| c.device_uuid != device_uuid);
            let issued = s.now();
            s.codes.push(CodeRow {
                code: code.clone(),
                device_uuid: device_uuid.to_owned(),
                issued,
                used: false,
            });
        });
        code
    }

    /// Moves the fake's clock (code expiry, rate-limit windows, token times).
    pub fn advance(&self, d: Duration) {
        self.with(|s| s.offset += d);
    }

    /// The fake's current time.
    pub fn now(&self) -> SystemTime {
        self.with(|s| s.now())
    }

    /// Turns the rate limits off (central's `NODE_ENV=test`) or on.
    pub fn set_rate_limits(&self, on: bool) {
        self.with(|s| s.rate_limits = on);
    }

    /// Makes the next requests fail this way (until set back to [`Failure::None`]).
    pub fn set_failure(&self, f: Failure) {
        self.with(|s| s.failure = f);
    }

    /// Requests received so far (every attempt, whatever its answer).
    pub fn attempts(&self) -> u64 {
        *self.attempts.borrow()
    }

    /// Waits until at least `n` requests arrived (hang guard: 30 s).
    pub async fn wait_attempts(&self, n: u64) {
        let mut rx = self.attempts.clone();
        tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|a| *a >= n))
            .await
            .unwrap_or_else(|_| panic!("fewer than {n} registration attempts arrived"))
            .expect("fake central running");
    }

    /// Every token issued, oldest first.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.with(|s| s.tokens.clone())
    }

    /// A registered device.
    pub fn device(&self, device_uuid: &str) -> Option<Device> {
        self.with(|s| s.devices.get(device_uuid).cloned())
    }

    /// The public key registered for `device_uuid` (SPKI PEM).
    pub fn registered_public_key(&self, device_uuid: &str) -> Option<String> {
        self.device(device_uuid).and_then(|d| d.public_key)
    }

    /// Sets a device's status (`suspended`, `revoked`, …) for the device-room half.
    pub fn set_device_status(&self, device_uuid: &str, status: &str) {
        self.with(|s| {
            if let Some(d) = s.devices.get_mut(device_uuid) {
                d.status = status.to_owned();
            }
        });
    }

    /// JSON bodies received, oldest first (parsable ones only).
    pub fn bodies(&self) -> Vec<Value> {
        self.with(|s| s.bodies.clone())
    }

    /// §b.3 steps 1–5 and 7–8: the claims of a valid token, or why it is not.
    pub fn verify_token(&self, token: &str) -> Result<Value, &'static str> {
        let (claims_b64, mac_b64) = token.split_once('.').ok_or("not two parts")?;
        if mac_b64.contains('.') {
            return Err("not two parts");
        }
        let mac = B64.decode(mac_b64).map_err(|_| "bad signature encoding")?;
        let (key, now) = self.with(|s| (s.hmac_key.clone(), s.now()));
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
        ring::hmac::verify(&k, claims_b64.as_bytes(), &mac).map_err(|_| "bad signature")?;
        let claims: Value =
            serde_json::from_slice(&B64.decode(claims_b64).map_err(|_| "bad claims")?)
                .map_err(|_| "bad claims")?;
        let exp = claims["exp"].as_u64().ok_or("no exp")?;
        if exp < unix(now) {
            return Err("expired");
        }
        if claims["type"] != "device" {
            return Err("not a device token");
        }
        let uuid = claims["deviceUuid"].as_str().ok_or("no deviceUuid")?;
        match self.device(uuid) {
            Some(d) if d.status == "enrolled" || d.status == "active" => Ok(claims),
            Some(_) => Err("device status not allowed"),
            None => Err("no such device"),
        }
    }
}

#[derive(Clone)]
struct Ctx {
    state: Arc<Mutex<State>>,
    attempts: Arc<watch::Sender<u64>>,
    shutdown: CancellationToken,
}

async fn accept_loop(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>, ctx: Ctx) {
    loop {
        let (tcp, peer) = tokio::select! {
            () = ctx.shutdown.cancelled() => return,
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
        };
        let ctx = ctx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => {
                    // A client refusing the certificate ends the handshake here.
                    if let Ok(stream) = acceptor.accept(tcp).await {
                        serve(hyper_util::rt::TokioIo::new(stream), peer, ctx).await;
                    }
                }
                None => serve(hyper_util::rt::TokioIo::new(tcp), peer, ctx).await,
            }
        });
    }
}

/// The service's error: "drop this connection without an answer".
#[derive(Debug)]
struct DropConnection;
impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dropped on purpose")
    }
}
impl std::error::Error for DropConnection {}

async fn serve<I>(io: I, peer: SocketAddr, ctx: Ctx)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let ctx = ctx.clone();
        async move { handle(req, peer, ctx).await }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, svc)
        .await;
}

async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    ctx: Ctx,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    if req.method() != hyper::Method::POST || req.uri().path() != PATH {
        return Ok(answer(
            StatusCode::NOT_FOUND,
            json!({"success": false, "error": {"message": "Not found"}}),
            None,
        ));
    }
    let ip = client_ip(&req, peer);
    let body = match Limited::new(req.into_body(), 10 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(DropConnection),
    };
    ctx.attempts.send_modify(|n| *n += 1);
    let failure = ctx.state.lock().expect("state").failure;
    match failure {
        Failure::None => {}
        Failure::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Ok(answer(
                status,
                json!({"success": false, "error": {"message": "Failed to register device"}}),
                None,
            ));
        }
        Failure::Drop => return Err(DropConnection),
        Failure::Validation => {
            let sent: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let details: Vec<Value> = ["deviceUuid", "enrollmentCode", "name"]
                .iter()
                .map(|p| json!({"type": "field", "value": sent.get(*p), "msg": "Invalid value", "path": p, "location": "body"}))
                .collect();
            return Ok(answer(
                StatusCode::BAD_REQUEST,
                json!({"success": false, "error": {"message": "Validation failed", "details": details}}),
                None,
            ));
        }
        Failure::RejectKey => {
            return Ok(answer(
                StatusCode::BAD_REQUEST,
                json!({"success": false, "error": {"message": "publicKey must be a PEM (SPKI) Ed25519 public key"}}),
                None,
            ));
        }
        Failure::Hang => {
            ctx.shutdown.cancelled().await;
            return Err(DropConnection);
        }
    }
    let Ok(json) = serde_json::from_slice::<Value>(&body) else {
        return Ok(answer(
            StatusCode::BAD_REQUEST,
            json!({"success": false, "error": {"message": "Invalid JSON"}}),
            None,
        ));
    };
    let mut s = ctx.state.lock().expect("state");
    s.bodies.push(json.clone());
    Ok(register(&mut s, ip, &json))
}

fn client_ip(req: &Request<Incoming>, peer: SocketAddr) -> IpAddr {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    };
    header("x-forwarded-for")
        .or_else(|| header("x-real-ip"))
        .unwrap_or(peer.ip())
}

/// §a.3 in its processing order.
fn register(s: &mut State, ip: IpAddr, body: &Value) -> Response<Full<Bytes>> {
    let now = s.now();
    if s.rate_limits {
        let code_key = body["enrollmentCode"].as_str().map(str::to_owned);
        if let Some(wait) = hit(&mut s.by_ip, ip, PER_IP, now) {
            return too_many(wait);
        }
        if let Some(code) = code_key {
            if let Some(wait) = hit(&mut s.by_code, code, PER_CODE, now) {
                return too_many(wait);
            }
        }
    }
    let mut details = Vec::new();
    let mut field = |path: &str, ok: bool| {
        if !ok {
            let value = body.get(path).cloned();
            details.push(json!({"type": "field", "value": value, "msg": "Invalid value", "path": path, "location": "body"}));
        }
    };
    let text = |k: &str| body[k].as_str().filter(|v| !v.trim().is_empty());
    field(
        "deviceUuid",
        body["deviceUuid"]
            .as_str()
            .is_some_and(|u| uuid::Uuid::try_parse(u).is_ok() && u.len() == 36),
    );
    field("enrollmentCode", text("enrollmentCode").is_some());
    field("name", text("name").is_some());
    field(
        "roomLocation",
        body.get("roomLocation").is_none_or(Value::is_string),
    );
    field(
        "publicKey",
        body.get("publicKey")
            .is_none_or(|k| k.as_str().is_some_and(|k| k.len() <= 4096)),
    );
    if !details.is_empty() {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"success": false, "error": {"message": "Validation failed", "details": details}}),
            None,
        );
    }
    let public_key = body["publicKey"].as_str().map(str::to_owned);
    if let Some(pk) = &public_key {
        if ed25519_dalek::VerifyingKey::from_public_key_pem(pk).is_err() {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"success": false, "error": {"message": "publicKey must be a PEM (SPKI) Ed25519 public key"}}),
                None,
            );
        }
    }
    let uuid = body["deviceUuid"].as_str().unwrap_or_default().to_owned();
    let code = body["enrollmentCode"]
        .as_str()
        .unwrap_or_default()
        .trim()
        .to_ascii_uppercase();
    let refused = || {
        answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"success": false, "error": {"message": "Invalid enrollment credentials"}}),
            None,
        )
    };
    let recent = |c: &CodeRow| !c.used && age(now, c.issued) < Duration::from_secs(86_400);
    let Some(row) = s.codes.iter_mut().find(|c| recent(c) && c.code == code) else {
        return refused();
    };
    if row.device_uuid != uuid || age(now, row.issued) > CODE_TTL {
        return refused();
    }
    row.used = true;
    let device = s.devices.entry(uuid.clone()).or_insert_with(|| Device {
        id: uuid::Uuid::new_v4().to_string(),
        device_uuid: uuid.clone(),
        name: body["name"].as_str().unwrap_or_default().to_owned(),
        room_location: body["roomLocation"].as_str().map(str::to_owned),
        public_key: None,
        status: "enrolled".into(),
    });
    if public_key.is_some() {
        device.public_key = public_key;
    }
    let device = device.clone();
    let iat = unix(now);
    let exp = iat + TOKEN_TTL.as_secs();
    let claims = json!({"deviceId": device.id, "deviceUuid": uuid, "organizationId": "default",
        "type": "device", "jti": uuid::Uuid::new_v4().to_string(), "iat": iat, "exp": exp});
    let first = B64.encode(claims.to_string());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &s.hmac_key);
    let token = format!(
        "{first}.{}",
        B64.encode(ring::hmac::sign(&key, first.as_bytes()))
    );
    s.tokens.push(token.clone());
    let iso = |t: SystemTime| bbedge::protocol::frame::format_rfc3339(t.into());
    let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(exp);
    let mut dev = json!({"id": device.id, "organizationId": "default", "deviceUuid": uuid,
        "name": device.name, "status": device.status,
        "capabilities": {"videoSources": [], "audioSources": [], "pipSupported": false, "maxResolution": "1080p"},
        "config": {}, "createdAt": iso(now), "updatedAt": iso(now)});
    if let Some(pk) = &device.public_key {
        dev["publicKey"] = json!(pk);
    }
    if let Some(loc) = &device.room_location {
        dev["roomLocation"] = json!(loc);
    }
    answer(
        StatusCode::CREATED,
        json!({"success": true, "device": dev,
        "credentials": {"token": token, "expiresAt": iso(expires)}}),
        None,
    )
}

/// Counts one attempt in a fixed window; `Some(wait)` when over the cap.
fn hit<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Window>,
    key: K,
    cap: u32,
    now: SystemTime,
) -> Option<Duration> {
    let w = map.entry(key).or_insert(Window {
        start: now,
        count: 0,
    });
    if age(now, w.start) >= WINDOW {
        *w = Window {
            start: now,
            count: 0,
        };
    }
    w.count += 1;
    (w.count > cap).then(|| WINDOW.saturating_sub(age(now, w.start)))
}

fn too_many(wait: Duration) -> Response<Full<Bytes>> {
    // Rounded up, as express-rate-limit does.
    let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    answer(
        StatusCode::TOO_MANY_REQUESTS,
        json!({"success": false, "error": {
        "message": "Too many registration attempts, please try again later", "code": "RATE_LIMIT_EXCEEDED"}}),
        Some(secs),
    )
}

fn answer(status: StatusCode, body: Value, retry_after: Option<u64>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Some(s) = retry_after {
        r.headers_mut().insert(hyper::header::RETRY_AFTER, s.into());
    }
    r
}

fn age(now: SystemTime, then: SystemTime) -> Duration {
    now.duration_since(then).unwrap_or(Duration::ZERO)
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// 12 symbols from central's alphabet, one random byte mod 32 each (§a.1).
fn new_code() -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes: [u8; 12] = rand::random();
    let s: String = bytes
        .iter()
        .map(|b| ALPHABET[(*b % 32) as usize] as char)
        .collect();
    format!("{}-{}-{}", &s[0..4], &s[4..8], &s[8..12])
}
