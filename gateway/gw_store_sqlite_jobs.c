/* gw_store_sqlite_jobs.c - gw_store.h's job queue on SQLite: recovery at start, leases
 * and their reclaim, claims (the oldest due job whose entity has none running), outcomes
 * (done, retry, dead letter, with the call's state when a saga's job dies), dead-letter
 * replay and discard, and re-runs of stored events.
 *
 * A job goes pending -> running (claimed, leased) -> done, pending again (retry, reclaim,
 * replay) or dead -> discarded. Every write here is one gw_sq_write transaction on the
 * writer, committed as bookkeeping (synchronous=NORMAL, see gw_sq_writer_sync): an
 * outcome lost to a power cut runs the job again, which every handler tolerates.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "cm_log.h"
#include "gw_store_sqlite_int.h"

typedef struct {
    int64_t max_attempts, now_ms;
    int *requeued;
} recover_t;

static cm_err_t recover_tx(sqlite3 *db, void *arg)
{
    recover_t *r = arg;
    /* The reason must say what happened: a job whose earlier attempts failed on their own
     * (last_error) and whose last one met a restart did not crash the worker every time.
     * crashes counts the attempts restarts cut short, this one included (+1); the values
     * on the right of SET are the row's before the update. */
    cm_err_t rc = gw_sq_exec(
        db,
        "UPDATE jobs SET state='dead', crashes=crashes+1, lease_until_ms=NULL, updated_at_ms=?1, "
        "last_error=CASE WHEN crashes+1>=attempts THEN 'worker crashed on every attempt' "
        "ELSE 'interrupted by a restart on attempt '||attempts||' of '||?2||"
        "COALESCE('; previous error: '||last_error,'') END "
        "WHERE state='running' AND attempts>=?2",
        GW_SQ_ARGS(gw_sq_int(r->now_ms), gw_sq_int(r->max_attempts)), NULL);
    if (!rc)
        rc = gw_sq_exec(db,
                        "UPDATE jobs SET state='pending', crashes=crashes+1, "
                        "lease_until_ms=NULL, next_at_ms=?1, updated_at_ms=?1 "
                        "WHERE state='running'",
                        GW_SQ_ARGS(gw_sq_int(r->now_ms)), r->requeued);
    return rc;
}

/* Both updates in one transaction: a failure between them would leave the crashers dead
 * and the others still 'running'. */
cm_err_t gw_sq_store_recover(gw_sq_store_t *s, int max_attempts, int64_t now_ms, int *requeued)
{
    recover_t r = {.max_attempts = max_attempts, .now_ms = now_ms, .requeued = requeued};
    *requeued = 0;
    cm_err_t rc = gw_sq_write(s, GW_SQ_BOOKKEEPING, recover_tx, &r);
    if (rc)
        *requeued = 0;
    return rc;
}

typedef struct {
    int64_t now_ms, lease_ms;
    const int64_t *held;
    size_t nheld;
    int *requeued;
} reclaim_t;

static cm_err_t reclaim_tx(sqlite3 *db, void *arg)
{
    reclaim_t *r = arg;
    cm_err_t rc = CM_OK;
    /* Renewing first, in the same transaction, is what keeps a held job whose lease just
     * ran out from being requeued under its worker. */
    for (size_t i = 0; !rc && i < r->nheld; i++)
        rc =
            gw_sq_exec(db, "UPDATE jobs SET lease_until_ms=?1 WHERE id=?2 AND state='running'",
                       GW_SQ_ARGS(gw_sq_int(r->now_ms + r->lease_ms), gw_sq_int(r->held[i])), NULL);
    /* The attempt ran but its outcome is lost, which says nothing against the job: it goes
     * back to pending whatever its attempts (the next outcome applies max_attempts as
     * usual), and last_error says why it runs again. */
    if (!rc)
        rc = gw_sq_exec(db,
                        "UPDATE jobs SET state='pending', lease_until_ms=NULL, "
                        "next_at_ms=?1, updated_at_ms=?1, last_error='outcome of "
                        "attempt '||attempts||' not stored (lease expired)' "
                        "WHERE state='running' AND lease_until_ms<=?1",
                        GW_SQ_ARGS(gw_sq_int(r->now_ms)), r->requeued);
    return rc;
}

cm_err_t gw_sq_store_reclaim(gw_sq_store_t *s, int64_t now_ms, int64_t lease_ms,
                             const int64_t *held, size_t nheld, int *requeued)
{
    reclaim_t r = {
        .now_ms = now_ms, .lease_ms = lease_ms, .held = held, .nheld = nheld, .requeued = requeued};
    *requeued = 0;
    cm_err_t rc = gw_sq_write(s, GW_SQ_BOOKKEEPING, reclaim_tx, &r);
    if (rc)
        *requeued = 0;
    return rc;
}

cm_err_t gw_sq_store_claim(gw_sq_store_t *s, int64_t now_ms, int64_t lease_ms, gw_job_t *job,
                           int64_t *next_due_ms)
{
    return gw_sq_store_done_and_claim(s, 0, NULL, now_ms, lease_ms, job, next_due_ms);
}

/* gw_sq_store_job_done's statement; gw_sq_store_done_and_claim runs it too. */
static const char job_done_sql[] =
    "UPDATE jobs SET state='done', lease_until_ms=NULL, updated_at_ms=?1 WHERE id=?2";

static cm_err_t claimed_row(sqlite3_stmt *st, void *arg)
{
    gw_job_t *job = arg;
    job->id = sqlite3_column_int64(st, 0);
    job->event_id = sqlite3_column_int64(st, 1);
    gw_sq_col_text(job->kind, sizeof job->kind, st, 2);
    gw_sq_col_text(job->entity_id, sizeof job->entity_id, st, 3);
    gw_sq_col_text(job->tenant_id, sizeof job->tenant_id, st, 4);
    job->attempts = sqlite3_column_int(st, 5);
    return CM_OK;
}

static cm_err_t body_row(sqlite3_stmt *st, void *arg)
{
    gw_job_t *job = arg;
    if (cm_buf_add(&job->body, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0)) !=
        CM_OK)
        return CM_ENOMEM;
    /* The intake wrote it as "traceparent":"<55 chars>"; nothing else to parse. */
    const char *h = (const char *)sqlite3_column_text(st, 1);
    const char *tp = h ? strstr(h, "\"traceparent\":\"") : NULL;
    if (tp)
        snprintf(job->traceparent, sizeof job->traceparent, "%.55s", tp + 15);
    return CM_OK;
}

static cm_err_t next_due_row(sqlite3_stmt *st, void *arg)
{
    if (sqlite3_column_type(st, 0) != SQLITE_NULL)
        *(int64_t *)arg = sqlite3_column_int64(st, 0);
    return CM_OK;
}

typedef struct {
    int64_t done_id, now_ms, lease_ms;
    const char *after_tenant;
    gw_job_t *job;
    int64_t *next_due_ms;
    int claimed;
} claim_t;

/* The serialisation key of the job aliased t (SQL): its saga when its entity is a saga's
 * booking, else its entity. */
#define GW_SQ_LANE(t)                                                                              \
    "COALESCE((SELECT s.id FROM sagas s WHERE s.booking_uid=" t ".entity_id), " t ".entity_id)"

/* Both claims: the job j's lane has no job running; marking the job claimed (?1 now, ?2
 * the lease's end), the job chosen after it. */
#define GW_SQ_LANE_FREE                                                                            \
    "NOT EXISTS (SELECT 1 FROM jobs r WHERE r.state='running' AND " GW_SQ_LANE(                    \
        "r") "=" GW_SQ_LANE("j") ")"
#define GW_SQ_CLAIM_SET                                                                            \
    "UPDATE jobs SET state='running', attempts=attempts+1, lease_until_ms=?2, updated_at_ms=?1 "   \
    "WHERE id="
#define GW_SQ_CLAIM_RETURNING " RETURNING id, event_id, kind, entity_id, tenant_id, attempts"

/* The claim in arrival order: the oldest due job whose lane is free. */
#define GW_SQ_CLAIM                                                                                \
    GW_SQ_CLAIM_SET "(SELECT j.id FROM jobs j WHERE j.state='pending' AND j.next_at_ms<=?1 "       \
                    "AND " GW_SQ_LANE_FREE                                                         \
                    " ORDER BY j.next_at_ms, j.id LIMIT 1)" GW_SQ_CLAIM_RETURNING

/* ---- the fair claim (gw_store_done_and_claim's after_tenant) ---------------------------
 *
 * The oldest due job (its lane free) among each tenant's oldest, of the tenants other than
 * after_tenant running nothing. Made of small indexed statements in a loop, not one: the
 * tenants with jobs pending are found by skipping from one to the next in
 * jobs_pending_tenant, and each one's oldest due job is the first of its range there, so
 * a claim costs a few seeks per tenant waiting, whatever their backlogs. Walking the due
 * jobs past the busy tenants' backlog drained 115 jobs/s with 56k of them (4,860 in
 * arrival order); one recursive statement doing the loop, 884 (its temporary tables were
 * made at every claim, by what perf showed: most of the time in the kernel, in page faults).
 * At most FAIR_TENANTS tenants are looked at, in the
 * order of their ids. INDEXED BY: with no statistics the planner took jobs_due, a walk
 * over every pending job. */
enum { FAIR_TENANTS = 256, FAIR_RUNNING = 64 };

typedef struct {
    char ids[FAIR_RUNNING][sizeof(((gw_job_t *)0)->tenant_id)];
    size_t n;
} tenants_t;

static cm_err_t tenant_row(sqlite3_stmt *st, void *arg)
{
    tenants_t *t = arg;
    if (t->n < FAIR_RUNNING)
        gw_sq_col_text(t->ids[t->n++], sizeof t->ids[0], st, 0);
    return CM_OK;
}

/* The row's first column into the tenant id buffer arg ("" for NULL). */
static cm_err_t next_tenant_row(sqlite3_stmt *st, void *arg)
{
    gw_sq_col_text(arg, sizeof(((gw_job_t *)0)->tenant_id), st, 0);
    return CM_OK;
}

static int tenant_busy(const tenants_t *t, const char *id)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->ids[i], id))
            return 1;
    return 0;
}

typedef struct {
    int64_t id, next_at_ms;
} cand_t;

static cm_err_t cand_row(sqlite3_stmt *st, void *arg)
{
    cand_t *c = arg;
    c->id = sqlite3_column_int64(st, 0);
    c->next_at_ms = sqlite3_column_int64(st, 1);
    return CM_OK;
}

/* The job the fair claim takes into *pick (0: none of another tenant is due). */
static cm_err_t fair_pick(sqlite3 *db, const claim_t *c, int64_t *pick)
{
    tenants_t busy = {.n = 0};
    char tid[sizeof busy.ids[0]] = ""; /* '' sorts before every tenant id */
    cand_t best = {0, 0};
    *pick = 0;
    cm_err_t rc = gw_sq_query(db,
                              "SELECT DISTINCT tenant_id FROM jobs WHERE state='running' AND "
                              "tenant_id IS NOT NULL",
                              GW_SQ_NO_ARGS, tenant_row, &busy, NULL);
    for (int i = 0; !rc && i < FAIR_TENANTS; i++) {
        char next[sizeof tid] = "";
        rc = gw_sq_query(db,
                         "SELECT MIN(tenant_id) FROM jobs INDEXED BY jobs_pending_tenant "
                         "WHERE state='pending' AND tenant_id>?1",
                         GW_SQ_ARGS(gw_sq_text(tid)), next_tenant_row, next, NULL);
        if (rc || !next[0])
            break; /* no tenant after tid has a job pending */
        memcpy(tid, next, sizeof tid);
        if (!strcmp(tid, c->after_tenant) || tenant_busy(&busy, tid))
            continue;
        cand_t got = {0, 0};
        rc = gw_sq_query(
            db,
            "SELECT j.id, j.next_at_ms FROM jobs j INDEXED BY jobs_pending_tenant "
            "WHERE j.state='pending' AND j.tenant_id=?1 AND j.next_at_ms<=?2 AND " GW_SQ_LANE_FREE
            " ORDER BY j.next_at_ms, j.id LIMIT 1",
            GW_SQ_ARGS(gw_sq_text(tid), gw_sq_int(c->now_ms)), cand_row, &got, NULL);
        if (!rc && got.id &&
            (!best.id || got.next_at_ms < best.next_at_ms ||
             (got.next_at_ms == best.next_at_ms && got.id < best.id)))
            best = got;
    }
    *pick = best.id;
    return rc;
}

static cm_err_t claim_tx(sqlite3 *db, void *arg)
{
    claim_t *c = arg;
    gw_job_t *job = c->job;
    cm_err_t rc = CM_OK;
    int rows = 0;
    /* The finished job's outcome rides in this transaction: one commit, and the same
     * pages of jobs and its index, instead of a transaction of its own. Done first, so the
     * claim below already sees its entity free. */
    if (c->done_id > 0)
        rc = gw_sq_exec(db, job_done_sql, GW_SQ_ARGS(gw_sq_int(c->now_ms), gw_sq_int(c->done_id)),
                        NULL);
    /* A job waits while another of its lane runs. The lane is its entity, or the saga
     * whose booking that entity is: a Cal.com BOOKING_CANCELLED job (keyed by the booking
     * uid) and the call's job (keyed by the call id, the saga's id) both act on one saga,
     * and two workers compensating it at once is what this rules out (issue 14: two
     * "compensate done" rows in one millisecond). Running jobs are few, and
     * sagas(booking_uid) is indexed. */
    int64_t until = c->now_ms + c->lease_ms;
    int64_t pick = 0;
    if (!rc && c->after_tenant)
        rc = fair_pick(db, c, &pick);
    if (!rc && pick)
        rc = gw_sq_query(db, GW_SQ_CLAIM_SET "?3" GW_SQ_CLAIM_RETURNING,
                         GW_SQ_ARGS(gw_sq_int(c->now_ms), gw_sq_int(until), gw_sq_int(pick)),
                         claimed_row, job, &c->claimed);
    if (!rc && !c->claimed)
        rc = gw_sq_query(db, GW_SQ_CLAIM, GW_SQ_ARGS(gw_sq_int(c->now_ms), gw_sq_int(until)),
                         claimed_row, job, &c->claimed);
    if (!rc && c->claimed) {
        rc = gw_sq_query(db, "SELECT body, headers FROM events WHERE id=?1",
                         GW_SQ_ARGS(gw_sq_int(job->event_id)), body_row, job, &rows);
        if (!rc && rows != 1) {
            CM_ERROR("gw.store", "job %lld: its event %lld is missing", (long long)job->id,
                     (long long)job->event_id);
            rc = CM_ESTORE;
        }
    } else if (!rc) {
        /* Due jobs held back by a running entity are not counted: the worker finishing
         * that entity's job wakes the others. Not knowing the next due time is no reason
         * to undo the done above: the caller then polls as with none. */
        if (gw_sq_query(
                db, "SELECT MIN(next_at_ms) FROM jobs WHERE state='pending' AND next_at_ms>?1",
                GW_SQ_ARGS(gw_sq_int(c->now_ms)), next_due_row, c->next_due_ms, NULL) != CM_OK)
            *c->next_due_ms = -1;
    }
    return rc;
}

cm_err_t gw_sq_store_done_and_claim(gw_sq_store_t *s, int64_t done_id, const char *after_tenant,
                                    int64_t now_ms, int64_t lease_ms, gw_job_t *job,
                                    int64_t *next_due_ms)
{
    claim_t c = {.done_id = done_id,
                 .after_tenant = after_tenant,
                 .now_ms = now_ms,
                 .lease_ms = lease_ms,
                 .job = job,
                 .next_due_ms = next_due_ms};
    memset(job, 0, sizeof *job);
    cm_buf_init(&job->body, 64u << 20);
    *next_due_ms = -1;
    /* The claim and the read of its body are one transaction: if the read fails, the job
     * must not be left 'running' with nobody working on it (that would block its entity
     * until the next restart). Nothing to claim is no failure: the done is committed. */
    cm_err_t rc = gw_sq_write(s, GW_SQ_BOOKKEEPING, claim_tx, &c);
    if (!rc && !c.claimed)
        rc = CM_ENOTFOUND;
    if (rc != CM_OK)
        gw_store_job_free(job);
    return rc;
}

cm_err_t gw_sq_store_job_done(gw_sq_store_t *s, int64_t job_id, int64_t now_ms)
{
    return gw_sq_write_stmt(s, job_done_sql, GW_SQ_ARGS(gw_sq_int(now_ms), gw_sq_int(job_id)),
                            NULL);
}

cm_err_t gw_sq_store_job_retry(gw_sq_store_t *s, int64_t job_id, int64_t retry_at_ms,
                               const char *error, int64_t now_ms)
{
    return gw_sq_write_stmt(
        s,
        "UPDATE jobs SET state='pending', next_at_ms=?1, last_error=?2, "
        "lease_until_ms=NULL, updated_at_ms=?3 WHERE id=?4",
        GW_SQ_ARGS(gw_sq_int(retry_at_ms), gw_sq_text(error), gw_sq_int(now_ms), gw_sq_int(job_id)),
        NULL);
}

/* gw_sq_store_job_dead's statement; gw_sq_store_job_dead_call runs it too. */
static const char job_dead_sql[] = "UPDATE jobs SET state='dead', last_error=?1, "
                                   "lease_until_ms=NULL, updated_at_ms=?2 WHERE id=?3";

cm_err_t gw_sq_store_job_dead(gw_sq_store_t *s, int64_t job_id, const char *reason, int64_t now_ms)
{
    return gw_sq_write_stmt(s, job_dead_sql,
                            GW_SQ_ARGS(gw_sq_text(reason), gw_sq_int(now_ms), gw_sq_int(job_id)),
                            NULL);
}

typedef struct {
    int64_t job_id, now_ms;
    const char *reason, *call_id, *tenant_id, *call_state;
} dead_call_t;

static cm_err_t dead_call_tx(sqlite3 *db, void *arg)
{
    dead_call_t *d = arg;
    cm_err_t rc = gw_sq_exec(
        db, job_dead_sql,
        GW_SQ_ARGS(gw_sq_text(d->reason), gw_sq_int(d->now_ms), gw_sq_int(d->job_id)), NULL);
    /* The call's view changes with the dead letter or not at all: written apart, a reader
     * saw the job dead and the call unchanged, and a failed second write left it so. */
    if (!rc)
        rc = gw_sq_entity_set(db, "call", d->call_id, d->tenant_id, d->call_state, NULL, d->reason,
                              d->now_ms);
    return rc;
}

cm_err_t gw_sq_store_job_dead_call(gw_sq_store_t *s, int64_t job_id, const char *reason,
                                   const char *call_id, const char *tenant_id,
                                   const char *call_state, int64_t now_ms)
{
    dead_call_t d = {.job_id = job_id,
                     .now_ms = now_ms,
                     .reason = reason,
                     .call_id = call_id,
                     .tenant_id = tenant_id,
                     .call_state = call_state};
    return gw_sq_write(s, GW_SQ_BOOKKEEPING, dead_call_tx, &d);
}

typedef struct {
    const char *sql; /* the move, with ?1 now_ms and ?2 the job */
    int64_t job_id, now_ms;
} move_dead_t;

static cm_err_t move_dead_tx(sqlite3 *db, void *arg)
{
    move_dead_t *m = arg;
    int changed = 0, rows = 0;
    cm_err_t rc =
        gw_sq_exec(db, m->sql, GW_SQ_ARGS(gw_sq_int(m->now_ms), gw_sq_int(m->job_id)), &changed);
    if (rc || changed)
        return rc;
    rc = gw_sq_query(db, "SELECT 1 FROM jobs WHERE id=?1", GW_SQ_ARGS(gw_sq_int(m->job_id)), NULL,
                     NULL, &rows);
    return rc ? rc : rows ? CM_ESTATE : CM_ENOTFOUND;
}

/* Moves a dead job by sql; tells a missing job from one in another state, in the same
 * transaction. */
static cm_err_t move_dead(gw_sq_store_t *s, int64_t job_id, const char *sql, int64_t now_ms)
{
    move_dead_t m = {.sql = sql, .job_id = job_id, .now_ms = now_ms};
    return gw_sq_write(s, GW_SQ_BOOKKEEPING, move_dead_tx, &m);
}

cm_err_t gw_sq_store_job_replay(gw_sq_store_t *s, int64_t job_id, int64_t now_ms)
{
    return move_dead(s, job_id,
                     "UPDATE jobs SET state='pending', attempts=0, crashes=0, next_at_ms=?1, "
                     "updated_at_ms=?1 WHERE id=?2 AND state='dead'",
                     now_ms);
}

cm_err_t gw_sq_store_job_discard(gw_sq_store_t *s, int64_t job_id, int64_t now_ms)
{
    return move_dead(s, job_id,
                     "UPDATE jobs SET state='discarded', updated_at_ms=?1 WHERE id=?2 AND "
                     "state='dead'",
                     now_ms);
}

static cm_err_t first_int64_row(sqlite3_stmt *st, void *arg)
{
    *(int64_t *)arg = sqlite3_column_int64(st, 0);
    return CM_OK;
}

typedef struct {
    int64_t event_id, now_ms;
    int64_t *job_id;
} rerun_t;

static cm_err_t rerun_tx(sqlite3 *db, void *arg)
{
    rerun_t *r = arg;
    int rows = 0;
    cm_err_t rc = gw_sq_query(db,
                              "INSERT INTO jobs(event_id,kind,entity_id,tenant_id,state,next_at_ms,"
                              "created_at_ms,updated_at_ms) SELECT id, job_kind, entity_id, "
                              "tenant_id, 'pending', ?1, ?1, ?1 FROM events WHERE id=?2 AND "
                              "job_kind IS NOT NULL RETURNING id",
                              GW_SQ_ARGS(gw_sq_int(r->now_ms), gw_sq_int(r->event_id)),
                              first_int64_row, r->job_id, &rows);
    return rc ? rc : rows ? CM_OK : CM_ENOTFOUND;
}

cm_err_t gw_sq_store_event_rerun(gw_sq_store_t *s, int64_t event_id, int64_t now_ms,
                                 int64_t *job_id)
{
    rerun_t r = {.event_id = event_id, .now_ms = now_ms, .job_id = job_id};
    *job_id = -1;
    cm_err_t rc = gw_sq_write(s, GW_SQ_BOOKKEEPING, rerun_tx, &r);
    if (rc)
        *job_id = -1;
    return rc;
}
