#!/bin/bash
# test_live_metrics.sh GATEWAY - starts the real gateway on a free port, makes it count
# something (an accepted signed webhook, a duplicate, a forged one, a job that fails against
# an unreachable Cal.com and opens the breaker), scrapes GET /metrics and checks the live
# exposition with `promtool check metrics`. Exits 77 (skipped) only when promtool is absent.
set -u
gw=${1:?usage: test_live_metrics.sh GATEWAY_PROGRAM}
tool=${PROMTOOL:-$(command -v promtool 2>/dev/null || true)}
[ -z "$tool" ] && [ -x /usr/local/lib/promtool/usr/bin/promtool ] && tool=/usr/local/lib/promtool/usr/bin/promtool
if [ -z "$tool" ]; then echo "SKIP: promtool not found"; exit 77; fi

dir=$(mktemp -d) || exit 1
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
cat >"$dir/gw.json" <<JSON
{ "data_dir": "$dir/data", "admin_token": "tok", "log_level": "error",
  "listen": {"addr": "127.0.0.1", "port": 0},
  "worker": {"max_attempts": 2, "backoff_base_ms": 10},
  "providers": {"calcom": {"base_url": "http://127.0.0.1:9", "breaker": {"failures": 2}}},
  "tenants": [{"id": "t", "retell": {"agent_ids": ["ag"], "api_keys": ["key_t"]},
               "calcom": {"api_key": "cal_t", "event_type_id": 1}}] }
JSON
"$gw" --config "$dir/gw.json" --ready-file "$dir/ready" 2>"$dir/log" &
pid=$!
# Port 0: any free one (the default, 8080, may be another test's: the start then failed).
# Until the ready file or the process's end; the 60 s deadline is only a backstop.
for _ in $(seq 1 1200); do
  [ -s "$dir/ready" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
port=$(sed 's/.*"port":\([0-9]*\).*/\1/' "$dir/ready" 2>/dev/null)
[ -n "$port" ] || { echo "FAIL: gateway did not start"; cat "$dir/log"; exit 1; }
url=http://127.0.0.1:$port

body='{"event":"call_analyzed","call":{"call_id":"c1","agent_id":"ag","call_analysis":{"custom_analysis_data":{"booking_start":"2050-09-05T09:00:00.000Z","attendee_name":"A","attendee_email":"a@b.example"}}}}'
ts=$(date +%s%3N)
sig=$(printf '%s%s' "$body" "$ts" | openssl dgst -sha256 -hmac key_t | awk '{print $NF}')
for want in 204 204; do
  got=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "x-retell-signature: v=$ts,d=$sig" \
        --data-binary "$body" "$url/webhooks/retell")
  [ "$got" = "$want" ] || { echo "FAIL: signed webhook got $got, want $want"; exit 1; }
done
# Forged: the last hex digit changed (to 1 when it was 0, else to 0, so it always differs).
case $sig in *0) forged=${sig%?}1 ;; *) forged=${sig%?}0 ;; esac
got=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "x-retell-signature: v=$ts,d=$forged" \
      --data-binary "$body" "$url/webhooks/retell")
[ "$got" = 401 ] || { echo "FAIL: forged webhook got $got"; exit 1; }

# The HTTP server's guards: a head over header_limit (8 KiB) gets 431, a declared body over
# body_limit gets 413 before any of it is read.
big=$(head -c 12000 /dev/zero | tr '\0' a)
got=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $big" "$url/health/live")
[ "$got" = 431 ] || { echo "FAIL: a 12 KB head got $got, want 431"; exit 1; }
got=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Length: 999999999' \
      --data-binary x "$url/webhooks/retell")
[ "$got" = 413 ] || { echo "FAIL: a declared 1 GB body got $got, want 413"; exit 1; }

# Wait (bounded) until the unreachable Cal.com has opened the breaker and the job has run:
# the event-type check at start may have opened the breaker before the webhook came.
for _ in $(seq 1 200); do
  curl -s "$url/metrics" >"$dir/metrics.txt"
  grep -qF 'gw_breaker_state{provider="calcom",tenant="t",state="open"} 1' "$dir/metrics.txt" &&
    grep -qF 'gw_sagas_started_total 1' "$dir/metrics.txt" && break
  sleep 0.05
done
curl -s "$url/metrics" >"$dir/metrics.txt"
for want in 'gw_webhooks_total{provider="retell",result="accepted"} 1' \
            'gw_webhooks_total{provider="retell",result="duplicate"} 1' \
            'gw_webhooks_total{provider="retell",result="rejected_signature"} 1' \
            'gw_breaker_state{provider="calcom",tenant="t",state="open"} 1' \
            'gw_sagas_started_total 1' \
            'gw_job_outcomes_unstored_total{result="done"} 0' \
            'gw_http_requests_too_large_total{part="head"} 1' \
            'gw_http_requests_too_large_total{part="body"} 1' \
            'gw_http_connections_closed_total{reason="evicted"} 0' \
            'gw_http_connections{state="waiting_head"}' \
            'gw_webhooks_total{provider="stripe",result="rejected_stale"} 0' \
            'gw_breaker_transitions_total{provider="calcom",tenant="t",from="half_open",to="open"} 0' \
            'gw_retry_budget_rejections_total{provider="calcom",tenant="t"} 0' \
            'gw_event_type_checks_total{result="error"} 1' \
            'gw_event_type_checks_total{result="problem"} 0'; do
  grep -qF "$want" "$dir/metrics.txt" || { echo "FAIL: no '$want' in the scrape"; cat "$dir/metrics.txt"; exit 1; }
done
grep -q '^gw_breaker_transitions_total{' "$dir/metrics.txt" || { echo "FAIL: breaker never moved"; exit 1; }
if ! "$tool" check metrics <"$dir/metrics.txt"; then
  echo "FAIL: promtool check metrics refused the live scrape"
  exit 1
fi
echo "PASS: live /metrics scrape ($(grep -vc '^#' "$dir/metrics.txt") samples) passes promtool"
