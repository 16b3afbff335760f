//! The upstream link through things going wrong for a long time: a signing key that is
//! gone while manifests wait, a central outage across a scheduled session (with a real
//! agent in the local room), and central down for many minutes in paused time. Every
//! test ends by asserting the fake central saw no schema or contract violation.

mod support;

use serde_json::Value;
use support::fake_central::FakeCentral;
use support::logs::LogCapture;
use support::uplink::{event, manifest, wait_outbox, Opts, Up};

const KEY_LOST: &str = "signing key unavailable";
const KEY_BACK: &str = "signing key available again";

fn sent_manifests(fake: &FakeCentral) -> Vec<Value> {
    fake.snapshot(|s| {
        s.frames
            .iter()
            .filter(|r| r.frame["type"] == "session.manifest")
            .map(|r| r.frame.clone())
            .collect()
    })
}

#[tokio::test]
async fn manifests_wait_for_a_broken_signing_key_and_go_signed_in_order_after_re_pairing() {
    let logs = LogCapture::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let mut fake = FakeCentral::start().await;
    let up = Up::start(
        &fake,
        Opts {
            key_registered: true,
            ..Opts::default()
        },
    )
    .await;
    fake.wait_acked(1).await;
    fake.stop().await;
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
    // Re-pairing writes a good key; the link reconnects and sends both, signed, in order.
    up.re_pair(&fake, "t2", true);
    fake.wait_frame("the second manifest", 0, |f| f["id"] == "man-2")
        .await;
    let sent = sent_manifests(&fake);
    let ids: Vec<&Value> = sent.iter().map(|m| &m["id"]).collect();
    assert_eq!(ids, ["man-1", "man-2"], "same ids, original order");
    for m in &sent {
        assert_eq!(m["payload"]["alg"], "ed25519", "{m}");
        assert!(
            m["payload"].get("capture").is_none(),
            "never the unsigned form: {m}"
        );
    }
    assert_eq!(
        fake.snapshot(|s| s.manifests_verified),
        2,
        "both verify with the registered public key"
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
