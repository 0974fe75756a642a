/* gw_store_sqlite.c - gw_store.h on SQLite (WAL, one file). */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "cm_log.h"
#include "gw_store.h"

/* One connection with its lock. SQLite connections are not to be shared by threads
 * without serialisation, and WAL lets the two connections read while the other writes. */
typedef struct {
    sqlite3 *db;
    pthread_mutex_t mu;
} conn_t;

struct gw_store {
    conn_t ingest; /* webhook handlers */
    conn_t work;   /* workers and admin reads */
};

static const char *const schema = "CREATE TABLE IF NOT EXISTS events("
                                  " id INTEGER PRIMARY KEY,"
                                  " provider TEXT NOT NULL,"
                                  " event_key TEXT NOT NULL UNIQUE,"
                                  " event_type TEXT NOT NULL,"
                                  " entity_id TEXT,"
                                  " tenant_id TEXT,"
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
                                  " state TEXT NOT NULL DEFAULT 'pending',"
                                  " attempts INTEGER NOT NULL DEFAULT 0,"
                                  " next_at_ms INTEGER NOT NULL,"
                                  " last_error TEXT,"
                                  " updated_at_ms INTEGER NOT NULL);"
                                  "CREATE INDEX IF NOT EXISTS jobs_due ON jobs(state, next_at_ms);"
                                  "CREATE TABLE IF NOT EXISTS calls("
                                  " call_id TEXT PRIMARY KEY,"
                                  " tenant_id TEXT,"
                                  " state TEXT NOT NULL,"
                                  " booking_uid TEXT,"
                                  " error TEXT,"
                                  " updated_at_ms INTEGER NOT NULL);";

static cm_err_t conn_open(conn_t *c, const char *path, int sync_full, char *err)
{
    int rc = sqlite3_open_v2(
        path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        cm_errf(err, "%s: %s", path, c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        return CM_ESTORE;
    }
    pthread_mutex_init(&c->mu, NULL);
    /* busy_timeout covers the short moments when both connections want the write lock. */
    sqlite3_busy_timeout(c->db, 5000);
    char sql[256];
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
        sqlite3_close_v2(c->db);
        pthread_mutex_destroy(&c->mu);
        c->db = NULL;
    }
}

cm_err_t gw_store_open(const char *path, int sync_full, gw_store_t **out, char *err)
{
    gw_store_t *s = calloc(1, sizeof *s);
    cm_err_t rc = s ? CM_OK : CM_ENOMEM;
    char *msg = NULL;
    *out = NULL;
    if (!rc)
        rc = conn_open(&s->ingest, path, sync_full, err);
    if (!rc && sqlite3_exec(s->ingest.db, schema, NULL, NULL, &msg) != SQLITE_OK) {
        cm_errf(err, "schema: %s", msg ? msg : "?");
        rc = CM_ESTORE;
    }
    sqlite3_free(msg);
    if (!rc)
        rc = conn_open(&s->work, path, sync_full, err);
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
    conn_close(&s->work);
    conn_close(&s->ingest);
    free(s);
    *sp = NULL;
}

static cm_err_t sql_fail(sqlite3 *db, const char *what)
{
    CM_ERROR("gw.store", "%s: %s", what, sqlite3_errmsg(db));
    return CM_ESTORE;
}

/* Runs a statement without results; the caller holds the connection's lock. */
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

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

cm_err_t gw_store_ingest(gw_store_t *s, const gw_event_in_t *ev, gw_ingest_t *result)
{
    sqlite3 *db = s->ingest.db;
    sqlite3_stmt *st = NULL;
    cm_err_t rc;
    pthread_mutex_lock(&s->ingest.mu);
    rc = exec(db, "BEGIN IMMEDIATE");
    if (rc)
        goto out;
    /* The UNIQUE key decides, inside the transaction: two concurrent copies can never
     * both be inserted, whatever the timing. */
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO events(provider,event_key,event_type,entity_id,"
                           "tenant_id,received_at_ms,headers,body) VALUES(?,?,?,?,?,?,?,?) "
                           "ON CONFLICT(event_key) DO NOTHING RETURNING id",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sql_fail(db, "prepare insert event");
        goto rollback;
    }
    bind_text(st, 1, ev->provider);
    bind_text(st, 2, ev->event_key);
    bind_text(st, 3, ev->event_type);
    bind_text(st, 4, ev->entity_id);
    bind_text(st, 5, ev->tenant_id);
    sqlite3_bind_int64(st, 6, ev->received_at_ms);
    bind_text(st, 7, ev->headers);
    sqlite3_bind_blob(st, 8, ev->body, (int)ev->body_len, SQLITE_TRANSIENT);
    int step = sqlite3_step(st);
    int64_t event_id = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    if (step == SQLITE_ROW)
        step = sqlite3_step(st);
    if (step != SQLITE_DONE) {
        rc = sql_fail(db, "insert event");
        goto rollback;
    }
    sqlite3_finalize(st);
    st = NULL;

    if (event_id < 0) {
        *result = GW_INGEST_DUPLICATE;
        if (sqlite3_prepare_v2(db,
                               "UPDATE events SET duplicates=duplicates+1, "
                               "last_duplicate_at_ms=? WHERE event_key=?",
                               -1, &st, NULL) != SQLITE_OK) {
            rc = sql_fail(db, "prepare duplicate");
            goto rollback;
        }
        sqlite3_bind_int64(st, 1, ev->received_at_ms);
        bind_text(st, 2, ev->event_key);
    } else {
        *result = GW_INGEST_ACCEPTED;
        if (!ev->job_kind)
            goto commit;
        if (sqlite3_prepare_v2(db,
                               "INSERT INTO jobs(event_id,kind,entity_id,state,next_at_ms,"
                               "updated_at_ms) VALUES(?,?,?,'pending',?,?)",
                               -1, &st, NULL) != SQLITE_OK) {
            rc = sql_fail(db, "prepare insert job");
            goto rollback;
        }
        sqlite3_bind_int64(st, 1, event_id);
        bind_text(st, 2, ev->job_kind);
        bind_text(st, 3, ev->entity_id);
        sqlite3_bind_int64(st, 4, ev->received_at_ms);
        sqlite3_bind_int64(st, 5, ev->received_at_ms);
    }
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = sql_fail(db, "write job/duplicate");
        goto rollback;
    }
commit:
    sqlite3_finalize(st);
    st = NULL;
    rc = exec(db, "COMMIT");
    if (!rc)
        goto out;
rollback:
    sqlite3_finalize(st);
    (void)exec(db, "ROLLBACK");
out:
    pthread_mutex_unlock(&s->ingest.mu);
    return rc;
}

/* Runs one parameterised write on the work connection: binds ints ("i") and texts ("t")
 * from the format string, in order. */
static cm_err_t work_write(gw_store_t *s, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st = NULL;
    cm_err_t rc = CM_OK;
    va_list ap;
    pthread_mutex_lock(&s->work.mu);
    if (sqlite3_prepare_v2(s->work.db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = sql_fail(s->work.db, sql);
    } else {
        va_start(ap, fmt);
        for (int i = 0; fmt[i]; i++) {
            if (fmt[i] == 'i')
                sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
            else
                bind_text(st, i + 1, va_arg(ap, const char *));
        }
        va_end(ap);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = sql_fail(s->work.db, sql);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->work.mu);
    return rc;
}

cm_err_t gw_store_recover(gw_store_t *s, int max_attempts, int64_t now_ms, int *requeued)
{
    cm_err_t rc = work_write(s,
                             "UPDATE jobs SET state='dead', last_error='worker crashed on every "
                             "attempt', updated_at_ms=? WHERE state='running' AND attempts>=?",
                             "ii", now_ms, (int64_t)max_attempts);
    if (!rc)
        rc = work_write(s,
                        "UPDATE jobs SET state='pending', next_at_ms=?, updated_at_ms=? "
                        "WHERE state='running'",
                        "ii", now_ms, now_ms);
    *requeued = rc ? 0 : sqlite3_changes(s->work.db);
    return rc;
}

cm_err_t gw_store_claim(gw_store_t *s, int64_t now_ms, gw_job_t *job, int64_t *next_due_ms)
{
    sqlite3 *db = s->work.db;
    sqlite3_stmt *st = NULL;
    cm_err_t rc = CM_ENOTFOUND;
    memset(job, 0, sizeof *job);
    cm_buf_init(&job->body, 64u << 20);
    *next_due_ms = -1;
    pthread_mutex_lock(&s->work.mu);
    if (sqlite3_prepare_v2(db,
                           "UPDATE jobs SET state='running', attempts=attempts+1, updated_at_ms=? "
                           "WHERE id=(SELECT id FROM jobs WHERE state='pending' AND next_at_ms<=? "
                           "ORDER BY next_at_ms, id LIMIT 1) "
                           "RETURNING id, event_id, kind, entity_id, attempts",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sql_fail(db, "prepare claim");
        goto out;
    }
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, now_ms);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        job->id = sqlite3_column_int64(st, 0);
        job->event_id = sqlite3_column_int64(st, 1);
        snprintf(job->kind, sizeof job->kind, "%s", (const char *)sqlite3_column_text(st, 2));
        const unsigned char *ent = sqlite3_column_text(st, 3);
        snprintf(job->entity_id, sizeof job->entity_id, "%s", ent ? (const char *)ent : "");
        job->attempts = sqlite3_column_int(st, 4);
        step = sqlite3_step(st);
        rc = CM_OK;
    }
    if (step != SQLITE_DONE) {
        rc = sql_fail(db, "claim");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc == CM_OK) {
        if (sqlite3_prepare_v2(db, "SELECT body FROM events WHERE id=?", -1, &st, NULL) !=
                SQLITE_OK ||
            (sqlite3_bind_int64(st, 1, job->event_id), sqlite3_step(st)) != SQLITE_ROW) {
            rc = sql_fail(db, "load event body");
        } else if (cm_buf_add(&job->body, sqlite3_column_blob(st, 0),
                              (size_t)sqlite3_column_bytes(st, 0)) != CM_OK) {
            rc = CM_ENOMEM;
        }
    } else {
        if (sqlite3_prepare_v2(db, "SELECT MIN(next_at_ms) FROM jobs WHERE state='pending'", -1,
                               &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
            *next_due_ms = sqlite3_column_int64(st, 0);
    }
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->work.mu);
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
    return work_write(s, "UPDATE jobs SET state='done', updated_at_ms=? WHERE id=?", "ii", now_ms,
                      job_id);
}

cm_err_t gw_store_job_retry(gw_store_t *s, int64_t job_id, int64_t retry_at_ms, const char *error,
                            int64_t now_ms)
{
    return work_write(s,
                      "UPDATE jobs SET state='pending', next_at_ms=?, last_error=?, "
                      "updated_at_ms=? WHERE id=?",
                      "itii", retry_at_ms, error, now_ms, job_id);
}

cm_err_t gw_store_job_dead(gw_store_t *s, int64_t job_id, const char *reason, int64_t now_ms)
{
    return work_write(s, "UPDATE jobs SET state='dead', last_error=?, updated_at_ms=? WHERE id=?",
                      "tii", reason, now_ms, job_id);
}

cm_err_t gw_store_queue_stats(gw_store_t *s, gw_queue_stats_t *q)
{
    sqlite3_stmt *st = NULL;
    cm_err_t rc = CM_OK;
    memset(q, 0, sizeof *q);
    pthread_mutex_lock(&s->work.mu);
    if (sqlite3_prepare_v2(s->work.db, "SELECT state, COUNT(*) FROM jobs GROUP BY state", -1, &st,
                           NULL) != SQLITE_OK) {
        rc = sql_fail(s->work.db, "queue stats");
    } else {
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            const char *state = (const char *)sqlite3_column_text(st, 0);
            int64_t n = sqlite3_column_int64(st, 1);
            if (strcmp(state, "pending") == 0)
                q->pending = n;
            else if (strcmp(state, "running") == 0)
                q->running = n;
            else if (strcmp(state, "done") == 0)
                q->done = n;
            else if (strcmp(state, "dead") == 0)
                q->dead = n;
        }
        if (step != SQLITE_DONE)
            rc = sql_fail(s->work.db, "queue stats");
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->work.mu);
    return rc;
}

cm_err_t gw_store_call_set(gw_store_t *s, const char *call_id, const char *tenant_id,
                           const char *state, const char *booking_uid, const char *error,
                           int64_t now_ms)
{
    /* COALESCE keeps a known booking uid or tenant when a later update does not carry it. */
    return work_write(s,
                      "INSERT INTO calls(call_id,tenant_id,state,booking_uid,error,updated_at_ms) "
                      "VALUES(?,?,?,?,?,?) ON CONFLICT(call_id) DO UPDATE SET "
                      "tenant_id=COALESCE(excluded.tenant_id,calls.tenant_id), "
                      "state=excluded.state, "
                      "booking_uid=COALESCE(excluded.booking_uid,calls.booking_uid), "
                      "error=excluded.error, updated_at_ms=excluded.updated_at_ms",
                      "ttttti", call_id, tenant_id, state, booking_uid, error, now_ms);
}

/* Appends the current row's column i as a JSON value (NULL, integer or string). */
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

/* Appends every result row of st as a JSON object ({"col":value,...}), comma-separated;
 * counts rows in *rows. The caller holds the lock. */
static cm_err_t rows_json(sqlite3 *db, sqlite3_stmt *st, cm_buf_t *out, int *rows)
{
    cm_err_t rc = CM_OK;
    int step;
    *rows = 0;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        rc = cm_buf_addstr(out, *rows ? ",{" : "{");
        for (int i = 0; !rc && i < sqlite3_column_count(st); i++) {
            rc = cm_buf_printf(out, "%s\"%s\":", i ? "," : "", sqlite3_column_name(st, i));
            if (!rc)
                rc = col_json(out, st, i);
        }
        if (!rc)
            rc = cm_buf_addstr(out, "}");
        (*rows)++;
    }
    if (!rc && step != SQLITE_DONE)
        rc = sql_fail(db, "read rows");
    return rc;
}

cm_err_t gw_store_call_json(gw_store_t *s, const char *call_id, cm_buf_t *out)
{
    sqlite3_stmt *st = NULL;
    cm_err_t rc;
    int rows = 0;
    pthread_mutex_lock(&s->work.mu);
    if (sqlite3_prepare_v2(s->work.db,
                           "SELECT c.call_id, c.tenant_id, c.state, c.booking_uid, c.error, "
                           "c.updated_at_ms, (SELECT COALESCE(SUM(j.attempts),0) FROM jobs j "
                           "WHERE j.entity_id=c.call_id) AS attempts FROM calls c "
                           "WHERE c.call_id=?",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sql_fail(s->work.db, "prepare call");
    } else {
        bind_text(st, 1, call_id);
        rc = rows_json(s->work.db, st, out, &rows);
        if (!rc && rows == 0)
            rc = CM_ENOTFOUND;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->work.mu);
    return rc;
}

cm_err_t gw_store_call_state(gw_store_t *s, const char *call_id, char *state, size_t cap)
{
    sqlite3_stmt *st = NULL;
    cm_err_t rc = CM_ENOTFOUND;
    pthread_mutex_lock(&s->work.mu);
    if (sqlite3_prepare_v2(s->work.db, "SELECT state FROM calls WHERE call_id=?", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = sql_fail(s->work.db, "prepare call state");
    } else {
        bind_text(st, 1, call_id);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            snprintf(state, cap, "%s", (const char *)sqlite3_column_text(st, 0));
            rc = CM_OK;
        } else if (step != SQLITE_DONE) {
            rc = sql_fail(s->work.db, "call state");
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->work.mu);
    return rc;
}

cm_err_t gw_store_events_json(gw_store_t *s, const char *provider, int limit, cm_buf_t *out)
{
    sqlite3_stmt *st = NULL;
    cm_err_t rc;
    int rows = 0;
    pthread_mutex_lock(&s->work.mu);
    if (sqlite3_prepare_v2(s->work.db,
                           "SELECT id, provider, event_key, event_type, entity_id, tenant_id, "
                           "received_at_ms, duplicates FROM events WHERE ?1 IS NULL OR "
                           "provider=?1 ORDER BY id LIMIT ?2",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = sql_fail(s->work.db, "prepare events");
    } else {
        bind_text(st, 1, provider);
        sqlite3_bind_int(st, 2, limit);
        size_t mark = out->len;
        rc = cm_buf_addstr(out, "{\"events\":[");
        if (!rc)
            rc = rows_json(s->work.db, st, out, &rows);
        if (!rc)
            rc = cm_buf_printf(out, "],\"count\":%d}", rows);
        if (rc) {
            out->len = mark;
            if (out->data)
                out->data[mark] = '\0';
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->work.mu);
    return rc;
}
