/* gw_inbound.c - webhook intake: verify the provider's signature on the raw bytes, store
 * the event and its job in one (group) transaction, and only then acknowledge. Nothing
 * slow runs here: the answer is deferred until the commit, without holding a thread, and
 * workers do the rest.
 *
 * Routes: each provider has a shared route (/webhooks/retell) and one per tenant
 * (/webhooks/retell/{tenant}). A forged webhook costs one MAC per key tried, over the whole
 * body, so what is tried is bounded whatever the configuration: a per-tenant route tries
 * that tenant's keys only (at most GW_MAX_KEYS); a shared route tries every tenant's only
 * while the provider has at most webhooks.shared_route_max_keys keys, and beyond that
 * refuses (404, naming the per-tenant route) before any MAC, except on the Retell route
 * for a body naming a configured agent, checked against that tenant's keys only. A stale or
 * malformed signature header is refused before any MAC (cm_sig). With 10 tenants of 4 keys
 * and 256 KB bodies a forged webhook used to cost 6.2 ms of CPU (40 MACs).
 *
 * Statuses: 204 accepted or duplicate (X-Gateway-Result says which), 400 malformed,
 * 401 forged/missing/stale signature or outside the replay window, 404 unknown source or
 * tenant, or a shared route over its key limit, 413 too large (by the HTTP layer), 503 not
 * stored (the sender retries). Errors are application/problem+json and name the failed
 * check, never a key or an internal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_codec.h"
#include "cm_json.h"
#include "cm_json_scan.h"
#include "cm_log.h"
#include "cm_sig.h"
#include "gw_app.h"
#include "gw_otlp.h"
#include "gw_span.h"

/* One webhook on its way to the store; owns the strings the event points to. The body
 * stays the HTTP layer's until the deferred answer is finished. */
typedef struct {
    gw_app_t *app;
    cm_http_deferred_t *d;
    int64_t received_ns; /* for the acknowledgement latency */
    gw_event_in_t ev;
    char provider[48], key[512], alt_key[512], type[96], entity[160], tenant[64], headers[640];
    gw_span_t span;       /* the request's, moved here from the handler's frame */
    gw_span_t store_span; /* from the hand-over to the store to the commit */
} intake_t;

/* The span of the webhook request this thread is handling (set by traced(), below, for
 * the time of the handler): refusals name their reason in it, the verification and the
 * store get child spans, and the stored event carries its context to the job. */
static _Thread_local gw_span_t *tl_span;
static _Thread_local int tl_span_moved; /* submit() took it: the store's callback ends it */

/* Ends a request's span with the answer's status. */
static void end_request_span(gw_span_t *s, int status, const char *result)
{
    gw_span_int(s, "http.response.status_code", status);
    if (result)
        gw_span_str(s, "gw.result", result);
    /* A server span is failed by a 5xx only: a 4xx is the sender's mistake, not ours. */
    if (status >= 500)
        gw_span_error(s, result);
    gw_span_end(s);
}

/* Counts a refused webhook; provider is the route's ("retell", "calcom", ...). */
static void count_refusal(gw_app_t *app, const char *provider, const char *why)
{
    if (app && app->obs)
        gw_obs_count(app->obs->webhooks, GW_LV(provider, why));
    if (tl_span)
        gw_span_str(tl_span, "gw.result", why);
}

/* Refusals are caused at will by whoever sends: their log lines are limited per reason
 * (10 in each 10 s, then a count of those left out), while gw_webhooks_total still counts
 * every one. Forged traffic once wrote 163 MB of logs in 100 s. */
static const char *const refusal_reasons[] = {"rejected_signature", "rejected_stale",
                                              "rejected_malformed", "rejected_replay",
                                              "rejected_route"};
static cm_log_limit_t refusal_logs[] = {CM_LOG_LIMIT_INIT(10, 10000), CM_LOG_LIMIT_INIT(10, 10000),
                                        CM_LOG_LIMIT_INIT(10, 10000), CM_LOG_LIMIT_INIT(10, 10000),
                                        CM_LOG_LIMIT_INIT(10, 10000)};

static void log_refusal(const char *provider, const char *why, const char *detail)
{
    uint64_t left_out = 0;
    for (size_t i = 0; i < sizeof refusal_reasons / sizeof refusal_reasons[0]; i++)
        if (!strcmp(why, refusal_reasons[i]) &&
            !cm_log_limit_take(&refusal_logs[i], cm_clock_mono_ms(), &left_out))
            return;
    if (left_out)
        CM_WARN("gw.inbound", "%s webhook refused: %s (and %llu more refused as %s, not logged)",
                provider, detail, (unsigned long long)left_out, why);
    else
        CM_WARN("gw.inbound", "%s webhook refused: %s", provider, detail);
}

static void refuse_signature(gw_app_t *app, const char *provider, cm_http_resp_t *resp, cm_err_t rc,
                             const char *header)
{
    const char *why =
        rc == CM_ESIG_STALE || rc == CM_ESIG_FUTURE ? "rejected_stale" : "rejected_signature";
    count_refusal(app, provider, why);
    char detail[160];
    switch (rc) {
    case CM_ESIG_MISSING:
        snprintf(detail, sizeof detail, "%s header missing", header);
        break;
    case CM_ESIG_MALFORMED:
        snprintf(detail, sizeof detail, "%s header malformed", header);
        break;
    case CM_ESIG_STALE:
    case CM_ESIG_FUTURE:
        snprintf(detail, sizeof detail, "signature timestamp outside the accepted window");
        break;
    default:
        snprintf(detail, sizeof detail, "signature does not match");
    }
    log_refusal(provider, why, detail);
    cm_http_resp_problem(resp, 401, "Unauthorized", detail);
}

static void bad_request(gw_app_t *app, const char *provider, cm_http_resp_t *resp,
                        const char *detail)
{
    count_refusal(app, provider, "rejected_malformed");
    log_refusal(provider, "rejected_malformed", detail);
    cm_http_resp_problem(resp, 400, "Bad Request", detail);
}

static void intake_done(void *ud, cm_err_t rc, gw_ingest_t result)
{
    intake_t *in = ud;
    cm_http_resp_t *resp = cm_http_deferred_resp(in->d);
    gw_obs_t *obs = in->app->obs;
    /* "std:crm" is reported as "std": source ids are configuration, not a closed set. */
    const char *prov = strncmp(in->provider, "std:", 4) ? in->provider : "std";
    gw_obs_count(obs->webhooks, GW_LV(prov, rc                             ? "not_stored"
                                            : result == GW_INGEST_ACCEPTED ? "accepted"
                                                                           : "duplicate"));
    gw_obs_observe(obs->ack_seconds, GW_LV(prov),
                   (double)(cm_clock_mono_ns() - in->received_ns) / 1e9);
    /* This runs on the store's thread: its log lines carry the request's trace id. */
    char saved_cid[64];
    snprintf(saved_cid, sizeof saved_cid, "%s", cm_log_cid());
    cm_log_set_cid(in->span.ctx.trace_id);
    if (rc)
        gw_span_error(&in->store_span, cm_strerror(rc));
    gw_span_end(&in->store_span);
    if (rc) {
        /* Not stored: a 503 makes the provider deliver again, so nothing is lost. */
        CM_ERROR("gw.inbound", "%s %s not stored: %s", in->provider, in->key, cm_strerror(rc));
        cm_http_resp_problem(resp, 503, "Service Unavailable", "event could not be stored");
        (void)cm_http_resp_header(resp, "Retry-After", "1");
    } else {
        int fresh = result == GW_INGEST_ACCEPTED;
        CM_INFO("gw.inbound", "%s %s %s", in->provider, in->key, fresh ? "accepted" : "duplicate");
        if (fresh && in->ev.job_kind)
            gw_worker_notify(in->app->worker);
        cm_http_resp_text(resp, 204, NULL, NULL);
        (void)cm_http_resp_header(resp, "X-Gateway-Result", fresh ? "accepted" : "duplicate");
    }
    end_request_span(&in->span, resp->status,
                     rc                             ? "not_stored"
                     : result == GW_INGEST_ACCEPTED ? "accepted"
                                                    : "duplicate");
    cm_log_set_cid(saved_cid[0] ? saved_cid : NULL);
    cm_http_deferred_finish(in->d);
    free(in);
}

static intake_t *intake_new(gw_app_t *app, const cm_http_req_t *req, const char *provider,
                            const char *tenant_id, const char *job_kind)
{
    intake_t *in = calloc(1, sizeof *in);
    if (!in)
        return NULL;
    in->app = app;
    in->received_ns = req->received_mono_ns;
    snprintf(in->provider, sizeof in->provider, "%s", provider);
    snprintf(in->tenant, sizeof in->tenant, "%s", tenant_id ? tenant_id : "");
    in->ev = (gw_event_in_t){.provider = in->provider,
                             .event_key = in->key,
                             .event_type = in->type,
                             .entity_id = in->entity,
                             .tenant_id = tenant_id ? in->tenant : NULL,
                             .headers = in->headers,
                             .body = req->body,
                             .body_len = req->body_len,
                             .received_at_ms = cm_clock_now_ms(),
                             .job_kind = job_kind};
    return in;
}

/* Hands the event to the store and defers the answer until it is committed. Takes in;
 * the request's span goes with it and is ended with the answer. */
static void submit(intake_t *in, cm_http_resp_t *resp)
{
    if (tl_span) {
        gw_span_str(tl_span, "gw.event_type", in->type);
        gw_span_str(tl_span, "gw.entity", in->entity);
        if (in->ev.tenant_id)
            gw_span_str(tl_span, "gw.tenant", in->ev.tenant_id);
        in->span = *tl_span;
        tl_span_moved = 1;
    } else {
        gw_span_start(&in->span, NULL, "intake", GW_SPAN_SERVER, NULL);
    }
    gw_span_start(&in->store_span, in->app->obs->otlp, "store", GW_SPAN_INTERNAL,
                  in->span.traceparent);
    in->d = cm_http_resp_defer(resp);
    if (gw_store_ingest_async(in->app->store, &in->ev, intake_done, in) != CM_OK) {
        cm_http_resp_t *r = cm_http_deferred_resp(in->d);
        cm_http_resp_problem(r, 503, "Service Unavailable", "gateway is shutting down");
        (void)cm_http_resp_header(r, "Retry-After", "1");
        gw_span_error(&in->store_span, "shutting down");
        gw_span_end(&in->store_span);
        end_request_span(&in->span, 503, "not_stored");
        cm_http_deferred_finish(in->d);
        free(in);
    }
}

/* Keeps only characters that need no JSON escaping (header values here are ASCII
 * tokens); anything else is dropped rather than escaped. */
static void clean_token(char *out, size_t cap, const char *value)
{
    size_t n = 0;
    for (const char *p = value ? value : ""; *p && n + 1 < cap; p++)
        if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
            out[n++] = *p;
    out[n] = '\0';
}

/* The headers kept with the event: the signature header (audit) and the W3C traceparent
 * of the request's span (a child of the sender's when a valid one came, else a new
 * trace), which the job continues: its span, saga steps and provider calls are children. */
static void audit_headers(const cm_http_req_t *req, char *out, size_t cap, const char *name,
                          const char *value)
{
    char clean[400], tp[64] = "";
    (void)req;
    clean_token(clean, sizeof clean, value);
    if (tl_span)
        snprintf(tp, sizeof tp, "%s", tl_span->traceparent);
    if (tp[0])
        snprintf(out, cap, "{\"%s\":\"%s\",\"traceparent\":\"%s\"}", name, clean, tp);
    else
        snprintf(out, cap, "{\"%s\":\"%s\"}", name, clean);
}

/* The signature check's span, a child of the request's. */
static void verify_span_start(gw_app_t *app, gw_span_t *vs)
{
    gw_span_start(vs, app->obs ? app->obs->otlp : NULL, "verify", GW_SPAN_INTERNAL,
                  tl_span ? tl_span->traceparent : NULL);
}

static void verify_span_end(gw_span_t *vs, cm_err_t rc)
{
    if (rc)
        gw_span_error(vs, cm_strerror(rc));
    gw_span_end(vs);
}

/* ---- Which tenants' keys are tried ---------------------------------------------- */

typedef enum { KEYS_RETELL, KEYS_CALCOM, KEYS_STRIPE } keys_kind_t;

static const char *const kind_name[] = {"retell", "calcom", "stripe"};

static size_t tenant_keys(const gw_tenant_t *t, keys_kind_t kind)
{
    return kind == KEYS_RETELL   ? t->nretell_keys
           : kind == KEYS_CALCOM ? t->ncalcom_webhook_secrets
                                 : t->nstripe_webhook_secrets;
}

/* All tenants' keys for this provider: what a shared route would try. */
static size_t shared_keys(const gw_config_t *cfg, keys_kind_t kind)
{
    size_t total = 0;
    for (size_t i = 0; i < cfg->ntenants; i++)
        total += tenant_keys(&cfg->tenants[i], kind);
    return total;
}

/* The tenants a webhook on this route is checked against: *only set (a per-tenant route,
 * or a hint the caller found) or every tenant (*only NULL). Returns 0 after answering 404
 * (an unknown tenant, a tenant without keys for this provider, or a shared route over its
 * key limit); nothing has been computed by then. */
static int key_scope(gw_app_t *app, const cm_http_req_t *req, cm_http_resp_t *resp,
                     keys_kind_t kind, const gw_tenant_t **only)
{
    const gw_config_t *cfg = app->cfg;
    const char *id = cm_http_req_param(req, "tenant");
    const char *prov = kind_name[kind];
    char detail[200];
    if (id) {
        *only = gw_config_tenant(cfg, id);
        if (!*only || !tenant_keys(*only, kind)) {
            snprintf(detail, sizeof detail, "no tenant here takes %s webhooks at this URL", prov);
            cm_http_resp_problem(resp, 404, "Not Found", detail);
            return 0;
        }
        return 1;
    }
    if (*only)
        return 1;
    size_t total = shared_keys(cfg, kind);
    if (total <= cfg->shared_route_max_keys)
        return 1;
    /* Every key tried is one MAC over the whole body: with many tenants a forged request
     * would cost them all. The sender is pointed at its own URL instead. */
    snprintf(detail, sizeof detail,
             "this gateway has %zu %s keys, more than its shared route checks (%u): send "
             "%s webhooks to /webhooks/%s/{tenant}",
             total, prov, cfg->shared_route_max_keys, prov, prov);
    count_refusal(app, prov, "rejected_route");
    log_refusal(prov, "rejected_route", detail);
    cm_http_resp_problem(resp, 404, "Not Found", detail);
    return 0;
}

/* ---- Retell --------------------------------------------------------------------- */

static const gw_tenant_t *verify_retell(const gw_config_t *cfg, const gw_tenant_t *only,
                                        const cm_http_req_t *req, const char *sig, cm_err_t *rc)
{
    int64_t now = cm_clock_now_ms();
    *rc = CM_ESIG_MISMATCH;
    /* The body names the agent, but nothing in the body may be trusted before the
     * signature holds, so the signature picks the tenant (a hint from the body only
     * narrows the keys tried, see h_retell). */
    for (size_t i = 0; i < cfg->ntenants; i++) {
        const gw_tenant_t *t = &cfg->tenants[i];
        if (only && t != only)
            continue;
        *rc = cm_sig_retell_verify((const char *const *)t->retell_keys, t->nretell_keys, req->body,
                                   req->body_len, sig, now, cfg->retell_tolerance_ms);
        if (*rc == CM_OK)
            return t;
        if (*rc != CM_ESIG_MISMATCH && *rc != CM_EINVAL)
            return NULL; /* header problems are the same for every tenant */
    }
    *rc = sig && *sig ? CM_ESIG_MISMATCH : CM_ESIG_MISSING;
    return NULL;
}

/* The tenant owning the agent the body names, when the tree-less scanner finds a plain
 * string there; NULL otherwise (no jansson here: this runs before the signature is
 * checked, on bytes anyone can send). Only a hint: it narrows which keys are tried. */
static const gw_tenant_t *agent_hint(const gw_config_t *cfg, const cm_http_req_t *req)
{
    cm_json_want_t w = {.path = "call.agent_id"};
    char agent[256];
    if (cm_json_scan(req->body, req->body_len, cfg->body_limit, &w, 1) != CM_OK || !w.val ||
        w.len >= sizeof agent)
        return NULL;
    memcpy(agent, w.val, w.len);
    agent[w.len] = '\0';
    return gw_config_tenant_by_agent(cfg, agent);
}

/* 1 when the len bytes at v are a usable id or key: no NUL (a "\u0000" escape would cut
 * it short in C strings, so two distinct ids would collapse into one dedup key) and no
 * other control character (they disguise ids in logs and keys). */
static int is_token(const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            return 0;
    return 1;
}

/* The string at path when it is a token of at most max bytes; NULL when missing, or when
 * not a token or too long, then with *bad set to path (the first one found), which the
 * caller refuses with 400 naming it. */
static const char *token_at(const json_t *ev, const char *path, size_t max, const char **bad)
{
    size_t len;
    const char *v = cm_json_strn(ev, path, &len);
    if (v && (len > max || !is_token(v, len))) {
        if (!*bad)
            *bad = path;
        return NULL;
    }
    return v;
}

/* Refuses a body whose field `bad` is too long or holds a control character. */
static void bad_field(gw_app_t *app, const char *provider, cm_http_resp_t *resp, const char *bad)
{
    char detail[160];
    snprintf(detail, sizeof detail, "\"%s\" is too long or holds a control character", bad);
    bad_request(app, provider, resp, detail);
}

/* The fields the intake needs from a Retell body, copied out of it. */
typedef struct {
    char event[65];
    char call_id[128];
    char agent_id[256];
    int too_long;    /* event or call id over its limit */
    const char *bad; /* the first field that is not a token (is_token), or NULL */
} retell_fields_t;

static void take(char *dst, size_t cap, const char *v, size_t len, int *too_long)
{
    dst[0] = '\0';
    if (!v)
        return;
    if (len >= cap) {
        if (too_long)
            *too_long = 1;
        return;
    }
    memcpy(dst, v, len);
    dst[len] = '\0';
}

/* Validates the body and picks the fields: with the scanner, which needs no tree, or with
 * jansson when the scanner cannot answer alone (escapes, unusual input). Both accept and
 * refuse the same documents (test_cm_json_scan.c). */
static cm_err_t retell_fields(const gw_config_t *cfg, const cm_http_req_t *req, retell_fields_t *f)
{
    cm_json_want_t w[3] = {{.path = "event"}, {.path = "call.call_id"}, {.path = "call.agent_id"}};
    json_t *ev = NULL;
    memset(f, 0, sizeof *f);
    cm_err_t rc = cm_json_scan(req->body, req->body_len, cfg->body_limit, w, 3);
    if (rc == CM_EAGAIN) {
        rc = cm_json_parse(req->body, req->body_len, cfg->body_limit, &ev, NULL);
        for (int i = 0; !rc && i < 3; i++)
            w[i].val = cm_json_strn(ev, w[i].path, &w[i].len);
    }
    /* The scanner hands out only strings without escapes, where JSON allows no control
     * character but DEL; jansson's may hold any, "\u0000" included. */
    for (int i = 0; !rc && i < 3; i++)
        if (w[i].val && !is_token(w[i].val, w[i].len) && !f->bad)
            f->bad = w[i].path;
    if (!rc && !f->bad) {
        take(f->event, sizeof f->event, w[0].val, w[0].len, &f->too_long);
        take(f->call_id, sizeof f->call_id, w[1].val, w[1].len, &f->too_long);
        /* An agent id too long for any configured agent is simply not one of them. */
        take(f->agent_id, sizeof f->agent_id, w[2].val, w[2].len, NULL);
    }
    json_decref(ev);
    return rc;
}

static void h_retell(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    const char *sig = cm_http_req_header(req, "x-retell-signature");
    cm_err_t rc;
    /* On a shared route with more keys than it may try, the agent the body names says
     * whose keys to try: a valid signature must be that tenant's anyway (another tenant's
     * is refused below, "signature does not match the agent"). */
    const gw_tenant_t *only = NULL;
    if (!cm_http_req_param(req, "tenant") &&
        shared_keys(app->cfg, KEYS_RETELL) > app->cfg->shared_route_max_keys)
        only = agent_hint(app->cfg, req);
    const gw_tenant_t *hinted = only;
    if (!key_scope(app, req, resp, KEYS_RETELL, &only))
        return;
    gw_span_t vs;
    verify_span_start(app, &vs);
    const gw_tenant_t *t = verify_retell(app->cfg, only, req, sig, &rc);
    verify_span_end(&vs, t ? CM_OK : rc);
    if (!t && hinted && rc == CM_ESIG_MISMATCH) {
        count_refusal(app, "retell", "rejected_signature");
        log_refusal("retell", "rejected_signature", "signature does not match the agent");
        cm_http_resp_problem(resp, 401, "Unauthorized", "signature does not match the agent");
        return;
    }
    if (!t) {
        refuse_signature(app, "retell", resp, rc, "x-retell-signature");
        return;
    }
    retell_fields_t f;
    if (retell_fields(app->cfg, req, &f) != CM_OK) {
        bad_request(app, "retell", resp, "body is not valid JSON");
        return;
    }
    const gw_tenant_t *owner =
        f.agent_id[0] ? gw_config_tenant_by_agent(app->cfg, f.agent_id) : NULL;
    intake_t *in = NULL;
    if (f.bad) {
        bad_field(app, "retell", resp, f.bad);
    } else if (!f.event[0] || !f.call_id[0] || f.too_long) {
        bad_request(app, "retell", resp, "a Retell webhook needs \"event\" and \"call.call_id\"");
    } else if (owner && owner != t) {
        /* A valid signature from tenant A for an agent of tenant B: refuse rather than act
         * for the wrong company. */
        count_refusal(app, "retell", "rejected_signature");
        cm_http_resp_problem(resp, 401, "Unauthorized", "signature does not match the agent");
    } else if (!(in = intake_new(app, req, "retell", t->id,
                                 !strcmp(f.event, "call_analyzed") ? "retell.call_analyzed"
                                                                   : "retell.call_event"))) {
        cm_http_resp_problem(resp, 503, "Service Unavailable", "out of memory");
    } else {
        snprintf(in->key, sizeof in->key, "retell:%s:%s", f.call_id, f.event);
        snprintf(in->type, sizeof in->type, "%s", f.event);
        snprintf(in->entity, sizeof in->entity, "%s", f.call_id);
        audit_headers(req, in->headers, sizeof in->headers, "x-retell-signature", sig);
        submit(in, resp);
    }
}

/* ---- Cal.com -------------------------------------------------------------------- */

static void h_calcom(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    const gw_config_t *cfg = app->cfg;
    const char *sig = cm_http_req_header(req, "X-Cal-Signature-256");
    const gw_tenant_t *t = NULL, *only = NULL;
    if (!key_scope(app, req, resp, KEYS_CALCOM, &only))
        return;
    cm_err_t rc = sig && *sig ? CM_ESIG_MISMATCH : CM_ESIG_MISSING;
    gw_span_t vs;
    verify_span_start(app, &vs);
    for (size_t i = 0; !t && rc != CM_ESIG_MISSING && i < cfg->ntenants; i++) {
        const gw_tenant_t *c = &cfg->tenants[i];
        if (!c->ncalcom_webhook_secrets || (only && c != only))
            continue;
        rc = cm_sig_calcom_verify((const char *const *)c->calcom_webhook_secrets,
                                  c->ncalcom_webhook_secrets, req->body, req->body_len, sig);
        if (rc == CM_OK)
            t = c;
        else if (rc == CM_ESIG_MALFORMED)
            break;
    }
    verify_span_end(&vs, t ? CM_OK : rc == CM_OK ? CM_ESIG_MISMATCH : rc);
    if (!t) {
        /* "no-secret-provided" (Cal.com's value when no secret is set) lands here too. */
        refuse_signature(app, "calcom", resp, rc == CM_OK ? CM_ESIG_MISMATCH : rc,
                         "X-Cal-Signature-256");
        return;
    }
    json_t *ev = NULL;
    if (cm_json_parse(req->body, req->body_len, cfg->body_limit, &ev, NULL) != CM_OK) {
        bad_request(app, "calcom", resp, "body is not valid JSON");
        return;
    }
    const char *bad = NULL;
    const char *trigger = token_at(ev, "triggerEvent", 64, &bad);
    const char *created = token_at(ev, "createdAt", 40, &bad);
    const char *uid = token_at(ev, "payload.uid", 127, &bad);
    int64_t created_ms = 0, now = cm_clock_now_ms();
    intake_t *in = NULL;
    if (bad) {
        bad_field(app, "calcom", resp, bad);
    } else if (!trigger || !created || !uid) {
        bad_request(app, "calcom", resp,
                    "a Cal.com webhook needs \"triggerEvent\", \"createdAt\" and "
                    "\"payload.uid\"");
    } else if (cm_clock_parse_iso8601(created, &created_ms) != 0) {
        bad_request(app, "calcom", resp, "\"createdAt\" is not an ISO 8601 time");
    } else if (created_ms < now - cfg->calcom_replay_window_ms ||
               created_ms > now + cfg->calcom_replay_window_ms) {
        /* Cal.com signs no timestamp, so a captured delivery stays valid forever; the
         * signed createdAt bounds how long a replay can work. */
        char detail[256];
        snprintf(detail, sizeof detail, "%s %s: createdAt outside the replay window", trigger, uid);
        log_refusal("calcom", "rejected_replay", detail);
        count_refusal(app, "calcom", "rejected_replay");
        cm_http_resp_problem(resp, 401, "Unauthorized", "event outside the replay window");
    } else if (!(in = intake_new(app, req, "calcom", t->id, "calcom.booking"))) {
        cm_http_resp_problem(resp, 503, "Service Unavailable", "out of memory");
    } else {
        snprintf(in->key, sizeof in->key, "calcom:%s:%s:%s", trigger, uid, created);
        snprintf(in->type, sizeof in->type, "%s", trigger);
        snprintf(in->entity, sizeof in->entity, "%s", uid);
        audit_headers(req, in->headers, sizeof in->headers, "x-cal-signature-256", sig);
        submit(in, resp);
    }
    json_decref(ev);
}

/* ---- Stripe --------------------------------------------------------------------- */

static void h_stripe(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    const gw_config_t *cfg = app->cfg;
    const char *sig = cm_http_req_header(req, "Stripe-Signature");
    const gw_tenant_t *t = NULL, *only = NULL;
    if (!key_scope(app, req, resp, KEYS_STRIPE, &only))
        return;
    cm_err_t rc = sig && *sig ? CM_ESIG_MISMATCH : CM_ESIG_MISSING;
    int64_t now = cm_clock_now_s();
    gw_span_t vs;
    verify_span_start(app, &vs);
    for (size_t i = 0; !t && rc != CM_ESIG_MISSING && i < cfg->ntenants; i++) {
        const gw_tenant_t *c = &cfg->tenants[i];
        if (!c->nstripe_webhook_secrets || (only && c != only))
            continue;
        rc = cm_sig_stripe_verify((const char *const *)c->stripe_webhook_secrets,
                                  c->nstripe_webhook_secrets, req->body, req->body_len, sig, now,
                                  cfg->stripe_tolerance_s);
        if (rc == CM_OK)
            t = c;
        else if (rc != CM_ESIG_MISMATCH)
            break;
    }
    verify_span_end(&vs, t ? CM_OK : rc == CM_OK ? CM_ESIG_MISMATCH : rc);
    if (!t) {
        refuse_signature(app, "stripe", resp, rc == CM_OK ? CM_ESIG_MISMATCH : rc,
                         "Stripe-Signature");
        return;
    }
    json_t *ev = NULL;
    if (cm_json_parse(req->body, req->body_len, cfg->body_limit, &ev, NULL) != CM_OK) {
        bad_request(app, "stripe", resp, "body is not valid JSON");
        return;
    }
    const char *bad = NULL;
    const char *id = token_at(ev, "id", 127, &bad);
    const char *type = token_at(ev, "type", 64, &bad);
    const char *obj = token_at(ev, "data.object.id", 127, &bad);
    /* A charge event belongs to its payment intent: that is the entity we track. */
    const char *pi = token_at(ev, "data.object.payment_intent", 127, &bad);
    const char *entity = pi ? pi : obj;
    intake_t *in = NULL;
    if (bad) {
        bad_field(app, "stripe", resp, bad);
    } else if (!id || !type || !obj) {
        bad_request(app, "stripe", resp,
                    "a Stripe event needs \"id\", \"type\" and \"data.object.id\"");
    } else if (!(in = intake_new(app, req, "stripe", t->id, "stripe.event"))) {
        cm_http_resp_problem(resp, 503, "Service Unavailable", "out of memory");
    } else {
        snprintf(in->key, sizeof in->key, "stripe:%s", id);
        /* Stripe sometimes sends two Event objects for one change: same object, same type,
         * same snapshot of the object. The snapshot's digest keeps a genuinely new change
         * of the same type (a second decline, a second partial refund) from being taken
         * for a twin. */
        char digest[2 * CM_SHA256_LEN + 1] = "";
        char *snap = cm_json_dumps_sorted(cm_json_path(ev, "data.object"));
        if (snap) {
            uint8_t h[CM_SHA256_LEN];
            cm_sha256(snap, strlen(snap), h);
            cm_hex_encode(h, 8, digest);
            free(snap);
        }
        snprintf(in->alt_key, sizeof in->alt_key, "stripe:%s:%s:%s", obj, type, digest);
        in->ev.alt_key = in->alt_key;
        snprintf(in->type, sizeof in->type, "%s", type);
        snprintf(in->entity, sizeof in->entity, "%s", entity);
        audit_headers(req, in->headers, sizeof in->headers, "stripe-signature", sig);
        submit(in, resp);
    }
    json_decref(ev);
}

/* ---- Standard Webhooks ---------------------------------------------------------- */

static void h_std(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    const gw_source_t *src = gw_config_source(app->cfg, cm_http_req_param(req, "source"));
    if (!src) {
        cm_http_resp_problem(resp, 404, "Not Found", "no such webhook source");
        return;
    }
    const char *id = cm_http_req_header(req, "webhook-id");
    const char *ts = cm_http_req_header(req, "webhook-timestamp");
    const char *sig = cm_http_req_header(req, "webhook-signature");
    gw_span_t vs;
    verify_span_start(app, &vs);
    cm_err_t rc =
        cm_sig_stdwh_verify((const char *const *)src->secrets, src->nsecrets, id, ts, sig,
                            req->body, req->body_len, cm_clock_now_s(), app->cfg->std_tolerance_s);
    verify_span_end(&vs, rc);
    if (rc) {
        refuse_signature(app, "std", resp, rc == CM_EINVAL ? CM_ESIG_MISMATCH : rc,
                         "webhook-signature");
        return;
    }
    json_t *ev = NULL;
    if (cm_json_parse(req->body, req->body_len, app->cfg->body_limit, &ev, NULL) != CM_OK) {
        bad_request(app, "std", resp, "body is not valid JSON");
        return;
    }
    const char *bad = NULL;
    const char *type = token_at(ev, "type", 64, &bad);
    const char *data_id = token_at(ev, "data.id", 127, &bad);
    intake_t *in = NULL;
    if (bad) {
        bad_field(app, "std", resp, bad);
    } else if (strlen(id) > 200 || !is_token(id, strlen(id))) {
        bad_request(app, "std", resp, "webhook-id is too long or holds a control character");
    } else if (!(in = intake_new(app, req, "std", NULL, NULL))) {
        cm_http_resp_problem(resp, 503, "Service Unavailable", "out of memory");
    } else {
        snprintf(in->provider, sizeof in->provider, "std:%s", src->id);
        /* webhook-id is stable across the sender's retries: it is the dedup key. */
        snprintf(in->key, sizeof in->key, "std:%s:%s", src->id, id);
        snprintf(in->type, sizeof in->type, "%s", type ? type : "unknown");
        snprintf(in->entity, sizeof in->entity, "%.127s", data_id ? data_id : id);
        audit_headers(req, in->headers, sizeof in->headers, "webhook-id", id);
        submit(in, resp);
    }
    json_decref(ev);
}

/* ---- The request's span ------------------------------------------------------------ */

/* Runs a webhook handler inside the request's span: a SERVER span that continues the
 * sender's trace when a valid traceparent came with the webhook (a child of the sender's
 * span) or starts one, and whose trace id becomes the correlation id of the request's log
 * lines. provider names the route. */
static void traced(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud, const char *provider,
                   cm_http_handler_fn inner)
{
    gw_app_t *app = ud;
    char route[64];
    if (!strcmp(provider, "std"))
        snprintf(route, sizeof route, "POST /webhooks/std/{source}");
    else
        snprintf(route, sizeof route, "POST /webhooks/%s%s", provider,
                 cm_http_req_param(req, "tenant") ? "/{tenant}" : "");
    gw_span_t span;
    gw_span_start(&span, app->obs ? app->obs->otlp : NULL, route, GW_SPAN_SERVER,
                  cm_http_req_header(req, "traceparent"));
    gw_span_start_at(&span, req->received_mono_ns);
    cm_log_set_cid(span.ctx.trace_id);
    gw_span_str(&span, "http.request.method", "POST");
    gw_span_str(&span, "http.route", route);
    gw_span_str(&span, "gw.provider", provider);
    gw_span_int(&span, "http.request.body.size", (int64_t)req->body_len);
    tl_span = &span;
    tl_span_moved = 0;
    inner(req, resp, ud);
    tl_span = NULL;
    if (!tl_span_moved)
        end_request_span(&span, resp->status, NULL);
}

static void t_retell(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    traced(req, resp, ud, "retell", h_retell);
}

static void t_calcom(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    traced(req, resp, ud, "calcom", h_calcom);
}

static void t_stripe(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    traced(req, resp, ud, "stripe", h_stripe);
}

static void t_std(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    traced(req, resp, ud, "std", h_std);
}

cm_err_t gw_inbound_routes(cm_http_server_t *srv, gw_app_t *app)
{
    static const struct {
        const char *pattern;
        cm_http_handler_fn fn;
    } routes[] = {
        {"POST /webhooks/retell", t_retell},          {"POST /webhooks/calcom", t_calcom},
        {"POST /webhooks/stripe", t_stripe},          {"POST /webhooks/retell/{tenant}", t_retell},
        {"POST /webhooks/calcom/{tenant}", t_calcom}, {"POST /webhooks/stripe/{tenant}", t_stripe},
        {"POST /webhooks/std/{source}", t_std},
    };
    cm_err_t rc = CM_OK;
    for (size_t i = 0; !rc && i < sizeof routes / sizeof routes[0]; i++)
        rc = cm_http_server_route(srv, routes[i].pattern, routes[i].fn, app);
    return rc;
}
