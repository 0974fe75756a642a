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
#include "sc_parse.h"
#include "sc_metrics.h"
#include "sc_vars.h"
#include "rp_health.h"
#include "sc_yaml.h"

const char *const sc_builtin_vars[] = {
    "seed",        "tmp_dir",      "data_dir",    "gateway_url", "gateway_port",
    "control_url", "control_port", "retell_url",  "retell_port", "calcom_url",
    "calcom_port", "stripe_url",   "stripe_port", "now_ms",      "now_iso",
    "chaos_url",   "chaos_port",   "instance",    "run_id",      NULL,
};

const char *const sc_scenario_keys[] = {"name",    "description", "tags",  "seed",    "speed",
                                        "gateway", "env",         "chaos", "store",   "webhooks",
                                        "steps",   "finally",     "area",  "finding", NULL};

const char *const sc_link_names[SC_LINKS] = {"calcom", "stripe", "gateway"};
const char *const sc_proc_names[SC_PROCS] = {"gateway", "simulators", "chaos"};

static const char *const target_names[SC_TARGETS] = {"gateway", "control", "retell",
                                                     "calcom",  "stripe",  "chaos"};
static const char *const scheme_names[] = {"none", "retell", "calcom", "stripe", "std"};
static const char *const action_names[] = {"kill",    "stop",        "start",
                                           "restart", "expect_exit", "wait_exit"};

static const char *const pg_action_names[] = {"stop", "start", "restart"};

const char *sc_pg_action_name(sc_pg_action_t a)
{
    return (unsigned)a <= SC_PG_RESTART ? pg_action_names[a] : "?";
}

const char *sc_target_name(sc_target_t t)
{
    return (unsigned)t < SC_TARGETS ? target_names[t] : "?";
}

const char *sc_sign_scheme_name(sc_sign_scheme_t s)
{
    return (unsigned)s <= SC_SIGN_STD ? scheme_names[s] : "?";
}

const char *sc_gw_action_name(sc_gw_action_t a)
{
    return (unsigned)a <= SC_GW_WAIT_EXIT ? action_names[a] : "?";
}

/* "chaos": {"links": ["calcom", "stripe", "gateway"], "skew": {"gateway": "+6m"}}: which
 * connections go through the chaos proxy, and which processes' clocks are off. */
static cm_err_t parse_chaos_setup(sc_parse_t *v, const json_t *obj, sc_scenario_t *sc)
{
    static const char *const keys[] = {"links", "skew", NULL};
    cm_err_t rc;
    sc->chaos_links = 0;
    if (!obj)
        return CM_OK;
    snprintf(v->where, sizeof v->where, "chaos");
    if (!json_is_object(obj))
        return sc_parse_fail(v, "\"chaos\" must be an object {\"links\": [...], \"skew\": {...}}");
    if ((rc = sc_parse_keys(v, obj, "", keys)))
        return rc;
    const json_t *list = json_object_get(obj, "links"), *skew = json_object_get(obj, "skew");
    if (!list && !skew)
        return sc_parse_fail(v, "\"chaos\" needs \"links\", \"skew\" or both");
    if (list && (!json_is_array(list) || json_array_size(list) == 0))
        return sc_parse_fail(v, "\"links\" must be a non-empty list of calcom, stripe, gateway");
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *name = json_string_value(json_array_get(list, i));
        sc_link_t l = name ? sc_parse_link(name) : SC_LINKS;
        if (l == SC_LINKS)
            return sc_parse_fail(v, "\"links\"[%zu] must be one of calcom, stripe, gateway", i);
        if (sc->chaos_links & (1u << l))
            return sc_parse_fail(v, "\"links\"[%zu]: \"%s\" is listed twice", i, name);
        sc->chaos_links |= 1u << l;
    }
    if (skew) {
        if (!json_is_object(skew) || json_object_size(skew) == 0)
            return sc_parse_fail(v, "\"skew\" must be an object of process -> offset, e.g. "
                                    "{\"gateway\": \"+6m\"}");
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)skew, k, x)
        {
            int p = 0;
            while (p < SC_PROCS && strcmp(k, sc_proc_names[p]))
                p++;
            if (p == SC_PROCS)
                return sc_parse_fail(
                    v, "\"skew\": unknown process \"%s\" (gateway, simulators, chaos)", k);
            if (p == SC_PROC_CHAOS && !sc->chaos_links)
                return sc_parse_fail(v,
                                     "\"skew\".\"chaos\": no chaos proxy runs without \"links\"");
            char what[64];
            snprintf(what, sizeof what, "\"skew\".\"%s\"", k);
            if ((rc = sc_parse_offset(v, what, x, &sc->skew_ms[p])))
                return rc;
        }
    }
    *v->where = '\0';
    return CM_OK;
}

/* "store": "sqlite" | "postgres" | {"backend": "postgres", "server": "shared" | "own"}. */
static cm_err_t parse_store(sc_parse_t *v, const json_t *st, sc_scenario_t *sc)
{
    static const char *const keys[] = {"backend", "server", NULL};
    const char *backend = NULL, *server = NULL;
    cm_err_t rc;
    if (!st)
        return CM_OK;
    if (json_is_string(st)) {
        backend = json_string_value(st);
    } else if (json_is_object(st)) {
        snprintf(v->where, sizeof v->where, "store");
        if ((rc = sc_parse_keys(v, st, "", keys)) ||
            (rc = sc_parse_req_str(v, st, "backend", &backend)) ||
            (rc = sc_parse_opt_str(v, st, "server", &server)))
            return rc;
        *v->where = '\0';
    }
    if (!backend || (strcmp(backend, "sqlite") && strcmp(backend, "postgres")))
        return sc_parse_fail(v,
                             "\"store\" must be \"sqlite\" (the default) or \"postgres\", or an "
                             "object {\"backend\": \"postgres\", \"server\": \"own\"} (got %s%s%s)",
                             backend ? "\"" : "", backend ? backend : "another type",
                             backend ? "\"" : "");
    sc->store_pg = !strcmp(backend, "postgres");
    if (server && strcmp(server, "shared") && strcmp(server, "own"))
        return sc_parse_fail(v,
                             "\"store\": \"server\" must be \"shared\" (the default: the "
                             "one $GW_PG_URL names) or \"own\" (got \"%s\")",
                             server);
    if (server && !sc->store_pg)
        return sc_parse_fail(v, "\"store\": \"server\" is only for the postgres backend");
    sc->store_pg_own = server && !strcmp(server, "own");
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
    static const char *const gw_keys[] = {"config", "instances", NULL};
    sc_parse_t vc = {.sc = sc, .where = "", .err = err};
    sc_parse_t *v = &vc;
    const json_t *root = sc->root;
    cm_err_t rc;

    if (!json_is_object(root))
        return sc_parse_fail(v, "a scenario must be a JSON object");
    if ((rc = sc_parse_keys(v, root, "", sc_scenario_keys)) ||
        (rc = sc_parse_req_str(v, root, "name", &sc->name)) ||
        (rc = sc_parse_opt_str(v, root, "description", &sc->description)) ||
        (rc = sc_parse_opt_str(v, root, "area", &sc->area)) ||
        (rc = sc_parse_opt_str(v, root, "finding", &sc->finding)))
        return rc;
    if (sc->area) {
        if (rp_health_area_index(sc->area) < 0)
            return sc_parse_fail(v,
                                 "\"area\" \"%.64s\" is not one of the health report's areas "
                                 "(webhook_security, dedup, async_processing, retries_dlq, "
                                 "breakers, timeouts, availability_cache, saga_compensation, "
                                 "idempotency, privacy, monitoring)",
                                 sc->area);
    }
    /* A failing scenario with an area becomes a finding of the health report: it must say
     * what its failure means, and a finding without an area belongs nowhere. */
    if (!sc->area != !sc->finding || (sc->finding && !*sc->finding))
        return sc_parse_fail(v, "\"area\" and \"finding\" go together (the finding says what "
                                "a failure in that area means)");

    sc->tags = json_object_get(root, "tags");
    if (!json_is_array(sc->tags))
        return sc_parse_fail(v, "\"tags\" is required (a list of strings, may be empty)");
    for (size_t i = 0; i < json_array_size(sc->tags); i++)
        if (!json_is_string(json_array_get(sc->tags, i)))
            return sc_parse_fail(v, "\"tags\"[%zu] must be a string", i);

    const json_t *seed = json_object_get(root, "seed");
    if (!json_is_integer(seed) || json_integer_value(seed) < 0)
        return sc_parse_fail(v, "\"seed\" is required (a non-negative integer)");
    sc->seed = json_integer_value(seed);

    const json_t *speed = json_object_get(root, "speed");
    sc->speed = 1;
    if (speed) {
        if (!json_is_integer(speed) || json_integer_value(speed) < 1 ||
            json_integer_value(speed) > SC_SPEED_MAX)
            return sc_parse_fail(
                v, "\"speed\" must be a whole number from 1 to %d (the clock speed-up)",
                SC_SPEED_MAX);
        sc->speed = (int)json_integer_value(speed);
    }

    const json_t *gw = json_object_get(root, "gateway");
    if (!json_is_object(gw))
        return sc_parse_fail(v, "\"gateway\" is required (an object with \"config\")");
    snprintf(v->where, sizeof v->where, "gateway");
    if ((rc = sc_parse_keys(v, gw, "", gw_keys)) ||
        (rc = sc_parse_req_str(v, gw, "config", &sc->gateway_config)) ||
        (rc = sc_parse_file(v, "config", sc->gateway_config)))
        return rc;
    long long inst;
    if ((rc = sc_parse_opt_int(v, gw, "instances", 1, 1, SC_GW_MAX, &inst)))
        return rc;
    sc->gateway_instances = (int)inst;
    *v->where = '\0';

    if ((rc = sc_parse_opt_object(v, root, "env", &sc->env)))
        return rc;
    if (sc->env) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)sc->env, k, x)
        {
            if (!sc_vars_valid_name(k))
                return sc_parse_fail(v, "\"env\": \"%s\" is not a valid environment variable name",
                                     k);
            if (!json_is_string(x))
                return sc_parse_fail(v, "\"env\": \"%s\" must be a string", k);
        }
    }

    const json_t *hooks = json_object_get(root, "webhooks");
    if (hooks && (!json_is_array(hooks) || json_array_size(hooks) == 0))
        return sc_parse_fail(v, "\"webhooks\" must be a non-empty list of stripe, calcom");
    for (size_t i = 0; i < json_array_size(hooks); i++) {
        const char *p = json_string_value(json_array_get(hooks, i));
        sc_target_t t = p && !strcmp(p, "stripe")   ? SC_TO_STRIPE
                        : p && !strcmp(p, "calcom") ? SC_TO_CALCOM
                                                    : SC_TARGETS;
        if (t == SC_TARGETS)
            return sc_parse_fail(v,
                                 "\"webhooks\"[%zu] must be stripe or calcom (Retell's always "
                                 "go to the gateway)",
                                 i);
        sc->webhooks |= 1u << t;
    }
    if ((rc = parse_chaos_setup(v, json_object_get(root, "chaos"), sc)))
        return rc;
    if ((rc = parse_store(v, json_object_get(root, "store"), sc)))
        return rc;
    /* The webhooks are spread over the instances by the chaos proxy's gateway link (round
     * robin per connection), as a load balancer would. */
    if (sc->gateway_instances > 1 && !(sc->chaos_links & (1u << SC_LINK_GATEWAY))) {
        snprintf(v->where, sizeof v->where, "gateway");
        return sc_parse_fail(v,
                             "\"instances\": %d instances need the chaos proxy's gateway "
                             "link to spread the webhooks: add \"chaos\": {\"links\": "
                             "[\"gateway\"]}",
                             sc->gateway_instances);
    }

    const json_t *steps = json_object_get(root, "steps");
    if (!json_is_array(steps) || json_array_size(steps) == 0)
        return sc_parse_fail(v, "\"steps\" is required (a non-empty list)");
    if ((rc = sc_parse_steps(v, steps, "steps", "step[", &sc->steps, &sc->nsteps)))
        return rc;
    const json_t *fin = json_object_get(root, "finally");
    if (fin && (!json_is_array(fin) || json_array_size(fin) == 0))
        return sc_parse_fail(v, "\"finally\" must be a non-empty list of steps");
    if (fin &&
        (rc = sc_parse_steps(v, fin, "finally", "final[", &sc->finally_steps, &sc->nfinally)))
        return rc;
    *v->where = '\0';
    if (!sc_steps_expectations(sc->steps, sc->nsteps))
        return sc_parse_fail(
            v, "the scenario has no expectation: add \"expect\" to a request or webhook "
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
    steps_free(sc->finally_steps, sc->nfinally);
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
