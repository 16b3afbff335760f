#!/usr/bin/env bash
# WebSocket conformance of the local rooms: the Autobahn|Testsuite fuzzing client
# (../shared/tools/autobahn) against the read loop every connection runs
# (src/room/reader.rs: framing, close handshake, close codes), in three runs:
#
#   room   ws://…/realtime/devices/<uuid>, an agent token as the subprotocol
#          auth.<token> (issued with `bbedge token add --role agent`), cases 1-7, 10
#          at the shipped limits. The room answers JSON only, sends connection.ack
#          first and never echoes, so wstest's *echo* verdicts mean nothing here; what
#          is judged is the closing handshake:
#            - a case where the server must fail the connection (bad frame, bad UTF-8,
#              bad close): behaviorClose OK (the right code, a clean close);
#            - a case the client closed itself (a Close, not a drop): behaviorClose OK
#              (the Close echoed at once);
#            - a case wstest had to drop because no echo came (failedByMe): counted
#              and listed as the room's application semantics, not a failure.
#   echo   ws://…/echo (`[realtime] echo = true`), the same listener, head check,
#          handshake, limits and read loop with an echo handler: cases 1-7, 10 at the
#          shipped limits, judged in full: no FAILED behavior, and behaviorClose never
#          UNCLEAN, FAILED, FAILED BY CLIENT or WRONG CODE.
#   echo9  the same on a second daemon with max_frame_bytes = 16 MiB: cases 9.*
#          (messages up to 16 MiB), judged in full as `echo`.
#
#   .ci/autobahn.sh BBEDGE_BINARY [RUNS]      (RUNS default 'room echo echo9')
#
# Exit 0: every run passed. Exit 1: a run failed its criteria, or bbedge did not start.
# Exit 3: the suite could not be installed (its setup downloads Python 2.7 from
# Debian bullseye and wstest from PyPI); the caller decides whether that is fatal.
# The suite is installed once under $AUTOBAHN_HOME (default /var/cache/bbedge-ci/autobahn).
# Reports: $AUTOBAHN_REPORTS/<run>/index.html (default: a temp dir, removed at exit).
set -euo pipefail

BIN=$(realpath "${1:?usage: .ci/autobahn.sh BBEDGE_BINARY [RUNS]}")
RUNS=${2:-room echo echo9}
TOOLS=$(realpath "$(dirname "$0")/../../shared/tools/autobahn")
export AUTOBAHN_HOME=${AUTOBAHN_HOME:-/var/cache/bbedge-ci/autobahn}

if ! "$TOOLS/setup.sh" "$AUTOBAHN_HOME"; then
    echo "autobahn.sh: the suite could not be installed into $AUTOBAHN_HOME" >&2
    exit 3
fi
WSTEST=$AUTOBAHN_HOME/bin/wstest
PY=$AUTOBAHN_HOME/bin/python2.7

WORK=$(mktemp -d)
REPORTS=${AUTOBAHN_REPORTS:-$WORK/reports}
DAEMON=""
stop_daemon() {
    if [ -n "$DAEMON" ]; then
        kill "$DAEMON" 2>/dev/null || true
        wait "$DAEMON" 2>/dev/null || true
        DAEMON=""
    fi
}
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    stop_daemon
    rm -rf "$WORK"
}
trap cleanup EXIT

DEVICE=$(cat /proc/sys/kernel/random/uuid)
# Everything as shipped except: a free port, a fixed device UUID, no upstream, echo on.
# Extra BBEDGE_* assignments (the raised limits of echo9) come as arguments. A plain
# array for env(1), not a shell function: `env … bbedge &` makes $! bbedge's own pid
# (env execs it), so stop_daemon stops bbedge and not a subshell that leaves it running.
BBEDGE_ENV=(
    BBEDGE_DAEMON__STATE_DIR="\"$WORK/state\""
    BBEDGE_REALTIME__HOST='"127.0.0.1"' BBEDGE_REALTIME__PORT=0 BBEDGE_REALTIME__ECHO=true
    BBEDGE_HEALTH__PORT=0 BBEDGE_STATUS_LED__BACKEND=sim BBEDGE_PAIRING__BOOT_FILE='""'
    BBEDGE_UPSTREAM__ENABLED=false BBEDGE_DEVICE__UUID="\"$DEVICE\""
)

ADDR=""
start_daemon() {
    local log=$WORK/daemon-$1.log
    shift
    env "${BBEDGE_ENV[@]}" "$@" "$BIN" run --log-format json >"$log" 2>&1 &
    DAEMON=$!
    ADDR=""
    for _ in $(seq 100); do
        ADDR=$(sed -n 's/.*"message":"bbedge ready".*"realtime_addr":"\([0-9.:]*\)".*/\1/p' \
            "$log" | head -n1)
        [ -n "$ADDR" ] && return 0
        kill -0 "$DAEMON" 2>/dev/null || break
        sleep 0.1
    done
    echo "autobahn.sh: bbedge did not report ready; its log:" >&2
    cat "$log" >&2
    return 1
}

# A real agent token for this box's room, issued before the daemon starts. It stays
# in variables and the (temporary) spec file; it is never printed.
TOKEN=$(env "${BBEDGE_ENV[@]}" "$BIN" token add --role agent --label autobahn | sed -n 's/^token: //p')
if [ -z "$TOKEN" ]; then
    echo "autobahn.sh: bbedge token add --role agent printed no token" >&2
    exit 1
fi

# wstest against URL with the optional subprotocol; the report lands in $REPORTS/NAME.
wstest_run() {
    local name=$1 url=$2 cases=$3 protocol=${4:-}
    local out=$REPORTS/$name
    rm -rf "$out"
    mkdir -p "$out"
    "$PY" - "$out" "$url" "$cases" "$protocol" <<'PYEOF'
import io, json, os, sys
out, url, cases, protocol = sys.argv[1:5]
server = {"agent": "bbedge", "url": url}
if protocol:
    server["protocols"] = [protocol]
spec = {"outdir": out, "servers": [server], "cases": cases.split(","),
        "exclude-cases": ["12.*", "13.*"], "exclude-agent-cases": {}}
with io.open(os.path.join(out, "fuzzingclient.json"), "w", encoding="utf-8") as f:
    f.write(u"%s\n" % json.dumps(spec, indent=2))
PYEOF
    echo "autobahn: $name: wstest fuzzingclient, cases $cases"
    (cd "$out" && timeout --kill-after=10 1800 "$WSTEST" -m fuzzingclient -s fuzzingclient.json) \
        >"$out/wstest.log" 2>&1 || {
        echo "autobahn: $name: wstest failed; the end of its log:" >&2
        tail -n 20 "$out/wstest.log" >&2
        return 1
    }
}

# The verdict on a report: MODE is 'full' (echo runs) or 'close' (the room run).
judge() {
    "$PY" - "$REPORTS/$1" "$2" "$1" <<'PYEOF'
from __future__ import print_function
import io, json, os, sys
out, mode, name = sys.argv[1:4]
with io.open(os.path.join(out, "index.json"), encoding="utf-8") as f:
    index = json.load(f)
cases = {}
for per_agent in index.values():
    cases.update(per_agent)
key = lambda c: tuple(int(x) for x in c.split("."))
behaviors, closes, bad, app = {}, {}, [], []
for case in sorted(cases, key=key):
    r = cases[case]
    behaviors[r["behavior"]] = behaviors.get(r["behavior"], 0) + 1
    closes[r["behaviorClose"]] = closes.get(r["behaviorClose"], 0) + 1
    close_ok = r["behaviorClose"] in ("OK", "INFORMATIONAL")
    if mode == "full":
        if r["behavior"] == "FAILED" or not close_ok:
            bad.append((case, r))
        continue
    with io.open(os.path.join(out, r["reportfile"]), encoding="utf-8") as f:
        detail = json.load(f)
    expected = detail.get("expectedClose") or {}
    server_must_fail = not expected.get("closedByMe", expected.get("failedByMe", True))
    # wstest gave up waiting for an echo: its kill timer fired (KLE) before it had
    # sent any Close of its own (a TF entry with opcode 8).
    killed, closed_first = False, False
    for e in detail.get("wirelog") or []:
        if e and e[0] == "KLE":
            killed = True
            break
        if e and e[0] == "TF" and len(e) > 2 and e[2] == 8:
            closed_first = True
    if server_must_fail or not killed or closed_first:
        if not close_ok:
            bad.append((case, r))
    else:
        app.append(case)
print("autobahn: %s: %d cases; behavior %s; closing handshake %s" % (
    name, len(cases), json.dumps(behaviors, sort_keys=True), json.dumps(closes, sort_keys=True)))
if app:
    print("autobahn: %s: %d cases dropped by wstest for want of an echo (the room's "
          "semantics, not judged): %s" % (name, len(app), " ".join(app)))
for case, r in bad:
    print("autobahn: %s: FAILED %s (behavior %s, close %s, code %s)" % (
        name, case, r["behavior"], r["behaviorClose"], r.get("remoteCloseCode")))
sys.exit(1 if bad or not cases else 0)
PYEOF
}

status=0
for run in $RUNS; do
    case "$run" in
        room)
            start_daemon room || exit 1
            if ! { wstest_run room "ws://$ADDR/realtime/devices/$DEVICE" \
                "1.*,2.*,3.*,4.*,5.*,6.*,7.*,10.*" "auth.$TOKEN" && judge room close; }; then
                status=1
            fi
            stop_daemon
            ;;
        echo)
            start_daemon echo || exit 1
            if ! { wstest_run echo "ws://$ADDR/echo" "1.*,2.*,3.*,4.*,5.*,6.*,7.*,10.*" \
                && judge echo full; }; then
                status=1
            fi
            stop_daemon
            ;;
        echo9)
            start_daemon echo9 BBEDGE_REALTIME__LIMITS__MAX_FRAME_BYTES=16777216 \
                BBEDGE_REALTIME__LIMITS__SEND_QUEUE_BYTES=33554432 || exit 1
            if ! { wstest_run echo9 "ws://$ADDR/echo" "9.*" && judge echo9 full; }; then
                status=1
            fi
            stop_daemon
            ;;
        *)
            echo "autobahn.sh: unknown run '$run' (room, echo, echo9)" >&2
            exit 1
            ;;
    esac
done
exit "$status"
