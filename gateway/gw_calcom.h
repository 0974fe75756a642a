/* gw_calcom.h - the gateway's Cal.com API v2 client: slot lookup and booking.
 *
 * Only API v2, with the cal-api-version each endpoint needs (slots 2024-09-04, bookings
 * 2024-08-13). Every call goes through the Cal.com policy stack (gw_outbound) and
 * classifies its result so callers never parse HTTP statuses: GW_OUT_OK, GW_OUT_TAKEN
 * (slot no longer free: 400 "already has booking" or 409), GW_OUT_RETRY (transport error,
 * timeout, 429, 5xx, breaker open, rate limited: worth another attempt later, after
 * *retry_in_ms when known) and GW_OUT_FAIL (anything else: retrying cannot help).
 * err (CM_ERR_LEN) says what happened. Thread-safe as long as each thread passes its own
 * gw_calcom_ctx_t (HTTP client and random generator).
 */
#ifndef GW_CALCOM_H
#define GW_CALCOM_H

#include <jansson.h>
#include <stdint.h>

#include "gw_outbound.h"

typedef enum { GW_OUT_OK = 0, GW_OUT_TAKEN, GW_OUT_RETRY, GW_OUT_FAIL } gw_outcome_t;

const char *gw_outcome_name(gw_outcome_t o);

/* What one worker thread brings to a call. */
typedef struct {
    gw_outbound_t *ob;
    cm_http_client_t *http;
    cm_rand_t *rng;
    const char *api_key;
    const char *traceparent; /* may be NULL */
    int64_t retry_in_ms;     /* out: a hint after GW_OUT_RETRY, 0 when unknown */
    int unavailable;         /* out: the breaker or rate limiter refused; nothing was sent */
} gw_calcom_ctx_t;

typedef struct {
    int64_t event_type_id;
    int64_t start_ms;
    const char *attendee_name;
    const char *attendee_email;
    const char *attendee_phone; /* may be NULL */
    const char *time_zone;      /* IANA name; "UTC" when NULL */
    const char *call_id;        /* goes into metadata, so the booking can be traced back */
    const char *saga_id;        /* metadata too: finds the booking after a lost answer */
} gw_booking_req_t;

/* Sets *is_free when a slot starts exactly at start_ms. Served from the slot cache when
 * fresh (60 s by default); a miss asks GET /v2/slots for the day and fills the cache. */
gw_outcome_t gw_calcom_slot_free(gw_calcom_ctx_t *c, int64_t event_type_id, int64_t start_ms,
                                 int *is_free, char *err);

/* POST /v2/bookings. On GW_OUT_OK the new booking's uid is copied into uid (cap bytes).
 * Any answer but a clear refusal invalidates the event type's cached slots. */
gw_outcome_t gw_calcom_book(gw_calcom_ctx_t *c, const gw_booking_req_t *req, char *uid, size_t cap,
                            char *err);

/* POST /v2/bookings/{uid}/cancel. A booking already cancelled or gone counts as done. */
gw_outcome_t gw_calcom_cancel(gw_calcom_ctx_t *c, const char *uid, const char *reason, char *err);

/* Looks among the attendee's bookings starting at start_ms for one whose metadata carries
 * saga_id: after a crash or a lost answer, the booking may exist though we never learnt
 * its uid. Sets *found and copies the uid. */
gw_outcome_t gw_calcom_find(gw_calcom_ctx_t *c, const char *attendee_email, int64_t start_ms,
                            const char *saga_id, char *uid, size_t cap, int *found, char *err);

/* The event types Cal.com lists for the key: the user's own (GET /v2/event-types,
 * cal-api-version 2024-06-14) or, team_id > 0, the team's (GET /v2/teams/{id}/event-types).
 * On GW_OUT_OK *types is the "data" array (the caller's; json_decref it). *http_status is
 * the last HTTP status (0 when none came): a 401 or 403 means the key itself is refused. */
gw_outcome_t gw_calcom_event_types(gw_calcom_ctx_t *c, int64_t team_id, json_t **types,
                                   long *http_status, char *err);

/* Whether a slots answer's "data" holds a slot starting at want_ms. Accepts both shapes
 * Cal.com has used: {"2050-09-05":[{"start":ISO}]} (2024-09-04, also {start,end} ranges)
 * and {"slots":{"2050-09-05":[{"time":ISO}]}} (the older /v2/slots/available); times
 * are compared as instants, whatever offset they are written in. Returns 1 or 0, and
 * -1 when data has neither shape. */
int gw_calcom_slots_contain(const json_t *data, int64_t want_ms);

#endif
