#!/usr/bin/env bash
# Smoke test of the README: runs every ```sh and ```console block of
# README.md, in order, in one shell, against the given line-adapter binary
# and a LINE stand-in (scripts/line_stub.py), then stops the service with
# SIGTERM and checks how it stops.
#
#   1. scripts/readme_blocks.py splits the README into blocks. Each block
#      is preceded by an annotation (see that script, and the README's
#      Development section): `<!-- smoke: run -->`, `run; exit N`,
#      `run; pending (why)` or `skip (why)`. A block without one fails the
#      run before anything starts.
#   2. The stand-in starts on a free port; the binary starts as a user
#      starts it, `line-adapter serve` in a fresh folder, with its embedded
#      defaults (gRPC 127.0.0.1:50051, HTTP 0.0.0.0:8080) and
#      LINE_ADAPTER_LINE_API_BASE / LINE_ADAPTER_LINE_DATA_API_BASE pointing
#      at the stand-in. The blocks run in that folder with the same
#      environment (so `line-adapter check` sees the service's settings)
#      and `line-adapter` on PATH.
#   3. `run` blocks are sourced in one shell under `set -euo pipefail`, so
#      variables carry over; any failure stops the run. `exit N` and
#      `pending` blocks run in a subshell (their variables do not carry
#      over) with a time limit; a console block's output must match what
#      the README shows. A `pending` block documents behaviour that is not
#      built yet: its failure is reported, not fatal, unless SMOKE_STRICT=1.
#   4. The output of all blocks, and the requests the stand-in received,
#      are checked for what the README promises.
#   5. SIGTERM with a call in flight: /readyz 503 and gRPC health
#      NOT_SERVING at once, webhooks 503 with Retry-After while draining,
#      the call finishes, exit code 0.
#
# Usage: scripts/smoke.sh path/to/line-adapter
# Needs python3, grpcurl, jq, openssl and curl on PATH.
set -euo pipefail

bin=$(realpath "${1:?usage: scripts/smoke.sh path/to/line-adapter}")
root=$(cd "$(dirname "$0")/.." && pwd)
readme=${SMOKE_README:-$root/README.md}
strict=${SMOKE_STRICT:-0}
block_timeout=${SMOKE_BLOCK_TIMEOUT:-30}
work=$(mktemp -d)
log="$work/service.log"
requests="$work/line-requests.jsonl"
pid=""
stub_pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2> /dev/null; then kill -KILL "$pid" 2> /dev/null || true; fi
  if [ -n "$stub_pid" ]; then kill "$stub_pid" 2> /dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "smoke: FAIL: $*" >&2
  if [ -s "$log" ]; then
    echo "--- service log (last 60 lines) ---" >&2
    tail -n 60 "$log" >&2
  fi
  exit 1
}

# A check of the stop's behaviour: `must WHAT yes|no`.
must() {
  [ "$2" = yes ] || fail "$1"
}

# --- 1. the README's blocks -------------------------------------------------
python3 "$root/scripts/readme_blocks.py" "$readme" "$work/blocks" \
  || fail "README.md has command blocks the smoke run cannot place (see above)"

# --- 2. the LINE stand-in and the service -----------------------------------
# A user id whose profile LINE's stand-in answers 3 s late: the call in
# flight while the service stops.
slow_user=Uffffffffffffffffffffffffffffffff
python3 "$root/scripts/line_stub.py" --port 0 --port-file "$work/line.port" --log "$requests" \
  --slow "/v2/bot/profile/$slow_user=3" > "$work/line-stub.log" 2>&1 &
stub_pid=$!
for _ in $(seq 1 100); do
  [ -s "$work/line.port" ] && break
  kill -0 "$stub_pid" 2> /dev/null || { cat "$work/line-stub.log" >&2; fail "the LINE stand-in did not start"; }
  sleep 0.05
done
[ -s "$work/line.port" ] || fail "the LINE stand-in did not start"
line_base="http://127.0.0.1:$(cat "$work/line.port")"
export LINE_ADAPTER_LINE_API_BASE="$line_base" LINE_ADAPTER_LINE_DATA_API_BASE="$line_base"

# The README calls the binary by its installed name.
mkdir "$work/bin"
ln -s "$bin" "$work/bin/line-adapter"
export PATH="$work/bin:$PATH"

# A pre-drain delay of 1 s where the binary has the setting.
delay=()
if "$bin" serve --help 2> /dev/null | grep -q -- --shutdown-delay-seconds; then
  delay=(LINE_ADAPTER_SHUTDOWN_DELAY_SECONDS=1)
fi
# The free-space watermark off where the binary has it: its default (1 % of
# the filesystem) can exceed what a shared CI disk has free, and the
# README's steps are not about the machine's disk. Exported, so the blocks'
# own `line-adapter` commands see the same settings.
if "$bin" serve --help 2> /dev/null | grep -q -- --store-min-free-bytes; then
  export LINE_ADAPTER_STORE_MIN_FREE_BYTES=0 LINE_ADAPTER_STORE_MIN_FREE_PERCENT=0
fi
(cd "$work" && exec env "${delay[@]}" line-adapter serve) > "$log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
  if curl -fsS localhost:8080/readyz > /dev/null 2>&1; then break; fi
  kill -0 "$pid" 2> /dev/null || fail "the service exited during start-up"
  sleep 0.1
done
curl -fsS localhost:8080/readyz > /dev/null || fail "the service never became ready"
echo "smoke: $bin serving, LINE stand-in at $line_base"

# --- 3. run the blocks --------------------------------------------------------
# A shell of its own, so that the README's variables never meet this
# script's; its own names start with _smoke_.
cat > "$work/driver.sh" << 'DRIVER'
_smoke_blocks=$1 _smoke_strict=$2 _smoke_timeout=$3
set -uo pipefail
mapfile -t _smoke_rows < "$_smoke_blocks/manifest.tsv"
_smoke_current=""
_smoke_on_exit() {
  local rc=$?
  if [ -n "$_smoke_current" ]; then
    cat "$_smoke_current.out"
    echo "smoke: FAIL: the block at README.md:$_smoke_line exited with $rc"
  fi
}
trap _smoke_on_exit EXIT
# Strips trailing spaces and trailing empty lines.
_smoke_normal() { python3 -c 'import sys; print("\n".join(l.rstrip() for l in open(sys.argv[1]).read().rstrip().split("\n")))' "$1"; }
for _smoke_row in "${_smoke_rows[@]}"; do
  IFS=$'\t' read -r _smoke_n _smoke_line _smoke_lang _smoke_mode _smoke_exit _smoke_pending _smoke_reason <<< "$_smoke_row"
  _smoke_file="$_smoke_blocks/$(printf %02d "$_smoke_n")"
  if [ "$_smoke_mode" = skip ]; then
    echo "=== README.md:$_smoke_line skipped: $_smoke_reason"
    printf 'skip\t%s\t%s\n' "$_smoke_line" "$_smoke_reason" >> "$_smoke_blocks/results.tsv"
    continue
  fi
  _smoke_what=$_smoke_lang
  [ "$_smoke_exit" = 0 ] || _smoke_what+=", exit $_smoke_exit expected"
  [ "$_smoke_pending" = 0 ] || _smoke_what+=", pending"
  echo "=== README.md:$_smoke_line ($_smoke_what)"
  _smoke_started=$SECONDS
  if [ "$_smoke_lang" != console ] && [ "$_smoke_exit" = 0 ] && [ "$_smoke_pending" = 0 ]; then
    # In this shell: what it sets is there for the blocks after it.
    _smoke_current=$_smoke_file
    set -e
    source "$_smoke_file.sh" > "$_smoke_file.out" 2>&1 < /dev/null
    set +e
    _smoke_current=""
    cat "$_smoke_file.out"
    printf 'ok\t%s\t\n' "$_smoke_line" >> "$_smoke_blocks/results.tsv"
    continue
  fi
  # In a subshell with a process group of its own, stopped after the time
  # limit (a block that starts `serve` must not hang the run).
  set -m
  ( set -euo pipefail; source "$_smoke_file.sh" ) > "$_smoke_file.out" 2>&1 < /dev/null &
  _smoke_pid=$!
  set +m
  for _ in $(seq 1 $((_smoke_timeout * 10))); do
    kill -0 "$_smoke_pid" 2> /dev/null || break
    sleep 0.1
  done
  if kill -0 "$_smoke_pid" 2> /dev/null; then
    kill -TERM -- "-$_smoke_pid" 2> /dev/null
    sleep 1
    kill -KILL -- "-$_smoke_pid" 2> /dev/null
    echo "(stopped after ${_smoke_timeout} s)" >> "$_smoke_file.out"
  fi
  _smoke_rc=0
  wait "$_smoke_pid" || _smoke_rc=$?
  cat "$_smoke_file.out"
  _smoke_problem=""
  if [ "$_smoke_rc" != "$_smoke_exit" ]; then
    _smoke_problem="exited with $_smoke_rc, the README expects $_smoke_exit"
  elif [ "$_smoke_lang" = console ] \
    && ! diff -u <(_smoke_normal "$_smoke_file.expected") <(_smoke_normal "$_smoke_file.out") > "$_smoke_file.diff"; then
    _smoke_problem="printed other than the README shows:"$'\n'"$(cat "$_smoke_file.diff")"
  fi
  if [ -z "$_smoke_problem" ]; then
    if [ "$_smoke_pending" = 1 ]; then
      echo "smoke: pending block passes now: drop 'pending' from its annotation (README.md:$_smoke_line)"
      printf 'pending-passes\t%s\t%s\n' "$_smoke_line" "$_smoke_reason" >> "$_smoke_blocks/results.tsv"
    else
      printf 'ok\t%s\t\n' "$_smoke_line" >> "$_smoke_blocks/results.tsv"
    fi
  elif [ "$_smoke_pending" = 1 ] && [ "$_smoke_strict" != 1 ]; then
    echo "smoke: PENDING, not yet: README.md:$_smoke_line $_smoke_problem ($_smoke_reason)"
    printf 'pending-fails\t%s\t%s\n' "$_smoke_line" "$_smoke_reason" >> "$_smoke_blocks/results.tsv"
  else
    echo "smoke: FAIL: the block at README.md:$_smoke_line $_smoke_problem"
    exit 1
  fi
done
DRIVER

(cd "$work" && exec timeout -k 5 150 bash "$work/driver.sh" "$work/blocks" "$strict" "$block_timeout") \
  2>&1 | tee "$work/driver.log" || fail "the README's blocks failed (see above)"
: > "$work/readme.out"
for out in "$work"/blocks/*.out; do cat "$out" >> "$work/readme.out"; done

# --- 4. what the README promises ---------------------------------------------
out="$work/readme.out"
expect() { grep -qF -- "$1" "$out" || fail "the README's blocks did not print: $1"; }
expect "weiyu.line.v1.ChannelAdmin"
expect "weiyu.line.v1.Messaging"
expect "grpc.health.v1.Health"
expect "grpc.reflection.v1alpha.ServerReflection"
expect "grpc.reflection.v1.ServerReflection"
expect "Registers a LINE channel"                  # describe shows the proto comments
expect "http://localhost:8080/webhook/line/ch_"
expect '"displayName": "Tokyo flagship"'
expect '{} 200'                                    # the signed webhook was accepted
expect '"text":"Hello from LINE"'                  # and came back through Subscribe
expect '"webhook_event_id":"01HWALKTHR0UGH0000000000001"'
expect '"status": "SERVING"'
grep -qx "ready" "$out" || fail "/readyz did not answer ready"
expect '"state": "DELIVERY_STATE_DELIVERED"'       # Send and GetDelivery
expect '"displayName": "Sato Hanako"'              # GetProfile, from LINE's stand-in
expect '"displayName": "Suzuki Taro"'              # GetGroupMemberProfile
expect '"kty":"RSA"'                               # the JWK to paste, by jq -r
expect '"mode": "TOKEN_MODE_V2_1_JWT"'             # RotateAccessToken in the new mode
expect '"hasToken": true'
expect "result: all checks passed"                 # line-adapter check
expect '"type":"deadLetter"'                       # tail spells types as --type takes them
expect '"isDefault": true'                         # PublishRichMenu made it the default
expect '"richMenuAliasId": "spring"'
expect "LINE holds menu.png for richmenu-"          # GetRichMenuImage gave the image back
expect '"phase": "NARROWCAST_PHASE_SUCCEEDED"'      # the narrowcast followed to its end
expect '"successCount": "1180"'
grep -qx "true" "$out" || fail "IssueLinkToken gave no link token"
# What reached LINE's stand-in.
python3 - "$requests" << 'PY' || fail "LINE's stand-in did not receive what the README's blocks send (see above)"
import base64, json, sys
from urllib.parse import parse_qs

requests = [json.loads(line) for line in open(sys.argv[1])]
problems = []


def find(method, path, test=lambda r: True):
    return [r for r in requests if r["method"] == method and r["path"].split("?")[0] == path and test(r)]


def body(r):
    return json.loads(r["body"] or "null")


def kid(r):
    assertion = parse_qs(r["body"])["client_assertion"][0].split(".")[0]
    return json.loads(base64.urlsafe_b64decode(assertion + "=" * (-len(assertion) % 4))).get("kid")


USER = "U4af4980629abcdef0123456789abcdef"
checks = [
    ("a short-lived token was issued (v2)", find("POST", "/v2/oauth/accessToken")),
    ("a v2.1 token was asked for with a JWT signed under the README's kid",
     find("POST", "/oauth2/v2.1/token", lambda r: kid(r) == "sDTOzw5wIfxxxxPEzcmeQA")),
    ("the replaced v2 token was revoked", find("POST", "/v2/oauth/revoke")),
    ("GetBotInfo (line-adapter check) asked LINE", find("GET", "/v2/bot/info")),
    ("MarkAsRead sent the event's markAsReadToken",
     find("POST", "/v2/bot/chat/markAsRead", lambda r: body(r) == {"markAsReadToken": "30yhdy232u7nvmx1h0ld4k7q"})),
    ("ShowLoadingAnimation sent the chat and 20 s",
     find("POST", "/v2/bot/chat/loading/start", lambda r: body(r) == {"chatId": USER, "loadingSeconds": 20})),
    ("Send carried the agent's name and icon (Message.sender)",
     find("POST", "/v2/bot/message/push", lambda r: body(r)["messages"][0].get("sender")
          == {"name": "Aiko (support)", "iconUrl": "https://example.com/agents/aiko.png"})),
    ("pushes carry an X-Line-Retry-Key",
     find("POST", "/v2/bot/message/push", lambda r: "x-line-retry-key" in r["headers"])),
    ("GetQuota asked for the README's date", find("GET", "/v2/bot/message/delivery/reply", lambda r: "date=20261130" in r["path"])),
    ("PublishRichMenu asked LINE's validator first", find("POST", "/v2/bot/richmenu/validate")),
    ("PublishRichMenu uploaded a PNG to the data API",
     [r for r in requests if r["method"] == "POST" and r["path"].endswith("/content")
      and r["path"].startswith("/v2/bot/richmenu/") and r["headers"].get("content-type") == "image/png"]),
    ("PublishRichMenu made the menu the default",
     [r for r in requests if r["method"] == "POST" and r["path"].startswith("/v2/bot/user/all/richmenu/")]),
    ("GetFollowerStats asked for the README's date", find("GET", "/v2/bot/insight/followers", lambda r: "date=20261130" in r["path"])),
    ("CreateAudience uploaded the README's two users as JSON",
     find("POST", "/v2/bot/audienceGroup/upload", lambda r: body(r)["description"] == "Spring regulars"
          and len(body(r)["audiences"]) == 2)),
    ("the narrowcast went to the audience, filtered by age, with an X-Line-Retry-Key",
     find("POST", "/v2/bot/message/narrowcast", lambda r: "x-line-retry-key" in r["headers"]
          and body(r)["recipient"]["type"] == "audience"
          and body(r)["filter"]["demographic"] == {"type": "age", "gte": "age_20", "lt": "age_40"}
          and body(r)["limit"] == {"max": 1000})),
    ("the narrowcast's progress was read until final", len(find("GET", "/v2/bot/message/progress/narrowcast")) >= 3),
    ("DeleteAudience deleted it", [r for r in requests if r["method"] == "DELETE" and r["path"].startswith("/v2/bot/audienceGroup/")]),
    ("IssueLinkToken asked LINE", find("POST", f"/v2/bot/user/{USER}/linkToken")),
]
for what, found in checks:
    print(f"LINE's stand-in: {'ok' if found else 'MISSING'}: {what}")
    if not found:
        problems.append(what)
unauthorized = [r["path"] for r in requests if r["path"].startswith("/v2/bot/") and not r["authorized"]]
if unauthorized:
    problems.append(f"bot calls without a token: {unauthorized}")
sys.exit(1 if problems else 0)
PY

# --- 5. stopping ----------------------------------------------------------------
channel=$(grpcurl -plaintext -d '{"page_size": 100}' localhost:50051 weiyu.line.v1.ChannelAdmin/ListChannels \
  | jq -r '.channels[] | select(.displayName == "Tokyo flagship") | .id')
[ -n "$channel" ] || fail "the walk-through's channel is gone"
# A call to LINE in flight (its answer comes 3 s late) when SIGTERM comes.
(grpcurl -plaintext -d "{\"channel_id\": \"$channel\", \"user_id\": \"$slow_user\"}" \
  localhost:50051 weiyu.line.v1.Messaging/GetProfile > "$work/inflight.out" 2>&1
  echo $? > "$work/inflight.rc") &
inflight=$!
for _ in $(seq 1 100); do
  grep -qF "/v2/bot/profile/$slow_user" "$requests" && break
  sleep 0.05
done
grep -qF "/v2/bot/profile/$slow_user" "$requests" || fail "the in-flight GetProfile never reached LINE's stand-in"
kill -TERM "$pid"
stop_started=$(date +%s%N)
ready_code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 localhost:8080/readyz || true)
health=$(grpcurl -plaintext -max-time 2 localhost:50051 grpc.health.v1.Health/Check 2>&1 || true)
# Past the pre-drain delay (1 s), while the call is still in flight: draining.
sleep "$(python3 -c "print(max(0, 1.5 - ($(date +%s%N) - $stop_started) / 1e9))")"
late='{"destination":"U0123456789abcdef0123456789abcdef","events":[{"type":"follow","mode":"active","timestamp":1700000000000,"source":{"type":"user","userId":"U4af4980629abcdef0123456789abcdef"},"webhookEventId":"01HWSMOKESTOPPING000000001","deliveryContext":{"isRedelivery":false},"replyToken":"c60d432864f44d079f6d8efe86cf404b","follow":{"isUnblocked":false}}]}'
late_signature=$(printf '%s' "$late" | openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef -binary | base64)
webhook_code=$(curl -s -D "$work/late.headers" -o /dev/null -w '%{http_code}' --max-time 2 -X POST \
  "localhost:8080/webhook/line/$channel" -H "x-line-signature: $late_signature" \
  -H 'content-type: application/json' -d "$late" || true)
wait "$inflight" || true
status=0
wait "$pid" || status=$?
pid=""
stop_ms=$((($(date +%s%N) - stop_started) / 1000000))
echo "smoke: after SIGTERM: /readyz $ready_code, health $(grep -o '"status": "[A-Z_]*"' <<< "$health" || echo "${health//$'\n'/ }"), webhook while draining $webhook_code, exit $status after $stop_ms ms"
must "/readyz answers 503 at once after SIGTERM" "$([ "$ready_code" = 503 ] && echo yes || echo no)"
must "gRPC health answers NOT_SERVING at once after SIGTERM" \
  "$(grep -q '"status": "NOT_SERVING"' <<< "$health" && echo yes || echo no)"
must "a webhook while draining is answered 503 with Retry-After" \
  "$([ "$webhook_code" = 503 ] && grep -qi '^retry-after:' "$work/late.headers" && echo yes || echo no)"
[ "$(cat "$work/inflight.rc" 2> /dev/null)" = 0 ] && grep -q '"displayName"' "$work/inflight.out" \
  || fail "the call in flight at SIGTERM did not finish: $(cat "$work/inflight.out")"
[ "$status" -eq 0 ] || fail "exit code $status after SIGTERM"
grep -q "line_adapter::app: stopped$" "$log" || fail "no clean 'stopped' log line"

if grep -q "0123456789abcdef0123456789abcdef" "$out" "$log"; then
  fail "the channel secret appeared in a response or the log"
fi
[ -f "$work/line-adapter-data/master.key" ] || fail "no master key generated in the default data dir"

# --- summary --------------------------------------------------------------------
results="$work/blocks/results.tsv"
count() { awk -F'\t' -v s="$1" '$1 == s' "$results" | wc -l | tr -d ' '; }
echo
echo "smoke: README blocks: $(count ok) passed, $(count skip) skipped, $(count pending-fails) pending and failing, $(count pending-passes) pending and passing"
awk -F'\t' '$1 == "pending-fails" { print "  pending, fails: README.md:" $2 " (" $3 ")" }
            $1 == "pending-passes" { print "  pending, passes now (drop the mark): README.md:" $2 }' "$results"
echo "smoke: passed (${SECONDS} s)"
