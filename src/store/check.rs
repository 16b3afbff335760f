//! Verifying a database in a short-lived child process.
//!
//! sled 0.34 can panic while opening a damaged file (a log truncated to 2–5.7 MiB:
//! `index out of bounds` in `segment.rs`), and the release build has
//! `panic = "abort"`: a panic cannot be caught, so in the daemon it would end the
//! process on every start. So the daemon runs `bbedge store check <path>` first
//! ([`Checker::verify`]): the child opens the database and reads every tree to the
//! end ([`verify`]). Exit 0: sound. Anything else that is not "busy" (exit 65 with a
//! reason, a panic, a signal, no answer within the timeout) means corrupt, and the
//! daemon quarantines the database before opening a fresh one in-process.

use super::Error;
use crate::error::{exit, ErrorCode};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the checked child said about a database.
#[derive(Debug)]
pub enum Verdict {
    /// It opens and reads to the end.
    Sound,
    /// It must be quarantined; why, in words.
    Corrupt(String),
    /// The database is fine for all we know, but cannot be used (locked by another
    /// bbedge, not writable): the open fails with this error.
    Failed(Error),
    /// The child could not be run at all (exec refused, e.g. under qemu-user without
    /// binfmt_misc); the database is opened in-process.
    Unavailable(String),
    /// No checker was given (tests, library use).
    Skipped,
}

/// The program and time limit for the child check.
#[derive(Debug, Clone)]
pub struct Checker {
    /// The `bbedge` executable.
    pub program: PathBuf,
    /// How long the child may take before it is killed and the database quarantined.
    pub timeout: Duration,
    /// A program the child is run through (`[store] check_runner`), if any.
    pub runner: Option<PathBuf>,
}

/// What a sound database holds (printed by `bbedge store check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Trees, sled's default tree included.
    pub trees: usize,
    /// Entries over all trees.
    pub entries: u64,
    /// Bytes of keys and values.
    pub bytes: u64,
}

/// Exit code of `bbedge store check` for a corrupt database (EX_DATAERR).
pub const EXIT_CORRUPT: i32 = 65;
/// Exit code for a database another process holds (EX_TEMPFAIL).
pub const EXIT_LOCKED: i32 = exit::TEMPFAIL;
/// Exit code for any other I/O error (EX_IOERR).
pub const EXIT_IO: i32 = 74;

/// Opens sled with the daemon's settings: bounded cache, no background flushing.
pub(crate) fn open_sled(path: &Path, cache_bytes: u64) -> Result<sled::Db, Error> {
    sled::Config::new()
        .path(path)
        .cache_capacity(cache_bytes)
        .flush_every_ms(None)
        .mode(sled::Mode::LowSpace)
        .open()
        .map_err(|e| match Error::from_sled(e) {
            Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
                Error::Unwritable {
                    path: path.to_owned(),
                    source: io,
                }
            }
            // sled wraps EWOULDBLOCK from its file lock in a message of its own.
            Error::Io(io)
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("could not acquire lock") =>
            {
                Error::Locked {
                    path: path.to_owned(),
                }
            }
            // sled reports a mangled file as an I/O error of kind InvalidData/UnexpectedEof.
            Error::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                Error::Corrupt(format!("sled cannot read its files: {io}"))
            }
            other => other,
        })
}

/// Whether the directory held a database before sled touched it (a `conf`, or a
/// non-empty log).
fn had_data(path: &Path) -> bool {
    path.join("conf").exists()
        || std::fs::metadata(path.join("db")).is_ok_and(|m| m.len() > 0)
        || std::fs::read_dir(path).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("snap."))
        })
}

/// The child's side: opens the database and reads every tree to the end (sled loads
/// pages lazily, so damage shows only when read). A database whose files were there
/// but that opens without its schema version lost its content: corrupt too.
pub fn verify(path: &Path, cache_bytes: u64) -> Result<Summary, Error> {
    let existed = had_data(path);
    let db = open_sled(path, cache_bytes)?;
    let mut sum = Summary {
        trees: 0,
        entries: 0,
        bytes: 0,
    };
    for name in db.tree_names() {
        let tree = db.open_tree(&name).map_err(Error::from_sled)?;
        sum.trees += 1;
        for kv in &tree {
            let (k, v) = kv.map_err(Error::from_sled)?;
            sum.entries += 1;
            sum.bytes += (k.len() + v.len()) as u64;
        }
    }
    let meta = db
        .open_tree(super::Tree::Meta.name())
        .map_err(Error::from_sled)?;
    match meta.get(b"schema_version").map_err(Error::from_sled)? {
        Some(v) => {
            super::codec::decode::<u32>(&v)
                .map_err(|e| Error::Corrupt(format!("the schema version does not decode: {e}")))?;
        }
        None if existed => return Err(Error::Corrupt(
            "the database files were there but sled opened an empty database: its log is damaged"
                .to_owned(),
        )),
        None => {}
    }
    Ok(sum)
}

/// The exit code `bbedge store check` uses for an error of [`verify`].
pub fn exit_code(e: &Error) -> i32 {
    match e {
        Error::Locked { .. } => EXIT_LOCKED,
        Error::Unwritable { .. } => exit::NOPERM,
        Error::Corrupt(_) | Error::Decode(_) => EXIT_CORRUPT,
        _ => EXIT_IO,
    }
}

impl Checker {
    /// The running executable as the checker (the daemon: it is `bbedge`), with
    /// `[store] check_timeout` and `check_runner`.
    pub fn current_exe(config: &crate::config::Store) -> std::io::Result<Checker> {
        Ok(Checker {
            program: std::env::current_exe()?,
            timeout: Duration::from_secs(config.check_timeout),
            runner: Some(config.check_runner.trim())
                .filter(|r| !r.is_empty())
                .map(PathBuf::from),
        })
    }

    /// Runs `<program> store check <path>` and judges how it ended.
    pub fn verify(&self, path: &Path) -> Verdict {
        let started = Instant::now();
        let mut cmd = match &self.runner {
            Some(r) => {
                let mut c = Command::new(r);
                c.arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        let child = cmd
            .arg("store")
            .arg("check")
            .arg(path)
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                return Verdict::Unavailable(format!(
                    "cannot start {}: {e}",
                    self.program.display()
                ))
            }
        };
        let out = drain(child.stdout.take());
        let err = drain(child.stderr.take());
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() >= self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Verdict::Unavailable(format!("cannot wait for the check: {e}"));
                }
            }
        };
        let out = out.join().unwrap_or_default();
        let err = err.join().unwrap_or_default();
        let verdict = judge(status, &out, &err, self.timeout, path);
        tracing::info!(
            operation = "store.check",
            path = %path.display(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            verdict = ?verdict,
            "database verified in a child process"
        );
        verdict
    }
}

/// Reads a pipe to the end in a thread (bounded to 64 KiB kept).
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(p) = pipe {
            let _ = p.take(64 * 1024).read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The last lines of the child's stderr (a panic message), on one line.
fn tail(err: &str) -> String {
    let lines: Vec<&str> = err
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
        .collect();
    let from = lines
        .iter()
        .rposition(|l| l.contains("panicked at"))
        .unwrap_or(lines.len().saturating_sub(3));
    let text = lines.get(from..).unwrap_or_default().join(" | ");
    text.chars().take(600).collect()
}

fn judge(
    status: Option<std::process::ExitStatus>,
    out: &str,
    err: &str,
    timeout: Duration,
    path: &Path,
) -> Verdict {
    use std::os::unix::process::ExitStatusExt;
    let Some(status) = status else {
        return Verdict::Corrupt(format!(
            "opening it did not finish within {} s (killed); {}",
            timeout.as_secs_f32(),
            tail(err)
        ));
    };
    let said = out
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
    let reason = said
        .as_ref()
        .and_then(|v| v["error"].as_str())
        .map_or_else(|| tail(err), str::to_owned);
    match (status.code(), status.signal()) {
        (Some(0), _) => Verdict::Sound,
        (Some(EXIT_CORRUPT), _) => Verdict::Corrupt(reason),
        (Some(EXIT_LOCKED), _) => Verdict::Failed(Error::Locked {
            path: path.to_owned(),
        }),
        (Some(c), _) if c == exit::NOPERM => Verdict::Failed(Error::Unwritable {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, reason),
        }),
        // 126/127: the exec itself failed (a shell or qemu-user reports it so).
        (Some(c @ (126 | 127)), _) => {
            Verdict::Unavailable(format!("the check exited {c} without running: {reason}"))
        }
        (Some(c), _) if c == EXIT_IO => Verdict::Failed(Error::Check(reason)),
        // A panic that unwinds (a build without panic = "abort") ends main with 101.
        (Some(101), _) => Verdict::Corrupt(format!(
            "opening it made sled panic (the check exited 101): {}",
            tail(err)
        )),
        (Some(c), _) => Verdict::Corrupt(format!(
            "opening it failed (the check exited {c}): {reason}"
        )),
        (None, Some(sig)) => Verdict::Corrupt(format!(
            "opening it crashed the check (signal {sig}{}): {}",
            if sig == libc::SIGABRT {
                ", abort: sled panicked"
            } else {
                ""
            },
            tail(err)
        )),
        (None, None) => Verdict::Corrupt(format!("the check ended abnormally: {}", tail(err))),
    }
}

/// `bbedge store check` prints this one JSON line.
pub fn report(path: &Path, result: &Result<Summary, Error>) -> serde_json::Value {
    match result {
        Ok(s) => serde_json::json!({"path": path, "sound": true, "summary": s}),
        Err(e) => {
            serde_json::json!({"path": path, "sound": false, "code": e.code(), "error": e.to_string()})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_line_is_kept_and_exit_codes_map_to_verdicts() {
        let err = "noise\nthread 'main' panicked at sled-0.34.7/src/pagecache/segment.rs:556:9:\nindex out of bounds: the len is 3 but the index is 7\n";
        assert_eq!(tail(err), "thread 'main' panicked at sled-0.34.7/src/pagecache/segment.rs:556:9: | index out of bounds: the len is 3 but the index is 7");
        let t = Duration::from_secs(10);
        let p = Path::new("/x/db");
        use std::os::unix::process::ExitStatusExt;
        let st = |raw| Some(std::process::ExitStatus::from_raw(raw));
        assert!(matches!(judge(st(0), "", "", t, p), Verdict::Sound));
        let out = r#"{"sound":false,"error":"the database is corrupt: x"}"#;
        assert!(
            matches!(judge(st(65 << 8), out, "", t, p), Verdict::Corrupt(r) if r == "the database is corrupt: x")
        );
        assert!(matches!(
            judge(st(75 << 8), "", "", t, p),
            Verdict::Failed(Error::Locked { .. })
        ));
        assert!(matches!(
            judge(st(127 << 8), "", "", t, p),
            Verdict::Unavailable(_)
        ));
        assert!(
            matches!(judge(st(libc::SIGABRT), "", err, t, p), Verdict::Corrupt(r) if r.contains("signal 6") && r.contains("segment.rs:556"))
        );
        assert!(
            matches!(judge(st(101 << 8), "", err, t, p), Verdict::Corrupt(r) if r.contains("sled panic") && r.contains("segment.rs:556"))
        );
        assert!(
            matches!(judge(None, "", "", t, p), Verdict::Corrupt(r) if r.contains("within 10 s"))
        );
    }
}
