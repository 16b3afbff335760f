//! The upstream service on its own, on real sled in a temp dir, with credentials for a
//! fake central and the local room's half of the relay seam in the test's hands (the
//! "agent").

use super::fake_central::{Device, FakeCentral};
use base64::Engine;
use bbedge::pairing::{credentials, CredentialStore, Credentials};
use bbedge::relay::{self, AgentReply, RoomSide, ToAgent};
use bbedge::secret::Secret;
use bbedge::signal::StatusHub;
use bbedge::store::Store;
use bbedge::upstream::{self, stats::Stats, Upstream};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use serde_json::Value;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The shared vectors' device UUID and database id.
pub const UUID: &str = "8c0f4e2a-6b1d-4f3a-9e57-2d4c8b1a0f63";
/// The device database id.
pub const DEVICE_ID: &str = "5b2e9d71-03c4-4a8f-b6e2-7f1a9c3d4e58";
/// RFC 8032 §7.1 TEST 1 seed (public test material).
pub const TEST_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

/// A token in central's format with `exp` `exp_in` seconds from now.
pub fn token(exp_in: i64, tag: &str) -> String {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = serde_json::json!({"deviceId": DEVICE_ID, "deviceUuid": UUID, "organizationId": "default",
        "type": "device", "jti": tag, "iat": now, "exp": now + exp_in});
    format!(
        "{}.{}",
        e.encode(claims.to_string()),
        e.encode(format!("mac-{tag}"))
    )
}

/// The RFC 8032 test key.
pub fn test_key() -> ed25519_dalek::SigningKey {
    let b: [u8; 32] = hex::decode(TEST_SEED)
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    ed25519_dalek::SigningKey::from_bytes(&b)
}

/// Options for one box.
pub struct Opts {
    /// Config overrides (`upstream.*` keys without the prefix, TOML literals).
    pub config: Vec<(&'static str, String)>,
    /// Whether the fake knows the token.
    pub known_token: bool,
    /// Token lifetime from now, seconds.
    pub exp_in: i64,
    /// Register the test key (signed manifests).
    pub key_registered: bool,
    /// Pin the jitter.
    pub seed: u64,
    /// Point the credentials' API base at the fake's API listener (the §b.6 probe
    /// reaches it); otherwise at a closed port, so every probe fails to connect.
    pub api: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            config: Vec::new(),
            known_token: true,
            exp_in: 7 * 86_400,
            key_registered: false,
            seed: 42,
            api: false,
        }
    }
}

impl Opts {
    /// The defaults, with the credentials' API base at the fake's API (the §b.6 probe).
    pub fn with_api() -> Self {
        Self {
            api: true,
            ..Self::default()
        }
    }
}

/// A running upstream service.
pub struct Up {
    /// State dir (sled, credentials, key).
    pub dir: tempfile::TempDir,
    /// The store.
    pub store: Store,
    /// The hub.
    pub hub: StatusHub,
    /// Credentials (re-pairing tests rewrite and reload them).
    pub creds: CredentialStore,
    /// The room's half: `commands` is the agent's inbox, `to_central` its outbox.
    pub room: RoomSide,
    /// Counters.
    pub stats: Arc<Stats>,
    /// The outbox.
    pub outbox: upstream::outbox::Outbox,
    /// `/status` "upstream".
    pub section: bbedge::health::StatusSection,
    /// Stops the service.
    pub token: CancellationToken,
    /// The service task.
    pub task: JoinHandle<()>,
}

/// The `[upstream]` config with overrides.
pub fn config(over: &[(&str, String)]) -> bbedge::config::Upstream {
    let env: Vec<(String, String)> = over
        .iter()
        .map(|(k, v)| (super::env_name(&format!("upstream.{k}")), v.clone()))
        .collect();
    bbedge::config::Loader::builtin()
        .env(env)
        .load()
        .expect("config loads")
        .config
        .upstream
}

/// An API base nothing listens on: the token probe cannot connect.
pub const NO_API: &str = "http://127.0.0.1:1";

/// Writes credentials for `fake` into `dir`.
pub fn write_credentials(
    dir: &std::path::Path,
    fake: &FakeCentral,
    tok: &str,
    key_registered: bool,
) -> std::path::PathBuf {
    write_credentials_for(dir, fake, tok, key_registered, NO_API)
}

/// Writes credentials for `fake` into `dir` with `server` as the API base.
pub fn write_credentials_for(
    dir: &std::path::Path,
    fake: &FakeCentral,
    tok: &str,
    key_registered: bool,
    server: &str,
) -> std::path::PathBuf {
    let path = dir.join("credentials.toml");
    let c = Credentials {
        server: server.into(),
        realtime_url: fake.realtime_url(),
        device_id: DEVICE_ID.into(),
        device_uuid: UUID.into(),
        token: Secret::new(tok),
        expires_at: "2099-01-01T00:00:00.000Z".into(),
        paired_at: "2026-06-20T19:00:00.000Z".into(),
        name: "Council chamber".into(),
        key_registered,
        device_status: None,
    };
    credentials::save(&path, &c).expect("save credentials");
    write_test_key(&dir.join("device-key.pem"));
    path
}

/// Writes the test key as pairing does (PKCS#8 PEM).
pub fn write_test_key(path: &std::path::Path) {
    let pem = test_key().to_pkcs8_pem(Default::default()).expect("pem");
    std::fs::write(path, pem.as_bytes()).expect("key");
}

impl Up {
    /// Starts a service against `fake` in a fresh dir.
    pub async fn start(fake: &FakeCentral, o: Opts) -> Up {
        Self::start_in(tempfile::tempdir().expect("tempdir"), fake, o).await
    }

    /// Starts a service whose state lives in `dir`.
    pub async fn start_in(dir: tempfile::TempDir, fake: &FakeCentral, o: Opts) -> Up {
        let tok = token(o.exp_in, "t1");
        if o.known_token {
            let key = o.key_registered.then(|| test_key().verifying_key());
            fake.allow(
                &tok,
                Device {
                    id: DEVICE_ID.into(),
                    uuid: UUID.into(),
                    key,
                },
            );
        }
        let server = if o.api {
            fake.api_url()
        } else {
            NO_API.to_owned()
        };
        let path = write_credentials_for(dir.path(), fake, &tok, o.key_registered, &server);
        let opened = bbedge::store::open(&dir.path().join("db"), 1 << 20).expect("store");
        let store = opened.store;
        let (creds, _) = CredentialStore::open(path);
        let hub = StatusHub::new();
        let (side, room) = relay::channel();
        let token = CancellationToken::new();
        // The real LED task on the simulated backend: central's `identify` goes through it.
        let mut led_cfg = bbedge::config::Loader::builtin()
            .load()
            .expect("defaults")
            .config
            .status_led;
        led_cfg.backend = bbedge::config::LedBackend::Sim;
        let (led, led_task) = bbedge::signal::build(&led_cfg, hub.clone(), None);
        tokio::spawn(led_task.run(token.clone()));
        let svc = Upstream::new(upstream::Parts {
            config: config(&o.config),
            store: store.clone(),
            credentials: creds.clone(),
            key_path: dir.path().join("device-key.pem"),
            hub: hub.clone(),
            relay: side,
            led,
            jitter_seed: Some(o.seed),
        })
        .expect("upstream builds");
        let stats = svc.stats();
        let outbox = svc.outbox().clone();
        let section = svc.status_section();
        let task = tokio::spawn(svc.run(token.clone()));
        Up {
            dir,
            store,
            hub,
            creds,
            room,
            stats,
            outbox,
            section,
            token,
            task,
        }
    }

    /// A box that registered the test key (signed manifests), connected once, with
    /// central now down: the start of every manifest-while-offline test.
    pub async fn signed_then_offline(fake: &mut FakeCentral) -> Up {
        let up = Self::start(
            fake,
            Opts {
                key_registered: true,
                ..Opts::default()
            },
        )
        .await;
        fake.wait_acked(1).await;
        fake.stop().await;
        up
    }

    /// The agent sends a frame towards central, parsed and checked as the room client
    /// does (only checked frames cross the seam).
    pub fn agent_sends(&self, frame: Value) {
        self.room
            .to_central
            .try_send(agent_frame(&frame))
            .expect("to_central has room");
    }

    /// The next command the agent receives.
    pub async fn agent_command(&mut self) -> ToAgent {
        tokio::time::timeout(super::fake_central::WAIT, self.room.commands.recv())
            .await
            .expect("a command reaches the agent")
            .expect("relay open")
    }

    /// `/status` "upstream".
    pub fn status(&self) -> Value {
        (self.section)()
    }

    /// Re-pairs as `bbedge pair` would: a new token `tag` the fake accepts, the test key
    /// written (again) beside it, and the credentials reloaded, which makes the link
    /// close its socket and reconnect with them.
    pub fn re_pair(&self, fake: &FakeCentral, tag: &str, key_registered: bool) {
        let tok = token(7 * 86_400, tag);
        fake.allow(
            &tok,
            Device {
                id: DEVICE_ID.into(),
                uuid: UUID.into(),
                key: key_registered.then(|| test_key().verifying_key()),
            },
        );
        write_credentials(self.dir.path(), fake, &tok, key_registered);
        self.creds.reload().expect("credentials reload");
    }

    /// Connection attempts so far (`/status` `connect_attempts`).
    pub fn attempts(&self) -> u64 {
        self.status()["connect_attempts"].as_u64().unwrap_or(0)
    }

    /// Waits (hang guard 30 s) until the link reports `link`.
    pub async fn wait_link(&self, link: bbedge::signal::Link) {
        let mut facts = self.hub.subscribe();
        tokio::time::timeout(
            super::fake_central::WAIT,
            facts.wait_for(|f| f.link == link),
        )
        .await
        .unwrap_or_else(|_| panic!("the link never became {link:?}: {:?}", self.hub.facts()))
        .expect("hub alive");
    }

    /// Waits until the hub's `needs_pairing` is `want` (hang guard `limit`; under paused
    /// time the reconnect backoff can exceed the default guard).
    pub async fn wait_needs_pairing(&self, want: bool, limit: std::time::Duration, what: &str) {
        let mut facts = self.hub.subscribe();
        tokio::time::timeout(limit, facts.wait_for(|f| f.needs_pairing == want))
            .await
            .unwrap_or_else(|_| panic!("{what}: needs_pairing never became {want}"))
            .expect("hub alive");
    }

    /// The signing key file.
    pub fn key_path(&self) -> std::path::PathBuf {
        self.dir.path().join("device-key.pem")
    }

    /// Stops the service (closing its socket cleanly) and returns the state dir.
    pub async fn stop(self) -> tempfile::TempDir {
        self.token.cancel();
        let _ = self.task.await;
        drop(self.store);
        self.dir
    }
}

/// A frame as the room client hands it on: parsed once, checked, with its text.
pub fn agent_frame(frame: &Value) -> bbedge::protocol::Inbound {
    bbedge::protocol::Inbound::parse(frame.to_string())
        .unwrap_or_else(|e| panic!("not a valid agent frame ({e:?}): {frame}"))
}

/// Answers one command as a well-behaved agent.
pub fn ack_ok(cmd: ToAgent, payload: Value) {
    let ack = serde_json::json!({"type": "ack", "id": bbedge::protocol::new_id(),
        "timestamp": bbedge::protocol::now_rfc3339(), "commandId": cmd.command_id,
        "success": true, "payload": payload});
    let _ = cmd.reply.send(AgentReply::Ack(agent_frame(&ack)));
}

/// An event frame as an agent would send it.
pub fn event(n: usize) -> Value {
    serde_json::json!({"type": "event", "id": format!("ev-{n:05}"), "timestamp": bbedge::protocol::now_rfc3339(),
        "event": "upload.progress", "payload": {"sessionId": "s", "progress": n}})
}

/// Matches frames of type `ty`.
pub fn is(ty: &'static str) -> impl Fn(&Value) -> bool {
    move |f| f["type"] == ty
}

/// Waits until the outbox holds exactly `frames` entries (hang guard 30 s; the depth is
/// in-memory state with no change signal, so this polls it).
pub async fn wait_outbox(up: &Up, frames: usize) {
    let t0 = std::time::Instant::now();
    while up.outbox.depth().frames != frames {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "outbox depth {} != {frames}",
            up.outbox.depth().frames
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A `session.manifest` as the agent sends it (unsigned; bbedge signs it at send time).
pub fn manifest(id: &str) -> Value {
    serde_json::json!({"type":"session.manifest","id":id,"timestamp":bbedge::protocol::now_rfc3339(),
        "payload":{"session_id":"record-1760000000000","capture":{"device":DEVICE_ID,
        "started_at":"2026-06-20T19:00:00.950Z","ended_at":"2026-06-20T20:30:00.950Z","duration_s":5400,
        "segments":[{"start":0,"end":5400,"visibility":"public"}]}}})
}

/// Set once the hub ever shows `needs_pairing` from now on (a task follows the hub; the
/// flag stays set when the link clears it again).
pub fn needs_pairing_ever(hub: &StatusHub) -> Arc<std::sync::atomic::AtomicBool> {
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = flag.clone();
    let mut rx = hub.subscribe();
    tokio::spawn(async move {
        loop {
            if rx.borrow_and_update().needs_pairing {
                seen.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
    flag
}
