#!/usr/bin/env bash
# `make cluster`: three `danmaku serve` nodes on loopback whose embedded NATS
# servers form one NATS cluster, sharing the local Redis (127.0.0.1:6379)
# under a fresh key prefix. Prints the URLs and a listen/send example, then
# waits; Ctrl-C drains and stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/danmaku}
SECRET=${DANMAKU_SECRET:-cluster-dev-secret}
REDIS=${DANMAKU_REDIS:-redis://127.0.0.1:6379/0}
PREFIX=${CLUSTER_PREFIX:-dmkcluster$RANDOM}
LOGDIR=$(mktemp -d /tmp/danmaku-cluster.XXXXXX)
pids=()
stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT INT TERM

for i in 1 2 3; do
	args=(serve --node-id "n$i" --secret "$SECRET" --redis "$REDIS" --redis-prefix "$PREFIX"
		--edge "127.0.0.1:700$i" --http "127.0.0.1:808$i" --nats-cluster "127.0.0.1:625$i"
		--api-key dev-api --admin-key dev-admin --rtmp "")
	[ "$i" = 1 ] || args+=(--nats-routes nats://127.0.0.1:6251)
	"$BIN" "${args[@]}" >"$LOGDIR/n$i.log" 2>&1 &
	pids+=($!)
done
for i in 1 2 3; do
	for _ in $(seq 1 100); do
		curl -sf "http://127.0.0.1:808$i/readyz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	curl -sf "http://127.0.0.1:808$i/readyz" >/dev/null || { echo "node n$i did not start:"; cat "$LOGDIR/n$i.log"; exit 1; }
	echo "n$i  edge ws://127.0.0.1:700$i/ws tcp://127.0.0.1:700$i  http http://127.0.0.1:808$i  log $LOGDIR/n$i.log"
done
cat <<MSG
redis prefix $PREFIX; api key dev-api; admin key dev-admin
try:
  T=\$($BIN token --secret $SECRET --user alice)
  $BIN listen --url ws://127.0.0.1:7003/ws --token \$T --room lobby &
  $BIN send --url tcp://127.0.0.1:7001 --token \$T --room lobby 'hello from node 1'
Ctrl-C stops the cluster.
MSG
wait
