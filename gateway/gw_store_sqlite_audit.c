/* gw_store_sqlite_audit.c - the audit log of admin actions on SQLite (gw_store.h's
 * gw_store_audit_*), and the event look-up the admin API's scoped tokens need. The table
 * is made with the schema (gw_store_sqlite_conn.c, version 7). */
#include <sqlite3.h>
#include <string.h>

#include "gw_store_sqlite_int.h"

typedef struct {
    const gw_audit_t *a;
} add_t;

static cm_err_t add_tx(sqlite3 *db, void *arg)
{
    const gw_audit_t *a = ((add_t *)arg)->a;
    return gw_sq_exec(db,
                      "INSERT INTO admin_audit(at_ms,token,tenant_id,action,target,outcome,detail) "
                      "VALUES(?1,?2,?3,?4,?5,?6,?7)",
                      GW_SQ_ARGS(gw_sq_int(a->at_ms), gw_sq_text(a->token), gw_sq_text(a->tenant),
                                 gw_sq_text(a->action), gw_sq_text(a->target),
                                 gw_sq_text(a->outcome), gw_sq_text(a->detail)),
                      NULL);
}

cm_err_t gw_sq_store_audit_add(gw_sq_store_t *s, const gw_audit_t *a)
{
    add_t x = {.a = a};
    /* Durable as a webhook is: an operator's action must not vanish with a power cut. */
    return gw_sq_write(s, GW_SQ_DURABLE, add_tx, &x);
}

typedef struct {
    gw_audit_fn fn;
    void *ud;
} list_t;

static const char *col(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

static cm_err_t list_row(sqlite3_stmt *st, void *arg)
{
    list_t *l = arg;
    gw_audit_t a = {.id = sqlite3_column_int64(st, 0),
                    .at_ms = sqlite3_column_int64(st, 1),
                    .token = col(st, 2),
                    .tenant = col(st, 3),
                    .action = col(st, 4),
                    .target = col(st, 5),
                    .outcome = col(st, 6),
                    .detail = col(st, 7)};
    return l->fn(l->ud, &a);
}

cm_err_t gw_sq_store_audit_list(gw_sq_store_t *s, const char *tenant, int64_t before_id, int limit,
                                gw_audit_fn fn, void *ud)
{
    list_t l = {.fn = fn, .ud = ud};
    return gw_sq_read(s,
                      "SELECT id, at_ms, token, tenant_id, action, target, outcome, detail FROM "
                      "admin_audit WHERE (?1 IS NULL OR tenant_id=?1) AND (?2 <= 0 OR id < ?2) "
                      "ORDER BY id DESC LIMIT ?3",
                      GW_SQ_ARGS(gw_sq_text(tenant), gw_sq_int(before_id), gw_sq_int(limit)),
                      list_row, &l, NULL);
}

typedef struct {
    char *tenant;
    size_t cap;
    int found;
} tenant_t;

static cm_err_t tenant_row(sqlite3_stmt *st, void *arg)
{
    tenant_t *t = arg;
    gw_sq_col_text(t->tenant, t->cap, st, 0);
    t->found = 1;
    return CM_OK;
}

cm_err_t gw_sq_store_event_tenant(gw_sq_store_t *s, int64_t event_id, char *tenant, size_t cap)
{
    tenant_t t = {.tenant = tenant, .cap = cap};
    cm_err_t rc = gw_sq_read(s, "SELECT tenant_id FROM events WHERE id=?1",
                             GW_SQ_ARGS(gw_sq_int(event_id)), tenant_row, &t, NULL);
    return !rc && !t.found ? CM_ENOTFOUND : rc;
}
