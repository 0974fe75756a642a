/* gw_ratelimit.c - token buckets per key with reservations and LRU-bounded key count, and
 * the way to a bucket shared between processes. */
#include "gw_ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_codec.h"
#include "cm_log.h"

typedef struct {
    char *key;
    double rate, burst; /* tokens per ms is rate / 1000 */
    double tokens;
    int64_t last_ms; /* when tokens was last brought up to date */
    uint64_t used;   /* LRU stamp */
} rl_bucket_t;

struct gw_ratelimit {
    pthread_mutex_t mu;
    double rate, burst;
    rl_bucket_t *b;
    size_t n, cap;
    uint64_t clock; /* LRU counter */

    /* Sharing (gw_ratelimit_share): set before other threads use the limiter. */
    gw_rl_shared_t shared;
    char *scope;                   /* NULL: not shared */
    int shared_off;                /* atomic: the shared side said there is nothing to share */
    int64_t pause_until_ms;        /* under mu: local only until then, after a shared failure */
    uint64_t n_shared, n_fallback; /* atomic */
};

const char *gw_rl_verdict_name(gw_rl_verdict_t v)
{
    static const char *const names[] = {"ok", "wait", "reject"};
    return (unsigned)v < 3 ? names[v] : "?";
}

static int valid(double rate, double burst)
{
    return rate > 0 && rate <= 1e9 && burst >= 1 && burst <= 1e9;
}

cm_err_t gw_ratelimit_new(double rate_per_s, double burst, size_t max_keys, gw_ratelimit_t **out)
{
    if (!valid(rate_per_s, burst) || max_keys < 1 || max_keys > 1000000)
        return CM_EINVAL;
    gw_ratelimit_t *rl = calloc(1, sizeof *rl);
    if (!rl)
        return CM_ENOMEM;
    rl->b = calloc(max_keys, sizeof *rl->b);
    if (!rl->b || pthread_mutex_init(&rl->mu, NULL) != 0) {
        free(rl->b);
        free(rl);
        return CM_ENOMEM;
    }
    rl->rate = rate_per_s;
    rl->burst = burst;
    rl->cap = max_keys;
    *out = rl;
    return CM_OK;
}

void gw_ratelimit_free(gw_ratelimit_t **rl)
{
    if (!rl || !*rl)
        return;
    for (size_t i = 0; i < (*rl)->n; i++)
        free((*rl)->b[i].key);
    free((*rl)->scope);
    pthread_mutex_destroy(&(*rl)->mu);
    free((*rl)->b);
    free(*rl);
    *rl = NULL;
}

static void refill(rl_bucket_t *k, int64_t now_ms)
{
    /* A clock that has not moved (or went back) adds nothing. */
    if (now_ms > k->last_ms) {
        k->tokens += (double)(now_ms - k->last_ms) * k->rate / 1000.0;
        if (k->tokens > k->burst)
            k->tokens = k->burst;
        k->last_ms = now_ms;
    }
}

/* The bucket of key, created (full) when create is set; NULL when absent or out of memory.
 * A linear scan: a gateway has a handful of keys per provider, far below where a hash
 * would pay off. */
static rl_bucket_t *find(gw_ratelimit_t *rl, const char *key, int64_t now_ms, int create,
                         int *created)
{
    if (created)
        *created = 0;
    for (size_t i = 0; i < rl->n; i++)
        if (strcmp(rl->b[i].key, key) == 0) {
            rl->b[i].used = ++rl->clock;
            return &rl->b[i];
        }
    if (!create)
        return NULL;
    char *copy = strdup(key);
    if (!copy)
        return NULL;
    rl_bucket_t *k;
    if (rl->n < rl->cap) {
        k = &rl->b[rl->n++];
    } else {
        k = &rl->b[0];
        for (size_t i = 1; i < rl->n; i++)
            if (rl->b[i].used < k->used)
                k = &rl->b[i];
        free(k->key);
    }
    *k = (rl_bucket_t){.key = copy,
                       .rate = rl->rate,
                       .burst = rl->burst,
                       .tokens = rl->burst,
                       .last_ms = now_ms,
                       .used = ++rl->clock};
    if (created)
        *created = 1;
    return k;
}

cm_err_t gw_ratelimit_set(gw_ratelimit_t *rl, const char *key, double rate_per_s, double burst,
                          int64_t now_ms)
{
    if (!key || !valid(rate_per_s, burst))
        return CM_EINVAL;
    cm_err_t rc = CM_OK;
    pthread_mutex_lock(&rl->mu);
    int created;
    rl_bucket_t *k = find(rl, key, now_ms, 1, &created);
    if (!k) {
        rc = CM_ENOMEM;
    } else {
        refill(k, now_ms);
        k->rate = rate_per_s;
        k->burst = burst;
        if (created || k->tokens > burst)
            k->tokens = burst;
    }
    pthread_mutex_unlock(&rl->mu);
    return rc;
}

gw_rl_verdict_t gw_ratelimit_acquire(gw_ratelimit_t *rl, const char *key, int64_t now_ms,
                                     int wait_allowed, int64_t max_wait_ms, int64_t *wait_ms)
{
    gw_rl_verdict_t v;
    *wait_ms = 0;
    pthread_mutex_lock(&rl->mu);
    rl_bucket_t *k = find(rl, key, now_ms, 1, NULL);
    if (!k) {
        v = GW_RL_REJECT;
    } else {
        refill(k, now_ms);
        if (k->tokens >= 1.0) {
            k->tokens -= 1.0;
            v = GW_RL_OK;
        } else {
            /* Time until this caller's token exists, counting the reservations ahead. */
            double need_ms = (1.0 - k->tokens) * 1000.0 / k->rate;
            *wait_ms = (int64_t)ceil(need_ms - 1e-9);
            if (wait_allowed && *wait_ms <= max_wait_ms) {
                k->tokens -= 1.0;
                v = GW_RL_WAIT;
            } else {
                v = GW_RL_REJECT;
            }
        }
    }
    pthread_mutex_unlock(&rl->mu);
    return v;
}

void gw_ratelimit_refund(gw_ratelimit_t *rl, const char *key, int64_t now_ms)
{
    pthread_mutex_lock(&rl->mu);
    rl_bucket_t *k = find(rl, key, now_ms, 0, NULL);
    if (k) {
        refill(k, now_ms);
        k->tokens += 1.0;
        if (k->tokens > k->burst)
            k->tokens = k->burst;
    }
    pthread_mutex_unlock(&rl->mu);
}

double gw_ratelimit_tokens(gw_ratelimit_t *rl, const char *key, int64_t now_ms)
{
    double t;
    pthread_mutex_lock(&rl->mu);
    rl_bucket_t *k = find(rl, key, now_ms, 0, NULL);
    if (k) {
        refill(k, now_ms);
        t = k->tokens;
    } else {
        t = rl->burst;
    }
    pthread_mutex_unlock(&rl->mu);
    return t;
}

size_t gw_ratelimit_keys(gw_ratelimit_t *rl)
{
    pthread_mutex_lock(&rl->mu);
    size_t n = rl->n;
    pthread_mutex_unlock(&rl->mu);
    return n;
}

double gw_ratelimit_window_rate(double limit, int64_t window_ms, double burst)
{
    double per_window = limit - burst >= 1 ? limit - burst : 1;
    return per_window * 1000.0 / (double)(window_ms > 0 ? window_ms : 1);
}

/* ---- a bucket shared between processes ---------------------------------------------- */

cm_err_t gw_ratelimit_share(gw_ratelimit_t *rl, const gw_rl_shared_t *shared, const char *scope)
{
    if (!shared || !shared->take || !shared->refund || !scope || !*scope || strlen(scope) > 32)
        return CM_EINVAL;
    char *copy = strdup(scope);
    if (!copy)
        return CM_ENOMEM;
    free(rl->scope);
    rl->scope = copy;
    rl->shared = *shared;
    __atomic_store_n(&rl->shared_off, 0, __ATOMIC_RELAXED);
    return CM_OK;
}

/* The shared bucket's name for key (see gw_ratelimit_share). */
static void shared_name(const gw_ratelimit_t *rl, const char *key, char out[80])
{
    uint8_t d[CM_SHA256_LEN];
    char hex[2 * 16 + 1];
    cm_sha256(key, strlen(key), d);
    cm_hex_encode(d, 16, hex);
    snprintf(out, 80, "%s:%s", rl->scope, hex);
}

/* The rate and burst key's bucket has here (set, or the limiter's defaults), so that the
 * shared bucket is refilled as the local one would be. */
static void params(gw_ratelimit_t *rl, const char *key, double *rate, double *burst)
{
    pthread_mutex_lock(&rl->mu);
    *rate = rl->rate;
    *burst = rl->burst;
    for (size_t i = 0; i < rl->n; i++)
        if (strcmp(rl->b[i].key, key) == 0) {
            *rate = rl->b[i].rate;
            *burst = rl->b[i].burst;
            break;
        }
    pthread_mutex_unlock(&rl->mu);
}

enum { SHARE_NO, SHARE_ASK, SHARE_PAUSED };

/* Whether to ask the shared bucket now: not at all (not shared, or nothing to share), yes,
 * or not during the pause after a failure (the local bucket stands in for it). */
static int sharing(gw_ratelimit_t *rl, int64_t now_ms)
{
    if (!rl->scope || __atomic_load_n(&rl->shared_off, __ATOMIC_RELAXED))
        return SHARE_NO;
    pthread_mutex_lock(&rl->mu);
    int paused = now_ms < rl->pause_until_ms;
    pthread_mutex_unlock(&rl->mu);
    return paused ? SHARE_PAUSED : SHARE_ASK;
}

gw_rl_verdict_t gw_ratelimit_take(gw_ratelimit_t *rl, const char *key, int64_t now_ms,
                                  int wait_allowed, int64_t max_wait_ms, int64_t *wait_ms,
                                  gw_rl_source_t *src)
{
    int share = sharing(rl, now_ms);
    if (share == SHARE_ASK) {
        char name[80];
        double rate, burst;
        gw_rl_verdict_t v = GW_RL_REJECT;
        shared_name(rl, key, name);
        params(rl, key, &rate, &burst);
        *wait_ms = 0;
        cm_err_t rc = rl->shared.take(rl->shared.ud, name, rate, burst,
                                      wait_allowed ? max_wait_ms : 0, &v, wait_ms);
        if (rc == CM_OK) {
            __atomic_add_fetch(&rl->n_shared, 1, __ATOMIC_RELAXED);
            *src = v == GW_RL_REJECT ? GW_RL_SRC_NONE : GW_RL_SRC_SHARED;
            return v;
        }
        if (rc == CM_EAGAIN) {
            /* Nothing to share (one process owns the store): local from now on. */
            __atomic_store_n(&rl->shared_off, 1, __ATOMIC_RELAXED);
            share = SHARE_NO;
        } else {
            /* The shared bucket cannot answer (the database is down or slow). Refusing
             * every call until it is back would stop the bookings for as long as the
             * database is away, while the local bucket still keeps this instance under the
             * provider's limit on its own: during the outage the instances together may go
             * over it (at most their number times it), and the provider's 429s, which the
             * policy honours, cover that. The fallbacks are counted
             * (gw_ratelimit_shared_fallbacks_total), so an operator sees it happen. */
            share = SHARE_PAUSED;
            pthread_mutex_lock(&rl->mu);
            rl->pause_until_ms = now_ms + GW_RL_SHARED_PAUSE_MS;
            pthread_mutex_unlock(&rl->mu);
            CM_WARN("gw.ratelimit",
                    "%s: the shared rate limit did not answer (%s); this instance's own bucket "
                    "is used for %d ms",
                    rl->scope, cm_strerror(rc), GW_RL_SHARED_PAUSE_MS);
        }
    }
    gw_rl_verdict_t v = gw_ratelimit_acquire(rl, key, now_ms, wait_allowed, max_wait_ms, wait_ms);
    if (v == GW_RL_REJECT)
        *src = GW_RL_SRC_NONE;
    else if (share == SHARE_PAUSED)
        *src = GW_RL_SRC_FALLBACK;
    else
        *src = GW_RL_SRC_LOCAL;
    if (*src == GW_RL_SRC_FALLBACK)
        __atomic_add_fetch(&rl->n_fallback, 1, __ATOMIC_RELAXED);
    return v;
}

void gw_ratelimit_give_back(gw_ratelimit_t *rl, const char *key, int64_t now_ms, gw_rl_source_t src)
{
    if (src == GW_RL_SRC_LOCAL || src == GW_RL_SRC_FALLBACK) {
        gw_ratelimit_refund(rl, key, now_ms);
    } else if (src == GW_RL_SRC_SHARED) {
        char name[80];
        double rate, burst;
        shared_name(rl, key, name);
        params(rl, key, &rate, &burst);
        if (rl->shared.refund(rl->shared.ud, name, rate, burst) != CM_OK)
            CM_DEBUG("gw.ratelimit", "%s: a token could not be given back to the shared bucket",
                     rl->scope);
    }
}

void gw_ratelimit_shared_stats(gw_ratelimit_t *rl, uint64_t *shared, uint64_t *fallbacks)
{
    if (shared)
        *shared = __atomic_load_n(&rl->n_shared, __ATOMIC_RELAXED);
    if (fallbacks)
        *fallbacks = __atomic_load_n(&rl->n_fallback, __ATOMIC_RELAXED);
}
