/* test_sim_calcom.c - the Cal.com simulator over real loopback sockets. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_http_client.h"
#include "cm_http_server.h"
#include "cm_json.h"
#include "cm_clock.h"
#include "cm_log.h"
#include "cm_sig.h"
#include "sim_calcom.h"

#define KEY "cal_test_key"

static sim_calcom_t *cal;
static sim_journal_t *jr;
static cm_http_server_t *srv;
static char base[64];

static void start_full(int taken_status, int rate_limit)
{
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(cm_http_global_init(), CM_OK);
    cm_log_set_level("warn"); /* keep test output to failures */
    jr = sim_journal_new(100);
    cal = sim_calcom_new(&(sim_calcom_cfg_t){.api_key = KEY,
                                             .webhook_secret = "s",
                                             .taken_status = taken_status,
                                             .seed = 7,
                                             .journal = jr,
                                             .rate_limit = rate_limit});
    cr_assert_not_null(cal);
    srv = cm_http_server_new(&(cm_http_server_cfg_t){.threads = 0, .name = "test.calcom"});
    cr_assert_not_null(srv);
    cr_assert_eq(sim_calcom_routes(cal, srv), CM_OK);
    cr_assert_eq(cm_http_server_start(srv, err), CM_OK, "%s", err);
    snprintf(base, sizeof base, "http://127.0.0.1:%u", cm_http_server_port(srv));
}

static void start_with(int taken_status)
{
    start_full(taken_status, 0);
}

static void setup(void)
{
    start_with(400);
}

static void teardown(void)
{
    sim_calcom_shutdown(cal);
    cm_http_server_free(&srv);
    sim_calcom_free(&cal);
    sim_journal_free(&jr);
}

typedef struct {
    long status;
    json_t *body; /* NULL when the body is not JSON */
    char fallback[8];
    /* Cal.com's throttler headers ("" when absent) */
    char limit[16], remaining[16], reset[16], retry_after[16], cb_remaining[16];
} result_t;

static void header_of(const cm_http_response_t *r, const char *name, char *out, size_t cap)
{
    if (!cm_http_response_header(r, name, out, cap))
        out[0] = '\0';
}

/* One request with its own client (so threads can call it). auth: the full header or NULL. */
static result_t call(const char *method, const char *path, const char *auth, const char *version,
                     const char *body)
{
    char url[512], ah[128], vh[64];
    const char *hdrs[4] = {NULL};
    size_t n = 0;
    if (auth) {
        snprintf(ah, sizeof ah, "Authorization: %s", auth);
        hdrs[n++] = ah;
    }
    if (version) {
        snprintf(vh, sizeof vh, "cal-api-version: %s", version);
        hdrs[n++] = vh;
    }
    hdrs[n++] = "Content-Type: application/json";
    snprintf(url, sizeof url, "%s%s", base, path);
    cm_http_client_t *c = cm_http_client_new();
    cm_http_response_t r;
    cm_http_request_t req = {.method = method,
                             .url = url,
                             .headers = hdrs,
                             .body = body,
                             .body_len = body ? strlen(body) : 0};
    cm_err_t rc = cm_http_client_do(c, &req, &r);
    cr_assert_eq(rc, CM_OK, "%s %s: %s", method, path, r.err);
    result_t out = {.status = r.status,
                    .body = json_loads(r.body.data ? r.body.data : "", 0, NULL)};
    header_of(&r, "X-Sim-Version-Fallback", out.fallback, sizeof out.fallback);
    header_of(&r, "X-RateLimit-Limit-Default", out.limit, sizeof out.limit);
    header_of(&r, "X-RateLimit-Remaining-Default", out.remaining, sizeof out.remaining);
    header_of(&r, "X-RateLimit-Reset-Default", out.reset, sizeof out.reset);
    header_of(&r, "Retry-After", out.retry_after, sizeof out.retry_after);
    header_of(&r, "X-RateLimit-Remaining-Create-booking", out.cb_remaining,
              sizeof out.cb_remaining);
    cm_http_response_free(&r);
    cm_http_client_free(&c);
    return out;
}

#define BEARER "Bearer " KEY
#define BOOK_BODY(start, name)                                                                     \
    "{\"start\":\"" start "\",\"eventTypeId\":101,\"attendee\":{\"name\":\"" name "\","            \
    "\"email\":\"ada@example.com\",\"timeZone\":\"Europe/"                                         \
    "Rome\",\"phoneNumber\":\"+393331234567\"},"                                                   \
    "\"metadata\":{\"call_id\":\"call_abc\"}}"

static result_t book(const char *body)
{
    return call("POST", "/v2/bookings", BEARER, "2024-08-13", body);
}

static void assert_error(const result_t *r, long status, const char *code, const char *msg_part)
{
    cr_assert_eq(r->status, status, "status %ld, want %ld", r->status, status);
    cr_assert_not_null(r->body, "error body is not JSON");
    cr_assert_str_eq(cm_json_str(r->body, "status", ""), "error");
    cr_assert_str_eq(cm_json_str(r->body, "error.code", ""), code);
    cr_assert(json_is_object(cm_json_path(r->body, "error.details")));
    cr_assert_not_null(cm_json_str(r->body, "timestamp", NULL));
    cr_assert_not_null(strstr(cm_json_str(r->body, "error.message", ""), msg_part),
                       "message '%s' lacks '%s'", cm_json_str(r->body, "error.message", ""),
                       msg_part);
}

TestSuite(calcom, .init = setup, .fini = teardown);

Test(calcom, book_then_same_slot_is_taken)
{
    result_t r = book(BOOK_BODY("2050-09-05T09:00:00.000Z", "Ada Lovelace"));
    cr_assert_eq(r.status, 201, "status %ld", r.status);
    cr_assert_str_eq(cm_json_str(r.body, "status", ""), "success");
    cr_assert_str_eq(cm_json_str(r.body, "data.status", ""), "accepted");
    cr_assert_str_eq(cm_json_str(r.body, "data.title", ""),
                     "Consultation between Sim Host and Ada Lovelace");
    cr_assert_str_eq(cm_json_str(r.body, "data.start", ""), "2050-09-05T09:00:00.000Z");
    cr_assert_str_eq(cm_json_str(r.body, "data.end", ""), "2050-09-05T09:30:00.000Z");
    cr_assert_eq(cm_json_int(r.body, "data.duration", 0), 30);
    cr_assert_eq(cm_json_int(r.body, "data.eventTypeId", 0), 101);
    cr_assert_eq(strlen(cm_json_str(r.body, "data.uid", "")), 22);
    cr_assert_str_eq(cm_json_str(r.body, "data.attendees.0.language", ""), "en");
    cr_assert_str_eq(cm_json_str(r.body, "data.attendees.0.phoneNumber", ""), "+393331234567");
    cr_assert(json_is_false(cm_json_path(r.body, "data.attendees.0.absent")));
    cr_assert_str_eq(cm_json_str(r.body, "data.hosts.0.email", ""), "host@sim.example");
    cr_assert_str_eq(cm_json_str(r.body, "data.metadata.call_id", ""), "call_abc");
    cr_assert_str_eq(r.fallback, "", "the right version must not be flagged");
    char uid[32], path[64];
    snprintf(uid, sizeof uid, "%s", cm_json_str(r.body, "data.uid", ""));
    json_decref(r.body);

    r = book(BOOK_BODY("2050-09-05T09:00:00.000Z", "Grace Hopper"));
    assert_error(&r, 400, "BadRequestException", SIM_CALCOM_TAKEN_MSG);
    cr_assert_str_eq(cm_json_str(r.body, "path", ""), "/v2/bookings");
    json_decref(r.body);

    /* The same instant written with an offset is the same slot. */
    r = book(BOOK_BODY("2050-09-05T11:00:00+02:00", "Grace Hopper"));
    assert_error(&r, 400, "BadRequestException", SIM_CALCOM_TAKEN_MSG);
    json_decref(r.body);

    snprintf(path, sizeof path, "/v2/bookings/%s", uid);
    r = call("GET", path, BEARER, "2024-08-13", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(cm_json_str(r.body, "data.uid", ""), uid);
    json_decref(r.body);
    r = call("GET", "/v2/bookings/nope", BEARER, "2024-08-13", NULL);
    assert_error(&r, 404, "NotFoundException", "nope");
    json_decref(r.body);
    r = call("GET", "/v2/bookings/%ff%fe", BEARER, "2024-08-13", NULL);
    assert_error(&r, 404, "NotFoundException", "uid=??");
    cr_assert_str_eq(cm_json_str(r.body, "path", ""), "/v2/bookings/??", "not UTF-8, still JSON");
    json_decref(r.body);

    json_t *ledger = sim_calcom_bookings(cal);
    cr_assert_eq(cm_json_int(ledger, "count", -1), 1);
    cr_assert_str_eq(cm_json_str(ledger, "bookings.0.uid", ""), uid);
    json_decref(ledger);
    sim_calcom_reset(cal);
    ledger = sim_calcom_bookings(cal);
    cr_assert_eq(cm_json_int(ledger, "count", -1), 0);
    json_decref(ledger);
    r = book(BOOK_BODY("2050-09-05T09:00:00.000Z", "Grace Hopper"));
    cr_assert_eq(r.status, 201, "after a reset the slot is free again");
    cr_assert_str_neq(cm_json_str(r.body, "data.uid", ""), uid, "uids never repeat");
    json_decref(r.body);
}

/* Which routes need a key, as Cal.com's guards say: GET /v2/bookings and the event types
 * need one (ApiAuthGuard); POST /v2/bookings, GET one booking, cancel and reschedule take
 * one optionally (OptionalApiAuthGuard: none is fine, a wrong one is refused); slots have
 * no guard at all. */
Test(calcom, which_routes_need_a_key)
{
    result_t r = call("POST", "/v2/bookings", "Bearer cal_wrong", "2024-08-13",
                      BOOK_BODY("2050-09-05T10:00:00Z", "Ada"));
    assert_error(&r, 401, "UnauthorizedException", "");
    json_decref(r.body);
    r = call("GET", "/v2/bookings", NULL, "2024-08-13", NULL);
    assert_error(&r, 401, "UnauthorizedException", "No Authorization");
    json_decref(r.body);
    r = call("GET", "/v2/event-types", NULL, "2024-06-14", NULL);
    assert_error(&r, 401, "UnauthorizedException", "");
    json_decref(r.body);
    json_t *ledger = sim_calcom_bookings(cal);
    cr_assert_eq(cm_json_int(ledger, "count", -1), 0, "nothing booked with a wrong key");
    json_decref(ledger);

    r = call("GET", "/v2/slots?eventTypeId=101&start=2050-09-05&end=2050-09-05", NULL, "2024-09-04",
             NULL);
    cr_assert_eq(r.status, 200, "slots are public");
    json_decref(r.body);
    r = call("GET", "/v2/slots?eventTypeId=101&start=2050-09-05&end=2050-09-05", "Bearer cal_wrong",
             "2024-09-04", NULL);
    cr_assert_eq(r.status, 200, "and no guard reads a key there");
    json_decref(r.body);
    r = call("POST", "/v2/bookings", NULL, "2024-08-13", BOOK_BODY("2050-09-05T10:00:00Z", "Ada"));
    cr_assert_eq(r.status, 201, "a booking may be made without a key");
    char path[128];
    snprintf(path, sizeof path, "/v2/bookings/%s", cm_json_str(r.body, "data.uid", ""));
    json_decref(r.body);
    r = call("GET", path, NULL, "2024-08-13", NULL);
    cr_assert_eq(r.status, 200);
    json_decref(r.body);
    r = call("GET", path, "Bearer cal_wrong", "2024-08-13", NULL);
    assert_error(&r, 401, "UnauthorizedException", "");
    json_decref(r.body);
}

Test(calcom, slots_shape_and_booked_slots_disappear)
{
    const char *q =
        "/v2/slots?eventTypeId=101&start=2050-09-05&end=2050-09-06&timeZone=Europe/Rome";
    result_t r = call("GET", q, BEARER, "2024-09-04", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(cm_json_str(r.body, "status", ""), "success");
    cr_assert_eq(json_array_size(cm_json_path(r.body, "data.2050-09-05")), 16);
    cr_assert_eq(json_array_size(cm_json_path(r.body, "data.2050-09-06")), 16);
    cr_assert_str_eq(cm_json_str(r.body, "data.2050-09-05.0.start", ""),
                     "2050-09-05T11:00:00.000+02:00", "09:00 UTC written in Rome's offset");
    cr_assert_null(cm_json_path(r.body, "data.2050-09-05.0.end"));
    cr_assert_str_eq(r.fallback, "");
    json_decref(r.body);

    json_decref(book(BOOK_BODY("2050-09-05T09:30:00Z", "Ada")).body);
    r = call("GET", "/v2/slots/available?eventTypeId=102&startTime=2050-09-05&endTime=2050-09-05",
             BEARER, NULL, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.fallback, "1", "served by the older controller");
    cr_assert_str_eq(cm_json_str(r.body, "data.slots.2050-09-05.0.time", ""),
                     "2050-09-05T10:00:00.000Z", "in the older shape");
    json_decref(r.body);
    r = call("GET", "/v2/slots?eventTypeId=102&start=2050-09-05&end=2050-09-05&slotFormat=range",
             BEARER, "2024-09-04", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_array_size(cm_json_path(r.body, "data.2050-09-05")), 7,
                 "the 09:00 hour overlaps the booked 09:30");
    cr_assert_str_eq(cm_json_str(r.body, "data.2050-09-05.0.start", ""),
                     "2050-09-05T10:00:00.000Z");
    cr_assert_str_eq(cm_json_str(r.body, "data.2050-09-05.0.end", ""), "2050-09-05T11:00:00.000Z");
    json_decref(r.body);

    r = call("GET", "/v2/slots?eventTypeId=101&start=2050-09-05T15:00:00Z&end=2050-09-05T16:00:00Z",
             BEARER, "2024-09-04", NULL);
    cr_assert_eq(json_array_size(cm_json_path(r.body, "data.2050-09-05")), 3, "15:00 15:30 16:00");
    json_decref(r.body);
}

Test(calcom, bad_requests)
{
    static const struct {
        const char *path, *msg;
    } cases[] = {
        {"/v2/slots?start=2050-09-05&end=2050-09-06", "eventTypeId"},
        {"/v2/slots?eventTypeId=abc&start=2050-09-05&end=2050-09-06", "eventTypeId"},
        {"/v2/slots?eventTypeId=101&end=2050-09-06", "start"},
        {"/v2/slots?eventTypeId=101&start=2050-09-05&end=tomorrow", "end"},
        {"/v2/slots?eventTypeId=101&start=2050-09-06&end=2050-09-05", "before"},
        {"/v2/slots?eventTypeId=101&start=2050-09-05&end=2050-09-06&slotFormat=x", "slotFormat"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        result_t r = call("GET", cases[i].path, BEARER, "2024-09-04", NULL);
        assert_error(&r, 400, "BadRequestException", cases[i].msg);
        json_decref(r.body);
    }
    result_t r = call("GET", "/v2/slots?eventTypeId=999&start=2050-09-05&end=2050-09-06", BEARER,
                      "2024-09-04", NULL);
    assert_error(&r, 404, "NotFoundException", "999");
    json_decref(r.body);

    static const struct {
        const char *body, *msg;
    } bodies[] = {
        {"not json", "invalid JSON"},
        {"[]", "object"},
        {"{\"eventTypeId\":101,\"attendee\":{}}", "start"},
        {"{\"start\":\"2050-09-05 nine\",\"eventTypeId\":101}", "start"},
        {"{\"start\":\"2050-09-05T09:00:00Z\"}", "eventTypeId"},
        {"{\"start\":\"2050-09-05T09:00:00Z\",\"eventTypeId\":101}", "attendee"},
        {"{\"start\":\"2050-09-05T09:00:00Z\",\"eventTypeId\":101,\"attendee\":{\"name\":\"A\","
         "\"timeZone\":\"UTC\"}}",
         "attendee.email"},
        {"{\"start\":\"2050-09-05T09:00:00Z\",\"eventTypeId\":101,\"attendee\":{\"name\":\"A\","
         "\"email\":\"a@b.c\",\"timeZone\":\"UTC\"},\"metadata\":[]}",
         "metadata"},
        {"{\"start\":\"2050-09-05T09:00:00Z\",\"eventTypeId\":101,\"attendee\":{\"name\":\"A\","
         "\"email\":\"a@b.c\",\"timeZone\":\"Europe/Roma\"}}",
         "attendee.timeZone"},
        {"{\"start\":\"2050-09-05T09:00:00Z\",\"eventTypeId\":101,\"attendee\":{\"name\":\"A\","
         "\"email\":\"a@b.c\",\"timeZone\":\"UTC\",\"phoneNumber\":\"333 1234567\"}}",
         "phone number"},
        {"{\"start\":\"2050-09-05T09:00:00Z\",\"eventTypeId\":101,\"attendee\":{\"name\":\"A\","
         "\"email\":\"a@b.c\",\"timeZone\":\"UTC\"},\"metadata\":{"
         "\"a_key_that_is_longer_than_forty_characters\":\"v\"}}",
         "Metadata must have at most 50 keys"},
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        r = book(bodies[i].body);
        assert_error(&r, 400, "BadRequestException", bodies[i].msg);
        json_decref(r.body);
    }
    r = book("{\"start\":\"2050-09-05T09:00:00Z\",\"eventTypeId\":555,\"attendee\":{\"name\":\"A\","
             "\"email\":\"a@b.c\",\"timeZone\":\"UTC\"}}");
    assert_error(&r, 404, "NotFoundException", "555");
    json_decref(r.body);
    r = book(BOOK_BODY("2050-09-05T09:10:00Z", "Ada"));
    assert_error(&r, 400, "BadRequestException", SIM_CALCOM_TAKEN_MSG);
    json_decref(r.body);
    r = book(BOOK_BODY("2050-09-05T18:00:00Z", "Ada"));
    assert_error(&r, 400, "BadRequestException", SIM_CALCOM_TAKEN_MSG);
    json_decref(r.body);
    r = book(BOOK_BODY("2001-09-05T09:00:00Z", "Ada"));
    assert_error(&r, 400, "BadRequestException", "past");
    json_decref(r.body);
}

/* Whether errors.details.errors names property p. */
static int violation(const result_t *r, const char *p)
{
    size_t i;
    json_t *e;
    json_array_foreach(cm_json_path(r->body, "error.details.errors"), i, e)
    {
        if (strcmp(cm_json_str(e, "property", ""), p) == 0)
            return 1;
    }
    return 0;
}

/* Without cal-api-version 2024-08-13 a booking goes to the 2024-04-15 controller: a
 * 2024-08-13 body fails its validation, whatever else is right with it. */
Test(calcom, a_booking_without_the_version_is_refused_by_the_older_controller)
{
    static const char *const versions[] = {NULL,         "2024-04-15", "2024-06-14",
                                           "2024-09-04", "2024-8-13",  "2099-01-01"};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        result_t r = call("POST", "/v2/bookings", BEARER, versions[i],
                          BOOK_BODY("2050-09-05T12:00:00Z", "Ada"));
        assert_error(&r, 400, "BadRequestException", "Bad Request Exception");
        cr_assert_str_eq(r.fallback, "1");
        cr_assert(violation(&r, "timeZone") && violation(&r, "language") &&
                      violation(&r, "responses"),
                  "version %s: the 2024-04-15 body's required fields are named",
                  versions[i] ? versions[i] : "(none)");
        cr_assert(!violation(&r, "metadata"), "metadata was an object");
        json_decref(r.body);
    }
    json_t *ledger = sim_calcom_bookings(cal);
    cr_assert_eq(cm_json_int(ledger, "count", -1), 0, "nothing was booked");
    json_decref(ledger);
}

#define OLD_BODY(start)                                                                            \
    "{\"start\":\"" start "\",\"eventTypeId\":101,\"timeZone\":\"Europe/Rome\","                   \
    "\"language\":\"it\",\"metadata\":{\"k\":\"v\"},\"responses\":{\"name\":\"Ada\","              \
    "\"email\":\"ada@example.com\"},\"attendee\":{\"ignored\":true}}"

/* A 2024-04-15 client gets 2024-04-15 answers on every bookings route. */
Test(calcom, the_older_bookings_controller_answers_in_its_own_shapes)
{
    result_t r = call("POST", "/v2/bookings", NULL, NULL, OLD_BODY("2050-09-05T12:00:00Z"));
    cr_assert_eq(r.status, 201);
    cr_assert_str_eq(cm_json_str(r.body, "data.status", ""), "ACCEPTED");
    cr_assert_str_eq(cm_json_str(r.body, "data.startTime", ""), "2050-09-05T12:00:00.000Z");
    cr_assert_null(cm_json_path(r.body, "data.start"), "no 2024-08-13 field");
    cr_assert_str_eq(cm_json_str(r.body, "data.responses.email.value", ""), "ada@example.com");
    char uid[64], path[160];
    snprintf(uid, sizeof uid, "%s", cm_json_str(r.body, "data.uid", ""));
    json_decref(r.body);

    snprintf(path, sizeof path, "/v2/bookings/%s", uid);
    r = call("GET", path, NULL, NULL, NULL);
    cr_assert_str_eq(cm_json_str(r.body, "data.startTime", ""), "2050-09-05T12:00:00.000Z");
    json_decref(r.body);
    r = call("GET", path, NULL, "2024-08-13", NULL);
    cr_assert_str_eq(cm_json_str(r.body, "data.start", ""), "2050-09-05T12:00:00.000Z");
    cr_assert_str_eq(cm_json_str(r.body, "data.attendees.0.timeZone", ""), "Europe/Rome");
    json_decref(r.body);

    /* 2024-08-13's filters are stripped by the older controller: they filter nothing. */
    r = call("GET", "/v2/bookings?attendeeEmail=someone.else@example.com", BEARER, NULL, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(cm_json_int(r.body, "data.totalCount", -1), 1);
    cr_assert_str_eq(cm_json_str(r.body, "data.bookings.0.uid", ""), uid);
    json_decref(r.body);
    r = call("GET", "/v2/bookings?attendeeEmail=someone.else@example.com", BEARER, "2024-08-13",
             NULL);
    cr_assert_eq(json_array_size(cm_json_path(r.body, "data")), 0, "2024-08-13 filters");
    json_decref(r.body);

    snprintf(path, sizeof path, "/v2/bookings/%s/reschedule", uid);
    r = call("POST", path, NULL, NULL, "{\"start\":\"2050-09-05T13:00:00Z\"}");
    assert_error(&r, 404, "NotFoundException", "Cannot POST");
    json_decref(r.body);

    snprintf(path, sizeof path, "/v2/bookings/%s/cancel", uid);
    r = call("POST", path, NULL, NULL, "{}");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(cm_json_str(r.body, "data.bookingUid", ""), uid);
    cr_assert_null(cm_json_path(r.body, "data.status"), "ids only");
    json_decref(r.body);
    r = call("POST", path, NULL, NULL, "{}");
    assert_error(&r, 400, "BadRequestException", "cancelled already");
    json_decref(r.body);
}

/* GET /v2/slots exists only in 2024-09-04, /v2/slots/available only before it; event types
 * are 2024-06-14 or the older shape. */
Test(calcom, slots_and_event_types_route_by_version)
{
    const char *q = "/v2/slots?eventTypeId=101&start=2050-09-05&end=2050-09-05";
    static const char *const others[] = {NULL, "2024-04-15", "2024-08-13", "bogus"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        result_t r = call("GET", q, BEARER, others[i], NULL);
        assert_error(&r, 404, "NotFoundException", "Cannot GET /v2/slots");
        json_decref(r.body);
    }
    result_t r =
        call("GET", "/v2/slots/available?eventTypeId=101&startTime=2050-09-05&endTime=2050-09-05",
             BEARER, "2024-09-04", NULL);
    assert_error(&r, 404, "NotFoundException", "Cannot GET /v2/slots/available");
    json_decref(r.body);
    r = call("GET", "/v2/event-types", BEARER, NULL, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(cm_json_str(r.body, "data.eventTypeGroups.0.eventTypes.0.slug", ""),
                     "consultation");
    json_decref(r.body);
    r = call("GET", "/v2/event-types", BEARER, "2024-06-14", NULL);
    cr_assert_str_eq(cm_json_str(r.body, "data.0.slug", ""), "consultation");
    json_decref(r.body);
    r = call("GET", "/v2/event-types", BEARER, "2024-08-13", NULL);
    assert_error(&r, 404, "NotFoundException", "Cannot GET");
    json_decref(r.body);
}

/* A person renames or deletes an event type in the dashboard (the API's PATCH and
 * DELETE): the list shows the new slug, a deleted one is gone from the list, its slots
 * and new bookings answer 404, and a reset brings the catalogue back. */
Test(calcom, event_types_renamed_and_deleted)
{
    result_t r = call("PATCH", "/v2/event-types/101", BEARER, "2024-06-14",
                      "{\"slug\":\"consult-60\",\"title\":\"Consult 60\"}");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(cm_json_str(r.body, "data.slug", ""), "consult-60");
    json_decref(r.body);
    r = call("PATCH", "/v2/event-types/101", BEARER, "2024-06-14", "{\"lengthInMinutes\":60}");
    assert_error(&r, 400, "BadRequestException", "only title and slug");
    json_decref(r.body);
    r = call("PATCH", "/v2/event-types/101", NULL, "2024-06-14", "{\"slug\":\"x\"}");
    assert_error(&r, 401, "UnauthorizedException", "");
    json_decref(r.body);
    r = call("DELETE", "/v2/event-types/103", BEARER, "2024-06-14", NULL);
    assert_error(&r, 404, "NotFoundException", "Event type not found"); /* a team one */
    json_decref(r.body);
    r = call("DELETE", "/v2/event-types/102", BEARER, "2024-06-14", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(cm_json_int(r.body, "data.id", 0), 102);
    json_decref(r.body);
    r = call("DELETE", "/v2/event-types/102", BEARER, "2024-06-14", NULL);
    assert_error(&r, 404, "NotFoundException", "Event type not found");
    json_decref(r.body);
    r = call("GET", "/v2/event-types", BEARER, "2024-06-14", NULL);
    cr_assert_eq(json_array_size(json_object_get(r.body, "data")), 1, "102 is gone");
    cr_assert_str_eq(cm_json_str(r.body, "data.0.slug", ""), "consult-60");
    json_decref(r.body);
    r = call("GET", "/v2/slots?eventTypeId=102&start=2050-09-05&end=2050-09-05", NULL, "2024-09-04",
             NULL);
    assert_error(&r, 404, "NotFoundException", "id=102 not found");
    json_decref(r.body);
    sim_calcom_reset(cal);
    r = call("GET", "/v2/event-types", BEARER, "2024-06-14", NULL);
    cr_assert_eq(json_array_size(json_object_get(r.body, "data")), 2);
    cr_assert_str_eq(cm_json_str(r.body, "data.0.slug", ""), "consultation");
    json_decref(r.body);
}

/* Slots are written, and grouped by day, in the requested timeZone (default UTC). */
Test(calcom, slots_in_the_requested_time_zone)
{
    static const struct {
        const char *tz, *day, *first;
        size_t n;
    } cases[] = {
        {NULL, "2050-09-05", "2050-09-05T09:00:00.000Z", 16},
        {"UTC", "2050-09-05", "2050-09-05T09:00:00.000Z", 16},
        {"America/New_York", "2050-09-05", "2050-09-05T05:00:00.000-04:00", 16},
        {"Asia/Kolkata", "2050-09-05", "2050-09-05T14:30:00.000+05:30", 16},
        {"Asia/Tokyo", "2050-09-05", "2050-09-05T18:00:00.000+09:00", 12},
        {"Asia/Tokyo", "2050-09-06", "2050-09-06T00:00:00.000+09:00", 4},
    };
    char path[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(path, sizeof path, "/v2/slots?eventTypeId=101&start=2050-09-05&end=2050-09-05%s%s",
                 cases[i].tz ? "&timeZone=" : "", cases[i].tz ? cases[i].tz : "");
        result_t r = call("GET", path, NULL, "2024-09-04", NULL);
        char key[64];
        snprintf(key, sizeof key, "data.%s", cases[i].day);
        cr_assert_eq(json_array_size(cm_json_path(r.body, key)), cases[i].n, "%s %s", path,
                     cases[i].day);
        snprintf(key, sizeof key, "data.%s.0.start", cases[i].day);
        cr_assert_str_eq(cm_json_str(r.body, key, ""), cases[i].first, "%s", path);
        json_decref(r.body);
    }
    /* Offsets follow the zone's rules at each instant: Rome changes to summer time on the
     * last Sunday of March (2050-03-27), London is "+00:00" in winter (an IANA zone). */
    result_t r = call("GET",
                      "/v2/slots?eventTypeId=102&start=2050-03-26&end=2050-03-27&timeZone=Europe/"
                      "Rome&slotFormat=range",
                      NULL, "2024-09-04", NULL);
    cr_assert_str_eq(cm_json_str(r.body, "data.2050-03-26.0.start", ""),
                     "2050-03-26T10:00:00.000+01:00");
    cr_assert_str_eq(cm_json_str(r.body, "data.2050-03-27.0.start", ""),
                     "2050-03-27T11:00:00.000+02:00");
    cr_assert_str_eq(cm_json_str(r.body, "data.2050-03-27.0.end", ""),
                     "2050-03-27T12:00:00.000+02:00");
    json_decref(r.body);
    r = call("GET",
             "/v2/slots?eventTypeId=101&start=2051-01-10&end=2051-01-10&timeZone=Europe/London",
             NULL, "2024-09-04", NULL);
    cr_assert_str_eq(cm_json_str(r.body, "data.2051-01-10.0.start", ""),
                     "2051-01-10T09:00:00.000+00:00");
    json_decref(r.body);
    static const char *const bad[] = {"Mars/Olympus", "..%2F..%2Fetc%2Fpasswd", "Europe/Atlantis"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(path, sizeof path,
                 "/v2/slots?eventTypeId=101&start=2050-09-05&end=2050-09-05&timeZone=%s", bad[i]);
        r = call("GET", path, NULL, "2024-09-04", NULL);
        assert_error(&r, 400, "BadRequestException", "timeZone");
        json_decref(r.body);
    }
}

#define RACERS 50
static pthread_barrier_t line_up;

static void *racer(void *arg)
{
    long *status = arg;
    pthread_barrier_wait(&line_up);
    result_t r = book(BOOK_BODY("2050-09-07T14:00:00Z", "Racer"));
    *status = r.status;
    json_decref(r.body);
    return NULL;
}

Test(calcom, concurrent_bookings_of_one_slot_make_exactly_one)
{
    pthread_t t[RACERS];
    long status[RACERS];
    pthread_barrier_init(&line_up, NULL, RACERS);
    for (int i = 0; i < RACERS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, racer, &status[i]), 0);
    int created = 0, taken = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(t[i], NULL);
        created += status[i] == 201;
        taken += status[i] == 400;
    }
    pthread_barrier_destroy(&line_up);
    cr_assert_eq(created, 1, "%d of %d racers got 201", created, RACERS);
    cr_assert_eq(taken, RACERS - 1);
    json_t *ledger = sim_calcom_bookings(cal);
    cr_assert_eq(cm_json_int(ledger, "count", -1), 1);
    json_decref(ledger);
}

Test(calcom_409, taken_status_is_a_setting, .init = NULL, .fini = teardown)
{
    start_with(409);
    result_t r = book(BOOK_BODY("2050-09-05T09:00:00Z", "Ada"));
    cr_assert_eq(r.status, 201);
    json_decref(r.body);
    r = book(BOOK_BODY("2050-09-05T09:00:00Z", "Ada"));
    assert_error(&r, 409, "ConflictException", SIM_CALCOM_TAKEN_MSG);
    json_decref(r.body);
}

/* ---- cancel, reschedule, lists, teams, rate limit, webhooks ------------------------- */

static pthread_mutex_t hmu = PTHREAD_MUTEX_INITIALIZER;
static char *hbody[8], *hsig[8];
static int nhooks;

static void h_hook(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    const char *sig = cm_http_req_header(req, "X-Cal-Signature-256");
    pthread_mutex_lock(&hmu);
    if (nhooks < 8) {
        hbody[nhooks] = strndup(req->body, req->body_len);
        hsig[nhooks] = strdup(sig ? sig : "");
        nhooks++;
    }
    pthread_mutex_unlock(&hmu);
    cm_http_resp_text(resp, 500, NULL, NULL); /* Cal.com does not retry even then */
}

/* Starts a receiver of webhooks and points the simulator at it; the caller stops it with
 * stop_hooks. */
static cm_http_server_t *start_hooks(void)
{
    char err[CM_ERR_LEN] = "", url[96];
    cm_http_server_t *hooks =
        cm_http_server_new(&(cm_http_server_cfg_t){.threads = 0, .name = "test.hooks"});
    cr_assert_eq(cm_http_server_route(hooks, "POST /h", h_hook, NULL), CM_OK);
    cr_assert_eq(cm_http_server_start(hooks, err), CM_OK);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/h", cm_http_server_port(hooks));
    cr_assert_eq(sim_calcom_set_webhook(cal, url, err), CM_OK, "%s", err);
    return hooks;
}

static void stop_hooks(cm_http_server_t **hooks)
{
    cm_http_server_free(hooks);
    for (int i = 0; i < nhooks; i++) {
        free(hbody[i]);
        free(hsig[i]);
    }
    nhooks = 0;
}

static int hooks_count(void)
{
    pthread_mutex_lock(&hmu);
    int n = nhooks;
    pthread_mutex_unlock(&hmu);
    return n;
}

static void wait_hooks(int n)
{
    int64_t deadline = cm_clock_mono_ms() + 5000;
    for (;;) {
        pthread_mutex_lock(&hmu);
        int have = nhooks;
        pthread_mutex_unlock(&hmu);
        if (have >= n)
            return;
        cr_assert_lt(cm_clock_mono_ms(), deadline, "only %d webhooks", have);
        cm_clock_sleep_ms(5);
    }
}

Test(calcom, cancel_reschedule_list_and_signed_webhooks)
{
    char path[160];
    cm_http_server_t *hooks = start_hooks();

    result_t r = book(BOOK_BODY("2050-09-08T10:00:00Z", "Ada"));
    cr_assert_eq(r.status, 201);
    char uid[64];
    snprintf(uid, sizeof uid, "%s", cm_json_str(r.body, "data.uid", ""));
    json_decref(r.body);

    snprintf(path, sizeof path, "/v2/bookings/%s/reschedule", uid);
    r = call("POST", path, BEARER, "2024-08-13",
             "{\"start\":\"2050-09-08T11:00:00Z\",\"reschedulingReason\":\"dentist\"}");
    cr_assert_eq(r.status, 201);
    char nuid[64];
    snprintf(nuid, sizeof nuid, "%s", cm_json_str(r.body, "data.uid", ""));
    cr_assert_str_neq(nuid, uid, "a reschedule makes a new uid");
    cr_assert_str_eq(cm_json_str(r.body, "data.rescheduledFromUid", ""), uid);
    json_decref(r.body);
    snprintf(path, sizeof path, "/v2/bookings/%s", uid);
    r = call("GET", path, BEARER, "2024-08-13", NULL);
    cr_assert_str_eq(cm_json_str(r.body, "data.rescheduledToUid", ""), nuid, "linked both ways");
    cr_assert_str_eq(cm_json_str(r.body, "data.status", ""), "cancelled");
    json_decref(r.body);
    r = book(BOOK_BODY("2050-09-08T10:00:00Z", "Bob"));
    cr_assert_eq(r.status, 201, "the old slot is free again");
    json_decref(r.body);

    snprintf(path, sizeof path, "/v2/bookings/%s/cancel", nuid);
    r = call("POST", path, BEARER, "2024-08-13", "{\"cancellationReason\":\"ill\"}");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(cm_json_str(r.body, "data.status", ""), "cancelled");
    json_decref(r.body);
    r = call("POST", path, BEARER, "2024-08-13", "{}");
    assert_error(&r, 400, "BadRequestException", "already been cancelled");
    json_decref(r.body);
    r = call("POST", "/v2/bookings/nope/cancel", BEARER, "2024-08-13", "{}");
    cr_assert_eq(r.status, 404);
    json_decref(r.body);

    r = call("GET", "/v2/bookings?status=cancelled", BEARER, "2024-08-13", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(json_array_size(cm_json_path(r.body, "data")), 2);
    cr_assert_eq(cm_json_int(r.body, "pagination.totalItems", -1), 2);
    json_decref(r.body);
    r = call("GET", "/v2/bookings?status=upcoming&take=1", BEARER, "2024-08-13", NULL);
    cr_assert_eq(json_array_size(cm_json_path(r.body, "data")), 1);
    cr_assert_str_eq(cm_json_str(r.body, "data.0.attendees.0.name", ""), "Bob");
    json_decref(r.body);
    /* A skip past int64 or near its end is refused, not clamped into an overflow of the
     * page arithmetic (skip / take + 1). */
    static const char *const bad_pages[] = {"/v2/bookings?take=1&skip=9223372036854775807",
                                            "/v2/bookings?skip=99999999999999999999",
                                            "/v2/bookings?take=99999999999999999999",
                                            "/v2/bookings?skip=1000000001",
                                            "/v2/bookings?skip=-1",
                                            "/v2/bookings?take=%2B1"};
    for (size_t i = 0; i < sizeof bad_pages / sizeof bad_pages[0]; i++) {
        r = call("GET", bad_pages[i], BEARER, "2024-08-13", NULL);
        cr_assert_eq(r.status, 400, "%s: %ld", bad_pages[i], r.status);
        json_decref(r.body);
    }
    r = call("GET", "/v2/bookings?take=250&skip=1000000000", BEARER, "2024-08-13", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(cm_json_int(r.body, "pagination.currentPage", -1), 4000001);
    json_decref(r.body);
    r = call("GET", "/v2/bookings?attendeeEmail=nobody@example.com", BEARER, "2024-08-13", NULL);
    cr_assert_eq(json_array_size(cm_json_path(r.body, "data")), 0);
    json_decref(r.body);
    r = call("GET", "/v2/bookings?status=bogus", BEARER, "2024-08-13", NULL);
    cr_assert_eq(r.status, 400);
    json_decref(r.body);

    wait_hooks(4);
    static const char *const want[] = {"BOOKING_CREATED", "BOOKING_RESCHEDULED", "BOOKING_CREATED",
                                       "BOOKING_CANCELLED"};
    for (int i = 0; i < 4; i++) {
        json_t *v = json_loads(hbody[i], 0, NULL);
        cr_assert_str_eq(cm_json_str(v, "triggerEvent", ""), want[i]);
        /* Shaped as Cal.com's webhook version 2021-10-20 payload. */
        json_t *p = json_object_get(v, "payload");
        cr_assert_str_eq(cm_json_str(p, "type", ""), "consultation", "the event type's slug");
        cr_assert_eq(cm_json_int(p, "length", 0), 30);
        cr_assert_eq(cm_json_int(p, "eventTypeId", 0), 101);
        cr_assert(json_is_integer(json_object_get(p, "bookingId")));
        cr_assert_str_eq(cm_json_str(p, "organizer.email", ""), "host@sim.example");
        cr_assert_str_eq(cm_json_str(p, "organizer.language.locale", ""), "en");
        cr_assert_str_eq(cm_json_str(p, "attendees.0.firstName", ""), i == 2 ? "Bob" : "Ada");
        cr_assert_str_eq(cm_json_str(p, "attendees.0.timeZone", ""), "Europe/Rome");
        cr_assert_eq(cm_json_int(p, "attendees.0.utcOffset", 0), 120, "Rome in September");
        cr_assert_str_eq(cm_json_str(p, "attendees.0.phoneNumber", ""), "+393331234567");
        cr_assert_str_eq(cm_json_str(p, "responses.email.label", ""), "email_address");
        cr_assert_str_eq(cm_json_str(p, "responses.name.value", ""), i == 2 ? "Bob" : "Ada");
        cr_assert_str_eq(cm_json_str(p, "location", ""), "integrations:daily");
        cr_assert_str_eq(cm_json_str(p, "status", ""), i == 3 ? "CANCELLED" : "ACCEPTED");
        cr_assert_str_eq(cm_json_str(p, "metadata.call_id", ""), "call_abc");
        if (i == 1) {
            cr_assert_str_eq(cm_json_str(p, "rescheduleUid", ""), uid);
            cr_assert_str_eq(cm_json_str(p, "rescheduleStartTime", ""), "2050-09-08T10:00:00.000Z");
        }
        if (i == 3)
            cr_assert_str_eq(cm_json_str(p, "cancellationReason", ""), "ill");
        json_decref(v);
        const char *secrets[] = {"s"};
        cr_assert_eq(cm_sig_calcom_verify(secrets, 1, hbody[i], strlen(hbody[i]), hsig[i]), CM_OK);
    }
    /* The receiver saw four; the simulator journals each once it has read the answer. */
    sim_journal_filter_t f = {.kind = SIM_JOURNAL_DELIVERY};
    cr_assert_eq(sim_journal_wait(jr, &f, 4, 5000), 4);
    cr_assert_eq(sim_journal_wait(jr, &f, 5, 0), 4, "one attempt each, even after a 500");
    json_t *e = sim_journal_effects(jr, "calcom", NULL);
    cr_assert_eq(cm_json_int(e, "count", -1), 4, "booking, reschedule, booking, cancellation");
    json_decref(e);
    stop_hooks(&hooks);
}

/* Sends a webhook on request; the report, or NULL with *rc set. */
static json_t *send_hook(sim_calcom_event_t ev, const char *payload, cm_err_t *rc,
                         char err[CM_ERR_LEN])
{
    json_t *p = payload ? json_loads(payload, JSON_DECODE_ANY, NULL) : NULL;
    json_t *report = NULL;
    ev.payload = p;
    *rc = sim_calcom_send_event(cal, &ev, &report, err);
    json_decref(p);
    return report;
}

static json_t *payload_of(const char *body)
{
    json_t *v = json_loads(body, 0, NULL);
    json_t *p = json_incref(json_object_get(v, "payload"));
    json_decref(v);
    return p;
}

Test(calcom, webhooks_on_request_by_booking_uid_and_by_payload)
{
    char err[CM_ERR_LEN] = "", path[160], uid[64];
    cm_err_t rc;
    const char *secrets[] = {"s"};
    cm_http_server_t *hooks = start_hooks();
    result_t r = book(BOOK_BODY("2050-09-10T10:00:00Z", "Ada"));
    cr_assert_eq(r.status, 201);
    snprintf(uid, sizeof uid, "%s", cm_json_str(r.body, "data.uid", ""));
    json_decref(r.body);
    snprintf(path, sizeof path, "/v2/bookings/%s/cancel", uid);
    r = call("POST", path, BEARER, "2024-08-13", "{\"cancellationReason\":\"ill\"}");
    cr_assert_eq(r.status, 200);
    json_decref(r.body);
    wait_hooks(2); /* the simulator's own BOOKING_CREATED and BOOKING_CANCELLED */

    /* By booking: the very payload of the simulator's own webhook for it. */
    int64_t before = cm_clock_now_ms();
    json_t *rep = send_hook(
        (sim_calcom_event_t){.trigger = "BOOKING_CANCELLED", .booking_uid = uid, .copies = 1}, NULL,
        &rc, err);
    cr_assert_eq(rc, CM_OK, "%s", err);
    cr_assert_eq(strncmp(cm_json_str(rep, "delivery_id", ""), "dlv_calcom_", 11), 0);
    cr_assert_str_eq(cm_json_str(rep, "status", ""), "done");
    cr_assert_eq(cm_json_int(rep, "deliveries.0.status", 0), 500);
    cr_assert_eq(json_array_size(cm_json_path(rep, "deliveries.0.attempts")), 1, "no retry");
    cr_assert_eq(hooks_count(), 3);
    json_t *own = payload_of(hbody[1]), *sent = payload_of(hbody[2]);
    cr_assert(json_equal(own, sent), "%s\n%s", hbody[1], hbody[2]);
    cr_assert_str_eq(cm_json_str(sent, "cancellationReason", ""), "ill");
    json_decref(own);
    json_decref(sent);
    json_t *ev = json_loads(hbody[2], 0, NULL);
    cr_assert(json_equal(ev, cm_json_path(rep, "event")));
    cr_assert_str_eq(cm_json_str(ev, "triggerEvent", ""), "BOOKING_CANCELLED");
    int64_t created = 0;
    cr_assert_eq(cm_clock_parse_iso8601(cm_json_str(ev, "createdAt", ""), &created), 0);
    cr_assert(created >= before - 1 && created <= cm_clock_now_ms(), "createdAt is now");
    json_decref(ev);
    cr_assert_eq(cm_sig_calcom_verify(secrets, 1, hbody[2], strlen(hbody[2]), hsig[2]), CM_OK);
    cr_assert_str_eq(cm_json_str(rep, "deliveries.0.attempts.0.signature", ""), hsig[2]);
    json_decref(rep);

    /* By payload, as given, in copies of the same bytes; and forged. */
    const char *given = "{\"uid\":\"bk_x\",\"status\":\"REJECTED\",\"rejectionReason\":\"full\"}";
    rep = send_hook((sim_calcom_event_t){.trigger = "BOOKING_REJECTED", .copies = 2}, given, &rc,
                    err);
    cr_assert_eq(rc, CM_OK, "%s", err);
    cr_assert_eq(json_array_size(cm_json_path(rep, "deliveries")), 2);
    json_decref(rep);
    cr_assert_eq(hooks_count(), 5);
    cr_assert_str_eq(hbody[3], hbody[4]);
    json_t *want = json_loads(given, 0, NULL);
    sent = payload_of(hbody[3]);
    cr_assert(json_equal(want, sent), "%s", hbody[3]);
    json_decref(want);
    json_decref(sent);
    rep = send_hook((sim_calcom_event_t){.trigger = "MEETING_ENDED", .copies = 1, .forge = 1},
                    "{\"uid\":\"bk_y\"}", &rc, err);
    cr_assert_eq(rc, CM_OK, "%s", err);
    json_decref(rep);
    cr_assert_eq(cm_sig_calcom_verify(secrets, 1, hbody[5], strlen(hbody[5]), hsig[5]),
                 CM_ESIG_MISMATCH);

    /* Journaled under the report's id, one attempt each. */
    sim_journal_filter_t f = {.provider = "calcom", .kind = SIM_JOURNAL_DELIVERY};
    cr_assert_eq(sim_journal_wait(jr, &f, 6, 5000), 6);
    json_t *j = sim_journal_query(jr, &f);
    cr_assert_null(cm_json_path(j, "entries.1.delivery_id"), "own webhooks have none");
    cr_assert_eq(strncmp(cm_json_str(j, "entries.2.delivery_id", ""), "dlv_calcom_", 11), 0);
    cr_assert_eq(cm_json_int(j, "entries.2.attempt", 0), 1);
    json_decref(j);
    stop_hooks(&hooks);
}

Test(calcom, webhooks_on_request_are_refused_like_a_strict_api)
{
    char err[CM_ERR_LEN] = "";
    cm_err_t rc;
    json_t *rep = send_hook((sim_calcom_event_t){.trigger = "BOOKING_CREATED", .copies = 1},
                            "{\"uid\":\"bk_1\"}", &rc, err);
    cr_assert_eq(rc, CM_ESTATE, "no webhook URL yet: %s", err);
    cr_assert_null(rep);
    cm_http_server_t *hooks = start_hooks();
    rep = send_hook(
        (sim_calcom_event_t){.trigger = "BOOKING_CREATED", .booking_uid = "nope", .copies = 1},
        NULL, &rc, err);
    cr_assert_eq(rc, CM_ENOTFOUND, "%s", err);
    static const struct {
        sim_calcom_event_t ev;
        const char *payload, *field;
    } bad[] = {
        {{.copies = 1}, "{}", "trigger"},
        {{.trigger = "BOOKING_LOST", .copies = 1}, "{}", "trigger"},
        {{.trigger = "BOOKING_CREATED", .copies = 1}, NULL, "booking_uid or payload"},
        {{.trigger = "BOOKING_CREATED", .booking_uid = "x", .copies = 1},
         "{}",
         "booking_uid or payload"},
        {{.trigger = "BOOKING_CREATED", .copies = 1}, "[]", "payload"},
        {{.trigger = "BOOKING_CREATED", .booking_uid = "", .copies = 1}, NULL, "booking_uid"},
        {{.trigger = "MEETING_ENDED", .booking_uid = "x", .copies = 1}, NULL, "booking_uid"},
        {{.trigger = "BOOKING_CREATED", .copies = 0}, "{}", "copies"},
        {{.trigger = "BOOKING_CREATED", .copies = 21}, "{}", "copies"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        rep = send_hook(bad[i].ev, bad[i].payload, &rc, err);
        cr_assert_eq(rc, CM_EINVAL, "case %zu", i);
        cr_assert_null(rep);
        cr_assert_eq(strncmp(err, bad[i].field, strlen(bad[i].field)), 0, "case %zu: %s", i, err);
    }
    cr_assert_eq(hooks_count(), 0, "refused webhooks send nothing");
    stop_hooks(&hooks);
}

#define TEAM_BODY(start, name)                                                                     \
    "{\"start\":\"" start "\",\"eventTypeSlug\":\"team-consultation\",\"teamSlug\":\"sim-team\","  \
    "\"attendee\":{\"name\":\"" name "\",\"email\":\"t@example.com\",\"timeZone\":\"UTC\"}}"

Test(calcom, team_round_robin_and_older_slots)
{
    result_t a = book(TEAM_BODY("2050-09-09T09:00:00Z", "One"));
    result_t b = book(TEAM_BODY("2050-09-09T09:00:00Z", "Two"));
    result_t c = book(TEAM_BODY("2050-09-09T09:00:00Z", "Three"));
    cr_assert_eq(a.status, 201);
    cr_assert_eq(b.status, 201, "the second host takes the same slot");
    cr_assert_neq(cm_json_int(a.body, "data.hosts.0.id", 0),
                  cm_json_int(b.body, "data.hosts.0.id", 0));
    assert_error(&c, 400, "BadRequestException", "One of the hosts");
    json_decref(a.body);
    json_decref(b.body);
    json_decref(c.body);
    result_t r =
        call("GET", "/v2/slots/available?eventTypeId=103&startTime=2050-09-09&endTime=2050-09-09",
             BEARER, NULL, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(cm_json_str(r.body, "data.slots.2050-09-09.0.time", ""),
                     "2050-09-09T09:30:00.000Z", "09:00 is taken by both hosts");
    json_decref(r.body);
    r = call("GET", "/v2/teams/201/event-types", BEARER, "2024-06-14", NULL);
    cr_assert_str_eq(cm_json_str(r.body, "data.0.schedulingType", ""), "ROUND_ROBIN");
    json_decref(r.body);
}

Test(calcom_rate, above_the_limit_is_429, .init = NULL, .fini = teardown)
{
    start_full(400, 5);
    char want[8];
    for (int i = 0; i < 5; i++) {
        result_t r = call("GET", "/v2/bookings", BEARER, "2024-08-13", NULL);
        cr_assert_eq(r.status, 200, "request %d", i);
        cr_assert_str_eq(r.limit, "5");
        snprintf(want, sizeof want, "%d", 4 - i);
        cr_assert_str_eq(r.remaining, want, "request %d", i);
        cr_assert(atoi(r.reset) >= 1 && atoi(r.reset) <= 60, "reset %s s", r.reset);
        json_decref(r.body);
    }
    for (int i = 0; i < 2; i++) {
        result_t r = call("GET", "/v2/bookings", BEARER, "2024-08-13", NULL);
        assert_error(&r, 429, "ThrottlerException", "Too many requests. Please try again later.");
        cr_assert_str_eq(r.remaining, "0");
        cr_assert(atoi(r.reset) >= 59 && atoi(r.reset) <= 60, "blocked for 60 s, not %s", r.reset);
        cr_assert_str_eq(r.retry_after, "", "Cal.com's throttler sends no Retry-After");
        json_decref(r.body);
    }
    /* Another key has its own tracker; POST /v2/bookings its own throttler. */
    result_t r = call("GET", "/v2/slots?eventTypeId=101&start=2050-09-05&end=2050-09-05", NULL,
                      "2024-09-04", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.remaining, "4");
    json_decref(r.body);
    r = book(BOOK_BODY("2050-09-05T09:00:00Z", "Ada"));
    cr_assert_eq(r.status, 201);
    cr_assert_str_eq(r.cb_remaining, "4", "the create-booking throttler");
    cr_assert_str_eq(r.remaining, "", "not the default one");
    json_decref(r.body);
}

/* Cal.com sends a webhook once: an answer that is not 2xx and a receiver that cannot be
 * reached are logged, not retried (WebhookService.sendWebhookDirectly / processWebhooks,
 * docs/providers-calcom.md). A gateway that is down when a booking is made never hears of
 * it from the webhook. */
Test(calcom, a_webhook_to_a_receiver_that_is_down_is_sent_once)
{
    char err[CM_ERR_LEN] = "", url[96];
    /* A port that was just free: nothing listens there. */
    cm_http_server_t *gone = cm_http_server_new(&(cm_http_server_cfg_t){.name = "test.gone"});
    cr_assert_eq(cm_http_server_start(gone, err), CM_OK, "%s", err);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/hook", cm_http_server_port(gone));
    cm_http_server_free(&gone);
    cr_assert_eq(sim_calcom_set_webhook(cal, url, err), CM_OK, "%s", err);
    result_t r = book(BOOK_BODY("2050-09-05T09:00:00Z", "Ada"));
    cr_assert_eq(r.status, 201);
    sim_calcom_event_t ev = {.trigger = "BOOKING_CREATED",
                             .booking_uid = cm_json_str(r.body, "data.uid", ""),
                             .copies = 1};
    cm_err_t rc;
    json_t *rep = send_hook(ev, NULL, &rc, err);
    cr_assert_eq(rc, CM_OK, "%s", err);
    cr_assert_str_eq(cm_json_str(rep, "status", ""), "done");
    cr_assert(json_is_null(cm_json_path(rep, "deliveries.0.status")), "no HTTP answer");
    cr_assert_not_null(cm_json_str(rep, "deliveries.0.error", NULL));
    cr_assert_eq(json_array_size(cm_json_path(rep, "deliveries.0.attempts")), 1,
                 "the delivery is over after one attempt");
    json_decref(rep);
    json_decref(r.body);
    /* The booking's own webhook too: one attempt, journaled with its error. */
    sim_journal_filter_t f = {.kind = SIM_JOURNAL_DELIVERY};
    cr_assert_eq(sim_journal_wait(jr, &f, 2, 5000), 2, "the booking's and the requested one");
}
