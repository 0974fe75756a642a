/* gw_store.c - gw_store.h's one entry point for every backend: the handle says which
 * backend it wraps (SQLite or PostgreSQL) and each call is passed on to it.
 *
 * A tagged handle and direct calls rather than a table of function pointers: the compiler
 * checks every call against the backend's prototype (gw_store_be.h), and a build without
 * libpq simply has no PostgreSQL branch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_store_be.h"

struct gw_store {
    /* Exactly one is set, from open to close. */
    gw_sq_store_t *sq;
    gw_pg_store_t *pg;
};

#ifdef GW_STORE_PG
#define DISPATCH(s, fn, ...)                                                                       \
    ((s)->pg ? gw_pg_store_##fn((s)->pg, __VA_ARGS__) : gw_sq_store_##fn((s)->sq, __VA_ARGS__))
#else
#define DISPATCH(s, fn, ...) gw_sq_store_##fn((s)->sq, __VA_ARGS__)
#endif

cm_err_t gw_store_open(const char *path, int sync_full, gw_store_t **out, char *err)
{
    gw_store_t *s = calloc(1, sizeof *s);
    *out = NULL;
    if (!s)
        return CM_ENOMEM;
    cm_err_t rc = gw_sq_store_open(path, sync_full, &s->sq, err);
    if (rc)
        free(s);
    else
        *out = s;
    return rc;
}

cm_err_t gw_store_open_pg(const char *url, const char *instance, gw_store_t **out, char *err)
{
    *out = NULL;
#ifdef GW_STORE_PG
    gw_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return CM_ENOMEM;
    cm_err_t rc = gw_pg_store_open(url, instance, &s->pg, err);
    if (rc)
        free(s);
    else
        *out = s;
    return rc;
#else
    (void)url;
    cm_errf(err, "this gateway was built without libpq: the postgres store is not available");
    return CM_ECONFIG;
#endif
}

void gw_store_close(gw_store_t **sp)
{
    gw_store_t *s = sp ? *sp : NULL;
    if (!s)
        return;
#ifdef GW_STORE_PG
    gw_pg_store_close(&s->pg);
#endif
    gw_sq_store_close(&s->sq);
    free(s);
    *sp = NULL;
}

void gw_store_stop_intake(gw_store_t *s)
{
#ifdef GW_STORE_PG
    if (s->pg) {
        gw_pg_store_stop_intake(s->pg);
        return;
    }
#endif
    gw_sq_store_stop_intake(s->sq);
}

void gw_store_set_busy_timeout(gw_store_t *s, int ms)
{
#ifdef GW_STORE_PG
    if (s->pg) {
        gw_pg_store_set_busy_timeout(s->pg, ms);
        return;
    }
#endif
    gw_sq_store_set_busy_timeout(s->sq, ms);
}

void gw_store_job_free(gw_job_t *job)
{
    cm_buf_free(&job->body);
}

cm_err_t gw_store_ingest_async(gw_store_t *s, const gw_event_in_t *ev, gw_ingest_cb cb, void *ud)
{
    return DISPATCH(s, ingest_async, ev, cb, ud);
}

cm_err_t gw_store_ingest(gw_store_t *s, const gw_event_in_t *ev, gw_ingest_t *result)
{
    return DISPATCH(s, ingest, ev, result);
}

cm_err_t gw_store_recover(gw_store_t *s, int max_attempts, int64_t now_ms, int *requeued)
{
    return DISPATCH(s, recover, max_attempts, now_ms, requeued);
}

cm_err_t gw_store_claim(gw_store_t *s, int64_t now_ms, int64_t lease_ms, gw_job_t *job,
                        int64_t *next_due_ms)
{
    return DISPATCH(s, claim, now_ms, lease_ms, job, next_due_ms);
}

cm_err_t gw_store_done_and_claim(gw_store_t *s, int64_t done_id, const char *after_tenant,
                                 int64_t now_ms, int64_t lease_ms, gw_job_t *job,
                                 int64_t *next_due_ms)
{
    return DISPATCH(s, done_and_claim, done_id, after_tenant, now_ms, lease_ms, job, next_due_ms);
}

cm_err_t gw_store_reclaim(gw_store_t *s, int64_t now_ms, int64_t lease_ms, const int64_t *held,
                          size_t nheld, int *requeued)
{
    return DISPATCH(s, reclaim, now_ms, lease_ms, held, nheld, requeued);
}

cm_err_t gw_store_job_done(gw_store_t *s, int64_t job_id, int64_t now_ms)
{
    return DISPATCH(s, job_done, job_id, now_ms);
}

cm_err_t gw_store_job_retry(gw_store_t *s, int64_t job_id, int64_t retry_at_ms, const char *error,
                            int64_t now_ms)
{
    return DISPATCH(s, job_retry, job_id, retry_at_ms, error, now_ms);
}

cm_err_t gw_store_job_dead(gw_store_t *s, int64_t job_id, const char *reason, int64_t now_ms)
{
    return DISPATCH(s, job_dead, job_id, reason, now_ms);
}

cm_err_t gw_store_job_dead_call(gw_store_t *s, int64_t job_id, const char *reason,
                                const char *call_id, const char *tenant_id, const char *call_state,
                                int64_t now_ms)
{
    return DISPATCH(s, job_dead_call, job_id, reason, call_id, tenant_id, call_state, now_ms);
}

cm_err_t gw_store_job_replay(gw_store_t *s, int64_t job_id, int64_t now_ms)
{
    return DISPATCH(s, job_replay, job_id, now_ms);
}

cm_err_t gw_store_job_discard(gw_store_t *s, int64_t job_id, int64_t now_ms)
{
    return DISPATCH(s, job_discard, job_id, now_ms);
}

cm_err_t gw_store_event_rerun(gw_store_t *s, int64_t event_id, int64_t now_ms, int64_t *job_id)
{
    return DISPATCH(s, event_rerun, event_id, now_ms, job_id);
}

cm_err_t gw_store_purge(gw_store_t *s, int64_t cutoff_ms, int batch, gw_purge_t *out)
{
    *out = (gw_purge_t){0};
    if (batch < 1 || batch > 10000)
        return CM_EINVAL;
    return DISPATCH(s, purge, cutoff_ms, batch, out);
}

cm_err_t gw_store_erase(gw_store_t *s, const char *phone, const char *email, int64_t now_ms,
                        gw_erase_t *out)
{
    return gw_store_erase_tenant(s, NULL, phone, email, now_ms, out);
}

cm_err_t gw_store_erase_tenant(gw_store_t *s, const char *tenant, const char *phone,
                               const char *email, int64_t now_ms, gw_erase_t *out)
{
    memset(out, 0, sizeof *out);
    if (phone && !*phone)
        phone = NULL;
    if (email && !*email)
        email = NULL;
    if (!phone && !email)
        return CM_EINVAL;
    return DISPATCH(s, erase, tenant, phone, email, now_ms, out);
}

cm_err_t gw_store_queue_stats(gw_store_t *s, gw_queue_stats_t *st)
{
    return DISPATCH(s, queue_stats, st);
}

int gw_store_writable(gw_store_t *s)
{
#ifdef GW_STORE_PG
    if (s->pg)
        return gw_pg_store_writable(s->pg);
#endif
    return gw_sq_store_writable(s->sq);
}

cm_err_t gw_store_entity_set(gw_store_t *s, const char *kind, const char *id, const char *tenant_id,
                             const char *state, const char *ref, const char *error, int64_t now_ms)
{
    return DISPATCH(s, entity_set, kind, id, tenant_id, state, ref, error, now_ms);
}

cm_err_t gw_store_entity_merge(gw_store_t *s, const char *kind, const char *id,
                               const char *tenant_id, const char *state, int rank, const char *ref,
                               int64_t flags, int64_t now_ms)
{
    return DISPATCH(s, entity_merge, kind, id, tenant_id, state, rank, ref, flags, now_ms);
}

cm_err_t gw_store_entity_state(gw_store_t *s, const char *kind, const char *id, char *state,
                               size_t cap, int64_t *flags)
{
    return DISPATCH(s, entity_state, kind, id, state, cap, flags);
}

cm_err_t gw_store_saga_get(gw_store_t *s, const char *id, gw_saga_t *out)
{
    return DISPATCH(s, saga_get, id, out);
}

cm_err_t gw_store_saga_by_booking(gw_store_t *s, const char *uid, gw_saga_t *out)
{
    return DISPATCH(s, saga_by_booking, uid, out);
}

cm_err_t gw_store_saga_put(gw_store_t *s, const gw_saga_t *sg, const char *step, const char *phase,
                           const char *detail, int64_t now_ms)
{
    return DISPATCH(s, saga_put, sg, step, phase, detail, now_ms);
}

int gw_store_saga_intent_open(gw_store_t *s, const char *id, const char *step)
{
    return DISPATCH(s, saga_intent_open, id, step);
}

cm_err_t gw_store_saga_json(gw_store_t *s, const char *id, cm_buf_t *out)
{
    return DISPATCH(s, saga_json, id, out);
}

cm_err_t gw_store_sagas_json(gw_store_t *s, const char *state, const char *tenant, int limit,
                             cm_buf_t *out)
{
    return DISPATCH(s, sagas_json, state, tenant, limit, out);
}

cm_err_t gw_store_entity_json(gw_store_t *s, const char *kind, const char *id, cm_buf_t *out)
{
    return DISPATCH(s, entity_json, kind, id, out);
}

cm_err_t gw_store_events_json(gw_store_t *s, const char *provider, const char *entity_id,
                              const char *tenant, int limit, cm_buf_t *out)
{
    return DISPATCH(s, events_json, provider, entity_id, tenant, limit, out);
}

cm_err_t gw_store_jobs_json(gw_store_t *s, const char *state, const char *tenant, int limit,
                            cm_buf_t *out)
{
    return DISPATCH(s, jobs_json, state, tenant, limit, out);
}

cm_err_t gw_store_job_json(gw_store_t *s, int64_t job_id, cm_buf_t *out)
{
    return DISPATCH(s, job_json, job_id, out);
}

cm_err_t gw_store_rl_take(gw_store_t *s, const char *key, double rate_per_s, double burst,
                          int64_t max_wait_ms, int *taken, int64_t *wait_ms)
{
    return DISPATCH(s, rl_take, key, rate_per_s, burst, max_wait_ms, taken, wait_ms);
}

cm_err_t gw_store_rl_refund(gw_store_t *s, const char *key, double rate_per_s, double burst)
{
    return DISPATCH(s, rl_refund, key, rate_per_s, burst);
}

cm_err_t gw_store_on_notice(gw_store_t *s, gw_notice_fn fn, void *ud)
{
    return DISPATCH(s, on_notice, fn, ud);
}

void gw_store_off_notice(gw_store_t *s, gw_notice_fn fn, void *ud)
{
#ifdef GW_STORE_PG
    if (s->pg) {
        gw_pg_store_off_notice(s->pg, fn, ud);
        return;
    }
#endif
    gw_sq_store_off_notice(s->sq, fn, ud);
}

cm_err_t gw_store_publish(gw_store_t *s, gw_notice_t what, const char *detail)
{
    return DISPATCH(s, publish, what, detail);
}

cm_err_t gw_store_audit_add(gw_store_t *s, const gw_audit_t *a)
{
    if (!a || !a->token || !a->action || !a->outcome)
        return CM_EINVAL;
    return DISPATCH(s, audit_add, a);
}

cm_err_t gw_store_audit_list(gw_store_t *s, const char *tenant, int64_t before_id, int limit,
                             gw_audit_fn fn, void *ud)
{
    return DISPATCH(s, audit_list, tenant, before_id, limit, fn, ud);
}

cm_err_t gw_store_event_tenant(gw_store_t *s, int64_t event_id, char *tenant, size_t cap)
{
    return DISPATCH(s, event_tenant, event_id, tenant, cap);
}

cm_err_t gw_store_finding_add(gw_store_t *s, const gw_finding_t *f, int *is_new)
{
    *is_new = 0;
    if (!f->provider || !f->kind || !f->object_id || !f->action)
        return CM_EINVAL;
    return DISPATCH(s, finding_add, f, is_new);
}

cm_err_t gw_store_findings_json(gw_store_t *s, const char *provider, const char *action,
                                const char *tenant, int limit, cm_buf_t *out)
{
    return DISPATCH(s, findings_json, provider, action, tenant, limit, out);
}

cm_err_t gw_store_saga_fix(gw_store_t *s, const gw_saga_fix_t *fix, int64_t now_ms, int *changed)
{
    *changed = 0;
    if (!fix->saga_id || !fix->expect || !fix->step)
        return CM_EINVAL;
    return DISPATCH(s, saga_fix, fix, now_ms, changed);
}

cm_err_t gw_store_event_exists(gw_store_t *s, const char *event_key, int *exists)
{
    *exists = 0;
    return DISPATCH(s, event_exists, event_key, exists);
}
