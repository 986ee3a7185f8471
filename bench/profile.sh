#!/usr/bin/env bash
# Quick ingest measurement (and optional profile) of the release binary:
# one fresh data dir, one channel, a pool of unique signed bodies, wrk with
# 64 connections; prints wrk's figures, the event log's commit metrics and
# the server's peak RSS. Uses the tools bench/run.sh installed in
# bench/.cache (run that once first).
#
#   bench/profile.sh [EVENTS_PER_BODY] [SECONDS]      # default 10 10
#   PERF=1 bench/profile.sh 10 10                     # also perf record -> $work/perf.data
#
# BENCH_BINARY=path measures another build. Settings pass through the environment (e.g. LINE_ADAPTER_STORE_CACHE_MIB=64).
set -euo pipefail
bench=$(cd "$(dirname "$0")" && pwd)
cache="$bench/.cache"
per=${1:-10}
secs=${2:-10}
for tool in "$cache/wrk/usr/bin/wrk" "$cache/venv/bin/grpcurl"; do
  [ -x "$tool" ] || { echo "missing $tool: run bench/run.sh once"; exit 1; }
done
binary=${BENCH_BINARY:-"$bench/../target/release/line-adapter"}
[ -x "$binary" ] || { echo "build it first: cargo build --release"; exit 1; }
work=$(mktemp -d)
secret=8c1d3e5f7a9b0c2d4e6f8a0b1c3d5e7f
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
grpc=$(port)
http=$(port)
"$binary" serve --grpc-addr "127.0.0.1:$grpc" --http-addr "127.0.0.1:$http" \
  --data-dir "$work/data" > "$work/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2> /dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http/readyz" > /dev/null && break; sleep 0.1; done
channel=$("$cache/venv/bin/grpcurl" -plaintext \
  -d "{\"display_name\":\"p\",\"line_channel_id\":\"1234567890\",\"channel_secret\":\"$secret\"}" \
  "127.0.0.1:$grpc" weiyu.line.v1.ChannelAdmin/CreateChannel \
  | python3 -c "import json, sys; print(json.load(sys.stdin)['channel']['id'])")
# Enough unique bodies for the run at well above the rates seen so far.
count=$(( (per == 1 ? 40000 : 11000) * secs ))
read -r length _ < <(python3 "$bench/pool.py" "$work/pool.bin" "$secret" "p$RANDOM" "$per" "$count" "/webhook/line/$channel")
if [ -n "${PERF:-}" ]; then
  perf record -F ${PERF_HZ:-999} ${PERF_CALLGRAPH:--g} -p "$pid" -o "$work/perf.data" -- sleep "$secs" &
  perf_pid=$!
fi
LD_LIBRARY_PATH="$cache/wrk/usr/lib/x86_64-linux-gnu" "$cache/wrk/usr/bin/wrk" -t1 -c64 -d"${secs}s" \
  --timeout 10s -s "$bench/pool.lua" "http://127.0.0.1:$http/webhook/line/$channel" -- "$work/pool.bin" "$length" \
  | grep -v '^{'
[ -n "${PERF:-}" ] && wait "$perf_pid" && echo "profile: $work/perf.data (perf report -i $work/perf.data)"
curl -s "http://127.0.0.1:$http/metrics" | grep -E "^line_adapter_event_log_commit_(records|duration_seconds)_(sum|count)"
grep -E "VmHWM" "/proc/$pid/status"
echo "data dir (for bench/startup.sh): $work/data"
