/* test_gw_retry.c - retry rules, back-off envelope, Retry-After and HTTP dates, budget. */
#include <criterion/criterion.h>

#include "gw_retry.h"

#define NOW_WALL 784111777000LL /* Sun, 06 Nov 1994 08:49:37 GMT */

static gw_retry_config_t cfg(void)
{
    gw_retry_config_t c;
    gw_retry_config_default(&c);
    return c;
}

static gw_retry_verdict_t verdict(int safe, gw_att_kind_t kind, int status, const char *ra,
                                  const char *sr)
{
    gw_retry_config_t c = cfg();
    cm_rand_t rng;
    cm_rand_seed(&rng, 1);
    gw_att_result_t r = {.kind = kind, .status = status, .retry_after = ra, .should_retry = sr};
    return gw_retry_decide(&c, safe, &r, 1, NOW_WALL, 0, &rng, NULL).verdict;
}

#define EXPECT_VERDICT(want, ...)                                                                  \
    do {                                                                                           \
        gw_retry_verdict_t got_ = verdict(__VA_ARGS__);                                            \
        cr_assert_eq(got_, want, "verdict(%s): %s, expected %s", #__VA_ARGS__,                     \
                     gw_retry_verdict_name(got_), gw_retry_verdict_name(want));                    \
    } while (0)

Test(rules, success_and_definitive_answers_are_done)
{
    EXPECT_VERDICT(GW_RETRY_NO_DONE, 1, GW_ATT_OK, 200, NULL, NULL);
    EXPECT_VERDICT(GW_RETRY_NO_DONE, 0, GW_ATT_OK, 201, NULL, NULL);
    EXPECT_VERDICT(GW_RETRY_NO_DONE, 1, GW_ATT_OK, 304, NULL, NULL);
    EXPECT_VERDICT(GW_RETRY_NO_DONE, 1, GW_ATT_REFUSED, 0, NULL, NULL);
}

Test(rules, connect_errors_are_always_retried)
{
    EXPECT_VERDICT(GW_RETRY_YES, 0, GW_ATT_CONNECT, 0, NULL, NULL);
    EXPECT_VERDICT(GW_RETRY_YES, 1, GW_ATT_CONNECT, 0, NULL, NULL);
}

Test(rules, timeouts_transport_errors_and_5xx_only_when_safe)
{
    EXPECT_VERDICT(GW_RETRY_NO_UNSAFE, 0, GW_ATT_TIMEOUT, 0, NULL, NULL);
    EXPECT_VERDICT(GW_RETRY_YES, 1, GW_ATT_TIMEOUT, 0, NULL, NULL);
    EXPECT_VERDICT(GW_RETRY_NO_UNSAFE, 0, GW_ATT_TRANSPORT, 0, NULL, NULL);
    EXPECT_VERDICT(GW_RETRY_YES, 1, GW_ATT_TRANSPORT, 0, NULL, NULL);
    int fives[] = {500, 502, 503, 504, 599};
    for (size_t i = 0; i < sizeof fives / sizeof *fives; i++) {
        EXPECT_VERDICT(GW_RETRY_NO_UNSAFE, 0, GW_ATT_OK, fives[i], NULL, NULL);
        EXPECT_VERDICT(GW_RETRY_YES, 1, GW_ATT_OK, fives[i], NULL, NULL);
    }
}

Test(rules, status_409_only_when_safe_and_429_always)
{
    EXPECT_VERDICT(GW_RETRY_NO_UNSAFE, 0, GW_ATT_OK, 409, NULL, NULL);
    EXPECT_VERDICT(GW_RETRY_YES, 1, GW_ATT_OK, 409, NULL, NULL);
    EXPECT_VERDICT(GW_RETRY_YES, 0, GW_ATT_OK, 429, NULL, NULL);
    EXPECT_VERDICT(GW_RETRY_YES, 1, GW_ATT_OK, 429, "2", NULL);
}

Test(rules, other_4xx_never)
{
    int codes[] = {400, 401, 402, 403, 404, 405, 410, 413, 422, 451, 100};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
        EXPECT_VERDICT(GW_RETRY_NO_PERMANENT, 1, GW_ATT_OK, codes[i], NULL, NULL);
        EXPECT_VERDICT(GW_RETRY_NO_PERMANENT, 1, GW_ATT_OK, codes[i], "1", NULL);
    }
}

Test(rules, stripe_should_retry_wins)
{
    EXPECT_VERDICT(GW_RETRY_YES, 0, GW_ATT_OK, 400, NULL, "true");
    EXPECT_VERDICT(GW_RETRY_YES, 0, GW_ATT_OK, 500, NULL, "true");
    EXPECT_VERDICT(GW_RETRY_YES, 0, GW_ATT_TIMEOUT, 0, NULL, "True");
    EXPECT_VERDICT(GW_RETRY_NO_PROVIDER, 1, GW_ATT_OK, 503, NULL, "false");
    EXPECT_VERDICT(GW_RETRY_NO_PROVIDER, 1, GW_ATT_OK, 429, "1", "false");
    EXPECT_VERDICT(GW_RETRY_NO_PROVIDER, 1, GW_ATT_CONNECT, 0, NULL, "false");
    /* Garbage is ignored: the ordinary rules apply. */
    EXPECT_VERDICT(GW_RETRY_NO_PERMANENT, 1, GW_ATT_OK, 400, NULL, "maybe");
    EXPECT_VERDICT(GW_RETRY_YES, 1, GW_ATT_OK, 500, NULL, "truex");
    /* Success stays success whatever the header says. */
    EXPECT_VERDICT(GW_RETRY_NO_DONE, 1, GW_ATT_OK, 200, NULL, "true");
}

Test(rules, max_attempts)
{
    gw_retry_config_t c = cfg();
    c.max_attempts = 3;
    cm_rand_t rng;
    cm_rand_seed(&rng, 1);
    gw_att_result_t r = {.kind = GW_ATT_OK, .status = 503};
    cr_assert_eq(gw_retry_decide(&c, 1, &r, 1, NOW_WALL, 0, &rng, NULL).verdict, GW_RETRY_YES);
    cr_assert_eq(gw_retry_decide(&c, 1, &r, 2, NOW_WALL, 0, &rng, NULL).verdict, GW_RETRY_YES);
    cr_assert_eq(gw_retry_decide(&c, 1, &r, 3, NOW_WALL, 0, &rng, NULL).verdict,
                 GW_RETRY_NO_EXHAUSTED);
    c.max_attempts = 1;
    cr_assert_eq(gw_retry_decide(&c, 1, &r, 1, NOW_WALL, 0, &rng, NULL).verdict,
                 GW_RETRY_NO_EXHAUSTED);
}

Test(envelope, every_delay_is_within_full_jitter_bounds_and_spreads)
{
    gw_retry_config_t c = {
        .max_attempts = 20, .base_ms = 100, .factor = 2, .cap_ms = 5000, .max_retry_after_ms = 0};
    cm_rand_t rng;
    cm_rand_seed(&rng, 99);
    gw_att_result_t r = {.kind = GW_ATT_CONNECT};
    for (int n = 1; n < 20; n++) {
        int64_t ceiling = 100;
        for (int i = 1; i < n && ceiling < 5000; i++)
            ceiling *= 2;
        if (ceiling > 5000)
            ceiling = 5000;
        cr_assert_eq(gw_retry_ceiling_ms(&c, n), ceiling, "n=%d", n);
        int64_t lo = INT64_MAX, hi = -1;
        for (int i = 0; i < 3000; i++) {
            gw_retry_decision_t d = gw_retry_decide(&c, 0, &r, n, NOW_WALL, 0, &rng, NULL);
            cr_assert_eq(d.verdict, GW_RETRY_YES);
            cr_assert(d.delay_ms >= 0 && d.delay_ms <= ceiling, "n=%d delay %lld not in [0,%lld]",
                      n, (long long)d.delay_ms, (long long)ceiling);
            lo = d.delay_ms < lo ? d.delay_ms : lo;
            hi = d.delay_ms > hi ? d.delay_ms : hi;
        }
        cr_assert(lo <= ceiling / 20 && hi >= ceiling * 19 / 20, "n=%d range %lld..%lld", n,
                  (long long)lo, (long long)hi);
    }
    /* Huge attempt numbers and factors do not overflow. */
    c.factor = 100;
    cr_assert_eq(gw_retry_ceiling_ms(&c, 1000000), 5000);
}

Test(envelope, same_seed_same_delays)
{
    gw_retry_config_t c = cfg();
    cm_rand_t a, b;
    cm_rand_seed(&a, 5);
    cm_rand_seed(&b, 5);
    for (int n = 1; n < 10; n++)
        cr_assert_eq(gw_retry_backoff_ms(&c, n, &a), gw_retry_backoff_ms(&c, n, &b));
}

Test(envelope, retry_after_is_a_floor_and_a_too_long_one_stops)
{
    gw_retry_config_t c = cfg(); /* cap 10 s, max Retry-After 60 s */
    cm_rand_t rng;
    cm_rand_seed(&rng, 3);
    gw_att_result_t r = {.kind = GW_ATT_OK, .status = 429, .retry_after = "3"};
    for (int i = 0; i < 1000; i++) {
        gw_retry_decision_t d = gw_retry_decide(&c, 0, &r, 1, NOW_WALL, 0, &rng, NULL);
        cr_assert_eq(d.verdict, GW_RETRY_YES);
        cr_assert_eq(d.retry_after_ms, 3000);
        cr_assert(d.delay_ms >= 3000, "%lld", (long long)d.delay_ms);
        /* The floor replaces a shorter jitter; it does not add to it. */
        cr_assert(d.delay_ms <= 3000 || d.delay_ms <= gw_retry_ceiling_ms(&c, 1));
    }
    /* A Retry-After above the cap is honoured (the provider asked), up to the maximum. */
    r.retry_after = "45";
    gw_retry_decision_t d = gw_retry_decide(&c, 1, &r, 2, NOW_WALL, 0, &rng, NULL);
    cr_assert_eq(d.verdict, GW_RETRY_YES);
    cr_assert_eq(d.delay_ms, 45000);
    r.retry_after = "61";
    d = gw_retry_decide(&c, 1, &r, 2, NOW_WALL, 0, &rng, NULL);
    cr_assert_eq(d.verdict, GW_RETRY_NO_RETRY_AFTER);
    cr_assert_eq(d.retry_after_ms, 61000);
    /* 503 with an HTTP-date, 20 s ahead. */
    r.status = 503;
    r.retry_after = "Sun, 06 Nov 1994 08:49:57 GMT";
    d = gw_retry_decide(&c, 1, &r, 1, NOW_WALL, 0, &rng, NULL);
    cr_assert_eq(d.verdict, GW_RETRY_YES);
    cr_assert_eq(d.retry_after_ms, 20000);
    cr_assert_geq(d.delay_ms, 20000);
    /* An unparsable Retry-After is ignored: plain back-off. */
    r.retry_after = "soon";
    d = gw_retry_decide(&c, 1, &r, 1, NOW_WALL, 0, &rng, NULL);
    cr_assert_eq(d.verdict, GW_RETRY_YES);
    cr_assert_eq(d.retry_after_ms, -1);
    cr_assert_leq(d.delay_ms, 200);
}

Test(dates, three_http_date_forms)
{
    int64_t t = 0;
    cr_assert_eq(gw_retry_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", &t), 0);
    cr_assert_eq(t, NOW_WALL);
    t = 0;
    cr_assert_eq(gw_retry_parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", &t), 0);
    cr_assert_eq(t, NOW_WALL);
    t = 0;
    cr_assert_eq(gw_retry_parse_http_date("Sun Nov  6 08:49:37 1994", &t), 0);
    cr_assert_eq(t, NOW_WALL);
    cr_assert_eq(gw_retry_parse_http_date("Wed, 29 Feb 2040 23:59:59 GMT", &t), 0);
    cr_assert_eq(t, 2214172799000LL);
    cr_assert_eq(gw_retry_parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT", &t), 0);
    cr_assert_eq(t, 0);
    cr_assert_eq(gw_retry_parse_http_date("Wednesday, 09-Sep-26 10:00:00 GMT", &t), 0);
    cr_assert_eq(t, 1788948000000LL);
}

Test(dates, malformed_dates_are_refused)
{
    const char *bad[] = {"",
                         "Sun, 06 Nov 1994 08:49:37 UTC",
                         "Sun, 6 Nov 1994 08:49:37 GMT",
                         "Sun, 06 nov 1994 08:49:37 GMT",
                         "Sun, 31 Feb 1994 08:49:37 GMT",
                         "Sun, 29 Feb 1995 08:49:37 GMT",
                         "Sun, 06 Nov 1994 24:49:37 GMT",
                         "Sun, 06 Nov 1994 08:49:37 GMT junk",
                         "Xyz, 06 Nov 1994 08:49:37 GMT",
                         "Sunday, 06-Nov-1994 08:49:37 GMT",
                         "Sun Nov 6 08:49:37 1994",
                         "2050-09-05T09:00:00Z"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t t = 0;
        cr_assert_eq(gw_retry_parse_http_date(bad[i], &t), -1, "accepted \"%s\"", bad[i]);
    }
}

Test(dates, retry_after_values)
{
    int64_t w = -1;
    cr_assert_eq(gw_retry_parse_retry_after("120", NOW_WALL, &w), 0);
    cr_assert_eq(w, 120000);
    cr_assert_eq(gw_retry_parse_retry_after(" 0 ", NOW_WALL, &w), 0);
    cr_assert_eq(w, 0);
    cr_assert_eq(gw_retry_parse_retry_after("99999999999999999999", NOW_WALL, &w), 0);
    cr_assert_gt(w, 1000000000LL * 1000);
    cr_assert_eq(gw_retry_parse_retry_after("Sun, 06 Nov 1994 08:49:40 GMT", NOW_WALL, &w), 0);
    cr_assert_eq(w, 3000);
    cr_assert_eq(gw_retry_parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", NOW_WALL, &w), 0);
    cr_assert_eq(w, 0, "a date in the past means now");
    const char *bad[] = {"", "-1", "1.5", "12abc", "abc", "1 2"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(gw_retry_parse_retry_after(bad[i], NOW_WALL, &w), -1, "\"%s\"", bad[i]);
    cr_assert_eq(gw_retry_parse_retry_after(NULL, NOW_WALL, &w), -1);
}

/* ---- budget ------------------------------------------------------------------------ */

static gw_retry_budget_t *budget(double ratio, double min_per_s, int window_s)
{
    gw_retry_budget_config_t bc = {.ratio = ratio, .min_per_s = min_per_s, .window_s = window_s};
    gw_retry_budget_t *b = NULL;
    char err[CM_ERR_LEN];
    cr_assert_eq(gw_retry_budget_new(&bc, &b, err), CM_OK, "%s", err);
    return b;
}

Test(budget, config_is_checked)
{
    gw_retry_budget_config_t bc;
    gw_retry_budget_config_default(&bc);
    cr_assert_float_eq(bc.ratio, 0.2, 1e-9);
    bc.window_s = 0;
    gw_retry_budget_t *b = NULL;
    char err[CM_ERR_LEN];
    cr_assert_eq(gw_retry_budget_new(&bc, &b, err), CM_EINVAL);
    cr_assert_null(b);
    gw_retry_budget_free(&b);
}

Test(budget, floor_allows_a_few_retries_without_traffic)
{
    gw_retry_budget_t *b = budget(0.2, 1, 10);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(gw_retry_budget_withdraw(b, 5000), 1, "retry %d", i);
    cr_assert_eq(gw_retry_budget_withdraw(b, 5000), 0);
    /* Ten calls deposit two more retries. */
    for (int i = 0; i < 10; i++)
        gw_retry_budget_deposit(b, 5000);
    cr_assert_eq(gw_retry_budget_withdraw(b, 5000), 1);
    cr_assert_eq(gw_retry_budget_withdraw(b, 5000), 1);
    cr_assert_eq(gw_retry_budget_withdraw(b, 5000), 0);
    gw_retry_budget_stats_t s;
    gw_retry_budget_stats(b, 5000, &s);
    cr_assert_eq(s.calls, 10);
    cr_assert_eq(s.retries, 12);
    cr_assert_eq(s.rejected, 2);
    /* The window slides: 10 s later everything has left it. */
    gw_retry_budget_stats(b, 15000, &s);
    cr_assert_eq(s.calls, 0);
    cr_assert_eq(s.retries, 0);
    cr_assert_eq(gw_retry_budget_withdraw(b, 15000), 1);
    gw_retry_budget_free(&b);
    cr_assert_null(b);
}

/* A 100 % failure run: 20 calls per second for 100 s against a provider answering 503,
 * each call retried while the rules allow. Without a budget every call makes 4 attempts;
 * with one, retries stay within ratio * calls + the floor, and the rejections say so. */
Test(budget, caps_retries_under_a_total_outage)
{
    gw_retry_config_t c = cfg(); /* 4 attempts */
    gw_retry_budget_t *b = budget(0.2, 1, 10);
    cm_rand_t rng;
    cm_rand_seed(&rng, 11);
    gw_att_result_t fail = {.kind = GW_ATT_OK, .status = 503};
    long calls = 0, attempts = 0, budget_no = 0;
    for (int64_t t = 0; t < 100000; t += 50) {
        calls++;
        gw_retry_budget_deposit(b, t);
        for (int n = 1;; n++) {
            attempts++;
            gw_retry_decision_t d = gw_retry_decide(&c, 1, &fail, n, NOW_WALL, t, &rng, b);
            if (d.verdict == GW_RETRY_NO_BUDGET)
                budget_no++;
            if (d.verdict != GW_RETRY_YES)
                break;
        }
        gw_retry_budget_stats_t s;
        gw_retry_budget_stats(b, t, &s);
        cr_assert_leq((double)s.retries, 0.2 * (double)s.calls + 10.0 + 1e-9,
                      "t=%lld: %lld retries for %lld calls", (long long)t, (long long)s.retries,
                      (long long)s.calls);
    }
    double amplification = (double)attempts / (double)calls;
    cr_assert_eq(calls, 2000);
    /* 0.2 retries per call plus 1 per second: (2000 * 0.2 + 100) / 2000 = 0.25. */
    cr_assert(amplification <= 1.26, "load x%.3f", amplification);
    cr_assert(amplification >= 1.15, "the budget should still allow retries: x%.3f", amplification);
    cr_assert_gt(budget_no, 1000);
    gw_retry_budget_stats_t s;
    gw_retry_budget_stats(b, 100000, &s);
    cr_assert_eq((long)s.rejected, budget_no);
    gw_retry_budget_free(&b);
}

Test(budget, exhausted_and_permanent_answers_spend_nothing)
{
    gw_retry_config_t c = cfg();
    gw_retry_budget_t *b = budget(0, 0.1, 10); /* exactly one retry in the window */
    cm_rand_t rng;
    cm_rand_seed(&rng, 1);
    gw_att_result_t r404 = {.kind = GW_ATT_OK, .status = 404};
    gw_att_result_t r503 = {.kind = GW_ATT_OK, .status = 503};
    cr_assert_eq(gw_retry_decide(&c, 1, &r404, 1, NOW_WALL, 0, &rng, b).verdict,
                 GW_RETRY_NO_PERMANENT);
    cr_assert_eq(gw_retry_decide(&c, 1, &r503, 4, NOW_WALL, 0, &rng, b).verdict,
                 GW_RETRY_NO_EXHAUSTED);
    cr_assert_eq(gw_retry_decide(&c, 0, &r503, 1, NOW_WALL, 0, &rng, b).verdict,
                 GW_RETRY_NO_UNSAFE);
    cr_assert_eq(gw_retry_decide(&c, 1, &r503, 1, NOW_WALL, 0, &rng, b).verdict, GW_RETRY_YES);
    cr_assert_eq(gw_retry_decide(&c, 1, &r503, 1, NOW_WALL, 0, &rng, b).verdict,
                 GW_RETRY_NO_BUDGET);
    gw_retry_budget_free(&b);
}

/* ---- The worker's back-off between a job's attempts -------------------------------- */

#include "gw_config.h"
#include "gw_worker.h"

/* A failed job waits uniform in [0, min(cap, base * factor^(n-1))] before attempt n+1: the
 * same full-jitter rule as an outbound call's retries, one level up (gw_worker.h). The audit
 * found "fixed 3 retries with 100 ms sleep, no exponential backoff, no jitter"; a job back-off
 * of a fixed 100 ms (ci/mutants a05) or of the bare ceiling (a06) passed every other test and
 * the scenario suite. 2 000 draws per attempt with a fixed seed: every draw inside the
 * envelope, the largest near the ceiling (so it grows by the factor and stops at the cap),
 * the smallest near 0, and many distinct values (jitter). */
Test(job_backoff, full_jitter_under_an_exponential_ceiling_with_a_cap)
{
    gw_config_t c = {.backoff_base_ms = 100, .backoff_factor = 2.0, .backoff_cap_ms = 5000};
    cm_rand_t rng;
    cm_rand_seed(&rng, 7);
    const int64_t ceiling[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000};
    for (int n = 1; n <= 8; n++) {
        int64_t lo = INT64_MAX, hi = -1, prev = -1;
        int changes = 0;
        for (int i = 0; i < 2000; i++) {
            int64_t d = gw_worker_backoff_ms(&c, n, &rng);
            cr_assert(d >= 0 && d <= ceiling[n - 1], "attempt %d: %lld ms outside [0, %lld]", n,
                      (long long)d, (long long)ceiling[n - 1]);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
            changes += prev >= 0 && d != prev;
            prev = d;
        }
        cr_assert_geq(hi, ceiling[n - 1] * 95 / 100, "attempt %d: largest %lld ms of %lld", n,
                      (long long)hi, (long long)ceiling[n - 1]);
        cr_assert_leq(lo, ceiling[n - 1] * 5 / 100, "attempt %d: smallest %lld ms", n,
                      (long long)lo);
        cr_assert_geq(changes, 1500, "attempt %d: %d changes in 2000 draws", n, changes);
    }
}
