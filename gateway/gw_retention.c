/* gw_retention.c - the retention thread (contract in gw_retention.h). */
#include "gw_retention.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "cm_clock.h"
#include "cm_log.h"

/* Between two full batches: long enough for the committer to take the writer, short
 * enough that 100,000 rows go in a few seconds. */
#define BATCH_PAUSE_MS 20

struct gw_retention {
    gw_store_t *store;
    const gw_config_t *cfg;
    gw_obs_t *obs;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on mu: stop */
    int stop;          /* under mu */
    pthread_t thread;
};

/* Waits ms or until stop; 1 when stopping. */
static int pause_or_stop(gw_retention_t *r, int64_t ms)
{
    struct timespec dl = cm_clock_mono_deadline(ms);
    pthread_mutex_lock(&r->mu);
    while (!r->stop && pthread_cond_timedwait(&r->cv, &r->mu, &dl) != ETIMEDOUT)
        ;
    int stop = r->stop;
    pthread_mutex_unlock(&r->mu);
    return stop;
}

/* One pass: batches until one removes nothing, a failure or stop. */
static void pass(gw_retention_t *r)
{
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
        if (p.events + p.jobs + p.saga_steps == 0 || pause_or_stop(r, BATCH_PAUSE_MS))
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

static void *run(void *arg)
{
    gw_retention_t *r = arg;
    prctl(PR_SET_NAME, "gw-retention");
    do
        pass(r);
    while (!pause_or_stop(r, r->cfg->retention_interval_ms));
    return NULL;
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
    pthread_mutex_init(&r->mu, NULL);
    int e = cm_clock_cond_init(&r->cv);
    if (!e && (e = pthread_create(&r->thread, NULL, run, r)) != 0)
        pthread_cond_destroy(&r->cv);
    if (e) {
        cm_errf(err, "retention: cannot start its thread: %s", strerror(e));
        pthread_mutex_destroy(&r->mu);
        free(r);
        return CM_ESTATE;
    }
    *out = r;
    return CM_OK;
}

void gw_retention_stop(gw_retention_t **rp)
{
    if (!rp || !*rp)
        return;
    gw_retention_t *r = *rp;
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
    *rp = NULL;
}
