/* gw_store_pg_views.c - gw_store.h's read-only views on PostgreSQL: the admin API's JSON
 * and the queue counts, the same JSON as the SQLite store's (gw_store_sqlite_views.c):
 * rows as objects keyed by column name, numbers as numbers, text as strings, NULL as null.
 *
 * SQLite says per value whether it is an integer; here the column's type says it
 * (PQftype): every integer column of the schema is BIGINT, counts are bigint, and a sum
 * is cast to bigint. Every view is one query on the read connection; on error nothing is
 * appended.
 */
#include <string.h>

#include "cm_buf.h"
#include "gw_store_pg_int.h"

/* Type OIDs (server/catalog/pg_type_d.h). */
enum {
    OID_BOOL = 16,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_OID = 26,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_NUMERIC = 1700
};

static cm_err_t col_json(cm_buf_t *out, const PGresult *r, int row, int i)
{
    if (PQgetisnull(r, row, i))
        return cm_buf_addstr(out, "null");
    const char *v = PQgetvalue(r, row, i);
    switch (PQftype(r, i)) {
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
    case OID_NUMERIC:
    case OID_FLOAT4:
    case OID_FLOAT8:
        /* NaN and Infinity are no JSON numbers. */
        if (strchr(v, 'N') || strchr(v, 'n'))
            return cm_buf_add_json_str(out, v);
        return cm_buf_addstr(out, v);
    case OID_BOOL:
        return cm_buf_addstr(out, v[0] == 't' ? "true" : "false");
    default:
        return cm_buf_add_json_str(out, v);
    }
}

typedef struct {
    cm_buf_t *out;
    int rows;
} json_rows_t;

static cm_err_t json_row(const PGresult *r, int row, void *arg)
{
    json_rows_t *j = arg;
    cm_err_t rc = cm_buf_addstr(j->out, j->rows++ ? ",{" : "{");
    for (int i = 0; !rc && i < PQnfields(r); i++) {
        rc = cm_buf_printf(j->out, "%s\"%s\":", i ? "," : "", PQfname(r, i));
        if (!rc)
            rc = col_json(j->out, r, row, i);
    }
    return rc ? rc : cm_buf_addstr(j->out, "}");
}

static void buf_truncate(cm_buf_t *out, size_t len)
{
    out->len = len;
    if (out->data)
        out->data[len] = '\0';
}

/* As the SQLite store's: with a wrapper, {"<name>":[...],"count":N}; without, the single
 * row's object (CM_ENOTFOUND if none). On error out is as it was. */
static cm_err_t json_rows(gw_pg_store_t *s, cm_buf_t *out, const char *wrapper, const char *sql,
                          gw_pg_args_t args)
{
    json_rows_t j = {.out = out};
    size_t mark = out->len;
    cm_err_t rc = wrapper ? cm_buf_printf(out, "{\"%s\":[", wrapper) : CM_OK;
    if (!rc)
        rc = gw_pg_read(s, sql, args, json_row, &j, NULL);
    if (!rc && wrapper)
        rc = cm_buf_printf(out, "],\"count\":%d}", j.rows);
    if (!rc && !wrapper && j.rows == 0)
        rc = CM_ENOTFOUND;
    if (rc)
        buf_truncate(out, mark);
    return rc;
}

static cm_err_t queue_row(const PGresult *r, int row, void *arg)
{
    gw_queue_stats_t *q = arg;
    const char *state = PQgetvalue(r, row, 0);
    int64_t n = gw_pg_col_int(r, row, 1);
    if (!strcmp(state, "pending")) {
        q->pending = n;
        q->oldest_pending_at_ms = gw_pg_col_int(r, row, 2);
    } else if (!strcmp(state, "running"))
        q->running = n;
    else if (!strcmp(state, "done"))
        q->done = n;
    else if (!strcmp(state, "dead"))
        q->dead = n;
    else if (!strcmp(state, "discarded"))
        q->discarded = n;
    return CM_OK;
}

/* Also what /health/ready asks: it fails while the server is unreachable. */
cm_err_t gw_pg_store_queue_stats(gw_pg_store_t *s, gw_queue_stats_t *q)
{
    memset(q, 0, sizeof *q);
    return gw_pg_read(s, "SELECT state, COUNT(*), MIN(next_at_ms) FROM jobs GROUP BY state",
                      GW_PG_NO_ARGS, queue_row, q, NULL);
}

/* The server decides what it can write; a reachable one is taken as writable (a full
 * disk there refuses the webhooks with 503, as on SQLite, and its own monitoring tells). */
int gw_pg_store_writable(gw_pg_store_t *s)
{
    gw_queue_stats_t q;
    return gw_pg_store_queue_stats(s, &q) == CM_OK;
}

cm_err_t gw_pg_store_entity_json(gw_pg_store_t *s, const char *kind, const char *id, cm_buf_t *out)
{
    return json_rows(s, out, NULL,
                     "SELECT e.kind, e.id, e.tenant_id, e.state, e.rank, e.ref, e.error, e.flags, "
                     "e.updated_at_ms, (SELECT COALESCE(SUM(j.attempts),0)::bigint FROM events v "
                     "JOIN jobs j ON j.event_id=v.id WHERE v.entity_id=e.id) AS attempts "
                     "FROM entities e WHERE e.kind=$1 AND e.id=$2",
                     GW_PG_ARGS(gw_pg_text(kind), gw_pg_text(id)));
}

/* As on SQLite, the tenant filter has no index of its own (gw_store_sqlite_views.c). */
cm_err_t gw_pg_store_events_json(gw_pg_store_t *s, const char *provider, const char *entity_id,
                                 const char *tenant, int limit, cm_buf_t *out)
{
    return json_rows(s, out, "events",
                     "SELECT id, provider, event_key, alt_key, event_type, entity_id, tenant_id, "
                     "received_at_ms, duplicates FROM events WHERE ($1::text IS NULL OR "
                     "provider=$1::text) AND ($2::text IS NULL OR entity_id=$2::text) AND "
                     "($3::text IS NULL OR tenant_id=$3::text) ORDER BY id LIMIT $4",
                     GW_PG_ARGS(gw_pg_text(provider), gw_pg_text(entity_id), gw_pg_text(tenant),
                                gw_pg_int(limit)));
}

cm_err_t gw_pg_store_jobs_json(gw_pg_store_t *s, const char *state, const char *tenant, int limit,
                               cm_buf_t *out)
{
    return json_rows(s, out, "jobs",
                     "SELECT j.id, j.event_id, j.kind, j.entity_id, j.tenant_id, j.state, "
                     "j.attempts, j.next_at_ms, j.last_error, j.created_at_ms, j.updated_at_ms, "
                     "e.event_key FROM jobs j JOIN events e ON e.id=j.event_id WHERE "
                     "($1::text IS NULL OR j.state=$1::text) AND ($2::text IS NULL OR "
                     "j.tenant_id=$2::text) ORDER BY j.id LIMIT $3",
                     GW_PG_ARGS(gw_pg_text(state), gw_pg_text(tenant), gw_pg_int(limit)));
}

/* The body as text: convert_from is SQLite's CAST(body AS TEXT), except that a body that
 * is not UTF-8 fails the view (SQLite passes the bytes on as they are). */
cm_err_t gw_pg_store_job_json(gw_pg_store_t *s, int64_t job_id, cm_buf_t *out)
{
    return json_rows(s, out, NULL,
                     "SELECT j.id, j.event_id, j.kind, j.entity_id, j.tenant_id, j.state, "
                     "j.attempts, j.next_at_ms, j.last_error, j.created_at_ms, j.updated_at_ms, "
                     "e.provider, e.event_key, e.event_type, e.received_at_ms, e.headers, "
                     "convert_from(e.body,'UTF8') AS body FROM jobs j JOIN events e ON "
                     "e.id=j.event_id WHERE j.id=$1",
                     GW_PG_ARGS(gw_pg_int(job_id)));
}

/* sagas has the same columns in the same order as SQLite's, so SELECT * is the same JSON. */
cm_err_t gw_pg_store_saga_json(gw_pg_store_t *s, const char *id, cm_buf_t *out)
{
    size_t mark = out->len;
    cm_err_t rc = cm_buf_addstr(out, "{\"saga\":");
    if (!rc)
        rc = json_rows(s, out, NULL, "SELECT * FROM sagas WHERE id=$1", GW_PG_ARGS(gw_pg_text(id)));
    if (!rc)
        rc = cm_buf_addstr(out, ",\"history\":");
    if (!rc)
        rc = json_rows(s, out, "steps",
                       "SELECT step, phase, detail, at_ms FROM saga_steps WHERE saga_id=$1 "
                       "ORDER BY id",
                       GW_PG_ARGS(gw_pg_text(id)));
    if (!rc)
        rc = cm_buf_addstr(out, "}");
    if (rc)
        buf_truncate(out, mark);
    return rc;
}

cm_err_t gw_pg_store_sagas_json(gw_pg_store_t *s, const char *state, const char *tenant, int limit,
                                cm_buf_t *out)
{
    return json_rows(s, out, "sagas",
                     "SELECT * FROM sagas WHERE ($1::text IS NULL OR state=$1::text) AND "
                     "($2::text IS NULL OR tenant_id=$2::text) ORDER BY created_at_ms LIMIT $3",
                     GW_PG_ARGS(gw_pg_text(state), gw_pg_text(tenant), gw_pg_int(limit)));
}
