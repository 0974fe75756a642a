/* gw_outbound.h - every call the gateway makes to a provider goes through here: one
 * policy stack per provider and API key (rate limit > circuit breaker > timeout > retry
 * with full jitter and a retry budget), with metrics for each attempt and W3C trace
 * context.
 *
 * Isolation: each tenant brings its own Cal.com and Stripe keys, and a provider judges
 * each key on its own (a revoked key answers 401, a key over its quota 429, while the
 * others are served). So the breaker, the retry budget and the rate-limit bucket are kept
 * per API key (gw_key_rt_t): one tenant's failing key opens its own breaker and spends its
 * own budget, never the others'. Tenants configured with the same key share its runtime
 * (the provider sees one client). Each key takes the provider-wide settings
 * (providers.calcom / providers.stripe). Metrics and the admin API name a key by its
 * first tenant's id (label "tenant"), never by the key.
 *
 * A gw_outbound_t is created at start-up from the configuration and shared by all worker
 * threads (its breakers, limiters and budgets are thread-safe); each thread brings its own
 * cm_http_client_t and cm_rand_t. Freed after the workers have stopped.
 *
 * Several instances on one store (gw_outbound_share): the rate limits are taken from the
 * store's shared buckets, since a provider counts an API key's calls whichever instance
 * makes them, and a change of Cal.com availability seen by one instance empties every
 * instance's slot cache. Breakers stay per instance, by design (as Envoy's circuit
 * breakers are per Envoy): each guards the calls its own instance makes over its own
 * connections, trips within a few calls on what that instance sees (a broken route, a
 * bad DNS answer, a saturated pool on one host trips that one alone), and needs no round
 * trip to a database on every call, nor a database that works for calls to go out.
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
#include "gw_store.h"

struct gw_prov_rt;

/* The policy state of one API key of a provider. */
typedef struct {
    char *tenant;  /* label: the first tenant configured with the key (never the key) */
    char *api_key; /* owned copy; NULL for the runtime of unconfigured keys */
    gw_breaker_t *breaker;
    gw_retry_budget_t *budget;
    struct gw_prov_rt *prov;
    int used; /* the unconfigured-keys runtime: shown once a call used it (atomic) */
} gw_key_rt_t;

typedef struct gw_prov_rt {
    const char *name; /* "calcom", "stripe", "retell" */
    const gw_provider_t *cfg;
    /* One per distinct configured key, in the tenants' order, then one more (api_key
     * NULL, tenant "_unconfigured") for calls with a key no tenant has: a programming
     * slip or a test, kept apart from every tenant's. */
    gw_key_rt_t *keys;
    size_t nkeys;       /* configured keys, the extra one not counted */
    gw_ratelimit_t *rl; /* one bucket per API key (the key is the limiter's key) */
    gw_obs_t *obs;
    gw_mfamily_t *rl_fell; /* gw_outbound_t's rl_fell */
    int configured;        /* 0: the provider is not configured (no base_url) */
} gw_prov_rt_t;

typedef struct {
    gw_prov_rt_t calcom;
    gw_prov_rt_t stripe; /* breaker NULL when not configured */
    gw_prov_rt_t retell; /* breaker NULL when not configured (providers.retell) */
    gw_slotcache_t *slots;
    gw_policy_clock_t clock;
    gw_obs_t *obs;         /* borrowed */
    gw_store_t *store;     /* borrowed; set by gw_outbound_share, else NULL */
    gw_mfamily_t *rl_fell; /* gw_ratelimit_shared_fallbacks_total{provider} */
} gw_outbound_t;

/* Builds the stacks from cfg (borrowed, as is obs). err says which setting is wrong. From
 * then until gw_outbound_free, obs's gw_breaker_state gauge is computed from these
 * breakers at each scrape (one gw_outbound_t per obs). */
cm_err_t gw_outbound_new(const gw_config_t *cfg, gw_obs_t *obs, gw_outbound_t **out,
                         char *err) CM_WUR;
void gw_outbound_free(gw_outbound_t **ob);

/* Shares with the other instances on store (borrowed; must outlive ob): the providers'
 * rate limits come from the store's buckets (gw_store_rl_take; on a store that shares
 * nothing, SQLite, the limiters stay in the process), and the slot cache is emptied by
 * the other instances' notices (gw_store_on_notice) - of an event type, or all of it when
 * notices may have been missed. Once, at start-up, before the workers start. CM_ENOMEM
 * when the store cannot listen. gw_outbound_free undoes the registration. */
cm_err_t gw_outbound_share(gw_outbound_t *ob, gw_store_t *store) CM_WUR;

/* Cal.com availability of event_type_id changed (a booking made, moved or cancelled):
 * drops the event type's cached slots (for api_key, or every key when NULL) here, and
 * tells the other instances to drop theirs (all keys: a notice never carries a key). A
 * notice that cannot be sent is logged; the others' entries then live out their TTL. */
void gw_outbound_slots_changed(gw_outbound_t *ob, const char *api_key, int64_t event_type_id);

/* Moves breakers from open to half-open on time (also done lazily on each call). */
void gw_outbound_tick(gw_outbound_t *ob);

/* The runtime of a provider by name ("calcom", "stripe", "retell"), or NULL when there is
 * no such provider or it is not configured. */
gw_prov_rt_t *gw_outbound_provider(gw_outbound_t *ob, const char *name);

/* The runtime of api_key at p: the configured key's, or the shared runtime of keys no
 * tenant has (marked used). Never NULL. Any thread. */
gw_key_rt_t *gw_outbound_key(gw_prov_rt_t *p, const char *api_key);

/* The i-th key runtime of p to show (admin, metrics): the configured keys, then the
 * unconfigured-keys runtime once used; NULL past the end. */
gw_key_rt_t *gw_outbound_key_at(gw_prov_rt_t *p, size_t i);

/* The runtime whose label is tenant (a key's first tenant), or whose key tenant uses
 * (a tenant sharing another's key); NULL when the tenant has no key at p. */
gw_key_rt_t *gw_outbound_key_of_tenant(gw_prov_rt_t *p, const gw_config_t *cfg, const char *tenant);

/* One HTTP operation. The request's timeouts are set per attempt from the provider's
 * configuration (write timeout when write is set). refused(resp) marks definitive
 * business answers (a taken slot) that must not be retried nor count as failures. */
typedef struct {
    const char *operation; /* metric label: "slots", "book", "charge", ... */
    int safe;              /* idempotent, or carries an Idempotency-Key */
    int write;
    /* The API key the call is made with: picks the key's runtime (breaker, budget) and
     * its rate-limit bucket. */
    const char *rl_key;
    cm_http_request_t req;
    int (*refused)(const cm_http_response_t *resp);
    /* The caller's span (gw_span_t.traceparent): the operation gets a child span, each
     * attempt a child of that, whose context goes out in the attempt's traceparent
     * header. May be NULL: a new trace. */
    const char *traceparent;
} gw_call_t;

/* Runs the operation through the policy stack of call->rl_key at p. *resp holds the last
 * answer (free with cm_http_response_free, also on failure); *out says how it ended. */
gw_policy_status_t gw_outbound_call(gw_outbound_t *ob, gw_prov_rt_t *p, cm_http_client_t *http,
                                    cm_rand_t *rng, const gw_call_t *call, cm_http_response_t *resp,
                                    gw_policy_outcome_t *out);

#endif
