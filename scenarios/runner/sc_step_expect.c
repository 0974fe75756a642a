/* sc_step_expect.c - the "expect" step: high-level checks of what nearly every scenario
 * looks at, each rewritten at load into the one-shot request it stands for, so a failure
 * shows the real answer and names the verb ("journal: calcom GET /v2/slots: ...").
 *
 *   {"effects": {"calcom.booking": 1, "stripe.refund": 0}}   the simulators' effects ledger
 *   {"queue": {"dead": 0, "done": 3}}                         GET gateway /admin/queue
 *   {"saga": ID, "state": S} / {"call": ID, "state": S}       the gateway's admin API
 *   {"dead_letters": N}                                       GET gateway /admin/dead-letters
 *   {"breaker": {"calcom": "closed"}}                          GET gateway /admin/breakers
 *   {"breaker": {"calcom": {"state": "closed",
 *                           "transitions": ["open", "half_open", "closed"]}}}
 *   {"journal": {"calcom GET /v2/slots": 6}}                  the simulators' journal
 *   {"journal": {"calcom GET /v2/slots": {"count": 6, "statuses": [503, 200],
 *                "gaps": {"min": "1s", "max": "5s"}, "each": {"headers.Idempotency-Key":
 *                {"$exists": true}}}, "retell delivery": 3}}
 * Values are values or operators, as in "json" (sc_match.h); "gaps" takes $gaps's fields.
 *
 * Also the "log" step: what the gateway wrote to its output (DIR/gw.log, every instance's
 * gwN.log), the one place outside its HTTP answers where a gateway shows what it keeps:
 *   {"log": {"excludes": ["+14155550123", "jane.doe@example.com"], "contains": ["..."]}}
 * every "excludes" string absent, every "contains" string present (both expanded when the
 * step runs). An empty log fails it too: a check over nothing proves nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_json.h"
#include "sc_log.h"
#include "sc_match.h"
#include "sc_step_def.h"

/* A count over the journal must see every record: the most the control API lists at once
 * (and "dropped": 0 says the ring lost none of them). */
#define SC_JOURNAL_ALL "100000"

/* Appends a request step {"name", "request": {"to", "path"}, "expect": {"json": want}} to
 * list; takes want. */
static cm_err_t add_check(sc_parse_t *v, json_t *list, const char *name, const char *to,
                          const char *path, json_t *want)
{
    json_t *st = want ? json_pack("{s:s,s:{s:s,s:s},s:{s:o}}", "name", name, "request", "to", to,
                                  "path", path, "expect", "json", want)
                      : NULL;
    if (!st || json_array_append_new(list, st) != 0)
        return sc_parse_fail(v, "out of memory");
    return CM_OK;
}

/* A plain value or a non-empty object of operators ($eq, $gte, ...), as "json" takes. */
static int is_value(const json_t *x)
{
    return !json_is_object(x) ||
           (json_object_size(x) > 0 && *json_object_iter_key(json_object_iter((json_t *)x)) == '$');
}

/* A verb: reads its value x (and, for the state checks, the rest of obj) into checks. */
typedef cm_err_t (*verb_fn)(sc_parse_t *v, const json_t *obj, const json_t *x, json_t *list);

static cm_err_t verb_effects(sc_parse_t *v, const json_t *obj, const json_t *x, json_t *list)
{
    /* What the simulators' effects ledger records (sim_journal.h). */
    static const char *const known[] = {"calcom.booking",    "calcom.cancellation",
                                        "calcom.reschedule", "stripe.charge",
                                        "stripe.refund",     "stripe.cancellation"};
    const char *k;
    json_t *want;
    (void)obj;
    if (!json_is_object(x) || json_object_size(x) == 0)
        return sc_parse_fail(v, "\"effects\" must map \"provider.kind\" (calcom.booking, "
                                "stripe.charge, ...) to a count");
    json_object_foreach((json_t *)x, k, want)
    {
        size_t dot = strcspn(k, ".");
        int ok = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            ok |= !strcmp(k, known[i]);
        if (!ok)
            return sc_parse_fail(v,
                                 "\"effects\": \"%.64s\" is not provider.kind (calcom.booking, "
                                 "calcom.cancellation, calcom.reschedule, stripe.charge, "
                                 "stripe.refund, stripe.cancellation)",
                                 k);
        char path[128], name[160];
        snprintf(path, sizeof path, "/control/effects?provider=%.*s&kind=%s", (int)dot, k,
                 k + dot + 1);
        snprintf(name, sizeof name, "effects: %s", k);
        cm_err_t rc = add_check(v, list, name, "control", path,
                                json_pack("{s:O,s:i}", "count", want, "dropped", 0));
        if (rc)
            return rc;
    }
    return CM_OK;
}

static cm_err_t verb_queue(sc_parse_t *v, const json_t *obj, const json_t *x, json_t *list)
{
    (void)obj;
    if (!json_is_object(x) || json_object_size(x) == 0)
        return sc_parse_fail(v, "\"queue\" must be an expectation on {\"pending\",\"running\","
                                "\"done\",\"dead\"}");
    return add_check(v, list, "queue", "gateway", "/admin/queue", json_deep_copy(x));
}

/* "saga" or "call" (x), with obj's "state". */
static cm_err_t verb_state(sc_parse_t *v, const json_t *obj, const json_t *x, json_t *list)
{
    int saga = x == json_object_get(obj, "saga");
    const json_t *state = json_object_get(obj, "state");
    char path[512], name[32];
    if (json_object_get(obj, "saga") && json_object_get(obj, "call"))
        return sc_parse_fail(v, "\"expect\": one \"saga\" or one \"call\" per step");
    if (!state)
        return sc_parse_fail(v, "\"expect\": a \"%s\" needs the \"state\" to check",
                             saga ? "saga" : "call");
    cm_err_t rc = sc_parse_admin_path(v, x, saga, path, sizeof path);
    if (rc)
        return rc;
    snprintf(name, sizeof name, "%s state", saga ? "saga" : "call");
    return add_check(v, list, name, "gateway", path,
                     json_pack("{s:O}", saga ? "saga.state" : "state", state));
}

static cm_err_t verb_dead_letters(sc_parse_t *v, const json_t *obj, const json_t *x, json_t *list)
{
    (void)obj;
    return add_check(v, list, "dead letters", "gateway", "/admin/dead-letters",
                     json_pack("{s:O}", "count", x));
}

/* "transitions": [to, ...] in order: the breaker's whole journal, one "to" each. */
static cm_err_t breaker_transitions(sc_parse_t *v, const char *who, const json_t *t, json_t *want)
{
    char key[96];
    if (!json_is_array(t))
        return sc_parse_fail(v, "\"breaker\".\"%s\".\"transitions\" must be a list of states", who);
    for (size_t i = 0; i < json_array_size(t); i++)
        if (!json_is_string(json_array_get(t, i)))
            return sc_parse_fail(v, "\"breaker\".\"%s\".\"transitions\"[%zu] must be a state", who,
                                 i);
    snprintf(key, sizeof key, "%s.journal.*.to", who);
    if (json_object_set(want, key, (json_t *)t))
        return sc_parse_fail(v, "out of memory");
    return CM_OK;
}

static cm_err_t verb_breaker(sc_parse_t *v, const json_t *obj, const json_t *x, json_t *list)
{
    static const char *const keys[] = {"state", "transitions", NULL};
    const char *who;
    json_t *b, *want = json_object();
    cm_err_t rc = CM_OK;
    (void)obj;
    if (!want || (rc = sc_parse_keep(v, want)))
        return rc ? rc : sc_parse_fail(v, "out of memory");
    if (!json_is_object(x) || json_object_size(x) == 0)
        return sc_parse_fail(v, "\"breaker\" must map a provider (calcom, stripe) to its state "
                                "or {\"state\", \"transitions\"}");
    json_object_foreach((json_t *)x, who, b)
    {
        char key[96], what[128];
        if (strlen(who) > 32 || strcspn(who, ".") != strlen(who))
            return sc_parse_fail(v, "\"breaker\": \"%.40s\" is not a provider name", who);
        snprintf(key, sizeof key, "%s.state", who);
        snprintf(what, sizeof what, "\"breaker\".\"%s\"", who);
        if (json_is_object(b) && json_object_size(b) == 0)
            return sc_parse_fail(v, "%s is empty: give a state or {\"state\", \"transitions\"}",
                                 what);
        if (is_value(b)) {
            if (json_object_set(want, key, b)) /* a state, or operators on it */
                return sc_parse_fail(v, "out of memory");
            continue;
        }
        if ((rc = sc_parse_keys(v, b, what, keys)))
            return rc;
        if (json_object_get(b, "state") && json_object_set(want, key, json_object_get(b, "state")))
            return sc_parse_fail(v, "out of memory");
        if (json_object_get(b, "transitions") &&
            (rc = breaker_transitions(v, who, json_object_get(b, "transitions"), want)))
            return rc;
    }
    return add_check(v, list, "breaker", "gateway", "/admin/breakers", json_incref(want));
}

/* "PROVIDER delivery" or "PROVIDER METHOD /path" into the journal's query. */
static cm_err_t journal_query(sc_parse_t *v, const char *key, char *out, size_t cap)
{
    char prov[33], method[17];
    const char *sp = strchr(key, ' ');
    size_t n = sp ? (size_t)(sp - key) : 0;
    if (!sp || n == 0 || n >= sizeof prov)
        goto bad;
    memcpy(prov, key, n);
    prov[n] = '\0';
    const char *rest = sp + 1;
    if (!strcmp(rest, "*")) { /* every request, whatever its route */
        snprintf(out, cap,
                 "/control/journal?provider=%s&kind=request&order=started&limit=" SC_JOURNAL_ALL,
                 prov);
        return CM_OK;
    }
    if (!strcmp(rest, "delivery")) {
        snprintf(out, cap,
                 "/control/journal?provider=%s&kind=delivery&order=started&limit=" SC_JOURNAL_ALL,
                 prov);
        return CM_OK;
    }
    sp = strchr(rest, ' ');
    n = sp ? (size_t)(sp - rest) : 0;
    if (!sp || n == 0 || n >= sizeof method || sp[1] != '/')
        goto bad;
    memcpy(method, rest, n);
    method[n] = '\0';
    char route[512];
    size_t r = (size_t)snprintf(route, sizeof route, "%s%%20", method);
    /* The route pattern as a query value: '/' and the pattern's own characters stay. */
    for (const char *c = sp + 1; *c && r + 4 < sizeof route; c++)
        r += (size_t)(strchr("%&#+ ?=", *c)
                          ? snprintf(route + r, sizeof route - r, "%%%02X", (unsigned char)*c)
                          : snprintf(route + r, sizeof route - r, "%c", *c));
    if (snprintf(out, cap,
                 "/control/"
                 "journal?provider=%s&kind=request&route=%s&order=started&limit=" SC_JOURNAL_ALL,
                 prov, route) >= (int)cap)
        return sc_parse_fail(v, "\"journal\": \"%.64s\" is too long", key);
    return CM_OK;
bad:
    return sc_parse_fail(v,
                         "\"journal\": \"%.64s\" must be \"PROVIDER METHOD /path\" (a route "
                         "pattern, as in fault rules), \"PROVIDER *\" or \"PROVIDER delivery\"",
                         key);
}

/* One route's expectation: a count (value or operators), or {"count", "statuses",
 * "gaps", "each"}. The entries' operators go into one operator object. */
static cm_err_t journal_want(sc_parse_t *v, const char *key, const json_t *x, json_t **out)
{
    static const char *const keys[] = {"count", "statuses", "gaps", "each", NULL};
    char what[96];
    json_t *want = json_object(), *entries = json_object();
    cm_err_t rc = CM_OK;
    *out = want;
    snprintf(what, sizeof what, "\"journal\".\"%.64s\"", key);
    if (!want || !entries) {
        json_decref(entries);
        return sc_parse_fail(v, "out of memory");
    }
    if (json_is_object(x) && json_object_size(x) == 0) {
        json_decref(entries);
        return sc_parse_fail(v, "%s is empty: give a count or {\"count\", \"statuses\", ...}",
                             what);
    }
    if (json_object_set_new(want, "dropped", json_integer(0))) {
        json_decref(entries);
        return sc_parse_fail(v, "out of memory");
    }
    if (is_value(x)) {
        json_decref(entries);
        return json_object_set(want, "count", (json_t *)x) ? sc_parse_fail(v, "out of memory")
                                                           : CM_OK;
    }
    if ((rc = sc_parse_keys(v, x, what, keys)))
        goto out;
    const json_t *count = json_object_get(x, "count"), *st = json_object_get(x, "statuses");
    const json_t *gaps = json_object_get(x, "gaps"), *each = json_object_get(x, "each");
    if (count && json_object_set(want, "count", (json_t *)count))
        goto oom;
    if (st) {
        if (!json_is_array(st) || json_array_size(st) == 0) {
            rc = sc_parse_fail(v, "%s.\"statuses\" must be the list of statuses in order", what);
            goto out;
        }
        /* One list against the other: a failure shows both in one line. */
        if (json_object_set(want, "entries.*.status", (json_t *)st))
            goto oom;
    }
    if (gaps) {
        json_t *g = json_is_object(gaps) ? json_deep_copy(gaps) : NULL;
        if (g && !json_object_get(g, "field"))
            json_object_set_new(g, "field", json_string("at_ms"));
        if (!g || json_object_set_new(entries, "$gaps", g)) {
            rc = sc_parse_fail(v, "%s.\"gaps\" must be {\"min\", \"max\", \"envelope\"} (as $gaps)",
                               what);
            goto out;
        }
    }
    if (each && json_object_set(entries, "$each", (json_t *)each))
        goto oom;
    /* Checked here too, so a mistake is named after what the author wrote. */
    char merr[CM_ERR_LEN];
    json_t *check = json_pack("{s:O}", "entries", entries);
    if (check && sc_match_validate(check, merr) != CM_OK) {
        json_decref(check);
        rc = sc_parse_fail(v, "%s: %s", what, merr);
        goto out;
    }
    json_decref(check);
    if (json_object_size(entries) && json_object_set(want, "entries", entries))
        goto oom;
    goto out;
oom:
    rc = sc_parse_fail(v, "out of memory");
out:
    json_decref(entries);
    return rc;
}

static cm_err_t verb_journal(sc_parse_t *v, const json_t *obj, const json_t *x, json_t *list)
{
    const char *key;
    json_t *e;
    (void)obj;
    if (!json_is_object(x) || json_object_size(x) == 0)
        return sc_parse_fail(v, "\"journal\" must map \"PROVIDER METHOD /path\" (or \"PROVIDER "
                                "delivery\") to a count or {\"count\", \"statuses\", \"gaps\", "
                                "\"each\"}");
    json_object_foreach((json_t *)x, key, e)
    {
        char path[768], name[128];
        json_t *want = NULL;
        cm_err_t rc = journal_query(v, key, path, sizeof path);
        if (!rc && (rc = journal_want(v, key, e, &want)) != CM_OK)
            json_decref(want);
        if (rc)
            return rc;
        snprintf(name, sizeof name, "journal: %.100s", key);
        if ((rc = add_check(v, list, name, "control", path, want)))
            return rc;
    }
    return CM_OK;
}

static const struct {
    const char *key;
    verb_fn fn;
} verbs[] = {
    {"effects", verb_effects},
    {"queue", verb_queue},
    {"saga", verb_state},
    {"call", verb_state},
    {"dead_letters", verb_dead_letters},
    {"breaker", verb_breaker},
    {"journal", verb_journal},
};

static cm_err_t parse_expect_step(sc_parse_t *v, const json_t *step, const json_t *obj,
                                  sc_step_t *s)
{
    static const char *const keys[] = {"effects",      "queue",   "saga",    "call", "state",
                                       "dead_letters", "breaker", "journal", NULL};
    cm_err_t rc;
    (void)step; /* everything is in the kind's own object */
    if (!json_is_object(obj) || json_object_size(obj) == 0)
        return sc_parse_fail(v, "\"expect\" must be an object: \"effects\", \"queue\", "
                                "\"saga\"/\"call\" with \"state\", \"dead_letters\", \"breaker\", "
                                "\"journal\"");
    if ((rc = sc_parse_keys(v, obj, "\"expect\"", keys)))
        return rc;
    if (json_object_get(obj, "state") && !json_object_get(obj, "saga") &&
        !json_object_get(obj, "call"))
        return sc_parse_fail(v, "\"expect\": \"state\" goes with a \"saga\" or a \"call\"");
    json_t *list = json_array();
    if ((rc = sc_parse_keep(v, list)))
        return rc;
    /* In the table's order, so the checks run in a fixed order whatever the file's. */
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        const json_t *x = json_object_get(obj, verbs[i].key);
        if (x && (rc = verbs[i].fn(v, obj, x, list)))
            return rc;
    }
    return sc_parse_children(v, list, ":expect", s);
}

static cm_err_t run_expect(sc_ctx_t *ctx, const sc_step_t *s, const char *label, const char *actor)
{
    (void)label;
    (void)actor; /* each check logs and fails as itself */
    return sc_step_run_children(ctx, s);
}

const sc_step_def_t sc_step_expect = {
    .key = "expect",
    .keys = (const char *const[]){"name", "expect", NULL},
    .parse = parse_expect_step,
    .run = run_expect,
};

/* ---- log -------------------------------------------------------------------------- */

/* A gateway's output worth reading is far below this; a runaway log is cut at it. */
#define SC_GW_LOG_MAX (256u << 20)

static cm_err_t parse_log_list(sc_parse_t *v, const json_t *body, const char *key)
{
    const json_t *l = json_object_get(body, key);
    if (!l)
        return CM_OK;
    if (!json_is_array(l) || json_array_size(l) == 0)
        return sc_parse_fail(v, "\"log\".\"%s\" must be a non-empty list of strings", key);
    for (size_t i = 0; i < json_array_size(l); i++) {
        const char *x = json_string_value(json_array_get(l, i));
        if (!x || !*x)
            return sc_parse_fail(v, "\"log\".\"%s\"[%zu] must be a non-empty string", key, i);
    }
    return CM_OK;
}

static cm_err_t parse_log(sc_parse_t *v, const json_t *obj, const json_t *body, sc_step_t *s)
{
    static const char *const keys[] = {"excludes", "contains", NULL};
    cm_err_t rc;
    (void)obj;
    if (!json_is_object(body) ||
        (!json_object_get(body, "excludes") && !json_object_get(body, "contains")))
        return sc_parse_fail(v, "\"log\" must be an object with \"excludes\" and/or "
                                "\"contains\" (lists of strings)");
    if ((rc = sc_parse_keys(v, body, "\"log\"", keys)) ||
        (rc = parse_log_list(v, body, "excludes")) || (rc = parse_log_list(v, body, "contains")))
        return rc;
    s->log = body;
    s->expect.present = 1; /* the step is an expectation */
    return CM_OK;
}

/* The 1-based line of text holding the match at, for the message. */
static size_t line_of(const char *text, const char *at)
{
    size_t n = 1;
    for (const char *p = text; p < at; p++)
        n += *p == '\n';
    return n;
}

static cm_err_t run_log(sc_ctx_t *ctx, const sc_step_t *s, const char *label, const char *actor)
{
    json_t *spec = NULL;
    cm_err_t rc = sc_step_expand_spec(ctx, label, s->log, &spec);
    if (rc)
        return rc;
    cm_buf_t log;
    cm_buf_init(&log, SC_GW_LOG_MAX);
    char err[CM_ERR_LEN] = "";
    int files = 0;
    for (int i = 0; i < SC_GW_MAX && !rc; i++) {
        const char *path = ctx->gws[i].log_path;
        if (!*path || (i > 0 && !ctx->gw_starts[i]))
            continue;
        rc = cm_buf_read_file(&log, path, err);
        files += rc == CM_OK;
    }
    if (rc || files == 0) {
        json_decref(spec);
        cm_buf_free(&log);
        return sc_fail(ctx, RP_FAILED, "log", "%s: the gateway's log cannot be read%s%s", label,
                       *err ? ": " : " (the runner did not start the gateway: attach mode)", err);
    }
    const char *text = log.data ? log.data : "";
    size_t lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    sc_log(ctx, actor, "gateway log: %zu bytes, %zu lines", log.len, lines);
    if (log.len == 0)
        rc = sc_fail(ctx, RP_FAILED, "expectation",
                     "%s: the gateway's log is empty (nothing to check)", label);
    const json_t *ex = json_object_get(spec, "excludes"), *in = json_object_get(spec, "contains");
    for (size_t i = 0; !rc && i < json_array_size(ex); i++) {
        const char *x = json_string_value(json_array_get(ex, i));
        const char *at = strstr(text, x);
        if (at) {
            const char *b = at;
            while (b > text && b[-1] != '\n')
                b--;
            rc = sc_fail(ctx, RP_FAILED, "expectation",
                         "%s: the gateway's log holds \"%s\" (line %zu)", label, x,
                         line_of(text, at));
            sc_fail_detail(ctx, "  line %zu: %.*s\n", line_of(text, at),
                           (int)(strcspn(b, "\n") < 2000 ? strcspn(b, "\n") : 2000), b);
        }
    }
    for (size_t i = 0; !rc && i < json_array_size(in); i++) {
        const char *x = json_string_value(json_array_get(in, i));
        if (!strstr(text, x))
            rc = sc_fail(ctx, RP_FAILED, "expectation",
                         "%s: the gateway's log does not hold \"%s\" (%zu lines read)", label, x,
                         lines);
    }
    json_decref(spec);
    cm_buf_free(&log);
    return rc;
}

const sc_step_def_t sc_step_log = {
    .key = "log",
    .keys = (const char *const[]){"name", "log", NULL},
    .parse = parse_log,
    .run = run_log,
};
