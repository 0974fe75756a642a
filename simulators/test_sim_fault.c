/* test_sim_fault.c - the fault engine: rule parsing and its located errors, matching,
 * sequences, counts, windows and seeded probabilities (through sim_fault_decide), and each
 * socket fault over real loopback sockets, as cm_http_client sees it. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cm_clock.h"
#include "cm_http_client.h"
#include "cm_http_server.h"
#include "cm_json.h"
#include "cm_log.h"
#include "sim_fault.h"
#include "sim_http.h"
#include "sim_journal.h"

#define BODY                                                                                       \
    "{\"status\":\"success\",\"data\":{\"answer\":\"the real handler answered this, "              \
    "with enough bytes to cut in half\"}}"

static sim_fault_t *eng;
static sim_journal_t *jr;
static cm_http_server_t *srv;
static char base[64];
static int handled;

static json_t *J(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    cr_assert_not_null(v, "bad test JSON %s: %s", text, e.text);
    return v;
}

static int64_t add(const char *rule)
{
    char err[CM_ERR_LEN] = "";
    json_t *spec = J(rule), *out = NULL;
    cr_assert_eq(sim_fault_add(eng, spec, &out, err), CM_OK, "%s: %s", rule, err);
    int64_t id = cm_json_int(out, "id", 0);
    json_decref(spec);
    json_decref(out);
    return id;
}

static const char *refused(const char *rule)
{
    static char err[CM_ERR_LEN];
    err[0] = '\0';
    json_t *spec = J(rule);
    cr_assert_eq(sim_fault_add(eng, spec, NULL, err), CM_EINVAL, "accepted: %s", rule);
    json_decref(spec);
    return err;
}

/* Decides for a request and returns the plan's kind, or -1 when nothing fired. */
static int decide(const char *provider, const char *method, const char *path, const char *ctype,
                  const char *body)
{
    sim_fault_plan_t p;
    int fired =
        sim_fault_decide(eng, provider, method, path, ctype, body, body ? strlen(body) : 0, &p);
    int kind = fired ? (p.kind == SIM_FAULT_ANSWER ? p.status : (int)p.kind) : -1;
    sim_fault_plan_free(&p);
    return kind;
}

static void h_thing(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    __atomic_add_fetch(&handled, 1, __ATOMIC_SEQ_CST);
    cm_http_resp_text(resp, 200, "application/json", BODY);
    (void)cm_http_resp_header(resp, "X-Handler", "yes");
}

static void setup(void)
{
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(cm_http_global_init(), CM_OK);
    cm_log_set_level("error");
    jr = sim_journal_new(100);
    eng = sim_fault_new(&(sim_fault_cfg_t){.seed = 7, .journal = jr});
    srv = cm_http_server_new(&(cm_http_server_cfg_t){.threads = 0, .name = "test.fault"});
    cr_assert_eq(cm_http_server_route(srv, "GET /thing", h_thing, NULL), CM_OK);
    cr_assert_eq(cm_http_server_route(srv, "POST /thing", h_thing, NULL), CM_OK);
    cr_assert_eq(sim_fault_attach(eng, srv, "calcom"), CM_OK);
    cr_assert_eq(cm_http_server_start(srv, err), CM_OK, "%s", err);
    snprintf(base, sizeof base, "http://127.0.0.1:%u", cm_http_server_port(srv));
    handled = 0;
}

static void teardown(void)
{
    sim_fault_shutdown(eng);
    cm_http_server_free(&srv);
    sim_fault_free(&eng);
    sim_journal_free(&jr);
}

TestSuite(fault, .init = setup, .fini = teardown);

/* ---- parsing ---------------------------------------------------------------------- */

Test(fault, bad_rules_say_what_and_where)
{
    static const struct {
        const char *rule, *msg;
    } cases[] = {
        {"{\"route\":\"GET /x\",\"probability\":2.0,\"status\":503}",
         "$.probability: must be a number from 0 to 1, not 2"},
        {"{\"route\":\"GET /x\",\"socket\":\"rst\"}", "$.socket: unknown socket fault 'rst'"},
        {"{\"route\":\"GET /x\",\"statsu\":503}", "$.statsu: unknown field"},
        {"{\"route\":\"GET /x\"}",
         "$.(rule): a fault needs one of status, socket, latency or pass"},
        {"{\"route\":\"bookings\",\"status\":503}", "$.route: must be \"METHOD /path\""},
        {"{\"status\":99}", "$.status: must be an integer from 100 to 599"},
        {"{\"status\":503,\"socket\":\"reset\"}", "$.socket: 'reset' sends no answer"},
        {"{\"sequence\":[{\"times\":2,\"status\":503},{\"times\":1,\"socket\":\"hang\","
         "\"hang_max\":\"2 days\"}]}",
         "$.sequence[1].hang_max: must be a duration"},
        {"{\"sequence\":[{\"status\":503},{\"pass\":true}]}",
         "$.sequence[0].times: only the last step may leave out times"},
        {"{\"sequence\":[],\"status\":500}", "$.status: a rule with a sequence takes step fields"},
        {"{\"latency\":{\"lognormal\":{\"median\":\"100ms\"}}}",
         "$.latency.lognormal.sigma: must be a number"},
        {"{\"latency\":{\"uniform\":[\"300ms\",\"100ms\"]}}", "$.latency.uniform: must be [min"},
        {"{\"status\":429,\"retry_after\":-1}", "$.retry_after: must be seconds"},
        {"{\"window\":{\"from\":\"70s\",\"until\":\"10s\"},\"status\":503}",
         "$.window: until must be after from"},
        {"{\"provider\":\"paypal\",\"status\":503}", "$.provider: must be one of"},
        {"{\"match\":[],\"status\":503}", "$.match: must be an object"},
        {"[1]", "$: a fault rule must be a JSON object"},
        /* Numbers beyond any sensible rule are refused, not taken to overflow later. */
        {"{\"status\":503,\"times\":1000000001}", "$.times: must be an integer from 1 to"},
        {"{\"status\":503,\"retry_after\":9223372036854775807}", "$.retry_after: must be seconds"},
        {"{\"status\":503,\"retry_after\":{\"http_date_in\":\"2562047788015h\"}}",
         "$.retry_after: must be seconds"},
        {"{\"socket\":\"truncate\",\"truncate_at\":9223372036854775807}",
         "$.truncate_at: must be a byte count"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *err = refused(cases[i].rule);
        cr_assert(strstr(err, cases[i].msg), "rule %s\n  said: %s\n  want: %s", cases[i].rule, err,
                  cases[i].msg);
    }
    json_t *l = sim_fault_list(eng);
    cr_assert_eq(cm_json_int(l, "count", -1), 0, "refused rules add nothing");
    json_decref(l);
}

Test(fault, durations)
{
    json_t *v;
    static const struct {
        const char *text;
        int64_t ms;
    } cases[] = {{"250", 250},
                 {"\"250ms\"", 250},
                 {"\"1.5s\"", 1500},
                 {"\"2m\"", 120000},
                 {"\"1h\"", 3600000},
                 {"\"-1s\"", -1},
                 {"\"3 days\"", -1},
                 {"true", -1},
                 {"-4", -1},
                 /* The one grammar (cm_duration): a unit always, no exponent, no "min", no
                  * fractions of a millisecond, no spaces, no JSON reals. */
                 {"\"5\"", -1},
                 {"\"1min\"", -1},
                 {"\"1e3ms\"", -1},
                 {"\"0.5ms\"", -1},
                 {"\" 5s\"", -1},
                 {"1.5", -1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        v = json_loads(cases[i].text, JSON_DECODE_ANY, NULL);
        cr_assert_eq(sim_fault_duration_ms(v), cases[i].ms, "%s", cases[i].text);
        json_decref(v);
    }
}

Test(fault, route_patterns)
{
    cr_assert(sim_http_route_match("POST /v2/bookings", "POST", "/v2/bookings"));
    cr_assert(sim_http_route_match("POST /v2/bookings", "POST", "/v2/bookings/"));
    cr_assert_not(sim_http_route_match("POST /v2/bookings", "GET", "/v2/bookings"));
    cr_assert(sim_http_route_match("* /v2/bookings", "GET", "/v2/bookings"));
    cr_assert(sim_http_route_match("/v2/bookings", "DELETE", "/v2/bookings"));
    cr_assert(
        sim_http_route_match("POST /v2/bookings/{uid}/cancel", "POST", "/v2/bookings/ab/cancel"));
    cr_assert_not(
        sim_http_route_match("POST /v2/bookings/{uid}/cancel", "POST", "/v2/bookings//cancel"));
    cr_assert(sim_http_route_match("GET /v1/*", "GET", "/v1/payment_intents/pi_1"));
    cr_assert_not(sim_http_route_match("GET /v1/*", "GET", "/v1"));
    cr_assert_not(
        sim_http_route_match("GET /v1/payment_intents", "GET", "/v1/payment_intents/pi_1"));
    cr_assert(sim_http_route_match(NULL, "GET", "/anything"));
}

/* ---- decisions -------------------------------------------------------------------- */

Test(fault, matching_by_provider_route_and_body)
{
    add("{\"provider\":\"stripe\",\"route\":\"POST /v1/payment_intents\","
        "\"match\":{\"amount\":500,\"metadata.call\":\"c1\"},\"status\":402}");
    add("{\"provider\":\"calcom\",\"route\":\"POST /v2/bookings\","
        "\"match\":{\"attendee.email\":\"x@y.example\"},\"status\":409}");
    const char *form = "application/x-www-form-urlencoded";
    cr_assert_eq(decide("stripe", "POST", "/v1/payment_intents", form,
                        "amount=500&currency=eur&metadata[call]=c1"),
                 402);
    cr_assert_eq(decide("stripe", "POST", "/v1/payment_intents", form,
                        "amount=501&currency=eur&metadata[call]=c1"),
                 -1, "another amount");
    cr_assert_eq(
        decide("calcom", "POST", "/v1/payment_intents", form, "amount=500&metadata[call]=c1"), -1,
        "another provider");
    cr_assert_eq(decide("calcom", "POST", "/v2/bookings", "application/json",
                        "{\"attendee\":{\"email\":\"x@y.example\"}}"),
                 409);
    cr_assert_eq(decide("calcom", "POST", "/v2/bookings", "application/json",
                        "{\"attendee\":{\"email\":\"z@y.example\"}}"),
                 -1);
    cr_assert_eq(decide("calcom", "POST", "/v2/bookings", "application/json", "not json"), -1);
}

Test(fault, sequence_then_normal)
{
    /* "first 2: 503 Retry-After 1, then 1: reset, then normal" */
    int64_t id = add("{\"route\":\"POST /v2/bookings\",\"sequence\":[{\"times\":2,\"status\":503,"
                     "\"retry_after\":1},{\"times\":1,\"socket\":\"reset\"}]}");
    sim_fault_plan_t p;
    cr_assert(sim_fault_decide(eng, "calcom", "POST", "/v2/bookings", NULL, NULL, 0, &p));
    cr_assert_eq(p.status, 503);
    cr_assert_str_eq(p.retry_after, "1");
    cr_assert_eq(p.rule_id, id);
    sim_fault_plan_free(&p);
    cr_assert_eq(decide("calcom", "GET", "/v2/bookings", NULL, NULL), -1, "other method");
    cr_assert_eq(decide("calcom", "POST", "/v2/bookings", NULL, NULL), 503);
    cr_assert_eq(decide("calcom", "POST", "/v2/bookings", NULL, NULL), SIM_FAULT_RESET);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(decide("calcom", "POST", "/v2/bookings", NULL, NULL), -1);
    json_t *l = sim_fault_list(eng);
    cr_assert_eq(cm_json_int(l, "rules.0.hits", -1), 3);
    cr_assert_eq(cm_json_int(l, "rules.0.matched", -1), 3, "a used-up rule stops matching");
    cr_assert(json_is_true(cm_json_path(l, "rules.0.exhausted")));
    json_decref(l);
}

Test(fault, fail_next_n_then_delete_and_clear)
{
    int64_t a = add("{\"route\":\"GET /v2/slots\",\"times\":3,\"status\":500}");
    add("{\"route\":\"GET /v2/slots\",\"status\":429,\"retry_after\":{\"http_date_in\":\"5s\"}}");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(decide("calcom", "GET", "/v2/slots", NULL, NULL), 500);
    sim_fault_plan_t p;
    cr_assert(sim_fault_decide(eng, "calcom", "GET", "/v2/slots", NULL, NULL, 0, &p));
    cr_assert_eq(p.status, 429, "the first rule is used up, the second fires for ever");
    cr_assert(strstr(p.retry_after, " GMT"), "%s", p.retry_after);
    sim_fault_plan_free(&p);
    cr_assert_eq(sim_fault_delete(eng, a), CM_OK);
    cr_assert_eq(sim_fault_delete(eng, a), CM_ENOTFOUND);
    sim_fault_clear(eng);
    cr_assert_eq(decide("calcom", "GET", "/v2/slots", NULL, NULL), -1);
}

Test(fault, time_windows)
{
    add("{\"route\":\"GET /late\",\"window\":{\"from\":\"1h\"},\"status\":503}");
    add("{\"route\":\"GET /early\",\"window\":{\"until\":\"1s\"},\"status\":503}");
    add("{\"route\":\"GET /mid\",\"window\":{\"from\":\"1s\",\"until\":\"1h\"},\"status\":503}");
    cr_assert_eq(decide("calcom", "GET", "/late", NULL, NULL), -1);
    cr_assert_eq(decide("calcom", "GET", "/early", NULL, NULL), 503);
    cr_assert_eq(decide("calcom", "GET", "/mid", NULL, NULL), -1);
    /* The windows are what is tested: let their time pass. */
    cm_clock_sleep_ms(1050);
    cr_assert_eq(decide("calcom", "GET", "/early", NULL, NULL), -1);
    cr_assert_eq(decide("calcom", "GET", "/mid", NULL, NULL), 503);
}

/* Which of n requests a probability rule hits, as a bit string. */
static void pattern(uint64_t seed, char *out, int n)
{
    sim_fault_t *saved = eng;
    eng = sim_fault_new(&(sim_fault_cfg_t){.seed = seed});
    add("{\"route\":\"GET /p\",\"probability\":0.3,\"status\":503}");
    for (int i = 0; i < n; i++)
        out[i] = decide("calcom", "GET", "/p", NULL, NULL) == 503 ? '1' : '0';
    out[n] = '\0';
    sim_fault_free(&eng);
    eng = saved;
}

Test(fault, probabilities_are_seeded)
{
    char a[1001], b[1001], c[1001];
    pattern(42, a, 1000);
    pattern(42, b, 1000);
    pattern(43, c, 1000);
    cr_assert_str_eq(a, b, "same seed, same faults");
    cr_assert_str_neq(a, c, "another seed, other faults");
    int hits = 0;
    for (int i = 0; i < 1000; i++)
        hits += a[i] == '1';
    cr_assert(hits > 250 && hits < 350, "0.3 of 1000 gave %d", hits);
}

Test(fault, latency_distributions)
{
    add("{\"route\":\"GET /u\",\"latency\":{\"uniform\":[100,300]}}");
    add("{\"route\":\"GET /l\",\"latency\":{\"lognormal\":{\"median\":\"200ms\",\"sigma\":0.5}}}");
    add("{\"route\":\"GET /f\",\"latency\":\"40ms\",\"status\":504}");
    int64_t ln[999];
    for (int i = 0; i < 999; i++) {
        sim_fault_plan_t p;
        cr_assert(sim_fault_decide(eng, "calcom", "GET", "/u", NULL, NULL, 0, &p));
        cr_assert(p.latency_ms >= 100 && p.latency_ms <= 300, "%lld", (long long)p.latency_ms);
        cr_assert_eq(p.kind, SIM_FAULT_PASS, "latency alone passes the request on");
        sim_fault_plan_free(&p);
        cr_assert(sim_fault_decide(eng, "calcom", "GET", "/l", NULL, NULL, 0, &p));
        ln[i] = p.latency_ms;
        sim_fault_plan_free(&p);
    }
    /* The median of a lognormal is its median parameter. */
    int below = 0;
    for (int i = 0; i < 999; i++)
        below += ln[i] < 200;
    cr_assert(below > 440 && below < 560, "%d of 999 below the median", below);
    sim_fault_plan_t p;
    cr_assert(sim_fault_decide(eng, "calcom", "GET", "/f", NULL, NULL, 0, &p));
    cr_assert_eq(p.latency_ms, 40);
    cr_assert_eq(p.status, 504);
    sim_fault_plan_free(&p);
}

Test(fault, fixture_file_all_or_nothing)
{
    char path[] = "/tmp/test_sim_fault_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *good = "{\"faults\":[{\"route\":\"GET /a\",\"status\":503},"
                       "{\"route\":\"GET /b\",\"socket\":\"reset\"}]}";
    cr_assert_eq(write(fd, good, strlen(good)), (ssize_t)strlen(good));
    close(fd);
    char err[CM_ERR_LEN] = "";
    size_t n = 0;
    cr_assert_eq(sim_fault_load_file(eng, path, &n, err), CM_OK, "%s", err);
    cr_assert_eq(n, 2);
    FILE *f = fopen(path, "w");
    fputs("[{\"route\":\"GET /c\",\"status\":503},{\"route\":\"GET /d\",\"status\":700}]", f);
    fclose(f);
    cr_assert_eq(sim_fault_load_file(eng, path, &n, err), CM_EINVAL);
    cr_assert(strstr(err, "$[1].status: must be an integer from 100 to 599"), "%s", err);
    unlink(path);
    json_t *l = sim_fault_list(eng);
    cr_assert_eq(cm_json_int(l, "count", -1), 2, "the bad file added nothing");
    json_decref(l);
}

/* ---- over the wire ---------------------------------------------------------------- */

typedef struct {
    cm_err_t rc;
    long status;
    char body[512];
    char err[CM_ERR_LEN];
    char retry_after[64];
    double ms;
} result_t;

static result_t get(const char *method, const char *path, long timeout_ms)
{
    char url[128];
    result_t out = {0};
    snprintf(url, sizeof url, "%s%s", base, path);
    cm_http_client_t *c = cm_http_client_new();
    cm_http_response_t r;
    cm_http_request_t req = {.method = method, .url = url, .timeout_ms = timeout_ms};
    out.rc = cm_http_client_do(c, &req, &r);
    out.status = r.status;
    snprintf(out.body, sizeof out.body, "%s", r.body.data ? r.body.data : "");
    snprintf(out.err, sizeof out.err, "%s", r.err);
    if (!cm_http_response_header(&r, "Retry-After", out.retry_after, sizeof out.retry_after))
        out.retry_after[0] = '\0';
    out.ms = r.total_ms;
    cm_http_response_free(&r);
    cm_http_client_free(&c);
    return out;
}

/* The journal's last record for GET /thing, waited for with a deadline (the after hook
 * records it once the fault has ended). */
static json_t *last_record(int64_t want_count)
{
    sim_journal_filter_t f = {.route = "* /thing", .kind = -1};
    cr_assert_geq(sim_journal_wait(jr, &f, (size_t)want_count, 5000), (size_t)want_count,
                  "no journal record %lld", (long long)want_count);
    json_t *v = sim_journal_query(jr, &f);
    json_t *e = json_incref(json_array_get(cm_json_path(v, "entries"), (size_t)want_count - 1));
    json_decref(v);
    return e;
}

Test(fault, answers_with_headers_and_provider_shaped_bodies)
{
    add("{\"route\":\"GET /thing\",\"times\":1,\"status\":429,\"retry_after\":7}");
    add("{\"route\":\"GET /thing\",\"times\":1,\"status\":418,\"headers\":{\"X-Why\":\"teapot\"},"
        "\"body\":{\"custom\":true}}");
    result_t r = get("GET", "/thing", 2000);
    cr_assert_eq(r.rc, CM_OK, "%s", r.err);
    cr_assert_eq(r.status, 429);
    cr_assert_str_eq(r.retry_after, "7");
    cr_assert(strstr(r.body, "ThrottlerException"), "Cal.com's error envelope: %s", r.body);
    r = get("GET", "/thing", 2000);
    cr_assert_eq(r.status, 418);
    cr_assert_str_eq(r.body, "{\"custom\":true}");
    r = get("GET", "/thing", 2000);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(handled, 1, "answered faults skip the handler");
    json_t *e = last_record(1);
    cr_assert_str_eq(cm_json_str(e, "fault", ""), "rule 1 step 0: status 429");
    cr_assert_eq(cm_json_int(e, "status", 0), 429);
    json_decref(e);
}

Test(fault, latency_delays_the_real_answer)
{
    add("{\"route\":\"GET /thing\",\"latency\":\"150ms\"}");
    result_t r = get("GET", "/thing", 2000);
    cr_assert_eq(r.rc, CM_OK, "%s", r.err);
    cr_assert_eq(r.status, 200);
    cr_assert_geq(r.ms, 150.0);
    cr_assert_eq(handled, 1);
}

Test(fault, reset_is_a_transport_error)
{
    add("{\"route\":\"GET /thing\",\"socket\":\"reset\"}");
    result_t r = get("GET", "/thing", 2000);
    cr_assert_eq(r.rc, CM_EHTTP, "%s", r.err);
    /* CURLE_RECV_ERROR (ECONNRESET), not CURLE_GOT_NOTHING as for a plain close. */
    cr_assert(strstr(r.err, "Failure when receiving data"), "a real RST, not an empty reply: %s",
              r.err);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(handled, 0);
    json_t *e = last_record(1);
    cr_assert_str_eq(cm_json_str(e, "outcome", ""), "reset");
    json_decref(e);
}

Test(fault, close_is_an_empty_reply)
{
    add("{\"route\":\"GET /thing\",\"socket\":\"close\"}");
    result_t r = get("GET", "/thing", 2000);
    cr_assert_eq(r.rc, CM_EHTTP);
    cr_assert(strstr(r.err, "Server returned nothing"), "%s", r.err);
}

Test(fault, after_runs_the_handler_then_loses_the_answer)
{
    add("{\"route\":\"POST /thing\",\"times\":1,\"socket\":\"reset\",\"when\":\"after\"}");
    add("{\"route\":\"POST /thing\",\"times\":1,\"status\":500,\"when\":\"after\"}");
    result_t r = get("POST", "/thing", 2000);
    cr_assert_eq(r.rc, CM_EHTTP, "%s", r.err);
    cr_assert_eq(handled, 1, "the effect happened though the answer was lost");
    r = get("POST", "/thing", 2000);
    cr_assert_eq(r.status, 500);
    cr_assert_eq(handled, 2);
}

Test(fault, garbage_is_a_weird_reply)
{
    add("{\"route\":\"GET /thing\",\"socket\":\"garbage\"}");
    result_t r = get("GET", "/thing", 2000);
    cr_assert_eq(r.rc, CM_EHTTP);
    cr_assert_eq(r.status, 0);
    /* curl takes bytes that are not a status line for HTTP/0.9, which it refuses. */
    cr_assert(strstr(r.err, "Unsupported protocol"), "%s", r.err);
}

Test(fault, truncated_body_is_a_partial_file)
{
    add("{\"route\":\"GET /thing\",\"socket\":\"truncate\"}");
    result_t r = get("GET", "/thing", 2000);
    cr_assert_eq(r.rc, CM_EHTTP);
    cr_assert(strstr(r.err, "Transferred a partial file") || strstr(r.err, "partial"), "%s", r.err);
    cr_assert_eq(handled, 1, "the body cut short is the handler's own");
}

Test(fault, malformed_chunk_is_refused)
{
    add("{\"route\":\"GET /thing\",\"socket\":\"malformed_chunk\"}");
    result_t r = get("GET", "/thing", 2000);
    cr_assert_eq(r.rc, CM_EHTTP);
    /* curl 7.88 reports a bad chunk size as a receive failure. */
    cr_assert(strstr(r.err, "Failure when receiving data") || strstr(r.err, "chunk"), "%s", r.err);
}

Test(fault, slow_body_arrives_whole_but_late_or_times_out)
{
    add("{\"route\":\"GET /thing\",\"socket\":\"slow_body\",\"chunk_bytes\":20,"
        "\"interval\":\"30ms\"}");
    result_t r = get("GET", "/thing", 3000);
    cr_assert_eq(r.rc, CM_OK, "%s", r.err);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, BODY);
    size_t chunks = (sizeof BODY - 1 + 19) / 20;
    cr_assert_geq(r.ms, 30.0 * (double)(chunks - 1) * 0.9);
    r = get("GET", "/thing", 60);
    cr_assert_eq(r.rc, CM_ETIMEOUT, "%s", r.err);
}

Test(fault, hang_lasts_until_the_client_gives_up)
{
    add("{\"route\":\"GET /thing\",\"socket\":\"hang\"}");
    result_t r = get("GET", "/thing", 300);
    cr_assert_eq(r.rc, CM_ETIMEOUT, "%s", r.err);
    json_t *e = last_record(1);
    cr_assert_str_eq(cm_json_str(e, "outcome", ""), "hung");
    cr_assert_lt(json_number_value(cm_json_path(e, "duration_ms")), 5000.0,
                 "the hang ended when the client left, not at hang_max");
    json_decref(e);
}

Test(fault, hang_is_bounded_by_hang_max)
{
    add("{\"route\":\"GET /thing\",\"socket\":\"hang\",\"hang_max\":\"200ms\"}");
    result_t r = get("GET", "/thing", 5000);
    cr_assert_eq(r.rc, CM_EHTTP, "closed after hang_max: %s", r.err);
    cr_assert_geq(r.ms, 190.0);
}

static void *get_thread(void *arg)
{
    result_t *out = arg;
    *out = get("GET", "/thing", 10000);
    return NULL;
}

Test(fault, shutdown_releases_a_hang)
{
    add("{\"route\":\"GET /thing\",\"socket\":\"hang\"}");
    result_t r;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, get_thread, &r), 0);
    int64_t deadline = cm_clock_mono_ms() + 5000;
    for (;;) { /* wait until the request is hanging */
        json_t *l = sim_fault_list(eng);
        int64_t hits = cm_json_int(l, "rules.0.hits", 0);
        json_decref(l);
        if (hits == 1)
            break;
        cr_assert_lt(cm_clock_mono_ms(), deadline);
        cm_clock_sleep_ms(5);
    }
    int64_t t0 = cm_clock_mono_ms();
    sim_fault_shutdown(eng);
    pthread_join(t, NULL);
    cr_assert_eq(r.rc, CM_EHTTP, "%s", r.err);
    cr_assert_lt(cm_clock_mono_ms() - t0, 3000);
}

Test(fault, control_paths_are_never_faulted)
{
    add("{\"socket\":\"reset\"}");
    result_t r = get("GET", "/_sim/health", 2000);
    cr_assert_eq(r.rc, CM_OK, "%s", r.err);
    cr_assert_eq(r.status, 404, "no such route here, but answered");
}

/* The request's headers for match_headers: "Name: value" pairs, names in any case. */
static const char *fake_header(void *ud, const char *name)
{
    const char *const *h = ud;
    for (; *h; h += 2)
        if (!strcasecmp(h[0], name))
            return h[1];
    return NULL;
}

static int decide_with(const char *const *headers)
{
    sim_fault_plan_t p;
    int fired = sim_fault_decide_hdr(eng, "calcom", "GET", "/v2/slots", NULL, NULL, 0, fake_header,
                                     (void *)headers, &p);
    int kind = fired ? p.status : -1;
    sim_fault_plan_free(&p);
    return kind;
}

/* One API key's requests fail while the others are served: the header must be there with
 * exactly that value; without headers (sim_fault_decide) such a rule never fires. */
Test(fault, match_headers_picks_one_keys_requests)
{
    add("{\"route\":\"GET /v2/slots\",\"match_headers\":{\"Authorization\":\"Bearer cal_a\"},"
        "\"status\":401}");
    const char *const a[] = {"authorization", "Bearer cal_a", NULL};
    const char *const b[] = {"Authorization", "Bearer cal_b", NULL};
    const char *const a_prefix[] = {"Authorization", "Bearer cal_a2", NULL};
    const char *const none[] = {NULL};
    cr_assert_eq(decide_with(a), 401, "the name in any case");
    cr_assert_eq(decide_with(b), -1, "another key");
    cr_assert_eq(decide_with(a_prefix), -1, "exact values, not prefixes");
    cr_assert_eq(decide_with(none), -1, "no such header");
    cr_assert_eq(decide("calcom", "GET", "/v2/slots", NULL, NULL), -1, "headers unknown");
    cr_assert(strstr(refused("{\"match_headers\":{\"Authorization\":1},\"status\":401}"),
                     "match_headers.Authorization: must be a string"));
    cr_assert(strstr(refused("{\"match_headers\":{\"a b\":\"x\"},\"status\":401}"),
                     "is not a header name"));
    cr_assert(strstr(refused("{\"match_headers\":{},\"status\":401}"), "match_headers: must be"));
}
