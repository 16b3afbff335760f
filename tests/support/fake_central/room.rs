//! One device connection on the fake central: the handshake checks (§c.1, §c.2, §c.4),
//! then the device room: rate limit, tracker, pong, acks, and the validation of every
//! frame the device sends.

use super::{Received, Shared, ToConn};
use base64::Engine;
use ed25519_dalek::{Signature, Verifier};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Messages per fixed window before the 1008 close.
pub const RATE_LIMIT: u32 = 10;
/// Open sockets per device before 4029.
pub const PER_DEVICE_CAP: usize = 10;

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_owned().into(),
    }))
}

fn auth_failed() -> Message {
    Message::Text(json!({"type":"control","event":"error","error":{"code":"AUTH_FAILED","message":"Authentication failed"}}).to_string().into())
}

/// The upgrade's path and Bearer token, as the handshake callback saw them.
type PathAndBearer = (String, Option<String>);

/// Serves one TCP (or TLS) stream to its end.
#[allow(clippy::result_large_err)] // the callback's type is tungstenite's
pub async fn serve<S>(
    stream: S,
    conn: u64,
    tx: mpsc::Sender<ToConn>,
    mut rx: mpsc::Receiver<ToConn>,
    shared: Shared,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let seen: Arc<Mutex<Option<PathAndBearer>>> = Arc::default();
    let seen2 = seen.clone();
    let shared2 = shared.clone();
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let path = req.uri().path().to_owned();
        if !path.starts_with("/realtime") {
            shared2.with(|s| s.http_401 += 1);
            let mut r = ErrorResponse::new(Some("Unauthorized".into()));
            *r.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::UNAUTHORIZED;
            return Err(r);
        }
        if req.uri().query().is_some_and(|q| q.contains("token=")) {
            shared2.with(|s| s.violations.push("token in the query string".into()));
        }
        let bearer = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        *seen2.lock().expect("seen") = Some((path, bearer));
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let Some((path, bearer)) = seen.lock().expect("seen").take() else {
        return;
    };
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let uuid = segs.get(2).copied().unwrap_or("").to_owned();
    let Some(token) = bearer else {
        let _ = ws.send(auth_failed()).await;
        let _ = ws.send(Message::Close(None)).await;
        return;
    };
    // §b.3 step 8: only `active` and `enrolled` devices (absent here means `active`).
    let device = shared.with(|s| {
        s.tokens.get(&token).cloned().filter(|d| {
            s.device_status
                .get(&d.uuid)
                .is_none_or(|st| st == "active" || st == "enrolled")
        })
    });
    let device = match device {
        Some(d) if segs.len() >= 3 && segs[0] == "realtime" && d.uuid == uuid => d,
        _ => {
            let _ = ws.send(auth_failed()).await;
            let _ = ws
                .send(close(4003, r#"{"code":"PERMISSION_DENIED"}"#))
                .await;
            drain(&mut ws).await;
            return;
        }
    };
    // A test's refusal: 4003 as an exception in central's `onConnect` (§c.4).
    let refuse = shared.with(|s| s.refuse_next.pop_front());
    if refuse == Some(4003) {
        let e = json!({"type":"control","event":"error","error":{"code":"UNKNOWN_ERROR","message":"database unavailable"}});
        let _ = ws.send(Message::Text(e.to_string().into())).await;
        let _ = ws
            .send(close(4003, r#"{"code":"PERMISSION_DENIED"}"#))
            .await;
        drain(&mut ws).await;
        return;
    }
    // The tracker registers before the cap check (§g.2).
    let capped = shared.with(|s| {
        let now = s.now();
        s.tracker.insert(uuid.clone(), now);
        refuse == Some(4029)
            || s.open.values().filter(|(u, _)| *u == uuid).count() >= PER_DEVICE_CAP
    });
    if capped {
        let reason = r#"{"code":"CONNECTION_LIMIT_EXCEEDED","reason":"per-user connection limit reached (10)"}"#;
        let _ = ws.send(close(4029, reason)).await;
        drain(&mut ws).await;
        return;
    }
    // Anything the device sent before the ack is "lost" (§c.8): count it.
    if let Ok(Some(Ok(Message::Text(_)))) =
        tokio::time::timeout(Duration::from_millis(20), ws.next()).await
    {
        shared.with(|s| s.before_ack += 1);
    }
    let client_id = format!("client_{}_{conn}", bbedge::protocol::now_ms());
    let ack = json!({"type":"control","event":"connection.ack","roomId":format!("device:{uuid}"),"clientId":client_id});
    if ws
        .send(Message::Text(ack.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    shared.with(|s| {
        s.acked.push((conn, uuid.clone(), Instant::now()));
        s.open.insert(conn, (uuid.clone(), tx));
    });
    let mut window = (tokio::time::Instant::now(), 0u32);
    let end = loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(ToConn::Text(t)) => { if ws.send(Message::Text(t.into())).await.is_err() { break None; } }
                Some(ToConn::Close(code)) => { let _ = ws.send(close(code, "")).await; drain(&mut ws).await; break Some(code); }
                Some(ToConn::CutMidFrame) => {
                    // A text frame header announcing 200 bytes, then 2 of them, then EOF.
                    let raw = ws.get_mut();
                    let _ = raw.write_all(&[0x81, 0x7e, 0x00, 0xc8, b'{', b'"']).await;
                    let _ = raw.flush().await;
                    let _ = raw.shutdown().await;
                    break None;
                }
                Some(ToConn::Freeze) => {
                    shared.with(|s| { s.open.remove(&conn); });
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    break None;
                }
                None => break None,
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if let Some(code) = on_text(&t, conn, &device, &shared, &mut window) {
                        let _ = ws.send(Message::Text(code.0.into())).await;
                        if let Some(c) = code.1 {
                            let _ = ws.send(close(c, "Rate limit exceeded")).await;
                            drain(&mut ws).await;
                            break Some(c);
                        }
                    }
                }
                Some(Ok(Message::Close(f))) => {
                    shared.with(|s| s.device_closes.push((conn, f.map(|f| u16::from(f.code)))));
                    let _ = ws.close(None).await;
                    break None;
                }
                Some(Ok(Message::Binary(_))) => shared.with(|s| s.violations.push("binary frame".into())),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break None,
            },
        }
    };
    let _ = end;
    // Closing any socket erases the device from the tracker (§g.1 defect).
    shared.with(|s| {
        s.open.remove(&conn);
        s.tracker.remove(&uuid);
    });
}

async fn drain<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// Handles one text frame; returns a reply and maybe a close code.
fn on_text(
    t: &str,
    conn: u64,
    device: &super::Device,
    shared: &Shared,
    window: &mut (tokio::time::Instant, u32),
) -> Option<(String, Option<u16>)> {
    let Ok(v) = serde_json::from_str::<Value>(t) else {
        shared.with(|s| s.violations.push(format!("not JSON: {t}")));
        return None;
    };
    let ty = v
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if ty != "ping" {
        let now = tokio::time::Instant::now(); // tokio's clock: paused-time tests keep the window honest
        if now.duration_since(window.0) >= Duration::from_secs(1) {
            *window = (now, 0);
        }
        window.1 += 1;
        if window.1 > RATE_LIMIT {
            shared.with(|s| s.rate_limited += 1);
            let e = json!({"type":"control","event":"error","error":{"code":"UNKNOWN_ERROR","message":"Rate limit exceeded: 10 messages per second"}});
            return Some((e.to_string(), Some(1008)));
        }
    }
    let problems = check(&v, &ty, device, shared);
    shared.with(|s| {
        s.violations
            .extend(problems.into_iter().map(|p| format!("{ty}: {p}")));
        if ty == "status" && v.get("payload").is_some_and(|p| !p.is_null()) {
            if let Some(last) = s.tracker.get_mut(&device.uuid) {
                *last = Instant::now() + s.clock_ahead;
            }
        }
        if ty == "ack" {
            if let Some(id) = v.get("commandId").and_then(Value::as_str) {
                s.acks.insert(id.to_owned(), v.clone());
            }
        }
        s.frames.push(Received {
            conn,
            at: Instant::now(),
            frame: v.clone(),
            text: t.to_owned(),
        });
    });
    if ty == "ping" {
        let ms = bbedge::protocol::now_ms() + shared.with(|s| s.wall_skew_ms);
        return Some((json!({"type":"pong","timestamp":ms}).to_string(), None));
    }
    None
}

/// The rules for one device frame: the schema, or the off-schema form's own rules.
fn check(v: &Value, ty: &str, device: &super::Device, shared: &Shared) -> Vec<String> {
    if ty == "ping" {
        return if *v == json!({"type":"ping"}) {
            vec![]
        } else {
            vec![format!("ping with extra fields: {v}")]
        };
    }
    let p = &v["payload"];
    if ty == "session.manifest" && p.get("signature").is_some() {
        return check_signed(v, device, shared);
    }
    shared.schema.errors(v)
}

fn check_signed(v: &Value, device: &super::Device, shared: &Shared) -> Vec<String> {
    let p = &v["payload"];
    let mut out = Vec::new();
    if p["alg"] != "ed25519" {
        out.push("alg is not ed25519".into());
    }
    let Some(text) = p["manifest"].as_str() else {
        return vec!["manifest is not a string".into()];
    };
    let Ok(inner) = serde_json::from_str::<Value>(text) else {
        return vec!["manifest is not JSON".into()];
    };
    if inner["session_id"] != p["session_id"] || !p["session_id"].is_string() {
        out.push("inner session_id differs".into());
    }
    // The inner capture must be a valid captureBlock: check it inside an unsigned frame.
    let unsigned = json!({"type":"session.manifest","id":v["id"],"timestamp":v["timestamp"],
        "payload":{"session_id":p["session_id"],"capture":inner["capture"]}});
    out.extend(
        shared
            .schema
            .errors(&unsigned)
            .into_iter()
            .map(|e| format!("capture: {e}")),
    );
    match inner["signed_at"]
        .as_str()
        .and_then(|s| time::OffsetDateTime::parse(s, &Rfc3339).ok())
    {
        None => out.push("signed_at does not parse".into()),
        Some(at) => {
            let skew = shared.with(|s| s.wall_skew_ms);
            let central_now = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(skew);
            let age = central_now - at;
            if age > time::Duration::minutes(15) || age < time::Duration::minutes(-2) {
                out.push(format!("signed_at {at} is not fresh (age {age})"));
            }
        }
    }
    let sig = p["signature"]
        .as_str()
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
    match (
        &device.key,
        sig.and_then(|b| Signature::from_slice(&b).ok()),
    ) {
        (_, None) => out.push("signature is not base64 of 64 bytes".into()),
        (Some(k), Some(sig)) => match k.verify(text.as_bytes(), &sig) {
            Ok(()) => shared.with(|s| s.manifests_verified += 1),
            Err(_) => out.push("signature does not verify".into()),
        },
        (None, Some(_)) => {}
    }
    out
}
