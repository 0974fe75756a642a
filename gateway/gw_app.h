/* gw_app.h - what the gateway's HTTP handlers share: configuration, store and workers.
 * Everything here is borrowed from main, which creates it before the server starts and
 * frees it after the server has stopped; handlers may use it from any thread. */
#ifndef GW_APP_H
#define GW_APP_H

#include "cm_http_server.h"
#include "gw_config.h"
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
    gw_reconcile_t *reconcile; /* NULL: /admin/reconcile answers 503 */
} gw_app_t;

/* Registers POST /webhooks/{provider} routes (gw_inbound.c). */
cm_err_t gw_inbound_routes(cm_http_server_t *srv, gw_app_t *app) CM_WUR;
/* Registers /health/, /metrics and /admin/ routes (gw_admin.c). */
cm_err_t gw_admin_routes(cm_http_server_t *srv, gw_app_t *app) CM_WUR;

#endif
