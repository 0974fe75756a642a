/* sc_step_provider.c - the steps that act through the provider simulators: "call" (a
 * Retell call object from a fixture), "webhook" (the simulator signs and delivers it) and
 * "fault" (fault rules: the provider in trouble). */
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
    sc_answer_t a;
    if (!rc && sc_http_send_json(ctx, actor, SC_TO_CONTROL, "POST", "/control/retell/calls", call,
                                 &a) != CM_OK)
        rc = sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
    json_decref(call);
    if (rc)
        return rc;
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

/* Expands one string field into the control body (key), or fails the step. */
static cm_err_t put_expanded(sc_ctx_t *ctx, const char *label, json_t *body, const char *key,
                             const char *text)
{
    char err[CM_ERR_LEN], *out = NULL;
    if (!text)
        return CM_OK;
    if (sc_vars_expand(ctx->vars, text, &out, err) != CM_OK)
        return sc_step_fail_var(ctx, label, err);
    int bad = json_object_set_new(body, key, json_string(out));
    free(out);
    return bad ? sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label) : CM_OK;
}

/* The control route that makes the step's provider deliver, and its body:
 *   retell  POST /control/retell/calls/{call}/webhook {"event","copies","concurrent","forge",
 *           "timestamp_offset"}
 *   stripe  POST /control/stripe/events {"type","object","id","created","copies","forge",
 *           "timestamp_offset"}
 *   calcom  POST /control/calcom/events {"trigger","booking_uid"|"payload","copies","forge"}
 * *body is a new string. */
static cm_err_t hook_request(sc_ctx_t *ctx, const sc_step_t *s, const char *label, char *path,
                             size_t cap, char **body)
{
    char err[CM_ERR_LEN], off[40];
    json_t *b = json_pack("{s:I,s:b}", "copies", (json_int_t)s->copies, "forge", s->forge);
    json_t *object = NULL;
    cm_err_t rc = CM_OK;
    *body = NULL;
    if (!b)
        return sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
    if (s->object && sc_vars_expand_json(ctx->vars, s->object, &object, err) != CM_OK) {
        json_decref(b);
        return sc_step_fail_var(ctx, label, err);
    }
    /* The signed offset in the duration grammar, for Retell and Stripe. */
    snprintf(off, sizeof off, "%s%lldms", s->timestamp_offset_ms < 0 ? "-" : "",
             (long long)llabs(s->timestamp_offset_ms));
    if (!strcmp(s->provider, "retell")) {
        char *call_id = NULL, seg[512];
        if (sc_vars_expand(ctx->vars, s->call_id, &call_id, err) != CM_OK) {
            rc = sc_step_fail_var(ctx, label, err);
        } else {
            sc_step_encode_segment(call_id, seg, sizeof seg);
            snprintf(path, cap, "/control/retell/calls/%s/webhook", seg);
            json_object_set_new(b, "concurrent", json_boolean(s->concurrent));
            json_object_set_new(b, "timestamp_offset", json_string(off));
            rc = put_expanded(ctx, label, b, "event", s->event);
        }
        free(call_id);
    } else if (!strcmp(s->provider, "stripe")) {
        snprintf(path, cap, "/control/stripe/events");
        json_object_set_new(b, "object", json_incref(object));
        json_object_set_new(b, "timestamp_offset", json_string(off));
        if (s->created)
            json_object_set_new(b, "created", json_integer(s->created));
        if (!(rc = put_expanded(ctx, label, b, "type", s->event)))
            rc = put_expanded(ctx, label, b, "id", s->event_id);
    } else {
        snprintf(path, cap, "/control/calcom/events");
        if (object)
            json_object_set_new(b, "payload", json_incref(object));
        if (!(rc = put_expanded(ctx, label, b, "trigger", s->event)))
            rc = put_expanded(ctx, label, b, "booking_uid", s->booking);
    }
    if (!rc && !(*body = cm_json_dumps(b)))
        rc = sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
    json_decref(object);
    json_decref(b);
    return rc;
}

static cm_err_t run_webhook(sc_ctx_t *ctx, const sc_step_t *s, const char *label, const char *actor)
{
    char path[700], shown[SC_HTTP_SHOW + 128];
    json_t *spec = NULL;
    char *body = NULL;
    cm_err_t rc = hook_request(ctx, s, label, path, sizeof path, &body);
    if (rc)
        return rc;
    if ((rc = sc_step_expand_spec(ctx, label, s->expect.json, &spec)) != CM_OK) {
        free(body);
        return rc;
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

/* The three dialects: what each provider's simulator can be asked to deliver. */
static cm_err_t parse_webhook(sc_parse_t *v, const json_t *obj, sc_step_t *s)
{
    static const char *const retell_keys[] = {"provider",
                                              "call",
                                              "event",
                                              "copies",
                                              "concurrent",
                                              "forge",
                                              "timestamp_offset",
                                              "timestamp_offset_ms",
                                              NULL};
    static const char *const stripe_keys[] = {"provider", "event",  "object", "id",
                                              "created",  "copies", "forge",  "timestamp_offset",
                                              NULL};
    static const char *const calcom_keys[] = {"provider", "event", "booking", "payload",
                                              "copies",   "forge", NULL};
    cm_err_t rc;
    int has_off;
    if (!json_is_object(obj))
        return sc_parse_fail(v, "\"webhook\" must be an object");
    if ((rc = sc_parse_req_str(v, obj, "provider", &s->provider)))
        return rc;
    int retell = !strcmp(s->provider, "retell"), stripe = !strcmp(s->provider, "stripe");
    int calcom = !strcmp(s->provider, "calcom");
    if (!retell && !stripe && !calcom)
        return sc_parse_fail(v, "\"provider\" must be retell, stripe or calcom (got \"%s\")",
                             s->provider);
    if ((rc = sc_parse_keys(v, obj, "\"webhook\"",
                            retell   ? retell_keys
                            : stripe ? stripe_keys
                                     : calcom_keys)) ||
        (rc = sc_parse_opt_str(v, obj, "event", &s->event)) ||
        (rc = sc_parse_opt_bool(v, obj, "concurrent", 0, &s->concurrent)) ||
        (rc = sc_parse_opt_bool(v, obj, "forge", 0, &s->forge)) ||
        (rc = sc_parse_opt_int(v, obj, "copies", 1, 1, 1000, &s->copies)) ||
        (rc = sc_parse_ts_offset(v, obj, "\"webhook\"", &s->timestamp_offset_ms, &has_off)))
        return rc;
    if (retell) {
        if ((rc = sc_parse_req_str(v, obj, "call", &s->call_id)))
            return rc;
        if (!s->event)
            s->event = "call_analyzed";
        return CM_OK;
    }
    if (!s->event || !*s->event)
        return sc_parse_fail(v, "\"event\" is required: the %s",
                             stripe ? "event type (payment_intent.succeeded, ...)"
                                    : "trigger (BOOKING_CREATED, BOOKING_CANCELLED, ...)");
    if (s->copies > 20)
        return sc_parse_fail(v, "\"copies\": the %s simulator sends at most 20 copies",
                             s->provider);
    if (stripe) {
        if ((rc = sc_parse_opt_object(v, obj, "object", &s->object)) ||
            (rc = sc_parse_opt_str(v, obj, "id", &s->event_id)) ||
            (rc = sc_parse_opt_int(v, obj, "created", 0, 1, INT32_MAX, &s->created)))
            return rc;
        if (!s->object)
            return sc_parse_fail(v, "\"object\" is required: the event's data.object");
        return CM_OK;
    }
    if ((rc = sc_parse_opt_str(v, obj, "booking", &s->booking)) ||
        (rc = sc_parse_opt_object(v, obj, "payload", &s->object)))
        return rc;
    if (!s->booking == !s->object)
        return sc_parse_fail(v, "give exactly one of \"booking\" (the uid of a booking the "
                                "simulator holds) and \"payload\"");
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

/* {"fault": RULE} or {"fault": [RULE, ...]}: the rules are the simulators' to validate
 * (their answer names the bad field, with its JSON path); here only the shape. */
static cm_err_t parse_fault(sc_parse_t *v, const json_t *step, const json_t *obj, sc_step_t *s)
{
    (void)step; /* everything is in the kind's own object */
    size_t n = json_is_array(obj) ? json_array_size(obj) : 1;
    if (json_is_array(obj) && n == 0)
        return sc_parse_fail(v, "\"fault\" must be a fault rule or a non-empty list of them");
    for (size_t i = 0; i < n; i++) {
        const json_t *r = json_is_array(obj) ? json_array_get(obj, i) : obj;
        if (!json_is_object(r) || json_object_size(r) == 0)
            return sc_parse_fail(v,
                                 "\"fault\"%s must be a fault rule such as {\"provider\": "
                                 "\"calcom\", \"route\": \"GET /v2/slots\", \"status\": 503}",
                                 json_is_array(obj) ? "[i]" : "");
    }
    s->faults = obj;
    return CM_OK;
}

/* POST /control/faults: all the rules or none (the simulators' contract). */
static cm_err_t run_fault(sc_ctx_t *ctx, const sc_step_t *s, const char *label, const char *actor)
{
    char err[CM_ERR_LEN], shown[SC_HTTP_SHOW + 128];
    json_t *rules = NULL;
    if (sc_vars_expand_json(ctx->vars, s->faults, &rules, err) != CM_OK)
        return sc_step_fail_var(ctx, label, err);
    sc_answer_t a;
    cm_err_t rc =
        sc_http_send_json(ctx, actor, SC_TO_CONTROL, "POST", "/control/faults", rules, &a);
    json_decref(rules);
    if (rc)
        return sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
    if (a.transport != CM_OK || a.status != 201)
        rc = sc_fail(ctx, RP_FAILED, a.transport ? "transport" : "control",
                     "%s: adding the fault rule(s): expected 201, got %s", label,
                     sc_answer_show(&a, shown, sizeof shown));
    sc_answer_free(&a);
    return rc;
}

const sc_step_def_t sc_step_fault = {
    .key = "fault",
    .keys = (const char *const[]){"name", "fault", NULL},
    .parse = parse_fault,
    .run = run_fault,
};
