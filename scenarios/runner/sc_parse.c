/* sc_parse.c - reading and checking a scenario's steps (see sc_parse.h). Validation is
 * strict on purpose: a misspelt key that is silently ignored turns a test into a silent
 * pass. */
#include "sc_parse.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cm_buf.h"
#include "cm_json.h"
#include "sc_duration.h"
#include "sc_files.h"
#include "sc_match.h"
#include "sc_metrics.h"
#include "sc_step_def.h"
#include "sc_vars.h"
#include "sc_yaml.h"

cm_err_t sc_parse_fail(sc_parse_t *v, const char *fmt, ...)
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
cm_err_t sc_parse_keys(sc_parse_t *v, const json_t *obj, const char *what,
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
        return sc_parse_fail(v, "unknown key \"%s\"%s%s (allowed: %s)", k, *what ? " in " : "",
                             what, list);
    }
    return CM_OK;
}

/* Optional string field: NULL when absent; error when present with another type. */
cm_err_t sc_parse_opt_str(sc_parse_t *v, const json_t *obj, const char *key, const char **out)
{
    const json_t *x = json_object_get(obj, key);
    *out = NULL;
    if (!x)
        return CM_OK;
    if (!json_is_string(x))
        return sc_parse_fail(v, "\"%s\" must be a string", key);
    *out = json_string_value(x);
    return CM_OK;
}

cm_err_t sc_parse_req_str(sc_parse_t *v, const json_t *obj, const char *key, const char **out)
{
    cm_err_t rc = sc_parse_opt_str(v, obj, key, out);
    if (!rc && (!*out || !**out))
        return sc_parse_fail(v, "\"%s\" is required (a non-empty string)", key);
    return rc;
}

cm_err_t sc_parse_opt_bool(sc_parse_t *v, const json_t *obj, const char *key, int def, int *out)
{
    const json_t *x = json_object_get(obj, key);
    *out = def;
    if (!x)
        return CM_OK;
    if (!json_is_boolean(x))
        return sc_parse_fail(v, "\"%s\" must be true or false", key);
    *out = json_is_true(x);
    return CM_OK;
}

cm_err_t sc_parse_opt_object(sc_parse_t *v, const json_t *obj, const char *key, const json_t **out)
{
    const json_t *x = json_object_get(obj, key);
    *out = NULL;
    if (!x)
        return CM_OK;
    if (!json_is_object(x))
        return sc_parse_fail(v, "\"%s\" must be an object", key);
    *out = x;
    return CM_OK;
}

/* A relative path must name an existing file unless it is built from variables. */
cm_err_t sc_parse_file(sc_parse_t *v, const char *key, const char *rel)
{
    char found[PATH_MAX], err[SC_ERR_LEN];
    if (strstr(rel, "${"))
        return CM_OK;
    if (sc_scenario_resolve(v->sc, rel, found, sizeof found, err) != CM_OK)
        return sc_parse_fail(v, "\"%s\": %s", key, err);
    return CM_OK;
}

static cm_err_t parse_target(sc_parse_t *v, const json_t *obj, sc_target_t *to)
{
    const char *s;
    cm_err_t rc = sc_parse_req_str(v, obj, "to", &s);
    if (rc)
        return rc;
    for (int i = 0; i < SC_TARGETS; i++)
        if (!strcmp(s, sc_target_name((sc_target_t)i))) {
            *to = (sc_target_t)i;
            if (*to == SC_TO_CHAOS && !v->sc->chaos_links)
                return sc_parse_fail(
                    v, "\"to\": \"chaos\" needs the scenario's \"chaos\" (which links "
                       "to route through the proxy)");
            return CM_OK;
        }
    return sc_parse_fail(
        v,
        "\"to\" must be one of gateway, control, retell, calcom, stripe, chaos (got "
        "\"%s\")",
        s);
}

cm_err_t sc_parse_opt_int(sc_parse_t *v, const json_t *obj, const char *key, long long def,
                          long long min, long long max, long long *out)
{
    const json_t *x = json_object_get(obj, key);
    *out = def;
    if (!x)
        return CM_OK;
    if (!json_is_integer(x) || json_integer_value(x) < min || json_integer_value(x) > max)
        return sc_parse_fail(v, "\"%s\" must be an integer from %lld to %lld", key, min, max);
    *out = json_integer_value(x);
    return CM_OK;
}

/* "body_repeat": {"text": "x", "times": 300000}: a big body without a big file. */
static cm_err_t parse_body_repeat(sc_parse_t *v, const json_t *x, sc_request_t *r)
{
    static const char *const keys[] = {"text", "times", NULL};
    cm_err_t rc;
    if (!json_is_object(x))
        return sc_parse_fail(v,
                             "\"body_repeat\" must be an object {\"text\": \"x\", \"times\": N}");
    if ((rc = sc_parse_keys(v, x, "\"body_repeat\"", keys)) ||
        (rc = sc_parse_req_str(v, x, "text", &r->repeat_text)))
        return rc;
    const json_t *t = json_object_get(x, "times");
    if (!json_is_integer(t) || json_integer_value(t) < 1)
        return sc_parse_fail(v, "\"body_repeat\": \"times\" is required (a positive integer)");
    r->repeat_times = json_integer_value(t);
    if ((unsigned long long)r->repeat_times > SC_BODY_REPEAT_MAX / strlen(r->repeat_text))
        return sc_parse_fail(v, "\"body_repeat\": the body would be larger than %u bytes",
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

static cm_err_t parse_sign(sc_parse_t *v, const json_t *x, sc_request_t *r)
{
    static const char *const keys[] = {
        "scheme", "key", "keys", "timestamp_offset", "timestamp_offset_ms", "forge", "id", NULL};
    sc_sign_t *g = &r->sign;
    const char *scheme;
    cm_err_t rc;
    if (!json_is_object(x))
        return sc_parse_fail(v, "\"sign\" must be an object {\"scheme\": ..., \"key\": ...}");
    if ((rc = sc_parse_keys(v, x, "\"sign\"", keys)) ||
        (rc = sc_parse_req_str(v, x, "scheme", &scheme)))
        return rc;
    for (int i = SC_SIGN_RETELL; i <= SC_SIGN_STD; i++)
        if (!strcmp(scheme, sc_sign_scheme_name((sc_sign_scheme_t)i)))
            g->scheme = (sc_sign_scheme_t)i;
    if (g->scheme == SC_SIGN_NONE)
        return sc_parse_fail(v,
                             "\"sign\": \"scheme\" must be one of retell, calcom, stripe, std (got "
                             "\"%s\")",
                             scheme);
    if ((rc = sc_parse_opt_str(v, x, "key", &g->key)) ||
        (rc = sc_parse_opt_bool(v, x, "forge", 0, &g->forge)) ||
        (rc = sc_parse_opt_str(v, x, "id", &g->id)))
        return rc;
    g->keys = json_object_get(x, "keys");
    if ((g->key != NULL) == (g->keys != NULL))
        return sc_parse_fail(v, "\"sign\": give exactly one of \"key\" and \"keys\"");
    if (g->key && !*g->key)
        return sc_parse_fail(v, "\"sign\": \"key\" must not be empty");
    if (g->keys) {
        size_t n = json_is_array(g->keys) ? json_array_size(g->keys) : 0;
        if (g->scheme == SC_SIGN_RETELL || g->scheme == SC_SIGN_CALCOM)
            return sc_parse_fail(
                v, "\"sign\": %s signs with one \"key\" (\"keys\" is for stripe and std)", scheme);
        if (n < 1 || n > SC_SIGN_MAX_KEYS)
            return sc_parse_fail(v, "\"sign\": \"keys\" must be a list of 1 to %d keys",
                                 SC_SIGN_MAX_KEYS);
        for (size_t i = 0; i < n; i++) {
            const json_t *k = json_array_get(g->keys, i);
            if (!json_is_string(k) || json_string_length(k) == 0)
                return sc_parse_fail(v, "\"sign\": \"keys\"[%zu] must be a non-empty string", i);
        }
    }
    int64_t off;
    int has_off;
    if ((rc = sc_parse_ts_offset(v, x, "\"sign\"", &off, &has_off)))
        return rc;
    if (has_off && g->scheme == SC_SIGN_CALCOM)
        return sc_parse_fail(v, "\"sign\": calcom signatures carry no timestamp (drop "
                                "\"timestamp_offset\")");
    g->ts_offset_ms = off;
    if (g->scheme == SC_SIGN_STD && (!g->id || !*g->id))
        return sc_parse_fail(v, "\"sign\": std needs \"id\" (the webhook-id, e.g. \"msg_${i}\")");
    if (g->scheme != SC_SIGN_STD && g->id)
        return sc_parse_fail(v, "\"sign\": \"id\" is only for the std scheme");
    if (r->headers) {
        const char *k;
        json_t *hv;
        json_object_foreach((json_t *)r->headers, k, hv)
        {
            for (const char *const *h = sign_headers(g->scheme); *h; h++)
                if (!strcasecmp(k, *h))
                    return sc_parse_fail(
                        v, "\"headers\": \"%s\" is set by \"sign\"; give one or the other", k);
        }
    }
    return CM_OK;
}

cm_err_t sc_parse_request(sc_parse_t *v, const json_t *obj, sc_request_t *r)
{
    static const char *const keys[] = {"to",   "method", "path",        "headers", "json",
                                       "body", "auth",   "body_repeat", "sign",    NULL};
    static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", NULL};
    cm_err_t rc;
    if (!json_is_object(obj))
        return sc_parse_fail(v, "\"request\" must be an object");
    if ((rc = sc_parse_keys(v, obj, "\"request\"", keys)) || (rc = parse_target(v, obj, &r->to)) ||
        (rc = sc_parse_opt_str(v, obj, "method", &r->method)) ||
        (rc = sc_parse_req_str(v, obj, "path", &r->path)) ||
        (rc = sc_parse_opt_object(v, obj, "headers", &r->headers)) ||
        (rc = sc_parse_opt_str(v, obj, "body", &r->body)))
        return rc;
    if (!r->method)
        r->method = "GET";
    int known = 0;
    for (const char *const *m = methods; *m && !known; m++)
        known = !strcmp(r->method, *m);
    if (!known)
        return sc_parse_fail(v,
                             "\"method\" must be one of GET, HEAD, POST, PUT, PATCH, DELETE "
                             "(got \"%s\")",
                             r->method);
    if (r->path[0] != '/' && strncmp(r->path, "${", 2) != 0)
        return sc_parse_fail(v, "\"path\" must start with '/' (got \"%s\")", r->path);
    r->json = json_object_get(obj, "json");
    const json_t *rep = json_object_get(obj, "body_repeat");
    if ((r->json != NULL) + (r->body != NULL) + (rep != NULL) > 1)
        return sc_parse_fail(v, "give one of \"json\", \"body\" and \"body_repeat\", not several");
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
                return sc_parse_fail(v, "header \"%s\" must be a string", k);
            if (!*k || strpbrk(k, ": \r\n"))
                return sc_parse_fail(v, "\"%s\" is not a valid header name", k);
        }
    }
    const json_t *auth = json_object_get(obj, "auth");
    r->auth = -1;
    if (auth) {
        if (!json_is_boolean(auth))
            return sc_parse_fail(v, "\"auth\" must be true or false");
        r->auth = json_is_true(auth);
        if (r->auth && r->to == SC_TO_CONTROL)
            return sc_parse_fail(v, "\"auth\": the control port takes no credentials");
    }
    return CM_OK;
}

/* "status": 200 or [200, 204]; "statuses": [204] (webhooks). */
static cm_err_t parse_statuses(sc_parse_t *v, const json_t *x, const char *key, sc_expect_t *e)
{
    size_t n = json_is_array(x) ? json_array_size(x) : 1;
    if (!(json_is_array(x) || json_is_integer(x)) || n == 0 || n > SC_MAX_STATUSES)
        return sc_parse_fail(v, "\"%s\" must be %s", key,
                             strcmp(key, "statuses") ? "an HTTP status or a list of them"
                                                     : "a non-empty list of HTTP statuses");
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_is_array(x) ? json_array_get(x, i) : x;
        json_int_t st = json_is_integer(s) ? json_integer_value(s) : 0;
        if (st < 100 || st > 599)
            return sc_parse_fail(v, "\"%s\" must hold HTTP statuses (100-599)", key);
        e->statuses[i] = (int)st;
    }
    e->nstatuses = n;
    return CM_OK;
}

static cm_err_t parse_match(sc_parse_t *v, const json_t *x, const char *what)
{
    char err[CM_ERR_LEN];
    if (sc_match_validate(x, err) != CM_OK)
        return sc_parse_fail(v, "%s: %s", what, err);
    return CM_OK;
}

/* kind: which expect dialect ("status" for requests and waits, "statuses" for webhooks). */
cm_err_t sc_parse_expect(sc_parse_t *v, const json_t *x, const char *what, int webhook,
                         sc_expect_t *e)
{
    static const char *const req_keys[] = {"status", "json", "metrics", "headers", NULL};
    static const char *const hook_keys[] = {"statuses", "json", NULL};
    const char *skey = webhook ? "statuses" : "status";
    cm_err_t rc;
    char ctx[32];
    snprintf(ctx, sizeof ctx, "\"%s\"", what);
    if (!json_is_object(x))
        return sc_parse_fail(v, "\"%s\" must be an object", what);
    if ((rc = sc_parse_keys(v, x, ctx, webhook ? hook_keys : req_keys)))
        return rc;
    if (json_object_size(x) == 0)
        return sc_parse_fail(v, "\"%s\" is empty: say what to expect (\"%s\" and/or \"json\")",
                             what, skey);
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
            return sc_parse_fail(v, "\"%s\".\"metrics\" must be an object of selector -> value",
                                 what);
        json_object_foreach((json_t *)e->metrics, k, want)
        {
            if (sc_metrics_selector_valid(k, merr) != CM_OK)
                return sc_parse_fail(v, "\"%s\".\"metrics\": %s", what, merr);
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
            return sc_parse_fail(v, "\"%s\".\"headers\" must be an object of header name -> value",
                                 what);
        json_object_foreach((json_t *)e->headers, k, want)
        {
            /* An RFC 9110 token: what a header name can be. */
            if (!*k || strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                 "!#$%&'*+-.^_`|~") != strlen(k))
                return sc_parse_fail(v, "\"%s\".\"headers\": \"%.64s\" is not a header name", what,
                                     k);
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

cm_err_t sc_parse_capture(sc_parse_t *v, const json_t *step, const json_t **out)
{
    const json_t *c = json_object_get(step, "capture");
    const char *k;
    json_t *x;
    *out = NULL;
    if (!c)
        return CM_OK;
    if (!json_is_object(c))
        return sc_parse_fail(v, "\"capture\" must be an object of variable -> answer path");
    json_object_foreach((json_t *)c, k, x)
    {
        cm_err_t rc = sc_parse_var_name(v, "capture", k);
        if (rc)
            return rc;
        if (!json_is_string(x))
            return sc_parse_fail(v,
                                 "\"capture\": \"%s\" must name an answer path (a string, \"\" for "
                                 "the whole answer)",
                                 k);
    }
    *out = c;
    return CM_OK;
}

/* The admin path of a saga (saga != 0) or a call whose id (may hold ${...}) is x: into
 * path (cap bytes), or a failure naming the problem. */
cm_err_t sc_parse_admin_path(sc_parse_t *v, const json_t *x, int saga, char *path, size_t cap)
{
    const char *what = saga ? "saga" : "call";
    if (!json_is_string(x) || json_string_length(x) == 0 ||
        strcspn(json_string_value(x), "/?#% ") != json_string_length(x))
        return sc_parse_fail(v, "\"%s\" must be an id (or a ${...} that gives one)", what);
    if (snprintf(path, cap, "/admin/%s/%s", saga ? "sagas" : "calls", json_string_value(x)) >=
        (int)cap)
        return sc_parse_fail(v, "\"%s\": the id is too long", what);
    return CM_OK;
}

/* {"include": "path"}: the file holds a list of steps (or {"steps": [...]}), inlined
 * here at load time; its steps see the scenario's variables. */
/* A JSON or YAML file (by its name) into *doc; err (CM_ERR_LEN) starts with the path. */
cm_err_t sc_parse_load_doc(const char *path, json_t **doc, char *err)
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

/* Finds a link by name; SC_LINKS when there is none. */
sc_link_t sc_parse_link(const char *name)
{
    for (int i = 0; i < SC_LINKS; i++)
        if (!strcmp(name, sc_link_names[i]))
            return (sc_link_t)i;
    return SC_LINKS;
}

/* One step. loc: where it sits ("steps[3]", "steps[3].steps[1]"), actor: "step[3"
 * ("step[3.1"), both without the index's closing part. The kind is the one key of the
 * table's (sc_step_kinds.h) that the object holds; the kind's own parse does the rest. */
static cm_err_t parse_step(sc_parse_t *v, const json_t *obj, size_t i, const char *loc,
                           const char *actor, int single, sc_step_t *s)
{
    cm_err_t rc;
    int nkinds = 0;

    s->index = i;
    int n1 = single ? snprintf(s->loc, sizeof s->loc, "%s", loc)
                    : snprintf(s->loc, sizeof s->loc, "%s[%zu]", loc, i);
    int n2 =
        snprintf(s->actor, sizeof s->actor, "%s%s%zu]", actor, strchr(actor, '[')[1] ? "." : "", i);
    if (n1 >= (int)sizeof s->loc || n2 >= (int)sizeof s->actor)
        return sc_parse_fail(v, "repeats nested too deep");
    snprintf(v->where, sizeof v->where, "%s", s->loc);
    if (!json_is_object(obj))
        return sc_parse_fail(v, "a step must be an object");
    char kinds[160] = "";
    for (int k = 0; k < SC_STEP__COUNT; k++) {
        const char *key = sc_step_def((sc_step_kind_t)k)->key;
        size_t n = strlen(kinds);
        snprintf(kinds + n, sizeof kinds - n, "%s\"%s\"", k ? ", " : "", key);
        /* "expect" is also what a request or webhook step expects: a kind on its own only. */
        if (json_object_get(obj, key) &&
            (k != SC_STEP_EXPECT ||
             (!json_object_get(obj, "request") && !json_object_get(obj, "webhook")))) {
            s->kind = (sc_step_kind_t)k;
            nkinds++;
        }
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
            return sc_parse_fail(v, "unknown step kind (keys: %s; a step is one of %s)",
                                 *keys ? keys : "none", kinds);
        return sc_parse_fail(v, "a step has exactly one kind (keys: %s)", keys);
    }
    const sc_step_def_t *def = sc_step_def(s->kind);
    snprintf(v->where, sizeof v->where, "%s (%s)", s->loc, def->key);
    if ((rc = sc_parse_opt_str(v, obj, "name", &s->name)) ||
        (rc = sc_parse_keys(v, obj, "", def->keys)))
        return rc;
    return def->parse(v, obj, json_object_get(obj, def->key), s);
}

cm_err_t sc_parse_steps(sc_parse_t *v, const json_t *list, const char *loc, const char *actor,
                        sc_step_t **out, size_t *n)
{
    size_t count = json_array_size(list);
    *out = NULL;
    *n = 0;
    if (!json_is_array(list) || count == 0)
        return sc_parse_fail(v, "\"steps\" must be a non-empty list");
    *out = calloc(count, sizeof **out);
    if (!*out)
        return sc_parse_fail(v, "out of memory");
    *n = count; /* parsed or not, every element is freed */
    int single = strlen(loc) >= 5 && !strcmp(loc + strlen(loc) - 5, ".step");
    for (size_t i = 0; i < count; i++) {
        cm_err_t rc = parse_step(v, json_array_get(list, i), i, loc, actor, single, &(*out)[i]);
        if (rc)
            return rc;
    }
    return CM_OK;
}

cm_err_t sc_parse_children(sc_parse_t *v, const json_t *list, const char *suffix, sc_step_t *s)
{
    char loc[sizeof s->loc], actor[sizeof s->actor], where[sizeof v->where];
    if (snprintf(loc, sizeof loc, "%s%s", s->loc, suffix) >= (int)sizeof loc)
        return sc_parse_fail(v, "nested too deep for messages");
    /* The step's actor without its closing bracket: its children's start with it. */
    snprintf(actor, sizeof actor, "%.*s", (int)strlen(s->actor) - 1, s->actor);
    snprintf(where, sizeof where, "%s", v->where);
    cm_err_t rc = sc_parse_steps(v, list, loc, actor, &s->children, &s->nchildren);
    if (!rc)
        snprintf(v->where, sizeof v->where, "%s", where);
    return rc;
}

cm_err_t sc_parse_var_name(sc_parse_t *v, const char *field, const char *name)
{
    if (!sc_vars_valid_name(name))
        return sc_parse_fail(v, "\"%s\": \"%s\" is not a variable name ([A-Za-z_][A-Za-z0-9_]*)",
                             field, name);
    for (const char *const *b = sc_builtin_vars; *b; b++)
        if (!strcmp(name, *b))
            return sc_parse_fail(v, "\"%s\": \"%s\" is a built-in variable", field, name);
    return CM_OK;
}

cm_err_t sc_parse_within(sc_parse_t *v, const json_t *obj, const char *key, int64_t def,
                         int64_t *ms)
{
    const char *text;
    char err[CM_ERR_LEN];
    cm_err_t rc = sc_parse_opt_str(v, obj, key, &text);
    *ms = def;
    if (rc || !text)
        return rc;
    if (sc_duration_parse(text, ms, err) != CM_OK)
        return sc_parse_fail(v, "\"%s\": %s", key, err);
    if (*ms <= 0)
        return sc_parse_fail(v, "\"%s\" must be longer than 0", key);
    return CM_OK;
}

cm_err_t sc_parse_keep(sc_parse_t *v, json_t *doc)
{
    if (!doc || json_array_append_new(((sc_scenario_t *)v->sc)->included, doc) != 0)
        return sc_parse_fail(v, "out of memory");
    return CM_OK;
}

cm_err_t sc_parse_offset(sc_parse_t *v, const char *what, const json_t *x, int64_t *ms)
{
    char err[CM_ERR_LEN];
    const char *t = json_string_value(x);
    if (!t)
        return sc_parse_fail(v, "%s must be a signed duration such as \"+6m\" or \"-30s\"", what);
    int neg = *t == '-';
    if (sc_duration_parse(t + (*t == '-' || *t == '+'), ms, err) != CM_OK)
        return sc_parse_fail(v, "%s: %s", what, err);
    if (neg)
        *ms = -*ms;
    return CM_OK;
}

cm_err_t sc_parse_ts_offset(sc_parse_t *v, const json_t *obj, const char *what, int64_t *ms,
                            int *present)
{
    const json_t *d = json_object_get(obj, "timestamp_offset");
    const json_t *old = json_object_get(obj, "timestamp_offset_ms");
    char key[64];
    *ms = 0;
    *present = d || old;
    if (d && old)
        return sc_parse_fail(v,
                             "%s: give \"timestamp_offset\" only (\"timestamp_offset_ms\" is "
                             "its deprecated form)",
                             what);
    if (old) {
        if (!json_is_integer(old))
            return sc_parse_fail(v, "%s: \"timestamp_offset_ms\" must be an integer", what);
        *ms = json_integer_value(old);
        sc_parse_warn(v,
                      "%s: \"timestamp_offset_ms\" is deprecated and goes in the next release; "
                      "write \"timestamp_offset\": \"%s%lldms\"",
                      what, *ms < 0 ? "-" : "+", (long long)(*ms < 0 ? -*ms : *ms));
        return CM_OK;
    }
    snprintf(key, sizeof key, "%s: \"timestamp_offset\"", what);
    return d ? sc_parse_offset(v, key, d, ms) : CM_OK;
}

void sc_parse_warn(sc_parse_t *v, const char *fmt, ...)
{
    char msg[SC_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s%swarning: %s\n", v->sc->path, v->where, *v->where ? ": " : "", msg);
}
