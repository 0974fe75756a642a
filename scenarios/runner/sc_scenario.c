/* sc_scenario.c - loading and validating scenario files. Validation is strict on purpose:
 * a misspelt key that is silently ignored turns a test into a silent pass. */
#include "sc_scenario.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cm_json.h"
#include "sc_duration.h"
#include "sc_files.h"
#include "sc_match.h"
#include "sc_metrics.h"
#include "sc_vars.h"
#include "sc_yaml.h"

const char *const sc_builtin_vars[] = {
    "seed",         "tmp_dir",    "data_dir",    "gateway_url", "gateway_port", "control_url",
    "control_port", "retell_url", "retell_port", "calcom_url",  "calcom_port",  "stripe_url",
    "stripe_port",  "now_ms",     "now_iso",     "chaos_url",   "chaos_port",   NULL,
};

const char *const sc_scenario_keys[] = {"name",    "description", "tags",  "seed",  "speed",
                                        "gateway", "env",         "chaos", "steps", NULL};

const char *const sc_link_names[SC_LINKS] = {"calcom", "stripe", "gateway"};
const char *const sc_proc_names[SC_PROCS] = {"gateway", "simulators", "chaos"};

static const char *const target_names[SC_TARGETS] = {"gateway", "control", "retell",
                                                     "calcom",  "stripe",  "chaos"};
static const char *const kind_names[SC_STEP__COUNT] = {
    "request", "call", "webhook", "wait", "gateway", "repeat", "include", "chaos", "expect"};
static const char *const scheme_names[] = {"none", "retell", "calcom", "stripe", "std"};
static const char *const action_names[] = {"kill",    "stop",        "start",
                                           "restart", "expect_exit", "wait_exit"};

const char *sc_target_name(sc_target_t t)
{
    return (unsigned)t < SC_TARGETS ? target_names[t] : "?";
}

const char *sc_step_kind_name(sc_step_kind_t k)
{
    return (unsigned)k < SC_STEP__COUNT ? kind_names[k] : "?";
}

const char *sc_sign_scheme_name(sc_sign_scheme_t s)
{
    return (unsigned)s <= SC_SIGN_STD ? scheme_names[s] : "?";
}

const char *sc_gw_action_name(sc_gw_action_t a)
{
    return (unsigned)a <= SC_GW_WAIT_EXIT ? action_names[a] : "?";
}

/* Validation context: where we are, for the message prefix. */
typedef struct {
    const sc_scenario_t *sc;
    char where[224]; /* "steps[3] (webhook)", "" at top level */
    char *err;
    int in_concurrent; /* parsing inside a repeat with concurrency > 1 */
    int depth;         /* include depth */
} vctx_t;

static cm_err_t fail(vctx_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static cm_err_t fail(vctx_t *v, const char *fmt, ...)
{
    char msg[SC_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Built with a buffer: a very long path may cut the message, which is fine. */
    cm_buf_t b;
    cm_buf_init(&b, SC_ERR_LEN - 1);
    if (cm_buf_printf(&b, "%s: %s%s", v->sc->path, v->where, *v->where ? ": " : "") ||
        cm_buf_addstr(&b, msg)) {
        /* over the cap: keep what fits below */
    }
    snprintf(v->err, SC_ERR_LEN, "%s", b.data ? b.data : msg);
    cm_buf_free(&b);
    return CM_EINVAL;
}

/* Every key of obj must be in allowed (NULL-terminated). */
static cm_err_t check_keys(vctx_t *v, const json_t *obj, const char *what,
                           const char *const *allowed)
{
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)obj, k, x)
    {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = !strcmp(k, *a);
        if (ok)
            continue;
        char list[256] = "";
        for (const char *const *a = allowed; *a; a++) {
            size_t n = strlen(list);
            snprintf(list + n, sizeof list - n, "%s\"%s\"", n ? ", " : "", *a);
        }
        return fail(v, "unknown key \"%s\"%s%s (allowed: %s)", k, *what ? " in " : "", what, list);
    }
    return CM_OK;
}

/* Optional string field: NULL when absent; error when present with another type. */
static cm_err_t opt_str(vctx_t *v, const json_t *obj, const char *key, const char **out)
{
    const json_t *x = json_object_get(obj, key);
    *out = NULL;
    if (!x)
        return CM_OK;
    if (!json_is_string(x))
        return fail(v, "\"%s\" must be a string", key);
    *out = json_string_value(x);
    return CM_OK;
}

static cm_err_t req_str(vctx_t *v, const json_t *obj, const char *key, const char **out)
{
    cm_err_t rc = opt_str(v, obj, key, out);
    if (!rc && (!*out || !**out))
        return fail(v, "\"%s\" is required (a non-empty string)", key);
    return rc;
}

static cm_err_t opt_bool(vctx_t *v, const json_t *obj, const char *key, int def, int *out)
{
    const json_t *x = json_object_get(obj, key);
    *out = def;
    if (!x)
        return CM_OK;
    if (!json_is_boolean(x))
        return fail(v, "\"%s\" must be true or false", key);
    *out = json_is_true(x);
    return CM_OK;
}

static cm_err_t opt_object(vctx_t *v, const json_t *obj, const char *key, const json_t **out)
{
    const json_t *x = json_object_get(obj, key);
    *out = NULL;
    if (!x)
        return CM_OK;
    if (!json_is_object(x))
        return fail(v, "\"%s\" must be an object", key);
    *out = x;
    return CM_OK;
}

/* A relative path must name an existing file unless it is built from variables. */
static cm_err_t check_file(vctx_t *v, const char *key, const char *rel)
{
    char found[PATH_MAX], err[SC_ERR_LEN];
    if (strstr(rel, "${"))
        return CM_OK;
    if (sc_scenario_resolve(v->sc, rel, found, sizeof found, err) != CM_OK)
        return fail(v, "\"%s\": %s", key, err);
    return CM_OK;
}

static cm_err_t parse_target(vctx_t *v, const json_t *obj, sc_target_t *to)
{
    const char *s;
    cm_err_t rc = req_str(v, obj, "to", &s);
    if (rc)
        return rc;
    for (int i = 0; i < SC_TARGETS; i++)
        if (!strcmp(s, target_names[i])) {
            *to = (sc_target_t)i;
            if (*to == SC_TO_CHAOS && !v->sc->chaos_links)
                return fail(v, "\"to\": \"chaos\" needs the scenario's \"chaos\" (which links "
                               "to route through the proxy)");
            return CM_OK;
        }
    return fail(v,
                "\"to\" must be one of gateway, control, retell, calcom, stripe, chaos (got "
                "\"%s\")",
                s);
}

static cm_err_t opt_int(vctx_t *v, const json_t *obj, const char *key, long long def, long long min,
                        long long max, long long *out)
{
    const json_t *x = json_object_get(obj, key);
    *out = def;
    if (!x)
        return CM_OK;
    if (!json_is_integer(x) || json_integer_value(x) < min || json_integer_value(x) > max)
        return fail(v, "\"%s\" must be an integer from %lld to %lld", key, min, max);
    *out = json_integer_value(x);
    return CM_OK;
}

/* "body_repeat": {"text": "x", "times": 300000}: a big body without a big file. */
static cm_err_t parse_body_repeat(vctx_t *v, const json_t *x, sc_request_t *r)
{
    static const char *const keys[] = {"text", "times", NULL};
    cm_err_t rc;
    if (!json_is_object(x))
        return fail(v, "\"body_repeat\" must be an object {\"text\": \"x\", \"times\": N}");
    if ((rc = check_keys(v, x, "\"body_repeat\"", keys)) ||
        (rc = req_str(v, x, "text", &r->repeat_text)))
        return rc;
    const json_t *t = json_object_get(x, "times");
    if (!json_is_integer(t) || json_integer_value(t) < 1)
        return fail(v, "\"body_repeat\": \"times\" is required (a positive integer)");
    r->repeat_times = json_integer_value(t);
    if ((unsigned long long)r->repeat_times > SC_BODY_REPEAT_MAX / strlen(r->repeat_text))
        return fail(v, "\"body_repeat\": the body would be larger than %u bytes",
                    SC_BODY_REPEAT_MAX);
    return CM_OK;
}

/* The headers each scheme writes (a "headers" entry with the same name is an error). */
static const char *const *sign_headers(sc_sign_scheme_t s)
{
    static const char *const retell[] = {"x-retell-signature", NULL};
    static const char *const calcom[] = {"X-Cal-Signature-256", NULL};
    static const char *const stripe[] = {"Stripe-Signature", NULL};
    static const char *const std[] = {"webhook-id", "webhook-timestamp", "webhook-signature", NULL};
    static const char *const none[] = {NULL};
    switch (s) {
    case SC_SIGN_RETELL:
        return retell;
    case SC_SIGN_CALCOM:
        return calcom;
    case SC_SIGN_STRIPE:
        return stripe;
    case SC_SIGN_STD:
        return std;
    default:
        return none;
    }
}

static cm_err_t parse_sign(vctx_t *v, const json_t *x, sc_request_t *r)
{
    static const char *const keys[] = {"scheme", "key", "keys", "timestamp_offset_ms",
                                       "forge",  "id",  NULL};
    sc_sign_t *g = &r->sign;
    const char *scheme;
    cm_err_t rc;
    if (!json_is_object(x))
        return fail(v, "\"sign\" must be an object {\"scheme\": ..., \"key\": ...}");
    if ((rc = check_keys(v, x, "\"sign\"", keys)) || (rc = req_str(v, x, "scheme", &scheme)))
        return rc;
    for (int i = SC_SIGN_RETELL; i <= SC_SIGN_STD; i++)
        if (!strcmp(scheme, scheme_names[i]))
            g->scheme = (sc_sign_scheme_t)i;
    if (g->scheme == SC_SIGN_NONE)
        return fail(v,
                    "\"sign\": \"scheme\" must be one of retell, calcom, stripe, std (got "
                    "\"%s\")",
                    scheme);
    if ((rc = opt_str(v, x, "key", &g->key)) || (rc = opt_bool(v, x, "forge", 0, &g->forge)) ||
        (rc = opt_str(v, x, "id", &g->id)))
        return rc;
    g->keys = json_object_get(x, "keys");
    if ((g->key != NULL) == (g->keys != NULL))
        return fail(v, "\"sign\": give exactly one of \"key\" and \"keys\"");
    if (g->key && !*g->key)
        return fail(v, "\"sign\": \"key\" must not be empty");
    if (g->keys) {
        size_t n = json_is_array(g->keys) ? json_array_size(g->keys) : 0;
        if (g->scheme == SC_SIGN_RETELL || g->scheme == SC_SIGN_CALCOM)
            return fail(v, "\"sign\": %s signs with one \"key\" (\"keys\" is for stripe and std)",
                        scheme);
        if (n < 1 || n > SC_SIGN_MAX_KEYS)
            return fail(v, "\"sign\": \"keys\" must be a list of 1 to %d keys", SC_SIGN_MAX_KEYS);
        for (size_t i = 0; i < n; i++) {
            const json_t *k = json_array_get(g->keys, i);
            if (!json_is_string(k) || json_string_length(k) == 0)
                return fail(v, "\"sign\": \"keys\"[%zu] must be a non-empty string", i);
        }
    }
    const json_t *off = json_object_get(x, "timestamp_offset_ms");
    if (off) {
        if (!json_is_integer(off))
            return fail(v, "\"sign\": \"timestamp_offset_ms\" must be an integer");
        if (g->scheme == SC_SIGN_CALCOM)
            return fail(v, "\"sign\": calcom signatures carry no timestamp (drop "
                           "\"timestamp_offset_ms\")");
        g->ts_offset_ms = json_integer_value(off);
    }
    if (g->scheme == SC_SIGN_STD && (!g->id || !*g->id))
        return fail(v, "\"sign\": std needs \"id\" (the webhook-id, e.g. \"msg_${i}\")");
    if (g->scheme != SC_SIGN_STD && g->id)
        return fail(v, "\"sign\": \"id\" is only for the std scheme");
    if (r->headers) {
        const char *k;
        json_t *hv;
        json_object_foreach((json_t *)r->headers, k, hv)
        {
            for (const char *const *h = sign_headers(g->scheme); *h; h++)
                if (!strcasecmp(k, *h))
                    return fail(v, "\"headers\": \"%s\" is set by \"sign\"; give one or the other",
                                k);
        }
    }
    return CM_OK;
}

static cm_err_t parse_request(vctx_t *v, const json_t *obj, sc_request_t *r)
{
    static const char *const keys[] = {"to",   "method", "path",        "headers", "json",
                                       "body", "auth",   "body_repeat", "sign",    NULL};
    static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", NULL};
    cm_err_t rc;
    if (!json_is_object(obj))
        return fail(v, "\"request\" must be an object");
    if ((rc = check_keys(v, obj, "\"request\"", keys)) || (rc = parse_target(v, obj, &r->to)) ||
        (rc = opt_str(v, obj, "method", &r->method)) || (rc = req_str(v, obj, "path", &r->path)) ||
        (rc = opt_object(v, obj, "headers", &r->headers)) ||
        (rc = opt_str(v, obj, "body", &r->body)))
        return rc;
    if (!r->method)
        r->method = "GET";
    int known = 0;
    for (const char *const *m = methods; *m && !known; m++)
        known = !strcmp(r->method, *m);
    if (!known)
        return fail(v,
                    "\"method\" must be one of GET, HEAD, POST, PUT, PATCH, DELETE "
                    "(got \"%s\")",
                    r->method);
    if (r->path[0] != '/' && strncmp(r->path, "${", 2) != 0)
        return fail(v, "\"path\" must start with '/' (got \"%s\")", r->path);
    r->json = json_object_get(obj, "json");
    const json_t *rep = json_object_get(obj, "body_repeat");
    if ((r->json != NULL) + (r->body != NULL) + (rep != NULL) > 1)
        return fail(v, "give one of \"json\", \"body\" and \"body_repeat\", not several");
    if (rep && (rc = parse_body_repeat(v, rep, r)))
        return rc;
    const json_t *sign = json_object_get(obj, "sign");
    if (sign && (rc = parse_sign(v, sign, r)))
        return rc;
    if (r->headers) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)r->headers, k, x)
        {
            if (!json_is_string(x))
                return fail(v, "header \"%s\" must be a string", k);
            if (!*k || strpbrk(k, ": \r\n"))
                return fail(v, "\"%s\" is not a valid header name", k);
        }
    }
    const json_t *auth = json_object_get(obj, "auth");
    r->auth = -1;
    if (auth) {
        if (!json_is_boolean(auth))
            return fail(v, "\"auth\" must be true or false");
        r->auth = json_is_true(auth);
        if (r->auth && r->to == SC_TO_CONTROL)
            return fail(v, "\"auth\": the control port takes no credentials");
    }
    return CM_OK;
}

/* "status": 200 or [200, 204]; "statuses": [204] (webhooks). */
static cm_err_t parse_statuses(vctx_t *v, const json_t *x, const char *key, sc_expect_t *e)
{
    size_t n = json_is_array(x) ? json_array_size(x) : 1;
    if (!(json_is_array(x) || json_is_integer(x)) || n == 0 || n > SC_MAX_STATUSES)
        return fail(v, "\"%s\" must be %s", key,
                    strcmp(key, "statuses") ? "an HTTP status or a list of them"
                                            : "a non-empty list of HTTP statuses");
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_is_array(x) ? json_array_get(x, i) : x;
        json_int_t st = json_is_integer(s) ? json_integer_value(s) : 0;
        if (st < 100 || st > 599)
            return fail(v, "\"%s\" must hold HTTP statuses (100-599)", key);
        e->statuses[i] = (int)st;
    }
    e->nstatuses = n;
    return CM_OK;
}

static cm_err_t parse_match(vctx_t *v, const json_t *x, const char *what)
{
    char err[CM_ERR_LEN];
    if (sc_match_validate(x, err) != CM_OK)
        return fail(v, "%s: %s", what, err);
    return CM_OK;
}

/* kind: which expect dialect ("status" for requests and waits, "statuses" for webhooks). */
static cm_err_t parse_expect(vctx_t *v, const json_t *x, const char *what, int webhook,
                             sc_expect_t *e)
{
    static const char *const req_keys[] = {"status", "json", "metrics", "headers", NULL};
    static const char *const hook_keys[] = {"statuses", "json", NULL};
    const char *skey = webhook ? "statuses" : "status";
    cm_err_t rc;
    char ctx[32];
    snprintf(ctx, sizeof ctx, "\"%s\"", what);
    if (!json_is_object(x))
        return fail(v, "\"%s\" must be an object", what);
    if ((rc = check_keys(v, x, ctx, webhook ? hook_keys : req_keys)))
        return rc;
    if (json_object_size(x) == 0)
        return fail(v, "\"%s\" is empty: say what to expect (\"%s\" and/or \"json\")", what, skey);
    e->present = 1;
    const json_t *s = json_object_get(x, skey);
    if (s && (rc = parse_statuses(v, s, skey, e)))
        return rc;
    e->metrics = json_object_get(x, "metrics");
    if (e->metrics) {
        const char *k;
        json_t *want;
        char merr[CM_ERR_LEN];
        if (!json_is_object(e->metrics) || json_object_size(e->metrics) == 0)
            return fail(v, "\"%s\".\"metrics\" must be an object of selector -> value", what);
        json_object_foreach((json_t *)e->metrics, k, want)
        {
            if (sc_metrics_selector_valid(k, merr) != CM_OK)
                return fail(v, "\"%s\".\"metrics\": %s", what, merr);
        }
        /* The values are checked like "json" expectations (keys are not paths there). */
        char m[48];
        snprintf(m, sizeof m, "\"%s\".\"metrics\"", what);
        if ((rc = parse_match(v, e->metrics, m)))
            return rc;
    }
    e->headers = json_object_get(x, "headers");
    if (e->headers) {
        const char *k;
        json_t *want;
        if (!json_is_object(e->headers) || json_object_size(e->headers) == 0)
            return fail(v, "\"%s\".\"headers\" must be an object of header name -> value", what);
        json_object_foreach((json_t *)e->headers, k, want)
        {
            /* An RFC 9110 token: what a header name can be. */
            if (!*k || strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                 "!#$%&'*+-.^_`|~") != strlen(k))
                return fail(v, "\"%s\".\"headers\": \"%.64s\" is not a header name", what, k);
        }
        char m[48];
        snprintf(m, sizeof m, "\"%s\".\"headers\"", what);
        if ((rc = parse_match(v, e->headers, m)))
            return rc;
    }
    e->json = json_object_get(x, "json");
    if (e->json) {
        char m[48];
        snprintf(m, sizeof m, "\"%s\".\"json\"", what);
        if ((rc = parse_match(v, e->json, m)))
            return rc;
    }
    return CM_OK;
}

static cm_err_t parse_capture(vctx_t *v, const json_t *step, const json_t **out)
{
    const json_t *c = json_object_get(step, "capture");
    const char *k;
    json_t *x;
    *out = NULL;
    if (!c)
        return CM_OK;
    if (!json_is_object(c))
        return fail(v, "\"capture\" must be an object of variable -> answer path");
    json_object_foreach((json_t *)c, k, x)
    {
        if (!sc_vars_valid_name(k))
            return fail(v, "\"capture\": \"%s\" is not a variable name ([A-Za-z_][A-Za-z0-9_]*)",
                        k);
        for (const char *const *b = sc_builtin_vars; *b; b++)
            if (!strcmp(k, *b))
                return fail(v, "\"capture\": \"%s\" is a built-in variable", k);
        if (!json_is_string(x))
            return fail(v,
                        "\"capture\": \"%s\" must name an answer path (a string, \"\" for "
                        "the whole answer)",
                        k);
    }
    *out = c;
    return CM_OK;
}

static cm_err_t parse_call(vctx_t *v, const json_t *obj, sc_step_t *s)
{
    static const char *const keys[] = {"fixture", "set", "as", NULL};
    cm_err_t rc;
    if (!json_is_object(obj))
        return fail(v, "\"call\" must be an object");
    if ((rc = check_keys(v, obj, "\"call\"", keys)) ||
        (rc = req_str(v, obj, "fixture", &s->fixture)) ||
        (rc = opt_object(v, obj, "set", &s->set)) || (rc = opt_str(v, obj, "as", &s->as)) ||
        (rc = check_file(v, "fixture", s->fixture)))
        return rc;
    if (!s->as)
        s->as = "call";
    if (!sc_vars_valid_name(s->as))
        return fail(v, "\"as\": \"%s\" is not a variable name", s->as);
    for (const char *const *b = sc_builtin_vars; *b; b++)
        if (!strcmp(s->as, *b))
            return fail(v, "\"as\": \"%s\" is a built-in variable", s->as);
    return CM_OK;
}

static cm_err_t parse_webhook(vctx_t *v, const json_t *obj, sc_step_t *s)
{
    static const char *const keys[] = {
        "provider", "call", "event", "copies", "concurrent", "forge", "timestamp_offset_ms", NULL};
    cm_err_t rc;
    if (!json_is_object(obj))
        return fail(v, "\"webhook\" must be an object");
    if ((rc = check_keys(v, obj, "\"webhook\"", keys)) ||
        (rc = req_str(v, obj, "provider", &s->provider)) ||
        (rc = req_str(v, obj, "call", &s->call_id)) || (rc = opt_str(v, obj, "event", &s->event)) ||
        (rc = opt_bool(v, obj, "concurrent", 0, &s->concurrent)) ||
        (rc = opt_bool(v, obj, "forge", 0, &s->forge)))
        return rc;
    if (strcmp(s->provider, "retell") != 0)
        return fail(v, "\"provider\": only \"retell\" webhooks are supported (got \"%s\")",
                    s->provider);
    if (!s->event)
        s->event = "call_analyzed";
    const json_t *c = json_object_get(obj, "copies");
    s->copies = 1;
    if (c) {
        if (!json_is_integer(c) || json_integer_value(c) < 1 || json_integer_value(c) > 1000)
            return fail(v, "\"copies\" must be a positive integer (at most 1000)");
        s->copies = json_integer_value(c);
    }
    const json_t *t = json_object_get(obj, "timestamp_offset_ms");
    if (t) {
        if (!json_is_integer(t))
            return fail(v, "\"timestamp_offset_ms\" must be an integer");
        s->timestamp_offset_ms = json_integer_value(t);
    }
    return CM_OK;
}

/* The admin path of a saga (saga != 0) or a call whose id (may hold ${...}) is x: into
 * path (cap bytes), or a failure naming the problem. */
static cm_err_t admin_path(vctx_t *v, const json_t *x, int saga, char *path, size_t cap)
{
    const char *what = saga ? "saga" : "call";
    if (!json_is_string(x) || json_string_length(x) == 0 ||
        strcspn(json_string_value(x), "/?#% ") != json_string_length(x))
        return fail(v, "\"%s\" must be an id (or a ${...} that gives one)", what);
    if (snprintf(path, cap, "/admin/%s/%s", saga ? "sagas" : "calls", json_string_value(x)) >=
        (int)cap)
        return fail(v, "\"%s\": the id is too long", what);
    return CM_OK;
}

/* The high-level waits, written as the poll they stand for:
 *   {"saga": ID, "state": S}  ->  GET gateway /admin/sagas/ID until {"saga.state": S}
 *   {"call": ID, "state": S}  ->  GET gateway /admin/calls/ID until {"state": S}
 *   {"queue": "drained"}      ->  GET gateway /admin/queue until {"pending": 0, "running": 0}
 *   {"queue": {...}}          ->  GET gateway /admin/queue until {...}
 * S is a value or operators, as in "json". *out is the low-level "wait" object, kept by the
 * scenario (the step borrows its strings), or NULL when obj is already low-level. */
static cm_err_t desugar_wait(vctx_t *v, const json_t *obj, const json_t **out)
{
    static const char *const keys[] = {"saga", "call", "queue", "state", "within", "capture", NULL};
    const json_t *saga = json_object_get(obj, "saga"), *call = json_object_get(obj, "call");
    const json_t *queue = json_object_get(obj, "queue"), *state = json_object_get(obj, "state");
    *out = NULL;
    int n = !!saga + !!call + !!queue;
    if (n == 0)
        return CM_OK;
    cm_err_t rc = check_keys(v, obj, "\"wait\"", keys);
    if (rc)
        return rc;
    if (n > 1 || json_object_get(obj, "request"))
        return fail(v, "\"wait\" polls one thing: a \"saga\", a \"call\", the \"queue\" or a "
                       "\"request\"");
    json_t *until = NULL;
    char path[512];
    if (queue) {
        if (state)
            return fail(v, "\"wait\": \"state\" goes with \"saga\" or \"call\", not \"queue\"");
        if (json_is_string(queue) && !strcmp(json_string_value(queue), "drained"))
            until = json_pack("{s:i,s:i}", "pending", 0, "running", 0);
        else if (json_is_object(queue) && json_object_size(queue) > 0)
            until = json_deep_copy(queue);
        else
            return fail(v, "\"queue\" must be \"drained\" or an expectation on "
                           "{\"pending\",\"running\",\"done\",\"dead\"}");
        snprintf(path, sizeof path, "/admin/queue");
    } else {
        if ((rc = admin_path(v, saga ? saga : call, !!saga, path, sizeof path)))
            return rc;
        if (!state)
            return fail(v, "\"wait\" on a %s needs the \"state\" to wait for",
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
    if (!low || json_array_append_new(((sc_scenario_t *)v->sc)->included, low) != 0)
        return fail(v, "out of memory");
    *out = low;
    return CM_OK;
}

static cm_err_t parse_wait(vctx_t *v, const json_t *obj, sc_step_t *s)
{
    static const char *const keys[] = {"request", "until", "within", "capture", NULL};
    cm_err_t rc;
    const char *within;
    if (!json_is_object(obj))
        return fail(v, "\"wait\" must be an object");
    const json_t *low = NULL;
    if ((rc = desugar_wait(v, obj, &low)))
        return rc;
    if (low)
        obj = low;
    if ((rc = check_keys(v, obj, "\"wait\"", keys)))
        return rc;
    const json_t *r = json_object_get(obj, "request");
    if (!r)
        return fail(v, "\"request\" is required (what to poll)");
    if ((rc = parse_request(v, r, &s->req)))
        return rc;
    const json_t *u = json_object_get(obj, "until");
    if (!u)
        return fail(v, "\"until\" is required (what the answer must become)");
    if ((rc = parse_expect(v, u, "until", 0, &s->expect)) ||
        (rc = opt_str(v, obj, "within", &within)) || (rc = parse_capture(v, obj, &s->capture)))
        return rc;
    s->within_ms = SC_WAIT_DEFAULT_MS;
    if (within) {
        char err[CM_ERR_LEN];
        if (sc_duration_parse(within, &s->within_ms, err) != CM_OK)
            return fail(v, "\"within\": %s", err);
        if (s->within_ms <= 0)
            return fail(v, "\"within\" must be longer than 0");
    }
    return CM_OK;
}

static cm_err_t parse_gateway(vctx_t *v, const json_t *obj, sc_step_t *s)
{
    static const char *const keys[] = {"action", "config", "within", NULL};
    const char *action, *within = NULL;
    cm_err_t rc;
    if (!json_is_object(obj))
        return fail(v, "\"gateway\" must be an object {\"action\": ...}");
    if ((rc = check_keys(v, obj, "\"gateway\"", keys)) ||
        (rc = req_str(v, obj, "action", &action)) || (rc = opt_str(v, obj, "config", &s->config)) ||
        (rc = opt_str(v, obj, "within", &within)))
        return rc;
    int found = 0;
    for (int i = SC_GW_KILL; i <= SC_GW_WAIT_EXIT && !found; i++)
        if (!strcmp(action, action_names[i])) {
            s->action = (sc_gw_action_t)i;
            found = 1;
        }
    if (!found)
        return fail(v,
                    "\"action\" must be one of kill, stop, start, restart, expect_exit, "
                    "wait_exit (got \"%s\")",
                    action);
    if (s->config && s->action != SC_GW_START && s->action != SC_GW_RESTART)
        return fail(v, "\"config\" is only for start and restart");
    if (within && s->action != SC_GW_WAIT_EXIT)
        return fail(v, "\"within\" is only for wait_exit");
    s->within_ms = SC_WAIT_DEFAULT_MS;
    if (within) {
        char err[CM_ERR_LEN];
        if (sc_duration_parse(within, &s->within_ms, err) != CM_OK)
            return fail(v, "\"within\": %s", err);
        if (s->within_ms <= 0)
            return fail(v, "\"within\" must be longer than 0");
    }
    if (s->config && (rc = check_file(v, "config", s->config)))
        return rc;
    if (v->in_concurrent)
        return fail(v, "a gateway step cannot run inside a repeat with \"concurrency\" > 1");
    return CM_OK;
}

static cm_err_t parse_steps(vctx_t *v, const json_t *list, const char *loc, const char *actor,
                            sc_step_t **out, size_t *n);

/* Finds a link by name; SC_LINKS when there is none. */
static sc_link_t link_named(const char *name)
{
    for (int i = 0; i < SC_LINKS; i++)
        if (!strcmp(name, sc_link_names[i]))
            return (sc_link_t)i;
    return SC_LINKS;
}

/* {"link": "calcom", "faults": [...]}: the fault objects are the proxy's to validate (its
 * answer names the bad field); here only the shape, so a typo fails before anything runs. */
static cm_err_t parse_chaos(vctx_t *v, const json_t *obj, sc_step_t *s)
{
    static const char *const keys[] = {"link", "faults", NULL};
    const char *link;
    cm_err_t rc;
    if (!json_is_object(obj))
        return fail(v, "\"chaos\" must be an object {\"link\": ..., \"faults\": [...]}");
    if ((rc = check_keys(v, obj, "\"chaos\"", keys)) || (rc = req_str(v, obj, "link", &link)))
        return rc;
    s->link = link_named(link);
    if (s->link == SC_LINKS || !(v->sc->chaos_links & (1u << s->link)))
        return fail(v, "\"link\": \"%s\" is not one of the scenario's \"chaos\" links", link);
    s->faults = json_object_get(obj, "faults");
    if (!json_is_array(s->faults))
        return fail(v, "\"faults\" is required (a list of fault objects; [] clears the link)");
    for (size_t i = 0; i < json_array_size(s->faults); i++) {
        const json_t *f = json_array_get(s->faults, i);
        if (!json_is_object(f) || !json_is_string(json_object_get(f, "type")))
            return fail(v, "\"faults\"[%zu] must be an object with a \"type\"", i);
    }
    return CM_OK;
}

/* A signed duration: "+6m", "-30s", "90s" (plus when unsigned); durations stop at a day. */
static cm_err_t parse_offset(vctx_t *v, const char *key, const json_t *x, int64_t *ms)
{
    char err[CM_ERR_LEN];
    const char *t = json_string_value(x);
    if (!t)
        return fail(v, "\"skew\".\"%s\" must be a signed duration such as \"+6m\" or \"-30s\"",
                    key);
    int neg = *t == '-';
    if (sc_duration_parse(t + (*t == '-' || *t == '+'), ms, err) != CM_OK)
        return fail(v, "\"skew\".\"%s\": %s", key, err);
    if (neg)
        *ms = -*ms;
    return CM_OK;
}

/* "chaos": {"links": ["calcom", "stripe", "gateway"], "skew": {"gateway": "+6m"}}: which
 * connections go through the chaos proxy, and which processes' clocks are off. */
static cm_err_t parse_chaos_setup(vctx_t *v, const json_t *obj, sc_scenario_t *sc)
{
    static const char *const keys[] = {"links", "skew", NULL};
    cm_err_t rc;
    sc->chaos_links = 0;
    if (!obj)
        return CM_OK;
    snprintf(v->where, sizeof v->where, "chaos");
    if (!json_is_object(obj))
        return fail(v, "\"chaos\" must be an object {\"links\": [...], \"skew\": {...}}");
    if ((rc = check_keys(v, obj, "", keys)))
        return rc;
    const json_t *list = json_object_get(obj, "links"), *skew = json_object_get(obj, "skew");
    if (!list && !skew)
        return fail(v, "\"chaos\" needs \"links\", \"skew\" or both");
    if (list && (!json_is_array(list) || json_array_size(list) == 0))
        return fail(v, "\"links\" must be a non-empty list of calcom, stripe, gateway");
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *name = json_string_value(json_array_get(list, i));
        sc_link_t l = name ? link_named(name) : SC_LINKS;
        if (l == SC_LINKS)
            return fail(v, "\"links\"[%zu] must be one of calcom, stripe, gateway", i);
        if (sc->chaos_links & (1u << l))
            return fail(v, "\"links\"[%zu]: \"%s\" is listed twice", i, name);
        sc->chaos_links |= 1u << l;
    }
    if (skew) {
        if (!json_is_object(skew) || json_object_size(skew) == 0)
            return fail(v, "\"skew\" must be an object of process -> offset, e.g. "
                           "{\"gateway\": \"+6m\"}");
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)skew, k, x)
        {
            int p = 0;
            while (p < SC_PROCS && strcmp(k, sc_proc_names[p]))
                p++;
            if (p == SC_PROCS)
                return fail(v, "\"skew\": unknown process \"%s\" (gateway, simulators, chaos)", k);
            if (p == SC_PROC_CHAOS && !sc->chaos_links)
                return fail(v, "\"skew\".\"chaos\": no chaos proxy runs without \"links\"");
            if ((rc = parse_offset(v, k, x, &sc->skew_ms[p])))
                return rc;
        }
    }
    *v->where = '\0';
    return CM_OK;
}

static cm_err_t parse_repeat(vctx_t *v, const json_t *obj, sc_step_t *s)
{
    static const char *const keys[] = {"times",       "step",         "steps", "var",
                                       "concurrency", "shuffle_seed", NULL};
    long long conc, seed;
    cm_err_t rc;
    if (!json_is_object(obj))
        return fail(v, "\"repeat\" must be an object {\"times\": N, \"step\": {...}}");
    if ((rc = check_keys(v, obj, "\"repeat\"", keys)) || (rc = opt_str(v, obj, "var", &s->var)) ||
        (rc = opt_int(v, obj, "concurrency", 1, 1, SC_REPEAT_MAX_CONCURRENCY, &conc)) ||
        (rc = opt_int(v, obj, "shuffle_seed", -1, 0, INT64_MAX, &seed)))
        return rc;
    const json_t *t = json_object_get(obj, "times");
    if (!json_is_integer(t) || json_integer_value(t) < 1 ||
        json_integer_value(t) > SC_REPEAT_MAX_TIMES)
        return fail(v, "\"times\" is required (an integer from 1 to %d)", SC_REPEAT_MAX_TIMES);
    s->times = json_integer_value(t);
    s->concurrency = (int)conc;
    s->shuffle = seed >= 0;
    s->shuffle_seed = seed >= 0 ? (unsigned long long)seed : 0;
    if (!s->var)
        s->var = "i";
    if (!sc_vars_valid_name(s->var))
        return fail(v, "\"var\": \"%s\" is not a variable name", s->var);
    for (const char *const *b = sc_builtin_vars; *b; b++)
        if (!strcmp(s->var, *b))
            return fail(v, "\"var\": \"%s\" is a built-in variable", s->var);
    if (v->in_concurrent && s->concurrency > 1)
        return fail(v, "a repeat with \"concurrency\" > 1 cannot sit inside another one");
    const json_t *one = json_object_get(obj, "step"), *many = json_object_get(obj, "steps");
    if ((one != NULL) == (many != NULL))
        return fail(v, "give exactly one of \"step\" (one step) and \"steps\" (a list)");
    if (one && !json_is_object(one))
        return fail(v, "\"step\" must be a step object");
    json_t *list = one ? json_pack("[O]", one) : json_incref((json_t *)many);
    if (!list)
        return fail(v, "out of memory");
    char loc[sizeof s->loc], actor[sizeof s->actor], where[sizeof v->where];
    if (snprintf(loc, sizeof loc, "%s.%s", s->loc, one ? "step" : "steps") >= (int)sizeof loc ||
        snprintf(actor, sizeof actor, "%.*s", (int)strlen(s->actor) - 1, s->actor) >=
            (int)sizeof actor) {
        json_decref(list);
        return fail(v, "repeats nested too deep");
    }
    snprintf(where, sizeof where, "%s", v->where);
    int outer = v->in_concurrent;
    v->in_concurrent |= s->concurrency > 1;
    rc = parse_steps(v, list, loc, actor, &s->children, &s->nchildren);
    v->in_concurrent = outer;
    json_decref(list);
    if (!rc)
        snprintf(v->where, sizeof v->where, "%s", where);
    return rc;
}

/* {"include": "path"}: the file holds a list of steps (or {"steps": [...]}), inlined
 * here at load time; its steps see the scenario's variables. */
/* A JSON or YAML file (by its name) into *doc; err (CM_ERR_LEN) starts with the path. */
static cm_err_t load_doc(const char *path, json_t **doc, char *err)
{
    if (!sc_yaml_path(path))
        return cm_json_load_file(path, SC_FILE_MAX, doc, err);
    char *text = NULL, ferr[CM_ERR_LEN], yerr[CM_ERR_LEN];
    size_t len = 0;
    cm_err_t rc = sc_files_read(path, SC_FILE_MAX, &text, &len, ferr);
    if (rc)
        cm_errf(err, "%s", ferr);
    else if ((rc = sc_yaml_parse(text, len, doc, yerr)) != CM_OK)
        cm_errf(err, "%s: %s", path, yerr);
    free(text);
    return rc;
}

static cm_err_t parse_include(vctx_t *v, const json_t *x, sc_step_t *s)
{
    char path[PATH_MAX], err[SC_ERR_LEN], jerr[CM_ERR_LEN], loc[sizeof s->loc];
    char where[sizeof v->where];
    json_t *doc = NULL;
    if (!json_is_string(x) || json_string_length(x) == 0)
        return fail(v, "\"include\" must name a file of steps");
    s->include = json_string_value(x);
    if (strstr(s->include, "${"))
        return fail(v, "\"include\": the path is read at load time, it cannot hold ${...}");
    if (v->depth >= SC_INCLUDE_DEPTH)
        return fail(v, "\"include\": more than %d levels (does a file include itself?)",
                    SC_INCLUDE_DEPTH);
    if (sc_scenario_resolve(v->sc, s->include, path, sizeof path, err) != CM_OK)
        return fail(v, "\"include\": %s", err);
    if (load_doc(path, &doc, jerr) != CM_OK)
        return fail(v, "\"include\": %s", jerr);
    /* The scenario keeps the document: the steps borrow their strings from it. */
    if (json_array_append_new(((sc_scenario_t *)v->sc)->included, doc) != 0)
        return fail(v, "out of memory");
    const json_t *list = json_is_object(doc) ? json_object_get(doc, "steps") : doc;
    if (!json_is_array(list) || (json_is_object(doc) && json_object_size(doc) != 1))
        return fail(v, "\"include\": %s must hold a list of steps, or {\"steps\": [...]}", path);
    char actor[sizeof s->actor];
    /* The file's base name: nested includes must still fit a message. */
    const char *base = strrchr(s->include, '/') ? strrchr(s->include, '/') + 1 : s->include;
    if (snprintf(loc, sizeof loc, "%s:%s", s->loc, base) >= (int)sizeof loc)
        return fail(v, "\"include\": the path is too long for messages");
    snprintf(actor, sizeof actor, "%.*s", (int)strlen(s->actor) - 1, s->actor);
    snprintf(where, sizeof where, "%s", v->where);
    int in_concurrent = v->in_concurrent;
    v->depth++;
    cm_err_t rc = parse_steps(v, list, loc, actor, &s->children, &s->nchildren);
    v->depth--;
    v->in_concurrent = in_concurrent;
    if (!rc)
        snprintf(v->where, sizeof v->where, "%s", where);
    return rc;
}

/* Appends a request step {"name", "request": {"to", "path"}, "expect": {"json": want}} to
 * list; takes want. */
static int add_check(json_t *list, const char *name, const char *to, const char *path, json_t *want)
{
    json_t *st = json_pack("{s:s,s:{s:s,s:s},s:{s:o}}", "name", name, "request", "to", to, "path",
                           path, "expect", "json", want);
    return st ? json_array_append_new(list, st) : -1;
}

/* The high-level checks, one-shot, each rewritten into the request it stands for (so a
 * failure shows the real answer):
 *   {"effects": {"calcom.booking": 1, "stripe.refund": 0}}  the simulators' effects ledger
 *   {"queue": {"dead": 0, "done": 3}}                        GET gateway /admin/queue
 *   {"saga": ID, "state": S} / {"call": ID, "state": S}      the gateway's admin API
 * Values are values or operators, as in "json". */
static cm_err_t parse_expect_step(vctx_t *v, const json_t *obj, sc_step_t *s)
{
    static const char *const keys[] = {"effects", "queue", "saga", "call", "state", NULL};
    /* What the simulators' effects ledger records (sim_journal.h). */
    static const char *const known[] = {"calcom.booking", "calcom.cancellation",
                                        "calcom.reschedule", "stripe.charge", "stripe.refund"};
    cm_err_t rc;
    if (!json_is_object(obj) || json_object_size(obj) == 0)
        return fail(v, "\"expect\" must be an object: \"effects\", \"queue\", or a \"saga\" "
                       "or \"call\" with its \"state\"");
    if ((rc = check_keys(v, obj, "\"expect\"", keys)))
        return rc;
    json_t *list = json_array();
    if (!list || json_array_append_new(((sc_scenario_t *)v->sc)->included, list) != 0)
        return fail(v, "out of memory");
    const json_t *effects = json_object_get(obj, "effects");
    if (effects) {
        const char *k;
        json_t *want;
        if (!json_is_object(effects) || json_object_size(effects) == 0)
            return fail(v, "\"effects\" must map \"provider.kind\" (calcom.booking, "
                           "stripe.charge, ...) to a count");
        json_object_foreach((json_t *)effects, k, want)
        {
            size_t dot = strcspn(k, ".");
            int ok = 0;
            for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
                ok |= !strcmp(k, known[i]);
            if (!ok)
                return fail(v,
                            "\"effects\": \"%.64s\" is not provider.kind (calcom.booking, "
                            "calcom.cancellation, calcom.reschedule, stripe.charge, "
                            "stripe.refund)",
                            k);
            char path[128], name[160];
            snprintf(path, sizeof path, "/control/effects?provider=%.*s&kind=%s", (int)dot, k,
                     k + dot + 1);
            snprintf(name, sizeof name, "effects: %s", k);
            if (add_check(list, name, "control", path, json_pack("{s:O}", "count", want)))
                return fail(v, "out of memory");
        }
    }
    const json_t *queue = json_object_get(obj, "queue");
    if (queue) {
        if (!json_is_object(queue) || json_object_size(queue) == 0)
            return fail(v, "\"queue\" must be an expectation on {\"pending\",\"running\","
                           "\"done\",\"dead\"}");
        if (add_check(list, "queue", "gateway", "/admin/queue", json_deep_copy(queue)))
            return fail(v, "out of memory");
    }
    const json_t *saga = json_object_get(obj, "saga"), *call = json_object_get(obj, "call");
    const json_t *state = json_object_get(obj, "state");
    if (saga && call)
        return fail(v, "\"expect\": one \"saga\" or one \"call\" per step");
    if ((saga || call) != !!state)
        return fail(v, "\"expect\": \"state\" goes with a \"saga\" or a \"call\"");
    if (saga || call) {
        char path[512], name[32];
        if ((rc = admin_path(v, saga ? saga : call, !!saga, path, sizeof path)))
            return rc;
        snprintf(name, sizeof name, "%s state", saga ? "saga" : "call");
        if (add_check(list, name, "gateway", path,
                      json_pack("{s:O}", saga ? "saga.state" : "state", state)))
            return fail(v, "out of memory");
    }
    char loc[sizeof s->loc], actor[sizeof s->actor], where[sizeof v->where];
    if (snprintf(loc, sizeof loc, "%s:expect", s->loc) >= (int)sizeof loc)
        return fail(v, "nested too deep for messages");
    snprintf(actor, sizeof actor, "%.*s", (int)strlen(s->actor) - 1, s->actor);
    snprintf(where, sizeof where, "%s", v->where);
    rc = parse_steps(v, list, loc, actor, &s->children, &s->nchildren);
    if (!rc)
        snprintf(v->where, sizeof v->where, "%s", where);
    return rc;
}

/* One step. loc: where it sits ("steps[3]", "steps[3].steps[1]"), actor: "step[3"
 * ("step[3.1"), both without the index's closing part. */
static cm_err_t parse_step(vctx_t *v, const json_t *obj, size_t i, const char *loc,
                           const char *actor, int single, sc_step_t *s)
{
    static const char *const request_keys[] = {"name", "request", "expect", "capture", NULL};
    static const char *const webhook_keys[] = {"name", "webhook", "expect", "capture", NULL};
    static const char *const call_keys[] = {"name", "call", NULL};
    static const char *const wait_keys[] = {"name", "wait", NULL};
    static const char *const gateway_keys[] = {"name", "gateway", NULL};
    static const char *const repeat_keys[] = {"name", "repeat", NULL};
    static const char *const include_keys[] = {"name", "include", "with", NULL};
    static const char *const chaos_keys[] = {"name", "chaos", NULL};
    static const char *const expect_keys[] = {"name", "expect", NULL};
    cm_err_t rc;
    int nkinds = 0;

    s->index = i;
    int n1 = single ? snprintf(s->loc, sizeof s->loc, "%s", loc)
                    : snprintf(s->loc, sizeof s->loc, "%s[%zu]", loc, i);
    int n2 =
        snprintf(s->actor, sizeof s->actor, "%s%s%zu]", actor, strchr(actor, '[')[1] ? "." : "", i);
    if (n1 >= (int)sizeof s->loc || n2 >= (int)sizeof s->actor)
        return fail(v, "repeats nested too deep");
    snprintf(v->where, sizeof v->where, "%s", s->loc);
    if (!json_is_object(obj))
        return fail(v, "a step must be an object");
    for (int k = 0; k < SC_STEP__COUNT; k++)
        /* "expect" is also what a request or webhook step expects: a kind on its own only. */
        if (json_object_get(obj, kind_names[k]) &&
            (k != SC_STEP_EXPECT ||
             (!json_object_get(obj, "request") && !json_object_get(obj, "webhook")))) {
            s->kind = (sc_step_kind_t)k;
            nkinds++;
        }
    if (nkinds != 1) {
        char keys[200] = "";
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)obj, k, x)
        {
            size_t n = strlen(keys);
            snprintf(keys + n, sizeof keys - n, "%s\"%s\"", n ? ", " : "", k);
        }
        if (nkinds == 0)
            return fail(v,
                        "unknown step kind (keys: %s; a step is one of \"request\", "
                        "\"call\", \"webhook\", \"wait\", \"gateway\", \"repeat\", "
                        "\"include\", \"chaos\", \"expect\")",
                        *keys ? keys : "none");
        return fail(v, "a step has exactly one kind (keys: %s)", keys);
    }
    snprintf(v->where, sizeof v->where, "%s (%s)", s->loc, kind_names[s->kind]);
    if ((rc = opt_str(v, obj, "name", &s->name)))
        return rc;
    const json_t *body = json_object_get(obj, kind_names[s->kind]);
    switch (s->kind) {
    case SC_STEP_REQUEST:
        if ((rc = check_keys(v, obj, "", request_keys)) || (rc = parse_request(v, body, &s->req)) ||
            (rc = parse_capture(v, obj, &s->capture)))
            return rc;
        if (json_object_get(obj, "expect"))
            rc = parse_expect(v, json_object_get(obj, "expect"), "expect", 0, &s->expect);
        return rc;
    case SC_STEP_WEBHOOK:
        if ((rc = check_keys(v, obj, "", webhook_keys)) || (rc = parse_webhook(v, body, s)) ||
            (rc = parse_capture(v, obj, &s->capture)))
            return rc;
        if (json_object_get(obj, "expect"))
            rc = parse_expect(v, json_object_get(obj, "expect"), "expect", 1, &s->expect);
        return rc;
    case SC_STEP_CALL:
        if ((rc = check_keys(v, obj, "", call_keys)))
            return rc;
        return parse_call(v, body, s);
    case SC_STEP_WAIT:
        if ((rc = check_keys(v, obj, "", wait_keys)))
            return rc;
        return parse_wait(v, body, s);
    case SC_STEP_GATEWAY:
        if ((rc = check_keys(v, obj, "", gateway_keys)))
            return rc;
        return parse_gateway(v, body, s);
    case SC_STEP_REPEAT:
        if ((rc = check_keys(v, obj, "", repeat_keys)))
            return rc;
        return parse_repeat(v, body, s);
    case SC_STEP_INCLUDE:
        if ((rc = check_keys(v, obj, "", include_keys)))
            return rc;
        if ((s->with = json_object_get(obj, "with"))) {
            const char *k;
            json_t *x;
            if (!json_is_object(s->with) || json_object_size(s->with) == 0)
                return fail(v, "\"with\" must be an object of variable -> value");
            json_object_foreach((json_t *)s->with, k, x)
            {
                if (!sc_vars_valid_name(k))
                    return fail(v, "\"with\": \"%s\" is not a variable name", k);
                for (const char *const *b = sc_builtin_vars; *b; b++)
                    if (!strcmp(k, *b))
                        return fail(v, "\"with\": \"%s\" is a built-in variable", k);
            }
        }
        return parse_include(v, body, s);
    case SC_STEP_CHAOS:
        if ((rc = check_keys(v, obj, "", chaos_keys)))
            return rc;
        return parse_chaos(v, body, s);
    case SC_STEP_EXPECT:
        if ((rc = check_keys(v, obj, "", expect_keys)))
            return rc;
        return parse_expect_step(v, body, s);
    case SC_STEP__COUNT:
        break;
    }
    return fail(v, "unknown step kind");
}

static cm_err_t parse_steps(vctx_t *v, const json_t *list, const char *loc, const char *actor,
                            sc_step_t **out, size_t *n)
{
    size_t count = json_array_size(list);
    *out = NULL;
    *n = 0;
    if (!json_is_array(list) || count == 0)
        return fail(v, "\"steps\" must be a non-empty list");
    *out = calloc(count, sizeof **out);
    if (!*out)
        return fail(v, "out of memory");
    *n = count; /* parsed or not, every element is freed */
    int single = strlen(loc) >= 5 && !strcmp(loc + strlen(loc) - 5, ".step");
    for (size_t i = 0; i < count; i++) {
        cm_err_t rc = parse_step(v, json_array_get(list, i), i, loc, actor, single, &(*out)[i]);
        if (rc)
            return rc;
    }
    return CM_OK;
}

static void steps_free(sc_step_t *steps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        steps_free(steps[i].children, steps[i].nchildren);
    free(steps);
}

int sc_steps_expectations(const sc_step_t *steps, size_t n)
{
    int count = 0;
    for (size_t i = 0; i < n; i++)
        count +=
            steps[i].expect.present + sc_steps_expectations(steps[i].children, steps[i].nchildren);
    return count;
}

static cm_err_t validate(sc_scenario_t *sc, char *err)
{
    static const char *const gw_keys[] = {"config", NULL};
    vctx_t vc = {.sc = sc, .where = "", .err = err};
    vctx_t *v = &vc;
    const json_t *root = sc->root;
    cm_err_t rc;

    if (!json_is_object(root))
        return fail(v, "a scenario must be a JSON object");
    if ((rc = check_keys(v, root, "", sc_scenario_keys)) ||
        (rc = req_str(v, root, "name", &sc->name)) ||
        (rc = opt_str(v, root, "description", &sc->description)))
        return rc;

    sc->tags = json_object_get(root, "tags");
    if (!json_is_array(sc->tags))
        return fail(v, "\"tags\" is required (a list of strings, may be empty)");
    for (size_t i = 0; i < json_array_size(sc->tags); i++)
        if (!json_is_string(json_array_get(sc->tags, i)))
            return fail(v, "\"tags\"[%zu] must be a string", i);

    const json_t *seed = json_object_get(root, "seed");
    if (!json_is_integer(seed) || json_integer_value(seed) < 0)
        return fail(v, "\"seed\" is required (a non-negative integer)");
    sc->seed = json_integer_value(seed);

    const json_t *speed = json_object_get(root, "speed");
    sc->speed = 1;
    if (speed) {
        if (!json_is_integer(speed) || json_integer_value(speed) < 1 ||
            json_integer_value(speed) > SC_SPEED_MAX)
            return fail(v, "\"speed\" must be a whole number from 1 to %d (the clock speed-up)",
                        SC_SPEED_MAX);
        sc->speed = (int)json_integer_value(speed);
    }

    const json_t *gw = json_object_get(root, "gateway");
    if (!json_is_object(gw))
        return fail(v, "\"gateway\" is required (an object with \"config\")");
    snprintf(v->where, sizeof v->where, "gateway");
    if ((rc = check_keys(v, gw, "", gw_keys)) ||
        (rc = req_str(v, gw, "config", &sc->gateway_config)) ||
        (rc = check_file(v, "config", sc->gateway_config)))
        return rc;
    *v->where = '\0';

    if ((rc = opt_object(v, root, "env", &sc->env)))
        return rc;
    if (sc->env) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)sc->env, k, x)
        {
            if (!sc_vars_valid_name(k))
                return fail(v, "\"env\": \"%s\" is not a valid environment variable name", k);
            if (!json_is_string(x))
                return fail(v, "\"env\": \"%s\" must be a string", k);
        }
    }

    if ((rc = parse_chaos_setup(v, json_object_get(root, "chaos"), sc)))
        return rc;

    const json_t *steps = json_object_get(root, "steps");
    if (!json_is_array(steps) || json_array_size(steps) == 0)
        return fail(v, "\"steps\" is required (a non-empty list)");
    if ((rc = parse_steps(v, steps, "steps", "step[", &sc->steps, &sc->nsteps)))
        return rc;
    *v->where = '\0';
    if (!sc_steps_expectations(sc->steps, sc->nsteps))
        return fail(v, "the scenario has no expectation: add \"expect\" to a request or webhook "
                       "step, or a \"wait\" step");
    return CM_OK;
}

cm_err_t sc_scenario_parse(const char *path, const char *text, size_t len, sc_scenario_t **out,
                           char *err)
{
    char jerr[CM_ERR_LEN];
    cm_err_t rc;
    *out = NULL;
    sc_scenario_t *sc = calloc(1, sizeof *sc);
    if (!sc || !(sc->path = strdup(path))) {
        free(sc);
        snprintf(err, SC_ERR_LEN, "%s: out of memory", path);
        return CM_ENOMEM;
    }
    const char *slash = strrchr(path, '/');
    sc->dir = slash ? strndup(path, (size_t)(slash - path == 0 ? 1 : slash - path)) : strdup(".");
    if (!sc->dir) {
        sc_scenario_free(&sc);
        snprintf(err, SC_ERR_LEN, "%s: out of memory", path);
        return CM_ENOMEM;
    }
    if (!(sc->included = json_array())) {
        sc_scenario_free(&sc);
        snprintf(err, SC_ERR_LEN, "%s: out of memory", path);
        return CM_ENOMEM;
    }
    /* YAML is the same document in another syntax: one validation for both. */
    if (sc_yaml_path(path))
        rc = sc_yaml_parse(text, len, &sc->root, jerr);
    else
        rc = cm_json_parse(text, len, SC_FILE_MAX, &sc->root, jerr);
    if (rc)
        snprintf(err, SC_ERR_LEN, "%s: %s", path, jerr);
    else
        rc = validate(sc, err);
    if (rc)
        sc_scenario_free(&sc);
    *out = sc;
    return rc;
}

cm_err_t sc_scenario_load(const char *path, sc_scenario_t **out, char *err)
{
    char ferr[CM_ERR_LEN];
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    cm_err_t rc = sc_files_read(path, SC_FILE_MAX, &text, &len, ferr);
    if (rc)
        snprintf(err, SC_ERR_LEN, "%s", ferr);
    else
        rc = sc_scenario_parse(path, text, len, out, err);
    free(text);
    return rc;
}

void sc_scenario_free(sc_scenario_t **scp)
{
    if (!scp || !*scp)
        return;
    sc_scenario_t *sc = *scp;
    steps_free(sc->steps, sc->nsteps);
    json_decref(sc->included);
    json_decref(sc->root);
    free(sc->path);
    free(sc->dir);
    free(sc);
    *scp = NULL;
}

cm_err_t sc_scenario_resolve(const sc_scenario_t *sc, const char *rel, char *out, size_t cap,
                             char *err)
{
    if (rel[0] == '/') {
        if (access(rel, R_OK) == 0 && snprintf(out, cap, "%s", rel) < (int)cap)
            return CM_OK;
        snprintf(err, SC_ERR_LEN, "%s: no such file", rel);
        return CM_ENOTFOUND;
    }
    if (access(rel, R_OK) == 0 && snprintf(out, cap, "%s", rel) < (int)cap)
        return CM_OK;
    if (snprintf(out, cap, "%s/%s", sc->dir, rel) < (int)cap && access(out, R_OK) == 0)
        return CM_OK;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        strcpy(cwd, ".");
    snprintf(err, SC_ERR_LEN, "\"%s\" not found in %s (the repo root) nor in %s", rel, cwd,
             sc->dir);
    return CM_ENOTFOUND;
}
