/* gw_policy.c - one outbound call through rate limit > breaker > timeout > retry. */
#include "gw_policy.h"

#include "cm_clock.h"

static int64_t real_mono(void *ud)
{
    (void)ud;
    return cm_clock_mono_ms();
}

static int64_t real_wall(void *ud)
{
    (void)ud;
    return cm_clock_now_ms();
}

static int real_sleep(void *ud, int64_t ms)
{
    (void)ud;
    cm_clock_sleep_ms(ms);
    return 0;
}

void gw_policy_clock_real(gw_policy_clock_t *c)
{
    *c = (gw_policy_clock_t){
        .mono_ms = real_mono, .wall_ms = real_wall, .sleep_ms = real_sleep, .ud = NULL};
}

const char *gw_policy_status_name(gw_policy_status_t s)
{
    static const char *const names[] = {"done",         "failed",   "breaker_open",
                                        "rate_limited", "deadline", "aborted"};
    return (unsigned)s < 6 ? names[s] : "?";
}

void gw_policy_classify_http(cm_err_t rc, const cm_http_response_t *resp, gw_att_result_t *out,
                             char *ra, size_t ra_cap, char *sr, size_t sr_cap)
{
    *out = (gw_att_result_t){.kind = GW_ATT_TRANSPORT};
    if (rc == CM_ECONNECT)
        out->kind = GW_ATT_CONNECT;
    else if (rc == CM_ETIMEOUT)
        out->kind = GW_ATT_TIMEOUT;
    else if (rc == CM_OK && resp->status > 0) {
        out->kind = GW_ATT_OK;
        out->status = (int)resp->status;
        out->retry_after = cm_http_response_header(resp, "Retry-After", ra, ra_cap);
        /* Cal.com's throttler sends no Retry-After on its 429: the wait is in
         * X-RateLimit-Reset-<Name>, seconds, for its "default" and "create-booking"
         * throttlers (docs/providers-calcom.md, R3 and R5). Without it the 429s were retried
         * a few times within a second and the call gave up on a 60 s block. Only on a 429:
         * elsewhere the header is the window's rest, not an answer to wait for. */
        if (!out->retry_after && resp->status == 429)
            out->retry_after =
                cm_http_response_header(resp, "X-RateLimit-Reset-Default", ra, ra_cap);
        if (!out->retry_after && resp->status == 429)
            out->retry_after =
                cm_http_response_header(resp, "X-RateLimit-Reset-Create-booking", ra, ra_cap);
        out->should_retry = cm_http_response_header(resp, "Stripe-Should-Retry", sr, sr_cap);
    }
}

static void emit(const gw_policy_t *p, gw_policy_event_t e)
{
    if (p->on_event)
        p->on_event(p->event_ud, p, &e);
}

/* A 401 is a failure too: the key itself is refused (revoked, mistyped, expired), so
 * every call with it will fail until a person changes it. It is not retried (gw_retry:
 * not a retryable status), and counted here it opens the breaker of that key alone (the
 * stacks are per API key, gw_outbound.h): the key's calls then wait for the breaker
 * instead of each costing a request that cannot succeed. Other 4xx are answers about one
 * request (a taken slot, a bad field) and say nothing of the key's health. */
static int is_failure(const gw_att_result_t *r)
{
    return r->kind == GW_ATT_CONNECT || r->kind == GW_ATT_TIMEOUT || r->kind == GW_ATT_TRANSPORT ||
           (r->kind == GW_ATT_OK && (r->status >= 500 || r->status == 401));
}

static int transient_verdict(gw_retry_verdict_t v)
{
    return v == GW_RETRY_NO_EXHAUSTED || v == GW_RETRY_NO_BUDGET || v == GW_RETRY_NO_RETRY_AFTER;
}

gw_policy_status_t gw_policy_run(const gw_policy_t *p, const gw_policy_clock_t *clk, cm_rand_t *rng,
                                 gw_attempt_fn fn, void *fn_ud, gw_policy_outcome_t *out)
{
    int64_t start = clk->mono_ms(clk->ud);
    int64_t deadline_at = p->deadline_ms > 0 ? start + p->deadline_ms : INT64_MAX;
    *out = (gw_policy_outcome_t){.status = GW_POL_FAILED, .verdict = GW_RETRY_NO_DONE};
    /* One deposit per operation, not per attempt: the budget is a share of operations. */
    if (p->budget)
        gw_retry_budget_deposit(p->budget, start);

    for (int attempt = 1;; attempt++) {
        int64_t now = clk->mono_ms(clk->ud);
        /* Where this attempt's token came from (the shared bucket or this process's own),
         * so that a token whose call is not made goes back there. */
        gw_rl_source_t token = GW_RL_SRC_NONE;

        /* 1. Rate limit. The wait is bounded by the deadline as well. */
        if (p->ratelimit) {
            int64_t wait = 0, max_wait = p->rl_max_wait_ms;
            if (deadline_at != INT64_MAX && deadline_at - now < max_wait)
                max_wait = deadline_at - now;
            gw_rl_source_t src = GW_RL_SRC_NONE;
            gw_rl_verdict_t v =
                gw_ratelimit_take(p->ratelimit, p->rl_key, now, p->rl_wait, max_wait, &wait, &src);
            if (src == GW_RL_SRC_FALLBACK)
                emit(p, (gw_policy_event_t){.type = GW_POL_EV_RL_FALLBACK, .attempt = attempt});
            if (v == GW_RL_REJECT) {
                emit(p, (gw_policy_event_t){.type = GW_POL_EV_RL_REJECT, .attempt = attempt});
                out->status = GW_POL_RATE_LIMITED;
                out->transient = 1;
                out->retry_in_ms = wait;
                break;
            }
            token = src;
            if (v == GW_RL_WAIT) {
                emit(p, (gw_policy_event_t){
                            .type = GW_POL_EV_RL_WAIT, .attempt = attempt, .delay_ms = wait});
                out->waited_ms += wait;
                if (clk->sleep_ms(clk->ud, wait) != 0) {
                    gw_ratelimit_give_back(p->ratelimit, p->rl_key, clk->mono_ms(clk->ud), token);
                    out->status = GW_POL_ABORTED;
                    break;
                }
                now = clk->mono_ms(clk->ud);
            }
        }

        /* 2. Breaker. */
        gw_brk_permit_t permit = {0};
        if (p->breaker) {
            gw_brk_verdict_t bv = gw_breaker_acquire(p->breaker, now, &permit);
            if (bv != GW_BRK_PERMITTED) {
                if (token != GW_RL_SRC_NONE)
                    gw_ratelimit_give_back(p->ratelimit, p->rl_key, now, token);
                emit(p, (gw_policy_event_t){
                            .type = GW_POL_EV_BREAKER_REJECT, .attempt = attempt, .breaker = bv});
                out->status = GW_POL_BREAKER_OPEN;
                out->transient = 1;
                out->retry_in_ms = permit.retry_in_ms;
                break;
            }
        }

        /* 3. Timeout: never past the deadline. */
        int64_t left = deadline_at - now;
        if (left <= 0) {
            gw_breaker_release(&permit, now);
            if (token != GW_RL_SRC_NONE)
                gw_ratelimit_give_back(p->ratelimit, p->rl_key, now, token);
            out->status = GW_POL_DEADLINE;
            out->transient = 1;
            break;
        }
        gw_attempt_ctx_t ctx = {.attempt = attempt,
                                .timeout_ms =
                                    p->attempt_timeout_ms > 0 ? p->attempt_timeout_ms : left};
        if (ctx.timeout_ms > left)
            ctx.timeout_ms = left;
        ctx.connect_timeout_ms = p->connect_timeout_ms > 0 && p->connect_timeout_ms < ctx.timeout_ms
                                     ? p->connect_timeout_ms
                                     : ctx.timeout_ms;

        /* 4. The attempt. */
        gw_att_result_t r = {.kind = GW_ATT_TRANSPORT};
        fn(fn_ud, &ctx, &r);
        int64_t end = clk->mono_ms(clk->ud);
        out->attempts = attempt;
        out->last = r;
        if (r.kind == GW_ATT_OK && r.status == 429)
            gw_breaker_release(&permit, end);
        else
            gw_breaker_record(&permit, is_failure(&r) ? GW_BRK_FAILURE : GW_BRK_SUCCESS, end);
        emit(p, (gw_policy_event_t){.type = GW_POL_EV_ATTEMPT,
                                    .attempt = attempt,
                                    .result = &r,
                                    .duration_ms = end - now});

        /* 5. Retry? */
        gw_retry_decision_t d = gw_retry_decide(&p->retry, p->safe, &r, attempt,
                                                clk->wall_ms(clk->ud), end, rng, p->budget);
        out->verdict = d.verdict;
        if (d.verdict != GW_RETRY_YES) {
            if (d.verdict == GW_RETRY_NO_DONE) {
                out->status = GW_POL_DONE;
            } else {
                out->status = GW_POL_FAILED;
                out->transient = transient_verdict(d.verdict);
                out->retry_in_ms = d.retry_after_ms > 0 ? d.retry_after_ms : 0;
                emit(p, (gw_policy_event_t){.type = GW_POL_EV_GIVE_UP,
                                            .attempt = attempt,
                                            .result = &r,
                                            .verdict = d.verdict});
            }
            break;
        }
        if (deadline_at != INT64_MAX && d.delay_ms >= deadline_at - end) {
            /* Sleeping would wake up with no time left for the attempt. The retry token
             * the decision took from the budget stays spent: the run wanted a retry, and
             * counting it keeps the budget conservative during an outage. */
            out->status = GW_POL_DEADLINE;
            out->transient = 1;
            out->retry_in_ms = d.delay_ms;
            emit(p, (gw_policy_event_t){.type = GW_POL_EV_GIVE_UP,
                                        .attempt = attempt,
                                        .result = &r,
                                        .verdict = d.verdict});
            break;
        }
        emit(p, (gw_policy_event_t){.type = GW_POL_EV_RETRY,
                                    .attempt = attempt,
                                    .result = &r,
                                    .delay_ms = d.delay_ms,
                                    .verdict = d.verdict});
        out->waited_ms += d.delay_ms;
        if (clk->sleep_ms(clk->ud, d.delay_ms) != 0) {
            out->status = GW_POL_ABORTED;
            break;
        }
    }
    return out->status;
}
