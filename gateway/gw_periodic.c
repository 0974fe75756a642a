/* gw_periodic.c - a thread running a pass every interval (contract in gw_periodic.h). */
#include "gw_periodic.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "cm_clock.h"

struct gw_periodic {
    char name[16];
    int64_t interval_ms;
    gw_periodic_fn fn;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on mu: stop, or the first pass ended */
    int stop;          /* under mu */
    int passes;        /* under mu */
    int delayed;       /* the first pass after one interval */
    pthread_t thread;
};

int gw_periodic_sleep(gw_periodic_t *p, int64_t ms)
{
    struct timespec dl = cm_clock_mono_deadline(ms);
    pthread_mutex_lock(&p->mu);
    while (!p->stop && pthread_cond_timedwait(&p->cv, &p->mu, &dl) != ETIMEDOUT)
        ;
    int stop = p->stop;
    pthread_mutex_unlock(&p->mu);
    return stop;
}

int gw_periodic_wait_first(gw_periodic_t *p, int64_t within_ms)
{
    struct timespec dl = cm_clock_mono_deadline(within_ms);
    pthread_mutex_lock(&p->mu);
    while (!p->passes && !p->stop && pthread_cond_timedwait(&p->cv, &p->mu, &dl) != ETIMEDOUT)
        ;
    int done = p->passes > 0;
    pthread_mutex_unlock(&p->mu);
    return done;
}

static void *run(void *arg)
{
    gw_periodic_t *p = arg;
    prctl(PR_SET_NAME, p->name);
    if (p->delayed && gw_periodic_sleep(p, p->interval_ms))
        return NULL;
    do {
        p->fn(p, p->arg);
        pthread_mutex_lock(&p->mu);
        p->passes++;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    } while (!gw_periodic_sleep(p, p->interval_ms));
    return NULL;
}

static cm_err_t start(const char *name, int64_t interval_ms, int delayed, gw_periodic_fn fn,
                      void *arg, gw_periodic_t **out, char *err)
{
    *out = NULL;
    if (interval_ms <= 0) {
        cm_errf(err, "%s: the interval must be positive", name);
        return CM_EINVAL;
    }
    gw_periodic_t *p = calloc(1, sizeof *p);
    if (!p)
        return CM_ENOMEM;
    snprintf(p->name, sizeof p->name, "%s", name);
    p->interval_ms = interval_ms;
    p->fn = fn;
    p->arg = arg;
    p->delayed = delayed;
    pthread_mutex_init(&p->mu, NULL);
    int e = cm_clock_cond_init(&p->cv);
    if (!e && (e = pthread_create(&p->thread, NULL, run, p)) != 0)
        pthread_cond_destroy(&p->cv);
    if (e) {
        cm_errf(err, "%s: cannot start its thread: %s", name, strerror(e));
        pthread_mutex_destroy(&p->mu);
        free(p);
        return CM_ESTATE;
    }
    *out = p;
    return CM_OK;
}

cm_err_t gw_periodic_start(const char *name, int64_t interval_ms, gw_periodic_fn fn, void *arg,
                           gw_periodic_t **out, char *err)
{
    return start(name, interval_ms, 0, fn, arg, out, err);
}

cm_err_t gw_periodic_start_delayed(const char *name, int64_t interval_ms, gw_periodic_fn fn,
                                   void *arg, gw_periodic_t **out, char *err)
{
    return start(name, interval_ms, 1, fn, arg, out, err);
}

void gw_periodic_stop(gw_periodic_t **pp)
{
    if (!pp || !*pp)
        return;
    gw_periodic_t *p = *pp;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
    *pp = NULL;
}
