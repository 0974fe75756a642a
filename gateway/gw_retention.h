/* gw_retention.h - the retention thread: purges what the gateway no longer needs to keep
 * (gw_store_purge: old events whose jobs finished, with those jobs, and ended sagas'
 * histories), so raw webhooks, which hold callers' names, e-mail addresses, phone numbers
 * and transcripts, are not kept for ever.
 *
 * One pass every retention_interval_ms (the first at start): the cutoff is the clock's now
 * (cm_clock) minus retention_max_age_ms; batches of retention_batch rows, each its own
 * short transaction, until one removes nothing, with a pause between full batches so that
 * intake's commits are never queued behind a long purge. Dead letters stay until handled
 * (replayed or discarded). Counts go to gw_retention_purged_total{kind} and every pass to
 * gw_retention_runs_total{result}; a failed pass is logged and tried again at the next.
 * On PostgreSQL every instance purges: batches may overlap, which costs nothing.
 */
#ifndef GW_RETENTION_H
#define GW_RETENTION_H

#include "cm_err.h"
#include "gw_config.h"
#include "gw_obs.h"
#include "gw_store.h"

typedef struct gw_retention gw_retention_t;

/* Starts the thread; store, cfg and obs are borrowed and must outlive gw_retention_stop.
 * With retention_max_age_ms 0 nothing is started and *out is NULL (CM_OK). CM_ENOMEM, or
 * CM_ESTATE when the thread cannot start (err says why). */
cm_err_t gw_retention_start(gw_store_t *store, const gw_config_t *cfg, gw_obs_t *obs,
                            gw_retention_t **out, char *err) CM_WUR;
/* Stops the thread (a batch in progress finishes first), frees, sets *r to NULL. Accepts
 * NULL and *r NULL. */
void gw_retention_stop(gw_retention_t **r);

#endif
