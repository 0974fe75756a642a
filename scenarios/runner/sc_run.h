/* sc_run.h - one scenario from start to teardown.
 *
 *   temp dir (mkdtemp, with an INFO file) -> simulators (ready file) -> gateway config
 *   expanded into DIR/gateway.json -> gateway with GW_ADMIN_TOKEN and the scenario's env
 *   (ready file) -> PUT /control/retell/webhook -> steps -> SIGTERM both process groups
 *   (gateway first) -> temp dir removed unless kept or failed.
 *
 * A child that fails to start, dies during the scenario, or does not exit cleanly on
 * SIGTERM fails the scenario: crashes and sanitizer reports must not hide behind a
 * passing expectation.
 *
 * Thread-safe in the sense that matters for a parallel runner: everything lives in the
 * run's own context; it only reads opts and sc. (Process-wide: cm_http_global_init must
 * have been called, and sc_signal_install for Ctrl-C handling.)
 */
#ifndef SC_RUN_H
#define SC_RUN_H

#include <limits.h>

#include "rp_result.h"
#include "sc_opts.h"
#include "sc_scenario.h"

/* Deadlines the runner does not take from the scenario. */
#define SC_READY_TIMEOUT_MS 10000
#define SC_STOP_GRACE_MS 5000
#define SC_LOG_TAIL_LINES 25

/* Runs sc and records the outcome, the time and the log in out. kept receives the temp dir
 * when it was kept ("" otherwise). Returns out->status. */
rp_status_t sc_run_scenario(const sc_opts_t *o, const sc_scenario_t *sc, rp_case_t *out,
                            char kept[PATH_MAX]);

/* For the gateway step (sc_steps.c); each records its own failure in ctx.
 * start: refuses while the gateway runs; expands the config (config_rel, or the
 * scenario's when NULL) into the temp dir, starts the gateway on the same data dir
 * (a new port: ${gateway_url} and ${gateway_port} change), waits for its ready file and
 * points the Retell simulator's webhooks at it.
 * stop: SIGTERM, it must exit with status 0 within SC_STOP_GRACE_MS.
 * kill: SIGKILL to its process group, returns once it is gone.
 * label (the step) starts their failure messages. */
struct sc_ctx;
cm_err_t sc_run_gateway_start(struct sc_ctx *ctx, const char *config_rel) CM_WUR;
cm_err_t sc_run_gateway_stop(struct sc_ctx *ctx, const char *label) CM_WUR;
cm_err_t sc_run_gateway_kill(struct sc_ctx *ctx, const char *label) CM_WUR;
/* wait_exit: waits up to within_ms for a gateway that was allowed to die (expect_exit) to
 * end by itself, reaps it and logs how it ended. */
cm_err_t sc_run_gateway_wait_exit(struct sc_ctx *ctx, const char *label, int64_t within_ms) CM_WUR;

#endif
