/* sc_duration.h - durations as scenario files and the command line write them: the one
 * grammar of cm_duration.h ("250ms", "1.5s", "2m", "1h"), capped at a day. Thread-safe.
 */
#ifndef SC_DURATION_H
#define SC_DURATION_H

#include <stdint.h>

#include "cm_err.h"

/* Upper bound for any duration: a day. Longer is a typo, not a test. */
#define SC_DURATION_MAX_MS (24LL * 3600 * 1000)

/* Parses s into milliseconds (cm_duration_parse). Returns CM_OK, or CM_EINVAL with err
 * (CM_ERR_LEN, may be NULL) saying what is wrong; *ms is untouched on error. Zero is
 * allowed ("0s"); the caller decides whether it makes sense. */
cm_err_t sc_duration_parse(const char *s, int64_t *ms, char *err) CM_WUR;

/* Formats ms the way it would be written: "250ms", "10s", "2m", "1h", "1500ms". out must
 * hold 24 bytes (any duration up to the cap fits). Returns out. */
char *sc_duration_format(int64_t ms, char out[24]);

#endif
