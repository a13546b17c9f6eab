#!/usr/bin/env bash
# Load test of the exporter against the simulated PBX, figures from the exporter's own counters and
# /proc:
#
#   scripts/bench.sh                       # 1,000 calls, 10 s per concurrency level
#   CALLS=10000 DURATION=20 scripts/bench.sh
#
# Starts `yeastar-exporter simulate` with CALLS calls and the exporter with that PBX as target `pbx`
# (multi-target mode, so reading the exporter's counters on /metrics scrapes nothing), then runs
# examples/loadgen.rs on /probe?target=pbx at concurrency 1 and 64 (CONCURRENCY overrides) for
# DURATION seconds each. For each level it prints scrapes per second, latency p50/p99, PBX requests
# per scrape (coalescing shows as fewer than the ~6 one scrape sends), the exporter's CPU per scrape,
# and the exporter's RSS: idle, peak (VmHWM) over PACED scrapes one every 2 s (as Prometheus
# scrapes: the allocator returns freed memory between scrapes, after its 1 s purge delay), and
# peak under the back-to-back load.
set -euo pipefail
cd "$(dirname "$0")/.."

CALLS=${CALLS:-1000}
DURATION=${DURATION:-10}
CONCURRENCY=${CONCURRENCY:-"1 64"}
PACED=${PACED:-5}

cargo build --release --quiet --bin yeastar-exporter --example loadgen
BIN=target/release/yeastar-exporter
LOADGEN=target/release/examples/loadgen

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SIM_PORT=$(free_port)
EXP_PORT=$(free_port)
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" --log.level warn simulate --listen "127.0.0.1:$SIM_PORT" --calls "$CALLS" >"$WORK/sim.log" 2>&1 &
PIDS+=($!)
printf 'demo-password' >"$WORK/password"
cat >"$WORK/targets.yml" <<YAML
auth_modules:
  sim:
    username: api
    password_file: $WORK/password
targets:
  pbx:
    url: http://127.0.0.1:$SIM_PORT
    auth: sim
    timeout: 30s
YAML
"$BIN" --config.file "$WORK/targets.yml" --web.listen-address "127.0.0.1:$EXP_PORT" \
  --log.level warn >"$WORK/exporter.log" 2>&1 &
EXP_PID=$!
PIDS+=("$EXP_PID")

BASE="http://127.0.0.1:$EXP_PORT"
# GET a URL (python3: on every machine, unlike curl); prints the body, fails on an error.
get() { python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=60).read().decode())' "$1"; }
for _ in $(seq 100); do
  get "$BASE/-/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
sleep 0.5

rss_kib() { awk -v k="$2" '$1==k":" {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
pbx_requests() {
  get "$BASE/metrics" | awk '/^yeastar_exporter_pbx_requests_total\{/ {s += $NF} END {printf "%d", s}'
}
TICKS=$(getconf CLK_TCK)
IDLE_RSS=$(rss_kib "$EXP_PID" VmRSS)

for _ in $(seq "$PACED"); do
  get "$BASE/probe?target=pbx" >/dev/null
  sleep 2
done
PACED_RSS=$(rss_kib "$EXP_PID" VmHWM)

echo "yeastar-exporter on $(nproc) cores ($(uname -m)); simulated PBX with $CALLS calls; $DURATION s per level"
printf '%-11s %10s %9s %9s %13s %15s %7s\n' concurrency scrapes/s p50_ms p99_ms pbx_req/scrape cpu_ms/scrape errors
# One scrape first: logs in, so the levels compare steady states.
get "$BASE/probe?target=pbx" >/dev/null
for c in $CONCURRENCY; do
  req0=$(pbx_requests); cpu0=$(cpu_ticks "$EXP_PID")
  out=$("$LOADGEN" "$BASE/probe?target=pbx" "$c" "$DURATION")
  cpu1=$(cpu_ticks "$EXP_PID"); req1=$(pbx_requests)
  n=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$out")
  rps=$(sed -E 's/.*rps=([0-9.]+).*/\1/' <<<"$out")
  p50=$(sed -E 's/.*p50_ms=([0-9.]+).*/\1/' <<<"$out")
  p99=$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$out")
  errors=$(sed -E 's/.*errors=([0-9]+).*/\1/' <<<"$out")
  awk -v c="$c" -v n="$n" -v rps="$rps" -v p50="$p50" -v p99="$p99" -v e="$errors" \
      -v dreq=$((req1 - req0)) -v dcpu=$((cpu1 - cpu0)) -v hz="$TICKS" 'BEGIN {
    printf "%-11s %10.1f %9.2f %9.2f %13.2f %15.2f %7d\n", c, rps, p50, p99, (n ? dreq / n : 0), (n ? dcpu / hz * 1000 / n : 0), e
  }'
done
PEAK_RSS=$(rss_kib "$EXP_PID" VmHWM)
awk -v i="$IDLE_RSS" -v s="$PACED_RSS" -v n="$PACED" -v p="$PEAK_RSS" 'BEGIN {
  printf "exporter RSS: idle %.1f MiB; peak over %d paced scrapes %.1f MiB; peak under load %.1f MiB\n", i / 1024, n, s / 1024, p / 1024
}'
