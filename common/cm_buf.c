/* cm_buf.c - growable, capped byte buffer. */
#include "cm_buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cm_buf_init(cm_buf_t *b, size_t toobig)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->toobig = toobig;
}

void cm_buf_free(cm_buf_t *b)
{
    free(b->data);
    cm_buf_init(b, b->toobig);
}

void cm_buf_reset(cm_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static cm_err_t ensure(cm_buf_t *b, size_t extra)
{
    if (extra > b->toobig || b->len + extra > b->toobig)
        return CM_ETOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return CM_OK;
    size_t ncap = b->cap ? b->cap : 64;
    while (ncap < need)
        ncap *= 2;
    char *p = realloc(b->data, ncap);
    if (!p)
        return CM_ENOMEM;
    b->data = p;
    b->cap = ncap;
    return CM_OK;
}

cm_err_t cm_buf_add(cm_buf_t *b, const void *mem, size_t len)
{
    cm_err_t rc = ensure(b, len);
    if (rc)
        return rc;
    if (len)
        memcpy(b->data + b->len, mem, len);
    b->len += len;
    b->data[b->len] = '\0';
    return CM_OK;
}

cm_err_t cm_buf_addstr(cm_buf_t *b, const char *s)
{
    return cm_buf_add(b, s, strlen(s));
}

cm_err_t cm_buf_printf(cm_buf_t *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    cm_err_t rc = n < 0 ? CM_EINVAL : ensure(b, (size_t)n);
    if (!rc) {
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
    return rc;
}

char *cm_buf_take(cm_buf_t *b)
{
    char *p = b->data;
    if (!p)
        p = calloc(1, 1);
    cm_buf_init(b, b->toobig);
    return p;
}

cm_err_t cm_buf_add_json_str(cm_buf_t *b, const char *s)
{
    cm_err_t rc = cm_buf_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; !rc && *p; p++) {
        char esc[8];
        switch (*p) {
        case '"':
            rc = cm_buf_add(b, "\\\"", 2);
            break;
        case '\\':
            rc = cm_buf_add(b, "\\\\", 2);
            break;
        case '\n':
            rc = cm_buf_add(b, "\\n", 2);
            break;
        case '\r':
            rc = cm_buf_add(b, "\\r", 2);
            break;
        case '\t':
            rc = cm_buf_add(b, "\\t", 2);
            break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                rc = cm_buf_add(b, esc, 6);
            } else {
                rc = cm_buf_add(b, p, 1);
            }
        }
    }
    return rc ? rc : cm_buf_add(b, "\"", 1);
}

cm_err_t cm_buf_read_file(cm_buf_t *b, const char *path, char *err)
{
    char chunk[8192];
    cm_err_t rc = CM_OK;
    FILE *f = fopen(path, "rb");
    if (!f) {
        cm_errf(err, "%s: %s", path, strerror(errno));
        return CM_ENOTFOUND;
    }
    size_t n;
    while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = cm_buf_add(b, chunk, n);
    if (!rc && ferror(f))
        rc = CM_EIO;
    fclose(f);
    if (rc)
        cm_errf(err, "%s: %s", path, rc == CM_ETOOBIG ? "file too large" : "read error");
    return rc;
}
