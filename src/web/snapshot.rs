//! The JSON the page renders (`/api/status`, and every `/events` message): the state,
//! the LED's pattern as the LED task plays it, the sections `/status` shows, the
//! rooms with their participants. No secret is in it: no token, no enrollment code.

use super::Web;
use crate::signal::pattern::Pattern;
use serde_json::{json, Value};

/// The snapshot now.
pub fn snapshot(web: &Web) -> Value {
    let led = web.led.view();
    // The same table the LED task plays: the page animates these timings.
    let p = Pattern::of(led.state);
    let sections = web.board.collect();
    let health = web.store.health();
    json!({
        "state": web.hub.state().as_str(),
        "facts": web.hub.facts(),
        "led": {
            "state": led.state,
            "pattern": p.name,
            "steps": p.steps,
            "colour": p.colour,
            "testing": led.testing,
            "backend": led.backend,
        },
        "device": { "name": web.config.device.name },
        "upstream": sections.get("upstream"),
        "upstream_enabled": web.config.upstream.enabled,
        "pairing": sections.get("pairing"),
        "rooms": web.rooms.as_ref().map(|r| r.view()),
        "store": {
            "fault": health.is_faulty(),
            "write_failures": health.failures_total(),
            "size_bytes": web.store.size_on_disk(),
        },
        "version": crate::version::VERSION,
        "uptime_seconds": web.started.elapsed().as_secs(),
    })
}
