/* gw_outbound.c - the per-provider, per-API-key policy stacks and the HTTP attempt they
 * wrap. */
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
    gw_key_rt_t *k = ud;
    gw_obs_t *obs = k->prov->obs;
    (void)now_ms;
    gw_obs_count(obs->breaker_moves,
                 GW_LV(name, k->tenant, gw_brk_state_name(from), gw_brk_state_name(to)));
    CM_WARN("gw.outbound", "breaker %s (tenant %s): %s -> %s (%s)", name, k->tenant,
            gw_brk_state_name(from), gw_brk_state_name(to), reason ? reason : "");
}

/* gw_breaker_state{provider,tenant,state}, computed at each scrape from the breakers
 * themselves, as /admin/breakers and /health/ready do: one series per state, 1 for the
 * state the breaker is in at that moment (open -> half_open on time included). Set from
 * the transition hook instead, a scrape between its two writes saw no state at 1 (or
 * two), and a breaker whose open wait had passed stayed "open" in /metrics until a call
 * or an idle lane moved it. This is the only writer of those series, and renders are
 * serialised, so a scrape sees exactly one state at 1 per key. */
static void breaker_gauge(void *ud, gw_mfamily_t *f)
{
    gw_outbound_t *ob = ud;
    gw_prov_rt_t *const provs[] = {&ob->calcom, &ob->stripe, &ob->retell};
    for (size_t i = 0; i < sizeof provs / sizeof provs[0]; i++) {
        gw_key_rt_t *k;
        for (size_t j = 0; (k = gw_outbound_key_at(provs[i], j)) != NULL; j++) {
            gw_brk_state_t st = gw_breaker_state(k->breaker, cm_clock_mono_ms());
            for (int s = 0; s < GW_BRK__STATES; s++)
                gw_gauge_set(gw_metrics_with(f, GW_LV(provs[i]->name, k->tenant,
                                                      gw_brk_state_name((gw_brk_state_t)s))),
                             s == (int)st);
        }
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

static cm_err_t key_init(gw_prov_rt_t *p, gw_key_rt_t *k, const char *tenant, const char *api_key,
                         char *err)
{
    const gw_provider_t *cfg = p->cfg;
    gw_brk_config_t bc;
    gw_retry_budget_config_t rb;
    k->prov = p;
    k->tenant = strdup(tenant);
    k->api_key = api_key ? strdup(api_key) : NULL;
    if (!k->tenant || (api_key && !k->api_key))
        return CM_ENOMEM;
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
    cm_err_t rc = gw_breaker_new(p->name, &bc, &k->breaker, err);
    if (!rc) {
        gw_breaker_set_callback(k->breaker, on_transition, k);
        gw_retry_budget_config_default(&rb);
        rb.ratio = cfg->budget_ratio;
        rc = gw_retry_budget_new(&rb, &k->budget, err);
    }
    return rc;
}

/* The counters alerts take increase() of, at 0 from the start for each configured key
 * (gw_obs.c says why). */
static cm_err_t key_zero_series(gw_prov_rt_t *p, gw_key_rt_t *k)
{
    static const char *const moves[][2] = {
        {"closed", "open"}, {"open", "half_open"}, {"half_open", "closed"}, {"half_open", "open"}};
    gw_obs_t *o = p->obs;
    for (size_t m = 0; m < sizeof moves / sizeof moves[0]; m++)
        if (!gw_metrics_with(o->breaker_moves, GW_LV(p->name, k->tenant, moves[m][0], moves[m][1])))
            return CM_ENOMEM;
    if (!gw_metrics_with(o->budget_rejects, GW_LV(p->name, k->tenant)) ||
        !gw_metrics_with(o->rl_waits, GW_LV(p->name, k->tenant)) ||
        !gw_metrics_with(o->rl_rejects, GW_LV(p->name, k->tenant)) ||
        !gw_metrics_with(p->rl_fell, GW_LV(p->name, k->tenant)))
        return CM_ENOMEM;
    return CM_OK;
}

/* The key tenant t uses at provider name, or NULL. Retell: the first of its keys, the one
 * its API is called with (the others only verify webhooks during a rotation). */
static const char *tenant_key(const gw_tenant_t *t, const char *name)
{
    if (!strcmp(name, "retell"))
        return t->nretell_keys ? t->retell_keys[0] : NULL;
    return !strcmp(name, "calcom") ? t->calcom_api_key : t->stripe_api_key;
}

static cm_err_t prov_init(gw_prov_rt_t *p, const char *name, const gw_config_t *gc,
                          const gw_provider_t *cfg, gw_obs_t *obs, gw_mfamily_t *rl_fell, char *err)
{
    cm_err_t rc = CM_OK;
    p->name = name;
    p->cfg = cfg;
    p->obs = obs;
    p->rl_fell = rl_fell;
    p->configured = 1;
    /* One runtime per distinct key (tenants sharing a key share it), plus the
     * unconfigured-keys one. */
    p->keys = calloc(gc->ntenants + 1, sizeof *p->keys);
    if (!p->keys)
        return CM_ENOMEM;
    for (size_t i = 0; !rc && i < gc->ntenants; i++) {
        const char *key = tenant_key(&gc->tenants[i], name);
        int seen = !key;
        for (size_t j = 0; !seen && j < p->nkeys; j++)
            seen = !strcmp(p->keys[j].api_key, key);
        if (seen)
            continue;
        rc = key_init(p, &p->keys[p->nkeys], gc->tenants[i].id, key, err);
        p->nkeys++; /* counted even on failure, so that prov_free frees what was made */
        if (!rc)
            rc = key_zero_series(p, &p->keys[p->nkeys - 1]);
    }
    if (!rc) {
        rc = key_init(p, &p->keys[p->nkeys], "_unconfigured", NULL, err);
    }
    if (!rc)
        rc = gw_ratelimit_new(gw_ratelimit_window_rate(cfg->rate_per_min, 60000, cfg->burst),
                              cfg->burst, 1024, &p->rl);
    return rc;
}

static void key_free(gw_key_rt_t *k)
{
    gw_breaker_free(&k->breaker);
    gw_retry_budget_free(&k->budget);
    free(k->tenant);
    free(k->api_key);
}

static void prov_free(gw_prov_rt_t *p)
{
    if (p->keys)
        for (size_t i = 0; i <= p->nkeys; i++)
            key_free(&p->keys[i]);
    free(p->keys);
    p->keys = NULL;
    gw_ratelimit_free(&p->rl);
}

cm_err_t gw_outbound_new(const gw_config_t *cfg, gw_obs_t *obs, gw_outbound_t **out, char *err)
{
    gw_outbound_t *ob = calloc(1, sizeof *ob);
    cm_err_t rc = ob ? CM_OK : CM_ENOMEM;
    *out = NULL;
    if (!rc)
        rc = gw_metrics_counter(obs->reg, "gw_ratelimit_shared_fallbacks_total",
                                "Rate-limit tokens taken from this instance's own bucket because "
                                "the bucket the instances share (PostgreSQL) did not answer",
                                "provider,tenant", &ob->rl_fell, err);
    if (!rc)
        rc = prov_init(&ob->calcom, "calcom", cfg, &cfg->calcom, obs, ob->rl_fell, err);
    if (!rc && cfg->stripe.base_url)
        rc = prov_init(&ob->stripe, "stripe", cfg, &cfg->stripe, obs, ob->rl_fell, err);
    /* Retell's stack (providers.retell), for reconciliation's look-ups. */
    if (!rc && cfg->retell.base_url)
        rc = prov_init(&ob->retell, "retell", cfg, &cfg->retell, obs, ob->rl_fell, err);
    if (!rc)
        rc = gw_slotcache_new(cfg->slot_cache_ttl_ms, 4096, 1u << 20, &ob->slots);
    if (rc) {
        gw_outbound_free(&ob);
        return rc;
    }
    gw_policy_clock_real(&ob->clock);
    ob->obs = obs;
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

gw_key_rt_t *gw_outbound_key(gw_prov_rt_t *p, const char *api_key)
{
    for (size_t i = 0; api_key && i < p->nkeys; i++)
        if (!strcmp(p->keys[i].api_key, api_key))
            return &p->keys[i];
    gw_key_rt_t *other = &p->keys[p->nkeys];
    if (!__atomic_load_n(&other->used, __ATOMIC_RELAXED)) {
        __atomic_store_n(&other->used, 1, __ATOMIC_RELAXED);
        CM_WARN("gw.outbound",
                "%s: a call with a key no tenant has; it gets the breaker and "
                "budget of unconfigured keys",
                p->name);
    }
    return other;
}

gw_key_rt_t *gw_outbound_key_at(gw_prov_rt_t *p, size_t i)
{
    if (!p || !p->configured)
        return NULL;
    if (i < p->nkeys)
        return &p->keys[i];
    if (i == p->nkeys && __atomic_load_n(&p->keys[i].used, __ATOMIC_RELAXED))
        return &p->keys[i];
    return NULL;
}

gw_key_rt_t *gw_outbound_key_of_tenant(gw_prov_rt_t *p, const gw_config_t *cfg, const char *tenant)
{
    const gw_tenant_t *t = tenant ? gw_config_tenant(cfg, tenant) : NULL;
    const char *key = t ? tenant_key(t, p->name) : NULL;
    for (size_t i = 0; key && i < p->nkeys; i++)
        if (!strcmp(p->keys[i].api_key, key))
            return &p->keys[i];
    return NULL;
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
        if (provs[i]->configured)
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
    gw_prov_rt_t *const provs[] = {&ob->calcom, &ob->stripe, &ob->retell};
    for (size_t i = 0; i < sizeof provs / sizeof provs[0]; i++) {
        gw_key_rt_t *k;
        for (size_t j = 0; (k = gw_outbound_key_at(provs[i], j)) != NULL; j++)
            gw_breaker_tick(k->breaker, now);
    }
}

gw_prov_rt_t *gw_outbound_provider(gw_outbound_t *ob, const char *name)
{
    if (name && !strcmp(name, "calcom") && ob->calcom.configured)
        return &ob->calcom;
    if (name && !strcmp(name, "stripe") && ob->stripe.configured)
        return &ob->stripe;
    if (name && !strcmp(name, "retell") && ob->retell.configured)
        return &ob->retell;
    return NULL;
}

/* State of one run, for the attempt callback and the event hook. */
typedef struct {
    gw_prov_rt_t *p;
    gw_key_rt_t *k; /* the call's key */
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
        gw_span_str(&as, "gw.tenant", r->k->tenant);
        gw_span_str(&as, "gw.breaker_state",
                    gw_brk_state_name(gw_breaker_state(r->k->breaker, cm_clock_mono_ms())));
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
    const char *t = r->k->tenant;
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
            gw_obs_count(p->obs->budget_rejects, GW_LV(p->name, t));
        break;
    case GW_POL_EV_RL_WAIT:
        gw_obs_count(p->obs->rl_waits, GW_LV(p->name, t));
        break;
    case GW_POL_EV_RL_REJECT:
        gw_obs_count(p->obs->rl_rejects, GW_LV(p->name, t));
        break;
    case GW_POL_EV_RL_FALLBACK:
        gw_obs_count(p->rl_fell, GW_LV(p->name, t));
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
    gw_key_rt_t *k = gw_outbound_key(p, call->rl_key);
    gw_policy_t pol = {
        .provider = p->name,
        .operation = call->operation,
        .breaker = k->breaker,
        .ratelimit = p->rl,
        .rl_key = call->rl_key,
        .rl_wait = 1, /* workers wait for a token rather than fail: nothing is waiting on them */
        .rl_max_wait_ms = c->deadline_ms,
        .budget = k->budget,
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
    run_t r = {.p = p, .k = k, .call = call, .http = http, .resp = resp, .rng = rng};
    pol.event_ud = &r;
    char name[64];
    snprintf(name, sizeof name, "%s.%s", p->name, call->operation);
    gw_span_start(&r.span, p->obs->otlp, name, GW_SPAN_INTERNAL, call->traceparent);
    gw_span_str(&r.span, "gw.provider", p->name);
    gw_span_str(&r.span, "gw.operation", call->operation);
    gw_span_str(&r.span, "gw.tenant", k->tenant);
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
        gw_span_str(&r.span, "gw.breaker_state",
                    gw_brk_state_name(gw_breaker_state(k->breaker, cm_clock_mono_ms())));
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
