/* sim_calcom.c - Cal.com API v2: event types, slots, bookings (create, list, cancel,
 * reschedule), a per-key rate limit and signed booking webhooks. */
#include "sim_calcom.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_codec.h"
#include "cm_http_client.h"
#include "cm_json.h"
#include "cm_log.h"
#include "cm_sig.h"
#include "sim_delivery.h"
#include "sim_http.h"
#include "sim_rng.h"
#include "sim_slots.h"

#define COMP "sim.calcom"
#define SLOTS_VERSION "2024-09-04"
#define BOOKINGS_VERSION "2024-08-13"
#define EVENT_TYPES_VERSION "2024-06-14"
/* A guard on answer size, not a Cal.com rule: a year of 30-minute slots is ~6000 items. */
#define MAX_RANGE_DAYS 366
/* short-uuid's flickrBase58 alphabet: Cal.com uids are 22 characters of it. */
#define UID_ALPHABET "123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
#define UID_LEN 22

#define NHOSTS 3
/* GET /v2/bookings' skip: more than any ledger holds, and small enough that the page
 * arithmetic cannot overflow (skip 2^63-1 with take 1 did). */
#define MAX_SKIP 1000000000
#define TEAM_ID 201
#define TEAM_SLUG "sim-team"
/* What a forged webhook is signed with: a secret nobody configured. */
#define FORGED_SECRET "calsecret_forged_by_the_simulator"

typedef struct {
    int id;
    const char *name, *email, *username;
} host_t;

/* Host 1 owns the personal event types; hosts 2 and 3 form team 201. */
static const host_t hosts[NHOSTS + 1] = {
    {0, NULL, NULL, NULL},
    {1, "Sim Host", "host@sim.example", "simhost"},
    {2, "Team Host A", "a@team.sim.example", "teamhosta"},
    {3, "Team Host B", "b@team.sim.example", "teamhostb"},
};

typedef struct {
    int id;
    const char *slug;
    const char *title;
    int length_min;
    int team_id;            /* 0: a personal event type of host 1 */
    const char *scheduling; /* NULL, or "ROUND_ROBIN" */
    int host_ids[NHOSTS];   /* 0-terminated */
} event_type_t;

static const event_type_t event_types[] = {
    {101, "consultation", "Consultation", 30, 0, NULL, {1, 0}},
    {102, "long-session", "Long session", 60, 0, NULL, {1, 0}},
    {103, "team-consultation", "Team consultation", 30, TEAM_ID, "ROUND_ROBIN", {2, 3, 0}},
};

#define NEVENT_TYPES (sizeof event_types / sizeof event_types[0])

/* An event type as the account has it now: the catalogue's, renamed (PATCH) or deleted
 * (DELETE) through the API, as a person does in Cal.com's dashboard. */
typedef struct {
    int deleted;
    char slug[64];
    char title[128];
} event_type_now_t;

static const sim_hours_t hours = {9 * 60, 17 * 60};

#define TEAM_TAKEN_MSG                                                                             \
    "One of the hosts either already has booking at this time or is not available"
/* Cal.com's CustomThrottlerGuard defaults: a fixed 60 s window (ttl) and, once over the
 * limit, a 60 s block (blockDuration). */
#define RATE_WINDOW_MS 60000
#define RATE_BLOCK_MS 60000
#define RATE_KEYS 32

typedef struct {
    sim_interval_t *v;
    size_t n, cap;
} busy_t;

/* One throttler bucket: a tracker (a digest of the Authorization header, or none) and a
 * throttler name ("default", or "create-booking" for POST /v2/bookings). */
typedef struct {
    char key[48];
    int64_t window_start, blocked_until; /* monotonic ms; blocked_until 0: not blocked */
    int hits;
    int64_t last_used;
} rate_t;

struct sim_calcom {
    pthread_mutex_t mu;
    char *api_key;
    char *webhook_secret;
    int taken_status;
    sim_rng_t rng;
    sim_journal_t *journal;
    int rate_limit; /* requests per minute per key; 0: none */
    pthread_cond_t cv;
    int stopping;
    /* guarded by mu */
    json_t *ledger;          /* array of booking objects, creation order */
    json_t *by_uid;          /* uid -> the same booking objects */
    busy_t busy[NHOSTS + 1]; /* per host: accepted bookings and calendar busy times */
    int64_t next_id;         /* never reset: ids are unique for the process's life */
    rate_t rates[RATE_KEYS];
    char *hook_url;
    sim_delivery_job_t *hooks; /* queued webhook deliveries, oldest first */
    pthread_t worker;
    int has_worker;
    sim_delivery_log_t *log; /* reports of the webhooks sent through the control API */
    /* Under et_mu, which is taken last (never mu while holding it): looked up from
     * handlers that hold mu and from those that do not. */
    pthread_mutex_t et_mu;
    event_type_now_t et_now[NEVENT_TYPES];
};

/* The event types as the catalogue has them, none deleted. Under et_mu (or before any
 * thread sees c). */
static void event_types_restore(sim_calcom_t *c)
{
    for (size_t i = 0; i < NEVENT_TYPES; i++) {
        c->et_now[i].deleted = 0;
        snprintf(c->et_now[i].slug, sizeof c->et_now[i].slug, "%s", event_types[i].slug);
        snprintf(c->et_now[i].title, sizeof c->et_now[i].title, "%s", event_types[i].title);
    }
}

sim_calcom_t *sim_calcom_new(const sim_calcom_cfg_t *cfg)
{
    if (!cfg->api_key || !*cfg->api_key || (cfg->taken_status != 400 && cfg->taken_status != 409))
        return NULL;
    sim_calcom_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->et_mu, NULL);
    event_types_restore(c);
    c->api_key = strdup(cfg->api_key);
    c->webhook_secret = strdup(cfg->webhook_secret ? cfg->webhook_secret : "");
    c->taken_status = cfg->taken_status;
    c->journal = cfg->journal;
    c->rate_limit = cfg->rate_limit < 0 ? 0 : cfg->rate_limit;
    cm_clock_cond_init(&c->cv);
    sim_rng_init(&c->rng, cfg->seed, 2);
    c->ledger = json_array();
    c->by_uid = json_object();
    c->next_id = 1;
    c->log = sim_delivery_log_new("dlv_calcom");
    if (!c->api_key || !c->webhook_secret || !c->ledger || !c->by_uid || !c->log)
        sim_calcom_free(&c);
    return c;
}

void sim_calcom_free(sim_calcom_t **cp)
{
    sim_calcom_t *c = cp ? *cp : NULL;
    if (!c)
        return;
    sim_calcom_shutdown(c);
    if (c->has_worker)
        pthread_join(c->worker, NULL);
    sim_delivery_jobs_drop(c->log, c->hooks, "not sent: the simulator stopped");
    sim_delivery_log_free(&c->log);
    free(c->hook_url);
    for (size_t i = 0; i <= NHOSTS; i++)
        free(c->busy[i].v);
    pthread_cond_destroy(&c->cv);
    json_decref(c->ledger);
    json_decref(c->by_uid);
    free(c->api_key);
    free(c->webhook_secret);
    sim_rng_destroy(&c->rng);
    pthread_mutex_destroy(&c->et_mu);
    pthread_mutex_destroy(&c->mu);
    free(c);
    *cp = NULL;
}

void sim_calcom_reset(sim_calcom_t *c)
{
    pthread_mutex_lock(&c->mu);
    json_array_clear(c->ledger);
    json_object_clear(c->by_uid);
    for (size_t i = 0; i <= NHOSTS; i++)
        c->busy[i].n = 0;
    memset(c->rates, 0, sizeof c->rates);
    free(c->hook_url);
    c->hook_url = NULL;
    sim_delivery_job_t *h = c->hooks;
    c->hooks = NULL;
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_lock(&c->et_mu);
    event_types_restore(c);
    pthread_mutex_unlock(&c->et_mu);
    sim_delivery_jobs_drop(c->log, h, "not sent: the simulator was reset");
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

/* The event type with this id; with live set, NULL once deleted through the API (a
 * booking made before still names its event type: pass NULL for those). */
static const event_type_t *find_event_type(sim_calcom_t *live, int64_t id)
{
    for (size_t i = 0; i < NEVENT_TYPES; i++) {
        if (event_types[i].id != id)
            continue;
        if (!live)
            return &event_types[i];
        pthread_mutex_lock(&live->et_mu);
        int deleted = live->et_now[i].deleted;
        pthread_mutex_unlock(&live->et_mu);
        return deleted ? NULL : &event_types[i];
    }
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

/* Optional authentication (Cal.com's OptionalApiAuthGuard): no Authorization header is
 * fine, a wrong one is refused (the stricter reading; see docs/providers-calcom.md). */
static int optional_auth(const sim_calcom_t *c, const cm_http_req_t *req, cm_http_resp_t *resp)
{
    return !cm_http_req_header(req, "Authorization") || authorised(c, req, resp);
}

/* Whether the request names exactly this cal-api-version. Cal.com routes a request by the
 * header: a missing or unknown value is served as 2024-04-15 (apps/api/v2/src/app.ts, the
 * versioning extractor), and each controller answers only the versions it lists. */
static int version_is(const cm_http_req_t *req, const char *want)
{
    const char *v = cm_http_req_header(req, "cal-api-version");
    return v && strcmp(v, want) == 0;
}

/* The request is answered by an older controller than the current one: said in a header
 * (a simulator-only aid to debugging), the answer itself is what the older one gives. */
static void note_older(const cm_http_req_t *req, cm_http_resp_t *resp)
{
    const char *v = cm_http_req_header(req, "cal-api-version");
    if (cm_http_resp_header(resp, "X-Sim-Version-Fallback", "1") != CM_OK)
        CM_WARN(COMP, "could not add the version fall-back header");
    CM_DEBUG(COMP, "%s %s served by the 2024-04-15 controller (cal-api-version '%s')", req->method,
             req->path, v ? v : "");
}

/* No controller of the version asked for has this route: NestJS's own 404. */
static void answer_no_route(const cm_http_req_t *req, cm_http_resp_t *resp)
{
    char msg[300];
    snprintf(msg, sizeof msg, "Cannot %s %.250s", req->method, req->path);
    answer_error(req, resp, 404, "NotFoundException", msg);
}

/* ---- GET /v2/slots ---------------------------------------------------------------- */

/* A day ("2050-09-05": its first or, for an end, last millisecond, UTC) or an ISO
 * date-time; one without an offset is UTC. Cal.com reads start and end in UTC whatever the
 * timeZone (slots-input.service.ts: DateTime.fromISO(s, {zone: "utc"})); timeZone only
 * shapes the answer. */
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

/* A positive decimal integer that fits int64_t (strtoll would clamp one that does not). */
static int parse_id(const char *s, int64_t *out)
{
    char *end;
    if (!s || !*s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || v <= 0 || errno == ERANGE)
        return -1;
    *out = v;
    return 0;
}

/* ---- hosts and availability (under the lock) ----------------------------------------- */

static cm_err_t busy_add(busy_t *b, int64_t start_ms, int64_t end_ms)
{
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 32;
        sim_interval_t *nb = realloc(b->v, ncap * sizeof *nb);
        if (!nb)
            return CM_ENOMEM;
        b->v = nb;
        b->cap = ncap;
    }
    b->v[b->n++] = (sim_interval_t){start_ms, end_ms};
    return CM_OK;
}

static void busy_remove(busy_t *b, int64_t start_ms, int64_t end_ms)
{
    for (size_t i = 0; i < b->n; i++) {
        if (b->v[i].start_ms == start_ms && b->v[i].end_ms == end_ms) {
            b->v[i] = b->v[--b->n];
            return;
        }
    }
}

/* Accepted bookings of a host, for round-robin fairness. */
static size_t host_load(const sim_calcom_t *c, int host)
{
    size_t n = 0, i;
    json_t *v;
    json_array_foreach(c->ledger, i, v)
    {
        if (strcmp(cm_json_str(v, "status", ""), "accepted") == 0 &&
            cm_json_int(v, "hosts.0.id", 0) == host)
            n++;
    }
    return n;
}

/* Whether start is bookable for et now: SIM_SLOT_FREE with *host set to the host who takes
 * it (round robin: the least loaded free host), or why not. */
static sim_slot_state_t slot_for(const sim_calcom_t *c, const event_type_t *et, int64_t start,
                                 int64_t now, int *host)
{
    int64_t len = (int64_t)et->length_min * 60000;
    sim_slot_state_t worst = SIM_SLOT_TAKEN;
    size_t best_load = (size_t)-1;
    *host = 0;
    for (size_t i = 0; i < NHOSTS && et->host_ids[i]; i++) {
        int h = et->host_ids[i];
        sim_slot_state_t st = sim_slots_check(&hours, len, start, c->busy[h].v, c->busy[h].n, now);
        if (st == SIM_SLOT_FREE) {
            size_t load = et->scheduling ? host_load(c, h) : 0;
            if (load < best_load) {
                best_load = load;
                *host = h;
            }
        } else if (st != SIM_SLOT_TAKEN) {
            worst = st; /* off the grid or past: the same for every host */
        }
    }
    return *host ? SIM_SLOT_FREE : worst;
}

static int rate_limited(sim_calcom_t *c, const cm_http_req_t *req, cm_http_resp_t *resp,
                        const char *bucket);

/* ---- GET /v2/slots and the older /v2/slots/available ------------------------------------ */

typedef struct {
    const sim_calcom_t *c;
    const event_type_t *et;
    int64_t now;
    json_t *data;
    int64_t len_ms;
    int range;
    int older;          /* the older shape: {"slots":{day:[{"time"}]}} */
    const sim_tz_t *tz; /* the requested timeZone: slot times and day keys are written in it */
    int oom;
} slot_sink_t;

static int add_slot(int64_t start_ms, void *ud)
{
    slot_sink_t *k = ud;
    int host;
    if (slot_for(k->c, k->et, start_ms, k->now, &host) != SIM_SLOT_FREE)
        return 0;
    char s[32], e[32], day[11];
    sim_tz_iso(k->tz, start_ms, s);
    memcpy(day, s, 10); /* the day in the requested zone, as Cal.com groups them */
    day[10] = '\0';
    json_t *list = json_object_get(k->data, day);
    if (!list) {
        list = json_array();
        if (!list || json_object_set_new(k->data, day, list)) {
            k->oom = 1;
            return 1;
        }
    }
    /* Written in the requested timeZone's offset, as Cal.com's slots-output.service does
     * (luxon setZone(timeZone).toISO(): "2050-09-05T11:00:00.000+02:00"): clients must
     * parse and compare instants, never these strings. */
    json_t *item = k->older   ? json_pack("{s:s}", "time", s)
                   : k->range ? json_pack("{s:s,s:s}", "start", s, "end",
                                          sim_tz_iso(k->tz, start_ms + k->len_ms, e))
                              : json_pack("{s:s}", "start", s);
    if (!item || json_array_append_new(list, item)) {
        k->oom = 1;
        return 1;
    }
    return 0;
}

static void slots_common(sim_calcom_t *c, const cm_http_req_t *req, cm_http_resp_t *resp, int older,
                         const char *qstart, const char *qend, const char *sname, const char *ename)
{
    const char *qid = cm_http_req_query(req, "eventTypeId");
    const char *qfmt = cm_http_req_query(req, "slotFormat");
    int64_t id, from, to;
    char msg[160];
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
        snprintf(msg, sizeof msg, "%s must be a date (YYYY-MM-DD) or an ISO 8601 date-time", sname);
        answer_bad_request(req, resp, msg);
        return;
    }
    if (!qend || parse_bound(qend, 1, &to) != 0) {
        snprintf(msg, sizeof msg, "%s must be a date (YYYY-MM-DD) or an ISO 8601 date-time", ename);
        answer_bad_request(req, resp, msg);
        return;
    }
    if (to < from) {
        snprintf(msg, sizeof msg, "%s must not be before %s", ename, sname);
        answer_bad_request(req, resp, msg);
        return;
    }
    if (to - from > (int64_t)MAX_RANGE_DAYS * SIM_DAY_MS) {
        snprintf(msg, sizeof msg, "the range from %s to %s must not exceed 366 days", sname, ename);
        answer_bad_request(req, resp, msg);
        return;
    }
    if (!older && qfmt && strcmp(qfmt, "time") != 0 && strcmp(qfmt, "range") != 0) {
        answer_bad_request(req, resp, "slotFormat must be one of: time, range");
        return;
    }
    const char *qtz = cm_http_req_query(req, "timeZone");
    char tzerr[CM_ERR_LEN];
    sim_tz_t *tz = sim_tz_load(qtz ? qtz : "UTC", tzerr);
    if (!tz) {
        snprintf(msg, sizeof msg, "timeZone must be a valid IANA time zone: %.100s", tzerr);
        answer_bad_request(req, resp, msg);
        return;
    }
    const event_type_t *et = find_event_type(c, id);
    if (!et) {
        sim_tz_free(&tz);
        snprintf(msg, sizeof msg, "Event type with id=%lld not found", (long long)id);
        answer_error(req, resp, 404, "NotFoundException", msg);
        return;
    }
    slot_sink_t sink = {.c = c,
                        .tz = tz,
                        .et = et,
                        .now = cm_clock_now_ms(),
                        .data = json_object(),
                        .len_ms = (int64_t)et->length_min * 60000,
                        .range = qfmt && strcmp(qfmt, "range") == 0,
                        .older = older};
    if (!sink.data) {
        sim_tz_free(&tz);
        cm_http_resp_json(resp, 500, NULL);
        return;
    }
    pthread_mutex_lock(&c->mu);
    /* The grid comes from the hours alone; add_slot checks each host's busy times. */
    sim_slots_list(&hours, sink.len_ms, from, to, NULL, 0, sink.now, add_slot, &sink);
    pthread_mutex_unlock(&c->mu);
    sim_tz_free(&tz);
    if (sink.oom) {
        json_decref(sink.data);
        cm_http_resp_json(resp, 500, NULL);
        return;
    }
    answer_success(resp, 200, older ? json_pack("{s:o}", "slots", sink.data) : sink.data);
}

static void h_slots(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_calcom_t *c = ud;
    /* Only SlotsController_2024_09_04 has GET /v2/slots; the older controller (any other
     * or no cal-api-version) has /v2/slots/available instead, so Cal.com answers 404. */
    if (!version_is(req, SLOTS_VERSION)) {
        answer_no_route(req, resp);
        return;
    }
    /* No auth guard on this route: slots are public (a key only counts for the limit). */
    if (rate_limited(c, req, resp, "default"))
        return;
    slots_common(c, req, resp, 0, cm_http_req_query(req, "start"), cm_http_req_query(req, "end"),
                 "start", "end");
}

static void h_slots_available(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_calcom_t *c = ud;
    /* SlotsController_2024_04_15 serves 2024-04-15, 2024-06-11, 2024-06-14, 2024-08-13 and a
     * missing or unknown version; 2024-09-04 has no /available route. Public, like GET
     * /v2/slots. */
    if (version_is(req, SLOTS_VERSION)) {
        answer_no_route(req, resp);
        return;
    }
    if (rate_limited(c, req, resp, "default"))
        return;
    note_older(req, resp);
    slots_common(c, req, resp, 1, cm_http_req_query(req, "startTime"),
                 cm_http_req_query(req, "endTime"), "startTime", "endTime");
}

/* ---- webhooks ------------------------------------------------------------------------- */

/* A person of the payload, as Cal.com's CalendarEvent has them: language {locale} and
 * utcOffset (minutes east of UTC of their timeZone at the booking's start); attendees also
 * get firstName / lastName split at the first space (v2021-10-20 BookingPayloadBuilder). */
static json_t *hook_person(const json_t *p, int attendee, int64_t start_ms)
{
    const char *zone = cm_json_str(p, "timeZone", "UTC"), *name = cm_json_str(p, "name", "");
    char err[CM_ERR_LEN];
    sim_tz_t *tz = sim_tz_load(zone, err);
    int off = tz ? sim_tz_offset_s(tz, start_ms) / 60 : 0;
    sim_tz_free(&tz);
    json_t *v = json_pack("{s:s,s:s,s:s,s:{s:s},s:i}", "name", name, "email",
                          cm_json_str(p, "email", ""), "timeZone", zone, "language", "locale",
                          cm_json_str(p, "language", "en"), "utcOffset", off);
    if (v && attendee) {
        const char *sp = strchr(name, ' ');
        json_object_set_new(v, "firstName",
                            sp ? json_stringn(name, (size_t)(sp - name)) : json_string(name));
        json_object_set_new(v, "lastName", json_string(sp ? sp + 1 : ""));
        if (json_is_string(json_object_get(p, "phoneNumber")))
            json_object_set(v, "phoneNumber", json_object_get(p, "phoneNumber"));
    } else if (v) {
        json_object_set(v, "id", json_object_get(p, "id"));
        json_object_set(v, "username", json_object_get(p, "username"));
        json_object_set_new(v, "timeFormat", json_string("h:mma"));
    }
    return v;
}

/* The payload of the simulator's own webhook of trigger for booking b, as b is now, in the
 * shape of Cal.com's webhook version 2021-10-20 (packages/features/webhooks/lib/factory/
 * versioned/v2021-10-20/BookingPayloadBuilder.ts): the CalendarEvent's fields (type = the
 * event type's slug, title, description, additionalNotes, customInputs, startTime, endTime,
 * organizer, attendees, responses {name, email, location: {label, value}}, location, uid,
 * eventTypeId) plus bookingId, status, eventTitle, length, price, currency, metadata;
 * BOOKING_CANCELLED adds cancellationReason and requestReschedule, BOOKING_RESCHEDULED
 * rescheduleUid / rescheduleId / rescheduleStartTime / rescheduleEndTime of the booking it
 * replaced. NULL when out of memory. Under the lock. */
static json_t *hook_payload(sim_calcom_t *c, const char *trigger, const json_t *b)
{
    const event_type_t *et = find_event_type(NULL, cm_json_int(b, "eventTypeId", 0));
    const json_t *att = json_array_get(json_object_get(b, "attendees"), 0);
    int64_t start = 0;
    (void)cm_clock_parse_iso8601(cm_json_str(b, "start", ""), &start);
    const host_t *h =
        &hosts[cm_json_int(b, "hosts.0.id", 1) >= 1 && cm_json_int(b, "hosts.0.id", 1) <= NHOSTS
                   ? cm_json_int(b, "hosts.0.id", 1)
                   : 1];
    json_t *org = json_pack("{s:i,s:s,s:s,s:s,s:s}", "id", h->id, "name", h->name, "email",
                            h->email, "username", h->username, "timeZone", "UTC");
    json_t *attendees = json_array();
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(b, "attendees"), i, a)
        json_array_append_new(attendees, hook_person(a, 1, start));
    json_t *payload = json_pack(
        "{s:s,s:O,s:s,s:s,s:O,s:O,s:o,s:o,s:{s:{s:s,s:O},s:{s:s,s:O},s:{s:s,s:{s:s,s:s}}},"
        "s:s,s:O,s:O,s:O,s:{},s:{},s:s,s:s,s:n,s:b,s:i,s:s,s:i,s:n,s:n,s:n,s:O}",
        "type", et ? et->slug : "", "title", json_object_get(b, "title"), "description", "",
        "additionalNotes", "", "startTime", json_object_get(b, "start"), "endTime",
        json_object_get(b, "end"), "organizer", hook_person(org, 0, start), "attendees", attendees,
        "responses", "name", "label", "your_name", "value", json_object_get(att, "name"), "email",
        "label", "email_address", "value", json_object_get(att, "email"), "location", "label",
        "location", "value", "optionValue", "", "value", "integrations:daily", "location",
        "integrations:daily", "uid", json_object_get(b, "uid"), "bookingId",
        json_object_get(b, "id"), "eventTypeId", json_object_get(b, "eventTypeId"), "customInputs",
        "userFieldsResponses", "status",
        strcmp(cm_json_str(b, "status", ""), "accepted") == 0 ? "ACCEPTED" : "CANCELLED",
        "eventTitle", et ? et->title : "", "eventDescription", "requiresConfirmation", 0, "price",
        0, "currency", "usd", "length", et ? et->length_min : 0, "hashedLink",
        "destinationCalendar", "assignmentReason", "metadata", json_object_get(b, "metadata"));
    json_decref(org);
    if (payload && strcmp(trigger, "BOOKING_CANCELLED") == 0) {
        const json_t *why = json_object_get(b, "cancellationReason");
        json_object_set_new(payload, "cancellationReason",
                            json_is_string(why) ? json_copy((json_t *)why) : json_null());
        json_object_set_new(payload, "requestReschedule", json_false());
    } else if (payload && strcmp(trigger, "BOOKING_RESCHEDULED") == 0) {
        const char *from = cm_json_str(b, "rescheduledFromUid", NULL);
        const json_t *old = from ? json_object_get(c->by_uid, from) : NULL;
        json_object_set_new(payload, "rescheduleUid", from ? json_string(from) : json_null());
        json_object_set(payload, "rescheduleId", old ? json_object_get(old, "id") : json_null());
        json_object_set(payload, "rescheduleStartTime",
                        old ? json_object_get(old, "start") : json_null());
        json_object_set(payload, "rescheduleEndTime",
                        old ? json_object_get(old, "end") : json_null());
    }
    return payload;
}

/* A new envelope of payload (taken), created now. NULL when out of memory. */
static json_t *hook_envelope(const char *trigger, json_t *payload)
{
    char now[25];
    return payload ? json_pack("{s:s,s:s,s:o}", "triggerEvent", trigger, "createdAt",
                               cm_clock_iso8601(cm_clock_now_ms(), now), "payload", payload)
                   : NULL;
}

/* Queues the signed webhook for trigger about booking b, when a URL is set. Under the lock. */
static void queue_hook(sim_calcom_t *c, const char *trigger, const json_t *b)
{
    if (!c->hook_url)
        return;
    json_t *env = hook_envelope(trigger, hook_payload(c, trigger, b));
    sim_delivery_job_t *h = env ? sim_delivery_job_new(trigger, NULL, cm_json_dumps(env)) : NULL;
    json_decref(env);
    if (!h) {
        CM_WARN(COMP, "out of memory: %s webhook not sent", trigger);
        return;
    }
    sim_delivery_jobs_append(&c->hooks, h);
    pthread_cond_broadcast(&c->cv);
}

/* Sends each queued webhook once, as Cal.com does (no retry), in order. */
static void *hook_worker(void *arg)
{
    sim_calcom_t *c = arg;
    cm_http_client_t *cl = cm_http_client_new();
    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        if (!c->hooks) {
            pthread_cond_wait(&c->cv, &c->mu);
            continue;
        }
        sim_delivery_job_t *h = c->hooks;
        c->hooks = h->next;
        sim_attempt_t a = {.url = c->hook_url ? strdup(c->hook_url) : NULL};
        pthread_mutex_unlock(&c->mu);
        size_t len = h->len;
        const char *secret = h->forge ? FORGED_SECRET : c->webhook_secret;
        /* No secret: Cal.com sends the literal "no-secret-provided". */
        if (!*secret || cm_sig_calcom_sign(secret, h->body, len, a.sig))
            snprintf(a.sig, sizeof a.sig, "no-secret-provided");
        const char *headers[] = {"Content-Type: application/json",
                                 "X-Cal-Webhook-Version: 2021-10-20", NULL};
        if (a.url && cl)
            sim_delivery_send(cl,
                              &(sim_delivery_req_t){.provider = "calcom",
                                                    .sig_header = "X-Cal-Signature-256",
                                                    .headers = headers,
                                                    .body = h->body,
                                                    .len = len,
                                                    .abort = &c->stopping,
                                                    .journal = c->journal,
                                                    .delivery_id = sim_delivery_job_id(h),
                                                    .event = h->event,
                                                    .attempt = 1},
                              &a);
        else
            snprintf(a.err, sizeof a.err, "not sent: out of memory");
        sim_delivery_log_attempt(c->log, &h->report, &a, 0);
        free(a.url);
        sim_delivery_job_free(h);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    cm_http_client_free(&cl);
    return NULL;
}

cm_err_t sim_calcom_set_webhook(sim_calcom_t *c, const char *url, char *err)
{
    if (!url) {
        /* No subscription: bookings send nothing; deliveries already queued still go. */
        pthread_mutex_lock(&c->mu);
        free(c->hook_url);
        c->hook_url = NULL;
        pthread_mutex_unlock(&c->mu);
        return CM_OK;
    }
    if ((strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) || strlen(url) > 2048) {
        cm_errf(err, "url must be an http:// or https:// URL of at most 2048 bytes");
        return CM_EINVAL;
    }
    char *copy = strdup(url);
    if (!copy)
        return CM_ENOMEM;
    cm_err_t rc = CM_OK;
    pthread_mutex_lock(&c->mu);
    free(c->hook_url);
    c->hook_url = copy;
    if (!c->has_worker) {
        c->has_worker = pthread_create(&c->worker, NULL, hook_worker, c) == 0;
        if (!c->has_worker)
            rc = CM_ENOMEM;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- webhooks sent on request ------------------------------------------------------------ */

/* The triggers Cal.com has that the simulator knows (PROVIDERS.md); the first three are the
 * ones it sends itself and can build a payload for. */
static const char *const triggers[] = {
    "BOOKING_CREATED",   "BOOKING_RESCHEDULED", "BOOKING_CANCELLED", "BOOKING_REJECTED",
    "BOOKING_REQUESTED", "BOOKING_PAID",        "MEETING_ENDED"};
#define OWN_TRIGGERS 3

/* The index of trigger in triggers, -1 when unknown. */
static int trigger_index(const char *trigger)
{
    for (size_t i = 0; trigger && i < sizeof triggers / sizeof triggers[0]; i++)
        if (strcmp(trigger, triggers[i]) == 0)
            return (int)i;
    return -1;
}

/* Checks ev; CM_EINVAL with err naming the field. */
static cm_err_t check_event(const sim_calcom_event_t *ev, char *err)
{
    int t = trigger_index(ev->trigger);
    if (!ev->trigger)
        cm_errf(err, "trigger is required (e.g. \"BOOKING_CANCELLED\")");
    else if (t < 0)
        cm_errf(err,
                "trigger must be one of BOOKING_CREATED, BOOKING_RESCHEDULED, BOOKING_CANCELLED, "
                "BOOKING_REJECTED, BOOKING_REQUESTED, BOOKING_PAID, MEETING_ENDED, not \"%.40s\"",
                ev->trigger);
    else if (!ev->booking_uid == !ev->payload)
        cm_errf(err, "booking_uid or payload: give exactly one of the two");
    else if (ev->payload && !json_is_object(ev->payload))
        cm_errf(err, "payload must be a JSON object");
    else if (ev->booking_uid && !*ev->booking_uid)
        cm_errf(err, "booking_uid must not be empty");
    else if (ev->booking_uid && t >= OWN_TRIGGERS)
        cm_errf(err,
                "booking_uid: the simulator builds payloads only for BOOKING_CREATED, "
                "BOOKING_RESCHEDULED and BOOKING_CANCELLED; give the %s payload instead",
                ev->trigger);
    else if (ev->copies < 1 || ev->copies > SIM_CALCOM_MAX_COPIES)
        cm_errf(err, "copies must be between 1 and %d", SIM_CALCOM_MAX_COPIES);
    else
        return CM_OK;
    return CM_EINVAL;
}

cm_err_t sim_calcom_send_event(sim_calcom_t *c, const sim_calcom_event_t *ev, json_t **report,
                               char *err)
{
    *report = NULL;
    cm_err_t rc = check_event(ev, err);
    if (rc)
        return rc;
    json_t *env = NULL;
    sim_delivery_ref_t ref = {0};
    sim_delivery_job_t *jobs = NULL;
    pthread_mutex_lock(&c->mu);
    const json_t *b = ev->booking_uid ? json_object_get(c->by_uid, ev->booking_uid) : NULL;
    if (ev->booking_uid && !b) {
        cm_errf(err, "booking_uid: no booking '%.100s'", ev->booking_uid);
        rc = CM_ENOTFOUND;
    } else if (!c->hook_url || !c->has_worker) {
        cm_errf(err, "no webhook URL set (PUT /control/calcom/webhook first)");
        rc = CM_ESTATE;
    } else {
        env = hook_envelope(ev->trigger,
                            b ? hook_payload(c, ev->trigger, b) : json_deep_copy(ev->payload));
        sim_delivery_copies_t cp = {
            .event = ev->trigger, .copies = (unsigned)ev->copies, .forge = ev->forge};
        rc = env ? sim_delivery_log_queue(c->log, env, c->hook_url, &cp, &ref, &jobs) : CM_ENOMEM;
    }
    if (!rc) {
        sim_delivery_jobs_append(&c->hooks, jobs);
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    if (!rc) {
        CM_INFO(COMP, "%s webhook sent on request, %lld cop%s%s: %s", ev->trigger,
                (long long)ev->copies, ev->copies == 1 ? "y" : "ies", ev->forge ? ", forged" : "",
                ref.id);
        *report = sim_delivery_log_wait_first(c->log, &ref);
        if (!*report)
            rc = CM_ENOMEM;
    }
    json_decref(env);
    return rc;
}

json_t *sim_calcom_delivery(sim_calcom_t *c, const char *delivery_id)
{
    return sim_delivery_log_report(c->log, delivery_id);
}

void sim_calcom_shutdown(sim_calcom_t *c)
{
    pthread_mutex_lock(&c->mu);
    __atomic_store_n(&c->stopping, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->log)
        sim_delivery_log_stop(c->log);
}

cm_err_t sim_calcom_add_busy(sim_calcom_t *c, int host, int64_t start_ms, int64_t end_ms, char *err)
{
    if (host < 1 || host > NHOSTS || end_ms <= start_ms) {
        cm_errf(err, "hostId must be 1..%d and end after start", NHOSTS);
        return CM_EINVAL;
    }
    pthread_mutex_lock(&c->mu);
    cm_err_t rc = busy_add(&c->busy[host], start_ms, end_ms);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- rate limit ------------------------------------------------------------------------- */

/* 1 when this request is over the limit (and answers 429), as Cal.com's CustomThrottlerGuard
 * (apps/api/v2/src/lib/throttler/throttler-guard.ts): a fixed window of RATE_WINDOW_MS per
 * tracker and throttler name; the request that goes over blocks the bucket for
 * RATE_BLOCK_MS, after which counting starts afresh. Every answer carries
 * X-RateLimit-Limit-<Name>, X-RateLimit-Remaining-<Name> and X-RateLimit-Reset-<Name> (s),
 * Name the throttler's with its first letter upper-cased; a 429 has no Retry-After and the
 * message "Too many requests. Please try again later.". Trackers are told apart by a digest
 * of the Authorization header, so no key is kept in memory; requests without one share a
 * tracker (Cal.com would use the client's address). */
static int rate_limited(sim_calcom_t *c, const cm_http_req_t *req, cm_http_resp_t *resp,
                        const char *bucket)
{
    if (!c->rate_limit)
        return 0;
    const char *auth = cm_http_req_header(req, "Authorization");
    uint8_t d[CM_SHA256_LEN];
    char key[48];
    cm_sha256(auth ? auth : "", auth ? strlen(auth) : 0, d);
    cm_hex_encode(d, 8, key);
    snprintf(key + 16, sizeof key - 16, ":%s", bucket);
    int64_t now = cm_clock_mono_ms();
    int blocked = 0;
    int64_t reset_ms;
    int remaining;
    pthread_mutex_lock(&c->mu);
    rate_t *r = NULL, *lru = &c->rates[0];
    for (size_t i = 0; i < RATE_KEYS && !r; i++) {
        if (strcmp(c->rates[i].key, key) == 0)
            r = &c->rates[i];
        else if (c->rates[i].last_used < lru->last_used)
            lru = &c->rates[i];
    }
    if (!r) {
        r = lru; /* a new tracker takes the least recently used slot */
        memset(r, 0, sizeof *r);
        snprintf(r->key, sizeof r->key, "%s", key);
    }
    r->last_used = now;
    if (r->blocked_until && now >= r->blocked_until) {
        r->blocked_until = 0; /* the block is over: a fresh window */
        r->hits = 0;
        r->window_start = 0;
    }
    if (r->blocked_until) {
        blocked = 1;
        reset_ms = r->blocked_until - now;
    } else {
        if (!r->hits || now - r->window_start >= RATE_WINDOW_MS) {
            r->window_start = now;
            r->hits = 0;
        }
        r->hits++;
        reset_ms = r->window_start + RATE_WINDOW_MS - now;
        if (r->hits > c->rate_limit) {
            r->blocked_until = now + RATE_BLOCK_MS;
            blocked = 1;
            reset_ms = RATE_BLOCK_MS;
        }
    }
    remaining = blocked ? 0 : c->rate_limit - r->hits;
    pthread_mutex_unlock(&c->mu);
    char name[32], h[64], v[32];
    snprintf(name, sizeof name, "%c%s", bucket[0] - ('a' <= bucket[0] && bucket[0] <= 'z' ? 32 : 0),
             bucket + 1);
    snprintf(h, sizeof h, "X-RateLimit-Limit-%s", name);
    snprintf(v, sizeof v, "%d", c->rate_limit);
    (void)cm_http_resp_header(resp, h, v);
    snprintf(h, sizeof h, "X-RateLimit-Remaining-%s", name);
    snprintf(v, sizeof v, "%d", remaining);
    (void)cm_http_resp_header(resp, h, v);
    snprintf(h, sizeof h, "X-RateLimit-Reset-%s", name);
    snprintf(v, sizeof v, "%lld", (long long)((reset_ms + 999) / 1000));
    (void)cm_http_resp_header(resp, h, v);
    if (blocked)
        answer_error(req, resp, 429, "ThrottlerException",
                     "Too many requests. Please try again later.");
    return blocked;
}

/* ---- POST /v2/bookings ------------------------------------------------------------ */

typedef struct {
    int64_t start_ms;
    const event_type_t *et;
    const json_t *attendee;
    const json_t *metadata; /* NULL: none sent */
} booking_req_t;

/* By the slug the event type has now (renamed ones by their new slug only). */
static const event_type_t *find_by_slug(sim_calcom_t *c, const char *slug, const char *team)
{
    const event_type_t *found = NULL;
    pthread_mutex_lock(&c->et_mu);
    for (size_t i = 0; !found && i < NEVENT_TYPES; i++)
        if (!c->et_now[i].deleted && strcmp(c->et_now[i].slug, slug) == 0 &&
            (!team || (event_types[i].team_id && strcmp(team, TEAM_SLUG) == 0)))
            found = &event_types[i];
    pthread_mutex_unlock(&c->et_mu);
    return found;
}

/* Checks the body; on failure writes the message Cal.com's validation would give. */
static int validate_booking(sim_calcom_t *c, const json_t *body, booking_req_t *b, char *msg,
                            size_t cap, int *not_found)
{
    const json_t *start = json_object_get(body, "start");
    const json_t *etid = json_object_get(body, "eventTypeId");
    const json_t *slug = json_object_get(body, "eventTypeSlug");
    const json_t *team = json_object_get(body, "teamSlug");
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
    if (!etid && json_is_string(slug)) {
        /* Team event types may be named by slug + teamSlug. */
        b->et = find_by_slug(c, json_string_value(slug), json_string_value(team));
        if (!b->et) {
            snprintf(msg, cap, "Event type with slug=%.60s not found", json_string_value(slug));
            *not_found = 1;
            return -1;
        }
    } else if (!json_is_integer(etid) || json_integer_value(etid) <= 0) {
        snprintf(msg, cap,
                 "eventTypeId must be a positive integer (or give eventTypeSlug and "
                 "teamSlug)");
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
    char tzerr[CM_ERR_LEN];
    sim_tz_t *tz = sim_tz_load(json_string_value(json_object_get(att, "timeZone")), tzerr);
    if (!tz) {
        snprintf(msg, cap, "attendee.timeZone must be a valid IANA time zone: %.100s", tzerr);
        return -1;
    }
    sim_tz_free(&tz);
    static const char *const optional[] = {"language", "phoneNumber"};
    for (size_t i = 0; i < 2; i++) {
        const json_t *f = json_object_get(att, optional[i]);
        if (f && !json_is_string(f)) {
            snprintf(msg, cap, "attendee.%s must be a string", optional[i]);
            return -1;
        }
    }
    /* isValidPhoneNumber (libphonenumber-js) in Cal.com; here the E.164 form: '+' and 8 to
     * 15 digits (stricter: national formats are refused). */
    const char *phone = json_string_value(json_object_get(att, "phoneNumber"));
    if (phone && *phone &&
        (phone[0] != '+' || strlen(phone) < 9 || strlen(phone) > 16 ||
         strspn(phone + 1, "0123456789") != strlen(phone + 1))) {
        snprintf(msg, cap, "Invalid phone number format. Please use international format.");
        return -1;
    }
    if (meta && !json_is_object(meta)) {
        snprintf(msg, cap, "metadata must be an object");
        return -1;
    }
    /* ValidateMetadata (CreateBookingInput_2024_08_13): at most 50 keys of at most 40
     * characters, string values of at most 500. */
    const char *mk;
    json_t *mv;
    int meta_ok = json_object_size(meta) <= 50;
    json_object_foreach((json_t *)meta, mk, mv)
    {
        if (strlen(mk) > 40 || (json_is_string(mv) && strlen(json_string_value(mv)) > 500))
            meta_ok = 0;
    }
    if (!meta_ok) {
        snprintf(msg, cap,
                 "Metadata must have at most 50 keys, each key up to 40 characters, and string "
                 "values up to 500 characters.");
        return -1;
    }
    if (etid) {
        b->et = find_event_type(c, json_integer_value(etid));
        if (!b->et) {
            snprintf(msg, cap, "Event type with id=%lld not found",
                     (long long)json_integer_value(etid));
            *not_found = 1;
            return -1;
        }
    }
    b->attendee = att;
    b->metadata = meta;
    return 0;
}

/* Builds the booking object as POST /v2/bookings (2024-08-13) answers it. Called under
 * the lock, because it takes the next id. */
static json_t *make_booking(sim_calcom_t *c, const booking_req_t *b, int host_id, int64_t now)
{
    char uid[UID_LEN + 1], s[25], e[25], created[25];
    const host_t *h = &hosts[host_id];
    const json_t *att = b->attendee;
    const char *name = json_string_value(json_object_get(att, "name"));
    const char *lang = json_string_value(json_object_get(att, "language"));
    const json_t *phone = json_object_get(att, "phoneNumber");
    size_t tcap = strlen(b->et->title) + strlen(h->name) + strlen(name) + 16;
    char *title = malloc(tcap);
    if (!title)
        return NULL;
    snprintf(title, tcap, "%s between %s and %s", b->et->title, h->name, name);
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
        b->et->slug, "attendees", attendee, "hosts", "id", h->id, "name", h->name, "email",
        h->email, "username", h->username, "timeZone", "UTC", "metadata", meta, "createdAt",
        cm_clock_iso8601(now, created));
    free(title);
    if (v)
        c->next_id++;
    return v;
}

/* Records v as a busy, listed booking. Under the lock. On error nothing is changed. */
static cm_err_t store_booking(sim_calcom_t *c, json_t *v, int host, int64_t start_ms,
                              int64_t end_ms)
{
    if (busy_add(&c->busy[host], start_ms, end_ms))
        return CM_ENOMEM;
    if (json_array_append(c->ledger, v)) {
        c->busy[host].n--;
        return CM_ENOMEM;
    }
    if (json_object_set(c->by_uid, json_string_value(json_object_get(v, "uid")), v)) {
        json_array_remove(c->ledger, json_array_size(c->ledger) - 1);
        c->busy[host].n--;
        return CM_ENOMEM;
    }
    return CM_OK;
}

static void answer_taken(const sim_calcom_t *c, const cm_http_req_t *req, cm_http_resp_t *resp,
                         const event_type_t *et)
{
    answer_error(req, resp, c->taken_status,
                 c->taken_status == 409 ? "ConflictException" : "BadRequestException",
                 et->team_id ? TEAM_TAKEN_MSG : SIM_CALCOM_TAKEN_MSG);
}

/* Books b now: check and insert in one critical section, which is what makes concurrent
 * requests for one slot end in exactly one booking. *answer is a copy of the booking. */
static sim_slot_state_t book_locked(sim_calcom_t *c, const booking_req_t *b, int64_t now,
                                    json_t **answer, cm_err_t *rc)
{
    int host = 0;
    int64_t len_ms = (int64_t)b->et->length_min * 60000;
    sim_slot_state_t st = slot_for(c, b->et, b->start_ms, now, &host);
    *answer = NULL;
    *rc = CM_OK;
    if (st == SIM_SLOT_FREE) {
        json_t *booking = make_booking(c, b, host, now);
        *rc = booking ? store_booking(c, booking, host, b->start_ms, b->start_ms + len_ms)
                      : CM_ENOMEM;
        if (!*rc)
            *answer = json_deep_copy(booking); /* the stored one stays private to the lock */
        json_decref(booking);
    }
    return st;
}

/* ---- the 2024-04-15 bookings controller ------------------------------------------------ */

/* A request body refused by class-validator (the global ValidationPipe's exceptionFactory
 * throws BadRequestException({errors})): message "Bad Request Exception", the failed
 * properties in details.errors. errors is taken. */
static void answer_validation(const cm_http_req_t *req, cm_http_resp_t *resp, json_t *errors)
{
    char ts[25];
    json_t *v = json_pack("{s:s,s:s,s:o,s:{s:s,s:s,s:{s:o}}}", "status", "error", "timestamp",
                          cm_clock_iso8601(cm_clock_now_ms(), ts), "path", sim_http_str(req->path),
                          "error", "code", "BadRequestException", "message",
                          "Bad Request Exception", "details", "errors", errors);
    cm_http_resp_json(resp, 400, v);
}

static void add_violation(json_t *errors, const char *property, const char *rule, const char *msg)
{
    json_array_append_new(
        errors, json_pack("{s:s,s:{s:s}}", "property", property, "constraints", rule, msg));
}

/* CreateBookingInput_2024_04_15 (apps/api/v2/src/ee/bookings/2024-04-15/inputs/
 * create-booking.input.ts): start string, eventTypeId number, timeZone an IANA zone,
 * language string, metadata object, responses {name, email} required; unknown properties
 * are stripped (whitelist), not refused. A 2024-08-13 body (attendee{...}, no timeZone,
 * language, metadata or responses at the top) fails here. Returns the violations (new). */
static json_t *old_violations(const json_t *body)
{
    json_t *e = json_array();
    const json_t *resp = json_object_get(body, "responses");
    char tzerr[CM_ERR_LEN];
    sim_tz_t *tz = NULL;
    int64_t ms;
    if (!json_is_string(json_object_get(body, "start")) ||
        cm_clock_parse_iso8601(cm_json_str(body, "start", ""), &ms) != 0)
        add_violation(e, "start", "isString", "start must be a string");
    if (!json_is_number(json_object_get(body, "eventTypeId")))
        add_violation(e, "eventTypeId", "isNumber",
                      "eventTypeId must be a number conforming to the specified constraints");
    if (!json_is_string(json_object_get(body, "timeZone")) ||
        !(tz = sim_tz_load(cm_json_str(body, "timeZone", ""), tzerr)))
        add_violation(e, "timeZone", "isTimeZone", "timeZone must be a valid IANA time-zone");
    sim_tz_free(&tz);
    if (!json_is_string(json_object_get(body, "language")))
        add_violation(e, "language", "isString", "language must be a string");
    if (!json_is_object(json_object_get(body, "metadata")))
        add_violation(e, "metadata", "isObject", "metadata must be an object");
    if (!json_is_object(resp))
        add_violation(e, "responses", "nestedValidation",
                      "nested property responses must be either object or array");
    else if (!json_is_string(json_object_get(resp, "name")) || !*cm_json_str(resp, "name", ""))
        add_violation(e, "responses.name", "validateBookingName",
                      "Name must be either a non-empty string or an object with non-empty "
                      "firstName and lastName");
    else if (!strchr(cm_json_str(resp, "email", ""), '@'))
        add_violation(e, "responses.email", "customValidation", "Invalid response email");
    return e;
}

/* A booking (as the ledger keeps it, the 2024-08-13 shape) as the 2024-04-15 controller
 * shows it: handleNewBooking's / getBookingInfo's fields, startTime/endTime and an
 * upper-case status. New; NULL when out of memory. */
static json_t *old_booking_json(const json_t *b)
{
    const json_t *att = json_array_get(json_object_get(b, "attendees"), 0);
    const json_t *host = json_array_get(json_object_get(b, "hosts"), 0);
    const char *st = cm_json_str(b, "status", "");
    return json_pack(
        "{s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:s,s:O,s:{s:{s:s,s:O},s:{s:s,s:O}},"
        "s:[{s:O,s:O,s:O,s:O}],s:{s:O,s:O,s:O,s:O,s:s},s:O}",
        "id", json_object_get(b, "id"), "uid", json_object_get(b, "uid"), "userId",
        json_object_get(host, "id"), "eventTypeId", json_object_get(b, "eventTypeId"), "title",
        json_object_get(b, "title"), "startTime", json_object_get(b, "start"), "endTime",
        json_object_get(b, "end"), "status", strcmp(st, "accepted") == 0 ? "ACCEPTED" : "CANCELLED",
        "metadata", json_object_get(b, "metadata"), "responses", "name", "label", "your_name",
        "value", json_object_get(att, "name"), "email", "label", "email_address", "value",
        json_object_get(att, "email"), "attendees", "name", json_object_get(att, "name"), "email",
        json_object_get(att, "email"), "timeZone", json_object_get(att, "timeZone"), "locale",
        json_object_get(att, "language"), "user", "id", json_object_get(host, "id"), "name",
        json_object_get(host, "name"), "email", json_object_get(host, "email"), "username",
        json_object_get(host, "username"), "timeZone", "UTC", "createdAt",
        json_object_get(b, "createdAt"));
}

/* POST /v2/bookings without cal-api-version 2024-08-13: BookingsController_2024_04_15. Its
 * POST has no auth guard. */
static void book_older(sim_calcom_t *c, const cm_http_req_t *req, cm_http_resp_t *resp)
{
    char msg[CM_ERR_LEN];
    json_t *body = NULL, *answer = NULL;
    cm_err_t rc;
    note_older(req, resp);
    if (sim_http_json_object(req, 0, &body, msg) != CM_OK) {
        answer_bad_request(req, resp, msg);
        return;
    }
    json_t *errors = old_violations(body);
    if (json_array_size(errors)) {
        answer_validation(req, resp, errors);
        json_decref(body);
        return;
    }
    json_decref(errors);
    booking_req_t b = {
        .et = find_event_type(c, json_integer_value(json_object_get(body, "eventTypeId"))),
        .metadata = json_object_get(body, "metadata")};
    (void)cm_clock_parse_iso8601(cm_json_str(body, "start", ""), &b.start_ms);
    const json_t *r = json_object_get(body, "responses");
    json_t *att =
        json_pack("{s:O,s:O,s:O,s:O}", "name", json_object_get(r, "name"), "email",
                  json_object_get(r, "email"), "timeZone", json_object_get(body, "timeZone"),
                  "language", json_object_get(body, "language"));
    b.attendee = att;
    if (!b.et) {
        snprintf(msg, sizeof msg, "Event type with id=%lld not found",
                 (long long)json_integer_value(json_object_get(body, "eventTypeId")));
        answer_error(req, resp, 404, "NotFoundException", msg);
        json_decref(att);
        json_decref(body);
        return;
    }
    pthread_mutex_lock(&c->mu);
    sim_slot_state_t st = att ? book_locked(c, &b, cm_clock_now_ms(), &answer, &rc) : SIM_SLOT_FREE;
    if (answer) {
        sim_journal_effect(c->journal, "calcom", "booking", cm_json_str(answer, "uid", ""), NULL,
                           cm_log_cid(), NULL);
        queue_hook(c, "BOOKING_CREATED", answer);
    }
    pthread_mutex_unlock(&c->mu);
    if (st == SIM_SLOT_PAST)
        answer_bad_request(req, resp, "Attempting to book a meeting in the past.");
    else if (st != SIM_SLOT_FREE)
        answer_taken(c, req, resp, b.et);
    else if (!answer)
        cm_http_resp_json(resp, 500, NULL);
    else
        answer_success(resp, 201, old_booking_json(answer));
    json_decref(answer);
    json_decref(att);
    json_decref(body);
}

static void h_book(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_calcom_t *c = ud;
    char msg[CM_ERR_LEN];
    json_t *body = NULL, *answer = NULL;
    booking_req_t b;
    int not_found;
    cm_err_t rc;
    /* The throttler is a global guard: it counts before any controller guard. POST
     * /v2/bookings has its own throttler, "create-booking" (custom-throttler.e2e-spec.ts). */
    if (rate_limited(c, req, resp, "create-booking"))
        return;
    if (!version_is(req, BOOKINGS_VERSION)) {
        book_older(c, req, resp);
        return;
    }
    if (!optional_auth(c, req, resp))
        return;
    if (sim_http_json_object(req, 0, &body, msg) != CM_OK) {
        answer_bad_request(req, resp, msg);
        return;
    }
    if (validate_booking(c, body, &b, msg, sizeof msg, &not_found) != 0) {
        if (not_found)
            answer_error(req, resp, 404, "NotFoundException", msg);
        else
            answer_bad_request(req, resp, msg);
        json_decref(body);
        return;
    }
    pthread_mutex_lock(&c->mu);
    sim_slot_state_t st = book_locked(c, &b, cm_clock_now_ms(), &answer, &rc);
    if (answer) {
        sim_journal_effect(c->journal, "calcom", "booking", cm_json_str(answer, "uid", ""), NULL,
                           cm_log_cid(), NULL);
        queue_hook(c, "BOOKING_CREATED", answer);
    }
    pthread_mutex_unlock(&c->mu);

    if (st == SIM_SLOT_PAST) {
        answer_bad_request(req, resp, "Attempting to book a meeting in the past.");
    } else if (st != SIM_SLOT_FREE) {
        answer_taken(c, req, resp, b.et);
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

/* ---- GET /v2/bookings/{uid}, GET /v2/bookings -------------------------------------------- */

static void answer_no_booking(const cm_http_req_t *req, cm_http_resp_t *resp, const char *uid)
{
    char msg[160];
    snprintf(msg, sizeof msg, "Booking with uid=%.100s was not found in the database", uid);
    answer_error(req, resp, 404, "NotFoundException", msg);
}

static void h_get_booking(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_calcom_t *c = ud;
    const char *uid = cm_http_req_param(req, "uid");
    int older = !version_is(req, BOOKINGS_VERSION);
    /* 2024-08-13: OptionalApiAuthGuard; 2024-04-15: no guard at all. */
    if (rate_limited(c, req, resp, "default") || (!older && !optional_auth(c, req, resp)))
        return;
    if (older)
        note_older(req, resp);
    pthread_mutex_lock(&c->mu);
    json_t *v = json_object_get(c->by_uid, uid);
    json_t *copy = v ? (older ? old_booking_json(v) : json_deep_copy(v)) : NULL;
    pthread_mutex_unlock(&c->mu);
    if (!v && older) {
        char msg[160];
        snprintf(msg, sizeof msg, "Booking with UID=%.100s does not exist.", uid);
        answer_error(req, resp, 404, "NotFoundException", msg);
        return;
    }
    if (!v) {
        answer_no_booking(req, resp, uid);
        return;
    }
    answer_success(resp, 200, copy);
}

static int list_filter(const json_t *b, const char *status, const char *email, int64_t etid,
                       int64_t after, int64_t before, int64_t now)
{
    int64_t start = 0, end = 0;
    (void)cm_clock_parse_iso8601(cm_json_str(b, "start", ""), &start);
    (void)cm_clock_parse_iso8601(cm_json_str(b, "end", ""), &end);
    const char *st = cm_json_str(b, "status", "");
    if (status) {
        /* A comma-separated list of upcoming, past, cancelled, unconfirmed, recurring. */
        int ok = 0;
        char buf[128];
        snprintf(buf, sizeof buf, "%s", status);
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (strcmp(t, "cancelled") == 0)
                ok |= strcmp(st, "cancelled") == 0;
            else if (strcmp(t, "upcoming") == 0)
                ok |= strcmp(st, "accepted") == 0 && end > now;
            else if (strcmp(t, "past") == 0)
                ok |= strcmp(st, "accepted") == 0 && end <= now;
        }
        if (!ok)
            return 0;
    }
    if (email && strcasecmp(email, cm_json_str(b, "attendees.0.email", "")) != 0)
        return 0;
    if (etid && cm_json_int(b, "eventTypeId", 0) != etid)
        return 0;
    if (after && start < after)
        return 0;
    if (before && end > before)
        return 0;
    return 1;
}

/* GET /v2/bookings of the 2024-04-15 controller: filters[status] (upcoming by default),
 * limit (10) and cursor; every 2024-08-13 filter (attendeeEmail, afterStart, ...) is
 * stripped by the ValidationPipe's whitelist, so it filters nothing. */
static void list_older(sim_calcom_t *c, const cm_http_req_t *req, cm_http_resp_t *resp)
{
    const char *status = cm_http_req_query(req, "filters[status]");
    const char *ql = cm_http_req_query(req, "limit"), *qc = cm_http_req_query(req, "cursor");
    int64_t limit = 10, cursor = 0;
    note_older(req, resp);
    if (status && strcmp(status, "upcoming") && strcmp(status, "recurring") &&
        strcmp(status, "past") && strcmp(status, "cancelled") && strcmp(status, "unconfirmed")) {
        answer_bad_request(req, resp,
                           "filters.status must be one of the following values: "
                           "upcoming, recurring, past, cancelled, unconfirmed");
        return;
    }
    if ((ql && parse_id(ql, &limit)) || (qc && strcmp(qc, "0") && parse_id(qc, &cursor)) ||
        cursor > MAX_SKIP || limit > 250) {
        answer_bad_request(req, resp, "limit and cursor must be numbers");
        return;
    }
    int64_t now = cm_clock_now_ms();
    json_t *list = json_array();
    size_t total = 0, i;
    json_t *v;
    pthread_mutex_lock(&c->mu);
    json_array_foreach(c->ledger, i, v)
    {
        if (!list_filter(v, status ? status : "upcoming", NULL, 0, 0, 0, now))
            continue;
        if (total >= (size_t)cursor && json_array_size(list) < (size_t)limit)
            json_array_append_new(list, old_booking_json(v));
        total++;
    }
    pthread_mutex_unlock(&c->mu);
    json_t *next = total > (size_t)(cursor + limit) ? json_integer(cursor + limit) : json_null();
    answer_success(resp, 200,
                   json_pack("{s:o,s:[],s:I,s:o}", "bookings", list, "recurringInfo", "totalCount",
                             (json_int_t)total, "nextCursor", next));
}

static void h_list_bookings(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_calcom_t *c = ud;
    /* Both versions: ApiAuthGuard, a key is required. */
    if (rate_limited(c, req, resp, "default") || !authorised(c, req, resp))
        return;
    if (!version_is(req, BOOKINGS_VERSION)) {
        list_older(c, req, resp);
        return;
    }
    const char *status = cm_http_req_query(req, "status");
    const char *email = cm_http_req_query(req, "attendeeEmail");
    const char *qet = cm_http_req_query(req, "eventTypeId");
    const char *qa = cm_http_req_query(req, "afterStart");
    const char *qb = cm_http_req_query(req, "beforeEnd");
    const char *qt = cm_http_req_query(req, "take");
    const char *qs = cm_http_req_query(req, "skip");
    int64_t etid = 0, after = 0, before = 0, take = 100, skip = 0;
    if (status) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s", status);
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (strcmp(t, "upcoming") && strcmp(t, "past") && strcmp(t, "cancelled") &&
                strcmp(t, "unconfirmed") && strcmp(t, "recurring")) {
                answer_bad_request(req, resp,
                                   "status must be one of upcoming, recurring, past, cancelled, "
                                   "unconfirmed");
                return;
            }
        }
    }
    if ((qet && parse_id(qet, &etid)) || (qa && parse_bound(qa, 0, &after)) ||
        (qb && parse_bound(qb, 1, &before)) || (qt && (parse_id(qt, &take) || take > 250)) ||
        (qs && strcmp(qs, "0") != 0 && (parse_id(qs, &skip) || skip > MAX_SKIP))) {
        answer_bad_request(req, resp,
                           "eventTypeId, take (1..250) and skip (0..1000000000) must be integers; "
                           "afterStart and beforeEnd ISO 8601 dates");
        return;
    }
    int64_t now = cm_clock_now_ms();
    json_t *all = json_array(), *page = json_array();
    pthread_mutex_lock(&c->mu);
    size_t i;
    json_t *v;
    json_array_foreach(c->ledger, i, v)
    {
        if (list_filter(v, status, email, etid, after, before, now))
            json_array_append_new(all, json_deep_copy(v));
    }
    pthread_mutex_unlock(&c->mu);
    size_t total = json_array_size(all);
    for (size_t k = (size_t)skip; k < total && json_array_size(page) < (size_t)take; k++)
        json_array_append(page, json_array_get(all, k));
    size_t returned = json_array_size(page);
    size_t remaining = total > (size_t)skip + returned ? total - (size_t)skip - returned : 0;
    json_int_t pages = take ? (json_int_t)((total + (size_t)take - 1) / (size_t)take) : 0;
    json_t *answer =
        json_pack("{s:s,s:o,s:{s:I,s:I,s:I,s:I,s:I,s:I,s:b,s:b}}", "status", "success", "data",
                  page, "pagination", "totalItems", (json_int_t)total, "remainingItems",
                  (json_int_t)remaining, "returnedItems", (json_int_t)returned, "itemsPerPage",
                  (json_int_t)take, "currentPage", (json_int_t)(take ? skip / take + 1 : 1),
                  "totalPages", pages, "hasNextPage", remaining > 0, "hasPreviousPage", skip > 0);
    json_decref(all);
    cm_http_resp_json(resp, 200, answer);
}

/* ---- cancel and reschedule ------------------------------------------------------------ */

/* Frees the slot of booking v (accepted) and marks it cancelled. Under the lock. */
static void cancel_locked(sim_calcom_t *c, json_t *v)
{
    int64_t start = 0, end = 0;
    (void)cm_clock_parse_iso8601(cm_json_str(v, "start", ""), &start);
    (void)cm_clock_parse_iso8601(cm_json_str(v, "end", ""), &end);
    int host = (int)cm_json_int(v, "hosts.0.id", 0);
    if (host >= 1 && host <= NHOSTS)
        busy_remove(&c->busy[host], start, end);
    json_object_set_new(v, "status", json_string("cancelled"));
}

static void h_cancel(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_calcom_t *c = ud;
    const char *uid = cm_http_req_param(req, "uid");
    char msg[CM_ERR_LEN];
    json_t *body = NULL, *answer = NULL;
    int older = !version_is(req, BOOKINGS_VERSION);
    if (rate_limited(c, req, resp, "default") || (!older && !optional_auth(c, req, resp)))
        return;
    if (older)
        note_older(req, resp);
    if (sim_http_json_object(req, 1, &body, msg) != CM_OK) {
        answer_bad_request(req, resp, msg);
        return;
    }
    const json_t *reason = json_object_get(body, "cancellationReason");
    if (reason && !json_is_string(reason)) {
        json_decref(body);
        answer_bad_request(req, resp, "cancellationReason must be a string");
        return;
    }
    int state = 0; /* 0 missing, 1 done, 2 already cancelled */
    pthread_mutex_lock(&c->mu);
    json_t *v = json_object_get(c->by_uid, uid);
    if (v && strcmp(cm_json_str(v, "status", ""), "cancelled") == 0) {
        state = 2;
    } else if (v) {
        state = 1;
        cancel_locked(c, v);
        json_object_set_new(v, "cancellationReason",
                            reason ? json_copy((json_t *)reason) : json_null());
        answer = json_deep_copy(v);
        sim_journal_effect(c->journal, "calcom", "cancellation", uid, NULL, cm_log_cid(), NULL);
        queue_hook(c, "BOOKING_CANCELLED", v);
    }
    pthread_mutex_unlock(&c->mu);
    json_decref(body);
    if (older && state == 0) {
        snprintf(msg, sizeof msg, "Booking with UID=%.100s does not exist.", uid);
        answer_error(req, resp, 404, "NotFoundException", msg);
    } else if (older && state == 2) {
        snprintf(msg, sizeof msg,
                 "Can't cancel booking with uid=%.100s because it has been cancelled already. "
                 "Please provide uid of a booking that is not cancelled.",
                 uid);
        answer_bad_request(req, resp, msg);
    } else if (older) {
        /* The 2024-04-15 controller answers with ids only. */
        answer_success(resp, 200,
                       json_pack("{s:O,s:s,s:b}", "bookingId", json_object_get(answer, "id"),
                                 "bookingUid", uid, "onlyRemovedAttendee", 0));
        json_decref(answer);
    } else if (state == 0) {
        answer_no_booking(req, resp, uid);
    } else if (state == 2) {
        answer_bad_request(req, resp, "This booking has already been cancelled.");
    } else {
        answer_success(resp, 200, answer);
    }
}

static void h_reschedule(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_calcom_t *c = ud;
    const char *uid = cm_http_req_param(req, "uid");
    char msg[CM_ERR_LEN];
    json_t *body = NULL, *answer = NULL;
    /* Only the 2024-08-13 controller has POST /{uid}/reschedule. */
    if (!version_is(req, BOOKINGS_VERSION)) {
        answer_no_route(req, resp);
        return;
    }
    if (rate_limited(c, req, resp, "default") || !optional_auth(c, req, resp))
        return;
    if (sim_http_json_object(req, 0, &body, msg) != CM_OK) {
        answer_bad_request(req, resp, msg);
        return;
    }
    const json_t *start = json_object_get(body, "start");
    const json_t *reason = json_object_get(body, "reschedulingReason");
    booking_req_t b = {0};
    if (!json_is_string(start) || cm_clock_parse_iso8601(json_string_value(start), &b.start_ms)) {
        json_decref(body);
        answer_bad_request(req, resp, "start must be a valid ISO 8601 date-time string (UTC)");
        return;
    }
    if (reason && !json_is_string(reason)) {
        json_decref(body);
        answer_bad_request(req, resp, "reschedulingReason must be a string");
        return;
    }
    int state = 0; /* 0 missing, 1 booked, 2 cancelled, 3 slot not free */
    sim_slot_state_t st = SIM_SLOT_FREE;
    cm_err_t rc = CM_OK;
    pthread_mutex_lock(&c->mu);
    json_t *old = json_object_get(c->by_uid, uid);
    if (old && strcmp(cm_json_str(old, "status", ""), "cancelled") == 0) {
        state = 2;
    } else if (old) {
        b.et = find_event_type(c, cm_json_int(old, "eventTypeId", 0));
        b.attendee = json_array_get(json_object_get(old, "attendees"), 0);
        b.metadata = json_object_get(old, "metadata");
        /* The old slot is let go first, so a booking can move within its own time. */
        int64_t os = 0, oe = 0;
        (void)cm_clock_parse_iso8601(cm_json_str(old, "start", ""), &os);
        (void)cm_clock_parse_iso8601(cm_json_str(old, "end", ""), &oe);
        int oh = (int)cm_json_int(old, "hosts.0.id", 1);
        busy_remove(&c->busy[oh], os, oe);
        st = b.et ? book_locked(c, &b, cm_clock_now_ms(), &answer, &rc) : SIM_SLOT_OFF_GRID;
        if (!answer) {
            if (busy_add(&c->busy[oh], os, oe))
                CM_WARN(COMP, "could not restore the busy time of %s", uid);
            state = 3;
        } else {
            state = 1;
            const char *nuid = cm_json_str(answer, "uid", "");
            json_object_set_new(old, "status", json_string("cancelled"));
            json_object_set_new(old, "rescheduled", json_true());
            json_object_set_new(old, "rescheduledToUid", json_string(nuid));
            if (reason)
                json_object_set(old, "reschedulingReason", (json_t *)reason);
            json_object_set_new(answer, "rescheduledFromUid", json_string(uid));
            json_t *stored = json_object_get(c->by_uid, nuid);
            json_object_set_new(stored, "rescheduledFromUid", json_string(uid));
            json_t *detail = json_pack("{s:s}", "from_uid", uid); /* borrowed by the journal */
            sim_journal_effect(c->journal, "calcom", "reschedule", nuid, NULL, cm_log_cid(),
                               detail);
            json_decref(detail);
            queue_hook(c, "BOOKING_RESCHEDULED", stored);
        }
    }
    pthread_mutex_unlock(&c->mu);
    json_decref(body);
    if (state == 0)
        answer_no_booking(req, resp, uid);
    else if (state == 2)
        answer_bad_request(req, resp, "Cannot reschedule a cancelled booking.");
    else if (state == 3 && st == SIM_SLOT_PAST)
        answer_bad_request(req, resp, "Attempting to book a meeting in the past.");
    else if (state == 3 && !rc)
        answer_taken(c, req, resp, b.et ? b.et : &event_types[0]);
    else if (state == 3)
        cm_http_resp_json(resp, 500, NULL);
    else
        answer_success(resp, 201, answer);
}

/* ---- event types ------------------------------------------------------------------------ */

/* The event type as the account has it now (slug and title may have been changed).
 * Under et_mu. */
static json_t *event_type_json(const sim_calcom_t *c, size_t i)
{
    const event_type_t *et = &event_types[i];
    json_t *hl = json_array();
    for (size_t h = 0; hl && h < NHOSTS && et->host_ids[h]; h++) {
        const host_t *ho = &hosts[et->host_ids[h]];
        json_array_append_new(hl, json_pack("{s:i,s:s,s:s}", "userId", ho->id, "name", ho->name,
                                            "username", ho->username));
    }
    json_t *v = json_pack("{s:i,s:s,s:s,s:i,s:o}", "id", et->id, "slug", c->et_now[i].slug, "title",
                          c->et_now[i].title, "lengthInMinutes", et->length_min, "hosts",
                          hl ? hl : json_array());
    if (v && et->team_id) {
        json_object_set_new(v, "teamId", json_integer(et->team_id));
        json_object_set_new(v, "schedulingType", json_string(et->scheduling));
    } else if (v) {
        json_object_set_new(v, "ownerId", json_integer(1));
        json_object_set_new(v, "schedulingType", json_null());
    }
    return v;
}

/* team 0: the personal event types of host 1; otherwise that team's. */
static void list_event_types(sim_calcom_t *c, cm_http_resp_t *resp, int team)
{
    json_t *list = json_array();
    pthread_mutex_lock(&c->et_mu);
    for (size_t i = 0; list && i < NEVENT_TYPES; i++)
        if (event_types[i].team_id == team && !c->et_now[i].deleted)
            json_array_append_new(list, event_type_json(c, i));
    pthread_mutex_unlock(&c->et_mu);
    answer_success(resp, 200, list);
}

/* GET /v2/event-types of EventTypesController_2024_04_15 (versions 2024-04-15, 2024-06-11,
 * and a missing or unknown one): getEventTypesByViewer's {eventTypeGroups, profiles}. */
static void event_types_older(sim_calcom_t *c, const cm_http_req_t *req, cm_http_resp_t *resp)
{
    json_t *list = json_array();
    note_older(req, resp);
    pthread_mutex_lock(&c->et_mu);
    for (size_t i = 0; list && i < NEVENT_TYPES; i++)
        if (!event_types[i].team_id && !c->et_now[i].deleted)
            json_array_append_new(list,
                                  json_pack("{s:i,s:s,s:s,s:i}", "id", event_types[i].id, "slug",
                                            c->et_now[i].slug, "title", c->et_now[i].title,
                                            "length", event_types[i].length_min));
    pthread_mutex_unlock(&c->et_mu);
    answer_success(resp, 200,
                   json_pack("{s:[{s:o,s:{s:s,s:s}}],s:[]}", "eventTypeGroups", "eventTypes",
                             list ? list : json_array(), "profile", "name", hosts[1].name, "slug",
                             hosts[1].username, "profiles"));
}

/* 2024-08-13 and 2024-09-04 name no event-types controller: NestJS's 404. Then the
 * throttler and the key, as for every event-types route. 1 when the request may go on. */
static int event_types_guard(sim_calcom_t *c, const cm_http_req_t *req, cm_http_resp_t *resp)
{
    const char *v = cm_http_req_header(req, "cal-api-version");
    if (v && (!strcmp(v, BOOKINGS_VERSION) || !strcmp(v, SLOTS_VERSION))) {
        answer_no_route(req, resp);
        return 0;
    }
    return !rate_limited(c, req, resp, "default") && authorised(c, req, resp);
}

static void h_event_types(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_calcom_t *c = ud;
    if (!event_types_guard(c, req, resp))
        return;
    if (!version_is(req, EVENT_TYPES_VERSION))
        event_types_older(c, req, resp);
    else
        list_event_types(c, resp, 0);
}

/* The index of the personal event type {eventTypeId} names, or -1 after answering 404
 * (a deleted one, a team one: the user's routes do not reach team event types). */
static int own_event_type(sim_calcom_t *c, const cm_http_req_t *req, cm_http_resp_t *resp)
{
    int64_t id;
    if (parse_id(cm_http_req_param(req, "eventTypeId"), &id) == 0)
        for (size_t i = 0; i < NEVENT_TYPES; i++)
            if (event_types[i].id == id && !event_types[i].team_id && !c->et_now[i].deleted)
                return (int)i;
    answer_error(req, resp, 404, "NotFoundException", "Event type not found");
    return -1;
}

/* PATCH /v2/event-types/{eventTypeId}: a person renames an event type (title, slug). Only
 * those two fields are simulated; any other is refused rather than silently ignored. */
static void h_patch_event_type(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_calcom_t *c = ud;
    json_t *body = NULL;
    char msg[CM_ERR_LEN];
    if (!event_types_guard(c, req, resp))
        return;
    if (sim_http_json_object(req, 0, &body, msg) != CM_OK) {
        answer_bad_request(req, resp, msg);
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        if ((strcmp(k, "title") && strcmp(k, "slug")) || !json_is_string(v) ||
            !json_string_length(v) || json_string_length(v) >= 64) {
            snprintf(msg, sizeof msg, "%.40s: only title and slug (1-63 characters) are simulated",
                     k);
            answer_bad_request(req, resp, msg);
            json_decref(body);
            return;
        }
    }
    pthread_mutex_lock(&c->et_mu);
    int i = own_event_type(c, req, resp);
    if (i >= 0) {
        const char *t = cm_json_str(body, "title", NULL), *sl = cm_json_str(body, "slug", NULL);
        if (t)
            snprintf(c->et_now[i].title, sizeof c->et_now[i].title, "%s", t);
        if (sl)
            snprintf(c->et_now[i].slug, sizeof c->et_now[i].slug, "%s", sl);
        answer_success(resp, 200, event_type_json(c, (size_t)i));
    }
    pthread_mutex_unlock(&c->et_mu);
    json_decref(body);
}

/* DELETE /v2/event-types/{eventTypeId}: answers what was deleted; slots and bookings of
 * it then answer 404, as for an id that never existed. */
static void h_delete_event_type(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_calcom_t *c = ud;
    if (!event_types_guard(c, req, resp))
        return;
    pthread_mutex_lock(&c->et_mu);
    int i = own_event_type(c, req, resp);
    if (i >= 0) {
        c->et_now[i].deleted = 1;
        answer_success(resp, 200,
                       json_pack("{s:i,s:i,s:s,s:s}", "id", event_types[i].id, "lengthInMinutes",
                                 event_types[i].length_min, "title", c->et_now[i].title, "slug",
                                 c->et_now[i].slug));
    }
    pthread_mutex_unlock(&c->et_mu);
}

static void h_team_event_types(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_calcom_t *c = ud;
    int64_t team;
    /* The teams' event-types controller serves every version alike. */
    if (rate_limited(c, req, resp, "default") || !authorised(c, req, resp))
        return;
    if (parse_id(cm_http_req_param(req, "teamId"), &team) != 0 || team != TEAM_ID) {
        answer_error(req, resp, 404, "NotFoundException", "Team not found");
        return;
    }
    list_event_types(c, resp, (int)team);
}

cm_err_t sim_calcom_routes(sim_calcom_t *c, cm_http_server_t *srv)
{
    static const struct {
        const char *pattern;
        cm_http_handler_fn fn;
    } routes[] = {
        {"GET /v2/slots", h_slots},
        {"GET /v2/slots/available", h_slots_available},
        {"POST /v2/bookings", h_book},
        {"GET /v2/bookings", h_list_bookings},
        {"GET /v2/bookings/{uid}", h_get_booking},
        {"POST /v2/bookings/{uid}/cancel", h_cancel},
        {"POST /v2/bookings/{uid}/reschedule", h_reschedule},
        {"GET /v2/event-types", h_event_types},
        {"PATCH /v2/event-types/{eventTypeId}", h_patch_event_type},
        {"DELETE /v2/event-types/{eventTypeId}", h_delete_event_type},
        {"GET /v2/teams/{teamId}/event-types", h_team_event_types},
    };
    cm_err_t rc = CM_OK;
    for (size_t i = 0; !rc && i < sizeof routes / sizeof routes[0]; i++)
        rc = cm_http_server_route(srv, routes[i].pattern, routes[i].fn, c);
    return rc;
}
