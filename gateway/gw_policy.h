/* gw_policy.h - runs one outbound call through the policy stack:
 *
 *     rate limit > circuit breaker > timeout > attempt > retry (full jitter, budget) > ...
 *
 * The call itself is a callback that makes one attempt and classifies what happened
 * (gw_att_result_t), so this module knows nothing about HTTP clients or providers and the
 * tests drive it with a fake. Time and sleeping are injected too (gw_policy_clock_t):
 * production passes gw_policy_clock_real, tests a clock that only moves when they say.
 *
 * Per attempt: a token is taken from the rate limiter (waiting for it or failing fast, as
 * the operation says; from the bucket shared by every instance when the limiter has one,
 * see gw_ratelimit_take; a token whose call is then refused by the breaker is given back
 * to the bucket it came from), a
 * breaker permit is acquired (rejection ends the run at once: an open breaker means "do not
 * call", retrying inside the run would defeat it), the attempt runs with a timeout that
 * never reaches past the run's overall deadline, the permit is finished with the outcome
 * (connect error, timeout, transport error, 5xx and 401 - the API key refused - are
 * failures; 429 releases the permit without an outcome because a throttling provider is a
 * healthy one; any other answer is a success), and gw_retry_decide says whether and when to try
 * again. A back-off that would end past the deadline ends the run instead of sleeping.
 *
 * Thread-safety: gw_policy_run may run on many threads at once with the same gw_policy_t
 * (it is only read) as long as each passes its own cm_rand_t; the breaker, limiter and
 * budget it points to are thread-safe.
 */
#ifndef GW_POLICY_H
#define GW_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "cm_http_client.h"
#include "cm_rand.h"
#include "gw_breaker.h"
#include "gw_ratelimit.h"
#include "gw_retry.h"

typedef struct {
    int64_t (*mono_ms)(void *ud); /* monotonic ms: breaker, limiter, budget, deadlines */
    int64_t (*wall_ms)(void *ud); /* epoch ms: HTTP-date Retry-After */
    /* Sleeps ms; returns 0, or non-zero when the sleep was cut short (shutting down),
     * which ends the run with GW_POL_ABORTED. */
    int (*sleep_ms)(void *ud, int64_t ms);
    void *ud;
} gw_policy_clock_t;

/* cm_clock_mono_ms, cm_clock_now_ms and cm_clock_sleep_ms (never cut short). */
void gw_policy_clock_real(gw_policy_clock_t *c);

typedef struct {
    int attempt;                /* 1 for the first */
    int64_t connect_timeout_ms; /* never more than timeout_ms */
    int64_t timeout_ms;         /* for the whole exchange of this attempt */
} gw_attempt_ctx_t;

/* Makes one attempt and fills *out. Strings out points to (Retry-After, Stripe-Should-Retry
 * values) must stay valid until the next call of the function or the end of the run. */
typedef void (*gw_attempt_fn)(void *ud, const gw_attempt_ctx_t *ctx, gw_att_result_t *out);

typedef enum {
    GW_POL_EV_ATTEMPT = 0, /* an attempt ended: result, duration_ms */
    GW_POL_EV_RETRY,       /* about to sleep delay_ms before the next attempt */
    GW_POL_EV_GIVE_UP,     /* no more attempts: verdict says why */
    GW_POL_EV_BREAKER_REJECT,
    GW_POL_EV_RL_WAIT, /* about to sleep delay_ms for a rate-limit token */
    GW_POL_EV_RL_REJECT,
    /* the shared rate limit did not answer: this process's own bucket did (gw_ratelimit_take) */
    GW_POL_EV_RL_FALLBACK,
} gw_policy_event_type_t;

typedef struct {
    gw_policy_event_type_t type;
    int attempt;
    const gw_att_result_t *result; /* GW_POL_EV_ATTEMPT, GW_POL_EV_RETRY, GW_POL_EV_GIVE_UP */
    int64_t duration_ms;           /* GW_POL_EV_ATTEMPT */
    int64_t delay_ms;              /* GW_POL_EV_RETRY, GW_POL_EV_RL_WAIT */
    gw_retry_verdict_t verdict;    /* GW_POL_EV_RETRY (yes), GW_POL_EV_GIVE_UP */
    gw_brk_verdict_t breaker;      /* GW_POL_EV_BREAKER_REJECT */
} gw_policy_event_t;

typedef struct gw_policy gw_policy_t;
/* For metrics and logs; called on the running thread, must not block. */
typedef void (*gw_policy_event_fn)(void *ud, const gw_policy_t *p, const gw_policy_event_t *e);

/* One provider operation's policy. Everything is borrowed; NULL breaker, ratelimit or
 * budget leaves that layer out. */
struct gw_policy {
    const char *provider;  /* "calcom", for events */
    const char *operation; /* "book", for events */
    gw_breaker_t *breaker;
    gw_ratelimit_t *ratelimit;
    const char *rl_key;      /* the limiter key: provider + API key id */
    int rl_wait;             /* wait for a token (workers) rather than fail fast */
    int64_t rl_max_wait_ms;  /* longest wait for a token */
    gw_retry_config_t retry; /* max_attempts 1: no retries */
    gw_retry_budget_t *budget;
    int safe; /* idempotent (GET) or carries an Idempotency-Key: see gw_retry.h */
    /* Per attempt (reads are usually given less than writes, which may queue server side). */
    int64_t connect_timeout_ms;
    int64_t attempt_timeout_ms;
    int64_t deadline_ms; /* the whole run, waits included; 0: none */
    gw_policy_event_fn on_event;
    void *event_ud;
};

typedef enum {
    GW_POL_DONE = 0,     /* an answer to act on: 2xx/3xx or GW_ATT_REFUSED (see last) */
    GW_POL_FAILED,       /* attempts ended without such an answer; verdict says why */
    GW_POL_BREAKER_OPEN, /* the breaker refused the (next) attempt */
    GW_POL_RATE_LIMITED, /* no token within the allowed wait */
    GW_POL_DEADLINE,     /* the overall deadline left no time for the next attempt */
    GW_POL_ABORTED,      /* a sleep was cut short */
} gw_policy_status_t;

/* "done", "failed", "breaker_open", "rate_limited", "deadline", "aborted". */
const char *gw_policy_status_name(gw_policy_status_t s);

typedef struct {
    gw_policy_status_t status;
    gw_retry_verdict_t verdict; /* the last retry decision (GW_RETRY_NO_DONE on success) */
    gw_att_result_t last;       /* the last attempt's result; its strings may be gone */
    int attempts;               /* attempts made */
    int64_t waited_ms;          /* slept in total (tokens and back-off) */
    /* Worth trying the whole operation again later (a job scheduler reschedules it):
     * breaker open, rate limited, deadline, attempts or budget exhausted, Retry-After
     * too long. Not for permanent answers, nor for unsafe operations whose attempt may
     * have taken effect. */
    int transient;
    int64_t retry_in_ms; /* when transient: a hint (breaker wait, Retry-After, token), or 0 */
} gw_policy_outcome_t;

/* Classifies what cm_http_client_do returned, for an attempt function: CM_ECONNECT ->
 * GW_ATT_CONNECT, CM_ETIMEOUT -> GW_ATT_TIMEOUT (libcurl reports a connect timeout the same
 * way, so it is treated as "may have been sent": the cautious side), any other transport
 * error -> GW_ATT_TRANSPORT, CM_OK -> GW_ATT_OK with the status, and the Retry-After and
 * Stripe-Should-Retry values copied into ra / sr (cap bytes each) and pointed to by *out.
 * A provider's definitive business answers (a taken slot) are the caller's to mark
 * GW_ATT_REFUSED afterwards. */
void gw_policy_classify_http(cm_err_t rc, const cm_http_response_t *resp, gw_att_result_t *out,
                             char *ra, size_t ra_cap, char *sr, size_t sr_cap);

/* Runs the operation. Returns out->status. rng draws the jitter (the caller's own). */
gw_policy_status_t gw_policy_run(const gw_policy_t *p, const gw_policy_clock_t *clk, cm_rand_t *rng,
                                 gw_attempt_fn fn, void *fn_ud, gw_policy_outcome_t *out);

#endif
