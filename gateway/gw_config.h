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
    char *calcom_webhook_secrets[GW_MAX_KEYS];
    size_t ncalcom_webhook_secrets;
    char *stripe_api_key; /* NULL when the tenant takes no deposits */
    char *stripe_webhook_secrets[GW_MAX_KEYS];
    size_t nstripe_webhook_secrets;
} gw_tenant_t;

/* A generic sender verified with Standard Webhooks at /webhooks/std/{id}. */
typedef struct {
    char *id;
    char *secrets[GW_MAX_KEYS];
    size_t nsecrets;
} gw_source_t;

typedef struct {
    char *base_url;
    long connect_timeout_ms;
    long timeout_ms;
} gw_provider_t;

typedef struct {
    char *listen_addr;
    uint16_t listen_port;
    unsigned http_threads;
    char *data_dir;
    char *db_path; /* data_dir/gateway.db */
    char *admin_token;
    char *log_level;
    uint64_t seed; /* for back-off jitter; reports print it */

    size_t body_limit;
    int64_t retell_tolerance_ms;
    int64_t calcom_replay_window_ms; /* Cal.com signs no timestamp: createdAt must be this fresh */
    int64_t stripe_tolerance_s;
    int64_t std_tolerance_s;
    int store_sync_full; /* synchronous=FULL (1) or NORMAL (0) */

    unsigned worker_threads;
    int max_attempts;
    int64_t backoff_base_ms;
    double backoff_factor;
    int64_t backoff_cap_ms;

    gw_provider_t calcom;

    gw_tenant_t *tenants;
    size_t ntenants;
    gw_source_t *sources;
    size_t nsources;
} gw_config_t;

/* Loads and checks path. On success *out is a new config (free with gw_config_free).
 * On failure every problem has been written to report (one per line, may be NULL) and
 * the number of problems is returned through *nproblems; *out stays NULL. */
cm_err_t gw_config_load(const char *path, gw_config_t **out, FILE *report, int *nproblems) CM_WUR;

void gw_config_free(gw_config_t **cfg);

/* The Standard Webhooks source with this id, or NULL. Borrowed from cfg. */
const gw_source_t *gw_config_source(const gw_config_t *cfg, const char *id);

/* The tenant owning a Retell agent id, or NULL. Borrowed from cfg. */
const gw_tenant_t *gw_config_tenant_by_agent(const gw_config_t *cfg, const char *agent_id);

#endif
