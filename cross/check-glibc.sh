#!/usr/bin/env bash
# Usage: cross/check-glibc.sh BINARY [MAX]   (MAX defaults to 2.36, Raspberry Pi OS bookworm)
#
# Fails if BINARY needs a glibc symbol version newer than MAX: such a binary would
# not start on the box ("version `GLIBC_2.xx' not found"). Reads the dynamic symbol
# table with readelf (binutils; any architecture) and prints the highest GLIBC_x.y.
set -euo pipefail

bin="${1:?usage: $0 BINARY [MAX]}"
max="${2:-2.36}"
[ -f "$bin" ] || { echo "check-glibc: no such file: $bin" >&2; exit 2; }

readelf=readelf
command -v "$readelf" >/dev/null || readelf=aarch64-linux-gnu-readelf
versions="$("$readelf" --dyn-syms --version-info --wide "$bin" \
    | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -u -V)"
if [ -z "$versions" ]; then
    echo "check-glibc: $bin references no GLIBC_ symbol versions (static or not glibc?)" >&2
    exit 2
fi
highest="$(printf '%s\n' "$versions" | tail -n1)"
echo "check-glibc: $bin needs GLIBC_$highest at most (limit $max)"
if [ "$(printf '%s\n%s\n' "$highest" "$max" | sort -V | tail -n1)" != "$max" ]; then
    echo "check-glibc: FAIL: GLIBC_$highest > $max; symbols needing it:" >&2
    "$readelf" --dyn-syms --wide "$bin" | grep -wF "GLIBC_$highest" >&2 || true
    exit 1
fi
