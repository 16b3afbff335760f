//! The real `bbedge` binary as a child process, with JSON logs read from stderr so a
//! test can wait for an event ("bbedge ready") instead of sleeping.

use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};

/// Longest a test waits for one log line before failing (a hang guard, not a sync).
pub const LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `bbedge`.
pub struct Daemon {
    /// The child process.
    pub child: Child,
    /// Its stderr, one JSON object per line.
    pub lines: Lines<BufReader<ChildStderr>>,
    /// Every line read so far.
    pub seen: Vec<String>,
}

/// The binary cargo built for this test run.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bbedge")
}

/// The program that runs [`bin`]: none natively. A cross test runs under qemu-user
/// (the runner in .cargo/config.toml), which cannot exec a foreign binary by itself:
/// without a binfmt_misc registration the kernel refuses it (ENOEXEC), and because
/// qemu turns posix_spawn's vfork into a fork, the error never reaches the parent:
/// the spawn "succeeds" and the child exits 127. So: if `bbedge --version` does not
/// run directly, the binary is run through `$BBEDGE_TEST_RUNNER`, default `qemu-<arch>`.
pub fn runner() -> Option<&'static str> {
    static RUNNER: OnceLock<Option<String>> = OnceLock::new();
    RUNNER
        .get_or_init(|| {
            let direct = std::process::Command::new(bin())
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            match direct {
                Ok(status) if status.success() => None,
                _ => Some(
                    std::env::var("BBEDGE_TEST_RUNNER")
                        .unwrap_or_else(|_| format!("qemu-{}", std::env::consts::ARCH)),
                ),
            }
        })
        .as_deref()
}

/// A command that runs the built binary (through [`runner`] where needed).
pub fn command() -> Command {
    match runner() {
        Some(runner) => {
            let mut cmd = Command::new(runner);
            cmd.arg(bin());
            cmd
        }
        None => Command::new(bin()),
    }
}

/// The environment of a daemon child in tests: state in `state`, every listener on
/// 127.0.0.1 port 0, the simulated LED, no boot-partition file.
pub fn daemon_env(state: &Path) -> Vec<(String, String)> {
    [
        ("BBEDGE_DAEMON__STATE_DIR", state.display().to_string()),
        ("BBEDGE_HEALTH__PORT", "0".into()),
        ("BBEDGE_REALTIME__PORT", "0".into()),
        ("BBEDGE_REALTIME__HOST", "127.0.0.1".into()),
        ("BBEDGE_STATUS_LED__BACKEND", "sim".into()),
        ("BBEDGE_PAIRING__BOOT_FILE", "\"\"".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Starts `bbedge <args>` in `cwd` with `env`, logging JSON to stderr.
pub fn spawn(cwd: &Path, args: &[&str], env: &[(String, String)]) -> Daemon {
    let mut cmd = command();
    cmd.env_remove("NOTIFY_SOCKET").env_remove("WATCHDOG_USEC");
    start(cmd, cwd, args, env)
}

/// Like [`spawn`], but keeps `NOTIFY_SOCKET`/`WATCHDOG_USEC` from `env` (systemd tests).
pub fn spawn_keep_notify(cwd: &Path, args: &[&str], env: &[(String, String)]) -> Daemon {
    start(command(), cwd, args, env)
}

/// Like [`spawn`], for a command that execs the binary itself (e.g. `sh -c 'umask 000;
/// exec bbedge "$@"'`); `args` and the JSON log flag are appended to it.
pub fn start_command(
    mut cmd: Command,
    cwd: &Path,
    args: &[&str],
    env: &[(String, String)],
) -> Daemon {
    cmd.env_remove("NOTIFY_SOCKET").env_remove("WATCHDOG_USEC");
    start(cmd, cwd, args, env)
}

fn start(mut cmd: Command, cwd: &Path, args: &[&str], env: &[(String, String)]) -> Daemon {
    cmd.args(args)
        .arg("--log-format")
        .arg("json")
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("bbedge starts");
    let stderr = child.stderr.take().expect("stderr piped");
    Daemon {
        child,
        lines: BufReader::new(stderr).lines(),
        seen: Vec::new(),
    }
}

impl Daemon {
    /// Reads log lines until one has `message == msg`; returns it parsed.
    pub async fn wait_for(&mut self, msg: &str) -> Value {
        loop {
            let line = tokio::time::timeout(LINE_TIMEOUT, self.lines.next_line())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no `{msg}` log line within {LINE_TIMEOUT:?}; saw {:#?}",
                        self.seen
                    )
                })
                .expect("read stderr")
                .unwrap_or_else(|| panic!("bbedge exited before `{msg}`; saw {:#?}", self.seen));
            self.seen.push(line.clone());
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if v.get("message").and_then(Value::as_str) == Some(msg) {
                    return v;
                }
            }
        }
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`) with kill(1).
    pub fn signal(&self, sig: &str) {
        signal(&self.child, sig);
    }

    /// Waits for exit (hang guard) and returns the exit code.
    pub async fn exit_code(&mut self) -> i32 {
        let status = tokio::time::timeout(LINE_TIMEOUT, self.child.wait())
            .await
            .expect("bbedge exits")
            .expect("wait");
        status.code().unwrap_or(-1)
    }
}

/// Sends `child` a signal by name (`TERM`, `INT`, `KILL`) with kill(1).
pub fn signal(child: &tokio::process::Child, sig: &str) {
    let pid = child.id().expect("running").to_string();
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill -{sig} {pid}");
}
