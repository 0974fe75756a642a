/* sc_scenario.c - loading and validating scenario files. Validation is strict on purpose:
 * a misspelt key that is silently ignored turns a test into a silent pass. */
#include "sc_scenario.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_json.h"
#include "sc_duration.h"
#include "sc_files.h"
#include "sc_match.h"
#include "sc_vars.h"

const char *const sc_builtin_vars[] = {
    "seed",        "tmp_dir",      "data_dir",    "gateway_url", "gateway_port",
    "control_url", "control_port", "retell_url",  "retell_port", "calcom_url",
    "calcom_port", "stripe_url",   "stripe_port", NULL,
};

static const char *const target_names[] = {"gateway", "control", "retell", "calcom", "stripe"};
static const char *const kind_names[] = {"request", "call", "webhook", "wait"};

const char *sc_target_name(sc_target_t t)
{
    return (unsigned)t < 5 ? target_names[t] : "?";
}

const char *sc_step_kind_name(sc_step_kind_t k)
{
    return (unsigned)k < 4 ? kind_names[k] : "?";
}

/* Validation context: where we are, for the message prefix. */
typedef struct {
    const sc_scenario_t *sc;
    char where[96]; /* "steps[3] (webhook)", "" at top level */
    char *err;
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
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, target_names[i])) {
            *to = (sc_target_t)i;
            return CM_OK;
        }
    return fail(v, "\"to\" must be one of gateway, control, retell, calcom, stripe (got \"%s\")",
                s);
}

static cm_err_t parse_request(vctx_t *v, const json_t *obj, sc_request_t *r)
{
    static const char *const keys[] = {"to",   "method", "path", "headers",
                                       "json", "body",   "auth", NULL};
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
    if (r->json && r->body)
        return fail(v, "give either \"json\" or \"body\", not both");
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
    static const char *const req_keys[] = {"status", "json", NULL};
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

static cm_err_t parse_wait(vctx_t *v, const json_t *obj, sc_step_t *s)
{
    static const char *const keys[] = {"request", "until", "within", "capture", NULL};
    cm_err_t rc;
    const char *within;
    if (!json_is_object(obj))
        return fail(v, "\"wait\" must be an object");
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

static cm_err_t parse_step(vctx_t *v, const json_t *obj, size_t i, sc_step_t *s)
{
    static const char *const request_keys[] = {"name", "request", "expect", "capture", NULL};
    static const char *const webhook_keys[] = {"name", "webhook", "expect", "capture", NULL};
    static const char *const call_keys[] = {"name", "call", NULL};
    static const char *const wait_keys[] = {"name", "wait", NULL};
    cm_err_t rc;
    int nkinds = 0;

    s->index = i;
    snprintf(v->where, sizeof v->where, "steps[%zu]", i);
    if (!json_is_object(obj))
        return fail(v, "a step must be an object");
    for (int k = 0; k < 4; k++)
        if (json_object_get(obj, kind_names[k])) {
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
                        "\"call\", \"webhook\", \"wait\")",
                        *keys ? keys : "none");
        return fail(v, "a step has exactly one kind (keys: %s)", keys);
    }
    snprintf(v->where, sizeof v->where, "steps[%zu] (%s)", i, kind_names[s->kind]);
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
    }
    return fail(v, "unknown step kind");
}

static cm_err_t validate(sc_scenario_t *sc, char *err)
{
    static const char *const keys[] = {"name",    "description", "tags",  "seed",
                                       "gateway", "env",         "steps", NULL};
    static const char *const gw_keys[] = {"config", NULL};
    vctx_t vc = {.sc = sc, .where = "", .err = err};
    vctx_t *v = &vc;
    const json_t *root = sc->root;
    cm_err_t rc;

    if (!json_is_object(root))
        return fail(v, "a scenario must be a JSON object");
    if ((rc = check_keys(v, root, "", keys)) || (rc = req_str(v, root, "name", &sc->name)) ||
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

    const json_t *steps = json_object_get(root, "steps");
    if (!json_is_array(steps) || json_array_size(steps) == 0)
        return fail(v, "\"steps\" is required (a non-empty list)");
    sc->nsteps = json_array_size(steps);
    sc->steps = calloc(sc->nsteps, sizeof *sc->steps);
    if (!sc->steps) {
        sc->nsteps = 0;
        return fail(v, "out of memory");
    }
    int expectations = 0;
    for (size_t i = 0; i < sc->nsteps; i++) {
        if ((rc = parse_step(v, json_array_get(steps, i), i, &sc->steps[i])))
            return rc;
        expectations += sc->steps[i].expect.present;
    }
    *v->where = '\0';
    if (!expectations)
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
    free(sc->steps);
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
