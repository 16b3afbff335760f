//! A box paired with the fake central and online, with an agent in its room: the set-up
//! the paired-box and preview tests share.

use super::fake_central::{Device, FakeCentral};
use super::uplink::{token, DEVICE_ID, UUID};
use super::ws::frame;
use super::TestBox;
use bbedge::pairing::Credentials;
use bbedge::room::tokens::Role;
use bbedge::secret::Secret;
use serde_json::{json, Value};
use std::time::Duration;

/// The config pair that turns the upstream link on in a [`TestBox`].
pub const UPSTREAM_ON: (&str, &str) = ("upstream.enabled", "true");

/// An agent `status` frame carrying `marker`, to find it at central.
pub fn agent_status(marker: &str) -> Value {
    frame(
        "status",
        json!({"payload": {"state": "idle", "marker": marker}}),
    )
}

/// Credentials for `rt` in a fresh dir, as pairing would have written them `ago` ago
/// with central's answer `status`.
pub fn paired_dir(rt: &FakeCentral, ago: Duration, status: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let tok = token(7 * 86_400, "paired-box");
    rt.allow(
        &tok,
        Device {
            id: DEVICE_ID.into(),
            uuid: UUID.into(),
            key: None,
        },
    );
    let paired_at = time::OffsetDateTime::now_utc() - ago;
    let c = Credentials {
        server: super::uplink::NO_API.into(),
        realtime_url: rt.realtime_url(),
        device_id: DEVICE_ID.into(),
        device_uuid: UUID.into(),
        token: Secret::new(tok),
        expires_at: "2099-01-01T00:00:00.000Z".into(),
        paired_at: bbedge::protocol::frame::format_rfc3339(paired_at),
        name: "Council chamber".into(),
        key_registered: false,
        device_status: status.map(str::to_owned),
    };
    bbedge::pairing::credentials::save(&dir.path().join("credentials.toml"), &c).unwrap();
    dir
}

/// A paired box, online, with an agent in its room that central has seen.
pub async fn online_box(rt: &FakeCentral, extra: &[(&str, &str)]) -> (TestBox, super::ws::Client) {
    let mut cfg = vec![UPSTREAM_ON];
    cfg.extend_from_slice(extra);
    let tb = TestBox::start_in(paired_dir(rt, Duration::from_secs(60), None), &cfg).await;
    assert_eq!(tb.svc().device_id, UUID);
    let (mut agent, _) = tb.join(Role::Agent).await;
    agent.send(&agent_status("ready")).await;
    rt.wait_frame("the agent's status", 0, |f| {
        f["payload"]["marker"] == "ready"
    })
    .await;
    (tb, agent)
}

/// `n` ICE candidates as `from` would send them.
pub fn candidates(n: usize, from: &str) -> Vec<Value> {
    (0..n)
        .map(|i| {
            frame(
                "preview.ice_candidate",
                json!({"payload": {"candidate": format!("candidate:{from}-{i}"), "sdpMid": "0"}}),
            )
        })
        .collect()
}
