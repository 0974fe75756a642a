/* ch_control.c - the control API's handlers. */
#include "ch_control.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch_fault.h"
#include "cm_json.h"
#include "cm_log.h"

#define COMP "chaos.control"

#define R_LINKS "POST /links"
#define R_FAULTS "PUT /links/{name}/faults"
#define R_JOURNAL "GET /journal"

/* The numbers read here come first, in this order. */
enum { N_PORT = 0, N_JOURNAL_SINCE, N_JOURNAL_CONN, N_JOURNAL_LIMIT };

const ch_control_number_t ch_control_numbers[] = {
    [N_PORT] = {R_LINKS, CH_NUM_BODY, "port", 0, 0, 65535},
    [N_JOURNAL_SINCE] = {R_JOURNAL, CH_NUM_QUERY, "since", 0, 0, INT64_MAX},
    [N_JOURNAL_CONN] = {R_JOURNAL, CH_NUM_QUERY, "conn", 0, 0, INT64_MAX},
    [N_JOURNAL_LIMIT] = {R_JOURNAL, CH_NUM_QUERY, "limit", 0, 0, 1000000},
    /* A fault's numbers (ch_fault.c), in the current and the deprecated form. */
    {R_FAULTS, CH_NUM_BODY, "faults.0.bandwidth", 0, 1, CH_FAULT_MAX_BYTES},
    {R_FAULTS, CH_NUM_BODY, "faults.0.slice", 0, 1, CH_FAULT_MAX_BYTES},
    {R_FAULTS, CH_NUM_BODY, "faults.0.after_bytes", 0, 0, CH_FAULT_MAX_BYTES},
    {R_FAULTS, CH_NUM_BODY, "faults.0.probability", 1, 0, 1},
    {R_FAULTS, CH_NUM_BODY, "faults.0.ms", 0, 0, CH_FAULT_MAX_MS},
    {R_FAULTS, CH_NUM_BODY, "faults.0.jitter_ms", 0, 0, CH_FAULT_MAX_MS},
    {R_FAULTS, CH_NUM_BODY, "faults.0.bytes_per_s", 0, 1, CH_FAULT_MAX_BYTES},
    {R_FAULTS, CH_NUM_BODY, "faults.0.bytes", 0, 1, CH_FAULT_MAX_BYTES},
    {R_FAULTS, CH_NUM_BODY, "faults.0.delay_ms", 0, 0, CH_FAULT_MAX_MS},
};
const size_t ch_control_nnumbers = sizeof ch_control_numbers / sizeof ch_control_numbers[0];

static void problem(cm_http_resp_t *resp, int status, const char *detail)
{
    cm_http_resp_problem(resp, status, cm_http_reason(status), detail);
}

static int status_for(cm_err_t rc)
{
    switch (rc) {
    case CM_EINVAL:
        return 400;
    case CM_ENOTFOUND:
        return 404;
    case CM_EEXISTS:
        return 409;
    case CM_ETOOBIG:
        return 413;
    default:
        return 500;
    }
}

static void answer_err(cm_http_resp_t *resp, cm_err_t rc, const char *detail)
{
    problem(resp, status_for(rc), detail && *detail ? detail : cm_strerror(rc));
}

/* Parses the body as a JSON object; *out is a new reference on success. */
static cm_err_t body_object(const cm_http_req_t *req, json_t **out, char *err)
{
    *out = NULL;
    if (req->body_len == 0) {
        cm_errf(err, "a JSON object body is required");
        return CM_EINVAL;
    }
    json_t *v = NULL;
    cm_err_t rc = cm_json_parse(req->body, req->body_len, CH_CONTROL_BODY_LIMIT, &v, err);
    if (rc)
        return rc;
    if (!json_is_object(v)) {
        json_decref(v);
        cm_errf(err, "the body must be a JSON object");
        return CM_EINVAL;
    }
    *out = v;
    return CM_OK;
}

/* CM_EINVAL naming the first key of o that is not in allowed. */
static cm_err_t only_fields(const json_t *o, const char *const *allowed, const char *expected,
                            char *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, k) == 0;
        if (!ok) {
            cm_errf(err, "%.64s: unknown field (expected %s)", k, expected);
            return CM_EINVAL;
        }
    }
    return CM_OK;
}

static ch_link_t *find_or_404(ch_control_t *ctl, const cm_http_req_t *req, cm_http_resp_t *resp)
{
    const char *name = cm_http_req_param(req, "name");
    ch_link_t *l = ch_links_find(ctl->links, name);
    if (!l) {
        char detail[96];
        snprintf(detail, sizeof detail, "no link named \"%.40s\"", name ? name : "");
        problem(resp, 404, detail);
    }
    return l;
}

/* The upstreams a POST or PUT body names: "upstream": "HOST:PORT" (one) or "upstreams":
 * ["HOST:PORT", ...] (1 to CH_LINK_UPSTREAMS_MAX), not both. ups[] (CH_LINK_UPSTREAMS_MAX
 * entries) borrows the body's strings. CM_EINVAL with err naming the field on error. */
static cm_err_t body_upstreams(const json_t *body, const char **ups, size_t *n, char *err)
{
    const json_t *one = json_object_get(body, "upstream");
    const json_t *list = json_object_get(body, "upstreams");
    *n = 0;
    if (one && list) {
        cm_errf(err, "upstreams: give upstream (one) or upstreams (a list), not both");
        return CM_EINVAL;
    }
    if (!one && !list) {
        cm_errf(err, "upstream: required (HOST:PORT), or upstreams (a list of them)");
        return CM_EINVAL;
    }
    if (one) {
        if (!json_is_string(one)) {
            cm_errf(err, "upstream: must be a string HOST:PORT");
            return CM_EINVAL;
        }
        ups[0] = json_string_value(one);
        *n = 1;
        return ch_link_check_upstreams(ups, 1, "upstream", err) == 0 ? CM_OK : CM_EINVAL;
    }
    size_t len = json_array_size(list);
    if (!json_is_array(list) || len < 1 || len > CH_LINK_UPSTREAMS_MAX) {
        cm_errf(err, "upstreams: must be a list of 1 to %d HOST:PORT", CH_LINK_UPSTREAMS_MAX);
        return CM_EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        const json_t *v = json_array_get(list, i);
        if (!json_is_string(v)) {
            cm_errf(err, "upstreams[%zu]: must be a string HOST:PORT", i);
            return CM_EINVAL;
        }
        ups[i] = json_string_value(v);
    }
    *n = len;
    return ch_link_check_upstreams(ups, len, "upstreams", err) == 0 ? CM_OK : CM_EINVAL;
}

static void answer_link(cm_http_resp_t *resp, int status, ch_link_t *l)
{
    cm_http_resp_json(resp, status, ch_link_json(l));
}

/* ---- routes ------------------------------------------------------------------------- */

static void h_health(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    cm_http_resp_json(resp, 200, json_pack("{s:b}", "ok", 1));
}

static void h_list(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    ch_control_t *ctl = ud;
    json_t *a = ch_links_json(ctl->links);
    cm_http_resp_json(resp, 200, a ? json_pack("{s:o}", "links", a) : NULL);
}

static void h_get(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    ch_link_t *l = find_or_404(ud, req, resp);
    if (l)
        answer_link(resp, 200, l);
}

static void h_add(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    static const char *const fields[] = {"name", "upstream", "upstreams", "port", NULL};
    ch_control_t *ctl = ud;
    char err[CM_ERR_LEN] = "";
    json_t *body = NULL;
    ch_link_t *l = NULL;
    const char *ups[CH_LINK_UPSTREAMS_MAX];
    size_t nups = 0;
    cm_err_t rc = body_object(req, &body, err);
    if (!rc)
        rc = only_fields(body, fields, "name, upstream, upstreams, port", err);
    const json_t *name = json_object_get(body, "name");
    const json_t *port = json_object_get(body, "port");
    if (!rc && !json_is_string(name)) {
        cm_errf(err, "name: %s", name ? "must be a string" : "required");
        rc = CM_EINVAL;
    }
    if (!rc)
        rc = body_upstreams(body, ups, &nups, err);
    const ch_control_number_t *pn = &ch_control_numbers[N_PORT];
    if (!rc && port &&
        (!json_is_integer(port) || json_integer_value(port) < pn->min ||
         json_integer_value(port) > pn->max)) {
        cm_errf(err, "port: must be an integer from %lld (any free port) to %lld",
                (long long)pn->min, (long long)pn->max);
        rc = CM_EINVAL;
    }
    if (!rc)
        rc = ch_links_add(ctl->links, json_string_value(name), ups, nups,
                          (uint16_t)(port ? json_integer_value(port) : 0), &l, err);
    json_decref(body);
    if (rc)
        answer_err(resp, rc, err);
    else
        answer_link(resp, 201, l);
}

static void h_put(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    static const char *const fields[] = {"upstream", "upstreams", NULL};
    ch_control_t *ctl = ud;
    ch_link_t *l = find_or_404(ctl, req, resp);
    if (!l)
        return;
    char err[CM_ERR_LEN] = "";
    json_t *body = NULL;
    const char *ups[CH_LINK_UPSTREAMS_MAX];
    size_t nups = 0;
    cm_err_t rc = body_object(req, &body, err);
    if (!rc)
        rc = only_fields(body, fields, "upstream, upstreams", err);
    if (!rc)
        rc = body_upstreams(body, ups, &nups, err);
    if (!rc)
        rc = ch_link_set_upstreams(l, ups, nups, err);
    json_decref(body);
    if (rc)
        answer_err(resp, rc, err);
    else
        answer_link(resp, 200, l);
}

static void h_set_faults(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    ch_control_t *ctl = ud;
    ch_link_t *l = find_or_404(ctl, req, resp);
    if (!l)
        return;
    char err[CM_ERR_LEN] = "";
    json_t *body = NULL;
    ch_faults_t *faults = NULL;
    cm_err_t rc = body_object(req, &body, err);
    if (!rc)
        rc = ch_faults_parse(body, &faults, err);
    json_decref(body);
    if (rc) {
        answer_err(resp, rc, err);
        return;
    }
    /* The deprecated form still works for one release; the log and the answer both say
     * how to write it now, so neither an operator nor a runner misses it. */
    json_t *notes = ch_faults_deprecation_notes(faults);
    for (size_t i = 0; i < json_array_size(notes); i++)
        CM_WARN(COMP, "link %s: %s", ch_link_name(l), json_string_value(json_array_get(notes, i)));
    ch_link_set_faults(l, faults);
    json_t *answer = ch_link_json(l);
    if (answer && notes && json_object_set(answer, "deprecated", notes) != 0) {
        json_decref(answer);
        answer = NULL;
    }
    json_decref(notes);
    cm_http_resp_json(resp, 200, answer);
}

static void h_clear_faults(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    ch_link_t *l = find_or_404(ud, req, resp);
    if (!l)
        return;
    ch_link_set_faults(l, NULL);
    answer_link(resp, 200, l);
}

static void h_reset(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    ch_control_t *ctl = ud;
    ch_links_reset(ctl->links);
    json_t *a = ch_links_json(ctl->links);
    cm_http_resp_json(resp, 200, a ? json_pack("{s:b,s:o}", "ok", 1, "links", a) : NULL);
}

/* The query parameter of number n (a whole number in its range; the table's are none
 * negative) into *out, def when absent; -1 with err when it is not one. */
static int query_u64(const cm_http_req_t *req, size_t n, uint64_t def, uint64_t *out, char *err)
{
    const ch_control_number_t *r = &ch_control_numbers[n];
    const char *s = cm_http_req_query(req, r->field);
    *out = def;
    if (!s)
        return 0;
    char *e;
    errno = 0;
    unsigned long long v = *s >= '0' && *s <= '9' ? strtoull(s, &e, 10) : 0;
    if (!(*s >= '0' && *s <= '9') || errno || *e || v < (uint64_t)r->min || v > (uint64_t)r->max) {
        cm_errf(err, "%s: must be an integer from %lld to %lld, not \"%.40s\"", r->field,
                (long long)r->min, (long long)r->max, s);
        return -1;
    }
    *out = v;
    return 0;
}

static void h_journal(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    ch_control_t *ctl = ud;
    char err[CM_ERR_LEN] = "";
    ch_journal_filter_t f = {.event = -1};
    uint64_t limit = 0;
    if (query_u64(req, N_JOURNAL_SINCE, 0, &f.since, err) != 0 ||
        query_u64(req, N_JOURNAL_CONN, 0, &f.conn, err) != 0 ||
        query_u64(req, N_JOURNAL_LIMIT, 0, &limit, err) != 0) {
        problem(resp, 400, err);
        return;
    }
    f.limit = (size_t)limit;
    f.link = cm_http_req_query(req, "link");
    if (f.link && *f.link && !ch_links_find(ctl->links, f.link)) {
        char detail[96];
        snprintf(detail, sizeof detail, "link: no link named \"%.40s\"", f.link);
        problem(resp, 404, detail);
        return;
    }
    const char *ev = cm_http_req_query(req, "event");
    if (ev && *ev && (f.event = ch_event_parse(ev)) < 0) {
        problem(resp, 400,
                "event: must be one of open, close, reset, refused, fault, upstream_error");
        return;
    }
    cm_http_resp_json(resp, 200, ch_journal_query(ctl->journal, &f));
}

cm_err_t ch_control_routes(ch_control_t *ctl, cm_http_server_t *srv)
{
    static const struct {
        const char *pattern;
        cm_http_handler_fn fn;
    } routes[] = {
        {"GET /health", h_health},
        {"GET /links", h_list},
        {R_LINKS, h_add},
        {"GET /links/{name}", h_get},
        {"PUT /links/{name}", h_put},
        {R_FAULTS, h_set_faults},
        {"DELETE /links/{name}/faults", h_clear_faults},
        {"POST /reset", h_reset},
        {R_JOURNAL, h_journal},
    };
    cm_err_t rc = CM_OK;
    for (size_t i = 0; !rc && i < sizeof routes / sizeof routes[0]; i++)
        rc = cm_http_server_route(srv, routes[i].pattern, routes[i].fn, ctl);
    return rc;
}
