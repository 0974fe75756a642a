/* sim_stripe.c - Stripe PaymentIntents, refunds, idempotency and signed event deliveries
 * over form-encoded bodies. */
#include "sim_stripe.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <strings.h>
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
    json_t *events;       /* Event objects, creation order (at most SIM_STRIPE_MAX_EVENTS) */
    json_t *events_by_id; /* id -> the same events */
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
    s->events = json_array();
    s->events_by_id = json_object();
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
        !s->refunds_by_id || !s->charges || !s->events || !s->events_by_id || !s->idem ||
        !s->wh_secrets || !s->wh_schedule || !s->log)
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
    json_decref(s->events);
    json_decref(s->events_by_id);
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
    json_array_clear(s->events);
    json_object_clear(s->events_by_id);
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

/* Stripe's error object; code and param are left out when NULL. A code brings its
 * doc_url, as Stripe's errors do (https://docs.stripe.com/error-codes). */
static void answer_error(cm_http_resp_t *resp, int status, const char *type, const char *code,
                         const char *param, const char *message)
{
    /* The message may quote the request, so it goes through sim_http_str. */
    json_t *e = json_pack("{s:s,s:o}", "type", type, "message", sim_http_str(message));
    if (e && code) {
        char url[128];
        size_t n =
            (size_t)snprintf(url, sizeof url, "https://stripe.com/docs/error-codes/%s", code);
        for (size_t i = sizeof "https://stripe.com/docs/error-codes/" - 1; i < n && url[i]; i++)
            if (url[i] == '_')
                url[i] = '-';
        json_object_set_new(e, "code", json_string(code));
        json_object_set_new(e, "doc_url", json_string(url));
    }
    if (e && param)
        json_object_set_new(e, "param", sim_http_str(param));
    cm_http_resp_json(resp, status, e ? json_pack("{s:o}", "error", e) : NULL);
}

/* A 400 invalid_request_error whose message is formatted. */
__attribute__((format(printf, 4, 5))) static void
answer_invalid(cm_http_resp_t *resp, const char *code, const char *param, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    answer_error(resp, 400, "invalid_request_error", code, param, msg);
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

/* ---- authentication ------------------------------------------------------------------ */

/* Stripe takes the secret key as a bearer token or as the user name of HTTP Basic auth
 * with an empty password (docs.stripe.com/api/authentication: "curl -u sk_test_...:").
 * The key goes to key (cap bytes); 0 when the header has neither form. */
static int presented_key(const char *h, char *key, size_t cap)
{
    key[0] = '\0';
    if (strncasecmp(h, "Bearer ", 7) == 0) {
        snprintf(key, cap, "%s", h + 7);
        return 1;
    }
    if (strncasecmp(h, "Basic ", 6) != 0)
        return 0;
    uint8_t raw[512];
    const char *b = h + 6;
    long n =
        strlen(b) <= 4 * (sizeof raw / 3) ? cm_b64_decode(b, strlen(b), raw, sizeof raw - 1) : -1;
    if (n < 0)
        return 0;
    raw[n] = '\0';
    uint8_t *colon = memchr(raw, ':', (size_t)n);
    /* A password is not part of Stripe's scheme: the key alone, then ':'. Refusing one is
     * the stricter reading (the docs say none is needed, not that one is ignored). */
    if (!colon || colon != raw + n - 1 || memchr(raw, '\0', (size_t)n))
        return 0;
    size_t kl = (size_t)(colon - raw);
    if (kl >= cap)
        return 0;
    memcpy(key, raw, kl);
    key[kl] = '\0';
    return 1;
}

/* The key as Stripe echoes a wrong one: its "sk_test_"-style prefix, stars, the last four
 * characters; all stars when it is too short to show any. out holds 96 bytes. */
static void masked_key(const char *key, char out[96])
{
    size_t len = strlen(key), pre = 0;
    const char *second = strchr(key, '_') ? strchr(strchr(key, '_') + 1, '_') : NULL;
    if (second && (size_t)(second - key) < 12)
        pre = (size_t)(second - key) + 1;
    if (len < pre + 8 || len > 80) {
        snprintf(out, 96, "%.*s", (int)(len < 20 ? len : 20), "********************");
        return;
    }
    snprintf(out, 96, "%.*s%.*s%s", (int)pre, key, (int)(len - pre - 4),
             "********************************************************************************",
             key + len - 4);
}

static int authorised(sim_stripe_t *s, const cm_http_req_t *req, cm_http_resp_t *resp)
{
    const char *h = cm_http_req_header(req, "Authorization");
    char key[256], shown[96], msg[256];
    int has = h && presented_key(h, key, sizeof key);
    if (has && key[0] && cm_ct_equal(key, strlen(key), s->api_key, strlen(s->api_key)))
        return 1;
    if (cm_http_resp_header(resp, "WWW-Authenticate", "Basic realm=\"Stripe\"") != CM_OK)
        CM_WARN(COMP, "could not add WWW-Authenticate");
    if (!h || (has && !key[0])) {
        answer_error(resp, 401, "invalid_request_error", NULL, NULL,
                     "You did not provide an API key. You need to provide your API key in the "
                     "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                     "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for "
                     "details, or we can help at https://support.stripe.com/.");
    } else if (!has) {
        answer_error(resp, 401, "invalid_request_error", NULL, NULL,
                     "Invalid API Key provided: the Authorization header must be 'Bearer "
                     "YOUR_SECRET_KEY' or Basic auth with the key as the user name.");
    } else {
        masked_key(key, shown);
        snprintf(msg, sizeof msg, "Invalid API Key provided: %s", shown);
        answer_error(resp, 401, "invalid_request_error", NULL, NULL, msg);
    }
    return 0;
}

/* ---- API versions ---------------------------------------------------------------------- */

/* The versions Stripe-Version may name: every GA version a stripe-node release pinned
 * (its CHANGELOG and src/apiVersion.ts history, 2019-08-08 to 2026-10-28.endive). Stripe
 * knows older ones too; naming one of those is refused here, the stricter reading. From
 * 2024-09-30 on, a version has its release's name (".acacia") and a bare date is refused. */
static const char *const known_versions[] = {
    "2019-08-08",        "2019-12-03",        "2020-03-02",        "2020-08-27",
    "2022-08-01",        "2022-11-15",        "2023-08-16",        "2023-10-16",
    "2024-04-10",        "2024-06-20",        "2024-09-30.acacia", "2024-10-28.acacia",
    "2024-11-20.acacia", "2024-12-18.acacia", "2025-01-27.acacia", "2025-02-24.acacia",
    "2025-03-31.basil",  "2025-04-30.basil",  "2025-05-28.basil",  "2025-06-30.basil",
    "2025-07-30.basil",  "2025-08-27.basil",  "2025-09-30.clover", "2025-10-29.clover",
    "2025-11-17.clover", "2025-12-15.clover", "2026-01-28.clover", "2026-02-25.clover",
    "2026-03-25.dahlia", "2026-04-22.dahlia", "2026-05-27.dahlia", "2026-06-24.dahlia",
    "2026-07-29.dahlia", "2026-08-26.dahlia", "2026-09-30.endive", "2026-10-28.endive",
};

/* The version a request runs under: its Stripe-Version, or the account's default
 * (API_VERSION) without one. Sets the Stripe-Version answer header, as Stripe does. A
 * version Stripe does not know is answered 400 ("Invalid Stripe API version: ...", no
 * code, as Stripe answers it) and -1 returned. out holds 32 bytes. */
static int api_version(const cm_http_req_t *req, cm_http_resp_t *resp, char out[32])
{
    const char *v = cm_http_req_header(req, "Stripe-Version");
    snprintf(out, 32, "%s", API_VERSION);
    if (v) {
        size_t i = 0, n = sizeof known_versions / sizeof known_versions[0];
        while (i < n && strcmp(v, known_versions[i]) != 0)
            i++;
        if (i == n) {
            char msg[200];
            snprintf(msg, sizeof msg, "Invalid Stripe API version: %.120s", v);
            answer_error(resp, 400, "invalid_request_error", NULL, NULL, msg);
            return -1;
        }
        snprintf(out, 32, "%s", v);
    }
    if (cm_http_resp_header(resp, "Stripe-Version", out) != CM_OK)
        CM_WARN(COMP, "could not add Stripe-Version");
    return 0;
}

/* 1 when version (a known one) is at or after since (a "YYYY-MM-DD" date). */
static int version_from(const char *version, const char *since)
{
    return strncmp(version, since, 10) >= 0;
}

/* ---- currencies and amounts -------------------------------------------------------------- */

/* Stripe's presentment currencies (docs.stripe.com/currencies, "Supported presentment
 * currencies"; the same list Stripe's "Invalid currency" error prints). */
static const char currencies[] =
    "usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd "
    "bwp byn bzd cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp "
    "gel gip gmd gnf gtq gyd hkd hnl htg huf idr ils inr isk jmd jod jpy kes kgs khr kmf krw "
    "kwd kyd kzt lak lbp lkr lrd lsl mad mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn nad "
    "ngn nio nok npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sek "
    "sgd shp sle sos srd std szl thb tjs tnd top try ttd twd tzs uah ugx uyu uzs vnd vuv wst "
    "xaf xcd xof xpf yer zar zmw";

/* Zero-decimal currencies: amounts are whole units (docs.stripe.com/currencies#zero-decimal). */
static const char zero_decimal[] =
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf";

/* The smallest amount a charge may have, in the smallest unit (docs.stripe.com/currencies,
 * "Minimum and maximum charge amounts"). Stripe's rule for other currencies is the
 * equivalent of the account's settlement minimum at the day's rate, which the simulator
 * cannot know: it asks for at least 1 unit there. */
static const struct {
    const char cur[4];
    long long min;
} minimums[] = {
    {"usd", 50},    {"aed", 200},  {"aud", 50},  {"bgn", 100},  {"brl", 50},  {"cad", 50},
    {"chf", 50},    {"czk", 1500}, {"dkk", 250}, {"eur", 50},   {"gbp", 30},  {"hkd", 400},
    {"huf", 17500}, {"inr", 50},   {"jpy", 50},  {"mxn", 1000}, {"myr", 200}, {"nok", 300},
    {"nzd", 50},    {"pln", 200},  {"ron", 200}, {"sek", 300},  {"sgd", 50},  {"thb", 1000},
};

static int word_in(const char *list, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = list; *p;) {
        size_t k = strcspn(p, " ");
        if (k == n && strncmp(p, w, n) == 0)
            return 1;
        p += k + (p[k] == ' ');
    }
    return 0;
}

static long long min_amount(const char *cur)
{
    for (size_t i = 0; i < sizeof minimums / sizeof minimums[0]; i++)
        if (strcmp(minimums[i].cur, cur) == 0)
            return minimums[i].min;
    return 1;
}

/* amount in cur as Stripe words it: "0.50 usd", "50 jpy". out holds 48 bytes. */
static void format_amount(long long amount, const char *cur, char out[48])
{
    if (word_in(zero_decimal, cur))
        snprintf(out, 48, "%lld %s", amount, cur);
    else
        snprintf(out, 48, "%lld.%02lld %s", amount / 100, amount % 100, cur);
}

/* ---- parameters ------------------------------------------------------------------------ */

/* How a parameter is checked. Form bodies decode to strings, hashes and arrays
 * (sim_form.h); an empty string unsets an optional parameter, as in Stripe's API. */
typedef enum {
    P_STR,     /* a string of at most maxlen (5000 when 0) characters */
    P_INT,     /* an integer: "Invalid integer: x" (parameter_invalid_integer) */
    P_BOOL,    /* "true" or "false": "Invalid boolean: x" */
    P_ENUM,    /* one of choices: "Invalid name: must be one of a, b, or c" */
    P_META,    /* metadata: a hash of strings, 50 keys of <= 40, values of <= 500 chars */
    P_HASH,    /* a hash whose keys are sub */
    P_LIST,    /* an array of strings, each one of choices when set */
    P_NOMODEL, /* a real Stripe parameter the simulator does not model: refused, saying so */
} ptype_t;

typedef struct pspec pspec_t;
struct pspec {
    const char *name;
    ptype_t type;
    int required;
    const char *choices;       /* P_ENUM, P_LIST: space-separated values */
    size_t maxlen;             /* P_STR */
    const pspec_t *sub;        /* P_HASH: its keys, ended by {NULL} */
    const char *since, *until; /* API versions [since, until) it exists in; NULL: always */
};

static const pspec_t *spec_find(const pspec_t *spec, const char *name, const char *version)
{
    for (const pspec_t *p = spec; p->name; p++)
        if (strcmp(p->name, name) == 0 && (!p->since || version_from(version, p->since)) &&
            (!p->until || !version_from(version, p->until)))
            return p;
    return NULL;
}

/* "a, b, or c" from "a b c"; out holds 512 bytes. */
static void choices_text(const char *choices, char out[512])
{
    size_t n = 0, words = 1, w = 0;
    for (const char *p = choices; *p; p++)
        words += *p == ' ';
    out[0] = '\0';
    for (const char *p = choices; *p && n < 500;) {
        size_t k = strcspn(p, " ");
        w++;
        n += (size_t)snprintf(out + n, 512 - n, "%s%s%.*s",
                              w == 1       ? ""
                              : words == 2 ? " "
                                           : ", ",
                              w > 1 && w == words ? "or " : "", (int)k, p);
        p += k + (p[k] == ' ');
    }
}

/* Parses a decimal integer (optional '-'); -1 when it is not one or has over 15 digits. */
static int parse_int(const char *v, long long *out)
{
    const char *d = *v == '-' ? v + 1 : v;
    if (!*d || strlen(d) > 15 || strspn(d, "0123456789") != strlen(d))
        return -1;
    *out = strtoll(v, NULL, 10);
    return 0;
}

static int check_value(const json_t *v, const pspec_t *p, const char *full, const char *version,
                       cm_http_resp_t *resp);

/* Checks every key of form against spec (under version) and the required ones' presence.
 * prefix names the enclosing hash ("" at the top). 0 when all fit; else answers 400 as
 * Stripe does and returns -1. */
static int check_params(const json_t *form, const pspec_t *spec, const char *prefix,
                        const char *version, cm_http_resp_t *resp)
{
    const char *k;
    json_t *v;
    char full[300];
    json_object_foreach((json_t *)form, k, v)
    {
        snprintf(full, sizeof full, *prefix ? "%s[%s]" : "%s%s", prefix, k);
        const pspec_t *p = spec_find(spec, k, version);
        if (!p) {
            answer_invalid(resp, "parameter_unknown", full, "Received unknown parameter: %s", full);
            return -1;
        }
        if (p->type == P_NOMODEL) {
            answer_invalid(resp, NULL, full,
                           "%s is a Stripe parameter the simulator does not model "
                           "(docs/providers-stripe.md): leave it out or extend the simulator.",
                           full);
            return -1;
        }
        if (check_value(v, p, full, version, resp) != 0)
            return -1;
    }
    for (const pspec_t *p = spec; p->name; p++) {
        if (!p->required || json_object_get(form, p->name))
            continue;
        snprintf(full, sizeof full, *prefix ? "%s[%s]" : "%s%s", prefix, p->name);
        answer_invalid(resp, "parameter_missing", full, "Missing required param: %s.", full);
        return -1;
    }
    return 0;
}

static int check_value(const json_t *v, const pspec_t *p, const char *full, const char *version,
                       cm_http_resp_t *resp)
{
    char text[512];
    const char *sv = json_string_value(v);
    long long n;
    if (sv && !*sv) {
        if (!p->required)
            return 0; /* "" unsets an optional parameter */
        answer_invalid(resp, "parameter_invalid_empty", full,
                       "You passed an empty string for '%s'. We assume empty values are an "
                       "attempt to unset a parameter; however '%s' cannot be unset. You should "
                       "remove '%s' from your request or supply a non-empty value.",
                       full, full, full);
        return -1;
    }
    switch (p->type) {
    case P_HASH:
    case P_META:
        if (!json_is_object(v)) {
            answer_invalid(resp, NULL, full,
                           "Invalid hash: %s must be a set of %s[key]=value pairs", full, full);
            return -1;
        }
        if (p->type == P_HASH)
            return check_params(v, p->sub, full, version, resp);
        if (json_object_size(v) > 50) {
            answer_invalid(resp, NULL, full, "Invalid %s: it may have at most 50 keys", full);
            return -1;
        }
        const char *mk;
        json_t *mv;
        json_object_foreach((json_t *)v, mk, mv)
        {
            if (!json_is_string(mv) || strlen(mk) > 40 || strlen(json_string_value(mv)) > 500) {
                answer_invalid(resp, NULL, full,
                               "Invalid %s[%.60s]: keys are strings of at most 40 characters, "
                               "values strings of at most 500",
                               full, mk);
                return -1;
            }
        }
        return 0;
    case P_LIST:
        if (!json_is_array(v)) {
            answer_invalid(resp, NULL, full, "Invalid array: %s must be a list (%s[0]=...)", full,
                           full);
            return -1;
        }
        for (size_t i = 0; i < json_array_size(v); i++) {
            const char *e = json_string_value(json_array_get(v, i));
            if (!e || (p->choices && !word_in(p->choices, e))) {
                choices_text(p->choices ? p->choices : "strings", text);
                answer_invalid(resp, NULL, full, "Invalid %s[%zu]: must be one of %s", full, i,
                               text);
                return -1;
            }
        }
        return 0;
    default:
        break;
    }
    if (!sv) { /* a hash or an array where a scalar belongs */
        answer_invalid(resp, p->type == P_INT ? "parameter_invalid_integer" : NULL, full,
                       "Invalid %s: %s must be a single value, not a hash or an array",
                       p->type == P_INT    ? "integer"
                       : p->type == P_BOOL ? "boolean"
                                           : "string",
                       full);
        return -1;
    }
    switch (p->type) {
    case P_INT:
        if (parse_int(sv, &n) != 0) {
            answer_invalid(resp, "parameter_invalid_integer", full, "Invalid integer: %.60s", sv);
            return -1;
        }
        return 0;
    case P_BOOL:
        if (strcmp(sv, "true") && strcmp(sv, "false")) {
            answer_invalid(resp, NULL, full, "Invalid boolean: %.60s", sv);
            return -1;
        }
        return 0;
    case P_ENUM:
        if (!word_in(p->choices, sv)) {
            choices_text(p->choices, text);
            answer_invalid(resp, NULL, full, "Invalid %s: must be one of %s", full, text);
            return -1;
        }
        return 0;
    default:
        if (strlen(sv) > (p->maxlen ? p->maxlen : 5000)) {
            answer_invalid(resp, NULL, full,
                           "Invalid string: %.40s...; must be at most %zu characters", sv,
                           p->maxlen ? p->maxlen : 5000);
            return -1;
        }
        return 0;
    }
}

/* The parameters of each operation: the names stripe-node 23.1.0's types list for it
 * (PaymentIntentCreateParams, ...), which follow Stripe's OpenAPI spec. */
#define NOMODEL(n)                                                                                 \
    {                                                                                              \
        n, P_NOMODEL, 0, NULL, 0, NULL, NULL, NULL                                                 \
    }
#define STR(n)                                                                                     \
    {                                                                                              \
        n, P_STR, 0, NULL, 0, NULL, NULL, NULL                                                     \
    }
#define BOOL(n)                                                                                    \
    {                                                                                              \
        n, P_BOOL, 0, NULL, 0, NULL, NULL, NULL                                                    \
    }
#define INT(n)                                                                                     \
    {                                                                                              \
        n, P_INT, 0, NULL, 0, NULL, NULL, NULL                                                     \
    }
#define ENUM(n, c)                                                                                 \
    {                                                                                              \
        n, P_ENUM, 0, c, 0, NULL, NULL, NULL                                                       \
    }
/* payment_method_types gave way to allowed_payment_method_types: the latter from
 * 2026-07-29.dahlia, the former removed in 2026-09-30.endive (stripe-node CHANGELOG 22.4.0,
 * 23.0.0). Only "card" is modelled. */
#define PM_TYPES                                                                                   \
    {"payment_method_types", P_LIST, 0, "card", 0, NULL, NULL, "2026-09-30"},                      \
    {                                                                                              \
        "allowed_payment_method_types", P_LIST, 0, "card", 0, NULL, "2026-07-29", NULL             \
    }
#define END                                                                                        \
    {                                                                                              \
        NULL, P_STR, 0, NULL, 0, NULL, NULL, NULL                                                  \
    }

static const pspec_t apm_spec[] = {
    {"enabled", P_BOOL, 1, NULL, 0, NULL, NULL, NULL},
    ENUM("allow_redirects", "always never"),
    END,
};

static const pspec_t create_spec[] = {
    {"amount", P_INT, 1, NULL, 0, NULL, NULL, NULL},
    {"currency", P_STR, 1, NULL, 0, NULL, NULL, NULL},
    {"automatic_payment_methods", P_HASH, 0, NULL, 0, apm_spec, NULL, NULL},
    ENUM("capture_method", "automatic automatic_async manual"),
    BOOL("confirm"),
    ENUM("confirmation_method", "automatic manual"),
    STR("customer"),
    {"description", P_STR, 0, NULL, 1000, NULL, NULL, NULL},
    BOOL("error_on_requires_action"),
    {"metadata", P_META, 0, NULL, 0, NULL, NULL, NULL},
    ENUM("off_session", "true false one_off recurring"),
    STR("payment_method"),
    PM_TYPES,
    STR("receipt_email"),
    STR("return_url"),
    ENUM("setup_future_usage", "off_session on_session"),
    {"statement_descriptor", P_STR, 0, NULL, 22, NULL, NULL, NULL},
    {"statement_descriptor_suffix", P_STR, 0, NULL, 22, NULL, NULL, NULL},
    STR("transfer_group"),
    BOOL("use_stripe_sdk"),
    NOMODEL("amount_details"),
    NOMODEL("application_fee_amount"),
    NOMODEL("confirmation_token"),
    NOMODEL("customer_account"),
    NOMODEL("excluded_payment_method_types"),
    NOMODEL("expand"),
    NOMODEL("hooks"),
    NOMODEL("mandate"),
    NOMODEL("mandate_data"),
    NOMODEL("on_behalf_of"),
    NOMODEL("payment_details"),
    NOMODEL("payment_method_configuration"),
    NOMODEL("payment_method_data"),
    NOMODEL("payment_method_options"),
    NOMODEL("radar_options"),
    NOMODEL("shipping"),
    NOMODEL("transfer_data"),
    END,
};

static const pspec_t confirm_spec[] = {
    ENUM("capture_method", "automatic automatic_async manual"),
    BOOL("error_on_requires_action"),
    ENUM("off_session", "true false one_off recurring"),
    STR("payment_method"),
    PM_TYPES,
    STR("receipt_email"),
    STR("return_url"),
    ENUM("setup_future_usage", "off_session on_session"),
    BOOL("use_stripe_sdk"),
    NOMODEL("amount_details"),
    NOMODEL("amount_to_confirm"),
    NOMODEL("confirmation_token"),
    NOMODEL("excluded_payment_method_types"),
    NOMODEL("expand"),
    NOMODEL("hooks"),
    NOMODEL("mandate"),
    NOMODEL("mandate_data"),
    NOMODEL("payment_details"),
    NOMODEL("payment_method_data"),
    NOMODEL("payment_method_options"),
    NOMODEL("radar_options"),
    NOMODEL("shipping"),
    END,
};

static const pspec_t capture_spec[] = {
    INT("amount_to_capture"),
    BOOL("final_capture"),
    {"metadata", P_META, 0, NULL, 0, NULL, NULL, NULL},
    {"statement_descriptor", P_STR, 0, NULL, 22, NULL, NULL, NULL},
    {"statement_descriptor_suffix", P_STR, 0, NULL, 22, NULL, NULL, NULL},
    NOMODEL("amount_details"),
    NOMODEL("application_fee_amount"),
    NOMODEL("expand"),
    NOMODEL("hooks"),
    NOMODEL("payment_details"),
    NOMODEL("transfer_data"),
    END,
};

static const pspec_t cancel_spec[] = {
    ENUM("cancellation_reason", "abandoned duplicate fraudulent requested_by_customer"),
    NOMODEL("expand"),
    END,
};

static const pspec_t refund_spec[] = {
    INT("amount"),
    STR("charge"),
    STR("currency"),
    STR("instructions_email"),
    {"metadata", P_META, 0, NULL, 0, NULL, NULL, NULL},
    STR("payment_intent"),
    ENUM("reason", "duplicate fraudulent requested_by_customer"),
    BOOL("refund_application_fee"),
    BOOL("reverse_transfer"),
    NOMODEL("customer"),
    NOMODEL("expand"),
    NOMODEL("origin"),
    END,
};

/* The test payment methods of docs.stripe.com/testing that succeed; the declining ones are
 * in test_card_decline. Any other id is a PaymentMethod the simulator never made. */
static const char good_cards[] =
    "pm_card_visa pm_card_visa_debit pm_card_mastercard pm_card_mastercard_debit "
    "pm_card_mastercard_prepaid pm_card_amex pm_card_discover pm_card_diners pm_card_jcb "
    "pm_card_unionpay";

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
    char version[32]; /* the API version the request runs under */
    int executed;     /* execution began: the answer is stored under the idempotency key */
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

static void record_event(sim_stripe_t *s, const op_t *o, const char *type, const json_t *object,
                         int deliver);

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
        record_event(s, o, "payment_intent.payment_failed", pi, 1);
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
        record_event(s, o, "payment_intent.amount_capturable_updated", pi, 1);
    } else {
        effect(s, o, "charge", cm_json_str(pi, "id", ""),
               json_pack("{s:I,s:s,s:s}", "amount", amount, "currency",
                         cm_json_str(pi, "currency", ""), "charge", charge));
        record_event(s, o, "payment_intent.succeeded", pi, 1);
    }
    cm_http_resp_json(o->resp, 200, json_deep_copy(pi));
}

/* A string parameter, NULL when absent or "" (unset). */
static const char *param(const op_t *o, const char *name)
{
    const char *v = cm_json_str(o->form, name, NULL);
    return v && *v ? v : NULL;
}

/* Checks a payment_method parameter: a test payment method of docs.stripe.com/testing
 * (pm_card_visa, the declining pm_card_chargeDeclined*). Answers 400 and returns -1
 * otherwise: resource_missing for an id the simulator never made, as Stripe answers an
 * unknown PaymentMethod. */
static int check_pm(cm_http_resp_t *resp, const char *pm)
{
    const char *code;
    if (!pm || word_in(good_cards, pm) || test_card_decline(pm, &code))
        return 0;
    if (strcmp(pm, "pm_card_authenticationRequired") == 0 ||
        strcmp(pm, "pm_card_threeDSecure2Required") == 0) {
        answer_invalid(resp, NULL, "payment_method",
                       "%s needs 3D Secure (requires_action), which the simulator does not model.",
                       pm);
        return -1;
    }
    answer_invalid(resp, "resource_missing", "payment_method", "No such PaymentMethod: '%.100s'",
                   pm);
    return -1;
}

/* The intent's payment method types: the list given, else ["card"]. */
static json_t *pm_types(const json_t *form)
{
    const json_t *t = json_object_get(form, "payment_method_types");
    if (!json_is_array(t))
        t = json_object_get(form, "allowed_payment_method_types");
    return json_is_array(t) && json_array_size(t) ? json_deep_copy(t) : json_pack("[s]", "card");
}

static json_t *new_intent(sim_stripe_t *s, const op_t *o, long long amount, const char *currency)
{
    const json_t *form = o->form;
    char id[40], secret_tail[40], client_secret[96];
    new_id(s, "pi_", id);
    new_id(s, "", secret_tail);
    snprintf(client_secret, sizeof client_secret, "%s_secret_%s", id, secret_tail);
    const json_t *m = json_object_get(form, "metadata");
    json_t *pmv = opt_string(form, "payment_method");
    /* From 2023-08-16 an intent made without payment_method_types has automatic payment
     * methods on (docs.stripe.com/upgrades#2023-08-16); the simulator's only one is card. */
    const json_t *apm = json_object_get(form, "automatic_payment_methods");
    int has_types = json_is_array(json_object_get(form, "payment_method_types")) ||
                    json_is_array(json_object_get(form, "allowed_payment_method_types"));
    json_t *apmv =
        json_is_object(apm)
            ? json_pack("{s:b}", "enabled", strcmp(cm_json_str(apm, "enabled", ""), "true") == 0)
        : !has_types && version_from(o->version, "2023-08-16") ? json_pack("{s:b}", "enabled", 1)
                                                               : json_null();
    json_t *pi = json_pack(
        "{s:s,s:s,s:I,s:I,s:I,s:o,s:s,s:n,s:n,s:s,s:s,s:I,s:s,s:o,s:o,s:n,s:n,s:b,s:o,s:o,s:o,s:s}",
        "id", id, "object", "payment_intent", "amount", (json_int_t)amount, "amount_capturable",
        (json_int_t)0, "amount_received", (json_int_t)0, "automatic_payment_methods", apmv,
        "capture_method", cm_json_str(form, "capture_method", "automatic"), "canceled_at",
        "cancellation_reason", "client_secret", client_secret, "confirmation_method",
        cm_json_str(form, "confirmation_method", "automatic"), "created",
        (json_int_t)cm_clock_now_s(), "currency", currency, "customer",
        opt_string(form, "customer"), "description", opt_string(form, "description"),
        "last_payment_error", "latest_charge", "livemode", 0, "metadata",
        json_is_object(m) ? json_deep_copy(m) : json_object(), "payment_method", pmv,
        "payment_method_types", pm_types(form), "status",
        json_is_null(pmv) ? "requires_payment_method" : "requires_confirmation");
    if (pi)
        json_object_set_new(pi, "receipt_email", opt_string(form, "receipt_email"));
    return pi;
}

/* Checks amount and currency after the generic checks: a supported lower-case currency
 * and an amount within its minimum and Stripe's eight-digit maximum. Answers and returns
 * -1 otherwise. */
static int check_amount(const json_t *form, cm_http_resp_t *resp, long long *amount,
                        char currency[4])
{
    const char *cv = cm_json_str(form, "currency", "");
    char shown[48];
    /* "You must use all lowercase letters" (docs.stripe.com/currencies): an upper-case
     * code is refused, the stricter reading of that sentence. */
    if (strlen(cv) != 3 || !word_in(currencies, cv)) {
        answer_invalid(resp, NULL, "currency",
                       "Invalid currency: %.40s. Stripe currently supports these currencies: "
                       "%s",
                       cv, currencies);
        return -1;
    }
    memcpy(currency, cv, 4);
    (void)parse_int(cm_json_str(form, "amount", ""), amount); /* checked as P_INT */
    long long min = min_amount(currency);
    if (*amount < min) {
        format_amount(min, currency, shown);
        answer_invalid(resp, "amount_too_small", "amount", "Amount must be at least %s", shown);
        return -1;
    }
    if (*amount > MAX_AMOUNT) {
        format_amount(MAX_AMOUNT, currency, shown);
        answer_invalid(resp, "amount_too_large", "amount", "Amount must be no more than %s", shown);
        return -1;
    }
    return 0;
}

static void answer_no_pm(cm_http_resp_t *resp, const json_t *pi)
{
    json_t *e = json_pack("{s:s,s:s,s:s,s:s,s:s,s:O}", "type", "invalid_request_error", "code",
                          "payment_intent_unexpected_state", "doc_url",
                          "https://stripe.com/docs/error-codes/payment-intent-unexpected-state",
                          "param", "payment_method", "message",
                          "You cannot confirm this PaymentIntent because it's missing a payment "
                          "method. You can either update the PaymentIntent with a payment method "
                          "and then confirm it again, or confirm it again directly with a payment "
                          "method.",
                          "payment_intent", pi);
    cm_http_resp_json(resp, 400, e ? json_pack("{s:o}", "error", e) : NULL);
}

static void op_create(op_t *o)
{
    sim_stripe_t *s = o->s;
    long long amount = 0; /* set by check_amount on success; gcc -O2 cannot tell */
    char currency[4];
    const json_t *f = o->form;
    if (check_amount(f, o->resp, &amount, currency) != 0 ||
        check_pm(o->resp, param(o, "payment_method")) != 0)
        return;
    if (param(o, "customer")) {
        /* The simulator keeps no customers, so every id is one Stripe would not find. */
        answer_invalid(o->resp, "resource_missing", "customer", "No such customer: '%.100s'",
                       cm_json_str(f, "customer", ""));
        return;
    }
    int apm = json_is_object(json_object_get(f, "automatic_payment_methods"));
    if (apm && (json_is_array(json_object_get(f, "payment_method_types")) ||
                json_is_array(json_object_get(f, "allowed_payment_method_types")))) {
        answer_invalid(o->resp, "parameters_exclusive", "automatic_payment_methods",
                       "You may only specify one of these parameters: automatic_payment_methods, "
                       "payment_method_types.");
        return;
    }
    /* confirm defaults to false (docs.stripe.com/api/payment_intents/create): without it
     * the intent waits in requires_payment_method or requires_confirmation, uncharged. */
    int do_confirm = strcmp(cm_json_str(f, "confirm", "false"), "true") == 0;
    pthread_mutex_lock(&s->mu);
    o->executed = 1;
    json_t *pi = new_intent(s, o, amount, currency);
    if (!pi || json_array_append(s->ledger, pi) ||
        json_object_set(s->by_id, cm_json_str(pi, "id", ""), pi)) {
        answer_error(o->resp, 500, "api_error", NULL, NULL, "The simulator ran out of memory.");
    } else {
        record_event(s, o, "payment_intent.created", pi, 0);
        const char *pm = cm_json_str(pi, "payment_method", NULL);
        if (!do_confirm) {
            cm_http_resp_json(o->resp, 200, json_deep_copy(pi));
        } else if (!pm) {
            /* The intent exists (requires_payment_method); the confirmation failed. */
            answer_no_pm(o->resp, pi);
        } else {
            char keep[128];
            snprintf(keep, sizeof keep, "%s", pm);
            charge_intent(s, o, pi, keep);
        }
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
    const char *pm = param(o, "payment_method");
    if (check_pm(o->resp, pm) != 0)
        return;
    pthread_mutex_lock(&s->mu);
    json_t *pi = json_object_get(s->by_id, id);
    const char *st = pi ? cm_json_str(pi, "status", "") : "";
    if (!pi) {
        answer_missing(o->resp, "payment_intent", id, "intent");
    } else if (strcmp(st, "requires_payment_method") && strcmp(st, "requires_confirmation")) {
        answer_state(o->resp, pi, "confirm", "requires_payment_method, requires_confirmation");
    } else if (!pm && !cm_json_str(pi, "payment_method", NULL)) {
        answer_no_pm(o->resp, pi);
    } else {
        o->executed = 1;
        char keep[128];
        snprintf(keep, sizeof keep, "%s", pm ? pm : cm_json_str(pi, "payment_method", ""));
        if (param(o, "capture_method"))
            json_object_set_new(pi, "capture_method", json_string(param(o, "capture_method")));
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
    const char *atc = param(o, "amount_to_capture");
    long long amount = cap;
    if (!pi) {
        answer_missing(o->resp, "payment_intent", id, "intent");
    } else if (strcmp(cm_json_str(pi, "status", ""), "requires_capture") != 0) {
        answer_state(o->resp, pi, "capture", "requires_capture");
    } else if (atc && (parse_int(atc, &amount) != 0 || amount < 1 || amount > cap)) {
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
        record_event(s, o, "payment_intent.succeeded", pi, 1);
        cm_http_resp_json(o->resp, 200, json_deep_copy(pi));
    }
    pthread_mutex_unlock(&s->mu);
}

static void op_cancel(op_t *o)
{
    sim_stripe_t *s = o->s;
    const char *id = cm_http_req_param(o->req, "id");
    const char *reason = param(o, "cancellation_reason");
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
        record_event(s, o, "payment_intent.canceled", pi, 1);
        cm_http_resp_json(o->resp, 200, json_deep_copy(pi));
    }
    pthread_mutex_unlock(&s->mu);
}

static void op_refund(op_t *o)
{
    sim_stripe_t *s = o->s;
    const char *pi_id = param(o, "payment_intent");
    const char *ch_id = param(o, "charge");
    const char *amt = param(o, "amount");
    const char *reason = param(o, "reason");
    const json_t *meta = json_object_get(o->form, "metadata");
    long long amount = 0;
    char msg[200];
    if (!pi_id && !ch_id) {
        answer_error(o->resp, 400, "invalid_request_error", "parameter_missing", "payment_intent",
                     "One of the following params should be provided for this request: "
                     "payment_intent or charge.");
        return;
    }
    if (pi_id && ch_id) {
        /* Which one Stripe would follow is not documented: refusing is the stricter reading. */
        answer_invalid(o->resp, "parameters_exclusive", "charge",
                       "You may only specify one of these parameters: charge, payment_intent.");
        return;
    }
    (void)parse_int(amt ? amt : "0", &amount); /* checked as P_INT */
    if (amt && amount < 1) {
        answer_invalid(o->resp, "parameter_invalid_integer", "amount",
                       "This value must be greater than or equal to 1.");
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
            record_event(s, o, "charge.refunded", cho, 1);
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

static void h_unknown(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud);

/* cm_http_server takes "/v1/refunds/" for "/v1/refunds"; Stripe does not (its 404 says to
 * remove the slash). 1 when the path ends in one and the answer is that 404. */
static int trailing_slash(sim_stripe_t *s, const cm_http_req_t *req, cm_http_resp_t *resp)
{
    size_t n = strlen(req->path);
    if (n < 2 || req->path[n - 1] != '/')
        return 0;
    h_unknown(req, resp, s);
    return 1;
}

/* 1 when the request's Content-Type is a form's (parameters are not read from others). */
static int form_content(const cm_http_req_t *req)
{
    const char *ct = cm_http_req_header(req, "Content-Type");
    size_t n = sizeof "application/x-www-form-urlencoded" - 1;
    return ct && strncasecmp(ct, "application/x-www-form-urlencoded", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Every POST: Request-Id, the key, the API version, a form body whose parameters fit spec,
 * the idempotency layer, then fn. */
static void run_post(sim_stripe_t *s, const cm_http_req_t *req, cm_http_resp_t *resp,
                     const pspec_t *spec, op_fn fn)
{
    char err[CM_ERR_LEN], digest[65];
    op_t o = {.s = s, .req = req, .resp = resp};
    if (trailing_slash(s, req, resp))
        return;
    set_request_id(s, resp, o.request_id);
    if (!authorised(s, req, resp) || api_version(req, resp, o.version) != 0)
        return;
    /* Stripe reads parameters from form bodies only; a JSON body is refused whole. */
    if (req->body_len && !form_content(req)) {
        answer_error(resp, 400, "invalid_request_error", NULL, NULL,
                     "Invalid request (check that your POST content type is "
                     "application/x-www-form-urlencoded). If you have any questions, we can help "
                     "at https://support.stripe.com/.");
        return;
    }
    if (sim_form_decode(req->body, req->body_len, &o.form, err) != CM_OK) {
        char msg[CM_ERR_LEN + 32];
        snprintf(msg, sizeof msg, "Invalid request body: %s", err);
        answer_error(resp, 400, "invalid_request_error", NULL, NULL, msg);
        return;
    }
    /* Validation failures are answered before the idempotency layer: never stored. */
    if (check_params(o.form, spec, "", o.version, resp) != 0) {
        json_decref(o.form);
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
    run_post(ud, req, resp, create_spec, op_create);
}

static void h_confirm(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    run_post(ud, req, resp, confirm_spec, op_confirm);
}

static void h_capture(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    run_post(ud, req, resp, capture_spec, op_capture);
}

static void h_cancel(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    run_post(ud, req, resp, cancel_spec, op_cancel);
}

static void h_refund(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    run_post(ud, req, resp, refund_spec, op_refund);
}

/* ---- GET: one object, lists, unknown routes ------------------------------------------- */

/* The first query parameter whose name (up to any "[") is not in the NULL-terminated
 * list, for refuse_unknown_query. */
typedef struct {
    const char *const *known;
    char bad[128];
} query_check_t;

static int query_known(void *ud, const char *name, const char *value)
{
    query_check_t *q = ud;
    size_t base = strcspn(name, "[");
    (void)value;
    for (const char *const *k = q->known; *k; k++)
        if (strlen(*k) == base && !strncmp(*k, name, base))
            return 0;
    snprintf(q->bad, sizeof q->bad, "%s", name);
    return 1;
}

/* The checks every GET starts with: Request-Id, the key, the API version, no query
 * parameter the operation does not take (known: the operation's, NULL-terminated; Stripe
 * refuses others as in a POST body), and no expand (which the simulator does not model).
 * 0 to go on; else answered. */
static int get_begin(sim_stripe_t *s, const cm_http_req_t *req, cm_http_resp_t *resp,
                     const char *const *known)
{
    query_check_t qc = {.known = known};
    char version[32];
    if (trailing_slash(s, req, resp))
        return -1;
    set_request_id(s, resp, NULL);
    if (!authorised(s, req, resp) || api_version(req, resp, version) != 0)
        return -1;
    if (cm_http_req_query_each(req, query_known, &qc)) {
        answer_invalid(resp, "parameter_unknown", qc.bad, "Received unknown parameter: %s", qc.bad);
        return -1;
    }
    if (cm_http_req_query(req, "expand[]") || cm_http_req_query(req, "expand[0]")) {
        answer_invalid(resp, NULL, "expand",
                       "expand is a Stripe parameter the simulator does not model "
                       "(docs/providers-stripe.md): leave it out or extend the simulator.");
        return -1;
    }
    return 0;
}

static void get_one(sim_stripe_t *s, const cm_http_req_t *req, cm_http_resp_t *resp, json_t *map,
                    const char *what, const char *param)
{
    const char *id = cm_http_req_param(req, "id");
    static const char *const known[] = {"expand", NULL};
    if (get_begin(s, req, resp, known) != 0)
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

static void h_get_event(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_stripe_t *s = ud;
    get_one(s, req, resp, s->events_by_id, "event", "id");
}

/* What a list request asks for, checked. */
typedef struct {
    long long limit;
    const char *starting_after, *ending_before;
    int has_created[4];
    long long created[4]; /* gt, gte, lt, lte */
    /* filters on string fields: field == value ("type" may end in '*': a prefix) */
    const char *field[2], *value[2];
    const char *types[20]; /* events: types[0..19], any of them */
    size_t ntypes;
} list_q_t;

static const char *const created_ops[4] = {"gt", "gte", "lt", "lte"};
/* What every list takes (Stripe's API reference, "List all ..."). */
#define LIST_PARAMS "limit", "starting_after", "ending_before", "created", "expand"

/* Reads the pagination and created parameters; answers and returns -1 when one is bad.
 * (Parameters a list does not take were refused by get_begin.) */
static int list_query(const cm_http_req_t *req, cm_http_resp_t *resp, list_q_t *q)
{
    const char *lim = cm_http_req_query(req, "limit");
    char name[32];
    q->limit = 10;
    if (lim && parse_int(lim, &q->limit) != 0) {
        answer_invalid(resp, "parameter_invalid_integer", "limit", "Invalid integer: %.60s", lim);
        return -1;
    }
    if (q->limit < 1 || q->limit > 100) {
        answer_invalid(resp, NULL, "limit", "This value must be %s.",
                       q->limit < 1 ? "greater than or equal to 1" : "less than or equal to 100");
        return -1;
    }
    q->starting_after = cm_http_req_query(req, "starting_after");
    q->ending_before = cm_http_req_query(req, "ending_before");
    if (q->starting_after && q->ending_before) {
        answer_invalid(resp, NULL, "ending_before",
                       "You may only specify one of these parameters: ending_before, "
                       "starting_after.");
        return -1;
    }
    const char *c = cm_http_req_query(req, "created");
    if (c) { /* created=T is created[gte]=T and created[lte]=T */
        if (parse_int(c, &q->created[1]) != 0) {
            answer_invalid(resp, "parameter_invalid_integer", "created", "Invalid integer: %.60s",
                           c);
            return -1;
        }
        q->created[3] = q->created[1];
        q->has_created[1] = q->has_created[3] = 1;
    }
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "created[%s]", created_ops[i]);
        const char *v = cm_http_req_query(req, name);
        if (v && parse_int(v, &q->created[i]) != 0) {
            answer_invalid(resp, "parameter_invalid_integer", name, "Invalid integer: %.60s", v);
            return -1;
        }
        q->has_created[i] |= v != NULL;
    }
    return 0;
}

static int list_match(const list_q_t *q, const json_t *item)
{
    json_int_t t = json_integer_value(json_object_get(item, "created"));
    if ((q->has_created[0] && !(t > q->created[0])) ||
        (q->has_created[1] && !(t >= q->created[1])) ||
        (q->has_created[2] && !(t < q->created[2])) || (q->has_created[3] && !(t <= q->created[3])))
        return 0;
    for (int i = 0; i < 2 && q->field[i]; i++) {
        const char *have = cm_json_str(item, q->field[i], "");
        size_t n = strlen(q->value[i]);
        if (n && q->value[i][n - 1] == '*' ? strncmp(have, q->value[i], n - 1) != 0
                                           : strcmp(have, q->value[i]) != 0)
            return 0;
    }
    int any = q->ntypes == 0;
    for (size_t i = 0; i < q->ntypes && !any; i++)
        any = strcmp(cm_json_str(item, "type", ""), q->types[i]) == 0;
    return any;
}

/* Answers Stripe's list object over items (oldest first, as kept): newest first, limit
 * of them after starting_after or the limit just before ending_before, has_more when more
 * lie that way. A cursor Stripe would not find is 400 resource_missing. Under no lock;
 * takes it. */
static void answer_list(sim_stripe_t *s, cm_http_resp_t *resp, json_t *items, const char *url,
                        const char *what, const list_q_t *q)
{
    const char *cursor = q->starting_after ? q->starting_after : q->ending_before;
    pthread_mutex_lock(&s->mu);
    size_t n = json_array_size(items), at = n; /* newest-first position of the cursor */
    for (size_t i = 0; cursor && i < n; i++)
        if (strcmp(cm_json_str(json_array_get(items, n - 1 - i), "id", ""), cursor) == 0)
            at = i;
    if (cursor && at == n) {
        pthread_mutex_unlock(&s->mu);
        answer_invalid(resp, "resource_missing",
                       q->starting_after ? "starting_after" : "ending_before",
                       "No such %s: '%.100s'", what, cursor);
        return;
    }
    json_t *data = json_array();
    int more = 0;
    if (q->ending_before) {
        /* The limit matches nearest the cursor on its newer side. */
        size_t taken = 0;
        for (size_t i = at; i-- > 0;) {
            const json_t *it = json_array_get(items, n - 1 - i);
            if (!list_match(q, it))
                continue;
            if (taken == (size_t)q->limit) {
                more = 1;
                break;
            }
            json_array_insert_new(data, 0, json_deep_copy(it));
            taken++;
        }
    } else {
        for (size_t i = cursor ? at + 1 : 0; i < n; i++) {
            const json_t *it = json_array_get(items, n - 1 - i);
            if (!list_match(q, it))
                continue;
            if (json_array_size(data) == (size_t)q->limit) {
                more = 1;
                break;
            }
            json_array_append_new(data, json_deep_copy(it));
        }
    }
    pthread_mutex_unlock(&s->mu);
    cm_http_resp_json(resp, 200,
                      data ? json_pack("{s:s,s:o,s:b,s:s}", "object", "list", "data", data,
                                       "has_more", more, "url", url)
                           : NULL);
}

static void h_list_intents(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_stripe_t *s = ud;
    list_q_t q = {0};
    static const char *const known[] = {LIST_PARAMS, "customer", NULL};
    if (get_begin(s, req, resp, known) != 0 || list_query(req, resp, &q) != 0)
        return;
    if ((q.value[0] = cm_http_req_query(req, "customer")))
        q.field[0] = "customer";
    answer_list(s, resp, s->ledger, "/v1/payment_intents", "payment_intent", &q);
}

static void h_list_refunds(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_stripe_t *s = ud;
    list_q_t q = {0};
    int k = 0;
    static const char *const known[] = {LIST_PARAMS, "payment_intent", "charge", NULL};
    if (get_begin(s, req, resp, known) != 0 || list_query(req, resp, &q) != 0)
        return;
    if ((q.value[k] = cm_http_req_query(req, "payment_intent")))
        q.field[k++] = "payment_intent";
    if ((q.value[k] = cm_http_req_query(req, "charge")))
        q.field[k++] = "charge";
    answer_list(s, resp, s->refunds, "/v1/refunds", "refund", &q);
}

static void h_list_events(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_stripe_t *s = ud;
    list_q_t q = {0};
    char name[32];
    static const char *const known[] = {LIST_PARAMS, "type", "types", "delivery_success", NULL};
    if (get_begin(s, req, resp, known) != 0 || list_query(req, resp, &q) != 0)
        return;
    if (cm_http_req_query(req, "delivery_success")) {
        answer_invalid(resp, NULL, "delivery_success",
                       "delivery_success is a Stripe parameter the simulator does not model "
                       "(docs/providers-stripe.md): leave it out or extend the simulator.");
        return;
    }
    for (size_t i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "types[%zu]", i);
        if (!(q.types[i] = cm_http_req_query(req, name)))
            break;
        q.ntypes++;
    }
    if ((q.value[0] = cm_http_req_query(req, "type")))
        q.field[0] = "type";
    if (q.field[0] && q.ntypes) {
        answer_invalid(resp, NULL, "types",
                       "You may only specify one of these parameters: type, types.");
        return;
    }
    answer_list(s, resp, s->events, "/v1/events", "event", &q);
}

/* Every route Stripe does not have, and every method a path of ours does not take: 404
 * with Stripe's message (a wrong method included: "Unrecognized request URL (GET:
 * /v1/payment_intents/pi_1/confirm)"), after the key check. */
static void h_unknown(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_stripe_t *s = ud;
    char msg[700];
    set_request_id(s, resp, NULL);
    if (!authorised(s, req, resp))
        return;
    size_t pl = strlen(req->path);
    snprintf(msg, sizeof msg,
             "Unrecognized request URL (%.10s: %.300s).%s Please see "
             "https://stripe.com/docs or we can help at https://support.stripe.com/.",
             req->method, req->path,
             pl > 1 && req->path[pl - 1] == '/'
                 ? " If you are trying to list objects, remove the trailing slash. If you are "
                   "trying to retrieve an object, make sure you passed a valid (non-empty) "
                   "identifier in your code."
                 : "");
    answer_error(resp, 404, "invalid_request_error", NULL, NULL, msg);
}

cm_err_t sim_stripe_routes(sim_stripe_t *s, cm_http_server_t *srv)
{
    static const struct {
        const char *pattern;
        cm_http_handler_fn fn;
    } routes[] = {
        {"POST /v1/payment_intents", h_create},
        {"GET /v1/payment_intents", h_list_intents},
        {"GET /v1/payment_intents/{id}", h_get},
        {"POST /v1/payment_intents/{id}/confirm", h_confirm},
        {"POST /v1/payment_intents/{id}/capture", h_capture},
        {"POST /v1/payment_intents/{id}/cancel", h_cancel},
        {"POST /v1/refunds", h_refund},
        {"GET /v1/refunds", h_list_refunds},
        {"GET /v1/refunds/{id}", h_get_refund},
        {"GET /v1/events", h_list_events},
        {"GET /v1/events/{id}", h_get_event},
        /* Last: whatever the routes above (and the server's own, added before) leave. */
        {"GET /*", h_unknown},
        {"POST /*", h_unknown},
        {"PUT /*", h_unknown},
        {"PATCH /*", h_unknown},
        {"DELETE /*", h_unknown},
        {"HEAD /*", h_unknown},
        {"OPTIONS /*", h_unknown},
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

/* Keeps ev (taken) for GET /v1/events, dropping the oldest beyond SIM_STRIPE_MAX_EVENTS.
 * Under the lock. */
static void keep_event(sim_stripe_t *s, json_t *ev)
{
    if (json_array_size(s->events) >= SIM_STRIPE_MAX_EVENTS) {
        json_object_del(s->events_by_id, cm_json_str(json_array_get(s->events, 0), "id", ""));
        json_array_remove(s->events, 0);
    }
    if (json_array_append(s->events, ev) ||
        json_object_set(s->events_by_id, cm_json_str(ev, "id", ""), ev))
        CM_WARN(COMP, "out of memory: event %s not kept", cm_json_str(ev, "id", ""));
    json_decref(ev);
}

/* Makes the Event object Stripe makes for a change (and its twin when asked), keeps it for
 * /v1/events whether or not a webhook URL is set (Stripe creates events either way), and
 * queues it for delivery when deliver and a URL is set. deliver 0: the endpoint is taken
 * not to subscribe to the type (payment_intent.created). Under the lock. */
static void record_event(sim_stripe_t *s, const op_t *o, const char *type, const json_t *object,
                         int deliver)
{
    int send = deliver && s->wh_url;
    for (int copy = 0; copy < 1 + (send && s->wh_twin ? 1 : 0); copy++) {
        char id[40];
        new_id(s, "evt_", id);
        json_t *snap = json_deep_copy(object); /* object changes later; the event does not */
        json_t *ev =
            snap ? new_event(id, type, cm_clock_now_s(), snap,
                             o && o->request_id[0] ? o->request_id : NULL, o ? o->idem_key : NULL)
                 : NULL;
        json_decref(snap);
        if (!ev) {
            CM_WARN(COMP, "out of memory: event %s not made", id);
            continue;
        }
        json_object_set_new(ev, "pending_webhooks", json_integer(send));
        char *body = send ? cm_json_dumps(ev) : NULL;
        keep_event(s, ev);
        if (send)
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
