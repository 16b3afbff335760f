//! bbedge: the edge service of a CivicPress broadcast box.
//!
//! # Layout
//! - [`app`]: the composition root. Builds every service from the config, binds, runs,
//!   and stops them in reverse order.
//! - [`config`]: the TOML configuration: built-in defaults, file, drop-ins, environment,
//!   then one validation pass.
//! - [`store`]: sled on flash: trees for snapshots, outbox, schedule and metadata.
//! - [`bus`]: the internal hook-event bus (`realtime:room:created`, …).
//! - [`signal`]: the device's single status state and the status LED.
//! - [`health`]: `/health`, `/ready`, `/status`, `/metrics` over HTTP.
//! - [`protocol`]: the central contract's frames, codes and close codes on one screen.
//! - [`relay`]: the seam between the local device room and the upstream link.
//! - [`room`]: the local device rooms (the box's own realtime server).
//! - [`upstream`]: the link to central: reconnects, outbox, relay, signed manifests.
//! - [`web`]: the box's web page: live status, pairing, identify, local tokens.
//! - [`shutdown`], [`systemd`], [`telemetry`], [`memory`]: OS integration.
//!
//! `docs/ARCHITECTURE.md` draws the tasks and the data flow.
// One audited exception: `memory` (madvise on the executable's own read-only pages, and
// glibc's malloc_trim).
#![deny(unsafe_code)]
// Nothing a peer, a file or the disk hands us may panic (release builds abort on panic):
// no unwrap/expect/panic! outside tests (clippy.toml allows them in `#[cfg(test)]` code).
// `indexing_slicing` is not on: clippy flags every `serde_json::Value` read (`v["k"]`,
// which yields Null and cannot panic) with the few slice indexes, ~40 sites reviewed by hand.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod app;
pub mod bus;
pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod discovery;
pub mod error;
pub mod fsutil;
pub mod health;
pub mod http_serve;
pub mod memory;
pub mod pairing;
pub mod protocol;
pub mod relay;
pub mod room;
pub mod secret;
pub mod shutdown;
pub mod signal;
pub mod store;
pub mod systemd;
pub mod telemetry;
pub mod trust;
pub mod upstream;
pub mod version;
pub mod web;
