/* gw_store_pg_sagas.c - gw_store.h's sagas and entities on PostgreSQL: the saga row and
 * its step log, and the entity rows with their state, rank, reference and flags; the
 * SQLite store's statements (gw_store_sqlite_sagas.c) in PostgreSQL's dialect.
 *
 * Writes go through the wr connection (gw_pg_write), reads through rd (gw_pg_read); every
 * commit is synchronous, so the saga's save needs nothing of its own to be durable.
 */
#include <stdio.h>
#include <string.h>

#include "gw_store_pg_int.h"

/* ---- entities --------------------------------------------------------------------- */

cm_err_t gw_pg_entity_set(gw_pg_conn_t *c, const char *kind, const char *id, const char *tenant_id,
                          const char *state, const char *ref, const char *error, int64_t now_ms)
{
    return gw_pg_exec(c,
                      "INSERT INTO entities(kind,id,tenant_id,state,ref,error,updated_at_ms) "
                      "VALUES($1,$2,$3,$4,$5,$6,$7) ON CONFLICT(kind,id) DO UPDATE SET "
                      "tenant_id=COALESCE(excluded.tenant_id,entities.tenant_id), "
                      "state=excluded.state, ref=COALESCE(excluded.ref,entities.ref), "
                      "error=excluded.error, updated_at_ms=excluded.updated_at_ms",
                      GW_PG_ARGS(gw_pg_text(kind), gw_pg_text(id), gw_pg_text(tenant_id),
                                 gw_pg_text(state), gw_pg_text(ref), gw_pg_text(error),
                                 gw_pg_int(now_ms)),
                      NULL);
}

typedef struct {
    const char *kind, *id, *tenant_id, *state, *ref, *error;
    int64_t now_ms;
} entity_set_t;

static cm_err_t entity_set_tx(gw_pg_conn_t *c, void *arg)
{
    entity_set_t *e = arg;
    return gw_pg_entity_set(c, e->kind, e->id, e->tenant_id, e->state, e->ref, e->error, e->now_ms);
}

cm_err_t gw_pg_store_entity_set(gw_pg_store_t *s, const char *kind, const char *id,
                                const char *tenant_id, const char *state, const char *ref,
                                const char *error, int64_t now_ms)
{
    entity_set_t e = {.kind = kind,
                      .id = id,
                      .tenant_id = tenant_id,
                      .state = state,
                      .ref = ref,
                      .error = error,
                      .now_ms = now_ms};
    return gw_pg_write(s, entity_set_tx, &e);
}

cm_err_t gw_pg_store_entity_merge(gw_pg_store_t *s, const char *kind, const char *id,
                                  const char *tenant_id, const char *state, int rank,
                                  const char *ref, int64_t flags, int64_t now_ms)
{
    if (!state)
        return gw_pg_write_stmt(s,
                                "INSERT INTO entities(kind,id,tenant_id,state,rank,ref,flags,"
                                "updated_at_ms) VALUES($1,$2,$3,'received',0,$4,$5,$6) "
                                "ON CONFLICT(kind,id) DO UPDATE SET "
                                "tenant_id=COALESCE(entities.tenant_id,excluded.tenant_id), "
                                "ref=COALESCE(entities.ref,excluded.ref), "
                                "flags=entities.flags|excluded.flags, "
                                "updated_at_ms=excluded.updated_at_ms",
                                GW_PG_ARGS(gw_pg_text(kind), gw_pg_text(id), gw_pg_text(tenant_id),
                                           gw_pg_text(ref), gw_pg_int(flags), gw_pg_int(now_ms)),
                                NULL);
    /* The SQLite store's join-semilattice. States compare byte by byte (COLLATE "C"), as
     * SQLite's BINARY does, whatever the database's collation: the order must be the same
     * on every instance and backend for the merge to converge alike. */
    return gw_pg_write_stmt(
        s,
        "INSERT INTO entities(kind,id,tenant_id,state,rank,ref,flags,updated_at_ms) "
        "VALUES($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT(kind,id) DO UPDATE SET "
        "tenant_id=COALESCE(entities.tenant_id,excluded.tenant_id), "
        "state=CASE WHEN excluded.rank>entities.rank OR (excluded.rank="
        "entities.rank AND excluded.state COLLATE \"C\">entities.state COLLATE \"C\") "
        "THEN excluded.state ELSE entities.state END, "
        "rank=GREATEST(entities.rank,excluded.rank), "
        "ref=COALESCE(entities.ref,excluded.ref), "
        "flags=entities.flags|excluded.flags, "
        "updated_at_ms=excluded.updated_at_ms",
        GW_PG_ARGS(gw_pg_text(kind), gw_pg_text(id), gw_pg_text(tenant_id), gw_pg_text(state),
                   gw_pg_int(rank), gw_pg_text(ref), gw_pg_int(flags), gw_pg_int(now_ms)),
        NULL);
}

typedef struct {
    char *state;
    size_t cap;
    int64_t *flags;
} entity_state_t;

static cm_err_t entity_state_row(const PGresult *r, int row, void *arg)
{
    entity_state_t *e = arg;
    gw_pg_col_text(e->state, e->cap, r, row, 0);
    if (e->flags)
        *e->flags = gw_pg_col_int(r, row, 1);
    return CM_OK;
}

cm_err_t gw_pg_store_entity_state(gw_pg_store_t *s, const char *kind, const char *id, char *state,
                                  size_t cap, int64_t *flags)
{
    entity_state_t e = {.state = state, .cap = cap, .flags = flags};
    int rows = 0;
    cm_err_t rc =
        gw_pg_read(s, "SELECT state, flags FROM entities WHERE kind=$1 AND id=$2",
                   GW_PG_ARGS(gw_pg_text(kind), gw_pg_text(id)), entity_state_row, &e, &rows);
    return rc ? rc : rows ? CM_OK : CM_ENOTFOUND;
}

/* ---- sagas ------------------------------------------------------------------------ */

static cm_err_t saga_row(const PGresult *r, int row, void *arg)
{
    gw_saga_t *out = arg;
    gw_pg_col_text(out->id, sizeof out->id, r, row, 0);
    gw_pg_col_text(out->tenant_id, sizeof out->tenant_id, r, row, 1);
    gw_pg_col_text(out->state, sizeof out->state, r, row, 2);
    gw_pg_col_text(out->reason, sizeof out->reason, r, row, 3);
    gw_pg_col_text(out->final, sizeof out->final, r, row, 4);
    gw_pg_col_text(out->booking_uid, sizeof out->booking_uid, r, row, 5);
    gw_pg_col_text(out->payment_intent, sizeof out->payment_intent, r, row, 6);
    out->wanted_ms = gw_pg_col_int(r, row, 7);
    out->start_ms = gw_pg_col_int(r, row, 8);
    out->tries = (int)gw_pg_col_int(r, row, 9);
    out->deadline_ms = gw_pg_col_int(r, row, 10);
    out->created_at_ms = gw_pg_col_int(r, row, 11);
    out->refunded = (int)gw_pg_col_int(r, row, 12);
    out->cancelled = (int)gw_pg_col_int(r, row, 13);
    return CM_OK;
}

static cm_err_t saga_select(gw_pg_store_t *s, const char *where, const char *key, gw_saga_t *out)
{
    char sql[512];
    int rows = 0;
    snprintf(sql, sizeof sql,
             "SELECT id, tenant_id, state, reason, final, booking_uid, payment_intent, "
             "wanted_ms, start_ms, tries, deadline_ms, created_at_ms, refunded, cancelled "
             "FROM sagas WHERE %s=$1 LIMIT 1",
             where);
    memset(out, 0, sizeof *out);
    cm_err_t rc = gw_pg_read(s, sql, GW_PG_ARGS(gw_pg_text(key)), saga_row, out, &rows);
    return rc ? rc : rows ? CM_OK : CM_ENOTFOUND;
}

cm_err_t gw_pg_store_saga_get(gw_pg_store_t *s, const char *id, gw_saga_t *out)
{
    return saga_select(s, "id", id, out);
}

cm_err_t gw_pg_store_saga_by_booking(gw_pg_store_t *s, const char *uid, gw_saga_t *out)
{
    return saga_select(s, "booking_uid", uid, out);
}

static const char *nz(const char *v)
{
    return v && *v ? v : NULL;
}

typedef struct {
    const gw_saga_t *sg;
    const char *step, *phase, *detail;
    int64_t now_ms;
} saga_put_t;

static cm_err_t saga_put_tx(gw_pg_conn_t *c, void *arg)
{
    saga_put_t *a = arg;
    const gw_saga_t *sg = a->sg;
    cm_err_t rc = gw_pg_exec(
        c,
        "INSERT INTO sagas(id,tenant_id,state,reason,final,booking_uid,"
        "payment_intent,wanted_ms,start_ms,tries,deadline_ms,refunded,"
        "cancelled,created_at_ms,updated_at_ms) "
        "VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15) ON CONFLICT(id) DO UPDATE "
        "SET state=excluded.state, reason=excluded.reason, "
        "final=excluded.final, booking_uid=excluded.booking_uid, "
        "payment_intent=excluded.payment_intent, "
        "start_ms=excluded.start_ms, tries=excluded.tries, "
        "refunded=excluded.refunded, cancelled=excluded.cancelled, "
        "updated_at_ms=excluded.updated_at_ms",
        GW_PG_ARGS(gw_pg_text(sg->id), gw_pg_text(nz(sg->tenant_id)), gw_pg_text(sg->state),
                   gw_pg_text(nz(sg->reason)), gw_pg_text(nz(sg->final)),
                   gw_pg_text(nz(sg->booking_uid)), gw_pg_text(nz(sg->payment_intent)),
                   gw_pg_int(sg->wanted_ms), gw_pg_int(sg->start_ms), gw_pg_int(sg->tries),
                   gw_pg_int(sg->deadline_ms), gw_pg_int(sg->refunded), gw_pg_int(sg->cancelled),
                   gw_pg_int(sg->created_at_ms ? sg->created_at_ms : a->now_ms),
                   gw_pg_int(a->now_ms)),
        NULL);
    if (!rc && a->step)
        rc = gw_pg_exec(c,
                        "INSERT INTO saga_steps(saga_id,step,phase,detail,at_ms) "
                        "VALUES($1,$2,$3,$4,$5)",
                        GW_PG_ARGS(gw_pg_text(sg->id), gw_pg_text(a->step), gw_pg_text(a->phase),
                                   gw_pg_text(a->detail), gw_pg_int(a->now_ms)),
                        NULL);
    if (!rc && sg->call_state[0])
        rc = gw_pg_entity_set(c, "call", sg->id, nz(sg->tenant_id), sg->call_state,
                              nz(sg->booking_uid), nz(sg->reason), a->now_ms);
    return rc;
}

cm_err_t gw_pg_store_saga_put(gw_pg_store_t *s, const gw_saga_t *sg, const char *step,
                              const char *phase, const char *detail, int64_t now_ms)
{
    saga_put_t a = {.sg = sg, .step = step, .phase = phase, .detail = detail, .now_ms = now_ms};
    return gw_pg_write(s, saga_put_tx, &a);
}

static cm_err_t intent_row(const PGresult *r, int row, void *arg)
{
    *(int *)arg = !strcmp(PQgetvalue(r, row, 0), "intent");
    return CM_OK;
}

int gw_pg_store_saga_intent_open(gw_pg_store_t *s, const char *id, const char *step)
{
    int open = 0;
    if (gw_pg_read(s,
                   "SELECT phase FROM saga_steps WHERE saga_id=$1 AND step=$2 "
                   "ORDER BY id DESC LIMIT 1",
                   GW_PG_ARGS(gw_pg_text(id), gw_pg_text(step)), intent_row, &open, NULL) != CM_OK)
        return -1;
    return open;
}
