#!/usr/bin/env bash
# tests/otlp/bench_tracing.sh - tracing's cost on webhook intake: ci/bench-ingest (SQLite)
# with tracing off, then on with a collector that is up, dead (connection refused) and
# black-holed (connects, never answers), every trace sampled. Prints each run's rates and
# acknowledgement p99s, and the spans the gateway exported and dropped.
# Environment: DURATION (s, 5), CONNS (64); the runs share 2 cores with wrk, so compare
# figures within one run of this script.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DURATION=${DURATION:-5} PG=0
work=$(mktemp -d /tmp/bench-tracing.XXXXXX)
sink_pid=
cleanup() { [ -z "$sink_pid" ] || kill "$sink_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
tracing() { # endpoint
  echo "{\"endpoint\": \"$1\", \"sample_ratio\": 1, \"flush_ms\": 1000, \"timeout_ms\": 2000}"
}
sink() { # mode; sets sink_pid and sink_port
  rm -f "$work/sink.port"
  python3 tests/otlp/otlp_sink.py "$1" "$work/sink.port" >"$work/sink-$1.log" & sink_pid=$!
  for _ in $(seq 100); do [ -s "$work/sink.port" ] && break; sleep 0.05; done
  sink_port=$(cat "$work/sink.port")
}
run() { # label
  echo "== tracing $1 =="
  ./ci/bench-ingest 2>&1 | grep -E '^(gateway|bare:|ingest_vs|cpu per request: gateway)' || true
}
TRACING_JSON= run off
sink up; TRACING_JSON=$(tracing "http://127.0.0.1:$sink_port/v1/traces") run "on, collector up"
kill -TERM $sink_pid; wait $sink_pid 2>/dev/null || true; cat "$work/sink-up.log"; sink_pid=
TRACING_JSON=$(tracing "http://127.0.0.1:9/v1/traces") run "on, collector dead (refused)"
sink blackhole; TRACING_JSON=$(tracing "http://127.0.0.1:$sink_port/v1/traces") run "on, collector black-holed"
TRACING_JSON= run "off, again (the machine's drift)"
