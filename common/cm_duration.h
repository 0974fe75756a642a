/* cm_duration.h - the one way every part writes a duration: "250ms", "1.5s", "2m", "1h".
 *
 * A number (digits, optionally one '.' and more digits) and a unit, ms, s, m or h, with
 * nothing before, between or after: no sign (but see cm_duration_parse_signed), no spaces,
 * no exponent. The result must be a whole number of milliseconds ("1.5s" is 1500 ms,
 * "0.5ms" is refused). Scenario files, the simulators' fault rules and control settings and
 * the chaos proxy's faults all read durations with this, so a duration means the same
 * wherever it is written. Pure functions; thread-safe.
 */
#ifndef CM_DURATION_H
#define CM_DURATION_H

#include <stdint.h>

#include "cm_err.h"

/* Parses s into milliseconds, refusing more than max_ms (max_ms <= 0: no cap beyond the
 * grammar's own, about 292 million years). CM_OK, or CM_EINVAL with err (CM_ERR_LEN bytes,
 * may be NULL) quoting s and saying what is wrong; *ms is untouched on error. Zero ("0s")
 * is allowed: the caller decides whether it makes sense. */
cm_err_t cm_duration_parse(const char *s, int64_t max_ms, int64_t *ms, char *err) CM_WUR;

/* As cm_duration_parse, with an optional sign before the number: "-6m" is -360000 ms, "+6m"
 * and "6m" are 360000. max_ms caps the magnitude ("-25h" is refused under a 24 h cap).
 * Offsets in time (a timestamp moved back or ahead) are read with this; durations that
 * cannot be negative (a timeout, a delay) are read with cm_duration_parse, so "-1s" is
 * refused there rather than taken as a surprise. */
cm_err_t cm_duration_parse_signed(const char *s, int64_t max_ms, int64_t *ms, char *err) CM_WUR;

/* Formats ms as it would be written: "250ms", "1500ms", "10s", "2m", "1h" ("-6m"
 * when negative). out holds 32 bytes. Returns out. */
char *cm_duration_format(int64_t ms, char out[32]);

#endif
