/* gw_admin.c - health probes and the admin API (bearer token, constant-time check). */
#include <stdlib.h>
#include <string.h>

#include "cm_codec.h"
#include "cm_log.h"
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

static void h_live(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    cm_http_resp_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_events(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    if (!authorised(app, req, resp))
        return;
    const char *lim = cm_http_req_query(req, "limit");
    int limit = lim ? atoi(lim) : 1000;
    if (limit <= 0 || limit > 10000) {
        cm_http_resp_problem(resp, 400, "Bad Request", "limit must be 1 to 10000");
        return;
    }
    cm_buf_t b;
    cm_buf_init(&b, 64u << 20);
    cm_err_t rc = gw_store_events_json(app->store, cm_http_req_query(req, "provider"), limit, &b);
    answer_buf(resp, rc, &b, NULL);
}

static void h_call(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    if (!authorised(app, req, resp))
        return;
    cm_buf_t b;
    cm_buf_init(&b, 1u << 20);
    cm_err_t rc = gw_store_call_json(app->store, cm_http_req_param(req, "call_id"), &b);
    answer_buf(resp, rc, &b, "no such call");
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
                      json_pack("{s:I,s:I,s:I,s:I}", "pending", (json_int_t)q.pending, "running",
                                (json_int_t)q.running, "done", (json_int_t)q.done, "dead",
                                (json_int_t)q.dead));
}

cm_err_t gw_admin_routes(cm_http_server_t *srv, gw_app_t *app)
{
    cm_err_t rc = cm_http_server_route(srv, "GET /health/live", h_live, app);
    if (!rc)
        rc = cm_http_server_route(srv, "GET /admin/events", h_events, app);
    if (!rc)
        rc = cm_http_server_route(srv, "GET /admin/calls/{call_id}", h_call, app);
    if (!rc)
        rc = cm_http_server_route(srv, "GET /admin/queue", h_queue, app);
    return rc;
}
