/* gw_ratelimit.c - token buckets per key with reservations and LRU-bounded key count. */
#include "gw_ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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
