/* gw_store_pg_ingest.c - gw_store.h's intake on PostgreSQL: group commit of concurrent
 * webhooks by one committer thread on its own connection.
 *
 * gw_store_ingest_async queues an event; the committer takes up to BATCH_MAX queued events
 * and writes them in one transaction: per event its row, inserted with ON CONFLICT DO
 * NOTHING on both unique keys (the insert itself is the dedup, never check-then-insert,
 * and it holds across instances: a second instance inserting the same key waits for the
 * first's transaction and then does nothing), plus its job or the duplicate count of the
 * event it repeats. One COMMIT, which with synchronous_commit=on returns once the WAL is
 * flushed, answers the whole batch: callbacks run on the committer thread after it.
 * A batch that meets a broken connection is answered CM_ESTORE (the intake answers 503,
 * "not stored", and the sender retries); the next batch reconnects.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/prctl.h>

#include "cm_clock.h"
#include "cm_log.h"
#include "gw_store_pg_int.h"

#define BATCH_MAX 512

struct gw_pg_pending {
    const gw_event_in_t *ev;
    gw_ingest_cb cb;
    void *ud;
    cm_err_t rc;
    gw_ingest_t result;
    struct gw_pg_pending *next;
};

static cm_err_t id_row(const PGresult *r, int row, void *arg)
{
    *(int64_t *)arg = gw_pg_col_int(r, row, 0);
    return CM_OK;
}

/* Writes one event (and its job, or its duplicate count) inside the open transaction. */
static cm_err_t write_one(gw_pg_conn_t *c, const gw_event_in_t *ev, gw_ingest_t *result)
{
    int64_t event_id = -1;
    int rows = 0;
    cm_err_t rc = gw_pg_query(
        c,
        "INSERT INTO events(provider,event_key,alt_key,event_type,entity_id,tenant_id,job_kind,"
        "received_at_ms,headers,body) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) "
        "ON CONFLICT DO NOTHING RETURNING id",
        GW_PG_ARGS(gw_pg_text(ev->provider), gw_pg_text(ev->event_key), gw_pg_text(ev->alt_key),
                   gw_pg_text(ev->event_type), gw_pg_text(ev->entity_id), gw_pg_text(ev->tenant_id),
                   gw_pg_text(ev->job_kind), gw_pg_int(ev->received_at_ms), gw_pg_text(ev->headers),
                   gw_pg_blob(ev->body ? ev->body : "", ev->body_len)),
        id_row, &event_id, &rows);
    if (rc)
        return rc;
    if (rows == 0) {
        *result = GW_INGEST_DUPLICATE;
        return gw_pg_exec(c,
                          "UPDATE events SET duplicates=duplicates+1, last_duplicate_at_ms=$1 "
                          "WHERE event_key=$2 OR ($3::text IS NOT NULL AND alt_key=$3::text)",
                          GW_PG_ARGS(gw_pg_int(ev->received_at_ms), gw_pg_text(ev->event_key),
                                     gw_pg_text(ev->alt_key)),
                          NULL);
    }
    *result = GW_INGEST_ACCEPTED;
    if (!ev->job_kind)
        return CM_OK;
    return gw_pg_exec(c,
                      "INSERT INTO jobs(event_id,kind,entity_id,tenant_id,state,next_at_ms,"
                      "created_at_ms,updated_at_ms) VALUES($1,$2,$3,$4,'pending',$5,$5,$5)",
                      GW_PG_ARGS(gw_pg_int(event_id), gw_pg_text(ev->job_kind),
                                 gw_pg_text(ev->entity_id), gw_pg_text(ev->tenant_id),
                                 gw_pg_int(ev->received_at_ms)),
                      NULL);
}

typedef struct {
    gw_pg_pending_t *batch;
    int isolate;      /* each event under a savepoint of its own */
    int event_failed; /* without isolate: an event failed and stopped the batch */
} batch_t;

static cm_err_t write_event_tx(gw_pg_conn_t *c, void *arg)
{
    gw_pg_pending_t *p = arg;
    return write_one(c, p->ev, &p->result);
}

/* As the SQLite store: without isolate the first failure stops the batch (PostgreSQL has
 * aborted the transaction anyway) and the caller writes it again with a savepoint per
 * event, so one event the database refuses fails alone. Runs again from the start when
 * gw_pg_tx_run retries a deadlock: every field it sets is set again. */
static cm_err_t write_batch(gw_pg_conn_t *c, void *arg)
{
    batch_t *b = arg;
    b->event_failed = 0;
    for (gw_pg_pending_t *p = b->batch; p; p = p->next) {
        if (b->isolate) {
            p->rc = gw_pg_tx_nested(c, write_event_tx, p);
        } else if ((p->rc = write_one(c, p->ev, &p->result)) != CM_OK) {
            b->event_failed = 1;
            return p->rc;
        }
    }
    return CM_OK;
}

static void commit_batch(gw_pg_store_t *s, gw_pg_pending_t *batch)
{
    batch_t b = {.batch = batch};
    pthread_mutex_lock(&s->in.mu);
    cm_err_t rc = gw_pg_conn_use(s, &s->in, NULL);
    if (!rc) {
        rc = gw_pg_tx_run(&s->in, write_batch, &b, NULL);
        /* Only an event's own failure is worth the isolated pass; a lost connection fails
         * every event alike. */
        if (rc && b.event_failed && PQstatus(s->in.db) == CONNECTION_OK) {
            b.isolate = 1;
            rc = gw_pg_tx_run(&s->in, write_batch, &b, NULL);
        }
    }
    pthread_mutex_unlock(&s->in.mu);
    /* BEGIN or COMMIT failed, or no connection: nothing of the batch is stored. */
    for (gw_pg_pending_t *p = batch; rc && p; p = p->next)
        p->rc = CM_ESTORE;
}

static void answer(gw_pg_pending_t *batch)
{
    while (batch) {
        gw_pg_pending_t *next = batch->next;
        batch->cb(batch->ud, batch->rc, batch->result);
        free(batch);
        batch = next;
    }
}

static void *committer_main(void *arg)
{
    gw_pg_store_t *s = arg;
    prctl(PR_SET_NAME, "gw-pg-commit");
    for (;;) {
        pthread_mutex_lock(&s->qmu);
        while (!s->head && !s->stopping)
            pthread_cond_wait(&s->qcv, &s->qmu);
        if (!s->head && s->stopping) {
            pthread_mutex_unlock(&s->qmu);
            break;
        }
        gw_pg_pending_t *batch = s->head, *last = s->head;
        int n = 1;
        while (last->next && n < BATCH_MAX) {
            last = last->next;
            n++;
        }
        s->head = last->next;
        if (!s->head)
            s->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&s->qmu);
        int64_t t0 = cm_clock_mono_ns();
        commit_batch(s, batch);
        CM_DEBUG("gw.store", "postgres group commit: %d event(s), %lld us", n,
                 (long long)(cm_clock_mono_ns() - t0) / 1000);
        answer(batch);
    }
    return NULL;
}

cm_err_t gw_pg_store_ingest_async(gw_pg_store_t *s, const gw_event_in_t *ev, gw_ingest_cb cb,
                                  void *ud)
{
    gw_pg_pending_t *p = calloc(1, sizeof *p);
    if (!p)
        return CM_ENOMEM;
    p->ev = ev;
    p->cb = cb;
    p->ud = ud;
    pthread_mutex_lock(&s->qmu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->qmu);
        free(p);
        return CM_ESTATE;
    }
    if (s->tail)
        s->tail->next = p;
    else
        s->head = p;
    s->tail = p;
    pthread_cond_signal(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
    return CM_OK;
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    cm_err_t rc;
    gw_ingest_t result;
} waiter_t;

static void wake_waiter(void *ud, cm_err_t rc, gw_ingest_t result)
{
    waiter_t *w = ud;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->result = result;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

cm_err_t gw_pg_store_ingest(gw_pg_store_t *s, const gw_event_in_t *ev, gw_ingest_t *result)
{
    waiter_t w = {.done = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    cm_err_t rc = gw_pg_store_ingest_async(s, ev, wake_waiter, &w);
    if (!rc) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        rc = w.rc;
        *result = w.result;
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc;
}

void gw_pg_store_stop_intake(gw_pg_store_t *s)
{
    pthread_mutex_lock(&s->qmu);
    s->stopping = 1; /* also refuses new ingests */
    pthread_cond_broadcast(&s->qcv);
    int join = s->started;
    s->started = 0;
    pthread_mutex_unlock(&s->qmu);
    if (join)
        pthread_join(s->committer, NULL); /* it answers what is queued before it ends */
}

cm_err_t gw_pg_ingest_start(gw_pg_store_t *s, char *err)
{
    if (pthread_create(&s->committer, NULL, committer_main, s) != 0) {
        cm_errf(err, "cannot start the committer thread");
        return CM_ENOMEM;
    }
    s->started = 1;
    return CM_OK;
}

void gw_pg_ingest_stop(gw_pg_store_t *s)
{
    gw_pg_store_stop_intake(s);
}
