//! The shipped systemd units: `systemd-analyze verify` accepts them, the daemon's unit
//! rates "OK" or better in `systemd-analyze security --offline=yes`, and its stop
//! timeout leaves room for the configured shutdown grace.
//!
//! The systemd-analyze tests skip (saying why) on a machine without it; CI installs it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The repository root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn unit_text(name: &str) -> String {
    let path = root().join("systemd").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every value of `key=` in the unit, in order (comments skipped).
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .collect()
}

/// The single value of `key=`; fails if it is missing or repeated.
fn value<'a>(unit: &'a str, key: &str) -> &'a str {
    match values(unit, key).as_slice() {
        [one] => one,
        other => panic!("expected exactly one {key}= in the unit, found {other:?}"),
    }
}

/// A systemd time span as used in our units: "20s", "1min", "500ms", "2min 30s", "30".
fn timespan(text: &str) -> Duration {
    let mut total = Duration::ZERO;
    for part in text.split_whitespace() {
        let digits = part.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let n: u64 = digits
            .parse()
            .unwrap_or_else(|_| panic!("time span {text:?}"));
        total += match &part[digits.len()..] {
            "" | "s" | "sec" => Duration::from_secs(n),
            "ms" | "msec" => Duration::from_millis(n),
            "m" | "min" => Duration::from_secs(n * 60),
            "h" | "hr" => Duration::from_secs(n * 3600),
            unit => panic!("time unit {unit:?} in {text:?} not handled by this test"),
        };
    }
    total
}

/// `systemd-analyze`, or `None` with the reason printed (the test then skips).
fn systemd_analyze() -> Option<Command> {
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(out) if out.status.success() => Some(Command::new("systemd-analyze")),
        Ok(out) => {
            println!("SKIP: systemd-analyze --version failed: {:?}", out.status);
            None
        }
        Err(e) => {
            println!("SKIP: systemd-analyze not found ({e}); install systemd to run this test");
            None
        }
    }
}

/// Copies `name` into a temp dir with `ExecStart=` pointing at `exec` (verify checks
/// that the program exists) and runs `systemd-analyze verify` on the copy.
fn verify(name: &str, shipped_exec: &str, exec: &Path) {
    let Some(mut analyze) = systemd_analyze() else {
        return;
    };
    let text = unit_text(name);
    let exec_start = value(&text, "ExecStart");
    assert!(
        exec_start.starts_with(shipped_exec),
        "{name}: the shipped ExecStart must run {shipped_exec}, found {exec_start:?}"
    );
    let rewritten = text.replace(
        &format!("ExecStart={shipped_exec}"),
        &format!("ExecStart={}", exec.display()),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join(name);
    std::fs::write(&copy, rewritten).expect("write unit copy");
    let out = analyze
        .arg("verify")
        .arg(&copy)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("run systemd-analyze verify");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Other units on the host may draw warnings of their own; ours must draw none.
    let ours: Vec<&str> = report.lines().filter(|l| l.contains(name)).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify {name}: {:?}\n{report}",
        out.status
    );
}

#[test]
fn daemon_unit_passes_systemd_analyze_verify() {
    verify(
        "bbedge.service",
        "/usr/bin/bbedge",
        Path::new(env!("CARGO_BIN_EXE_bbedge")),
    );
}

#[test]
fn firstboot_unit_passes_systemd_analyze_verify() {
    verify(
        "bbedge-firstboot.service",
        "/usr/lib/bbedge/firstboot.sh",
        &root().join("cross/firstboot.sh"),
    );
}

/// `→ Overall exposure level for bbedge.service: 1.6 OK 🙂` → (1.6, "OK").
fn overall_exposure(report: &str) -> Option<(f64, String)> {
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level for"))?;
    let (_, tail) = line.rsplit_once(": ")?;
    let mut words = tail.split_whitespace();
    let score = words.next()?.parse().ok()?;
    let rating = words.next()?.to_owned();
    Some((score, rating))
}

#[test]
fn exposure_parser_reads_systemds_summary_line() {
    let report = "✗ PrivateNetwork=  Service has access to the host's network  0.5\n\n\
                  → Overall exposure level for bbedge.service: 1.6 OK 🙂\n";
    assert_eq!(overall_exposure(report), Some((1.6, "OK".to_owned())));
    assert_eq!(
        overall_exposure("→ Overall exposure level for x.service: 9.6 UNSAFE 😨"),
        Some((9.6, "UNSAFE".to_owned()))
    );
    assert_eq!(overall_exposure("no summary"), None);
}

#[test]
fn daemon_unit_security_exposure_is_ok_or_better() {
    let Some(mut analyze) = systemd_analyze() else {
        return;
    };
    let unit = root().join("systemd/bbedge.service");
    let out = analyze
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .env("SYSTEMD_LOG_COLOR", "0")
        .env("SYSTEMD_COLORS", "0")
        .output()
        .expect("run systemd-analyze security");
    let report = String::from_utf8_lossy(&out.stdout);
    let (score, rating) = overall_exposure(&report).unwrap_or_else(|| {
        panic!(
            "no exposure summary from systemd-analyze security ({:?}):\n{report}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    println!("bbedge.service exposure: {score} {rating}");
    // systemd's scale: PERFECT 0, SAFE < 1, OK < 5, then MEDIUM, EXPOSED, UNSAFE.
    assert!(
        ["PERFECT", "SAFE", "OK"].contains(&rating.as_str()) && score < 5.0,
        "bbedge.service rates {score} {rating}; it must stay OK or better:\n{report}"
    );
}

#[test]
fn stop_timeout_exceeds_the_default_shutdown_grace() {
    let config: toml::Value = toml::from_str(
        &std::fs::read_to_string(root().join("config/bbedge.toml")).expect("read config"),
    )
    .expect("config/bbedge.toml parses");
    let grace = config["daemon"]["shutdown_grace"]
        .as_integer()
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .expect("[daemon] shutdown_grace is a whole number of seconds");
    let unit = unit_text("bbedge.service");
    let stop = timespan(value(&unit, "TimeoutStopSec"));
    // The grace covers in-flight work; the final snapshot save and store flush come
    // after it, so systemd must wait visibly longer before it sends SIGKILL.
    assert!(
        stop >= grace + Duration::from_secs(5),
        "TimeoutStopSec={stop:?} must exceed [daemon] shutdown_grace={grace:?} by at least 5 s"
    );
}

#[test]
fn daemon_unit_has_the_contract_the_daemon_relies_on() {
    let unit = unit_text("bbedge.service");
    assert_eq!(value(&unit, "Type"), "notify");
    assert_eq!(value(&unit, "NotifyAccess"), "main");
    assert_eq!(value(&unit, "ExecStart"), "/usr/bin/bbedge run");
    assert_eq!(value(&unit, "User"), "bbedge");
    assert_eq!(value(&unit, "SupplementaryGroups"), "gpio");
    assert_eq!(value(&unit, "StateDirectory"), "bbedge");
    assert_eq!(value(&unit, "StateDirectoryMode"), "0750");
    assert_eq!(value(&unit, "ConfigurationDirectory"), "bbedge");
    assert_eq!(value(&unit, "Restart"), "on-failure");
    // The box comes back by itself: no start limit that would leave it failed for good.
    assert_eq!(value(&unit, "StartLimitIntervalSec"), "0");
    assert!(timespan(value(&unit, "RestartSec")) >= Duration::from_secs(1));
    // What restarting cannot fix stops at once: the daemon's own list, exactly.
    let prevent: Vec<i32> = value(&unit, "RestartPreventExitStatus")
        .split_whitespace()
        .map(|c| c.parse().expect("a numeric exit status"))
        .collect();
    assert_eq!(prevent, bbedge::commands::run::GIVES_UP.to_vec());
    assert_eq!(prevent, vec![64, 78], "EX_USAGE and EX_CONFIG");
    assert!(timespan(value(&unit, "WatchdogSec")) >= Duration::from_secs(10));
    assert_eq!(value(&unit, "ProtectSystem"), "strict");
    assert!(
        values(&unit, "PrivateDevices").is_empty(),
        "PrivateDevices= would hide the GPIO devices; use DeviceAllow="
    );
    let devices = values(&unit, "DeviceAllow").join(" ");
    for dev in ["/dev/gpiomem", "char-gpiochip"] {
        assert!(devices.contains(dev), "DeviceAllow= lacks {dev}: {devices}");
    }
    // The LED's sysfs files sit behind /sys/class/leds symlinks into /sys/devices,
    // which ProtectKernelTunables=yes would make read-only.
    assert_eq!(value(&unit, "ProtectKernelTunables"), "no");
    let rw = values(&unit, "ReadWritePaths").join(" ");
    assert!(
        rw.contains("/sys/class/leds"),
        "ReadWritePaths= lacks the LED: {rw}"
    );
}

#[test]
fn timespan_parser_handles_the_units_used() {
    assert_eq!(timespan("20s"), Duration::from_secs(20));
    assert_eq!(timespan("30"), Duration::from_secs(30));
    assert_eq!(timespan("2min 30s"), Duration::from_secs(150));
    assert_eq!(timespan("500ms"), Duration::from_millis(500));
}
