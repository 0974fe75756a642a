/* test_gw_config.c - configuration loading: every problem reported with its JSON path. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gw_config.h"

static char path[64];
static char report[8192];

static int load_text(const char *text, gw_config_t **cfg)
{
    snprintf(path, sizeof path, "/tmp/test_gw_config_%d.json", (int)getpid());
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    FILE *r = fmemopen(report, sizeof report, "w");
    int n = 0;
    memset(report, 0, sizeof report);
    cm_err_t rc = gw_config_load(path, cfg, r, &n);
    fclose(r);
    remove(path);
    cr_assert_eq(rc == CM_OK, n == 0, "rc %d with %d problems", rc, n);
    return n;
}

#define TENANT                                                                                     \
    "{\"id\":\"acme\",\"retell\":{\"agent_ids\":[\"ag1\"],\"api_keys\":[\"key_1\"]},"              \
    "\"calcom\":{\"api_key\":\"cal_1\",\"event_type_id\":101}}"
#define GOOD                                                                                       \
    "{\"data_dir\":\"/tmp/x\",\"admin_token\":\"tok\",\"providers\":{\"calcom\":"                  \
    "{\"base_url\":\"http://127.0.0.1:1\"}},\"tenants\":[" TENANT "]}"

Test(config, minimal_valid_config_gets_defaults)
{
    gw_config_t *cfg = NULL;
    cr_assert_eq(load_text(GOOD, &cfg), 0, "%s", report);
    cr_assert_str_eq(cfg->db_path, "/tmp/x/gateway.db");
    cr_assert_eq(cfg->retell_tolerance_ms, 300000);
    cr_assert_eq(cfg->max_attempts, 6);
    cr_assert_eq(cfg->job_lease_ms, 30000);
    cr_assert_eq(cfg->calcom.read_timeout_ms, 5000);
    cr_assert_eq(cfg->calcom.write_timeout_ms, 10000);
    cr_assert_eq(cfg->calcom.rate_per_min, 120);
    cr_assert_eq(cfg->calcom.breaker_failures, 5);
    cr_assert_eq(gw_config_tenant_by_agent(cfg, "ag1"), &cfg->tenants[0]);
    cr_assert_null(gw_config_tenant_by_agent(cfg, "nope"));
    gw_config_free(&cfg);
    cr_assert_null(cfg);
}

Test(config, secrets_from_environment)
{
    gw_config_t *cfg = NULL;
    setenv("TEST_GW_TOKEN", "from-env", 1);
    const char *text = "{\"data_dir\":\"/tmp/x\",\"admin_token\":{\"env\":\"TEST_GW_TOKEN\"},"
                       "\"providers\":{\"calcom\":{\"base_url\":\"http://h\"}},"
                       "\"tenants\":[" TENANT "]}";
    cr_assert_eq(load_text(text, &cfg), 0, "%s", report);
    cr_assert_str_eq(cfg->admin_token, "from-env");
    gw_config_free(&cfg);
}

/* The store's backend: SQLite by default, PostgreSQL with its URL as a secret. */
Test(config, postgres_store_takes_its_url_from_the_environment)
{
    gw_config_t *cfg = NULL;
    cr_assert_eq(load_text(GOOD, &cfg), 0, "%s", report);
    cr_assert_eq(cfg->store_pg, 0);
    cr_assert_null(cfg->store_url);
    gw_config_free(&cfg);
    setenv("TEST_GW_PG_URL", "postgres://u:p@127.0.0.1:5/db", 1);
    const char *pg = "{\"data_dir\":\"/tmp/x\",\"admin_token\":\"tok\",\"store\":{\"backend\":"
                     "\"postgres\",\"url\":{\"env\":\"TEST_GW_PG_URL\"}},\"providers\":{\"calcom\":"
                     "{\"base_url\":\"http://h\"}},\"tenants\":[" TENANT "]}";
    cr_assert_eq(load_text(pg, &cfg), 0, "%s", report);
    cr_assert_eq(cfg->store_pg, 1);
    cr_assert_str_eq(cfg->store_url, "postgres://u:p@127.0.0.1:5/db");
    gw_config_free(&cfg);
    const char *bad = "{\"data_dir\":\"/tmp/x\",\"admin_token\":\"tok\",\"store\":{\"backend\":"
                      "\"mysql\",\"url\":\"x\"},\"providers\":{\"calcom\":"
                      "{\"base_url\":\"http://h\"}},\"tenants\":[" TENANT "]}";
    cr_assert_eq(load_text(bad, &cfg), 2, "%s", report);
    cr_assert(strstr(report, "store.backend: must be \"sqlite\" or \"postgres\""), "%s", report);
    cr_assert(strstr(report, "store.url: is only for the postgres backend"), "%s", report);
    const char *nourl = "{\"data_dir\":\"/tmp/x\",\"admin_token\":\"tok\",\"store\":{\"backend\":"
                        "\"postgres\"},\"providers\":{\"calcom\":"
                        "{\"base_url\":\"http://h\"}},\"tenants\":[" TENANT "]}";
    cr_assert_eq(load_text(nourl, &cfg), 1, "%s", report);
    cr_assert(strstr(report, "store.url: is required with the postgres backend"), "%s", report);
}

Test(config, missing_env_and_missing_keys_are_named_with_paths)
{
    gw_config_t *cfg = NULL;
    unsetenv("TEST_GW_MISSING");
    const char *text =
        "{\"data_dir\":\"/tmp/x\",\"admin_token\":{\"env\":\"TEST_GW_MISSING\"},"
        "\"providers\":{\"calcom\":{\"base_url\":\"ftp://h\"}},"
        "\"tenants\":[{\"id\":\"a\",\"retell\":{\"agent_ids\":[\"ag1\"],\"api_keys\":[]},"
        "\"calcom\":{\"event_type_id\":101}}], \"bogus\": 1}";
    int n = load_text(text, &cfg);
    cr_assert_null(cfg);
    cr_assert_eq(n, 5, "problems:\n%s", report);
    cr_assert(strstr(report, "admin_token: environment variable TEST_GW_MISSING is not set"), "%s",
              report);
    cr_assert(strstr(report, "tenants[0].retell: \"api_keys\" must list"), "%s", report);
    cr_assert(strstr(report, "unsigned webhooks are never accepted"), "%s", report);
    cr_assert(strstr(report, "tenants[0].calcom: \"api_key\" is required"), "%s", report);
    cr_assert(strstr(report, "providers.calcom: \"base_url\" must start with http"), "%s", report);
    cr_assert(strstr(report, "$: unknown key \"bogus\""), "%s", report);
}

/* TENANT under another id: the same agent and keys. */
#define TENANT_B                                                                                   \
    "{\"id\":\"bravo\",\"retell\":{\"agent_ids\":[\"ag1\"],\"api_keys\":[\"key_1\"]},"             \
    "\"calcom\":{\"api_key\":\"cal_1\",\"event_type_id\":101}}"

Test(config, duplicate_agent_across_tenants_refused)
{
    gw_config_t *cfg = NULL;
    const char *text = "{\"data_dir\":\"/tmp/x\",\"admin_token\":\"t\",\"providers\":{\"calcom\":"
                       "{\"base_url\":\"http://h\"}},\"tenants\":[" TENANT "," TENANT_B "]}";
    cr_assert_eq(load_text(text, &cfg), 1, "%s", report);
    cr_assert(strstr(report, "tenants[1].retell.agent_ids[0]: agent id \"ag1\" already belongs"),
              "%s", report);
}

Test(config, duplicate_tenant_id_refused)
{
    gw_config_t *cfg = NULL;
    /* Different agents, one id: both tenants would answer /webhooks/retell/acme. */
    const char *text =
        "{\"data_dir\":\"/tmp/x\",\"admin_token\":\"t\",\"providers\":{\"calcom\":"
        "{\"base_url\":\"http://h\"}},\"tenants\":[" TENANT ","
        "{\"id\":\"acme\",\"retell\":{\"agent_ids\":[\"ag2\"],\"api_keys\":[\"k2\"]},"
        "\"calcom\":{\"api_key\":\"cal_2\",\"event_type_id\":102}}]}";
    cr_assert_eq(load_text(text, &cfg), 1, "%s", report);
    cr_assert_null(cfg);
    cr_assert(strstr(report, "tenants[1].id: tenant id \"acme\" appears twice"), "%s", report);
}

Test(config, retention_defaults_and_its_floor)
{
    gw_config_t *cfg = NULL;
    cr_assert_eq(load_text(GOOD, &cfg), 0, "%s", report);
    cr_assert_eq(cfg->retention_max_age_ms, 30LL * 86400000, "30 days by default");
    cr_assert_eq(cfg->retention_interval_ms, 60000);
    cr_assert_eq(cfg->retention_batch, 500);
    gw_config_free(&cfg);
    /* Shorter than twice the longest signature window (Cal.com's 10 minutes here). */
    const char *text = "{\"data_dir\":\"/tmp/x\",\"admin_token\":\"t\",\"providers\":{\"calcom\":"
                       "{\"base_url\":\"http://h\"}},\"tenants\":[" TENANT "],"
                       "\"webhooks\":{\"calcom_replay_window_ms\":600000},"
                       "\"retention\":{\"max_age_ms\":1000000,\"batch\":0,\"extra\":1}}";
    cr_assert_eq(load_text(text, &cfg), 3, "%s", report);
    cr_assert(strstr(report, "retention.max_age_ms: 1000000 ms is shorter than twice the longest "
                             "webhook time window (1200000 ms)"),
              "%s", report);
    cr_assert(strstr(report, "retention: unknown key \"extra\""), "%s", report);
    cr_assert(strstr(report, "retention: \"batch\" must be an integer from 1 to 10000"), "%s",
              report);
    /* 0 keeps everything, whatever the windows. */
    text =
        "{\"data_dir\":\"/tmp/x\",\"admin_token\":\"t\",\"providers\":{\"calcom\":"
        "{\"base_url\":\"http://h\"}},\"tenants\":[" TENANT "],\"retention\":{\"max_age_ms\":0}}";
    cr_assert_eq(load_text(text, &cfg), 0, "%s", report);
    cr_assert_eq(cfg->retention_max_age_ms, 0);
    gw_config_free(&cfg);
}

Test(config, event_type_check_settings)
{
    gw_config_t *cfg = NULL;
    cr_assert_eq(load_text(GOOD, &cfg), 0, "%s", report);
    cr_assert_eq(cfg->event_type_check_ms, 600000, "every 10 minutes by default");
    cr_assert_null(cfg->tenants[0].calcom_event_type_slug);
    cr_assert_eq(cfg->tenants[0].calcom_team_id, 0);
    gw_config_free(&cfg);
    const char *text =
        "{\"data_dir\":\"/tmp/x\",\"admin_token\":\"t\",\"providers\":{\"calcom\":"
        "{\"base_url\":\"http://h\"}},\"event_types\":{\"check_interval_ms\":0},\"tenants\":["
        "{\"id\":\"acme\",\"retell\":{\"agent_ids\":[\"ag1\"],\"api_keys\":[\"key_1\"]},"
        "\"calcom\":{\"api_key\":\"cal_1\",\"event_type_id\":103,\"team_id\":201,"
        "\"event_type_slug\":\"team-consultation\"}}]}";
    cr_assert_eq(load_text(text, &cfg), 0, "%s", report);
    cr_assert_eq(cfg->event_type_check_ms, 0, "0 turns it off");
    cr_assert_str_eq(cfg->tenants[0].calcom_event_type_slug, "team-consultation");
    cr_assert_eq(cfg->tenants[0].calcom_team_id, 201);
    gw_config_free(&cfg);
    text = "{\"data_dir\":\"/tmp/x\",\"admin_token\":\"t\",\"providers\":{\"calcom\":"
           "{\"base_url\":\"http://h\"}},\"event_types\":{\"check_interval_ms\":500,\"x\":1},"
           "\"tenants\":[{\"id\":\"acme\",\"retell\":{\"agent_ids\":[\"ag1\"],\"api_keys\":"
           "[\"key_1\"]},\"calcom\":{\"api_key\":\"cal_1\",\"event_type_id\":101,\"team_id\":0,"
           "\"event_type_slug\":\"\"}}]}";
    cr_assert_eq(load_text(text, &cfg), 4, "%s", report);
    cr_assert(strstr(report, "event_types.check_interval_ms: 500 ms would list"), "%s", report);
    cr_assert(strstr(report, "event_types: unknown key \"x\""), "%s", report);
    cr_assert(strstr(report, "tenants[0].calcom: \"team_id\" must be an integer from 1"), "%s",
              report);
    cr_assert(strstr(report, "tenants[0].calcom: \"event_type_slug\" must be a non-empty string"),
              "%s", report);
}

Test(config, body_limit_fits_long_calls_and_the_budget_bounds_memory)
{
    gw_config_t *cfg = NULL;
    cr_assert_eq(load_text(GOOD, &cfg), 0, "%s", report);
    cr_assert_eq(cfg->body_limit, 2u << 20, "an hour-long Retell call fits");
    cr_assert_eq(cfg->body_budget, 64u << 20);
    gw_config_free(&cfg);
    const char *text = "{\"data_dir\":\"/tmp/x\",\"admin_token\":\"t\",\"providers\":{\"calcom\":"
                       "{\"base_url\":\"http://h\"}},\"tenants\":[" TENANT "],"
                       "\"webhooks\":{\"body_limit\":4194304,\"body_budget\":2097152}}";
    cr_assert_eq(load_text(text, &cfg), 1, "%s", report);
    cr_assert(strstr(report, "webhooks.body_budget: 2097152 bytes is less than body_limit"), "%s",
              report);
}

Test(config, worker_keys_are_checked)
{
    gw_config_t *cfg = NULL;
    cr_assert_eq(load_text(GOOD, &cfg), 0, "%s", report);
    cr_assert_eq(cfg->worker_idle_recheck_ms, 1000);
    gw_config_free(&cfg);
    const char *text = "{\"data_dir\":\"/tmp/x\",\"admin_token\":\"t\",\"providers\":{\"calcom\":"
                       "{\"base_url\":\"http://h\"}},\"tenants\":[" TENANT "],"
                       "\"worker\":{\"idle_recheck_ms\":50,\"max_attempt\":3}}";
    cr_assert_eq(load_text(text, &cfg), 2, "%s", report);
    cr_assert(strstr(report, "worker: \"idle_recheck_ms\" must be an integer from 100"), "%s",
              report);
    cr_assert(strstr(report, "worker: unknown key \"max_attempt\""), "%s", report);
}

Test(config, malformed_json_and_missing_file)
{
    gw_config_t *cfg = NULL;
    cr_assert_eq(load_text("{\"data_dir\": ", &cfg), 1);
    cr_assert(strstr(report, "invalid JSON at line 1"), "%s", report);
    int n = 0;
    cr_assert_eq(gw_config_load("/nonexistent/gw.json", &cfg, NULL, &n), CM_ECONFIG);
    cr_assert_eq(n, 1);
}

Test(config, wrong_types_are_reported)
{
    gw_config_t *cfg = NULL;
    const char *text = "{\"data_dir\":\"/tmp/x\",\"admin_token\":\"t\",\"listen\":{\"port\":70000},"
                       "\"worker\":{\"max_attempts\":\"5\",\"lease_ms\":100},\"providers\":"
                       "{\"calcom\":{\"base_url\":\"http://h\"}},\"tenants\":[" TENANT "]}";
    cr_assert_eq(load_text(text, &cfg), 3, "%s", report);
    cr_assert(strstr(report, "listen: \"port\" must be an integer from 0 to 65535"), "%s", report);
    cr_assert(strstr(report, "worker: \"max_attempts\" must be an integer"), "%s", report);
    cr_assert(strstr(report, "worker: \"lease_ms\" must be an integer from 3000"), "%s", report);
}

Test(config, sources_and_optional_provider_secrets)
{
    gw_config_t *cfg = NULL;
    const char *text =
        "{\"data_dir\":\"/tmp/x\",\"admin_token\":\"t\",\"providers\":{\"calcom\":"
        "{\"base_url\":\"http://h\"}},\"tenants\":[" TENANT "],"
        "\"sources\":[{\"id\":\"crm\",\"secrets\":[\"whsec_bm90IGJhc2U2NA==\"]},"
        "{\"id\":\"Bad Id\",\"secrets\":[\"whsec_***\"]},{\"id\":\"crm\",\"secrets\":[]}]}";
    cr_assert_eq(load_text(text, &cfg), 4, "%s", report);
    cr_assert(strstr(report, "sources[1]: \"id\" may use only"), "%s", report);
    cr_assert(strstr(report, "sources[1]: secrets[0] is not base64"), "%s", report);
    cr_assert(strstr(report, "sources[2]: \"secrets\" must list 1 to"), "%s", report);
    cr_assert(strstr(report, "sources: id \"crm\" appears twice"), "%s", report);
}

#define WITH_LISTEN(listen, webhooks)                                                              \
    "{\"data_dir\":\"/tmp/x\",\"admin_token\":\"tok\",\"listen\":" listen                          \
    ",\"webhooks\":" webhooks ",\"providers\":{\"calcom\":{\"base_url\":\"http://h\"}},"           \
    "\"tenants\":[" TENANT "]}"

Test(config, hostile_load_defaults_and_per_tenant_lookup)
{
    gw_config_t *cfg = NULL;
    cr_assert_eq(load_text(GOOD, &cfg), 0, "%s", report);
    cr_assert_eq(cfg->max_connections, 8192);
    cr_assert_eq(cfg->max_connections_per_ip, 4096, "half the total by default");
    cr_assert_eq(cfg->header_timeout_ms, 10000);
    cr_assert_eq(cfg->header_timeout_busy_ms, 1000);
    cr_assert_eq(cfg->body_timeout_ms, 20000);
    cr_assert_eq(cfg->header_limit, 8192);
    cr_assert_eq(cfg->shared_route_max_keys, 8);
    cr_assert_eq(gw_config_tenant(cfg, "acme"), &cfg->tenants[0]);
    cr_assert_null(gw_config_tenant(cfg, "nope"));
    cr_assert_null(gw_config_tenant(cfg, NULL));
    gw_config_free(&cfg);

    cr_assert_eq(load_text(WITH_LISTEN("{\"max_connections\":100,\"header_timeout_ms\":500,"
                                       "\"header_timeout_busy_ms\":200,\"body_timeout_ms\":900,"
                                       "\"header_limit\":4096}",
                                       "{\"shared_route_max_keys\":0}"),
                           &cfg),
                 0, "%s", report);
    cr_assert_eq(cfg->max_connections, 100);
    cr_assert_eq(cfg->max_connections_per_ip, 50);
    cr_assert_eq(cfg->header_timeout_ms, 500);
    cr_assert_eq(cfg->header_timeout_busy_ms, 200);
    cr_assert_eq(cfg->body_timeout_ms, 900);
    cr_assert_eq(cfg->header_limit, 4096);
    cr_assert_eq(cfg->shared_route_max_keys, 0);
    gw_config_free(&cfg);
}

Test(config, hostile_load_values_are_checked)
{
    gw_config_t *cfg = NULL;
    int n = load_text(WITH_LISTEN("{\"max_connections\":8,\"max_connections_per_ip\":0,"
                                  "\"header_timeout_ms\":50,\"body_timeout_ms\":\"20s\","
                                  "\"header_limit\":100000,\"max_conns\":1}",
                                  "{\"shared_route_max_keys\":-1}"),
                      &cfg);
    cr_assert_null(cfg);
    cr_assert_eq(n, 7, "%s", report);
    cr_assert(strstr(report, "listen: \"max_connections\" must be an integer from 16 to 1000000"),
              "%s", report);
    cr_assert(strstr(report, "listen: \"max_connections_per_ip\" must be an integer from 1"), "%s",
              report);
    cr_assert(strstr(report, "listen: \"header_timeout_ms\" must be an integer from 100"), "%s",
              report);
    cr_assert(strstr(report, "listen: \"body_timeout_ms\" must be an integer"), "%s", report);
    cr_assert(strstr(report, "listen: \"header_limit\" must be an integer from 1024 to 16384"),
              "%s", report);
    cr_assert(strstr(report, "listen: unknown key \"max_conns\""), "%s", report);
    cr_assert(strstr(report, "webhooks: \"shared_route_max_keys\" must be an integer from 0 to 64"),
              "%s", report);

    n = load_text(WITH_LISTEN("{\"max_connections\":100,\"max_connections_per_ip\":200,"
                              "\"header_timeout_ms\":1000,\"header_timeout_busy_ms\":2000}",
                              "{}"),
                  &cfg);
    cr_assert_eq(n, 2, "%s", report);
    cr_assert(strstr(report, "listen.max_connections_per_ip: cannot exceed max_connections (100)"),
              "%s", report);
    cr_assert(strstr(report, "listen.header_timeout_busy_ms: cannot exceed header_timeout_ms"),
              "%s", report);
}

Test(config, tenant_ids_are_url_safe)
{
    gw_config_t *cfg = NULL;
    const char *text =
        "{\"data_dir\":\"/tmp/x\",\"admin_token\":\"t\",\"providers\":{\"calcom\":"
        "{\"base_url\":\"http://h\"}},\"tenants\":[{\"id\":\"ac/me\",\"retell\":{\"agent_ids\":"
        "[\"ag1\"],\"api_keys\":[\"k\"]},\"calcom\":{\"api_key\":\"c\",\"event_type_id\":1}}]}";
    cr_assert_eq(load_text(text, &cfg), 1, "%s", report);
    cr_assert(strstr(report, "tenants[0]: \"id\" may use only letters, digits"), "%s", report);
}
