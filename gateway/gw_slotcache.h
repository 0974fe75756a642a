/* gw_slotcache.h - short-lived cache of Cal.com availability (GET /v2/slots answers).
 *
 * Entries are keyed by (API key, event type id, day "YYYY-MM-DD") and live ttl_ms (60 s by
 * default: the audit found 5 minutes, long enough to offer slots taken minutes ago). They
 * are invalidated by event type (Cal.com BOOKING_CREATED / CANCELLED / RESCHEDULED webhooks
 * carry eventTypeId) or all at once, and after our own bookings.
 *
 * The value is the raw JSON text of the answer's "data" member, copied in and copied out.
 * Why text and not a parsed list: the caller already has a parser that accepts both slot
 * shapes Cal.com has used (gw_calcom_slots_contain), a copy handed out is the caller's own
 * (no reference counts shared between threads, no lifetime rules), and re-parsing a day of
 * slots costs tens of microseconds against the milliseconds of the HTTP call it saves.
 *
 * Invalidation races: a lookup that misses, fetches, and stores can straddle a webhook's
 * invalidation and store an answer from before the booking. gw_slotcache_epoch is read
 * before the fetch and passed to gw_slotcache_put, which drops the value if any
 * invalidation happened in between.
 *
 * The cache is bounded (max_entries, max_value bytes each): a full cache first drops
 * expired entries, then the least recently used one. Keys and values are copied.
 * Thread-safety: every function is safe from any thread (one mutex), except
 * gw_slotcache_free. Time is passed in (now_ms, monotonic).
 */
#ifndef GW_SLOTCACHE_H
#define GW_SLOTCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "cm_err.h"

typedef struct gw_slotcache gw_slotcache_t;

/* ttl_ms >= 0 (0 disables caching: every get misses), max_entries >= 1, max_value >= 1
 * bytes. CM_EINVAL or CM_ENOMEM. */
cm_err_t gw_slotcache_new(int64_t ttl_ms, size_t max_entries, size_t max_value,
                          gw_slotcache_t **out) CM_WUR;
void gw_slotcache_free(gw_slotcache_t **c);

/* Formats the UTC day of epoch_ms as "YYYY-MM-DD" into out. Returns out. */
char *gw_slotcache_day(int64_t epoch_ms, char out[11]);

/* The invalidation epoch: read it before fetching, pass it to put. */
uint64_t gw_slotcache_epoch(gw_slotcache_t *c);

/* Stores json (len bytes, copied) for the key at now_ms, replacing an older value.
 * Returns CM_OK, CM_ESTATE when an invalidation happened since epoch (nothing stored),
 * CM_ETOOBIG when len > max_value, CM_EINVAL for a malformed day, CM_ENOMEM. */
cm_err_t gw_slotcache_put(gw_slotcache_t *c, const char *api_key, int64_t event_type_id,
                          const char *day, const char *json, size_t len, uint64_t epoch,
                          int64_t now_ms) CM_WUR;

/* On a fresh hit, *json is a NUL-terminated copy the caller frees, *len its length, and
 * CM_OK is returned; CM_ENOTFOUND on a miss or an expired entry (which is dropped);
 * CM_ENOMEM. */
cm_err_t gw_slotcache_get(gw_slotcache_t *c, const char *api_key, int64_t event_type_id,
                          const char *day, int64_t now_ms, char **json, size_t *len) CM_WUR;

/* Drops every entry of event_type_id (for api_key, or for every key when api_key is NULL:
 * webhooks do not say which API key saw the slot). Returns the number dropped. */
size_t gw_slotcache_invalidate_event_type(gw_slotcache_t *c, const char *api_key,
                                          int64_t event_type_id);
/* Drops everything. Returns the number dropped. */
size_t gw_slotcache_invalidate_all(gw_slotcache_t *c);

typedef struct {
    uint64_t hits, misses, expired, evicted, invalidated, stale_puts;
    size_t entries;
} gw_slotcache_stats_t;

void gw_slotcache_stats(gw_slotcache_t *c, gw_slotcache_stats_t *out);

#endif
