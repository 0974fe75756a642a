/* gw_store_sqlite_reconcile.c - what reconciliation reads and writes on the SQLite store
 * (contracts: gw_store_finding_add, gw_store_findings_json, gw_store_saga_fix and
 * gw_store_event_exists in gw_store.h). */
#include <jansson.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "gw_store_be.h"
#include "gw_store_sqlite_int.h"

cm_err_t gw_sq_store_finding_add(gw_sq_store_t *s, const gw_finding_t *f, int *is_new)
{
    /* The unique (provider, kind, object_id) makes a finding seen again a no-op, in the
     * statement itself: no check-then-insert between two passes. */
    return gw_sq_write_stmt(
        s,
        "INSERT INTO reconcile_findings(at_ms,tenant_id,provider,kind,saga_id,object_id,action,"
        "detail) VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(provider,kind,object_id) DO NOTHING",
        GW_SQ_ARGS(gw_sq_int(f->at_ms), gw_sq_text(f->tenant_id), gw_sq_text(f->provider),
                   gw_sq_text(f->kind), gw_sq_text(f->saga_id), gw_sq_text(f->object_id),
                   gw_sq_text(f->action), gw_sq_text(f->detail)),
        is_new);
}

static json_t *col(sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        return json_integer(sqlite3_column_int64(st, i));
    case SQLITE_NULL:
        return json_null();
    default:
        return json_string((const char *)sqlite3_column_text(st, i));
    }
}

static cm_err_t finding_row(sqlite3_stmt *st, void *arg)
{
    json_t *o = json_object();
    for (int i = 0; o && i < sqlite3_column_count(st); i++)
        json_object_set_new(o, sqlite3_column_name(st, i), col(st, i));
    return o && !json_array_append_new(arg, o) ? CM_OK : CM_ENOMEM;
}

cm_err_t gw_sq_store_findings_json(gw_sq_store_t *s, const char *provider, const char *action,
                                   const char *tenant, int limit, cm_buf_t *out)
{
    json_t *list = json_array();
    cm_err_t rc = list ? CM_OK : CM_ENOMEM;
    if (!rc)
        rc = gw_sq_read(s,
                        "SELECT id, at_ms, tenant_id, provider, kind, saga_id, object_id, action, "
                        "detail FROM reconcile_findings WHERE (?1 IS NULL OR provider=?1) AND "
                        "(?2 IS NULL OR action=?2) AND (?3 IS NULL OR tenant_id=?3) "
                        "ORDER BY id DESC LIMIT ?4",
                        GW_SQ_ARGS(gw_sq_text(provider), gw_sq_text(action), gw_sq_text(tenant),
                                   gw_sq_int(limit)),
                        finding_row, list, NULL);
    char *text = NULL;
    if (!rc) {
        size_t n = json_array_size(list);
        text = json_dumps(list, JSON_COMPACT);
        rc = !text ? CM_ENOMEM : cm_buf_printf(out, "{\"findings\":%s,\"count\":%zu}", text, n);
    }
    free(text);
    json_decref(list);
    return rc;
}

typedef struct {
    const gw_saga_fix_t *fix;
    int64_t now_ms;
    int *changed;
} fix_t;

static cm_err_t fix_tx(sqlite3 *db, void *arg)
{
    fix_t *a = arg;
    const gw_saga_fix_t *f = a->fix;
    cm_err_t rc = gw_sq_exec(
        db,
        "UPDATE sagas SET state=COALESCE(?1,state), booking_uid=COALESCE(?2,booking_uid), "
        "payment_intent=COALESCE(?3,payment_intent), cancelled=MAX(cancelled,?4), "
        "updated_at_ms=?5 WHERE id=?6 AND state=?7 "
        "AND (?2 IS NULL OR COALESCE(booking_uid,'')='') "
        "AND (?3 IS NULL OR COALESCE(payment_intent,'')='') "
        "AND NOT EXISTS (SELECT 1 FROM jobs WHERE entity_id=?6 AND state='running')",
        GW_SQ_ARGS(gw_sq_text(f->state), gw_sq_text(f->booking_uid), gw_sq_text(f->payment_intent),
                   gw_sq_int(f->mark_cancelled ? 1 : 0), gw_sq_int(a->now_ms),
                   gw_sq_text(f->saga_id), gw_sq_text(f->expect)),
        a->changed);
    if (!rc && *a->changed)
        rc = gw_sq_exec(db,
                        "INSERT INTO saga_steps(saga_id,step,phase,detail,at_ms) "
                        "VALUES(?,?,'done',?,?)",
                        GW_SQ_ARGS(gw_sq_text(f->saga_id), gw_sq_text(f->step),
                                   gw_sq_text(f->detail), gw_sq_int(a->now_ms)),
                        NULL);
    /* The call's job may be waiting out a long back-off (a provider that was down): the
     * saga can go on now. */
    if (!rc && *a->changed)
        rc = gw_sq_exec(db,
                        "UPDATE jobs SET next_at_ms=?1 WHERE state='pending' AND next_at_ms>?1 "
                        "AND event_id IN (SELECT id FROM events WHERE entity_id=?2)",
                        GW_SQ_ARGS(gw_sq_int(a->now_ms), gw_sq_text(f->saga_id)), NULL);
    return rc;
}

cm_err_t gw_sq_store_saga_fix(gw_sq_store_t *s, const gw_saga_fix_t *fix, int64_t now_ms,
                              int *changed)
{
    fix_t a = {.fix = fix, .now_ms = now_ms, .changed = changed};
    cm_err_t rc = gw_sq_write(s, GW_SQ_DURABLE, fix_tx, &a);
    if (rc)
        *changed = 0;
    return rc;
}

static cm_err_t one_row(sqlite3_stmt *st, void *arg)
{
    (void)st;
    *(int *)arg = 1;
    return CM_OK;
}

cm_err_t gw_sq_store_event_exists(gw_sq_store_t *s, const char *event_key, int *exists)
{
    return gw_sq_read(s, "SELECT 1 FROM events WHERE event_key=?1",
                      GW_SQ_ARGS(gw_sq_text(event_key)), one_row, exists, NULL);
}
