/* gw_outbound.h - every call the gateway makes to a provider goes through here: one
 * policy stack per provider (rate limit > circuit breaker > timeout > retry with full
 * jitter and a retry budget), with metrics for each attempt and W3C trace context.
 *
 * A gw_outbound_t is created at start-up from the configuration and shared by all worker
 * threads (its breakers, limiters and budgets are thread-safe); each thread brings its own
 * cm_http_client_t and cm_rand_t. Freed after the workers have stopped.
 */
#ifndef GW_OUTBOUND_H
#define GW_OUTBOUND_H

#include <stdint.h>

#include "cm_http_client.h"
#include "cm_rand.h"
#include "gw_breaker.h"
#include "gw_config.h"
#include "gw_obs.h"
#include "gw_policy.h"
#include "gw_ratelimit.h"
#include "gw_retry.h"
#include "gw_slotcache.h"

typedef struct {
    const char *name; /* "calcom", "stripe" */
    const gw_provider_t *cfg;
    gw_breaker_t *breaker;
    gw_ratelimit_t *rl;
    gw_retry_budget_t *budget;
    gw_obs_t *obs;
} gw_prov_rt_t;

typedef struct {
    gw_prov_rt_t calcom;
    gw_prov_rt_t stripe; /* breaker NULL when not configured */
    gw_slotcache_t *slots;
    gw_policy_clock_t clock;
    gw_obs_t *obs; /* borrowed */
} gw_outbound_t;

/* Builds the stacks from cfg (borrowed, as is obs). err says which setting is wrong. From
 * then until gw_outbound_free, obs's gw_breaker_state gauge is computed from these
 * breakers at each scrape (one gw_outbound_t per obs). */
cm_err_t gw_outbound_new(const gw_config_t *cfg, gw_obs_t *obs, gw_outbound_t **out,
                         char *err) CM_WUR;
void gw_outbound_free(gw_outbound_t **ob);

/* Moves breakers from open to half-open on time (also done lazily on each call). */
void gw_outbound_tick(gw_outbound_t *ob);

/* The runtime of a provider by name ("calcom", "stripe"), or NULL. */
gw_prov_rt_t *gw_outbound_provider(gw_outbound_t *ob, const char *name);

/* One HTTP operation. The request's timeouts are set per attempt from the provider's
 * configuration (write timeout when write is set). refused(resp) marks definitive
 * business answers (a taken slot) that must not be retried nor count as failures. */
typedef struct {
    const char *operation; /* metric label: "slots", "book", "charge", ... */
    int safe;              /* idempotent, or carries an Idempotency-Key */
    int write;
    const char *rl_key; /* rate-limit key: one bucket per provider API key */
    cm_http_request_t req;
    int (*refused)(const cm_http_response_t *resp);
    const char *traceparent; /* the job's trace; a child span is sent per call. May be NULL. */
} gw_call_t;

/* Runs the operation. *resp holds the last answer (free with cm_http_response_free, also
 * on failure); *out says how it ended. */
gw_policy_status_t gw_outbound_call(gw_outbound_t *ob, gw_prov_rt_t *p, cm_http_client_t *http,
                                    cm_rand_t *rng, const gw_call_t *call, cm_http_response_t *resp,
                                    gw_policy_outcome_t *out);

#endif
