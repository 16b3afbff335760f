//! The status LED end to end: the running daemon (sim or a fake sysfs tree), /status,
//! /metrics, the control socket and the `bbedge led` command.

mod support;

use bbedge::signal::{DeviceState, Facts, Link};
use serde_json::json;
use std::path::Path;
use support::led::{shows, FakeSysfs, WAIT};
use support::TestBox;

/// A fact change, the state it leads to and that state's pattern.
type Step = (fn(&mut Facts), DeviceState, &'static str);

fn toml_str(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

#[tokio::test]
async fn status_and_metrics_follow_the_device_state_through_the_led() {
    let tb = TestBox::start(&[]).await;
    shows(&tb.led, DeviceState::Unpaired).await;
    let led = &tb.status().await["led"];
    assert_eq!(led["backend"], "sim");
    assert_eq!(led["reason"], "configured: backend = \"sim\"");
    assert_eq!(
        (&led["state"], &led["pattern"]),
        (&json!("unpaired"), &json!("blip"))
    );
    assert_eq!(led["sim"]["recent_edges"][0]["on"], true);

    let steps: [Step; 4] = [
        (
            |f| {
                f.paired = true;
                f.link = Link::Online;
            },
            DeviceState::Online,
            "solid",
        ),
        (
            |f| f.link = Link::Offline,
            DeviceState::OfflineBuffering,
            "wink",
        ),
        (|f| f.recording = true, DeviceState::Recording, "heartbeat"),
        (|f| f.storage_fault = true, DeviceState::StorageFault, "sos"),
    ];
    for (apply, state, pattern) in steps {
        tb.hub.update(apply);
        shows(&tb.led, state).await;
        let status = tb.status().await;
        assert_eq!(status["state"], state.as_str());
        assert_eq!(status["led"]["state"], state.as_str());
        assert_eq!(status["led"]["pattern"], pattern);
    }
    let history: Vec<String> = tb.status().await["led"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        history,
        [
            "booting",
            "unpaired",
            "online",
            "offline_buffering",
            "recording",
            "storage_fault"
        ]
    );
    let (code, metrics) = tb.get("/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("bbedge_led_state{state=\"storage_fault\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("bbedge_led_state{state=\"online\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("bbedge_led_backend{backend=\"sim\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("bbedge_led_degraded 0"), "{metrics}");
    assert!(tb.status().await["led"]["degraded"].is_null());
    tb.stop().await;
}

#[tokio::test]
async fn identify_over_the_control_socket_blinks_then_returns_to_the_current_state() {
    let tb = TestBox::start(&[]).await;
    shows(&tb.led, DeviceState::Unpaired).await;
    let reply = bbedge::control::request(tb.dir.path(), "led.identify", json!({"seconds": 1}))
        .await
        .expect("daemon answers");
    assert_eq!(reply["seconds"], 1);
    shows(&tb.led, DeviceState::Identify).await;
    let status = tb.status().await;
    assert_eq!(
        (&status["state"], &status["led"]["pattern"]),
        (&json!("identify"), &json!("burst"))
    );
    shows(&tb.led, DeviceState::Unpaired).await;
    assert!(!tb.hub.facts().identify);

    // A `led test` step overrides what the LED shows, not the device state.
    bbedge::control::request(
        tb.dir.path(),
        "led.show",
        json!({"state": "storage_fault", "ms": 60_000}),
    )
    .await
    .expect("daemon answers");
    shows(&tb.led, DeviceState::StorageFault).await;
    let status = tb.status().await;
    assert_eq!(
        (&status["state"], &status["led"]["testing"]),
        (&json!("unpaired"), &json!(true))
    );

    let bad = bbedge::control::request(tb.dir.path(), "led.identify", json!({"seconds": 0}))
        .await
        .unwrap_err();
    assert!(
        bad.to_string().contains("seconds must be 1 to 3600"),
        "{bad}"
    );
    let bad = bbedge::control::request(
        tb.dir.path(),
        "led.show",
        json!({"state": "party", "ms": 5}),
    )
    .await
    .unwrap_err();
    assert!(bad.to_string().contains("unknown state \"party\""), "{bad}");
    tb.stop().await;
}

#[tokio::test]
async fn the_led_command_asks_the_running_daemon_to_identify() {
    let tb = TestBox::start(&[]).await;
    shows(&tb.led, DeviceState::Unpaired).await;
    let out = support::binary::command()
        .args(["led", "identify", "--seconds", "2"])
        .env("BBEDGE_DAEMON__STATE_DIR", toml_str(tb.dir.path()))
        .env("BBEDGE_PAIRING__BOOT_FILE", "\"\"")
        .output();
    let out = tokio::time::timeout(WAIT, out).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("The daemon blinks identify on its sim LED for 2 s"),
        "{stdout}"
    );
    shows(&tb.led, DeviceState::Identify).await;
    tb.stop().await;
}

#[tokio::test]
async fn shutdown_shows_shutting_down_and_gives_the_led_back() {
    let tb = TestBox::start(&[]).await;
    shows(&tb.led, DeviceState::Unpaired).await;
    let led = tb.led.clone();
    tb.stop().await;
    assert_eq!(led.view().state, DeviceState::ShuttingDown);
    assert!(led.sim().restored());
}

#[tokio::test]
async fn auto_drives_a_writable_sysfs_led_and_restores_its_trigger_on_shutdown() {
    let leds = FakeSysfs::new();
    let sysfs_root = leds.sysfs_root();
    let tb = TestBox::start(&[
        ("status_led.backend", "\"auto\""),
        ("status_led.sysfs_root", &sysfs_root),
        ("status_led.gpio_pins", "[17]"),
    ])
    .await;
    shows(&tb.led, DeviceState::Unpaired).await;
    let led = &tb.status().await["led"];
    assert_eq!(led["backend"], "sysfs", "{led}");
    let reason = led["reason"].as_str().unwrap();
    assert!(
        reason.contains("gpio [LED_GPIO_"),
        "gpio is tried first: {reason}"
    );
    assert!(reason.contains("ACT is writable"), "{reason}");
    // Taken from mmc0; unpaired's blip, a steady rhythm, blinks on the kernel's timer.
    leds.wait_for_timer(100, 1900).await;
    let memo = tb.dir.path().join("led-ACT.trigger");
    assert_eq!(
        std::fs::read_to_string(memo).unwrap(),
        "mmc0",
        "kept for a crash"
    );
    tb.stop().await;
    leds.assert_given_back();
}

#[tokio::test]
async fn an_unwritable_led_falls_back_to_sim_and_the_daemon_still_serves() {
    let leds = FakeSysfs::new();
    std::fs::remove_file(leds.dir.join("brightness")).unwrap();
    std::fs::create_dir(leds.dir.join("brightness")).unwrap(); // unwritable, even for root
    let sysfs_root = leds.sysfs_root();
    let tb = TestBox::start(&[
        ("status_led.backend", "\"sysfs\""),
        ("status_led.sysfs_root", &sysfs_root),
    ])
    .await;
    shows(&tb.led, DeviceState::Unpaired).await;
    let led = &tb.status().await["led"];
    assert_eq!(led["backend"], "sim");
    assert!(
        led["reason"]
            .as_str()
            .unwrap()
            .starts_with("sysfs failed [LED_"),
        "{led}"
    );
    let degraded = led["degraded"].as_str().unwrap();
    assert!(
        degraded.starts_with("[LED_") && degraded.contains("brightness"),
        "{led}"
    );
    assert_eq!(tb.get("/ready").await.0, 200, "the daemon carries on");
    let (_, metrics) = tb.get("/metrics").await;
    assert!(metrics.contains("bbedge_led_degraded 1"), "{metrics}");
    tb.stop().await;
}

/// `bbedge led …` with no daemon, driving the fake sysfs LED under `root`.
fn led_command(root: &Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = support::binary::command();
    cmd.arg("led")
        .args(args)
        .current_dir(root)
        .env("BBEDGE_DAEMON__STATE_DIR", toml_str(&root.join("state")))
        .env("BBEDGE_STATUS_LED__BACKEND", "\"sysfs\"")
        .env(
            "BBEDGE_STATUS_LED__SYSFS_ROOT",
            toml_str(&root.join("leds")),
        )
        .env("BBEDGE_PAIRING__BOOT_FILE", "\"\"")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn the_led_command_drives_the_led_itself_when_no_daemon_runs() {
    let leds = FakeSysfs::new();
    let run = led_command(leds.path(), &["identify", "--seconds", "1"]).output();
    let out = tokio::time::timeout(WAIT, run).await.unwrap().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout} {stderr}");
    assert!(
        stderr.contains("no daemon is running; driving the sysfs LED directly"),
        "{stderr}"
    );
    assert!(stdout.contains("Blinking identify for 1 s"), "{stdout}");
    leds.assert_given_back();

    let run = led_command(leds.path(), &["identify", "--seconds", "0"]).output();
    let out = tokio::time::timeout(WAIT, run).await.unwrap().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("allowed 1 to 3600"));
}

#[tokio::test]
async fn led_test_names_each_pattern_and_ctrl_c_gives_the_led_back() {
    use tokio::io::AsyncBufReadExt;
    let leds = FakeSysfs::new();
    let mut child = led_command(leds.path(), &["test"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .expect("a line per pattern");
    assert!(first.starts_with(" 1/11  booting"), "{first}");
    assert!(
        first.contains("medium blink") && first.contains("250 on, 250 off (white)"),
        "{first}"
    );
    // Taken from mmc0; booting's medium blink, a steady rhythm, on the kernel's timer.
    leds.wait_for_timer(250, 250).await;
    support::binary::signal(&child, "INT");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(leds.trigger(), "mmc0");
}

#[tokio::test]
async fn bbedge_status_prints_the_led_line() {
    let tb = TestBox::start(&[]).await;
    shows(&tb.led, DeviceState::Unpaired).await;
    let out = support::binary::command()
        .args(["status", "--url", &tb.health_url()])
        .output();
    let out = tokio::time::timeout(WAIT, out).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("led:      unpaired (blip, white) on sim: configured: backend = \"sim\"\n"),
        "{text}"
    );
    assert!(!text.contains("degraded"), "{text}");
    tb.stop().await;
}

#[test]
fn the_udev_rule_grants_group_gpio_the_led_files_and_gpio_devices() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/99-bbedge-led.rules");
    let rules = std::fs::read_to_string(&path).expect("systemd/99-bbedge-led.rules");
    let active: Vec<&str> = rules
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    let leds = active
        .iter()
        .find(|l| l.contains("SUBSYSTEM==\"leds\""))
        .expect("leds rule");
    for needed in [
        "chgrp gpio",
        "chmod g+w",
        "/sys%p/trigger",
        "/sys%p/brightness",
    ] {
        assert!(leds.contains(needed), "{needed} missing from {leds}");
    }
    assert!(active
        .iter()
        .any(|l| l.contains("gpiomem") && l.contains("GROUP=\"gpio\"")));
    assert!(active
        .iter()
        .any(|l| l.contains("gpiochip") && l.contains("GROUP=\"gpio\"")));
    // Where udev has `verify` (systemd 253 and later), let it parse the file too.
    let udevadm =
        |args: &[&std::ffi::OsStr]| std::process::Command::new("udevadm").args(args).output();
    match udevadm(&["verify".as_ref(), "--help".as_ref()]) {
        Ok(help) if help.status.success() => {
            let out = udevadm(&["verify".as_ref(), path.as_os_str()]).unwrap();
            assert!(out.status.success(), "udevadm verify: {out:?}");
        }
        _ => eprintln!("udevadm verify unavailable; syntax check skipped"),
    }
}
