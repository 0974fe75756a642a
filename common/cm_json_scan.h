/* cm_json_scan.h - validate a JSON document and pick a few string fields out of it without
 * building a tree. For the webhook intake, where a full parse into jansson values cost more
 * than the signature check and the whole answer.
 *
 * The contract is agreement with cm_json_parse: a text it accepts is accepted here, and a
 * text it refuses is refused here (RFC 8259 grammar, UTF-8, no duplicate keys in an object,
 * \u0000 allowed, integers that fit 64 bits, reals that do not overflow, an object or array
 * at the top, nesting up to 2048). Where exact agreement would need decoding (an escape in
 * a key or in a wanted value, a NUL byte, more keys in one object than the duplicate check tracks)
 * it answers CM_EAGAIN rather than guess: the caller then parses with cm_json_parse. A differential
 * test against jansson holds it to this.
 *
 * Pure function of its input; thread-safe; nothing allocated.
 */
#ifndef CM_JSON_SCAN_H
#define CM_JSON_SCAN_H

#include <stddef.h>

#include "cm_err.h"

/* One wanted string: path in, value out. val points into the scanned text (between the
 * quotes, undecoded - CM_OK guarantees it holds no escape), valid as long as the text. */
typedef struct {
    const char *path; /* dotted object path, as cm_json_str's ("call.call_id"); no array index */
    const char *val;  /* NULL when the path is absent or its value is not a string */
    size_t len;
} cm_json_want_t;

/* Scans len bytes. CM_OK: valid, wants filled. CM_EINVAL: not valid JSON. CM_ETOOBIG: over
 * cap bytes. CM_EAGAIN: valid as far as scanned but needs a real parse (see above). */
cm_err_t cm_json_scan(const void *text, size_t len, size_t cap, cm_json_want_t *want,
                      size_t nwant) CM_WUR;

#endif
