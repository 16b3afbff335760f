//! The upstream link through things going wrong for a long time: a signing key that is
//! gone while manifests wait, a central outage across a scheduled session (with a real
//! agent in the local room), and central down for many minutes in paused time. Every
//! test ends by asserting the fake central saw no schema or contract violation.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::fake_central::FakeCentral;
use support::logs::LogCapture;
use support::uplink::{event, is, manifest, wait_outbox, Opts, Up};

const KEY_LOST: &str = "signing key unavailable";
const KEY_BACK: &str = "signing key available again";

fn sent_manifests(fake: &FakeCentral) -> Vec<Value> {
    fake.frames_where(0, is("session.manifest"))
        .into_iter()
        .map(|r| r.frame)
        .collect()
}

#[tokio::test]
async fn manifests_wait_for_a_broken_signing_key_never_overtake_each_other_and_go_signed_after_re_pairing(
) {
    let (logs, _guard) = LogCapture::install();
    let mut fake = FakeCentral::start().await;
    let up = Up::signed_then_offline(&mut fake).await;
    // Offline, the key file is damaged, and the agent finishes two recordings.
    std::fs::write(
        up.key_path(),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    up.agent_sends(manifest("man-1"));
    up.agent_sends(event(1));
    up.agent_sends(manifest("man-2"));
    up.agent_sends(event(2));
    wait_outbox(&up, 4).await;
    fake.restart().await;
    // Events behind the manifests still flow and leave the outbox; the manifests stay.
    fake.wait_frame("the event queued last", 0, |f| f["id"] == "ev-00002")
        .await;
    wait_outbox(&up, 2).await;
    assert_eq!(
        sent_manifests(&fake),
        Vec::<Value>::new(),
        "a device with a registered key never sends an unsigned manifest (central drops it silently)"
    );
    let st = up.status();
    assert_eq!(st["signing"]["key"], "unavailable", "{st}");
    let error = st["signing"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("device-key.pem") && error.contains("not a PKCS#8"),
        "{st}"
    );
    assert_eq!(st["signing"]["manifests_waiting"], 2, "{st}");
    assert_eq!(st["outbox"]["manifests"], 2, "{st}");
    // A second connection meets the same broken key: still one line for the state change.
    fake.close_all(support::uplink::UUID, 1001);
    fake.wait_acked(3).await;
    up.agent_sends(event(3));
    fake.wait_frame("an event on the next connection", 0, |f| {
        f["id"] == "ev-00003"
    })
    .await;
    assert_eq!(
        logs.count(KEY_LOST),
        1,
        "one log line per change, not per attempt"
    );
    assert!(sent_manifests(&fake).is_empty());
    // The file is put back by hand on this live connection: a new manifest must not
    // overtake the two stepped over, so it waits too, and /status says for what.
    support::uplink::write_test_key(&up.key_path());
    up.agent_sends(manifest("man-3"));
    up.agent_sends(event(4));
    fake.wait_frame("the event behind the third manifest", 0, |f| {
        f["id"] == "ev-00004"
    })
    .await;
    assert!(sent_manifests(&fake).is_empty());
    let st = up.status();
    assert_eq!(
        st["signing"]["error"],
        bbedge::upstream::signing::READABLE_AGAIN,
        "{st}"
    );
    assert_eq!(st["signing"]["manifests_waiting"], 3, "{st}");
    assert_eq!(logs.count("signing key readable again"), 1);
    // Re-pairing (the key file is valid, so pairing keeps it) makes the link reconnect;
    // the new connection sends all three, signed, in their original order.
    up.re_pair(&fake, "t2", true);
    fake.wait_frame("the third manifest", 0, |f| f["id"] == "man-3")
        .await;
    let sent = sent_manifests(&fake);
    let ids: Vec<&Value> = sent.iter().map(|m| &m["id"]).collect();
    assert_eq!(ids, ["man-1", "man-2", "man-3"], "same ids, original order");
    for m in &sent {
        assert_eq!(m["payload"]["alg"], "ed25519", "{m}");
        assert!(
            m["payload"].get("capture").is_none(),
            "never the unsigned form: {m}"
        );
    }
    assert_eq!(
        fake.snapshot(|s| s.manifests_verified),
        3,
        "all verify with the registered public key"
    );
    wait_outbox(&up, 0).await;
    let st = up.status();
    assert_eq!(st["signing"]["key"], "ok", "{st}");
    assert_eq!(st["signing"]["manifests_waiting"], 0, "{st}");
    assert_eq!(logs.count(KEY_LOST), 1);
    assert_eq!(logs.count(KEY_BACK), 1);
    assert!(
        !logs.text().contains("AAAA"),
        "the key file's content is never logged"
    );
    fake.assert_no_violations();
    up.stop().await;
}

/// Polls `f` until it returns `Some` (hang guard 30 s). For state with no change signal
/// (sled trees, in-memory depths); frames and facts are awaited instead.
async fn eventually<R>(what: &str, mut f: impl FnMut() -> Option<R>) -> R {
    let t0 = std::time::Instant::now();
    loop {
        if let Some(r) = f() {
            return r;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The next `command` the agent's socket receives (hang guard 30 s: a scheduled
/// action waits for the autonomy task's 5 s tick).
async fn next_command(agent: &mut support::ws::Client) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let read = async {
        loop {
            match agent.ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("JSON from the room");
                    if v["type"] == "command" {
                        return v;
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("agent socket ended: {other:?}"),
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), read)
        .await
        .expect("a command reaches the agent")
}

/// The agent's next command must be a schema-valid `action` for session `id`; the agent
/// acks it with success.
async fn agent_acks(
    agent: &mut support::ws::Client,
    schema: &support::schema::Schema,
    action: &str,
    id: &str,
) {
    let cmd = next_command(agent).await;
    schema.assert_valid(&cmd);
    assert_eq!(cmd["action"], action, "{cmd}");
    assert_eq!(cmd["payload"]["civicpressSessionId"], id, "{cmd}");
    let ack = support::ws::frame(
        "ack",
        serde_json::json!({"commandId": cmd["id"], "success": true}),
    );
    agent.send(&ack).await;
}

fn rfc3339_in(ms: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(ms);
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}

/// The real app (local room + upstream link) paired with `fake`, state in `dir`.
async fn paired_box(dir: tempfile::TempDir, fake: &FakeCentral) -> support::TestBox {
    let tok = support::uplink::token(7 * 86_400, "t1");
    fake.allow(
        &tok,
        support::fake_central::Device {
            id: support::uplink::DEVICE_ID.into(),
            uuid: support::uplink::UUID.into(),
            key: None,
        },
    );
    support::uplink::write_credentials(dir.path(), fake, &tok, false);
    // A 1 s backoff cap so the link is back within a second of central.
    let extra = [("upstream.enabled", "true"), ("upstream.backoff_max", "1")];
    support::TestBox::start_in(dir, &extra).await
}

#[tokio::test]
async fn a_session_scheduled_during_an_outage_is_started_and_stopped_by_the_box_and_reported() {
    use bbedge::room::tokens::Role;
    use bbedge::upstream::schedule::{self, Cached};
    let schema = support::schema::Schema::load();
    let mut fake = FakeCentral::start().await;
    let tb = paired_box(tempfile::tempdir().unwrap(), &fake).await;
    let (mut agent, _) = tb.join(Role::Agent).await;
    fake.wait_acked(1).await;
    tb.wait_facts("online", |f| f.link == bbedge::signal::Link::Online)
        .await;
    // Central pushes a session starting in 2 s and lasting 6 s (more than the
    // autonomy task's 5 s tick, so one tick falls inside it).
    const ID: &str = "record-1770000000000";
    let mut push = support::schema::vector("schedule.push.json");
    push["payload"]["sessions"][0]["id"] = ID.into();
    push["payload"]["sessions"][0]["scheduled_start"] = rfc3339_in(2_000).into();
    push["payload"]["sessions"][0]["scheduled_end"] = rfc3339_in(8_000).into();
    schema.assert_valid(&push);
    fake.send_raw(support::uplink::UUID, &push.to_string());
    let store = tb.svc().store.clone();
    eventually("the schedule cached", || {
        (schedule::sessions(&store).len() == 1).then_some(())
    })
    .await;
    // Central goes down before the start.
    fake.stop().await;
    tb.wait_facts("offline", |f| f.link != bbedge::signal::Link::Online)
        .await;
    // The box starts the session on its own, and at the scheduled end stops it; the
    // agent acks both.
    agent_acks(&mut agent, &schema, "start_session", ID).await;
    agent_acks(&mut agent, &schema, "stop_session", ID).await;
    assert!(
        fake.snapshot(|s| s.open.is_empty()),
        "all of this happened with central down"
    );
    // Central comes back: the box reports both actions, in order, schema-valid.
    fake.restart().await;
    let autonomous = |f: &Value| f["event"] == "schedule.autonomous_action";
    fake.wait_frame("the stop report", 0, |f| {
        autonomous(f) && f["payload"]["action"] == "stop_session"
    })
    .await;
    let reports: Vec<Value> = fake
        .frames_where(0, autonomous)
        .into_iter()
        .map(|r| r.frame)
        .collect();
    let actions: Vec<&Value> = reports.iter().map(|r| &r["payload"]["action"]).collect();
    assert_eq!(actions, ["start_session", "stop_session"]);
    for r in &reports {
        assert_eq!(r["payload"]["session_id"], ID, "{r}");
        assert_eq!(r["payload"]["success"], true, "the agent acked: {r}");
    }
    fake.assert_no_violations();
    // The cache and what the box did survive a restart of bbedge.
    drop((store, agent));
    let dir = tb.stop().await;
    let tb = paired_box(dir, &fake).await;
    let (_agent, state) = tb.join(Role::Agent).await;
    let sched = &state["state"]["schedule"];
    assert_eq!(sched[0]["id"], ID, "room_state after a restart: {state}");
    let cached: Cached = tb
        .svc()
        .store
        .get(bbedge::store::Tree::Schedule, ID.as_bytes())
        .expect("store reads")
        .expect("still cached");
    assert!(cached.started && cached.stopped, "{cached:?}");
    tb.stop().await;
}

/// When the link should try, by the production schedule (`backoff_initial` 1 s doubling
/// to `backoff_max` 60 s, full jitter with a 1 s floor) and the same pinned jitter seed,
/// for an outage in which every dial fails at once: offsets from the first attempt.
fn scheduled_attempts(seed: u64, within: Duration) -> Vec<Duration> {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut b =
        bbedge::upstream::backoff::Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut at = vec![Duration::ZERO];
    loop {
        let next = *at.last().unwrap() + b.next_delay(&mut rng);
        if next > within {
            return at;
        }
        at.push(next);
    }
}

#[tokio::test(start_paused = true)]
async fn ten_minutes_without_central_follow_the_backoff_schedule_then_everything_drains() {
    // Central's port refuses connections, so every dial fails at once and paused time
    // runs ahead through the backoff sleeps: ten minutes take milliseconds, exactly.
    let mut fake = FakeCentral::start().await;
    fake.stop().await;
    let up = Up::start(&fake, Opts::default()).await;
    for n in 0..20 {
        up.agent_sends(event(n));
    }
    let t0 = tokio::time::Instant::now();
    let outage = Duration::from_secs(600);
    // Sample the attempt counter every 100 ms of (paused) time.
    let mut times: Vec<Duration> = Vec::new();
    while t0.elapsed() < outage {
        let n = up.attempts() as usize;
        while times.len() < n {
            times.push(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Never hammered, whatever the schedule: at least the 1 s floor between attempts,
    // and never more than the 60 s cap of silence.
    for w in times.windows(2) {
        let gap = w[1].checked_sub(w[0]).unwrap();
        assert!(
            gap >= Duration::from_millis(900) && gap <= Duration::from_millis(60_100),
            "gap {gap:?} in {times:?}"
        );
    }
    // And exactly the production schedule: ramp 1, 2, 4, … then jitter under the cap.
    let want = scheduled_attempts(Opts::default().seed, outage);
    assert_eq!(times.len(), want.len(), "{times:?} vs {want:?}");
    for (got, want) in times.iter().zip(&want) {
        let off = (*got).checked_sub(times[0]).unwrap().abs_diff(*want);
        assert!(off <= Duration::from_millis(200), "{times:?} vs {want:?}");
    }
    assert!(
        (10..=40).contains(&times.len()),
        "{} attempts in ten minutes",
        times.len()
    );
    // Issue 10 item 3: frames wait, so the box shows buffering (this process was never
    // online: what used to be `Connecting` here).
    assert_eq!(up.hub.facts().link, bbedge::signal::Link::Offline);
    assert_eq!(up.outbox.depth().frames, 20, "the outbox kept everything");
    // Central comes back: the next attempt of the schedule reaches it.
    fake.restart().await;
    while fake.snapshot(|s| s.attempts) == 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reached = t0.elapsed().checked_sub(times[0]).unwrap();
    let next =
        scheduled_attempts(Opts::default().seed, outage + Duration::from_secs(61))[want.len()];
    assert!(
        reached.abs_diff(next) <= Duration::from_millis(200),
        "reached central at {reached:?}, scheduled {next:?}: the delay is the backoff, nothing more"
    );
    // From here on real time: with central's side in this runtime, paused time would
    // jump to the next timer whenever both ends wait on a socket.
    tokio::time::resume();
    fake.wait_acked(1).await;
    assert_eq!(fake.snapshot(|s| s.attempts), 1, "one dial reached central");
    up.wait_link(bbedge::signal::Link::Online).await;
    fake.wait_frame("the last event", 0, |f| f["id"] == "ev-00019")
        .await;
    wait_outbox(&up, 0).await;
    let want: Vec<Value> = (0..20).map(|n| format!("ev-{n:05}").into()).collect();
    assert_eq!(fake.progress_ids(0), want, "all delivered once, in order");
    fake.assert_no_violations();
    up.stop().await;
}

/// Issue 10 item 3: what the box shows follows "paired, not connected, and something
/// waiting" whatever restarts happened ("was online" used to be per process, so a box
/// restarted during an outage showed `connecting` with frames queued). And
/// `last_error` belongs to its attempt: an acknowledgement clears it.
#[tokio::test(start_paused = true)]
async fn a_box_restarted_during_an_outage_shows_buffering_while_frames_wait() {
    use bbedge::signal::Link;
    let mut fake = FakeCentral::start().await;
    fake.stop().await;
    let up = Up::start(&fake, Opts::default()).await;
    eventually("a first attempt", || (up.attempts() >= 1).then_some(())).await;
    assert_eq!(up.hub.facts().link, Link::Connecting, "nothing waits yet");
    let st = up.status();
    assert_eq!(st["state"], "connecting", "{st}");
    assert_eq!(st["last_error"], "CONNECT_FAILED", "{st}");
    assert_eq!(st["last_error_attempt"], 1, "{st}");
    assert!(st["last_error_at"].is_string(), "{st}");
    up.agent_sends(event(1));
    up.wait_link(Link::Offline).await;
    // For as long as the outage lasts, through every attempt.
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(up.hub.facts().link, Link::Offline, "{}", up.status());
    }
    assert!(up.attempts() >= 5, "{}", up.status());
    assert_eq!(up.status()["state"], "offline");
    // bbedge restarts, central still down: buffering from its first attempt.
    let dir = up.stop().await;
    let up = Up::start_in(dir, &fake, Opts::default()).await;
    eventually("a first attempt after the restart", || {
        (up.attempts() >= 1).then_some(())
    })
    .await;
    assert_eq!(up.hub.facts().link, Link::Offline, "{}", up.status());
    // Central is back: online, and the old CONNECT_FAILED is gone.
    fake.restart().await;
    tokio::time::resume();
    up.wait_link(Link::Online).await;
    wait_outbox(&up, 0).await;
    let st = up.status();
    assert_eq!(st["state"], "online", "{st}");
    assert_eq!(st["last_error"], Value::Null, "{st}");
    assert_eq!(st["last_error_attempt"], Value::Null, "{st}");
    // An error central reports on the live link shows at once, with its attempt.
    fake.send_raw(
        support::uplink::UUID,
        r#"{"type":"control","event":"error","error":{"code":"UNKNOWN_ERROR","message":"db"}}"#,
    );
    eventually("the control error on /status", || {
        (up.status()["last_error"] == "UNKNOWN_ERROR").then_some(())
    })
    .await;
    assert_eq!(up.status()["last_error_attempt"], up.attempts());
    // Central goes again with nothing waiting: connecting, not buffering.
    fake.stop().await;
    up.wait_link(Link::Connecting).await;
    assert_eq!(up.status()["state"], "connecting");
    fake.assert_no_violations();
    up.stop().await;
}
