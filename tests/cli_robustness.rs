//! No input makes the binary panic (issue 11, item 5), and what restarting cannot fix
//! stops it for good with the reason on the LED (item 7). Every test runs the real
//! binary: every subcommand with a variable that is not UTF-8 in its environment, and
//! with a stdout whose reader is gone (EPIPE: `bbedge … | true`).

mod support;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use support::binary;
use support::fake_central::register::{FakeCentral, Tls};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Exit codes from docs (README "Exit codes").
const OK: i32 = 0;
const USAGE: i32 = 64;
const UNAVAILABLE: i32 = 69;
const IOERR: i32 = 74;
const CONFIG: i32 = 78;

/// How the child's stdout is connected.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Out {
    /// Read by the test.
    Piped,
    /// A pipe whose read end was closed before the child started: every write is EPIPE.
    Closed,
}

struct Run {
    code: i32,
    out: String,
    err: String,
}

/// A foreign variable whose value is not UTF-8, one whose name is not, and the
/// foreign variables bbedge or its crates do read (tokio panics on a non-UTF-8
/// TOKIO_WORKER_THREADS unless the worker count is set; RUST_LOG; the proxy variables).
fn foreign_non_utf8() -> Vec<(OsString, OsString)> {
    let bad = OsStr::from_bytes(b"\xff\xfe").to_owned();
    vec![
        ("FOO".into(), bad.clone()),
        ("TOKIO_WORKER_THREADS".into(), bad.clone()),
        ("RUST_LOG".into(), bad.clone()),
        ("HTTP_PROXY".into(), bad.clone()),
        ("NO_PROXY".into(), bad.clone()),
        ("STATE_DIRECTORY".into(), bad.clone()),
        (
            OsStr::from_bytes(b"BAR_\xff").to_owned(),
            OsStr::from_bytes(b"x").to_owned(),
        ),
    ]
}

fn quoted(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// Everything on 127.0.0.1 port 0, state in `state`, the simulated LED.
fn base_env(state: &Path) -> Vec<(OsString, OsString)> {
    [
        ("BBEDGE_DAEMON__STATE_DIR", quoted(state)),
        ("BBEDGE_HEALTH__PORT", "0".into()),
        ("BBEDGE_REALTIME__PORT", "0".into()),
        ("BBEDGE_REALTIME__HOST", "\"127.0.0.1\"".into()),
        ("BBEDGE_STATUS_LED__BACKEND", "sim".into()),
        ("BBEDGE_PAIRING__BOOT_FILE", "\"\"".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v.into()))
    .collect()
}

/// The write end of a pipe whose reader has already exited: `bbedge … | true`, with
/// `true` gone before bbedge writes, so every write is EPIPE. (`std::io::pipe` is
/// newer than the MSRV; this needs no unsafe.)
fn closed_pipe() -> Stdio {
    let mut reader = std::process::Command::new("true")
        .stdin(Stdio::piped())
        .spawn()
        .expect("true runs");
    let writer = reader.stdin.take().expect("stdin piped");
    reader.wait().expect("true exits");
    Stdio::from(writer)
}

fn command(
    cwd: &Path,
    args: &[&str],
    env: &[(OsString, OsString)],
    out: Out,
) -> tokio::process::Command {
    let mut cmd = binary::command();
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .env_remove("STATE_DIRECTORY")
        .env_remove("NOTIFY_SOCKET")
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match out {
        Out::Piped => {
            cmd.stdout(Stdio::piped());
        }
        Out::Closed => {
            cmd.stdout(closed_pipe());
        }
    }
    cmd
}

/// Runs `bbedge <args>` to the end (a hang guard of 60 s).
async fn bbedge(cwd: &Path, args: &[&str], env: &[(OsString, OsString)], out: Out) -> Run {
    let child = command(cwd, args, env, out).spawn().expect("bbedge starts");
    let o = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("bbedge {args:?} did not finish"))
        .expect("output");
    let run = Run {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    assert!(
        !run.err.contains("panicked") && run.code != 101 && run.code != 134,
        "bbedge {args:?} panicked (exit {}): {}",
        run.code,
        run.err
    );
    run
}

fn with(env: &[(OsString, OsString)], more: &[(OsString, OsString)]) -> Vec<(OsString, OsString)> {
    env.iter().chain(more).cloned().collect()
}

/// `bbedge led test` paces for a person (3 to 8 s a pattern): read its first line,
/// then Ctrl-C, which ends it with 0.
async fn led_test_first_line(cwd: &Path, env: &[(OsString, OsString)]) -> (i32, String) {
    let mut child = command(cwd, &["led", "test"], env, Out::Piped)
        .spawn()
        .expect("bbedge starts");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("a first line")
        .expect("read")
        .expect("a line before exit");
    support::binary::signal(&child, "INT");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits after Ctrl-C")
        .expect("wait");
    (status.code().unwrap_or(-1), first)
}

/// The daemon, started with `env` and `out` as its stdout, once it logged ready, and
/// its health URL.
async fn start_daemon(
    cwd: &Path,
    env: &[(OsString, OsString)],
    out: Out,
) -> (binary::Daemon, String) {
    let mut cmd = command(cwd, &["run", "--log-format", "json"], env, out);
    let mut child = cmd.spawn().expect("bbedge starts");
    let stderr = child.stderr.take().expect("stderr piped");
    let mut d = binary::Daemon {
        child,
        lines: BufReader::new(stderr).lines(),
        seen: Vec::new(),
    };
    let ready = d.wait_for("bbedge ready").await;
    let health = format!(
        "http://{}",
        ready["health_addr"].as_str().expect("health_addr")
    );
    (d, health)
}

async fn stop_daemon(mut d: binary::Daemon) {
    d.signal("TERM");
    d.wait_for("bbedge stopped").await;
    assert_eq!(d.exit_code().await, 0, "{:#?}", d.seen);
    let all = d.seen.join("\n");
    assert!(!all.contains("panicked"), "{all}");
}

#[tokio::test]
async fn every_subcommand_ignores_foreign_variables_that_are_not_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let env = with(&base_env(&state), &foreign_non_utf8());
    let cwd = dir.path();

    // `run`: ready, then a clean stop.
    let (d, health) = start_daemon(cwd, &env, Out::Piped).await;
    let status = bbedge(
        cwd,
        &["status", "--json", "--url", &health],
        &env,
        Out::Piped,
    )
    .await;
    assert_eq!(status.code, OK, "{}", status.err);
    assert!(status.out.contains("\"state\""), "{}", status.out);
    let added = bbedge(
        cwd,
        &["token", "add", "--role", "observer"],
        &env,
        Out::Piped,
    )
    .await;
    assert_eq!(added.code, OK, "{}", added.err);
    // Through the daemon's control socket, the same JSON as from the store.
    let listed = bbedge(cwd, &["token", "list", "--json"], &env, Out::Piped).await;
    assert_eq!(listed.code, OK, "{}", listed.err);
    let rows: serde_json::Value = serde_json::from_str(&listed.out).expect("JSON");
    assert_eq!(rows[0]["role"], "observer", "{rows}");
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert!(!listed.out.contains("bbt_"), "{}", listed.out);
    stop_daemon(d).await;

    let check = bbedge(cwd, &["config", "check"], &env, Out::Piped).await;
    assert_eq!(check.code, OK, "{}", check.err);
    assert!(
        check
            .out
            .starts_with("config ok: built-in defaults + environment variable BBEDGE_"),
        "{}",
        check.out
    );
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--version"], OK, env!("CARGO_PKG_VERSION")),
        (&["--help"], OK, "Usage: bbedge"),
        (&["config", "default"], OK, "[realtime]"),
        (&["token", "list"], OK, "observer"),
        (&["token", "add", "--role", "agent"], OK, "token: bbt_"),
        (&["store", "check"], OK, "\"sound\":true"),
        (&["unpair"], OK, "was not paired"),
        (
            &["led", "identify", "--seconds", "1"],
            OK,
            "Blinking identify for 1 s",
        ),
        // Refusals still name what is wrong, on stderr.
        (&["status", "--url", "http://127.0.0.1:9"], UNAVAILABLE, ""),
        (&["token", "revoke", "tok_missing"], USAGE, ""),
        (
            &[
                "pair",
                "--server",
                "https://x.test",
                "--device-uuid",
                "nope",
                "--code",
                "AAAA-BBBB-CCCC",
            ],
            USAGE,
            "",
        ),
    ];
    for (args, code, says) in cases {
        let r = bbedge(cwd, args, &env, Out::Piped).await;
        assert_eq!(r.code, *code, "bbedge {args:?}: {}{}", r.out, r.err);
        assert!(r.out.contains(says), "bbedge {args:?}: {}", r.out);
        if *code != OK {
            assert!(
                r.err.starts_with("bbedge"),
                "bbedge {args:?} says why: {}",
                r.err
            );
        }
    }
    let id = bbedge(cwd, &["token", "list"], &env, Out::Piped)
        .await
        .out
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let r = bbedge(cwd, &["token", "revoke", &id], &env, Out::Piped).await;
    assert_eq!(r.code, OK, "{}", r.err);
    let (code, first) = led_test_first_line(cwd, &env).await;
    assert_eq!(code, OK);
    assert!(first.contains("booting"), "{first}");
}

/// `[daemon] worker_threads`: one per core by default (0), or as many as set, and the
/// daemon says at start which it runs with.
#[tokio::test]
async fn the_daemon_runs_the_worker_threads_it_is_configured_with() {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    for (set, want) in [(None, cores), (Some("1"), 1), (Some("3"), 3)] {
        let dir = tempfile::tempdir().unwrap();
        let mut env = base_env(&dir.path().join("state"));
        if let Some(v) = set {
            env.push(("BBEDGE_DAEMON__WORKER_THREADS".into(), v.into()));
        }
        let (d, _) = start_daemon(dir.path(), &env, Out::Piped).await;
        // Logged before "bbedge ready", which `start_daemon` waited for.
        let started = d
            .seen
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["message"] == "bbedge starting")
            .expect("the start-up line");
        assert_eq!(started["worker_threads"], want, "{set:?}: {started}");
        stop_daemon(d).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(&dir.path().join("state"));
    env.push(("BBEDGE_DAEMON__WORKER_THREADS".into(), "65".into()));
    let r = bbedge(dir.path(), &["run"], &env, Out::Piped).await;
    assert_eq!(r.code, USAGE, "{}", r.err);
    assert!(
        r.err
            .contains("`daemon.worker_threads` = 65: allowed 0 to 64"),
        "{}",
        r.err
    );
}

#[tokio::test]
async fn a_bbedge_variable_that_is_not_utf8_is_exit_64_naming_it_and_never_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let env = base_env(&dir.path().join("state"));
    let bad = [(
        OsString::from("BBEDGE_PAIR_CODE"),
        OsStr::from_bytes(b"SECR\xffT").to_owned(),
    )];
    for args in [
        &["run"][..],
        &["config", "check"],
        &["config", "default"],
        &["status"],
        &["token", "list"],
        &["store", "check"],
        &["pair", "--server", "https://x.test", "--device-uuid", "u"],
        &["unpair"],
        &["led", "test"],
        &["--version"],
    ] {
        let r = bbedge(dir.path(), args, &with(&env, &bad), Out::Piped).await;
        assert_eq!(r.code, USAGE, "bbedge {args:?}: {}", r.err);
        assert!(
            r.err
                .contains("environment variable BBEDGE_PAIR_CODE is not valid UTF-8")
                && r.err.contains("[CONFIG_BAD_ENV]"),
            "bbedge {args:?}: {}",
            r.err
        );
        assert!(!r.err.contains("SECR"), "never the value: {}", r.err);
    }
    // A config variable (BBEDGE_<SECTION>__<KEY>) and a non-UTF-8 name are refused alike.
    let name = OsStr::from_bytes(b"BBEDGE_\xff__X").to_owned();
    let r = bbedge(
        dir.path(),
        &["config", "check"],
        &with(&env, &[(name, "1".into())]),
        Out::Piped,
    )
    .await;
    assert_eq!(r.code, USAGE, "{}", r.err);
    assert!(
        r.err.contains("environment variable BBEDGE_\u{fffd}__X"),
        "{}",
        r.err
    );
    // A valid UTF-8 value clap refuses is also 64 (not clap's 2), naming the variable.
    let r = bbedge(
        dir.path(),
        &["config", "check"],
        &with(&env, &[("BBEDGE_LOG_FORMAT".into(), "xml".into())]),
        Out::Piped,
    )
    .await;
    assert_eq!(r.code, USAGE, "{}", r.err);
    assert!(
        r.err.contains("invalid value 'xml' for '--log-format")
            && r.err
                .contains("environment variable BBEDGE_LOG_FORMAT [CONFIG_BAD_ENV]"),
        "{}",
        r.err
    );
    let r = bbedge(
        dir.path(),
        &["--log-format", "xml", "config", "check"],
        &env,
        Out::Piped,
    )
    .await;
    assert_eq!(r.code, USAGE, "{}", r.err);
    assert!(
        !r.err.contains("environment variable"),
        "a flag is not blamed on the environment: {}",
        r.err
    );
}

#[tokio::test]
async fn every_subcommand_with_a_closed_stdout_exits_74_and_an_unseen_token_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let env = base_env(&state);
    let cwd = dir.path();
    let said = |r: &Run, what: &str| {
        assert!(
            r.err.contains(&format!(
                "bbedge {what}: cannot write the output to stdout [OUTPUT_FAILED]"
            )),
            "{what}: {}",
            r.err
        );
    };

    // No daemon: the store is opened directly.
    let r = bbedge(
        cwd,
        &["token", "add", "--role", "observer"],
        &env,
        Out::Closed,
    )
    .await;
    assert_eq!(r.code, IOERR, "{}", r.err);
    assert!(
        r.err
            .contains("was revoked again, so no unseen token stays valid"),
        "{}",
        r.err
    );
    assert!(
        !r.err.contains("bbt_"),
        "the token never reaches stderr: {}",
        r.err
    );
    let list = bbedge(cwd, &["token", "list"], &env, Out::Piped).await;
    let rows: Vec<&str> = list.out.lines().collect();
    assert_eq!(rows.len(), 1, "{}", list.out);
    assert!(
        rows[0].contains("observer") && rows[0].contains("revoked"),
        "{}",
        list.out
    );

    for (args, what) in [
        (&["config", "check"][..], "config check"),
        (&["config", "check", "--json"], "config check"),
        (&["config", "default"], "config default"),
        (&["--version"], "--version"),
        (&["--help"], "--help"),
        (&["token", "list"], "token.list"),
        (&["token", "list", "--json"], "token.list"),
        (&["store", "check"], "store check"),
        (&["unpair"], "unpair"),
        (&["led", "identify", "--seconds", "1"], "led identify"),
        (&["led", "test"], "led test"),
    ] {
        let r = bbedge(cwd, args, &env, Out::Closed).await;
        assert_eq!(r.code, IOERR, "bbedge {args:?}: {}", r.err);
        said(&r, what);
    }
    // An invalid configuration stays exit 64 with its reason on stderr, even when its
    // JSON cannot be written.
    let typo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config/invalid/typo-key.toml");
    let r = bbedge(
        cwd,
        &["config", "check", "--json", typo.to_str().unwrap()],
        &env,
        Out::Closed,
    )
    .await;
    assert_eq!(r.code, USAGE, "{}", r.err);
    assert!(r.err.contains("[CONFIG_UNKNOWN_KEY]"), "{}", r.err);
    let added = bbedge(cwd, &["token", "add", "--role", "agent"], &env, Out::Piped).await;
    let id = added
        .out
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("id:")
        .trim()
        .to_owned();
    let r = bbedge(cwd, &["token", "revoke", &id], &env, Out::Closed).await;
    assert_eq!(r.code, IOERR, "{}", r.err);
    let list = bbedge(cwd, &["token", "list"], &env, Out::Piped).await;
    assert!(
        list.out
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("revoked")),
        "the revocation stands: {}",
        list.out
    );
    // Failures write only to stderr: the same code as with a reader.
    let r = bbedge(
        cwd,
        &["status", "--url", "http://127.0.0.1:9"],
        &env,
        Out::Closed,
    )
    .await;
    assert_eq!(r.code, UNAVAILABLE, "{}", r.err);

    // The daemon (its own stdout closed too): requests go over its control socket.
    let (d, health) = start_daemon(cwd, &env, Out::Closed).await;
    let r = bbedge(
        cwd,
        &["token", "add", "--role", "operator"],
        &env,
        Out::Closed,
    )
    .await;
    assert_eq!(r.code, IOERR, "{}", r.err);
    assert!(r.err.contains("was revoked again"), "{}", r.err);
    let list = bbedge(cwd, &["token", "list"], &env, Out::Piped).await;
    assert!(
        list.out
            .lines()
            .any(|l| l.contains("operator") && l.contains("revoked")),
        "{}",
        list.out
    );
    assert!(
        !list.out.lines().any(|l| l.contains("active")),
        "no token stays valid unseen: {}",
        list.out
    );
    let r = bbedge(cwd, &["status", "--url", &health], &env, Out::Closed).await;
    assert_eq!(r.code, IOERR, "{}", r.err);
    said(&r, "status");
    let r = bbedge(
        cwd,
        &["led", "identify", "--seconds", "1"],
        &env,
        Out::Closed,
    )
    .await;
    assert_eq!(r.code, IOERR, "{}", r.err);
    stop_daemon(d).await;
}

#[tokio::test]
async fn pair_with_a_closed_stdout_still_pairs_and_exits_74() {
    let fake = FakeCentral::start(Tls::Trusted).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let ca = fake.write_ca(dir.path());
    let env = with(
        &base_env(&state),
        &[("BBEDGE_UPSTREAM__EXTRA_CA_FILE".into(), quoted(&ca).into())],
    );
    let e = fake.enroll();
    let url = fake.url();
    let args = [
        "pair",
        "--server",
        &url,
        "--device-uuid",
        &e.device_uuid,
        "--code",
        &e.code,
    ];
    let r = bbedge(dir.path(), &args, &env, Out::Closed).await;
    assert_eq!(r.code, IOERR, "{}", r.err);
    assert!(
        r.err.contains("bbedge pair: cannot write the output"),
        "{}",
        r.err
    );
    assert!(!r.err.contains(&e.code), "the code never reaches stderr");
    assert!(
        state.join("credentials.toml").is_file(),
        "the pairing stands"
    );
    let r = bbedge(dir.path(), &["unpair"], &env, Out::Piped).await;
    assert_eq!(r.code, OK, "{}", r.err);
    assert!(
        r.out.contains("Unpaired: removed the credentials"),
        "{}",
        r.out
    );
}

/// A fake sysfs LED class directory under `root`, as the kernel shows it.
fn fake_led(root: &Path) -> PathBuf {
    let dir = root.join("leds/ACT");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("trigger"), "none [mmc0] timer heartbeat\n").unwrap();
    std::fs::write(dir.join("brightness"), "0\n").unwrap();
    dir
}

fn sysfs_env(root: &Path, state: &Path) -> Vec<(OsString, OsString)> {
    let mut env = base_env(state);
    env.retain(|(k, _)| k != "BBEDGE_STATUS_LED__BACKEND");
    env.push(("BBEDGE_STATUS_LED__BACKEND".into(), "sysfs".into()));
    env.push((
        "BBEDGE_STATUS_LED__SYSFS_ROOT".into(),
        quoted(&root.join("leds")).into(),
    ));
    env
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[tokio::test]
async fn a_config_typo_stops_for_good_with_64_and_leaves_config_fault_blinking() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let led = fake_led(dir.path());
    let file = dir.path().join("bbedge.toml");
    std::fs::write(&file, "[realtime.rooms]\nmax_room = 3\n").unwrap();
    let args = ["--config", file.to_str().unwrap(), "run"];
    let r = bbedge(
        dir.path(),
        &args,
        &sysfs_env(dir.path(), &state),
        Out::Piped,
    )
    .await;
    assert_eq!(r.code, USAGE, "{}", r.err);
    assert_eq!(r.err.lines().count(), 1, "{}", r.err);
    assert!(
        r.err.contains("[CONFIG_UNKNOWN_KEY]")
            && r.err
                .contains("stopped with exit 64, which systemd does not restart")
            && r.err.contains(&format!(
                "the LED {} blinks config_fault (200 ms on, 50 ms off",
                led.display()
            )),
        "{}",
        r.err
    );
    // The kernel keeps blinking with no process: the timer trigger and its times.
    assert_eq!(read(led.join("trigger")), "timer");
    assert_eq!(read(led.join("delay_on")), "200");
    assert_eq!(read(led.join("delay_off")), "50");
    assert_eq!(
        read(state.join("led-ACT.trigger")),
        "mmc0",
        "the original is remembered"
    );

    // Fixed: the daemon takes the LED from the timer and gives back mmc0 on stop.
    std::fs::write(led.join("trigger"), "none mmc0 [timer] heartbeat\n").unwrap();
    std::fs::write(&file, "[realtime.rooms]\nmax_rooms = 3\n").unwrap();
    let mut env = sysfs_env(dir.path(), &state);
    env.push(("BBEDGE_LOG_FORMAT".into(), "json".into()));
    let mut cmd = command(
        dir.path(),
        &["--config", file.to_str().unwrap(), "run"],
        &env,
        Out::Piped,
    );
    let mut child = cmd.spawn().unwrap();
    let mut d = binary::Daemon {
        lines: BufReader::new(child.stderr.take().unwrap()).lines(),
        child,
        seen: Vec::new(),
    };
    d.wait_for("bbedge ready").await;
    // The daemon took the LED from config_fault's timer and handed the kernel its own
    // steady rhythm, unpaired's blip.
    support::led::wait_for_timer(&led, 100, 1900).await;
    stop_daemon(d).await;
    assert_eq!(read(led.join("trigger")), "mmc0");
}

#[tokio::test]
async fn unusable_tls_files_stop_for_good_with_78_and_the_led_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let led = fake_led(dir.path());
    let mut env = sysfs_env(dir.path(), &state);
    for (k, v) in [
        ("BBEDGE_REALTIME__TLS__ENABLED", "true".to_owned()),
        (
            "BBEDGE_REALTIME__TLS__CERT_PATH",
            quoted(&dir.path().join("missing-cert.pem")),
        ),
        (
            "BBEDGE_REALTIME__TLS__KEY_PATH",
            quoted(&dir.path().join("missing-key.pem")),
        ),
    ] {
        env.push((k.into(), v.into()));
    }
    let r = bbedge(dir.path(), &["run"], &env, Out::Piped).await;
    assert_eq!(r.code, CONFIG, "{}", r.err);
    assert!(
        r.err.contains("[REALTIME_TLS]")
            && r.err.contains("realtime.tls.cert_path")
            && r.err
                .contains("stopped with exit 78, which systemd does not restart")
            && r.err.contains("blinks config_fault"),
        "{}",
        r.err
    );
    assert_eq!(read(led.join("trigger")), "timer");
    assert_eq!(read(led.join("delay_on")), "200");
}

#[tokio::test]
async fn the_daemon_with_stdout_and_stderr_closed_keeps_serving_and_stops_cleanly() {
    // Its logs go nowhere (a broken journal stream), so its health port is chosen here.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut env = base_env(&state);
    env.retain(|(k, _)| k != "BBEDGE_HEALTH__PORT");
    env.push(("BBEDGE_HEALTH__PORT".into(), port.to_string().into()));
    let mut cmd = command(dir.path(), &["run"], &env, Out::Closed);
    cmd.stderr(closed_pipe());
    let mut child = cmd.spawn().expect("bbedge starts");
    let url = format!("http://127.0.0.1:{port}");
    // No log line can say "ready": ask /ready until it answers 200 (bounded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ready = reqwest::get(format!("{url}/ready")).await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "bbedge exited");
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Each of these makes the daemon log (token issued, revoked) into the dead stderr.
    let added = bbedge(
        dir.path(),
        &["token", "add", "--role", "observer"],
        &env,
        Out::Piped,
    )
    .await;
    assert_eq!(added.code, OK, "{}", added.err);
    let id = added
        .out
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("id:")
        .trim()
        .to_owned();
    let r = bbedge(dir.path(), &["token", "revoke", &id], &env, Out::Piped).await;
    assert_eq!(r.code, OK, "{}", r.err);
    let (code, _) = support::http_get(&format!("{url}/health")).await;
    assert_eq!(code, 200);
    support::binary::signal(&child, "TERM");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stops")
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test]
async fn command_line_refusals_are_64_on_stderr_and_help_is_0_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let env = base_env(&dir.path().join("state"));
    for args in [
        &["token"][..],
        &["--no-such-flag"],
        &["led", "identify", "--seconds", "x"],
    ] {
        let r = bbedge(dir.path(), args, &env, Out::Piped).await;
        assert_eq!(r.code, USAGE, "bbedge {args:?} (not clap's 2): {}", r.err);
        assert!(r.out.is_empty(), "bbedge {args:?}: {}", r.out);
        // clap's own text: the error, or the help of `bbedge token`; both point at --help.
        assert!(r.err.contains("--help"), "bbedge {args:?}: {}", r.err);
    }
    let r = bbedge(dir.path(), &["token", "--help"], &env, Out::Piped).await;
    assert_eq!(r.code, OK, "{}", r.err);
    assert!(r.out.contains("Usage: bbedge token"), "{}", r.out);
}
