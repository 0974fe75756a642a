/* sc_steps.h - executing one scenario step against the running parts.
 *
 * Each step expands its strings (${var}) first; an unknown variable fails the step with
 * its name. Expectations: a status not written means "any 2xx" (a setup request that
 * fails must not pass silently); "json" expectations go through sc_match. A wait repeats
 * its request every SC_WAIT_POLL_MS until its "until" holds or "within" (capped by the
 * scenario deadline) passes, then fails with the last answer. Nothing sleeps to let
 * something happen.
 * Not thread-safe: runs on the context's thread.
 */
#ifndef SC_STEPS_H
#define SC_STEPS_H

#include "sc_ctx.h"

#define SC_WAIT_POLL_MS 20

/* Runs step s. CM_OK when it passed; otherwise the failure is recorded in ctx->fail (see
 * sc_log.h) and CM_EINVAL returned. */
cm_err_t sc_step_run(sc_ctx_t *ctx, const sc_step_t *s) CM_WUR;

#endif
