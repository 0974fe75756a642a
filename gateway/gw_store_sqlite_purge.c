/* gw_store_sqlite_purge.c - retention and erasure on the SQLite store (contracts:
 * gw_store_purge and gw_store_erase in gw_store.h; retention's statements:
 * gw_store_purge_sql.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- erasure ------------------------------------------------------------------------
 * The bodies are searched on the read connection (a WAL snapshot), which takes no lock the
 * intake needs: the scan is the erasure's cost (about 2 s for 16k events on a loaded
 * machine), and inside the write transaction it held the writer, and with it every
 * webhook's commit, that long. The events found are then erased by id, ERASE_CHUNK to a
 * transaction. An event stored after the snapshot is not erased: the answer covers what
 * was stored when the erasure began. */

/* ?1 the phone (exact), ?2 the e-mail (any case); either may be NULL. */
#define ERASE_MATCH(col)                                                                           \
    "((?1 IS NOT NULL AND instr(" col ", ?1) > 0) OR (?2 IS NOT NULL AND instr(lower(" col         \
    "), lower(?2)) > 0))"
/* ?3 the tenant (NULL: every tenant), on a table's own tenant_id column. */
#define ERASE_TENANT(col) "(?3 IS NULL OR " col " = ?3)"
#define ERASE_BUSY                                                                                 \
    "EXISTS (SELECT 1 FROM jobs j WHERE j.event_id = ?1 AND j.state IN ('pending', 'running'))"

enum { ERASE_CHUNK = 500 };

typedef struct {
    int64_t *v;
    size_t n, cap;
} ids_t;

static cm_err_t id_row(sqlite3_stmt *st, void *arg)
{
    ids_t *ids = arg;
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? 2 * ids->cap : 256;
        int64_t *v = realloc(ids->v, cap * sizeof *v);
        if (!v)
            return CM_ENOMEM;
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = sqlite3_column_int64(st, 0);
    return CM_OK;
}

typedef struct {
    const char *phone, *email, *tenant;
    int64_t now_ms;
    const int64_t *ids; /* this transaction's share */
    size_t n;
    int scrub; /* the last transaction also redacts the errors */
    gw_erase_t *out;
} erase_t;

static cm_err_t count_row(sqlite3_stmt *st, void *arg)
{
    *(int *)arg = sqlite3_column_int(st, 0);
    return CM_OK;
}

static cm_err_t erase_tx(sqlite3 *db, void *arg)
{
    erase_t *e = arg;
    gw_erase_t *out = e->out;
    char stub[64];
    int len = snprintf(stub, sizeof stub, "{\"erased\":true,\"erased_at_ms\":%lld}",
                       (long long)e->now_ms);
    cm_err_t rc = CM_OK;
    for (size_t i = 0; !rc && i < e->n; i++) {
        int busy = 0, changed = 0;
        rc = gw_sq_query(db, "SELECT " ERASE_BUSY, GW_SQ_ARGS(gw_sq_int(e->ids[i])), count_row,
                         &busy, NULL);
        if (!rc && busy) {
            out->in_progress++;
            continue;
        }
        if (!rc)
            rc = gw_sq_exec(db,
                            "UPDATE jobs SET state = 'discarded', updated_at_ms = ?2 WHERE "
                            "event_id = ?1 AND state = 'dead'",
                            GW_SQ_ARGS(gw_sq_int(e->ids[i]), gw_sq_int(e->now_ms)), &changed);
        out->dead_letters += changed;
        if (!rc)
            rc = gw_sq_exec(db, "UPDATE events SET body = ?2, headers = NULL WHERE id = ?1",
                            GW_SQ_ARGS(gw_sq_int(e->ids[i]), gw_sq_blob(stub, (size_t)len)),
                            &changed);
        if (!rc && changed) {
            if (out->events < GW_ERASE_IDS_MAX)
                out->ids[out->events] = e->ids[i];
            out->events++;
        }
    }
    static const char *const scrub[] = {
        "UPDATE jobs SET last_error = '[erased]' WHERE last_error IS NOT NULL AND " ERASE_MATCH(
            "last_error") " AND " ERASE_TENANT("tenant_id"),
        "UPDATE sagas SET reason = '[erased]' WHERE reason IS NOT NULL AND " ERASE_MATCH(
            "reason") " AND " ERASE_TENANT("tenant_id"),
        "UPDATE saga_steps SET detail = '[erased]' WHERE detail IS NOT NULL AND " ERASE_MATCH(
            "detail") " AND (?3 IS NULL OR saga_id IN (SELECT id FROM sagas WHERE tenant_id = ?3))",
        "UPDATE entities SET error = '[erased]' WHERE error IS NOT NULL AND " ERASE_MATCH(
            "error") " AND " ERASE_TENANT("tenant_id")};
    for (size_t i = 0; !rc && e->scrub && i < sizeof scrub / sizeof scrub[0]; i++) {
        int changed = 0;
        rc = gw_sq_exec(db, scrub[i],
                        GW_SQ_ARGS(e->phone ? gw_sq_text(e->phone) : gw_sq_null(),
                                   e->email ? gw_sq_text(e->email) : gw_sq_null(),
                                   e->tenant ? gw_sq_text(e->tenant) : gw_sq_null()),
                        &changed);
        out->errors += changed;
    }
    return rc;
}

cm_err_t gw_sq_store_erase(gw_sq_store_t *s, const char *tenant, const char *phone,
                           const char *email, int64_t now_ms, gw_erase_t *out)
{
    ids_t ids = {0};
    cm_err_t rc = gw_sq_read(s,
                             "SELECT e.id FROM events e WHERE " ERASE_MATCH(
                                 "CAST(e.body AS TEXT)") " AND " ERASE_TENANT("e.tenant_id"),
                             GW_SQ_ARGS(phone ? gw_sq_text(phone) : gw_sq_null(),
                                        email ? gw_sq_text(email) : gw_sq_null(),
                                        tenant ? gw_sq_text(tenant) : gw_sq_null()),
                             id_row, &ids, NULL);
    /* At least one transaction, the last of which redacts the errors. */
    for (size_t at = 0; !rc && (at < ids.n || at == 0);) {
        size_t n = ids.n - at < ERASE_CHUNK ? ids.n - at : ERASE_CHUNK;
        erase_t e = {.phone = phone,
                     .email = email,
                     .tenant = tenant,
                     .now_ms = now_ms,
                     .ids = ids.v ? ids.v + at : NULL,
                     .n = n,
                     .scrub = at + n == ids.n,
                     .out = out};
        rc = gw_sq_write(s, GW_SQ_DURABLE, erase_tx, &e);
        at += n;
        if (at == 0)
            break;
    }
    free(ids.v);
    return rc;
}
