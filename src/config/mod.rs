//! The configuration: one commented TOML file, built into the binary.
//!
//! `config/bbedge.toml` is the single source of defaults: it is compiled in with
//! `include_str!` and must name every key. A user's file, its drop-ins and
//! `BBEDGE_<SECTION>__<KEY>` variables are merged over it ([`load`]), the result is
//! deserialised with unknown keys refused, then [`check`] applies ranges and
//! cross-field rules. Every error names where the bad value came from.

mod check;
mod error;
mod load;
mod model;

pub use error::Error;
pub use load::{Loaded, Loader, Source, DEFAULT_PATH, ENV_PREFIX};
pub use model::*;

/// The commented default configuration, exactly as shipped in `config/bbedge.toml`.
pub const DEFAULT_TOML: &str = include_str!("../../config/bbedge.toml");
