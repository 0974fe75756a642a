#!/bin/bash
# test_dashboard.sh - every query of the Grafana dashboard (deploy/grafana) is PromQL that
# parses, and every metric it names is one the gateway really exports:
#   1. the dashboard JSON has what an import needs (uid, title, the datasource, job and
#      instance variables, unique panel ids, a query on every panel) and the provisioning
#      files load as YAML with the keys Grafana reads;
#   2. each panel query, its Grafana variables replaced by values ($__rate_interval by 5m,
#      $job and $instance by regexes), is written as a recording rule and checked with
#      `promtool check rules` (Prometheus's own parser);
#   3. a real gateway runs a traffic mix that makes every family show (a booking with a
#      deposit, a forged webhook, a Cal.com outage with the breaker disabled so retries
#      meet the retry budget), and each metric name in the dashboard's queries and in the
#      alert and recording rules' expressions must be in its /metrics, be a recording rule
#      of deploy/prometheus/rules, or be one Prometheus makes itself (up, ALERTS).
# Names are taken from the queries by a small tokenizer (strings, label matchers, ranges
# and by/on label lists removed; a name followed by "(" is a function); it checks itself
# on a known query first.
set -u
. "$(dirname "$0")/lib.sh"

PROMTOOL=$(obs_tool promtool)
command -v jq >/dev/null || obs_skip "jq not found (ci/install-deps installs it)"
Y2J=$(obs_prog OBS_YAML2JSON)
obs_setup
cd "$OBS_ROOT" || exit 1
D=deploy/grafana/bookbench-gateway.json

# ---- 1. structure ----
jq -e . "$D" >/dev/null || obs_fail "$D is not JSON"
problems=$(jq -r '
  def vars: [.templating.list[].name];
  (if (.uid // "") == "" or (.title // "") == "" then "no uid or title" else empty end),
  (if (vars | index("datasource")) and (vars | index("job")) and (vars | index("instance"))
   then empty else "variables datasource, job and instance wanted, got \(vars)" end),
  ([.panels[].id] | group_by(.)[] | select(length > 1) | "panel id \(.[0]) used twice"),
  (.panels[] | select(.type != "row") | . as $p
   | (if ((.targets // []) | length) == 0 or any(.targets[]; (.expr // "") == "")
      then "panel \($p.id) \"\($p.title)\" has a target without a query" else empty end),
     (if .datasource.uid != "${datasource}" or any(.targets[]; .datasource.uid != "${datasource}")
      then "panel \($p.id) \"\($p.title)\" does not use the datasource variable" else empty end),
     (if .gridPos.w > 0 and .gridPos.h > 0 then empty else "panel \($p.id) has no size" end))
' "$D")
[ -z "$problems" ] || obs_fail "$D: $problems"
npanels=$(jq '[.panels[] | select(.type != "row")] | length' "$D")

for f in deploy/grafana/provisioning/dashboards/*.yml deploy/grafana/provisioning/datasources/*.yml; do
  "$Y2J" "$f" >"$OBS_DIR/prov.json" || obs_fail "$f does not load"
  jq -e '.apiVersion == 1 and ((.providers // .datasources) | length > 0)' "$OBS_DIR/prov.json" >/dev/null ||
    obs_fail "$f: no apiVersion 1 with providers or datasources"
done
jq -e '.providers[0].type == "file" and (.providers[0].options.path | length > 0)' \
  <("$Y2J" deploy/grafana/provisioning/dashboards/bookbench.yml) >/dev/null ||
  obs_fail "the dashboard provider must read files from options.path"
jq -e '.datasources[0].type == "prometheus"' \
  <("$Y2J" deploy/grafana/provisioning/datasources/prometheus.yml) >/dev/null ||
  obs_fail "the data source must be a prometheus one"
echo "ok: $D: $npanels panels, variables, provisioning files"

# ---- 2. every query parses ----
# Grafana's variables by values of the same kind; any other "$" is an unknown variable.
jq -r '.panels[] | select(.type != "row") | .id as $id | .targets[] | [$id, .refId, .expr] | @json' "$D" |
  while read -r row; do
    jq -r '.[2]' <<<"$row" | tr '\n' ' ' |
      sed -e 's/\$__rate_interval/5m/g' -e 's/\$__interval/1m/g' -e 's/\$job/bookbench-gateway/g' \
        -e 's/\$instance/.*/g' >"$OBS_DIR/expr"
    grep -q '\$' "$OBS_DIR/expr" && obs_fail "panel $(jq -r '.[0]' <<<"$row"): unknown variable in $(cat "$OBS_DIR/expr")"
    jq -nc --argjson r "$row" --rawfile e "$OBS_DIR/expr" \
      '{record: "dashboard:panel_\($r[0])_\($r[1]):query", expr: $e}'
  done >"$OBS_DIR/queries.jsonl" || exit 1
nq=$(wc -l <"$OBS_DIR/queries.jsonl")
[ "$nq" -ge "$npanels" ] || obs_fail "only $nq queries for $npanels panels"
jq -s '{groups: [{name: "dashboard", rules: .}]}' "$OBS_DIR/queries.jsonl" >"$OBS_DIR/queries.rules.json"
# promtool reads YAML, and JSON is YAML.
out=$("$PROMTOOL" check rules "$OBS_DIR/queries.rules.json" 2>&1) ||
  obs_fail "dashboard queries that do not parse:
$out"
echo "ok: promtool parses all $nq panel queries"

# ---- 3. every name is exported ----
# names: the metric names a PromQL expression reads.
NAMES_JQ='
  def names:
    gsub("\"(\\\\.|[^\"\\\\])*\""; "\"\"")
    | gsub("\\{[^}]*\\}"; " ") | gsub("\\[[^\\]]*\\]"; " ")
    | gsub("\\b(by|without|on|ignoring|group_left|group_right)\\s*\\([^)]*\\)"; " ")
    | gsub("\\b(group_left|group_right)\\b"; " ")
    | [scan("(?<![a-zA-Z0-9_:.])[a-zA-Z_:][a-zA-Z0-9_:]*+(?!\\s*\\()")]
    | map(select(IN("and", "or", "unless", "bool", "offset", "inf", "nan", "Inf", "NaN") | not));
'
got=$(jq -nc "$NAMES_JQ"' "histogram_quantile(0.99, sum by (provider, le) (rate(gw_x_bucket{job=~\"a|b\", le=\"0.5\"}[5m]))) / on(job) group_left(version) a:b:c offset 5m > bool 1e3 and up unless vector(0)" | names')
[ "$got" = '["gw_x_bucket","a:b:c","up"]' ] || obs_fail "the name tokenizer is wrong: $got"

jq -r "$NAMES_JQ"' .expr | names[]' "$OBS_DIR/queries.jsonl" >"$OBS_DIR/names.dashboard"
jq -r '.templating.list[] | select(.type == "query") | (.query.query // .query)' "$D" |
  sed -n 's/^label_values(\([a-zA-Z_:][a-zA-Z0-9_:]*\).*/\1/p' >>"$OBS_DIR/names.dashboard"
# The gateway's rules; synthetic-alerts.rules.yml reads the scenario runner's monitor,
# checked against a live one by tests/monitor/test_monitor.sh.
for f in deploy/prometheus/rules/gateway-*.rules.yml; do "$Y2J" "$f" || obs_fail "cannot read $f"; done >"$OBS_DIR/rules.jsonl"
jq -r "$NAMES_JQ"' .groups[].rules[].expr | names[]' "$OBS_DIR/rules.jsonl" >"$OBS_DIR/names.rules"
jq -r '.groups[].rules[] | select(.record) | .record' "$OBS_DIR/rules.jsonl" | sort -u >"$OBS_DIR/recorded"
sort -u "$OBS_DIR/names.dashboard" "$OBS_DIR/names.rules" >"$OBS_DIR/names"
grep -qx gw_webhooks_total "$OBS_DIR/names" || obs_fail "no gw_webhooks_total among the names: $(tr '\n' ' ' <"$OBS_DIR/names")"

obs_start_sims
obs_start_gateway "$OBS_ROOT/tests/obs/fixtures/gateway-names.json"
saga_state() { obs_admin GET "/admin/sagas/$1" | jq -r '.saga.state'; }
scrape() { curl -sS "$GW_URL/metrics" >"$OBS_DIR/metrics.txt"; }
has_family() { scrape && grep -q "^# TYPE $1 " "$OBS_DIR/metrics.txt"; }

# A booking with a deposit: intake, jobs, both providers, a saga, a payment.
obs_booking_call call_names_1 2050-09-05T09:00:00.000Z 2500
completed() { [ "$(saga_state call_names_1)" = completed ]; }
obs_wait 30 "the booking with a deposit completed" completed
# A forged webhook: refused.
obs_http POST "$SIM_CONTROL/control/retell/calls" '{"call_id":"call_names_forged","agent_id":"agent_acme_frontdesk"}' >/dev/null
rep=$(obs_http POST "$SIM_CONTROL/control/retell/calls/call_names_forged/webhook" '{"event":"call_started","forge":true}')
[ "$(jq -c '[.deliveries[].status]' <<<"$rep")" = "[401]" ] || obs_fail "forged webhook not refused: $rep"
# Cal.com down with the breaker disabled: calls are retried until the retry budget refuses.
[ "$(obs_admin POST /admin/breakers/calcom/disable | jq -r .state)" = disabled ] ||
  obs_fail "could not disable the Cal.com breaker"
obs_http POST "$SIM_CONTROL/control/faults" '{"provider":"calcom","route":"* /v2/*","status":503}' >/dev/null
obs_booking_call call_names_2 2050-09-06T09:00:00.000Z
obs_wait 30 "retries refused by the retry budget" has_family gw_retry_budget_rejections_total
scrape
promtool_out=$("$PROMTOOL" check metrics <"$OBS_DIR/metrics.txt" 2>&1) ||
  obs_fail "promtool check metrics refused the scrape: $promtool_out"

sed -n 's/^\([a-zA-Z_:][a-zA-Z0-9_:]*\)[{ ].*/\1/p' "$OBS_DIR/metrics.txt" | sort -u >"$OBS_DIR/exported"
missing=
while read -r n; do
  grep -qx "$n" "$OBS_DIR/exported" && continue
  grep -qx "$n" "$OBS_DIR/recorded" && continue
  case $n in up | ALERTS | ALERTS_FOR_STATE) continue ;; esac
  where=
  grep -qx "$n" "$OBS_DIR/names.dashboard" && where="dashboard"
  grep -qx "$n" "$OBS_DIR/names.rules" && where="$where rules"
  missing="$missing
  $n (in the$where)"
done <"$OBS_DIR/names"
[ -z "$missing" ] || obs_fail "names the gateway does not export (its /metrics: $OBS_DIR/metrics.txt):$missing"
echo "ok: $(wc -l <"$OBS_DIR/names") metric names of the dashboard and the rules, each exported by the live gateway ($(wc -l <"$OBS_DIR/exported") series names), recorded, or Prometheus's"
echo "PASS: dashboard and rules read what the gateway exports"
