//! Pairing against the fake central server on loopback: real sockets, real TLS with a
//! test CA, the real binary for the CLI, the in-process app for the daemon side.

mod support;

use bbedge::pairing::expiry::{ExpiryMonitor, ManualClock, TokenState};
use bbedge::pairing::failure::exit;
use bbedge::pairing::register::{self, Inputs, Settings};
use bbedge::pairing::status::Report;
use bbedge::pairing::{credentials, key, CredentialStore, Credentials, PairError};
use bbedge::secret::Secret;
use bbedge::signal::StatusHub;
use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::{Signer, Verifier, VerifyingKey};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use support::fake_central::register::{Enrollment, Failure, FakeCentral, Tls};
use support::logs::LogCapture;
use support::{binary, TestBox};

fn device() -> bbedge::config::Device {
    bbedge::config::Device {
        uuid: String::new(),
        name: "Council chamber".into(),
        room_location: "Room 101".into(),
    }
}

fn settings(dir: &Path, ca: Option<&Path>, timeout: u64) -> Settings {
    Settings {
        credentials: dir.join("credentials.toml"),
        key: dir.join("device-key.pem"),
        extra_ca_file: ca.map(|p| p.display().to_string()).unwrap_or_default(),
        allow_insecure: false,
        timeout: Duration::from_secs(timeout),
    }
}

fn inputs(server: &str, e: &Enrollment) -> Inputs {
    Inputs {
        server: server.into(),
        device_uuid: e.device_uuid.clone(),
        code: Secret::new(e.code.clone()),
        ..Inputs::default()
    }
}

/// `i` with another enrollment code.
fn with_code(i: &Inputs, code: impl Into<String>) -> Inputs {
    Inputs {
        code: Secret::new(code.into()),
        ..i.clone()
    }
}

async fn try_pair(i: &Inputs, s: &Settings) -> Result<Credentials, PairError> {
    let req = i.check(&device(), s.allow_insecure)?;
    register::pair(&req, s).await
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn pairing_over_tls_stores_private_files_and_a_key_central_can_verify() {
    let fake = FakeCentral::start(Tls::Trusted).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = fake.write_ca(dir.path());
    let e = fake.enroll();
    let s = settings(dir.path(), Some(&ca), 10);
    // Typed in lower case without hyphens: normalised before sending (§a.3).
    let mut i = inputs(&fake.url(), &e);
    i.code = Secret::new(e.code.replace('-', "").to_lowercase());
    let creds = try_pair(&i, &s).await.expect("pairs");

    assert_eq!(mode(&s.credentials), 0o600);
    assert_eq!(mode(&s.key), 0o600);
    let stored = credentials::load(&s.credentials).unwrap().unwrap();
    assert_eq!(stored, creds);
    let dev = fake.device(&e.device_uuid).expect("registered");
    assert_eq!(stored.device_id, dev.id);
    assert_eq!(stored.device_uuid, e.device_uuid);
    assert_eq!(stored.token.expose(), fake.issued_tokens()[0]);
    assert!(fake.verify_token(stored.token.expose()).is_ok());
    let left = stored
        .seconds_left(time::OffsetDateTime::now_utc())
        .unwrap();
    assert!((7 * 86_400 - 60..=7 * 86_400).contains(&left), "{left}");
    let port = fake.addr().port();
    assert_eq!(
        stored.realtime_url,
        format!("wss://localhost:{port}/realtime")
    );
    assert!(stored.key_registered);

    let body = &fake.bodies()[0];
    assert_eq!(body["enrollmentCode"], e.code.as_str());
    assert_eq!(body["name"], "Council chamber");
    assert_eq!(body["roomLocation"], "Room 101");

    // The key central holds verifies what the stored key signs.
    let signing = key::load(&s.key).unwrap().unwrap();
    let registered = fake.registered_public_key(&e.device_uuid).unwrap();
    let vk = VerifyingKey::from_public_key_pem(&registered).unwrap();
    let sig = signing.sign(b"session.manifest");
    assert!(vk.verify(b"session.manifest", &sig).is_ok());

    // Re-pairing with a fresh code keeps the key and replaces the token.
    let code = fake.reissue(&e.device_uuid);
    let again = Inputs {
        code: Secret::new(code),
        ..inputs(&fake.url(), &e)
    };
    let creds2 = try_pair(&again, &s).await.expect("re-pairs");
    assert_ne!(creds2.token, creds.token);
    assert_eq!(
        fake.registered_public_key(&e.device_uuid).unwrap(),
        registered
    );
    assert_eq!(
        key::load(&s.key).unwrap().unwrap().to_bytes(),
        signing.to_bytes()
    );
}

/// One case of the answer table.
struct Case {
    name: &'static str,
    code: &'static str,
    exit: i32,
    says: &'static str,
}

async fn expect_failure(r: Result<Credentials, PairError>, case: &Case, secret: &str) {
    let err = r.expect_err(case.name);
    let text = err.to_string();
    use bbedge::error::ErrorCode;
    assert_eq!(err.code(), case.code, "{}: {text}", case.name);
    assert_eq!(err.exit_code(), case.exit, "{}: {text}", case.name);
    assert!(text.contains(case.says), "{}: {text}", case.name);
    assert!(
        !text.contains(secret),
        "{}: the code leaked: {text}",
        case.name
    );
    assert_eq!(
        text.matches(". ").count(),
        0,
        "{}: one sentence: {text}",
        case.name
    );
}

#[tokio::test]
async fn every_server_answer_gives_one_sentence_and_its_own_exit_code() {
    let fake = FakeCentral::start(Tls::Plain).await;
    fake.set_rate_limits(false);
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), None, 1);
    let e = fake.enroll();
    let url = fake.url();
    let ok = inputs(&url, &e);

    let cases = [
        (
            Failure::Validation,
            Case {
                name: "400 validation",
                code: "PAIR_REQUEST_REJECTED",
                exit: exit::REQUEST_REJECTED,
                says: "enrollmentCode: Invalid value",
            },
        ),
        (
            Failure::RejectKey,
            Case {
                name: "400 key",
                code: "PAIR_KEY_REJECTED",
                exit: exit::KEY_REJECTED,
                says: "public key",
            },
        ),
        (
            Failure::Status(500),
            Case {
                name: "500",
                code: "PAIR_SERVER_ERROR",
                exit: exit::SERVER_ERROR,
                says: "HTTP 500",
            },
        ),
        (
            Failure::Status(503),
            Case {
                name: "503",
                code: "PAIR_SERVER_ERROR",
                exit: exit::SERVER_ERROR,
                says: "HTTP 503",
            },
        ),
        (
            Failure::Drop,
            Case {
                name: "dropped",
                code: "PAIR_NETWORK_FAILED",
                exit: exit::NETWORK,
                says: "failed before the server answered",
            },
        ),
        (
            Failure::Hang,
            Case {
                name: "timeout",
                code: "PAIR_TIMEOUT",
                exit: exit::TIMEOUT,
                says: "did not answer within 1 s",
            },
        ),
    ];
    for (failure, case) in &cases {
        fake.set_failure(*failure);
        expect_failure(try_pair(&ok, &s).await, case, &e.code).await;
    }
    fake.set_failure(Failure::None);

    // 422 for every code failure, all alike (§a.3).
    let refused = Case {
        name: "422",
        code: "PAIR_CODE_REFUSED",
        exit: exit::CODE_REFUSED,
        says: "ask the operator for a fresh code",
    };
    let unknown = with_code(&ok, "ABCD-EFGH-JK23");
    expect_failure(try_pair(&unknown, &s).await, &refused, "ABCD-EFGH-JK23").await;
    let other = fake.enroll();
    let wrong_uuid = with_code(&ok, other.code.clone());
    expect_failure(try_pair(&wrong_uuid, &s).await, &refused, &other.code).await;
    fake.advance(Duration::from_secs(16 * 60));
    expect_failure(try_pair(&ok, &s).await, &refused, &e.code).await;
    let fresh = with_code(&ok, fake.reissue(&e.device_uuid));
    try_pair(&fresh, &s).await.expect("a fresh code pairs");
    let used = Case {
        name: "422 used",
        ..refused
    };
    expect_failure(try_pair(&fresh, &s).await, &used, fresh.code.expose()).await;

    // 429 after 3 attempts with one code string, with Retry-After in the sentence.
    fake.set_rate_limits(true);
    let limited = Case {
        name: "429",
        code: "RATE_LIMIT_EXCEEDED",
        exit: exit::RATE_LIMITED,
        says: "wait 900 seconds",
    };
    let same = with_code(&ok, "WXYZ-2345-6789");
    for _ in 0..3 {
        assert!(matches!(
            try_pair(&same, &s).await,
            Err(PairError::CodeRefused)
        ));
    }
    let r = try_pair(&same, &s).await;
    let Err(PairError::RateLimited { retry_after, .. }) = &r else {
        panic!("{r:?}")
    };
    assert_eq!(
        bbedge::pairing::failure::Retry::After(*retry_after),
        r.as_ref().unwrap_err().retry()
    );
    expect_failure(r, &limited, "WXYZ-2345-6789").await;
    // 5 attempts per IP per window, whatever the code: the 4 above plus one more.
    let other_code = with_code(&ok, "MNPQ-RSTU-VWXY");
    assert!(matches!(
        try_pair(&other_code, &s).await,
        Err(PairError::CodeRefused)
    ));
    let r = try_pair(&other_code, &s).await;
    assert!(matches!(r, Err(PairError::RateLimited { .. })), "{r:?}");
    fake.advance(Duration::from_secs(15 * 60));
    assert!(
        matches!(try_pair(&other_code, &s).await, Err(PairError::CodeRefused)),
        "a new window"
    );

    // Not the registration endpoint: an unexpected answer.
    let wrong_path = Inputs {
        server: format!("{url}/nope"),
        ..fresh.clone()
    };
    let unexpected = Case {
        name: "404",
        code: "PAIR_UNEXPECTED_ANSWER",
        exit: exit::UNEXPECTED,
        says: "HTTP 404",
    };
    fake.set_rate_limits(false);
    expect_failure(
        try_pair(&wrong_path, &s).await,
        &unexpected,
        fresh.code.expose(),
    )
    .await;
}

#[tokio::test]
async fn network_failures_and_local_refusals_have_their_own_sentences() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), None, 5);
    let e = Enrollment {
        device_uuid: uuid::Uuid::new_v4().to_string(),
        code: "ABCD-EFGH-JK23".into(),
    };
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cases = [
        (
            format!("http://127.0.0.1:{closed}"),
            Case {
                name: "refused",
                code: "PAIR_CONNECTION_REFUSED",
                exit: exit::REFUSED,
                says: "refused",
            },
        ),
        (
            "https://box-pairing-test.invalid".into(),
            Case {
                name: "dns",
                code: "PAIR_DNS_FAILED",
                exit: exit::DNS,
                says: "Could not resolve the host name box-pairing-test.invalid",
            },
        ),
        (
            "ftp://cp.example.org".into(),
            Case {
                name: "scheme",
                code: "PAIR_INVALID_INPUT",
                exit: exit::INVALID_INPUT,
                says: "https://",
            },
        ),
    ];
    for (server, case) in &cases {
        expect_failure(
            try_pair(
                &Inputs {
                    server: server.clone(),
                    ..inputs("", &e)
                },
                &s,
            )
            .await,
            case,
            &e.code,
        )
        .await;
    }
    // Local refusals: nothing is sent and no file is written.
    let local = tempfile::tempdir().unwrap();
    let s = settings(local.path(), None, 5);
    let bad = Inputs {
        code: Secret::new("ABCD-EFGH-JK2O"),
        ..inputs("https://cp.example.org", &e)
    };
    let case = Case {
        name: "code format",
        code: "PAIR_INVALID_INPUT",
        exit: exit::INVALID_INPUT,
        says: "characters that codes never use",
    };
    expect_failure(try_pair(&bad, &s).await, &case, "JK2O").await;
    let garbage_ca = dir.path().join("ca.pem");
    std::fs::write(&garbage_ca, "not a certificate").unwrap();
    let with_ca = settings(local.path(), Some(&garbage_ca), 5);
    let case = Case {
        name: "ca file",
        code: "PAIR_CA_FILE_INVALID",
        exit: exit::CONFIG,
        says: "extra CA file",
    };
    expect_failure(
        try_pair(&inputs("https://cp.example.org", &e), &with_ca).await,
        &case,
        &e.code,
    )
    .await;
    let clear = Inputs {
        server: "http://192.0.2.10".into(),
        ..inputs("", &e)
    };
    let case = Case {
        name: "cleartext",
        code: "PAIR_INSECURE_URL",
        exit: exit::CONFIG,
        says: "Refusing to pair over cleartext http:// with 192.0.2.10",
    };
    expect_failure(try_pair(&clear, &s).await, &case, &e.code).await;
    assert!(
        !s.key.exists() && !s.credentials.exists(),
        "nothing written"
    );
}

#[tokio::test]
async fn a_server_with_a_certificate_from_another_ca_fails_with_the_tls_sentence() {
    let fake = FakeCentral::start(Tls::UntrustedIssuer).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = fake.write_ca(dir.path());
    let e = fake.enroll();
    let case = Case {
        name: "tls",
        code: "PAIR_TLS_FAILED",
        exit: exit::TLS,
        says: "not signed by an authority this box trusts",
    };
    let r = try_pair(
        &inputs(&fake.url(), &e),
        &settings(dir.path(), Some(&ca), 5),
    )
    .await;
    expect_failure(r, &case, &e.code).await;
    assert_eq!(
        fake.attempts(),
        0,
        "no request crossed the untrusted connection"
    );
    // Without the extra CA, a private CA is not trusted either (WebPKI roots only).
    let r = try_pair(&inputs(&fake.url(), &e), &settings(dir.path(), None, 5)).await;
    expect_failure(r, &case, &e.code).await;
}

/// `bbedge [before…] pair --server S --device-uuid U --code C [after…]`.
fn pair_args<'a>(
    before: &[&'a str],
    server: &'a str,
    uuid: &'a str,
    code: &'a str,
    after: &[&'a str],
) -> Vec<&'a str> {
    let mut v = before.to_vec();
    v.extend([
        "pair",
        "--server",
        server,
        "--device-uuid",
        uuid,
        "--code",
        code,
    ]);
    v.extend_from_slice(after);
    v
}

/// Runs the real binary to completion; returns exit code, stdout, stderr.
async fn run_bbedge(state: &Path, args: &[&str], env: &[(&str, String)]) -> (i32, String, String) {
    run_bbedge_stdin(state, args, env, "").await
}

/// Like [`run_bbedge`], with `input` on stdin.
async fn run_bbedge_stdin(
    state: &Path,
    args: &[&str],
    env: &[(&str, String)],
    input: &str,
) -> (i32, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut cmd = binary::command();
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env(
            "BBEDGE_DAEMON__STATE_DIR",
            format!("{:?}", state.display().to_string()),
        )
        .env("BBEDGE_PAIRING__BOOT_FILE", "\"\"")
        .envs(env.iter().map(|(k, v)| (*k, v.clone())))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("bbedge runs");
    let mut stdin = child.stdin.take().expect("stdin piped");
    stdin
        .write_all(input.as_bytes())
        .await
        .expect("write stdin");
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("bbedge finishes")
        .expect("bbedge output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_binary_pairs_at_trace_level_without_printing_the_code_or_the_token() {
    let fake = FakeCentral::start(Tls::Trusted).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = fake.write_ca(dir.path());
    let env = [(
        "BBEDGE_UPSTREAM__EXTRA_CA_FILE",
        format!("{:?}", ca.display().to_string()),
    )];
    let state = dir.path().join("state");

    // A wrong code first: 422, exit 82, the sentence, and no code anywhere.
    let e = fake.enroll();
    let wrong = "WXYZ-2345-6789";
    let (code, out, err) = run_bbedge(
        &state,
        &pair_args(
            &["-vv", "--log-format", "json"],
            &fake.url(),
            &e.device_uuid,
            wrong,
            &[],
        ),
        &env,
    )
    .await;
    assert_eq!(code, exit::CODE_REFUSED, "{out}{err}");
    assert!(
        err.contains("The server refused the enrollment code")
            && err.contains("[PAIR_CODE_REFUSED]"),
        "{err}"
    );
    for text in [&out, &err] {
        assert!(
            !text.contains(wrong) && !text.contains("WXYZ"),
            "code leaked: {text}"
        );
    }

    let (code, out, err) = run_bbedge(
        &state,
        &pair_args(
            &["-vv", "--log-format", "json"],
            &fake.url(),
            &e.device_uuid,
            &e.code,
            &["--name", "Salle du conseil"],
        ),
        &env,
    )
    .await;
    assert_eq!(code, exit::PAIRED, "{out}{err}");
    assert!(
        out.contains("Paired with") && out.contains("Salle du conseil"),
        "{out}"
    );
    assert!(out.contains("The daemon is not running"), "{out}");
    assert!(
        err.contains("registering with central"),
        "trace logs were captured: {err}"
    );
    let token = fake.issued_tokens().pop().expect("a token");
    let claims = token.split('.').next().unwrap().to_owned();
    for text in [&out, &err] {
        assert!(
            !text.contains(&e.code) && !text.contains(&e.code.replace('-', "")),
            "code leaked: {text}"
        );
        assert!(!text.contains(&claims), "token leaked: {text}");
    }
    let stored = std::fs::read_to_string(state.join("credentials.toml")).unwrap();
    assert!(
        stored.contains(&token),
        "the token is only in the 0600 file"
    );
    assert_eq!(mode(&state.join("credentials.toml")), 0o600);

    // Exit 64 for a malformed code, without echoing it; unpair removes both files.
    let (code, _, err) = run_bbedge(
        &state,
        &pair_args(&[], &fake.url(), &e.device_uuid, "QQQQ-QQQQ-QQQ1", &[]),
        &env,
    )
    .await;
    assert_eq!(code, exit::INVALID_INPUT, "{err}");
    assert!(!err.contains("QQQ"), "{err}");
    let (code, out, _) = run_bbedge(&state, &["unpair"], &env).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("removed the credentials and the signing key"),
        "{out}"
    );
    assert!(!state.join("credentials.toml").exists() && !state.join("device-key.pem").exists());
}

#[tokio::test]
async fn pairing_and_unpairing_while_the_daemon_runs_take_effect_without_a_restart() {
    let fake = FakeCentral::start(Tls::Plain).await;
    let tb = TestBox::start(&[]).await;
    let status = tb.status().await;
    assert_eq!(status["pairing"]["paired"], false);
    assert_eq!(status["pairing"]["boot_file"]["state"], "disabled");

    let e = fake.enroll();
    // `--code -`: the code comes from stdin, never from the process's arguments.
    let (code, out, err) = run_bbedge_stdin(
        tb.dir.path(),
        &pair_args(&[], &fake.url(), &e.device_uuid, "-", &[]),
        &[],
        &format!("{}\n", e.code),
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("The running daemon picked up the change."),
        "{out}"
    );
    tb.wait_facts("paired", |f| f.paired).await;
    let p = &tb.status().await["pairing"];
    assert_eq!(p["device_uuid"], e.device_uuid.as_str());
    assert_eq!(
        p["device_id"],
        fake.device(&e.device_uuid).unwrap().id.as_str()
    );
    assert_eq!(p["server"], fake.url().as_str());
    assert_eq!(p["token_state"], "valid");
    assert_eq!(p["token"]["days_left"], 6, "just under 7 days: {p}");
    assert!(
        !p.to_string().contains(&fake.issued_tokens()[0]),
        "no token on /status"
    );

    // A failed attempt shows on /status as the last pairing error.
    let (code, _, _) = run_bbedge(
        tb.dir.path(),
        &pair_args(&[], &fake.url(), &e.device_uuid, "WXYZ-2345-6789", &[]),
        &[],
    )
    .await;
    assert_eq!(code, exit::CODE_REFUSED);
    let p = &tb.status().await["pairing"];
    assert_eq!(p["last_error"]["code"], "PAIR_CODE_REFUSED", "{p}");
    assert_eq!(p["last_error"]["source"], "cli");
    assert!(!p.to_string().contains("WXYZ"));

    let (code, out, _) = run_bbedge(tb.dir.path(), &["unpair"], &[]).await;
    assert_eq!(code, 0, "{out}");
    tb.wait_facts("unpaired", |f| !f.paired).await;
    assert_eq!(tb.status().await["state"], "unpaired");
    tb.stop().await;
}

fn write_boot(dir: &Path, server: &str, uuid: &str, code: &str) -> std::path::PathBuf {
    let p = dir.join("bbedge-pair.toml");
    let text = format!("# dropped by the installer\nserver = \"{server}\"\ndevice_uuid = \"{uuid}\"\ncode = \"{code}\"\nname = \"Council chamber\"\n");
    std::fs::write(&p, text).unwrap();
    p
}

fn boot_config(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

#[tokio::test]
async fn a_boot_file_pairs_in_the_background_and_loses_its_code() {
    let fake = FakeCentral::start(Tls::Plain).await;
    let boot_dir = tempfile::tempdir().unwrap();
    let e = fake.enroll();
    let boot = write_boot(boot_dir.path(), &fake.url(), &e.device_uuid, &e.code);
    let cfg = boot_config(&boot);
    let tb = TestBox::start(&[("pairing.boot_file", &cfg)]).await;
    tb.wait_facts("paired", |f| f.paired && !f.pairing).await;

    let text = std::fs::read_to_string(&boot).unwrap();
    assert!(
        !text.contains(&e.code) && !text.contains("code ="),
        "{text}"
    );
    assert!(
        text.contains(&e.device_uuid) && text.contains("Council chamber"),
        "the rest stays: {text}"
    );
    assert!(
        text.starts_with("# bbedge removed the enrollment code"),
        "{text}"
    );
    let p = &tb.status().await["pairing"];
    assert_eq!(p["boot_file"]["state"], "paired", "{p}");
    assert_eq!(p["device_uuid"], e.device_uuid.as_str());
    assert_eq!(fake.attempts(), 1);
    let dir = tb.stop().await;

    // Next start: the file has no code, nothing is sent.
    let tb = TestBox::start_in(dir, &[("pairing.boot_file", &cfg)]).await;
    let p = &tb.status().await["pairing"];
    assert_eq!(p["paired"], true);
    tb.stop().await;
    assert_eq!(fake.attempts(), 1);
}

#[tokio::test]
async fn a_refused_boot_code_is_never_retried_and_asks_for_a_person() {
    let fake = FakeCentral::start(Tls::Plain).await;
    let boot_dir = tempfile::tempdir().unwrap();
    let e = fake.enroll();
    let wrong = "WXYZ-2345-6789";
    let boot = write_boot(boot_dir.path(), &fake.url(), &e.device_uuid, wrong);
    let cfg = boot_config(&boot);
    let extra = [
        ("pairing.boot_file", cfg.as_str()),
        ("pairing.retry_initial", "1"),
        ("pairing.retry_max", "1"),
    ];
    let (logs, _guard) = LogCapture::install();
    let tb = TestBox::start(&extra).await;
    tb.wait_facts("needs_pairing", |f| f.needs_pairing && !f.pairing)
        .await;
    let text = logs.text();
    assert!(
        text.contains("boot-file pairing failed") && text.contains("PAIR_CODE_REFUSED"),
        "{text}"
    );
    assert!(!text.contains(wrong), "the code reached a log line: {text}");
    let status = tb.status().await;
    assert_eq!(status["state"], "needs_pairing");
    let p = &status["pairing"];
    assert_eq!(p["boot_file"]["state"], "failed", "{p}");
    assert_eq!(p["last_error"]["code"], "PAIR_CODE_REFUSED");
    assert_eq!(p["last_error"]["source"], "boot_file");
    assert!(!status.to_string().contains("WXYZ"));
    assert!(
        !std::fs::read_to_string(&boot).unwrap().contains(wrong),
        "the dead code is removed"
    );
    assert_eq!(fake.attempts(), 1);
    let dir = tb.stop().await;

    // A boot partition that could not be rewritten still holds the code: the spent-code
    // record stops a second attempt at the next start.
    write_boot(boot_dir.path(), &fake.url(), &e.device_uuid, wrong);
    let tb = TestBox::start_in(dir, &extra).await;
    let p = &tb.status().await["pairing"];
    assert_eq!(p["boot_file"]["state"], "already_used", "{p}");
    tb.stop().await;
    assert_eq!(fake.attempts(), 1, "422 is final: never retried");
}

#[tokio::test]
async fn a_boot_file_retries_after_a_server_error_then_pairs() {
    let fake = FakeCentral::start(Tls::Plain).await;
    fake.set_failure(Failure::Status(502));
    let (tb, _e, _boot_dir, _boot) = boot_box_waiting_to_retry(&fake, "1").await;
    fake.set_failure(Failure::None);
    tb.wait_facts("paired", |f| f.paired && !f.pairing).await;
    assert_eq!(fake.attempts(), 2);
    let p = &tb.status().await["pairing"];
    assert_eq!(p["boot_file"]["state"], "paired");
    assert_eq!(p["boot_file"]["attempts"], 2);
    assert_eq!(p["last_error"], Value::Null, "a success clears the error");
    tb.stop().await;
}

fn creds_expiring_at(t: time::OffsetDateTime) -> Credentials {
    Credentials {
        server: "https://cp.example.org".into(),
        realtime_url: "wss://cp.example.org/realtime".into(),
        device_id: "5b2e9d71-03c4-4a8f-b6e2-7f1a9c3d4e58".into(),
        device_uuid: "8c0f4e2a-6b1d-4f3a-9e57-2d4c8b1a0f63".into(),
        token: Secret::new("claims.mac"),
        expires_at: bbedge::protocol::frame::format_rfc3339(t),
        paired_at: bbedge::protocol::frame::format_rfc3339(t - time::Duration::days(7)),
        name: "Council chamber".into(),
        key_registered: true,
        device_status: None,
    }
}

#[tokio::test]
async fn the_expiry_warning_is_logged_once_an_hour_then_needs_pairing_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials.toml");
    let t0 = time::macros::datetime!(2026-06-20 19:00:00 UTC);
    credentials::save(&path, &creds_expiring_at(t0 + time::Duration::hours(30))).unwrap();
    let (store, _) = CredentialStore::open(path);
    let hub = StatusHub::new();
    let report = Report::default();
    let clock = ManualClock::new(t0);
    let m = ExpiryMonitor::new(
        store,
        hub.clone(),
        report.clone(),
        Arc::new(clock.clone()),
        Duration::from_secs(24 * 3600),
    );

    assert_eq!(m.check_now(), TokenState::Valid);
    assert_eq!(report.warning(), None);
    clock.advance(Duration::from_secs(7 * 3600)); // 23 h left
    for _ in 0..10 {
        assert_eq!(m.check_now(), TokenState::Expiring);
    }
    assert_eq!(report.warnings_logged(), 1, "not once per check");
    assert!(
        report.warning().unwrap().contains("expires in 23 h"),
        "{:?}",
        report.warning()
    );
    clock.advance(Duration::from_secs(3599));
    m.check_now();
    assert_eq!(report.warnings_logged(), 1);
    clock.advance(Duration::from_secs(1));
    m.check_now();
    assert_eq!(report.warnings_logged(), 2, "again after an hour");
    assert!(!hub.facts().needs_pairing);
    clock.advance(Duration::from_secs(22 * 3600));
    assert_eq!(m.check_now(), TokenState::Expired);
    assert!(hub.facts().needs_pairing);
    assert_eq!(
        report.warnings_logged(),
        3,
        "expiry itself is logged at once"
    );
    assert!(report.warning().unwrap().contains("expired"));
}

#[tokio::test]
async fn an_expired_box_warns_on_status_and_metrics_and_a_fresh_pair_recovers() {
    let fake = FakeCentral::start(Tls::Plain).await;
    let dir = tempfile::tempdir().unwrap();
    let now = time::OffsetDateTime::now_utc();
    credentials::save(
        &dir.path().join("credentials.toml"),
        &creds_expiring_at(now - time::Duration::hours(1)),
    )
    .unwrap();
    let tb = TestBox::start_in(dir, &[]).await;
    tb.wait_facts("needs_pairing", |f| f.needs_pairing).await;
    let status = tb.status().await;
    assert_eq!(status["state"], "needs_pairing");
    assert_eq!(status["pairing"]["token_state"], "expired");
    assert!(status["pairing"]["warning"]
        .as_str()
        .unwrap()
        .contains("expired"));
    let (_, metrics) = tb.get("/metrics").await;
    assert!(metrics.contains("bbedge_token_expiring 1"), "{metrics}");
    let line = metrics
        .lines()
        .find(|l| l.starts_with("bbedge_token_expiry_timestamp_seconds "))
        .unwrap();
    let at: i64 = line.split(' ').nth(1).unwrap().parse().unwrap();
    let secs = at - time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((-3700..=-3600).contains(&secs), "{line}");

    let e = fake.enroll();
    let (code, out, err) = run_bbedge(
        tb.dir.path(),
        &pair_args(&[], &fake.url(), &e.device_uuid, &e.code, &[]),
        &[],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    tb.wait_facts("recovered", |f| !f.needs_pairing).await;
    let status = tb.status().await;
    assert_eq!(status["pairing"]["token_state"], "valid");
    assert_eq!(status["pairing"]["warning"], Value::Null);
    assert_ne!(status["state"], "needs_pairing");
    let (_, metrics) = tb.get("/metrics").await;
    assert!(metrics.contains("bbedge_token_expiring 0"), "{metrics}");
    tb.stop().await;
}

#[tokio::test]
async fn the_fake_matches_codes_the_way_central_does() {
    let fake = FakeCentral::start(Tls::Plain).await;
    fake.set_rate_limits(false);
    let url = format!("{}/api/v1/broadcast-box/devices", fake.url());
    let post = |body: Value| {
        let url = url.clone();
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let e = fake.enroll();
    let body = |code: &str| serde_json::json!({"deviceUuid": e.device_uuid, "enrollmentCode": code, "name": "Box"});
    // Hyphens are significant; case and surrounding spaces are not (§a.3).
    assert_eq!(post(body(&e.code.replace('-', ""))).await.0, 422);
    let (status, v) =
        post(serde_json::json!({"deviceUuid": "nope", "enrollmentCode": "", "publicKey": "x"}))
            .await;
    assert_eq!(status, 400);
    let paths: Vec<&str> = v["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["path"].as_str())
        .collect();
    assert_eq!(paths, ["deviceUuid", "enrollmentCode", "name"]);
    let mut bad_key = body(&e.code);
    bad_key["publicKey"] = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into();
    let (status, v) = post(bad_key).await;
    assert_eq!(
        (status, v["error"]["message"].as_str()),
        (
            400,
            Some("publicKey must be a PEM (SPKI) Ed25519 public key")
        )
    );
    let (status, v) = post(body(&format!("  {}  ", e.code.to_lowercase()))).await;
    assert_eq!(status, 201, "{v}");
    let token = v["credentials"]["token"].as_str().unwrap();
    let claims = fake.verify_token(token).unwrap();
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        7 * 86_400
    );
    assert_eq!(claims["deviceId"], v["device"]["id"]);
    assert_eq!(post(body(&e.code)).await.0, 422, "single use");
    fake.advance(Duration::from_secs(7 * 86_400 + 1));
    assert_eq!(fake.verify_token(token), Err("expired"));
}

#[tokio::test]
async fn a_manual_pair_while_the_boot_file_waits_to_retry_ends_the_boot_attempts() {
    let fake = FakeCentral::start(Tls::Plain).await;
    fake.set_failure(Failure::Status(503));
    let (tb, e, _boot_dir, boot) = boot_box_waiting_to_retry(&fake, "3600").await;
    fake.set_failure(Failure::None);
    let fresh = fake.reissue(&e.device_uuid);
    let (code, out, err) = run_bbedge(
        tb.dir.path(),
        &pair_args(&[], &fake.url(), &e.device_uuid, &fresh, &[]),
        &[],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let facts = tb
        .wait_facts("paired, boot attempts over", |f| f.paired && !f.pairing)
        .await;
    assert!(!facts.needs_pairing);
    let p = &tb.status().await["pairing"];
    assert_eq!(p["boot_file"]["state"], "superseded", "{p}");
    assert!(!std::fs::read_to_string(&boot).unwrap().contains(&e.code));
    assert_eq!(fake.attempts(), 2, "one boot attempt, one manual pair");
    tb.stop().await;
}

/// A box pairing from a boot file against `fake` (told to fail beforehand), after its
/// first attempt failed and while it waits `retry` seconds to try again.
async fn boot_box_waiting_to_retry(
    fake: &FakeCentral,
    retry: &str,
) -> (
    TestBox,
    support::fake_central::register::Enrollment,
    tempfile::TempDir,
    std::path::PathBuf,
) {
    let boot_dir = tempfile::tempdir().unwrap();
    let e = fake.enroll();
    let boot = write_boot(boot_dir.path(), &fake.url(), &e.device_uuid, &e.code);
    let cfg = boot_config(&boot);
    let tb = TestBox::start(&[
        ("pairing.boot_file", &cfg),
        ("pairing.retry_initial", retry),
        ("pairing.retry_max", retry),
    ])
    .await;
    fake.wait_attempts(1).await;
    tb.wait_facts("pairing", |f| f.pairing).await;
    (tb, e, boot_dir, boot)
}
