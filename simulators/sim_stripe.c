/* sim_stripe.c - Stripe PaymentIntents (create, retrieve) over form-encoded bodies. */
#include "sim_stripe.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_json.h"
#include "cm_log.h"
#include "sim_form.h"
#include "sim_http.h"
#include "sim_rng.h"

#define COMP "sim.stripe"
#define ID_ALPHABET "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#define ID_LEN 24
/* Stripe's own ceiling for amount: eight digits in the smallest currency unit. */
#define MAX_AMOUNT 99999999LL

struct sim_stripe {
    pthread_mutex_t mu;
    char *api_key;
    char *webhook_secret;
    sim_rng_t rng;
    /* guarded by mu */
    json_t *ledger; /* array of intents, creation order */
    json_t *by_id;  /* id -> the same intents */
};

sim_stripe_t *sim_stripe_new(const sim_stripe_cfg_t *cfg)
{
    if (!cfg->api_key || !*cfg->api_key)
        return NULL;
    sim_stripe_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    s->api_key = strdup(cfg->api_key);
    s->webhook_secret = strdup(cfg->webhook_secret ? cfg->webhook_secret : "");
    sim_rng_init(&s->rng, cfg->seed, 3);
    s->ledger = json_array();
    s->by_id = json_object();
    if (!s->api_key || !s->webhook_secret || !s->ledger || !s->by_id)
        sim_stripe_free(&s);
    return s;
}

void sim_stripe_free(sim_stripe_t **sp)
{
    sim_stripe_t *s = sp ? *sp : NULL;
    if (!s)
        return;
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
    pthread_mutex_unlock(&s->mu);
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

static void set_request_id(sim_stripe_t *s, cm_http_resp_t *resp)
{
    char id[40];
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

/* Builds a PaymentIntent as Stripe shows it after a confirmed create. Under the lock. */
static json_t *make_intent(sim_stripe_t *s, const json_t *form, long long amount,
                           const char *currency)
{
    char id[40], secret_tail[40], charge[40], pm[40];
    char client_secret[96];
    new_id(s, "pi_", id);
    new_id(s, "", secret_tail);
    new_id(s, "ch_", charge);
    new_id(s, "pm_", pm);
    snprintf(client_secret, sizeof client_secret, "%s_secret_%s", id, secret_tail);
    const char *capture = cm_json_str(form, "capture_method", "automatic");
    /* Manual capture stops at requires_capture, as a confirmed intent does on Stripe;
     * everything else succeeds at once (confirm=true is implied). */
    int manual = strcmp(capture, "manual") == 0;
    const json_t *m = json_object_get(form, "metadata");
    const json_t *pmt = json_object_get(form, "payment_method_types");
    json_t *pmv = opt_string(form, "payment_method");
    if (json_is_null(pmv)) {
        json_decref(pmv);
        pmv = json_string(pm);
    }
    return json_pack(
        "{s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:s,s:I,s:s,s:o,s:o,s:s,s:b,s:o,s:o,s:o,s:s}", "id", id,
        "object", "payment_intent", "amount", (json_int_t)amount, "amount_capturable",
        (json_int_t)(manual ? amount : 0), "amount_received", (json_int_t)(manual ? 0 : amount),
        "capture_method", capture, "client_secret", client_secret, "confirmation_method",
        "automatic", "created", (json_int_t)cm_clock_now_s(), "currency", currency, "customer",
        opt_string(form, "customer"), "description", opt_string(form, "description"),
        "latest_charge", charge, "livemode", 0, "metadata",
        json_is_object(m) ? json_deep_copy(m) : json_object(), "payment_method", pmv,
        "payment_method_types", json_is_array(pmt) ? json_deep_copy(pmt) : json_pack("[s]", "card"),
        "status", manual ? "requires_capture" : "succeeded");
}

static void h_create(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_stripe_t *s = ud;
    char err[CM_ERR_LEN];
    json_t *form = NULL;
    long long amount;
    char currency[4];
    set_request_id(s, resp);
    if (!authorised(s, req, resp))
        return;
    if (sim_form_decode(req->body, req->body_len, &form, err) != CM_OK) {
        char msg[CM_ERR_LEN + 32];
        snprintf(msg, sizeof msg, "Invalid request body: %s", err);
        answer_error(resp, 400, "invalid_request_error", NULL, NULL, msg);
        return;
    }
    if (validate_intent(form, resp, &amount, currency) != 0) {
        json_decref(form);
        return;
    }
    json_t *answer = NULL;
    pthread_mutex_lock(&s->mu);
    json_t *pi = make_intent(s, form, amount, currency);
    if (pi && !json_array_append(s->ledger, pi)) {
        if (json_object_set(s->by_id, json_string_value(json_object_get(pi, "id")), pi))
            json_array_remove(s->ledger, json_array_size(s->ledger) - 1);
        else
            answer = json_deep_copy(pi);
    }
    pthread_mutex_unlock(&s->mu);
    json_decref(pi);
    json_decref(form);
    if (!answer) {
        answer_error(resp, 500, "api_error", NULL, NULL, "The simulator ran out of memory.");
        return;
    }
    CM_INFO(COMP, "payment_intent %s %s for %lld %s",
            json_string_value(json_object_get(answer, "id")),
            json_string_value(json_object_get(answer, "status")), amount, currency);
    cm_http_resp_json(resp, 200, answer);
}

/* ---- GET /v1/payment_intents/{id} ------------------------------------------------- */

static void h_get(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_stripe_t *s = ud;
    const char *id = cm_http_req_param(req, "id");
    set_request_id(s, resp);
    if (!authorised(s, req, resp))
        return;
    pthread_mutex_lock(&s->mu);
    json_t *v = json_object_get(s->by_id, id);
    json_t *copy = v ? json_deep_copy(v) : NULL;
    pthread_mutex_unlock(&s->mu);
    if (!v) {
        char msg[160];
        snprintf(msg, sizeof msg, "No such payment_intent: '%.100s'", id);
        answer_error(resp, 404, "invalid_request_error", "resource_missing", "intent", msg);
        return;
    }
    cm_http_resp_json(resp, 200, copy);
}

cm_err_t sim_stripe_routes(sim_stripe_t *s, cm_http_server_t *srv)
{
    cm_err_t rc = cm_http_server_route(srv, "POST /v1/payment_intents", h_create, s);
    if (!rc)
        rc = cm_http_server_route(srv, "GET /v1/payment_intents/{id}", h_get, s);
    return rc;
}
