/* gw_store_pg_purge.c - retention on the PostgreSQL store (contract: gw_store_purge in
 * gw_store.h; the statements: gw_store_purge_sql.h). Several instances may purge at once:
 * their batches overlap at worst, and a row deleted by one is simply not there for the
 * other. */
#include "gw_store_pg_int.h"

#define GW_PURGE_CUT "$1"
#define GW_PURGE_BATCH "$2"
#include "gw_store_purge_sql.h"

typedef struct {
    int64_t cutoff_ms;
    int batch;
    gw_purge_t *out;
} purge_t;

static cm_err_t purge_tx(gw_pg_conn_t *c, void *arg)
{
    purge_t *p = arg;
    gw_pg_args_t a = GW_PG_ARGS(gw_pg_int(p->cutoff_ms), gw_pg_int(p->batch));
    cm_err_t rc = gw_pg_exec(c, GW_PURGE_JOBS_SQL, a, &p->out->jobs);
    if (!rc)
        rc = gw_pg_exec(c, GW_PURGE_EVENTS_SQL, a, &p->out->events);
    if (!rc)
        rc = gw_pg_exec(c, GW_PURGE_STEPS_SQL, a, &p->out->saga_steps);
    return rc;
}

cm_err_t gw_pg_store_purge(gw_pg_store_t *s, int64_t cutoff_ms, int batch, gw_purge_t *out)
{
    purge_t p = {.cutoff_ms = cutoff_ms, .batch = batch, .out = out};
    cm_err_t rc = gw_pg_write(s, purge_tx, &p);
    if (rc)
        *out = (gw_purge_t){0};
    return rc;
}
