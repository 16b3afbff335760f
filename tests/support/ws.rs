//! WebSocket clients for the local rooms: real sockets on loopback, tokens issued
//! through the real token code, and helpers that wait for frames and closes with a
//! hang guard (never a sleep).

use super::TestBox;
use bbedge::room::tokens::{self, Role};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Longest a test waits for one frame (a hang guard).
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// A connected client.
pub struct Client {
    /// The socket.
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// `clientId` from `connection.ack`, once read.
    pub id: String,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Closed {
    /// The close code (1005 when the close frame had none; 1006 when there was no close frame).
    pub code: u16,
    /// The close reason.
    pub reason: String,
    /// Text frames read before the close.
    pub frames: Vec<Value>,
}

impl TestBox {
    /// The rooms service.
    pub fn svc(&self) -> &std::sync::Arc<bbedge::room::Service> {
        self.rooms.as_ref().expect("realtime enabled")
    }

    /// `/realtime/devices/<this box's uuid>`.
    pub fn device_path(&self) -> String {
        format!("/realtime/devices/{}", self.svc().device_id)
    }

    /// Issues a token through the real token code.
    pub async fn token(&self, role: Role, room: Option<&str>) -> (String, String) {
        let (t, rec) = tokens::add(
            &self.svc().store,
            role,
            room.map(str::to_owned),
            Some(format!("{role:?}")),
        )
        .await
        .expect("token issued");
        (t.expose().to_owned(), rec.id)
    }

    /// Connects with `Authorization: Bearer <token>` to `path`.
    pub async fn connect(&self, path: &str, token: Option<&str>) -> Result<Client, WsError> {
        let addr = self.realtime.expect("realtime enabled");
        let mut req = format!("ws://{addr}{path}").into_client_request()?;
        if let Some(t) = token {
            req.headers_mut().insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
            );
        }
        let (ws, _) = tokio::time::timeout(
            super::scaled(FRAME_TIMEOUT),
            tokio_tungstenite::connect_async(req),
        )
        .await
        .expect("connect hang guard")?;
        Ok(Client {
            ws,
            id: String::new(),
        })
    }

    /// A new token of `role` for this box's room, connected, past `connection.ack` and
    /// `room_state` (returned).
    pub async fn join(&self, role: Role) -> (Client, Value) {
        let (t, _) = self.token(role, None).await;
        self.join_with(&t).await
    }

    /// Joins this box's room with `token`, past `connection.ack` and `room_state`
    /// (returned).
    pub async fn join_with(&self, token: &str) -> (Client, Value) {
        let mut c = self
            .connect(&self.device_path(), Some(token))
            .await
            .expect("connects");
        let ack = c.next_json().await;
        assert_eq!(ack["event"], "connection.ack", "{ack}");
        c.id = ack["clientId"].as_str().unwrap().to_owned();
        let state = c.next_json().await;
        assert_eq!(state["event"], "room_state", "{state}");
        (c, state)
    }

    /// The room's drops for `reason` from `/metrics`: a frame's
    /// (`bbedge_frames_dropped_total{link="room",reason="<reason>"}`) or a connection's
    /// (`bbedge_room_connections_dropped_total{reason="<reason>"}`); 0 if absent.
    pub async fn drops(&self, reason: &str) -> f64 {
        let name = if bbedge::room::stats::reason::CONNECTIONS.contains(&reason) {
            format!("bbedge_room_connections_dropped_total{{reason=\"{reason}\"}}")
        } else {
            assert!(
                bbedge::room::stats::reason::FRAMES.contains(&reason),
                "not a drop reason: {reason}"
            );
            format!("bbedge_frames_dropped_total{{link=\"room\",reason=\"{reason}\"}}")
        };
        self.metric(&name).await
    }

    /// `bbedge_room_connections{role="<role>"}` from `/metrics`; 0 if absent.
    pub async fn connections(&self, role: &str) -> f64 {
        let name = format!("bbedge_room_connections{{role=\"{role}\"}}");
        self.metric(&name).await
    }

    /// A metric's value from `/metrics` (`name` with its labels, as printed); 0 if absent.
    pub async fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.get("/metrics").await;
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

impl Client {
    /// The next text frame as JSON (skipping WebSocket pings).
    pub async fn next_json(&mut self) -> Value {
        let t = self.next_text(|_| true).await;
        serde_json::from_str(&t).expect("server sends JSON")
    }

    /// The next text frame that is not presence, as the exact text received.
    pub async fn next_text_non_presence(&mut self) -> String {
        self.next_text(|t| !t.contains("\"presence.")).await
    }

    /// The next text frame `wanted` accepts (skipping pings and the others).
    async fn next_text(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        loop {
            let m = tokio::time::timeout(super::scaled(FRAME_TIMEOUT), self.ws.next())
                .await
                .expect("frame hang guard")
                .expect("stream open")
                .expect("frame reads");
            match m {
                Message::Text(t) if wanted(&t) => return t.to_string(),
                Message::Close(c) => panic!("closed while waiting for a frame: {c:?}"),
                _ => {}
            }
        }
    }

    /// The next text frame whose `event`/`type` is not presence (skips presence frames).
    pub async fn next_non_presence(&mut self) -> Value {
        loop {
            let v = self.next_json().await;
            let ev = v["event"].as_str().unwrap_or("");
            if !ev.starts_with("presence.") {
                return v;
            }
        }
    }

    /// The next text frame `pred` accepts, skipping the others.
    pub async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let v = self.next_json().await;
            if pred(&v) {
                return v;
            }
        }
    }

    /// Sends a JSON `ping` and waits for its `pong`, skipping what comes first (presence,
    /// relayed frames): the connection, its room and the process still serve this client.
    pub async fn pongs(&mut self) {
        self.send(&json!({"type": "ping"})).await;
        self.until(|f| f["type"] == "pong").await;
    }

    /// Sends a JSON frame.
    pub async fn send(&mut self, v: &Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("send");
    }

    /// Sends a raw message.
    pub async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.expect("send");
    }

    /// Reads the raw socket to its end WITHOUT answering pings (tungstenite answers a
    /// ping on its next read) and returns the close frame's code and reason: the close a
    /// client that stopped answering gets. Plain `ws://` only; frames after `room_state`.
    pub async fn raw_close(mut self) -> (u16, String) {
        use tokio::io::AsyncReadExt;
        let MaybeTlsStream::Plain(tcp) = self.ws.get_mut() else {
            panic!("raw_close reads plain ws:// only");
        };
        let mut raw = Vec::new();
        tokio::time::timeout(super::scaled(FRAME_TIMEOUT), tcp.read_to_end(&mut raw))
            .await
            .expect("close hang guard")
            .expect("reads");
        // Server frames are unmasked: opcode, 7-bit length (126: 16-bit, 127: 64-bit).
        let mut at = 0;
        while at + 2 <= raw.len() {
            let (op, len7) = (raw[at] & 0x0f, raw[at + 1] & 0x7f);
            let (len, head) = match len7 {
                126 => (u16::from_be_bytes([raw[at + 2], raw[at + 3]]) as usize, 4),
                127 => {
                    let n: [u8; 8] = raw[at + 2..at + 10].try_into().unwrap();
                    (u64::from_be_bytes(n) as usize, 10)
                }
                n => (n as usize, 2),
            };
            let body = &raw[at + head..at + head + len];
            if op == 8 {
                let reason = String::from_utf8_lossy(&body[2..]).into_owned();
                return (u16::from_be_bytes([body[0], body[1]]), reason);
            }
            at += head + len;
        }
        panic!("no close frame in {} raw bytes", raw.len());
    }

    /// Reads until the connection closes; returns the close code, reason and frames.
    pub async fn closed(mut self) -> Closed {
        let mut frames = Vec::new();
        loop {
            let m = tokio::time::timeout(super::scaled(FRAME_TIMEOUT), self.ws.next())
                .await
                .expect("close hang guard");
            match m {
                Some(Ok(Message::Text(t))) => {
                    frames.push(serde_json::from_str(&t).unwrap_or(json!(t.as_str())));
                }
                Some(Ok(Message::Close(c))) => {
                    let (code, reason) = c.map_or((1005, String::new()), |c| {
                        (u16::from(c.code), c.reason.to_string())
                    });
                    return Closed {
                        code,
                        reason,
                        frames,
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    return Closed {
                        code: 1006,
                        reason: String::new(),
                        frames,
                    };
                }
            }
        }
    }
}

/// A schema-valid frame of `ty` with fresh id and timestamp, plus `extra` fields.
pub fn frame(ty: &str, extra: Value) -> Value {
    let mut v = json!({"type": ty, "id": uuid::Uuid::new_v4().to_string(), "timestamp": "2026-06-20T19:00:00.000Z"});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            o.insert(k.clone(), x.clone());
        }
    }
    v
}
