/* sim_form.h - application/x-www-form-urlencoded decoding with Stripe's nested keys.
 *
 * Stripe's API takes form bodies whose keys nest with brackets: "metadata[order_id]=42"
 * is a hash, "payment_method_types[0]=card" and "expand[]=customer" are arrays. This
 * module turns such a body into a JSON object whose leaves are all strings, as they are
 * on the wire (the API layer converts "amount" to an integer, as Stripe does). Pure
 * functions, thread-safe.
 */
#ifndef SIM_FORM_H
#define SIM_FORM_H

#include <jansson.h>
#include <stddef.h>

#include "cm_err.h"

/* Percent-decodes len bytes of in into out (at least len + 1 bytes), turning '+' into a
 * space. Returns the decoded length, or -1 on a bad escape ("%zz", "%4") or an escaped NUL.
 * out is NUL-terminated on success. */
long sim_form_url_decode(const char *in, size_t len, char *out);

/* Decodes a whole body. On success *out is a new object (caller decrefs). A repeated
 * scalar key keeps the last value; a key used both as a value and as a hash/array, an
 * array index that leaves a gap, an unbalanced bracket, nesting deeper than 8 levels or a
 * bad escape fail with CM_EINVAL, err (CM_ERR_LEN, may be NULL) naming the key; *out is
 * NULL then. An empty body gives an empty object. */
cm_err_t sim_form_decode(const char *body, size_t len, json_t **out, char *err) CM_WUR;

#endif
