/* sc_match.c - path lookup, lenient deep equality and the $-operators. */
#include "sc_match.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_json.h"
#include "sc_duration.h"

/* Diagnosis text is best effort: a full buffer must not change the verdict (a cast to
 * void does not silence warn_unused_result in GCC). */
#define BEST_EFFORT(expr)                                                                          \
    do {                                                                                           \
        if (expr) {                                                                                \
        }                                                                                          \
    } while (0)

/* Longest rendering of a value in a diagnosis; the full answer is shown elsewhere. */
#define SC_MATCH_SHOW 300

const json_t *sc_match_path(const json_t *root, const char *path)
{
    const json_t *cur = root;
    const char *p = path;
    char key[256];
    while (cur && *p) {
        size_t klen = strcspn(p, ".");
        if (klen >= sizeof key)
            return NULL;
        memcpy(key, p, klen);
        key[klen] = '\0';
        if (json_is_object(cur)) {
            cur = json_object_get(cur, key);
        } else if (json_is_array(cur)) {
            char *end;
            long idx = strtol(key, &end, 10);
            if (!*key || *end)
                return NULL;
            if (idx < 0)
                idx += (long)json_array_size(cur);
            cur = idx >= 0 ? json_array_get(cur, (size_t)idx) : NULL;
        } else {
            cur = NULL;
        }
        p += klen;
        if (*p == '.')
            p++;
    }
    return cur;
}

/* A path with a "*" segment ("entries.*.status"): the array of what the rest of the path
 * gives for each element of the array there (null where an element lacks it). A new
 * reference, or NULL when the path does not reach an array at the "*". Without "*": the
 * borrowed value, incref'd. */
static json_t *resolve(const json_t *root, const char *path)
{
    const char *star = !strcmp(path, "*") || !strncmp(path, "*.", 2) ? path : strstr(path, ".*");
    while (star && star != path && star[2] != '\0' && star[2] != '.')
        star = strstr(star + 2, ".*"); /* ".*x" is a key, not the wildcard */
    if (!star)
        return json_incref((json_t *)sc_match_path(root, path));
    char head[512];
    size_t hlen = star == path ? 0 : (size_t)(star - path);
    const char *rest = star + (star == path ? 1 : 2);
    if (hlen >= sizeof head)
        return NULL;
    memcpy(head, path, hlen);
    head[hlen] = '\0';
    const json_t *arr = hlen ? sc_match_path(root, head) : root;
    if (!json_is_array(arr))
        return NULL;
    if (*rest == '.')
        rest++;
    json_t *out = json_array();
    for (size_t i = 0; out && i < json_array_size(arr); i++) {
        json_t *v =
            *rest ? resolve(json_array_get(arr, i), rest) : json_incref(json_array_get(arr, i));
        json_array_append_new(out, v ? v : json_null());
    }
    return out;
}

static int is_number(const json_t *v)
{
    return json_is_integer(v) || json_is_real(v);
}

int sc_match_equal(const json_t *a, const json_t *b)
{
    if (is_number(a) && is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_is_array(a) && json_is_array(b)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!sc_match_equal(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    if (json_is_object(a) && json_is_object(b)) {
        const char *k;
        json_t *v;
        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_foreach((json_t *)a, k, v)
        {
            if (!sc_match_equal(v, json_object_get(b, k)))
                return 0;
        }
        return 1;
    }
    return json_equal((json_t *)a, (json_t *)b);
}

static int is_operator_object(const json_t *v)
{
    const char *k;
    json_t *x;
    if (!json_is_object(v) || json_object_size(v) == 0)
        return 0;
    json_object_foreach((json_t *)v, k, x)
    {
        if (k[0] == '$')
            return 1;
    }
    return 0;
}

static const char *const type_names[] = {"string", "number", "integer", "boolean",
                                         "null",   "object", "array",   NULL};

static int order(const json_t *a, const json_t *b);

/* $gaps: the differences between consecutive elements' field (times in ms). */
typedef struct {
    const char *field; /* "" : the elements themselves */
    int has_min, has_max, has_env, has_largest, has_spread;
    int64_t min, max;
    /* largest: the largest gap is at least this (a wait happened: a breaker held off, a
     * back-off grew); spread: the largest minus the smallest is at least this (the gaps are
     * not all one fixed interval: jitter or growth). Both need two gaps or more. */
    int64_t largest, spread;
    int64_t base, cap, slack; /* envelope: gap i <= min(cap, base * factor^i) + slack */
    double factor;
} gaps_t;

/* A duration operand: milliseconds as a number, or "250ms" / "1s" / "2m". */
static cm_err_t duration_of(const json_t *v, const char *name, int64_t *ms, char *err)
{
    char derr[CM_ERR_LEN];
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *ms = json_integer_value(v);
        return CM_OK;
    }
    if (json_is_string(v) && sc_duration_parse(json_string_value(v), ms, derr) == CM_OK)
        return CM_OK;
    cm_errf(err, "\"%s\" must be milliseconds or a duration like \"250ms\"", name);
    return CM_EINVAL;
}

static cm_err_t gaps_parse(const json_t *v, gaps_t *g, char *err)
{
    const char *k;
    json_t *x;
    memset(g, 0, sizeof *g);
    g->field = "";
    if (!json_is_object(v)) {
        cm_errf(err, "needs an object {\"field\", \"min\", \"max\", \"envelope\"}");
        return CM_EINVAL;
    }
    json_object_foreach((json_t *)v, k, x)
    {
        cm_err_t rc = CM_OK;
        if (!strcmp(k, "field")) {
            if (!json_is_string(x)) {
                cm_errf(err, "\"field\" must be a string");
                return CM_EINVAL;
            }
            g->field = json_string_value(x);
        } else if (!strcmp(k, "min")) {
            g->has_min = 1;
            rc = duration_of(x, "min", &g->min, err);
        } else if (!strcmp(k, "max")) {
            g->has_max = 1;
            rc = duration_of(x, "max", &g->max, err);
        } else if (!strcmp(k, "largest")) {
            g->has_largest = 1;
            rc = duration_of(x, "largest", &g->largest, err);
        } else if (!strcmp(k, "spread")) {
            g->has_spread = 1;
            rc = duration_of(x, "spread", &g->spread, err);
        } else if (!strcmp(k, "envelope")) {
            const json_t *b = json_object_get(x, "base"), *f = json_object_get(x, "factor");
            const json_t *c = json_object_get(x, "cap"), *sl = json_object_get(x, "slack");
            if (!json_is_object(x) || !b || !c ||
                json_object_size(x) != 2u + (f != NULL) + (sl != NULL)) {
                cm_errf(err, "\"envelope\" needs \"base\" and \"cap\", and may have \"factor\" "
                             "(default 2) and \"slack\"");
                return CM_EINVAL;
            }
            g->has_env = 1;
            g->factor = 2;
            if (f && (!is_number(f) || json_number_value(f) < 1)) {
                cm_errf(err, "\"envelope\".\"factor\" must be a number >= 1");
                return CM_EINVAL;
            }
            if (f)
                g->factor = json_number_value(f);
            rc = duration_of(b, "base", &g->base, err);
            if (!rc)
                rc = duration_of(c, "cap", &g->cap, err);
            if (!rc && sl)
                rc = duration_of(sl, "slack", &g->slack, err);
        } else {
            cm_errf(err, "unknown key \"%s\" (field, min, max, envelope, largest, spread)", k);
            return CM_EINVAL;
        }
        if (rc)
            return rc;
    }
    if (!g->has_min && !g->has_max && !g->has_env && !g->has_largest && !g->has_spread) {
        cm_errf(err, "say what the gaps must be: \"min\", \"max\", \"envelope\", "
                     "\"largest\" and/or \"spread\"");
        return CM_EINVAL;
    }
    return CM_OK;
}

/* The field of element i as a number (ms), or 0 when it is not one. */
static int element_ms(const json_t *arr, size_t i, const char *field, double *out)
{
    const json_t *e = json_array_get(arr, i);
    const json_t *v = *field ? sc_match_path(e, field) : e;
    if (!is_number(v))
        return 0;
    *out = json_number_value(v);
    return 1;
}

/* Do the gaps hold? When diag is given, lists every gap and marks the bad ones. */
static int gaps_hold(const json_t *got, const gaps_t *g, cm_buf_t *diag)
{
    if (!json_is_array(got))
        return 0;
    int ok = 1;
    size_t n = json_array_size(got);
    double prev = 0, lo = 0, hi = 0;
    for (size_t i = 0; i < n; i++) {
        double t;
        if (!element_ms(got, i, g->field, &t)) {
            if (diag)
                BEST_EFFORT(
                    cm_buf_printf(diag, " [element %zu has no number at \"%s\"]", i, g->field));
            return 0;
        }
        if (i > 0) {
            double gap = t - prev;
            int good = 1;
            if (g->has_min && gap < (double)g->min)
                good = 0;
            if (g->has_max && gap > (double)g->max)
                good = 0;
            double lim = 0;
            if (g->has_env) {
                lim = (double)g->base;
                for (size_t e = 1; e < i && lim < (double)g->cap; e++)
                    lim *= g->factor;
                if (lim > (double)g->cap)
                    lim = (double)g->cap;
                if (gap < 0 || gap > lim + (double)g->slack)
                    good = 0;
            }
            if (diag)
                BEST_EFFORT(cm_buf_printf(diag, "%s%.0f%s", i == 1 ? " [gaps ms: " : ", ", gap,
                                          good ? "" : "!"));
            if (diag && g->has_env && !good)
                BEST_EFFORT(cm_buf_printf(diag, " (envelope %.0f)", lim + (double)g->slack));
            ok &= good;
            lo = i == 1 || gap < lo ? gap : lo;
            hi = i == 1 || gap > hi ? gap : hi;
        }
        prev = t;
    }
    if (diag && n > 1)
        BEST_EFFORT(cm_buf_addstr(diag, "]"));
    /* Over fewer than two gaps there is no spread to see, and no growth either. */
    if (g->has_largest && (n < 3 || hi < (double)g->largest)) {
        ok = 0;
        if (diag)
            BEST_EFFORT(cm_buf_printf(diag, " [largest gap %.0f ms, wanted >= %lld over 2+ gaps]",
                                      n > 1 ? hi : 0.0, (long long)g->largest));
    }
    if (g->has_spread && (n < 3 || hi - lo < (double)g->spread)) {
        ok = 0;
        if (diag)
            BEST_EFFORT(cm_buf_printf(diag, " [gaps spread %.0f ms, wanted >= %lld over 2+ gaps]",
                                      n > 2 ? hi - lo : 0.0, (long long)g->spread));
    }
    return ok;
}

static int sorted_by(const json_t *got, const char *field)
{
    if (!json_is_array(got))
        return 0;
    for (size_t i = 1; i < json_array_size(got); i++) {
        const json_t *a = json_array_get(got, i - 1), *b = json_array_get(got, i);
        const json_t *x = *field ? sc_match_path(a, field) : a;
        const json_t *y = *field ? sc_match_path(b, field) : b;
        if (!x || !y)
            return 0;
        int c = order(x, y);
        if (c == -2 || c > 0)
            return 0;
    }
    return 1;
}

static cm_err_t validate_ops(const char *path, const json_t *ops, char *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)ops, k, v)
    {
        if (k[0] != '$') {
            cm_errf(err, "\"%s\": cannot mix operators and the plain key \"%s\"", path, k);
            return CM_EINVAL;
        }
        if (!strcmp(k, "$eq") || !strcmp(k, "$ne") || !strcmp(k, "$contains"))
            continue;
        if (!strcmp(k, "$gt") || !strcmp(k, "$gte") || !strcmp(k, "$lt") || !strcmp(k, "$lte")) {
            if (!is_number(v) && !json_is_string(v)) {
                cm_errf(err, "\"%s\": %s needs a number or a string", path, k);
                return CM_EINVAL;
            }
        } else if (!strcmp(k, "$exists")) {
            if (!json_is_boolean(v)) {
                cm_errf(err, "\"%s\": $exists needs true or false", path);
                return CM_EINVAL;
            }
        } else if (!strcmp(k, "$len")) {
            if (is_operator_object(v)) {
                cm_err_t rc = validate_ops(path, v, err);
                if (rc)
                    return rc;
            } else if (!json_is_integer(v) || json_integer_value(v) < 0) {
                cm_errf(err, "\"%s\": $len needs a non-negative integer or operators", path);
                return CM_EINVAL;
            }
        } else if (!strcmp(k, "$in")) {
            if (!json_is_array(v)) {
                cm_errf(err, "\"%s\": $in needs an array", path);
                return CM_EINVAL;
            }
        } else if (!strcmp(k, "$each")) {
            char sub[CM_ERR_LEN];
            if (sc_match_validate(v, sub) != CM_OK) {
                cm_errf(err, "\"%s\": $each: %s", path, sub);
                return CM_EINVAL;
            }
        } else if (!strcmp(k, "$sorted")) {
            if (!json_is_string(v)) {
                cm_errf(err, "\"%s\": $sorted needs the field to sort by (\"\" for the elements)",
                        path);
                return CM_EINVAL;
            }
        } else if (!strcmp(k, "$gaps")) {
            gaps_t g;
            char sub[CM_ERR_LEN];
            if (gaps_parse(v, &g, sub) != CM_OK) {
                cm_errf(err, "\"%s\": $gaps: %s", path, sub);
                return CM_EINVAL;
            }
        } else if (!strcmp(k, "$type")) {
            int ok = 0;
            for (int i = 0; json_is_string(v) && type_names[i]; i++)
                ok |= !strcmp(json_string_value(v), type_names[i]);
            if (!ok) {
                cm_errf(err,
                        "\"%s\": $type must be one of string, number, integer, boolean, "
                        "null, object, array",
                        path);
                return CM_EINVAL;
            }
        } else {
            cm_errf(err,
                    "\"%s\": unknown operator \"%s\" (known: $eq $ne $gt $gte $lt $lte "
                    "$exists $len $contains $in $type $each $sorted $gaps)",
                    path, k);
            return CM_EINVAL;
        }
    }
    return CM_OK;
}

cm_err_t sc_match_validate(const json_t *spec, char *err)
{
    const char *k;
    json_t *v;
    if (!json_is_object(spec)) {
        cm_errf(err, "must be an object of path -> expected value");
        return CM_EINVAL;
    }
    json_object_foreach((json_t *)spec, k, v)
    {
        if (is_operator_object(v)) {
            cm_err_t rc = validate_ops(k, v, err);
            if (rc)
                return rc;
        }
    }
    return CM_OK;
}

static const char *type_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* Compares with the ordering operators; -2 when the types cannot be ordered. */
static int order(const json_t *a, const json_t *b)
{
    if (is_number(a) && is_number(b)) {
        double x = json_number_value(a), y = json_number_value(b);
        if (json_is_integer(a) && json_is_integer(b)) {
            json_int_t i = json_integer_value(a), j = json_integer_value(b);
            return i < j ? -1 : i > j;
        }
        return x < y ? -1 : x > y;
    }
    if (json_is_string(a) && json_is_string(b)) {
        int c = strcmp(json_string_value(a), json_string_value(b));
        return c < 0 ? -1 : c > 0;
    }
    return -2;
}

static int length_of(const json_t *v, size_t *len)
{
    if (json_is_string(v))
        *len = json_string_length(v);
    else if (json_is_array(v))
        *len = json_array_size(v);
    else if (json_is_object(v))
        *len = json_object_size(v);
    else
        return 0;
    return 1;
}

/* Does the (possibly NULL) value satisfy all operators? */
static int ops_hold(const json_t *got, const json_t *ops)
{
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)ops, k, x)
    {
        if (!strcmp(k, "$exists")) {
            if ((got != NULL) != json_is_true(x))
                return 0;
            continue;
        }
        if (!got)
            return 0;
        if (!strcmp(k, "$eq")) {
            if (!sc_match_equal(got, x))
                return 0;
        } else if (!strcmp(k, "$ne")) {
            if (sc_match_equal(got, x))
                return 0;
        } else if (!strcmp(k, "$gt") || !strcmp(k, "$gte") || !strcmp(k, "$lt") ||
                   !strcmp(k, "$lte")) {
            int c = order(got, x);
            if (c == -2)
                return 0;
            int ok = !strcmp(k, "$gt")    ? c > 0
                     : !strcmp(k, "$gte") ? c >= 0
                     : !strcmp(k, "$lt")  ? c < 0
                                          : c <= 0;
            if (!ok)
                return 0;
        } else if (!strcmp(k, "$len")) {
            size_t n;
            if (!length_of(got, &n))
                return 0;
            json_t *nj = json_integer((json_int_t)n);
            int ok = nj && (json_is_object(x) ? ops_hold(nj, x) : sc_match_equal(nj, x));
            json_decref(nj);
            if (!ok)
                return 0;
        } else if (!strcmp(k, "$contains")) {
            int ok = 0;
            if (json_is_string(got) && json_is_string(x)) {
                ok = strstr(json_string_value(got), json_string_value(x)) != NULL;
            } else if (json_is_array(got)) {
                for (size_t i = 0; !ok && i < json_array_size(got); i++)
                    ok = sc_match_equal(json_array_get(got, i), x);
            }
            if (!ok)
                return 0;
        } else if (!strcmp(k, "$in")) {
            int ok = 0;
            for (size_t i = 0; !ok && i < json_array_size(x); i++)
                ok = sc_match_equal(got, json_array_get(x, i));
            if (!ok)
                return 0;
        } else if (!strcmp(k, "$each")) {
            /* An array's elements, or an object's values (maps keyed by an id). */
            const char *ek;
            json_t *ev;
            if (!json_is_array(got) && !json_is_object(got))
                return 0;
            for (size_t i = 0; i < json_array_size(got); i++)
                if (sc_match(json_array_get(got, i), x, NULL) != 0)
                    return 0;
            json_object_foreach((json_t *)got, ek, ev)
            {
                if (sc_match(ev, x, NULL) != 0)
                    return 0;
            }
        } else if (!strcmp(k, "$sorted")) {
            if (!sorted_by(got, json_string_value(x)))
                return 0;
        } else if (!strcmp(k, "$gaps")) {
            gaps_t g;
            if (gaps_parse(x, &g, NULL) != CM_OK || !gaps_hold(got, &g, NULL))
                return 0;
        } else if (!strcmp(k, "$type")) {
            const char *want = json_string_value(x);
            const char *have = type_of(got);
            int ok = !strcmp(want, have) || (!strcmp(want, "number") && is_number(got));
            if (!ok)
                return 0;
        } else {
            return 0; /* not validated: never a silent pass */
        }
    }
    return 1;
}

/* Appends a value shortened to SC_MATCH_SHOW bytes. */
static void show(cm_buf_t *b, const json_t *v)
{
    char *t = cm_json_dumps(v);
    if (!t) {
        BEST_EFFORT(cm_buf_addstr(b, "(?)"));
        return;
    }
    size_t n = strlen(t);
    if (n > SC_MATCH_SHOW)
        BEST_EFFORT(cm_buf_printf(b, "%.*s... (%zu bytes)", SC_MATCH_SHOW, t, n));
    else
        BEST_EFFORT(cm_buf_addstr(b, t));
    free(t);
}

int sc_match(const json_t *answer, const json_t *spec, cm_buf_t *diag)
{
    const char *k;
    json_t *want;
    int bad = 0;
    json_object_foreach((json_t *)spec, k, want)
    {
        json_t *got = answer ? resolve(answer, k) : NULL;
        int ok = is_operator_object(want) ? ops_hold(got, want)
                                          : (got != NULL && sc_match_equal(got, want));
        if (ok) {
            json_decref(got);
            continue;
        }
        bad++;
        if (!diag) {
            json_decref(got);
            continue;
        }
        BEST_EFFORT(cm_buf_printf(diag, "  \"%s\": expected ", k));
        show(diag, want);
        if (!answer) {
            BEST_EFFORT(cm_buf_addstr(diag, ", got no JSON answer\n"));
        } else if (!got) {
            BEST_EFFORT(cm_buf_addstr(diag, ", got nothing (no such path)\n"));
        } else {
            size_t len;
            BEST_EFFORT(cm_buf_addstr(diag, ", got "));
            show(diag, got);
            /* A long array cut to SC_MATCH_SHOW bytes hides its length: say it. */
            if (is_operator_object(want) && json_object_get(want, "$len") && length_of(got, &len))
                BEST_EFFORT(cm_buf_printf(diag, " (length %zu)", len));
            /* Which gaps were wrong, and which element broke an $each. */
            gaps_t g;
            const json_t *gs = is_operator_object(want) ? json_object_get(want, "$gaps") : NULL;
            if (gs && gaps_parse(gs, &g, NULL) == CM_OK)
                gaps_hold(got, &g, diag);
            const json_t *each = is_operator_object(want) ? json_object_get(want, "$each") : NULL;
            for (size_t i = 0; each && json_is_array(got) && i < json_array_size(got); i++) {
                if (sc_match(json_array_get(got, i), each, NULL) != 0) {
                    BEST_EFFORT(cm_buf_printf(diag, " [element %zu: ", i));
                    show(diag, json_array_get(got, i));
                    BEST_EFFORT(cm_buf_addstr(diag, "]"));
                    break;
                }
            }
            const char *ek;
            json_t *ev;
            json_object_foreach(each && json_is_object(got) ? (json_t *)got : NULL, ek, ev)
            {
                if (sc_match(ev, each, NULL) != 0) {
                    BEST_EFFORT(cm_buf_printf(diag, " [\"%s\": ", ek));
                    show(diag, ev);
                    BEST_EFFORT(cm_buf_addstr(diag, "]"));
                    break;
                }
            }
            BEST_EFFORT(cm_buf_addstr(diag, "\n"));
        }
        json_decref(got);
    }
    return bad;
}

int sc_match_value(const json_t *got, const json_t *want, const char *label, cm_buf_t *diag)
{
    int ok = is_operator_object(want) ? ops_hold(got, want) : (got && sc_match_equal(got, want));
    if (ok || !diag)
        return ok;
    BEST_EFFORT(cm_buf_printf(diag, "  %s: expected ", label));
    show(diag, want);
    if (got) {
        BEST_EFFORT(cm_buf_addstr(diag, ", got "));
        show(diag, got);
        BEST_EFFORT(cm_buf_addstr(diag, "\n"));
    } else {
        BEST_EFFORT(cm_buf_addstr(diag, ", got nothing (no such series)\n"));
    }
    return 0;
}
