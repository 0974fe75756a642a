/* cm_clock.h - the one place every program reads time (clock_gettime).
 *
 * Under libfaketime both clocks run at the scenario's speed-up, so everything that
 * goes through here (and every timed wait on a condvar) is accelerated consistently.
 * All functions are thread-safe.
 */
#ifndef CM_CLOCK_H
#define CM_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <stddef.h>
#include <time.h>

/* Wall-clock time: Unix epoch milliseconds / seconds (CLOCK_REALTIME). */
int64_t cm_clock_now_ms(void);
int64_t cm_clock_now_s(void);

/* Monotonic time in nanoseconds / milliseconds, for intervals and deadlines. */
int64_t cm_clock_mono_ns(void);
int64_t cm_clock_mono_ms(void);

/* Sleeps for ms milliseconds (interrupted sleeps resume). Use only for pacing, never to
 * wait for something to happen: wait on a condition with a deadline instead. */
void cm_clock_sleep_ms(int64_t ms);

/* Initialises cv so that its timed waits run on the monotonic clock: a wall-clock step
 * (NTP, a test moving the date) neither cuts a wait short nor stretches it. 0 or an errno. */
int cm_clock_cond_init(pthread_cond_t *cv);

/* The absolute monotonic time ms from now, for pthread_cond_timedwait on a cv made by
 * cm_clock_cond_init. Compute it once before a wait loop so spurious wake-ups do not
 * extend the deadline. */
struct timespec cm_clock_mono_deadline(int64_t ms);

/* Formats epoch ms as ISO 8601 UTC with milliseconds, "2050-09-05T07:00:00.000Z".
 * out must hold 25 bytes. Returns out. */
char *cm_clock_iso8601(int64_t epoch_ms, char out[25]);

/* Parses an ISO 8601 date-time with a Z or +hh:mm / -hh:mm offset (fractional seconds
 * optional) into epoch ms. Returns 0 on success, -1 when s is not such a time. */
int cm_clock_parse_iso8601(const char *s, int64_t *epoch_ms);

#endif
