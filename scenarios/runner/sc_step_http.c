/* sc_step_http.c - the steps that are HTTP exchanges: "request" (one exchange and its
 * expectation) and "wait" (polled until its expectation holds, or one of the short waits
 * on a saga, a call or the queue, rewritten at load into the poll they stand for). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_json.h"
#include "cm_sig.h"
#include "sc_duration.h"
#include "sc_http.h"
#include "sc_log.h"
#include "sc_match.h"
#include "sc_metrics.h"
#include "sc_signal.h"
#include "sc_step_def.h"
#include "sc_time.h"

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
            rc = sc_step_fail_var(ctx, label, err);
        keys[i] = g->forge ? forged_key(g->scheme) : owned[i];
    }
    if (!rc && g->id && sc_vars_expand(ctx->vars, g->id, &id, err) != CM_OK)
        rc = sc_step_fail_var(ctx, label, err);
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
        return sc_step_fail_var(ctx, label, err);
    if (q->headers) {
        const char *k;
        json_t *v;
        if (!(p->headers = json_object()))
            return sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
        json_object_foreach((json_t *)q->headers, k, v)
        {
            char *x = NULL;
            if (sc_vars_expand(ctx->vars, json_string_value(v), &x, err) != CM_OK)
                return sc_step_fail_var(ctx, label, err);
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
            return sc_step_fail_var(ctx, label, err);
        p->body = cm_json_dumps(j);
        json_decref(j);
        if (!p->body)
            return sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
        p->body_len = strlen(p->body);
    } else if (q->body) {
        if (sc_vars_expand(ctx->vars, q->body, &p->body, err) != CM_OK)
            return sc_step_fail_var(ctx, label, err);
        p->body_len = strlen(p->body);
    } else if (q->repeat_text) {
        char *t = NULL;
        if (sc_vars_expand(ctx->vars, q->repeat_text, &t, err) != CM_OK)
            return sc_step_fail_var(ctx, label, err);
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

/* An expectation's maps with the scenario's variables expanded. */
typedef struct {
    json_t *json, *metrics, *headers;
} specs_t;

static cm_err_t expand_specs(sc_ctx_t *ctx, const char *label, const sc_expect_t *e, specs_t *sp)
{
    memset(sp, 0, sizeof *sp);
    cm_err_t rc = sc_step_expand_spec(ctx, label, e->json, &sp->json);
    if (!rc)
        rc = sc_step_expand_spec(ctx, label, e->metrics, &sp->metrics);
    if (!rc)
        rc = sc_step_expand_spec(ctx, label, e->headers, &sp->headers);
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
    if (!sc_step_status_ok(e, a->status)) {
        bad++;
        SC_BEST_EFFORT(cm_buf_printf(diag, "  status: expected %s, got %ld\n",
                                     sc_step_statuses_str(e, want, sizeof want), a->status));
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

/* Reports a failed exchange: transport trouble or unmet expectations. */
static cm_err_t fail_exchange(sc_ctx_t *ctx, const char *label, const sc_http_req_t *r,
                              const sc_answer_t *a, cm_buf_t *diag, int bad, const char *suffix)
{
    char first[512], shown[SC_HTTP_SHOW + 128];
    sc_step_first_line(diag, first, sizeof first);
    const char *type = a->transport == CM_OK ? "expectation" : "transport";
    if (suffix && *suffix)
        type = "timeout";
    sc_fail(ctx, RP_FAILED, type, "%s: %s %s %s%s: %s%s", label, r->method, sc_target_name(r->to),
            r->path, suffix ? suffix : "", first, bad > 1 ? " (and more)" : "");
    sc_fail_text(ctx, diag->data ? diag->data : "");
    sc_fail_detail(ctx, "answer: %s\n", sc_answer_show(a, shown, sizeof shown));
    if (a->transport != CM_OK && r->to == SC_TO_GATEWAY && !ctx->worker && ctx->gws[0].pid > 0 &&
        !sc_proc_running(&ctx->gws[0])) {
        char how[96];
        sc_proc_describe(&ctx->gws[0], how, sizeof how);
        sc_fail_detail(ctx, "the gateway has %s\n", how);
    }
    return CM_EINVAL;
}

/* The step's request and expectation with their variables expanded; on failure nothing is
 * left to free. */
static cm_err_t prepare_step(sc_ctx_t *ctx, const char *label, const sc_step_t *s, prepared_t *p,
                             specs_t *sp)
{
    cm_err_t rc = prepare(ctx, label, &s->req, p);
    if (!rc && (rc = expand_specs(ctx, label, &s->expect, sp)) != CM_OK)
        prepared_free(p);
    if (rc)
        specs_free(sp);
    return rc;
}

static cm_err_t run_request(sc_ctx_t *ctx, const sc_step_t *s, const char *label, const char *actor)
{
    prepared_t p;
    specs_t sp = {0};
    sc_answer_t a;
    cm_buf_t diag;
    cm_err_t rc = prepare_step(ctx, label, s, &p, &sp);
    if (rc)
        return rc;
    cm_buf_init(&diag, 64 << 10);
    sc_http_do(ctx, actor, &p.r, 0, &a);
    int bad = unmet(&s->expect, &sp, &a, &diag);
    if (bad)
        rc = fail_exchange(ctx, label, &p.r, &a, &diag, bad, NULL);
    else
        rc = sc_step_capture(ctx, label, s->capture, &a);
    sc_answer_free(&a);
    cm_buf_free(&diag);
    specs_free(&sp);
    prepared_free(&p);
    return rc;
}

static cm_err_t run_wait(sc_ctx_t *ctx, const sc_step_t *s, const char *label, const char *actor)
{
    prepared_t p;
    specs_t sp = {0};
    cm_err_t rc = prepare_step(ctx, label, s, &p, &sp);
    if (rc)
        return rc;
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
        rc = sc_step_capture(ctx, label, s->capture, &a);
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

/* The high-level waits, written as the poll they stand for:
 *   {"saga": ID, "state": S}  ->  GET gateway /admin/sagas/ID until {"saga.state": S}
 *   {"call": ID, "state": S}  ->  GET gateway /admin/calls/ID until {"state": S}
 *   {"queue": "drained"}      ->  GET gateway /admin/queue until {"pending": 0, "running": 0}
 *   {"queue": {...}}          ->  GET gateway /admin/queue until {...}
 * S is a value or operators, as in "json". *out is the low-level "wait" object, kept by the
 * scenario (the step borrows its strings), or NULL when obj is already low-level. */
static cm_err_t desugar_wait(sc_parse_t *v, const json_t *obj, const json_t **out)
{
    static const char *const keys[] = {"saga", "call", "queue", "state", "within", "capture", NULL};
    const json_t *saga = json_object_get(obj, "saga"), *call = json_object_get(obj, "call");
    const json_t *queue = json_object_get(obj, "queue"), *state = json_object_get(obj, "state");
    *out = NULL;
    int n = !!saga + !!call + !!queue;
    if (n == 0)
        return CM_OK;
    cm_err_t rc = sc_parse_keys(v, obj, "\"wait\"", keys);
    if (rc)
        return rc;
    if (n > 1 || json_object_get(obj, "request"))
        return sc_parse_fail(v,
                             "\"wait\" polls one thing: a \"saga\", a \"call\", the \"queue\" or a "
                             "\"request\"");
    json_t *until = NULL;
    char path[512];
    if (queue) {
        if (state)
            return sc_parse_fail(
                v, "\"wait\": \"state\" goes with \"saga\" or \"call\", not \"queue\"");
        if (json_is_string(queue) && !strcmp(json_string_value(queue), "drained"))
            until = json_pack("{s:i,s:i}", "pending", 0, "running", 0);
        else if (json_is_object(queue) && json_object_size(queue) > 0)
            until = json_deep_copy(queue);
        else
            return sc_parse_fail(v, "\"queue\" must be \"drained\" or an expectation on "
                                    "{\"pending\",\"running\",\"done\",\"dead\"}");
        snprintf(path, sizeof path, "/admin/queue");
    } else {
        if ((rc = sc_parse_admin_path(v, saga ? saga : call, !!saga, path, sizeof path)))
            return rc;
        if (!state)
            return sc_parse_fail(v, "\"wait\" on a %s needs the \"state\" to wait for",
                                 saga ? "saga" : "call");
        until = json_pack("{s:O}", saga ? "saga.state" : "state", state);
    }
    json_t *low = until ? json_pack("{s:{s:s,s:s},s:{s:o}}", "request", "to", "gateway", "path",
                                    path, "until", "json", until)
                        : NULL;
    const char *copy[] = {"within", "capture"};
    for (size_t k = 0; low && k < 2; k++)
        if (json_object_get(obj, copy[k]))
            json_object_set(low, copy[k], json_object_get(obj, copy[k]));
    if ((rc = sc_parse_keep(v, low)))
        return rc;
    *out = low;
    return CM_OK;
}

static cm_err_t parse_wait(sc_parse_t *v, const json_t *step, const json_t *obj, sc_step_t *s)
{
    (void)step; /* everything is in the kind's own object */
    static const char *const keys[] = {"request", "until", "within", "capture", NULL};
    cm_err_t rc;
    if (!json_is_object(obj))
        return sc_parse_fail(v, "\"wait\" must be an object");
    const json_t *low = NULL;
    if ((rc = desugar_wait(v, obj, &low)))
        return rc;
    if (low)
        obj = low;
    if ((rc = sc_parse_keys(v, obj, "\"wait\"", keys)))
        return rc;
    const json_t *r = json_object_get(obj, "request");
    if (!r)
        return sc_parse_fail(v, "\"request\" is required (what to poll)");
    if ((rc = sc_parse_request(v, r, &s->req)))
        return rc;
    const json_t *u = json_object_get(obj, "until");
    if (!u)
        return sc_parse_fail(v, "\"until\" is required (what the answer must become)");
    if ((rc = sc_parse_expect(v, u, "until", 0, &s->expect)) ||
        (rc = sc_parse_within(v, obj, "within", SC_WAIT_DEFAULT_MS, &s->within_ms)))
        return rc;
    return sc_parse_capture(v, obj, &s->capture);
}

static cm_err_t request_parse(sc_parse_t *v, const json_t *obj, const json_t *body, sc_step_t *s)
{
    cm_err_t rc;
    if ((rc = sc_parse_request(v, body, &s->req)) || (rc = sc_parse_capture(v, obj, &s->capture)))
        return rc;
    const json_t *e = json_object_get(obj, "expect");
    return e ? sc_parse_expect(v, e, "expect", 0, &s->expect) : CM_OK;
}

const sc_step_def_t sc_step_request = {
    .key = "request",
    .keys = (const char *const[]){"name", "request", "expect", "capture", NULL},
    .parse = request_parse,
    .run = run_request,
};

const sc_step_def_t sc_step_wait = {
    .key = "wait",
    .keys = (const char *const[]){"name", "wait", NULL},
    .parse = parse_wait,
    .run = run_wait,
};
