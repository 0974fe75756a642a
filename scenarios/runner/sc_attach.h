/* sc_attach.h - what makes a scenario safe to run against parts it shares (--attach): its
 * counts are its own, and what it changed on the parts is undone at its end.
 *
 * Counts: at the start the runner notes the simulators' journal seq and effects ledger
 * (sc_attach_begin); from then on every GET of /control/journal on the control port gets
 * "since" that seq, and every GET of /control/effects is cut to the effects recorded after
 * the start (its "count" recomputed), so "effects" and "journal" checks (and requests of a
 * scenario's own to those routes) count the scenario's records only. "dropped" is made
 * relative the same way: records lost before the scenario began do not fail its checks.
 * The gateway's queue totals (GET /admin/queue: "done", "dead", "discarded"; "pending"
 * and "running" are states) are counted from the start too, which waits (up to 10 s) for
 * the gateway to have no job pending or running, so that an earlier scenario's last job
 * does not count in this one's.
 * Scenarios run one at a time in attach mode, so the records after the start are theirs.
 *
 * Undo: every fault rule a scenario adds (POST /control/faults, by a "fault" step or a
 * request) is deleted at its end, and every breaker it forced open or disabled (POST
 * /admin/breakers/P/force-open|disable) is reset: after the scenario's own "finally"
 * steps, whether it passed or not (sc_attach_undo).
 *
 * Not thread-safe except sc_attach_answer, which the worker copies of a concurrent repeat
 * may call (the undo record is under its lock).
 */
#ifndef SC_ATTACH_H
#define SC_ATTACH_H

#include <stddef.h>

#include "sc_ctx.h"
#include "sc_http.h"

/* Why sc cannot run against attached parts (into why, cap bytes), or NULL when it can (or
 * o is neither attached nor --gateway-cmd): it kills, stops or starts the gateway, wants a
 * chaos proxy, a PostgreSQL server of its own, several gateway instances, a clock speed-up
 * (unless --speed 1) or skew, environment of its own for the gateway, or a gateway config
 * other than the one the attached gateway runs (--attach config=).
 * With --gateway-cmd (a gateway that is not ours, started by the runner): a PostgreSQL
 * store or server, several instances, an env, a gateway config other than the default
 * fixture (the contract environment stands for it; a "gateway" step's "config" too), or
 * any step that uses our gateway's own API: /admin/ or /metrics on the gateway (the
 * "expect" and "wait" short forms on queue, saga, call, dead_letters and breaker are such
 * requests), the admin token ("auth": true, ${admin_token}) or a "metrics" check.
 * Thread-safe. */
const char *sc_attach_unsuitable(const sc_opts_t *o, const sc_scenario_t *sc, char *why,
                                 size_t cap);

/* Notes the baselines and sets ctx->scoped. Needs the control URL; without one the counts
 * stay absolute (logged). A control port that does not answer fails the scenario
 * (RP_ERRORED, "startup") naming it. */
cm_err_t sc_attach_begin(sc_ctx_t *ctx, sc_undo_t *undo) CM_WUR;

/* The path r should really go to: r->path, or with "&since=N" for the journal when scoped.
 * Writes into out (cap bytes; r->path unchanged when it does not fit). */
const char *sc_attach_path(const sc_ctx_t *ctx, const sc_http_req_t *r, char *out, size_t cap);

/* After the answer a to r: scopes an effects answer (a->json and a->body rewritten) and a
 * journal's "dropped", and records fault rules and forced breakers for the undo. Best
 * effort: an answer it cannot rewrite stays as it came (and a check on it fails as absolute). */
void sc_attach_answer(sc_ctx_t *ctx, const sc_http_req_t *r, sc_answer_t *a);

/* Deletes the scenario's fault rules and resets the breakers it forced. A part that
 * refuses fails the scenario ("cleanup"): the next scenario would run on a changed
 * deployment. Nothing when there is nothing to undo. */
void sc_attach_undo(sc_ctx_t *ctx);

#endif
