/* sim_fault.c - fault rules: parsing with located errors, the seeded decision, and the
 * server hooks that apply latency, answers and socket faults. */
#include "sim_fault.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "cm_clock.h"
#include "cm_json.h"
#include "cm_duration.h"
#include "cm_log.h"
#include "cm_rand.h"
#include "sim_form.h"
#include "sim_http.h"
#include "sim_setting.h"

#define COMP "sim.fault"
#define MAX_BINDINGS 8
#define GARBAGE_DEFAULT "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all \xff\xfe\r\n"

typedef struct {
    int64_t times;    /* 0: for ever */
    int64_t lat_kind; /* 0 none, 1 fixed, 2 uniform, 3 lognormal */
    double lat_a, lat_b;
    sim_fault_kind_t kind;
    int after;
    int status;
    json_t *headers;
    char *body;
    size_t body_len;
    char *content_type;
    int ra_kind; /* 0 none, 1 seconds, 2 date in N seconds, 3 verbatim */
    int64_t ra_val;
    char *ra_text;
    int64_t hang_max_ms;
    char *garbage;
    size_t garbage_len;
    int64_t truncate_at;
    int64_t chunk_bytes;
    int64_t interval_ms;
    char desc[96];
} step_t;

typedef struct {
    int64_t id;
    char *provider;        /* NULL: any */
    char *route;           /* NULL: any */
    json_t *match;         /* object dotted-path -> value, NULL: none */
    json_t *match_headers; /* object header name -> exact value, NULL: none */
    double probability;
    int64_t from_ms, until_ms; /* window relative to creation; until -1: open */
    int64_t created_mono_ms;
    step_t steps[SIM_FAULT_MAX_STEPS];
    size_t nsteps;
    json_t *spec; /* the rule as given, for listing */
    int64_t matched, hits;
    int exhausted;
} rule_t;

typedef struct {
    sim_fault_t *engine;
    char provider[16];
} binding_t;

struct sim_fault {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled at shutdown */
    int stopping;
    sim_journal_t *journal;
    /* guarded by mu */
    cm_rand_t gen;
    rule_t *rules[SIM_FAULT_MAX_RULES];
    size_t nrules;
    int64_t next_id;
    binding_t bindings[MAX_BINDINGS];
    size_t nbindings;
};

/* ---- lifetime ---------------------------------------------------------------------- */

sim_fault_t *sim_fault_new(const sim_fault_cfg_t *cfg)
{
    sim_fault_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    pthread_mutex_init(&f->mu, NULL);
    cm_clock_cond_init(&f->cv);
    /* Its own stream: the faults drawn do not depend on how many ids were handed out. */
    cm_rand_seed(&f->gen, cfg->seed ^ 0x6661756c74ULL);
    f->journal = cfg->journal;
    f->next_id = 1;
    return f;
}

static void step_clear(step_t *s)
{
    json_decref(s->headers);
    free(s->body);
    free(s->content_type);
    free(s->ra_text);
    free(s->garbage);
    memset(s, 0, sizeof *s);
}

static void rule_free(rule_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nsteps; i++)
        step_clear(&r->steps[i]);
    free(r->provider);
    free(r->route);
    json_decref(r->match);
    json_decref(r->match_headers);
    json_decref(r->spec);
    free(r);
}

void sim_fault_free(sim_fault_t **fp)
{
    sim_fault_t *f = fp ? *fp : NULL;
    if (!f)
        return;
    for (size_t i = 0; i < f->nrules; i++)
        rule_free(f->rules[i]);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
    *fp = NULL;
}

void sim_fault_shutdown(sim_fault_t *f)
{
    pthread_mutex_lock(&f->mu);
    f->stopping = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* Waits ms unless the engine stops first. Returns 1 when it stopped. This sleep is the
 * fault itself (latency, a slow body), not a wait for something to happen. */
static int wait_ms(sim_fault_t *f, int64_t ms)
{
    struct timespec ts = cm_clock_mono_deadline(ms);
    pthread_mutex_lock(&f->mu);
    while (!f->stopping && pthread_cond_timedwait(&f->cv, &f->mu, &ts) != ETIMEDOUT)
        ;
    int stopped = f->stopping;
    pthread_mutex_unlock(&f->mu);
    return stopped;
}

/* ---- parsing ----------------------------------------------------------------------- */

int64_t sim_fault_duration_ms(const json_t *v)
{
    if (json_is_integer(v)) {
        /* The old form, kept for one release: a scenario written for it still runs, and the
         * log says how to write it now. */
        json_int_t n = json_integer_value(v);
        if (n < 0 || n > SIM_FAULT_BARE_MS_MAX)
            return -1;
        sim_setting_deprecated(&(sim_setting_warn_t){.comp = COMP},
                               "a duration as a bare number (%lld) is deprecated: write \"%lldms\"",
                               (long long)n, (long long)n);
        return n;
    }
    int64_t ms;
    if (!json_is_string(v) || cm_duration_parse(json_string_value(v), 0, &ms, NULL) != CM_OK)
        return -1;
    return ms;
}

static const char *const socket_names[] = {
    [SIM_FAULT_RESET] = "reset",         [SIM_FAULT_CLOSE] = "close",
    [SIM_FAULT_HANG] = "hang",           [SIM_FAULT_GARBAGE] = "garbage",
    [SIM_FAULT_TRUNCATE] = "truncate",   [SIM_FAULT_MALFORMED_CHUNK] = "malformed_chunk",
    [SIM_FAULT_SLOW_BODY] = "slow_body",
};

static int socket_kind(const char *name)
{
    if (strcmp(name, "empty") == 0)
        return SIM_FAULT_CLOSE; /* "empty response" is a close without answering */
    for (int k = SIM_FAULT_RESET; k <= SIM_FAULT_SLOW_BODY; k++)
        if (strcmp(name, socket_names[k]) == 0)
            return k;
    return -1;
}

/* Formats "$.a.b" / "$.sequence[1]" paths into err. */
#define PERR(...)                                                                                  \
    do {                                                                                           \
        char _m[2 * CM_ERR_LEN];                                                                   \
        snprintf(_m, sizeof _m, __VA_ARGS__);                                                      \
        cm_errf(err, "%s.%s", at, _m);                                                             \
        return -1;                                                                                 \
    } while (0)

static int duration_field(const json_t *obj, const char *name, const char *at, int64_t def,
                          int64_t limit, int64_t *out, char *err)
{
    const json_t *v = json_object_get(obj, name);
    if (!v) {
        *out = def;
        return 0;
    }
    int64_t ms = sim_fault_duration_ms(v);
    if (ms < 0)
        PERR("%s: must be a duration like \"250ms\", \"1.5s\", \"2m\", \"1h\"", name);
    if (limit > 0 && ms > limit)
        PERR("%s: must be at most %lld ms", name, (long long)limit);
    *out = ms;
    return 0;
}

static int parse_latency(const json_t *v, step_t *s, const char *at, char *err)
{
    int64_t a, b;
    if (!json_is_object(v)) {
        a = sim_fault_duration_ms(v);
        if (a < 0 || a > SIM_FAULT_LATENCY_LIMIT_MS)
            PERR("latency: must be a duration (\"250ms\", \"1.5s\") of at most %d ms, or an "
                 "object with one of fixed, uniform, lognormal",
                 SIM_FAULT_LATENCY_LIMIT_MS);
        s->lat_kind = 1;
        s->lat_a = (double)a;
        return 0;
    }
    const json_t *fx = json_object_get(v, "fixed");
    const json_t *un = json_object_get(v, "uniform");
    const json_t *ln = json_object_get(v, "lognormal");
    if (json_object_size(v) != 1 || (!fx && !un && !ln))
        PERR("latency: must have exactly one of fixed, uniform, lognormal");
    if (fx) {
        a = sim_fault_duration_ms(fx);
        if (a < 0 || a > SIM_FAULT_LATENCY_LIMIT_MS)
            PERR("latency.fixed: must be a duration of at most %d ms", SIM_FAULT_LATENCY_LIMIT_MS);
        s->lat_kind = 1;
        s->lat_a = (double)a;
    } else if (un) {
        if (!json_is_array(un) || json_array_size(un) != 2)
            PERR("latency.uniform: must be [min, max] durations");
        a = sim_fault_duration_ms(json_array_get(un, 0));
        b = sim_fault_duration_ms(json_array_get(un, 1));
        if (a < 0 || b < a || b > SIM_FAULT_LATENCY_LIMIT_MS)
            PERR("latency.uniform: must be [min, max] durations with min <= max <= %d ms",
                 SIM_FAULT_LATENCY_LIMIT_MS);
        s->lat_kind = 2;
        s->lat_a = (double)a;
        s->lat_b = (double)b;
    } else {
        const json_t *med = json_object_get(ln, "median");
        const json_t *sig = json_object_get(ln, "sigma");
        a = med ? sim_fault_duration_ms(med) : -1;
        if (!json_is_object(ln) || a <= 0 || a > SIM_FAULT_LATENCY_LIMIT_MS)
            PERR("latency.lognormal.median: must be a positive duration of at most %d ms",
                 SIM_FAULT_LATENCY_LIMIT_MS);
        if (!json_is_number(sig) || json_number_value(sig) < 0 ||
            json_number_value(sig) > SIM_FAULT_SIGMA_MAX)
            PERR("latency.lognormal.sigma: must be a number between 0 and %d", SIM_FAULT_SIGMA_MAX);
        s->lat_kind = 3;
        s->lat_a = (double)a;
        s->lat_b = json_number_value(sig);
    }
    return 0;
}

static const char *const step_fields[] = {
    "times",       "latency",  "status", "headers",  "body",    "content_type",
    "retry_after", "socket",   "when",   "hang_max", "garbage", "truncate_at",
    "chunk_bytes", "interval", "pass",   NULL};
static const char *const rule_fields[] = {"provider",    "route",         "match",
                                          "probability", "window",        "sequence",
                                          "name",        "match_headers", NULL};

static int known(const char *const *list, const char *k)
{
    for (; *list; list++)
        if (strcmp(*list, k) == 0)
            return 1;
    return 0;
}

/* Parses one step (an inline rule or a sequence element) at path at. */
static int parse_step(const json_t *o, step_t *s, int in_sequence, const char *at, char *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        if (!known(step_fields, k) && (in_sequence || !known(rule_fields, k)))
            PERR("%s: unknown field", k);
    }
    s->truncate_at = -1;
    s->hang_max_ms = SIM_FAULT_HANG_DEFAULT_MS;
    if ((v = json_object_get(o, "times"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > SIM_FAULT_TIMES_MAX)
            PERR("times: must be an integer from 1 to %lld", SIM_FAULT_TIMES_MAX);
        s->times = json_integer_value(v);
    }
    if ((v = json_object_get(o, "latency")) && parse_latency(v, s, at, err))
        return -1;
    const json_t *st = json_object_get(o, "status");
    const json_t *sock = json_object_get(o, "socket");
    const json_t *pass = json_object_get(o, "pass");
    if (pass && !json_is_true(pass))
        PERR("pass: must be true (the normal answer) when given");
    if (pass && (st || sock))
        PERR("pass: cannot be combined with %s", st ? "status" : "socket");
    if (st) {
        if (!json_is_integer(st) || json_integer_value(st) < 100 || json_integer_value(st) > 599)
            PERR("status: must be an integer from 100 to 599");
        s->status = (int)json_integer_value(st);
        s->kind = SIM_FAULT_ANSWER;
    }
    if (sock) {
        int kind = json_is_string(sock) ? socket_kind(json_string_value(sock)) : -1;
        if (kind < 0)
            PERR("socket: unknown socket fault '%.40s' (expected one of reset, close, empty, "
                 "hang, garbage, truncate, malformed_chunk, slow_body)",
                 json_is_string(sock) ? json_string_value(sock) : "(not a string)");
        if (st && (kind == SIM_FAULT_RESET || kind == SIM_FAULT_CLOSE || kind == SIM_FAULT_HANG ||
                   kind == SIM_FAULT_GARBAGE))
            PERR("socket: '%s' sends no answer, so it cannot be combined with status",
                 json_string_value(sock));
        s->kind = (sim_fault_kind_t)kind;
    }
    if (!st && !sock && !pass && !s->lat_kind)
        PERR("%s: a fault needs one of status, socket, latency or pass",
             in_sequence ? "(step)" : "(rule)");
    if ((v = json_object_get(o, "headers"))) {
        if (!json_is_object(v))
            PERR("headers: must be an object of strings");
        json_t *hv;
        json_object_foreach(v, k, hv)
        {
            if (!json_is_string(hv) || strpbrk(json_string_value(hv), "\r\n") ||
                strpbrk(k, "\r\n: "))
                PERR("headers.%s: must be a string without CR/LF (and a name without ':')", k);
        }
        if (json_object_size(v) > 8)
            PERR("headers: at most 8 headers");
        s->headers = json_deep_copy(v);
    }
    if ((v = json_object_get(o, "body"))) {
        if (json_is_string(v)) {
            s->body = strdup(json_string_value(v));
        } else if (json_is_object(v) || json_is_array(v)) {
            s->body = json_dumps(v, JSON_COMPACT);
            s->content_type = strdup("application/json");
        } else {
            PERR("body: must be a string, an object or an array");
        }
        if (!s->body)
            PERR("body: out of memory");
        s->body_len = strlen(s->body);
    }
    if ((v = json_object_get(o, "content_type"))) {
        if (!json_is_string(v) || strpbrk(json_string_value(v), "\r\n"))
            PERR("content_type: must be a string");
        free(s->content_type);
        s->content_type = strdup(json_string_value(v));
    }
    if ((v = json_object_get(o, "retry_after"))) {
        const json_t *d = json_is_object(v) ? json_object_get(v, "http_date_in") : NULL;
        int64_t in_ms = d ? sim_fault_duration_ms(d) : -1;
        if (json_is_integer(v) && json_integer_value(v) >= 0 &&
            json_integer_value(v) <= SIM_FAULT_RETRY_AFTER_MAX_S) {
            s->ra_kind = 1;
            s->ra_val = json_integer_value(v);
        } else if (json_is_string(v) && !strpbrk(json_string_value(v), "\r\n")) {
            s->ra_kind = 3;
            s->ra_text = strdup(json_string_value(v));
        } else if (d && json_object_size(v) == 1 && in_ms >= 0 &&
                   in_ms <= SIM_FAULT_RETRY_AFTER_MAX_S * 1000) {
            s->ra_kind = 2;
            s->ra_val = in_ms / 1000;
        } else {
            PERR("retry_after: must be seconds (an integer from 0 to %lld), a verbatim string, "
                 "or {\"http_date_in\": duration} of at most as long",
                 SIM_FAULT_RETRY_AFTER_MAX_S);
        }
    }
    if ((v = json_object_get(o, "when"))) {
        if (!json_is_string(v) || (strcmp(json_string_value(v), "before") != 0 &&
                                   strcmp(json_string_value(v), "after") != 0))
            PERR("when: must be \"before\" (the handler does not run) or \"after\" (it runs, "
                 "then the fault replaces its answer)");
        s->after = strcmp(json_string_value(v), "after") == 0;
    }
    if (duration_field(o, "hang_max", at, SIM_FAULT_HANG_DEFAULT_MS, SIM_FAULT_HANG_LIMIT_MS,
                       &s->hang_max_ms, err) ||
        duration_field(o, "interval", at, 200, SIM_FAULT_INTERVAL_LIMIT_MS, &s->interval_ms, err))
        return -1;
    if ((v = json_object_get(o, "garbage"))) {
        if (!json_is_string(v) || !*json_string_value(v))
            PERR("garbage: must be a non-empty string");
        s->garbage = strdup(json_string_value(v));
        s->garbage_len = strlen(json_string_value(v));
    }
    if ((v = json_object_get(o, "truncate_at"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) > SIM_FAULT_BYTES_MAX)
            PERR("truncate_at: must be a byte count (an integer from 0 to %lld)",
                 SIM_FAULT_BYTES_MAX);
        s->truncate_at = json_integer_value(v);
    }
    s->chunk_bytes = 16;
    if ((v = json_object_get(o, "chunk_bytes"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > SIM_FAULT_CHUNK_MAX)
            PERR("chunk_bytes: must be an integer from 1 to %d", SIM_FAULT_CHUNK_MAX);
        s->chunk_bytes = json_integer_value(v);
    }
    /* A short label for journals and listings. */
    char lat[48] = "";
    if (s->lat_kind == 1)
        snprintf(lat, sizeof lat, "latency %.0fms", s->lat_a);
    else if (s->lat_kind == 2)
        snprintf(lat, sizeof lat, "latency %.0f-%.0fms", s->lat_a, s->lat_b);
    else if (s->lat_kind == 3)
        snprintf(lat, sizeof lat, "latency ln(%.0fms,%.2f)", s->lat_a, s->lat_b);
    if (s->kind == SIM_FAULT_ANSWER)
        snprintf(s->desc, sizeof s->desc, "%s%sstatus %d", lat, *lat ? ", " : "", s->status);
    else if (s->kind != SIM_FAULT_PASS)
        snprintf(s->desc, sizeof s->desc, "%s%ssocket %s%s", lat, *lat ? ", " : "",
                 socket_names[s->kind], s->after ? " after" : "");
    else
        snprintf(s->desc, sizeof s->desc, "%s%spass", lat, *lat ? ", " : "");
    return 0;
}

static int parse_rule(const json_t *o, rule_t *r, const char *root, char *err)
{
    char at[64];
    const char *k;
    const json_t *v;
    snprintf(at, sizeof at, "%s", root);
    if (!json_is_object(o)) {
        cm_errf(err, "%s: a fault rule must be a JSON object", root);
        return -1;
    }
    if (json_object_get(o, "id"))
        PERR("id: is given by the simulator, leave it out");
    if ((v = json_object_get(o, "provider"))) {
        const char *p = json_is_string(v) ? json_string_value(v) : "";
        if (strcmp(p, "retell") && strcmp(p, "calcom") && strcmp(p, "stripe") && strcmp(p, "*"))
            PERR("provider: must be one of retell, calcom, stripe (or \"*\")");
        if (strcmp(p, "*") != 0)
            r->provider = strdup(p);
    }
    if ((v = json_object_get(o, "route"))) {
        char rerr[CM_ERR_LEN];
        if (!json_is_string(v))
            PERR("route: must be a string like \"POST /v2/bookings\"");
        if (sim_http_route_check(json_string_value(v), rerr) != 0)
            PERR("route: %s", rerr);
        r->route = strdup(json_string_value(v));
    }
    if ((v = json_object_get(o, "match"))) {
        if (!json_is_object(v) || !json_object_size(v))
            PERR("match: must be an object of body field paths to values, e.g. "
                 "{\"attendee.email\":\"a@b.example\"}");
        json_t *mv;
        json_object_foreach((json_t *)v, k, mv)
        {
            if (!*k)
                PERR("match: field paths must not be empty");
        }
        r->match = json_deep_copy(v);
    }
    /* Request headers, exact values (names in any case): one API key's requests, say
     * {"Authorization": "Bearer cal_key_a"}, while the other keys are served. */
    if ((v = json_object_get(o, "match_headers"))) {
        if (!json_is_object(v) || !json_object_size(v) || json_object_size(v) > 8)
            PERR("match_headers: must be an object of 1 to 8 header names to exact values, "
                 "e.g. {\"Authorization\": \"Bearer cal_key_a\"}");
        json_t *hv;
        json_object_foreach((json_t *)v, k, hv)
        {
            if (!*k || strcspn(k, ": \r\n") != strlen(k))
                PERR("match_headers: \"%.40s\" is not a header name", k);
            if (!json_is_string(hv))
                PERR("match_headers.%.40s: must be a string", k);
        }
        r->match_headers = json_deep_copy(v);
    }
    r->probability = 1.0;
    if ((v = json_object_get(o, "probability"))) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1) {
            char shown[32] = "(not a number)";
            if (json_is_number(v))
                snprintf(shown, sizeof shown, "%g", json_number_value(v));
            PERR("probability: must be a number from 0 to 1, not %s", shown);
        }
        r->probability = json_number_value(v);
    }
    r->until_ms = -1;
    if ((v = json_object_get(o, "window"))) {
        json_t *wv;
        if (!json_is_object(v))
            PERR("window: must be {\"from\": duration, \"until\": duration}");
        json_object_foreach((json_t *)v, k, wv)
        {
            if (strcmp(k, "from") && strcmp(k, "until"))
                PERR("window.%s: unknown field (expected from, until)", k);
        }
        if (duration_field(v, "from", at, 0, 0, &r->from_ms, err) ||
            duration_field(v, "until", at, -1, 0, &r->until_ms, err))
            return -1;
        if (r->until_ms >= 0 && r->until_ms <= r->from_ms)
            PERR("window: until must be after from");
    }
    const json_t *seq = json_object_get(o, "sequence");
    if (seq) {
        json_object_foreach((json_t *)o, k, v)
        {
            if (!known(rule_fields, k))
                PERR("%s: a rule with a sequence takes step fields only inside the sequence", k);
        }
        if (!json_is_array(seq) || !json_array_size(seq) ||
            json_array_size(seq) > SIM_FAULT_MAX_STEPS)
            PERR("sequence: must be an array of 1 to %d steps", SIM_FAULT_MAX_STEPS);
        for (size_t i = 0; i < json_array_size(seq); i++) {
            char sat[96];
            snprintf(sat, sizeof sat, "%s.sequence[%zu]", at, i);
            const json_t *sv = json_array_get(seq, i);
            if (!json_is_object(sv)) {
                cm_errf(err, "%s: a step must be a JSON object", sat);
                return -1;
            }
            r->nsteps = i + 1;
            if (parse_step(sv, &r->steps[i], 1, sat, err))
                return -1;
            if (!r->steps[i].times && i + 1 < json_array_size(seq)) {
                cm_errf(err, "%s.times: only the last step may leave out times (for ever)", sat);
                return -1;
            }
        }
    } else {
        r->nsteps = 1;
        if (parse_step(o, &r->steps[0], 0, at, err))
            return -1;
    }
    return 0;
}

cm_err_t sim_fault_add(sim_fault_t *f, const json_t *spec, json_t **out, char *err)
{
    if (out)
        *out = NULL;
    rule_t *r = calloc(1, sizeof *r);
    if (!r)
        return CM_ENOMEM;
    if (parse_rule(spec, r, "$", err)) {
        rule_free(r);
        return CM_EINVAL;
    }
    r->spec = json_deep_copy(spec);
    r->created_mono_ms = cm_clock_mono_ms();
    cm_err_t rc = r->spec ? CM_OK : CM_ENOMEM;
    pthread_mutex_lock(&f->mu);
    if (!rc && f->nrules >= SIM_FAULT_MAX_RULES) {
        cm_errf(err, "at most %d fault rules; delete some first", SIM_FAULT_MAX_RULES);
        rc = CM_ETOOBIG;
    }
    if (!rc) {
        r->id = f->next_id++;
        json_object_set_new(r->spec, "id", json_integer(r->id));
        f->rules[f->nrules++] = r;
        if (out)
            *out = json_deep_copy(r->spec);
    }
    pthread_mutex_unlock(&f->mu);
    if (rc) {
        rule_free(r);
        return rc;
    }
    CM_INFO(COMP, "rule %lld added: %s %s", (long long)r->id, r->route ? r->route : "(any route)",
            r->steps[0].desc);
    return CM_OK;
}

cm_err_t sim_fault_load_file(sim_fault_t *f, const char *path, size_t *n, char *err)
{
    json_t *doc = NULL;
    char perr[CM_ERR_LEN];
    *n = 0;
    cm_err_t rc = cm_json_load_file(path, 4u << 20, &doc, err);
    if (rc)
        return rc;
    const json_t *list = json_is_array(doc) ? doc : json_object_get(doc, "faults");
    const char *prefix = json_is_array(doc) ? "$" : "$.faults";
    if (!json_is_array(list)) {
        cm_errf(err, "%s: must be [rule, ...] or {\"faults\": [rule, ...]}", path);
        json_decref(doc);
        return CM_EINVAL;
    }
    /* Validate every rule first, so a bad file adds nothing. */
    for (size_t i = 0; !rc && i < json_array_size(list); i++) {
        rule_t *r = calloc(1, sizeof *r);
        char at[48];
        snprintf(at, sizeof at, "%s[%zu]", prefix, i);
        if (!r) {
            rc = CM_ENOMEM;
        } else if (parse_rule(json_array_get(list, i), r, at, perr)) {
            cm_errf(err, "%s: %s", path, perr);
            rc = CM_EINVAL;
        }
        rule_free(r);
    }
    for (size_t i = 0; !rc && i < json_array_size(list); i++) {
        rc = sim_fault_add(f, json_array_get(list, i), NULL, perr);
        if (rc)
            cm_errf(err, "%s: %s", path, perr);
        else
            (*n)++;
    }
    json_decref(doc);
    return rc;
}

static json_t *rule_json(const rule_t *r)
{
    json_t *v = json_deep_copy(r->spec);
    if (v) {
        json_object_set_new(v, "matched", json_integer(r->matched));
        json_object_set_new(v, "hits", json_integer(r->hits));
        json_object_set_new(v, "exhausted", json_boolean(r->exhausted));
    }
    return v;
}

json_t *sim_fault_list(sim_fault_t *f)
{
    json_t *list = json_array();
    if (!list)
        return NULL;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->nrules; i++)
        json_array_append_new(list, rule_json(f->rules[i]));
    pthread_mutex_unlock(&f->mu);
    return json_pack("{s:I,s:o}", "count", (json_int_t)json_array_size(list), "rules", list);
}

cm_err_t sim_fault_delete(sim_fault_t *f, int64_t id)
{
    rule_t *gone = NULL;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->nrules; i++) {
        if (f->rules[i]->id == id) {
            gone = f->rules[i];
            memmove(&f->rules[i], &f->rules[i + 1], (f->nrules - i - 1) * sizeof f->rules[0]);
            f->nrules--;
            break;
        }
    }
    pthread_mutex_unlock(&f->mu);
    rule_free(gone);
    return gone ? CM_OK : CM_ENOTFOUND;
}

void sim_fault_clear(sim_fault_t *f)
{
    rule_t *old[SIM_FAULT_MAX_RULES];
    pthread_mutex_lock(&f->mu);
    size_t n = f->nrules;
    memcpy(old, f->rules, n * sizeof old[0]);
    f->nrules = 0;
    pthread_mutex_unlock(&f->mu);
    for (size_t i = 0; i < n; i++)
        rule_free(old[i]);
}

/* ---- the decision ------------------------------------------------------------------ */

/* Body fields for match rules: a form body (Stripe) or JSON; NULL when neither parses. */
static json_t *body_fields(const char *ctype, const char *body, size_t len)
{
    json_t *v = NULL;
    char err[CM_ERR_LEN];
    if (ctype && strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0) {
        if (sim_form_decode(body, len, &v, err) != CM_OK)
            v = NULL;
    } else if (len && cm_json_parse(body, len, len, &v, err) != CM_OK) {
        v = NULL;
    }
    return v;
}

static int body_matches(const json_t *match, const json_t *fields)
{
    const char *k;
    json_t *want;
    json_object_foreach((json_t *)match, k, want)
    {
        const json_t *got = fields ? cm_json_path(fields, k) : NULL;
        if (!got)
            return 0;
        if (json_equal((json_t *)got, want))
            continue;
        /* Form values are strings on the wire: "amount":"500" matches 500. */
        if (json_is_string(got) && (json_is_integer(want) || json_is_boolean(want))) {
            char buf[32];
            if (json_is_integer(want))
                snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(want));
            else
                snprintf(buf, sizeof buf, "%s", json_is_true(want) ? "true" : "false");
            if (strcmp(buf, json_string_value(got)) == 0)
                continue;
        }
        return 0;
    }
    return 1;
}

/* Standard normal from two uniforms (Box-Muller). Under the lock. */
static double gauss(cm_rand_t *g)
{
    double u1 = cm_rand_unit(g), u2 = cm_rand_unit(g);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

static int64_t draw_latency(cm_rand_t *g, const step_t *s)
{
    double ms = 0;
    switch (s->lat_kind) {
    case 1:
        ms = s->lat_a;
        break;
    case 2:
        ms = s->lat_a + (s->lat_b - s->lat_a) * cm_rand_unit(g);
        break;
    case 3:
        ms = s->lat_a * exp(s->lat_b * gauss(g));
        break;
    default:
        break;
    }
    if (ms > SIM_FAULT_LATENCY_LIMIT_MS)
        ms = SIM_FAULT_LATENCY_LIMIT_MS;
    return (int64_t)llround(ms);
}

/* The step for the n-th hit (0-based), or NULL when the rule is used up. */
static const step_t *step_for(const rule_t *r, int64_t n, unsigned *index)
{
    for (size_t i = 0; i < r->nsteps; i++) {
        const step_t *s = &r->steps[i];
        if (!s->times || n < s->times) {
            *index = (unsigned)i;
            return s;
        }
        n -= s->times;
    }
    return NULL;
}

static void render_retry_after(const step_t *s, char out[64])
{
    out[0] = '\0';
    if (s->ra_kind == 1) {
        snprintf(out, 64, "%lld", (long long)s->ra_val);
    } else if (s->ra_kind == 3) {
        snprintf(out, 64, "%s", s->ra_text);
    } else if (s->ra_kind == 2) {
        /* IMF-fixdate, as RFC 9110 wants, from the (possibly accelerated) clock. */
        static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
        static const char *const mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        time_t t = (time_t)(cm_clock_now_s() + s->ra_val);
        struct tm tm;
        gmtime_r(&t, &tm);
        snprintf(out, 64, "%s, %02d %s %04d %02d:%02d:%02d GMT", wd[tm.tm_wday], tm.tm_mday,
                 mo[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    }
}

static char *memdup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Whether every header of want has its exact value in the request (hdr NULL: no headers
 * known, so no match). */
static int headers_match(const json_t *want, sim_fault_header_fn hdr, void *hdr_ud)
{
    const char *k;
    json_t *v;
    if (!hdr)
        return 0;
    json_object_foreach((json_t *)want, k, v)
    {
        const char *got = hdr(hdr_ud, k);
        if (!got || strcmp(got, json_string_value(v)) != 0)
            return 0;
    }
    return 1;
}

int sim_fault_decide(sim_fault_t *f, const char *provider, const char *method, const char *path,
                     const char *ctype, const char *body, size_t body_len, sim_fault_plan_t *plan)
{
    return sim_fault_decide_hdr(f, provider, method, path, ctype, body, body_len, NULL, NULL, plan);
}

int sim_fault_decide_hdr(sim_fault_t *f, const char *provider, const char *method, const char *path,
                         const char *ctype, const char *body, size_t body_len,
                         sim_fault_header_fn hdr, void *hdr_ud, sim_fault_plan_t *plan)
{
    json_t *fields = NULL;
    int fields_read = 0;
    memset(plan, 0, sizeof *plan);
    int64_t now = cm_clock_mono_ms();
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->nrules && !plan->fired; i++) {
        rule_t *r = f->rules[i];
        if (r->exhausted)
            continue;
        if (r->provider && (!provider || strcmp(r->provider, provider) != 0))
            continue;
        if (!sim_http_route_match(r->route, method, path))
            continue;
        int64_t age = now - r->created_mono_ms;
        if (age < r->from_ms || (r->until_ms >= 0 && age >= r->until_ms))
            continue;
        if (r->match) {
            if (!fields_read) {
                fields = body_fields(ctype, body ? body : "", body_len);
                fields_read = 1;
            }
            if (!body_matches(r->match, fields))
                continue;
        }
        if (r->match_headers && !headers_match(r->match_headers, hdr, hdr_ud))
            continue;
        r->matched++;
        /* probability 1 draws nothing, so certain rules do not move the stream. */
        if (r->probability < 1.0 && !(cm_rand_unit(&f->gen) < r->probability))
            continue;
        unsigned idx = 0;
        const step_t *s = step_for(r, r->hits, &idx);
        if (!s) {
            r->exhausted = 1;
            continue;
        }
        r->hits++;
        if (!step_for(r, r->hits, &(unsigned){0}))
            r->exhausted = 1;
        plan->fired = 1;
        plan->rule_id = r->id;
        plan->step = idx;
        snprintf(plan->desc, sizeof plan->desc, "rule %lld step %u: %s", (long long)r->id, idx,
                 s->desc);
        plan->latency_ms = draw_latency(&f->gen, s);
        plan->kind = s->kind;
        plan->after = s->after || s->kind == SIM_FAULT_TRUNCATE || s->kind == SIM_FAULT_SLOW_BODY ||
                      s->kind == SIM_FAULT_MALFORMED_CHUNK;
        plan->status = s->status;
        plan->headers = s->headers ? json_deep_copy(s->headers) : NULL;
        plan->body = s->body ? memdup(s->body, s->body_len) : NULL;
        plan->body_len = s->body_len;
        plan->content_type = s->content_type ? strdup(s->content_type) : NULL;
        render_retry_after(s, plan->retry_after);
        plan->hang_max_ms = s->hang_max_ms;
        plan->garbage = s->garbage ? memdup(s->garbage, s->garbage_len) : NULL;
        plan->garbage_len = s->garbage_len;
        plan->truncate_at = s->truncate_at;
        plan->chunk_bytes = s->chunk_bytes;
        plan->interval_ms = s->interval_ms;
    }
    pthread_mutex_unlock(&f->mu);
    json_decref(fields);
    return plan->fired;
}

void sim_fault_plan_free(sim_fault_plan_t *plan)
{
    json_decref(plan->headers);
    free(plan->body);
    free(plan->content_type);
    free(plan->garbage);
    memset(plan, 0, sizeof *plan);
}

/* ---- applying a plan --------------------------------------------------------------- */

/* The provider's own error shape for a status without a body, so clients parse it the
 * way they parse the real thing. */
static void default_answer(const char *provider, int status, cm_http_resp_t *resp, const char *path)
{
    const char *reason = cm_http_reason(status);
    if (status < 400) {
        cm_http_resp_json(resp, status, json_object());
    } else if (provider && strcmp(provider, "stripe") == 0) {
        const char *type = status >= 500 ? "api_error" : "invalid_request_error";
        json_t *e = json_pack("{s:s,s:s}", "type", type, "message",
                              status == 429 ? "Too many requests hit the API too quickly."
                                            : "(simulated fault)");
        if (e && status == 429)
            json_object_set_new(e, "code", json_string("rate_limit"));
        cm_http_resp_json(resp, status, e ? json_pack("{s:o}", "error", e) : NULL);
    } else if (provider && strcmp(provider, "calcom") == 0) {
        char ts[25];
        const char *code = status == 429   ? "ThrottlerException"
                           : status == 503 ? "ServiceUnavailableException"
                           : status >= 500 ? "InternalServerErrorException"
                           : status == 404 ? "NotFoundException"
                           : status == 409 ? "ConflictException"
                                           : "BadRequestException";
        cm_http_resp_json(
            resp, status,
            json_pack("{s:s,s:s,s:o,s:{s:s,s:s,s:{}}}", "status", "error", "timestamp",
                      cm_clock_iso8601(cm_clock_now_ms(), ts), "path", sim_http_str(path), "error",
                      "code", code, "message",
                      status == 429 ? "ThrottlerException: Too Many Requests" : reason, "details"));
    } else if (provider && strcmp(provider, "retell") == 0) {
        cm_http_resp_json(resp, status, json_pack("{s:s}", "error_message", reason));
    } else {
        cm_http_resp_problem(resp, status, reason, "simulated fault");
    }
}

static void fill_answer(const binding_t *b, const sim_fault_plan_t *p, const cm_http_req_t *req,
                        cm_http_resp_t *resp)
{
    /* resp->content_type must be a static string; a rule's own type goes in as a header
     * (copied), since the plan is freed before the answer is sent. */
    if (p->body && p->content_type) {
        cm_http_resp_text(resp, p->status, NULL, p->body);
        if (cm_http_resp_header(resp, "Content-Type", p->content_type) != CM_OK)
            CM_WARN(COMP, "could not add Content-Type");
    } else if (p->body) {
        cm_http_resp_text(resp, p->status, "application/json", p->body);
    } else
        default_answer(b->provider, p->status, resp, req->path);
    const char *k;
    json_t *v;
    json_object_foreach(p->headers, k, v)
    {
        if (cm_http_resp_header(resp, k, json_string_value(v)) != CM_OK)
            CM_WARN(COMP, "could not add header %s", k);
    }
    if (p->retry_after[0] && cm_http_resp_header(resp, "Retry-After", p->retry_after) != CM_OK)
        CM_WARN(COMP, "could not add Retry-After");
    if (strcmp(b->provider, "stripe") == 0) {
        char rid[40];
        snprintf(rid, sizeof rid, "req_simfault%lld%u", (long long)p->rule_id, p->step);
        (void)cm_http_resp_header(resp, "Request-Id", rid);
    }
}

/* Writes all of buf to the socket (non-blocking in libmicrohttpd) within 10 s. */
static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    int64_t deadline = cm_clock_mono_ms() + 10000;
    while (len) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            len -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        int64_t left = deadline - cm_clock_mono_ms();
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        (void)poll(&pfd, 1, (int)(left < 1000 ? left : 1000));
    }
    return 0;
}

/* The status line and headers of resp as HTTP/1.1 text, with the given framing header. */
static void head_text(const cm_http_resp_t *resp, const char *framing, cm_buf_t *out)
{
    cm_err_t rc =
        cm_buf_printf(out, "HTTP/1.1 %d %s\r\n", resp->status, cm_http_reason(resp->status));
    if (!rc && resp->content_type && resp->body.len)
        rc = cm_buf_printf(out, "Content-Type: %s\r\n", resp->content_type);
    const char *name, *value;
    for (size_t i = 0; !rc && cm_http_resp_header_at(resp, i, &name, &value); i++)
        rc = cm_buf_printf(out, "%s: %s\r\n", name, value);
    if (!rc)
        rc = cm_buf_printf(out, "%sConnection: close\r\n\r\n", framing);
    if (rc)
        CM_WARN(COMP, "raw answer head: %s", cm_strerror(rc));
}

/* Waits until the peer hangs up (EOF or error on the socket), the engine stops, or max_ms
 * pass. Polls in short slices so shutdown is noticed. */
static void hang(sim_fault_t *f, int fd, int64_t max_ms)
{
    int64_t deadline = cm_clock_mono_ms() + max_ms;
    char sink[512];
    for (;;) {
        int64_t left = deadline - cm_clock_mono_ms();
        pthread_mutex_lock(&f->mu);
        int stopping = f->stopping;
        pthread_mutex_unlock(&f->mu);
        if (left <= 0 || stopping)
            return;
        if (fd < 0) {
            if (wait_ms(f, left < 100 ? left : 100))
                return;
            continue;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int n = poll(&pfd, 1, (int)(left < 100 ? left : 100));
        if (n > 0) {
            if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL))
                return;
            ssize_t r = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                return; /* the client gave up */
        }
    }
}

static const char *outcome_of(sim_fault_kind_t k)
{
    switch (k) {
    case SIM_FAULT_RESET:
        return "reset";
    case SIM_FAULT_CLOSE:
        return "closed";
    case SIM_FAULT_HANG:
        return "hung";
    case SIM_FAULT_GARBAGE:
        return "garbage";
    case SIM_FAULT_TRUNCATE:
        return "truncated";
    case SIM_FAULT_MALFORMED_CHUNK:
        return "malformed_chunk";
    case SIM_FAULT_SLOW_BODY:
        return "slow_body";
    default:
        return "answered";
    }
}

/* Applies a socket fault to the answer in resp. */
static void apply_socket(sim_fault_t *f, const cm_http_req_t *req, cm_http_resp_t *resp,
                         const sim_fault_plan_t *p)
{
    int fd = cm_http_req_fd(req);
    cm_buf_t raw;
    cm_buf_init(&raw, 64u << 20);
    switch (p->kind) {
    case SIM_FAULT_RESET:
        /* libmicrohttpd shuts the write side down before it closes, so SO_LINGER alone
         * lets a FIN out first and the client sees an empty reply. connect(AF_UNSPEC)
         * disconnects a Linux TCP socket at once with an RST: the client sees a reset. */
        if (fd >= 0) {
            struct sockaddr unspec = {.sa_family = AF_UNSPEC};
            if (connect(fd, &unspec, sizeof unspec) != 0)
                CM_DEBUG(COMP, "reset: connect(AF_UNSPEC): %s", strerror(errno));
        }
        resp->action = CM_HTTP_DROP_RESET;
        break;
    case SIM_FAULT_CLOSE:
        resp->action = CM_HTTP_DROP_CLOSE;
        break;
    case SIM_FAULT_HANG:
        hang(f, fd, p->hang_max_ms);
        resp->action = CM_HTTP_DROP_CLOSE;
        break;
    case SIM_FAULT_GARBAGE:
        if (fd >= 0)
            (void)write_all(fd, p->garbage ? p->garbage : GARBAGE_DEFAULT,
                            p->garbage ? p->garbage_len : sizeof GARBAGE_DEFAULT - 1);
        resp->action = CM_HTTP_DROP_CLOSE;
        break;
    case SIM_FAULT_TRUNCATE: {
        char framing[64];
        size_t cut = p->truncate_at < 0 ? resp->body.len / 2 : (size_t)p->truncate_at;
        if (cut >= resp->body.len)
            cut = resp->body.len ? resp->body.len - 1 : 0;
        /* Announce the whole length, send less, close: the client sees a short body. */
        snprintf(framing, sizeof framing, "Content-Length: %zu\r\n",
                 resp->body.len ? resp->body.len : (size_t)1);
        head_text(resp, framing, &raw);
        if (cm_buf_add(&raw, resp->body.data ? resp->body.data : "", cut) != CM_OK)
            CM_WARN(COMP, "truncate: out of memory");
        if (fd >= 0)
            (void)write_all(fd, raw.data, raw.len);
        resp->action = CM_HTTP_DROP_CLOSE;
        break;
    }
    case SIM_FAULT_MALFORMED_CHUNK:
        head_text(resp, "Transfer-Encoding: chunked\r\n", &raw);
        /* A first chunk that is fine, then a size line that is not hex. */
        if (cm_buf_printf(&raw, "%zx\r\n", resp->body.len ? resp->body.len / 2 + 1 : 1) ||
            cm_buf_add(&raw, resp->body.len ? resp->body.data : "x",
                       resp->body.len ? resp->body.len / 2 + 1 : 1) ||
            cm_buf_addstr(&raw, "\r\nzz;not-hex\r\ngarbage\r\n"))
            CM_WARN(COMP, "malformed chunk: out of memory");
        if (fd >= 0)
            (void)write_all(fd, raw.data, raw.len);
        resp->action = CM_HTTP_DROP_CLOSE;
        break;
    case SIM_FAULT_SLOW_BODY: {
        char framing[64];
        snprintf(framing, sizeof framing, "Content-Length: %zu\r\n", resp->body.len);
        head_text(resp, framing, &raw);
        int ok = fd >= 0 && write_all(fd, raw.data, raw.len) == 0;
        for (size_t off = 0; ok && off < resp->body.len;) {
            size_t n = resp->body.len - off;
            if (n > (size_t)p->chunk_bytes)
                n = (size_t)p->chunk_bytes;
            if (off > 0 && wait_ms(f, p->interval_ms))
                break;
            ok = write_all(fd, resp->body.data + off, n) == 0;
            off += n;
        }
        resp->action = CM_HTTP_DROP_CLOSE;
        break;
    }
    default:
        break;
    }
    cm_buf_free(&raw);
}

/* Per-request state between the filter and the after hook: both run on the same thread
 * within one call of the server's request handler. */
typedef struct {
    int active;
    int done; /* the fault was applied in the filter */
    sim_fault_plan_t plan;
} pending_t;

static _Thread_local pending_t tl_pending;

static int skip_path(const char *path)
{
    return strncmp(path, "/_sim/", 6) == 0 || strncmp(path, "/control/", 9) == 0;
}

static const char *req_header(void *ud, const char *name)
{
    return cm_http_req_header(ud, name);
}

static int on_filter(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    binding_t *b = ud;
    sim_fault_t *f = b->engine;
    pending_t *pd = &tl_pending;
    sim_fault_plan_free(&pd->plan);
    pd->active = pd->done = 0;
    if (skip_path(req->path))
        return 0;
    if (!sim_fault_decide_hdr(f, b->provider, req->method, req->path,
                              cm_http_req_header(req, "Content-Type"), req->body, req->body_len,
                              req_header, (void *)req, &pd->plan))
        return 0;
    pd->active = 1;
    const sim_fault_plan_t *p = &pd->plan;
    CM_DEBUG(COMP, "%s %s: %s", req->method, req->path, p->desc);
    if (p->latency_ms > 0)
        (void)wait_ms(f, p->latency_ms);
    if (p->kind == SIM_FAULT_PASS)
        return 0;
    if (p->kind == SIM_FAULT_ANSWER && p->after)
        return 0;
    if (p->status) {
        /* The rule's answer replaces the handler; a socket fault on it comes after. */
        fill_answer(b, p, req, resp);
        if (p->kind == SIM_FAULT_ANSWER)
            pd->done = 1;
        return 1;
    }
    if (p->after)
        return 0;
    apply_socket(f, req, resp, p);
    pd->done = 1;
    return 1;
}

/* Headers a test may assert on; never Authorization. */
static const char *const kept_headers[] = {"Idempotency-Key",
                                           "cal-api-version",
                                           "Content-Type",
                                           "Stripe-Version",
                                           "x-retell-signature",
                                           "Stripe-Signature",
                                           "X-Cal-Signature-256",
                                           "X-Correlation-Id",
                                           "User-Agent",
                                           "traceparent",
                                           NULL};

static void on_after(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    binding_t *b = ud;
    sim_fault_t *f = b->engine;
    pending_t *pd = &tl_pending;
    if (pd->active && !pd->done) {
        const sim_fault_plan_t *p = &pd->plan;
        if (p->kind == SIM_FAULT_ANSWER) {
            /* "when":"after": the handler ran (its effects stay), the answer is replaced. */
            resp->action = CM_HTTP_ANSWER;
            fill_answer(b, p, req, resp);
        } else {
            apply_socket(f, req, resp, p);
        }
    }
    if (f->journal && !skip_path(req->path)) {
        /* The kept headers as compact JSON text, built without a jansson tree: this runs
         * on every request. */
        cm_buf_t h;
        cm_buf_init(&h, 4096);
        cm_err_t hrc = cm_buf_addstr(&h, "{");
        for (const char *const *k = kept_headers; !hrc && *k; k++) {
            const char *v = cm_http_req_header(req, *k);
            if (v)
                hrc = cm_buf_addstr(&h, h.len > 1 ? "," : "");
            if (v && !hrc)
                hrc = cm_buf_add_json_str(&h, *k);
            if (v && !hrc)
                hrc = cm_buf_addstr(&h, ":");
            if (v && !hrc)
                hrc = cm_buf_add_json_str(&h, v);
        }
        if (!hrc)
            hrc = cm_buf_addstr(&h, "}");
        int64_t dur_ns = cm_clock_mono_ns() - req->received_mono_ns;
        sim_journal_rec_t rec = {
            .kind = SIM_JOURNAL_REQUEST,
            .provider = b->provider,
            .method = req->method,
            .path = req->path,
            .headers_json = !hrc && h.len > 2 ? h.data : NULL,
            .body = req->body,
            .body_len = req->body_len,
            .fault = pd->active ? pd->plan.desc : NULL,
            .status = resp->action == CM_HTTP_ANSWER ? resp->status : 0,
            .outcome =
                resp->action == CM_HTTP_ANSWER
                    ? "answered"
                    : (pd->active ? outcome_of(pd->plan.kind)
                                  : (resp->action == CM_HTTP_DROP_RESET ? "reset" : "closed")),
            .at_ms = cm_clock_now_ms() - dur_ns / 1000000,
            .duration_ms = (double)dur_ns / 1e6,
        };
        sim_journal_add(f->journal, &rec);
        cm_buf_free(&h);
    }
    sim_fault_plan_free(&pd->plan);
    pd->active = pd->done = 0;
}

cm_err_t sim_fault_attach(sim_fault_t *f, cm_http_server_t *srv, const char *provider)
{
    pthread_mutex_lock(&f->mu);
    if (f->nbindings >= MAX_BINDINGS) {
        pthread_mutex_unlock(&f->mu);
        return CM_ETOOBIG;
    }
    binding_t *b = &f->bindings[f->nbindings++];
    b->engine = f;
    snprintf(b->provider, sizeof b->provider, "%s", provider);
    pthread_mutex_unlock(&f->mu);
    cm_http_server_set_filter(srv, on_filter, b);
    cm_http_server_set_after(srv, on_after, b);
    return CM_OK;
}
