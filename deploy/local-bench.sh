#!/usr/bin/env bash
# `make bench`: starts one local `danmaku serve` (embedded NATS, in-memory
# state) on free loopback ports, runs a scenario against it (default the smoke
# scenario) and prints the summary. Exit code is the bench's: 0 pass,
# 1 a target missed, 2 could not run.
#   deploy/local-bench.sh [SCENARIO] [extra danmaku bench flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/danmaku}
SCENARIO=${1:-bench/scenarios/smoke.yaml}
shift || true
SECRET=${DANMAKU_SECRET:-bench-$RANDOM$RANDOM}
LOG=$(mktemp /tmp/danmaku-bench-serve.XXXXXX.log)

# Port 0: the kernel picks free ports; the banner on stdout says which.
"$BIN" serve --secret "$SECRET" --edge 127.0.0.1:0 --http 127.0.0.1:0 --rtmp "" >"$LOG" 2>&1 &
SERVE=$!
trap 'kill -TERM $SERVE 2>/dev/null; wait $SERVE 2>/dev/null || true' EXIT
EDGE="" HTTP=""
for _ in $(seq 1 100); do
	EDGE=$(sed -n 's|^  edge  *ws://\([^/]*\)/ws.*|\1|p' "$LOG")
	HTTP=$(sed -n 's|^  http  *http://\([^ ]*\) .*|\1|p' "$LOG")
	[ -n "$HTTP" ] && curl -sf "http://$HTTP/readyz" >/dev/null 2>&1 && break
	kill -0 $SERVE 2>/dev/null || { echo "danmaku serve failed to start:"; cat "$LOG"; exit 2; }
	sleep 0.1
done
echo "[bench] danmaku serve on ws://$EDGE/ws and tcp://$EDGE (log $LOG)"
set +e
"$BIN" bench --scenario "$SCENARIO" --secret "$SECRET" \
	--target "ws://$EDGE/ws" --target "tcp://$EDGE" --metrics "http://$HTTP/metrics" --quiet "$@"
rc=$?
set -e
echo "[bench] exit $rc"
exit $rc
