/* sc_duration.c - "250ms" / "10s" / "2m". */
#include "sc_duration.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

cm_err_t sc_duration_parse(const char *s, int64_t *ms, char *err)
{
    const char *p = s;
    int64_t n = 0;
    if (!s || !isdigit((unsigned char)*p)) {
        cm_errf(err, "\"%s\" is not a duration (write e.g. \"250ms\", \"10s\", \"2m\")",
                s ? s : "");
        return CM_EINVAL;
    }
    /* Digits by hand, not strtoll: no sign, no spaces, no hex, and overflow is caught
     * against our own cap long before int64 overflows. */
    while (isdigit((unsigned char)*p)) {
        if (n <= SC_DURATION_MAX_MS)
            n = n * 10 + (*p - '0');
        p++;
    }
    int64_t mult;
    if (strcmp(p, "ms") == 0)
        mult = 1;
    else if (strcmp(p, "s") == 0)
        mult = 1000;
    else if (strcmp(p, "m") == 0)
        mult = 60000;
    else {
        cm_errf(err, "\"%s\" is not a duration: the unit must be ms, s or m", s);
        return CM_EINVAL;
    }
    if (n > SC_DURATION_MAX_MS / mult) {
        cm_errf(err, "\"%s\" is longer than a day", s);
        return CM_EINVAL;
    }
    *ms = n * mult;
    return CM_OK;
}

char *sc_duration_format(int64_t ms, char out[24])
{
    if (ms != 0 && ms % 60000 == 0)
        snprintf(out, 24, "%lldm", (long long)(ms / 60000));
    else if (ms != 0 && ms % 1000 == 0)
        snprintf(out, 24, "%llds", (long long)(ms / 1000));
    else
        snprintf(out, 24, "%lldms", (long long)ms);
    return out;
}
