/* gw_admin.c - health probes and the admin API (bearer token, constant-time check). */
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_codec.h"
#include "cm_json.h"
#include "cm_log.h"
#include "gw_store.h"
#include "gw_testhook.h"
#include "gw_app.h"

/* One token compared in constant time: both sides' SHA-256, so that neither a token's
 * content nor its length shows in the time taken. */
static int token_matches(const char *got, size_t glen, const char *tok)
{
    uint8_t a[CM_SHA256_LEN], b[CM_SHA256_LEN];
    if (!tok)
        return 0;
    cm_sha256(got, glen, a);
    cm_sha256(tok, strlen(tok), b);
    return cm_ct_equal(a, sizeof a, b, sizeof b);
}

int gw_admin_authorise(const gw_app_t *app, const cm_http_req_t *req, cm_http_resp_t *resp,
                       gw_admin_who_t *who)
{
    const char *h = cm_http_req_header(req, "Authorization");
    const gw_config_t *c = app->cfg;
    int hit = 0;
    if (h && strncmp(h, "Bearer ", 7) == 0) {
        const char *got = h + 7;
        size_t glen = strlen(got);
        /* Every token is compared, whichever matches, so the time taken does not say
         * which one (nor how far down the list) it was. */
        if (token_matches(got, glen, c->admin_token)) {
            *who = (gw_admin_who_t){.name = "admin", .tenant = NULL};
            hit = 1;
        }
        for (size_t i = 0; i < c->nadmin_tokens; i++) {
            int m = token_matches(got, glen, c->admin_tokens[i].token);
            if (m && !hit) {
                *who = (gw_admin_who_t){.name = c->admin_tokens[i].name,
                                        .tenant = c->admin_tokens[i].tenant};
                hit = 1;
            }
        }
    }
    if (hit)
        return 1;
    cm_http_resp_problem(resp, 401, "Unauthorized", "admin API needs a valid bearer token");
    (void)cm_http_resp_header(resp, "WWW-Authenticate", "Bearer");
    return 0;
}

/* The handlers' check; who gets the caller. */
#define authorised(app, req, resp) gw_admin_authorise(app, req, resp, &who)

void gw_admin_audit(const gw_app_t *app, const gw_admin_who_t *who, const char *action,
                    const char *target, const char *tenant, const char *outcome, const char *detail)
{
    gw_audit_t a = {.at_ms = cm_clock_now_ms(),
                    .token = who->name,
                    .tenant = tenant,
                    .action = action,
                    .target = target,
                    .outcome = outcome,
                    .detail = detail};
    cm_err_t rc = gw_store_audit_add(app->store, &a);
    if (rc)
        CM_ERROR("gw.admin", "audit: %s %s by %s (%s) not recorded: %s", action,
                 target ? target : "", who->name, outcome, cm_strerror(rc));
}

static void answer_buf(cm_http_resp_t *resp, cm_err_t rc, cm_buf_t *b, const char *what)
{
    if (rc == CM_ENOTFOUND)
        cm_http_resp_problem(resp, 404, "Not Found", what);
    else if (rc)
        cm_http_resp_problem(resp, 500, "Internal Server Error", cm_strerror(rc));
    else
        cm_http_resp_text(resp, 200, "application/json", b->data);
    cm_buf_free(b);
}

/* ---- scoped tokens ------------------------------------------------------------------
 *
 * A token scoped to a tenant sees that tenant's rows only: a row of another tenant is
 * answered 404 as if absent, and lists are filtered by the store's views (their tenant
 * argument, applied before the limit). A single row is checked here on its JSON (each
 * row carries its tenant_id). */

/* Whether the JSON object o (a row) belongs to tenant (NULL: every tenant). */
static int row_visible(const json_t *o, const char *tenant)
{
    const char *t = cm_json_str(o, "tenant_id", NULL);
    return !tenant || (t && !strcmp(t, tenant));
}

/* Whether the single row in b (a view's object) may be seen by who; answers 404 (and
 * frees b) when not. path: where the row's tenant_id is ("" for the top level). */
static int row_allowed(cm_http_resp_t *resp, cm_buf_t *b, const gw_admin_who_t *who,
                       const char *path, const char *what)
{
    json_t *v = NULL;
    if (!who->tenant)
        return 1;
    int ok = cm_json_parse(b->data, b->len, b->len + 1, &v, NULL) == CM_OK &&
             row_visible(*path ? json_object_get(v, path) : v, who->tenant);
    json_decref(v);
    if (!ok) {
        cm_buf_free(b);
        cm_http_resp_problem(resp, 404, "Not Found", what);
    }
    return ok;
}

/* A dead-lettered job's tenant into tenant (cap bytes; "" when none). CM_ENOTFOUND. */
static cm_err_t job_tenant(gw_app_t *app, int64_t id, char *tenant, size_t cap)
{
    cm_buf_t b;
    json_t *v = NULL;
    cm_buf_init(&b, 64u << 20);
    cm_err_t rc = gw_store_job_json(app->store, id, &b);
    if (!rc && cm_json_parse(b.data, b.len, b.len + 1, &v, NULL) != CM_OK)
        rc = CM_ESTORE;
    if (!rc)
        snprintf(tenant, cap, "%s", cm_json_str(v, "tenant_id", ""));
    json_decref(v);
    cm_buf_free(&b);
    return rc;
}

static int limit_query(const cm_http_req_t *req, cm_http_resp_t *resp, int *limit)
{
    const char *lim = cm_http_req_query(req, "limit");
    char *end = NULL;
    long v = lim ? strtol(lim, &end, 10) : 1000;
    if ((lim && (!*lim || *end)) || v <= 0 || v > 10000) {
        cm_http_resp_problem(resp, 400, "Bad Request", "limit must be 1 to 10000");
        return 0;
    }
    *limit = (int)v;
    return 1;
}

static void h_live(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    cm_http_resp_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_events(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    gw_admin_who_t who;
    if (!authorised(app, req, resp))
        return;
    int limit;
    if (!limit_query(req, resp, &limit))
        return;
    cm_buf_t b;
    cm_buf_init(&b, 64u << 20);
    cm_err_t rc = gw_store_events_json(app->store, cm_http_req_query(req, "provider"),
                                       cm_http_req_query(req, "entity"), who.tenant, limit, &b);
    answer_buf(resp, rc, &b, NULL);
}

static void h_call(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    gw_admin_who_t who;
    if (!authorised(app, req, resp))
        return;
    cm_buf_t b;
    cm_buf_init(&b, 1u << 20);
    cm_err_t rc = gw_store_entity_json(app->store, "call", cm_http_req_param(req, "call_id"), &b);
    if (!rc && !row_allowed(resp, &b, &who, "", "no such call"))
        return;
    answer_buf(resp, rc, &b, "no such call");
}

static const char *entity_kind(const char *plural)
{
    if (!strcmp(plural, "calls"))
        return "call";
    if (!strcmp(plural, "bookings"))
        return "booking";
    if (!strcmp(plural, "payments"))
        return "payment";
    return NULL;
}

/* GET /admin/entities/{kind}/{id}: the entity's state and the events about it. For a
 * scoped token: 404 for another tenant's entity, and only its tenant's events. */
static void h_entity(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    gw_admin_who_t who;
    if (!authorised(app, req, resp))
        return;
    const char *kind = entity_kind(cm_http_req_param(req, "kind"));
    const char *id = cm_http_req_param(req, "id");
    if (!kind) {
        cm_http_resp_problem(resp, 404, "Not Found", "kind must be calls, bookings or payments");
        return;
    }
    cm_buf_t b;
    cm_buf_init(&b, 16u << 20);
    cm_err_t rc = cm_buf_addstr(&b, "{\"entity\":");
    if (!rc) {
        rc = gw_store_entity_json(app->store, kind, id, &b);
        if (rc == CM_ENOTFOUND)
            rc = cm_buf_addstr(&b, "null");
    }
    if (!rc)
        rc = cm_buf_addstr(&b, ",\"history\":");
    if (!rc)
        rc = gw_store_events_json(app->store, NULL, id, who.tenant, 10000, &b);
    if (!rc)
        rc = cm_buf_addstr(&b, "}");
    if (rc || !who.tenant) {
        answer_buf(resp, rc, &b, NULL);
        return;
    }
    json_t *v = NULL;
    if (cm_json_parse(b.data, b.len, b.len + 1, &v, NULL) != CM_OK) {
        answer_buf(resp, CM_ESTORE, &b, NULL);
        return;
    }
    cm_buf_free(&b);
    json_t *ent = json_object_get(v, "entity");
    if (json_is_object(ent) && !row_visible(ent, who.tenant)) {
        json_decref(v);
        cm_http_resp_problem(resp, 404, "Not Found", "no such entity");
        return;
    }
    cm_http_resp_json(resp, 200, v);
}

static int job_id_param(const cm_http_req_t *req, cm_http_resp_t *resp, int64_t *id)
{
    const char *p = cm_http_req_param(req, "id");
    char *end = NULL;
    long long v = p ? strtoll(p, &end, 10) : 0;
    if (!p || !*p || *end || v <= 0) {
        cm_http_resp_problem(resp, 400, "Bad Request", "id must be a positive integer");
        return 0;
    }
    *id = v;
    return 1;
}

/* GET /admin/jobs?state=dead (the dead-letter queue is the jobs in state dead). */
static void h_jobs(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    gw_admin_who_t who;
    int limit;
    if (!authorised(app, req, resp) || !limit_query(req, resp, &limit))
        return;
    const char *state = cm_http_req_query(req, "state");
    static const char *const states[] = {"pending", "running", "done", "dead", "discarded"};
    int ok = !state;
    for (size_t i = 0; !ok && i < 5; i++)
        ok = !strcmp(state, states[i]);
    if (!ok) {
        cm_http_resp_problem(resp, 400, "Bad Request",
                             "state must be pending, running, done, dead or discarded");
        return;
    }
    cm_buf_t b;
    cm_buf_init(&b, 64u << 20);
    answer_buf(resp, gw_store_jobs_json(app->store, state, who.tenant, limit, &b), &b, NULL);
}

static void h_dead_letters(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    gw_admin_who_t who;
    int limit;
    if (!authorised(app, req, resp) || !limit_query(req, resp, &limit))
        return;
    cm_buf_t b;
    cm_buf_init(&b, 64u << 20);
    answer_buf(resp, gw_store_jobs_json(app->store, "dead", who.tenant, limit, &b), &b, NULL);
}

static void h_job(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    gw_admin_who_t who;
    int64_t id;
    if (!authorised(app, req, resp) || !job_id_param(req, resp, &id))
        return;
    cm_buf_t b;
    cm_buf_init(&b, 64u << 20);
    cm_err_t rc = gw_store_job_json(app->store, id, &b);
    if (!rc && !row_allowed(resp, &b, &who, "", "no such job"))
        return;
    answer_buf(resp, rc, &b, "no such job");
}

static void job_action(const cm_http_req_t *req, cm_http_resp_t *resp, gw_app_t *app,
                       cm_err_t (*fn)(gw_store_t *, int64_t, int64_t), const char *done,
                       const char *action)
{
    gw_admin_who_t who;
    int64_t id;
    char tenant[128] = "", target[40];
    if (!authorised(app, req, resp) || !job_id_param(req, resp, &id))
        return;
    snprintf(target, sizeof target, "job %lld", (long long)id);
    /* The job's tenant: for a scoped token's check, and for the audit entry. */
    cm_err_t rc = job_tenant(app, id, tenant, sizeof tenant);
    if (!rc && who.tenant && strcmp(who.tenant, tenant))
        rc = CM_ENOTFOUND; /* another tenant's: as if absent */
    if (!rc)
        rc = fn(app->store, id, cm_clock_now_ms());
    const char *t = who.tenant ? who.tenant : tenant[0] ? tenant : NULL;
    if (rc == CM_ENOTFOUND) {
        gw_admin_audit(app, &who, action, target, t, "not_found", NULL);
        cm_http_resp_problem(resp, 404, "Not Found", "no such job");
    } else if (rc == CM_ESTATE) {
        gw_admin_audit(app, &who, action, target, t, "conflict", NULL);
        cm_http_resp_problem(resp, 409, "Conflict", "only a dead-lettered job can be changed");
    } else if (rc) {
        gw_admin_audit(app, &who, action, target, t, "error", NULL);
        cm_http_resp_problem(resp, 500, "Internal Server Error", cm_strerror(rc));
    } else {
        CM_INFO("gw.admin", "job %lld %s by %s", (long long)id, done, who.name);
        gw_admin_audit(app, &who, action, target, t, "ok", NULL);
        gw_worker_notify(app->worker);
        cm_http_resp_json(resp, 200, json_pack("{s:I,s:s}", "id", (json_int_t)id, "result", done));
    }
}

static void h_replay(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    job_action(req, resp, ud, gw_store_job_replay, "replayed", "dead_letter.replay");
}

static void h_discard(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    job_action(req, resp, ud, gw_store_job_discard, "discarded", "dead_letter.discard");
}

/* POST /admin/events/{id}/rerun: queue a new job for any stored event. */
static void h_rerun(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    gw_admin_who_t who;
    int64_t id, job = 0;
    char tenant[128] = "", target[40], detail[48];
    if (!authorised(app, req, resp) || !job_id_param(req, resp, &id))
        return;
    snprintf(target, sizeof target, "event %lld", (long long)id);
    cm_err_t rc = gw_store_event_tenant(app->store, id, tenant, sizeof tenant);
    if (!rc && who.tenant && strcmp(who.tenant, tenant))
        rc = CM_ENOTFOUND; /* another tenant's: as if absent */
    if (!rc)
        rc = gw_store_event_rerun(app->store, id, cm_clock_now_ms(), &job);
    const char *t = who.tenant ? who.tenant : tenant[0] ? tenant : NULL;
    if (rc == CM_ENOTFOUND) {
        gw_admin_audit(app, &who, "event.rerun", target, t, "not_found", NULL);
        cm_http_resp_problem(resp, 404, "Not Found", "no such event, or it needs no processing");
    } else if (rc) {
        gw_admin_audit(app, &who, "event.rerun", target, t, "error", NULL);
        cm_http_resp_problem(resp, 500, "Internal Server Error", cm_strerror(rc));
    } else {
        snprintf(detail, sizeof detail, "{\"job_id\":%lld}", (long long)job);
        gw_admin_audit(app, &who, "event.rerun", target, t, "ok", detail);
        gw_worker_notify(app->worker);
        cm_http_resp_json(
            resp, 202,
            json_pack("{s:I,s:I}", "event_id", (json_int_t)id, "job_id", (json_int_t)job));
    }
}

static void h_queue(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    gw_admin_who_t who;
    gw_queue_stats_t q;
    if (!authorised(app, req, resp))
        return;
    cm_err_t rc = gw_store_queue_stats(app->store, &q);
    if (rc) {
        cm_http_resp_problem(resp, 500, "Internal Server Error", cm_strerror(rc));
        return;
    }
    cm_http_resp_json(resp, 200,
                      json_pack("{s:I,s:I,s:I,s:I,s:I}", "pending", (json_int_t)q.pending,
                                "running", (json_int_t)q.running, "done", (json_int_t)q.done,
                                "dead", (json_int_t)q.dead, "discarded", (json_int_t)q.discarded));
}

/* GET /metrics: Prometheus text format. Open like /health: it carries no personal data
 * and scrapers rarely hold admin tokens. */
static void h_metrics(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    cm_buf_t b;
    cm_buf_init(&b, 16u << 20);
    if (gw_metrics_render(app->obs->reg, &b) != CM_OK) {
        cm_http_resp_problem(resp, 500, "Internal Server Error", "metrics could not be rendered");
    } else {
        cm_http_resp_text(resp, 200, GW_METRICS_CONTENT_TYPE, b.data);
    }
    cm_buf_free(&b);
}

/* How bad a breaker state is, to show one state for several keys: the worst. */
static int state_rank(gw_brk_state_t st)
{
    static const int rank[GW_BRK__STATES] = {[GW_BRK_CLOSED] = 0,
                                             [GW_BRK_DISABLED] = 1,
                                             [GW_BRK_HALF_OPEN] = 2,
                                             [GW_BRK_OPEN] = 3,
                                             [GW_BRK_FORCED_OPEN] = 4};
    return (unsigned)st < GW_BRK__STATES ? rank[st] : 0;
}

/* Whether who may see or act on key k of provider p: every key for an unscoped token,
 * its tenant's key for a scoped one. */
static int key_visible(gw_app_t *app, gw_prov_rt_t *p, gw_key_rt_t *k, const gw_admin_who_t *who)
{
    return !who || !who->tenant || gw_outbound_key_of_tenant(p, app->cfg, who->tenant) == k;
}

/* GET /health/ready: 503 when the store cannot be read or cannot write (webhooks could
 * not be taken: a full disk answers every one 503, so a balancer must stop sending them
 * here); 200 otherwise, "degraded" when a breaker of a provider's key is not closed
 * (webhooks are still taken and queued; only the outbound side waits). The body names
 * each dependency, and each key's breaker by its tenant. */
static void h_ready(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    gw_queue_stats_t q;
    int store_read = gw_store_queue_stats(app->store, &q) == CM_OK;
    int writable = store_read && gw_store_writable(app->store);
    int store_ok = store_read && writable;
    int degraded = 0;
    int64_t now = cm_clock_mono_ms();
    json_t *deps = json_object();
    json_object_set_new(
        deps, "store",
        json_pack("{s:s,s:b}", "status", store_ok ? "ok" : "failing", "writable", writable));
    const char *names[] = {"calcom", "stripe", "retell"};
    for (size_t i = 0; i < 3; i++) {
        gw_prov_rt_t *p = gw_outbound_provider(app->ob, names[i]);
        gw_key_rt_t *k;
        if (!p)
            continue;
        gw_brk_state_t worst = GW_BRK_CLOSED;
        json_t *tenants = json_object();
        for (size_t j = 0; (k = gw_outbound_key_at(p, j)) != NULL; j++) {
            gw_brk_state_t st = gw_breaker_state(k->breaker, now);
            if (state_rank(st) > state_rank(worst))
                worst = st;
            json_object_set_new(tenants, k->tenant, json_string(gw_brk_state_name(st)));
        }
        int ok = worst == GW_BRK_CLOSED || worst == GW_BRK_DISABLED;
        degraded |= !ok;
        json_object_set_new(deps, names[i],
                            json_pack("{s:s,s:s,s:o}", "status", ok ? "ok" : "degraded", "breaker",
                                      gw_brk_state_name(worst), "tenants", tenants));
    }
    int et_problem = 0;
    json_t *et = gw_evtcheck_json(app->evtcheck, &et_problem);
    if (et)
        json_object_set_new(deps, "event_types", et);
    degraded |= et_problem;
    const char *status = !store_ok ? "failing" : degraded ? "degraded" : "ok";
    json_t *body = json_pack("{s:s,s:o}", "status", status, "dependencies", deps);
    if (store_read)
        json_object_set_new(
            body, "queue",
            json_pack("{s:I,s:I}", "pending", (json_int_t)q.pending, "dead", (json_int_t)q.dead));
    cm_http_resp_json(resp, store_ok ? 200 : 503, body);
}

/* Inserts e into the journal arr in at_ms order, after the entries of the same time. */
static void journal_insert(json_t *arr, json_t *e)
{
    json_int_t at = json_integer_value(json_object_get(e, "at_ms"));
    size_t n = json_array_size(arr), i = n;
    while (i > 0 && json_integer_value(json_object_get(json_array_get(arr, i - 1), "at_ms")) > at)
        i--;
    json_array_insert(arr, i, e);
}

/* Provider p's breakers as who may see them: the worst key's state and counters, the
 * journal of all of them in time order (each entry with its tenant), and each key's own
 * under "keys" by tenant. With one key, what /admin/breakers always showed, plus tenants.
 * NULL when who sees no key of p, or on error. */
static json_t *provider_breakers(gw_app_t *app, gw_prov_rt_t *p, const gw_admin_who_t *who)
{
    int64_t now = cm_clock_mono_ms(), wall = cm_clock_now_ms();
    json_t *keys = json_object(), *journal = json_array(), *worst = NULL;
    int worst_rank = -1, ok = keys && journal;
    gw_key_rt_t *k;
    for (size_t j = 0; ok && (k = gw_outbound_key_at(p, j)) != NULL; j++) {
        cm_buf_t b;
        json_t *o = NULL, *e;
        size_t i;
        if (!key_visible(app, p, k, who))
            continue;
        cm_buf_init(&b, 4u << 20);
        ok = gw_breaker_json(k->breaker, now, wall, &b) == CM_OK &&
             cm_json_parse(b.data, b.len, b.len + 1, &o, NULL) == CM_OK;
        cm_buf_free(&b);
        if (!ok)
            break;
        json_object_set_new(o, "tenant", json_string(k->tenant));
        json_array_foreach(json_object_get(o, "journal"), i, e)
        {
            json_t *c = json_copy(e);
            json_object_set_new(c, "tenant", json_string(k->tenant));
            journal_insert(journal, c);
            json_decref(c);
        }
        int r = state_rank(gw_breaker_state(k->breaker, now));
        if (r > worst_rank) {
            worst_rank = r;
            worst = o;
        }
        json_object_set_new(keys, k->tenant, o);
    }
    json_t *agg = ok && worst ? json_copy(worst) : NULL;
    if (agg) {
        json_object_set(agg, "journal", journal);
        json_object_set(agg, "keys", keys);
    }
    json_decref(journal);
    json_decref(keys);
    return agg;
}

/* GET /admin/breakers: every provider's breakers (each API key's, by tenant) with their
 * transition journals; a scoped token sees its tenant's keys only. */
static void h_breakers(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    gw_admin_who_t who;
    if (!authorised(app, req, resp))
        return;
    json_t *body = json_object();
    const char *names[] = {"calcom", "stripe", "retell"};
    for (size_t i = 0; i < 3; i++) {
        gw_prov_rt_t *p = gw_outbound_provider(app->ob, names[i]);
        json_t *v = p ? provider_breakers(app, p, &who) : NULL;
        if (v)
            json_object_set_new(body, names[i], v);
    }
    cm_http_resp_json(resp, 200, body);
}

/* POST /admin/breakers/{provider}/{force-open|disable|reset}[?tenant=ID]: on every key of
 * the provider (a scoped token: its tenant's), or on the key of one tenant. */
static void h_breaker_action(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    gw_admin_who_t who;
    if (!authorised(app, req, resp))
        return;
    const char *pname = cm_http_req_param(req, "provider");
    gw_prov_rt_t *p = gw_outbound_provider(app->ob, pname);
    const char *action = cm_http_req_param(req, "action");
    const char *tenant = cm_http_req_query(req, "tenant");
    char what[48], target[160];
    int64_t now = cm_clock_mono_ms();
    if (!p) {
        cm_http_resp_problem(resp, 404, "Not Found", "no such provider");
        return;
    }
    if (strcmp(action, "force-open") && strcmp(action, "disable") && strcmp(action, "reset")) {
        cm_http_resp_problem(resp, 404, "Not Found", "action must be force-open, disable or reset");
        return;
    }
    snprintf(what, sizeof what, "breaker.%s", action);
    /* A scoped token acts on its tenant's key; naming another tenant is naming nothing. */
    if (who.tenant && tenant && strcmp(tenant, who.tenant))
        tenant = "";
    if (who.tenant && !tenant)
        tenant = who.tenant;
    gw_key_rt_t *one = tenant ? gw_outbound_key_of_tenant(p, app->cfg, tenant) : NULL;
    snprintf(target, sizeof target, "%s%s%.100s", p->name, tenant ? "/" : "", tenant ? tenant : "");
    if (tenant && !one) {
        gw_admin_audit(app, &who, what, target, who.tenant, "not_found", NULL);
        cm_http_resp_problem(resp, 404, "Not Found", "no such tenant, or it has no key here");
        return;
    }
    json_t *tenants = json_object();
    gw_brk_state_t worst = GW_BRK_CLOSED;
    gw_key_rt_t *k;
    for (size_t j = 0; (k = gw_outbound_key_at(p, j)) != NULL; j++) {
        if (one && k != one)
            continue;
        if (!strcmp(action, "force-open"))
            gw_breaker_force_open(k->breaker, now, who.name);
        else if (!strcmp(action, "disable"))
            gw_breaker_disable(k->breaker, now, who.name);
        else
            gw_breaker_reset(k->breaker, now, who.name);
        gw_brk_state_t st = gw_breaker_state(k->breaker, now);
        if (state_rank(st) > state_rank(worst) || j == 0 || one)
            worst = st;
        json_object_set_new(tenants, k->tenant, json_string(gw_brk_state_name(st)));
    }
    CM_WARN("gw.admin", "breaker %s: %s by %s", target, action, who.name);
    gw_admin_audit(app, &who, what, target, one ? one->tenant : NULL, "ok", NULL);
    cm_http_resp_json(resp, 200,
                      json_pack("{s:s,s:s,s:o}", "provider", p->name, "state",
                                gw_brk_state_name(worst), "tenants", tenants));
}

/* GET /admin/sagas?state=: every saga, or those in one state. */
static void h_sagas(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    gw_admin_who_t who;
    int limit;
    if (!authorised(app, req, resp) || !limit_query(req, resp, &limit))
        return;
    cm_buf_t b;
    cm_buf_init(&b, 64u << 20);
    cm_err_t rc =
        gw_store_sagas_json(app->store, cm_http_req_query(req, "state"), who.tenant, limit, &b);
    answer_buf(resp, rc, &b, NULL);
}

/* GET /admin/sagas/{id}: the saga (id = call id) and its step log. */
static void h_saga(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    gw_admin_who_t who;
    if (!authorised(app, req, resp))
        return;
    cm_buf_t b;
    cm_buf_init(&b, 16u << 20);
    cm_err_t rc = gw_store_saga_json(app->store, cm_http_req_param(req, "id"), &b);
    if (!rc && !row_allowed(resp, &b, &who, "saga", "no such saga"))
        return;
    answer_buf(resp, rc, &b, "no such saga");
}

/* An E.164 number: '+' and 8 to 15 digits (how Retell and the fixtures write them). */
static int is_e164(const char *p)
{
    size_t n = 0;
    if (*p++ != '+')
        return 0;
    for (; *p; p++, n++)
        if (*p < '0' || *p > '9')
            return 0;
    return n >= 8 && n <= 15;
}

/* One '@' with something on both sides, at most 254 bytes, no spaces or controls. */
static int is_email(const char *p)
{
    const char *at = strchr(p, '@');
    size_t n = strlen(p);
    if (!at || at == p || !at[1] || strchr(at + 1, '@') || n > 254)
        return 0;
    for (; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return 0;
    return 1;
}

/* POST /admin/erasure {"phone": "+14155550123", "email": "a@b.example"} (either or both):
 * erases one person's data (gw_store_erase) and answers with what it changed. The log says
 * that an erasure ran, never whom it was for. */
static void h_erasure(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    gw_admin_who_t who;
    json_t *v = NULL;
    gw_erase_t er = {0};
    char counts[160];
    if (!authorised(app, req, resp))
        return;
    if (cm_json_parse(req->body, req->body_len, 4096, &v, NULL) != CM_OK || !json_is_object(v)) {
        cm_http_resp_problem(resp, 400, "Bad Request",
                             "body must be a JSON object: {\"phone\": \"+14155550123\"} and/or "
                             "{\"email\": \"name@example.com\"}");
        json_decref(v);
        return;
    }
    const char *key;
    json_t *val;
    const char *phone = NULL, *email = NULL, *bad = NULL;
    json_object_foreach(v, key, val)
    {
        size_t len = 0;
        const char *s = json_is_string(val) ? json_string_value(val) : NULL;
        if (s)
            len = json_string_length(val);
        if (!strcmp(key, "phone") && s && len == strlen(s) && is_e164(s))
            phone = s;
        else if (!strcmp(key, "email") && s && len == strlen(s) && is_email(s))
            email = s;
        else if (!bad)
            bad = key;
    }
    if (bad || (!phone && !email)) {
        char detail[160] = "name the person: \"phone\" (E.164, e.g. +14155550123) and/or "
                           "\"email\"";
        if (bad)
            snprintf(detail, sizeof detail,
                     "\"%.40s\": only \"phone\" (E.164, e.g. +14155550123) and \"email\" are "
                     "taken, as strings",
                     bad);
        cm_http_resp_problem(resp, 400, "Bad Request", detail);
        json_decref(v);
        return;
    }
    /* The audit entry records what was asked for and what changed, never whom. */
    const char *target = phone && email ? "phone+email" : phone ? "phone" : "email";
    /* A scoped token erases within its tenant's rows only. */
    cm_err_t rc =
        gw_store_erase_tenant(app->store, who.tenant, phone, email, cm_clock_now_ms(), &er);
    json_decref(v);
    snprintf(counts, sizeof counts,
             "{\"events_erased\":%d,\"dead_letters_discarded\":%d,\"errors_redacted\":%d,"
             "\"in_progress\":%d}",
             er.events, er.dead_letters, er.errors, er.in_progress);
    gw_admin_audit(app, &who, "erasure", target, who.tenant, rc ? "error" : "ok", counts);
    if (rc) {
        cm_http_resp_problem(resp, rc == CM_ESTORE ? 503 : 500, "Erasure failed",
                             "the store failed part-way: what was erased stays erased; send the "
                             "same request again to finish");
        return;
    }
    json_t *ids = json_array();
    for (int i = 0; i < er.events && i < GW_ERASE_IDS_MAX; i++)
        json_array_append_new(ids, json_integer(er.ids[i]));
    CM_WARN("gw.admin",
            "erasure: %d events erased, %d dead letters discarded, %d errors redacted, %d "
            "left in progress",
            er.events, er.dead_letters, er.errors, er.in_progress);
    cm_http_resp_json(resp, 200,
                      json_pack("{s:i,s:o,s:i,s:i,s:i}", "events_erased", er.events, "event_ids",
                                ids, "dead_letters_discarded", er.dead_letters, "errors_redacted",
                                er.errors, "in_progress", er.in_progress));
}

/* POST /admin/reconcile: one reconciliation pass now (gw_reconcile_run); answers its
 * report. GET /admin/reconcile/findings?provider=&action=&limit=: what the passes found
 * (a scoped token: of its tenant). */
static void h_reconcile(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    gw_admin_who_t who;
    if (!authorised(app, req, resp))
        return;
    if (who.tenant) { /* a pass reads and repairs every tenant's */
        cm_http_resp_problem(resp, 403, "Forbidden", "needs a token of all tenants");
        return;
    }
    if (!app->reconcile) {
        cm_http_resp_problem(resp, 503, "Service Unavailable", "reconciliation is not running");
        return;
    }
    cm_buf_t b;
    cm_buf_init(&b, 16u << 20);
    cm_err_t rc = gw_reconcile_run(app->reconcile, &b);
    gw_admin_audit(app, &who, "reconcile.run", NULL, NULL, rc ? "error" : "ok", NULL);
    answer_buf(resp, rc, &b, NULL);
}

static void h_findings(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    gw_admin_who_t who;
    int limit;
    if (!authorised(app, req, resp) || !limit_query(req, resp, &limit))
        return;
    const char *action = cm_http_req_query(req, "action");
    if (action && strcmp(action, "repaired") && strcmp(action, "flagged")) {
        cm_http_resp_problem(resp, 400, "Bad Request", "action must be repaired or flagged");
        return;
    }
    cm_buf_t b;
    cm_buf_init(&b, 16u << 20);
    answer_buf(resp,
               gw_store_findings_json(app->store, cm_http_req_query(req, "provider"), action,
                                      who.tenant, limit, &b),
               &b, NULL);
}

/* POST /admin/test/crash-at {"point":"saga.book.after"}: only with --test-hooks. */
static void h_crash_at(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    gw_admin_who_t who;
    json_t *v = NULL;
    if (!authorised(app, req, resp))
        return;
    if (who.tenant) { /* it crashes the process, every tenant's */
        cm_http_resp_problem(resp, 403, "Forbidden", "needs a token of all tenants");
        return;
    }
    if (!gw_testhook_enabled()) {
        cm_http_resp_problem(resp, 404, "Not Found",
                             "test hooks are off (start with --test-hooks)");
        return;
    }
    const char *point = NULL;
    if (cm_json_parse(req->body, req->body_len, 4096, &v, NULL) == CM_OK)
        point = cm_json_str(v, "point", NULL);
    if (!point || gw_testhook_arm(point) != CM_OK) {
        cm_http_resp_problem(resp, 400, "Bad Request", "body must be {\"point\": \"name\"}");
    } else {
        CM_WARN("gw.admin", "crash point armed: %s", point);
        gw_admin_audit(app, &who, "test.crash_at", point, NULL, "ok", NULL);
        cm_http_resp_json(resp, 200, json_pack("{s:s}", "armed", point));
    }
    json_decref(v);
}

static cm_err_t audit_row(void *ud, const gw_audit_t *a)
{
    json_t *arr = ud, *detail = NULL;
    if (a->detail && cm_json_parse(a->detail, strlen(a->detail), 4096, &detail, NULL) != CM_OK)
        detail = json_string(a->detail);
    json_t *o = json_pack("{s:I,s:I,s:s,s:s?,s:s,s:s?,s:s,s:o?}", "id", (json_int_t)a->id, "at_ms",
                          (json_int_t)a->at_ms, "token", a->token, "tenant", a->tenant, "action",
                          a->action, "target", a->target, "outcome", a->outcome, "detail", detail);
    return o && json_array_append_new(arr, o) == 0 ? CM_OK : CM_ENOMEM;
}

/* GET /admin/audit?limit=&cursor=: the audit log, newest first; a scoped token sees the
 * entries of its tenant. next_cursor (when more may follow) is the cursor of the next
 * page. */
static void h_audit(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    gw_admin_who_t who;
    int limit;
    if (!authorised(app, req, resp))
        return;
    const char *lim = cm_http_req_query(req, "limit"), *cur = cm_http_req_query(req, "cursor");
    char *end = NULL;
    long lv = lim ? strtol(lim, &end, 10) : 100;
    if ((lim && (!*lim || *end)) || lv <= 0 || lv > 1000) {
        cm_http_resp_problem(resp, 400, "Bad Request", "limit must be 1 to 1000");
        return;
    }
    limit = (int)lv;
    long long cv = cur ? strtoll(cur, &end, 10) : 0;
    if (cur && (!*cur || *end || cv <= 0)) {
        cm_http_resp_problem(resp, 400, "Bad Request",
                             "cursor must be a next_cursor this route answered");
        return;
    }
    json_t *arr = json_array();
    cm_err_t rc = gw_store_audit_list(app->store, who.tenant, cv, limit, audit_row, arr);
    if (rc) {
        json_decref(arr);
        cm_http_resp_problem(resp, 500, "Internal Server Error", cm_strerror(rc));
        return;
    }
    size_t n = json_array_size(arr);
    json_t *last = n ? json_object_get(json_array_get(arr, n - 1), "id") : NULL;
    json_t *body = json_pack("{s:I,s:o}", "count", (json_int_t)n, "entries", arr);
    char c[24];
    snprintf(c, sizeof c, "%lld", last ? (long long)json_integer_value(last) : 0LL);
    /* A full page may have more behind it; a short one is the end. */
    json_object_set_new(body, "next_cursor",
                        (int)n == limit && last ? json_string(c) : json_null());
    cm_http_resp_json(resp, 200, body);
}

cm_err_t gw_admin_routes(cm_http_server_t *srv, gw_app_t *app)
{
    static const struct {
        const char *pattern;
        cm_http_handler_fn fn;
    } routes[] = {
        {"GET /health/live", h_live},
        {"GET /health/ready", h_ready},
        {"GET /metrics", h_metrics},
        {"GET /admin/breakers", h_breakers},
        {"GET /admin/sagas", h_sagas},
        {"GET /admin/sagas/{id}", h_saga},
        {"POST /admin/test/crash-at", h_crash_at},
        {"POST /admin/breakers/{provider}/{action}", h_breaker_action},
        {"GET /admin/events", h_events},
        {"GET /admin/calls/{call_id}", h_call},
        {"GET /admin/queue", h_queue},
        {"GET /admin/entities/{kind}/{id}", h_entity},
        {"GET /admin/jobs", h_jobs},
        {"GET /admin/jobs/{id}", h_job},
        {"GET /admin/dead-letters", h_dead_letters},
        {"GET /admin/dead-letters/{id}", h_job},
        {"POST /admin/dead-letters/{id}/replay", h_replay},
        {"POST /admin/dead-letters/{id}/discard", h_discard},
        {"POST /admin/events/{id}/rerun", h_rerun},
        {"POST /admin/erasure", h_erasure},
        {"GET /admin/audit", h_audit},
        {"POST /admin/reconcile", h_reconcile},
        {"GET /admin/reconcile/findings", h_findings},
    };
    cm_err_t rc = CM_OK;
    for (size_t i = 0; !rc && i < sizeof routes / sizeof routes[0]; i++)
        rc = cm_http_server_route(srv, routes[i].pattern, routes[i].fn, app);
    return rc;
}
