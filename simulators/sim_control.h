/* sim_control.h - the simulators' control API (docs/interfaces.md, "simulators").
 *
 * The scenario runner drives the providers through these routes on their own port:
 * create Retell calls and trigger their signed webhooks, have Stripe and Cal.com build,
 * sign and deliver any event, read the effects ledgers, and reset everything to the seed
 * data. A trigger answers once the first attempt of each copy has ended, so it holds its
 * connection's thread that long. Answers are JSON; errors are problem+json (RFC
 * 9457), because this is our API, not a provider's.
 *
 * Handlers only parse, delegate to the provider modules and answer; all state lives in
 * the providers, whose functions are thread-safe.
 */
#ifndef SIM_CONTROL_H
#define SIM_CONTROL_H

#include "cm_err.h"
#include "cm_http_server.h"
#include "sim_calcom.h"
#include "sim_fault.h"
#include "sim_journal.h"
#include "sim_retell.h"
#include "sim_stripe.h"

/* The providers the control API drives; borrowed, and they must outlive the server. */
typedef struct {
    sim_retell_t *retell;
    sim_calcom_t *calcom;
    sim_stripe_t *stripe;
    sim_fault_t *fault;     /* NULL: the fault routes answer 404 */
    sim_journal_t *journal; /* NULL: the journal and effects routes answer 404 */
} sim_control_t;

/* Adds the control routes to srv (before it starts). ctl is borrowed and must outlive
 * srv. */
cm_err_t sim_control_routes(sim_control_t *ctl, cm_http_server_t *srv) CM_WUR;

#endif
