/* gw_config.h - the gateway's configuration: one JSON file, secrets by reference to
 * environment variables, checked completely before anything starts.
 *
 * A secret is written either as {"env": "NAME"} (preferred) or as a literal string. The
 * loader reports every problem it finds, each with its JSON path ("tenants[0].retell.
 * api_keys[1]: environment variable ACME_RETELL_KEY is not set"), and refuses a
 * configuration that would make the gateway accept unsigned webhooks (a tenant without
 * a Retell key, an empty key). The loaded config is immutable and may be read from any
 * thread; it owns all its strings.
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cm_err.h"

#define GW_MAX_KEYS 4

typedef struct {
    char *id;
    char *name;
    char **agent_ids;
    size_t nagent_ids;
    char *retell_keys[GW_MAX_KEYS]; /* several while a key is rotated */
    size_t nretell_keys;
    char *calcom_api_key;
    int64_t calcom_event_type_id; /* default event type when the call names none */
    /* What the event-type check (gw_evtcheck) expects: its slug (NULL: the slug seen at
     * the first check, so a rename while running is noticed), and the team whose event
     * types are listed too (0: none). */
    char *calcom_event_type_slug;
    int64_t calcom_team_id;
    char *calcom_webhook_secrets[GW_MAX_KEYS];
    size_t ncalcom_webhook_secrets;
    char *stripe_api_key; /* NULL when the tenant takes no deposits */
    char *stripe_webhook_secrets[GW_MAX_KEYS];
    size_t nstripe_webhook_secrets;
    int64_t deposit_amount; /* minor units; 0: no deposit unless the call asks for one */
    char *deposit_currency;
    char *payment_method; /* used when the call names none, e.g. "pm_card_visa" in tests */
    int alternatives;     /* other slots tried when the wanted one is gone */
    int64_t alternative_step_ms;
} gw_tenant_t;

/* A generic sender verified with Standard Webhooks at /webhooks/std/{id}. */
typedef struct {
    char *id;
    char *secrets[GW_MAX_KEYS];
    size_t nsecrets;
} gw_source_t;

/* How the gateway calls one provider: timeouts per kind of operation, and the policy
 * stack's settings (rate limit > breaker > timeout > retry with jitter and a budget). */
typedef struct {
    char *base_url;
    long connect_timeout_ms;
    long read_timeout_ms;  /* GETs: short, a slow read is better retried */
    long write_timeout_ms; /* POSTs: longer, the provider may queue the write */
    long deadline_ms;      /* one operation, retries and waits included */
    double rate_per_min;   /* per API key; Cal.com allows 120 */
    double burst;
    int breaker_failures;    /* consecutive failures that open the breaker (audit: 5) */
    int breaker_failure_pct; /* failure rate that opens it, over breaker_window calls */
    int breaker_window;      /* calls in the count window */
    long breaker_open_ms;    /* wait in open before half-open (audit: 60 s) */
    int breaker_half_open;   /* trial calls in half-open (audit: 3) */
    int breaker_successes;   /* successes in half-open that close it (audit: 2) */
    long breaker_slow_ms;    /* a call this slow counts as slow; 0: off */
    int retry_max_attempts;
    long retry_base_ms;
    long retry_cap_ms;
    long retry_max_after_ms; /* a longer Retry-After ends the operation instead */
    double budget_ratio;     /* retries at most this share of calls */
} gw_provider_t;

/* One admin bearer token (admin_tokens). The single admin_token is token "admin", of all
 * tenants. */
typedef struct {
    char *name;   /* recorded in the audit log; never the token */
    char *token;  /* the secret */
    char *tenant; /* the one tenant it may see and act on; NULL: all tenants */
} gw_admin_token_t;

#define GW_MAX_ADMIN_TOKENS 32

/* Spans exported with OTLP/HTTP JSON (gw_otlp.h); off unless a "tracing" section with an
 * endpoint is given. */
#define GW_TRACING_MAX_HEADERS 8
typedef struct {
    int enabled;
    char *endpoint;                            /* the URL POSTed to (.../v1/traces) */
    char *headers[GW_TRACING_MAX_HEADERS + 1]; /* "Name: value", NULL-terminated (secrets) */
    char *service_name;
    double sample_ratio; /* share of new traces recorded; a sender's flag decides for its own */
    unsigned queue_size;
    unsigned batch_size;
    long flush_ms;
    long timeout_ms;
} gw_tracing_t;

typedef struct {
    char *listen_addr;
    uint16_t listen_port;
    unsigned http_threads;
    /* Hostile load (cm_http_server_cfg_t says what each does; docs/gateway-config.md why
     * the defaults are what they are). */
    unsigned max_connections;
    unsigned max_connections_per_ip;
    unsigned header_timeout_ms;
    unsigned header_timeout_busy_ms;
    unsigned body_timeout_ms;
    unsigned header_limit;
    char *data_dir;
    char *db_path;     /* data_dir/gateway.db */
    char *admin_token; /* NULL when only admin_tokens are given */
    /* admin_tokens: named tokens, each of all tenants or scoped to one (gw_admin.c). */
    gw_admin_token_t *admin_tokens;
    size_t nadmin_tokens;
    char *log_level;
    uint64_t seed; /* for back-off jitter; reports print it */

    size_t body_limit;
    size_t body_budget; /* bytes of request bodies held at once, all connections together */
    int64_t retell_tolerance_ms;
    int64_t calcom_replay_window_ms; /* Cal.com signs no timestamp: createdAt must be this fresh */
    int64_t stripe_tolerance_s;
    int64_t std_tolerance_s;
    /* The shared routes (/webhooks/retell, ...) try every tenant's keys only while a
     * provider has at most this many; beyond, they refuse and name the per-tenant routes,
     * so that a forged request never costs more than this many MACs. */
    unsigned shared_route_max_keys;
    int store_sync_full; /* synchronous=FULL (1) or NORMAL (0) */
    int store_pg;        /* store.backend "postgres" (1) or "sqlite" (0, the default) */
    char *store_url;     /* postgres: the libpq URL, from store.url (a secret); else NULL */

    unsigned worker_threads;
    int max_attempts;
    int64_t backoff_base_ms;
    double backoff_factor;
    int64_t backoff_cap_ms;
    /* A claimed job is leased for this long and the workers renew the leases of the jobs
     * they are on; a running job whose lease ran out (its outcome could not be stored) is
     * requeued. */
    int64_t job_lease_ms;
    int64_t worker_idle_recheck_ms; /* an idle worker looks at the queue at least this often */

    /* Retention (gw_retention): events, their finished jobs and ended sagas' histories
     * older than max_age_ms are purged every interval_ms, batch rows per transaction; 0
     * keeps everything. */
    int64_t retention_max_age_ms;
    int64_t retention_interval_ms;
    int retention_batch;

    /* The event-type check (gw_evtcheck): every tenant's configured Cal.com event type is
     * looked up at start and then every this often; 0 turns it off. */
    int64_t event_type_check_ms;

    gw_provider_t calcom;
    gw_provider_t stripe; /* base_url NULL when no tenant takes deposits */
    /* Retell's API (list-calls, get-call), for reconciliation: base_url NULL when
     * providers.retell is absent, and then no call is ever asked of Retell. */
    gw_provider_t retell;
    int64_t slot_cache_ttl_ms; /* Cal.com availability cache (the audit found 5 minutes) */
    int64_t saga_deadline_ms;  /* a saga still waiting after this goes to a person */

    /* Reconciliation (gw_reconcile): a pass every reconcile_interval_ms when
     * reconcile_enabled (the "reconcile" section given, "enabled" not false), over what the
     * providers made in the last reconcile_lookback_ms; Retell calls that ended less than
     * reconcile_grace_ms ago are left to their webhook. POST /admin/reconcile runs a pass
     * whatever reconcile_enabled says. */
    int reconcile_enabled;
    int64_t reconcile_interval_ms;
    int64_t reconcile_lookback_ms;
    int64_t reconcile_grace_ms;

    gw_tenant_t *tenants;
    size_t ntenants;
    gw_source_t *sources;
    size_t nsources;
    gw_tracing_t tracing;
} gw_config_t;

/* Loads and checks path. On success *out is a new config (free with gw_config_free).
 * On failure every problem has been written to report (one per line, may be NULL) and
 * the number of problems is returned through *nproblems; *out stays NULL. */
cm_err_t gw_config_load(const char *path, gw_config_t **out, FILE *report, int *nproblems) CM_WUR;

void gw_config_free(gw_config_t **cfg);

/* The Standard Webhooks source with this id, or NULL. Borrowed from cfg. */
const gw_source_t *gw_config_source(const gw_config_t *cfg, const char *id);

/* The tenant with this id, or NULL. Borrowed from cfg. */
const gw_tenant_t *gw_config_tenant(const gw_config_t *cfg, const char *id);

/* The tenant owning a Retell agent id, or NULL. Borrowed from cfg. */
const gw_tenant_t *gw_config_tenant_by_agent(const gw_config_t *cfg, const char *agent_id);

#endif
