/* test_sim_stripe.c - PaymentIntents over real loopback sockets. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_codec.h"
#include "cm_http_client.h"
#include "cm_http_server.h"
#include "cm_json.h"
#include "cm_log.h"
#include "cm_sig.h"
#include "sim_stripe.h"

#define KEY "sk_test_unit"
/* A create that charges at once: confirm defaults to false and needs a payment method. */
#define CHARGE(amount, cur)                                                                        \
    "amount=" amount "&currency=" cur "&confirm=true&payment_method=pm_card_visa"

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
                  "amount=2000&currency=eur&confirm=true&payment_method=pm_card_visa"
                  "&metadata[call_id]=call_1&metadata[booking_uid]=abc",
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

static char form_buf[256];

static long post(const char *path, const char *form, json_t **b)
{
    char rid[64];
    return call("POST", path, "Bearer " KEY, form, b, rid);
}

Test(stripe, test_cards_and_settings_decline_with_402)
{
    json_t *b;
    char err[CM_ERR_LEN] = "", path[128];
    cr_assert_eq(post("/v1/payment_intents",
                      "amount=500&currency=eur&confirm=true&payment_method=pm_card_"
                      "chargeDeclinedInsufficientFunds",
                      &b),
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

    /* Each count is refused on its own, by name, beyond what a run could use. */
    cr_assert_eq(sim_stripe_settings(st, INT64_MAX, NULL, 0, err), CM_EINVAL);
    cr_assert(strstr(err, "decline_next must be between -1"), "%s", err);
    cr_assert_eq(sim_stripe_settings(st, 0, NULL, SIM_STRIPE_MAX_NEXT + 1, err), CM_EINVAL);
    cr_assert(strstr(err, "error_next must be between 0"), "%s", err);
    cr_assert_eq(sim_stripe_settings(st, -2, NULL, 0, err), CM_EINVAL);
    cr_assert_eq(sim_stripe_settings(st, 1, "expired_card", 0, err), CM_OK, "%s", err);
    cr_assert_eq(post("/v1/payment_intents", CHARGE("500", "eur"), &b), 402);
    cr_assert_str_eq(cm_json_str(b, "error.decline_code", ""), "expired_card");
    json_decref(b);
    cr_assert_eq(post("/v1/payment_intents", CHARGE("500", "eur"), &b), 200, "only the next 1");
    json_decref(b);
    json_t *e = sim_journal_effects(jr, "stripe", "charge");
    cr_assert_eq(cm_json_int(e, "count", -1), 2, "one charge per succeeded intent");
    json_decref(e);
}

Test(stripe, capture_cancel_and_refunds)
{
    json_t *b;
    char path[128], id[64], form[160];
    cr_assert_eq(post("/v1/payment_intents", CHARGE("900", "usd") "&capture_method=manual", &b),
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
        call("POST", "/v1/payment_intents", "Bearer " KEY, "amount=50&currency=eur", &b, rb), 200);
    json_decref(b);

    extra_header = "Idempotency-Key: order-44";
    cr_assert_eq(sim_stripe_settings(st, 0, NULL, 1, err), CM_OK);
    cr_assert_eq(
        call("POST", "/v1/payment_intents", "Bearer " KEY, "amount=50&currency=eur", &b, rb), 500);
    json_decref(b);
    cr_assert_eq(
        call("POST", "/v1/payment_intents", "Bearer " KEY, "amount=50&currency=eur", &b, rb), 500,
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
    r->status = call("POST", "/v1/payment_intents", "Bearer " KEY, CHARGE("90", "eur"), &b, rid);
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
    cr_assert_eq(call("POST", "/v1/payment_intents", "Bearer " KEY, CHARGE("90", "eur"), &b, rid),
                 409);
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
             "{\"url\":\"%s\",\"extra_secrets\":[\"whsec_old\"],"
             "\"retry_schedule\":[\"30ms\",\"30ms\"],\"twin\":true}",
             hook_url);
    json_t *c = json_loads(cfg, 0, NULL);
    cr_assert_eq(sim_stripe_set_webhook(st, c, err), CM_OK, "%s", err);
    json_decref(c);
    hook_fail_first = 1;
    json_t *b;
    cr_assert_eq(post("/v1/payment_intents", CHARGE("1200", "eur"), &b), 200);
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

/* ---- events sent on request (sim_stripe_send_event) ----------------------------------- */

static void set_hook(const char *extra)
{
    char err[CM_ERR_LEN] = "", cfg[512];
    snprintf(cfg, sizeof cfg, "{\"url\":\"%s\"%s%s}", hook_url, extra ? "," : "",
             extra ? extra : "");
    json_t *c = json_loads(cfg, 0, NULL);
    cr_assert_not_null(c, "%s", cfg);
    cr_assert_eq(sim_stripe_set_webhook(st, c, err), CM_OK, "%s", err);
    json_decref(c);
}

static int hooks_seen(void)
{
    pthread_mutex_lock(&hmu);
    int n = nhooks;
    pthread_mutex_unlock(&hmu);
    return n;
}

/* Sends type with data.object fields obj (JSON text); the report, or NULL with *rc set. */
static json_t *send_event(const sim_stripe_event_t *tmpl, const char *type, const char *obj,
                          cm_err_t *rc, char err[CM_ERR_LEN])
{
    sim_stripe_event_t ev = tmpl ? *tmpl : (sim_stripe_event_t){.copies = 1};
    json_t *o = obj ? json_loads(obj, JSON_DECODE_ANY, NULL) : NULL;
    json_t *report = NULL;
    ev.type = type;
    ev.object = o;
    *rc = sim_stripe_send_event(st, &ev, &report, err);
    json_decref(o);
    return report;
}

/* The t= of a Stripe-Signature header. */
static int64_t sig_t(const char *sig)
{
    return strncmp(sig, "t=", 2) == 0 ? strtoll(sig + 2, NULL, 10) : -1;
}

Test(stripe, an_event_on_request_is_built_and_signed_as_the_simulators_own)
{
    char err[CM_ERR_LEN] = "";
    cm_err_t rc;
    set_hook("\"extra_secrets\":[\"whsec_old\"]");
    int64_t before = cm_clock_now_s();
    json_t *r =
        send_event(NULL, "payment_intent.succeeded", "{\"id\":\"pi_1\",\"amount\":2500}", &rc, err);
    cr_assert_eq(rc, CM_OK, "%s", err);
    cr_assert_eq(strncmp(cm_json_str(r, "delivery_id", ""), "dlv_stripe_", 11), 0);
    cr_assert_str_eq(cm_json_str(r, "status", ""), "done");
    cr_assert_str_eq(cm_json_str(r, "url", ""), hook_url);
    cr_assert_eq(json_array_size(cm_json_path(r, "deliveries")), 1);
    cr_assert_eq(cm_json_int(r, "deliveries.0.status", 0), 200);
    cr_assert(json_is_null(cm_json_path(r, "deliveries.0.error")));
    cr_assert_eq(json_array_size(cm_json_path(r, "deliveries.0.attempts")), 1);
    cr_assert_eq(hooks_seen(), 1, "the answer comes after the first attempt");

    /* The envelope as the simulator's own events have it. */
    json_t *ev = json_loads(hbody[0], 0, NULL);
    cr_assert(json_equal(ev, cm_json_path(r, "event")), "the report shows the bytes sent");
    const char *id = cm_json_str(ev, "id", "");
    cr_assert_eq(strncmp(id, "evt_", 4), 0, "%s", id);
    cr_assert_eq(strlen(id), 28);
    cr_assert_str_eq(cm_json_str(ev, "object", ""), "event");
    cr_assert_str_eq(cm_json_str(ev, "api_version", ""), "2024-06-20");
    cr_assert_geq(cm_json_int(ev, "created", 0), before);
    cr_assert_leq(cm_json_int(ev, "created", 0), cm_clock_now_s());
    cr_assert_str_eq(cm_json_str(ev, "type", ""), "payment_intent.succeeded");
    cr_assert(json_is_false(cm_json_path(ev, "livemode")));
    cr_assert_eq(cm_json_int(ev, "pending_webhooks", 0), 1);
    cr_assert(json_is_null(cm_json_path(ev, "request.id")));
    cr_assert(json_is_null(cm_json_path(ev, "request.idempotency_key")));
    cr_assert_str_eq(cm_json_str(ev, "data.object.id", ""), "pi_1");
    cr_assert_str_eq(cm_json_str(ev, "data.object.object", ""), "payment_intent");
    cr_assert_eq(cm_json_int(ev, "data.object.amount", 0), 2500);
    cr_assert_eq(json_object_size(cm_json_path(ev, "data.previous_attributes")), 0);
    json_decref(ev);

    /* Signed with the configured secret and every extra one, as Stripe does while one rolls. */
    const char *cur[] = {"whsec_x"}, *old[] = {"whsec_old"}, *other[] = {"whsec_other"};
    size_t len = strlen(hbody[0]);
    cr_assert_str_eq(cm_json_str(r, "deliveries.0.attempts.0.signature", ""), hsig[0]);
    cr_assert_eq(cm_sig_stripe_verify(cur, 1, hbody[0], len, hsig[0], cm_clock_now_s(), 300), CM_OK,
                 "%s", hsig[0]);
    cr_assert_eq(cm_sig_stripe_verify(old, 1, hbody[0], len, hsig[0], cm_clock_now_s(), 300),
                 CM_OK);
    cr_assert_eq(cm_sig_stripe_verify(other, 1, hbody[0], len, hsig[0], cm_clock_now_s(), 300),
                 CM_ESIG_MISMATCH);
    json_decref(r);

    /* A journal record per attempt, under the report's delivery id. */
    sim_journal_filter_t f = {.provider = "stripe", .kind = SIM_JOURNAL_DELIVERY};
    cr_assert_eq(sim_journal_wait(jr, &f, 1, 5000), 1);
    json_t *j = sim_journal_query(jr, &f);
    cr_assert_eq(strncmp(cm_json_str(j, "entries.0.delivery_id", ""), "dlv_stripe_", 11), 0);
    cr_assert_str_eq(cm_json_str(j, "entries.0.event", ""), "payment_intent.succeeded");
    json_decref(j);
}

Test(stripe, an_event_on_request_keeps_given_fields_and_names_its_object)
{
    char err[CM_ERR_LEN] = "";
    cm_err_t rc;
    set_hook(NULL);
    static const struct {
        const char *type, *object, *name;
    } cases[] = {
        {"charge.refunded", "{}", "charge"},
        {"charge.dispute.created", "{}", "dispute"},
        {"customer.subscription.updated", "{}", "subscription"},
        {"checkout.session.completed", "{}", "checkout.session"},
        {"payment_intent.processing", "{\"object\":\"custom\"}", "custom"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *r = send_event(NULL, cases[i].type, cases[i].object, &rc, err);
        cr_assert_eq(rc, CM_OK, "%s", err);
        cr_assert_str_eq(cm_json_str(r, "event.data.object.object", ""), cases[i].name, "%s",
                         cases[i].type);
        json_decref(r);
    }
    sim_stripe_event_t ev = {
        .copies = 1, .id = "evt_given", .has_created = 1, .created = 1700000002};
    json_t *r = send_event(&ev, "payment_intent.created", "{\"id\":\"pi_505\"}", &rc, err);
    cr_assert_eq(rc, CM_OK, "%s", err);
    cr_assert_str_eq(cm_json_str(r, "event.id", ""), "evt_given");
    cr_assert_eq(cm_json_int(r, "event.created", 0), 1700000002);
    json_decref(r);
}

Test(stripe, forged_and_shifted_signatures)
{
    char err[CM_ERR_LEN] = "";
    cm_err_t rc;
    set_hook("\"extra_secrets\":[\"whsec_old\"]");
    sim_stripe_event_t ev = {.copies = 1, .forge = 1};
    json_t *r = send_event(&ev, "payment_intent.succeeded", "{}", &rc, err);
    cr_assert_eq(rc, CM_OK, "%s", err);
    json_decref(r);
    const char *both[] = {"whsec_x", "whsec_old"};
    cr_assert_eq(
        cm_sig_stripe_verify(both, 2, hbody[0], strlen(hbody[0]), hsig[0], cm_clock_now_s(), 300),
        CM_ESIG_MISMATCH, "%s", hsig[0]);
    cr_assert_null(strstr(strstr(hsig[0], "v1=") + 3, "v1="), "one v1: a single forged secret");

    ev = (sim_stripe_event_t){.copies = 1, .timestamp_offset_ms = -6 * 60000};
    int64_t before = cm_clock_now_s();
    r = send_event(&ev, "payment_intent.succeeded", "{}", &rc, err);
    int64_t after = cm_clock_now_s();
    cr_assert_eq(rc, CM_OK, "%s", err);
    json_decref(r);
    int64_t t = sig_t(hsig[1]);
    cr_assert(t >= before - 360 && t <= after - 360, "t=%lld, now %lld", (long long)t,
              (long long)before);
    const char *cur[] = {"whsec_x"};
    size_t len = strlen(hbody[1]);
    cr_assert_eq(cm_sig_stripe_verify(cur, 1, hbody[1], len, hsig[1], cm_clock_now_s(), 300),
                 CM_ESIG_STALE, "six minutes old is beyond stripe-node's 300 s");
    cr_assert_eq(cm_sig_stripe_verify(cur, 1, hbody[1], len, hsig[1], cm_clock_now_s(), 600), CM_OK,
                 "but signed with the right secret");

    ev.timestamp_offset_ms = 120000;
    before = cm_clock_now_s();
    r = send_event(&ev, "payment_intent.succeeded", "{}", &rc, err);
    json_decref(r);
    t = sig_t(hsig[2]);
    cr_assert(t >= before + 120 && t <= cm_clock_now_s() + 120, "t=%lld", (long long)t);
}

Test(stripe, copies_are_the_same_bytes_each_its_own_delivery)
{
    char err[CM_ERR_LEN] = "";
    cm_err_t rc;
    set_hook(NULL);
    sim_stripe_event_t ev = {.copies = 3};
    json_t *r = send_event(&ev, "charge.refunded", "{\"id\":\"ch_1\"}", &rc, err);
    cr_assert_eq(rc, CM_OK, "%s", err);
    cr_assert_eq(json_array_size(cm_json_path(r, "deliveries")), 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(json_array_size(json_object_get(
                         json_array_get(cm_json_path(r, "deliveries"), (size_t)i), "attempts")),
                     1);
    json_decref(r);
    cr_assert_eq(hooks_seen(), 3);
    cr_assert_str_eq(hbody[0], hbody[1]);
    cr_assert_str_eq(hbody[0], hbody[2]);
}

/* Sends an event to a receiver that answers 500 to the first fails requests, with the
 * webhook settings extra; checks the answer shows that first attempt; its id into id. */
static void send_failing(int fails, const char *extra, char id[48])
{
    char err[CM_ERR_LEN] = "";
    cm_err_t rc;
    set_hook(extra);
    hook_fail_first = fails;
    json_t *r = send_event(NULL, "payment_intent.payment_failed", "{\"id\":\"pi_2\"}", &rc, err);
    cr_assert_eq(rc, CM_OK, "%s", err);
    cr_assert_str_eq(cm_json_str(r, "status", ""), "retrying");
    cr_assert_eq(cm_json_int(r, "deliveries.0.status", 0), 500);
    cr_assert_eq(json_array_size(cm_json_path(r, "deliveries.0.attempts")), 1);
    snprintf(id, 48, "%s", cm_json_str(r, "delivery_id", ""));
    json_decref(r);
}

Test(stripe, the_answer_follows_the_first_attempt_and_retries_go_on_in_the_background)
{
    json_t *r;
    /* The last delay spans a second, so the third attempt's t= must differ from the first. */
    char id[48];
    send_failing(2, "\"retry_schedule\":[\"50ms\",\"1s\"]", id);

    int64_t deadline = cm_clock_mono_ms() + 10000;
    for (;;) {
        r = sim_stripe_delivery(st, id);
        cr_assert_not_null(r);
        if (strcmp(cm_json_str(r, "status", ""), "done") == 0)
            break;
        json_decref(r);
        cr_assert_lt(cm_clock_mono_ms(), deadline, "the retries did not end");
        cm_clock_sleep_ms(10);
    }
    const json_t *att = cm_json_path(r, "deliveries.0.attempts");
    cr_assert_eq(json_array_size(att), 3);
    cr_assert_eq(cm_json_int(r, "deliveries.0.status", 0), 200);
    cr_assert_eq(cm_json_int(att, "1.status", 0), 500);
    cr_assert_eq(cm_json_int(att, "2.status", 0), 200);
    cr_assert_eq(hooks_seen(), 3);
    cr_assert_str_eq(hbody[0], hbody[2], "a retry is the same bytes");
    cr_assert_gt(sig_t(hsig[2]), sig_t(hsig[0]), "each retry is signed when sent");
    cr_assert_str_eq(cm_json_str(att, "2.signature", ""), hsig[2]);
    const char *cur[] = {"whsec_x"};
    cr_assert_eq(
        cm_sig_stripe_verify(cur, 1, hbody[2], strlen(hbody[2]), hsig[2], cm_clock_now_s(), 300),
        CM_OK);
    json_decref(r);
    sim_journal_filter_t f = {.provider = "stripe", .kind = SIM_JOURNAL_DELIVERY};
    cr_assert_eq(sim_journal_wait(jr, &f, 3, 5000), 3);
    json_t *j = sim_journal_query(jr, &f);
    for (int i = 0; i < 3; i++) {
        char path[48];
        snprintf(path, sizeof path, "entries.%d.attempt", i);
        cr_assert_eq(cm_json_int(j, path, 0), i + 1);
        snprintf(path, sizeof path, "entries.%d.delivery_id", i);
        cr_assert_str_eq(cm_json_str(j, path, ""), id);
    }
    json_decref(j);
}

Test(stripe, a_reset_ends_the_retries_of_an_event_on_request)
{
    json_t *r;
    char id[48];
    send_failing(1, "\"retry_schedule\":[\"1m\"]", id);
    sim_stripe_reset(st);
    r = sim_stripe_delivery(st, id);
    cr_assert_str_eq(cm_json_str(r, "status", ""), "done", "reports outlive a reset");
    cr_assert_str_eq(cm_json_str(r, "deliveries.0.error", ""), "not sent: the simulator was reset");
    cr_assert(json_is_null(cm_json_path(r, "deliveries.0.attempts.1.url")));
    json_decref(r);
    cr_assert_eq(hooks_seen(), 1);
}

Test(stripe, events_on_request_are_refused_like_a_strict_api)
{
    char err[CM_ERR_LEN] = "";
    cm_err_t rc;
    json_t *r = send_event(NULL, "payment_intent.succeeded", "{}", &rc, err);
    cr_assert_eq(rc, CM_ESTATE, "no webhook URL yet");
    cr_assert_null(r);
    set_hook(NULL);
    static const struct {
        const char *type, *object;
        sim_stripe_event_t ev;
        const char *field;
    } bad[] = {
        {NULL, "{}", {.copies = 1}, "type"},
        {"payment_intent", "{}", {.copies = 1}, "type"},
        {"Payment_intent.succeeded", "{}", {.copies = 1}, "type"},
        {"a.b.c.d", "{}", {.copies = 1}, "type"},
        {"payment_intent..succeeded", "{}", {.copies = 1}, "type"},
        {"payment_intent.succeeded", NULL, {.copies = 1}, "object"},
        {"payment_intent.succeeded", "[1]", {.copies = 1}, "object"},
        {"payment_intent.succeeded", "{\"object\":1}", {.copies = 1}, "object.object"},
        {"payment_intent.succeeded", "{}", {.copies = 1, .id = ""}, "id"},
        {"payment_intent.succeeded",
         "{}",
         {.copies = 1, .has_created = 1, .created = -1},
         "created"},
        {"payment_intent.succeeded", "{}", {.copies = 0}, "copies"},
        {"payment_intent.succeeded", "{}", {.copies = 21}, "copies"},
        {"payment_intent.succeeded",
         "{}",
         {.copies = 1, .timestamp_offset_ms = SIM_STRIPE_MAX_OFFSET_MS + 1},
         "timestamp_offset"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        r = send_event(&bad[i].ev, bad[i].type, bad[i].object, &rc, err);
        cr_assert_eq(rc, CM_EINVAL, "case %zu", i);
        cr_assert_null(r);
        cr_assert_eq(strncmp(err, bad[i].field, strlen(bad[i].field)), 0, "case %zu: %s", i, err);
    }
    cr_assert_eq(hooks_seen(), 0, "refused events send nothing");
}

/* ---- strict like Stripe (issue 18): docs/providers-stripe.md lists each rule ----------- */

/* One request with exactly these headers (NULL-terminated); the body parsed into *out (a
 * JSON null when it is not JSON) and the answer header want copied to hval (128 bytes). */
static long req_h(const char *method, const char *path, const char *const *headers,
                  const char *body, json_t **out, const char *want, char *hval)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    cm_http_client_t *cl = cm_http_client_new();
    cm_http_response_t r;
    cm_http_request_t req = {.method = method,
                             .url = url,
                             .headers = headers,
                             .body = body,
                             .body_len = body ? strlen(body) : 0};
    cr_assert_eq(cm_http_client_do(cl, &req, &r), CM_OK, "%s", r.err);
    long status = r.status;
    *out = json_loads(r.body.data ? r.body.data : "", 0, NULL);
    if (!*out)
        *out = json_null();
    if (want && !cm_http_response_header(&r, want, hval, 128))
        hval[0] = '\0';
    cm_http_response_free(&r);
    cm_http_client_free(&cl);
    return status;
}

#define FORM_CT "Content-Type: application/x-www-form-urlencoded"
#define AUTH "Authorization: Bearer " KEY

/* A POST under an API version (NULL: none sent). */
static long post_v(const char *path, const char *form, const char *version, json_t **b)
{
    char vh[96];
    snprintf(vh, sizeof vh, "Stripe-Version: %s", version ? version : "");
    const char *h[] = {FORM_CT, AUTH, version ? vh : NULL, NULL};
    return req_h("POST", path, h, form, b, NULL, NULL);
}

static long get(const char *path, json_t **b)
{
    const char *h[] = {AUTH, NULL};
    return req_h("GET", path, h, NULL, b, NULL, NULL);
}

/* Asserts a 400-class Stripe error: its status, type invalid_request_error, code (NULL:
 * none), param (NULL: none) and a message containing msg. */
static void assert_error_(long status, json_t *b, long want_status, const char *code,
                          const char *param, const char *msg, const char *what)
{
    cr_assert_eq(status, want_status, "%s: status %ld, body %s", what, status, cm_json_dumps(b));
    cr_assert_str_eq(cm_json_str(b, "error.type", ""), "invalid_request_error", "%s", what);
    if (code)
        cr_assert_str_eq(cm_json_str(b, "error.code", ""), code, "%s", what);
    else
        cr_assert_null(cm_json_path(b, "error.code"), "%s: code %s", what,
                       cm_json_str(b, "error.code", ""));
    if (param)
        cr_assert_str_eq(cm_json_str(b, "error.param", ""), param, "%s", what);
    else
        cr_assert_null(cm_json_path(b, "error.param"), "%s", what);
    cr_assert(strstr(cm_json_str(b, "error.message", ""), msg), "%s: message '%s'", what,
              cm_json_str(b, "error.message", ""));
}

/* The request first, then its body: b is set by the call. */
#define assert_error(call, b, ...)                                                                 \
    do {                                                                                           \
        long status_ = (call);                                                                     \
        assert_error_(status_, b, __VA_ARGS__);                                                    \
    } while (0)

Test(stripe, parameters_are_checked_as_stripe_checks_them)
{
    static const struct {
        const char *path, *form, *version;
        const char *code, *param, *msg;
    } bad[] = {
        {"/v1/payment_intents", "amount=1000&currency=eur&foo=1", NULL, "parameter_unknown", "foo",
         "Received unknown parameter: foo"},
        {"/v1/payment_intents",
         "amount=1000&currency=eur&automatic_payment_methods[enabled]=true"
         "&automatic_payment_methods[bogus]=1",
         NULL, "parameter_unknown", "automatic_payment_methods[bogus]",
         "Received unknown parameter: automatic_payment_methods[bogus]"},
        {"/v1/payment_intents",
         "amount=1000&currency=eur&automatic_payment_methods[allow_redirects]=never", NULL,
         "parameter_missing", "automatic_payment_methods[enabled]",
         "Missing required param: automatic_payment_methods[enabled]."},
        {"/v1/payment_intents", "currency=eur", NULL, "parameter_missing", "amount",
         "Missing required param: amount."},
        {"/v1/payment_intents", "amount=&currency=eur", NULL, "parameter_invalid_empty", "amount",
         "You passed an empty string for 'amount'."},
        {"/v1/payment_intents", "amount=12.5&currency=eur", NULL, "parameter_invalid_integer",
         "amount", "Invalid integer: 12.5"},
        {"/v1/payment_intents", "amount[x]=1&currency=eur", NULL, "parameter_invalid_integer",
         "amount", "Invalid integer"},
        {"/v1/payment_intents", "amount=1000&currency=eur&confirm=yes", NULL, NULL, "confirm",
         "Invalid boolean: yes"},
        {"/v1/payment_intents", "amount=1000&currency=eur&capture_method=later", NULL, NULL,
         "capture_method",
         "Invalid capture_method: must be one of automatic, automatic_async, or manual"},
        {"/v1/payment_intents",
         "amount=1000&currency=eur&metadata[a_key_that_is_longer_than_forty_characters]=1", NULL,
         NULL, "metadata", "at most 40"},
        {"/v1/payment_intents", "amount=1000&currency=eur&metadata=x", NULL, NULL, "metadata",
         "Invalid hash"},
        {"/v1/payment_intents",
         "amount=1000&currency=eur&statement_descriptor=twenty-three-characters", NULL, NULL,
         "statement_descriptor", "must be at most 22 characters"},
        {"/v1/payment_intents", "amount=1000&currency=eur&payment_method_data[type]=card", NULL,
         NULL, "payment_method_data", "does not model"},
        {"/v1/payment_intents", "amount=1000&currency=eur&payment_method_types[0]=ideal", NULL,
         NULL, "payment_method_types", "Invalid payment_method_types[0]: must be one of card"},
        /* payment_method_types is gone in 2026-09-30.endive, allowed_... came in dahlia. */
        {"/v1/payment_intents", "amount=1000&currency=eur&payment_method_types[0]=card",
         "2026-09-30.endive", "parameter_unknown", "payment_method_types",
         "Received unknown parameter: payment_method_types"},
        {"/v1/payment_intents", "amount=1000&currency=eur&allowed_payment_method_types[0]=card",
         NULL, "parameter_unknown", "allowed_payment_method_types",
         "Received unknown parameter: allowed_payment_method_types"},
        {"/v1/payment_intents",
         "amount=1000&currency=eur&automatic_payment_methods[enabled]=true"
         "&payment_method_types[0]=card",
         NULL, "parameters_exclusive", "automatic_payment_methods",
         "You may only specify one of these parameters"},
        {"/v1/payment_intents", "amount=1000&currency=eur&customer=cus_nobody", NULL,
         "resource_missing", "customer", "No such customer: 'cus_nobody'"},
        {"/v1/payment_intents", "amount=1000&currency=eur&payment_method=pm_made_up", NULL,
         "resource_missing", "payment_method", "No such PaymentMethod: 'pm_made_up'"},
        {"/v1/payment_intents/pi_x/cancel", "cancellation_reason=bored", NULL, NULL,
         "cancellation_reason",
         "Invalid cancellation_reason: must be one of abandoned, "
         "duplicate, fraudulent, or requested_by_customer"},
        {"/v1/payment_intents/pi_x/capture", "amount_to_capture=ten", NULL,
         "parameter_invalid_integer", "amount_to_capture", "Invalid integer: ten"},
        {"/v1/refunds", "payment_intent=pi_x&reason=because", NULL, NULL, "reason",
         "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer"},
        {"/v1/refunds", "payment_intent=pi_x&charge=ch_x", NULL, "parameters_exclusive", "charge",
         "You may only specify one of these parameters: charge, payment_intent."},
        {"/v1/refunds", "payment_intent=pi_x&amount=0", NULL, "parameter_invalid_integer", "amount",
         "greater than or equal to 1"},
        {"/v1/refunds", "payment_intent=pi_x&origin=customer_balance", NULL, NULL, "origin",
         "does not model"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *b;
        char what[64];
        snprintf(what, sizeof what, "case %zu (%s)", i, bad[i].form);
        long st_ = post_v(bad[i].path, bad[i].form, bad[i].version, &b);
        assert_error(st_, b, 400, bad[i].code, bad[i].param, bad[i].msg, what);
        if (bad[i].code)
            cr_assert(
                strstr(cm_json_str(b, "error.doc_url", ""), "https://stripe.com/docs/error-codes/"),
                "%s: a code brings its doc_url", what);
        json_decref(b);
    }
    json_t *l = sim_stripe_payment_intents(st);
    cr_assert_eq(cm_json_int(l, "count", -1), 0, "no refused request made an intent");
    json_decref(l);
    /* The same parameters are fine where they exist. */
    json_t *b;
    cr_assert_eq(post_v("/v1/payment_intents",
                        "amount=1000&currency=eur&payment_method_types[0]=card&metadata=", NULL,
                        &b),
                 200);
    cr_assert_str_eq(cm_json_str(b, "payment_method_types.0", ""), "card");
    cr_assert(json_is_null(cm_json_path(b, "automatic_payment_methods")),
              "explicit types: no automatic payment methods");
    json_decref(b);
    cr_assert_eq(post_v("/v1/payment_intents",
                        "amount=1000&currency=eur&allowed_payment_method_types[0]=card",
                        "2026-10-28.endive", &b),
                 200);
    json_decref(b);
    cr_assert_eq(post_v("/v1/payment_intents", "amount=1000&currency=eur", NULL, &b), 200);
    cr_assert(json_is_true(cm_json_path(b, "automatic_payment_methods.enabled")),
              "on by default since 2023-08-16");
    json_decref(b);
    cr_assert_eq(post_v("/v1/payment_intents",
                        "amount=1000&currency=eur&payment_method=&customer=&description=", NULL,
                        &b),
                 200, "empty optional parameters are unset");
    cr_assert_str_eq(cm_json_str(b, "status", ""), "requires_payment_method");
    json_decref(b);
    cr_assert_eq(post_v("/v1/payment_intents", "amount=1000&currency=eur", "2023-08-16", &b), 200);
    json_decref(b);
    cr_assert_eq(post_v("/v1/payment_intents", "amount=1000&currency=eur", "2022-11-15", &b), 200);
    cr_assert(json_is_null(cm_json_path(b, "automatic_payment_methods")), "off before 2023-08-16");
    json_decref(b);
}

Test(stripe, currencies_and_their_minimum_amounts)
{
    static const struct {
        const char *form, *code, *msg;
    } bad[] = {
        {"amount=1000&currency=xyz", NULL, "Invalid currency: xyz. Stripe currently supports"},
        {"amount=1000&currency=EUR", NULL, "Invalid currency: EUR"},
        {"amount=1000&currency=euro", NULL, "Invalid currency: euro"},
        {"amount=49&currency=usd", "amount_too_small", "Amount must be at least 0.50 usd"},
        {"amount=29&currency=gbp", "amount_too_small", "Amount must be at least 0.30 gbp"},
        {"amount=49&currency=jpy", "amount_too_small", "Amount must be at least 50 jpy"},
        {"amount=0&currency=krw", "amount_too_small", "Amount must be at least 1 krw"},
        {"amount=-50&currency=eur", "amount_too_small", "Amount must be at least 0.50 eur"},
        {"amount=100000000&currency=eur", "amount_too_large",
         "Amount must be no more than 999999.99 eur"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *b;
        long st_ = post_v("/v1/payment_intents", bad[i].form, NULL, &b);
        assert_error(st_, b, 400, bad[i].code, bad[i].code ? "amount" : "currency", bad[i].msg,
                     bad[i].form);
        json_decref(b);
    }
    static const char *const good[] = {"amount=50&currency=usd", "amount=30&currency=gbp",
                                       "amount=50&currency=jpy", "amount=1&currency=krw",
                                       "amount=99999999&currency=eur"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        json_t *b;
        cr_assert_eq(post_v("/v1/payment_intents", good[i], NULL, &b), 200, "%s", good[i]);
        json_decref(b);
    }
}

Test(stripe, the_payment_intent_state_machine_as_documented)
{
    json_t *b;
    char path[128], id[64];
    /* No confirm: nothing is charged, whatever the payment method. */
    cr_assert_eq(post("/v1/payment_intents", "amount=1000&currency=eur", &b), 200);
    cr_assert_str_eq(cm_json_str(b, "status", ""), "requires_payment_method");
    json_decref(b);
    cr_assert_eq(
        post("/v1/payment_intents", "amount=1000&currency=eur&payment_method=pm_card_visa", &b),
        200);
    cr_assert_str_eq(cm_json_str(b, "status", ""), "requires_confirmation");
    cr_assert_eq(cm_json_int(b, "amount_received", -1), 0);
    snprintf(id, sizeof id, "%s", cm_json_str(b, "id", ""));
    json_decref(b);
    json_t *e = sim_journal_effects(jr, "stripe", "charge");
    cr_assert_eq(cm_json_int(e, "count", -1), 0, "no charge without a confirmation");
    json_decref(e);
    snprintf(path, sizeof path, "/v1/payment_intents/%s/capture", id);
    assert_error(post(path, "", &b), b, 400, "payment_intent_unexpected_state", NULL,
                 "because it has a status of requires_confirmation", "capture before confirm");
    json_decref(b);
    snprintf(path, sizeof path, "/v1/payment_intents/%s/confirm", id);
    cr_assert_eq(post(path, "", &b), 200);
    cr_assert_str_eq(cm_json_str(b, "status", ""), "succeeded");
    json_decref(b);
    assert_error(post(path, "", &b), b, 400, "payment_intent_unexpected_state", NULL,
                 "status of succeeded", "confirm twice");
    json_decref(b);
    snprintf(path, sizeof path, "/v1/payment_intents/%s/cancel", id);
    assert_error(post(path, "", &b), b, 400, "payment_intent_unexpected_state", NULL,
                 "may be canceled", "cancel a succeeded intent");
    json_decref(b);

    /* confirm=true without a payment method: the intent is made, the confirmation fails. */
    assert_error(post("/v1/payment_intents", "amount=1000&currency=eur&confirm=true", &b), b, 400,
                 "payment_intent_unexpected_state", "payment_method", "missing a payment method",
                 "confirm=true without a payment method");
    cr_assert_str_eq(cm_json_str(b, "error.payment_intent.status", ""), "requires_payment_method");
    snprintf(id, sizeof id, "%s", cm_json_str(b, "error.payment_intent.id", ""));
    json_decref(b);
    snprintf(path, sizeof path, "/v1/payment_intents/%s/confirm", id);
    assert_error(post(path, "", &b), b, 400, "payment_intent_unexpected_state", "payment_method",
                 "missing a payment method", "confirm without a payment method");
    json_decref(b);
    assert_error(post(path, "payment_method=pm_nope", &b), b, 400, "resource_missing",
                 "payment_method", "No such PaymentMethod", "confirm with an unknown one");
    json_decref(b);
    cr_assert_eq(post(path, "payment_method=pm_card_mastercard&capture_method=manual", &b), 200);
    cr_assert_str_eq(cm_json_str(b, "status", ""), "requires_capture");
    json_decref(b);
    snprintf(path, sizeof path, "/v1/payment_intents/%s/cancel", id);
    cr_assert_eq(post(path, "cancellation_reason=abandoned", &b), 200);
    cr_assert_str_eq(cm_json_str(b, "status", ""), "canceled");
    json_decref(b);
    snprintf(path, sizeof path, "/v1/payment_intents/%s/confirm", id);
    assert_error(post(path, "payment_method=pm_card_visa", &b), b, 400,
                 "payment_intent_unexpected_state", NULL, "status of canceled",
                 "confirm a canceled intent");
    json_decref(b);
    snprintf(form_buf, sizeof form_buf, "payment_intent=%s", id);
    assert_error(post("/v1/refunds", form_buf, &b), b, 400, "charge_not_refundable", NULL,
                 "does not have a successful charge", "refund a canceled intent");
    json_decref(b);
    e = sim_journal_effects(jr, "stripe", "charge");
    cr_assert_eq(cm_json_int(e, "count", -1), 1, "only the one confirmed and captured");
    json_decref(e);
}

Test(stripe, lists_paginate_as_stripe_does)
{
    json_t *b;
    char ids[5][64], path[256];
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(post("/v1/payment_intents", CHARGE("1000", "eur"), &b), 200);
        snprintf(ids[i], sizeof ids[i], "%s", cm_json_str(b, "id", ""));
        json_decref(b);
    }
    /* Newest first, two at a time. */
    cr_assert_eq(get("/v1/payment_intents?limit=2", &b), 200);
    cr_assert_str_eq(cm_json_str(b, "object", ""), "list");
    cr_assert_str_eq(cm_json_str(b, "url", ""), "/v1/payment_intents");
    cr_assert(json_is_true(cm_json_path(b, "has_more")));
    cr_assert_eq(json_array_size(cm_json_path(b, "data")), 2);
    cr_assert_str_eq(cm_json_str(b, "data.0.id", ""), ids[4]);
    cr_assert_str_eq(cm_json_str(b, "data.1.id", ""), ids[3]);
    json_decref(b);
    snprintf(path, sizeof path, "/v1/payment_intents?limit=2&starting_after=%s", ids[3]);
    cr_assert_eq(get(path, &b), 200);
    cr_assert_str_eq(cm_json_str(b, "data.0.id", ""), ids[2]);
    cr_assert_str_eq(cm_json_str(b, "data.1.id", ""), ids[1]);
    cr_assert(json_is_true(cm_json_path(b, "has_more")));
    json_decref(b);
    snprintf(path, sizeof path, "/v1/payment_intents?limit=2&starting_after=%s", ids[1]);
    cr_assert_eq(get(path, &b), 200);
    cr_assert_eq(json_array_size(cm_json_path(b, "data")), 1);
    cr_assert_str_eq(cm_json_str(b, "data.0.id", ""), ids[0]);
    cr_assert(json_is_false(cm_json_path(b, "has_more")));
    json_decref(b);
    snprintf(path, sizeof path, "/v1/payment_intents?limit=2&ending_before=%s", ids[1]);
    cr_assert_eq(get(path, &b), 200);
    cr_assert_str_eq(cm_json_str(b, "data.0.id", ""), ids[3]);
    cr_assert_str_eq(cm_json_str(b, "data.1.id", ""), ids[2]);
    cr_assert(json_is_true(cm_json_path(b, "has_more")), "ids[4] lies beyond");
    json_decref(b);
    cr_assert_eq(get("/v1/payment_intents", &b), 200);
    cr_assert_eq(json_array_size(cm_json_path(b, "data")), 5, "limit 10 by default");
    cr_assert(json_is_false(cm_json_path(b, "has_more")));
    json_decref(b);
    static const struct {
        const char *q, *code, *param, *msg;
    } bad[] = {
        {"limit=0", NULL, "limit", "greater than or equal to 1"},
        {"limit=101", NULL, "limit", "less than or equal to 100"},
        {"limit=ten", "parameter_invalid_integer", "limit", "Invalid integer: ten"},
        {"starting_after=pi_nope", "resource_missing", "starting_after",
         "No such payment_intent: 'pi_nope'"},
        {"starting_after=a&ending_before=b", NULL, "ending_before",
         "You may only specify one of these parameters"},
        {"created[gt]=soon", "parameter_invalid_integer", "created[gt]", "Invalid integer"},
        {"expand[0]=data.customer", NULL, "expand", "does not model"},
        /* Not a parameter of this list: refused as in a POST body. */
        {"limit=2&page=2", "parameter_unknown", "page", "Received unknown parameter: page"},
        {"charge=ch_1", "parameter_unknown", "charge", "Received unknown parameter: charge"},
        {"createdx[gt]=1", "parameter_unknown", "createdx[gt]", "unknown parameter"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(path, sizeof path, "/v1/payment_intents?%s", bad[i].q);
        long st_ = get(path, &b);
        assert_error(st_, b, 400, bad[i].code, bad[i].param, bad[i].msg, bad[i].q);
        json_decref(b);
    }
    cr_assert_eq(get("/v1/payment_intents?created[lt]=1", &b), 200);
    cr_assert_eq(json_array_size(cm_json_path(b, "data")), 0, "none made before 1970");
    json_decref(b);

    /* Refunds, filtered by intent. */
    snprintf(form_buf, sizeof form_buf, "payment_intent=%s&amount=100", ids[0]);
    cr_assert_eq(post("/v1/refunds", form_buf, &b), 200);
    json_decref(b);
    snprintf(form_buf, sizeof form_buf, "payment_intent=%s", ids[1]);
    cr_assert_eq(post("/v1/refunds", form_buf, &b), 200);
    json_decref(b);
    snprintf(path, sizeof path, "/v1/refunds?payment_intent=%s", ids[0]);
    cr_assert_eq(get(path, &b), 200);
    cr_assert_str_eq(cm_json_str(b, "url", ""), "/v1/refunds");
    cr_assert_eq(json_array_size(cm_json_path(b, "data")), 1);
    cr_assert_eq(cm_json_int(b, "data.0.amount", 0), 100);
    json_decref(b);

    /* Events: every change made one, kept without a webhook URL, listed and fetched. */
    cr_assert_eq(get("/v1/events?type=payment_intent.succeeded&limit=100", &b), 200);
    cr_assert_eq(json_array_size(cm_json_path(b, "data")), 5);
    cr_assert_str_eq(cm_json_str(b, "data.0.data.object.id", ""), ids[4]);
    cr_assert_eq(cm_json_int(b, "data.0.pending_webhooks", -1), 0, "no endpoint to deliver to");
    char evt[64];
    snprintf(evt, sizeof evt, "%s", cm_json_str(b, "data.0.id", ""));
    json_decref(b);
    cr_assert_eq(get("/v1/events?type=payment_intent.*", &b), 200);
    cr_assert_eq(json_array_size(cm_json_path(b, "data")), 10, "5 created, 5 succeeded");
    json_decref(b);
    cr_assert_eq(get("/v1/events?types[0]=charge.refunded&types[1]=payment_intent.created", &b),
                 200);
    cr_assert_eq(json_array_size(cm_json_path(b, "data")), 7);
    cr_assert_str_eq(cm_json_str(b, "data.0.type", ""), "charge.refunded");
    json_decref(b);
    snprintf(path, sizeof path, "/v1/events/%s", evt);
    cr_assert_eq(get(path, &b), 200);
    cr_assert_str_eq(cm_json_str(b, "object", ""), "event");
    cr_assert_str_eq(cm_json_str(b, "type", ""), "payment_intent.succeeded");
    cr_assert_str_eq(cm_json_str(b, "data.object.status", ""), "succeeded",
                     "the object as it was at the change");
    json_decref(b);
    assert_error(get("/v1/events/evt_nope", &b), b, 404, "resource_missing", "id",
                 "No such event: 'evt_nope'", "an unknown event");
    json_decref(b);
    sim_stripe_reset(st);
    cr_assert_eq(get("/v1/events", &b), 200);
    cr_assert_eq(json_array_size(cm_json_path(b, "data")), 0, "a reset forgets events");
    json_decref(b);
}

Test(stripe, every_answer_is_in_stripes_envelope)
{
    json_t *b;
    const char *auth[] = {AUTH, FORM_CT, NULL};
    assert_error(req_h("GET", "/v1/customers", auth, NULL, &b, NULL, NULL), b, 404, NULL, NULL,
                 "Unrecognized request URL (GET: /v1/customers). Please see "
                 "https://stripe.com/docs",
                 "an unknown route");
    json_decref(b);
    assert_error(req_h("DELETE", "/v1/payment_intents/pi_x", auth, NULL, &b, NULL, NULL), b, 404,
                 NULL, NULL, "Unrecognized request URL (DELETE: /v1/payment_intents/pi_x)",
                 "a method the path does not take");
    json_decref(b);
    assert_error(req_h("GET", "/v1/payment_intents/pi_x/confirm", auth, NULL, &b, NULL, NULL), b,
                 404, NULL, NULL,
                 "Unrecognized request URL (GET: /v1/payment_intents/pi_x/confirm)",
                 "GET on a POST route");
    json_decref(b);
    assert_error(req_h("GET", "/v1/payment_intents/", auth, NULL, &b, NULL, NULL), b, 404, NULL,
                 NULL, "remove the trailing slash", "an empty id");
    json_decref(b);
    assert_error(req_h("POST", "/", auth, "", &b, NULL, NULL), b, 404, NULL, NULL,
                 "Unrecognized request URL (POST: /)", "the root");
    json_decref(b);
    const char *none[] = {NULL};
    assert_error(req_h("GET", "/v1/customers", none, NULL, &b, NULL, NULL), b, 401, NULL, NULL,
                 "You did not provide an API key", "the key is checked first");
    json_decref(b);
    const char *json_ct[] = {AUTH, "Content-Type: application/json", NULL};
    assert_error(req_h("POST", "/v1/payment_intents", json_ct,
                       "{\"amount\":1000,\"currency\":\"eur\"}", &b, NULL, NULL),
                 b, 400, NULL, NULL,
                 "check that your POST content type is "
                 "application/x-www-form-urlencoded",
                 "a JSON body");
    json_decref(b);
}

Test(stripe, bearer_and_basic_auth_as_stripe_takes_them)
{
    json_t *b;
    char basic[128], b64[64], bh[160];
    const char *user = KEY ":";
    cm_b64_encode((const uint8_t *)user, strlen(user), b64);
    snprintf(basic, sizeof basic, "Authorization: Basic %s", b64);
    const char *h1[] = {basic, NULL};
    cr_assert_eq(req_h("GET", "/v1/payment_intents", h1, NULL, &b, NULL, NULL), 200,
                 "the key as the Basic user name");
    json_decref(b);
    const char *lower[] = {"authorization: bearer " KEY, NULL};
    cr_assert_eq(req_h("GET", "/v1/payment_intents", lower, NULL, &b, NULL, NULL), 200);
    json_decref(b);
    static const char *const pw_user = KEY ":secret";
    cm_b64_encode((const uint8_t *)pw_user, strlen(pw_user), b64);
    snprintf(bh, sizeof bh, "Authorization: Basic %s", b64);
    const char *h2[] = {bh, NULL};
    assert_error(req_h("GET", "/v1/payment_intents", h2, NULL, &b, NULL, NULL), b, 401, NULL, NULL,
                 "Invalid API Key provided", "a Basic password");
    json_decref(b);
    const char *h3[] = {"Authorization: Bearer sk_test_wrong_key_1234", NULL};
    assert_error(req_h("GET", "/v1/payment_intents", h3, NULL, &b, NULL, NULL), b, 401, NULL, NULL,
                 "Invalid API Key provided: sk_test_**********1234", "a wrong key, masked");
    json_decref(b);
    const char *h4[] = {"Authorization: Token " KEY, NULL};
    assert_error(req_h("GET", "/v1/payment_intents", h4, NULL, &b, NULL, NULL), b, 401, NULL, NULL,
                 "Invalid API Key provided", "another scheme");
    json_decref(b);
    const char *h5[] = {"Authorization: Bearer ", NULL};
    assert_error(req_h("GET", "/v1/payment_intents", h5, NULL, &b, NULL, NULL), b, 401, NULL, NULL,
                 "You did not provide an API key", "an empty key");
    json_decref(b);
}

Test(stripe, stripe_version_is_checked_and_echoed)
{
    json_t *b;
    char v[128];
    const char *none[] = {AUTH, NULL};
    cr_assert_eq(req_h("GET", "/v1/payment_intents", none, NULL, &b, "Stripe-Version", v), 200);
    cr_assert_str_eq(v, "2024-06-20", "the account's default");
    json_decref(b);
    static const char *const good[] = {"2024-06-20", "2025-03-31.basil", "2026-10-28.endive"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char vh[64];
        snprintf(vh, sizeof vh, "Stripe-Version: %s", good[i]);
        const char *h[] = {AUTH, vh, NULL};
        cr_assert_eq(req_h("GET", "/v1/payment_intents", h, NULL, &b, "Stripe-Version", v), 200);
        cr_assert_str_eq(v, good[i]);
        json_decref(b);
    }
    static const char *const bad[] = {"2024-13-45",        "2019-2-19", "2024-09-30",
                                      "2025-09-30.acacia", "latest",    "2024-06-20, 2024-06-20"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char vh[64], msg[96];
        snprintf(vh, sizeof vh, "Stripe-Version: %s", bad[i]);
        snprintf(msg, sizeof msg, "Invalid Stripe API version: %s", bad[i]);
        const char *h[] = {AUTH, vh, NULL};
        assert_error(req_h("GET", "/v1/payment_intents", h, NULL, &b, NULL, NULL), b, 400, NULL,
                     NULL, msg, bad[i]);
        json_decref(b);
        json_t *p;
        assert_error(post_v("/v1/payment_intents", CHARGE("1000", "eur"), bad[i], &p), p, 400, NULL,
                     NULL, msg, bad[i]);
        json_decref(p);
    }
    json_t *l = sim_stripe_payment_intents(st);
    cr_assert_eq(cm_json_int(l, "count", -1), 0);
    json_decref(l);
}
