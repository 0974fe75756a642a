#!/bin/bash
# test_byog.sh ours|naive - the scenario runner judges a gateway that is not ours
# (--gateway-cmd, issue 19), end to end against the simulators built here.
#
#   ours:  our gateway under the contract (examples/bookbench-gateway/run, ready on
#          /health/ready): the admin-free fixtures of tests/byog/fixtures pass (a booking
#          with its deposit, a forged signature refused, a stop and start on the same data
#          dir), and basic/001-003, which read our admin API, are skipped with the reason.
#   naive: examples/naive-gateway (Python, the audited gateway's defects on purpose): it
#          books (fixture 001 passes, and 003), and it takes a forged signature (002 fails,
#          with the 200 it answered).
# Every run's JSON report must name the gateway under test. Needs $BYOG_SCENARIO (the
# runner) and $BB_GATEWAY_BIN (our gateway) from ctest; run from the repository root.
set -u
mode=${1:?usage: test_byog.sh ours|naive}
runner=${BYOG_SCENARIO:?set BYOG_SCENARIO to the scenario runner}
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: jq not found (ci/install-deps installs it)"; exit 77; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/byog-XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT

fail() {
  echo "FAIL: $*"
  [ -f "$dir/run.log" ] && cat "$dir/run.log"
  exit 1
}

# line PATTERN: the run's output has a line matching PATTERN (grep -E), else fail.
line() { grep -qE -- "$1" "$dir/run.log" || fail "no line matching '$1'"; }
# case_is NAME_PREFIX STATUS: the JSON report's case whose name starts so has that status.
case_is() {
  jq -e --arg n "$1" --arg s "$2" \
    'any(.suites[].cases[]; (.name | startswith($n)) and .status == $s)' "$dir/report.json" \
    >/dev/null || fail "no case '$1...' $2 in the JSON report"
}

case $mode in
ours)
  cmd=examples/bookbench-gateway/run
  "$runner" --gateway-cmd "$cmd" --gateway-health /health/ready --json "$dir/report.json" \
    tests/byog/fixtures scenarios/basic/001_happy_path_one_booking.json \
    scenarios/basic/002_forged_signature_rejected.json \
    scenarios/basic/003_five_copies_book_once.json >"$dir/run.log" 2>&1
  status=$?
  [ $status -eq 0 ] || fail "our gateway under --gateway-cmd: exit $status, want 0"
  [ "$(tail -n 1 "$dir/run.log")" = "3 passed, 0 failed" ] || fail "want '3 passed, 0 failed'"
  [ "$(grep -c '^SKIP ' "$dir/run.log")" = 3 ] || fail "want basic/001-003 skipped (3 SKIP lines)"
  for what in 'GET /admin/calls/' 'GET /admin/events' 'GET /admin/queue'; do
    line "not run: steps\[[0-9]+\] needs our gateway's own API \($what"
  done
  ;;
naive)
  cmd='python3 examples/naive-gateway/gateway.py'
  "$runner" --gateway-cmd "$cmd" --json "$dir/report.json" tests/byog/fixtures \
    >"$dir/run.log" 2>&1
  status=$?
  [ $status -eq 1 ] || fail "the naive gateway: exit $status, want 1 (one scenario failed)"
  [ "$(tail -n 1 "$dir/run.log")" = "2 passed, 1 failed" ] || fail "want '2 passed, 1 failed'"
  # From the JSON report: under CI=true the runner prints no PASS lines.
  case_is 'byog: one analysed call books one slot' passed
  case_is 'byog: the gateway under test is stopped and started again' passed
  case_is 'byog: a forged Retell signature is refused' failed
  line 'a forged call_analyzed is refused.*expected one of \[401, 400, 403\], got 200'
  # The failed scenario's temp dir is kept: its gw.log shows the forged call booked (the
  # Retell signature check is skipped) and the caller's phone and e-mail in clear.
  kept=$(jq -r '[.suites[].cases[] | select(.status == "failed") | .kept_dir][0] // empty' \
    "$dir/report.json")
  [ -n "$kept" ] && [ -f "$kept/gw.log" ] || fail "no kept temp dir with a gw.log"
  trap 'rm -rf "$dir" "$kept"' EXIT
  for what in 'production.INFO: appointment booked' '"attendee_phone": "+14155550123"' \
    '"attendee_email": "jane.doe@example.com"'; do
    grep -qF -- "$what" "$kept/gw.log" || fail "the naive gateway's log has no '$what'"
  done
  ;;
*)
  echo "usage: test_byog.sh ours|naive" >&2
  exit 2
  ;;
esac
if [ "$mode" = ours ]; then
  # A gateway that exits before it is ready, and one that never answers 200: each fails its
  # scenario as an error (exit 1), with the reason and the tail of its log.
  for bad in "echo 'no config for me' >&2; exit 3|exited with status 3 before GET /health answered 200|no config for me" \
    "echo 'up, never ready'; exec sleep 60|was not ready within 10000 ms|up, never ready"; do
    IFS='|' read -r badcmd why tail <<<"$bad"
    "$runner" --gateway-cmd "$badcmd" tests/byog/fixtures/002_forged_signature_refused.json \
      >"$dir/bad.log" 2>&1
    status=$?
    { [ $status -eq 1 ] && grep -q '^ERROR byog' "$dir/bad.log" && grep -qF -- "$why" "$dir/bad.log" &&
      grep -qF -- "$tail" "$dir/bad.log"; } || {
      cat "$dir/bad.log"
      fail "--gateway-cmd \"$badcmd\": exit $status, want 1 with ERROR, '$why' and its log '$tail'"
    }
    kept=$(sed -n 's/^    kept \(.*\)$/\1/p' "$dir/bad.log" | head -n 1)
    [ -n "$kept" ] && rm -rf "$kept"
  done
fi
# The reports name the gateway under test.
name=$(jq -r .name "$dir/report.json") || fail "no JSON report"
case $name in
*"--gateway-cmd '$cmd'"*) ;;
*) fail "the JSON report's name is '$name', not naming --gateway-cmd '$cmd'" ;;
esac
head -n 1 "$dir/run.log" | grep -qF "gateway under test: sh -c '$cmd'" ||
  fail "the output does not start by naming the gateway under test"
echo "PASS: $mode gateway judged through --gateway-cmd '$cmd': $(tail -n 1 "$dir/run.log")"
