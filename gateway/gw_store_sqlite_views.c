/* gw_store_sqlite_views.c - gw_store.h's read-only views on SQLite: the admin API's JSON
 * (events, jobs, a job with its body, entities, sagas with their step log) and the queue
 * counts.
 *
 * Every view is one query on the read connection (see gw_sq_read), so none waits for the
 * writer; a view with several queries (a saga and its steps) may see two snapshots. The
 * JSON is the rows as objects keyed by column name, integers as numbers, text as strings,
 * NULL as null; on error nothing is appended.
 */
#include <sqlite3.h>
#include <string.h>

#include "cm_buf.h"
#include "gw_store_sqlite_int.h"

/* Appends the current row's column i as a JSON value. */
static cm_err_t col_json(cm_buf_t *out, sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_NULL:
        return cm_buf_addstr(out, "null");
    case SQLITE_INTEGER:
        return cm_buf_printf(out, "%lld", (long long)sqlite3_column_int64(st, i));
    default:
        return cm_buf_add_json_str(out, (const char *)sqlite3_column_text(st, i));
    }
}

typedef struct {
    cm_buf_t *out;
    int rows;
} json_rows_t;

/* Appends the row as one JSON object, its column names as keys. */
static cm_err_t json_row(sqlite3_stmt *st, void *arg)
{
    json_rows_t *j = arg;
    cm_err_t rc = cm_buf_addstr(j->out, j->rows++ ? ",{" : "{");
    for (int i = 0; !rc && i < sqlite3_column_count(st); i++) {
        rc = cm_buf_printf(j->out, "%s\"%s\":", i ? "," : "", sqlite3_column_name(st, i));
        if (!rc)
            rc = col_json(j->out, st, i);
    }
    return rc ? rc : cm_buf_addstr(j->out, "}");
}

/* Cuts out back to len bytes: what a failed view appended is taken back. */
static void buf_truncate(cm_buf_t *out, size_t len)
{
    out->len = len;
    if (out->data)
        out->data[len] = '\0';
}

/* Runs a query and appends its rows as JSON objects. With a wrapper name, the output is
 * {"<name>":[...],"count":N}; without, the single row's object (CM_ENOTFOUND if none).
 * On error out is as it was. */
static cm_err_t json_rows(gw_sq_store_t *s, cm_buf_t *out, const char *wrapper, const char *sql,
                          gw_sq_args_t args)
{
    json_rows_t j = {.out = out};
    size_t mark = out->len;
    cm_err_t rc = wrapper ? cm_buf_printf(out, "{\"%s\":[", wrapper) : CM_OK;
    if (!rc)
        rc = gw_sq_read(s, sql, args, json_row, &j, NULL);
    if (!rc && wrapper)
        rc = cm_buf_printf(out, "],\"count\":%d}", j.rows);
    if (!rc && !wrapper && j.rows == 0)
        rc = CM_ENOTFOUND;
    if (rc)
        buf_truncate(out, mark);
    return rc;
}

static cm_err_t queue_row(sqlite3_stmt *st, void *arg)
{
    gw_queue_stats_t *q = arg;
    const char *state = (const char *)sqlite3_column_text(st, 0);
    int64_t n = sqlite3_column_int64(st, 1);
    if (!strcmp(state, "pending")) {
        q->pending = n;
        q->oldest_pending_at_ms = sqlite3_column_int64(st, 2);
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

cm_err_t gw_sq_store_queue_stats(gw_sq_store_t *s, gw_queue_stats_t *q)
{
    memset(q, 0, sizeof *q);
    return gw_sq_read(s, "SELECT state, COUNT(*), MIN(next_at_ms) FROM jobs GROUP BY state",
                      GW_SQ_NO_ARGS, queue_row, q, NULL);
}

cm_err_t gw_sq_store_entity_json(gw_sq_store_t *s, const char *kind, const char *id, cm_buf_t *out)
{
    return json_rows(s, out, NULL,
                     "SELECT e.kind, e.id, e.tenant_id, e.state, e.rank, e.ref, e.error, e.flags, "
                     "e.updated_at_ms, (SELECT COALESCE(SUM(j.attempts),0) FROM events v "
                     "JOIN jobs j ON j.event_id=v.id WHERE v.entity_id=e.id) AS attempts "
                     "FROM entities e WHERE e.kind=?1 AND e.id=?2",
                     GW_SQ_ARGS(gw_sq_text(kind), gw_sq_text(id)));
}

/* The tenant filter has no index of its own: a scoped token's list walks the rows in id
 * order past the other tenants' (an index on (tenant_id, id) would cost every webhook
 * stored a write, for a rare admin read on the read connection). */
cm_err_t gw_sq_store_events_json(gw_sq_store_t *s, const char *provider, const char *entity_id,
                                 const char *tenant, int limit, cm_buf_t *out)
{
    return json_rows(s, out, "events",
                     "SELECT id, provider, event_key, alt_key, event_type, entity_id, tenant_id, "
                     "received_at_ms, duplicates FROM events WHERE (?1 IS NULL OR provider=?1) "
                     "AND (?2 IS NULL OR entity_id=?2) AND (?3 IS NULL OR tenant_id=?3) "
                     "ORDER BY id LIMIT ?4",
                     GW_SQ_ARGS(gw_sq_text(provider), gw_sq_text(entity_id), gw_sq_text(tenant),
                                gw_sq_int(limit)));
}

cm_err_t gw_sq_store_jobs_json(gw_sq_store_t *s, const char *state, const char *tenant, int limit,
                               cm_buf_t *out)
{
    return json_rows(s, out, "jobs",
                     "SELECT j.id, j.event_id, j.kind, j.entity_id, j.tenant_id, j.state, "
                     "j.attempts, j.next_at_ms, j.last_error, j.created_at_ms, j.updated_at_ms, "
                     "e.event_key FROM jobs j JOIN events e ON e.id=j.event_id WHERE "
                     "(?1 IS NULL OR j.state=?1) AND (?2 IS NULL OR j.tenant_id=?2) "
                     "ORDER BY j.id LIMIT ?3",
                     GW_SQ_ARGS(gw_sq_text(state), gw_sq_text(tenant), gw_sq_int(limit)));
}

cm_err_t gw_sq_store_job_json(gw_sq_store_t *s, int64_t job_id, cm_buf_t *out)
{
    return json_rows(s, out, NULL,
                     "SELECT j.id, j.event_id, j.kind, j.entity_id, j.tenant_id, j.state, "
                     "j.attempts, j.next_at_ms, j.last_error, j.created_at_ms, j.updated_at_ms, "
                     "e.provider, e.event_key, e.event_type, e.received_at_ms, e.headers, "
                     "CAST(e.body AS TEXT) AS body FROM jobs j JOIN events e ON e.id=j.event_id "
                     "WHERE j.id=?1",
                     GW_SQ_ARGS(gw_sq_int(job_id)));
}

cm_err_t gw_sq_store_saga_json(gw_sq_store_t *s, const char *id, cm_buf_t *out)
{
    size_t mark = out->len;
    cm_err_t rc = cm_buf_addstr(out, "{\"saga\":");
    if (!rc)
        rc = json_rows(s, out, NULL, "SELECT * FROM sagas WHERE id=?1", GW_SQ_ARGS(gw_sq_text(id)));
    if (!rc)
        rc = cm_buf_addstr(out, ",\"history\":");
    if (!rc)
        rc = json_rows(s, out, "steps",
                       "SELECT step, phase, detail, at_ms FROM saga_steps WHERE saga_id=?1 "
                       "ORDER BY id",
                       GW_SQ_ARGS(gw_sq_text(id)));
    if (!rc)
        rc = cm_buf_addstr(out, "}");
    if (rc)
        buf_truncate(out, mark);
    return rc;
}

cm_err_t gw_sq_store_sagas_json(gw_sq_store_t *s, const char *state, const char *tenant, int limit,
                                cm_buf_t *out)
{
    return json_rows(s, out, "sagas",
                     "SELECT * FROM sagas WHERE (?1 IS NULL OR state=?1) AND "
                     "(?2 IS NULL OR tenant_id=?2) ORDER BY created_at_ms LIMIT ?3",
                     GW_SQ_ARGS(gw_sq_text(state), gw_sq_text(tenant), gw_sq_int(limit)));
}
