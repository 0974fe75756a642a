/* sim_delivery.h - webhook delivery attempts as every simulated provider makes them, and a
 * bounded log of the reports of deliveries the control API asked for.
 *
 * sim_delivery_send makes one attempt: it POSTs the bytes with the signature the provider
 * made, times the exchange and journals it (kind delivery), so Retell, Cal.com and Stripe
 * record attempts the same way. The report helpers give every control route one shape:
 *   delivery {"status":204|null,"error":null|"...","ms":1.4,
 *             "attempts":[{"status","error","ms","url","signature"}, ...]}
 * Jobs are what Stripe's and Cal.com's queues hold: an event's bytes, how its attempts are
 * signed and where they are reported. The log keeps, per event sent on request,
 * {"delivery_id","status","event","url","deliveries"} with one delivery per copy, filled in
 * by the provider's worker as attempts end; the trigger waits for the first attempt of
 * every copy and later reads show the retries.
 *
 * sim_delivery_send and the JSON and job helpers only touch their arguments (a queue is
 * guarded by its provider's lock). The log's functions are thread-safe (one mutex, taken
 * after the provider's and never held while anything is sent); new/free are not.
 */
#ifndef SIM_DELIVERY_H
#define SIM_DELIVERY_H

#include <jansson.h>
#include <stdint.h>

#include "cm_err.h"
#include "cm_http_client.h"
#include "cm_sig.h"
#include "sim_journal.h"

/* How many finished reports a log keeps (as Retell keeps its deliveries). */
#define SIM_DELIVERY_HISTORY 256
#define SIM_DELIVERY_ID_LEN 32

/* One attempt, as sent and as answered. */
typedef struct {
    long status;              /* HTTP status; 0 when no answer came (or nothing was sent) */
    char err[160];            /* "" or why no answer came / why it was not sent */
    double ms;                /* from sending to the answer or the failure */
    char sig[CM_SIG_HDR_LEN]; /* the signature header's value as sent; "" when none */
    char *url;                /* where it was sent (malloc'd; the caller frees); NULL: not sent */
} sim_attempt_t;

typedef struct {
    const char *provider;       /* "retell", "calcom", "stripe": for the journal */
    const char *sig_header;     /* the signature header's name; its value is the attempt's sig */
    const char *const *headers; /* further "Name: value" headers, NULL-terminated; at most 4 */
    const void *body;
    size_t len;
    int64_t timeout_ms;      /* the whole exchange; 0: the HTTP client's default (10 s) */
    const int *abort;        /* the provider's stopping flag: a transfer in flight ends */
    sim_journal_t *journal;  /* may be NULL */
    const char *delivery_id; /* journal fields; may be NULL */
    const char *event;
    int attempt; /* 1 for the first */
} sim_delivery_req_t;

/* Sends one attempt of req to a->url (set by the caller) with "<sig_header>: <a->sig>",
 * using client c (not thread-safe: one per thread), and journals it. Fills a->status,
 * a->err ("<cm_strerror>: <detail>" when no HTTP answer came, else "") and a->ms. */
void sim_delivery_send(cm_http_client_t *c, const sim_delivery_req_t *req, sim_attempt_t *a);

/* A new {"status","error","ms","url","signature"} of a (status, error, url and signature
 * null when absent); NULL when out of memory. */
json_t *sim_delivery_attempt_json(const sim_attempt_t *a);

/* A new {"status","error","ms","attempts"} for one delivery. attempts is taken: an array
 * of sim_delivery_attempt_json values, oldest first; status, error and ms are the last
 * one's (with none: null, "not sent (stopping)", 0). NULL when out of memory. */
json_t *sim_delivery_item(json_t *attempts);

typedef struct sim_delivery_log sim_delivery_log_t;

/* Where a queued delivery's attempts go in the log: a report and one copy of it. */
typedef struct {
    uint64_t seq;                 /* 0: not reported (the provider's own events) */
    unsigned copy;                /* 0-based */
    char id[SIM_DELIVERY_ID_LEN]; /* the report's delivery_id */
} sim_delivery_ref_t;

/* Ids are prefix "_" and six or more digits ("dlv_stripe_000001"); prefix is copied and at
 * most 16 bytes. NULL when out of memory or prefix is too long. */
sim_delivery_log_t *sim_delivery_log_new(const char *prefix);
/* Frees every report and sets *l to NULL; accepts NULL. Nobody may be waiting. */
void sim_delivery_log_free(sim_delivery_log_t **l);

/* Opens the report of copies (>= 1) deliveries of event (copied) triggered while url was
 * the webhook URL (copied), and fills *ref for its copy 0. Drops the oldest finished
 * reports beyond SIM_DELIVERY_HISTORY. CM_ENOMEM leaves nothing opened. */
cm_err_t sim_delivery_log_open(sim_delivery_log_t *l, const json_t *event, const char *url,
                               unsigned copies, sim_delivery_ref_t *ref) CM_WUR;

/* Adds attempt a (copied) to ref's copy; more is 1 when another attempt of that copy will
 * follow. Nothing happens for ref->seq 0, or when the report was dropped. */
void sim_delivery_log_attempt(sim_delivery_log_t *l, const sim_delivery_ref_t *ref,
                              const sim_attempt_t *a, int more);

/* Ends ref's copy with an attempt that was not sent, error why (e.g. "not sent: the
 * simulator was reset"). Nothing happens for ref->seq 0. */
void sim_delivery_log_unsent(sim_delivery_log_t *l, const sim_delivery_ref_t *ref, const char *why);

/* Waits until the first attempt of every copy of ref's report has ended (or the log is
 * stopped), then returns a new copy of the report; NULL when out of memory or unknown. The
 * report's status is "pending" while a first attempt is to come, "retrying" while a copy
 * has another attempt to come, else "done". */
json_t *sim_delivery_log_wait_first(sim_delivery_log_t *l, const sim_delivery_ref_t *ref);

/* A webhook waiting in a provider's queue: its bytes, how its attempts are signed and
 * where they are reported. Owned by the queue it is in (or the worker that took it out). */
typedef struct sim_delivery_job {
    char *event; /* the event type or trigger, for the journal */
    char *id;    /* the provider's id of the event for the journal, or NULL */
    char *body;  /* serialised once: every attempt carries these bytes */
    size_t len;
    unsigned attempt; /* attempts made so far */
    int64_t due_mono_ms;
    uint64_t generation; /* the provider's reset count when queued */
    int forge;           /* signed with a secret nobody configured */
    int64_t ts_offset_ms;
    sim_delivery_ref_t report; /* seq 0 for the provider's own events */
    struct sim_delivery_job *next;
} sim_delivery_job_t;

/* A new job for body (taken: freed here on error), due now; id may be NULL. NULL when out
 * of memory. */
sim_delivery_job_t *sim_delivery_job_new(const char *event, const char *id, char *body);
/* What the journal calls the job's delivery: its report's id, else its own id (may be NULL). */
const char *sim_delivery_job_id(const sim_delivery_job_t *j);
/* Frees j; accepts NULL. */
void sim_delivery_job_free(sim_delivery_job_t *j);
/* Appends j to the end of the queue *list. */
void sim_delivery_jobs_append(sim_delivery_job_t **list, sim_delivery_job_t *j);
/* Frees a list of jobs taken off a queue; those with a report end there as not sent, why
 * (l may be NULL when none has a report). */
void sim_delivery_jobs_drop(sim_delivery_log_t *l, sim_delivery_job_t *list, const char *why);

/* How the copies of an event sent on request are made. */
typedef struct {
    const char *event; /* the event type or trigger */
    const char *id;    /* the provider's id of the event, or NULL */
    unsigned copies;   /* >= 1 */
    int forge;
    int64_t ts_offset_ms;
    uint64_t generation;
} sim_delivery_copies_t;

/* Serialises event once, opens its report (url: the webhook URL now) and makes c->copies
 * jobs of those bytes, due now, job k reported as copy k. The caller appends *jobs to its
 * queue and then waits with sim_delivery_log_wait_first(l, ref). CM_ENOMEM: nothing made,
 * nothing opened. */
cm_err_t sim_delivery_log_queue(sim_delivery_log_t *l, const json_t *event, const char *url,
                                const sim_delivery_copies_t *c, sim_delivery_ref_t *ref,
                                sim_delivery_job_t **jobs) CM_WUR;

/* A new copy of report id as it is now; NULL when unknown (or out of memory). */
json_t *sim_delivery_log_report(sim_delivery_log_t *l, const char *id);

/* Releases every wait, now and later (shutdown). */
void sim_delivery_log_stop(sim_delivery_log_t *l);

#endif
