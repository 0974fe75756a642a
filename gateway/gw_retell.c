/* gw_retell.c - Retell's list-calls and get-call through the policy stack. */
#include "gw_retell.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_json.h"

const char *gw_retell_out_name(gw_retell_out_t o)
{
    static const char *const names[] = {"ok", "not_found", "retry", "fail"};
    return (unsigned)o < sizeof names / sizeof names[0] ? names[o] : "?";
}

/* Runs one request and parses a 200's JSON body into *ans. */
static gw_retell_out_t run(gw_retell_ctx_t *c, const char *op, const char *method, const char *path,
                           const char *body, json_t **ans, char *err)
{
    char url[768], auth[512];
    cm_http_response_t r;
    gw_policy_outcome_t po;
    gw_retell_out_t out;
    gw_prov_rt_t *p = gw_outbound_provider(c->ob, "retell");
    *ans = NULL;
    c->retry_in_ms = 0;
    c->unavailable = 0;
    if (!p) {
        cm_errf(err, "Retell is not configured (providers.retell)");
        return GW_RETELL_FAIL;
    }
    snprintf(url, sizeof url, "%s%s", p->cfg->base_url, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->api_key ? c->api_key : "");
    /* A GET carries only the key. */
    const char *hdrs[] = {auth, body ? "Content-Type: application/json" : NULL, NULL};
    gw_call_t call = {.operation = op,
                      .safe = 1, /* both only read */
                      .rl_key = c->api_key,
                      .traceparent = c->traceparent,
                      .req = {.method = method,
                              .url = url,
                              .headers = hdrs,
                              .body = body,
                              .body_len = body ? strlen(body) : 0}};
    gw_policy_status_t st = gw_outbound_call(c->ob, p, c->http, c->rng, &call, &r, &po);
    c->retry_in_ms = po.retry_in_ms;
    c->unavailable = st == GW_POL_BREAKER_OPEN || st == GW_POL_RATE_LIMITED;
    int answered = st == GW_POL_DONE || (st == GW_POL_FAILED && po.last.kind == GW_ATT_OK);
    if (!answered) {
        cm_errf(err, "Retell %s after %d attempt(s)%s%s", gw_policy_status_name(st), po.attempts,
                r.err[0] ? ": " : "", r.err);
        out = po.transient || c->unavailable ? GW_RETELL_RETRY : GW_RETELL_FAIL;
    } else if (r.status == 200) {
        out = cm_json_parse(r.body.data, r.body.len, r.body.toobig, ans, err) == CM_OK
                  ? GW_RETELL_OK
                  : GW_RETELL_RETRY;
    } else if (r.status == 404) {
        cm_errf(err, "Retell: no such call (HTTP 404)");
        out = GW_RETELL_NOTFOUND;
    } else {
        cm_errf(err, "Retell HTTP %ld: %.160s", r.status, r.body.data ? r.body.data : "");
        out = r.status == 429 || r.status >= 500 ? GW_RETELL_RETRY : GW_RETELL_FAIL;
    }
    cm_http_response_free(&r);
    return out;
}

gw_retell_out_t gw_retell_list_calls(gw_retell_ctx_t *c, const char *const *agent_ids,
                                     size_t nagents, int64_t since_ms, int limit,
                                     const char *pagination_key, json_t **page, char *err)
{
    json_t *agents = json_array();
    for (size_t i = 0; i < nagents; i++)
        json_array_append_new(agents, json_string(agent_ids[i]));
    json_t *req = json_pack("{s:{s:o,s:{s:I}},s:i,s:s}", "filter_criteria", "agent_id", agents,
                            "start_timestamp", "lower_threshold", (json_int_t)since_ms, "limit",
                            limit, "sort_order", "ascending");
    if (req && pagination_key)
        json_object_set_new(req, "pagination_key", json_string(pagination_key));
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    *page = NULL;
    if (!body) {
        cm_errf(err, "cannot encode the list-calls request");
        return GW_RETELL_FAIL;
    }
    json_t *ans = NULL;
    gw_retell_out_t out = run(c, "list_calls", "POST", "/v3/list-calls", body, &ans, err);
    free(body);
    if (out == GW_RETELL_OK && !json_is_array(json_object_get(ans, "items"))) {
        cm_errf(err, "Retell list-calls answer without \"items\"");
        json_decref(ans);
        ans = NULL;
        out = GW_RETELL_FAIL;
    }
    *page = ans;
    return out;
}

static int is_token(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
              (s[n] >= '0' && s[n] <= '9') || s[n] == '_' || s[n] == '-'))
            return 0;
    return n > 0 && n < 128;
}

gw_retell_out_t gw_retell_get_call(gw_retell_ctx_t *c, const char *call_id, json_t **call,
                                   char *err)
{
    char path[192];
    *call = NULL;
    if (!call_id || !is_token(call_id)) {
        cm_errf(err, "call id is not a plain token");
        return GW_RETELL_FAIL;
    }
    snprintf(path, sizeof path, "/v2/get-call/%s", call_id);
    json_t *ans = NULL;
    gw_retell_out_t out = run(c, "get_call", "GET", path, NULL, &ans, err);
    if (out == GW_RETELL_OK && strcmp(cm_json_str(ans, "call_id", ""), call_id)) {
        cm_errf(err, "Retell get-call answered another call");
        json_decref(ans);
        ans = NULL;
        out = GW_RETELL_FAIL;
    }
    *call = ans;
    return out;
}
