/* sim_control.c - control routes: Retell calls and webhooks, ledgers, reset. */
#include "sim_control.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_json.h"
#include "cm_log.h"
#include "sim_http.h"

#define COMP "sim.control"

static void answer_problem(cm_http_resp_t *resp, int status, const char *detail)
{
    cm_http_resp_problem(resp, status, cm_http_reason(status), detail);
}

/* Maps a provider error to a status for the control API. */
static int status_for(cm_err_t rc)
{
    switch (rc) {
    case CM_EINVAL:
        return 400;
    case CM_ENOTFOUND:
        return 404;
    case CM_EEXISTS:
    case CM_ESTATE:
        return 409;
    default:
        return 500;
    }
}

static void answer_err(cm_http_resp_t *resp, cm_err_t rc, const char *detail)
{
    answer_problem(resp, status_for(rc), detail && *detail ? detail : cm_strerror(rc));
}

static void h_health(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    cm_http_resp_json(resp, 200, json_pack("{s:b}", "ok", 1));
}

static void h_set_webhook(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    char err[CM_ERR_LEN] = "";
    json_t *body = NULL;
    cm_err_t rc = sim_http_json_object(req, 0, &body, err);
    if (!rc)
        rc = sim_retell_set_webhook_url(ctl->retell, cm_json_str(body, "url", NULL), err);
    json_decref(body);
    if (rc)
        answer_err(resp, rc, err);
    else
        cm_http_resp_text(resp, 204, NULL, NULL);
}

static void h_create_call(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    char err[CM_ERR_LEN] = "";
    json_t *body = NULL, *call = NULL;
    cm_err_t rc = sim_http_json_object(req, 1, &body, err);
    if (!rc)
        rc = sim_retell_create_call(ctl->retell, body, &call, err);
    json_decref(body);
    if (rc)
        answer_err(resp, rc, err);
    else
        cm_http_resp_json(resp, 201, call);
}

static void h_get_call(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    json_t *call = sim_retell_get_call(ctl->retell, cm_http_req_param(req, "call_id"));
    if (!call)
        answer_problem(resp, 404, "no such call");
    else
        cm_http_resp_json(resp, 200, call);
}

/* Reads an optional field of the trigger body; -1 (with err) when it has the wrong type. */
static int opt_bool(const json_t *body, const char *name, int *out, char *err)
{
    const json_t *v = json_object_get(body, name);
    if (!v)
        return 0;
    if (!json_is_boolean(v)) {
        cm_errf(err, "%s must be true or false", name);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

static int opt_int(const json_t *body, const char *name, int64_t *out, char *err)
{
    const json_t *v = json_object_get(body, name);
    if (!v)
        return 0;
    if (!json_is_integer(v)) {
        cm_errf(err, "%s must be an integer", name);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static void h_send_webhook(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    char err[CM_ERR_LEN] = "";
    json_t *body = NULL, *report = NULL;
    cm_err_t rc = sim_http_json_object(req, 1, &body, err);
    if (rc) {
        answer_err(resp, rc, err);
        return;
    }
    sim_retell_send_t opt = {.event = "call_analyzed", .copies = 1};
    int64_t copies = 1;
    const json_t *ev = json_object_get(body, "event");
    if (ev && !json_is_string(ev)) {
        cm_errf(err, "event must be a string");
        rc = CM_EINVAL;
    } else if (ev) {
        opt.event = json_string_value(ev);
    }
    if (!rc && (opt_int(body, "copies", &copies, err) ||
                opt_bool(body, "concurrent", &opt.concurrent, err) ||
                opt_bool(body, "forge", &opt.forge, err) ||
                opt_int(body, "timestamp_offset_ms", &opt.timestamp_offset_ms, err)))
        rc = CM_EINVAL;
    if (!rc && (copies < 1 || copies > SIM_RETELL_MAX_COPIES)) {
        cm_errf(err, "copies must be between 1 and %d", SIM_RETELL_MAX_COPIES);
        rc = CM_EINVAL;
    }
    opt.copies = (unsigned)copies;
    if (!rc)
        rc = sim_retell_send_webhook(ctl->retell, cm_http_req_param(req, "call_id"), &opt, &report,
                                     err);
    json_decref(body);
    if (rc) {
        answer_err(resp, rc, err);
        return;
    }
    /* Six significant digits keep "ms" readable (1.4, not 1.3999999999999999). */
    char *text = json_dumps(report, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(report);
    if (text)
        cm_http_resp_text(resp, 200, "application/json", text);
    else
        answer_problem(resp, 500, "could not encode the report");
    free(text);
}

static void h_calcom_bookings(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    cm_http_resp_json(resp, 200, sim_calcom_bookings(ctl->calcom));
}

static void h_stripe_intents(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    cm_http_resp_json(resp, 200, sim_stripe_payment_intents(ctl->stripe));
}

static void h_reset(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    sim_retell_reset(ctl->retell);
    sim_calcom_reset(ctl->calcom);
    sim_stripe_reset(ctl->stripe);
    CM_INFO(COMP, "all providers reset to the seed data");
    cm_http_resp_text(resp, 204, NULL, NULL);
}

cm_err_t sim_control_routes(sim_control_t *ctl, cm_http_server_t *srv)
{
    static const struct {
        const char *pattern;
        cm_http_handler_fn fn;
    } routes[] = {
        {"GET /control/health", h_health},
        {"PUT /control/retell/webhook", h_set_webhook},
        {"POST /control/retell/calls", h_create_call},
        {"GET /control/retell/calls/{call_id}", h_get_call},
        {"POST /control/retell/calls/{call_id}/webhook", h_send_webhook},
        {"GET /control/calcom/bookings", h_calcom_bookings},
        {"GET /control/stripe/payment_intents", h_stripe_intents},
        {"POST /control/reset", h_reset},
    };
    cm_err_t rc = CM_OK;
    for (size_t i = 0; !rc && i < sizeof routes / sizeof routes[0]; i++)
        rc = cm_http_server_route(srv, routes[i].pattern, routes[i].fn, ctl);
    return rc;
}
