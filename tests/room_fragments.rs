//! Frames longer than `writer::FRAGMENT` leave the box as a fragmented message (so
//! tungstenite's write buffer never holds more than one fragment per connection): a
//! client that refuses any single frame longer than a fragment still gets the whole
//! message, byte for byte, and the short frames around it stay whole and in order.

mod support;

use bbedge::room::tokens::Role;
use bbedge::room::writer::FRAGMENT;
use futures_util::StreamExt;
use serde_json::{json, Value};
use support::ws::{frame, FRAME_TIMEOUT};
use support::TestBox;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_long_frame_arrives_whole_through_fragments_no_longer_than_a_fragment() {
    let tb = TestBox::start(&[]).await;
    let (mut agent, _) = tb.join(Role::Agent).await;
    let (token, _) = tb.token(Role::Observer, None).await;
    let addr = tb.realtime.expect("realtime enabled");
    let mut req = format!("ws://{addr}{}", tb.device_path())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    // A frame longer than a fragment is a capacity error for this client, a message
    // up to 64 KiB is not.
    let cfg = WebSocketConfig::default()
        .max_frame_size(Some(FRAGMENT))
        .max_message_size(Some(64 * 1024));
    let (mut obs, _) = tokio_tungstenite::connect_async_with_config(req, Some(cfg), false)
        .await
        .expect("connects");

    let long = "é".repeat(3 * FRAGMENT); // 2-byte characters: pieces split them
    let big = frame("status", json!({"payload": {"state": "live", "pad": long}}));
    let small = frame("status", json!({"payload": {"state": "idle"}}));
    agent.send(&small).await;
    agent.send(&big).await;
    agent.send(&small).await;

    let mut got: Vec<Value> = Vec::new();
    while got.len() < 3 {
        let m = tokio::time::timeout(support::scaled(FRAME_TIMEOUT), obs.next())
            .await
            .expect("frames arrive")
            .expect("open")
            .expect("no capacity error: no single frame over FRAGMENT bytes");
        let Message::Text(t) = m else { continue };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["type"] == "status" {
            got.push(v);
        }
    }
    assert_eq!(got[0]["payload"]["state"], "idle");
    assert_eq!(got[1]["payload"]["pad"].as_str(), Some(long.as_str()));
    assert!(got[1].to_string().len() > 3 * FRAGMENT);
    assert_eq!(got[2]["payload"]["state"], "idle");
}
