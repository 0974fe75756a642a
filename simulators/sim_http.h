/* sim_http.h - small helpers shared by the simulators' HTTP handlers.
 *
 * Each provider answers errors in its own shape, so only the provider-neutral parts
 * live here. Pure functions over the borrowed request; thread-safe.
 */
#ifndef SIM_HTTP_H
#define SIM_HTTP_H

#include <jansson.h>

#include "cm_err.h"
#include "cm_http_server.h"

/* The longest answer timeout a simulated provider accepts from a flag or the control API
 * (simulated time): a 10 s timeout at the largest clock speed-up, 1000 (simulators --speed
 * multiplies the providers' default answer timeouts so they keep their real length). */
#define SIM_TIMEOUT_MAX_MS 10000000

/* 1 when the Authorization header is exactly "Bearer <key>" (scheme matched without
 * regard to case, the key compared in constant time), else 0. */
int sim_http_bearer_ok(const cm_http_req_t *req, const char *key);

/* Parses the request body as a JSON object. An empty body gives an empty object when
 * empty_ok, else an error. On success *out is a new reference; on error *out is NULL,
 * err (CM_ERR_LEN) says why and CM_EINVAL is returned. */
cm_err_t sim_http_json_object(const cm_http_req_t *req, int empty_ok, json_t **out,
                              char *err) CM_WUR;

/* A new JSON string of s. Request-derived text may not be valid UTF-8, which jansson
 * refuses; such text becomes a copy with every byte outside printable ASCII replaced by
 * '?', so an error answer quoting it can always be built. NULL only when out of memory. */
json_t *sim_http_str(const char *s);

/* Matches "METHOD /path" against a route pattern "METHOD /a/{x}/b" where METHOD may be
 * "*" (any), a segment "{name}" or "*" matches any one non-empty segment, and a last
 * segment "*" matches one or more segments. pattern NULL or "" matches everything; a
 * pattern without a method ("/v2/bookings") matches any method. 1 when it matches. */
int sim_http_route_match(const char *pattern, const char *method, const char *path);

/* Checks a route pattern's syntax; 0 when usable, -1 (err says why) otherwise. */
int sim_http_route_check(const char *pattern, char *err);

#endif
