/* gw_periodic.h - a background thread that runs one pass at once and then one every
 * interval until stopped: the shape the retention and event-type threads share.
 *
 * The pass runs on the thread only, never twice at a time. Between passes the thread
 * sleeps on a condition variable, so gw_periodic_stop wakes it at once; a pass in progress
 * finishes first (a long one should check gw_periodic_sleep between its batches, which
 * answers 1 once stopping). Intervals are monotonic time (cm_clock), so a clock step
 * neither hurries nor delays them.
 */
#ifndef GW_PERIODIC_H
#define GW_PERIODIC_H

#include <stdint.h>

#include "cm_err.h"

typedef struct gw_periodic gw_periodic_t;

/* One pass; p is the runner, for gw_periodic_sleep. */
typedef void (*gw_periodic_fn)(gw_periodic_t *p, void *arg);

/* Starts the thread (named name, at most 15 characters, in ps and gdb) that calls fn(arg)
 * at once and then every interval_ms (> 0) after the previous pass ended. arg is borrowed
 * and must outlive gw_periodic_stop. CM_ENOMEM, or CM_ESTATE when the thread cannot start
 * (err says why). */
cm_err_t gw_periodic_start(const char *name, int64_t interval_ms, gw_periodic_fn fn, void *arg,
                           gw_periodic_t **out, char *err) CM_WUR;

/* As gw_periodic_start, but the first pass comes after one interval, not at once: for a
 * pass that must give what is in flight at start its chance first. */
cm_err_t gw_periodic_start_delayed(const char *name, int64_t interval_ms, gw_periodic_fn fn,
                                   void *arg, gw_periodic_t **out, char *err) CM_WUR;

/* From fn: waits ms, or less once stopping. 1 when stopping (the pass should end). */
int gw_periodic_sleep(gw_periodic_t *p, int64_t ms);

/* Waits until the first pass has ended, at most within_ms. 1 when it has. */
int gw_periodic_wait_first(gw_periodic_t *p, int64_t within_ms);

/* Stops the thread (after the pass in progress), frees, sets *p to NULL. Accepts NULL and
 * *p NULL. */
void gw_periodic_stop(gw_periodic_t **p);

#endif
