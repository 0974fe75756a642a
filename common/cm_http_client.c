/* cm_http_client.c - libcurl easy-handle wrapper. */
#include "cm_http_client.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct cm_http_client {
    CURL *h;
};

cm_err_t cm_http_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? CM_OK : CM_EIO;
}

cm_http_client_t *cm_http_client_new(void)
{
    cm_http_client_t *c = calloc(1, sizeof *c);
    if (c && !(c->h = curl_easy_init())) {
        free(c);
        c = NULL;
    }
    return c;
}

void cm_http_client_free(cm_http_client_t **cp)
{
    if (!cp || !*cp)
        return;
    curl_easy_cleanup((*cp)->h);
    free(*cp);
    *cp = NULL;
}

static size_t on_body(char *ptr, size_t size, size_t n, void *ud)
{
    cm_buf_t *b = ud;
    /* Returning less than given makes curl abort with CURLE_WRITE_ERROR: the cap. */
    return cm_buf_add(b, ptr, size * n) == CM_OK ? size * n : 0;
}

static size_t on_header(char *ptr, size_t size, size_t n, void *ud)
{
    cm_buf_t *b = ud;
    size_t len = size * n;
    /* A new status line starts a new response (after 100-continue or a redirect):
     * keep only the last response's headers. */
    if (len > 5 && strncmp(ptr, "HTTP/", 5) == 0)
        cm_buf_reset(b);
    return cm_buf_add(b, ptr, len) == CM_OK ? len : 0;
}

/* libcurl calls this about once a second and on every chunk; non-zero aborts. */
static int on_progress(void *ud, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln)
{
    const int *abort_flag = ud;
    return __atomic_load_n(abort_flag, __ATOMIC_RELAXED) != 0;
}

cm_err_t cm_http_client_do(cm_http_client_t *c, const cm_http_request_t *req,
                           cm_http_response_t *resp)
{
    cm_err_t rc = CM_OK;
    struct curl_slist *hl = NULL;
    CURL *h = c->h;

    memset(resp, 0, sizeof *resp);
    cm_buf_init(&resp->body, req->max_response ? req->max_response : 4u << 20);
    cm_buf_init(&resp->headers, 64 << 10);

    curl_easy_reset(h); /* keeps the connection cache, drops the previous options */
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for timeouts */
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     req->connect_timeout_ms ? req->connect_timeout_ms : 2000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req->timeout_ms ? req->timeout_ms : 10000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp->body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &resp->headers);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    if (req->abort) {
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)req->abort);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    }
    if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }
    /* An empty Expect stops curl from waiting for 100-continue on larger bodies. */
    hl = curl_slist_append(hl, "Expect:");
    for (const char *const *p = req->headers; p && *p; p++)
        hl = curl_slist_append(hl, *p);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, req->fresh_connection ? 1L : 0L);

    CURLcode cc = curl_easy_perform(h);
    switch (cc) {
    case CURLE_OK:
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
        break;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        rc = CM_ECONNECT;
        break;
    case CURLE_OPERATION_TIMEDOUT:
        rc = CM_ETIMEOUT;
        break;
    case CURLE_WRITE_ERROR:
        rc = CM_ETOOBIG;
        break;
    default:
        rc = CM_EHTTP;
    }
    if (rc)
        snprintf(resp->err, sizeof resp->err, "%s %s: %s", req->method, req->url,
                 curl_easy_strerror(cc));
    double t = 0;
    curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &t);
    resp->total_ms = t * 1000.0;
    curl_slist_free_all(hl);
    return rc;
}

const char *cm_http_response_header(const cm_http_response_t *resp, const char *name, char *buf,
                                    size_t cap)
{
    return cm_http_header_find(resp->headers.data, name, buf, cap);
}

const char *cm_http_header_find(const char *raw, const char *name, char *buf, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = raw;
    while (p && *p) {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vl = (size_t)(p + ll - v);
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            if (vl >= cap)
                vl = cap - 1;
            memcpy(buf, v, vl);
            buf[vl] = '\0';
            return buf;
        }
        p = eol ? eol + 2 : p + ll;
    }
    return NULL;
}

void cm_http_response_free(cm_http_response_t *resp)
{
    cm_buf_free(&resp->body);
    cm_buf_free(&resp->headers);
}
