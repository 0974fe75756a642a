/* sc_attach.c - scoped counts and undo for scenarios on shared parts (see sc_attach.h). */
#include "sc_attach.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_json.h"
#include "sc_log.h"
#include "sc_signal.h"

/* How long a scenario waits at its start for the gateway to finish what an earlier one
 * left, and how often it looks (as a "wait" step polls). */
#define SC_ATTACH_IDLE_MS 10000
#define SC_ATTACH_POLL_MS 20

/* A since that no record has reached: the journal answers its totals and no entry. */
#define SC_SINCE_NONE "9000000000000000000"

static const char *const brk_names[] = {"calcom", "stripe"};
/* The gateway's queue counts that only grow with its history; "pending" and "running" are
 * states, left as they are. */
static const char *const queue_totals[3] = {"done", "dead", "discarded"};

static int has_gateway_step(const sc_step_t *steps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (steps[i].kind == SC_STEP_GATEWAY ||
            has_gateway_step(steps[i].children, steps[i].nchildren))
            return 1;
    return 0;
}

/* The same file, however the two paths are written. */
static int same_file(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    if (!realpath(a, ra) || !realpath(b, rb))
        return !strcmp(a, b);
    return !strcmp(ra, rb);
}

/* A path on our gateway that only our gateway has: its admin API or its metrics. */
static int ours_only_path(const char *path)
{
    return path && (!strncmp(path, "/admin/", 7) || !strcmp(path, "/admin") ||
                    !strncmp(path, "/metrics", 8));
}

/* 1 when a string anywhere in v names the admin token. */
static int names_admin_token(const json_t *v)
{
    const char *k;
    size_t i;
    json_t *x;
    if (json_is_string(v))
        return strstr(json_string_value(v), "${admin_token") != NULL;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, x)
        {
            if (strstr(k, "${admin_token") || names_admin_token(x))
                return 1;
        }
    }
    if (json_is_array(v))
        json_array_foreach(v, i, x) if (names_admin_token(x)) return 1;
    return 0;
}

/* The first step (nested ones included) that needs our gateway's own API: a request or
 * poll of /admin/ or /metrics on the gateway (the "expect" checks queue, saga, call,
 * dead_letters and breaker and the waits on them are such requests once loaded), the
 * admin token sent to it ("auth": true), or a check on Prometheus metrics. what says
 * which (cap bytes). NULL when none does. */
static const sc_step_t *needs_our_api(const sc_step_t *steps, size_t n, char *what, size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        const sc_step_t *s = &steps[i];
        int req = s->kind == SC_STEP_REQUEST || s->kind == SC_STEP_WAIT;
        if (req && s->req.to == SC_TO_GATEWAY && ours_only_path(s->req.path)) {
            snprintf(what, cap, "%s %s", s->req.method ? s->req.method : "GET", s->req.path);
            return s;
        }
        if (req && s->req.to == SC_TO_GATEWAY && s->req.auth == 1) {
            snprintf(what, cap, "the admin token (\"auth\": true) on %s", s->req.path);
            return s;
        }
        if (s->expect.metrics) {
            snprintf(what, cap, "a check on /metrics (\"metrics\")");
            return s;
        }
        const sc_step_t *inner = needs_our_api(s->children, s->nchildren, what, cap);
        if (inner)
            return inner;
    }
    return NULL;
}

/* The first "gateway" step (nested ones included) that starts the gateway on a config of
 * its own, or NULL. */
static const sc_step_t *other_config_step(const sc_step_t *steps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (steps[i].kind == SC_STEP_GATEWAY && steps[i].config)
            return &steps[i];
        const sc_step_t *inner = other_config_step(steps[i].children, steps[i].nchildren);
        if (inner)
            return inner;
    }
    return NULL;
}

/* The scenario's top-level file and its includes: where a ${admin_token} would be. */
static int scenario_names_admin_token(const sc_scenario_t *sc)
{
    return names_admin_token(json_object_get(sc->root, "steps")) ||
           names_admin_token(json_object_get(sc->root, "finally")) ||
           names_admin_token(sc->included);
}

/* Why sc cannot run against a gateway that is not ours (--gateway-cmd), given what it
 * shares with attach mode (below); NULL when it can. Kill, stop and start work on it (the
 * runner starts it), and so do the chaos proxy, clock speed-ups and skews (libfaketime is
 * preloaded into the command as into our gateway). */
static const char *foreign_unsuitable(const sc_scenario_t *sc, char *why, size_t cap)
{
    char what[600];
    const sc_step_t *s = needs_our_api(sc->steps, sc->nsteps, what, sizeof what);
    if (!s)
        s = needs_our_api(sc->finally_steps, sc->nfinally, what, sizeof what);
    if (s) {
        snprintf(why, cap,
                 "not run: %s needs our gateway's own API (%s), which the contract does not ask "
                 "of a gateway under --gateway-cmd",
                 s->loc, what);
        return why;
    }
    if (scenario_names_admin_token(sc)) {
        snprintf(why, cap,
                 "not run: it sends our gateway's admin token (${admin_token}); a gateway under "
                 "--gateway-cmd has none");
        return why;
    }
    if (sc->store_pg) {
        snprintf(why, cap,
                 "not run: written for our gateway on PostgreSQL (\"store\": \"postgres\"); a "
                 "gateway under --gateway-cmd keeps its data its own way");
        return why;
    }
    const sc_step_t *g = other_config_step(sc->steps, sc->nsteps);
    if (!g)
        g = other_config_step(sc->finally_steps, sc->nfinally);
    if (g) {
        snprintf(why, cap,
                 "not run: %s restarts the gateway on our config %s; a gateway under "
                 "--gateway-cmd has the contract environment only",
                 g->loc, g->config);
        return why;
    }
    return NULL;
}

const char *sc_attach_unsuitable(const sc_opts_t *o, const sc_scenario_t *sc, char *why, size_t cap)
{
    char cfg[PATH_MAX], err[SC_ERR_LEN];
    /* Both modes judge a gateway the runner did not configure; most reasons are shared. */
    const char *mode = o->attach ? "--attach" : "--gateway-cmd";
    if (!o->attach && !o->gateway_cmd)
        return NULL;
    int skewed = 0;
    for (int p = 0; p < SC_PROCS; p++)
        skewed |= sc->skew_ms[p] != 0;
    if (o->attach && (has_gateway_step(sc->steps, sc->nsteps) ||
                      has_gateway_step(sc->finally_steps, sc->nfinally)))
        snprintf(why, cap, "not run: --attach cannot kill, stop or start the gateway");
    else if (o->attach && sc->chaos_links)
        snprintf(why, cap, "not run: --attach does not start a chaos proxy");
    else if (o->attach && skewed)
        snprintf(why, cap,
                 "not run: --attach cannot skew the parts' clocks (\"chaos\": "
                 "{\"skew\"})");
    else if (sc->store_pg_own)
        snprintf(why, cap, "not run: %s does not start a PostgreSQL server", mode);
    else if (sc->gateway_instances > 1)
        snprintf(why, cap, "not run: %s does not start %d gateway instances", mode,
                 sc->gateway_instances);
    else if (o->attach && sc->speed > 1 && o->speed != 1)
        snprintf(why, cap,
                 "not run: --attach cannot speed up the parts' clocks (pass --speed "
                 "1 to run it in real time)");
    else if (sc->env && json_object_size(sc->env))
        snprintf(why, cap,
                 "not run: the gateway needs an environment of its own (\"env\"); "
                 "%s does not give it one",
                 mode);
    else if (sc_scenario_resolve(sc, sc->gateway_config, cfg, sizeof cfg, err) != CM_OK ||
             !same_file(cfg, o->attach_config))
        snprintf(why, cap,
                 o->attach ? "not run: written for the gateway config %s, the attached gateway "
                             "runs %s (--attach config=)"
                           : "not run: written for our gateway config %s, not the default %s "
                             "the contract stands for (--gateway-cmd)",
                 sc->gateway_config, o->attach_config);
    else if (o->gateway_cmd)
        return foreign_unsuitable(sc, why, cap);
    else
        return NULL;
    return why;
}

static int starts_with(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

/* The route part of a path (before '?'), compared whole. */
static int route_is(const char *path, const char *route)
{
    size_t n = strlen(route);
    return !strncmp(path, route, n) && (path[n] == '\0' || path[n] == '?');
}

static cm_err_t get_json(sc_ctx_t *ctx, const char *path, json_t **out)
{
    sc_http_req_t r = {.to = SC_TO_CONTROL, .method = "GET", .path = path};
    sc_answer_t a;
    char shown[SC_HTTP_SHOW + 128];
    *out = NULL;
    sc_http_do(ctx, "runner", &r, 1, &a);
    cm_err_t rc = CM_OK;
    if (a.transport != CM_OK || a.status != 200 || !json_is_object(a.json))
        rc = sc_fail(ctx, RP_ERRORED, "startup",
                     "attach: the simulators' control port (%s) did not answer GET %s with "
                     "200 and JSON: %s",
                     ctx->url[SC_TO_CONTROL], path, sc_answer_show(&a, shown, sizeof shown));
    else
        *out = json_incref(a.json);
    sc_answer_free(&a);
    return rc;
}

/* Waits (up to SC_ATTACH_IDLE_MS) for the gateway to have no job pending or running, so
 * that the work an earlier scenario left (its last job, a retry) does not land in this
 * one's counts, then notes its queue totals. Best effort: a gateway that does not answer
 * leaves the queue counts absolute (logged); the scenario's own steps will say more. */
static void queue_base(sc_ctx_t *ctx)
{
    sc_http_req_t r = {.to = SC_TO_GATEWAY, .method = "GET", .path = "/admin/queue", .auth = 1};
    sc_answer_t a;
    char shown[SC_HTTP_SHOW + 128];
    int64_t until = cm_clock_mono_ms() + SC_ATTACH_IDLE_MS;
    for (;;) {
        sc_http_do(ctx, "runner", &r, 1, &a);
        int answered = a.transport == CM_OK && a.status == 200 && json_is_object(a.json);
        int idle = answered && cm_json_int(a.json, "pending", 1) == 0 &&
                   cm_json_int(a.json, "running", 1) == 0;
        if (idle || !answered || sc_signal_caught() || cm_clock_mono_ms() >= until)
            break;
        sc_answer_free(&a);
        cm_clock_sleep_ms(SC_ATTACH_POLL_MS);
    }
    if (a.transport == CM_OK && a.status == 200 && json_is_object(a.json)) {
        long long pending = cm_json_int(a.json, "pending", 0),
                  running = cm_json_int(a.json, "running", 0);
        if (pending || running)
            sc_log(ctx, "runner",
                   "attach: the gateway still has %lld job(s) pending, %lld running after %d "
                   "ms: what they do may count in this scenario",
                   pending, running, SC_ATTACH_IDLE_MS);
        for (int k = 0; k < 3; k++)
            ctx->base_queue[k] = cm_json_int(a.json, queue_totals[k], 0);
        ctx->queue_scoped = 1;
        sc_log(ctx, "runner",
               "attach: the gateway's queue had done %lld, dead %lld, discarded %lld: its "
               "counts are taken from here on",
               ctx->base_queue[0], ctx->base_queue[1], ctx->base_queue[2]);
    } else {
        sc_log(ctx, "runner", "attach: GET /admin/queue: %s: queue counts stay absolute",
               sc_answer_show(&a, shown, sizeof shown));
    }
    sc_answer_free(&a);
}

cm_err_t sc_attach_begin(sc_ctx_t *ctx, sc_undo_t *undo)
{
    json_t *j = NULL, *e = NULL;
    ctx->undo = undo;
    /* The gateway first: the simulators' records of what it still does belong before the
     * baselines. */
    queue_base(ctx);
    if (!*ctx->url[SC_TO_CONTROL]) {
        sc_log(ctx, "runner",
               "attach: no control= URL: journal and effects counts are the simulators' "
               "totals, fault rules are not undone");
        return CM_OK;
    }
    cm_err_t rc = get_json(ctx, "/control/journal?limit=1&since=" SC_SINCE_NONE, &j);
    if (!rc)
        rc = get_json(ctx, "/control/effects", &e);
    if (!rc) {
        ctx->base_journal_seq = cm_json_int(j, "last_seq", 0);
        ctx->base_effect_dropped = cm_json_int(e, "dropped", 0);
        /* The ledger only grows (sim_journal.h): its highest seq is where this scenario's
         * effects begin. */
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(e, "effects"), i, x)
        {
            long long seq = cm_json_int(x, "seq", 0);
            if (seq > ctx->base_effect_seq)
                ctx->base_effect_seq = seq;
        }
        ctx->scoped = 1;
        sc_log(ctx, "runner",
               "attach: counts from here on: journal after seq %lld, effects after seq %lld",
               ctx->base_journal_seq, ctx->base_effect_seq);
    }
    json_decref(j);
    json_decref(e);
    return rc;
}

const char *sc_attach_path(const sc_ctx_t *ctx, const sc_http_req_t *r, char *out, size_t cap)
{
    if (!ctx->scoped || r->to != SC_TO_CONTROL || strcmp(r->method, "GET") ||
        !route_is(r->path, "/control/journal") || strstr(r->path, "since="))
        return r->path;
    if (snprintf(out, cap, "%s%csince=%lld", r->path, strchr(r->path, '?') ? '&' : '?',
                 ctx->base_journal_seq) >= (int)cap)
        return r->path;
    return out;
}

/* Replaces a's body with its JSON, after a rewrite (the diagnosis shows what was judged). */
static void redump(sc_answer_t *a)
{
    char *text = cm_json_dumps(a->json);
    if (!text)
        return;
    free(a->body);
    a->body = text;
    a->body_len = strlen(text);
}

static void scope_effects(const sc_ctx_t *ctx, sc_answer_t *a)
{
    json_t *list = json_object_get(a->json, "effects");
    json_t *kept = json_array();
    if (!json_is_array(list) || !kept) {
        json_decref(kept);
        return;
    }
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x)
    {
        if (cm_json_int(x, "seq", 0) > ctx->base_effect_seq && json_array_append(kept, x)) {
            json_decref(kept);
            return;
        }
    }
    long long dropped = cm_json_int(a->json, "dropped", 0) - ctx->base_effect_dropped;
    if (json_object_set_new(a->json, "count", json_integer((json_int_t)json_array_size(kept))) ||
        json_object_set_new(a->json, "dropped", json_integer(dropped > 0 ? dropped : 0)) ||
        json_object_set_new(a->json, "effects", kept))
        return;
    redump(a);
}

/* The journal's ring drops its oldest records, seq 1 to "dropped": those after the
 * scenario's start that it lost are the ones past the baseline. */
static void scope_journal(const sc_ctx_t *ctx, sc_answer_t *a)
{
    long long dropped = cm_json_int(a->json, "dropped", 0) - ctx->base_journal_seq;
    if (json_object_set_new(a->json, "dropped", json_integer(dropped > 0 ? dropped : 0)))
        return;
    redump(a);
}

static void note_faults(sc_undo_t *u, const json_t *answer)
{
    pthread_mutex_lock(&u->lock);
    const json_t *ids = json_object_get(answer, "ids");
    const json_t *one = json_object_get(answer, "id");
    size_t n = json_is_array(ids) ? json_array_size(ids) : json_is_integer(one) ? 1 : 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *id = json_is_array(ids) ? json_array_get(ids, i) : one;
        if (u->nfaults < SC_UNDO_FAULTS)
            u->fault_ids[u->nfaults++] = json_integer_value(id);
        else
            u->faults_lost = 1;
    }
    pthread_mutex_unlock(&u->lock);
}

void sc_attach_answer(sc_ctx_t *ctx, const sc_http_req_t *r, sc_answer_t *a)
{
    if (a->transport != CM_OK || a->status < 200 || a->status > 299)
        return;
    if (ctx->scoped && r->to == SC_TO_CONTROL && !strcmp(r->method, "GET") &&
        json_is_object(a->json)) {
        if (route_is(r->path, "/control/effects"))
            scope_effects(ctx, a);
        else if (route_is(r->path, "/control/journal"))
            scope_journal(ctx, a);
    }
    if (ctx->queue_scoped && r->to == SC_TO_GATEWAY && !strcmp(r->method, "GET") &&
        route_is(r->path, "/admin/queue") && json_is_object(a->json)) {
        for (int k = 0; k < 3; k++) {
            json_t *v = json_object_get(a->json, queue_totals[k]);
            if (json_is_integer(v))
                SC_BEST_EFFORT(json_object_set_new(
                    a->json, queue_totals[k],
                    json_integer(json_integer_value(v) - (json_int_t)ctx->base_queue[k])));
        }
        redump(a);
    }
    sc_undo_t *u = ctx->undo;
    if (!u)
        return;
    if (r->to == SC_TO_CONTROL && route_is(r->path, "/control/faults")) {
        if (!strcmp(r->method, "POST"))
            note_faults(u, a->json);
        else if (!strcmp(r->method, "DELETE")) {
            pthread_mutex_lock(&u->lock);
            u->nfaults = 0; /* every rule gone, the scenario's with them */
            u->faults_lost = 0;
            pthread_mutex_unlock(&u->lock);
        }
    }
    if (r->to == SC_TO_GATEWAY && !strcmp(r->method, "POST") &&
        starts_with(r->path, "/admin/breakers/")) {
        for (unsigned b = 0; b < 2; b++) {
            char p1[64], p2[64];
            snprintf(p1, sizeof p1, "/admin/breakers/%s/force-open", brk_names[b]);
            snprintf(p2, sizeof p2, "/admin/breakers/%s/disable", brk_names[b]);
            if (route_is(r->path, p1) || route_is(r->path, p2)) {
                pthread_mutex_lock(&u->lock);
                u->breakers |= 1u << b;
                pthread_mutex_unlock(&u->lock);
            }
        }
    }
}

/* One undo request; a refusal fails the scenario (the deployment is left changed). */
static void undo_request(sc_ctx_t *ctx, sc_target_t to, const char *method, const char *path,
                         int auth, long ok1, long ok2)
{
    sc_http_req_t r = {.to = to, .method = method, .path = path, .auth = auth};
    sc_answer_t a;
    char shown[SC_HTTP_SHOW + 128];
    sc_http_do(ctx, "undo", &r, 0, &a);
    if (a.transport != CM_OK || (a.status != ok1 && a.status != ok2))
        sc_fail(ctx, RP_FAILED, "cleanup",
                "undo: %s %s %s: expected %ld, got %s: the shared deployment is left changed",
                method, sc_target_name(to), path, ok1, sc_answer_show(&a, shown, sizeof shown));
    sc_answer_free(&a);
}

void sc_attach_undo(sc_ctx_t *ctx)
{
    sc_undo_t *u = ctx->undo;
    if (!u)
        return;
    char path[128];
    /* The scenario is over (workers joined): no lock needed, but taken for the record. */
    pthread_mutex_lock(&u->lock);
    size_t n = u->nfaults;
    int lost = u->faults_lost;
    unsigned breakers = u->breakers;
    pthread_mutex_unlock(&u->lock);
    if (lost) {
        sc_log(ctx, "undo", "more than %d fault rules added: deleting every rule", SC_UNDO_FAULTS);
        undo_request(ctx, SC_TO_CONTROL, "DELETE", "/control/faults", 0, 204, 204);
    } else {
        for (size_t i = 0; i < n; i++) {
            /* 404: the scenario removed it itself. */
            snprintf(path, sizeof path, "/control/faults/%lld", u->fault_ids[i]);
            undo_request(ctx, SC_TO_CONTROL, "DELETE", path, 0, 204, 404);
        }
    }
    for (unsigned b = 0; b < 2; b++) {
        if (!(breakers & (1u << b)))
            continue;
        snprintf(path, sizeof path, "/admin/breakers/%s/reset", brk_names[b]);
        undo_request(ctx, SC_TO_GATEWAY, "POST", path, 1, 200, 200);
    }
    pthread_mutex_lock(&u->lock);
    u->nfaults = 0;
    u->faults_lost = 0;
    u->breakers = 0;
    pthread_mutex_unlock(&u->lock);
}
