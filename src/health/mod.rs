//! The operations surface over HTTP (hyper): `/health`, `/ready`, `/status`, `/metrics`.
//!
//! - `/health`: liveness. Answering at all means the event loop runs.
//! - `/ready`: 200 when nothing blocks readiness ([`Readiness`]), else 503 with reasons.
//! - `/status`: JSON for people and `bbedge status`: version, uptime, state, store,
//!   memory, config summary without secrets, plus one section per service
//!   ([`StatusBoard`]).
//! - `/metrics`: Prometheus text exposition ([`metrics`]).

pub mod metrics;
mod readiness;
pub mod routes;
mod server;
mod status;
pub mod sysinfo;

pub use readiness::Readiness;
pub use server::{bind, Bound};
pub use status::{StatusBoard, StatusSection};
