/* gw_store_sqlite_ingest.c - gw_store.h's intake on SQLite: group commit of concurrent
 * webhooks, the syncer that makes them durable, and WAL checkpoints.
 *
 * gw_sq_store_ingest_async queues an event; one committer thread takes up to BATCH_MAX queued
 * events, writes them in one transaction on the writer connection (ahead of any waiting
 * bookkeeping write, see gw_sq_writer_lock_first) and hands the batch to the syncer, which
 * fdatasyncs the WAL once and runs the callbacks. Each event is its event row plus its job
 * (or the duplicate count of the event it repeats) in that one transaction: deduplication
 * is the UNIQUE keys there, never check-then-insert. Callbacks run on the syncer (or, with
 * no syncer, the committer) thread. A checkpointer thread copies the WAL into the
 * database on its own connection. All three threads start in gw_sq_ingest_start and are
 * joined in gw_sq_ingest_stop.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cm_clock.h"
#include "cm_log.h"
#include "gw_store_sqlite_int.h"

#define BATCH_MAX 512

/* One queued ingest. */
struct pending {
    const gw_event_in_t *ev;
    gw_ingest_cb cb;
    void *ud;
    cm_err_t rc;
    gw_ingest_t result;
    struct pending *next;
};

/* ---- group commit ---------------------------------------------------------------- */

/* Writes one event (and its job, or its duplicate count) inside the open transaction. */
static cm_err_t write_one(gw_sq_store_t *s, const gw_event_in_t *ev, gw_ingest_t *result)
{
    sqlite3 *db = s->wr.db;
    sqlite3_stmt *st = s->st_event;
    sqlite3_reset(st);
    cm_err_t rc = gw_sq_bind(
        db, st,
        GW_SQ_ARGS(gw_sq_text(ev->provider), gw_sq_text(ev->event_key), gw_sq_text(ev->alt_key),
                   gw_sq_text(ev->event_type), gw_sq_text(ev->entity_id), gw_sq_text(ev->tenant_id),
                   gw_sq_text(ev->job_kind), gw_sq_int(ev->received_at_ms), gw_sq_text(ev->headers),
                   gw_sq_blob(ev->body, ev->body_len)));
    if (rc)
        return rc;
    /* ON CONFLICT DO NOTHING covers both unique keys: the insert itself is the dedup. */
    int step = sqlite3_step(st);
    int64_t event_id = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    if (step == SQLITE_ROW)
        step = sqlite3_step(st);
    sqlite3_reset(st);
    if (step != SQLITE_DONE)
        return gw_sq_fail(db, "insert event");
    if (event_id < 0) {
        *result = GW_INGEST_DUPLICATE;
        st = s->st_dup;
        sqlite3_reset(st);
        rc = gw_sq_bind(db, st,
                        GW_SQ_ARGS(gw_sq_int(ev->received_at_ms), gw_sq_text(ev->event_key),
                                   gw_sq_text(ev->alt_key)));
    } else {
        *result = GW_INGEST_ACCEPTED;
        if (!ev->job_kind)
            return CM_OK;
        st = s->st_job;
        sqlite3_reset(st);
        rc = gw_sq_bind(db, st,
                        GW_SQ_ARGS(gw_sq_int(event_id), gw_sq_text(ev->job_kind),
                                   gw_sq_text(ev->entity_id), gw_sq_text(ev->tenant_id),
                                   gw_sq_int(ev->received_at_ms)));
    }
    if (!rc && sqlite3_step(st) != SQLITE_DONE)
        rc = gw_sq_fail(db, "write job/duplicate");
    sqlite3_reset(st);
    return rc;
}

typedef struct {
    gw_sq_store_t *s;
    pending_t *batch;
    int isolate;      /* each event under a savepoint of its own */
    int event_failed; /* without isolate: an event failed and stopped the batch */
} batch_t;

typedef struct {
    gw_sq_store_t *s;
    pending_t *p;
} batch_event_t;

static cm_err_t write_event_tx(sqlite3 *db, void *arg)
{
    batch_event_t *e = arg;
    return write_one(e->s, e->p->ev, &e->p->result);
}

/* Writes the batch into the open transaction. With isolate, each event gets a savepoint,
 * so one that fails is undone alone; without, the first failure stops the batch (the
 * caller rolls back and writes it again isolated). Savepoints cost two statements per
 * event, about a sixth of an event's cost, and an event fails only on a storage fault. */
static cm_err_t write_batch(sqlite3 *db, void *arg)
{
    batch_t *b = arg;
    for (pending_t *p = b->batch; p; p = p->next) {
        if (b->isolate) {
            batch_event_t e = {.s = b->s, .p = p};
            p->rc = gw_sq_tx_nested(db, write_event_tx, &e);
        } else if ((p->rc = write_one(b->s, p->ev, &p->result)) != CM_OK) {
            b->event_failed = 1;
            return p->rc;
        }
    }
    return CM_OK;
}

static void commit_batch(gw_sq_store_t *s, pending_t *batch)
{
    batch_t b = {.s = s, .batch = batch};
    gw_sq_writer_sync(s, s->wal_fd >= 0 ? 0 : s->sync_full);
    cm_err_t rc = gw_sq_tx_write(s, write_batch, &b);
    if (rc && b.event_failed) {
        b.isolate = 1;
        rc = gw_sq_tx_write(s, write_batch, &b);
    }
    /* BEGIN or COMMIT failed: nothing of the batch is stored. */
    for (pending_t *p = batch; rc && p; p = p->next)
        p->rc = CM_ESTORE;
}

/* Runs the callbacks of a finished batch and frees it. */
static void answer(pending_t *batch)
{
    while (batch) {
        pending_t *next = batch->next;
        batch->cb(batch->ud, batch->rc, batch->result);
        free(batch);
        batch = next;
    }
}

static void *committer_main(void *arg)
{
    gw_sq_store_t *s = arg;
    prctl(PR_SET_NAME, "gw-commit"); /* names the thread in top -H, perf and gdb */
    for (;;) {
        pthread_mutex_lock(&s->qmu);
        while (!s->head && !s->stopping)
            pthread_cond_wait(&s->qcv, &s->qmu);
        if (!s->head && s->stopping) {
            pthread_mutex_unlock(&s->qmu);
            break;
        }
        /* Take up to BATCH_MAX: one fsync for all of them. */
        pending_t *batch = s->head, *last = s->head;
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
        gw_sq_writer_lock_first(s);
        int64_t t1 = cm_clock_mono_ns();
        commit_batch(s, batch);
        gw_sq_writer_unlock_first(s);
        CM_DEBUG("gw.store", "group commit: %d event(s), lock wait %lld us, commit %lld us", n,
                 (long long)(t1 - t0) / 1000, (long long)(cm_clock_mono_ns() - t1) / 1000);
        if (s->wal_fd < 0) {
            answer(batch);
            continue;
        }
        pthread_mutex_lock(&s->smu);
        if (s->stail)
            s->stail->next = batch;
        else
            s->shead = batch;
        while (batch->next)
            batch = batch->next;
        s->stail = batch;
        pthread_cond_signal(&s->scv);
        pthread_mutex_unlock(&s->smu);
    }
    return NULL;
}

/* Makes the committed batches durable with one fdatasync of the WAL, then answers them.
 *
 * Why this is as durable as synchronous=FULL: the committer's COMMIT (synchronous=NORMAL)
 * has written every frame of the batch into the WAL file before handing it over, and
 * fdatasync on any descriptor of that file flushes all of its written pages, so when it
 * returns the batch survives a power loss, exactly as FULL's sync inside COMMIT would
 * make it. A checkpoint in between is no hole: in NORMAL mode SQLite syncs the WAL before
 * copying it into the database and syncs the database after. What it buys: the disk
 * flush (about 1 ms here) leaves the committer's critical path, so the next batch is
 * written while this one is flushed, and the answers are sent from here too.
 * If the flush fails, the batch is answered 503 (not stored) and the senders retry. */
static void *syncer_main(void *arg)
{
    gw_sq_store_t *s = arg;
    prctl(PR_SET_NAME, "gw-sync");
    for (;;) {
        pthread_mutex_lock(&s->smu);
        while (!s->shead && !s->sync_stopping)
            pthread_cond_wait(&s->scv, &s->smu);
        pending_t *batch = s->shead;
        s->shead = s->stail = NULL;
        pthread_mutex_unlock(&s->smu);
        if (!batch)
            break; /* stopping, and nothing left to answer */
        if (fdatasync(s->wal_fd) != 0) {
            CM_ERROR("gw.store", "fdatasync of the WAL failed: answering the batch as not stored");
            for (pending_t *p = batch; p; p = p->next)
                if (!p->rc)
                    p->rc = CM_ESTORE;
        }
        answer(batch);
    }
    return NULL;
}

cm_err_t gw_sq_store_ingest_async(gw_sq_store_t *s, const gw_event_in_t *ev, gw_ingest_cb cb,
                                  void *ud)
{
    pending_t *p = calloc(1, sizeof *p);
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

cm_err_t gw_sq_store_ingest(gw_sq_store_t *s, const gw_event_in_t *ev, gw_ingest_t *result)
{
    waiter_t w = {.done = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    cm_err_t rc = gw_sq_store_ingest_async(s, ev, wake_waiter, &w);
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

/* Sets *stopping under mu and wakes the thread waiting on cv, then joins it if *started
 * (cleared, so a second call joins nothing). Each thread ends once it sees *stopping. */
static void stop_thread(pthread_t t, pthread_mutex_t *mu, pthread_cond_t *cv, int *stopping,
                        int *started)
{
    pthread_mutex_lock(mu);
    *stopping = 1;
    pthread_cond_broadcast(cv);
    int join = *started;
    *started = 0;
    pthread_mutex_unlock(mu);
    if (join)
        pthread_join(t, NULL);
}

void gw_sq_store_stop_intake(gw_sq_store_t *s)
{
    /* stopping also refuses new ingests (gw_sq_store_ingest_async reads it under qmu). */
    stop_thread(s->committer, &s->qmu, &s->qcv, &s->stopping, &s->started);
    /* The committer has handed over its last batch: the syncer answers it, then ends. */
    stop_thread(s->syncer, &s->smu, &s->scv, &s->sync_stopping, &s->syncer_started);
}

/* ---- writability ----------------------------------------------------------------- */

/* A full disk shows in the writes: SQLite appends to the WAL at each commit and the
 * append fails. Readiness asks gw_sq_store_writable, which answers from the outcome of
 * the last write when it is recent (under traffic, always) and otherwise writes a probe,
 * so a disk that fills while the gateway is idle is seen too, and one that has room
 * again is seen without waiting for a webhook that the balancer no longer sends. */
enum { WRITABLE_FRESH_MS = 1000, SHORT_OF_SPACE_MS = 60000 };

static int disk_fault(int code)
{
    int primary = code & 0xff;
    return primary == SQLITE_FULL || primary == SQLITE_IOERR || primary == SQLITE_READONLY ||
           primary == SQLITE_CANTOPEN;
}

/* Records whether the last write reached the disk, for gw_sq_store_writable. Returns 1
 * when the disk refused a write in the last SHORT_OF_SPACE_MS. */
static int note(gw_sq_store_t *s, int ok, int code)
{
    int64_t now = cm_clock_mono_ms();
    pthread_mutex_lock(&s->wmu);
    int was = s->w_ok;
    s->w_ok = ok;
    s->w_at_ms = now;
    if (!ok)
        s->w_fault_at_ms = now;
    int short_of_space = s->w_fault_at_ms && now - s->w_fault_at_ms < SHORT_OF_SPACE_MS;
    pthread_mutex_unlock(&s->wmu);
    if (was != ok) {
        if (ok)
            CM_INFO("gw.store", "the store is writable again");
        else
            CM_ERROR("gw.store", "the store cannot write: %s", sqlite3_errstr(code));
    }
    return short_of_space;
}

void gw_sq_note_write(gw_sq_store_t *s, cm_err_t rc, int code)
{
    /* A success is recorded by the WAL hook, not here: a transaction that changed nothing
     * (a worker's claim with no job due) commits without writing, and says nothing. */
    if (rc == CM_OK || !disk_fault(code))
        return;
    (void)note(s, 0, code);
    /* Copying the WAL into the database lets the next commit start the WAL over: frames
     * then overwrite the file in place, which a full disk allows, instead of appending
     * until the CKPT_PAGES mark (that took up to its 32 MiB of free space to recover). */
    pthread_mutex_lock(&s->cmu);
    s->ckpt_wanted = 1;
    pthread_cond_signal(&s->ccv);
    pthread_mutex_unlock(&s->cmu);
}

typedef struct {
    int version;
} probe_t;

static cm_err_t probe_version_row(sqlite3_stmt *st, void *arg)
{
    ((probe_t *)arg)->version = sqlite3_column_int(st, 0);
    return CM_OK;
}

/* Rewrites the schema version with its own value: a commit that writes one page (the
 * header) to the WAL and changes nothing. */
static cm_err_t probe_tx(sqlite3 *db, void *arg)
{
    probe_t *p = arg;
    cm_err_t rc = gw_sq_query(db, "PRAGMA user_version", GW_SQ_NO_ARGS, probe_version_row, p, NULL);
    if (rc)
        return rc;
    char sql[48];
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d", p->version);
    return gw_sq_exec(db, sql, GW_SQ_NO_ARGS, NULL);
}

int gw_sq_store_writable(gw_sq_store_t *s)
{
    pthread_mutex_lock(&s->wmu);
    int ok = s->w_ok;
    int fresh = s->w_at_ms && cm_clock_mono_ms() - s->w_at_ms < WRITABLE_FRESH_MS;
    pthread_mutex_unlock(&s->wmu);
    if (fresh)
        return ok;
    probe_t p = {.version = 0};
    /* gw_sq_write records the outcome; a failure was logged where it happened. */
    if (gw_sq_write(s, GW_SQ_BOOKKEEPING, probe_tx, &p) != CM_OK)
        CM_DEBUG("gw.store", "write probe failed");
    pthread_mutex_lock(&s->wmu);
    ok = s->w_ok;
    pthread_mutex_unlock(&s->wmu);
    return ok;
}

/* ---- checkpoints ------------------------------------------------------------------ */

/* SQLite's own auto-checkpoint copies the WAL into the database every 1000 pages (4 MB),
 * inside the commit that crosses the mark, holding the writer: with random keys the intake
 * and the workers cross it dozens of times a second, and each time an acknowledgement or a
 * job waits for a checkpoint and its fsyncs. Here the writer only signals; a thread of its
 * own runs PASSIVE checkpoints (they never block the writer) on its own connection, less
 * often, so a page rewritten many times in between is copied once (ingest with workers
 * 7.3-8.6k -> 11.3-11.9k req/s at 10000 pages). If the WAL still grows past CKPT_HARD
 * pages (the thread cannot keep up, or a reader pins old frames), the committing writer
 * checkpoints itself as SQLite would, so the WAL stays bounded. Durability is unchanged:
 * the checkpoint connection is synchronous=NORMAL, which syncs the WAL before copying it
 * and the database after. */
enum { CKPT_PAGES = 8000, CKPT_HARD = 64000 };

/* Runs after every commit that wrote frames to the WAL: also the proof that the store can
 * write (see gw_sq_store_writable). Short of space (the disk refused a write in the last
 * SHORT_OF_SPACE_MS), every commit asks for a checkpoint: the WAL then starts over as soon
 * as the database has taken its pages, and is rewritten in place instead of eating the
 * space just freed (with 1 MiB freed the WAL grew into it in a few seconds of traffic and
 * the store was full again; the database file had never been checkpointed). */
static int wal_hook(void *ud, sqlite3 *db, const char *name, int pages)
{
    gw_sq_store_t *s = ud;
    int short_of_space = note(s, 1, SQLITE_OK);
    if (pages >= CKPT_HARD) {
        (void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    } else if (pages >= CKPT_PAGES || short_of_space) {
        pthread_mutex_lock(&s->cmu);
        s->ckpt_wanted = 1;
        pthread_cond_signal(&s->ccv);
        pthread_mutex_unlock(&s->cmu);
    }
    return SQLITE_OK;
}

static void *checkpointer_main(void *arg)
{
    gw_sq_store_t *s = arg;
    prctl(PR_SET_NAME, "gw-ckpt");
    for (;;) {
        pthread_mutex_lock(&s->cmu);
        while (!s->ckpt_wanted && !s->ckpt_stopping)
            pthread_cond_wait(&s->ccv, &s->cmu);
        int stop = s->ckpt_stopping;
        s->ckpt_wanted = 0;
        pthread_mutex_unlock(&s->cmu);
        if (stop)
            break;
        int rc = sqlite3_wal_checkpoint_v2(s->ck.db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            CM_WARN("gw.store", "checkpoint: %s", sqlite3_errmsg(s->ck.db));
    }
    return NULL;
}

/* Starts fn(s) on *t and sets *started, which the stop paths test before joining. */
static cm_err_t start_thread(pthread_t *t, void *(*fn)(void *), gw_sq_store_t *s, int *started)
{
    if (pthread_create(t, NULL, fn, s) != 0)
        return CM_ENOMEM;
    *started = 1;
    return CM_OK;
}

cm_err_t gw_sq_ingest_start(gw_sq_store_t *s, const char *path, char *err)
{
    if (s->sync_full) {
        /* The migration's commit made the WAL file; it stays while the store is open. */
        char wal[4096];
        snprintf(wal, sizeof wal, "%s-wal", path);
        s->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
        if (s->wal_fd < 0)
            CM_WARN("gw.store", "%s: cannot open the WAL to sync it, commits sync themselves", wal);
    }
    /* Replaces SQLite's auto-checkpoint on the one connection that writes. */
    sqlite3_wal_hook(s->wr.db, wal_hook, s);
    cm_err_t rc = start_thread(&s->ckpt, checkpointer_main, s, &s->ckpt_started);
    /* Prepared once and kept here, not looked up in the statement cache per event. */
    if (!rc &&
        (gw_sq_stmt_prepare(s->wr.db,
                            "INSERT INTO events(provider,event_key,alt_key,event_type,entity_id,"
                            "tenant_id,job_kind,received_at_ms,headers,body) "
                            "VALUES(?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING RETURNING id",
                            &s->st_event) != SQLITE_OK ||
         gw_sq_stmt_prepare(s->wr.db,
                            "INSERT INTO jobs(event_id,kind,entity_id,tenant_id,state,next_at_ms,"
                            "created_at_ms,updated_at_ms) VALUES(?1,?2,?3,?4,'pending',?5,?5,?5)",
                            &s->st_job) != SQLITE_OK ||
         gw_sq_stmt_prepare(s->wr.db,
                            "UPDATE events SET duplicates=duplicates+1, last_duplicate_at_ms=?1 "
                            "WHERE event_key=?2 OR (?3 IS NOT NULL AND alt_key=?3)",
                            &s->st_dup) != SQLITE_OK)) {
        cm_errf(err, "prepare: %s", sqlite3_errmsg(s->wr.db));
        rc = CM_ESTORE;
    }
    if (!rc && s->wal_fd >= 0)
        rc = start_thread(&s->syncer, syncer_main, s, &s->syncer_started);
    if (!rc)
        rc = start_thread(&s->committer, committer_main, s, &s->started);
    return rc;
}

void gw_sq_ingest_stop(gw_sq_store_t *s)
{
    gw_sq_store_stop_intake(s);
    stop_thread(s->ckpt, &s->cmu, &s->ccv, &s->ckpt_stopping, &s->ckpt_started);
    sqlite3_finalize(s->st_event);
    sqlite3_finalize(s->st_job);
    sqlite3_finalize(s->st_dup);
    s->st_event = s->st_job = s->st_dup = NULL;
    if (s->wal_fd >= 0)
        close(s->wal_fd);
    s->wal_fd = -1;
}
