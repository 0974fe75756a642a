/* sc_metrics.c - a small reader for the Prometheus text format (version 0.0.4). */
#include "sc_metrics.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char name[128];
    size_t nlabels;
    char key[SC_METRICS_MAX_LABELS][64];
    char val[SC_METRICS_MAX_LABELS][256];
} series_t;

static int name_char(int c, int first)
{
    return isalpha(c) || c == '_' || c == ':' || (!first && isdigit(c));
}

/* Parses NAME[{k=v,...}] from *pp (quoted values with \" \\ \n escapes; unquoted ones
 * end at ',' or '}'). Advances *pp. 0 on success. */
static int parse_series(const char **pp, const char *end, series_t *s, int allow_unquoted)
{
    const char *p = *pp;
    size_t n = 0;
    memset(s, 0, sizeof *s);
    while (p < end && name_char((unsigned char)*p, n == 0) && n + 1 < sizeof s->name)
        s->name[n++] = *p++;
    if (n == 0)
        return -1;
    if (p < end && *p == '{') {
        p++;
        while (p < end && *p != '}') {
            if (s->nlabels >= SC_METRICS_MAX_LABELS)
                return -1;
            char *k = s->key[s->nlabels], *v = s->val[s->nlabels];
            size_t kn = 0, vn = 0;
            while (p < end && (*p == ' ' || *p == ','))
                p++;
            if (p < end && *p == '}')
                break;
            while (p < end && name_char((unsigned char)*p, kn == 0) && kn + 1 < 64)
                k[kn++] = *p++;
            if (kn == 0 || p >= end || *p != '=')
                return -1;
            p++;
            if (p < end && *p == '"') {
                p++;
                while (p < end && *p != '"') {
                    char c = *p++;
                    if (c == '\\' && p < end) {
                        c = *p++;
                        if (c == 'n')
                            c = '\n';
                    }
                    if (vn + 1 < 256)
                        v[vn++] = c;
                }
                if (p >= end)
                    return -1;
                p++; /* closing quote */
            } else if (allow_unquoted) {
                while (p < end && *p != ',' && *p != '}' && vn + 1 < 256)
                    v[vn++] = *p++;
            } else {
                return -1;
            }
            s->nlabels++;
        }
        if (p >= end || *p != '}')
            return -1;
        p++;
    }
    *pp = p;
    return 0;
}

cm_err_t sc_metrics_selector_valid(const char *selector, char *err)
{
    series_t s;
    const char *p = selector, *end = selector + strlen(selector);
    if (parse_series(&p, end, &s, 1) != 0 || p != end) {
        cm_errf(err,
                "\"%s\" is not a metric selector (name or name{label=value,...}, at most %d "
                "labels)",
                selector, SC_METRICS_MAX_LABELS);
        return CM_EINVAL;
    }
    return CM_OK;
}

static int matches(const series_t *want, const series_t *got)
{
    if (strcmp(want->name, got->name) != 0)
        return 0;
    for (size_t i = 0; i < want->nlabels; i++) {
        int found = 0;
        for (size_t j = 0; j < got->nlabels && !found; j++)
            found = !strcmp(want->key[i], got->key[j]) && !strcmp(want->val[i], got->val[j]);
        if (!found)
            return 0;
    }
    return 1;
}

int sc_metrics_sum(const char *text, size_t len, const char *selector, double *sum)
{
    series_t want, got;
    const char *p = selector, *send = selector + strlen(selector);
    *sum = 0;
    if (parse_series(&p, send, &want, 1) != 0 || p != send)
        return -1;
    int count = 0;
    const char *end = text + len;
    for (const char *line = text; line < end;) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            eol = end;
        const char *q = line;
        while (q < eol && (*q == ' ' || *q == '\t'))
            q++;
        if (q < eol && *q != '#' && parse_series(&q, eol, &got, 0) == 0 && matches(&want, &got)) {
            char num[64];
            while (q < eol && (*q == ' ' || *q == '\t'))
                q++;
            size_t n = strcspn(q, " \t\n");
            if (q + n > eol)
                n = (size_t)(eol - q);
            if (n > 0 && n < sizeof num) {
                memcpy(num, q, n);
                num[n] = '\0';
                char *e;
                double v = strtod(num, &e);
                if (*e == '\0') {
                    *sum += v;
                    count++;
                }
            }
        }
        line = eol + 1;
    }
    return count;
}
