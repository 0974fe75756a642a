/* test_ch_control.c - the control API over HTTP: links, faults, reset, journal, and every
 * error answer (404, 405, 409, 400 naming the path, 413). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ch_control.h"
#include "ch_journal.h"
#include "ch_link.h"
#include "cm_http_client.h"
#include "cm_http_server.h"
#include "cm_json.h"
#include "cm_log.h"
#include "test_ch_util.h"

static ch_journal_t *jr;
static ch_links_t *ls;
static ch_control_t ctl;
static cm_http_server_t *srv;
static tu_server_t *up;
static char base[64], upstream[32];

static void setup(void)
{
    char err[CM_ERR_LEN] = "";
    cm_log_set_level("warn");
    cr_assert_eq(cm_http_global_init(), CM_OK);
    up = tu_server_start(NULL);
    jr = ch_journal_new(0);
    ls = ch_links_new(&(ch_links_cfg_t){.seed = 1, .journal = jr}, err);
    cr_assert_not_null(ls, "%s", err);
    snprintf(upstream, sizeof upstream, "127.0.0.1:%u", tu_server_port(up));
    cr_assert_eq(ch_links_add(ls, "calcom", (const char *[]){upstream}, 1, 0, NULL, err), CM_OK,
                 "%s", err);
    ctl = (ch_control_t){.links = ls, .journal = jr};
    srv = cm_http_server_new(&(cm_http_server_cfg_t){
        .threads = 0, .body_limit = CH_CONTROL_BODY_LIMIT, .name = "test.chaos"});
    cr_assert_eq(ch_control_routes(&ctl, srv), CM_OK);
    cr_assert_eq(cm_http_server_start(srv, err), CM_OK, "%s", err);
    snprintf(base, sizeof base, "http://127.0.0.1:%u", cm_http_server_port(srv));
}

static void teardown(void)
{
    cm_http_server_free(&srv);
    ch_links_free(&ls);
    tu_server_stop(&up);
    ch_journal_free(&jr);
}

TestSuite(control, .init = setup, .fini = teardown, .timeout = 60);

/* Performs a request; returns the status and, when out is not NULL, the parsed body. */
static long call(const char *method, const char *path, const char *body, json_t **out)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    cm_http_client_t *c = cm_http_client_new();
    cm_http_response_t r;
    const char *const hdrs[] = {"Content-Type: application/json", NULL};
    cm_err_t rc = cm_http_client_do(c,
                                    &(cm_http_request_t){.method = method,
                                                         .url = url,
                                                         .headers = hdrs,
                                                         .body = body,
                                                         .body_len = body ? strlen(body) : 0},
                                    &r);
    cr_assert_eq(rc, CM_OK, "%s %s: %s", method, path, r.err);
    long status = r.status;
    if (out) {
        char err[CM_ERR_LEN];
        cr_assert_eq(cm_json_parse(r.body.data ? r.body.data : "", r.body.len, 1 << 22, out, err),
                     CM_OK, "%s %s answered %ld: %s", method, path, status, r.body.data);
    }
    cm_http_response_free(&r);
    cm_http_client_free(&c);
    return status;
}

/* Expects status and a problem whose detail is exactly detail. */
static void expect_problem(const char *method, const char *path, const char *body, long status,
                           const char *detail)
{
    json_t *v = NULL;
    long got = call(method, path, body, &v);
    cr_expect_eq(got, status, "%s %s: %ld, expected %ld", method, path, got, status);
    if (detail)
        cr_expect_str_eq(cm_json_str(v, "detail", ""), detail, "%s %s", method, path);
    cr_expect_eq(cm_json_int(v, "status", 0), status);
    json_decref(v);
}

Test(control, links)
{
    json_t *v = NULL;
    cr_assert_eq(call("GET", "/links", NULL, &v), 200);
    cr_expect_eq(json_array_size(cm_json_path(v, "links")), 1);
    cr_expect_str_eq(cm_json_str(v, "links.0.name", ""), "calcom");
    cr_expect_str_eq(cm_json_str(v, "links.0.upstream", ""), upstream);
    cr_expect_gt(cm_json_int(v, "links.0.port", 0), 0);
    cr_expect_eq(cm_json_int(v, "links.0.stats.connections", -1), 0);
    cr_expect_eq(cm_json_int(v, "links.0.stats.faults_applied", -1), 0);
    json_decref(v);

    char body[128];
    snprintf(body, sizeof body, "{\"name\":\"stripe\",\"upstream\":\"%s\",\"port\":0}", upstream);
    cr_assert_eq(call("POST", "/links", body, &v), 201);
    cr_expect_str_eq(cm_json_str(v, "name", ""), "stripe");
    int64_t port = cm_json_int(v, "port", 0);
    json_decref(v);
    cr_expect_gt(port, 0);
    expect_problem("POST", "/links", body, 409, "a link named \"stripe\" exists");

    /* The new link carries traffic. */
    int fd = tu_connect((uint16_t)port);
    cr_assert_geq(fd, 0);
    char buf[4];
    tu_how_t how;
    cr_assert_eq(tu_send_all(fd, "hey", 3, 2000), 0);
    cr_expect_eq(tu_recv_n(fd, buf, 3, 3000, &how, NULL), 3);
    close(fd);

    cr_assert_eq(call("GET", "/links/stripe", NULL, &v), 200);
    cr_expect_eq(cm_json_int(v, "stats.connections", -1), 1);
    json_decref(v);
    cr_assert_eq(call("PUT", "/links/stripe", "{\"upstream\":\"127.0.0.1:9\"}", &v), 200);
    cr_expect_str_eq(cm_json_str(v, "upstream", ""), "127.0.0.1:9");
    json_decref(v);

    expect_problem("GET", "/links/nope", NULL, 404, "no link named \"nope\"");
    expect_problem("PUT", "/links/nope", "{\"upstream\":\"127.0.0.1:9\"}", 404, NULL);
    expect_problem("DELETE", "/links/calcom", NULL, 405, NULL);
    expect_problem("POST", "/links", "{\"name\":\"x\"}", 400,
                   "upstream: required (HOST:PORT), or upstreams (a list of them)");
    expect_problem("POST", "/links", "{\"upstream\":\"127.0.0.1:1\"}", 400, "name: required");
    expect_problem("POST", "/links", "{\"name\":5,\"upstream\":\"127.0.0.1:1\"}", 400,
                   "name: must be a string");
    expect_problem("POST", "/links", "{\"name\":\"UP\",\"upstream\":\"127.0.0.1:1\"}", 400,
                   "name: \"UP\" is not 1 to 32 of a-z, 0-9, _ and -");
    expect_problem("POST", "/links", "{\"name\":\"x\",\"upstream\":\"127.0.0.1\"}", 400,
                   "upstream: \"127.0.0.1\" is not HOST:PORT with a port from 1 to 65535");
    expect_problem("POST", "/links", "{\"name\":\"x\",\"upstream\":\"127.0.0.1:1\",\"port\":-1}",
                   400, "port: must be an integer from 0 (any free port) to 65535");
    expect_problem("POST", "/links", "{\"name\":\"x\",\"upstream\":\"127.0.0.1:1\",\"tls\":true}",
                   400, "tls: unknown field (expected name, upstream, upstreams, port)");
    expect_problem("PUT", "/links/calcom", "{\"upstream\":1}", 400,
                   "upstream: must be a string HOST:PORT");
    expect_problem("PUT", "/links/calcom", "{\"upstream\":\"a:1\",\"name\":\"b\"}", 400,
                   "name: unknown field (expected upstream, upstreams)");
    expect_problem("PUT", "/links/calcom", "", 400, "a JSON object body is required");
    expect_problem("PUT", "/links/calcom", "[1]", 400, "the body must be a JSON object");
    expect_problem("PUT", "/links/calcom", "{\"upstream\":", 400, NULL);
    expect_problem("PUT", "/links/calcom", "{\"upstream\":\"a:1\",\"upstream\":\"b:2\"}", 400,
                   NULL);
}

/* Connects to port and returns the one-letter greeting of the upstream reached ('-' none). */
static char greeting_at(uint16_t port)
{
    char buf[2] = "-";
    tu_how_t how;
    int fd = tu_connect(port);
    cr_assert_geq(fd, 0);
    size_t got = tu_recv_n(fd, buf, 1, 5000, &how, NULL);
    close(fd);
    return got == 1 ? buf[0] : '-';
}

Test(control, upstreams)
{
    tu_server_t *a = tu_server_start("A"), *b = tu_server_start("B"), *c = tu_server_start("C");
    char ua[32], ub[32], uc[32], body[512];
    snprintf(ua, sizeof ua, "127.0.0.1:%u", tu_server_port(a));
    snprintf(ub, sizeof ub, "127.0.0.1:%u", tu_server_port(b));
    snprintf(uc, sizeof uc, "127.0.0.1:%u", tu_server_port(c));
    snprintf(body, sizeof body, "{\"name\":\"gw\",\"upstreams\":[\"%s\",\"%s\",\"%s\"]}", ua, ub,
             uc);
    json_t *v = NULL;
    cr_assert_eq(call("POST", "/links", body, &v), 201);
    uint16_t port = (uint16_t)cm_json_int(v, "port", 0);
    cr_expect_str_eq(cm_json_str(v, "upstream", ""), ua, "upstream is the first");
    cr_expect_eq(json_array_size(cm_json_path(v, "upstreams")), 3);
    cr_expect_str_eq(cm_json_str(v, "upstreams.1", ""), ub);
    json_t *per = cm_json_path(v, "stats.per_upstream");
    cr_expect_eq(json_object_size(per), 3);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(per, uc), "connections")), 0);
    json_decref(v);

    char seen[7] = "";
    for (int i = 0; i < 6; i++)
        seen[i] = greeting_at(port);
    cr_expect_str_eq(seen, "ABCABC");

    /* GET round-trips: its upstreams PUT back give the same link; counts stay. */
    cr_assert_eq(call("GET", "/links/gw", NULL, &v), 200);
    json_t *ups = json_deep_copy(cm_json_path(v, "upstreams"));
    json_decref(v);
    json_t *put = json_pack("{s:o}", "upstreams", ups);
    char *text = json_dumps(put, JSON_COMPACT);
    json_decref(put);
    cr_assert_eq(call("PUT", "/links/gw", text, &v), 200);
    free(text);
    cr_expect_eq(json_array_size(cm_json_path(v, "upstreams")), 3);
    cr_expect_str_eq(cm_json_str(v, "upstreams.2", ""), uc);
    per = cm_json_path(v, "stats.per_upstream");
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(per, ub), "connections")), 2);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(per, ub), "errors")), 0);
    json_decref(v);

    /* PUT a new list: new connections use it, from its first. */
    snprintf(body, sizeof body, "{\"upstreams\":[\"%s\",\"%s\"]}", uc, ua);
    cr_assert_eq(call("PUT", "/links/gw", body, &v), 200);
    cr_expect_str_eq(cm_json_str(v, "upstream", ""), uc);
    cr_expect_eq(json_object_size(cm_json_path(v, "stats.per_upstream")), 2);
    json_decref(v);
    cr_expect_eq(greeting_at(port), 'C');
    cr_expect_eq(greeting_at(port), 'A');
    /* And the one-upstream form still works on a link that had several. */
    snprintf(body, sizeof body, "{\"upstream\":\"%s\"}", ub);
    cr_assert_eq(call("PUT", "/links/gw", body, &v), 200);
    cr_expect_eq(json_array_size(cm_json_path(v, "upstreams")), 1);
    cr_expect_str_eq(cm_json_str(v, "upstreams.0", ""), ub);
    json_decref(v);
    cr_expect_eq(greeting_at(port), 'B');

    /* Refusals name the field (and the item); nothing changes. */
    snprintf(body, sizeof body, "{\"upstream\":\"%s\",\"upstreams\":[\"%s\"]}", ua, ua);
    expect_problem("PUT", "/links/gw", body, 400,
                   "upstreams: give upstream (one) or upstreams (a list), not both");
    expect_problem("PUT", "/links/gw", "{\"upstreams\":[]}", 400,
                   "upstreams: must be a list of 1 to 16 HOST:PORT");
    expect_problem("PUT", "/links/gw", "{\"upstreams\":\"127.0.0.1:1\"}", 400,
                   "upstreams: must be a list of 1 to 16 HOST:PORT");
    expect_problem("PUT", "/links/gw", "{\"upstreams\":[\"127.0.0.1:1\",5]}", 400,
                   "upstreams[1]: must be a string HOST:PORT");
    expect_problem("PUT", "/links/gw", "{\"upstreams\":[\"127.0.0.1:1\",\"127.0.0.1\"]}", 400,
                   "upstreams[1]: \"127.0.0.1\" is not HOST:PORT with a port from 1 to 65535");
    expect_problem("PUT", "/links/gw", "{\"upstreams\":[\"127.0.0.1:1\",\"127.0.0.1:1\"]}", 400,
                   "upstreams[1]: \"127.0.0.1:1\" is already upstreams[0]");
    char many[1024] = "{\"upstreams\":[";
    for (int i = 1; i <= 17; i++) {
        char one[24];
        snprintf(one, sizeof one, "%s\"127.0.0.1:%d\"", i > 1 ? "," : "", i);
        strcat(many, one);
    }
    strcat(many, "]}");
    expect_problem("PUT", "/links/gw", many, 400, "upstreams: must be a list of 1 to 16 HOST:PORT");
    expect_problem("PUT", "/links/gw", "{}", 400,
                   "upstream: required (HOST:PORT), or upstreams (a list of them)");
    expect_problem("POST", "/links", "{\"name\":\"y\",\"upstreams\":[\"x\"]}", 400,
                   "upstreams[0]: \"x\" is not HOST:PORT with a port from 1 to 65535");
    cr_assert_eq(call("GET", "/links/gw", NULL, &v), 200);
    cr_expect_eq(json_array_size(cm_json_path(v, "upstreams")), 1, "unchanged by the bad ones");
    json_decref(v);
    cr_expect_eq(call("GET", "/links/y", NULL, NULL), 404, "nothing added");

    /* The journal's open entries name the upstream reached. */
    cr_assert_eq(call("GET", "/journal?link=gw&event=open", NULL, &v), 200);
    cr_expect_eq(cm_json_int(v, "count", 0), 9);
    cr_expect_str_eq(cm_json_str(v, "entries.0.upstream", ""), ua);
    cr_expect_str_eq(cm_json_str(v, "entries.8.upstream", ""), ub);
    json_decref(v);
    cm_http_server_free(&srv);
    ch_links_free(&ls); /* before the servers go */
    tu_server_stop(&a);
    tu_server_stop(&b);
    tu_server_stop(&c);
}

Test(control, faults)
{
    json_t *v = NULL;
    cr_assert_eq(call("PUT", "/links/calcom/faults",
                      "{\"faults\":[{\"latency\":\"100ms\",\"jitter\":\"10ms\"},"
                      "{\"socket\":\"reset\",\"direction\":\"upstream\",\"probability\":0.5}]}",
                      &v),
                 200);
    cr_expect_eq(json_array_size(cm_json_path(v, "faults")), 2);
    cr_expect_str_eq(cm_json_str(v, "faults.0.latency", ""), "100ms");
    cr_expect_str_eq(cm_json_str(v, "faults.0.jitter", ""), "10ms");
    cr_expect_str_eq(cm_json_str(v, "faults.0.direction", ""), "both");
    cr_expect_str_eq(cm_json_str(v, "faults.1.socket", ""), "reset");
    cr_expect_eq(cm_json_int(v, "faults.1.after_bytes", -1), 0);
    cr_expect_str_eq(cm_json_str(v, "faults.1.direction", ""), "upstream");
    cr_expect_null(cm_json_path(v, "deprecated"), "nothing deprecated in the current form");
    json_decref(v);

    /* A refused list changes nothing; the detail names the path and the field. */
    expect_problem("PUT", "/links/calcom/faults",
                   "{\"faults\":[{\"socket\":\"hang\"},{\"latency\":\"-5ms\"}]}", 400,
                   "faults[1].latency: \"-5ms\" is not a duration (write e.g. \"250ms\", "
                   "\"1.5s\", \"2m\", \"1h\")");
    expect_problem("PUT", "/links/calcom/faults", "{\"faults\":[],\"x\":1}", 400,
                   "x: unknown field (expected faults)");
    expect_problem("PUT", "/links/calcom/faults",
                   "{\"faults\":[{\"down\":true,\"probability\":0.5}]}", 400,
                   "faults[0].probability: not allowed for down (a link is down for every "
                   "connection)");
    expect_problem("PUT", "/links/calcom/faults",
                   "{\"faults\":[{\"latency\":{\"lognormal\":{\"median\":\"1s\","
                   "\"sigma\":1}}}]}",
                   400,
                   "faults[0].latency.lognormal: the proxy draws delays uniformly, it cannot do a "
                   "lognormal one (a simulator rule can); write \"jitter\" or {\"uniform\": "
                   "[min, max]}");
    expect_problem("PUT", "/links/calcom/faults", "{\"faults\":[{\"socket\":\"garbage\"}]}", 400,
                   "faults[0].socket: 'garbage' is a simulator rule's (it shapes an HTTP answer, "
                   "which a link does not parse); a link can reset, hang or be down");
    expect_problem("PUT", "/links/calcom/faults", "{\"faults\":[{\"type\":\"latency\"}]}", 400,
                   "faults[0].ms: required (a non-negative integer)");
    expect_problem("PUT", "/links/nope/faults", "{\"faults\":[]}", 404, "no link named \"nope\"");
    cr_assert_eq(call("GET", "/links/calcom", NULL, &v), 200);
    cr_expect_eq(json_array_size(cm_json_path(v, "faults")), 2, "unchanged by the bad ones");
    json_decref(v);

    cr_assert_eq(call("DELETE", "/links/calcom/faults", NULL, &v), 200);
    cr_expect_eq(json_array_size(cm_json_path(v, "faults")), 0);
    json_decref(v);
    expect_problem("DELETE", "/links/nope/faults", NULL, 404, NULL);

    cr_assert_eq(call("PUT", "/links/calcom/faults", "{\"faults\":[{\"down\":true}]}", NULL), 200);
    cr_assert_eq(call("POST", "/reset", NULL, &v), 200);
    cr_expect_eq(json_array_size(cm_json_path(v, "links.0.faults")), 0);
    json_decref(v);
    cr_assert_eq(call("GET", "/links/calcom", NULL, &v), 200);
    cr_expect_eq(json_array_size(cm_json_path(v, "faults")), 0, "reset cleared the faults");
    json_decref(v);
}

/* The faults of GET /links/calcom as a {"faults":[...]} body (new), checking the status. */
static json_t *faults_shown(void)
{
    json_t *v = NULL;
    cr_assert_eq(call("GET", "/links/calcom", NULL, &v), 200);
    json_t *body = json_pack("{s:O}", "faults", cm_json_path(v, "faults"));
    json_decref(v);
    cr_assert_not_null(body);
    return body;
}

Test(control, get_shows_faults_that_put_back_the_same_list)
{
    cr_assert_eq(call("PUT", "/links/calcom/faults",
                      "{\"faults\":[{\"latency\":{\"uniform\":[\"200ms\",\"400ms\"]},"
                      "\"direction\":\"downstream\"},"
                      "{\"latency\":{\"uniform\":[\"1ms\",\"4ms\"]}},"
                      "{\"bandwidth\":20000,\"probability\":0.75},"
                      "{\"slice\":64,\"interval\":\"1ms\"},"
                      "{\"socket\":\"reset\",\"after_bytes\":12},"
                      "{\"socket\":\"hang\"},{\"socket\":\"hang\",\"hang_max\":\"2s\"},"
                      "{\"socket\":\"down\"}]}",
                      NULL),
                 200);
    json_t *first = faults_shown();
    char *text = cm_json_dumps_sorted(first);
    cr_expect_str_eq(text, "{\"faults\":[{\"direction\":\"downstream\",\"jitter\":\"100ms\","
                           "\"latency\":\"300ms\",\"probability\":1.0},{\"direction\":\"both\","
                           "\"latency\":{\"uniform\":[\"1ms\",\"4ms\"]},\"probability\":1.0},"
                           "{\"bandwidth\":20000,\"direction\":\"both\",\"probability\":0.75},"
                           "{\"direction\":\"both\",\"interval\":\"1ms\",\"probability\":1.0,"
                           "\"slice\":64},{\"after_bytes\":12,\"direction\":\"both\","
                           "\"probability\":1.0,\"socket\":\"reset\"},{\"direction\":\"both\","
                           "\"probability\":1.0,\"socket\":\"hang\"},{\"direction\":\"both\","
                           "\"hang_max\":\"2s\",\"probability\":1.0,\"socket\":\"hang\"},"
                           "{\"down\":true}]}");
    /* What GET shows, PUT back, is the same list: GET shows it the same way again. */
    json_t *again_v = NULL;
    cr_assert_eq(call("PUT", "/links/calcom/faults", text, &again_v), 200);
    cr_expect_null(cm_json_path(again_v, "deprecated"));
    json_decref(again_v);
    json_t *again = faults_shown();
    cr_expect(json_equal(first, again), "GET after the round trip differs");
    free(text);
    json_decref(first);
    json_decref(again);
}

Test(control, deprecated_form_taken_with_a_note)
{
    json_t *v = NULL;
    cr_assert_eq(call("PUT", "/links/calcom/faults",
                      "{\"faults\":[{\"type\":\"timeout\",\"ms\":2000},"
                      "{\"latency\":\"5ms\"},"
                      "{\"type\":\"slice\",\"bytes\":64,\"delay_ms\":1,"
                      "\"direction\":\"downstream\"}]}",
                      &v),
                 200);
    cr_expect_eq(json_array_size(cm_json_path(v, "faults")), 3);
    cr_expect_str_eq(cm_json_str(v, "faults.0.socket", ""), "hang", "shown in the current form");
    cr_expect_str_eq(cm_json_str(v, "faults.0.hang_max", ""), "2s");
    cr_expect_eq(json_array_size(cm_json_path(v, "deprecated")), 2, "one note per old fault");
    cr_expect_str_eq(cm_json_str(v, "deprecated.0", ""),
                     "faults[0]: the {\"type\":...} form with integer milliseconds is deprecated "
                     "and goes in the next release; write {\"socket\":\"hang\",\"hang_max\":"
                     "\"2s\"}");
    cr_expect_str_eq(cm_json_str(v, "deprecated.1", ""),
                     "faults[2]: the {\"type\":...} form with integer milliseconds is deprecated "
                     "and goes in the next release; write {\"slice\":64,\"interval\":\"1ms\","
                     "\"direction\":\"downstream\"}");
    json_decref(v);
    cr_assert_eq(call("GET", "/links/calcom", NULL, &v), 200);
    cr_expect_null(cm_json_path(v, "deprecated"), "the note is the PUT's answer only");
    cr_expect_str_eq(cm_json_str(v, "faults.2.interval", ""), "1ms");
    json_decref(v);
}

Test(control, body_too_large)
{
    size_t n = CH_CONTROL_BODY_LIMIT + 10;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    memcpy(big, "{\"faults\":[]", 12);
    big[n - 1] = '}';
    big[n] = '\0';
    expect_problem("PUT", "/links/calcom/faults", big, 413, NULL);
    /* Just under the limit is fine. */
    big[CH_CONTROL_BODY_LIMIT - 1] = '}';
    big[CH_CONTROL_BODY_LIMIT] = '\0';
    cr_expect_eq(call("PUT", "/links/calcom/faults", big, NULL), 200);
    free(big);
}

Test(control, journal)
{
    cr_assert_eq(call("PUT", "/links/calcom/faults", "{\"faults\":[{\"down\":true}]}", NULL), 200);
    json_t *v = NULL;
    cr_assert_eq(call("GET", "/links/calcom", NULL, &v), 200);
    uint16_t port = (uint16_t)cm_json_int(v, "port", 0);
    json_decref(v);
    int fd = tu_connect(port);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(ch_journal_wait(jr, &(ch_journal_filter_t){.event = CH_EV_REFUSED}, 1, 5000), 1);

    cr_assert_eq(call("GET", "/journal?since=0&link=calcom", NULL, &v), 200);
    cr_expect_eq(cm_json_int(v, "count", -1), 1);
    cr_expect_eq(cm_json_int(v, "last_seq", -1), 1);
    cr_expect_eq(cm_json_int(v, "dropped", -1), 0);
    cr_expect_eq(cm_json_int(v, "entries.0.seq", -1), 1);
    cr_expect_str_eq(cm_json_str(v, "entries.0.link", ""), "calcom");
    cr_expect_eq(cm_json_int(v, "entries.0.conn", -1), 1);
    cr_expect_str_eq(cm_json_str(v, "entries.0.event", ""), "refused");
    cr_expect_str_eq(cm_json_str(v, "entries.0.fault", ""), "down");
    cr_expect(json_is_null(cm_json_path(v, "entries.0.direction")));
    cr_expect_gt(cm_json_int(v, "entries.0.at_ms", 0), 1600000000000LL);
    json_decref(v);
    cr_assert_eq(call("GET", "/journal?since=1", NULL, &v), 200);
    cr_expect_eq(cm_json_int(v, "count", -1), 0);
    cr_expect_eq(cm_json_int(v, "last_seq", -1), 1);
    json_decref(v);
    cr_assert_eq(call("GET", "/links/calcom", NULL, &v), 200);
    cr_expect_eq(cm_json_int(v, "stats.refused", -1), 1);
    cr_expect_eq(cm_json_int(v, "stats.connections", -1), 1);
    json_decref(v);

    expect_problem("GET", "/journal?since=abc", NULL, 400,
                   "since: must be an integer from 0 to 9223372036854775807, not \"abc\"");
    expect_problem("GET", "/journal?since=-1", NULL, 400, NULL);
    expect_problem("GET", "/journal?link=nope", NULL, 404, "link: no link named \"nope\"");
    expect_problem("GET", "/journal?event=boom", NULL, 400,
                   "event: must be one of open, close, reset, refused, fault, upstream_error");
    cr_expect_eq(call("GET", "/journal?event=refused&limit=5", NULL, NULL), 200);
    cr_expect_eq(call("GET", "/health", NULL, NULL), 200);
}

/* ---- HTTP through a link ------------------------------------------------------------ */

static int bookings;

static void h_book(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    __atomic_add_fetch(&bookings, 1, __ATOMIC_SEQ_CST);
    cm_http_resp_json(resp, 201, json_pack("{s:s}", "id", "bk_1"));
}

/* POSTs to 127.0.0.1:port/v2/bookings on a fresh connection within timeout_ms; returns the
 * client's result, with its transport error in err (CM_ERR_LEN, may be NULL). */
static cm_err_t book_within(uint16_t port, long timeout_ms, long *status, double *ms, char *err)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v2/bookings", port);
    cm_http_client_t *c = cm_http_client_new();
    cm_http_response_t r;
    cm_err_t rc = cm_http_client_do(
        c,
        &(cm_http_request_t){
            .method = "POST", .url = url, .body = "{}", .body_len = 2, .timeout_ms = timeout_ms},
        &r);
    *status = r.status;
    *ms = r.total_ms;
    if (err)
        snprintf(err, CM_ERR_LEN, "%s", r.err);
    cm_http_response_free(&r);
    cm_http_client_free(&c);
    return rc;
}

static cm_err_t book(uint16_t port, long *status, double *ms)
{
    return book_within(port, 5000, status, ms, NULL);
}

static int link_idle(void *arg)
{
    return ch_link_stats(arg).active == 0;
}

/* Starts an HTTP server that books (h_book) and adds the link "api" in front of it; returns
 * the link's port. */
static uint16_t api_behind_a_link(cm_http_server_t **api)
{
    char err[CM_ERR_LEN] = "", body[160];
    *api = cm_http_server_new(&(cm_http_server_cfg_t){.threads = 0, .name = "test.api"});
    cr_assert_eq(cm_http_server_route(*api, "POST /v2/bookings", h_book, NULL), CM_OK);
    cr_assert_eq(cm_http_server_start(*api, err), CM_OK, "%s", err);
    snprintf(body, sizeof body, "{\"name\":\"api\",\"upstream\":\"127.0.0.1:%u\"}",
             cm_http_server_port(*api));
    json_t *v = NULL;
    cr_assert_eq(call("POST", "/links", body, &v), 201);
    uint16_t port = (uint16_t)cm_json_int(v, "port", 0);
    json_decref(v);
    return port;
}

Test(control, http_through_a_link)
{
    cm_http_server_t *api = NULL;
    uint16_t port = api_behind_a_link(&api);
    json_t *v = NULL;

    long status;
    double ms;
    cr_assert_eq(book(port, &status, &ms), CM_OK);
    cr_expect_eq(status, 201);
    cr_expect_eq(__atomic_load_n(&bookings, __ATOMIC_SEQ_CST), 1);
    /* Each list is drawn by the connections open when it is set: let the last one end so
     * the counts below are exact. */
    ch_link_t *api_link = ch_links_find(ls, "api");
    cr_assert(tu_wait_until(link_idle, api_link, 5000));

    /* The upstream does the work, the answer is lost: the case exactly-once must survive. */
    cr_assert_eq(call("PUT", "/links/api/faults",
                      "{\"faults\":[{\"socket\":\"reset\",\"direction\":\"downstream\"}]}", NULL),
                 200);
    cr_expect_neq(book(port, &status, &ms), CM_OK, "the client must see a transport error");
    cr_expect_eq(status, 0);
    cr_expect_eq(__atomic_load_n(&bookings, __ATOMIC_SEQ_CST), 2);
    cr_assert(tu_wait_until(link_idle, api_link, 5000));

    cr_assert_eq(call("PUT", "/links/api/faults",
                      "{\"faults\":[{\"latency\":\"300ms\",\"direction\":\"downstream\"}]}", NULL),
                 200);
    cr_assert_eq(book(port, &status, &ms), CM_OK);
    cr_expect_eq(status, 201);
    cr_expect(ms >= 290 && ms < 3000, "answer after %.0f ms", ms);

    cr_assert_eq(call("GET", "/links/api", NULL, &v), 200);
    cr_expect_eq(cm_json_int(v, "stats.connections", -1), 3);
    cr_expect_eq(cm_json_int(v, "stats.resets", -1), 1);
    cr_expect_eq(cm_json_int(v, "stats.faults_applied", -1), 2);
    json_decref(v);
    cm_http_server_free(&api);
}

/* The socket faults a link shares with the simulators' rules look the same to a libcurl
 * client as the rules' do (docs/interfaces.md, "What a libcurl client sees"), and a link
 * that is down looks like nothing listening. */
Test(control, a_libcurl_client_sees_what_a_rule_of_the_same_name_gives)
{
    char err[CM_ERR_LEN] = "";
    cm_http_server_t *api = NULL;
    uint16_t port = api_behind_a_link(&api);
    ch_link_t *api_link = ch_links_find(ls, "api");
    static const struct {
        const char *fault;
        long timeout_ms;
        cm_err_t rc, rc_or; /* rc_or: another result timing may give, CM_OK: none */
        const char *err;    /* in the client's message, NULL: not checked */
        int reaches;        /* the request reaches the upstream */
    } cases[] = {
        /* a rule's reset: CURLE_RECV_ERROR, connection reset by peer */
        {"{\"socket\":\"reset\"}", 5000, CM_EHTTP, CM_OK, "Failure when receiving data", 0},
        {"{\"socket\":\"reset\",\"direction\":\"downstream\"}", 5000, CM_EHTTP, CM_OK,
         "Failure when receiving data", 1},
        /* a rule's hang: the client's own timeout; after hang_max, FIN without a byte */
        {"{\"socket\":\"hang\"}", 300, CM_ETIMEOUT, CM_OK, NULL, 0},
        {"{\"socket\":\"hang\",\"hang_max\":\"200ms\"}", 5000, CM_EHTTP, CM_OK,
         "Server returned nothing", 0},
        {"{\"socket\":\"hang\",\"hang_max\":\"200ms\",\"direction\":\"downstream\"}", 5000,
         CM_EHTTP, CM_OK, "Server returned nothing", 1},
        /* no rule has it: reset at accept, which the client takes for a refused connect, or
         * for a reset when it had sent its request before the RST came */
        {"{\"down\":true}", 5000, CM_ECONNECT, CM_EHTTP, NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char put[256];
        snprintf(put, sizeof put, "{\"faults\":[%s]}", cases[i].fault);
        cr_assert_eq(call("PUT", "/links/api/faults", put, NULL), 200, "%s", put);
        int before = __atomic_load_n(&bookings, __ATOMIC_SEQ_CST);
        long status;
        double ms;
        cm_err_t rc = book_within(port, cases[i].timeout_ms, &status, &ms, err);
        cr_expect(rc == cases[i].rc || (cases[i].rc_or && rc == cases[i].rc_or), "%s: %s (%s)",
                  cases[i].fault, cm_strerror(rc), err);
        cr_expect(!cases[i].err || strstr(err, cases[i].err), "%s: %s", cases[i].fault, err);
        cr_expect_eq(status, 0, "%s: no answer", cases[i].fault);
        /* Clearing the list releases a hung connection; once it is gone, the upstream has
         * seen the request or never will. */
        ch_link_set_faults(api_link, NULL);
        cr_assert(tu_wait_until(link_idle, api_link, 5000));
        cr_expect_eq(__atomic_load_n(&bookings, __ATOMIC_SEQ_CST) - before, cases[i].reaches,
                     "%s: did the request reach the upstream?", cases[i].fault);
    }
    cm_http_server_free(&api);
}

/* ---- every number of every route, at its extremes ---------------------------------------- */

/* The body a number is set in: the other fields its check needs. (route, field) first, then
 * (route, NULL). An entry of ch_control_numbers without a base here fails the test, so a new
 * number is seen untested rather than passed over. */
static const struct {
    const char *route, *field, *body;
} number_bases[] = {
    {"POST /links", NULL, "{\"name\":\"edge\",\"upstream\":\"127.0.0.1:9\"}"},
    {"GET /journal", NULL, NULL},
    {"PUT /links/{name}/faults", "faults.0.bandwidth", "{\"faults\":[{\"bandwidth\":1}]}"},
    {"PUT /links/{name}/faults", "faults.0.slice", "{\"faults\":[{\"slice\":1}]}"},
    {"PUT /links/{name}/faults", "faults.0.after_bytes",
     "{\"faults\":[{\"socket\":\"reset\",\"after_bytes\":0}]}"},
    {"PUT /links/{name}/faults", "faults.0.probability",
     "{\"faults\":[{\"latency\":\"1ms\",\"probability\":1}]}"},
    {"PUT /links/{name}/faults", "faults.0.ms", "{\"faults\":[{\"type\":\"latency\",\"ms\":0}]}"},
    {"PUT /links/{name}/faults", "faults.0.jitter_ms",
     "{\"faults\":[{\"type\":\"latency\",\"ms\":1,\"jitter_ms\":0}]}"},
    {"PUT /links/{name}/faults", "faults.0.bytes_per_s",
     "{\"faults\":[{\"type\":\"bandwidth\",\"bytes_per_s\":1}]}"},
    {"PUT /links/{name}/faults", "faults.0.bytes",
     "{\"faults\":[{\"type\":\"slice\",\"bytes\":1}]}"},
    {"PUT /links/{name}/faults", "faults.0.delay_ms",
     "{\"faults\":[{\"type\":\"slice\",\"bytes\":1,\"delay_ms\":0}]}"},
};

static const char *number_base(const ch_control_number_t *n, int *found)
{
    *found = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < sizeof number_bases / sizeof number_bases[0]; i++)
            if (!strcmp(number_bases[i].route, n->route) &&
                (pass ? !number_bases[i].field
                      : number_bases[i].field && !strcmp(number_bases[i].field, n->field))) {
                *found = 1;
                return number_bases[i].body;
            }
    return NULL;
}

/* start with the JSON text value at the dotted path (which must be there); a new text. The
 * value goes in as text, so numbers jansson cannot hold are sent as written. */
static char *body_with(const char *start, const char *path, const char *value)
{
    json_t *root = json_loads(start, 0, NULL), *cur = root;
    char seg[64];
    cr_assert_not_null(root, "base %s", start);
    for (const char *p = path;;) {
        size_t n = strcspn(p, ".");
        snprintf(seg, sizeof seg, "%.*s", (int)n, p);
        json_t *mark = json_string("@@"); /* where the value goes */
        if (p[n] == '\0') {
            if (json_is_array(cur))
                json_array_set_new(cur, strtoul(seg, NULL, 10), mark);
            else
                json_object_set_new(cur, seg, mark);
            break;
        }
        json_decref(mark);
        cur = json_is_array(cur) ? json_array_get(cur, strtoul(seg, NULL, 10))
                                 : json_object_get(cur, seg);
        cr_assert_not_null(cur, "%s: no %s in %s", path, seg, start);
        p += n + 1;
    }
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    char *at = strstr(text, "\"@@\"");
    char *body = malloc(strlen(text) + strlen(value) + 1);
    sprintf(body, "%.*s%s%s", (int)(at - text), text, value, at + 4);
    free(text);
    return body;
}

static long send_number(const ch_control_number_t *n, const char *value, json_t **out)
{
    int found;
    const char *start = number_base(n, &found);
    char method[8], pattern[200], path[256];
    cr_assert(found, "%s %s has no base body in number_bases: add one", n->route, n->field);
    sscanf(n->route, "%7s %199s", method, pattern);
    const char *name = strstr(pattern, "{name}"); /* the link setup made */
    if (name)
        snprintf(path, sizeof path, "%.*scalcom%s", (int)(name - pattern), pattern, name + 6);
    else
        snprintf(path, sizeof path, "%s", pattern);
    if (n->in == CH_NUM_QUERY) {
        char enc[128] = "";
        for (const char *v = value; *v; v++) {
            char c[4];
            snprintf(c, sizeof c,
                     (*v >= '0' && *v <= '9') || (*v >= 'a' && *v <= 'z') || *v == '-' ? "%c"
                                                                                       : "%%%02X",
                     (unsigned char)*v);
            strncat(enc, c, sizeof enc - strlen(enc) - 1);
        }
        size_t len = strlen(path);
        snprintf(path + len, sizeof path - len, "?%s=%s", n->field, enc);
    }
    char *body = n->in == CH_NUM_BODY ? body_with(start, n->field, value) : NULL;
    long st = call(method, path, body, out);
    free(body);
    return st;
}

static void assert_number_refused(const ch_control_number_t *n, const char *value)
{
    json_t *v = NULL;
    const char *dot = strrchr(n->field, '.');
    const char *name = dot ? dot + 1 : n->field;
    long st = send_number(n, value, &v);
    const char *detail = cm_json_str(v, "detail", "");
    cr_assert_eq(st, 400, "%s %s=%s answered %ld (%s)", n->route, n->field, value, st, detail);
    /* Numbers jansson cannot hold are refused with the whole body, at their column. */
    cr_assert(strstr(detail, name) || strstr(detail, "invalid JSON"),
              "%s %s=%s: detail '%s' does not name %s", n->route, n->field, value, detail, name);
    json_decref(v);
}

static void assert_number_taken(const ch_control_number_t *n, const char *value)
{
    json_t *v = NULL;
    long st = send_number(n, value, &v);
    cr_assert(st != 400 && st < 500, "%s %s=%s refused (%ld): %s", n->route, n->field, value, st,
              cm_json_str(v, "detail", ""));
    json_decref(v);
}

Test(control, every_number_refuses_extremes_and_takes_its_range)
{
    char text[64];
    int refused = 0;
    cm_log_set_level("error"); /* deprecated faults taken would each warn */
    cr_assert_gt(ch_control_nnumbers, 10);
    for (size_t i = 0; i < ch_control_nnumbers; i++) {
        const ch_control_number_t *n = &ch_control_numbers[i];
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
        if (n->max < INT32_MAX) { /* a cast to 32 bits would bring it back into the range */
            snprintf(text, sizeof text, "%lld", (long long)n->min + 4294967296LL);
            assert_number_refused(n, text), refused++;
        }
        static const char *const beyond[] = {"9223372036854775808", "-9223372036854775809",
                                             "18446744073709551616", "1e400", "-1e400"};
        for (size_t k = 0; k < sizeof beyond / sizeof beyond[0]; k++)
            assert_number_refused(n, beyond[k]), refused++;
        if (n->in == CH_NUM_BODY) {
            static const char *const bad[] = {"1e300",        "-1e300", "\"NaN\"",
                                              "\"Infinity\"", "\"12\"", "true",
                                              "null",         "[1]",    "{}"};
            for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
                assert_number_refused(n, bad[k]), refused++;
            if (n->real) {
                snprintf(text, sizeof text, "%g", (double)n->min - 0.5);
                assert_number_refused(n, text), refused++;
                snprintf(text, sizeof text, "%g", (double)n->max + 0.5);
                assert_number_refused(n, text), refused++;
            } else {
                assert_number_refused(n, "1.5"), refused++;
                assert_number_refused(n, "0.0"), refused++;
            }
        } else {
            static const char *const bad[] = {"1.5", "1e3", "NaN", "inf", "0x10",
                                              " 1",  "+1",  "1 ",  "",    "-0"};
            for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
                assert_number_refused(n, bad[k]), refused++;
        }
        snprintf(text, sizeof text, "%lld", (long long)n->min);
        assert_number_taken(n, text);
        snprintf(text, sizeof text, "%lld", (long long)n->max);
        assert_number_taken(n, text);
        if (n->real)
            assert_number_taken(n, "0.5");
        cr_assert_eq(call("POST", "/reset", NULL, NULL), 200);
    }
    cr_log_info("%d extreme values refused", refused);
}
