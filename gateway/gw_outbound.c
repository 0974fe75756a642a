/* gw_outbound.c - the per-provider policy stacks and the HTTP attempt they wrap. */
#include "gw_outbound.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_log.h"
#include "gw_span.h"
#include "gw_otlp.h"

/* The breaker's transition hook feeds the transitions counter. Runs with the breaker's
 * lock held: only metric updates here. */
static void on_transition(void *ud, const char *name, gw_brk_state_t from, gw_brk_state_t to,
                          const char *reason, int64_t now_ms)
{
    gw_obs_t *obs = ud;
    gw_obs_count(obs->breaker_moves, GW_LV(name, gw_brk_state_name(from), gw_brk_state_name(to)));
    CM_WARN("gw.outbound", "breaker %s: %s -> %s (%s)", name, gw_brk_state_name(from),
            gw_brk_state_name(to), reason ? reason : "");
}

/* gw_breaker_state{provider,state}, computed at each scrape from the breakers themselves,
 * as /admin/breakers and /health/ready do: one series per state, 1 for the state the
 * breaker is in at that moment (open -> half_open on time included). Set from the
 * transition hook instead, a scrape between its two writes saw no state at 1 (or two),
 * and a breaker whose open wait had passed stayed "open" in /metrics until a call or an
 * idle lane moved it. This is the only writer of those series, and renders are
 * serialised, so a scrape sees exactly one state at 1 per provider. */
static void breaker_gauge(void *ud, gw_mfamily_t *f)
{
    gw_outbound_t *ob = ud;
    gw_prov_rt_t *const provs[] = {&ob->calcom, &ob->stripe, &ob->retell};
    for (size_t i = 0; i < sizeof provs / sizeof provs[0]; i++) {
        if (!provs[i]->breaker)
            continue;
        gw_brk_state_t st = gw_breaker_state(provs[i]->breaker, cm_clock_mono_ms());
        for (int s = 0; s < GW_BRK__STATES; s++)
            gw_gauge_set(
                gw_metrics_with(f, GW_LV(provs[i]->name, gw_brk_state_name((gw_brk_state_t)s))),
                s == (int)st);
    }
}

/* Another instance changed Cal.com availability (GW_NOTICE_SLOTS with the event type), or
 * notices may have been missed (no detail): the cached slots cannot be trusted. Runs on
 * the store's listener thread. */
static void on_notice(void *ud, gw_notice_t what, const char *detail)
{
    gw_outbound_t *ob = ud;
    char *end = NULL;
    if (what != GW_NOTICE_SLOTS)
        return;
    long long et = detail ? strtoll(detail, &end, 10) : 0;
    if (detail && et > 0 && end && *end == '\0')
        gw_slotcache_invalidate_event_type(ob->slots, NULL, et);
    else
        gw_slotcache_invalidate_all(ob->slots);
}

static cm_err_t prov_init(gw_prov_rt_t *p, const char *name, const gw_provider_t *cfg,
                          gw_obs_t *obs, char *err)
{
    gw_brk_config_t bc;
    gw_retry_budget_config_t rb;
    p->name = name;
    p->cfg = cfg;
    p->obs = obs;
    gw_brk_config_default(&bc);
    bc.consecutive_failures = cfg->breaker_failures;
    bc.failure_rate_pct = cfg->breaker_failure_pct;
    bc.window_size = cfg->breaker_window;
    bc.min_calls = cfg->breaker_window < 10 ? cfg->breaker_window : 10;
    bc.open_wait_ms = cfg->breaker_open_ms;
    bc.half_open_permits = cfg->breaker_half_open;
    bc.half_open_successes = cfg->breaker_successes;
    bc.slow_call_ms = cfg->breaker_slow_ms;
    bc.slow_rate_pct = cfg->breaker_slow_ms ? 50 : 0;
    cm_err_t rc = gw_breaker_new(name, &bc, &p->breaker, err);
    if (!rc) {
        gw_breaker_set_callback(p->breaker, on_transition, obs);
        rc = gw_ratelimit_new(gw_ratelimit_window_rate(cfg->rate_per_min, 60000, cfg->burst),
                              cfg->burst, 1024, &p->rl);
    }
    if (!rc) {
        gw_retry_budget_config_default(&rb);
        rb.ratio = cfg->budget_ratio;
        rc = gw_retry_budget_new(&rb, &p->budget, err);
    }
    return rc;
}

/* Retell's stack (providers.retell, for reconciliation), with its counters at 0 from the
 * start as gw_obs does for the other providers: an alert on their increase needs the
 * series before the first event. */
static cm_err_t retell_init(gw_outbound_t *ob, const gw_config_t *cfg, gw_obs_t *obs, char *err)
{
    static const char *const moves[][2] = {
        {"closed", "open"}, {"open", "half_open"}, {"half_open", "closed"}, {"half_open", "open"}};
    cm_err_t rc = prov_init(&ob->retell, "retell", &cfg->retell, obs, err);
    for (size_t k = 0; !rc && k < sizeof moves / sizeof moves[0]; k++)
        if (!gw_metrics_with(obs->breaker_moves, GW_LV("retell", moves[k][0], moves[k][1])))
            rc = CM_ENOMEM;
    if (!rc && (!gw_metrics_with(obs->budget_rejects, GW_LV("retell")) ||
                !gw_metrics_with(obs->rl_waits, GW_LV("retell")) ||
                !gw_metrics_with(obs->rl_rejects, GW_LV("retell"))))
        rc = CM_ENOMEM;
    return rc;
}

static void prov_free(gw_prov_rt_t *p)
{
    gw_breaker_free(&p->breaker);
    gw_ratelimit_free(&p->rl);
    gw_retry_budget_free(&p->budget);
}

cm_err_t gw_outbound_new(const gw_config_t *cfg, gw_obs_t *obs, gw_outbound_t **out, char *err)
{
    gw_outbound_t *ob = calloc(1, sizeof *ob);
    cm_err_t rc = ob ? CM_OK : CM_ENOMEM;
    *out = NULL;
    if (!rc)
        rc = prov_init(&ob->calcom, "calcom", &cfg->calcom, obs, err);
    if (!rc && cfg->stripe.base_url)
        rc = prov_init(&ob->stripe, "stripe", &cfg->stripe, obs, err);
    if (!rc && cfg->retell.base_url)
        rc = retell_init(ob, cfg, obs, err);
    if (!rc)
        rc = gw_slotcache_new(cfg->slot_cache_ttl_ms, 4096, 1u << 20, &ob->slots);
    if (!rc)
        rc = gw_metrics_counter(obs->reg, "gw_ratelimit_shared_fallbacks_total",
                                "Rate-limit tokens taken from this instance's own bucket because "
                                "the bucket the instances share (PostgreSQL) did not answer",
                                "provider", &ob->rl_fell, err);
    /* Shown at 0 from the start, so an alert on its increase needs no series to appear. */
    if (!rc && (!gw_metrics_with(ob->rl_fell, GW_LV("calcom")) ||
                (ob->stripe.rl && !gw_metrics_with(ob->rl_fell, GW_LV("stripe"))) ||
                (ob->retell.rl && !gw_metrics_with(ob->rl_fell, GW_LV("retell")))))
        rc = CM_ENOMEM;
    if (rc) {
        gw_outbound_free(&ob);
        return rc;
    }
    gw_policy_clock_real(&ob->clock);
    ob->obs = obs;
    ob->calcom.rl_fell = ob->stripe.rl_fell = ob->retell.rl_fell = ob->rl_fell;
    gw_metrics_set_collect(obs->breaker_state, breaker_gauge, ob);
    *out = ob;
    return CM_OK;
}

void gw_outbound_free(gw_outbound_t **obp)
{
    gw_outbound_t *ob = obp ? *obp : NULL;
    if (!ob)
        return;
    /* No notice may reach the slot cache once it is freed. */
    if (ob->store)
        gw_store_off_notice(ob->store, on_notice, ob);
    /* No scrape may read the breakers once they are freed. */
    if (ob->obs)
        gw_metrics_set_collect(ob->obs->breaker_state, NULL, NULL);
    prov_free(&ob->calcom);
    prov_free(&ob->stripe);
    prov_free(&ob->retell);
    gw_slotcache_free(&ob->slots);
    free(ob);
    *obp = NULL;
}

/* ---- several instances on one store ------------------------------------------------- */

static cm_err_t shared_take(void *ud, const char *key, double rate_per_s, double burst,
                            int64_t max_wait_ms, gw_rl_verdict_t *v, int64_t *wait_ms)
{
    int taken = 0;
    cm_err_t rc = gw_store_rl_take(ud, key, rate_per_s, burst, max_wait_ms, &taken, wait_ms);
    if (!rc)
        *v = !taken ? GW_RL_REJECT : *wait_ms > 0 ? GW_RL_WAIT : GW_RL_OK;
    return rc;
}

static cm_err_t shared_refund(void *ud, const char *key, double rate_per_s, double burst)
{
    return gw_store_rl_refund(ud, key, rate_per_s, burst);
}

cm_err_t gw_outbound_share(gw_outbound_t *ob, gw_store_t *store)
{
    const gw_rl_shared_t sh = {.take = shared_take, .refund = shared_refund, .ud = store};
    gw_prov_rt_t *const provs[] = {&ob->calcom, &ob->stripe, &ob->retell};
    cm_err_t rc = CM_OK;
    for (size_t i = 0; !rc && i < sizeof provs / sizeof provs[0]; i++)
        if (provs[i]->rl)
            rc = gw_ratelimit_share(provs[i]->rl, &sh, provs[i]->name);
    if (!rc)
        rc = gw_store_on_notice(store, on_notice, ob);
    if (!rc)
        ob->store = store;
    return rc;
}

void gw_outbound_slots_changed(gw_outbound_t *ob, const char *api_key, int64_t event_type_id)
{
    char et[24];
    gw_slotcache_invalidate_event_type(ob->slots, api_key, event_type_id);
    if (!ob->store)
        return;
    snprintf(et, sizeof et, "%lld", (long long)event_type_id);
    cm_err_t rc = gw_store_publish(ob->store, GW_NOTICE_SLOTS, et);
    if (rc)
        CM_WARN("gw.outbound",
                "event type %s: the other instances were not told to drop its cached slots "
                "(%s); theirs expire within the cache's lifetime",
                et, cm_strerror(rc));
}

void gw_outbound_tick(gw_outbound_t *ob)
{
    int64_t now = cm_clock_mono_ms();
    if (ob->calcom.breaker)
        gw_breaker_tick(ob->calcom.breaker, now);
    if (ob->stripe.breaker)
        gw_breaker_tick(ob->stripe.breaker, now);
    if (ob->retell.breaker)
        gw_breaker_tick(ob->retell.breaker, now);
}

gw_prov_rt_t *gw_outbound_provider(gw_outbound_t *ob, const char *name)
{
    if (!strcmp(name, "calcom"))
        return &ob->calcom;
    if (!strcmp(name, "stripe") && ob->stripe.breaker)
        return &ob->stripe;
    if (!strcmp(name, "retell") && ob->retell.breaker)
        return &ob->retell;
    return NULL;
}

/* State of one run, for the attempt callback and the event hook. */
typedef struct {
    gw_prov_rt_t *p;
    const gw_call_t *call;
    cm_http_client_t *http;
    cm_http_response_t *resp;
    int have_resp;
    char ra[64], sr[16];
    char tp_header[96];
    cm_rand_t *rng;
    gw_span_t span;        /* the operation, parent of one span per attempt */
    char retry_reason[48]; /* why the coming attempt is a retry ("" for the first) */
} run_t;

/* What an attempt's result is called in a span: "http_503", "timeout", "refused", ... */
static void result_name(const gw_att_result_t *res, char *out, size_t cap)
{
    if (res->kind == GW_ATT_OK)
        snprintf(out, cap, "http_%d", res->status);
    else
        snprintf(out, cap, "%s", gw_att_kind_name(res->kind));
}

/* The path of a URL without its query (which may carry an e-mail address), for spans. */
static void url_path(const char *url, char *out, size_t cap)
{
    const char *p = url ? strstr(url, "://") : NULL;
    p = p ? strchr(p + 3, '/') : NULL;
    size_t n = p ? strcspn(p, "?#") : 0;
    snprintf(out, cap, "%.*s", (int)(n ? n : 1), n ? p : "/");
}

static void attempt(void *ud, const gw_attempt_ctx_t *ctx, gw_att_result_t *res)
{
    run_t *r = ud;
    const char *hdrs[24];
    size_t n = 0;
    for (const char *const *h = r->call->req.headers; h && *h && n < 20; h++)
        hdrs[n++] = *h;
    /* A client span per attempt; the provider gets its context, so its logs (and the
     * simulators' journal) can tell the attempts apart and follow them to the trace. */
    char name[96], path[256];
    snprintf(name, sizeof name, "%s %s.%s", r->call->req.method ? r->call->req.method : "GET",
             r->p->name, r->call->operation);
    gw_span_t as;
    gw_span_start(&as, r->p->obs->otlp, name, GW_SPAN_CLIENT, r->span.traceparent);
    snprintf(r->tp_header, sizeof r->tp_header, "traceparent: %s", as.traceparent);
    hdrs[n++] = r->tp_header;
    hdrs[n] = NULL;
    if (as.recording) {
        url_path(r->call->req.url, path, sizeof path);
        gw_span_str(&as, "http.request.method", r->call->req.method ? r->call->req.method : "GET");
        gw_span_str(&as, "url.path", path);
        gw_span_str(&as, "gw.provider", r->p->name);
        gw_span_str(&as, "gw.operation", r->call->operation);
        gw_span_int(&as, "gw.attempt", ctx->attempt);
        gw_span_int(&as, "http.request.resend_count", ctx->attempt - 1);
        gw_span_int(&as, "gw.timeout_ms", ctx->timeout_ms);
        if (r->p->breaker)
            gw_span_str(&as, "gw.breaker_state",
                        gw_brk_state_name(gw_breaker_state(r->p->breaker, cm_clock_mono_ms())));
        if (r->retry_reason[0])
            gw_span_str(&as, "gw.retry_reason", r->retry_reason);
    }
    cm_http_request_t req = r->call->req;
    req.headers = hdrs;
    /* An operation that is not safe to repeat must not be repeated by libcurl either. */
    req.fresh_connection = !r->call->safe;
    req.connect_timeout_ms = (long)ctx->connect_timeout_ms;
    req.timeout_ms = (long)ctx->timeout_ms;
    if (r->have_resp)
        cm_http_response_free(r->resp);
    cm_err_t rc = cm_http_client_do(r->http, &req, r->resp);
    r->have_resp = 1;
    gw_policy_classify_http(rc, r->resp, res, r->ra, sizeof r->ra, r->sr, sizeof r->sr);
    if (res->kind == GW_ATT_OK && r->call->refused && r->call->refused(r->resp))
        res->kind = GW_ATT_REFUSED;
    gw_obs_observe(r->p->obs->outbound_seconds, GW_LV(r->p->name, r->call->operation),
                   r->resp->total_ms / 1000.0);
    if (as.recording) {
        char what[48];
        result_name(res, what, sizeof what);
        if (r->resp->status)
            gw_span_int(&as, "http.response.status_code", r->resp->status);
        gw_span_str(&as, "gw.result", what);
        /* A refused slot is an answer, not a failure; 4xx and 5xx and no answer are. */
        if (res->kind != GW_ATT_REFUSED && (res->kind != GW_ATT_OK || res->status >= 400)) {
            gw_span_str(&as, "error.type", rc ? cm_strerror(rc) : what);
            gw_span_error(&as, rc ? r->resp->err : what);
        }
    }
    gw_span_end(&as);
}

static void on_event(void *ud, const gw_policy_t *pol, const gw_policy_event_t *e)
{
    run_t *r = ud;
    gw_prov_rt_t *p = r->p;
    switch (e->type) {
    case GW_POL_EV_RETRY:
        if (e->result)
            result_name(e->result, r->retry_reason, sizeof r->retry_reason);
        gw_obs_count(p->obs->retries, GW_LV(p->name, pol->operation));
        CM_INFO("gw.outbound", "%s %s attempt %d: %s; retry in %lld ms", p->name, pol->operation,
                e->attempt, e->result ? gw_att_kind_name(e->result->kind) : "?",
                (long long)e->delay_ms);
        break;
    case GW_POL_EV_GIVE_UP:
        if (e->verdict == GW_RETRY_NO_BUDGET)
            gw_obs_count(p->obs->budget_rejects, GW_LV(p->name));
        break;
    case GW_POL_EV_RL_WAIT:
        gw_obs_count(p->obs->rl_waits, GW_LV(p->name));
        break;
    case GW_POL_EV_RL_REJECT:
        gw_obs_count(p->obs->rl_rejects, GW_LV(p->name));
        break;
    case GW_POL_EV_RL_FALLBACK:
        gw_obs_count(p->rl_fell, GW_LV(p->name));
        break;
    default:
        break;
    }
}

gw_policy_status_t gw_outbound_call(gw_outbound_t *ob, gw_prov_rt_t *p, cm_http_client_t *http,
                                    cm_rand_t *rng, const gw_call_t *call, cm_http_response_t *resp,
                                    gw_policy_outcome_t *out)
{
    const gw_provider_t *c = p->cfg;
    gw_policy_t pol = {
        .provider = p->name,
        .operation = call->operation,
        .breaker = p->breaker,
        .ratelimit = p->rl,
        .rl_key = call->rl_key,
        .rl_wait = 1, /* workers wait for a token rather than fail: nothing is waiting on them */
        .rl_max_wait_ms = c->deadline_ms,
        .budget = p->budget,
        .safe = call->safe,
        .connect_timeout_ms = c->connect_timeout_ms,
        .attempt_timeout_ms = call->write ? c->write_timeout_ms : c->read_timeout_ms,
        .deadline_ms = c->deadline_ms,
        .on_event = on_event,
    };
    gw_retry_config_default(&pol.retry);
    pol.retry.max_attempts = c->retry_max_attempts;
    pol.retry.base_ms = c->retry_base_ms;
    pol.retry.cap_ms = c->retry_cap_ms;
    pol.retry.max_retry_after_ms = c->retry_max_after_ms;
    run_t r = {.p = p, .call = call, .http = http, .resp = resp, .rng = rng};
    pol.event_ud = &r;
    char name[64];
    snprintf(name, sizeof name, "%s.%s", p->name, call->operation);
    gw_span_start(&r.span, p->obs->otlp, name, GW_SPAN_INTERNAL, call->traceparent);
    gw_span_str(&r.span, "gw.provider", p->name);
    gw_span_str(&r.span, "gw.operation", call->operation);
    memset(resp, 0, sizeof *resp);
    gw_policy_status_t st = gw_policy_run(&pol, &ob->clock, rng, attempt, &r, out);
    if (!r.have_resp) { /* no attempt made (breaker open, rate limited): an empty answer */
        cm_buf_init(&resp->body, 1);
        cm_buf_init(&resp->headers, 1);
    }
    const char *outcome = st != GW_POL_DONE                  ? gw_policy_status_name(st)
                          : out->last.kind == GW_ATT_REFUSED ? "refused"
                          : out->last.status >= 400          ? "error"
                                                             : "ok";
    gw_obs_count(p->obs->outbound, GW_LV(p->name, call->operation, outcome));
    if (r.span.recording) {
        gw_span_str(&r.span, "gw.outcome", outcome);
        gw_span_int(&r.span, "gw.attempts", out->attempts);
        if (p->breaker)
            gw_span_str(&r.span, "gw.breaker_state",
                        gw_brk_state_name(gw_breaker_state(p->breaker, cm_clock_mono_ms())));
        /* Why the attempts stopped short of an answer (attempts or budget exhausted, a
         * Retry-After too long, not safe to repeat). */
        if (st == GW_POL_FAILED)
            gw_span_str(&r.span, "gw.retry_verdict", gw_retry_verdict_name(out->verdict));
        if (st != GW_POL_DONE || out->last.status >= 400)
            gw_span_error(&r.span, outcome);
    }
    gw_span_end(&r.span);
    return st;
}
