#!/bin/bash
# test_attach.sh - the `monitor` scenarios pass again and again against one long-lived
# gateway and simulators (issue 16): three runs of the set in a row with --attach, each
# all passed and none skipped, and after each the deployment is as it was (ready ok,
# breakers closed, queue empty, no fault rule). Then what attach mode must undo even on a
# failure: a scenario that adds a fault rule, forces the Cal.com breaker open and fails
# leaves neither behind; and a scenario that cannot run attached is skipped with the
# reason, not run.
set -u
. "$(dirname "$0")/lib.sh"
obs_setup
cd "$OBS_ROOT" || exit 1
mon_deploy

# How many scenarios carry the tag: every one of them must run and pass.
# From the summary line: with CI set the runner prints no PASS lines (--quiet).
want=$("$MON_RUNNER" --check --tag monitor scenarios | tail -n 1 |
  sed -n 's/^\([0-9][0-9]*\) passed, 0 failed$/\1/p')
want=${want:-0}
[ "$want" -ge 8 ] || obs_fail "only $want scenario(s) tagged monitor"
for run in 1 2 3; do
  "$MON_RUNNER" --attach "$ATTACH" --tag monitor --junit "$OBS_DIR/junit-$run.xml" scenarios \
    >"$OBS_DIR/run-$run.log" 2>&1
  status=$?
  summary=$(tail -n 1 "$OBS_DIR/run-$run.log")
  if [ $status -ne 0 ] || [ "$summary" != "$want passed, 0 failed" ] ||
    grep -q '^SKIP ' "$OBS_DIR/run-$run.log"; then
    cat "$OBS_DIR/run-$run.log"
    obs_fail "attached run $run: exit $status, '$summary' (want '$want passed, 0 failed', none skipped)"
  fi
  obs_log "attached run $run: $summary"
  mon_check_clean "attached run $run"
done

# A failing scenario's fault rule and forced breaker are undone all the same.
"$MON_RUNNER" --attach "$ATTACH" tests/monitor/fixtures/undo_on_failure.json \
  >"$OBS_DIR/undo.log" 2>&1
status=$?
[ $status -eq 1 ] && grep -q '^FAIL ' "$OBS_DIR/undo.log" || {
  cat "$OBS_DIR/undo.log"
  obs_fail "the failing fixture exited $status (want 1, FAIL)"
}
grep -q 'DELETE control /control/faults/' "$OBS_DIR/undo.log" &&
  grep -q 'POST gateway /admin/breakers/calcom/reset' "$OBS_DIR/undo.log" || {
  cat "$OBS_DIR/undo.log"
  obs_fail "the failing fixture's log shows no undo of its fault rule and breaker"
}
mon_check_clean "a failing scenario that forced the breaker open and added a fault rule"

# Not runnable attached: skipped with the reason (exit 0: nothing failed).
"$MON_RUNNER" --attach "$ATTACH" scenarios/saga/140_calcom_down_past_deadline_needs_human.json \
  scenarios/audit/510_calcom_outage_webhook_acknowledged_fast_processed_later.json \
  scenarios/inbound/050_kill_during_burst_exactly_once.json >"$OBS_DIR/skip.log" 2>&1
status=$?
for why in 'written for the gateway config fixtures/gateway/short_deadline.json' \
  'cannot speed up the parts' 'cannot kill, stop or start the gateway'; do
  grep -q "$why" "$OBS_DIR/skip.log" || {
    cat "$OBS_DIR/skip.log"
    obs_fail "no SKIP saying '$why'"
  }
done
[ $status -eq 0 ] && [ "$(grep -c '^SKIP ' "$OBS_DIR/skip.log")" = 3 ] || {
  cat "$OBS_DIR/skip.log"
  obs_fail "unsuitable scenarios: exit $status, want 3 SKIP lines and exit 0"
}
mon_check_clean "the skipped scenarios"
echo "PASS: the monitor set ($want scenarios) passed 3 times attached to one gateway; undo after a failure; unsuitable ones skipped with the reason"
