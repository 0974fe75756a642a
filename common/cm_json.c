/* cm_json.c - jansson helpers. */
#include "cm_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_buf.h"

cm_err_t cm_json_parse(const void *data, size_t len, size_t cap, json_t **out, char *err)
{
    json_error_t je;
    *out = NULL;
    if (len > cap) {
        cm_errf(err, "JSON body of %zu bytes exceeds the limit of %zu", len, cap);
        return CM_ETOOBIG;
    }
    /* JSON_REJECT_DUPLICATES: two "call_id" keys in one event are an attack or a bug,
     * and either way we must not guess which one the sender meant. */
    json_t *v = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!v) {
        cm_errf(err, "invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
        return CM_EINVAL;
    }
    *out = v;
    return CM_OK;
}

cm_err_t cm_json_load_file(const char *path, size_t cap, json_t **out, char *err)
{
    cm_buf_t b;
    *out = NULL;
    cm_buf_init(&b, cap);
    cm_err_t rc = cm_buf_read_file(&b, path, err);
    if (!rc) {
        char perr[CM_ERR_LEN];
        rc = cm_json_parse(b.data ? b.data : "", b.len, cap, out, perr);
        if (rc)
            cm_errf(err, "%s: %s", path, perr);
    }
    cm_buf_free(&b);
    return rc;
}

json_t *cm_json_path(const json_t *root, const char *path)
{
    const json_t *cur = root;
    const char *p = path;
    char key[256];
    while (cur && *p) {
        const char *dot = strchr(p, '.');
        size_t klen = dot ? (size_t)(dot - p) : strlen(p);
        if (klen >= sizeof key)
            return NULL;
        memcpy(key, p, klen);
        key[klen] = '\0';
        if (json_is_object(cur)) {
            cur = json_object_get(cur, key);
        } else if (json_is_array(cur)) {
            char *end;
            unsigned long idx = strtoul(key, &end, 10);
            cur = (*key && !*end) ? json_array_get(cur, idx) : NULL;
        } else {
            cur = NULL;
        }
        p = dot ? dot + 1 : p + klen;
    }
    return (json_t *)cur;
}

const char *cm_json_str(const json_t *root, const char *path, const char *def)
{
    const json_t *v = cm_json_path(root, path);
    return json_is_string(v) ? json_string_value(v) : def;
}

const char *cm_json_strn(const json_t *root, const char *path, size_t *len)
{
    const json_t *v = cm_json_path(root, path);
    *len = json_is_string(v) ? json_string_length(v) : 0;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

int64_t cm_json_int(const json_t *root, const char *path, int64_t def)
{
    const json_t *v = cm_json_path(root, path);
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    if (json_is_real(v)) {
        double d = json_real_value(v);
        /* Converting a double outside int64's range is undefined behaviour (a signed
         * webhook can carry 1e300): range first, then the exactness check. */
        if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == (double)(int64_t)d)
            return (int64_t)d;
    }
    return def;
}

int cm_json_bool(const json_t *root, const char *path, int def)
{
    const json_t *v = cm_json_path(root, path);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

char *cm_json_dumps(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

char *cm_json_dumps_sorted(const json_t *v)
{
    return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;
}
