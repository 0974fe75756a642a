#!/bin/bash
# test_retell_call_object.sh SIMULATORS WORKDIR - installs retell-sdk from npm (the version
# pinned in package.json) into WORKDIR once, then runs retell_call_object.mjs against the
# simulators binary. Exits 77 (skipped, never a silent pass) when node/npm are missing or
# the npm registry cannot be reached.
set -u
sim=${1:?usage: test_retell_call_object.sh SIMULATORS WORKDIR}
work=${2:?usage: test_retell_call_object.sh SIMULATORS WORKDIR}
here=$(cd "$(dirname "$0")" && pwd)
command -v node >/dev/null && command -v npm >/dev/null || { echo "SKIP: node/npm not found"; exit 77; }
mkdir -p "$work"
cp "$here/package.json" "$here/retell_call_object.mjs" "$work/"
if [ ! -f "$work/node_modules/retell-sdk/package.json" ]; then
  if ! (cd "$work" && timeout 300 npm install --silent --no-audit --no-fund >npm.log 2>&1); then
    echo "SKIP: npm install of retell-sdk failed (registry unreachable?):"; tail -5 "$work/npm.log"
    exit 77
  fi
fi
cd "$work" && exec node retell_call_object.mjs "$sim"
