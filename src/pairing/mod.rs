//! Pairing with CivicPress (contract §a, §b): the credentials the upstream link uses,
//! kept in their own 0600 file (never in sled), and the device's signing key.
//!
//! - [`input`]: what a person types, checked before anything is sent.
//! - [`key`]: the Ed25519 key, made on the box and persisted before registering.
//! - [`register`]: one `POST /api/v1/broadcast-box/devices`, answers to sentences
//!   ([`failure`]), over the client in [`http`].
//! - [`credentials`]: what registration returned, loaded, saved atomically, watched.
//! - [`boot`], [`boot_file`]: pairing from a file on the boot partition, in the
//!   background, and what is done to that file.
//! - [`activation`]: the 15-minute activation trap (§a.5).
//! - [`expiry`]: the 7-day token's warning window and `needs_pairing`.
//! - [`status`], [`service`]: the `/status` section, metrics and daemon wiring.
//! - [`private_file`]: atomic 0600 writes (temp file, fsync, rename, fsync dir).

pub mod activation;
pub mod boot;
pub mod boot_file;
pub mod credentials;
mod error;
pub mod expiry;
pub mod failure;
pub mod http;
pub mod input;
pub mod key;
pub mod private_file;
pub mod register;
pub mod service;
pub mod status;

pub use credentials::{CredentialStore, Credentials};
pub use error::Error;
pub use failure::PairError;
pub use service::Service;
