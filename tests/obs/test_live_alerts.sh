#!/bin/bash
# shellcheck disable=SC2154 # OBS_PID_<name> are set by obs_start (lib.sh)
# test_live_alerts.sh - the shipped alert rules in the real thing: Debian's Prometheus and
# Alertmanager, started here on free ports in a temp dir (never the packages' services),
# scrape a real gateway and the simulators through a Cal.com outage, and the test checks
# through their HTTP APIs that:
#   1. the rules load (as many as the files hold) and nothing fires while all is well;
#   2. Cal.com down (503 on every /v2 route): the breaker opens and the booking sagas end
#      needs_human at their deadline; GatewayBreakerOpen and GatewayBookingSLOFastBurn go
#      pending, then firing, GatewaySagasNeedHuman fires, and each reaches Alertmanager
#      and its webhook receiver (tests/obs/obs_sink.c);
#   3. Cal.com back, one booking goes through: the breaker closes and every alert
#      resolves, GatewayBookingSLOSlowBurn included (its 30 minute window still held the
#      outage when it fired), and the receiver gets each "resolved";
#   4. the gateway stopped: GatewayDown fires and reaches the receiver;
#   and no other alert fires at any time.
#
# Time is compressed: the rules are the shipped files with every duration (each `for:`
# and each range window) divided by 60, so 5 minutes are 5 s; thresholds, expressions,
# labels and annotations are untouched (lib.sh, obs_render_rules). Why not real time: a
# 5 minute `for:` alone would outlast the two minutes this test may take. Why this is
# sound: a burn rate is a ratio of rates, which does not depend on the window's length, and
# the SRE workbook's pairs keep their ratio (1 h : 5 min, 6 h : 30 min) when both shrink
# alike; a `for:` shrinks with the windows it was sized against. What it does not show:
# that the real durations are right - the promtool unit tests (deploy/prometheus/tests)
# check every alert's timing with the files as shipped. Scrape and evaluation every 1 s.
set -u
. "$(dirname "$0")/lib.sh"

PROMETHEUS=$(obs_tool prometheus)
ALERTMANAGER=$(obs_tool prometheus-alertmanager)
command -v jq >/dev/null || obs_skip "jq not found (ci/install-deps installs it)"
command -v perl >/dev/null || obs_skip "perl not found"
SCALE=60
obs_setup

# Every alert this run must see, and in which states (pending first where it has a `for`).
EXPECTED="GatewayBreakerOpen GatewayBookingSLOFastBurn GatewayBookingSLOSlowBurn GatewaySagasNeedHuman GatewayDown"

# ---- the parts ----
obs_start sink "$(obs_prog OBS_SINK)" --ready-file "$OBS_DIR/sink.ready" --out "$OBS_DIR/received.jsonl"
obs_wait 10 "webhook receiver ready" test -s "$OBS_DIR/sink.ready"
SINK_URL=http://127.0.0.1:$(obs_ready_port "$OBS_DIR/sink.ready" port)

mkdir -p "$OBS_DIR/am"
cat >"$OBS_DIR/am/alertmanager.yml" <<EOF
route:
  receiver: sink
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: sink
    webhook_configs:
      - url: "$SINK_URL/alerts"
        send_resolved: true
EOF
obs_start am "$ALERTMANAGER" --config.file="$OBS_DIR/am/alertmanager.yml" \
  --storage.path="$OBS_DIR/am/data" --web.listen-address=127.0.0.1:0 --cluster.listen-address=
obs_wait 20 "Alertmanager listening" obs_listening am
AM_URL=http://127.0.0.1:$(obs_listen_port am)

obs_start_sims
obs_start_gateway "$OBS_ROOT/tests/obs/fixtures/gateway-outage.json"

obs_render_rules $SCALE "$OBS_DIR/prom/rules"
# First without the rules: they are loaded (SIGHUP) once Prometheus scrapes the gateway.
# Its scrape manager starts the first scrape up to 5 s after start-up (the discovery
# reload interval), which under the compressed time is GatewayTargetMissing's whole `for`:
# evaluated from the start, the rules would see no target for that long, rightly.
prom_config() {
  cat <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [$1]
alerting:
  alertmanagers:
    - static_configs: [{targets: ["${AM_URL#http://}"]}]
scrape_configs:
  - job_name: bookbench-gateway
    static_configs: [{targets: ["127.0.0.1:$GW_PORT"]}]
EOF
}
prom_config "" >"$OBS_DIR/prom/prometheus.yml"
# resend-delay: how soon a changed alert (resolved included) goes to Alertmanager again;
# its default of 1 minute is longer than this whole test.
obs_start prom "$PROMETHEUS" --config.file="$OBS_DIR/prom/prometheus.yml" \
  --storage.tsdb.path="$OBS_DIR/prom/data" --web.listen-address=127.0.0.1:0 \
  --rules.alert.resend-delay=1s
obs_wait 30 "Prometheus listening" obs_listening prom
PROM_URL=http://127.0.0.1:$(obs_listen_port prom)
obs_log "sink $SINK_URL, alertmanager $AM_URL, prometheus $PROM_URL, gateway $GW_URL"

# ---- watching the alerts ----
TIMELINE=$OBS_DIR/timeline   # "alertname state ms" the first time each state was seen
NOW=$OBS_DIR/alerts.now
: >"$TIMELINE"
poll_alerts() {
  obs_alive "$OBS_PID_prom" prom
  curl -sS "$PROM_URL/api/v1/alerts" |
    jq -r '.data.alerts[] | "\(.labels.alertname) \(.state)"' | sort -u >"$NOW" ||
    obs_fail "Prometheus /api/v1/alerts did not answer"
  local a s
  while read -r a s; do
    grep -q "^$a $s " "$TIMELINE" || {
      echo "$a $s $(obs_elapsed)" >>"$TIMELINE"
      obs_log "alert $a: $s"
    }
    if [ "$s" = firing ] && [[ " $EXPECTED " != *" $a "* ]]; then
      obs_fail "unexpected alert firing: $a ($(curl -sS "$PROM_URL/api/v1/alerts" | jq -c .data.alerts))"
    fi
  done <"$NOW"
}
alert_is() { poll_alerts && grep -qx "$1 $2" "$NOW"; }
alert_gone() { poll_alerts && ! grep -q "^$1 " "$NOW"; }
first_seen() { awk -v a="$1" -v s="$2" '$1 == a && $2 == s { print $3 }' "$TIMELINE"; }
in_alertmanager() {
  curl -sS "$AM_URL/api/v2/alerts?active=true" |
    jq -e --arg a "$1" 'any(.[]; .labels.alertname == $a and .status.state == "active")' >/dev/null
}
# received ALERTNAME STATUS: the receiver got a notification with that alert in that status.
received() {
  [ -s "$OBS_DIR/received.jsonl" ] &&
    jq -se --arg a "$1" --arg s "$2" \
      'any(.[].body.alerts[]?; .labels.alertname == $a and .status == $s)' \
      "$OBS_DIR/received.jsonl" >/dev/null
}

# ---- 1. all is well ----
up_is_1() { [ "$(obs_prom_query "$PROM_URL" 'up{job="bookbench-gateway"}' | jq -r '.[0].value[1] // empty')" = 1 ]; }
obs_wait 20 "Prometheus scraping the gateway (up == 1)" up_is_1
obs_log "Prometheus scrapes the gateway; loading the rules"
prom_config "rules/*.rules.yml" >"$OBS_DIR/prom/prometheus.yml"
kill -HUP "$OBS_PID_prom"
want_rules=0
for f in "$OBS_DIR"/prom/rules/*.rules.yml; do
  want_rules=$((want_rules + $(grep -cE '^\s*- (alert|record):' "$f")))
done
rules_loaded() {
  [ "$(curl -sS "$PROM_URL/api/v1/rules" | jq '[.data.groups[] | select(.lastEvaluation > "2000") | .rules[]] | length')" = "$want_rules" ]
}
obs_wait 20 "all $want_rules rules loaded and evaluated" rules_loaded
# A few evaluations of a healthy gateway, during which nothing may fire.
quiet_until=$(($(obs_elapsed) + 3000))
quiet() { poll_alerts && [ "$(obs_elapsed)" -gt "$quiet_until" ]; }
obs_wait 10 "3 s of healthy evaluations" quiet
[ -s "$NOW" ] && obs_fail "alerts active while all is well: $(cat "$NOW")"
obs_log "healthy: $want_rules rules loaded, no alert"

# ---- 2. Cal.com down ----
fault=$(obs_http POST "$SIM_CONTROL/control/faults" \
  '{"provider":"calcom","route":"* /v2/*","status":503}' | jq -r .id)
t_outage=$(obs_elapsed)
# Callers keep calling through the outage: one booking call a second (at most 90), so the
# burn goes on until Cal.com is back, as it would (a burn alert resolves within its short
# window once sagas stop failing, which 3 calls alone would do before the checks below).
(
  for i in $(seq 1 90); do
    [ -e "$OBS_DIR/outage.over" ] && break
    obs_booking_call "call_obs_outage_$i" "2050-09-$(printf %02d $((i % 28 + 1)))T09:00:00.000Z"
    echo "$i" >"$OBS_DIR/outage.calls"
    sleep 1
  done
) >"$OBS_DIR/traffic.log" 2>&1 &
traffic=$!
OBS_PIDS+=("$traffic")
OBS_NAMES+=(traffic)
obs_log "Cal.com answers 503; a booking call a second"

obs_wait 30 "GatewaySagasNeedHuman firing" alert_is GatewaySagasNeedHuman firing
obs_wait 30 "GatewayBookingSLOFastBurn firing" alert_is GatewayBookingSLOFastBurn firing
obs_wait 30 "GatewayBreakerOpen firing" alert_is GatewayBreakerOpen firing
# pending_evals ALERT: how many rule evaluations of the last 10 minutes had ALERT pending,
# from Prometheus's own ALERTS series: polling /api/v1/alerts can miss a pending phase a few
# compressed seconds long on a loaded machine (it did), the series cannot.
pending_evals() {
  obs_prom_query "$PROM_URL" "count_over_time(ALERTS{alertname=\"$1\",alertstate=\"pending\"}[10m])" |
    jq -r '.[0].value[1] // 0'
}
for a in GatewayBreakerOpen GatewayBookingSLOFastBurn; do
  [ "$(pending_evals $a)" -ge 1 ] || obs_fail "$a went firing without being pending first"
done
saga_state() {
  curl -sS -H "Authorization: Bearer $GW_ADMIN_TOKEN" "$GW_URL/admin/sagas/$1" | jq -r '.saga.state'
}
st=$(saga_state call_obs_outage_1)
[ "$st" = needs_human ] || obs_fail "saga call_obs_outage_1 is $st, not needs_human"
for a in GatewaySagasNeedHuman GatewayBookingSLOFastBurn GatewayBreakerOpen; do
  obs_wait 15 "$a active in Alertmanager" in_alertmanager $a
  obs_wait 15 "$a firing at the webhook receiver" received $a firing
done
obs_log "outage alerts firing, in Alertmanager and at the receiver"

# ---- 3. Cal.com back ----
touch "$OBS_DIR/outage.over"
wait "$traffic" || obs_fail "the outage traffic failed: $(tail -n 3 "$OBS_DIR/traffic.log")"
grep -q FAIL "$OBS_DIR/traffic.log" && obs_fail "the outage traffic failed: $(tail -n 3 "$OBS_DIR/traffic.log")"
curl -sS -o /dev/null -X DELETE "$SIM_CONTROL/control/faults/$fault"
t_back=$(obs_elapsed)
obs_log "Cal.com back after $(cat "$OBS_DIR/outage.calls") calls in the outage"
obs_booking_call call_obs_after 2050-09-08T09:00:00.000Z
booked() { [ "$(saga_state call_obs_after)" = completed ]; }
obs_wait 30 "the booking after the outage completed" booked
for a in GatewayBreakerOpen GatewayBookingSLOFastBurn GatewaySagasNeedHuman GatewayBookingSLOSlowBurn; do
  obs_wait 60 "$a resolved in Prometheus" alert_gone $a
done
f=$(first_seen GatewayBookingSLOSlowBurn firing)
[ -n "$f" ] && [ "$(pending_evals GatewayBookingSLOSlowBurn)" -ge 1 ] ||
  obs_fail "GatewayBookingSLOSlowBurn was not pending, then firing (firing seen at '$f')"
for a in GatewayBreakerOpen GatewayBookingSLOFastBurn GatewaySagasNeedHuman GatewayBookingSLOSlowBurn; do
  obs_wait 15 "$a resolved at the webhook receiver" received $a resolved
done
obs_log "recovered: every alert resolved, the receiver told"

# ---- 4. the gateway stopped ----
kill -TERM "$OBS_PID_gw"
wait "$OBS_PID_gw"
gw_status=$?
[ "$gw_status" = 0 ] || obs_fail "gateway exited $gw_status on SIGTERM"
obs_wait 30 "GatewayDown firing" alert_is GatewayDown firing
obs_wait 15 "GatewayDown at the webhook receiver" received GatewayDown firing
obs_log "gateway stopped: GatewayDown fired"

# Nothing else ever fired (poll_alerts checks each time; the receiver too).
others=$(jq -sr --arg e " $EXPECTED " \
  '[.[].body.alerts[]?.labels.alertname | . as $a | select($e | contains(" " + $a + " ") | not)] | unique | join(" ")' \
  "$OBS_DIR/received.jsonl")
[ -z "$others" ] || obs_fail "the receiver got unexpected alerts: $others"

echo "timeline (alert state ms-since-start; outage at ${t_outage} ms, Cal.com back at ${t_back} ms):"
sed 's/^/  /' "$TIMELINE"
acks=$(obs_prom_query "$PROM_URL" 'sum(max_over_time(gw_webhook_ack_seconds_count[10m]))' | jq -r '.[0].value[1]')
slow=$(obs_prom_query "$PROM_URL" 'sum(max_over_time(gw_webhook_ack_seconds_count[10m])) - sum(max_over_time(gw_webhook_ack_seconds_bucket{le="0.1"}[10m]))' | jq -r '.[0].value[1]')
echo "acknowledgements: $acks, of which slower than 0.1 s: $slow"
echo "PASS: $(wc -l <"$OBS_DIR/received.jsonl") notifications received; whole test $(obs_elapsed) ms"
