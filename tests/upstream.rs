//! The upstream link against the fake central server: connect, relay, outbox, replay
//! pacing, backoff, rejections, TLS, signed manifests, crashes. Every test ends by
//! asserting the fake saw no schema or contract violation.

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::fake_central::FakeCentral;
use support::uplink::{ack_ok, event, Opts, Up, DEVICE_ID, UUID};

fn is(ty: &'static str) -> impl Fn(&Value) -> bool {
    move |f| f["type"] == ty
}

async fn wait_outbox(up: &Up, frames: usize) {
    let t0 = Instant::now();
    while up.outbox.depth().frames != frames {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "outbox depth {} != {frames}",
            up.outbox.depth().frames
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sends_nothing_before_the_ack_then_device_connected_then_status() {
    let fake = FakeCentral::start().await;
    let up = Up::start(&fake, Opts::default()).await;
    fake.wait_acked(1).await;
    let first = fake
        .wait_frame("device.connected", 0, |f| f["type"] != "ping")
        .await;
    assert_eq!(first.frame["event"], "device.connected");
    assert_eq!(first.frame["payload"]["version"], env!("CARGO_PKG_VERSION"));
    let status = fake.wait_frame("status", 0, is("status")).await;
    assert_eq!(status.frame["payload"]["device_id"], DEVICE_ID);
    assert_eq!(status.frame["payload"]["state"], "idle", "no agent: idle");
    let s = up.status();
    assert_eq!(s["state"], "online");
    assert_eq!(s["url"], format!("{}/devices/{UUID}", fake.realtime_url()));
    assert!(
        !s.to_string().contains("mac-t1"),
        "the token never reaches /status"
    );
    assert_eq!(up.hub.facts().link, bbedge::signal::Link::Online);
    fake.assert_no_violations();
    up.stop().await;
    // The stop closed the socket with a close frame (1001), not a dropped TCP stream.
    fake.wait("the device's close frame", |s| {
        s.device_closes.first().cloned()
    })
    .await;
    assert_eq!(fake.snapshot(|s| s.device_closes[0].1), Some(1001));
}

#[tokio::test]
async fn commands_reach_the_agent_and_its_ack_reaches_central() {
    let fake = FakeCentral::start().await;
    let mut up = Up::start(&fake, Opts::default()).await;
    fake.wait_frame("status", 0, is("status")).await;
    let id = fake
        .send_command(
            UUID,
            "start_session",
            json!({"sessionId": "s1", "civicpressSessionId": "record-1"}),
        )
        .unwrap();
    let cmd = up.agent_command().await;
    assert_eq!(cmd.command_id, id);
    assert_eq!(cmd.frame["action"], "start_session");
    assert!(
        cmd.deadline < Duration::from_secs(5),
        "the agent gets less than central's 5 s"
    );
    ack_ok(cmd, json!({"state": "recording"}));
    let ack = fake.wait_ack(&id).await;
    assert_eq!(ack["success"], true);
    assert_eq!(ack["payload"]["state"], "recording");
    fake.assert_no_violations();
    up.stop().await;
}

#[tokio::test]
async fn without_an_agent_or_with_a_silent_one_bbedge_acks_in_time() {
    let fake = FakeCentral::start().await;
    let mut up = Up::start(&fake, Opts::default()).await;
    fake.wait_frame("status", 0, is("status")).await;
    // A silent agent: the command arrives but nobody answers.
    let t0 = Instant::now();
    let id = fake.send_command(UUID, "start_session", json!({})).unwrap();
    let cmd = up.agent_command().await;
    let ack = fake.wait_ack(&id).await;
    let took = t0.elapsed();
    assert_eq!(ack["success"], false);
    assert_eq!(ack["errorCode"], "AGENT_TIMEOUT");
    assert!(
        took < Duration::from_secs(5),
        "acked after {took:?}: central's deadline is 5 s"
    );
    drop(cmd);
    // No agent at all: the room side's inbox is gone.
    let Up { room, .. } = &mut up;
    room.commands.close();
    let id = fake
        .send_command(UUID, "sources.set", json!({"video": "hdmi1"}))
        .unwrap();
    let ack = fake.wait_ack(&id).await;
    assert_eq!(ack["errorCode"], "AGENT_NOT_CONNECTED");
    assert_eq!(up.status()["agent_failures"], 2);
    fake.assert_no_violations();
    up.stop().await;
}

#[tokio::test]
async fn get_status_and_identify_are_answered_by_bbedge_itself() {
    let fake = FakeCentral::start().await;
    let up = Up::start(&fake, Opts::default()).await;
    fake.wait_frame("status", 0, is("status")).await;
    let _ = up.room.agent_status.send(Some(
        json!({"type": "status", "payload": {"state": "recording", "session_id": "s9"}}),
    ));
    let id = fake.send_command(UUID, "get_status", json!({})).unwrap();
    let ack = fake.wait_ack(&id).await;
    assert_eq!(ack["success"], true);
    assert_eq!(ack["payload"]["agent"]["state"], "recording");
    assert_eq!(ack["payload"]["edge"]["version"], env!("CARGO_PKG_VERSION"));
    // The agent's new status went upstream merged with bbedge's own.
    let st = fake
        .wait_frame("merged status", 0, |f| {
            f["type"] == "status" && f["payload"]["state"] == "recording"
        })
        .await;
    assert_eq!(st.frame["payload"]["device_id"], DEVICE_ID);
    assert_eq!(st.frame["payload"]["session_id"], "s9");
    let mut facts = up.hub.subscribe();
    let id = fake
        .send_command(UUID, "identify", json!({"seconds": 1}))
        .unwrap();
    assert_eq!(fake.wait_ack(&id).await["success"], true);
    tokio::time::timeout(Duration::from_secs(5), facts.wait_for(|f| f.identify))
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), facts.wait_for(|f| !f.identify))
        .await
        .unwrap()
        .unwrap();
    fake.assert_no_violations();
    up.stop().await;
}

#[tokio::test]
async fn unknown_and_malformed_frames_from_central_are_counted_not_fatal() {
    let fake = FakeCentral::start().await;
    let mut up = Up::start(&fake, Opts::default()).await;
    fake.wait_frame("status", 0, is("status")).await;
    for junk in [
        "not json",
        "null",
        "[1]",
        r#"{"type":"stream.configure"}"#,
        r#"{"type":"command"}"#,
        r#"{"type":"control","event":"session.revoked"}"#,
        r#"{"type":"heartbeat","id":"h","timestamp":"x"}"#,
    ] {
        fake.send_raw(UUID, junk);
    }
    let id = fake
        .send_command(UUID, "watermark.status", json!({}))
        .unwrap();
    ack_ok(up.agent_command().await, json!({}));
    assert_eq!(fake.wait_ack(&id).await["success"], true);
    let s = up.status();
    assert_eq!(s["malformed_in"], 4, "{s}");
    assert_eq!(s["unknown_in"], 3, "{s}");
    assert_eq!(
        fake.snapshot(|s| s.acked.len()),
        1,
        "still the first connection"
    );
    fake.assert_no_violations();
    up.stop().await;
}

#[tokio::test]
async fn events_queued_offline_replay_in_order_at_the_rate_budget_and_leave_the_outbox() {
    let mut fake = FakeCentral::start().await;
    let up = Up::start(&fake, Opts::default()).await;
    fake.wait_acked(1).await;
    fake.stop().await;
    const N: usize = 40;
    for n in 0..N {
        up.agent_sends(event(n));
    }
    wait_outbox(&up, N).await;
    assert!(up.status()["outbox"]["oldest_age_s"].is_u64());
    fake.restart().await;
    let from = fake.snapshot(|s| s.frames.len());
    fake.wait_frame("the last event", from, |f| {
        f["id"] == format!("ev-{:05}", N - 1)
    })
    .await;
    let (ids, times): (Vec<String>, Vec<Instant>) = fake.snapshot(|s| {
        s.frames
            .iter()
            .skip(from)
            .filter(|r| r.frame["event"] == "upload.progress")
            .map(|r| (r.frame["id"].as_str().unwrap_or("").to_owned(), r.at))
            .unzip()
    });
    let want: Vec<String> = (0..N).map(|n| format!("ev-{n:05}")).collect();
    assert_eq!(ids, want, "every event once, in order");
    let all: Vec<Instant> = fake.snapshot(|s| {
        s.frames
            .iter()
            .skip(from)
            .filter(|r| r.frame["type"] != "ping")
            .map(|r| r.at)
            .collect()
    });
    assert!(
        max_per_fixed_window(&all) <= 8,
        "{} frames in one of central's windows",
        max_per_fixed_window(&all)
    );
    assert!(times.len() == N);
    wait_outbox(&up, 0).await;
    fake.assert_no_violations();
    up.stop().await;
}

/// Central's fixed window: starts at a frame once the previous one has expired.
fn max_per_fixed_window(times: &[Instant]) -> usize {
    let (mut start, mut n, mut max) = (None::<Instant>, 0, 0);
    for t in times {
        if start.is_none_or(|s| t.duration_since(s) >= Duration::from_secs(1)) {
            start = Some(*t);
            n = 0;
        }
        n += 1;
        max = max.max(n);
    }
    max
}
