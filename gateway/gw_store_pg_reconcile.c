/* gw_store_pg_reconcile.c - what reconciliation reads and writes on the PostgreSQL store
 * (contracts: gw_store_finding_add, gw_store_findings_json, gw_store_saga_fix and
 * gw_store_event_exists in gw_store.h). Several instances may reconcile at once: the
 * unique finding key stores each finding once, and a saga fix is a compare-and-set. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "gw_store_be.h"
#include "gw_store_pg_int.h"

cm_err_t gw_pg_store_finding_add(gw_pg_store_t *s, const gw_finding_t *f, int *is_new)
{
    return gw_pg_write_stmt(
        s,
        "INSERT INTO reconcile_findings(at_ms,tenant_id,provider,kind,saga_id,object_id,action,"
        "detail) VALUES($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT(provider,kind,object_id) DO NOTHING",
        GW_PG_ARGS(gw_pg_int(f->at_ms), gw_pg_text(f->tenant_id), gw_pg_text(f->provider),
                   gw_pg_text(f->kind), gw_pg_text(f->saga_id), gw_pg_text(f->object_id),
                   gw_pg_text(f->action), gw_pg_text(f->detail)),
        is_new);
}

static cm_err_t finding_row(const PGresult *r, int row, void *arg)
{
    json_t *o = json_object();
    for (int i = 0; o && i < PQnfields(r); i++) {
        json_t *v = PQgetisnull(r, row, i) ? json_null()
                    : i < 2                ? json_integer(gw_pg_col_int(r, row, i))
                                           : json_string(PQgetvalue(r, row, i));
        json_object_set_new(o, PQfname(r, i), v);
    }
    return o && !json_array_append_new(arg, o) ? CM_OK : CM_ENOMEM;
}

cm_err_t gw_pg_store_findings_json(gw_pg_store_t *s, const char *provider, const char *action,
                                   const char *tenant, int limit, cm_buf_t *out)
{
    json_t *list = json_array();
    cm_err_t rc = list ? CM_OK : CM_ENOMEM;
    /* id and at_ms first: finding_row reads the first two columns as integers. */
    if (!rc)
        rc = gw_pg_read(s,
                        "SELECT id, at_ms, tenant_id, provider, kind, saga_id, object_id, action, "
                        "detail FROM reconcile_findings WHERE ($1::text IS NULL OR "
                        "provider=$1::text) AND ($2::text IS NULL OR action=$2::text) AND "
                        "($3::text IS NULL OR tenant_id=$3::text) ORDER BY id DESC LIMIT $4",
                        GW_PG_ARGS(gw_pg_text(provider), gw_pg_text(action), gw_pg_text(tenant),
                                   gw_pg_int(limit)),
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

static cm_err_t fix_tx(gw_pg_conn_t *c, void *arg)
{
    fix_t *a = arg;
    const gw_saga_fix_t *f = a->fix;
    cm_err_t rc = gw_pg_exec(
        c,
        "UPDATE sagas SET state=COALESCE($1::text,state), "
        "booking_uid=COALESCE($2::text,booking_uid), "
        "payment_intent=COALESCE($3::text,payment_intent), cancelled=GREATEST(cancelled,$4), "
        "updated_at_ms=$5 WHERE id=$6::text AND state=$7::text "
        "AND ($2::text IS NULL OR COALESCE(booking_uid,'')='') "
        "AND ($3::text IS NULL OR COALESCE(payment_intent,'')='') "
        "AND NOT EXISTS (SELECT 1 FROM jobs WHERE entity_id=$6::text AND state='running')",
        GW_PG_ARGS(gw_pg_text(f->state), gw_pg_text(f->booking_uid), gw_pg_text(f->payment_intent),
                   gw_pg_int(f->mark_cancelled ? 1 : 0), gw_pg_int(a->now_ms),
                   gw_pg_text(f->saga_id), gw_pg_text(f->expect)),
        a->changed);
    if (!rc && *a->changed)
        rc = gw_pg_exec(c,
                        "INSERT INTO saga_steps(saga_id,step,phase,detail,at_ms) "
                        "VALUES($1,$2,'done',$3,$4)",
                        GW_PG_ARGS(gw_pg_text(f->saga_id), gw_pg_text(f->step),
                                   gw_pg_text(f->detail), gw_pg_int(a->now_ms)),
                        NULL);
    /* The call's job may be waiting out a long back-off: the saga can go on now. */
    if (!rc && *a->changed)
        rc = gw_pg_exec(c,
                        "UPDATE jobs SET next_at_ms=$1 WHERE state='pending' AND next_at_ms>$1 "
                        "AND event_id IN (SELECT id FROM events WHERE entity_id=$2::text)",
                        GW_PG_ARGS(gw_pg_int(a->now_ms), gw_pg_text(f->saga_id)), NULL);
    return rc;
}

cm_err_t gw_pg_store_saga_fix(gw_pg_store_t *s, const gw_saga_fix_t *fix, int64_t now_ms,
                              int *changed)
{
    fix_t a = {.fix = fix, .now_ms = now_ms, .changed = changed};
    cm_err_t rc = gw_pg_write(s, fix_tx, &a);
    if (rc)
        *changed = 0;
    return rc;
}

static cm_err_t one_row(const PGresult *r, int row, void *arg)
{
    (void)r;
    (void)row;
    *(int *)arg = 1;
    return CM_OK;
}

cm_err_t gw_pg_store_event_exists(gw_pg_store_t *s, const char *event_key, int *exists)
{
    return gw_pg_read(s, "SELECT 1 FROM events WHERE event_key=$1",
                      GW_PG_ARGS(gw_pg_text(event_key)), one_row, exists, NULL);
}
