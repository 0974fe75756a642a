/* gw_retention.c - the retention thread (contract in gw_retention.h). */
#include "gw_retention.h"

#include <stdlib.h>

#include "cm_clock.h"
#include "cm_log.h"
#include "gw_periodic.h"

/* Between two full batches: long enough for the committer to take the writer, short
 * enough that 100,000 rows go in a few seconds. */
#define BATCH_PAUSE_MS 20

struct gw_retention {
    gw_store_t *store;
    const gw_config_t *cfg;
    gw_obs_t *obs;
    gw_periodic_t *timer;
};

/* One pass: batches until one removes nothing, a failure or stop. */
static void pass(gw_periodic_t *timer, void *arg)
{
    gw_retention_t *r = arg;
    int64_t t0 = cm_clock_mono_ms();
    int64_t cutoff = cm_clock_now_ms() - r->cfg->retention_max_age_ms;
    gw_purge_t sum = {0}, p;
    cm_err_t rc;
    for (;;) {
        rc = gw_store_purge(r->store, cutoff, r->cfg->retention_batch, &p);
        if (rc)
            break;
        sum.events += p.events;
        sum.jobs += p.jobs;
        sum.saga_steps += p.saga_steps;
        gw_counter_add(gw_metrics_with(r->obs->retention_purged, GW_LV("events")), p.events);
        gw_counter_add(gw_metrics_with(r->obs->retention_purged, GW_LV("jobs")), p.jobs);
        gw_counter_add(gw_metrics_with(r->obs->retention_purged, GW_LV("saga_steps")),
                       p.saga_steps);
        if (p.events + p.jobs + p.saga_steps == 0 || gw_periodic_sleep(timer, BATCH_PAUSE_MS))
            break;
    }
    gw_obs_count(r->obs->retention_runs, GW_LV(rc ? "error" : "ok"));
    char iso[25];
    cm_clock_iso8601(cutoff, iso);
    if (rc)
        CM_WARN("gw.retention", "purge of what is older than %s failed (%s); again in %lld ms", iso,
                cm_strerror(rc), (long long)r->cfg->retention_interval_ms);
    else if (sum.events + sum.jobs + sum.saga_steps)
        CM_INFO("gw.retention",
                "purged %d events, %d jobs and %d saga history lines older than %s in %lld ms",
                sum.events, sum.jobs, sum.saga_steps, iso, (long long)(cm_clock_mono_ms() - t0));
}

cm_err_t gw_retention_start(gw_store_t *store, const gw_config_t *cfg, gw_obs_t *obs,
                            gw_retention_t **out, char *err)
{
    *out = NULL;
    if (!cfg->retention_max_age_ms)
        return CM_OK;
    gw_retention_t *r = calloc(1, sizeof *r);
    if (!r)
        return CM_ENOMEM;
    r->store = store;
    r->cfg = cfg;
    r->obs = obs;
    cm_err_t rc =
        gw_periodic_start("gw-retention", cfg->retention_interval_ms, pass, r, &r->timer, err);
    if (rc) {
        free(r);
        return rc;
    }
    *out = r;
    return CM_OK;
}

void gw_retention_stop(gw_retention_t **rp)
{
    if (!rp || !*rp)
        return;
    gw_periodic_stop(&(*rp)->timer);
    free(*rp);
    *rp = NULL;
}
