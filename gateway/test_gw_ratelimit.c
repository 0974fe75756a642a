/* test_gw_ratelimit.c - token buckets: burst, reservations, rejections, keys, threads. */
#include <criterion/criterion.h>
#include <pthread.h>

#include "gw_ratelimit.h"

static gw_ratelimit_t *make(double rate, double burst, size_t keys)
{
    gw_ratelimit_t *rl = NULL;
    cr_assert_eq(gw_ratelimit_new(rate, burst, keys, &rl), CM_OK);
    return rl;
}

Test(ratelimit, bad_arguments)
{
    gw_ratelimit_t *rl = NULL;
    cr_assert_eq(gw_ratelimit_new(0, 1, 1, &rl), CM_EINVAL);
    cr_assert_eq(gw_ratelimit_new(1, 0.5, 1, &rl), CM_EINVAL);
    cr_assert_eq(gw_ratelimit_new(1, 1, 0, &rl), CM_EINVAL);
    cr_assert_null(rl);
    rl = make(1, 1, 1);
    cr_assert_eq(gw_ratelimit_set(rl, "k", -1, 1, 0), CM_EINVAL);
    gw_ratelimit_free(&rl);
    cr_assert_null(rl);
    gw_ratelimit_free(&rl);
}

Test(ratelimit, burst_then_fail_fast)
{
    gw_ratelimit_t *rl = make(2, 5, 8); /* Cal.com-like: 120/min */
    int64_t w;
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(gw_ratelimit_acquire(rl, "calcom:k1", 0, 0, 0, &w), GW_RL_OK);
        cr_assert_eq(w, 0);
    }
    cr_assert_eq(gw_ratelimit_acquire(rl, "calcom:k1", 0, 0, 0, &w), GW_RL_REJECT);
    cr_assert_eq(w, 500, "the wait that would have been needed: %lld", (long long)w);
    /* Rejection leaves the bucket untouched: at 499 ms still nothing, at 500 ms one token. */
    cr_assert_eq(gw_ratelimit_acquire(rl, "calcom:k1", 499, 0, 0, &w), GW_RL_REJECT);
    cr_assert_eq(w, 1);
    cr_assert_eq(gw_ratelimit_acquire(rl, "calcom:k1", 500, 0, 0, &w), GW_RL_OK);
    cr_assert_eq(gw_ratelimit_acquire(rl, "calcom:k1", 500, 0, 0, &w), GW_RL_REJECT);
    gw_ratelimit_free(&rl);
}

Test(ratelimit, waiting_callers_get_queued_reservations)
{
    gw_ratelimit_t *rl = make(10, 1, 8); /* one token per 100 ms */
    int64_t w;
    cr_assert_eq(gw_ratelimit_acquire(rl, "stripe", 0, 1, 1000, &w), GW_RL_OK);
    for (int i = 1; i <= 5; i++) {
        cr_assert_eq(gw_ratelimit_acquire(rl, "stripe", 0, 1, 1000, &w), GW_RL_WAIT);
        cr_assert_eq(w, 100 * i, "caller %d waits %lld", i, (long long)w);
    }
    /* The next would wait 600 ms: more than a 550 ms limit, so it is refused. */
    cr_assert_eq(gw_ratelimit_acquire(rl, "stripe", 0, 1, 550, &w), GW_RL_REJECT);
    cr_assert_eq(w, 600);
    cr_assert_float_eq(gw_ratelimit_tokens(rl, "stripe", 0), -5.0, 1e-9);
    cr_assert_float_eq(gw_ratelimit_tokens(rl, "stripe", 500), 0.0, 1e-9);
    gw_ratelimit_free(&rl);
}

Test(ratelimit, long_run_rate_never_exceeds_the_limit)
{
    gw_ratelimit_t *rl = make(2, 10, 4);
    int64_t w, granted = 0;
    /* Ask every 10 ms for 60 s without waiting. */
    for (int64_t t = 0; t < 60000; t += 10)
        granted += gw_ratelimit_acquire(rl, "k", t, 0, 0, &w) == GW_RL_OK;
    /* burst + rate * 60 s, minus the last partial token. */
    cr_assert(granted >= 128 && granted <= 130, "granted %lld", (long long)granted);
    gw_ratelimit_free(&rl);
}

/* Cal.com counts the calls of the last minute (120 at most). Greedy callers through a
 * bucket at the window rate never put more than 120 in any 60 s window, burst included;
 * at 120/60 s they would have put about 130. */
static int max_in_window(double rate, double burst)
{
    gw_ratelimit_t *rl = make(rate, burst, 1);
    int64_t at[400], w;
    int n = 0, worst = 0;
    for (int64_t now = 0; now < 200000 && n < 400; now += 10)
        while (n < 400 && gw_ratelimit_acquire(rl, "calcom:k", now, 0, 0, &w) == GW_RL_OK)
            at[n++] = now;
    for (int i = 0, j = 0; i < n; i++) {
        while (at[i] - at[j] >= 60000)
            j++;
        worst = i - j + 1 > worst ? i - j + 1 : worst;
    }
    gw_ratelimit_free(&rl);
    return worst;
}

Test(ratelimit, window_rate_keeps_any_minute_under_the_limit)
{
    cr_assert_gt(max_in_window(120.0 / 60.0, 10), 125, "the plain rate overshoots by the burst");
    cr_assert_leq(max_in_window(gw_ratelimit_window_rate(120, 60000, 10), 10), 120);
    cr_assert_geq(max_in_window(gw_ratelimit_window_rate(120, 60000, 10), 10), 119);
    cr_assert_float_eq(gw_ratelimit_window_rate(120, 60000, 10), 110.0 / 60.0, 1e-9);
    cr_assert_float_eq(gw_ratelimit_window_rate(5, 60000, 10), 1.0 / 60.0, 1e-9);
}

Test(ratelimit, keys_are_independent_and_settable)
{
    gw_ratelimit_t *rl = make(1, 1, 8);
    int64_t w;
    cr_assert_eq(gw_ratelimit_set(rl, "stripe:live", 100, 100, 0), CM_OK);
    cr_assert_eq(gw_ratelimit_acquire(rl, "calcom:a", 0, 0, 0, &w), GW_RL_OK);
    cr_assert_eq(gw_ratelimit_acquire(rl, "calcom:a", 0, 0, 0, &w), GW_RL_REJECT);
    cr_assert_eq(gw_ratelimit_acquire(rl, "calcom:b", 0, 0, 0, &w), GW_RL_OK);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(gw_ratelimit_acquire(rl, "stripe:live", 0, 0, 0, &w), GW_RL_OK);
    cr_assert_eq(gw_ratelimit_acquire(rl, "stripe:live", 0, 0, 0, &w), GW_RL_REJECT);
    cr_assert_eq(w, 10);
    /* Lowering the burst caps the tokens held. */
    cr_assert_eq(gw_ratelimit_set(rl, "stripe:live", 100, 5, 1000), CM_OK);
    cr_assert_float_eq(gw_ratelimit_tokens(rl, "stripe:live", 1000), 5.0, 1e-9);
    cr_assert_eq(gw_ratelimit_keys(rl), 3);
    gw_ratelimit_free(&rl);
}

Test(ratelimit, refund_gives_the_token_back)
{
    gw_ratelimit_t *rl = make(1, 2, 8);
    int64_t w;
    cr_assert_eq(gw_ratelimit_acquire(rl, "k", 0, 0, 0, &w), GW_RL_OK);
    cr_assert_eq(gw_ratelimit_acquire(rl, "k", 0, 0, 0, &w), GW_RL_OK);
    gw_ratelimit_refund(rl, "k", 0);
    cr_assert_eq(gw_ratelimit_acquire(rl, "k", 0, 0, 0, &w), GW_RL_OK);
    gw_ratelimit_refund(rl, "k", 0);
    gw_ratelimit_refund(rl, "k", 0);
    gw_ratelimit_refund(rl, "k", 0); /* never above the burst */
    cr_assert_float_eq(gw_ratelimit_tokens(rl, "k", 0), 2.0, 1e-9);
    gw_ratelimit_refund(rl, "unknown", 0); /* nothing to do */
    cr_assert_eq(gw_ratelimit_keys(rl), 1);
    gw_ratelimit_free(&rl);
}

Test(ratelimit, key_count_is_bounded_by_lru)
{
    gw_ratelimit_t *rl = make(1, 1, 2);
    int64_t w;
    cr_assert_eq(gw_ratelimit_acquire(rl, "a", 0, 0, 0, &w), GW_RL_OK);
    cr_assert_eq(gw_ratelimit_acquire(rl, "b", 0, 0, 0, &w), GW_RL_OK);
    cr_assert_eq(gw_ratelimit_acquire(rl, "a", 0, 0, 0, &w), GW_RL_REJECT); /* a used last */
    cr_assert_eq(gw_ratelimit_acquire(rl, "c", 0, 0, 0, &w), GW_RL_OK);     /* evicts b */
    cr_assert_eq(gw_ratelimit_keys(rl), 2);
    cr_assert_eq(gw_ratelimit_acquire(rl, "a", 0, 0, 0, &w), GW_RL_REJECT); /* a kept */
    cr_assert_eq(gw_ratelimit_acquire(rl, "b", 0, 0, 0, &w), GW_RL_OK);     /* b is new */
    gw_ratelimit_free(&rl);
}

typedef struct {
    gw_ratelimit_t *rl;
    pthread_barrier_t *bar;
    int ok, wait;
} th_t;

static void *grab(void *arg)
{
    th_t *t = arg;
    int64_t w;
    pthread_barrier_wait(t->bar);
    for (int i = 0; i < 500; i++) {
        gw_rl_verdict_t v = gw_ratelimit_acquire(t->rl, "shared", 1000, i % 2, 1000, &w);
        t->ok += v == GW_RL_OK;
        t->wait += v == GW_RL_WAIT;
    }
    return NULL;
}

Test(ratelimit, threads_share_one_bucket_exactly)
{
    gw_ratelimit_t *rl = make(10, 50, 8);
    enum { N = 8 };
    pthread_t th[N];
    th_t t[N];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, N);
    for (int i = 0; i < N; i++) {
        t[i] = (th_t){.rl = rl, .bar = &bar};
        pthread_create(&th[i], NULL, grab, &t[i]);
    }
    int ok = 0, wait = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ok += t[i].ok;
        wait += t[i].wait;
    }
    pthread_barrier_destroy(&bar);
    /* At one instant: exactly the burst goes at once, and 1 s of waiting buys 10 more. */
    cr_assert_eq(ok, 50);
    cr_assert_eq(wait, 10);
    gw_ratelimit_free(&rl);
}
