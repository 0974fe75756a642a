/* sc_parts.h - the parts a scenario drives (simulators, chaos proxy, gateway) as child
 * processes of one run: started in the run's temp dir with ready files, attached to when
 * they run already (--attach), checked for unexpected deaths, stopped.
 *
 * Used by sc_run (set-up and teardown) and by the gateway step (kill, stop, start,
 * restart, wait_exit), so the steps do not depend on the run's lifecycle.
 * Every function records its own failure in ctx (sc_log.h) and returns CM_EINVAL (or the
 * failure's code); label, where taken, is the step's and starts the message.
 * Not thread-safe: runs on the scenario's own thread.
 */
#ifndef SC_PARTS_H
#define SC_PARTS_H

#include <stdint.h>

#include "sc_ctx.h"

/* Deadlines the runner does not take from the scenario. */
#define SC_READY_TIMEOUT_MS 10000
#define SC_STOP_GRACE_MS 5000
#define SC_LOG_TAIL_LINES 25

/* Starts the simulators (ready file; ${retell_url}, ${calcom_url}, ${stripe_url},
 * ${control_url} and their ports are set). */
cm_err_t sc_parts_start_simulators(sc_ctx_t *ctx) CM_WUR;

/* Starts the chaos proxy with one link per proxied connection of the scenario. The
 * Cal.com and Stripe links take over ${calcom_url} / ${stripe_url} (what gateway configs
 * use); the runner's own requests still go straight to the simulators. */
cm_err_t sc_parts_start_chaos(sc_ctx_t *ctx) CM_WUR;

/* Attach mode: takes the URLs of parts already running and the admin token
 * ($SC_ADMIN_TOKEN or $GW_ADMIN_TOKEN), points the Retell simulator at the gateway when
 * its control port is known. */
cm_err_t sc_parts_attach(sc_ctx_t *ctx) CM_WUR;

/* inst: which of the scenario's gateway instances (0 .. instances-1); instance 0 is the one
 * ${gateway_url} and "to": "gateway" reach, instance k is ${gateway_url_k} too. Instances
 * share the admin token; each has its own ${data_dir} (DIR/data, DIR/data1, ...: a shared
 * store is a database server the config names) and ${instance} in its config.
 * start: refuses while that instance runs; expands the config (config_rel, or the
 * scenario's when NULL) into the temp dir, starts it on the same data dir as before
 * (a new port: the URL variables change), waits for its ready file, re-points the chaos
 * proxy's gateway link (every running instance, in turn) and the simulators' webhooks.
 * stop: SIGTERM, it must exit with status 0 within SC_STOP_GRACE_MS.
 * kill: SIGKILL to its process group, returns once it is gone.
 * wait_exit: waits up to within_ms for a gateway that was allowed to die (expect_exit) to
 * end by itself, reaps it and logs how it ended.
 * With --gateway-cmd the gateway is not ours (docs/contract.md): start runs `sh -c
 * TEMPLATE` with the contract environment (BB_PORT a free port, BB_DATA_DIR the instance's
 * data dir, the simulators' URLs, keys and secrets) instead of writing a config, and waits
 * until GET --gateway-health answers 200 (SC_READY_TIMEOUT_MS); stop (and sc_parts_stop at
 * teardown) does not judge its exit status, only that it was still running. */
cm_err_t sc_parts_gateway_start(sc_ctx_t *ctx, int inst, const char *config_rel) CM_WUR;
cm_err_t sc_parts_gateway_stop(sc_ctx_t *ctx, int inst, const char *label) CM_WUR;
cm_err_t sc_parts_gateway_kill(sc_ctx_t *ctx, int inst, const char *label) CM_WUR;
cm_err_t sc_parts_gateway_wait_exit(sc_ctx_t *ctx, int inst, const char *label,
                                    int64_t within_ms) CM_WUR;

/* The log actor of gateway instance inst: "gw", "gw1", "gw2", ... (into out). */
const char *sc_parts_gw_actor(int inst, char out[8]);

/* A part that died (p->pid set, no longer running) fails the scenario with how it ended
 * and its log's tail; when names the moment ("during steps[3]"). CM_OK while it runs. */
cm_err_t sc_parts_check_alive(sc_ctx_t *ctx, sc_proc_t *p, const char *when) CM_WUR;

/* Stops a part at teardown (SIGTERM, then the grace period); an unclean exit fails the
 * scenario. Nothing when it is not running. */
void sc_parts_stop(sc_ctx_t *ctx, sc_proc_t *p, const char *actor);

#endif
