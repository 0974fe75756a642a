/* test_sim_control.c - the control API end to end: a webhook triggered over HTTP reaches
 * an in-process receiver, and reset empties the ledgers. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_clock.h"
#include "cm_http_client.h"
#include "cm_http_server.h"
#include "cm_json.h"
#include "cm_log.h"
#include "sim_control.h"

static sim_control_t ctl;
static cm_http_server_t *srv, *receiver;
static char base[64];
static unsigned recv_port;
static int received;
static int fail_first; /* answer 500 to this many requests first */

static void h_receive(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    __atomic_add_fetch(&received, 1, __ATOMIC_SEQ_CST);
    int fail = __atomic_fetch_sub(&fail_first, 1, __ATOMIC_SEQ_CST) > 0;
    cm_http_resp_text(resp, fail ? 500 : 204, NULL, NULL);
}

static void setup(void)
{
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(cm_http_global_init(), CM_OK);
    cm_log_set_level("warn"); /* keep test output to failures */
    ctl.journal = sim_journal_new(100);
    ctl.retell = sim_retell_new(&(sim_retell_cfg_t){.api_key = "key_t", .seed = 1});
    ctl.calcom = sim_calcom_new(&(sim_calcom_cfg_t){.api_key = "cal_t",
                                                    .webhook_secret = "calsecret_t",
                                                    .taken_status = 400,
                                                    .journal = ctl.journal});
    ctl.stripe = sim_stripe_new(&(sim_stripe_cfg_t){
        .api_key = "sk_test_t", .webhook_secret = "whsec_t", .journal = ctl.journal});
    ctl.fault = sim_fault_new(&(sim_fault_cfg_t){.seed = 1, .journal = ctl.journal});
    srv = cm_http_server_new(&(cm_http_server_cfg_t){.threads = 0, .name = "test.control"});
    receiver = cm_http_server_new(&(cm_http_server_cfg_t){.threads = 0, .name = "test.recv"});
    cr_assert_eq(sim_control_routes(&ctl, srv), CM_OK);
    cr_assert_eq(cm_http_server_route(receiver, "POST /hook", h_receive, NULL), CM_OK);
    cr_assert_eq(cm_http_server_start(srv, err), CM_OK, "%s", err);
    cr_assert_eq(cm_http_server_start(receiver, err), CM_OK, "%s", err);
    snprintf(base, sizeof base, "http://127.0.0.1:%u", cm_http_server_port(srv));
    recv_port = cm_http_server_port(receiver);
    received = fail_first = 0;
}

static void teardown(void)
{
    cm_http_server_free(&srv);
    cm_http_server_free(&receiver);
    sim_retell_free(&ctl.retell);
    sim_calcom_free(&ctl.calcom);
    sim_stripe_free(&ctl.stripe);
    sim_fault_free(&ctl.fault);
    sim_journal_free(&ctl.journal);
}

static long call(const char *method, const char *path, const char *body, json_t **out);

Test(control, faults_routes)
{
    json_t *v;
    cr_assert_eq(call("POST", "/control/faults",
                      "{\"route\":\"GET /x\",\"probability\":2.0,"
                      "\"status\":503}",
                      &v),
                 400);
    cr_assert_str_eq(cm_json_str(v, "detail", ""),
                     "$.probability: must be a number from 0 to 1, not 2");
    json_decref(v);
    cr_assert_eq(call("POST", "/control/faults", "{\"socket\":\"explode\"}", &v), 400);
    cr_assert(strstr(cm_json_str(v, "detail", ""), "$.socket: unknown socket fault 'explode'"));
    json_decref(v);
    cr_assert_eq(call("POST", "/control/faults", "{not json", NULL), 400);
    cr_assert_eq(call("POST", "/control/faults",
                      "{\"provider\":\"calcom\",\"route\":\"POST /v2/bookings\","
                      "\"sequence\":[{\"times\":2,\"status\":503,\"retry_after\":1},"
                      "{\"times\":1,\"socket\":\"reset\"}]}",
                      &v),
                 201);
    int64_t id = cm_json_int(v, "id", 0);
    cr_assert_gt(id, 0);
    json_decref(v);
    cr_assert_eq(
        call("POST", "/control/faults", "[{\"status\":500},{\"status\":501},{\"stat\":1}]", &v),
        400);
    cr_assert(strstr(cm_json_str(v, "detail", ""), "$[2].stat: unknown field"), "%s",
              cm_json_str(v, "detail", ""));
    json_decref(v);
    cr_assert_eq(call("GET", "/control/faults", NULL, &v), 200);
    cr_assert_eq(cm_json_int(v, "count", -1), 1, "a refused batch adds nothing");
    cr_assert_eq(cm_json_int(v, "rules.0.hits", -1), 0);
    json_decref(v);
    cr_assert_eq(call("POST", "/control/faults", "[{\"status\":500},{\"status\":501}]", &v), 201);
    cr_assert_eq(cm_json_int(v, "count", -1), 2);
    json_decref(v);
    char path[64];
    snprintf(path, sizeof path, "/control/faults/%lld", (long long)id);
    cr_assert_eq(call("DELETE", path, NULL, NULL), 204);
    cr_assert_eq(call("DELETE", path, NULL, NULL), 404);
    cr_assert_eq(call("DELETE", "/control/faults", NULL, NULL), 204);
    cr_assert_eq(call("GET", "/control/faults", NULL, &v), 200);
    cr_assert_eq(cm_json_int(v, "count", -1), 0);
    json_decref(v);
    cr_assert_eq(call("GET", "/control/journal?kind=request&limit=5", NULL, &v), 200);
    cr_assert_eq(cm_json_int(v, "count", -1), 0, "control requests are not journaled");
    json_decref(v);
    cr_assert_eq(call("GET", "/control/journal?kind=other", NULL, NULL), 400);
    cr_assert_eq(call("GET", "/control/journal?since=x", NULL, NULL), 400);
    cr_assert_eq(call("GET", "/control/effects?provider=stripe&kind=charge", NULL, &v), 200);
    cr_assert_eq(cm_json_int(v, "count", -1), 0);
    json_decref(v);
    cr_assert_eq(call("GET", "/_sim/health", NULL, NULL), 200);
}

static long call(const char *method, const char *path, const char *body, json_t **out)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", base, path);
    cm_http_client_t *c = cm_http_client_new();
    cm_http_response_t r;
    cm_http_request_t req = {
        .method = method, .url = url, .body = body, .body_len = body ? strlen(body) : 0};
    cr_assert_eq(cm_http_client_do(c, &req, &r), CM_OK, "%s", r.err);
    long st = r.status;
    if (out)
        *out = json_loads(r.body.data ? r.body.data : "", 0, NULL);
    cm_http_response_free(&r);
    cm_http_client_free(&c);
    return st;
}

TestSuite(control, .init = setup, .fini = teardown);

Test(control, health_call_webhook_and_reset)
{
    json_t *v;
    char body[160], path[160];
    cr_assert_eq(call("GET", "/control/health", NULL, &v), 200);
    cr_assert(json_is_true(cm_json_path(v, "ok")));
    json_decref(v);

    cr_assert_eq(call("POST", "/control/retell/calls", "{\"call_id\":\"call_c1\"}", &v), 201);
    cr_assert_str_eq(cm_json_str(v, "call_id", ""), "call_c1");
    json_decref(v);
    cr_assert_eq(call("POST", "/control/retell/calls", "{\"call_id\":\"call_c1\"}", NULL), 409);
    cr_assert_eq(call("POST", "/control/retell/calls", "[1]", NULL), 400);
    cr_assert_eq(call("GET", "/control/retell/calls/call_c1", NULL, NULL), 200);
    cr_assert_eq(call("GET", "/control/retell/calls/call_none", NULL, NULL), 404);

    cr_assert_eq(call("POST", "/control/retell/calls/call_c1/webhook", "{}", NULL), 409,
                 "no URL yet");
    cr_assert_eq(call("PUT", "/control/retell/webhook", "{\"url\":\"nope\"}", NULL), 400);
    snprintf(body, sizeof body, "{\"url\":\"http://127.0.0.1:%u/hook\"}", recv_port);
    cr_assert_eq(call("PUT", "/control/retell/webhook", body, NULL), 204);
    snprintf(path, sizeof path, "/control/retell/calls/call_c1/webhook");
    cr_assert_eq(call("POST", path, "{\"copies\":\"2\"}", NULL), 400);
    cr_assert_eq(call("POST", path, "{\"concurrent\":1}", NULL), 400);
    cr_assert_eq(call("POST", path, "{\"event\":\"call_lost\"}", NULL), 400);
    cr_assert_eq(call("POST", path, "{\"copies\":65}", NULL), 400);
    cr_assert_eq(received, 0, "refused triggers send nothing");
    cr_assert_eq(
        call("POST", path, "{\"event\":\"call_ended\",\"copies\":3,\"concurrent\":true}", &v), 200);
    cr_assert_eq(json_array_size(cm_json_path(v, "deliveries")), 3);
    cr_assert_eq(cm_json_int(v, "deliveries.2.status", 0), 204);
    cr_assert(json_is_number(cm_json_path(v, "deliveries.0.ms")));
    cr_assert_eq(strncmp(cm_json_str(v, "signature", ""), "v=", 2), 0);
    json_decref(v);
    cr_assert_eq(received, 3);

    cr_assert_eq(call("GET", "/control/calcom/bookings", NULL, &v), 200);
    cr_assert_eq(cm_json_int(v, "count", -1), 0);
    json_decref(v);
    cr_assert_eq(call("GET", "/control/stripe/payment_intents", NULL, &v), 200);
    cr_assert_eq(cm_json_int(v, "count", -1), 0);
    json_decref(v);

    cr_assert_eq(call("POST", "/control/reset", NULL, NULL), 204);
    cr_assert_eq(call("GET", "/control/retell/calls/call_c1", NULL, NULL), 404);
    cr_assert_eq(call("POST", "/control/retell/calls", "{\"call_id\":\"call_c1\"}", NULL), 201);
    cr_assert_eq(call("POST", path, "{}", NULL), 409, "reset forgets the webhook URL");
}

Test(control, provider_control_routes)
{
    json_t *v;
    char body[200], path[160];
    /* Retell: async trigger, its report, a replay, delivery defaults. */
    cr_assert_eq(call("POST", "/control/retell/calls", "{\"call_id\":\"call_a\"}", NULL), 201);
    snprintf(body, sizeof body, "{\"url\":\"http://127.0.0.1:%u/hook\"}", recv_port);
    cr_assert_eq(call("PUT", "/control/retell/webhook", body, NULL), 204);
    cr_assert_eq(call("POST", "/control/retell/calls/call_a/webhook", "{\"bogus\":1}", &v), 400);
    cr_assert(strstr(cm_json_str(v, "detail", ""), "bogus: unknown option"));
    json_decref(v);
    cr_assert_eq(call("POST", "/control/retell/calls/call_a/webhook",
                      "{\"event\":\"lifecycle\",\"async\":true}", &v),
                 202);
    snprintf(path, sizeof path, "/control/retell/deliveries/%s", cm_json_str(v, "delivery_id", ""));
    json_decref(v);
    int64_t deadline = cm_clock_mono_ms() + 5000;
    for (;;) {
        cr_assert_eq(call("GET", path, NULL, &v), 200);
        if (strcmp(cm_json_str(v, "status", ""), "done") == 0)
            break;
        json_decref(v);
        cr_assert_lt(cm_clock_mono_ms(), deadline);
        cm_clock_sleep_ms(5);
    }
    cr_assert_eq(json_array_size(cm_json_path(v, "deliveries")), 3);
    json_decref(v);
    strncat(path, "/replay", sizeof path - strlen(path) - 1);
    cr_assert_eq(call("POST", path, "{}", &v), 200);
    cr_assert_eq(json_array_size(cm_json_path(v, "deliveries")), 3);
    json_decref(v);
    cr_assert_eq(received, 6);
    cr_assert_eq(call("GET", "/control/retell/deliveries/dlv_nope", NULL, NULL), 404);
    cr_assert_eq(call("PUT", "/control/retell/delivery", "{\"retries\":11}", NULL), 400);
    cr_assert_eq(call("PUT", "/control/retell/delivery", "{\"retries\":0}", &v), 200);
    cr_assert_eq(cm_json_int(v, "retries", -1), 0);
    json_decref(v);
    /* Stripe and Cal.com settings. */
    cr_assert_eq(call("PUT", "/control/stripe/webhook", "{\"url\":\"ftp://x\"}", NULL), 400);
    cr_assert_eq(call("PUT", "/control/stripe/webhook",
                      "{\"url\":\"http://127.0.0.1:9/x\","
                      "\"retry_schedule\":[\"-1s\"]}",
                      NULL),
                 400);
    cr_assert_eq(call("PUT", "/control/stripe/webhook",
                      "{\"url\":\"http://127.0.0.1:9/x\","
                      "\"retry_schedule\":[\"10ms\"],\"twin\":true}",
                      NULL),
                 204);
    cr_assert_eq(call("PUT", "/control/stripe/settings", "{\"decline_next\":-2}", NULL), 400);
    cr_assert_eq(call("PUT", "/control/stripe/settings", "{\"decline_next\":1}", NULL), 204);
    cr_assert_eq(call("GET", "/control/stripe/refunds", NULL, &v), 200);
    cr_assert_eq(cm_json_int(v, "count", -1), 0);
    json_decref(v);
    cr_assert_eq(call("PUT", "/control/calcom/webhook", "{\"url\":\"nope\"}", NULL), 400);
    cr_assert_eq(call("PUT", "/control/calcom/webhook", "{}", NULL), 400, "url is required");
    cr_assert_eq(call("PUT", "/control/calcom/webhook", "{\"url\":null}", NULL), 204,
                 "null clears it (attach mode undoes a scenario's URL so)");
    cr_assert_eq(call("PUT", "/control/calcom/webhook", "{\"url\":\"http://127.0.0.1:9/c\"}", NULL),
                 204);
    cr_assert_eq(
        call("POST", "/control/calcom/busy",
             "{\"hostId\":2,\"start\":\"2050-01-01T10:00:00Z\",\"end\":\"2050-01-01T11:00:00Z\"}",
             NULL),
        204);
    cr_assert_eq(call("POST", "/control/calcom/busy", "{\"hostId\":9,\"start\":\"x\"}", NULL), 400);
    cr_assert_eq(call("POST", "/control/reset", NULL, NULL), 204);
}

/* Polls a delivery until its status is want (deadline 10 s); the report. */
static json_t *wait_delivery(const char *path, const char *want)
{
    int64_t deadline = cm_clock_mono_ms() + 10000;
    for (;;) {
        json_t *v;
        cr_assert_eq(call("GET", path, NULL, &v), 200);
        if (strcmp(cm_json_str(v, "status", ""), want) == 0)
            return v;
        json_decref(v);
        cr_assert_lt(cm_clock_mono_ms(), deadline, "%s never became %s", path, want);
        cm_clock_sleep_ms(5);
    }
}

static void assert_refused_to(const char *method, const char *path, const char *body, long status,
                              const char *detail)
{
    json_t *v = NULL;
    long got = call(method, path, body, &v);
    cr_assert_eq(got, status, "%s -> %ld, want %ld", body, got, status);
    cr_assert_not_null(strstr(cm_json_str(v, "detail", ""), detail), "%s: detail '%s' lacks '%s'",
                       body, cm_json_str(v, "detail", ""), detail);
    json_decref(v);
}

static void assert_refused(const char *path, const char *body, long status, const char *detail)
{
    assert_refused_to("POST", path, body, status, detail);
}

typedef struct {
    const char *body;
    long status;
    const char *detail; /* a part of the problem's detail */
} refusal_t;

static void assert_refusals(const char *path, const refusal_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_refused(path, r[i].body, r[i].status, r[i].detail);
}

Test(control, stripe_events_on_request)
{
    json_t *v;
    char body[256], path[96];
    const char *route = "/control/stripe/events";
    assert_refused(route, "{\"type\":\"payment_intent.succeeded\",\"object\":{}}", 409,
                   "no webhook URL");
    snprintf(body, sizeof body,
             "{\"url\":\"http://127.0.0.1:%u/hook\",\"retry_schedule\":[\"50ms\",\"100ms\"]}",
             recv_port);
    cr_assert_eq(call("PUT", "/control/stripe/webhook", body, NULL), 204);

    static const refusal_t refused[] = {
        {"", 400, ""},
        {"{\"type\":\"payment_intent.succeeded\",\"object\":{},\"bogus\":1}", 400,
         "bogus: unknown option"},
        {"{\"object\":{}}", 400, "type is required"},
        {"{\"type\":\"succeeded\",\"object\":{}}", 400, "type must be"},
        {"{\"type\":7,\"object\":{}}", 400, "type must be a string"},
        {"{\"type\":\"charge.refunded\",\"object\":[]}", 400, "object must be a JSON object"},
        {"{\"type\":\"charge.refunded\"}", 400, "object must be"},
        {"{\"type\":\"charge.refunded\",\"object\":{},\"copies\":21}", 400,
         "copies must be between 1 and 20"},
        {"{\"type\":\"charge.refunded\",\"object\":{},\"copies\":\"2\"}", 400,
         "copies must be an integer"},
        {"{\"type\":\"charge.refunded\",\"object\":{},\"forge\":1}", 400,
         "forge must be true or false"},
        {"{\"type\":\"charge.refunded\",\"object\":{},\"timestamp_offset\":\"-6 min\"}", 400,
         "timestamp_offset: "},
        {"{\"type\":\"charge.refunded\",\"object\":{},\"timestamp_offset\":\"0.5ms\"}", 400,
         "timestamp_offset: "},
        {"{\"type\":\"charge.refunded\",\"object\":{},\"timestamp_offset\":-6}", 400,
         "timestamp_offset must be a string"},
        {"{\"type\":\"charge.refunded\",\"object\":{},\"created\":-1}", 400, "created must be"},
    };
    assert_refusals(route, refused, sizeof refused / sizeof refused[0]);
    cr_assert_eq(received, 0, "refused events send nothing");

    /* 500 then 204: the answer shows the first attempt, the retry follows. */
    fail_first = 1;
    int64_t before = cm_clock_now_s();
    cr_assert_eq(call("POST", route,
                      "{\"type\":\"payment_intent.succeeded\",\"object\":{\"id\":\"pi_9\"},"
                      "\"copies\":2,\"timestamp_offset\":\"-6m\"}",
                      &v),
                 200);
    cr_assert_str_eq(cm_json_str(v, "status", ""), "retrying");
    cr_assert_str_eq(cm_json_str(v, "event.data.object.object", ""), "payment_intent");
    cr_assert_eq(json_array_size(cm_json_path(v, "deliveries")), 2);
    cr_assert_eq(cm_json_int(v, "deliveries.0.status", 0), 500);
    cr_assert_eq(cm_json_int(v, "deliveries.1.status", 0), 204);
    const char *sig = cm_json_str(v, "deliveries.1.attempts.0.signature", "");
    int64_t t = strncmp(sig, "t=", 2) == 0 ? strtoll(sig + 2, NULL, 10) : 0;
    cr_assert(t >= before - 360 && t <= cm_clock_now_s() - 360, "%s", sig);
    snprintf(path, sizeof path, "/control/stripe/deliveries/%s", cm_json_str(v, "delivery_id", ""));
    json_decref(v);
    v = wait_delivery(path, "done");
    cr_assert_eq(json_array_size(cm_json_path(v, "deliveries.0.attempts")), 2);
    cr_assert_eq(cm_json_int(v, "deliveries.0.status", 0), 204);
    json_decref(v);
    cr_assert_eq(received, 3);
    cr_assert_eq(call("GET", "/control/stripe/deliveries/dlv_stripe_999999", NULL, NULL), 404);
    cr_assert_eq(call("GET", "/control/journal?provider=stripe&kind=delivery", NULL, &v), 200);
    cr_assert_eq(cm_json_int(v, "count", -1), 3, "every attempt journaled");
    json_decref(v);
}

Test(control, calcom_events_on_request)
{
    json_t *v;
    char body[160], path[96];
    const char *route = "/control/calcom/events";
    assert_refused(route, "{\"trigger\":\"BOOKING_CREATED\",\"payload\":{}}", 409,
                   "no webhook URL");
    snprintf(body, sizeof body, "{\"url\":\"http://127.0.0.1:%u/hook\"}", recv_port);
    cr_assert_eq(call("PUT", "/control/calcom/webhook", body, NULL), 204);

    static const refusal_t refused[] = {
        {"{\"trigger\":\"BOOKING_CREATED\",\"payload\":{},\"retries\":1}", 400,
         "retries: unknown option"},
        {"{\"payload\":{}}", 400, "trigger is required"},
        {"{\"trigger\":\"BOOKING_LOST\",\"payload\":{}}", 400, "trigger must be one of"},
        {"{\"trigger\":\"BOOKING_CREATED\"}", 400, "exactly one"},
        {"{\"trigger\":\"BOOKING_CREATED\",\"payload\":{},\"booking_uid\":\"u\"}", 400,
         "exactly one"},
        {"{\"trigger\":\"BOOKING_CREATED\",\"payload\":\"x\"}", 400,
         "payload must be a JSON object"},
        {"{\"trigger\":\"BOOKING_CREATED\",\"booking_uid\":7}", 400,
         "booking_uid must be a string"},
        {"{\"trigger\":\"BOOKING_CREATED\",\"payload\":{},\"copies\":21}", 400,
         "copies must be between 1 and 20"},
        {"{\"trigger\":\"BOOKING_CREATED\",\"booking_uid\":\"nope\"}", 404, "no booking 'nope'"},
    };
    assert_refusals(route, refused, sizeof refused / sizeof refused[0]);
    cr_assert_eq(received, 0, "refused webhooks send nothing");

    fail_first = 1; /* Cal.com does not retry, not even after a 500 */
    cr_assert_eq(call("POST", route,
                      "{\"trigger\":\"BOOKING_CANCELLED\",\"payload\":{\"uid\":\"bk_506\","
                      "\"status\":\"CANCELLED\"},\"copies\":2}",
                      &v),
                 200);
    cr_assert_str_eq(cm_json_str(v, "status", ""), "done");
    cr_assert_str_eq(cm_json_str(v, "event.triggerEvent", ""), "BOOKING_CANCELLED");
    cr_assert_str_eq(cm_json_str(v, "event.payload.uid", ""), "bk_506");
    cr_assert_eq(cm_json_int(v, "deliveries.0.status", 0), 500);
    cr_assert_eq(cm_json_int(v, "deliveries.1.status", 0), 204);
    cr_assert_eq(json_array_size(cm_json_path(v, "deliveries.0.attempts")), 1);
    cr_assert_eq(strlen(cm_json_str(v, "deliveries.1.attempts.0.signature", "")), 64);
    snprintf(path, sizeof path, "/control/calcom/deliveries/%s", cm_json_str(v, "delivery_id", ""));
    json_decref(v);
    cr_assert_eq(call("GET", path, NULL, &v), 200);
    cr_assert_eq(json_array_size(cm_json_path(v, "deliveries")), 2);
    json_decref(v);
    cr_assert_eq(received, 2);
    cr_assert_eq(call("GET", "/control/calcom/deliveries/dlv_calcom_999999", NULL, NULL), 404);
}

/* ---- durations in the one grammar, and the deprecated "_ms" forms ------------------- */

/* Creates call call_id and points Retell's webhooks at the receiver. */
static void retell_ready(const char *call_id)
{
    char body[96];
    snprintf(body, sizeof body, "{\"call_id\":\"%s\"}", call_id);
    cr_assert_eq(call("POST", "/control/retell/calls", body, NULL), 201);
    snprintf(body, sizeof body, "{\"url\":\"http://127.0.0.1:%u/hook\"}", recv_port);
    cr_assert_eq(call("PUT", "/control/retell/webhook", body, NULL), 204);
}

/* Triggers call_id's webhook with body, which asks for a 50 ms delay, one retry 10 ms
 * after a failed attempt, and v= six minutes in the past; checks that it went so (the
 * receiver fails the first attempt). The report. */
static json_t *retell_delayed_retried_stale(const char *call_id, const char *body)
{
    char path[96];
    json_t *v;
    long long sig = -1;
    snprintf(path, sizeof path, "/control/retell/calls/%s/webhook", call_id);
    fail_first = 1;
    int64_t t0 = cm_clock_now_ms(), m0 = cm_clock_mono_ms();
    cr_assert_eq(call("POST", path, body, &v), 200, "%s", body);
    cr_assert_geq(cm_clock_mono_ms() - m0, 50, "delay waited");
    cr_assert_eq(cm_json_int(v, "deliveries.0.status", 0), 204);
    cr_assert_eq(json_array_size(cm_json_path(v, "deliveries.0.attempts")), 2);
    cr_assert_eq(sscanf(cm_json_str(v, "signature", ""), "v=%lld,", &sig), 1);
    cr_assert(sig >= t0 - 360000 && sig <= cm_clock_now_ms() - 360000, "v=%lld, sent at %lld", sig,
              (long long)t0);
    return v;
}

/* Sets Stripe's webhook to the receiver, with settings (JSON members) besides the URL. */
static void stripe_hook(const char *settings)
{
    char body[256];
    snprintf(body, sizeof body, "{\"url\":\"http://127.0.0.1:%u/hook\",%s}", recv_port, settings);
    cr_assert_eq(call("PUT", "/control/stripe/webhook", body, NULL), 204, "%s", body);
}

Test(control, duration_settings_in_the_one_grammar)
{
    json_t *v;
    retell_ready("call_d");

    cr_assert_eq(call("PUT", "/control/retell/delivery",
                      "{\"retries\":1,\"retry_interval\":\"10ms\",\"timeout\":\"2s\"}", &v),
                 200);
    cr_assert_eq(cm_json_int(v, "retry_interval_ms", -1), 10, "answers keep milliseconds");
    cr_assert_eq(cm_json_int(v, "timeout_ms", -1), 2000);
    cr_assert_null(cm_json_path(v, "deprecated"), "nothing deprecated in the current form");
    json_decref(v);

    v = retell_delayed_retried_stale("call_d", "{\"delay\":\"50ms\",\"timeout\":\"1s\","
                                               "\"retry_interval\":\"10ms\",\"retries\":1,"
                                               "\"timestamp_offset\":\"-6m\"}");
    cr_assert_null(cm_json_path(v, "deprecated"));
    json_decref(v);

    stripe_hook("\"retry_schedule\":[\"1m\",\"10m\",\"1h\"],\"timeout\":\"2s\"");
    cr_assert_eq(call("PUT", "/control/stripe/settings", "{\"hold\":\"100ms\"}", NULL), 204);
    cr_assert_eq(call("PUT", "/control/stripe/settings", "{}", NULL), 204, "hold back to 0");

    static const struct {
        const char *method, *path, *body, *detail;
    } refused[] = {
        {"POST", "/control/retell/calls/call_d/webhook", "{\"delay\":\"1s\",\"delay_ms\":1000}",
         "give delay or delay_ms, not both (delay_ms is its deprecated form)"},
        {"POST", "/control/retell/calls/call_d/webhook",
         "{\"timestamp_offset\":\"-6m\",\"timestamp_offset_ms\":-360000}",
         "give timestamp_offset or timestamp_offset_ms, not both"},
        {"POST", "/control/retell/calls/call_d/webhook", "{\"delay\":\"2 s\"}",
         "delay: \"2 s\" is not a duration"},
        {"POST", "/control/retell/calls/call_d/webhook", "{\"delay\":200}",
         "delay must be a string, a duration"},
        {"POST", "/control/retell/calls/call_d/webhook", "{\"delay\":\"61m\"}",
         "delay must be from 0ms to 1h"},
        {"POST", "/control/retell/calls/call_d/webhook", "{\"delay_ms\":3600001}",
         "delay_ms must be from 0 to 3600000"},
        {"POST", "/control/retell/calls/call_d/webhook", "{\"timeout\":\"-1s\"}",
         "timeout: \"-1s\" is not a duration"},
        {"POST", "/control/retell/calls/call_d/webhook", "{\"timeout\":\"3h\"}",
         "timeout must be from 0ms to 10000s"},
        {"POST", "/control/retell/calls/call_d/webhook", "{\"retry_interval\":\"0.5ms\"}",
         "retry_interval: \"0.5ms\" is not a whole number of milliseconds"},
        {"POST", "/control/retell/calls/call_d/webhook", "{\"timestamp_offset\":\"-6 min\"}",
         "timestamp_offset: \"-6 min\" is not a duration"},
        {"POST", "/control/retell/calls/call_d/webhook", "{\"timestamp_offset\":\"87601h\"}",
         "timestamp_offset must be from -87600h to 87600h"},
        {"POST", "/control/retell/calls/call_d/webhook", "{\"timestamp_offset_ms\":\"-6m\"}",
         "timestamp_offset_ms must be an integer of milliseconds"},
        {"PUT", "/control/retell/delivery", "{\"timeout\":\"0s\"}",
         "timeout must be from 1ms to 10000s"},
        {"PUT", "/control/retell/delivery", "{\"retry_interval\":\"1s\",\"retry_interval_ms\":1}",
         "give retry_interval or retry_interval_ms, not both"},
        {"PUT", "/control/stripe/webhook",
         "{\"url\":\"http://127.0.0.1:9/x\",\"retry_schedule\":[\"1m\",\"1 m\"]}",
         "retry_schedule[1]: \"1 m\" is not a duration"},
        {"PUT", "/control/stripe/webhook",
         "{\"url\":\"http://127.0.0.1:9/x\",\"retry_schedule\":[\"73h\"]}",
         "retry_schedule[0] must be from 0ms to 72h"},
        {"PUT", "/control/stripe/webhook",
         "{\"url\":\"http://127.0.0.1:9/x\",\"retry_schedule\":[\"1m\"],"
         "\"retry_schedule_ms\":[60000]}",
         "give retry_schedule or retry_schedule_ms, not both"},
        {"PUT", "/control/stripe/webhook", "{\"url\":\"http://127.0.0.1:9/x\",\"timeout\":\"0s\"}",
         "timeout must be from 1ms to 10000s"},
        {"PUT", "/control/stripe/webhook",
         "{\"url\":\"http://127.0.0.1:9/x\",\"timeout\":\"1s\",\"timeout_ms\":1000}",
         "give timeout or timeout_ms, not both"},
        {"PUT", "/control/stripe/settings", "{\"hold\":\"2m\"}", "hold must be from 0ms to 1m"},
        {"PUT", "/control/stripe/settings", "{\"hold\":\"1s\",\"hold_ms\":1000}",
         "give hold or hold_ms, not both"},
        {"PUT", "/control/stripe/settings", "{\"hold\":\"soon\"}",
         "hold: \"soon\" is not a duration"},
        {"POST", "/control/stripe/events",
         "{\"type\":\"charge.refunded\",\"object\":{},\"timestamp_offset\":\"-87601h\"}",
         "timestamp_offset must be from -87600h to 87600h"},
        {"POST", "/control/stripe/events",
         "{\"type\":\"charge.refunded\",\"object\":{},\"timestamp_offset_ms\":0}",
         "timestamp_offset_ms: unknown option"},
    };
    int before = received;
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        assert_refused_to(refused[i].method, refused[i].path, refused[i].body, 400,
                          refused[i].detail);
    cr_assert_eq(received, before, "refused triggers send nothing");
}

/* The deprecated forms' warnings go to a log file of this test's own (each test runs in
 * its own process); opened before the servers start, as cm_log_open wants. */
static char log_path[64];

static void setup_logged(void)
{
    snprintf(log_path, sizeof log_path, "/tmp/test_sim_control.XXXXXX");
    int fd = mkstemp(log_path);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(cm_log_open(log_path), CM_OK);
    setup();
}

static void teardown_logged(void)
{
    teardown();
    unlink(log_path);
}

/* 1 when the log has a warn line whose message has want (as JSON-escaped in the log). */
static int log_warns(const char *want)
{
    char text[16384];
    FILE *f = fopen(log_path, "r");
    cr_assert_not_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        if (strstr(line, "\"level\":\"warn\"") && strstr(line, want))
            return 1;
    return 0;
}

TestSuite(control_deprecated, .init = setup_logged, .fini = teardown_logged);

#define GONE "\" is deprecated and goes in the next release; write "

/* Sends body with method to path, expects status and an answer whose last "deprecated"
 * note is note; the answer. */
static json_t *call_noted(const char *method, const char *path, const char *body, long status,
                          const char *note)
{
    json_t *v = NULL;
    cr_assert_eq(call(method, path, body, &v), status, "%s", body);
    const json_t *notes = cm_json_path(v, "deprecated");
    cr_assert_str_eq(json_string_value(json_array_get(notes, json_array_size(notes) - 1)), note,
                     "%s", body);
    return v;
}

Test(control_deprecated, old_ms_forms_taken_warned_and_noted)
{
    json_t *v;
    retell_ready("call_o");

    v = retell_delayed_retried_stale("call_o", "{\"delay_ms\":50,\"timeout_ms\":1000,"
                                               "\"retry_interval_ms\":10,\"retries\":1,"
                                               "\"timestamp_offset_ms\":-360000}");
    static const char *const notes[] = {
        "\"timestamp_offset_ms" GONE "\"timestamp_offset\": \"-6m\"",
        "\"retry_interval_ms" GONE "\"retry_interval\": \"10ms\"",
        "\"timeout_ms" GONE "\"timeout\": \"1s\"",
        "\"delay_ms" GONE "\"delay\": \"50ms\"",
    };
    cr_assert_eq(json_array_size(cm_json_path(v, "deprecated")), 4, "one note per old field");
    for (size_t i = 0; i < 4; i++)
        cr_expect_str_eq(json_string_value(json_array_get(cm_json_path(v, "deprecated"), i)),
                         notes[i]);
    json_decref(v);

    /* What the scenario runner sends today, and an asynchronous trigger: noted too. */
    const char *hook = "/control/retell/calls/call_o/webhook";
    json_decref(call_noted("POST", hook,
                           "{\"copies\":1,\"forge\":false,\"concurrent\":false,"
                           "\"timestamp_offset_ms\":0,\"event\":\"call_analyzed\"}",
                           200, "\"timestamp_offset_ms" GONE "\"timestamp_offset\": \"0ms\""));
    v = call_noted("POST", hook, "{\"async\":true,\"delay_ms\":10}", 202,
                   "\"delay_ms" GONE "\"delay\": \"10ms\"");
    char path[96];
    snprintf(path, sizeof path, "/control/retell/deliveries/%s", cm_json_str(v, "delivery_id", ""));
    json_decref(v);
    /* Done before fail_first is set again below, which it must not take. */
    json_decref(wait_delivery(path, "done"));

    v = call_noted("PUT", "/control/retell/delivery",
                   "{\"retry_interval_ms\":20,\"timeout_ms\":3000}", 200,
                   "\"timeout_ms" GONE "\"timeout\": \"3s\"");
    cr_assert_eq(cm_json_int(v, "retry_interval_ms", -1), 20);
    cr_assert_eq(cm_json_int(v, "timeout_ms", -1), 3000);
    cr_assert_eq(json_array_size(cm_json_path(v, "deprecated")), 2);
    json_decref(v);

    /* The Stripe settings answer 204, without a body: the log alone tells. */
    stripe_hook("\"retry_schedule_ms\":[10],\"timeout_ms\":2000");
    cr_assert_eq(call("PUT", "/control/stripe/settings", "{\"hold_ms\":0}", NULL), 204);
    /* ... and the schedule was taken: a failed first attempt is retried 10 ms later. */
    fail_first = 1;
    cr_assert_eq(
        call("POST", "/control/stripe/events", "{\"type\":\"charge.refunded\",\"object\":{}}", &v),
        200);
    snprintf(path, sizeof path, "/control/stripe/deliveries/%s", cm_json_str(v, "delivery_id", ""));
    json_decref(v);
    v = wait_delivery(path, "done");
    cr_assert_eq(json_array_size(cm_json_path(v, "deliveries.0.attempts")), 2);
    json_decref(v);

    static const char *const warned[] = {"timestamp_offset_ms", "retry_interval_ms",
                                         "timeout_ms",          "delay_ms",
                                         "retry_schedule_ms",   "hold_ms"};
    for (size_t i = 0; i < sizeof warned / sizeof warned[0]; i++) {
        char want[96];
        snprintf(want, sizeof want, "\\\"%s\\\" is deprecated and goes in the next release",
                 warned[i]);
        cr_expect(log_warns(want), "no warn line for %s", warned[i]);
    }
    /* A fault rule's bare number warns through the same function. */
    cr_assert_eq(call("POST", "/control/faults",
                      "{\"provider\":\"stripe\",\"route\":\"GET /none\",\"latency\":5}", NULL),
                 201);
    cr_expect(log_warns("a duration as a bare number (5) is deprecated: write \\\"5ms\\\""));
}

/* ---- every number of every route, at its extremes ---------------------------------------- */

/* The body a route's number is set in, when setting it alone into "{}" (or the route's own
 * base) would not reach its check: other required fields, arrays to index. (route, field)
 * first, then (route, NULL). A route in sim_control_numbers without a base here fails the
 * test, so a new number is seen untested rather than passed over. */
static const struct {
    const char *route, *field, *body;
} number_bases[] = {
    {"POST /control/faults", "latency.uniform.0", "{\"latency\":{\"uniform\":[0,\"600000ms\"]}}"},
    {"POST /control/faults", "latency.uniform.1", "{\"latency\":{\"uniform\":[\"0ms\",0]}}"},
    {"POST /control/faults", "latency.lognormal.median",
     "{\"latency\":{\"lognormal\":{\"median\":1,\"sigma\":0.5}}}"},
    {"POST /control/faults", "latency.lognormal.sigma",
     "{\"latency\":{\"lognormal\":{\"median\":\"1s\",\"sigma\":0}}}"},
    {"POST /control/faults", NULL, "{\"status\":503}"},
    {"DELETE /control/faults/{id}", NULL, NULL},
    {"GET /control/journal", NULL, NULL},
    {"POST /control/retell/calls", NULL, "{}"},
    {"POST /control/retell/calls/{call_id}/webhook", NULL, "{}"},
    {"PUT /control/retell/delivery", NULL, "{}"},
    {"POST /control/calcom/busy", NULL,
     "{\"start\":\"2050-09-05T10:00:00.000Z\",\"end\":\"2050-09-05T11:00:00.000Z\"}"},
    {"POST /control/calcom/events", NULL, "{\"trigger\":\"BOOKING_CANCELLED\",\"payload\":{}}"},
    {"PUT /control/stripe/webhook", "retry_schedule_ms.0",
     "{\"url\":\"http://127.0.0.1:9/x\",\"retry_schedule_ms\":[0]}"},
    {"PUT /control/stripe/webhook", NULL, "{\"url\":\"http://127.0.0.1:9/x\"}"},
    {"PUT /control/stripe/settings", NULL, "{}"},
    {"POST /control/stripe/events", NULL, "{\"type\":\"charge.refunded\",\"object\":{}}"},
};

static int number_base(const sim_control_number_t *n, const char **body)
{
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < sizeof number_bases / sizeof number_bases[0]; i++)
            if (!strcmp(number_bases[i].route, n->route) &&
                (pass ? !number_bases[i].field
                      : number_bases[i].field && !strcmp(number_bases[i].field, n->field))) {
                *body = number_bases[i].body;
                return 1;
            }
    return 0;
}

/* base with v (taken) at the dotted path, objects made on the way; a new compact text. */
static char *body_with(const char *start, const char *path, json_t *v)
{
    json_t *root = json_loads(start, 0, NULL), *cur = root;
    char seg[64];
    cr_assert_not_null(root, "base %s", start);
    for (const char *p = path;;) {
        size_t n = strcspn(p, ".");
        snprintf(seg, sizeof seg, "%.*s", (int)n, p);
        int last = p[n] == '\0';
        if (json_is_array(cur)) {
            size_t i = strtoul(seg, NULL, 10);
            cr_assert_lt(i, json_array_size(cur), "%s: no index %s in %s", path, seg, start);
            if (last) {
                json_array_set_new(cur, i, v);
                break;
            }
            cur = json_array_get(cur, i);
        } else {
            if (last) {
                json_object_set_new(cur, seg, v);
                break;
            }
            if (!json_object_get(cur, seg))
                json_object_set_new(cur, seg, json_object());
            cur = json_object_get(cur, seg);
        }
        p += n + 1;
    }
    char *text = json_dumps(root, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(root);
    return text;
}

/* The field's name as a refusal says it: the last part of its path that is no index. */
static void field_name(const char *path, char out[64])
{
    char copy[128];
    snprintf(copy, sizeof copy, "%s", path);
    out[0] = '\0';
    for (char *t = strtok(copy, "."); t; t = strtok(NULL, "."))
        if (strspn(t, "0123456789") != strlen(t))
            snprintf(out, 64, "%s", t);
}

/* Sends one value (JSON text for a body number, else the parameter's text) for number n. */
static long send_number(const sim_control_number_t *n, const char *value, json_t **out)
{
    const char *start = NULL;
    char method[8], path[256];
    cr_assert(number_base(n, &start), "%s %s has no base body in number_bases: add one", n->route,
              n->field);
    sscanf(n->route, "%7s %255s", method, path);
    char *pat = strchr(n->route, ' ') + 1;
    /* Route parameters: the number for a path number, else one that names nothing. */
    char concrete[256] = "";
    for (const char *p = pat; *p;) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            int is_num = n->in == SIM_NUM_PATH && !strncmp(p + 1, n->field, strlen(n->field));
            strncat(concrete, is_num ? value : "call_none", sizeof concrete - strlen(concrete) - 1);
            p = close + 1;
        } else {
            strncat(concrete, p, 1);
            p++;
        }
    }
    if (n->in == SIM_NUM_QUERY) {
        char enc[128] = "";
        for (const char *v = value; *v; v++) {
            char c[4];
            snprintf(c, sizeof c,
                     isalnum((unsigned char)*v) || *v == '-' || *v == '.' ? "%c" : "%%%02X",
                     (unsigned char)*v);
            strncat(enc, c, sizeof enc - strlen(enc) - 1);
        }
        snprintf(path, sizeof path, "%s?%s=%s", concrete, n->field, enc);
    } else {
        snprintf(path, sizeof path, "%s", concrete);
    }
    char *body = NULL;
    if (n->in == SIM_NUM_BODY) {
        json_error_t je;
        json_t *v = json_loads(value, JSON_DECODE_ANY, &je);
        /* Beyond what jansson holds: spliced in as text. */
        char *b = body_with(start, n->field, v ? v : json_string("@@"));
        if (!v) {
            char *at = strstr(b, "\"@@\"");
            body = malloc(strlen(b) + strlen(value) + 1);
            sprintf(body, "%.*s%s%s", (int)(at - b), b, value, at + 4);
            free(b);
        } else {
            body = b;
        }
    }
    long st = call(method, path, body, out);
    free(body);
    return st;
}

static void assert_number_refused(const sim_control_number_t *n, const char *value)
{
    json_t *v = NULL;
    char name[64];
    long st = send_number(n, value, &v);
    field_name(n->field, name);
    const char *detail = cm_json_str(v, "detail", "");
    cr_assert_eq(st, 400, "%s %s=%s answered %ld (%s)", n->route, n->field, value, st, detail);
    /* Numbers jansson cannot hold are refused with the whole body, at their column. */
    cr_assert(strstr(detail, name) || strstr(detail, "invalid JSON"),
              "%s %s=%s: detail '%s' does not name %s", n->route, n->field, value, detail, name);
    json_decref(v);
}

static void assert_number_taken(const sim_control_number_t *n, const char *value)
{
    json_t *v = NULL;
    long st = send_number(n, value, &v);
    cr_assert(st != 400 && st < 500, "%s %s=%s refused (%ld): %s", n->route, n->field, value, st,
              cm_json_str(v, "detail", ""));
    json_decref(v);
}

Test(control, every_number_refuses_extremes_and_takes_its_range, .timeout = 120)
{
    char text[64];
    int refused = 0;
    cm_log_set_level("error"); /* the deprecated forms taken would each warn */
    cr_assert_gt(sim_control_nnumbers, 30);
    for (size_t i = 0; i < sim_control_nnumbers; i++) {
        const sim_control_number_t *n = &sim_control_numbers[i];
        int body = n->in == SIM_NUM_BODY;
        /* Outside the range by one, the int64 extremes and beyond them. */
        if (n->min > INT64_MIN) {
            snprintf(text, sizeof text, "%lld", (long long)n->min - 1);
            assert_number_refused(n, text), refused++;
            assert_number_refused(n, "-9223372036854775808"), refused++;
        }
        if (n->max < INT64_MAX) {
            snprintf(text, sizeof text, "%lld", (long long)n->max + 1);
            assert_number_refused(n, text), refused++;
            assert_number_refused(n, "9223372036854775807"), refused++;
        }
        /* One that a cast to 32 bits would bring back into the range. */
        if (n->max < INT32_MAX && n->min > INT32_MIN) {
            snprintf(text, sizeof text, "%lld", (long long)n->min + 4294967296LL);
            assert_number_refused(n, text), refused++;
        }
        static const char *const beyond[] = {"9223372036854775808", "-9223372036854775809",
                                             "18446744073709551616", "1e400", "-1e400"};
        for (size_t k = 0; k < sizeof beyond / sizeof beyond[0]; k++)
            assert_number_refused(n, beyond[k]), refused++;
        /* Reals where an integer belongs, and texts that look like numbers. */
        static const char *const body_bad[] = {
            "1e300", "-1e300", "\"NaN\"", "\"Infinity\"", "\"-0\"", "\"12\"", "true", "[1]", "{}"};
        static const char *const int_bad[] = {"1.5", "0.0", "-0.5"};
        static const char *const text_bad[] = {"1.5", "1e3", "NaN", "inf", "0x10",
                                               " 1",  "+1",  "1 ",  "",    "--1"};
        if (body) {
            for (size_t k = 0; k < sizeof body_bad / sizeof body_bad[0]; k++)
                if (n->kind != SIM_NUM_INT_OR_TEXT || body_bad[k][0] != '"')
                    assert_number_refused(n, body_bad[k]), refused++;
            for (size_t k = 0; n->kind != SIM_NUM_REAL && k < sizeof int_bad / sizeof int_bad[0];
                 k++)
                assert_number_refused(n, int_bad[k]), refused++;
            if (n->kind == SIM_NUM_REAL) {
                snprintf(text, sizeof text, "%g", (double)n->min - 0.5);
                assert_number_refused(n, text), refused++;
                snprintf(text, sizeof text, "%g", (double)n->max + 0.5);
                assert_number_refused(n, text), refused++;
            }
        } else {
            for (size_t k = 0; k < sizeof text_bad / sizeof text_bad[0]; k++)
                if (n->in == SIM_NUM_QUERY || (text_bad[k][0] && !strchr(text_bad[k], ' ')))
                    assert_number_refused(n, text_bad[k]), refused++;
        }
        /* The edges of the range are taken (the table is not wider than the code). */
        snprintf(text, sizeof text, "%lld", (long long)n->min);
        assert_number_taken(n, text);
        snprintf(text, sizeof text, "%lld", (long long)n->max);
        assert_number_taken(n, text);
        if (n->kind == SIM_NUM_REAL) {
            snprintf(text, sizeof text, "%g", ((double)n->min + (double)n->max) / 2);
            assert_number_taken(n, text);
        }
        cr_assert_eq(call("POST", "/control/reset", NULL, NULL), 204);
    }
    cr_log_info("%d extreme values refused", refused);
}
