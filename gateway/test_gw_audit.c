/* test_gw_audit.c - the audit log of admin actions (gw_store_audit_*) and the event
 * look-up of scoped tokens, on a real database: SQLite on a file by default, PostgreSQL
 * when GW_STORE_TEST_BACKEND=postgres (ctest's test_gw_audit_pg runs this binary so under
 * ci/pg run, which exports GW_PG_URL; each test then starts from an empty schema). Newest
 * first, paged by cursor, filtered by tenant, kept across a reopen and by retention's
 * purge; SQLite: a version 5 database is brought to the current version with the table. And an erasure
 * within one tenant's rows (gw_store_erase_tenant, for scoped admin tokens). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#ifdef GW_STORE_PG
#include <libpq-fe.h>
#endif

#include "gw_store.h"

static char dir[64];
static char dbpath[96];
static gw_store_t *st;

static int on_pg(void)
{
    const char *b = getenv("GW_STORE_TEST_BACKEND");
    return b && !strcmp(b, "postgres");
}

static cm_err_t open_store(gw_store_t **out, char *err)
{
    if (on_pg())
        return gw_store_open_pg(getenv("GW_PG_URL"), NULL, out, err);
    return gw_store_open(dbpath, 1, out, err);
}

static void setup(void)
{
    char err[CM_ERR_LEN] = "";
    snprintf(dir, sizeof dir, "/tmp/test_gw_audit_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(dbpath, sizeof dbpath, "%s/gw.db", dir);
    if (on_pg()) {
#ifdef GW_STORE_PG
        cr_assert_not_null(getenv("GW_PG_URL"), "run under ci/pg run");
        PGconn *c = PQconnectdb(getenv("GW_PG_URL"));
        cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
        PGresult *r = PQexec(c, "SET client_min_messages=warning; DROP SCHEMA public CASCADE; "
                                "CREATE SCHEMA public");
        cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
        PQclear(r);
        PQfinish(c);
#else
        cr_assert_fail("GW_STORE_TEST_BACKEND=postgres, but built without libpq");
#endif
    }
    cr_assert_eq(open_store(&st, err), CM_OK, "%s", err);
}

static void teardown(void)
{
    char cmd[128];
    gw_store_close(&st);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(audit, .init = setup, .fini = teardown);

/* What a listing saw, as "id:token:tenant:action:target:outcome:detail;" lines. */
typedef struct {
    char text[4096];
    int n;
    int64_t last_id;
} seen_t;

static cm_err_t collect(void *ud, const gw_audit_t *a)
{
    seen_t *s = ud;
    size_t len = strlen(s->text);
    snprintf(s->text + len, sizeof s->text - len, "%s:%s:%s:%s:%s:%lld:%s;", a->token,
             a->tenant ? a->tenant : "-", a->action, a->target ? a->target : "-", a->outcome,
             (long long)a->at_ms, a->detail ? a->detail : "-");
    s->n++;
    s->last_id = a->id;
    return CM_OK;
}

static void add(const char *token, const char *tenant, const char *action, const char *target,
                const char *outcome, int64_t at_ms, const char *detail)
{
    gw_audit_t a = {.at_ms = at_ms,
                    .token = token,
                    .tenant = tenant,
                    .action = action,
                    .target = target,
                    .outcome = outcome,
                    .detail = detail};
    cr_assert_eq(gw_store_audit_add(st, &a), CM_OK);
}

static void list(const char *tenant, int64_t before, int limit, seen_t *s)
{
    memset(s, 0, sizeof *s);
    cr_assert_eq(gw_store_audit_list(st, tenant, before, limit, collect, s), CM_OK);
}

Test(audit, entries_come_back_newest_first_with_every_field)
{
    seen_t s;
    add("ops", NULL, "breaker.reset", "calcom", "ok", 1000, NULL);
    add("acme-ops", "acme", "dead_letter.replay", "job 7", "ok", 2000, NULL);
    add("ops", NULL, "erasure", "phone", "ok", 3000, "{\"events_erased\":2}");
    list(NULL, 0, 10, &s);
    cr_assert_eq(s.n, 3);
    cr_assert_str_eq(s.text, "ops:-:erasure:phone:ok:3000:{\"events_erased\":2};"
                             "acme-ops:acme:dead_letter.replay:job 7:ok:2000:-;"
                             "ops:-:breaker.reset:calcom:ok:1000:-;");
}

Test(audit, a_cursor_pages_through_without_gaps_or_repeats)
{
    seen_t s;
    char want[64];
    for (int i = 0; i < 7; i++) {
        char target[16];
        snprintf(target, sizeof target, "job %d", i);
        add("ops", NULL, "dead_letter.discard", target, "ok", 1000 + i, NULL);
    }
    int64_t cursor = 0;
    int pages = 0, total = 0;
    do {
        list(NULL, cursor, 3, &s);
        /* Each page's first entry is the one after the previous page's last. */
        snprintf(want, sizeof want, "ops:-:dead_letter.discard:job %d:", 6 - total);
        if (s.n)
            cr_assert(!strncmp(s.text, want, strlen(want)), "page %d: %s", pages, s.text);
        total += s.n;
        cursor = s.last_id;
        pages++;
    } while (s.n == 3);
    cr_assert_eq(total, 7);
    cr_assert_eq(pages, 3);
}

Test(audit, a_tenant_sees_its_own_entries_only)
{
    seen_t s;
    add("ops", NULL, "breaker.force-open", "calcom", "ok", 1000, NULL);
    add("acme-ops", "acme", "event.rerun", "event 1", "ok", 2000, NULL);
    add("globex-ops", "globex", "event.rerun", "event 2", "not_found", 3000, NULL);
    list("acme", 0, 10, &s);
    cr_assert_str_eq(s.text, "acme-ops:acme:event.rerun:event 1:ok:2000:-;");
    list("globex", 0, 10, &s);
    cr_assert_str_eq(s.text, "globex-ops:globex:event.rerun:event 2:not_found:3000:-;");
    list("initech", 0, 10, &s);
    cr_assert_eq(s.n, 0);
}

Test(audit, an_entry_without_its_required_fields_is_refused)
{
    gw_audit_t a = {.at_ms = 1, .token = "ops", .action = "x"};
    cr_assert_eq(gw_store_audit_add(st, &a), CM_EINVAL);
    seen_t s;
    list(NULL, 0, 10, &s);
    cr_assert_eq(s.n, 0);
}

Test(audit, entries_outlive_a_reopen_and_retention)
{
    char err[CM_ERR_LEN] = "";
    gw_purge_t p;
    seen_t s;
    add("ops", NULL, "breaker.reset", "calcom", "ok", 1000, NULL);
    gw_store_close(&st);
    cr_assert_eq(open_store(&st, err), CM_OK, "%s", err);
    /* Retention with a cutoff after everything: the audit log is not its to purge. */
    cr_assert_eq(gw_store_purge(st, INT64_MAX / 2, 1000, &p), CM_OK);
    list(NULL, 0, 10, &s);
    cr_assert_str_eq(s.text, "ops:-:breaker.reset:calcom:ok:1000:-;");
}

Test(audit, an_event_s_tenant_is_found_or_not_found)
{
    char tenant[64] = "x";
    gw_ingest_t r;
    const char *body = "{}";
    gw_event_in_t ev = {.provider = "retell",
                        .event_key = "retell:c1:call_started",
                        .event_type = "call_started",
                        .entity_id = "c1",
                        .tenant_id = "globex",
                        .body = body,
                        .body_len = strlen(body),
                        .received_at_ms = 1000};
    cr_assert_eq(gw_store_ingest(st, &ev, &r), CM_OK);
    cr_assert_eq(gw_store_event_tenant(st, 1, tenant, sizeof tenant), CM_OK);
    cr_assert_str_eq(tenant, "globex");
    cr_assert_eq(gw_store_event_tenant(st, 999, tenant, sizeof tenant), CM_ENOTFOUND);
}

/* A database of schema version 5 (before the audit log) opens at the current version (8)
 * with the table. */
Test(audit, a_version_5_sqlite_database_gets_the_table)
{
    if (on_pg())
        cr_skip_test("SQLite only: PRAGMA user_version of a file");
    char err[CM_ERR_LEN] = "";
    sqlite3 *db;
    sqlite3_stmt *q;
    seen_t s;
    gw_store_close(&st);
    cr_assert_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    cr_assert_eq(
        sqlite3_exec(db, "DROP TABLE admin_audit; PRAGMA user_version=5;", NULL, NULL, NULL),
        SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
    cr_assert_eq(open_store(&st, err), CM_OK, "%s", err);
    add("ops", NULL, "breaker.reset", "calcom", "ok", 1000, NULL);
    list(NULL, 0, 10, &s);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(q, 0), 8);
    sqlite3_finalize(q);
    sqlite3_close(db);
}

#ifdef GW_STORE_PG
/* A PostgreSQL database that got version 5 without 4 (two changes numbered their steps
 * apart and met later) gets 4 on its next opening: the loop runs a step unless its own
 * version is recorded, not only the steps above the newest. Opening again adds nothing. */
Test(audit, pg_versions_are_recorded_one_by_one)
{
    if (!on_pg())
        cr_skip_test("PostgreSQL only");
    char err[CM_ERR_LEN] = "";
    PGconn *c = PQconnectdb(getenv("GW_PG_URL"));
    PGresult *r = PQexec(c, "DELETE FROM gw_schema_version WHERE version=4;"
                            "DROP TABLE reconcile_findings");
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(r);
    for (int i = 0; i < 2; i++) {
        gw_store_close(&st);
        cr_assert_eq(open_store(&st, err), CM_OK, "%s", err);
        r = PQexec(c, "SELECT string_agg(version::text, ',' ORDER BY version), "
                      "to_regclass('reconcile_findings') IS NOT NULL FROM gw_schema_version");
        cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
        cr_assert_str_eq(PQgetvalue(r, 0, 0), "1,2,3,4,5,6");
        cr_assert_str_eq(PQgetvalue(r, 0, 1), "t", "version 4's table made again");
        PQclear(r);
    }
    PQfinish(c);
}
#endif

/* An erasure by a token scoped to a tenant (gw_store_erase_tenant) reaches that tenant's
 * events only; the same person's event at another tenant is left for that tenant. */
Test(audit, an_erasure_within_one_tenant_leaves_the_others)
{
    gw_ingest_t r;
    gw_erase_t er;
    const char *body = "{\"call\":{\"attendee_email\":\"pat@example.com\"}}";
    const char *tenants[] = {"acme", "globex"};
    const char *keys[] = {"retell:c1:call_started", "retell:c2:call_started"};
    for (int i = 0; i < 2; i++) {
        gw_event_in_t ev = {.provider = "retell",
                            .event_key = keys[i],
                            .event_type = "call_started",
                            .entity_id = keys[i] + 7,
                            .tenant_id = tenants[i],
                            .body = body,
                            .body_len = strlen(body),
                            .received_at_ms = 1000};
        cr_assert_eq(gw_store_ingest(st, &ev, &r), CM_OK);
    }
    cr_assert_eq(gw_store_erase_tenant(st, "globex", NULL, "PAT@example.com", 2000, &er), CM_OK);
    cr_assert_eq(er.events, 1);
    cr_assert_eq(er.ids[0], 2, "globex's event");
    cr_assert_eq(gw_store_erase_tenant(st, "globex", NULL, "pat@example.com", 3000, &er), CM_OK);
    cr_assert_eq(er.events, 0, "globex's is erased already, acme's is not globex's");
    cr_assert_eq(gw_store_erase_tenant(st, NULL, NULL, "pat@example.com", 4000, &er), CM_OK);
    cr_assert_eq(er.events, 1, "every tenant's: acme's is left");
    cr_assert_eq(er.ids[0], 1);
}
