#!/usr/bin/env bash
# Smoke test: starts the given line-adapter binary with its embedded
# defaults (gRPC 127.0.0.1:50051, HTTP 0.0.0.0:8080) in a fresh data dir and
# runs the README's grpcurl walk-through against it, then stops it with
# SIGTERM and expects exit code 0.
#
# Usage: scripts/smoke.sh path/to/line-adapter
set -euo pipefail

bin=$(realpath "${1:?usage: scripts/smoke.sh path/to/line-adapter}")
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
log="$work/service.log"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "smoke: FAIL: $*" >&2
  echo "--- service log ---" >&2
  cat "$log" >&2 || true
  exit 1
}

# The walk-through is the README's block between the walkthrough markers.
sed -n '/<!-- walkthrough:start -->/,/<!-- walkthrough:end -->/p' "$root/README.md" \
  | sed '/^<!--/d; /^```/d' > "$work/walkthrough.sh"
[ -s "$work/walkthrough.sh" ] || fail "no walk-through found in README.md"

# The walk-through calls `line-adapter` by name, as an installed binary.
export PATH="$(dirname "$bin"):$PATH"

# Run as a user would: `line-adapter serve` from a folder of their own.
(cd "$work" && exec "$bin" serve) > "$log" 2>&1 &
pid=$!

for _ in $(seq 1 200); do
  if curl -fsS localhost:8080/readyz > /dev/null 2>&1; then break; fi
  kill -0 "$pid" 2>/dev/null || fail "the service exited during start-up"
  sleep 0.1
done
curl -fsS localhost:8080/readyz > /dev/null || fail "the service never became ready"

out="$work/walkthrough.out"
(cd "$work" && bash -euo pipefail walkthrough.sh) > "$out" 2>&1 \
  || { cat "$out" >&2; fail "the README walk-through failed"; }
cat "$out"

expect() { grep -q -- "$1" "$out" || fail "walk-through output lacks: $1"; }
expect "weiyu.line.v1.ChannelAdmin"
expect "weiyu.line.v1.Messaging"
expect "grpc.health.v1.Health"
expect "grpc.reflection.v1alpha.ServerReflection"
expect "grpc.reflection.v1.ServerReflection"
expect "Registers a LINE channel"            # describe shows the proto comments
expect "http://localhost:8080/webhook/line/ch_"
expect '"displayName": "Tokyo flagship"'
expect '{} 200'                                # the signed webhook was accepted
expect '"text":"Hello from LINE"'              # and came back through Subscribe
expect '"webhook_event_id":"01HWALKTHR0UGH0000000000001"'
expect '"status": "SERVING"'
grep -qx "ready" "$out" || fail "/readyz did not answer ready"
if grep -q "0123456789abcdef0123456789abcdef" "$out" "$log"; then
  fail "the channel secret appeared in a response or the log"
fi
[ -f "$work/line-adapter-data/master.key" ] || fail "no master key generated in the default data dir"

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
[ "$status" -eq 0 ] || fail "exit code $status after SIGTERM"
grep -q "line_adapter::app: stopped$" "$log" || fail "no clean 'stopped' log line"
echo "smoke: 1 passed, 0 failed"
