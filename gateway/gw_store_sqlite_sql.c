/* gw_store_sqlite_sql.c - how the SQLite store runs a statement: the per-connection
 * statement cache, typed binders, queries with a row callback, the one transaction helper
 * and the writer's lock and durability (contracts in gw_store_sqlite_int.h).
 *
 * Every BEGIN, COMMIT, ROLLBACK and SAVEPOINT of the store is in this file: a write path
 * hands its statements to gw_sq_write (or, for the group commit and the migration, to
 * gw_sq_tx_run under a lock of its own) as a body that returns an error to roll back.
 */
#include <assert.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "cm_log.h"
#include "gw_store_sqlite_int.h"

cm_err_t gw_sq_fail(sqlite3 *db, const char *what)
{
    CM_ERROR("gw.store", "%s: %s", what, sqlite3_errmsg(db));
    return CM_ESTORE;
}

/* Statements are prepared once per connection and kept: parsing and planning a statement
 * cost more than running it, and a job runs a dozen. gw_sq_stmt_prepare() returns the
 * connection's idle statement for the same SQL when there is one; gw_sq_stmt_release()
 * resets it for the next user instead of finalizing it. The caller holds the connection's lock for
 * the whole use, and releases before unlocking, so "not busy" means "free". */
enum { STMT_KEEP_MAX = 128 }; /* beyond this, statements are finalized as before */

int gw_sq_stmt_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
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

void gw_sq_stmt_release(sqlite3_stmt *st)
{
    if (!st)
        return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static int bind_one(sqlite3_stmt *st, int i, const gw_sq_val_t *v)
{
    switch (v->type) {
    case GW_SQ_INT:
        return sqlite3_bind_int64(st, i, v->i);
    case GW_SQ_TEXT:
        return sqlite3_bind_text(st, i, v->p, -1, SQLITE_STATIC);
    case GW_SQ_BLOB:
        return sqlite3_bind_blob64(st, i, v->p, v->len, SQLITE_STATIC);
    case GW_SQ_NULL:
        break;
    }
    return sqlite3_bind_null(st, i);
}

cm_err_t gw_sq_bind(sqlite3 *db, sqlite3_stmt *st, gw_sq_args_t args)
{
    assert((int)args.n == sqlite3_bind_parameter_count(st));
    for (size_t i = 0; i < args.n; i++)
        if (bind_one(st, (int)i + 1, &args.v[i]) != SQLITE_OK)
            return gw_sq_fail(db, sqlite3_sql(st));
    return CM_OK;
}

cm_err_t gw_sq_query(sqlite3 *db, const char *sql, gw_sq_args_t args, gw_sq_row_fn row, void *arg,
                     int *rows)
{
    sqlite3_stmt *st = NULL;
    int n = 0, step = SQLITE_DONE;
    cm_err_t rc = gw_sq_stmt_prepare(db, sql, &st) == SQLITE_OK ? CM_OK : gw_sq_fail(db, sql);
    if (!rc)
        rc = gw_sq_bind(db, st, args);
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        n++;
        if (row)
            rc = row(st, arg);
    }
    if (!rc && step != SQLITE_DONE)
        rc = gw_sq_fail(db, sql);
    gw_sq_stmt_release(st);
    if (rows)
        *rows = n;
    return rc;
}

cm_err_t gw_sq_exec(sqlite3 *db, const char *sql, gw_sq_args_t args, int *changes)
{
    cm_err_t rc = gw_sq_query(db, sql, args, NULL, NULL, NULL);
    if (!rc && changes)
        *changes = sqlite3_changes(db);
    return rc;
}

cm_err_t gw_sq_read(gw_sq_store_t *s, const char *sql, gw_sq_args_t args, gw_sq_row_fn row,
                    void *arg, int *rows)
{
    pthread_mutex_lock(&s->rd.mu);
    cm_err_t rc = gw_sq_query(s->rd.db, sql, args, row, arg, rows);
    pthread_mutex_unlock(&s->rd.mu);
    return rc;
}

void gw_sq_col_text(char *dst, size_t cap, sqlite3_stmt *st, int i)
{
    const unsigned char *v = sqlite3_column_text(st, i);
    snprintf(dst, cap, "%s", v ? (const char *)v : "");
}

/* ---- transactions ------------------------------------------------------------------ */

/* Copies SQLite's message for the failure that just happened into err (may be NULL). */
static void tx_note(char *err, sqlite3 *db)
{
    if (err)
        cm_errf(err, "%s", sqlite3_errmsg(db));
}

/* Undoes the failed transaction (nested: back to its savepoint). */
static void tx_undo(sqlite3 *db, int nested)
{
    /* Some errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM, SQLITE_BUSY) roll the whole
     * transaction back themselves: nothing is left to undo, and ROLLBACK would only fail
     * for want of a transaction. */
    if (sqlite3_get_autocommit(db))
        return;
    cm_err_t rc = gw_sq_exec(db, nested ? "ROLLBACK TO tx" : "ROLLBACK", GW_SQ_NO_ARGS, NULL);
    /* ROLLBACK TO leaves the savepoint open: it is released like a successful one. */
    if (!rc && nested)
        rc = gw_sq_exec(db, "RELEASE tx", GW_SQ_NO_ARGS, NULL);
    if (rc)
        CM_ERROR("gw.store", "a failed transaction could not be rolled back");
}

/* gw_sq_tx_run (nested 0) and gw_sq_tx_nested (1): one body, so both end a failure the
 * same way. *code (may be NULL) gets SQLite's extended code of the failure, read before the
 * rollback replaces it (SQLITE_OK when the transaction committed). */
static cm_err_t tx(sqlite3 *db, int nested, gw_sq_tx_fn fn, void *arg, char *err, int *code)
{
    if (code)
        *code = SQLITE_OK;
    cm_err_t rc = gw_sq_exec(db, nested ? "SAVEPOINT tx" : "BEGIN IMMEDIATE", GW_SQ_NO_ARGS, NULL);
    if (rc) {
        tx_note(err, db);
        if (code)
            *code = sqlite3_extended_errcode(db);
        return rc;
    }
    rc = fn(db, arg);
    if (!rc && (rc = gw_sq_exec(db, nested ? "RELEASE tx" : "COMMIT", GW_SQ_NO_ARGS, NULL)))
        tx_note(err, db);
    if (rc && code)
        *code = sqlite3_extended_errcode(db);
    if (rc)
        tx_undo(db, nested);
    return rc;
}

/* IMMEDIATE: the write lock is taken before the body runs, waiting up to the busy
 * timeout; a deferred transaction whose body reads before it writes (the migration) could
 * meet SQLITE_BUSY_SNAPSHOT half-way when another process wrote in between. */
cm_err_t gw_sq_tx_run(sqlite3 *db, gw_sq_tx_fn fn, void *arg, char *err)
{
    return tx(db, 0, fn, arg, err, NULL);
}

cm_err_t gw_sq_tx_write(gw_sq_store_t *s, gw_sq_tx_fn fn, void *arg)
{
    int code;
    cm_err_t rc = tx(s->wr.db, 0, fn, arg, NULL, &code);
    gw_sq_note_write(s, rc, code);
    return rc;
}

cm_err_t gw_sq_tx_nested(sqlite3 *db, gw_sq_tx_fn fn, void *arg)
{
    if (sqlite3_get_autocommit(db)) {
        CM_ERROR("gw.store", "savepoint: the transaction has already been rolled back");
        return CM_ESTORE;
    }
    return tx(db, 1, fn, arg, NULL, NULL);
}

/* ---- the writer ------------------------------------------------------------------- */

/* Sets the writer's synchronous mode (the caller holds the writer lock). Ingest commits
 * use the configured mode (FULL: fsync per commit) because an acknowledged webhook must
 * survive power loss. Job bookkeeping uses NORMAL: in WAL mode it still survives a
 * process crash (kill -9), and after a power loss the worst case is a job run again,
 * which every job handler tolerates; it saves several fsyncs per job that would
 * otherwise compete with the ingest commits. */
void gw_sq_writer_sync(gw_sq_store_t *s, int full)
{
    if (s->wr_sync_full == full)
        return;
    if (gw_sq_exec(s->wr.db, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
                   GW_SQ_NO_ARGS, NULL) == CM_OK)
        s->wr_sync_full = full;
}

void gw_sq_writer_lock_first(gw_sq_store_t *s)
{
    pthread_mutex_lock(&s->prio_mu);
    s->commit_waiting = 1;
    pthread_mutex_unlock(&s->prio_mu);
    pthread_mutex_lock(&s->wr.mu);
}

void gw_sq_writer_unlock_first(gw_sq_store_t *s)
{
    pthread_mutex_unlock(&s->wr.mu);
    pthread_mutex_lock(&s->prio_mu);
    s->commit_waiting = 0;
    pthread_cond_broadcast(&s->prio_cv);
    pthread_mutex_unlock(&s->prio_mu);
}

/* Takes the writer for bookkeeping, after any batch the committer is waiting to write. */
static void writer_lock_low(gw_sq_store_t *s)
{
    pthread_mutex_lock(&s->prio_mu);
    while (s->commit_waiting)
        pthread_cond_wait(&s->prio_cv, &s->prio_mu);
    pthread_mutex_unlock(&s->prio_mu);
    pthread_mutex_lock(&s->wr.mu);
}

cm_err_t gw_sq_write(gw_sq_store_t *s, gw_sq_sync_t sync, gw_sq_tx_fn fn, void *arg)
{
    writer_lock_low(s);
    gw_sq_writer_sync(s, sync == GW_SQ_DURABLE ? s->sync_full : 0);
    cm_err_t rc = gw_sq_tx_write(s, fn, arg);
    pthread_mutex_unlock(&s->wr.mu);
    return rc;
}

typedef struct {
    const char *sql;
    gw_sq_args_t args;
    int *changes;
} write_stmt_t;

static cm_err_t write_stmt_tx(sqlite3 *db, void *arg)
{
    write_stmt_t *w = arg;
    return gw_sq_exec(db, w->sql, w->args, w->changes);
}

/* A single statement gets an explicit transaction too, though SQLite makes it one anyway
 * (and retries its lock as such): every write then takes one path, lock, durability,
 * commit and rollback in one place. The cost is two more cached statements to step, BEGIN
 * and COMMIT: about 3 us a write here (20000 entity merges: 0.45 -> 0.50 s of CPU). */
cm_err_t gw_sq_write_stmt(gw_sq_store_t *s, const char *sql, gw_sq_args_t args, int *changes)
{
    write_stmt_t w = {.sql = sql, .args = args, .changes = changes};
    return gw_sq_write(s, GW_SQ_BOOKKEEPING, write_stmt_tx, &w);
}
