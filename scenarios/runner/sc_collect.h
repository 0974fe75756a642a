/* sc_collect.h - what the parts recorded, gathered after the steps (before teardown) for
 * the report's timeline: the simulators' journal (every provider request with its fault
 * and answer, every webhook delivery), the chaos proxy's faults (scenarios with "chaos"),
 * the gateway's breaker transitions and its sagas' steps. Their times (the parts' own, simulated
 * under a speed-up, off by the part's "chaos"."skew") are put on the case's real-time clock:
 * t = (at_ms - skew - scenario start) / speed, so that an event shows where its cause is.
 *
 * Best effort and bounded (a few requests with short timeouts): a part that is down or
 * answers something else leaves its lanes empty and never changes the verdict.
 * Not thread-safe: the context's thread.
 */
#ifndef SC_COLLECT_H
#define SC_COLLECT_H

#include "sc_ctx.h"

/* At most this many journal entries and sagas are fetched. */
#define SC_COLLECT_JOURNAL 5000
#define SC_COLLECT_SAGAS 20

void sc_collect_events(sc_ctx_t *ctx);

#endif
