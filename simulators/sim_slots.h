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

#endif
