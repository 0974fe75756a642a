/* gw_calcom.c - Cal.com API v2 client. */
#include "gw_calcom.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_json.h"
#include "cm_log.h"

#define SLOTS_VERSION "cal-api-version: 2024-09-04"
#define BOOKINGS_VERSION "cal-api-version: 2024-08-13"

const char *gw_outcome_name(gw_outcome_t o)
{
    static const char *const names[] = {"ok", "taken", "retry", "fail"};
    return (unsigned)o < 4 ? names[o] : "?";
}

int gw_calcom_slots_contain(const json_t *data, int64_t want_ms)
{
    const json_t *days = data;
    if (json_is_object(json_object_get(data, "slots")))
        days = json_object_get(data, "slots");
    if (!json_is_object(days))
        return -1;
    const char *day;
    json_t *list;
    json_object_foreach((json_t *)days, day, list)
    {
        if (!json_is_array(list))
            return -1;
        size_t i;
        json_t *slot;
        json_array_foreach(list, i, slot)
        {
            const char *t = cm_json_str(slot, "start", cm_json_str(slot, "time", NULL));
            int64_t ms;
            if (t && cm_clock_parse_iso8601(t, &ms) == 0 && ms == want_ms)
                return 1;
        }
    }
    return 0;
}

/* Maps a transport result and status to an outcome; 2xx is left to the caller. */
static gw_outcome_t classify(cm_err_t rc, const cm_http_response_t *r, char *err)
{
    if (rc) {
        cm_errf(err, "%s", r->err);
        return GW_OUT_RETRY;
    }
    if (r->status == 429 || r->status >= 500) {
        cm_errf(err, "HTTP %ld", r->status);
        return GW_OUT_RETRY;
    }
    cm_errf(err, "HTTP %ld: %.160s", r->status, r->body.data ? r->body.data : "");
    return GW_OUT_FAIL;
}

static void auth_header(char *buf, size_t cap, const char *api_key)
{
    snprintf(buf, cap, "Authorization: Bearer %s", api_key);
}

gw_outcome_t gw_calcom_slot_free(cm_http_client_t *c, const gw_provider_t *p, const char *api_key,
                                 int64_t event_type_id, int64_t start_ms, int *is_free, char *err)
{
    char url[512], from[25], to[25], auth[512];
    cm_http_response_t r;
    json_t *body = NULL;
    gw_outcome_t out;
    *is_free = 0;
    /* Ask for the whole UTC day (and the next, for slots near midnight in other zones). */
    cm_clock_iso8601(start_ms - start_ms % 86400000, from);
    cm_clock_iso8601(start_ms - start_ms % 86400000 + 86400000, to);
    from[10] = to[10] = '\0';
    snprintf(url, sizeof url, "%s/v2/slots?eventTypeId=%lld&start=%s&end=%s&timeZone=UTC",
             p->base_url, (long long)event_type_id, from, to);
    auth_header(auth, sizeof auth, api_key);
    const char *hdrs[] = {auth, SLOTS_VERSION, NULL};
    cm_http_request_t req = {.method = "GET",
                             .url = url,
                             .headers = hdrs,
                             .connect_timeout_ms = p->connect_timeout_ms,
                             .timeout_ms = p->timeout_ms};
    cm_err_t rc = cm_http_client_do(c, &req, &r);
    if (rc || r.status != 200) {
        out = classify(rc, &r, err);
    } else if (cm_json_parse(r.body.data, r.body.len, r.body.toobig, &body, err) != CM_OK) {
        out = GW_OUT_RETRY; /* a garbled answer is a provider fault, likely transient */
    } else {
        int has = gw_calcom_slots_contain(json_object_get(body, "data"), start_ms);
        if (has < 0) {
            cm_errf(err, "slots answer has no known shape");
            out = GW_OUT_FAIL;
        } else {
            *is_free = has;
            out = GW_OUT_OK;
        }
    }
    json_decref(body);
    cm_http_response_free(&r);
    return out;
}

gw_outcome_t gw_calcom_book(cm_http_client_t *c, const gw_provider_t *p, const char *api_key,
                            const gw_booking_req_t *rq, char *uid, size_t cap, char *err)
{
    char url[512], start[25], auth[512];
    cm_http_response_t r;
    json_t *ans = NULL;
    gw_outcome_t out;
    json_t *attendee =
        json_pack("{s:s,s:s,s:s}", "name", rq->attendee_name, "email", rq->attendee_email,
                  "timeZone", rq->time_zone ? rq->time_zone : "UTC");
    if (attendee && rq->attendee_phone)
        json_object_set_new(attendee, "phoneNumber", json_string(rq->attendee_phone));
    json_t *body =
        json_pack("{s:s,s:I,s:o,s:{s:s}}", "start", cm_clock_iso8601(rq->start_ms, start),
                  "eventTypeId", (json_int_t)rq->event_type_id, "attendee", attendee, "metadata",
                  "retell_call_id", rq->call_id);
    char *text = body ? cm_json_dumps(body) : NULL;
    json_decref(body);
    if (!text) {
        cm_errf(err, "cannot encode booking request");
        return GW_OUT_FAIL;
    }
    snprintf(url, sizeof url, "%s/v2/bookings", p->base_url);
    auth_header(auth, sizeof auth, api_key);
    const char *hdrs[] = {auth, BOOKINGS_VERSION, "Content-Type: application/json", NULL};
    cm_http_request_t req = {.method = "POST",
                             .url = url,
                             .headers = hdrs,
                             .body = text,
                             .body_len = strlen(text),
                             .connect_timeout_ms = p->connect_timeout_ms,
                             .timeout_ms = p->timeout_ms};
    cm_err_t rc = cm_http_client_do(c, &req, &r);
    free(text);
    if (!rc && (r.status == 200 || r.status == 201)) {
        const char *u = NULL;
        if (cm_json_parse(r.body.data, r.body.len, r.body.toobig, &ans, err) == CM_OK)
            u = cm_json_str(ans, "data.uid", NULL);
        if (u) {
            snprintf(uid, cap, "%s", u);
            out = GW_OUT_OK;
        } else {
            /* Booked, but we cannot tell which: retrying could book twice, so stop here and
             * let a person look (the saga will search by metadata instead). */
            cm_errf(err, "booking answer without data.uid");
            out = GW_OUT_FAIL;
        }
    } else if (!rc && (r.status == 409 || (r.status == 400 && r.body.data &&
                                           strstr(r.body.data, "already has booking")))) {
        cm_errf(err, "slot taken (HTTP %ld)", r.status);
        out = GW_OUT_TAKEN;
    } else {
        out = classify(rc, &r, err);
    }
    json_decref(ans);
    cm_http_response_free(&r);
    return out;
}
