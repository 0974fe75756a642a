/* gw_store_sqlite.c - gw_store.h on SQLite (WAL, one file) with group commit. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cm_clock.h"
#include "cm_log.h"
#include "gw_store.h"

#define BATCH_MAX 512

/* One queued ingest. */
typedef struct pending {
    const gw_event_in_t *ev;
    gw_ingest_cb cb;
    void *ud;
    cm_err_t rc;
    gw_ingest_t result;
    struct pending *next;
} pending_t;

/* A connection with its lock. SQLite connections must not be used by two threads at once,
 * and WAL lets one connection read while the other writes. */
typedef struct {
    sqlite3 *db;
    pthread_mutex_t mu;
} conn_t;

struct gw_store {
    /* Every write goes through one connection under one mutex: writers then queue on a
     * mutex instead of meeting SQLite's busy handler, which sleeps in steps up to 100 ms
     * and wrecked acknowledgement latency when workers and the committer collided. */
    conn_t wr;
    conn_t rd;     /* reads (admin views, states); WAL lets them run beside the writer */
    int sync_full; /* configured durability of ingest commits */
    /* The committer has a batch and wants the writer: bookkeeping writes step aside, so
     * webhook acknowledgement never queues behind a stream of worker updates. */
    pthread_mutex_t prio_mu;
    pthread_cond_t prio_cv;
    int commit_waiting;
    int wr_sync_full; /* what the writer connection is set to now */
    sqlite3_stmt *st_event, *st_job, *st_dup;
    sqlite3_stmt *st_tx[5]; /* tx_sql, prepared once: sqlite3_exec would parse per event */

    pthread_t committer;
    /* Durable acknowledgement, pipelined: the committer commits a batch without waiting
     * for the disk and hands it to the syncer, which fsyncs the WAL and then answers; the
     * committer meanwhile writes the next batch (see committer_main). -1: no syncer, the
     * commit itself syncs (synchronous=FULL) as before. */
    int wal_fd;
    pthread_t syncer;
    int syncer_started, sync_stopping;
    pthread_mutex_t smu;
    pthread_cond_t scv;
    pending_t *shead, *stail;
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    pending_t *head, *tail;
    int stopping;
    int started;
    /* WAL checkpoints run on their own thread and connection (see checkpointer_main). */
    conn_t ck;
    pthread_t ckpt;
    int ckpt_started, ckpt_wanted, ckpt_stopping;
    pthread_mutex_t cmu;
    pthread_cond_t ccv;
};

static const char *const schema =
    "CREATE TABLE IF NOT EXISTS events("
    " id INTEGER PRIMARY KEY,"
    " provider TEXT NOT NULL,"
    " event_key TEXT NOT NULL UNIQUE,"
    " alt_key TEXT UNIQUE,"
    " event_type TEXT NOT NULL,"
    " entity_id TEXT,"
    " tenant_id TEXT,"
    " job_kind TEXT,"
    " received_at_ms INTEGER NOT NULL,"
    " headers TEXT,"
    " body BLOB NOT NULL,"
    " duplicates INTEGER NOT NULL DEFAULT 0,"
    " last_duplicate_at_ms INTEGER);"
    "CREATE INDEX IF NOT EXISTS events_entity ON events(entity_id);"
    "CREATE TABLE IF NOT EXISTS jobs("
    " id INTEGER PRIMARY KEY,"
    " event_id INTEGER NOT NULL REFERENCES events(id),"
    " kind TEXT NOT NULL,"
    " entity_id TEXT,"
    " tenant_id TEXT,"
    " state TEXT NOT NULL DEFAULT 'pending',"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_at_ms INTEGER NOT NULL,"
    " last_error TEXT,"
    " created_at_ms INTEGER NOT NULL,"
    " updated_at_ms INTEGER NOT NULL,"
    /* Schema 3 (the columns a migration appends, so they come last): attempts cut short
     * by a restart, and when a running job's claim lapses. */
    " crashes INTEGER NOT NULL DEFAULT 0,"
    " lease_until_ms INTEGER);"
    "CREATE INDEX IF NOT EXISTS jobs_due ON jobs(state, next_at_ms);"
    /* Schema 4: no index on jobs(entity_id) as a whole. Entity ids are random (Retell's
     * call ids), so such an index took a write to a random page for every webhook stored,
     * and those writes were most of the intake's cost once the table outgrew the cache
     * (ingest 7.9k -> 12k req/s with random ids). The claim only asks which entities have a
     * job running: a partial index of the few running jobs answers that; per-entity views
     * go through events(entity_id) and jobs(event_id), which grows in order. */
    "CREATE INDEX IF NOT EXISTS jobs_running ON jobs(entity_id) WHERE state='running';"
    "CREATE INDEX IF NOT EXISTS jobs_event ON jobs(event_id);"
    "CREATE TABLE IF NOT EXISTS entities("
    " kind TEXT NOT NULL,"
    " id TEXT NOT NULL,"
    " tenant_id TEXT,"
    " state TEXT NOT NULL,"
    " rank INTEGER NOT NULL DEFAULT 0,"
    " ref TEXT,"
    " error TEXT,"
    " flags INTEGER NOT NULL DEFAULT 0,"
    " updated_at_ms INTEGER NOT NULL,"
    " PRIMARY KEY(kind, id));"
    "CREATE TABLE IF NOT EXISTS sagas("
    " id TEXT PRIMARY KEY,"
    " tenant_id TEXT,"
    " state TEXT NOT NULL,"
    " reason TEXT,"
    " final TEXT,"
    " booking_uid TEXT,"
    " payment_intent TEXT,"
    " wanted_ms INTEGER NOT NULL,"
    " start_ms INTEGER NOT NULL DEFAULT 0,"
    " tries INTEGER NOT NULL DEFAULT 0,"
    " deadline_ms INTEGER NOT NULL,"
    " refunded INTEGER NOT NULL DEFAULT 0,"
    " cancelled INTEGER NOT NULL DEFAULT 0,"
    " created_at_ms INTEGER NOT NULL,"
    " updated_at_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS sagas_booking ON sagas(booking_uid);"
    "CREATE TABLE IF NOT EXISTS saga_steps("
    " id INTEGER PRIMARY KEY,"
    " saga_id TEXT NOT NULL,"
    " step TEXT NOT NULL,"
    " phase TEXT NOT NULL,"
    " detail TEXT,"
    " at_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS saga_steps_saga ON saga_steps(saga_id, id);";

/* PRAGMA user_version numbers the schema. A new database gets the whole schema above; an
 * older one gets it too (CREATE ... IF NOT EXISTS adds the tables it lacks, which was all
 * that versions 1 and 2 needed) and then every step below newer than its version, for
 * what CREATE cannot do to an existing table. Append steps; never edit one. */
#define SCHEMA_VERSION 4
static const struct {
    int version; /* what the database is at after this step */
    const char *sql;
} migrations[] = {
    {3, "ALTER TABLE jobs ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE jobs ADD COLUMN lease_until_ms INTEGER;"},
    {4, "DROP INDEX IF EXISTS jobs_entity;"},
};

static cm_err_t sql_fail(sqlite3 *db, const char *what)
{
    CM_ERROR("gw.store", "%s: %s", what, sqlite3_errmsg(db));
    return CM_ESTORE;
}

static cm_err_t exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        CM_ERROR("gw.store", "%s: %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
        return CM_ESTORE;
    }
    return CM_OK;
}

/* Statements are prepared once per connection and kept: parsing and planning a statement
 * cost more than running it, and a job runs a dozen. stmt_prepare() returns the
 * connection's idle statement for the same SQL when there is one; stmt_release() resets it
 * for the next user instead of finalizing it. The caller holds the connection's lock for
 * the whole use, and releases before unlocking, so "not busy" means "free". */
enum { STMT_KEEP_MAX = 128 }; /* beyond this, statements are finalized as before */

static int stmt_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    int n = 0;
    for (sqlite3_stmt *p = sqlite3_next_stmt(db, NULL); p; p = sqlite3_next_stmt(db, p), n++)
        if (!sqlite3_stmt_busy(p) && !strcmp(sqlite3_sql(p), sql)) {
            *st = p;
            return SQLITE_OK;
        }
    return sqlite3_prepare_v3(db, sql, -1, n < STMT_KEEP_MAX ? SQLITE_PREPARE_PERSISTENT : 0, st,
                              NULL);
}

static void stmt_release(sqlite3_stmt *st)
{
    if (!st)
        return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Runs one single-statement SQL text through the statement cache. */
static cm_err_t run(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int rc = stmt_prepare(db, sql, &st);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    stmt_release(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? CM_OK : sql_fail(db, sql);
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static cm_err_t conn_open(conn_t *c, const char *path, int sync_full, char *err)
{
    int rc = sqlite3_open_v2(
        path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    pthread_mutex_init(&c->mu, NULL);
    if (rc != SQLITE_OK) {
        cm_errf(err, "%s: %s", path, c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        return CM_ESTORE;
    }
    /* The busy timeout covers the moments when both connections want the write lock. */
    sqlite3_busy_timeout(c->db, 10000);
    char sql[160];
    snprintf(sql, sizeof sql,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA foreign_keys=ON;",
             sync_full ? "FULL" : "NORMAL");
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        cm_errf(err, "%s: %s", path, msg ? msg : "pragma failed");
        sqlite3_free(msg);
        return CM_ESTORE;
    }
    return CM_OK;
}

static void conn_close(conn_t *c)
{
    if (c->db) {
        sqlite3_stmt *st;
        while ((st = sqlite3_next_stmt(c->db, NULL)))
            sqlite3_finalize(st);
        sqlite3_close_v2(c->db);
        c->db = NULL;
    }
    pthread_mutex_destroy(&c->mu);
}

/* ---- group commit ---------------------------------------------------------------- */

enum { TX_BEGIN, TX_COMMIT, TX_SAVE, TX_RELEASE, TX_UNDO };
static const char *const tx_sql[] = {"BEGIN IMMEDIATE", "COMMIT", "SAVEPOINT ev", "RELEASE ev",
                                     "ROLLBACK TO ev"};

/* Runs one of the writer's prepared transaction statements. */
static cm_err_t tx(gw_store_t *s, int which)
{
    sqlite3_stmt *st = s->st_tx[which];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CM_OK : sql_fail(s->wr.db, tx_sql[which]);
}

/* Writes one event (and its job, or its duplicate count) inside the open transaction. */
static cm_err_t write_one(gw_store_t *s, const gw_event_in_t *ev, gw_ingest_t *result)
{
    sqlite3 *db = s->wr.db;
    sqlite3_stmt *st = s->st_event;
    cm_err_t rc = CM_OK;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    bind_text(st, 1, ev->provider);
    bind_text(st, 2, ev->event_key);
    bind_text(st, 3, ev->alt_key);
    bind_text(st, 4, ev->event_type);
    bind_text(st, 5, ev->entity_id);
    bind_text(st, 6, ev->tenant_id);
    bind_text(st, 7, ev->job_kind);
    sqlite3_bind_int64(st, 8, ev->received_at_ms);
    bind_text(st, 9, ev->headers);
    sqlite3_bind_blob(st, 10, ev->body, (int)ev->body_len, SQLITE_STATIC);
    /* ON CONFLICT DO NOTHING covers both unique keys: the insert itself is the dedup. */
    int step = sqlite3_step(st);
    int64_t event_id = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    if (step == SQLITE_ROW)
        step = sqlite3_step(st);
    sqlite3_reset(st);
    if (step != SQLITE_DONE)
        return sql_fail(db, "insert event");
    if (event_id < 0) {
        *result = GW_INGEST_DUPLICATE;
        st = s->st_dup;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, ev->received_at_ms);
        bind_text(st, 2, ev->event_key);
        bind_text(st, 3, ev->alt_key);
    } else {
        *result = GW_INGEST_ACCEPTED;
        if (!ev->job_kind)
            return CM_OK;
        st = s->st_job;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, event_id);
        bind_text(st, 2, ev->job_kind);
        bind_text(st, 3, ev->entity_id);
        bind_text(st, 4, ev->tenant_id);
        sqlite3_bind_int64(st, 5, ev->received_at_ms);
    }
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = sql_fail(db, "write job/duplicate");
    sqlite3_reset(st);
    return rc;
}

/* Sets the writer's synchronous mode (the caller holds the writer lock). Ingest commits
 * use the configured mode (FULL: fsync per commit) because an acknowledged webhook must
 * survive power loss. Job bookkeeping uses NORMAL: in WAL mode it still survives a
 * process crash (kill -9), and after a power loss the worst case is a job run again,
 * which every job handler tolerates; it saves several fsyncs per job that would
 * otherwise compete with the ingest commits. */
static void writer_sync(gw_store_t *s, int full)
{
    if (s->wr_sync_full == full)
        return;
    if (run(s->wr.db, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL") == CM_OK)
        s->wr_sync_full = full;
}

/* Writes the batch into the open transaction. With isolate, each event gets a savepoint,
 * so one that fails is undone alone; without, the first failure stops the batch (the
 * caller rolls back and writes it again isolated). Savepoints cost two statements per
 * event, about a sixth of an event's cost, and an event fails only on a storage fault. */
static int write_batch(gw_store_t *s, pending_t *batch, int isolate)
{
    for (pending_t *p = batch; p; p = p->next) {
        if (isolate && tx(s, TX_SAVE)) {
            p->rc = CM_ESTORE;
            continue;
        }
        p->rc = write_one(s, p->ev, &p->result);
        if (p->rc && !isolate)
            return -1;
        if (p->rc)
            (void)tx(s, TX_UNDO);
        if (isolate)
            (void)tx(s, TX_RELEASE);
    }
    return 0;
}

static void commit_batch(gw_store_t *s, pending_t *batch)
{
    sqlite3 *db = s->wr.db;
    writer_sync(s, s->wal_fd >= 0 ? 0 : s->sync_full);
    cm_err_t rc = tx(s, TX_BEGIN);
    if (!rc && write_batch(s, batch, 0) != 0) {
        /* Some error may have ended the transaction already; ROLLBACK then just fails. */
        (void)run(db, "ROLLBACK");
        rc = tx(s, TX_BEGIN);
        if (!rc)
            (void)write_batch(s, batch, 1);
    }
    for (pending_t *p = batch; rc && p; p = p->next)
        p->rc = rc;
    if (!rc && tx(s, TX_COMMIT)) {
        (void)run(db, "ROLLBACK");
        for (pending_t *p = batch; p; p = p->next)
            p->rc = CM_ESTORE;
    }
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
    gw_store_t *s = arg;
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
        pthread_mutex_lock(&s->prio_mu);
        s->commit_waiting = 1;
        pthread_mutex_unlock(&s->prio_mu);
        pthread_mutex_lock(&s->wr.mu);
        int64_t t1 = cm_clock_mono_ns();
        commit_batch(s, batch);
        pthread_mutex_unlock(&s->wr.mu);
        pthread_mutex_lock(&s->prio_mu);
        s->commit_waiting = 0;
        pthread_cond_broadcast(&s->prio_cv);
        pthread_mutex_unlock(&s->prio_mu);
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
    gw_store_t *s = arg;
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

cm_err_t gw_store_ingest_async(gw_store_t *s, const gw_event_in_t *ev, gw_ingest_cb cb, void *ud)
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

cm_err_t gw_store_ingest(gw_store_t *s, const gw_event_in_t *ev, gw_ingest_t *result)
{
    waiter_t w = {.done = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    cm_err_t rc = gw_store_ingest_async(s, ev, wake_waiter, &w);
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

void gw_store_stop_intake(gw_store_t *s)
{
    pthread_mutex_lock(&s->qmu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->qcv);
    int started = s->started;
    s->started = 0;
    pthread_mutex_unlock(&s->qmu);
    if (started)
        pthread_join(s->committer, NULL);
    /* The committer has handed over its last batch: the syncer answers it, then ends. */
    pthread_mutex_lock(&s->smu);
    s->sync_stopping = 1;
    pthread_cond_signal(&s->scv);
    started = s->syncer_started;
    s->syncer_started = 0;
    pthread_mutex_unlock(&s->smu);
    if (started)
        pthread_join(s->syncer, NULL);
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

static int wal_hook(void *ud, sqlite3 *db, const char *name, int pages)
{
    gw_store_t *s = ud;
    if (pages >= CKPT_HARD) {
        (void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    } else if (pages >= CKPT_PAGES) {
        pthread_mutex_lock(&s->cmu);
        s->ckpt_wanted = 1;
        pthread_cond_signal(&s->ccv);
        pthread_mutex_unlock(&s->cmu);
    }
    return SQLITE_OK;
}

static void *checkpointer_main(void *arg)
{
    gw_store_t *s = arg;
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

static void checkpointer_stop(gw_store_t *s)
{
    pthread_mutex_lock(&s->cmu);
    s->ckpt_stopping = 1;
    pthread_cond_signal(&s->ccv);
    int started = s->ckpt_started;
    s->ckpt_started = 0;
    pthread_mutex_unlock(&s->cmu);
    if (started)
        pthread_join(s->ckpt, NULL);
}

/* Takes the writer for bookkeeping, after any batch the committer is waiting to write. */
static void writer_lock_low(gw_store_t *s)
{
    pthread_mutex_lock(&s->prio_mu);
    while (s->commit_waiting)
        pthread_cond_wait(&s->prio_cv, &s->prio_mu);
    pthread_mutex_unlock(&s->prio_mu);
    pthread_mutex_lock(&s->wr.mu);
}

/* ---- open / close ---------------------------------------------------------------- */

/* Brings the database to SCHEMA_VERSION in one transaction, so a failed step leaves it as
 * it was, and two processes opening one file never both migrate it. A database made by a
 * newer gateway is refused rather than written with assumptions that may not hold. */
static cm_err_t migrate(sqlite3 *db, const char *path, char *err)
{
    sqlite3_stmt *st = NULL;
    int version = -1;
    cm_err_t rc = exec(db, "BEGIN IMMEDIATE");
    int in_tx = rc == CM_OK;
    if (!rc && sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (!rc && version < 0)
        rc = CM_ESTORE;
    else if (!rc && version > SCHEMA_VERSION)
        rc = CM_ESTATE;
    if (!rc)
        rc = exec(db, schema);
    /* Version 0 is a new file: the schema just made is already the latest. */
    for (size_t i = 0; !rc && version > 0 && i < sizeof migrations / sizeof migrations[0]; i++)
        if (migrations[i].version > version)
            rc = exec(db, migrations[i].sql);
    if (!rc) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version=%d", SCHEMA_VERSION);
        rc = exec(db, sql);
    }
    if (!rc)
        rc = exec(db, "COMMIT");
    if (rc == CM_ESTATE)
        cm_errf(err, "%s: schema version %d is newer than this gateway's (%d)", path, version,
                SCHEMA_VERSION);
    else if (rc)
        cm_errf(err, "%s: cannot bring the schema from version %d to %d: %s", path, version,
                SCHEMA_VERSION, sqlite3_errmsg(db));
    if (rc && in_tx)
        (void)exec(db, "ROLLBACK");
    return rc;
}

cm_err_t gw_store_open(const char *path, int sync_full, gw_store_t **out, char *err)
{
    gw_store_t *s = calloc(1, sizeof *s);
    cm_err_t rc = s ? CM_OK : CM_ENOMEM;
    *out = NULL;
    if (rc)
        return rc;
    pthread_mutex_init(&s->qmu, NULL);
    pthread_cond_init(&s->qcv, NULL);
    pthread_mutex_init(&s->prio_mu, NULL);
    pthread_cond_init(&s->prio_cv, NULL);
    pthread_mutex_init(&s->smu, NULL);
    pthread_cond_init(&s->scv, NULL);
    pthread_mutex_init(&s->cmu, NULL);
    pthread_cond_init(&s->ccv, NULL);
    s->wal_fd = -1;
    rc = conn_open(&s->wr, path, sync_full, err);
    if (!rc)
        rc = migrate(s->wr.db, path, err);
    s->sync_full = s->wr_sync_full = sync_full;
    if (!rc && sync_full) {
        /* The migration's commit made the WAL file; it stays while the store is open. */
        char wal[4096];
        snprintf(wal, sizeof wal, "%s-wal", path);
        s->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
        if (s->wal_fd < 0)
            CM_WARN("gw.store", "%s: cannot open the WAL to sync it, commits sync themselves", wal);
    }
    if (!rc)
        rc = conn_open(&s->rd, path, sync_full, err);
    if (!rc)
        rc = conn_open(&s->ck, path, 0, err);
    if (!rc) {
        /* Replaces SQLite's auto-checkpoint on the one connection that writes. */
        sqlite3_wal_hook(s->wr.db, wal_hook, s);
        if (pthread_create(&s->ckpt, NULL, checkpointer_main, s) != 0)
            rc = CM_ENOMEM;
        else
            s->ckpt_started = 1;
    }
    if (!rc && (stmt_prepare(s->wr.db,
                             "INSERT INTO events(provider,event_key,alt_key,event_type,entity_id,"
                             "tenant_id,job_kind,received_at_ms,headers,body) "
                             "VALUES(?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING RETURNING id",
                             &s->st_event) != SQLITE_OK ||
                stmt_prepare(s->wr.db,
                             "INSERT INTO jobs(event_id,kind,entity_id,tenant_id,state,next_at_ms,"
                             "created_at_ms,updated_at_ms) VALUES(?1,?2,?3,?4,'pending',?5,?5,?5)",
                             &s->st_job) != SQLITE_OK ||
                stmt_prepare(s->wr.db,
                             "UPDATE events SET duplicates=duplicates+1, last_duplicate_at_ms=?1 "
                             "WHERE event_key=?2 OR (?3 IS NOT NULL AND alt_key=?3)",
                             &s->st_dup) != SQLITE_OK)) {
        cm_errf(err, "prepare: %s", sqlite3_errmsg(s->wr.db));
        rc = CM_ESTORE;
    }
    for (size_t i = 0; !rc && i < sizeof s->st_tx / sizeof s->st_tx[0]; i++)
        if (stmt_prepare(s->wr.db, tx_sql[i], &s->st_tx[i]) != SQLITE_OK) {
            cm_errf(err, "prepare %s: %s", tx_sql[i], sqlite3_errmsg(s->wr.db));
            rc = CM_ESTORE;
        }
    if (!rc && s->wal_fd >= 0) {
        if (pthread_create(&s->syncer, NULL, syncer_main, s) != 0)
            rc = CM_ENOMEM;
        else
            s->syncer_started = 1;
    }
    if (!rc) {
        if (pthread_create(&s->committer, NULL, committer_main, s) != 0)
            rc = CM_ENOMEM;
        else
            s->started = 1;
    }
    if (rc) {
        gw_store_close(&s);
        return rc;
    }
    *out = s;
    return CM_OK;
}

void gw_store_close(gw_store_t **sp)
{
    gw_store_t *s = sp ? *sp : NULL;
    if (!s)
        return;
    gw_store_stop_intake(s);
    checkpointer_stop(s);
    sqlite3_finalize(s->st_event);
    sqlite3_finalize(s->st_job);
    sqlite3_finalize(s->st_dup);
    for (size_t i = 0; i < sizeof s->st_tx / sizeof s->st_tx[0]; i++)
        sqlite3_finalize(s->st_tx[i]);
    conn_close(&s->ck);
    conn_close(&s->rd);
    conn_close(&s->wr);
    if (s->wal_fd >= 0)
        close(s->wal_fd);
    pthread_cond_destroy(&s->scv);
    pthread_mutex_destroy(&s->smu);
    pthread_cond_destroy(&s->ccv);
    pthread_mutex_destroy(&s->cmu);
    pthread_cond_destroy(&s->qcv);
    pthread_mutex_destroy(&s->qmu);
    pthread_cond_destroy(&s->prio_cv);
    pthread_mutex_destroy(&s->prio_mu);
    free(s);
    *sp = NULL;
}

/* ---- work connection ------------------------------------------------------------- */

/* Prepares sql on the work connection and binds ints ("i") and texts ("t") from the
 * format string, in order. The caller holds the lock. */
static cm_err_t prep(sqlite3 *db, sqlite3_stmt **st, const char *sql, const char *fmt, va_list ap)
{
    if (stmt_prepare(db, sql, st) != SQLITE_OK)
        return sql_fail(db, sql);
    for (int i = 0; fmt[i]; i++) {
        if (fmt[i] == 'i')
            sqlite3_bind_int64(*st, i + 1, va_arg(ap, int64_t));
        else
            bind_text(*st, i + 1, va_arg(ap, const char *));
    }
    return CM_OK;
}

/* Runs one parameterised write; *changes (may be NULL) gets the rows changed. */
static cm_err_t work_write(gw_store_t *s, int *changes, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;
    writer_lock_low(s);
    writer_sync(s, 0);
    va_start(ap, fmt);
    cm_err_t rc = prep(s->wr.db, &st, sql, fmt, ap);
    va_end(ap);
    if (!rc && sqlite3_step(st) != SQLITE_DONE)
        rc = sql_fail(s->wr.db, sql);
    if (!rc && changes)
        *changes = sqlite3_changes(s->wr.db);
    stmt_release(st);
    pthread_mutex_unlock(&s->wr.mu);
    return rc;
}

/* Appends the current row's column i as a JSON value. */
static cm_err_t col_json(cm_buf_t *out, sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_NULL:
        return cm_buf_addstr(out, "null");
    case SQLITE_INTEGER:
        return cm_buf_printf(out, "%lld", (long long)sqlite3_column_int64(st, i));
    default:
        return cm_buf_add_json_str(out, (const char *)sqlite3_column_text(st, i));
    }
}

/* Runs a query and appends its rows as JSON objects. With a wrapper name, the output is
 * {"<name>":[...],"count":N}; without, the single row's object (CM_ENOTFOUND if none). */
static cm_err_t work_json(gw_store_t *s, cm_buf_t *out, const char *wrapper, const char *sql,
                          const char *fmt, ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;
    int rows = 0, step = SQLITE_DONE;
    size_t mark = out->len;
    pthread_mutex_lock(&s->rd.mu);
    va_start(ap, fmt);
    cm_err_t rc = prep(s->rd.db, &st, sql, fmt, ap);
    va_end(ap);
    if (!rc && wrapper)
        rc = cm_buf_printf(out, "{\"%s\":[", wrapper);
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        rc = cm_buf_addstr(out, rows ? ",{" : "{");
        for (int i = 0; !rc && i < sqlite3_column_count(st); i++) {
            rc = cm_buf_printf(out, "%s\"%s\":", i ? "," : "", sqlite3_column_name(st, i));
            if (!rc)
                rc = col_json(out, st, i);
        }
        if (!rc)
            rc = cm_buf_addstr(out, "}");
        rows++;
    }
    if (!rc && step != SQLITE_DONE)
        rc = sql_fail(s->rd.db, "read rows");
    if (!rc && wrapper)
        rc = cm_buf_printf(out, "],\"count\":%d}", rows);
    if (!rc && !wrapper && rows == 0)
        rc = CM_ENOTFOUND;
    stmt_release(st);
    pthread_mutex_unlock(&s->rd.mu);
    if (rc) {
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
    }
    return rc;
}

cm_err_t gw_store_recover(gw_store_t *s, int max_attempts, int64_t now_ms, int *requeued)
{
    *requeued = 0;
    /* The reason must say what happened: a job whose earlier attempts failed on their own
     * (last_error) and whose last one met a restart did not crash the worker every time.
     * crashes counts the attempts restarts cut short, this one included (+1); the values
     * on the right of SET are the row's before the update. */
    cm_err_t rc = work_write(
        s, NULL,
        "UPDATE jobs SET state='dead', crashes=crashes+1, lease_until_ms=NULL, updated_at_ms=?1, "
        "last_error=CASE WHEN crashes+1>=attempts THEN 'worker crashed on every attempt' "
        "ELSE 'interrupted by a restart on attempt '||attempts||' of '||?2||"
        "COALESCE('; previous error: '||last_error,'') END "
        "WHERE state='running' AND attempts>=?2",
        "ii", now_ms, (int64_t)max_attempts);
    if (!rc)
        rc = work_write(s, requeued,
                        "UPDATE jobs SET state='pending', crashes=crashes+1, lease_until_ms=NULL, "
                        "next_at_ms=?1, updated_at_ms=?1 WHERE state='running'",
                        "i", now_ms);
    return rc;
}

cm_err_t gw_store_reclaim(gw_store_t *s, int64_t now_ms, int64_t lease_ms, const int64_t *held,
                          size_t nheld, int *requeued)
{
    sqlite3 *db = s->wr.db;
    sqlite3_stmt *st = NULL;
    cm_err_t rc = CM_OK;
    *requeued = 0;
    writer_lock_low(s);
    writer_sync(s, 0);
    /* Renewing first, in the same transaction, is what keeps a held job whose lease just
     * ran out from being requeued under its worker. */
    int in_tx = run(db, "BEGIN IMMEDIATE") == CM_OK;
    if (!in_tx)
        rc = CM_ESTORE;
    else if (stmt_prepare(db, "UPDATE jobs SET lease_until_ms=?1 WHERE id=?2 AND state='running'",
                          &st) != SQLITE_OK)
        rc = sql_fail(db, "prepare lease renewal");
    for (size_t i = 0; !rc && i < nheld; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, now_ms + lease_ms);
        sqlite3_bind_int64(st, 2, held[i]);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = sql_fail(db, "lease renewal");
    }
    stmt_release(st);
    st = NULL;
    /* The attempt ran but its outcome is lost, which says nothing against the job: it goes
     * back to pending whatever its attempts (the next outcome applies max_attempts as
     * usual), and last_error says why it runs again. */
    if (!rc && stmt_prepare(db,
                            "UPDATE jobs SET state='pending', lease_until_ms=NULL, "
                            "next_at_ms=?1, updated_at_ms=?1, last_error='outcome of "
                            "attempt '||attempts||' not stored (lease expired)' "
                            "WHERE state='running' AND lease_until_ms<=?1",
                            &st) != SQLITE_OK)
        rc = sql_fail(db, "prepare reclaim");
    if (!rc) {
        sqlite3_bind_int64(st, 1, now_ms);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = sql_fail(db, "reclaim");
        else
            *requeued = sqlite3_changes(db);
    }
    stmt_release(st);
    if (in_tx && run(db, rc ? "ROLLBACK" : "COMMIT") != CM_OK && !rc) {
        (void)run(db, "ROLLBACK");
        rc = CM_ESTORE;
    }
    if (rc)
        *requeued = 0;
    pthread_mutex_unlock(&s->wr.mu);
    return rc;
}

void gw_store_set_busy_timeout(gw_store_t *s, int ms)
{
    pthread_mutex_lock(&s->wr.mu);
    sqlite3_busy_timeout(s->wr.db, ms);
    pthread_mutex_unlock(&s->wr.mu);
    pthread_mutex_lock(&s->rd.mu);
    sqlite3_busy_timeout(s->rd.db, ms);
    pthread_mutex_unlock(&s->rd.mu);
}

cm_err_t gw_store_claim(gw_store_t *s, int64_t now_ms, int64_t lease_ms, gw_job_t *job,
                        int64_t *next_due_ms)
{
    return gw_store_done_and_claim(s, 0, now_ms, lease_ms, job, next_due_ms);
}

cm_err_t gw_store_done_and_claim(gw_store_t *s, int64_t done_id, int64_t now_ms, int64_t lease_ms,
                                 gw_job_t *job, int64_t *next_due_ms)
{
    sqlite3 *db = s->wr.db;
    sqlite3_stmt *st = NULL;
    cm_err_t rc = CM_ENOTFOUND;
    int in_tx = 0;
    memset(job, 0, sizeof *job);
    cm_buf_init(&job->body, 64u << 20);
    *next_due_ms = -1;
    writer_lock_low(s);
    writer_sync(s, 0);
    /* The claim and the read of its body are one transaction: if the read fails, the job
     * must not be left 'running' with nobody working on it (that would block its entity
     * until the next restart). */
    in_tx = run(db, "BEGIN IMMEDIATE") == CM_OK;
    if (!in_tx) {
        rc = CM_ESTORE;
        goto out;
    }
    /* The finished job's outcome rides in this transaction: one commit, and the same
     * pages of jobs and its index, instead of a transaction of its own. Done first, so the
     * claim below already sees its entity free. */
    if (done_id > 0) {
        if (stmt_prepare(db,
                         "UPDATE jobs SET state='done', lease_until_ms=NULL, updated_at_ms=?1 "
                         "WHERE id=?2",
                         &st) != SQLITE_OK ||
            sqlite3_bind_int64(st, 1, now_ms) != SQLITE_OK ||
            sqlite3_bind_int64(st, 2, done_id) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
            rc = sql_fail(db, "job done");
            goto out;
        }
        stmt_release(st);
        st = NULL;
    }
    /* A job whose entity already has one running waits: per-entity serialisation. */
    if (stmt_prepare(db,
                     "UPDATE jobs SET state='running', attempts=attempts+1, "
                     "lease_until_ms=?2, updated_at_ms=?1 WHERE id=(SELECT j.id FROM jobs j "
                     "WHERE j.state='pending' AND j.next_at_ms<=?1 AND NOT EXISTS "
                     "(SELECT 1 FROM jobs r WHERE "
                     "r.state='running' AND r.entity_id=j.entity_id) "
                     "ORDER BY j.next_at_ms, j.id LIMIT 1) "
                     "RETURNING id, event_id, kind, entity_id, tenant_id, attempts",
                     &st) != SQLITE_OK) {
        rc = sql_fail(db, "prepare claim");
        goto out;
    }
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, now_ms + lease_ms);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        const unsigned char *ent = sqlite3_column_text(st, 3);
        const unsigned char *ten = sqlite3_column_text(st, 4);
        job->id = sqlite3_column_int64(st, 0);
        job->event_id = sqlite3_column_int64(st, 1);
        snprintf(job->kind, sizeof job->kind, "%s", (const char *)sqlite3_column_text(st, 2));
        snprintf(job->entity_id, sizeof job->entity_id, "%s", ent ? (const char *)ent : "");
        snprintf(job->tenant_id, sizeof job->tenant_id, "%s", ten ? (const char *)ten : "");
        job->attempts = sqlite3_column_int(st, 5);
        step = sqlite3_step(st);
        rc = CM_OK;
    }
    if (step != SQLITE_DONE) {
        rc = sql_fail(db, "claim");
        goto out;
    }
    stmt_release(st);
    st = NULL;
    if (rc == CM_OK) {
        if (stmt_prepare(db, "SELECT body, headers FROM events WHERE id=?", &st) != SQLITE_OK ||
            sqlite3_bind_int64(st, 1, job->event_id) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
            rc = sql_fail(db, "load event body");
        else if (cm_buf_add(&job->body, sqlite3_column_blob(st, 0),
                            (size_t)sqlite3_column_bytes(st, 0)) != CM_OK)
            rc = CM_ENOMEM;
        else {
            /* The intake wrote it as "traceparent":"<55 chars>"; nothing else to parse. */
            const char *h = (const char *)sqlite3_column_text(st, 1);
            const char *tp = h ? strstr(h, "\"traceparent\":\"") : NULL;
            if (tp)
                snprintf(job->traceparent, sizeof job->traceparent, "%.55s", tp + 15);
        }
    } else if (stmt_prepare(db,
                            "SELECT MIN(next_at_ms) FROM jobs WHERE state='pending' AND "
                            "next_at_ms>?",
                            &st) == SQLITE_OK &&
               sqlite3_bind_int64(st, 1, now_ms) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
               sqlite3_column_type(st, 0) != SQLITE_NULL) {
        /* Due jobs held back by a running entity are not counted: the worker finishing
         * that entity's job wakes the others. */
        *next_due_ms = sqlite3_column_int64(st, 0);
    }
out:
    stmt_release(st);
    /* CM_ENOTFOUND changed nothing; anything else but success is undone. */
    if (in_tx && run(db, rc == CM_OK || rc == CM_ENOTFOUND ? "COMMIT" : "ROLLBACK") != CM_OK &&
        rc == CM_OK) {
        (void)run(db, "ROLLBACK");
        rc = CM_ESTORE;
    }
    pthread_mutex_unlock(&s->wr.mu);
    if (rc != CM_OK)
        gw_store_job_free(job);
    return rc;
}

void gw_store_job_free(gw_job_t *job)
{
    cm_buf_free(&job->body);
}

cm_err_t gw_store_job_done(gw_store_t *s, int64_t job_id, int64_t now_ms)
{
    return work_write(s, NULL,
                      "UPDATE jobs SET state='done', lease_until_ms=NULL, updated_at_ms=? "
                      "WHERE id=?",
                      "ii", now_ms, job_id);
}

cm_err_t gw_store_job_retry(gw_store_t *s, int64_t job_id, int64_t retry_at_ms, const char *error,
                            int64_t now_ms)
{
    return work_write(s, NULL,
                      "UPDATE jobs SET state='pending', next_at_ms=?, last_error=?, "
                      "lease_until_ms=NULL, updated_at_ms=? WHERE id=?",
                      "itii", retry_at_ms, error, now_ms, job_id);
}

cm_err_t gw_store_job_dead(gw_store_t *s, int64_t job_id, const char *reason, int64_t now_ms)
{
    return work_write(s, NULL,
                      "UPDATE jobs SET state='dead', last_error=?, lease_until_ms=NULL, "
                      "updated_at_ms=? WHERE id=?",
                      "tii", reason, now_ms, job_id);
}

/* gw_store_entity_set's statement; gw_store_saga_put and gw_store_job_dead_call run it
 * too. */
static const char entity_set_sql[] =
    "INSERT INTO entities(kind,id,tenant_id,state,ref,error,updated_at_ms) "
    "VALUES(?,?,?,?,?,?,?) ON CONFLICT(kind,id) DO UPDATE SET "
    "tenant_id=COALESCE(excluded.tenant_id,entities.tenant_id), "
    "state=excluded.state, ref=COALESCE(excluded.ref,entities.ref), "
    "error=excluded.error, updated_at_ms=excluded.updated_at_ms";

cm_err_t gw_store_job_dead_call(gw_store_t *s, int64_t job_id, const char *reason,
                                const char *call_id, const char *tenant_id, const char *call_state,
                                int64_t now_ms)
{
    sqlite3 *db = s->wr.db;
    sqlite3_stmt *st = NULL;
    cm_err_t rc = CM_OK;
    writer_lock_low(s);
    writer_sync(s, 0);
    int in_tx = run(db, "BEGIN IMMEDIATE") == CM_OK;
    if (!in_tx)
        rc = CM_ESTORE;
    else if (stmt_prepare(db,
                          "UPDATE jobs SET state='dead', last_error=?, lease_until_ms=NULL, "
                          "updated_at_ms=? WHERE id=?",
                          &st) != SQLITE_OK)
        rc = sql_fail(db, "prepare job dead");
    if (!rc) {
        bind_text(st, 1, reason);
        sqlite3_bind_int64(st, 2, now_ms);
        sqlite3_bind_int64(st, 3, job_id);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = sql_fail(db, "job dead");
    }
    stmt_release(st);
    st = NULL;
    /* The call's view changes with the dead letter or not at all: written apart, a reader
     * saw the job dead and the call unchanged, and a failed second write left it so. */
    if (!rc && stmt_prepare(db, entity_set_sql, &st) != SQLITE_OK)
        rc = sql_fail(db, "prepare call state");
    if (!rc) {
        bind_text(st, 1, "call");
        bind_text(st, 2, call_id);
        bind_text(st, 3, tenant_id);
        bind_text(st, 4, call_state);
        bind_text(st, 5, NULL);
        bind_text(st, 6, reason);
        sqlite3_bind_int64(st, 7, now_ms);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = sql_fail(db, "call state");
    }
    stmt_release(st);
    if (in_tx && run(db, rc ? "ROLLBACK" : "COMMIT") != CM_OK && !rc) {
        (void)run(db, "ROLLBACK");
        rc = CM_ESTORE;
    }
    pthread_mutex_unlock(&s->wr.mu);
    return rc;
}

/* Moves a dead job to new_state; tells a missing job from one in another state. */
static cm_err_t move_dead(gw_store_t *s, int64_t job_id, const char *sql, int64_t now_ms)
{
    int changed = 0;
    cm_err_t rc = work_write(s, &changed, sql, "ii", now_ms, job_id);
    if (rc || changed)
        return rc;
    cm_buf_t b;
    cm_buf_init(&b, 4096);
    rc = work_json(s, &b, NULL, "SELECT id FROM jobs WHERE id=?", "i", job_id);
    cm_buf_free(&b);
    return rc == CM_OK ? CM_ESTATE : rc;
}

cm_err_t gw_store_job_replay(gw_store_t *s, int64_t job_id, int64_t now_ms)
{
    return move_dead(s, job_id,
                     "UPDATE jobs SET state='pending', attempts=0, crashes=0, next_at_ms=?1, "
                     "updated_at_ms=?1 WHERE id=?2 AND state='dead'",
                     now_ms);
}

cm_err_t gw_store_job_discard(gw_store_t *s, int64_t job_id, int64_t now_ms)
{
    return move_dead(s, job_id,
                     "UPDATE jobs SET state='discarded', updated_at_ms=?1 WHERE id=?2 AND "
                     "state='dead'",
                     now_ms);
}

cm_err_t gw_store_event_rerun(gw_store_t *s, int64_t event_id, int64_t now_ms, int64_t *job_id)
{
    sqlite3_stmt *st = NULL;
    cm_err_t rc = CM_OK;
    *job_id = -1;
    writer_lock_low(s);
    writer_sync(s, 0);
    if (stmt_prepare(s->wr.db,
                     "INSERT INTO jobs(event_id,kind,entity_id,tenant_id,state,next_at_ms,"
                     "created_at_ms,updated_at_ms) SELECT id, job_kind, entity_id, "
                     "tenant_id, 'pending', ?1, ?1, ?1 FROM events WHERE id=?2 AND "
                     "job_kind IS NOT NULL RETURNING id",
                     &st) != SQLITE_OK) {
        rc = sql_fail(s->wr.db, "prepare rerun");
    } else {
        sqlite3_bind_int64(st, 1, now_ms);
        sqlite3_bind_int64(st, 2, event_id);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            *job_id = sqlite3_column_int64(st, 0);
        else if (step == SQLITE_DONE)
            rc = CM_ENOTFOUND;
        else
            rc = sql_fail(s->wr.db, "rerun");
    }
    stmt_release(st);
    pthread_mutex_unlock(&s->wr.mu);
    return rc;
}

cm_err_t gw_store_queue_stats(gw_store_t *s, gw_queue_stats_t *q)
{
    sqlite3_stmt *st = NULL;
    cm_err_t rc = CM_OK;
    memset(q, 0, sizeof *q);
    pthread_mutex_lock(&s->rd.mu);
    if (stmt_prepare(s->rd.db, "SELECT state, COUNT(*) FROM jobs GROUP BY state", &st) !=
        SQLITE_OK) {
        rc = sql_fail(s->rd.db, "queue stats");
    } else {
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            const char *state = (const char *)sqlite3_column_text(st, 0);
            int64_t n = sqlite3_column_int64(st, 1);
            if (!strcmp(state, "pending"))
                q->pending = n;
            else if (!strcmp(state, "running"))
                q->running = n;
            else if (!strcmp(state, "done"))
                q->done = n;
            else if (!strcmp(state, "dead"))
                q->dead = n;
            else if (!strcmp(state, "discarded"))
                q->discarded = n;
        }
        if (step != SQLITE_DONE)
            rc = sql_fail(s->rd.db, "queue stats");
    }
    stmt_release(st);
    pthread_mutex_unlock(&s->rd.mu);
    return rc;
}

cm_err_t gw_store_entity_set(gw_store_t *s, const char *kind, const char *id, const char *tenant_id,
                             const char *state, const char *ref, const char *error, int64_t now_ms)
{
    return work_write(s, NULL, entity_set_sql, "tttttti", kind, id, tenant_id, state, ref, error,
                      now_ms);
}

cm_err_t gw_store_entity_merge(gw_store_t *s, const char *kind, const char *id,
                               const char *tenant_id, const char *state, int rank, const char *ref,
                               int64_t flags, int64_t now_ms)
{
    if (!state)
        return work_write(s, NULL,
                          "INSERT INTO entities(kind,id,tenant_id,state,rank,ref,flags,"
                          "updated_at_ms) VALUES(?,?,?,'received',0,?,?,?) "
                          "ON CONFLICT(kind,id) DO UPDATE SET "
                          "tenant_id=COALESCE(entities.tenant_id,excluded.tenant_id), "
                          "ref=COALESCE(entities.ref,excluded.ref), "
                          "flags=entities.flags|excluded.flags, "
                          "updated_at_ms=excluded.updated_at_ms",
                          "ttttii", kind, id, tenant_id, ref, flags, now_ms);
    /* A join-semilattice: the state with the higher (rank, state) pair wins and flags are
     * OR-ed; both are order-independent and idempotent, which is what makes any delivery
     * order and any number of copies converge to the same row. */
    return work_write(s, NULL,
                      "INSERT INTO entities(kind,id,tenant_id,state,rank,ref,flags,updated_at_ms) "
                      "VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(kind,id) DO UPDATE SET "
                      "tenant_id=COALESCE(entities.tenant_id,excluded.tenant_id), "
                      "state=CASE WHEN excluded.rank>entities.rank OR (excluded.rank="
                      "entities.rank AND excluded.state>entities.state) THEN excluded.state "
                      "ELSE entities.state END, "
                      "rank=MAX(entities.rank,excluded.rank), "
                      "ref=COALESCE(entities.ref,excluded.ref), "
                      "flags=entities.flags|excluded.flags, "
                      "updated_at_ms=excluded.updated_at_ms",
                      "ttttitii", kind, id, tenant_id, state, (int64_t)rank, ref, flags, now_ms);
}

cm_err_t gw_store_entity_state(gw_store_t *s, const char *kind, const char *id, char *state,
                               size_t cap, int64_t *flags)
{
    sqlite3_stmt *st = NULL;
    cm_err_t rc = CM_ENOTFOUND;
    pthread_mutex_lock(&s->rd.mu);
    if (stmt_prepare(s->rd.db, "SELECT state, flags FROM entities WHERE kind=? AND id=?", &st) !=
        SQLITE_OK) {
        rc = sql_fail(s->rd.db, "prepare entity state");
    } else {
        bind_text(st, 1, kind);
        bind_text(st, 2, id);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            snprintf(state, cap, "%s", (const char *)sqlite3_column_text(st, 0));
            if (flags)
                *flags = sqlite3_column_int64(st, 1);
            rc = CM_OK;
        } else if (step != SQLITE_DONE) {
            rc = sql_fail(s->rd.db, "entity state");
        }
    }
    stmt_release(st);
    pthread_mutex_unlock(&s->rd.mu);
    return rc;
}

cm_err_t gw_store_entity_json(gw_store_t *s, const char *kind, const char *id, cm_buf_t *out)
{
    return work_json(s, out, NULL,
                     "SELECT e.kind, e.id, e.tenant_id, e.state, e.rank, e.ref, e.error, e.flags, "
                     "e.updated_at_ms, (SELECT COALESCE(SUM(j.attempts),0) FROM events v "
                     "JOIN jobs j ON j.event_id=v.id WHERE v.entity_id=e.id) AS attempts "
                     "FROM entities e WHERE e.kind=? AND e.id=?",
                     "tt", kind, id);
}

cm_err_t gw_store_events_json(gw_store_t *s, const char *provider, const char *entity_id, int limit,
                              cm_buf_t *out)
{
    return work_json(s, out, "events",
                     "SELECT id, provider, event_key, alt_key, event_type, entity_id, tenant_id, "
                     "received_at_ms, duplicates FROM events WHERE (?1 IS NULL OR provider=?1) "
                     "AND (?2 IS NULL OR entity_id=?2) ORDER BY id LIMIT ?3",
                     "tti", provider, entity_id, (int64_t)limit);
}

cm_err_t gw_store_jobs_json(gw_store_t *s, const char *state, int limit, cm_buf_t *out)
{
    return work_json(s, out, "jobs",
                     "SELECT j.id, j.event_id, j.kind, j.entity_id, j.tenant_id, j.state, "
                     "j.attempts, j.next_at_ms, j.last_error, j.created_at_ms, j.updated_at_ms, "
                     "e.event_key FROM jobs j JOIN events e ON e.id=j.event_id WHERE "
                     "(?1 IS NULL OR j.state=?1) ORDER BY j.id LIMIT ?2",
                     "ti", state, (int64_t)limit);
}

cm_err_t gw_store_job_json(gw_store_t *s, int64_t job_id, cm_buf_t *out)
{
    return work_json(s, out, NULL,
                     "SELECT j.id, j.event_id, j.kind, j.entity_id, j.tenant_id, j.state, "
                     "j.attempts, j.next_at_ms, j.last_error, j.created_at_ms, j.updated_at_ms, "
                     "e.provider, e.event_key, e.event_type, e.received_at_ms, e.headers, "
                     "CAST(e.body AS TEXT) AS body FROM jobs j JOIN events e ON e.id=j.event_id "
                     "WHERE j.id=?",
                     "i", job_id);
}

/* ---- sagas ------------------------------------------------------------------------ */

static void copy_col(char *dst, size_t cap, sqlite3_stmt *st, int i)
{
    const unsigned char *v = sqlite3_column_text(st, i);
    snprintf(dst, cap, "%s", v ? (const char *)v : "");
}

static cm_err_t saga_select(gw_store_t *s, const char *where, const char *key, gw_saga_t *out)
{
    char sql[512];
    sqlite3_stmt *st = NULL;
    cm_err_t rc = CM_ENOTFOUND;
    snprintf(sql, sizeof sql,
             "SELECT id, tenant_id, state, reason, final, booking_uid, payment_intent, "
             "wanted_ms, start_ms, tries, deadline_ms, created_at_ms, refunded, cancelled "
             "FROM sagas WHERE %s=? LIMIT 1",
             where);
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->rd.mu);
    if (stmt_prepare(s->rd.db, sql, &st) != SQLITE_OK) {
        rc = sql_fail(s->rd.db, "prepare saga");
    } else {
        bind_text(st, 1, key);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            copy_col(out->id, sizeof out->id, st, 0);
            copy_col(out->tenant_id, sizeof out->tenant_id, st, 1);
            copy_col(out->state, sizeof out->state, st, 2);
            copy_col(out->reason, sizeof out->reason, st, 3);
            copy_col(out->final, sizeof out->final, st, 4);
            copy_col(out->booking_uid, sizeof out->booking_uid, st, 5);
            copy_col(out->payment_intent, sizeof out->payment_intent, st, 6);
            out->wanted_ms = sqlite3_column_int64(st, 7);
            out->start_ms = sqlite3_column_int64(st, 8);
            out->tries = sqlite3_column_int(st, 9);
            out->deadline_ms = sqlite3_column_int64(st, 10);
            out->created_at_ms = sqlite3_column_int64(st, 11);
            out->refunded = sqlite3_column_int(st, 12);
            out->cancelled = sqlite3_column_int(st, 13);
            rc = CM_OK;
        } else if (step != SQLITE_DONE) {
            rc = sql_fail(s->rd.db, "saga");
        }
    }
    stmt_release(st);
    pthread_mutex_unlock(&s->rd.mu);
    return rc;
}

cm_err_t gw_store_saga_get(gw_store_t *s, const char *id, gw_saga_t *out)
{
    return saga_select(s, "id", id, out);
}

cm_err_t gw_store_saga_by_booking(gw_store_t *s, const char *uid, gw_saga_t *out)
{
    return saga_select(s, "booking_uid", uid, out);
}

static const char *nz(const char *v)
{
    return v && *v ? v : NULL;
}

cm_err_t gw_store_saga_put(gw_store_t *s, const gw_saga_t *sg, const char *step, const char *phase,
                           const char *detail, int64_t now_ms)
{
    sqlite3 *db = s->wr.db;
    sqlite3_stmt *st = NULL;
    writer_lock_low(s);
    /* The saga's state is what makes a restart resume correctly, so unlike other
     * bookkeeping it is committed with the configured durability. */
    writer_sync(s, s->sync_full);
    cm_err_t rc = run(db, "BEGIN IMMEDIATE");
    if (!rc && stmt_prepare(db,
                            "INSERT INTO sagas(id,tenant_id,state,reason,final,booking_uid,"
                            "payment_intent,wanted_ms,start_ms,tries,deadline_ms,refunded,"
                            "cancelled,created_at_ms,updated_at_ms) "
                            "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE "
                            "SET state=excluded.state, reason=excluded.reason, "
                            "final=excluded.final, booking_uid=excluded.booking_uid, "
                            "payment_intent=excluded.payment_intent, "
                            "start_ms=excluded.start_ms, tries=excluded.tries, "
                            "refunded=excluded.refunded, cancelled=excluded.cancelled, "
                            "updated_at_ms=excluded.updated_at_ms",
                            &st) != SQLITE_OK)
        rc = sql_fail(db, "prepare saga put");
    if (!rc) {
        bind_text(st, 1, sg->id);
        bind_text(st, 2, nz(sg->tenant_id));
        bind_text(st, 3, sg->state);
        bind_text(st, 4, nz(sg->reason));
        bind_text(st, 5, nz(sg->final));
        bind_text(st, 6, nz(sg->booking_uid));
        bind_text(st, 7, nz(sg->payment_intent));
        sqlite3_bind_int64(st, 8, sg->wanted_ms);
        sqlite3_bind_int64(st, 9, sg->start_ms);
        sqlite3_bind_int(st, 10, sg->tries);
        sqlite3_bind_int64(st, 11, sg->deadline_ms);
        sqlite3_bind_int(st, 12, sg->refunded);
        sqlite3_bind_int(st, 13, sg->cancelled);
        sqlite3_bind_int64(st, 14, sg->created_at_ms ? sg->created_at_ms : now_ms);
        sqlite3_bind_int64(st, 15, now_ms);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = sql_fail(db, "saga put");
    }
    stmt_release(st);
    st = NULL;
    if (!rc && step) {
        if (stmt_prepare(db,
                         "INSERT INTO saga_steps(saga_id,step,phase,detail,at_ms) "
                         "VALUES(?,?,?,?,?)",
                         &st) != SQLITE_OK) {
            rc = sql_fail(db, "prepare saga step");
        } else {
            bind_text(st, 1, sg->id);
            bind_text(st, 2, step);
            bind_text(st, 3, phase);
            bind_text(st, 4, detail);
            sqlite3_bind_int64(st, 5, now_ms);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = sql_fail(db, "saga step");
        }
        stmt_release(st);
        st = NULL;
    }
    if (!rc && sg->call_state[0]) {
        if (stmt_prepare(db, entity_set_sql, &st) != SQLITE_OK) {
            rc = sql_fail(db, "prepare call state");
        } else {
            bind_text(st, 1, "call");
            bind_text(st, 2, sg->id);
            bind_text(st, 3, nz(sg->tenant_id));
            bind_text(st, 4, sg->call_state);
            bind_text(st, 5, nz(sg->booking_uid));
            bind_text(st, 6, nz(sg->reason));
            sqlite3_bind_int64(st, 7, now_ms);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = sql_fail(db, "call state");
        }
        stmt_release(st);
    }
    if (!rc)
        rc = run(db, "COMMIT");
    if (rc)
        (void)run(db, "ROLLBACK");
    pthread_mutex_unlock(&s->wr.mu);
    return rc;
}

int gw_store_saga_intent_open(gw_store_t *s, const char *id, const char *step)
{
    sqlite3_stmt *st = NULL;
    int open = -1;
    pthread_mutex_lock(&s->rd.mu);
    if (stmt_prepare(s->rd.db,
                     "SELECT phase FROM saga_steps WHERE saga_id=? AND step=? "
                     "ORDER BY id DESC LIMIT 1",
                     &st) == SQLITE_OK) {
        bind_text(st, 1, id);
        bind_text(st, 2, step);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW)
            open = !strcmp((const char *)sqlite3_column_text(st, 0), "intent");
        else if (r == SQLITE_DONE)
            open = 0;
    }
    if (open < 0)
        (void)sql_fail(s->rd.db, "saga intent");
    stmt_release(st);
    pthread_mutex_unlock(&s->rd.mu);
    return open;
}

cm_err_t gw_store_saga_json(gw_store_t *s, const char *id, cm_buf_t *out)
{
    size_t mark = out->len;
    cm_err_t rc = cm_buf_addstr(out, "{\"saga\":");
    if (!rc)
        rc = work_json(s, out, NULL, "SELECT * FROM sagas WHERE id=?", "t", id);
    if (!rc)
        rc = cm_buf_addstr(out, ",\"history\":");
    if (!rc)
        rc = work_json(s, out, "steps",
                       "SELECT step, phase, detail, at_ms FROM saga_steps WHERE saga_id=? "
                       "ORDER BY id",
                       "t", id);
    if (!rc)
        rc = cm_buf_addstr(out, "}");
    if (rc) {
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
    }
    return rc;
}

cm_err_t gw_store_sagas_json(gw_store_t *s, const char *state, int limit, cm_buf_t *out)
{
    return work_json(s, out, "sagas",
                     "SELECT * FROM sagas WHERE (?1 IS NULL OR state=?1) ORDER BY created_at_ms "
                     "LIMIT ?2",
                     "ti", state, (int64_t)limit);
}
