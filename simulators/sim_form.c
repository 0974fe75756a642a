/* sim_form.c - form-urlencoded bodies into JSON, Stripe bracket style. */
#include "sim_form.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 8

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long sim_form_url_decode(const char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '+') {
            out[o++] = ' ';
        } else if (c == '%') {
            int hi = i + 1 < len ? hexval(in[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(in[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '\0') {
            return -1;
        } else {
            out[o++] = c;
        }
    }
    out[o] = '\0';
    return (long)o;
}

static int all_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* An empty segment ("a[]") or a number ("a[0]") makes the parent an array. */
static int seg_is_index(const char *s)
{
    return *s == '\0' || all_digits(s);
}

/* Splits a decoded key "a[b][0]" in place into segments "a", "b", "0". Returns the
 * number of segments, or -1 when the brackets do not balance or nest too deep. */
static int split_key(char *key, char *segs[MAX_DEPTH])
{
    int n = 0;
    char *p = strchr(key, '[');
    char *stray = strchr(key, ']');
    if (p == key || *key == '\0' || (stray && (!p || stray < p)))
        return -1;
    segs[n++] = key;
    while (p) {
        *p++ = '\0';
        char *close = strchr(p, ']');
        if (!close || n >= MAX_DEPTH || memchr(p, '[', (size_t)(close - p)))
            return -1;
        *close = '\0';
        segs[n++] = p;
        p = close + 1;
        if (*p == '\0')
            break;
        if (*p != '[')
            return -1;
    }
    return n;
}

static json_t *new_container(const char *next_seg)
{
    return seg_is_index(next_seg) ? json_array() : json_object();
}

/* Stores value at segs[0..n) under root, creating hashes and arrays on the way. */
static cm_err_t set_path(json_t *root, char **segs, int n, const char *value, const char *key,
                         char *err)
{
    json_t *cur = root;
    for (int i = 0; i < n; i++) {
        int last = i == n - 1;
        json_t *child = NULL;
        size_t idx = 0;
        if (json_is_object(cur)) {
            child = json_object_get(cur, segs[i]);
        } else {
            size_t size = json_array_size(cur);
            idx = *segs[i] ? strtoul(segs[i], NULL, 10) : size;
            if (idx > size) {
                cm_errf(err, "%s: array index %zu leaves a gap (next is %zu)", key, idx, size);
                return CM_EINVAL;
            }
            child = idx < size ? json_array_get(cur, idx) : NULL;
        }
        json_t *want;
        if (last) {
            if (child && !json_is_string(child)) {
                cm_errf(err, "%s: used both as a value and as a hash or array", key);
                return CM_EINVAL;
            }
            want = json_string(value);
            if (!want) {
                cm_errf(err, "%s: the value is not valid UTF-8", key);
                return CM_EINVAL;
            }
        } else if (child) {
            int need_array = seg_is_index(segs[i + 1]);
            if (need_array ? !json_is_array(child) : !json_is_object(child)) {
                cm_errf(err, "%s: conflicts with an earlier key of another shape", key);
                return CM_EINVAL;
            }
            cur = child;
            continue;
        } else {
            want = new_container(segs[i + 1]);
        }
        if (!want)
            return CM_ENOMEM;
        int rc = json_is_object(cur)          ? json_object_set(cur, segs[i], want)
                 : idx < json_array_size(cur) ? json_array_set(cur, idx, want)
                                              : json_array_append(cur, want);
        json_decref(want); /* cur holds its own reference now */
        if (rc)
            return CM_ENOMEM;
        cur = want;
    }
    return CM_OK;
}

/* Cuts a truncated multi-byte UTF-8 sequence off the end of s, so error messages that
 * quote a long key stay valid JSON strings. */
static void utf8_trim(char *s)
{
    size_t n = strlen(s), i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0 || !((unsigned char)s[i - 1] & 0x80))
        return; /* ends in ASCII, or nothing but continuation bytes: leave it */
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    if (n - (i - 1) < need)
        s[i - 1] = '\0';
}

static cm_err_t decode_pair(json_t *root, const char *pair, size_t len, char *err)
{
    const char *eq = memchr(pair, '=', len);
    size_t klen = eq ? (size_t)(eq - pair) : len;
    size_t vlen = eq ? len - klen - 1 : 0;
    cm_err_t rc = CM_OK;
    char *key = malloc(klen + 1), *val = malloc(vlen + 1);
    char *segs[MAX_DEPTH];
    if (!key || !val) {
        rc = CM_ENOMEM;
    } else if (sim_form_url_decode(pair, klen, key) < 0 ||
               sim_form_url_decode(eq ? eq + 1 : "", vlen, val) < 0) {
        /* The key as sent, which may hold any byte: shown as printable ASCII, so the
         * message stays a valid JSON string (as the other messages here are). */
        char shown[65];
        size_t n = klen < 64 ? klen : 64;
        for (size_t i = 0; i < n; i++)
            shown[i] = pair[i] >= 0x20 && pair[i] < 0x7f ? pair[i] : '?';
        shown[n] = '\0';
        cm_errf(err, "bad percent-escape in '%s'", shown);
        rc = CM_EINVAL;
    } else {
        char shown[96];
        snprintf(shown, sizeof shown, "%s", key);
        utf8_trim(shown);
        json_t *probe = json_string(key); /* jansson keys must be UTF-8 */
        int utf8_ok = probe != NULL;
        json_decref(probe);
        int n = utf8_ok ? split_key(key, segs) : -1;
        if (!utf8_ok) {
            cm_errf(err, "a key is not valid UTF-8");
            rc = CM_EINVAL;
        } else if (n < 0) {
            cm_errf(err, "%s: malformed key (brackets or nesting deeper than %d)", shown,
                    MAX_DEPTH);
            rc = CM_EINVAL;
        } else {
            rc = set_path(root, segs, n, val, shown, err);
        }
    }
    free(key);
    free(val);
    return rc;
}

cm_err_t sim_form_decode(const char *body, size_t len, json_t **out, char *err)
{
    cm_err_t rc = CM_OK;
    json_t *root = json_object();
    *out = NULL;
    if (!root)
        return CM_ENOMEM;
    size_t i = 0;
    while (!rc && i < len) {
        const char *amp = memchr(body + i, '&', len - i);
        size_t plen = amp ? (size_t)(amp - (body + i)) : len - i;
        if (plen > 0) /* "a=1&&b=2": empty pairs are skipped, as browsers do */
            rc = decode_pair(root, body + i, plen, err);
        i += plen + 1;
    }
    if (rc)
        json_decref(root);
    else
        *out = root;
    return rc;
}
