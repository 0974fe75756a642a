/* cm_log.h - JSON-lines logging with a per-thread correlation id and masking.
 *
 * One line per event on stderr (or a file set with cm_log_open):
 *   {"ts":"2050-...Z","level":"info","comp":"gw.inbound","cid":"c-1a2b","msg":"..."}
 * The message is masked before it is written: e-mail addresses keep their first letter
 * and domain, phone numbers their last two digits, and provider secrets (sk_/rk_/whsec_/
 * key_/cal_ tokens, Bearer credentials) are replaced whole. CM_LOG does not evaluate its
 * arguments when the level is filtered out. Thread-safe: each line is written with one
 * write(2) call.
 */
#ifndef CM_LOG_H
#define CM_LOG_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_err.h"

typedef enum { CM_LOG_DEBUG = 0, CM_LOG_INFO, CM_LOG_WARN, CM_LOG_ERROR } cm_log_level_t;

extern cm_log_level_t cm_log_min_level;

/* Sets the minimum level from a name ("debug", "info", "warn", "error"). Returns 0, or
 * -1 for an unknown name (level unchanged). Call before starting threads. */
int cm_log_set_level(const char *name);

/* Appends log lines to path instead of stderr. Call before starting threads. */
cm_err_t cm_log_open(const char *path) CM_WUR;

/* Sets the calling thread's correlation id (copied, truncated to 63 bytes); NULL clears. */
void cm_log_set_cid(const char *cid);
const char *cm_log_cid(void);

void cm_log_write(cm_log_level_t level, const char *comp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CM_LOG(level, comp, ...)                                                                   \
    do {                                                                                           \
        if ((level) >= cm_log_min_level)                                                           \
            cm_log_write((level), (comp), __VA_ARGS__);                                            \
    } while (0)
#define CM_DEBUG(comp, ...) CM_LOG(CM_LOG_DEBUG, comp, __VA_ARGS__)
#define CM_INFO(comp, ...) CM_LOG(CM_LOG_INFO, comp, __VA_ARGS__)
#define CM_WARN(comp, ...) CM_LOG(CM_LOG_WARN, comp, __VA_ARGS__)
#define CM_ERROR(comp, ...) CM_LOG(CM_LOG_ERROR, comp, __VA_ARGS__)

/* A limit on how many lines one kind of event writes, for events an outsider can cause at
 * will (refused webhooks): at most per_window lines in each window of window_ms, the rest
 * counted and reported by the next line written. Without it, forged traffic fills the disk
 * with logs (163 MB in 100 s was seen); metrics still count every event.
 * Initialise with CM_LOG_LIMIT_INIT; thread-safe (one mutex per limit). */
typedef struct {
    pthread_mutex_t mu;
    int per_window;
    int64_t window_ms;
    int64_t window_start_ms; /* monotonic */
    int written;             /* lines written in the current window */
    uint64_t suppressed;     /* lines not written since the last one written */
} cm_log_limit_t;

#define CM_LOG_LIMIT_INIT(per_window, window_ms)                                                   \
    {                                                                                              \
        PTHREAD_MUTEX_INITIALIZER, (per_window), (window_ms), 0, 0, 0                              \
    }

/* 1 when a line may be written at now_ms (monotonic), with *suppressed set to the number
 * of lines dropped since the last one written (to say so in this one) and reset; 0 when
 * the line must be dropped (it is counted). */
int cm_log_limit_take(cm_log_limit_t *l, int64_t now_ms, uint64_t *suppressed);

/* Writes a masked copy of in into out (cap bytes, always NUL-terminated, truncated if
 * needed). Exposed for tests and for code that stores text meant for people. */
void cm_log_mask(const char *in, char *out, size_t cap);

#endif
