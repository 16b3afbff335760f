//! Atomic 0600 writes for pairing's files: the one helper in [`crate::fsutil`].

pub use crate::fsutil::{remove, write};
