/* sc_step_provider.c - the steps that act through the provider simulators: "call" (a
 * Retell call object from a fixture) and "webhook" (the simulator signs and delivers it). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_json.h"
#include "sc_files.h"
#include "sc_http.h"
#include "sc_log.h"
#include "sc_match.h"
#include "sc_step_def.h"
#include "sc_vars.h"

/* Fixtures are hand-written call templates. */
#define SC_FIXTURE_MAX (1u << 20)

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
        return sc_step_fail_var(ctx, label, err);
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
    if (s->set && (rc = sc_step_expand_spec(ctx, label, s->set, &set)) != CM_OK) {
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

static cm_err_t run_webhook(sc_ctx_t *ctx, const sc_step_t *s, const char *label, const char *actor)
{
    char err[CM_ERR_LEN], seg[512], path[700], shown[SC_HTTP_SHOW + 128];
    char *call_id = NULL, *event = NULL;
    json_t *spec = NULL;
    cm_err_t rc = CM_OK;

    if (sc_vars_expand(ctx->vars, s->call_id, &call_id, err) != CM_OK ||
        sc_vars_expand(ctx->vars, s->event, &event, err) != CM_OK) {
        free(call_id);
        return sc_step_fail_var(ctx, label, err);
    }
    if ((rc = sc_step_expand_spec(ctx, label, s->expect.json, &spec)) != CM_OK) {
        free(call_id);
        free(event);
        return rc;
    }
    sc_step_encode_segment(call_id, seg, sizeof seg);
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
        if (!sc_step_status_ok(&s->expect, st) && bad++ == 0)
            SC_BEST_EFFORT(cm_buf_printf(&diag, "  delivery %zu of %zu: expected %s, got %ld%s%s\n",
                                         i + 1, n,
                                         sc_step_statuses_str(&s->expect, want, sizeof want), st,
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
        sc_step_first_line(&diag, first, sizeof first);
        sc_fail(ctx, RP_FAILED, "expectation", "%s: %s%s", label, first,
                bad > 1 ? " (and more)" : "");
        sc_fail_text(ctx, diag.data ? diag.data : "");
        sc_fail_detail(ctx, "deliveries: %s\nanswer: %s\n", list.data ? list.data : "",
                       sc_answer_show(&a, shown, sizeof shown));
        rc = CM_EINVAL;
    } else {
        rc = sc_step_capture(ctx, label, s->capture, &a);
    }
    cm_buf_free(&list);
    cm_buf_free(&diag);
out:
    sc_answer_free(&a);
    json_decref(spec);
    return rc;
}

static cm_err_t parse_call(sc_parse_t *v, const json_t *step, const json_t *obj, sc_step_t *s)
{
    (void)step; /* everything is in the kind's own object */
    static const char *const keys[] = {"fixture", "set", "as", NULL};
    cm_err_t rc;
    if (!json_is_object(obj))
        return sc_parse_fail(v, "\"call\" must be an object");
    if ((rc = sc_parse_keys(v, obj, "\"call\"", keys)) ||
        (rc = sc_parse_req_str(v, obj, "fixture", &s->fixture)) ||
        (rc = sc_parse_opt_object(v, obj, "set", &s->set)) ||
        (rc = sc_parse_opt_str(v, obj, "as", &s->as)) ||
        (rc = sc_parse_file(v, "fixture", s->fixture)))
        return rc;
    if (!s->as)
        s->as = "call";
    return sc_parse_var_name(v, "as", s->as);
}

static cm_err_t parse_webhook(sc_parse_t *v, const json_t *obj, sc_step_t *s)
{
    static const char *const keys[] = {
        "provider", "call", "event", "copies", "concurrent", "forge", "timestamp_offset_ms", NULL};
    cm_err_t rc;
    if (!json_is_object(obj))
        return sc_parse_fail(v, "\"webhook\" must be an object");
    if ((rc = sc_parse_keys(v, obj, "\"webhook\"", keys)) ||
        (rc = sc_parse_req_str(v, obj, "provider", &s->provider)) ||
        (rc = sc_parse_req_str(v, obj, "call", &s->call_id)) ||
        (rc = sc_parse_opt_str(v, obj, "event", &s->event)) ||
        (rc = sc_parse_opt_bool(v, obj, "concurrent", 0, &s->concurrent)) ||
        (rc = sc_parse_opt_bool(v, obj, "forge", 0, &s->forge)))
        return rc;
    if (strcmp(s->provider, "retell") != 0)
        return sc_parse_fail(v, "\"provider\": only \"retell\" webhooks are supported (got \"%s\")",
                             s->provider);
    if (!s->event)
        s->event = "call_analyzed";
    const json_t *c = json_object_get(obj, "copies");
    s->copies = 1;
    if (c) {
        if (!json_is_integer(c) || json_integer_value(c) < 1 || json_integer_value(c) > 1000)
            return sc_parse_fail(v, "\"copies\" must be a positive integer (at most 1000)");
        s->copies = json_integer_value(c);
    }
    const json_t *t = json_object_get(obj, "timestamp_offset_ms");
    if (t) {
        if (!json_is_integer(t))
            return sc_parse_fail(v, "\"timestamp_offset_ms\" must be an integer");
        s->timestamp_offset_ms = json_integer_value(t);
    }
    return CM_OK;
}

static cm_err_t webhook_parse(sc_parse_t *v, const json_t *obj, const json_t *body, sc_step_t *s)
{
    cm_err_t rc;
    if ((rc = parse_webhook(v, body, s)) || (rc = sc_parse_capture(v, obj, &s->capture)))
        return rc;
    const json_t *e = json_object_get(obj, "expect");
    return e ? sc_parse_expect(v, e, "expect", 1, &s->expect) : CM_OK;
}

const sc_step_def_t sc_step_call = {
    .key = "call",
    .keys = (const char *const[]){"name", "call", NULL},
    .parse = parse_call,
    .run = run_call,
};

const sc_step_def_t sc_step_webhook = {
    .key = "webhook",
    .keys = (const char *const[]){"name", "webhook", "expect", "capture", NULL},
    .parse = webhook_parse,
    .run = run_webhook,
};
