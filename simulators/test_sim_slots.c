/* test_sim_slots.c - the availability grid and booking conflicts. */
#include <criterion/criterion.h>

#include "cm_clock.h"
#include "cm_err.h"
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

/* ---- time zones ---------------------------------------------------------------------- */

static void assert_offset(const char *zone, const char *iso, int want_s)
{
    char err[CM_ERR_LEN] = "";
    sim_tz_t *tz = sim_tz_load(zone, err);
    cr_assert_not_null(tz, "%s: %s", zone, err);
    cr_assert_eq(sim_tz_offset_s(tz, at(iso)), want_s, "%s at %s: %d, want %d", zone, iso,
                 sim_tz_offset_s(tz, at(iso)), want_s);
    sim_tz_free(&tz);
    cr_assert_null(tz);
}

/* Instants inside the zone files' transition tables and past them (the POSIX footer rule),
 * both hemispheres, the hour of the change itself, and zones without summer time. */
Test(tz, offsets_from_the_table_and_from_the_rule)
{
    assert_offset("Europe/Rome", "1990-01-15T12:00:00Z", 3600);
    assert_offset("Europe/Rome", "1990-07-15T12:00:00Z", 7200);
    /* 2050: last Sunday of March is the 27th, of October the 30th; the change is at 01:00 UTC. */
    assert_offset("Europe/Rome", "2050-03-27T00:59:59Z", 3600);
    assert_offset("Europe/Rome", "2050-03-27T01:00:00Z", 7200);
    assert_offset("Europe/Rome", "2050-10-30T00:59:59Z", 7200);
    assert_offset("Europe/Rome", "2050-10-30T01:00:00Z", 3600);
    /* New York: second Sunday of March 02:00 local, first Sunday of November 02:00 local. */
    assert_offset("America/New_York", "2050-03-13T06:59:59Z", -5 * 3600);
    assert_offset("America/New_York", "2050-03-13T07:00:00Z", -4 * 3600);
    assert_offset("America/New_York", "2050-11-06T05:59:59Z", -4 * 3600);
    assert_offset("America/New_York", "2050-11-06T06:00:00Z", -5 * 3600);
    /* Sydney: summer time spans the new year (first Sunday of October to first of April). */
    assert_offset("Australia/Sydney", "2050-01-15T00:00:00Z", 11 * 3600);
    assert_offset("Australia/Sydney", "2050-07-15T00:00:00Z", 10 * 3600);
    assert_offset("Asia/Kolkata", "2050-07-15T00:00:00Z", 5 * 3600 + 1800);
    assert_offset("Asia/Tokyo", "2050-07-15T00:00:00Z", 9 * 3600);
    assert_offset("UTC", "2050-07-15T00:00:00Z", 0);
}

Test(tz, iso_strings_as_luxon_writes_them)
{
    char err[CM_ERR_LEN], out[32];
    static const struct {
        const char *zone, *iso, *want;
    } cases[] = {
        {"UTC", "2050-09-05T09:00:00Z", "2050-09-05T09:00:00.000Z"},
        {"Europe/London", "2051-01-10T09:00:00Z", "2051-01-10T09:00:00.000+00:00"},
        {"Europe/Rome", "2050-09-05T23:30:00Z", "2050-09-06T01:30:00.000+02:00"},
        {"America/St_Johns", "2050-01-05T12:00:00Z", "2050-01-05T08:30:00.000-03:30"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sim_tz_t *tz = sim_tz_load(cases[i].zone, err);
        cr_assert_not_null(tz, "%s", err);
        cr_assert_str_eq(sim_tz_iso(tz, at(cases[i].iso), out), cases[i].want);
        sim_tz_free(&tz);
    }
}

Test(tz, names_that_are_not_zones_are_refused)
{
    static const char *const bad[] = {
        "",       "Mars/Olympus", "../../etc/passwd", "/etc/passwd", "Europe/Rome ",
        "Europe", "zone.tab"};
    char err[CM_ERR_LEN];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        sim_tz_t *tz = sim_tz_load(bad[i], err);
        cr_assert_null(tz, "'%s' loaded", bad[i]);
        cr_assert_neq(err[0], '\0', "'%s': no reason given", bad[i]);
    }
    sim_tz_free(NULL);
}
