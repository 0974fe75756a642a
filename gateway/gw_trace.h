/* gw_trace.h - W3C Trace Context `traceparent` (https://www.w3.org/TR/trace-context/):
 * parse and validate the header on inbound calls, make a child span for each outbound
 * call, and format it.
 *
 *   traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
 *                ver trace-id (32 hex)                parent-id (16)   flags
 *
 * Rules applied (spec section 3.2): lowercase hex only; version ff is invalid; version 00
 * is exactly 55 characters; a later version may carry more fields after a '-' (we read the
 * four we know and, as the spec asks, send version 00); an all-zero trace id or parent id
 * is invalid. An invalid header is ignored by the caller, who then starts a new trace.
 *
 * Pure functions on caller-owned values; thread-safe as long as each thread passes its own
 * cm_rand_t. The generator only needs to be unpredictable enough to avoid collisions, not
 * secret: seed it from cm_random_bytes (or the configured seed, for reproducible tests).
 */
#ifndef GW_TRACE_H
#define GW_TRACE_H

#include <stdint.h>

#include "cm_err.h"
#include "cm_rand.h"

#define GW_TRACEPARENT_LEN 55 /* formatted length, without the NUL */
#define GW_TRACE_SAMPLED 0x01

typedef struct {
    uint8_t version;
    char trace_id[33];  /* 32 lowercase hex + NUL */
    char parent_id[17]; /* 16 lowercase hex + NUL: the span of the caller */
    uint8_t flags;
} gw_traceparent_t;

/* Parses a traceparent header value (surrounding spaces and tabs are ignored). Returns
 * CM_OK and fills *out, or CM_EINVAL (err, CM_ERR_LEN or NULL, says why) leaving *out
 * unchanged. */
cm_err_t gw_trace_parse(const char *value, gw_traceparent_t *out, char *err) CM_WUR;

/* A new root: random trace id and span id (never all zero), version 00, flags as given. */
void gw_trace_new(cm_rand_t *rng, uint8_t flags, gw_traceparent_t *out);

/* The context to send on an outbound call made on behalf of parent: same trace id, a new
 * random span id as parent-id, version 00, and the sampled flag carried over (the other
 * flag bits are unknown to us at version 00 and are cleared, as the spec asks). */
void gw_trace_child(const gw_traceparent_t *parent, cm_rand_t *rng, gw_traceparent_t *out);

/* Writes "00-<trace>-<span>-<flags>" into out (GW_TRACEPARENT_LEN + 1 bytes). Returns out. */
char *gw_trace_format(const gw_traceparent_t *t, char out[GW_TRACEPARENT_LEN + 1]);

#endif
