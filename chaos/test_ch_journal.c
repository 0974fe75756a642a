/* test_ch_journal.c - the journal ring: sequence numbers, filters, paging, dropping the
 * oldest, and the deadline wait. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "ch_fault.h"
#include "ch_journal.h"
#include "cm_clock.h"
#include "cm_json.h"

Test(journal, add_and_query)
{
    ch_journal_t *j = ch_journal_new(0);
    cr_assert_not_null(j);
    cr_expect_eq(ch_journal_add(j, "calcom", 1, CH_EV_OPEN, -1, 0, "from %s", "x"), 1);
    cr_expect_eq(
        ch_journal_add(j, "calcom", 1, CH_EV_FAULT, CH_FAULT_LATENCY, CH_DIR_DOWNSTREAM, "applies"),
        2);
    cr_expect_eq(ch_journal_add(j, "stripe", 2, CH_EV_REFUSED, CH_FAULT_DOWN, 0, "down"), 3);
    int64_t before = cm_clock_now_ms();

    json_t *v = ch_journal_query(j, &(ch_journal_filter_t){.event = -1});
    cr_assert_not_null(v);
    cr_expect_eq(cm_json_int(v, "count", -1), 3);
    cr_expect_eq(cm_json_int(v, "last_seq", -1), 3);
    cr_expect_eq(cm_json_int(v, "dropped", -1), 0);
    cr_expect_str_eq(cm_json_str(v, "entries.0.event", ""), "open");
    cr_expect_str_eq(cm_json_str(v, "entries.0.detail", ""), "from x");
    cr_expect(json_is_null(cm_json_path(v, "entries.0.fault")));
    cr_expect(json_is_null(cm_json_path(v, "entries.0.direction")));
    cr_expect_str_eq(cm_json_str(v, "entries.1.fault", ""), "latency");
    cr_expect_str_eq(cm_json_str(v, "entries.1.direction", ""), "downstream");
    cr_expect_eq(cm_json_int(v, "entries.1.conn", -1), 1);
    int64_t at = cm_json_int(v, "entries.2.at_ms", -1);
    cr_expect(at > 0 && at <= before, "at_ms %lld is epoch ms (now %lld)", (long long)at,
              (long long)before);
    json_decref(v);

    v = ch_journal_query(j, &(ch_journal_filter_t){.since = 1, .link = "calcom", .event = -1});
    cr_expect_eq(cm_json_int(v, "count", -1), 1);
    cr_expect_eq(cm_json_int(v, "entries.0.seq", -1), 2);
    cr_expect_eq(cm_json_int(v, "last_seq", -1), 3, "last_seq is the newest, for paging");
    json_decref(v);

    v = ch_journal_query(j, &(ch_journal_filter_t){.event = CH_EV_REFUSED});
    cr_expect_eq(cm_json_int(v, "count", -1), 1);
    cr_expect_str_eq(cm_json_str(v, "entries.0.link", ""), "stripe");
    json_decref(v);

    v = ch_journal_query(j, &(ch_journal_filter_t){.event = -1, .limit = 2});
    cr_expect_eq(cm_json_int(v, "count", -1), 2);
    cr_expect_eq(cm_json_int(v, "last_seq", -1), 2, "a cut answer pages from its last entry");
    json_decref(v);
    cr_expect_eq(ch_journal_count(j, &(ch_journal_filter_t){.conn = 1, .event = -1}), 2);
    ch_journal_free(&j);
    cr_expect_null(j);
}

Test(journal, ring_drops_oldest)
{
    ch_journal_t *j = ch_journal_new(4);
    for (int i = 1; i <= 10; i++)
        ch_journal_add(j, "l", (uint64_t)i, CH_EV_OPEN, -1, 0, "%d", i);
    json_t *v = ch_journal_query(j, &(ch_journal_filter_t){.event = -1});
    cr_expect_eq(cm_json_int(v, "count", -1), 4);
    cr_expect_eq(cm_json_int(v, "dropped", -1), 6);
    cr_expect_eq(cm_json_int(v, "entries.0.seq", -1), 7);
    cr_expect_eq(cm_json_int(v, "entries.3.seq", -1), 10);
    cr_expect_eq(cm_json_int(v, "last_seq", -1), 10);
    json_decref(v);
    ch_journal_free(&j);
}

Test(journal, upstream_field)
{
    ch_journal_t *j = ch_journal_new(0);
    ch_journal_add_up(j, "gw", 1, CH_EV_UPSTREAM_ERROR, -1, 0, "127.0.0.1:9001", "refused");
    ch_journal_add_up(j, "gw", 1, CH_EV_OPEN, -1, 0, "[::1]:9002", "from %s", "x");
    ch_journal_add(j, "gw", 1, CH_EV_FAULT, -1, 0, "no upstream");
    json_t *v = ch_journal_query(j, &(ch_journal_filter_t){.event = -1});
    cr_expect_str_eq(cm_json_str(v, "entries.0.upstream", ""), "127.0.0.1:9001");
    cr_expect_str_eq(cm_json_str(v, "entries.1.upstream", ""), "[::1]:9002");
    cr_expect_str_eq(cm_json_str(v, "entries.1.detail", ""), "from x");
    cr_expect(json_is_null(cm_json_path(v, "entries.2.upstream")), "null when there is none");
    json_decref(v);
    ch_journal_free(&j);
}

static void *add_later(void *arg)
{
    ch_journal_t *j = arg;
    cm_clock_sleep_ms(50); /* pacing: the entry must come after the wait has begun */
    ch_journal_add(j, "l", 9, CH_EV_CLOSE, -1, 0, "late");
    return NULL;
}

Test(journal, wait)
{
    ch_journal_t *j = ch_journal_new(0);
    ch_journal_filter_t f = {.event = CH_EV_CLOSE};
    int64_t t0 = cm_clock_mono_ms();
    cr_expect_eq(ch_journal_wait(j, &f, 1, 100), 0, "nothing comes: times out");
    cr_expect_geq(cm_clock_mono_ms() - t0, 90);
    pthread_t th;
    pthread_create(&th, NULL, add_later, j);
    cr_expect_eq(ch_journal_wait(j, &f, 1, 5000), 1);
    pthread_join(th, NULL);
    ch_journal_free(&j);
}
