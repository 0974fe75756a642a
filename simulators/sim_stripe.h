/* sim_stripe.h - the Stripe simulator: PaymentIntents, refunds, events, idempotency,
 * test-card declines and signed event deliveries, as strict as Stripe (issue 18; every
 * rule and its source: docs/providers-stripe.md).
 *
 * Routes served on a server the caller owns, with Stripe's key check (Bearer, or Basic
 * with the key as user name), Stripe-Version checked and echoed (default 2024-06-20),
 * form-encoded request bodies only (nested "metadata[k]=v" keys), JSON answers, Stripe's
 * error shape {"error":{"type","code","doc_url","decline_code","message","param"}} on every
 * answer, unknown routes and methods included (404 "Unrecognized request URL"), and a
 * Request-Id header on every answer:
 *   POST /v1/payment_intents               amount, currency (supported, lower case, at
 *                                          least the currency's minimum); confirm (default
 *                                          false), payment_method (a test one),
 *                                          capture_method, metadata[...], ...
 *   GET  /v1/payment_intents               limit, starting_after, ending_before, created,
 *                                          customer
 *   GET  /v1/payment_intents/{id}
 *   POST /v1/payment_intents/{id}/confirm  | /capture (amount_to_capture) | /cancel
 *   POST /v1/refunds                       payment_intent or charge, amount, reason
 *   GET  /v1/refunds                       + payment_intent, charge
 *   GET  /v1/refunds/{id}
 *   GET  /v1/events                        + type (a trailing * matches), types[n]
 *   GET  /v1/events/{id}
 * Every operation takes exactly Stripe's parameters for it: unknown -> 400
 * parameter_unknown, missing -> parameter_missing, "" for a required one ->
 * parameter_invalid_empty, malformed -> parameter_invalid_integer / "Invalid boolean" /
 * "Invalid <name>: must be one of ...", a real Stripe parameter the simulator does not model
 * -> 400 saying so. Declines: the test payment methods pm_card_chargeDeclined*
 * (InsufficientFunds, ExpiredCard, Fraudulent, ...) or sim_stripe_settings answer 402
 * card_error with decline_code; the intent goes back to requires_payment_method with
 * last_payment_error. Idempotency-Key on POSTs: the first result is stored once execution
 * began (500s included) and replayed for 24 h with Idempotent-Replayed: true and its
 * Request-Id; other parameters -> 400 idempotency_error; while the first is in flight -> 409
 * idempotency_key_in_use (Stripe-Should-Retry: true); validation failures and 429s are not
 * stored. Every change makes an Event object, kept for GET /v1/events; those of types
 * payment_intent.succeeded / payment_failed / canceled / amount_capturable_updated and
 * charge.refunded also go to the URL set with sim_stripe_set_webhook, signed afresh on
 * every attempt (one v1 per secret), retried on the configured schedule. The control API
 * can send any event through the same worker (sim_stripe_send_event).
 *
 * Intents, refunds, events and effects stay in memory until a reset. State sits behind one
 * mutex; all functions but new/free are thread-safe.
 */
#ifndef SIM_STRIPE_H
#define SIM_STRIPE_H

#include <jansson.h>
#include <stdint.h>

#include "cm_err.h"
#include "cm_http_server.h"
#include "sim_journal.h"

typedef struct sim_stripe sim_stripe_t;

typedef struct {
    const char *api_key;        /* the accepted "Bearer <key>"; copied */
    const char *webhook_secret; /* for Stripe's webhooks (a later issue); copied */
    uint64_t seed;              /* id stream seed */
    sim_journal_t *journal;     /* borrowed, may be NULL: effects and delivery attempts */
    int64_t webhook_timeout_ms; /* per delivery attempt until changed; 0: 10 s */
} sim_stripe_cfg_t;

/* How long Stripe waits for a webhook endpoint's answer by default. */
#define SIM_STRIPE_WEBHOOK_TIMEOUT_MS 10000

/* NULL when out of memory or api_key is empty. */
sim_stripe_t *sim_stripe_new(const sim_stripe_cfg_t *cfg);
/* Frees everything, sets *s to NULL, accepts NULL. Stop the server first; the delivery
 * worker is stopped and joined here. */
void sim_stripe_free(sim_stripe_t **s);

/* Aborts deliveries in flight and stops the delivery worker's waits. */
void sim_stripe_shutdown(sim_stripe_t *s);

/* Sets where events go: {"url", "extra_secrets":[...] (signed besides the configured
 * secret, for rotation), "retry_schedule":["1m","10m","1h"] (delays after each failed
 * attempt, at most SIM_STRIPE_MAX_RETRIES of up to 72h; its length is the number of
 * retries), "twin": false (also send a second event id for each change), "timeout": "10s"}
 * (durations as in cm_duration.h). The deprecated integer forms "retry_schedule_ms" and
 * "timeout_ms" are still taken for one release, with a warning in the log (sim_setting.h).
 * CM_EINVAL (err says why) changes nothing. Only changes made after this are delivered. */
cm_err_t sim_stripe_set_webhook(sim_stripe_t *s, const json_t *cfg, char *err) CM_WUR;

/* The most retries sim_stripe_set_webhook's schedule has, and the longest delay in it. */
#define SIM_STRIPE_MAX_RETRIES 16
#define SIM_STRIPE_MAX_RETRY_DELAY_MS (72LL * 3600 * 1000)

/* The most Event objects GET /v1/events keeps (the oldest go first). Stripe keeps 30 days. */
#define SIM_STRIPE_MAX_EVENTS 10000

/* The most copies of one event sim_stripe_send_event sends. */
#define SIM_STRIPE_MAX_COPIES 20
/* How far timestamp_offset may move t= either way: ten years. */
#define SIM_STRIPE_MAX_OFFSET_MS (3650LL * 86400 * 1000)
/* The latest "created" an event may give: 9999-12-31T23:59:59Z. */
#define SIM_STRIPE_MAX_CREATED 253402300799LL
/* The most requests decline_next and error_next may name. */
#define SIM_STRIPE_MAX_NEXT 1000000

/* An event built and sent on request (the control API), not caused by a state change. */
typedef struct {
    const char *type;            /* "word.word[.word]" of a-z, 0-9, '_' ("charge.refunded") */
    const json_t *object;        /* data.object's fields (borrowed); "object" defaults below */
    const char *id;              /* NULL: a generated "evt_" id */
    int has_created;             /* 0: created is now */
    int64_t created;             /* Unix seconds, 0..SIM_STRIPE_MAX_CREATED */
    int64_t copies;              /* 1..SIM_STRIPE_MAX_COPIES deliveries of the same bytes */
    int forge;                   /* sign with a secret nobody configured */
    int64_t timestamp_offset_ms; /* added to each attempt's send time for t= */
} sim_stripe_event_t;

/* Builds ev's event exactly as the simulator's own are built ({"id","object":"event",
 * "api_version","created","type","data":{"object","previous_attributes":{}},"livemode":
 * false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null}}), where
 * data.object is ev->object with an "object" member, when it has none, named after the
 * type: the type without its action ("payment_intent.succeeded": "payment_intent",
 * "checkout.session.completed": "checkout.session"), but a charge's or customer's
 * sub-resource alone ("charge.dispute.created": "dispute"). The event is serialised once
 * and ev->copies deliveries of those bytes are queued for the delivery worker, each its own
 * chain of attempts as for the simulator's own events: signed when sent (one v1 per
 * configured secret, extra_secrets included; forge: a single v1 with a secret nobody
 * configured; t= the send time plus timestamp_offset_ms, in whole seconds), the configured
 * timeout, retried on the configured retry_schedule. twin does not apply. Returns once
 * the first attempt of every copy has ended, with a new report
 *   {"delivery_id","status":"retrying"|"done","event":{the envelope},"url",
 *    "deliveries":[{"status":204|null,"error":null|"...","ms",
 *                   "attempts":[{"status","error","ms","url","signature"}]}, ...]}
 * in copy order; retries go on in the background (sim_stripe_delivery). Every attempt is
 * journaled (kind delivery, delivery_id the report's). Errors, nothing queued: CM_EINVAL
 * (err names the field), CM_ESTATE (no webhook URL set), CM_ENOMEM. Blocks for as long as
 * the first attempts take; call it from a thread that may wait. */
cm_err_t sim_stripe_send_event(sim_stripe_t *s, const sim_stripe_event_t *ev, json_t **report,
                               char *err) CM_WUR;

/* A new copy of the report of an event sent with sim_stripe_send_event, with every attempt
 * so far ("status":"done" when no retry is to come); NULL when unknown (the last 256
 * finished reports are kept, across resets). */
json_t *sim_stripe_delivery(sim_stripe_t *s, const char *delivery_id);

/* Declines: decline_next -1 makes every charge decline, N the next N, 0 none; decline_code
 * (NULL: keep) is the decline_code given. error_next N: the next N POST executions answer
 * 500 api_error (stored under their idempotency key, as Stripe does). Both counts are at
 * most SIM_STRIPE_MAX_NEXT; CM_EINVAL (err naming the field) otherwise. */
cm_err_t sim_stripe_settings(sim_stripe_t *s, int64_t decline_next, const char *decline_code,
                             int64_t error_next, char *err) CM_WUR;

/* Holds every POST execution hold_ms (0..SIM_STRIPE_MAX_HOLD_MS) after its idempotency key
 * is taken, so tests can see 409 idempotency_key_in_use. */
#define SIM_STRIPE_MAX_HOLD_MS 60000
cm_err_t sim_stripe_hold(sim_stripe_t *s, int64_t hold_ms, char *err) CM_WUR;

/* "in_flight", "stored" or NULL: what the idempotency layer holds for key (static). */
const char *sim_stripe_idem_state(sim_stripe_t *s, const char *key);

/* A new {"count":N,"refunds":[...]} in creation order; NULL when out of memory. */
json_t *sim_stripe_refunds(sim_stripe_t *s);

/* Adds the provider routes to srv (before it starts); s must outlive srv. */
cm_err_t sim_stripe_routes(sim_stripe_t *s, cm_http_server_t *srv) CM_WUR;

/* Forgets every intent, refund, idempotency key, setting and the webhook URL (queued
 * deliveries are dropped). The id stream is not rewound. */
void sim_stripe_reset(sim_stripe_t *s);

/* The effects ledger: a new {"count":N,"payment_intents":[...]} in creation order (deep
 * copy; caller decrefs). NULL when out of memory. */
json_t *sim_stripe_payment_intents(sim_stripe_t *s);

#endif
