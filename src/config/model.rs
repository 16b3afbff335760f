//! The configuration's shape. Every struct refuses unknown keys; defaults live only in
//! `config/bbedge.toml`, so a key cannot exist in code without being documented there.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Daemon-wide settings: state directory, shutdown grace period.
    pub daemon: Daemon,
    /// The local realtime (WebSocket) server for `device:<id>` rooms.
    pub realtime: Realtime,
    /// This box's identity as the local room knows it.
    pub device: Device,
    /// The link to the central CivicPress server.
    pub upstream: Upstream,
    /// Pairing with CivicPress: where credentials and the signing key live.
    pub pairing: Pairing,
    /// The sled database on flash.
    pub store: Store,
    /// The status LED.
    pub status_led: StatusLed,
    /// The HTTP health, status and metrics endpoint.
    pub health: Health,
    /// mDNS/DNS-SD advertisement of the local room on the LAN.
    pub discovery: Discovery,
    /// The box's own web page (status, pairing, identify, tokens).
    pub web: Web,
    /// Log level and format.
    pub logging: Logging,
}

/// `[daemon]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Daemon {
    /// State directory. Empty: `$STATE_DIRECTORY` (set by systemd), else `./bbedge-state`.
    pub state_dir: String,
    /// Seconds that in-flight work gets to finish after SIGTERM before the daemon exits.
    pub shutdown_grace: u64,
    /// Threads that run the daemon's tasks; 0: one per core.
    pub worker_threads: u64,
}

/// `[realtime]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Realtime {
    /// Serve local device rooms at all.
    pub enabled: bool,
    /// Address to listen on (the chamber LAN).
    pub host: IpAddr,
    /// TCP port (0 picks a free port, for tests).
    pub port: u16,
    /// URL path prefix, `/realtime` like central.
    pub path: String,
    /// Serve `/echo` (no token, echoes every message) through the same accept path, for
    /// the Autobahn conformance suite. Never on a production box.
    pub echo: bool,
    /// Room limits and lifetimes.
    pub rooms: Rooms,
    /// Room snapshots to flash.
    pub snapshots: Snapshots,
    /// Per-connection message rate and connection caps.
    pub rate_limiting: RateLimiting,
    /// Frame, queue and timeout limits.
    pub limits: Limits,
    /// Optional TLS on the local listener.
    pub tls: Tls,
}

/// `[realtime.rooms]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rooms {
    /// Most rooms held at once; a join that would create one more is refused.
    pub max_rooms: usize,
    /// Seconds an empty room is kept before it is destroyed (its snapshot stays).
    pub cleanup_timeout: u64,
    /// Seconds a departed participant's presence is kept, so a quick reconnect is not
    /// announced as left-then-joined.
    pub grace_period: u64,
}

/// `[realtime.snapshots]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Snapshots {
    /// Write snapshots at all.
    pub enabled: bool,
    /// Seconds between snapshots of a changed room.
    pub interval: u64,
    /// A room with this many changes since its last snapshot is snapshotted at once.
    pub max_updates: u32,
}

/// `[realtime.rate_limiting]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimiting {
    /// Frames per second one connection may send (token bucket); over it: close 1008.
    pub messages_per_second: u32,
    /// Concurrent joined connections from one IP address; over it: close 4029.
    pub connections_per_ip: usize,
    /// Connections from one IP address still in the handshake; a new one over it is
    /// closed unanswered.
    pub handshakes_per_ip: usize,
    /// Concurrent connections per token ("user"); over it: close 4029.
    pub connections_per_user: usize,
}

/// `[realtime.limits]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Joined (authenticated) WebSocket connections in total; over it: close 4029.
    pub max_connections: usize,
    /// Of `max_connections`, slots only agents may take.
    pub reserved_for_agents: usize,
    /// Of `max_connections`, further slots only agents and operators may take.
    pub reserved_for_operators: usize,
    /// Connections still in the handshake (before the token check), in total; a new
    /// TCP connection over it is closed unanswered.
    pub max_handshakes: usize,
    /// Largest frame (and message) accepted, in bytes; over it: close 1009.
    pub max_frame_bytes: usize,
    /// Frames queued towards one client before it counts as a slow consumer (close 1013).
    pub send_queue_frames: usize,
    /// Bytes queued towards one client before it counts as a slow consumer (close 1013).
    pub send_queue_bytes: usize,
    /// Seconds a client has to finish the TCP, TLS and WebSocket handshakes.
    pub handshake_timeout: u64,
    /// Seconds without a pong to our pings before a client is closed.
    pub idle_timeout: u64,
    /// Seconds between our WebSocket pings to each client.
    pub ping_interval: u64,
    /// Seconds an operator's command waits for the agent's ack before `AGENT_TIMEOUT`;
    /// 0: central's per-action deadline (`protocol::deadlines`).
    pub command_timeout: u64,
}

/// `[realtime.tls]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// Serve `wss://` instead of `ws://`.
    pub enabled: bool,
    /// PEM certificate chain. Empty: a self-signed certificate kept in the state dir.
    pub cert_path: String,
    /// PEM private key. Empty: the key of the self-signed certificate.
    pub key_path: String,
}

/// `[device]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// The device UUID of the local room. Empty: the paired UUID, else one made on first
    /// start and kept in the store.
    pub uuid: String,
    /// Human name sent when pairing ("Council chamber").
    pub name: String,
    /// Where the box stands; sent when pairing. Optional.
    pub room_location: String,
}

/// `[upstream]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Connect to central at all (only once paired).
    pub enabled: bool,
    /// Extra CA certificates (PEM) trusted besides the WebPKI roots. Empty: none.
    pub extra_ca_file: String,
    /// Allow `ws://` / `http://` to a non-loopback host. Development only.
    pub allow_insecure: bool,
    /// Seconds between `status` frames (central drops a device after 90 s; at most 30).
    pub status_interval: u64,
    /// Seconds between WebSocket pings to central.
    pub ping_interval: u64,
    /// Seconds without a pong before the link counts as dead and is reconnected.
    pub pong_timeout: u64,
    /// First reconnect delay in seconds.
    pub backoff_initial: u64,
    /// Largest reconnect delay in seconds.
    pub backoff_max: u64,
    /// Seconds a connection must stay up before the backoff starts over.
    pub backoff_reset_after: u64,
    /// Seconds after reconnecting from an unclean drop before one voluntary clean
    /// reconnect (§g.1: central may still hold the dead socket). 0: never.
    pub clean_reconnect_after: u64,
    /// Seconds after an acknowledged connection before one voluntary clean reconnect
    /// when an earlier attempt was given up with its fate unknown (§g.1). 0: never.
    pub stale_attempt_reconnect_after: u64,
    /// Frames per second sent upstream (central closes at more than 10).
    pub frames_per_second: u32,
    /// Most frames kept in the outbox while offline.
    pub outbox_max_frames: usize,
    /// Most bytes kept in the outbox while offline.
    pub outbox_max_bytes: usize,
    /// Seconds after which a queued event or manifest is dropped.
    pub outbox_max_age: u64,
    /// Free bytes the disk must keep; below it new outbox frames are refused (`STORE_FULL`).
    pub outbox_min_free_bytes: u64,
    /// Leave `capture.started_at`/`ended_at` out of manifests (central defect, §d.8).
    pub manifest_omit_capture_times: bool,
    /// Hours before token expiry from which the box warns.
    pub token_warn_hours: u64,
}

/// `[pairing]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Pairing {
    /// Credentials file (0600). Empty: `<state_dir>/credentials.toml`.
    pub credentials_file: String,
    /// Ed25519 signing key (0600, PKCS#8 PEM). Empty: `<state_dir>/device-key.pem`.
    pub key_file: String,
    /// Pairing file dropped on the boot partition by the installer. Empty: none.
    pub boot_file: String,
    /// Seconds one registration request may take (connect, TLS, answer) before it fails.
    pub request_timeout: u64,
    /// First delay in seconds before boot-file pairing retries a transient failure
    /// (5xx, network, TLS); it doubles up to `retry_max`. Never retried: a refused code.
    pub retry_initial: u64,
    /// Largest delay in seconds between boot-file pairing retries.
    pub retry_max: u64,
}

/// `[store]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Store {
    /// Database directory. Empty: `<state_dir>/db`.
    pub path: String,
    /// sled page cache in bytes.
    pub cache_bytes: u64,
    /// Seconds the daemon's child check of the database (`bbedge store check`) may take
    /// before the database counts as corrupt and is quarantined.
    pub check_timeout: u64,
    /// Seconds between reports of failed store writes and recovery attempts.
    pub retry_interval: u64,
    /// A program to run the child check through (`qemu-aarch64` when the binary runs
    /// under qemu-user without binfmt_misc, as in cross tests). Empty: run it directly.
    pub check_runner: String,
}

/// `[status_led]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StatusLed {
    /// `auto`, `gpio`, `sysfs` or `sim`.
    pub backend: LedBackend,
    /// sysfs LED name under `sysfs_root` (`ACT` on a Pi, `led0` on older images).
    pub sysfs_name: String,
    /// Root of the sysfs LED class (tests point this at a temp dir).
    pub sysfs_root: PathBuf,
    /// The LED lights when brightness is 0 (inverted polarity).
    pub sysfs_inverted: bool,
    /// BCM pin numbers: one (single colour) or three (red, green, blue). Empty: no GPIO.
    pub gpio_pins: Vec<u8>,
    /// The pins are active-low (one value for all, or one per pin).
    pub gpio_active_low: Vec<bool>,
    /// Requests (identify, `led test` steps) the LED task's mailbox holds; when it is
    /// full a request is refused at once with `LED_BUSY`. State changes do not queue:
    /// the task follows the `StatusHub` watch, so the newest state always wins.
    pub mailbox: usize,
}

/// Which LED backend drives the status LED.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LedBackend {
    /// gpio if its pins open, else sysfs if the LED is writable, else sim.
    Auto,
    /// GPIO pins through rppal.
    Gpio,
    /// `/sys/class/leds/<name>`.
    Sysfs,
    /// Simulated, in memory.
    Sim,
}

/// `[health]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Serve the health endpoint at all.
    pub enabled: bool,
    /// Address to listen on; keep it on loopback unless a monitoring host needs it.
    pub host: IpAddr,
    /// TCP port (0 picks a free port, for tests).
    pub port: u16,
}

/// `[web]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Web {
    /// Serve the page at all.
    pub enabled: bool,
    /// Address to listen on (0.0.0.0: the whole LAN).
    pub host: IpAddr,
    /// TCP port (0 picks a free port, for tests).
    pub port: u16,
    /// Minutes a session lives without a request.
    pub session_idle_minutes: u64,
}

/// `[discovery]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Discovery {
    /// Advertise the local room (`_civicpress-box._tcp`) over mDNS while it serves.
    pub enabled: bool,
}

/// `[logging]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a full `tracing` filter.
    pub level: String,
    /// `auto` (journald under systemd, else text), `text`, `json` or `journald`.
    pub format: LogFormat,
}

/// Where and how log lines are written.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// journald when run by systemd, else human-readable text.
    Auto,
    /// Human-readable text on stderr.
    Text,
    /// One JSON object per line on stderr.
    Json,
    /// The systemd journal (falls back to text when it cannot be reached).
    Journald,
}
