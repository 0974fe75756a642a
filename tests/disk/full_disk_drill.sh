#!/usr/bin/env bash
# tests/disk/full_disk_drill.sh GATEWAY - a gateway whose SQLite data dir fills up and then
# has room again, through real HTTP, on a tmpfs of its own (a real ENOSPC, not a mock):
#   - before: signed Retell webhooks are acknowledged (2xx), /health/ready 200;
#   - disk full: /health/ready is 503 with the store "writable": false within READY_MS,
#     with no traffic (the store probes), gw_store_writable is 0, webhooks are answered 503;
#   - kill -9 and a restart on the still full disk: the gateway starts and serves (ready
#     503, webhooks 503) instead of exiting;
#   - FREE_MIB freed: /health/ready is 200 again within READY_MS, by itself, and the
#     refused webhooks sent again and new ones are acknowledged;
#   - the database then holds every acknowledged event once, each with its job.
# Needs root (mount); exit 77 (skip) with the reason when not root or mount is refused.
set -euo pipefail
gw=${1:?usage: full_disk_drill.sh GATEWAY}
READY_MS=3000 # the store answers from a write under a second old, else probes
FS_MIB=16 FREE_MIB=${FREE_MIB:-1}
KEY=key_disk AGENT=agent_disk

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to mount a tmpfs"; exit 77; }
command -v sqlite3 >/dev/null || { echo "SKIP: the sqlite3 shell is not installed"; exit 77; }
work=$(mktemp -d /tmp/disk-drill.XXXXXX)
mnt=$work/mnt
mkdir "$mnt"
if ! mount -t tmpfs -o size=${FS_MIB}m tmpfs "$mnt" 2>"$work/mount.err"; then
  echo "SKIP: mount -t tmpfs refused: $(cat "$work/mount.err")"
  rm -rf "$work"
  exit 77
fi
gw_pid=
cleanup() {
  local rc=$?
  [ -z "$gw_pid" ] || { kill "$gw_pid" 2>/dev/null; wait "$gw_pid" 2>/dev/null || true; }
  [ $rc -eq 0 ] || { echo "--- gateway log (last 30 lines)"; tail -30 "$work/gw.log" 2>/dev/null || true; }
  umount "$mnt" 2>/dev/null || true
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; df -k "$mnt" >&2; ls -l "$mnt/data" >&2; exit 1; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((10#$t / 1000)); }

cat >"$work/gw.json" <<JSON
{ "listen": {"addr": "127.0.0.1", "port": 0, "threads": 2},
  "data_dir": "$mnt/data", "admin_token": "drill", "log_level": "info", "seed": 1,
  "worker": {"threads": 1},
  "providers": {"calcom": {"base_url": "http://127.0.0.1:9"}},
  "tenants": [{"id": "drill", "retell": {"agent_ids": ["$AGENT"], "api_keys": ["$KEY"]},
               "calcom": {"api_key": "cal_drill", "event_type_id": 1}}] }
JSON
start_gw() {
  rm -f "$work/gw.ready"
  "$gw" --config "$work/gw.json" --ready-file "$work/gw.ready" 2>>"$work/gw.log" &
  gw_pid=$!
  for _ in $(seq 200); do
    [ -s "$work/gw.ready" ] && break
    kill -0 "$gw_pid" 2>/dev/null || { wait "$gw_pid" || true; gw_pid=; fail "the gateway exited at start ($1)"; }
    sleep 0.05
  done
  [ -s "$work/gw.ready" ] || fail "the gateway did not start ($1)"
  base=http://127.0.0.1:$(sed 's/.*"port":\([0-9]*\).*/\1/' "$work/gw.ready")
}

# send ID: posts a signed call_analyzed for call ID; prints the status.
send() {
  local ts body sig
  ts=$(now_ms)
  body="{\"event\":\"call_analyzed\",\"call\":{\"call_id\":\"$1\",\"agent_id\":\"$AGENT\",\"call_status\":\"ended\",\"start_timestamp\":$((ts - 90000)),\"end_timestamp\":$((ts - 6000))}}"
  sig=$(printf '%s%s' "$body" "$ts" | openssl dgst -sha256 -hmac "$KEY" -r | cut -d' ' -f1)
  curl -s -o /dev/null --max-time 10 -w '%{http_code}\n' -X POST \
    -H 'Content-Type: application/json' -H "x-retell-signature: v=$ts,d=$sig" \
    --data-binary "$body" "$base/webhooks/retell"
}
ready() { curl -s -o "$work/ready.json" --max-time 10 -w '%{http_code}\n' "$base/health/ready"; }
writable_metric() { curl -s --max-time 10 "$base/metrics" | awk '$1 == "gw_store_writable" { print $2 }'; }
# wait_ready STATUS WHAT: polls /health/ready until STATUS, at most READY_MS; prints the ms.
wait_ready() {
  local t0 st
  t0=$(now_ms)
  while :; do
    st=$(ready)
    [ "$st" = "$1" ] && break
    [ $(($(now_ms) - t0)) -lt $READY_MS ] || fail "$2: /health/ready not $1 after $READY_MS ms (last $st: $(cat "$work/ready.json"))"
    sleep 0.05
  done
  echo $(($(now_ms) - t0))
}

start_gw "empty disk"
acked=0
for i in $(seq 1 10); do
  st=$(send "call_disk_before_$i")
  [[ $st == 2* ]] || fail "before the disk fills: webhook $i answered $st"
  acked=$((acked + 1))
done
[ "$(ready)" = 200 ] || fail "before the disk fills: /health/ready $(cat "$work/ready.json")"
[ "$(writable_metric)" = 1 ] || fail "before the disk fills: gw_store_writable is not 1"

# Fill the file system to the last byte (cat stops at ENOSPC), with no traffic.
cat /dev/zero >"$mnt/fill" 2>/dev/null || true
[ "$(df --output=avail -k "$mnt" | tail -1 | tr -d ' ')" = 0 ] || fail "the tmpfs is not full"
ms=$(wait_ready 503 "disk full, idle")
grep -q '"writable": *false' "$work/ready.json" || fail "disk full: ready body $(cat "$work/ready.json")"
echo "disk full: /health/ready 503 (store not writable) after $ms ms with no traffic"
[ "$(writable_metric)" = 0 ] || fail "disk full: gw_store_writable is not 0"
for i in $(seq 1 10); do
  st=$(send "call_disk_full_$i")
  [ "$st" = 503 ] || fail "disk full: webhook $i answered $st, wanted 503"
done
echo "disk full: 10 webhooks answered 503, gw_store_writable 0"

kill -9 "$gw_pid"
{ wait "$gw_pid"; } 2>/dev/null || true
gw_pid=
start_gw "restart after kill -9 on a full disk"
ms=$(wait_ready 503 "restarted on a full disk")
for i in $(seq 1 5); do
  st=$(send "call_disk_full_$i")
  [ "$st" = 503 ] || fail "restarted on a full disk: webhook $i answered $st, wanted 503"
done
echo "kill -9 and restart on the full disk: started, ready 503, webhooks 503"

truncate -s -${FREE_MIB}M "$mnt/fill"
ms=$(wait_ready 200 "$FREE_MIB MiB freed")
echo "$FREE_MIB MiB freed: /health/ready 200 after $ms ms"
[ "$(writable_metric)" = 1 ] || fail "space freed: gw_store_writable is not 1"
for i in $(seq 1 10); do # the senders retry what was refused; new calls come in too
  for id in "call_disk_full_$i" "call_disk_after_$i"; do
    st=$(send "$id")
    [[ $st == 2* ]] || fail "space freed: $id answered $st"
    acked=$((acked + 1))
  done
done

kill "$gw_pid"
wait "$gw_pid" || fail "the gateway did not stop cleanly"
gw_pid=
db=$mnt/data/gateway.db
sql() { sqlite3 -readonly "$db" "$1"; }
events=$(sql "SELECT count(*) FROM events")
distinct=$(sql "SELECT count(DISTINCT event_key) FROM events")
jobs=$(sql "SELECT count(*) FROM jobs j JOIN events e ON e.id=j.event_id")
before=$(sql "SELECT count(*) FROM events WHERE entity_id LIKE 'call_disk_before_%'")
[ "$events" = "$acked" ] && [ "$distinct" = "$acked" ] ||
  fail "$acked acknowledged, $events events stored ($distinct distinct)"
[ "$jobs" = "$acked" ] || fail "$acked acknowledged events, $jobs jobs"
[ "$before" = 10 ] || fail "$before of the 10 events acknowledged before the disk filled are stored"
echo "ok: $acked acknowledged, $events stored once each with its job, none lost"
