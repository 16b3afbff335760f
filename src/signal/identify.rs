//! `identify`: blink the LED for a while (central's `identify` command, `bbedge led
//! identify`). Overlapping requests extend the blink; the last one to end clears it.

use super::StatusHub;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Sets `identify` now and clears it after `for_` unless a later request extended it.
pub fn start(hub: &StatusHub, for_: Duration) {
    let gen = GENERATION.fetch_add(1, Ordering::SeqCst) + 1;
    hub.update(|f| f.identify = true);
    let hub = hub.clone();
    tokio::spawn(async move {
        tokio::time::sleep(for_).await;
        if GENERATION.load(Ordering::SeqCst) == gen {
            hub.update(|f| f.identify = false);
        }
    });
}
