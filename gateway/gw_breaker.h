/* gw_breaker.h - circuit breaker for one outbound dependency (a provider, or one of its
 * operations).
 *
 * States: closed (calls pass, outcomes are counted in a sliding window), open (calls are
 * rejected until open_wait_ms has passed), half_open (exactly half_open_permits trial calls
 * pass; half_open_successes successes close it, any failure reopens it), forced_open and
 * disabled (set by an operator through the admin API; only gw_breaker_reset leaves them).
 *
 * Time is never read here: every function takes now_ms, a monotonic millisecond clock
 * (cm_clock_mono_ms in production, a plain variable in tests). The owner calls
 * gw_breaker_tick now and then so that open -> half_open happens on time even when no call
 * arrives; gw_breaker_acquire makes the same check lazily.
 *
 * Permits: every call that gw_breaker_acquire lets through gets a permit, which must be
 * finished exactly once, by gw_breaker_record (with an outcome) or gw_breaker_release
 * (cancelled call, or an outcome that says nothing about the provider's health). Finishing
 * a permit twice is harmless. A permit taken before a state change (its generation is
 * stale) frees its half-open slot only in the period it came from and its outcome is
 * ignored, so a late answer from before a reset or a reopen cannot move the new state.
 *
 * Every transition is journaled in a bounded ring (oldest dropped) with its time, from, to
 * and reason, readable as JSON, and reported to an optional callback (for metrics).
 *
 * Thread-safety: every function is safe from any thread (one mutex per breaker), except
 * gw_breaker_free, which must not race with anything else on the same breaker.
 */
#ifndef GW_BREAKER_H
#define GW_BREAKER_H

#include <stddef.h>
#include <stdint.h>

#include "cm_buf.h"
#include "cm_err.h"

typedef enum {
    GW_BRK_CLOSED = 0,
    GW_BRK_OPEN,
    GW_BRK_HALF_OPEN,
    GW_BRK_FORCED_OPEN,
    GW_BRK_DISABLED,
    GW_BRK__STATES
} gw_brk_state_t;

/* "closed", "open", "half_open", "forced_open", "disabled"; "?" for anything else. */
const char *gw_brk_state_name(gw_brk_state_t s);

typedef enum {
    GW_BRK_WINDOW_COUNT = 0, /* the last window_size calls */
    GW_BRK_WINDOW_TIME       /* the calls of the last window_size seconds, in 1 s buckets */
} gw_brk_window_t;

typedef struct {
    gw_brk_window_t window_type;
    int window_size;          /* calls (count window, 1..10000) or seconds (time window, 1..3600) */
    int failure_rate_pct;     /* opens when failures/calls >= this (1..100); 0: rule off */
    int64_t slow_call_ms;     /* a call at least this long is slow; 0: slow-call rule off */
    int slow_rate_pct;        /* opens when slow/calls >= this (1..100); 0: rule off */
    int min_calls;            /* rate rules apply only once the window holds this many calls */
    int consecutive_failures; /* opens after this many failures in a row; 0: rule off */
    int64_t open_wait_ms;     /* time in open before half_open */
    int half_open_permits;    /* trial calls allowed at once in half_open (>= 1) */
    int half_open_successes;  /* successes in half_open that close it (1..permits) */
    size_t journal_cap;       /* transitions kept (>= 1) */
} gw_brk_config_t;

/* The audit's defaults: 5 consecutive failures open it, 60 s in open, 3 half-open calls,
 * 2 successes close it; count window of 20 calls, 50 % failure rate over at least 10 calls,
 * slow-call rule off (0), journal of 64 transitions. */
void gw_brk_config_default(gw_brk_config_t *c);

/* Checks c; on CM_EINVAL err (CM_ERR_LEN, may be NULL) names the bad field. */
cm_err_t gw_brk_config_check(const gw_brk_config_t *c, char *err) CM_WUR;

typedef struct gw_breaker gw_breaker_t;

/* Called on every transition with the breaker's lock held, in transition order: it must
 * be short and must not call any gw_breaker_ function on the same breaker. name and reason
 * are borrowed for the duration of the call. */
typedef void (*gw_brk_transition_fn)(void *ud, const char *name, gw_brk_state_t from,
                                     gw_brk_state_t to, const char *reason, int64_t now_ms);

/* Creates a closed breaker. name (copied, up to 63 bytes) identifies it in the journal and
 * the callback. cfg is copied. CM_EINVAL (err says why) or CM_ENOMEM; *out is set only on
 * success. */
cm_err_t gw_breaker_new(const char *name, const gw_brk_config_t *cfg, gw_breaker_t **out,
                        char *err) CM_WUR;
/* Frees b and sets *b to NULL; accepts NULL. Outstanding permits must not be used after. */
void gw_breaker_free(gw_breaker_t **b);

/* Sets (or clears with fn NULL) the transition callback. ud is borrowed. */
void gw_breaker_set_callback(gw_breaker_t *b, gw_brk_transition_fn fn, void *ud);

const char *gw_breaker_name(const gw_breaker_t *b);

typedef enum {
    GW_BRK_PERMITTED = 0,
    GW_BRK_REJ_OPEN,           /* open, wait not over */
    GW_BRK_REJ_FORCED_OPEN,    /* an operator forced it open */
    GW_BRK_REJ_HALF_OPEN_FULL, /* half_open and every trial slot is taken */
} gw_brk_verdict_t;

/* "permitted", "open", "forced_open", "half_open_full". */
const char *gw_brk_verdict_name(gw_brk_verdict_t v);

/* A permit: a value owned by the caller (on its stack). Fields are private. */
typedef struct {
    gw_breaker_t *_b;
    uint64_t _gen;       /* the breaker's generation when acquired */
    int64_t _start_ms;   /* for the slow-call rule */
    int _half_open;      /* holds a half-open slot */
    int _active;         /* not finished yet */
    int64_t retry_in_ms; /* on GW_BRK_REJ_OPEN: time left until half_open; else 0 */
} gw_brk_permit_t;

/* Asks to make one call at now_ms. On GW_BRK_PERMITTED *p is a live permit that must be
 * finished with gw_breaker_record or gw_breaker_release. Otherwise *p is inert (finishing
 * it does nothing) and the rejection is counted. Moves open -> half_open first when the
 * wait is over. */
gw_brk_verdict_t gw_breaker_acquire(gw_breaker_t *b, int64_t now_ms, gw_brk_permit_t *p);

typedef enum {
    GW_BRK_SUCCESS = 0, /* the provider answered as a healthy provider does (2xx, most 4xx) */
    GW_BRK_FAILURE      /* connect error, timeout, 5xx: the provider may be unhealthy */
} gw_brk_outcome_t;

/* Finishes permit p with an outcome. The call's duration is now_ms - acquire time; with
 * the slow-call rule on, a call at least slow_call_ms long is slow whatever its outcome.
 * In half_open a slow call counts as a failure: a provider that is still slow is not
 * recovered. Always frees the half-open slot. Does nothing for an inert or finished
 * permit. */
void gw_breaker_record(gw_brk_permit_t *p, gw_brk_outcome_t outcome, int64_t now_ms);

/* Finishes permit p without an outcome (the call was cancelled, or its result says nothing
 * about the provider, e.g. a 429 from its rate limiter). Frees the half-open slot. */
void gw_breaker_release(gw_brk_permit_t *p, int64_t now_ms);

/* Moves open -> half_open when the wait is over. Cheap; call it from a timer. */
void gw_breaker_tick(gw_breaker_t *b, int64_t now_ms);

/* Operator actions (admin API). reason (copied, truncated) goes into the journal; NULL is
 * "admin". force_open rejects every call until reset; disable lets every call through and
 * records nothing until reset; reset returns to closed with an empty window. Each is
 * journaled even when the state does not change (the journal is an audit trail). */
void gw_breaker_force_open(gw_breaker_t *b, int64_t now_ms, const char *reason);
void gw_breaker_disable(gw_breaker_t *b, int64_t now_ms, const char *reason);
void gw_breaker_reset(gw_breaker_t *b, int64_t now_ms, const char *reason);

typedef struct {
    gw_brk_state_t state;
    int calls;    /* in the window (closed) */
    int failures; /* in the window */
    int slow;     /* in the window */
    int consecutive_failures;
    int half_open_in_flight;
    int half_open_successes;
    int64_t open_until_ms; /* when open: when half_open begins; else 0 */
    uint64_t transitions;  /* since creation */
    uint64_t rejected;     /* acquisitions refused since creation */
} gw_brk_snapshot_t;

/* Current state and counters at now_ms (after the lazy open -> half_open check). */
void gw_breaker_snapshot(gw_breaker_t *b, int64_t now_ms, gw_brk_snapshot_t *out);

/* The state at now_ms (after the lazy check). */
gw_brk_state_t gw_breaker_state(gw_breaker_t *b, int64_t now_ms);

/* Appends the breaker as JSON to out:
 *   {"name":"calcom","state":"open","calls":..,"failures":..,"slow":..,
 *    "consecutive_failures":..,"half_open_in_flight":..,"open_remaining_ms":..,
 *    "transitions_total":..,"rejected_total":..,
 *    "journal":[{"at_ms":<wall ms>,"from":"closed","to":"open","reason":"..."}, ...]}
 * oldest transition first. Journal times are kept monotonic and shown as wall-clock
 * epoch ms: at_ms = now_wall_ms - (now_ms - mono time of the transition), so the caller
 * passes both clocks' current readings. On error out may hold part of the text. */
cm_err_t gw_breaker_json(gw_breaker_t *b, int64_t now_ms, int64_t now_wall_ms,
                         cm_buf_t *out) CM_WUR;

#endif
