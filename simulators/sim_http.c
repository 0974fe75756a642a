/* sim_http.c - bearer check and JSON body parsing for simulator handlers. */
#include "sim_http.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cm_codec.h"
#include "cm_json.h"

int sim_http_bearer_ok(const cm_http_req_t *req, const char *key)
{
    const char *h = cm_http_req_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    return cm_ct_equal(h + 7, strlen(h + 7), key, strlen(key));
}

cm_err_t sim_http_json_object(const cm_http_req_t *req, int empty_ok, json_t **out, char *err)
{
    *out = NULL;
    if (req->body_len == 0) {
        if (!empty_ok) {
            cm_errf(err, "a JSON object body is required");
            return CM_EINVAL;
        }
        *out = json_object();
        return *out ? CM_OK : CM_ENOMEM;
    }
    json_t *v = NULL;
    cm_err_t rc = cm_json_parse(req->body, req->body_len, req->body_len, &v, err);
    if (rc)
        return CM_EINVAL;
    if (!json_is_object(v)) {
        json_decref(v);
        cm_errf(err, "the body must be a JSON object");
        return CM_EINVAL;
    }
    *out = v;
    return CM_OK;
}

json_t *sim_http_str(const char *s)
{
    json_t *v = json_string(s ? s : "");
    if (v)
        return v;
    char *copy = strdup(s);
    if (!copy)
        return NULL;
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
    v = json_string(copy);
    free(copy);
    return v;
}

/* One path segment of pattern p (up to '/' or end) against one of path s. */
static int seg_match(const char *p, size_t pl, const char *s, size_t sl)
{
    if ((pl == 1 && *p == '*') || (pl >= 2 && p[0] == '{' && p[pl - 1] == '}'))
        return sl > 0;
    return pl == sl && memcmp(p, s, pl) == 0;
}

int sim_http_route_match(const char *pattern, const char *method, const char *path)
{
    if (!pattern || !*pattern)
        return 1;
    const char *pp = pattern;
    if (*pattern != '/') {
        const char *sp = strchr(pattern, ' ');
        if (!sp)
            return 0;
        size_t ml = (size_t)(sp - pattern);
        if (!(ml == 1 && *pattern == '*') && (strlen(method) != ml || strncmp(method, pattern, ml)))
            return 0;
        pp = sp + 1;
    }
    const char *s = path;
    while (*pp == '/' && *s == '/') {
        pp++;
        s++;
        const char *pe = strchr(pp, '/');
        const char *se = strchr(s, '/');
        size_t pl = pe ? (size_t)(pe - pp) : strlen(pp);
        size_t sl = se ? (size_t)(se - s) : strlen(s);
        if (!pe && pl == 1 && *pp == '*')
            return sl > 0; /* a last '*' takes the rest */
        if (!seg_match(pp, pl, s, sl))
            return 0;
        pp += pl;
        s += sl;
    }
    /* A trailing slash on the path is the same route. */
    return *pp == '\0' && (*s == '\0' || strcmp(s, "/") == 0);
}

int sim_http_route_check(const char *pattern, char *err)
{
    const char *pp = pattern;
    if (!*pattern) {
        cm_errf(err, "must not be empty");
        return -1;
    }
    if (*pattern != '/') {
        const char *sp = strchr(pattern, ' ');
        size_t ml = sp ? (size_t)(sp - pattern) : 0;
        if (!sp || ml == 0 || ml > 7 ||
            (strspn(pattern, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != ml &&
             !(ml == 1 && *pattern == '*'))) {
            cm_errf(err, "must be \"METHOD /path\" (e.g. \"POST /v2/bookings\"), not \"%.60s\"",
                    pattern);
            return -1;
        }
        pp = sp + 1;
    }
    if (*pp != '/' || strstr(pp, "//") || strchr(pp, ' ') || strchr(pp, '?')) {
        cm_errf(err, "the path must start with '/' and hold no '//', space or query, not \"%.60s\"",
                pp);
        return -1;
    }
    return 0;
}
