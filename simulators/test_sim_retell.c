/* test_sim_retell.c - Retell calls, signed webhook deliveries (to an in-process receiver)
 * and GET /v2/get-call, over real loopback sockets; plus the id generator. */
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
#include "sim_retell.h"
#include "sim_rng.h"

#define KEY "key_test_retell"
#define MAX_SEEN 64

static sim_retell_t *ret;
static cm_http_server_t *api, *receiver;
static char api_base[64], hook_url[96];

/* What the receiver saw. */
static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t seen_cv; /* monotonic; signalled on each request and on release */
static char *seen_body[MAX_SEEN], *seen_sig[MAX_SEEN], *seen_ctype[MAX_SEEN];
static int64_t seen_at[MAX_SEEN]; /* wall clock (ms) when the request arrived */
static size_t nseen;
static int receiver_status = 204;
static int fail_first;       /* answer 503 to this many requests first */
static int slow_receiver_ms; /* the receiver's own slowness (the behaviour under test) */
static int hold;             /* 1: each request waits for release() before it is answered */
static sim_journal_t *journal;

/* A second receiver, "B": where the gateway is after a restart on another port. */
static cm_http_server_t *receiver_b;
static char hook_url_b[96];
static char *b_body[MAX_SEEN], *b_sig[MAX_SEEN];
static size_t b_nseen;

static void h_receive(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    const char *sig = cm_http_req_header(req, "x-retell-signature");
    const char *ct = cm_http_req_header(req, "Content-Type");
    pthread_mutex_lock(&seen_mu);
    if (nseen < MAX_SEEN) {
        seen_body[nseen] = strndup(req->body, req->body_len);
        seen_sig[nseen] = strdup(sig ? sig : "");
        seen_ctype[nseen] = strdup(ct ? ct : "");
        seen_at[nseen] = cm_clock_now_ms();
        nseen++;
    }
    pthread_cond_broadcast(&seen_cv);
    /* Held: the test changes something while this attempt is in flight. The deadline
     * only keeps a failed test from hanging. */
    struct timespec until = cm_clock_mono_deadline(10000);
    while (hold && pthread_cond_timedwait(&seen_cv, &seen_mu, &until) == 0)
        ;
    pthread_mutex_unlock(&seen_mu);
    if (slow_receiver_ms)
        cm_clock_sleep_ms(slow_receiver_ms);
    if (__atomic_fetch_sub(&fail_first, 1, __ATOMIC_SEQ_CST) > 0) {
        cm_http_resp_text(resp, 503, NULL, NULL);
        return;
    }
    cm_http_resp_text(resp, receiver_status, NULL, NULL);
}

static void h_receive_b(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    const char *sig = cm_http_req_header(req, "x-retell-signature");
    pthread_mutex_lock(&seen_mu);
    if (b_nseen < MAX_SEEN) {
        b_body[b_nseen] = strndup(req->body, req->body_len);
        b_sig[b_nseen] = strdup(sig ? sig : "");
        b_nseen++;
    }
    pthread_mutex_unlock(&seen_mu);
    cm_http_resp_text(resp, 204, NULL, NULL);
}

/* 1 when receiver A has seen at least n requests within timeout_ms. */
static int wait_seen(size_t n, int64_t timeout_ms)
{
    struct timespec until = cm_clock_mono_deadline(timeout_ms);
    pthread_mutex_lock(&seen_mu);
    while (nseen < n && pthread_cond_timedwait(&seen_cv, &seen_mu, &until) == 0)
        ;
    int ok = nseen >= n;
    pthread_mutex_unlock(&seen_mu);
    return ok;
}

/* Lets held requests be answered. */
static void release(void)
{
    pthread_mutex_lock(&seen_mu);
    hold = 0;
    pthread_cond_broadcast(&seen_cv);
    pthread_mutex_unlock(&seen_mu);
}

static void setup(void)
{
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(cm_http_global_init(), CM_OK);
    cm_log_set_level("warn"); /* keep test output to failures */
    journal = sim_journal_new(1000);
    fail_first = 0;
    slow_receiver_ms = 0;
    hold = 0;
    cr_assert_eq(cm_clock_cond_init(&seen_cv), 0);
    ret = sim_retell_new(&(sim_retell_cfg_t){.api_key = KEY, .seed = 1, .journal = journal});
    cr_assert_not_null(ret);
    api = cm_http_server_new(&(cm_http_server_cfg_t){.threads = 0, .name = "test.retell"});
    receiver = cm_http_server_new(&(cm_http_server_cfg_t){.threads = 0, .name = "test.recv"});
    receiver_b = cm_http_server_new(&(cm_http_server_cfg_t){.threads = 0, .name = "test.recv.b"});
    cr_assert_eq(sim_retell_routes(ret, api), CM_OK);
    cr_assert_eq(cm_http_server_route(receiver, "POST /webhooks/retell", h_receive, NULL), CM_OK);
    cr_assert_eq(cm_http_server_route(receiver_b, "POST /webhooks/retell", h_receive_b, NULL),
                 CM_OK);
    cr_assert_eq(cm_http_server_start(api, err), CM_OK, "%s", err);
    cr_assert_eq(cm_http_server_start(receiver, err), CM_OK, "%s", err);
    cr_assert_eq(cm_http_server_start(receiver_b, err), CM_OK, "%s", err);
    snprintf(api_base, sizeof api_base, "http://127.0.0.1:%u", cm_http_server_port(api));
    snprintf(hook_url, sizeof hook_url, "http://127.0.0.1:%u/webhooks/retell",
             cm_http_server_port(receiver));
    snprintf(hook_url_b, sizeof hook_url_b, "http://127.0.0.1:%u/webhooks/retell",
             cm_http_server_port(receiver_b));
}

static void teardown(void)
{
    release(); /* a failed test may have left a request held */
    sim_retell_shutdown(ret);
    cm_http_server_free(&receiver);
    cm_http_server_free(&receiver_b);
    cm_http_server_free(&api);
    sim_retell_free(&ret);
    sim_journal_free(&journal);
    for (size_t i = 0; i < nseen; i++) {
        free(seen_body[i]);
        free(seen_sig[i]);
        free(seen_ctype[i]);
    }
    nseen = 0;
    for (size_t i = 0; i < b_nseen; i++) {
        free(b_body[i]);
        free(b_sig[i]);
    }
    b_nseen = 0;
    pthread_cond_destroy(&seen_cv);
}

static json_t *create(const char *overrides_json)
{
    char err[CM_ERR_LEN] = "";
    json_t *ov = overrides_json ? json_loads(overrides_json, 0, NULL) : NULL;
    json_t *call = NULL;
    cm_err_t rc = sim_retell_create_call(ret, ov, &call, err);
    json_decref(ov);
    cr_assert_eq(rc, CM_OK, "create: %s %s", cm_strerror(rc), err);
    return call;
}

static json_t *send(const char *call_id, sim_retell_send_t opt)
{
    char err[CM_ERR_LEN] = "";
    json_t *report = NULL;
    cm_err_t rc = sim_retell_send_webhook(ret, call_id, &opt, &report, err);
    cr_assert_eq(rc, CM_OK, "send: %s %s", cm_strerror(rc), err);
    return report;
}

static cm_err_t verify(size_t i, const char *key, int64_t tolerance_ms)
{
    const char *keys[] = {key};
    return cm_sig_retell_verify(keys, 1, seen_body[i], strlen(seen_body[i]), seen_sig[i],
                                cm_clock_now_ms(), tolerance_ms);
}

TestSuite(retell, .init = setup, .fini = teardown);

Test(retell, default_call_has_retell_fields)
{
    json_t *c = create(NULL);
    const char *id = cm_json_str(c, "call_id", "");
    cr_assert_eq(strlen(id), 37, "call_ + 32 hex, got '%s'", id);
    cr_assert_eq(strncmp(id, "call_", 5), 0);
    cr_assert_eq(strspn(id + 5, "0123456789abcdef"), 32);
    cr_assert_str_eq(cm_json_str(c, "call_status", ""), "ended");
    cr_assert_str_eq(cm_json_str(c, "call_type", ""), "phone_call");
    cr_assert_str_eq(cm_json_str(c, "direction", ""), "inbound");
    cr_assert_str_eq(cm_json_str(c, "disconnection_reason", ""), "user_hangup");
    cr_assert_eq(cm_json_int(c, "agent_version", 0), 1);
    cr_assert_eq(cm_json_int(c, "end_timestamp", 0) - cm_json_int(c, "start_timestamp", 0),
                 cm_json_int(c, "duration_ms", -1));
    cr_assert_str_eq(cm_json_str(c, "call_analysis.user_sentiment", ""), "Positive");
    cr_assert(json_is_false(cm_json_path(c, "call_analysis.in_voicemail")));
    cr_assert(json_is_true(cm_json_path(c, "call_analysis.call_successful")));
    cr_assert(json_is_object(cm_json_path(c, "call_analysis.custom_analysis_data")));
    cr_assert_null(cm_json_path(c, "metadata"), "metadata is left out when never set");
    json_decref(c);
}

Test(retell, overrides_merge_into_the_defaults)
{
    json_t *c =
        create("{\"call_id\":\"call_fixed\",\"from_number\":\"+15550001111\","
               "\"duration_ms\":1000,\"metadata\":{\"tenant\":\"t1\"},"
               "\"call_analysis\":{\"custom_analysis_data\":{\"slot\":\"2050-09-05T09:00:00Z\"},"
               "\"user_sentiment\":null}}");
    cr_assert_str_eq(cm_json_str(c, "call_id", ""), "call_fixed");
    cr_assert_str_eq(cm_json_str(c, "from_number", ""), "+15550001111");
    cr_assert_str_eq(cm_json_str(c, "metadata.tenant", ""), "t1");
    cr_assert_str_eq(cm_json_str(c, "call_analysis.custom_analysis_data.slot", ""),
                     "2050-09-05T09:00:00Z");
    cr_assert_null(cm_json_path(c, "call_analysis.user_sentiment"), "null removes a key");
    cr_assert_not_null(cm_json_str(c, "call_analysis.call_summary", NULL), "others are kept");
    cr_assert_eq(cm_json_int(c, "end_timestamp", 0) - cm_json_int(c, "start_timestamp", 0), 1000);
    json_decref(c);

    char err[CM_ERR_LEN];
    json_t *dup = json_pack("{s:s}", "call_id", "call_fixed"), *out = NULL;
    cr_assert_eq(sim_retell_create_call(ret, dup, &out, err), CM_EEXISTS);
    cr_assert_null(out);
    json_decref(dup);
    json_t *bad = json_pack("{s:i}", "call_id", 5);
    cr_assert_eq(sim_retell_create_call(ret, bad, &out, err), CM_EINVAL);
    json_decref(bad);
    /* Extreme times are refused, not summed into an int64 overflow (UBSan aborted here). */
    static const char *const times[] = {"start_timestamp", "end_timestamp", "duration_ms"};
    const json_int_t extremes[] = {INT64_MAX, INT64_MIN, -1, 9007199254740992LL};
    for (size_t i = 0; i < 3; i++)
        for (size_t k = 0; k < 4; k++) {
            bad = json_pack("{s:I}", times[i], extremes[k]);
            cr_assert_eq(sim_retell_create_call(ret, bad, &out, err), CM_EINVAL, "%s=%lld",
                         times[i], (long long)extremes[k]);
            cr_assert(strstr(err, times[i]), "%s", err);
            json_decref(bad);
        }
    /* A real or a string where a time belongs is refused too; null still removes it. */
    const char *retyped[] = {"{\"start_timestamp\":1.5}", "{\"end_timestamp\":\"NaN\"}",
                             "{\"duration_ms\":1e300}"};
    for (size_t i = 0; i < 3; i++) {
        bad = json_loads(retyped[i], 0, NULL);
        cr_assert_eq(sim_retell_create_call(ret, bad, &out, err), CM_EINVAL, "%s", retyped[i]);
        cr_assert(strstr(err, "must be an integer"), "%s", err);
        json_decref(bad);
    }
    bad = json_pack("{s:n}", "duration_ms");
    cr_assert_eq(sim_retell_create_call(ret, bad, &out, err), CM_OK, "%s", err);
    cr_assert_null(json_object_get(out, "duration_ms"));
    json_decref(out);
    json_decref(bad);
    json_t *edge = json_pack("{s:I,s:I}", "start_timestamp", 9007199254740991LL, "duration_ms",
                             9007199254740991LL);
    cr_assert_eq(sim_retell_create_call(ret, edge, &out, err), CM_OK, "%s", err);
    json_decref(out);
    json_decref(edge);
}

Test(retell, ids_follow_the_seed)
{
    sim_rng_t a, b, c;
    char ha[33], hb[33], hc[33];
    sim_rng_init(&a, 1, 1);
    sim_rng_init(&b, 1, 1);
    sim_rng_init(&c, 2, 1);
    sim_rng_hex(&a, ha, 32);
    sim_rng_hex(&b, hb, 32);
    sim_rng_hex(&c, hc, 32);
    cr_assert_str_eq(ha, hb, "same seed, same ids");
    cr_assert_str_neq(ha, hc, "another seed, other ids");
    sim_rng_hex(&a, hb, 32);
    cr_assert_str_neq(ha, hb, "the counter moves on");
    char s[23];
    sim_rng_chars(&a, "ab", s, 22);
    cr_assert_eq(strspn(s, "ab"), 22);
    sim_rng_destroy(&a);
    sim_rng_destroy(&b);
    sim_rng_destroy(&c);
}

Test(retell, signed_delivery_verifies_with_the_api_key)
{
    json_t *c = create(NULL);
    char err[CM_ERR_LEN];
    const char *id = cm_json_str(c, "call_id", "");
    json_t *report = NULL;
    sim_retell_send_t opt = {.event = "call_analyzed", .copies = 1};
    cr_assert_eq(sim_retell_send_webhook(ret, id, &opt, &report, err), CM_ESTATE, "no URL set yet");
    cr_assert_eq(sim_retell_set_webhook_url(ret, "ftp://x", err), CM_EINVAL);
    cr_assert_eq(sim_retell_set_webhook_url(ret, hook_url, err), CM_OK);

    report = send(id, opt);
    cr_assert_eq(cm_json_int(report, "deliveries.0.status", 0), 204);
    cr_assert(json_is_null(cm_json_path(report, "deliveries.0.error")));
    cr_assert_eq(nseen, 1);
    cr_assert_str_eq(seen_ctype[0], "application/json");
    cr_assert_str_eq(seen_sig[0], cm_json_str(report, "signature", ""));
    cr_assert_eq(verify(0, KEY, 300000), CM_OK, "sig %s", seen_sig[0]);
    cr_assert_eq(verify(0, "key_other", 300000), CM_ESIG_MISMATCH);
    json_t *env = json_loads(seen_body[0], 0, NULL);
    cr_assert_str_eq(cm_json_str(env, "event", ""), "call_analyzed");
    cr_assert_str_eq(cm_json_str(env, "call.call_id", ""), id);
    cr_assert_not_null(cm_json_path(env, "call.call_analysis"));
    json_decref(env);
    json_decref(report);

    cr_assert_eq(sim_retell_send_webhook(ret, "call_nope", &opt, &report, err), CM_ENOTFOUND);
    opt.event = "call_exploded";
    cr_assert_eq(sim_retell_send_webhook(ret, id, &opt, &report, err), CM_EINVAL);
    /* An offset beyond ten years is refused before now + offset could overflow. */
    opt.event = "call_analyzed";
    opt.timestamp_offset_ms = INT64_MAX;
    cr_assert_eq(sim_retell_send_webhook(ret, id, &opt, &report, err), CM_EINVAL);
    cr_assert_str_eq(err, "timestamp_offset must be within 3650 days either way");
    opt.timestamp_offset_ms = -SIM_RETELL_MAX_OFFSET_MS - 1;
    cr_assert_eq(sim_retell_send_webhook(ret, id, &opt, &report, err), CM_EINVAL);
    cr_assert_eq(nseen, 1, "refused triggers send nothing");
    json_decref(c);
}

static long get_call(const char *id, const char *auth, json_t **body);

/* The fields the SDK's PhoneCallResponse documents for an ended call, derived from the
 * call itself so that they agree with each other. */
Test(retell, ended_call_has_the_documented_after_the_end_fields)
{
    json_t *c = create("{\"duration_ms\":61500,\"transcript\":\"Agent: Hello there\\nUser: "
                       "Book me in\\n\"}");
    const char *id = cm_json_str(c, "call_id", "");
    cr_assert_str_eq(cm_json_str(c, "agent_name", ""), "Sim Clinic booking agent");
    cr_assert_eq(json_array_size(cm_json_path(c, "transcript_object")), 2);
    cr_assert_str_eq(cm_json_str(c, "transcript_object.0.role", ""), "agent");
    cr_assert_str_eq(cm_json_str(c, "transcript_object.0.content", ""), "Hello there");
    cr_assert_str_eq(cm_json_str(c, "transcript_object.1.role", ""), "user");
    cr_assert_str_eq(cm_json_str(c, "transcript_object.1.words.2.word", ""), "in");
    cr_assert(json_is_real(cm_json_path(c, "transcript_object.1.words.2.start")));
    cr_assert(json_equal(cm_json_path(c, "transcript_with_tool_calls"),
                         cm_json_path(c, "transcript_object")));
    cr_assert_not_null(strstr(cm_json_str(c, "recording_url", ""), id), "per call");
    cr_assert_not_null(strstr(cm_json_str(c, "public_log_url", ""), id));
    cr_assert_not_null(cm_json_str(c, "recording_multi_channel_url", NULL));
    cr_assert_eq(cm_json_int(c, "call_cost.total_duration_seconds", 0), 62, "61.5 s, rounded up");
    double sum = 0;
    size_t i;
    json_t *pc;
    json_array_foreach(cm_json_path(c, "call_cost.product_costs"), i, pc) sum +=
        json_real_value(json_object_get(pc, "cost"));
    cr_assert(i == 3 && sum > 0);
    double combined = json_real_value(cm_json_path(c, "call_cost.combined_cost"));
    cr_assert(combined > sum - 1e-6 && combined < sum + 1e-6, "combined %f = sum %f", combined,
              sum);
    cr_assert_eq(cm_json_int(c, "latency.e2e.num", 0), 1, "one turn change");
    cr_assert(json_is_array(cm_json_path(c, "latency.llm.values")));
    cr_assert(cm_json_int(c, "latency.tts.p50", 0) > 0);
    cr_assert_eq(cm_json_int(c, "llm_token_usage.num_requests", 0), 2);
    cr_assert_str_eq(cm_json_str(c, "disconnection_reason", ""), "user_hangup");
    /* An override of a derived field wins. */
    json_t *o = create("{\"recording_url\":null,\"call_cost\":{\"combined_cost\":7}}");
    cr_assert_null(cm_json_path(o, "recording_url"));
    cr_assert_eq(cm_json_int(o, "call_cost.combined_cost", 0), 7);
    json_decref(o);

    /* get-call answers the same object; call_started carries none of it, call_ended all but
     * call_analysis. */
    json_t *b;
    cr_assert_eq(get_call(id, "Bearer " KEY, &b), 200);
    cr_assert(json_equal(b, c));
    json_decref(b);
    char err[CM_ERR_LEN];
    cr_assert_eq(sim_retell_set_webhook_url(ret, hook_url, err), CM_OK);
    json_decref(send(id, (sim_retell_send_t){.event = "call_started", .copies = 1}));
    json_decref(send(id, (sim_retell_send_t){.event = "call_ended", .copies = 1}));
    cr_assert_eq(nseen, 2);
    json_t *started = json_loads(seen_body[0], 0, NULL);
    json_t *ended = json_loads(seen_body[1], 0, NULL);
    static const char *const after[] = {"transcript_object", "recording_url", "call_cost",
                                        "latency", "public_log_url"};
    for (i = 0; i < sizeof after / sizeof after[0]; i++) {
        char key[64];
        snprintf(key, sizeof key, "call.%s", after[i]);
        cr_assert_null(cm_json_path(started, key), "%s at call_started", after[i]);
        cr_assert_not_null(cm_json_path(ended, key), "%s at call_ended", after[i]);
    }
    json_decref(started);
    json_decref(ended);
    json_decref(c);
}

/* A registered call (create-phone-call) has not ended: none of those fields. */
static void assert_not_ended(const json_t *v)
{
    static const char *const after[] = {"transcript_object", "recording_url",   "call_cost",
                                        "latency",           "llm_token_usage", "public_log_url"};
    for (size_t i = 0; i < sizeof after / sizeof after[0]; i++)
        cr_assert_null(cm_json_path(v, after[i]), "%s on a call that has not ended", after[i]);
}

Test(retell, event_shapes)
{
    char err[CM_ERR_LEN];
    json_t *c = create(NULL);
    const char *id = cm_json_str(c, "call_id", "");
    cr_assert_eq(sim_retell_set_webhook_url(ret, hook_url, err), CM_OK);
    json_decref(send(id, (sim_retell_send_t){.event = "call_ended", .copies = 1}));
    json_decref(send(id, (sim_retell_send_t){.event = "call_started", .copies = 1}));
    cr_assert_eq(nseen, 2);
    json_t *ended = json_loads(seen_body[0], 0, NULL);
    cr_assert_str_eq(cm_json_str(ended, "event", ""), "call_ended");
    cr_assert_null(cm_json_path(ended, "call.call_analysis"));
    cr_assert_not_null(cm_json_path(ended, "call.end_timestamp"));
    json_t *started = json_loads(seen_body[1], 0, NULL);
    cr_assert_str_eq(cm_json_str(started, "call.call_status", ""), "ongoing");
    cr_assert_null(cm_json_path(started, "call.call_analysis"));
    cr_assert_null(cm_json_path(started, "call.end_timestamp"));
    json_decref(ended);
    json_decref(started);
    json_t *stored = sim_retell_get_call(ret, id);
    cr_assert_not_null(cm_json_path(stored, "call_analysis"), "sending does not change the call");
    json_decref(stored);
    json_decref(c);
}

Test(retell, concurrent_copies_are_identical_and_all_arrive)
{
    char err[CM_ERR_LEN];
    json_t *c = create(NULL);
    cr_assert_eq(sim_retell_set_webhook_url(ret, hook_url, err), CM_OK);
    json_t *report =
        send(cm_json_str(c, "call_id", ""),
             (sim_retell_send_t){.event = "call_analyzed", .copies = 5, .concurrent = 1});
    cr_assert_eq(json_array_size(cm_json_path(report, "deliveries")), 5);
    for (size_t i = 0; i < 5; i++) {
        char p[32];
        snprintf(p, sizeof p, "deliveries.%zu.status", i);
        cr_assert_eq(cm_json_int(report, p, 0), 204);
    }
    cr_assert_eq(nseen, 5);
    for (size_t i = 1; i < 5; i++) {
        cr_assert_str_eq(seen_body[i], seen_body[0], "copy %zu differs", i);
        cr_assert_str_eq(seen_sig[i], seen_sig[0]);
    }
    json_decref(report);
    json_decref(c);
}

Test(retell, forged_and_stale_signatures)
{
    char err[CM_ERR_LEN];
    json_t *c = create(NULL);
    const char *id = cm_json_str(c, "call_id", "");
    cr_assert_eq(sim_retell_set_webhook_url(ret, hook_url, err), CM_OK);
    json_decref(send(id, (sim_retell_send_t){.event = "call_analyzed", .copies = 2, .forge = 1}));
    json_decref(send(id, (sim_retell_send_t){.event = "call_analyzed",
                                             .copies = 1,
                                             .timestamp_offset_ms = -600000}));
    json_decref(send(
        id,
        (sim_retell_send_t){.event = "call_analyzed", .copies = 1, .timestamp_offset_ms = 600000}));
    cr_assert_eq(nseen, 4);
    cr_assert_eq(verify(0, KEY, 300000), CM_ESIG_MISMATCH);
    cr_assert_eq(verify(1, KEY, 300000), CM_ESIG_MISMATCH);
    cr_assert_eq(verify(2, KEY, 300000), CM_ESIG_STALE);
    cr_assert_eq(verify(3, KEY, 300000), CM_ESIG_FUTURE);
    cr_assert_eq(verify(2, KEY, 3600000), CM_OK, "only the timestamp is off");
    json_decref(c);
}

Test(retell, receiver_errors_and_refused_connections_are_reported)
{
    char err[CM_ERR_LEN];
    json_t *c = create(NULL);
    const char *id = cm_json_str(c, "call_id", "");
    receiver_status = 503;
    cr_assert_eq(sim_retell_set_webhook_url(ret, hook_url, err), CM_OK);
    json_t *r = send(id, (sim_retell_send_t){.event = "call_analyzed", .copies = 2});
    cr_assert_eq(cm_json_int(r, "deliveries.1.status", 0), 503);
    json_decref(r);
    receiver_status = 204;
    cr_assert_eq(sim_retell_set_webhook_url(ret, "http://127.0.0.1:1/x", err), CM_OK);
    r = send(id, (sim_retell_send_t){.event = "call_analyzed", .copies = 1});
    cr_assert(json_is_null(cm_json_path(r, "deliveries.0.status")));
    cr_assert_not_null(cm_json_str(r, "deliveries.0.error", NULL));
    json_decref(r);
    json_decref(c);
}

static long get_call(const char *id, const char *auth, json_t **body)
{
    char url[256], ah[128];
    const char *hdrs[] = {ah, NULL};
    snprintf(url, sizeof url, "%s/v2/get-call/%s", api_base, id);
    snprintf(ah, sizeof ah, "Authorization: %s", auth);
    cm_http_client_t *cl = cm_http_client_new();
    cm_http_response_t r;
    cm_http_request_t req = {.method = "GET", .url = url, .headers = auth ? hdrs : NULL};
    cr_assert_eq(cm_http_client_do(cl, &req, &r), CM_OK, "%s", r.err);
    long st = r.status;
    *body = json_loads(r.body.data ? r.body.data : "", 0, NULL);
    cm_http_response_free(&r);
    cm_http_client_free(&cl);
    return st;
}

Test(retell, get_call_needs_the_bearer_key)
{
    json_t *c = create(NULL), *b;
    const char *id = cm_json_str(c, "call_id", "");
    cr_assert_eq(get_call(id, NULL, &b), 401);
    json_decref(b);
    cr_assert_eq(get_call(id, "Bearer key_wrong", &b), 401);
    json_decref(b);
    cr_assert_eq(get_call(id, "Bearer " KEY, &b), 200);
    cr_assert(json_equal(b, c), "GET answers the stored call");
    json_decref(b);
    cr_assert_eq(get_call("call_missing", "Bearer " KEY, &b), 404);
    json_decref(b);
    json_decref(c);
}

/* ---- delivery like Retell: retries, batches, async, replay ------------------------ */

static void set_url(void)
{
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(sim_retell_set_webhook_url(ret, hook_url, err), CM_OK, "%s", err);
}

Test(retell, retries_on_non_2xx_each_signed_afresh)
{
    json_t *c = create(NULL);
    set_url();
    fail_first = 2;
    json_t *r =
        send(cm_json_str(c, "call_id", ""),
             (sim_retell_send_t){
                 .event = "call_analyzed", .copies = 1, .retries = 3, .retry_interval_ms = 20});
    cr_assert_eq(cm_json_int(r, "deliveries.0.status", 0), 204);
    cr_assert_eq(json_array_size(cm_json_path(r, "deliveries.0.attempts")), 3);
    cr_assert_eq(cm_json_int(r, "deliveries.0.attempts.0.status", 0), 503);
    cr_assert_eq(nseen, 3);
    cr_assert_str_eq(seen_body[0], seen_body[2], "retries carry the same bytes");
    cr_assert_str_neq(seen_sig[0], seen_sig[2], "but a fresh v= and signature");
    for (size_t i = 0; i < nseen; i++)
        cr_assert_eq(verify(i, KEY, 300000), CM_OK);
    sim_journal_filter_t f = {.kind = SIM_JOURNAL_DELIVERY};
    json_t *j = sim_journal_query(journal, &f);
    cr_assert_eq(cm_json_int(j, "count", 0), 3);
    cr_assert_eq(cm_json_int(j, "entries.2.attempt", 0), 3);
    cr_assert_str_eq(cm_json_str(j, "entries.2.event", ""), "call_analyzed");
    cr_assert_str_eq(cm_json_str(j, "entries.0.delivery_id", ""),
                     cm_json_str(r, "delivery_id", "?"));
    json_decref(j);
    json_decref(r);
    /* Retries give up after the count. */
    fail_first = 10;
    r = send(cm_json_str(c, "call_id", ""),
             (sim_retell_send_t){.event = "call_ended", .copies = 1, .retries = 2});
    cr_assert_eq(cm_json_int(r, "deliveries.0.status", 0), 503);
    cr_assert_eq(json_array_size(cm_json_path(r, "deliveries.0.attempts")), 3);
    json_decref(r);
    json_decref(c);
}

Test(retell, timeouts_are_retried)
{
    json_t *c = create(NULL);
    set_url();
    slow_receiver_ms = 300;
    json_t *r = send(cm_json_str(c, "call_id", ""),
                     (sim_retell_send_t){
                         .event = "call_analyzed", .copies = 1, .retries = 1, .timeout_ms = 100});
    cr_assert(json_is_null(cm_json_path(r, "deliveries.0.status")));
    cr_assert(strstr(cm_json_str(r, "deliveries.0.error", ""), "timed out"), "%s",
              cm_json_str(r, "deliveries.0.error", ""));
    cr_assert_eq(json_array_size(cm_json_path(r, "deliveries.0.attempts")), 2);
    json_decref(r);
    json_decref(c);
}

/* The signed time (v=) of an x-retell-signature, -1 when there is none. */
static int64_t sig_ts(const char *sig)
{
    long long v = -1;
    if (!sig || sscanf(sig, "v=%lld,", &v) != 1)
        return -1;
    return v;
}

Test(retell, delayed_delivery_is_signed_when_each_attempt_is_sent)
{
    json_t *c = create(NULL);
    set_url();
    fail_first = 1;
    const int64_t delay = 600, interval = 300;
    int64_t t0 = cm_clock_now_ms();
    json_t *r =
        send(cm_json_str(c, "call_id", ""), (sim_retell_send_t){.event = "call_analyzed",
                                                                .copies = 1,
                                                                .retries = 1,
                                                                .retry_interval_ms = interval,
                                                                .delay_ms = delay});
    cr_assert_eq(nseen, 2, "received %zu, expected 2", nseen);
    cr_assert_eq(cm_json_int(r, "deliveries.0.status", 0), 204);
    int64_t v0 = sig_ts(seen_sig[0]), v1 = sig_ts(seen_sig[1]);
    /* The pause is on the monotonic clock; 10 ms leave room for a slewed wall clock. */
    cr_assert_geq(v0, t0 + delay - 10,
                  "the first attempt is signed when sent, after the %lld ms delay: "
                  "v=%lld, triggered at %lld",
                  (long long)delay, (long long)v0, (long long)t0);
    cr_assert_leq(v0, seen_at[0], "v=%lld, arrived at %lld", (long long)v0, (long long)seen_at[0]);
    cr_assert_geq(v1, seen_at[0] + interval - 10, "the retry is signed after its pause: %lld, %lld",
                  (long long)v1, (long long)seen_at[0]);
    cr_assert_leq(v1, seen_at[1], "v=%lld, arrived at %lld", (long long)v1, (long long)seen_at[1]);
    for (size_t i = 0; i < nseen; i++)
        cr_assert_eq(verify(i, KEY, 300000), CM_OK, "attempt %zu: %s", i, seen_sig[i]);
    /* The report and the journal show what was sent. */
    cr_assert_str_eq(cm_json_str(r, "signature", ""), seen_sig[0]);
    cr_assert_str_eq(cm_json_str(r, "deliveries.0.attempts.0.signature", ""), seen_sig[0]);
    cr_assert_str_eq(cm_json_str(r, "deliveries.0.attempts.1.signature", ""), seen_sig[1]);
    sim_journal_filter_t f = {.kind = SIM_JOURNAL_DELIVERY};
    json_t *j = sim_journal_query(journal, &f);
    cr_assert_eq(cm_json_int(j, "count", 0), 2);
    cr_assert_str_eq(cm_json_str(j, "entries.0.headers.x-retell-signature", ""), seen_sig[0]);
    cr_assert_str_eq(cm_json_str(j, "entries.1.headers.x-retell-signature", ""), seen_sig[1]);
    json_decref(j);
    json_decref(r);
    json_decref(c);
}

Test(retell, stale_offset_is_applied_to_the_send_time)
{
    json_t *c = create(NULL);
    set_url();
    const int64_t delay = 600, offset = -600000;
    int64_t t0 = cm_clock_now_ms();
    json_t *r =
        send(cm_json_str(c, "call_id", ""), (sim_retell_send_t){.event = "call_analyzed",
                                                                .copies = 3,
                                                                .concurrent = 1,
                                                                .timestamp_offset_ms = offset,
                                                                .delay_ms = delay});
    cr_assert_eq(nseen, 3, "received %zu, expected 3", nseen);
    for (size_t i = 0; i < nseen; i++) {
        int64_t v = sig_ts(seen_sig[i]);
        cr_assert_geq(v, t0 + delay + offset - 10, "copy %zu: v=%lld, triggered at %lld", i,
                      (long long)v, (long long)t0);
        cr_assert_leq(v, seen_at[i] + offset, "copy %zu: v=%lld, arrived at %lld", i, (long long)v,
                      (long long)seen_at[i]);
        cr_assert_eq(verify(i, KEY, 300000), CM_ESIG_STALE, "stale as asked: %s", seen_sig[i]);
        cr_assert_eq(verify(i, KEY, 3600000), CM_OK, "only the timestamp is off");
        cr_assert_str_eq(seen_sig[i], seen_sig[0],
                         "concurrent copies leave together, alike: %s, %s", seen_sig[i],
                         seen_sig[0]);
    }
    json_decref(r);
    json_decref(c);
}

/* A synchronous delivery run from its own thread, so the test can act while it is in
 * flight. */
typedef struct {
    const char *call_id;
    sim_retell_send_t opt;
    cm_err_t rc;
    json_t *report;
    char err[CM_ERR_LEN];
} bg_send_t;

static void *bg_send(void *arg)
{
    bg_send_t *b = arg;
    b->rc = sim_retell_send_webhook(ret, b->call_id, &b->opt, &b->report, b->err);
    return NULL;
}

Test(retell, retry_goes_to_the_webhook_url_set_since_the_first_attempt)
{
    char err[CM_ERR_LEN] = "";
    json_t *c = create(NULL);
    set_url(); /* receiver A */
    fail_first = 1;
    hold = 1;
    bg_send_t b = {.call_id = cm_json_str(c, "call_id", ""),
                   .opt = {.event = "call_analyzed", .copies = 1, .retries = 1}};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, bg_send, &b), 0);
    /* A holds the first attempt while the gateway "restarts" on B's port. */
    int arrived = wait_seen(1, 10000);
    cm_err_t set = sim_retell_set_webhook_url(ret, hook_url_b, err);
    release(); /* A answers 503 now: the retry follows */
    pthread_join(t, NULL);
    cr_assert(arrived, "the first attempt never reached A");
    cr_assert_eq(set, CM_OK, "%s", err);
    cr_assert_eq(b.rc, CM_OK, "%s %s", cm_strerror(b.rc), b.err);

    cr_assert_eq(nseen, 1, "A saw %zu requests, expected the first attempt only", nseen);
    cr_assert_eq(b_nseen, 1, "B saw %zu requests, expected the retry", b_nseen);
    cr_assert_str_eq(b_body[0], seen_body[0], "the same bytes");
    const char *keys[] = {KEY};
    cr_assert_eq(cm_sig_retell_verify(keys, 1, b_body[0], strlen(b_body[0]), b_sig[0],
                                      cm_clock_now_ms(), 300000),
                 CM_OK, "%s", b_sig[0]);
    cr_assert_geq(sig_ts(b_sig[0]), seen_at[0], "signed after the first attempt arrived: %s",
                  b_sig[0]);

    json_t *r = b.report;
    cr_assert_eq(cm_json_int(r, "deliveries.0.status", 0), 204);
    cr_assert_eq(cm_json_int(r, "deliveries.0.attempts.0.status", 0), 503);
    cr_assert_str_eq(cm_json_str(r, "deliveries.0.attempts.0.url", ""), hook_url,
                     "%s: %s, expected %s", "deliveries.0.attempts.0.url",
                     cm_json_str(r, "deliveries.0.attempts.0.url", "(none)"), hook_url);
    cr_assert_str_eq(cm_json_str(r, "deliveries.0.attempts.1.url", ""), hook_url_b,
                     "%s: %s, expected %s", "deliveries.0.attempts.1.url",
                     cm_json_str(r, "deliveries.0.attempts.1.url", "(none)"), hook_url_b);
    cr_assert_str_eq(cm_json_str(r, "url", ""), hook_url, "the URL when triggered");
    sim_journal_filter_t f = {.kind = SIM_JOURNAL_DELIVERY};
    json_t *j = sim_journal_query(journal, &f);
    cr_assert_eq(cm_json_int(j, "count", 0), 2, "journaled %lld attempts, expected 2",
                 (long long)cm_json_int(j, "count", 0));
    cr_assert_eq(cm_json_int(j, "entries.0.attempt", 0), 1);
    cr_assert_eq(cm_json_int(j, "entries.0.status", 0), 503, "journaled status %lld",
                 (long long)cm_json_int(j, "entries.0.status", 0));
    cr_assert_str_eq(cm_json_str(j, "entries.0.url", ""), hook_url, "%s: %s, expected %s",
                     "entries.0.url", cm_json_str(j, "entries.0.url", "(none)"), hook_url);
    cr_assert_eq(cm_json_int(j, "entries.1.attempt", 0), 2);
    cr_assert_eq(cm_json_int(j, "entries.1.status", 0), 204, "journaled status %lld",
                 (long long)cm_json_int(j, "entries.1.status", 0));
    cr_assert_str_eq(cm_json_str(j, "entries.1.url", ""), hook_url_b, "%s: %s, expected %s",
                     "entries.1.url", cm_json_str(j, "entries.1.url", "(none)"), hook_url_b);
    cr_assert_str_eq(cm_json_str(j, "entries.1.headers.x-retell-signature", ""), b_sig[0]);
    json_decref(j);
    json_decref(r);
    json_decref(c);
}

Test(retell, reset_abandons_the_retries_of_a_delivery_in_flight)
{
    char err[CM_ERR_LEN] = "";
    json_t *c = create(NULL);
    set_url();
    fail_first = 1;
    hold = 1;
    bg_send_t b = {.call_id = cm_json_str(c, "call_id", ""),
                   .opt = {.event = "call_analyzed", .copies = 1, .retries = 2}};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, bg_send, &b), 0);
    int arrived = wait_seen(1, 10000);
    /* The next scenario: everything back to the seed state, a new gateway. */
    sim_retell_reset(ret);
    cm_err_t set = sim_retell_set_webhook_url(ret, hook_url_b, err);
    release();
    pthread_join(t, NULL);
    cr_assert(arrived, "the first attempt never reached A");
    cr_assert_eq(set, CM_OK, "%s", err);
    cr_assert_eq(b.rc, CM_OK, "%s %s", cm_strerror(b.rc), b.err);
    cr_assert_eq(nseen, 1, "A saw %zu requests, expected 1", nseen);
    cr_assert_eq(b_nseen, 0,
                 "B saw %zu requests: a delivery from before the reset must reach "
                 "nobody after it",
                 b_nseen);
    json_t *r = b.report;
    cr_assert_eq(json_array_size(cm_json_path(r, "deliveries.0.attempts")), 2);
    cr_assert(json_is_null(cm_json_path(r, "deliveries.0.status")));
    cr_assert(json_is_null(cm_json_path(r, "deliveries.0.attempts.1.url")), "nothing was sent");
    cr_assert(strstr(cm_json_str(r, "deliveries.0.error", ""), "reset"), "%s",
              cm_json_str(r, "deliveries.0.error", ""));
    json_decref(r);
    json_decref(c);
}

static void seen_events(char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < nseen; i++) {
        json_t *v = json_loads(seen_body[i], 0, NULL);
        strncat(out, cm_json_str(v, "event", "?"), cap - strlen(out) - 2);
        strncat(out, " ", cap - strlen(out) - 1);
        json_decref(v);
    }
}

Test(retell, lifecycle_and_undialled_calls)
{
    char got[256];
    json_t *c = create(NULL);
    json_t *u =
        create("{\"disconnection_reason\":\"dial_no_answer\",\"call_status\":\"not_connected\"}");
    set_url();
    json_decref(send(cm_json_str(c, "call_id", ""),
                     (sim_retell_send_t){.event = "lifecycle", .copies = 1}));
    seen_events(got, sizeof got);
    cr_assert_str_eq(got, "call_started call_ended call_analyzed ");
    json_t *r =
        send(cm_json_str(u, "call_id", ""), (sim_retell_send_t){.event = "lifecycle", .copies = 1});
    seen_events(got, sizeof got);
    cr_assert_str_eq(got, "call_started call_ended call_analyzed call_ended call_analyzed ",
                     "an undialled call sends no call_started");
    cr_assert_eq(json_array_size(cm_json_path(r, "events")), 2);
    json_decref(r);
    const char *batch[] = {"call_started", "call_ended", "call_analyzed", NULL};
    r = send(cm_json_str(c, "call_id", ""),
             (sim_retell_send_t){.events = batch, .order = SIM_RETELL_ORDER_REVERSE, .copies = 2});
    cr_assert_eq(json_array_size(cm_json_path(r, "deliveries")), 6);
    cr_assert_str_eq(cm_json_str(r, "deliveries.0.event", ""), "call_analyzed");
    cr_assert_str_eq(cm_json_str(r, "deliveries.5.event", ""), "call_started");
    json_decref(r);
    json_decref(c);
    json_decref(u);
}

Test(retell, async_delivery_and_replay)
{
    char err[CM_ERR_LEN] = "";
    json_t *c = create(NULL);
    set_url();
    json_t *r = send(cm_json_str(c, "call_id", ""),
                     (sim_retell_send_t){.event = "call_analyzed", .copies = 2, .async = 1});
    cr_assert_str_eq(cm_json_str(r, "status", ""), "pending");
    char id[32];
    snprintf(id, sizeof id, "%s", cm_json_str(r, "delivery_id", ""));
    json_decref(r);
    int64_t deadline = cm_clock_mono_ms() + 5000;
    for (;;) {
        r = sim_retell_delivery(ret, id);
        cr_assert_not_null(r);
        if (strcmp(cm_json_str(r, "status", ""), "done") == 0)
            break;
        json_decref(r);
        cr_assert_lt(cm_clock_mono_ms(), deadline, "the async delivery did not finish");
        cm_clock_sleep_ms(5);
    }
    cr_assert_eq(cm_json_int(r, "deliveries.1.status", 0), 204);
    json_decref(r);
    cr_assert_null(sim_retell_delivery(ret, "dlv_nope"));

    cr_assert_eq(sim_retell_replay(ret, id, 0, &r, err), CM_OK, "%s", err);
    cr_assert_str_eq(cm_json_str(r, "replay_of", ""), id);
    cr_assert_eq(nseen, 3);
    cr_assert_str_eq(seen_body[2], seen_body[0], "a replay is byte for byte");
    cr_assert_str_eq(seen_sig[2], seen_sig[0], "with the old signature");
    json_decref(r);
    cr_assert_eq(sim_retell_replay(ret, id, 1, &r, err), CM_OK, "%s", err);
    json_decref(r);
    cr_assert_eq(sim_retell_replay(ret, "dlv_nope", 0, &r, err), CM_ENOTFOUND);
    json_decref(c);
}

static long post(const char *path, const char *body, json_t **out)
{
    char url[256], ah[64];
    const char *hdrs[] = {"Content-Type: application/json", ah, NULL};
    snprintf(url, sizeof url, "%s%s", api_base, path);
    snprintf(ah, sizeof ah, "Authorization: Bearer %s", KEY);
    cm_http_client_t *cl = cm_http_client_new();
    cm_http_response_t r;
    cm_http_request_t req = {
        .method = "POST", .url = url, .headers = hdrs, .body = body, .body_len = strlen(body)};
    cr_assert_eq(cm_http_client_do(cl, &req, &r), CM_OK, "%s", r.err);
    long st = r.status;
    *out = json_loads(r.body.data ? r.body.data : "", 0, NULL);
    cm_http_response_free(&r);
    cm_http_client_free(&cl);
    return st;
}

Test(retell, create_phone_call_and_list_calls_with_pagination)
{
    json_t *v;
    cr_assert_eq(post("/v2/create-phone-call", "{\"from_number\":\"+14155550100\"}", &v), 400);
    json_decref(v);
    cr_assert_eq(post("/v2/create-phone-call",
                      "{\"from_number\":\"+14155550100\",\"to_number\":\"+14155550111\","
                      "\"metadata\":{\"k\":\"v\"}}",
                      &v),
                 201);
    cr_assert_str_eq(cm_json_str(v, "call_status", ""), "registered");
    cr_assert_str_eq(cm_json_str(v, "direction", ""), "outbound");
    cr_assert_null(cm_json_path(v, "end_timestamp"));
    assert_not_ended(v);
    cr_assert_str_eq(cm_json_str(v, "metadata.k", ""), "v");
    json_decref(v);
    for (int i = 0; i < 4; i++)
        json_decref(create(NULL));
    cr_assert_eq(post("/v3/list-calls", "{\"limit\":2}", &v), 200);
    cr_assert_eq(json_array_size(cm_json_path(v, "items")), 2);
    cr_assert(json_is_true(cm_json_path(v, "has_more")));
    char body[160];
    snprintf(body, sizeof body, "{\"limit\":2,\"pagination_key\":\"%s\"}",
             cm_json_str(v, "pagination_key", ""));
    json_decref(v);
    cr_assert_eq(post("/v3/list-calls", body, &v), 200);
    cr_assert_eq(json_array_size(cm_json_path(v, "items")), 2);
    snprintf(body, sizeof body, "{\"limit\":2,\"pagination_key\":\"%s\"}",
             cm_json_str(v, "pagination_key", ""));
    json_decref(v);
    cr_assert_eq(post("/v3/list-calls", body, &v), 200);
    cr_assert_eq(json_array_size(cm_json_path(v, "items")), 1);
    cr_assert(json_is_false(cm_json_path(v, "has_more")));
    cr_assert(json_is_null(cm_json_path(v, "pagination_key")));
    cr_assert_str_eq(cm_json_str(v, "items.0.call_status", ""), "registered",
                     "descending: the oldest call comes last");
    json_decref(v);
    cr_assert_eq(
        post("/v3/list-calls", "{\"filter_criteria\":{\"call_status\":[\"registered\"]}}", &v),
        200);
    cr_assert_eq(json_array_size(cm_json_path(v, "items")), 1);
    json_decref(v);
    cr_assert_eq(post("/v3/list-calls", "{\"limit\":0}", &v), 400);
    json_decref(v);
}

/* filter_criteria.start_timestamp {lower_threshold, upper_threshold}, both inclusive: the
 * range the gateway's reconciliation asks for (calls started since its lookback). */
Test(retell, list_calls_filters_by_start_timestamp_range)
{
    json_t *v;
    json_decref(create("{\"start_timestamp\":1000000,\"end_timestamp\":1060000}"));
    json_decref(create("{\"start_timestamp\":2000000,\"end_timestamp\":2060000}"));
    json_decref(create("{\"start_timestamp\":3000000,\"end_timestamp\":3060000}"));
    cr_assert_eq(post("/v3/list-calls",
                      "{\"sort_order\":\"ascending\",\"filter_criteria\":{\"start_timestamp\":"
                      "{\"lower_threshold\":2000000}}}",
                      &v),
                 200);
    cr_assert_eq(json_array_size(cm_json_path(v, "items")), 2);
    cr_assert_eq(cm_json_int(v, "items.0.start_timestamp", 0), 2000000);
    json_decref(v);
    cr_assert_eq(post("/v3/list-calls",
                      "{\"filter_criteria\":{\"start_timestamp\":{\"lower_threshold\":1500000,"
                      "\"upper_threshold\":2500000}}}",
                      &v),
                 200);
    cr_assert_eq(json_array_size(cm_json_path(v, "items")), 1);
    cr_assert_eq(cm_json_int(v, "items.0.start_timestamp", 0), 2000000);
    json_decref(v);
}
