//! The LED task under a paused tokio clock: exact edges for every state, transitions,
//! identify timing out, the shutdown linger and restore, and a backend failing mid-run.

use super::pattern::Pattern;
use super::sim::Edge;
use super::*;
use crate::config::{LedBackend, StatusLed};
use crate::error::ErrorCode;
use std::path::Path;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

fn cfg(backend: LedBackend, root: &Path) -> StatusLed {
    StatusLed {
        backend,
        sysfs_name: "ACT".into(),
        sysfs_root: root.to_path_buf(),
        sysfs_inverted: false,
        gpio_pins: vec![],
        gpio_active_low: vec![],
        mailbox: 2,
    }
}

/// Facts that resolve to `state`.
fn facts_for(state: DeviceState) -> Facts {
    let mut f = Facts {
        booting: false,
        paired: true,
        link: Link::Online,
        ..Facts::default()
    };
    match state {
        DeviceState::Booting => f.booting = true,
        DeviceState::Unpaired => f.paired = false,
        DeviceState::Pairing => f.pairing = true,
        DeviceState::Connecting => f.link = Link::Connecting,
        DeviceState::Online => {}
        DeviceState::OfflineBuffering => f.link = Link::Offline,
        DeviceState::Recording => f.recording = true,
        DeviceState::NeedsPairing => f.needs_pairing = true,
        DeviceState::StorageFault => f.storage_fault = true,
        DeviceState::ShuttingDown => f.shutting_down = true,
        DeviceState::Identify => f.identify = true,
    }
    f
}

struct Running {
    hub: StatusHub,
    led: LedHandle,
    token: CancellationToken,
    task: JoinHandle<()>,
}

fn spawn(c: &StatusLed, facts: Facts) -> Running {
    let hub = StatusHub::new();
    hub.update(|f| *f = facts);
    let (led, task) = build(c, hub.clone(), None);
    let token = CancellationToken::new();
    let task = tokio::spawn(task.run(token.clone()));
    Running {
        hub,
        led,
        token,
        task,
    }
}

/// The edges `pattern` should produce from `start_ms` until before `until_ms`.
fn expected(pattern: Pattern, start_ms: u64, until_ms: u64) -> Vec<(u64, bool)> {
    let mut out = vec![(start_ms, true)];
    let mut t = start_ms;
    for (i, ms) in pattern.steps.iter().cycle().enumerate() {
        t += u64::from(*ms);
        if pattern.steps.is_empty() || t >= until_ms {
            break;
        }
        out.push((t, i % 2 == 1));
    }
    out
}

fn levels(edges: &[Edge]) -> Vec<(u64, bool)> {
    edges.iter().map(|e| (e.at_ms, e.on)).collect()
}

async fn wait_for_state(led: &LedHandle, state: DeviceState) -> Instant {
    let mut rx = led.watch();
    rx.wait_for(|v| v.state == state)
        .await
        .expect("LED task alive");
    Instant::now()
}

/// Waits until the task shows its first pattern.
async fn started(led: &LedHandle) {
    let mut rx = led.watch();
    rx.wait_for(|v| !v.history.is_empty())
        .await
        .expect("LED task alive");
}

#[tokio::test(start_paused = true)]
async fn every_state_blinks_its_documented_timings_exactly() {
    let dir = tempfile::tempdir().unwrap();
    for state in DeviceState::ALL {
        let r = spawn(&cfg(LedBackend::Sim, dir.path()), facts_for(state));
        assert_eq!(r.hub.state(), state);
        let p = Pattern::of(state);
        // Two full cycles (3 s for solid), stopping 25 ms short of a step boundary.
        let span = (p.cycle() * 2)
            .max(Duration::from_secs(3))
            .checked_sub(Duration::from_millis(25))
            .unwrap();
        sleep(span).await;
        let edges = r.led.sim().edges();
        let until = span.as_millis() as u64;
        assert_eq!(levels(&edges), expected(p, 0, until), "{state}");
        assert!(edges.iter().all(|e| e.colour == p.colour), "{state}");
        assert_eq!((r.led.view().state, r.led.view().pattern), (state, p.name));
        r.token.cancel();
        r.task.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_new_state_restarts_the_rhythm_at_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let r = spawn(
        &cfg(LedBackend::Sim, dir.path()),
        facts_for(DeviceState::Online),
    );
    sleep(Duration::from_millis(500)).await;
    r.hub.update(|f| f.recording = true);
    wait_for_state(&r.led, DeviceState::Recording).await;
    sleep(Duration::from_millis(1400)).await; // until 1900 ms
    let heartbeat = Pattern::of(DeviceState::Recording);
    let mut want = vec![(0, true)];
    want.extend(expected(heartbeat, 500, 1900));
    assert_eq!(levels(&r.led.sim().edges()), want);
    let history: Vec<DeviceState> = r.led.view().history.iter().map(|s| s.state).collect();
    assert_eq!(history, [DeviceState::Online, DeviceState::Recording]);
    r.token.cancel();
    r.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn identify_blinks_for_its_duration_then_returns_to_the_current_state() {
    let dir = tempfile::tempdir().unwrap();
    let r = spawn(
        &cfg(LedBackend::Sim, dir.path()),
        facts_for(DeviceState::Online),
    );
    r.led.identify(Duration::from_secs(15)).unwrap();
    let began = wait_for_state(&r.led, DeviceState::Identify).await;
    assert_eq!(
        r.hub.state(),
        DeviceState::Identify,
        "identify is a fact on the hub"
    );
    // A second request restarts the clock.
    sleep(Duration::from_secs(5)).await;
    r.led.identify(Duration::from_secs(15)).unwrap();
    let ended = wait_for_state(&r.led, DeviceState::Online).await;
    assert_eq!(ended - began, Duration::from_secs(20));
    assert!(!r.hub.facts().identify);
    r.token.cancel();
    r.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn led_test_steps_override_the_state_then_give_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let r = spawn(
        &cfg(LedBackend::Sim, dir.path()),
        facts_for(DeviceState::Online),
    );
    r.led
        .show(DeviceState::StorageFault, Duration::from_secs(2))
        .unwrap();
    let began = wait_for_state(&r.led, DeviceState::StorageFault).await;
    assert!(r.led.view().testing);
    assert_eq!(
        r.hub.state(),
        DeviceState::Online,
        "a test step is not a device fact"
    );
    let ended = wait_for_state(&r.led, DeviceState::Online).await;
    assert_eq!(ended - began, Duration::from_secs(2));
    r.token.cancel();
    r.task.await.unwrap();
}

#[tokio::test]
async fn requests_are_bounded_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (led, task) = build(&cfg(LedBackend::Sim, dir.path()), StatusHub::new(), None);
    let bad = led.identify(Duration::ZERO).unwrap_err();
    assert_eq!(bad.code(), "LED_BAD_REQUEST");
    led.identify(Duration::from_secs(1)).unwrap();
    led.identify(Duration::from_secs(1)).unwrap();
    // mailbox = 2 and the task is not running: the third is refused at once.
    assert_eq!(
        led.identify(Duration::from_secs(1)).unwrap_err().code(),
        "LED_BUSY"
    );
    drop(task);
    assert_eq!(
        led.identify(Duration::from_secs(1)).unwrap_err().code(),
        "LED_STOPPED"
    );
}

/// What the fake LED's file `name` holds.
fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

/// From the unpaired blip's start: the trigger is `none` and the task writes the
/// blip's edges itself (lit at 50 ms, dark at 150 ms).
async fn blips_edge_by_edge(led: &LedHandle, dir: &Path) {
    started(led).await;
    assert_eq!(read(dir, "trigger"), "none");
    sleep(Duration::from_millis(50)).await;
    assert_eq!(read(dir, "brightness"), "1");
    sleep(Duration::from_millis(100)).await;
    assert_eq!(read(dir, "brightness"), "0");
}

fn fake_led(root: &Path) -> std::path::PathBuf {
    let dir = root.join("ACT");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("trigger"), "none [mmc0] timer\n").unwrap();
    std::fs::write(dir.join("brightness"), "0\n").unwrap();
    dir
}

#[tokio::test(start_paused = true)]
async fn a_visible_led_shows_shutting_down_for_a_second_then_restores_the_trigger() {
    let root = tempfile::tempdir().unwrap();
    let dir = fake_led(root.path());
    let r = spawn(
        &cfg(LedBackend::Sysfs, root.path()),
        facts_for(DeviceState::Online),
    );
    assert_eq!(r.led.view().backend, "sysfs");
    assert_eq!(
        std::fs::read_to_string(dir.join("trigger")).unwrap(),
        "none"
    );
    sleep(Duration::from_millis(300)).await;
    r.hub.update(|f| f.shutting_down = true);
    let began = wait_for_state(&r.led, DeviceState::ShuttingDown).await;
    sleep(Duration::from_millis(400)).await; // other tasks stopping
    r.token.cancel();
    r.task.await.unwrap();
    assert_eq!(Instant::now() - began, led::SHUTDOWN_SHOW);
    assert_eq!(
        std::fs::read_to_string(dir.join("trigger")).unwrap(),
        "mmc0"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("brightness")).unwrap(),
        "0"
    );
}

#[tokio::test(start_paused = true)]
async fn the_simulated_led_records_shutting_down_without_lingering() {
    let dir = tempfile::tempdir().unwrap();
    let r = spawn(
        &cfg(LedBackend::Sim, dir.path()),
        facts_for(DeviceState::Online),
    );
    let before = Instant::now();
    r.token.cancel();
    r.task.await.unwrap();
    assert_eq!(Instant::now(), before);
    assert_eq!(r.led.view().state, DeviceState::ShuttingDown);
    assert!(r.led.sim().restored());
}

#[tokio::test(start_paused = true)]
async fn an_led_that_fails_mid_run_becomes_the_simulated_one_and_the_task_carries_on() {
    let root = tempfile::tempdir().unwrap();
    let dir = fake_led(root.path());
    // A rhythm the task drives itself (a steady one is the kernel's and writes nothing).
    let r = spawn(
        &cfg(LedBackend::Sysfs, root.path()),
        facts_for(DeviceState::Recording),
    );
    std::fs::remove_file(dir.join("brightness")).unwrap();
    std::fs::create_dir(dir.join("brightness")).unwrap();
    let mut rx = r.led.watch();
    rx.wait_for(|v| v.backend == "sim").await.unwrap();
    assert!(r.led.view().degraded.is_some());
    assert!(
        r.led.view().reason.starts_with("sysfs failed [LED_"),
        "{}",
        r.led.view().reason
    );
    r.hub.update(|f| f.recording = false);
    wait_for_state(&r.led, DeviceState::Online).await;
    assert!(r.led.sim().is_on(), "the sim carries the pattern on");
    r.token.cancel();
    r.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_steady_rhythm_goes_to_the_kernels_timer_and_the_next_change_takes_it_back() {
    let root = tempfile::tempdir().unwrap();
    let dir = fake_led(root.path());
    let r = spawn(
        &cfg(LedBackend::Sysfs, root.path()),
        facts_for(DeviceState::Unpaired),
    );
    started(&r.led).await;
    assert_eq!(read(&dir, "trigger"), "timer");
    assert_eq!(
        (read(&dir, "delay_on"), read(&dir, "delay_off")),
        ("100".into(), "1900".into())
    );
    // The task writes nothing while the kernel blinks: not one brightness edge.
    std::fs::write(dir.join("brightness"), "untouched").unwrap();
    sleep(Duration::from_secs(10)).await;
    assert_eq!(read(&dir, "brightness"), "untouched");
    // A solid state takes the LED back from the kernel before lighting it.
    r.hub.update(|f| f.paired = true);
    wait_for_state(&r.led, DeviceState::Online).await;
    assert_eq!(
        (read(&dir, "trigger"), read(&dir, "brightness")),
        ("none".into(), "1".into())
    );
    r.token.cancel();
    r.task.await.unwrap();
    assert_eq!(read(&dir, "trigger"), "mmc0", "given back as found");
}

#[tokio::test(start_paused = true)]
async fn an_led_without_the_timer_trigger_is_driven_edge_by_edge() {
    let root = tempfile::tempdir().unwrap();
    let dir = fake_led(root.path());
    std::fs::write(dir.join("trigger"), "none [mmc0]\n").unwrap();
    let r = spawn(
        &cfg(LedBackend::Sysfs, root.path()),
        facts_for(DeviceState::Unpaired),
    );
    blips_edge_by_edge(&r.led, &dir).await;
    assert!(!dir.join("delay_on").exists());
    r.token.cancel();
    r.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_simulated_led_keeps_a_handed_over_rhythms_edges_when_it_is_taken_back() {
    let dir = tempfile::tempdir().unwrap();
    let r = spawn(
        &cfg(LedBackend::Sim, dir.path()),
        facts_for(DeviceState::Connecting),
    );
    sleep(Duration::from_millis(2500)).await;
    r.hub.update(|f| f.recording = true);
    wait_for_state(&r.led, DeviceState::Recording).await;
    sleep(Duration::from_millis(600)).await; // until 3100 ms
    let mut want = expected(Pattern::of(DeviceState::Connecting), 0, 2500);
    want.extend(expected(Pattern::of(DeviceState::Recording), 2500, 3100));
    assert_eq!(levels(&r.led.sim().edges()), want);
    // Far more edges than it keeps: the newest EDGE_HISTORY, in order.
    r.hub.update(|f| {
        f.recording = false;
        f.pairing = true;
    });
    wait_for_state(&r.led, DeviceState::Pairing).await;
    sleep(Duration::from_secs(60)).await;
    let edges = r.led.sim().edges();
    assert_eq!(edges.len(), super::sim::EDGE_HISTORY);
    assert!(edges
        .windows(2)
        .all(|w| w[1].at_ms == w[0].at_ms + 100 && w[1].on != w[0].on));
    r.token.cancel();
    r.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_timer_whose_delays_cannot_be_written_is_given_up_and_the_task_blinks_itself() {
    let root = tempfile::tempdir().unwrap();
    let dir = fake_led(root.path());
    // As delay_on owned by root under the bbedge user: a write that fails.
    std::fs::create_dir(dir.join("delay_on")).unwrap();
    let r = spawn(
        &cfg(LedBackend::Sysfs, root.path()),
        facts_for(DeviceState::Unpaired),
    );
    blips_edge_by_edge(&r.led, &dir).await;
    assert_eq!(r.led.view().backend, "sysfs", "the LED itself works");
    // Given up for good: the next steady rhythm does not try again.
    r.hub.update(|f| f.pairing = true);
    wait_for_state(&r.led, DeviceState::Pairing).await;
    assert_eq!(read(&dir, "trigger"), "none");
    r.token.cancel();
    r.task.await.unwrap();
}
