/* sim_stripe.c - Stripe PaymentIntents, refunds, idempotency and signed event deliveries
 * over form-encoded bodies. */
#include "sim_stripe.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_codec.h"
#include "cm_http_client.h"
#include "cm_json.h"
#include "cm_sig.h"
#include "cm_log.h"
#include "sim_delivery.h"
#include "sim_form.h"
#include "sim_http.h"
#include "sim_setting.h"
#include "sim_rng.h"

#define COMP "sim.stripe"
#define ID_ALPHABET "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#define ID_LEN 24
/* Stripe's own ceiling for amount: eight digits in the smallest currency unit. */
#define MAX_AMOUNT 99999999LL
#define API_VERSION "2024-06-20"
/* What a forged event is signed with: a secret nobody configured. */
#define FORGED_SECRET "whsec_forged_by_the_simulator"

struct sim_stripe {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* monotonic: wakes the delivery worker */
    char *api_key;
    char *webhook_secret;
    sim_rng_t rng;
    sim_journal_t *journal;
    int stopping; /* read atomically by transfers in flight */
    /* guarded by mu */
    json_t *ledger;  /* array of intents, creation order */
    json_t *by_id;   /* id -> the same intents */
    json_t *refunds; /* array of refunds, creation order */
    json_t *refunds_by_id;
    json_t *charges;      /* charge id -> intent id */
    json_t *idem;         /* idempotency key -> {digest,status,body,in_flight,at_ms,request_id} */
    int64_t decline_next; /* -1: every charge, 0: none, N: the next N */
    char decline_code[48];
    int64_t error_next; /* the next N executions fail with a 500 api_error (stored) */
    int64_t hold_ms;    /* every execution waits this long (slow processing) */
    /* webhooks */
    char *wh_url;
    json_t *wh_secrets;  /* extra secrets signed besides webhook_secret (rotation) */
    json_t *wh_schedule; /* retry delays in ms after each failed attempt */
    int wh_twin;
    int64_t wh_timeout_ms;
    uint64_t generation;       /* bumped by each reset */
    sim_delivery_job_t *queue; /* events waiting for their next attempt */
    pthread_t worker;
    int has_worker;
    sim_delivery_log_t *log; /* reports of the events sent through the control API */
};

sim_stripe_t *sim_stripe_new(const sim_stripe_cfg_t *cfg)
{
    if (!cfg->api_key || !*cfg->api_key)
        return NULL;
    sim_stripe_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    cm_clock_cond_init(&s->cv);
    s->journal = cfg->journal;
    s->refunds = json_array();
    s->refunds_by_id = json_object();
    s->charges = json_object();
    s->idem = json_object();
    s->wh_secrets = json_array();
    s->wh_schedule = json_pack("[i,i,i]", 60000, 600000, 3600000);
    s->wh_timeout_ms =
        cfg->webhook_timeout_ms > 0 ? cfg->webhook_timeout_ms : SIM_STRIPE_WEBHOOK_TIMEOUT_MS;
    snprintf(s->decline_code, sizeof s->decline_code, "generic_decline");
    s->api_key = strdup(cfg->api_key);
    s->webhook_secret = strdup(cfg->webhook_secret ? cfg->webhook_secret : "");
    sim_rng_init(&s->rng, cfg->seed, 3);
    s->ledger = json_array();
    s->by_id = json_object();
    s->log = sim_delivery_log_new("dlv_stripe");
    if (!s->api_key || !s->webhook_secret || !s->ledger || !s->by_id || !s->refunds ||
        !s->refunds_by_id || !s->charges || !s->idem || !s->wh_secrets || !s->wh_schedule ||
        !s->log)
        sim_stripe_free(&s);
    return s;
}

void sim_stripe_free(sim_stripe_t **sp)
{
    sim_stripe_t *s = sp ? *sp : NULL;
    if (!s)
        return;
    sim_stripe_shutdown(s);
    if (s->has_worker)
        pthread_join(s->worker, NULL);
    sim_delivery_jobs_drop(s->log, s->queue, "not sent: the simulator stopped");
    sim_delivery_log_free(&s->log);
    json_decref(s->refunds);
    json_decref(s->refunds_by_id);
    json_decref(s->charges);
    json_decref(s->idem);
    json_decref(s->wh_secrets);
    json_decref(s->wh_schedule);
    free(s->wh_url);
    pthread_cond_destroy(&s->cv);
    json_decref(s->ledger);
    json_decref(s->by_id);
    free(s->api_key);
    free(s->webhook_secret);
    sim_rng_destroy(&s->rng);
    pthread_mutex_destroy(&s->mu);
    free(s);
    *sp = NULL;
}

void sim_stripe_reset(sim_stripe_t *s)
{
    pthread_mutex_lock(&s->mu);
    json_array_clear(s->ledger);
    json_object_clear(s->by_id);
    json_array_clear(s->refunds);
    json_object_clear(s->refunds_by_id);
    json_object_clear(s->charges);
    json_object_clear(s->idem);
    s->decline_next = s->error_next = s->hold_ms = 0;
    free(s->wh_url);
    s->wh_url = NULL;
    s->wh_twin = 0;
    json_array_clear(s->wh_secrets);
    s->generation++;
    sim_delivery_job_t *dropped = s->queue;
    s->queue = NULL;
    pthread_mutex_unlock(&s->mu);
    sim_delivery_jobs_drop(s->log, dropped, "not sent: the simulator was reset");
}

json_t *sim_stripe_payment_intents(sim_stripe_t *s)
{
    pthread_mutex_lock(&s->mu);
    json_t *copy = json_deep_copy(s->ledger);
    pthread_mutex_unlock(&s->mu);
    if (!copy)
        return NULL;
    return json_pack("{s:I,s:o}", "count", (json_int_t)json_array_size(copy), "payment_intents",
                     copy);
}

/* prefix + 24 random id characters, e.g. "pi_3QxY...". out holds 40 bytes. */
static void new_id(sim_stripe_t *s, const char *prefix, char out[40])
{
    size_t pl = strlen(prefix);
    memcpy(out, prefix, pl);
    sim_rng_chars(&s->rng, ID_ALPHABET, out + pl, ID_LEN);
}

/* ---- answers ---------------------------------------------------------------------- */

/* Stripe's error object; code and param are left out when NULL. */
static void answer_error(cm_http_resp_t *resp, int status, const char *type, const char *code,
                         const char *param, const char *message)
{
    /* The message may quote the request, so it goes through sim_http_str. */
    json_t *e = json_pack("{s:s,s:o}", "type", type, "message", sim_http_str(message));
    if (e && code)
        json_object_set_new(e, "code", json_string(code));
    if (e && param)
        json_object_set_new(e, "param", json_string(param));
    cm_http_resp_json(resp, status, e ? json_pack("{s:o}", "error", e) : NULL);
}

static void set_request_id(sim_stripe_t *s, cm_http_resp_t *resp, char id[40])
{
    char own[40];
    if (!id)
        id = own;
    memcpy(id, "req_", 4);
    sim_rng_chars(&s->rng, ID_ALPHABET, id + 4, 14);
    if (cm_http_resp_header(resp, "Request-Id", id) != CM_OK)
        CM_WARN(COMP, "could not add Request-Id");
}

static int authorised(sim_stripe_t *s, const cm_http_req_t *req, cm_http_resp_t *resp)
{
    if (sim_http_bearer_ok(req, s->api_key))
        return 1;
    const char *h = cm_http_req_header(req, "Authorization");
    if (cm_http_resp_header(resp, "WWW-Authenticate", "Bearer realm=\"Stripe\"") != CM_OK)
        CM_WARN(COMP, "could not add WWW-Authenticate");
    if (!h) {
        answer_error(resp, 401, "invalid_request_error", NULL, NULL,
                     "You did not provide an API key. You need to provide your API key in the "
                     "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                     "YOUR_SECRET_KEY').");
    } else {
        /* Stripe echoes a masked key; showing none of it is safer and still clear. */
        answer_error(resp, 401, "invalid_request_error", NULL, NULL, "Invalid API Key provided.");
    }
    return 0;
}

/* ---- POST /v1/payment_intents ----------------------------------------------------- */

static int parse_amount(const char *v, long long *out)
{
    if (!*v || strlen(v) > 12)
        return -1;
    for (const char *p = v; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    *out = strtoll(v, NULL, 10);
    return 0;
}

/* Checks the form; on failure answers and returns -1. */
static int validate_intent(const json_t *form, cm_http_resp_t *resp, long long *amount,
                           char currency[4])
{
    char msg[160];
    const json_t *a = json_object_get(form, "amount");
    const json_t *c = json_object_get(form, "currency");
    const json_t *m = json_object_get(form, "metadata");
    if (!a) {
        answer_error(resp, 400, "invalid_request_error", "parameter_missing", "amount",
                     "Missing required param: amount.");
        return -1;
    }
    if (!json_is_string(a) || parse_amount(json_string_value(a), amount) != 0) {
        snprintf(msg, sizeof msg, "Invalid integer: %.40s",
                 json_is_string(a) ? json_string_value(a) : "(a hash or array)");
        answer_error(resp, 400, "invalid_request_error", "parameter_invalid_integer", "amount",
                     msg);
        return -1;
    }
    if (*amount < 1 || *amount > MAX_AMOUNT) {
        answer_error(resp, 400, "invalid_request_error",
                     *amount < 1 ? "amount_too_small" : "amount_too_large", "amount",
                     "Amount must be between 1 and 99999999 (in the currency's smallest unit).");
        return -1;
    }
    if (!c) {
        answer_error(resp, 400, "invalid_request_error", "parameter_missing", "currency",
                     "Missing required param: currency.");
        return -1;
    }
    const char *cv = json_is_string(c) ? json_string_value(c) : "";
    if (strlen(cv) != 3 || !isalpha((unsigned char)cv[0]) || !isalpha((unsigned char)cv[1]) ||
        !isalpha((unsigned char)cv[2])) {
        snprintf(msg, sizeof msg, "Invalid currency: %.40s. Use a three-letter ISO code.", cv);
        answer_error(resp, 400, "invalid_request_error", "parameter_invalid_string", "currency",
                     msg);
        return -1;
    }
    for (int i = 0; i < 3; i++)
        currency[i] = (char)tolower((unsigned char)cv[i]);
    currency[3] = '\0';
    /* "metadata=" (an empty string) is how Stripe clients say "no metadata". */
    if (m && !json_is_object(m) && !(json_is_string(m) && !*json_string_value(m))) {
        answer_error(resp, 400, "invalid_request_error", "parameter_invalid_string", "metadata",
                     "Invalid hash: metadata must be a set of key[value] pairs.");
        return -1;
    }
    if (json_is_object(m)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)m, k, v)
        {
            if (!json_is_string(v)) {
                answer_error(resp, 400, "invalid_request_error", "parameter_invalid_string",
                             "metadata", "Invalid metadata: values must be strings.");
                return -1;
            }
        }
    }
    return 0;
}

static json_t *opt_string(const json_t *form, const char *name)
{
    const json_t *v = json_object_get(form, name);
    return json_is_string(v) && *json_string_value(v) ? json_copy((json_t *)v) : json_null();
}

/* ---- state changes (all under the lock) --------------------------------------------- */

typedef struct {
    sim_stripe_t *s;
    const cm_http_req_t *req;
    cm_http_resp_t *resp;
    json_t *form;
    const char *idem_key;
    char request_id[40];
    int executed; /* execution began: the answer is stored under the idempotency key */
} op_t;

static const char *test_card_decline(const char *pm, const char **code)
{
    static const struct {
        const char *pm, *decline, *code;
    } cards[] = {
        {"pm_card_chargeDeclined", "generic_decline", "card_declined"},
        {"pm_card_visa_chargeDeclined", "generic_decline", "card_declined"},
        {"pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds", "card_declined"},
        {"pm_card_visa_chargeDeclinedInsufficientFunds", "insufficient_funds", "card_declined"},
        {"pm_card_chargeDeclinedFraudulent", "fraudulent", "card_declined"},
        {"pm_card_chargeDeclinedLostCard", "lost_card", "card_declined"},
        {"pm_card_chargeDeclinedStolenCard", "stolen_card", "card_declined"},
        {"pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"},
        {"pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc", "incorrect_cvc"},
        {"pm_card_chargeDeclinedProcessingError", "processing_error", "processing_error"},
    };
    for (size_t i = 0; pm && i < sizeof cards / sizeof cards[0]; i++) {
        if (strcmp(pm, cards[i].pm) == 0) {
            *code = cards[i].code;
            return cards[i].decline;
        }
    }
    return NULL;
}

static const char *decline_message(const char *decline)
{
    if (strcmp(decline, "insufficient_funds") == 0)
        return "Your card has insufficient funds.";
    if (strcmp(decline, "expired_card") == 0)
        return "Your card has expired.";
    if (strcmp(decline, "incorrect_cvc") == 0)
        return "Your card's security code is incorrect.";
    if (strcmp(decline, "processing_error") == 0)
        return "An error occurred while processing your card. Try again in a little bit.";
    return "Your card was declined.";
}

static void queue_event(sim_stripe_t *s, const op_t *o, const char *type, const json_t *object);

static void effect(sim_stripe_t *s, const op_t *o, const char *kind, const char *id, json_t *detail)
{
    sim_journal_effect(s->journal, "stripe", kind, id, o ? o->idem_key : NULL,
                       o ? o->request_id : NULL, detail);
    json_decref(detail);
}

/* Confirms pi with payment method pm: declines (402) or succeeds / waits for capture.
 * Answers into o->resp (a copy of the intent, or the card error). Under the lock. */
static void charge_intent(sim_stripe_t *s, op_t *o, json_t *pi, const char *pm)
{
    const char *code = "card_declined";
    const char *decline = test_card_decline(pm, &code);
    if (!decline && s->decline_next != 0) {
        decline = s->decline_code;
        code = strcmp(decline, "expired_card") == 0 ? "expired_card" : "card_declined";
        if (s->decline_next > 0)
            s->decline_next--;
    }
    char charge[40];
    new_id(s, "ch_", charge);
    json_object_set_new(pi, "payment_method", json_string(pm));
    if (decline) {
        json_t *lpe =
            json_pack("{s:s,s:s,s:s,s:s,s:s}", "type", "card_error", "code", code, "decline_code",
                      decline, "message", decline_message(decline), "charge", charge);
        json_object_set_new(pi, "status", json_string("requires_payment_method"));
        json_object_set_new(pi, "last_payment_error", lpe);
        json_object_set_new(pi, "latest_charge", json_string(charge));
        json_t *e = json_pack(
            "{s:s,s:s,s:s,s:s,s:s,s:s,s:O}", "type", "card_error", "code", code, "decline_code",
            decline, "message", decline_message(decline), "charge", charge, "doc_url",
            "https://stripe.com/docs/error-codes/card-declined", "payment_intent", pi);
        cm_http_resp_json(o->resp, 402, e ? json_pack("{s:o}", "error", e) : NULL);
        (void)cm_http_resp_header(o->resp, "Stripe-Should-Retry", "false");
        queue_event(s, o, "payment_intent.payment_failed", pi);
        CM_INFO(COMP, "payment_intent %s declined (%s)", cm_json_str(pi, "id", ""), decline);
        return;
    }
    int manual = strcmp(cm_json_str(pi, "capture_method", "automatic"), "manual") == 0;
    json_int_t amount = json_integer_value(json_object_get(pi, "amount"));
    json_object_set_new(pi, "status", json_string(manual ? "requires_capture" : "succeeded"));
    json_object_set_new(pi, "amount_capturable", json_integer(manual ? amount : 0));
    json_object_set_new(pi, "amount_received", json_integer(manual ? 0 : amount));
    json_object_set_new(pi, "latest_charge", json_string(charge));
    json_object_set_new(pi, "last_payment_error", json_null());
    json_object_set_new(s->charges, charge,
                        json_pack("{s:O,s:I,s:I,s:O}", "payment_intent", json_object_get(pi, "id"),
                                  "amount", amount, "amount_refunded", (json_int_t)0, "currency",
                                  json_object_get(pi, "currency")));
    if (manual) {
        queue_event(s, o, "payment_intent.amount_capturable_updated", pi);
    } else {
        effect(s, o, "charge", cm_json_str(pi, "id", ""),
               json_pack("{s:I,s:s,s:s}", "amount", amount, "currency",
                         cm_json_str(pi, "currency", ""), "charge", charge));
        queue_event(s, o, "payment_intent.succeeded", pi);
    }
    cm_http_resp_json(o->resp, 200, json_deep_copy(pi));
}

static json_t *new_intent(sim_stripe_t *s, const json_t *form, long long amount,
                          const char *currency)
{
    char id[40], secret_tail[40], client_secret[96];
    new_id(s, "pi_", id);
    new_id(s, "", secret_tail);
    snprintf(client_secret, sizeof client_secret, "%s_secret_%s", id, secret_tail);
    const json_t *m = json_object_get(form, "metadata");
    const json_t *pmt = json_object_get(form, "payment_method_types");
    json_t *pmv = opt_string(form, "payment_method");
    return json_pack(
        "{s:s,s:s,s:I,s:I,s:I,s:s,s:n,s:n,s:s,s:s,s:I,s:s,s:o,s:o,s:n,s:n,s:b,s:o,s:o,s:o,s:s}",
        "id", id, "object", "payment_intent", "amount", (json_int_t)amount, "amount_capturable",
        (json_int_t)0, "amount_received", (json_int_t)0, "capture_method",
        cm_json_str(form, "capture_method", "automatic"), "canceled_at", "cancellation_reason",
        "client_secret", client_secret, "confirmation_method", "automatic", "created",
        (json_int_t)cm_clock_now_s(), "currency", currency, "customer",
        opt_string(form, "customer"), "description", opt_string(form, "description"),
        "last_payment_error", "latest_charge", "livemode", 0, "metadata",
        json_is_object(m) ? json_deep_copy(m) : json_object(), "payment_method", pmv,
        "payment_method_types", json_is_array(pmt) ? json_deep_copy(pmt) : json_pack("[s]", "card"),
        "status", json_is_null(pmv) ? "requires_payment_method" : "requires_confirmation");
}

static void op_create(op_t *o)
{
    sim_stripe_t *s = o->s;
    long long amount;
    char currency[4];
    if (validate_intent(o->form, o->resp, &amount, currency) != 0)
        return;
    const char *cap = cm_json_str(o->form, "capture_method", "automatic");
    if (strcmp(cap, "automatic") && strcmp(cap, "manual") && strcmp(cap, "automatic_async")) {
        answer_error(o->resp, 400, "invalid_request_error", "parameter_invalid_string",
                     "capture_method", "Invalid capture_method: must be automatic or manual.");
        return;
    }
    /* confirm defaults to true here (the simulator's documented shortcut): an intent
     * created without confirm=false is charged at once, with a test card that succeeds. */
    const char *confirm = cm_json_str(o->form, "confirm", "true");
    int do_confirm = strcmp(confirm, "false") != 0;
    pthread_mutex_lock(&s->mu);
    o->executed = 1;
    json_t *pi = new_intent(s, o->form, amount, currency);
    if (!pi || json_array_append(s->ledger, pi) ||
        json_object_set(s->by_id, cm_json_str(pi, "id", ""), pi)) {
        answer_error(o->resp, 500, "api_error", NULL, NULL, "The simulator ran out of memory.");
    } else if (do_confirm) {
        const char *pm = cm_json_str(pi, "payment_method", NULL);
        char gen[40];
        if (!pm) {
            new_id(s, "pm_", gen);
            pm = gen;
        }
        charge_intent(s, o, pi, pm);
    } else {
        cm_http_resp_json(o->resp, 200, json_deep_copy(pi));
    }
    pthread_mutex_unlock(&s->mu);
    json_decref(pi);
}

static void answer_missing(cm_http_resp_t *resp, const char *what, const char *id,
                           const char *param)
{
    char msg[200];
    snprintf(msg, sizeof msg, "No such %s: '%.100s'", what, id);
    answer_error(resp, 404, "invalid_request_error", "resource_missing", param, msg);
}

static void answer_state(cm_http_resp_t *resp, const json_t *pi, const char *action,
                         const char *allowed)
{
    char msg[300];
    snprintf(msg, sizeof msg,
             "You cannot %s this PaymentIntent because it has a status of %s. Only a "
             "PaymentIntent with one of the following statuses may be %s: %s.",
             action, cm_json_str(pi, "status", "?"),
             strcmp(action, "confirm") == 0   ? "confirmed"
             : strcmp(action, "capture") == 0 ? "captured"
                                              : "canceled",
             allowed);
    answer_error(resp, 400, "invalid_request_error", "payment_intent_unexpected_state", NULL, msg);
}

static void op_confirm(op_t *o)
{
    sim_stripe_t *s = o->s;
    const char *id = cm_http_req_param(o->req, "id");
    pthread_mutex_lock(&s->mu);
    json_t *pi = json_object_get(s->by_id, id);
    const char *st = pi ? cm_json_str(pi, "status", "") : "";
    const char *pm = cm_json_str(o->form, "payment_method", NULL);
    if (!pi) {
        answer_missing(o->resp, "payment_intent", id, "intent");
    } else if (strcmp(st, "requires_payment_method") && strcmp(st, "requires_confirmation")) {
        answer_state(o->resp, pi, "confirm", "requires_payment_method, requires_confirmation");
    } else if (!pm && !cm_json_str(pi, "payment_method", NULL)) {
        answer_error(o->resp, 400, "invalid_request_error", "payment_intent_unexpected_state",
                     "payment_method",
                     "You cannot confirm this PaymentIntent because it's missing a payment "
                     "method.");
    } else {
        o->executed = 1;
        char keep[128];
        snprintf(keep, sizeof keep, "%s", pm ? pm : cm_json_str(pi, "payment_method", ""));
        charge_intent(s, o, pi, keep);
    }
    pthread_mutex_unlock(&s->mu);
}

static void op_capture(op_t *o)
{
    sim_stripe_t *s = o->s;
    const char *id = cm_http_req_param(o->req, "id");
    pthread_mutex_lock(&s->mu);
    json_t *pi = json_object_get(s->by_id, id);
    json_int_t cap = pi ? json_integer_value(json_object_get(pi, "amount_capturable")) : 0;
    const char *atc = cm_json_str(o->form, "amount_to_capture", NULL);
    long long amount = cap;
    if (!pi) {
        answer_missing(o->resp, "payment_intent", id, "intent");
    } else if (strcmp(cm_json_str(pi, "status", ""), "requires_capture") != 0) {
        answer_state(o->resp, pi, "capture", "requires_capture");
    } else if (atc && (parse_amount(atc, &amount) != 0 || amount < 1 || amount > cap)) {
        answer_error(o->resp, 400, "invalid_request_error", "amount_too_large", "amount_to_capture",
                     "The amount to capture must be a positive integer no larger than "
                     "amount_capturable.");
    } else {
        o->executed = 1;
        json_object_set_new(pi, "status", json_string("succeeded"));
        json_object_set_new(pi, "amount_capturable", json_integer(0));
        json_object_set_new(pi, "amount_received", json_integer(amount));
        json_t *ch = json_object_get(s->charges, cm_json_str(pi, "latest_charge", ""));
        if (ch)
            json_object_set_new(ch, "amount", json_integer(amount));
        effect(s, o, "charge", id,
               json_pack("{s:I,s:s,s:s,s:b}", "amount", (json_int_t)amount, "currency",
                         cm_json_str(pi, "currency", ""), "charge",
                         cm_json_str(pi, "latest_charge", ""), "captured", 1));
        queue_event(s, o, "payment_intent.succeeded", pi);
        cm_http_resp_json(o->resp, 200, json_deep_copy(pi));
    }
    pthread_mutex_unlock(&s->mu);
}

static void op_cancel(op_t *o)
{
    sim_stripe_t *s = o->s;
    const char *id = cm_http_req_param(o->req, "id");
    const char *reason = cm_json_str(o->form, "cancellation_reason", NULL);
    pthread_mutex_lock(&s->mu);
    json_t *pi = json_object_get(s->by_id, id);
    const char *st = pi ? cm_json_str(pi, "status", "") : "";
    if (!pi) {
        answer_missing(o->resp, "payment_intent", id, "intent");
    } else if (strcmp(st, "requires_payment_method") && strcmp(st, "requires_confirmation") &&
               strcmp(st, "requires_capture") && strcmp(st, "requires_action")) {
        answer_state(o->resp, pi, "cancel",
                     "requires_payment_method, requires_capture, requires_confirmation, "
                     "requires_action, processing");
    } else {
        o->executed = 1;
        json_object_set_new(pi, "status", json_string("canceled"));
        json_object_set_new(pi, "amount_capturable", json_integer(0));
        json_object_set_new(pi, "canceled_at", json_integer(cm_clock_now_s()));
        json_object_set_new(pi, "cancellation_reason", reason ? json_string(reason) : json_null());
        effect(s, o, "cancellation", id, NULL);
        queue_event(s, o, "payment_intent.canceled", pi);
        cm_http_resp_json(o->resp, 200, json_deep_copy(pi));
    }
    pthread_mutex_unlock(&s->mu);
}

static void op_refund(op_t *o)
{
    sim_stripe_t *s = o->s;
    const char *pi_id = cm_json_str(o->form, "payment_intent", NULL);
    const char *ch_id = cm_json_str(o->form, "charge", NULL);
    const char *amt = cm_json_str(o->form, "amount", NULL);
    const char *reason = cm_json_str(o->form, "reason", NULL);
    const json_t *meta = json_object_get(o->form, "metadata");
    long long amount = 0;
    char msg[200];
    if (!pi_id && !ch_id) {
        answer_error(o->resp, 400, "invalid_request_error", "parameter_missing", "payment_intent",
                     "One of the following params should be provided for this request: "
                     "payment_intent or charge.");
        return;
    }
    if (amt && (parse_amount(amt, &amount) != 0 || amount < 1)) {
        answer_error(o->resp, 400, "invalid_request_error", "parameter_invalid_integer", "amount",
                     "Invalid positive integer");
        return;
    }
    if (reason && strcmp(reason, "duplicate") && strcmp(reason, "fraudulent") &&
        strcmp(reason, "requested_by_customer")) {
        answer_error(o->resp, 400, "invalid_request_error", "parameter_invalid_string", "reason",
                     "Invalid reason: must be one of duplicate, fraudulent, or "
                     "requested_by_customer");
        return;
    }
    pthread_mutex_lock(&s->mu);
    json_t *pi = pi_id ? json_object_get(s->by_id, pi_id) : NULL;
    if (!pi_id && ch_id && json_object_get(s->charges, ch_id))
        pi = json_object_get(s->by_id,
                             cm_json_str(json_object_get(s->charges, ch_id), "payment_intent", ""));
    const char *charge = pi ? cm_json_str(pi, "latest_charge", NULL) : NULL;
    json_t *ch = charge ? json_object_get(s->charges, charge) : NULL;
    json_int_t paid = ch ? json_integer_value(json_object_get(ch, "amount")) : 0;
    json_int_t done = ch ? json_integer_value(json_object_get(ch, "amount_refunded")) : 0;
    if (!pi) {
        answer_missing(o->resp, pi_id ? "payment_intent" : "charge", pi_id ? pi_id : ch_id,
                       pi_id ? "payment_intent" : "charge");
    } else if (strcmp(cm_json_str(pi, "status", ""), "succeeded") != 0 || !ch) {
        snprintf(msg, sizeof msg,
                 "This PaymentIntent (%.60s) does not have a successful charge to refund.",
                 cm_json_str(pi, "id", ""));
        answer_error(o->resp, 400, "invalid_request_error", "charge_not_refundable", NULL, msg);
    } else if (done >= paid) {
        snprintf(msg, sizeof msg, "Charge %.60s has already been refunded.", charge);
        answer_error(o->resp, 400, "invalid_request_error", "charge_already_refunded", NULL, msg);
    } else if (amt && amount > paid - done) {
        snprintf(msg, sizeof msg,
                 "Refund amount (%lld) is greater than unrefunded amount on charge (%lld)", amount,
                 (long long)(paid - done));
        answer_error(o->resp, 400, "invalid_request_error", "amount_too_large", "amount", msg);
    } else {
        o->executed = 1;
        if (!amt)
            amount = paid - done;
        char id[40];
        new_id(s, "re_", id);
        json_t *re =
            json_pack("{s:s,s:s,s:I,s:s,s:I,s:s,s:o,s:s,s:o,s:s}", "id", id, "object", "refund",
                      "amount", (json_int_t)amount, "charge", charge, "created",
                      (json_int_t)cm_clock_now_s(), "currency", cm_json_str(pi, "currency", ""),
                      "metadata", json_is_object(meta) ? json_deep_copy(meta) : json_object(),
                      "payment_intent", cm_json_str(pi, "id", ""), "reason",
                      reason ? json_string(reason) : json_null(), "status", "succeeded");
        json_object_set_new(ch, "amount_refunded", json_integer(done + amount));
        if (re && !json_array_append(s->refunds, re) &&
            !json_object_set(s->refunds_by_id, id, re)) {
            effect(s, o, "refund", id,
                   json_pack("{s:s,s:s,s:I}", "payment_intent", cm_json_str(pi, "id", ""), "charge",
                             charge, "amount", (json_int_t)amount));
            json_t *cho = json_pack("{s:s,s:s,s:I,s:I,s:s,s:s,s:b,s:b,s:s}", "id", charge, "object",
                                    "charge", "amount", paid, "amount_refunded", done + amount,
                                    "currency", cm_json_str(pi, "currency", ""), "payment_intent",
                                    cm_json_str(pi, "id", ""), "refunded", done + amount >= paid,
                                    "captured", 1, "status", "succeeded");
            queue_event(s, o, "charge.refunded", cho);
            json_decref(cho);
            cm_http_resp_json(o->resp, 200, json_deep_copy(re));
        } else {
            answer_error(o->resp, 500, "api_error", NULL, NULL, "The simulator ran out of memory.");
        }
        json_decref(re);
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- the POST pipeline: auth, form, idempotency ------------------------------------- */

static void digest_of(const cm_http_req_t *req, char out[65])
{
    uint8_t d[CM_SHA256_LEN];
    cm_part_t parts[2] = {{req->path, strlen(req->path)}, {req->body, req->body_len}};
    /* A keyed hash is not needed; HMAC with an empty-ish key is just a convenient
     * multi-part SHA-256 here. */
    cm_hmac_sha256("idem", 4, parts, 2, d);
    cm_hex_encode(d, sizeof d, out);
}

#define IDEM_TTL_MS (24LL * 3600 * 1000)

typedef void (*op_fn)(op_t *o);

static void run_post(sim_stripe_t *s, const cm_http_req_t *req, cm_http_resp_t *resp, op_fn fn)
{
    char err[CM_ERR_LEN], digest[65];
    op_t o = {.s = s, .req = req, .resp = resp};
    set_request_id(s, resp, o.request_id);
    if (!authorised(s, req, resp))
        return;
    if (sim_form_decode(req->body, req->body_len, &o.form, err) != CM_OK) {
        char msg[CM_ERR_LEN + 32];
        snprintf(msg, sizeof msg, "Invalid request body: %s", err);
        answer_error(resp, 400, "invalid_request_error", NULL, NULL, msg);
        return;
    }
    o.idem_key = cm_http_req_header(req, "Idempotency-Key");
    if (o.idem_key && (!*o.idem_key || strlen(o.idem_key) > 255)) {
        answer_error(resp, 400, "invalid_request_error", NULL, NULL,
                     "Idempotency-Key must be between 1 and 255 characters long.");
        json_decref(o.form);
        return;
    }
    if (o.idem_key) {
        digest_of(req, digest);
        int64_t now = cm_clock_now_ms();
        pthread_mutex_lock(&s->mu);
        json_t *e = json_object_get(s->idem, o.idem_key);
        if (e && now - cm_json_int(e, "at_ms", 0) > IDEM_TTL_MS &&
            !cm_json_bool(e, "in_flight", 0)) {
            json_object_del(s->idem, o.idem_key); /* expired after 24 h */
            e = NULL;
        }
        json_t *stored = NULL;
        int state = 0; /* 0 new, 1 in flight, 2 other params, 3 replay */
        if (e && cm_json_bool(e, "in_flight", 0))
            state = 1;
        else if (e && strcmp(cm_json_str(e, "digest", ""), digest) != 0)
            state = 2;
        else if (e)
            state = 3, stored = json_deep_copy(e);
        else
            json_object_set_new(s->idem, o.idem_key,
                                json_pack("{s:s,s:b,s:I}", "digest", digest, "in_flight", 1,
                                          "at_ms", (json_int_t)now));
        pthread_mutex_unlock(&s->mu);
        if (state == 1) {
            answer_error(resp, 409, "idempotency_error", "idempotency_key_in_use", NULL,
                         "There is currently another in-progress request using this Stripe API "
                         "key and idempotency key. Please try again later.");
            (void)cm_http_resp_header(resp, "Stripe-Should-Retry", "true");
        } else if (state == 2) {
            char msg[600];
            snprintf(msg, sizeof msg,
                     "Keys for idempotent requests can only be used with the same parameters "
                     "they were first used with. Try using a key other than '%.255s' if you "
                     "meant to execute a different request.",
                     o.idem_key);
            answer_error(resp, 400, "idempotency_error", NULL, NULL, msg);
        } else if (state == 3) {
            cm_http_resp_text(resp, (int)cm_json_int(stored, "status", 500), "application/json",
                              cm_json_str(stored, "body", ""));
            (void)cm_http_resp_header(resp, "Request-Id", cm_json_str(stored, "request_id", ""));
            (void)cm_http_resp_header(resp, "Idempotent-Replayed", "true");
            if (cm_json_str(stored, "should_retry", NULL))
                (void)cm_http_resp_header(resp, "Stripe-Should-Retry",
                                          cm_json_str(stored, "should_retry", ""));
        }
        json_decref(stored);
        if (state) {
            json_decref(o.form);
            return;
        }
    }
    /* An execution error after the work began, stored like any result (error_next). */
    pthread_mutex_lock(&s->mu);
    int fail = s->error_next > 0;
    if (fail)
        s->error_next--;
    int64_t hold = s->hold_ms;
    pthread_mutex_unlock(&s->mu);
    if (hold > 0)
        cm_clock_sleep_ms(hold); /* the simulated slowness itself */
    if (fail) {
        o.executed = 1;
        answer_error(resp, 500, "api_error", NULL, NULL,
                     "An unknown error occurred while processing the request (simulated).");
        (void)cm_http_resp_header(resp, "Stripe-Should-Retry", "true");
    } else {
        fn(&o);
    }
    if (o.idem_key) {
        pthread_mutex_lock(&s->mu);
        if (o.executed && resp->status != 429) {
            const char *name, *value, *retry = NULL;
            for (size_t i = 0; cm_http_resp_header_at(resp, i, &name, &value); i++)
                if (strcasecmp(name, "Stripe-Should-Retry") == 0)
                    retry = value;
            json_t *e = json_pack("{s:s,s:b,s:I,s:i,s:s%,s:s}", "digest", digest, "in_flight", 0,
                                  "at_ms", (json_int_t)cm_clock_now_ms(), "status", resp->status,
                                  "body", resp->body.data ? resp->body.data : "", resp->body.len,
                                  "request_id", o.request_id);
            if (e && retry)
                json_object_set_new(e, "should_retry", json_string(retry));
            if (!e || json_object_set_new(s->idem, o.idem_key, e))
                json_object_del(s->idem, o.idem_key);
        } else {
            /* Validation failures and 429s are not stored: a retry runs afresh. */
            json_object_del(s->idem, o.idem_key);
        }
        pthread_mutex_unlock(&s->mu);
    }
    json_decref(o.form);
}

static void h_create(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    run_post(ud, req, resp, op_create);
}

static void h_confirm(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    run_post(ud, req, resp, op_confirm);
}

static void h_capture(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    run_post(ud, req, resp, op_capture);
}

static void h_cancel(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    run_post(ud, req, resp, op_cancel);
}

static void h_refund(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    run_post(ud, req, resp, op_refund);
}

/* ---- GET /v1/payment_intents/{id}, /v1/refunds/{id} ----------------------------------- */

static void get_one(sim_stripe_t *s, const cm_http_req_t *req, cm_http_resp_t *resp, json_t *map,
                    const char *what, const char *param)
{
    const char *id = cm_http_req_param(req, "id");
    set_request_id(s, resp, NULL);
    if (!authorised(s, req, resp))
        return;
    pthread_mutex_lock(&s->mu);
    json_t *v = json_object_get(map, id);
    json_t *copy = v ? json_deep_copy(v) : NULL;
    pthread_mutex_unlock(&s->mu);
    if (!v)
        answer_missing(resp, what, id, param);
    else
        cm_http_resp_json(resp, 200, copy);
}

static void h_get(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_stripe_t *s = ud;
    get_one(s, req, resp, s->by_id, "payment_intent", "intent");
}

static void h_get_refund(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_stripe_t *s = ud;
    get_one(s, req, resp, s->refunds_by_id, "refund", "refund");
}

cm_err_t sim_stripe_routes(sim_stripe_t *s, cm_http_server_t *srv)
{
    static const struct {
        const char *pattern;
        cm_http_handler_fn fn;
    } routes[] = {
        {"POST /v1/payment_intents", h_create},
        {"GET /v1/payment_intents/{id}", h_get},
        {"POST /v1/payment_intents/{id}/confirm", h_confirm},
        {"POST /v1/payment_intents/{id}/capture", h_capture},
        {"POST /v1/payment_intents/{id}/cancel", h_cancel},
        {"POST /v1/refunds", h_refund},
        {"GET /v1/refunds/{id}", h_get_refund},
    };
    cm_err_t rc = CM_OK;
    for (size_t i = 0; !rc && i < sizeof routes / sizeof routes[0]; i++)
        rc = cm_http_server_route(srv, routes[i].pattern, routes[i].fn, s);
    return rc;
}

json_t *sim_stripe_refunds(sim_stripe_t *s)
{
    pthread_mutex_lock(&s->mu);
    json_t *copy = json_deep_copy(s->refunds);
    pthread_mutex_unlock(&s->mu);
    return copy
               ? json_pack("{s:I,s:o}", "count", (json_int_t)json_array_size(copy), "refunds", copy)
               : NULL;
}

cm_err_t sim_stripe_settings(sim_stripe_t *s, int64_t decline_next, const char *decline_code,
                             int64_t error_next, char *err)
{
    /* Counts of coming requests: more than a run makes is a mistake. */
    if (decline_next < -1 || decline_next > SIM_STRIPE_MAX_NEXT) {
        cm_errf(err, "decline_next must be between -1 (always) and %d", SIM_STRIPE_MAX_NEXT);
        return CM_EINVAL;
    }
    if (error_next < 0 || error_next > SIM_STRIPE_MAX_NEXT) {
        cm_errf(err, "error_next must be between 0 and %d", SIM_STRIPE_MAX_NEXT);
        return CM_EINVAL;
    }
    if (decline_code && (!*decline_code || strlen(decline_code) >= 48)) {
        cm_errf(err, "decline_code must be a non-empty string of at most 47 bytes");
        return CM_EINVAL;
    }
    pthread_mutex_lock(&s->mu);
    s->decline_next = decline_next;
    s->error_next = error_next;
    if (decline_code)
        snprintf(s->decline_code, sizeof s->decline_code, "%s", decline_code);
    pthread_mutex_unlock(&s->mu);
    return CM_OK;
}

/* ---- events and their delivery -------------------------------------------------------- */

/* Queues body (taken) for delivery now and returns the job, which the caller may still
 * fill in until it lets go of the lock. NULL when out of memory (body is freed). Under
 * the lock. */
static sim_delivery_job_t *enqueue(sim_stripe_t *s, const char *event_id, const char *type,
                                   char *body)
{
    sim_delivery_job_t *p = sim_delivery_job_new(type, event_id, body);
    if (!p) {
        CM_WARN(COMP, "out of memory: event %s not delivered", event_id);
        return NULL;
    }
    p->generation = s->generation;
    sim_delivery_jobs_append(&s->queue, p);
    pthread_cond_broadcast(&s->cv);
    return p;
}

/* A new event as Stripe sends it, with data.object object itself (not a copy: serialise
 * the event before object changes); request_id and idem_key may be NULL. NULL when out of
 * memory. */
static json_t *new_event(const char *id, const char *type, int64_t created, const json_t *object,
                         const char *request_id, const char *idem_key)
{
    return json_pack("{s:s,s:s,s:s,s:I,s:s,s:{s:o,s:{}},s:b,s:i,s:{s:o,s:o}}", "id", id, "object",
                     "event", "api_version", API_VERSION, "created", (json_int_t)created, "type",
                     type, "data", "object", json_incref((json_t *)object), "previous_attributes",
                     "livemode", 0, "pending_webhooks", 1, "request", "id",
                     request_id ? json_string(request_id) : json_null(), "idempotency_key",
                     idem_key ? sim_http_str(idem_key) : json_null());
}

/* Builds the event (and its twin when asked) and queues it for delivery. Under the lock;
 * nothing is queued when no webhook URL is set (there is no endpoint to deliver to). */
static void queue_event(sim_stripe_t *s, const op_t *o, const char *type, const json_t *object)
{
    if (!s->wh_url)
        return;
    for (int copy = 0; copy < 1 + (s->wh_twin ? 1 : 0); copy++) {
        char id[40];
        new_id(s, "evt_", id);
        json_t *ev =
            new_event(id, type, cm_clock_now_s(), object,
                      o && o->request_id[0] ? o->request_id : NULL, o ? o->idem_key : NULL);
        char *body = ev ? cm_json_dumps(ev) : NULL;
        json_decref(ev);
        (void)enqueue(s, id, type, body);
    }
}

/* Waits on cv until due (monotonic ms) or a signal. Under the lock. */
static void wait_until(sim_stripe_t *s, int64_t due)
{
    int64_t ms = due - cm_clock_mono_ms();
    struct timespec ts = cm_clock_mono_deadline(ms);
    (void)pthread_cond_timedwait(&s->cv, &s->mu, &ts);
}

/* Makes the next attempt of p to a->url: signed now (a fresh t= on every attempt, shifted by
 * the event's offset), with one v1 per secret while one rolls, or with a secret nobody
 * configured for a forged event. */
static void attempt(sim_stripe_t *s, cm_http_client_t *c, const sim_delivery_job_t *p,
                    json_t *secrets, int64_t timeout_ms, sim_attempt_t *a)
{
    const char *keys[4];
    size_t nk = 0;
    keys[nk++] = p->forge ? FORGED_SECRET : s->webhook_secret;
    for (size_t i = 0; !p->forge && i < json_array_size(secrets) && nk < 4; i++)
        keys[nk++] = json_string_value(json_array_get(secrets, i));
    size_t len = p->len;
    /* The offset was checked at the trigger not to reach before 1970. */
    int64_t t = (cm_clock_now_ms() + p->ts_offset_ms) / 1000;
    if (cm_sig_stripe_sign(keys, nk, p->body, len, t, a->sig) != CM_OK)
        a->sig[0] = '\0';
    const char *headers[] = {"Content-Type: application/json; charset=utf-8",
                             "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)", NULL};
    sim_delivery_send(c,
                      &(sim_delivery_req_t){.provider = "stripe",
                                            .sig_header = "Stripe-Signature",
                                            .headers = headers,
                                            .body = p->body,
                                            .len = len,
                                            .timeout_ms = timeout_ms,
                                            .abort = &s->stopping,
                                            .journal = s->journal,
                                            .delivery_id = sim_delivery_job_id(p),
                                            .event = p->event,
                                            .attempt = (int)p->attempt + 1},
                      a);
}

/* The delivery worker: takes the earliest due delivery, tries it, and puts it back with
 * the next delay of the schedule when it failed (non-2xx, timeout, no connection). */
static void *worker(void *arg)
{
    sim_stripe_t *s = arg;
    cm_http_client_t *c = cm_http_client_new();
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        sim_delivery_job_t **best = NULL;
        for (sim_delivery_job_t **pp = &s->queue; *pp; pp = &(*pp)->next)
            if (!best || (*pp)->due_mono_ms < (*best)->due_mono_ms)
                best = pp;
        if (!best) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        if ((*best)->due_mono_ms > cm_clock_mono_ms()) {
            wait_until(s, (*best)->due_mono_ms);
            continue;
        }
        sim_delivery_job_t *p = *best;
        *best = p->next;
        p->next = NULL;
        sim_attempt_t a = {.url = s->wh_url ? strdup(s->wh_url) : NULL};
        json_t *secrets = json_deep_copy(s->wh_secrets);
        int64_t timeout = s->wh_timeout_ms;
        pthread_mutex_unlock(&s->mu);
        if (a.url && c)
            attempt(s, c, p, secrets, timeout, &a);
        else
            snprintf(a.err, sizeof a.err, "not sent: out of memory");
        json_decref(secrets);
        pthread_mutex_lock(&s->mu);
        p->attempt++;
        size_t nsched = json_array_size(s->wh_schedule);
        int failed = a.status < 200 || a.status >= 300;
        /* A reset while this attempt was in flight ends the delivery: its retries belong
         * to the scenario before and must not reach the webhook URL set after it. */
        int retry =
            failed && p->attempt <= nsched && !s->stopping && p->generation == s->generation;
        sim_delivery_log_attempt(s->log, &p->report, &a, retry);
        free(a.url);
        if (retry) {
            p->due_mono_ms = cm_clock_mono_ms() +
                             json_integer_value(json_array_get(s->wh_schedule, p->attempt - 1));
            p->next = s->queue;
            s->queue = p;
        } else {
            if (failed)
                CM_INFO(COMP, "event %s given up after %u attempts", p->id, p->attempt);
            sim_delivery_job_free(p);
        }
    }
    pthread_mutex_unlock(&s->mu);
    cm_http_client_free(&c);
    return NULL;
}

cm_err_t sim_stripe_set_webhook(sim_stripe_t *s, const json_t *cfg, char *err)
{
    static const sim_setting_t retry_schedule = {"retry_schedule", 0,
                                                 SIM_STRIPE_MAX_RETRY_DELAY_MS};
    static const sim_setting_t timeout = {"timeout", 1, SIM_TIMEOUT_MAX_MS};
    /* The control route answers 204, without a body for notes: the log alone tells. */
    static const sim_setting_warn_t w = {COMP, NULL};
    const char *url = cm_json_str(cfg, "url", NULL);
    const json_t *sec = json_object_get(cfg, "extra_secrets");
    const json_t *twin = json_object_get(cfg, "twin");
    int64_t sched_ms[SIM_STRIPE_MAX_RETRIES], tmo_ms = 0;
    size_t nsched = 0;
    if (!url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) || strlen(url) > 2048) {
        cm_errf(err, "url must be an http:// or https:// URL of at most 2048 bytes");
        return CM_EINVAL;
    }
    if (sec && (!json_is_array(sec) || json_array_size(sec) > 3)) {
        cm_errf(err, "extra_secrets must be an array of at most 3 secrets");
        return CM_EINVAL;
    }
    for (size_t i = 0; sec && i < json_array_size(sec); i++) {
        const char *v = json_string_value(json_array_get(sec, i));
        if (!v || !*v) {
            cm_errf(err, "extra_secrets[%zu] must be a non-empty string", i);
            return CM_EINVAL;
        }
    }
    int has_sched = sim_setting_durations(cfg, &retry_schedule, SIM_STRIPE_MAX_RETRIES, sched_ms,
                                          &nsched, &w, err);
    if (has_sched < 0)
        return CM_EINVAL;
    if (twin && !json_is_boolean(twin)) {
        cm_errf(err, "twin must be true or false");
        return CM_EINVAL;
    }
    int has_tmo = sim_setting_duration(cfg, &timeout, &tmo_ms, &w, err);
    if (has_tmo < 0)
        return CM_EINVAL;
    char *copy = strdup(url);
    json_t *sched = json_array();
    for (size_t i = 0; sched && i < nsched; i++)
        if (json_array_append_new(sched, json_integer(sched_ms[i])) != 0) {
            json_decref(sched);
            sched = NULL;
        }
    if (!copy || !sched) {
        free(copy);
        json_decref(sched);
        return CM_ENOMEM;
    }
    cm_err_t rc = CM_OK;
    pthread_mutex_lock(&s->mu);
    free(s->wh_url);
    s->wh_url = copy;
    json_array_clear(s->wh_secrets);
    if (sec)
        json_array_extend(s->wh_secrets, (json_t *)sec);
    if (has_sched) {
        json_array_clear(s->wh_schedule);
        json_array_extend(s->wh_schedule, sched);
    }
    s->wh_twin = twin ? json_is_true(twin) : 0;
    if (has_tmo)
        s->wh_timeout_ms = tmo_ms;
    if (!s->has_worker) {
        s->has_worker = pthread_create(&s->worker, NULL, worker, s) == 0;
        if (!s->has_worker)
            rc = CM_ENOMEM;
    }
    pthread_mutex_unlock(&s->mu);
    json_decref(sched);
    if (!rc)
        CM_INFO(COMP, "webhook URL set to %s", url);
    return rc;
}

/* ---- events sent on request ------------------------------------------------------------ */

/* 1 when type is two or three dot-separated words of a-z, 0-9 and '_', as Stripe's are. */
static int event_type_ok(const char *type)
{
    size_t words = 0, len = strlen(type);
    if (len > 127)
        return 0;
    for (const char *p = type;; p++) {
        size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");
        if (!n)
            return 0;
        words++;
        p += n;
        if (!*p)
            break;
        if (*p != '.')
            return 0;
    }
    return words == 2 || words == 3;
}

/* The "object" member Stripe gives an event's data.object of type (checked). out holds
 * 128 bytes. */
static void object_name(const char *type, char out[128])
{
    const char *action = strrchr(type, '.');
    const char *first_dot = strchr(type, '.');
    size_t from = 0;
    /* charge.dispute.*, charge.refund.*, customer.subscription.*, customer.tax_id.* ... are
     * the sub-resource itself; checkout.session.* and the like keep their namespace. */
    if (first_dot != action &&
        (strncmp(type, "charge.", 7) == 0 || strncmp(type, "customer.", 9) == 0))
        from = (size_t)(first_dot - type) + 1;
    snprintf(out, 128, "%.*s", (int)(action - type) - (int)from, type + from);
}

/* Checks ev; CM_EINVAL with err naming the field. */
static cm_err_t check_event(const sim_stripe_event_t *ev, char *err)
{
    const json_t *name = ev->object ? json_object_get(ev->object, "object") : NULL;
    if (!ev->type)
        cm_errf(err, "type is required (e.g. \"payment_intent.succeeded\")");
    else if (!event_type_ok(ev->type))
        cm_errf(err,
                "type must be two or three dot-separated words of a-z, 0-9 and _ (e.g. "
                "\"payment_intent.succeeded\"), not \"%.64s\"",
                ev->type);
    else if (!json_is_object(ev->object))
        cm_errf(err, "object must be a JSON object: the fields of data.object");
    else if (name && !json_is_string(name))
        cm_errf(err, "object.object must be a string");
    else if (ev->id && (!*ev->id || strlen(ev->id) > 255))
        cm_errf(err, "id must be a non-empty string of at most 255 bytes");
    else if (ev->has_created && (ev->created < 0 || ev->created > SIM_STRIPE_MAX_CREATED))
        cm_errf(err, "created must be a Unix time in seconds, from 0 to %lld (9999-12-31)",
                SIM_STRIPE_MAX_CREATED);
    else if (ev->copies < 1 || ev->copies > SIM_STRIPE_MAX_COPIES)
        cm_errf(err, "copies must be between 1 and %d", SIM_STRIPE_MAX_COPIES);
    else if (ev->timestamp_offset_ms < -SIM_STRIPE_MAX_OFFSET_MS ||
             ev->timestamp_offset_ms > SIM_STRIPE_MAX_OFFSET_MS)
        cm_errf(err, "timestamp_offset must be within 3650 days either way");
    else if (cm_clock_now_ms() + ev->timestamp_offset_ms < 0)
        cm_errf(err, "timestamp_offset puts the signed time before 1970");
    else
        return CM_OK;
    return CM_EINVAL;
}

/* A new data.object: "id" first and "object" next, as Stripe orders them, then the rest
 * of ev->object. NULL when out of memory. */
static json_t *data_object(const sim_stripe_event_t *ev)
{
    char name[128];
    object_name(ev->type, name);
    json_t *o = json_object();
    const json_t *id = json_object_get(ev->object, "id");
    if (o && id && json_object_set(o, "id", (json_t *)id))
        goto fail;
    if (o && json_object_set_new(o, "object", json_string(name)))
        goto fail;
    if (o && json_object_update(o, (json_t *)ev->object))
        goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}

cm_err_t sim_stripe_send_event(sim_stripe_t *s, const sim_stripe_event_t *ev, json_t **report,
                               char *err)
{
    *report = NULL;
    cm_err_t rc = check_event(ev, err);
    if (rc)
        return rc;
    json_t *obj = data_object(ev), *env = NULL;
    sim_delivery_ref_t ref = {0};
    sim_delivery_job_t *jobs = NULL;
    if (!obj)
        return CM_ENOMEM;
    pthread_mutex_lock(&s->mu);
    if (!s->wh_url || !s->has_worker) {
        cm_errf(err, "no webhook URL set (PUT /control/stripe/webhook first)");
        rc = CM_ESTATE;
    } else {
        char gen[40] = "";
        if (!ev->id)
            new_id(s, "evt_", gen);
        const char *id = ev->id ? ev->id : gen;
        env = new_event(id, ev->type, ev->has_created ? ev->created : cm_clock_now_s(), obj, NULL,
                        NULL);
        sim_delivery_copies_t c = {.event = ev->type,
                                   .id = id,
                                   .copies = (unsigned)ev->copies,
                                   .forge = ev->forge,
                                   .ts_offset_ms = ev->timestamp_offset_ms,
                                   .generation = s->generation};
        rc = env ? sim_delivery_log_queue(s->log, env, s->wh_url, &c, &ref, &jobs) : CM_ENOMEM;
    }
    if (!rc) {
        sim_delivery_jobs_append(&s->queue, jobs);
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (!rc) {
        CM_INFO(COMP, "event %s (%s) sent on request, %lld cop%s%s: %s", cm_json_str(env, "id", ""),
                ev->type, (long long)ev->copies, ev->copies == 1 ? "y" : "ies",
                ev->forge ? ", forged" : "", ref.id);
        *report = sim_delivery_log_wait_first(s->log, &ref);
        if (!*report)
            rc = CM_ENOMEM;
    }
    json_decref(env);
    json_decref(obj);
    return rc;
}

json_t *sim_stripe_delivery(sim_stripe_t *s, const char *delivery_id)
{
    return sim_delivery_log_report(s->log, delivery_id);
}

cm_err_t sim_stripe_hold(sim_stripe_t *s, int64_t hold_ms, char *err)
{
    if (hold_ms < 0 || hold_ms > SIM_STRIPE_MAX_HOLD_MS) {
        cm_errf(err, "hold must be from 0ms to 1m");
        return CM_EINVAL;
    }
    pthread_mutex_lock(&s->mu);
    s->hold_ms = hold_ms;
    pthread_mutex_unlock(&s->mu);
    return CM_OK;
}

const char *sim_stripe_idem_state(sim_stripe_t *s, const char *key)
{
    pthread_mutex_lock(&s->mu);
    json_t *e = json_object_get(s->idem, key);
    const char *st = !e ? NULL : cm_json_bool(e, "in_flight", 0) ? "in_flight" : "stored";
    pthread_mutex_unlock(&s->mu);
    return st;
}

void sim_stripe_shutdown(sim_stripe_t *s)
{
    pthread_mutex_lock(&s->mu);
    __atomic_store_n(&s->stopping, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->log)
        sim_delivery_log_stop(s->log);
}
