#!/usr/bin/env bash
# Benchmarks side by side (issues 8 and 21): line-adapter's durable webhook
# ingest against an Express + @line/bot-sdk peer and a bare hyper server
# that only checks the signature (the ceiling), webhook -> Subscribe latency,
# outbound sends/s, RSS and start-up time, all in one run on this machine.
#
#   bench/run.sh            full run (~5 min): writes bench/RESULTS.md,
#                           bench/results.png and bench/results.json
#   bench/run.sh --quick    short run (~2 min): writes them into the run
#                           folder under bench/.cache/runs/ only
#   BENCH_BINARY=path bench/run.sh --quick
#                           measures that line-adapter binary instead (a
#                           build of an earlier commit, for before/after)
#
# Installs everything it uses into bench/.cache (gitignored): wrk and h2load
# (Debian's packages, unpacked, not installed), the Node peer's packages (npm ci from
# bench/node-peer/package-lock.json), and a Python venv with matplotlib,
# grpcio and grpcurl (bench/requirements.txt). Builds the release binary and
# the two cargo benches. Loopback only; every process it starts is ended on
# exit.
set -euo pipefail

bench=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$bench")
cache="$bench/.cache"
quick=""
for arg in "$@"; do
  case "$arg" in
    --quick) quick="--quick" ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 64 ;;
  esac
done

mkdir -p "$cache/runs"
run="$cache/runs/$(date -u +%Y%m%dT%H%M%SZ)${quick:+-quick}"
mkdir -p "$run"
orchestrator=""
cleanup() {
  local status=$?
  if [ -n "$orchestrator" ] && kill -0 "$orchestrator" 2> /dev/null; then
    kill -TERM "$orchestrator" 2> /dev/null || true
    wait "$orchestrator" 2> /dev/null || true
  fi
  # Anything the orchestrator started and could not end itself (each was
  # started in a process group of its own).
  if [ -f "$run/pids" ]; then
    while read -r pid; do
      kill -KILL -- "-$pid" 2> /dev/null || true
    done < "$run/pids"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { echo "[run.sh $(date +%H:%M:%S)] $*"; }

# ------------------------------------------------------------------ tools
say "tools into $cache"
# wrk: Debian's package unpacked into the cache, with its LuaJIT.
if [ ! -x "$cache/wrk/usr/bin/wrk" ]; then
  rm -rf "$cache/wrk" "$cache/debs"
  mkdir -p "$cache/debs"
  (
    cd "$cache/debs"
    apt-get download wrk 2> /dev/null || { apt-get update -qq && apt-get download wrk; }
    apt-get download libluajit2-5.1-2 2> /dev/null || apt-get download libluajit-5.1-2
  )
  for deb in "$cache"/debs/*.deb; do dpkg -x "$deb" "$cache/wrk"; done
fi
wrk="$cache/wrk/usr/bin/wrk"
wrk_lib=$(dirname "$(find "$cache/wrk" -name 'libluajit-5.1.so.2' | head -1)")
wrk_version=$( (LD_LIBRARY_PATH="$wrk_lib" "$wrk" -v 2>&1 || true) | head -1 | sed "s/ Copyright.*//")
wrk_deb=$(dpkg-deb -f "$cache"/debs/wrk_*.deb Version)
luajit_deb=$(basename "$(ls "$cache"/debs/libluajit*.deb)" .deb)

# h2load (nghttp2-client) the same way, with the libraries it needs that a
# plain Debian machine lacks.
if [ ! -x "$cache/h2load/usr/bin/h2load" ]; then
  rm -rf "$cache/h2load" "$cache/debs-h2load"
  mkdir -p "$cache/debs-h2load"
  (
    cd "$cache/debs-h2load"
    apt-get download nghttp2-client libev4 libjemalloc2 libjansson4 2> /dev/null \
      || { apt-get update -qq && apt-get download nghttp2-client libev4 libjemalloc2 libjansson4; }
  )
  for deb in "$cache"/debs-h2load/*.deb; do dpkg -x "$deb" "$cache/h2load"; done
fi
h2load="$cache/h2load/usr/bin/h2load"
h2load_lib=$(find "$cache/h2load" -name '*.so*' -printf '%h\n' | sort -u | paste -sd:)
h2load_version=$(LD_LIBRARY_PATH="$h2load_lib" "$h2load" --version | head -1)
h2load_deb=$(dpkg-deb -f "$cache"/debs-h2load/nghttp2-client_*.deb Version)

# Node.js and the Express peer.
if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
  apt-get update -qq && apt-get install -y -qq nodejs npm
fi
mkdir -p "$cache/node-peer"
cp "$bench/node-peer/package.json" "$bench/node-peer/package-lock.json" "$bench/node-peer/server.mjs" \
  "$cache/node-peer/"
if ! cmp -s "$bench/node-peer/package-lock.json" "$cache/node-peer/node_modules/.package-lock.json.bench" 2> /dev/null; then
  (cd "$cache/node-peer" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$bench/node-peer/package-lock.json" "$cache/node-peer/node_modules/.package-lock.json.bench"
fi

# Python venv: matplotlib for the chart, grpcio for the health probe,
# grpcurl (the version CI uses) to register the channel.
if [ ! -x "$cache/venv/bin/python" ]; then
  python3 -m venv "$cache/venv" 2> /dev/null || {
    apt-get update -qq && apt-get install -y -qq python3-venv
    python3 -m venv "$cache/venv"
  }
fi
if ! cmp -s "$bench/requirements.txt" "$cache/venv/requirements.txt"; then
  "$cache/venv/bin/pip" install --quiet --disable-pip-version-check -r "$bench/requirements.txt"
  cp "$bench/requirements.txt" "$cache/venv/requirements.txt"
fi
py="$cache/venv/bin/python"
grpcurl="$cache/venv/bin/grpcurl"

# ------------------------------------------------------------------ builds
say "cargo build --release --locked --bin line-adapter"
(cd "$root" && cargo build --release --locked --bin line-adapter --quiet)
say "cargo build --release --locked --example bare_hyper_ceiling"
(cd "$root" && cargo build --release --locked --example bare_hyper_ceiling --quiet)
say "cargo bench --no-run (webhook_ingest, outbound_send)"
(cd "$root" && cargo bench --no-run --locked --bench webhook_ingest --bench outbound_send \
  --message-format=json --quiet) > "$run/cargo-bench.json"
bench_exe() {
  "$py" -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[2] and m.get("executable"):
        print(m["executable"])' "$run/cargo-bench.json" "$1" | tail -1
}
ingest_bench=$(bench_exe webhook_ingest)
outbound_bench=$(bench_exe outbound_send)
[ -x "$ingest_bench" ] && [ -x "$outbound_bench" ] || { echo "bench executables not found" >&2; exit 1; }

# ------------------------------------------------------------------ versions
"$py" - "$run/versions.json" <<EOF
import json, subprocess, sys, importlib.metadata as md
def out(*cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    return (r.stdout or r.stderr).strip().splitlines()[0]
pkg = lambda p: json.load(open(f"$cache/node-peer/node_modules/{p}/package.json"))["version"]
json.dump({
    "commit": out("git", "-C", "$root", "rev-parse", "--short=12", "HEAD"),
    "dirty_src": bool(subprocess.run(["git", "-C", "$root", "status", "--porcelain", "--", "src", "benches", "Cargo.toml", "Cargo.lock"],
                                     capture_output=True, text=True).stdout.strip()),
    "rustc": out("rustc", "-V"),
    "wrk": "$wrk_version (Debian package $wrk_deb, with $luajit_deb)",
    "h2load": "$h2load_version (Debian package nghttp2-client $h2load_deb)",
    "node": out("node", "-v"),
    "express": pkg("express"),
    "line_bot_sdk": pkg("@line/bot-sdk"),
    "python": sys.version.split()[0],
    "matplotlib": md.version("matplotlib"),
    "grpcio": md.version("grpcio"),
    "grpcurl": out("$grpcurl", "-version"),
}, open(sys.argv[1], "w"), indent=1)
EOF

# ------------------------------------------------------------------ measure
say "measuring (results in $run)"
"$py" "$bench/bench.py" $quick --out "$run" --cache "$cache" \
  --wrk "$wrk" --wrk-lib "$wrk_lib" --grpcurl "$grpcurl" --node "$(command -v node)" \
  --node-peer "$cache/node-peer" --binary "${BENCH_BINARY:-$root/target/release/line-adapter}" \
  --ingest-bench "$ingest_bench" --outbound-bench "$outbound_bench" \
  --h2load "$h2load" --h2load-lib "$h2load_lib" \
  --ceiling "$root/target/release/examples/bare_hyper_ceiling" \
  --versions "$run/versions.json" &
orchestrator=$!
wait "$orchestrator"
orchestrator=""

# ------------------------------------------------------------------ report
if [ -n "$quick" ]; then dest="$run"; else dest="$bench"; fi
"$py" "$bench/chart.py" "$run/results.json" "$dest/results.png"
"$py" "$bench/results.py" "$run/results.json" "$dest/RESULTS.md"
[ -n "$quick" ] || cp "$run/results.json" "$bench/results.json"
say "wrote $dest/RESULTS.md and $dest/results.png"
