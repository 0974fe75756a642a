#!/bin/bash
# test_sdk_conformance.sh SIMULATORS WORKDIR - installs the providers' official SDKs from npm
# (stripe, retell-sdk; versions pinned in package.json) into WORKDIR once, then runs
# sdk_conformance.mjs against the simulators binary. Exits 77 (skipped, never a silent
# pass) when node/npm are missing or the npm registry cannot be reached.
set -u
sim=${1:?usage: test_sdk_conformance.sh SIMULATORS WORKDIR}
work=${2:?usage: test_sdk_conformance.sh SIMULATORS WORKDIR}
here=$(cd "$(dirname "$0")" && pwd)
command -v node >/dev/null && command -v npm >/dev/null || { echo "SKIP: node/npm not found"; exit 77; }
mkdir -p "$work"
cp "$here/package.json" "$here/sdk_conformance.mjs" "$work/"
if [ ! -f "$work/node_modules/stripe/package.json" ] || [ ! -f "$work/node_modules/retell-sdk/package.json" ]; then
  if ! (cd "$work" && timeout 300 npm install --silent --no-audit --no-fund >npm.log 2>&1); then
    echo "SKIP: npm install of the SDKs failed (registry unreachable?):"; tail -5 "$work/npm.log"
    exit 77
  fi
fi
cd "$work" && exec node sdk_conformance.mjs "$sim"
