/* sim_calcom.h - the Cal.com API v2 simulator: event types, slots and bookings.
 *
 * Serves the provider's own routes on a server the caller owns, each answered by the
 * controller real Cal.com would pick for the request's cal-api-version (a missing or
 * unknown one is 2024-04-15); docs/providers-calcom.md lists every rule with its source:
 *   GET  /v2/slots?eventTypeId&start&end[&timeZone][&slotFormat=time|range]  (2024-09-04
 *        only, else 404; slot times and day keys in the requested timeZone)
 *   GET  /v2/slots/available?eventTypeId&startTime&endTime  (every version but 2024-09-04;
 *        the older shape {"slots":{day:[{"time"}]}})
 *   POST /v2/bookings  (2024-08-13: the documented body; any other version: the 2024-04-15
 *        controller, whose validation a 2024-08-13 body fails with 400)
 *   GET  /v2/bookings (status, attendeeEmail, eventTypeId, afterStart, beforeEnd, take, skip;
 *        older: filters[status], limit, cursor), GET /v2/bookings/{uid}
 *   POST /v2/bookings/{uid}/cancel, POST /v2/bookings/{uid}/reschedule (2024-08-13 only; a
 *        new uid, linked both ways by rescheduledFromUid / rescheduledToUid)
 *   GET  /v2/event-types (2024-06-14, or the older shape), GET /v2/teams/{teamId}/event-types
 * Keys as Cal.com's guards ask: required for listing bookings and event types, optional
 * (but refused when wrong) for booking, reading, cancelling and rescheduling one, not read
 * for slots. Rate limit as Cal.com's throttler: a fixed window per key and throttler
 * ("default"; POST /v2/bookings has "create-booking"), a 60 s block past the limit, 429
 * ThrottlerException, X-RateLimit-{Limit,Remaining,Reset}-<Name> and no Retry-After.
 * Success envelope {"status":"success","data":...}, error envelope
 * {"status":"error","timestamp","path","error":{"code","message","details"}}.
 * Seed data: event types 101 "Consultation" (30 min) and 102 "Long session" (60 min), both
 * personal event types of user 1 "Sim Host"; 103 "Team consultation" (30 min), a
 * ROUND_ROBIN type of team 201 "sim-team" with hosts 2 and 3 (the least loaded free host
 * takes a booking). Everyone works 09:00-17:00 UTC every day; extra busy times per host
 * can be added. Booking webhooks (BOOKING_CREATED, BOOKING_CANCELLED, BOOKING_RESCHEDULED)
 * are shaped as Cal.com's webhook version 2021-10-20, signed with X-Cal-Signature-256 and
 * sent once each, never retried (Cal.com's default delivery); the control API can send any
 * trigger through the same worker (sim_calcom_send_event).
 *
 * Every booking ever made stays in memory (the effects ledger) until a reset, so that
 * exactly-once can be checked from outside. All state sits behind one mutex: a booking
 * is checked against the others and stored in one critical section, so of two concurrent
 * requests for one slot exactly one succeeds. All functions but new/free are thread-safe.
 */
#ifndef SIM_CALCOM_H
#define SIM_CALCOM_H

#include <jansson.h>
#include <stdint.h>

#include "cm_err.h"
#include "cm_http_server.h"
#include "sim_journal.h"

typedef struct sim_calcom sim_calcom_t;

typedef struct {
    const char *api_key;        /* the accepted "Bearer <key>"; copied */
    const char *webhook_secret; /* for Cal.com's own webhooks (a later issue); copied */
    int taken_status;           /* answer for a slot that is taken: 400 (default) or 409 */
    uint64_t seed;              /* id stream seed */
    sim_journal_t *journal;     /* borrowed, may be NULL: effects and webhook attempts */
    int rate_limit;             /* requests per 60 s window per key and throttler; 0: none */
} sim_calcom_cfg_t;

/* The message Cal.com sends when a personal event type's slot is not available. */
#define SIM_CALCOM_TAKEN_MSG "User either already has booking at this time or is not available"

/* Creates the simulator in its seed state. NULL when out of memory or cfg is invalid
 * (no key, taken_status not 400/409). */
sim_calcom_t *sim_calcom_new(const sim_calcom_cfg_t *cfg);
/* Frees everything and sets *c to NULL; accepts NULL. No handler may be running: stop
 * the server first. The webhook worker is stopped and joined here. */
void sim_calcom_free(sim_calcom_t **c);

/* Aborts a webhook in flight and stops the worker (call before stopping the servers). */
void sim_calcom_shutdown(sim_calcom_t *c);

/* Sets where booking webhooks go (copied); NULL: nowhere (no subscription). CM_EINVAL when
 * not an http(s) URL. */
cm_err_t sim_calcom_set_webhook(sim_calcom_t *c, const char *url, char *err) CM_WUR;

/* The most copies of one webhook sim_calcom_send_event sends. */
#define SIM_CALCOM_MAX_COPIES 20

/* A webhook built and sent on request (the control API), not caused by a booking change. */
typedef struct {
    const char *trigger;     /* BOOKING_CREATED, BOOKING_RESCHEDULED, BOOKING_CANCELLED,
                                BOOKING_REJECTED, BOOKING_REQUESTED, BOOKING_PAID, MEETING_ENDED */
    const char *booking_uid; /* the payload the simulator builds for this booking, or */
    const json_t *payload;   /* this payload as given (borrowed); exactly one of the two */
    int64_t copies;          /* 1..SIM_CALCOM_MAX_COPIES deliveries of the same bytes */
    int forge;               /* sign with a secret nobody configured */
} sim_calcom_event_t;

/* Builds {"triggerEvent","createdAt":<now>,"payload"} where payload is, for booking_uid,
 * the one the simulator's own webhook of that trigger carries for that booking as it is now
 * (only for the three triggers it sends itself: BOOKING_CREATED, BOOKING_RESCHEDULED,
 * BOOKING_CANCELLED), else ev->payload as given. Serialises it once and queues ev->copies
 * deliveries of those bytes for the webhook worker, signed as the simulator's own
 * (X-Cal-Signature-256 with the webhook secret, "no-secret-provided" without one; forge: a
 * secret nobody configured), one attempt each, no retry, as Cal.com. Returns once every
 * copy's attempt has ended, with a new report shaped as sim_stripe_send_event's
 * ("status":"done"). Every attempt is journaled (kind delivery, delivery_id the report's).
 * Errors, nothing queued: CM_EINVAL (err names the field), CM_ENOTFOUND (no such booking),
 * CM_ESTATE (no webhook URL set), CM_ENOMEM. Blocks until the attempts end. */
cm_err_t sim_calcom_send_event(sim_calcom_t *c, const sim_calcom_event_t *ev, json_t **report,
                               char *err) CM_WUR;

/* A new copy of the report of a webhook sent with sim_calcom_send_event; NULL when unknown
 * (the last 256 are kept, across resets). */
json_t *sim_calcom_delivery(sim_calcom_t *c, const char *delivery_id);

/* Adds a busy time [start, end) to host 1..3's calendar. */
cm_err_t sim_calcom_add_busy(sim_calcom_t *c, int host, int64_t start_ms, int64_t end_ms,
                             char *err) CM_WUR;

/* Adds the provider routes to srv (before it starts); c must outlive srv. */
cm_err_t sim_calcom_routes(sim_calcom_t *c, cm_http_server_t *srv) CM_WUR;

/* Drops all bookings, busy times, rate-limit counts and the webhook URL (back to the seed
 * data). Ids and uids keep counting up, so none is
 * ever handed out twice by one process. */
void sim_calcom_reset(sim_calcom_t *c);

/* The effects ledger: a new {"count":N,"bookings":[<booking as POST answered it>...]} in
 * creation order (deep copy; caller decrefs). NULL when out of memory. */
json_t *sim_calcom_bookings(sim_calcom_t *c);

#endif
