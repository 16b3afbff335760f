//! The log lines of the room's protocol closes and HTTP refusals, alone in their test
//! binary: tracing's callsite cache is global, and a callsite first hit on another
//! test's thread (without a capture) at the same moment can hide an event from this
//! thread's capture. The closes themselves are tested in tests/room_protocol.rs.

mod support;

use support::logs::LogCapture;
use support::raw::{close_of, masked, raw_agent};
use support::TestBox;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn protocol_closes_and_http_refusals_name_their_log_lines() {
    let (logs, _g) = LogCapture::install();
    let tb = TestBox::start(&[]).await;
    let line = |code: u16, why: &str| {
        logs.text()
            .lines()
            .filter(|l| {
                l.contains("closing on a bad frame")
                    && l.contains(&format!("\"code\":{code}"))
                    && l.contains(&format!("\"reason\":\"{why}\""))
            })
            .count()
    };

    let mut tcp = raw_agent(&tb).await;
    tcp.write_all(&masked(0x81, &[0xff])).await.unwrap();
    assert_eq!(close_of(tcp).await.0, 1007);
    assert_eq!(line(1007, "invalid_utf8"), 1, "{}", logs.text());

    let mut tcp = raw_agent(&tb).await;
    tcp.write_all(&masked(0xc1, b"{}")).await.unwrap();
    assert_eq!(close_of(tcp).await.0, 1002);
    assert_eq!(line(1002, "protocol_error"), 1, "{}", logs.text());

    let mut tcp = tokio::net::TcpStream::connect(tb.realtime.unwrap())
        .await
        .unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 426 "), "{answer}");
    let refused: Vec<_> = logs
        .text()
        .lines()
        .filter(|l| l.contains("not a WebSocket upgrade") && l.contains("\"status\":426"))
        .map(str::to_owned)
        .collect();
    assert_eq!(refused.len(), 1, "{}", logs.text());
}
