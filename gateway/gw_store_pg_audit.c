/* gw_store_pg_audit.c - the audit log of admin actions on PostgreSQL (gw_store.h's
 * gw_store_audit_*), and the event look-up the admin API's scoped tokens need. The table
 * is made by schema version 5 (gw_store_pg_conn.c). */
#include <libpq-fe.h>
#include <string.h>

#include "gw_store_pg_int.h"

cm_err_t gw_pg_store_audit_add(gw_pg_store_t *s, const gw_audit_t *a)
{
    /* synchronous_commit=on for every connection (gw_pg_conn_use): durable on COMMIT. */
    return gw_pg_write_stmt(
        s,
        "INSERT INTO admin_audit(at_ms,token,tenant_id,action,target,outcome,detail) "
        "VALUES($1,$2,$3,$4,$5,$6,$7)",
        GW_PG_ARGS(gw_pg_int(a->at_ms), gw_pg_text(a->token), gw_pg_text(a->tenant),
                   gw_pg_text(a->action), gw_pg_text(a->target), gw_pg_text(a->outcome),
                   gw_pg_text(a->detail)),
        NULL);
}

typedef struct {
    gw_audit_fn fn;
    void *ud;
} list_t;

/* A text column, NULL for SQL NULL. */
static const char *col(const PGresult *r, int row, int i)
{
    return PQgetisnull(r, row, i) ? NULL : PQgetvalue(r, row, i);
}

static cm_err_t list_row(const PGresult *r, int row, void *arg)
{
    list_t *l = arg;
    gw_audit_t a = {.id = gw_pg_col_int(r, row, 0),
                    .at_ms = gw_pg_col_int(r, row, 1),
                    .token = col(r, row, 2),
                    .tenant = col(r, row, 3),
                    .action = col(r, row, 4),
                    .target = col(r, row, 5),
                    .outcome = col(r, row, 6),
                    .detail = col(r, row, 7)};
    return l->fn(l->ud, &a);
}

cm_err_t gw_pg_store_audit_list(gw_pg_store_t *s, const char *tenant, int64_t before_id, int limit,
                                gw_audit_fn fn, void *ud)
{
    list_t l = {.fn = fn, .ud = ud};
    return gw_pg_read(s,
                      "SELECT id, at_ms, token, tenant_id, action, target, outcome, detail FROM "
                      "admin_audit WHERE ($1::text IS NULL OR tenant_id=$1) AND ($2 <= 0 OR "
                      "id < $2) ORDER BY id DESC LIMIT $3",
                      GW_PG_ARGS(gw_pg_text(tenant), gw_pg_int(before_id), gw_pg_int(limit)),
                      list_row, &l, NULL);
}

typedef struct {
    char *tenant;
    size_t cap;
    int found;
} tenant_t;

static cm_err_t tenant_row(const PGresult *r, int row, void *arg)
{
    tenant_t *t = arg;
    gw_pg_col_text(t->tenant, t->cap, r, row, 0);
    t->found = 1;
    return CM_OK;
}

cm_err_t gw_pg_store_event_tenant(gw_pg_store_t *s, int64_t event_id, char *tenant, size_t cap)
{
    tenant_t t = {.tenant = tenant, .cap = cap};
    cm_err_t rc = gw_pg_read(s, "SELECT tenant_id FROM events WHERE id=$1",
                             GW_PG_ARGS(gw_pg_int(event_id)), tenant_row, &t, NULL);
    return !rc && !t.found ? CM_ENOTFOUND : rc;
}
