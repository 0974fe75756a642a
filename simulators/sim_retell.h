/* sim_retell.h - the Retell AI simulator: call objects, signed webhook deliveries with
 * Retell's retries, and the REST routes GET /v2/get-call/{call_id}, POST
 * /v2/create-phone-call and POST /v3/list-calls.
 *
 * Calls are created through the control API with Retell's own field names and kept in
 * memory until a reset. A webhook trigger serialises the envelope {"event","call"} once
 * and POSTs it as many times as asked, one after the other or from threads released
 * together so that the copies really race. As on Retell, each attempt is signed just
 * before it is sent (x-retell-signature: v=<ms>,d=hex(HMAC-SHA256(api key, body || ms)))
 * and goes to the webhook URL configured at that moment, so a delayed delivery is not
 * stale on arrival and retries follow a gateway that moved to another port.
 *
 * State sits behind one mutex that is never held while a webhook is in flight (the
 * receiver may call back into GET /v2/get-call). All functions but new/free are
 * thread-safe.
 */
#ifndef SIM_RETELL_H
#define SIM_RETELL_H

#include <jansson.h>
#include <stdint.h>

#include "cm_err.h"
#include "cm_http_server.h"
#include "sim_journal.h"

#define SIM_RETELL_MAX_COPIES 64
/* Retell's per-agent webhook_timeout_ms default. */
#define SIM_RETELL_WEBHOOK_TIMEOUT_MS 10000
/* Retell retries a delivery up to 3 times on a non-2xx answer or a timeout. */
#define SIM_RETELL_DEFAULT_RETRIES 3
#define SIM_RETELL_MAX_RETRIES 10
#define SIM_RETELL_MAX_EVENTS 8
/* How far timestamp_offset_ms may move v= either way: ten years, as for Stripe's t=. */
#define SIM_RETELL_MAX_OFFSET_MS (3650LL * 86400 * 1000)
/* The largest start_timestamp, end_timestamp or duration_ms a call may be given: 2^53 - 1,
 * the largest integer JavaScript holds exactly. */
#define SIM_RETELL_MAX_TIME_MS 9007199254740991LL

typedef struct sim_retell sim_retell_t;

typedef struct {
    const char *api_key;       /* signs webhooks and guards the REST API; copied */
    uint64_t seed;             /* call id stream seed */
    sim_journal_t *journal;    /* borrowed, may be NULL: where delivery attempts are recorded */
    unsigned retries;          /* default retries per delivery (0: none) */
    int64_t retry_interval_ms; /* default pause between attempts */
    int64_t timeout_ms;        /* default per-attempt timeout; 0: 10 s */
} sim_retell_cfg_t;

/* NULL when out of memory or api_key is empty. */
sim_retell_t *sim_retell_new(const sim_retell_cfg_t *cfg);
/* Frees everything, sets *r to NULL, accepts NULL. Stop the servers first; asynchronous
 * deliveries still running are aborted and joined here. */
void sim_retell_free(sim_retell_t **r);

/* Aborts deliveries in flight and their retry pauses (call before stopping the servers). */
void sim_retell_shutdown(sim_retell_t *r);

/* Adds GET /v2/get-call/{call_id} to srv (before it starts); r must outlive srv. */
cm_err_t sim_retell_routes(sim_retell_t *r, cm_http_server_t *srv) CM_WUR;

/* Forgets every call and the webhook URL (back to the seed state). The call id stream
 * is not rewound: no process ever hands out one generated id twice. Deliveries triggered
 * before the reset send no further attempt (each such attempt is reported as not sent),
 * so nothing of the scenario before reaches the webhook URL set after it. */
void sim_retell_reset(sim_retell_t *r);

/* Sets the URL deliveries go to (copied); it must start with http:// or https://. Every
 * attempt sent from now on goes there, including those of deliveries already in flight.
 * CM_EINVAL (err says why) leaves the old URL. */
cm_err_t sim_retell_set_webhook_url(sim_retell_t *r, const char *url, char *err) CM_WUR;

/* Creates an ended, analysed inbound phone call. overrides (borrowed, may be NULL) is
 * applied to the defaults as a JSON merge patch (RFC 7396: objects such as
 * call_analysis merge key by key, null removes a key); a string call_id in it is used
 * instead of a generated "call_" + 32 hex digits. When only some of start_timestamp,
 * end_timestamp and duration_ms are given, the others are derived to stay consistent.
 * On success *call is a new copy of the stored object. CM_EINVAL (not an object, bad
 * call_id), CM_EEXISTS (call_id taken) or CM_ENOMEM leave nothing stored. */
cm_err_t sim_retell_create_call(sim_retell_t *r, const json_t *overrides, json_t **call,
                                char *err) CM_WUR;

/* A new copy of the call, or NULL when there is none. */
json_t *sim_retell_get_call(sim_retell_t *r, const char *call_id);

typedef enum {
    SIM_RETELL_ORDER_GIVEN = 0,
    SIM_RETELL_ORDER_REVERSE,
    SIM_RETELL_ORDER_SHUFFLE, /* seeded */
} sim_retell_order_t;

typedef struct {
    const char *event;           /* "call_started", "call_ended", "call_analyzed" or "lifecycle" */
    unsigned copies;             /* 1..SIM_RETELL_MAX_COPIES deliveries of the very same bytes */
    int concurrent;              /* 1: all copies start at once from their own threads */
    int forge;                   /* 1: sign with a key that is not the API key */
    int64_t timestamp_offset_ms; /* added to each attempt's send time for v= (stale/future) */
    /* A batch instead of event: NULL-terminated names (also "lifecycle"), sent in order. */
    const char *const *events;
    sim_retell_order_t order;
    unsigned retries;          /* 0..SIM_RETELL_MAX_RETRIES more attempts on non-2xx/timeout */
    int64_t retry_interval_ms; /* pause before each retry */
    int64_t timeout_ms;        /* per attempt; 0: 10 s */
    int64_t delay_ms;          /* before the first delivery */
    int async;                 /* 1: return at once; the report is read later */
} sim_retell_send_t;

/* Fills opt's retries, retry_interval_ms and timeout_ms with the current defaults. */
void sim_retell_delivery_defaults(sim_retell_t *r, sim_retell_send_t *opt);
/* Sets those defaults. CM_EINVAL (err says why) leaves them. */
cm_err_t sim_retell_set_delivery_defaults(sim_retell_t *r, unsigned retries, int64_t interval_ms,
                                          int64_t timeout_ms, char *err) CM_WUR;

/* Delivers the event(s) for call_id and returns, after every copy has ended, a new report
 *   {"delivery_id","status":"done","event","events":[...],"call_id","url","signature",
 *    "deliveries":[{"status":204|null,"error":null|"...","ms":1.4,"event",
 *                   "attempts":[{"status","error","ms","url","signature"}...]}, ...]}
 * event-major, in copy order (status/error/ms: the last attempt; status null when no HTTP
 * answer came). The top "url" is the webhook URL when triggered, "signature" the first
 * attempt's (null if none was sent); each attempt has the URL and signature it was sent
 * with (null when it was not sent: after a reset, see sim_retell_reset). "lifecycle" is
 * call_started (left out for undialled calls: dial_* reasons or not_connected),
 * call_ended, call_analyzed. Each event is serialised once, so copies and retries carry
 * the same bytes; every attempt, the first after delay_ms included, is signed when it is
 * sent (v= is the send time plus timestamp_offset_ms), and goes to the URL configured
 * then. Concurrent copies share the signature made as they are released together;
 * sequential ones are each signed when sent. With async the report is
 * {"delivery_id","status":"pending","call_id"} at once and sim_retell_delivery gives the
 * rest later. The envelope leaves out call_analysis for call_started and call_ended;
 * call_started also shows the call as "ongoing" without its end fields. Every attempt sent
 * is journaled (kind delivery, with its URL). Errors (nothing sent): CM_EINVAL (bad
 * options, a timestamp that cannot be signed), CM_ENOTFOUND (no such call), CM_ESTATE (no
 * webhook URL set), CM_ENOMEM. */
cm_err_t sim_retell_send_webhook(sim_retell_t *r, const char *call_id, const sim_retell_send_t *opt,
                                 json_t **report, char *err) CM_WUR;

/* A new copy of a delivery's report ({"status":"pending"} while it runs), or NULL when it
 * is unknown (only the last 256 are kept). */
json_t *sim_retell_delivery(sim_retell_t *r, const char *delivery_id);

/* Sends an earlier delivery's events again, once each, byte for byte with the signatures
 * their first attempts were sent with (resign 0: a replay attack, stale after 5 minutes)
 * or signed when sent (resign 1), to the current webhook URL. The report is that of a new
 * delivery with "replay_of". CM_ENOTFOUND (unknown delivery), CM_ESTATE (no webhook URL
 * set, or resign 0 and an event of it was never sent) send nothing. */
cm_err_t sim_retell_replay(sim_retell_t *r, const char *delivery_id, int resign, json_t **report,
                           char *err) CM_WUR;

#endif
