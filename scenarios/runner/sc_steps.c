/* sc_steps.c - request, call, webhook, wait, gateway and repeat steps. */
#include "sc_steps.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_json.h"
#include "cm_rand.h"
#include "cm_sig.h"
#include "sc_http.h"
#include "sc_log.h"
#include "sc_match.h"
#include "sc_metrics.h"
#include "sc_parts.h"
#include "sc_signal.h"
#include "sc_time.h"

/* Fixtures are hand-written call templates. */
#define SC_FIXTURE_MAX (1u << 20)

/* A request with its strings expanded; owns what it points to. */
typedef struct {
    sc_http_req_t r;
    char *path;
    json_t *headers;
    char *body;
    size_t body_len;
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

/* Keys nobody configures: "forge" signs with these (std keys must be base64). */
static const char *forged_key(sc_sign_scheme_t s)
{
    switch (s) {
    case SC_SIGN_STRIPE:
        return "whsec_forged_by_the_scenario_runner";
    case SC_SIGN_STD:
        return "whsec_Zm9yZ2VkIGJ5IHRoZSBzY2VuYXJpbyBydW5uZXIhISE=";
    default:
        return "forged_by_the_scenario_runner";
    }
}

static cm_err_t set_header(sc_ctx_t *ctx, const char *label, prepared_t *p, const char *name,
                           const char *value)
{
    if (strpbrk(value, "\r\n"))
        return sc_fail(ctx, RP_FAILED, "variable", "%s: header \"%s\" would hold a line break",
                       label, name);
    if ((!p->headers && !(p->headers = json_object())) ||
        json_object_set_new(p->headers, name, json_string(value)) != 0)
        return sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
    return CM_OK;
}

/* Signs the final body bytes (after expansion) as the provider would and adds the
 * headers. The timestamp is the scenario's simulated now plus the offset. */
static cm_err_t sign_request(sc_ctx_t *ctx, const char *label, const sc_sign_t *g, prepared_t *p)
{
    char err[CM_ERR_LEN], hdr[CM_SIG_HDR_LEN], ts[32];
    char *owned[SC_SIGN_MAX_KEYS] = {NULL};
    const char *keys[SC_SIGN_MAX_KEYS];
    char *id = NULL;
    size_t n = g->keys ? json_array_size(g->keys) : 1;
    cm_err_t rc = CM_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        const char *k = g->keys ? json_string_value(json_array_get(g->keys, i)) : g->key;
        if (sc_vars_expand(ctx->vars, k, &owned[i], err) != CM_OK)
            rc = fail_var(ctx, label, err);
        keys[i] = g->forge ? forged_key(g->scheme) : owned[i];
    }
    if (!rc && g->id && sc_vars_expand(ctx->vars, g->id, &id, err) != CM_OK)
        rc = fail_var(ctx, label, err);
    int64_t at_ms = sc_time_now_ms(ctx) + g->ts_offset_ms;
    int64_t at_s = at_ms >= 0 ? at_ms / 1000 : -((-at_ms + 999) / 1000);
    const void *body = p->body ? p->body : "";
    const char *name = NULL;
    cm_err_t src = CM_OK;
    if (!rc) {
        switch (g->scheme) {
        case SC_SIGN_RETELL:
            name = "x-retell-signature";
            src = cm_sig_retell_sign(keys[0], body, p->body_len, at_ms, hdr);
            break;
        case SC_SIGN_CALCOM:
            name = "X-Cal-Signature-256";
            src = cm_sig_calcom_sign(keys[0], body, p->body_len, hdr);
            break;
        case SC_SIGN_STRIPE:
            name = "Stripe-Signature";
            src = cm_sig_stripe_sign(keys, n, body, p->body_len, at_s, hdr);
            break;
        case SC_SIGN_STD:
            name = "webhook-signature";
            src = cm_sig_stdwh_sign(keys, n, id, at_s, body, p->body_len, hdr);
            break;
        case SC_SIGN_NONE:
            break;
        }
        if (src != CM_OK)
            rc = sc_fail(ctx, RP_FAILED, "sign",
                         "%s: cannot sign with the %s scheme: %s (std keys must be "
                         "\"whsec_\" + base64; timestamps must not be negative)",
                         label, sc_sign_scheme_name(g->scheme), cm_strerror(src));
    }
    if (!rc && g->scheme == SC_SIGN_STD) {
        snprintf(ts, sizeof ts, "%lld", (long long)at_s);
        rc = set_header(ctx, label, p, "webhook-id", id);
        if (!rc)
            rc = set_header(ctx, label, p, "webhook-timestamp", ts);
    }
    if (!rc && name)
        rc = set_header(ctx, label, p, name, hdr);
    if (!rc && !*ctx->iter) /* inside a repeat: one line per request is enough */
        sc_log(ctx, "runner", "%s: signed %zu bytes (%s%s): %s: %.120s", label, p->body_len,
               sc_sign_scheme_name(g->scheme), g->forge ? ", forged" : "", name, hdr);
    for (size_t i = 0; i < n; i++)
        free(owned[i]);
    free(id);
    return rc;
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
        p->body_len = strlen(p->body);
    } else if (q->body) {
        if (sc_vars_expand(ctx->vars, q->body, &p->body, err) != CM_OK)
            return fail_var(ctx, label, err);
        p->body_len = strlen(p->body);
    } else if (q->repeat_text) {
        char *t = NULL;
        if (sc_vars_expand(ctx->vars, q->repeat_text, &t, err) != CM_OK)
            return fail_var(ctx, label, err);
        size_t tl = strlen(t);
        if (tl == 0 || (unsigned long long)q->repeat_times > SC_BODY_REPEAT_MAX / tl) {
            free(t);
            return sc_fail(ctx, RP_FAILED, "variable",
                           "%s: \"body_repeat\": the expanded body would be empty or larger "
                           "than %u bytes",
                           label, SC_BODY_REPEAT_MAX);
        }
        p->body_len = tl * (size_t)q->repeat_times;
        if (!(p->body = malloc(p->body_len + 1))) {
            free(t);
            return sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
        }
        for (size_t i = 0; i < (size_t)q->repeat_times; i++)
            memcpy(p->body + i * tl, t, tl);
        p->body[p->body_len] = '\0';
        free(t);
    }
    if (q->sign.scheme != SC_SIGN_NONE) {
        cm_err_t rc = sign_request(ctx, label, &q->sign, p);
        if (rc)
            return rc;
    }
    p->r.to = q->to;
    p->r.method = q->method;
    p->r.path = p->path;
    p->r.headers = p->headers;
    p->r.body = p->body;
    p->r.body_len = p->body_len;
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

/* An expectation's maps with the scenario's variables expanded. */
typedef struct {
    json_t *json, *metrics, *headers;
} specs_t;

static cm_err_t expand_spec(sc_ctx_t *ctx, const char *label, const json_t *in, json_t **out);

static cm_err_t expand_specs(sc_ctx_t *ctx, const char *label, const sc_expect_t *e, specs_t *sp)
{
    memset(sp, 0, sizeof *sp);
    cm_err_t rc = expand_spec(ctx, label, e->json, &sp->json);
    if (!rc)
        rc = expand_spec(ctx, label, e->metrics, &sp->metrics);
    if (!rc)
        rc = expand_spec(ctx, label, e->headers, &sp->headers);
    return rc;
}

static void specs_free(specs_t *sp)
{
    json_decref(sp->json);
    json_decref(sp->metrics);
    json_decref(sp->headers);
    memset(sp, 0, sizeof *sp);
}

/* Counts unmet expectations of a (status, json, metrics, headers; already expanded) into
 * diag. */
static int unmet(const sc_expect_t *e, const specs_t *sp, const sc_answer_t *a, cm_buf_t *diag)
{
    const json_t *spec = sp->json, *mspec = sp->metrics;
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
    const char *sel;
    json_t *mwant;
    json_object_foreach((json_t *)mspec, sel, mwant)
    {
        double sum = 0;
        int n = sc_metrics_sum(a->body ? a->body : "", a->body_len, sel, &sum);
        json_t *got = n > 0 ? json_real(sum) : NULL;
        char label[300];
        snprintf(label, sizeof label, "metric %s", sel);
        bad += !sc_match_value(got, mwant, label, diag);
        json_decref(got);
    }
    const char *name;
    json_t *hwant;
    json_object_foreach(sp->headers, name, hwant)
    {
        /* Names match in any case; an absent header is null, so {"$exists": false} works. */
        char val[1024], label[300];
        const char *v = cm_http_header_find(a->headers, name, val, sizeof val);
        json_t *got = v ? json_string(v) : NULL;
        snprintf(label, sizeof label, "header %s", name);
        bad += !sc_match_value(got, hwant, label, diag);
        json_decref(got);
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
    if (a->transport != CM_OK && r->to == SC_TO_GATEWAY && !ctx->worker && ctx->gw.pid > 0 &&
        !sc_proc_running(&ctx->gw)) {
        char how[96];
        sc_proc_describe(&ctx->gw, how, sizeof how);
        sc_fail_detail(ctx, "the gateway has %s\n", how);
    }
    return CM_EINVAL;
}

static cm_err_t run_request(sc_ctx_t *ctx, const sc_step_t *s, const char *label, const char *actor)
{
    prepared_t p;
    specs_t sp = {0};
    sc_answer_t a;
    cm_buf_t diag;
    cm_err_t rc = prepare(ctx, label, &s->req, &p);
    if (!rc && (rc = expand_specs(ctx, label, &s->expect, &sp)) != CM_OK)
        prepared_free(&p);
    if (rc) {
        specs_free(&sp);
        return rc;
    }
    cm_buf_init(&diag, 64 << 10);
    sc_http_do(ctx, actor, &p.r, 0, &a);
    int bad = unmet(&s->expect, &sp, &a, &diag);
    if (bad)
        rc = fail_exchange(ctx, label, &p.r, &a, &diag, bad, NULL);
    else
        rc = capture(ctx, label, s->capture, &a);
    sc_answer_free(&a);
    cm_buf_free(&diag);
    specs_free(&sp);
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
    specs_t sp = {0};
    cm_err_t rc = prepare(ctx, label, &s->req, &p);
    if (!rc && (rc = expand_specs(ctx, label, &s->expect, &sp)) != CM_OK)
        prepared_free(&p);
    if (rc) {
        specs_free(&sp);
        return rc;
    }
    int64_t start = cm_clock_mono_ms();
    /* "within" is simulated time: at speed 10, "60s" is 6 s of the runner's time. */
    int64_t deadline = start + sc_time_real_ms(ctx, s->within_ms);
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
    char speed_note[64] = "";
    if (ctx->speed > 1)
        snprintf(speed_note, sizeof speed_note, " simulated (%lld ms real at x%d)",
                 (long long)(deadline - start), ctx->speed);
    sc_log(ctx, actor, "%s %s %s until it holds, within %lld ms%s", p.r.method,
           sc_target_name(p.r.to), p.path, (long long)sc_time_sim_ms(ctx, deadline - start),
           speed_note);
    for (;;) {
        int64_t left = deadline - cm_clock_mono_ms();
        p.r.timeout_ms = left < 1 ? 1 : left;
        cm_buf_reset(&diag);
        sc_http_do(ctx, actor, &p.r, 1, &a);
        polls++;
        bad = unmet(&s->expect, &sp, &a, &diag);
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
        bad = unmet(&s->expect, &sp, &a, &diag);
    }
    int64_t took = cm_clock_mono_ms() - start;
    if (!bad) {
        sc_log(ctx, actor, "holds after %ld polls, %lld ms%s", polls,
               (long long)sc_time_sim_ms(ctx, took), ctx->speed > 1 ? " simulated" : "");
        rc = capture(ctx, label, s->capture, &a);
    } else if (sc_signal_caught()) {
        rc = sc_fail(ctx, RP_ERRORED, "interrupted", "%s: interrupted by signal %d", label,
                     sc_signal_caught());
    } else {
        char suffix[160];
        snprintf(suffix, sizeof suffix, " did not hold within %lld ms%s%s (%ld polls)",
                 (long long)sc_time_sim_ms(ctx, took), ctx->speed > 1 ? " simulated" : "",
                 capped ? ", the scenario's --timeout" : "", polls);
        rc = fail_exchange(ctx, label, &p.r, &a, &diag, bad, suffix);
    }
    sc_answer_free(&answered);
    sc_answer_free(&a);
    cm_buf_free(&diag);
    specs_free(&sp);
    prepared_free(&p);
    return rc;
}

static cm_err_t run_gateway(sc_ctx_t *ctx, const sc_step_t *s, const char *label)
{
    char err[CM_ERR_LEN];
    char *config = NULL;
    cm_err_t rc = CM_OK;
    if (s->config && sc_vars_expand(ctx->vars, s->config, &config, err) != CM_OK)
        return fail_var(ctx, label, err);
    sc_log(ctx, "runner", "%s: %s the gateway", label, sc_gw_action_name(s->action));
    switch (s->action) {
    case SC_GW_KILL:
        rc = sc_parts_gateway_kill(ctx, label);
        break;
    case SC_GW_STOP:
        rc = sc_parts_gateway_stop(ctx, label);
        break;
    case SC_GW_RESTART:
        rc = sc_parts_gateway_stop(ctx, label);
        if (!rc)
            rc = sc_parts_gateway_start(ctx, config);
        break;
    case SC_GW_START:
        rc = sc_parts_gateway_start(ctx, config);
        break;
    case SC_GW_EXPECT_EXIT:
        ctx->gw_may_exit = 1;
        break;
    case SC_GW_WAIT_EXIT:
        rc = sc_parts_gateway_wait_exit(ctx, label, s->within_ms);
        break;
    }
    free(config);
    return rc;
}

/* Runs a repeat's children once, in the calling thread's context. */
static cm_err_t run_children(sc_ctx_t *ctx, const sc_step_t *s)
{
    for (size_t k = 0; k < s->nchildren; k++) {
        cm_err_t rc = sc_step_run(ctx, &s->children[k]);
        if (rc)
            return rc;
    }
    return CM_OK;
}

/* An include's "with": each variable set (expanded now), then the included steps. The
 * variables stay set afterwards, like a capture's. */
static cm_err_t run_include(sc_ctx_t *ctx, const sc_step_t *s, const char *label)
{
    if (s->with) {
        char err[CM_ERR_LEN];
        json_t *w = NULL;
        if (sc_vars_expand_json(ctx->vars, s->with, &w, err) != CM_OK)
            return fail_var(ctx, label, err);
        const char *k;
        json_t *x;
        cm_err_t rc = CM_OK;
        json_object_foreach(w, k, x)
        {
            if (!rc && sc_vars_set(ctx->vars, k, x) != CM_OK)
                rc = sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
        }
        json_decref(w);
        if (rc)
            return rc;
    }
    return run_children(ctx, s);
}

/* Before an iteration: the runner was interrupted, or the scenario's deadline passed. */
static cm_err_t iteration_blocked(sc_ctx_t *ctx, const char *label, long long i)
{
    if (sc_signal_caught())
        return sc_fail(ctx, RP_ERRORED, "interrupted", "%s: interrupted by signal %d before %lld",
                       label, sc_signal_caught(), i);
    if (cm_clock_mono_ms() >= ctx->deadline_ms)
        return sc_fail(ctx, RP_FAILED, "timeout",
                       "%s: the scenario's --timeout passed before iteration %lld", label, i);
    return CM_OK;
}

static void set_iter(sc_ctx_t *ctx, const char *outer, const char *var, long long i)
{
    /* "outer var=i", cut at the buffer's end (labels only need the start). */
    char num[24];
    const char *parts[] = {outer, *outer ? " " : "", var, "=", num};
    size_t n = 0;
    snprintf(num, sizeof num, "%lld", i);
    for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++)
        for (const char *c = parts[k]; *c && n + 1 < sizeof ctx->iter; c++)
            ctx->iter[n++] = *c;
    ctx->iter[n] = '\0';
}

typedef struct repeat_pool repeat_pool_t;

typedef struct {
    repeat_pool_t *pool;
    sc_ctx_t ctx;
    pthread_t tid;
    int index, started;
} repeat_worker_t;

struct repeat_pool {
    sc_ctx_t *parent;
    const sc_step_t *s;
    const char *label;
    const long long *order;
    atomic_llong next;
    atomic_int stop;
    pthread_mutex_t lock; /* the log, and first/others below */
    int first;            /* the worker whose failure is reported, or -1 */
    long long others;     /* further failed iterations */
};

static void *repeat_worker(void *arg)
{
    repeat_worker_t *w = arg;
    repeat_pool_t *pl = w->pool;
    sc_ctx_t *ctx = &w->ctx;
    for (;;) {
        long long k = atomic_fetch_add(&pl->next, 1);
        if (k >= pl->s->times || atomic_load(&pl->stop))
            break;
        long long i = pl->order[k];
        cm_err_t rc = iteration_blocked(ctx, pl->label, i);
        if (!rc) {
            set_iter(ctx, pl->parent->iter, pl->s->var, i);
            if (!(ctx->vars = sc_vars_clone(pl->parent->vars)) ||
                sc_vars_set_int(ctx->vars, pl->s->var, i) != CM_OK)
                rc = sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", pl->label);
            else
                rc = run_children(ctx, pl->s);
            sc_vars_free(&ctx->vars);
        }
        if (rc) {
            pthread_mutex_lock(&pl->lock);
            if (pl->first < 0)
                pl->first = w->index;
            else
                pl->others++;
            pthread_mutex_unlock(&pl->lock);
            atomic_store(&pl->stop, 1);
            break;
        }
    }
    return NULL;
}
/* concurrency > 1: workers with their own HTTP client, variables (a copy per iteration:
 * what an iteration captures stays in it) and failure record, sharing the log. The first
 * failure stops the others from taking new iterations and becomes the step's failure. */
static cm_err_t run_repeat_concurrent(sc_ctx_t *ctx, const sc_step_t *s, const char *label,
                                      const long long *order)
{
    int n = s->concurrency < s->times ? s->concurrency : (int)s->times;
    repeat_pool_t pl = {.parent = ctx, .s = s, .label = label, .order = order, .first = -1};
    repeat_worker_t *w = calloc((size_t)n, sizeof *w);
    cm_err_t rc = CM_OK;
    if (!w)
        return sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
    atomic_init(&pl.next, 0);
    atomic_init(&pl.stop, 0);
    pthread_mutex_init(&pl.lock, NULL);
    /* From here on the scenario's own context is only read (and its log shared). */
    ctx->log_lock = &pl.lock;
    int started = 0;
    for (int k = 0; k < n; k++) {
        w[k].pool = &pl;
        w[k].index = k;
        w[k].ctx = *ctx;
        w[k].ctx.worker = 1;
        w[k].ctx.vars = NULL;
        memset(&w[k].ctx.fail, 0, sizeof w[k].ctx.fail);
        if (!(w[k].ctx.http = cm_http_client_new()))
            break;
        if (pthread_create(&w[k].tid, NULL, repeat_worker, &w[k]) != 0) {
            cm_http_client_free(&w[k].ctx.http);
            break;
        }
        w[k].started = 1;
        started++;
    }
    if (started < n)
        atomic_store(&pl.stop, 1);
    for (int k = 0; k < n; k++)
        if (w[k].started)
            pthread_join(w[k].tid, NULL);
    ctx->log_lock = NULL;
    pthread_mutex_destroy(&pl.lock);

    if (pl.first >= 0) {
        const sc_failure_t *f = &w[pl.first].ctx.fail;
        sc_fail(ctx, f->status, f->type, "%s", f->message);
        const char *rest = f->detail.data ? strchr(f->detail.data, '\n') : NULL;
        if (rest && rest[1])
            sc_fail_text(ctx, rest + 1);
        if (pl.others)
            sc_fail_detail(ctx, "(%lld more iteration(s) failed at the same time)\n", pl.others);
        rc = CM_EINVAL;
    } else if (started < n) {
        rc = sc_fail(ctx, RP_ERRORED, "internal", "%s: could only start %d of %d threads", label,
                     started, n);
    } else if (atomic_load(&pl.next) < s->times) {
        /* Nobody failed, yet not every iteration ran: only a signal or the deadline. */
        rc = iteration_blocked(ctx, label, atomic_load(&pl.next));
        if (!rc)
            rc = sc_fail(ctx, RP_ERRORED, "internal", "%s: iterations left undone", label);
    }
    for (int k = 0; k < n; k++) {
        cm_buf_free(&w[k].ctx.fail.detail);
        cm_http_client_free(&w[k].ctx.http);
    }
    free(w);
    return rc;
}

/* concurrency 1: in order on this thread, in the scenario's own variables (captures stay
 * after the repeat); the repeat's variable is restored to what it was before. */
static cm_err_t run_repeat_serial(sc_ctx_t *ctx, const sc_step_t *s, const char *label,
                                  const long long *order)
{
    char outer[sizeof ctx->iter];
    const json_t *old = sc_vars_lookup(ctx->vars, s->var);
    json_t *saved = old ? json_incref((json_t *)old) : NULL;
    cm_err_t rc = CM_OK;
    snprintf(outer, sizeof outer, "%s", ctx->iter);
    for (long long k = 0; k < s->times && !rc; k++) {
        long long i = order[k];
        if ((rc = iteration_blocked(ctx, label, i)))
            break;
        set_iter(ctx, outer, s->var, i);
        if (sc_vars_set_int(ctx->vars, s->var, i) != CM_OK)
            rc = sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
        else
            rc = run_children(ctx, s);
    }
    snprintf(ctx->iter, sizeof ctx->iter, "%s", outer);
    if (saved) {
        if (sc_vars_set(ctx->vars, s->var, saved) != CM_OK && !rc)
            rc = sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
        json_decref(saved);
    } else {
        sc_vars_unset(ctx->vars, s->var);
    }
    return rc;
}

static cm_err_t run_repeat(sc_ctx_t *ctx, const sc_step_t *s, const char *label)
{
    long long *order = malloc((size_t)s->times * sizeof *order);
    if (!order)
        return sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
    for (long long k = 0; k < s->times; k++)
        order[k] = k;
    if (s->shuffle) {
        cm_rand_t r;
        cm_rand_seed(&r, s->shuffle_seed);
        for (long long k = s->times - 1; k > 0; k--) {
            long long j = (long long)cm_rand_below(&r, (uint64_t)k + 1);
            long long t = order[k];
            order[k] = order[j];
            order[j] = t;
        }
    }
    int64_t t0 = cm_clock_mono_ms();
    sc_log(ctx, "runner", "%s: %lld times%s, %s = %lld first, %d thread(s)", label, s->times,
           s->shuffle ? " in shuffled order" : "", s->var, order[0],
           s->concurrency < s->times ? s->concurrency : (int)s->times);
    cm_err_t rc = s->concurrency > 1 && s->times > 1 ? run_repeat_concurrent(ctx, s, label, order)
                                                     : run_repeat_serial(ctx, s, label, order);
    if (!rc)
        sc_log(ctx, "runner", "%s: all %lld iterations passed in %lld ms", label, s->times,
               (long long)(cm_clock_mono_ms() - t0));
    free(order);
    return rc;
}

/* Replaces one link's faults at the chaos proxy; the proxy validates each fault and its
 * 400 names the bad field, which the failure shows. */
static cm_err_t run_chaos(sc_ctx_t *ctx, const sc_step_t *s, const char *label, const char *actor)
{
    char err[CM_ERR_LEN], path[64], shown[SC_HTTP_SHOW + 128];
    json_t *faults = NULL;
    if (sc_vars_expand_json(ctx->vars, s->faults, &faults, err) != CM_OK)
        return fail_var(ctx, label, err);
    json_t *doc = json_pack("{s:o}", "faults", faults);
    char *body = doc ? cm_json_dumps(doc) : NULL;
    json_decref(doc);
    if (!body)
        return sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
    snprintf(path, sizeof path, "/links/%s/faults", sc_link_names[s->link]);
    sc_http_req_t r = {
        .to = SC_TO_CHAOS, .method = "PUT", .path = path, .body = body, .body_len = strlen(body)};
    sc_answer_t a;
    cm_err_t rc = CM_OK;
    sc_http_do(ctx, actor, &r, 0, &a);
    free(body);
    if (a.transport != CM_OK || a.status != 200)
        rc = sc_fail(ctx, RP_FAILED, a.transport ? "transport" : "chaos",
                     "%s: setting the faults of link %s: expected 200, got %s", label,
                     sc_link_names[s->link], sc_answer_show(&a, shown, sizeof shown));
    else
        sc_log(ctx, "chaos", "link %s: %zu fault(s) set", sc_link_names[s->link],
               json_array_size(s->faults));
    sc_answer_free(&a);
    return rc;
}

cm_err_t sc_step_run(sc_ctx_t *ctx, const sc_step_t *s)
{
    char label[240], iso[25];
    const char *actor = s->actor;
    sc_step_label(ctx, s, label, sizeof label);
    /* The simulated now, for payloads that carry their own time (Cal.com createdAt). */
    int64_t now = sc_time_now_ms(ctx);
    if (sc_vars_set_int(ctx->vars, "now_ms", now) != CM_OK ||
        sc_vars_set_str(ctx->vars, "now_iso", cm_clock_iso8601(now, iso)) != CM_OK)
        return sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
    switch (s->kind) {
    case SC_STEP_REQUEST:
        return run_request(ctx, s, label, actor);
    case SC_STEP_CALL:
        return run_call(ctx, s, label, actor);
    case SC_STEP_WEBHOOK:
        return run_webhook(ctx, s, label, actor);
    case SC_STEP_WAIT:
        return run_wait(ctx, s, label, actor);
    case SC_STEP_GATEWAY:
        return run_gateway(ctx, s, label);
    case SC_STEP_REPEAT:
        return run_repeat(ctx, s, label);
    case SC_STEP_INCLUDE:
        return run_include(ctx, s, label);
    case SC_STEP_EXPECT:
        return run_children(ctx, s);
    case SC_STEP_CHAOS:
        return run_chaos(ctx, s, label, actor);
    case SC_STEP__COUNT:
        break;
    }
    return sc_fail(ctx, RP_ERRORED, "internal", "%s: unknown step kind", label);
}
