//! The foundation: the real binary and the in-process app, on loopback.

mod support;

use support::{binary, TestBox};

#[tokio::test]
async fn health_ready_and_status_answer_once_the_app_is_bound() {
    let tb = TestBox::start(&[]).await;
    assert_eq!(tb.get("/health").await, (200, "ok\n".to_owned()));
    let (code, body) = tb.get("/ready").await;
    // Readiness flips after the tasks start; /ready is 200 or says why not.
    assert!(code == 200 || body.contains("startup"), "{code} {body}");
    let status = tb.status().await;
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert!(status["memory"]["rss_bytes"].as_u64().unwrap_or(0) > 0);
    assert_eq!(status["config"]["health"]["host"], "127.0.0.1");
    tb.stop().await;
}

#[tokio::test]
async fn the_binary_serves_health_and_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("BBEDGE_HEALTH__PORT".to_owned(), "0".to_owned()),
        ("BBEDGE_REALTIME__PORT".to_owned(), "0".to_owned()),
        ("BBEDGE_REALTIME__HOST".to_owned(), "127.0.0.1".to_owned()),
        ("BBEDGE_STATUS_LED__BACKEND".to_owned(), "sim".to_owned()),
        ("BBEDGE_PAIRING__BOOT_FILE".to_owned(), "\"\"".to_owned()),
    ];
    let mut d = binary::spawn(dir.path(), &["run"], &env);
    let ready = d.wait_for("bbedge ready").await;
    let addr = ready["health_addr"].as_str().expect("health_addr logged");
    let (code, _) = support::http_get(&format!("http://{addr}/ready")).await;
    assert_eq!(code, 200);
    d.signal("TERM");
    d.wait_for("bbedge stopped").await;
    assert_eq!(d.exit_code().await, 0);
    assert!(
        dir.path().join("bbedge-state/db").is_dir(),
        "state defaults to ./bbedge-state"
    );
}

#[tokio::test]
async fn the_control_socket_answers_known_ops_and_refuses_unknown_ones() {
    use bbedge::control::{self, ControlError};
    let tb = TestBox::start(&[]).await;
    let state = tb.dir.path().to_owned();
    let r = control::request(&state, "pairing.reload", serde_json::json!({})).await;
    assert_eq!(r, Ok(serde_json::json!({"paired": false})));
    let r = control::request(&state, "no.such.op", serde_json::Value::Null).await;
    assert_eq!(r, Err(ControlError::UnknownOp("no.such.op".into())));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(control::socket_path(&state))
            .unwrap()
            .permissions(),
    );
    assert_eq!(
        mode & 0o777,
        0o600,
        "only the daemon's user may use the socket"
    );
    tb.stop().await;
    let r = control::request(&state, "pairing.reload", serde_json::Value::Null).await;
    assert_eq!(r, Err(ControlError::NotRunning));
}

#[tokio::test]
async fn a_second_daemon_on_the_same_state_dir_refuses_to_start() {
    let tb = TestBox::start(&[]).await;
    let loaded = support::test_config(tb.dir.path(), &[]);
    // sled's own lock or the live control socket must stop the second one.
    let err = bbedge::app::App::bind(loaded)
        .await
        .err()
        .expect("second bind fails");
    use bbedge::error::ErrorCode;
    assert!(err.code() == "STORE_LOCKED", "{}: {err}", err.code());
    tb.stop().await;
}

#[tokio::test]
async fn a_corrupt_database_is_quarantined_and_the_daemon_still_comes_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    {
        let opened = bbedge::store::open(&db, 1 << 20).unwrap();
        opened
            .store
            .put(bbedge::store::Tree::Meta, b"k", &1u32)
            .unwrap();
        opened.store.flush().await.unwrap();
    }
    // Mangle sled's own files the way a bad SD card does.
    for name in ["conf", "db"] {
        let p = db.join(name);
        if p.exists() {
            std::fs::write(&p, vec![0xA5; 4096]).unwrap();
        }
    }
    let tb = TestBox::start_in(dir, &[]).await;
    let status = tb.status().await;
    let moved = status["store"]["quarantined"]["moved_to"]
        .as_str()
        .expect("quarantine reported");
    assert!(moved.contains("db.quarantine-"), "{moved}");
    assert!(
        std::path::Path::new(moved).is_dir(),
        "the old database is kept for inspection"
    );
    assert_eq!(status["state"], "storage_fault");
    let (_, metrics) = tb.get("/metrics").await;
    assert!(metrics.contains("bbedge_store_quarantined 1"), "{metrics}");
    tb.stop().await;
}

#[tokio::test]
async fn a_state_dir_that_cannot_be_created_fails_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    let out = binary::command()
        .args(["run"])
        .current_dir(dir.path())
        .env(
            "BBEDGE_DAEMON__STATE_DIR",
            file.join("state").to_str().unwrap(),
        )
        .env("BBEDGE_HEALTH__PORT", "0")
        .env("BBEDGE_REALTIME__PORT", "0")
        .env("BBEDGE_LOG_FORMAT", "json")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(77));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("bbedge: cannot start [STORE_UNWRITABLE]"),
        "{stderr}"
    );
    assert!(
        last.contains("StateDirectory"),
        "says how to fix it: {last}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn a_health_port_in_use_fails_naming_the_key_to_change() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let loaded = support::test_config(dir.path(), &[("health.port", &port)]);
    let err = bbedge::app::App::bind(loaded)
        .await
        .err()
        .expect("bind fails");
    use bbedge::error::ErrorCode;
    assert_eq!(err.code(), "ADDRESS_IN_USE");
    assert!(err.to_string().contains("[health] port"), "{err}");
    assert_eq!(err.exit_code(), 71);
}

#[tokio::test]
async fn bbedge_status_prints_a_summary_of_the_running_daemon() {
    let tb = TestBox::start(&[]).await;
    let out = binary::command()
        .args(["status", "--url", &tb.health_url()])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("state:    unpaired\n"), "{text}");
    assert!(
        text.contains(&format!("version:  {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    tb.stop().await;
    let out = binary::command()
        .args(["status", "--url", "http://127.0.0.1:9"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is it running?"));
}

#[tokio::test]
async fn systemd_hears_ready_status_watchdog_and_stopping_in_order() {
    use tokio::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let env = vec![
        ("NOTIFY_SOCKET".to_owned(), sock_path.display().to_string()),
        ("WATCHDOG_USEC".to_owned(), "200000".to_owned()),
        ("BBEDGE_HEALTH__PORT".to_owned(), "0".to_owned()),
        ("BBEDGE_REALTIME__PORT".to_owned(), "0".to_owned()),
        ("BBEDGE_REALTIME__HOST".to_owned(), "127.0.0.1".to_owned()),
        ("BBEDGE_STATUS_LED__BACKEND".to_owned(), "sim".to_owned()),
        ("BBEDGE_PAIRING__BOOT_FILE".to_owned(), "\"\"".to_owned()),
    ];
    let mut d = binary::spawn_keep_notify(dir.path(), &["run"], &env);
    let mut seen: Vec<String> = Vec::new();
    recv_until(&sock, &mut seen, "READY=1").await;
    recv_until(&sock, &mut seen, "WATCHDOG=1").await;
    // The status task mirrors every state change; it runs beside READY, in any order.
    recv_until(&sock, &mut seen, "STATUS=state: ").await;
    d.signal("TERM");
    recv_until(&sock, &mut seen, "STOPPING=1").await;
    assert_eq!(d.exit_code().await, 0);
    let ready = seen.iter().position(|m| m.contains("READY=1")).unwrap();
    let stopping = seen.iter().position(|m| m.contains("STOPPING=1")).unwrap();
    assert!(ready < stopping, "{seen:?}");
}

/// Reads notify datagrams into `seen` until one contains `want`.
async fn recv_until(sock: &tokio::net::UnixDatagram, seen: &mut Vec<String>, want: &str) {
    let mut buf = vec![0u8; 4096];
    while !seen.iter().any(|m| m.contains(want)) {
        let n = tokio::time::timeout(binary::LINE_TIMEOUT, sock.recv(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {want}; saw {seen:?}"))
            .unwrap();
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
}
