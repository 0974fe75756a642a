/* test_cm_http.c - the HTTP server and client over real loopback sockets. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_http_client.h"
#include "cm_http_server.h"

static cm_http_server_t *srv;
static cm_http_client_t *cli;
static char base[64];

static void h_echo(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    json_t *v = json_pack("{s:s?,s:s,s:s%,s:s?,s:s?}", "id", cm_http_req_param(req, "id"), "method",
                          req->method, "body", req->body, req->body_len, "q",
                          cm_http_req_query(req, "q"), "h", cm_http_req_header(req, "x-test"));
    cm_http_resp_json(resp, 200, v);
    (void)cm_http_resp_header(resp, "X-Served-By", (const char *)ud);
}

static void h_slow(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    /* The fault under test is a slow server, so this sleep is the behaviour, not a wait. */
    cm_clock_sleep_ms(400);
    cm_http_resp_text(resp, 200, "text/plain", "late");
}

static void h_reset(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    resp->action = CM_HTTP_DROP_RESET;
}

/* Counts the POSTs it receives and resets each one's connection without answering. */
static int reset_posts;
static void h_reset_post(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    __atomic_add_fetch(&reset_posts, 1, __ATOMIC_SEQ_CST);
    resp->action = CM_HTTP_DROP_RESET;
}

static void *finish_later(void *arg)
{
    cm_http_deferred_t *d = arg;
    cm_http_resp_text(cm_http_deferred_resp(d), 202, "text/plain", "finished elsewhere");
    cm_http_deferred_finish(d);
    return NULL;
}

static void h_deferred(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    pthread_t t;
    cm_http_deferred_t *d = cm_http_resp_defer(resp);
    pthread_create(&t, NULL, finish_later, d);
    pthread_detach(t);
}

#define LATE_MS 150

/* What the after hook saw, per path. */
typedef struct {
    char path[64];
    int calls;
    int status;
    int64_t elapsed_ns; /* from the request's arrival to the hook */
    pthread_t thread;
    char id[16]; /* the route's {id} param */
} seen_t;

static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static seen_t seen[8];
static pthread_t late_finisher; /* the thread that finished the late answer */

static void after(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    pthread_mutex_lock(&seen_mu);
    for (size_t i = 0; i < sizeof seen / sizeof seen[0]; i++) {
        seen_t *e = &seen[i];
        if (e->path[0] && strcmp(e->path, req->path) != 0)
            continue;
        const char *id = cm_http_req_param(req, "id");
        snprintf(e->path, sizeof e->path, "%s", req->path);
        e->calls++;
        e->status = resp->status;
        e->elapsed_ns = cm_clock_mono_ns() - req->received_mono_ns;
        e->thread = pthread_self();
        snprintf(e->id, sizeof e->id, "%s", id ? id : "");
        break;
    }
    pthread_mutex_unlock(&seen_mu);
}

/* A copy of what the hook saw for path (calls 0 when nothing). */
static seen_t seen_for(const char *path)
{
    seen_t out = {.calls = 0};
    pthread_mutex_lock(&seen_mu);
    for (size_t i = 0; i < sizeof seen / sizeof seen[0]; i++)
        if (!strcmp(seen[i].path, path))
            out = seen[i];
    pthread_mutex_unlock(&seen_mu);
    return out;
}

static void *finish_late(void *arg)
{
    cm_http_deferred_t *d = arg;
    /* The answer is late on purpose (it stands for a slow commit): this sleep is the
     * behaviour under test, not a wait for something. */
    cm_clock_sleep_ms(LATE_MS);
    pthread_mutex_lock(&seen_mu);
    late_finisher = pthread_self();
    pthread_mutex_unlock(&seen_mu);
    cm_http_resp_text(cm_http_deferred_resp(d), 201, "text/plain", "late");
    cm_http_deferred_finish(d);
    return NULL;
}

static void h_deferred_late(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    pthread_t t;
    cm_http_deferred_t *d = cm_http_resp_defer(resp);
    pthread_create(&t, NULL, finish_late, d);
    pthread_detach(t);
}

/* Deferred and finished before the handler returns, as an intake that fails at once. */
static void h_deferred_now(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    cm_http_deferred_t *d = cm_http_resp_defer(resp);
    cm_http_resp_problem(cm_http_deferred_resp(d), 503, "Service Unavailable", "at once");
    cm_http_deferred_finish(d);
}

static int filter(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    if (strcmp(req->path, "/filtered") != 0)
        return 0;
    cm_http_resp_problem(resp, 503, "Service Unavailable", "filtered");
    return 1;
}

static void setup(void)
{
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(cm_http_global_init(), CM_OK);
    cm_http_server_cfg_t cfg = {.threads = 2, .body_limit = 1024, .name = "test"};
    srv = cm_http_server_new(&cfg);
    cr_assert_not_null(srv);
    cr_assert_eq(cm_http_server_route(srv, "POST /items/{id}", h_echo, "t1"), CM_OK);
    cr_assert_eq(cm_http_server_route(srv, "GET /items/{id}", h_echo, "t1"), CM_OK);
    cr_assert_eq(cm_http_server_route(srv, "GET /slow", h_slow, NULL), CM_OK);
    cr_assert_eq(cm_http_server_route(srv, "GET /reset", h_reset, NULL), CM_OK);
    cr_assert_eq(cm_http_server_route(srv, "POST /reset", h_reset_post, NULL), CM_OK);
    cr_assert_eq(cm_http_server_route(srv, "POST /deferred", h_deferred, NULL), CM_OK);
    cr_assert_eq(cm_http_server_route(srv, "GET /static/*", h_echo, "rest"), CM_OK);
    cr_assert_eq(cm_http_server_route(srv, "POST /late/{id}", h_deferred_late, NULL), CM_OK);
    cr_assert_eq(cm_http_server_route(srv, "POST /now/{id}", h_deferred_now, NULL), CM_OK);
    cm_http_server_set_filter(srv, filter, NULL);
    cm_http_server_set_after(srv, after, NULL);
    cr_assert_eq(cm_http_server_start(srv, err), CM_OK, "%s", err);
    cr_assert_gt(cm_http_server_port(srv), 0);
    snprintf(base, sizeof base, "http://127.0.0.1:%u", cm_http_server_port(srv));
    cli = cm_http_client_new();
    cr_assert_not_null(cli);
}

static void teardown(void)
{
    cm_http_client_free(&cli);
    cm_http_server_free(&srv);
    cr_assert_null(srv);
}

static cm_err_t call(const char *method, const char *path, const char *body, long timeout_ms,
                     cm_http_response_t *r)
{
    char url[256];
    static const char *const hdrs[] = {"X-Test: yes", "Content-Type: application/json", NULL};
    snprintf(url, sizeof url, "%s%s", base, path);
    cm_http_request_t req = {.method = method,
                             .url = url,
                             .headers = hdrs,
                             .body = body,
                             .body_len = body ? strlen(body) : 0,
                             .timeout_ms = timeout_ms};
    return cm_http_client_do(cli, &req, r);
}

TestSuite(http, .init = setup, .fini = teardown);

Test(http, routes_params_query_headers_and_body)
{
    cm_http_response_t r;
    char hv[64];
    cr_assert_eq(call("POST", "/items/42?q=hello", "{\"a\":1}", 0, &r), CM_OK, "%s", r.err);
    cr_assert_eq(r.status, 200);
    json_t *v = json_loads(r.body.data, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(v, "id")), "42");
    cr_assert_str_eq(json_string_value(json_object_get(v, "body")), "{\"a\":1}");
    cr_assert_str_eq(json_string_value(json_object_get(v, "q")), "hello");
    cr_assert_str_eq(json_string_value(json_object_get(v, "h")), "yes");
    cr_assert_str_eq(cm_http_response_header(&r, "x-served-by", hv, sizeof hv), "t1");
    json_decref(v);
    cm_http_response_free(&r);
}

Test(http, not_found_method_not_allowed_and_rest_match)
{
    cm_http_response_t r;
    cr_assert_eq(call("GET", "/nope", NULL, 0, &r), CM_OK);
    cr_assert_eq(r.status, 404);
    char ct[64];
    cr_assert_str_eq(cm_http_response_header(&r, "Content-Type", ct, sizeof ct),
                     "application/problem+json");
    cm_http_response_free(&r);
    cr_assert_eq(call("DELETE", "/items/1", NULL, 0, &r), CM_OK);
    cr_assert_eq(r.status, 405);
    cm_http_response_free(&r);
    cr_assert_eq(call("GET", "/static/a/b/c", NULL, 0, &r), CM_OK);
    cr_assert_eq(r.status, 200);
    cm_http_response_free(&r);
    cr_assert_eq(call("GET", "/items/1/extra", NULL, 0, &r), CM_OK);
    cr_assert_eq(r.status, 404, "a pattern without a star must not match a longer path");
    cm_http_response_free(&r);
    cr_assert_eq(call("POST", "/items/4%012", "{}", 0, &r), CM_OK);
    cr_assert_eq(r.status, 404, "a parameter with a control character matches no route");
    cm_http_response_free(&r);
}

Test(http, oversized_body_gets_413)
{
    char big[2048];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cm_http_response_t r;
    cr_assert_eq(call("POST", "/items/1", big, 0, &r), CM_OK, "%s", r.err);
    cr_assert_eq(r.status, 413);
    cm_http_response_free(&r);
}

Test(http, filter_answers_before_routing)
{
    cm_http_response_t r;
    cr_assert_eq(call("GET", "/filtered", NULL, 0, &r), CM_OK);
    cr_assert_eq(r.status, 503);
    cm_http_response_free(&r);
}

Test(http, client_total_timeout_fires)
{
    cm_http_response_t r;
    int64_t t0 = cm_clock_mono_ms();
    cr_assert_eq(call("GET", "/slow", NULL, 100, &r), CM_ETIMEOUT, "%s", r.err);
    int64_t took = cm_clock_mono_ms() - t0;
    cr_assert(took >= 90 && took < 390, "timeout after %lld ms", (long long)took);
    cm_http_response_free(&r);
}

Test(http, reset_is_a_transport_error)
{
    cm_http_response_t r;
    cr_assert_eq(call("GET", "/reset", NULL, 0, &r), CM_EHTTP, "status %ld", r.status);
    cr_assert_eq(r.status, 0);
    cm_http_response_free(&r);
}

/* A POST on a reused keep-alive connection that is reset before any answer byte: libcurl
 * takes the connection for one the server had closed and sends the POST again by itself,
 * which for a booking would be a second booking. fresh_connection keeps it to one. */
static int posts_through_a_reused_connection(int fresh)
{
    cm_http_response_t r;
    char url[128];
    cr_assert_eq(call("GET", "/items/warm", NULL, 0, &r), CM_OK); /* opens the connection */
    cm_http_response_free(&r);
    __atomic_store_n(&reset_posts, 0, __ATOMIC_SEQ_CST);
    snprintf(url, sizeof url, "%s/reset", base);
    cm_http_request_t req = {
        .method = "POST", .url = url, .body = "{}", .body_len = 2, .fresh_connection = fresh};
    cr_assert_eq(cm_http_client_do(cli, &req, &r), CM_EHTTP, "status %ld", r.status);
    cm_http_response_free(&r);
    return __atomic_load_n(&reset_posts, __ATOMIC_SEQ_CST);
}

Test(http, an_unsafe_request_on_a_fresh_connection_is_sent_once)
{
    cr_assert_eq(posts_through_a_reused_connection(1), 1);
    /* Why the flag exists: without it libcurl repeats the request. */
    cr_assert_eq(posts_through_a_reused_connection(0), 2);
}

Test(http, connection_refused_is_connect_error)
{
    cm_http_response_t r;
    cm_http_request_t req = {.method = "GET", .url = "http://127.0.0.1:1/"};
    cr_assert_eq(cm_http_client_do(cli, &req, &r), CM_ECONNECT, "%s", r.err);
    cm_http_response_free(&r);
}

Test(http, deferred_answer_from_another_thread_keeps_the_connection)
{
    for (int i = 0; i < 50; i++) {
        cm_http_response_t r;
        cr_assert_eq(call("POST", "/deferred", "{}", 2000, &r), CM_OK, "%s", r.err);
        cr_assert_eq(r.status, 202);
        cr_assert_str_eq(r.body.data, "finished elsewhere");
        cm_http_response_free(&r);
    }
}

Test(http, after_hook_sees_every_answer_once_deferred_or_not)
{
    cm_http_response_t r;
    cr_assert_eq(call("POST", "/late/d1", "{}", 2000, &r), CM_OK, "%s", r.err);
    cr_assert_eq(r.status, 201);
    cm_http_response_free(&r);
    cr_assert_eq(call("POST", "/now/d2", "{}", 2000, &r), CM_OK, "%s", r.err);
    cr_assert_eq(r.status, 503);
    cm_http_response_free(&r);
    cr_assert_eq(call("GET", "/items/7", NULL, 2000, &r), CM_OK, "%s", r.err);
    cr_assert_eq(r.status, 200);
    cm_http_response_free(&r);
    /* One more exchange on the same keep-alive connection: a late second call of the hook
     * for the requests above would have happened by now. */
    cr_assert_eq(call("GET", "/nope", NULL, 2000, &r), CM_OK, "%s", r.err);
    cr_assert_eq(r.status, 404);
    cm_http_response_free(&r);

    seen_t late = seen_for("/late/d1");
    cr_assert_eq(late.calls, 1, "deferred answer: hook called %d times", late.calls);
    cr_assert_eq(late.status, 201, "the final status, got %d", late.status);
    cr_assert_geq(late.elapsed_ns, (int64_t)LATE_MS * 1000000,
                  "the hook ran after the answer was finished: %lld ns after arrival",
                  (long long)late.elapsed_ns);
    cr_assert_str_eq(late.id, "d1", "params are valid in the hook");
    pthread_mutex_lock(&seen_mu);
    int same = pthread_equal(late.thread, late_finisher);
    pthread_mutex_unlock(&seen_mu);
    cr_assert_not(same, "the hook runs on a server thread, not the finishing one");

    seen_t now = seen_for("/now/d2");
    cr_assert_eq(now.calls, 1, "finished inside the handler: hook called %d times", now.calls);
    cr_assert_eq(now.status, 503);
    cr_assert_str_eq(now.id, "d2");

    seen_t items = seen_for("/items/7");
    cr_assert_eq(items.calls, 1, "immediate answer: hook called %d times", items.calls);
    cr_assert_eq(items.status, 200);
    cr_assert_str_eq(items.id, "7");
    seen_t nope = seen_for("/nope");
    cr_assert_eq(nope.calls, 1);
    cr_assert_eq(nope.status, 404);
}
