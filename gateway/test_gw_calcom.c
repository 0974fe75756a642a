/* test_gw_calcom.c - slot parsing in both answer shapes, and the back-off envelope. */
#include <criterion/criterion.h>

#include "cm_clock.h"
#include "gw_calcom.h"
#include "gw_worker.h"

static int64_t at(const char *iso)
{
    int64_t ms = 0;
    cr_assert_eq(cm_clock_parse_iso8601(iso, &ms), 0, "%s", iso);
    return ms;
}

Test(slots, current_shape_with_offsets)
{
    json_t *d = json_loads("{\"2050-09-05\":[{\"start\":\"2050-09-05T09:00:00.000+02:00\"},"
                           "{\"start\":\"2050-09-05T09:30:00.000+02:00\"}]}",
                           0, NULL);
    cr_assert_eq(gw_calcom_slots_contain(d, at("2050-09-05T07:30:00Z")), 1);
    cr_assert_eq(gw_calcom_slots_contain(d, at("2050-09-05T09:30:00Z")), 0);
    json_decref(d);
}

Test(slots, range_and_older_shapes)
{
    json_t *r = json_loads("{\"2050-09-05\":[{\"start\":\"2050-09-05T09:00:00Z\","
                           "\"end\":\"2050-09-05T09:30:00Z\"}]}",
                           0, NULL);
    json_t *o = json_loads("{\"slots\":{\"2050-09-05\":[{\"time\":\"2050-09-05T09:00:00.000Z\"}]}}",
                           0, NULL);
    cr_assert_eq(gw_calcom_slots_contain(r, at("2050-09-05T09:00:00Z")), 1);
    cr_assert_eq(gw_calcom_slots_contain(o, at("2050-09-05T09:00:00Z")), 1);
    json_decref(r);
    json_decref(o);
}

Test(slots, unknown_shapes_are_refused)
{
    json_t *a = json_loads("[1,2]", 0, NULL);
    json_t *b = json_loads("{\"2050-09-05\":\"09:00\"}", 0, NULL);
    cr_assert_eq(gw_calcom_slots_contain(a, 0), -1);
    cr_assert_eq(gw_calcom_slots_contain(b, 0), -1);
    cr_assert_eq(gw_calcom_slots_contain(NULL, 0), -1);
    json_decref(a);
    json_decref(b);
}

Test(backoff, full_jitter_stays_in_the_envelope_and_spreads)
{
    gw_config_t cfg = {.backoff_base_ms = 100, .backoff_factor = 2, .backoff_cap_ms = 1000};
    cm_rand_t rng;
    cm_rand_seed(&rng, 42);
    for (int n = 1; n <= 8; n++) {
        int64_t ceiling = 100 << (n - 1);
        if (ceiling > 1000)
            ceiling = 1000;
        int64_t lo = ceiling, hi = 0;
        for (int i = 0; i < 2000; i++) {
            int64_t d = gw_worker_backoff_ms(&cfg, n, &rng);
            cr_assert(d >= 0 && d <= ceiling, "attempt %d: %lld outside [0,%lld]", n, (long long)d,
                      (long long)ceiling);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        /* Full jitter uses the whole range, not a band near the ceiling. */
        cr_assert(lo < ceiling / 10 && hi > ceiling * 9 / 10, "attempt %d: range %lld..%lld", n,
                  (long long)lo, (long long)hi);
    }
}

Test(backoff, same_seed_same_delays)
{
    gw_config_t cfg = {.backoff_base_ms = 100, .backoff_factor = 2, .backoff_cap_ms = 5000};
    cm_rand_t a, b;
    cm_rand_seed(&a, 7);
    cm_rand_seed(&b, 7);
    for (int i = 1; i < 10; i++)
        cr_assert_eq(gw_worker_backoff_ms(&cfg, i, &a), gw_worker_backoff_ms(&cfg, i, &b));
}
