/* sc_http.h - one request from a scenario to one of the parts, with the run's base URLs,
 * credentials, deadline and log.
 *
 * Credentials: with auth set, gateway requests carry "Authorization: Bearer <the run's
 * admin token>", provider requests the simulators' API key for that provider (their
 * defaults, or SIM_RETELL_API_KEY / SIM_CALCOM_API_KEY / SIM_STRIPE_API_KEY from the
 * runner's environment, which the simulators inherit). Bodies default to
 * "Content-Type: application/json" unless a Content-Type header is given.
 * Not thread-safe: uses the context's HTTP client.
 */
#ifndef SC_HTTP_H
#define SC_HTTP_H

#include <jansson.h>

#include "sc_ctx.h"

/* Per-request cap when nothing shorter applies; the scenario deadline always applies. */
#define SC_HTTP_TIMEOUT_MS 30000
/* Bodies shown in log lines and diagnoses are cut to this many bytes. */
#define SC_HTTP_SHOW 600

typedef struct {
    sc_target_t to;
    const char *method;
    const char *path;      /* already expanded */
    const json_t *headers; /* already expanded object of strings, or NULL */
    const char *body;      /* or NULL */
    size_t body_len;
    int auth;           /* 0/1: already resolved from the step's default */
    int64_t timeout_ms; /* 0: SC_HTTP_TIMEOUT_MS */
} sc_http_req_t;

typedef struct {
    cm_err_t transport; /* CM_OK when an answer arrived; else CM_ECONNECT, CM_ETIMEOUT... */
    long status;        /* 0 without an answer */
    char *body;         /* NUL-terminated, "" when empty; owned */
    size_t body_len;
    json_t *json;  /* the body parsed, or NULL when it is not JSON; owned */
    char *headers; /* the answer's raw "Name: value\r\n" lines, or NULL; owned */
    double ms;
    char err[CM_ERR_LEN]; /* transport error text */
} sc_answer_t;

/* The default of a request's "auth": gateway /admin/ paths only. */
int sc_http_default_auth(sc_target_t to, const char *path);

/* Performs the request and fills a (always; free it with sc_answer_free). Logs one line
 * under actor unless quiet. Returns a->transport (not marked warn_unused_result: callers
 * judge the answer, transport included, from a). */
cm_err_t sc_http_do(sc_ctx_t *ctx, const char *actor, const sc_http_req_t *r, int quiet,
                    sc_answer_t *a);

/* One-line rendering for logs and diagnoses: `204 ""`, `200 {"count":1,...}` (cut),
 * or `no answer: connection refused`. Writes into out (cap bytes). */
const char *sc_answer_show(const sc_answer_t *a, char *out, size_t cap);

void sc_answer_free(sc_answer_t *a);

/* Sends body (JSON, not taken) with method to path on the part to, as actor; *a is the
 * answer as sc_http_do gives it (free it with sc_answer_free). CM_ENOMEM, *a untouched,
 * when the body cannot be written; the caller fails the step. */
cm_err_t sc_http_send_json(sc_ctx_t *ctx, const char *actor, sc_target_t to, const char *method,
                           const char *path, const json_t *body, sc_answer_t *a) CM_WUR;

#endif
