/* gw_admin.c - health probes and the admin API (bearer token, constant-time check). */
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_codec.h"
#include "cm_json.h"
#include "cm_log.h"
#include "gw_testhook.h"
#include "gw_app.h"

static int authorised(const gw_app_t *app, const cm_http_req_t *req, cm_http_resp_t *resp)
{
    const char *h = cm_http_req_header(req, "Authorization");
    const char *tok = app->cfg->admin_token;
    if (h && strncmp(h, "Bearer ", 7) == 0 && cm_ct_equal(h + 7, strlen(h + 7), tok, strlen(tok)))
        return 1;
    cm_http_resp_problem(resp, 401, "Unauthorized", "admin API needs a valid bearer token");
    (void)cm_http_resp_header(resp, "WWW-Authenticate", "Bearer");
    return 0;
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
    if (!authorised(app, req, resp))
        return;
    int limit;
    if (!limit_query(req, resp, &limit))
        return;
    cm_buf_t b;
    cm_buf_init(&b, 64u << 20);
    cm_err_t rc = gw_store_events_json(app->store, cm_http_req_query(req, "provider"),
                                       cm_http_req_query(req, "entity"), limit, &b);
    answer_buf(resp, rc, &b, NULL);
}

static void h_call(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    if (!authorised(app, req, resp))
        return;
    cm_buf_t b;
    cm_buf_init(&b, 1u << 20);
    cm_err_t rc = gw_store_entity_json(app->store, "call", cm_http_req_param(req, "call_id"), &b);
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

/* GET /admin/entities/{kind}/{id}: the entity's state and the events about it. */
static void h_entity(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
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
        rc = gw_store_events_json(app->store, NULL, id, 10000, &b);
    if (!rc)
        rc = cm_buf_addstr(&b, "}");
    answer_buf(resp, rc, &b, NULL);
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
    answer_buf(resp, gw_store_jobs_json(app->store, state, limit, &b), &b, NULL);
}

static void h_dead_letters(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    int limit;
    if (!authorised(app, req, resp) || !limit_query(req, resp, &limit))
        return;
    cm_buf_t b;
    cm_buf_init(&b, 64u << 20);
    answer_buf(resp, gw_store_jobs_json(app->store, "dead", limit, &b), &b, NULL);
}

static void h_job(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    int64_t id;
    if (!authorised(app, req, resp) || !job_id_param(req, resp, &id))
        return;
    cm_buf_t b;
    cm_buf_init(&b, 64u << 20);
    answer_buf(resp, gw_store_job_json(app->store, id, &b), &b, "no such job");
}

static void job_action(const cm_http_req_t *req, cm_http_resp_t *resp, gw_app_t *app,
                       cm_err_t (*fn)(gw_store_t *, int64_t, int64_t), const char *done)
{
    int64_t id;
    if (!authorised(app, req, resp) || !job_id_param(req, resp, &id))
        return;
    cm_err_t rc = fn(app->store, id, cm_clock_now_ms());
    if (rc == CM_ENOTFOUND) {
        cm_http_resp_problem(resp, 404, "Not Found", "no such job");
    } else if (rc == CM_ESTATE) {
        cm_http_resp_problem(resp, 409, "Conflict", "only a dead-lettered job can be changed");
    } else if (rc) {
        cm_http_resp_problem(resp, 500, "Internal Server Error", cm_strerror(rc));
    } else {
        CM_INFO("gw.admin", "job %lld %s", (long long)id, done);
        gw_worker_notify(app->worker);
        cm_http_resp_json(resp, 200, json_pack("{s:I,s:s}", "id", (json_int_t)id, "result", done));
    }
}

static void h_replay(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    job_action(req, resp, ud, gw_store_job_replay, "replayed");
}

static void h_discard(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    job_action(req, resp, ud, gw_store_job_discard, "discarded");
}

/* POST /admin/events/{id}/rerun: queue a new job for any stored event. */
static void h_rerun(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    int64_t id, job = 0;
    if (!authorised(app, req, resp) || !job_id_param(req, resp, &id))
        return;
    cm_err_t rc = gw_store_event_rerun(app->store, id, cm_clock_now_ms(), &job);
    if (rc == CM_ENOTFOUND) {
        cm_http_resp_problem(resp, 404, "Not Found", "no such event, or it needs no processing");
    } else if (rc) {
        cm_http_resp_problem(resp, 500, "Internal Server Error", cm_strerror(rc));
    } else {
        gw_worker_notify(app->worker);
        cm_http_resp_json(
            resp, 202,
            json_pack("{s:I,s:I}", "event_id", (json_int_t)id, "job_id", (json_int_t)job));
    }
}

static void h_queue(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
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

/* GET /health/ready: 503 when the store cannot be read or cannot write (webhooks could
 * not be taken: a full disk answers every one 503, so a balancer must stop sending them
 * here); 200 otherwise, "degraded" when a provider's breaker is not closed (webhooks are
 * still taken and queued; only the outbound side waits). The body names each dependency. */
static void h_ready(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    gw_queue_stats_t q;
    int store_read = gw_store_queue_stats(app->store, &q) == CM_OK;
    int writable = store_read && gw_store_writable(app->store);
    int store_ok = store_read && writable;
    int degraded = 0;
    json_t *deps = json_object();
    json_object_set_new(
        deps, "store",
        json_pack("{s:s,s:b}", "status", store_ok ? "ok" : "failing", "writable", writable));
    const char *names[] = {"calcom", "stripe", "retell"};
    for (size_t i = 0; i < 3; i++) {
        gw_prov_rt_t *p = gw_outbound_provider(app->ob, names[i]);
        if (!p)
            continue;
        gw_brk_state_t st = gw_breaker_state(p->breaker, cm_clock_mono_ms());
        int ok = st == GW_BRK_CLOSED || st == GW_BRK_DISABLED;
        degraded |= !ok;
        json_object_set_new(deps, names[i],
                            json_pack("{s:s,s:s}", "status", ok ? "ok" : "degraded", "breaker",
                                      gw_brk_state_name(st)));
    }
    const char *status = !store_ok ? "failing" : degraded ? "degraded" : "ok";
    json_t *body = json_pack("{s:s,s:o}", "status", status, "dependencies", deps);
    if (store_read)
        json_object_set_new(
            body, "queue",
            json_pack("{s:I,s:I}", "pending", (json_int_t)q.pending, "dead", (json_int_t)q.dead));
    cm_http_resp_json(resp, store_ok ? 200 : 503, body);
}

/* GET /admin/breakers: every breaker's state and transition journal. */
static void h_breakers(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    if (!authorised(app, req, resp))
        return;
    cm_buf_t b;
    cm_buf_init(&b, 4u << 20);
    cm_err_t rc = cm_buf_addstr(&b, "{");
    const char *names[] = {"calcom", "stripe", "retell"};
    int n = 0;
    for (size_t i = 0; !rc && i < 3; i++) {
        gw_prov_rt_t *p = gw_outbound_provider(app->ob, names[i]);
        if (!p)
            continue;
        rc = cm_buf_printf(&b, "%s\"%s\":", n++ ? "," : "", names[i]);
        if (!rc)
            rc = gw_breaker_json(p->breaker, cm_clock_mono_ms(), cm_clock_now_ms(), &b);
    }
    if (!rc)
        rc = cm_buf_addstr(&b, "}");
    answer_buf(resp, rc, &b, NULL);
}

/* POST /admin/breakers/{provider}/{force-open|disable|reset}. */
static void h_breaker_action(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    if (!authorised(app, req, resp))
        return;
    gw_prov_rt_t *p = gw_outbound_provider(app->ob, cm_http_req_param(req, "provider"));
    const char *action = cm_http_req_param(req, "action");
    int64_t now = cm_clock_mono_ms();
    if (!p) {
        cm_http_resp_problem(resp, 404, "Not Found", "no such provider");
        return;
    }
    if (!strcmp(action, "force-open"))
        gw_breaker_force_open(p->breaker, now, "admin");
    else if (!strcmp(action, "disable"))
        gw_breaker_disable(p->breaker, now, "admin");
    else if (!strcmp(action, "reset"))
        gw_breaker_reset(p->breaker, now, "admin");
    else {
        cm_http_resp_problem(resp, 404, "Not Found", "action must be force-open, disable or reset");
        return;
    }
    CM_WARN("gw.admin", "breaker %s: %s", p->name, action);
    cm_http_resp_json(resp, 200,
                      json_pack("{s:s,s:s}", "provider", p->name, "state",
                                gw_brk_state_name(gw_breaker_state(p->breaker, now))));
}

/* GET /admin/sagas?state=: every saga, or those in one state. */
static void h_sagas(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    int limit;
    if (!authorised(app, req, resp) || !limit_query(req, resp, &limit))
        return;
    cm_buf_t b;
    cm_buf_init(&b, 64u << 20);
    answer_buf(resp, gw_store_sagas_json(app->store, cm_http_req_query(req, "state"), limit, &b),
               &b, NULL);
}

/* GET /admin/sagas/{id}: the saga (id = call id) and its step log. */
static void h_saga(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    if (!authorised(app, req, resp))
        return;
    cm_buf_t b;
    cm_buf_init(&b, 16u << 20);
    answer_buf(resp, gw_store_saga_json(app->store, cm_http_req_param(req, "id"), &b), &b,
               "no such saga");
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
    json_t *v = NULL;
    gw_erase_t er;
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
    cm_err_t rc = gw_store_erase(app->store, phone, email, cm_clock_now_ms(), &er);
    json_decref(v);
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
 * report. GET /admin/reconcile/findings?provider=&action=&limit=: what the passes found. */
static void h_reconcile(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    if (!authorised(app, req, resp))
        return;
    if (!app->reconcile) {
        cm_http_resp_problem(resp, 503, "Service Unavailable", "reconciliation is not running");
        return;
    }
    cm_buf_t b;
    cm_buf_init(&b, 16u << 20);
    answer_buf(resp, gw_reconcile_run(app->reconcile, &b), &b, NULL);
}

static void h_findings(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
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
                                      limit, &b),
               &b, NULL);
}

/* POST /admin/test/crash-at {"point":"saga.book.after"}: only with --test-hooks. */
static void h_crash_at(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    json_t *v = NULL;
    if (!authorised(app, req, resp))
        return;
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
        cm_http_resp_json(resp, 200, json_pack("{s:s}", "armed", point));
    }
    json_decref(v);
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
        {"POST /admin/reconcile", h_reconcile},
        {"GET /admin/reconcile/findings", h_findings},
    };
    cm_err_t rc = CM_OK;
    for (size_t i = 0; !rc && i < sizeof routes / sizeof routes[0]; i++)
        rc = cm_http_server_route(srv, routes[i].pattern, routes[i].fn, app);
    return rc;
}
