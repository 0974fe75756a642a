/* test_sim_journal.c - the journal's ring buffer, filters and paging, and the effects
 * ledger. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_json.h"
#include "sim_journal.h"

static void rec(sim_journal_t *j, sim_journal_kind_t kind, const char *provider, const char *method,
                const char *path, int status)
{
    sim_journal_rec_t r = {.kind = kind,
                           .provider = provider,
                           .method = method,
                           .path = path,
                           .body = "{}",
                           .body_len = 2,
                           .status = status,
                           .at_ms = 1000,
                           .duration_ms = 1.5,
                           .attempt = 1};
    sim_journal_add(j, &r);
}

Test(journal, ring_keeps_the_newest_and_counts_the_dropped)
{
    sim_journal_t *j = sim_journal_new(3);
    for (int i = 0; i < 5; i++)
        rec(j, SIM_JOURNAL_REQUEST, "calcom", "GET", "/v2/slots", 200 + i);
    sim_journal_filter_t f = {.kind = -1};
    json_t *v = sim_journal_query(j, &f);
    cr_assert_eq(cm_json_int(v, "count", -1), 3);
    cr_assert_eq(cm_json_int(v, "dropped", -1), 2);
    cr_assert_eq(cm_json_int(v, "entries.0.seq", -1), 3, "oldest kept first");
    cr_assert_eq(cm_json_int(v, "entries.2.status", -1), 204);
    cr_assert_str_eq(cm_json_str(v, "entries.0.body_sha256", ""),
                     "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    json_decref(v);
    sim_journal_free(&j);
    cr_assert_null(j);
}

static void *late_delivery(void *arg)
{
    cm_clock_sleep_ms(30); /* pacing: the record arrives while the test waits */
    rec(arg, SIM_JOURNAL_REQUEST, "stripe", "GET", "/v1/refunds", 200);
    rec(arg, SIM_JOURNAL_DELIVERY, "stripe", "POST", "http://127.0.0.1:9/webhooks/stripe", 200);
    return NULL;
}

Test(journal, wait_wakes_on_a_matching_record_and_gives_up_at_its_deadline)
{
    sim_journal_t *j = sim_journal_new(0);
    sim_journal_filter_t f = {.kind = SIM_JOURNAL_DELIVERY};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, late_delivery, j), 0);
    int64_t t0 = cm_clock_mono_ms();
    cr_assert_eq(sim_journal_wait(j, &f, 1, 5000), 1, "a request does not count, a delivery does");
    cr_assert_lt(cm_clock_mono_ms() - t0, 4000, "woken by the record, not by the deadline");
    pthread_join(t, NULL);
    t0 = cm_clock_mono_ms();
    cr_assert_eq(sim_journal_wait(j, &f, 2, 40), 1, "answers how many there are");
    cr_assert_geq(cm_clock_mono_ms() - t0, 40, "and only after the deadline");
    sim_journal_free(&j);
}

Test(journal, filters_and_paging)
{
    sim_journal_t *j = sim_journal_new(0);
    rec(j, SIM_JOURNAL_REQUEST, "calcom", "POST", "/v2/bookings", 201);
    rec(j, SIM_JOURNAL_REQUEST, "calcom", "GET", "/v2/bookings/abc", 200);
    rec(j, SIM_JOURNAL_REQUEST, "stripe", "POST", "/v1/payment_intents", 200);
    rec(j, SIM_JOURNAL_DELIVERY, "retell", "POST", "http://127.0.0.1:9/webhooks/retell", 204);
    sim_journal_filter_t f = {.provider = "calcom", .kind = -1};
    json_t *v = sim_journal_query(j, &f);
    cr_assert_eq(cm_json_int(v, "count", -1), 2);
    json_decref(v);
    f = (sim_journal_filter_t){.route = "GET /v2/bookings/{uid}", .kind = -1};
    v = sim_journal_query(j, &f);
    cr_assert_eq(cm_json_int(v, "count", -1), 1);
    json_decref(v);
    f = (sim_journal_filter_t){.route = "POST /webhooks/retell", .kind = SIM_JOURNAL_DELIVERY};
    v = sim_journal_query(j, &f);
    cr_assert_eq(cm_json_int(v, "count", -1), 1, "deliveries match on their URL's path");
    cr_assert_str_eq(cm_json_str(v, "entries.0.kind", ""), "delivery");
    json_decref(v);
    f = (sim_journal_filter_t){.kind = -1, .since = 2, .limit = 1};
    v = sim_journal_query(j, &f);
    cr_assert_eq(cm_json_int(v, "count", -1), 1);
    cr_assert_eq(cm_json_int(v, "entries.0.seq", -1), 3);
    cr_assert_eq(cm_json_int(v, "last_seq", -1), 4);
    json_decref(v);
    sim_journal_clear(j);
    rec(j, SIM_JOURNAL_REQUEST, "calcom", "GET", "/x", 200);
    f = (sim_journal_filter_t){.kind = -1};
    v = sim_journal_query(j, &f);
    cr_assert_eq(cm_json_int(v, "count", -1), 1);
    cr_assert_eq(cm_json_int(v, "entries.0.seq", -1), 5, "sequence numbers survive a clear");
    json_decref(v);
    sim_journal_free(&j);
}

Test(journal, effects_ledger)
{
    sim_journal_t *j = sim_journal_new(0);
    json_t *d = json_pack("{s:i}", "amount", 500);
    sim_journal_effect(j, "stripe", "charge", "pi_1", "idem-1", "req_1", d);
    sim_journal_effect(j, "calcom", "booking", "uid1", NULL, "req_2", NULL);
    sim_journal_effect(j, "stripe", "refund", "re_1", NULL, NULL, NULL);
    json_decref(d);
    json_t *v = sim_journal_effects(j, "stripe", "charge");
    cr_assert_eq(cm_json_int(v, "count", -1), 1);
    cr_assert_str_eq(cm_json_str(v, "effects.0.idempotency_key", ""), "idem-1");
    cr_assert_eq(cm_json_int(v, "effects.0.amount", -1), 500);
    json_decref(v);
    v = sim_journal_effects(j, NULL, NULL);
    cr_assert_eq(cm_json_int(v, "count", -1), 3);
    json_decref(v);
    sim_journal_free(&j);
}

/* A hung request is journalled when it ends, after the retry that followed it: by_start
 * orders records as they arrived (ties by seq), and the limit applies after ordering. */
Test(journal, by_start_orders_as_requests_arrived)
{
    sim_journal_t *j = sim_journal_new(0);
    const int64_t started[] = {2000, 1300, 1000, 1300}; /* journalled in this order */
    for (int i = 0; i < 4; i++)
        sim_journal_add(j, &(sim_journal_rec_t){.kind = SIM_JOURNAL_REQUEST,
                                                .provider = "calcom",
                                                .method = "GET",
                                                .path = "/v2/slots",
                                                .status = 200 + i,
                                                .at_ms = started[i]});
    sim_journal_filter_t f = {.kind = -1};
    json_t *v = sim_journal_query(j, &f);
    cr_assert_eq(cm_json_int(v, "entries.0.status", -1), 200, "journalled order by default");
    json_decref(v);
    f.by_start = 1;
    v = sim_journal_query(j, &f);
    cr_assert_eq(cm_json_int(v, "count", -1), 4);
    const int want[] = {202, 201, 203, 200};
    for (int i = 0; i < 4; i++) {
        char path[32];
        snprintf(path, sizeof path, "entries.%d.status", i);
        cr_expect_eq(cm_json_int(v, path, -1), want[i], "%s", path);
    }
    json_decref(v);
    f.limit = 1;
    v = sim_journal_query(j, &f);
    cr_expect_eq(cm_json_int(v, "count", -1), 1);
    cr_expect_eq(cm_json_int(v, "entries.0.status", -1), 202, "the earliest, not the first kept");
    json_decref(v);
    sim_journal_free(&j);
}
