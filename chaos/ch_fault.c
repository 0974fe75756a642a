/* ch_fault.c - fault JSON: validation with located messages (the current form, keyed by
 * effect as the simulators' fault rules are, and the deprecated {"type":...} form), the
 * immutable list, and the list's JSON. */
#include "ch_fault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_duration.h"
#include "cm_json.h"

static const char *const type_names[CH_FAULT__COUNT] = {
    [CH_FAULT_LATENCY] = "latency", [CH_FAULT_BANDWIDTH] = "bandwidth", [CH_FAULT_SLICE] = "slice",
    [CH_FAULT_RESET] = "reset",     [CH_FAULT_HANG] = "hang",           [CH_FAULT_DOWN] = "down",
};

/* The keys that name a fault's effect in the current form: exactly one per fault. */
static const char *const effects[] = {"latency", "bandwidth", "slice", "socket", "down", NULL};

/* The one field each effect takes besides its own key, direction and probability. */
static const char *const modifiers[CH_FAULT__COUNT] = {
    [CH_FAULT_LATENCY] = "jitter",
    [CH_FAULT_SLICE] = "interval",
    [CH_FAULT_RESET] = "after_bytes",
    [CH_FAULT_HANG] = "hang_max",
};

/* Words of a simulator fault rule that mean nothing on a link: they select requests or
 * shape HTTP answers, and the proxy moves bytes without parsing HTTP. Named in messages so
 * an author who knows the rules sees why a word is refused here. */
static const char *const rule_only_fields[] = {
    "status",  "headers",     "body",   "content_type", "retry_after", "when",
    "garbage", "truncate_at", "times",  "pass",         "sequence",    "provider",
    "route",   "match",       "window", "name",         "chunk_bytes", NULL};
static const char *const rule_only_sockets[] = {"close",    "empty",           "garbage",
                                                "truncate", "malformed_chunk", NULL};

/* The deprecated form: {"type":T,...} with integer milliseconds, and the fields of each T. */
static const struct {
    const char *name;
    ch_fault_type_t type;
    const char *fields[3];
} old_types[] = {
    {"latency", CH_FAULT_LATENCY, {"ms", "jitter_ms", NULL}},
    {"bandwidth", CH_FAULT_BANDWIDTH, {"bytes_per_s", NULL}},
    {"slice", CH_FAULT_SLICE, {"bytes", "delay_ms", NULL}},
    {"reset", CH_FAULT_RESET, {"after_bytes", NULL}},
    {"blackhole", CH_FAULT_HANG, {NULL}},
    {"timeout", CH_FAULT_HANG, {"ms", NULL}},
    {"down", CH_FAULT_DOWN, {NULL}},
};
#define OLD_TYPES (sizeof old_types / sizeof old_types[0])
static const char *const old_fields[] = {"type",  "ms",       "jitter_ms", "bytes_per_s",
                                         "bytes", "delay_ms", NULL};

const char *ch_fault_type_name(ch_fault_type_t t)
{
    return (unsigned)t < CH_FAULT__COUNT ? type_names[t] : "?";
}

/* The type called name, or -1. */
static int type_named(const char *name)
{
    for (int t = 0; t < CH_FAULT__COUNT; t++)
        if (strcmp(name, type_names[t]) == 0)
            return t;
    return -1;
}

const char *ch_dir_name(int dirs)
{
    switch (dirs) {
    case CH_DIR_UPSTREAM:
        return "upstream";
    case CH_DIR_DOWNSTREAM:
        return "downstream";
    default:
        return "both";
    }
}

/* Formats "<at>.<message>" into err and fails. */
#define PERR(...)                                                                                  \
    do {                                                                                           \
        char _m[2 * CM_ERR_LEN];                                                                   \
        snprintf(_m, sizeof _m, __VA_ARGS__);                                                      \
        cm_errf(err, "%s.%s", at, _m);                                                             \
        return -1;                                                                                 \
    } while (0)

static int listed(const char *const *names, const char *k)
{
    for (; *names; names++)
        if (strcmp(*names, k) == 0)
            return 1;
    return 0;
}

/* Refuses the first key of v that is not in allowed (NULL-terminated), naming what it is
 * when it belongs to a simulator rule or (in the current form) to the deprecated form. */
static int only_fields(const json_t *v, const char *const *allowed, const char *what, int current,
                       const char *at, char *err)
{
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        if (listed(allowed, k))
            continue;
        char expected[128] = "";
        for (size_t i = 0; allowed[i]; i++) {
            size_t len = strlen(expected);
            snprintf(expected + len, sizeof expected - len, "%s%s", i ? ", " : "", allowed[i]);
        }
        const char *why = "";
        if (listed(rule_only_fields, k))
            why = " (a simulator rule's field: a link moves bytes, it does not parse HTTP)";
        else if (current && listed(old_fields, k))
            why = " (a field of the deprecated {\"type\":...} form)";
        PERR("%.40s: unknown field for %s%s (expected %s)", k, what, why, expected);
    }
    return 0;
}

/* Reads an integer field in [min, max]; absent gives def, or an error when required. unit
 * (may be NULL) is said in the message. */
static int int_field(const json_t *o, const char *name, const char *at, int required, int64_t def,
                     int64_t min, int64_t max, const char *unit, int64_t *out, char *err)
{
    const json_t *v = json_object_get(o, name);
    const char *what = min > 0 ? "a positive integer" : "a non-negative integer";
    char u[48] = "";
    if (unit)
        snprintf(u, sizeof u, " of %s", unit);
    if (!v) {
        if (required)
            PERR("%s: required (%s%s)", name, what, u);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min)
        PERR("%s: must be %s%s", name, what, u);
    if (json_integer_value(v) > max)
        PERR("%s: must be at most %lld", name, (long long)max);
    *out = json_integer_value(v);
    return 0;
}

/* A duration value x, written as the one grammar says (cm_duration.h), at most a day. name
 * is its path below at. */
static int dur_value(const json_t *x, const char *name, const char *at, int64_t *ms, char *err)
{
    char derr[CM_ERR_LEN];
    if (json_is_number(x))
        PERR("%s: must be a duration string such as \"250ms\" or \"1.5s\" (bare numbers of "
             "milliseconds are the deprecated form's)",
             name);
    if (!json_is_string(x))
        PERR("%s: must be a duration such as \"250ms\", \"1.5s\" or \"2m\"", name);
    if (cm_duration_parse(json_string_value(x), CH_FAULT_MAX_MS, ms, derr) != CM_OK)
        PERR("%s: %s", name, derr);
    return 0;
}

/* The field name of v as a duration when it is there; *ms is left alone when it is not. */
static int dur_field(const json_t *v, const char *name, const char *at, int64_t *ms, char *err)
{
    const json_t *x = json_object_get(v, name);
    return x ? dur_value(x, name, at, ms, err) : 0;
}

/* "latency": a duration, {"fixed": d} or {"uniform": [min, max]}, with an optional
 * "jitter" beside the first two: the delay is drawn uniformly from [min, max], which for
 * latency L and jitter J is [L - J, L + J]. */
static int parse_latency(const json_t *v, const char *at, ch_fault_t *f, char *err)
{
    const json_t *lat = json_object_get(v, "latency");
    const json_t *jit = json_object_get(v, "jitter");
    int64_t centre = 0, jitter = 0;
    if (json_is_object(lat)) {
        const json_t *fx = json_object_get(lat, "fixed");
        const json_t *un = json_object_get(lat, "uniform");
        if (json_object_get(lat, "lognormal"))
            PERR("latency.lognormal: the proxy draws delays uniformly, it cannot do a lognormal "
                 "one (a simulator rule can); write \"jitter\" or {\"uniform\": [min, max]}");
        if (json_object_size(lat) != 1 || (!fx && !un))
            PERR("latency: must have exactly one of fixed, uniform");
        if (un) {
            if (jit)
                PERR("jitter: not with latency.uniform (its range says how much the delay "
                     "varies)");
            if (!json_is_array(un) || json_array_size(un) != 2)
                PERR("latency.uniform: must be [min, max], two durations");
            if (dur_value(json_array_get(un, 0), "latency.uniform[0]", at, &f->min_ms, err) ||
                dur_value(json_array_get(un, 1), "latency.uniform[1]", at, &f->max_ms, err))
                return -1;
            if (f->max_ms < f->min_ms)
                PERR("latency.uniform: min must not be above max");
            return 0;
        }
        if (dur_value(fx, "latency.fixed", at, &centre, err))
            return -1;
    } else if (dur_value(lat, "latency", at, &centre, err)) {
        return -1;
    }
    if (dur_field(v, "jitter", at, &jitter, err))
        return -1;
    f->min_ms = centre - jitter;
    f->max_ms = centre + jitter;
    return 0;
}

/* "socket": the socket faults of a simulator rule that a link can make too. */
static int parse_socket(const json_t *v, const char *at, ch_fault_t *f, char *err)
{
    const json_t *s = json_object_get(v, "socket");
    const char *name = json_is_string(s) ? json_string_value(s) : "";
    int t = type_named(name);
    if (t == CH_FAULT_RESET || t == CH_FAULT_HANG || t == CH_FAULT_DOWN)
        f->type = (ch_fault_type_t)t;
    else if (strcmp(name, "slow_body") == 0)
        PERR("socket: 'slow_body' is a simulator rule's (it dribbles an HTTP answer's body); on "
             "a link write {\"slice\": BYTES, \"interval\": DURATION}");
    else if (listed(rule_only_sockets, name))
        PERR("socket: '%s' is a simulator rule's (it shapes an HTTP answer, which a link does "
             "not parse); a link can reset, hang or be down",
             name);
    else
        PERR("socket: unknown socket fault '%.40s' (expected reset, hang or down)",
             json_is_string(s) ? name : "(not a string)");
    return 0;
}

/* "direction" and "probability", the same in both forms. */
static int common_fields(const json_t *v, const char *at, ch_fault_t *f, char *err)
{
    const json_t *d = json_object_get(v, "direction");
    if (d) {
        const char *s = json_is_string(d) ? json_string_value(d) : "";
        if (strcmp(s, "upstream") == 0)
            f->dirs = CH_DIR_UPSTREAM;
        else if (strcmp(s, "downstream") == 0)
            f->dirs = CH_DIR_DOWNSTREAM;
        else if (strcmp(s, "both") != 0)
            PERR("direction: must be \"upstream\", \"downstream\" or \"both\"");
    }
    const json_t *p = json_object_get(v, "probability");
    if (p) {
        if (!json_is_number(p) || json_number_value(p) < 0 || json_number_value(p) > 1)
            PERR("probability: must be a number from 0 to 1");
        f->probability = json_number_value(p);
    }
    if (f->type == CH_FAULT_DOWN)
        f->dirs = CH_DIR_BOTH; /* a down link refuses connections whatever their direction */
    return 0;
}

/* The current form: one effect key, its modifier, direction and probability. */
static int parse_current(const json_t *v, const char *at, ch_fault_t *f, char *err)
{
    const char *effect = NULL;
    for (size_t i = 0; effects[i]; i++) {
        if (!json_object_get(v, effects[i]))
            continue;
        if (effect)
            PERR("%s: one effect per fault, and this one has %s already (write them as two "
                 "faults)",
                 effects[i], effect);
        effect = effects[i];
    }
    if (!effect) {
        cm_errf(err, "%s: a fault needs one of latency, bandwidth, slice, socket, down", at);
        return -1;
    }
    /* The effect keys but socket are type names; socket's value names the type. */
    if (strcmp(effect, "socket") != 0)
        f->type = (ch_fault_type_t)type_named(effect);
    else if (parse_socket(v, at, f, err))
        return -1;

    if (f->type == CH_FAULT_DOWN) {
        if (strcmp(effect, "down") == 0 && !json_is_true(json_object_get(v, "down")))
            PERR("down: must be true (leave the fault out for a link that is up)");
        if (json_object_get(v, "probability"))
            PERR("probability: not allowed for down (a link is down for every connection)");
        if (json_object_get(v, "direction"))
            PERR("direction: not allowed for down (a link that is down refuses connections "
                 "both ways)");
    }
    const char *allowed[5] = {effect};
    size_t n = 1;
    if (modifiers[f->type])
        allowed[n++] = modifiers[f->type];
    if (f->type != CH_FAULT_DOWN) {
        allowed[n++] = "direction";
        allowed[n++] = "probability";
    }
    char what[40]; /* "latency", or "socket hang": the socket's word says which fields fit */
    snprintf(what, sizeof what, "%s", effect);
    if (strcmp(effect, "socket") == 0)
        snprintf(what, sizeof what, "socket %s", json_string_value(json_object_get(v, "socket")));
    if (only_fields(v, allowed, what, 1, at, err) || common_fields(v, at, f, err))
        return -1;

    switch (f->type) {
    case CH_FAULT_LATENCY:
        return parse_latency(v, at, f, err);
    case CH_FAULT_BANDWIDTH:
        return int_field(v, "bandwidth", at, 1, 0, 1, CH_FAULT_MAX_BYTES, "bytes per second",
                         &f->bytes_per_s, err);
    case CH_FAULT_SLICE:
        return int_field(v, "slice", at, 1, 0, 1, CH_FAULT_MAX_BYTES, "bytes per piece",
                         &f->slice_bytes, err) ||
                       dur_field(v, "interval", at, &f->interval_ms, err)
                   ? -1
                   : 0;
    case CH_FAULT_RESET:
        return int_field(v, "after_bytes", at, 0, 0, 0, CH_FAULT_MAX_BYTES, NULL, &f->after_bytes,
                         err);
    case CH_FAULT_HANG:
        if (dur_field(v, "hang_max", at, &f->hang_max_ms, err))
            return -1;
        if (json_object_get(v, "hang_max") && f->hang_max_ms == 0)
            PERR("hang_max: must be longer than 0 (leave it out to hang until a peer gives up)");
        return 0;
    default:
        return 0;
    }
}

/* The deprecated form, {"type":T,...} with integer milliseconds, read as it always was. */
static int parse_deprecated(const json_t *v, const char *at, ch_fault_t *f, char *err)
{
    const json_t *t = json_object_get(v, "type");
    size_t k = OLD_TYPES;
    for (size_t i = 0; json_is_string(t) && i < OLD_TYPES; i++)
        if (strcmp(json_string_value(t), old_types[i].name) == 0)
            k = i;
    if (k == OLD_TYPES)
        PERR("type: must be one of latency, bandwidth, slice, reset, blackhole, timeout, down "
             "(\"type\" is the deprecated form; now write e.g. {\"latency\": \"100ms\"})");
    for (size_t i = 0; effects[i]; i++)
        if (json_object_get(v, effects[i]))
            PERR("type: not with %s (\"type\" is the deprecated form; leave it out)", effects[i]);
    f->type = old_types[k].type;

    const char *allowed[6] = {"type", "direction"};
    size_t n = 2;
    if (f->type != CH_FAULT_DOWN)
        allowed[n++] = "probability";
    for (size_t i = 0; old_types[k].fields[i]; i++)
        allowed[n++] = old_types[k].fields[i];
    if (f->type == CH_FAULT_DOWN && json_object_get(v, "probability"))
        PERR("probability: not allowed for down (a link is down for every connection)");
    if (only_fields(v, allowed, old_types[k].name, 0, at, err) || common_fields(v, at, f, err))
        return -1;

    int64_t ms = 0, jitter = 0;
    switch (f->type) {
    case CH_FAULT_LATENCY:
        if (int_field(v, "ms", at, 1, 0, 0, CH_FAULT_MAX_MS, NULL, &ms, err) ||
            int_field(v, "jitter_ms", at, 0, 0, 0, CH_FAULT_MAX_MS, NULL, &jitter, err))
            return -1;
        f->min_ms = ms - jitter;
        f->max_ms = ms + jitter;
        return 0;
    case CH_FAULT_BANDWIDTH:
        return int_field(v, "bytes_per_s", at, 1, 0, 1, CH_FAULT_MAX_BYTES, NULL, &f->bytes_per_s,
                         err);
    case CH_FAULT_SLICE:
        return int_field(v, "bytes", at, 1, 0, 1, CH_FAULT_MAX_BYTES, NULL, &f->slice_bytes, err) ||
                       int_field(v, "delay_ms", at, 0, 0, 0, CH_FAULT_MAX_MS, NULL, &f->interval_ms,
                                 err)
                   ? -1
                   : 0;
    case CH_FAULT_RESET:
        return int_field(v, "after_bytes", at, 0, 0, 0, CH_FAULT_MAX_BYTES, NULL, &f->after_bytes,
                         err);
    case CH_FAULT_HANG: /* blackhole has no ms: it hangs for ever, as timeout with ms 0 */
        return int_field(v, "ms", at, 0, 0, 0, CH_FAULT_MAX_MS, NULL, &f->hang_max_ms, err);
    default:
        return 0;
    }
}

/* Parses one FAULT object into *f; *old says whether it was written in the deprecated
 * form. 0 on success, -1 with err set. */
static int parse_one(const json_t *v, const char *at, ch_fault_t *f, int *old, char *err)
{
    memset(f, 0, sizeof *f);
    f->dirs = CH_DIR_BOTH;
    f->probability = 1.0;
    *old = 0;
    if (!json_is_object(v)) {
        cm_errf(err, "%s: must be an object", at);
        return -1;
    }
    *old = json_object_get(v, "type") != NULL;
    return *old ? parse_deprecated(v, at, f, err) : parse_current(v, at, f, err);
}

cm_err_t ch_faults_parse(const json_t *body, ch_faults_t **out, char *err)
{
    *out = NULL;
    if (!json_is_object(body)) {
        cm_errf(err, "the body must be a JSON object {\"faults\":[...]}");
        return CM_EINVAL;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v)
    {
        if (strcmp(k, "faults") != 0) {
            cm_errf(err, "%s: unknown field (expected faults)", k);
            return CM_EINVAL;
        }
    }
    const json_t *arr = json_object_get(body, "faults");
    if (!arr) {
        cm_errf(err, "faults: required (an array of faults, [] for none)");
        return CM_EINVAL;
    }
    if (!json_is_array(arr)) {
        cm_errf(err, "faults: must be an array");
        return CM_EINVAL;
    }
    if (json_array_size(arr) > CH_FAULT_MAX) {
        cm_errf(err, "faults: at most %d faults", CH_FAULT_MAX);
        return CM_EINVAL;
    }
    ch_faults_t *l = ch_faults_empty();
    if (!l) {
        cm_errf(err, "out of memory");
        return CM_ENOMEM;
    }
    size_t i;
    json_array_foreach(arr, i, v)
    {
        char at[32];
        int old;
        snprintf(at, sizeof at, "faults[%zu]", i);
        if (parse_one(v, at, &l->items[i], &old, err) != 0) {
            ch_faults_unref(&l);
            return CM_EINVAL;
        }
        l->has_down |= l->items[i].type == CH_FAULT_DOWN;
        l->deprecated |= (uint32_t)old << i;
        l->n++;
    }
    *out = l;
    return CM_OK;
}

ch_faults_t *ch_faults_empty(void)
{
    ch_faults_t *l = calloc(1, sizeof *l);
    if (l)
        l->_refs = 1;
    return l;
}

ch_faults_t *ch_faults_ref(ch_faults_t *l)
{
    if (l)
        __atomic_add_fetch(&l->_refs, 1, __ATOMIC_RELAXED);
    return l;
}

void ch_faults_unref(ch_faults_t **lp)
{
    ch_faults_t *l = lp ? *lp : NULL;
    if (!l)
        return;
    if (__atomic_sub_fetch(&l->_refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(l);
    *lp = NULL;
}

/* Sets o[name] to ms as a duration string. 0, or -1 when out of memory. */
static int set_duration(json_t *o, const char *name, int64_t ms)
{
    char text[32];
    return json_object_set_new(o, name, json_string(cm_duration_format(ms, text)));
}

/* The fault in the current form. full spells out every field with its default (what GET
 * shows); otherwise only what differs from the defaults (what a deprecation note says). */
static json_t *fault_json(const ch_fault_t *f, int full)
{
    json_t *o = json_object();
    int bad = !o;
    int64_t width = f->max_ms - f->min_ms;
    switch (f->type) {
    case CH_FAULT_LATENCY:
        /* Latency and jitter when the range has a whole-millisecond centre (always, when it
         * was written that way: only then can min be negative); else the range itself. */
        if (width % 2 == 0) {
            bad |= set_duration(o, "latency", f->min_ms + width / 2);
            if (full || width)
                bad |= set_duration(o, "jitter", width / 2);
        } else {
            char lo[32], hi[32];
            bad |= json_object_set_new(o, "latency",
                                       json_pack("{s:[s,s]}", "uniform",
                                                 cm_duration_format(f->min_ms, lo),
                                                 cm_duration_format(f->max_ms, hi)));
        }
        break;
    case CH_FAULT_BANDWIDTH:
        bad |= json_object_set_new(o, "bandwidth", json_integer(f->bytes_per_s));
        break;
    case CH_FAULT_SLICE:
        bad |= json_object_set_new(o, "slice", json_integer(f->slice_bytes));
        if (full || f->interval_ms)
            bad |= set_duration(o, "interval", f->interval_ms);
        break;
    case CH_FAULT_RESET:
        bad |= json_object_set_new(o, "socket", json_string("reset"));
        if (full || f->after_bytes)
            bad |= json_object_set_new(o, "after_bytes", json_integer(f->after_bytes));
        break;
    case CH_FAULT_HANG:
        bad |= json_object_set_new(o, "socket", json_string("hang"));
        if (f->hang_max_ms)
            bad |= set_duration(o, "hang_max", f->hang_max_ms);
        break;
    default:
        bad |= json_object_set_new(o, "down", json_true());
        break;
    }
    if (f->type != CH_FAULT_DOWN && (full || f->dirs != CH_DIR_BOTH))
        bad |= json_object_set_new(o, "direction", json_string(ch_dir_name(f->dirs)));
    if (f->type != CH_FAULT_DOWN && (full || f->probability != 1.0))
        bad |= json_object_set_new(o, "probability", json_real(f->probability));
    if (bad)
        json_decref(o);
    return bad ? NULL : o;
}

json_t *ch_fault_json(const ch_fault_t *f)
{
    return fault_json(f, 1);
}

json_t *ch_faults_json(const ch_faults_t *l)
{
    json_t *a = json_array();
    for (size_t i = 0; a && l && i < l->n; i++) {
        json_t *f = ch_fault_json(&l->items[i]);
        if (!f || json_array_append_new(a, f) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

json_t *ch_faults_deprecation_notes(const ch_faults_t *l)
{
    if (!l || !l->deprecated)
        return NULL;
    json_t *a = json_array();
    for (size_t i = 0; a && i < l->n; i++) {
        if (!(l->deprecated & (1u << i)))
            continue;
        json_t *now = fault_json(&l->items[i], 0);
        char *text = now ? cm_json_dumps(now) : NULL;
        json_t *note = text ? json_sprintf("faults[%zu]: the {\"type\":...} form with integer "
                                           "milliseconds is deprecated and goes in the next "
                                           "release; write %s",
                                           i, text)
                            : NULL;
        if (!note || json_array_append_new(a, note) != 0) {
            json_decref(a);
            a = NULL;
        }
        free(text);
        json_decref(now);
    }
    return a;
}
