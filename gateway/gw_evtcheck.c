/* gw_evtcheck.c - the event-type check (contract in gw_evtcheck.h). */
#include "gw_evtcheck.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_json.h"
#include "cm_log.h"
#include "gw_calcom.h"
#include "gw_periodic.h"

typedef enum { ET_UNKNOWN, ET_OK, ET_MISSING, ET_RENAMED, ET_REFUSED, ET_FAILING } et_state_t;

static const char *const state_names[] = {"unknown", "ok",      "missing",
                                          "renamed", "refused", "failing"};

typedef struct {
    const gw_tenant_t *t; /* borrowed from cfg */
    et_state_t state;     /* under mu, as is detail */
    char detail[384];
    char first_slug[64]; /* the slug seen at the first check: only the thread touches it */
} tenant_check_t;

struct gw_evtcheck {
    const gw_config_t *cfg;
    gw_outbound_t *ob;
    gw_obs_t *obs;
    gw_mfamily_t *ok;     /* gw_event_type_ok{tenant} */
    gw_mfamily_t *checks; /* gw_event_type_checks_total{result} */
    cm_http_client_t *http;
    cm_rand_t rng;
    pthread_mutex_t mu;
    tenant_check_t *tenants;
    size_t n;
    gw_periodic_t *timer;
};

/* The listed event type with this id, or NULL. */
static const json_t *find_type(const json_t *list, int64_t id)
{
    size_t i;
    const json_t *et;
    json_array_foreach(list, i, et)
    {
        if (cm_json_int(et, "id", 0) == id)
            return et;
    }
    return NULL;
}

/* "102 long-session, 103 team-consultation" (at most what fits). */
static void list_names(const json_t *list, char *out, size_t cap)
{
    size_t i, len = 0;
    const json_t *et;
    out[0] = '\0';
    json_array_foreach(list, i, et)
    {
        int n = snprintf(out + len, cap - len, "%s%lld %s", i ? ", " : "",
                         (long long)cm_json_int(et, "id", 0), cm_json_str(et, "slug", "?"));
        if (n < 0 || (size_t)n >= cap - len)
            break;
        len += (size_t)n;
    }
}

/* Reads the tenant's event types (its own, and its team's) into *all: GW_OUT_OK, or how
 * it failed with err and *status set. */
static gw_outcome_t read_types(gw_evtcheck_t *c, const gw_tenant_t *t, json_t **all, long *status,
                               char *err)
{
    gw_calcom_ctx_t cc = {
        .ob = c->ob, .http = c->http, .rng = &c->rng, .api_key = t->calcom_api_key};
    gw_outcome_t o = gw_calcom_event_types(&cc, 0, all, status, err);
    if (o == GW_OUT_OK && t->calcom_team_id) {
        json_t *team = NULL;
        o = gw_calcom_event_types(&cc, t->calcom_team_id, &team, status, err);
        if (o == GW_OUT_OK)
            json_array_extend(*all, team);
        json_decref(team);
    }
    if (o != GW_OUT_OK) {
        json_decref(*all);
        *all = NULL;
    }
    return o;
}

/* Judges one tenant's listed types against its configuration: the new state and detail. */
static et_state_t judge(tenant_check_t *tc, const json_t *all, char *detail, size_t cap)
{
    const gw_tenant_t *t = tc->t;
    const json_t *et = find_type(all, t->calcom_event_type_id);
    if (!et) {
        char names[200];
        list_names(all, names, sizeof names);
        char team[64] = "team event types not asked: a team's needs calcom.team_id";
        if (t->calcom_team_id)
            snprintf(team, sizeof team, "team %lld's included", (long long)t->calcom_team_id);
        snprintf(detail, cap,
                 "event type %lld of tenant %s is not among the event types Cal.com lists for "
                 "its key (%s; %s): deleted, or moved to another account; its bookings fail "
                 "until tenants[].calcom.event_type_id names one that exists",
                 (long long)t->calcom_event_type_id, t->id, names[0] ? names : "none", team);
        return ET_MISSING;
    }
    const char *slug = cm_json_str(et, "slug", "");
    const char *want = t->calcom_event_type_slug ? t->calcom_event_type_slug : tc->first_slug;
    if (!t->calcom_event_type_slug && !tc->first_slug[0])
        snprintf(tc->first_slug, sizeof tc->first_slug, "%s", slug);
    else if (strcmp(slug, want) != 0) {
        snprintf(detail, cap,
                 "event type %lld of tenant %s is now \"%s\" (slug %s), where %s %s: it was "
                 "renamed in Cal.com, and may no longer be what callers are booked into",
                 (long long)t->calcom_event_type_id, t->id, cm_json_str(et, "title", "?"), slug,
                 t->calcom_event_type_slug ? "the configuration expects" : "it was", want);
        return ET_RENAMED;
    }
    detail[0] = '\0';
    return ET_OK;
}

static void check_tenant(gw_evtcheck_t *c, tenant_check_t *tc)
{
    json_t *all = NULL;
    long status = 0;
    char err[CM_ERR_LEN] = "", detail[sizeof tc->detail];
    et_state_t st;
    gw_outcome_t o = read_types(c, tc->t, &all, &status, err);
    if (o == GW_OUT_OK) {
        st = judge(tc, all, detail, sizeof detail);
    } else if (o == GW_OUT_FAIL && (status == 401 || status == 403)) {
        st = ET_REFUSED;
        snprintf(detail, sizeof detail,
                 "Cal.com refuses tenant %s's API key (HTTP %ld) when listing its event types: "
                 "the key was revoked or lacks the permission; its bookings fail too",
                 tc->t->id, status);
    } else if (o == GW_OUT_FAIL) {
        st = ET_FAILING;
        snprintf(detail, sizeof detail, "cannot list tenant %s's event types: %s", tc->t->id, err);
    } else {
        /* Cal.com unreachable or failing for now: what we knew still holds. */
        gw_obs_count(c->checks, GW_LV("error"));
        CM_DEBUG("gw.evtcheck", "tenant %s: event types not read (%s); again at the next check",
                 tc->t->id, err);
        return;
    }
    json_decref(all);
    gw_obs_count(c->checks, GW_LV(st == ET_OK ? "ok" : "problem"));
    gw_gauge_set(gw_metrics_with(c->ok, GW_LV(tc->t->id)), st == ET_OK);
    pthread_mutex_lock(&c->mu);
    /* A new state, or a rename to yet another slug; not the other types coming and going. */
    int changed = st != tc->state || (st == ET_RENAMED && strcmp(detail, tc->detail) != 0);
    et_state_t was = tc->state;
    tc->state = st;
    snprintf(tc->detail, sizeof tc->detail, "%s", detail);
    pthread_mutex_unlock(&c->mu);
    /* Said once when it changes, not at every check. */
    if (changed && st != ET_OK)
        CM_WARN("gw.evtcheck", "%s", detail);
    else if (changed && was != ET_UNKNOWN)
        CM_INFO("gw.evtcheck", "tenant %s: event type %lld is as configured again", tc->t->id,
                (long long)tc->t->calcom_event_type_id);
}

static void pass(gw_periodic_t *timer, void *arg)
{
    gw_evtcheck_t *c = arg;
    (void)timer;
    for (size_t i = 0; i < c->n; i++)
        check_tenant(c, &c->tenants[i]);
}

static cm_err_t register_metrics(gw_evtcheck_t *c, char *err)
{
    cm_err_t rc = gw_metrics_gauge(c->obs->reg, "gw_event_type_ok",
                                   "1 when the tenant's configured Cal.com event type is listed "
                                   "as configured, 0 when missing, renamed or unreadable (absent "
                                   "until Cal.com first answered)",
                                   "tenant", &c->ok, err);
    if (!rc)
        rc = gw_metrics_counter(c->obs->reg, "gw_event_type_checks_total",
                                "Checks of a tenant's Cal.com event type, by result (error: "
                                "Cal.com could not be asked)",
                                "result", &c->checks, err);
    static const char *const results[] = {"ok", "problem", "error"};
    for (size_t i = 0; !rc && i < 3; i++)
        if (!gw_metrics_with(c->checks, GW_LV(results[i])))
            rc = CM_ENOMEM;
    return rc;
}

cm_err_t gw_evtcheck_start(const gw_config_t *cfg, gw_outbound_t *ob, gw_obs_t *obs,
                           int64_t wait_first_ms, gw_evtcheck_t **out, char *err)
{
    *out = NULL;
    size_t n = 0;
    for (size_t i = 0; i < cfg->ntenants; i++)
        n += cfg->tenants[i].calcom_api_key != NULL;
    if (!cfg->event_type_check_ms || !n || !ob->calcom.cfg || !ob->calcom.cfg->base_url)
        return CM_OK;
    gw_evtcheck_t *c = calloc(1, sizeof *c);
    if (!c)
        return CM_ENOMEM;
    c->cfg = cfg;
    c->ob = ob;
    c->obs = obs;
    pthread_mutex_init(&c->mu, NULL);
    cm_rand_seed(&c->rng, cfg->seed * 1000003u + 7919u);
    c->tenants = calloc(n, sizeof *c->tenants);
    c->http = cm_http_client_new();
    cm_err_t rc = c->tenants && c->http ? register_metrics(c, err) : CM_ENOMEM;
    for (size_t i = 0; !rc && i < cfg->ntenants; i++)
        if (cfg->tenants[i].calcom_api_key)
            c->tenants[c->n++].t = &cfg->tenants[i];
    if (!rc)
        rc = gw_periodic_start("gw-evtcheck", cfg->event_type_check_ms, pass, c, &c->timer, err);
    if (rc) {
        gw_evtcheck_stop(&c);
        return rc;
    }
    if (!gw_periodic_wait_first(c->timer, wait_first_ms))
        CM_WARN("gw.evtcheck",
                "Cal.com's event types not read within %lld ms; the check goes "
                "on in the background",
                (long long)wait_first_ms);
    *out = c;
    return CM_OK;
}

void gw_evtcheck_stop(gw_evtcheck_t **cp)
{
    gw_evtcheck_t *c = cp ? *cp : NULL;
    if (!c)
        return;
    gw_periodic_stop(&c->timer);
    cm_http_client_free(&c->http);
    free(c->tenants);
    pthread_mutex_destroy(&c->mu);
    free(c);
    *cp = NULL;
}

json_t *gw_evtcheck_json(gw_evtcheck_t *c, int *problem)
{
    *problem = 0;
    if (!c)
        return NULL;
    json_t *tenants = json_object();
    int unknown = 0;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; tenants && i < c->n; i++) {
        const tenant_check_t *tc = &c->tenants[i];
        json_t *v = json_pack("{s:s,s:I}", "status", state_names[tc->state], "event_type_id",
                              (json_int_t)tc->t->calcom_event_type_id);
        if (v && tc->detail[0])
            json_object_set_new(v, "detail", json_string(tc->detail));
        json_object_set_new(tenants, tc->t->id, v);
        *problem |= tc->state > ET_OK;
        unknown |= tc->state == ET_UNKNOWN;
    }
    pthread_mutex_unlock(&c->mu);
    return json_pack("{s:s,s:o}", "status",
                     *problem  ? "degraded"
                     : unknown ? "unknown"
                               : "ok",
                     "tenants", tenants ? tenants : json_object());
}
