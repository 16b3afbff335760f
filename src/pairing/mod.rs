//! Pairing with CivicPress: the credentials the upstream link uses, kept in their own
//! 0600 file (never in sled), and the signing key.
//!
//! - [`credentials`]: what registration returned, loaded, saved atomically, watched.
//! - [`private_file`]: atomic 0600 writes (temp file, fsync, rename, fsync dir).

pub mod credentials;
mod error;
pub mod private_file;

pub use credentials::{CredentialStore, Credentials};
pub use error::Error;
