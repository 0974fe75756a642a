/* test_sim_delivery.c - delivery reports: the attempt and delivery JSON, and the log's
 * states, waits and bounded history. Sending is covered through the providers' tests. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cm_json.h"
#include "sim_delivery.h"

static sim_delivery_log_t *lg;
static json_t *event;

static void setup(void)
{
    lg = sim_delivery_log_new("dlv_test");
    event = json_pack("{s:s,s:s}", "id", "evt_1", "type", "payment_intent.succeeded");
    cr_assert_not_null(lg);
}

static void teardown(void)
{
    sim_delivery_log_free(&lg);
    json_decref(event);
}

TestSuite(delivery, .init = setup, .fini = teardown);

static sim_attempt_t answered(long status, char *url)
{
    sim_attempt_t a = {.status = status, .ms = 1.5, .url = url};
    snprintf(a.sig, sizeof a.sig, "t=1,v1=ab");
    return a;
}

Test(delivery, attempt_and_item_json)
{
    sim_attempt_t a = answered(204, "http://h/x");
    json_t *v = sim_delivery_attempt_json(&a);
    cr_assert_eq(cm_json_int(v, "status", 0), 204);
    cr_assert(json_is_null(cm_json_path(v, "error")));
    cr_assert_str_eq(cm_json_str(v, "url", ""), "http://h/x");
    cr_assert_str_eq(cm_json_str(v, "signature", ""), "t=1,v1=ab");
    json_decref(v);

    sim_attempt_t unsent = {.status = 0};
    snprintf(unsent.err, sizeof unsent.err, "not sent: reset");
    v = sim_delivery_attempt_json(&unsent);
    cr_assert(json_is_null(cm_json_path(v, "status")));
    cr_assert(json_is_null(cm_json_path(v, "url")));
    cr_assert(json_is_null(cm_json_path(v, "signature")));
    cr_assert_str_eq(cm_json_str(v, "error", ""), "not sent: reset");
    json_decref(v);

    json_t *att = json_array();
    json_array_append_new(att, sim_delivery_attempt_json(&unsent));
    json_array_append_new(att, sim_delivery_attempt_json(&a));
    v = sim_delivery_item(att);
    cr_assert_eq(cm_json_int(v, "status", 0), 204, "the last attempt's");
    cr_assert(json_is_null(cm_json_path(v, "error")));
    cr_assert_eq(json_array_size(cm_json_path(v, "attempts")), 2);
    json_decref(v);
    v = sim_delivery_item(json_array());
    cr_assert(json_is_null(cm_json_path(v, "status")));
    cr_assert_str_eq(cm_json_str(v, "error", ""), "not sent (stopping)");
    json_decref(v);
}

Test(delivery, states_follow_the_attempts)
{
    sim_delivery_ref_t r0, r1;
    cr_assert_eq(sim_delivery_log_open(lg, event, "http://h/x", 2, &r0), CM_OK);
    cr_assert_str_eq(r0.id, "dlv_test_000001");
    const char *id = r0.id;
    r1 = r0;
    r1.copy = 1;
    json_t *v = sim_delivery_log_report(lg, id);
    cr_assert_str_eq(cm_json_str(v, "status", ""), "pending");
    cr_assert_str_eq(cm_json_str(v, "event.id", ""), "evt_1");
    cr_assert_str_eq(cm_json_str(v, "url", ""), "http://h/x");
    cr_assert_eq(json_array_size(cm_json_path(v, "deliveries")), 2);
    json_decref(v);

    sim_attempt_t fail = answered(500, "http://h/x"), ok = answered(204, "http://h/y");
    sim_delivery_log_attempt(lg, &r0, &fail, 1);
    sim_delivery_log_attempt(lg, &r1, &ok, 0);
    v = sim_delivery_log_wait_first(lg, &r0);
    cr_assert_str_eq(cm_json_str(v, "status", ""), "retrying");
    cr_assert_eq(cm_json_int(v, "deliveries.0.status", 0), 500);
    cr_assert_eq(cm_json_int(v, "deliveries.1.status", 0), 204);
    json_decref(v);
    sim_delivery_log_attempt(lg, &r0, &ok, 0);
    r1.copy = 7; /* no such copy: ignored */
    sim_delivery_log_attempt(lg, &r1, &ok, 0);
    v = sim_delivery_log_report(lg, id);
    cr_assert_str_eq(cm_json_str(v, "status", ""), "done");
    cr_assert_eq(json_array_size(cm_json_path(v, "deliveries.0.attempts")), 2);
    cr_assert_str_eq(cm_json_str(v, "deliveries.0.attempts.1.url", ""), "http://h/y");
    json_decref(v);
    cr_assert_null(sim_delivery_log_report(lg, "dlv_test_999999"));
}

typedef struct {
    sim_delivery_ref_t ref;
    json_t *report;
} waiter_t;

static void *wait_first(void *arg)
{
    waiter_t *w = arg;
    w->report = sim_delivery_log_wait_first(lg, &w->ref);
    return NULL;
}

Test(delivery, wait_first_returns_when_every_first_attempt_ended)
{
    waiter_t w = {0};
    cr_assert_eq(sim_delivery_log_open(lg, event, "http://h/x", 2, &w.ref), CM_OK);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, wait_first, &w), 0);
    sim_delivery_ref_t second = w.ref;
    second.copy = 1;
    sim_delivery_log_unsent(lg, &second, "not sent: the simulator was reset");
    sim_attempt_t ok = answered(200, "http://h/x");
    sim_delivery_log_attempt(lg, &w.ref, &ok, 0);
    pthread_join(t, NULL);
    cr_assert_str_eq(cm_json_str(w.report, "status", ""), "done");
    cr_assert_str_eq(cm_json_str(w.report, "deliveries.1.error", ""),
                     "not sent: the simulator was reset");
    cr_assert(json_is_null(cm_json_path(w.report, "deliveries.1.attempts.0.url")));
    json_decref(w.report);

    /* A stopped log releases a wait that no worker will end. */
    cr_assert_eq(sim_delivery_log_open(lg, event, "http://h/x", 1, &w.ref), CM_OK);
    cr_assert_eq(pthread_create(&t, NULL, wait_first, &w), 0);
    sim_delivery_log_stop(lg);
    pthread_join(t, NULL);
    cr_assert_str_eq(cm_json_str(w.report, "status", ""), "pending");
    json_decref(w.report);
}

Test(delivery, history_keeps_the_last_finished_and_every_open_report)
{
    sim_delivery_ref_t ref, open, first;
    sim_attempt_t ok = answered(200, "http://h/x");
    cr_assert_eq(sim_delivery_log_open(lg, event, "http://h/x", 1, &open), CM_OK);
    for (int i = 0; i < SIM_DELIVERY_HISTORY + 10; i++) {
        cr_assert_eq(sim_delivery_log_open(lg, event, "http://h/x", 1, &ref), CM_OK);
        sim_delivery_log_attempt(lg, &ref, &ok, 0);
        if (i == 0)
            first = ref;
    }
    json_t *v = sim_delivery_log_report(lg, open.id);
    cr_assert_not_null(v, "a report still waiting for its attempts is kept");
    json_decref(v);
    cr_assert_null(sim_delivery_log_report(lg, first.id), "the oldest finished one is gone");
    v = sim_delivery_log_report(lg, ref.id);
    cr_assert_not_null(v);
    json_decref(v);
}
