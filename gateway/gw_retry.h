/* gw_retry.h - when an outbound call may be retried, how long to wait, and a retry budget.
 *
 * gw_retry_decide is a pure function of its arguments (plus the generator and the budget it
 * is handed): given what the last attempt produced, whether the operation is safe to
 * repeat, and how many attempts were made, it says retry-after-N-ms or why not. The rules,
 * first match wins:
 *   1. success (2xx/3xx) or a definitive business answer (GW_ATT_REFUSED): done;
 *   2. Stripe-Should-Retry: "true" retries, "false" does not - the provider knows whether
 *      the request took effect better than any status code (max attempts, Retry-After's cap
 *      and the budget still apply: they protect the provider, not the request);
 *   3. connect error: retried, even for unsafe operations (nothing was sent);
 *   4. 429: retried, even for unsafe operations (rate limiters answer before executing);
 *   5. timeout, other transport error, 5xx, 409: retried only when safe (idempotent, or the
 *      request carries an Idempotency-Key), because the first attempt may have taken effect;
 *   6. any other 4xx (and 1xx, unknown): never.
 * A retry waits full-jitter back-off, uniform in [0, min(cap, base * factor^(n-1))] after
 * the n-th attempt, but never less than Retry-After (seconds or HTTP-date) when the answer
 * carries one; a Retry-After longer than max_retry_after_ms means the provider will not be
 * back in time: no retry.
 *
 * The budget (optional) caps retries at ratio * calls + min_per_s * window over a sliding
 * window, so that a provider outage does not multiply the load sent to it.
 *
 * Thread-safety: gw_retry_decide and the parsers are thread-safe as long as each thread
 * passes its own cm_rand_t; a gw_retry_budget_t is safe from any thread (mutex).
 */
#ifndef GW_RETRY_H
#define GW_RETRY_H

#include <stdint.h>

#include "cm_err.h"
#include "cm_rand.h"

typedef enum {
    GW_ATT_OK = 0,    /* an HTTP answer arrived: see status */
    GW_ATT_CONNECT,   /* could not connect: no byte of the request was sent */
    GW_ATT_TIMEOUT,   /* connected, then timed out: the request may have been executed */
    GW_ATT_TRANSPORT, /* other transport failure after connecting (reset, truncated answer) */
    GW_ATT_REFUSED,   /* the provider answered definitively (e.g. slot taken): never retried */
} gw_att_kind_t;

const char *gw_att_kind_name(gw_att_kind_t k);

/* What one attempt produced. Strings are borrowed for the duration of the call. */
typedef struct {
    gw_att_kind_t kind;
    int status;               /* HTTP status when kind is GW_ATT_OK */
    const char *retry_after;  /* Retry-After header value, or NULL */
    const char *should_retry; /* Stripe-Should-Retry header value, or NULL */
} gw_att_result_t;

typedef struct {
    int max_attempts;           /* attempts in all, the first included (>= 1) */
    int64_t base_ms;            /* back-off after the first attempt is within [0, base] */
    double factor;              /* >= 1 */
    int64_t cap_ms;             /* the back-off ceiling never exceeds this */
    int64_t max_retry_after_ms; /* a longer Retry-After means: give up now */
} gw_retry_config_t;

/* 4 attempts, base 200 ms, factor 2, cap 10 s, Retry-After up to 60 s. */
void gw_retry_config_default(gw_retry_config_t *c);
cm_err_t gw_retry_config_check(const gw_retry_config_t *c, char *err) CM_WUR;

typedef enum {
    GW_RETRY_YES = 0,        /* retry after delay_ms */
    GW_RETRY_NO_DONE,        /* success or definitive answer: nothing to retry */
    GW_RETRY_NO_PERMANENT,   /* the answer cannot change on retry (4xx...) */
    GW_RETRY_NO_UNSAFE,      /* would be retried, but the operation is not safe to repeat */
    GW_RETRY_NO_PROVIDER,    /* Stripe-Should-Retry: false */
    GW_RETRY_NO_EXHAUSTED,   /* max_attempts reached */
    GW_RETRY_NO_RETRY_AFTER, /* Retry-After beyond max_retry_after_ms */
    GW_RETRY_NO_BUDGET,      /* the retry budget is spent */
} gw_retry_verdict_t;

/* "yes", "done", "permanent", "unsafe", "provider_said_no", "exhausted",
 * "retry_after_too_long", "budget". Suitable as a metrics label value. */
const char *gw_retry_verdict_name(gw_retry_verdict_t v);

typedef struct {
    gw_retry_verdict_t verdict;
    int64_t delay_ms;       /* GW_RETRY_YES: how long to wait before the next attempt */
    int64_t retry_after_ms; /* the Retry-After the answer asked for, -1 when none/unparsable */
} gw_retry_decision_t;

typedef struct gw_retry_budget gw_retry_budget_t;

/* Decides after attempt number `attempt` (1 = the first) ended with *r. safe: the operation
 * is idempotent or carries an idempotency key. now_wall_ms (epoch ms, cm_clock_now_ms) is
 * what an HTTP-date Retry-After is measured against; now_mono_ms is for the budget.
 * rng draws the jitter (only when the verdict is yes). budget may be NULL (no budget);
 * otherwise one retry is withdrawn from it only when every other rule says yes. */
gw_retry_decision_t gw_retry_decide(const gw_retry_config_t *c, int safe, const gw_att_result_t *r,
                                    int attempt, int64_t now_wall_ms, int64_t now_mono_ms,
                                    cm_rand_t *rng, gw_retry_budget_t *budget);

/* The full-jitter back-off after attempt n (n >= 1): uniform in [0, ceiling(n)]. */
int64_t gw_retry_backoff_ms(const gw_retry_config_t *c, int n, cm_rand_t *rng);
/* min(cap, base * factor^(n-1)), without overflow for any n. */
int64_t gw_retry_ceiling_ms(const gw_retry_config_t *c, int n);

/* Parses a Retry-After value: delta-seconds ("120") or an HTTP-date in any of the three
 * forms RFC 9110 says recipients must accept (IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT",
 * RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT", asctime "Sun Nov  6 08:49:37 1994"). A date
 * is turned into a wait from now_wall_ms (a date in the past is 0). Returns 0 and sets
 * *wait_ms, or -1 when v is not one of these. */
int gw_retry_parse_retry_after(const char *v, int64_t now_wall_ms, int64_t *wait_ms);

/* Parses an HTTP-date (the three forms above) into epoch ms. Returns 0, or -1. */
int gw_retry_parse_http_date(const char *v, int64_t *epoch_ms);

/* ---- retry budget ------------------------------------------------------------------ */

typedef struct {
    double ratio;     /* retries allowed per call in the window, e.g. 0.2 (20 %) */
    double min_per_s; /* floor: retries per second always allowed, so low traffic can retry */
    int window_s;     /* sliding window in seconds, 1..600 */
} gw_retry_budget_config_t;

/* 20 % of calls over 10 s, with a floor of 1 retry per second. */
void gw_retry_budget_config_default(gw_retry_budget_config_t *c);

/* Creates a budget; CM_EINVAL (err says why) or CM_ENOMEM. */
cm_err_t gw_retry_budget_new(const gw_retry_budget_config_t *c, gw_retry_budget_t **out,
                             char *err) CM_WUR;
void gw_retry_budget_free(gw_retry_budget_t **b);

/* Counts one call (a first attempt, not a retry) at now_ms (monotonic). */
void gw_retry_budget_deposit(gw_retry_budget_t *b, int64_t now_ms);

/* Takes one retry if the window allows it (retries + 1 <= ratio * calls + min_per_s *
 * window). Returns 1 when taken, 0 when the budget is spent (nothing changes). */
int gw_retry_budget_withdraw(gw_retry_budget_t *b, int64_t now_ms);

typedef struct {
    int64_t calls, retries; /* in the window */
    uint64_t rejected;      /* withdrawals refused since creation */
} gw_retry_budget_stats_t;

void gw_retry_budget_stats(gw_retry_budget_t *b, int64_t now_ms, gw_retry_budget_stats_t *out);

#endif
