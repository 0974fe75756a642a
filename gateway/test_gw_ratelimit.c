/* test_gw_ratelimit.c - token buckets: burst, reservations, rejections, keys, threads, and
 * a bucket shared between processes (played by a fake). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

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

/* ---- a bucket shared between processes ------------------------------------------------ */

/* The shared side, played by another limiter (as the store's bucket would answer) that
 * records what it was asked, or fails as told. */
typedef struct {
    gw_ratelimit_t *remote;
    int64_t now;
    cm_err_t fail; /* CM_OK: answer */
    int takes, refunds;
    char last_key[96];
    double last_rate, last_burst;
    int64_t last_max_wait;
} fake_shared_t;

static cm_err_t f_take(void *ud, const char *key, double rate, double burst, int64_t max_wait_ms,
                       gw_rl_verdict_t *v, int64_t *wait_ms)
{
    fake_shared_t *f = ud;
    f->takes++;
    snprintf(f->last_key, sizeof f->last_key, "%s", key);
    f->last_rate = rate;
    f->last_burst = burst;
    f->last_max_wait = max_wait_ms;
    if (f->fail)
        return f->fail;
    cr_assert_eq(gw_ratelimit_set(f->remote, key, rate, burst, f->now), CM_OK);
    *v = gw_ratelimit_acquire(f->remote, key, f->now, max_wait_ms > 0, max_wait_ms, wait_ms);
    return CM_OK;
}

static cm_err_t f_refund(void *ud, const char *key, double rate, double burst)
{
    fake_shared_t *f = ud;
    (void)rate, (void)burst;
    f->refunds++;
    if (f->fail)
        return f->fail;
    gw_ratelimit_refund(f->remote, key, f->now);
    return CM_OK;
}

static void share(gw_ratelimit_t *rl, fake_shared_t *f)
{
    gw_rl_shared_t sh = {.take = f_take, .refund = f_refund, .ud = f};
    f->remote = make(1, 1, 8);
    cr_assert_eq(gw_ratelimit_share(rl, &sh, "calcom"), CM_OK);
}

/* Two limiters (two instances) on one shared bucket let through what one would, not twice
 * that; the bucket is named by a digest of the key, never the key. */
Test(ratelimit, two_limiters_sharing_a_bucket_get_one_limit_between_them)
{
    fake_shared_t f = {0};
    gw_ratelimit_t *a = make(2, 5, 8), *b = make(2, 5, 8);
    gw_rl_shared_t sh = {.take = f_take, .refund = f_refund, .ud = &f};
    share(a, &f);
    cr_assert_eq(gw_ratelimit_share(b, &sh, "calcom"), CM_OK);
    int64_t w;
    gw_rl_source_t src;
    int ok = 0;
    for (int i = 0; i < 10; i++) {
        ok += gw_ratelimit_take(a, "cal_live_secret", 0, 0, 0, &w, &src) == GW_RL_OK;
        ok += gw_ratelimit_take(b, "cal_live_secret", 0, 0, 0, &w, &src) == GW_RL_OK;
    }
    cr_assert_eq(ok, 5, "the burst is shared: %d went", ok);
    cr_assert_eq(f.takes, 20);
    cr_assert_float_eq(f.last_rate, 2.0, 1e-9);
    cr_assert_float_eq(f.last_burst, 5.0, 1e-9);
    cr_assert_eq(f.last_max_wait, 0, "no waiting allowed, none asked for");
    cr_assert_eq(strncmp(f.last_key, "calcom:", 7), 0, "%s", f.last_key);
    cr_assert_eq(strlen(f.last_key), 7 + 32, "%s", f.last_key);
    cr_assert_null(strstr(f.last_key, "secret"), "%s", f.last_key);
    /* Waiting callers are served in order from the shared bucket too. */
    cr_assert_eq(gw_ratelimit_take(a, "cal_live_secret", 0, 1, 2000, &w, &src), GW_RL_WAIT);
    cr_assert_eq(src, GW_RL_SRC_SHARED);
    cr_assert_eq(w, 500);
    cr_assert_eq(gw_ratelimit_take(b, "cal_live_secret", 0, 1, 2000, &w, &src), GW_RL_WAIT);
    cr_assert_eq(w, 1000);
    cr_assert_eq(f.last_max_wait, 2000);
    /* The local buckets were never touched. */
    cr_assert_float_eq(gw_ratelimit_tokens(a, "cal_live_secret", 0), 5.0, 1e-9);
    uint64_t shared = 0, fell = 0;
    gw_ratelimit_shared_stats(a, &shared, &fell);
    cr_assert(shared == 11 && fell == 0, "shared %llu fell back %llu", (unsigned long long)shared,
              (unsigned long long)fell);
    gw_ratelimit_free(&a);
    gw_ratelimit_free(&b);
    gw_ratelimit_free(&f.remote);
}

/* A key given its own rate and burst takes them to the shared bucket. */
Test(ratelimit, the_shared_bucket_gets_the_keys_own_rate_and_burst)
{
    fake_shared_t f = {0};
    gw_ratelimit_t *rl = make(2, 5, 8);
    share(rl, &f);
    int64_t w;
    gw_rl_source_t src;
    cr_assert_eq(gw_ratelimit_set(rl, "sk_live", 100, 40, 0), CM_OK);
    cr_assert_eq(gw_ratelimit_take(rl, "sk_live", 0, 0, 0, &w, &src), GW_RL_OK);
    cr_assert_float_eq(f.last_rate, 100.0, 1e-9);
    cr_assert_float_eq(f.last_burst, 40.0, 1e-9);
    gw_ratelimit_free(&rl);
    gw_ratelimit_free(&f.remote);
}

/* A shared bucket that fails: the local bucket answers (and says so), and the shared one
 * is left alone for GW_RL_SHARED_PAUSE_MS before it is asked again. */
Test(ratelimit, a_failing_shared_bucket_falls_back_to_the_local_one_for_a_while)
{
    fake_shared_t f = {.fail = CM_ESTORE};
    gw_ratelimit_t *rl = make(1, 2, 8);
    share(rl, &f);
    int64_t w;
    gw_rl_source_t src;
    cr_assert_eq(gw_ratelimit_take(rl, "k", 0, 0, 0, &w, &src), GW_RL_OK);
    cr_assert_eq(src, GW_RL_SRC_FALLBACK);
    cr_assert_eq(f.takes, 1);
    cr_assert_eq(gw_ratelimit_take(rl, "k", 10, 0, 0, &w, &src), GW_RL_OK);
    cr_assert_eq(src, GW_RL_SRC_FALLBACK, "the pause stands in for the failure");
    cr_assert_eq(f.takes, 1, "not asked during the pause");
    cr_assert_eq(gw_ratelimit_take(rl, "k", 20, 0, 0, &w, &src), GW_RL_REJECT,
                 "the local bucket still limits");
    cr_assert_eq(src, GW_RL_SRC_NONE);
    f.fail = CM_OK;
    cr_assert_eq(gw_ratelimit_take(rl, "k", GW_RL_SHARED_PAUSE_MS, 0, 0, &w, &src), GW_RL_OK);
    cr_assert_eq(src, GW_RL_SRC_SHARED, "asked again after the pause");
    cr_assert_eq(f.takes, 2);
    uint64_t shared = 0, fell = 0;
    gw_ratelimit_shared_stats(rl, &shared, &fell);
    cr_assert(shared == 1 && fell == 2, "shared %llu fell back %llu", (unsigned long long)shared,
              (unsigned long long)fell);
    gw_ratelimit_free(&rl);
    gw_ratelimit_free(&f.remote);
}

/* CM_EAGAIN: nothing to share (a SQLite store). Local from then on, not a failure. */
Test(ratelimit, nothing_to_share_means_local_for_good)
{
    fake_shared_t f = {.fail = CM_EAGAIN};
    gw_ratelimit_t *rl = make(1, 1, 8);
    share(rl, &f);
    int64_t w;
    gw_rl_source_t src;
    cr_assert_eq(gw_ratelimit_take(rl, "k", 0, 0, 0, &w, &src), GW_RL_OK);
    cr_assert_eq(src, GW_RL_SRC_LOCAL);
    cr_assert_eq(gw_ratelimit_take(rl, "k", 100000, 0, 0, &w, &src), GW_RL_OK);
    cr_assert_eq(f.takes, 1, "asked once");
    uint64_t fell = 1;
    gw_ratelimit_shared_stats(rl, NULL, &fell);
    cr_assert_eq(fell, 0);
    gw_ratelimit_free(&rl);
    gw_ratelimit_free(&f.remote);
}

/* A token goes back where it came from. */
Test(ratelimit, give_back_returns_the_token_to_its_bucket)
{
    fake_shared_t f = {0};
    gw_ratelimit_t *rl = make(1, 1, 8);
    share(rl, &f);
    int64_t w;
    gw_rl_source_t src;
    cr_assert_eq(gw_ratelimit_take(rl, "k", 0, 0, 0, &w, &src), GW_RL_OK);
    cr_assert_eq(src, GW_RL_SRC_SHARED);
    cr_assert_eq(gw_ratelimit_take(rl, "k", 0, 0, 0, &w, &src), GW_RL_REJECT);
    cr_assert_eq(src, GW_RL_SRC_NONE);
    gw_ratelimit_give_back(rl, "k", 0, GW_RL_SRC_SHARED);
    cr_assert_eq(f.refunds, 1);
    cr_assert_eq(gw_ratelimit_take(rl, "k", 0, 0, 0, &w, &src), GW_RL_OK, "the refund is there");
    gw_ratelimit_give_back(rl, "k", 0, GW_RL_SRC_NONE); /* nothing to give back */
    cr_assert_eq(f.refunds, 1);
    /* A fallback token goes back to the local bucket. */
    f.fail = CM_ESTORE;
    cr_assert_eq(gw_ratelimit_take(rl, "k", 0, 0, 0, &w, &src), GW_RL_OK);
    cr_assert_eq(src, GW_RL_SRC_FALLBACK);
    cr_assert_float_eq(gw_ratelimit_tokens(rl, "k", 0), 0.0, 1e-9);
    gw_ratelimit_give_back(rl, "k", 0, src);
    cr_assert_float_eq(gw_ratelimit_tokens(rl, "k", 0), 1.0, 1e-9);
    cr_assert_eq(f.refunds, 1);
    gw_ratelimit_free(&rl);
    gw_ratelimit_free(&f.remote);
}

Test(ratelimit, share_refuses_bad_arguments)
{
    gw_ratelimit_t *rl = make(1, 1, 8);
    gw_rl_shared_t sh = {.take = f_take, .refund = NULL, .ud = NULL};
    cr_assert_eq(gw_ratelimit_share(rl, &sh, "calcom"), CM_EINVAL);
    sh.refund = f_refund;
    cr_assert_eq(gw_ratelimit_share(rl, &sh, ""), CM_EINVAL);
    cr_assert_eq(gw_ratelimit_share(rl, NULL, "calcom"), CM_EINVAL);
    gw_ratelimit_free(&rl);
}
