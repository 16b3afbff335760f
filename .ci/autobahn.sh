#!/usr/bin/env bash
# WebSocket conformance of the local rooms' transport: runs the Autobahn|Testsuite
# fuzzing client (../shared/tools/autobahn) against bbedge's `/echo` endpoint
# (`[realtime] echo = true`), which shares the rooms' listener, handshake and limits.
#
#   .ci/autobahn.sh BBEDGE_BINARY [CASES]      (CASES default '*', minus 9.* 12.* 13.*)
#
# Exit 0: no case FAILED. Exit 1: a case FAILED, or bbedge did not start.
# Exit 3: the suite could not be installed (its setup downloads Python 2.7 from
# Debian bullseye and wstest from PyPI); the caller decides whether that is fatal.
# The suite is installed once under $AUTOBAHN_HOME (default /var/cache/bbedge-ci/autobahn).
set -euo pipefail

BIN=$(realpath "${1:?usage: .ci/autobahn.sh BBEDGE_BINARY [CASES]}")
CASES=${2:-*}
TOOLS=$(realpath "$(dirname "$0")/../../shared/tools/autobahn")
export AUTOBAHN_HOME=${AUTOBAHN_HOME:-/var/cache/bbedge-ci/autobahn}

if ! "$TOOLS/setup.sh" "$AUTOBAHN_HOME"; then
    echo "autobahn.sh: the suite could not be installed into $AUTOBAHN_HOME" >&2
    exit 3
fi

WORK=$(mktemp -d)
DAEMON=""
stop() {
    [ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null
    rm -rf "$WORK"
}
trap stop EXIT

# Echo on, everything else as shipped except: a free port, no device, no upstream, and a
# message rate the suite's bursts stay under (the default is for people, not a fuzzer).
BBEDGE_DAEMON__STATE_DIR="\"$WORK/state\"" \
BBEDGE_REALTIME__HOST='"127.0.0.1"' BBEDGE_REALTIME__PORT=0 BBEDGE_REALTIME__ECHO=true \
BBEDGE_HEALTH__PORT=0 BBEDGE_STATUS_LED__BACKEND=sim BBEDGE_PAIRING__BOOT_FILE='""' \
BBEDGE_UPSTREAM__ENABLED=false BBEDGE_REALTIME__RATE_LIMITING__MESSAGES_PER_SECOND=10000 \
    "$BIN" run --log-format json >"$WORK/daemon.log" 2>&1 &
DAEMON=$!

addr=""
for _ in $(seq 100); do
    addr=$(sed -n 's/.*"message":"bbedge ready".*"realtime_addr":"\([0-9.:]*\)".*/\1/p' \
        "$WORK/daemon.log" | head -n1)
    [ -n "$addr" ] && break
    kill -0 "$DAEMON" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$addr" ]; then
    echo "autobahn.sh: bbedge did not report ready; its log:" >&2
    cat "$WORK/daemon.log" >&2
    exit 1
fi

AUTOBAHN_AGENT=bbedge "$TOOLS/run-fuzzingclient.sh" "ws://$addr/echo" "$WORK/report" "$CASES"
