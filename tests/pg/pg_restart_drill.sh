#!/usr/bin/env bash
# tests/pg/pg_restart_drill.sh GATEWAY - a gateway on a PostgreSQL that stops (an immediate
# shutdown, as a crash) and starts again on the same data and port, through real HTTP:
#   - before: signed Retell webhooks are acknowledged (2xx);
#   - server down: each webhook is answered 503 (not stored) and /health/ready 503
#     ("failing"), each within PROMPT_MS, not after a connect timeout;
#   - server back: /health/ready is 200 again by itself (no restart of the gateway), the
#     refused webhooks sent again and new ones are acknowledged;
#   - the database then holds every acknowledged event once, each with its job, and
#     nothing the gateway refused.
# The server is its own (ci/pg start in a temp dir), stopped and started with pg_ctl as
# its owner. Exit 77 (skip) when PostgreSQL is not installed.
set -euo pipefail
gw=${1:?usage: pg_restart_drill.sh GATEWAY}
root=$(cd "$(dirname "$0")/../.." && pwd)
PROMPT_MS=1000 # a refused connection is answered in milliseconds; connect_timeout is 2 s
KEY=key_drill AGENT=agent_drill

work=$(mktemp -d /tmp/pg-drill.XXXXXX)
pgdir=$(mktemp -u /tmp/pg-drill-db.XXXXXX) # outside $work: the postgres user must reach it
gw_pid=
cleanup() {
  local rc=$?
  [ -z "$gw_pid" ] || { kill "$gw_pid" 2>/dev/null; wait "$gw_pid" 2>/dev/null || true; }
  "$root/ci/pg" stop "$pgdir" >/dev/null 2>&1 || true
  [ $rc -eq 0 ] || { echo "--- gateway log (last 30 lines)"; tail -30 "$work/gw.log" 2>/dev/null || true; }
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((10#$t / 1000)); }

rc=0
url=$("$root/ci/pg" start "$pgdir" 2>"$work/pg.log") || rc=$?
[ $rc -eq 0 ] || { cat "$work/pg.log"; exit $rc; } # 77: not installed
port=$(sed 's|.*:\([0-9]*\)/.*|\1|' <<<"$url")
owner=$(stat -c %U "$pgdir/data")
bindir=$(dirname "$(readlink -f "/proc/$(head -1 "$pgdir/data/postmaster.pid")/exe")")
as_owner() { if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u "$owner" -- "$@"); else (cd / && "$@"); fi; }
pg_stop() { as_owner "$bindir/pg_ctl" -D "$pgdir/data" -m immediate -w -t 30 -s stop; }
pg_start() {
  as_owner "$bindir/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -o "-p $port" -w -t 60 -s start \
    </dev/null >"$work/pg_ctl.out" 2>&1 || { cat "$work/pg_ctl.out" "$pgdir/log"; fail "server did not start again"; }
}
sql() { psql -X -q -t -A "$url" -c "$1"; }

cat >"$work/gw.json" <<JSON
{ "listen": {"addr": "127.0.0.1", "port": 0, "threads": 2},
  "data_dir": "$work/data", "admin_token": "drill", "log_level": "info", "seed": 1,
  "store": {"backend": "postgres", "url": {"env": "GW_PG_URL"}},
  "worker": {"threads": 1},
  "providers": {"calcom": {"base_url": "http://127.0.0.1:9"}},
  "tenants": [{"id": "drill", "retell": {"agent_ids": ["$AGENT"], "api_keys": ["$KEY"]},
               "calcom": {"api_key": "cal_drill", "event_type_id": 1}}] }
JSON
GW_PG_URL=$url "$gw" --config "$work/gw.json" --ready-file "$work/gw.ready" 2>"$work/gw.log" &
gw_pid=$!
for _ in $(seq 200); do [ -s "$work/gw.ready" ] && break; sleep 0.05; done
[ -s "$work/gw.ready" ] || fail "the gateway did not start"
base=http://127.0.0.1:$(sed 's/.*"port":\([0-9]*\).*/\1/' "$work/gw.ready")

# send ID: posts a signed call_analyzed for call ID; prints "STATUS MS".
send() {
  local ts body sig
  ts=$(now_ms)
  body="{\"event\":\"call_analyzed\",\"call\":{\"call_id\":\"$1\",\"agent_id\":\"$AGENT\",\"call_status\":\"ended\",\"start_timestamp\":$((ts - 90000)),\"end_timestamp\":$((ts - 6000))}}"
  sig=$(printf '%s%s' "$body" "$ts" | openssl dgst -sha256 -hmac "$KEY" -r | cut -d' ' -f1)
  curl -s -o /dev/null --max-time 10 -w '%{http_code} %{time_total}\n' -X POST \
    -H 'Content-Type: application/json' -H "x-retell-signature: v=$ts,d=$sig" \
    --data-binary "$body" "$base/webhooks/retell" | awk '{ printf "%s %d\n", $1, $2 * 1000 }'
}
ready() { curl -s -o /dev/null --max-time 10 -w '%{http_code} %{time_total}\n' "$base/health/ready" | awk '{ printf "%s %d\n", $1, $2 * 1000 }'; }

acked=0
for i in $(seq 1 10); do
  read -r st ms < <(send "call_drill_before_$i")
  [[ $st == 2* ]] || fail "before the stop: webhook $i answered $st"
  acked=$((acked + 1))
done

pg_stop
for i in $(seq 1 10); do
  read -r st ms < <(send "call_drill_down_$i")
  [ "$st" = 503 ] || fail "server down: webhook $i answered $st, wanted 503"
  [ "$ms" -lt $PROMPT_MS ] || fail "server down: webhook $i answered after $ms ms (bound $PROMPT_MS)"
  read -r st ms < <(ready)
  [ "$st" = 503 ] || fail "server down: /health/ready answered $st, wanted 503"
  [ "$ms" -lt $PROMPT_MS ] || fail "server down: /health/ready answered after $ms ms (bound $PROMPT_MS)"
done
echo "server down: 10 webhooks 503 and 10 readiness probes 503, each under $PROMPT_MS ms"

pg_start
t0=$(now_ms)
while :; do
  read -r st ms < <(ready)
  [ "$st" = 200 ] && break
  [ $(($(now_ms) - t0)) -lt 15000 ] || fail "/health/ready not 200 15 s after the server is back (last $st)"
  sleep 0.05
done
echo "server back: /health/ready 200 after $(($(now_ms) - t0)) ms"
for i in $(seq 1 10); do # the senders retry what was refused; new calls come in too
  for id in "call_drill_down_$i" "call_drill_after_$i"; do
    read -r st ms < <(send "$id")
    [[ $st == 2* ]] || fail "server back: $id answered $st"
    acked=$((acked + 1))
  done
done

events=$(sql "SELECT count(*) FROM events")
distinct=$(sql "SELECT count(DISTINCT event_key) FROM events")
jobs=$(sql "SELECT count(*) FROM jobs j JOIN events e ON e.id=j.event_id")
before=$(sql "SELECT count(*) FROM events WHERE entity_id LIKE 'call_drill_before_%'")
[ "$events" = "$acked" ] && [ "$distinct" = "$acked" ] ||
  fail "$acked acknowledged, $events events stored ($distinct distinct)"
[ "$jobs" = "$acked" ] || fail "$acked acknowledged events, $jobs jobs"
[ "$before" = 10 ] || fail "$before of the 10 events acknowledged before the stop are stored"
echo "ok: $acked acknowledged, $events stored once each with its job, none lost"
