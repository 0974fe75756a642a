#!/usr/bin/env bash
# scenarios/schema-check.sh [CACHE_DIR] - validates every shipped scenario file against
# docs/scenario.schema.json with ajv (draft-07), and checks that the schema refuses a few
# broken files. ajv comes from npm into CACHE_DIR (default build/ajv) the first time;
# without npm, or when it cannot be installed (offline), the check is skipped with exit
# status 77 (ctest shows it as skipped, never as passed). Run from the repository root.
set -uo pipefail
cache=${1:-build/ajv}
ajv=$cache/node_modules/.bin/ajv
if [ ! -x "$ajv" ]; then
  if ! command -v npm >/dev/null; then
    echo "SKIP: npm not found; cannot install ajv-cli to validate against the schema"
    exit 77
  fi
  mkdir -p "$cache"
  if ! timeout 120 npm install --prefix "$cache" --silent --no-audit --no-fund --fetch-retries=1 \
      --fetch-timeout=20000 ajv-cli@5 \
      >"$cache/npm.log" 2>&1; then
    echo "SKIP: npm could not install ajv-cli (offline?); see $cache/npm.log"
    exit 77
  fi
fi
schema=docs/scenario.schema.json
# JSON and YAML files alike (ajv-cli reads YAML with js-yaml).
mapfile -t files < <(find scenarios \( -name '*.json' -o -name '*.yaml' -o -name '*.yml' \) \
  -not -path '*/_*' -not -path '*/.*' | sort)
args=()
for f in "${files[@]}"; do args+=(-d "$f"); done
status=0
"$ajv" validate --spec=draft7 --strict=false --errors=text -s "$schema" "${args[@]}" || status=1

# The schema must not be vacuous: each of these is refused by the runner and by it.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
base='"name":"n","tags":[],"seed":1,"gateway":{"config":"c.json"}'
printf '{%s,"steps":[{"sleep":"1s"}]}' "$base" >"$tmp/kind.json"
printf '{%s,"sped":2,"steps":[{"gateway":{"action":"kill"}}]}' "$base" >"$tmp/top.json"
printf '{%s,"steps":[{"gateway":{"action":"reboot"}}]}' "$base" >"$tmp/action.json"
printf '{%s,"steps":[{"request":{"to":"gateway","path":"/x","sign":{"scheme":"std","key":"k"}}}]}' \
  "$base" >"$tmp/std.json"
printf '{%s,"steps":[{"repeat":{"times":0,"step":{"gateway":{"action":"kill"}}}}]}' "$base" \
  >"$tmp/times.json"
printf '{%s,"steps":[{"wait":{"saga":"c1","within":"1s"}}]}' "$base" >"$tmp/saga.json"
printf '{%s,"steps":[{"wait":{"queue":"drained","request":{"to":"gateway","path":"/x"}}}]}' \
  "$base" >"$tmp/mixed.json"
for bad in "$tmp"/*.json; do
  if "$ajv" validate --spec=draft7 --strict=false -s "$schema" -d "$bad" >/dev/null 2>&1; then
    echo "schema-check: the schema accepts $(basename "$bad"), which the runner refuses: $(cat "$bad")"
    status=1
  fi
done
[ $status -eq 0 ] && echo "schema-check: ${#files[@]} scenario files valid; broken ones refused"
exit $status
