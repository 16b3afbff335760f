//! Raw WebSocket frames on a TcpStream after a real upgrade: for tests of what the room
//! does with frames no well-behaved client library would send.

use super::ws::FRAME_TIMEOUT;
use super::TestBox;
use bbedge::room::tokens::Role;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Under the server's 2 s farewell bound (`writer::FAREWELL_TIMEOUT`): a close that
/// waited for a timeout on either side takes at least that; margin left for qemu.
pub const AT_ONCE: Duration = Duration::from_millis(1500);

/// A masked client frame (mask 1,2,3,4), payload under 126 bytes.
pub fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let key = [1u8, 2, 3, 4];
    let mut f = vec![first, 0x80 | payload.len() as u8];
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

/// Upgrades a raw socket to `path` (with `token` as a Bearer header), past the 101.
pub async fn raw_upgrade(tb: &TestBox, path: &str, token: Option<&str>) -> TcpStream {
    let mut tcp = TcpStream::connect(tb.realtime.unwrap()).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{auth}\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let b = tokio::time::timeout(FRAME_TIMEOUT, tcp.read_u8())
            .await
            .expect("101 hang guard")
            .expect("reads the 101");
        head.push(b);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp
}

/// A joined agent on a raw socket (its `connection.ack` and `room_state` still unread).
pub async fn raw_agent(tb: &TestBox) -> TcpStream {
    let (t, _) = tb.token(Role::Agent, None).await;
    raw_upgrade(tb, &tb.device_path(), Some(&t)).await
}

/// Reads to the end and returns the server's close code and reason, and how long the
/// server took to end the connection (its close and FIN).
pub async fn close_of(mut tcp: TcpStream) -> (u16, String, Duration) {
    let start = Instant::now();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(FRAME_TIMEOUT, tcp.read_to_end(&mut raw))
        .await
        .expect("close hang guard");
    let took = start.elapsed();
    let mut at = 0;
    while at + 2 <= raw.len() {
        let (op, len7) = (raw[at] & 0x0f, raw[at + 1] & 0x7f);
        let (len, head) = match len7 {
            126 => (u16::from_be_bytes([raw[at + 2], raw[at + 3]]) as usize, 4),
            127 => panic!("no frame this large expected"),
            n => (n as usize, 2),
        };
        let body = &raw[at + head..at + head + len];
        if op == 8 {
            assert!(body.len() >= 2, "a close with a code: {body:?}");
            let reason = String::from_utf8_lossy(&body[2..]).into_owned();
            return (u16::from_be_bytes([body[0], body[1]]), reason, took);
        }
        at += head + len;
    }
    panic!("no close frame in {} raw bytes", raw.len());
}
