/* gw_store_sqlite_purge.c - retention on the SQLite store (contract: gw_store_purge in
 * gw_store.h; the statements: gw_store_purge_sql.h). */
#include "gw_store_sqlite_int.h"

#define GW_PURGE_CUT "?1"
#define GW_PURGE_BATCH "?2"
#include "gw_store_purge_sql.h"

typedef struct {
    int64_t cutoff_ms;
    int batch;
    gw_purge_t *out;
} purge_t;

static cm_err_t purge_tx(sqlite3 *db, void *arg)
{
    purge_t *p = arg;
    gw_sq_args_t a = GW_SQ_ARGS(gw_sq_int(p->cutoff_ms), gw_sq_int(p->batch));
    cm_err_t rc = gw_sq_exec(db, GW_PURGE_JOBS_SQL, a, &p->out->jobs);
    if (!rc)
        rc = gw_sq_exec(db, GW_PURGE_EVENTS_SQL, a, &p->out->events);
    if (!rc)
        rc = gw_sq_exec(db, GW_PURGE_STEPS_SQL, a, &p->out->saga_steps);
    return rc;
}

cm_err_t gw_sq_store_purge(gw_sq_store_t *s, int64_t cutoff_ms, int batch, gw_purge_t *out)
{
    purge_t p = {.cutoff_ms = cutoff_ms, .batch = batch, .out = out};
    cm_err_t rc = gw_sq_write(s, GW_SQ_BOOKKEEPING, purge_tx, &p);
    if (rc)
        *out = (gw_purge_t){0};
    return rc;
}
