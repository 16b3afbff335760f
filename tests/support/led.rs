//! The status LED in tests: waiting for what it shows, and a fake sysfs LED tree.

use bbedge::signal::{DeviceState, LedHandle};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Hang guard for waiting on the LED (an event, not a sleep).
pub const WAIT: Duration = Duration::from_secs(20);

/// Waits until the LED shows `state`.
pub async fn shows(led: &LedHandle, state: DeviceState) {
    let mut rx = led.watch();
    tokio::time::timeout(WAIT, rx.wait_for(|v| v.state == state))
        .await
        .unwrap_or_else(|_| panic!("LED never showed {state}; shows {:?}", led.view()))
        .expect("LED task alive");
}

/// Waits until the sysfs LED `dir` blinks `on_ms`/`off_ms` on the kernel's `timer`
/// trigger (the files of another task or process, so polled, within [`WAIT`]); panics
/// with what it holds.
pub async fn wait_for_timer(dir: &Path, on_ms: u32, off_ms: u32) {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let now = || (read("trigger"), read("delay_on"), read("delay_off"));
    let want = ("timer".to_owned(), on_ms.to_string(), off_ms.to_string());
    let deadline = tokio::time::Instant::now() + WAIT;
    while now() != want && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(now(), want, "the kernel's timer blinks the rhythm");
}

/// A sysfs LED `leds/ACT` in a temp dir, as the kernel shows a Pi's activity LED:
/// trigger `mmc0`, dark.
pub struct FakeSysfs {
    /// The temp dir holding `leds/` (deleted on drop).
    pub root: tempfile::TempDir,
    /// `<root>/leds/ACT`.
    pub dir: PathBuf,
}

impl FakeSysfs {
    /// A fresh tree.
    pub fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("leds/ACT");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("trigger"),
            "none rc-feedback [mmc0] timer heartbeat\n",
        )
        .unwrap();
        std::fs::write(dir.join("brightness"), "0\n").unwrap();
        std::fs::write(dir.join("max_brightness"), "1\n").unwrap();
        Self { root, dir }
    }

    /// The temp dir (state and `leds/` live under it).
    pub fn path(&self) -> &Path {
        self.root.path()
    }

    /// `status_led.sysfs_root` as a TOML string.
    pub fn sysfs_root(&self) -> String {
        format!("{:?}", self.path().join("leds").display().to_string())
    }

    /// What `ACT/trigger` holds now.
    pub fn trigger(&self) -> String {
        std::fs::read_to_string(self.dir.join("trigger")).unwrap()
    }

    /// Waits until the kernel's `timer` trigger blinks it `on_ms`/`off_ms`.
    pub async fn wait_for_timer(&self, on_ms: u32, off_ms: u32) {
        wait_for_timer(&self.dir, on_ms, off_ms).await;
    }

    /// Asserts the LED was given back: the kernel's `mmc0` trigger restored, dark.
    pub fn assert_given_back(&self) {
        assert_eq!(self.trigger(), "mmc0");
        let brightness = std::fs::read_to_string(self.dir.join("brightness")).unwrap();
        assert_eq!(brightness, "0");
    }
}
