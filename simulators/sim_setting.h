/* sim_setting.h - durations in the control API's settings, and their deprecated forms.
 *
 * A setting that is a length of time is written in the one grammar (cm_duration.h) under
 * its plain name: "timeout": "10s", "retry_schedule": ["1m", "10m", "1h"],
 * "timestamp_offset": "-6m". The integer milliseconds the control API took before, under
 * the name with "_ms" ("timeout_ms": 10000), are still taken for one release: each use is
 * logged as a warning and noted for the answer, both saying how to write it now, so
 * neither an operator reading the log nor a runner reading the answer misses it. Both
 * forms of one setting in one request are refused: which one was meant cannot be told.
 *
 * Reads borrowed JSON; besides err, writes only the log and the caller's notes array.
 * Thread-safe as long as no two threads append to one notes array.
 */
#ifndef SIM_SETTING_H
#define SIM_SETTING_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_err.h"

/* Where deprecation warnings go: the log, as component comp, and notes, a JSON array the
 * caller answers as "deprecated" (borrowed; NULL when the answer has no body, 204). */
typedef struct {
    const char *comp;
    json_t *notes;
} sim_setting_warn_t;

/* Logs one deprecation warning (printf format) through w and appends the same text to
 * w->notes. A note that cannot be added (out of memory) is only logged. */
void sim_setting_deprecated(const sim_setting_warn_t *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A duration setting: its name ("timeout"; the deprecated form is "timeout_ms") and the
 * range either form must lie in. A negative min_ms makes it an offset, which takes a sign
 * ("-6m" back, "+6m" or "6m" ahead); otherwise a sign is refused. */
typedef struct {
    const char *name;
    int64_t min_ms, max_ms;
} sim_setting_t;

/* Reads the optional setting s of body into *ms: the duration string under s->name, or the
 * deprecated integer milliseconds under s->name + "_ms" (warned through w). Returns 1 when
 * given, 0 when absent, -1 when refused (both forms, a wrong type, not a duration, out of
 * range; err, CM_ERR_LEN, names the field as written). *ms is set only when 1 is returned. */
int sim_setting_duration(const json_t *body, const sim_setting_t *s, int64_t *ms,
                         const sim_setting_warn_t *w, char *err) CM_WUR;

/* As sim_setting_duration for a list, at most cap entries each within s's range:
 * "retry_schedule": ["1m", "10m"], or the deprecated "retry_schedule_ms": [60000, 600000].
 * into ms (room for cap entries). *n is set only when 1 is returned; a refused list may
 * have written part of ms. An empty list is a list (none). */
int sim_setting_durations(const json_t *body, const sim_setting_t *s, size_t cap, int64_t *ms,
                          size_t *n, const sim_setting_warn_t *w, char *err) CM_WUR;

#endif
