#!/bin/bash
# test_contract.sh ours|naive - the contract suite (scenarios/contract) judges a gateway
# through --gateway-cmd, and its health report (health.json) says what the audit said.
#
#   ours:  our gateway under the contract (examples/bookbench-gateway/run): every contract
#          scenario passes, every judged area scores 100 and so does the whole.
#   naive: examples/naive-gateway, written the way the audited gateway was: the report
#          names each of its deliberate defects as a finding of the scenario that catches
#          it (signature check skipped, check-then-insert dedup, synchronous processing,
#          fixed 3 x 100 ms retries, one 10 s timeout, no breaker on Stripe, a 5-minute
#          availability cache, no compensation, caller data logged in clear), and it scores
#          low overall.
# Needs $BYOG_SCENARIO (the runner) and $BB_GATEWAY_BIN (our gateway) from ctest; run from
# the repository root.
set -u
mode=${1:?usage: test_contract.sh ours|naive}
runner=${BYOG_SCENARIO:?set BYOG_SCENARIO to the scenario runner}
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: jq not found (ci/install-deps installs it)"; exit 77; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/contract-XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT

fail() {
  echo "FAIL: $*"
  [ -f "$dir/run.log" ] && tail -n 60 "$dir/run.log"
  exit 1
}

case $mode in
ours) cmd=examples/bookbench-gateway/run health=/health/ready ;;
naive) cmd="python3 examples/naive-gateway/gateway.py" health=/health ;;
*) echo "usage: test_contract.sh ours|naive"; exit 2 ;;
esac
"$runner" -q -j 2 --gateway-cmd "$cmd" --gateway-health "$health" --out "$dir/out" \
  scenarios/contract >"$dir/run.log" 2>&1
status=$?
h=$dir/out/health.json
[ -s "$h" ] || fail "no health report written (runner exit $status)"
[ -s "$dir/out/health.html" ] || fail "no health.html"
[ "$(jq -r .gateway "$h")" = "$cmd" ] || fail "health.json names $(jq -r .gateway "$h"), want $cmd"
score=$(jq .score "$h")
echo "$mode: overall $score/100; by area: $(jq -r '[.areas[] | "\(.area) \(.score)"] | join(", ")' "$h")"

if [ "$mode" = ours ]; then
  [ $status -eq 0 ] || fail "our gateway failed contract scenarios (exit $status)"
  [ "$score" = 100 ] || fail "our gateway scores $score, want 100"
  low=$(jq -r '.areas[] | select(.score != 100) | .area' "$h")
  [ -z "$low" ] || fail "areas under 100: $low"
  [ "$(jq '.findings | length' "$h")" = 0 ] || fail "findings on our gateway: $(jq -c .findings "$h")"
  echo "PASS: our gateway passes the contract with full marks"
  exit 0
fi

[ $status -eq 1 ] || fail "the naive gateway: runner exit $status, want 1 (scenarios failed)"
# Each deliberate defect, with the scenario that must name it and its area.
while read -r file area defect; do
  jq -e --arg f "scenarios/contract/$file" --arg a "$area" \
    '.findings[] | select(.scenario == $f and .area == $a and (.evidence | length) > 0)' \
    "$h" >/dev/null || fail "no finding of $file in $area: the report misses '$defect'"
done <<'LIST'
010_retell_forged_unsigned_stale_webhooks_refused.json webhook_security Retell signature check skipped
020_twenty_concurrent_copies_one_booking_one_charge.json dedup check-then-insert dedup
030_webhooks_acknowledged_within_1s_while_calcom_is_slow.json async_processing synchronous processing
040_calcom_down_for_seconds_then_back_call_booked_once.json retries_dlq fixed 3 x 100 ms retries
060_calcom_hanging_abandoned_within_5s.json timeouts one 10 s timeout
050_stripe_breaker_stops_calls_then_one_trial_recovers.json breakers no breaker on Stripe
070_slot_taken_elsewhere_not_offered_two_minutes_later.json availability_cache 5-minute cache
080_declined_deposit_cancels_the_booking.json saga_compensation no compensation
100_caller_phone_and_email_not_logged_in_clear.json privacy caller data logged in clear
LIST
[ "$score" -lt 50 ] || fail "the naive gateway scores $score, want under 50"
echo "PASS: the health report names every defect of the naive gateway ($(jq '.findings | length' "$h") findings)"
