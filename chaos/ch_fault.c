/* ch_fault.c - fault JSON: validation with located messages, the immutable list, and the
 * list's JSON. */
#include "ch_fault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[CH_FAULT__COUNT] = {
    [CH_FAULT_LATENCY] = "latency",     [CH_FAULT_BANDWIDTH] = "bandwidth",
    [CH_FAULT_SLICE] = "slice",         [CH_FAULT_RESET] = "reset",
    [CH_FAULT_BLACKHOLE] = "blackhole", [CH_FAULT_TIMEOUT] = "timeout",
    [CH_FAULT_DOWN] = "down",
};

/* The fields each type takes besides type, direction and probability. */
static const char *const type_fields[CH_FAULT__COUNT][3] = {
    [CH_FAULT_LATENCY] = {"ms", "jitter_ms", NULL},
    [CH_FAULT_BANDWIDTH] = {"bytes_per_s", NULL},
    [CH_FAULT_SLICE] = {"bytes", "delay_ms", NULL},
    [CH_FAULT_RESET] = {"after_bytes", NULL},
    [CH_FAULT_BLACKHOLE] = {NULL},
    [CH_FAULT_TIMEOUT] = {"ms", NULL},
    [CH_FAULT_DOWN] = {NULL},
};

const char *ch_fault_type_name(ch_fault_type_t t)
{
    return (unsigned)t < CH_FAULT__COUNT ? type_names[t] : "?";
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
        char _m[CM_ERR_LEN];                                                                       \
        snprintf(_m, sizeof _m, __VA_ARGS__);                                                      \
        cm_errf(err, "%s.%s", at, _m);                                                             \
        return -1;                                                                                 \
    } while (0)

/* Reads an integer field in [min, max]; absent gives def, or an error when required. */
static int int_field(const json_t *o, const char *name, const char *at, int required, int64_t def,
                     int64_t min, int64_t max, int64_t *out, char *err)
{
    const json_t *v = json_object_get(o, name);
    const char *what = min > 0 ? "a positive integer" : "a non-negative integer";
    if (!v) {
        if (required)
            PERR("%s: required (%s)", name, what);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min)
        PERR("%s: must be %s", name, what);
    if (json_integer_value(v) > max)
        PERR("%s: must be at most %lld", name, (long long)max);
    *out = json_integer_value(v);
    return 0;
}

int ch_fault_parse_one(const json_t *v, const char *at, ch_fault_t *f, char *err)
{
    memset(f, 0, sizeof *f);
    if (!json_is_object(v)) {
        cm_errf(err, "%s: must be an object", at);
        return -1;
    }
    const json_t *t = json_object_get(v, "type");
    if (!t)
        PERR("type: required (one of latency, bandwidth, slice, reset, blackhole, timeout, "
             "down)");
    int type = -1;
    for (int k = 0; json_is_string(t) && k < CH_FAULT__COUNT; k++)
        if (strcmp(json_string_value(t), type_names[k]) == 0)
            type = k;
    if (type < 0)
        PERR("type: must be one of latency, bandwidth, slice, reset, blackhole, timeout, down");
    f->type = (ch_fault_type_t)type;

    const char *k;
    json_t *fv;
    json_object_foreach((json_t *)v, k, fv)
    {
        int ok =
            strcmp(k, "type") == 0 || strcmp(k, "direction") == 0 || strcmp(k, "probability") == 0;
        for (size_t i = 0; !ok && type_fields[type][i]; i++)
            ok = strcmp(k, type_fields[type][i]) == 0;
        if (!ok) {
            char expected[128] = "type, direction";
            if (type != CH_FAULT_DOWN)
                strcat(expected, ", probability");
            for (size_t i = 0; type_fields[type][i]; i++) {
                strcat(expected, ", ");
                strcat(expected, type_fields[type][i]);
            }
            PERR("%s: unknown field for %s (expected %s)", k, type_names[type], expected);
        }
    }

    f->dirs = CH_DIR_BOTH;
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
    f->probability = 1.0;
    const json_t *p = json_object_get(v, "probability");
    if (p && type == CH_FAULT_DOWN)
        PERR("probability: not allowed for down (a link is down for every connection)");
    if (p) {
        if (!json_is_number(p) || json_number_value(p) < 0 || json_number_value(p) > 1)
            PERR("probability: must be a number from 0 to 1");
        f->probability = json_number_value(p);
    }
    if (type == CH_FAULT_DOWN)
        f->dirs = CH_DIR_BOTH; /* direction is accepted but means nothing for down */

    switch (f->type) {
    case CH_FAULT_LATENCY:
        if (int_field(v, "ms", at, 1, 0, 0, CH_FAULT_MAX_MS, &f->ms, err) ||
            int_field(v, "jitter_ms", at, 0, 0, 0, CH_FAULT_MAX_MS, &f->jitter_ms, err))
            return -1;
        break;
    case CH_FAULT_BANDWIDTH:
        if (int_field(v, "bytes_per_s", at, 1, 0, 1, CH_FAULT_MAX_BYTES, &f->bytes_per_s, err))
            return -1;
        break;
    case CH_FAULT_SLICE:
        if (int_field(v, "bytes", at, 1, 0, 1, CH_FAULT_MAX_BYTES, &f->bytes, err) ||
            int_field(v, "delay_ms", at, 0, 0, 0, CH_FAULT_MAX_MS, &f->delay_ms, err))
            return -1;
        break;
    case CH_FAULT_RESET:
        if (int_field(v, "after_bytes", at, 0, 0, 0, CH_FAULT_MAX_BYTES, &f->after_bytes, err))
            return -1;
        break;
    case CH_FAULT_TIMEOUT:
        if (int_field(v, "ms", at, 0, 0, 0, CH_FAULT_MAX_MS, &f->ms, err))
            return -1;
        break;
    default:
        break;
    }
    return 0;
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
        snprintf(at, sizeof at, "faults[%zu]", i);
        if (ch_fault_parse_one(v, at, &l->items[i], err) != 0) {
            ch_faults_unref(&l);
            return CM_EINVAL;
        }
        l->has_down |= l->items[i].type == CH_FAULT_DOWN;
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

json_t *ch_fault_json(const ch_fault_t *f)
{
    if (f->type == CH_FAULT_DOWN)
        return json_pack("{s:s}", "type", "down");
    json_t *o = json_pack("{s:s,s:s,s:f}", "type", ch_fault_type_name(f->type), "direction",
                          ch_dir_name(f->dirs), "probability", f->probability);
    if (!o)
        return NULL;
    int bad = 0;
    switch (f->type) {
    case CH_FAULT_LATENCY:
        bad |= json_object_set_new(o, "ms", json_integer(f->ms));
        bad |= json_object_set_new(o, "jitter_ms", json_integer(f->jitter_ms));
        break;
    case CH_FAULT_BANDWIDTH:
        bad |= json_object_set_new(o, "bytes_per_s", json_integer(f->bytes_per_s));
        break;
    case CH_FAULT_SLICE:
        bad |= json_object_set_new(o, "bytes", json_integer(f->bytes));
        bad |= json_object_set_new(o, "delay_ms", json_integer(f->delay_ms));
        break;
    case CH_FAULT_RESET:
        bad |= json_object_set_new(o, "after_bytes", json_integer(f->after_bytes));
        break;
    case CH_FAULT_TIMEOUT:
        bad |= json_object_set_new(o, "ms", json_integer(f->ms));
        break;
    default:
        break;
    }
    if (bad)
        json_decref(o);
    return bad ? NULL : o;
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
