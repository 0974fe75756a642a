/* sc_step_parts.c - the steps that act on the parts themselves: "gateway" (kill, stop,
 * start, restart, expect and wait for its exit), "postgres" (stop, start, restart the
 * scenario's own PostgreSQL server) and "chaos" (a link's faults on the chaos proxy). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_json.h"
#include "sc_duration.h"
#include "sc_http.h"
#include "sc_log.h"
#include "sc_parts.h"
#include "sc_pg_server.h"
#include "sc_proc.h"
#include "sc_step_def.h"
#include "sc_vars.h"

static cm_err_t run_gateway(sc_ctx_t *ctx, const sc_step_t *s, const char *label, const char *actor)
{
    (void)actor; /* the gateway logs as "gw", children as themselves */
    char err[CM_ERR_LEN];
    char *config = NULL;
    cm_err_t rc = CM_OK;
    if (s->config && sc_vars_expand(ctx->vars, s->config, &config, err) != CM_OK)
        return sc_step_fail_var(ctx, label, err);
    sc_log(ctx, "runner", "%s: %s the gateway", label, sc_gw_action_name(s->action));
    switch (s->action) {
    case SC_GW_KILL:
        rc = sc_parts_gateway_kill(ctx, s->instance, label);
        break;
    case SC_GW_STOP:
        rc = sc_parts_gateway_stop(ctx, s->instance, label);
        break;
    case SC_GW_RESTART:
        rc = sc_parts_gateway_stop(ctx, s->instance, label);
        if (!rc)
            rc = sc_parts_gateway_start(ctx, s->instance, config);
        break;
    case SC_GW_START:
        rc = sc_parts_gateway_start(ctx, s->instance, config);
        break;
    case SC_GW_EXPECT_EXIT:
        ctx->gw_may_exit[s->instance] = 1;
        break;
    case SC_GW_WAIT_EXIT:
        rc = sc_parts_gateway_wait_exit(ctx, s->instance, label, s->within_ms);
        break;
    }
    free(config);
    return rc;
}

/* Stops (immediately, as a crash), starts or restarts the scenario's own PostgreSQL
 * server through ci/pg; the gateways are left alone to notice (and to reconnect). */
static cm_err_t run_postgres(sc_ctx_t *ctx, const sc_step_t *s, const char *label,
                             const char *actor)
{
    (void)actor; /* the server's lines are the "pg" actor's */
    char err[CM_ERR_LEN], log[PATH_MAX + 16];
    const char *ci_pg = ctx->opts->ci_pg;
    snprintf(log, sizeof log, "%s/ci-pg.log", ctx->tmpdir);
    sc_log(ctx, "runner", "%s: %s the PostgreSQL server", label, sc_pg_action_name(s->pg_action));
    int64_t t = cm_clock_mono_ms();
    cm_err_t rc = CM_OK;
    if (s->pg_action != SC_PG_START) {
        rc = sc_pg_server_halt(&ctx->pg_server, ci_pg, log, err);
        if (!rc)
            sc_log(ctx, "pg", "stopped (immediate shutdown) in %lld ms",
                   (long long)(cm_clock_mono_ms() - t));
    }
    if (!rc && s->pg_action != SC_PG_STOP) {
        t = cm_clock_mono_ms();
        rc = sc_pg_server_resume(&ctx->pg_server, ci_pg, log, err);
        if (!rc)
            sc_log(ctx, "pg", "started again in %lld ms (same port and data)",
                   (long long)(cm_clock_mono_ms() - t));
    }
    if (rc) {
        sc_fail(ctx, RP_FAILED, rc == CM_ESTATE ? "invalid" : "process", "%s: %s", label, err);
        char *tail = sc_proc_log_tail(log, SC_LOG_TAIL_LINES, "  ");
        sc_fail_detail(ctx, "last lines of %s:\n%s", log, tail ? tail : "  (cannot read it)\n");
        free(tail);
    }
    return rc;
}

/* Replaces one link's faults at the chaos proxy; the proxy validates each fault and its
 * 400 names the bad field, which the failure shows. */
static cm_err_t run_chaos(sc_ctx_t *ctx, const sc_step_t *s, const char *label, const char *actor)
{
    char err[CM_ERR_LEN], path[64], shown[SC_HTTP_SHOW + 128];
    json_t *faults = NULL;
    if (sc_vars_expand_json(ctx->vars, s->faults, &faults, err) != CM_OK)
        return sc_step_fail_var(ctx, label, err);
    json_t *doc = json_pack("{s:o}", "faults", faults);
    snprintf(path, sizeof path, "/links/%s/faults", sc_link_names[s->link]);
    sc_answer_t a;
    cm_err_t rc =
        doc ? sc_http_send_json(ctx, actor, SC_TO_CHAOS, "PUT", path, doc, &a) : CM_ENOMEM;
    json_decref(doc);
    if (rc)
        return sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
    if (a.transport != CM_OK || a.status != 200)
        rc = sc_fail(ctx, RP_FAILED, a.transport ? "transport" : "chaos",
                     "%s: setting the faults of link %s: expected 200, got %s", label,
                     sc_link_names[s->link], sc_answer_show(&a, shown, sizeof shown));
    else
        sc_log(ctx, "chaos", "link %s: %zu fault(s) set", sc_link_names[s->link],
               json_array_size(s->faults));
    /* The proxy still takes the old fault form for a release and says how to write it. */
    const json_t *old = a.json ? json_object_get(a.json, "deprecated") : NULL;
    for (size_t i = 0; !rc && i < json_array_size(old); i++) {
        const json_t *n = json_array_get(old, i);
        char *note = json_is_string(n) ? NULL : cm_json_dumps(n);
        sc_log(ctx, "chaos", "warning: %s",
               json_is_string(n) ? json_string_value(n)
               : note            ? note
                                 : "?");
        free(note);
    }
    sc_answer_free(&a);
    return rc;
}

static cm_err_t parse_gateway(sc_parse_t *v, const json_t *step, const json_t *obj, sc_step_t *s)
{
    (void)step; /* everything is in the kind's own object */
    static const char *const keys[] = {"action", "config", "within", "instance", NULL};
    const char *action;
    cm_err_t rc;
    if (!json_is_object(obj))
        return sc_parse_fail(v, "\"gateway\" must be an object {\"action\": ...}");
    if ((rc = sc_parse_keys(v, obj, "\"gateway\"", keys)) ||
        (rc = sc_parse_req_str(v, obj, "action", &action)) ||
        (rc = sc_parse_opt_str(v, obj, "config", &s->config)) ||
        (rc = sc_parse_within(v, obj, "within", SC_WAIT_DEFAULT_MS, &s->within_ms)))
        return rc;
    int found = 0;
    for (int i = SC_GW_KILL; i <= SC_GW_WAIT_EXIT && !found; i++)
        if (!strcmp(action, sc_gw_action_name((sc_gw_action_t)i))) {
            s->action = (sc_gw_action_t)i;
            found = 1;
        }
    if (!found)
        return sc_parse_fail(v,
                             "\"action\" must be one of kill, stop, start, restart, expect_exit, "
                             "wait_exit (got \"%s\")",
                             action);
    if (s->config && s->action != SC_GW_START && s->action != SC_GW_RESTART)
        return sc_parse_fail(v, "\"config\" is only for start and restart");
    long long inst;
    if ((rc = sc_parse_opt_int(v, obj, "instance", 0, 0, v->sc->gateway_instances - 1, &inst)))
        return rc;
    s->instance = (int)inst;
    if (json_object_get(obj, "within") && s->action != SC_GW_WAIT_EXIT)
        return sc_parse_fail(v, "\"within\" is only for wait_exit");
    if (s->config && (rc = sc_parse_file(v, "config", s->config)))
        return rc;
    if (v->in_concurrent)
        return sc_parse_fail(v,
                             "a gateway step cannot run inside a repeat with \"concurrency\" > 1");
    return CM_OK;
}

/* {"action": "stop" | "start" | "restart"}, only with a server of the scenario's own. */
static cm_err_t parse_postgres(sc_parse_t *v, const json_t *step, const json_t *obj, sc_step_t *s)
{
    (void)step; /* everything is in the kind's own object */
    static const char *const keys[] = {"action", NULL};
    const char *action;
    cm_err_t rc;
    if (!json_is_object(obj))
        return sc_parse_fail(v, "\"postgres\" must be an object {\"action\": ...}");
    if ((rc = sc_parse_keys(v, obj, "\"postgres\"", keys)) ||
        (rc = sc_parse_req_str(v, obj, "action", &action)))
        return rc;
    int found = 0;
    for (int i = SC_PG_STOP; i <= SC_PG_RESTART && !found; i++)
        if (!strcmp(action, sc_pg_action_name((sc_pg_action_t)i))) {
            s->pg_action = (sc_pg_action_t)i;
            found = 1;
        }
    if (!found)
        return sc_parse_fail(v, "\"action\" must be one of stop, start, restart (got \"%s\")",
                             action);
    /* The shared server of `ci/pg run` serves other scenarios at the same time. */
    if (!v->sc->store_pg_own)
        return sc_parse_fail(v, "a postgres step needs a server of the scenario's own: "
                                "\"store\": {\"backend\": \"postgres\", \"server\": \"own\"}");
    if (v->in_concurrent)
        return sc_parse_fail(v,
                             "a postgres step cannot run inside a repeat with \"concurrency\" > 1");
    return CM_OK;
}

/* {"link": "calcom", "faults": [...]}: the fault objects are the proxy's to validate (its
 * answer names the bad field); here only the shape, so a typo fails before anything runs. */
static cm_err_t parse_chaos(sc_parse_t *v, const json_t *step, const json_t *obj, sc_step_t *s)
{
    (void)step; /* everything is in the kind's own object */
    static const char *const keys[] = {"link", "faults", NULL};
    const char *link;
    cm_err_t rc;
    if (!json_is_object(obj))
        return sc_parse_fail(v, "\"chaos\" must be an object {\"link\": ..., \"faults\": [...]}");
    if ((rc = sc_parse_keys(v, obj, "\"chaos\"", keys)) ||
        (rc = sc_parse_req_str(v, obj, "link", &link)))
        return rc;
    s->link = sc_parse_link(link);
    if (s->link == SC_LINKS || !(v->sc->chaos_links & (1u << s->link)))
        return sc_parse_fail(v, "\"link\": \"%s\" is not one of the scenario's \"chaos\" links",
                             link);
    s->faults = json_object_get(obj, "faults");
    if (!json_is_array(s->faults))
        return sc_parse_fail(
            v, "\"faults\" is required (a list of fault objects; [] clears the link)");
    for (size_t i = 0; i < json_array_size(s->faults); i++) {
        const json_t *f = json_array_get(s->faults, i);
        if (!json_is_object(f) || !json_object_size(f))
            return sc_parse_fail(
                v, "\"faults\"[%zu] must be a fault object such as {\"latency\": \"100ms\"}", i);
    }
    return CM_OK;
}

const sc_step_def_t sc_step_gateway = {
    .key = "gateway",
    .keys = (const char *const[]){"name", "gateway", NULL},
    .parse = parse_gateway,
    .run = run_gateway,
};

const sc_step_def_t sc_step_postgres = {
    .key = "postgres",
    .keys = (const char *const[]){"name", "postgres", NULL},
    .parse = parse_postgres,
    .run = run_postgres,
};

const sc_step_def_t sc_step_chaos = {
    .key = "chaos",
    .keys = (const char *const[]){"name", "chaos", NULL},
    .parse = parse_chaos,
    .run = run_chaos,
};
