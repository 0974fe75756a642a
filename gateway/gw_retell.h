/* gw_retell.h - the gateway's Retell API client: the calls an agent has had
 * (POST /v3/list-calls) and one call in full (GET /v2/get-call/{call_id}).
 *
 * Retell talks to the gateway by webhooks; the gateway asks Retell only to catch what no
 * webhook brought (gw_reconcile: a webhook URL misconfigured in Retell's dashboard). Every
 * call goes through Retell's policy stack (gw_outbound, providers.retell): its own rate
 * limit, breaker, timeouts and retries, with provider="retell" in the metrics. Both
 * operations only read, so they are retried like any GET (list-calls is a POST by
 * Retell's design, but changes nothing). Outcomes: GW_RETELL_OK, GW_RETELL_NOTFOUND (404:
 * no such call), GW_RETELL_RETRY (transport error, timeout, 429, 5xx, breaker open, rate
 * limited), GW_RETELL_FAIL (anything else, providers.retell not configured included); err
 * (CM_ERR_LEN) says what happened. Thread-safe with one gw_retell_ctx_t per thread.
 */
#ifndef GW_RETELL_H
#define GW_RETELL_H

#include <jansson.h>
#include <stdint.h>

#include "gw_outbound.h"

typedef enum {
    GW_RETELL_OK = 0,
    GW_RETELL_NOTFOUND,
    GW_RETELL_RETRY,
    GW_RETELL_FAIL
} gw_retell_out_t;

const char *gw_retell_out_name(gw_retell_out_t o);

typedef struct {
    gw_outbound_t *ob;
    cm_http_client_t *http;
    cm_rand_t *rng;
    const char *api_key;     /* the tenant's Retell key (retell.api_keys[0]) */
    const char *traceparent; /* may be NULL */
    int64_t retry_in_ms;     /* out: a hint after GW_RETELL_RETRY, 0 when unknown */
    int unavailable;         /* out: the breaker or rate limiter refused; nothing was sent */
} gw_retell_ctx_t;

/* One page of the calls of agent_ids (nagents of them, borrowed) that started at or after
 * since_ms (filter_criteria.start_timestamp.lower_threshold), oldest first, at most limit
 * (1-1000); pagination_key (NULL for the first page) is the previous page's. On OK *page
 * is the answer, {"items":[call...],"has_more":bool,"pagination_key":...}, owned by the
 * caller (json_decref); NULL otherwise. */
gw_retell_out_t gw_retell_list_calls(gw_retell_ctx_t *c, const char *const *agent_ids,
                                     size_t nagents, int64_t since_ms, int limit,
                                     const char *pagination_key, json_t **page, char *err);

/* The call call_id in full (the object a call_analyzed webhook carries as "call"). On OK
 * *call is owned by the caller; NULL otherwise. A call id that is not a plain token
 * ([A-Za-z0-9_-], at most 127 bytes) is refused with GW_RETELL_FAIL, nothing sent. */
gw_retell_out_t gw_retell_get_call(gw_retell_ctx_t *c, const char *call_id, json_t **call,
                                   char *err);

#endif
