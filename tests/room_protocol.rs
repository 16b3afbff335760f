//! RFC 6455 on the room path itself (a real token, a real join), and on `/echo`, which
//! shares its read loop: a client Close is echoed at once, bad frames get 1007/1002,
//! and non-WebSocket HTTP on the room port gets an HTTP answer. Bad frames are written
//! raw on the TcpStream after a real upgrade.

mod support;

use bbedge::room::tokens::Role;
use futures_util::{SinkExt, StreamExt};
use std::time::Instant;
use support::raw::{close_of, masked, raw_agent, raw_upgrade, AT_ONCE};
use support::ws::FRAME_TIMEOUT;
use support::TestBox;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// Writes `frame` on a fresh joined agent's socket and returns the close it gets.
async fn room_close_for(tb: &TestBox, frame: &[u8]) -> (u16, String) {
    let mut tcp = raw_agent(tb).await;
    tcp.write_all(frame).await.unwrap();
    let (code, reason, took) = close_of(tcp).await;
    assert!(took < AT_ONCE, "closed in {took:?}");
    (code, reason)
}

#[tokio::test]
async fn a_client_close_on_the_room_is_echoed_with_its_code_at_once() {
    let tb = TestBox::start(&[]).await;
    for code in [1000u16, 3001, 4000] {
        let (mut c, _) = tb.join(Role::Agent).await;
        let start = Instant::now();
        c.ws.close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: "bye".into(),
        }))
        .await
        .unwrap();
        let echoed = loop {
            let m = tokio::time::timeout(FRAME_TIMEOUT, c.ws.next())
                .await
                .expect("close hang guard");
            match m {
                Some(Ok(Message::Close(f))) => break f,
                Some(Ok(_)) => {}
                other => panic!("no close echoed (the client would see 1006): {other:?}"),
            }
        };
        let f = echoed.expect("the echo carries the code");
        assert_eq!(u16::from(f.code), code);
        assert_eq!(f.reason.as_str(), "bye");
        // The server ends the TCP connection right after: the stream ends cleanly.
        let end = tokio::time::timeout(FRAME_TIMEOUT, c.ws.next())
            .await
            .expect("end hang guard");
        assert!(end.is_none(), "{end:?}");
        assert!(start.elapsed() < AT_ONCE, "took {:?}", start.elapsed());
    }
}

#[tokio::test]
async fn a_client_close_on_echo_is_echoed_the_same_way() {
    let tb = TestBox::start(&[("realtime.echo", "true")]).await;
    let mut c = tb.connect("/echo", None).await.unwrap();
    c.ws.send(Message::Text("hi".into())).await.unwrap();
    let m = c.ws.next().await.unwrap().unwrap();
    assert_eq!(m, Message::Text("hi".into()));
    let start = Instant::now();
    c.ws.close(Some(CloseFrame {
        code: CloseCode::from(3002),
        reason: "".into(),
    }))
    .await
    .unwrap();
    let m = tokio::time::timeout(FRAME_TIMEOUT, c.ws.next())
        .await
        .expect("close hang guard");
    let Some(Ok(Message::Close(Some(f)))) = m else {
        panic!("no close echoed: {m:?}");
    };
    assert_eq!(u16::from(f.code), 3002);
    assert!(start.elapsed() < AT_ONCE);
}

#[tokio::test]
async fn invalid_utf8_in_a_room_text_frame_closes_with_1007() {
    let tb = TestBox::start(&[]).await;
    let (code, reason) = room_close_for(&tb, &masked(0x81, &[0xce, 0xba, 0xff, 0xfe])).await;
    assert_eq!((code, reason.as_str()), (1007, "INVALID_UTF8"));
    // In a fragmented message too (a continuation completes it with bad bytes).
    let mut frames = masked(0x01, b"ok ");
    frames.extend(masked(0x80, &[0xed, 0xa0, 0x80]));
    assert_eq!(room_close_for(&tb, &frames).await.0, 1007);
}

#[tokio::test]
async fn rsv_bits_reserved_opcodes_and_unmasked_frames_close_the_room_with_1002() {
    let tb = TestBox::start(&[]).await;
    let cases: [(&str, Vec<u8>); 5] = [
        ("RSV1 set", masked(0x80 | 0x40 | 0x1, b"{}")),
        ("RSV3 on a ping", masked(0x80 | 0x10 | 0x9, b"")),
        ("reserved data opcode 3", masked(0x83, b"")),
        ("reserved control opcode 11", masked(0x8b, b"")),
        ("unmasked text frame", vec![0x81, 0x02, b'{', b'}']),
    ];
    for (what, frame) in cases {
        let (code, reason) = room_close_for(&tb, &frame).await;
        assert_eq!((code, reason.as_str()), (1002, "PROTOCOL_ERROR"), "{what}");
    }
}

#[tokio::test]
async fn bad_close_payloads_close_the_room_with_1002() {
    let tb = TestBox::start(&[]).await;
    // One byte: no room for a code.
    assert_eq!(room_close_for(&tb, &masked(0x88, &[0x03])).await.0, 1002);
    // Codes that may not be sent on the wire (1005, 1006, 999, 1016, 2999).
    for code in [1005u16, 1006, 999, 1016, 2999] {
        let got = room_close_for(&tb, &masked(0x88, &code.to_be_bytes()))
            .await
            .0;
        assert_eq!(got, 1002, "close code {code}");
    }
    // A fragmented control frame.
    assert_eq!(room_close_for(&tb, &masked(0x09, b"")).await.0, 1002);
}

#[tokio::test]
async fn echo_shares_the_codes_of_the_room() {
    let tb = TestBox::start(&[("realtime.echo", "true")]).await;
    for (frame, want) in [
        (masked(0x81, &[0xff]), 1007u16),
        (masked(0xc1, b"x"), 1002),
        (vec![0x82, 0x01, 0x00], 1002),
        (masked(0x88, &[0x03]), 1002),
    ] {
        let mut tcp = raw_upgrade(&tb, "/echo", None).await;
        tcp.write_all(&frame).await.unwrap();
        let (code, _, took) = close_of(tcp).await;
        assert_eq!(code, want, "{frame:?}");
        assert!(took < AT_ONCE);
    }
}

/// Sends `request` raw on the room port and returns the status and the body.
async fn http(tb: &TestBox, request: &[u8]) -> (u16, String) {
    let mut tcp = TcpStream::connect(tb.realtime.unwrap()).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(FRAME_TIMEOUT, tcp.read_to_end(&mut raw))
        .await
        .expect("answer hang guard")
        .expect("reads the answer");
    let text = String::from_utf8(raw).expect("a text answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.parse().ok())
        .expect("a Content-Length");
    assert_eq!(body.len(), len, "{text}");
    (status, body.to_owned())
}

fn one_line(body: &str) {
    assert!(
        body.ends_with('\n') && body.trim_end().lines().count() == 1 && body.len() > 1,
        "{body:?}"
    );
}

#[tokio::test]
async fn plain_http_on_the_room_port_gets_an_answer_not_a_silent_close() {
    let tb = TestBox::start(&[]).await;
    let path = tb.device_path();
    let (status, body) = http(
        &tb,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status, 426);
    one_line(&body);
    let post = format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}");
    let (status, body) = http(&tb, post.as_bytes()).await;
    assert_eq!(status, 400);
    one_line(&body);
    let (status, body) = http(&tb, b"\x16\x03\x01\x02\x00 hello there\r\n\r\n").await;
    assert_eq!(status, 400);
    one_line(&body);
    assert_eq!(tb.drops("handshake").await, 3.0);
    // The port still serves WebSocket clients.
    let (mut c, _) = tb.join(Role::Observer).await;
    c.pongs().await;
}
