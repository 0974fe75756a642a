/* gw_store_pg_conn.c - gw_store.h on PostgreSQL: opening and closing the store, the
 * connections and their reconnection, the schema and its versions.
 *
 * gw_pg_store_open connects, migrates the schema (one transaction under an advisory lock,
 * so several instances starting together migrate once; a newer schema is refused with
 * CM_ESTATE) and starts the committer (gw_store_pg_ingest.c); gw_pg_store_close undoes
 * it in reverse. The rest of gw_store.h is in the other gw_store_pg_*.c files (see
 * gw_store_pg_int.h).
 */
#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_codec.h"
#include "cm_log.h"
#include "gw_store_pg_int.h"

/* The SQLite schema in PostgreSQL's dialect: identity columns for INTEGER PRIMARY KEY,
 * BIGINT for every integer (so the JSON views print numbers, see gw_store_pg_views.c),
 * BYTEA for the raw body. Columns are in the SQLite schema's order, so that SELECT *
 * views list them alike. Two columns more on jobs, for several instances: run_key, the
 * lane a running job holds (unique among running jobs: gw_store_pg_jobs.c), and holder,
 * the store handle that claimed it. */
static const char *const schema_v1 =
    "CREATE TABLE events("
    " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " provider TEXT NOT NULL,"
    " event_key TEXT NOT NULL UNIQUE,"
    " alt_key TEXT UNIQUE,"
    " event_type TEXT NOT NULL,"
    " entity_id TEXT,"
    " tenant_id TEXT,"
    " job_kind TEXT,"
    " received_at_ms BIGINT NOT NULL,"
    " headers TEXT,"
    " body BYTEA NOT NULL,"
    " duplicates BIGINT NOT NULL DEFAULT 0,"
    " last_duplicate_at_ms BIGINT);"
    "CREATE INDEX events_entity ON events(entity_id);"
    "CREATE TABLE jobs("
    " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " event_id BIGINT NOT NULL REFERENCES events(id),"
    " kind TEXT NOT NULL,"
    " entity_id TEXT,"
    " tenant_id TEXT,"
    " state TEXT NOT NULL DEFAULT 'pending',"
    " attempts BIGINT NOT NULL DEFAULT 0,"
    " next_at_ms BIGINT NOT NULL,"
    " last_error TEXT,"
    " created_at_ms BIGINT NOT NULL,"
    " updated_at_ms BIGINT NOT NULL,"
    " crashes BIGINT NOT NULL DEFAULT 0,"
    " lease_until_ms BIGINT,"
    " run_key TEXT,"
    " holder TEXT);"
    "CREATE INDEX jobs_due ON jobs(next_at_ms, id) WHERE state='pending';"
    "CREATE UNIQUE INDEX jobs_one_running ON jobs(run_key) WHERE state='running';"
    "CREATE INDEX jobs_running ON jobs(entity_id) WHERE state='running';"
    "CREATE INDEX jobs_state ON jobs(state);"
    "CREATE INDEX jobs_event ON jobs(event_id);"
    "CREATE TABLE entities("
    " kind TEXT NOT NULL,"
    " id TEXT NOT NULL,"
    " tenant_id TEXT,"
    " state TEXT NOT NULL,"
    " rank BIGINT NOT NULL DEFAULT 0,"
    " ref TEXT,"
    " error TEXT,"
    " flags BIGINT NOT NULL DEFAULT 0,"
    " updated_at_ms BIGINT NOT NULL,"
    " PRIMARY KEY(kind, id));"
    "CREATE TABLE sagas("
    " id TEXT PRIMARY KEY,"
    " tenant_id TEXT,"
    " state TEXT NOT NULL,"
    " reason TEXT,"
    " final TEXT,"
    " booking_uid TEXT,"
    " payment_intent TEXT,"
    " wanted_ms BIGINT NOT NULL,"
    " start_ms BIGINT NOT NULL DEFAULT 0,"
    " tries BIGINT NOT NULL DEFAULT 0,"
    " deadline_ms BIGINT NOT NULL,"
    " refunded BIGINT NOT NULL DEFAULT 0,"
    " cancelled BIGINT NOT NULL DEFAULT 0,"
    " created_at_ms BIGINT NOT NULL,"
    " updated_at_ms BIGINT NOT NULL);"
    "CREATE INDEX sagas_booking ON sagas(booking_uid);"
    "CREATE TABLE saga_steps("
    " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " saga_id TEXT NOT NULL,"
    " step TEXT NOT NULL,"
    " phase TEXT NOT NULL,"
    " detail TEXT,"
    " at_ms BIGINT NOT NULL);"
    "CREATE INDEX saga_steps_saga ON saga_steps(saga_id, id);";

/* Version 2: the instances' shared rate-limit buckets (gw_store_pg_notify.c), one row per
 * provider API key (named by a digest, never the key): tokens as of at (the server's
 * clock), and the last take's answer, which the take reads back with RETURNING. */
static const char schema_v2[] = "CREATE TABLE rate_buckets("
                                " key TEXT PRIMARY KEY,"
                                " tokens DOUBLE PRECISION NOT NULL,"
                                " at TIMESTAMPTZ NOT NULL,"
                                " taken BOOLEAN NOT NULL,"
                                " wait_ms BIGINT NOT NULL)";

/* Version 3: retention (gw_store_purge) finds what is older than its cutoff in time order
 * through these, instead of scanning every old row for each batch. */
static const char schema_v3[] = "CREATE INDEX events_received ON events(received_at_ms);"
                                "CREATE INDEX saga_steps_at ON saga_steps(at_ms)";

/* Version 4: what reconciliation (gw_reconcile) found, once per provider object and kind
 * of drift, however many passes (of however many instances) see it again. */
static const char schema_v4[] = "CREATE TABLE reconcile_findings("
                                " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                                " at_ms BIGINT NOT NULL,"
                                " tenant_id TEXT,"
                                " provider TEXT NOT NULL,"
                                " kind TEXT NOT NULL,"
                                " saga_id TEXT,"
                                " object_id TEXT NOT NULL,"
                                " action TEXT NOT NULL,"
                                " detail TEXT,"
                                " UNIQUE(provider, kind, object_id))";

/* Version 5: the audit log of admin actions (gw_store_pg_audit.c). tenant_id is the
 * tenant concerned (NULL: all); a scoped token lists its own through the index. */
static const char schema_v5[] = "CREATE TABLE admin_audit("
                                " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                                " at_ms BIGINT NOT NULL,"
                                " token TEXT NOT NULL,"
                                " tenant_id TEXT,"
                                " action TEXT NOT NULL,"
                                " target TEXT,"
                                " outcome TEXT NOT NULL,"
                                " detail TEXT);"
                                "CREATE INDEX admin_audit_tenant ON admin_audit(tenant_id, id)";

/* Version 6: the fair claim between tenants (gw_store_done_and_claim), as SQLite's
 * schema 8 (gw_store_sqlite_conn.c says why). */
static const char schema_v6[] = "CREATE INDEX jobs_pending_tenant ON jobs(tenant_id, next_at_ms) "
                                "WHERE state='pending'";

/* gw_schema_version lists the versions applied, one row each; the newest is the schema's.
 * Append steps; never edit one. Version 4 is another change's (reconciliation): each step
 * is run unless its own version is recorded (not merely when it is above the newest), so
 * a database that got 5 before 4 existed still gets 4. */
static const struct {
    int version;
    const char *sql;
} migrations[] = {
    {1, NULL}, /* schema_v1, a script of several statements (see migrate_tx) */
    {2, schema_v2}, {3, schema_v3}, {4, schema_v4}, {5, schema_v5}, {6, schema_v6},
};
#define SCHEMA_VERSION 6

/* Any integer will do as long as no other application on the database uses it: the
 * ASCII of "bookbench" folded into 63 bits. */
#define MIGRATION_LOCK INT64_C(0x626f6f6b62656e63)

/* ---- connections ------------------------------------------------------------------- */

/* A connection that could not be made is not tried again before a back-off, doubling from
 * BACKOFF_MIN_MS to BACKOFF_MAX_MS, and at least as long as the failed attempt took: while
 * the server is down, calls fail at once (the intake answers 503, /health/ready says
 * failing) instead of every webhook and every probe paying for a connection attempt, or
 * spinning on them; an attempt that waits out connect_timeout (a server that does not
 * answer) holds up the calls behind it at most half of the time; and a server that
 * refuses connections (stopped, restarting) is found again within BACKOFF_MAX_MS of its
 * return. */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000

/* libpq's defaults for the store's connections; the URL overrides any of them (they come
 * before dbname, which expands the URL: the last value of a key wins). */
static const char *const conn_keys[] = {
    /* How long a call waits for a server that does not answer a connection (the
     * kernel's TCP timeout otherwise, minutes). 2 s is libpq's minimum. */
    "connect_timeout",
    /* A connection to a server that has gone away without a word (a host down, a
     * partition) is found broken in about 20 s when idle (the kernel's default: 2 h),
     * and a query or COMMIT it sent that is not acknowledged fails after 10 s rather
     * than after the kernel's retransmissions (15 min). */
    "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout",
    "application_name", "dbname", NULL};

cm_err_t gw_pg_conn_use(gw_pg_store_t *s, gw_pg_conn_t *c, char *err)
{
    if (c->db && PQstatus(c->db) == CONNECTION_OK)
        return CM_OK;
    if (c->db) {
        CM_WARN("gw.store", "postgres: connection lost, connecting again");
        PQfinish(c->db);
        c->db = NULL;
    }
    int64_t now = cm_clock_mono_ms();
    if (c->retry_at_ms && now < c->retry_at_ms) {
        cm_errf(err, "postgres: cannot connect (next attempt in %lld ms)",
                (long long)(c->retry_at_ms - now));
        return CM_ESTORE;
    }
    const char *const vals[] = {"2", "10", "5", "2", "10000", "bookbench-gateway", s->url, NULL};
    c->db = PQconnectdbParams(conn_keys, vals, 1);
    int64_t took = cm_clock_mono_ms() - now;
    cm_err_t rc = CM_OK;
    if (!c->db || PQstatus(c->db) != CONNECTION_OK) {
        const char *why = c->db ? PQerrorMessage(c->db) : "out of memory";
        CM_ERROR("gw.store", "postgres: cannot connect: %s", why);
        cm_errf(err, "postgres: cannot connect: %s", why);
        rc = CM_ESTORE;
    } else {
        /* An acknowledged webhook must survive a server crash: synchronous_commit=on,
         * whatever the server's default. lock_timeout plays SQLite's busy timeout. */
        char sql[160];
        snprintf(sql, sizeof sql, "SET synchronous_commit=on; SET lock_timeout=%d",
                 __atomic_load_n(&s->lock_timeout_ms, __ATOMIC_RELAXED));
        PGresult *r = PQexec(c->db, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            CM_ERROR("gw.store", "postgres: %s: %s", sql, PQerrorMessage(c->db));
            cm_errf(err, "postgres: %s", PQerrorMessage(c->db));
            rc = CM_ESTORE;
        }
        PQclear(r);
    }
    if (rc) {
        PQfinish(c->db);
        c->db = NULL;
        c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (c->backoff_ms > BACKOFF_MAX_MS)
            c->backoff_ms = BACKOFF_MAX_MS;
        int64_t wait = took > c->backoff_ms ? took : c->backoff_ms;
        c->retry_at_ms = cm_clock_mono_ms() + wait;
        CM_WARN("gw.store", "postgres: next connection attempt in %lld ms", (long long)wait);
        return rc;
    }
    if (c->retry_at_ms)
        CM_INFO("gw.store", "postgres: connected again");
    c->retry_at_ms = 0;
    c->backoff_ms = 0;
    return CM_OK;
}

static void conn_close(gw_pg_conn_t *c)
{
    PQfinish(c->db);
    c->db = NULL;
    pthread_mutex_destroy(&c->mu);
}

/* ---- schema versions --------------------------------------------------------------- */

typedef struct {
    int version; /* the database's before the migration */
} migrate_t;

static cm_err_t version_row(const PGresult *r, int row, void *arg)
{
    *(int *)arg = (int)gw_pg_col_int(r, row, 0);
    return CM_OK;
}

/* Runs a script of several statements (no parameters): PQexecParams takes one. Not as a
 * transaction's first statement (it would run before the BEGIN gw_pg_query sends). */
static cm_err_t exec_script(gw_pg_conn_t *c, const char *sql)
{
    assert(!c->begin_pending);
    PGresult *r = PQexec(c->db, sql);
    cm_err_t rc = PQresultStatus(r) == PGRES_COMMAND_OK ? CM_OK : CM_ESTORE;
    if (rc)
        CM_ERROR("gw.store", "postgres: schema: %s", PQerrorMessage(c->db));
    PQclear(r);
    return rc;
}

static cm_err_t migrate_tx(gw_pg_conn_t *c, void *arg)
{
    migrate_t *m = arg;
    /* A transaction-scoped advisory lock: the second instance waits here until the first
     * has committed its migration (or rolled it back), then reads the version it left.
     * Released by COMMIT or ROLLBACK, so a failed migration never leaves it held, which a
     * session lock on a connection that lives on would. */
    cm_err_t rc = gw_pg_exec(c, "SELECT pg_advisory_xact_lock($1)",
                             GW_PG_ARGS(gw_pg_int(MIGRATION_LOCK)), NULL);
    /* IF NOT EXISTS on an existing table is a NOTICE, which libpq prints raw on stderr
     * at every start; this transaction's statements need no notices. */
    if (!rc)
        rc = gw_pg_exec(c, "SET LOCAL client_min_messages=warning", GW_PG_NO_ARGS, NULL);
    if (!rc)
        rc = gw_pg_exec(c,
                        "CREATE TABLE IF NOT EXISTS gw_schema_version(version INTEGER PRIMARY KEY,"
                        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
                        GW_PG_NO_ARGS, NULL);
    m->version = 0;
    if (!rc)
        rc = gw_pg_query(c, "SELECT COALESCE(MAX(version),0) FROM gw_schema_version", GW_PG_NO_ARGS,
                         version_row, &m->version, NULL);
    if (!rc && m->version > SCHEMA_VERSION)
        return CM_ESTATE;
    for (size_t i = 0; !rc && i < sizeof migrations / sizeof migrations[0]; i++) {
        int applied = 0;
        rc = gw_pg_query(c, "SELECT 1 FROM gw_schema_version WHERE version=$1",
                         GW_PG_ARGS(gw_pg_int(migrations[i].version)), NULL, NULL, &applied);
        if (rc || applied)
            continue;
        rc = exec_script(c, migrations[i].sql ? migrations[i].sql : schema_v1);
        if (!rc)
            rc = gw_pg_exec(c, "INSERT INTO gw_schema_version(version) VALUES($1)",
                            GW_PG_ARGS(gw_pg_int(migrations[i].version)), NULL);
    }
    return rc;
}

static cm_err_t migrate(gw_pg_store_t *s, char *err)
{
    migrate_t m = {0};
    char why[CM_ERR_LEN] = "";
    pthread_mutex_lock(&s->wr.mu);
    cm_err_t rc = gw_pg_conn_use(s, &s->wr, err);
    if (!rc)
        rc = gw_pg_tx_run(&s->wr, migrate_tx, &m, why);
    pthread_mutex_unlock(&s->wr.mu);
    if (rc == CM_ESTATE)
        cm_errf(err, "postgres: schema version %d is newer than this gateway's (%d)", m.version,
                SCHEMA_VERSION);
    else if (rc && why[0])
        cm_errf(err, "postgres: cannot bring the schema from version %d to %d: %s", m.version,
                SCHEMA_VERSION, why);
    return rc;
}

/* ---- open / close ------------------------------------------------------------------ */

cm_err_t gw_pg_store_open(const char *url, const char *instance, gw_pg_store_t **out, char *err)
{
    gw_pg_store_t *s = calloc(1, sizeof *s);
    *out = NULL;
    if (!s)
        return CM_ENOMEM;
    /* Every lock is made before anything can fail: close destroys them all. */
    pthread_mutex_init(&s->in.mu, NULL);
    pthread_mutex_init(&s->wr.mu, NULL);
    pthread_mutex_init(&s->rd.mu, NULL);
    pthread_mutex_init(&s->co.mu, NULL);
    pthread_mutex_init(&s->qmu, NULL);
    pthread_cond_init(&s->qcv, NULL);
    s->lock_timeout_ms = 10000;
    s->url = strdup(url);
    uint64_t id[2] = {0, 0};
    if (cm_random_bytes(id, sizeof id) != 0) /* then only the address tells handles apart */
        id[0] = (uint64_t)(uintptr_t)s;
    snprintf(s->instance, sizeof s->instance, "%016" PRIx64 "%016" PRIx64, id[0], id[1]);
    cm_err_t rc = s->url ? CM_OK : CM_ENOMEM;
    if (instance) {
        size_t len = strlen(instance);
        int ok = len > 0 && len < sizeof s->instance;
        for (size_t i = 0; ok && i < len; i++)
            ok = isalnum((unsigned char)instance[i]) || strchr("._:-", instance[i]);
        if (!ok) {
            cm_errf(err, "instance name \"%.60s\" is not 1-%zu bytes of [A-Za-z0-9._:-]", instance,
                    sizeof s->instance - 1);
            rc = CM_EINVAL;
        } else {
            memcpy(s->instance, instance, len + 1);
        }
    }
    if (!rc)
        rc = migrate(s, err);
    if (!rc) {
        /* The other two connections are made now, so a bad URL or password fails the
         * open rather than the first webhook. */
        pthread_mutex_lock(&s->rd.mu);
        rc = gw_pg_conn_use(s, &s->rd, err);
        pthread_mutex_unlock(&s->rd.mu);
    }
    if (!rc) {
        pthread_mutex_lock(&s->in.mu);
        rc = gw_pg_conn_use(s, &s->in, err);
        pthread_mutex_unlock(&s->in.mu);
    }
    if (!rc)
        rc = gw_pg_ingest_start(s, err);
    if (rc) {
        gw_pg_store_close(&s);
        return rc;
    }
    *out = s;
    return CM_OK;
}

void gw_pg_store_close(gw_pg_store_t **sp)
{
    gw_pg_store_t *s = sp ? *sp : NULL;
    if (!s)
        return;
    gw_pg_notify_stop(s);
    gw_pg_ingest_stop(s);
    conn_close(&s->in);
    conn_close(&s->wr);
    conn_close(&s->rd);
    conn_close(&s->co);
    pthread_cond_destroy(&s->qcv);
    pthread_mutex_destroy(&s->qmu);
    free(s->url);
    free(s);
    *sp = NULL;
}

/* Applied to the connections now and to every one made later. */
void gw_pg_store_set_busy_timeout(gw_pg_store_t *s, int ms)
{
    gw_pg_conn_t *cs[] = {&s->in, &s->wr, &s->rd};
    char sql[64];
    snprintf(sql, sizeof sql, "SET lock_timeout=%d", ms);
    for (size_t i = 0; i < 3; i++) {
        pthread_mutex_lock(&cs[i]->mu);
        __atomic_store_n(&s->lock_timeout_ms, ms, __ATOMIC_RELAXED);
        if (cs[i]->db && PQstatus(cs[i]->db) == CONNECTION_OK &&
            gw_pg_exec(cs[i], sql, GW_PG_NO_ARGS, NULL) != CM_OK)
            CM_WARN("gw.store", "postgres: cannot set the lock timeout");
        pthread_mutex_unlock(&cs[i]->mu);
    }
}
