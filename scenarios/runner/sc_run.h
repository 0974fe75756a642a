/* sc_run.h - one scenario from start to teardown.
 *
 *   temp dir (mkdtemp, with an INFO file) -> simulators (ready file) -> gateway config
 *   expanded into DIR/gateway.json -> gateway with GW_ADMIN_TOKEN and the scenario's env
 *   (ready file; with --gateway-cmd a gateway not ours, with the contract environment,
 *   ready on its health path) -> PUT /control/retell/webhook -> steps -> "finally" steps (always,
 *   once the parts run) -> SIGTERM both process groups (gateway first) -> temp dir removed
 *   unless kept or failed. The parts themselves are started and stopped by sc_parts. With
 *   --attach nothing is started or stopped: the run attaches, notes where its counts begin
 *   and undoes its fault rules and forced breakers after "finally" (sc_attach.h).
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

/* Runs sc on store (one of o->stores, or SC_STORE_AS_WRITTEN: what sc says) and records
 * the outcome, the time and the log in out. kept receives the temp dir when it was kept
 * ("" otherwise). Returns out->status. */
rp_status_t sc_run_scenario(const sc_opts_t *o, const sc_scenario_t *sc, sc_store_t store,
                            rp_case_t *out, char kept[PATH_MAX]);

#endif
