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

#include <stddef.h>

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

/* Writes a masked copy of in into out (cap bytes, always NUL-terminated, truncated if
 * needed). Exposed for tests and for code that stores text meant for people. */
void cm_log_mask(const char *in, char *out, size_t cap);

#endif
