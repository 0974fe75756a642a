/* sim_slots.h - availability arithmetic for the Cal.com simulator: the working-hours
 * grid, which slots are free, and why a requested start cannot be booked.
 *
 * Pure functions over caller-owned data; no clock is read here (now_ms is a parameter),
 * so the rules can be tested exactly. Thread-safe as long as the busy list is not being
 * changed meanwhile (the Cal.com module calls these under its lock).
 *
 * Times are Unix epoch milliseconds, and days are UTC days: the simulated host works
 * open_min..close_min UTC every day of the week.
 */
#ifndef SIM_SLOTS_H
#define SIM_SLOTS_H

#include <stddef.h>
#include <stdint.h>

#define SIM_DAY_MS 86400000LL

/* A half-open busy interval [start_ms, end_ms). */
typedef struct {
    int64_t start_ms;
    int64_t end_ms;
} sim_interval_t;

/* Working hours within each UTC day, in minutes since midnight (0 <= open < close <= 1440). */
typedef struct {
    int open_min;
    int close_min;
} sim_hours_t;

typedef enum {
    SIM_SLOT_FREE = 0,
    SIM_SLOT_PAST,     /* does not start after now */
    SIM_SLOT_OFF_GRID, /* not on the event's length grid or not inside working hours */
    SIM_SLOT_TAKEN,    /* overlaps a busy interval */
} sim_slot_state_t;

/* Whether a slot of len_ms starting at start_ms can be booked now. The grid starts at
 * the opening time and steps by the event length; a slot must end by closing time. */
sim_slot_state_t sim_slots_check(const sim_hours_t *h, int64_t len_ms, int64_t start_ms,
                                 const sim_interval_t *busy, size_t nbusy, int64_t now_ms);

/* Called for every free slot in ascending order; return nonzero to stop early. */
typedef int (*sim_slot_fn)(int64_t start_ms, void *ud);

/* Enumerates the free slots whose start lies in [from_ms, to_ms] (both inclusive).
 * Returns the number of slots passed to fn. */
size_t sim_slots_list(const sim_hours_t *h, int64_t len_ms, int64_t from_ms, int64_t to_ms,
                      const sim_interval_t *busy, size_t nbusy, int64_t now_ms, sim_slot_fn fn,
                      void *ud);

/* Floor of t to its UTC midnight (correct for negative times too). */
int64_t sim_slots_day_start(int64_t t_ms);

/* ---- time zones ---------------------------------------------------------------------
 * Cal.com writes slots in the requested IANA time zone (luxon's setZone().toISO()), so the
 * simulator needs each zone's UTC offset at an instant. It reads the system's tz database
 * (TZif files, RFC 8536, under /usr/share/zoneinfo or $TZDIR): the transition table, and
 * for instants past its end the POSIX TZ rule in the file's footer (2050 lies past the
 * table of most zones). Only what Cal.com's answers need; no leap seconds. */

typedef struct sim_tz sim_tz_t;

/* Loads zone name ("Europe/Rome", "UTC"). NULL with err set (CM_ERR_LEN) when the name is
 * not a zone of the database (bad characters, "..", no such file, not a TZif file) or
 * out of memory. The caller owns the result. Thread-safe. */
sim_tz_t *sim_tz_load(const char *name, char *err);
/* Frees *tz and sets it to NULL; accepts NULL. */
void sim_tz_free(sim_tz_t **tz);
/* The zone's offset from UTC in seconds (east positive) at instant t_ms. */
int sim_tz_offset_s(const sim_tz_t *tz, int64_t t_ms);
/* t_ms written as luxon's toISO() in the zone: "2050-09-05T11:00:00.000+02:00"; "Z" only
 * for the fixed zone "UTC" (an IANA zone at offset 0 writes "+00:00", as luxon does).
 * Returns out. */
char *sim_tz_iso(const sim_tz_t *tz, int64_t t_ms, char out[32]);

#endif
