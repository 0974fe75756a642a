/* sc_time.h - the scenario's simulated clock.
 *
 * With a scenario "speed" above 1 the gateway and the simulators run under libfaketime,
 * all on one timeline: simulated = ref + speed * (real - ref), ref being the moment the
 * scenario started (each child gets the FAKETIME offset that puts it on that line, see
 * sc_run.c). The runner itself runs in real time and converts: signatures carry simulated
 * timestamps, and durations written in a scenario ("within") are simulated durations.
 * Speed 1 is the identity. Thread-safe (reads the context only).
 */
#ifndef SC_TIME_H
#define SC_TIME_H

#include <stdint.h>

#include "sc_ctx.h"

/* The simulated wall-clock time now, epoch ms. */
int64_t sc_time_now_ms(const sc_ctx_t *ctx);

/* The real (wall) milliseconds a simulated duration takes, rounded up; >= 1 for sim > 0. */
int64_t sc_time_real_ms(const sc_ctx_t *ctx, int64_t sim_ms);

/* The simulated milliseconds a real duration covers. */
int64_t sc_time_sim_ms(const sc_ctx_t *ctx, int64_t real_ms);

/* The FAKETIME value for a child started now: "+<offset> x<speed>", where the offset
 * (seconds, 3 decimals) moves the child's own start onto the scenario's timeline, plus
 * skew_ms for a process whose clock is meant to be off ("-" when the sum is negative). */
void sc_time_faketime(const sc_ctx_t *ctx, int64_t skew_ms, char *out, size_t cap);

#endif
