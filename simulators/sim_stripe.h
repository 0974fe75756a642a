/* sim_stripe.h - the Stripe simulator, minimal for now: PaymentIntents that succeed.
 *
 * Routes served on a server the caller owns, with Stripe's bearer check, form-encoded
 * request bodies (nested "metadata[k]=v" keys), JSON answers, Stripe's error shape
 * {"error":{"type","code","message","param"}} and a Request-Id header on every answer:
 *   POST /v1/payment_intents       amount, currency required; creates a succeeded intent
 *   GET  /v1/payment_intents/{id}
 * Not yet simulated (later issues): Idempotency-Key, confirm/capture/cancel, refunds,
 * webhooks, rate limits.
 *
 * Every intent stays in memory (the effects ledger) until a reset. State sits behind
 * one mutex; all functions but new/free are thread-safe.
 */
#ifndef SIM_STRIPE_H
#define SIM_STRIPE_H

#include <jansson.h>
#include <stdint.h>

#include "cm_err.h"
#include "cm_http_server.h"

typedef struct sim_stripe sim_stripe_t;

typedef struct {
    const char *api_key;        /* the accepted "Bearer <key>"; copied */
    const char *webhook_secret; /* for Stripe's webhooks (a later issue); copied */
    uint64_t seed;              /* id stream seed */
} sim_stripe_cfg_t;

/* NULL when out of memory or api_key is empty. */
sim_stripe_t *sim_stripe_new(const sim_stripe_cfg_t *cfg);
/* Frees everything, sets *s to NULL, accepts NULL. Stop the server first. */
void sim_stripe_free(sim_stripe_t **s);

/* Adds the provider routes to srv (before it starts); s must outlive srv. */
cm_err_t sim_stripe_routes(sim_stripe_t *s, cm_http_server_t *srv) CM_WUR;

/* Forgets every intent. The id stream is not rewound. */
void sim_stripe_reset(sim_stripe_t *s);

/* The effects ledger: a new {"count":N,"payment_intents":[...]} in creation order (deep
 * copy; caller decrefs). NULL when out of memory. */
json_t *sim_stripe_payment_intents(sim_stripe_t *s);

#endif
