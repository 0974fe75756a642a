# tests/monitor/lib.sh - shared by the attach-mode and monitor tests (sourced, bash): one
# long-lived gateway and simulators, as a deployment, that the scenario runner attaches to.
# Builds on tests/obs/lib.sh (temp dir, parts started on free ports and stopped at exit,
# waits with deadlines); the runner comes from $MON_SCENARIO (tests/monitor/CMakeLists.txt).
. "$(dirname "${BASH_SOURCE[0]}")/../obs/lib.sh"

command -v jq >/dev/null || obs_skip "jq not found (ci/install-deps installs it)"
command -v curl >/dev/null || obs_skip "curl not found (ci/install-deps installs it)"
MON_RUNNER=$(obs_prog MON_SCENARIO)

# mon_deploy: the simulators and a gateway on fixtures/gateway/default.json (the config
# the monitor scenarios are written for); sets GW_URL, SIM_*, GW_ADMIN_TOKEN and ATTACH.
mon_deploy() {
  obs_start_sims
  obs_start_gateway "$OBS_ROOT/fixtures/gateway/default.json"
  ATTACH="gateway=$GW_URL,control=$SIM_CONTROL,calcom=$SIM_CALCOM,stripe=$SIM_STRIPE"
  ATTACH+=",retell=http://127.0.0.1:$(obs_ready_port "$OBS_DIR/sim.ready" retell)"
  export SC_ADMIN_TOKEN=$GW_ADMIN_TOKEN
}

# mon_queue_idle: the gateway has no job pending or running.
mon_queue_idle() {
  [ "$(obs_admin GET /admin/queue | jq -c '[.pending, .running]')" = "[0,0]" ]
}

# mon_check_clean WHAT: the deployment is as a run must leave it: ready "ok", both
# breakers closed, the queue empty (waited for: the last job is marked done just after its
# saga ends), no job dead, no fault rule left on the simulators. Fails naming what is not.
mon_check_clean() {
  local what=$1 ready breakers faults queue
  obs_wait 15 "the gateway's queue empty after $what" mon_queue_idle
  ready=$(curl -sS "$GW_URL/health/ready")
  [ "$(jq -r .status <<<"$ready")" = ok ] || obs_fail "after $what: /health/ready is $ready"
  breakers=$(obs_admin GET /admin/breakers | jq -c '[.calcom.state, .stripe.state]')
  [ "$breakers" = '["closed","closed"]' ] ||
    obs_fail "after $what: breakers calcom, stripe are $breakers"
  queue=$(obs_admin GET /admin/queue)
  [ "$(jq -c '[.pending, .running, .dead]' <<<"$queue")" = "[0,0,0]" ] ||
    obs_fail "after $what: /admin/queue is $queue"
  faults=$(obs_http GET "$SIM_CONTROL/control/faults" | jq .count)
  [ "$faults" = 0 ] || obs_fail "after $what: $faults fault rule(s) left on the simulators"
  obs_log "after $what: ready ok, breakers closed, queue $(jq -c . <<<"$queue"), no fault rule"
}
