#!/bin/bash
# test_monitor.sh - synthetic monitoring (issue 16): `scenario --monitor` runs scenarios
# attached to one gateway every 2 s and serves their results as Prometheus metrics. Cal.com
# is made to fail in between (a fault rule put on the simulators from outside, as an outage
# would be): the booking scenario's scenario_success goes 0 while the forged-signature one,
# which calls no provider, stays 1; the monitor keeps cycling through the failures; Cal.com
# back, the booking passes again. The scrapes pass `promtool check metrics`, and the
# success series as scraped, fed to the shipped alert rules, fire SyntheticScenarioFailing
# (promtool test rules). SIGTERM stops the monitor with status 0 within its deadline. A
# monitor whose gateway is unreachable keeps running too.
set -u
. "$(dirname "$0")/lib.sh"
PROMTOOL=$(obs_tool promtool)
obs_setup
cd "$OBS_ROOT" || exit 1
mon_deploy

BOOK=scenarios/saga/100_booking_with_deposit_completes.json
FORGED=scenarios/basic/002_forged_signature_rejected.json
obs_start monitor "$MON_RUNNER" --attach "$ATTACH" --monitor --every 2s --listen 127.0.0.1:0 \
  --timeout 30s "$BOOK" "$FORGED"
mon_port() { sed -n 's|^monitor: metrics on http://127\.0\.0\.1:\([0-9]*\)/metrics.*|\1|p' "$OBS_DIR/monitor.log"; }
mon_listening() { [ -n "$(mon_port)" ]; }
obs_wait 10 "the monitor listening" mon_listening
METRICS=http://127.0.0.1:$(mon_port)/metrics

# scrape: the metrics now, kept as scrape-N.txt; sample NAME FILE: the value of the
# scenario's series NAME in the last scrape ("" when absent).
n=0
scrape() {
  obs_alive "$OBS_PID_monitor" monitor
  n=$((n + 1))
  curl -sS "$METRICS" >"$OBS_DIR/scrape-$n.txt"
}
sample() {
  awk -v m="$1" -v f="file=\"$2\"" '$1 ~ "^" m "[{]" && index($0, f) { print $NF }' "$OBS_DIR/scrape-$n.txt"
}
success_is() { scrape && [ "$(sample scenario_success "$1")" = "$2" ]; }
# cycles_past N: the monitor has completed more than N cycles.
cycles_past() { scrape && [ "$(sample_plain scenario_monitor_cycles_total)" -gt "$1" ]; }
sample_plain() { awk -v m="$1" '$1 == m { print $2 }' "$OBS_DIR/scrape-$n.txt"; }

obs_wait 60 "the booking scenario passing" success_is "$BOOK" 1
obs_wait 30 "the forged-signature scenario passing" success_is "$FORGED" 1
ok_scrape=$n
out=$("$PROMTOOL" check metrics <"$OBS_DIR/scrape-$n.txt" 2>&1) ||
  obs_fail "promtool check metrics refused the monitor's scrape:
$out"
for fam in scenario_success scenario_duration_seconds scenario_last_run_timestamp_seconds \
  scenario_runs_total scenario_monitor_cycles_total; do
  grep -q "^# HELP $fam " "$OBS_DIR/scrape-$n.txt" && grep -q "^# TYPE $fam " "$OBS_DIR/scrape-$n.txt" ||
    obs_fail "$fam has no HELP/TYPE in the scrape"
done
# Every metric the synthetic alert rules read is one the monitor serves.
for name in $(grep -v '^ *#' deploy/prometheus/rules/synthetic-alerts.rules.yml | grep -o 'scenario_[a-z_]*[a-z]' | sort -u); do
  grep -q "^# TYPE $name " "$OBS_DIR/scrape-$n.txt" ||
    obs_fail "deploy/prometheus/rules/synthetic-alerts.rules.yml reads $name, which the monitor does not serve"
done
last=$(sample scenario_last_run_timestamp_seconds "$BOOK")
dur=$(sample scenario_duration_seconds "$BOOK")
awk -v t="$last" -v now="$(date +%s)" -v d="$dur" 'BEGIN { exit !(t > now - 60 && t <= now + 1 && d > 0 && d < 30) }' ||
  obs_fail "booking scenario: last run at $last (now $(date +%s)), duration $dur s"
obs_log "passing: scrape $n, booking scenario took $dur s"

# Cal.com fails: every call to it answers 503.
fault=$(obs_http POST "$SIM_CONTROL/control/faults" '{"provider":"calcom","route":"* /v2/*","status":503}' | jq .id)
[ -n "$fault" ] && [ "$fault" != null ] || obs_fail "the Cal.com fault rule was not added"
obs_log "Cal.com fails (fault rule $fault)"
obs_wait 60 "the booking scenario failing in the metrics" success_is "$BOOK" 0
fail_scrape=$n
# (The forged-signature scenario is not asserted on here: the booking runs' calls wait in
# the gateway's queue through the outage and book when it ends, which its own "no job
# pending, nothing booked" checks can see when they land in its run.)
[ -n "$(sample scenario_success "$FORGED")" ] || obs_fail "no success series for $FORGED"
failed_runs=$(awk -v f="file=\"$BOOK\"" '/^scenario_runs_total[{]/ && index($0, f) && /result="failed"/ { print $NF }' "$OBS_DIR/scrape-$n.txt")
[ "${failed_runs:-0}" -ge 1 ] || obs_fail "no failed run counted in scenario_runs_total"
cycles=$(sample_plain scenario_monitor_cycles_total)
obs_wait 30 "the monitor cycling on through the failure" cycles_past "$cycles"
grep -q '^FAIL a call asking for a slot' "$OBS_DIR/monitor.log" || obs_fail "the monitor's log shows no FAIL line"
obs_log "failing: scrape $n, $failed_runs failed run(s), the monitor past cycle $cycles"

# Cal.com back. The breaker the outage opened lets a trial through after its wait; the jobs
# the failed runs left retry until then, and book their calls (an acknowledged call is
# booked: those bookings stay, see the README), so the next run takes the next free slot:
# the booking scenario passes again by itself.
obs_http DELETE "$SIM_CONTROL/control/faults/$fault" >/dev/null
obs_wait 90 "the booking scenario passing again once Cal.com is back" success_is "$BOOK" 1
obs_log "passing again: scrape $n"

# The alert rule on the series as scraped, one sample a minute: the 0s must fire it.
series() {
  local from=$1 to=$2 i v vals=""
  for ((i = from; i <= to; i++)); do
    v=$(awk -v f="file=\"$BOOK\"" '$1 ~ /^scenario_success[{]/ && index($0, f) { print $NF }' "$OBS_DIR/scrape-$i.txt")
    [ -n "$v" ] && vals+="$v "
  done
  echo "$vals"
}
ones=$(series "$ok_scrape" "$ok_scrape")
zeros=$(series "$fail_scrape" "$fail_scrape")
[ "$ones" = "1 " ] && [ "$zeros" = "0 " ] || obs_fail "scraped samples: passing '$ones', failing '$zeros'"
# Passing for 2 minutes, then failing for 10: the value each minute is the scrape's.
vals="1 1 0 0 0 0 0 0 0 0 0 0"
name=$(awk -v f="file=\"$BOOK\"" '$1 ~ /^scenario_success[{]/ && index($0, f) { sub(/^scenario_success/, "", $1); print }' "$OBS_DIR/scrape-$fail_scrape.txt" | sed 's/ [0-9.]*$//')
cat >"$OBS_DIR/live.test.yml" <<YAML
rule_files:
  - $OBS_ROOT/deploy/prometheus/rules/synthetic-alerts.rules.yml
evaluation_interval: 1m
tests:
  - name: the scraped failure fires SyntheticScenarioFailing after two failed runs
    interval: 1m
    input_series:
      - series: 'scenario_success{job="bookbench-monitor", instance="monitor", ${name:1:-1}}'
        values: '$vals'
    alert_rule_test:
      - eval_time: 8m
        alertname: SyntheticScenarioFailing
        exp_alerts: []
      - eval_time: 9m
        alertname: SyntheticScenarioFailing
        exp_alerts:
          - exp_labels:
              severity: critical
              job: bookbench-monitor
              instance: monitor
              scenario: "a call asking for a slot and a 20 EUR deposit is booked, charged and completed"
              file: $BOOK
            exp_annotations:
              summary: "Synthetic scenario \"a call asking for a slot and a 20 EUR deposit is booked, charged and completed\" fails against the deployment"
              description: >-
                The synthetic monitor monitor ran the scenario $BOOK twice in a row and it
                failed both times: a fake call went through Retell, the gateway, Cal.com and
                Stripe and did not end as it should (no booking, no charge, a webhook
                refused). Real callers are likely affected. First: the monitor's log names
                the step that failed and what it expected and got; then GET /health/ready and
                /admin/breakers on the gateway.
              runbook_url: "deploy/README.md#syntheticscenariofailing"
YAML
out=$("$PROMTOOL" test rules "$OBS_DIR/live.test.yml" 2>&1) ||
  obs_fail "promtool test rules on the scraped series:
$out"
obs_log "promtool: SyntheticScenarioFailing fires on the scraped series"

# SIGTERM: the monitor stops within its deadline (the scenario in progress ends at its
# next step), with status 0.
kill -TERM "$OBS_PID_monitor"
deadline=$(($(date +%s) + 40))
while kill -0 "$OBS_PID_monitor" 2>/dev/null; do
  [ "$(date +%s)" -lt "$deadline" ] || obs_fail "the monitor did not stop within 40 s of SIGTERM"
  sleep 0.1
done
wait "$OBS_PID_monitor"
status=$?
[ $status -eq 0 ] || obs_fail "the monitor exited $status on SIGTERM (want 0)"
grep -q '^monitor: stopped by signal 15' "$OBS_DIR/monitor.log" || obs_fail "no 'stopped by signal 15' line"
mon_check_clean "the monitor's runs through a Cal.com outage"

# A part that does not answer is a failed run, not the monitor's end.
obs_start monitor2 "$MON_RUNNER" --attach "gateway=http://127.0.0.1:1,control=$SIM_CONTROL" \
  --monitor --every 1s --listen 127.0.0.1:0 --timeout 10s "$FORGED"
mon2_port() { sed -n 's|^monitor: metrics on http://127\.0\.0\.1:\([0-9]*\)/metrics.*|\1|p' "$OBS_DIR/monitor2.log"; }
mon2_listening() { [ -n "$(mon2_port)" ]; }
obs_wait 10 "the second monitor listening" mon2_listening
METRICS=http://127.0.0.1:$(mon2_port)/metrics
OBS_PID_monitor=$OBS_PID_monitor2
obs_wait 60 "two cycles against an unreachable gateway" cycles_past 1
[ "$(sample scenario_success "$FORGED")" = 0 ] || obs_fail "a run against an unreachable gateway did not fail"
kill -TERM "$OBS_PID_monitor2"
wait "$OBS_PID_monitor2"
status=$?
[ $status -eq 0 ] || obs_fail "the second monitor exited $status on SIGTERM (want 0)"
echo "PASS: monitor metrics through a Cal.com outage ($n scrapes), the alert fires on them, SIGTERM stops it cleanly, an unreachable gateway is a failed run"
