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
#define EVENT_TYPES_VERSION "cal-api-version: 2024-06-14"

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

/* Maps a finished policy run to an outcome; a 2xx answer is left to the caller. */
static gw_outcome_t classify(gw_calcom_ctx_t *c, gw_policy_status_t st,
                             const gw_policy_outcome_t *o, const cm_http_response_t *r, char *err)
{
    c->retry_in_ms = o->retry_in_ms;
    c->unavailable = st == GW_POL_BREAKER_OPEN || st == GW_POL_RATE_LIMITED;
    /* Judge by the HTTP answer when the run ended on one (retries used up on a 503 is
     * still "the provider answered 503"); otherwise by how the run ended. */
    if (st != GW_POL_DONE && !(st == GW_POL_FAILED && o->last.kind == GW_ATT_OK)) {
        cm_errf(err, "Cal.com %s after %d attempt(s)%s%s", gw_policy_status_name(st), o->attempts,
                r->err[0] ? ": " : "", r->err);
        return o->transient ? GW_OUT_RETRY : GW_OUT_FAIL;
    }
    if (o->last.kind == GW_ATT_REFUSED) {
        cm_errf(err, "slot taken (HTTP %ld)", r->status);
        return GW_OUT_TAKEN;
    }
    cm_errf(err, "HTTP %ld: %.160s", r->status, r->body.data ? r->body.data : "");
    return r->status == 429 || r->status >= 500 ? GW_OUT_RETRY : GW_OUT_FAIL;
}

/* Cal.com refuses a taken slot with 400 and a fixed message (409 on some paths). */
static int slot_taken(const cm_http_response_t *r)
{
    return r->status == 409 ||
           (r->status == 400 && r->body.data && strstr(r->body.data, "already has booking"));
}

gw_outcome_t gw_calcom_slot_free(gw_calcom_ctx_t *c, int64_t event_type_id, int64_t start_ms,
                                 int *is_free, char *err)
{
    char url[512], from[25], to[25], auth[512], day[11];
    const gw_provider_t *p = c->ob->calcom.cfg;
    cm_http_response_t r;
    gw_policy_outcome_t po;
    json_t *body = NULL;
    char *cached = NULL;
    size_t clen = 0;
    gw_outcome_t out = GW_OUT_OK;
    int64_t now = cm_clock_mono_ms();
    *is_free = 0;
    gw_slotcache_day(start_ms, day);
    if (gw_slotcache_get(c->ob->slots, c->api_key, event_type_id, day, now, &cached, &clen) ==
        CM_OK) {
        if (cm_json_parse(cached, clen, 1u << 20, &body, err) != CM_OK)
            body = NULL; /* unreadable entry: ask again */
        free(cached);
    }
    memset(&r, 0, sizeof r);
    if (!body) {
        /* Ask for the whole UTC day (and the next, for slots near midnight elsewhere). */
        cm_clock_iso8601(start_ms - start_ms % 86400000, from);
        cm_clock_iso8601(start_ms - start_ms % 86400000 + 86400000, to);
        from[10] = to[10] = '\0';
        snprintf(url, sizeof url, "%s/v2/slots?eventTypeId=%lld&start=%s&end=%s&timeZone=UTC",
                 p->base_url, (long long)event_type_id, from, to);
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->api_key);
        const char *hdrs[] = {auth, SLOTS_VERSION, NULL};
        gw_call_t call = {.operation = "slots",
                          .safe = 1,
                          .rl_key = c->api_key,
                          .traceparent = c->traceparent,
                          .req = {.method = "GET", .url = url, .headers = hdrs}};
        uint64_t epoch = gw_slotcache_epoch(c->ob->slots);
        gw_policy_status_t st =
            gw_outbound_call(c->ob, &c->ob->calcom, c->http, c->rng, &call, &r, &po);
        if (st != GW_POL_DONE || r.status != 200) {
            out = classify(c, st, &po, &r, err);
        } else if (cm_json_parse(r.body.data, r.body.len, r.body.toobig, &body, err) != CM_OK) {
            out = GW_OUT_RETRY; /* a garbled answer is a provider fault, likely transient */
        } else if (gw_slotcache_put(c->ob->slots, c->api_key, event_type_id, day, r.body.data,
                                    r.body.len, epoch, cm_clock_mono_ms()) != CM_OK) {
            CM_DEBUG("gw.calcom", "slots for %s not cached", day);
        }
    }
    if (out == GW_OUT_OK) {
        int has = gw_calcom_slots_contain(json_object_get(body, "data"), start_ms);
        if (has < 0) {
            cm_errf(err, "slots answer has no known shape");
            out = GW_OUT_FAIL;
        } else {
            *is_free = has;
        }
    }
    json_decref(body);
    cm_http_response_free(&r);
    return out;
}

/* POSTs body (taken) as JSON to path at Cal.com through the policy stack. *resp holds
 * the answer (free it); returns how the run ended. */
static gw_policy_status_t post_json(gw_calcom_ctx_t *c, const char *op, const char *path, int safe,
                                    int (*refused)(const cm_http_response_t *), json_t *body,
                                    cm_http_response_t *resp, gw_policy_outcome_t *po, char *err)
{
    char url[512], auth[512];
    char *text = body ? cm_json_dumps(body) : NULL;
    json_decref(body);
    if (!text) {
        cm_errf(err, "cannot encode the %s request", op);
        memset(resp, 0, sizeof *resp);
        memset(po, 0, sizeof *po);
        return GW_POL_FAILED;
    }
    snprintf(url, sizeof url, "%s%s", c->ob->calcom.cfg->base_url, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->api_key);
    const char *hdrs[] = {auth, BOOKINGS_VERSION, "Content-Type: application/json", NULL};
    gw_call_t call = {
        .operation = op,
        .safe = safe,
        .write = 1,
        .rl_key = c->api_key,
        .refused = refused,
        .traceparent = c->traceparent,
        .req = {
            .method = "POST", .url = url, .headers = hdrs, .body = text, .body_len = strlen(text)}};
    gw_policy_status_t st =
        gw_outbound_call(c->ob, &c->ob->calcom, c->http, c->rng, &call, resp, po);
    free(text);
    return st;
}

gw_outcome_t gw_calcom_book(gw_calcom_ctx_t *c, const gw_booking_req_t *rq, char *uid, size_t cap,
                            char *err)
{
    char start[25];
    cm_http_response_t r;
    gw_policy_outcome_t po;
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
    if (body && rq->saga_id)
        json_object_set_new(json_object_get(body, "metadata"), "saga_id", json_string(rq->saga_id));
    /* Not safe to repeat blindly: only connect errors and 429s are retried inside the
     * run; after a timeout the saga looks for the booking by its metadata first. */
    gw_policy_status_t st = post_json(c, "book", "/v2/bookings", 0, slot_taken, body, &r, &po, err);
    if (st == GW_POL_DONE && (r.status == 200 || r.status == 201)) {
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
    } else {
        out = classify(c, st, &po, &r, err);
        /* A timeout or a broken connection after the request went out: Cal.com may have
         * booked. Not retried here (that could book twice), but not a failure either: the
         * saga's next try finds the open intent and looks the booking up by its metadata
         * before booking again. */
        if (out == GW_OUT_FAIL && st == GW_POL_FAILED &&
            (po.last.kind == GW_ATT_TIMEOUT || po.last.kind == GW_ATT_TRANSPORT))
            out = GW_OUT_RETRY;
    }
    /* Our own booking (or an unknown outcome) changes availability: drop cached slots, here
     * and in the other instances. */
    if (out != GW_OUT_FAIL || st != GW_POL_DONE)
        gw_outbound_slots_changed(c->ob, c->api_key, rq->event_type_id);
    json_decref(ans);
    cm_http_response_free(&r);
    return out;
}

gw_outcome_t gw_calcom_cancel(gw_calcom_ctx_t *c, const char *uid, const char *reason, char *err)
{
    char path[256];
    cm_http_response_t r;
    gw_policy_outcome_t po;
    snprintf(path, sizeof path, "/v2/bookings/%s/cancel", uid);
    /* Cancelling twice is harmless: safe to retry. */
    gw_policy_status_t st = post_json(
        c, "cancel", path, 1, NULL, json_pack("{s:s}", "cancellationReason", reason), &r, &po, err);
    gw_outcome_t out;
    if (st == GW_POL_DONE && ((r.status >= 200 && r.status < 300) || r.status == 404 ||
                              (r.status == 400 && r.body.data && strstr(r.body.data, "already")))) {
        out = GW_OUT_OK;
    } else {
        out = classify(c, st, &po, &r, err);
    }
    cm_http_response_free(&r);
    return out;
}

gw_outcome_t gw_calcom_find(gw_calcom_ctx_t *c, const char *attendee_email, int64_t start_ms,
                            const char *saga_id, char *uid, size_t cap, int *found, char *err)
{
    char url[1024], auth[512], after[25], before[25], email[320];
    cm_http_response_t r;
    gw_policy_outcome_t po;
    json_t *ans = NULL;
    gw_outcome_t out = GW_OUT_OK;
    *found = 0;
    cm_clock_iso8601(start_ms - 60000, after);
    cm_clock_iso8601(start_ms + 86400000, before);
    /* The address goes into a query string: keep it to what needs no escaping. */
    size_t n = 0;
    for (const char *p = attendee_email; *p && n + 4 < sizeof email; p++) {
        if (*p == '+') {
            memcpy(email + n, "%2B", 3);
            n += 3;
        } else if (*p > ' ' && *p != '&' && *p != '#' && *p != '%') {
            email[n++] = *p;
        }
    }
    email[n] = '\0';
    snprintf(url, sizeof url, "%s/v2/bookings?attendeeEmail=%s&afterStart=%s&beforeEnd=%s&take=100",
             c->ob->calcom.cfg->base_url, email, after, before);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->api_key);
    const char *hdrs[] = {auth, BOOKINGS_VERSION, NULL};
    gw_call_t call = {.operation = "find",
                      .safe = 1,
                      .rl_key = c->api_key,
                      .traceparent = c->traceparent,
                      .req = {.method = "GET", .url = url, .headers = hdrs}};
    gw_policy_status_t st =
        gw_outbound_call(c->ob, &c->ob->calcom, c->http, c->rng, &call, &r, &po);
    if (st != GW_POL_DONE || r.status != 200) {
        out = classify(c, st, &po, &r, err);
    } else if (cm_json_parse(r.body.data, r.body.len, r.body.toobig, &ans, err) != CM_OK) {
        out = GW_OUT_RETRY;
    } else {
        const json_t *list = json_object_get(ans, "data");
        if (json_is_object(list)) /* some versions wrap the list: {"bookings":[...]} */
            list = json_object_get(list, "bookings");
        size_t i;
        json_t *b;
        json_array_foreach(list, i, b)
        {
            const char *sid = cm_json_str(b, "metadata.saga_id", NULL);
            const char *u = cm_json_str(b, "uid", NULL);
            const char *status = cm_json_str(b, "status", "");
            if (sid && u && !strcmp(sid, saga_id) && strcmp(status, "cancelled")) {
                snprintf(uid, cap, "%s", u);
                *found = 1;
                break;
            }
        }
    }
    json_decref(ans);
    cm_http_response_free(&r);
    return out;
}

gw_outcome_t gw_calcom_event_types(gw_calcom_ctx_t *c, int64_t team_id, json_t **types,
                                   long *http_status, char *err)
{
    char url[512], auth[512];
    cm_http_response_t r;
    gw_policy_outcome_t po;
    json_t *ans = NULL;
    gw_outcome_t out = GW_OUT_OK;
    *types = NULL;
    if (team_id > 0)
        snprintf(url, sizeof url, "%s/v2/teams/%lld/event-types", c->ob->calcom.cfg->base_url,
                 (long long)team_id);
    else
        snprintf(url, sizeof url, "%s/v2/event-types", c->ob->calcom.cfg->base_url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->api_key);
    const char *hdrs[] = {auth, EVENT_TYPES_VERSION, NULL};
    gw_call_t call = {.operation = "event_types",
                      .safe = 1,
                      .rl_key = c->api_key,
                      .traceparent = c->traceparent,
                      .req = {.method = "GET", .url = url, .headers = hdrs}};
    gw_policy_status_t st =
        gw_outbound_call(c->ob, &c->ob->calcom, c->http, c->rng, &call, &r, &po);
    *http_status = r.status;
    if (st != GW_POL_DONE || r.status != 200) {
        out = classify(c, st, &po, &r, err);
    } else if (cm_json_parse(r.body.data, r.body.len, r.body.toobig, &ans, err) != CM_OK) {
        out = GW_OUT_RETRY;
    } else if (!json_is_array(json_object_get(ans, "data"))) {
        cm_errf(err, "the event types answer has no \"data\" list");
        out = GW_OUT_FAIL;
    } else {
        *types = json_incref(json_object_get(ans, "data"));
    }
    json_decref(ans);
    cm_http_response_free(&r);
    return out;
}
