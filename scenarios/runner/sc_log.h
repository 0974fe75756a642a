/* sc_log.h - a scenario's buffered log and its failure record.
 *
 * Log lines go into the scenario's rp_case_t with the time since the scenario began and
 * an actor ("runner", "sim", "gw", "step[3]"); the runner prints them only for failures
 * (or with -v), and the JUnit writer puts them in <system-out>. For the timeline the log
 * also names the steps' lanes and notes where each iteration of the outermost repeat
 * begins (the first line logged in it; "" at the first line after the repeat). Not thread-safe: the
 * context's one thread; sc_log alone may be called from the worker copies of a concurrent
 * repeat (they share the case's log under ctx->log_lock).
 */
#ifndef SC_LOG_H
#define SC_LOG_H

#include "sc_ctx.h"

/* For writes into diagnoses and logs: a full or failed buffer there must not change a
 * test's outcome, so their errors are dropped on purpose (a cast to void does not silence
 * warn_unused_result in GCC). */
#define SC_BEST_EFFORT(expr)                                                                       \
    do {                                                                                           \
        if (expr) {                                                                                \
        }                                                                                          \
    } while (0)

/* Appends a line. Allocation failures drop the line (a log must not fail a test). */
void sc_log(sc_ctx_t *ctx, const char *actor, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the scenario's failure unless one is recorded already (then the message is only
 * logged). status is RP_FAILED or RP_ERRORED; type a short word. The message is one line;
 * add the diagnosis with sc_fail_detail. Returns CM_EINVAL so callers can
 * `return sc_fail(...)`. */
cm_err_t sc_fail(sc_ctx_t *ctx, rp_status_t status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Appends to the failure's detail while the first failure is being described (a later
 * sc_fail only adds an "also:" line and ends that). */
void sc_fail_detail(sc_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Same for text of any length (no formatting), e.g. a log tail. */
void sc_fail_text(sc_ctx_t *ctx, const char *text);

/* Names the timeline lanes of top-level step s and of every step inside it
 * (rp_case_add_lane, group: the step's kind): the step's name, else its location and kind
 * ("steps[3] (wait)"), nested steps one level deeper; an expect's checks (requests made
 * up at load) join the expect's lane. Call when s starts; best effort. */
void sc_log_lanes(sc_ctx_t *ctx, const sc_step_t *s);

/* Top-level step s has just failed the scenario (its first failure): marks the lane of the
 * step inside s the failure belongs to (s's own when the message names none, as when a
 * part died during s), and makes the failure's message the one line a report shows first:
 * the step as the scenario names it, the step inside it, the iteration, then what was
 * expected and found:
 *   steps[4] "booked once" > "effects: calcom.booking": "count": expected 1, got 2
 * The detail still starts with the full message (the request made). Best effort. */
void sc_log_step_failed(sc_ctx_t *ctx, const sc_step_t *s);

/* "steps[3] (webhook)" or "steps[3] (webhook \"five copies\")" into out; inside a repeat
 * "steps[3].step (request) [i=17]". ctx may be NULL (no iteration shown). */
const char *sc_step_label(const sc_ctx_t *ctx, const sc_step_t *s, char *out, size_t cap);

#endif
