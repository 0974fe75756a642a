/* sim_journal.h - what the simulators saw and did: a bounded journal of every request
 * received and every webhook delivery attempt, and the effects ledger.
 *
 * The journal is a ring buffer of the last `capacity` records: when full, the oldest goes
 * and `dropped` counts it. Each record has a sequence number that only grows (never reset,
 * not even by sim_journal_clear), so a reader can page with since=<last seq seen>.
 * Bodies are not kept, only their SHA-256 and length; a few headers are kept (the ones a
 * test asserts on: idempotency keys, API versions, signatures, Retry-After, the W3C
 * traceparent that ties a request to the caller's trace), never Authorization.
 *
 * The effects ledger records each state change a provider made that a test may count:
 * booking, cancellation, reschedule, charge (a payment intent that succeeded or was
 * captured), refund; each once, with the idempotency key or request that caused it.
 * It is bounded too (SIM_JOURNAL_MAX_EFFECTS), counting what it had to drop.
 *
 * All functions but new/free are thread-safe (one mutex, held for a copy only).
 */
#ifndef SIM_JOURNAL_H
#define SIM_JOURNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_err.h"

#define SIM_JOURNAL_DEFAULT_CAPACITY 10000
#define SIM_JOURNAL_MAX_EFFECTS 100000

typedef struct sim_journal sim_journal_t;

typedef enum { SIM_JOURNAL_REQUEST = 0, SIM_JOURNAL_DELIVERY = 1 } sim_journal_kind_t;

/* One record, as the caller hands it in; every pointer is borrowed and copied. */
typedef struct {
    sim_journal_kind_t kind;
    const char *provider; /* "retell", "calcom", "stripe" */
    const char *method;
    const char *path;         /* request path, or the delivery URL */
    const char *query;        /* request query string without '?', may be NULL */
    json_t *headers;          /* object of the kept headers, may be NULL (borrowed) */
    const char *headers_json; /* or the same as compact JSON object text, used when set */
    const void *body;         /* digested, not kept */
    size_t body_len;
    const char *fault;   /* "rule 3 step 0: 503" or NULL when none applied */
    int status;          /* HTTP status answered / received; 0 when none */
    const char *outcome; /* "answered", "reset", "closed", "timeout: ...", NULL: "answered" */
    int64_t at_ms;       /* wall clock (cm_clock) when it started */
    double duration_ms;
    /* deliveries only */
    const char *delivery_id;
    const char *event;
    int attempt; /* 1 for the first attempt */
} sim_journal_rec_t;

/* capacity 0 means SIM_JOURNAL_DEFAULT_CAPACITY. NULL when out of memory. */
sim_journal_t *sim_journal_new(size_t capacity);
void sim_journal_free(sim_journal_t **j);

/* Appends a copy of r. Out of memory drops the record (and counts it as dropped). */
void sim_journal_add(sim_journal_t *j, const sim_journal_rec_t *r);

typedef struct {
    const char *provider; /* NULL: any */
    const char *route;    /* a sim_http_route_match pattern; NULL: any */
    int kind;             /* -1: any, else sim_journal_kind_t */
    int64_t since;        /* only records with seq > since */
    size_t limit;         /* 0: 1000 */
    int by_start;         /* order by at_ms (then seq) instead of by seq */
} sim_journal_filter_t;

/* New {"count":N,"dropped":D,"last_seq":S,"entries":[...]} oldest first; NULL on OOM.
 * Records are journalled (and numbered) when they end, so a request that hung or was reset
 * can follow the retry that came after it; by_start orders them as they arrived instead
 * (limit applies after the ordering). */
json_t *sim_journal_query(sim_journal_t *j, const sim_journal_filter_t *f);

/* Waits until at least n records match f or timeout_ms passes; returns how many matched at
 * the end. For callers that saw the far side of an exchange (a receiver that answered a
 * delivery) and must wait for the simulator to journal it. */
size_t sim_journal_wait(sim_journal_t *j, const sim_journal_filter_t *f, size_t n,
                        int64_t timeout_ms);

/* Records an effect. detail (borrowed, may be NULL) is merged into the record. */
void sim_journal_effect(sim_journal_t *j, const char *provider, const char *kind,
                        const char *object_id, const char *idempotency_key, const char *request_id,
                        const json_t *detail);

/* New {"count":N,"dropped":D,"effects":[{"seq","at_ms","provider","kind","object_id",
 * "idempotency_key","request_id",...}]} filtered by provider/kind (NULL: any). */
json_t *sim_journal_effects(sim_journal_t *j, const char *provider, const char *kind);

/* Forgets every record and effect; sequence numbers keep counting. */
void sim_journal_clear(sim_journal_t *j);

/* Hex SHA-256 of a body (65 bytes). */
void sim_journal_digest(const void *body, size_t len, char out[65]);

#endif
