/* gw_breaker.c - circuit breaker state machine with count or time windows and a journal. */
#include "gw_breaker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REASON_LEN 96

enum { F_FAIL = 1, F_SLOW = 2 };

typedef struct {
    int64_t sec; /* which second this bucket holds */
    int calls, fails, slow;
} bucket_t;

typedef struct {
    int64_t at_ms; /* monotonic */
    gw_brk_state_t from, to;
    char reason[REASON_LEN];
} jentry_t;

struct gw_breaker {
    pthread_mutex_t mu;
    char name[64];
    gw_brk_config_t cfg;
    gw_brk_transition_fn cb;
    void *cb_ud;

    gw_brk_state_t state;
    uint64_t gen; /* bumped on every transition; permits from older generations are stale */
    int64_t open_until_ms;
    int consecutive;
    int ho_in_flight, ho_successes;

    /* Window totals, kept up to date incrementally so a record is O(1) amortised. */
    int calls, fails, slow;
    uint8_t *ring; /* count window: one F_ flag set per call */
    int ring_pos, ring_len;
    bucket_t *buckets; /* time window: one bucket per second */
    int64_t head_sec;  /* the newest second the buckets account for */

    jentry_t *journal;
    size_t jhead, jlen;
    uint64_t transitions, rejected;
};

const char *gw_brk_state_name(gw_brk_state_t s)
{
    static const char *const names[] = {"closed", "open", "half_open", "forced_open", "disabled"};
    return (unsigned)s < GW_BRK__STATES ? names[s] : "?";
}

const char *gw_brk_verdict_name(gw_brk_verdict_t v)
{
    static const char *const names[] = {"permitted", "open", "forced_open", "half_open_full"};
    return (unsigned)v < 4 ? names[v] : "?";
}

void gw_brk_config_default(gw_brk_config_t *c)
{
    *c = (gw_brk_config_t){
        .window_type = GW_BRK_WINDOW_COUNT,
        .window_size = 20,
        .failure_rate_pct = 50,
        .slow_call_ms = 0,
        .slow_rate_pct = 0,
        .min_calls = 10,
        .consecutive_failures = 5,
        .open_wait_ms = 60000,
        .half_open_permits = 3,
        .half_open_successes = 2,
        .journal_cap = 64,
    };
}

cm_err_t gw_brk_config_check(const gw_brk_config_t *c, char *err)
{
    int max_window = c->window_type == GW_BRK_WINDOW_TIME ? 3600 : 10000;
    if (c->window_type != GW_BRK_WINDOW_COUNT && c->window_type != GW_BRK_WINDOW_TIME)
        cm_errf(err, "window_type: unknown");
    else if (c->window_size < 1 || c->window_size > max_window)
        cm_errf(err, "window_size: %d not in 1..%d", c->window_size, max_window);
    else if (c->failure_rate_pct < 0 || c->failure_rate_pct > 100)
        cm_errf(err, "failure_rate_pct: %d not in 0..100", c->failure_rate_pct);
    else if (c->slow_rate_pct < 0 || c->slow_rate_pct > 100)
        cm_errf(err, "slow_rate_pct: %d not in 0..100", c->slow_rate_pct);
    else if (c->slow_call_ms < 0)
        cm_errf(err, "slow_call_ms: negative");
    else if (c->min_calls < 1)
        cm_errf(err, "min_calls: %d must be >= 1", c->min_calls);
    else if (c->consecutive_failures < 0)
        cm_errf(err, "consecutive_failures: negative");
    else if (c->open_wait_ms < 0)
        cm_errf(err, "open_wait_ms: negative");
    else if (c->half_open_permits < 1)
        cm_errf(err, "half_open_permits: %d must be >= 1", c->half_open_permits);
    else if (c->half_open_successes < 1 || c->half_open_successes > c->half_open_permits)
        cm_errf(err, "half_open_successes: %d not in 1..half_open_permits (%d)",
                c->half_open_successes, c->half_open_permits);
    else if (c->journal_cap < 1 || c->journal_cap > 100000)
        cm_errf(err, "journal_cap: %zu not in 1..100000", c->journal_cap);
    else
        return CM_OK;
    return CM_EINVAL;
}

cm_err_t gw_breaker_new(const char *name, const gw_brk_config_t *cfg, gw_breaker_t **out, char *err)
{
    cm_err_t rc = gw_brk_config_check(cfg, err);
    if (rc)
        return rc;
    gw_breaker_t *b = calloc(1, sizeof *b);
    if (!b)
        return CM_ENOMEM;
    b->cfg = *cfg;
    snprintf(b->name, sizeof b->name, "%s", name ? name : "");
    b->journal = calloc(cfg->journal_cap, sizeof *b->journal);
    if (cfg->window_type == GW_BRK_WINDOW_COUNT)
        b->ring = calloc((size_t)cfg->window_size, 1);
    else
        b->buckets = calloc((size_t)cfg->window_size, sizeof *b->buckets);
    if (!b->journal || (!b->ring && !b->buckets) || pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b->journal);
        free(b->ring);
        free(b->buckets);
        free(b);
        return CM_ENOMEM;
    }
    b->state = GW_BRK_CLOSED;
    b->head_sec = INT64_MIN;
    *out = b;
    return CM_OK;
}

void gw_breaker_free(gw_breaker_t **b)
{
    if (!b || !*b)
        return;
    pthread_mutex_destroy(&(*b)->mu);
    free((*b)->journal);
    free((*b)->ring);
    free((*b)->buckets);
    free(*b);
    *b = NULL;
}

void gw_breaker_set_callback(gw_breaker_t *b, gw_brk_transition_fn fn, void *ud)
{
    pthread_mutex_lock(&b->mu);
    b->cb = fn;
    b->cb_ud = ud;
    pthread_mutex_unlock(&b->mu);
}

const char *gw_breaker_name(const gw_breaker_t *b)
{
    return b->name;
}

/* ---- window ------------------------------------------------------------------------ */

static void window_clear(gw_breaker_t *b)
{
    b->calls = b->fails = b->slow = 0;
    if (b->ring) {
        memset(b->ring, 0, (size_t)b->cfg.window_size);
        b->ring_pos = b->ring_len = 0;
    } else {
        memset(b->buckets, 0, (size_t)b->cfg.window_size * sizeof *b->buckets);
        b->head_sec = INT64_MIN;
    }
}

/* Drops the buckets of seconds that have left a time window ending at now_ms. Steps at
 * most window_size buckets, so a long idle gap costs no more than one full clear. */
static void window_advance(gw_breaker_t *b, int64_t now_ms)
{
    if (!b->buckets)
        return;
    int n = b->cfg.window_size;
    int64_t now_sec = now_ms >= 0 ? now_ms / 1000 : (now_ms - 999) / 1000;
    if (b->head_sec == INT64_MIN || now_sec - b->head_sec >= n) {
        window_clear(b);
        b->head_sec = now_sec;
        return;
    }
    /* A clock that goes backwards (it should not: it is monotonic) keeps the newer head. */
    while (b->head_sec < now_sec) {
        b->head_sec++;
        bucket_t *k = &b->buckets[((b->head_sec % n) + n) % n];
        b->calls -= k->calls;
        b->fails -= k->fails;
        b->slow -= k->slow;
        *k = (bucket_t){.sec = b->head_sec};
    }
}

static void window_add(gw_breaker_t *b, int flags, int64_t now_ms)
{
    if (b->ring) {
        int n = b->cfg.window_size;
        if (b->ring_len == n) {
            uint8_t old = b->ring[b->ring_pos];
            b->calls--;
            b->fails -= (old & F_FAIL) != 0;
            b->slow -= (old & F_SLOW) != 0;
        } else {
            b->ring_len++;
        }
        b->ring[b->ring_pos] = (uint8_t)flags;
        b->ring_pos = (b->ring_pos + 1) % n;
    } else {
        window_advance(b, now_ms);
        int n = b->cfg.window_size;
        bucket_t *k = &b->buckets[((b->head_sec % n) + n) % n];
        k->calls++;
        k->fails += (flags & F_FAIL) != 0;
        k->slow += (flags & F_SLOW) != 0;
    }
    b->calls++;
    b->fails += (flags & F_FAIL) != 0;
    b->slow += (flags & F_SLOW) != 0;
}

/* ---- transitions ------------------------------------------------------------------- */

static void transition(gw_breaker_t *b, gw_brk_state_t to, int64_t now_ms, const char *reason)
{
    gw_brk_state_t from = b->state;
    jentry_t *e;
    size_t cap = b->cfg.journal_cap;
    if (b->jlen < cap) {
        e = &b->journal[(b->jhead + b->jlen) % cap];
        b->jlen++;
    } else {
        e = &b->journal[b->jhead];
        b->jhead = (b->jhead + 1) % cap;
    }
    e->at_ms = now_ms;
    e->from = from;
    e->to = to;
    snprintf(e->reason, sizeof e->reason, "%s", reason);

    b->state = to;
    b->gen++;
    b->transitions++;
    b->ho_in_flight = b->ho_successes = 0;
    b->consecutive = 0;
    b->open_until_ms = 0;
    /* Every state starts from a clean window: counts from before an outage must not
     * reopen a breaker that has just closed, nor keep old successes diluting new failures. */
    window_clear(b);
    if (to == GW_BRK_OPEN)
        b->open_until_ms = now_ms + b->cfg.open_wait_ms;
    if (b->cb)
        b->cb(b->cb_ud, b->name, from, to, e->reason, now_ms);
}

static void lazy_tick(gw_breaker_t *b, int64_t now_ms)
{
    if (b->state == GW_BRK_OPEN && now_ms >= b->open_until_ms)
        transition(b, GW_BRK_HALF_OPEN, now_ms, "open wait elapsed");
}

void gw_breaker_tick(gw_breaker_t *b, int64_t now_ms)
{
    pthread_mutex_lock(&b->mu);
    lazy_tick(b, now_ms);
    pthread_mutex_unlock(&b->mu);
}

/* ---- calls ------------------------------------------------------------------------- */

gw_brk_verdict_t gw_breaker_acquire(gw_breaker_t *b, int64_t now_ms, gw_brk_permit_t *p)
{
    gw_brk_verdict_t v = GW_BRK_PERMITTED;
    *p = (gw_brk_permit_t){0};
    pthread_mutex_lock(&b->mu);
    lazy_tick(b, now_ms);
    switch (b->state) {
    case GW_BRK_OPEN:
        v = GW_BRK_REJ_OPEN;
        p->retry_in_ms = b->open_until_ms - now_ms;
        break;
    case GW_BRK_FORCED_OPEN:
        v = GW_BRK_REJ_FORCED_OPEN;
        break;
    case GW_BRK_HALF_OPEN:
        if (b->ho_in_flight >= b->cfg.half_open_permits)
            v = GW_BRK_REJ_HALF_OPEN_FULL;
        else {
            b->ho_in_flight++;
            p->_half_open = 1;
        }
        break;
    case GW_BRK_CLOSED:
    case GW_BRK_DISABLED:
    default:
        break;
    }
    if (v == GW_BRK_PERMITTED) {
        p->_b = b;
        p->_gen = b->gen;
        p->_start_ms = now_ms;
        p->_active = 1;
    } else {
        b->rejected++;
    }
    pthread_mutex_unlock(&b->mu);
    return v;
}

static void record_closed(gw_breaker_t *b, int flags, int64_t now_ms)
{
    char why[REASON_LEN];
    const gw_brk_config_t *c = &b->cfg;
    window_add(b, flags, now_ms);
    b->consecutive = (flags & F_FAIL) ? b->consecutive + 1 : 0;
    if (c->consecutive_failures > 0 && b->consecutive >= c->consecutive_failures) {
        snprintf(why, sizeof why, "%d consecutive failures", b->consecutive);
        transition(b, GW_BRK_OPEN, now_ms, why);
        return;
    }
    if (b->calls < c->min_calls)
        return;
    /* Integer comparison (fails/calls >= pct/100) avoids rounding at the threshold. */
    if (c->failure_rate_pct > 0 && b->fails * 100 >= c->failure_rate_pct * b->calls) {
        snprintf(why, sizeof why, "failure rate %d%% >= %d%% over %d calls",
                 b->fails * 100 / b->calls, c->failure_rate_pct, b->calls);
        transition(b, GW_BRK_OPEN, now_ms, why);
    } else if (c->slow_call_ms > 0 && c->slow_rate_pct > 0 &&
               b->slow * 100 >= c->slow_rate_pct * b->calls) {
        snprintf(why, sizeof why, "slow-call rate %d%% >= %d%% over %d calls (>= %lld ms)",
                 b->slow * 100 / b->calls, c->slow_rate_pct, b->calls, (long long)c->slow_call_ms);
        transition(b, GW_BRK_OPEN, now_ms, why);
    }
}

static void finish(gw_brk_permit_t *p, int has_outcome, gw_brk_outcome_t outcome, int64_t now_ms)
{
    if (!p || !p->_active)
        return;
    gw_breaker_t *b = p->_b;
    p->_active = 0;
    pthread_mutex_lock(&b->mu);
    if (p->_gen != b->gen) {
        /* Taken before a transition: the new state's counters were reset then, so there is
         * no slot to free and the outcome describes a past period. */
        pthread_mutex_unlock(&b->mu);
        return;
    }
    if (p->_half_open && b->ho_in_flight > 0)
        b->ho_in_flight--;
    if (has_outcome) {
        int flags = outcome == GW_BRK_FAILURE ? F_FAIL : 0;
        if (b->cfg.slow_call_ms > 0 && now_ms - p->_start_ms >= b->cfg.slow_call_ms)
            flags |= F_SLOW;
        if (b->state == GW_BRK_CLOSED) {
            record_closed(b, flags, now_ms);
        } else if (b->state == GW_BRK_HALF_OPEN) {
            if (flags & F_FAIL)
                transition(b, GW_BRK_OPEN, now_ms, "failure in half_open");
            else if (flags & F_SLOW)
                transition(b, GW_BRK_OPEN, now_ms, "slow call in half_open");
            else if (++b->ho_successes >= b->cfg.half_open_successes) {
                char why[REASON_LEN];
                snprintf(why, sizeof why, "%d successes in half_open", b->ho_successes);
                transition(b, GW_BRK_CLOSED, now_ms, why);
            }
        }
        /* disabled: nothing is recorded. */
    }
    pthread_mutex_unlock(&b->mu);
}

void gw_breaker_record(gw_brk_permit_t *p, gw_brk_outcome_t outcome, int64_t now_ms)
{
    finish(p, 1, outcome, now_ms);
}

void gw_breaker_release(gw_brk_permit_t *p, int64_t now_ms)
{
    finish(p, 0, GW_BRK_SUCCESS, now_ms);
}

/* ---- operator actions -------------------------------------------------------------- */

static void admin(gw_breaker_t *b, gw_brk_state_t to, int64_t now_ms, const char *reason)
{
    pthread_mutex_lock(&b->mu);
    transition(b, to, now_ms, reason ? reason : "admin");
    pthread_mutex_unlock(&b->mu);
}

void gw_breaker_force_open(gw_breaker_t *b, int64_t now_ms, const char *reason)
{
    admin(b, GW_BRK_FORCED_OPEN, now_ms, reason);
}

void gw_breaker_disable(gw_breaker_t *b, int64_t now_ms, const char *reason)
{
    admin(b, GW_BRK_DISABLED, now_ms, reason);
}

void gw_breaker_reset(gw_breaker_t *b, int64_t now_ms, const char *reason)
{
    admin(b, GW_BRK_CLOSED, now_ms, reason);
}

/* ---- reading ----------------------------------------------------------------------- */

static void snapshot_locked(gw_breaker_t *b, int64_t now_ms, gw_brk_snapshot_t *s)
{
    lazy_tick(b, now_ms);
    window_advance(b, now_ms);
    *s = (gw_brk_snapshot_t){
        .state = b->state,
        .calls = b->calls,
        .failures = b->fails,
        .slow = b->slow,
        .consecutive_failures = b->consecutive,
        .half_open_in_flight = b->ho_in_flight,
        .half_open_successes = b->ho_successes,
        .open_until_ms = b->state == GW_BRK_OPEN ? b->open_until_ms : 0,
        .transitions = b->transitions,
        .rejected = b->rejected,
    };
}

void gw_breaker_snapshot(gw_breaker_t *b, int64_t now_ms, gw_brk_snapshot_t *out)
{
    pthread_mutex_lock(&b->mu);
    snapshot_locked(b, now_ms, out);
    pthread_mutex_unlock(&b->mu);
}

gw_brk_state_t gw_breaker_state(gw_breaker_t *b, int64_t now_ms)
{
    pthread_mutex_lock(&b->mu);
    lazy_tick(b, now_ms);
    gw_brk_state_t s = b->state;
    pthread_mutex_unlock(&b->mu);
    return s;
}

cm_err_t gw_breaker_json(gw_breaker_t *b, int64_t now_ms, int64_t now_wall_ms, cm_buf_t *out)
{
    cm_err_t rc;
    gw_brk_snapshot_t s;
    pthread_mutex_lock(&b->mu);
    snapshot_locked(b, now_ms, &s);
    rc = cm_buf_addstr(out, "{\"name\":");
    if (!rc)
        rc = cm_buf_add_json_str(out, b->name);
    if (!rc)
        rc = cm_buf_printf(out,
                           ",\"state\":\"%s\",\"calls\":%d,\"failures\":%d,\"slow\":%d,"
                           "\"consecutive_failures\":%d,\"half_open_in_flight\":%d,"
                           "\"open_remaining_ms\":%lld,\"transitions_total\":%llu,"
                           "\"rejected_total\":%llu,\"journal\":[",
                           gw_brk_state_name(s.state), s.calls, s.failures, s.slow,
                           s.consecutive_failures, s.half_open_in_flight,
                           (long long)(s.open_until_ms ? s.open_until_ms - now_ms : 0),
                           (unsigned long long)s.transitions, (unsigned long long)s.rejected);
    for (size_t i = 0; !rc && i < b->jlen; i++) {
        const jentry_t *e = &b->journal[(b->jhead + i) % b->cfg.journal_cap];
        rc = cm_buf_printf(out, "%s{\"at_ms\":%lld,\"from\":\"%s\",\"to\":\"%s\",\"reason\":",
                           i ? "," : "", (long long)(now_wall_ms - (now_ms - e->at_ms)),
                           gw_brk_state_name(e->from), gw_brk_state_name(e->to));
        if (!rc)
            rc = cm_buf_add_json_str(out, e->reason);
        if (!rc)
            rc = cm_buf_addstr(out, "}");
    }
    if (!rc)
        rc = cm_buf_addstr(out, "]}");
    pthread_mutex_unlock(&b->mu);
    return rc;
}
