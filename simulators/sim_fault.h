/* sim_fault.h - the fault engine shared by the three provider simulators.
 *
 * A rule matches requests by provider, route pattern ("POST /v2/bookings/{uid}/cancel",
 * sim_http_route_match) and optionally fields of the body, within an optional time window
 * relative to the rule's creation, and fires with a probability drawn from one seeded
 * generator (so a seed and a request order give the same faults every run). When it fires
 * it applies one step: latency (fixed, uniform, lognormal) and then an answer (any status,
 * headers, body, Retry-After in seconds or as an HTTP date), a socket fault (reset, close
 * without answering, hang until the client gives up, garbage then close, a body cut short,
 * a malformed chunk, a body dribbled slowly) or the normal answer. A rule is one step
 * applied `times` times (or for ever), or a sequence of steps ("2 x 503, then 1 x reset,
 * then normal"); once used up it stays listed but no longer fires.
 * The rule syntax is in docs/interfaces.md; bad rules are refused with a message naming
 * the JSON path of the problem ("$.sequence[1].socket: unknown socket fault 'rst' ...").
 *
 * The engine is applied through the server's filter (before routing: latency, answers and
 * socket faults that replace the handler) and after hook (faults that need the handler's
 * real answer, or that come after it ran: "when":"after"), and it journals every exchange
 * when given a journal. Rules are checked in creation order; the first that fires wins.
 *
 * Thread-safe: one mutex guards the rules and the generator; it is never held while a
 * fault sleeps or writes. sim_fault_shutdown releases every hang and latency in progress
 * (call it before stopping the servers, so they do not wait for a 60 s hang).
 */
#ifndef SIM_FAULT_H
#define SIM_FAULT_H

#include <jansson.h>
#include <stdint.h>

#include "cm_err.h"
#include "cm_http_server.h"
#include "sim_journal.h"

#define SIM_FAULT_MAX_RULES 256
#define SIM_FAULT_MAX_STEPS 16
/* Hangs end when the client hangs up, at shutdown, or after this long (default). */
#define SIM_FAULT_HANG_DEFAULT_MS 60000
#define SIM_FAULT_HANG_LIMIT_MS 600000
#define SIM_FAULT_LATENCY_LIMIT_MS 600000
/* The other bounds of a rule's numbers (docs/interfaces.md): more would be a mistake, and
 * none of them can then overflow what is computed from it. */
#define SIM_FAULT_TIMES_MAX 1000000000LL       /* "times" */
#define SIM_FAULT_RETRY_AFTER_MAX_S 31536000LL /* "retry_after": a year */
#define SIM_FAULT_BYTES_MAX (1LL << 30)        /* "truncate_at" */
#define SIM_FAULT_CHUNK_MAX 65536              /* "chunk_bytes" */
#define SIM_FAULT_INTERVAL_LIMIT_MS 60000      /* "interval" */
#define SIM_FAULT_SIGMA_MAX 5                  /* "latency.lognormal.sigma" */
#define SIM_FAULT_BARE_MS_MAX 1000000000000LL  /* a duration as a bare number (deprecated) */

typedef struct sim_fault sim_fault_t;

typedef struct {
    uint64_t seed;          /* the fault generator's seed */
    sim_journal_t *journal; /* borrowed, may be NULL; must outlive the engine */
} sim_fault_cfg_t;

sim_fault_t *sim_fault_new(const sim_fault_cfg_t *cfg);
/* Frees the engine, sets *f to NULL, accepts NULL. Servers using it must be stopped. */
void sim_fault_free(sim_fault_t **f);

/* Releases every wait in progress and makes later faults skip their waits. */
void sim_fault_shutdown(sim_fault_t *f);

/* Sets srv's filter and after hook (before it starts) for provider ("retell", "calcom",
 * "stripe"; copied). Requests under /_sim/ and /control/ are never faulted. */
cm_err_t sim_fault_attach(sim_fault_t *f, cm_http_server_t *srv, const char *provider) CM_WUR;

/* Adds a rule (borrowed JSON, see docs/interfaces.md). On success *out (may be NULL) is a
 * new copy of the rule as listed, with its "id". CM_EINVAL: err names the JSON path and
 * the problem, nothing is added. CM_ETOOBIG: SIM_FAULT_MAX_RULES reached. */
cm_err_t sim_fault_add(sim_fault_t *f, const json_t *rule, json_t **out, char *err) CM_WUR;

/* Adds the rules of a fixture file: {"faults":[rule, ...]} or [rule, ...]. All or nothing:
 * on error (err names the file and the path, "$[2].status: ...") no rule is added. */
cm_err_t sim_fault_load_file(sim_fault_t *f, const char *path, size_t *n, char *err) CM_WUR;

/* New {"count":N,"rules":[{...rule, "id", "matched", "hits", "exhausted"}]}. */
json_t *sim_fault_list(sim_fault_t *f);
/* CM_ENOTFOUND when there is no such rule. */
cm_err_t sim_fault_delete(sim_fault_t *f, int64_t id) CM_WUR;
void sim_fault_clear(sim_fault_t *f);

/* ---- the decision, exposed for unit tests and for callers without HTTP ------------ */

typedef enum {
    SIM_FAULT_PASS = 0,        /* normal answer (possibly after latency) */
    SIM_FAULT_ANSWER,          /* the rule's status, headers and body */
    SIM_FAULT_RESET,           /* RST */
    SIM_FAULT_CLOSE,           /* FIN without any answer */
    SIM_FAULT_HANG,            /* nothing until the client gives up (bounded) */
    SIM_FAULT_GARBAGE,         /* bytes that are not HTTP, then close */
    SIM_FAULT_TRUNCATE,        /* headers with the full Content-Length, part of the body */
    SIM_FAULT_MALFORMED_CHUNK, /* chunked answer whose chunk size is not hex */
    SIM_FAULT_SLOW_BODY,       /* the answer, its body dribbled over time */
} sim_fault_kind_t;

/* What one request gets; owned by the caller, released with sim_fault_plan_free. */
typedef struct {
    int fired;
    int64_t rule_id;
    unsigned step;
    char desc[128]; /* "rule 3 step 1: socket reset" */
    int64_t latency_ms;
    sim_fault_kind_t kind;
    int after; /* apply after the handler ran */
    int status;
    json_t *headers; /* object of strings, may be NULL */
    char *body;
    size_t body_len;
    char *content_type;
    char retry_after[64]; /* rendered value, "" when none */
    int64_t hang_max_ms;
    char *garbage;
    size_t garbage_len;
    int64_t truncate_at; /* -1: half the body */
    int64_t chunk_bytes;
    int64_t interval_ms;
} sim_fault_plan_t;

/* Decides for one request: 1 with *plan filled when a rule fires, else 0 (plan zeroed).
 * ctype decides how the body is read for body matches (form or JSON). */
int sim_fault_decide(sim_fault_t *f, const char *provider, const char *method, const char *path,
                     const char *ctype, const char *body, size_t body_len, sim_fault_plan_t *plan);
/* A request header's value by name (any case), or NULL. */
typedef const char *(*sim_fault_header_fn)(void *ud, const char *name);
/* sim_fault_decide with the request's headers, for rules with "match_headers" (which
 * sim_fault_decide, knowing no headers, never fires). */
int sim_fault_decide_hdr(sim_fault_t *f, const char *provider, const char *method, const char *path,
                         const char *ctype, const char *body, size_t body_len,
                         sim_fault_header_fn hdr, void *hdr_ud, sim_fault_plan_t *plan);
void sim_fault_plan_free(sim_fault_plan_t *plan);

/* Parses a duration in the one grammar (cm_duration.h: "250ms", "1.5s", "2m", "1h"). A
 * bare integer of milliseconds is still taken, with a deprecation warning in the log, for
 * one release. -1 if bad. */
int64_t sim_fault_duration_ms(const json_t *v);

#endif
