/* pg_smoke - the libpq toolchain against a real PostgreSQL, run by ctest under `ci/pg run`,
 * which starts a throwaway server and exports GW_PG_URL. Connects over TCP with the URL's
 * password, checks that commits are durable (synchronous_commit and fsync on), creates a
 * table, inserts with ON CONFLICT DO NOTHING (the deduplication the PostgreSQL store will
 * use) and reads the rows back. Exits 0 on success, 1 on a failure, 77 (skip) without
 * GW_PG_URL. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "pg_smoke: FAIL %s:%d: ", __FILE__, __LINE__);                         \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* exec_ok: runs SQL with parameters, returns the result if its status is `want`, else
 * reports the error and returns NULL. */
static PGresult *exec_ok(PGconn *c, ExecStatusType want, const char *sql, int n,
                         const char *const *params)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != want) {
        fprintf(stderr, "pg_smoke: FAIL `%s`: %s", sql, PQresultErrorMessage(r));
        failures++;
        PQclear(r);
        return NULL;
    }
    return r;
}

/* show_is_on: SHOW name must answer "on". */
static void show_is_on(PGconn *c, const char *name)
{
    char sql[64];
    snprintf(sql, sizeof sql, "SHOW %s", name);
    PGresult *r = exec_ok(c, PGRES_TUPLES_OK, sql, 0, NULL);
    if (r) {
        CHECK(PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "on") == 0, "%s is '%s', not 'on'",
              name, PQntuples(r) ? PQgetvalue(r, 0, 0) : "?");
        PQclear(r);
    }
}

/* insert: one row with ON CONFLICT DO NOTHING; returns the rows it inserted (0 or 1). */
static int insert(PGconn *c, const char *key, const char *val)
{
    const char *p[2] = {key, val};
    PGresult *r = exec_ok(c, PGRES_COMMAND_OK,
                          "INSERT INTO smoke_events (event_key, body) VALUES ($1, $2) "
                          "ON CONFLICT (event_key) DO NOTHING",
                          2, p);
    if (!r)
        return -1;
    int n = atoi(PQcmdTuples(r));
    PQclear(r);
    return n;
}

int main(void)
{
    const char *url = getenv("GW_PG_URL");
    if (!url || !*url) {
        fprintf(stderr, "SKIP: GW_PG_URL not set (run me under `ci/pg run`)\n");
        return 77;
    }
    printf("pg_smoke: libpq %d\n", PQlibVersion());
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "pg_smoke: FAIL cannot connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return 1;
    }
    printf("pg_smoke: connected to %s:%s as %s, server %d\n", PQhost(c), PQport(c), PQuser(c),
           PQserverVersion(c));
    CHECK(PQconnectionUsedPassword(c), "the server did not ask for the password");
    CHECK(PQserverVersion(c) >= 150000, "server %d, want PostgreSQL 15 or later",
          PQserverVersion(c));

    show_is_on(c, "synchronous_commit");
    show_is_on(c, "fsync");

    PGresult *r = exec_ok(c, PGRES_COMMAND_OK,
                          "CREATE TABLE smoke_events (event_key text PRIMARY KEY, body text NOT "
                          "NULL, at timestamptz NOT NULL DEFAULT now())",
                          0, NULL);
    PQclear(r);

    CHECK(insert(c, "call_1:call_analyzed", "{\"n\":1}") == 1, "first insert did not insert");
    CHECK(insert(c, "call_1:call_analyzed", "{\"n\":2}") == 0, "duplicate was inserted");
    CHECK(insert(c, "call_2:call_ended", "{\"n\":3}") == 1, "second key did not insert");

    r = exec_ok(c, PGRES_TUPLES_OK, "SELECT event_key, body FROM smoke_events ORDER BY event_key",
                0, NULL);
    if (r) {
        CHECK(PQntuples(r) == 2, "%d rows, want 2", PQntuples(r));
        if (PQntuples(r) == 2) {
            CHECK(strcmp(PQgetvalue(r, 0, 0), "call_1:call_analyzed") == 0 &&
                      strcmp(PQgetvalue(r, 0, 1), "{\"n\":1}") == 0,
                  "row 1 is %s %s (the duplicate must not overwrite)", PQgetvalue(r, 0, 0),
                  PQgetvalue(r, 0, 1));
            CHECK(strcmp(PQgetvalue(r, 1, 0), "call_2:call_ended") == 0, "row 2 is %s",
                  PQgetvalue(r, 1, 0));
        }
        PQclear(r);
    }
    PQfinish(c);
    if (failures) {
        fprintf(stderr, "pg_smoke: %d failure(s)\n", failures);
        return 1;
    }
    printf("pg_smoke: ok\n");
    return 0;
}
