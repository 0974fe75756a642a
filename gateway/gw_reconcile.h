/* gw_reconcile.h - reconciliation: compares what the gateway believes (its sagas, its
 * stored webhooks) with what the providers hold, repairs what is safe and flags the rest
 * for a person.
 *
 * A pass, for each tenant:
 *   - Cal.com: the bookings of the tenant's event type starting in the lookback window
 *     (GET /v2/bookings?eventTypeId&afterStart, paged), those whose metadata carries a saga
 *     id: a booking the saga never recorded while it waits at or before its booking step
 *     is recorded on it (the saga goes on to the deposit); one left behind by a saga that
 *     was compensated is cancelled; one for a saga that failed is recorded and flagged;
 *     one with no saga at all, or a second one for a saga that has its booking, is flagged.
 *   - Stripe: the payment intents and refunds created in the window (GET /v1/payment_intents
 *     and /v1/refunds with created[gte], paged), those whose intent carries a saga id: a
 *     charge the saga never recorded while it waits to charge is recorded on it (the saga
 *     goes on to confirm); a refund done at Stripe for a saga that believes it is paid, a
 *     succeeded intent kept by a saga that ended without its deposit (compensated, failed),
 *     a second charge for one saga, or a charge with no saga are flagged.
 *   - Retell (providers.retell configured): the tenant's agents' calls started in the window
 *     (POST /v3/list-calls, paged), and for each ended, analysed call that ended more than
 *     reconcile_grace_ms ago whose call_analyzed webhook the gateway never stored, the call
 *     (GET /v2/get-call) goes into the normal intake as that webhook would have: the same
 *     event key ("retell:<call_id>:call_analyzed"), so a webhook arriving later is a
 *     duplicate and the call is booked once; its stored headers say {"x-gw-source":
 *     "reconcile"}.
 * Repairs to a saga are compare-and-sets (gw_store_saga_fix): a saga that moved on, or
 * whose job is running, is left to the next pass. Every finding is stored once
 * (reconcile_findings) and counted once: gw_reconcile_findings_total{provider,kind,action},
 * gw_reconcile_recovered_calls_total{tenant}; every pass in gw_reconcile_runs_total{result}
 * ("error" when a provider could not be read: its part is tried again at the next pass).
 * Calls go through each provider's policy stack, so a provider that is down opens its
 * breaker and the pass ends quickly; the workers are never waited for.
 *
 * Threads: one of its own runs a pass every reconcile_interval_ms when reconcile_enabled;
 * gw_reconcile_run may be called from any thread (passes never overlap: a second waits).
 */
#ifndef GW_RECONCILE_H
#define GW_RECONCILE_H

#include "cm_buf.h"
#include "cm_err.h"
#include "gw_config.h"
#include "gw_obs.h"
#include "gw_outbound.h"
#include "gw_store.h"
#include "gw_worker.h"

typedef struct gw_reconcile gw_reconcile_t;

/* Makes the reconciler, registers its metrics in obs, and starts its thread when
 * cfg->reconcile_enabled. Everything passed is borrowed and must outlive
 * gw_reconcile_stop; worker may be NULL (recovered calls then wait for the workers' own
 * polling). CM_ENOMEM, or CM_ESTATE when the thread cannot start (err says why). */
cm_err_t gw_reconcile_start(const gw_config_t *cfg, gw_store_t *store, gw_outbound_t *ob,
                            gw_obs_t *obs, gw_worker_t *worker, gw_reconcile_t **out,
                            char *err) CM_WUR;
/* Stops the thread (a pass in progress stops at its next item), frees, sets *r to NULL.
 * Accepts NULL and *r NULL. */
void gw_reconcile_stop(gw_reconcile_t **r);

/* Runs one pass now (after the one in progress, if any) and appends its report to out:
 * {"result":"ok"|"error","started_at_ms","duration_ms","checked":{"calcom":N,"stripe":N,
 * "retell":N},"recovered_calls":N,"findings":[{"provider","kind","tenant_id","saga_id",
 * "object_id","action","detail","new":bool}],"errors":["..."]}. CM_ENOMEM when the report
 * cannot be made (the pass ran). */
cm_err_t gw_reconcile_run(gw_reconcile_t *r, cm_buf_t *out) CM_WUR;

#endif
