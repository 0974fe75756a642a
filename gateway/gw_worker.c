/* gw_worker.c - job loop and the processing of each job kind. */
#include "gw_worker.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>

#include "cm_clock.h"
#include "cm_http_client.h"
#include "cm_json.h"
#include "cm_log.h"
#include "gw_calcom.h"
#include "gw_saga.h"
#include "gw_span.h"
#include "gw_trace.h"

#define MAX_LANES 16
/* Storing a job's outcome is tried this many times, waiting OUTCOME_BACKOFF_MS, then twice
 * that, ... in between (700 ms in all, plus the store's busy timeout per try): long enough
 * to ride out a lock held by another process or a transient I/O error, short enough that a
 * lane is not lost to a store that stays broken. After that the job's lease brings it back. */
#define OUTCOME_TRIES 4
#define OUTCOME_BACKOFF_MS 100

/* One worker thread with what it must not share: its HTTP client (keep-alive) and its
 * random generator (seeded from the config seed and the lane number). */
typedef struct {
    struct gw_worker *w;
    pthread_t thread;
    int started;
    cm_rand_t rng;
    cm_http_client_t *http;
    const gw_config_t *cfg;
    gw_store_t *store;
    gw_outbound_t *ob;
    gw_obs_t *obs;
    char traceparent[GW_TRACEPARENT_LEN + 1]; /* the current job's trace */
    int64_t retry_hint_ms;                    /* from the provider (Retry-After, breaker) */
    int waiting;      /* the job waits for a provider (breaker open, rate limited): no failure */
    int last_attempt; /* the current job will not be retried after this run */
    int64_t job_id;   /* the job in hand, 0 for none; under w->mu (the lease renewal reads it) */
    /* The current job's call whose state goes with its dead letter ("" for none): a saga's
     * job that ends there gives the call its outcome, "failed". */
    char dead_call[sizeof(((gw_job_t *)0)->entity_id)];
    const char *dead_call_tenant; /* borrowed from the configuration */
    /* The tenant of the lane's last job ("" before the first): with several tenants, the
     * next claim prefers another's (gw_store_done_and_claim). */
    char last_tenant[sizeof(((gw_job_t *)0)->tenant_id)];
} lane_t;

struct gw_worker {
    const gw_config_t *cfg;
    gw_store_t *store;
    gw_outbound_t *ob;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
    /* Bumped by every notify; a lane waits only while it is unchanged since its last
     * claim, so a wake-up that lands between claim and wait is never lost. */
    uint64_t gen;
    int64_t next_lease_check_ms; /* monotonic; when a lane next renews and reclaims leases */
    lane_t lanes[MAX_LANES];
    unsigned nlanes;
    int listening; /* registered for the store's notices (gw_store_on_notice) */
};

/* What a job handler tells the loop. */
typedef enum { JOB_DONE, JOB_RETRY, JOB_DEAD } job_result_t;

int64_t gw_worker_backoff_ms(const gw_config_t *cfg, int attempts, cm_rand_t *rng)
{
    double ceiling = (double)cfg->backoff_base_ms * pow(cfg->backoff_factor, attempts - 1);
    if (ceiling > (double)cfg->backoff_cap_ms)
        ceiling = (double)cfg->backoff_cap_ms;
    return (int64_t)cm_rand_below(rng, (uint64_t)ceiling + 1);
}

static gw_saga_env_t saga_env(lane_t *w)
{
    return (gw_saga_env_t){.last_attempt = w->last_attempt,
                           .cfg = w->cfg,
                           .store = w->store,
                           .ob = w->ob,
                           .obs = w->obs,
                           .http = w->http,
                           .rng = &w->rng,
                           .traceparent = w->traceparent};
}

static job_result_t saga_result(lane_t *w, gw_saga_result_t r, const gw_saga_env_t *env)
{
    w->retry_hint_ms = env->retry_hint_ms;
    w->waiting = r == GW_SAGA_RETRY && env->waiting;
    return r == GW_SAGA_DONE ? JOB_DONE : r == GW_SAGA_RETRY ? JOB_RETRY : JOB_DEAD;
}

/* A call_analyzed event: when the analysis carries a booking request, run (or resume) the
 * call's booking saga. Idempotent: a finished saga is left alone, so a redelivered or
 * replayed job books and charges nothing twice. */
static job_result_t run_call_analyzed(lane_t *w, const json_t *ev, char *err)
{
    const char *call_id = cm_json_str(ev, "call.call_id", NULL);
    const char *agent_id = cm_json_str(ev, "call.agent_id", NULL);
    const json_t *cad = cm_json_path(ev, "call.call_analysis.custom_analysis_data");
    const gw_tenant_t *t = gw_config_tenant_by_agent(w->cfg, agent_id);
    if (!call_id) {
        cm_errf(err, "event without call.call_id");
        return JOB_DEAD;
    }
    if (!t) {
        /* Dead-lettered, not dropped: once the agent is configured, a replay books it. */
        cm_errf(err, "no tenant has agent_id \"%s\"", agent_id ? agent_id : "(none)");
        return JOB_DEAD;
    }
    if (!cm_json_str(cad, "booking_start", NULL)) {
        CM_INFO("gw.worker", "call %s asked for no booking", call_id);
        return gw_store_entity_set(w->store, "call", call_id, t->id, "no_booking", NULL, NULL,
                                   cm_clock_now_ms())
                   ? JOB_RETRY
                   : JOB_DONE;
    }
    gw_saga_env_t env = saga_env(w);
    gw_saga_result_t r = gw_saga_run(&env, t, ev, err);
    /* If this run dead-letters the job (a permanent failure, or a retry past max_attempts),
     * the call's "failed" state is written in the dead letter's transaction by finish():
     * written apart, a reader saw the job dead and the call not, and a failed write left
     * the call's view wrong for good; together, a failed write leaves the job to run again. */
    if (r != GW_SAGA_DONE && env.call_open) {
        snprintf(w->dead_call, sizeof w->dead_call, "%s", call_id);
        w->dead_call_tenant = t->id;
    }
    return saga_result(w, r, &env);
}

/* Call lifecycle flags, merged in any order (see gw_store_entity_merge). */
enum { CALL_STARTED = 1, CALL_ENDED = 2, CALL_ANALYZED = 4 };

static job_result_t run_call_event(lane_t *w, const gw_job_t *job, const json_t *ev, char *err)
{
    const char *event = cm_json_str(ev, "event", "");
    int64_t flag = !strcmp(event, "call_started")    ? CALL_STARTED
                   : !strcmp(event, "call_ended")    ? CALL_ENDED
                   : !strcmp(event, "call_analyzed") ? CALL_ANALYZED
                                                     : 0;
    if (gw_store_entity_merge(w->store, "call", job->entity_id, job->tenant_id, NULL, 0, NULL, flag,
                              cm_clock_now_ms())) {
        cm_errf(err, "store: cannot record %s", event);
        return JOB_RETRY;
    }
    return JOB_DONE;
}

/* Booking lifecycle from Cal.com webhooks. The ranks make the final state independent of
 * delivery order: a cancellation is final whatever arrives after it. */
static job_result_t run_calcom(lane_t *w, const gw_job_t *job, const json_t *ev, char *err)
{
    static const struct {
        const char *trigger, *state;
        int rank;
    } map[] = {
        {"BOOKING_REQUESTED", "requested", 1}, {"BOOKING_CREATED", "accepted", 2},
        {"BOOKING_PAID", "paid", 3},           {"BOOKING_RESCHEDULED", "accepted", 2},
        {"MEETING_ENDED", "ended", 4},         {"BOOKING_REJECTED", "rejected", 5},
        {"BOOKING_CANCELLED", "cancelled", 5},
    };
    const char *trigger = cm_json_str(ev, "triggerEvent", "");
    const char *state = NULL;
    int rank = 0;
    int64_t now = cm_clock_now_ms();
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(trigger, map[i].trigger)) {
            state = map[i].state;
            rank = map[i].rank;
        }
    /* Someone booked, moved or cancelled: the cached availability is wrong now, in every
     * instance (the webhook came to this one only). */
    int64_t et = cm_json_int(ev, "payload.eventTypeId", 0);
    if (et > 0)
        gw_outbound_slots_changed(w->ob, NULL, et);
    cm_err_t rc = gw_store_entity_merge(w->store, "booking", job->entity_id, job->tenant_id, state,
                                        rank, NULL, 0, now);
    /* A reschedule creates a new uid; the old booking is over, linked to the new one. */
    const char *old = cm_json_str(ev, "payload.rescheduleUid",
                                  cm_json_str(ev, "payload.rescheduledFromUid", NULL));
    if (!rc && !strcmp(trigger, "BOOKING_RESCHEDULED") && old && strcmp(old, job->entity_id))
        rc = gw_store_entity_merge(w->store, "booking", old, job->tenant_id, "rescheduled", 5,
                                   job->entity_id, 0, now);
    if (rc) {
        cm_errf(err, "store: cannot record %s", trigger);
        return JOB_RETRY;
    }
    if (!strcmp(trigger, "BOOKING_CANCELLED")) {
        gw_saga_env_t env = saga_env(w);
        return saga_result(w, gw_saga_booking_cancelled(&env, job->entity_id, err), &env);
    }
    return JOB_DONE;
}

/* Payment lifecycle from Stripe events: a success outranks a failure (a second card can
 * succeed after a decline), a refund outranks a success. */
static job_result_t run_stripe(lane_t *w, const gw_job_t *job, const json_t *ev, char *err)
{
    static const struct {
        const char *type, *state;
        int rank;
    } map[] = {
        {"payment_intent.created", "created", 1},
        {"payment_intent.requires_action", "requires_action", 2},
        {"payment_intent.processing", "processing", 3},
        {"payment_intent.payment_failed", "failed", 4},
        {"payment_intent.amount_capturable_updated", "requires_capture", 5},
        {"payment_intent.canceled", "canceled", 6},
        {"payment_intent.succeeded", "succeeded", 7},
        {"charge.succeeded", "succeeded", 7},
        {"charge.refunded", "refunded", 8},
    };
    const char *type = cm_json_str(ev, "type", "");
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(type, map[i].type))
            continue;
        if (gw_store_entity_merge(w->store, "payment", job->entity_id, job->tenant_id, map[i].state,
                                  map[i].rank, NULL, 0, cm_clock_now_ms())) {
            cm_errf(err, "store: cannot record %s", type);
            return JOB_RETRY;
        }
        return JOB_DONE;
    }
    CM_DEBUG("gw.worker", "stripe %s: no state change", type);
    return JOB_DONE;
}

static job_result_t run_job(lane_t *w, const gw_job_t *job, char *err)
{
    json_t *ev = NULL;
    if (cm_json_parse(job->body.data, job->body.len, job->body.toobig, &ev, err) != CM_OK)
        return JOB_DEAD; /* it parsed at ingest, so this is corruption: never retry */
    job_result_t res = JOB_DEAD;
    if (!strcmp(job->kind, "retell.call_analyzed")) {
        res = run_call_event(w, job, ev, err);
        if (res == JOB_DONE)
            res = run_call_analyzed(w, ev, err);
    } else if (!strcmp(job->kind, "retell.call_event")) {
        res = run_call_event(w, job, ev, err);
    } else if (!strcmp(job->kind, "calcom.booking")) {
        res = run_calcom(w, job, ev, err);
    } else if (!strcmp(job->kind, "stripe.event")) {
        res = run_stripe(w, job, ev, err);
    } else {
        cm_errf(err, "unknown job kind \"%s\"", job->kind);
    }
    json_decref(ev);
    return res;
}

/* Waits ms, or less when the worker stops. Returns 1 when it is stopping. Notifications
 * (new work) do not end the wait. */
static int pause_unless_stopping(gw_worker_t *w, int64_t ms)
{
    struct timespec ts = cm_clock_mono_deadline(ms);
    pthread_mutex_lock(&w->mu);
    while (!w->stopping)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0)
            break;
    int stopping = w->stopping;
    pthread_mutex_unlock(&w->mu);
    return stopping;
}

typedef enum { OUT_DONE, OUT_RETRY, OUT_DEAD } outcome_t;

static cm_err_t store_outcome(lane_t *w, int64_t job_id, outcome_t out, int64_t retry_at_ms,
                              const char *text)
{
    int64_t now = cm_clock_now_ms();
    switch (out) {
    case OUT_RETRY:
        return gw_store_job_retry(w->store, job_id, retry_at_ms, text, now);
    case OUT_DEAD:
        if (w->dead_call[0])
            return gw_store_job_dead_call(w->store, job_id, text, w->dead_call, w->dead_call_tenant,
                                          "failed", now);
        return gw_store_job_dead(w->store, job_id, text, now);
    default:
        return gw_store_job_done(w->store, job_id, now);
    }
}

/* Decides and stores the job's outcome. Returns CM_OK, or the store's error when the
 * outcome could not be stored on any try (or the worker stopped between tries): the job
 * is then left 'running' under its lease, which ends once this lane lets go of it, and the
 * lease check requeues it (a restart before that requeues it too). */
static cm_err_t finish(lane_t *w, const gw_job_t *job, job_result_t res, const char *err)
{
    static const char *const out_name[] = {"done", "retry", "dead"};
    char reason[CM_ERR_LEN + 64];
    const char *text = err;
    int64_t retry_at = 0;
    outcome_t out = OUT_DONE;
    /* Waiting for an open breaker is not a failed attempt: the saga's own deadline ends
     * that wait (needs_human), so it must not be cut short by max_attempts. */
    if (res == JOB_RETRY && job->attempts >= w->cfg->max_attempts && !w->waiting) {
        snprintf(reason, sizeof reason, "gave up after %d attempts: %s", job->attempts, err);
        CM_WARN("gw.worker", "job %lld dead-lettered: %s", (long long)job->id, reason);
        out = OUT_DEAD;
        text = reason;
    } else if (res == JOB_RETRY) {
        int64_t delay = gw_worker_backoff_ms(w->cfg, job->attempts, &w->rng);
        /* The provider said when (Retry-After, breaker wait): no earlier than that. */
        if (delay < w->retry_hint_ms)
            delay = w->retry_hint_ms;
        CM_INFO("gw.worker", "job %lld attempt %d failed (%s); retry in %lld ms",
                (long long)job->id, job->attempts, err, (long long)delay);
        out = OUT_RETRY;
        retry_at = cm_clock_now_ms() + delay;
    } else if (res == JOB_DEAD) {
        CM_WARN("gw.worker", "job %lld dead-lettered: %s", (long long)job->id, err);
        out = OUT_DEAD;
    }
    cm_err_t rc = store_outcome(w, job->id, out, retry_at, text);
    for (int i = 1; rc && i < OUTCOME_TRIES; i++) {
        CM_WARN("gw.worker", "job %lld: outcome %s not stored (try %d of %d): %s",
                (long long)job->id, out_name[out], i, OUTCOME_TRIES, cm_strerror(rc));
        if (pause_unless_stopping(w->w, (int64_t)OUTCOME_BACKOFF_MS << (i - 1)))
            break;
        rc = store_outcome(w, job->id, out, retry_at, text);
    }
    if (rc) {
        CM_ERROR("gw.worker",
                 "job %lld: outcome %s not stored: %s; it stays running until its lease "
                 "expires, then runs again",
                 (long long)job->id, out_name[out], cm_strerror(rc));
        gw_obs_count(w->obs->unstored, GW_LV(out_name[out]));
    }
    return rc;
}

/* finish() for a job that ended done, known by its id alone. */
static cm_err_t finish_done(lane_t *lane, int64_t job_id)
{
    gw_job_t job = {.id = job_id};
    return finish(lane, &job, JOB_DONE, "");
}

/* The lease check, done by whichever lane comes by first once per third of a lease: it
 * renews the leases of the jobs the lanes hold (a job may run longer than one lease) and
 * requeues running jobs nobody holds whose lease ran out (their outcome was not stored). */
static void check_leases(lane_t *lane)
{
    gw_worker_t *w = lane->w;
    int64_t held[MAX_LANES], mono = cm_clock_mono_ms();
    size_t n = 0;
    pthread_mutex_lock(&w->mu);
    int due = mono >= w->next_lease_check_ms;
    if (due) {
        w->next_lease_check_ms = mono + lane->cfg->job_lease_ms / 3;
        for (unsigned i = 0; i < w->nlanes; i++)
            if (w->lanes[i].job_id)
                held[n++] = w->lanes[i].job_id;
    }
    pthread_mutex_unlock(&w->mu);
    if (!due)
        return;
    int requeued = 0;
    cm_err_t rc =
        gw_store_reclaim(w->store, cm_clock_now_ms(), lane->cfg->job_lease_ms, held, n, &requeued);
    if (rc) {
        CM_ERROR("gw.worker", "lease check failed: %s", cm_strerror(rc));
    } else if (requeued) {
        CM_WARN("gw.worker", "requeued %d job(s) whose lease expired (outcome not stored)",
                requeued);
        gw_worker_notify(w);
    }
}

/* Waits until notified after seen_gen, stopping, or until_ms (realtime; -1: a while).
 * Condvars on CLOCK_MONOTONIC scale under libfaketime like the rest of the clock. */
static void wait_for_work(gw_worker_t *w, uint64_t seen_gen, int64_t until_ms)
{
    int64_t most = w->cfg->worker_idle_recheck_ms;
    int64_t delay = until_ms < 0 ? most : until_ms - cm_clock_now_ms();
    if (delay > most)
        delay = most; /* re-check now and then: a bounded wait survives any missed signal */
    if (delay <= 0)
        return;
    struct timespec ts = cm_clock_mono_deadline(delay);
    pthread_mutex_lock(&w->mu);
    while (!w->stopping && w->gen == seen_gen)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&w->mu);
}

static void *lane_main(void *arg)
{
    lane_t *lane = arg;
    gw_worker_t *w = lane->w;
    prctl(PR_SET_NAME, "gw-worker"); /* names the thread in top -H, perf and gdb */
    /* Acknowledging a webhook is what a provider times out on; processing it is not. When
     * the CPU is short (a burst), intake should win and the lanes catch up afterwards, so
     * each lane thread runs at a lower priority (Linux applies nice per thread). */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) != 0)
        CM_DEBUG("gw.worker", "lane priority unchanged");
    /* A job that ended done is marked so in the next claim's transaction (one commit per
     * job instead of two); until then it stays this lane's, under its lease. */
    int64_t done_id = 0;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        int stop = w->stopping;
        uint64_t gen = w->gen;
        pthread_mutex_unlock(&w->mu);
        if (stop)
            break;
        check_leases(lane);
        gw_job_t job;
        int64_t next_due = -1;
        const char *after = w->cfg->ntenants > 1 && lane->last_tenant[0] ? lane->last_tenant : NULL;
        cm_err_t rc = gw_store_done_and_claim(w->store, done_id, after, cm_clock_now_ms(),
                                              lane->cfg->job_lease_ms, &job, &next_due);
        if (done_id) {
            /* Not stored with the claim: store it alone, with finish()'s retries. */
            if (rc != CM_OK && rc != CM_ENOTFOUND)
                (void)finish_done(lane, done_id);
            done_id = 0;
            pthread_mutex_lock(&w->mu);
            lane->job_id = rc == CM_OK ? job.id : 0;
            pthread_mutex_unlock(&w->mu);
            /* That entity is free again: a lane may be waiting for it. */
            gw_worker_notify(w);
        }
        if (rc == CM_ENOTFOUND) {
            gw_outbound_tick(w->ob); /* open -> half-open happens on time, not on demand */
            wait_for_work(w, gen, next_due);
            continue;
        }
        if (rc) {
            CM_ERROR("gw.worker", "claim failed: %s", cm_strerror(rc));
            wait_for_work(w, gen, cm_clock_now_ms() + 500);
            continue;
        }
        pthread_mutex_lock(&w->mu);
        lane->job_id = job.id;
        pthread_mutex_unlock(&w->mu);
        memcpy(lane->last_tenant, job.tenant_id, sizeof lane->last_tenant);
        char err[CM_ERR_LEN] = "";
        /* One span per job attempt, a child of the intake's (the trace the webhook came
         * with, or the one the intake started); its trace id is the log correlation id and
         * every saga step and provider call is a child of it. A job stored without one (a
         * replay of an event from before tracing) starts a trace of its own. */
        char name[96];
        gw_span_t js;
        snprintf(name, sizeof name, "job %s", job.kind);
        gw_span_start(&js, lane->obs->otlp, name, GW_SPAN_CONSUMER,
                      job.traceparent[0] ? job.traceparent : NULL);
        gw_span_int(&js, "gw.job.id", job.id);
        gw_span_str(&js, "gw.job.kind", job.kind);
        gw_span_int(&js, "gw.job.attempt", job.attempts);
        gw_span_str(&js, "gw.entity", job.entity_id);
        memcpy(lane->traceparent, js.traceparent, sizeof lane->traceparent);
        cm_log_set_cid(js.ctx.trace_id);
        lane->retry_hint_ms = 0;
        lane->waiting = 0;
        lane->dead_call[0] = '\0';
        lane->last_attempt = job.attempts >= lane->cfg->max_attempts;
        int64_t t0 = cm_clock_mono_ns();
        job_result_t res = run_job(lane, &job, err);
        gw_obs_observe(lane->obs->job_seconds, GW_LV(job.kind),
                       (double)(cm_clock_mono_ns() - t0) / 1e9);
        const char *jres =
            res == JOB_DONE ? "done"
            : res == JOB_RETRY
                ? (job.attempts >= lane->cfg->max_attempts && !lane->waiting ? "dead" : "retry")
                : "dead";
        gw_obs_count(lane->obs->jobs, GW_LV(job.kind, jres));
        gw_span_str(&js, "gw.job.result", jres);
        /* Waiting for a provider (breaker open, rate limited) is not a failure. */
        if (res == JOB_DEAD || (res == JOB_RETRY && !lane->waiting))
            gw_span_error(&js, err[0] ? err : jres);
        gw_span_end(&js);
        if (res == JOB_DONE) {
            done_id = job.id; /* stored by the next claim */
            cm_log_set_cid(NULL);
            gw_store_job_free(&job);
            continue;
        }
        /* An outcome not stored is logged and counted there; the lease takes it from here. */
        (void)finish(lane, &job, res, err);
        pthread_mutex_lock(&w->mu);
        lane->job_id = 0;
        pthread_mutex_unlock(&w->mu);
        cm_log_set_cid(NULL);
        gw_store_job_free(&job);
        /* This entity is free again: a lane may be waiting for it. */
        gw_worker_notify(w);
    }
    if (done_id) /* stopping: one try, else the lease brings the job back after a restart */
        (void)finish_done(lane, done_id);
    return NULL;
}

/* Another instance made jobs runnable (an ingest, a replay, a re-run), or notices may have
 * been missed: look. Runs on the store's listener thread. */
static void on_notice(void *ud, gw_notice_t what, const char *detail)
{
    (void)detail;
    if (what == GW_NOTICE_JOBS)
        gw_worker_notify(ud);
}

cm_err_t gw_worker_start(const gw_config_t *cfg, gw_store_t *store, gw_outbound_t *ob,
                         gw_obs_t *obs, gw_worker_t **out)
{
    gw_worker_t *w = calloc(1, sizeof *w);
    cm_err_t rc = CM_OK;
    *out = NULL;
    if (!w)
        return CM_ENOMEM;
    w->cfg = cfg;
    w->store = store;
    w->ob = ob;
    w->nlanes = cfg->worker_threads < MAX_LANES ? cfg->worker_threads : MAX_LANES;
    cm_clock_cond_init(&w->cv);
    pthread_mutex_init(&w->mu, NULL);
    for (unsigned i = 0; !rc && i < w->nlanes; i++) {
        lane_t *l = &w->lanes[i];
        l->w = w;
        l->cfg = cfg;
        l->store = store;
        l->ob = ob;
        l->obs = obs;
        cm_rand_seed(&l->rng, cfg->seed * 1000003u + i);
        if (!(l->http = cm_http_client_new()) ||
            pthread_create(&l->thread, NULL, lane_main, l) != 0)
            rc = CM_ENOMEM;
        else
            l->started = 1;
    }
    /* Jobs another instance stored wake these lanes at once, instead of at their next
     * poll (at most a second away: wait_for_work). */
    if (!rc && (rc = gw_store_on_notice(store, on_notice, w)) == CM_OK)
        w->listening = 1;
    if (rc) {
        gw_worker_stop(&w);
        return rc;
    }
    *out = w;
    return CM_OK;
}

void gw_worker_notify(gw_worker_t *w)
{
    pthread_mutex_lock(&w->mu);
    w->gen++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void gw_worker_stop(gw_worker_t **wp)
{
    gw_worker_t *w = wp ? *wp : NULL;
    if (!w)
        return;
    if (w->listening) /* no notice may reach w once it is freed */
        gw_store_off_notice(w->store, on_notice, w);
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (unsigned i = 0; i < w->nlanes; i++) {
        if (w->lanes[i].started)
            pthread_join(w->lanes[i].thread, NULL);
        cm_http_client_free(&w->lanes[i].http);
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
    *wp = NULL;
}
