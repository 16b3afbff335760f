#!/usr/bin/env bash
# Usage: cross/package.sh [TARGET]    (default aarch64-unknown-linux-gnu)
#
# One command from source to target/debian/bbedge_<version>-1_<arch>.deb:
#   cross/package.sh                              # arm64, for Raspberry Pi OS bookworm
#   cross/package.sh x86_64-unknown-linux-gnu     # amd64
# Builds the release binary with `cross` when a container engine answers (docker or
# podman), otherwise with Debian's toolchain (cross/build-debian.sh), checks its
# glibc needs (<= 2.36), then packages it with `cargo deb --no-build`.
# Needs cargo-deb: cargo install cargo-deb --version 3.8.0 --locked
# Set BBEDGE_BUILD=cross|debian to force one path.
set -euo pipefail

target="${1:-aarch64-unknown-linux-gnu}"
cd "$(dirname "$0")/.."

have_engine() {
    local engine
    for engine in docker podman; do
        command -v "$engine" >/dev/null && timeout 20 "$engine" info >/dev/null 2>&1 && return 0
    done
    return 1
}

how="${BBEDGE_BUILD:-}"
if [ -z "$how" ]; then
    if command -v cross >/dev/null && have_engine; then how=cross; else how=debian; fi
fi
echo "package: building $target with $how"
case "$how" in
    cross) cross build --locked --release --target "$target" ;;
    debian) cross/build-debian.sh "$target" ;;
    *) echo "package: BBEDGE_BUILD must be cross or debian, not $how" >&2; exit 2 ;;
esac

cross/check-glibc.sh "target/$target/release/bbedge" 2.36
command -v cargo-deb >/dev/null || {
    echo "package: cargo-deb missing: cargo install cargo-deb --version 3.8.0 --locked" >&2
    exit 1
}
# --no-build: package the binary just built; cargo-deb maps target/release/ in the
# asset list to target/$target/release/ and sets the Debian architecture from $target.
cargo deb --no-build --target "$target" --output target/debian/
case "$target" in
    aarch64-*) arch=arm64 ;;
    x86_64-*) arch=amd64 ;;
    *) arch="*" ;;
esac
# shellcheck disable=SC2086 # $arch may be the glob *
ls -l target/debian/bbedge_*_$arch.deb
