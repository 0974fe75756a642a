/* gw_store_sqlite_conn.c - gw_store.h on SQLite (WAL, one file): opening and closing the
 * store, the connections and their pragmas, the schema and its versions.
 *
 * gw_sq_store_open opens the writer, migrates the schema on it (one transaction: a failed
 * step leaves the file as it was; a newer schema is refused with CM_ESTATE), opens the
 * read and checkpoint connections and starts the intake (gw_store_sqlite_ingest.c);
 * gw_sq_store_close undoes it in reverse. The rest of gw_store.h is implemented by the
 * other gw_store_sqlite_*.c files (see gw_store_sqlite_int.h).
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_log.h"
#include "gw_store_sqlite_int.h"

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
    "CREATE INDEX IF NOT EXISTS saga_steps_saga ON saga_steps(saga_id, id);"
    /* Schema 5: retention (gw_store_purge) finds what is older than its cutoff through
     * these, in time order, instead of scanning every old row for each batch (a first
     * purge of 17k events took 30 s so, and held the writer 200 ms a batch). Both grow at
     * their end, as rows arrive in time order, so they cost the intake little. */
    "CREATE INDEX IF NOT EXISTS events_received ON events(received_at_ms);"
    "CREATE INDEX IF NOT EXISTS saga_steps_at ON saga_steps(at_ms);"
    /* Schema 6: what reconciliation (gw_reconcile) found, once per provider object and
     * kind of drift, however many passes see it again. */
    "CREATE TABLE IF NOT EXISTS reconcile_findings("
    " id INTEGER PRIMARY KEY,"
    " at_ms INTEGER NOT NULL,"
    " tenant_id TEXT,"
    " provider TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " saga_id TEXT,"
    " object_id TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " detail TEXT,"
    " UNIQUE(provider, kind, object_id));"
    /* Schema 7: the audit log of admin actions (gw_store_sqlite_audit.c). tenant_id is
     * the tenant concerned (NULL: all); a scoped token lists its own through the index. */
    "CREATE TABLE IF NOT EXISTS admin_audit("
    " id INTEGER PRIMARY KEY,"
    " at_ms INTEGER NOT NULL,"
    " token TEXT NOT NULL,"
    " tenant_id TEXT,"
    " action TEXT NOT NULL,"
    " target TEXT,"
    " outcome TEXT NOT NULL,"
    " detail TEXT);"
    "CREATE INDEX IF NOT EXISTS admin_audit_tenant ON admin_audit(tenant_id, id);"
    /* Schema 8: the fair claim between tenants (gw_store_done_and_claim) finds each
     * tenant's oldest due job, and the tenants with jobs waiting, through it, instead of
     * walking the busy tenants' backlog (115 jobs/s with a backlog of 56k, against 4,860
     * in arrival order). Partial: a job is in it only while pending. */
    "CREATE INDEX IF NOT EXISTS jobs_pending_tenant ON jobs(tenant_id, next_at_ms) "
    "WHERE state='pending';";

/* PRAGMA user_version numbers the schema. A new database gets the whole schema above; an
 * older one gets it too (CREATE ... IF NOT EXISTS adds the tables it lacks, which was all
 * that versions 1 and 2 needed) and then every step below newer than its version, for
 * what CREATE cannot do to an existing table. Append steps; never edit one. */
#define SCHEMA_VERSION 8
static const struct {
    int version; /* what the database is at after this step */
    const char *sql;
} migrations[] = {
    {3, "ALTER TABLE jobs ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE jobs ADD COLUMN lease_until_ms INTEGER;"},
    {4, "DROP INDEX IF EXISTS jobs_entity;"},
    {5, ""}, /* the retention indexes: CREATE ... IF NOT EXISTS in the schema makes them */
    {6, ""}, /* reconcile_findings: CREATE ... IF NOT EXISTS in the schema makes it */
    {7, ""}, /* admin_audit: likewise */
    {8, ""}, /* jobs_pending_tenant: likewise */
};

/* Runs a script of several statements (schema, pragmas); not for values: nothing is bound. */
static cm_err_t exec_script(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        CM_ERROR("gw.store", "%s: %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
        return CM_ESTORE;
    }
    return CM_OK;
}

static cm_err_t conn_open(conn_t *c, const char *path, int sync_full, char *err)
{
    int rc = sqlite3_open_v2(
        path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
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

/* ---- schema versions and open / close --------------------------------------------- */

typedef struct {
    int version; /* the database's before the migration, -1 until read */
    char *why;   /* CM_ERR_LEN: SQLite's message when a step fails */
} migrate_t;

static cm_err_t version_row(sqlite3_stmt *st, void *arg)
{
    *(int *)arg = sqlite3_column_int(st, 0);
    return CM_OK;
}

static cm_err_t migrate_tx(sqlite3 *db, void *arg)
{
    migrate_t *m = arg;
    cm_err_t rc =
        gw_sq_query(db, "PRAGMA user_version", GW_SQ_NO_ARGS, version_row, &m->version, NULL);
    if (!rc && m->version < 0)
        rc = CM_ESTORE;
    else if (!rc && m->version > SCHEMA_VERSION)
        return CM_ESTATE;
    if (!rc)
        rc = exec_script(db, schema);
    /* Version 0 is a new file: the schema just made is already the latest. */
    for (size_t i = 0; !rc && m->version > 0 && i < sizeof migrations / sizeof migrations[0]; i++)
        if (migrations[i].version > m->version)
            rc = exec_script(db, migrations[i].sql);
    if (!rc) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version=%d", SCHEMA_VERSION);
        rc = exec_script(db, sql);
    }
    if (rc)
        cm_errf(m->why, "%s", sqlite3_errmsg(db));
    return rc;
}

/* Brings the database to SCHEMA_VERSION in one transaction, so a failed step leaves it as
 * it was, and two processes opening one file never both migrate it. A database made by a
 * newer gateway is refused rather than written with assumptions that may not hold. */
static cm_err_t migrate(sqlite3 *db, const char *path, char *err)
{
    char why[CM_ERR_LEN] = "";
    migrate_t m = {.version = -1, .why = why};
    /* A current schema is only read: a write transaction, even one that changes nothing
     * but the version, needs room in the WAL, and a gateway restarted on a full disk must
     * start (and refuse webhooks with 503) rather than exit here. */
    int current = -1;
    if (gw_sq_query(db, "PRAGMA user_version", GW_SQ_NO_ARGS, version_row, &current, NULL) ==
            CM_OK &&
        current == SCHEMA_VERSION)
        return CM_OK;
    cm_err_t rc = gw_sq_tx_run(db, migrate_tx, &m, why);
    if (rc == CM_ESTATE)
        cm_errf(err, "%s: schema version %d is newer than this gateway's (%d)", path, m.version,
                SCHEMA_VERSION);
    else if (rc)
        cm_errf(err, "%s: cannot bring the schema from version %d to %d: %s", path, m.version,
                SCHEMA_VERSION, why);
    return rc;
}

cm_err_t gw_sq_store_open(const char *path, int sync_full, gw_sq_store_t **out, char *err)
{
    gw_sq_store_t *s = calloc(1, sizeof *s);
    cm_err_t rc = s ? CM_OK : CM_ENOMEM;
    *out = NULL;
    if (rc)
        return rc;
    /* Every lock is made here, before anything can fail: gw_sq_store_close destroys them all,
     * also after an open that failed half-way (a connection's lock made by its open would
     * then be destroyed without ever having been made). */
    pthread_mutex_init(&s->wr.mu, NULL);
    pthread_mutex_init(&s->rd.mu, NULL);
    pthread_mutex_init(&s->ck.mu, NULL);
    pthread_mutex_init(&s->qmu, NULL);
    pthread_cond_init(&s->qcv, NULL);
    pthread_mutex_init(&s->prio_mu, NULL);
    pthread_cond_init(&s->prio_cv, NULL);
    pthread_mutex_init(&s->smu, NULL);
    pthread_cond_init(&s->scv, NULL);
    pthread_mutex_init(&s->cmu, NULL);
    pthread_cond_init(&s->ccv, NULL);
    pthread_mutex_init(&s->wmu, NULL);
    s->w_ok = 1; /* w_at_ms 0: the first question is answered by a probe */
    s->wal_fd = -1;
    rc = conn_open(&s->wr, path, sync_full, err);
    if (!rc)
        rc = migrate(s->wr.db, path, err);
    s->sync_full = s->wr_sync_full = sync_full;
    if (!rc)
        rc = conn_open(&s->rd, path, sync_full, err);
    if (!rc)
        rc = conn_open(&s->ck, path, 0, err);
    if (!rc)
        rc = gw_sq_ingest_start(s, path, err);
    if (rc) {
        gw_sq_store_close(&s);
        return rc;
    }
    *out = s;
    return CM_OK;
}

void gw_sq_store_close(gw_sq_store_t **sp)
{
    gw_sq_store_t *s = sp ? *sp : NULL;
    if (!s)
        return;
    gw_sq_ingest_stop(s);
    conn_close(&s->ck);
    conn_close(&s->rd);
    conn_close(&s->wr);
    pthread_cond_destroy(&s->scv);
    pthread_mutex_destroy(&s->smu);
    pthread_cond_destroy(&s->ccv);
    pthread_mutex_destroy(&s->cmu);
    pthread_cond_destroy(&s->qcv);
    pthread_mutex_destroy(&s->qmu);
    pthread_cond_destroy(&s->prio_cv);
    pthread_mutex_destroy(&s->prio_mu);
    pthread_mutex_destroy(&s->wmu);
    free(s);
    *sp = NULL;
}

void gw_sq_store_set_busy_timeout(gw_sq_store_t *s, int ms)
{
    pthread_mutex_lock(&s->wr.mu);
    sqlite3_busy_timeout(s->wr.db, ms);
    pthread_mutex_unlock(&s->wr.mu);
    pthread_mutex_lock(&s->rd.mu);
    sqlite3_busy_timeout(s->rd.db, ms);
    pthread_mutex_unlock(&s->rd.mu);
}

/* ---- what instances share (gw_store.h): nothing on SQLite ---------------------------- */

/* One process owns a SQLite file (gw_main.c's lock), so there is no other instance to share
 * a rate limit with or to tell anything: the rate limit stays in the process and notices
 * have nobody to come from or go to. */

cm_err_t gw_sq_store_rl_take(gw_sq_store_t *s, const char *key, double rate_per_s, double burst,
                             int64_t max_wait_ms, int *taken, int64_t *wait_ms)
{
    (void)s, (void)key, (void)rate_per_s, (void)burst, (void)max_wait_ms;
    *taken = 0;
    *wait_ms = 0;
    return CM_EAGAIN;
}

cm_err_t gw_sq_store_rl_refund(gw_sq_store_t *s, const char *key, double rate_per_s, double burst)
{
    (void)s, (void)key, (void)rate_per_s, (void)burst;
    return CM_EAGAIN;
}

cm_err_t gw_sq_store_on_notice(gw_sq_store_t *s, gw_notice_fn fn, void *ud)
{
    (void)s, (void)fn, (void)ud;
    return CM_OK;
}

void gw_sq_store_off_notice(gw_sq_store_t *s, gw_notice_fn fn, void *ud)
{
    (void)s, (void)fn, (void)ud;
}

cm_err_t gw_sq_store_publish(gw_sq_store_t *s, gw_notice_t what, const char *detail)
{
    (void)s, (void)what, (void)detail;
    return CM_OK;
}
