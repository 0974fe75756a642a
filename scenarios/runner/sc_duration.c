/* sc_duration.c - scenario durations: cm_duration's grammar, capped at a day. */
#include "sc_duration.h"

#include <stdio.h>

#include "cm_duration.h"

cm_err_t sc_duration_parse(const char *s, int64_t *ms, char *err)
{
    return cm_duration_parse(s, SC_DURATION_MAX_MS, ms, err);
}

char *sc_duration_format(int64_t ms, char out[24])
{
    char full[32];
    snprintf(out, 24, "%s", cm_duration_format(ms, full));
    return out;
}
