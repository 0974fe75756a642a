/* sim_setting.c - duration settings in the one grammar, with the deprecated "_ms" forms. */
#include "sim_setting.h"

#include <stdarg.h>
#include <stdio.h>

#include "cm_duration.h"
#include "cm_log.h"

#define GONE "is deprecated and goes in the next release; write"

void sim_setting_deprecated(const sim_setting_warn_t *w, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    CM_WARN(w->comp, "%s", text);
    /* The answer's note is a courtesy; the log line above already tells. */
    if (w->notes && json_array_append_new(w->notes, json_string(text)) != 0)
        CM_WARN(w->comp, "could not add the deprecation note to the answer");
}

/* Finds setting name in body: 1 with *v the value given, *old set when it is the
 * deprecated form (whose name goes into old_name); 0 when neither form is there; -1 when
 * both are. */
static int pick(const json_t *body, const char *name, char old_name[64], const json_t **v, int *old,
                char *err)
{
    snprintf(old_name, 64, "%s_ms", name);
    const json_t *now = json_object_get(body, name);
    const json_t *dep = json_object_get(body, old_name);
    if (now && dep) {
        cm_errf(err, "give %s or %s, not both (%s is its deprecated form)", name, old_name,
                old_name);
        return -1;
    }
    *old = dep != NULL;
    *v = now ? now : dep;
    return *v != NULL;
}

/* One value of s, named what in err: a duration string, or integer milliseconds when it is
 * the deprecated form. */
static int one(const json_t *v, const sim_setting_t *s, int old, const char *what, int64_t *ms,
               char *err)
{
    char derr[CM_ERR_LEN], lo[32], hi[32];
    int64_t x = 0;
    if (old) {
        if (!json_is_integer(v)) {
            cm_errf(err, "%s must be an integer of milliseconds", what);
            return -1;
        }
        x = json_integer_value(v);
    } else if (!json_is_string(v)) {
        cm_errf(err, "%s must be a string, a duration such as \"250ms\", \"1.5s\", \"2m\", \"1h\"",
                what);
        return -1;
    } else if ((s->min_ms < 0 ? cm_duration_parse_signed(json_string_value(v), 0, &x, derr)
                              : cm_duration_parse(json_string_value(v), 0, &x, derr)) != CM_OK) {
        cm_errf(err, "%s: %s", what, derr);
        return -1;
    }
    if (x < s->min_ms || x > s->max_ms) {
        if (old)
            cm_errf(err, "%s must be from %lld to %lld", what, (long long)s->min_ms,
                    (long long)s->max_ms);
        else
            cm_errf(err, "%s must be from %s to %s", what, cm_duration_format(s->min_ms, lo),
                    cm_duration_format(s->max_ms, hi));
        return -1;
    }
    *ms = x;
    return 0;
}

int sim_setting_duration(const json_t *body, const sim_setting_t *s, int64_t *ms,
                         const sim_setting_warn_t *w, char *err)
{
    char old_name[64], now[32];
    const json_t *v;
    int old, given = pick(body, s->name, old_name, &v, &old, err);
    if (given <= 0)
        return given;
    if (one(v, s, old, old ? old_name : s->name, ms, err) != 0)
        return -1;
    if (old)
        sim_setting_deprecated(w, "\"%s\" " GONE " \"%s\": \"%s\"", old_name, s->name,
                               cm_duration_format(*ms, now));
    return 1;
}

int sim_setting_durations(const json_t *body, const sim_setting_t *s, size_t cap, int64_t *ms,
                          size_t *n, const sim_setting_warn_t *w, char *err)
{
    char old_name[64], what[96], now[1024] = "", one_text[32];
    const json_t *v;
    int old, given = pick(body, s->name, old_name, &v, &old, err);
    if (given <= 0)
        return given;
    const char *name = old ? old_name : s->name;
    if (!json_is_array(v) || json_array_size(v) > cap) {
        cm_errf(err, "%s must be an array of at most %zu %s", name, cap,
                old ? "integers of milliseconds" : "durations");
        return -1;
    }
    size_t len = 0;
    for (size_t i = 0; i < json_array_size(v); i++) {
        snprintf(what, sizeof what, "%s[%zu]", name, i);
        if (one(json_array_get(v, i), s, old, what, &ms[i], err) != 0)
            return -1;
        /* The list as it is written now, for the note; a cut-short note still helps. */
        if (len < sizeof now)
            len += (size_t)snprintf(now + len, sizeof now - len, "%s\"%s\"", i ? ", " : "",
                                    cm_duration_format(ms[i], one_text));
    }
    *n = json_array_size(v);
    if (old)
        sim_setting_deprecated(w, "\"%s\" " GONE " \"%s\": [%s]", old_name, s->name, now);
    return 1;
}
