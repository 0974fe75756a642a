/* gw_store_pg_sql.c - how the PostgreSQL store runs a statement: typed parameters onto
 * PQexecParams, rows to a callback, errors mapped to CM_ESTORE with the server's SQLSTATE
 * kept, and the one transaction helper (contracts in gw_store_pg_int.h).
 *
 * Every BEGIN, COMMIT, ROLLBACK and SAVEPOINT of the store is in this file.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <endian.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_log.h"
#include "gw_store_pg_int.h"

/* Type OIDs (server/catalog/pg_type_d.h, stable since forever). */
enum {
    OID_BYTEA = 17,
    OID_INT8 = 20,
    OID_TEXT = 25,
    OID_BYTEA_ARRAY = 1001,
    OID_TEXT_ARRAY = 1009,
    OID_INT8_ARRAY = 1016
};

enum { MAX_PARAMS = 24 };

/* The first result of the pipeline's next statement, the rest of its results (none, for
 * these statements) dropped up to the NULL that ends them. NULL when none came. */
static PGresult *pipeline_result(PGconn *db)
{
    PGresult *r = PQgetResult(db), *more;
    if (r)
        while ((more = PQgetResult(db)) != NULL)
            PQclear(more);
    return r;
}

/* BEGIN and the statement in one round trip (libpq's pipeline mode): the transaction's
 * first statement does not wait for the server to answer a BEGIN first. That wait is a
 * round trip per transaction, and on a small machine shared with the gateway each one
 * waits for the server's backend to be scheduled (a BEGIN alone was seen taking 1.8 ms
 * on average under the ingest benchmark). Returns the statement's result, or BEGIN's
 * when BEGIN failed (the statement then did not run), or NULL. A connection left in an
 * unknown state is closed (c->db NULL), so that gw_pg_conn_use makes it again. */
static PGresult *exec_after_begin(gw_pg_conn_t *c, const char *sql, int n, const Oid *types,
                                  const char *const *vals, const int *lens, const int *fmts)
{
    PGconn *db = c->db;
    if (!PQenterPipelineMode(db)) {
        PGresult *b = PQexec(db, "BEGIN");
        if (PQresultStatus(b) != PGRES_COMMAND_OK)
            return b;
        PQclear(b);
        return PQexecParams(db, sql, n, types, vals, lens, fmts, 0);
    }
    int sent = PQsendQueryParams(db, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) &&
               PQsendQueryParams(db, sql, n, types, vals, lens, fmts, 0) && PQpipelineSync(db);
    PGresult *begin = sent ? pipeline_result(db) : NULL;
    PGresult *r = sent ? pipeline_result(db) : NULL;
    PGresult *sync = sent ? PQgetResult(db) : NULL;
    int synced = PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
    PQclear(sync);
    if (!synced || !PQexitPipelineMode(db)) {
        CM_ERROR("gw.store", "postgres: pipeline: %s", PQerrorMessage(db));
        if (PQstatus(db) == CONNECTION_OK) { /* not broken, but in no state to go on */
            PQclear(r);
            r = NULL;
        }
        PQfinish(db);
        c->db = NULL;
    }
    if (begin && PQresultStatus(begin) != PGRES_COMMAND_OK) {
        PQclear(r);
        return begin;
    }
    PQclear(begin);
    return r;
}

cm_err_t gw_pg_query(gw_pg_conn_t *c, const char *sql, gw_pg_args_t args, gw_pg_row_fn row,
                     void *arg, int *rows)
{
    /* Zeroed: with no parameters GCC -O3 (Release) cannot tell they are never read. */
    Oid types[MAX_PARAMS] = {0};
    const char *vals[MAX_PARAMS] = {0};
    int lens[MAX_PARAMS] = {0}, fmts[MAX_PARAMS] = {0};
    char ints[MAX_PARAMS][24];
    cm_err_t rc = CM_OK;
    assert(args.n <= MAX_PARAMS);
    if (rows)
        *rows = 0;
    for (size_t i = 0; i < args.n; i++) {
        const gw_pg_val_t *v = &args.v[i];
        lens[i] = fmts[i] = 0;
        switch (v->type) {
        case GW_PG_INT:
            snprintf(ints[i], sizeof ints[i], "%" PRId64, v->i);
            types[i] = OID_INT8;
            vals[i] = ints[i];
            break;
        case GW_PG_TEXT:
            types[i] = OID_TEXT;
            vals[i] = v->p;
            break;
        case GW_PG_BLOB:
        case GW_PG_ARRAY:
            types[i] = v->type == GW_PG_BLOB ? OID_BYTEA : v->oid;
            vals[i] = v->p;
            lens[i] = (int)v->len;
            fmts[i] = 1;
            break;
        case GW_PG_NULL:
            types[i] = 0; /* the server infers it from where the parameter is used */
            vals[i] = NULL;
            break;
        }
    }
    c->sqlstate[0] = '\0';
    PGresult *r;
    if (c->begin_pending) {
        c->begin_pending = 0;
        r = exec_after_begin(c, sql, (int)args.n, types, vals, lens, fmts);
    } else {
        r = PQexecParams(c->db, sql, (int)args.n, types, vals, lens, fmts, 0);
    }
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        snprintf(c->sqlstate, sizeof c->sqlstate, "%s", code ? code : "");
        /* A statement that meets a unique key another instance holds is retried by its
         * caller (the claim): not worth an error line. */
        if (strcmp(c->sqlstate, "23505") || !strstr(sql, "jobs_one_running"))
            CM_ERROR("gw.store", "%.120s: [%s] %s", sql, c->sqlstate,
                     r ? PQresultErrorMessage(r) : PQerrorMessage(c->db));
        rc = CM_ESTORE;
    } else if (st == PGRES_TUPLES_OK) {
        int n = PQntuples(r);
        for (int i = 0; !rc && row && i < n; i++)
            rc = row(r, i, arg);
        if (rows)
            *rows = n;
    } else if (rows) {
        *rows = atoi(PQcmdTuples(r));
    }
    PQclear(r);
    return rc;
}

cm_err_t gw_pg_exec(gw_pg_conn_t *c, const char *sql, gw_pg_args_t args, int *changes)
{
    return gw_pg_query(c, sql, args, NULL, NULL, changes);
}

cm_err_t gw_pg_read(gw_pg_store_t *s, const char *sql, gw_pg_args_t args, gw_pg_row_fn row,
                    void *arg, int *rows)
{
    pthread_mutex_lock(&s->rd.mu);
    cm_err_t rc = gw_pg_conn_use(s, &s->rd, NULL);
    if (!rc)
        rc = gw_pg_query(&s->rd, sql, args, row, arg, rows);
    /* An idle connection whose server restarted still says CONNECTION_OK until a statement
     * meets the closed socket: a read is safe to send again on a new connection, so the
     * first admin view or readiness check after a restart is not an error. */
    if (rc == CM_ESTORE && (!s->rd.db || PQstatus(s->rd.db) != CONNECTION_OK)) {
        rc = gw_pg_conn_use(s, &s->rd, NULL);
        if (!rc)
            rc = gw_pg_query(&s->rd, sql, args, row, arg, rows);
    }
    pthread_mutex_unlock(&s->rd.mu);
    return rc;
}

int64_t gw_pg_col_int(const PGresult *r, int row, int i)
{
    return PQgetisnull(r, row, i) ? 0 : strtoll(PQgetvalue(r, row, i), NULL, 10);
}

void gw_pg_col_text(char *dst, size_t cap, const PGresult *r, int row, int i)
{
    snprintf(dst, cap, "%s", PQgetisnull(r, row, i) ? "" : PQgetvalue(r, row, i));
}

/* ---- arrays ------------------------------------------------------------------------ */

/* array_recv's format (server/utils/adt/arrayfuncs.c), all integers big-endian: the number
 * of dimensions, a has-nulls flag, the element type; per dimension its length and lower
 * bound; then per element its length (-1: NULL) and its bytes in the element type's binary
 * format (int8: 8 bytes; text and bytea: the bytes themselves). One dimension here, whose
 * length is patched in as elements are added (a length of 0 is the empty array). */
enum { ARR_HEADER = 20, ARR_FLAGS = 4, ARR_DIM = 12 };

static void put32(cm_buf_t *b, size_t at, uint32_t v)
{
    v = htonl(v);
    memcpy(b->data + at, &v, 4);
}

static Oid elem_oid(gw_pg_type_t t)
{
    return t == GW_PG_INT ? OID_INT8 : t == GW_PG_TEXT ? OID_TEXT : OID_BYTEA;
}

cm_err_t gw_pg_arr_init(gw_pg_arr_t *a, gw_pg_type_t elem, size_t cap)
{
    assert(elem == GW_PG_INT || elem == GW_PG_TEXT || elem == GW_PG_BLOB);
    const uint32_t h[5] = {htonl(1), 0, htonl(elem_oid(elem)), 0, htonl(1)};
    cm_buf_init(&a->b, cap < ARR_HEADER ? ARR_HEADER : cap);
    a->elem = elem;
    a->n = 0;
    return cm_buf_add(&a->b, h, sizeof h);
}

void gw_pg_arr_reset(gw_pg_arr_t *a)
{
    assert(a->b.len >= ARR_HEADER);
    a->b.len = ARR_HEADER;
    a->n = 0;
    put32(&a->b, ARR_DIM, 0);
    put32(&a->b, ARR_FLAGS, 0);
}

void gw_pg_arr_free(gw_pg_arr_t *a)
{
    cm_buf_free(&a->b);
    a->n = 0;
}

cm_err_t gw_pg_arr_add(gw_pg_arr_t *a, gw_pg_val_t v)
{
    assert(v.type == GW_PG_NULL || v.type == a->elem);
    assert(a->b.len >= ARR_HEADER);
    size_t was = a->b.len;
    uint64_t i8 = htobe64((uint64_t)v.i);
    const void *p = v.type == GW_PG_INT ? (const void *)&i8 : v.p;
    size_t len = v.type == GW_PG_INT    ? 8
                 : v.type == GW_PG_TEXT ? strlen(v.p)
                 : v.type == GW_PG_BLOB ? v.len
                                        : 0;
    /* An element's length is an int32 (and no field holds more than 1 GB anyway). */
    if (len > INT32_MAX)
        return CM_ETOOBIG;
    uint32_t n = htonl(v.type == GW_PG_NULL ? UINT32_MAX : (uint32_t)len);
    cm_err_t rc = cm_buf_add(&a->b, &n, 4);
    if (!rc && len)
        rc = cm_buf_add(&a->b, p, len);
    if (rc) {
        a->b.len = was; /* as it was */
        a->b.data[was] = '\0';
        return rc;
    }
    a->n++;
    put32(&a->b, ARR_DIM, (uint32_t)a->n);
    if (v.type == GW_PG_NULL)
        put32(&a->b, ARR_FLAGS, 1);
    return CM_OK;
}

gw_pg_val_t gw_pg_array(const gw_pg_arr_t *a)
{
    assert(a->b.len >= ARR_HEADER);
    return (gw_pg_val_t){.type = GW_PG_ARRAY,
                         .oid = a->elem == GW_PG_INT    ? OID_INT8_ARRAY
                                : a->elem == GW_PG_TEXT ? OID_TEXT_ARRAY
                                                        : OID_BYTEA_ARRAY,
                         .p = a->b.data,
                         .len = a->b.len};
}

/* ---- transactions ------------------------------------------------------------------ */

static cm_err_t simple(gw_pg_conn_t *c, const char *sql)
{
    return gw_pg_exec(c, sql, GW_PG_NO_ARGS, NULL);
}

/* A conflict between concurrent transactions, which running the body again resolves. */
static int retryable(const gw_pg_conn_t *c)
{
    return !strcmp(c->sqlstate, "40001") || !strcmp(c->sqlstate, "40P01");
}

enum { TX_TRIES = 3 };

cm_err_t gw_pg_tx_run(gw_pg_conn_t *c, gw_pg_tx_fn fn, void *arg, char *err)
{
    cm_err_t rc = CM_OK;
    for (int attempt = 0; attempt < TX_TRIES; attempt++) {
        /* BEGIN goes out with fn's first statement (exec_after_begin). */
        c->begin_pending = 1;
        rc = fn(c, arg);
        if (!rc && !c->begin_pending)
            rc = simple(c, "COMMIT");
        c->begin_pending = 0; /* fn ran no statement: no transaction to end */
        if (!rc)
            return CM_OK;
        int again = retryable(c);
        if (err)
            cm_errf(err, "%s", PQerrorMessage(c->db));
        /* A broken connection has no transaction left to roll back. */
        if (PQstatus(c->db) == CONNECTION_OK && PQtransactionStatus(c->db) != PQTRANS_IDLE &&
            simple(c, "ROLLBACK") != CM_OK)
            CM_ERROR("gw.store", "a failed transaction could not be rolled back");
        if (!again)
            break;
        CM_WARN("gw.store", "transaction conflict (SQLSTATE %s): running it again", c->sqlstate);
    }
    return rc;
}

cm_err_t gw_pg_tx_nested(gw_pg_conn_t *c, gw_pg_tx_fn fn, void *arg)
{
    if (!c->begin_pending && PQtransactionStatus(c->db) != PQTRANS_INTRANS) {
        CM_ERROR("gw.store", "savepoint: no transaction open, or it has failed");
        return CM_ESTORE;
    }
    cm_err_t rc = simple(c, "SAVEPOINT tx");
    if (rc)
        return rc;
    rc = fn(c, arg);
    if (!rc)
        return simple(c, "RELEASE SAVEPOINT tx");
    if (PQstatus(c->db) == CONNECTION_OK &&
        (simple(c, "ROLLBACK TO SAVEPOINT tx") || simple(c, "RELEASE SAVEPOINT tx")))
        CM_ERROR("gw.store", "a failed savepoint could not be rolled back");
    return rc;
}

cm_err_t gw_pg_write(gw_pg_store_t *s, gw_pg_tx_fn fn, void *arg)
{
    pthread_mutex_lock(&s->wr.mu);
    cm_err_t rc = gw_pg_conn_use(s, &s->wr, NULL);
    if (!rc)
        rc = gw_pg_tx_run(&s->wr, fn, arg, NULL);
    pthread_mutex_unlock(&s->wr.mu);
    return rc;
}

typedef struct {
    const char *sql;
    gw_pg_args_t args;
    int *changes;
} write_stmt_t;

static cm_err_t write_stmt_tx(gw_pg_conn_t *c, void *arg)
{
    write_stmt_t *w = arg;
    return gw_pg_exec(c, w->sql, w->args, w->changes);
}

cm_err_t gw_pg_write_stmt(gw_pg_store_t *s, const char *sql, gw_pg_args_t args, int *changes)
{
    write_stmt_t w = {.sql = sql, .args = args, .changes = changes};
    return gw_pg_write(s, write_stmt_tx, &w);
}
