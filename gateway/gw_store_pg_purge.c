/* gw_store_pg_purge.c - retention and erasure on the PostgreSQL store (contracts:
 * gw_store_purge and gw_store_erase in gw_store.h; retention's statements:
 * gw_store_purge_sql.h). Several instances may purge at once:
 * their batches overlap at worst, and a row deleted by one is simply not there for the
 * other. */
#include <stdio.h>
#include <string.h>

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

/* ---- erasure ------------------------------------------------------------------------ */

/* $1 the phone (exact), $2 the e-mail (any case); either may be NULL. Bodies are valid
 * UTF-8 (the intake parsed each as JSON before storing it). */
#define ERASE_MATCH(col)                                                                           \
    "(($1::text IS NOT NULL AND position($1::text in " col ") > 0) OR ($2::text IS NOT NULL "      \
    "AND position(lower($2::text) in lower(" col ")) > 0))"
/* $3 the tenant (NULL: every tenant), on a table's own tenant_id column. */
#define ERASE_TENANT(col) "($3::text IS NULL OR " col " = $3::text)"
#define ERASE_BODY ERASE_MATCH("convert_from(e.body, 'UTF8')") " AND " ERASE_TENANT("e.tenant_id")
#define ERASE_BUSY                                                                                 \
    "EXISTS (SELECT 1 FROM jobs j WHERE j.event_id = e.id AND j.state IN ('pending', 'running'))"
#define ERASE_IDS "SELECT e.id FROM events e WHERE " ERASE_BODY " AND NOT " ERASE_BUSY

typedef struct {
    const char *phone, *email, *tenant;
    int64_t now_ms;
    gw_erase_t *out;
} erase_t;

static cm_err_t count_row(const PGresult *r, int row, void *arg)
{
    *(int *)arg = (int)gw_pg_col_int(r, row, 0);
    return CM_OK;
}

static cm_err_t erased_row(const PGresult *r, int row, void *arg)
{
    gw_erase_t *out = arg;
    if (out->events < GW_ERASE_IDS_MAX)
        out->ids[out->events] = gw_pg_col_int(r, row, 0);
    out->events++;
    return CM_OK;
}

static cm_err_t erase_tx(gw_pg_conn_t *c, void *arg)
{
    erase_t *e = arg;
    gw_erase_t *out = e->out;
    gw_pg_val_t who[3] = {gw_pg_text(e->phone), gw_pg_text(e->email), gw_pg_text(e->tenant)};
    gw_pg_args_t a2 = {who, 3};
    static const char *const scrub[] = {
        "UPDATE jobs SET last_error = '[erased]' WHERE last_error IS NOT NULL AND " ERASE_MATCH(
            "last_error") " AND " ERASE_TENANT("tenant_id"),
        "UPDATE sagas SET reason = '[erased]' WHERE reason IS NOT NULL AND " ERASE_MATCH(
            "reason") " AND " ERASE_TENANT("tenant_id"),
        "UPDATE saga_steps SET detail = '[erased]' WHERE detail IS NOT NULL AND " ERASE_MATCH(
            "detail") " AND ($3::text IS NULL OR saga_id IN (SELECT id FROM sagas WHERE "
                      "tenant_id = $3::text))",
        "UPDATE entities SET error = '[erased]' WHERE error IS NOT NULL AND " ERASE_MATCH(
            "error") " AND " ERASE_TENANT("tenant_id")};
    char stub[64];
    int n = snprintf(stub, sizeof stub, "{\"erased\":true,\"erased_at_ms\":%lld}",
                     (long long)e->now_ms);
    cm_err_t rc =
        gw_pg_query(c, "SELECT count(*) FROM events e WHERE " ERASE_BODY " AND " ERASE_BUSY, a2,
                    count_row, &out->in_progress, NULL);
    if (!rc)
        rc = gw_pg_exec(c,
                        "UPDATE jobs SET state = 'discarded', updated_at_ms = $4 WHERE state = "
                        "'dead' AND event_id IN (" ERASE_IDS ")",
                        GW_PG_ARGS(who[0], who[1], who[2], gw_pg_int(e->now_ms)),
                        &out->dead_letters);
    for (size_t i = 0; !rc && i < sizeof scrub / sizeof scrub[0]; i++) {
        int changed = 0;
        rc = gw_pg_exec(c, scrub[i], a2, &changed);
        out->errors += changed;
    }
    if (!rc)
        rc = gw_pg_query(
            c,
            "UPDATE events SET body = $4, headers = NULL WHERE id IN (" ERASE_IDS ") RETURNING id",
            GW_PG_ARGS(who[0], who[1], who[2], gw_pg_blob(stub, (size_t)n)), erased_row, out, NULL);
    return rc;
}

cm_err_t gw_pg_store_erase(gw_pg_store_t *s, const char *tenant, const char *phone,
                           const char *email, int64_t now_ms, gw_erase_t *out)
{
    erase_t e = {.phone = phone, .email = email, .tenant = tenant, .now_ms = now_ms, .out = out};
    cm_err_t rc = gw_pg_write(s, erase_tx, &e);
    if (rc)
        memset(out, 0, sizeof *out);
    return rc;
}
