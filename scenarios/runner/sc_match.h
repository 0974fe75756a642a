/* sc_match.h - JSON expectations: a map from dotted paths to expected values.
 *
 *   {"count": 1, "bookings.0.status": "accepted", "events.-1.duplicates": {"$gte": 4}}
 *
 * A path walks objects by key and arrays by index ("-1" is the last element); "" is the
 * whole answer. A "*" segment maps the rest of the path over an array's elements:
 * "entries.*.status" is the array of the entries' statuses (null where one has none). A plain value
 * must be equal (deep; 1 and 1.0 are equal). An object whose keys all start with '$' is a set of
 * operators that must all hold: $eq, $ne         equal / not equal $gt $gte $lt $lte  numbers, or
 * two strings compared bytewise (ISO times sort so) $exists          true: the path is there;
 * false: it is not $len             length of a string, array or object: a number or operators
 *   $contains        a substring of a string, or an element equal to it in an array
 *   $in              equal to one of the array's elements
 *   $type            "string" "number" "integer" "boolean" "null" "object" "array"
 *   $each            an expectation map every element of an array (or every value of an
 *                    object) must meet
 *   $sorted          "field": the array is in non-decreasing order of that field ("" for
 *                    the elements themselves)
 *   $gaps            {"field": "at_ms", "min": "1s", "max": "5s", "envelope": {"base":
 *                    "100ms", "factor": 2, "cap": "5s", "slack": "50ms"}}: the differences
 *                    between consecutive elements' field (ms); gap i (between elements i
 *                    and i+1, from 0) must lie in [min, max] and in [0, min(cap, base *
 *                    factor^i) + slack] - the full-jitter back-off envelope
 * Every operator but $exists:false fails on a missing path. Thread-safe (no state).
 */
#ifndef SC_MATCH_H
#define SC_MATCH_H

#include <jansson.h>

#include "cm_buf.h"
#include "cm_err.h"

/* Checks that spec is a well-formed expectation map (an object of path -> value, operator
 * objects with known operators and right operand types). err (CM_ERR_LEN) names the path
 * and the problem. */
cm_err_t sc_match_validate(const json_t *spec, char *err) CM_WUR;

/* Borrowed value at path, or NULL (see above for the path syntax). */
const json_t *sc_match_path(const json_t *root, const char *path);

/* Deep equality where numbers compare by value (1 == 1.0). */
int sc_match_equal(const json_t *a, const json_t *b);

/* Checks answer (may be NULL: no JSON answer) against a validated spec. Returns the number
 * of paths that did not match; for each, appends a line to diag (may be NULL):
 *   "bookings.0.status": expected "accepted", got "cancelled"
 * Buffer errors while writing diag are ignored: the count is what decides. */
int sc_match(const json_t *answer, const json_t *spec, cm_buf_t *diag);

/* Checks one value (got may be NULL: absent) against want (a plain value or validated
 * operators); on a miss appends `  label: expected X, got Y` to diag (may be NULL).
 * Returns 1 when it holds. */
int sc_match_value(const json_t *got, const json_t *want, const char *label, cm_buf_t *diag);

#endif
