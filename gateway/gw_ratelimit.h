/* gw_ratelimit.h - token-bucket rate limits per key (provider + API key), so the gateway
 * stays under each provider's published limit (Cal.com 120 requests/min per API key,
 * Stripe 25/s in test mode, 100/s live) instead of learning it from 429s.
 *
 * A limiter holds one bucket per key, created on first use with the limiter's default
 * rate and burst, or with the values set for that key. A caller that may wait gets a
 * reservation: the token is taken now (the bucket may go into debt) and the caller sleeps
 * the returned time before sending, so waiting callers are served in order and the long
 * run rate never exceeds the limit. A caller that must not wait (an inbound request path)
 * is refused at once when no token is there.
 *
 * Time is passed in (now_ms, monotonic). The number of keys is bounded: when full, the
 * least recently used key is forgotten (it starts again full, which is what an idle key's
 * bucket would be anyway once it has refilled).
 *
 * Keys are copied; pass an identifier of the API key rather than the key itself where one
 * exists: the limiter never logs or exposes keys, but it keeps them in memory.
 *
 * Several processes calling a provider with one API key (gateway instances on one
 * PostgreSQL) must share the provider's limit, which counts the key's calls whoever makes
 * them: a limiter given a shared bucket (gw_ratelimit_share) takes its tokens there
 * (gw_ratelimit_take), under the same rate and burst, and keeps its own buckets for when
 * the shared one cannot answer (see gw_ratelimit_take). gw_ratelimit_acquire and
 * gw_ratelimit_refund always use the process's own buckets.
 *
 * Thread-safety: every function is safe from any thread (one mutex per limiter), except
 * gw_ratelimit_free and gw_ratelimit_share.
 */
#ifndef GW_RATELIMIT_H
#define GW_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "cm_err.h"

typedef struct gw_ratelimit gw_ratelimit_t;

/* rate_per_s > 0 tokens per second, burst >= 1 tokens (the bucket's size). max_keys >= 1.
 * CM_EINVAL or CM_ENOMEM. */
cm_err_t gw_ratelimit_new(double rate_per_s, double burst, size_t max_keys,
                          gw_ratelimit_t **out) CM_WUR;
void gw_ratelimit_free(gw_ratelimit_t **rl);

/* Sets the rate and burst of one key (created if needed, starting full; an existing
 * bucket keeps its tokens, capped at the new burst). CM_EINVAL, CM_ENOMEM. */
cm_err_t gw_ratelimit_set(gw_ratelimit_t *rl, const char *key, double rate_per_s, double burst,
                          int64_t now_ms) CM_WUR;

typedef enum {
    GW_RL_OK = 0, /* a token was taken: go now */
    GW_RL_WAIT,   /* a token is reserved: sleep *wait_ms, then go (do not call again) */
    GW_RL_REJECT  /* no token, and waiting is not allowed or would exceed max_wait_ms */
} gw_rl_verdict_t;

/* "ok", "wait", "reject". */
const char *gw_rl_verdict_name(gw_rl_verdict_t v);

/* Takes one token for key at now_ms. With wait_allowed and a wait of at most max_wait_ms,
 * reserves it and returns GW_RL_WAIT with *wait_ms set; otherwise GW_RL_REJECT leaves the
 * bucket as it was and sets *wait_ms to the wait that would have been needed. *wait_ms is
 * 0 on GW_RL_OK. Out of memory for a new key also rejects (and the call is not limited
 * more than it would have been: it is refused). */
gw_rl_verdict_t gw_ratelimit_acquire(gw_ratelimit_t *rl, const char *key, int64_t now_ms,
                                     int wait_allowed, int64_t max_wait_ms, int64_t *wait_ms);

/* Gives back a token taken by acquire whose call was not made (e.g. the breaker refused it
 * afterwards), so that refused calls do not eat the provider's quota. */
void gw_ratelimit_refund(gw_ratelimit_t *rl, const char *key, int64_t now_ms);

/* Tokens available for key at now_ms (negative while reservations are outstanding);
 * the limiter's burst for an unknown key. */
double gw_ratelimit_tokens(gw_ratelimit_t *rl, const char *key, int64_t now_ms);

/* The refill rate (tokens per second) of a bucket with this burst that never lets more
 * than limit calls through in any window of window_ms, as a provider's "N per minute"
 * counts them (Cal.com's throttler: the calls of the last minute). A bucket refilled at
 * limit/window lets limit + burst through in one window, which a sliding counter
 * answers with 429s. At least one token per window. */
double gw_ratelimit_window_rate(double limit, int64_t window_ms, double burst);

/* Keys currently held. */
size_t gw_ratelimit_keys(gw_ratelimit_t *rl);

/* ---- a bucket shared between processes ------------------------------------------------ */

/* A token bucket kept outside the process (the store's, gw_store_rl_take), timed by its own
 * clock. The functions may be called from any thread at once.
 * take: one token from bucket key (created full on first use) refilled at rate_per_s up to
 *   burst, reserved when it would come within max_wait_ms (0: never wait). CM_OK with *v
 *   (GW_RL_OK, GW_RL_WAIT or GW_RL_REJECT) and *wait_ms as gw_ratelimit_acquire sets them;
 *   CM_EAGAIN when there is nothing to share (a store only one process uses): the limiter
 *   stops asking; any other error: no answer this time.
 * refund: gives one token back to key's bucket (capped at burst). */
typedef struct {
    cm_err_t (*take)(void *ud, const char *key, double rate_per_s, double burst,
                     int64_t max_wait_ms, gw_rl_verdict_t *v, int64_t *wait_ms);
    cm_err_t (*refund)(void *ud, const char *key, double rate_per_s, double burst);
    void *ud;
} gw_rl_shared_t;

/* Where gw_ratelimit_take found the token, for gw_ratelimit_give_back. */
typedef enum {
    GW_RL_SRC_NONE = 0, /* no token (GW_RL_REJECT) */
    GW_RL_SRC_LOCAL,    /* the process's own bucket: no sharing */
    GW_RL_SRC_SHARED,   /* the shared bucket */
    GW_RL_SRC_FALLBACK  /* the process's own bucket because the shared one failed (now or
                         * within the last GW_RL_SHARED_PAUSE_MS) */
} gw_rl_source_t;

/* Takes tokens from shared (copied; its ud is borrowed until gw_ratelimit_free) from now on.
 * Each key's shared bucket is named "<scope>:<SHA-256 of the key, 32 hex digits>": the name
 * is stored where other processes read it, an API key must not be; scope (copied, e.g.
 * "calcom") keeps providers apart. Call before the limiter is used by other threads.
 * CM_EINVAL (a NULL function or scope), CM_ENOMEM. */
cm_err_t gw_ratelimit_share(gw_ratelimit_t *rl, const gw_rl_shared_t *shared,
                            const char *scope) CM_WUR;

/* gw_ratelimit_acquire through the shared bucket when there is one, with the rate and burst
 * this limiter has for key; *src says where the token came from (GW_RL_SRC_NONE on
 * GW_RL_REJECT). When the shared bucket fails, the local
 * bucket answers (GW_RL_SRC_FALLBACK) and the shared one is not asked again for
 * GW_RL_SHARED_PAUSE_MS (now_ms), so an unreachable database does not cost every call a
 * connection attempt. */
gw_rl_verdict_t gw_ratelimit_take(gw_ratelimit_t *rl, const char *key, int64_t now_ms,
                                  int wait_allowed, int64_t max_wait_ms, int64_t *wait_ms,
                                  gw_rl_source_t *src);
#define GW_RL_SHARED_PAUSE_MS 1000

/* Gives back a token gw_ratelimit_take took (src as it said) to the bucket it came from. A
 * shared refund that fails leaves the token spent: the safe side of the provider's limit. */
void gw_ratelimit_give_back(gw_ratelimit_t *rl, const char *key, int64_t now_ms,
                            gw_rl_source_t src);

/* Takes the shared bucket answered, and tokens the local bucket gave because the shared
 * one failed (GW_RL_SRC_FALLBACK), since gw_ratelimit_new (either pointer may be NULL). */
void gw_ratelimit_shared_stats(gw_ratelimit_t *rl, uint64_t *shared, uint64_t *fallbacks);

#endif
