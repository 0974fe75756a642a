/* gw_evtcheck.h - the event-type check: each tenant's configured Cal.com event type is
 * looked up among the event types its key lists (its own, and its team's when the tenant
 * names a team), at start and then every event_type_check_ms, so a type deleted or
 * renamed in Cal.com's dashboard is said once, precisely, in the logs, in /health/ready
 * and in metrics, instead of as one failed booking after another (the audit: "bookings
 * failed on stale event types, synced by hand").
 *
 * A tenant's state: unknown (not read yet: Cal.com did not answer), ok, missing (not
 * listed: deleted, or moved to another account or team), renamed (listed under another
 * slug than expected), refused (Cal.com refuses the tenant's key: 401/403), failing
 * (another answer that retrying cannot fix, such as an unknown team). A check that could
 * not reach Cal.com (timeout, 5xx, breaker open) leaves the state as it was. The calls go
 * through the Cal.com policy stack (gw_outbound: rate limit, breaker, retries), like the
 * bookings' own. Metrics: gw_event_type_ok{tenant} 1/0 once known, and
 * gw_event_type_checks_total{result=ok|problem|error} per tenant checked.
 */
#ifndef GW_EVTCHECK_H
#define GW_EVTCHECK_H

#include <jansson.h>

#include "cm_err.h"
#include "gw_config.h"
#include "gw_obs.h"
#include "gw_outbound.h"

typedef struct gw_evtcheck gw_evtcheck_t;

/* Registers the metrics, starts the thread and waits up to wait_first_ms for its first
 * pass, so a gateway that says it is ready has looked (a Cal.com that does not answer
 * delays the start by that much at most; the pass goes on in the background). cfg, ob
 * and obs are borrowed and must outlive gw_evtcheck_stop. With the check off
 * (event_type_check_ms 0) or no tenant on Cal.com, *out is NULL and CM_OK. */
cm_err_t gw_evtcheck_start(const gw_config_t *cfg, gw_outbound_t *ob, gw_obs_t *obs,
                           int64_t wait_first_ms, gw_evtcheck_t **out, char *err) CM_WUR;

/* Stops the thread (after a pass in progress), frees, sets *c to NULL. Accepts NULL. */
void gw_evtcheck_stop(gw_evtcheck_t **c);

/* For /health/ready: {"status": "ok"|"degraded"|"unknown", "tenants": {id: {"status",
 * "event_type_id", "detail"?}}} (new reference). *problem is set when a tenant's state is
 * a problem (missing, renamed, refused, failing). c may be NULL: NULL, *problem 0. */
json_t *gw_evtcheck_json(gw_evtcheck_t *c, int *problem);

#endif
