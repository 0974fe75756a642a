/* test_gw_breaker.c - the breaker state machine under a controlled clock, and under threads. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "gw_breaker.h"

static gw_breaker_t *make(const gw_brk_config_t *c)
{
    gw_breaker_t *b = NULL;
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(gw_breaker_new("calcom", c, &b, err), CM_OK, "%s", err);
    return b;
}

static gw_breaker_t *make_default(void)
{
    gw_brk_config_t c;
    gw_brk_config_default(&c);
    return make(&c);
}

/* One call at now that takes dur ms and ends with outcome o; returns the verdict. */
static gw_brk_verdict_t call(gw_breaker_t *b, int64_t now, int64_t dur, gw_brk_outcome_t o)
{
    gw_brk_permit_t p;
    gw_brk_verdict_t v = gw_breaker_acquire(b, now, &p);
    if (v == GW_BRK_PERMITTED)
        gw_breaker_record(&p, o, now + dur);
    return v;
}

static void expect_state(gw_breaker_t *b, int64_t now, gw_brk_state_t want)
{
    gw_brk_state_t got = gw_breaker_state(b, now);
    cr_assert_eq(got, want, "state at %lld: %s, expected %s", (long long)now,
                 gw_brk_state_name(got), gw_brk_state_name(want));
}

typedef struct {
    int n;
    gw_brk_state_t from[16], to[16];
    int64_t at[16];
} seen_t;

static void on_transition(void *ud, const char *name, gw_brk_state_t from, gw_brk_state_t to,
                          const char *reason, int64_t now_ms)
{
    seen_t *s = ud;
    cr_assert_str_eq(name, "calcom");
    cr_assert(reason && *reason);
    if (s->n < 16) {
        s->from[s->n] = from;
        s->to[s->n] = to;
        s->at[s->n] = now_ms;
    }
    s->n++;
}

Test(breaker, config_defaults_and_checks)
{
    gw_brk_config_t c;
    char err[CM_ERR_LEN] = "";
    gw_brk_config_default(&c);
    cr_assert_eq(c.consecutive_failures, 5);
    cr_assert_eq(c.open_wait_ms, 60000);
    cr_assert_eq(c.half_open_permits, 3);
    cr_assert_eq(c.half_open_successes, 2);
    cr_assert_eq(gw_brk_config_check(&c, err), CM_OK);
    c.half_open_successes = 4;
    cr_assert_eq(gw_brk_config_check(&c, err), CM_EINVAL);
    cr_assert(strstr(err, "half_open_successes"), "%s", err);
    gw_brk_config_default(&c);
    c.window_size = 0;
    gw_breaker_t *b = NULL;
    cr_assert_eq(gw_breaker_new("x", &c, &b, err), CM_EINVAL);
    cr_assert_null(b);
    cr_assert(strstr(err, "window_size"), "%s", err);
}

Test(breaker, five_consecutive_failures_open_it)
{
    gw_breaker_t *b = make_default();
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(call(b, 1000 + i, 10, GW_BRK_FAILURE), GW_BRK_PERMITTED);
        expect_state(b, 1000 + i, GW_BRK_CLOSED);
    }
    cr_assert_eq(call(b, 1004, 10, GW_BRK_FAILURE), GW_BRK_PERMITTED);
    expect_state(b, 1014, GW_BRK_OPEN);
    gw_breaker_free(&b);
    cr_assert_null(b);
    gw_breaker_free(&b); /* NULL is fine */
}

Test(breaker, a_success_resets_the_consecutive_count)
{
    gw_breaker_t *b = make_default();
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 4; i++)
            call(b, 0, 1, GW_BRK_FAILURE);
        call(b, 0, 1, GW_BRK_SUCCESS);
    }
    /* 12 failures in 15 calls is 80 % >= 50 % over >= 10 calls: the rate rule trips even
     * though no 5 came in a row, on the 10th call of the window. */
    expect_state(b, 0, GW_BRK_OPEN);
    gw_breaker_free(&b);

    gw_brk_config_t c;
    gw_brk_config_default(&c);
    c.failure_rate_pct = 0; /* only the consecutive rule */
    b = make(&c);
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 4; i++)
            call(b, 0, 1, GW_BRK_FAILURE);
        call(b, 0, 1, GW_BRK_SUCCESS);
    }
    expect_state(b, 0, GW_BRK_CLOSED);
    gw_breaker_free(&b);
}

Test(breaker, no_permits_while_open_and_rejections_say_why)
{
    gw_breaker_t *b = make_default();
    for (int i = 0; i < 5; i++)
        call(b, 0, 0, GW_BRK_FAILURE);
    for (int64_t t = 0; t < 60000; t += 997) {
        gw_brk_permit_t p;
        cr_assert_eq(gw_breaker_acquire(b, t, &p), GW_BRK_REJ_OPEN, "t=%lld", (long long)t);
        cr_assert_eq(p.retry_in_ms, 60000 - t);
        gw_breaker_record(&p, GW_BRK_SUCCESS, t); /* an inert permit: no effect */
        gw_breaker_release(&p, t);
    }
    gw_brk_snapshot_t s;
    gw_breaker_snapshot(b, 59999, &s);
    cr_assert_eq(s.state, GW_BRK_OPEN);
    cr_assert_eq(s.rejected, 61);
    cr_assert_eq(s.open_until_ms, 60000);
    gw_breaker_free(&b);
}

Test(breaker, open_to_half_open_on_time_without_a_call)
{
    gw_breaker_t *b = make_default();
    seen_t seen = {0};
    gw_breaker_set_callback(b, on_transition, &seen);
    for (int i = 0; i < 5; i++)
        call(b, 100, 0, GW_BRK_FAILURE);
    gw_breaker_tick(b, 60099);
    cr_assert_eq(seen.n, 1);
    gw_breaker_tick(b, 60100);
    cr_assert_eq(seen.n, 2);
    cr_assert_eq(seen.from[1], GW_BRK_OPEN);
    cr_assert_eq(seen.to[1], GW_BRK_HALF_OPEN);
    cr_assert_eq(seen.at[1], 60100);
    gw_breaker_free(&b);
}

Test(breaker, half_open_lets_exactly_the_permitted_calls_through)
{
    gw_breaker_t *b = make_default();
    for (int i = 0; i < 5; i++)
        call(b, 0, 0, GW_BRK_FAILURE);
    gw_brk_permit_t p[5];
    cr_assert_eq(gw_breaker_acquire(b, 60000, &p[0]), GW_BRK_PERMITTED); /* lazy move */
    expect_state(b, 60000, GW_BRK_HALF_OPEN);
    cr_assert_eq(gw_breaker_acquire(b, 60001, &p[1]), GW_BRK_PERMITTED);
    cr_assert_eq(gw_breaker_acquire(b, 60002, &p[2]), GW_BRK_PERMITTED);
    cr_assert_eq(gw_breaker_acquire(b, 60003, &p[3]), GW_BRK_REJ_HALF_OPEN_FULL);
    cr_assert_eq(gw_breaker_acquire(b, 60004, &p[4]), GW_BRK_REJ_HALF_OPEN_FULL);
    /* Two successes close it; the third trial's late answer is from the past period. */
    gw_breaker_record(&p[0], GW_BRK_SUCCESS, 60010);
    expect_state(b, 60010, GW_BRK_HALF_OPEN);
    gw_breaker_record(&p[1], GW_BRK_SUCCESS, 60011);
    expect_state(b, 60011, GW_BRK_CLOSED);
    gw_breaker_record(&p[2], GW_BRK_FAILURE, 60012);
    expect_state(b, 60012, GW_BRK_CLOSED);
    gw_brk_snapshot_t s;
    gw_breaker_snapshot(b, 60012, &s);
    cr_assert_eq(s.calls, 0, "a stale outcome must not enter the new window");
    gw_breaker_free(&b);
}

Test(breaker, a_failure_in_half_open_reopens_for_a_new_wait)
{
    gw_breaker_t *b = make_default();
    seen_t seen = {0};
    gw_breaker_set_callback(b, on_transition, &seen);
    for (int i = 0; i < 5; i++)
        call(b, 0, 0, GW_BRK_FAILURE);
    gw_brk_permit_t a, c;
    cr_assert_eq(gw_breaker_acquire(b, 60000, &a), GW_BRK_PERMITTED);
    cr_assert_eq(gw_breaker_acquire(b, 60000, &c), GW_BRK_PERMITTED);
    gw_breaker_record(&a, GW_BRK_SUCCESS, 60005);
    gw_breaker_record(&c, GW_BRK_FAILURE, 60006);
    expect_state(b, 60006, GW_BRK_OPEN);
    cr_assert_eq(call(b, 120005, 0, GW_BRK_SUCCESS), GW_BRK_REJ_OPEN);
    expect_state(b, 120006, GW_BRK_HALF_OPEN);
    cr_assert_eq(seen.n, 4);
    cr_assert_eq(seen.to[0], GW_BRK_OPEN);
    cr_assert_eq(seen.to[1], GW_BRK_HALF_OPEN);
    cr_assert_eq(seen.to[2], GW_BRK_OPEN);
    cr_assert_eq(seen.to[3], GW_BRK_HALF_OPEN);
    gw_breaker_free(&b);
}

Test(breaker, a_released_half_open_permit_frees_its_slot)
{
    gw_breaker_t *b = make_default();
    for (int i = 0; i < 5; i++)
        call(b, 0, 0, GW_BRK_FAILURE);
    gw_brk_permit_t p[3], q;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(gw_breaker_acquire(b, 60000, &p[i]), GW_BRK_PERMITTED);
    cr_assert_eq(gw_breaker_acquire(b, 60000, &q), GW_BRK_REJ_HALF_OPEN_FULL);
    gw_breaker_release(&p[0], 60001); /* cancelled: no outcome */
    gw_breaker_release(&p[0], 60001); /* twice is harmless */
    gw_breaker_record(&p[0], GW_BRK_FAILURE, 60001);
    expect_state(b, 60001, GW_BRK_HALF_OPEN);
    gw_brk_snapshot_t s;
    gw_breaker_snapshot(b, 60001, &s);
    cr_assert_eq(s.half_open_in_flight, 2);
    cr_assert_eq(gw_breaker_acquire(b, 60002, &q), GW_BRK_PERMITTED);
    cr_assert_eq(gw_breaker_acquire(b, 60002, &p[0]), GW_BRK_REJ_HALF_OPEN_FULL);
    /* Release everything: no stuck state, the slots are all back. */
    gw_breaker_release(&p[1], 60003);
    gw_breaker_release(&p[2], 60003);
    gw_breaker_release(&q, 60003);
    gw_breaker_snapshot(b, 60003, &s);
    cr_assert_eq(s.half_open_in_flight, 0);
    cr_assert_eq(s.state, GW_BRK_HALF_OPEN);
    cr_assert_eq(call(b, 60004, 1, GW_BRK_SUCCESS), GW_BRK_PERMITTED);
    cr_assert_eq(call(b, 60004, 1, GW_BRK_SUCCESS), GW_BRK_PERMITTED);
    expect_state(b, 60005, GW_BRK_CLOSED);
    gw_breaker_free(&b);
}

Test(breaker, minimum_calls_are_respected)
{
    gw_brk_config_t c;
    gw_brk_config_default(&c);
    c.consecutive_failures = 0;
    c.failure_rate_pct = 50;
    c.min_calls = 10;
    c.window_size = 10;
    gw_breaker_t *b = make(&c);
    for (int i = 0; i < 9; i++)
        call(b, 0, 0, GW_BRK_FAILURE); /* 100 % failures, but only 9 calls */
    expect_state(b, 0, GW_BRK_CLOSED);
    call(b, 0, 0, GW_BRK_SUCCESS); /* 10th call: 90 % */
    expect_state(b, 0, GW_BRK_OPEN);
    gw_breaker_free(&b);
}

Test(breaker, failure_rate_threshold_is_inclusive_and_the_count_window_slides)
{
    gw_brk_config_t c;
    gw_brk_config_default(&c);
    c.consecutive_failures = 0;
    c.failure_rate_pct = 50;
    c.min_calls = 4;
    c.window_size = 4;
    gw_breaker_t *b = make(&c);
    /* S F S S: 25 %; then the window slides: F S S F = 50 % trips. */
    call(b, 0, 0, GW_BRK_SUCCESS);
    call(b, 0, 0, GW_BRK_FAILURE);
    call(b, 0, 0, GW_BRK_SUCCESS);
    call(b, 0, 0, GW_BRK_SUCCESS);
    gw_brk_snapshot_t s;
    gw_breaker_snapshot(b, 0, &s);
    cr_assert_eq(s.calls, 4);
    cr_assert_eq(s.failures, 1);
    call(b, 0, 0, GW_BRK_SUCCESS); /* window: F S S S */
    gw_breaker_snapshot(b, 0, &s);
    cr_assert_eq(s.calls, 4);
    cr_assert_eq(s.failures, 1);
    call(b, 0, 0, GW_BRK_FAILURE); /* S S S F: 25 % */
    expect_state(b, 0, GW_BRK_CLOSED);
    call(b, 0, 0, GW_BRK_FAILURE); /* S S F F: 50 % */
    expect_state(b, 0, GW_BRK_OPEN);
    gw_breaker_free(&b);
}

Test(breaker, slow_call_rate_trips_it)
{
    gw_brk_config_t c;
    gw_brk_config_default(&c);
    c.consecutive_failures = 0;
    c.failure_rate_pct = 50;
    c.slow_call_ms = 2000;
    c.slow_rate_pct = 60;
    c.min_calls = 5;
    c.window_size = 5;
    gw_breaker_t *b = make(&c);
    call(b, 0, 1999, GW_BRK_SUCCESS); /* just under: not slow */
    call(b, 0, 2000, GW_BRK_SUCCESS); /* at the threshold: slow */
    call(b, 0, 5000, GW_BRK_SUCCESS);
    call(b, 0, 10, GW_BRK_SUCCESS);
    expect_state(b, 0, GW_BRK_CLOSED); /* 4 calls < min */
    gw_brk_snapshot_t s;
    gw_breaker_snapshot(b, 0, &s);
    cr_assert_eq(s.slow, 2);
    call(b, 0, 3000, GW_BRK_SUCCESS); /* 3 slow of 5 = 60 % */
    expect_state(b, 0, GW_BRK_OPEN);
    cm_buf_t j;
    cm_buf_init(&j, 1 << 16);
    cr_assert_eq(gw_breaker_json(b, 0, 1000000, &j), CM_OK);
    cr_assert(strstr(j.data, "slow-call rate 60% >= 60% over 5 calls"), "%s", j.data);
    cm_buf_free(&j);
    /* A slow success in half_open means the provider has not recovered. */
    cr_assert_eq(call(b, 63000, 2500, GW_BRK_SUCCESS), GW_BRK_PERMITTED);
    expect_state(b, 65500, GW_BRK_OPEN);
    gw_breaker_free(&b);
}

Test(breaker, time_window_forgets_old_seconds)
{
    gw_brk_config_t c;
    gw_brk_config_default(&c);
    c.window_type = GW_BRK_WINDOW_TIME;
    c.window_size = 10; /* seconds */
    c.consecutive_failures = 0;
    c.failure_rate_pct = 50;
    c.min_calls = 6;
    gw_breaker_t *b = make(&c);
    for (int i = 0; i < 5; i++)
        call(b, 1000, 0, GW_BRK_FAILURE); /* second 1 */
    gw_brk_snapshot_t s;
    gw_breaker_snapshot(b, 10999, &s); /* second 10: second 1 is still inside */
    cr_assert_eq(s.calls, 5);
    gw_breaker_snapshot(b, 11000, &s); /* second 11: it has left */
    cr_assert_eq(s.calls, 0);
    cr_assert_eq(s.failures, 0);
    /* 5 old failures + 1 new would trip; after they expire, 1 failure of 6 does not. */
    for (int i = 0; i < 5; i++)
        call(b, 11000 + i * 100, 0, GW_BRK_SUCCESS);
    call(b, 12000, 0, GW_BRK_FAILURE);
    expect_state(b, 12000, GW_BRK_CLOSED);
    /* Now failures spread over seconds inside the window add up. */
    for (int i = 0; i < 5; i++)
        call(b, 13000 + i * 1000, 0, GW_BRK_FAILURE);
    expect_state(b, 17000, GW_BRK_OPEN); /* 6 failures of 11 calls */
    /* A long idle gap clears everything at once. */
    gw_breaker_reset(b, 17000, "test");
    call(b, 18000, 0, GW_BRK_FAILURE);
    gw_breaker_snapshot(b, 1000000000, &s);
    cr_assert_eq(s.calls, 0);
    gw_breaker_free(&b);
}

Test(breaker, forced_open_disabled_and_reset)
{
    gw_breaker_t *b = make_default();
    gw_breaker_force_open(b, 10, "maintenance");
    cr_assert_eq(call(b, 20, 0, GW_BRK_SUCCESS), GW_BRK_REJ_FORCED_OPEN);
    gw_breaker_tick(b, 10000000);
    expect_state(b, 10000000, GW_BRK_FORCED_OPEN); /* no timed exit */
    gw_breaker_disable(b, 10000001, NULL);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(call(b, 10000002, 0, GW_BRK_FAILURE), GW_BRK_PERMITTED);
    expect_state(b, 10000002, GW_BRK_DISABLED);
    gw_breaker_reset(b, 10000003, "operator");
    expect_state(b, 10000003, GW_BRK_CLOSED);
    for (int i = 0; i < 5; i++)
        call(b, 10000004, 0, GW_BRK_FAILURE);
    expect_state(b, 10000004, GW_BRK_OPEN);

    /* A permit taken before a reset does not free a slot of the new period. */
    gw_breaker_reset(b, 10000005, NULL);
    gw_brk_permit_t p;
    cr_assert_eq(gw_breaker_acquire(b, 10000006, &p), GW_BRK_PERMITTED);
    gw_breaker_force_open(b, 10000007, NULL);
    gw_breaker_record(&p, GW_BRK_FAILURE, 10000008);
    expect_state(b, 10000008, GW_BRK_FORCED_OPEN);
    gw_breaker_free(&b);
}

Test(breaker, journal_is_bounded_and_rendered_as_json)
{
    gw_brk_config_t c;
    gw_brk_config_default(&c);
    c.journal_cap = 3;
    gw_breaker_t *b = make(&c);
    for (int i = 0; i < 5; i++)
        call(b, 1000, 0, GW_BRK_FAILURE);          /* closed -> open at 1000 */
    gw_breaker_tick(b, 61000);                     /* open -> half_open */
    call(b, 61000, 0, GW_BRK_FAILURE);             /* half_open -> open */
    gw_breaker_force_open(b, 62000, "say \"no\""); /* open -> forced_open */
    cm_buf_t j;
    cm_buf_init(&j, 1 << 16);
    cr_assert_eq(gw_breaker_json(b, 62000, 1800000062000, &j), CM_OK);
    const char *want =
        "{\"name\":\"calcom\",\"state\":\"forced_open\",\"calls\":0,\"failures\":0,\"slow\":0,"
        "\"consecutive_failures\":0,\"half_open_in_flight\":0,\"open_remaining_ms\":0,"
        "\"transitions_total\":4,\"rejected_total\":0,\"journal\":["
        "{\"at_ms\":1800000061000,\"from\":\"open\",\"to\":\"half_open\","
        "\"reason\":\"open wait elapsed\"},"
        "{\"at_ms\":1800000061000,\"from\":\"half_open\",\"to\":\"open\","
        "\"reason\":\"failure in half_open\"},"
        "{\"at_ms\":1800000062000,\"from\":\"open\",\"to\":\"forced_open\","
        "\"reason\":\"say \\\"no\\\"\"}]}";
    cr_assert_str_eq(j.data, want);
    cm_buf_free(&j);
    gw_breaker_free(&b);
}

/* ---- threads ---------------------------------------------------------------------- */

#define NTHREADS 8

typedef struct {
    gw_breaker_t *b;
    pthread_barrier_t *bar;
    int64_t now;
    int permitted;
    gw_brk_permit_t held;
    int holds;
} worker_t;

static void *grab(void *arg)
{
    worker_t *w = arg;
    pthread_barrier_wait(w->bar);
    for (int i = 0; i < 1000; i++) {
        gw_brk_permit_t p;
        if (gw_breaker_acquire(w->b, w->now, &p) != GW_BRK_PERMITTED)
            continue;
        if (!w->holds) {
            w->held = p; /* keep one slot until the main thread checks */
            w->holds = 1;
            w->permitted++;
        } else {
            gw_breaker_release(&p, w->now);
        }
    }
    return NULL;
}

Test(breaker, threads_never_exceed_the_half_open_permits)
{
    gw_breaker_t *b = make_default();
    for (int i = 0; i < 5; i++)
        call(b, 0, 0, GW_BRK_FAILURE);
    pthread_t th[NTHREADS];
    worker_t w[NTHREADS];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (worker_t){.b = b, .bar = &bar, .now = 60000};
        pthread_create(&th[i], NULL, grab, &w[i]);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    int holders = 0;
    for (int i = 0; i < NTHREADS; i++)
        holders += w[i].holds;
    /* Each thread keeps at most one permit, so the ones kept are the slots still taken. */
    gw_brk_snapshot_t s;
    gw_breaker_snapshot(b, 60000, &s);
    cr_assert_eq(s.half_open_in_flight, holders);
    cr_assert(holders >= 1 && holders <= 3, "holders %d", holders);
    for (int i = 0; i < NTHREADS; i++)
        if (w[i].holds)
            gw_breaker_record(&w[i].held, GW_BRK_SUCCESS, 60001);
    gw_breaker_snapshot(b, 60001, &s);
    cr_assert_eq(s.half_open_in_flight, 0);
    cr_assert_eq(s.state, holders >= 2 ? GW_BRK_CLOSED : GW_BRK_HALF_OPEN);
    gw_breaker_free(&b);
}

static void *hammer(void *arg)
{
    worker_t *w = arg;
    pthread_barrier_wait(w->bar);
    for (int i = 0; i < 20000; i++) {
        int64_t now = w->now + i * 10;
        gw_brk_permit_t p;
        if (gw_breaker_acquire(w->b, now, &p) != GW_BRK_PERMITTED)
            continue;
        w->permitted++;
        if (i % 7 == 0)
            gw_breaker_release(&p, now + 1);
        else
            gw_breaker_record(&p, (i % 4) ? GW_BRK_FAILURE : GW_BRK_SUCCESS, now + 1);
    }
    return NULL;
}

Test(breaker, threads_hammering_leave_a_consistent_state)
{
    gw_brk_config_t c;
    gw_brk_config_default(&c);
    c.open_wait_ms = 500;
    c.consecutive_failures = 3;
    gw_breaker_t *b = make(&c);
    pthread_t th[NTHREADS];
    worker_t w[NTHREADS];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (worker_t){.b = b, .bar = &bar, .now = 0};
        pthread_create(&th[i], NULL, hammer, &w[i]);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    gw_brk_snapshot_t s;
    gw_breaker_snapshot(b, 200001, &s);
    /* Every permit was finished, so no slot may remain taken. */
    cr_assert_eq(s.half_open_in_flight, 0);
    cr_assert(s.transitions > 0);
    cr_assert(s.calls >= 0 && s.failures >= 0 && s.failures <= s.calls);
    gw_breaker_free(&b);
}
