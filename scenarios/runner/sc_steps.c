/* sc_steps.c - request, call, webhook and wait steps. */
#include "sc_steps.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_json.h"
#include "sc_http.h"
#include "sc_log.h"
#include "sc_match.h"
#include "sc_signal.h"

/* Fixtures are hand-written call templates. */
#define SC_FIXTURE_MAX (1u << 20)

/* A request with its strings expanded; owns what it points to. */
typedef struct {
    sc_http_req_t r;
    char *path;
    json_t *headers;
    char *body;
} prepared_t;

static void prepared_free(prepared_t *p)
{
    free(p->path);
    json_decref(p->headers);
    free(p->body);
    memset(p, 0, sizeof *p);
}

static cm_err_t fail_var(sc_ctx_t *ctx, const char *label, const char *err)
{
    return sc_fail(ctx, RP_FAILED, "variable", "%s: %s", label, err);
}

static cm_err_t prepare(sc_ctx_t *ctx, const char *label, const sc_request_t *q, prepared_t *p)
{
    char err[CM_ERR_LEN];
    memset(p, 0, sizeof *p);
    if (sc_vars_expand(ctx->vars, q->path, &p->path, err) != CM_OK)
        return fail_var(ctx, label, err);
    if (q->headers) {
        const char *k;
        json_t *v;
        if (!(p->headers = json_object()))
            return sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
        json_object_foreach((json_t *)q->headers, k, v)
        {
            char *x = NULL;
            if (sc_vars_expand(ctx->vars, json_string_value(v), &x, err) != CM_OK)
                return fail_var(ctx, label, err);
            /* Expanded values come from answers: a CR or LF would split the header. */
            if (strpbrk(x, "\r\n")) {
                free(x);
                return sc_fail(ctx, RP_FAILED, "variable",
                               "%s: header \"%s\" would hold a line break", label, k);
            }
            json_object_set_new(p->headers, k, json_string(x));
            free(x);
        }
    }
    if (q->json) {
        json_t *j = NULL;
        if (sc_vars_expand_json(ctx->vars, q->json, &j, err) != CM_OK)
            return fail_var(ctx, label, err);
        p->body = cm_json_dumps(j);
        json_decref(j);
        if (!p->body)
            return sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
    } else if (q->body && sc_vars_expand(ctx->vars, q->body, &p->body, err) != CM_OK) {
        return fail_var(ctx, label, err);
    }
    p->r.to = q->to;
    p->r.method = q->method;
    p->r.path = p->path;
    p->r.headers = p->headers;
    p->r.body = p->body;
    p->r.body_len = p->body ? strlen(p->body) : 0;
    p->r.auth = q->auth < 0 ? sc_http_default_auth(q->to, p->path) : q->auth;
    return CM_OK;
}

static int status_ok(const sc_expect_t *e, long status)
{
    if (e->nstatuses == 0)
        return status >= 200 && status <= 299;
    for (size_t i = 0; i < e->nstatuses; i++)
        if (e->statuses[i] == status)
            return 1;
    return 0;
}

static const char *statuses_str(const sc_expect_t *e, char *out, size_t cap)
{
    if (e->nstatuses == 0) {
        snprintf(out, cap, "any 2xx");
    } else if (e->nstatuses == 1) {
        snprintf(out, cap, "%d", e->statuses[0]);
    } else {
        size_t n = (size_t)snprintf(out, cap, "one of [");
        for (size_t i = 0; i < e->nstatuses && n < cap; i++)
            n += (size_t)snprintf(out + n, cap - n, "%s%d", i ? ", " : "", e->statuses[i]);
        if (n < cap)
            snprintf(out + n, cap - n, "]");
    }
    return out;
}

/* Counts unmet expectations of a (status and json; spec already expanded) into diag. */
static int unmet(const sc_expect_t *e, const json_t *spec, const sc_answer_t *a, cm_buf_t *diag)
{
    char want[96];
    int bad = 0;
    if (a->transport != CM_OK) {
        SC_BEST_EFFORT(cm_buf_printf(diag, "  no answer: %s\n", a->err));
        return 1;
    }
    if (!status_ok(e, a->status)) {
        bad++;
        SC_BEST_EFFORT(cm_buf_printf(diag, "  status: expected %s, got %ld\n",
                                     statuses_str(e, want, sizeof want), a->status));
    }
    if (spec) {
        if (!a->json) {
            bad++;
            SC_BEST_EFFORT(cm_buf_printf(diag,
                                         "  json: expected a JSON answer, got %zu bytes of "
                                         "something else\n",
                                         a->body_len));
        } else {
            bad += sc_match(a->json, spec, diag);
        }
    }
    return bad;
}

/* The first line of diag without its indent, for the one-line failure message. */
static void first_line(const cm_buf_t *diag, char *out, size_t cap)
{
    const char *s = diag->data ? diag->data : "";
    while (*s == ' ')
        s++;
    snprintf(out, cap, "%.*s", (int)strcspn(s, "\n"), s);
}

static cm_err_t expand_spec(sc_ctx_t *ctx, const char *label, const json_t *in, json_t **out)
{
    char err[CM_ERR_LEN];
    *out = NULL;
    if (in && sc_vars_expand_json(ctx->vars, in, out, err) != CM_OK)
        return fail_var(ctx, label, err);
    return CM_OK;
}

static cm_err_t capture(sc_ctx_t *ctx, const char *label, const json_t *cap, const sc_answer_t *a)
{
    const char *var;
    json_t *path;
    if (!cap)
        return CM_OK;
    json_object_foreach((json_t *)cap, var, path)
    {
        const char *p = json_string_value(path);
        const json_t *v = a->json ? sc_match_path(a->json, p) : NULL;
        if (!v) {
            char shown[SC_HTTP_SHOW + 128];
            sc_fail(ctx, RP_FAILED, "capture", "%s: capture \"%s\": the answer has no \"%s\"",
                    label, var, p);
            sc_fail_detail(ctx, "answer: %s\n", sc_answer_show(a, shown, sizeof shown));
            return CM_EINVAL;
        }
        json_t *copy = json_deep_copy(v);
        cm_err_t rc = copy ? sc_vars_set(ctx->vars, var, copy) : CM_ENOMEM;
        json_decref(copy);
        if (rc)
            return sc_fail(ctx, RP_ERRORED, "internal", "%s: capture \"%s\": %s", label, var,
                           cm_strerror(rc));
        char *shown = cm_json_dumps(v);
        sc_log(ctx, "runner", "${%s} = %.200s", var, shown ? shown : "?");
        free(shown);
    }
    return CM_OK;
}

/* Reports a failed exchange: transport trouble or unmet expectations. */
static cm_err_t fail_exchange(sc_ctx_t *ctx, const char *label, const sc_http_req_t *r,
                              const sc_answer_t *a, cm_buf_t *diag, int bad, const char *suffix)
{
    char first[512], shown[SC_HTTP_SHOW + 128];
    first_line(diag, first, sizeof first);
    const char *type = a->transport == CM_OK ? "expectation" : "transport";
    if (suffix && *suffix)
        type = "timeout";
    sc_fail(ctx, RP_FAILED, type, "%s: %s %s %s%s: %s%s", label, r->method, sc_target_name(r->to),
            r->path, suffix ? suffix : "", first, bad > 1 ? " (and more)" : "");
    sc_fail_text(ctx, diag->data ? diag->data : "");
    sc_fail_detail(ctx, "answer: %s\n", sc_answer_show(a, shown, sizeof shown));
    if (a->transport != CM_OK && r->to == SC_TO_GATEWAY && !sc_proc_running(&ctx->gw)) {
        char how[96];
        sc_proc_describe(&ctx->gw, how, sizeof how);
        sc_fail_detail(ctx, "the gateway has %s\n", how);
    }
    return CM_EINVAL;
}

static cm_err_t run_request(sc_ctx_t *ctx, const sc_step_t *s, const char *label, const char *actor)
{
    prepared_t p;
    json_t *spec = NULL;
    sc_answer_t a;
    cm_buf_t diag;
    cm_err_t rc = prepare(ctx, label, &s->req, &p);
    if (!rc)
        rc = expand_spec(ctx, label, s->expect.json, &spec);
    if (rc) {
        prepared_free(&p);
        return rc;
    }
    cm_buf_init(&diag, 64 << 10);
    sc_http_do(ctx, actor, &p.r, 0, &a);
    int bad = unmet(&s->expect, spec, &a, &diag);
    if (bad)
        rc = fail_exchange(ctx, label, &p.r, &a, &diag, bad, NULL);
    else
        rc = capture(ctx, label, s->capture, &a);
    sc_answer_free(&a);
    cm_buf_free(&diag);
    json_decref(spec);
    prepared_free(&p);
    return rc;
}

/* Sets root[path] = value along a dotted path, creating objects on the way. Steals value. */
static int set_path(json_t *root, const char *path, json_t *value)
{
    json_t *cur = root;
    char key[256];
    for (;;) {
        size_t klen = strcspn(path, ".");
        if (klen == 0 || klen >= sizeof key) {
            json_decref(value);
            return -1;
        }
        memcpy(key, path, klen);
        key[klen] = '\0';
        if (path[klen] == '\0')
            return json_object_set_new(cur, key, value);
        json_t *next = json_object_get(cur, key);
        if (!next) {
            next = json_object();
            if (json_object_set_new(cur, key, next) != 0) {
                json_decref(value);
                return -1;
            }
        }
        if (!json_is_object(next)) {
            json_decref(value);
            return -1;
        }
        cur = next;
        path += klen + 1;
    }
}

static cm_err_t run_call(sc_ctx_t *ctx, const sc_step_t *s, const char *label, const char *actor)
{
    char err[SC_ERR_LEN], path[PATH_MAX], shown[SC_HTTP_SHOW + 128];
    char *rel = NULL;
    json_t *call = NULL, *set = NULL;
    cm_err_t rc = CM_OK;

    if (sc_vars_expand(ctx->vars, s->fixture, &rel, err) != CM_OK)
        return fail_var(ctx, label, err);
    if (sc_scenario_resolve(ctx->sc, rel, path, sizeof path, err) != CM_OK ||
        cm_json_load_file(path, SC_FIXTURE_MAX, &call, err) != CM_OK) {
        free(rel);
        return sc_fail(ctx, RP_ERRORED, "fixture", "%s: \"fixture\": %s", label, err);
    }
    free(rel);
    if (!json_is_object(call)) {
        json_decref(call);
        return sc_fail(ctx, RP_ERRORED, "fixture", "%s: fixture %s is not a JSON object", label,
                       path);
    }
    if (s->set && (rc = expand_spec(ctx, label, s->set, &set)) != CM_OK) {
        json_decref(call);
        return rc;
    }
    const char *k;
    json_t *v;
    json_object_foreach(set, k, v)
    {
        if (set_path(call, k, json_incref(v)) != 0) {
            rc = sc_fail(ctx, RP_FAILED, "fixture",
                         "%s: \"set\": cannot set \"%s\" in %s (a part of the path is "
                         "not an object)",
                         label, k, path);
            break;
        }
    }
    json_decref(set);
    char *body = rc ? NULL : cm_json_dumps(call);
    json_decref(call);
    if (rc)
        return rc;
    if (!body)
        return sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);

    sc_http_req_t r = {.to = SC_TO_CONTROL,
                       .method = "POST",
                       .path = "/control/retell/calls",
                       .body = body,
                       .body_len = strlen(body)};
    sc_answer_t a;
    sc_http_do(ctx, actor, &r, 0, &a);
    free(body);
    if (a.transport != CM_OK || a.status != 201 || !json_is_object(a.json) ||
        !json_is_string(json_object_get(a.json, "call_id"))) {
        rc = sc_fail(ctx, RP_FAILED, a.transport ? "transport" : "control",
                     "%s: creating the call: expected 201 with a call object, got %s", label,
                     sc_answer_show(&a, shown, sizeof shown));
    } else if ((rc = sc_vars_set(ctx->vars, s->as, a.json)) != CM_OK) {
        rc = sc_fail(ctx, RP_ERRORED, "internal", "%s: %s", label, cm_strerror(rc));
    } else {
        sc_log(ctx, "runner", "${%s} = the call %s", s->as,
               json_string_value(json_object_get(a.json, "call_id")));
    }
    sc_answer_free(&a);
    return rc;
}

/* Percent-encodes a path segment (RFC 3986 unreserved characters pass). */
static void encode_segment(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && n + 4 < cap; p++) {
        if (isalnum(*p) || strchr("-._~", *p))
            out[n++] = (char)*p;
        else
            n += (size_t)snprintf(out + n, cap - n, "%%%02X", *p);
    }
    out[n] = '\0';
}

static cm_err_t run_webhook(sc_ctx_t *ctx, const sc_step_t *s, const char *label, const char *actor)
{
    char err[CM_ERR_LEN], seg[512], path[700], shown[SC_HTTP_SHOW + 128];
    char *call_id = NULL, *event = NULL;
    json_t *spec = NULL;
    cm_err_t rc = CM_OK;

    if (sc_vars_expand(ctx->vars, s->call_id, &call_id, err) != CM_OK ||
        sc_vars_expand(ctx->vars, s->event, &event, err) != CM_OK) {
        free(call_id);
        return fail_var(ctx, label, err);
    }
    if ((rc = expand_spec(ctx, label, s->expect.json, &spec)) != CM_OK) {
        free(call_id);
        free(event);
        return rc;
    }
    encode_segment(call_id, seg, sizeof seg);
    snprintf(path, sizeof path, "/control/retell/calls/%s/webhook", seg);
    json_t *req = json_pack("{s:s,s:I,s:b,s:b,s:I}", "event", event, "copies",
                            (json_int_t)s->copies, "concurrent", s->concurrent, "forge", s->forge,
                            "timestamp_offset_ms", (json_int_t)s->timestamp_offset_ms);
    char *body = req ? cm_json_dumps(req) : NULL;
    json_decref(req);
    free(call_id);
    free(event);
    if (!body) {
        json_decref(spec);
        return sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
    }
    sc_http_req_t r = {.to = SC_TO_CONTROL,
                       .method = "POST",
                       .path = path,
                       .body = body,
                       .body_len = strlen(body)};
    sc_answer_t a;
    sc_http_do(ctx, actor, &r, 0, &a);
    free(body);

    const json_t *dl = a.json ? json_object_get(a.json, "deliveries") : NULL;
    if (a.transport != CM_OK || a.status != 200 || !json_is_array(dl)) {
        rc = sc_fail(ctx, RP_FAILED, a.transport ? "transport" : "control",
                     "%s: sending the webhook: expected 200 with \"deliveries\", got %s", label,
                     sc_answer_show(&a, shown, sizeof shown));
        goto out;
    }
    /* One line with every delivery, so a diagnosis shows the whole picture. */
    cm_buf_t list, diag;
    cm_buf_init(&list, 64 << 10);
    cm_buf_init(&diag, 64 << 10);
    char want[96];
    int bad = 0;
    size_t n = json_array_size(dl);
    for (size_t i = 0; i < n; i++) {
        const json_t *d = json_array_get(dl, i);
        long st = (long)cm_json_int(d, "status", 0);
        const char *e = cm_json_str(d, "error", NULL);
        SC_BEST_EFFORT(cm_buf_printf(&list, "%s%ld%s%s%s", i ? " " : "", st, e ? " (" : "",
                                     e ? e : "", e ? ")" : ""));
        if (!status_ok(&s->expect, st) && bad++ == 0)
            SC_BEST_EFFORT(cm_buf_printf(&diag, "  delivery %zu of %zu: expected %s, got %ld%s%s\n",
                                         i + 1, n, statuses_str(&s->expect, want, sizeof want), st,
                                         e ? ", error: " : "", e ? e : ""));
    }
    sc_log(ctx, actor, "%zu deliveries: %s", n, list.data ? list.data : "");
    if ((long long)n < s->copies) {
        bad++;
        SC_BEST_EFFORT(cm_buf_printf(
            &diag, "  deliveries: expected at least %lld (one per copy), got %zu\n", s->copies, n));
    }
    if (spec)
        bad += sc_match(a.json, spec, &diag);
    if (bad) {
        char first[512];
        first_line(&diag, first, sizeof first);
        sc_fail(ctx, RP_FAILED, "expectation", "%s: %s%s", label, first,
                bad > 1 ? " (and more)" : "");
        sc_fail_text(ctx, diag.data ? diag.data : "");
        sc_fail_detail(ctx, "deliveries: %s\nanswer: %s\n", list.data ? list.data : "",
                       sc_answer_show(&a, shown, sizeof shown));
        rc = CM_EINVAL;
    } else {
        rc = capture(ctx, label, s->capture, &a);
    }
    cm_buf_free(&list);
    cm_buf_free(&diag);
out:
    sc_answer_free(&a);
    json_decref(spec);
    return rc;
}

static cm_err_t run_wait(sc_ctx_t *ctx, const sc_step_t *s, const char *label, const char *actor)
{
    prepared_t p;
    json_t *spec = NULL;
    cm_err_t rc = prepare(ctx, label, &s->req, &p);
    if (!rc)
        rc = expand_spec(ctx, label, s->expect.json, &spec);
    if (rc) {
        prepared_free(&p);
        return rc;
    }
    int64_t start = cm_clock_mono_ms();
    int64_t deadline = start + s->within_ms;
    int capped = deadline > ctx->deadline_ms;
    if (capped)
        deadline = ctx->deadline_ms;

    char prev[SC_HTTP_SHOW + 128] = "", cur[SC_HTTP_SHOW + 128];
    sc_answer_t a, answered; /* the latest answer, and the latest that had a status */
    cm_buf_t diag;
    cm_buf_init(&diag, 64 << 10);
    memset(&answered, 0, sizeof answered);
    long polls = 0;
    int bad;
    sc_log(ctx, actor, "%s %s %s until it holds, within %lld ms", p.r.method,
           sc_target_name(p.r.to), p.path, (long long)(deadline - start));
    for (;;) {
        int64_t left = deadline - cm_clock_mono_ms();
        p.r.timeout_ms = left < 1 ? 1 : left;
        cm_buf_reset(&diag);
        sc_http_do(ctx, actor, &p.r, 1, &a);
        polls++;
        bad = unmet(&s->expect, spec, &a, &diag);
        /* Log only changes: a wait polls every 20 ms and the log is for people. */
        sc_answer_show(&a, cur, sizeof cur);
        if (strcmp(cur, prev) != 0) {
            sc_log(ctx, actor, "poll %ld: %s", polls, cur);
            snprintf(prev, sizeof prev, "%s", cur);
        }
        if (!bad || cm_clock_mono_ms() >= deadline || sc_signal_caught())
            break;
        if (a.transport == CM_OK) {
            sc_answer_free(&answered);
            answered = a;
        } else {
            sc_answer_free(&a);
        }
        cm_clock_sleep_ms(SC_WAIT_POLL_MS); /* pacing the poll, not waiting for an event */
    }
    /* The last poll is cut short by the deadline itself; a timeout there says nothing
     * about the part under test, so the diagnosis shows the last real answer. */
    if (bad && a.transport != CM_OK && answered.transport == CM_OK && answered.body) {
        sc_answer_free(&a);
        a = answered;
        memset(&answered, 0, sizeof answered);
        cm_buf_reset(&diag);
        bad = unmet(&s->expect, spec, &a, &diag);
    }
    int64_t took = cm_clock_mono_ms() - start;
    if (!bad) {
        sc_log(ctx, actor, "holds after %ld polls, %lld ms", polls, (long long)took);
        rc = capture(ctx, label, s->capture, &a);
    } else if (sc_signal_caught()) {
        rc = sc_fail(ctx, RP_ERRORED, "interrupted", "%s: interrupted by signal %d", label,
                     sc_signal_caught());
    } else {
        char suffix[160];
        snprintf(suffix, sizeof suffix, " did not hold within %lld ms%s (%ld polls)",
                 (long long)took, capped ? ", the scenario's --timeout" : "", polls);
        rc = fail_exchange(ctx, label, &p.r, &a, &diag, bad, suffix);
    }
    sc_answer_free(&answered);
    sc_answer_free(&a);
    cm_buf_free(&diag);
    json_decref(spec);
    prepared_free(&p);
    return rc;
}

cm_err_t sc_step_run(sc_ctx_t *ctx, const sc_step_t *s)
{
    char label[160], actor[24];
    sc_step_label(s, label, sizeof label);
    snprintf(actor, sizeof actor, "step[%zu]", s->index);
    switch (s->kind) {
    case SC_STEP_REQUEST:
        return run_request(ctx, s, label, actor);
    case SC_STEP_CALL:
        return run_call(ctx, s, label, actor);
    case SC_STEP_WEBHOOK:
        return run_webhook(ctx, s, label, actor);
    case SC_STEP_WAIT:
        return run_wait(ctx, s, label, actor);
    }
    return sc_fail(ctx, RP_ERRORED, "internal", "%s: unknown step kind", label);
}
