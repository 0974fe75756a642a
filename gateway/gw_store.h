/* gw_store.h - the gateway's durable store: events, jobs and per-call outcomes.
 *
 * This header is the storage interface; gw_store_sqlite.c implements it on one SQLite file
 * in WAL mode. The SQL is kept portable (INSERT ... ON CONFLICT DO NOTHING, RETURNING)
 * so a PostgreSQL implementation can serve several gateway instances later.
 *
 * Durability contract: gw_store_ingest() returns only after the event and its job are
 * committed in ONE transaction; the caller acknowledges the webhook only after that.
 * Deduplication is the UNIQUE event key inside that transaction, never check-then-insert.
 *
 * Thread-safety: a gw_store_t may be used from any thread; each call serialises on the
 * store's own connections (one for the ingest path, one for the workers, so webhook
 * acknowledgement never waits behind a worker's long transaction).
 */
#ifndef GW_STORE_H
#define GW_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "cm_buf.h"
#include "cm_err.h"

typedef struct gw_store gw_store_t;

typedef struct {
    const char *provider;   /* "retell" */
    const char *event_key;  /* unique identity, e.g. "retell:call_ab12:call_analyzed" */
    const char *event_type; /* "call_analyzed" */
    const char *entity_id;  /* the call, booking or payment the event is about */
    const char *tenant_id;  /* may be NULL when not yet known */
    const char *headers;    /* JSON object of the headers kept for audit, may be NULL */
    const void *body;       /* raw bytes as received */
    size_t body_len;
    int64_t received_at_ms;
    const char *job_kind; /* the job queued with the event, NULL for none */
} gw_event_in_t;

typedef enum { GW_INGEST_ACCEPTED = 0, GW_INGEST_DUPLICATE = 1 } gw_ingest_t;

typedef struct {
    int64_t id;
    int64_t event_id;
    char kind[64];
    char entity_id[128];
    int attempts;  /* including the current one */
    cm_buf_t body; /* the event's raw body; owned, freed by gw_store_job_free */
} gw_job_t;

typedef struct {
    int64_t pending, running, done, dead;
} gw_queue_stats_t;

/* Opens (creating if needed) the database at path and migrates the schema. sync_full
 * selects synchronous=FULL (every commit fsynced) rather than NORMAL. */
cm_err_t gw_store_open(const char *path, int sync_full, gw_store_t **out, char *err) CM_WUR;
void gw_store_close(gw_store_t **s);

/* Stores the event and queues its job in one transaction. *result tells whether it was
 * new or a duplicate (then only the duplicate counter moves). On error nothing is stored. */
cm_err_t gw_store_ingest(gw_store_t *s, const gw_event_in_t *ev, gw_ingest_t *result) CM_WUR;

/* Crash recovery, called once at start: jobs left 'running' by a dead process go back to
 * 'pending'; those that already used max_attempts go to the dead-letter state instead,
 * so a job that crashes the worker every time cannot loop forever. Returns the count
 * of jobs requeued through *requeued. */
cm_err_t gw_store_recover(gw_store_t *s, int max_attempts, int64_t now_ms, int *requeued) CM_WUR;

/* Claims the oldest due job (state pending, next_at <= now): marks it running and counts
 * the attempt. CM_ENOTFOUND when none is due; *next_due_ms then holds the earliest future
 * due time (or -1 when the queue is empty). */
cm_err_t gw_store_claim(gw_store_t *s, int64_t now_ms, gw_job_t *job, int64_t *next_due_ms) CM_WUR;
void gw_store_job_free(gw_job_t *job);

/* Ends a claimed job: done, retried at retry_at_ms, or dead-lettered with the reason. */
cm_err_t gw_store_job_done(gw_store_t *s, int64_t job_id, int64_t now_ms) CM_WUR;
cm_err_t gw_store_job_retry(gw_store_t *s, int64_t job_id, int64_t retry_at_ms, const char *error,
                            int64_t now_ms) CM_WUR;
cm_err_t gw_store_job_dead(gw_store_t *s, int64_t job_id, const char *reason,
                           int64_t now_ms) CM_WUR;

cm_err_t gw_store_queue_stats(gw_store_t *s, gw_queue_stats_t *st) CM_WUR;

/* Call outcomes. state is a short word ("booking", "booked", "no_slot", "failed", ...);
 * booking_uid and error may be NULL. Upsert keyed by call id. */
cm_err_t gw_store_call_set(gw_store_t *s, const char *call_id, const char *tenant_id,
                           const char *state, const char *booking_uid, const char *error,
                           int64_t now_ms) CM_WUR;
/* Appends the call's row as a JSON object to out; CM_ENOTFOUND when unknown. */
cm_err_t gw_store_call_json(gw_store_t *s, const char *call_id, cm_buf_t *out) CM_WUR;
/* The call's state word into state (cap bytes); CM_ENOTFOUND when unknown. */
cm_err_t gw_store_call_state(gw_store_t *s, const char *call_id, char *state, size_t cap) CM_WUR;

/* Appends {"count":N,"events":[...]} for a provider (NULL: all) to out, newest last,
 * at most limit rows. */
cm_err_t gw_store_events_json(gw_store_t *s, const char *provider, int limit, cm_buf_t *out) CM_WUR;

#endif
