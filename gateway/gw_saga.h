/* gw_saga.h - the booking saga: find a slot, book it at Cal.com, take the deposit at
 * Stripe, confirm - or compensate in reverse (refund, cancel) when a step fails for good.
 *
 * One saga per call, keyed by the call id. Its state and each step's intent are persisted
 * before the step runs and its result after (gw_store_saga_put), so a restart at any point
 * - even in the middle of a provider call - resumes: a booking whose answer was lost is
 * found again by the saga id in its metadata, and Stripe calls carry an Idempotency-Key
 * per saga step, so nothing is booked or charged twice.
 *
 * States: started -> slot_chosen -> booked -> charged -> completed; failed_no_slot (nothing
 * done); compensating -> failed_payment / compensated; needs_human (a provider stayed
 * unavailable past the deadline: nothing lost, a person takes over).
 *
 * gw_saga_run is called by the worker for the call's job (serialised per call). It returns
 * GW_SAGA_RETRY when a provider is unavailable: the job is retried later and the saga
 * resumes from its persisted state. Thread-safe with one gw_saga_env_t per thread.
 */
#ifndef GW_SAGA_H
#define GW_SAGA_H

#include <jansson.h>

#include "gw_config.h"
#include "gw_obs.h"
#include "gw_outbound.h"
#include "gw_store.h"

typedef enum { GW_SAGA_DONE = 0, GW_SAGA_RETRY, GW_SAGA_DEAD } gw_saga_result_t;

typedef struct {
    const gw_config_t *cfg;
    gw_store_t *store;
    gw_outbound_t *ob;
    gw_obs_t *obs;
    cm_http_client_t *http;
    cm_rand_t *rng;
    const char *traceparent;
    int64_t retry_hint_ms; /* out: when to try again after GW_SAGA_RETRY (0: back-off) */
    int last_attempt;      /* in: the job will not be retried again: a RETRY now would leave
                            * the saga half-done, so it goes to a person instead */
    int waiting;           /* out: RETRY because a provider's breaker or limiter said wait:
                            * not a failed attempt; the saga's deadline bounds the wait */
    int call_open;         /* out (gw_saga_run): the call's outcome is still open - no saga
                            * yet, or one not ended in the store - so if the job is
                            * dead-lettered after this run, that is the call's outcome and
                            * the dead letter sets its state ("failed"). 0 once the saga
                            * has ended (its final save set the call's state) or when the
                            * store could not say */
    int mirror_call;       /* internal: gw_saga_run's final save also sets the call's state */
} gw_saga_env_t;

/* Runs (or resumes) the saga of a call_analyzed event. err says why on RETRY/DEAD. The
 * call's state is written with the saga's final save; a DEAD (or a RETRY the job gives up
 * on) leaves it to the caller's dead letter, see call_open. */
gw_saga_result_t gw_saga_run(gw_saga_env_t *env, const gw_tenant_t *t, const json_t *ev, char *err);

/* A person cancelled booking uid at Cal.com: a completed saga refunds its deposit and ends
 * "cancelled_by_attendee". Sagas in other states, or no saga, are left alone. */
gw_saga_result_t gw_saga_booking_cancelled(gw_saga_env_t *env, const char *uid, char *err);

/* Whether a saga state is final. */
int gw_saga_state_final(const char *state);

#endif
