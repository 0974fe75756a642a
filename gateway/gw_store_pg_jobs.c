/* gw_store_pg_jobs.c - gw_store.h's job queue on PostgreSQL, for several gateway
 * instances on one database: recovery at start, leases and their reclaim, claims, outcomes,
 * dead letters, replay and discard, and re-runs of stored events.
 *
 * The job's life is the SQLite store's (gw_store_sqlite_jobs.c). What several instances
 * change:
 *   - Claims lock their candidate with FOR UPDATE SKIP LOCKED: two instances claiming at
 *     once take different jobs and never wait for each other's candidate.
 *   - One running job per lane (the job's entity, or the saga whose booking that entity
 *     is; the SQLite store's rule) holds across instances. Within a claim it is the same
 *     NOT EXISTS as SQLite's; what two instances claiming two jobs of one lane at the same
 *     moment cannot see of each other (neither has committed) is ruled out by the database:
 *     a claim stores the lane in run_key, and a UNIQUE index on run_key over running jobs
 *     (jobs_one_running) makes the second claim wait for the first's commit and then fail
 *     with a unique violation; the claim is then made again under a savepoint, and its new
 *     snapshot sees the lane busy. Chosen over a transaction-scoped advisory lock on a hash
 *     of the lane: the lock only orders claimers, and a claim whose snapshot was taken
 *     before the other committed would still pass the NOT EXISTS (READ COMMITTED takes the
 *     snapshot at the statement's start, before the lock is granted), hashes collide, and
 *     the rule would live in code every writer of jobs must remember; the index is checked
 *     by the server on every write, whoever makes it.
 *   - Leases are renewed by their holder and expired ones are requeued by any instance
 *     (gw_pg_store_reclaim), so a dead instance's jobs come back.
 *   - Recovery at start takes back only what no live instance holds: this handle's own
 *     running jobs and those whose lease has expired (see gw_pg_store_recover).
 *   - A replay or a re-run, which make a job runnable, NOTIFY gw_jobs in their transaction,
 *     so every instance's workers wake when it commits (gw_store_pg_notify.c); jobs that
 *     become due later (retries) are found by the workers' polling.
 * Job writes are ordinary commits (synchronous_commit=on, as every commit of this store),
 * except the claim's transaction (claim_tx says why).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_log.h"
#include "gw_store_pg_int.h"

typedef struct {
    gw_pg_store_t *s;
    int64_t max_attempts, now_ms;
    int *requeued;
} recover_t;

/* A running job is left by a dead process when this handle holds it (at start it holds
 * none: in tests, the same handle plays the restarted process), when nobody does, or when
 * its lease has expired; a job another live instance works on is none of these. */
#define LEFT_BEHIND "state='running' AND (holder=$3 OR holder IS NULL OR lease_until_ms<=$1)"

static cm_err_t recover_tx(gw_pg_conn_t *c, void *arg)
{
    recover_t *r = arg;
    cm_err_t rc = gw_pg_exec(
        c,
        "UPDATE jobs SET state='dead', crashes=crashes+1, lease_until_ms=NULL, updated_at_ms=$1, "
        "last_error=CASE WHEN crashes+1>=attempts THEN 'worker crashed on every attempt' "
        "ELSE 'interrupted by a restart on attempt '||attempts||' of '||$2||"
        "COALESCE('; previous error: '||last_error,'') END "
        "WHERE " LEFT_BEHIND " AND attempts>=$2",
        GW_PG_ARGS(gw_pg_int(r->now_ms), gw_pg_int(r->max_attempts), gw_pg_text(r->s->instance)),
        NULL);
    if (!rc)
        rc = gw_pg_exec(c,
                        "UPDATE jobs SET state='pending', crashes=crashes+1, "
                        "lease_until_ms=NULL, next_at_ms=$1, updated_at_ms=$1 "
                        "WHERE " LEFT_BEHIND " AND $2::bigint IS NOT NULL",
                        GW_PG_ARGS(gw_pg_int(r->now_ms), gw_pg_int(r->max_attempts),
                                   gw_pg_text(r->s->instance)),
                        r->requeued);
    return rc;
}

cm_err_t gw_pg_store_recover(gw_pg_store_t *s, int max_attempts, int64_t now_ms, int *requeued)
{
    recover_t r = {.s = s, .max_attempts = max_attempts, .now_ms = now_ms, .requeued = requeued};
    *requeued = 0;
    cm_err_t rc = gw_pg_write(s, recover_tx, &r);
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

static cm_err_t reclaim_tx(gw_pg_conn_t *c, void *arg)
{
    reclaim_t *r = arg;
    cm_err_t rc = CM_OK;
    /* Renewing first, in the same transaction, keeps a held job whose lease just ran out
     * from being requeued under its worker. */
    for (size_t i = 0; !rc && i < r->nheld; i++)
        rc =
            gw_pg_exec(c, "UPDATE jobs SET lease_until_ms=$1 WHERE id=$2 AND state='running'",
                       GW_PG_ARGS(gw_pg_int(r->now_ms + r->lease_ms), gw_pg_int(r->held[i])), NULL);
    /* Any instance's expired lease: its holder is dead, or could not store the outcome. */
    if (!rc)
        rc = gw_pg_exec(c,
                        "UPDATE jobs SET state='pending', lease_until_ms=NULL, "
                        "next_at_ms=$1, updated_at_ms=$1, last_error='outcome of "
                        "attempt '||attempts||' not stored (lease expired)' "
                        "WHERE state='running' AND lease_until_ms<=$1",
                        GW_PG_ARGS(gw_pg_int(r->now_ms)), r->requeued);
    return rc;
}

cm_err_t gw_pg_store_reclaim(gw_pg_store_t *s, int64_t now_ms, int64_t lease_ms,
                             const int64_t *held, size_t nheld, int *requeued)
{
    reclaim_t r = {
        .now_ms = now_ms, .lease_ms = lease_ms, .held = held, .nheld = nheld, .requeued = requeued};
    *requeued = 0;
    cm_err_t rc = gw_pg_write(s, reclaim_tx, &r);
    if (rc)
        *requeued = 0;
    return rc;
}

cm_err_t gw_pg_store_claim(gw_pg_store_t *s, int64_t now_ms, int64_t lease_ms, gw_job_t *job,
                           int64_t *next_due_ms)
{
    return gw_pg_store_done_and_claim(s, 0, NULL, now_ms, lease_ms, job, next_due_ms);
}

static const char job_done_sql[] =
    "UPDATE jobs SET state='done', lease_until_ms=NULL, updated_at_ms=$1 WHERE id=$2";

/* The lane of the job aliased t (SQL), as the SQLite store's GW_SQ_LANE: its saga when its
 * entity is a saga's booking, else its entity. */
#define GW_PG_LANE(t)                                                                              \
    "COALESCE((SELECT s.id FROM sagas s WHERE s.booking_uid=" t ".entity_id LIMIT 1), " t          \
    ".entity_id)"

typedef struct {
    gw_pg_store_t *s;
    int64_t done_id, now_ms, lease_ms;
    const char *after_tenant;
    gw_job_t *job;
    int64_t *next_due_ms;
    int claimed;
    char sqlstate[6]; /* of the claim statement, when it failed */
} claim_t;

static cm_err_t claimed_row(const PGresult *r, int row, void *arg)
{
    gw_job_t *job = arg;
    job->id = gw_pg_col_int(r, row, 0);
    job->event_id = gw_pg_col_int(r, row, 1);
    gw_pg_col_text(job->kind, sizeof job->kind, r, row, 2);
    gw_pg_col_text(job->entity_id, sizeof job->entity_id, r, row, 3);
    gw_pg_col_text(job->tenant_id, sizeof job->tenant_id, r, row, 4);
    job->attempts = (int)gw_pg_col_int(r, row, 5);
    return CM_OK;
}

static cm_err_t body_row(const PGresult *r, int row, void *arg)
{
    gw_job_t *job = arg;
    size_t len = 0;
    /* bytea comes back in text results as hex ("\x7b22..."). */
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, 0), &len);
    if (!raw)
        return CM_ENOMEM;
    cm_err_t rc = cm_buf_add(&job->body, raw, len);
    PQfreemem(raw);
    if (rc)
        return CM_ENOMEM;
    const char *h = PQgetisnull(r, row, 1) ? NULL : PQgetvalue(r, row, 1);
    const char *tp = h ? strstr(h, "\"traceparent\":\"") : NULL;
    if (tp)
        snprintf(job->traceparent, sizeof job->traceparent, "%.55s", tp + 15);
    return CM_OK;
}

static cm_err_t next_due_row(const PGresult *r, int row, void *arg)
{
    if (!PQgetisnull(r, row, 0))
        *(int64_t *)arg = gw_pg_col_int(r, row, 0);
    return CM_OK;
}

/* The claims. Both lock their candidate, skipping a row another instance's claim holds,
 * and take it under GW_PG_CLAIM_SET. $1 now, $2 the lease's end, $3 the instance. */
#define GW_PG_LANE_J GW_PG_LANE("j")
#define GW_PG_LANE_R GW_PG_LANE("r")
#define GW_PG_LANE_FREE                                                                            \
    "NOT EXISTS (SELECT 1 FROM jobs r WHERE r.state='running' AND " GW_PG_LANE_R "=" GW_PG_LANE_J  \
    ")"
#define GW_PG_CLAIM_SET                                                                            \
    "UPDATE jobs SET state='running', attempts=jobs.attempts+1, lease_until_ms=$2, "               \
    "updated_at_ms=$1, run_key=c.lane, holder=$3 FROM c WHERE jobs.id=c.id RETURNING jobs.id, "    \
    "jobs.event_id, jobs.kind, jobs.entity_id, jobs.tenant_id, jobs.attempts "                     \
    "/* jobs_one_running */"

/* In arrival order: the oldest due job whose lane has no job running. */
#define GW_PG_CLAIM                                                                                \
    "WITH c AS (SELECT j.id, " GW_PG_LANE_J " AS lane FROM jobs j WHERE j.state='pending' AND "    \
    "j.next_at_ms<=$1 AND " GW_PG_LANE_FREE " ORDER BY j.next_at_ms, j.id LIMIT 1 "                \
    "FOR UPDATE OF j SKIP LOCKED) " GW_PG_CLAIM_SET

/* Fair, as the SQLite store's fair_pick (gw_store_sqlite_jobs.c) but in one statement:
 * the tenants with jobs pending, skipping from one to the next in jobs_pending_tenant; of
 * those other than $4 running nothing (on any instance, as far as committed rows tell),
 * each one's oldest due job whose lane is free; the oldest of those. */
#define GW_PG_FAIR_CLAIM                                                                           \
    "WITH RECURSIVE t(tid) AS (SELECT MIN(tenant_id) FROM jobs WHERE state='pending' UNION ALL "   \
    "SELECT (SELECT MIN(tenant_id) FROM jobs WHERE state='pending' AND tenant_id>t.tid) FROM t "   \
    "WHERE t.tid IS NOT NULL), "                                                                   \
    "cand AS (SELECT (SELECT j.id FROM jobs j WHERE j.state='pending' AND j.tenant_id=t.tid AND "  \
    "j.next_at_ms<=$1 AND " GW_PG_LANE_FREE " ORDER BY j.next_at_ms, j.id LIMIT 1) AS id FROM t "  \
    "WHERE t.tid IS NOT NULL AND t.tid<>$4::text AND t.tid NOT IN (SELECT r.tenant_id FROM jobs "  \
    "r WHERE r.state='running' AND r.tenant_id IS NOT NULL)), "                                    \
    "c AS (SELECT j.id, " GW_PG_LANE_J " AS lane FROM jobs j WHERE j.id IN (SELECT id FROM cand) " \
    "AND j.state='pending' ORDER BY j.next_at_ms, j.id LIMIT 1 FOR UPDATE OF j SKIP "              \
    "LOCKED) " GW_PG_CLAIM_SET

/* The claim statement alone (the fair one first when asked), under a savepoint (see the
 * file's comment): a unique violation on jobs_one_running undoes it and nothing else. */
static cm_err_t claim_one_tx(gw_pg_conn_t *c, void *arg)
{
    claim_t *cl = arg;
    int64_t until = cl->now_ms + cl->lease_ms;
    cm_err_t rc = CM_OK;
    cl->claimed = 0;
    if (cl->after_tenant)
        rc = gw_pg_query(c, GW_PG_FAIR_CLAIM,
                         GW_PG_ARGS(gw_pg_int(cl->now_ms), gw_pg_int(until),
                                    gw_pg_text(cl->s->instance), gw_pg_text(cl->after_tenant)),
                         claimed_row, cl->job, &cl->claimed);
    if (!rc && !cl->claimed)
        rc = gw_pg_query(
            c, GW_PG_CLAIM,
            GW_PG_ARGS(gw_pg_int(cl->now_ms), gw_pg_int(until), gw_pg_text(cl->s->instance)),
            claimed_row, cl->job, &cl->claimed);
    if (rc)
        memcpy(cl->sqlstate, c->sqlstate, sizeof cl->sqlstate);
    return rc;
}

static cm_err_t next_due_tx(gw_pg_conn_t *c, void *arg)
{
    claim_t *cl = arg;
    return gw_pg_query(c,
                       "SELECT MIN(next_at_ms) FROM jobs WHERE state='pending' AND next_at_ms>$1",
                       GW_PG_ARGS(gw_pg_int(cl->now_ms)), next_due_row, cl->next_due_ms, NULL);
}

enum { CLAIM_TRIES = 8 };

static cm_err_t claim_tx(gw_pg_conn_t *c, void *arg)
{
    claim_t *cl = arg;
    gw_job_t *job = cl->job;
    cm_err_t rc = CM_OK;
    int rows = 0;
    cl->claimed = 0;
    /* Bookkeeping, as the SQLite store's (GW_SQ_BOOKKEEPING): a claim, or the previous
     * job's done, lost to a server crash runs that job again, which every handler
     * tolerates; what must survive one (the webhook, the saga's steps) is committed
     * elsewhere, synchronously. Not waiting for the WAL flush here took a drain of 25k
     * jobs from 167 to 189 jobs/s (what costs most is planning each statement: 3.7 ms
     * for the claim, against 1 ms to run it). */
    rc = gw_pg_exec(c, "SET LOCAL synchronous_commit=off", GW_PG_NO_ARGS, NULL);
    if (!rc && cl->done_id > 0)
        rc = gw_pg_exec(c, job_done_sql, GW_PG_ARGS(gw_pg_int(cl->now_ms), gw_pg_int(cl->done_id)),
                        NULL);
    for (int i = 0; !rc && i < CLAIM_TRIES; i++) {
        cl->sqlstate[0] = '\0';
        rc = gw_pg_tx_nested(c, claim_one_tx, cl);
        /* Another instance took a job of the same lane at the same moment: look again. */
        if (rc && !strcmp(cl->sqlstate, "23505") && i + 1 < CLAIM_TRIES) {
            rc = CM_OK;
            continue;
        }
        break;
    }
    if (!rc && cl->claimed) {
        rc = gw_pg_query(c, "SELECT body, headers FROM events WHERE id=$1",
                         GW_PG_ARGS(gw_pg_int(job->event_id)), body_row, job, &rows);
        if (!rc && rows != 1) {
            CM_ERROR("gw.store", "job %lld: its event %lld is missing", (long long)job->id,
                     (long long)job->event_id);
            rc = CM_ESTORE;
        }
    } else if (!rc && gw_pg_tx_nested(c, next_due_tx, cl) != CM_OK) {
        /* As the SQLite store: not knowing the next due time is no reason to undo the done
         * above (the savepoint kept the transaction alive); the caller polls as with none. */
        *cl->next_due_ms = -1;
    }
    return rc;
}

cm_err_t gw_pg_store_done_and_claim(gw_pg_store_t *s, int64_t done_id, const char *after_tenant,
                                    int64_t now_ms, int64_t lease_ms, gw_job_t *job,
                                    int64_t *next_due_ms)
{
    claim_t c = {.s = s,
                 .done_id = done_id,
                 .after_tenant = after_tenant,
                 .now_ms = now_ms,
                 .lease_ms = lease_ms,
                 .job = job,
                 .next_due_ms = next_due_ms};
    memset(job, 0, sizeof *job);
    cm_buf_init(&job->body, 64u << 20);
    *next_due_ms = -1;
    cm_err_t rc = gw_pg_write(s, claim_tx, &c);
    if (!rc && !c.claimed)
        rc = CM_ENOTFOUND;
    if (rc != CM_OK) {
        cm_buf_free(&job->body);
        if (rc != CM_ENOTFOUND)
            *next_due_ms = -1;
    }
    return rc;
}

cm_err_t gw_pg_store_job_done(gw_pg_store_t *s, int64_t job_id, int64_t now_ms)
{
    return gw_pg_write_stmt(s, job_done_sql, GW_PG_ARGS(gw_pg_int(now_ms), gw_pg_int(job_id)),
                            NULL);
}

cm_err_t gw_pg_store_job_retry(gw_pg_store_t *s, int64_t job_id, int64_t retry_at_ms,
                               const char *error, int64_t now_ms)
{
    return gw_pg_write_stmt(
        s,
        "UPDATE jobs SET state='pending', next_at_ms=$1, last_error=$2, "
        "lease_until_ms=NULL, updated_at_ms=$3 WHERE id=$4",
        GW_PG_ARGS(gw_pg_int(retry_at_ms), gw_pg_text(error), gw_pg_int(now_ms), gw_pg_int(job_id)),
        NULL);
}

static const char job_dead_sql[] = "UPDATE jobs SET state='dead', last_error=$1, "
                                   "lease_until_ms=NULL, updated_at_ms=$2 WHERE id=$3";

cm_err_t gw_pg_store_job_dead(gw_pg_store_t *s, int64_t job_id, const char *reason, int64_t now_ms)
{
    return gw_pg_write_stmt(s, job_dead_sql,
                            GW_PG_ARGS(gw_pg_text(reason), gw_pg_int(now_ms), gw_pg_int(job_id)),
                            NULL);
}

typedef struct {
    int64_t job_id, now_ms;
    const char *reason, *call_id, *tenant_id, *call_state;
} dead_call_t;

static cm_err_t dead_call_tx(gw_pg_conn_t *c, void *arg)
{
    dead_call_t *d = arg;
    cm_err_t rc = gw_pg_exec(
        c, job_dead_sql,
        GW_PG_ARGS(gw_pg_text(d->reason), gw_pg_int(d->now_ms), gw_pg_int(d->job_id)), NULL);
    if (!rc)
        rc = gw_pg_entity_set(c, "call", d->call_id, d->tenant_id, d->call_state, NULL, d->reason,
                              d->now_ms);
    return rc;
}

cm_err_t gw_pg_store_job_dead_call(gw_pg_store_t *s, int64_t job_id, const char *reason,
                                   const char *call_id, const char *tenant_id,
                                   const char *call_state, int64_t now_ms)
{
    dead_call_t d = {.job_id = job_id,
                     .now_ms = now_ms,
                     .reason = reason,
                     .call_id = call_id,
                     .tenant_id = tenant_id,
                     .call_state = call_state};
    return gw_pg_write(s, dead_call_tx, &d);
}

typedef struct {
    gw_pg_store_t *s;
    const char *sql; /* the move, with $1 now_ms and $2 the job */
    int64_t job_id, now_ms;
    int runnable; /* the move makes the job runnable: wake every instance's workers */
} move_dead_t;

static cm_err_t move_dead_tx(gw_pg_conn_t *c, void *arg)
{
    move_dead_t *m = arg;
    int changed = 0, rows = 0;
    cm_err_t rc =
        gw_pg_exec(c, m->sql, GW_PG_ARGS(gw_pg_int(m->now_ms), gw_pg_int(m->job_id)), &changed);
    /* Sent with the commit: a worker woken by it finds the job pending. */
    if (!rc && changed && m->runnable)
        rc = gw_pg_notify_in_tx(m->s, c, GW_PG_JOBS_CHANNEL, NULL);
    if (rc || changed)
        return rc;
    rc = gw_pg_query(c, "SELECT 1 FROM jobs WHERE id=$1", GW_PG_ARGS(gw_pg_int(m->job_id)), NULL,
                     NULL, &rows);
    return rc ? rc : rows ? CM_ESTATE : CM_ENOTFOUND;
}

static cm_err_t move_dead(gw_pg_store_t *s, int64_t job_id, const char *sql, int64_t now_ms,
                          int runnable)
{
    move_dead_t m = {.s = s, .sql = sql, .job_id = job_id, .now_ms = now_ms, .runnable = runnable};
    return gw_pg_write(s, move_dead_tx, &m);
}

cm_err_t gw_pg_store_job_replay(gw_pg_store_t *s, int64_t job_id, int64_t now_ms)
{
    return move_dead(s, job_id,
                     "UPDATE jobs SET state='pending', attempts=0, crashes=0, next_at_ms=$1, "
                     "updated_at_ms=$1 WHERE id=$2 AND state='dead'",
                     now_ms, 1);
}

cm_err_t gw_pg_store_job_discard(gw_pg_store_t *s, int64_t job_id, int64_t now_ms)
{
    return move_dead(s, job_id,
                     "UPDATE jobs SET state='discarded', updated_at_ms=$1 WHERE id=$2 AND "
                     "state='dead'",
                     now_ms, 0);
}

static cm_err_t first_int64_row(const PGresult *r, int row, void *arg)
{
    *(int64_t *)arg = gw_pg_col_int(r, row, 0);
    return CM_OK;
}

typedef struct {
    gw_pg_store_t *s;
    int64_t event_id, now_ms;
    int64_t *job_id;
} rerun_t;

static cm_err_t rerun_tx(gw_pg_conn_t *c, void *arg)
{
    rerun_t *r = arg;
    int rows = 0;
    cm_err_t rc = gw_pg_query(c,
                              "INSERT INTO jobs(event_id,kind,entity_id,tenant_id,state,next_at_ms,"
                              "created_at_ms,updated_at_ms) SELECT id, job_kind, entity_id, "
                              "tenant_id, 'pending', $1, $1, $1 FROM events WHERE id=$2 AND "
                              "job_kind IS NOT NULL RETURNING id",
                              GW_PG_ARGS(gw_pg_int(r->now_ms), gw_pg_int(r->event_id)),
                              first_int64_row, r->job_id, &rows);
    if (!rc && rows)
        rc = gw_pg_notify_in_tx(r->s, c, GW_PG_JOBS_CHANNEL, NULL); /* sent with the commit */
    return rc ? rc : rows ? CM_OK : CM_ENOTFOUND;
}

cm_err_t gw_pg_store_event_rerun(gw_pg_store_t *s, int64_t event_id, int64_t now_ms,
                                 int64_t *job_id)
{
    rerun_t r = {.s = s, .event_id = event_id, .now_ms = now_ms, .job_id = job_id};
    *job_id = -1;
    cm_err_t rc = gw_pg_write(s, rerun_tx, &r);
    if (rc)
        *job_id = -1;
    return rc;
}
