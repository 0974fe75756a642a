/* cm_http_server.c - libmicrohttpd wrapper. */
#include "cm_http_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "cm_clock.h"
#include "cm_codec.h"
#include "cm_log.h"
#include "cm_rand.h"

#define MAX_ROUTES 64
#define MAX_SEGS 12

typedef struct {
    char *method;
    char *segs[MAX_SEGS];
    size_t nsegs;
    int rest; /* pattern ends in a star segment */
    cm_http_handler_fn fn;
    void *ud;
} route_t;

struct cm_http_server {
    cm_http_server_cfg_t cfg;
    char *bind_addr;
    char *name;
    route_t routes[MAX_ROUTES];
    size_t nroutes;
    cm_http_filter_fn filter;
    void *filter_ud;
    cm_http_after_fn after;
    void *after_ud;
    struct MHD_Daemon *d;
    uint16_t port;
};

enum { DEFER_NONE = 0, DEFER_WAITING, DEFER_DONE };

/* Per-request state kept across libmicrohttpd's calls of the access handler. A deferred
 * request keeps its response here until it is finished, and what the after hook needs
 * that libmicrohttpd does not give again when it resumes: the route's params and the
 * correlation id. */
typedef struct cm_http_deferred {
    cm_buf_t body;
    int toobig;
    int64_t start_ns;
    struct MHD_Connection *conn;
    int deferred; /* DEFER_*, read and written atomically */
    cm_http_resp_t resp;
    const char *param_names[CM_HTTP_MAX_PARAMS];
    char *param_vals[CM_HTTP_MAX_PARAMS]; /* owned while deferred */
    size_t nparams;
    char cid[64];
} conn_ctx_t;

cm_http_server_t *cm_http_server_new(const cm_http_server_cfg_t *cfg)
{
    cm_http_server_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cfg = *cfg;
    s->bind_addr = strdup(cfg->bind_addr ? cfg->bind_addr : "127.0.0.1");
    s->name = strdup(cfg->name ? cfg->name : "http");
    if (!s->bind_addr || !s->name) {
        cm_http_server_free(&s);
        return NULL;
    }
    if (!s->cfg.body_limit)
        s->cfg.body_limit = 1 << 20;
    if (!s->cfg.conn_timeout_s)
        s->cfg.conn_timeout_s = 30;
    return s;
}

static void route_clear(route_t *r)
{
    free(r->method);
    for (size_t i = 0; i < r->nsegs; i++)
        free(r->segs[i]);
    memset(r, 0, sizeof *r);
}

cm_err_t cm_http_server_route(cm_http_server_t *s, const char *pattern, cm_http_handler_fn fn,
                              void *ud)
{
    const char *sp = strchr(pattern, ' ');
    if (!sp || sp[1] != '/' || s->nroutes >= MAX_ROUTES || s->d)
        return CM_EINVAL;
    route_t *r = &s->routes[s->nroutes];
    cm_err_t rc = CM_OK;
    r->method = strndup(pattern, (size_t)(sp - pattern));
    r->fn = fn;
    r->ud = ud;
    const char *p = sp + 1;
    while (!rc && *p == '/') {
        p++;
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 1 && *p == '*' && !e) {
            r->rest = 1;
        } else if (n > 0) {
            if (r->nsegs >= MAX_SEGS)
                rc = CM_ETOOBIG;
            else if (!(r->segs[r->nsegs++] = strndup(p, n)))
                rc = CM_ENOMEM;
        }
        p += n;
    }
    if (!r->method)
        rc = CM_ENOMEM;
    if (rc)
        route_clear(r);
    else
        s->nroutes++;
    return rc;
}

void cm_http_server_set_filter(cm_http_server_t *s, cm_http_filter_fn fn, void *ud)
{
    s->filter = fn;
    s->filter_ud = ud;
}

void cm_http_server_set_after(cm_http_server_t *s, cm_http_after_fn fn, void *ud)
{
    s->after = fn;
    s->after_ud = ud;
}

/* Matches path against r; on success fills req's params (malloc'd copies). */
static int route_match(const route_t *r, const char *path, cm_http_req_t *req)
{
    const char *p = path;
    size_t np = 0;
    char *vals[CM_HTTP_MAX_PARAMS];
    const char *names[CM_HTTP_MAX_PARAMS];
    size_t i;
    for (i = 0; i < r->nsegs; i++) {
        if (*p != '/')
            goto fail;
        p++;
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *seg = r->segs[i];
        size_t sl = strlen(seg);
        if (seg[0] == '{' && seg[sl - 1] == '}') {
            /* An id with a control character in it is no id of ours: not this route. */
            for (size_t k = 0; k < n; k++)
                if ((unsigned char)p[k] < 0x20 || p[k] == 0x7f)
                    goto fail;
            if (n == 0 || np >= CM_HTTP_MAX_PARAMS)
                goto fail;
            names[np] = seg;
            vals[np] = strndup(p, n);
            if (!vals[np])
                goto fail;
            np++;
        } else if (n != sl || strncmp(p, seg, n) != 0) {
            goto fail;
        }
        p += n;
    }
    if (*p && !(r->rest && *p == '/') && strcmp(p, "/") != 0)
        goto fail;
    for (i = 0; i < np; i++) {
        req->_param_names[i] = names[i];
        req->_param_vals[i] = vals[i];
    }
    req->_nparams = np;
    return 1;
fail:
    for (i = 0; i < np; i++)
        free(vals[i]);
    return 0;
}

const char *cm_http_req_header(const cm_http_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->_conn, MHD_HEADER_KIND, name);
}

const char *cm_http_req_query(const cm_http_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->_conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *cm_http_req_param(const cm_http_req_t *req, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < req->_nparams; i++) {
        const char *pn = req->_param_names[i]; /* "{name}" */
        if (strlen(pn) == nl + 2 && strncmp(pn + 1, name, nl) == 0)
            return req->_param_vals[i];
    }
    return NULL;
}

int cm_http_req_fd(const cm_http_req_t *req)
{
    const union MHD_ConnectionInfo *ci =
        req->_conn ? MHD_get_connection_info(req->_conn, MHD_CONNECTION_INFO_CONNECTION_FD) : NULL;
    return ci ? ci->connect_fd : -1;
}

cm_err_t cm_http_resp_header(cm_http_resp_t *resp, const char *name, const char *value)
{
    for (size_t i = 0; i < resp->_nheaders; i++) {
        if (strcasecmp(resp->_hname[i], name) == 0) {
            char *v = strdup(value);
            if (!v)
                return CM_ENOMEM;
            free(resp->_hval[i]);
            resp->_hval[i] = v;
            return CM_OK;
        }
    }
    if (resp->_nheaders >= CM_HTTP_MAX_RESP_HEADERS)
        return CM_ETOOBIG;
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return CM_ENOMEM;
    }
    resp->_hname[resp->_nheaders] = n;
    resp->_hval[resp->_nheaders++] = v;
    return CM_OK;
}

int cm_http_resp_header_at(const cm_http_resp_t *resp, size_t i, const char **name,
                           const char **value)
{
    if (i >= resp->_nheaders)
        return 0;
    *name = resp->_hname[i];
    *value = resp->_hval[i];
    return 1;
}

void cm_http_resp_text(cm_http_resp_t *resp, int status, const char *ctype, const char *text)
{
    resp->status = status;
    resp->content_type = ctype;
    cm_buf_reset(&resp->body);
    if (text && cm_buf_addstr(&resp->body, text) != CM_OK) {
        resp->status = 500;
        cm_buf_reset(&resp->body);
    }
}

void cm_http_resp_json(cm_http_resp_t *resp, int status, json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    if (!s) {
        cm_http_resp_problem(resp, 500, "Internal Server Error", "could not encode response");
        return;
    }
    cm_http_resp_text(resp, status, "application/json", s);
    free(s);
}

void cm_http_resp_problem(cm_http_resp_t *resp, int status, const char *title, const char *detail)
{
    json_t *v = json_pack("{s:s,s:s,s:i}", "type", "about:blank", "title", title, "status", status);
    if (v && detail)
        json_object_set_new(v, "detail", json_string(detail));
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    cm_http_resp_text(resp, status, "application/problem+json", s ? s : "{}");
    free(s);
}

const char *cm_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

cm_http_deferred_t *cm_http_resp_defer(cm_http_resp_t *resp)
{
    conn_ctx_t *ctx = resp->_ctx;
    __atomic_store_n(&ctx->deferred, DEFER_WAITING, __ATOMIC_RELEASE);
    /* Suspending inside the access handler is the documented pattern; the answer can then
     * be finished by another thread even before this handler has returned. */
    MHD_suspend_connection(ctx->conn);
    return ctx;
}

cm_http_resp_t *cm_http_deferred_resp(cm_http_deferred_t *d)
{
    return &d->resp;
}

void cm_http_deferred_finish(cm_http_deferred_t *d)
{
    __atomic_store_n(&d->deferred, DEFER_DONE, __ATOMIC_RELEASE);
    MHD_resume_connection(d->conn);
}

static void resp_free(cm_http_resp_t *resp)
{
    cm_buf_free(&resp->body);
    for (size_t i = 0; i < resp->_nheaders; i++) {
        free(resp->_hname[i]);
        free(resp->_hval[i]);
    }
    resp->_nheaders = 0;
}

static void dispatch(cm_http_server_t *s, cm_http_req_t *req, cm_http_resp_t *resp)
{
    if (s->filter && s->filter(req, resp, s->filter_ud))
        return;
    int path_seen = 0;
    for (size_t i = 0; i < s->nroutes; i++) {
        const route_t *r = &s->routes[i];
        if (!route_match(r, req->path, req))
            continue;
        if (strcmp(r->method, req->method) != 0) {
            for (size_t k = 0; k < req->_nparams; k++)
                free(req->_param_vals[k]);
            req->_nparams = 0;
            path_seen = 1;
            continue;
        }
        r->fn(req, resp, r->ud);
        return;
    }
    if (path_seen)
        cm_http_resp_problem(resp, 405, "Method Not Allowed", NULL);
    else
        cm_http_resp_problem(resp, 404, "Not Found", NULL);
}

/* Sets the per-request correlation id: the caller's X-Correlation-Id when sane, else
 * the trace id of a W3C traceparent, else a fresh random id. */
static void set_cid(struct MHD_Connection *conn)
{
    char cid[40];
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Correlation-Id");
    const char *tp = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "traceparent");
    if (h && strlen(h) > 0 && strlen(h) < 40 &&
        strspn(h, "abcdefABCDEF0123456789-_.:") == strlen(h)) {
        cm_log_set_cid(h);
    } else if (tp && strlen(tp) >= 35 && tp[2] == '-') {
        snprintf(cid, sizeof cid, "%.32s", tp + 3);
        cm_log_set_cid(cid);
    } else {
        /* A correlation id must be unique, not secret: a per-thread generator seeded once
         * from the OS. RAND_bytes per request cost a system call (OpenSSL's fork check)
         * and a lock, measurable at webhook rates. */
        static _Thread_local cm_rand_t gen;
        static _Thread_local int seeded;
        if (!seeded) {
            uint64_t seed = (uint64_t)cm_clock_mono_ns() ^ (uint64_t)(uintptr_t)&gen;
            (void)cm_random_bytes(&seed, sizeof seed);
            cm_rand_seed(&gen, seed);
            seeded = 1;
        }
        uint64_t v = cm_rand_next(&gen);
        uint8_t rnd[8];
        memcpy(rnd, &v, sizeof rnd);
        cm_hex_encode(rnd, sizeof rnd, cid);
        cm_log_set_cid(cid);
    }
}

static enum MHD_Result send_response(struct MHD_Connection *conn, cm_http_resp_t *resp)
{
    if (resp->action != CM_HTTP_ANSWER) {
        if (resp->action == CM_HTTP_DROP_RESET) {
            /* SO_LINGER with a zero timeout makes close() send RST instead of FIN. */
            const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
            if (ci) {
                struct linger lg = {.l_onoff = 1, .l_linger = 0};
                setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            }
        }
        return MHD_NO;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(
        resp->body.len, resp->body.data ? resp->body.data : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    if (resp->content_type && resp->body.len)
        MHD_add_response_header(r, "Content-Type", resp->content_type);
    for (size_t i = 0; i < resp->_nheaders; i++)
        MHD_add_response_header(r, resp->_hname[i], resp->_hval[i]);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    return ret;
}

static void ctx_free_params(conn_ctx_t *ctx)
{
    for (size_t i = 0; i < ctx->nparams; i++)
        free(ctx->param_vals[i]);
    ctx->nparams = 0;
}

/* Sends a finished deferred answer, on the libmicrohttpd thread that resumed the
 * connection: the after hook sees it here, exactly once, like an immediate answer. */
static enum MHD_Result send_deferred(cm_http_server_t *s, conn_ctx_t *ctx, const char *method,
                                     const char *url)
{
    cm_http_resp_t *resp = &ctx->resp;
    cm_http_req_t req = {.method = method,
                         .path = url,
                         .body = ctx->body.data ? ctx->body.data : "",
                         .body_len = ctx->body.len,
                         .received_mono_ns = ctx->start_ns,
                         ._conn = ctx->conn,
                         ._nparams = ctx->nparams};
    memcpy(req._param_names, ctx->param_names, sizeof req._param_names);
    memcpy(req._param_vals, ctx->param_vals, sizeof req._param_vals);
    cm_log_set_cid(ctx->cid);
    if (s->after)
        s->after(&req, resp, s->after_ud);
    ctx_free_params(ctx);
    CM_DEBUG(s->name, "%s %s -> %d (deferred)", method, url, resp->status);
    cm_log_set_cid(NULL);
    enum MHD_Result ret = send_response(ctx->conn, resp);
    resp_free(resp);
    __atomic_store_n(&ctx->deferred, DEFER_NONE, __ATOMIC_RELEASE);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    cm_http_server_t *s = cls;
    conn_ctx_t *ctx = *con_cls;
    if (!ctx) {
        /* First call: headers only. Answering now would make libmicrohttpd close the
         * connection (no keep-alive), so we only set up and ask for the body. */
        ctx = calloc(1, sizeof *ctx);
        if (!ctx)
            return MHD_NO;
        cm_buf_init(&ctx->body, s->cfg.body_limit);
        ctx->start_ns = cm_clock_mono_ns();
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->cfg.body_limit)
            ctx->toobig = 1;
        *con_cls = ctx;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!ctx->toobig && cm_buf_add(&ctx->body, upload, *upload_size) != CM_OK)
            ctx->toobig = 1; /* keep reading and discarding, then answer 413 */
        *upload_size = 0;
        return MHD_YES;
    }

    if (__atomic_load_n(&ctx->deferred, __ATOMIC_ACQUIRE) != DEFER_NONE) {
        /* Resumed: send the deferred answer once it is finished. */
        if (__atomic_load_n(&ctx->deferred, __ATOMIC_ACQUIRE) != DEFER_DONE)
            return MHD_YES;
        return send_deferred(s, ctx, method, url);
    }

    cm_http_req_t req = {.method = method,
                         .path = url,
                         .body = ctx->body.data ? ctx->body.data : "",
                         .body_len = ctx->body.len,
                         .received_mono_ns = ctx->start_ns,
                         ._conn = conn};
    cm_http_resp_t *resp = &ctx->resp;
    memset(resp, 0, sizeof *resp);
    resp->status = 500;
    resp->_ctx = ctx;
    ctx->conn = conn;
    cm_buf_init(&resp->body, 64u << 20);
    set_cid(conn);
    if (ctx->toobig) {
        char detail[96];
        snprintf(detail, sizeof detail, "request body exceeds %zu bytes", s->cfg.body_limit);
        cm_http_resp_problem(resp, 413, "Content Too Large", detail);
    } else {
        dispatch(s, &req, resp);
    }
    if (__atomic_load_n(&ctx->deferred, __ATOMIC_ACQUIRE) != DEFER_NONE) {
        /* The answer is not known yet (even if another thread has finished it already, it
         * is sent from the resumed call): the after hook runs there, with what is kept. */
        memcpy(ctx->param_names, req._param_names, sizeof ctx->param_names);
        memcpy(ctx->param_vals, req._param_vals, sizeof ctx->param_vals);
        ctx->nparams = req._nparams;
        snprintf(ctx->cid, sizeof ctx->cid, "%s", cm_log_cid());
        cm_log_set_cid(NULL);
        return MHD_YES; /* suspended; answered when finished */
    }
    if (s->after)
        s->after(&req, resp, s->after_ud);
    for (size_t i = 0; i < req._nparams; i++)
        free(req._param_vals[i]);
    cm_log_set_cid(NULL);
    CM_DEBUG(s->name, "%s %s -> %d", method, url, resp->status);
    enum MHD_Result ret = send_response(conn, resp);
    resp_free(resp);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    conn_ctx_t *ctx = *con_cls;
    if (ctx) {
        /* A deferred request whose connection ended before its answer went out. */
        ctx_free_params(ctx);
        resp_free(&ctx->resp);
        cm_buf_free(&ctx->body);
        free(ctx);
        *con_cls = NULL;
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    CM_DEBUG((const char *)cls, "libmicrohttpd: %s", msg);
}

cm_err_t cm_http_server_start(cm_http_server_t *s, char *err)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(s->cfg.port)};
    if (inet_pton(AF_INET, s->bind_addr, &sa.sin_addr) != 1) {
        cm_errf(err, "bad bind address '%s'", s->bind_addr);
        return CM_EINVAL;
    }
    unsigned flags = MHD_USE_ERROR_LOG | MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME;
    if (s->cfg.threads == 0)
        flags |= MHD_USE_THREAD_PER_CONNECTION;
    else
        flags |= MHD_USE_EPOLL;
    if (s->cfg.threads > 1)
        s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &sa,
                                MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                MHD_OPTION_CONNECTION_TIMEOUT, s->cfg.conn_timeout_s,
                                MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s->name,
                                MHD_OPTION_THREAD_POOL_SIZE, s->cfg.threads, MHD_OPTION_END);
    else
        s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &sa,
                                MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                MHD_OPTION_CONNECTION_TIMEOUT, s->cfg.conn_timeout_s,
                                MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s->name, MHD_OPTION_END);
    if (!s->d) {
        cm_errf(err, "cannot listen on %s:%u (port in use or no permission)", s->bind_addr,
                (unsigned)s->cfg.port);
        return CM_EIO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->cfg.port;
    return CM_OK;
}

uint16_t cm_http_server_port(const cm_http_server_t *s)
{
    return s->port;
}

void cm_http_server_free(cm_http_server_t **sp)
{
    cm_http_server_t *s = sp ? *sp : NULL;
    if (!s)
        return;
    if (s->d)
        MHD_stop_daemon(s->d);
    for (size_t i = 0; i < s->nroutes; i++)
        route_clear(&s->routes[i]);
    free(s->bind_addr);
    free(s->name);
    free(s);
    *sp = NULL;
}
