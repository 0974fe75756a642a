/* sim_calcom.c - Cal.com API v2: slots and bookings over the seed event types. */
#include "sim_calcom.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_log.h"
#include "sim_http.h"
#include "sim_rng.h"
#include "sim_slots.h"

#define COMP "sim.calcom"
#define SLOTS_VERSION "2024-09-04"
#define BOOKINGS_VERSION "2024-08-13"
/* A guard on answer size, not a Cal.com rule: a year of 30-minute slots is ~6000 items. */
#define MAX_RANGE_DAYS 366
/* short-uuid's flickrBase58 alphabet: Cal.com uids are 22 characters of it. */
#define UID_ALPHABET "123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
#define UID_LEN 22

typedef struct {
    int id;
    const char *slug;
    const char *title;
    int length_min;
} event_type_t;

static const event_type_t event_types[] = {
    {101, "consultation", "Consultation", 30},
    {102, "long-session", "Long session", 60},
};

static const sim_hours_t hours = {9 * 60, 17 * 60};

#define HOST_ID 1
#define HOST_NAME "Sim Host"
#define HOST_EMAIL "host@sim.example"
#define HOST_USERNAME "simhost"

struct sim_calcom {
    pthread_mutex_t mu;
    char *api_key;
    char *webhook_secret;
    int taken_status;
    sim_rng_t rng;
    /* guarded by mu */
    json_t *ledger;       /* array of booking objects, creation order */
    json_t *by_uid;       /* uid -> the same booking objects */
    sim_interval_t *busy; /* intervals of accepted bookings */
    size_t nbusy, capbusy;
    int64_t next_id; /* never reset: ids are unique for the process's life */
};

sim_calcom_t *sim_calcom_new(const sim_calcom_cfg_t *cfg)
{
    if (!cfg->api_key || !*cfg->api_key || (cfg->taken_status != 400 && cfg->taken_status != 409))
        return NULL;
    sim_calcom_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->api_key = strdup(cfg->api_key);
    c->webhook_secret = strdup(cfg->webhook_secret ? cfg->webhook_secret : "");
    c->taken_status = cfg->taken_status;
    sim_rng_init(&c->rng, cfg->seed, 2);
    c->ledger = json_array();
    c->by_uid = json_object();
    c->next_id = 1;
    if (!c->api_key || !c->webhook_secret || !c->ledger || !c->by_uid)
        sim_calcom_free(&c);
    return c;
}

void sim_calcom_free(sim_calcom_t **cp)
{
    sim_calcom_t *c = cp ? *cp : NULL;
    if (!c)
        return;
    json_decref(c->ledger);
    json_decref(c->by_uid);
    free(c->busy);
    free(c->api_key);
    free(c->webhook_secret);
    sim_rng_destroy(&c->rng);
    pthread_mutex_destroy(&c->mu);
    free(c);
    *cp = NULL;
}

void sim_calcom_reset(sim_calcom_t *c)
{
    pthread_mutex_lock(&c->mu);
    json_array_clear(c->ledger);
    json_object_clear(c->by_uid);
    c->nbusy = 0;
    pthread_mutex_unlock(&c->mu);
}

json_t *sim_calcom_bookings(sim_calcom_t *c)
{
    pthread_mutex_lock(&c->mu);
    json_t *copy = json_deep_copy(c->ledger);
    pthread_mutex_unlock(&c->mu);
    if (!copy)
        return NULL;
    return json_pack("{s:I,s:o}", "count", (json_int_t)json_array_size(copy), "bookings", copy);
}

static const event_type_t *find_event_type(int64_t id)
{
    for (size_t i = 0; i < sizeof event_types / sizeof event_types[0]; i++)
        if (event_types[i].id == id)
            return &event_types[i];
    return NULL;
}

/* ---- answers ---------------------------------------------------------------------- */

static void answer_error(const cm_http_req_t *req, cm_http_resp_t *resp, int status,
                         const char *code, const char *message)
{
    char ts[25];
    /* path and message may quote the request, so they go through sim_http_str. */
    json_t *v = json_pack("{s:s,s:s,s:o,s:{s:s,s:o,s:{}}}", "status", "error", "timestamp",
                          cm_clock_iso8601(cm_clock_now_ms(), ts), "path", sim_http_str(req->path),
                          "error", "code", code, "message", sim_http_str(message), "details");
    cm_http_resp_json(resp, status, v);
}

static void answer_bad_request(const cm_http_req_t *req, cm_http_resp_t *resp, const char *msg)
{
    answer_error(req, resp, 400, "BadRequestException", msg);
}

static void answer_success(cm_http_resp_t *resp, int status, json_t *data)
{
    cm_http_resp_json(resp, status,
                      data ? json_pack("{s:s,s:o}", "status", "success", "data", data) : NULL);
}

static int authorised(const sim_calcom_t *c, const cm_http_req_t *req, cm_http_resp_t *resp)
{
    if (sim_http_bearer_ok(req, c->api_key))
        return 1;
    answer_error(req, resp, 401, "UnauthorizedException",
                 cm_http_req_header(req, "Authorization") ? "Invalid Access Token."
                                                          : "No Authorization header provided.");
    return 0;
}

/* Real Cal.com silently falls back to an older behaviour for a missing or other
 * cal-api-version. The simulator keeps the current behaviour but says so in a header,
 * so tests can see that a client forgot (or mistyped) the version. */
static void note_version(const cm_http_req_t *req, cm_http_resp_t *resp, const char *want)
{
    const char *v = cm_http_req_header(req, "cal-api-version");
    if (!v || strcmp(v, want) != 0) {
        if (cm_http_resp_header(resp, "X-Sim-Version-Fallback", "1") != CM_OK)
            CM_WARN(COMP, "could not add the version fall-back header");
        CM_DEBUG(COMP, "%s %s with cal-api-version '%s' (want %s)", req->method, req->path,
                 v ? v : "", want);
    }
}

/* ---- GET /v2/slots ---------------------------------------------------------------- */

/* A day ("2050-09-05": its first or, for an end, last millisecond, UTC) or an ISO
 * date-time. Real Cal.com reads dates and offset-less times in the requested timeZone;
 * the simulator reads them as UTC. */
static int parse_bound(const char *s, int is_end, int64_t *out)
{
    char tmp[48];
    if (strlen(s) == 10) {
        snprintf(tmp, sizeof tmp, "%sT00:00:00Z", s);
        if (cm_clock_parse_iso8601(tmp, out) != 0)
            return -1;
        if (is_end)
            *out += SIM_DAY_MS - 1;
        return 0;
    }
    if (cm_clock_parse_iso8601(s, out) == 0)
        return 0;
    if (strlen(s) > sizeof tmp - 2)
        return -1;
    snprintf(tmp, sizeof tmp, "%sZ", s);
    return cm_clock_parse_iso8601(tmp, out);
}

static int parse_id(const char *s, int64_t *out)
{
    char *end;
    if (!s || !*s)
        return -1;
    long long v = strtoll(s, &end, 10);
    if (*end || v <= 0)
        return -1;
    *out = v;
    return 0;
}

typedef struct {
    json_t *data;
    int64_t len_ms;
    int range;
    int oom;
} slot_sink_t;

static int add_slot(int64_t start_ms, void *ud)
{
    slot_sink_t *k = ud;
    char s[25], e[25], day[11];
    cm_clock_iso8601(start_ms, s);
    memcpy(day, s, 10);
    day[10] = '\0';
    json_t *list = json_object_get(k->data, day);
    if (!list) {
        list = json_array();
        if (!list || json_object_set_new(k->data, day, list)) {
            k->oom = 1;
            return 1;
        }
    }
    /* Emitted in UTC with a Z suffix. Real Cal.com writes these in the requested
     * timeZone's offset ("2050-09-05T11:00:00.000+02:00"): every client must parse and
     * compare instants, never compare these strings. */
    json_t *item = k->range ? json_pack("{s:s,s:s}", "start", s, "end",
                                        cm_clock_iso8601(start_ms + k->len_ms, e))
                            : json_pack("{s:s}", "start", s);
    if (!item || json_array_append_new(list, item)) {
        k->oom = 1;
        return 1;
    }
    return 0;
}

static void h_slots(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_calcom_t *c = ud;
    if (!authorised(c, req, resp))
        return;
    note_version(req, resp, SLOTS_VERSION);
    const char *qid = cm_http_req_query(req, "eventTypeId");
    const char *qstart = cm_http_req_query(req, "start");
    const char *qend = cm_http_req_query(req, "end");
    const char *qfmt = cm_http_req_query(req, "slotFormat");
    int64_t id, from, to;
    if (!qid) {
        answer_bad_request(req, resp,
                           "eventTypeId is required (eventTypeSlug lookups are "
                           "not simulated)");
        return;
    }
    if (parse_id(qid, &id) != 0) {
        answer_bad_request(req, resp, "eventTypeId must be a positive integer");
        return;
    }
    if (!qstart || parse_bound(qstart, 0, &from) != 0) {
        answer_bad_request(req, resp,
                           "start must be a date (YYYY-MM-DD) or an ISO 8601 "
                           "date-time");
        return;
    }
    if (!qend || parse_bound(qend, 1, &to) != 0) {
        answer_bad_request(req, resp,
                           "end must be a date (YYYY-MM-DD) or an ISO 8601 "
                           "date-time");
        return;
    }
    if (to < from) {
        answer_bad_request(req, resp, "end must not be before start");
        return;
    }
    if (to - from > (int64_t)MAX_RANGE_DAYS * SIM_DAY_MS) {
        answer_bad_request(req, resp, "the range from start to end must not exceed 366 days");
        return;
    }
    if (qfmt && strcmp(qfmt, "time") != 0 && strcmp(qfmt, "range") != 0) {
        answer_bad_request(req, resp, "slotFormat must be one of: time, range");
        return;
    }
    const event_type_t *et = find_event_type(id);
    if (!et) {
        char msg[96];
        snprintf(msg, sizeof msg, "Event type with id=%lld not found", (long long)id);
        answer_error(req, resp, 404, "NotFoundException", msg);
        return;
    }
    slot_sink_t sink = {.data = json_object(),
                        .len_ms = (int64_t)et->length_min * 60000,
                        .range = qfmt && strcmp(qfmt, "range") == 0};
    if (!sink.data) {
        cm_http_resp_json(resp, 500, NULL);
        return;
    }
    int64_t now = cm_clock_now_ms();
    pthread_mutex_lock(&c->mu);
    sim_slots_list(&hours, sink.len_ms, from, to, c->busy, c->nbusy, now, add_slot, &sink);
    pthread_mutex_unlock(&c->mu);
    if (sink.oom) {
        json_decref(sink.data);
        cm_http_resp_json(resp, 500, NULL);
        return;
    }
    answer_success(resp, 200, sink.data);
}

/* ---- POST /v2/bookings ------------------------------------------------------------ */

typedef struct {
    int64_t start_ms;
    const event_type_t *et;
    const json_t *attendee;
    const json_t *metadata; /* NULL: none sent */
} booking_req_t;

/* Checks the body; on failure writes the message Cal.com's validation would give. */
static int validate_booking(const json_t *body, booking_req_t *b, char *msg, size_t cap,
                            int *not_found)
{
    const json_t *start = json_object_get(body, "start");
    const json_t *etid = json_object_get(body, "eventTypeId");
    const json_t *att = json_object_get(body, "attendee");
    const json_t *meta = json_object_get(body, "metadata");
    *not_found = 0;
    if (!json_is_string(start)) {
        snprintf(msg, cap, "start must be a valid ISO 8601 date-time string (UTC)");
        return -1;
    }
    if (cm_clock_parse_iso8601(json_string_value(start), &b->start_ms) != 0) {
        snprintf(msg, cap, "start '%.40s' is not a valid ISO 8601 date-time",
                 json_string_value(start));
        return -1;
    }
    if (!json_is_integer(etid) || json_integer_value(etid) <= 0) {
        snprintf(msg, cap,
                 "eventTypeId must be a positive integer (eventTypeSlug lookups are "
                 "not simulated)");
        return -1;
    }
    if (!json_is_object(att)) {
        snprintf(msg, cap, "attendee must be an object with name, email and timeZone");
        return -1;
    }
    static const char *const required[] = {"name", "email", "timeZone"};
    for (size_t i = 0; i < 3; i++) {
        const json_t *f = json_object_get(att, required[i]);
        if (!json_is_string(f) || !*json_string_value(f)) {
            snprintf(msg, cap, "attendee.%s must be a non-empty string", required[i]);
            return -1;
        }
    }
    if (!strchr(json_string_value(json_object_get(att, "email")), '@')) {
        snprintf(msg, cap, "attendee.email must be an email");
        return -1;
    }
    static const char *const optional[] = {"language", "phoneNumber"};
    for (size_t i = 0; i < 2; i++) {
        const json_t *f = json_object_get(att, optional[i]);
        if (f && !json_is_string(f)) {
            snprintf(msg, cap, "attendee.%s must be a string", optional[i]);
            return -1;
        }
    }
    if (meta && !json_is_object(meta)) {
        snprintf(msg, cap, "metadata must be an object");
        return -1;
    }
    b->et = find_event_type(json_integer_value(etid));
    if (!b->et) {
        snprintf(msg, cap, "Event type with id=%lld not found",
                 (long long)json_integer_value(etid));
        *not_found = 1;
        return -1;
    }
    b->attendee = att;
    b->metadata = meta;
    return 0;
}

/* Builds the booking object as POST /v2/bookings (2024-08-13) answers it. Called under
 * the lock, because it takes the next id. */
static json_t *make_booking(sim_calcom_t *c, const booking_req_t *b, int64_t now)
{
    char uid[UID_LEN + 1], s[25], e[25], created[25];
    const json_t *att = b->attendee;
    const char *name = json_string_value(json_object_get(att, "name"));
    const char *lang = json_string_value(json_object_get(att, "language"));
    const json_t *phone = json_object_get(att, "phoneNumber");
    size_t tcap = strlen(b->et->title) + strlen(HOST_NAME) + strlen(name) + 16;
    char *title = malloc(tcap);
    if (!title)
        return NULL;
    snprintf(title, tcap, "%s between %s and %s", b->et->title, HOST_NAME, name);
    sim_rng_chars(&c->rng, UID_ALPHABET, uid, UID_LEN);
    json_t *attendee =
        json_pack("{s:O,s:O,s:O,s:s,s:b}", "name", json_object_get(att, "name"), "email",
                  json_object_get(att, "email"), "timeZone", json_object_get(att, "timeZone"),
                  "language", lang ? lang : "en", "absent", 0);
    if (attendee && phone)
        json_object_set(attendee, "phoneNumber", (json_t *)phone);
    json_t *meta = b->metadata ? json_deep_copy(b->metadata) : json_object();
    json_t *v = json_pack(
        "{s:I,s:s,s:s,s:s,s:s,s:s,s:i,s:i,s:{s:i,s:s},s:[o],s:[{s:i,s:s,s:s,s:s,s:s}],s:o,s:s}",
        "id", (json_int_t)c->next_id, "uid", uid, "title", title, "status", "accepted", "start",
        cm_clock_iso8601(b->start_ms, s), "end",
        cm_clock_iso8601(b->start_ms + (int64_t)b->et->length_min * 60000, e), "duration",
        b->et->length_min, "eventTypeId", b->et->id, "eventType", "id", b->et->id, "slug",
        b->et->slug, "attendees", attendee, "hosts", "id", HOST_ID, "name", HOST_NAME, "email",
        HOST_EMAIL, "username", HOST_USERNAME, "timeZone", "UTC", "metadata", meta, "createdAt",
        cm_clock_iso8601(now, created));
    free(title);
    if (v)
        c->next_id++;
    return v;
}

/* Records v as a busy, listed booking. Under the lock. On error nothing is changed. */
static cm_err_t store_booking(sim_calcom_t *c, json_t *v, int64_t start_ms, int64_t end_ms)
{
    if (c->nbusy == c->capbusy) {
        size_t ncap = c->capbusy ? c->capbusy * 2 : 32;
        sim_interval_t *nb = realloc(c->busy, ncap * sizeof *nb);
        if (!nb)
            return CM_ENOMEM;
        c->busy = nb;
        c->capbusy = ncap;
    }
    if (json_array_append(c->ledger, v))
        return CM_ENOMEM;
    if (json_object_set(c->by_uid, json_string_value(json_object_get(v, "uid")), v)) {
        json_array_remove(c->ledger, json_array_size(c->ledger) - 1);
        return CM_ENOMEM;
    }
    c->busy[c->nbusy++] = (sim_interval_t){start_ms, end_ms};
    return CM_OK;
}

static void h_book(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_calcom_t *c = ud;
    char msg[CM_ERR_LEN];
    json_t *body = NULL;
    booking_req_t b;
    int not_found;
    if (!authorised(c, req, resp))
        return;
    note_version(req, resp, BOOKINGS_VERSION);
    if (sim_http_json_object(req, 0, &body, msg) != CM_OK) {
        answer_bad_request(req, resp, msg);
        return;
    }
    if (validate_booking(body, &b, msg, sizeof msg, &not_found) != 0) {
        if (not_found)
            answer_error(req, resp, 404, "NotFoundException", msg);
        else
            answer_bad_request(req, resp, msg);
        json_decref(body);
        return;
    }

    int64_t now = cm_clock_now_ms();
    int64_t len_ms = (int64_t)b.et->length_min * 60000;
    json_t *booking = NULL, *answer = NULL;
    cm_err_t rc = CM_OK;
    /* Check and insert in one critical section: this is what makes two concurrent
     * requests for one slot end in exactly one booking. */
    pthread_mutex_lock(&c->mu);
    sim_slot_state_t st = sim_slots_check(&hours, len_ms, b.start_ms, c->busy, c->nbusy, now);
    if (st == SIM_SLOT_FREE) {
        booking = make_booking(c, &b, now);
        rc = booking ? store_booking(c, booking, b.start_ms, b.start_ms + len_ms) : CM_ENOMEM;
        if (!rc)
            answer = json_deep_copy(booking); /* the stored one stays private to the lock */
    }
    pthread_mutex_unlock(&c->mu);
    json_decref(booking);

    if (st == SIM_SLOT_PAST) {
        answer_bad_request(req, resp, "Attempting to book a meeting in the past.");
    } else if (st != SIM_SLOT_FREE) {
        answer_error(req, resp, c->taken_status,
                     c->taken_status == 409 ? "ConflictException" : "BadRequestException",
                     SIM_CALCOM_TAKEN_MSG);
    } else if (rc || !answer) {
        cm_http_resp_json(resp, 500, NULL);
    } else {
        CM_INFO(COMP, "booking %s created for event type %d at %s",
                json_string_value(json_object_get(answer, "uid")), b.et->id,
                json_string_value(json_object_get(answer, "start")));
        answer_success(resp, 201, answer);
    }
    json_decref(body);
}

/* ---- GET /v2/bookings/{uid} ------------------------------------------------------- */

static void h_get_booking(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_calcom_t *c = ud;
    const char *uid = cm_http_req_param(req, "uid");
    if (!authorised(c, req, resp))
        return;
    note_version(req, resp, BOOKINGS_VERSION);
    pthread_mutex_lock(&c->mu);
    json_t *v = json_object_get(c->by_uid, uid);
    json_t *copy = v ? json_deep_copy(v) : NULL;
    pthread_mutex_unlock(&c->mu);
    if (!v) {
        char msg[160];
        snprintf(msg, sizeof msg, "Booking with uid=%.100s was not found in the database", uid);
        answer_error(req, resp, 404, "NotFoundException", msg);
        return;
    }
    answer_success(resp, 200, copy);
}

cm_err_t sim_calcom_routes(sim_calcom_t *c, cm_http_server_t *srv)
{
    cm_err_t rc = cm_http_server_route(srv, "GET /v2/slots", h_slots, c);
    if (!rc)
        rc = cm_http_server_route(srv, "POST /v2/bookings", h_book, c);
    if (!rc)
        rc = cm_http_server_route(srv, "GET /v2/bookings/{uid}", h_get_booking, c);
    return rc;
}
