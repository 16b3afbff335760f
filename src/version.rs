//! Build information printed by `bbedge --version` and shown on `/status`.

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the binary was built from (`unknown` outside a checkout).
pub const GIT_HASH: &str = env!("BBEDGE_GIT_HASH");
/// The target triple the binary was built for.
pub const TARGET: &str = env!("BBEDGE_TARGET");

/// The long version line: `0.1.0 (git 1a2b3c4d5e6f, aarch64-unknown-linux-gnu)`.
pub fn long() -> String {
    format!("{VERSION} (git {GIT_HASH}, {TARGET})")
}
