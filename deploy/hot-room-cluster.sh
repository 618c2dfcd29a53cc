#!/usr/bin/env bash
# The 100,000-viewer run of docs/BENCHMARKS.md: N `danmaku serve` nodes on loopback (embedded
# NATS clustered, the local Redis), one hot room, the bench against all of them.
#   N=6 VIEWERS=100000 TICK=1s BUDGET=10 deploy/hot-room-cluster.sh   # results in /tmp/h100k.out
set -u
cd "$(dirname "$0")/.."
N=${N:-6}; VIEWERS=${VIEWERS:-100000}; TICK=${TICK:-1s}
PREFIX=h100k$RANDOM
printf 'manager:\n  tick: %s\n  budget: %s\n' "$TICK" "${BUDGET:-200}" > /tmp/h100k.yaml
pids=(); targets=(); metrics=()
for i in $(seq 1 $N); do
  args=(serve --config /tmp/h100k.yaml --node-id h$i --secret s --redis redis://127.0.0.1:6379/0 --redis-prefix $PREFIX
        --edge 127.0.0.1:710$i --http 127.0.0.1:720$i --nats-cluster 127.0.0.1:730$i --rtmp "" --max-conns 19000)
  [ $i = 1 ] || args+=(--nats-routes nats://127.0.0.1:7301)
  bin/danmaku "${args[@]}" > /tmp/h100k-n$i.log 2>&1 &
  pids+=($!); targets+=(--target ws://127.0.0.1:710$i/ws); metrics+=(--metrics http://127.0.0.1:720$i/metrics)
done
for i in $(seq 1 $N); do for _ in $(seq 100); do curl -sf 127.0.0.1:720$i/readyz >/dev/null && break; sleep 0.2; done; done
cat > /tmp/h100k-scen.yaml <<EOS
name: hot-room-100k-real
targets: [ws://127.0.0.1:7101/ws]
duration: 100s
drain: 20s
ramp: {joins_per_second: 2000}
rooms:
  - id: hot
    viewers: $VIEWERS
    chat: {senders: 0.005, rate: 1}
    gifts: {rate: 1, senders: 5}
slo:
  latency_p99: {lossy: 2s, reliable: 2s}
  connect_success: 0.999
  exactly_once: true
EOS
timeout 400 bin/danmaku bench --scenario /tmp/h100k-scen.yaml --secret s "${targets[@]}" "${metrics[@]}" --quiet --json /tmp/h100k.json > /tmp/h100k.out 2>&1
echo "bench exit $?" >> /tmp/h100k.out
for i in $(seq 1 $N); do curl -s 127.0.0.1:720$i/metrics | grep -E "^process_cpu_seconds_total|^danmaku_edge_fanout_writes_total|^danmaku_room_ticks_stretched_total" | sed "s/^/h$i /"; done >> /tmp/h100k.out
kill -TERM "${pids[@]}"; wait
