/* cm_http_server.h - HTTP/1.1 server over libmicrohttpd: routing, raw bodies with a size
 * cap, JSON and problem+json answers, connection drops for fault injection, clean stop.
 *
 * Routes are "METHOD /path/{param}/..." patterns; a trailing "/ *" (no space) matches any rest.
 * Handlers run on libmicrohttpd's threads (a pool, or one per connection when threads is
 * 0) and must be thread-safe with respect to their user data. The request and everything
 * it points to is borrowed for the duration of the handler call only. The response is
 * owned by the server; handlers fill it with the cm_http_resp_* functions.
 * Bodies larger than body_limit are refused with 413 before the handler runs, and no more
 * of them is read: a declared Content-Length over the limit is answered at once, a chunked
 * body is cut at the limit (the 413 is written and the connection closed). A request with
 * no route gets 404 (405 when the path exists under another method). Every answer the
 * server makes itself is application/problem+json, except those libmicrohttpd makes before
 * the request reaches it (a malformed request line or header, a head larger than its
 * memory pool: cm_http_server.c says which and why they cannot be changed).
 *
 * Hostile load (all off when 0, as the simulators want; the gateway sets them): limits on
 * open connections in total and per client address, where a connection over a limit takes
 * the place of the oldest one that is only waiting for a request head (idle keep-alive or
 * a head trickling in) and is closed unread when there is none; absolute deadlines for a
 * request's head and body, which bytes trickling in do not extend (libmicrohttpd's own
 * inactivity timeout does); a shorter head deadline while the server is nearly full; a
 * size limit on request heads (431).
 */
#ifndef CM_HTTP_SERVER_H
#define CM_HTTP_SERVER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_buf.h"
#include "cm_err.h"

#define CM_HTTP_MAX_PARAMS 4
#define CM_HTTP_MAX_RESP_HEADERS 16

typedef struct cm_http_server cm_http_server_t;

typedef struct {
    const char *method;
    const char *path; /* decoded path without the query string */
    const char *body; /* raw bytes, NUL-terminated for convenience; never NULL */
    size_t body_len;
    int64_t received_mono_ns; /* when the request line arrived */
    /* private */
    struct MHD_Connection *_conn;
    const char *_param_names[CM_HTTP_MAX_PARAMS];
    char *_param_vals[CM_HTTP_MAX_PARAMS];
    size_t _nparams;
} cm_http_req_t;

typedef enum {
    CM_HTTP_ANSWER = 0,     /* send the response */
    CM_HTTP_DROP_CLOSE = 1, /* close the connection without answering (FIN) */
    CM_HTTP_DROP_RESET = 2, /* abort the connection (RST) */
} cm_http_action_t;

typedef struct {
    int status;
    cm_buf_t body;
    const char *content_type; /* static string */
    cm_http_action_t action;
    /* private */
    char *_hname[CM_HTTP_MAX_RESP_HEADERS];
    char *_hval[CM_HTTP_MAX_RESP_HEADERS];
    size_t _nheaders;
    void *_ctx; /* the connection's state, for cm_http_resp_defer */
} cm_http_resp_t;

/* A response answered later, from any thread (see cm_http_resp_defer). */
typedef struct cm_http_deferred cm_http_deferred_t;

typedef void (*cm_http_handler_fn)(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud);

/* Runs before routing; returns 1 when it has answered (resp filled), 0 to go on. Used by
 * the simulators' fault engine so that faults are one concern, not spread over handlers. */
typedef int (*cm_http_filter_fn)(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud);

/* Runs exactly once for every answered request, after the answer is decided (by the
 * filter, a handler - deferred or not - or the server's own 404/405/413) and before it is
 * sent, with the final status; it may change resp (e.g. its action). Used by the
 * simulators to record every exchange and to apply faults that need the handler's real
 * answer (a truncated or slowly dribbled body).
 * Thread: always a libmicrohttpd thread serving the connection, never the thread that
 * calls cm_http_deferred_finish. For an immediate answer it runs right after the filter or
 * handler on the same thread. For a deferred one it runs when the connection resumes after
 * cm_http_deferred_finish, so the elapsed time since req->received_mono_ns includes the
 * wait; req's method, path, body, params and headers are valid again, but thread-local
 * state the filter or handler left may not be (the thread may have served other requests
 * in between). A request that ends unanswered (the client hung up, or the server was freed
 * before a deferred answer was finished) does not reach it. */
typedef void (*cm_http_after_fn)(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud);

typedef struct {
    const char *bind_addr; /* "127.0.0.1" when NULL */
    uint16_t port;         /* 0: any free port; read it back with cm_http_server_port */
    unsigned threads;      /* pool size; 0 = one thread per connection */
    size_t body_limit;     /* bytes; 1 MiB when 0 */
    /* Bytes of request bodies held at once, all connections together (from their first
     * byte until the request is done); a body that would go over it is refused with 503
     * and Retry-After, its connection closed. Bounds what many large bodies in parallel
     * cost in memory, so body_limit can fit the largest real webhook. 64 x body_limit
     * when 0. */
    size_t body_budget;
    unsigned conn_timeout_s; /* inactivity timeout (any byte resets it); 30 when 0 */
    const char *name;        /* log component, e.g. "sim.calcom" */
    /* Hostile load; each is off when 0. */
    unsigned max_conns;        /* open connections; 0: libmicrohttpd's default, no eviction */
    unsigned max_conns_per_ip; /* open connections per client address */
    /* A request head must be complete this long after the connection opened or after its
     * previous answer was sent (so it also bounds an idle keep-alive connection). */
    unsigned header_timeout_ms;
    /* The same while more than 3/4 of max_conns, or of max_conns_per_ip for the client's
     * address, are open; 0: header_timeout_ms. */
    unsigned header_timeout_busy_ms;
    unsigned body_timeout_ms; /* the whole body this long after the head */
    /* Request line and headers, in bytes; a larger head gets 431. libmicrohttpd's memory
     * pool per connection is made 4 times this (at least its default 32 KiB), and heads
     * up to nearly the pool's size reach this check (32,000 bytes of 32 KiB, measured). */
    size_t header_limit;
} cm_http_server_cfg_t;

/* What the hostile-load guards did since start (cm_http_server_stats). */
typedef struct {
    uint64_t open;             /* connections counted against the limits now */
    uint64_t waiting_head;     /* of those, waiting for a request head (idle ones too) */
    uint64_t reading_body;     /* of those, reading a request body */
    uint64_t head_timeouts;    /* closed: no complete request head in time */
    uint64_t body_timeouts;    /* closed: body not complete in time */
    uint64_t evicted;          /* closed to make room for a new connection at a limit */
    uint64_t refused;          /* new connections closed unread: at a limit, none to evict */
    uint64_t heads_too_large;  /* answered 431 */
    uint64_t bodies_too_large; /* answered 413 */
    uint64_t over_budget;      /* answered 503: the bodies held at once were at body_budget */
    uint64_t body_bytes_held;  /* now, of body_budget */
} cm_http_server_stats_t;

/* Creates a stopped server. Copies cfg's strings. NULL when out of memory. */
cm_http_server_t *cm_http_server_new(const cm_http_server_cfg_t *cfg);

/* Adds a route before start. pattern is "POST /webhooks/{provider}" (copied). */
cm_err_t cm_http_server_route(cm_http_server_t *s, const char *pattern, cm_http_handler_fn fn,
                              void *ud) CM_WUR;
void cm_http_server_set_filter(cm_http_server_t *s, cm_http_filter_fn fn, void *ud);
/* Sets the after hook (before start; NULL removes it). ud is borrowed. */
void cm_http_server_set_after(cm_http_server_t *s, cm_http_after_fn fn, void *ud);

/* Binds and starts serving. On error err says why and the server stays stopped. */
cm_err_t cm_http_server_start(cm_http_server_t *s, char *err) CM_WUR;
/* The bound port (valid after a successful start). */
uint16_t cm_http_server_port(const cm_http_server_t *s);

/* The guards' counters so far; any thread, after a successful start. */
void cm_http_server_stats(cm_http_server_t *s, cm_http_server_stats_t *out);

/* Stops (waits for in-flight handlers), frees, and sets *s to NULL. Accepts NULL. */
void cm_http_server_free(cm_http_server_t **s);

/* Request accessors; results are borrowed from the request. Header names are
 * case-insensitive. NULL when absent. */
const char *cm_http_req_header(const cm_http_req_t *req, const char *name);
const char *cm_http_req_query(const cm_http_req_t *req, const char *name);
const char *cm_http_req_param(const cm_http_req_t *req, const char *name);
/* Calls fn(ud, name, value) for each query parameter, in the order sent (value NULL for a
 * bare name, "?a"); stops at the first fn that returns nonzero and returns that, else 0.
 * Names and values are decoded and borrowed for the call. */
typedef int (*cm_http_query_fn)(void *ud, const char *name, const char *value);
int cm_http_req_query_each(const cm_http_req_t *req, cm_http_query_fn fn, void *ud);

/* The connection's socket, for fault injection that writes raw bytes (garbage, a
 * malformed chunk, a body cut short) or watches for the peer hanging up; -1 when unknown.
 * Valid only during the filter, handler or after-hook call. The caller must not close it;
 * after writing to it, set resp->action to CM_HTTP_DROP_CLOSE or CM_HTTP_DROP_RESET so the
 * server sends nothing more. */
int cm_http_req_fd(const cm_http_req_t *req);

/* Response helpers. Each replaces the body set before. Header name and value are copied;
 * setting more than CM_HTTP_MAX_RESP_HEADERS fails with CM_ETOOBIG. */
cm_err_t cm_http_resp_header(cm_http_resp_t *resp, const char *name, const char *value);
/* The i-th response header set so far (borrowed): 1 with *name and *value set, 0 when
 * there are fewer than i + 1. For code that writes an answer itself (fault injection). */
int cm_http_resp_header_at(const cm_http_resp_t *resp, size_t i, const char **name,
                           const char **value);
void cm_http_resp_text(cm_http_resp_t *resp, int status, const char *ctype, const char *text);
/* Takes the reference to v (json_decref'd here), so callers can write
 * cm_http_resp_json(resp, 200, json_pack(...)). A NULL v answers 500. */
void cm_http_resp_json(cm_http_resp_t *resp, int status, json_t *v);
/* RFC 9457 problem details: {"type":"about:blank","title":...,"status":...,"detail":...}. */
void cm_http_resp_problem(cm_http_resp_t *resp, int status, const char *title, const char *detail);

/* Defers the answer so the handler can return at once while other work (a group commit)
 * completes: the connection is suspended, and the answer is sent when some thread fills
 * cm_http_deferred_resp() and calls cm_http_deferred_finish(). Call it at most once, from
 * the handler; after it the handler must not touch resp. The request body (req->body)
 * stays valid until finish; params and headers do not. Every deferred response must be
 * finished exactly once, and before the server is freed. */
cm_http_deferred_t *cm_http_resp_defer(cm_http_resp_t *resp);
cm_http_resp_t *cm_http_deferred_resp(cm_http_deferred_t *d);
void cm_http_deferred_finish(cm_http_deferred_t *d);

/* The reason phrase for a status ("Not Found"), "Unknown" for others. */
const char *cm_http_reason(int status);

#endif
