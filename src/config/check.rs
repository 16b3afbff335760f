//! The validation pass: ranges and cross-field rules. Each failure names the key,
//! the value, where it was set and what is allowed.

use super::{Error, LedBackend, Loaded};
use std::fmt::Display;
use std::ops::RangeInclusive;

/// Checks every rule; the first failure is returned.
pub(super) fn check(loaded: &Loaded) -> Result<(), Error> {
    let c = &loaded.config;
    let range = |key: &str, value: u64, allowed: RangeInclusive<u64>| -> Result<(), Error> {
        if allowed.contains(&value) {
            Ok(())
        } else {
            Err(fail(
                loaded,
                key,
                value,
                format!("allowed {} to {}", allowed.start(), allowed.end()),
            ))
        }
    };
    let r = &c.realtime;
    range("daemon.shutdown_grace", c.daemon.shutdown_grace, 1..=300)?;
    range("daemon.worker_threads", c.daemon.worker_threads, 0..=64)?;
    range(
        "realtime.rooms.max_rooms",
        r.rooms.max_rooms as u64,
        1..=1000,
    )?;
    range(
        "realtime.rooms.cleanup_timeout",
        r.rooms.cleanup_timeout,
        0..=86_400,
    )?;
    range(
        "realtime.rooms.grace_period",
        r.rooms.grace_period,
        0..=3600,
    )?;
    range(
        "realtime.snapshots.interval",
        r.snapshots.interval,
        10..=86_400,
    )?;
    range(
        "realtime.snapshots.max_updates",
        u64::from(r.snapshots.max_updates),
        1..=100_000,
    )?;
    let rl = &r.rate_limiting;
    range(
        "realtime.rate_limiting.messages_per_second",
        u64::from(rl.messages_per_second),
        1..=10_000,
    )?;
    range(
        "realtime.rate_limiting.connections_per_ip",
        rl.connections_per_ip as u64,
        1..=100_000,
    )?;
    range(
        "realtime.rate_limiting.connections_per_user",
        rl.connections_per_user as u64,
        1..=100_000,
    )?;
    range(
        "realtime.rate_limiting.handshakes_per_ip",
        rl.handshakes_per_ip as u64,
        1..=100_000,
    )?;
    let l = &r.limits;
    range(
        "realtime.limits.max_connections",
        l.max_connections as u64,
        1..=100_000,
    )?;
    range(
        "realtime.limits.reserved_for_agents",
        l.reserved_for_agents as u64,
        0..=1000,
    )?;
    range(
        "realtime.limits.reserved_for_operators",
        l.reserved_for_operators as u64,
        0..=1000,
    )?;
    range(
        "realtime.limits.max_handshakes",
        l.max_handshakes as u64,
        1..=100_000,
    )?;
    range(
        "realtime.limits.max_frame_bytes",
        l.max_frame_bytes as u64,
        1024..=16 << 20,
    )?;
    range(
        "realtime.limits.send_queue_frames",
        l.send_queue_frames as u64,
        // connection.ack and room_state are queued before the writer starts.
        2..=65_536,
    )?;
    range(
        "realtime.limits.send_queue_bytes",
        l.send_queue_bytes as u64,
        1024..=256 << 20,
    )?;
    range(
        "realtime.limits.handshake_timeout",
        l.handshake_timeout,
        1..=300,
    )?;
    range("realtime.limits.ping_interval", l.ping_interval, 1..=3600)?;
    range("realtime.limits.idle_timeout", l.idle_timeout, 1..=86_400)?;
    range(
        "realtime.limits.command_timeout",
        l.command_timeout,
        0..=600,
    )?;
    if l.send_queue_bytes < l.max_frame_bytes {
        return Err(fail2(
            loaded,
            "realtime.limits.send_queue_bytes",
            "realtime.limits.max_frame_bytes",
            l.send_queue_bytes,
            format!(
                "must be at least realtime.limits.max_frame_bytes ({}), or no frame of the largest size could be queued",
                l.max_frame_bytes
            ),
        ));
    }
    if l.reserved_for_agents + l.reserved_for_operators >= l.max_connections {
        return Err(fail2(
            loaded,
            "realtime.limits.reserved_for_operators",
            "realtime.limits.max_connections",
            l.reserved_for_operators,
            format!(
                "with realtime.limits.reserved_for_agents ({}) must leave observers at least one of realtime.limits.max_connections ({})",
                l.reserved_for_agents, l.max_connections
            ),
        ));
    }
    if rl.handshakes_per_ip >= l.max_handshakes {
        return Err(fail2(
            loaded,
            "realtime.rate_limiting.handshakes_per_ip",
            "realtime.limits.max_handshakes",
            rl.handshakes_per_ip,
            format!(
                "must be below realtime.limits.max_handshakes ({}), or one host could hold every handshake slot",
                l.max_handshakes
            ),
        ));
    }
    if l.idle_timeout <= l.ping_interval {
        return Err(fail2(
            loaded,
            "realtime.limits.idle_timeout",
            "realtime.limits.ping_interval",
            l.idle_timeout,
            format!(
                "must be longer than realtime.limits.ping_interval ({}), or every client would be closed between two pings",
                l.ping_interval
            ),
        ));
    }
    if !r.path.starts_with('/') || r.path.len() < 2 || r.path.ends_with('/') {
        return Err(fail(
            loaded,
            "realtime.path",
            format!("{:?}", r.path),
            "must start with `/`, not end with `/`, and not be `/` alone (e.g. \"/realtime\")",
        ));
    }
    if r.tls.cert_path.is_empty() != r.tls.key_path.is_empty() {
        return Err(fail2(
            loaded,
            "realtime.tls.key_path",
            "realtime.tls.cert_path",
            format!("{:?}", r.tls.key_path),
            "set both realtime.tls.cert_path and realtime.tls.key_path, or neither",
        ));
    }
    if !c.device.uuid.is_empty() && uuid::Uuid::parse_str(&c.device.uuid).is_err() {
        return Err(fail(
            loaded,
            "device.uuid",
            format!("{:?}", c.device.uuid),
            "must be a UUID such as 8c0f4e2a-6b1d-4f3a-9e57-2d4c8b1a0f63, or empty",
        ));
    }
    if c.device.name.trim().is_empty() {
        return Err(fail(loaded, "device.name", "\"\"", "must not be empty"));
    }
    range(
        "web.session_idle_minutes",
        c.web.session_idle_minutes,
        1..=1440,
    )?;
    let u = &c.upstream;
    range("upstream.status_interval", u.status_interval, 1..=30)?;
    range("upstream.ping_interval", u.ping_interval, 1..=300)?;
    range("upstream.pong_timeout", u.pong_timeout, 1..=600)?;
    range("upstream.backoff_initial", u.backoff_initial, 1..=3600)?;
    range("upstream.backoff_max", u.backoff_max, 1..=86_400)?;
    range(
        "upstream.backoff_reset_after",
        u.backoff_reset_after,
        1..=86_400,
    )?;
    range(
        "upstream.clean_reconnect_after",
        u.clean_reconnect_after,
        0..=86_400,
    )?;
    range(
        "upstream.stale_attempt_reconnect_after",
        u.stale_attempt_reconnect_after,
        0..=30,
    )?;
    range(
        "upstream.frames_per_second",
        u64::from(u.frames_per_second),
        1..=10,
    )?;
    range(
        "upstream.outbox_max_frames",
        u.outbox_max_frames as u64,
        1..=1_000_000,
    )?;
    range(
        "upstream.outbox_max_bytes",
        u.outbox_max_bytes as u64,
        4096..=1 << 30,
    )?;
    range(
        "upstream.outbox_max_age",
        u.outbox_max_age,
        60..=30 * 86_400,
    )?;
    range(
        "upstream.outbox_min_free_bytes",
        u.outbox_min_free_bytes,
        0..=1 << 50,
    )?;
    range("upstream.token_warn_hours", u.token_warn_hours, 1..=167)?;
    if u.backoff_max < u.backoff_initial {
        return Err(fail2(
            loaded,
            "upstream.backoff_max",
            "upstream.backoff_initial",
            u.backoff_max,
            format!(
                "must be at least upstream.backoff_initial ({})",
                u.backoff_initial
            ),
        ));
    }
    let p = &c.pairing;
    range("pairing.request_timeout", p.request_timeout, 1..=300)?;
    range("pairing.retry_initial", p.retry_initial, 1..=3600)?;
    range("pairing.retry_max", p.retry_max, 1..=86_400)?;
    if p.retry_max < p.retry_initial {
        return Err(fail(
            loaded,
            "pairing.retry_max",
            p.retry_max,
            format!(
                "must be at least pairing.retry_initial ({})",
                p.retry_initial
            ),
        ));
    }
    range(
        "store.cache_bytes",
        c.store.cache_bytes,
        256 << 10..=256 << 20,
    )?;
    range("store.check_timeout", c.store.check_timeout, 1..=600)?;
    range("store.retry_interval", c.store.retry_interval, 1..=3600)?;
    let led = &c.status_led;
    if !matches!(led.gpio_pins.len(), 0 | 1 | 3) {
        return Err(fail(
            loaded,
            "status_led.gpio_pins",
            format!("{:?}", led.gpio_pins),
            "list one pin (single LED) or three (red, green, blue), or none",
        ));
    }
    if let Some(pin) = led.gpio_pins.iter().find(|p| **p > 27) {
        return Err(fail(
            loaded,
            "status_led.gpio_pins",
            format!("{:?}", led.gpio_pins),
            format!("pin {pin} is not a header GPIO: BCM numbers 0 to 27"),
        ));
    }
    let lows = led.gpio_active_low.len();
    if lows > 1 && lows != led.gpio_pins.len() {
        return Err(fail2(
            loaded,
            "status_led.gpio_active_low",
            "status_led.gpio_pins",
            format!("{:?}", led.gpio_active_low),
            "give one value for all pins, or one per pin in status_led.gpio_pins",
        ));
    }
    if led.backend == LedBackend::Gpio && led.gpio_pins.is_empty() {
        return Err(fail2(
            loaded,
            "status_led.backend",
            "status_led.gpio_pins",
            "\"gpio\"",
            "needs status_led.gpio_pins; or use \"auto\", \"sysfs\" or \"sim\"",
        ));
    }
    if led.sysfs_name.is_empty() || led.sysfs_name.contains('/') {
        return Err(fail(
            loaded,
            "status_led.sysfs_name",
            format!("{:?}", led.sysfs_name),
            "must be an LED name under status_led.sysfs_root, such as \"ACT\"",
        ));
    }
    range("status_led.mailbox", led.mailbox as u64, 1..=1024)?;
    if let Err(bad) = crate::telemetry::check_filter(&c.logging.level) {
        let which = if bad.is_empty() || bad == c.logging.level {
            String::new()
        } else {
            format!("`{bad}` is not a level; ")
        };
        return Err(fail(
            loaded,
            "logging.level",
            format!("{:?}", c.logging.level),
            format!("{which}{}", crate::telemetry::LEVEL_WORDS_HELP),
        ));
    }
    Ok(())
}

fn fail(loaded: &Loaded, key: &str, value: impl Display, allowed: impl Into<String>) -> Error {
    fail2(loaded, key, key, value, allowed)
}

/// A rule about `key` that involves `other`: blame whichever of the two a layer set last
/// (a rule broken by a drop-in must name the drop-in, not the defaults).
fn fail2(
    loaded: &Loaded,
    key: &str,
    other: &str,
    value: impl Display,
    allowed: impl Into<String>,
) -> Error {
    let origin = match (loaded.provenance.get(key), loaded.provenance.get(other)) {
        (Some(s), _) | (None, Some(s)) => s.to_string(),
        (None, None) => loaded.origin(key).to_string(),
    };
    Error::OutOfRange {
        origin,
        key: key.to_owned(),
        value: value.to_string(),
        allowed: allowed.into(),
    }
}
