/* cm_http_client.h - HTTP client over libcurl with connect and total timeouts and
 * keep-alive reuse.
 *
 * A client wraps one curl easy handle, so consecutive requests to the same host reuse
 * the connection. A client is NOT thread-safe: give each thread its own. Call
 * cm_http_global_init() once from main before starting threads.
 */
#ifndef CM_HTTP_CLIENT_H
#define CM_HTTP_CLIENT_H

#include <stddef.h>

#include "cm_buf.h"
#include "cm_err.h"

typedef struct cm_http_client cm_http_client_t;

typedef struct {
    const char *method; /* "GET", "POST", ... */
    const char *url;
    const char *const *headers; /* NULL-terminated "Name: value" strings, or NULL */
    const void *body;           /* may be NULL */
    size_t body_len;
    long connect_timeout_ms; /* 0: 2000 */
    long timeout_ms;         /* whole exchange; 0: 10000 */
    size_t max_response;     /* body cap; 0: 4 MiB */
    /* When not NULL, the transfer is abandoned (CM_EHTTP, "aborted") soon after *abort
     * becomes non-zero, e.g. when the owner shuts down. Read atomically, from any thread. */
    const int *abort;
    /* Send on a new connection. libcurl silently sends a request again when a reused
     * keep-alive connection breaks before any answer byte arrives (it takes the connection
     * for one the server had closed); for a request that is not safe to repeat (a booking)
     * that is a second booking, so such requests must not ride a reused connection. */
    int fresh_connection;
} cm_http_request_t;

typedef struct {
    long status;      /* 0 when no response arrived */
    cm_buf_t body;    /* owned; freed by cm_http_response_free */
    cm_buf_t headers; /* raw "Name: value\r\n" lines of the final response */
    double total_ms;
    char err[CM_ERR_LEN]; /* transport error detail, "" when none */
} cm_http_response_t;

cm_err_t cm_http_global_init(void) CM_WUR;

cm_http_client_t *cm_http_client_new(void);
void cm_http_client_free(cm_http_client_t **c);

/* Performs the request. Returns CM_OK when any HTTP response arrived (whatever its
 * status), CM_ECONNECT / CM_ETIMEOUT / CM_EHTTP / CM_ETOOBIG on transport failure (resp->err
 * says more). resp is initialised here; always call cm_http_response_free afterwards. */
cm_err_t cm_http_client_do(cm_http_client_t *c, const cm_http_request_t *req,
                           cm_http_response_t *resp) CM_WUR;

/* Copies the value of response header name (case-insensitive) into buf (cap bytes).
 * Returns buf, or NULL when the header is absent. */
const char *cm_http_response_header(const cm_http_response_t *resp, const char *name, char *buf,
                                    size_t cap);

/* The same over raw "Name: value\r\n" lines (a response's headers kept apart from it);
 * raw may be NULL. The first matching line wins. */
const char *cm_http_header_find(const char *raw, const char *name, char *buf, size_t cap);

void cm_http_response_free(cm_http_response_t *resp);

#endif
