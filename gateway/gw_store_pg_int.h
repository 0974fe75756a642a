/* gw_store_pg_int.h - what the files of the PostgreSQL store share. Internal to the store:
 * only gw_store_pg_*.c (and gw_store.c, through gw_store_be.h) see it; everything else
 * uses gw_store.h.
 *
 * gw_store.h is implemented on PostgreSQL (the gw_pg_store_* functions of gw_store_be.h)
 * by one file per concern, mirroring the SQLite store's split:
 *   gw_store_pg_conn.c    opening, connections and reconnection, the schema and its versions
 *                         (migrated under an advisory lock), closing
 *   gw_store_pg_sql.c     typed parameters onto PQexecParams, queries, the transaction
 *                         helper (savepoints, retries of serialisation failures), errors
 *   gw_store_pg_ingest.c  group commit of concurrent webhooks by the committer thread
 *   gw_store_pg_jobs.c    claims (FOR UPDATE SKIP LOCKED, one running job per lane across
 *                         instances), leases, outcomes, dead letters, re-runs, recovery
 *   gw_store_pg_sagas.c   saga rows, step log, entities
 *   gw_store_pg_views.c   the admin API's JSON views (the SQLite store's JSON) and counts
 *   gw_store_pg_notify.c  what instances share besides the tables: notices between them
 *                         (LISTEN/NOTIFY, a listener thread) and rate-limit buckets
 *
 * Connections. A PGconn must not be used by two threads at once, so each comes with the
 * mutex its users hold for the whole use:
 *   in  the committer thread's group commits
 *   wr  every other write (workers' bookkeeping, sagas, entities), under wr.mu
 *   rd  reads (admin views, states, readiness), under rd.mu
 *   co  coordination between instances: rate-limit takes and published notices, one
 *       short statement each (kept off wr, which workers hold for whole claims)
 * and the notice listener's own connection, which only its thread uses (gw_pg_notify_t).
 * A connection found broken (the server restarted, the backend was terminated) fails the
 * call that met it with CM_ESTORE and is made again by the next use (gw_pg_conn_use); a
 * connection that cannot be made fails its calls at once for a short back-off before the
 * next attempt, so a server that is down costs each webhook a prompt 503 (not stored)
 * and /health/ready a prompt "failing", never a wait per call.
 *
 * Lock order: a connection's mu may be held while taking qmu; never the other way round.
 *
 * Ownership: gw_pg_store_open makes the store and gw_pg_store_close frees it; the
 * committer is joined before. Values bound with gw_pg_* are borrowed.
 */
#ifndef GW_STORE_PG_INT_H
#define GW_STORE_PG_INT_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_buf.h"
#include "cm_err.h"
#include "gw_store_be.h"

/* One queued ingest (defined in gw_store_pg_ingest.c). */
typedef struct gw_pg_pending gw_pg_pending_t;

/* A connection with its lock. */
typedef struct {
    PGconn *db;         /* NULL or broken: made again by gw_pg_conn_use */
    pthread_mutex_t mu; /* held for the whole use of db */
    char sqlstate[6];   /* of the last failed statement, "" when none (guarded by mu) */
    /* After a failed connection attempt: no other before retry_at_ms (cm_clock_mono_ms;
     * 0: none failed), backoff_ms the wait that set it (guarded by mu). */
    int64_t retry_at_ms;
    int backoff_ms;
    /* gw_pg_tx_run has opened a transaction whose BEGIN is not sent yet: it goes with the
     * next statement of gw_pg_query, in one round trip (guarded by mu). */
    int begin_pending;
} gw_pg_conn_t;

struct gw_pg_store {
    /* Set at open, then read-only. */
    char *url;
    /* This handle's name in jobs.holder: recovery at start takes back the jobs this
     * process left running (its own) and those whose lease expired, never a live
     * instance's (see gw_pg_store_recover). */
    char instance[40];
    int lock_timeout_ms; /* see gw_store_set_busy_timeout; atomic: set while in use */

    gw_pg_conn_t in, wr, rd, co;

    /* The notice listener, started by the first gw_pg_store_on_notice (NULL until then),
     * stopped by gw_pg_notify_stop (gw_store_pg_notify.c). */
    struct gw_pg_notify *notify;

    /* Ingest (gw_store_pg_ingest.c). */
    pthread_t committer;
    pthread_mutex_t qmu; /* guards the queue and the flags below */
    pthread_cond_t qcv;
    gw_pg_pending_t *head, *tail;
    int stopping, started;
};

/* ---- connections (gw_store_pg_conn.c) ------------------------------------------------ */

/* Makes c usable: (re)connects when it has no connection or its connection is broken,
 * setting the session up (synchronous_commit=on, the lock timeout). CM_ESTORE (logged,
 * libpq's message also into err, may be NULL) when the server cannot be reached, within
 * connect_timeout (2 s unless the URL sets it); after a failed attempt, CM_ESTORE at once
 * (not logged) until a back-off of 100 ms doubling to 1 s has passed. The caller holds
 * c->mu. */
cm_err_t gw_pg_conn_use(gw_pg_store_t *s, gw_pg_conn_t *c, char *err) CM_WUR;

/* ---- statements (gw_store_pg_sql.c) -------------------------------------------------- */

typedef enum { GW_PG_NULL, GW_PG_INT, GW_PG_TEXT, GW_PG_BLOB, GW_PG_ARRAY } gw_pg_type_t;

/* One value to bind, as gw_sq_val_t: made only by the typed constructors below, so the
 * compiler checks each call. Texts and blobs are borrowed until the statement returns. */
typedef struct {
    gw_pg_type_t type;
    int64_t i;
    const void *p; /* GW_PG_TEXT: NUL-terminated; GW_PG_BLOB, GW_PG_ARRAY: len bytes */
    size_t len;
    Oid oid; /* GW_PG_ARRAY: the array's type */
} gw_pg_val_t;

static inline gw_pg_val_t gw_pg_int(int64_t v)
{
    return (gw_pg_val_t){.type = GW_PG_INT, .i = v};
}

/* NULL binds SQL NULL. */
static inline gw_pg_val_t gw_pg_text(const char *v)
{
    return (gw_pg_val_t){.type = v ? GW_PG_TEXT : GW_PG_NULL, .p = v};
}

/* Bound as bytea, in binary (no escaping); a NULL pointer binds NULL. */
static inline gw_pg_val_t gw_pg_blob(const void *v, size_t len)
{
    return (gw_pg_val_t){.type = v ? GW_PG_BLOB : GW_PG_NULL, .p = v, .len = len};
}

/* A one-dimensional array of integers, texts or blobs, built in PostgreSQL's binary array
 * format and bound as one parameter (int8[], text[] or bytea[]): a whole batch of rows
 * goes to the server in one statement (SELECT ... FROM unnest($1::text[], ...)) without
 * quoting or escaping anything. Owns its buffer; not thread-safe. */
typedef struct {
    cm_buf_t b;
    gw_pg_type_t elem; /* GW_PG_INT, GW_PG_TEXT or GW_PG_BLOB */
    int n;
} gw_pg_arr_t;

/* An empty array of elem (GW_PG_INT, GW_PG_TEXT or GW_PG_BLOB) of at most cap bytes.
 * CM_ENOMEM; gw_pg_arr_free it either way. */
cm_err_t gw_pg_arr_init(gw_pg_arr_t *a, gw_pg_type_t elem, size_t cap) CM_WUR;
/* Appends v, which is of the array's element type or NULL (gw_pg_text(NULL) and
 * gw_pg_blob(NULL, 0) are NULL elements). CM_ETOOBIG past the cap, CM_ENOMEM; on error
 * the array is as it was. */
cm_err_t gw_pg_arr_add(gw_pg_arr_t *a, gw_pg_val_t v) CM_WUR;
/* Empties a (keeping its memory), for the next batch. */
void gw_pg_arr_reset(gw_pg_arr_t *a);
void gw_pg_arr_free(gw_pg_arr_t *a);
/* a as a parameter (borrowed: a must outlive the statement). */
gw_pg_val_t gw_pg_array(const gw_pg_arr_t *a);

typedef struct {
    const gw_pg_val_t *v;
    size_t n;
} gw_pg_args_t;

/* GW_PG_ARGS(gw_pg_int(now_ms), gw_pg_text(id)): $1 is the first. */
#define GW_PG_ARGS(...)                                                                            \
    ((gw_pg_args_t){(const gw_pg_val_t[]){__VA_ARGS__},                                            \
                    sizeof((const gw_pg_val_t[]){__VA_ARGS__}) / sizeof(gw_pg_val_t)})
#define GW_PG_NO_ARGS ((gw_pg_args_t){NULL, 0})

/* Called for each row of a result; an error stops and is returned by the query. */
typedef cm_err_t (*gw_pg_row_fn)(const PGresult *r, int row, void *arg);

/* Runs one statement on c (the caller holds c->mu and has called gw_pg_conn_use) with
 * PQexecParams: integers as int8, texts as text, blobs as binary bytea; results in text.
 * Calls row for each row (may be NULL); *rows (may be NULL) gets the rows returned, or
 * for a statement without RETURNING the rows it changed. CM_ESTORE, logged with the
 * server's message and its SQLSTATE kept in c->sqlstate, when the statement fails. */
cm_err_t gw_pg_query(gw_pg_conn_t *c, const char *sql, gw_pg_args_t args, gw_pg_row_fn row,
                     void *arg, int *rows) CM_WUR;
/* gw_pg_query for its effect; *changes (may be NULL) gets the rows changed. */
cm_err_t gw_pg_exec(gw_pg_conn_t *c, const char *sql, gw_pg_args_t args, int *changes) CM_WUR;
/* gw_pg_query on the read connection, under its lock, reconnecting first if needed. */
cm_err_t gw_pg_read(gw_pg_store_t *s, const char *sql, gw_pg_args_t args, gw_pg_row_fn row,
                    void *arg, int *rows) CM_WUR;

/* Column i of row: an integer (NULL: 0), a text copied into dst of cap bytes (NULL: "",
 * truncated), or whether it is NULL. */
int64_t gw_pg_col_int(const PGresult *r, int row, int i);
void gw_pg_col_text(char *dst, size_t cap, const PGresult *r, int row, int i);

/* ---- transactions (gw_store_pg_sql.c) ------------------------------------------------ */

/* The body of a transaction: CM_OK to commit, anything else to roll back. */
typedef cm_err_t (*gw_pg_tx_fn)(gw_pg_conn_t *c, void *arg);

/* Runs fn(c, arg) in one transaction (the caller holds c->mu, c is usable, no transaction
 * is open): BEGIN, fn, COMMIT; on any error ROLLBACK, so nothing fn wrote stays. BEGIN is
 * sent with fn's first statement, in one round trip: fn runs its statements through
 * gw_pg_query (and so gw_pg_exec, gw_pg_tx_nested), never on c->db directly before one. A
 * serialisation failure or a deadlock (SQLSTATE 40001, 40P01: two instances' batches
 * taking the same unique keys in opposite orders) rolls back and runs fn again, up to
 * three times: fn must be safe to run again from the start. Returns fn's code or
 * CM_ESTORE (libpq's message also into err, may be NULL). */
cm_err_t gw_pg_tx_run(gw_pg_conn_t *c, gw_pg_tx_fn fn, void *arg, char *err) CM_WUR;
/* Inside a gw_pg_tx_run body: fn under a savepoint, so a failed fn is undone alone and the
 * transaction goes on (PostgreSQL aborts the whole transaction on any error otherwise). */
cm_err_t gw_pg_tx_nested(gw_pg_conn_t *c, gw_pg_tx_fn fn, void *arg) CM_WUR;

/* Every write but the group commit: takes wr, reconnects it if needed, runs fn in
 * gw_pg_tx_run, lets wr go. Any thread but the committer's. */
cm_err_t gw_pg_write(gw_pg_store_t *s, gw_pg_tx_fn fn, void *arg) CM_WUR;
/* gw_pg_write of one statement; *changes (may be NULL) gets the rows it changed. */
cm_err_t gw_pg_write_stmt(gw_pg_store_t *s, const char *sql, gw_pg_args_t args,
                          int *changes) CM_WUR;

/* ---- ingest (gw_store_pg_ingest.c) --------------------------------------------------- */

/* Starts the committer (from gw_pg_store_open, once the schema is current). */
cm_err_t gw_pg_ingest_start(gw_pg_store_t *s, char *err) CM_WUR;
/* Stops intake and joins the committer; safe after a failed or partial start. */
void gw_pg_ingest_stop(gw_pg_store_t *s);

/* ---- between instances (gw_store_pg_notify.c) ---------------------------------------- */

/* The channels: jobs became runnable (the group commit's NOTIFY, replays, re-runs), and a
 * Cal.com event type's availability changed. A notice's payload is the sending handle's
 * instance name, then a space and the detail when there is one (the listener skips its
 * own handle's notices by it); an empty payload is anybody's. */
#define GW_PG_JOBS_CHANNEL "gw_jobs"
#define GW_PG_SLOTS_CHANNEL "gw_slots"

/* Inside a transaction on c: NOTIFY channel with s's payload (detail may be NULL), sent by
 * the server when the transaction commits, not at all when it rolls back. */
cm_err_t gw_pg_notify_in_tx(gw_pg_store_t *s, gw_pg_conn_t *c, const char *channel,
                            const char *detail) CM_WUR;
/* Stops the listener (if started) and frees it; from gw_pg_store_close, before the
 * connections close. After it returns no notice callback runs. */
void gw_pg_notify_stop(gw_pg_store_t *s);

/* ---- entities (gw_store_pg_sagas.c) -------------------------------------------------- */

/* gw_store_entity_set inside the caller's transaction on c. */
cm_err_t gw_pg_entity_set(gw_pg_conn_t *c, const char *kind, const char *id, const char *tenant_id,
                          const char *state, const char *ref, const char *error,
                          int64_t now_ms) CM_WUR;

#endif
