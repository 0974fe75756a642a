/* cm_http_server.c - libmicrohttpd wrapper.
 *
 * What libmicrohttpd answers itself, and why those answers are not problem+json: it
 * refuses some requests before any callback of ours can see them, with a fixed HTML body
 * compiled into it (0.9.75, the version Debian 12 ships: src/microhttpd/connection.c,
 * transmit_error_response_len, which takes the message from the REQUEST_TOO_BIG,
 * REQUEST_MALFORMED, REQUEST_LACKS_HOST, REQUEST_CHUNKED_MALFORMED, REQUEST_CHUNK_TOO_LARGE,
 * REQUEST_CONTENTLENGTH_TOOLARGE, REQUEST_CONTENTLENGTH_MALFORMED, REQ_HTTP_VER_IS_*
 * macros at the top of that file; it has no option or callback to replace them, and its
 * access handler is first called only once the whole head is parsed). So a request line
 * or header that is malformed (400), an HTTP/1.1 request without Host (400), a bad
 * Content-Length or chunk header (400/413), an unsupported HTTP version (505) and a head
 * that does not fit in its per-connection memory pool (431) are answered by it in HTML.
 * The 431 is the one a configuration can move: with header_limit set, the pool is made
 * 4 times the limit (at least 32 KiB) and heads up to nearly that size reach on_request,
 * which answers 431 problem+json; only heads beyond it get libmicrohttpd's. */
#include "cm_http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "cm_clock.h"
#include "cm_codec.h"
#include "cm_log.h"
#include "cm_rand.h"

#define MAX_ROUTES 64
#define IP_BUCKETS 1024
#define MAX_SEGS 12

typedef struct {
    char *method;
    char *segs[MAX_SEGS];
    size_t nsegs;
    int rest; /* pattern ends in a star segment */
    cm_http_handler_fn fn;
    void *ud;
} route_t;

typedef struct ip_count {
    struct ip_count *next;
    unsigned char addr[16];
    size_t len;
    unsigned n; /* live connections from this address */
} ip_count_t;

/* One connection as the guard sees it (see the guard's section below). */
typedef struct conn_ent {
    struct conn_ent *prev, *next; /* in the HEAD or BODY list */
    int phase;
    int64_t since_ms; /* monotonic, when the phase began */
    int fd;
    ip_count_t *ip; /* NULL when not counted per address */
} conn_ent_t;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int thread_started;
    int stop;
    conn_ent_t head, body; /* sentinels of the HEAD and BODY lists, oldest first */
    unsigned live;         /* connections counted against the limits */
    ip_count_t *ips[IP_BUCKETS];
    cm_http_server_stats_t st;
    cm_http_server_stats_t logged; /* what the last summary line covered */
    int64_t logged_ms;
} guard_t;

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
    guard_t g;
    int guard_on;     /* any limit or deadline configured */
    size_t body_held; /* bytes of bodies held now (atomic), of cfg.body_budget */
};

enum { DEFER_NONE = 0, DEFER_WAITING, DEFER_DONE };

/* Per-request state kept across libmicrohttpd's calls of the access handler. A deferred
 * request keeps its response here until it is finished, and what the after hook needs
 * that libmicrohttpd does not give again when it resumes: the route's params and the
 * correlation id. */
typedef struct cm_http_deferred {
    cm_buf_t body;
    int toobig;      /* the body is over the limit: 413 */
    int over_budget; /* the bodies held at once would exceed body_budget: 503 */
    size_t held;     /* bytes of this body counted in body_held */
    int head_toobig; /* the head is over header_limit: 431 */
    int draining;    /* answered before the end of its body: the rest is read and dropped */
    size_t drained;  /* bytes read and dropped since */
    conn_ent_t *ent; /* the guard's entry, or NULL */
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
    pthread_mutex_init(&s->g.mu, NULL);
    (void)cm_clock_cond_init(&s->g.cv);
    s->g.head.next = s->g.head.prev = &s->g.head;
    s->g.body.next = s->g.body.prev = &s->g.body;
    s->guard_on =
        cfg->max_conns || cfg->max_conns_per_ip || cfg->header_timeout_ms || cfg->body_timeout_ms;
    s->bind_addr = strdup(cfg->bind_addr ? cfg->bind_addr : "127.0.0.1");
    s->name = strdup(cfg->name ? cfg->name : "http");
    if (!s->bind_addr || !s->name) {
        cm_http_server_free(&s);
        return NULL;
    }
    if (!s->cfg.body_limit)
        s->cfg.body_limit = 1 << 20;
    if (!s->cfg.body_budget)
        s->cfg.body_budget = 64 * s->cfg.body_limit;
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

typedef struct {
    cm_http_query_fn fn;
    void *ud;
    int rc;
} query_each_t;

static enum MHD_Result query_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    query_each_t *q = cls;
    (void)kind;
    q->rc = q->fn(q->ud, key, value);
    return q->rc ? MHD_NO : MHD_YES;
}

int cm_http_req_query_each(const cm_http_req_t *req, cm_http_query_fn fn, void *ud)
{
    query_each_t q = {.fn = fn, .ud = ud};
    if (req->_conn)
        MHD_get_connection_values(req->_conn, MHD_GET_ARGUMENT_KIND, query_one, &q);
    return q.rc;
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

/* ---- Hostile-load guard ----------------------------------------------------------------
 * libmicrohttpd's only clock on a connection is an inactivity timeout that every byte
 * resets, so a byte a second holds a connection for ever; and at its connection limit it
 * refuses new connections, whoever holds the old ones (1,100 slowloris connections made 9
 * of 11 valid webhooks time out). The guard keeps its own table of the connections
 * (MHD_OPTION_NOTIFY_CONNECTION), each in one phase:
 *   HEAD  waiting for a complete request head: from the accept, or from the end of the
 *         previous answer (an idle keep-alive connection is in HEAD too);
 *   BODY  head complete, body being read;
 *   BUSY  handler running, answer deferred or being sent: no deadline of ours;
 *   GONE  shut down by the guard, until libmicrohttpd closes it.
 * A watchdog thread shuts down every connection in HEAD or BODY past its deadline:
 * shutdown(2), never close(2), so the descriptor stays libmicrohttpd's (it sees the end of
 * the stream, closes it and tells us, NOTIFY_CLOSED, before the descriptor is released;
 * an entry is only touched under the guard's lock, so a shut down descriptor is never one
 * reused by a new connection). A new connection over a limit takes the place of the
 * oldest one in HEAD (of its own address, for the per-address limit): those hold
 * capacity without using it, and the oldest are the slowest, while a valid sender's head
 * arrives in one packet. Connections in BODY or BUSY are requests being served and are
 * never evicted. When there is nothing to evict, the new connection is shut down before
 * anything is read from it: every slot then holds a request in progress, and reading a
 * head to answer 503 would take the very descriptor and time the server lacks. */

enum { PH_HEAD = 0, PH_BODY, PH_BUSY, PH_GONE };

#define WATCH_MS 100 /* the deadlines' resolution */
#define SUMMARY_MS 10000

static size_t ip_bucket(const unsigned char *a, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ a[i]) * 16777619u;
    return h % IP_BUCKETS;
}

/* The address part of sa (4 or 16 bytes), or 0 bytes for other families. */
static size_t ip_key(const struct sockaddr *sa, unsigned char out[16])
{
    if (sa && sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        return 4;
    }
    if (sa && sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        return 16;
    }
    return 0;
}

/* The count of key's address, created at 0 when new; NULL when out of memory (the
 * connection is then counted in the total only). Under g->mu. */
static ip_count_t *ip_get(guard_t *g, const unsigned char *key, size_t len)
{
    size_t b = ip_bucket(key, len);
    for (ip_count_t *c = g->ips[b]; c; c = c->next)
        if (c->len == len && !memcmp(c->addr, key, len))
            return c;
    ip_count_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    memcpy(c->addr, key, len);
    c->len = len;
    c->next = g->ips[b];
    g->ips[b] = c;
    return c;
}

/* Frees c when it counts nothing. Under g->mu. */
static void ip_release(guard_t *g, ip_count_t *c)
{
    if (!c || c->n)
        return;
    for (ip_count_t **pp = &g->ips[ip_bucket(c->addr, c->len)]; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            free(c);
            return;
        }
}

static void list_unlink(conn_ent_t *e)
{
    if (e->prev) {
        e->prev->next = e->next;
        e->next->prev = e->prev;
    }
    e->prev = e->next = NULL;
}

/* Appends e (newest last: each list stays ordered by since_ms). */
static void list_append(conn_ent_t *sentinel, conn_ent_t *e)
{
    e->prev = sentinel->prev;
    e->next = sentinel;
    sentinel->prev->next = e;
    sentinel->prev = e;
}

static void enter(guard_t *g, conn_ent_t *e, int phase)
{
    list_unlink(e);
    e->phase = phase;
    e->since_ms = cm_clock_mono_ms();
    if (phase == PH_HEAD)
        list_append(&g->head, e);
    else if (phase == PH_BODY)
        list_append(&g->body, e);
}

/* Stops counting e and shuts its socket down; libmicrohttpd sees the end of the stream
 * and closes the connection. Under g->mu. */
static void make_gone(guard_t *g, conn_ent_t *e)
{
    if (e->phase == PH_GONE)
        return;
    list_unlink(e);
    e->phase = PH_GONE;
    g->live--;
    if (e->ip) {
        e->ip->n--;
        ip_release(g, e->ip);
        e->ip = NULL;
    }
    shutdown(e->fd, SHUT_RDWR);
}

/* The oldest connection waiting for a head, of address ip when not NULL. Under g->mu. */
static conn_ent_t *oldest_head(guard_t *g, const ip_count_t *ip)
{
    for (conn_ent_t *e = g->head.next; e != &g->head; e = e->next)
        if (!ip || e->ip == ip)
            return e;
    return NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    cm_http_server_t *s = cls;
    guard_t *g = &s->g;
    if (!s->guard_on)
        return;
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        conn_ent_t *e = *socket_context;
        if (!e)
            return;
        pthread_mutex_lock(&g->mu);
        if (e->phase != PH_GONE) {
            list_unlink(e);
            g->live--;
            if (e->ip) {
                e->ip->n--;
                ip_release(g, e->ip);
            }
        }
        pthread_mutex_unlock(&g->mu);
        free(e);
        *socket_context = NULL;
        return;
    }
    /* A connection whose entry cannot be allocated is simply not guarded. */
    conn_ent_t *e = calloc(1, sizeof *e);
    if (!e)
        return;
    const union MHD_ConnectionInfo *fdi =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *ai =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    unsigned char key[16];
    size_t klen = ip_key(ai ? ai->client_addr : NULL, key);
    e->fd = fdi ? fdi->connect_fd : -1;
    pthread_mutex_lock(&g->mu);
    ip_count_t *ip = s->cfg.max_conns_per_ip && klen ? ip_get(g, key, klen) : NULL;
    int over_ip = ip && ip->n >= s->cfg.max_conns_per_ip;
    int over_total = s->cfg.max_conns && g->live >= s->cfg.max_conns;
    int refused = 0;
    if (over_ip || over_total) {
        /* One victim of the same address serves both limits. */
        conn_ent_t *v = oldest_head(g, over_ip ? ip : NULL);
        if (v) {
            make_gone(g, v);
            g->st.evicted++;
        } else {
            refused = 1;
        }
    }
    if (refused || e->fd < 0) {
        e->phase = PH_GONE;
        ip_release(g, ip);
        g->st.refused++;
        if (e->fd >= 0)
            shutdown(e->fd, SHUT_RDWR);
    } else {
        e->ip = ip;
        if (ip)
            ip->n++;
        g->live++;
        enter(g, e, PH_HEAD);
    }
    pthread_mutex_unlock(&g->mu);
    *socket_context = e;
}

static conn_ent_t *ent_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* Moves e from `from` to `to`; 0 when the guard has shut the connection down already
 * (the caller then stops serving it). */
static int guard_move(cm_http_server_t *s, conn_ent_t *e, int from, int to)
{
    int ok = 1;
    if (!e)
        return 1;
    pthread_mutex_lock(&s->g.mu);
    if (e->phase == PH_GONE)
        ok = 0;
    else if (from < 0 || e->phase == from)
        enter(&s->g, e, to);
    pthread_mutex_unlock(&s->g.mu);
    return ok;
}

/* 1 when bytes have arrived that libmicrohttpd has not read yet: then it is the server's
 * thread that is late (descheduled on a loaded machine, or under a sped-up clock where a
 * 10 s deadline is 100 ms of real time), not the client, and the connection is given the
 * next sweep. A slow client's bytes are read as they come, so it never has any. */
static int unread_bytes(int fd)
{
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

/* Shuts down the connections in list that are past their deadline. Under g->mu. */
static void sweep(cm_http_server_t *s, conn_ent_t *list, int64_t now, int heads)
{
    guard_t *g = &s->g;
    unsigned normal = heads ? s->cfg.header_timeout_ms : s->cfg.body_timeout_ms;
    unsigned busy = heads && s->cfg.header_timeout_busy_ms ? s->cfg.header_timeout_busy_ms : normal;
    unsigned shortest = busy && busy < normal ? busy : normal;
    if (!normal)
        return;
    int full = s->cfg.max_conns && (uint64_t)g->live * 4 > (uint64_t)s->cfg.max_conns * 3;
    for (conn_ent_t *e = list->next, *nx; e != list; e = nx) {
        nx = e->next;
        int64_t age = now - e->since_ms;
        if (age < (int64_t)shortest)
            break; /* the rest are younger */
        int pressed = full || (s->cfg.max_conns_per_ip && e->ip &&
                               (uint64_t)e->ip->n * 4 > (uint64_t)s->cfg.max_conns_per_ip * 3);
        if (age >= (int64_t)(pressed ? busy : normal) && !unread_bytes(e->fd)) {
            make_gone(g, e);
            if (heads)
                g->st.head_timeouts++;
            else
                g->st.body_timeouts++;
        }
    }
}

static void *watchdog(void *arg)
{
    cm_http_server_t *s = arg;
    guard_t *g = &s->g;
    pthread_mutex_lock(&g->mu);
    g->logged_ms = cm_clock_mono_ms();
    while (!g->stop) {
        struct timespec dl = cm_clock_mono_deadline(WATCH_MS);
        int rc = 0;
        while (!g->stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&g->cv, &g->mu, &dl);
        if (g->stop)
            break;
        int64_t now = cm_clock_mono_ms();
        sweep(s, &g->head, now, 1);
        sweep(s, &g->body, now, 0);
        /* One line now and then says what the guards did; never one per connection, which
         * an attacker would turn into a log flood. */
        cm_http_server_stats_t st = g->st, was = g->logged;
        if (now - g->logged_ms >= SUMMARY_MS &&
            (st.head_timeouts != was.head_timeouts || st.body_timeouts != was.body_timeouts ||
             st.evicted != was.evicted || st.refused != was.refused)) {
            unsigned live = g->live;
            int64_t was_ms = g->logged_ms;
            g->logged = st;
            g->logged_ms = now;
            pthread_mutex_unlock(&g->mu);
            CM_WARN(s->name,
                    "connections closed in the last %lld s: %llu without a complete request "
                    "head in time, %llu without a complete body in time, %llu evicted at a "
                    "connection limit, %llu refused at a limit (none to evict); %u open",
                    (long long)((now - was_ms) / 1000),
                    (unsigned long long)(st.head_timeouts - was.head_timeouts),
                    (unsigned long long)(st.body_timeouts - was.body_timeouts),
                    (unsigned long long)(st.evicted - was.evicted),
                    (unsigned long long)(st.refused - was.refused), live);
            pthread_mutex_lock(&g->mu);
        }
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

void cm_http_server_stats(cm_http_server_t *s, cm_http_server_stats_t *out)
{
    pthread_mutex_lock(&s->g.mu);
    *out = s->g.st;
    out->open = s->g.live;
    out->body_bytes_held = __atomic_load_n(&s->body_held, __ATOMIC_RELAXED);
    out->waiting_head = out->reading_body = 0;
    for (conn_ent_t *e = s->g.head.next; e != &s->g.head; e = e->next)
        out->waiting_head++;
    for (conn_ent_t *e = s->g.body.next; e != &s->g.body; e = e->next)
        out->reading_body++;
    pthread_mutex_unlock(&s->g.mu);
}

static void count(cm_http_server_t *s, uint64_t *counter)
{
    pthread_mutex_lock(&s->g.mu);
    (*counter)++;
    pthread_mutex_unlock(&s->g.mu);
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

/* n lowercase hex digits at s, not all zero (W3C Trace Context: ids must not be zero). */
static int lower_hex_id(const char *s, size_t n)
{
    int nonzero = 0;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
        nonzero |= s[i] != '0';
    }
    return nonzero;
}

/* Whether tp is a W3C traceparent as its spec writes it: "vv-<32 hex>-<16 hex>-ff",
 * lowercase hex, version not ff, exactly 55 characters at version 00 (a later version may
 * append "-..."). */
static int valid_traceparent(const char *tp)
{
    size_t len = strlen(tp);
    if (len < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-')
        return 0;
    if (!lower_hex_id(tp, 2) && strncmp(tp, "00", 2))
        return 0;
    if (!strncmp(tp, "ff", 2) || (!strncmp(tp, "00", 2) && len != 55) ||
        (len > 55 && tp[55] != '-'))
        return 0;
    return lower_hex_id(tp + 3, 32) && lower_hex_id(tp + 36, 16) &&
           (lower_hex_id(tp + 53, 2) || !strncmp(tp + 53, "00", 2));
}

/* Sets the per-request correlation id: the trace id of a valid W3C traceparent, else a
 * fresh random id. Nothing else a client sends becomes the id: it is written into every
 * log line of the request, and an unchecked header once put
 * "mallory@evil.example+15551234567" there. */
static void set_cid(struct MHD_Connection *conn)
{
    char cid[40];
    const char *tp = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "traceparent");
    if (tp && valid_traceparent(tp)) {
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

/* Adds one header's size to *(size_t *)cls. */
static enum MHD_Result add_header_size(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4; /* ": " and CRLF */
    return MHD_YES;
}

/* The size of the request head as sent, near enough: request line and header lines. */
static size_t head_size(struct MHD_Connection *conn, const char *method, const char *url)
{
    size_t n = strlen(method) + strlen(url) + sizeof " HTTP/1.1\r\n";
    MHD_get_connection_values(conn, MHD_HEADER_KIND, add_header_size, &n);
    return n;
}

/* Writes resp straight to the socket, for an answer libmicrohttpd can no longer queue (it
 * accepts a response only before the body is read or after all of it). Best effort: the
 * socket is non-blocking and a few hundred bytes fit in any send buffer; what does not is
 * dropped, since the connection closes next anyway. */
static void write_raw(int fd, const cm_http_resp_t *resp)
{
    char head[1024];
    size_t n = (size_t)snprintf(head, sizeof head,
                                "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Length: %zu\r\n",
                                resp->status, cm_http_reason(resp->status), resp->body.len);
    if (resp->content_type && resp->body.len && n < sizeof head)
        n +=
            (size_t)snprintf(head + n, sizeof head - n, "Content-Type: %s\r\n", resp->content_type);
    for (size_t i = 0; i < resp->_nheaders && n < sizeof head; i++)
        n += (size_t)snprintf(head + n, sizeof head - n, "%s: %s\r\n", resp->_hname[i],
                              resp->_hval[i]);
    if (n + 2 >= sizeof head)
        return;
    memcpy(head + n, "\r\n", 2);
    n += 2;
    if (send(fd, head, n, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)n && resp->body.len)
        (void)send(fd, resp->body.data, resp->body.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    /* The FIN follows the answer; the peer may still be sending, and whatever it sends is
     * no longer read. */
    shutdown(fd, SHUT_WR);
}

/* How much of a refused body is read and dropped before the connection is closed anyway:
 * enough for any sender that merely went over the limit, bounded for one that sends for
 * ever. */
static size_t drain_max(const cm_http_server_t *s)
{
    size_t four = s->cfg.body_limit > SIZE_MAX / 4 ? SIZE_MAX : s->cfg.body_limit * 4;
    return four > ((size_t)4 << 20) ? four : (size_t)4 << 20;
}

/* Whether a request refused at its head has a body worth draining after the answer: one
 * is coming (a length or chunks), the sender does not wait for 100-continue (it would be
 * answered before sending any), and the declared length is within drain_max. */
static int drain_after_head(const cm_http_server_t *s, struct MHD_Connection *conn)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
    const char *ex = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Expect");
    if (ex && strcasecmp(ex, "100-continue") == 0)
        return 0;
    if (te)
        return 1;
    unsigned long long n = cl ? strtoull(cl, NULL, 10) : 0;
    return n > 0 && n <= drain_max(s);
}

/* A refusal decided before the whole body is read. The answer is written at once, so the
 * sender can stop, and the rest of the body is then read and dropped (up to drain_max)
 * before the connection closes: closing a socket with unread bytes makes the kernel send
 * a reset, which can reach the sender before it has read the answer (libcurl: "Failed
 * sending data to the peer", 1 in 60 runs of a 2.4 MB webhook on loopback). The held
 * part of the body is let go first. */
static void start_draining(cm_http_server_t *s, conn_ctx_t *ctx)
{
    __atomic_sub_fetch(&s->body_held, ctx->held, __ATOMIC_RELAXED);
    ctx->held = 0;
    cm_buf_free(&ctx->body);
    ctx->draining = 1;
}

/* Decides and sends the answer to a request whose body has been read (or that is refused
 * before its body is read: ctx->toobig, ctx->head_toobig, ctx->over_budget; then, when
 * ctx->draining, it is written at once and the rest of the body drained). */
static enum MHD_Result answer(cm_http_server_t *s, struct MHD_Connection *conn, conn_ctx_t *ctx,
                              const char *method, const char *url)
{
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
    if (ctx->head_toobig) {
        char detail[96];
        snprintf(detail, sizeof detail, "request line and headers exceed %zu bytes",
                 s->cfg.header_limit);
        cm_http_resp_problem(resp, 431, "Request Header Fields Too Large", detail);
        count(s, &s->g.st.heads_too_large);
    } else if (ctx->toobig) {
        char detail[96];
        snprintf(detail, sizeof detail, "request body exceeds %zu bytes", s->cfg.body_limit);
        cm_http_resp_problem(resp, 413, "Content Too Large", detail);
        count(s, &s->g.st.bodies_too_large);
    } else if (ctx->over_budget) {
        /* Not the sender's fault: worth retrying soon, which every provider's webhook
         * retry does on a 5xx (Cal.com sends once: reconciliation finds what it lost). */
        cm_http_resp_problem(resp, 503, "Service Unavailable",
                             "too many request bodies are being received at once; retry");
        if (cm_http_resp_header(resp, "Retry-After", "1") != CM_OK)
            CM_WARN(s->name, "could not add Retry-After to a 503");
        count(s, &s->g.st.over_budget);
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
    enum MHD_Result ret;
    if (ctx->draining) {
        /* Refused before the end of the body: libmicrohttpd takes no response until all
         * of it is read, so the answer is written by hand; the connection closes once the
         * body has been drained (start_draining). */
        write_raw(cm_http_req_fd(&req), resp);
        ret = MHD_YES;
    } else {
        ret = send_response(conn, resp);
    }
    resp_free(resp);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    cm_http_server_t *s = cls;
    conn_ctx_t *ctx = *con_cls;
    if (!ctx) {
        /* First call: the head only. Answering now makes libmicrohttpd send the answer,
         * read no body and close the connection (no keep-alive), so only a request refused
         * for its head or its declared size is answered here: by libmicrohttpd when no
         * body follows (or the sender waits for 100-continue, or declared more than is
         * worth draining), else written at once and the body drained. */
        conn_ent_t *ent = s->guard_on ? ent_of(conn) : NULL;
        if (!guard_move(s, ent, PH_HEAD, PH_BODY))
            return MHD_NO; /* the guard shut it down meanwhile */
        ctx = calloc(1, sizeof *ctx);
        if (!ctx)
            return MHD_NO;
        ctx->ent = ent;
        cm_buf_init(&ctx->body, s->cfg.body_limit);
        ctx->start_ns = cm_clock_mono_ns();
        *con_cls = ctx;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->cfg.body_limit)
            ctx->toobig = 1;
        if (s->cfg.header_limit && head_size(conn, method, url) > s->cfg.header_limit)
            ctx->head_toobig = 1;
        if (!ctx->toobig && !ctx->head_toobig)
            return MHD_YES;
        if (drain_after_head(s, conn)) {
            /* Still in BODY for the guard: the drain has the body's deadline. */
            start_draining(s, ctx);
            return answer(s, conn, ctx, method, url);
        }
        (void)guard_move(s, ent, -1, PH_BUSY);
        return answer(s, conn, ctx, method, url);
    }
    if (ctx->draining) {
        /* Answered already: what is left of the body is dropped, and the connection
         * closed at its end (the answer said so) or past drain_max. */
        ctx->drained += *upload_size;
        int more = *upload_size && ctx->drained <= drain_max(s);
        *upload_size = 0;
        return more ? MHD_YES : MHD_NO;
    }
    if (*upload_size) {
        /* Counted before it is kept: the sum of what all connections hold never passes
         * the budget, even for a moment. */
        size_t held = __atomic_add_fetch(&s->body_held, *upload_size, __ATOMIC_RELAXED);
        if (held > s->cfg.body_budget) {
            __atomic_sub_fetch(&s->body_held, *upload_size, __ATOMIC_RELAXED);
            ctx->over_budget = 1;
            ctx->drained = *upload_size;
            *upload_size = 0;
            start_draining(s, ctx);
            return answer(s, conn, ctx, method, url);
        }
        ctx->held += *upload_size;
        if (cm_buf_add(&ctx->body, upload, *upload_size) != CM_OK) {
            /* Over the limit with no Content-Length to tell beforehand (chunked): not one
             * byte more is read. An endless chunked body was once read to its end: 73.7
             * GB in 30 s. */
            ctx->toobig = 2;
            ctx->drained = *upload_size;
            *upload_size = 0;
            start_draining(s, ctx);
            return answer(s, conn, ctx, method, url);
        }
        *upload_size = 0;
        return MHD_YES;
    }

    if (__atomic_load_n(&ctx->deferred, __ATOMIC_ACQUIRE) != DEFER_NONE) {
        /* Resumed: send the deferred answer once it is finished. */
        if (__atomic_load_n(&ctx->deferred, __ATOMIC_ACQUIRE) != DEFER_DONE)
            return MHD_YES;
        return send_deferred(s, ctx, method, url);
    }
    if (!guard_move(s, ctx->ent, PH_BODY, PH_BUSY))
        return MHD_NO;
    return answer(s, conn, ctx, method, url);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    cm_http_server_t *s = cls;
    conn_ctx_t *ctx = *con_cls;
    if (ctx) {
        /* The connection now waits for its next request head (a keep-alive connection),
         * or closes, which the guard hears of next. */
        (void)guard_move(s, ctx->ent, -1, PH_HEAD);
        /* A deferred request whose connection ended before its answer went out. */
        ctx_free_params(ctx);
        resp_free(&ctx->resp);
        cm_buf_free(&ctx->body);
        __atomic_sub_fetch(&s->body_held, ctx->held, __ATOMIC_RELAXED);
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

/* Descriptors kept for everything else in the process (store, outbound connections,
 * logs) when the connection limit is checked against RLIMIT_NOFILE. */
#define FD_RESERVE 256

/* libmicrohttpd's own limit: ours plus room for the connections the guard has shut down
 * and libmicrohttpd has not closed yet (they still hold a descriptor), so that ours
 * decides first. */
static unsigned mhd_conn_limit(unsigned max_conns)
{
    return max_conns + max_conns / 8 + 16;
}

/* Keeps max_conns within the open-file limit: past it accept() fails and libmicrohttpd
 * stops accepting for a while, whoever asks. Says so when it has to lower it. */
static void fit_fd_limit(cm_http_server_t *s)
{
    struct rlimit rl;
    if (!s->cfg.max_conns || getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return;
    if ((uint64_t)mhd_conn_limit(s->cfg.max_conns) + FD_RESERVE <= rl.rlim_cur)
        return;
    uint64_t room = rl.rlim_cur > FD_RESERVE + 32 ? rl.rlim_cur - FD_RESERVE - 16 : 16;
    unsigned fit = (unsigned)(room * 8 / 9);
    if (fit < 16)
        fit = 16;
    CM_WARN(s->name,
            "max_conns %u does not fit the open-file limit %llu (RLIMIT_NOFILE): %u used "
            "(raise the limit, e.g. LimitNOFILE= in the service unit)",
            s->cfg.max_conns, (unsigned long long)rl.rlim_cur, fit);
    s->cfg.max_conns = fit;
    if (s->cfg.max_conns_per_ip > fit)
        s->cfg.max_conns_per_ip = fit;
}

cm_err_t cm_http_server_start(cm_http_server_t *s, char *err)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(s->cfg.port)};
    if (inet_pton(AF_INET, s->bind_addr, &sa.sin_addr) != 1) {
        cm_errf(err, "bad bind address '%s'", s->bind_addr);
        return CM_EINVAL;
    }
    fit_fd_limit(s);
    unsigned flags = MHD_USE_ERROR_LOG | MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME;
    if (s->cfg.threads == 0)
        flags |= MHD_USE_THREAD_PER_CONNECTION;
    else
        flags |= MHD_USE_EPOLL;
    /* The options that depend on the configuration; the rest are always given. */
    struct MHD_OptionItem opts[4];
    size_t n = 0;
    if (s->cfg.threads > 1)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, s->cfg.threads, NULL};
    if (s->cfg.max_conns)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT,
                                            mhd_conn_limit(s->cfg.max_conns), NULL};
    if (s->cfg.header_limit) {
        /* A head is read into half the pool at first and may grow into the rest: 4 times
         * the limit lets a head well over the limit reach on_request and its 431
         * problem+json (see the top of this file). Memory: libmicrohttpd zeroes the whole
         * pool between two requests of a connection (memorypool.c, MHD_pool_reset), so a
         * kept-alive connection holds all of it; the default 8 KiB limit keeps the pool
         * at libmicrohttpd's own default. */
        size_t pool = s->cfg.header_limit * 4 > 32768 ? s->cfg.header_limit * 4 : 32768;
        opts[n++] =
            (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)pool, NULL};
    }
    opts[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_CONNECTION_TIMEOUT, s->cfg.conn_timeout_s, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, s->name, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!s->d) {
        cm_errf(err, "cannot listen on %s:%u (port in use or no permission)", s->bind_addr,
                (unsigned)s->cfg.port);
        return CM_EIO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->cfg.port;
    if (s->guard_on) {
        if (pthread_create(&s->g.thread, NULL, watchdog, s) != 0) {
            cm_errf(err, "cannot start the connection watchdog thread");
            MHD_stop_daemon(s->d);
            s->d = NULL;
            return CM_EIO;
        }
        s->g.thread_started = 1;
    }
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
        MHD_stop_daemon(s->d); /* every connection closed: the guard's table is empty */
    if (s->g.thread_started) {
        pthread_mutex_lock(&s->g.mu);
        s->g.stop = 1;
        pthread_cond_signal(&s->g.cv);
        pthread_mutex_unlock(&s->g.mu);
        pthread_join(s->g.thread, NULL);
    }
    for (size_t b = 0; b < IP_BUCKETS; b++)
        for (ip_count_t *c = s->g.ips[b], *nx; c; c = nx) {
            nx = c->next;
            free(c);
        }
    pthread_mutex_destroy(&s->g.mu);
    pthread_cond_destroy(&s->g.cv);
    for (size_t i = 0; i < s->nroutes; i++)
        route_clear(&s->routes[i]);
    free(s->bind_addr);
    free(s->name);
    free(s);
    *sp = NULL;
}
