//! The local device rooms over real sockets on loopback, with a real sled in a temp dir:
//! protocol, auth, every bad-input case of issue 3 (close code, error frame, counter),
//! limits, snapshots and shutdown. Frames bbedge originates are checked against the
//! shared schema, and off-schema ones against `vectors/off-schema/`.

mod support;

use bbedge::bus::HookEvent;
use bbedge::protocol::check;
use bbedge::protocol::Inbound;
use bbedge::relay::AgentReply;
use bbedge::room::tokens::Role;
use bbedge::signal::DeviceState;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use support::schema::{self, Schema};
use support::ws::{frame, FRAME_TIMEOUT};
use support::{next_event, next_event_unguarded, TestBox};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// Same keys at the top level and in `error`, same `type`/`event`.
fn same_shape(ours: &Value, vector: &Value) {
    assert_eq!(keys(ours), keys(vector), "{ours} vs {vector}");
    assert_eq!(
        keys(&ours["error"]),
        keys(&vector["error"]),
        "{ours} vs {vector}"
    );
    assert_eq!(ours["type"], vector["type"]);
    assert_eq!(ours["event"], vector["event"]);
}

fn status(state: &str) -> Value {
    frame(
        "status",
        json!({"payload": {"state": state, "session_id": "s-1"}}),
    )
}

#[tokio::test]
async fn join_gets_connection_ack_then_room_state_and_others_see_presence() {
    let tb = TestBox::start(&[("realtime.rooms.grace_period", "0")]).await;
    let (mut agent, state) = tb.join(Role::Agent).await;
    assert_eq!(state["roomId"], format!("device:{}", tb.svc().device_id));
    assert_eq!(state["participants"][0]["role"], "agent");
    assert_eq!(state["state"]["agentStatus"], Value::Null);
    assert_eq!(state["state"]["schedule"], json!([]));

    let (t, _) = tb.token(Role::Observer, None).await;
    let mut obs = tb.connect(&tb.device_path(), Some(&t)).await.unwrap();
    let ack = obs.next_json().await;
    same_shape(
        &ack,
        &schema::vector("off-schema/control.connection.ack.server-to-device.json"),
    );
    let id = ack["clientId"].as_str().unwrap();
    let (_, tail) = id.strip_prefix("client_").unwrap().split_once('_').unwrap();
    assert_eq!(tail.len(), 7);
    let rs = obs.next_json().await;
    assert_eq!(rs["participants"].as_array().unwrap().len(), 2);
    assert_eq!(rs["participantCount"], 2);
    assert_eq!(rs["participants"][0]["role"], "agent");
    let joined = agent.next_json().await;
    assert_eq!(joined["event"], "presence.joined");
    assert_eq!(joined["participant"]["id"], id);
    assert_eq!(joined["participant"]["role"], "observer");
    obs.ws.close(None).await.unwrap();
    let left = agent.next_json().await;
    assert_eq!(left["event"], "presence.left");
    assert_eq!(left["participant"]["id"], id);
}

#[tokio::test]
async fn json_ping_gets_a_pong_like_central() {
    let tb = TestBox::start(&[("realtime.rate_limiting.messages_per_second", "1")]).await;
    let (mut c, _) = tb.join(Role::Observer).await;
    for _ in 0..5 {
        // Pings are not counted by the rate limit, like central.
        c.send(&json!({"type": "ping"})).await;
        let pong = c.next_json().await;
        same_shape(
            &pong,
            &schema::vector("off-schema/pong.server-to-device.json"),
        );
        assert!(pong["timestamp"].as_i64().unwrap() > 1_700_000_000_000);
    }
}

#[tokio::test]
async fn agent_status_fans_out_goes_upstream_and_sets_recording() {
    let mut tb = TestBox::start(&[]).await;
    let mut up = tb.upstream.take().unwrap();
    let (mut agent, _) = tb.join(Role::Agent).await;
    let (mut op, _) = tb.join(Role::Operator).await;
    let (mut obs, _) = tb.join(Role::Observer).await;
    let st = status("recording");
    agent.send(&st).await;
    assert_eq!(op.next_non_presence().await, st);
    assert_eq!(obs.next_non_presence().await, st);
    // The status goes up through the `agent_status` watch (the link sends it merged
    // with bbedge's own); it takes no place in the queue of frames for central, which
    // the room filled before the observers had it.
    let sent_up = tokio::time::timeout(
        FRAME_TIMEOUT,
        up.agent_status
            .wait_for(|s| s.as_ref().map(Inbound::to_value).as_ref() == Some(&st)),
    )
    .await
    .unwrap()
    .unwrap()
    .clone()
    .unwrap();
    assert_eq!(sent_up.to_value(), st);
    // Upstream gets the agent's own bytes, not a re-serialised copy.
    assert_eq!(sent_up.text().as_str(), st.to_string());
    assert!(
        up.from_agent.try_recv().is_err(),
        "a status is not queued for the intake"
    );
    let status = tb.status().await;
    assert_eq!(status["facts"]["recording"], true, "{status:#}");
    // A late joiner is up to date.
    let (_late, state) = tb.join(Role::Observer).await;
    assert_eq!(state["state"]["agentStatus"], st);
    assert_eq!(state["state"]["activeSession"], "s-1");
    assert_eq!(tb.connections("observer").await, 2.0);
}

/// Parsed once at the edge, relayed as received: an agent frame with its own key order
/// and spacing reaches the observers, the operator's ack path and the upstream seam
/// byte for byte (the room does not re-serialise what it relays).
#[tokio::test]
async fn agent_frames_are_relayed_byte_for_byte() {
    let mut tb = TestBox::start(&[]).await;
    let mut up = tb.upstream.take().unwrap();
    let (mut agent, _) = tb.join(Role::Agent).await;
    let (mut obs, _) = tb.join(Role::Observer).await;
    let text = "{ \"payload\" : { \"state\":\"idle\", \"z\":1, \"a\":[ 1 ,2 ] },\n\t\"timestamp\":\"2026-06-20T19:00:30+00:00\",  \"id\":\"odd-1\", \"type\":\"status\" }";
    Schema::load().assert_valid(&serde_json::from_str(text).unwrap());
    agent.send_raw(Message::Text(text.into())).await;
    assert_eq!(obs.next_text_non_presence().await, text);
    let sent_up = tokio::time::timeout(
        FRAME_TIMEOUT,
        up.agent_status
            .wait_for(|s| s.as_ref().is_some_and(|f| f.text().as_str() == text)),
    )
    .await
    .unwrap()
    .unwrap()
    .clone()
    .unwrap();
    assert_eq!(sent_up.text().as_str(), text);
    // An event goes through the intake's queue, also as the agent wrote it.
    let event = "{ \"type\":\"event\",\"id\":\"ev-odd\",  \"timestamp\":\"2026-06-20T19:00:31Z\",\n \"event\":\"session.stopped\", \"payload\":{ \"sessionId\":\"s-1\" } }";
    Schema::load().assert_valid(&serde_json::from_str(event).unwrap());
    agent.send_raw(Message::Text(event.into())).await;
    assert_eq!(obs.next_text_non_presence().await, event);
    let sent_up = tokio::time::timeout(FRAME_TIMEOUT, up.from_agent.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent_up.text().as_str(), event);
    // An operator's command reaches the agent as the operator wrote it, too.
    let (mut op, _) = tb.join(Role::Operator).await;
    let cmd = "{\"action\":\"get_status\",\"type\":\"command\", \"id\":\"c-odd\",\"timestamp\":\"2026-06-20T19:00:30Z\"}";
    op.send_raw(Message::Text(cmd.into())).await;
    assert_eq!(agent.next_text_non_presence().await, cmd);
}

#[tokio::test]
async fn an_agent_that_closes_drops_or_is_revoked_no_longer_counts_as_recording() {
    let mut tb = TestBox::start(&[("realtime.rooms.grace_period", "0")]).await;
    let mut up = tb.upstream.take().unwrap();
    let schema = Schema::load();
    let (mut watcher, _) = tb.join(Role::Observer).await;
    // Three ways the agent's connection ends: a close frame, the socket dropped
    // without one, its token revoked.
    for how in ["close", "drop", "revoke"] {
        let (t, token_id) = tb.token(Role::Agent, None).await;
        let (mut agent, _) = tb.join_with(&t).await;
        let st = status("recording");
        schema.assert_valid(&st);
        agent.send(&st).await;
        tb.wait_facts("recording", |f| f.recording).await;
        support::led::shows(&tb.led, DeviceState::Recording).await;
        let (_late, state) = tb.join(Role::Observer).await;
        assert_eq!(state["state"]["agentConnected"], true, "{state}");
        assert_eq!(state["state"]["activeSession"], "s-1");
        match how {
            "close" => agent.ws.close(None).await.unwrap(),
            "drop" => drop(agent),
            _ => {
                tb.svc().revoke(&token_id).await.unwrap();
                assert_eq!(agent.closed().await.code, 4001);
            }
        }
        // The fact clears (the LED stops saying "do not unplug") and the upstream's
        // view of the agent's status goes with it.
        tb.wait_facts("not recording", |f| !f.recording).await;
        support::led::shows(&tb.led, DeviceState::Unpaired).await;
        tokio::time::timeout(FRAME_TIMEOUT, up.agent_status.wait_for(Option::is_none))
            .await
            .expect("agent status cleared")
            .unwrap();
        // A new observer sees no agent, and the last status only as context.
        let (_new, state) = tb.join(Role::Observer).await;
        let roles: Vec<&Value> = state["participants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| &p["role"])
            .collect();
        assert!(!roles.contains(&&json!("agent")), "{how}: {state}");
        assert_eq!(state["state"]["agentConnected"], false, "{how}: {state}");
        assert_eq!(state["state"]["activeSession"], Value::Null, "{how}");
        assert_eq!(state["state"]["agentStatus"], st, "{how}");
        // The observer that was there all along heard the agent leave.
        watcher
            .until(|f| f["event"] == "presence.left" && f["participant"]["role"] == "agent")
            .await;
    }
    assert_eq!(tb.connections("agent").await, 0.0);
}

#[tokio::test]
async fn a_room_state_larger_than_the_send_queue_is_trimmed_to_fit_and_marked() {
    let tb = TestBox::start(&[
        ("realtime.limits.max_frame_bytes", "1024"),
        ("realtime.limits.send_queue_bytes", "1024"),
    ])
    .await;
    // A cached schedule of ~5 KiB, written the way the upstream link writes it.
    let store = &tb.svc().store;
    for i in 0..40 {
        let item = json!({
            "id": format!("sched-{i:02}"),
            "scheduled_start": format!("2026-06-20T{:02}:00:00Z", i % 24),
            "title": "t".repeat(100),
        });
        let cached = bbedge::upstream::schedule::Cached {
            item: item.to_string(),
            started: false,
            stopped: false,
        };
        store
            .put(
                bbedge::store::Tree::Schedule,
                format!("k{i:02}").as_bytes(),
                &cached,
            )
            .unwrap();
    }
    let (mut first, state) = tb.join(Role::Observer).await;
    let (mut second, state2) = tb.join(Role::Observer).await;
    for s in [&state, &state2] {
        // Within the queue (connection.ack took some of it), and says it is trimmed.
        assert!(s.to_string().len() <= 1024, "{}", s.to_string().len());
        assert_eq!(s["truncated"], true, "{s}");
        let kept = s["state"]["schedule"].as_array().unwrap();
        assert!(!kept.is_empty() && kept.len() < 40, "{}", kept.len());
        // The earliest sessions are the ones kept.
        assert_eq!(kept[0]["scheduled_start"], "2026-06-20T00:00:00Z");
    }
    assert_eq!(state2["participantCount"], 2);
    // Both stay joined and usable; nobody was closed as a slow consumer.
    assert_eq!(first.next_json().await["event"], "presence.joined");
    for c in [&mut first, &mut second] {
        c.send(&json!({"type": "ping"})).await;
        assert_eq!(c.next_json().await["type"], "pong");
    }
    assert_eq!(tb.metric("bbedge_room_state_trimmed_total").await, 2.0);
    assert_eq!(tb.drops("slow_consumer").await, 0.0);
    assert_eq!(tb.connections("observer").await, 2.0);
}

#[tokio::test]
async fn operator_command_reaches_the_agent_and_the_ack_comes_back_by_command_id() {
    let tb = TestBox::start(&[]).await;
    let schema = Schema::load();
    let (mut agent, _) = tb.join(Role::Agent).await;
    let (mut op, _) = tb.join(Role::Operator).await;
    let (mut obs, _) = tb.join(Role::Observer).await;
    let cmd = schema::vector("command.set_visibility.json");
    op.send(&cmd).await;
    assert_eq!(agent.next_non_presence().await, cmd);
    let ack = frame("ack", json!({"commandId": cmd["id"], "success": true}));
    schema.assert_valid(&ack);
    agent.send(&ack).await;
    assert_eq!(op.next_non_presence().await, ack);
    // Observers see the ack too (central relays acks) but never the command.
    assert_eq!(obs.next_non_presence().await, ack);
}

/// Broadcasts go through the room's ring, a frame for one client through its own queue
/// (the ack goes to the operator that sent the command through its queue, to everyone
/// else through the ring): both still get the agent's frames in the agent's order, end
/// to end. (Whether the writer finds them
/// together is up to the scheduler; `writer.rs`'s unit test makes it so.)
#[tokio::test]
async fn an_operator_gets_the_agents_frames_in_order_broadcast_or_answered_to_it_alone() {
    let tb = TestBox::start(&[("realtime.rate_limiting.messages_per_second", "1000")]).await;
    let (mut agent, _) = tb.join(Role::Agent).await;
    let (mut op, _) = tb.join(Role::Operator).await;
    let (mut obs, _) = tb.join(Role::Observer).await;
    for round in 0..20 {
        let mut cmd = schema::vector("command.set_visibility.json");
        cmd["id"] = json!(format!("c-{round}"));
        op.send(&cmd).await;
        assert_eq!(agent.next_non_presence().await, cmd);
        let ack = frame("ack", json!({"commandId": cmd["id"], "success": true}));
        let (s1, s2) = (status("idle"), status("recording"));
        // Sent back to back: the operator's writer often finds them together.
        agent.send(&s1).await;
        agent.send(&ack).await;
        agent.send(&s2).await;
        for want in [&s1, &ack, &s2] {
            assert_eq!(&op.next_non_presence().await, want, "round {round}");
            assert_eq!(&obs.next_non_presence().await, want, "round {round}");
        }
    }
}

#[tokio::test]
async fn a_command_with_no_agent_gets_a_schema_valid_agent_not_connected_ack() {
    let tb = TestBox::start(&[]).await;
    let (mut op, _) = tb.join(Role::Operator).await;
    let cmd = schema::vector("command.json");
    op.send(&cmd).await;
    let ack = op.next_json().await;
    Schema::load().assert_valid(&ack);
    assert_eq!(ack["commandId"], cmd["id"]);
    assert_eq!(ack["success"], false);
    assert_eq!(ack["errorCode"], "AGENT_NOT_CONNECTED");
}

// Paused time: the timer fires when the test is otherwise idle, not after a real wait.
#[tokio::test(start_paused = true)]
async fn a_command_the_agent_never_acks_gets_agent_timeout() {
    let tb = TestBox::start(&[("realtime.limits.command_timeout", "1")]).await;
    let (mut agent, _) = tb.join(Role::Agent).await;
    let (mut op, _) = tb.join(Role::Operator).await;
    let cmd = schema::vector("command.stop_session.json");
    op.send(&cmd).await;
    assert_eq!(agent.next_non_presence().await["id"], cmd["id"]);
    let ack = op.next_non_presence().await;
    Schema::load().assert_valid(&ack);
    assert_eq!(ack["errorCode"], "AGENT_TIMEOUT");
    assert_eq!(ack["commandId"], cmd["id"]);
}

#[tokio::test]
async fn commands_from_upstream_reach_the_agent_and_get_its_ack_or_not_connected() {
    let mut tb = TestBox::start(&[]).await;
    let up = tb.upstream.take().unwrap();
    let cmd = schema::vector("command.json");
    let id = cmd["id"].as_str().unwrap().to_owned();
    let d = Duration::from_secs(5);
    let typed = Inbound::read(cmd.to_string()).unwrap();
    assert_eq!(
        up.command(typed.clone(), id.clone(), d).await,
        AgentReply::NotConnected
    );
    let (mut agent, _) = tb.join(Role::Agent).await;
    let ack = frame("ack", json!({"commandId": id, "success": true}));
    let (reply, ()) = tokio::join!(up.command(typed.clone(), id.clone(), d), async {
        assert_eq!(agent.next_json().await, cmd);
        agent.send(&ack).await;
    });
    let AgentReply::Ack(reply) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(reply.to_value(), ack);
}

#[tokio::test]
async fn non_json_text_gets_an_invalid_frame_error_and_is_counted() {
    let tb = TestBox::start(&[]).await;
    let (mut c, _) = tb.join(Role::Agent).await;
    let (mut other, _) = tb.join(Role::Observer).await;
    assert_eq!(c.next_json().await["event"], "presence.joined");
    c.send_raw(Message::Text("{not json".into())).await;
    let e = c.next_json().await;
    same_shape(
        &e,
        &schema::vector("off-schema/control.error.auth-failed.server-to-device.json"),
    );
    assert_eq!(e["error"]["code"], "INVALID_FRAME");
    // The connection stays usable.
    c.send(&json!({"type": "ping"})).await;
    assert_eq!(c.next_json().await["type"], "pong");
    // The other client never saw the garbage: its next frame is the agent's next status.
    let st = status("idle");
    c.send(&st).await;
    assert_eq!(other.next_json().await, st);
    assert_eq!(tb.drops("not_json").await, 1.0);
}

#[tokio::test]
async fn binary_frames_are_refused_with_an_error_frame() {
    let tb = TestBox::start(&[]).await;
    let (mut agent, _) = tb.join(Role::Agent).await;
    let (mut c, _) = tb.join(Role::Observer).await;
    assert_eq!(agent.next_json().await["event"], "presence.joined");
    c.send_raw(Message::Binary(vec![1, 2, 3].into())).await;
    let e = c.next_json().await;
    assert_eq!(e["error"]["code"], "INVALID_FRAME");
    assert!(e["error"]["message"].as_str().unwrap().contains("Binary"));
    // Both connections carry on; the agent got nothing of the binary frame.
    c.pongs().await;
    agent.send(&json!({"type": "ping"})).await;
    assert_eq!(agent.next_json().await["type"], "pong");
    assert_eq!(tb.drops("binary").await, 1.0);
    assert_eq!(tb.status().await["rooms"]["drops"]["binary"], 1);
}

#[tokio::test]
async fn unknown_types_are_refused_and_not_relayed() {
    let tb = TestBox::start(&[]).await;
    let (mut agent, _) = tb.join(Role::Agent).await;
    let (mut obs, _) = tb.join(Role::Observer).await;
    let _ = agent.next_json().await; // presence of the observer
    agent
        .send(&schema::vector(
            "invalid/unknown-type.stream.configure.json",
        ))
        .await;
    let e = agent.next_json().await;
    assert_eq!(e["error"]["code"], "INVALID_FRAME");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("stream.configure"));
    // The observer gets nothing of it: the next thing it sees is a real status.
    let st = status("idle");
    agent.send(&st).await;
    assert_eq!(obs.next_json().await, st);
    assert_eq!(tb.drops("unknown_type").await, 1.0);
}

#[tokio::test]
async fn check_rs_agrees_with_the_schema_on_every_shared_vector() {
    for (name, v) in schema::vectors("") {
        assert!(
            check::check(&v).is_ok(),
            "{name} should pass: {:?}",
            check::check(&v)
        );
    }
    for (name, v) in schema::vectors("invalid") {
        assert!(check::check(&v).is_err(), "{name} should be refused");
    }
}

#[tokio::test]
async fn schema_invalid_frames_are_refused_for_every_role() {
    let tb = TestBox::start(&[("realtime.rate_limiting.messages_per_second", "1000")]).await;
    let invalid = schema::vectors("invalid");
    let (mut watcher, _) = tb.join(Role::Observer).await;
    for role in [Role::Agent, Role::Operator, Role::Observer] {
        let (mut c, _) = tb.join(role).await;
        for (name, v) in &invalid {
            c.send(v).await;
            let e = c.next_non_presence().await;
            assert_eq!(e["error"]["code"], "INVALID_FRAME", "{role:?} {name}: {e}");
        }
    }
    // None of them was relayed: until a valid status, the watcher sees only presence.
    let (mut agent, _) = tb.join(Role::Agent).await;
    let st = status("idle");
    agent.send(&st).await;
    loop {
        let f = watcher.next_json().await;
        if f == st {
            break;
        }
        assert!(
            f["event"].as_str().unwrap_or("").starts_with("presence."),
            "relayed: {f}"
        );
    }
    let n = invalid.len() as f64 * 3.0;
    let counted = tb.drops("invalid").await + tb.drops("unknown_type").await;
    assert_eq!(counted, n);
}

#[tokio::test]
async fn an_observer_command_gets_forbidden_and_never_reaches_the_agent() {
    let tb = TestBox::start(&[]).await;
    let (mut agent, _) = tb.join(Role::Agent).await;
    let (mut obs, _) = tb.join(Role::Observer).await;
    obs.send(&schema::vector("command.json")).await;
    let e = obs.next_json().await;
    assert_eq!(e["error"]["code"], "FORBIDDEN");
    let answer = schema::vector("preview.answer.json");
    obs.send(&answer).await;
    // The agent's next frame (after the presence) is the answer, not the command.
    assert_eq!(agent.next_non_presence().await, answer);
    assert_eq!(tb.drops("forbidden").await, 1.0);
}

#[tokio::test]
async fn an_oversize_frame_closes_with_1009_and_others_carry_on() {
    let tb = TestBox::start(&[
        ("realtime.limits.max_frame_bytes", "2048"),
        ("realtime.limits.send_queue_bytes", "65536"),
    ])
    .await;
    let (mut big, _) = tb.join(Role::Agent).await;
    let (mut obs, _) = tb.join(Role::Observer).await;
    let _ = big.next_json().await;
    let huge = status(&"x".repeat(4096));
    big.send(&huge).await;
    let closed = big.closed().await;
    assert_eq!(closed.code, 1009, "{closed:?}");
    assert_eq!(closed.frames[0]["error"]["code"], "FRAME_TOO_LARGE");
    obs.send(&json!({"type": "ping"})).await;
    assert_eq!(obs.next_non_presence().await["type"], "pong");
    assert_eq!(tb.drops("too_large").await, 1.0);
}

#[tokio::test]
async fn a_flood_over_the_rate_limit_gets_centrals_error_frame_then_1008() {
    let tb = TestBox::start(&[("realtime.rate_limiting.messages_per_second", "10")]).await;
    let (mut c, _) = tb.join(Role::Agent).await;
    let (mut obs, _) = tb.join(Role::Observer).await;
    for _ in 0..40 {
        c.send(&frame("heartbeat", json!({}))).await;
    }
    let closed = c.closed().await;
    assert_eq!(closed.code, 1008, "{closed:?}");
    let last = closed.frames.last().unwrap();
    assert_eq!(
        last,
        &schema::vector("off-schema/control.error.rate-limit.server-to-device.json")
    );
    // Once on /metrics (the old `rate_limit_hits` is the same count), once on /status.
    assert_eq!(tb.drops("rate_limited").await, 1.0);
    assert_eq!(tb.status().await["rooms"]["rate_limit_hits"], 1);
    // The observer (which got the heartbeats within the limit) carries on.
    obs.pongs().await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_as_slow_consumer_and_others_are_unaffected() {
    let tb = TestBox::start(&[
        ("realtime.limits.send_queue_frames", "8"),
        ("realtime.limits.max_frame_bytes", "65536"),
        ("realtime.limits.send_queue_bytes", "65536"),
        ("realtime.rate_limiting.messages_per_second", "10000"),
    ])
    .await;
    let mut events = tb.bus_events();
    let (mut agent, _) = tb.join(Role::Agent).await;
    let (slow, _) = tb.join(Role::Observer).await;
    let (mut fast, _) = tb.join(Role::Observer).await;
    let _ = agent.next_json().await;
    let _ = agent.next_json().await;
    let big = status(&"y".repeat(60_000));
    // Until the slow client's socket buffers and its queue are full.
    let mut sent = 0;
    let closed = loop {
        agent.send(&big).await;
        sent += 1;
        assert_eq!(fast.next_non_presence().await["id"], big["id"]);
        if let Ok(Ok(HookEvent::ClientDisconnected { client, reason, .. })) =
            tokio::time::timeout(Duration::from_millis(1), events.recv()).await
        {
            break (client, reason);
        }
        assert!(sent < 2000, "the slow client was never closed");
    };
    assert_eq!(closed, (slow.id.clone(), "slow_consumer".to_owned()));
    assert_eq!(tb.drops("slow_consumer").await, 1.0);
    // Everyone else carries on.
    let st = status("idle");
    agent.send(&st).await;
    assert_eq!(fast.next_non_presence().await, st);
    let c = slow.closed().await;
    assert!(c.code == 1013 || c.code == 1006, "{}", c.code);
}

#[tokio::test]
async fn connection_attempts_over_the_caps_are_refused_with_4029_and_counted() {
    let tb = TestBox::start(&[
        ("realtime.limits.max_connections", "20"),
        ("realtime.limits.reserved_for_agents", "0"),
        ("realtime.limits.reserved_for_operators", "0"),
        ("realtime.limits.max_handshakes", "64"),
        ("realtime.rate_limiting.handshakes_per_ip", "32"),
        ("realtime.rate_limiting.connections_per_ip", "1000"),
        ("realtime.rate_limiting.connections_per_user", "1000"),
    ])
    .await;
    let (t, _) = tb.token(Role::Observer, None).await;
    let path = tb.device_path();
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut c = tb.connect(&path, Some(&t)).await.unwrap();
        assert_eq!(c.next_json().await["event"], "connection.ack");
        held.push(c);
    }
    // 300 more at once: each is refused (4029 with a JSON reason) or, beyond the 32
    // handshakes one address may have in progress, dropped unanswered.
    let attempts = (0..300).map(|_| {
        let (tb, t, path) = (&tb, &t, &path);
        async move {
            match tb.connect(path, Some(t)).await {
                Ok(c) => {
                    let closed = c.closed().await;
                    assert_eq!(closed.code, 4029, "{closed:?}");
                    let r: Value = serde_json::from_str(&closed.reason).unwrap();
                    assert_eq!(r["code"], "CONNECTION_LIMIT_EXCEEDED");
                    true
                }
                Err(_) => false,
            }
        }
    });
    let refused = futures_util::future::join_all(attempts).await;
    let told = refused.iter().filter(|r| **r).count() as f64;
    assert!(told > 0.0);
    assert_eq!(tb.drops("connection_limit").await, told);
    assert_eq!(tb.drops("handshake_limit").await, 300.0 - told);
    // The held connections still work.
    held[0].pongs().await;
    drop(held);
}

#[tokio::test]
async fn per_token_caps_close_with_4029() {
    let tb = TestBox::start(&[("realtime.rate_limiting.connections_per_user", "2")]).await;
    let (t, _) = tb.token(Role::Observer, None).await;
    let a = tb.connect(&tb.device_path(), Some(&t)).await.unwrap();
    let b = tb.connect(&tb.device_path(), Some(&t)).await.unwrap();
    let c = tb.connect(&tb.device_path(), Some(&t)).await.unwrap();
    let closed = c.closed().await;
    assert_eq!(closed.code, 4029);
    assert!(
        closed
            .reason
            .contains("per-user connection limit reached (2)"),
        "{}",
        closed.reason
    );
    drop((a, b));
}

// Paused time: the timer fires when the test is otherwise idle, not after a real wait.
#[tokio::test(start_paused = true)]
async fn a_half_finished_handshake_is_dropped_after_the_timeout() {
    let tb = TestBox::start(&[("realtime.limits.handshake_timeout", "1")]).await;
    let (mut present, _) = tb.join(Role::Observer).await;
    let mut tcp = tokio::net::TcpStream::connect(tb.realtime.unwrap())
        .await
        .unwrap();
    tcp.write_all(b"GET /realtime/devices/x HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // While it hangs, others still join (the accept loop does not wait on it).
    let (mut newcomer, _) = tb.join(Role::Observer).await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(FRAME_TIMEOUT, tcp.read(&mut buf))
        .await
        .expect("server drops it");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert_eq!(tb.drops("handshake").await, 1.0);
    present.pongs().await;
    newcomer.pongs().await;
}

#[tokio::test]
async fn a_token_for_another_room_gets_auth_failed_then_4003() {
    let tb = TestBox::start(&[]).await;
    let (mut present, _) = tb.join(Role::Observer).await;
    let (t, _) = tb.token(Role::Observer, Some("another-room")).await;
    let c = tb.connect(&tb.device_path(), Some(&t)).await.unwrap();
    let closed = c.closed().await;
    assert_eq!(closed.code, 4003);
    assert_eq!(
        serde_json::from_str::<Value>(&closed.reason).unwrap(),
        json!({"code": "PERMISSION_DENIED"})
    );
    assert_eq!(
        closed.frames,
        vec![schema::vector(
            "off-schema/control.error.auth-failed.server-to-device.json"
        )]
    );
    // The same token joins its own room.
    let mut ok = tb
        .connect("/realtime/device/another-room", Some(&t))
        .await
        .unwrap();
    assert_eq!(ok.next_json().await["roomId"], "device:another-room");
    // Unknown tokens get the same answer.
    let c = tb
        .connect(&tb.device_path(), Some("bbt_unknown"))
        .await
        .unwrap();
    assert_eq!(c.closed().await.code, 4003);
    assert_eq!(tb.drops("auth").await, 2.0);
    // The client already in the room heard of none of it: its next frame is its pong.
    present.send(&json!({"type": "ping"})).await;
    assert_eq!(present.next_json().await["type"], "pong");
}

#[tokio::test]
async fn no_token_or_a_query_token_gets_auth_failed_and_a_bare_close() {
    let tb = TestBox::start(&[]).await;
    let (t, _) = tb.token(Role::Observer, None).await;
    let path = format!("{}?token={t}", tb.device_path());
    for p in [tb.device_path(), path] {
        let closed = tb.connect(&p, None).await.unwrap().closed().await;
        assert_eq!(closed.code, 1005);
        assert_eq!(closed.frames[0]["error"]["code"], "AUTH_FAILED");
    }
}

#[tokio::test]
async fn the_subprotocol_token_is_accepted_and_echoed() {
    let tb = TestBox::start(&[]).await;
    let (t, _) = tb.token(Role::Observer, None).await;
    let addr = tb.realtime.unwrap();
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}{}", tb.device_path())
        .into_client_request()
        .unwrap();
    let proto = format!("auth.{t}");
    req.headers_mut()
        .insert("sec-websocket-protocol", proto.parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], proto.as_str());
    use futures_util::StreamExt;
    let m = ws.next().await.unwrap().unwrap();
    assert!(m.to_text().unwrap().contains("connection.ack"));
}

#[tokio::test]
async fn paths_outside_the_prefix_get_404_and_unknown_room_types_4004() {
    let tb = TestBox::start(&[]).await;
    let (t, _) = tb.token(Role::Observer, None).await;
    match tb.connect("/elsewhere/devices/x", Some(&t)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 404),
        other => panic!("expected 404, got {:?}", other.map(|_| ())),
    }
    let closed = tb
        .connect("/realtime/yjs/doc-1", Some(&t))
        .await
        .unwrap()
        .closed()
        .await;
    assert_eq!(closed.code, 4004);
    assert_eq!(
        serde_json::from_str::<Value>(&closed.reason).unwrap(),
        json!({"code": "ROOM_TYPE_NOT_REGISTERED", "roomType": "yjs"})
    );
    let closed = tb
        .connect("/realtime/devices", Some(&t))
        .await
        .unwrap()
        .closed()
        .await;
    assert_eq!(closed.code, 1005);
    assert_eq!(
        closed.frames[0]["error"]["message"],
        "Invalid room URL format"
    );
}

#[tokio::test]
async fn revoking_a_token_closes_its_live_connections_at_once() {
    let tb = TestBox::start(&[]).await;
    let (t, id) = tb.token(Role::Operator, None).await;
    let mut c = tb.connect(&tb.device_path(), Some(&t)).await.unwrap();
    assert_eq!(c.next_json().await["event"], "connection.ack");
    let (mut other, _) = tb.join(Role::Observer).await;
    tb.svc().revoke(&id).await.unwrap();
    let closed = c.closed().await;
    assert_eq!(closed.code, 4001);
    assert_eq!(
        serde_json::from_str::<Value>(&closed.reason).unwrap()["code"],
        "SESSION_REVOKED"
    );
    assert_eq!(closed.frames.last().unwrap()["event"], "session.revoked");
    let again = tb
        .connect(&tb.device_path(), Some(&t))
        .await
        .unwrap()
        .closed()
        .await;
    assert_eq!(again.code, 4003);
    // Others are untouched.
    other.send(&json!({"type": "ping"})).await;
    assert_eq!(other.next_non_presence().await["type"], "pong");
}

// Paused time: the timer fires when the test is otherwise idle, not after a real wait.
#[tokio::test(start_paused = true)]
async fn a_client_that_stops_answering_pings_is_closed_after_the_idle_timeout() {
    let tb = TestBox::start(&[
        ("realtime.limits.ping_interval", "1"),
        ("realtime.limits.idle_timeout", "2"),
    ])
    .await;
    use futures_util::StreamExt;
    let mut events = tb.bus_events();
    let (quiet, _) = tb.join(Role::Observer).await;
    let (mut lively, _) = tb.join(Role::Observer).await;
    // `lively` keeps reading, so its WebSocket answers our pings; `quiet` never reads.
    // Four pings answered span two idle timeouts: a silent client would be closed.
    let mut pings = 0;
    while pings < 4 {
        let m = tokio::time::timeout(FRAME_TIMEOUT, lively.ws.next())
            .await
            .expect("ping hang guard")
            .expect("lively stays open")
            .expect("reads");
        if m.is_ping() {
            pings += 1;
        }
    }
    let closed = next_event(&mut events, |e| match e {
        HookEvent::ClientDisconnected { client, reason, .. } => Some((client, reason)),
        _ => None,
    })
    .await;
    // Only the quiet client is closed, for being idle.
    assert_eq!(closed, (quiet.id.clone(), "idle_timeout".to_owned()));
    // Read without answering its pings: the close the quiet client was sent.
    let (code, why) = quiet.raw_close().await;
    assert_eq!((code, why.as_str()), (1001, "IDLE_TIMEOUT"));
    lively.pongs().await;
    assert_eq!(tb.connections("observer").await, 1.0);
    assert_eq!(tb.drops("idle_timeout").await, 1.0);
}

#[tokio::test]
async fn room_state_survives_a_restart_and_a_corrupt_snapshot_is_skipped() {
    let tb = TestBox::start(&[]).await;
    let device = tb.svc().device_id.clone();
    let (mut agent, _) = tb.join(Role::Agent).await;
    let st = status("recording");
    agent.send(&st).await;
    agent.send(&json!({"type": "ping"})).await;
    assert_eq!(agent.next_json().await["type"], "pong");
    let mut events = tb.bus_events();
    drop(agent);
    let dir = tb.stop().await;
    let _ = events.try_recv(); // the final snapshot happened during stop
                               // Same state dir: the device id and the room state come back.
    let tb = TestBox::start_in(dir, &[]).await;
    assert_eq!(tb.svc().device_id, device);
    let (_, state) = tb.join(Role::Observer).await;
    assert_eq!(state["state"]["agentStatus"], st);
    let dir = tb.stop().await;
    // Corrupt it on flash: the room starts empty, with a warning and a count.
    {
        let s = bbedge::store::open(&dir.path().join("db"), 1 << 20)
            .unwrap()
            .store;
        s.tree(bbedge::store::Tree::Snapshots)
            .unwrap()
            .insert(format!("device:{device}"), &b"\xff\xff garbage"[..])
            .unwrap();
        s.flush().await.unwrap();
    }
    let tb = TestBox::start_in(dir, &[]).await;
    let (_, state) = tb.join(Role::Observer).await;
    assert_eq!(state["state"]["agentStatus"], Value::Null);
    assert!(tb.metric("bbedge_room_snapshots_corrupt_total").await >= 1.0);
}

// Paused time: the interval passes while the test waits, not in real time.
#[tokio::test(start_paused = true)]
async fn a_changed_room_is_snapshotted_once_its_interval_passed_and_an_unchanged_one_never() {
    let tb = TestBox::start(&[
        ("realtime.snapshots.interval", "60"),
        ("realtime.snapshots.max_updates", "1000"),
    ])
    .await;
    let mut events = tb.bus_events();
    let _pacer = support::pacer(Duration::from_millis(100));
    let created = tokio::time::Instant::now();
    let (mut agent, _) = tb.join(Role::Agent).await;
    agent.send(&status("idle")).await;
    let saved = |e| match e {
        HookEvent::SnapshotSaved { room, .. } => Some(room),
        _ => None,
    };
    let guard = Duration::from_secs(600);
    let room = tokio::time::timeout(guard, next_event_unguarded(&mut events, saved))
        .await
        .expect("the changed room is saved by its interval");
    assert_eq!(room, format!("device:{}", tb.svc().device_id));
    // Not before its interval (paused time also jumps ahead while the sockets wait, so
    // there is no upper bound to assert beyond the guard).
    let waited = created.elapsed();
    assert!(
        waited >= Duration::from_secs(60),
        "saved {waited:?} after the room was created, with a 60 s interval"
    );
    // Nothing changed since: ten intervals pass without a snapshot (and, since the
    // timer only runs for a changed room, without waking the snapshot task).
    assert!(
        tokio::time::timeout(guard, next_event_unguarded(&mut events, saved))
            .await
            .is_err(),
        "an unchanged room is not saved again"
    );
    assert_eq!(tb.metric("bbedge_room_snapshots_total").await, 1.0);
}

#[tokio::test]
async fn snapshots_are_written_after_max_updates_changes_with_an_event() {
    let tb = TestBox::start(&[
        ("realtime.snapshots.max_updates", "3"),
        ("realtime.rate_limiting.messages_per_second", "1000"),
    ])
    .await;
    let mut events = tb.bus_events();
    let (mut agent, _) = tb.join(Role::Agent).await;
    for _ in 0..3 {
        agent.send(&status("idle")).await;
    }
    let saved = next_event(&mut events, |e| match e {
        HookEvent::SnapshotSaved { room, bytes } => Some((room, bytes)),
        _ => None,
    })
    .await;
    assert_eq!(saved.0, format!("device:{}", tb.svc().device_id));
    assert!(saved.1 > 0);
    assert_eq!(tb.metric("bbedge_room_snapshots_total").await, 1.0);
    let status = tb.status().await;
    assert_eq!(status["rooms"]["snapshots"], 1, "{status:#}");
}

#[tokio::test]
async fn shutdown_closes_every_client_with_1001() {
    let tb = TestBox::start(&[]).await;
    let (a, _) = tb.join(Role::Agent).await;
    let (b, _) = tb.join(Role::Observer).await;
    tb.shutdown.cancel();
    for c in [a, b] {
        let closed = c.closed().await;
        assert_eq!(closed.code, 1001, "{closed:?}");
    }
}

#[tokio::test]
async fn room_lifecycle_events_are_published_on_the_bus() {
    let tb = TestBox::start(&[("realtime.rooms.cleanup_timeout", "0")]).await;
    let mut events = tb.bus_events();
    let (c, _) = tb.join(Role::Observer).await;
    drop(c);
    let mut names = Vec::new();
    while names.last() != Some(&"realtime:room:destroyed") {
        names.push(next_event(&mut events, |e| Some(e.name())).await);
    }
    assert_eq!(
        names,
        [
            "realtime:room:created",
            "realtime:client:connected",
            "realtime:client:disconnected",
            "realtime:room:destroyed"
        ]
    );
}

fn cli_env(state: &std::path::Path) -> Vec<(String, String)> {
    vec![
        (
            "BBEDGE_DAEMON__STATE_DIR".into(),
            format!("{:?}", state.display().to_string()),
        ),
        ("BBEDGE_HEALTH__PORT".into(), "0".into()),
        ("BBEDGE_REALTIME__PORT".into(), "0".into()),
        ("BBEDGE_REALTIME__HOST".into(), "\"127.0.0.1\"".into()),
        ("BBEDGE_STATUS_LED__BACKEND".into(), "sim".into()),
        ("BBEDGE_PAIRING__BOOT_FILE".into(), "\"\"".into()),
    ]
}

async fn bbedge(state: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = support::binary::command()
        .args(args)
        .envs(cli_env(state))
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("bbedge runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn field<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(name))
        .map_or_else(|| panic!("no {name} in {out}"), str::trim)
}

#[tokio::test]
async fn token_cli_works_on_the_store_when_the_daemon_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = bbedge(
        dir.path(),
        &["token", "add", "--role", "operator", "--label", "desk"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let token = field(&out, "token:").to_owned();
    let id = field(&out, "id:").to_owned();
    assert!(token.starts_with("bbt_"));
    let (code, out, _) = bbedge(dir.path(), &["token", "list"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains(&id)
            && out.contains("operator")
            && out.contains("active")
            && out.contains("desk"),
        "{out}"
    );
    assert!(!out.contains(&token), "list never shows a token");
    let (code, _, _) = bbedge(dir.path(), &["token", "revoke", &id]).await;
    assert_eq!(code, 0);
    let (_, out, _) = bbedge(dir.path(), &["token", "list"]).await;
    assert!(out.contains("revoked"), "{out}");
    let (code, _, err) = bbedge(dir.path(), &["token", "revoke", "tok_missing"]).await;
    assert_eq!(code, 64);
    assert!(err.contains("TOKEN_NOT_FOUND"), "{err}");
}

#[tokio::test]
async fn token_cli_goes_through_the_running_daemon_and_revoke_closes_live_connections() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut d = support::binary::spawn(dir.path(), &["run"], &cli_env(&state));
    let ready = d.wait_for("bbedge ready").await;
    let addr = ready["realtime_addr"]
        .as_str()
        .expect("realtime_addr logged")
        .to_owned();
    let (code, out, err) = bbedge(&state, &["token", "add", "--role", "observer"]).await;
    assert_eq!(code, 0, "{err}");
    let (token, id) = (
        field(&out, "token:").to_owned(),
        field(&out, "id:").to_owned(),
    );
    let device = {
        // The room of a token without --room is the box's own: read its id from /status.
        let health = ready["health_addr"].as_str().unwrap();
        let (_, body) = support::http_get(&format!("http://{health}/status")).await;
        let v: Value = serde_json::from_str(&body).unwrap();
        v["rooms"]["device_room"]
            .as_str()
            .unwrap()
            .trim_start_matches("device:")
            .to_owned()
    };
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}/realtime/devices/{device}")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut c = support::ws::Client {
        ws,
        id: String::new(),
    };
    assert_eq!(c.next_json().await["event"], "connection.ack");
    let (code, _, err) = bbedge(&state, &["token", "revoke", &id]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(c.closed().await.code, 4001);
    d.signal("TERM");
    d.wait_for("bbedge stopped").await;
    assert_eq!(d.exit_code().await, 0);
}

#[tokio::test]
async fn tls_with_a_self_signed_certificate_made_on_first_start() {
    use std::os::unix::fs::PermissionsExt;
    let tb = TestBox::start(&[("realtime.tls.enabled", "true")]).await;
    let dir = tb.dir.path().join("realtime-tls");
    let mode = std::fs::metadata(dir.join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let pem = std::fs::read(dir.join("cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let (t, _) = tb.token(Role::Observer, None).await;
    let port = tb.realtime.unwrap().port();
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("wss://localhost:{port}{}", tb.device_path())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {t}").parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(tb.realtime.unwrap())
        .await
        .unwrap();
    let connector = tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(cfg));
    let (ws, _) = tokio_tungstenite::client_async_tls_with_config(req, tcp, None, Some(connector))
        .await
        .unwrap();
    let mut c = support::ws::Client {
        ws,
        id: String::new(),
    };
    assert_eq!(c.next_json().await["event"], "connection.ack");
    let status = tb.status().await;
    assert_eq!(status["rooms"]["tls"], true);
}

// Paused time: the timer fires when the test is otherwise idle, not after a real wait.
#[tokio::test(start_paused = true)]
async fn every_frame_bbedge_originates_is_schema_valid_or_a_known_off_schema_shape() {
    let tb = TestBox::start(&[("realtime.limits.command_timeout", "1")]).await;
    let schema = Schema::load();
    let (mut op, _) = tb.join(Role::Operator).await;
    op.send(&schema::vector("command.json")).await; // AGENT_NOT_CONNECTED ack
    op.send(&json!({"type": "ping"})).await; // pong
    op.send_raw(Message::Text("nope".into())).await; // error frame
    let (mut agent, _) = tb.join(Role::Agent).await; // presence to op
    op.send(&schema::vector("command.set_visibility.json"))
        .await; // AGENT_TIMEOUT ack later
    let _ = agent.next_non_presence().await;
    let control = [
        "connection.ack",
        "room_state",
        "presence.joined",
        "presence.left",
        "error",
        "session.revoked",
    ];
    for _ in 0..5 {
        let f = op.next_json().await;
        match f["type"].as_str().unwrap() {
            "control" => {
                assert!(control.contains(&f["event"].as_str().unwrap()), "{f}");
                assert!(!schema.is_valid(&f));
                if f["event"] == "error" {
                    same_shape(
                        &f,
                        &schema::vector(
                            "off-schema/control.error.auth-failed.server-to-device.json",
                        ),
                    );
                }
            }
            "pong" => same_shape(&f, &schema::vector("off-schema/pong.server-to-device.json")),
            _ => schema.assert_valid(&f),
        }
    }
}

#[tokio::test]
async fn the_echo_conformance_endpoint_is_off_by_default_and_echoes_when_on() {
    let tb = TestBox::start(&[]).await;
    assert!(tb.connect("/echo", None).await.is_err(), "404 when off");
    let tb = TestBox::start(&[("realtime.echo", "true")]).await;
    let mut c = tb.connect("/echo", None).await.unwrap();
    c.send_raw(Message::Binary(vec![0, 1, 2].into())).await;
    c.send_raw(Message::Text("not even JSON".into())).await;
    use futures_util::StreamExt;
    let a = c.ws.next().await.unwrap().unwrap();
    let b = c.ws.next().await.unwrap().unwrap();
    assert_eq!(a, Message::Binary(vec![0, 1, 2].into()));
    assert_eq!(b, Message::Text("not even JSON".into()));
}

// Paused time: the timer fires when the test is otherwise idle, not after a real wait.
#[tokio::test(start_paused = true)]
async fn a_quick_reconnect_within_the_grace_period_is_not_announced_as_left_then_joined() {
    let tb = TestBox::start(&[("realtime.rooms.grace_period", "1")]).await;
    let (mut agent, _) = tb.join(Role::Agent).await;
    let (t, _) = tb.token(Role::Observer, None).await;
    let first = tb.connect(&tb.device_path(), Some(&t)).await.unwrap();
    let joined = agent.next_json().await;
    assert_eq!(joined["event"], "presence.joined");
    let first_id = joined["participant"]["id"].clone();
    let mut events = tb.bus_events();
    drop(first);
    // Wait until the room has seen it leave (the event follows the leave).
    next_event(&mut events, |e| {
        matches!(e, HookEvent::ClientDisconnected { .. }).then_some(())
    })
    .await;
    let mut again = tb.connect(&tb.device_path(), Some(&t)).await.unwrap();
    let ack = again.next_json().await;
    // The agent's next presence frame is the rejoin naming the client it replaces.
    let rejoined = agent.next_json().await;
    assert_eq!(rejoined["event"], "presence.joined", "{rejoined}");
    assert_eq!(rejoined["participant"]["id"], ack["clientId"]);
    assert_eq!(rejoined["previous"], first_id);
    // After the grace period a real departure is announced.
    drop(again);
    let left = agent.next_json().await;
    assert_eq!(left["event"], "presence.left");
    assert_eq!(left["participant"]["id"], ack["clientId"]);
}
