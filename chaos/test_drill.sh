#!/usr/bin/env bash
# test_drill.sh DRILL SCENARIO - chaos-drill's contract, then a short drill end to end.
set -euo pipefail
drill=$1 runner=$2
work=$(mktemp -d /tmp/test-drill.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Same arguments, same file; another seed, another drill.
"$drill" --seed 7 --rounds 4 --calls 3 --out "$work/a.json"
"$drill" --seed 7 --rounds 4 --calls 3 >"$work/b.json"
cmp -s "$work/a.json" "$work/b.json" || fail "seed 7 gave two different drills"
"$drill" --seed 8 --rounds 4 --calls 3 --out "$work/c.json"
cmp -s "$work/a.json" "$work/c.json" && fail "seeds 7 and 8 gave the same drill"
grep -q '"name": "chaos drill, seed 7: 4 rounds of 3 calls"' "$work/a.json" ||
  fail "the seed is not in the drill's name"
"$runner" --check "$work/a.json" >/dev/null || fail "the generated drill does not validate"

# Several instances: one PostgreSQL database, each kill names an instance, and the faults
# are those of the same seed with one instance (the kills draw from a stream of their own).
"$drill" --seed 7 --rounds 4 --calls 3 --kill-pct 100 --instances 3 --out "$work/i.json"
grep -q '"instances": 3' "$work/i.json" || fail "--instances 3: no instances in the gateway"
grep -q '"store": "postgres"' "$work/i.json" || fail "--instances 3: not on PostgreSQL"
[ "$(grep -c '"instance": [0-2]' "$work/i.json")" -eq 8 ] ||
  fail "--instances 3: four kills and four starts should each name an instance"
"$runner" --check "$work/i.json" >/dev/null || fail "the drill with instances does not validate"
"$drill" --seed 7 --rounds 4 --calls 3 --kill-pct 100 --out "$work/one.json"
faults() { jq -c '[.steps[] | select(.chaos) | .chaos]' "$1"; }
[ "$(faults "$work/i.json")" = "$(faults "$work/one.json")" ] ||
  fail "--instances changed the faults the seed draws"

# Usage errors: a message and status 2.
for args in "--rounds 0" "--calls 51" "--seed -1" "--kill-pct 101" "--bogus 1" "--rounds" \
  "--instances 0" "--instances 9"; do
  set +e
  msg=$("$drill" $args 2>&1 >/dev/null)
  st=$?
  set -e
  [ "$st" -eq 2 ] || fail "chaos-drill $args: status $st, want 2"
  [[ "$msg" == chaos-drill:* ]] || fail "chaos-drill $args: no message ($msg)"
done

# A short drill, end to end: every link faulty, the gateway killed, the invariants hold.
"$drill" --seed 3 --rounds 4 --calls 3 --kill-pct 50 --out "$work/drill.json"
grep -q '"action": "kill"' "$work/drill.json" || fail "seed 3 should kill the gateway at least once"
"$runner" -q --timeout 3m --junit "$work/junit.xml" "$work/drill.json"
