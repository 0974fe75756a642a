/* cm_buf.h - growable byte buffer with a hard size cap (after curl's dynbuf).
 *
 * The buffer owns its memory; cm_buf_free() releases it and resets the buffer to its
 * initial (empty) state. The content is always NUL-terminated so it can be used as a
 * C string. Not thread-safe: one owner at a time.
 */
#ifndef CM_BUF_H
#define CM_BUF_H

#include <stddef.h>

#include "cm_err.h"

typedef struct {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap;    /* allocated bytes */
    size_t toobig; /* appending past this many bytes fails with CM_ETOOBIG */
} cm_buf_t;

void cm_buf_init(cm_buf_t *b, size_t toobig);
void cm_buf_free(cm_buf_t *b);
/* Empties the buffer but keeps its memory. */
void cm_buf_reset(cm_buf_t *b);

/* On error the buffer is left as it was (CM_ETOOBIG, CM_ENOMEM). */
cm_err_t cm_buf_add(cm_buf_t *b, const void *mem, size_t len) CM_WUR;
cm_err_t cm_buf_addstr(cm_buf_t *b, const char *s) CM_WUR;
cm_err_t cm_buf_printf(cm_buf_t *b, const char *fmt, ...) CM_WUR
    __attribute__((format(printf, 2, 3)));

/* Hands the content to the caller (who frees it) and resets the buffer. Never NULL
 * on success: an empty buffer yields "". Returns NULL only when out of memory. */
char *cm_buf_take(cm_buf_t *b);

/* Appends the whole file at path (at most the buffer's cap). CM_ENOTFOUND when it cannot
 * be opened, CM_ETOOBIG, CM_EIO; err (CM_ERR_LEN, may be NULL) starts with the path. On
 * error the buffer may hold part of the file: the caller frees it either way. */
cm_err_t cm_buf_read_file(cm_buf_t *b, const char *path, char *err) CM_WUR;

/* Appends s as a JSON string literal (with quotes and escapes). */
cm_err_t cm_buf_add_json_str(cm_buf_t *b, const char *s) CM_WUR;

#endif
