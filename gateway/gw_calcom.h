/* gw_calcom.h - the gateway's Cal.com API v2 client: slot lookup and booking.
 *
 * Only API v2, with the cal-api-version each endpoint needs (slots 2024-09-04, bookings
 * 2024-08-13). Every call classifies its result so callers never parse HTTP statuses:
 * GW_OUT_OK, GW_OUT_TAKEN (slot no longer free: 400 "already has booking" or 409),
 * GW_OUT_RETRY (transport error, timeout, 429, 5xx: worth another attempt later) and
 * GW_OUT_FAIL (anything else: retrying cannot help). err (CM_ERR_LEN) says what happened.
 * Functions are thread-safe as long as each thread passes its own cm_http_client_t.
 */
#ifndef GW_CALCOM_H
#define GW_CALCOM_H

#include <jansson.h>
#include <stdint.h>

#include "cm_http_client.h"
#include "gw_config.h"

typedef enum { GW_OUT_OK = 0, GW_OUT_TAKEN, GW_OUT_RETRY, GW_OUT_FAIL } gw_outcome_t;

const char *gw_outcome_name(gw_outcome_t o);

typedef struct {
    int64_t event_type_id;
    int64_t start_ms;
    const char *attendee_name;
    const char *attendee_email;
    const char *attendee_phone; /* may be NULL */
    const char *time_zone;      /* IANA name; "UTC" when NULL */
    const char *call_id;        /* goes into metadata, so the booking can be traced back */
} gw_booking_req_t;

/* Asks GET /v2/slots for the day around start_ms and sets *is_free when a slot starts
 * exactly at start_ms. */
gw_outcome_t gw_calcom_slot_free(cm_http_client_t *c, const gw_provider_t *p, const char *api_key,
                                 int64_t event_type_id, int64_t start_ms, int *is_free, char *err);

/* POST /v2/bookings. On GW_OUT_OK the new booking's uid is copied into uid (cap bytes). */
gw_outcome_t gw_calcom_book(cm_http_client_t *c, const gw_provider_t *p, const char *api_key,
                            const gw_booking_req_t *req, char *uid, size_t cap, char *err);

/* Whether a slots answer's "data" holds a slot starting at want_ms. Accepts both shapes
 * Cal.com has used: {"2050-09-05":[{"start":ISO}]} (2024-09-04, also {start,end} ranges)
 * and {"slots":{"2050-09-05":[{"time":ISO}]}} (the older /v2/slots/available); times
 * are compared as instants, whatever offset they are written in. Returns 1 or 0, and
 * -1 when data has neither shape. */
int gw_calcom_slots_contain(const json_t *data, int64_t want_ms);

#endif
