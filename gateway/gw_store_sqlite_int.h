/* gw_store_sqlite_int.h - what the files of the SQLite store share. Internal to the store:
 * only gw_store_sqlite_*.c include it; everything else uses gw_store.h.
 *
 * gw_store.h is implemented on SQLite (as the gw_sq_store_* functions of gw_store_be.h,
 * which gw_store.c calls) by one file per concern, each stating its part of
 * the contract (a second backend mirrors this split):
 *   gw_store_sqlite_conn.c    opening, pragmas, schema versions, the three connections, closing
 *   gw_store_sqlite_sql.c     statements: cache, typed binders, queries, the transaction
 *                             helper, the writer's lock and durability
 *   gw_store_sqlite_ingest.c  group commit of concurrent webhooks, the syncer, checkpoints
 *   gw_store_sqlite_jobs.c    claim, leases, outcomes, dead letters, re-runs, recovery
 *   gw_store_sqlite_sagas.c   saga rows, step log, entities
 *   gw_store_sqlite_views.c   the admin API's JSON views and the queue counts
 *
 * Connections. SQLite connections are opened NOMUTEX and must not be used by two threads
 * at once, so each comes with the mutex its users hold for the whole use:
 *   wr  every write, under wr.mu: the committer's group commits and all bookkeeping (see
 *       gw_sq_write). Writers then queue on a mutex instead of meeting SQLite's busy
 *       handler, which sleeps in steps up to 100 ms and wrecked acknowledgement latency
 *       when workers and the committer collided.
 *   rd  reads (admin views, states), under rd.mu; WAL lets them run beside the writer.
 *   ck  the checkpointer thread's own, used by it alone.
 *
 * Lock order: wr.mu may be held while taking cmu (the WAL hook runs inside a commit);
 * prio_mu, qmu, smu, cmu and wmu are never held while taking another lock.
 *
 * Ownership: gw_sq_store_open makes the store and gw_sq_store_close frees it; the threads it
 * starts (committer, syncer, checkpointer) are joined before. Statements belong to their
 * connection and are finalized when it closes. Values bound with gw_sq_* are borrowed.
 */
#ifndef GW_STORE_SQLITE_INT_H
#define GW_STORE_SQLITE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_err.h"
#include "gw_store_be.h"

/* One queued ingest (defined in gw_store_sqlite_ingest.c). */
typedef struct pending pending_t;

/* A connection with its lock. */
typedef struct {
    sqlite3 *db;
    pthread_mutex_t mu;
} conn_t;

struct gw_sq_store {
    /* Set at open, then read-only. */
    int sync_full; /* configured durability of ingest commits */
    /* Durable acknowledgement, pipelined: the committer commits a batch without waiting
     * for the disk and hands it to the syncer, which fsyncs the WAL and then answers; the
     * committer meanwhile writes the next batch (see committer_main). -1: no syncer, the
     * commit itself syncs (synchronous=FULL) as before. */
    int wal_fd;

    conn_t wr, rd, ck;
    int wr_sync_full; /* guarded by wr.mu: what the writer connection is set to now */

    /* The committer has a batch and wants the writer: bookkeeping writes step aside, so
     * webhook acknowledgement never queues behind a stream of worker updates (guarded by
     * prio_mu; see gw_sq_writer_lock_first). */
    pthread_mutex_t prio_mu;
    pthread_cond_t prio_cv;
    int commit_waiting;

    /* Ingest (gw_store_sqlite_ingest.c). The statements are on wr, the committer's. */
    sqlite3_stmt *st_event, *st_job, *st_dup;
    pthread_t committer;
    pthread_mutex_t qmu; /* guards the queue below */
    pthread_cond_t qcv;
    pending_t *head, *tail;
    int stopping;
    int started;
    pthread_t syncer;
    pthread_mutex_t smu; /* guards the batches handed to the syncer */
    pthread_cond_t scv;
    pending_t *shead, *stail;
    int syncer_started, sync_stopping;
    /* WAL checkpoints run on their own thread and connection (see checkpointer_main). */
    pthread_t ckpt;
    pthread_mutex_t cmu; /* guards the three flags */
    pthread_cond_t ccv;
    int ckpt_started, ckpt_wanted, ckpt_stopping;
    /* Whether the store can write (gw_sq_store_writable): the outcome of the last write
     * on the writer that wrote to the WAL or was refused by the disk, and when
     * (cm_clock_mono_ms), guarded by wmu. */
    pthread_mutex_t wmu;
    int w_ok;
    int64_t w_at_ms;
    int64_t w_fault_at_ms; /* the last refusal, 0: none */
};

/* ---- statements (gw_store_sqlite_sql.c) --------------------------------------------- */

/* Logs what failed with SQLite's message for db; returns CM_ESTORE. */
cm_err_t gw_sq_fail(sqlite3 *db, const char *what);

/* The statement cache: gw_sq_stmt_prepare returns the connection's idle statement for sql
 * when there is one, else prepares it (kept by the connection); gw_sq_stmt_release
 * (accepts NULL) resets it for the next user. Returns SQLite's code. The caller holds the
 * connection's lock from prepare to release. */
int gw_sq_stmt_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st) CM_WUR;
void gw_sq_stmt_release(sqlite3_stmt *st);

typedef enum { GW_SQ_NULL, GW_SQ_INT, GW_SQ_TEXT, GW_SQ_BLOB } gw_sq_type_t;

/* One value to bind. Made only by the constructors below, whose parameter types are what
 * the compiler checks a call against (a format string could not be checked). Texts and
 * blobs are borrowed, bound without a copy: they must stay valid until the statement is
 * stepped and released. */
typedef struct {
    gw_sq_type_t type;
    int64_t i;
    const void *p; /* GW_SQ_TEXT: NUL-terminated; GW_SQ_BLOB: len bytes */
    size_t len;
} gw_sq_val_t;

static inline gw_sq_val_t gw_sq_int(int64_t v)
{
    return (gw_sq_val_t){.type = GW_SQ_INT, .i = v};
}

/* NULL binds SQL NULL: an absent optional field is stored as NULL, not as "". */
static inline gw_sq_val_t gw_sq_text(const char *v)
{
    return (gw_sq_val_t){.type = v ? GW_SQ_TEXT : GW_SQ_NULL, .p = v};
}

/* As sqlite3_bind_blob: a NULL pointer binds NULL, whatever len. */
static inline gw_sq_val_t gw_sq_blob(const void *v, size_t len)
{
    return (gw_sq_val_t){.type = v ? GW_SQ_BLOB : GW_SQ_NULL, .p = v, .len = len};
}

static inline gw_sq_val_t gw_sq_null(void)
{
    return (gw_sq_val_t){.type = GW_SQ_NULL};
}

/* A statement's values, in parameter order (?1 is v[0]). */
typedef struct {
    const gw_sq_val_t *v;
    size_t n;
} gw_sq_args_t;

/* GW_SQ_ARGS(gw_sq_int(now_ms), gw_sq_text(id)): the array lives as long as the full
 * expression that uses it, i.e. for the call it is passed to. */
#define GW_SQ_ARGS(...)                                                                            \
    ((gw_sq_args_t){(const gw_sq_val_t[]){__VA_ARGS__},                                            \
                    sizeof((const gw_sq_val_t[]){__VA_ARGS__}) / sizeof(gw_sq_val_t)})
#define GW_SQ_NO_ARGS ((gw_sq_args_t){NULL, 0})

/* Binds every parameter of st from args; CM_ESTORE (logged) if SQLite refuses one. A
 * count that differs from the statement's parameters is a programming error (assert). */
cm_err_t gw_sq_bind(sqlite3 *db, sqlite3_stmt *st, gw_sq_args_t args) CM_WUR;

/* Called for each row of a query; an error stops the query and is returned by it. */
typedef cm_err_t (*gw_sq_row_fn)(sqlite3_stmt *st, void *arg);

/* Runs one statement on db through the statement cache: binds args, steps it to the end
 * calling row(st, arg) for each row (row may be NULL) and releases it. *rows (may be
 * NULL) gets the rows seen. CM_ESTORE, logged with SQLite's message, when SQLite fails.
 * The caller holds db's lock. */
cm_err_t gw_sq_query(sqlite3 *db, const char *sql, gw_sq_args_t args, gw_sq_row_fn row, void *arg,
                     int *rows) CM_WUR;
/* gw_sq_query for a statement run for its effect; *changes (may be NULL) gets the rows it
 * inserted, updated or deleted. */
cm_err_t gw_sq_exec(sqlite3 *db, const char *sql, gw_sq_args_t args, int *changes) CM_WUR;
/* gw_sq_query on the read connection, under its lock. Any thread. */
cm_err_t gw_sq_read(gw_sq_store_t *s, const char *sql, gw_sq_args_t args, gw_sq_row_fn row,
                    void *arg, int *rows) CM_WUR;
/* Copies text column i of the current row (NULL: "") into dst of cap bytes, truncating. */
void gw_sq_col_text(char *dst, size_t cap, sqlite3_stmt *st, int i);

/* ---- transactions (gw_store_sqlite_sql.c) ------------------------------------------- */

/* The body of a transaction: runs its statements on db, returns CM_OK to have them
 * committed and any other code to have them rolled back. */
typedef cm_err_t (*gw_sq_tx_fn)(sqlite3 *db, void *arg);

/* gw_sq_tx_run on the writer that records the outcome (gw_sq_note_write): the committer's
 * group commits and gw_sq_write. The caller holds wr.mu. */
cm_err_t gw_sq_tx_write(gw_sq_store_t *s, gw_sq_tx_fn fn, void *arg) CM_WUR;

/* Runs fn(db, arg) in one transaction: BEGIN IMMEDIATE (the write lock is taken first,
 * waiting up to the busy timeout, so a write never fails half-way for a lock another
 * connection took after it began), then COMMIT when fn returns CM_OK; on any error the
 * transaction is rolled back and nothing fn wrote stays. Returns fn's code, or CM_ESTORE
 * when BEGIN or COMMIT fails (logged; SQLite's message also into err, CM_ERR_LEN bytes,
 * may be NULL). The caller holds db's lock and is in no transaction. */
cm_err_t gw_sq_tx_run(sqlite3 *db, gw_sq_tx_fn fn, void *arg, char *err) CM_WUR;
/* Inside a gw_sq_tx_run body: runs fn under a savepoint, so a failed fn is undone alone
 * and the transaction goes on. CM_ESTORE, without running fn, when the transaction has
 * already ended under the caller (some errors roll it back whole): a SAVEPOINT would
 * start a new one. */
cm_err_t gw_sq_tx_nested(sqlite3 *db, gw_sq_tx_fn fn, void *arg) CM_WUR;

/* ---- the writer (gw_store_sqlite_sql.c) --------------------------------------------- */

/* Sets the writer's synchronous mode (FULL when full); the caller holds wr.mu. */
void gw_sq_writer_sync(gw_sq_store_t *s, int full);
/* Takes the writer for a group commit: bookkeeping writers step aside until
 * gw_sq_writer_unlock_first. The committer thread only. */
void gw_sq_writer_lock_first(gw_sq_store_t *s);
void gw_sq_writer_unlock_first(gw_sq_store_t *s);

/* How a write is committed: GW_SQ_BOOKKEEPING with synchronous=NORMAL, GW_SQ_DURABLE with
 * the configured mode (see gw_sq_writer_sync). */
typedef enum { GW_SQ_BOOKKEEPING, GW_SQ_DURABLE } gw_sq_sync_t;

/* Every write but the group commit: takes the writer after any waiting group commit, sets
 * its synchronous mode, runs fn in gw_sq_tx_run and lets the writer go. Any thread but the
 * committer's. */
cm_err_t gw_sq_write(gw_sq_store_t *s, gw_sq_sync_t sync, gw_sq_tx_fn fn, void *arg) CM_WUR;
/* gw_sq_write of one statement, as bookkeeping; *changes (may be NULL) gets the rows it
 * changed. */
cm_err_t gw_sq_write_stmt(gw_sq_store_t *s, const char *sql, gw_sq_args_t args,
                          int *changes) CM_WUR;

/* ---- ingest (gw_store_sqlite_ingest.c) ---------------------------------------------- */

/* From gw_sq_store_open, once the connections are open and the schema is current: opens
 * the WAL for the syncer (sync_full only; path is the database's), prepares the ingest
 * statements and starts the checkpointer, the syncer and the committer. On error what
 * was started is left for gw_sq_ingest_stop. */
cm_err_t gw_sq_ingest_start(gw_sq_store_t *s, const char *path, char *err) CM_WUR;
/* From gw_sq_store_close: stops intake (gw_sq_store_stop_intake) and the checkpointer, and
 * releases what gw_sq_ingest_start took. Safe after a failed or partial start. */
void gw_sq_ingest_stop(gw_sq_store_t *s);

/* Records the outcome of a write transaction on the writer for gw_sq_store_writable (a
 * success is recorded by the WAL hook, when frames were written, so rc CM_OK changes
 * nothing here); a failure whose SQLite code (code, extended) says the disk refused
 * (full, I/O error, read-only) makes the store not writable and asks the
 * checkpointer to copy the WAL into the database, so the WAL can start over and be
 * rewritten in place instead of growing. Other failures (a constraint, a missing row)
 * say nothing about the disk and change nothing. Any thread. */
void gw_sq_note_write(gw_sq_store_t *s, cm_err_t rc, int code);

/* ---- entities (gw_store_sqlite_sagas.c) --------------------------------------------- */

/* Sets an entity as gw_sq_store_entity_set does, inside the caller's transaction on db (the
 * writer): gw_sq_store_saga_put and gw_sq_store_job_dead_call set the call with their rows. */
cm_err_t gw_sq_entity_set(sqlite3 *db, const char *kind, const char *id, const char *tenant_id,
                          const char *state, const char *ref, const char *error,
                          int64_t now_ms) CM_WUR;

#endif
