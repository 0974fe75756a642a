/* cm_duration.c - "250ms", "1.5s", "2m", "1h". */
#include "cm_duration.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define HINT "write e.g. \"250ms\", \"1.5s\", \"2m\", \"1h\""

/* Parses the unsigned duration that starts at p; errors quote the whole text s (p is s, or
 * s after its sign). */
static cm_err_t parse(const char *s, const char *p, int64_t max_ms, int64_t *ms, char *err)
{
    if (!s || !isdigit((unsigned char)*p)) {
        cm_errf(err, "\"%.64s\" is not a duration (" HINT ")", s ? s : "");
        return CM_EINVAL;
    }
    /* Digits by hand, not strtod/strtoll: no sign, no spaces, no exponent, no hex, no
     * "inf", and overflow is caught before it happens. */
    uint64_t whole = 0, frac = 0, scale = 1;
    int huge = 0, finer = 0;
    for (; isdigit((unsigned char)*p); p++) {
        if (whole > (UINT64_MAX - 9) / 10)
            huge = 1;
        else
            whole = whole * 10 + (uint64_t)(*p - '0');
    }
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) {
            cm_errf(err, "\"%.64s\" is not a duration: digits must follow the point (" HINT ")", s);
            return CM_EINVAL;
        }
        /* Nine digits reach below a millisecond of an hour; any further ones must be 0. */
        for (; isdigit((unsigned char)*p); p++) {
            if (scale < 1000000000ULL) {
                frac = frac * 10 + (uint64_t)(*p - '0');
                scale *= 10;
            } else if (*p != '0') {
                finer = 1;
            }
        }
    }
    uint64_t mult;
    if (strcmp(p, "ms") == 0)
        mult = 1;
    else if (strcmp(p, "s") == 0)
        mult = 1000;
    else if (strcmp(p, "m") == 0)
        mult = 60000;
    else if (strcmp(p, "h") == 0)
        mult = 3600000;
    else {
        cm_errf(err, "\"%.64s\" is not a duration: the unit must be ms, s, m or h (" HINT ")", s);
        return CM_EINVAL;
    }
    /* frac < 10^9 and mult <= 3.6 * 10^6: the product fits. */
    uint64_t part = frac * mult;
    if (finer || part % scale != 0) {
        cm_errf(err, "\"%.64s\" is not a whole number of milliseconds", s);
        return CM_EINVAL;
    }
    uint64_t limit = max_ms > 0 ? (uint64_t)max_ms : (uint64_t)INT64_MAX;
    if (huge || whole > limit / mult || whole * mult > limit - part / scale) {
        char cap[32];
        if (max_ms > 0)
            cm_errf(err, "\"%.64s\" is longer than %s", s, cm_duration_format(max_ms, cap));
        else
            cm_errf(err, "\"%.64s\" is too long", s);
        return CM_EINVAL;
    }
    *ms = (int64_t)(whole * mult + part / scale);
    return CM_OK;
}

cm_err_t cm_duration_parse(const char *s, int64_t max_ms, int64_t *ms, char *err)
{
    return parse(s, s, max_ms, ms, err);
}

cm_err_t cm_duration_parse_signed(const char *s, int64_t max_ms, int64_t *ms, char *err)
{
    int back = s && *s == '-';
    int64_t v;
    cm_err_t rc = parse(s, s ? s + (back || *s == '+') : NULL, max_ms, &v, err);
    /* The magnitude is at most INT64_MAX, so its negation fits. */
    if (!rc)
        *ms = back ? -v : v;
    return rc;
}

char *cm_duration_format(int64_t ms, char out[32])
{
    if (ms != 0 && ms % 3600000 == 0)
        snprintf(out, 32, "%lldh", (long long)(ms / 3600000));
    else if (ms != 0 && ms % 60000 == 0)
        snprintf(out, 32, "%lldm", (long long)(ms / 60000));
    else if (ms != 0 && ms % 1000 == 0)
        snprintf(out, 32, "%llds", (long long)(ms / 1000));
    else
        snprintf(out, 32, "%lldms", (long long)ms);
    return out;
}
