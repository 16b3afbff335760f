//! Load tool for the local rooms (issue 3, "Measure"): starts the real `bbedge` binary,
//! one agent and N observers on loopback, and reports delivered frames/s, fan-out
//! latency (p50/p99/max) and the daemon's RSS; then runs the same clients against a bare
//! tokio-tungstenite broadcast loop in this process as the baseline.
//!
//! ```text
//! cargo bench --bench rooms_load -- [--observers 100] [--bytes 512] [--rate 1000]
//!     [--seconds 5] [--idle 1000] [--churn-seconds 0] [--attempts 10000] [--split-cores 1]
//! ```
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
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Args {
    observers: usize,
    bytes: usize,
    rate: u64,
    seconds: u64,
    idle: usize,
    churn_seconds: u64,
    attempts: usize,
    /// `--split-cores 1`: the daemon on CPU 0, this tool (its clients, and the
    /// baseline server) on CPU 1, with `taskset`, as if the clients were other hosts.
    split_cores: bool,
}

fn args() -> Args {
    let mut a = Args {
        observers: 100,
        bytes: 512,
        rate: 1000,
        seconds: 5,
        idle: 1000,
        churn_seconds: 0,
        attempts: 10_000,
        split_cores: false,
    };
    let v: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i + 1 < v.len() {
        let n = v[i + 1].parse().unwrap_or(0);
        match v[i].as_str() {
            "--observers" => a.observers = n as usize,
            "--bytes" => a.bytes = n as usize,
            "--rate" => a.rate = n,
            "--seconds" => a.seconds = n,
            "--idle" => a.idle = n as usize,
            "--churn-seconds" => a.churn_seconds = n,
            "--attempts" => a.attempts = n as usize,
            "--split-cores" => a.split_cores = n != 0,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

/// The daemon under test.
struct Daemon {
    child: tokio::process::Child,
    realtime: SocketAddr,
    health: String,
    device_path: String,
    state: tempfile::TempDir,
}

/// Observers the daemon has closed as slow consumers (1013) so far, from `/metrics`.
async fn slow_closed(d: &Daemon) -> u64 {
    let Ok(r) = reqwest::get(format!("http://{}/metrics", d.health)).await else {
        return 0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("bbedge_room_connections_dropped") && l.contains("slow_consumer"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

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
        ("BBEDGE_LOGGING__LEVEL", "warn,bbedge=info".into()),
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

async fn start_daemon(split_cores: bool) -> Daemon {
    let state = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_bbedge");
    let mut cmd = if split_cores {
        let mut c = tokio::process::Command::new("taskset");
        c.args(["-c", "0", bin]);
        c
    } else {
        tokio::process::Command::new(bin)
    };
    let mut child = cmd
        .args(["run", "--log-format", "json"])
        .envs(env(state.path()))
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
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
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
    Daemon {
        child,
        realtime,
        health,
        device_path: format!("/realtime/devices/{room}"),
        state,
    }
}

async fn token(d: &Daemon, role: &str) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_bbedge"))
        .args(["token", "add", "--role", role])
        .envs(env(d.state.path()))
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

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")
                    .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
            })
        })
        .unwrap_or(0)
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
    frames_per_s: f64,
    p50: u32,
    p99: u32,
    max: u32,
}

/// Agent sends for `seconds` at `rate` (0: as fast as the slowest observer keeps up,
/// [`FLAT_OUT_WINDOW`]); observers count.
async fn fanout(
    addr: SocketAddr,
    path: &str,
    agent_tok: Option<&str>,
    obs_tok: Option<&str>,
    a: &Args,
    rate: u64,
) -> Run {
    let epoch = Instant::now();
    let tally = Arc::new(Tally::new(a.observers));
    let stop = tokio_util::sync::CancellationToken::new();
    let agent = connect(addr, path, agent_tok).await;
    let mut obs = Vec::new();
    for me in 0..a.observers {
        obs.push(observe(
            me,
            connect(addr, path, obs_tok).await,
            epoch,
            tally.clone(),
            stop.clone(),
        ));
    }
    // The agent drains whatever it is sent (presence frames) so it never blocks.
    let (mut sink, mut stream) = agent.split();
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
    let start = Instant::now();
    let end = start + Duration::from_secs(a.seconds);
    let mut n = 0u64;
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
    Run {
        frames_per_s: tally.frames.load(Ordering::Relaxed) as f64 / sent_for,
        p50: pct(0.50),
        p99: pct(0.99),
        max: lat.last().copied().unwrap_or(0),
    }
}

/// A bare tokio-tungstenite broadcast loop: every text frame goes to every other client.
async fn baseline() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, _) =
        tokio::sync::broadcast::channel::<(u64, tokio_tungstenite::tungstenite::Utf8Bytes)>(1024);
    tokio::spawn(async move {
        let mut next = 0u64;
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            next += 1;
            let me = next;
            let tx = tx.clone();
            let mut rx = tx.subscribe();
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let (mut sink, mut stream) = ws.split();
                let w = tokio::spawn(async move {
                    loop {
                        let (from, t) = match rx.recv().await {
                            Ok(m) => m,
                            // A lagging client loses the oldest frames, like a slow
                            // consumer; it is not closed.
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(_) => break,
                        };
                        if from != me && sink.send(Message::Text(t)).await.is_err() {
                            break;
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
    });
    addr
}

fn report(name: &str, r: &Run) {
    println!(
        "{name:<28} {:>10.0} frames/s   p50 {:>6} µs   p99 {:>6} µs   max {:>7} µs",
        r.frames_per_s, r.p50, r.p99, r.max
    );
}

#[tokio::main]
async fn main() {
    let a = args();
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
        println!("split cores: daemon on CPU 0; clients and the baseline server on CPU 1");
    }
    let d = start_daemon(a.split_cores).await;
    let pid = d.child.id().expect("pid");
    let agent = token(&d, "agent").await;
    let observer = token(&d, "observer").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_rss = rss_kib(pid);
    println!(
        "bbedge rooms load: {} observers, {} B status frames, {} s per run, 2 cores shared",
        a.observers, a.bytes, a.seconds
    );
    println!("daemon RSS idle: {idle_rss} KiB");

    if a.idle > 0 {
        let mut held = Vec::with_capacity(a.idle);
        for _ in 0..a.idle {
            held.push(connect(d.realtime, &d.device_path, Some(&observer)).await);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let with = rss_kib(pid);
        println!(
            "daemon RSS with {} idle connections: {with} KiB ({:.1} KiB per connection); \
             closed as slow consumers while joining: {}",
            a.idle,
            (with.saturating_sub(idle_rss)) as f64 / a.idle as f64,
            slow_closed(&d).await
        );
        drop(held);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let paced = fanout(
        d.realtime,
        &d.device_path,
        Some(&agent),
        Some(&observer),
        &a,
        a.rate,
    )
    .await;
    report(&format!("bbedge paced {}/s", a.rate), &paced);
    println!(
        "daemon RSS after paced run: {} KiB; observers closed as slow consumers so far: {}",
        rss_kib(pid),
        slow_closed(&d).await
    );
    let flat = fanout(
        d.realtime,
        &d.device_path,
        Some(&agent),
        Some(&observer),
        &a,
        0,
    )
    .await;
    report("bbedge flat out", &flat);
    println!(
        "daemon RSS after flat-out run: {} KiB; observers closed as slow consumers so far: {}",
        rss_kib(pid),
        slow_closed(&d).await
    );

    let base = baseline().await;
    let bpaced = fanout(base, "/", None, None, &a, a.rate).await;
    report(&format!("baseline paced {}/s", a.rate), &bpaced);
    let bflat = fanout(base, "/", None, None, &a, 0).await;
    report("baseline flat out", &bflat);
    println!(
        "bbedge / baseline delivered (flat out): {:.0}%",
        100.0 * flat.frames_per_s / bflat.frames_per_s.max(1.0)
    );

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
            let (addr, path, tok) = (d.realtime, d.device_path.clone(), observer.clone());
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
        let mut probe = connect(d.realtime, &d.device_path, Some(&observer)).await;
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
        let mut agent_ws = connect(d.realtime, &d.device_path, Some(&agent)).await;
        let mut slow: Vec<Ws> = Vec::new();
        let (mut lo, mut hi) = (u64::MAX, 0);
        let mut n = 0;
        let epoch = Instant::now();
        while Instant::now() < end {
            while slow.len() < 50 {
                slow.push(connect(d.realtime, &d.device_path, Some(&observer)).await);
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
