#!/usr/bin/env bash
# Usage: cross/build-debian.sh [TARGET] [--debug] [-- extra cargo args]
#
# Builds bbedge for TARGET (default aarch64-unknown-linux-gnu) without a container,
# with Debian's own Rust and cross toolchain: /usr/bin/cargo and /usr/bin/rustc (which
# has the arm64 std from libstd-rust-web-dev:arm64), gcc-aarch64-linux-gnu, and the
# linker/runner set in .cargo/config.toml. Release profile unless --debug.
# Installs nothing; prints what is missing. The binary lands in
# target/TARGET/release/bbedge (or debug/). Debian bookworm's glibc is 2.36, so the
# binary runs on Raspberry Pi OS bookworm; check with cross/check-glibc.sh.
#
# One-time set-up on Debian 12 (as root):
#   dpkg --add-architecture arm64 && apt-get update
#   apt-get install rustc-web cargo-web libstd-rust-web-dev:arm64 \
#       gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu qemu-user
set -euo pipefail

target="aarch64-unknown-linux-gnu"
profile_args=(--release)
profile_dir=release
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then target="$1"; shift; fi
if [ "${1:-}" = "--debug" ]; then profile_args=(); profile_dir=debug; shift; fi
[ "${1:-}" = "--" ] && shift

cd "$(dirname "$0")/.."
missing=()
for tool in /usr/bin/cargo /usr/bin/rustc; do [ -x "$tool" ] || missing+=("$tool"); done
if [ "$target" = aarch64-unknown-linux-gnu ]; then
    command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(aarch64-linux-gnu-gcc)
    /usr/bin/rustc --print target-libdir --target "$target" 2>/dev/null | xargs -r test -d \
        || missing+=("Rust std for $target (libstd-rust-web-dev:arm64)")
fi
if [ ${#missing[@]} -gt 0 ]; then
    printf 'build-debian: missing: %s\n' "${missing[@]}" >&2
    sed -n '/^# One-time set-up/,/^set -euo/p' "$0" | sed '$d' >&2
    exit 1
fi

# RUSTC/RUSTDOC: keep rustup's proxies (first on PATH for most users) out of this build.
echo "build-debian: $(/usr/bin/rustc --version), target $target, profile $profile_dir"
RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc /usr/bin/cargo build --locked "${profile_args[@]}" --target "$target" "$@"
echo "build-debian: built target/$target/$profile_dir/bbedge"
