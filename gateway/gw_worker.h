/* gw_worker.h - background workers that run the queued jobs.
 *
 * A worker claims a due job from the store, processes it, and records the outcome:
 * done, retried later with exponential back-off and full jitter, or dead-lettered
 * (permanent failure, or attempts used up). Webhook handlers only store and wake the
 * workers; nothing slow happens before the acknowledgement.
 * An outcome the store refuses is tried again a few times over a bounded time; if it
 * still cannot be stored it is logged and counted (gw_job_outcomes_unstored_total), and
 * the job, leased at its claim (cfg->job_lease_ms), runs again once its lease expires:
 * between jobs the lanes renew the leases of the jobs they hold and requeue the others.
 * gw_worker_notify() is safe from any thread; start/stop from the main thread only.
 */
#ifndef GW_WORKER_H
#define GW_WORKER_H

#include <stdint.h>

#include "cm_err.h"
#include "cm_rand.h"
#include "gw_config.h"
#include "gw_obs.h"
#include "gw_outbound.h"
#include "gw_store.h"

typedef struct gw_worker gw_worker_t;

/* Borrowed: cfg, store, ob and obs must outlive the worker. */
cm_err_t gw_worker_start(const gw_config_t *cfg, gw_store_t *store, gw_outbound_t *ob,
                         gw_obs_t *obs, gw_worker_t **out) CM_WUR;
/* Wakes the workers: a new job may be due. */
void gw_worker_notify(gw_worker_t *w);
/* Stops after the job in hand (if any) and frees; sets *w to NULL. Accepts NULL. */
void gw_worker_stop(gw_worker_t **w);

/* The back-off before attempt n+1 after n failed attempts (n >= 1): uniform in
 * [0, min(cap, base * factor^(n-1))] ("full jitter"). Exposed for tests. */
int64_t gw_worker_backoff_ms(const gw_config_t *cfg, int attempts, cm_rand_t *rng);

#endif
