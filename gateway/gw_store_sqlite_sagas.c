/* gw_store_sqlite_sagas.c - gw_store.h's sagas and entities on SQLite: the saga row
 * (one booking saga per call) and its step log, and the entity rows (call, booking,
 * payment) with their state, rank, reference and flags.
 *
 * A saga's save is durable (synchronous as configured, see gw_sq_writer_sync): it is what
 * a restart resumes from. Entity writes are bookkeeping. Reads go through the read
 * connection and see what was committed when they began.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "gw_store_sqlite_int.h"

/* ---- entities --------------------------------------------------------------------- */

cm_err_t gw_sq_entity_set(sqlite3 *db, const char *kind, const char *id, const char *tenant_id,
                          const char *state, const char *ref, const char *error, int64_t now_ms)
{
    return gw_sq_exec(db,
                      "INSERT INTO entities(kind,id,tenant_id,state,ref,error,updated_at_ms) "
                      "VALUES(?,?,?,?,?,?,?) ON CONFLICT(kind,id) DO UPDATE SET "
                      "tenant_id=COALESCE(excluded.tenant_id,entities.tenant_id), "
                      "state=excluded.state, ref=COALESCE(excluded.ref,entities.ref), "
                      "error=excluded.error, updated_at_ms=excluded.updated_at_ms",
                      GW_SQ_ARGS(gw_sq_text(kind), gw_sq_text(id), gw_sq_text(tenant_id),
                                 gw_sq_text(state), gw_sq_text(ref), gw_sq_text(error),
                                 gw_sq_int(now_ms)),
                      NULL);
}

typedef struct {
    const char *kind, *id, *tenant_id, *state, *ref, *error;
    int64_t now_ms;
} entity_set_t;

static cm_err_t entity_set_tx(sqlite3 *db, void *arg)
{
    entity_set_t *e = arg;
    return gw_sq_entity_set(db, e->kind, e->id, e->tenant_id, e->state, e->ref, e->error,
                            e->now_ms);
}

cm_err_t gw_sq_store_entity_set(gw_sq_store_t *s, const char *kind, const char *id,
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
    return gw_sq_write(s, GW_SQ_BOOKKEEPING, entity_set_tx, &e);
}

cm_err_t gw_sq_store_entity_merge(gw_sq_store_t *s, const char *kind, const char *id,
                                  const char *tenant_id, const char *state, int rank,
                                  const char *ref, int64_t flags, int64_t now_ms)
{
    if (!state)
        return gw_sq_write_stmt(s,
                                "INSERT INTO entities(kind,id,tenant_id,state,rank,ref,flags,"
                                "updated_at_ms) VALUES(?,?,?,'received',0,?,?,?) "
                                "ON CONFLICT(kind,id) DO UPDATE SET "
                                "tenant_id=COALESCE(entities.tenant_id,excluded.tenant_id), "
                                "ref=COALESCE(entities.ref,excluded.ref), "
                                "flags=entities.flags|excluded.flags, "
                                "updated_at_ms=excluded.updated_at_ms",
                                GW_SQ_ARGS(gw_sq_text(kind), gw_sq_text(id), gw_sq_text(tenant_id),
                                           gw_sq_text(ref), gw_sq_int(flags), gw_sq_int(now_ms)),
                                NULL);
    /* A join-semilattice: the state with the higher (rank, state) pair wins and flags are
     * OR-ed; both are order-independent and idempotent, which is what makes any delivery
     * order and any number of copies converge to the same row. */
    return gw_sq_write_stmt(
        s,
        "INSERT INTO entities(kind,id,tenant_id,state,rank,ref,flags,updated_at_ms) "
        "VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(kind,id) DO UPDATE SET "
        "tenant_id=COALESCE(entities.tenant_id,excluded.tenant_id), "
        "state=CASE WHEN excluded.rank>entities.rank OR (excluded.rank="
        "entities.rank AND excluded.state>entities.state) THEN excluded.state "
        "ELSE entities.state END, "
        "rank=MAX(entities.rank,excluded.rank), "
        "ref=COALESCE(entities.ref,excluded.ref), "
        "flags=entities.flags|excluded.flags, "
        "updated_at_ms=excluded.updated_at_ms",
        GW_SQ_ARGS(gw_sq_text(kind), gw_sq_text(id), gw_sq_text(tenant_id), gw_sq_text(state),
                   gw_sq_int(rank), gw_sq_text(ref), gw_sq_int(flags), gw_sq_int(now_ms)),
        NULL);
}

typedef struct {
    char *state;
    size_t cap;
    int64_t *flags;
} entity_state_t;

static cm_err_t entity_state_row(sqlite3_stmt *st, void *arg)
{
    entity_state_t *e = arg;
    gw_sq_col_text(e->state, e->cap, st, 0);
    if (e->flags)
        *e->flags = sqlite3_column_int64(st, 1);
    return CM_OK;
}

cm_err_t gw_sq_store_entity_state(gw_sq_store_t *s, const char *kind, const char *id, char *state,
                                  size_t cap, int64_t *flags)
{
    entity_state_t e = {.state = state, .cap = cap, .flags = flags};
    int rows = 0;
    cm_err_t rc =
        gw_sq_read(s, "SELECT state, flags FROM entities WHERE kind=?1 AND id=?2",
                   GW_SQ_ARGS(gw_sq_text(kind), gw_sq_text(id)), entity_state_row, &e, &rows);
    return rc ? rc : rows ? CM_OK : CM_ENOTFOUND;
}

/* ---- sagas ------------------------------------------------------------------------ */

static cm_err_t saga_row(sqlite3_stmt *st, void *arg)
{
    gw_saga_t *out = arg;
    gw_sq_col_text(out->id, sizeof out->id, st, 0);
    gw_sq_col_text(out->tenant_id, sizeof out->tenant_id, st, 1);
    gw_sq_col_text(out->state, sizeof out->state, st, 2);
    gw_sq_col_text(out->reason, sizeof out->reason, st, 3);
    gw_sq_col_text(out->final, sizeof out->final, st, 4);
    gw_sq_col_text(out->booking_uid, sizeof out->booking_uid, st, 5);
    gw_sq_col_text(out->payment_intent, sizeof out->payment_intent, st, 6);
    out->wanted_ms = sqlite3_column_int64(st, 7);
    out->start_ms = sqlite3_column_int64(st, 8);
    out->tries = sqlite3_column_int(st, 9);
    out->deadline_ms = sqlite3_column_int64(st, 10);
    out->created_at_ms = sqlite3_column_int64(st, 11);
    out->refunded = sqlite3_column_int(st, 12);
    out->cancelled = sqlite3_column_int(st, 13);
    return CM_OK;
}

static cm_err_t saga_select(gw_sq_store_t *s, const char *where, const char *key, gw_saga_t *out)
{
    char sql[512];
    int rows = 0;
    snprintf(sql, sizeof sql,
             "SELECT id, tenant_id, state, reason, final, booking_uid, payment_intent, "
             "wanted_ms, start_ms, tries, deadline_ms, created_at_ms, refunded, cancelled "
             "FROM sagas WHERE %s=?1 LIMIT 1",
             where);
    memset(out, 0, sizeof *out);
    cm_err_t rc = gw_sq_read(s, sql, GW_SQ_ARGS(gw_sq_text(key)), saga_row, out, &rows);
    return rc ? rc : rows ? CM_OK : CM_ENOTFOUND;
}

cm_err_t gw_sq_store_saga_get(gw_sq_store_t *s, const char *id, gw_saga_t *out)
{
    return saga_select(s, "id", id, out);
}

cm_err_t gw_sq_store_saga_by_booking(gw_sq_store_t *s, const char *uid, gw_saga_t *out)
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

static cm_err_t saga_put_tx(sqlite3 *db, void *arg)
{
    saga_put_t *a = arg;
    const gw_saga_t *sg = a->sg;
    cm_err_t rc = gw_sq_exec(
        db,
        "INSERT INTO sagas(id,tenant_id,state,reason,final,booking_uid,"
        "payment_intent,wanted_ms,start_ms,tries,deadline_ms,refunded,"
        "cancelled,created_at_ms,updated_at_ms) "
        "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE "
        "SET state=excluded.state, reason=excluded.reason, "
        "final=excluded.final, booking_uid=excluded.booking_uid, "
        "payment_intent=excluded.payment_intent, "
        "start_ms=excluded.start_ms, tries=excluded.tries, "
        "refunded=excluded.refunded, cancelled=excluded.cancelled, "
        "updated_at_ms=excluded.updated_at_ms",
        GW_SQ_ARGS(gw_sq_text(sg->id), gw_sq_text(nz(sg->tenant_id)), gw_sq_text(sg->state),
                   gw_sq_text(nz(sg->reason)), gw_sq_text(nz(sg->final)),
                   gw_sq_text(nz(sg->booking_uid)), gw_sq_text(nz(sg->payment_intent)),
                   gw_sq_int(sg->wanted_ms), gw_sq_int(sg->start_ms), gw_sq_int(sg->tries),
                   gw_sq_int(sg->deadline_ms), gw_sq_int(sg->refunded), gw_sq_int(sg->cancelled),
                   gw_sq_int(sg->created_at_ms ? sg->created_at_ms : a->now_ms),
                   gw_sq_int(a->now_ms)),
        NULL);
    if (!rc && a->step)
        rc = gw_sq_exec(db,
                        "INSERT INTO saga_steps(saga_id,step,phase,detail,at_ms) "
                        "VALUES(?,?,?,?,?)",
                        GW_SQ_ARGS(gw_sq_text(sg->id), gw_sq_text(a->step), gw_sq_text(a->phase),
                                   gw_sq_text(a->detail), gw_sq_int(a->now_ms)),
                        NULL);
    if (!rc && sg->call_state[0])
        rc = gw_sq_entity_set(db, "call", sg->id, nz(sg->tenant_id), sg->call_state,
                              nz(sg->booking_uid), nz(sg->reason), a->now_ms);
    return rc;
}

cm_err_t gw_sq_store_saga_put(gw_sq_store_t *s, const gw_saga_t *sg, const char *step,
                              const char *phase, const char *detail, int64_t now_ms)
{
    saga_put_t a = {.sg = sg, .step = step, .phase = phase, .detail = detail, .now_ms = now_ms};
    /* The saga's state is what makes a restart resume correctly, so unlike other
     * bookkeeping it is committed with the configured durability. */
    return gw_sq_write(s, GW_SQ_DURABLE, saga_put_tx, &a);
}

static cm_err_t intent_row(sqlite3_stmt *st, void *arg)
{
    *(int *)arg = !strcmp((const char *)sqlite3_column_text(st, 0), "intent");
    return CM_OK;
}

int gw_sq_store_saga_intent_open(gw_sq_store_t *s, const char *id, const char *step)
{
    int open = 0;
    if (gw_sq_read(s,
                   "SELECT phase FROM saga_steps WHERE saga_id=?1 AND step=?2 "
                   "ORDER BY id DESC LIMIT 1",
                   GW_SQ_ARGS(gw_sq_text(id), gw_sq_text(step)), intent_row, &open, NULL) != CM_OK)
        return -1;
    return open;
}
