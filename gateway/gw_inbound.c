/* gw_inbound.c - webhook intake: verify the provider's signature on the raw bytes, store
 * the event and its job in one transaction, and only then acknowledge. Nothing slow
 * runs here: workers do the rest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_json.h"
#include "cm_log.h"
#include "cm_sig.h"
#include "gw_app.h"

/* Answers a refused signature. The detail names the check that failed (what a sender
 * needs to fix its clock or key) without revealing which keys exist. */
static void refuse_signature(cm_http_resp_t *resp, cm_err_t rc)
{
    const char *detail = "signature does not match";
    switch (rc) {
    case CM_ESIG_MISSING:
        detail = "x-retell-signature header missing";
        break;
    case CM_ESIG_MALFORMED:
        detail = "x-retell-signature header malformed";
        break;
    case CM_ESIG_STALE:
    case CM_ESIG_FUTURE:
        detail = "signature timestamp outside the accepted window";
        break;
    default:
        break;
    }
    cm_http_resp_problem(resp, 401, "Unauthorized", detail);
}

/* Retell keys of every tenant: the body names the agent, but we must not trust the
 * body before the signature is checked, so the signature picks the tenant. */
static const gw_tenant_t *verify_retell(const gw_config_t *cfg, const cm_http_req_t *req,
                                        const char *sig, cm_err_t *rc)
{
    int64_t now = cm_clock_now_ms();
    *rc = CM_ESIG_MISSING;
    for (size_t i = 0; i < cfg->ntenants; i++) {
        const gw_tenant_t *t = &cfg->tenants[i];
        cm_err_t r =
            cm_sig_retell_verify((const char *const *)t->retell_keys, t->nretell_keys, req->body,
                                 req->body_len, sig, now, cfg->retell_tolerance_ms);
        if (r == CM_OK) {
            *rc = CM_OK;
            return t;
        }
        /* Header problems are the same for every tenant: no point trying the others. */
        if (r != CM_ESIG_MISMATCH) {
            *rc = r;
            return NULL;
        }
        *rc = r;
    }
    return NULL;
}

static void h_retell(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    gw_app_t *app = ud;
    const char *sig = cm_http_req_header(req, "x-retell-signature");
    cm_err_t rc;
    const gw_tenant_t *t = verify_retell(app->cfg, req, sig, &rc);
    if (!t) {
        CM_WARN("gw.inbound", "retell webhook refused: %s", cm_strerror(rc));
        refuse_signature(resp, rc);
        return;
    }
    json_t *ev = NULL;
    char err[CM_ERR_LEN];
    if (cm_json_parse(req->body, req->body_len, app->cfg->body_limit, &ev, err) != CM_OK) {
        cm_http_resp_problem(resp, 400, "Bad Request", "body is not valid JSON");
        return;
    }
    const char *event = cm_json_str(ev, "event", NULL);
    const char *call_id = cm_json_str(ev, "call.call_id", NULL);
    const char *agent_id = cm_json_str(ev, "call.agent_id", NULL);
    if (!event || !*event || !call_id || !*call_id) {
        cm_http_resp_problem(resp, 400, "Bad Request",
                             "a Retell webhook needs \"event\" and \"call.call_id\"");
        json_decref(ev);
        return;
    }
    /* A valid signature from tenant A for an agent of tenant B means a misrouted or
     * abused key: refuse it rather than act for the wrong company. */
    const gw_tenant_t *owner = gw_config_tenant_by_agent(app->cfg, agent_id);
    if (owner && owner != t) {
        cm_http_resp_problem(resp, 401, "Unauthorized", "signature does not match the agent");
        json_decref(ev);
        return;
    }
    char key[512], headers[160];
    snprintf(key, sizeof key, "retell:%s:%s", call_id, event);
    snprintf(headers, sizeof headers, "{\"x-retell-signature\":\"%.120s\"}", sig);
    gw_event_in_t in = {
        .provider = "retell",
        .event_key = key,
        .event_type = event,
        .entity_id = call_id,
        .tenant_id = t->id,
        .headers = headers,
        .body = req->body,
        .body_len = req->body_len,
        .received_at_ms = cm_clock_now_ms(),
        /* Only call_analyzed drives work today; the others are kept for the record and
         * for the call state machine that comes with the inbound issue. */
        .job_kind = strcmp(event, "call_analyzed") == 0 ? "retell.call_analyzed" : NULL,
    };
    gw_ingest_t result;
    rc = gw_store_ingest(app->store, &in, &result);
    if (rc) {
        /* Not stored: a 503 makes Retell deliver again, so nothing is lost. */
        CM_ERROR("gw.inbound", "retell %s for %s not stored: %s", event, call_id, cm_strerror(rc));
        cm_http_resp_problem(resp, 503, "Service Unavailable", "event could not be stored");
        (void)cm_http_resp_header(resp, "Retry-After", "1");
    } else {
        CM_INFO("gw.inbound", "retell %s for %s %s", event, call_id,
                result == GW_INGEST_ACCEPTED ? "accepted" : "duplicate");
        if (result == GW_INGEST_ACCEPTED && in.job_kind)
            gw_worker_notify(app->worker);
        cm_http_resp_text(resp, 204, NULL, NULL);
    }
    json_decref(ev);
}

cm_err_t gw_inbound_routes(cm_http_server_t *srv, gw_app_t *app)
{
    return cm_http_server_route(srv, "POST /webhooks/retell", h_retell, app);
}
