/* sim_control.c - control routes: Retell calls and webhooks, Stripe events and Cal.com
 * webhooks on request, ledgers, faults, journal, reset. */
#include "sim_control.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_json.h"
#include "cm_log.h"
#include "sim_http.h"
#include "sim_setting.h"

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

/* ---- numbers ----------------------------------------------------------------------- */

#define HOUR_MS 3600000
/* sim_calcom.c's hosts are 1 to 3. */
#define CALCOM_HOSTS 3

/* The routes, as registered below and as sim_control_numbers names them. */
#define R_FAULTS "POST /control/faults"
#define R_FAULT_DELETE "DELETE /control/faults/{id}"
#define R_JOURNAL "GET /control/journal"
#define R_CALLS "POST /control/retell/calls"
#define R_WEBHOOK "POST /control/retell/calls/{call_id}/webhook"
#define R_DELIVERY "PUT /control/retell/delivery"
#define R_BUSY "POST /control/calcom/busy"
#define R_CALCOM_EVENTS "POST /control/calcom/events"
#define R_STRIPE_WEBHOOK "PUT /control/stripe/webhook"
#define R_STRIPE_SETTINGS "PUT /control/stripe/settings"
#define R_STRIPE_EVENTS "POST /control/stripe/events"

/* The numbers this file's handlers read (through num_body and num_text), first in
 * sim_control_numbers; the others follow them. */
enum {
    N_WEBHOOK_COPIES = 0,
    N_WEBHOOK_RETRIES,
    N_DELIVERY_RETRIES,
    N_BUSY_HOST,
    N_CALCOM_COPIES,
    N_STRIPE_DECLINE_NEXT,
    N_STRIPE_ERROR_NEXT,
    N_STRIPE_CREATED,
    N_STRIPE_COPIES,
    N_JOURNAL_SINCE,
    N_JOURNAL_LIMIT,
    N_FAULT_ID,
};

const sim_control_number_t sim_control_numbers[] = {
    [N_WEBHOOK_COPIES] = {R_WEBHOOK, SIM_NUM_BODY, "copies", SIM_NUM_INT, 1, SIM_RETELL_MAX_COPIES},
    [N_WEBHOOK_RETRIES] = {R_WEBHOOK, SIM_NUM_BODY, "retries", SIM_NUM_INT, 0,
                           SIM_RETELL_MAX_RETRIES},
    [N_DELIVERY_RETRIES] = {R_DELIVERY, SIM_NUM_BODY, "retries", SIM_NUM_INT, 0,
                            SIM_RETELL_MAX_RETRIES},
    [N_BUSY_HOST] = {R_BUSY, SIM_NUM_BODY, "hostId", SIM_NUM_INT, 1, CALCOM_HOSTS},
    [N_CALCOM_COPIES] = {R_CALCOM_EVENTS, SIM_NUM_BODY, "copies", SIM_NUM_INT, 1,
                         SIM_CALCOM_MAX_COPIES},
    [N_STRIPE_DECLINE_NEXT] = {R_STRIPE_SETTINGS, SIM_NUM_BODY, "decline_next", SIM_NUM_INT, -1,
                               SIM_STRIPE_MAX_NEXT},
    [N_STRIPE_ERROR_NEXT] = {R_STRIPE_SETTINGS, SIM_NUM_BODY, "error_next", SIM_NUM_INT, 0,
                             SIM_STRIPE_MAX_NEXT},
    [N_STRIPE_CREATED] = {R_STRIPE_EVENTS, SIM_NUM_BODY, "created", SIM_NUM_INT, 0,
                          SIM_STRIPE_MAX_CREATED},
    [N_STRIPE_COPIES] = {R_STRIPE_EVENTS, SIM_NUM_BODY, "copies", SIM_NUM_INT, 1,
                         SIM_STRIPE_MAX_COPIES},
    [N_JOURNAL_SINCE] = {R_JOURNAL, SIM_NUM_QUERY, "since", SIM_NUM_INT, 0, INT64_MAX},
    [N_JOURNAL_LIMIT] = {R_JOURNAL, SIM_NUM_QUERY, "limit", SIM_NUM_INT, 0, 100000},
    [N_FAULT_ID] = {R_FAULT_DELETE, SIM_NUM_PATH, "id", SIM_NUM_INT, 1, INT64_MAX},
    /* The deprecated integer forms of duration settings (sim_setting.c, with the
     * sim_setting_t ranges below and in sim_stripe.c). */
    {R_WEBHOOK, SIM_NUM_BODY, "timestamp_offset_ms", SIM_NUM_INT, -SIM_RETELL_MAX_OFFSET_MS,
     SIM_RETELL_MAX_OFFSET_MS},
    {R_WEBHOOK, SIM_NUM_BODY, "retry_interval_ms", SIM_NUM_INT, 0, HOUR_MS},
    {R_WEBHOOK, SIM_NUM_BODY, "timeout_ms", SIM_NUM_INT, 0, SIM_TIMEOUT_MAX_MS},
    {R_WEBHOOK, SIM_NUM_BODY, "delay_ms", SIM_NUM_INT, 0, HOUR_MS},
    {R_DELIVERY, SIM_NUM_BODY, "retry_interval_ms", SIM_NUM_INT, 0, HOUR_MS},
    {R_DELIVERY, SIM_NUM_BODY, "timeout_ms", SIM_NUM_INT, 1, SIM_TIMEOUT_MAX_MS},
    {R_STRIPE_WEBHOOK, SIM_NUM_BODY, "retry_schedule_ms.0", SIM_NUM_INT, 0,
     SIM_STRIPE_MAX_RETRY_DELAY_MS},
    {R_STRIPE_WEBHOOK, SIM_NUM_BODY, "timeout_ms", SIM_NUM_INT, 1, SIM_TIMEOUT_MAX_MS},
    {R_STRIPE_SETTINGS, SIM_NUM_BODY, "hold_ms", SIM_NUM_INT, 0, SIM_STRIPE_MAX_HOLD_MS},
    /* A call's times (sim_retell.c). */
    {R_CALLS, SIM_NUM_BODY, "start_timestamp", SIM_NUM_INT, 0, SIM_RETELL_MAX_TIME_MS},
    {R_CALLS, SIM_NUM_BODY, "end_timestamp", SIM_NUM_INT, 0, SIM_RETELL_MAX_TIME_MS},
    {R_CALLS, SIM_NUM_BODY, "duration_ms", SIM_NUM_INT, 0, SIM_RETELL_MAX_TIME_MS},
    /* A fault rule's numbers (sim_fault.c); the durations as deprecated bare numbers. */
    {R_FAULTS, SIM_NUM_BODY, "times", SIM_NUM_INT, 1, SIM_FAULT_TIMES_MAX},
    {R_FAULTS, SIM_NUM_BODY, "status", SIM_NUM_INT, 100, 599},
    {R_FAULTS, SIM_NUM_BODY, "retry_after", SIM_NUM_INT_OR_TEXT, 0, SIM_FAULT_RETRY_AFTER_MAX_S},
    {R_FAULTS, SIM_NUM_BODY, "retry_after.http_date_in", SIM_NUM_INT, 0,
     SIM_FAULT_RETRY_AFTER_MAX_S * 1000},
    {R_FAULTS, SIM_NUM_BODY, "truncate_at", SIM_NUM_INT, 0, SIM_FAULT_BYTES_MAX},
    {R_FAULTS, SIM_NUM_BODY, "chunk_bytes", SIM_NUM_INT, 1, SIM_FAULT_CHUNK_MAX},
    {R_FAULTS, SIM_NUM_BODY, "probability", SIM_NUM_REAL, 0, 1},
    {R_FAULTS, SIM_NUM_BODY, "latency", SIM_NUM_INT, 0, SIM_FAULT_LATENCY_LIMIT_MS},
    {R_FAULTS, SIM_NUM_BODY, "latency.fixed", SIM_NUM_INT, 0, SIM_FAULT_LATENCY_LIMIT_MS},
    {R_FAULTS, SIM_NUM_BODY, "latency.uniform.0", SIM_NUM_INT, 0, SIM_FAULT_LATENCY_LIMIT_MS},
    {R_FAULTS, SIM_NUM_BODY, "latency.uniform.1", SIM_NUM_INT, 0, SIM_FAULT_LATENCY_LIMIT_MS},
    {R_FAULTS, SIM_NUM_BODY, "latency.lognormal.median", SIM_NUM_INT, 1,
     SIM_FAULT_LATENCY_LIMIT_MS},
    {R_FAULTS, SIM_NUM_BODY, "latency.lognormal.sigma", SIM_NUM_REAL, 0, SIM_FAULT_SIGMA_MAX},
    {R_FAULTS, SIM_NUM_BODY, "hang_max", SIM_NUM_INT, 0, SIM_FAULT_HANG_LIMIT_MS},
    {R_FAULTS, SIM_NUM_BODY, "interval", SIM_NUM_INT, 0, SIM_FAULT_INTERVAL_LIMIT_MS},
    {R_FAULTS, SIM_NUM_BODY, "window.from", SIM_NUM_INT, 0, SIM_FAULT_BARE_MS_MAX},
    {R_FAULTS, SIM_NUM_BODY, "window.until", SIM_NUM_INT, 1, SIM_FAULT_BARE_MS_MAX},
};
const size_t sim_control_nnumbers = sizeof sim_control_numbers / sizeof sim_control_numbers[0];

/* Says in err what number row n must be. */
static void num_refuse(size_t n, int wrong_type, char *err)
{
    const sim_control_number_t *r = &sim_control_numbers[n];
    cm_errf(err, "%s must be %sbetween %lld and %lld", r->field, wrong_type ? "an integer " : "",
            (long long)r->min, (long long)r->max);
}

/* Reads row n's integer from body into *out, which is left as it is when absent. 0, or -1
 * with err naming the field when it is not an integer in the row's range. */
static int num_body(const json_t *body, size_t n, int64_t *out, char *err)
{
    const sim_control_number_t *r = &sim_control_numbers[n];
    const json_t *v = json_object_get(body, r->field);
    if (!v)
        return 0;
    if (!json_is_integer(v)) {
        num_refuse(n, 1, err);
        return -1;
    }
    if (json_integer_value(v) < r->min || json_integer_value(v) > r->max) {
        num_refuse(n, 0, err);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

/* A decimal integer and nothing else: an optional '-', then 1 to 19 digits (no sign '+', no
 * space, no exponent, no hex). 0 with *out set, -1 when s is not one or does not fit. */
static int parse_i64(const char *s, int64_t *out)
{
    const char *d = *s == '-' ? s + 1 : s;
    size_t n = strlen(d);
    if (n == 0 || n > 19 || strspn(d, "0123456789") != n)
        return -1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE)
        return -1;
    *out = v;
    return 0;
}

/* Row n's integer from a query or route parameter s (NULL: absent, *out left as it is). */
static int num_text(const char *s, size_t n, int64_t *out, char *err)
{
    const sim_control_number_t *r = &sim_control_numbers[n];
    int64_t v;
    if (!s)
        return 0;
    if (parse_i64(s, &v) != 0 || v < r->min || v > r->max) {
        cm_errf(err, "%s must be an integer between %lld and %lld, not \"%.32s\"", r->field,
                (long long)r->min, (long long)r->max, s);
        return -1;
    }
    *out = v;
    return 0;
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

/* An optional field of a request body: NULL when absent, and also when it is there with
 * another type (then *bad is set and err says it must be what). JSON_TRUE stands for
 * either boolean. */
static const json_t *opt_typed(const json_t *body, const char *name, json_type type,
                               const char *what, char *err, int *bad)
{
    const json_t *v = json_object_get(body, name);
    json_type t = v ? json_typeof(v) : type;
    if (t == type || (type == JSON_TRUE && t == JSON_FALSE))
        return v;
    cm_errf(err, "%s must be %s", name, what);
    *bad = 1;
    return NULL;
}

/* Each reads an optional field into *out (left as it is when absent); -1 (with err) when
 * it has the wrong type. */
static int opt_bool(const json_t *body, const char *name, int *out, char *err)
{
    int bad = 0;
    const json_t *v = opt_typed(body, name, JSON_TRUE, "true or false", err, &bad);
    if (v)
        *out = json_is_true(v);
    return -bad;
}

static int opt_str(const json_t *body, const char *name, const char **out, char *err)
{
    int bad = 0;
    const json_t *v = opt_typed(body, name, JSON_STRING, "a string", err, &bad);
    if (v)
        *out = json_string_value(v);
    return -bad;
}

/* -1 (err naming it) when body has a key that is not one of fields (NULL-terminated). */
static int unknown_option(const json_t *body, const char *const *fields, char *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v)
    {
        size_t i = 0;
        while (fields[i] && strcmp(fields[i], k) != 0)
            i++;
        if (!fields[i]) {
            cm_errf(err, "%s: unknown option", k);
            return -1;
        }
    }
    return 0;
}

/* Answers a report with six significant digits for "ms" (1.4, not 1.3999999999999999). */
static void answer_report(cm_http_resp_t *resp, int status, json_t *report)
{
    char *text = report ? json_dumps(report, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(report);
    if (text)
        cm_http_resp_text(resp, status, "application/json", text);
    else
        answer_problem(resp, 500, "could not encode the report");
    free(text);
}

/* Answers what a trigger gave: the report (taken) with status, or the error. */
static void answer_sent(cm_http_resp_t *resp, cm_err_t rc, const char *err, int status,
                        json_t *report)
{
    if (rc)
        answer_err(resp, rc, err);
    else
        answer_report(resp, status, report);
}

/* Puts the deprecation notes (borrowed) into an answer (borrowed) as "deprecated" when
 * there are any. Should that fail, the log lines written with the notes still tell. */
static void add_notes(json_t *answer, json_t *notes)
{
    if (answer && json_array_size(notes) && json_object_set(answer, "deprecated", notes) != 0)
        CM_WARN(COMP, "could not add the deprecation notes to the answer");
}

/* The durations of Retell's deliveries; each also taken as "<name>_ms" for one release. */
static const sim_setting_t retell_offset = {"timestamp_offset", -SIM_RETELL_MAX_OFFSET_MS,
                                            SIM_RETELL_MAX_OFFSET_MS};
static const sim_setting_t retell_interval = {"retry_interval", 0, HOUR_MS};
static const sim_setting_t retell_delay = {"delay", 0, HOUR_MS};
/* A trigger's timeout may be 0 (10 s); a default must be a real one. */
static const sim_setting_t retell_timeout = {"timeout", 0, SIM_TIMEOUT_MAX_MS};
static const sim_setting_t retell_default_timeout = {"timeout", 1, SIM_TIMEOUT_MAX_MS};

/* The current names, then the deprecated "_ms" forms (sim_setting.h). */
static const char *const webhook_fields[] = {"event",
                                             "events",
                                             "copies",
                                             "concurrent",
                                             "forge",
                                             "timestamp_offset",
                                             "order",
                                             "retries",
                                             "retry_interval",
                                             "timeout",
                                             "delay",
                                             "async",
                                             "timestamp_offset_ms",
                                             "retry_interval_ms",
                                             "timeout_ms",
                                             "delay_ms",
                                             NULL};

static void h_send_webhook(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    char err[CM_ERR_LEN] = "";
    json_t *body = NULL, *report = NULL, *notes = json_array();
    const sim_setting_warn_t w = {COMP, notes};
    const char *names[SIM_RETELL_MAX_EVENTS + 1] = {0};
    cm_err_t rc = notes ? sim_http_json_object(req, 1, &body, err) : CM_ENOMEM;
    if (rc) {
        json_decref(notes);
        answer_err(resp, rc, err);
        return;
    }
    sim_retell_send_t opt = {.event = "call_analyzed", .copies = 1};
    sim_retell_delivery_defaults(ctl->retell, &opt);
    int64_t copies = 1, retries = opt.retries;
    if (unknown_option(body, webhook_fields, err))
        rc = CM_EINVAL;
    const json_t *ev = json_object_get(body, "event");
    const json_t *evs = json_object_get(body, "events");
    const json_t *order = json_object_get(body, "order");
    if (rc) {
    } else if (ev && !json_is_string(ev)) {
        cm_errf(err, "event must be a string");
        rc = CM_EINVAL;
    } else if (ev) {
        opt.event = json_string_value(ev);
    }
    if (!rc && evs) {
        if (!json_is_array(evs) || !json_array_size(evs) ||
            json_array_size(evs) > SIM_RETELL_MAX_EVENTS) {
            cm_errf(err, "events must be an array of 1 to %d event names", SIM_RETELL_MAX_EVENTS);
            rc = CM_EINVAL;
        }
        for (size_t i = 0; !rc && i < json_array_size(evs); i++) {
            names[i] = json_string_value(json_array_get(evs, i));
            if (!names[i]) {
                cm_errf(err, "events[%zu] must be a string", i);
                rc = CM_EINVAL;
            }
        }
        opt.events = names;
    }
    if (!rc && order) {
        const char *o = json_is_string(order) ? json_string_value(order) : "";
        if (strcmp(o, "given") == 0)
            opt.order = SIM_RETELL_ORDER_GIVEN;
        else if (strcmp(o, "reverse") == 0)
            opt.order = SIM_RETELL_ORDER_REVERSE;
        else if (strcmp(o, "shuffle") == 0)
            opt.order = SIM_RETELL_ORDER_SHUFFLE;
        else {
            cm_errf(err, "order must be given, reverse or shuffle");
            rc = CM_EINVAL;
        }
    }
    if (!rc && (num_body(body, N_WEBHOOK_COPIES, &copies, err) ||
                opt_bool(body, "concurrent", &opt.concurrent, err) ||
                opt_bool(body, "forge", &opt.forge, err) ||
                num_body(body, N_WEBHOOK_RETRIES, &retries, err) ||
                opt_bool(body, "async", &opt.async, err) ||
                sim_setting_duration(body, &retell_offset, &opt.timestamp_offset_ms, &w, err) < 0 ||
                sim_setting_duration(body, &retell_interval, &opt.retry_interval_ms, &w, err) < 0 ||
                sim_setting_duration(body, &retell_timeout, &opt.timeout_ms, &w, err) < 0 ||
                sim_setting_duration(body, &retell_delay, &opt.delay_ms, &w, err) < 0))
        rc = CM_EINVAL;
    opt.copies = (unsigned)copies;
    opt.retries = (unsigned)retries;
    if (!rc)
        rc = sim_retell_send_webhook(ctl->retell, cm_http_req_param(req, "call_id"), &opt, &report,
                                     err);
    if (!rc)
        add_notes(report, notes);
    json_decref(notes);
    json_decref(body);
    answer_sent(resp, rc, err, opt.async ? 202 : 200, report);
}

/* A delivery's report (v, taken) or 404. */
static void answer_delivery(cm_http_resp_t *resp, json_t *v)
{
    if (v)
        answer_report(resp, 200, v);
    else
        answer_problem(resp, 404, "no such delivery (only the last 256 are kept)");
}

static void h_get_delivery(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    answer_delivery(resp, sim_retell_delivery(ctl->retell, cm_http_req_param(req, "id")));
}

static void h_replay(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    char err[CM_ERR_LEN] = "";
    json_t *body = NULL, *report = NULL;
    int resign = 0;
    cm_err_t rc = sim_http_json_object(req, 1, &body, err);
    if (!rc && opt_bool(body, "resign", &resign, err))
        rc = CM_EINVAL;
    if (!rc)
        rc = sim_retell_replay(ctl->retell, cm_http_req_param(req, "id"), resign, &report, err);
    json_decref(body);
    answer_sent(resp, rc, err, 200, report);
}

static void h_delivery_defaults(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    char err[CM_ERR_LEN] = "";
    json_t *body = NULL, *notes = json_array(), *answer = NULL;
    const sim_setting_warn_t w = {COMP, notes};
    sim_retell_send_t d = {0};
    sim_retell_delivery_defaults(ctl->retell, &d);
    int64_t retries = d.retries;
    cm_err_t rc = notes ? sim_http_json_object(req, 0, &body, err) : CM_ENOMEM;
    if (!rc && (num_body(body, N_DELIVERY_RETRIES, &retries, err) ||
                sim_setting_duration(body, &retell_interval, &d.retry_interval_ms, &w, err) < 0 ||
                sim_setting_duration(body, &retell_default_timeout, &d.timeout_ms, &w, err) < 0))
        rc = CM_EINVAL;
    if (!rc)
        rc = sim_retell_set_delivery_defaults(ctl->retell, (unsigned)retries, d.retry_interval_ms,
                                              d.timeout_ms, err);
    json_decref(body);
    if (!rc) {
        /* The answer is data, in milliseconds, as the journal's and the reports' are. */
        answer = json_pack("{s:I,s:I,s:I}", "retries", (json_int_t)retries, "retry_interval_ms",
                           (json_int_t)d.retry_interval_ms, "timeout_ms", (json_int_t)d.timeout_ms);
        add_notes(answer, notes);
    }
    json_decref(notes);
    if (rc)
        answer_err(resp, rc, err);
    else
        cm_http_resp_json(resp, 200, answer);
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

/* ---- faults ------------------------------------------------------------------------ */

static int need(const void *part, cm_http_resp_t *resp, const char *what)
{
    if (part)
        return 1;
    char msg[96];
    snprintf(msg, sizeof msg, "the %s is not enabled in this process", what);
    answer_problem(resp, 404, msg);
    return 0;
}

/* POST /control/faults: one rule (an object) or several ([rule, ...], all or nothing). */
static void h_fault_add(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    char err[CM_ERR_LEN] = "";
    json_t *body = NULL, *added = NULL;
    if (!need(ctl->fault, resp, "fault engine"))
        return;
    cm_err_t rc = req->body_len ? cm_json_parse(req->body, req->body_len, req->body_len, &body, err)
                                : CM_EINVAL;
    if (rc) {
        answer_problem(resp, 400, *err ? err : "a fault rule (JSON object) is required");
        return;
    }
    if (json_is_array(body)) {
        json_t *ids = json_array();
        for (size_t i = 0; !rc && i < json_array_size(body); i++) {
            char perr[CM_ERR_LEN] = "";
            rc = sim_fault_add(ctl->fault, json_array_get(body, i), &added, perr);
            if (rc) {
                /* Take back what this request added, so a bad batch changes nothing. */
                for (size_t k = 0; k < json_array_size(ids); k++)
                    if (sim_fault_delete(ctl->fault, json_integer_value(json_array_get(ids, k))))
                        CM_WARN(COMP, "could not take back a rule of a refused batch");
                cm_errf(err, "$[%zu]%s", i, perr + 1);
            } else {
                json_array_append_new(ids, json_integer(cm_json_int(added, "id", 0)));
                json_decref(added);
            }
        }
        if (!rc)
            cm_http_resp_json(
                resp, 201,
                json_pack("{s:I,s:o}", "count", (json_int_t)json_array_size(ids), "ids", ids));
        else
            json_decref(ids);
    } else {
        rc = sim_fault_add(ctl->fault, body, &added, err);
        if (!rc)
            cm_http_resp_json(resp, 201, added);
    }
    json_decref(body);
    if (rc)
        answer_problem(resp, rc == CM_ETOOBIG ? 409 : status_for(rc), err);
}

static void h_fault_list(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    if (need(ctl->fault, resp, "fault engine"))
        cm_http_resp_json(resp, 200, sim_fault_list(ctl->fault));
}

static void h_fault_delete(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    char err[CM_ERR_LEN];
    int64_t v = 0;
    if (!need(ctl->fault, resp, "fault engine"))
        return;
    /* A route parameter is always there: the route matched it. */
    if (num_text(cm_http_req_param(req, "id"), N_FAULT_ID, &v, err) != 0) {
        answer_problem(resp, 400, err);
        return;
    }
    if (sim_fault_delete(ctl->fault, v) != CM_OK)
        answer_problem(resp, 404, "no such fault rule");
    else
        cm_http_resp_text(resp, 204, NULL, NULL);
}

static void h_fault_clear(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    if (!need(ctl->fault, resp, "fault engine"))
        return;
    sim_fault_clear(ctl->fault);
    cm_http_resp_text(resp, 204, NULL, NULL);
}

/* ---- journal and effects ------------------------------------------------------------- */

static void h_journal(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    int64_t since = 0, limit = 1000;
    if (!need(ctl->journal, resp, "journal"))
        return;
    const char *kind = cm_http_req_query(req, "kind");
    sim_journal_filter_t f = {.provider = cm_http_req_query(req, "provider"),
                              .route = cm_http_req_query(req, "route"),
                              .kind = -1};
    if (kind && strcmp(kind, "request") == 0)
        f.kind = SIM_JOURNAL_REQUEST;
    else if (kind && strcmp(kind, "delivery") == 0)
        f.kind = SIM_JOURNAL_DELIVERY;
    else if (kind && *kind) {
        answer_problem(resp, 400, "kind must be request or delivery");
        return;
    }
    char err[CM_ERR_LEN];
    if (num_text(cm_http_req_query(req, "since"), N_JOURNAL_SINCE, &since, err) ||
        num_text(cm_http_req_query(req, "limit"), N_JOURNAL_LIMIT, &limit, err)) {
        answer_problem(resp, 400, err);
        return;
    }
    const char *order = cm_http_req_query(req, "order");
    if (order && strcmp(order, "started") == 0) {
        f.by_start = 1;
    } else if (order && *order && strcmp(order, "journalled") != 0) {
        answer_problem(resp, 400, "order must be journalled or started");
        return;
    }
    f.since = since;
    f.limit = (size_t)limit;
    char *text = NULL;
    json_t *v = sim_journal_query(ctl->journal, &f);
    text = v ? json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(v);
    if (text)
        cm_http_resp_text(resp, 200, "application/json", text);
    else
        answer_problem(resp, 500, "could not encode the journal");
    free(text);
}

static void h_effects(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    if (need(ctl->journal, resp, "journal"))
        cm_http_resp_json(resp, 200,
                          sim_journal_effects(ctl->journal, cm_http_req_query(req, "provider"),
                                              cm_http_req_query(req, "kind")));
}

static void h_stripe_webhook(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    char err[CM_ERR_LEN] = "";
    json_t *body = NULL;
    cm_err_t rc = sim_http_json_object(req, 0, &body, err);
    if (!rc)
        rc = sim_stripe_set_webhook(ctl->stripe, body, err);
    json_decref(body);
    if (rc)
        answer_err(resp, rc, err);
    else
        cm_http_resp_text(resp, 204, NULL, NULL);
}

static void h_stripe_settings(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    static const sim_setting_t hold = {"hold", 0, SIM_STRIPE_MAX_HOLD_MS};
    /* 204 has no body for notes: the log alone tells. */
    static const sim_setting_warn_t w = {COMP, NULL};
    sim_control_t *ctl = ud;
    char err[CM_ERR_LEN] = "";
    json_t *body = NULL;
    int64_t decline_next = 0, error_next = 0, hold_ms = 0;
    const char *code = NULL;
    cm_err_t rc = sim_http_json_object(req, 0, &body, err);
    if (!rc && (num_body(body, N_STRIPE_DECLINE_NEXT, &decline_next, err) ||
                num_body(body, N_STRIPE_ERROR_NEXT, &error_next, err) ||
                sim_setting_duration(body, &hold, &hold_ms, &w, err) < 0))
        rc = CM_EINVAL;
    const json_t *dc = json_object_get(body, "decline_code");
    if (!rc && dc && !json_is_string(dc)) {
        cm_errf(err, "decline_code must be a string");
        rc = CM_EINVAL;
    }
    code = dc ? json_string_value(dc) : NULL;
    if (!rc)
        rc = sim_stripe_settings(ctl->stripe, decline_next, code, error_next, err);
    if (!rc)
        rc = sim_stripe_hold(ctl->stripe, hold_ms, err);
    json_decref(body);
    if (rc)
        answer_err(resp, rc, err);
    else
        cm_http_resp_text(resp, 204, NULL, NULL);
}

static void h_stripe_refunds(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    cm_http_resp_json(resp, 200, sim_stripe_refunds(ctl->stripe));
}

static const char *const stripe_event_fields[] = {
    "type", "object", "id", "created", "copies", "forge", "timestamp_offset", NULL};

static void h_stripe_event(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    /* Never had an "_ms" form: stripe_event_fields refuses timestamp_offset_ms. */
    static const sim_setting_t offset = {"timestamp_offset", -SIM_STRIPE_MAX_OFFSET_MS,
                                         SIM_STRIPE_MAX_OFFSET_MS};
    static const sim_setting_warn_t w = {COMP, NULL};
    sim_control_t *ctl = ud;
    char err[CM_ERR_LEN] = "";
    json_t *body = NULL, *report = NULL;
    sim_stripe_event_t ev = {.copies = 1};
    cm_err_t rc = sim_http_json_object(req, 0, &body, err);
    if (!rc &&
        (unknown_option(body, stripe_event_fields, err) || opt_str(body, "type", &ev.type, err) ||
         opt_str(body, "id", &ev.id, err) || num_body(body, N_STRIPE_CREATED, &ev.created, err) ||
         num_body(body, N_STRIPE_COPIES, &ev.copies, err) ||
         opt_bool(body, "forge", &ev.forge, err) ||
         sim_setting_duration(body, &offset, &ev.timestamp_offset_ms, &w, err) < 0))
        rc = CM_EINVAL;
    ev.object = json_object_get(body, "object");
    ev.has_created = json_object_get(body, "created") != NULL;
    if (!rc)
        rc = sim_stripe_send_event(ctl->stripe, &ev, &report, err);
    json_decref(body);
    answer_sent(resp, rc, err, 200, report);
}

static void h_stripe_delivery(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    answer_delivery(resp, sim_stripe_delivery(ctl->stripe, cm_http_req_param(req, "id")));
}

static void h_calcom_webhook(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    char err[CM_ERR_LEN] = "";
    json_t *body = NULL;
    cm_err_t rc = sim_http_json_object(req, 0, &body, err);
    const json_t *url = body ? json_object_get(body, "url") : NULL;
    if (!rc && !json_is_string(url) && !json_is_null(url)) {
        cm_errf(err, "url must be an http:// or https:// URL, or null to send no webhooks");
        rc = CM_EINVAL;
    } else if (!rc) {
        rc = sim_calcom_set_webhook(ctl->calcom, json_string_value(url), err);
    }
    json_decref(body);
    if (rc)
        answer_err(resp, rc, err);
    else
        cm_http_resp_text(resp, 204, NULL, NULL);
}

static const char *const calcom_event_fields[] = {"trigger", "booking_uid", "payload",
                                                  "copies",  "forge",       NULL};

static void h_calcom_event(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    char err[CM_ERR_LEN] = "";
    json_t *body = NULL, *report = NULL;
    sim_calcom_event_t ev = {.copies = 1};
    cm_err_t rc = sim_http_json_object(req, 0, &body, err);
    if (!rc && (unknown_option(body, calcom_event_fields, err) ||
                opt_str(body, "trigger", &ev.trigger, err) ||
                opt_str(body, "booking_uid", &ev.booking_uid, err) ||
                num_body(body, N_CALCOM_COPIES, &ev.copies, err) ||
                opt_bool(body, "forge", &ev.forge, err)))
        rc = CM_EINVAL;
    ev.payload = json_object_get(body, "payload");
    if (!rc)
        rc = sim_calcom_send_event(ctl->calcom, &ev, &report, err);
    json_decref(body);
    answer_sent(resp, rc, err, 200, report);
}

static void h_calcom_delivery(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    answer_delivery(resp, sim_calcom_delivery(ctl->calcom, cm_http_req_param(req, "id")));
}

static void h_calcom_busy(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    char err[CM_ERR_LEN] = "";
    json_t *body = NULL;
    int64_t host = 1, start = 0, end = 0;
    cm_err_t rc = sim_http_json_object(req, 0, &body, err);
    if (!rc && num_body(body, N_BUSY_HOST, &host, err))
        rc = CM_EINVAL;
    if (!rc && (cm_clock_parse_iso8601(cm_json_str(body, "start", ""), &start) ||
                cm_clock_parse_iso8601(cm_json_str(body, "end", ""), &end))) {
        cm_errf(err, "start and end must be ISO 8601 date-times");
        rc = CM_EINVAL;
    }
    if (!rc)
        rc = sim_calcom_add_busy(ctl->calcom, (int)host, start, end, err);
    json_decref(body);
    if (rc)
        answer_err(resp, rc, err);
    else
        cm_http_resp_text(resp, 204, NULL, NULL);
}

static void h_reset(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_control_t *ctl = ud;
    sim_retell_reset(ctl->retell);
    sim_calcom_reset(ctl->calcom);
    sim_stripe_reset(ctl->stripe);
    if (ctl->fault)
        sim_fault_clear(ctl->fault);
    if (ctl->journal)
        sim_journal_clear(ctl->journal);
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
        {"GET /_sim/health", h_health},
        {R_FAULTS, h_fault_add},
        {"GET /control/faults", h_fault_list},
        {"DELETE /control/faults", h_fault_clear},
        {R_FAULT_DELETE, h_fault_delete},
        {R_JOURNAL, h_journal},
        {"GET /control/effects", h_effects},
        {"PUT /control/retell/webhook", h_set_webhook},
        {R_CALLS, h_create_call},
        {"GET /control/retell/calls/{call_id}", h_get_call},
        {R_WEBHOOK, h_send_webhook},
        {"GET /control/retell/deliveries/{id}", h_get_delivery},
        {"POST /control/retell/deliveries/{id}/replay", h_replay},
        {R_DELIVERY, h_delivery_defaults},
        {"GET /control/calcom/bookings", h_calcom_bookings},
        {"PUT /control/calcom/webhook", h_calcom_webhook},
        {R_BUSY, h_calcom_busy},
        {R_CALCOM_EVENTS, h_calcom_event},
        {"GET /control/calcom/deliveries/{id}", h_calcom_delivery},
        {"GET /control/stripe/payment_intents", h_stripe_intents},
        {"GET /control/stripe/refunds", h_stripe_refunds},
        {R_STRIPE_WEBHOOK, h_stripe_webhook},
        {R_STRIPE_SETTINGS, h_stripe_settings},
        {R_STRIPE_EVENTS, h_stripe_event},
        {"GET /control/stripe/deliveries/{id}", h_stripe_delivery},
        {"POST /control/reset", h_reset},
    };
    cm_err_t rc = CM_OK;
    for (size_t i = 0; !rc && i < sizeof routes / sizeof routes[0]; i++)
        rc = cm_http_server_route(srv, routes[i].pattern, routes[i].fn, ctl);
    return rc;
}
