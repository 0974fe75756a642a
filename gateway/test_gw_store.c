/* test_gw_store.c - the store on a real database, one source for both backends: SQLite on
 * a real file (the default), or PostgreSQL when GW_STORE_TEST_BACKEND=postgres (ctest's
 * test_gw_store_pg runs this binary so under ci/pg run, which exports GW_PG_URL; each test
 * then starts from an empty schema). One-transaction dedup (also under concurrent copies),
 * job lifecycle, crash recovery and its dead-letter reasons, leases, outcome writes
 * refused under a real lock, schema migration; SQLite-only tests skip on PostgreSQL with
 * their reason. PostgreSQL-only: two instances claiming at once, a lease taken over by the
 * other instance, and a server that drops the store's connections. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#ifdef GW_STORE_PG
#include <libpq-fe.h>
#endif

#include "cm_clock.h"
#include "gw_store.h"

#define LEASE 60000 /* ms; the tests that are not about leases never reach its end */

static char dir[64];
static char dbpath[96];
static gw_store_t *st;

/* 1 when this run tests the PostgreSQL store. */
static int on_pg(void)
{
    const char *b = getenv("GW_STORE_TEST_BACKEND");
    return b && !strcmp(b, "postgres");
}

/* SQLite-only tests say why and skip on PostgreSQL. */
#define SQLITE_ONLY(why)                                                                           \
    do {                                                                                           \
        if (on_pg())                                                                               \
            cr_skip_test("SQLite only: %s", why);                                                  \
    } while (0)

/* Opens one more handle on the test's database: another connection set on SQLite, another
 * gateway instance on PostgreSQL. */
static cm_err_t open_store(gw_store_t **out, char *err)
{
    if (on_pg())
        return gw_store_open_pg(getenv("GW_PG_URL"), NULL, out, err);
    return gw_store_open(dbpath, 1, out, err);
}

#ifdef GW_STORE_PG
/* A connection of the test's own, as the database's owner (not through the store). */
static PGconn *pg_admin(void)
{
    PGconn *c = PQconnectdb(getenv("GW_PG_URL"));
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    return c;
}

static void pg_run(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType t = PQresultStatus(r);
    cr_assert(t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

/* Every test starts from an empty database, as each SQLite test from a new file. */
static void pg_reset(void)
{
    PGconn *c = pg_admin();
    pg_run(c, "SET client_min_messages=warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public");
    PQfinish(c);
}
#endif

static void setup(void)
{
    char err[CM_ERR_LEN] = "";
    snprintf(dir, sizeof dir, "/tmp/test_gw_store_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(dbpath, sizeof dbpath, "%s/gw.db", dir);
    if (on_pg()) {
#ifdef GW_STORE_PG
        cr_assert_not_null(getenv("GW_PG_URL"), "run under ci/pg run");
        pg_reset();
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
    cr_assert_null(st);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(store, .init = setup, .fini = teardown);

/* The job's last_error as stored, read through the admin view. */
static void store_job_error(gw_store_t *s, int64_t id, char *out, size_t cap)
{
    cm_buf_t b;
    cm_buf_init(&b, 1 << 16);
    cr_assert_eq(gw_store_job_json(s, id, &b), CM_OK);
    json_t *v = json_loads(b.data, 0, NULL);
    cr_assert_not_null(v, "%s", b.data);
    const char *e = json_string_value(json_object_get(v, "last_error"));
    snprintf(out, cap, "%s", e ? e : "(null)");
    json_decref(v);
    cm_buf_free(&b);
}

static void job_error(int64_t id, char *out, size_t cap)
{
    store_job_error(st, id, out, cap);
}

static gw_event_in_t event(const char *key, const char *body)
{
    gw_event_in_t ev = {.provider = "retell",
                        .event_key = key,
                        .event_type = "call_analyzed",
                        .entity_id = "call_1",
                        .tenant_id = "acme",
                        .body = body,
                        .body_len = strlen(body),
                        .received_at_ms = 1000,
                        .job_kind = "retell.call_analyzed"};
    return ev;
}

Test(store, duplicate_is_counted_not_queued)
{
    gw_ingest_t r;
    gw_event_in_t ev = event("retell:call_1:call_analyzed", "{\"a\":1}");
    cr_assert_eq(gw_store_ingest(st, &ev, &r), CM_OK);
    cr_assert_eq(r, GW_INGEST_ACCEPTED);
    cr_assert_eq(gw_store_ingest(st, &ev, &r), CM_OK);
    cr_assert_eq(r, GW_INGEST_DUPLICATE);
    gw_queue_stats_t q;
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK);
    cr_assert_eq(q.pending, 1, "one job for two copies, got %lld", (long long)q.pending);
    cm_buf_t b;
    cm_buf_init(&b, 1 << 20);
    cr_assert_eq(gw_store_events_json(st, "retell", NULL, NULL, 100, &b), CM_OK);
    json_t *v = json_loads(b.data, 0, NULL);
    cr_assert_not_null(v, "%s", b.data);
    cr_assert_eq(json_integer_value(json_object_get(v, "count")), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(json_object_get(v, "events"), 0),
                                                    "duplicates")),
                 1, "%s", b.data);
    json_decref(v);
    cm_buf_free(&b);
}

typedef struct {
    gw_store_t *store;
    pthread_barrier_t *bar;
    int accepted;
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    gw_ingest_t res;
    gw_event_in_t ev = event("retell:race:call_analyzed", "{\"same\":true}");
    pthread_barrier_wait(r->bar);
    cr_assert_eq(gw_store_ingest(r->store, &ev, &res), CM_OK);
    r->accepted = res == GW_INGEST_ACCEPTED;
    return NULL;
}

Test(store, concurrent_copies_across_connections_accept_exactly_one)
{
    /* Separate store handles = separate connections, like separate processes. */
    enum { N = 8 };
    gw_store_t *stores[N];
    pthread_t th[N];
    racer_t rs[N];
    pthread_barrier_t bar;
    char err[CM_ERR_LEN];
    pthread_barrier_init(&bar, NULL, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(open_store(&stores[i], err), CM_OK, "%s", err);
        rs[i] = (racer_t){.store = stores[i], .bar = &bar};
        pthread_create(&th[i], NULL, race, &rs[i]);
    }
    int accepted = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        accepted += rs[i].accepted;
        gw_store_close(&stores[i]);
    }
    pthread_barrier_destroy(&bar);
    cr_assert_eq(accepted, 1, "accepted %d of %d copies", accepted, N);
}

Test(store, job_lifecycle_retry_then_done)
{
    gw_ingest_t r;
    gw_job_t job;
    int64_t next = 0;
    gw_event_in_t ev = event("k1", "{\"body\":1}");
    gw_queue_stats_t q;
    cr_assert_eq(gw_store_ingest(st, &ev, &r), CM_OK);
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK);
    cr_assert_eq(q.oldest_pending_at_ms, 1000, "due at its receipt");
    cr_assert_eq(gw_store_claim(st, 999, LEASE, &job, &next), CM_ENOTFOUND,
                 "not due before receipt");
    cr_assert_eq(next, 1000);
    cr_assert_eq(gw_store_claim(st, 1000, LEASE, &job, &next), CM_OK);
    cr_assert_str_eq(job.kind, "retell.call_analyzed");
    cr_assert_str_eq(job.body.data, "{\"body\":1}");
    cr_assert_eq(job.attempts, 1);
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK);
    cr_assert_eq(q.oldest_pending_at_ms, 0, "a running job is not pending");
    cr_assert_eq(gw_store_job_retry(st, job.id, 5000, "HTTP 503", 1001), CM_OK);
    gw_store_job_free(&job);
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK);
    cr_assert_eq(q.oldest_pending_at_ms, 5000, "due at its retry");
    cr_assert_eq(gw_store_claim(st, 4999, LEASE, &job, &next), CM_ENOTFOUND);
    cr_assert_eq(next, 5000);
    cr_assert_eq(gw_store_claim(st, 5000, LEASE, &job, &next), CM_OK);
    cr_assert_eq(job.attempts, 2);
    cr_assert_eq(gw_store_job_done(st, job.id, 5001), CM_OK);
    gw_store_job_free(&job);
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK);
    cr_assert(q.done == 1 && q.pending == 0 && q.running == 0);
    cr_assert_eq(q.oldest_pending_at_ms, 0);
    cr_assert_eq(gw_store_claim(st, 9999, LEASE, &job, &next), CM_ENOTFOUND);
    cr_assert_eq(next, -1);
}

Test(store, recovery_requeues_running_and_buries_crashers)
{
    gw_ingest_t r;
    gw_job_t job;
    int64_t next;
    int requeued = 0;
    gw_event_in_t a = event("a", "{}"), b = event("b", "{}");
    cr_assert_eq(gw_store_ingest(st, &a, &r), CM_OK);
    /* Job a: claimed 3 times without finishing (a worker that crashes on it). */
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(gw_store_claim(st, 2000, LEASE, &job, &next), CM_OK);
        gw_store_job_free(&job);
        if (i < 2)
            cr_assert_eq(gw_store_recover(st, 3, 2000, &requeued), CM_OK);
    }
    /* Job b (another call) is left running once. */
    b.entity_id = "call_2";
    cr_assert_eq(gw_store_ingest(st, &b, &r), CM_OK);
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &job, &next), CM_OK);
    gw_store_job_free(&job);
    cr_assert_eq(gw_store_recover(st, 3, 2000, &requeued), CM_OK);
    cr_assert_eq(requeued, 1);
    gw_queue_stats_t q;
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK);
    cr_assert_eq(q.dead, 1, "crasher dead-lettered");
    cr_assert_eq(q.pending, 1);
    char why[256];
    job_error(1, why, sizeof why);
    cr_assert_str_eq(why, "worker crashed on every attempt");
}

Test(store, recovery_reason_names_the_restart_and_the_previous_error)
{
    gw_ingest_t r;
    gw_job_t job;
    int64_t next;
    int requeued = 0;
    char why[256];
    gw_event_in_t a = event("a", "{}");
    cr_assert_eq(gw_store_ingest(st, &a, &r), CM_OK);
    /* Attempts 1 and 2 fail on their own; the restart cuts attempt 3 short. */
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &job, &next), CM_OK);
    cr_assert_eq(gw_store_job_retry(st, job.id, 2000, "HTTP 503 from calcom", 2001), CM_OK);
    gw_store_job_free(&job);
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &job, &next), CM_OK);
    cr_assert_eq(gw_store_job_retry(st, job.id, 2000, "HTTP 502 from calcom", 2002), CM_OK);
    gw_store_job_free(&job);
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &job, &next), CM_OK);
    cr_assert_eq(job.attempts, 3);
    gw_store_job_free(&job);
    cr_assert_eq(gw_store_recover(st, 3, 3000, &requeued), CM_OK);
    cr_assert_eq(requeued, 0);
    job_error(job.id, why, sizeof why);
    cr_assert_str_eq(why, "interrupted by a restart on attempt 3 of 3; previous error: HTTP 502 "
                          "from calcom");
}

Test(store, recovery_reason_after_a_crash_then_a_failure_then_a_crash)
{
    gw_ingest_t r;
    gw_job_t job;
    int64_t next;
    int requeued = 0;
    char why[256];
    gw_event_in_t a = event("a", "{}");
    cr_assert_eq(gw_store_ingest(st, &a, &r), CM_OK);
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &job, &next), CM_OK);
    gw_store_job_free(&job);
    cr_assert_eq(gw_store_recover(st, 3, 2000, &requeued), CM_OK); /* attempt 1: crash */
    cr_assert_eq(requeued, 1);
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &job, &next), CM_OK);
    cr_assert_eq(gw_store_job_retry(st, job.id, 2000, "timeout", 2001), CM_OK); /* 2: failed */
    gw_store_job_free(&job);
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &job, &next), CM_OK);
    gw_store_job_free(&job);
    cr_assert_eq(gw_store_recover(st, 3, 2000, &requeued), CM_OK); /* 3: crash */
    job_error(job.id, why, sizeof why);
    cr_assert_str_eq(why, "interrupted by a restart on attempt 3 of 3; previous error: timeout");
    /* Replayed, it starts afresh: crashing on its one attempt is crashing on every one. */
    cr_assert_eq(gw_store_job_replay(st, job.id, 4000), CM_OK);
    cr_assert_eq(gw_store_claim(st, 4000, LEASE, &job, &next), CM_OK);
    gw_store_job_free(&job);
    cr_assert_eq(gw_store_recover(st, 1, 4000, &requeued), CM_OK);
    job_error(job.id, why, sizeof why);
    cr_assert_str_eq(why, "worker crashed on every attempt");
}

Test(store, expired_lease_requeues_a_job_nobody_holds_and_renews_the_held)
{
    gw_ingest_t r;
    gw_job_t a, b;
    int64_t next;
    int requeued = -1;
    char why[256];
    gw_event_in_t ea = event("a", "{}"), eb = event("b", "{}");
    eb.entity_id = "call_2";
    cr_assert_eq(gw_store_ingest(st, &ea, &r), CM_OK);
    cr_assert_eq(gw_store_ingest(st, &eb, &r), CM_OK);
    cr_assert_eq(gw_store_claim(st, 2000, 1000, &a, &next), CM_OK); /* leased until 3000 */
    cr_assert_eq(gw_store_claim(st, 2000, 1000, &b, &next), CM_OK);
    /* Not yet expired: nothing moves. */
    cr_assert_eq(gw_store_reclaim(st, 2999, 1000, NULL, 0, &requeued), CM_OK);
    cr_assert_eq(requeued, 0);
    /* b is still held (a long run): its lease is renewed; a is requeued. */
    cr_assert_eq(gw_store_reclaim(st, 3000, 1000, &b.id, 1, &requeued), CM_OK);
    cr_assert_eq(requeued, 1);
    job_error(a.id, why, sizeof why);
    cr_assert_str_eq(why, "outcome of attempt 1 not stored (lease expired)");
    gw_queue_stats_t q;
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK);
    cr_assert(q.pending == 1 && q.running == 1, "pending %lld running %lld", (long long)q.pending,
              (long long)q.running);
    /* b's lease now runs to 4000. */
    cr_assert_eq(gw_store_reclaim(st, 3999, 1000, NULL, 0, &requeued), CM_OK);
    cr_assert_eq(requeued, 0, "a renewed lease is not expired");
    cr_assert_eq(gw_store_job_done(st, b.id, 3999), CM_OK);
    cr_assert_eq(gw_store_reclaim(st, 9000, 1000, NULL, 0, &requeued), CM_OK);
    cr_assert_eq(requeued, 0, "a finished job has no lease");
    gw_store_job_free(&b);
    /* The requeued job runs again and can end normally. */
    gw_store_job_free(&a);
    cr_assert_eq(gw_store_claim(st, 9000, 1000, &a, &next), CM_OK);
    cr_assert_eq(a.attempts, 2);
    cr_assert_eq(gw_store_job_done(st, a.id, 9001), CM_OK);
    gw_store_job_free(&a);
}

Test(store, outcome_refused_under_a_real_lock_is_stored_after_the_lease_expires)
{
    SQLITE_ONLY("the lock is SQLite's write lock, taken by a second sqlite3 connection");
    gw_ingest_t r;
    gw_job_t job;
    int64_t next;
    int requeued = 0;
    sqlite3 *other = NULL;
    gw_event_in_t ev = event("a", "{}");
    cr_assert_eq(gw_store_ingest(st, &ev, &r), CM_OK);
    cr_assert_eq(gw_store_claim(st, 2000, 1000, &job, &next), CM_OK);
    gw_store_job_free(&job);
    /* Another process takes the write lock and keeps it longer than the busy timeout. */
    gw_store_set_busy_timeout(st, 20);
    cr_assert_eq(sqlite3_open(dbpath, &other), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    cr_assert_eq(gw_store_job_done(st, job.id, 2500), CM_ESTORE);
    cr_assert_eq(gw_store_reclaim(st, 3000, 1000, NULL, 0, &requeued), CM_ESTORE);
    cr_assert_eq(requeued, 0);
    gw_queue_stats_t q;
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK, "reads go on beside the lock (WAL)");
    cr_assert_eq(q.running, 1, "the refused outcome left the job running");
    /* The lock goes; the lease check requeues the job and its next run is stored. */
    cr_assert_eq(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    cr_assert_eq(gw_store_reclaim(st, 3000, 1000, NULL, 0, &requeued), CM_OK);
    cr_assert_eq(requeued, 1);
    cr_assert_eq(gw_store_claim(st, 3000, 1000, &job, &next), CM_OK);
    cr_assert_eq(gw_store_job_done(st, job.id, 3001), CM_OK);
    gw_store_job_free(&job);
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK);
    cr_assert(q.done == 1 && q.running == 0 && q.pending == 0);
}

Test(store, call_outcome_upsert_keeps_uid)
{
    char state[32];
    cr_assert_eq(gw_store_entity_state(st, "call", "c9", state, sizeof state, NULL), CM_ENOTFOUND);
    cr_assert_eq(gw_store_entity_set(st, "call", "c9", "acme", "booked", "uid-1", NULL, 10), CM_OK);
    cr_assert_eq(gw_store_entity_set(st, "call", "c9", NULL, "booked", NULL, NULL, 11), CM_OK);
    cr_assert_eq(gw_store_entity_state(st, "call", "c9", state, sizeof state, NULL), CM_OK);
    cr_assert_str_eq(state, "booked");
    cm_buf_t b;
    cm_buf_init(&b, 1 << 16);
    cr_assert_eq(gw_store_entity_json(st, "call", "c9", &b), CM_OK);
    cr_assert(strstr(b.data, "\"ref\":\"uid-1\""), "%s", b.data);
    cr_assert(strstr(b.data, "\"tenant_id\":\"acme\""), "%s", b.data);
    cm_buf_free(&b);
}

Test(store, one_running_job_per_entity)
{
    gw_ingest_t r;
    gw_job_t j1, j2;
    int64_t next;
    gw_event_in_t a = event("a", "{}"), b = event("b", "{}"), c = event("c", "{}");
    c.entity_id = "call_other";
    cr_assert_eq(gw_store_ingest(st, &a, &r), CM_OK);
    cr_assert_eq(gw_store_ingest(st, &b, &r), CM_OK);
    cr_assert_eq(gw_store_ingest(st, &c, &r), CM_OK);
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &j1, &next), CM_OK);
    cr_assert_str_eq(j1.entity_id, "call_1");
    /* b is due but call_1 is busy: the next claim takes the other entity. */
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &j2, &next), CM_OK);
    cr_assert_str_eq(j2.entity_id, "call_other");
    gw_store_job_free(&j2);
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &j2, &next), CM_ENOTFOUND);
    cr_assert_eq(gw_store_job_done(st, j1.id, 2001), CM_OK);
    gw_store_job_free(&j1);
    cr_assert_eq(gw_store_claim(st, 2002, LEASE, &j2, &next), CM_OK);
    cr_assert_str_eq(j2.entity_id, "call_1");
    gw_store_job_free(&j2);
}

/* A booking's job and its call's job act on one saga: while one runs, the other waits,
 * whichever came first. Another booking's job is not held back. */
Test(store, one_running_job_per_saga_across_its_call_and_its_booking)
{
    gw_ingest_t r;
    gw_job_t j1, j2;
    int64_t next;
    gw_saga_t sg;
    memset(&sg, 0, sizeof sg);
    snprintf(sg.id, sizeof sg.id, "call_1");
    snprintf(sg.tenant_id, sizeof sg.tenant_id, "acme");
    snprintf(sg.state, sizeof sg.state, "completed");
    snprintf(sg.booking_uid, sizeof sg.booking_uid, "uid-1");
    cr_assert_eq(gw_store_saga_put(st, &sg, "confirm", "done", NULL, 1000), CM_OK);
    gw_event_in_t call = event("a", "{}"), cancel = event("b", "{}"), other = event("c", "{}");
    cancel.provider = other.provider = "calcom";
    cancel.entity_id = "uid-1";
    other.entity_id = "uid-2";
    cancel.job_kind = other.job_kind = "calcom.booking";
    cr_assert_eq(gw_store_ingest(st, &cancel, &r), CM_OK);
    cr_assert_eq(gw_store_ingest(st, &call, &r), CM_OK);
    cr_assert_eq(gw_store_ingest(st, &other, &r), CM_OK);
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &j1, &next), CM_OK);
    cr_assert_str_eq(j1.entity_id, "uid-1");
    /* call_1's job is due, but its saga is busy with the booking's: uid-2 goes first. */
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &j2, &next), CM_OK);
    cr_assert_str_eq(j2.entity_id, "uid-2");
    gw_store_job_free(&j2);
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &j2, &next), CM_ENOTFOUND);
    cr_assert_eq(gw_store_job_done(st, j1.id, 2001), CM_OK);
    gw_store_job_free(&j1);
    cr_assert_eq(gw_store_claim(st, 2002, LEASE, &j2, &next), CM_OK);
    cr_assert_str_eq(j2.entity_id, "call_1");
    gw_store_job_free(&j2);
}

/* The finished job's done and the next claim are one transaction: the claim already sees
 * the entity free, and with nothing left to claim the done is stored all the same. */
Test(store, done_and_claim_finishes_the_job_and_claims_the_next_in_one_go)
{
    gw_ingest_t r;
    gw_job_t j1, j2;
    int64_t next;
    gw_queue_stats_t q;
    gw_event_in_t a = event("a", "{}"), b = event("b", "{}");
    cr_assert_eq(gw_store_ingest(st, &a, &r), CM_OK);
    cr_assert_eq(gw_store_ingest(st, &b, &r), CM_OK);
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &j1, &next), CM_OK);
    /* b's entity (call_1) is busy with a until a is done. */
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &j2, &next), CM_ENOTFOUND);
    cr_assert_eq(gw_store_done_and_claim(st, j1.id, NULL, 2001, LEASE, &j2, &next), CM_OK);
    cr_assert_str_eq(j2.entity_id, "call_1");
    cr_assert_neq(j2.id, j1.id);
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK);
    cr_assert_eq(q.done, 1);
    cr_assert_eq(q.running, 1);
    gw_store_job_free(&j1);
    cr_assert_eq(gw_store_done_and_claim(st, j2.id, NULL, 2002, LEASE, &j1, &next), CM_ENOTFOUND);
    gw_store_job_free(&j2);
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK);
    cr_assert_eq(q.done, 2, "stored though nothing was claimed");
    cr_assert_eq(q.running + q.pending, 0);
}

/* Ingests a job of tenant's entity call (key: the call). */
static void tenant_job(const char *tenant, const char *call)
{
    gw_ingest_t r;
    gw_event_in_t ev = event(call, "{}");
    ev.entity_id = call;
    ev.tenant_id = tenant;
    cr_assert_eq(gw_store_ingest(st, &ev, &r), CM_OK);
    cr_assert_eq(r, GW_INGEST_ACCEPTED);
}

/* Claims with after_tenant (NULL: none) and says whose entity the job is ("-": none). */
static const char *claim_after(const char *after, int64_t done_id, int64_t *id)
{
    static char got[sizeof(((gw_job_t *)0)->entity_id)];
    gw_job_t j;
    int64_t next;
    cm_err_t rc = gw_store_done_and_claim(st, done_id, after, 2000, LEASE, &j, &next);
    if (rc == CM_ENOTFOUND)
        return "-";
    cr_assert_eq(rc, CM_OK);
    snprintf(got, sizeof got, "%s", j.entity_id);
    if (id)
        *id = j.id;
    gw_store_job_free(&j);
    return got;
}

/* With the tenant of the lane's last job, a claim is fair between tenants: another tenant
 * with nothing running goes before the backlog of the first; when every tenant with due
 * jobs is busy, the oldest due job of any. Without it, the oldest due job, whoever's. */
Test(store, a_claim_after_a_tenants_job_prefers_a_tenant_running_nothing)
{
    for (int i = 1; i <= 4; i++) {
        char call[16];
        snprintf(call, sizeof call, "alpha_%d", i);
        tenant_job("alpha", call);
    }
    tenant_job("beta", "beta_1");
    tenant_job("gamma", "gamma_1");
    int64_t a1 = 0;
    cr_assert_str_eq(claim_after(NULL, 0, &a1), "alpha_1", "the oldest, with no last tenant");
    cr_assert_str_eq(claim_after("alpha", 0, NULL), "beta_1", "alpha is running: beta's first");
    cr_assert_str_eq(claim_after("beta", 0, NULL), "gamma_1", "beta and alpha are running");
    cr_assert_str_eq(claim_after("gamma", 0, NULL), "alpha_2",
                     "every tenant with due jobs is running: the oldest due job");
    cr_assert_str_eq(claim_after("alpha", a1, NULL), "alpha_3", "only alpha's are left");
    /* Without a last tenant, order alone: alpha's backlog before a new tenant's job. */
    tenant_job("delta", "delta_1");
    cr_assert_str_eq(claim_after(NULL, 0, NULL), "alpha_4");
    cr_assert_str_eq(claim_after(NULL, 0, NULL), "delta_1");
    cr_assert_str_eq(claim_after("delta", 0, NULL), "-");
}

Test(store, dead_letter_replay_discard_and_rerun)
{
    gw_ingest_t r;
    gw_job_t j;
    int64_t next, rerun = 0;
    gw_event_in_t a = event("a", "{}");
    cr_assert_eq(gw_store_ingest(st, &a, &r), CM_OK);
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &j, &next), CM_OK);
    cr_assert_eq(gw_store_job_replay(st, j.id, 2001), CM_ESTATE, "running jobs are not dead");
    cr_assert_eq(gw_store_job_dead(st, j.id, "poison", 2001), CM_OK);
    cr_assert_eq(gw_store_job_replay(st, 999, 2001), CM_ENOTFOUND);
    cm_buf_t b;
    cm_buf_init(&b, 1 << 16);
    cr_assert_eq(gw_store_jobs_json(st, "dead", NULL, 10, &b), CM_OK);
    cr_assert(strstr(b.data, "\"last_error\":\"poison\"") && strstr(b.data, "\"count\":1"), "%s",
              b.data);
    cm_buf_reset(&b);
    cr_assert_eq(gw_store_job_json(st, j.id, &b), CM_OK);
    cr_assert(strstr(b.data, "\"body\":\"{}\""), "%s", b.data);
    cm_buf_free(&b);
    cr_assert_eq(gw_store_job_replay(st, j.id, 3000), CM_OK);
    gw_store_job_free(&j);
    cr_assert_eq(gw_store_claim(st, 3000, LEASE, &j, &next), CM_OK);
    cr_assert_eq(j.attempts, 1, "replay resets the attempts");
    cr_assert_eq(gw_store_job_dead(st, j.id, "again", 3001), CM_OK);
    cr_assert_eq(gw_store_job_discard(st, j.id, 3002), CM_OK);
    cr_assert_eq(gw_store_job_discard(st, j.id, 3002), CM_ESTATE);
    cr_assert_eq(gw_store_event_rerun(st, j.event_id, 4000, &rerun), CM_OK);
    cr_assert_neq(rerun, j.id);
    cr_assert_eq(gw_store_event_rerun(st, 999, 4000, &rerun), CM_ENOTFOUND);
    gw_store_job_free(&j);
    gw_queue_stats_t q;
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK);
    cr_assert(q.discarded == 1 && q.pending == 1, "discarded %lld pending %lld",
              (long long)q.discarded, (long long)q.pending);
}

Test(store, merge_converges_in_any_order)
{
    /* Three updates applied in all six orders end in the same row. */
    static const int order[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                    {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    static const char *const states[3] = {"created", "succeeded", "refunded"};
    static const int ranks[3] = {1, 4, 5};
    static const int64_t flags[3] = {1, 2, 4};
    for (int o = 0; o < 6; o++) {
        char id[16], state[32];
        int64_t f = 0;
        snprintf(id, sizeof id, "pi_%d", o);
        for (int k = 0; k < 3; k++) {
            int i = order[o][k];
            cr_assert_eq(gw_store_entity_merge(st, "payment", id, "acme", states[i], ranks[i],
                                               i == 1 ? "ch_1" : NULL, flags[i], 10 + k),
                         CM_OK);
            /* Every update delivered twice changes nothing. */
            cr_assert_eq(gw_store_entity_merge(st, "payment", id, "acme", states[i], ranks[i], NULL,
                                               flags[i], 10 + k),
                         CM_OK);
        }
        cr_assert_eq(gw_store_entity_state(st, "payment", id, state, sizeof state, &f), CM_OK);
        cr_assert_str_eq(state, "refunded", "order %d", o);
        cr_assert_eq(f, 7);
    }
}

static void count_cb(void *ud, cm_err_t rc, gw_ingest_t result)
{
    int *n = ud;
    cr_assert_eq(rc, CM_OK);
    __atomic_add_fetch(n, 1, __ATOMIC_RELAXED);
}

Test(store, stop_intake_commits_what_is_queued_then_refuses)
{
    enum { N = 200 };
    static gw_event_in_t evs[N];
    static char keys[N][32];
    int done = 0;
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        evs[i] = event(keys[i], "{}");
        cr_assert_eq(gw_store_ingest_async(st, &evs[i], count_cb, &done), CM_OK);
    }
    gw_store_stop_intake(st);
    cr_assert_eq(done, N, "every queued ingest reported before stop returns");
    gw_ingest_t r;
    cr_assert_eq(gw_store_ingest(st, &evs[0], &r), CM_ESTATE);
    gw_queue_stats_t q;
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK);
    cr_assert_eq(q.pending, N);
}

typedef struct {
    cm_err_t rc;
    gw_ingest_t result;
    int answered;
} outcome_t;

static void outcome_cb(void *ud, cm_err_t rc, gw_ingest_t result)
{
    outcome_t *o = ud;
    o->rc = rc;
    o->result = result;
    o->answered++;
}

/* A batch is written without a savepoint per event; one event the database refuses must
 * still fail alone, with the others of its batch stored and deduplicated as usual. */
Test(store, an_event_that_cannot_be_stored_fails_alone_in_its_batch)
{
    SQLITE_ONLY("the events are lined up into one batch behind SQLite's write lock");
    enum { N = 40, BAD = 17, DUP = 30 };
    static gw_event_in_t evs[N];
    static char keys[N][32];
    static outcome_t out[N];
    sqlite3 *other = NULL;
    /* Another connection holds the write lock while the events queue, so they meet the
     * committer as one batch rather than one by one. */
    cr_assert_eq(sqlite3_open(dbpath, &other), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i == DUP ? 3 : i);
        evs[i] = event(keys[i], "{}");
        if (i == BAD)
            evs[i].provider = NULL; /* NOT NULL in the schema: the insert fails */
        cr_assert_eq(gw_store_ingest_async(st, &evs[i], outcome_cb, &out[i]), CM_OK);
    }
    cr_assert_eq(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    gw_store_stop_intake(st);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(out[i].answered, 1, "event %d", i);
        if (i == BAD)
            cr_assert_eq(out[i].rc, CM_ESTORE);
        else
            cr_assert_eq(out[i].rc, CM_OK, "event %d", i);
        if (i != BAD)
            cr_assert_eq(out[i].result, i == DUP ? GW_INGEST_DUPLICATE : GW_INGEST_ACCEPTED,
                         "event %d", i);
    }
    gw_queue_stats_t q;
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK);
    cr_assert_eq(q.pending, N - 2, "all but the refused event and the duplicate are queued");
}

/* SQLite's auto-checkpoint is off on the writer; the store's own thread must still copy
 * the WAL into the database once it passes its mark, or the WAL would only grow. */
Test(store, the_wal_is_checkpointed_into_the_database_while_open)
{
    SQLITE_ONLY("WAL checkpoints of the database file");
    enum { N = 4500, BODY = 8000 }; /* about 9000 WAL pages, past the 8000-page mark */
    static gw_event_in_t evs[N];
    static char keys[N][16];
    static char body[BODY + 16];
    int done = 0;
    struct stat sb;
    snprintf(body, sizeof body, "{\"x\":\"%0*d\"}", BODY, 0);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "w%d", i);
        evs[i] = event(keys[i], body);
        cr_assert_eq(gw_store_ingest_async(st, &evs[i], count_cb, &done), CM_OK);
    }
    gw_store_stop_intake(st);
    cr_assert_eq(done, N);
    /* The checkpoint runs beside the writer: wait for the database file to hold the
     * events (it is a few pages until a checkpoint copies the WAL into it). */
    off_t want = (off_t)N * BODY / 2;
    struct timespec nap = {0, 20 * 1000 * 1000};
    for (int i = 0; i < 1500 && (stat(dbpath, &sb) != 0 || sb.st_size < want); i++)
        nanosleep(&nap, NULL);
    cr_assert_eq(stat(dbpath, &sb), 0);
    cr_assert_geq(sb.st_size, want, "database %lld bytes after 30 s", (long long)sb.st_size);
}

/* A saga's save with call_state also sets the call entity, in the same transaction; a
 * save without it leaves the call alone. */
Test(store, saga_put_sets_the_calls_state_with_the_saga)
{
    char state[32];
    gw_saga_t sg, back;
    memset(&sg, 0, sizeof sg);
    snprintf(sg.id, sizeof sg.id, "call_9");
    snprintf(sg.tenant_id, sizeof sg.tenant_id, "acme");
    snprintf(sg.state, sizeof sg.state, "booked");
    snprintf(sg.booking_uid, sizeof sg.booking_uid, "uid-9");
    sg.deadline_ms = 9000;
    cr_assert_eq(gw_store_saga_put(st, &sg, "book", "done", NULL, 1000), CM_OK);
    cr_assert_eq(gw_store_entity_state(st, "call", "call_9", state, sizeof state, NULL),
                 CM_ENOTFOUND);
    snprintf(sg.state, sizeof sg.state, "completed");
    snprintf(sg.call_state, sizeof sg.call_state, "booked");
    cr_assert_eq(gw_store_saga_put(st, &sg, "confirm", "done", NULL, 2000), CM_OK);
    cr_assert_eq(gw_store_entity_state(st, "call", "call_9", state, sizeof state, NULL), CM_OK);
    cr_assert_str_eq(state, "booked");
    cm_buf_t b;
    cm_buf_init(&b, 1 << 16);
    cr_assert_eq(gw_store_entity_json(st, "call", "call_9", &b), CM_OK);
    cr_assert(strstr(b.data, "\"ref\":\"uid-9\""), "%s", b.data);
    cr_assert(strstr(b.data, "\"tenant_id\":\"acme\""), "%s", b.data);
    cm_buf_free(&b);
    cr_assert_eq(gw_store_saga_get(st, "call_9", &back), CM_OK);
    cr_assert_str_eq(back.state, "completed");
    cr_assert_str_eq(back.call_state, "", "not a stored column");
}

/* The count of a list view's rows, and whether every one is tenant's. */
static json_int_t rows_of(cm_buf_t *b, const char *key, const char *tenant)
{
    json_t *v = json_loads(b->data, 0, NULL);
    cr_assert_not_null(v, "%s", b->data);
    json_t *e;
    size_t i;
    json_array_foreach(json_object_get(v, key), i, e)
        cr_assert_str_eq(json_string_value(json_object_get(e, "tenant_id")), tenant, "%s", b->data);
    json_int_t n = json_integer_value(json_object_get(v, "count"));
    cr_assert_eq((size_t)n, json_array_size(json_object_get(v, key)), "%s", b->data);
    json_decref(v);
    cm_buf_reset(b);
    return n;
}

/* A list for one tenant (a scoped admin token's) is filtered before its limit: acme's
 * rows come after many of globex's and are still found. It used to be filtered after a
 * read of 10,000 rows, which found none of them past that. */
Test(store, a_tenants_lists_are_filtered_before_the_limit)
{
    char key[64], call[32];
    gw_ingest_t r;
    for (int i = 0; i < 40; i++) {
        const char *tenant = i < 37 ? "globex" : "acme";
        snprintf(key, sizeof key, "retell:call_%d:call_analyzed", i);
        snprintf(call, sizeof call, "call_%d", i);
        gw_event_in_t ev = event(key, "{}");
        ev.entity_id = call;
        ev.tenant_id = tenant;
        cr_assert_eq(gw_store_ingest(st, &ev, &r), CM_OK);
        gw_saga_t sg;
        memset(&sg, 0, sizeof sg);
        snprintf(sg.id, sizeof sg.id, "%s", call);
        snprintf(sg.tenant_id, sizeof sg.tenant_id, "%s", tenant);
        snprintf(sg.state, sizeof sg.state, "booked");
        sg.deadline_ms = 9000;
        cr_assert_eq(gw_store_saga_put(st, &sg, "book", "done", NULL, 1000 + i), CM_OK);
    }
    cm_buf_t b;
    cm_buf_init(&b, 1 << 20);
    cr_assert_eq(gw_store_events_json(st, NULL, NULL, "acme", 2, &b), CM_OK);
    cr_assert_eq(rows_of(&b, "events", "acme"), 2);
    cr_assert_eq(gw_store_events_json(st, "retell", NULL, "acme", 10, &b), CM_OK);
    cr_assert_eq(rows_of(&b, "events", "acme"), 3);
    cr_assert_eq(gw_store_events_json(st, NULL, "call_38", "globex", 10, &b), CM_OK);
    cr_assert_eq(rows_of(&b, "events", "globex"), 0, "another tenant's entity");
    cr_assert_eq(gw_store_jobs_json(st, "pending", "acme", 2, &b), CM_OK);
    cr_assert_eq(rows_of(&b, "jobs", "acme"), 2);
    cr_assert_eq(gw_store_jobs_json(st, NULL, "acme", 10, &b), CM_OK);
    cr_assert_eq(rows_of(&b, "jobs", "acme"), 3);
    cr_assert_eq(gw_store_sagas_json(st, "booked", "acme", 1, &b), CM_OK);
    cr_assert_eq(rows_of(&b, "sagas", "acme"), 1);
    cr_assert_eq(gw_store_sagas_json(st, NULL, "acme", 10, &b), CM_OK);
    cr_assert_eq(rows_of(&b, "sagas", "acme"), 3);
    cr_assert_eq(gw_store_sagas_json(st, NULL, "initech", 10, &b), CM_OK);
    cr_assert_eq(rows_of(&b, "sagas", "initech"), 0);
    /* Without a tenant, every tenant's. */
    cr_assert_eq(gw_store_events_json(st, NULL, NULL, NULL, 100, &b), CM_OK);
    json_t *v = json_loads(b.data, 0, NULL);
    cr_assert_eq(json_integer_value(json_object_get(v, "count")), 40);
    json_decref(v);
    cm_buf_free(&b);
}

/* Refuses (refuse) or allows again any write that sets an entity's state to "failed", from
 * another connection: the schema changes under the store, as a failing disk would refuse
 * one statement and not the next. */
static void refuse_failed_state(int refuse)
{
    sqlite3 *other = NULL;
    cr_assert_eq(sqlite3_open(dbpath, &other), SQLITE_OK);
    const char *sql = refuse ? "CREATE TRIGGER refuse_i BEFORE INSERT ON entities WHEN "
                               "NEW.state='failed' BEGIN SELECT RAISE(ABORT,'refused'); END;"
                               "CREATE TRIGGER refuse_u BEFORE UPDATE ON entities WHEN "
                               "NEW.state='failed' BEGIN SELECT RAISE(ABORT,'refused'); END;"
                             : "DROP TRIGGER refuse_i; DROP TRIGGER refuse_u;";
    cr_assert_eq(sqlite3_exec(other, sql, NULL, NULL, NULL), SQLITE_OK, "%s",
                 sqlite3_errmsg(other));
    sqlite3_close(other);
}

/* A saga's dead letter and its call's state are one transaction: when the call's write is
 * refused the job is not dead-lettered either (it stays running under its lease, to run
 * again), and when it goes through a reader sees both. */
Test(store, job_dead_call_writes_the_dead_letter_and_the_calls_state_together)
{
    SQLITE_ONLY("the refused write is a trigger made through a sqlite3 connection");
    gw_ingest_t r;
    gw_job_t j;
    gw_queue_stats_t q;
    int64_t next;
    char state[32];
    gw_event_in_t a = event("retell:call_1:call_analyzed", "{}");
    cr_assert_eq(gw_store_ingest(st, &a, &r), CM_OK);
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &j, &next), CM_OK);
    cr_assert_eq(gw_store_entity_merge(st, "call", "call_1", "acme", NULL, 0, NULL, 4, 2000),
                 CM_OK);
    refuse_failed_state(1);
    cr_assert_eq(gw_store_job_dead_call(st, j.id, "poison", "call_1", "acme", "failed", 2001),
                 CM_ESTORE);
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK);
    cr_assert(q.dead == 0 && q.running == 1, "dead %lld running %lld", (long long)q.dead,
              (long long)q.running);
    cr_assert_eq(gw_store_entity_state(st, "call", "call_1", state, sizeof state, NULL), CM_OK);
    cr_assert_str_eq(state, "received");
    refuse_failed_state(0);
    cr_assert_eq(gw_store_job_dead_call(st, j.id, "poison", "call_1", "acme", "failed", 2002),
                 CM_OK);
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK);
    cr_assert(q.dead == 1 && q.running == 0, "dead %lld running %lld", (long long)q.dead,
              (long long)q.running);
    cr_assert_eq(gw_store_entity_state(st, "call", "call_1", state, sizeof state, NULL), CM_OK);
    cr_assert_str_eq(state, "failed");
    cm_buf_t b;
    cm_buf_init(&b, 1 << 16);
    cr_assert_eq(gw_store_entity_json(st, "call", "call_1", &b), CM_OK);
    cr_assert(strstr(b.data, "\"error\":\"poison\""), "%s", b.data);
    cr_assert(strstr(b.data, "\"tenant_id\":\"acme\""), "%s", b.data);
    cm_buf_free(&b);
    char err[256];
    job_error(j.id, err, sizeof err);
    cr_assert_str_eq(err, "poison");
    gw_store_job_free(&j);
}

Test(store, flags_only_merge_keeps_the_worker_state)
{
    char state[32];
    int64_t f = 0;
    cr_assert_eq(gw_store_entity_merge(st, "call", "c1", "acme", NULL, 0, NULL, 2, 1), CM_OK);
    cr_assert_eq(gw_store_entity_set(st, "call", "c1", NULL, "booked", "uid-9", NULL, 2), CM_OK);
    cr_assert_eq(gw_store_entity_merge(st, "call", "c1", NULL, NULL, 0, NULL, 1, 3), CM_OK);
    cr_assert_eq(gw_store_entity_merge(st, "call", "c1", NULL, NULL, 0, NULL, 1, 4), CM_OK);
    cr_assert_eq(gw_store_entity_state(st, "call", "c1", state, sizeof state, &f), CM_OK);
    cr_assert_str_eq(state, "booked");
    cr_assert_eq(f, 3);
}

Test(store, claim_returns_the_senders_traceparent)
{
    gw_ingest_t r;
    gw_job_t job;
    int64_t next;
    gw_event_in_t ev = event("tp", "{}");
    ev.headers = "{\"x-retell-signature\":\"v=1,d=ab\",\"traceparent\":"
                 "\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\"}";
    cr_assert_eq(gw_store_ingest(st, &ev, &r), CM_OK);
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &job, &next), CM_OK);
    cr_assert_str_eq(job.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    gw_store_job_free(&job);
}

/* The events and jobs tables as schema version 2 made them. */
static const char *const v2_schema =
    "CREATE TABLE events(id INTEGER PRIMARY KEY, provider TEXT NOT NULL,"
    " event_key TEXT NOT NULL UNIQUE, alt_key TEXT UNIQUE, event_type TEXT NOT NULL,"
    " entity_id TEXT, tenant_id TEXT, job_kind TEXT, received_at_ms INTEGER NOT NULL,"
    " headers TEXT, body BLOB NOT NULL, duplicates INTEGER NOT NULL DEFAULT 0,"
    " last_duplicate_at_ms INTEGER);"
    "CREATE TABLE jobs(id INTEGER PRIMARY KEY, event_id INTEGER NOT NULL REFERENCES events(id),"
    " kind TEXT NOT NULL, entity_id TEXT, tenant_id TEXT, state TEXT NOT NULL DEFAULT 'pending',"
    " attempts INTEGER NOT NULL DEFAULT 0, next_at_ms INTEGER NOT NULL, last_error TEXT,"
    " created_at_ms INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL);"
    "CREATE INDEX jobs_entity ON jobs(entity_id, state);"
    "INSERT INTO events(provider,event_key,event_type,entity_id,job_kind,received_at_ms,body)"
    " VALUES('retell','k','call_analyzed','call_1','retell.call_analyzed',1000,'{}');"
    "INSERT INTO jobs(event_id,kind,entity_id,state,attempts,next_at_ms,last_error,"
    "created_at_ms,updated_at_ms) VALUES(1,'retell.call_analyzed','call_1','running',2,1000,"
    "'HTTP 500',1000,1500);"
    "PRAGMA user_version=2;";

/* 1 if the database at path has an index of that name. */
static int has_index(const char *path, const char *name)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    int found = 0;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type='index' AND name=?", -1, &q,
                           NULL) == SQLITE_OK &&
        sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC) == SQLITE_OK)
        found = sqlite3_step(q) == SQLITE_ROW;
    sqlite3_finalize(q);
    sqlite3_close(db);
    return found;
}

static int user_version(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    int v = -1;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        v = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

Test(store, a_version_2_database_is_migrated_and_keeps_its_jobs)
{
    SQLITE_ONLY("SQLite's schema versions 2-4 (PRAGMA user_version) on a file");
    char path[128], err[CM_ERR_LEN] = "", why[256];
    sqlite3 *db = NULL;
    gw_store_t *old = NULL;
    int requeued = -1;
    snprintf(path, sizeof path, "%s/v2.db", dir);
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, v2_schema, NULL, NULL, NULL), SQLITE_OK, "%s",
                 sqlite3_errmsg(db));
    sqlite3_close(db);
    cr_assert_eq(gw_store_open(path, 1, &old, err), CM_OK, "%s", err);
    cr_assert_eq(user_version(path), 8);
    /* Version 4: the whole-table entity index of jobs gives way to one of running jobs. */
    cr_assert(!has_index(path, "jobs_entity"));
    cr_assert(has_index(path, "jobs_running") && has_index(path, "jobs_event"));
    /* The job left running by the old gateway is recovered with the new columns. */
    cr_assert_eq(gw_store_recover(old, 2, 2000, &requeued), CM_OK);
    store_job_error(old, 1, why, sizeof why);
    cr_assert_str_eq(why, "interrupted by a restart on attempt 2 of 2; previous error: HTTP 500");
    gw_store_close(&old);
    /* Opening it again changes nothing. */
    cr_assert_eq(gw_store_open(path, 1, &old, err), CM_OK, "%s", err);
    cr_assert_eq(user_version(path), 8);
    gw_store_close(&old);
}

Test(store, a_database_from_a_newer_gateway_is_refused)
{
    SQLITE_ONLY("PRAGMA user_version of a file; PostgreSQL: pg_schema_newer_is_refused");
    char path[128], err[CM_ERR_LEN] = "";
    sqlite3 *db = NULL;
    gw_store_t *newer = NULL;
    snprintf(path, sizeof path, "%s/v99.db", dir);
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    cr_assert_eq(gw_store_open(path, 1, &newer, err), CM_ESTATE);
    cr_assert_null(newer);
    cr_assert(strstr(err, "schema version 99 is newer"), "%s", err);
    cr_assert_eq(user_version(path), 99, "left as it was");
}

Test(store, a_current_schema_is_opened_without_writing)
{
    SQLITE_ONLY("the migration's write transaction on a SQLite file");
    /* Another connection holds the write lock, as a full disk would refuse the write: a
     * store whose schema is current must open without it (it used to rewrite the version
     * in a write transaction, and a restart on a full disk exited there). */
    char path[128], err[CM_ERR_LEN] = "";
    gw_store_t *s = NULL;
    sqlite3 *db = NULL;
    snprintf(path, sizeof path, "%s/current.db", dir);
    cr_assert_eq(gw_store_open(path, 1, &s, err), CM_OK, "%s", err);
    gw_store_close(&s);
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK, "%s",
                 sqlite3_errmsg(db));
    int64_t t0 = cm_clock_mono_ms();
    cm_err_t rc = gw_store_open(path, 1, &s, err);
    int64_t took = cm_clock_mono_ms() - t0;
    cr_assert_eq(rc, CM_OK, "%s", err);
    /* Waiting for the lock would take the busy timeout (10 s). */
    cr_assert_lt(took, 5000, "open took %lld ms", (long long)took);
    gw_store_close(&s);
    cr_assert_eq(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    cr_assert_eq(user_version(path), 8);
}

Test(store, a_store_that_can_write_reports_itself_writable)
{
    gw_ingest_t r;
    gw_event_in_t a = event("w1", "{}");
    /* Idle: answered by a probe. */
    cr_assert_eq(gw_store_writable(st), 1);
    cr_assert_eq(gw_store_ingest(st, &a, &r), CM_OK);
    /* After a commit: answered from its outcome. */
    cr_assert_eq(gw_store_writable(st), 1);
    cr_assert_eq(gw_store_ingest(st, &a, &r), CM_OK, "the probe changed nothing");
    cr_assert_eq(r, GW_INGEST_DUPLICATE);
}

#ifdef GW_STORE_PG
/* ---- PostgreSQL only: several instances on one database ----------------------------- */

#define PG_ONLY()                                                                                  \
    do {                                                                                           \
        if (!on_pg())                                                                              \
            cr_skip_test("PostgreSQL only (GW_STORE_TEST_BACKEND=postgres)");                      \
    } while (0)

enum { LANES = 4, PER_LANE = 6 };

typedef struct {
    gw_store_t *store;
    pthread_barrier_t *bar;
    int *running; /* per lane, jobs being worked on now (atomic) */
    int *claimed; /* per job id, times claimed (atomic) */
    int overlaps; /* claims that found their lane busy */
    int done;
} instance_t;

static void *work(void *arg)
{
    instance_t *in = arg;
    struct timespec nap = {0, 2 * 1000 * 1000};
    pthread_barrier_wait(in->bar);
    for (int idle = 0; idle < 50;) {
        gw_job_t job;
        int64_t next;
        cm_err_t rc = gw_store_claim(in->store, 2000, LEASE, &job, &next);
        if (rc == CM_ENOTFOUND) {
            idle++;
            nanosleep(&nap, NULL);
            continue;
        }
        cr_assert_eq(rc, CM_OK);
        idle = 0;
        int lane = atoi(job.entity_id + 5); /* "lane_N" */
        cr_assert(job.id > 0 && job.id <= LANES * PER_LANE);
        __atomic_add_fetch(&in->claimed[job.id], 1, __ATOMIC_SEQ_CST);
        if (__atomic_add_fetch(&in->running[lane], 1, __ATOMIC_SEQ_CST) != 1)
            in->overlaps++;
        nanosleep(&nap, NULL); /* the other instance claims meanwhile */
        __atomic_sub_fetch(&in->running[lane], 1, __ATOMIC_SEQ_CST);
        cr_assert_eq(gw_store_job_done(in->store, job.id, 2001), CM_OK);
        in->done++;
        gw_store_job_free(&job);
    }
    return NULL;
}

/* Two instances claiming at once never take one job twice, and never run two jobs of one
 * entity at the same time. */
Test(store, pg_two_instances_never_share_a_job_or_an_entity)
{
    PG_ONLY();
    static gw_event_in_t evs[LANES * PER_LANE];
    static char keys[LANES * PER_LANE][16], ents[LANES][16];
    int running[LANES] = {0}, claimed[LANES * PER_LANE + 1] = {0};
    gw_ingest_t r;
    char err[CM_ERR_LEN] = "";
    for (int l = 0; l < LANES; l++)
        snprintf(ents[l], sizeof ents[l], "lane_%d", l);
    for (int i = 0; i < LANES * PER_LANE; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        evs[i] = event(keys[i], "{}");
        evs[i].entity_id = ents[i % LANES];
        cr_assert_eq(gw_store_ingest(st, &evs[i], &r), CM_OK);
    }
    gw_store_t *other = NULL;
    cr_assert_eq(open_store(&other, err), CM_OK, "%s", err);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 4);
    instance_t in[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        /* two workers per instance, as a gateway with two worker threads */
        in[i] = (instance_t){
            .store = i % 2 ? other : st, .bar = &bar, .running = running, .claimed = claimed};
        pthread_create(&th[i], NULL, work, &in[i]);
    }
    int done = 0, overlaps = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        done += in[i].done;
        overlaps += in[i].overlaps;
    }
    pthread_barrier_destroy(&bar);
    gw_store_close(&other);
    cr_assert_eq(overlaps, 0, "%d claims found their entity busy", overlaps);
    cr_assert_eq(done, LANES * PER_LANE);
    for (int i = 1; i <= LANES * PER_LANE; i++)
        cr_assert_eq(claimed[i], 1, "job %d claimed %d times", i, claimed[i]);
    cr_assert(in[0].done + in[2].done > 0 && in[1].done + in[3].done > 0, "both instances worked");
}

/* An instance that dies holding a job: its lease expires and the other instance takes the
 * job over (reclaim, then claim), while a live lease is left alone. */
Test(store, pg_an_expired_lease_is_taken_over_by_the_other_instance)
{
    PG_ONLY();
    gw_ingest_t r;
    gw_job_t a, b;
    int64_t next;
    int requeued = -1;
    char err[CM_ERR_LEN] = "";
    gw_event_in_t ev = event("a", "{}");
    cr_assert_eq(gw_store_ingest(st, &ev, &r), CM_OK);
    gw_store_t *other = NULL;
    cr_assert_eq(open_store(&other, err), CM_OK, "%s", err);
    cr_assert_eq(gw_store_claim(st, 2000, 1000, &a, &next), CM_OK); /* leased until 3000 */
    cr_assert_eq(gw_store_claim(other, 2500, 1000, &b, &next), CM_ENOTFOUND);
    /* The other instance starts: its recovery leaves a live lease alone. */
    cr_assert_eq(gw_store_recover(other, 6, 2500, &requeued), CM_OK);
    cr_assert_eq(requeued, 0, "a live instance's job is not recovered by another");
    cr_assert_eq(gw_store_reclaim(other, 2999, 1000, NULL, 0, &requeued), CM_OK);
    cr_assert_eq(requeued, 0);
    cr_assert_eq(gw_store_reclaim(other, 3000, 1000, NULL, 0, &requeued), CM_OK);
    cr_assert_eq(requeued, 1);
    cr_assert_eq(gw_store_claim(other, 3000, 1000, &b, &next), CM_OK);
    cr_assert_eq(b.id, a.id);
    cr_assert_eq(b.attempts, 2);
    cr_assert_str_eq(b.body.data, "{}");
    cr_assert_eq(gw_store_job_done(other, b.id, 3001), CM_OK);
    gw_store_job_free(&a);
    gw_store_job_free(&b);
    gw_store_close(&other);
}

/* Waits until the server has no backend of the store's left (terminated ones exit a
 * moment after pg_terminate_backend returns). */
static void pg_drop_store_connections(void)
{
    PGconn *c = pg_admin();
    pg_run(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
              "application_name='bookbench-gateway' AND pid<>pg_backend_pid()");
    struct timespec nap = {0, 20 * 1000 * 1000};
    for (int i = 0;; i++) {
        PGresult *r = PQexec(c, "SELECT count(*) FROM pg_stat_activity WHERE "
                                "application_name='bookbench-gateway'");
        int n = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : -1;
        PQclear(r);
        if (n == 0)
            break;
        cr_assert(i < 250, "the store's backends are still there after 5 s");
        nanosleep(&nap, NULL);
    }
    PQfinish(c);
}

/* The server drops the store's connections (as a restart does): the next call of each
 * kind fails with a store error (the intake answers 503, readiness reports the store
 * failing), and the one after succeeds on a new connection. */
Test(store, pg_dropped_connections_fail_one_call_then_reconnect)
{
    PG_ONLY();
    gw_ingest_t r;
    gw_queue_stats_t q;
    gw_job_t job;
    int64_t next;
    gw_event_in_t a = event("a", "{}"), b = event("b", "{}");
    cr_assert_eq(gw_store_ingest(st, &a, &r), CM_OK);
    pg_drop_store_connections();
    /* A read is sent again on a new connection (nothing to undo), so readiness and the
     * admin views see a server that is up as up; a write fails once (it may not be safe to
     * send again) and its caller retries. */
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK, "a read reconnects by itself");
    cr_assert_eq(q.pending, 1);
    cr_assert_eq(gw_store_ingest(st, &b, &r), CM_ESTORE, "not stored: the sender retries");
    cr_assert_eq(gw_store_ingest(st, &b, &r), CM_OK);
    cr_assert_eq(r, GW_INGEST_ACCEPTED);
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &job, &next), CM_ESTORE);
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &job, &next), CM_OK);
    cr_assert_eq(gw_store_job_done(st, job.id, 2001), CM_OK);
    gw_store_job_free(&job);
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK);
    cr_assert(q.pending == 1 && q.done == 1, "pending %lld done %lld", (long long)q.pending,
              (long long)q.done);
}

Test(store, pg_schema_newer_is_refused)
{
    PG_ONLY();
    gw_store_t *newer = NULL;
    char err[CM_ERR_LEN] = "";
    PGconn *c = pg_admin();
    pg_run(c, "INSERT INTO gw_schema_version(version) VALUES(99)");
    PQfinish(c);
    cr_assert_eq(open_store(&newer, err), CM_ESTATE);
    cr_assert_null(newer);
    cr_assert(strstr(err, "schema version 99 is newer"), "%s", err);
}
#endif

/* ---- shared by the instances on one store: rate buckets and notices ------------------- */

/* One bucket through the store. SQLite shares nothing: the caller keeps its own bucket
 * (CM_EAGAIN). PostgreSQL: the burst at once, then reservations queued at the rate, a
 * refusal that leaves the bucket as it was, a refund that shortens the queue. Waits are
 * measured by the server's clock, which moves on while the test runs: each is at most
 * what the queue says and at least that less the time the test has taken. */
Test(store, a_rate_bucket_through_the_store_or_none_on_sqlite)
{
    int taken = -1;
    int64_t wait = -1;
    if (!on_pg()) {
        cr_assert_eq(gw_store_rl_take(st, "calcom:k", 1, 3, 0, &taken, &wait), CM_EAGAIN);
        cr_assert(taken == 0 && wait == 0);
        cr_assert_eq(gw_store_rl_refund(st, "calcom:k", 1, 3), CM_EAGAIN);
        return;
    }
    cr_assert_eq(gw_store_rl_take(st, "calcom:k", 0, 3, 0, &taken, &wait), CM_EINVAL);
    int64_t t0 = cm_clock_mono_ms();
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(gw_store_rl_take(st, "calcom:k", 1, 3, 0, &taken, &wait), CM_OK);
        cr_assert(taken == 1 && wait == 0, "token %d: taken %d wait %lld", i, taken,
                  (long long)wait);
    }
    /* 1 token per second: the next one is a second away, which a caller that may not wait
     * is told, and the bucket keeps. */
    cr_assert_eq(gw_store_rl_take(st, "calcom:k", 1, 3, 0, &taken, &wait), CM_OK);
    cr_assert_eq(taken, 0);
    int64_t spent = cm_clock_mono_ms() - t0;
    cr_assert(wait <= 1000 && wait >= 1000 - spent - 1, "wait %lld, %lld ms spent", (long long)wait,
              (long long)spent);
    for (int k = 1; k <= 3; k++) {
        cr_assert_eq(gw_store_rl_take(st, "calcom:k", 1, 3, 10000, &taken, &wait), CM_OK);
        spent = cm_clock_mono_ms() - t0;
        cr_assert(taken == 1 && wait <= 1000 * k && wait >= 1000 * k - spent - 1,
                  "reservation %d: taken %d wait %lld, %lld ms spent", k, taken, (long long)wait,
                  (long long)spent);
    }
    /* Past the longest wait allowed: refused. */
    cr_assert_eq(gw_store_rl_take(st, "calcom:k", 1, 3, 2500, &taken, &wait), CM_OK);
    cr_assert_eq(taken, 0);
    /* A refund shortens the queue by one token. */
    cr_assert_eq(gw_store_rl_refund(st, "calcom:k", 1, 3), CM_OK);
    cr_assert_eq(gw_store_rl_take(st, "calcom:k", 1, 3, 10000, &taken, &wait), CM_OK);
    spent = cm_clock_mono_ms() - t0;
    cr_assert(taken == 1 && wait <= 3000 && wait >= 3000 - spent - 1, "wait %lld, %lld ms spent",
              (long long)wait, (long long)spent);
    /* Another key is another bucket. */
    cr_assert_eq(gw_store_rl_take(st, "stripe:k", 1, 1, 0, &taken, &wait), CM_OK);
    cr_assert(taken == 1 && wait == 0);
    cr_assert_eq(gw_store_rl_refund(st, "unknown", 1, 1), CM_OK, "nothing to give back to");
}

/* Notices: SQLite has nobody to hear from or tell, and says so by doing nothing. */
static void no_notice(void *ud, gw_notice_t what, const char *detail)
{
    (void)ud, (void)what, (void)detail;
    cr_assert_fail("a notice on SQLite");
}

Test(store, notices_on_sqlite_go_nowhere)
{
    SQLITE_ONLY("PostgreSQL delivers notices (pg_notices_* tests)");
    cr_assert_eq(gw_store_on_notice(st, no_notice, NULL), CM_OK);
    cr_assert_eq(gw_store_publish(st, GW_NOTICE_SLOTS, "101"), CM_OK);
    cr_assert_eq(gw_store_publish(st, GW_NOTICE_JOBS, NULL), CM_OK);
    gw_store_off_notice(st, no_notice, NULL);
}

#ifdef GW_STORE_PG
/* Two instances taking from one bucket as fast as they can, with two threads each, for
 * 1.5 s: together they get what one bucket gives in that time (burst + rate x time, timed
 * from before the first take to after the last), never twice that as two buckets would,
 * and both get some. */
typedef struct {
    gw_store_t *store;
    pthread_barrier_t *bar;
    int64_t until;
    int granted;
} taker_t;

static void *take_all(void *arg)
{
    taker_t *t = arg;
    pthread_barrier_wait(t->bar);
    while (cm_clock_mono_ms() < t->until) {
        int taken = 0;
        int64_t wait = 0;
        cr_assert_eq(gw_store_rl_take(t->store, "calcom:shared", 20, 5, 0, &taken, &wait), CM_OK);
        t->granted += taken;
    }
    return NULL;
}

Test(store, pg_two_instances_taking_from_one_bucket_never_exceed_its_limit)
{
    PG_ONLY();
    char err[CM_ERR_LEN] = "";
    gw_store_t *other = NULL;
    cr_assert_eq(open_store(&other, err), CM_OK, "%s", err);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 5);
    taker_t t[4];
    pthread_t th[4];
    int64_t start = cm_clock_mono_ms();
    for (int i = 0; i < 4; i++) {
        t[i] = (taker_t){.store = i % 2 ? other : st, .bar = &bar, .until = start + 1500};
        pthread_create(&th[i], NULL, take_all, &t[i]);
    }
    pthread_barrier_wait(&bar);
    int granted = 0, per[2] = {0, 0};
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        granted += t[i].granted;
        per[i % 2] += t[i].granted;
    }
    int64_t elapsed = cm_clock_mono_ms() - start;
    pthread_barrier_destroy(&bar);
    gw_store_close(&other);
    double most = 5 + 20.0 * (double)elapsed / 1000.0;
    cr_log_info("%d tokens (%d + %d) in %lld ms; one bucket gives at most %.1f", granted, per[0],
                per[1], (long long)elapsed, most);
    cr_assert_leq(granted, (int)most, "%d tokens in %lld ms: one bucket gives at most %.1f",
                  granted, (long long)elapsed, most);
    cr_assert_geq(granted, 5 + 15, "%d tokens in %lld ms: the bucket refills", granted,
                  (long long)elapsed);
    cr_assert(per[0] > 0 && per[1] > 0, "both instances got tokens: %d and %d", per[0], per[1]);
}

/* Waiting callers of two instances are queued in one line: each reservation is one token
 * period after the one before, whichever instance made it. */
Test(store, pg_reservations_of_two_instances_are_queued_in_one_line)
{
    PG_ONLY();
    char err[CM_ERR_LEN] = "";
    gw_store_t *other = NULL;
    int taken = 0;
    int64_t wait = -1;
    cr_assert_eq(open_store(&other, err), CM_OK, "%s", err);
    int64_t t0 = cm_clock_mono_ms();
    cr_assert_eq(gw_store_rl_take(st, "stripe:q", 10, 1, 5000, &taken, &wait), CM_OK);
    cr_assert(taken == 1 && wait == 0);
    for (int k = 1; k <= 6; k++) {
        gw_store_t *s = k % 2 ? other : st;
        cr_assert_eq(gw_store_rl_take(s, "stripe:q", 10, 1, 5000, &taken, &wait), CM_OK);
        int64_t spent = cm_clock_mono_ms() - t0;
        cr_assert(taken == 1 && wait <= 100 * k && wait >= 100 * k - spent - 1,
                  "reservation %d: taken %d wait %lld, %lld ms spent", k, taken, (long long)wait,
                  (long long)spent);
    }
    gw_store_close(&other);
}

/* What a notice callback saw, in order. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    struct {
        gw_notice_t what;
        char detail[32]; /* "" for none */
    } ev[64];
} notices_t;

static void record(void *ud, gw_notice_t what, const char *detail)
{
    notices_t *r = ud;
    pthread_mutex_lock(&r->mu);
    if (r->n < 64) {
        r->ev[r->n].what = what;
        snprintf(r->ev[r->n].detail, sizeof r->ev[r->n].detail, "%s", detail ? detail : "");
        r->n++;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void notices_init(notices_t *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

/* The index of the first notice at or after from about what with detail ("" for none),
 * waiting for it up to 10 s; -1 when it did not come. */
static int await_notice(notices_t *r, int from, gw_notice_t what, const char *detail)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    int found = -1;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        for (int i = from; found < 0 && i < r->n; i++)
            if (r->ev[i].what == what && !strcmp(r->ev[i].detail, detail))
                found = i;
        if (found >= 0 || pthread_cond_timedwait(&r->cv, &r->mu, &dl) != 0)
            break;
    }
    for (int i = from; found < 0 && i < r->n; i++) /* arrived with the timeout */
        if (r->ev[i].what == what && !strcmp(r->ev[i].detail, detail))
            found = i;
    pthread_mutex_unlock(&r->mu);
    return found;
}

static int notices_count(notices_t *r, gw_notice_t what, const char *detail)
{
    int n = 0;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n; i++)
        n += r->ev[i].what == what && !strcmp(r->ev[i].detail, detail);
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Notices one instance publishes reach the others, in the order sent, and not itself; a
 * re-run on one wakes the other's workers (NOTIFY in the re-run's transaction); once
 * unregistered a callback hears nothing more. */
Test(store, pg_notices_reach_the_other_instances_and_not_the_sender)
{
    PG_ONLY();
    char err[CM_ERR_LEN] = "";
    gw_store_t *other = NULL;
    notices_t a, a2;
    notices_init(&a);
    notices_init(&a2);
    cr_assert_eq(open_store(&other, err), CM_OK, "%s", err);
    /* A finished job to re-run later; stored before anyone listens, so that the only jobs
     * notice below is the re-run's (an ingest may send one too). */
    gw_ingest_t r;
    gw_job_t j;
    int64_t next, rerun = 0;
    gw_event_in_t ev = event("a", "{}");
    cr_assert_eq(gw_store_ingest(st, &ev, &r), CM_OK);
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &j, &next), CM_OK);
    cr_assert_eq(gw_store_job_done(st, j.id, 2001), CM_OK);
    cr_assert_eq(gw_store_on_notice(st, record, &a), CM_OK);
    /* Listening: it says so once for each kind, standing for anything sent before. */
    cr_assert_geq(await_notice(&a, 0, GW_NOTICE_JOBS, ""), 0, "no first wake-up");
    int mark = await_notice(&a, 0, GW_NOTICE_SLOTS, "");
    cr_assert_geq(mark, 0, "no first invalidation");
    cr_assert_eq(gw_store_publish(st, GW_NOTICE_SLOTS, "101"), CM_OK); /* its own */
    cr_assert_eq(gw_store_publish(other, GW_NOTICE_SLOTS, "102"), CM_OK);
    int at = await_notice(&a, mark + 1, GW_NOTICE_SLOTS, "102");
    cr_assert_gt(at, mark, "the other instance's notice did not come");
    cr_assert_eq(notices_count(&a, GW_NOTICE_SLOTS, "101"), 0, "its own notice came back");
    /* A re-run by the other instance, committed: the workers here are woken. */
    cr_assert_eq(gw_store_event_rerun(other, j.event_id, 3000, &rerun), CM_OK);
    cr_assert_gt(await_notice(&a, at + 1, GW_NOTICE_JOBS, ""), at, "no wake-up for the re-run");
    gw_store_job_free(&j);
    /* A callback registered while the store listens is told at once that it may have
     * missed something (it could not hear what came before). */
    cr_assert_eq(gw_store_on_notice(st, record, &a2), CM_OK);
    pthread_mutex_lock(&a2.mu);
    cr_assert(a2.n == 2 && a2.ev[0].what == GW_NOTICE_JOBS && a2.ev[1].what == GW_NOTICE_SLOTS &&
                  !a2.ev[1].detail[0],
              "%d notices during the registration", a2.n);
    pthread_mutex_unlock(&a2.mu);
    /* Unregistered: the second callback still hears; the first does not. */
    gw_store_off_notice(st, record, &a);
    pthread_mutex_lock(&a.mu);
    int before = a.n;
    pthread_mutex_unlock(&a.mu);
    cr_assert_eq(gw_store_publish(other, GW_NOTICE_SLOTS, "103"), CM_OK);
    cr_assert_geq(await_notice(&a2, 0, GW_NOTICE_SLOTS, "103"), 0);
    pthread_mutex_lock(&a.mu);
    cr_assert_eq(a.n, before, "an unregistered callback was called");
    pthread_mutex_unlock(&a.mu);
    gw_store_off_notice(st, record, &a2);
    gw_store_close(&other);
}

/* The server drops the listener's connection: it connects again and, since what was sent
 * meanwhile is lost, says once for each kind that anything may have changed; then it hears
 * the other instances again. */
Test(store, pg_the_listener_reconnects_and_says_notices_may_have_been_missed)
{
    PG_ONLY();
    char err[CM_ERR_LEN] = "";
    gw_store_t *other = NULL;
    notices_t a;
    notices_init(&a);
    cr_assert_eq(open_store(&other, err), CM_OK, "%s", err);
    cr_assert_eq(gw_store_on_notice(st, record, &a), CM_OK);
    int first = await_notice(&a, 0, GW_NOTICE_SLOTS, "");
    cr_assert_geq(first, 0, "not listening");
    PGconn *c = pg_admin();
    pg_run(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
              "application_name='bookbench-gateway-listen'");
    PQfinish(c);
    cr_assert_gt(await_notice(&a, first + 1, GW_NOTICE_JOBS, ""), first, "no wake-up after");
    int again = await_notice(&a, first + 1, GW_NOTICE_SLOTS, "");
    cr_assert_gt(again, first, "no invalidation of everything after the reconnect");
    cr_assert_eq(gw_store_publish(other, GW_NOTICE_SLOTS, "104"), CM_OK);
    cr_assert_gt(await_notice(&a, again + 1, GW_NOTICE_SLOTS, "104"), again, "deaf after");
    gw_store_off_notice(st, record, &a);
    gw_store_close(&other);
}
#endif

#ifdef GW_STORE_PG
/* A clock set back an hour (played by moving the bucket's time an hour ahead):
 * the bucket goes on refilling from the new now, rather than not at all for an hour. */
Test(store, pg_a_bucket_refills_after_the_servers_clock_is_set_back)
{
    PG_ONLY();
    int taken = 0;
    int64_t wait = 0;
    cr_assert_eq(gw_store_rl_take(st, "calcom:clock", 1000, 1, 0, &taken, &wait), CM_OK);
    cr_assert_eq(taken, 1);
    PGconn *c = pg_admin();
    pg_run(c, "UPDATE rate_buckets SET at = at + interval '1 hour'");
    PQfinish(c);
    /* One token per ms: it comes within a few ms, if the bucket refills at all. */
    int64_t until = cm_clock_mono_ms() + 2000;
    taken = 0;
    while (!taken && cm_clock_mono_ms() < until)
        cr_assert_eq(gw_store_rl_take(st, "calcom:clock", 1000, 1, 0, &taken, &wait), CM_OK);
    cr_assert_eq(taken, 1, "no token for 2 s: the bucket waits for the clock to catch up");
}
#endif

/* ---- batches: what the group commit does with a batch of many events ---------------- */

/* Another connection holding the events table, so that ingests queued meanwhile meet the
 * committer as one batch: on SQLite the write lock; on PostgreSQL a table lock, with a
 * first event the committer takes alone and waits on (the rest queue behind it). */
typedef struct {
    sqlite3 *sq;
#ifdef GW_STORE_PG
    PGconn *pg;
#endif
} hold_t;

#ifdef GW_STORE_PG
/* Until a store connection waits for a lock (the committer, on the held table). */
static void pg_wait_store_blocked(PGconn *c)
{
    struct timespec nap = {0, 10 * 1000 * 1000};
    for (int i = 0;; i++) {
        PGresult *r = PQexec(c, "SELECT count(*) FROM pg_stat_activity WHERE "
                                "application_name='bookbench-gateway' AND wait_event_type='Lock'");
        int n = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : -1;
        PQclear(r);
        if (n > 0)
            return;
        cr_assert(i < 1000, "the committer is not waiting for the held table after 10 s");
        nanosleep(&nap, NULL);
    }
}
#endif

static void hold_writes(hold_t *h, const gw_event_in_t *first, outcome_t *out)
{
    memset(h, 0, sizeof *h);
    if (on_pg()) {
#ifdef GW_STORE_PG
        h->pg = pg_admin();
        pg_run(h->pg, "BEGIN; LOCK TABLE events IN EXCLUSIVE MODE");
        cr_assert_eq(gw_store_ingest_async(st, first, outcome_cb, out), CM_OK);
        PGconn *watch = pg_admin();
        pg_wait_store_blocked(watch);
        PQfinish(watch);
#endif
    } else {
        cr_assert_eq(sqlite3_open(dbpath, &h->sq), SQLITE_OK);
        cr_assert_eq(sqlite3_exec(h->sq, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
        cr_assert_eq(gw_store_ingest_async(st, first, outcome_cb, out), CM_OK);
    }
}

static void release_writes(hold_t *h)
{
    if (h->sq) {
        cr_assert_eq(sqlite3_exec(h->sq, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(h->sq);
    }
#ifdef GW_STORE_PG
    if (h->pg) {
        pg_run(h->pg, "COMMIT");
        PQfinish(h->pg);
    }
#endif
    memset(h, 0, sizeof *h);
}

/* The stored event's duplicate count, by its key, through the admin view. */
static int64_t duplicates_of(const char *key)
{
    cm_buf_t b;
    int64_t n = -1;
    cm_buf_init(&b, 1 << 20);
    cr_assert_eq(gw_store_events_json(st, NULL, NULL, NULL, 1000, &b), CM_OK);
    json_t *v = json_loads(b.data, 0, NULL), *e;
    size_t i;
    cr_assert_not_null(v, "%s", b.data);
    json_array_foreach(json_object_get(v, "events"), i, e)
    {
        if (!strcmp(json_string_value(json_object_get(e, "event_key")), key))
            n = json_integer_value(json_object_get(e, "duplicates"));
    }
    json_decref(v);
    cm_buf_free(&b);
    cr_assert_neq(n, -1, "no stored event %s", key);
    return n;
}

/* One batch holding fresh events, copies of each other, copies of an event stored
 * before, Stripe-like twins (another event key, the same alternative key) and an event
 * without a job: each key is stored once, by the first of its copies, each copy counted
 * on the events it repeats, and only stored events get a job. */
Test(store, a_batch_of_copies_and_twins_stores_each_event_once)
{
    struct {
        const char *key, *alt;
        int job;
        gw_ingest_t want;
    } in[] = {
        {"k0", NULL, 1, GW_INGEST_ACCEPTED},      {"k1", NULL, 1, GW_INGEST_ACCEPTED},
        {"k1", NULL, 1, GW_INGEST_DUPLICATE},     {"old", NULL, 1, GW_INGEST_DUPLICATE},
        {"evt_a", "pi_1", 1, GW_INGEST_ACCEPTED}, {"evt_b", "pi_1", 1, GW_INGEST_DUPLICATE},
        {"k2", "x", 1, GW_INGEST_ACCEPTED},       {"k2", "y", 1, GW_INGEST_DUPLICATE},
        {"k3", "y", 1, GW_INGEST_ACCEPTED},       {"evt_c", "pi_1", 1, GW_INGEST_DUPLICATE},
        {"nojob", NULL, 0, GW_INGEST_ACCEPTED},   {"k1", NULL, 1, GW_INGEST_DUPLICATE},
    };
    enum { N = sizeof in / sizeof in[0] };
    static gw_event_in_t evs[N];
    static outcome_t out[N], first_out;
    gw_ingest_t r;
    gw_event_in_t old = event("old", "{}"), first = event("first", "{}");
    cr_assert_eq(gw_store_ingest(st, &old, &r), CM_OK);
    hold_t h;
    hold_writes(&h, &first, &first_out);
    for (int i = 0; i < N; i++) {
        evs[i] = event(in[i].key, "{}");
        evs[i].alt_key = in[i].alt;
        evs[i].received_at_ms = 2000 + i;
        if (!in[i].job)
            evs[i].job_kind = NULL;
        cr_assert_eq(gw_store_ingest_async(st, &evs[i], outcome_cb, &out[i]), CM_OK);
    }
    release_writes(&h);
    gw_store_stop_intake(st);
    cr_assert(first_out.answered == 1 && first_out.rc == CM_OK);
    int jobs = 2; /* old's and first's */
    for (int i = 0; i < N; i++) {
        cr_assert_eq(out[i].answered, 1, "event %d", i);
        cr_assert_eq(out[i].rc, CM_OK, "event %d (%s)", i, in[i].key);
        cr_assert_eq(out[i].result, in[i].want, "event %d (%s): %s, wanted %s", i, in[i].key,
                     out[i].result == GW_INGEST_ACCEPTED ? "accepted" : "duplicate",
                     in[i].want == GW_INGEST_ACCEPTED ? "accepted" : "duplicate");
        jobs += in[i].want == GW_INGEST_ACCEPTED && in[i].job;
    }
    gw_queue_stats_t q;
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK);
    cr_assert_eq(q.pending, jobs, "pending %lld, wanted %d", (long long)q.pending, jobs);
    cr_assert_eq(duplicates_of("k0"), 0);
    cr_assert_eq(duplicates_of("k1"), 2);
    cr_assert_eq(duplicates_of("old"), 1);
    cr_assert_eq(duplicates_of("evt_a"), 2, "its twins, by the alternative key");
    /* k2 with alt y repeats k2 by its key; k3, stored after it with alt y, was not there
     * yet (as if the events had come one by one). */
    cr_assert_eq(duplicates_of("k2"), 1);
    cr_assert_eq(duplicates_of("k3"), 0);
    cr_assert_eq(duplicates_of("nojob"), 0);
}

/* As an_event_that_cannot_be_stored_fails_alone_in_its_batch, on both backends: the
 * batch's one statement fails, and the batch is written again event by event. */
Test(store, a_refused_event_fails_alone_in_a_held_batch)
{
    enum { N = 40, BAD = 17, DUP = 30 };
    static gw_event_in_t evs[N];
    static char keys[N][32];
    static outcome_t out[N], first_out;
    gw_event_in_t first = event("first", "{}");
    hold_t h;
    hold_writes(&h, &first, &first_out);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i == DUP ? 3 : i);
        evs[i] = event(keys[i], "{}");
        if (i == BAD)
            evs[i].provider = NULL; /* NOT NULL in the schema: the insert fails */
        cr_assert_eq(gw_store_ingest_async(st, &evs[i], outcome_cb, &out[i]), CM_OK);
    }
    release_writes(&h);
    gw_store_stop_intake(st);
    cr_assert(first_out.answered == 1 && first_out.rc == CM_OK);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(out[i].answered, 1, "event %d", i);
        cr_assert_eq(out[i].rc, i == BAD ? CM_ESTORE : CM_OK, "event %d", i);
        if (i != BAD)
            cr_assert_eq(out[i].result, i == DUP ? GW_INGEST_DUPLICATE : GW_INGEST_ACCEPTED,
                         "event %d", i);
    }
    gw_queue_stats_t q;
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK);
    cr_assert_eq(q.pending, N - 2 + 1, "all but the refused event and the duplicate, and first");
    cr_assert_eq(duplicates_of("k3"), 1);
}

#ifdef GW_STORE_PG
/* Notifications on the jobs channel until one with payload "end" (sent by the test after
 * the commits it watches: notifications arrive in commit order); returns how many came
 * before it. */
static int pg_notifications_until_end(PGconn *c)
{
    int n = 0;
    for (int i = 0;; i++) {
        cr_assert(i < 1000, "no end notification after 10 s");
        cr_assert(PQconsumeInput(c), "%s", PQerrorMessage(c));
        PGnotify *nf;
        while ((nf = PQnotifies(c)) != NULL) {
            int end = !strcmp(nf->extra, "end");
            cr_assert_str_eq(nf->relname, "gw_jobs");
            PQfreemem(nf);
            if (end)
                return n;
            n++;
        }
        struct timespec nap = {0, 10 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
}

/* Each commit that queued a job notifies gw_jobs once (other instances' workers LISTEN on
 * it); one that only counted a duplicate does not. */
Test(store, pg_a_commit_that_queues_jobs_notifies_gw_jobs)
{
    PG_ONLY();
    gw_ingest_t r;
    gw_event_in_t a = event("a", "{}"), b = event("b", "{}"), nojob = event("n", "{}");
    nojob.job_kind = NULL;
    PGconn *l = pg_admin(), *s = pg_admin();
    pg_run(l, "LISTEN gw_jobs");
    cr_assert_eq(gw_store_ingest(st, &a, &r), CM_OK);
    cr_assert_eq(gw_store_ingest(st, &a, &r), CM_OK);
    cr_assert_eq(r, GW_INGEST_DUPLICATE);
    cr_assert_eq(gw_store_ingest(st, &nojob, &r), CM_OK);
    cr_assert_eq(gw_store_ingest(st, &b, &r), CM_OK);
    pg_run(s, "NOTIFY gw_jobs, 'end'");
    cr_assert_eq(pg_notifications_until_end(l), 2, "a's commit and b's");
    PQfinish(s);
    PQfinish(l);
}

/* The database refuses new connections (as a server that is down or restarting does)
 * after dropping the store's: calls fail with a store error at once, not after a wait
 * per call, and once the database takes connections again the store is back by itself
 * within its back-off, with every event it acknowledged stored. */
static PGconn *limit_conn; /* kept open: with the limit at 0 no other can be made */

static void pg_connections(PGconn *c, int limit)
{
    char sql[160];
    PGresult *r = PQexec(c, "SELECT current_database()");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
    snprintf(sql, sizeof sql, "ALTER DATABASE \"%s\" CONNECTION LIMIT %d", PQgetvalue(r, 0, 0),
             limit);
    PQclear(r);
    pg_run(c, sql);
}

static void unlimit(void)
{
    if (limit_conn) {
        pg_connections(limit_conn, -1);
        PQfinish(limit_conn);
        limit_conn = NULL;
    }
    teardown();
}

Test(store, pg_refused_connections_fail_calls_at_once_then_reconnect, .fini = unlimit)
{
    PG_ONLY();
    enum { CALLS = 50 };
    gw_ingest_t r;
    gw_queue_stats_t q;
    static gw_event_in_t evs[CALLS];
    static char keys[CALLS][16];
    gw_event_in_t a = event("a", "{}");
    cr_assert_eq(gw_store_ingest(st, &a, &r), CM_OK);
    limit_conn = pg_admin();
    pg_drop_store_connections(); /* nothing uses the store in between */
    pg_connections(limit_conn, 0);
    /* Each call meets the broken connection or a refused (or backed-off) new one. */
    int64_t t0 = cm_clock_mono_ms();
    for (int i = 0; i < CALLS; i++) {
        snprintf(keys[i], sizeof keys[i], "down%d", i);
        evs[i] = event(keys[i], "{}");
        cr_assert_eq(gw_store_ingest(st, &evs[i], &r), CM_ESTORE, "call %d", i);
        cr_assert_eq(gw_store_queue_stats(st, &q), CM_ESTORE, "call %d", i);
    }
    int64_t took = cm_clock_mono_ms() - t0;
    /* A refused connection is answered at once; the bound is for a loaded machine, far
     * below a connect_timeout (2 s) per call. */
    cr_assert_lt(took, 2000, "%d ingests and %d reads took %lld ms", CALLS, CALLS, (long long)took);
    pg_connections(limit_conn, -1);
    /* Back within the back-off (at most 1 s): poll until a call succeeds, 10 s at most. */
    gw_event_in_t b = event("b", "{}");
    int64_t back = cm_clock_mono_ms();
    cm_err_t rc;
    while ((rc = gw_store_ingest(st, &b, &r)) != CM_OK) {
        cr_assert_eq(rc, CM_ESTORE);
        cr_assert_lt(cm_clock_mono_ms() - back, 10000, "not reconnected after 10 s");
        cm_clock_sleep_ms(20);
    }
    cr_assert_eq(r, GW_INGEST_ACCEPTED);
    while ((rc = gw_store_queue_stats(st, &q)) != CM_OK) {
        cr_assert_eq(rc, CM_ESTORE);
        cr_assert_lt(cm_clock_mono_ms() - back, 10000, "reads not back after 10 s");
        cm_clock_sleep_ms(20);
    }
    cr_assert_eq(q.pending, 2, "a and b, none of the refused ones");
}
#endif

/* Ingests one event received at `at` with the given key; returns its job's id once claimed
 * (the job is then running). */
static int64_t old_event(const char *key, int64_t at)
{
    gw_ingest_t r;
    gw_job_t job;
    int64_t next = 0;
    gw_event_in_t ev = event(key, "{\"caller\":\"+14155550123\"}");
    ev.received_at_ms = at;
    ev.entity_id = key; /* one lane each: a running job holds its entity's */
    cr_assert_eq(gw_store_ingest(st, &ev, &r), CM_OK);
    cr_assert_eq(r, GW_INGEST_ACCEPTED);
    cr_assert_eq(gw_store_claim(st, at, LEASE, &job, &next), CM_OK);
    int64_t id = job.id;
    gw_store_job_free(&job);
    return id;
}

static int64_t events_count(void)
{
    cm_buf_t b;
    cm_buf_init(&b, 1 << 20);
    cr_assert_eq(gw_store_events_json(st, "retell", NULL, NULL, 1000, &b), CM_OK);
    json_t *v = json_loads(b.data, 0, NULL);
    cr_assert_not_null(v, "%s", b.data);
    int64_t n = json_integer_value(json_object_get(v, "count"));
    json_decref(v);
    cm_buf_free(&b);
    return n;
}

/* Retention removes old events whose jobs finished, in batches, oldest first; keeps a dead
 * letter and anything newer than the cutoff; removes the history of ended sagas but not of
 * one waiting for a person, and keeps the saga rows. A purged key is accepted again. */
Test(store, purge_removes_old_finished_events_in_batches_and_keeps_dead_letters)
{
    gw_purge_t p;
    char key[32];
    for (int i = 0; i < 5; i++) { /* old, done */
        snprintf(key, sizeof key, "old-%d", i);
        cr_assert_eq(gw_store_job_done(st, old_event(key, 1000 + i), 2000), CM_OK);
    }
    int64_t dead = old_event("old-dead", 1100);
    cr_assert_eq(gw_store_job_dead(st, dead, "HTTP 400", 2000), CM_OK);
    old_event("old-running", 1200); /* claimed, never finished */
    cr_assert_eq(gw_store_job_done(st, old_event("new", 50000), 50001), CM_OK);
    cr_assert_eq(events_count(), 8);

    cr_assert_eq(gw_store_purge(st, 10000, 0, &p), CM_EINVAL);
    cr_assert_eq(gw_store_purge(st, 10000, 3, &p), CM_OK);
    cr_assert_eq(p.events, 3, "a batch of 3, got %d", p.events);
    cr_assert_eq(p.jobs, 3);
    cr_assert_eq(gw_store_purge(st, 10000, 3, &p), CM_OK);
    cr_assert_eq(p.events, 2, "the two other done ones, got %d", p.events);
    cr_assert_eq(gw_store_purge(st, 10000, 3, &p), CM_OK);
    cr_assert_eq(p.events + p.jobs + p.saga_steps, 0, "nothing left to purge");
    cr_assert_eq(events_count(), 3, "the dead letter, the running job's event and the new one");

    /* Handled, the dead letter goes at the next purge. */
    cr_assert_eq(gw_store_job_discard(st, dead, 3000), CM_OK);
    cr_assert_eq(gw_store_purge(st, 10000, 3, &p), CM_OK);
    cr_assert_eq(p.events, 1);
    cr_assert_eq(events_count(), 2);

    /* Its key is free again: a copy now is a new event (the signature windows are what
     * refuse such a copy, which is why retention must be longer than they are). */
    gw_ingest_t r;
    gw_event_in_t ev = event("old-0", "{}");
    cr_assert_eq(gw_store_ingest(st, &ev, &r), CM_OK);
    cr_assert_eq(r, GW_INGEST_ACCEPTED);

    /* Sagas: an ended one loses its history, one waiting for a person keeps it. */
    gw_saga_t sg, back;
    memset(&sg, 0, sizeof sg);
    snprintf(sg.id, sizeof sg.id, "call_done");
    snprintf(sg.state, sizeof sg.state, "started");
    sg.deadline_ms = 9000;
    cr_assert_eq(gw_store_saga_put(st, &sg, "start", "done", NULL, 1000), CM_OK);
    snprintf(sg.state, sizeof sg.state, "completed");
    cr_assert_eq(gw_store_saga_put(st, &sg, "confirm", "done", NULL, 1500), CM_OK);
    snprintf(sg.id, sizeof sg.id, "call_human");
    snprintf(sg.state, sizeof sg.state, "needs_human");
    cr_assert_eq(gw_store_saga_put(st, &sg, "refund", "failed", "HTTP 500", 1000), CM_OK);
    snprintf(sg.id, sizeof sg.id, "call_recent");
    snprintf(sg.state, sizeof sg.state, "completed");
    cr_assert_eq(gw_store_saga_put(st, &sg, "confirm", "done", NULL, 60000), CM_OK);
    cr_assert_eq(gw_store_purge(st, 10000, 100, &p), CM_OK);
    cr_assert_eq(p.saga_steps, 2, "call_done's two lines, got %d", p.saga_steps);
    cr_assert_eq(gw_store_saga_get(st, "call_done", &back), CM_OK, "the saga row stays");
    cr_assert_str_eq(back.state, "completed");
    cr_assert_eq(gw_store_saga_intent_open(st, "call_human", "refund"), 0);
    cm_buf_t b;
    cm_buf_init(&b, 1 << 16);
    cr_assert_eq(gw_store_saga_json(st, "call_human", &b), CM_OK);
    cr_assert(strstr(b.data, "HTTP 500"), "needs_human keeps its history: %s", b.data);
    cm_buf_reset(&b);
    cr_assert_eq(gw_store_saga_json(st, "call_recent", &b), CM_OK);
    cr_assert(strstr(b.data, "\"confirm\""), "a recent saga keeps its history: %s", b.data);
    cm_buf_free(&b);
}

/* The job view's body (the event's raw body) as a string. */
static void job_body(int64_t id, char *out, size_t cap)
{
    cm_buf_t b;
    cm_buf_init(&b, 1 << 16);
    cr_assert_eq(gw_store_job_json(st, id, &b), CM_OK);
    json_t *v = json_loads(b.data, 0, NULL);
    cr_assert_not_null(v, "%s", b.data);
    const char *body = json_string_value(json_object_get(v, "body"));
    snprintf(out, cap, "%s", body ? body : b.data);
    json_decref(v);
    cm_buf_free(&b);
}

/* Erasure replaces the raw webhooks naming the person (by phone exactly, by e-mail in any
 * case), discards their dead letters, redacts errors naming them, leaves an event still
 * being processed alone (counted), and touches nobody else. */
Test(store, erase_removes_one_persons_webhooks_and_nobody_elses)
{
    gw_erase_t er;
    char body[512];
    static const char ann[] = "{\"call\":{\"from_number\":\"+14155550123\","
                              "\"email\":\"Ann.Lee@Example.com\",\"transcript\":\"Hi, Ann here\"}}";
    static const char bob[] = "{\"call\":{\"from_number\":\"+14155550999\","
                              "\"email\":\"bob@example.com\",\"transcript\":\"Hi, Bob here\"}}";
    gw_ingest_t r;
    gw_job_t job;
    int64_t next = 0, ids[4];
    const char *bodies[4] = {ann, ann, bob, ann};
    for (int i = 0; i < 4; i++) {
        char key[16];
        snprintf(key, sizeof key, "ev-%d", i);
        gw_event_in_t ev = event(key, bodies[i]);
        ev.entity_id = key;
        cr_assert_eq(gw_store_ingest(st, &ev, &r), CM_OK);
        cr_assert_eq(gw_store_claim(st, 1000, LEASE, &job, &next), CM_OK);
        ids[i] = job.id;
        gw_store_job_free(&job);
    }
    cr_assert_eq(gw_store_job_done(st, ids[0], 2000), CM_OK);
    cr_assert_eq(
        gw_store_job_dead(st, ids[1], "HTTP 400: attendee ann.lee@example.com invalid", 2000),
        CM_OK);
    cr_assert_eq(gw_store_job_done(st, ids[2], 2000), CM_OK);
    /* ids[3] stays running: its processing needs the body. */

    cr_assert_eq(gw_store_erase(st, NULL, "", 3000, &er), CM_EINVAL);
    cr_assert_eq(gw_store_erase(st, "+14155550123", "ann.lee@example.com", 3000, &er), CM_OK);
    cr_assert_eq(er.events, 2, "Ann's two finished events, got %d", er.events);
    cr_assert_eq(er.dead_letters, 1);
    cr_assert_eq(er.in_progress, 1);
    cr_assert_eq(er.errors, 1, "the dead job's error named her");
    job_body(ids[0], body, sizeof body);
    cr_assert(strstr(body, "\"erased\":true") && !strstr(body, "Ann"), "%s", body);
    job_body(ids[2], body, sizeof body);
    cr_assert(strstr(body, "Bob here"), "Bob is untouched: %s", body);
    job_body(ids[3], body, sizeof body);
    cr_assert(strstr(body, "Ann here"), "in progress, left alone: %s", body);
    char e[256];
    job_error(ids[1], e, sizeof e);
    cr_assert_str_eq(e, "[erased]");
    gw_queue_stats_t q;
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK);
    cr_assert_eq(q.dead, 0, "her dead letter is discarded: nothing left to replay");
    /* By phone alone, once her last job has finished; again, nothing more. */
    cr_assert_eq(gw_store_job_done(st, ids[3], 4000), CM_OK);
    cr_assert_eq(gw_store_erase(st, "+14155550123", NULL, 5000, &er), CM_OK);
    cr_assert_eq(er.events, 1);
    cr_assert_eq(er.in_progress, 0);
    cr_assert_eq(gw_store_erase(st, "+14155550123", NULL, 6000, &er), CM_OK);
    cr_assert_eq(er.events + er.dead_letters + er.errors + er.in_progress, 0);
}
