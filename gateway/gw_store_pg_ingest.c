/* gw_store_pg_ingest.c - gw_store.h's intake on PostgreSQL: group commit of concurrent
 * webhooks by one committer thread on its own connection.
 *
 * gw_store_ingest_async queues an event; the committer takes up to BATCH_MAX queued events
 * and writes them in one transaction: per event its row, inserted with ON CONFLICT DO
 * NOTHING on both unique keys (the insert itself is the dedup, never check-then-insert,
 * and it holds across instances: a second instance inserting the same key waits for the
 * first's transaction and then does nothing), plus its job or the duplicate count of the
 * event it repeats, and one NOTIFY on GW_PG_JOBS_CHANNEL when a job was queued. One
 * COMMIT, which with synchronous_commit=on returns once the WAL is flushed, answers the
 * whole batch: callbacks run on the committer thread after it.
 *
 * The batch goes to the server as columns (arrays bound in binary) in one statement
 * (write_set), plus one for the duplicates' counts when there are any: a few round trips
 * and one parse per batch, where event by event took two or three statements per event
 * and the server's CPU (shared with the gateway on a small machine) went on parsing and
 * planning them. When that statement fails, the batch is written again event by event
 * (write_batch), first straight, then with a savepoint per event, so that one event the
 * database refuses fails alone and the others of its batch are stored.
 *
 * A batch that meets a broken connection is answered CM_ESTORE (the intake answers 503,
 * "not stored", and the sender retries); the next batch reconnects.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
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
    int ord;          /* write_set: its place in the batch, from 1 */
    int64_t event_id; /* write_set: its row, when stored */
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

/* The batch as columns, one array per column of events (gw_pg_arr_t), so that the whole
 * batch is one statement: one parse, one plan, one round trip. Kept by the committer
 * thread from batch to batch, their memory reused. */
enum {
    COL_PROVIDER,
    COL_KEY,
    COL_ALT,
    COL_TYPE,
    COL_ENTITY,
    COL_TENANT,
    COL_JOB,
    COL_AT,
    COL_HEADERS,
    COL_BODY,
    NCOLS
};

/* A batch with a column past COLS_CAP bytes (big bodies) goes event by event (write_one). */
#define COLS_CAP ((size_t)256 << 20)
/* After a batch of big bodies the committer gives their memory back. */
#define COLS_KEEP ((size_t)8 << 20)

typedef struct {
    gw_pg_arr_t col[NCOLS];
    gw_pg_arr_t dup_key, dup_alt, dup_at, dup_ord; /* the batch's duplicates */
    gw_pg_arr_t new_id, new_ord;                   /* and its stored events */
    int ok;                                        /* all made: else event by event */
} cols_t;

static const gw_pg_type_t col_type[NCOLS] = {
    [COL_AT] = GW_PG_INT,        [COL_BODY] = GW_PG_BLOB, /* the others: */
    [COL_PROVIDER] = GW_PG_TEXT, [COL_KEY] = GW_PG_TEXT,    [COL_ALT] = GW_PG_TEXT,
    [COL_TYPE] = GW_PG_TEXT,     [COL_ENTITY] = GW_PG_TEXT, [COL_TENANT] = GW_PG_TEXT,
    [COL_JOB] = GW_PG_TEXT,      [COL_HEADERS] = GW_PG_TEXT};

static void cols_free(cols_t *k)
{
    for (int i = 0; i < NCOLS; i++)
        gw_pg_arr_free(&k->col[i]);
    gw_pg_arr_free(&k->dup_key);
    gw_pg_arr_free(&k->dup_alt);
    gw_pg_arr_free(&k->dup_at);
    gw_pg_arr_free(&k->dup_ord);
    gw_pg_arr_free(&k->new_id);
    gw_pg_arr_free(&k->new_ord);
    k->ok = 0;
}

static void cols_init(cols_t *k)
{
    int failed = 0; /* every array is made, failed or not, so that cols_free frees all */
    for (int i = 0; i < NCOLS; i++)
        failed |= gw_pg_arr_init(&k->col[i], col_type[i], COLS_CAP) != CM_OK;
    failed |= gw_pg_arr_init(&k->dup_key, GW_PG_TEXT, COLS_CAP) != CM_OK;
    failed |= gw_pg_arr_init(&k->dup_alt, GW_PG_TEXT, COLS_CAP) != CM_OK;
    failed |= gw_pg_arr_init(&k->dup_at, GW_PG_INT, COLS_CAP) != CM_OK;
    failed |= gw_pg_arr_init(&k->dup_ord, GW_PG_INT, COLS_CAP) != CM_OK;
    failed |= gw_pg_arr_init(&k->new_id, GW_PG_INT, COLS_CAP) != CM_OK;
    failed |= gw_pg_arr_init(&k->new_ord, GW_PG_INT, COLS_CAP) != CM_OK;
    k->ok = !failed;
    if (failed)
        cols_free(k);
}

/* The batch's events into the columns; 0 when they do not fit (then event by event). */
static int cols_fill(cols_t *k, const gw_pg_pending_t *batch)
{
    if (!k->ok)
        return 0;
    for (int i = 0; i < NCOLS; i++)
        gw_pg_arr_reset(&k->col[i]);
    cm_err_t rc = CM_OK;
    for (const gw_pg_pending_t *p = batch; !rc && p; p = p->next) {
        const gw_event_in_t *ev = p->ev;
        gw_pg_arr_t *c = k->col;
        rc = gw_pg_arr_add(&c[COL_PROVIDER], gw_pg_text(ev->provider));
        if (!rc)
            rc = gw_pg_arr_add(&c[COL_KEY], gw_pg_text(ev->event_key));
        if (!rc)
            rc = gw_pg_arr_add(&c[COL_ALT], gw_pg_text(ev->alt_key));
        if (!rc)
            rc = gw_pg_arr_add(&c[COL_TYPE], gw_pg_text(ev->event_type));
        if (!rc)
            rc = gw_pg_arr_add(&c[COL_ENTITY], gw_pg_text(ev->entity_id));
        if (!rc)
            rc = gw_pg_arr_add(&c[COL_TENANT], gw_pg_text(ev->tenant_id));
        if (!rc)
            rc = gw_pg_arr_add(&c[COL_JOB], gw_pg_text(ev->job_kind));
        if (!rc)
            rc = gw_pg_arr_add(&c[COL_AT], gw_pg_int(ev->received_at_ms));
        if (!rc)
            rc = gw_pg_arr_add(&c[COL_HEADERS], gw_pg_text(ev->headers));
        if (!rc)
            rc = gw_pg_arr_add(&c[COL_BODY], gw_pg_blob(ev->body ? ev->body : "", ev->body_len));
    }
    if (rc)
        CM_WARN("gw.store", "postgres: a batch too big for one statement (%s): event by event",
                cm_strerror(rc));
    return rc == CM_OK;
}

/* After a batch: memory held for big bodies goes back. */
static void cols_trim(cols_t *k)
{
    size_t held = 0;
    for (int i = 0; k->ok && i < NCOLS; i++)
        held += k->col[i].b.cap;
    if (held > COLS_KEEP) {
        cols_free(k);
        cols_init(k);
    }
}

typedef struct {
    gw_pg_pending_t *batch;
    cols_t *cols;
    int isolate;             /* each event under a savepoint of its own */
    int event_failed;        /* without isolate: an event failed and stopped the batch */
    gw_pg_pending_t *cursor; /* write_set: where the next returned row is looked for first */
} batch_t;

/* The whole batch in one statement. Each event's row is inserted in the batch's order with
 * ON CONFLICT DO NOTHING on both unique keys, as write_one would one by one: a copy of an
 * event already stored, or of one earlier in the same batch, is skipped (the unique keys
 * are checked by the insert itself, never beforehand). The jobs are inserted from the
 * rows the insert returned, so only stored events get one, in the same statement, which
 * also sends the batch's NOTIFY when it queued a job (a round trip fewer than a NOTIFY of
 * its own: on a busy 2-core machine each one waits for the server to be scheduled). */
static const char *const insert_set_sql =
    "WITH input AS (SELECT * FROM unnest($1::text[],$2::text[],$3::text[],$4::text[],"
    "$5::text[],$6::text[],$7::text[],$8::int8[],$9::text[],$10::bytea[]) WITH ORDINALITY AS "
    "t(provider,event_key,alt_key,event_type,entity_id,tenant_id,job_kind,received_at_ms,"
    "headers,body,ord)), "
    "ins AS (INSERT INTO events(provider,event_key,alt_key,event_type,entity_id,tenant_id,"
    "job_kind,received_at_ms,headers,body) SELECT provider,event_key,alt_key,event_type,"
    "entity_id,tenant_id,job_kind,received_at_ms,headers,body FROM input ORDER BY ord "
    "ON CONFLICT DO NOTHING "
    "RETURNING id,event_key,alt_key,entity_id,tenant_id,job_kind,received_at_ms), "
    "job AS (INSERT INTO jobs(event_id,kind,entity_id,tenant_id,state,next_at_ms,"
    "created_at_ms,updated_at_ms) SELECT id,job_kind,entity_id,tenant_id,'pending',"
    "received_at_ms,received_at_ms,received_at_ms FROM ins WHERE job_kind IS NOT NULL "
    "ORDER BY id RETURNING 1), "
    "note AS (SELECT pg_notify('" GW_PG_JOBS_CHANNEL "','') FROM (SELECT 1 FROM job LIMIT 1) j) "
    "SELECT event_key,alt_key,id,(SELECT count(*) FROM note) FROM ins";

/* The duplicates' counts, as write_one's UPDATE for each would leave them: every event
 * whose key or alternative key a duplicate repeats counts it once, if it was there before
 * the duplicate (stored before the batch, or earlier in it: $5, $6 are the batch's stored
 * events and their places). In a statement of its own, after the insert, so that it sees
 * the events the batch stored. */
static const char *const count_dups_sql =
    "WITH d AS (SELECT * FROM unnest($1::text[],$2::text[],$3::int8[],$4::int8[]) AS "
    "t(event_key,alt_key,at_ms,ord)), "
    "b AS (SELECT * FROM unnest($5::int8[],$6::int8[]) AS t(id,ord)), "
    "m AS (SELECT d.ord,e.id,d.at_ms FROM d JOIN events e ON e.event_key=d.event_key "
    "UNION SELECT d.ord,e.id,d.at_ms FROM d JOIN events e ON e.alt_key=d.alt_key), "
    "n AS (SELECT m.id,count(*) AS n,max(m.at_ms) AS at_ms FROM m LEFT JOIN b ON b.id=m.id "
    "WHERE b.ord IS NULL OR b.ord<m.ord GROUP BY m.id) "
    "UPDATE events e SET duplicates=e.duplicates+n.n,last_duplicate_at_ms=n.at_ms "
    "FROM n WHERE e.id=n.id";

static int same_keys(const gw_event_in_t *ev, const char *key, const char *alt)
{
    return !strcmp(ev->event_key, key) &&
           (ev->alt_key && alt ? !strcmp(ev->alt_key, alt) : !ev->alt_key && !alt);
}

/* A row the insert returned is the first event of the batch with its keys not yet
 * matched (later ones with the same keys were skipped as its copies). Rows come back in
 * the batch's order in practice, so the cursor's event is tried first. */
static cm_err_t stored_row(const PGresult *r, int row, void *arg)
{
    batch_t *b = arg;
    const char *key = PQgetvalue(r, row, 0);
    const char *alt = PQgetisnull(r, row, 1) ? NULL : PQgetvalue(r, row, 1);
    gw_pg_pending_t *p = b->cursor;
    if (!p || p->result != GW_INGEST_DUPLICATE || !same_keys(p->ev, key, alt))
        for (p = b->batch; p; p = p->next)
            if (p->result == GW_INGEST_DUPLICATE && same_keys(p->ev, key, alt))
                break;
    if (!p) {
        CM_ERROR("gw.store", "postgres: the insert returned an event not in the batch: %s", key);
        return CM_ESTORE;
    }
    p->result = GW_INGEST_ACCEPTED;
    p->event_id = gw_pg_col_int(r, row, 2);
    b->cursor = p->next;
    return CM_OK;
}

/* A batch written event by event that queued a job tells the other instances' workers,
 * when it commits (write_set's statement does it itself). */
static cm_err_t notify_jobs(gw_pg_conn_t *c, const gw_pg_pending_t *batch)
{
    for (const gw_pg_pending_t *p = batch; p; p = p->next)
        if (p->rc == CM_OK && p->result == GW_INGEST_ACCEPTED && p->ev->job_kind)
            return gw_pg_exec(c, "NOTIFY " GW_PG_JOBS_CHANNEL, GW_PG_NO_ARGS, NULL);
    return CM_OK;
}

/* The batch (in cols) in one statement, then the duplicates' counts in another. A failure
 * of either fails the batch: the caller writes it again event by event. Runs again from
 * the start when gw_pg_tx_run retries a deadlock: every field it sets is set again. */
static cm_err_t write_set(gw_pg_conn_t *c, void *arg)
{
    batch_t *b = arg;
    const gw_pg_arr_t *col = b->cols->col;
    b->event_failed = 0;
    b->cursor = b->batch;
    int ord = 0;
    for (gw_pg_pending_t *p = b->batch; p; p = p->next) {
        p->rc = CM_OK;
        p->result = GW_INGEST_DUPLICATE; /* until the insert returns its row */
        p->ord = ++ord;
    }
    cm_err_t rc =
        gw_pg_query(c, insert_set_sql,
                    GW_PG_ARGS(gw_pg_array(&col[COL_PROVIDER]), gw_pg_array(&col[COL_KEY]),
                               gw_pg_array(&col[COL_ALT]), gw_pg_array(&col[COL_TYPE]),
                               gw_pg_array(&col[COL_ENTITY]), gw_pg_array(&col[COL_TENANT]),
                               gw_pg_array(&col[COL_JOB]), gw_pg_array(&col[COL_AT]),
                               gw_pg_array(&col[COL_HEADERS]), gw_pg_array(&col[COL_BODY])),
                    stored_row, b, NULL);
    cols_t *k = b->cols;
    gw_pg_arr_t *dk[] = {&k->dup_key, &k->dup_alt, &k->dup_at,
                         &k->dup_ord, &k->new_id,  &k->new_ord};
    for (size_t i = 0; i < sizeof dk / sizeof dk[0]; i++)
        gw_pg_arr_reset(dk[i]);
    for (gw_pg_pending_t *p = b->batch; !rc && p; p = p->next) {
        if (p->result == GW_INGEST_ACCEPTED) {
            rc = gw_pg_arr_add(&k->new_id, gw_pg_int(p->event_id));
            if (!rc)
                rc = gw_pg_arr_add(&k->new_ord, gw_pg_int(p->ord));
            continue;
        }
        rc = gw_pg_arr_add(&k->dup_key, gw_pg_text(p->ev->event_key));
        if (!rc)
            rc = gw_pg_arr_add(&k->dup_alt, gw_pg_text(p->ev->alt_key));
        if (!rc)
            rc = gw_pg_arr_add(&k->dup_at, gw_pg_int(p->ev->received_at_ms));
        if (!rc)
            rc = gw_pg_arr_add(&k->dup_ord, gw_pg_int(p->ord));
    }
    if (!rc && k->dup_key.n > 0)
        rc = gw_pg_exec(c, count_dups_sql,
                        GW_PG_ARGS(gw_pg_array(&k->dup_key), gw_pg_array(&k->dup_alt),
                                   gw_pg_array(&k->dup_at), gw_pg_array(&k->dup_ord),
                                   gw_pg_array(&k->new_id), gw_pg_array(&k->new_ord)),
                        NULL);
    if (rc)
        b->event_failed = 1;
    return rc;
}

static cm_err_t write_event_tx(gw_pg_conn_t *c, void *arg)
{
    gw_pg_pending_t *p = arg;
    return write_one(c, p->ev, &p->result);
}

/* Event by event: used for a batch write_set failed (without isolate: the first failure
 * stops the batch, as PostgreSQL has aborted the transaction anyway) and then with a
 * savepoint per event (isolate), so one event the database refuses fails alone. Runs
 * again from the start when gw_pg_tx_run retries a deadlock: every field it sets is set
 * again. */
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
    return notify_jobs(c, b->batch);
}

static void commit_batch(gw_pg_store_t *s, gw_pg_pending_t *batch, cols_t *cols)
{
    batch_t b = {.batch = batch, .cols = cols};
    pthread_mutex_lock(&s->in.mu);
    cm_err_t rc = gw_pg_conn_use(s, &s->in, NULL);
    if (!rc) {
        if (cols_fill(cols, batch))
            rc = gw_pg_tx_run(&s->in, write_set, &b, NULL);
        else
            rc = gw_pg_tx_run(&s->in, write_batch, &b, NULL);
        /* Only an event's own failure is worth the isolated pass; a lost connection fails
         * every event alike. */
        if (rc && b.event_failed && PQstatus(s->in.db) == CONNECTION_OK) {
            b.isolate = 1;
            rc = gw_pg_tx_run(&s->in, write_batch, &b, NULL);
        }
    }
    pthread_mutex_unlock(&s->in.mu);
    cols_trim(cols);
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
    cols_t cols;
    prctl(PR_SET_NAME, "gw-pg-commit");
    cols_init(&cols);
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
        commit_batch(s, batch, &cols);
        CM_DEBUG("gw.store", "postgres group commit: %d event(s), %lld us", n,
                 (long long)(cm_clock_mono_ns() - t0) / 1000);
        answer(batch);
    }
    cols_free(&cols);
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
