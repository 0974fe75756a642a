/* sim_slots.c - working-hours grid and conflict checks. */
#include "sim_slots.h"

int64_t sim_slots_day_start(int64_t t_ms)
{
    int64_t d = t_ms / SIM_DAY_MS;
    if (t_ms % SIM_DAY_MS < 0)
        d--;
    return d * SIM_DAY_MS;
}

static int overlaps(int64_t start, int64_t end, const sim_interval_t *busy, size_t nbusy)
{
    for (size_t i = 0; i < nbusy; i++)
        if (busy[i].start_ms < end && start < busy[i].end_ms)
            return 1;
    return 0;
}

sim_slot_state_t sim_slots_check(const sim_hours_t *h, int64_t len_ms, int64_t start_ms,
                                 const sim_interval_t *busy, size_t nbusy, int64_t now_ms)
{
    int64_t open = (int64_t)h->open_min * 60000, close = (int64_t)h->close_min * 60000;
    int64_t into_day = start_ms - sim_slots_day_start(start_ms);
    if (len_ms <= 0 || into_day < open || into_day + len_ms > close ||
        (into_day - open) % len_ms != 0)
        return SIM_SLOT_OFF_GRID;
    /* Past is checked after the grid so that a malformed time reads as "not available"
     * whatever the clock says; a well-formed past slot gets its own answer. */
    if (start_ms <= now_ms)
        return SIM_SLOT_PAST;
    if (overlaps(start_ms, start_ms + len_ms, busy, nbusy))
        return SIM_SLOT_TAKEN;
    return SIM_SLOT_FREE;
}

size_t sim_slots_list(const sim_hours_t *h, int64_t len_ms, int64_t from_ms, int64_t to_ms,
                      const sim_interval_t *busy, size_t nbusy, int64_t now_ms, sim_slot_fn fn,
                      void *ud)
{
    size_t n = 0;
    int64_t open = (int64_t)h->open_min * 60000, close = (int64_t)h->close_min * 60000;
    if (len_ms <= 0 || to_ms < from_ms)
        return 0;
    for (int64_t day = sim_slots_day_start(from_ms); day <= to_ms; day += SIM_DAY_MS) {
        for (int64_t s = day + open; s + len_ms <= day + close; s += len_ms) {
            if (s < from_ms || s > to_ms || s <= now_ms || overlaps(s, s + len_ms, busy, nbusy))
                continue;
            n++;
            if (fn(s, ud))
                return n;
        }
    }
    return n;
}
