/* gw_trace.c - W3C traceparent parsing, child spans, formatting. */
#include "gw_trace.h"

#include <stdio.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* uppercase is invalid too: the spec allows lowercase only */
}

/* n lowercase hex digits at s; sets *nonzero when any of them is not 0. */
static int hex_field(const char *s, size_t n, int *nonzero)
{
    *nonzero = 0;
    for (size_t i = 0; i < n; i++) {
        int v = hexval(s[i]);
        if (v < 0)
            return -1;
        *nonzero |= v != 0;
    }
    return 0;
}

cm_err_t gw_trace_parse(const char *value, gw_traceparent_t *out, char *err)
{
    if (!value) {
        cm_errf(err, "traceparent: absent");
        return CM_EINVAL;
    }
    while (*value == ' ' || *value == '\t')
        value++;
    size_t len = strlen(value);
    while (len && (value[len - 1] == ' ' || value[len - 1] == '\t'))
        len--;
    const char *s = value;
    int nz;
    if (len < GW_TRACEPARENT_LEN) {
        cm_errf(err, "traceparent: %zu characters, expected %d", len, GW_TRACEPARENT_LEN);
        return CM_EINVAL;
    }
    if (hex_field(s, 2, &nz) || s[2] != '-') {
        cm_errf(err, "traceparent: bad version");
        return CM_EINVAL;
    }
    int version = hexval(s[0]) * 16 + hexval(s[1]);
    if (version == 0xff) {
        cm_errf(err, "traceparent: version ff is invalid");
        return CM_EINVAL;
    }
    if (version == 0 && len != GW_TRACEPARENT_LEN) {
        cm_errf(err, "traceparent: version 00 must be %d characters", GW_TRACEPARENT_LEN);
        return CM_EINVAL;
    }
    /* Later versions may append fields, always after a dash. */
    if (len > GW_TRACEPARENT_LEN && s[GW_TRACEPARENT_LEN] != '-') {
        cm_errf(err, "traceparent: junk after the flags");
        return CM_EINVAL;
    }
    if (hex_field(s + 3, 32, &nz) || s[35] != '-') {
        cm_errf(err, "traceparent: bad trace-id");
        return CM_EINVAL;
    }
    if (!nz) {
        cm_errf(err, "traceparent: all-zero trace-id");
        return CM_EINVAL;
    }
    if (hex_field(s + 36, 16, &nz) || s[52] != '-') {
        cm_errf(err, "traceparent: bad parent-id");
        return CM_EINVAL;
    }
    if (!nz) {
        cm_errf(err, "traceparent: all-zero parent-id");
        return CM_EINVAL;
    }
    if (hex_field(s + 53, 2, &nz)) {
        cm_errf(err, "traceparent: bad trace-flags");
        return CM_EINVAL;
    }
    out->version = (uint8_t)version;
    memcpy(out->trace_id, s + 3, 32);
    out->trace_id[32] = '\0';
    memcpy(out->parent_id, s + 36, 16);
    out->parent_id[16] = '\0';
    out->flags = (uint8_t)(hexval(s[53]) * 16 + hexval(s[54]));
    return CM_OK;
}

static void random_hex(cm_rand_t *rng, char *out, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    do {
        int nz = 0;
        for (size_t i = 0; i < n; i += 16) {
            uint64_t x = cm_rand_next(rng);
            for (size_t j = 0; j < 16 && i + j < n; j++, x >>= 4)
                out[i + j] = digits[x & 15];
        }
        for (size_t i = 0; i < n; i++)
            nz |= out[i] != '0';
        if (nz)
            break;
    } while (1); /* all zero is invalid; a repeat draw is (practically) never needed */
    out[n] = '\0';
}

void gw_trace_new(cm_rand_t *rng, uint8_t flags, gw_traceparent_t *out)
{
    out->version = 0;
    random_hex(rng, out->trace_id, 32);
    random_hex(rng, out->parent_id, 16);
    out->flags = flags;
}

void gw_trace_child(const gw_traceparent_t *parent, cm_rand_t *rng, gw_traceparent_t *out)
{
    gw_traceparent_t t;
    t.version = 0;
    memcpy(t.trace_id, parent->trace_id, sizeof t.trace_id);
    random_hex(rng, t.parent_id, 16);
    t.flags = parent->flags & GW_TRACE_SAMPLED;
    *out = t;
}

char *gw_trace_format(const gw_traceparent_t *t, char out[GW_TRACEPARENT_LEN + 1])
{
    snprintf(out, GW_TRACEPARENT_LEN + 1, "%02x-%.32s-%.16s-%02x", t->version, t->trace_id,
             t->parent_id, t->flags);
    return out;
}
