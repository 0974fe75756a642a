#!/bin/bash
# test_rules.sh - the shipped Prometheus and Alertmanager files, checked by their own tools
# and held to the conventions deploy/README.md promises:
#   - promtool check rules / check config, amtool check-config accept them;
#   - promtool test rules passes every unit test in deploy/prometheus/tests/;
#   - every alert has a severity (critical or warning), a summary, a description and a
#     runbook_url naming a section of deploy/README.md that exists;
#   - every alert has a unit test in which it is silent at one evaluation and firing at a
#     later one (it fires, and not earlier than it should), and a test in which it never
#     fires (a healthy series, or one just under its threshold);
#   - every recording rule an alert reads is recorded;
#   - the rules as the live test renders them (durations / 60) still load.
set -u
. "$(dirname "$0")/lib.sh"

PROMTOOL=$(obs_tool promtool)
AMTOOL=$(obs_tool amtool)
command -v jq >/dev/null || obs_skip "jq not found (ci/install-deps installs it)"
Y2J=$(obs_prog OBS_YAML2JSON)
obs_setup
cd "$OBS_ROOT" || exit 1
P=deploy/prometheus

out=$("$PROMTOOL" check rules $P/rules/*.rules.yml 2>&1) || obs_fail "promtool check rules:
$out"
out=$("$PROMTOOL" check config $P/prometheus.yml 2>&1) || obs_fail "promtool check config:
$out"
out=$("$AMTOOL" check-config deploy/alertmanager/alertmanager.yml 2>&1) ||
  obs_fail "amtool check-config:
$out"
out=$("$PROMTOOL" test rules $P/tests/*.test.yml 2>&1) || obs_fail "promtool test rules:
$out"
echo "ok: promtool check rules, check config, test rules ($(ls $P/tests/*.test.yml | wc -l) files); amtool check-config"

# The rule and test files as JSON, one document per line.
for f in $P/rules/*.rules.yml; do "$Y2J" "$f" || obs_fail "cannot read $f"; done >"$OBS_DIR/rules.jsonl"
for f in $P/tests/*.test.yml; do "$Y2J" "$f" || obs_fail "cannot read $f"; done >"$OBS_DIR/tests.jsonl"
jq -c '.groups[].rules[] | select(.alert)' "$OBS_DIR/rules.jsonl" >"$OBS_DIR/alerts.jsonl"
nalerts=$(wc -l <"$OBS_DIR/alerts.jsonl")
[ "$nalerts" -gt 0 ] || obs_fail "no alert found in $P/rules"

# Annotations, severity, runbook.
bad=$(jq -r '
  select((.labels.severity | IN("critical", "warning") | not)
         or ((.annotations.summary // "") == "") or ((.annotations.description // "") == "")
         or (.annotations.runbook_url != "deploy/README.md#" + (.alert | ascii_downcase)))
  | .alert' "$OBS_DIR/alerts.jsonl")
[ -z "$bad" ] || obs_fail "alerts without severity critical|warning, summary, description or runbook_url deploy/README.md#<name in lower case>: $bad"
for a in $(jq -r .alert "$OBS_DIR/alerts.jsonl"); do
  grep -qx "### $a" deploy/README.md || obs_fail "deploy/README.md has no runbook section '### $a'"
done

# Unit tests: for each alert, a test where it is silent, then firing later; a test where it
# never fires. eval_time is a Prometheus duration; compared in seconds.
jq -r '
  def secs: capture("^(?<n>[0-9]+)(?<u>[smhd])$") | (.n | tonumber) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[.u];
  .tests[] | .name as $t | (.alert_rule_test // [])[]
  | [$t, .alertname, (.eval_time | secs), ((.exp_alerts // []) | length)] | @tsv' \
  "$OBS_DIR/tests.jsonl" >"$OBS_DIR/checks.tsv"
for a in $(jq -r .alert "$OBS_DIR/alerts.jsonl"); do
  awk -F'\t' -v a="$a" '
    $2 == a { if ($4 == 0) { silent[$1] = silent[$1] "," $3 } else { fired[$1] = 1; fire_at[$1] = fire_at[$1] "," $3 } }
    END {
      ok_fire = 0; ok_quiet = 0
      for (t in fire_at) {
        n = split(fire_at[t], f, ","); m = split(silent[t], s, ",")
        for (i = 2; i <= n; i++) for (j = 2; j <= m; j++) if (s[j] + 0 < f[i] + 0) ok_fire = 1
      }
      for (t in silent) if (!(t in fired)) ok_quiet = 1
      exit !(ok_fire && ok_quiet)
    }' "$OBS_DIR/checks.tsv" ||
    obs_fail "$a lacks a unit test where it is silent and then fires, or one where it never fires"
done
echo "ok: $nalerts alerts, each with severity, summary, description, a runbook section, and unit tests that fire it on time and keep it silent"

# Recording rules the alerts read are recorded.
jq -r '.groups[].rules[] | select(.record) | .record' "$OBS_DIR/rules.jsonl" | sort -u >"$OBS_DIR/records"
jq -r '.expr' "$OBS_DIR/alerts.jsonl" | grep -oE '[a-z_]+:[a-z0-9_]+:[a-z0-9_]+' | sort -u >"$OBS_DIR/used"
missing=$(comm -23 "$OBS_DIR/used" "$OBS_DIR/records")
[ -z "$missing" ] || obs_fail "alerts read recording rules nobody records: $missing"
echo "ok: the $(wc -l <"$OBS_DIR/used") recording rules the alerts read are recorded"

# The live test's rendering (every duration / 60) loads.
obs_render_rules 60 "$OBS_DIR/rendered"
out=$("$PROMTOOL" check rules "$OBS_DIR"/rendered/*.rules.yml 2>&1) ||
  obs_fail "the rules rendered for the live test do not load:
$out"
# ... and differs from the shipped files in its durations only.
nodur() { sed -E -e 's/\[[0-9]+(ms|[smhd])\]/[D]/g' -e 's/^(\s*for:\s*)[0-9]+(ms|[smhd])\s*$/\1D/' "$1"; }
for f in $P/rules/*.rules.yml; do
  diff <(nodur "$f") <(nodur "$OBS_DIR/rendered/$(basename "$f")") >"$OBS_DIR/render.diff" ||
    obs_fail "rendering $f changed more than durations: $(cat "$OBS_DIR/render.diff")"
done
echo "PASS: rules, tests, conventions, and the live test's rendering"
