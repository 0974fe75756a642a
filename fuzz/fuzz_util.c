/* fuzz_util.c - helpers shared by the fuzz targets (see fuzz.h). */
#include <jansson.h>
#include <string.h>

#include "fuzz.h"

char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort(); /* a fuzz target has no better answer to running out of memory */
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

void fuzz_split(const uint8_t *data, size_t size, uint8_t sep, const uint8_t **head, size_t *hlen,
                const uint8_t **rest, size_t *rlen)
{
    const uint8_t *at = size ? memchr(data, sep, size) : NULL;
    *head = data;
    *hlen = at ? (size_t)(at - data) : size;
    *rest = at ? at + 1 : data + size;
    *rlen = at ? size - *hlen - 1 : 0;
}

int fuzz_utf8_ok(const char *s, size_t len)
{
    json_t *v = json_stringn(s, len);
    int ok = v != NULL;
    json_decref(v);
    return ok;
}
