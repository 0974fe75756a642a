/* test_gw_inbound.c - the webhook routes over real loopback HTTP with a real SQLite store:
 * every refusal gets its status and stores nothing; accepted events are stored once. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_clock.h"
#include "cm_http_client.h"
#include "cm_log.h"
#include "cm_sig.h"
#include "gw_app.h"

static char dir[64], cfgpath[128];
static gw_config_t *cfg;
static gw_store_t *store;
static gw_worker_t *worker;
static gw_obs_t *obs;
static gw_outbound_t *ob;
static cm_http_server_t *srv;
static cm_http_client_t *cli;
static gw_app_t app;
static char base[64];

#define STD_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

static void setup(void)
{
    char err[CM_ERR_LEN] = "";
    int n = 0;
    snprintf(dir, sizeof dir, "/tmp/test_gw_inbound_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cfgpath, sizeof cfgpath, "%s/gw.json", dir);
    FILE *f = fopen(cfgpath, "w");
    cr_assert_not_null(f);
    /* max_attempts 1 and an unreachable Cal.com: jobs fail fast and stay visible. */
    fprintf(f,
            "{\"data_dir\":\"%s\",\"admin_token\":\"tok\",\"worker\":{\"max_attempts\":1},"
            "\"webhooks\":{\"body_limit\":4096},"
            "\"providers\":{\"calcom\":{\"base_url\":\"http://127.0.0.1:9\"}},"
            "\"tenants\":[{\"id\":\"acme\",\"retell\":{\"agent_ids\":[\"ag_acme\"],"
            "\"api_keys\":[\"key_old\",\"key_acme\"]},\"calcom\":{\"api_key\":\"cal_1\","
            "\"event_type_id\":101,\"webhook_secrets\":[\"calsecret\"]},\"stripe\":{"
            "\"api_key\":\"sk_test_1\",\"webhook_secrets\":[\"whsec_acme\"]}},"
            "{\"id\":\"beta\",\"retell\":{\"agent_ids\":[\"ag_beta\"],\"api_keys\":[\"key_beta\"]},"
            "\"calcom\":{\"api_key\":\"cal_2\",\"event_type_id\":7}}],"
            "\"sources\":[{\"id\":\"crm\",\"secrets\":[\"" STD_SECRET "\"]}]}",
            dir);
    fclose(f);
    cr_assert_eq(gw_config_load(cfgpath, &cfg, stderr, &n), CM_OK);
    cm_log_set_level("error"); /* refusals are expected here; keep the output readable */
    cr_assert_eq(gw_store_open(cfg->db_path, 1, &store, err), CM_OK, "%s", err);
    cr_assert_eq(gw_obs_new(store, &obs, err), CM_OK, "%s", err);
    cr_assert_eq(gw_outbound_new(cfg, obs, &ob, err), CM_OK, "%s", err);
    cr_assert_eq(gw_worker_start(cfg, store, ob, obs, &worker), CM_OK);
    app = (gw_app_t){.cfg = cfg, .store = store, .worker = worker, .obs = obs, .ob = ob};
    cm_http_server_cfg_t scfg = {.threads = 2, .body_limit = cfg->body_limit, .name = "t"};
    srv = cm_http_server_new(&scfg);
    cr_assert_eq(gw_inbound_routes(srv, &app), CM_OK);
    cr_assert_eq(gw_admin_routes(srv, &app), CM_OK);
    cr_assert_eq(cm_http_server_start(srv, err), CM_OK, "%s", err);
    snprintf(base, sizeof base, "http://127.0.0.1:%u", cm_http_server_port(srv));
    cr_assert_eq(cm_http_global_init(), CM_OK);
    cli = cm_http_client_new();
}

static void teardown(void)
{
    char cmd[128];
    cm_http_client_free(&cli);
    gw_store_stop_intake(store);
    cm_http_server_free(&srv);
    gw_worker_stop(&worker);
    gw_outbound_free(&ob);
    gw_obs_free(&obs);
    gw_store_close(&store);
    gw_config_free(&cfg);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(inbound, .init = setup, .fini = teardown);

/* POSTs body to path with up to three extra headers; returns the status, and the
 * X-Gateway-Result header in result (may be NULL). */
static long post(const char *path, const char *body, const char *h1, const char *h2, const char *h3,
                 char *result)
{
    char url[256], rb[32];
    const char *hdrs[5] = {"Content-Type: application/json", NULL, NULL, NULL, NULL};
    size_t n = 1;
    if (h1)
        hdrs[n++] = h1;
    if (h2)
        hdrs[n++] = h2;
    if (h3)
        hdrs[n++] = h3;
    snprintf(url, sizeof url, "%s%s", base, path);
    cm_http_request_t rq = {
        .method = "POST", .url = url, .headers = hdrs, .body = body, .body_len = strlen(body)};
    cm_http_response_t r;
    cr_assert_eq(cm_http_client_do(cli, &rq, &r), CM_OK, "%s", r.err);
    long st = r.status;
    if (result)
        snprintf(result, 32, "%s",
                 cm_http_response_header(&r, "X-Gateway-Result", rb, sizeof rb) ? rb : "");
    if (st >= 400) {
        char ct[64];
        cr_assert_str_eq(cm_http_response_header(&r, "Content-Type", ct, sizeof ct),
                         "application/problem+json", "errors are problem+json");
    }
    cm_http_response_free(&r);
    return st;
}

static long retell(const char *body, const char *key, int64_t offset_ms, char *result)
{
    char sig[CM_SIG_HDR_LEN], hdr[CM_SIG_HDR_LEN + 32];
    cr_assert_eq(cm_sig_retell_sign(key, body, strlen(body), cm_clock_now_ms() + offset_ms, sig),
                 CM_OK);
    snprintf(hdr, sizeof hdr, "x-retell-signature: %s", sig);
    return post("/webhooks/retell", body, hdr, NULL, NULL, result);
}

static int64_t events_count(const char *provider)
{
    cm_buf_t b;
    cm_buf_init(&b, 1 << 20);
    cr_assert_eq(gw_store_events_json(store, provider, NULL, NULL, 10000, &b), CM_OK);
    json_t *v = json_loads(b.data, 0, NULL);
    int64_t n = json_integer_value(json_object_get(v, "count"));
    json_decref(v);
    cm_buf_free(&b);
    return n;
}

#define CALL(ev, id, agent)                                                                        \
    "{\"event\":\"" ev "\",\"call\":{\"call_id\":\"" id "\",\"agent_id\":\"" agent "\"}}"

Test(inbound, retell_accepts_once_with_either_rotated_key)
{
    char res[32];
    cr_assert_eq(retell(CALL("call_started", "c1", "ag_acme"), "key_acme", 0, res), 204);
    cr_assert_str_eq(res, "accepted");
    cr_assert_eq(retell(CALL("call_started", "c1", "ag_acme"), "key_old", 0, res), 204);
    cr_assert_str_eq(res, "duplicate");
    cr_assert_eq(retell(CALL("call_ended", "c1", "ag_acme"), "key_acme", 0, res), 204);
    cr_assert_str_eq(res, "accepted");
    cr_assert_eq(events_count("retell"), 2);
}

Test(inbound, retell_refusals_store_nothing)
{
    const char *body = CALL("call_analyzed", "c2", "ag_acme");
    cr_assert_eq(retell(body, "key_wrong", 0, NULL), 401, "forged");
    cr_assert_eq(retell(body, "key_acme", -301000, NULL), 401, "stale");
    cr_assert_eq(retell(body, "key_acme", 301000, NULL), 401, "future");
    cr_assert_eq(post("/webhooks/retell", body, NULL, NULL, NULL, NULL), 401, "unsigned");
    cr_assert_eq(post("/webhooks/retell", body, "x-retell-signature: v=1,d=zz", NULL, NULL, NULL),
                 401, "malformed header");
    cr_assert_eq(retell(CALL("call_analyzed", "c2", "ag_beta"), "key_acme", 0, NULL), 401,
                 "tenant A's key for tenant B's agent");
    cr_assert_eq(retell("{\"event\":", "key_acme", 0, NULL), 400, "bad JSON");
    cr_assert_eq(retell("{\"event\":\"call_ended\"}", "key_acme", 0, NULL), 400, "no call id");
    char big[6000];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big, body, strlen(body));
    cr_assert_eq(retell(big, "key_acme", 0, NULL), 413, "over the body limit");
    cr_assert_eq(events_count(NULL), 0);
}

static long calcom(const char *body, const char *secret)
{
    char sig[CM_SIG_HDR_LEN], hdr[CM_SIG_HDR_LEN + 32];
    cr_assert_eq(cm_sig_calcom_sign(secret, body, strlen(body), sig), CM_OK);
    snprintf(hdr, sizeof hdr, "X-Cal-Signature-256: %s", sig);
    return post("/webhooks/calcom", body, hdr, NULL, NULL, NULL);
}

Test(inbound, calcom_signature_replay_window_and_dedup)
{
    char body[512], ts[25], old[25];
    cm_clock_iso8601(cm_clock_now_ms(), ts);
    cm_clock_iso8601(cm_clock_now_ms() - 600000, old);
    snprintf(body, sizeof body,
             "{\"triggerEvent\":\"BOOKING_CREATED\",\"createdAt\":\"%s\",\"payload\":"
             "{\"uid\":\"bk_1\"}}",
             ts);
    cr_assert_eq(calcom(body, "calsecret"), 204);
    cr_assert_eq(calcom(body, "calsecret"), 204, "a duplicate is acknowledged");
    cr_assert_eq(calcom(body, "other"), 401);
    cr_assert_eq(
        post("/webhooks/calcom", body, "X-Cal-Signature-256: no-secret-provided", NULL, NULL, NULL),
        401);
    snprintf(body, sizeof body,
             "{\"triggerEvent\":\"BOOKING_CREATED\",\"createdAt\":\"%s\",\"payload\":"
             "{\"uid\":\"bk_2\"}}",
             old);
    cr_assert_eq(calcom(body, "calsecret"), 401, "a 10-minute-old delivery is a replay");
    cr_assert_eq(calcom("{\"triggerEvent\":\"BOOKING_CREATED\"}", "calsecret"), 400);
    cr_assert_eq(events_count("calcom"), 1);
}

static long stripe(const char *body, const char *secret, int64_t offset_s)
{
    char sig[CM_SIG_HDR_LEN], hdr[CM_SIG_HDR_LEN + 32];
    const char *secrets[] = {secret};
    cr_assert_eq(
        cm_sig_stripe_sign(secrets, 1, body, strlen(body), cm_clock_now_s() + offset_s, sig),
        CM_OK);
    snprintf(hdr, sizeof hdr, "Stripe-Signature: %s", sig);
    return post("/webhooks/stripe", body, hdr, NULL, NULL, NULL);
}

#define PI_EVENT(id, type)                                                                         \
    "{\"id\":\"" id "\",\"object\":\"event\",\"type\":\"" type                                     \
    "\",\"data\":{\"object\":{\"id\":\"pi_1\",\"object\":\"payment_intent\"}}}"

Test(inbound, stripe_event_ids_and_twin_events)
{
    cr_assert_eq(stripe(PI_EVENT("evt_1", "payment_intent.succeeded"), "whsec_acme", 0), 204);
    cr_assert_eq(stripe(PI_EVENT("evt_1", "payment_intent.succeeded"), "whsec_acme", 0), 204);
    /* A second Event object for the same change: a twin, stored once. */
    cr_assert_eq(stripe(PI_EVENT("evt_2", "payment_intent.succeeded"), "whsec_acme", 0), 204);
    cr_assert_eq(stripe(PI_EVENT("evt_3", "payment_intent.created"), "whsec_acme", 0), 204);
    cr_assert_eq(stripe(PI_EVENT("evt_4", "payment_intent.created"), "whsec_other", 0), 401);
    cr_assert_eq(stripe(PI_EVENT("evt_5", "payment_intent.created"), "whsec_acme", -400), 401);
    /* A second, different change of the same type on the same object is not a twin. */
    cr_assert_eq(stripe("{\"id\":\"evt_6\",\"object\":\"event\",\"type\":"
                        "\"payment_intent.succeeded\",\"data\":{\"object\":{\"id\":\"pi_1\","
                        "\"object\":\"payment_intent\",\"amount_received\":500}}}",
                        "whsec_acme", 0),
                 204);
    cr_assert_eq(events_count("stripe"), 3);
}

Test(inbound, standard_webhooks_source)
{
    char sig[CM_SIG_HDR_LEN], h1[CM_SIG_HDR_LEN + 32], h2[64], h3[128];
    const char *secrets[] = {STD_SECRET};
    const char *body = "{\"type\":\"contact.created\",\"data\":{\"id\":\"ct_1\"}}";
    int64_t now = cm_clock_now_s();
    cr_assert_eq(cm_sig_stdwh_sign(secrets, 1, "msg_1", now, body, strlen(body), sig), CM_OK);
    snprintf(h1, sizeof h1, "webhook-signature: %s", sig);
    snprintf(h2, sizeof h2, "webhook-timestamp: %lld", (long long)now);
    snprintf(h3, sizeof h3, "webhook-id: msg_1");
    cr_assert_eq(post("/webhooks/std/crm", body, h1, h2, h3, NULL), 204);
    cr_assert_eq(post("/webhooks/std/crm", body, h1, h2, h3, NULL), 204);
    cr_assert_eq(post("/webhooks/std/nope", body, h1, h2, h3, NULL), 404);
    cr_assert_eq(post("/webhooks/std/crm", body, h1, h2, "webhook-id: msg_2", NULL), 401,
                 "the id is signed");
    cr_assert_eq(events_count("std:crm"), 1);
}

/* A "\u0000" would cut an id short in C strings: two distinct calls would share one dedup
 * key and the second would be dropped as a duplicate. Control characters are refused on
 * every route, whichever parser read the body. */
Test(inbound, ids_with_nul_or_control_characters_are_refused_on_every_route)
{
    char res[32] = "";
    cr_assert_eq(retell(CALL("call_analyzed", "c9\\u0000a", "ag_acme"), "key_acme", 0, res), 400);
    cr_assert_eq(retell(CALL("call_analyzed", "c9\\u0000b", "ag_acme"), "key_acme", 0, res), 400);
    cr_assert_eq(retell(CALL("call_analyzed", "c9\\u001b[2J", "ag_acme"), "key_acme", 0, res), 400,
                 "an escape sequence for a terminal");
    cr_assert_eq(retell(CALL("call_analyzed", "c9\x7f", "ag_acme"), "key_acme", 0, res), 400,
                 "a raw DEL, read by the scanner");
    cr_assert_eq(retell(CALL("call_analyzed\\u0000", "c9", "ag_acme"), "key_acme", 0, res), 400,
                 "the event name");
    cr_assert_eq(retell(CALL("call_analyzed", "c9", "ag_acme\\u0000x"), "key_acme", 0, res), 400,
                 "the agent id");
    cr_assert_eq(retell(CALL("call_analyzed", "c9\\u00e9", "ag_acme"), "key_acme", 0, res), 204,
                 "non-ASCII letters are not control characters");

    char body[512], ts[25];
    cm_clock_iso8601(cm_clock_now_ms(), ts);
    snprintf(body, sizeof body,
             "{\"triggerEvent\":\"BOOKING_CREATED\",\"createdAt\":\"%s\",\"payload\":"
             "{\"uid\":\"bk_9\\u0000x\"}}",
             ts);
    cr_assert_eq(calcom(body, "calsecret"), 400);
    cr_assert_eq(stripe("{\"id\":\"evt_9\\u0000\",\"object\":\"event\",\"type\":\"payment_intent."
                        "created\",\"data\":{\"object\":{\"id\":\"pi_9\"}}}",
                        "whsec_acme", 0),
                 400);
    cr_assert_eq(
        stripe("{\"id\":\"evt_9\",\"object\":\"event\",\"type\":\"charge.succeeded\","
               "\"data\":{\"object\":{\"id\":\"ch_9\",\"payment_intent\":\"pi_\\u0007\"}}}",
               "whsec_acme", 0),
        400, "the payment intent a charge belongs to");

    char sig[CM_SIG_HDR_LEN], h1[CM_SIG_HDR_LEN + 32], h2[64];
    const char *secrets[] = {STD_SECRET};
    const char *std = "{\"type\":\"contact.created\",\"data\":{\"id\":\"ct_\\u0000\"}}";
    int64_t now = cm_clock_now_s();
    cr_assert_eq(cm_sig_stdwh_sign(secrets, 1, "msg_9", now, std, strlen(std), sig), CM_OK);
    snprintf(h1, sizeof h1, "webhook-signature: %s", sig);
    snprintf(h2, sizeof h2, "webhook-timestamp: %lld", (long long)now);
    cr_assert_eq(post("/webhooks/std/crm", std, h1, h2, "webhook-id: msg_9", NULL), 400);

    cr_assert_eq(events_count("retell"), 1, "only the call with an accented id");
    cr_assert_eq(events_count("calcom") + events_count("stripe") + events_count("std:crm"), 0);
}

static size_t count_lines(const char *path, const char *needle)
{
    char line[1024];
    size_t n = 0;
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* A flood of forged webhooks writes a bounded number of log lines, and the metric still
 * counts every refusal. */
Test(inbound, refusal_logs_are_limited_per_reason_and_metrics_count_all)
{
    char log[300];
    snprintf(log, sizeof log, "%s/gateway.log", dir);
    cr_assert_eq(cm_log_open(log), CM_OK);
    cm_log_set_level("warn");
    const char *body = CALL("call_analyzed", "c3", "ag_acme");
    for (int i = 0; i < 30; i++)
        cr_assert_eq(retell(body, "key_forged", 0, NULL), 401);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(retell("{\"event\":", "key_acme", 0, NULL), 400);
    cr_assert_eq(count_lines(log, "signature does not match"), 10, "10 a window, not 30");
    cr_assert_eq(count_lines(log, "body is not valid JSON"), 3, "another reason, its own limit");
    cm_buf_t m;
    cm_buf_init(&m, 1 << 20);
    cr_assert_eq(gw_metrics_render(obs->reg, &m), CM_OK);
    cr_assert(
        strstr(m.data, "gw_webhooks_total{provider=\"retell\",result=\"rejected_signature\"} 30"),
        "%s", m.data);
    cm_buf_free(&m);
}

/* POSTs a Retell webhook signed with key to path; returns the status and copies the
 * answer's body into out (cap bytes). */
static long retell_at(const char *path, const char *body, const char *key, char *out, size_t cap)
{
    char sig[CM_SIG_HDR_LEN], hdr[CM_SIG_HDR_LEN + 32], url[256];
    cr_assert_eq(cm_sig_retell_sign(key, body, strlen(body), cm_clock_now_ms(), sig), CM_OK);
    snprintf(hdr, sizeof hdr, "x-retell-signature: %s", sig);
    snprintf(url, sizeof url, "%s%s", base, path);
    const char *hdrs[] = {"Content-Type: application/json", hdr, NULL};
    cm_http_request_t rq = {
        .method = "POST", .url = url, .headers = hdrs, .body = body, .body_len = strlen(body)};
    cm_http_response_t r;
    cr_assert_eq(cm_http_client_do(cli, &rq, &r), CM_OK, "%s", r.err);
    long st = r.status;
    snprintf(out, cap, "%.*s", (int)r.body.len, r.body.data ? r.body.data : "");
    cm_http_response_free(&r);
    return st;
}

/* A per-tenant route checks that tenant's keys and no other's: another tenant's valid
 * signature is forged there, an unknown tenant is refused before any MAC. */
Test(inbound, per_tenant_routes_check_only_that_tenants_keys)
{
    char out[512];
    const char *beta = CALL("call_analyzed", "c20", "ag_beta");
    cr_assert_eq(retell_at("/webhooks/retell/acme", beta, "key_beta", out, sizeof out), 401,
                 "beta's signature is not acme's: %s", out);
    cr_assert_eq(retell_at("/webhooks/retell/beta", beta, "key_beta", out, sizeof out), 204, "%s",
                 out);
    cr_assert_eq(retell_at("/webhooks/retell/nope", beta, "key_beta", out, sizeof out), 404, "%s",
                 out);
    cr_assert(strstr(out, "\"status\":404"), "%s", out);
    /* acme's agent signed with acme's rotated-out key, on acme's route. */
    cr_assert_eq(retell_at("/webhooks/retell/acme", CALL("call_analyzed", "c21", "ag_acme"),
                           "key_old", out, sizeof out),
                 204, "%s", out);
    /* A valid acme signature for beta's agent, on acme's route: the wrong company. */
    cr_assert_eq(retell_at("/webhooks/retell/acme", CALL("call_analyzed", "c22", "ag_beta"),
                           "key_acme", out, sizeof out),
                 401, "%s", out);

    char body[512], ts[25], sig[CM_SIG_HDR_LEN], hdr[CM_SIG_HDR_LEN + 32];
    cm_clock_iso8601(cm_clock_now_ms(), ts);
    snprintf(body, sizeof body,
             "{\"triggerEvent\":\"BOOKING_CREATED\",\"createdAt\":\"%s\",\"payload\":"
             "{\"uid\":\"bk_20\"}}",
             ts);
    cr_assert_eq(cm_sig_calcom_sign("calsecret", body, strlen(body), sig), CM_OK);
    snprintf(hdr, sizeof hdr, "X-Cal-Signature-256: %s", sig);
    cr_assert_eq(post("/webhooks/calcom/beta", body, hdr, NULL, NULL, NULL), 404,
                 "beta takes no Cal.com webhooks");
    cr_assert_eq(post("/webhooks/calcom/acme", body, hdr, NULL, NULL, NULL), 204);

    const char *secrets[] = {"whsec_acme"};
    const char *ev = PI_EVENT("evt_20", "payment_intent.created");
    cr_assert_eq(cm_sig_stripe_sign(secrets, 1, ev, strlen(ev), cm_clock_now_s(), sig), CM_OK);
    snprintf(hdr, sizeof hdr, "Stripe-Signature: %s", sig);
    cr_assert_eq(post("/webhooks/stripe/acme", ev, hdr, NULL, NULL, NULL), 204);
    cr_assert_eq(post("/webhooks/stripe/beta", ev, hdr, NULL, NULL, NULL), 404,
                 "beta takes no Stripe webhooks");
    cr_assert_eq(events_count("retell"), 2);
    cr_assert_eq(events_count("calcom") + events_count("stripe"), 2);
}

/* Over shared_route_max_keys a shared route would cost one MAC per key of every tenant: it
 * refuses before any and names the per-tenant route, except on the Retell route for a body
 * naming a configured agent, which only its tenant's keys are tried for. */
Test(inbound, shared_route_over_its_key_limit_names_the_tenant_routes)
{
    char out[512];
    cfg->shared_route_max_keys = 2; /* acme has 2 Retell keys and beta 1: 3 in all */
    cr_assert_eq(retell_at("/webhooks/retell", CALL("call_analyzed", "c30", "ag_elsewhere"),
                           "key_acme", out, sizeof out),
                 404, "%s", out);
    cr_assert(strstr(out, "/webhooks/retell/{tenant}"), "%s", out);
    cr_assert_eq(retell_at("/webhooks/retell", CALL("call_analyzed", "c31", "ag_beta"), "key_beta",
                           out, sizeof out),
                 204, "a configured agent's tenant is the only one tried: %s", out);
    cr_assert_eq(retell_at("/webhooks/retell", CALL("call_analyzed", "c32", "ag_beta"), "key_acme",
                           out, sizeof out),
                 401, "another tenant's key for that agent: %s", out);
    cr_assert(strstr(out, "signature does not match the agent"), "%s", out);
    cr_assert_eq(retell_at("/webhooks/retell/acme", CALL("call_analyzed", "c30", "ag_elsewhere"),
                           "key_acme", out, sizeof out),
                 204, "the tenant's own route: %s", out);
    cfg->shared_route_max_keys = 0;
    cr_assert_eq(stripe(PI_EVENT("evt_30", "payment_intent.created"), "whsec_acme", 0), 404,
                 "no shared route at all");
    cr_assert_eq(events_count("retell"), 2);
    cr_assert_eq(events_count("stripe"), 0);
    cm_buf_t m;
    cm_buf_init(&m, 1 << 20);
    cr_assert_eq(gw_metrics_render(obs->reg, &m), CM_OK);
    cr_assert(strstr(m.data, "gw_webhooks_total{provider=\"retell\",result=\"rejected_route\"} 1"),
              "%s", m.data);
    cm_buf_free(&m);
}
