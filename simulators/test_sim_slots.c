/* test_sim_slots.c - the availability grid and booking conflicts. */
#include <criterion/criterion.h>

#include "cm_clock.h"
#include "sim_slots.h"

static const sim_hours_t hours = {9 * 60, 17 * 60};
#define MIN 60000LL
#define HOUR (60 * MIN)

static int64_t at(const char *iso)
{
    int64_t t;
    cr_assert_eq(cm_clock_parse_iso8601(iso, &t), 0, "bad test time %s", iso);
    return t;
}

typedef struct {
    int64_t starts[512];
    size_t n;
} collected_t;

static int collect(int64_t s, void *ud)
{
    collected_t *c = ud;
    cr_assert_lt(c->n, 512);
    c->starts[c->n++] = s;
    return 0;
}

Test(slots, day_start_floors_to_utc_midnight)
{
    cr_assert_eq(sim_slots_day_start(at("2050-09-05T16:30:00Z")), at("2050-09-05T00:00:00Z"));
    cr_assert_eq(sim_slots_day_start(at("2050-09-05T00:00:00Z")), at("2050-09-05T00:00:00Z"));
    cr_assert_eq(sim_slots_day_start(-1), -SIM_DAY_MS);
}

Test(slots, one_day_on_the_30_and_60_minute_grids)
{
    collected_t c = {.n = 0};
    int64_t day = at("2050-09-05T00:00:00Z"), now = at("2020-01-01T00:00:00Z");
    size_t n =
        sim_slots_list(&hours, 30 * MIN, day, day + SIM_DAY_MS - 1, NULL, 0, now, collect, &c);
    cr_assert_eq(n, 16, "09:00..16:30 is 16 half hours, got %zu", n);
    cr_assert_eq(c.starts[0], at("2050-09-05T09:00:00Z"));
    cr_assert_eq(c.starts[15], at("2050-09-05T16:30:00Z"));
    c.n = 0;
    n = sim_slots_list(&hours, 60 * MIN, day, day + SIM_DAY_MS - 1, NULL, 0, now, collect, &c);
    cr_assert_eq(n, 8);
    cr_assert_eq(c.starts[7], at("2050-09-05T16:00:00Z"));
}

Test(slots, range_bounds_are_inclusive_and_span_days)
{
    collected_t c = {.n = 0};
    int64_t now = 0;
    size_t n = sim_slots_list(&hours, 30 * MIN, at("2050-09-05T16:30:00Z"),
                              at("2050-09-06T09:30:00Z"), NULL, 0, now, collect, &c);
    cr_assert_eq(n, 3, "16:30 on the 5th, 09:00 and 09:30 on the 6th; got %zu", n);
    cr_assert_eq(c.starts[1], at("2050-09-06T09:00:00Z"));
}

Test(slots, only_future_slots_are_listed)
{
    collected_t c = {.n = 0};
    int64_t day = at("2050-09-05T00:00:00Z");
    int64_t now = at("2050-09-05T12:10:00Z");
    size_t n =
        sim_slots_list(&hours, 30 * MIN, day, day + SIM_DAY_MS - 1, NULL, 0, now, collect, &c);
    cr_assert_eq(n, 9, "12:30..16:30, got %zu", n);
    cr_assert_eq(c.starts[0], at("2050-09-05T12:30:00Z"));
    /* A slot starting exactly now is not in the future. */
    c.n = 0;
    n = sim_slots_list(&hours, 30 * MIN, day, day + SIM_DAY_MS - 1, NULL, 0,
                       at("2050-09-05T16:30:00Z"), collect, &c);
    cr_assert_eq(n, 0);
}

Test(slots, bookings_remove_overlapping_slots_across_lengths)
{
    collected_t c = {.n = 0};
    int64_t day = at("2050-09-05T00:00:00Z");
    /* A 60-minute booking at 10:00 blocks the 10:00 and 10:30 half hours; a 30-minute one
     * at 13:30 blocks the 13:00 hour. */
    sim_interval_t busy[] = {{at("2050-09-05T10:00:00Z"), at("2050-09-05T11:00:00Z")},
                             {at("2050-09-05T13:30:00Z"), at("2050-09-05T14:00:00Z")}};
    size_t n = sim_slots_list(&hours, 30 * MIN, day, day + SIM_DAY_MS - 1, busy, 2, 0, collect, &c);
    cr_assert_eq(n, 13);
    for (size_t i = 0; i < c.n; i++) {
        cr_assert_neq(c.starts[i], at("2050-09-05T10:00:00Z"));
        cr_assert_neq(c.starts[i], at("2050-09-05T10:30:00Z"));
        cr_assert_neq(c.starts[i], at("2050-09-05T13:30:00Z"));
    }
    c.n = 0;
    n = sim_slots_list(&hours, 60 * MIN, day, day + SIM_DAY_MS - 1, busy, 2, 0, collect, &c);
    cr_assert_eq(n, 6, "10:00 and 13:00 hours are gone, got %zu", n);
}

Test(slots, check_says_why_a_start_cannot_be_booked)
{
    int64_t now = at("2050-09-01T00:00:00Z");
    sim_interval_t busy[] = {{at("2050-09-05T09:00:00Z"), at("2050-09-05T09:30:00Z")}};
    cr_assert_eq(sim_slots_check(&hours, 30 * MIN, at("2050-09-05T09:30:00Z"), busy, 1, now),
                 SIM_SLOT_FREE);
    cr_assert_eq(sim_slots_check(&hours, 30 * MIN, at("2050-09-05T09:00:00Z"), busy, 1, now),
                 SIM_SLOT_TAKEN);
    cr_assert_eq(sim_slots_check(&hours, 60 * MIN, at("2050-09-05T09:00:00Z"), busy, 1, now),
                 SIM_SLOT_TAKEN, "an hour at 09:00 overlaps the half hour at 09:00");
    cr_assert_eq(sim_slots_check(&hours, 30 * MIN, at("2050-09-05T09:15:00Z"), busy, 1, now),
                 SIM_SLOT_OFF_GRID);
    cr_assert_eq(sim_slots_check(&hours, 60 * MIN, at("2050-09-05T09:30:00Z"), NULL, 0, now),
                 SIM_SLOT_OFF_GRID, "60-minute grid is on the hour");
    cr_assert_eq(sim_slots_check(&hours, 30 * MIN, at("2050-09-05T08:30:00Z"), NULL, 0, now),
                 SIM_SLOT_OFF_GRID, "before opening");
    cr_assert_eq(sim_slots_check(&hours, 30 * MIN, at("2050-09-05T17:00:00Z"), NULL, 0, now),
                 SIM_SLOT_OFF_GRID, "at closing");
    cr_assert_eq(sim_slots_check(&hours, 60 * MIN, at("2050-09-05T16:30:00Z"), NULL, 0, now),
                 SIM_SLOT_OFF_GRID, "would end after closing");
    cr_assert_eq(sim_slots_check(&hours, 30 * MIN, at("2050-09-05T09:00:00.001Z"), NULL, 0, now),
                 SIM_SLOT_OFF_GRID, "a millisecond off the grid");
    cr_assert_eq(sim_slots_check(&hours, 30 * MIN, at("2020-09-05T09:00:00Z"), NULL, 0, now),
                 SIM_SLOT_PAST);
    cr_assert_eq(sim_slots_check(&hours, 30 * MIN, at("2050-09-05T11:00:00+02:00"), NULL, 0, now),
                 SIM_SLOT_FREE, "instants compare, whatever the offset they were written in");
}
