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
