/* sim_retell.h - the Retell AI simulator: call objects, signed webhook deliveries and
 * the REST route GET /v2/get-call/{call_id}.
 *
 * Calls are created through the control API with Retell's own field names and kept in
 * memory until a reset. A webhook trigger serialises the envelope {"event","call"} once,
 * signs it as Retell does (x-retell-signature: v=<ms>,d=hex(HMAC-SHA256(api key,
 * body || ms))) and POSTs it to the configured URL as many times as asked, one after the
 * other or from threads released together so that the copies really race.
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

#define SIM_RETELL_MAX_COPIES 64
/* Retell's per-agent webhook_timeout_ms default. */
#define SIM_RETELL_WEBHOOK_TIMEOUT_MS 10000

typedef struct sim_retell sim_retell_t;

typedef struct {
    const char *api_key; /* signs webhooks and guards the REST API; copied */
    uint64_t seed;       /* call id stream seed */
} sim_retell_cfg_t;

/* NULL when out of memory or api_key is empty. */
sim_retell_t *sim_retell_new(const sim_retell_cfg_t *cfg);
/* Frees everything, sets *r to NULL, accepts NULL. No handler or delivery may be
 * running: stop the servers first. */
void sim_retell_free(sim_retell_t **r);

/* Adds GET /v2/get-call/{call_id} to srv (before it starts); r must outlive srv. */
cm_err_t sim_retell_routes(sim_retell_t *r, cm_http_server_t *srv) CM_WUR;

/* Forgets every call and the webhook URL (back to the seed state). The call id stream
 * is not rewound: no process ever hands out one generated id twice. */
void sim_retell_reset(sim_retell_t *r);

/* Sets the URL deliveries go to (copied); it must start with http:// or https://.
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

typedef struct {
    const char *event;           /* "call_started", "call_ended" or "call_analyzed" */
    unsigned copies;             /* 1..SIM_RETELL_MAX_COPIES deliveries of the very same bytes */
    int concurrent;              /* 1: all copies start at once from their own threads */
    int forge;                   /* 1: sign with a key that is not the API key */
    int64_t timestamp_offset_ms; /* added to now for the signed v= (stale/future) */
} sim_retell_send_t;

/* Delivers the event for call_id and returns, after every copy has ended, a new report
 *   {"event","call_id","url","signature","deliveries":[{"status":204|null,"error":null|"...",
 *    "ms":1.4}, ...]}
 * in copy order (status null when no HTTP answer came). The envelope leaves out
 * call_analysis for call_started and call_ended; call_started also shows the call as
 * "ongoing" without its end fields. Errors (nothing sent): CM_EINVAL (bad options),
 * CM_ENOTFOUND (no such call), CM_ESTATE (no webhook URL set), CM_ENOMEM. */
cm_err_t sim_retell_send_webhook(sim_retell_t *r, const char *call_id, const sim_retell_send_t *opt,
                                 json_t **report, char *err) CM_WUR;

#endif
