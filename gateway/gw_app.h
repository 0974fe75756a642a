/* gw_app.h - what the gateway's HTTP handlers share: configuration, store and workers.
 * Everything here is borrowed from main, which creates it before the server starts and
 * frees it after the server has stopped; handlers may use it from any thread. */
#ifndef GW_APP_H
#define GW_APP_H

#include "cm_http_server.h"
#include "gw_config.h"
#include "gw_evtcheck.h"
#include "gw_obs.h"
#include "gw_outbound.h"
#include "gw_reconcile.h"
#include "gw_store.h"
#include "gw_worker.h"

typedef struct {
    const gw_config_t *cfg;
    gw_store_t *store;
    gw_worker_t *worker;
    gw_obs_t *obs;
    gw_outbound_t *ob;
    gw_evtcheck_t *evtcheck;   /* NULL when the event-type check is off */
    gw_reconcile_t *reconcile; /* NULL: /admin/reconcile answers 503 */
} gw_app_t;

/* Registers POST /webhooks/{provider} routes (gw_inbound.c). */
cm_err_t gw_inbound_routes(cm_http_server_t *srv, gw_app_t *app) CM_WUR;
/* Registers /health/, /metrics and /admin/ routes (gw_admin.c). */
cm_err_t gw_admin_routes(cm_http_server_t *srv, gw_app_t *app) CM_WUR;

/* Who called the admin API: a token's name and its tenant (NULL: every tenant). Both
 * borrowed from the configuration. */
typedef struct {
    const char *name;
    const char *tenant;
} gw_admin_who_t;

/* Checks the bearer token against admin_token and every admin_tokens entry (each in
 * constant time, all of them compared whichever matches). Returns 1 and fills *who, or
 * answers 401 on resp and returns 0. Any thread. */
int gw_admin_authorise(const gw_app_t *app, const cm_http_req_t *req, cm_http_resp_t *resp,
                       gw_admin_who_t *who);

/* Records an admin action that changed something (or tried to) in the audit log
 * (gw_store_audit_add): who, the action ("reconcile.run"), its target, the tenant it
 * concerned (NULL: all, or none in particular), its outcome ("ok", "not_found", ...) and a
 * detail (a JSON object's text of counts and ids, never personal data; may be NULL). The
 * time is cm_clock's. A record that cannot be stored is logged as an error: the action
 * has already happened and its answer stands. Any thread. */
void gw_admin_audit(const gw_app_t *app, const gw_admin_who_t *who, const char *action,
                    const char *target, const char *tenant, const char *outcome,
                    const char *detail);

#endif
