/* gw_store_pg_sql.c - how the PostgreSQL store runs a statement: typed parameters onto
 * PQexecParams, rows to a callback, errors mapped to CM_ESTORE with the server's SQLSTATE
 * kept, and the one transaction helper (contracts in gw_store_pg_int.h).
 *
 * Every BEGIN, COMMIT, ROLLBACK and SAVEPOINT of the store is in this file.
 */
#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_log.h"
#include "gw_store_pg_int.h"

/* Type OIDs (server/catalog/pg_type_d.h, stable since forever). */
enum { OID_BYTEA = 17, OID_INT8 = 20, OID_TEXT = 25 };

enum { MAX_PARAMS = 24 };

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
            types[i] = OID_BYTEA;
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
    PGresult *r = PQexecParams(c->db, sql, (int)args.n, types, vals, lens, fmts, 0);
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
        rc = simple(c, "BEGIN");
        if (!rc) {
            rc = fn(c, arg);
            if (!rc)
                rc = simple(c, "COMMIT");
        }
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
    if (PQtransactionStatus(c->db) != PQTRANS_INTRANS) {
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
