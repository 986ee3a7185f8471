#!/usr/bin/env bash
# Start-up time of the release binary on an existing data dir: spawns
# `line-adapter serve` on it RUNS times (default 5), polls /readyz every
# 2 ms and prints the time from spawn to the first 200 and the log's head
# sequence. A data dir to try it on comes from bench/profile.sh, which
# prints its own (e.g. `bench/profile.sh 10 28` stores about 900k events).
#
#   bench/startup.sh DATA_DIR [RUNS]
#   BENCH_BINARY=path bench/startup.sh DATA_DIR     # another build
set -euo pipefail
bench=$(cd "$(dirname "$0")" && pwd)
dir=${1:?usage: bench/startup.sh DATA_DIR [RUNS]}
runs=${2:-5}
binary=${BENCH_BINARY:-"$bench/../target/release/line-adapter"}
[ -x "$binary" ] || { echo "build it first: cargo build --release"; exit 1; }
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
log=$(mktemp)
for _ in $(seq "$runs"); do
  http=$(port)
  grpc=$(port)
  started=$(date +%s%N)
  "$binary" serve --grpc-addr "127.0.0.1:$grpc" --http-addr "127.0.0.1:$http" \
    --data-dir "$dir" > "$log" 2>&1 &
  pid=$!
  until curl -sf "http://127.0.0.1:$http/readyz" > /dev/null; do
    kill -0 "$pid" 2> /dev/null || { cat "$log"; exit 1; }
    sleep 0.002
  done
  ready=$(date +%s%N)
  head=$(curl -s "http://127.0.0.1:$http/metrics" | awk '/^line_adapter_event_log_head_sequence /{print $2}')
  echo "ready in $(( (ready - started) / 1000000 )) ms with $head events in the log"
  kill "$pid"
  wait "$pid" || true
done
rm -f "$log"
