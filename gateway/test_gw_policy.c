/* test_gw_policy.c - the whole stack with a fake attempt function and a fake clock: no test
 * sleeps, time moves only when the fake says so. */
#include <criterion/criterion.h>
#include <string.h>

#include "gw_policy.h"

#define WALL0 784111777000LL /* Sun, 06 Nov 1994 08:49:37 GMT */

/* ---- fakes ------------------------------------------------------------------------- */

typedef struct {
    int64_t now; /* monotonic ms */
    int64_t slept[64];
    int nslept;
    int abort_after; /* sleeps allowed before a sleep is cut short; -1: never */
} fake_clock_t;

static int64_t f_mono(void *ud)
{
    return ((fake_clock_t *)ud)->now;
}

static int64_t f_wall(void *ud)
{
    return WALL0 + ((fake_clock_t *)ud)->now;
}

static int f_sleep(void *ud, int64_t ms)
{
    fake_clock_t *c = ud;
    cr_assert_geq(ms, 0);
    if (c->abort_after >= 0 && c->nslept >= c->abort_after)
        return 1;
    if (c->nslept < 64)
        c->slept[c->nslept] = ms;
    c->nslept++;
    c->now += ms;
    return 0;
}

static gw_policy_clock_t clock_of(fake_clock_t *c)
{
    return (gw_policy_clock_t){.mono_ms = f_mono, .wall_ms = f_wall, .sleep_ms = f_sleep, .ud = c};
}

/* A script of results, one per attempt (the last repeats); each attempt takes `takes` ms
 * of fake time, cut at the timeout it was given. */
typedef struct {
    fake_clock_t *clk;
    gw_att_result_t script[16];
    int n;
    int calls, first;
    int64_t takes;
    int64_t timeouts[16], connects[16];
} fake_att_t;

static void f_attempt(void *ud, const gw_attempt_ctx_t *ctx, gw_att_result_t *out)
{
    fake_att_t *a = ud;
    if (ctx->attempt == 1)
        a->first = a->calls; /* a new run */
    cr_assert_eq(ctx->attempt, a->calls - a->first + 1);
    cr_assert_leq(ctx->connect_timeout_ms, ctx->timeout_ms);
    if (a->calls < 16) {
        a->timeouts[a->calls] = ctx->timeout_ms;
        a->connects[a->calls] = ctx->connect_timeout_ms;
    }
    int i = a->calls < a->n ? a->calls : a->n - 1;
    a->calls++;
    *out = a->script[i];
    if (a->takes > ctx->timeout_ms) {
        a->clk->now += ctx->timeout_ms;
        *out = (gw_att_result_t){.kind = GW_ATT_TIMEOUT};
    } else {
        a->clk->now += a->takes;
    }
}

#define OK200 ((gw_att_result_t){.kind = GW_ATT_OK, .status = 200})
#define E503 ((gw_att_result_t){.kind = GW_ATT_OK, .status = 503})

typedef struct {
    int n[6];
} counts_t;

static void on_event(void *ud, const gw_policy_t *p, const gw_policy_event_t *e)
{
    cr_assert_str_eq(p->provider, "calcom");
    ((counts_t *)ud)->n[e->type]++;
}

static gw_policy_t policy(void)
{
    gw_policy_t p = {.provider = "calcom", .operation = "slots", .safe = 1};
    gw_retry_config_default(&p.retry); /* 4 attempts, 200 ms base, cap 10 s */
    p.connect_timeout_ms = 2000;
    p.attempt_timeout_ms = 5000;
    return p;
}

static gw_breaker_t *breaker(void)
{
    gw_brk_config_t c;
    gw_breaker_t *b = NULL;
    gw_brk_config_default(&c);
    cr_assert_eq(gw_breaker_new("calcom", &c, &b, NULL), CM_OK);
    return b;
}

/* ---- tests ------------------------------------------------------------------------- */

Test(policy, success_first_time)
{
    fake_clock_t clk = {.now = 1000, .abort_after = -1};
    gw_policy_clock_t c = clock_of(&clk);
    fake_att_t a = {.clk = &clk, .script = {OK200}, .n = 1, .takes = 30};
    gw_policy_t p = policy();
    counts_t ev = {0};
    p.on_event = on_event;
    p.event_ud = &ev;
    cm_rand_t rng;
    cm_rand_seed(&rng, 1);
    gw_policy_outcome_t o;
    cr_assert_eq(gw_policy_run(&p, &c, &rng, f_attempt, &a, &o), GW_POL_DONE);
    cr_assert_eq(o.attempts, 1);
    cr_assert_eq(o.waited_ms, 0);
    cr_assert_eq(o.last.status, 200);
    cr_assert_eq(clk.nslept, 0);
    cr_assert_eq(a.timeouts[0], 5000);
    cr_assert_eq(a.connects[0], 2000);
    cr_assert_eq(ev.n[GW_POL_EV_ATTEMPT], 1);
    cr_assert_eq(ev.n[GW_POL_EV_RETRY], 0);
    cr_assert_str_eq(gw_policy_status_name(o.status), "done");
}

Test(policy, transient_errors_are_retried_with_jittered_backoff)
{
    fake_clock_t clk = {.abort_after = -1};
    gw_policy_clock_t c = clock_of(&clk);
    fake_att_t a = {
        .clk = &clk, .script = {E503, {.kind = GW_ATT_CONNECT}, OK200}, .n = 3, .takes = 10};
    gw_policy_t p = policy();
    gw_breaker_t *b = breaker();
    p.breaker = b;
    cm_rand_t rng;
    cm_rand_seed(&rng, 2);
    gw_policy_outcome_t o;
    cr_assert_eq(gw_policy_run(&p, &c, &rng, f_attempt, &a, &o), GW_POL_DONE);
    cr_assert_eq(o.attempts, 3);
    cr_assert_eq(clk.nslept, 2);
    cr_assert(clk.slept[0] <= 200 && clk.slept[1] <= 400, "%lld %lld", (long long)clk.slept[0],
              (long long)clk.slept[1]);
    cr_assert_eq(o.waited_ms, clk.slept[0] + clk.slept[1]);
    gw_brk_snapshot_t s;
    gw_breaker_snapshot(b, clk.now, &s);
    cr_assert_eq(s.calls, 3);
    cr_assert_eq(s.failures, 2);
    gw_breaker_free(&b);
}

Test(policy, retry_after_is_honoured)
{
    fake_clock_t clk = {.abort_after = -1};
    gw_policy_clock_t c = clock_of(&clk);
    fake_att_t a = {.clk = &clk,
                    .script = {{.kind = GW_ATT_OK, .status = 429, .retry_after = "3"},
                               {.kind = GW_ATT_OK,
                                .status = 503,
                                .retry_after = "Sun, 06 Nov 1994 08:49:47 GMT"},
                               OK200},
                    .n = 3};
    gw_policy_t p = policy();
    p.safe = 0; /* 429 is retried even for an unsafe operation... */
    cm_rand_t rng;
    cm_rand_seed(&rng, 3);
    gw_policy_outcome_t o;
    cr_assert_eq(gw_policy_run(&p, &c, &rng, f_attempt, &a, &o), GW_POL_FAILED);
    cr_assert_eq(o.verdict, GW_RETRY_NO_UNSAFE, "...but a 503 is not: %s",
                 gw_retry_verdict_name(o.verdict));
    cr_assert_eq(clk.nslept, 1);
    cr_assert_eq(clk.slept[0], 3000);
    cr_assert_eq(o.transient, 0);

    /* Safe: the HTTP-date is 10 s after WALL0, i.e. 7 s after the second attempt. */
    clk = (fake_clock_t){.abort_after = -1};
    a.calls = 0;
    p.safe = 1;
    cr_assert_eq(gw_policy_run(&p, &c, &rng, f_attempt, &a, &o), GW_POL_DONE);
    cr_assert_eq(clk.nslept, 2);
    cr_assert_eq(clk.slept[0], 3000);
    cr_assert_eq(clk.slept[1], 7000);
}

Test(policy, permanent_answers_are_not_retried_and_refusals_are_answers)
{
    fake_clock_t clk = {.abort_after = -1};
    gw_policy_clock_t c = clock_of(&clk);
    fake_att_t a = {.clk = &clk, .script = {{.kind = GW_ATT_OK, .status = 400}}, .n = 1};
    gw_policy_t p = policy();
    cm_rand_t rng;
    cm_rand_seed(&rng, 4);
    gw_policy_outcome_t o;
    cr_assert_eq(gw_policy_run(&p, &c, &rng, f_attempt, &a, &o), GW_POL_FAILED);
    cr_assert_eq(o.verdict, GW_RETRY_NO_PERMANENT);
    cr_assert_eq(o.attempts, 1);
    cr_assert_eq(o.transient, 0);
    a = (fake_att_t){.clk = &clk, .script = {{.kind = GW_ATT_REFUSED}}, .n = 1};
    cr_assert_eq(gw_policy_run(&p, &c, &rng, f_attempt, &a, &o), GW_POL_DONE);
    cr_assert_eq(o.last.kind, GW_ATT_REFUSED);
}

Test(policy, exhausted_attempts_are_transient)
{
    fake_clock_t clk = {.abort_after = -1};
    gw_policy_clock_t c = clock_of(&clk);
    fake_att_t a = {.clk = &clk, .script = {E503}, .n = 1};
    gw_policy_t p = policy();
    counts_t ev = {0};
    p.on_event = on_event;
    p.event_ud = &ev;
    cm_rand_t rng;
    cm_rand_seed(&rng, 5);
    gw_policy_outcome_t o;
    cr_assert_eq(gw_policy_run(&p, &c, &rng, f_attempt, &a, &o), GW_POL_FAILED);
    cr_assert_eq(o.attempts, 4);
    cr_assert_eq(o.verdict, GW_RETRY_NO_EXHAUSTED);
    cr_assert_eq(o.transient, 1);
    cr_assert_eq(ev.n[GW_POL_EV_ATTEMPT], 4);
    cr_assert_eq(ev.n[GW_POL_EV_RETRY], 3);
    cr_assert_eq(ev.n[GW_POL_EV_GIVE_UP], 1);
}

/* The breaker scenario at unit level: 5 failures open it, nothing reaches the
 * provider while open, after 60 s exactly the half-open calls pass and 2 successes close. */
Test(policy, breaker_opens_blocks_and_recovers)
{
    fake_clock_t clk = {.abort_after = -1};
    gw_policy_clock_t c = clock_of(&clk);
    gw_policy_t p = policy();
    gw_breaker_t *b = breaker();
    p.breaker = b;
    p.retry.max_attempts = 1;
    cm_rand_t rng;
    cm_rand_seed(&rng, 6);
    gw_policy_outcome_t o;
    fake_att_t a = {.clk = &clk, .script = {{.kind = GW_ATT_TIMEOUT}}, .n = 1, .takes = 100};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(gw_policy_run(&p, &c, &rng, f_attempt, &a, &o), GW_POL_FAILED);
    cr_assert_eq(a.calls, 5);
    int64_t opened = clk.now;
    for (int i = 0; i < 10; i++) {
        clk.now += 1000;
        cr_assert_eq(gw_policy_run(&p, &c, &rng, f_attempt, &a, &o), GW_POL_BREAKER_OPEN);
        cr_assert_eq(o.retry_in_ms, opened + 60000 - clk.now);
        cr_assert_eq(o.attempts, 0);
        cr_assert_eq(o.transient, 1);
    }
    cr_assert_eq(a.calls, 5, "no call reaches the provider while open");
    clk.now = opened + 60000;
    fake_att_t ok = {.clk = &clk, .script = {OK200}, .n = 1};
    cr_assert_eq(gw_policy_run(&p, &c, &rng, f_attempt, &ok, &o), GW_POL_DONE);
    cr_assert_eq(gw_breaker_state(b, clk.now), GW_BRK_HALF_OPEN);
    ok.calls = 0;
    cr_assert_eq(gw_policy_run(&p, &c, &rng, f_attempt, &ok, &o), GW_POL_DONE);
    cr_assert_eq(gw_breaker_state(b, clk.now), GW_BRK_CLOSED);
    gw_breaker_free(&b);
}

Test(policy, rate_429_does_not_count_against_the_breaker)
{
    fake_clock_t clk = {.abort_after = -1};
    gw_policy_clock_t c = clock_of(&clk);
    gw_policy_t p = policy();
    gw_breaker_t *b = breaker();
    p.breaker = b;
    p.retry.max_attempts = 1;
    cm_rand_t rng;
    cm_rand_seed(&rng, 7);
    gw_policy_outcome_t o;
    fake_att_t a = {.clk = &clk, .script = {{.kind = GW_ATT_OK, .status = 429}}, .n = 1};
    for (int i = 0; i < 20; i++)
        gw_policy_run(&p, &c, &rng, f_attempt, &a, &o);
    cr_assert_eq(gw_breaker_state(b, clk.now), GW_BRK_CLOSED);
    gw_brk_snapshot_t s;
    gw_breaker_snapshot(b, clk.now, &s);
    cr_assert_eq(s.calls, 0);
    gw_breaker_free(&b);
}

Test(policy, rate_limit_fails_fast_or_waits)
{
    fake_clock_t clk = {.abort_after = -1};
    gw_policy_clock_t c = clock_of(&clk);
    gw_ratelimit_t *rl = NULL;
    cr_assert_eq(gw_ratelimit_new(2, 1, 8, &rl), CM_OK); /* 1 token per 500 ms */
    gw_policy_t p = policy();
    p.ratelimit = rl;
    p.rl_key = "calcom:k";
    p.rl_wait = 0;
    p.rl_max_wait_ms = 1000;
    cm_rand_t rng;
    cm_rand_seed(&rng, 8);
    gw_policy_outcome_t o;
    fake_att_t a = {.clk = &clk, .script = {OK200}, .n = 1};
    cr_assert_eq(gw_policy_run(&p, &c, &rng, f_attempt, &a, &o), GW_POL_DONE);
    cr_assert_eq(gw_policy_run(&p, &c, &rng, f_attempt, &a, &o), GW_POL_RATE_LIMITED);
    cr_assert_eq(o.retry_in_ms, 500);
    cr_assert_eq(a.calls, 1);
    p.rl_wait = 1;
    cr_assert_eq(gw_policy_run(&p, &c, &rng, f_attempt, &a, &o), GW_POL_DONE);
    cr_assert_eq(clk.nslept, 1);
    cr_assert_eq(clk.slept[0], 500);
    cr_assert_eq(o.waited_ms, 500);
    /* A token taken for a call the breaker then refuses is given back. */
    gw_breaker_t *b = breaker();
    gw_breaker_force_open(b, clk.now, "test");
    p.breaker = b;
    clk.now += 500; /* one token available again */
    cr_assert_eq(gw_policy_run(&p, &c, &rng, f_attempt, &a, &o), GW_POL_BREAKER_OPEN);
    cr_assert_float_eq(gw_ratelimit_tokens(rl, "calcom:k", clk.now), 1.0, 1e-9);
    gw_breaker_free(&b);
    gw_ratelimit_free(&rl);
}

Test(policy, the_deadline_bounds_timeouts_and_backoff)
{
    fake_clock_t clk = {.abort_after = -1};
    gw_policy_clock_t c = clock_of(&clk);
    gw_policy_t p = policy();
    p.deadline_ms = 3000;
    p.attempt_timeout_ms = 2000;
    p.connect_timeout_ms = 500;
    p.retry.base_ms = 100;
    p.retry.max_attempts = 10;
    cm_rand_t rng;
    cm_rand_seed(&rng, 9);
    gw_policy_outcome_t o;
    /* Every attempt hangs until its timeout. */
    fake_att_t a = {.clk = &clk, .script = {OK200}, .n = 1, .takes = 1000000};
    gw_policy_status_t st = gw_policy_run(&p, &c, &rng, f_attempt, &a, &o);
    cr_assert_eq(st, GW_POL_DEADLINE, "%s", gw_policy_status_name(st));
    cr_assert_eq(a.timeouts[0], 2000);
    cr_assert_eq(a.connects[0], 500);
    cr_assert_eq(a.timeouts[1], 1000 - clk.slept[0], "the second attempt gets what is left");
    cr_assert_leq(clk.now, 3000, "the run ended at %lld", (long long)clk.now);
    cr_assert_eq(o.transient, 1);
}

Test(policy, the_budget_caps_load_during_an_outage)
{
    fake_clock_t clk = {.abort_after = -1};
    gw_policy_clock_t c = clock_of(&clk);
    gw_retry_budget_config_t bc = {.ratio = 0.1, .min_per_s = 0, .window_s = 10};
    gw_retry_budget_t *budget = NULL;
    cr_assert_eq(gw_retry_budget_new(&bc, &budget, NULL), CM_OK);
    gw_policy_t p = policy();
    p.budget = budget;
    p.retry.base_ms = 0; /* no back-off, so the outage is dense */
    p.retry.cap_ms = 0;
    counts_t ev = {0};
    p.on_event = on_event;
    p.event_ud = &ev;
    cm_rand_t rng;
    cm_rand_seed(&rng, 10);
    gw_policy_outcome_t o;
    fake_att_t a = {.clk = &clk, .script = {E503}, .n = 1, .takes = 10};
    int budget_stops = 0;
    for (int i = 0; i < 500; i++) {
        a.calls = 0;
        gw_policy_run(&p, &c, &rng, f_attempt, &a, &o);
        budget_stops += o.verdict == GW_RETRY_NO_BUDGET;
    }
    /* 500 operations in ~6 s, all inside one 10 s window: at most 50 retries. */
    cr_assert_leq(ev.n[GW_POL_EV_RETRY], 50, "%d retries", ev.n[GW_POL_EV_RETRY]);
    cr_assert_geq(ev.n[GW_POL_EV_RETRY], 45);
    cr_assert_leq(ev.n[GW_POL_EV_ATTEMPT], 550);
    cr_assert_geq(budget_stops, 400);
    gw_retry_budget_free(&budget);
}

Test(policy, an_interrupted_sleep_aborts)
{
    fake_clock_t clk = {.abort_after = 0};
    gw_policy_clock_t c = clock_of(&clk);
    gw_policy_t p = policy();
    cm_rand_t rng;
    cm_rand_seed(&rng, 11);
    gw_policy_outcome_t o;
    fake_att_t a = {.clk = &clk, .script = {E503}, .n = 1};
    cr_assert_eq(gw_policy_run(&p, &c, &rng, f_attempt, &a, &o), GW_POL_ABORTED);
    cr_assert_eq(a.calls, 1);
}

Test(policy, the_real_clock_is_wired)
{
    gw_policy_clock_t c;
    gw_policy_clock_real(&c);
    cr_assert_gt(c.mono_ms(c.ud), 0);
    cr_assert_gt(c.wall_ms(c.ud), 1600000000000LL);
    cr_assert_eq(c.sleep_ms(c.ud, 0), 0);
}

Test(policy, http_results_are_classified)
{
    cm_http_response_t r = {.status = 503};
    char ra[64], sr[16];
    gw_att_result_t a;
    cm_buf_init(&r.headers, 4096);
    cm_buf_init(&r.body, 4096);
    cr_assert_eq(cm_buf_addstr(&r.headers, "Content-Type: application/json\r\n"
                                           "retry-after: 7\r\nStripe-Should-Retry: false\r\n"),
                 CM_OK);
    gw_policy_classify_http(CM_OK, &r, &a, ra, sizeof ra, sr, sizeof sr);
    cr_assert_eq(a.kind, GW_ATT_OK);
    cr_assert_eq(a.status, 503);
    cr_assert_str_eq(a.retry_after, "7");
    cr_assert_str_eq(a.should_retry, "false");
    cm_buf_reset(&r.headers);
    gw_policy_classify_http(CM_OK, &r, &a, ra, sizeof ra, sr, sizeof sr);
    cr_assert_null(a.retry_after);
    cr_assert_null(a.should_retry);
    /* Cal.com's 429 carries its wait in X-RateLimit-Reset-<Name>, and no Retry-After. */
    r.status = 429;
    cr_assert_eq(cm_buf_addstr(&r.headers, "X-RateLimit-Remaining-Default: 0\r\n"
                                           "X-RateLimit-Reset-Default: 60\r\n"),
                 CM_OK);
    gw_policy_classify_http(CM_OK, &r, &a, ra, sizeof ra, sr, sizeof sr);
    cr_assert_str_eq(a.retry_after, "60");
    cm_buf_reset(&r.headers);
    cr_assert_eq(cm_buf_addstr(&r.headers, "x-ratelimit-reset-create-booking: 42\r\n"), CM_OK);
    gw_policy_classify_http(CM_OK, &r, &a, ra, sizeof ra, sr, sizeof sr);
    cr_assert_str_eq(a.retry_after, "42");
    r.status = 200; /* elsewhere it is the window's rest, not a wait */
    gw_policy_classify_http(CM_OK, &r, &a, ra, sizeof ra, sr, sizeof sr);
    cr_assert_null(a.retry_after);
    gw_policy_classify_http(CM_ECONNECT, &r, &a, ra, sizeof ra, sr, sizeof sr);
    cr_assert_eq(a.kind, GW_ATT_CONNECT);
    gw_policy_classify_http(CM_ETIMEOUT, &r, &a, ra, sizeof ra, sr, sizeof sr);
    cr_assert_eq(a.kind, GW_ATT_TIMEOUT);
    gw_policy_classify_http(CM_EHTTP, &r, &a, ra, sizeof ra, sr, sizeof sr);
    cr_assert_eq(a.kind, GW_ATT_TRANSPORT);
    cm_http_response_free(&r);
}

/* ---- a rate limit shared with other instances ------------------------------------------ */

/* The shared bucket, played by another limiter on the fake clock, or failing. */
typedef struct {
    gw_ratelimit_t *remote;
    fake_clock_t *clk;
    cm_err_t fail;
    int refunds;
} fake_shared_t;

static cm_err_t fs_take(void *ud, const char *key, double rate, double burst, int64_t max_wait_ms,
                        gw_rl_verdict_t *v, int64_t *wait_ms)
{
    fake_shared_t *f = ud;
    (void)rate, (void)burst;
    if (f->fail)
        return f->fail;
    *v = gw_ratelimit_acquire(f->remote, key, f->clk->now, max_wait_ms > 0, max_wait_ms, wait_ms);
    return CM_OK;
}

static cm_err_t fs_refund(void *ud, const char *key, double rate, double burst)
{
    fake_shared_t *f = ud;
    (void)rate, (void)burst;
    f->refunds++;
    gw_ratelimit_refund(f->remote, key, f->clk->now);
    return CM_OK;
}

static void count_fallbacks(void *ud, const gw_policy_t *p, const gw_policy_event_t *e)
{
    (void)p;
    if (e->type == GW_POL_EV_RL_FALLBACK)
        ++*(int *)ud;
}

/* Tokens come from the shared bucket; one whose call the breaker refuses goes back there;
 * when the shared bucket fails the local one answers and the run says so (the metric). */
Test(policy, a_shared_rate_limit_is_used_given_back_and_fallen_back_from)
{
    fake_clock_t clk = {.abort_after = -1};
    gw_policy_clock_t c = clock_of(&clk);
    fake_shared_t f = {.clk = &clk};
    gw_ratelimit_t *rl = NULL;
    cr_assert_eq(gw_ratelimit_new(2, 1, 8, &rl), CM_OK);       /* 1 token per 500 ms */
    cr_assert_eq(gw_ratelimit_new(2, 1, 8, &f.remote), CM_OK); /* the shared bucket alike */
    gw_rl_shared_t sh = {.take = fs_take, .refund = fs_refund, .ud = &f};
    cr_assert_eq(gw_ratelimit_share(rl, &sh, "calcom"), CM_OK);
    int fallbacks = 0;
    gw_policy_t p = policy();
    p.ratelimit = rl;
    p.rl_key = "cal_key";
    p.rl_wait = 1;
    p.rl_max_wait_ms = 1000;
    p.on_event = count_fallbacks;
    p.event_ud = &fallbacks;
    cm_rand_t rng;
    cm_rand_seed(&rng, 9);
    gw_policy_outcome_t o;
    fake_att_t a = {.clk = &clk, .script = {OK200}, .n = 1};
    cr_assert_eq(gw_policy_run(&p, &c, &rng, f_attempt, &a, &o), GW_POL_DONE);
    cr_assert_eq(gw_policy_run(&p, &c, &rng, f_attempt, &a, &o), GW_POL_DONE);
    cr_assert_eq(o.waited_ms, 500, "the shared bucket's reservation is slept");
    cr_assert_float_eq(gw_ratelimit_tokens(rl, "cal_key", clk.now), 1.0, 1e-9,
                       "the local bucket is not used while the shared one answers");
    /* The breaker refuses: the shared token is given back to the shared bucket. */
    gw_breaker_t *b = breaker();
    gw_breaker_force_open(b, clk.now, "test");
    p.breaker = b;
    clk.now += 500;
    cr_assert_eq(gw_policy_run(&p, &c, &rng, f_attempt, &a, &o), GW_POL_BREAKER_OPEN);
    cr_assert_eq(f.refunds, 1);
    cr_assert_eq(a.calls, 2);
    p.breaker = NULL;
    /* The shared bucket fails: the local bucket answers and the run reports the fallback. */
    f.fail = CM_ESTORE;
    cr_assert_eq(gw_policy_run(&p, &c, &rng, f_attempt, &a, &o), GW_POL_DONE);
    cr_assert_eq(fallbacks, 1);
    cr_assert_float_eq(gw_ratelimit_tokens(rl, "cal_key", clk.now), 0.0, 1e-9);
    cr_assert_eq(a.calls, 3);
    gw_breaker_free(&b);
    gw_ratelimit_free(&rl);
    gw_ratelimit_free(&f.remote);
}

/* Every 5xx counts against the breaker, the 500 at the edge of the range included, and the
 * 4xx next to it do not: a 500 taken for a success (ci/mutants g22, >= 500 flipped to > 500)
 * passed every other test and the scenario suite, whose outages answer 503. One attempt per
 * run; a status per run; the failures counted in the breaker's window. */
Test(policy, every_5xx_from_500_counts_against_the_breaker_no_4xx_does)
{
    static const struct {
        int status, failure;
    } cases[] = {{500, 1}, {501, 1}, {502, 1}, {503, 1}, {504, 1}, {599, 1},
                 {499, 0}, {404, 0}, {409, 0}, {400, 0}, {200, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_clock_t clk = {.now = 1000, .abort_after = -1};
        gw_policy_clock_t c = clock_of(&clk);
        gw_policy_t p = policy();
        gw_breaker_t *b = breaker();
        p.breaker = b;
        p.retry.max_attempts = 1;
        cm_rand_t rng;
        cm_rand_seed(&rng, 11);
        gw_policy_outcome_t o;
        fake_att_t a = {
            .clk = &clk, .script = {{.kind = GW_ATT_OK, .status = cases[i].status}}, .n = 1};
        gw_policy_run(&p, &c, &rng, f_attempt, &a, &o);
        gw_brk_snapshot_t s;
        gw_breaker_snapshot(b, clk.now, &s);
        cr_assert_eq(s.calls, 1, "status %d: %d calls recorded", cases[i].status, s.calls);
        cr_assert_eq(s.failures, cases[i].failure, "status %d: %d failures, want %d",
                     cases[i].status, s.failures, cases[i].failure);
        cr_assert_eq(s.consecutive_failures, cases[i].failure, "status %d", cases[i].status);
        gw_breaker_free(&b);
    }
}
