/* test_gw_tenants.c - isolation between tenants' API keys in the outbound stacks
 * (gw_outbound.h): each key its own breaker and retry budget, tenants sharing a key one
 * runtime, metrics labelled by tenant, never by key; and the admin_tokens configuration
 * (gw_config.h). The calls go to a closed local port, so each attempt fails to connect:
 * a real failure, made at once. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_clock.h"
#include "cm_log.h"
#include "gw_outbound.h"

static char dir[64], cfgpath[128];
static gw_config_t *cfg;
static gw_obs_t *obs;
static gw_outbound_t *ob;

/* Three tenants: acme and globex with keys of their own, initech sharing acme's. */
static const char *const three_tenants =
    "\"tenants\":["
    "{\"id\":\"acme\",\"retell\":{\"agent_ids\":[\"a1\"],\"api_keys\":[\"k1\"]},"
    "\"calcom\":{\"api_key\":\"cal_acme\",\"event_type_id\":1},"
    "\"stripe\":{\"api_key\":\"sk_acme\",\"webhook_secrets\":[\"whsec_a\"]}},"
    "{\"id\":\"globex\",\"retell\":{\"agent_ids\":[\"a2\"],\"api_keys\":[\"k2\"]},"
    "\"calcom\":{\"api_key\":\"cal_globex\",\"event_type_id\":2}},"
    "{\"id\":\"initech\",\"retell\":{\"agent_ids\":[\"a3\"],\"api_keys\":[\"k3\"]},"
    "\"calcom\":{\"api_key\":\"cal_acme\",\"event_type_id\":3}}]";

/* Writes a config with extra top-level members and loads it; returns the problems. */
static int load(const char *extra, FILE *report)
{
    int n = 0;
    FILE *f = fopen(cfgpath, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "{\"data_dir\":\"%s\",%s"
            "\"providers\":{\"calcom\":{\"base_url\":\"http://127.0.0.1:9\","
            "\"breaker\":{\"failures\":2,\"open_ms\":60000},\"retry\":{\"max_attempts\":1}},"
            "\"stripe\":{\"base_url\":\"http://127.0.0.1:9\"}},%s}",
            dir, extra, three_tenants);
    fclose(f);
    gw_config_free(&cfg);
    cm_err_t rc = gw_config_load(cfgpath, &cfg, report, &n);
    cr_assert_eq(rc == CM_OK, n == 0, "%s with %d problems", cm_strerror(rc), n);
    return n;
}

static void setup(void)
{
    char err[CM_ERR_LEN] = "";
    snprintf(dir, sizeof dir, "/tmp/test_gw_tenants_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cfgpath, sizeof cfgpath, "%s/gw.json", dir);
    cr_assert_eq(load("\"admin_token\":\"tok\",", stderr), 0);
    cm_log_set_level("error");
    cr_assert_eq(cm_http_global_init(), CM_OK);
    cr_assert_eq(gw_obs_new(NULL, &obs, err), CM_OK, "%s", err);
    cr_assert_eq(gw_outbound_new(cfg, obs, &ob, err), CM_OK, "%s", err);
}

static void teardown(void)
{
    char cmd[128];
    gw_outbound_free(&ob);
    gw_obs_free(&obs);
    gw_config_free(&cfg);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(tenants, .init = setup, .fini = teardown);

/* One Cal.com read with key; returns how the run ended. */
static gw_policy_status_t call_with(const char *key)
{
    cm_http_client_t *http = cm_http_client_new();
    cm_rand_t rng;
    cm_http_response_t resp;
    gw_policy_outcome_t out;
    char auth[64];
    cr_assert_not_null(http);
    cm_rand_seed(&rng, 7);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *hdrs[] = {auth, NULL};
    gw_call_t call = {
        .operation = "slots",
        .safe = 1,
        .rl_key = key,
        .req = {.method = "GET", .url = "http://127.0.0.1:9/v2/slots", .headers = hdrs}};
    gw_policy_status_t st =
        gw_outbound_call(ob, gw_outbound_provider(ob, "calcom"), http, &rng, &call, &resp, &out);
    cm_http_response_free(&resp);
    cm_http_client_free(&http);
    return st;
}

static gw_brk_state_t state_of(const char *tenant)
{
    gw_prov_rt_t *p = gw_outbound_provider(ob, "calcom");
    gw_key_rt_t *k = gw_outbound_key_of_tenant(p, cfg, tenant);
    cr_assert_not_null(k, "%s", tenant);
    return gw_breaker_state(k->breaker, cm_clock_mono_ms());
}

Test(tenants, one_runtime_per_distinct_key_named_by_its_first_tenant)
{
    gw_prov_rt_t *cal = gw_outbound_provider(ob, "calcom");
    gw_prov_rt_t *stp = gw_outbound_provider(ob, "stripe");
    cr_assert_eq(cal->nkeys, 2);
    cr_assert_str_eq(gw_outbound_key_at(cal, 0)->tenant, "acme");
    cr_assert_str_eq(gw_outbound_key_at(cal, 1)->tenant, "globex");
    cr_assert_null(gw_outbound_key_at(cal, 2), "the unconfigured-keys runtime is not shown unused");
    cr_assert_eq(gw_outbound_key_of_tenant(cal, cfg, "initech"), gw_outbound_key_at(cal, 0),
                 "initech shares acme's key, so its runtime");
    cr_assert_eq(stp->nkeys, 1, "only acme has a Stripe key");
    cr_assert_null(gw_outbound_key_of_tenant(stp, cfg, "globex"));
}

Test(tenants, a_failing_key_opens_its_own_breaker_only)
{
    cr_assert_eq(call_with("cal_globex"), GW_POL_FAILED);
    cr_assert_eq(call_with("cal_globex"), GW_POL_FAILED);
    cr_assert_eq(state_of("globex"), GW_BRK_OPEN);
    cr_assert_eq(call_with("cal_globex"), GW_POL_BREAKER_OPEN, "globex's calls now wait");
    cr_assert_eq(state_of("acme"), GW_BRK_CLOSED);
    cr_assert_eq(state_of("initech"), GW_BRK_CLOSED);
    /* acme's key still gets its calls made (and fails on its own count). */
    cr_assert_eq(call_with("cal_acme"), GW_POL_FAILED);
    cr_assert_eq(state_of("acme"), GW_BRK_CLOSED);
}

Test(tenants, tenants_sharing_a_key_share_its_breaker)
{
    gw_prov_rt_t *cal = gw_outbound_provider(ob, "calcom");
    cr_assert_eq(call_with("cal_acme"), GW_POL_FAILED);
    cr_assert_eq(call_with("cal_acme"), GW_POL_FAILED);
    cr_assert_eq(state_of("initech"), GW_BRK_OPEN, "the provider sees one client");
    cr_assert_eq(gw_outbound_key(cal, "cal_acme"), gw_outbound_key_of_tenant(cal, cfg, "initech"));
    cr_assert_eq(state_of("globex"), GW_BRK_CLOSED);
}

Test(tenants, a_key_no_tenant_has_gets_a_runtime_of_its_own)
{
    gw_prov_rt_t *cal = gw_outbound_provider(ob, "calcom");
    cr_assert_eq(call_with("cal_stray"), GW_POL_FAILED);
    cr_assert_eq(call_with("cal_stray"), GW_POL_FAILED);
    gw_key_rt_t *k = gw_outbound_key_at(cal, 2);
    cr_assert_not_null(k, "shown once used");
    cr_assert_str_eq(k->tenant, "_unconfigured");
    cr_assert_eq(gw_breaker_state(k->breaker, cm_clock_mono_ms()), GW_BRK_OPEN);
    cr_assert_eq(state_of("acme"), GW_BRK_CLOSED);
    cr_assert_eq(state_of("globex"), GW_BRK_CLOSED);
}

Test(tenants, metrics_name_the_tenant_never_the_key)
{
    cm_buf_t b;
    cr_assert_eq(call_with("cal_globex"), GW_POL_FAILED);
    cr_assert_eq(call_with("cal_globex"), GW_POL_FAILED);
    cm_buf_init(&b, 1u << 20);
    cr_assert_eq(gw_metrics_render(obs->reg, &b), CM_OK);
    cr_assert(strstr(b.data,
                     "gw_breaker_state{provider=\"calcom\",tenant=\"globex\",state=\"open\"} 1\n"),
              "%s", b.data);
    cr_assert(strstr(b.data,
                     "gw_breaker_state{provider=\"calcom\",tenant=\"acme\",state=\"closed\"} 1\n"),
              "%s", b.data);
    cr_assert(strstr(b.data, "gw_breaker_transitions_total{provider=\"calcom\",tenant=\"globex\","
                             "from=\"closed\",to=\"open\"} 1\n"),
              "%s", b.data);
    cr_assert(strstr(b.data, "gw_breaker_transitions_total{provider=\"calcom\",tenant=\"acme\","
                             "from=\"closed\",to=\"open\"} 0\n"),
              "%s", b.data);
    cr_assert(strstr(b.data,
                     "gw_retry_budget_rejections_total{provider=\"stripe\",tenant=\"acme\"} "
                     "0\n"),
              "%s", b.data);
    cr_assert_null(strstr(b.data, "cal_acme"), "a key in /metrics");
    cr_assert_null(strstr(b.data, "cal_globex"), "a key in /metrics");
    cr_assert_null(strstr(b.data, "initech"), "initech has no key of its own");
    cm_buf_free(&b);
}

Test(tenants, admin_tokens_are_loaded_and_checked)
{
    setenv("TEST_ACME_TOKEN", "acme-secret", 1);
    cr_assert_eq(load("\"admin_tokens\":[{\"name\":\"ops\",\"token\":\"all-secret\"},"
                      "{\"name\":\"acme-ops\",\"token\":{\"env\":\"TEST_ACME_TOKEN\"},"
                      "\"tenant\":\"acme\"}],",
                      stderr),
                 0, "admin_tokens without admin_token");
    cr_assert_null(cfg->admin_token);
    cr_assert_eq(cfg->nadmin_tokens, 2);
    cr_assert_str_eq(cfg->admin_tokens[1].name, "acme-ops");
    cr_assert_str_eq(cfg->admin_tokens[1].token, "acme-secret");
    cr_assert_str_eq(cfg->admin_tokens[1].tenant, "acme");
    cr_assert_null(cfg->admin_tokens[0].tenant);
}

Test(tenants, bad_admin_tokens_are_named)
{
    char buf[4096] = "";
    FILE *f = fmemopen(buf, sizeof buf, "w");
    int n = load("\"admin_tokens\":[{\"name\":\"a\",\"token\":\"t1\",\"tenant\":\"nobody\"},"
                 "{\"name\":\"a\",\"token\":\"t1\"},{\"token\":\"t3\",\"extra\":1}],",
                 f);
    fclose(f);
    cr_assert_eq(n, 5, "%s", buf);
    cr_assert(strstr(buf, "admin_tokens[0].tenant: no tenant \"nobody\""), "%s", buf);
    cr_assert(strstr(buf, "admin_tokens[1]: name \"a\" appears twice"), "%s", buf);
    cr_assert(strstr(buf, "admin_tokens[1]: the same token as admin_tokens[0]"), "%s", buf);
    cr_assert(strstr(buf, "admin_tokens[2]: \"name\" is required"), "%s", buf);
    cr_assert(strstr(buf, "admin_tokens[2]: unknown key \"extra\""), "%s", buf);
    n = load("", NULL);
    cr_assert_eq(n, 1, "neither admin_token nor admin_tokens");
}
