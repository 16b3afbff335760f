//! Load tool for the local rooms (issue 3 "Measure", issue 12 item 3): the real `bbedge`
//! binary side by side with a bare tokio-tungstenite broadcast loop (the baseline), each
//! in its own process, started fresh for every round, driven by the same clients: one
//! agent and N observers on loopback.
//!
//! Each round, for each hub: RSS idle; KiB per idle connection (`--idle` observers: the
//! slope from a tenth of them to all); **deliveries per hub CPU-second** at a paced
//! `--cpu-rate` (hub CPU = utime + stime from `/proc/<pid>/stat`, before and after);
//! fan-out latency p50/p99 at a paced `--rate`. Medians over `--rounds`, and bbedge as a
//! share of the baseline.
//!
//! The baseline batches as bbedge does (a writer feeds every queued frame, then flushes
//! once) and reads with an 8 KiB buffer; it runs as this binary re-executed with
//! `--bare-hub`, so its CPU and RSS are measured like the daemon's.
//!
//! ```text
//! cargo bench --bench rooms_load -- [--rounds 3] [--observers 100] [--bytes 512]
//!     [--cpu-rate 8000] [--rate 1000] [--seconds 5] [--idle 1000] [--flat-out 0]
//!     [--attempts 0] [--churn-seconds 0] [--split-cores 0] [--only bbedge|bare]
//!     [--bbedge PATH] [--wrap "heaptrack -o /tmp/bbedge"] [--kill-at-idle 0]
//!     [--bare-workers 0]
//! ```
//! `--bare-workers N` gives the bare loop N runtime threads (0: tokio's default, one per
//! core; bbedge runs `[daemon] worker_threads`, also one per core by default).
//! `--wrap` starts either hub under a profiler (the hub's own pid is still the one
//! measured and stopped with SIGTERM, so the profiler writes its data); `--bbedge` runs
//! another build (e.g. `target/profiling/bbedge`).
//! Not a test: it asserts nothing, it prints numbers for docs/PERFORMANCE.md.

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The baseline's read buffer: tungstenite's chunk size for socket reads.
const BARE_READ_BUFFER: usize = 8 * 1024;

struct Args {
    rounds: usize,
    observers: usize,
    bytes: usize,
    /// Paced rate of the latency run (p50/p99).
    rate: u64,
    /// Paced rate of the CPU run (deliveries per hub CPU-second).
    cpu_rate: u64,
    seconds: u64,
    idle: usize,
    flat_out: bool,
    churn_seconds: u64,
    attempts: usize,
    /// `--split-cores 1`: the hub on CPU 0, this tool (its clients) on CPU 1, with
    /// `taskset`, as if the clients were other hosts.
    split_cores: bool,
    /// `--only bbedge` / `--only bare`: one hub only.
    only: Option<String>,
    bbedge: String,
    wrap: Vec<String>,
    bare_hub: bool,
    /// `--bare-workers N`: the bare loop's runtime threads (0: tokio's default, one
    /// per core).
    bare_workers: usize,
    /// `--kill-at-idle 1`: SIGKILL the hub while the idle connections are held (a heap
    /// profiler around it then shows what they hold as "leaked"), and stop.
    kill_at_idle: bool,
}

fn args() -> Args {
    let mut a = Args {
        rounds: 3,
        observers: 100,
        bytes: 512,
        rate: 1000,
        cpu_rate: 8000,
        seconds: 5,
        idle: 1000,
        flat_out: false,
        churn_seconds: 0,
        attempts: 0,
        split_cores: false,
        only: None,
        bbedge: env!("CARGO_BIN_EXE_bbedge").to_owned(),
        wrap: Vec::new(),
        bare_hub: false,
        bare_workers: 0,
        kill_at_idle: false,
    };
    let v: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < v.len() {
        if v[i] == "--bare-hub" {
            a.bare_hub = true;
            i += 1;
            continue;
        }
        let Some(val) = v.get(i + 1) else { break };
        let n = val.parse().unwrap_or(0);
        match v[i].as_str() {
            "--rounds" => a.rounds = (n as usize).max(1),
            "--observers" => a.observers = n as usize,
            "--bytes" => a.bytes = n as usize,
            "--rate" => a.rate = n,
            "--cpu-rate" => a.cpu_rate = n,
            "--seconds" => a.seconds = n,
            "--idle" => a.idle = n as usize,
            "--flat-out" => a.flat_out = n != 0,
            "--churn-seconds" => a.churn_seconds = n,
            "--attempts" => a.attempts = n as usize,
            "--split-cores" => a.split_cores = n != 0,
            "--kill-at-idle" => a.kill_at_idle = n != 0,
            "--bare-workers" => a.bare_workers = n as usize,
            "--only" => a.only = Some(val.clone()),
            "--bbedge" => a.bbedge = val.clone(),
            "--wrap" => a.wrap = val.split_whitespace().map(str::to_owned).collect(),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

/// A hub under test: the daemon or the bare loop, in its own process.
struct Hub {
    child: tokio::process::Child,
    /// The hub's own pid (under `--wrap`, the daemon's, not the wrapper's).
    pid: u32,
    addr: SocketAddr,
    path: String,
    agent: Option<String>,
    observer: Option<String>,
    health: Option<String>,
    _state: Option<tempfile::TempDir>,
}

/// Observers the daemon has closed as slow consumers (1013) so far, from `/metrics`.
async fn slow_closed(h: &Hub) -> u64 {
    let Some(health) = &h.health else { return 0 };
    let Ok(r) = reqwest::get(format!("http://{health}/metrics")).await else {
        return 0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("bbedge_room_connections_dropped") && l.contains("slow_consumer"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The rooms' grace period for the daemon under test (its default); the idle phase
/// waits it out before the runs.
const GRACE_PERIOD_S: u64 = 5;

fn env(state: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        (
            "BBEDGE_DAEMON__STATE_DIR",
            format!("{:?}", state.display().to_string()),
        ),
        ("BBEDGE_HEALTH__PORT", "0".into()),
        ("BBEDGE_REALTIME__PORT", "0".into()),
        ("BBEDGE_REALTIME__HOST", "\"127.0.0.1\"".into()),
        ("BBEDGE_STATUS_LED__BACKEND", "sim".into()),
        ("BBEDGE_PAIRING__BOOT_FILE", "\"\"".into()),
        ("BBEDGE_UPSTREAM__ENABLED", "false".into()),
        (
            "BBEDGE_REALTIME__ROOMS__GRACE_PERIOD",
            GRACE_PERIOD_S.to_string(),
        ),
        // `BBEDGE_LOGGING__LEVEL=warn,bbedge::room::server=trace` shows the size of a
        // connection's task (printed once).
        (
            "BBEDGE_LOGGING__LEVEL",
            std::env::var("BBEDGE_LOGGING__LEVEL").unwrap_or_else(|_| "warn,bbedge=info".into()),
        ),
        ("BBEDGE_REALTIME__LIMITS__MAX_CONNECTIONS", "5000".into()),
        // The attempts phase keeps 1,000 handshakes in flight from 127.0.0.1.
        ("BBEDGE_REALTIME__LIMITS__MAX_HANDSHAKES", "2000".into()),
        (
            "BBEDGE_REALTIME__RATE_LIMITING__HANDSHAKES_PER_IP",
            "1500".into(),
        ),
        (
            "BBEDGE_REALTIME__RATE_LIMITING__CONNECTIONS_PER_IP",
            "5000".into(),
        ),
        (
            "BBEDGE_REALTIME__RATE_LIMITING__CONNECTIONS_PER_USER",
            "5000".into(),
        ),
        (
            "BBEDGE_REALTIME__RATE_LIMITING__MESSAGES_PER_SECOND",
            "10000".into(),
        ),
    ]
}

/// `cmd` pinned to CPU 0 when the cores are split.
fn command(prog: &str, wrap: &[String], split_cores: bool) -> tokio::process::Command {
    let mut argv: Vec<String> = Vec::new();
    if split_cores {
        argv.extend(["taskset", "-c", "0"].map(String::from));
    }
    argv.extend(wrap.iter().cloned());
    argv.push(prog.to_owned());
    let mut c = tokio::process::Command::new(&argv[0]);
    c.args(&argv[1..]);
    c
}

/// The kernel's name for a process running `path` (its file name, cut to 15 bytes).
fn comm_of(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("bbedge")
        .chars()
        .take(15)
        .collect()
}

/// The pid of the process named `comm` that descends from `root` (`root` itself if so).
fn descendant(root: u32, comm: &str) -> Option<u32> {
    let stat = |pid: u32| -> Option<(String, u32)> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (l, r) = (s.find('(')?, s.rfind(')')?);
        let ppid = s.get(r + 2..)?.split_whitespace().nth(1)?.parse().ok()?;
        Some((s.get(l + 1..r)?.to_owned(), ppid))
    };
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Some((name, _)) = stat(pid) else { continue };
        if name != comm {
            continue;
        }
        let mut p = pid;
        for _ in 0..16 {
            if p == root {
                return Some(pid);
            }
            match stat(p) {
                Some((_, pp)) if pp > 1 => p = pp,
                _ => break,
            }
        }
    }
    None
}

async fn start_daemon(a: &Args) -> Hub {
    let state = tempfile::tempdir().expect("tempdir");
    let mut child = command(&a.bbedge, &a.wrap, a.split_cores)
        .args(["run", "--log-format", "json"])
        .envs(env(state.path()))
        // As under systemd: a backtrace setting makes std resolve symbols (MiBs of
        // heap in a debug build).
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("bbedge starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let ready = loop {
        let line = lines
            .next_line()
            .await
            .expect("log")
            .expect("daemon exited early");
        let v: Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "bbedge ready" {
            break v;
        }
    };
    let root = child.id().expect("pid");
    let pid = descendant(root, &comm_of(&a.bbedge)).unwrap_or(root);
    let realtime: SocketAddr = ready["realtime_addr"]
        .as_str()
        .expect("realtime")
        .parse()
        .expect("addr");
    let health = ready["health_addr"].as_str().expect("health").to_owned();
    let status: Value = reqwest::get(format!("http://{health}/status"))
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    let room = status["rooms"]["device_room"]
        .as_str()
        .expect("device room")
        .trim_start_matches("device:")
        .to_owned();
    let agent = token(a, state.path(), "agent").await;
    let observer = token(a, state.path(), "observer").await;
    // Idle is after the set-up above (a /status request, two tokens: code that would
    // otherwise count as idle) and after the daemon gave back its start-up pages
    // (src/memory.rs: 10 s after it is ready, the line just before); a build from
    // before that says nothing, hence the bound.
    let released = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("start-up pages") {
                return true;
            }
        }
        false
    });
    if !released.await.unwrap_or(false) {
        println!("  (the daemon did not say it released its start-up pages)");
    }
    tokio::spawn(async move {
        let mut told = false;
        while let Ok(Some(l)) = lines.next_line().await {
            if !told && l.contains("task_bytes") {
                println!("  daemon: {l}");
                told = true;
            }
        }
    });
    Hub {
        child,
        pid,
        addr: realtime,
        path: format!("/realtime/devices/{room}"),
        agent: Some(agent),
        observer: Some(observer),
        health: Some(health),
        _state: Some(state),
    }
}

async fn token(a: &Args, state: &std::path::Path, role: &str) -> String {
    let out = tokio::process::Command::new(&a.bbedge)
        .args(["token", "add", "--role", role])
        .envs(env(state))
        .output()
        .await
        .expect("token add");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("token:"))
        .expect("token printed")
        .trim()
        .to_owned()
}

/// The baseline: this binary with `--bare-hub`, which prints `listening <addr>`.
async fn start_bare(a: &Args) -> Hub {
    let me = std::env::current_exe()
        .expect("own path")
        .display()
        .to_string();
    let mut child = command(&me, &a.wrap, a.split_cores)
        .arg("--bare-hub")
        .args(["--bare-workers", &a.bare_workers.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("bare hub starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = loop {
        let line = lines
            .next_line()
            .await
            .expect("stdout")
            .expect("bare hub exited early");
        if let Some(addr) = line.strip_prefix("listening ") {
            break addr.parse().expect("addr");
        }
    };
    let root = child.id().expect("pid");
    Hub {
        pid: descendant(root, &comm_of(&me)).unwrap_or(root),
        child,
        addr,
        path: "/".into(),
        agent: None,
        observer: None,
        health: None,
        _state: None,
    }
}

/// Sends `sig` to a hub this tool started.
#[allow(unsafe_code)] // kill(2): no memory is involved; the tool's own child
fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid this tool started; no memory is involved.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// SIGTERM to the hub (a profiler around it then writes its data), SIGKILL after 20 s.
async fn stop(mut h: Hub) {
    signal(h.pid, libc::SIGTERM);
    if tokio::time::timeout(Duration::from_secs(20), h.child.wait())
        .await
        .is_err()
    {
        let _ = h.child.kill().await;
    }
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// Anonymous memory only (heap, stacks): RSS without the executable's and libraries'
/// file pages, which depend on what was run and on the page cache.
fn anon_kib(pid: u32) -> u64 {
    status_kib(pid, "RssAnon:")
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(key)
                    .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
            })
        })
        .unwrap_or(0)
}

/// Waits until the hub is idle: 500 ms, then until its CPU time stands still for
/// 300 ms (at most 10 s more). The joins' presence (each join is news to everyone in
/// the room) is still being written for a while after the last join when the hub has
/// one worker; the connections are not idle before that.
async fn settled(pid: u32) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut last = cpu_seconds(pid);
    for _ in 0..33 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = cpu_seconds(pid);
        if now <= last {
            return;
        }
        last = now;
    }
}

/// CPU seconds (user + system, all threads, living and dead) the process has used.
#[allow(unsafe_code)] // a libc call with no memory involved, in a measurement tool
fn cpu_seconds(pid: u32) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.get(s.rfind(')')? + 2..)?;
            let f: Vec<&str> = rest.split_whitespace().collect();
            // After the name: state(0) ... utime(11) stime(12).
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .unwrap_or(0.0)
        / tick
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

async fn connect(addr: SocketAddr, path: &str, token: Option<&str>) -> Ws {
    let mut req = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("request");
    if let Some(t) = token {
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("header"),
        );
    }
    // Nagle off, as the daemon does on its side: with it on, a 512-byte frame sent while
    // the previous one is unacknowledged waits for the peer's delayed ACK (~40 ms).
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true)
        .await
        .expect("connects");
    if token.is_some() {
        // connection.ack and room_state
        for _ in 0..2 {
            let _ = ws.next().await;
        }
    }
    ws
}

/// Latencies in µs from every observer, and frames counted (in all, and per observer).
struct Tally {
    lat_us: Mutex<Vec<u32>>,
    frames: AtomicU64,
    per_observer: Vec<AtomicU64>,
}

impl Tally {
    fn new(observers: usize) -> Self {
        Tally {
            lat_us: Mutex::new(Vec::new()),
            frames: AtomicU64::new(0),
            per_observer: (0..observers).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Frames the slowest observer has received.
    fn slowest(&self) -> u64 {
        self.per_observer
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }
}

/// The flat-out runs send as fast as the slowest observer keeps up: at most this many
/// frames ahead of it. Below both bbedge's `send_queue_frames` (256) and the baseline's
/// channel (1024), so neither side loses an observer or a frame and the rates compare
/// like with like. (Unwindowed, the agent outruns the observers within a second and
/// bbedge closes all of them as slow consumers, 1013, as designed.)
const FLAT_OUT_WINDOW: u64 = 128;

fn observe(
    me: usize,
    mut ws: Ws,
    epoch: Instant,
    tally: Arc<Tally>,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut local = Vec::with_capacity(8192);
        loop {
            let m = tokio::select! { () = stop.cancelled() => break, m = ws.next() => m };
            let Some(Ok(Message::Text(t))) = m else {
                if matches!(m, Some(Ok(_))) {
                    continue;
                }
                break;
            };
            // Cheap: find "t": without parsing the whole frame.
            if let Some(i) = t.find("\"t\":") {
                let rest = &t[i + 4..];
                let end = rest
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len());
                if let Ok(sent) = rest[..end].parse::<u64>() {
                    let now = epoch.elapsed().as_micros() as u64;
                    local.push(now.saturating_sub(sent) as u32);
                    tally.frames.fetch_add(1, Ordering::Relaxed);
                    tally.per_observer[me].fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        tally.lat_us.lock().expect("lock").extend(local);
    })
}

fn frame(epoch: Instant, n: u64, bytes: usize) -> String {
    let head = format!(
        "{{\"type\":\"status\",\"id\":\"f-{n}\",\"timestamp\":\"2026-06-20T19:00:00.000Z\",\"payload\":{{\"t\":{},\"pad\":\"",
        epoch.elapsed().as_micros()
    );
    let pad = bytes.saturating_sub(head.len() + 3);
    format!("{head}{}\"}}}}", "x".repeat(pad))
}

struct Run {
    /// Frames every observer received together, per second of sending.
    frames_per_s: f64,
    /// Frames the agent sent per second.
    sent_per_s: f64,
    /// Frames delivered in all.
    delivered: u64,
    /// The hub's CPU seconds from the first frame sent to the last one landed.
    cpu_s: f64,
    p50: u32,
    p99: u32,
    max: u32,
}

impl Run {
    fn per_cpu_s(&self) -> f64 {
        self.delivered as f64 / self.cpu_s.max(0.001)
    }
}

/// Agent sends for `seconds` at `rate` (0: as fast as the slowest observer keeps up,
/// [`FLAT_OUT_WINDOW`]); observers count; the hub's CPU is read around it.
async fn fanout(h: &Hub, a: &Args, rate: u64) -> Run {
    let (addr, path) = (h.addr, h.path.as_str());
    let epoch = Instant::now();
    let tally = Arc::new(Tally::new(a.observers));
    let stop = tokio_util::sync::CancellationToken::new();
    let agent = connect(addr, path, h.agent.as_deref()).await;
    let mut obs = Vec::new();
    for me in 0..a.observers {
        obs.push(observe(
            me,
            connect(addr, path, h.observer.as_deref()).await,
            epoch,
            tally.clone(),
            stop.clone(),
        ));
    }
    // The agent drains whatever it is sent (presence frames) so it never blocks.
    let (mut sink, mut stream) = agent.split();
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
    // The observers' joins settle before the clock starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu0 = cpu_seconds(h.pid);
    let start = Instant::now();
    let end = start + Duration::from_secs(a.seconds);
    let mut n = 0u64;
    // Below tokio's 1 ms timer resolution the ticks come in bursts (Burst catches up),
    // so the average rate is `rate` and the agent sends a few frames per millisecond.
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while Instant::now() < end {
        if rate > 0 {
            tick.tick().await;
        } else {
            while n >= tally.slowest() + FLAT_OUT_WINDOW && Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        n += 1;
        if sink
            .send(Message::Text(frame(epoch, n, a.bytes).into()))
            .await
            .is_err()
        {
            break;
        }
    }
    let sent_for = start.elapsed().as_secs_f64();
    // Let in-flight frames land, then stop the observers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu_s = cpu_seconds(h.pid) - cpu0;
    stop.cancel();
    for o in obs {
        let _ = o.await;
    }
    let _ = sink.close().await;
    drain.abort();
    let mut lat = std::mem::take(&mut *tally.lat_us.lock().expect("lock"));
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let delivered = tally.frames.load(Ordering::Relaxed);
    Run {
        frames_per_s: delivered as f64 / sent_for,
        sent_per_s: n as f64 / sent_for,
        delivered,
        cpu_s,
        p50: pct(0.50),
        p99: pct(0.99),
        max: lat.last().copied().unwrap_or(0),
    }
}

/// The baseline hub: a bare tokio-tungstenite broadcast loop, every text frame to every
/// other client. Batched like bbedge's writer (feed every queued frame, flush once),
/// with an 8 KiB read buffer. Runs until killed.
async fn bare_hub() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    println!("listening {addr}");
    let (tx, _) = tokio::sync::broadcast::channel::<(u64, Utf8Bytes)>(1024);
    let mut next = 0u64;
    while let Ok((tcp, _)) = listener.accept().await {
        let _ = tcp.set_nodelay(true);
        next += 1;
        let me = next;
        let tx = tx.clone();
        let mut rx = tx.subscribe();
        tokio::spawn(async move {
            let cfg = WebSocketConfig::default().read_buffer_size(BARE_READ_BUFFER);
            let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(cfg)).await else {
                return;
            };
            let (mut sink, mut stream) = ws.split();
            let w = tokio::spawn(async move {
                use tokio::sync::broadcast::error::{RecvError, TryRecvError};
                loop {
                    let mut next = match rx.recv().await {
                        Ok(m) => Some(m),
                        // A lagging client loses the oldest frames; it is not closed.
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => return,
                    };
                    while let Some((from, t)) = next.take() {
                        if from != me && sink.feed(Message::Text(t)).await.is_err() {
                            return;
                        }
                        next = loop {
                            match rx.try_recv() {
                                Ok(m) => break Some(m),
                                Err(TryRecvError::Lagged(_)) => {}
                                Err(_) => break None,
                            }
                        };
                    }
                    if sink.flush().await.is_err() {
                        return;
                    }
                }
            });
            while let Some(Ok(m)) = stream.next().await {
                if let Message::Text(t) = m {
                    let _ = tx.send((me, t));
                }
            }
            w.abort();
        });
    }
}

fn report(name: &str, r: &Run) {
    println!(
        "  {name:<24} sent {:>6.0}/s  delivered {:>8.0}/s  hub CPU {:>5.2} s  {:>9.0} deliveries/CPU-s   p50 {:>6} µs  p99 {:>6} µs  max {:>7} µs",
        r.sent_per_s, r.frames_per_s, r.cpu_s, r.per_cpu_s(), r.p50, r.p99, r.max
    );
}

/// One hub's numbers in one round.
struct Measure {
    idle_rss_kib: u64,
    idle_anon_kib: u64,
    per_conn_kib: f64,
    cpu: Run,
    lat: Run,
    slow_closed: u64,
    observers: usize,
}

async fn measure(h: &Hub, a: &Args, name: &str) -> Measure {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_rss_kib = rss_kib(h.pid);
    let idle_anon_kib = anon_kib(h.pid);
    let mut per_conn_kib = 0.0;
    let mut from_idle_kib = 0.0;
    if a.idle > 0 {
        // The cost of one more connection: the slope from a tenth of them to all. From
        // idle, the code a connection runs (paged back in once, for the first: bbedge
        // gives its pages back when settled, src/memory.rs) would be charged to each.
        let warm = (a.idle / 10).max(1).min(a.idle - 1);
        let mut held = Vec::with_capacity(a.idle);
        let mut warm_rss_kib = idle_rss_kib;
        for i in 0..a.idle {
            if i == warm {
                settled(h.pid).await;
                warm_rss_kib = rss_kib(h.pid);
            }
            held.push(connect(h.addr, &h.path, h.observer.as_deref()).await);
        }
        settled(h.pid).await;
        let with = rss_kib(h.pid);
        from_idle_kib = with.saturating_sub(idle_rss_kib) as f64 / a.idle as f64;
        per_conn_kib = if a.idle > warm {
            with.saturating_sub(warm_rss_kib) as f64 / (a.idle - warm) as f64
        } else {
            from_idle_kib
        };
        if a.kill_at_idle {
            println!(
                "{per_conn_kib:.1} KiB per idle connection; killing pid {}",
                h.pid
            );
            signal(h.pid, libc::SIGKILL);
            tokio::time::sleep(Duration::from_secs(5)).await;
            std::process::exit(0);
        }
        drop(held);
        // The departures' presence.left go out after the rooms' grace period (set in
        // `env`); until then they would be counted in the CPU run as hub CPU without a
        // delivery (1,000 leaves to 100 observers). Both hubs wait the same.
        tokio::time::sleep(Duration::from_secs(GRACE_PERIOD_S + 1)).await;
    }
    println!(
        "  {name:<24} RSS idle {idle_rss_kib} KiB (anonymous {idle_anon_kib} KiB); {per_conn_kib:.1} KiB per idle connection ({}; from idle {from_idle_kib:.1})",
        a.idle
    );
    let cpu = fanout(h, a, a.cpu_rate).await;
    report(&format!("{name} paced {}/s", a.cpu_rate), &cpu);
    let lat = fanout(h, a, a.rate).await;
    report(&format!("{name} paced {}/s", a.rate), &lat);
    if a.flat_out {
        let flat = fanout(h, a, 0).await;
        report(&format!("{name} flat out"), &flat);
    }
    let slow_closed = slow_closed(h).await;
    if h.health.is_some() {
        println!(
            "  {name:<24} RSS after the runs {} KiB; observers closed as slow consumers: {slow_closed}",
            rss_kib(h.pid)
        );
    }
    Measure {
        idle_rss_kib,
        idle_anon_kib,
        per_conn_kib,
        cpu,
        lat,
        slow_closed,
        observers: a.observers,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn summary(name: &str, ms: &[Measure]) -> [f64; 8] {
    let m = |f: &dyn Fn(&Measure) -> f64| median(ms.iter().map(f).collect());
    let row = [
        m(&|x| x.cpu.per_cpu_s()),
        m(&|x| x.cpu.sent_per_s),
        m(&|x| f64::from(x.lat.p99)),
        m(&|x| f64::from(x.lat.p50)),
        m(&|x| x.idle_rss_kib as f64),
        m(&|x| x.per_conn_kib),
        m(&|x| x.idle_anon_kib as f64),
        // Share of the frames sent that every observer received.
        m(&|x| x.cpu.frames_per_s / (x.cpu.sent_per_s * x.observers as f64).max(1.0)),
    ];
    println!(
        "| {name} | {:.2} M (sent {:.0}/s, {:.1} % delivered) | {:.2} ms (p50 {:.2}) | {:.1} MiB (anonymous {:.1}) | {:.1} | {} |",
        row[0] / 1e6,
        row[1],
        100.0 * row[7],
        row[2] / 1000.0,
        row[3] / 1000.0,
        row[4] / 1024.0,
        row[6] / 1024.0,
        row[5],
        ms.iter().map(|x| x.slow_closed).sum::<u64>()
    );
    row
}

fn main() {
    let a = args();
    if a.bare_hub {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if a.bare_workers > 0 {
            b.worker_threads(a.bare_workers);
        }
        let rt = b.enable_all().build().expect("runtime");
        rt.block_on(bare_hub());
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(a));
}

async fn run(a: Args) {
    if a.split_cores {
        // Every thread of this process (the runtime's workers exist by now) to CPU 1.
        let pinned = std::process::Command::new("taskset")
            .args(["-a", "-p", "-c", "1", &std::process::id().to_string()])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            pinned,
            "--split-cores needs taskset (util-linux) and two CPUs"
        );
        println!("split cores: hubs on CPU 0; clients on CPU 1");
    }
    println!(
        "rooms load: {} round(s); {} observers, {} B status frames, {} s per run; CPU run paced {}/s, latency run paced {}/s; {} idle connections; load average {}",
        a.rounds, a.observers, a.bytes, a.seconds, a.cpu_rate, a.rate, a.idle, load_average()
    );
    let want = |h: &str| a.only.as_deref().is_none_or(|o| o == h);
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for round in 1..=a.rounds {
        println!("round {round} (load average {})", load_average());
        if want("bbedge") {
            let h = start_daemon(&a).await;
            ours.push(measure(&h, &a, "bbedge").await);
            stop(h).await;
        }
        if want("bare") {
            let h = start_bare(&a).await;
            bare.push(measure(&h, &a, "bare").await);
            stop(h).await;
        }
    }
    println!(
        "\nmedians of {} (load average {}):\n| hub | deliveries per hub CPU-second (paced {}/s) | p99 at {}/s | RSS idle | KiB per idle connection ({}) | closed 1013 |\n|---|---|---|---|---|---|",
        a.rounds,
        load_average(),
        a.cpu_rate,
        a.rate,
        a.idle
    );
    let bare_name = match a.bare_workers {
        0 => "bare tokio-tungstenite, batched, 8 KiB read buffer".to_owned(),
        n => format!("bare tokio-tungstenite, batched, 8 KiB read buffer, {n} worker thread(s)"),
    };
    let b = (!bare.is_empty()).then(|| summary(&bare_name, &bare));
    let o = (!ours.is_empty()).then(|| summary("bbedge", &ours));
    if let (Some(o), Some(b)) = (o, b) {
        println!(
            "bbedge / bare: {:.0} % of the deliveries per CPU-second; p99 {:.2} vs {:.2} ms",
            100.0 * o[0] / b[0].max(1.0),
            o[2] / 1000.0,
            b[2] / 1000.0
        );
    }
    if a.attempts > 0 || a.churn_seconds > 0 {
        let h = start_daemon(&a).await;
        abuse(&h, &a).await;
        stop(h).await;
    }
}

/// The connection-attempts and slow-consumer-churn phases (bbedge only).
async fn abuse(d: &Hub, a: &Args) {
    let pid = d.pid;
    let observer = d.observer.clone().unwrap_or_default();
    let agent = d.agent.clone().unwrap_or_default();
    if a.attempts > 0 {
        // Many connection attempts, 1,000 in flight at a time, each held until its
        // first frame or close: counts joined / refused (4029) / dropped unanswered.
        let started = Instant::now();
        let (joined, refused, dropped) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let gate = Arc::new(tokio::sync::Semaphore::new(1000));
        let mut all = Vec::with_capacity(a.attempts);
        for _ in 0..a.attempts {
            let permit = gate.clone().acquire_owned().await.expect("gate");
            let (j, r, x) = (joined.clone(), refused.clone(), dropped.clone());
            let (addr, path, tok) = (d.addr, d.path.clone(), observer.clone());
            all.push(tokio::spawn(async move {
                let _permit = permit;
                let mut req = format!("ws://{addr}{path}")
                    .into_client_request()
                    .expect("request");
                req.headers_mut().insert(
                    "authorization",
                    format!("Bearer {tok}").parse().expect("header"),
                );
                match tokio_tungstenite::connect_async(req).await {
                    Ok((mut ws, _)) => match ws.next().await {
                        Some(Ok(Message::Text(_))) => {
                            j.fetch_add(1, Ordering::Relaxed);
                            // Held open until every attempt is made.
                            return Some(ws);
                        }
                        Some(Ok(Message::Close(Some(c)))) if u16::from(c.code) == 4029 => {
                            r.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            x.fetch_add(1, Ordering::Relaxed);
                        }
                    },
                    Err(_) => {
                        x.fetch_add(1, Ordering::Relaxed);
                    }
                }
                None
            }));
        }
        let mut held = Vec::new();
        for t in all {
            if let Ok(Some(ws)) = t.await {
                held.push(ws);
            }
        }
        let rss_held = rss_kib(pid);
        drop(held);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut probe = connect(d.addr, &d.path, Some(observer.as_str())).await;
        let _ = probe
            .send(Message::Text("{\"type\":\"ping\"}".into()))
            .await;
        let alive = matches!(probe.next().await, Some(Ok(Message::Text(_))));
        println!(
            "{} connection attempts in {:.1} s (joined ones held): joined {}, refused 4029 {}, dropped {}; RSS {rss_held} KiB; after closing them a new client is served: {alive}, RSS {} KiB",
            a.attempts,
            started.elapsed().as_secs_f64(),
            joined.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed),
            dropped.load(Ordering::Relaxed),
            rss_kib(pid)
        );
    }

    if a.churn_seconds > 0 {
        // Slow consumers (never read) joined and replaced while the agent sends.
        let before = rss_kib(pid);
        let end = Instant::now() + Duration::from_secs(a.churn_seconds);
        let mut agent_ws = connect(d.addr, &d.path, Some(agent.as_str())).await;
        let mut slow: Vec<Ws> = Vec::new();
        let (mut lo, mut hi) = (u64::MAX, 0);
        let mut n = 0;
        let epoch = Instant::now();
        while Instant::now() < end {
            while slow.len() < 50 {
                slow.push(connect(d.addr, &d.path, Some(observer.as_str())).await);
            }
            for _ in 0..200 {
                n += 1;
                let _ = agent_ws
                    .send(Message::Text(frame(epoch, n, a.bytes).into()))
                    .await;
            }
            // Replace the ten oldest.
            slow.drain(..10);
            let r = rss_kib(pid);
            lo = lo.min(r);
            hi = hi.max(r);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "slow-consumer churn for {} s: RSS before {before} KiB, min {lo} KiB, max {hi} KiB",
            a.churn_seconds
        );
    }
}
