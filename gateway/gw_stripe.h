/* gw_stripe.h - the gateway's Stripe client: deposits (payment intents) and refunds.
 *
 * Bodies are form-encoded as Stripe expects; every POST carries an Idempotency-Key derived
 * from the business operation (saga id + step), so a retry - ours, the policy stack's or
 * one after a crash - never charges or refunds twice. Calls go through the Stripe policy
 * stack (gw_outbound). Outcomes: GW_STRIPE_OK, GW_STRIPE_DECLINED (402 card_error; a
 * definitive answer), GW_STRIPE_RETRY (transient), GW_STRIPE_FAIL. err says more.
 * Thread-safe with one gw_stripe_ctx_t per thread.
 */
#ifndef GW_STRIPE_H
#define GW_STRIPE_H

#include <stdint.h>

#include "gw_outbound.h"

typedef enum {
    GW_STRIPE_OK = 0,
    GW_STRIPE_DECLINED,
    GW_STRIPE_RETRY,
    GW_STRIPE_FAIL
} gw_stripe_out_t;

typedef struct {
    gw_outbound_t *ob;
    cm_http_client_t *http;
    cm_rand_t *rng;
    const char *api_key;
    const char *traceparent;
    int64_t retry_in_ms; /* out: a hint after GW_STRIPE_RETRY */
    int unavailable;     /* out: the breaker or rate limiter refused; nothing was sent */
} gw_stripe_ctx_t;

/* The Stripe API version every request names (Stripe-Version). Without one, Stripe applies
 * the account's default version, and what a parameter means - or whether it exists - would
 * depend on the account: payment_method_types, which every charge sends, is an unknown
 * parameter from 2026-09-30.endive on (docs/providers-stripe.md). */
#define GW_STRIPE_API_VERSION "2024-06-20"

/* Creates and confirms a payment intent. On OK, the intent id goes to pi (cap bytes); on
 * DECLINED, the decline code (or error code) to err. */
gw_stripe_out_t gw_stripe_charge(gw_stripe_ctx_t *c, const char *idem_key, int64_t amount,
                                 const char *currency, const char *payment_method,
                                 const char *saga_id, char *pi, size_t cap, char *err);

/* Refunds a payment intent in full. */
gw_stripe_out_t gw_stripe_refund(gw_stripe_ctx_t *c, const char *idem_key, const char *pi,
                                 const char *reason, char *err);

/* Appends k=v with form encoding (RFC 1866 application/x-www-form-urlencoded) to out,
 * with a leading '&' unless out is empty. Exposed for tests. */
cm_err_t gw_stripe_form_add(cm_buf_t *out, const char *k, const char *v) CM_WUR;

#endif
