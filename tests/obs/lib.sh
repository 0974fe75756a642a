# tests/obs/lib.sh - shared by the observability tests (sourced, bash): finding the tools,
# a temp dir, starting the parts on free ports of 127.0.0.1 and stopping them at exit,
# waiting on conditions with deadlines, rendering the shipped rules for a short run.
#
# Programs come from the environment that tests/obs/CMakeLists.txt sets (OBS_GATEWAY,
# OBS_SIMULATORS, OBS_SINK, OBS_YAML2JSON); the Prometheus tools from PATH, or from
# /usr/local/lib/promtool/usr/bin where ci/install-deps unpacks promtool alone. A missing
# tool is a skip (exit 77), never a pass.

OBS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OBS_T0=$(date +%s%3N)
OBS_PIDS=()
OBS_NAMES=()
OBS_DIR=
OBS_FAILED=0

# obs_elapsed: milliseconds since the test began.
obs_elapsed() { echo $(($(date +%s%3N) - OBS_T0)); }
obs_log() {
  local ms
  ms=$(obs_elapsed)
  printf '[%3d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*"
}

# obs_fail MESSAGE: report, keep the temp dir and the parts' logs, exit 1.
obs_fail() {
  echo "FAIL: $*" >&2
  OBS_FAILED=1
  exit 1
}

obs_skip() {
  echo "SKIP: $*"
  exit 77
}

# obs_tool NAME: the path of a tool, or a skip naming the package that has it.
obs_tool() {
  local name=$1 p
  p=$(command -v "$name" 2>/dev/null || true)
  if [ -z "$p" ] && [ -x "/usr/local/lib/promtool/usr/bin/$name" ]; then
    p=/usr/local/lib/promtool/usr/bin/$name
  fi
  if [ -z "$p" ]; then
    case $name in
      prometheus-alertmanager | amtool) obs_skip "$name not found (Debian package prometheus-alertmanager; ci/install-deps installs it)" ;;
      promtool | prometheus) obs_skip "$name not found (Debian package prometheus; ci/install-deps installs it)" ;;
      *) obs_skip "$name not found (ci/install-deps installs it)" ;;
    esac
  fi
  echo "$p"
}

# obs_prog VAR: the program the build named in $VAR, or a clear error.
obs_prog() {
  local v=${!1:-}
  [ -n "$v" ] && [ -x "$v" ] || obs_fail "\$$1 does not name a program (run through ctest, which sets it)"
  echo "$v"
}

# obs_cleanup: stops every part (SIGTERM, last started first) and removes the temp dir,
# or keeps it with the logs' tails after a failure. Returns 1 when a part still running
# did not exit 0 on SIGTERM (a crash or a sanitizer report at exit must not pass).
obs_cleanup() {
  local pid status bad=0
  for ((i = ${#OBS_PIDS[@]} - 1; i >= 0; i--)); do
    pid=${OBS_PIDS[i]}
    kill -TERM "$pid" 2>/dev/null || continue # gone already (and reaped by the test)
    wait "$pid" 2>/dev/null
    status=$?
    if [ "$status" != 0 ]; then
      echo "FAIL: ${OBS_NAMES[i]} (pid $pid) exited $status when stopped" >&2
      OBS_FAILED=1
      bad=1
    fi
  done
  if [ -n "$OBS_DIR" ]; then
    if [ "$OBS_FAILED" = 1 ]; then
      for f in "$OBS_DIR"/*.log; do
        [ -f "$f" ] || continue
        echo "--- tail of $f"
        tail -n 25 "$f"
      done
      echo "kept: $OBS_DIR"
    else
      rm -rf "$OBS_DIR"
    fi
  fi
  return $bad
}

# obs_setup: the temp dir ($OBS_DIR) and the exit trap.
obs_setup() {
  OBS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/obs.XXXXXX") || exit 1
  # shellcheck disable=SC2154 # rc is the trap's own
  trap 'rc=$?; [ $rc -ne 0 ] && [ $rc -ne 77 ] && OBS_FAILED=1; obs_cleanup || rc=1; exit $rc' EXIT
  trap 'exit 1' INT TERM
}

# obs_wait SECONDS WHAT CMD...: runs CMD every 0.1 s until it succeeds; fails the test
# after SECONDS naming WHAT.
obs_wait() {
  local secs=$1 what=$2
  shift 2
  local deadline=$(($(date +%s%3N) + secs * 1000))
  until "$@"; do
    if [ "$(date +%s%3N)" -gt "$deadline" ]; then
      obs_fail "waited ${secs}s for: $what"
    fi
    sleep 0.1
  done
}

# obs_ready_port FILE KEY: the port KEY of a ready file ({"port": N} or the simulators').
obs_ready_port() { jq -r ".$2 // empty" "$1" 2>/dev/null; }

# obs_start NAME CMD...: starts CMD in the background with output to $OBS_DIR/NAME.log,
# records its pid for the exit trap, and sets OBS_PID_<NAME> to it.
obs_start() {
  local name=$1
  shift
  "$@" >"$OBS_DIR/$name.log" 2>&1 &
  OBS_PIDS+=($!)
  OBS_NAMES+=("$name")
  printf -v "OBS_PID_${name//-/_}" '%s' "$!"
}

# obs_alive PID NAME: fails the test when the part died.
obs_alive() { kill -0 "$1" 2>/dev/null || obs_fail "$2 exited (log: $OBS_DIR/$2.log)"; }

# obs_listen_port NAME: the port Prometheus or Alertmanager (NAME's log), started on port
# 0, says it listens on (its "Listening on" line); empty until then.
obs_listen_port() {
  sed -n 's/.*msg="Listening on" address=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$OBS_DIR/$1.log" | head -n 1
}
obs_listening() { [ -n "$(obs_listen_port "$1")" ]; }

obs_start_sims() {
  obs_start sim "$(obs_prog OBS_SIMULATORS)" --ready-file "$OBS_DIR/sim.ready" --seed 15 \
    --log-level warn
  obs_wait 10 "simulators ready" test -s "$OBS_DIR/sim.ready"
  SIM_CONTROL=http://127.0.0.1:$(obs_ready_port "$OBS_DIR/sim.ready" control)
  SIM_CALCOM=http://127.0.0.1:$(obs_ready_port "$OBS_DIR/sim.ready" calcom)
  SIM_STRIPE=http://127.0.0.1:$(obs_ready_port "$OBS_DIR/sim.ready" stripe)
}

# obs_start_gateway CONFIG_TEMPLATE: the gateway on a config whose ${data_dir},
# ${calcom_url} and ${stripe_url} are filled in; sets GW_URL and points Retell's webhooks
# at it.
obs_start_gateway() {
  sed -e "s|\${data_dir}|$OBS_DIR/data|g" -e "s|\${calcom_url}|$SIM_CALCOM|g" \
    -e "s|\${stripe_url}|$SIM_STRIPE|g" "$1" >"$OBS_DIR/gateway.json"
  GW_ADMIN_TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  export GW_ADMIN_TOKEN
  obs_start gw "$(obs_prog OBS_GATEWAY)" --config "$OBS_DIR/gateway.json" \
    --ready-file "$OBS_DIR/gw.ready"
  obs_wait 10 "gateway ready" test -s "$OBS_DIR/gw.ready"
  GW_PORT=$(obs_ready_port "$OBS_DIR/gw.ready" port)
  GW_URL=http://127.0.0.1:$GW_PORT
  obs_http PUT "$SIM_CONTROL/control/retell/webhook" "{\"url\":\"$GW_URL/webhooks/retell\"}" >/dev/null
}

# obs_http METHOD URL [JSON]: the answer's body; fails the test on a non-2xx status.
obs_http() {
  local out status
  out=$(mktemp "$OBS_DIR/http.XXXXXX")
  status=$(curl -sS -o "$out" -w '%{http_code}' -X "$1" -H 'Content-Type: application/json' \
    ${3:+--data-binary "$3"} "$2") || status=000
  case $status in
    2??) cat "$out"; rm -f "$out" ;;
    *) obs_fail "$1 $2 answered $status: $(head -c 500 "$out")" ;;
  esac
}

# obs_booking_call ID START [DEPOSIT_CENTS]: a Retell call asking for a booking at START
# (ISO 8601), with a deposit when given, delivered to the gateway as call_analyzed; fails
# unless the gateway answered 204.
obs_booking_call() {
  local call
  call=$(jq -c --arg id "$1" --arg start "$2" --argjson dep "${3:-null}" \
    '.call_id = $id | .call_analysis.custom_analysis_data.booking_start = $start
     | if $dep then .call_analysis.custom_analysis_data.deposit_cents = $dep else . end' \
    "$OBS_ROOT/fixtures/retell/call_booking.json")
  obs_http POST "$SIM_CONTROL/control/retell/calls" "$call" >/dev/null
  local rep
  rep=$(obs_http POST "$SIM_CONTROL/control/retell/calls/$1/webhook" '{"event":"call_analyzed"}')
  [ "$(jq -c '[.deliveries[].status]' <<<"$rep")" = "[204]" ] ||
    obs_fail "webhook of $1 not acknowledged: $rep"
}

# obs_render_rules SCALE OUT_DIR: the shipped rule files with every duration (each `for:`
# and each range [..]) divided by SCALE, written in milliseconds; thresholds, expressions
# and labels untouched. Fails when a duration is written in a form it does not convert.
obs_render_rules() {
  local scale=$1 out=$2 f
  mkdir -p "$out"
  for f in "$OBS_ROOT"/deploy/prometheus/rules/*.rules.yml; do
    perl -pe '
      BEGIN { %u = (s => 1000, m => 60000, h => 3600000, d => 86400000); $k = '"$scale"'; }
      sub ms { my ($n, $unit) = @_; my $v = $n * $u{$unit} / $k;
               die "duration $n$unit / $k is not a whole number of ms\n" if $v != int($v);
               return $v . "ms"; }
      s/\[(\d+)([smhd])\]/"[" . ms($1, $2) . "]"/ge;
      s/^(\s*for:\s*)(\d+)([smhd])\s*$/$1 . ms($2, $3) . "\n"/e;
      die "unconverted duration: $_" if /\[(?!\d+ms\])\d/ || /offset\s/ || /^\s*for:(?!\s*\d+ms\s*$)/;
    ' "$f" >"$out/$(basename "$f")" || obs_fail "cannot render $f"
  done
}

# obs_admin METHOD PATH: the gateway's admin API with the admin token; the body.
obs_admin() {
  curl -sS -X "$1" -H "Authorization: Bearer $GW_ADMIN_TOKEN" "$GW_URL$2"
}

# obs_prom_query URL EXPR: the result array of an instant query.
obs_prom_query() {
  curl -sS --get --data-urlencode "query=$2" "$1/api/v1/query" | jq -c '.data.result'
}
