/* test_sim_stripe.c - PaymentIntents over real loopback sockets. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cm_http_client.h"
#include "cm_http_server.h"
#include "cm_json.h"
#include "cm_log.h"
#include "sim_stripe.h"

#define KEY "sk_test_unit"

static sim_stripe_t *st;
static cm_http_server_t *srv;
static char base[64];

static void setup(void)
{
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(cm_http_global_init(), CM_OK);
    cm_log_set_level("warn"); /* keep test output to failures */
    st =
        sim_stripe_new(&(sim_stripe_cfg_t){.api_key = KEY, .webhook_secret = "whsec_x", .seed = 1});
    srv = cm_http_server_new(&(cm_http_server_cfg_t){.threads = 0, .name = "test.stripe"});
    cr_assert_eq(sim_stripe_routes(st, srv), CM_OK);
    cr_assert_eq(cm_http_server_start(srv, err), CM_OK, "%s", err);
    snprintf(base, sizeof base, "http://127.0.0.1:%u", cm_http_server_port(srv));
}

static void teardown(void)
{
    cm_http_server_free(&srv);
    sim_stripe_free(&st);
}

static long call(const char *method, const char *path, const char *auth, const char *form,
                 json_t **body, char reqid[64])
{
    char url[256], ah[128];
    const char *hdrs[] = {"Content-Type: application/x-www-form-urlencoded", ah, NULL};
    snprintf(url, sizeof url, "%s%s", base, path);
    snprintf(ah, sizeof ah, "Authorization: %s", auth ? auth : "");
    if (!auth)
        hdrs[1] = NULL;
    cm_http_client_t *cl = cm_http_client_new();
    cm_http_response_t r;
    cm_http_request_t req = {.method = method,
                             .url = url,
                             .headers = hdrs,
                             .body = form,
                             .body_len = form ? strlen(form) : 0};
    cr_assert_eq(cm_http_client_do(cl, &req, &r), CM_OK, "%s", r.err);
    long status = r.status;
    *body = json_loads(r.body.data ? r.body.data : "", 0, NULL);
    if (!cm_http_response_header(&r, "Request-Id", reqid, 64))
        reqid[0] = '\0';
    cm_http_response_free(&r);
    cm_http_client_free(&cl);
    return status;
}

TestSuite(stripe, .init = setup, .fini = teardown);

Test(stripe, create_and_retrieve_a_succeeded_intent)
{
    json_t *b;
    char rid[64], path[96];
    long s = call("POST", "/v1/payment_intents", "Bearer " KEY,
                  "amount=2000&currency=EUR&confirm=true&metadata[call_id]=call_1"
                  "&metadata[booking_uid]=abc&unknown_field=fine",
                  &b, rid);
    cr_assert_eq(s, 200, "status %ld", s);
    cr_assert_eq(strncmp(rid, "req_", 4), 0, "Request-Id '%s'", rid);
    const char *id = cm_json_str(b, "id", "");
    cr_assert_eq(strncmp(id, "pi_", 3), 0);
    cr_assert_eq(strlen(id), 27);
    cr_assert_str_eq(cm_json_str(b, "object", ""), "payment_intent");
    cr_assert_str_eq(cm_json_str(b, "status", ""), "succeeded");
    cr_assert_eq(cm_json_int(b, "amount", 0), 2000);
    cr_assert_eq(cm_json_int(b, "amount_received", 0), 2000);
    cr_assert_str_eq(cm_json_str(b, "currency", ""), "eur");
    cr_assert_str_eq(cm_json_str(b, "metadata.call_id", ""), "call_1");
    cr_assert(json_is_false(cm_json_path(b, "livemode")));
    snprintf(path, sizeof path, "/v1/payment_intents/%s", id);
    json_t *g;
    cr_assert_eq(call("GET", path, "Bearer " KEY, NULL, &g, rid), 200);
    cr_assert(json_equal(g, b));
    json_decref(g);
    json_decref(b);
    json_t *ledger = sim_stripe_payment_intents(st);
    cr_assert_eq(cm_json_int(ledger, "count", -1), 1);
    json_decref(ledger);
}

Test(stripe, errors_have_stripes_shape)
{
    json_t *b;
    char rid[64];
    cr_assert_eq(call("POST", "/v1/payment_intents", NULL, "amount=1&currency=eur", &b, rid), 401);
    cr_assert_str_eq(cm_json_str(b, "error.type", ""), "invalid_request_error");
    cr_assert_neq(rid[0], '\0', "errors carry a Request-Id too");
    json_decref(b);
    cr_assert_eq(call("POST", "/v1/payment_intents", "Bearer sk_test_wrong",
                      "amount=1&currency=eur", &b, rid),
                 401);
    json_decref(b);
    cr_assert_eq(call("POST", "/v1/payment_intents", "Bearer " KEY, "currency=eur", &b, rid), 400);
    cr_assert_str_eq(cm_json_str(b, "error.code", ""), "parameter_missing");
    cr_assert_str_eq(cm_json_str(b, "error.param", ""), "amount");
    json_decref(b);
    cr_assert_eq(
        call("POST", "/v1/payment_intents", "Bearer " KEY, "amount=12.5&currency=eur", &b, rid),
        400);
    cr_assert_str_eq(cm_json_str(b, "error.code", ""), "parameter_invalid_integer");
    json_decref(b);
    cr_assert_eq(call("POST", "/v1/payment_intents", "Bearer " KEY, "amount=100", &b, rid), 400);
    cr_assert_str_eq(cm_json_str(b, "error.param", ""), "currency");
    json_decref(b);
    cr_assert_eq(
        call("POST", "/v1/payment_intents", "Bearer " KEY, "amount=100&currency=eur&a[=1", &b, rid),
        400);
    json_decref(b);
    cr_assert_eq(call("GET", "/v1/payment_intents/pi_missing", "Bearer " KEY, NULL, &b, rid), 404);
    cr_assert_str_eq(cm_json_str(b, "error.code", ""), "resource_missing");
    json_decref(b);
    cr_assert_eq(call("GET", "/v1/payment_intents/pi_%ff", "Bearer " KEY, NULL, &b, rid), 404);
    cr_assert_str_eq(cm_json_str(b, "error.message", ""), "No such payment_intent: 'pi_?'");
    json_decref(b);
    json_t *ledger = sim_stripe_payment_intents(st);
    cr_assert_eq(cm_json_int(ledger, "count", -1), 0);
    json_decref(ledger);
}
