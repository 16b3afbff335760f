//! The paired box is exactly the device central knows (issue 10, items 1, 2, 5, 6):
//! the whole daemon (rooms, upstream, pairing) against the in-repo fake central
//! (registration and realtime halves), a real agent on the LAN room.

mod support;

use bbedge::pairing::register::{self, Inputs, Settings};
use bbedge::pairing::Credentials;
use bbedge::room::tokens::Role;
use bbedge::secret::Secret;
use bbedge::signal::Link;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::fake_central::register::{FakeCentral as Registry, Tls};
use support::fake_central::{Device, FakeCentral};
use support::logs::LogCapture;
use support::paired::{agent_status, candidates, online_box, paired_dir, UPSTREAM_ON};
use support::uplink::UUID;
use support::ws::frame;
use support::TestBox;

/// Pairs the box in `dir` with a fresh code from `reg` as `bbedge pair` does (the same
/// registration code path, then `pairing.reload` when a daemon runs); `rt` learns the
/// token, as central's realtime server would. Returns the stored credentials.
async fn pair(
    dir: &std::path::Path,
    reg: &Registry,
    rt: &FakeCentral,
    running: bool,
) -> Credentials {
    let e = reg.enroll();
    let loaded = support::test_config(dir, &[]);
    let paths = bbedge::app::Paths::resolve(&loaded.config);
    let settings = Settings::new(&loaded.config, &paths);
    let inputs = Inputs {
        server: reg.url(),
        device_uuid: e.device_uuid.clone(),
        code: Secret::new(e.code.clone()),
        name: None,
        realtime_url: Some(rt.realtime_url()),
        room_location: None,
    };
    let req = inputs
        .check(&loaded.config.device, settings.allow_insecure)
        .expect("inputs");
    let creds = register::pair(&req, &settings).await.expect("paired");
    rt.allow(
        creds.token.expose(),
        Device {
            id: creds.device_id.clone(),
            uuid: creds.device_uuid.clone(),
            key: None,
        },
    );
    if running {
        bbedge::control::request(&paths.state_dir, "pairing.reload", json!({}))
            .await
            .expect("the daemon takes the new credentials");
    }
    creds
}

#[tokio::test]
async fn pairing_moves_the_lan_room_to_the_paired_uuid_without_a_restart() {
    let reg = Registry::start(Tls::Plain).await;
    let rt = FakeCentral::start().await;
    let tb = TestBox::start(&[UPSTREAM_ON]).await;
    let provisional = tb.svc().device_id.get();
    // An agent on the provisional room, with a token for "this box's room".
    let (tok, _) = tb.token(Role::Agent, None).await;
    let (mut old, _) = tb.join_with(&tok).await;
    old.send(&agent_status("provisional")).await;
    old.pongs().await;

    let creds = pair(tb.dir.path(), &reg, &rt, true).await;
    let u = creds.device_uuid.clone();
    assert_ne!(u, provisional);

    // The provisional room's clients are told where the room went.
    let closed = old.closed().await;
    assert_eq!(closed.code, 4010, "{closed:?}");
    let reason: Value = serde_json::from_str(&closed.reason).expect("JSON reason");
    assert_eq!(reason["code"], "ROOM_MOVED");
    assert_eq!(reason["roomId"], format!("device:{u}"));
    assert!(
        closed
            .frames
            .iter()
            .any(|f| f["event"] == "error" && f["error"]["code"] == "ROOM_MOVED"),
        "{closed:?}"
    );
    assert_eq!(
        tb.status().await["rooms"]["device_room"],
        format!("device:{u}")
    );

    // Its state came along: a late joiner of the new room sees the last agent status.
    let (_obs, state) = tb.join(Role::Observer).await;
    assert_eq!(state["roomId"], format!("device:{u}"));
    assert_eq!(
        state["state"]["agentStatus"]["payload"]["marker"], "provisional",
        "{state}"
    );
    // The same local token works at /realtime/devices/U, and the agent's status reaches
    // central through the link the pairing started.
    let mut agent = tb
        .connect(&format!("/realtime/devices/{u}"), Some(&tok))
        .await
        .expect("agent connects at the paired UUID");
    assert_eq!(agent.next_json().await["event"], "connection.ack");
    agent.send(&agent_status("at-paired-uuid")).await;
    let got = rt
        .wait_frame("the agent's status", 0, |f| {
            f["type"] == "status" && f["payload"]["marker"] == "at-paired-uuid"
        })
        .await;
    assert_eq!(got.frame["payload"]["device_id"], creds.device_id.as_str());
    assert!(rt.snapshot(|s| s.acked.iter().all(|a| a.1 == u)));
    // The provisional path is closed to that token now.
    let stale = tb
        .connect(&format!("/realtime/devices/{provisional}"), Some(&tok))
        .await
        .expect("upgrade")
        .closed()
        .await;
    assert_eq!(stale.code, 4003, "{stale:?}");
    rt.assert_no_violations();
    tb.stop().await;
}

#[tokio::test]
async fn a_box_paired_before_its_first_start_serves_the_paired_uuid_with_its_old_state() {
    let reg = Registry::start(Tls::Plain).await;
    let rt = FakeCentral::start().await;
    // A first run, unpaired: the provisional room gets some state.
    let tb = TestBox::start(&[]).await;
    let provisional = tb.svc().device_id.get();
    let (mut agent, _) = tb.join(Role::Agent).await;
    agent.send(&agent_status("before-pairing")).await;
    agent.pongs().await;
    drop(agent);
    let dir = tb.stop().await;
    // Paired while stopped.
    let creds = pair(dir.path(), &reg, &rt, false).await;
    let tb = TestBox::start_in(dir, &[]).await;
    let status = tb.status().await;
    assert_eq!(
        status["rooms"]["device_room"],
        format!("device:{}", creds.device_uuid)
    );
    assert_ne!(creds.device_uuid, provisional);
    let (_obs, state) = tb.join(Role::Observer).await;
    assert_eq!(
        state["state"]["agentStatus"]["payload"]["marker"], "before-pairing",
        "{state}"
    );
    tb.stop().await;
}

#[tokio::test]
async fn a_late_agent_ack_never_follows_bbedges_timeout_and_central_sees_a_504_code() {
    let rt = FakeCentral::start().await;
    let (tb, mut agent) = online_box(&rt, &[]).await;
    let t0 = Instant::now();
    let id = rt
        .send_command(UUID, "start_session", json!({"sessionId": "s-1"}))
        .unwrap();
    let cmd = agent.until(|f| f["type"] == "command").await;
    assert_eq!(cmd["id"], id.as_str());
    // The agent is silent past its 3.5 s: bbedge answers, before central's 5 s, in
    // words central turns into 504 "device did not respond".
    let ack = rt.wait_ack(&id).await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(3500) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(ack["success"], false);
    assert_eq!(ack["errorCode"], "TIMEOUT");
    assert!(ack["error"].as_str().unwrap().contains("timeout"), "{ack}");
    assert_eq!(ack["errorDetails"]["bbedgeCode"], "AGENT_TIMEOUT");

    // Now the agent's ack arrives: dropped, counted, and the agent is told.
    agent
        .send(&frame(
            "ack",
            json!({"commandId": id, "success": true, "payload": {"state": "recording"}}),
        ))
        .await;
    let told = agent.until(|f| f["event"] == "error").await;
    assert_eq!(told["error"]["code"], "ACK_TOO_LATE", "{told}");
    assert_eq!(told["error"]["commandId"], id.as_str());
    assert!(told["error"]["message"].as_str().unwrap().contains(&id));
    assert_eq!(tb.drops("late_ack").await, 1.0);
    // Frames the agent sends afterwards reach central; the late ack never does.
    let after = frame("event", json!({"event": "upload.progress", "payload": {}}));
    agent.send(&after).await;
    rt.wait_frame("the next agent frame", 0, |f| f["id"] == after["id"])
        .await;
    let acks = rt.frames_where(0, |f| f["type"] == "ack" && f["commandId"] == id.as_str());
    assert_eq!(acks.len(), 1, "one ack per commandId: {acks:?}");
    rt.assert_no_violations();
    tb.stop().await;
}

#[tokio::test]
async fn a_late_ack_on_the_lan_reaches_nobody() {
    // 1 s for every action here (the default, 0, follows central's table).
    let tb = TestBox::start(&[("realtime.limits.command_timeout", "1")]).await;
    let (mut agent, _) = tb.join(Role::Agent).await;
    let (mut op, _) = tb.join(Role::Operator).await;
    let (mut obs, _) = tb.join(Role::Observer).await;
    let cmd = frame("command", json!({"action": "stop_session", "payload": {}}));
    op.send(&cmd).await;
    agent.until(|f| f["type"] == "command").await;
    let ack = op.until(|f| f["type"] == "ack").await;
    assert_eq!(ack["errorCode"], "AGENT_TIMEOUT");
    agent
        .send(&frame(
            "ack",
            json!({"commandId": cmd["id"], "success": true}),
        ))
        .await;
    let told = agent.until(|f| f["event"] == "error").await;
    assert_eq!(told["error"]["code"], "ACK_TOO_LATE");
    assert_eq!(told["error"]["commandId"], cmd["id"]);
    // Neither the operator nor the observer gets a second ack for that command.
    for c in [&mut op, &mut obs] {
        c.send(&json!({"type": "ping"})).await;
        let next = c.until(|f| f["type"] == "pong" || f["type"] == "ack").await;
        assert_eq!(next["type"], "pong", "{next}");
    }
    tb.stop().await;
}

#[tokio::test]
async fn preview_frames_without_an_agent_are_dropped_counted_and_logged() {
    let (logs, _guard) = LogCapture::install();
    let rt = FakeCentral::start().await;
    let (tb, agent) = online_box(&rt, &[]).await;
    drop(agent);
    // Wait until the room knows the agent left (presence is cheap to observe).
    let (mut obs, state) = tb.join(Role::Observer).await;
    if state["state"]["agentConnected"] == true {
        obs.until(|f| f["event"] == "presence.left").await;
    }
    let burst: Vec<String> = candidates(5, "observer")
        .iter()
        .map(Value::to_string)
        .collect();
    assert_eq!(rt.send_burst(UUID, &burst).await, 5);
    let mut dropped = 0.0;
    for _ in 0..100 {
        dropped = tb.drops("preview").await;
        if dropped >= 5.0 {
            break;
        }
        // Each frame crosses two tasks; give them a turn (bounded, not a timed sleep).
        tokio::task::yield_now().await;
        obs.pongs().await;
    }
    assert_eq!(dropped, 5.0);
    assert!(
        logs.text()
            .contains("observer preview frame from central dropped"),
        "{}",
        logs.text()
    );
    tb.stop().await;
}

#[tokio::test]
async fn a_box_first_connected_after_the_codes_window_does_not_show_online() {
    let rt = FakeCentral::start().await;
    // Central kept the device `enrolled`: its first connection came too late (§a.5).
    rt.set_device_status(UUID, "enrolled");
    let dir = paired_dir(&rt, Duration::from_secs(20 * 60), Some("enrolled"));
    let tb = TestBox::start_in(dir, &[UPSTREAM_ON]).await;
    let facts = tb
        .wait_facts("online and not activated", |f| {
            f.link == Link::Online && f.not_activated
        })
        .await;
    assert!(facts.paired);
    let status = tb.status().await;
    assert_eq!(status["state"], "needs_pairing", "not a green online");
    let p = &status["pairing"];
    assert_eq!(p["activation"], "expired", "{p}");
    assert_eq!(p["needs_action"], true);
    assert!(
        p["action"].as_str().unwrap().contains("re-issue a code"),
        "{p}"
    );
    // Central indeed refuses this device's sessions.
    let refused = rt.operator_start_session(UUID).unwrap_err();
    assert_eq!(refused.0, 409);
    assert!(refused.1.contains("is not active"));
    let dir = tb.stop().await;
    // Still so after a restart: the first connection was recorded.
    let tb = TestBox::start_in(dir, &[UPSTREAM_ON]).await;
    assert!(tb.hub.facts().not_activated);
    tb.stop().await;
}

#[tokio::test]
async fn a_box_connected_within_the_codes_window_shows_online() {
    let rt = FakeCentral::start().await;
    let dir = paired_dir(&rt, Duration::from_secs(60), Some("enrolled"));
    let tb = TestBox::start_in(dir, &[UPSTREAM_ON]).await;
    tb.wait_facts("online", |f| f.link == Link::Online).await;
    let status = tb.status().await;
    assert_eq!(status["state"], "online");
    assert_eq!(status["pairing"]["activation"], "active");
    assert_eq!(status["pairing"]["needs_action"], false);
    assert!(rt.operator_start_session(UUID).is_ok());
    tb.stop().await;
}

#[tokio::test]
async fn needs_pairing_always_asks_for_action_on_status() {
    let rt = FakeCentral::start().await;
    let tb = TestBox::start_in(paired_dir(&rt, Duration::from_secs(60), None), &[]).await;
    assert_eq!(tb.status().await["pairing"]["needs_action"], false);
    // As the link does when central refuses the token.
    tb.hub.update(|f| f.needs_pairing = true);
    let status = tb.status().await;
    assert_eq!(status["state"], "needs_pairing");
    assert_eq!(status["pairing"]["needs_action"], true, "{status}");
    assert!(status["pairing"]["action"]
        .as_str()
        .unwrap()
        .contains("bbedge pair"));
    tb.stop().await;
}

#[tokio::test]
async fn pairing_a_revoked_device_warns_and_exits_91_and_status_says_what_to_do() {
    let reg = Registry::start(Tls::Plain).await;
    let tb = TestBox::start(&[]).await;
    let e = reg.enroll();
    let run = |code: String| {
        let state = tb.dir.path().to_owned();
        let (server, uuid) = (reg.url(), e.device_uuid.clone());
        async move {
            let out = support::binary::command()
                .args([
                    "pair",
                    "--server",
                    &server,
                    "--device-uuid",
                    &uuid,
                    "--code",
                    &code,
                ])
                .env_remove("RUST_LOG")
                .env(
                    "BBEDGE_DAEMON__STATE_DIR",
                    format!("{:?}", state.display().to_string()),
                )
                .env("BBEDGE_PAIRING__BOOT_FILE", "\"\"")
                .kill_on_drop(true)
                .output();
            let out = tokio::time::timeout(Duration::from_secs(60), out)
                .await
                .expect("bbedge pair finishes")
                .expect("bbedge pair runs");
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (code, out, err) = run(e.code.clone()).await;
    assert_eq!(code, 0, "{out}{err}");
    // The operator revokes the device, then re-issues a code: central's 201 says revoked.
    reg.set_device_status(&e.device_uuid, "revoked");
    let fresh = reg.reissue(&e.device_uuid);
    let (code, out, err) = run(fresh.clone()).await;
    assert_eq!(code, 91, "{out}{err}");
    assert!(!out.contains("Paired"), "{out}");
    assert!(
        err.contains("warning")
            && err.contains("revoked")
            && err.contains("PAIR_DEVICE_NOT_ACCEPTED"),
        "{err}"
    );
    assert!(
        !err.contains(&fresh) && !out.contains(&fresh),
        "no code in the output"
    );
    let p = &tb.status().await["pairing"];
    assert_eq!(p["device_status"], "revoked", "{p}");
    assert_eq!(p["activation"], "not_accepted");
    assert_eq!(p["needs_action"], true);
    assert!(
        p["action"].as_str().unwrap().contains("set it active"),
        "{p}"
    );
    assert_eq!(
        p["last_error"]["code"], "PAIR_DEVICE_NOT_ACCEPTED",
        "{out}{err}"
    );
    tb.stop().await;
}

#[tokio::test]
async fn a_boot_file_for_a_suspended_device_fails_once_and_says_what_to_do() {
    let reg = Registry::start(Tls::Plain).await;
    let e = reg.enroll();
    // Registered once (by another box image, say), then suspended by an operator, who
    // re-issues a code that ends up in the boot file.
    let dir = tempfile::tempdir().unwrap();
    let loaded = support::test_config(dir.path(), &[]);
    let paths = bbedge::app::Paths::resolve(&loaded.config);
    let settings = Settings::new(&loaded.config, &paths);
    let first = Inputs {
        server: reg.url(),
        device_uuid: e.device_uuid.clone(),
        code: Secret::new(e.code.clone()),
        ..Inputs::default()
    };
    let req = first.check(&loaded.config.device, false).unwrap();
    register::pair(&req, &settings).await.unwrap();
    std::fs::remove_file(dir.path().join("credentials.toml")).unwrap();
    reg.set_device_status(&e.device_uuid, "suspended");
    let fresh = reg.reissue(&e.device_uuid);
    let boot_dir = tempfile::tempdir().unwrap();
    let boot = boot_dir.path().join("bbedge-pair.toml");
    std::fs::write(
        &boot,
        format!(
            "server = \"{}\"\ndevice_uuid = \"{}\"\ncode = \"{fresh}\"\n",
            reg.url(),
            e.device_uuid
        ),
    )
    .unwrap();
    let cfg = format!("{:?}", boot.display().to_string());
    let tb = TestBox::start_in(dir, &[("pairing.boot_file", &cfg)]).await;
    tb.wait_facts("boot pairing over", |f| f.paired && !f.pairing)
        .await;
    let p = &tb.status().await["pairing"];
    assert_eq!(p["boot_file"]["state"], "failed", "{p}");
    assert_eq!(p["last_error"]["code"], "PAIR_DEVICE_NOT_ACCEPTED", "{p}");
    assert_eq!(p["device_status"], "suspended");
    assert_eq!(p["needs_action"], true);
    assert!(p["action"].as_str().unwrap().contains("'suspended'"), "{p}");
    assert!(!std::fs::read_to_string(&boot).unwrap().contains(&fresh));
    assert_eq!(reg.attempts(), 2, "never retried");
    tb.stop().await;
}
