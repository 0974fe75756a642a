/* cm_json.h - small helpers over jansson: capped parsing with a located error message,
 * dotted-path lookups, and reading JSON files.
 *
 * Returned json_t values follow jansson's rules: "new" results belong to the caller
 * (json_decref), "borrowed" ones live as long as their parent. Thread-safe (jansson's
 * reference counts are atomic since 2.11; do not share one mutable value across threads).
 */
#ifndef CM_JSON_H
#define CM_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_err.h"

/* Parses len bytes (no NUL needed) into a new value. Rejects input over cap bytes with
 * CM_ETOOBIG and bad JSON with CM_EINVAL; err (CM_ERR_LEN, may be NULL) says where. */
cm_err_t cm_json_parse(const void *data, size_t len, size_t cap, json_t **out, char *err) CM_WUR;

/* Reads and parses a whole file (at most cap bytes). New reference on success. */
cm_err_t cm_json_load_file(const char *path, size_t cap, json_t **out, char *err) CM_WUR;

/* Borrowed value at a dotted path ("call.call_analysis.custom_analysis_data"); array
 * elements by number ("items.0.id"). NULL when any part is missing. */
json_t *cm_json_path(const json_t *root, const char *path);

/* Typed lookups: the string (borrowed) or def when missing or of another type. */
const char *cm_json_str(const json_t *root, const char *path, const char *def);
/* Integer at path; also accepts a real with no fractional part. def when absent. */
int64_t cm_json_int(const json_t *root, const char *path, int64_t def);
/* The string at path (borrowed) and its length in *len, which counts every byte including
 * any NUL a "\u0000" escape put inside it (strlen would stop there). NULL when missing or
 * of another type. */
const char *cm_json_strn(const json_t *root, const char *path, size_t *len);
int cm_json_bool(const json_t *root, const char *path, int def);

/* Serialises compactly into a new malloc'd string (caller frees); NULL on failure. */
char *cm_json_dumps(const json_t *v);
/* The same with object keys sorted: equal values give equal text (for digests). */
char *cm_json_dumps_sorted(const json_t *v);

#endif
