/* sc_monitor.h - synthetic monitoring: the selected scenarios run against attached parts
 * on a schedule, and their results are served as Prometheus metrics, as the blackbox
 * exporter serves its probes'.
 *
 *   scenario --attach gateway=URL,control=URL --monitor --every 5m --listen 0.0.0.0:9464
 *            --tag monitor scenarios/
 *
 * Every --every (measured from the start of one cycle to the next; a cycle that takes
 * longer starts the next at once) the scenarios run one after the other, as --attach runs
 * them (sc_attach.h). GET /metrics answers, per scenario (labels scenario = its name,
 * file = its path):
 *   scenario_success                     1 when its last run passed, 0 when it failed
 *   scenario_duration_seconds            how long its last run took
 *   scenario_last_run_timestamp_seconds  when its last run ended (Unix time)
 *   scenario_runs_total{result}          runs by result: passed, failed, errored, skipped
 * and for the monitor itself scenario_monitor_cycles_total,
 * scenario_monitor_last_cycle_timestamp_seconds and scenario_monitor_every_seconds. A
 * skipped scenario (not runnable attached) has no success series, only its runs_total. A
 * run that fails, or a part that does not answer, is a result like any other: the monitor
 * keeps going. SIGTERM or SIGINT ends the current scenario (its "finally" and undo still
 * run), stops the server and returns. GET /health answers 200 while it runs.
 *
 * The only long-lived part of the runner; runs on main's thread (the server has its own).
 */
#ifndef SC_MONITOR_H
#define SC_MONITOR_H

#include <stddef.h>

#include "sc_opts.h"
#include "sc_scenario.h"

/* Runs until a signal, or o->cycles cycles. Prints one line per scenario run and one per
 * cycle on stdout. Returns 0 after a clean stop, 2 when the metrics server cannot listen
 * (err says why, SC_ERR_LEN bytes). The scenarios are borrowed. */
int sc_monitor_run(const sc_opts_t *o, sc_scenario_t *const *scenarios, size_t n, char *err);

#endif
