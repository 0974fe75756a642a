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

/* ---- the numbers the control routes take ------------------------------------------ */

/* Where a number is read from. */
typedef enum {
    SIM_NUM_BODY = 0, /* the JSON body, at a dotted path ("latency.fixed", "retry_schedule_ms.0":
                         a number segment is an array index) */
    SIM_NUM_QUERY,    /* a query parameter: decimal digits, '-' first where min < 0 */
    SIM_NUM_PATH,     /* a route parameter ("{id}"), as a query parameter */
} sim_num_in_t;

typedef enum {
    SIM_NUM_INT = 0,     /* an integer */
    SIM_NUM_REAL,        /* any JSON number */
    SIM_NUM_INT_OR_TEXT, /* an integer, or a string that is no number (retry_after's verbatim
                            text) */
} sim_num_kind_t;

typedef struct {
    const char *route; /* as routed: "POST /control/retell/calls/{call_id}/webhook" */
    sim_num_in_t in;
    const char *field;
    sim_num_kind_t kind;
    int64_t min, max; /* inclusive */
} sim_control_number_t;

/* Every number the control routes take and the range it must lie in. One outside it, a
 * real where an integer belongs, or a string where a number belongs is refused with 400
 * and a detail naming the field, before anything is done; nothing is computed from a number
 * that was not checked, so none can overflow. The handlers in sim_control.c read their
 * numbers through this table; fault rules (sim_fault.c), call times (sim_retell.c) and the
 * deprecated "_ms" durations (sim_setting.c) are checked where they are read, against the
 * same limits. test_sim_control.c sends extreme values to every entry and the edges of its
 * range, so a number missing here goes untested: list each new one. Read-only. */
extern const sim_control_number_t sim_control_numbers[];
extern const size_t sim_control_nnumbers;

#endif
