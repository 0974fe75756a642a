/* test_gw_store.c - the SQLite store on a real file: one-transaction dedup (also under
 * concurrent copies), job lifecycle, and crash recovery. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "gw_store.h"

static char dir[64];
static char dbpath[96];
static gw_store_t *st;

static void setup(void)
{
    char err[CM_ERR_LEN] = "";
    snprintf(dir, sizeof dir, "/tmp/test_gw_store_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(dbpath, sizeof dbpath, "%s/gw.db", dir);
    cr_assert_eq(gw_store_open(dbpath, 1, &st, err), CM_OK, "%s", err);
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
    cr_assert_eq(gw_store_events_json(st, "retell", NULL, 100, &b), CM_OK);
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
    /* Separate store handles = separate SQLite connections, like separate processes. */
    enum { N = 8 };
    gw_store_t *stores[N];
    pthread_t th[N];
    racer_t rs[N];
    pthread_barrier_t bar;
    char err[CM_ERR_LEN];
    pthread_barrier_init(&bar, NULL, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(gw_store_open(dbpath, 1, &stores[i], err), CM_OK, "%s", err);
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
    cr_assert_eq(gw_store_ingest(st, &ev, &r), CM_OK);
    cr_assert_eq(gw_store_claim(st, 999, &job, &next), CM_ENOTFOUND, "not due before receipt");
    cr_assert_eq(next, 1000);
    cr_assert_eq(gw_store_claim(st, 1000, &job, &next), CM_OK);
    cr_assert_str_eq(job.kind, "retell.call_analyzed");
    cr_assert_str_eq(job.body.data, "{\"body\":1}");
    cr_assert_eq(job.attempts, 1);
    cr_assert_eq(gw_store_job_retry(st, job.id, 5000, "HTTP 503", 1001), CM_OK);
    gw_store_job_free(&job);
    cr_assert_eq(gw_store_claim(st, 4999, &job, &next), CM_ENOTFOUND);
    cr_assert_eq(next, 5000);
    cr_assert_eq(gw_store_claim(st, 5000, &job, &next), CM_OK);
    cr_assert_eq(job.attempts, 2);
    cr_assert_eq(gw_store_job_done(st, job.id, 5001), CM_OK);
    gw_store_job_free(&job);
    gw_queue_stats_t q;
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK);
    cr_assert(q.done == 1 && q.pending == 0 && q.running == 0);
    cr_assert_eq(gw_store_claim(st, 9999, &job, &next), CM_ENOTFOUND);
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
        cr_assert_eq(gw_store_claim(st, 2000, &job, &next), CM_OK);
        gw_store_job_free(&job);
        if (i < 2)
            cr_assert_eq(gw_store_recover(st, 3, 2000, &requeued), CM_OK);
    }
    /* Job b (another call) is left running once. */
    b.entity_id = "call_2";
    cr_assert_eq(gw_store_ingest(st, &b, &r), CM_OK);
    cr_assert_eq(gw_store_claim(st, 2000, &job, &next), CM_OK);
    gw_store_job_free(&job);
    cr_assert_eq(gw_store_recover(st, 3, 2000, &requeued), CM_OK);
    cr_assert_eq(requeued, 1);
    gw_queue_stats_t q;
    cr_assert_eq(gw_store_queue_stats(st, &q), CM_OK);
    cr_assert_eq(q.dead, 1, "crasher dead-lettered");
    cr_assert_eq(q.pending, 1);
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
    cr_assert_eq(gw_store_claim(st, 2000, &j1, &next), CM_OK);
    cr_assert_str_eq(j1.entity_id, "call_1");
    /* b is due but call_1 is busy: the next claim takes the other entity. */
    cr_assert_eq(gw_store_claim(st, 2000, &j2, &next), CM_OK);
    cr_assert_str_eq(j2.entity_id, "call_other");
    gw_store_job_free(&j2);
    cr_assert_eq(gw_store_claim(st, 2000, &j2, &next), CM_ENOTFOUND);
    cr_assert_eq(gw_store_job_done(st, j1.id, 2001), CM_OK);
    gw_store_job_free(&j1);
    cr_assert_eq(gw_store_claim(st, 2002, &j2, &next), CM_OK);
    cr_assert_str_eq(j2.entity_id, "call_1");
    gw_store_job_free(&j2);
}

Test(store, dead_letter_replay_discard_and_rerun)
{
    gw_ingest_t r;
    gw_job_t j;
    int64_t next, rerun = 0;
    gw_event_in_t a = event("a", "{}");
    cr_assert_eq(gw_store_ingest(st, &a, &r), CM_OK);
    cr_assert_eq(gw_store_claim(st, 2000, &j, &next), CM_OK);
    cr_assert_eq(gw_store_job_replay(st, j.id, 2001), CM_ESTATE, "running jobs are not dead");
    cr_assert_eq(gw_store_job_dead(st, j.id, "poison", 2001), CM_OK);
    cr_assert_eq(gw_store_job_replay(st, 999, 2001), CM_ENOTFOUND);
    cm_buf_t b;
    cm_buf_init(&b, 1 << 16);
    cr_assert_eq(gw_store_jobs_json(st, "dead", 10, &b), CM_OK);
    cr_assert(strstr(b.data, "\"last_error\":\"poison\"") && strstr(b.data, "\"count\":1"), "%s",
              b.data);
    cm_buf_reset(&b);
    cr_assert_eq(gw_store_job_json(st, j.id, &b), CM_OK);
    cr_assert(strstr(b.data, "\"body\":\"{}\""), "%s", b.data);
    cm_buf_free(&b);
    cr_assert_eq(gw_store_job_replay(st, j.id, 3000), CM_OK);
    gw_store_job_free(&j);
    cr_assert_eq(gw_store_claim(st, 3000, &j, &next), CM_OK);
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
    cr_assert_eq(gw_store_claim(st, 2000, &job, &next), CM_OK);
    cr_assert_str_eq(job.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    gw_store_job_free(&job);
}
