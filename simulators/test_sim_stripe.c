/* test_sim_stripe.c - PaymentIntents over real loopback sockets. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_http_client.h"
#include "cm_http_server.h"
#include "cm_json.h"
#include "cm_log.h"
#include "cm_sig.h"
#include "sim_stripe.h"

#define KEY "sk_test_unit"

static sim_stripe_t *st;
static sim_journal_t *jr;
static cm_http_server_t *srv, *hooks;
static char hook_url[96];
static pthread_mutex_t hmu = PTHREAD_MUTEX_INITIALIZER;
static char *hbody[16], *hsig[16];
static int nhooks, hook_fail_first;

static void h_hook(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    const char *sig = cm_http_req_header(req, "Stripe-Signature");
    pthread_mutex_lock(&hmu);
    if (nhooks < 16) {
        hbody[nhooks] = strndup(req->body, req->body_len);
        hsig[nhooks] = strdup(sig ? sig : "");
        nhooks++;
    }
    int fail = hook_fail_first-- > 0;
    pthread_mutex_unlock(&hmu);
    cm_http_resp_text(resp, fail ? 500 : 200, NULL, NULL);
}
static char base[64];

static void setup(void)
{
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(cm_http_global_init(), CM_OK);
    cm_log_set_level("warn"); /* keep test output to failures */
    jr = sim_journal_new(100);
    st = sim_stripe_new(
        &(sim_stripe_cfg_t){.api_key = KEY, .webhook_secret = "whsec_x", .seed = 1, .journal = jr});
    hooks = cm_http_server_new(&(cm_http_server_cfg_t){.threads = 0, .name = "test.hooks"});
    cr_assert_eq(cm_http_server_route(hooks, "POST /hooks", h_hook, NULL), CM_OK);
    cr_assert_eq(cm_http_server_start(hooks, err), CM_OK, "%s", err);
    snprintf(hook_url, sizeof hook_url, "http://127.0.0.1:%u/hooks", cm_http_server_port(hooks));
    nhooks = hook_fail_first = 0;
    srv = cm_http_server_new(&(cm_http_server_cfg_t){.threads = 0, .name = "test.stripe"});
    cr_assert_eq(sim_stripe_routes(st, srv), CM_OK);
    cr_assert_eq(cm_http_server_start(srv, err), CM_OK, "%s", err);
    snprintf(base, sizeof base, "http://127.0.0.1:%u", cm_http_server_port(srv));
}

static void teardown(void)
{
    sim_stripe_shutdown(st);
    cm_http_server_free(&srv);
    cm_http_server_free(&hooks);
    sim_stripe_free(&st);
    sim_journal_free(&jr);
    for (int i = 0; i < nhooks; i++) {
        free(hbody[i]);
        free(hsig[i]);
    }
}

static const char *extra_header; /* e.g. "Idempotency-Key: k1", NULL: none */
/* Per thread: a background request must not overwrite what the main thread checks. */
static _Thread_local char last_replayed[16], last_should_retry[16];

static long call(const char *method, const char *path, const char *auth, const char *form,
                 json_t **body, char reqid[64])
{
    char url[256], ah[128];
    const char *hdrs[] = {"Content-Type: application/x-www-form-urlencoded", ah, extra_header,
                          NULL};
    snprintf(url, sizeof url, "%s%s", base, path);
    snprintf(ah, sizeof ah, "Authorization: %s", auth ? auth : "");
    if (!auth) {
        hdrs[1] = extra_header;
        hdrs[2] = NULL;
    }
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
    if (!cm_http_response_header(&r, "Idempotent-Replayed", last_replayed, sizeof last_replayed))
        last_replayed[0] = '\0';
    if (!cm_http_response_header(&r, "Stripe-Should-Retry", last_should_retry,
                                 sizeof last_should_retry))
        last_should_retry[0] = '\0';
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

static long post(const char *path, const char *form, json_t **b)
{
    char rid[64];
    return call("POST", path, "Bearer " KEY, form, b, rid);
}

Test(stripe, test_cards_and_settings_decline_with_402)
{
    json_t *b;
    char err[CM_ERR_LEN] = "", path[128];
    cr_assert_eq(
        post("/v1/payment_intents",
             "amount=500&currency=eur&payment_method=pm_card_chargeDeclinedInsufficientFunds", &b),
        402);
    cr_assert_str_eq(cm_json_str(b, "error.type", ""), "card_error");
    cr_assert_str_eq(cm_json_str(b, "error.code", ""), "card_declined");
    cr_assert_str_eq(cm_json_str(b, "error.decline_code", ""), "insufficient_funds");
    cr_assert_str_eq(last_should_retry, "false");
    cr_assert_str_eq(cm_json_str(b, "error.payment_intent.status", ""), "requires_payment_method");
    snprintf(path, sizeof path, "/v1/payment_intents/%s/confirm",
             cm_json_str(b, "error.payment_intent.id", ""));
    json_decref(b);
    cr_assert_eq(post(path, "payment_method=pm_card_visa", &b), 200);
    cr_assert_str_eq(cm_json_str(b, "status", ""), "succeeded");
    json_decref(b);
    cr_assert_eq(post(path, "", &b), 400, "a succeeded intent cannot be confirmed again");
    cr_assert_str_eq(cm_json_str(b, "error.code", ""), "payment_intent_unexpected_state");
    json_decref(b);

    cr_assert_eq(sim_stripe_settings(st, 1, "expired_card", 0, err), CM_OK, "%s", err);
    cr_assert_eq(post("/v1/payment_intents", "amount=500&currency=eur", &b), 402);
    cr_assert_str_eq(cm_json_str(b, "error.decline_code", ""), "expired_card");
    json_decref(b);
    cr_assert_eq(post("/v1/payment_intents", "amount=500&currency=eur", &b), 200,
                 "only the next 1");
    json_decref(b);
    json_t *e = sim_journal_effects(jr, "stripe", "charge");
    cr_assert_eq(cm_json_int(e, "count", -1), 2, "one charge per succeeded intent");
    json_decref(e);
}

Test(stripe, capture_cancel_and_refunds)
{
    json_t *b;
    char path[128], id[64], form[160];
    cr_assert_eq(post("/v1/payment_intents", "amount=900&currency=usd&capture_method=manual", &b),
                 200);
    cr_assert_str_eq(cm_json_str(b, "status", ""), "requires_capture");
    snprintf(id, sizeof id, "%s", cm_json_str(b, "id", ""));
    json_decref(b);
    snprintf(path, sizeof path, "/v1/payment_intents/%s/capture", id);
    cr_assert_eq(post(path, "amount_to_capture=1000", &b), 400);
    json_decref(b);
    cr_assert_eq(post(path, "amount_to_capture=800", &b), 200);
    cr_assert_str_eq(cm_json_str(b, "status", ""), "succeeded");
    cr_assert_eq(cm_json_int(b, "amount_received", 0), 800);
    json_decref(b);
    snprintf(path, sizeof path, "/v1/payment_intents/%s/cancel", id);
    cr_assert_eq(post(path, "", &b), 400, "a succeeded intent cannot be canceled");
    json_decref(b);

    snprintf(form, sizeof form, "payment_intent=%s&amount=300&reason=requested_by_customer", id);
    cr_assert_eq(post("/v1/refunds", form, &b), 200);
    cr_assert_str_eq(cm_json_str(b, "object", ""), "refund");
    cr_assert_eq(cm_json_int(b, "amount", 0), 300);
    snprintf(path, sizeof path, "/v1/refunds/%s", cm_json_str(b, "id", ""));
    json_decref(b);
    char rid[64];
    cr_assert_eq(call("GET", path, "Bearer " KEY, NULL, &b, rid), 200);
    json_decref(b);
    snprintf(form, sizeof form, "payment_intent=%s&amount=600", id);
    cr_assert_eq(post("/v1/refunds", form, &b), 400);
    cr_assert_str_eq(cm_json_str(b, "error.code", ""), "amount_too_large");
    json_decref(b);
    snprintf(form, sizeof form, "payment_intent=%s", id);
    cr_assert_eq(post("/v1/refunds", form, &b), 200, "the rest");
    cr_assert_eq(cm_json_int(b, "amount", 0), 500);
    json_decref(b);
    cr_assert_eq(post("/v1/refunds", form, &b), 400);
    cr_assert_str_eq(cm_json_str(b, "error.code", ""), "charge_already_refunded");
    json_decref(b);
    cr_assert_eq(post("/v1/refunds", "payment_intent=pi_nope", &b), 404);
    json_decref(b);

    cr_assert_eq(post("/v1/payment_intents", "amount=100&currency=usd&confirm=false", &b), 200);
    cr_assert_str_eq(cm_json_str(b, "status", ""), "requires_payment_method");
    snprintf(path, sizeof path, "/v1/payment_intents/%s/cancel", cm_json_str(b, "id", ""));
    json_decref(b);
    cr_assert_eq(post(path, "cancellation_reason=abandoned", &b), 200);
    cr_assert_str_eq(cm_json_str(b, "status", ""), "canceled");
    json_decref(b);
    json_t *e = sim_journal_effects(jr, "stripe", "refund");
    cr_assert_eq(cm_json_int(e, "count", -1), 2);
    json_decref(e);
    e = sim_journal_effects(jr, "stripe", "cancellation");
    cr_assert_eq(cm_json_int(e, "count", -1), 1);
    json_decref(e);
}

Test(stripe, idempotency_replays_refuses_and_forgets_validation_failures)
{
    json_t *a, *b;
    char ra[64], rb[64], err[CM_ERR_LEN] = "";
    extra_header = "Idempotency-Key: order-42";
    cr_assert_eq(
        call("POST", "/v1/payment_intents", "Bearer " KEY, "amount=700&currency=eur", &a, ra), 200);
    cr_assert_str_eq(last_replayed, "");
    cr_assert_eq(
        call("POST", "/v1/payment_intents", "Bearer " KEY, "amount=700&currency=eur", &b, rb), 200);
    cr_assert_str_eq(last_replayed, "true");
    cr_assert_str_eq(rb, ra, "the replay carries the first Request-Id");
    cr_assert(json_equal(a, b), "the very same intent");
    json_decref(b);
    cr_assert_eq(
        call("POST", "/v1/payment_intents", "Bearer " KEY, "amount=701&currency=eur", &b, rb), 400);
    cr_assert_str_eq(cm_json_str(b, "error.type", ""), "idempotency_error");
    json_decref(b);
    json_decref(a);
    json_t *l = sim_stripe_payment_intents(st);
    cr_assert_eq(cm_json_int(l, "count", -1), 1, "one intent for three requests");
    json_decref(l);

    extra_header = "Idempotency-Key: order-43";
    cr_assert_eq(
        call("POST", "/v1/payment_intents", "Bearer " KEY, "amount=x&currency=eur", &b, rb), 400);
    json_decref(b);
    cr_assert_null(sim_stripe_idem_state(st, "order-43"), "validation failures are not stored");
    cr_assert_eq(
        call("POST", "/v1/payment_intents", "Bearer " KEY, "amount=5&currency=eur", &b, rb), 200);
    json_decref(b);

    extra_header = "Idempotency-Key: order-44";
    cr_assert_eq(sim_stripe_settings(st, 0, NULL, 1, err), CM_OK);
    cr_assert_eq(
        call("POST", "/v1/payment_intents", "Bearer " KEY, "amount=5&currency=eur", &b, rb), 500);
    json_decref(b);
    cr_assert_eq(
        call("POST", "/v1/payment_intents", "Bearer " KEY, "amount=5&currency=eur", &b, rb), 500,
        "a stored 500 is replayed");
    cr_assert_str_eq(last_replayed, "true");
    cr_assert_str_eq(cm_json_str(b, "error.type", ""), "api_error");
    json_decref(b);
    extra_header = NULL;
}

typedef struct {
    long status;
} bg_t;

static void *bg_post(void *arg)
{
    bg_t *r = arg;
    json_t *b;
    char rid[64];
    r->status =
        call("POST", "/v1/payment_intents", "Bearer " KEY, "amount=9&currency=eur", &b, rid);
    json_decref(b);
    return NULL;
}

Test(stripe, idempotency_key_in_use_while_in_flight)
{
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(sim_stripe_hold(st, 400, err), CM_OK);
    extra_header = "Idempotency-Key: slow-1";
    bg_t first = {0};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, bg_post, &first), 0);
    int64_t deadline = cm_clock_mono_ms() + 5000;
    while (!sim_stripe_idem_state(st, "slow-1")) {
        cr_assert_lt(cm_clock_mono_ms(), deadline);
        cm_clock_sleep_ms(2);
    }
    json_t *b;
    char rid[64];
    cr_assert_eq(
        call("POST", "/v1/payment_intents", "Bearer " KEY, "amount=9&currency=eur", &b, rid), 409);
    cr_assert_str_eq(cm_json_str(b, "error.code", ""), "idempotency_key_in_use");
    cr_assert_str_eq(last_should_retry, "true");
    json_decref(b);
    pthread_join(t, NULL);
    cr_assert_eq(first.status, 200);
    cr_assert_str_eq(sim_stripe_idem_state(st, "slow-1"), "stored");
    extra_header = NULL;
}

Test(stripe, signed_events_with_rotation_retries_and_twins)
{
    char err[CM_ERR_LEN] = "", cfg[256];
    snprintf(cfg, sizeof cfg,
             "{\"url\":\"%s\",\"extra_secrets\":[\"whsec_old\"],\"retry_schedule_ms\":[30,30],"
             "\"twin\":true}",
             hook_url);
    json_t *c = json_loads(cfg, 0, NULL);
    cr_assert_eq(sim_stripe_set_webhook(st, c, err), CM_OK, "%s", err);
    json_decref(c);
    hook_fail_first = 1;
    json_t *b;
    cr_assert_eq(post("/v1/payment_intents", "amount=1200&currency=eur", &b), 200);
    char pi[64];
    snprintf(pi, sizeof pi, "%s", cm_json_str(b, "id", ""));
    json_decref(b);
    int64_t deadline = cm_clock_mono_ms() + 5000;
    for (;;) { /* two events (twins), the first of them tried twice */
        pthread_mutex_lock(&hmu);
        int n = nhooks;
        pthread_mutex_unlock(&hmu);
        if (n >= 3)
            break;
        cr_assert_lt(cm_clock_mono_ms(), deadline, "only %d deliveries", n);
        cm_clock_sleep_ms(5);
    }
    const char *only_new[] = {"whsec_x"}, *only_old[] = {"whsec_old"};
    char ids[3][64];
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(hbody[i]);
        cr_assert_eq(
            cm_sig_stripe_verify(only_new, 1, hbody[i], len, hsig[i], cm_clock_now_s(), 300), CM_OK,
            "%s", hsig[i]);
        cr_assert_eq(
            cm_sig_stripe_verify(only_old, 1, hbody[i], len, hsig[i], cm_clock_now_s(), 300), CM_OK,
            "both v1 during rotation");
        json_t *ev = json_loads(hbody[i], 0, NULL);
        cr_assert_str_eq(cm_json_str(ev, "type", ""), "payment_intent.succeeded");
        cr_assert_str_eq(cm_json_str(ev, "data.object.id", ""), pi);
        snprintf(ids[i], sizeof ids[i], "%s", cm_json_str(ev, "id", ""));
        json_decref(ev);
    }
    /* Order: event 1 (fails), twin, event 1 again. */
    cr_assert_str_eq(ids[0], ids[2], "a retry is the same event");
    cr_assert_str_neq(ids[0], ids[1], "a twin is another event id for the same change");
    /* The receiver counts a delivery when it answers; the simulator journals it only after
     * reading that answer, so the third entry may still be on its way. */
    sim_journal_filter_t f = {.provider = "stripe", .kind = SIM_JOURNAL_DELIVERY};
    cr_assert_eq(sim_journal_wait(jr, &f, 3, 5000), 3);
    json_t *j = sim_journal_query(jr, &f);
    int64_t attempt = cm_json_int(j, "entries.2.attempt", -1);
    json_decref(j);
    cr_assert_eq(attempt, 2);
}

#define SAME_KEY_RACERS 20

static pthread_barrier_t line_up;

static void *same_key_racer(void *arg)
{
    bg_t *r = arg;
    pthread_barrier_wait(&line_up);
    bg_post(r);
    return NULL;
}

Test(stripe, concurrent_requests_with_one_key_make_one_intent)
{
    pthread_t t[SAME_KEY_RACERS];
    bg_t res[SAME_KEY_RACERS];
    extra_header = "Idempotency-Key: race-1";
    pthread_barrier_init(&line_up, NULL, SAME_KEY_RACERS);
    for (int i = 0; i < SAME_KEY_RACERS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, same_key_racer, &res[i]), 0);
    int ok = 0, in_use = 0;
    for (int i = 0; i < SAME_KEY_RACERS; i++) {
        pthread_join(t[i], NULL);
        ok += res[i].status == 200;
        in_use += res[i].status == 409;
    }
    pthread_barrier_destroy(&line_up);
    extra_header = NULL;
    cr_assert_eq(ok + in_use, SAME_KEY_RACERS, "only 200 (first or replay) and 409 (in flight)");
    cr_assert_geq(ok, 1);
    json_t *l = sim_stripe_payment_intents(st);
    cr_assert_eq(cm_json_int(l, "count", -1), 1, "one intent whatever the interleaving");
    json_decref(l);
    json_t *e = sim_journal_effects(jr, "stripe", "charge");
    cr_assert_eq(cm_json_int(e, "count", -1), 1, "and one charge");
    json_decref(e);
}
